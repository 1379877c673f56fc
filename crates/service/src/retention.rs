//! Retention: events older than their source's maximum age (`[retention]` in the config)
//! are removed from the log on a schedule, with what derives only from them: the rows keyed
//! by those events (timelines, consent ledger entries, deliveries, dedup claims) and every
//! profile whose events have all expired (with its identifiers, memberships, states and
//! review items). The deletes are erasure's (`Erasure::erase`), so they carry its
//! guarantees: no live row keeps them, SQLite's files are checkpointed and their free pages
//! zeroed, and every processor's checkpoint stays valid. Nothing goes on the suppression
//! list: the people may come back.
//!
//! What stays: a profile that also has newer events keeps its document (traits and counts
//! that older events set) until a rebuild; its expired events leave its timeline.
//!
//! A sweep reads the log from its checkpoint (`retention`) in seq order, which is arrival
//! order, and stops at the first event no rule can expire yet, or at what the profiles
//! processor has not stored yet (its profiles must hold an event before retention can tell
//! whether it was their last). It resumes after the last event it passed that can never
//! expire later, so a source kept forever is not read again and again.

use crate::access::{require, Actor, ADMIN};
use crate::processors::{Placement, Processor, Step, StepFuture};
use crate::profiles::{Live, ProfileRules};
use crate::{Error, Result};
use serde::Serialize;
use sightline_core::{time, StoredEvent, StoredProfile};
use sightline_store::{ErasedCounts, ErasureTarget, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The sweep's position in the log (a checkpoint of its own).
pub const CHECKPOINT: &str = "retention";
/// Events read per page, and removed per transaction.
const PAGE: usize = 1_000;
/// How often the server sweeps by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(3600);

/// Maximum ages by source id; a source with none (and no default) keeps its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    default: Option<Duration>,
    sources: HashMap<i64, Option<Duration>>,
}

impl Policy {
    /// `default` for every source, `sources` (by id) for those with their own (`None`:
    /// kept forever even with a default).
    pub fn new(default: Option<Duration>, sources: HashMap<i64, Option<Duration>>) -> Policy {
        Policy { default, sources }
    }

    pub fn max_age(&self, source: i64) -> Option<Duration> {
        self.sources.get(&source).copied().unwrap_or(self.default)
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.sources.values().all(Option::is_none)
    }

    /// The time from which no rule can expire an event now: the youngest cutoff.
    fn horizon(&self, now: i64) -> i64 {
        self.sources
            .values()
            .chain([&self.default])
            .flatten()
            .map(|age| now - age.as_millis() as i64)
            .max()
            .unwrap_or(i64::MIN)
    }
}

/// What one event is to a sweep at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Expired,
    /// Kept now, expires later: the next sweep resumes here.
    Later,
    /// Never expires.
    Kept,
}

fn verdict(policy: &Policy, source: i64, received_at: i64, now: i64) -> Verdict {
    match policy.max_age(source) {
        Some(age) if received_at < now - age.as_millis() as i64 => Verdict::Expired,
        Some(_) => Verdict::Later,
        None => Verdict::Kept,
    }
}

/// One sweep's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Swept {
    /// Events removed from the log.
    pub events: usize,
    /// Profiles removed because every one of their events expired.
    pub profiles: usize,
    /// Rows deleted per table.
    pub counts: ErasedCounts,
    /// The sweep's position in the log when it stopped.
    pub checkpoint: i64,
    /// Stopped at its limit with more to look at.
    pub more: bool,
}

