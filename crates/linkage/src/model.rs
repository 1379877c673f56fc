//! The trained Fellegi–Sunter model: level weights, term frequencies, scoring
//! and explanations.

use rustc_hash::FxHashMap as HashMap;
use std::fmt;

use serde::Serialize;

use crate::compare::{Comparison, EXACT_LEVEL, NULL_LEVEL};
use crate::mapping::FieldSpec;
use crate::Dataset;

/// How often each value of a column occurs, for term-frequency adjustments.
#[derive(Debug, Clone)]
pub(crate) struct TermFrequencies {
    counts: HashMap<String, u32>,
    total: f64,
    /// Σ p(v)²: the chance two random records agree on this column.
    agreement: f64,
}

impl TermFrequencies {
    pub(crate) fn new<'a>(values: impl Iterator<Item = &'a str>) -> Self {
        let mut counts: HashMap<String, u32> = HashMap::default();
        for value in values {
            match counts.get_mut(value) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(value.to_owned(), 1);
                }
            }
        }
        let total = counts.values().map(|&c| c as f64).sum::<f64>().max(1.0);
        let agreement = counts.values().map(|&c| (c as f64 / total).powi(2)).sum();
        Self {
            counts,
            total,
            agreement,
        }
    }

    /// log2 of (average agreement chance / this value's frequency): negative for
    /// common values such as "smith", positive for rare ones. With `m` fixed, the
    /// exact-match Bayes factor becomes m / p(v) instead of m / Σp².
    fn adjustment(&self, value: &str) -> f64 {
        let count = self.counts.get(value).copied().unwrap_or(1).max(1) as f64;
        (self.agreement / (count / self.total)).log2()
    }
}

/// One compared field with its estimated parameters.
#[derive(Debug, Clone)]
pub(crate) struct FieldModel {
    pub(crate) spec: FieldSpec,
    pub(crate) labels: Vec<String>,
    pub(crate) left_column: usize,
    pub(crate) right_column: usize,
    pub(crate) m: Vec<f64>,
    pub(crate) u: Vec<f64>,
    /// u from random sampling, kept for reporting.
    pub(crate) u_sampled: Vec<f64>,
    /// log2(m / u) per level; 0 for the null level.
    pub(crate) weights: Vec<f64>,
    pub(crate) term_frequencies: Option<TermFrequencies>,
}

impl FieldModel {
    pub(crate) fn comparison(&self) -> &Comparison {
        &self.spec.comparison
    }

    pub(crate) fn set_probabilities(&mut self, m: Vec<f64>, u: Vec<f64>) {
        self.weights = m
            .iter()
            .zip(&u)
            .enumerate()
            .map(|(level, (m, u))| {
                if level == NULL_LEVEL as usize {
                    0.0
                } else {
                    (m / u).log2()
                }
            })
            .collect();
        self.m = m;
        self.u = u;
    }

    fn term_frequency_weight(&self, level: u8, left_value: Option<&str>) -> f64 {
        match (&self.term_frequencies, left_value) {
            (Some(tf), Some(value)) if level == EXACT_LEVEL => tf.adjustment(value),
            _ => 0.0,
        }
    }
}

/// A trained model: the prior and per-field level weights.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) fields: Vec<FieldModel>,
    /// Prior probability that a compared pair is a match.
    pub(crate) prior: f64,
}

impl Model {
    pub(crate) fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }

    /// Comparison level of every field for one pair, written into `levels`.
    pub(crate) fn levels(
        fields: &[FieldModel],
        left: &Dataset,
        i: usize,
        right: &Dataset,
        j: usize,
        levels: &mut [u8],
    ) {
        for (field, level) in fields.iter().zip(levels) {
            *level = field.comparison().level(
                left.value(i, field.left_column),
                right.value(j, field.right_column),
            );
        }
    }

    /// The waterfall of one pair: each field's level and weight, the prior and the result.
    pub fn explain(&self, left: &Dataset, i: usize, right: &Dataset, j: usize) -> Explanation {
        let mut levels = vec![0; self.fields.len()];
        Self::levels(&self.fields, left, i, right, j, &mut levels);
        let mut cumulative = self.prior_weight();
        let fields = self
            .fields
            .iter()
            .zip(&levels)
            .map(|(field, &level)| {
                let left_value = left.value(i, field.left_column);
                let level_weight = field.weights[level as usize];
                let term_frequency_weight = field.term_frequency_weight(level, left_value);
                let weight = level_weight + term_frequency_weight;
                cumulative += weight;
                let is_null = level == NULL_LEVEL;
                FieldContribution {
                    column: field.spec.column.clone(),
                    left_value: left_value.map(str::to_owned),
                    right_value: right.value(j, field.right_column).map(str::to_owned),
                    level,
                    label: field.labels[level as usize].clone(),
                    m: (!is_null).then(|| field.m[level as usize]),
                    u: (!is_null).then(|| field.u[level as usize]),
                    level_weight,
                    term_frequency_weight,
                    weight,
                    cumulative_weight: cumulative,
                }
            })
            .collect();
        Explanation {
            left_id: left.id(i).to_owned(),
            right_id: right.id(j).to_owned(),
            prior_probability: self.prior,
            prior_weight: self.prior_weight(),
            fields,
            match_weight: cumulative,
            match_probability: probability(cumulative),
        }
    }
}

