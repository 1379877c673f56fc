//! The consent ledger: every change of one subject's consent, with its evidence, in the
//! order it took effect. The state at any time is derived from it; nothing is overwritten.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::policy::Decision;

/// One ledger entry: what a signal stated, when, where it came from and what proves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentChange {
    /// When it took effect: the carrying event's time (ms).
    pub at: i64,
    /// The log position of the carrying event; of two changes at one time the later wins.
    pub seq: i64,
    /// Where it came from: `api`, or `source:<id>` for a tracking source.
    pub source: String,
    /// The signals as received, by where they were read (e.g. `context.consent.tcf`).
    pub signals: BTreeMap<String, Value>,
    /// What the policy decoded them to: every purpose they state.
    pub decisions: BTreeMap<String, Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// CMP id and version, page URL, policy version, when known.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub evidence: Map<String, Value>,
}

impl ConsentChange {
    fn moment(&self) -> (i64, i64) {
        (self.at, self.seq)
    }
}

/// The decision in force for one purpose and the ledger entry it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InForce {
    pub decision: Decision,
    pub at: i64,
    pub seq: i64,
}

/// Per purpose, the decision in force. A purpose absent was never stated.
pub type ConsentState = BTreeMap<String, InForce>;

/// A subject's ledger, kept in `(at, seq)` order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ledger(Vec<ConsentChange>);

impl Ledger {
    pub fn changes(&self) -> &[ConsentChange] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The decision in force for one purpose at the moment `(at, seq)`: [`Ledger::state_at`]
    /// for one purpose, reading back from that moment only as far as the last statement of
    /// it (usually the last entry), so it stays cheap as a ledger grows.
    pub fn decision_at(&self, purpose: &str, at: i64, seq: i64) -> Option<InForce> {
        let known = self.0.partition_point(|c| c.moment() <= (at, seq));
        self.0[..known].iter().rev().find_map(|change| {
            let decision = *change.decisions.get(purpose)?;
            (decision != Decision::NotStated).then_some(InForce {
                decision,
                at: change.at,
                seq: change.seq,
            })
        })
    }

    /// A ledger of these changes, put in `(at, seq)` order.
    pub fn from_changes(mut changes: Vec<ConsentChange>) -> Ledger {
        changes.sort_by_key(ConsentChange::moment);
        Ledger(changes)
    }

    /// The change made by the event at `seq`, if any.
    pub fn change_of(&self, seq: i64) -> Option<&ConsentChange> {
        self.0.iter().rev().find(|c| c.seq == seq)
    }

    /// Adds a change in its place by `(at, seq)`.
    pub fn record(&mut self, change: ConsentChange) {
        let place = self.0.partition_point(|c| c.moment() <= change.moment());
        self.0.insert(place, change);
    }

    /// Takes in another subject's ledger (the two were found to be one person).
    pub fn absorb(&mut self, other: Ledger) {
        self.0.extend(other.0);
        self.0.sort_by_key(ConsentChange::moment);
    }

    /// The state at the moment `(at, seq)`: per purpose, the last stated decision of the
    /// changes that took effect before it — earlier in time, or at the same time and earlier
    /// in the log. `(t, i64::MAX)` is the state at time `t`.
    pub fn state_at(&self, at: i64, seq: i64) -> ConsentState {
        let mut state = ConsentState::new();
        let known = self.0.partition_point(|c| c.moment() <= (at, seq));
        for change in &self.0[..known] {
            for (purpose, &decision) in &change.decisions {
                if decision != Decision::NotStated {
                    let in_force = InForce {
                        decision,
                        at: change.at,
                        seq: change.seq,
                    };
                    state.insert(purpose.clone(), in_force);
                }
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at: i64, seq: i64, decisions: &[(&str, Decision)]) -> ConsentChange {
        ConsentChange {
            at,
            seq,
            source: "api".into(),
            signals: BTreeMap::new(),
            decisions: decisions.iter().map(|&(p, d)| (p.to_string(), d)).collect(),
            jurisdiction: None,
            evidence: Map::new(),
        }
    }

    #[test]
    fn state_at_takes_the_latest_stated_decision_at_or_before_t() {
        let mut ledger = Ledger::default();
        ledger.record(change(30, 3, &[("analytics", Decision::Denied)]));
        ledger.record(change(10, 1, &[("analytics", Decision::Granted)]));
        ledger.record(change(
            20,
            2,
            &[
                ("analytics", Decision::NotStated),
                ("advertising", Decision::Denied),
            ],
        ));
        let at_25 = ledger.state_at(25, i64::MAX);
        assert_eq!(at_25["analytics"].decision, Decision::Granted);
        assert_eq!(at_25["analytics"].seq, 1);
        assert_eq!(at_25["advertising"].decision, Decision::Denied);
        assert_eq!(
            ledger.state_at(30, i64::MAX)["analytics"].decision,
            Decision::Denied
        );
        assert!(ledger.state_at(5, i64::MAX).is_empty());
        // Two changes at one time: the later in the log wins, whatever the arrival order.
        ledger.record(change(30, 9, &[("analytics", Decision::Granted)]));
        ledger.record(change(30, 4, &[("analytics", Decision::Denied)]));
        assert_eq!(ledger.state_at(30, i64::MAX)["analytics"].seq, 9);
        assert_eq!(
            ledger.state_at(30, 8)["analytics"].seq,
            4,
            "at one time, log order"
        );
    }
}
