//! `sightline import crm`, `POST /api/v1/imports/crm` and the clerical review queue
//! (`sightline link review …`, `/api/v1/link-reviews`).
//!
//! The log stays the source of truth: every imported record is an `identify` event (its
//! identifiers in `context.externalIds`, its traits in `traits`), so identity links exact
//! emails, phones and external ids like any event's (the deterministic pass). Then the
//! records are linked probabilistically to existing profiles and to each other; each
//! automatic or accepted link is one more `identify` event joining the two identifiers,
//! carrying its evidence in `context.linkage`. Identity applies it under merge protection
//! and records the evidence in the merge history, so a rebuild from the log gives the same
//! profiles. Pairs between the thresholds wait in `link_reviews` for a person.

pub mod mapping;
pub mod plan;
pub mod records;

use crate::access::{require, Actor, ADMIN};
use crate::profiles::{Live, ProfileRules};
use crate::{Error, Result};
use anyhow::Context;
use mapping::ImportMapping;
use plan::{Outcome, PassReport, ProposedLink};
use records::{BadRow, Origin, Warning};
use serde::Serialize;
use serde_json::{json, Value};
use sightline_core::{
    secret, time, LinkReview, NewEvent, NewLinkReview, ProfilesState, ReviewStatus,
};
use sightline_identity::Identifier;
use sightline_profiles::Profiles;
use sightline_store::{Access, Appended, EventLog, LinkReviews, Store, StoreError};
use std::time::{Duration, Instant};

/// An import's and a review's messageIds are remembered this long: importing the same row
/// again within it stores nothing new.
const DEDUP_MS: i64 = 24 * 3_600_000;
/// Events appended per store call.
const APPEND_CHUNK: usize = 1000;
/// How long the server's import waits for its profiles to take in what it appended.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Where an import reads profiles from once its events are in the log.
pub enum ProfilesAt {
    /// Replays the log (the command line).
    Replay(Box<ProfileRules>),
    /// The server's book, once it has followed the log far enough.
    Live(Live),
}

