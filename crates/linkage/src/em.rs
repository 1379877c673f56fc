//! Expectation–maximisation for the Fellegi–Sunter model.
//!
//! Works on comparison patterns (one level per field) with their counts, so an
//! iteration costs O(distinct patterns), not O(pairs). The null level is treated
//! as missing at random: it contributes a factor 1 to both classes.

use rustc_hash::FxHashMap as HashMap;

use serde::Serialize;

/// Pseudo-count added to every level in the M-step (a flat Dirichlet prior): a
/// level never seen among matches, e.g. a date transposition, gets a small m
/// instead of 0, so one such level cannot veto a pair with an extreme weight.
const PSEUDO_COUNT: f64 = 1.0;

/// Keeps λ away from 0 and 1 so the prior weight stays finite.
const MIN_LAMBDA: f64 = 1e-9;

/// Distinct comparison patterns with how many pairs show each.
#[derive(Debug, Clone, PartialEq)]
pub struct Patterns {
    field_count: usize,
    /// `field_count` levels per pattern, patterns in ascending order.
    levels: Vec<u8>,
    counts: Vec<u64>,
}

impl Patterns {
    /// Groups flat per-pair levels (`field_count` per pair) into patterns.
    pub fn from_levels(levels: &[u8], field_count: usize) -> Self {
        let mut counts: HashMap<&[u8], u64> = HashMap::default();
        for pattern in levels.chunks_exact(field_count) {
            *counts.entry(pattern).or_insert(0) += 1;
        }
        let mut sorted: Vec<(&[u8], u64)> = counts.into_iter().collect();
        // Sorted so floating-point sums, and so results, do not depend on hashing.
        sorted.sort_unstable();
        Self {
            field_count,
            levels: sorted.iter().flat_map(|(p, _)| p.iter().copied()).collect(),
            counts: sorted.iter().map(|(_, c)| *c).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> {
        self.levels
            .chunks_exact(self.field_count)
            .zip(self.counts.iter().map(|&c| c as f64))
    }
}

/// m and u probabilities of one field, indexed by level (index 0, null, unused).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelProbabilities {
    pub m: Vec<f64>,
    pub u: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EmOptions {
    pub max_iterations: usize,
    /// Stop when no parameter moves by more than this between iterations.
    pub tolerance: f64,
    /// Re-estimate u too (otherwise u stays at its starting value).
    pub estimate_u: bool,
}

impl Default for EmOptions {
    fn default() -> Self {
        Self {
            max_iterations: 100,
            tolerance: 1e-6,
            estimate_u: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmOutcome {
    /// Proportion of matches among the patterns' pairs.
    pub lambda: f64,
    pub fields: Vec<LevelProbabilities>,
    pub iterations: usize,
    pub converged: bool,
}

/// Runs EM from the given start until convergence or the iteration cap.
pub fn estimate(
    patterns: &Patterns,
    mut lambda: f64,
    mut fields: Vec<LevelProbabilities>,
    options: &EmOptions,
) -> EmOutcome {
    let mut iterations = 0;
    let mut converged = false;
    while iterations < options.max_iterations && !patterns.is_empty() {
        iterations += 1;
        let mut m_sums: Vec<Vec<f64>> = fields.iter().map(|f| vec![0.0; f.m.len()]).collect();
        let mut u_sums = m_sums.clone();
        let (mut match_total, mut total) = (0.0, 0.0);
        for (pattern, count) in patterns.iter() {
            let posterior = match_posterior(pattern, lambda, &fields);
            let as_match = count * posterior;
            let as_non_match = count - as_match;
            match_total += as_match;
            total += count;
            for (f, &level) in pattern.iter().enumerate() {
                m_sums[f][level as usize] += as_match;
                u_sums[f][level as usize] += as_non_match;
            }
        }
        let new_lambda = (match_total / total).clamp(MIN_LAMBDA, 1.0 - MIN_LAMBDA);
        let mut change = (new_lambda - lambda).abs();
        lambda = new_lambda;
        for (field, (m_sum, u_sum)) in fields.iter_mut().zip(m_sums.iter().zip(&u_sums)) {
            change = change.max(update(&mut field.m, m_sum));
            if options.estimate_u {
                change = change.max(update(&mut field.u, u_sum));
            }
        }
        if change < options.tolerance {
            converged = true;
            break;
        }
    }
    EmOutcome {
        lambda,
        fields,
        iterations,
        converged,
    }
}

/// Posterior probability that a pattern is a match.
fn match_posterior(pattern: &[u8], lambda: f64, fields: &[LevelProbabilities]) -> f64 {
    let (mut m, mut u) = (lambda, 1.0 - lambda);
    for (field, &level) in fields.iter().zip(pattern) {
        if level != 0 {
            m *= field.m[level as usize];
            u *= field.u[level as usize];
        }
    }
    m / (m + u)
}

/// Replaces non-null probabilities by smoothed, normalised sums; returns the
/// largest change.
fn update(probabilities: &mut [f64], sums: &[f64]) -> f64 {
    let non_null: f64 = sums[1..].iter().sum();
    if non_null <= 0.0 {
        return 0.0; // the field is null in every pair: nothing to learn
    }
    let denominator = non_null + PSEUDO_COUNT * (sums.len() - 1) as f64;
    let mut change: f64 = 0.0;
    for (p, &s) in probabilities[1..].iter_mut().zip(&sums[1..]) {
        let new = (s + PSEUDO_COUNT) / denominator;
        change = change.max((new - *p).abs());
        *p = new;
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SplitMix64;

    fn draw(rng: &mut SplitMix64, probabilities: &[f64]) -> u8 {
        let x = rng.next_f64();
        let mut cumulative = 0.0;
        for (level, p) in probabilities.iter().enumerate().skip(1) {
            cumulative += p;
            if x < cumulative {
                return level as u8;
            }
        }
        (probabilities.len() - 1) as u8
    }

    /// Patterns drawn from known m/u, with some nulls, and the truth to compare against.
    fn synthetic(seed: u64, pairs: usize, lambda: f64) -> (Patterns, Vec<LevelProbabilities>) {
        let truth = vec![
            LevelProbabilities {
                m: vec![0.0, 0.85, 0.1, 0.05],
                u: vec![0.0, 0.01, 0.04, 0.95],
            },
            LevelProbabilities {
                m: vec![0.0, 0.9, 0.1],
                u: vec![0.0, 0.05, 0.95],
            },
            LevelProbabilities {
                m: vec![0.0, 0.7, 0.2, 0.1],
                u: vec![0.0, 0.002, 0.018, 0.98],
            },
            LevelProbabilities {
                m: vec![0.0, 0.95, 0.05],
                u: vec![0.0, 0.1, 0.9],
            },
        ];
        let mut rng = SplitMix64::new(seed);
        let mut levels = Vec::with_capacity(pairs * truth.len());
        for _ in 0..pairs {
            let is_match = rng.next_f64() < lambda;
            for field in &truth {
                let level = if rng.next_f64() < 0.05 {
                    0
                } else {
                    draw(&mut rng, if is_match { &field.m } else { &field.u })
                };
                levels.push(level);
            }
        }
        (Patterns::from_levels(&levels, truth.len()), truth)
    }

    fn flat_start(truth: &[LevelProbabilities]) -> Vec<LevelProbabilities> {
        truth
            .iter()
            .map(|f| {
                let n = f.m.len() - 1;
                // m leans to the best levels, u to the worst, without knowing the truth.
                let m: Vec<f64> = (0..=n)
                    .map(|l| if l == 0 { 0.0 } else { (n + 1 - l) as f64 })
                    .collect();
                let u: Vec<f64> = (0..=n).map(|l| l as f64).collect();
                let (sm, su): (f64, f64) = (m.iter().sum(), u.iter().sum());
                LevelProbabilities {
                    m: m.iter().map(|x| x / sm).collect(),
                    u: u.iter().map(|x| x / su).collect(),
                }
            })
            .collect()
    }

    #[test]
    fn recovers_known_m_u_and_lambda() {
        let (patterns, truth) = synthetic(7, 100_000, 0.2);
        let outcome = estimate(&patterns, 0.5, flat_start(&truth), &EmOptions::default());
        assert!(outcome.converged, "{outcome:?}");
        assert!(
            (outcome.lambda - 0.2).abs() < 0.01,
            "lambda {}",
            outcome.lambda
        );
        for (got, want) in outcome.fields.iter().zip(&truth) {
            for level in 1..want.m.len() {
                assert!(
                    (got.m[level] - want.m[level]).abs() < 0.02,
                    "m {got:?} vs {want:?}"
                );
                assert!(
                    (got.u[level] - want.u[level]).abs() < 0.02,
                    "u {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn converges_within_the_cap_and_keeps_probabilities_valid() {
        for seed in 0..5 {
            let (patterns, truth) = synthetic(seed, 20_000, 0.05 + 0.1 * seed as f64);
            let outcome = estimate(&patterns, 0.3, flat_start(&truth), &EmOptions::default());
            assert!(
                outcome.converged && outcome.iterations < 100,
                "seed {seed}: {outcome:?}"
            );
            for field in &outcome.fields {
                for probabilities in [&field.m, &field.u] {
                    let sum: f64 = probabilities[1..].iter().sum();
                    assert!((sum - 1.0).abs() < 1e-6);
                    assert!(probabilities[1..].iter().all(|p| *p > 0.0));
                }
            }
        }
    }

    #[test]
    fn fixed_u_stays_fixed() {
        let (patterns, truth) = synthetic(3, 10_000, 0.1);
        let options = EmOptions {
            estimate_u: false,
            ..EmOptions::default()
        };
        let outcome = estimate(&patterns, 0.3, truth.clone(), &options);
        for (got, want) in outcome.fields.iter().zip(&truth) {
            assert_eq!(got.u, want.u);
        }
    }

    #[test]
    fn patterns_group_and_count_pairs() {
        let patterns = Patterns::from_levels(&[1, 2, 1, 2, 3, 0], 2);
        assert_eq!(patterns.len(), 2);
        let collected: Vec<(Vec<u8>, f64)> =
            patterns.iter().map(|(p, c)| (p.to_vec(), c)).collect();
        assert_eq!(collected, vec![(vec![1, 2], 2.0), (vec![3, 0], 1.0)]);
    }
}
