//! Attribution models. Each is a pure function from a [`PathSet`](crate::PathSet) to
//! [`Credit`]: conversions and value per label, in label-id order.

mod heuristic;
mod markov;
mod shapley;

pub use heuristic::{
    first_touch, last_non_direct, last_touch, linear, position_based, time_decay, PositionWeights,
};
pub use markov::{markov, MarkovResult, MAX_MARKOV_STATES};
pub use shapley::{shapley, ShapleyResult, ShapleyVariant};

/// Credit per label (indexes match [`PathSet::labels`](crate::PathSet::labels)).
#[derive(Debug, Clone, PartialEq)]
pub struct Credit {
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
}

impl Credit {
    pub(crate) fn zero(labels: usize) -> Self {
        Self {
            conversions: vec![0.0; labels],
            value: vec![0.0; labels],
        }
    }

    /// Gives `share` of a path's conversions and value to `label`.
    pub(crate) fn add(&mut self, label: u32, share: f64, conversions: f64, value: f64) {
        self.conversions[label as usize] += share * conversions;
        self.value[label as usize] += share * value;
    }
}
