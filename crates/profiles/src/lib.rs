//! Unified profiles: the identity graph (from `sightline-identity`) plus what each profile
//! has said and done — traits merged latest-wins by event time, each with where and when it
//! came from; first and last seen; event counts; the timeline of its events across every
//! merged identifier. Pure: events in, state out. The server keeps one [`Profiles`] fed from
//! the log, so an anonymous history is on the person's profile as soon as an identify links
//! the ids.

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Map, Value};
use sightline_core::{time, StoredEvent};
use sightline_identity::{
    extract, normalise, resolve, Change, Graph, IdType, Identifier, Profile, ProfileId, Rules,
};
use std::collections::BTreeMap;

/// One trait's current value and its provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trait {
    pub value: Value,
    /// Event time (ms) of the event that set it: later events win.
    pub at: i64,
    pub seq: i64,
    pub source_id: i64,
}

/// What a profile has said and done.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    pub traits: BTreeMap<String, Trait>,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub event_count: u64,
    /// Sequence numbers of the profile's events, ascending.
    pub events: Vec<i64>,
}

impl Facts {
    fn record(&mut self, event: &StoredEvent, body: &Value) {
        let at = body
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(time::parse_ms)
            .unwrap_or(event.received_at);
        self.first_seen = Some(self.first_seen.map_or(at, |t| t.min(at)));
        self.last_seen = Some(self.last_seen.map_or(at, |t| t.max(at)));
        self.event_count += 1;
        self.events.push(event.seq);
        // identify's traits, and context.traits which RudderStack SDKs send on every call.
        let traits = [body.get("traits"), body.pointer("/context/traits")];
        for map in traits.into_iter().flatten().filter_map(Value::as_object) {
            self.set_traits(map, at, event);
        }
    }

    fn set_traits(&mut self, traits: &Map<String, Value>, at: i64, event: &StoredEvent) {
        for (key, value) in traits {
            let candidate = Trait {
                value: value.clone(),
                at,
                seq: event.seq,
                source_id: event.source_id,
            };
            self.keep_latest(key, candidate);
        }
    }

    fn keep_latest(&mut self, key: &str, candidate: Trait) {
        match self.traits.get(key) {
            Some(current) if (current.at, current.seq) > (candidate.at, candidate.seq) => {}
            _ => {
                self.traits.insert(key.to_string(), candidate);
            }
        }
    }

    /// Takes in the facts of a profile merged into this one.
    fn absorb(&mut self, other: Facts) {
        for (key, candidate) in other.traits {
            self.keep_latest(&key, candidate);
        }
        self.first_seen = [self.first_seen, other.first_seen]
            .into_iter()
            .flatten()
            .min();
        self.last_seen = [self.last_seen, other.last_seen]
            .into_iter()
            .flatten()
            .max();
        self.event_count += other.event_count;
        self.events.extend(other.events);
        self.events.sort_unstable();
    }
}

/// What applying one event did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The live profile the event landed on; `None` when it carried no usable identifier.
    pub profile: Option<ProfileId>,
    /// `(from, into)` for every profile merged by this event.
    pub merged: Vec<(ProfileId, ProfileId)>,
    /// The event as JSON, for whoever reads it next.
    pub body: Option<Value>,
}

/// A profile as read: its identity and its facts.
#[derive(Debug, Clone, Copy)]
pub struct ProfileView<'a> {
    pub identity: &'a Profile,
    pub facts: Option<&'a Facts>,
}

impl ProfileView<'_> {
    /// The profile as the API shows it.
    pub fn to_json(&self) -> Value {
        let facts = self.facts.cloned().unwrap_or_default();
        let traits: Map<String, Value> = facts
            .traits
            .iter()
            .map(|(k, t)| (k.clone(), t.value.clone()))
            .collect();
        serde_json::json!({
            "id": self.identity.id,
            "identifiers": self.identity.identifiers,
            "traits": traits,
            "first_seen": facts.first_seen.map(time::format_ms),
            "last_seen": facts.last_seen.map(time::format_ms),
            "event_count": facts.event_count,
        })
    }
}

pub struct Profiles {
    graph: Graph,
    rules: Rules,
    facts: FxHashMap<ProfileId, Facts>,
    last_seq: i64,
}

impl Profiles {
    pub fn new(rules: Rules) -> Profiles {
        Profiles {
            graph: Graph::new(),
            rules,
            facts: FxHashMap::default(),
            last_seq: 0,
        }
    }

    /// The last log position applied.
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// Applies one event from the log: the profile it landed on and the merges it caused.
    /// Events at or before the last applied position are skipped, so replaying a page after
    /// a restart or a retry changes nothing.
    pub fn apply(&mut self, event: &StoredEvent) -> Applied {
        if event.seq <= self.last_seq {
            return Applied::default();
        }
        self.last_seq = event.seq;
        let Ok(body) = serde_json::from_str::<Value>(&event.body) else {
            return Applied::default();
        };
        let identifiers = extract(&body, &self.rules);
        let resolution = resolve(
            &identifiers,
            &self.graph.slice(&identifiers),
            &self.rules,
            event.seq,
        );
        let merges: Vec<(ProfileId, ProfileId)> = resolution
            .changes
            .iter()
            .filter_map(|change| match change {
                Change::Merge { from, into, .. } => Some((*from, *into)),
                _ => None,
            })
            .collect();
        let profile = resolution.profile;
        self.graph.apply(resolution);
        for &(from, into) in &merges {
            if let Some(absorbed) = self.facts.remove(&from) {
                self.facts.entry(into).or_default().absorb(absorbed);
            }
        }
        let profile = profile.and_then(|p| self.graph.canonical(p));
        if let Some(profile) = profile {
            self.facts.entry(profile).or_default().record(event, &body);
        }
        Applied {
            profile,
            merged: merges,
            body: Some(body),
        }
    }

    /// A profile's identity, by its (live) id.
    pub fn identity(&self, profile: ProfileId) -> Option<&Profile> {
        self.graph.profile(profile)
    }

    /// The live profile a (possibly since merged) profile id now belongs to.
    pub fn canonical(&self, profile: ProfileId) -> Option<ProfileId> {
        self.graph.canonical(profile)
    }

    /// The profile holding an identifier, looked up after the same normalisation as at
    /// collection (an email in any case finds its profile).
    pub fn find(&self, id_type: &str, value: &str) -> Option<ProfileView<'_>> {
        let id_type = IdType::parse(id_type);
        let value = normalise(&id_type, value, self.rules.default_region())?;
        let identity = self.graph.profile_of(&Identifier::new(id_type, value))?;
        Some(ProfileView {
            identity,
            facts: self.facts.get(&identity.id),
        })
    }

    pub fn profile_count(&self) -> usize {
        self.graph.profile_count()
    }

    pub fn facts(&self, profile: ProfileId) -> Option<&Facts> {
        self.facts.get(&profile)
    }
}

mod memberships;
pub use memberships::Memberships;

#[cfg(test)]
mod tests;
