//! Shapley value attribution after Zhao, Mahboobi & Bagheri (2018).
//!
//! Players are labels (channels). `R(T)` is the conversions of the paths whose set of
//! distinct channels is exactly `T`, and the worth of a coalition is everything its
//! members can reach on their own: `v(S) = Σ_{T ⊆ S} R(T)`. The textbook value
//! `φ_i = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · (v(S ∪ {i}) − v(S))` of this game reduces
//! (each `R(T)` is a Harsanyi dividend of `v`) to
//! `φ_i = Σ_{T ∋ i} R(T) / |T|`, which is exact and costs one pass over the paths, so
//! any number of channels is handled exactly. Non-converting paths add nothing to `v`.
//!
//! The ordered variant (Zhao et al.) keeps each channel's total and splits
//! it by the position at which the channel first appears in the path:
//! `φ_i^(j) = Σ_{T : i is the j-th distinct channel} R(T) / |T|`.

use super::Credit;
use crate::error::{Error, Result};
use crate::path::PathSet;

/// Which Shapley value to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShapleyVariant {
    /// Channel sets only.
    #[default]
    Simplified,
    /// Channel sets plus the split of each channel's value by touch position.
    Ordered,
}

/// Parses `simplified` or `ordered` (the CLI's `--shapley` values).
impl std::str::FromStr for ShapleyVariant {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "simplified" => Ok(Self::Simplified),
            "ordered" => Ok(Self::Ordered),
            other => Err(Error::InvalidOption {
                option: "shapley_variant",
                message: format!("got `{other}`; use `simplified` or `ordered`"),
            }),
        }
    }
}

/// Shapley credit, and for the ordered variant the credit by position.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapleyResult {
    pub credit: Credit,
    /// For [`ShapleyVariant::Ordered`]: per label, conversions credited at the 1st, 2nd,
    /// … distinct position of the paths. Empty for the simplified variant.
    pub conversions_by_position: Vec<Vec<f64>>,
}

pub fn shapley(paths: &PathSet, variant: ShapleyVariant) -> ShapleyResult {
    let labels = paths.labels().len();
    let mut credit = Credit::zero(labels);
    let mut by_position = match variant {
        ShapleyVariant::Simplified => Vec::new(),
        ShapleyVariant::Ordered => vec![Vec::new(); labels],
    };
    let mut seen = vec![false; labels];
    let mut distinct = Vec::new();
    for path in paths.paths() {
        if path.conversions == 0.0 && path.value == 0.0 {
            continue;
        }
        distinct.clear();
        for &label in &path.touches {
            if !std::mem::replace(&mut seen[label as usize], true) {
                distinct.push(label);
            }
        }
        let share = 1.0 / distinct.len() as f64;
        for (position, &label) in distinct.iter().enumerate() {
            seen[label as usize] = false;
            credit.add(label, share, path.conversions, path.value);
            if let Some(positions) = by_position.get_mut(label as usize) {
                if positions.len() <= position {
                    positions.resize(position + 1, 0.0);
                }
                positions[position] += share * path.conversions;
            }
        }
    }
    ShapleyResult {
        credit,
        conversions_by_position: by_position,
    }
}
