//! Every model on small examples computed by hand (arithmetic in the comments).

mod common;

use common::{assert_close, brute_force_shapley, of, paths};
use sightline_attribution::models::{
    first_touch, last_non_direct, last_touch, linear, markov, position_based, shapley, time_decay,
    PositionWeights, ShapleyVariant,
};
use sightline_attribution::Error;

const EPS: f64 = 1e-12;

/// 1. `A > B > C`: 2 conversions worth 100;
/// 2. `B > A`: 1 conversion worth 30, 1 null;
/// 3. `C`: 2 nulls.
const THREE_PATHS: &str = "A > B > C,2,100,0\nB > A,1,30,1\nC,0,0,2\n";

#[test]
fn first_and_last_touch() {
    let set = paths(THREE_PATHS);
    let first = first_touch(&set);
    // First: path 1 → A (2, 100); path 2 → B (1, 30).
    assert_eq!(of(&set, &first.conversions, "A"), 2.0);
    assert_eq!(of(&set, &first.conversions, "B"), 1.0);
    assert_eq!(of(&set, &first.conversions, "C"), 0.0);
    assert_eq!(of(&set, &first.value, "A"), 100.0);
    assert_eq!(of(&set, &first.value, "B"), 30.0);
    let last = last_touch(&set);
    // Last: path 1 → C (2, 100); path 2 → A (1, 30).
    assert_eq!(of(&set, &last.conversions, "C"), 2.0);
    assert_eq!(of(&set, &last.conversions, "A"), 1.0);
    assert_eq!(of(&set, &last.value, "C"), 100.0);
}

#[test]
fn last_non_direct_skips_direct_unless_only_direct() {
    // `Email > Direct` (3) → Email; `Direct > Direct` (1) → Direct;
    // `Direct > Paid Search > (direct)` (2) → Paid Search.
    let set = paths(
        "Email > Direct,3,0,0\nDirect > Direct,1,0,0\nDirect > Paid Search > (direct),2,0,0\n",
    );
    let credit = last_non_direct(&set);
    assert_eq!(of(&set, &credit.conversions, "Email"), 3.0);
    assert_eq!(of(&set, &credit.conversions, "Direct"), 1.0);
    assert_eq!(of(&set, &credit.conversions, "Paid Search"), 2.0);
    assert_eq!(of(&set, &credit.conversions, "(direct)"), 0.0);
}

#[test]
fn linear_splits_per_touch() {
    let set = paths(THREE_PATHS);
    let credit = linear(&set);
    // Path 1: 2/3 each to A, B, C; path 2: 1/2 each to B, A.
    // A = 2/3 + 1/2 = 7/6, B = 7/6, C = 2/3; value A = 100/3 + 15.
    assert_close(of(&set, &credit.conversions, "A"), 7.0 / 6.0, EPS, "A");
    assert_close(of(&set, &credit.conversions, "B"), 7.0 / 6.0, EPS, "B");
    assert_close(of(&set, &credit.conversions, "C"), 2.0 / 3.0, EPS, "C");
    assert_close(
        of(&set, &credit.value, "A"),
        100.0 / 3.0 + 15.0,
        EPS,
        "A value",
    );
    // A repeated channel gets a share per touch: `A > A > B` (3) → A 2, B 1.
    let repeated = paths("A > A > B,3,0,0\n");
    let credit = linear(&repeated);
    assert_close(of(&repeated, &credit.conversions, "A"), 2.0, EPS, "A");
}

#[test]
fn time_decay_halves_per_step() {
    let set = paths(THREE_PATHS);
    let credit = time_decay(&set, 1.0).unwrap();
    // Path 1, ages 2, 1, 0 steps → weights 1/4, 1/2, 1 (sum 7/4):
    //   A 2·(1/4)/(7/4) = 2/7, B 4/7, C 8/7.
    // Path 2, ages 1, 0 → 1/2, 1 (sum 3/2): B 1/3, A 2/3.
    // A = 2/7 + 2/3 = 20/21, B = 4/7 + 1/3 = 19/21, C = 24/21.
    assert_close(of(&set, &credit.conversions, "A"), 20.0 / 21.0, EPS, "A");
    assert_close(of(&set, &credit.conversions, "B"), 19.0 / 21.0, EPS, "B");
    assert_close(of(&set, &credit.conversions, "C"), 24.0 / 21.0, EPS, "C");
    // Half-life 2 steps on path 1: weights 2^-1, 2^-0.5, 1.
    let long = time_decay(&paths("A > B > C,1,0,0\n"), 2.0).unwrap();
    let total = 0.5 + 0.5f64.sqrt() + 1.0;
    assert_close(long.conversions[0], 0.5 / total, EPS, "A, half-life 2");
    assert!(matches!(
        time_decay(&set, 0.0),
        Err(Error::InvalidOption { .. })
    ));
}

