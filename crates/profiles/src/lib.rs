//! Unified profiles: the identity graph (from `sightline-identity`) plus what each profile
//! has said and done — traits merged latest-wins by event time, each with where and when it
//! came from; first and last seen; event counts; the timeline of its events across every
//! merged identifier. Pure: events in, state out. The server keeps one [`Profiles`] fed from
//! the log, so an anonymous history is on the person's profile as soon as an identify links
//! the ids.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sightline_consent::{ConsentChange, Decision, EventSignals, Ledger, Policy};
use sightline_core::pruned::{self, Keep};
use sightline_core::{time, DeniedCount, IdentifierRow, ProfileRows, StoredEvent, StoredProfile};
use sightline_identity::{
    extract, normalise, resolve, Change, EventIdentifiers, Graph, IdType, Identifier, Profile,
    ProfileId, Rules,
};
use std::collections::BTreeMap;

/// Every part of an event the book and its memberships read but its properties:
/// identifiers (`sightline_identity::extract`), traits, consent signals and their evidence,
/// linkage evidence, the time, and what audiences and computed traits see of an event
/// (type, name). [`ReadKeys`] builds only these and the properties read; a reader of
/// another field adds it here (`tests::the_read_parts_apply_as_the_whole_body` fails
/// otherwise for the fields it knows).
const READ: &[(&str, Keep<'static>)] = &[
    ("type", Keep::Whole),
    ("userId", Keep::Whole),
    ("anonymousId", Keep::Whole),
    ("previousId", Keep::Whole),
    ("traits", Keep::Whole),
    ("event", Keep::Whole),
    ("name", Keep::Whole),
    ("timestamp", Keep::Whole),
    ("gpc", Keep::Whole),
    (
        "context",
        Keep::Keys(&[
            ("locale", Keep::Whole),
            ("traits", Keep::Whole),
            ("device", Keep::Whole),
            ("externalIds", Keep::Whole),
            ("page", Keep::Keys(&[("url", Keep::Whole)])),
            ("linkage", Keep::Whole),
            ("consent", Keep::Whole),
            ("tcf", Keep::Whole),
        ]),
    ),
];

/// The properties identity reads of an event (`sightline_identity::extract`).
const IDENTITY_PROPERTIES: &[&str] = &["previousId"];

/// What of an event's body a book and its memberships read: [`READ`], and of the
/// properties only those identity, the audiences and the computed traits read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadKeys {
    properties: Vec<String>,
}

impl ReadKeys {
    /// What a book read by `memberships` reads.
    pub fn of(memberships: &Memberships) -> ReadKeys {
        let mut properties: Vec<String> = IDENTITY_PROPERTIES
            .iter()
            .copied()
            .chain(memberships.properties())
            .map(str::to_owned)
            .collect();
        properties.sort_unstable();
        properties.dedup();
        ReadKeys { properties }
    }

    /// Events' bodies as [`Profiles::apply_parsed`] needs them, so that the follower does
    /// not build the context and properties nobody reads (most of an analytics.js event),
    /// with their identifiers under `rules`. `None` for a body that is not JSON.
    pub fn parse<'a>(
        &self,
        bodies: impl IntoIterator<Item = &'a str>,
        rules: &Rules,
    ) -> Vec<Option<Parsed>> {
        // What to keep, built once for all the bodies.
        let properties: Vec<(&str, Keep)> = self
            .properties
            .iter()
            .map(|name| (name.as_str(), Keep::Whole))
            .collect();
        let mut keys = READ.to_vec();
        keys.push(("properties", Keep::Keys(&properties)));
        let keep = Keep::Keys(&keys);
        bodies
            .into_iter()
            .map(|body| Some(Parsed::of(pruned::parse(body, &keep).ok()?, rules)))
            .collect()
    }
}

/// An event's body as the profiles read it, with its identifiers, which depend on the body
/// and the rules alone: read once, where the body is parsed (for the follower, ahead of the
/// book, on another thread), for both finding what a working set lacks and resolving.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub body: Value,
    pub identifiers: EventIdentifiers,
}

