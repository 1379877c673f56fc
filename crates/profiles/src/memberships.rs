//! Audience memberships kept current as events land on profiles and as time passes: the
//! bridge between unified profiles and `sightline-audience`'s incremental evaluation.

use crate::{Applied, Profiles};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sightline_audience::{
    Audience, Cause, ComputedTrait, Event, EventType, MembershipChange, MembershipState, TraitState,
};
use sightline_core::{ProfileRows, StoredEvent};
use sightline_identity::ProfileId;
use std::collections::{BTreeMap, BTreeSet};

pub struct Memberships {
    audiences: Vec<Audience>,
    states: FxHashMap<(usize, ProfileId), MembershipState>,
    /// Computed traits, which audience rules can test (`computed NAME OP VALUE`).
    traits: Vec<ComputedTrait>,
    /// Whether any audience rule tests one: if none does, a rule's view of a profile
    /// leaves them out rather than building them for every event.
    rules_read_computed: bool,
    trait_states: FxHashMap<(usize, ProfileId), TraitState>,
    members: Vec<BTreeSet<ProfileId>>,
    /// (when, audience, profile): when membership may change with no new event, in the
    /// order they fall due; at most one per membership, the one in `due`.
    timers: BTreeSet<(i64, usize, ProfileId)>,
    /// Each membership's timer, by (audience, profile): a new schedule replaces the one
    /// before it (kept, every event of a member would leave a timer behind until it fell
    /// due: millions of entries for a 30-day window).
    due: FxHashMap<(usize, ProfileId), i64>,
    /// Changes not yet taken by [`Memberships::take_changes`].
    outbox: Vec<MembershipChange>,
    /// Whether enter and exit records are kept for the outbox: not while replaying the
    /// log, whose records are history (and would grow without bound).
    news: bool,
    /// Profiles whose states changed since [`Memberships::take_rows`].
    touched: FxHashSet<ProfileId>,
    /// Memberships that flipped since [`Memberships::take_rows`], to their latest value.
    flipped: FxHashMap<(usize, ProfileId), bool>,
    /// Timers set or cleared since [`Memberships::take_rows`], to their latest due time.
    rescheduled: FxHashMap<(usize, ProfileId), Option<i64>>,
}

/// A profile's membership and computed trait states as stored, by audience and trait name
/// (written as [`StoredStatesRef`]).
#[derive(Debug, Default, Deserialize)]
struct StoredStates {
    #[serde(default)]
    audiences: BTreeMap<String, MembershipState>,
    #[serde(default)]
    traits: BTreeMap<String, TraitState>,
}

/// [`StoredStates`] as written, borrowing the states rather than copying them: a profile's
/// row is written again whenever its states change.
#[derive(Default, Serialize)]
struct StoredStatesRef<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audiences: BTreeMap<&'a str, &'a MembershipState>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    traits: BTreeMap<&'a str, &'a TraitState>,
}

/// The values at `now`, by name, of the computed traits in a profile's stored states (as
/// [`Memberships::take_rows`] writes them).
pub fn stored_computed(
    traits: &[ComputedTrait],
    states: &str,
    now: i64,
) -> Result<Map<String, Value>, serde_json::Error> {
    let stored: StoredStates = serde_json::from_str(states)?;
    Ok(traits
        .iter()
        .filter_map(|t| Some((t.name.clone(), t.value(stored.traits.get(&t.name)?, now)?)))
        .collect())
}

/// The audiences a profile is a member of, by name, in its stored states (as
/// [`Memberships::take_rows`] writes them).
pub fn stored_audiences(states: &str) -> Result<Vec<String>, serde_json::Error> {
    let stored: StoredStates = serde_json::from_str(states)?;
    Ok(stored
        .audiences
        .into_iter()
        .filter(|(_, state)| state.is_member())
        .map(|(name, _)| name)
        .collect())
}

fn key(profile: ProfileId) -> String {
    profile.0.to_string()
}

impl Memberships {
    /// The properties of events the audiences and computed traits read.
    pub fn properties(&self) -> impl Iterator<Item = &str> {
        let audiences = self.audiences.iter().flat_map(Audience::properties);
        audiences.chain(self.traits.iter().flat_map(ComputedTrait::properties))
    }

