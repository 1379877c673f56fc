//! Markov chain attribution with removal effects, computed exactly.
//!
//! States are `(start)`, the observed tuples of `order` consecutive touches (a path
//! shorter than `order` is one state made of all its touches), `(conversion)` and
//! `(null)`. Each path adds its weight `conversions + nulls` to every transition it
//! makes, `conversions` to its last state's transition into `(conversion)` and `nulls`
//! into `(null)`. Repeats of the same state are collapsed; a self-loop does not change
//! absorption probabilities.
//!
//! The conversion probability from each transient state solves `x = c + Q x` (`Q` the
//! transient-to-transient transition probabilities, `c` the one-step conversion
//! probabilities), done here by Gaussian elimination. Removing a channel turns every
//! state that contains it into `(null)`; its removal effect is
//! `1 - P(conversion | removed) / P(conversion)`. Credit is the removal effects
//! normalised to the total conversions. Value uses the same chain with the reward
//! "expected value per conversion at the last state", so value credit follows removal
//! effects on expected value, as ChannelAttribution does by simulation.

use rustc_hash::FxHashMap;

use super::Credit;
use crate::error::{Error, Result};
use crate::path::PathSet;

/// Largest number of transient states solved densely (memory about 16·n² bytes).
pub const MAX_MARKOV_STATES: usize = 2000;
/// Highest supported order: states are stored as fixed arrays of this many touches.
const MAX_ORDER: usize = 4;
/// Fill for unused slots of a state shorter than the order.
const NO_TOUCH: u32 = u32::MAX;

type StateKey = [u32; MAX_ORDER];

/// Removal effects and the credit they imply.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovResult {
    pub credit: Credit,
    /// Removal effect on the conversion probability, per label, in `[0, 1]`.
    pub removal_effects: Vec<f64>,
    /// Removal effect on the expected conversion value, per label, in `[0, 1]`.
    pub value_removal_effects: Vec<f64>,
    /// Probability that a journey entering the chain converts.
    pub conversion_probability: f64,
    /// Number of transient states (excluding `(start)`).
    pub states: usize,
}

/// The estimated chain: transient states and their outgoing probabilities.
struct Chain {
    /// Touches (labels) making up each transient state.
    states: Vec<StateKey>,
    /// Transitions from `(start)`: (state, probability).
    from_start: Vec<(usize, f64)>,
    /// Per state: transient successors with probabilities.
    transitions: Vec<Vec<(usize, f64)>>,
    /// Per state: one-step probability of `(conversion)`.
    conversion: Vec<f64>,
    /// Per state: expected value collected in one step (P(conversion) · mean value).
    reward: Vec<f64>,
}

impl Chain {
    fn estimate(paths: &PathSet, order: usize) -> Chain {
        let mut ids: FxHashMap<StateKey, usize> = FxHashMap::default();
        let mut states = Vec::new();
        let mut start_counts: FxHashMap<usize, f64> = FxHashMap::default();
        let mut counts: Vec<FxHashMap<usize, f64>> = Vec::new();
        let mut outflow: Vec<f64> = Vec::new();
        let mut converted: Vec<f64> = Vec::new();
        let mut value: Vec<f64> = Vec::new();

        for path in paths.paths() {
            let weight = path.conversions + path.nulls;
            if weight <= 0.0 {
                continue;
            }
            let width = order.min(path.touches.len());
            let mut previous: Option<usize> = None;
            for window in path.touches.windows(width) {
                let mut key = [NO_TOUCH; MAX_ORDER];
                key[..width].copy_from_slice(window);
                let state = *ids.entry(key).or_insert_with(|| {
                    states.push(key);
                    counts.push(FxHashMap::default());
                    outflow.push(0.0);
                    converted.push(0.0);
                    value.push(0.0);
                    states.len() - 1
                });
                match previous {
                    None => *start_counts.entry(state).or_default() += weight,
                    Some(from) if from == state => continue,
                    Some(from) => {
                        *counts[from].entry(state).or_default() += weight;
                        outflow[from] += weight;
                    }
                }
                previous = Some(state);
            }
            let Some(last) = previous else { continue };
            outflow[last] += weight;
            converted[last] += path.conversions;
            value[last] += path.value;
        }

        let start_total: f64 = start_counts.values().sum();
        let mut from_start: Vec<(usize, f64)> = start_counts
            .into_iter()
            .map(|(state, count)| (state, count / start_total))
            .collect();
        from_start.sort_by_key(|&(state, _)| state);
        let transitions = counts
            .into_iter()
            .zip(&outflow)
            .map(|(row, &out)| {
                let mut row: Vec<(usize, f64)> = row
                    .into_iter()
                    .map(|(to, count)| (to, count / out))
                    .collect();
                row.sort_by_key(|&(to, _)| to);
                row
            })
            .collect();
        Chain {
            conversion: converted.iter().zip(&outflow).map(|(c, o)| c / o).collect(),
            reward: value.iter().zip(&outflow).map(|(v, o)| v / o).collect(),
            states,
            from_start,
            transitions,
        }
    }

