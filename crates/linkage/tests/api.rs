//! The file-level API the CLI calls: CSV in, links CSV and JSON summary out.

use sightline_linkage::{
    dedupe, pair, plan_dedupe, Dataset, Decision, Error, LinkOptions, LinkResult, Mapping,
    SplitMix64,
};

const GIVEN: &[&str] = &[
    "olivia", "liam", "emma", "noah", "amelia", "oliver", "isla", "jack", "mia", "william", "ava",
    "henry", "grace", "leo", "chloe", "lucas", "zoe", "thomas", "ella", "james",
];
const SURNAMES: &[&str] = &[
    "smith", "smith", "smith", "smith", "jones", "williams", "brown", "wilson", "taylor", "nguyen",
    "johnson", "martin", "white", "anderson", "walker", "thompson", "harris", "lee", "ryan",
    "robinson", "kelly", "king", "davis", "wright", "evans", "roberts",
];

/// `people` originals and one noisy duplicate of each, as CSV with a header.
fn people_csv(people: usize, seed: u64) -> String {
    let mut rng = SplitMix64::new(seed);
    let mut pick = |words: &[&str]| words[rng.below(words.len() as u64) as usize].to_owned();
    let mut rows = Vec::new();
    for n in 0..people {
        let given = pick(GIVEN);
        let surname = pick(SURNAMES);
        let dob = format!("19{:02}{:02}{:02}", 40 + n % 60, 1 + n % 12, 1 + n % 28);
        let postcode = format!("{}", 2000 + n % 40);
        let email = format!("{given}.{surname}{n}@example.com");
        rows.push(format!("o{n},{given},{surname},{dob},{postcode},{email}"));
        // The duplicate: a typo in the given name, the email dropped.
        let typo = format!("{}{}", &given[..given.len() - 1], "x");
        rows.push(format!(
            "d{n}, {typo} ,{} ,{dob},{postcode},",
            surname.to_uppercase()
        ));
    }
    format!(
        "id,first_name,last_name,dob,zip,email\n{}\n",
        rows.join("\n")
    )
}

fn people(n: usize) -> Dataset {
    Dataset::from_csv_reader(people_csv(n, 1).as_bytes(), "id").unwrap()
}

fn run(data: &Dataset) -> LinkResult {
    dedupe(data, &LinkOptions::default()).unwrap()
}

#[test]
fn dedupe_finds_the_duplicates() {
    let data = people(150);
    let result = run(&data);
    let found = result
        .pairs
        .iter()
        .filter(|p| p.match_probability >= 0.5)
        .filter(|p| result.left_id(p)[1..] == result.right_id(p)[1..])
        .count();
    assert!(found >= 140, "found {found} of 150 duplicates");
    assert!(result.summary.em.converged);
}

#[test]
fn links_csv_follows_the_contract() {
    let data = people(100);
    let result = run(&data);
    let mut out = Vec::new();
    let written = result.write_links_csv(&mut out, 0.5).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("left_id,right_id,match_probability"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), written);
    assert_eq!(written, result.summary.links);
    for row in rows {
        let probability: f64 = row.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.5..=1.0).contains(&probability), "{row}");
    }
    let higher = result.write_links_csv(std::io::sink(), 0.99).unwrap();
    assert!(higher <= written);
    assert!(matches!(
        result.write_links_csv(std::io::sink(), 0.001),
        Err(Error::InvalidOption { .. })
    ));
}

#[test]
fn planned_counts_equal_the_counts_of_the_run() {
    let data = people(120);
    let opts = LinkOptions::default();
    let plan = plan_dedupe(&data, &opts).unwrap();
    let result = dedupe(&data, &opts).unwrap();
    let run_counts: Vec<(String, u64)> = result
        .summary
        .blocking
        .iter()
        .map(|c| (c.rule.clone(), c.comparisons))
        .collect();
    let planned: Vec<(String, u64)> = plan
        .iter()
        .map(|c| (c.rule.clone(), c.comparisons))
        .collect();
    assert_eq!(planned, run_counts);
    let new_pairs: u64 = result
        .summary
        .blocking
        .iter()
        .map(|c| c.new_pairs.unwrap())
        .sum();
    assert_eq!(new_pairs, result.summary.compared_pairs);
}

