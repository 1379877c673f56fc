//! Violations counted in memory as collection finds them, drained and stored in bulk a few
//! times a second: a flood of bad events costs a counter each, not a store write each.

use crate::document::ViolationKind;
use crate::screen::Violation;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// Samples kept per (source, event, kind): the newest ones.
pub const SAMPLES_KEPT: usize = 5;

/// What a sample shows of a string: nothing but its length. A property the plan calls a
/// number may hold an email address; a masked sample says "a 21-character string" without
/// being personal data.
pub fn mask(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(format!("<string of {} chars>", text.chars().count())),
        Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), mask(value)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TallyKey {
    pub source_id: i64,
    pub event: String,
    pub kind: ViolationKind,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
}

/// Counts and samples gathered since the last drain.
#[derive(Debug, Clone, PartialEq)]
pub struct Tallied {
    pub key: TallyKey,
    pub count: u64,
    /// JSON objects: `at` (ms), `message_id`, `path`, `message`, `action`, `value` masked.
    pub samples: Vec<String>,
}

#[derive(Default)]
pub struct Tally {
    pending: Mutex<HashMap<TallyKey, (u64, VecDeque<String>)>>,
}

impl Tally {
    /// Adds one event's violations.
    pub fn add(
        &self,
        source_id: i64,
        event: &str,
        message_id: &str,
        at: i64,
        violations: &[Violation],
    ) {
        if violations.is_empty() {
            return;
        }
        let day = sightline_core::time::format_ms(at)[..10].to_string();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for violation in violations {
            let key = TallyKey {
                source_id,
                event: event.to_string(),
                kind: violation.kind,
                day: day.clone(),
            };
            let (count, samples) = pending.entry(key).or_default();
            *count += 1;
            if samples.len() == SAMPLES_KEPT {
                samples.pop_front();
            }
            samples.push_back(sample(message_id, at, violation));
        }
    }

    /// Everything gathered since the last drain, and forgets it.
    pub fn drain(&self) -> Vec<Tallied> {
        let taken =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        let mut tallied: Vec<Tallied> = taken
            .into_iter()
            .map(|(key, (count, samples))| Tallied {
                key,
                count,
                samples: samples.into(),
            })
            .collect();
        tallied.sort_by(|a, b| a.key.cmp(&b.key));
        tallied
    }

    /// Puts back what could not be stored, so that a store outage loses no count.
    pub fn restore(&self, tallied: Vec<Tallied>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for item in tallied {
            let (count, samples) = pending.entry(item.key).or_default();
            *count += item.count;
            for sample in item.samples.into_iter().rev() {
                if samples.len() < SAMPLES_KEPT {
                    samples.push_front(sample);
                }
            }
        }
    }
}

fn sample(message_id: &str, at: i64, violation: &Violation) -> String {
    let mut sample = serde_json::json!({
        "at": at,
        "message_id": message_id,
        "path": violation.path,
        "message": violation.message,
        "action": violation.action.as_str(),
    });
    if let Some(value) = &violation.value {
        sample["value"] = mask(value);
    }
    sample.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Mode;
    use serde_json::json;

    fn violation(kind: ViolationKind, value: Option<Value>) -> Violation {
        Violation {
            kind,
            path: "/properties/email".into(),
            message: "not of type number".into(),
            action: Mode::Flag,
            value,
        }
    }

    #[test]
    fn masking_keeps_shape_and_numbers_but_no_text() {
        let masked =
            mask(&json!({"email": "ann@example.com", "n": 3, "tags": ["vip"], "ok": true}));
        assert_eq!(
            masked,
            json!({"email": "<string of 15 chars>", "n": 3, "tags": ["<string of 3 chars>"], "ok": true})
        );
    }

    #[test]
    fn counts_by_day_and_kind_and_keeps_the_newest_samples() {
        let tally = Tally::default();
        let day = 86_400_000;
        for i in 0..7 {
            tally.add(
                1,
                "Signed Up",
                &format!("m{i}"),
                day + i,
                &[violation(
                    ViolationKind::InvalidValue,
                    Some(json!("ann@example.com")),
                )],
            );
        }
        tally.add(
            1,
            "Signed Up",
            "next-day",
            2 * day,
            &[violation(ViolationKind::InvalidValue, None)],
        );
        let drained = tally.drain();
        assert_eq!(drained.len(), 2);
        assert_eq!(drained[0].key.day, "1970-01-02");
        assert_eq!(drained[0].count, 7);
        assert_eq!(drained[0].samples.len(), SAMPLES_KEPT);
        assert!(
            drained[0].samples[0].contains("\"m2\""),
            "{}",
            drained[0].samples[0]
        );
        assert!(drained[0]
            .samples
            .iter()
            .all(|s| !s.contains("example.com")));
        assert_eq!(drained[1].key.day, "1970-01-03");
        assert!(tally.drain().is_empty(), "a drain forgets what it took");
    }

    #[test]
    fn restored_counts_add_to_new_ones() {
        let tally = Tally::default();
        let v = [violation(ViolationKind::MissingRequired, None)];
        tally.add(2, "Order Completed", "a", 0, &v);
        let failed = tally.drain();
        tally.add(2, "Order Completed", "b", 0, &v);
        tally.restore(failed);
        let drained = tally.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].count, 2);
        assert_eq!(drained[0].samples.len(), 2);
    }
}