#[test]
fn position_based_40_20_40() {
    let set = paths(THREE_PATHS);
    let credit = position_based(&set, PositionWeights::default()).unwrap();
    // Path 1 (3 touches): A 0.4·2 = 0.8, B 0.2·2 = 0.4, C 0.8.
    // Path 2 (2 touches): 0.4:0.4 → B 0.5, A 0.5.  A 1.3, B 0.9, C 0.8.
    assert_close(of(&set, &credit.conversions, "A"), 1.3, EPS, "A");
    assert_close(of(&set, &credit.conversions, "B"), 0.9, EPS, "B");
    assert_close(of(&set, &credit.conversions, "C"), 0.8, EPS, "C");
    // 30/40/30 on `A > B > C > D` (1): A 0.3, D 0.3, and B and C share 0.4.
    let four = paths("A > B > C > D,1,0,0\n");
    let weights = PositionWeights {
        first: 0.3,
        last: 0.3,
    };
    let credit = position_based(&four, weights).unwrap();
    assert_close(credit.conversions[1], 0.2, EPS, "B");
    assert_close(credit.conversions[3], 0.3, EPS, "D");
    let bad = PositionWeights {
        first: 0.8,
        last: 0.4,
    };
    assert!(matches!(
        position_based(&four, bad),
        Err(Error::InvalidOption { .. })
    ));
}

/// Paths `a > b` (3 conv, 2 null), `b` (1, 5), `a > c > b` (2, 1), `c` (0, 4).
/// Weights (conv + null): 5, 6, 3, 4; total 18.
/// start → a 8/18, b 6/18, c 4/18; a → b 5/8, a → c 3/8; c → b 3/7, c → null 4/7;
/// b → conversion 6/14 = 3/7.
/// x_b = 3/7, x_c = 9/49, x_a = 5/8·3/7 + 3/8·9/49 = 33/98;
/// P = 4/9·33/98 + 1/3·3/7 + 2/9·9/49 = 294/882 = 1/3.
/// Without a: P = 1/7 + 2/49 = 162/882 → RE_a = 1 − 162/294 = 22/49.
/// Without b: P = 0 → RE_b = 1.
/// Without c: x_a = 15/56, P = 4/9·15/56 + 1/7 = 11/42 → RE_c = 1 − 33/42 = 3/14.
/// Sum 163/98; credit of 6 conversions: a 264/163, b 588/163, c 126/163.
/// Every conversion has value 10, so value credit is ten times conversion credit.
const MARKOV_EXAMPLE: &str = "a > b,3,30,2\nb,1,10,5\na > c > b,2,20,1\nc,0,0,4\n";

#[test]
fn markov_order_1_exact() {
    let set = paths(MARKOV_EXAMPLE);
    let result = markov(&set, 1).unwrap();
    assert_close(
        result.conversion_probability,
        1.0 / 3.0,
        EPS,
        "P(conversion)",
    );
    assert_close(
        of(&set, &result.removal_effects, "a"),
        22.0 / 49.0,
        EPS,
        "RE a",
    );
    assert_close(of(&set, &result.removal_effects, "b"), 1.0, EPS, "RE b");
    assert_close(
        of(&set, &result.removal_effects, "c"),
        3.0 / 14.0,
        EPS,
        "RE c",
    );
    assert_close(
        of(&set, &result.credit.conversions, "a"),
        264.0 / 163.0,
        1e-9,
        "a",
    );
    assert_close(
        of(&set, &result.credit.conversions, "b"),
        588.0 / 163.0,
        1e-9,
        "b",
    );
    assert_close(
        of(&set, &result.credit.conversions, "c"),
        126.0 / 163.0,
        1e-9,
        "c",
    );
    assert_close(
        of(&set, &result.credit.value, "c"),
        1260.0 / 163.0,
        1e-9,
        "c value",
    );
    assert_eq!(result.states, 3);
}

#[test]
fn markov_self_loops_do_not_change_the_result() {
    // Repeating a touch only adds a self-loop, which absorption ignores.
    let plain = markov(&paths(MARKOV_EXAMPLE), 1).unwrap();
    let repeated = markov(
        &paths("a > a > b,3,30,2\nb > b,1,10,5\na > c > c > b,2,20,1\nc,0,0,4\n"),
        1,
    )
    .unwrap();
    for (x, y) in plain.removal_effects.iter().zip(&repeated.removal_effects) {
        assert_close(*x, *y, EPS, "removal effect");
    }
}