    pub fn new(audiences: Vec<Audience>, traits: Vec<ComputedTrait>) -> Memberships {
        let n = audiences.len();
        let rules_read_computed = audiences.iter().any(|a| a.rule().reads_computed());
        Memberships {
            rules_read_computed,
            audiences,
            states: FxHashMap::default(),
            traits,
            trait_states: FxHashMap::default(),
            members: vec![BTreeSet::new(); n],
            timers: BTreeSet::new(),
            due: FxHashMap::default(),
            outbox: Vec::new(),
            news: true,
            touched: FxHashSet::default(),
            flipped: FxHashMap::default(),
            rescheduled: FxHashMap::default(),
        }
    }

    /// Adds the stored states of profiles just loaded into `profiles` (a working set), and
    /// sets their timers as of `now` (stored again with the next changes, so that a stored
    /// timer that was due and loaded its profile moves on).
    pub fn load(
        &mut self,
        profiles: &Profiles,
        rows: &[(i64, String)],
        now: i64,
    ) -> Result<(), String> {
        let mut loaded = Vec::new();
        for (id, text) in rows {
            let profile = ProfileId(*id);
            let stored: StoredStates =
                serde_json::from_str(text).map_err(|e| format!("profile {id}'s states: {e}"))?;
            for (name, state) in stored.traits {
                if let Some(i) = self.traits.iter().position(|t| t.name == name) {
                    self.trait_states.insert((i, profile), state);
                }
            }
            for (name, state) in stored.audiences {
                if let Some(i) = self.index(&name) {
                    if state.is_member() {
                        self.members[i].insert(profile);
                    }
                    self.states.insert((i, profile), state);
                    loaded.push((i, profile));
                }
            }
        }
        for (audience, profile) in loaded {
            let view = self.view(profiles, profile, now);
            self.schedule(audience, profile, &view, now);
        }
        Ok(())
    }

    /// Sets stored timers `(audience, profile, due_at)` of held profiles as they were
    /// stored, so that those due fire on the next [`Memberships::fire_timers`].
    pub fn add_timers(&mut self, timers: &[(String, i64, i64)]) {
        for (name, profile, due) in timers {
            let profile = ProfileId(*profile);
            if let Some(i) = self.index(name) {
                if self.states.contains_key(&(i, profile)) {
                    // A stored timer already due fires even if loading scheduled a later one.
                    if self.due.get(&(i, profile)).is_none_or(|&at| *due < at) {
                        self.set_timer(i, profile, Some(*due));
                    }
                }
            }
        }
    }

    /// Drops evicted profiles' states, memberships and timers (all stored).
    pub fn evict(&mut self, evicted: &[ProfileId]) {
        if evicted.is_empty() {
            return;
        }
        for i in 0..self.audiences.len() {
            for &profile in evicted {
                self.states.remove(&(i, profile));
                self.members[i].remove(&profile);
                self.set_timer(i, profile, None);
            }
        }
        for i in 0..self.traits.len() {
            for profile in evicted {
                self.trait_states.remove(&(i, *profile));
            }
        }
    }

    /// How many timers are held (at most one per membership).
    #[cfg(test)]
    pub(crate) fn timers_held(&self) -> usize {
        debug_assert_eq!(self.timers.len(), self.due.len());
        self.timers.len()
    }

    /// Sets (or with `None` clears) the timer of a membership, replacing the one it had.
    fn set_timer(&mut self, audience: usize, profile: ProfileId, at: Option<i64>) {
        let key = (audience, profile);
        if let Some(before) = self.due.remove(&key) {
            self.timers.remove(&(before, audience, profile));
        }
        if let Some(at) = at {
            self.due.insert(key, at);
            self.timers.insert((at, audience, profile));
        }
    }

    /// Adds to `rows` what changed since the last call: the states of the profiles touched,
    /// the memberships that flipped and the timers set or cleared.
    pub fn take_rows(&mut self, rows: &mut ProfileRows) {
        let mut touched: Vec<ProfileId> = std::mem::take(&mut self.touched).into_iter().collect();
        touched.sort_unstable();
        rows.states = touched
            .into_iter()
            .filter_map(|p| self.state_row(p))
            .collect();
        let mut flipped: Vec<_> = std::mem::take(&mut self.flipped).into_iter().collect();
        flipped.sort_unstable();
        rows.members = flipped
            .into_iter()
            .map(|((audience, profile), member)| (self.name_of(audience), profile.0, member))
            .collect();
        let mut rescheduled: Vec<_> = std::mem::take(&mut self.rescheduled).into_iter().collect();
        rescheduled.sort_unstable();
        rows.timers = rescheduled
            .into_iter()
            .map(|((audience, profile), due)| (self.name_of(audience), profile.0, due))
            .collect();
    }

