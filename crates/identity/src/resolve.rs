//! The pure core: one event's identifiers plus the part of the graph they touch in, a list of
//! plain changes out. No IO and no hidden state, so the same function serves the in-memory
//! graph and a database-backed processor.

use serde::{Deserialize, Serialize};

use crate::extract::{Call, EventIdentifiers, RejectReason};
use crate::identifier::{IdType, Identifier, ProfileId};
use crate::rules::Rules;

/// The rule that decided a link, a merge or a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Identifiers seen together on one track, page, screen or group event.
    SameEvent,
    /// An identify call (typically anonymousId with userId and traits).
    Identify,
    /// An alias call joining previousId to userId.
    Alias,
    /// The link would give a profile more identifiers of one type than its limit.
    LimitExceeded,
    /// The value is a configured placeholder.
    BlockedValue,
    /// The value failed normalisation.
    InvalidValue,
    /// The identifier was seen with too many profiles and no longer links.
    SharedIdentifier,
    /// Both profiles hold a user_id; they are different people.
    ConflictingUserId,
    /// A probabilistic record link (an identify event carrying `context.linkage`: an
    /// automatic link above the upper threshold, or one a person accepted in review).
    RecordLinkage,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::SameEvent => "same_event",
            Rule::Identify => "identify",
            Rule::Alias => "alias",
            Rule::LimitExceeded => "limit_exceeded",
            Rule::BlockedValue => "blocked_value",
            Rule::InvalidValue => "invalid_value",
            Rule::SharedIdentifier => "shared_identifier",
            Rule::ConflictingUserId => "conflicting_user_id",
            Rule::RecordLinkage => "record_linkage",
        }
    }
}

/// What the graph knows about one identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifierState {
    /// The profile that owns the identifier.
    pub profile: ProfileId,
    /// Flagged as shared: it no longer links anything.
    pub shared: bool,
    /// Other profiles this identifier was seen with but refused to join (distinct ids).
    pub seen_with: Vec<ProfileId>,
}

/// What resolution needs to know about a profile: how many identifiers of each type it
/// holds. Built-in types are counted inline, so reading a summary costs no extra memory
/// access; it serialises as a list of `[type, count]` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(IdType, u32)>", into = "Vec<(IdType, u32)>")]
pub struct ProfileSummary {
    builtin: [u32; BUILTIN.len()],
    custom: Vec<(IdType, u32)>,
}

static BUILTIN: [IdType; 5] = [
    IdType::UserId,
    IdType::Email,
    IdType::Phone,
    IdType::DeviceId,
    IdType::AnonymousId,
];

fn builtin_index(id_type: &IdType) -> Option<usize> {
    match id_type {
        IdType::UserId => Some(0),
        IdType::Email => Some(1),
        IdType::Phone => Some(2),
        IdType::DeviceId => Some(3),
        IdType::AnonymousId => Some(4),
        IdType::Custom(_) => None,
    }
}

impl ProfileSummary {
    pub fn count(&self, id_type: &IdType) -> u32 {
        match builtin_index(id_type) {
            Some(i) => self.builtin[i],
            None => self
                .custom
                .iter()
                .find(|(t, _)| t == id_type)
                .map_or(0, |&(_, n)| n),
        }
    }

    pub fn add(&mut self, id_type: &IdType, n: u32) {
        let slot = match builtin_index(id_type) {
            Some(i) => &mut self.builtin[i],
            None => {
                let position = self.custom.iter().position(|(t, _)| t == id_type);
                let i = position.unwrap_or_else(|| {
                    self.custom.push((id_type.clone(), 0));
                    self.custom.len() - 1
                });
                &mut self.custom[i].1
            }
        };
        *slot = slot.saturating_add(n);
    }

    /// Adds every count of `other` (the summary of a merged profile).
    pub fn add_all(&mut self, other: &ProfileSummary) {
        for (id_type, n) in other.iter() {
            self.add(id_type, n);
        }
    }