impl Parsed {
    pub fn of(body: Value, rules: &Rules) -> Parsed {
        let identifiers = extract(&body, rules);
        Parsed { body, identifiers }
    }
}

/// One trait's current value and its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trait {
    pub value: Value,
    /// Event time (ms) of the event that set it: later events win.
    pub at: i64,
    pub seq: i64,
    pub source_id: i64,
}

/// What a profile has said and done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub traits: BTreeMap<String, Trait>,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub event_count: u64,
    /// Every change of the profile's consent (its anonymous ids' included), with evidence.
    /// Stored as rows of their own (a site may state consent on every call), so not in a
    /// profile's document.
    #[serde(skip)]
    pub consent: Ledger,
    /// Sequence numbers of the profile's events, ascending. Stored as rows of their own, so
    /// not in a profile's document.
    #[serde(skip)]
    pub events: Vec<i64>,
}

/// An event's time: its `timestamp`, else when it was received.
pub fn event_time(event: &StoredEvent, body: &Value) -> i64 {
    body.get("timestamp")
        .and_then(Value::as_str)
        .and_then(time::parse_ms)
        .unwrap_or(event.received_at)
}

/// The source name in consent ledger entries: events recorded through the API have none.
fn source_name(source_id: i64) -> String {
    if source_id == 0 {
        "api".to_owned()
    } else {
        format!("source:{source_id}")
    }
}

impl Facts {
    /// Records the event, which happened `at` ([`event_time`]).
    fn record(
        &mut self,
        event: &StoredEvent,
        body: &Value,
        at: i64,
        policy: &Policy,
        timeline: bool,
    ) {
        self.first_seen = Some(self.first_seen.map_or(at, |t| t.min(at)));
        self.last_seen = Some(self.last_seen.map_or(at, |t| t.max(at)));
        self.event_count += 1;
        if timeline {
            self.events.push(event.seq);
        }
        // identify's traits, and context.traits which RudderStack SDKs send on every call.
        let traits = [
            body.get("traits"),
            body.get("context").and_then(|c| c.get("traits")),
        ];
        for map in traits.into_iter().flatten().filter_map(Value::as_object) {
            self.set_traits(map, at, event);
        }
        self.record_consent(event, body, at, policy);
    }

    /// A ledger entry for the consent signals the event carries. Every statement is kept,
    /// repeats included: an event logged later may carry an earlier time, and the state
    /// after it is only right if the later restatements are still there.
    fn record_consent(&mut self, event: &StoredEvent, body: &Value, at: i64, policy: &Policy) {
        let signals = EventSignals::read(body);
        if signals.is_empty() {
            return;
        }
        let named: Vec<_> = signals.named().into_iter().map(|(_, s)| s).collect();
        let decisions: BTreeMap<String, Decision> = policy
            .decide(&named)
            .into_iter()
            .filter(|(purpose, d)| *d != Decision::NotStated && !policy.always_granted(purpose))
            .collect();
        let mut evidence = Map::new();
        if let Some(tc) = signals.tcf() {
            evidence.insert("cmp_id".into(), tc.cmp_id.into());
            evidence.insert("cmp_version".into(), tc.cmp_version.into());
            evidence.insert("vendor_list_version".into(), tc.vendor_list_version.into());
        }
        if let Some(url) = body.pointer("/context/page/url").filter(|v| v.is_string()) {
            evidence.insert("page_url".into(), url.clone());
        }
        if let Some(stated) = body
            .pointer("/context/consent/evidence")
            .and_then(Value::as_object)
        {
            evidence.extend(stated.clone());
        }
        self.consent.record(ConsentChange {
            at,
            seq: event.seq,
            source: source_name(event.source_id),
            signals: signals.raw(),
            decisions,
            jurisdiction: body
                .pointer("/context/consent/jurisdiction")
                .and_then(Value::as_str)
                .map(str::to_owned),
            evidence,
        });
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
        self.consent.absorb(other.consent);
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
    /// The event as JSON as it was applied (the follower's holds only [`ReadKeys`]), for the
    /// memberships that read it next.
    pub body: Option<Value>,
    /// Whether the consent in force at the event grants `analytics`: if not, measurement
    /// only counts it, without identifiers ([`Profiles::denied_counts`]).
    pub analytics: bool,
    /// When the event happened ([`event_time`]), read once for everything that needs it.
    pub at: i64,
}

/// Where an event's profile is ([`Profiles::locate_event`]).
#[derive(Debug, PartialEq)]
pub enum EventProfile {
    Held(ProfileId),
    /// Not all of the event's identifiers are held: the stored holder of the first of
    /// these (highest priority first) that any profile holds.
    Stored(Vec<Identifier>),
    /// No profile holds any of its identifiers.
    None,
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
        let none = Facts::default();
        let facts = self.facts.unwrap_or(&none);
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

/// A profile's stored document: its identity (identifiers, counts, history) and its facts
/// (without the timeline, which is stored as rows).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProfileDoc {
    pub identity: Profile,
    #[serde(default)]
    pub facts: Facts,
}

#[derive(Serialize)]
struct ProfileDocRef<'a> {
    identity: &'a Profile,
    #[serde(skip_serializing_if = "Option::is_none")]
    facts: Option<&'a Facts>,
}

