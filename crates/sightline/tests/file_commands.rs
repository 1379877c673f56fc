//! The commands that work on plain files, through the real binary: consent decoding,
//! attribution over imported paths, record linkage of CSV files.

mod common;

use common::sightline;
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;

fn febrl(file: &str) -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("shared/data/febrl").join(file);
        if candidate.exists() {
            return candidate;
        }
        assert!(
            dir.pop(),
            "shared/data/febrl/{file} not found above the crate"
        );
    }
}

#[test]
fn consent_decode_prints_the_contract_and_refuses_garbage() {
    let vectors: Value =
        serde_json::from_str(include_str!("../../consent/tests/vectors/tcf.json")).unwrap();
    let vector = &vectors["vectors"][0];
    let string = vector["tc_string"].as_str().unwrap();
    let output = sightline(&["consent", "decode", string, "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(decoded["kind"], "tcf");
    assert_eq!(decoded["cmp_id"], vector["expected"]["cmp_id"]);
    assert_eq!(decoded["version"], 2);
    for field in [
        "cmp_id",
        "cmp_version",
        "consent_language",
        "vendor_list_version",
        "policy_version",
        "purposes_consent",
        "purposes_li_transparency",
        "special_feature_opt_ins",
        "vendor_consents",
        "vendor_legitimate_interests",
        "publisher_cc",
    ] {
        assert!(decoded.get(field).is_some(), "{field} in {decoded}");
    }

    let usp: Value =
        serde_json::from_slice(&sightline(&["consent", "decode", "1YNN", "--json"]).stdout)
            .unwrap();
    assert_eq!(usp["kind"], "usp");
    let bad = sightline(&["consent", "decode", "1YNX"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("position 3"));
}

#[test]
fn attribution_over_imported_paths() {
    let temp = common::temp_dir("files");
    let csv = temp.path().join("paths.csv");
    std::fs::write(
        &csv,
        "path,total_conversions,total_conversion_value,total_null\n\
         Organic Search > Email > Direct,12,1340.5,40\nPaid Search>Direct,8,720,55\nEmail,9,880,21\n",
    )
    .unwrap();
    let output = sightline(&["attribution", "paths", csv.to_str().unwrap(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    for model in [
        "first_touch",
        "last_touch",
        "linear",
        "time_decay",
        "position_based",
        "markov",
        "shapley",
    ] {
        let credit: f64 = report["models"][model]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((credit - 29.0).abs() < 1e-6, "{model} credits {credit}");
        let value: f64 = report["models"][format!("{model}_value")]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!(
            (value - 2940.5).abs() < 1e-6,
            "{model}_value credits {value}"
        );
    }
    assert_eq!(report["models"]["first_touch"]["Email"], 9.0);
    assert!(report["variance"]["Direct"].is_object());

    std::fs::write(
        &csv,
        "path,total_conversions,total_conversion_value,total_null\nEmail,many,1,1\n",
    )
    .unwrap();
    let bad = sightline(&["attribution", "paths", csv.to_str().unwrap(), "--json"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Precision, recall and F1 of LINKS.csv against FEBRL's truth (same number in rec_id).
fn score(links: &PathBuf, true_links: usize) -> (f64, f64, f64) {
    let text = std::fs::read_to_string(links).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("left_id,right_id,match_probability"));
    let number = |id: &str| id.split('-').nth(1).unwrap().to_string();
    let mut found = HashSet::new();
    let mut correct = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let probability: f64 = fields[2].parse().unwrap();
        assert!(probability >= 0.5);
        if found.insert((fields[0].to_string(), fields[1].to_string()))
            && number(fields[0]) == number(fields[1])
        {
            correct += 1;
        }
    }
    let precision = correct as f64 / found.len() as f64;
    let recall = correct as f64 / true_links as f64;
    (
        precision,
        recall,
        2.0 * precision * recall / (precision + recall),
    )
}

#[test]
fn link_dedupe_and_pair_on_febrl() {
    let temp = common::temp_dir("files");
    let out = temp.path().join("dedupe.csv");
    let dataset1 = febrl("dataset1.csv");
    let args = [
        "link",
        "dedupe",
        dataset1.to_str().unwrap(),
        "--id-column",
        "rec_id",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let output = sightline(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["left_records"], 1000);
    let (precision, recall, f1) = score(&out, 500);
    assert!(
        f1 >= 0.99,
        "dataset1 precision {precision} recall {recall} F1 {f1}"
    );

    let temp = common::temp_dir("files");
    let out = temp.path().join("pair.csv");
    let (a, b) = (febrl("dataset4a.csv"), febrl("dataset4b.csv"));
    let output = sightline(&[
        "link",
        "pair",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--id-column",
        "rec_id",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("comparisons"),
        "blocking counts are reported"
    );
    let (precision, recall, f1) = score(&out, 5000);
    assert!(
        f1 >= 0.99,
        "dataset4 precision {precision} recall {recall} F1 {f1}"
    );

    let missing = sightline(&[
        "link",
        "dedupe",
        dataset1.to_str().unwrap(),
        "--id-column",
        "nope",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("rec_id"),
        "names the columns found"
    );
}

#[test]
fn link_explain_shows_each_links_waterfall_in_text_and_json() {
    let temp = common::temp_dir("files");
    let out = temp.path().join("explain.csv");
    let dataset1 = febrl("dataset1.csv");
    let base = [
        "link",
        "dedupe",
        dataset1.to_str().unwrap(),
        "--id-column",
        "rec_id",
        "--out",
        out.to_str().unwrap(),
        "--threshold",
        "0.9",
        "--explain",
    ];
    let json = sightline(&[&base[..], &["--json"]].concat());
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let summary: Value = serde_json::from_slice(&json.stdout).unwrap();
    let explanations = summary["explanations"].as_array().unwrap();
    assert_eq!(
        explanations.len() as u64,
        summary["links"].as_u64().unwrap()
    );
    for explanation in explanations {
        let fields = explanation["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 10, "{explanation}");
        let last = fields.last().unwrap()["cumulative_weight"]
            .as_f64()
            .unwrap();
        let weight = explanation["match_weight"].as_f64().unwrap();
        assert!((last - weight).abs() < 1e-9, "{explanation}");
        assert!(explanation["match_probability"].as_f64().unwrap() >= 0.9);
        assert!(fields
            .iter()
            .all(|f| f["label"].is_string() && f["weight"].is_number()));
    }
    let text = sightline(&base);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    let first = &explanations[0];
    assert!(
        text.contains(&format!(
            "{} <-> {}",
            first["left_id"].as_str().unwrap(),
            first["right_id"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains("surname") && text.contains("match probability"),
        "{text}"
    );
}
