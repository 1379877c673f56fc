//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test crate uses a different subset

use sightline_attribution::{read_paths_csv, PathSet};

/// Parses a CSV literal (header added) into a path set.
pub fn paths(rows: &str) -> PathSet {
    let csv = format!("path,total_conversions,total_conversion_value,total_null\n{rows}");
    read_paths_csv(csv.as_bytes()).expect("test CSV is valid")
}

/// Credit of `label`, looked up by name.
pub fn of(paths: &PathSet, values: &[f64], label: &str) -> f64 {
    let index = paths
        .labels()
        .iter()
        .position(|l| l == label)
        .unwrap_or_else(|| panic!("no label {label}"));
    values[index]
}

pub fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} (±{tolerance})"
    );
}

/// The textbook Shapley value `Σ_S |S|!(n−|S|−1)!/n! (v(S∪{i}) − v(S))` of the game
/// `v(S) = conversions of paths whose channel set is a subset of S`, by enumerating
/// all 2^n coalitions.
pub fn brute_force_shapley(paths: &PathSet) -> Vec<f64> {
    let n = paths.labels().len();
    let mut worth = vec![0.0; 1 << n];
    for path in paths.paths() {
        let mask = path.touches.iter().fold(0usize, |m, &t| m | 1 << t);
        worth[mask] += path.conversions;
    }
    // Sum over subsets (zeta transform): worth[S] = Σ_{T ⊆ S} R(T).
    for bit in 0..n {
        for mask in 0..1usize << n {
            if mask & 1 << bit != 0 {
                worth[mask] += worth[mask ^ 1 << bit];
            }
        }
    }
    let factorial = |k: usize| (1..=k).map(|x| x as f64).product::<f64>();
    let weights: Vec<f64> = (0..n)
        .map(|s| factorial(s) * factorial(n - s - 1) / factorial(n))
        .collect();
    (0..n)
        .map(|i| {
            (0..1usize << n)
                .filter(|mask| mask & 1 << i == 0)
                .map(|mask| {
                    weights[mask.count_ones() as usize] * (worth[mask | 1 << i] - worth[mask])
                })
                .sum()
        })
        .collect()
}