impl ProfileDoc {
    pub fn parse(doc: &str) -> Result<ProfileDoc, serde_json::Error> {
        serde_json::from_str(doc)
    }

    /// A stored profile: its document and its consent ledger entries.
    pub fn read(stored: &StoredProfile) -> Result<ProfileDoc, serde_json::Error> {
        let mut doc = ProfileDoc::parse(&stored.doc)?;
        let changes = stored
            .consent
            .iter()
            .map(|change| serde_json::from_str(change))
            .collect::<Result<Vec<ConsentChange>, _>>()?;
        doc.facts.consent = Ledger::from_changes(changes);
        Ok(doc)
    }

    pub fn view(&self) -> ProfileView<'_> {
        ProfileView {
            identity: &self.identity,
            facts: Some(&self.facts),
        }
    }
}

/// What changed since the changes were last taken, by id; turned into rows on taking.
#[derive(Debug, Default)]
struct Changed {
    profiles: FxHashSet<ProfileId>,
    identifiers: FxHashSet<Identifier>,
    retired: Vec<(ProfileId, ProfileId)>,
    events: Vec<(ProfileId, i64)>,
    /// `(profile, seq)` of new consent ledger entries.
    consent: Vec<(ProfileId, i64)>,
    denied: DeniedCounts,
}

/// The purpose whose absence keeps an event out of person-level measurement.
const ANALYTICS: &str = "analytics";

pub struct Profiles {
    graph: Graph,
    rules: Rules,
    policy: Policy,
    facts: FxHashMap<ProfileId, Facts>,
    last_seq: i64,
    changed: Changed,
    /// Changes made by events after this seq are kept for [`Profiles::take_changes`].
    track_after: i64,
    /// Events not covered by analytics consent, counted without identifiers.
    denied: DeniedCounts,
    /// The day of the last event counted in `denied`, as text.
    day: DayText,
    /// Whether this holds part of the profiles, loaded from the store as events need them
    /// ([`Profiles::working_set`]): then timelines are not kept in memory (they are rows)
    /// and the least recently used profiles can be evicted once stored.
    partial: bool,
    /// When each profile was last loaded or had an event, by [`Profiles::apply`] count.
    used: FxHashMap<ProfileId, u64>,
    clock: u64,
}

impl Profiles {
    /// Empty profiles under the default consent policy that keep every change for
    /// [`Profiles::take_changes`].
    pub fn new(rules: Rules) -> Profiles {
        Profiles::with_policy(rules, Policy::default())
    }

