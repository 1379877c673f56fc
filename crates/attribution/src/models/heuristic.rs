//! Rule-based models: each path's conversions and value are split over its touches by
//! fixed weights.

use super::Credit;
use crate::error::{Error, Result};
use crate::path::{Path, PathSet};

/// Splits every path by `weights(path, touch_weights)`, which fills one weight per
/// touch; the weights of a path are normalised to sum to one.
fn split_by_weights(paths: &PathSet, mut weights: impl FnMut(&Path, &mut Vec<f64>)) -> Credit {
    let mut credit = Credit::zero(paths.labels().len());
    let mut touch_weights = Vec::new();
    for path in paths.paths() {
        touch_weights.clear();
        weights(path, &mut touch_weights);
        let total: f64 = touch_weights.iter().sum();
        if total > 0.0 {
            for (&label, &weight) in path.touches.iter().zip(&touch_weights) {
                credit.add(label, weight / total, path.conversions, path.value);
            }
        }
    }
    credit
}

/// All credit to one touch chosen per path.
fn single_touch(paths: &PathSet, pick: impl Fn(&Path) -> u32) -> Credit {
    let mut credit = Credit::zero(paths.labels().len());
    for path in paths.paths() {
        credit.add(pick(path), 1.0, path.conversions, path.value);
    }
    credit
}

pub fn first_touch(paths: &PathSet) -> Credit {
    single_touch(paths, |path| path.touches[0])
}

pub fn last_touch(paths: &PathSet) -> Credit {
    single_touch(paths, |path| path.touches[path.touches.len() - 1])
}

/// Last touch that is not direct traffic; all-direct paths stay with direct.
pub fn last_non_direct(paths: &PathSet) -> Credit {
    single_touch(paths, |path| {
        let last = path.touches[path.touches.len() - 1];
        path.touches
            .iter()
            .rev()
            .copied()
            .find(|&label| !paths.is_direct(label))
            .unwrap_or(last)
    })
}

/// Equal credit per touch; a channel touched twice gets two shares.
pub fn linear(paths: &PathSet) -> Credit {
    split_by_weights(paths, |path, weights| {
        weights.resize(path.touches.len(), 1.0);
    })
}

/// Weight `2^(-age / half_life)`: a touch one half-life before the conversion counts
/// half as much as one at the conversion. `half_life` is in the set's age unit
/// (position steps for CSV paths, days for event paths).
pub fn time_decay(paths: &PathSet, half_life: f64) -> Result<Credit> {
    if !(half_life.is_finite() && half_life > 0.0) {
        return Err(Error::InvalidOption {
            option: "half_life",
            message: format!("got {half_life}; give a positive number"),
        });
    }
    Ok(split_by_weights(paths, |path, weights| {
        weights.extend((0..path.touches.len()).map(|i| (-path.age(i) / half_life).exp2()));
    }))
}

/// Shares of the first and last touch in the position-based (U-shaped) model; the
/// middle touches split the rest equally.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionWeights {
    pub first: f64,
    pub last: f64,
}

impl Default for PositionWeights {
    fn default() -> Self {
        Self {
            first: 0.4,
            last: 0.4,
        }
    }
}

impl PositionWeights {
    fn validate(self) -> Result<Self> {
        let valid = |w: f64| w.is_finite() && w >= 0.0;
        if valid(self.first) && valid(self.last) && self.first + self.last <= 1.0 + 1e-12 {
            Ok(self)
        } else {
            Err(Error::InvalidOption {
                option: "position_weights",
                message: format!(
                    "first {} and last {} must be non-negative and sum to at most 1 \
                     (the middle touches share the rest), e.g. 0.4 and 0.4",
                    self.first, self.last
                ),
            })
        }
    }
}

/// Position-based model. One touch takes everything; two touches split in the ratio
/// first:last (50/50 with the default weights); longer paths give `first` and `last`
/// to the ends and split the rest over the middle touches.
pub fn position_based(paths: &PathSet, weights: PositionWeights) -> Result<Credit> {
    let PositionWeights { first, last } = weights.validate()?;
    Ok(split_by_weights(paths, |path, out| {
        let n = path.touches.len();
        match n {
            1 => out.push(1.0),
            // Both ends zero would leave nothing to split; fall back to equal halves.
            2 if first + last == 0.0 => out.extend([1.0, 1.0]),
            2 => out.extend([first, last]),
            _ => {
                let middle = (1.0 - first - last).max(0.0) / (n - 2) as f64;
                out.push(first);
                out.extend(std::iter::repeat_n(middle, n - 2));
                out.push(last);
            }
        }
    }))
}
