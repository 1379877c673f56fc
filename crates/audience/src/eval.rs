//! Evaluating a rule against what is known of one profile at one instant.

use crate::condition::lookup;
use crate::event::Event;
use crate::rule::{EventCondition, Rule};
use crate::time::{Millis, Span};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// What a rule reads of a profile besides its events. A rule asks only for what it names,
/// so a profile store can answer from the profile as it holds it: building a copy of every
/// trait, consent and identifier for each event was a tenth of applying a page of events
/// on the ingest bench, for rules that read none of them.
pub trait Facts {
    /// A trait from identify calls (`plan`, `email`…), by its key.
    fn trait_value(&self, key: &str) -> Option<&Value>;
    /// A computed trait's current value, by its name.
    fn computed_value(&self, name: &str) -> Option<&Value>;
    /// Whether the consent purpose is currently granted.
    fn grants(&self, purpose: &str) -> bool;
    /// Whether the profile has an identifier of this type (`email`, `user_id`, `phone`…).
    fn has_identifier(&self, id_type: &str) -> bool;
}

/// What a rule reads of a profile besides its events, as plain data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Traits from identify calls (`plan`, `email`…).
    #[serde(default)]
    pub traits: Map<String, Value>,
    /// Types of identifier the profile has (`email`, `user_id`, `phone`…).
    #[serde(default)]
    pub identifiers: BTreeSet<String>,
    /// Consent purposes currently granted.
    #[serde(default)]
    pub consents: BTreeSet<String>,
    /// Current values of computed traits, by name.
    #[serde(default)]
    pub computed: Map<String, Value>,
}

impl Facts for Profile {
    fn trait_value(&self, key: &str) -> Option<&Value> {
        self.traits.get(key)
    }

    fn computed_value(&self, name: &str) -> Option<&Value> {
        self.computed.get(name)
    }

    fn grants(&self, purpose: &str) -> bool {
        self.consents.contains(purpose)
    }

    fn has_identifier(&self, id_type: &str) -> bool {
        self.identifiers.contains(id_type)
    }
}

/// A profile and the state of each of a rule's event conditions, in
/// [`Rule::event_conditions`] order (a missing state counts as no events).
#[derive(Clone, Copy)]
pub struct ProfileView<'a> {
    pub profile: &'a dyn Facts,
    pub events: &'a [EventState],
}

/// The timestamps of the most recent events matching one event condition: newest first,
/// at most [`crate::CountCheck::retained`] of them, which is all the condition needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventState {
    newest_first: Vec<Millis>,
}

impl EventState {
    /// Records `event` if it matches and has not left the window; says whether it did.
    pub(crate) fn record_if_matching(
        &mut self,
        condition: &EventCondition,
        event: &Event<'_>,
        now: Millis,
    ) -> bool {
        let in_window = condition
            .within
            .is_none_or(|w| w.expiry(event.timestamp) > now);
        let matches = in_window && condition.filter.matches(event);
        if matches {
            self.record(event.timestamp, condition.count.retained());
        }
        matches
    }

    fn record(&mut self, at: Millis, keep: usize) {
        let i = self.newest_first.partition_point(|&t| t > at);
        if i < keep {
            self.newest_first.insert(i, at);
            self.newest_first.truncate(keep);
        }
    }

    /// How many recorded events are in the window at `now` (saturated at the retained bound).
    pub fn count_at(&self, within: Option<Span>, now: Millis) -> usize {
        match within {
            None => self.newest_first.len(),
            Some(w) => self.newest_first.partition_point(|&t| w.expiry(t) > now),
        }
    }

    /// Drops timestamps that have left the window: time only moves forward.
    pub(crate) fn expire(&mut self, within: Option<Span>, now: Millis) {
        let live = self.count_at(within, now);
        self.newest_first.truncate(live);
    }

    /// The instants after `now` at which a recorded event leaves the window.
    pub(crate) fn expiries(
        &self,
        within: Option<Span>,
        now: Millis,
    ) -> impl Iterator<Item = Millis> + '_ {
        within
            .into_iter()
            .flat_map(move |w| self.newest_first.iter().map(move |&t| w.expiry(t)))
            .filter(move |&t| t > now)
    }

    /// The state of the union of both profiles' events.
    pub(crate) fn merge(&mut self, other: &EventState, keep: usize) {
        for &at in &other.newest_first {
            self.record(at, keep);
        }
    }

    pub fn timestamps(&self) -> &[Millis] {
        &self.newest_first
    }
}

/// Whether the profile satisfies `rule` at `now`.
pub fn evaluate(rule: &Rule, view: &ProfileView<'_>, now: Millis) -> bool {
    let mut next_event = 0;
    eval(rule, view, now, &mut next_event)
}

/// `next_event` walks the event states in step with the rule's event conditions, so every
/// operand is evaluated (no short circuit): skipping one would misalign the walk.
fn eval(rule: &Rule, view: &ProfileView<'_>, now: Millis, next_event: &mut usize) -> bool {
    match rule {
        Rule::And(rules) => rules
            .iter()
            .fold(true, |all, r| eval(r, view, now, next_event) & all),
        Rule::Or(rules) => rules
            .iter()
            .fold(false, |any, r| eval(r, view, now, next_event) | any),
        Rule::Not(rule) => !eval(rule, view, now, next_event),
        Rule::Event(condition) => {
            let count = view
                .events
                .get(*next_event)
                .map_or(0, |s| s.count_at(condition.within, now));
            *next_event += 1;
            condition.count.holds(count)
        }
        Rule::Trait(c) => c
            .test
            .matches(lookup(|key| view.profile.trait_value(key), &c.name)),
        Rule::Computed(c) => c
            .test
            .matches(lookup(|name| view.profile.computed_value(name), &c.name)),
        Rule::Consent(purpose) => view.profile.grants(purpose),
        Rule::Has(identifier) => view.profile.has_identifier(identifier),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    #[test]
    fn missing_event_states_count_as_no_events() {
        let rule = parse(r#"event "A" count = 0 and not event "B" and has email"#).unwrap();
        let mut profile = Profile::default();
        profile.identifiers.insert("email".into());
        let view = ProfileView {
            profile: &profile,
            events: &[],
        };
        assert!(evaluate(&rule, &view, 0));
    }

    #[test]
    fn states_keep_the_newest_timestamps_and_count_within_the_window() {
        let mut state = EventState::default();
        for at in [5, 1, 9, 3, 7] {
            state.record(at, 3);
        }
        assert_eq!(state.timestamps(), &[9, 7, 5]);
        let window = Span::new(4, crate::TimeUnit::Seconds);
        assert_eq!(state.count_at(window, 4_004), 3);
        assert_eq!(state.count_at(window, 4_005), 2);
        assert_eq!(
            state.count_at(window, 4_007),
            1,
            "7 + 4000 is the first instant without 7"
        );
        assert_eq!(
            state.expiries(window, 4_005).collect::<Vec<_>>(),
            [4_009, 4_007]
        );
        state.expire(window, 4_008);
        assert_eq!(state.timestamps(), &[9]);
        let mut other = EventState::default();
        other.record(8, 3);
        other.record(2, 3);
        state.merge(&other, 2);
        assert_eq!(state.timestamps(), &[9, 8]);
    }
}
