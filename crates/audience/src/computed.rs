//! Computed traits: a per-profile aggregate of matching events (count, sum, min, max, first,
//! last, most frequent, first seen, last seen), over all time or a sliding window, kept
//! incrementally and equal at any instant to a recomputation over the same events.

use crate::condition::{lookup, read_keys, EventFilter};
use crate::event::Event;
use crate::time::{Millis, Span};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A computed trait's definition. JSON (or TOML with the same keys):
/// `{"name":"lifetime_value","aggregate":{"kind":"sum","property":"total"},"within":"365d",
///   "event":{"type":"track","name":"Order Completed","where":[…]}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComputedTrait {
    pub name: String,
    pub aggregate: Aggregation,
    /// `None`: all time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Span>,
    /// Which events count; by default every event.
    #[serde(default)]
    pub event: EventFilter,
}

/// How matching events become one value. Events whose property is missing (or, for sum,
/// min and max, not a number) do not count for the aggregations that read a property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Aggregation {
    /// Number of matching events (0 when none).
    Count,
    /// Sum of a numeric property (0 when none).
    Sum {
        property: String,
    },
    Min {
        property: String,
    },
    Max {
        property: String,
    },
    /// The property's value on the earliest event (by timestamp, then sequence number).
    First {
        property: String,
    },
    /// The property's value on the latest event (by timestamp, then sequence number).
    Last {
        property: String,
    },
    /// The value seen most often; ties go to the smallest value in JSON text order.
    MostFrequent {
        property: String,
    },
    /// Timestamp (ms) of the earliest matching event.
    FirstSeen,
    /// Timestamp (ms) of the latest matching event.
    LastSeen,
}

/// One profile's state for one computed trait: a running aggregate for all-time traits, the
/// contributions still in the window (ordered by timestamp, then sequence number) otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraitState {
    AllTime(Accumulator),
    Window(Vec<Sample>),
}

/// One event's contribution to a windowed trait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: Millis,
    pub seq: i64,
    /// The property's value; null for aggregations that read none.
    pub value: Value,
}

/// A running aggregate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accumulator {
    Count(u64),
    Sum(f64),
    Min(Option<f64>),
    Max(Option<f64>),
    First(Option<Sample>),
    Last(Option<Sample>),
    /// Occurrences by the value's JSON text.
    MostFrequent(BTreeMap<String, u64>),
    FirstSeen(Option<Millis>),
    LastSeen(Option<Millis>),
}

impl Accumulator {
    pub fn new(aggregation: &Aggregation) -> Accumulator {
        match aggregation {
            Aggregation::Count => Accumulator::Count(0),
            Aggregation::Sum { .. } => Accumulator::Sum(0.0),
            Aggregation::Min { .. } => Accumulator::Min(None),
            Aggregation::Max { .. } => Accumulator::Max(None),
            Aggregation::First { .. } => Accumulator::First(None),
            Aggregation::Last { .. } => Accumulator::Last(None),
            Aggregation::MostFrequent { .. } => Accumulator::MostFrequent(BTreeMap::new()),
            Aggregation::FirstSeen => Accumulator::FirstSeen(None),
            Aggregation::LastSeen => Accumulator::LastSeen(None),
        }
    }

    pub fn add(&mut self, sample: &Sample) {
        let number = sample.value.as_f64();
        match self {
            Accumulator::Count(n) => *n += 1,
            Accumulator::Sum(sum) => *sum += number.unwrap_or(0.0),
            Accumulator::Min(min) => *min = pick(*min, number, f64::min),
            Accumulator::Max(max) => *max = pick(*max, number, f64::max),
            Accumulator::First(first) => {
                if first
                    .as_ref()
                    .is_none_or(|f| (sample.at, sample.seq) < (f.at, f.seq))
                {
                    *first = Some(sample.clone());
                }
            }
            Accumulator::Last(last) => {
                if last
                    .as_ref()
                    .is_none_or(|l| (sample.at, sample.seq) > (l.at, l.seq))
                {
                    *last = Some(sample.clone());
                }
            }
            Accumulator::MostFrequent(counts) => {
                *counts.entry(sample.value.to_string()).or_default() += 1
            }
            Accumulator::FirstSeen(first) => *first = pick(*first, Some(sample.at), Millis::min),
            Accumulator::LastSeen(last) => *last = pick(*last, Some(sample.at), Millis::max),
        }
    }

