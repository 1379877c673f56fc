//! The in-memory identity graph: loads slices for `resolve`, applies its changes, and
//! rebuilds from the log. A database-backed processor mirrors exactly this bookkeeping.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::explain::explain;
use crate::extract::{extract, extract_text, EventIdentifiers};
use crate::identifier::{Identifier, ProfileId};
use crate::key::{encoded, Key};
use crate::resolve::{
    resolve, Change, GraphSlice, GraphView, IdentifierState, ProfileSummary, Record, Resolution,
};
use crate::rules::Rules;

/// A live profile: its identifiers (in the order linked), their count per type (what
/// resolution reads), and its merge history (by seq).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: ProfileId,
    pub identifiers: Vec<Identifier>,
    pub summary: ProfileSummary,
    pub history: Vec<Record>,
}

impl Profile {
    fn add(&mut self, identifier: Identifier) {
        self.summary.add(&identifier.id_type, 1);
        self.identifiers.push(identifier);
    }

    /// The history in plain words, one sentence per record.
    pub fn explain(&self) -> Vec<String> {
        explain(&self.history)
    }
}

/// The identity graph in memory: who owns each identifier, the live profiles, and where
/// retired profile ids went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    identifiers: FxHashMap<Key, IdentifierState>,
    profiles: FxHashMap<ProfileId, Profile>,
    /// Retired profile id → the profile it was merged into.
    merged_into: FxHashMap<ProfileId, ProfileId>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// A graph as it was stored: its live profiles, who owns each identifier, and where
    /// retired profile ids went (`(retired, survivor)`).
    pub fn restore(
        profiles: impl IntoIterator<Item = Profile>,
        identifiers: impl IntoIterator<Item = (Identifier, IdentifierState)>,
        merged: impl IntoIterator<Item = (ProfileId, ProfileId)>,
    ) -> Graph {
        Graph {
            identifiers: identifiers
                .into_iter()
                .map(|(identifier, state)| (Key::new(&identifier), state))
                .collect(),
            profiles: profiles.into_iter().map(|p| (p.id, p)).collect(),
            merged_into: merged.into_iter().collect(),
        }
    }

    /// Adds profiles read from the store, with the state of each identifier they hold, to a
    /// graph that holds part of the whole (a working set). A profile the graph holds
    /// already is left as it is: the graph's copy is the newer.
    pub fn load(
        &mut self,
        profiles: impl IntoIterator<Item = Profile>,
        identifiers: impl IntoIterator<Item = (Identifier, IdentifierState)>,
    ) {
        let mut added = rustc_hash::FxHashSet::default();
        for profile in profiles {
            if let Entry::Vacant(slot) = self.profiles.entry(profile.id) {
                added.insert(profile.id);
                slot.insert(profile);
            }
        }
        for (identifier, state) in identifiers {
            if added.contains(&state.profile) {
                self.identifiers
                    .entry(Key::new(&identifier))
                    .or_insert(state);
            }
        }
    }

    /// Whether the graph holds the identifier (in a working set: whether its owner is loaded).
    pub fn holds(&self, identifier: &Identifier) -> bool {
        self.state(identifier).is_some()
    }

    /// Drops a live profile and its identifiers from a working set (stored, so they can be
    /// loaded again).
    pub fn evict(&mut self, id: ProfileId) {
        if let Some(profile) = self.profiles.remove(&id) {
            for identifier in &profile.identifiers {
                encoded(identifier, |key| self.identifiers.remove(key));
            }
        }
    }

    /// Forgets where retired profile ids went (in a working set, once stored).
    pub fn forget_merges(&mut self) {
        self.merged_into.clear();
    }

    /// Where retired profile ids went: `(retired, survivor)`, in no particular order.
    pub fn merges(&self) -> impl Iterator<Item = (ProfileId, ProfileId)> + '_ {
        self.merged_into.iter().map(|(&from, &into)| (from, into))
    }

    /// Replays events in log order into an empty graph.
    pub fn rebuild<'a>(events: impl IntoIterator<Item = (i64, &'a Value)>, rules: &Rules) -> Graph {
        let mut graph = Graph::new();
        for (seq, event) in events {
            graph.process(seq, event, rules);
        }
        graph
    }

    /// Extracts, resolves and applies one event; returns the profile it belongs to.
    pub fn process(&mut self, seq: i64, event: &Value, rules: &Rules) -> Option<ProfileId> {
        self.settle(seq, &extract(event, rules), rules)
    }

    /// [`Graph::process`] for an event stored as JSON text, read with [`extract_text`]: the
    /// same outcome as parsing it to a `Value` first (text that is not JSON is `null`).
    pub fn process_text(&mut self, seq: i64, event: &str, rules: &Rules) -> Option<ProfileId> {
        self.settle(seq, &extract_text(event, rules), rules)
    }

    /// Resolves and applies one event's identifiers; returns the profile it belongs to.
    fn settle(
        &mut self,
        seq: i64,
        identifiers: &EventIdentifiers,
        rules: &Rules,
    ) -> Option<ProfileId> {
        let resolution = resolve(identifiers, self, rules, seq);
        let profile = resolution.profile;
        self.apply(resolution);
        profile
    }

    /// The part of the graph the event's identifiers touch, as a processor would load it.
    pub fn slice(&self, event: &EventIdentifiers) -> GraphSlice {
        let mut slice = GraphSlice::default();
        for identifier in &event.identifiers {
            let Some(state) = self.state(identifier) else {
                continue;
            };
            if slice.profile_summary(state.profile).is_none() {
                if let Some(profile) = self.profiles.get(&state.profile) {
                    slice
                        .profiles
                        .push((state.profile, profile.summary.clone()));
                }
            }
            slice.identifiers.push((identifier.clone(), state.clone()));
        }
        slice
    }

    /// Applies a resolution's changes in order. Changes that no longer fit the graph (a
    /// resolution computed from a stale slice) are skipped rather than corrupting it.
    pub fn apply(&mut self, resolution: Resolution) {
        let seq = resolution.seq;
        let linkage = resolution.linkage;
        let record = |change: Change| Record {
            seq,
            change,
            linkage: linkage.clone(),
        };
        for change in resolution.changes {
            match &change {
                Change::CreateProfile {
                    profile,
                    identifier,
                    ..
                } => {
                    if self.profiles.contains_key(profile) {
                        continue;
                    }
                    let Entry::Vacant(slot) = self.identifiers.entry(Key::new(identifier)) else {
                        continue;
                    };
                    slot.insert(owned_by(*profile));
                    let mut created = Profile {
                        id: *profile,
                        identifiers: Vec::new(),
                        summary: ProfileSummary::default(),
                        history: Vec::new(),
                    };
                    created.add(identifier.clone());
                    created.history.push(record(change));
                    self.profiles.insert(created.id, created);
                }
                Change::Attach {
                    profile,
                    identifier,
                    ..
                } => {
                    let Some(target) = self.profiles.get_mut(profile) else {
                        continue;
                    };
                    if let Entry::Vacant(slot) = self.identifiers.entry(Key::new(identifier)) {
                        slot.insert(owned_by(*profile));
                        target.add(identifier.clone());
                        target.history.push(record(change));
                    }
                }
                Change::Merge { from, into, .. } => {
                    let (from, into) = (*from, *into);
                    self.merge(from, into, record(change));
                }
                Change::Refuse { profile, owner, .. } => {
                    let owner = owner.filter(|o| Some(*o) != *profile);
                    let profile = *profile;
                    let refusal = record(change);
                    if let Some(target) = owner.and_then(|o| self.profiles.get_mut(&o)) {
                        target.history.push(refusal.clone());
                    }
                    if let Some(target) = profile.and_then(|p| self.profiles.get_mut(&p)) {
                        target.history.push(refusal);
                    }
                }
                Change::SeenWith {
                    identifier,
                    profile,
                } => {
                    if let Some(state) = self.state_mut(identifier) {
                        if !state.seen_with.contains(profile) {
                            state.seen_with.push(*profile);
                        }
                    }
                }
                Change::FlagShared { identifier, .. } => {
                    let owner = self.state_mut(identifier).map(|state| {
                        state.shared = true;
                        state.profile
                    });
                    if let Some(owner) = owner.and_then(|o| self.profiles.get_mut(&o)) {
                        owner.history.push(record(change));
                    }
                }
            }
        }
    }

    fn merge(&mut self, from: ProfileId, into: ProfileId, record: Record) {
        if from == into || !self.profiles.contains_key(&into) {
            return;
        }
        let Some(retired) = self.profiles.remove(&from) else {
            return;
        };
        for identifier in &retired.identifiers {
            if let Some(state) = self.state_mut(identifier) {
                state.profile = into;
            }
        }
        if let Some(survivor) = self.profiles.get_mut(&into) {
            survivor.summary.add_all(&retired.summary);
            survivor.identifiers.extend(retired.identifiers);
            let mut both = std::mem::take(&mut survivor.history);
            both.extend(retired.history);
            // Stable: records of one seq keep the order they were made in.
            both.sort_by_key(|r| r.seq);
            // A refusal between the two profiles was recorded in both histories; keep one.
            let mut history: Vec<Record> = Vec::with_capacity(both.len() + 1);
            for r in both {
                let mut same_seq = history.iter().rev().take_while(|h| h.seq == r.seq);
                if !same_seq.any(|h| *h == r) {
                    history.push(r);
                }
            }
            history.push(record);
            survivor.history = history;
        }
        self.merged_into.insert(from, into);
    }

    /// The live profile a (possibly retired) profile id now belongs to.
    pub fn canonical(&self, mut id: ProfileId) -> Option<ProfileId> {
        // Bounded so that even a hand-made cycle of merges cannot hang the walk.
        for _ in 0..=self.merged_into.len() {
            if self.profiles.contains_key(&id) {
                return Some(id);
            }
            id = *self.merged_into.get(&id)?;
        }
        None
    }

    pub fn profile(&self, id: ProfileId) -> Option<&Profile> {
        self.profiles.get(&self.canonical(id)?)
    }

    pub fn profile_of(&self, identifier: &Identifier) -> Option<&Profile> {
        self.profiles.get(&self.state(identifier)?.profile)
    }

    pub fn identifier(&self, identifier: &Identifier) -> Option<&IdentifierState> {
        self.state(identifier)
    }

    /// Live profiles in id order.
    pub fn profiles(&self) -> Vec<&Profile> {
        let mut profiles: Vec<&Profile> = self.profiles.values().collect();
        profiles.sort_unstable_by_key(|p| p.id);
        profiles
    }

    pub fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    fn state(&self, identifier: &Identifier) -> Option<&IdentifierState> {
        encoded(identifier, |key| self.identifiers.get(key))
    }

    fn state_mut(&mut self, identifier: &Identifier) -> Option<&mut IdentifierState> {
        encoded(identifier, |key| self.identifiers.get_mut(key))
    }
}

impl GraphView for Graph {
    fn identifier_state(&self, identifier: &Identifier) -> Option<&IdentifierState> {
        self.state(identifier)
    }

    fn profile_summary(&self, profile: ProfileId) -> Option<&ProfileSummary> {
        self.profiles.get(&profile).map(|p| &p.summary)
    }
}

fn owned_by(profile: ProfileId) -> IdentifierState {
    IdentifierState {
        profile,
        shared: false,
        seen_with: Vec::new(),
    }
}