    /// Whether anything changed since [`Memberships::take_rows`].
    pub fn changed(&self) -> bool {
        !(self.touched.is_empty() && self.flipped.is_empty() && self.rescheduled.is_empty())
    }

    /// Forgets what changed (a snapshot stores everything).
    pub fn forget_changes(&mut self) {
        self.touched.clear();
        self.flipped.clear();
        self.rescheduled.clear();
    }

    /// Adds to `rows` every profile's states (in profile order), every membership and the
    /// earliest timer of each membership that has one.
    pub fn all_rows(&self, rows: &mut ProfileRows) {
        let profiles: BTreeSet<ProfileId> = self
            .states
            .keys()
            .chain(self.trait_states.keys())
            .map(|&(_, p)| p)
            .collect();
        rows.states = profiles
            .into_iter()
            .filter_map(|p| self.state_row(p))
            .collect();
        rows.members = self
            .members
            .iter()
            .enumerate()
            .flat_map(|(i, members)| members.iter().map(move |p| (self.name_of(i), p.0, true)))
            .collect();
        let mut timers: Vec<_> = self.due.iter().map(|(&key, &at)| (key, at)).collect();
        timers.sort_unstable();
        rows.timers = timers
            .into_iter()
            .map(|((audience, profile), at)| (self.name_of(audience), profile.0, Some(at)))
            .collect();
    }

    fn name_of(&self, audience: usize) -> String {
        self.audiences[audience].name().to_owned()
    }

    fn state_row(&self, profile: ProfileId) -> Option<(i64, String)> {
        let mut stored = StoredStatesRef::default();
        for (i, audience) in self.audiences.iter().enumerate() {
            if let Some(state) = self.states.get(&(i, profile)) {
                stored.audiences.insert(audience.name(), state);
            }
        }
        for (i, computed) in self.traits.iter().enumerate() {
            if let Some(state) = self.trait_states.get(&(i, profile)) {
                stored.traits.insert(&computed.name, state);
            }
        }
        if stored.audiences.is_empty() && stored.traits.is_empty() {
            return None;
        }
        Some((profile.0, serde_json::to_string(&stored).ok()?))
    }

    /// Whether enter and exit records are kept for [`Memberships::take_changes`] from here on
    /// (on by default).
    pub fn keep_news(&mut self, keep: bool) {
        self.news = keep;
    }

    /// The enter and exit records since the last call, oldest first (for syncing them out).
    pub fn take_changes(&mut self) -> Vec<MembershipChange> {
        std::mem::take(&mut self.outbox)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.audiences.iter().map(Audience::name)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.audiences.iter().position(|a| a.name() == name)
    }

    /// Current members of an audience, in profile id order.
    pub fn members(&self, name: &str) -> Option<&BTreeSet<ProfileId>> {
        self.index(name).map(|i| &self.members[i])
    }

    fn record(&mut self, audience: usize, profile: ProfileId, change: Option<MembershipChange>) {
        let Some(change) = change else { return };
        let member = change.transition == sightline_audience::Transition::Entered;
        if member {
            self.members[audience].insert(profile);
        } else {
            self.members[audience].remove(&profile);
        }
        self.flipped.insert((audience, profile), member);
        if self.news {
            self.outbox.push(change);
        }
    }