    /// `I - Q` over the states not `removed`, augmented with the right-hand sides
    /// `c` (one-step conversion) and `r` (one-step value) and, with `identity`, the
    /// identity matrix so that elimination also yields the inverse. Returns the
    /// row-major matrix, its row width and each state's row (`usize::MAX` if removed).
    fn augmented_system(&self, removed: &[bool], identity: bool) -> (Vec<f64>, usize, Vec<usize>) {
        let mut row_of = vec![usize::MAX; self.states.len()];
        let mut n = 0;
        for (state, row) in row_of.iter_mut().enumerate() {
            if !removed[state] {
                *row = n;
                n += 1;
            }
        }
        let width = n + 2 + if identity { n } else { 0 };
        let mut system = vec![0.0; n * width];
        for (state, &i) in row_of.iter().enumerate() {
            if i == usize::MAX {
                continue;
            }
            let row = &mut system[i * width..(i + 1) * width];
            row[i] += 1.0;
            for &(to, probability) in &self.transitions[state] {
                if !removed[to] {
                    row[row_of[to]] -= probability;
                }
            }
            row[n] = self.conversion[state];
            row[n + 1] = self.reward[state];
            if identity {
                row[n + 2 + i] = 1.0;
            }
        }
        solve_in_place(&mut system, n, width);
        (system, width, row_of)
    }

    /// P(conversion) and expected value from `(start)` when the states for which
    /// `removed` is true are absorbing nulls.
    fn absorb_from_start(&self, removed: &[bool]) -> (f64, f64) {
        let (solved, width, row_of) = self.augmented_system(removed, false);
        let n = width - 2;
        self.from_start
            .iter()
            .filter(|&&(state, _)| !removed[state])
            .fold((0.0, 0.0), |(conv, val), &(state, probability)| {
                let row = row_of[state] * width;
                (
                    conv + probability * solved[row + n],
                    val + probability * solved[row + n + 1],
                )
            })
    }

    /// Conversion probability and expected value from `(start)`, and for each state
    /// the same quantities when that single state is removed, from one inversion.
    /// By the strong Markov property the journeys that convert through state `j` are
    /// those that reach `j` (probability `h_j`) and then convert from it (`x_j`), so
    /// removing `j` leaves `P − h_j·x_j`. With `M = (I − Q)⁻¹` and start distribution
    /// `π`, the expected visits to `j` are `(πM)_j = h_j · M_jj`.
    fn single_state_removals(&self) -> ((f64, f64), Vec<(f64, f64)>) {
        let (solved, width, _) = self.augmented_system(&vec![false; self.states.len()], true);
        let n = self.states.len();
        let inverse = |i: usize, j: usize| solved[i * width + n + 2 + j];
        let (conversion, value) = (
            |i: usize| solved[i * width + n],
            |i: usize| solved[i * width + n + 1],
        );
        let full = self.from_start.iter().fold((0.0, 0.0), |(c, v), &(s, p)| {
            (c + p * conversion(s), v + p * value(s))
        });
        let removals = (0..n)
            .map(|j| {
                let visits: f64 = self
                    .from_start
                    .iter()
                    .map(|&(s, p)| p * inverse(s, j))
                    .sum();
                let reach = visits / inverse(j, j);
                (full.0 - reach * conversion(j), full.1 - reach * value(j))
            })
            .collect();
        (full, removals)
    }
}

/// Solves the augmented `n × width` system (`I - Q` and right-hand sides) in place by
/// Gauss–Jordan elimination with partial pivoting; afterwards the columns after the
/// first `n` hold the solutions. `I - Q` of an absorbing chain is non-singular and
/// diagonally dominant by rows, so pivots stay away from zero.
fn solve_in_place(system: &mut [f64], n: usize, width: usize) {
    for col in 0..n {
        let pivot_row = (col..n)
            .max_by(|&a, &b| {
                system[a * width + col]
                    .abs()
                    .total_cmp(&system[b * width + col].abs())
            })
            .unwrap_or(col);
        if pivot_row != col {
            for k in 0..width {
                system.swap(col * width + k, pivot_row * width + k);
            }
        }
        let pivot = system[col * width + col];
        if pivot == 0.0 {
            continue;
        }
        for k in col..width {
            system[col * width + k] /= pivot;
        }
        let (before, rest) = system.split_at_mut(col * width);
        let (pivot_row, after) = rest.split_at_mut(width);
        for row in before
            .chunks_exact_mut(width)
            .chain(after.chunks_exact_mut(width))
        {
            let factor = row[col];
            if factor != 0.0 {
                for k in col..width {
                    row[k] -= factor * pivot_row[k];
                }
            }
        }
    }
}

