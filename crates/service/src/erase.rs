//! Erasure (GDPR article 17, CCPA's right to delete): removes one person, found through any
//! of their identifiers, from the log and every derived row (the store's `Erasure` role does
//! the deletes), puts their identifiers on the suppression list as keyed hashes, records the
//! erasure in the audit log and answers with a signed receipt, kept under its id.
//!
//! What belongs to the person ([`target`]), the keyed hashes ([`keyed_hash`]) and the
//! receipt ([`receipt`], [`sign`]) are plain functions of data; [`erase`] gathers, calls
//! them and the store, and records. The receipt and the audit entry hold no identifier in
//! clear: the subject is named by its keyed hash, which whoever holds the server's secret and
//! the identifier can check.

use crate::access::{require, Actor, PRIVACY};
use crate::privacy::{parse_subject, profile_ids, Subject};
use crate::processors::{Processor, Step, StepFuture};
use crate::profiles::Live;
use crate::{Error, Result};
use serde_json::{json, Value};
use sightline_activate::backoff::{self, Backoff};
use sightline_activate::webhook::{Answer, Webhook};
use sightline_core::secret::keyed_hash;
use sightline_core::{time, StoredEvent};
use sightline_core::{Destination, DestinationKind};
use sightline_identity::{Profile, Region};
use sightline_store::{DeletionRequest, ErasedCounts, ErasureTarget, Store};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Rows read per store call.
const PAGE: usize = 1000;

/// What later events carrying an erased identifier become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppress {
    /// Dropped at collection (and counted).
    Drop,
    /// Accepted without the erased identifiers.
    Strip,
}

impl Suppress {
    pub fn parse(text: &str) -> Result<Suppress> {
        match text {
            "drop" => Ok(Suppress::Drop),
            "strip" => Ok(Suppress::Strip),
            other => Err(Error::invalid(format!(
                "`mode` is drop (the default) or strip, not {other:?}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Suppress::Drop => "drop",
            Suppress::Strip => "strip",
        }
    }
}

/// The keyed hash an identifier is listed under (`type:value`, normalised).
pub fn identifier_hash(secret: &str, id_type: &str, value: &str) -> String {
    keyed_hash(secret, &format!("{id_type}:{value}"))
}

/// Whom to erase: the profile, every id merged into it, every identifier it holds (and the
/// one asked for), and the seqs of its events. `None` for the profile: only the identifier
/// asked for (no one holds it; rows naming it are still looked for).
pub fn target(subject: &Subject, profile: Option<&Profile>, seqs: Vec<i64>) -> ErasureTarget {
    let mut identifiers = vec![(subject.id_type.as_str().to_owned(), subject.value.clone())];
    let mut profiles = Vec::new();
    if let Some(profile) = profile {
        for identifier in &profile.identifiers {
            let pair = (
                identifier.id_type.as_str().to_owned(),
                identifier.value.clone(),
            );
            if !identifiers.contains(&pair) {
                identifiers.push(pair);
            }
        }
        profiles = profile_ids(profile)
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        profiles.sort_unstable();
    }
    let mut seqs = seqs;
    seqs.sort_unstable();
    seqs.dedup();
    ErasureTarget {
        profiles,
        identifiers,
        seqs,
        kept_profile_events: Vec::new(),
    }
}

/// What the erasure found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A person was found and erased.
    Erased,
    /// No one holds the identifier, and it was never erased.
    NothingFound,
    /// No one holds it: it was erased before (a no-op).
    AlreadyErased,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Erased => "erased",
            Outcome::NothingFound => "nothing found",
            Outcome::AlreadyErased => "already erased",
        }
    }
}

/// The facts a receipt states.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub id: String,
    pub requested_at: i64,
    pub completed_at: i64,
    pub actor: String,
    pub subject_type: String,
    pub subject_hash: String,
    pub outcome: Outcome,
    pub suppress: Suppress,
    pub profiles: usize,
    pub identifiers: usize,
    pub events: usize,
    pub counts: ErasedCounts,
    /// Each destination's deletion request and its answer ([`notify`]).
    pub notified: Vec<Value>,
}

/// The receipt, unsigned: what was removed (no identifier in clear), counts per table,
/// the destinations sent a deletion request and their answers.
pub fn receipt(facts: &Facts) -> Value {
    json!({
        "id": facts.id,
        "status": "completed",
        "outcome": facts.outcome.as_str(),
        "requested_at": time::format_ms(facts.requested_at),
        "completed_at": time::format_ms(facts.completed_at),
        "actor": facts.actor,
        "subject": {
            "identifier_type": facts.subject_type,
            "identifier_hmac_sha256": facts.subject_hash,
        },
        "removed": {
            "profiles": facts.profiles,
            "identifiers": facts.identifiers,
            "events": facts.events,
        },
        "counts": facts.counts,
        "suppression": {
            "mode": facts.suppress.as_str(),
            "identifiers_listed": facts.identifiers,
        },
        "destinations_notified": facts.notified,
    })
}