    /// A profile's computed trait values at `now`, by name.
    pub fn computed(&self, profile: ProfileId, now: i64) -> Map<String, Value> {
        self.traits
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let state = self.trait_states.get(&(i, profile))?;
                Some((t.name.clone(), t.value(state, now)?))
            })
            .collect()
    }

    /// What the audience rules see of a profile at `now`.
    fn view<'p>(&self, profiles: &'p Profiles, profile: ProfileId, now: i64) -> View<'p> {
        View {
            facts: profiles.facts(profile),
            identity: profiles.identity(profile),
            computed: if self.rules_read_computed {
                self.computed(profile, now)
            } else {
                Map::new()
            },
        }
    }

    /// Sets the timer for the next instant the membership can change with no new event:
    /// when the rule's own windows say so, or when a windowed computed trait's value does.
    fn schedule(&mut self, audience: usize, profile: ProfileId, view: &View<'_>, now: i64) {
        let Some(state) = self.states.get(&(audience, profile)) else {
            self.set_timer(audience, profile, None);
            self.rescheduled.insert((audience, profile), None);
            return;
        };
        let by_rule = self.audiences[audience].next_change_at(state, view, now);
        let by_traits = self
            .traits
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.next_change_at(self.trait_states.get(&(i, profile))?, now))
            .min();
        let due = by_rule
            .into_iter()
            .chain(by_traits)
            .min()
            .map(|at| at.max(now + 1));
        self.set_timer(audience, profile, due);
        self.rescheduled.insert((audience, profile), due);
    }

    /// Updates every audience for an event that `profiles` just applied.
    pub fn on_event(
        &mut self,
        profiles: &Profiles,
        applied: &Applied,
        event: &StoredEvent,
        now: i64,
    ) {
        let cause = Cause::Event(event.seq);
        for &(from, into) in &applied.merged {
            self.touched.insert(into);
            for (i, computed) in self.traits.iter().enumerate() {
                if let Some(absorbed) = self.trait_states.remove(&(i, from)) {
                    let state = self
                        .trait_states
                        .entry((i, into))
                        .or_insert_with(|| computed.new_state());
                    computed.merge(state, &absorbed);
                }
            }
            let view = self.view(profiles, into, now);
            for audience in 0..self.audiences.len() {
                let Some(absorbed) = self.states.remove(&(audience, from)) else {
                    continue;
                };
                self.rescheduled.insert((audience, from), None);
                let exit = self.audiences[audience].remove(&absorbed, &key(from), now, cause);
                self.record(audience, from, exit);
                let into_state = self
                    .states
                    .entry((audience, into))
                    .or_insert_with(|| self.audiences[audience].new_state());
                let change = self.audiences[audience].merge(
                    into_state,
                    &absorbed,
                    &key(into),
                    &view,
                    now,
                    cause,
                );
                self.record(audience, into, change);
                self.schedule(audience, into, &view, now);
            }
        }
        let (Some(profile), Some(body)) = (applied.profile, applied.body.as_ref()) else {
            return;
        };
        let empty = Map::new();
        let Some(event_type) = body
            .get("type")
            .and_then(Value::as_str)
            .and_then(EventType::parse)
        else {
            return;
        };
        let properties = body
            .get("properties")
            .or_else(|| body.get("traits"))
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let seen = Event {
            seq: event.seq,
            event_type,
            name: body
                .get("event")
                .or_else(|| body.get("name"))
                .and_then(Value::as_str),
            timestamp: applied.at,
            properties,
        };
        for (i, computed) in self.traits.iter().enumerate() {
            match self.trait_states.get_mut(&(i, profile)) {
                Some(state) => {
                    computed.apply(state, &seen, now);
                }
                None => {
                    // Only profiles with a matching event hold a state.
                    let mut state = computed.new_state();
                    if computed.apply(&mut state, &seen, now) {
                        self.trait_states.insert((i, profile), state);
                    }
                }
            }
        }
        self.touched.insert(profile);
        let view = self.view(profiles, profile, now);
        let profile_key = key(profile);
        for audience in 0..self.audiences.len() {
            let state = self
                .states
                .entry((audience, profile))
                .or_insert_with(|| self.audiences[audience].new_state());
            let definition = &self.audiences[audience];
            // An event that matches no condition may still change traits or identifiers.
            let change = definition
                .apply_event(state, &profile_key, &view, &seen, now)
                .or_else(|| definition.refresh(state, &profile_key, &view, now, cause));
            self.record(audience, profile, change);
            self.schedule(audience, profile, &view, now);
        }
    }

    /// Re-evaluates up to `max` memberships whose timer is due at `now`, earliest first;
    /// says whether more are due (so that one window closing on a million members becomes
    /// pages of news rather than one).
    pub fn fire_timers(&mut self, profiles: &Profiles, now: i64, max: usize) -> bool {
        let mut fired = 0;
        while let Some(&(at, audience, profile)) = self.timers.first() {
            if at > now {
                return false;
            }
            if fired == max {
                return true;
            }
            fired += 1;
            self.set_timer(audience, profile, None);
            let Some(live) = profiles.canonical(profile).filter(|&p| p == profile) else {
                continue;
            };
            let view = self.view(profiles, live, now);
            if let Some(state) = self.states.get_mut(&(audience, live)) {
                self.touched.insert(live);
                let change =
                    self.audiences[audience].refresh(state, &key(live), &view, now, Cause::Timer);
                self.record(audience, live, change);
                self.schedule(audience, live, &view, now);
            }
        }
        false
    }
}

/// What the audience rules see of a profile: its traits, its identifiers' types and the
/// purposes its consent ledger grants now, read from the book as it holds them (a rule
/// reads only what it names), and its computed traits' values at the moment.
struct View<'a> {
    facts: Option<&'a crate::Facts>,
    identity: Option<&'a sightline_identity::Profile>,
    computed: Map<String, Value>,
}

