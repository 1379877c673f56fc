//! Incremental membership: per profile and audience, a small state updated by each event,
//! membership changes as records, and the next instant membership can change by time alone.

use crate::error::ParseError;
use crate::eval::{evaluate, EventState, Facts, ProfileView};
use crate::event::Event;
use crate::parser::parse;
use crate::rule::{EventCondition, Rule, RuleError};
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// A named audience and its rule, ready to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct Audience {
    name: String,
    rule: Rule,
    /// The rule's event conditions in evaluation order; state index `i` belongs to entry `i`.
    conditions: Vec<EventCondition>,
}

/// One profile's standing in one audience. Store it with the profile; its size is bounded by
/// the rule (at most `count`+1 timestamps per event condition).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipState {
    member: bool,
    events: Vec<EventState>,
}

impl MembershipState {
    pub fn is_member(&self) -> bool {
        self.member
    }

    pub fn event_states(&self) -> &[EventState] {
        &self.events
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Entered,
    Exited,
}

/// What made membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The event with this log sequence number (including identify and alias calls that
    /// changed traits, consent or identity).
    Event(i64),
    /// Time passed: a window let an event go.
    Timer,
}

/// A membership change, as stored and synced to destinations. JSON:
/// `{"audience":"buyers","profile":"p1","transition":"entered","at":…,"caused_by":{"event":42}}`
/// (`"caused_by":"timer"` for time-driven exits and entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    pub audience: String,
    pub profile: String,
    pub transition: Transition,
    pub at: Millis,
    pub caused_by: Cause,
}

impl Audience {
    /// The properties its rule reads of an event.
    pub fn properties(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().flat_map(|c| c.filter.properties())
    }

    pub fn new(name: impl Into<String>, rule: Rule) -> Result<Audience, RuleError> {
        rule.validate()?;
        Ok(Audience::from_valid_rule(name.into(), rule))
    }

    /// An audience from the rule's text form.
    pub fn parse(name: impl Into<String>, text: &str) -> Result<Audience, ParseError> {
        Ok(Audience::from_valid_rule(name.into(), parse(text)?))
    }

    fn from_valid_rule(name: String, rule: Rule) -> Audience {
        let conditions = rule.event_conditions().into_iter().cloned().collect();
        Audience {
            name,
            rule,
            conditions,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The state of a profile that has no events yet. Call [`Audience::refresh`] once with
    /// its profile to learn whether it is a member without any (e.g. `not event …`).
    pub fn new_state(&self) -> MembershipState {
        MembershipState {
            member: false,
            events: vec![EventState::default(); self.conditions.len()],
        }
    }

    /// Whether the profile is in the audience at `now`, from its state and profile data.
    pub fn evaluate(&self, state: &MembershipState, profile: &dyn Facts, now: Millis) -> bool {
        let view = ProfileView {
            profile,
            events: &state.events,
        };
        evaluate(&self.rule, &view, now)
    }

    /// Applies one of the profile's events. Due timers (see [`Audience::next_change_at`])
    /// must have been fired first, and each event applied once (the processor dedups by
    /// message id). Re-evaluates only when the event matched a condition: a change to the
    /// profile's traits, consent or identifiers goes through [`Audience::refresh`].
    pub fn apply_event(
        &self,
        state: &mut MembershipState,
        profile_id: &str,
        profile: &dyn Facts,
        event: &Event<'_>,
        now: Millis,
    ) -> Option<MembershipChange> {
        state
            .events
            .resize_with(self.conditions.len(), EventState::default);
        let mut matched = false;
        for (condition, events) in self.conditions.iter().zip(&mut state.events) {
            matched |= events.record_if_matching(condition, event, now);
        }
        if !matched {
            return None;
        }
        self.settle(state, profile_id, profile, now, Cause::Event(event.seq))
    }

    /// Re-evaluates at `now`: after the profile's data changed (cause: that event), or when
    /// the timer set at [`Audience::next_change_at`] fires (cause: [`Cause::Timer`]).
    pub fn refresh(
        &self,
        state: &mut MembershipState,
        profile_id: &str,
        profile: &dyn Facts,
        now: Millis,
        cause: Cause,
    ) -> Option<MembershipChange> {
        self.settle(state, profile_id, profile, now, cause)
    }

    /// The earliest instant at which membership changes if no event arrives and the
    /// profile's data stays as it is; `None` if it never does. It is after `now`, or `now`
    /// itself when the state is stale (the profile changed without a [`Audience::refresh`]).
    /// The caller sets a timer for it and calls [`Audience::refresh`] with [`Cause::Timer`].
    pub fn next_change_at(
        &self,
        state: &MembershipState,
        profile: &dyn Facts,
        now: Millis,
    ) -> Option<Millis> {
        // Membership can only change when a recorded event leaves its window: try those
        // instants in order. There are few: the state is bounded by the rule's counts.
        let mut instants: Vec<Millis> = self
            .conditions
            .iter()
            .zip(&state.events)
            .flat_map(|(condition, events)| events.expiries(condition.within, now))
            .collect();
        instants.sort_unstable();
        instants.dedup();
        std::iter::once(now)
            .chain(instants)
            .find(|&t| self.evaluate(state, profile, t) != state.member)
    }

    /// Folds the state of a profile merged into this one (identity resolution) and
    /// re-evaluates the surviving profile with its merged data. The absorbed profile's own
    /// exit, if it was a member, comes from [`Audience::remove`].
    pub fn merge(
        &self,
        into: &mut MembershipState,
        from: &MembershipState,
        profile_id: &str,
        merged_profile: &dyn Facts,
        now: Millis,
        cause: Cause,
    ) -> Option<MembershipChange> {
        into.events
            .resize_with(self.conditions.len(), EventState::default);
        for ((condition, events), other) in self
            .conditions
            .iter()
            .zip(&mut into.events)
            .zip(&from.events)
        {
            events.merge(other, condition.count.retained());
        }
        self.settle(into, profile_id, merged_profile, now, cause)
    }

    /// The exit of a profile that stops existing (merged away or erased), if it was a member.
    pub fn remove(
        &self,
        state: &MembershipState,
        profile_id: &str,
        now: Millis,
        cause: Cause,
    ) -> Option<MembershipChange> {
        state
            .member
            .then(|| self.change(profile_id, Transition::Exited, now, cause))
    }

    fn settle(
        &self,
        state: &mut MembershipState,
        profile_id: &str,
        profile: &dyn Facts,
        now: Millis,
        cause: Cause,
    ) -> Option<MembershipChange> {
        for (condition, events) in self.conditions.iter().zip(&mut state.events) {
            events.expire(condition.within, now);
        }
        let member = self.evaluate(state, profile, now);
        if member == state.member {
            return None;
        }
        state.member = member;
        let transition = if member {
            Transition::Entered
        } else {
            Transition::Exited
        };
        Some(self.change(profile_id, transition, now, cause))
    }

    fn change(
        &self,
        profile_id: &str,
        transition: Transition,
        at: Millis,
        cause: Cause,
    ) -> MembershipChange {
        MembershipChange {
            audience: self.name.clone(),
            profile: profile_id.to_owned(),
            transition,
            at,
            caused_by: cause,
        }
    }
}
