//! Accuracy on the FEBRL benchmark data (ids are only used to score, never compared).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use sightline_linkage::{dedupe, pair, Dataset, LinkOptions, LinkResult};

/// F1 reached at the time of writing, minus a small margin: a drop below fails.
const DEDUPE_MIN_F1: f64 = 0.995;
const PAIR_MIN_F1: f64 = 0.995;

/// `SIGHTLINE_FEBRL_DIR`, else the first `shared/data/febrl` found walking up from
/// the crate. Missing data is a failure, not a skip.
fn febrl_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SIGHTLINE_FEBRL_DIR") {
        return PathBuf::from(dir);
    }
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .map(|dir| dir.join("shared/data/febrl"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "FEBRL data not found: set SIGHTLINE_FEBRL_DIR or put shared/data/febrl \
                 in a directory above {}",
                start.display()
            )
        })
}

fn load(name: &str) -> Dataset {
    let path = febrl_dir().join(name);
    let data = Dataset::from_csv_path(&path, "rec_id")
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
    assert!(data.skipped_rows().is_empty(), "{:?}", data.skipped_rows());
    data
}

/// `rec-1070-dup-0` → `1070`.
fn entity(id: &str) -> &str {
    id.split('-').nth(1).expect("FEBRL ids look like rec-N-...")
}

struct Scores {
    precision: f64,
    recall: f64,
    f1: f64,
}

fn score(predicted: &HashSet<(String, String)>, truth: &HashSet<(String, String)>) -> Scores {
    let true_positives = predicted.intersection(truth).count() as f64;
    let precision = true_positives / predicted.len().max(1) as f64;
    let recall = true_positives / truth.len() as f64;
    Scores {
        precision,
        recall,
        f1: 2.0 * precision * recall / (precision + recall).max(f64::MIN_POSITIVE),
    }
}

fn ordered(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

fn predicted_links(result: &LinkResult, symmetric: bool) -> HashSet<(String, String)> {
    result
        .pairs
        .iter()
        .filter(|p| p.match_probability >= 0.5)
        .map(|p| {
            let (l, r) = (result.left_id(p), result.right_id(p));
            if symmetric {
                ordered(l, r)
            } else {
                (l.to_owned(), r.to_owned())
            }
        })
        .collect()
}

#[test]
fn febrl1_deduplication_accuracy() {
    let data = load("dataset1.csv");
    let result = dedupe(&data, &LinkOptions::default()).unwrap();
    let mut truth = HashSet::new();
    for i in 0..data.len() {
        for j in i + 1..data.len() {
            if entity(data.id(i)) == entity(data.id(j)) {
                truth.insert(ordered(data.id(i), data.id(j)));
            }
        }
    }
    assert_eq!(truth.len(), 500);
    let scores = score(&predicted_links(&result, true), &truth);
    println!(
        "FEBRL1 dedupe: precision {:.4} recall {:.4} F1 {:.4} ({} compared pairs, {} EM iterations)",
        scores.precision, scores.recall, scores.f1, result.summary.compared_pairs, result.summary.em.iterations
    );
    assert!(result.summary.em.converged);
    assert!(
        scores.f1 >= DEDUPE_MIN_F1,
        "F1 {:.4} fell below {DEDUPE_MIN_F1}",
        scores.f1
    );
}

#[test]
fn febrl4_linkage_accuracy() {
    febrl4_linkage(&LinkOptions::default(), "EM on m and u");
}

#[test]
fn febrl4_linkage_accuracy_with_u_from_random_sampling_only() {
    let mut opts = LinkOptions::default();
    opts.em.estimate_u = false;
    febrl4_linkage(&opts, "EM on m, u sampled");
}

fn febrl4_linkage(opts: &LinkOptions, label: &str) {
    let (a, b) = (load("dataset4a.csv"), load("dataset4b.csv"));
    let result = pair(&a, &b, opts).unwrap();
    let right_by_entity: HashMap<&str, &String> =
        b.ids().iter().map(|id| (entity(id), id)).collect();
    let truth: HashSet<(String, String)> = a
        .ids()
        .iter()
        .filter_map(|id| {
            right_by_entity
                .get(entity(id))
                .map(|r| (id.clone(), (*r).clone()))
        })
        .collect();
    assert_eq!(truth.len(), 5000);
    let scores = score(&predicted_links(&result, false), &truth);
    println!(
        "FEBRL4 linkage ({label}): precision {:.4} recall {:.4} F1 {:.4} ({} compared pairs, {} EM iterations)",
        scores.precision, scores.recall, scores.f1, result.summary.compared_pairs, result.summary.em.iterations
    );
    assert!(result.summary.em.converged);
    assert!(
        scores.f1 >= PAIR_MIN_F1,
        "F1 {:.4} fell below {PAIR_MIN_F1}",
        scores.f1
    );
}