#[test]
fn summary_serialises_to_json() {
    let result = run(&people(60));
    let json = serde_json::to_value(&result.summary).unwrap();
    for key in [
        "mode",
        "left_records",
        "blocking",
        "compared_pairs",
        "em",
        "parameters",
        "links",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["mode"], "dedupe");
    assert_eq!(json["left_records"], 120);
    let first_field = &json["parameters"][0];
    assert_eq!(first_field["column"], "first_name");
    assert_eq!(first_field["levels"][0]["label"], "exact");
}

#[test]
fn two_thresholds_split_links_into_auto_links_and_review() {
    let result = run(&people(100));
    let mut counts = [0usize; 3];
    for p in &result.pairs {
        let decision = result.decision(p);
        counts[decision as usize] += 1;
        match decision {
            Decision::Link => assert!(p.match_probability >= 0.95),
            Decision::Review => assert!((0.5..0.95).contains(&p.match_probability)),
            Decision::NoLink => assert!(p.match_probability < 0.5),
        }
    }
    assert_eq!(counts[0], result.summary.auto_links);
    assert_eq!(counts[1], result.summary.review);
    assert_eq!(result.review_queue().count(), result.summary.review);
}

#[test]
fn a_threshold_above_the_auto_link_threshold_leaves_nothing_to_review() {
    let opts = LinkOptions {
        threshold: 0.99,
        auto_link_threshold: 0.9,
        ..LinkOptions::default()
    };
    let result = dedupe(&people(60), &opts).unwrap();
    assert_eq!(result.summary.review, 0);
    assert_eq!(result.summary.auto_links, result.summary.links);
    assert!(result
        .pairs
        .iter()
        .all(|p| result.decision(p) != Decision::Review));
}

#[test]
fn explanations_add_up_to_the_score() {
    let data = people(100);
    let result = run(&data);
    for p in result.pairs.iter().take(20) {
        let explanation = result.explain(&data, &data, p);
        assert!((explanation.match_weight - p.match_weight).abs() < 1e-9);
        assert!((explanation.match_probability - p.match_probability).abs() < 1e-12);
        let last = explanation.fields.last().unwrap().cumulative_weight;
        assert!((last - explanation.match_weight).abs() < 1e-9);
        let nulls_weigh_nothing = explanation
            .fields
            .iter()
            .filter(|f| f.label == "null")
            .all(|f| f.weight == 0.0 && f.m.is_none());
        assert!(nulls_weigh_nothing);
        let text = explanation.to_string();
        assert!(
            text.contains("first_name") && text.contains("match probability"),
            "{text}"
        );
        serde_json::to_string(&explanation).unwrap();
    }
}

#[test]
fn common_surnames_weigh_less_than_rare_ones() {
    let data = people(200);
    let result = run(&data);
    let surname_tf = |surname: &str| {
        result
            .pairs
            .iter()
            .map(|p| result.explain(&data, &data, p))
            .flat_map(|e| e.fields)
            .find(|f| {
                f.column == "last_name"
                    && f.label == "exact"
                    && f.left_value.as_deref() == Some(surname)
            })
            .map(|f| f.term_frequency_weight)
            .unwrap()
    };
    assert!(surname_tf("smith") < 0.0);
    assert!(surname_tf("smith") < surname_tf("wright"));
}

#[test]
fn runs_are_deterministic() {
    let data = people(80);
    let (a, b) = (run(&data), run(&data));
    assert_eq!(a.pairs, b.pairs);
    assert_eq!(a.summary, b.summary);
}

#[test]
fn pair_links_two_files_on_shared_columns() {
    let text = people_csv(80, 2);
    let mut left = vec![text.lines().next().unwrap().to_owned() + ",only_left"];
    let mut right = vec![text.lines().next().unwrap().to_owned()];
    for (n, line) in text.lines().skip(1).enumerate() {
        if n % 2 == 0 {
            left.push(format!("{line},x{n}"));
        } else {
            right.push(line.to_owned());
        }
    }
    let a = Dataset::from_csv_reader(left.join("\n").as_bytes(), "id").unwrap();
    let b = Dataset::from_csv_reader(right.join("\n").as_bytes(), "id").unwrap();
    let result = pair(&a, &b, &LinkOptions::default()).unwrap();
    assert_eq!(result.summary.mode, "pair");
    assert!(result
        .summary
        .parameters
        .iter()
        .all(|f| f.column != "only_left"));
    let correct = result
        .pairs
        .iter()
        .filter(|p| p.match_probability >= 0.5)
        .filter(|p| result.left_id(p)[1..] == result.right_id(p)[1..])
        .count();
    assert!(correct >= 75, "{correct} of 80");
}