    /// Empty profiles whose consent ledgers read signals under `policy`.
    pub fn with_policy(rules: Rules, policy: Policy) -> Profiles {
        Profiles {
            graph: Graph::new(),
            rules,
            policy,
            facts: FxHashMap::default(),
            last_seq: 0,
            changed: Changed::default(),
            track_after: 0,
            denied: DeniedCounts::default(),
            day: DayText::default(),
            partial: false,
            used: FxHashMap::default(),
            clock: 0,
        }
    }

    /// Profiles that hold only a working set, as the store left them at `last_seq`, with
    /// the stored counts of events without analytics consent (`rows.denied_counts`; other
    /// rows are loaded as events need them by [`Profiles::load`]). Changes made from here
    /// on are kept for [`Profiles::take_changes`].
    pub fn working_set(
        rules: Rules,
        policy: Policy,
        denied: &[DeniedCount],
        last_seq: i64,
    ) -> Profiles {
        let mut profiles = Profiles::with_policy(rules, policy);
        profiles.partial = true;
        profiles.last_seq = last_seq;
        profiles.track_after = last_seq;
        profiles.denied = DeniedCounts::from_rows(denied);
        profiles
    }

    /// Makes these profiles a working set from here on (after a replay that held them all).
    pub fn make_partial(&mut self) {
        self.partial = true;
        for facts in self.facts.values_mut() {
            facts.events = Vec::new();
        }
    }