/// Scores the pairs of one run. Term-frequency adjustments are looked up once
/// per left record here instead of once per compared pair.
pub(crate) struct Scorer<'a> {
    model: &'a Model,
    /// Per field with term frequencies: its index and the adjustment of every
    /// left record's value (applied only on exact matches).
    adjustments: Vec<(usize, Vec<f64>)>,
}

impl<'a> Scorer<'a> {
    pub(crate) fn new(model: &'a Model, left: &Dataset) -> Self {
        let adjustments = model
            .fields
            .iter()
            .enumerate()
            .filter(|(_, field)| field.term_frequencies.is_some())
            .map(|(f, field)| {
                let per_record = (0..left.len())
                    .map(|i| {
                        field.term_frequency_weight(EXACT_LEVEL, left.value(i, field.left_column))
                    })
                    .collect();
                (f, per_record)
            })
            .collect();
        Self { model, adjustments }
    }

    /// Match weight (log2 odds) of pair `(i, _)` given its levels.
    pub(crate) fn match_weight(&self, levels: &[u8], i: usize) -> f64 {
        let mut weight = self.model.prior_weight();
        for (field, &level) in self.model.fields.iter().zip(levels) {
            weight += field.weights[level as usize];
        }
        for (f, per_record) in &self.adjustments {
            if levels[*f] == EXACT_LEVEL {
                weight += per_record[i];
            }
        }
        weight
    }
}

/// Probability from a log2-odds weight.
pub(crate) fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// One field's step in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldContribution {
    pub column: String,
    pub left_value: Option<String>,
    pub right_value: Option<String>,
    pub level: u8,
    pub label: String,
    /// P(level | match); absent for the null level, which carries no evidence.
    pub m: Option<f64>,
    /// P(level | non-match); absent for the null level.
    pub u: Option<f64>,
    /// log2(m / u).
    pub level_weight: f64,
    /// Term-frequency adjustment for exact matches on common or rare values.
    pub term_frequency_weight: f64,
    pub weight: f64,
    /// Prior plus every field up to and including this one.
    pub cumulative_weight: f64,
}

/// Why a pair scored what it did: prior, per-field weights, final probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub left_id: String,
    pub right_id: String,
    pub prior_probability: f64,
    pub prior_weight: f64,
    pub fields: Vec<FieldContribution>,
    pub match_weight: f64,
    pub match_probability: f64,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} <-> {}", self.left_id, self.right_id)?;
        writeln!(
            f,
            "  {:<16} {:>8} {:>9}   prior probability {:.6}",
            "prior",
            format!("{:+.2}", self.prior_weight),
            format!("{:+.2}", self.prior_weight),
            self.prior_probability
        )?;
        for c in &self.fields {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "∅".to_owned());
            let tf = if c.term_frequency_weight != 0.0 {
                format!(" (tf {:+.2})", c.term_frequency_weight)
            } else {
                String::new()
            };
            writeln!(
                f,
                "  {:<16} {:>8} {:>9}   {} | {} vs {}{tf}",
                c.column,
                format!("{:+.2}", c.weight),
                format!("{:+.2}", c.cumulative_weight),
                c.label,
                show(&c.left_value),
                show(&c.right_value),
            )?;
        }
        write!(
            f,
            "  match weight {:+.2}, match probability {:.6}",
            self.match_weight, self.match_probability
        )
    }
}
