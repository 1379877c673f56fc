//! Agreement with ChannelAttribution 2.2.5 (PyPI), an independent implementation, on
//! the committed data set `tests/data/paths.csv`. The expected numbers and the script
//! that produced them are in `tests/data/` (`python3 tests/data/make_reference.py`).
//!
//! Heuristic models are deterministic and must match to rounding. ChannelAttribution's
//! Markov model estimates removal effects by simulating journeys; it was run with five
//! independent seeds, and the JSON holds their mean and standard deviation. Our values
//! are exact, so they must lie within six standard errors of that mean
//! (`6 · sd / √5`): a fluctuation that large has odds below one in 10⁸, while any
//! modelling difference (another state definition, a different normalisation) moves
//! credits by whole conversions, far outside this band.

use std::path::PathBuf;

use serde_json::Value;
use sightline_attribution::models::{first_touch, last_touch, linear, markov, Credit};
use sightline_attribution::{read_paths_csv, PathSet};

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn load() -> (PathSet, Value) {
    let csv = std::fs::File::open(data_file("paths.csv")).unwrap();
    let expected = std::fs::read_to_string(data_file("channelattribution_expected.json")).unwrap();
    (
        read_paths_csv(csv).unwrap(),
        serde_json::from_str(&expected).unwrap(),
    )
}

fn expected_map<'a>(value: &'a Value, key: &str) -> &'a serde_json::Map<String, Value> {
    value[key]
        .as_object()
        .unwrap_or_else(|| panic!("expected JSON lacks `{key}`"))
}

fn check_heuristic(paths: &PathSet, credit: &Credit, expected: &Value, name: &str) {
    for (values, kind) in [
        (&credit.conversions, "conversions"),
        (&credit.value, "value"),
    ] {
        let reference = expected_map(expected, &format!("{name}_{kind}"));
        assert_eq!(
            reference.len(),
            paths.labels().len(),
            "{name}: channel count"
        );
        for (label, &ours) in paths.labels().iter().zip(values.iter()) {
            let theirs = reference[label].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() <= 1e-6 * theirs.abs().max(1.0),
                "{name} {kind} {label}: ours {ours}, ChannelAttribution {theirs}"
            );
        }
    }
}

#[test]
fn heuristic_models_match_channelattribution() {
    let (paths, expected) = load();
    let heuristic = &expected["heuristic"];
    check_heuristic(&paths, &first_touch(&paths), heuristic, "first_touch");
    check_heuristic(&paths, &last_touch(&paths), heuristic, "last_touch");
    check_heuristic(&paths, &linear(&paths), heuristic, "linear_touch");
}

fn check_markov(order: usize) {
    let (paths, expected) = load();
    let reference = &expected["markov"][format!("order_{order}")];
    let runs = reference["seeds"].as_array().unwrap().len() as f64;
    let result = markov(&paths, order).unwrap();
    for (values, key) in [
        (&result.credit.conversions, "conversions"),
        (&result.credit.value, "value"),
        (&result.removal_effects, "removal_effects"),
    ] {
        let means = expected_map(reference, key);
        let spreads = expected_map(reference, &format!("{key}_sd"));
        for (label, &ours) in paths.labels().iter().zip(values.iter()) {
            let mean = means[label].as_f64().unwrap();
            let tolerance = 6.0 * spreads[label].as_f64().unwrap() / runs.sqrt() + 1e-9;
            assert!(
                (ours - mean).abs() <= tolerance,
                "order {order} {key} {label}: ours {ours}, ChannelAttribution {mean} ± {tolerance}"
            );
        }
    }
}

#[test]
fn markov_order_1_matches_channelattribution() {
    check_markov(1);
}

#[test]
fn markov_order_3_matches_channelattribution() {
    check_markov(3);
}