/// Markov chain attribution of `order` 1 to 4.
pub fn markov(paths: &PathSet, order: usize) -> Result<MarkovResult> {
    if !(1..=MAX_ORDER).contains(&order) {
        return Err(Error::InvalidOption {
            option: "markov_order",
            message: format!("got {order}; give an order from 1 to {MAX_ORDER}"),
        });
    }
    let chain = Chain::estimate(paths, order);
    if chain.states.len() > MAX_MARKOV_STATES {
        return Err(Error::TooManyMarkovStates {
            order,
            states: chain.states.len(),
            limit: MAX_MARKOV_STATES,
        });
    }
    let labels = paths.labels().len();
    // Without each label: P(conversion) and expected value from `(start)`.
    let ((conversion_probability, expected_value), without) = if order == 1 {
        // One state per label: all removals follow from a single inversion.
        let (full, by_state) = chain.single_state_removals();
        let mut without = vec![full; labels];
        for (key, removal) in chain.states.iter().zip(by_state) {
            without[key[0] as usize] = removal;
        }
        (full, without)
    } else {
        let full = chain.absorb_from_start(&vec![false; chain.states.len()]);
        let without = (0..labels as u32)
            .map(|label| {
                let removed: Vec<bool> = chain
                    .states
                    .iter()
                    .map(|key| key.contains(&label))
                    .collect();
                chain.absorb_from_start(&removed)
            })
            .collect();
        (full, without)
    };

    let effect = |full: f64, removed: f64| {
        if full > 0.0 {
            (1.0 - removed / full).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let removal_effects: Vec<f64> = without
        .iter()
        .map(|&(conv, _)| effect(conversion_probability, conv))
        .collect();
    let value_removal_effects: Vec<f64> = without
        .iter()
        .map(|&(_, val)| effect(expected_value, val))
        .collect();

    let normalise = |effects: &[f64], total: f64| -> Vec<f64> {
        let sum: f64 = effects.iter().sum();
        effects
            .iter()
            .map(|e| if sum > 0.0 { e / sum * total } else { 0.0 })
            .collect()
    };
    Ok(MarkovResult {
        credit: Credit {
            conversions: normalise(&removal_effects, paths.total_conversions()),
            value: normalise(&value_removal_effects, paths.total_value()),
        },
        removal_effects,
        value_removal_effects,
        conversion_probability,
        states: chain.states.len(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::path::{AgeUnit, Path};

    proptest! {
        /// The one-inversion shortcut used for order 1 agrees with solving the chain
        /// with each state removed.
        #[test]
        fn single_inversion_matches_removal_solves(
            raw in prop::collection::vec(
                (prop::collection::vec(0u32..6, 1..7), 0u32..4, 0.0f64..100.0, 0u32..4),
                1..30,
            )
        ) {
            let mut paths = PathSet::new(AgeUnit::Steps);
            for label in ["a", "b", "c", "d", "e", "f"] {
                paths.intern(label);
            }
            for (touches, conversions, value, nulls) in raw {
                let value = if conversions > 0 { value } else { 0.0 };
                paths
                    .push(Path {
                        touches,
                        ages: Vec::new(),
                        conversions: f64::from(conversions),
                        value,
                        nulls: f64::from(nulls),
                    })
                    .unwrap();
            }
            let chain = Chain::estimate(&paths, 1);
            let (full, removals) = chain.single_state_removals();
            let direct_full = chain.absorb_from_start(&vec![false; chain.states.len()]);
            prop_assert!((full.0 - direct_full.0).abs() < 1e-9);
            prop_assert!((full.1 - direct_full.1).abs() < 1e-7);
            for (state, shortcut) in removals.iter().enumerate() {
                let removed: Vec<bool> = (0..chain.states.len()).map(|s| s == state).collect();
                let solved = chain.absorb_from_start(&removed);
                prop_assert!((shortcut.0 - solved.0).abs() < 1e-9, "{:?} vs {:?}", shortcut, solved);
                prop_assert!((shortcut.1 - solved.1).abs() < 1e-7, "{:?} vs {:?}", shortcut, solved);
            }
        }
    }
}