    /// The identifiers the events carry that no profile held here holds, each once: in a
    /// working set, those to look up in the store before applying the events.
    pub fn unknown_identifiers<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Parsed>,
    ) -> Vec<Identifier> {
        let mut unknown = FxHashSet::default();
        for event in events {
            for identifier in &event.identifiers.identifiers {
                if !self.graph.holds(identifier) {
                    unknown.insert(identifier.clone());
                }
            }
        }
        let mut unknown: Vec<Identifier> = unknown.into_iter().collect();
        unknown.sort_unstable();
        unknown
    }

    /// Whether these profiles hold only a working set.
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// Whether a live profile is held here.
    pub fn holds(&self, profile: ProfileId) -> bool {
        self.graph.profile(profile).is_some_and(|p| p.id == profile)
    }

    /// Adds stored profiles (documents and identifier rows, as [`Profiles::take_changes`]
    /// wrote them) to a working set; returns the ids of those added (a profile held already
    /// is newer here and stays).
    pub fn load(&mut self, rows: &ProfileRows) -> Result<Vec<ProfileId>, String> {
        let (identities, facts) = parse_docs(rows)?;
        let mut added = Vec::new();
        let mut fresh = Vec::new();
        for (identity, facts) in identities.into_iter().zip(facts) {
            if !self.holds(identity.id) {
                added.push(identity.id);
                self.used.insert(identity.id, self.clock);
                self.facts.insert(identity.id, facts);
                fresh.push(identity);
            }
        }
        self.graph.load(fresh, parse_identifiers(rows)?);
        Ok(added)
    }

    /// Once a working set holds more than `capacity` profiles, evicts the least recently
    /// used down to nine tenths of it (so that eviction runs now and then, not on every
    /// page), all but those with changes not yet taken and those in `keep` (taken, not yet
    /// stored); returns their ids. What is evicted is read back from the store when needed,
    /// so every change of theirs must be stored by then.
    pub fn evict_to(&mut self, capacity: usize, keep: &FxHashSet<ProfileId>) -> Vec<ProfileId> {
        self.graph.forget_merges();
        let count = self.graph.profile_count();
        if !self.partial || count <= capacity {
            return Vec::new();
        }
        let mut by_use: Vec<(u64, ProfileId)> = self
            .used
            .iter()
            .map(|(&id, &at)| (at, id))
            .filter(|(_, id)| !self.changed.profiles.contains(id) && !keep.contains(id))
            .collect();
        let excess = (count - capacity + capacity / 10).min(by_use.len());
        if excess < by_use.len() {
            by_use.select_nth_unstable(excess);
        }
        by_use.truncate(excess);
        let evicted: Vec<ProfileId> = by_use.into_iter().map(|(_, id)| id).collect();
        for id in &evicted {
            self.graph.evict(*id);
            self.facts.remove(id);
            self.used.remove(id);
        }
        evicted
    }

    /// Drops the profiles given (an erased person: live and retired ids) and every change
    /// not yet taken about them, whether or not this is a working set; returns the live ids
    /// dropped. Their stored rows are gone too: nothing reads them back.
    pub fn forget(&mut self, ids: &[ProfileId]) -> Vec<ProfileId> {
        let gone: FxHashSet<ProfileId> = ids.iter().copied().collect();
        let mut dropped = Vec::new();
        for &id in ids {
            if self.holds(id) {
                if let Some(profile) = self.graph.profile(id) {
                    for identifier in &profile.identifiers {
                        self.changed.identifiers.remove(identifier);
                    }
                }
                self.graph.evict(id);
                dropped.push(id);
            }
            self.facts.remove(&id);
            self.used.remove(&id);
        }
        let changed = &mut self.changed;
        changed.profiles.retain(|id| !gone.contains(id));
        changed
            .retired
            .retain(|(from, into)| !gone.contains(from) && !gone.contains(into));
        changed.events.retain(|(id, _)| !gone.contains(id));
        changed.consent.retain(|(id, _)| !gone.contains(id));
        dropped
    }

    /// Profiles as a snapshot ([`Profiles::snapshot`]) stored them, having applied the log
    /// through `last_seq`: the same state as the replay that made them, without replaying.
    /// Changes made from here on are kept for [`Profiles::take_changes`].
    pub fn restore(
        rules: Rules,
        policy: Policy,
        rows: &ProfileRows,
        last_seq: i64,
    ) -> Result<Profiles, String> {
        let (identities, parsed) = parse_docs(rows)?;
        let mut facts: FxHashMap<ProfileId, Facts> = identities
            .iter()
            .map(|identity| identity.id)
            .zip(parsed)
            .collect();
        for &(profile, seq) in &rows.events {
            facts
                .entry(ProfileId(profile))
                .or_default()
                .events
                .push(seq);
        }
        for f in facts.values_mut() {
            f.events.sort_unstable();
        }
        let identifiers = parse_identifiers(rows)?;
        let merged = rows
            .retired
            .iter()
            .map(|&(from, into)| (ProfileId(from), ProfileId(into)));
        Ok(Profiles {
            graph: Graph::restore(identities, identifiers, merged),
            rules,
            policy,
            facts,
            last_seq,
            changed: Changed::default(),
            track_after: last_seq,
            denied: DeniedCounts::from_rows(&rows.denied_counts),
            day: DayText::default(),
            partial: false,
            used: FxHashMap::default(),
            clock: 0,
        })
    }

    /// Keeps only the changes made by events after `seq` (`i64::MAX`: none), e.g. when
    /// replaying a log whose prefix is already stored.
    pub fn track_changes_after(&mut self, seq: i64) {
        self.track_after = seq;
    }

    /// The last log position applied.
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// Applies one event from the log: the profile it landed on and the merges it caused.
    /// Events at or before the last applied position are skipped, so replaying a page after
    /// a restart or a retry changes nothing.
    pub fn apply(&mut self, event: &StoredEvent) -> Applied {
        let parsed = serde_json::from_str(&event.body).ok();
        self.apply_parsed(event, parsed.map(|body| Parsed::of(body, &self.rules)))
    }

    /// [`Profiles::apply`] with the event's body parsed already (`None`: not JSON), its
    /// identifiers read under these profiles' rules.
    pub fn apply_parsed(&mut self, event: &StoredEvent, parsed: Option<Parsed>) -> Applied {
        if event.seq <= self.last_seq {
            return Applied::default();
        }
        self.last_seq = event.seq;
        let Some(Parsed { body, identifiers }) = parsed else {
            return Applied::default();
        };
        // Against the graph itself: a slice of it (what a processor holding part of the
        // graph would pass) resolves the same, as the identity tests check, but costs
        // copies of every identifier's state for each event.
        let mut resolution = resolve(&identifiers, &self.graph, &self.rules, event.seq);
        if let Some(evidence) = linkage_evidence(&body) {
            resolution = resolution.by_record_linkage(evidence.clone());
        }
        let merges: Vec<(ProfileId, ProfileId)> = resolution
            .changes
            .iter()
            .filter_map(|change| match change {
                Change::Merge { from, into, .. } => Some((*from, *into)),
                _ => None,
            })
            .collect();
        let profile = resolution.profile;
        let tracked = event.seq > self.track_after;
        if tracked {
            self.changed.note(&resolution.changes);
        }
        self.graph.apply(resolution);
        for &(from, into) in &merges {
            self.used.remove(&from);
            if let Some(absorbed) = self.facts.remove(&from) {
                self.facts.entry(into).or_default().absorb(absorbed);
            }
            if tracked && self.graph.canonical(from) != Some(from) {
                self.changed.retired.push((from, into));
            }
        }
        let profile = profile.and_then(|p| self.graph.canonical(p));
        let at = event_time(event, &body);
        self.clock += 1;
        if let Some(profile) = profile {
            self.used.insert(profile, self.clock);
            let facts = self.facts.entry(profile).or_default();
            facts.record(event, &body, at, &self.policy, !self.partial);
            if tracked {
                self.changed.profiles.insert(profile);
                self.changed.events.push((profile, event.seq));
                if facts.consent.change_of(event.seq).is_some() {
                    self.changed.consent.push((profile, event.seq));
                }
            }
        }
        let analytics = self.analytics_granted(profile, event, &body, at);
        if !analytics {
            let day = self.day.of(at);
            let name = denied_name(event, &body);
            self.denied.add(day, event.source_id, name, 1);
            if tracked {
                self.changed.denied.add(day, event.source_id, name, 1);
            }
        }
        Applied {
            profile,
            merged: merges,
            body: Some(body),
            analytics,
            at,
        }
    }

    /// Every live profile, in id order.
    pub fn profiles(&self) -> impl Iterator<Item = ProfileView<'_>> {
        self.graph
            .profiles()
            .into_iter()
            .map(|identity| ProfileView {
                identity,
                facts: self.facts.get(&identity.id),
            })
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

    /// Whether analytics consent covers the event: its profile's ledger at the event's
    /// moment (`at`), or, on no profile, the signals it carries.
    fn analytics_granted(
        &self,
        profile: Option<ProfileId>,
        event: &StoredEvent,
        body: &Value,
        at: i64,
    ) -> bool {
        let decision = match profile.and_then(|p| self.facts.get(&p)) {
            Some(facts) => facts
                .consent
                .decision_at(ANALYTICS, at, event.seq)
                .map(|s| s.decision),
            None => {
                let signals = EventSignals::read(body);
                let named: Vec<_> = signals.named().into_iter().map(|(_, s)| s).collect();
                self.policy.decide(&named).get(ANALYTICS).copied()
            }
        };
        decision == Some(Decision::Granted) || self.policy.always_granted(ANALYTICS)
    }

    /// Counts of events without analytics consent, by day, source and event name, within
    /// `from..=to` (days as `YYYY-MM-DD`).
    pub fn denied_counts(&self, from: &str, to: &str) -> Vec<DeniedCount> {
        self.denied.rows_within(from, to)
    }

    /// Where the live profile an event is on (the holder of its highest-priority
    /// identifier) is: here, in the store (a working set that does not hold all of the
    /// event's identifiers), or nowhere.
    pub fn locate_event(&self, body: &Value) -> EventProfile {
        let mut identifiers = extract(body, &self.rules).identifiers;
        identifiers.sort_by_key(|i| self.rules.rank(&i.id_type));
        if self.partial && identifiers.iter().any(|i| !self.graph.holds(i)) {
            return EventProfile::Stored(identifiers);
        }
        identifiers
            .iter()
            .find_map(|i| self.graph.identifier(i))
            .and_then(|state| self.graph.canonical(state.profile))
            .map_or(EventProfile::None, EventProfile::Held)
    }

    pub fn profile_count(&self) -> usize {
        self.graph.profile_count()
    }

    pub fn facts(&self, profile: ProfileId) -> Option<&Facts> {
        self.facts.get(&profile)
    }

    /// The rows that changed since the last call (for events after the tracking start),
    /// each as the state now stands.
    pub fn take_changes(&mut self) -> ProfileRows {
        let changed = std::mem::take(&mut self.changed);
        let mut live: Vec<ProfileId> = changed
            .profiles
            .into_iter()
            .filter_map(|p| self.graph.canonical(p))
            .collect();
        live.sort_unstable();
        live.dedup();
        let mut identifiers: Vec<&Identifier> = changed.identifiers.iter().collect();
        identifiers.sort_unstable();
        ProfileRows {
            retired: changed
                .retired
                .into_iter()
                .map(|(from, into)| (from.0, into.0))
                .collect(),
            profiles: live.into_iter().filter_map(|id| self.doc_row(id)).collect(),
            identifiers: identifiers
                .into_iter()
                .filter_map(|i| self.identifier_row(i))
                .collect(),
            events: changed
                .events
                .into_iter()
                .filter_map(|(p, seq)| Some((self.graph.canonical(p)?.0, seq)))
                .collect(),
            denied_counts: changed.denied.rows(),
            consent: changed
                .consent
                .into_iter()
                .filter_map(|(p, seq)| self.consent_row(self.graph.canonical(p)?, seq))
                .collect(),
            ..ProfileRows::default()
        }
    }

    /// Every row of the current state, as a rebuild stores it.
    pub fn snapshot(&self) -> ProfileRows {
        let profiles = self.graph.profiles();
        let mut rows = ProfileRows::default();
        for profile in profiles {
            rows.profiles.extend(self.doc_row(profile.id));
            rows.identifiers.extend(
                profile
                    .identifiers
                    .iter()
                    .filter_map(|i| self.identifier_row(i)),
            );
            if let Some(facts) = self.facts.get(&profile.id) {
                rows.events
                    .extend(facts.events.iter().map(|&seq| (profile.id.0, seq)));
                rows.consent.extend(
                    facts
                        .consent
                        .changes()
                        .iter()
                        .filter_map(|c| self.consent_row(profile.id, c.seq)),
                );
            }
        }
        rows.denied_counts = self.denied.rows();
        rows.retired = self
            .graph
            .merges()
            .map(|(from, into)| (from.0, into.0))
            .collect();
        rows.retired.sort_unstable();
        // In key order, so a store's index is written front to back rather than split at
        // random: several times faster on a million profiles.
        rows.identifiers
            .sort_unstable_by(|a, b| (&a.id_type, &a.value).cmp(&(&b.id_type, &b.value)));
        rows
    }

    fn consent_row(&self, profile: ProfileId, seq: i64) -> Option<(i64, i64, String)> {
        let change = self.facts.get(&profile)?.consent.change_of(seq)?;
        Some((profile.0, seq, serde_json::to_string(change).ok()?))
    }

    fn doc_row(&self, id: ProfileId) -> Option<(i64, String)> {
        let doc = ProfileDocRef {
            identity: self.graph.profile(id)?,
            facts: self.facts.get(&id),
        };
        Some((id.0, serde_json::to_string(&doc).ok()?))
    }

    fn identifier_row(&self, identifier: &Identifier) -> Option<IdentifierRow> {
        let state = self.graph.identifier(identifier)?;
        Some(IdentifierRow {
            id_type: identifier.id_type.as_str().to_owned(),
            value: identifier.value.clone(),
            profile: state.profile.0,
            shared: state.shared,
            seen_with: serde_json::to_string(&state.seen_with).ok()?,
        })
    }
}