    /// The types held, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (&IdType, u32)> {
        let builtin = BUILTIN.iter().zip(self.builtin);
        let custom = self.custom.iter().map(|(t, n)| (t, *n));
        builtin.chain(custom).filter(|&(_, n)| n > 0)
    }
}

impl FromIterator<(IdType, u32)> for ProfileSummary {
    fn from_iter<I: IntoIterator<Item = (IdType, u32)>>(counts: I) -> Self {
        let mut summary = ProfileSummary::default();
        for (id_type, n) in counts {
            summary.add(&id_type, n);
        }
        summary
    }
}

impl From<Vec<(IdType, u32)>> for ProfileSummary {
    fn from(counts: Vec<(IdType, u32)>) -> Self {
        counts.into_iter().collect()
    }
}

impl From<ProfileSummary> for Vec<(IdType, u32)> {
    fn from(summary: ProfileSummary) -> Self {
        summary.iter().map(|(t, n)| (t.clone(), n)).collect()
    }
}

/// Everything `resolve` reads from the graph. A [`GraphSlice`] loaded by a processor
/// implements it, and so does the in-memory [`Graph`](crate::Graph), which saves copying.
pub trait GraphView {
    /// The state of an identifier the graph holds.
    fn identifier_state(&self, identifier: &Identifier) -> Option<&IdentifierState>;
    /// The per-type counts of a live profile.
    fn profile_summary(&self, profile: ProfileId) -> Option<&ProfileSummary>;
}

/// The part of the identity graph one event touches: the state of those of its identifiers
/// the graph holds, and a summary of every profile owning one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphSlice {
    pub identifiers: Vec<(Identifier, IdentifierState)>,
    pub profiles: Vec<(ProfileId, ProfileSummary)>,
}

// Slices hold a handful of entries, so a linear scan beats hashing.
impl GraphView for GraphSlice {
    fn identifier_state(&self, identifier: &Identifier) -> Option<&IdentifierState> {
        self.identifiers
            .iter()
            .find(|(i, _)| i == identifier)
            .map(|(_, s)| s)
    }

    fn profile_summary(&self, profile: ProfileId) -> Option<&ProfileSummary> {
        self.profiles
            .iter()
            .find(|(p, _)| *p == profile)
            .map(|(_, s)| s)
    }
}

/// One change for the caller to apply, in order. Every variant but `SeenWith` is also a
/// history record of the profiles it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A new profile, id = the event's seq, owning `identifier`.
    CreateProfile {
        profile: ProfileId,
        identifier: Identifier,
        rule: Rule,
    },
    /// `identifier` now belongs to `profile`, joined through `joined_with` (already there).
    Attach {
        profile: ProfileId,
        identifier: Identifier,
        joined_with: Identifier,
        rule: Rule,
    },
    /// Every identifier and record of `from` moves to `into`; `from` is retired and
    /// redirects to `into`. `via` belonged to `from`, `joined_with` to `into`.
    Merge {
        from: ProfileId,
        into: ProfileId,
        via: Identifier,
        joined_with: Identifier,
        rule: Rule,
    },
    /// `identifier` did not link to `profile`. `owner` is the profile holding it, if any;
    /// `limit_type` names the type whose limit would have been exceeded.
    Refuse {
        identifier: Identifier,
        profile: Option<ProfileId>,
        owner: Option<ProfileId>,
        rule: Rule,
        limit_type: Option<IdType>,
    },
    /// Bookkeeping for shared detection: add `profile` to the identifier's `seen_with`.
    SeenWith {
        identifier: Identifier,
        profile: ProfileId,
    },
    /// The identifier was seen with `profiles` distinct profiles, more than `bound`.
    FlagShared {
        identifier: Identifier,
        owner: ProfileId,
        profiles: u32,
        bound: u32,
    },
}

/// A change as stored in a profile's history, with the seq of the event that caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: i64,
    #[serde(flatten)]
    pub change: Change,
    /// The evidence of the probabilistic link that caused this change, when a record
    /// linkage event did (see [`Resolution::by_record_linkage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkage: Option<serde_json::Value>,
}

