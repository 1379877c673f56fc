//! The JSON report of `sightline attribution paths`: every model, per channel, in
//! conversions and value, and the spread of credit across models.

use std::io::Read;

use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::journeys::{path_set, Dimension, Journey};
use crate::models::{self, Credit, PositionWeights, ShapleyVariant};
use crate::path::{AgeUnit, PathSet};

/// Model settings for a report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathsOptions {
    /// Markov chain order, 1 to 4.
    pub markov_order: usize,
    pub shapley_variant: ShapleyVariant,
    /// Time-decay half-life for paths without times (CSV), in position steps.
    pub half_life_steps: f64,
    /// Time-decay half-life for paths built from events, in days (GA4 uses 7).
    pub half_life_days: f64,
    pub position_weights: PositionWeights,
}

impl Default for PathsOptions {
    fn default() -> Self {
        Self {
            markov_order: 1,
            shapley_variant: ShapleyVariant::Simplified,
            half_life_steps: 1.0,
            half_life_days: 7.0,
            position_weights: PositionWeights::default(),
        }
    }
}

/// Report over paths imported from CSV (see [`crate::read_paths_csv`]).
pub fn paths_report<R: Read>(csv: R, opts: &PathsOptions) -> Result<Value> {
    report(&crate::read_paths_csv(csv)?, opts)
}

/// Report over journeys built from events: channels at the top level, the same report
/// per `channel / campaign` under `campaigns`.
pub fn journeys_report(journeys: &[Journey], opts: &PathsOptions) -> Result<Value> {
    let mut by_channel = report(&path_set(journeys, Dimension::Channel)?, opts)?;
    let by_campaign = report(&path_set(journeys, Dimension::Campaign)?, opts)?;
    let unattributed = journeys
        .iter()
        .filter(|j| j.converted_at_ms.is_some() && j.touches.is_empty())
        .count();
    if let Some(totals) = by_channel.get_mut("totals").and_then(Value::as_object_mut) {
        totals.insert("journeys".into(), journeys.len().into());
        totals.insert("unattributed_conversions".into(), unattributed.into());
    }
    if let Some(report) = by_channel.as_object_mut() {
        report.insert("campaigns".into(), by_campaign);
    }
    Ok(by_channel)
}

/// Report over any path set.
pub fn report(paths: &PathSet, opts: &PathsOptions) -> Result<Value> {
    let half_life = match paths.age_unit() {
        AgeUnit::Steps => opts.half_life_steps,
        AgeUnit::Days => opts.half_life_days,
    };
    let markov = models::markov(paths, opts.markov_order)?;
    let shapley = models::shapley(paths, opts.shapley_variant);
    let credits: [(&str, Credit); 8] = [
        ("first_touch", models::first_touch(paths)),
        ("last_touch", models::last_touch(paths)),
        ("last_non_direct", models::last_non_direct(paths)),
        ("linear", models::linear(paths)),
        ("time_decay", models::time_decay(paths, half_life)?),
        (
            "position_based",
            models::position_based(paths, opts.position_weights)?,
        ),
        ("markov", markov.credit.clone()),
        ("shapley", shapley.credit.clone()),
    ];

    let labels = paths.labels();
    let by_label = |values: &[f64]| -> Value {
        labels
            .iter()
            .zip(values)
            .map(|(label, &v)| (label.clone(), Value::from(v)))
            .collect::<Map<_, _>>()
            .into()
    };
    let mut model_map = Map::new();
    for (name, credit) in &credits {
        model_map.insert((*name).into(), by_label(&credit.conversions));
        model_map.insert(format!("{name}_value"), by_label(&credit.value));
    }
    let spread = |pick: fn(&Credit) -> &[f64]| -> Value {
        labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let values: Vec<f64> = credits.iter().map(|(_, c)| pick(c)[i]).collect();
                (label.clone(), spread_of(&values))
            })
            .collect::<Map<_, _>>()
            .into()
    };
    let mut shapley_json = json!({
        "variant": match opts.shapley_variant {
            ShapleyVariant::Simplified => "simplified",
            ShapleyVariant::Ordered => "ordered",
        },
    });
    if opts.shapley_variant == ShapleyVariant::Ordered {
        shapley_json["conversions_by_position"] = labels
            .iter()
            .zip(&shapley.conversions_by_position)
            .map(|(label, positions)| (label.clone(), json!(positions)))
            .collect::<Map<_, _>>()
            .into();
    }

    Ok(json!({
        "models": model_map,
        "variance": spread(|c| &c.conversions),
        "variance_value": spread(|c| &c.value),
        "markov": {
            "order": opts.markov_order,
            "states": markov.states,
            "conversion_probability": markov.conversion_probability,
            "removal_effects": by_label(&markov.removal_effects),
            "value_removal_effects": by_label(&markov.value_removal_effects),
        },
        "shapley": shapley_json,
        "totals": {
            "paths": paths.paths().len(),
            "channels": labels.len(),
            "conversions": paths.total_conversions(),
            "conversion_value": paths.total_value(),
            "nulls": paths.total_nulls(),
        },
        "options": {
            "markov_order": opts.markov_order,
            "time_decay_half_life": half_life,
            "time_decay_unit": match paths.age_unit() {
                AgeUnit::Steps => "steps",
                AgeUnit::Days => "days",
            },
            "position_first": opts.position_weights.first,
            "position_last": opts.position_weights.last,
        },
    }))
}

/// Spread of one channel's credit across the models: mean, population standard
/// deviation, min, max, and the coefficient of variation (std_dev / mean, 0 when the
/// mean is 0).
fn spread_of(values: &[f64]) -> Value {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let std_dev = variance.sqrt();
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    json!({
        "mean": mean,
        "std_dev": std_dev,
        "min": min,
        "max": max,
        "cv": if mean > 0.0 { std_dev / mean } else { 0.0 },
    })
}