    /// Adds what `other` has seen (the same aggregation); a different kind is ignored.
    pub fn merge(&mut self, other: &Accumulator) {
        match (self, other) {
            (Accumulator::Count(a), Accumulator::Count(b)) => *a += b,
            (Accumulator::Sum(a), Accumulator::Sum(b)) => *a += b,
            (Accumulator::Min(a), Accumulator::Min(b)) => *a = pick(*a, *b, f64::min),
            (Accumulator::Max(a), Accumulator::Max(b)) => *a = pick(*a, *b, f64::max),
            (first @ Accumulator::First(_), Accumulator::First(Some(b)))
            | (first @ Accumulator::Last(_), Accumulator::Last(Some(b))) => first.add(b),
            (Accumulator::MostFrequent(a), Accumulator::MostFrequent(b)) => {
                for (value, n) in b {
                    *a.entry(value.clone()).or_default() += n;
                }
            }
            (Accumulator::FirstSeen(a), Accumulator::FirstSeen(b)) => {
                *a = pick(*a, *b, Millis::min)
            }
            (Accumulator::LastSeen(a), Accumulator::LastSeen(b)) => *a = pick(*a, *b, Millis::max),
            _ => {}
        }
    }

    /// The trait's value; `None` when nothing has been seen (count and sum are then 0).
    pub fn value(&self) -> Option<Value> {
        match self {
            Accumulator::Count(n) => Some(Value::from(*n)),
            Accumulator::Sum(sum) => number(*sum),
            Accumulator::Min(x) | Accumulator::Max(x) => x.and_then(number),
            Accumulator::First(sample) | Accumulator::Last(sample) => {
                sample.as_ref().map(|s| s.value.clone())
            }
            Accumulator::MostFrequent(counts) => {
                // Largest count; among equal counts the first (smallest) key.
                let (text, _) = counts.iter().rev().max_by_key(|(_, &n)| n)?;
                serde_json::from_str(text).ok()
            }
            Accumulator::FirstSeen(at) | Accumulator::LastSeen(at) => at.map(Value::from),
        }
    }
}

/// The chosen one of two optional values, or whichever is present.
fn pick<T>(a: Option<T>, b: Option<T>, choose: fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(choose(a, b)),
        (a, b) => a.or(b),
    }
}

/// Whole numbers print as integers (`150`, not `150.0`); non-finite sums have no value.
fn number(x: f64) -> Option<Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x.abs() < EXACT {
        Some(Value::from(x as i64))
    } else {
        serde_json::Number::from_f64(x).map(Value::Number)
    }
}

impl ComputedTrait {
    /// The properties it reads of an event.
    pub fn properties(&self) -> impl Iterator<Item = &str> {
        let aggregated = match &self.aggregate {
            Aggregation::Count | Aggregation::FirstSeen | Aggregation::LastSeen => None,
            Aggregation::Sum { property: p }
            | Aggregation::Min { property: p }
            | Aggregation::Max { property: p }
            | Aggregation::First { property: p }
            | Aggregation::Last { property: p }
            | Aggregation::MostFrequent { property: p } => Some(p.as_str()),
        };
        self.event
            .properties()
            .chain(aggregated.into_iter().flat_map(read_keys))
    }

    pub fn new_state(&self) -> TraitState {
        match self.within {
            None => TraitState::AllTime(Accumulator::new(&self.aggregate)),
            Some(_) => TraitState::Window(Vec::new()),
        }
    }