/// The outcome of resolving one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub seq: i64,
    /// The profile the event belongs to; `None` when it carries no usable identifier.
    pub profile: Option<ProfileId>,
    pub changes: Vec<Change>,
    /// Evidence of a probabilistic link, copied into every history record of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkage: Option<serde_json::Value>,
}

impl Resolution {
    /// Marks the resolution of a record linkage event: its links and merges are attributed
    /// to [`Rule::RecordLinkage`] and every history record it makes (refusals included, so
    /// a link that merge protection refused shows what was refused) carries `evidence`.
    /// Merge protection itself is unchanged: `resolve` already decided what may join.
    pub fn by_record_linkage(mut self, evidence: serde_json::Value) -> Resolution {
        for change in &mut self.changes {
            match change {
                Change::CreateProfile { rule, .. }
                | Change::Attach { rule, .. }
                | Change::Merge { rule, .. } => *rule = Rule::RecordLinkage,
                _ => {}
            }
        }
        self.linkage = Some(evidence);
        self
    }
}

/// Why a profile with `other` counts may not join one with `counts`, if it may not.
fn merge_refusal(
    counts: &ProfileSummary,
    other: &ProfileSummary,
    rules: &Rules,
) -> Option<(Rule, Option<IdType>)> {
    if counts.count(&IdType::UserId) > 0 && other.count(&IdType::UserId) > 0 {
        return Some((Rule::ConflictingUserId, None));
    }
    other
        .iter()
        .find(|&(t, n)| counts.count(t).saturating_add(n) > rules.limit(t))
        .map(|(t, _)| (Rule::LimitExceeded, Some(t.clone())))
}