/// Removes what has expired at `now`, at most `limit` events; `book` is the server's
/// profiles (the deletes run while its follower is between steps, and the removed profiles
/// leave its memory), `None` from the command line.
pub async fn sweep(
    store: &dyn Store,
    book: Option<&Live>,
    rules: &ProfileRules,
    policy: &Policy,
    now: i64,
    limit: usize,
) -> Result<Swept> {
    let mut swept = Swept {
        checkpoint: store.checkpoint(CHECKPOINT).await?,
        ..Swept::default()
    };
    if policy.is_empty() {
        return Ok(swept);
    }
    let horizon = policy.horizon(now);
    let stored_through = store.profiles_state().await?.map_or(0, |state| state.seq);
    let mut after = swept.checkpoint;
    let mut resume = None;
    let mut expired = Vec::new();
    'scan: loop {
        let page = store.read_events(after, PAGE, None).await?;
        if page.is_empty() {
            break;
        }
        for event in page {
            if event.received_at >= horizon || event.seq > stored_through {
                break 'scan;
            }
            after = event.seq;
            match verdict(policy, event.source_id, event.received_at, now) {
                Verdict::Expired => expired.push(event),
                Verdict::Later => {
                    resume.get_or_insert(event.seq - 1);
                }
                Verdict::Kept => {}
            }
            if expired.len() >= PAGE {
                remove(store, book, rules, &mut expired, &mut swept).await?;
                if swept.events >= limit {
                    swept.more = true;
                    break 'scan;
                }
            }
        }
    }
    remove(store, book, rules, &mut expired, &mut swept).await?;
    swept.checkpoint = resume.unwrap_or(after).max(swept.checkpoint);
    store.set_checkpoint(CHECKPOINT, swept.checkpoint).await?;
    Ok(swept)
}

/// Removes `expired` (and empties it): the events, and the profiles left without events.
async fn remove(
    store: &dyn Store,
    book: Option<&Live>,
    rules: &ProfileRules,
    expired: &mut Vec<StoredEvent>,
    swept: &mut Swept,
) -> Result<()> {
    if expired.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = expired.iter().map(|e| e.seq).collect();
    let gone: HashSet<i64> = seqs.iter().copied().collect();
    let turn = match book {
        Some(book) => Some(book.turn().await),
        None => None,
    };
    let mut touched: BTreeMap<i64, StoredProfile> = BTreeMap::new();
    for event in expired.iter() {
        if let Some(profile) = profile_of(store, rules, event).await? {
            touched.entry(profile.id).or_insert(profile);
        }
    }
    let mut profiles = BTreeSet::new();
    let mut identifiers = BTreeSet::new();
    let mut kept_profile_events = Vec::new();
    for profile in touched.values() {
        let (expiring, staying): (Vec<i64>, Vec<i64>) = crate::erase::timeline(store, profile.id)
            .await?
            .into_iter()
            .partition(|seq| gone.contains(seq));
        if !staying.is_empty() {
            // The profile stays: only these events' entries go.
            kept_profile_events.extend(expiring.into_iter().map(|seq| (profile.id, seq)));
        } else {
            let doc = crate::lookup::stored_doc(profile)?;
            profiles.extend(
                crate::privacy::profile_ids(&doc.identity)
                    .iter()
                    .filter_map(|id| id.parse::<i64>().ok()),
            );
            identifiers.extend(
                doc.identity
                    .identifiers
                    .iter()
                    .map(|i| (i.id_type.as_str().to_owned(), i.value.clone())),
            );
        }
    }
    let profiles: Vec<i64> = profiles.into_iter().collect();
    let erased = store
        .erase(ErasureTarget {
            profiles: profiles.clone(),
            identifiers: identifiers.into_iter().collect(),
            seqs,
            kept_profile_events,
        })
        .await?;
    if let Some(book) = book {
        book.forget(&profiles, erased.profile_erasures);
    }
    drop(turn);
    let counts = erased.counts;
    swept.events += counts.get("events").copied().unwrap_or(0) as usize;
    swept.profiles += counts.get("profiles").copied().unwrap_or(0) as usize;
    for (table, n) in counts {
        *swept.counts.entry(table).or_default() += n;
    }
    expired.clear();
    Ok(())
}

/// The stored profile an event landed on, found by its identifiers.
async fn profile_of(
    store: &dyn Store,
    rules: &ProfileRules,
    event: &StoredEvent,
) -> Result<Option<StoredProfile>> {
    let Ok(body) = serde_json::from_str(&event.body) else {
        return Ok(None);
    };
    for identifier in sightline_identity::extract(&body, &rules.rules).identifiers {
        if let Some(profile) = store
            .stored_profile(identifier.id_type.as_str(), &identifier.value)
            .await?
        {
            return Ok(Some(profile));
        }
    }
    Ok(None)
}