impl ProfilesAt {
    /// Runs `f` over profiles that have taken in the log through `seq`.
    async fn read<T>(
        &self,
        store: &dyn Store,
        seq: i64,
        f: impl FnOnce(&Profiles, &ProfileRules) -> T,
    ) -> Result<T> {
        match self {
            ProfilesAt::Replay(rules) => {
                let book = crate::profiles::rebuild(store, (**rules).clone()).await?;
                Ok(f(&book.profiles, &book.rules))
            }
            ProfilesAt::Live(book) => {
                let started = Instant::now();
                let rules = book.rules();
                loop {
                    // The server's book holds a working set: the stored profiles are whole.
                    let caught_up = |state: &ProfilesState| {
                        state.seq >= seq && state.rules == rules.fingerprint
                    };
                    let stored = match store.profiles_state().await? {
                        Some(state) if caught_up(&state) => store.load_profiles().await?,
                        _ => None,
                    };
                    if let Some((state, rows)) = stored {
                        if caught_up(&state) {
                            let profiles = Profiles::restore(
                                rules.rules.clone(),
                                rules.policy.clone(),
                                &rows,
                                state.seq,
                            )
                            .map_err(|e| {
                                Error::Internal(anyhow::anyhow!("stored profiles: {e}"))
                            })?;
                            return Ok(f(&profiles, rules));
                        }
                    }
                    if started.elapsed() > CATCH_UP {
                        return Err(Error::NotCaughtUp(format!(
                            "the profiles did not take in the imported events within {CATCH_UP:?}: \
                             the records are logged; import again to link them"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn rules(&self) -> ProfileRules {
        match self {
            ProfilesAt::Replay(rules) => (**rules).clone(),
            ProfilesAt::Live(book) => book.rules().clone(),
        }
    }
}

/// One automatic link as the import logged it.
#[derive(Debug, Serialize)]
pub struct LoggedLink {
    #[serde(flatten)]
    pub link: ProposedLink,
    /// The seq of the link event (`None` when the same link was logged within the dedup
    /// window already).
    pub seq: Option<i64>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Serialize)]
pub struct QueuedReview {
    /// The review item's id, `None` when the pair was queued (or decided) before.
    pub id: Option<i64>,
    #[serde(flatten)]
    pub link: ProposedLink,
}

/// What an import did.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub file: String,
    pub source: String,
    /// Good rows: logged now, or already logged by an earlier import of the same rows.
    pub records: usize,
    pub logged: usize,
    pub already_logged: usize,
    pub bad_rows: Vec<BadRow>,
    pub warnings: Vec<Warning>,
    /// Records on a profile that existed before the import after the deterministic pass
    /// (joined by an exact identifier, or imported before).
    pub joined_existing: usize,
    pub passes: Vec<PassReport>,
    pub auto_links: Vec<LoggedLink>,
    pub reviews: Vec<QueuedReview>,
    pub reviews_not_queued: usize,
}

/// Imports one CRM export: logs the records, links them, logs the automatic links and
/// queues the reviews. Bad rows are reported, never fatal; a header lacking a mapped
/// column is.
pub async fn import(
    store: &dyn Store,
    actor: &Actor,
    csv: &[u8],
    file: &str,
    mapping: &ImportMapping,
    profiles: &ProfilesAt,
) -> Result<ImportReport> {
    require(actor, ADMIN, "importing records")?;
    let rules = profiles.rules();
    let parsed = records::parse(csv, mapping, &rules.rules).map_err(Error::Invalid)?;
    let source_id = import_source(store, &mapping.source).await?;
    let origin = Origin {
        file: file.to_owned(),
        source_id,
        source: mapping.source.clone(),
    };
    let existing_through = store.last_seq().await?;
    let now = time::now_ms();
    let events: Vec<NewEvent> = parsed
        .records
        .iter()
        .map(|r| records::record_event(r, &origin, now))
        .collect();
    let appended = append(store, events, now).await?;
    let logged = appended.iter().filter(|s| s.is_some()).count();

    let log_end = store.last_seq().await?;
    let sides = profiles
        .read(store, log_end, |p, rules| {
            plan::sides(&parsed, mapping, p, &rules.rules, existing_through)
        })
        .await?;
    let joined_existing = sides.joined_existing;
    let settings = mapping.linkage.clone();
    let describe = origin.describe();
    let plan = tokio::task::spawn_blocking(move || plan::plan(&sides, &settings, &describe))
        .await
        .context("the linkage run failed")?;

    let now = time::now_ms();
    let link_events = plan
        .auto_links
        .iter()
        .map(|l| {
            records::link_event(
                &l.left,
                &l.right,
                l.evidence.clone(),
                records::auto_link_message_id(&l.left, &l.right),
                source_id,
                now,
            )
        })
        .collect();
    let seqs = append(store, link_events, now).await?;
    let queued = store
        .add_link_reviews(
            plan.reviews
                .iter()
                .map(|l| NewLinkReview {
                    origin: origin.describe(),
                    left: l.left.to_string(),
                    right: l.right.to_string(),
                    match_probability: l.match_probability,
                    evidence: l.evidence.to_string(),
                })
                .collect(),
        )
        .await?;
    let log_end = store.last_seq().await?;
    let auto_links = profiles
        .read(store, log_end, |p, _| {
            plan.auto_links
                .into_iter()
                .zip(seqs)
                .map(|(link, seq)| {
                    let outcome = plan::outcome(p, &link.left, &link.right, seq.unwrap_or(0));
                    LoggedLink { link, seq, outcome }
                })
                .collect()
        })
        .await?;
    let summary = serde_json::json!({
        "source": mapping.source,
        "records": parsed.records.len(),
        "logged": logged,
        "bad_rows": parsed.bad_rows.len(),
    });
    crate::audit::record(store, actor, "crm.import", file, None, Some(summary)).await?;
    Ok(ImportReport {
        file: file.to_owned(),
        source: mapping.source.clone(),
        records: parsed.records.len(),
        logged,
        already_logged: parsed.records.len() - logged,
        bad_rows: parsed.bad_rows,
        warnings: parsed.warnings,
        joined_existing,
        passes: plan.passes,
        auto_links,
        reviews: plan
            .reviews
            .into_iter()
            .zip(queued)
            .map(|(link, id)| QueuedReview { id, link })
            .collect(),
        reviews_not_queued: plan.reviews_not_queued,
    })
}

/// The source an import logs under, created on first use. Its write key is never shown:
/// nothing but imports writes as it.
async fn import_source(store: &dyn Access, name: &str) -> Result<i64> {
    if let Some(source) = store.source_by_name(name).await? {
        return Ok(source.id);
    }
    let key = secret::generate("", crate::sources::WRITE_KEY_LEN);
    match store.create_source(name, &secret::hash(&key)).await {
        Ok(source) => Ok(source.id),
        // Created meanwhile by a concurrent import.
        Err(StoreError::Conflict(_)) => Ok(store
            .source_by_name(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("source {name:?} vanished")))?
            .id),
        Err(e) => Err(e.into()),
    }
}

/// Appends in chunks; per event its seq, or `None` for a duplicate within the window.
async fn append(store: &dyn EventLog, events: Vec<NewEvent>, now: i64) -> Result<Vec<Option<i64>>> {
    let mut seqs = Vec::with_capacity(events.len());
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<NewEvent> = events.by_ref().take(APPEND_CHUNK).collect();
        for outcome in store.append(chunk, now - DEDUP_MS).await? {
            seqs.push(match outcome {
                Appended::Stored(seq) => Some(seq),
                Appended::Duplicate => None,
            });
        }
    }
    Ok(seqs)
}

/// Accepts a pending review item: logs the record linkage event joining the pair (with the
/// item's evidence, marked accepted) and records the decision with its seq.
pub async fn accept(store: &dyn Store, actor: &Actor, id: i64) -> Result<LinkReview> {
    require(actor, ADMIN, "deciding link reviews")?;
    let item = pending(store, id).await?;
    let (Some(left), Some(right)) = (
        Identifier::parse(&item.left),
        Identifier::parse(&item.right),
    ) else {
        return Err(Error::Conflict(format!(
            "review item {id} does not name two identifiers"
        )));
    };
    let mut evidence = item.evidence.clone();
    if let Some(object) = evidence.as_object_mut() {
        object.insert("decision".into(), "accepted".into());
        object.insert("review".into(), id.into());
    }
    let now = time::now_ms();
    let event = records::link_event(&left, &right, evidence, format!("link-review-{id}"), 0, now);
    let seq = match store.append(vec![event], now - DEDUP_MS).await?.first() {
        Some(Appended::Stored(seq)) => Some(*seq),
        _ => None,
    };
    let decided = store
        .decide_link_review(id, ReviewStatus::Accepted, seq)
        .await
        .map_err(review_error)?;
    audit_decision(store, actor, &decided).await?;
    Ok(decided)
}

/// Records a review decision (the pair's identifiers are the target).
async fn audit_decision(store: &dyn Store, actor: &Actor, item: &LinkReview) -> Result<()> {
    let after =
        serde_json::json!({"status": item.status.as_str(), "left": item.left, "right": item.right});
    let target = format!("review:{}", item.id);
    crate::audit::record(store, actor, "review.decide", &target, None, Some(after)).await
}

/// A review item the store does not hold is an unknown review, not an unknown record.
fn review_error(e: StoreError) -> Error {
    match e {
        StoreError::NotFound(message) => Error::not_found("review", message),
        other => other.into(),
    }
}

/// Rejects a pending review item: nothing is logged; the pair stays apart.
pub async fn reject(store: &dyn Store, actor: &Actor, id: i64) -> Result<LinkReview> {
    require(actor, ADMIN, "deciding link reviews")?;
    let decided = store
        .decide_link_review(id, ReviewStatus::Rejected, None)
        .await
        .map_err(review_error)?;
    audit_decision(store, actor, &decided).await?;
    Ok(decided)
}

async fn pending(store: &dyn LinkReviews, id: i64) -> Result<LinkReview> {
    match store.link_review(id).await? {
        Some(item) if item.status == ReviewStatus::Pending => Ok(item),
        found => Err(review_error(sightline_store::review_undecidable(
            id,
            found.as_ref(),
        ))),
    }
}

/// `all` or one status.
pub fn status_filter(text: &str) -> Result<Option<ReviewStatus>> {
    match text {
        "all" => Ok(None),
        other => ReviewStatus::parse(other).map(Some).ok_or_else(|| {
            Error::invalid(format!(
                "unknown review status {other:?}: use pending, accepted, rejected or all"
            ))
        }),
    }
}

/// Up to `limit` review items with `status` (all when `None`) after the id `after`.
pub async fn reviews(
    store: &dyn LinkReviews,
    actor: &Actor,
    status: Option<ReviewStatus>,
    after: i64,
    limit: usize,
) -> Result<Vec<LinkReview>> {
    require(actor, ADMIN, "reading link reviews")?;
    Ok(store.link_reviews(status, after, limit).await?)
}

/// One review item, or an error naming its id.
pub async fn review(store: &dyn LinkReviews, actor: &Actor, id: i64) -> Result<LinkReview> {
    require(actor, ADMIN, "reading link reviews")?;
    store
        .link_review(id)
        .await?
        .ok_or_else(|| Error::not_found("review", format!("no review item {id}")))
}

/// A review item in words: the pair, its probability and the waterfall.
pub fn review_text(item: &LinkReview) -> String {
    format!(
        "review {} [{}] {} <-> {}, match probability {:.6} ({}){}",
        item.id,
        item.status.as_str(),
        item.left,
        item.right,
        item.match_probability,
        item.origin,
        sightline_identity::linkage_evidence(&item.evidence)
    )
}

/// The item as the CLI and API show a decision.
pub fn decided(item: &LinkReview) -> Value {
    json!({"id": item.id, "status": item.status, "seq": item.seq,
           "left": item.left, "right": item.right})
}