/// Stored profile documents with their consent ledger rows, read: identities and facts,
/// aligned.
fn parse_docs(rows: &ProfileRows) -> Result<(Vec<Profile>, Vec<Facts>), String> {
    let mut ledgers: FxHashMap<i64, Vec<ConsentChange>> = FxHashMap::default();
    for (profile, seq, change) in &rows.consent {
        let change: ConsentChange = serde_json::from_str(change)
            .map_err(|e| format!("profile {profile}'s consent at seq {seq}: {e}"))?;
        ledgers.entry(*profile).or_default().push(change);
    }
    let mut identities = Vec::with_capacity(rows.profiles.len());
    let mut facts = Vec::with_capacity(rows.profiles.len());
    for (id, doc) in &rows.profiles {
        let doc = ProfileDoc::parse(doc).map_err(|e| format!("profile {id}: {e}"))?;
        if doc.identity.id.0 != *id {
            return Err(format!(
                "profile {id}: its document is of {}",
                doc.identity.id.0
            ));
        }
        let mut doc_facts = doc.facts;
        doc_facts.consent = Ledger::from_changes(ledgers.remove(id).unwrap_or_default());
        identities.push(doc.identity);
        facts.push(doc_facts);
    }
    Ok((identities, facts))
}

/// Stored identifier rows, read.
fn parse_identifiers(
    rows: &ProfileRows,
) -> Result<Vec<(Identifier, sightline_identity::IdentifierState)>, String> {
    rows.identifiers
        .iter()
        .map(|row| {
            let seen_with: Vec<ProfileId> = serde_json::from_str(&row.seen_with)
                .map_err(|e| format!("identifier {}:{}: {e}", row.id_type, row.value))?;
            Ok((
                Identifier::new(IdType::parse(&row.id_type), row.value.clone()),
                sightline_identity::IdentifierState {
                    profile: ProfileId(row.profile),
                    shared: row.shared,
                    seen_with,
                },
            ))
        })
        .collect()
}