#[test]
fn markov_order_2_states_are_pairs() {
    // `a > b > c` (1 conv), `a > b` (1 null), `c` (1 null). Order 2 states:
    // (a,b), (b,c), and (c) for the path shorter than the order.
    // start → (a,b) 2/3, (c) 1/3; (a,b) → (b,c) 1/2, null 1/2; (b,c) → conversion.
    // P = 2/3 · 1/2 = 1/3. Removing c removes (b,c) and (c): P = 0, RE 1; the same
    // for a and b, so the one conversion is split in thirds.
    // Order 1 differs: start → a 2/3, c 1/3; a → b; b → c 1/2, null 1/2;
    // c → conversion 1/2, null 1/2. P = 2/3 · 1/2 · 1/2 + 1/3 · 1/2 = 1/3.
    // Removing c leaves nothing (RE 1); removing a leaves start → c: P = 1/6, RE 1/2.
    let set = paths("a > b > c,1,0,0\na > b,0,0,1\nc,0,0,1\n");
    let order_2 = markov(&set, 2).unwrap();
    assert_eq!(order_2.states, 3);
    assert_close(order_2.conversion_probability, 1.0 / 3.0, EPS, "P order 2");
    for label in ["a", "b", "c"] {
        assert_close(
            of(&set, &order_2.credit.conversions, label),
            1.0 / 3.0,
            EPS,
            label,
        );
    }
    let order_1 = markov(&set, 1).unwrap();
    assert_close(
        of(&set, &order_1.removal_effects, "a"),
        0.5,
        EPS,
        "RE a order 1",
    );
    assert_close(
        of(&set, &order_1.removal_effects, "c"),
        1.0,
        EPS,
        "RE c order 1",
    );
}

#[test]
fn markov_rejects_unsupported_orders() {
    let set = paths(MARKOV_EXAMPLE);
    assert!(matches!(markov(&set, 0), Err(Error::InvalidOption { .. })));
    assert!(matches!(markov(&set, 5), Err(Error::InvalidOption { .. })));
    assert!(markov(&set, 4).is_ok());
}

#[test]
fn markov_without_conversions_credits_nothing() {
    let set = paths("a > b,0,0,3\n");
    let result = markov(&set, 1).unwrap();
    assert_eq!(result.credit.conversions, vec![0.0, 0.0]);
    assert_eq!(result.removal_effects, vec![0.0, 0.0]);
}

#[test]
fn shapley_simplified_splits_each_channel_set_equally() {
    // `A > A > B` (3): set {A, B} → 1.5 each (linear would give A 2, B 1).
    // `B > C` (2): {B, C} → 1 each.  `A` (1): {A} → 1.
    // A 2.5, B 2.5, C 1.
    let set = paths("A > A > B,3,60,0\nB > C,2,20,4\nA,1,5,0\n");
    let result = shapley(&set, ShapleyVariant::Simplified);
    assert_close(of(&set, &result.credit.conversions, "A"), 2.5, EPS, "A");
    assert_close(of(&set, &result.credit.conversions, "B"), 2.5, EPS, "B");
    assert_close(of(&set, &result.credit.conversions, "C"), 1.0, EPS, "C");
    assert_close(of(&set, &result.credit.value, "A"), 35.0, EPS, "A value");
    assert!(result.conversions_by_position.is_empty());
    // Same numbers from the textbook formula over all coalitions.
    for (closed, brute) in result
        .credit
        .conversions
        .iter()
        .zip(brute_force_shapley(&set))
    {
        assert_close(*closed, brute, 1e-9, "against enumeration");
    }
}

#[test]
fn shapley_ordered_splits_by_first_position() {
    // `A > B` (2): A first 1, B second 1.  `B > A > C` (3): B first 1, A second 1,
    // C third 1.  Totals equal the simplified value: A 2, B 2, C 1.
    let set = paths("A > B,2,0,0\nB > A > C,3,0,0\n");
    let result = shapley(&set, ShapleyVariant::Ordered);
    let positions = |label: &str| {
        let i = set.labels().iter().position(|l| l == label).unwrap();
        result.conversions_by_position[i].clone()
    };
    assert_eq!(positions("A"), vec![1.0, 1.0]);
    assert_eq!(positions("B"), vec![1.0, 1.0]);
    assert_eq!(positions("C"), vec![0.0, 0.0, 1.0]);
    let simplified = shapley(&set, ShapleyVariant::Simplified);
    assert_eq!(result.credit, simplified.credit);
}

#[test]
fn shapley_is_exact_for_16_channels() {
    // Sixteen channels, overlapping paths; the closed form must match enumeration of
    // all 65,536 coalitions.
    let rows: String = (0..16)
        .map(|i| {
            format!(
                "C{i} > C{} > C{},{},0,1\n",
                (i + 1) % 16,
                (i * 7 + 3) % 16,
                i % 4 + 1
            )
        })
        .collect::<String>()
        + "C0 > C5 > C10 > C15,4,0,0\n";
    let set = paths(&rows);
    assert_eq!(set.labels().len(), 16);
    let result = shapley(&set, ShapleyVariant::Simplified);
    for (closed, brute) in result
        .credit
        .conversions
        .iter()
        .zip(brute_force_shapley(&set))
    {
        assert_close(*closed, brute, 1e-9, "16-channel Shapley");
    }
}
