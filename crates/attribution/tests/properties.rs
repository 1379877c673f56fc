//! Properties that hold for every input.

mod common;

use common::{assert_close, brute_force_shapley};
use proptest::prelude::*;
use sightline_attribution::models::{
    first_touch, last_non_direct, last_touch, linear, markov, position_based, shapley, time_decay,
    Credit, PositionWeights, ShapleyVariant,
};
use sightline_attribution::{paths_report, read_paths_csv, AgeUnit, Path, PathSet, PathsOptions};

const CHANNELS: [&str; 6] = [
    "Direct",
    "Email",
    "Organic Search",
    "Paid Search",
    "Referral",
    "Display",
];

/// (touches, conversions, value, nulls); value only where there are conversions.
fn raw_path() -> impl Strategy<Value = (Vec<usize>, u32, f64, u32)> {
    (
        prop::collection::vec(0..CHANNELS.len(), 1..7),
        0u32..5,
        0.0f64..500.0,
        0u32..5,
    )
        .prop_map(|(touches, conversions, value, nulls)| {
            let value = if conversions > 0 { value } else { 0.0 };
            (touches, conversions, value, nulls)
        })
}

fn build(raw: &[(Vec<usize>, u32, f64, u32)]) -> PathSet {
    let mut set = PathSet::new(AgeUnit::Steps);
    for (touches, conversions, value, nulls) in raw {
        let touches = touches.iter().map(|&t| set.intern(CHANNELS[t])).collect();
        set.push(Path {
            touches,
            ages: Vec::new(),
            conversions: f64::from(*conversions),
            value: *value,
            nulls: f64::from(*nulls),
        })
        .unwrap();
    }
    set
}

fn all_models(set: &PathSet) -> Vec<(&'static str, Credit)> {
    let mut credits = vec![
        ("first_touch", first_touch(set)),
        ("last_touch", last_touch(set)),
        ("last_non_direct", last_non_direct(set)),
        ("linear", linear(set)),
        ("time_decay", time_decay(set, 1.5).unwrap()),
        (
            "position_based",
            position_based(set, PositionWeights::default()).unwrap(),
        ),
        ("shapley", shapley(set, ShapleyVariant::Simplified).credit),
        (
            "shapley_ordered",
            shapley(set, ShapleyVariant::Ordered).credit,
        ),
    ];
    for order in 1..=4 {
        credits.push(("markov", markov(set, order).unwrap().credit));
    }
    credits
}

proptest! {
    #[test]
    fn credits_sum_to_totals(raw in prop::collection::vec(raw_path(), 1..25)) {
        let set = build(&raw);
        let (conversions, value) = (set.total_conversions(), set.total_value());
        for (name, credit) in all_models(&set) {
            prop_assert!(credit.conversions.iter().chain(&credit.value).all(|c| c.is_finite() && *c >= -1e-9), "{}", name);
            let sum: f64 = credit.conversions.iter().sum();
            prop_assert!((sum - conversions).abs() <= 1e-9 * conversions.max(1.0), "{}: {} vs {}", name, sum, conversions);
            let sum: f64 = credit.value.iter().sum();
            prop_assert!((sum - value).abs() <= 1e-9 * value.max(1.0), "{} value: {} vs {}", name, sum, value);
        }
    }

    #[test]
    fn removal_effects_are_probabilities(raw in prop::collection::vec(raw_path(), 1..25), order in 1usize..=4) {
        let result = markov(&build(&raw), order).unwrap();
        prop_assert!((0.0..=1.0).contains(&result.conversion_probability));
        for effect in result.removal_effects.iter().chain(&result.value_removal_effects) {
            prop_assert!((0.0..=1.0).contains(effect), "{}", effect);
        }
    }

    #[test]
    fn symmetric_channels_get_equal_shapley_credit(raw in prop::collection::vec(raw_path(), 1..15)) {
        // Add every path again with channels 1 and 2 swapped: the game is then
        // symmetric in them.
        let swap = |t: usize| match t { 1 => 2, 2 => 1, other => other };
        let mut both = raw.clone();
        both.extend(raw.iter().map(|(touches, c, v, n)| (touches.iter().map(|&t| swap(t)).collect(), *c, *v, *n)));
        let set = build(&both);
        let credit = shapley(&set, ShapleyVariant::Simplified).credit;
        let id = |name: &str| set.labels().iter().position(|l| l == name);
        if let (Some(a), Some(b)) = (id(CHANNELS[1]), id(CHANNELS[2])) {
            prop_assert!((credit.conversions[a] - credit.conversions[b]).abs() < 1e-9);
            prop_assert!((credit.value[a] - credit.value[b]).abs() < 1e-9);
        }
    }

    #[test]
    fn shapley_matches_the_textbook_formula(raw in prop::collection::vec(raw_path(), 1..20)) {
        let set = build(&raw);
        let credit = shapley(&set, ShapleyVariant::Simplified).credit;
        for (closed, brute) in credit.conversions.iter().zip(brute_force_shapley(&set)) {
            assert_close(*closed, brute, 1e-9, "Shapley");
        }
    }

    #[test]
    fn csv_parser_never_panics(text in ".{0,400}") {
        let _ = read_paths_csv(text.as_bytes());
        let _ = paths_report(text.as_bytes(), &PathsOptions::default());
    }

    #[test]
    fn csv_parser_never_panics_on_csv_like_input(
        rows in prop::collection::vec("[A-Za-z >\",.0-9-]{0,30}(,[0-9.e-]{0,6}){0,4}", 0..12)
    ) {
        let text = format!("path,total_conversions,total_conversion_value,total_null\n{}", rows.join("\n"));
        let _ = paths_report(text.as_bytes(), &PathsOptions::default());
    }

    #[test]
    fn csv_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = read_paths_csv(bytes.as_slice());
    }
}