/// The evidence of a record linkage event: an identify call carrying a `context.linkage`
/// object (a CRM import's automatic link, or a link accepted in clerical review). Its
/// identifiers join under the usual merge protection; the evidence goes into the history.
fn linkage_evidence(body: &Value) -> Option<&Value> {
    (body.get("type").and_then(Value::as_str) == Some("identify"))
        .then(|| body.pointer("/context/linkage"))
        .flatten()
        .filter(|evidence| evidence.is_object())
}

/// The name an event without analytics consent is counted under (with its day and source).
fn denied_name<'a>(event: &StoredEvent, body: &'a Value) -> &'a str {
    let name = match event.event_type {
        sightline_core::EventType::Track => body.get("event"),
        sightline_core::EventType::Page | sightline_core::EventType::Screen => body.get("name"),
        _ => None,
    };
    name.and_then(Value::as_str)
        .unwrap_or(event.event_type.as_str())
}

impl Changed {
    /// Notes whose rows a resolution's changes touch (merges are noted once applied).
    fn note(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::CreateProfile {
                    profile,
                    identifier,
                    ..
                }
                | Change::Attach {
                    profile,
                    identifier,
                    ..
                } => {
                    self.profiles.insert(*profile);
                    self.identifiers.insert(identifier.clone());
                }
                Change::Merge { into, .. } => {
                    self.profiles.insert(*into);
                }
                Change::Refuse { profile, owner, .. } => {
                    self.profiles.extend(profile.iter().chain(owner.iter()));
                }
                Change::SeenWith { identifier, .. } => {
                    self.identifiers.insert(identifier.clone());
                }
                Change::FlagShared {
                    identifier, owner, ..
                } => {
                    self.identifiers.insert(identifier.clone());
                    self.profiles.insert(*owner);
                }
            }
        }
    }
}

mod denied;
use denied::{DayText, DeniedCounts};
mod memberships;
pub use memberships::{stored_audiences, stored_computed, Memberships};

#[cfg(test)]
mod tests;