impl sightline_audience::Facts for View<'_> {
    fn trait_value(&self, key: &str) -> Option<&Value> {
        self.facts?.traits.get(key).map(|t| &t.value)
    }

    fn computed_value(&self, name: &str) -> Option<&Value> {
        self.computed.get(name)
    }

    fn grants(&self, purpose: &str) -> bool {
        self.facts
            .and_then(|facts| facts.consent.decision_at(purpose, i64::MAX, i64::MAX))
            .is_some_and(|in_force| in_force.decision == sightline_consent::Decision::Granted)
    }

    fn has_identifier(&self, id_type: &str) -> bool {
        self.identity.is_some_and(|identity| {
            identity
                .identifiers
                .iter()
                .any(|i| i.id_type.as_str() == id_type)
        })
    }
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    #[test]
    fn stored_audiences_are_those_it_is_a_member_of() {
        let states = r#"{"audiences":{"buyers":{"member":true,"events":[]},"lapsed":{"member":false,"events":[]}}}"#;
        assert_eq!(
            stored_audiences(states).unwrap(),
            vec!["buyers".to_string()]
        );
        assert!(stored_audiences("{}").unwrap().is_empty());
        assert!(stored_audiences("not json").is_err());
    }

    /// The rules read the book through [`View`] as they read a plain copy of the profile:
    /// every trait (nested ones by a dotted path), each identifier type and each purpose,
    /// granted, withdrawn and never stated.
    #[test]
    fn a_view_answers_as_a_copy_of_the_profile() {
        use sightline_audience::{evaluate, Audience, Facts, ProfileView};
        let mut profiles = Profiles::new(sightline_identity::Rules::default());
        let mut seq = 0;
        let mut apply = |profiles: &mut Profiles, body: Value| {
            seq += 1;
            let event = StoredEvent {
                seq,
                source_id: 1,
                message_id: format!("m{seq}"),
                event_type: sightline_core::EventType::Identify,
                received_at: 1_000 + seq,
                body: body.to_string(),
            };
            profiles.apply(&event).profile.unwrap()
        };
        let consent = |ads: bool| serde_json::json!({"consent": {"purposes": {"advertising": ads, "analytics": true}}});
        apply(
            &mut profiles,
            serde_json::json!({"type": "identify", "userId": "u",
            "traits": {"plan": "pro", "email": "u@example.com", "address": {"city": "Lyon"}},
            "context": consent(true)}),
        );
        let profile = apply(
            &mut profiles,
            serde_json::json!({"type": "identify", "userId": "u",
            "traits": {"seats": 3}, "context": consent(false)}),
        );
        let view = Memberships::new(vec![], vec![]).view(&profiles, profile, 10_000);

        let facts = profiles.facts(profile).unwrap();
        let copy = sightline_audience::Profile {
            traits: facts
                .traits
                .iter()
                .map(|(k, t)| (k.clone(), t.value.clone()))
                .collect(),
            identifiers: profiles
                .identity(profile)
                .unwrap()
                .identifiers
                .iter()
                .map(|i| i.id_type.as_str().to_string())
                .collect(),
            consents: facts
                .consent
                .state_at(i64::MAX, i64::MAX)
                .into_iter()
                .filter(|(_, f)| f.decision == sightline_consent::Decision::Granted)
                .map(|(purpose, _)| purpose)
                .collect(),
            computed: Map::new(),
        };
        assert_eq!(copy.consents.iter().collect::<Vec<_>>(), ["analytics"]);
        for key in ["plan", "email", "address", "seats", "missing"] {
            assert_eq!(view.trait_value(key), copy.trait_value(key), "{key}");
        }
        for id_type in ["user_id", "email", "phone"] {
            assert_eq!(
                view.has_identifier(id_type),
                copy.has_identifier(id_type),
                "{id_type}"
            );
        }
        for purpose in ["advertising", "analytics", "marketing"] {
            assert_eq!(view.grants(purpose), copy.grants(purpose), "{purpose}");
        }
        for rule in [
            r#"trait address.city = "Lyon""#,
            "trait seats >= 3",
            "has email",
            "has phone",
            "consent advertising",
            "consent analytics",
        ] {
            let audience = Audience::parse("a", rule).unwrap();
            let (view, copy) = (
                ProfileView {
                    profile: &view,
                    events: &[],
                },
                ProfileView {
                    profile: &copy,
                    events: &[],
                },
            );
            assert_eq!(
                evaluate(audience.rule(), &view, 0),
                evaluate(audience.rule(), &copy, 0),
                "{rule}"
            );
        }
    }
}