/// The bytes a receipt's signature covers: the receipt without its `signature` and
/// `follow_up` fields (the latter is added when it is read: what became of the deletion
/// requests still queued when it was signed), its object keys sorted at every level, as
/// compact JSON (Python's `json.dumps(r, sort_keys=True, separators=(",", ":"),
/// ensure_ascii=False)`).
pub fn canonical(receipt: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(fields) => {
                let mut keys: Vec<&String> = fields.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&fields[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut unsigned = receipt.clone();
    if let Some(fields) = unsigned.as_object_mut() {
        fields.remove("signature");
        fields.remove("follow_up");
    }
    sorted(&unsigned).to_string()
}

/// Signs a receipt: HMAC-SHA256 under the server's privacy secret of its [`canonical`]
/// bytes, hex, set as `signature`.
pub fn sign(secret: &str, mut receipt: Value) -> Value {
    let signature = keyed_hash(secret, &canonical(&receipt));
    receipt["signature"] = json!({"algorithm": "HMAC-SHA256", "value": signature});
    receipt
}

/// Whether a receipt is as this install signed it (checked with its privacy secret).
/// `privacy` and `admin` only.
pub async fn verify_receipt(store: &dyn Store, actor: &Actor, receipt: &Value) -> Result<bool> {
    require(actor, PRIVACY, "verifying erasure receipts")?;
    if !receipt.is_object() {
        return Err(Error::invalid(
            "a receipt is the JSON object an erasure answered",
        ));
    }
    Ok(verify(&store.privacy_secret().await?, receipt))
}

/// Whether a signed receipt is as the server signed it.
pub fn verify(secret: &str, receipt: &Value) -> bool {
    let Some(claimed) = receipt["signature"]["value"].as_str() else {
        return false;
    };
    let resigned = sign(secret, receipt.clone());
    resigned["signature"]["value"].as_str() == Some(claimed)
}

/// What an erasure in the server reaches beyond the store: the follower's book, whose
/// memory must drop the person, and the collector's suppression list, which must hold
/// their identifiers before the erasure answers.
#[derive(Clone)]
pub struct Running {
    pub book: Live,
    pub suppressor: Arc<Suppressor>,
}

/// Erases the person holding `subject` (`TYPE:VALUE`). Only `privacy` and `admin` may. The
/// receipt is stored under its id and recorded in the audit log as `privacy.erase`.
/// The identifier asked for is listed first; the erasure then waits (at most
/// [`CATCH_UP_WAIT`], else [`Error::NotCaughtUp`]) until the stored profiles have taken in
/// every event already collected, so that the person's timeline names all their events and
/// none is left to make them a profile again. `running` is the server's (none from the
/// command line): the deletes run while its follower is between steps, the person is
/// dropped from its memory before it goes on, and its collector suppresses their
/// identifiers from the listing on (a command line's or another node's erasure reaches a
/// server's collector within [`SUPPRESSION_EVERY`]). A profiles processor elsewhere (another
/// node's, another process's) that holds the person is refused its next save and reads
/// the profiles again (`Erasure::profile_erasures`). Each
/// destination that received data about the person is then sent a deletion request
/// through `webhook` ([`notify`]), its answer recorded in the receipt.
pub async fn erase(
    store: &dyn Store,
    running: Option<&Running>,
    webhook: &Webhook,
    actor: &Actor,
    region: Region,
    subject: &str,
    suppress: Suppress,
) -> Result<Value> {
    require(actor, PRIVACY, "erasing a person's data")?;
    let subject = parse_subject(subject, region)?;
    let requested_at = time::now_ms();
    let secret = store.privacy_secret().await?;
    let subject_hash = identifier_hash(&secret, subject.id_type.as_str(), &subject.value);
    let already = store
        .suppressed()
        .await?
        .iter()
        .any(|(hash, _)| *hash == subject_hash);
    // Listed first, so that no server collects more of the person's events; then the stored
    // profiles take in those already collected, so that the person's timeline holds every
    // one of their events. Every identifier found on them is listed in turn, and the same
    // waited for again before the deletes. This ends: an identifier they gain later comes
    // with an event naming a listed one, which no collector keeps whole from then on.
    // Listing before the deletes also means that an erasure that stops half way (a crash)
    // finds the person again when asked again, rather than reporting them never seen.
    let mut listing = vec![subject_hash.clone()];
    let mut listed = BTreeSet::new();
    let (turn, stored, profile, target) = loop {
        list_hashes(store, running, &listing, suppress).await?;
        listed.extend(listing);
        if let Some(running) = running {
            running.suppressor.reload().await?;
        }
        suppressed_everywhere(store).await?;
        profiles_caught_up(store).await?;
        let turn = match running {
            Some(running) => Some(running.book.turn().await),
            None => None,
        };
        let stored = store
            .stored_profile(subject.id_type.as_str(), &subject.value)
            .await?;
        let (profile, seqs) = match &stored {
            None => (None, Vec::new()),
            Some(stored) => {
                let doc = crate::lookup::stored_doc(stored)?;
                let seqs = timeline(store, stored.id).await?;
                (Some(doc.identity), seqs)
            }
        };
        let target = target(&subject, profile.as_ref(), seqs);
        listing = target
            .identifiers
            .iter()
            .map(|(t, v)| identifier_hash(&secret, t, v))
            .filter(|hash| !listed.contains(hash))
            .collect();
        if listing.is_empty() {
            break (turn, stored, profile, target);
        }
    };
    let recipients = match &stored {
        Some(stored) => crate::privacy::recipients(store, &subject, stored).await?,
        None => Default::default(),
    };
    let outcome = match (&profile, already) {
        (Some(_), _) => Outcome::Erased,
        (None, true) => Outcome::AlreadyErased,
        (None, false) => Outcome::NothingFound,
    };
    let erased = store.erase(target.clone()).await?;
    if let Some(running) = running {
        running
            .book
            .forget(&target.profiles, erased.profile_erasures);
    }
    let counts = erased.counts;
    drop(turn);
    let id = format!("er_{}", sightline_core::secret::generate("", 24));
    let notified = notify(
        store,
        webhook,
        &recipients,
        &deletion_request(&id, requested_at, &target.identifiers).to_string(),
        &id,
    )
    .await?;
    let facts = Facts {
        id,
        requested_at,
        completed_at: time::now_ms(),
        actor: crate::audit::actor_id(actor),
        subject_type: subject.id_type.as_str().to_owned(),
        subject_hash,
        outcome,
        suppress,
        profiles: target.profiles.len(),
        identifiers: target.identifiers.len(),
        events: target.seqs.len(),
        counts,
        notified,
    };
    let signed = sign(&secret, receipt(&facts));
    store
        .save_erasure(&facts.id, facts.completed_at, &signed.to_string())
        .await?;
    crate::audit::record(
        store,
        actor,
        "privacy.erase",
        &format!("erasure:{}", facts.id),
        None,
        Some(json!({
            "outcome": outcome.as_str(),
            "identifier_type": facts.subject_type,
            "identifier_hmac_sha256": facts.subject_hash,
            "suppress": suppress.as_str(),
            "counts": facts.counts,
        })),
    )
    .await?;
    Ok(signed)
}

/// Puts keyed hashes on the stored suppression list; in a server, its suppressor is told
/// they are this erasure's (its reload puts them in force).
async fn list_hashes(
    store: &dyn Store,
    running: Option<&Running>,
    hashes: &[String],
    suppress: Suppress,
) -> Result<()> {
    let entries = hashes
        .iter()
        .map(|hash| (hash.clone(), suppress.as_str().to_owned()))
        .collect();
    if let Some(running) = running {
        running.suppressor.listing(hashes, true);
    }
    if let Err(e) = store.suppress(entries).await {
        if let Some(running) = running {
            running.suppressor.listing(hashes, false);
        }
        return Err(e.into());
    }
    Ok(())
}

/// A server whose record of the suppression list in force is older than this is not
/// waited for: it stopped (or lost the store, where its collector cannot append either,
/// unless the log is on JetStream; then its next reload puts the list in force).
const SILENT_AFTER: i64 = 5 * SUPPRESSION_EVERY.as_millis() as i64;

/// How long an erasure waits for every server's collector to put the list in force.
const SUPPRESSION_WAIT: Duration = Duration::from_secs(30);

/// The servers heard from within [`SILENT_AFTER`] of `now` whose collectors have fewer than
/// `entries` entries of the suppression list in force, from `(node, entries, seen_at)`. The
/// list only grows, so one with as many holds every entry listed before it was counted.
pub fn collectors_behind(now: i64, nodes: &[(String, i64, i64)], entries: i64) -> Vec<String> {
    nodes
        .iter()
        .filter(|(_, in_force, seen_at)| *seen_at >= now - SILENT_AFTER && *in_force < entries)
        .map(|(node, ..)| node.clone())
        .collect()
}

/// Waits until every running server's collector has the suppression list as it stands now
/// in force (each reloads it every [`SUPPRESSION_EVERY`] and says so in the store).
async fn suppressed_everywhere(store: &dyn Store) -> Result<()> {
    let entries = store.suppressed().await?.len() as i64;
    let started = std::time::Instant::now();
    loop {
        let (now, nodes) = store.suppression_nodes().await?;
        let behind = collectors_behind(now, &nodes, entries);
        if behind.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= SUPPRESSION_WAIT {
            return Err(Error::NotCaughtUp(format!(
                "the collectors of {} have not put the suppression list in force within {} s: erasing now could miss events they collect meanwhile. Erase again once they answer",
                behind.join(", "),
                SUPPRESSION_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(SUPPRESSION_EVERY / 10).await;
    }
}

/// How long an erasure waits for the stored profiles to take in the events collected before
/// it (a profiles processor behind after a burst, or taking over from a node that died).
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);

/// Waits until the stored profiles have taken in every event of the log as it is now: the
/// person's timeline then lists all their events, and no event of theirs is left for the
/// profiles to apply after the erasure (which would make them a profile again).
async fn profiles_caught_up(store: &dyn Store) -> Result<()> {
    let end = store.last_seq().await?;
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        let at = store.profiles_state().await?.map_or(0, |state| state.seq);
        // The first event past the profiles' position, if the log holds one up to `end`
        // (the log's last seqs may be gone: erased, or never committed).
        let next = store.read_events(at, 1, None).await?;
        let Some(next) = next.first().filter(|event| event.seq <= end) else {
            return Ok(());
        };
        if started.elapsed() >= CATCH_UP_WAIT {
            return Err(Error::NotCaughtUp(format!(
                "the stored profiles have taken in the log up to seq {at}, not yet its events up to {end} (next {}): erasing now would leave the person's latest events. Run `sightline serve`, whose profiles processor catches up, or wait for it, then erase again",
                next.seq
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Attempts at a destination's deletion request before it is recorded as failed.
const DELETION_ATTEMPTS: u32 = 5;
/// The longest wait between two attempts (a longer `Retry-After` is cut to it): the
/// erasure answers within a bounded time.
const DELETION_WAIT: Duration = Duration::from_secs(5);

/// What a destination is sent: `{"type":"deletion_request","erasure_id":…,"requested_at":…,
/// "identifiers":[{"type":…,"value":…}]}`, every identifier the person held (normalised),
/// so that the receiver can find them however it keyed them.
pub fn deletion_request(
    erasure_id: &str,
    requested_at: i64,
    identifiers: &[(String, String)],
) -> Value {
    let identifiers: Vec<Value> = identifiers
        .iter()
        .map(|(id_type, value)| json!({"type": id_type, "value": value}))
        .collect();
    json!({
        "type": "deletion_request",
        "erasure_id": erasure_id,
        "requested_at": time::format_ms(requested_at),
        "identifiers": identifiers,
    })
}

/// Sends `body` to each destination named, as a webhook delivery is sent: signed with its
/// secret (`X-Sightline-Signature`), `Idempotency-Key` `ERASURE:DESTINATION`, retried with
/// the deliveries' backoff (and `Retry-After`) up to [`DELETION_ATTEMPTS`] times; from a
/// warehouse the person's rows are deleted, with the same retries. Vendor types have no
/// deletion endpoint of ours: recorded as `not_sent`. One outcome per
/// destination: `accepted`, `refused`, `queued` (still failing after the last attempt: kept
/// and sent again by [`DeletionRetries`], its outcome shown as the erasure's `follow_up`),
/// `not_sent` or `gone` (deleted since).
pub async fn notify(
    store: &dyn Store,
    webhook: &Webhook,
    names: &BTreeSet<String>,
    body: &str,
    erasure_id: &str,
) -> Result<Vec<Value>> {
    let mut outcomes = Vec::new();
    for name in names {
        let Some(destination) = store.destination_by_name(name).await? else {
            outcomes.push(json!({"destination": name, "status": "gone",
                "reason": "the destination was deleted since it received data"}));
            continue;
        };
        let key = format!("{erasure_id}:{}", destination.id);
        let mut attempts = 0;
        let mut outcome = loop {
            attempts += 1;
            let Some(answer) = request_deletion(webhook, &destination, &key, body).await else {
                break json!({"status": "not_sent",
                    "reason": format!("a {} destination takes no deletion request from us: ask the vendor", destination.kind.as_str())});
            };
            match answer {
                Answer::Accepted { code } | Answer::Partial { code, .. } => {
                    break json!({"status": "accepted", "code": code})
                }
                Answer::Refused { code, reason } => {
                    break json!({"status": "refused", "code": code, "reason": reason})
                }
                Answer::Retry { code, wait, reason } => {
                    if attempts >= DELETION_ATTEMPTS {
                        // Kept and sent again in the background until answered.
                        let last = json!({"code": code, "reason": reason});
                        store
                            .save_deletion_request(&DeletionRequest {
                                erasure_id: erasure_id.to_owned(),
                                destination: name.clone(),
                                body: body.to_owned(),
                                attempts: i64::from(attempts),
                                next_at: time::now_ms() + later(attempts, wait),
                                status: QUEUED.into(),
                                outcome: last.to_string(),
                            })
                            .await?;
                        break json!({"status": QUEUED, "code": code, "reason": reason});
                    }
                    let wait = wait
                        .unwrap_or_else(|| {
                            Backoff::default().delay(attempts - 1, backoff::jitter())
                        })
                        .min(DELETION_WAIT);
                    tokio::time::sleep(wait).await;
                }
            }
        };
        outcome["destination"] = json!(name);
        outcome["attempts"] = json!(attempts);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// How long a warehouse may take to answer a connection for its deletes.
const WAREHOUSE_CONNECT: Duration = Duration::from_secs(10);

/// Sends a deletion request where the destination's type takes one: a webhook is sent
/// the signed request, a warehouse has the person's rows deleted from its tables. `None`
/// for a vendor type (the vendor has its own deletion process).
async fn request_deletion(
    webhook: &Webhook,
    destination: &Destination,
    key: &str,
    body: &str,
) -> Option<Answer> {
    match destination.kind {
        DestinationKind::Webhook => Some(
            webhook
                .post(
                    &destination.url,
                    &destination.signing_secret,
                    key,
                    body.to_owned(),
                )
                .await,
        ),
        DestinationKind::Warehouse => {
            let identifiers: Vec<(String, String)> = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|request| request.get("identifiers").cloned())
                .and_then(|ids| ids.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|id| {
                    Some((
                        id["type"].as_str()?.to_owned(),
                        id["value"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            Some(
                sightline_activate::warehouse::erase(destination, &identifiers, WAREHOUSE_CONNECT)
                    .await,
            )
        }
        _ => None,
    }
}

/// A stored erasure's receipt, with `follow_up` (not signed) when deletion requests were
/// still queued when it was signed: each one's destination, status, attempts and last
/// answer as it stands now. `privacy` and `admin` only.
pub async fn get(store: &dyn Store, actor: &Actor, id: &str) -> Result<Value> {
    require(actor, PRIVACY, "reading erasures")?;
    let text = store
        .erasure(id)
        .await?
        .ok_or_else(|| Error::not_found("erasure", format!("no erasure {id:?}")))?;
    let mut receipt: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Internal(anyhow::anyhow!("stored erasure {id} cannot be read: {e}")))?;
    let kept = store.deletion_requests(id).await?;
    if !kept.is_empty() {
        receipt["follow_up"] = kept.iter().map(follow_up).collect();
    }
    Ok(receipt)
}

fn follow_up(request: &DeletionRequest) -> Value {
    let mut shown = serde_json::from_str(&request.outcome).unwrap_or_else(|_| json!({}));
    shown["destination"] = json!(request.destination);
    shown["status"] = json!(request.status);
    shown["attempts"] = json!(request.attempts);
    if request.status == QUEUED {
        shown["next_attempt_at"] = json!(time::format_ms(request.next_at));
    }
    shown
}

/// A kept deletion request's status until it is answered.
const QUEUED: &str = "queued";
/// Attempts in all before a kept deletion request is recorded as `failed` (with waits
/// growing to an hour: about two days).
const KEPT_ATTEMPTS: i64 = 60;
/// The background retries' waits.
const KEPT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(30),
    max: Duration::from_secs(3600),
};

/// Milliseconds until the next attempt after `attempts`: the answer's `Retry-After`, else
/// the backoff.
fn later(attempts: u32, wait: Option<Duration>) -> i64 {
    let wait = wait.unwrap_or_else(|| KEPT_BACKOFF.delay(attempts, backoff::jitter()));
    wait.min(KEPT_BACKOFF.max).as_millis() as i64
}

/// Sends the kept deletion requests that are due, once each: one that is answered (or
/// whose destination is gone) ends; one still failing waits longer, until
/// [`KEPT_ATTEMPTS`]. Runs on one node (a leased processor).
pub struct DeletionRetries {
    pub store: Arc<dyn Store>,
    pub webhook: Webhook,
}

impl DeletionRetries {
    async fn run(&self) -> anyhow::Result<Step> {
        let due = self
            .store
            .due_deletion_requests(time::now_ms(), 100)
            .await?;
        for mut request in due.iter().cloned() {
            request.attempts += 1;
            let Some(destination) = self.store.destination_by_name(&request.destination).await?
            else {
                request.status = "gone".into();
                request.body.clear();
                request.outcome =
                    json!({"reason": "the destination was deleted since"}).to_string();
                self.store.save_deletion_request(&request).await?;
                continue;
            };
            let key = format!("{}:{}", request.erasure_id, destination.id);
            let answer = request_deletion(&self.webhook, &destination, &key, &request.body).await;
            let (status, outcome) = match answer {
                None => (
                    "refused",
                    json!({"reason": "the destination's type takes no deletion request"}),
                ),
                Some(Answer::Accepted { code }) | Some(Answer::Partial { code, .. }) => {
                    ("accepted", json!({"code": code}))
                }
                Some(Answer::Refused { code, reason }) => {
                    ("refused", json!({"code": code, "reason": reason}))
                }
                Some(Answer::Retry { code, wait, reason }) => {
                    request.next_at =
                        time::now_ms() + later(request.attempts.min(u32::MAX as i64) as u32, wait);
                    let status = if request.attempts >= KEPT_ATTEMPTS {
                        "failed"
                    } else {
                        QUEUED
                    };
                    (status, json!({"code": code, "reason": reason}))
                }
            };
            tracing::info!(erasure = %request.erasure_id, destination = %request.destination, status, attempts = request.attempts, "a kept deletion request was sent again");
            request.status = status.into();
            request.outcome = outcome.to_string();
            if status != QUEUED {
                // Answered: the identifiers it carried are no longer needed here.
                request.body.clear();
            }
            self.store.save_deletion_request(&request).await?;
        }
        Ok(if due.len() == 100 {
            Step::More
        } else {
            Step::Idle
        })
    }
}

impl Processor for DeletionRetries {
    fn name(&self) -> String {
        "deletion-requests".into()
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(self.run())
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// The most erasures [`list`] answers.
pub const MAX_LIST: usize = 1000;

/// The receipts of the latest erasures, newest first, at most `limit` (capped at
/// [`MAX_LIST`]). `privacy` and `admin` only.
pub async fn list(store: &dyn Store, actor: &Actor, limit: usize) -> Result<Vec<Value>> {
    require(actor, PRIVACY, "reading erasures")?;
    store
        .erasures(limit.min(MAX_LIST))
        .await?
        .iter()
        .map(|text| {
            serde_json::from_str(text).map_err(|e| {
                Error::Internal(anyhow::anyhow!("a stored erasure cannot be read: {e}"))
            })
        })
        .collect()
}

/// How often the server reads the suppression list again (for erasures made by another
/// process, the command line).
pub const SUPPRESSION_EVERY: Duration = Duration::from_secs(1);

/// Puts a suppression list in force: the privacy secret and `(keyed hash, mode)` entries.
pub type Apply = Box<dyn Fn(String, Vec<(String, Suppress)>) + Send + Sync>;

/// Keeps the collector's suppression list as stored: a processor reading it every
/// [`SUPPRESSION_EVERY`], and at once after an erasure in this server. An erasure made by
/// another process (the command line) cannot reach this server's memory: when the list
/// gains entries this server did not add, its book is opened again from the store (as
/// after another process's save), so that it holds no erased person.
pub struct Suppressor {
    store: Arc<dyn Store>,
    book: Live,
    apply: Apply,
    /// This server, as its record of the list in force names it (`suppression_in_force`).
    node: String,
    /// The entries in force; held across a whole reload.
    loaded: tokio::sync::Mutex<Option<Vec<(String, String)>>>,
    /// Hashes an erasure in this server is listing ([`Suppressor::listing`]): its person
    /// leaves the book through the erasure itself, so their arrival needs no reopening.
    ours: std::sync::Mutex<BTreeSet<String>>,
}

impl Suppressor {
    pub fn new(store: Arc<dyn Store>, book: Live, apply: Apply, node: String) -> Suppressor {
        Suppressor {
            store,
            book,
            apply,
            node,
            loaded: tokio::sync::Mutex::new(None),
            ours: Default::default(),
        }
    }

    /// Says, before an erasure in this server stores them, which hashes it lists: a reload
    /// that finds them (this server's own, or the every-second one) then does not reopen
    /// the book, which that erasure updates itself. `false` takes them back (they could
    /// not be stored: if another process lists them later, that one's reload reopens).
    fn listing(&self, hashes: &[String], listing: bool) {
        let mut ours = self
            .ours
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for hash in hashes {
            match listing {
                true => ours.insert(hash.clone()),
                false => ours.remove(hash),
            };
        }
    }

    /// Reads the stored list and puts it in force when it changed; then records in the
    /// store how many entries are in force here (an erasure waits for every server's).
    pub async fn reload(&self) -> Result<()> {
        let mut loaded = self.loaded.lock().await;
        let entries = self.store.suppressed().await?;
        if loaded.as_ref() != Some(&entries) {
            self.put_in_force(loaded.as_ref(), &entries).await?;
            *loaded = Some(entries);
        }
        let in_force = loaded.as_ref().map_or(0, Vec::len);
        self.store
            .suppression_in_force(&self.node, in_force as i64)
            .await?;
        Ok(())
    }

    /// Says this server's collector has stopped (after its last request was answered), so
    /// that no erasure waits for it.
    pub async fn leave(&self) -> Result<()> {
        Ok(self.store.forget_suppression_node(&self.node).await?)
    }

    /// Puts `entries` in force in place of `before` (none before the first load, when the
    /// server does not listen yet and its book was just opened).
    async fn put_in_force(
        &self,
        before: Option<&Vec<(String, String)>>,
        entries: &[(String, String)],
    ) -> Result<()> {
        let Some(before) = before else {
            return self.apply_list(entries).await;
        };
        let unknown = {
            let mut ours = self
                .ours
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let known: BTreeSet<&String> = before.iter().map(|(hash, _)| hash).collect();
            let unknown = entries
                .iter()
                .any(|(hash, _)| !known.contains(hash) && !ours.contains(hash));
            ours.retain(|hash| !entries.iter().any(|(listed, _)| listed == hash));
            unknown
        };
        if unknown {
            self.book.reopen(self.store.as_ref()).await?;
        }
        self.apply_list(entries).await
    }

    async fn apply_list(&self, entries: &[(String, String)]) -> Result<()> {
        let modes = entries
            .iter()
            .map(|(hash, mode)| Ok((hash.clone(), Suppress::parse(mode)?)))
            .collect::<Result<Vec<_>>>()?;
        // No list, no secret needed (nor made).
        let secret = match modes.is_empty() {
            true => String::new(),
            false => self.store.privacy_secret().await?,
        };
        (self.apply)(secret, modes);
        metrics::gauge!("sightline_suppressed_identifiers").set(entries.len() as f64);
        Ok(())
    }
}

impl Processor for Suppressor {
    // It keeps this node's own memory current.
    fn placement(&self) -> crate::processors::Placement {
        crate::processors::Placement::EveryNode
    }

    fn name(&self) -> String {
        "suppression".into()
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(async move {
            self.reload().await?;
            Ok(Step::Idle)
        })
    }

    fn idle(&self) -> Duration {
        SUPPRESSION_EVERY
    }
}

/// Every event seq on a stored profile's timeline.
pub(crate) async fn timeline(store: &dyn Store, profile: i64) -> Result<Vec<i64>> {
    let mut seqs = Vec::new();
    let mut before = i64::MAX;
    loop {
        let page: Vec<StoredEvent> = store.stored_profile_events(profile, before, PAGE).await?;
        let Some(last) = page.last() else { break };
        before = last.seq;
        seqs.extend(page.iter().map(|e| e.seq));
    }
    Ok(seqs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_identity::IdType;

    fn subject() -> Subject {
        Subject {
            id_type: IdType::Email,
            value: "ann@x.com".into(),
        }
    }

    /// Only servers heard from lately are waited for, and only while they hold fewer
    /// entries than the list had when counted.
    #[test]
    fn an_erasure_waits_for_live_collectors_with_fewer_entries() {
        let now = 100_000;
        let nodes = vec![
            ("current".to_string(), 3, now),
            ("behind".to_string(), 2, now - 1_000),
            ("stopped".to_string(), 0, now - SILENT_AFTER - 1),
            ("ahead".to_string(), 5, now - SILENT_AFTER),
        ];
        assert_eq!(collectors_behind(now, &nodes, 3), ["behind"]);
        assert_eq!(collectors_behind(now, &nodes, 4), ["current", "behind"]);
        assert!(collectors_behind(now, &nodes, 2).is_empty());
        assert!(collectors_behind(now, &[], 7).is_empty());
    }

    /// A reload that finds hashes an erasure in this server is listing leaves the book
    /// alone (the erasure drops its person itself); one that finds another process's
    /// reopens it.
    #[tokio::test]
    async fn only_another_processs_listing_reopens_the_book() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            sightline_store::SqliteStore::open(dir.path())
                .await
                .unwrap(),
        );
        let rules = crate::profiles::ProfileRules {
            rules: Default::default(),
            policy: Default::default(),
            fingerprint: "test".into(),
        };
        let book = Live::new(crate::profiles::open(store.as_ref(), rules).await.unwrap());
        let applied = Arc::new(std::sync::Mutex::new(0));
        let suppressor = {
            let applied = applied.clone();
            Suppressor::new(
                store.clone(),
                book.clone(),
                Box::new(move |_, list| *applied.lock().unwrap() = list.len()),
                "this-node".into(),
            )
        };
        suppressor.reload().await.unwrap();
        let reopened = book.erasures();

        let ours = vec!["h-ours".to_string()];
        suppressor.listing(&ours, true);
        store
            .suppress(vec![("h-ours".into(), "drop".into())])
            .await
            .unwrap();
        suppressor.reload().await.unwrap();
        assert_eq!(*applied.lock().unwrap(), 1, "the list is in force");
        assert_eq!(book.erasures(), reopened, "this server's own listing");

        store
            .suppress(vec![("h-cli".into(), "drop".into())])
            .await
            .unwrap();
        suppressor.reload().await.unwrap();
        assert_eq!(*applied.lock().unwrap(), 2);
        assert_eq!(book.erasures(), reopened + 1, "another process's listing");
        // What is in force here is recorded for erasures to wait for.
        let (_, nodes) = store.suppression_nodes().await.unwrap();
        assert_eq!(
            nodes
                .iter()
                .map(|(n, e, _)| (n.as_str(), *e))
                .collect::<Vec<_>>(),
            [("this-node", 2)]
        );

        // Taken back when it could not be stored: listed later by another process, it
        // reopens.
        suppressor.listing(&["h-failed".to_string()], true);
        suppressor.listing(&["h-failed".to_string()], false);
        store
            .suppress(vec![("h-failed".into(), "drop".into())])
            .await
            .unwrap();
        suppressor.reload().await.unwrap();
        assert_eq!(book.erasures(), reopened + 2);
    }

    #[test]
    fn nobody_found_targets_the_identifier_alone() {
        let t = target(&subject(), None, vec![]);
        assert_eq!(
            t.identifiers,
            [("email".to_string(), "ann@x.com".to_string())]
        );
        assert!(t.profiles.is_empty() && t.seqs.is_empty());
    }

    #[test]
    fn seqs_are_sorted_and_unique() {
        assert_eq!(target(&subject(), None, vec![5, 1, 5, 3]).seqs, [1, 3, 5]);
    }

    #[test]
    fn hashes_are_keyed() {
        let a = identifier_hash("k1", "email", "ann@x.com");
        assert_eq!(a, identifier_hash("k1", "email", "ann@x.com"));
        assert_ne!(a, identifier_hash("k2", "email", "ann@x.com"));
        assert!(!a.contains("ann"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn receipts_are_signed_and_tampering_shows() {
        let facts = Facts {
            id: "er_1".into(),
            requested_at: 0,
            completed_at: 1,
            actor: "cli".into(),
            subject_type: "email".into(),
            subject_hash: "h".into(),
            outcome: Outcome::NothingFound,
            suppress: Suppress::Drop,
            profiles: 0,
            identifiers: 1,
            events: 0,
            counts: ErasedCounts::new(),
            notified: vec![json!({"destination": "hook", "status": "accepted", "code": 200})],
        };
        let signed = sign("secret", receipt(&facts));
        assert_eq!(signed["outcome"], "nothing found");
        assert!(verify("secret", &signed));
        assert!(!verify("other", &signed));
        let mut edited = signed.clone();
        edited["removed"]["events"] = 9.into();
        assert!(!verify("secret", &edited));
        // The order of keys does not matter; a receipt read back verifies.
        let text = signed.to_string();
        let read: Value = serde_json::from_str(&text).unwrap();
        assert!(verify("secret", &read));
        assert_eq!(
            canonical(&json!({"b": 1, "a": {"d": [2], "c": "é"}, "signature": "x"})),
            r#"{"a":{"c":"é","d":[2]},"b":1}"#
        );
    }

    #[test]
    fn suppress_modes_parse_and_refuse_others() {
        assert_eq!(Suppress::parse("drop").unwrap(), Suppress::Drop);
        assert_eq!(Suppress::parse("strip").unwrap(), Suppress::Strip);
        assert!(Suppress::parse("keep").is_err());
    }
}