/// Sweeps until nothing has expired (`sightline privacy retention`); admin only. Recorded
/// in the audit log as `privacy.retention` when it removed anything.
pub async fn sweep_all(
    store: &dyn Store,
    actor: &Actor,
    rules: &ProfileRules,
    policy: &Policy,
) -> Result<Swept> {
    require(actor, ADMIN, "applying retention")?;
    if policy.is_empty() {
        return Err(Error::invalid(
            "no retention is configured: set [retention] default or sources in the config file",
        ));
    }
    let now = time::now_ms();
    let mut total = Swept::default();
    loop {
        let swept = sweep(store, None, rules, policy, now, 100 * PAGE).await?;
        add(&mut total, &swept);
        if !swept.more {
            break;
        }
    }
    record(store, actor, &total).await?;
    Ok(total)
}

fn add(total: &mut Swept, swept: &Swept) {
    total.events += swept.events;
    total.profiles += swept.profiles;
    for (table, n) in &swept.counts {
        *total.counts.entry(table.clone()).or_default() += n;
    }
    total.checkpoint = swept.checkpoint;
    total.more = swept.more;
}

async fn record(store: &dyn Store, actor: &Actor, swept: &Swept) -> Result<()> {
    if swept.events == 0 && swept.profiles == 0 {
        return Ok(());
    }
    crate::audit::record(
        store,
        actor,
        "privacy.retention",
        "retention",
        None,
        Some(serde_json::json!({
            "events": swept.events,
            "profiles": swept.profiles,
            "counts": swept.counts,
        })),
    )
    .await
}

/// The server's sweeps: every `every`, on the node running the profiles processor (its
/// memory is what the removed profiles must leave).
pub struct Retention {
    pub store: Arc<dyn Store>,
    pub book: Live,
    pub policy: Policy,
    pub every: Duration,
}

/// Who the server's sweeps act as in the audit log.
fn system() -> Actor {
    Actor {
        name: "retention".into(),
        role: crate::access::Role::Admin,
        token: None,
    }
}

impl Retention {
    async fn run(&self) -> anyhow::Result<Step> {
        let rules = self.book.rules().clone();
        let swept = sweep(
            self.store.as_ref(),
            Some(&self.book),
            &rules,
            &self.policy,
            time::now_ms(),
            10 * PAGE,
        )
        .await?;
        if swept.events > 0 {
            metrics::counter!("sightline_retention_events_removed_total")
                .increment(swept.events as u64);
            metrics::counter!("sightline_retention_profiles_removed_total")
                .increment(swept.profiles as u64);
            tracing::info!(
                events = swept.events,
                profiles = swept.profiles,
                "retention: expired events removed"
            );
            record(self.store.as_ref(), &system(), &swept).await?;
        }
        Ok(if swept.more { Step::More } else { Step::Idle })
    }
}

impl Processor for Retention {
    fn name(&self) -> String {
        "retention".into()
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(self.run())
    }

    fn idle(&self) -> Duration {
        self.every
    }

    // It changes the profiles processor's memory: it runs where that does.
    fn placement(&self) -> Placement {
        Placement::With("profiles")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn policy() -> Policy {
        Policy::new(
            Some(30 * DAY),
            HashMap::from([(2, Some(7 * DAY)), (3, None)]),
        )
    }

    #[test]
    fn a_source_of_its_own_wins_over_the_default() {
        let policy = policy();
        assert_eq!(policy.max_age(1), Some(30 * DAY));
        assert_eq!(policy.max_age(2), Some(7 * DAY));
        assert_eq!(policy.max_age(3), None);
        assert!(!policy.is_empty());
        assert!(Policy::new(None, HashMap::from([(3, None)])).is_empty());
    }

    #[test]
    fn events_expire_past_their_sources_age_only() {
        let policy = policy();
        let now = 100 * DAY.as_millis() as i64;
        let days_ago = |d: i64| now - d * DAY.as_millis() as i64;
        assert_eq!(verdict(&policy, 1, days_ago(31), now), Verdict::Expired);
        assert_eq!(verdict(&policy, 1, days_ago(29), now), Verdict::Later);
        assert_eq!(verdict(&policy, 2, days_ago(8), now), Verdict::Expired);
        assert_eq!(verdict(&policy, 3, days_ago(99), now), Verdict::Kept);
        // Nothing younger than the shortest age can expire.
        assert_eq!(policy.horizon(now), days_ago(7));
        assert_eq!(Policy::default().horizon(now), i64::MIN);
    }
}