    /// The event's contribution, if it matches and carries what the aggregation reads.
    fn sample(&self, event: &Event<'_>) -> Option<Sample> {
        if !self.event.matches(event) {
            return None;
        }
        let property =
            |name: &str| lookup(|key| event.properties.get(key), name).filter(|v| !v.is_null());
        let value = match &self.aggregate {
            Aggregation::Count | Aggregation::FirstSeen | Aggregation::LastSeen => Value::Null,
            Aggregation::Sum { property: p }
            | Aggregation::Min { property: p }
            | Aggregation::Max { property: p } => property(p).filter(|v| v.is_number())?.clone(),
            Aggregation::First { property: p }
            | Aggregation::Last { property: p }
            | Aggregation::MostFrequent { property: p } => property(p)?.clone(),
        };
        Some(Sample {
            at: event.timestamp,
            seq: event.seq,
            value,
        })
    }

    fn in_window(&self, at: Millis, now: Millis) -> bool {
        self.within.is_none_or(|w| w.expiry(at) > now)
    }

    /// Applies one of the profile's events at `now`; says whether it counted.
    pub fn apply(&self, state: &mut TraitState, event: &Event<'_>, now: Millis) -> bool {
        let Some(sample) = self.sample(event).filter(|s| self.in_window(s.at, now)) else {
            return false;
        };
        match state {
            TraitState::AllTime(accumulator) => accumulator.add(&sample),
            TraitState::Window(samples) => {
                let i = samples.partition_point(|s| (s.at, s.seq) <= (sample.at, sample.seq));
                samples.insert(i, sample);
            }
        }
        true
    }

    /// The value at `now`; `None` when no event counts (count and sum are then 0).
    pub fn value(&self, state: &TraitState, now: Millis) -> Option<Value> {
        match state {
            TraitState::AllTime(accumulator) => accumulator.value(),
            TraitState::Window(samples) => {
                let mut accumulator = Accumulator::new(&self.aggregate);
                samples[self.first_live(samples, now)..]
                    .iter()
                    .for_each(|s| accumulator.add(s));
                accumulator.value()
            }
        }
    }

    fn first_live(&self, samples: &[Sample], now: Millis) -> usize {
        samples.partition_point(|s| !self.in_window(s.at, now))
    }

    /// Drops contributions that have left the window: time only moves forward.
    pub fn expire(&self, state: &mut TraitState, now: Millis) {
        if let TraitState::Window(samples) = state {
            samples.drain(..self.first_live(samples, now));
        }
    }

    /// The earliest instant after `now` at which a contribution leaves the window (and the
    /// value may change), so the caller can refresh the stored value then.
    pub fn next_change_at(&self, state: &TraitState, now: Millis) -> Option<Millis> {
        let (TraitState::Window(samples), Some(within)) = (state, self.within) else {
            return None;
        };
        samples
            .get(self.first_live(samples, now))
            .map(|s| within.expiry(s.at))
    }

    /// Folds the state of a profile merged into this one.
    pub fn merge(&self, into: &mut TraitState, from: &TraitState) {
        match (into, from) {
            (TraitState::AllTime(a), TraitState::AllTime(b)) => a.merge(b),
            (TraitState::Window(a), TraitState::Window(b)) => {
                a.extend(b.iter().cloned());
                a.sort_by_key(|s| (s.at, s.seq));
            }
            _ => {}
        }
    }

    /// The value at `now` recomputed from a profile's events (in log order).
    pub fn compute<'e>(
        &self,
        events: impl IntoIterator<Item = &'e Event<'e>>,
        now: Millis,
    ) -> Option<Value> {
        let mut accumulator = Accumulator::new(&self.aggregate);
        for sample in events.into_iter().filter_map(|e| self.sample(e)) {
            if self.in_window(sample.at, now) {
                accumulator.add(&sample);
            }
        }
        accumulator.value()
    }
}