/// Resolves one event against the part of the graph it touches (a [`GraphSlice`] or the
/// whole in-memory [`Graph`](crate::Graph)).
///
/// Identifiers are taken in priority order (ties by type, then value). The first usable one
/// decides the event's profile; each following one joins it (attach or merge) unless that
/// would join two user_ids or break a limit, in which case it is refused and stays where it
/// was. The oldest joined profile survives a merge. Shared identifiers never link; an event
/// carrying nothing else lands on the shared identifier's owner.
pub fn resolve(
    event: &EventIdentifiers,
    graph: &impl GraphView,
    rules: &Rules,
    seq: i64,
) -> Resolution {
    let link_rule = match event.call {
        Call::Identify => Rule::Identify,
        Call::Alias => Rule::Alias,
        Call::Other => Rule::SameEvent,
    };
    // Blocked values are checked again so that the guarantee holds for identifiers that
    // did not come from `extract` (e.g. loaded by a processor under newer rules).
    let (mut order, blocked): (Vec<&Identifier>, Vec<&Identifier>) = event
        .identifiers
        .iter()
        .partition(|i| !rules.is_blocked(&i.id_type, &i.value));
    order.sort_by(|a, b| (rules.rank(&a.id_type), *a).cmp(&(rules.rank(&b.id_type), *b)));
    order.dedup();

    // The profile being assembled: existing profiles (each with the identifier that brought
    // it in), identifiers new to the graph, and the running count per type.
    let mut members: Vec<(ProfileId, &Identifier)> = Vec::new();
    let mut fresh: Vec<&Identifier> = Vec::new();
    let mut counts = ProfileSummary::default();
    let mut refused: Vec<(&Identifier, Option<&IdentifierState>, Rule, Option<IdType>)> =
        Vec::new();
    let mut shared_owner = None;
    let no_profile = ProfileSummary::default();

    for identifier in order {
        let started = !members.is_empty() || !fresh.is_empty();
        match graph.identifier_state(identifier) {
            Some(state) if state.shared => {
                shared_owner.get_or_insert(state.profile);
            }
            Some(state) => {
                if members.iter().any(|(p, _)| *p == state.profile) {
                    continue;
                }
                let summary = graph.profile_summary(state.profile).unwrap_or(&no_profile);
                match started
                    .then(|| merge_refusal(&counts, summary, rules))
                    .flatten()
                {
                    Some((rule, limit_type)) => {
                        refused.push((identifier, Some(state), rule, limit_type))
                    }
                    None => {
                        members.push((state.profile, identifier));
                        counts.add_all(summary);
                    }
                }
            }
            None => {
                let id_type = &identifier.id_type;
                if started && counts.count(id_type) >= rules.limit(id_type) {
                    let rule = if *id_type == IdType::UserId {
                        Rule::ConflictingUserId
                    } else {
                        Rule::LimitExceeded
                    };
                    refused.push((identifier, None, rule, Some(id_type.clone())));
                } else {
                    fresh.push(identifier);
                    counts.add(id_type, 1);
                }
            }
        }
    }

    let mut changes = Vec::new();
    let survivor = members.iter().min_by_key(|(p, _)| *p).copied();
    let (profile, joined_with, to_attach) = match (survivor, fresh.split_first()) {
        (Some((survivor, survivor_entry)), _) => {
            for &(from, via) in members.iter().filter(|(p, _)| *p != survivor) {
                changes.push(Change::Merge {
                    from,
                    into: survivor,
                    via: via.clone(),
                    joined_with: survivor_entry.clone(),
                    rule: link_rule,
                });
            }
            (Some(survivor), Some(survivor_entry), &fresh[..])
        }
        (None, Some((&first, rest))) => {
            let profile = ProfileId(seq);
            changes.push(Change::CreateProfile {
                profile,
                identifier: first.clone(),
                rule: link_rule,
            });
            (Some(profile), Some(first), rest)
        }
        (None, None) => (shared_owner, None, &fresh[..]),
    };
    if let (Some(profile), Some(joined_with)) = (profile, joined_with) {
        for identifier in to_attach {
            changes.push(Change::Attach {
                profile,
                identifier: (*identifier).clone(),
                joined_with: joined_with.clone(),
                rule: link_rule,
            });
        }
    }

    let rejected = event.rejected.iter().map(|r| {
        let rule = match r.reason {
            RejectReason::Blocked => Rule::BlockedValue,
            RejectReason::Invalid => Rule::InvalidValue,
        };
        (Identifier::new(r.id_type.clone(), r.raw.clone()), rule)
    });
    let blocked = blocked.into_iter().map(|i| (i.clone(), Rule::BlockedValue));
    for (identifier, rule) in rejected.chain(blocked) {
        changes.push(Change::Refuse {
            identifier,
            profile,
            owner: None,
            rule,
            limit_type: None,
        });
    }
    for (identifier, state, rule, limit_type) in refused {
        changes.push(Change::Refuse {
            identifier: identifier.clone(),
            profile,
            owner: state.map(|s| s.profile),
            rule,
            limit_type,
        });
        if let (Some(state), Some(profile)) = (state, profile) {
            note_seen_with(&mut changes, identifier, state, profile, rules);
        }
    }
    Resolution {
        seq,
        profile,
        changes,
        linkage: None,
    }
}

/// Records that an owned identifier was refused into `profile`, and flags it as shared once
/// it has been seen with more distinct profiles (its owner included) than the bound.
fn note_seen_with(
    changes: &mut Vec<Change>,
    identifier: &Identifier,
    state: &IdentifierState,
    profile: ProfileId,
    rules: &Rules,
) {
    if profile == state.profile || state.seen_with.contains(&profile) {
        return;
    }
    changes.push(Change::SeenWith {
        identifier: identifier.clone(),
        profile,
    });
    let others = state
        .seen_with
        .iter()
        .filter(|&&p| p != state.profile)
        .count();
    let profiles = u32::try_from(others).unwrap_or(u32::MAX).saturating_add(2);
    let bound = rules.shared_identifier_bound();
    if profiles > bound {
        changes.push(Change::FlagShared {
            identifier: identifier.clone(),
            owner: state.profile,
            profiles,
            bound,
        });
    }
}