#[test]
fn mapping_file_overrides_blocking_and_fields() {
    let mapping = Mapping::from_toml_str(
        r#"
        [fields.email]
        kind = "ignore"
        [[blocking]]
        keys = ["dob"]
        "#,
    )
    .unwrap();
    let opts = LinkOptions {
        mapping,
        ..LinkOptions::default()
    };
    let result = dedupe(&people(50), &opts).unwrap();
    let rules: Vec<&str> = result
        .summary
        .blocking
        .iter()
        .map(|c| c.rule.as_str())
        .collect();
    assert_eq!(rules, ["dob"]);
    assert!(result
        .summary
        .parameters
        .iter()
        .all(|f| f.column != "email"));
}

#[test]
fn bad_rows_are_reported_and_good_rows_kept() {
    let mut text = people_csv(50, 3);
    text.push_str("broken,row\n");
    text.push_str("o1,dup,id,19500101,2001,x@y.z\n");
    let data = Dataset::from_csv_reader(text.as_bytes(), "id").unwrap();
    assert_eq!(data.len(), 100);
    let result = run(&data);
    let lines: Vec<u64> = result.summary.skipped_left.iter().map(|s| s.line).collect();
    assert_eq!(lines, [102, 103]);
}

#[test]
fn file_errors_say_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("sightline-linkage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("people.csv");
    std::fs::write(&path, people_csv(5, 4)).unwrap();
    let message = Dataset::from_csv_path(&path, "rec_id")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("`rec_id` not found") && message.contains("first_name"),
        "{message}"
    );
    let missing = Dataset::from_csv_path(dir.join("nope.csv"), "id")
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.csv"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_options_are_rejected() {
    let data = people(10);
    let opts = LinkOptions {
        threshold: 1.5,
        ..LinkOptions::default()
    };
    let message = dedupe(&data, &opts).unwrap_err().to_string();
    assert!(
        message.contains("`threshold`") && message.contains("1.5"),
        "{message}"
    );
    let opts = LinkOptions {
        max_comparisons: 1,
        ..LinkOptions::default()
    };
    let message = dedupe(&data, &opts).unwrap_err().to_string();
    assert!(
        message.contains("above the limit") && message.contains("zip"),
        "{message}"
    );
}

/// True duplicates found and pairs linked by mistake among links at or above 0.5.
fn found_and_wrong(result: &LinkResult) -> (usize, usize) {
    let links = result.pairs.iter().filter(|p| p.match_probability >= 0.5);
    links.fold((0, 0), |(found, wrong), p| {
        if result.left_id(p)[1..] == result.right_id(p)[1..] {
            (found + 1, wrong)
        } else {
            (found, wrong + 1)
        }
    })
}

#[test]
fn masking_blocking_fields_keeps_em_honest_on_a_small_input_blocked_by_one_field() {
    // Blocked by postcode alone, every compared pair agrees on postcode; trained on that,
    // EM can take "same postcode" for the match class. Masked, postcode is learnt from
    // nothing it was forced to agree on, and the duplicates stand out.
    let data = people(200);
    let mapping = Mapping::from_toml_str("[[blocking]]\nkeys = [\"zip\"]\n").unwrap();
    let opts = |mask_blocking_fields| {
        let mut opts = LinkOptions {
            mapping: mapping.clone(),
            mask_blocking_fields,
            u_sample_pairs: 1_000_000,
            ..LinkOptions::default()
        };
        opts.em.estimate_u = false;
        opts
    };
    let masked = dedupe(&data, &opts(true)).unwrap();
    let (found, wrong) = found_and_wrong(&masked);
    assert!(
        found >= 195 && wrong <= 15,
        "masked: found {found} of 200, {wrong} wrong"
    );
    let zip = masked
        .summary
        .parameters
        .iter()
        .find(|f| f.column == "zip")
        .unwrap();
    // u from random pairs is small for an exact postcode: the weight stays a reward.
    assert!(zip.levels[0].weight > 0.0, "{zip:?}");
    let unmasked = dedupe(&data, &opts(false)).unwrap();
    let (found_unmasked, wrong_unmasked) = found_and_wrong(&unmasked);
    // Unmasked, with u from the sample alone, EM links nearly every pair that shares a
    // postcode (about 1,600 wrong here).
    assert!(found_unmasked >= found, "{found_unmasked}");
    assert!(
        wrong_unmasked > 10 * wrong.max(1),
        "unmasked: {wrong_unmasked} wrong, masked: {wrong}"
    );
}
