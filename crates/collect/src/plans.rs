//! The tracking plan's hook in collection: each event of a source held to a plan is judged
//! by its [`Enforcer`] (held in memory by the [`Registry`]; no store query), and what it
//! decides is applied here — kept, rewritten or dropped — counted, tallied for the store,
//! and reported in the answer. The answer stays Segment's 200 either way: an SDK must not
//! retry an event the plan refused.

use crate::normalize::Prepared;
use serde_json::{json, Value};
use sightline_core::Source;
use sightline_plans::{Enforcer, Registry, Verdict};

/// What a request's plan did, for the answer.
#[derive(Default)]
pub(crate) struct Screening {
    flagged: Vec<Value>,
    dropped: Vec<Value>,
}

impl Screening {
    /// Judges one event; false when the plan drops it.
    pub(crate) fn admit(
        &mut self,
        enforcer: &Enforcer,
        registry: &Registry,
        source: &Source,
        index: usize,
        event: &mut Prepared,
        now: i64,
    ) -> bool {
        let screened = enforcer.screen(event.event_type, &event.body);
        if !screened.violations.is_empty() {
            registry.tally().add(
                source.id,
                &screened.event,
                &event.message_id,
                now,
                &screened.violations,
            );
            for violation in &screened.violations {
                metrics::counter!(
                    "sightline_plan_violations_total",
                    "source" => source.name.clone(),
                    "type" => violation.kind.as_str(),
                    "action" => violation.action.as_str()
                )
                .increment(1);
            }
        }
        let report = || {
            json!({
                "index": index,
                "event": screened.event,
                "violations": screened.violations,
            })
        };
        match &screened.verdict {
            Verdict::Drop => {
                self.dropped.push(report());
                false
            }
            Verdict::Keep | Verdict::Rewrite(_) => {
                if !screened.violations.is_empty() {
                    self.flagged.push(report());
                }
                if let Verdict::Rewrite(body) = screened.verdict {
                    event.body = body;
                }
                true
            }
        }
    }

    pub(crate) fn dropped_any(&self) -> bool {
        !self.dropped.is_empty()
    }

    /// Adds `flagged` and `dropped` to the answer when there are any, and counts them.
    pub(crate) fn report(self, source: &str, answer: &mut Value) {
        if !self.flagged.is_empty() {
            metrics::counter!("sightline_plan_events_total", "source" => source.to_string(), "outcome" => "flagged")
                .increment(self.flagged.len() as u64);
            answer["flagged"] = Value::Array(self.flagged);
        }
        if !self.dropped.is_empty() {
            metrics::counter!("sightline_plan_events_total", "source" => source.to_string(), "outcome" => "dropped")
                .increment(self.dropped.len() as u64);
            crate::rejected("tracking_plan", self.dropped.len());
            answer["dropped"] = Value::Array(self.dropped);
        }
    }
}
