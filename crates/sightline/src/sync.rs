//! Audience sync: sends each audience's adds and removes to the destinations it is synced
//! to, as they happen, batched over a short window, as signed webhook requests. An add goes
//! out only when the consent on the event that caused it grants the destination's purposes;
//! removes always go out (they only ever reduce what a destination holds). At start, each
//! synced audience's current members are sent once as a snapshot, so that a receiver that
//! missed changes while Sightline was down is made whole.

use crate::profiles::Book;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sightline_activate::backoff::{jitter, Backoff};
use sightline_activate::gate::consent_gate;
use sightline_activate::webhook::{Answer, Webhook};
use sightline_audience::{Cause, MembershipChange, Transition};
use sightline_consent::Policy;
use sightline_core::{time, Destination};
use sightline_identity::ProfileId;
use sightline_store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Changes arriving within this window go out in one request per audience and destination.
const BATCH_WINDOW: Duration = Duration::from_millis(200);
const MAX_ATTEMPTS: u32 = 8;
/// Members per snapshot request.
const SNAPSHOT_CHUNK: usize = 1000;

/// Whether a destination gets emails and phones only hashed: it asks for hashing in its
/// transform (as an ad platform's connector does).
fn hashed_only(destination: &Destination) -> bool {
    destination.transform["hash"]
        .as_array()
        .is_some_and(|paths| !paths.is_empty())
}

/// A profile's identifiers as a sync message carries them: emails and phones also as the
/// SHA-256 of their normalised value, the form ad platforms match on — and only so when
/// `hashed_only`.
fn identifiers(book: &Book, profile: &str, hashed_only: bool) -> Value {
    let Some(identity) = profile
        .parse()
        .ok()
        .and_then(|id| book.profiles.canonical(ProfileId(id)))
        .and_then(|id| book.profiles.identity(id))
    else {
        return json!([]);
    };
    identity
        .identifiers
        .iter()
        .map(|i| {
            let kind = i.id_type.as_str();
            let mut entry = json!({"type": kind, "value": i.value});
            if kind == "email" || kind == "phone" {
                entry["sha256"] = hex::encode(Sha256::digest(i.value.as_bytes())).into();
                if let Some(entry) = entry.as_object_mut().filter(|_| hashed_only) {
                    entry.remove("value");
                }
            }
            entry
        })
        .collect()
}

pub struct Syncer {
    store: Arc<dyn Store>,
    book: Arc<RwLock<Book>>,
    webhook: Webhook,
    policy: Policy,
}

impl Syncer {
    pub fn new(
        store: Arc<dyn Store>,
        book: Arc<RwLock<Book>>,
        policy: Policy,
        webhook: Webhook,
    ) -> Syncer {
        Syncer {
            store,
            book,
            webhook,
            policy,
        }
    }

    /// The synced destinations of every audience, by audience name.
    async fn targets(&self) -> BTreeMap<String, Vec<Destination>> {
        let mut targets = BTreeMap::new();
        let Ok(definitions) = self.store.list_audiences().await else {
            return targets;
        };
        for definition in definitions.into_iter().filter(|d| !d.sync.is_empty()) {
            let mut destinations = Vec::new();
            for name in &definition.sync {
                match self.store.destination_by_name(name).await {
                    Ok(Some(destination)) => destinations.push(destination),
                    _ => {
                        tracing::warn!(audience = %definition.name, destination = %name, "sync destination not found")
                    }
                }
            }
            targets.insert(definition.name, destinations);
        }
        targets
    }

    /// Sends the current members of every synced audience, then each change as it comes.
    pub async fn run(self, mut changes: mpsc::Receiver<MembershipChange>) {
        self.snapshot().await;
        while let Some(first) = changes.recv().await {
            let mut batch = vec![first];
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            loop {
                tokio::select! {
                    _ = &mut window => break,
                    next = changes.recv() => match next {
                        Some(change) => batch.push(change),
                        None => break,
                    },
                }
            }
            self.send_changes(batch).await;
        }
    }

    async fn snapshot(&self) {
        for (audience, destinations) in self.targets().await {
            for destination in &destinations {
                let members: Vec<Value> = {
                    let book = self.book.read().expect("book lock poisoned");
                    let Some(members) = book.memberships.members(&audience) else {
                        continue;
                    };
                    let hashed = hashed_only(destination);
                    members
                        .iter()
                        .map(|id| {
                            let profile = id.0.to_string();
                            json!({"profile": profile, "identifiers": identifiers(&book, &profile, hashed)})
                        })
                        .collect()
                };
                for (part, chunk) in members.chunks(SNAPSHOT_CHUNK).enumerate() {
                    let body = json!({"audience": audience, "snapshot": true, "part": part, "members": chunk});
                    let key = format!("audience:{audience}:snapshot:{}:{part}", time::now_ms());
                    self.post(destination, &key, body).await;
                }
            }
        }
    }

    async fn send_changes(&self, batch: Vec<MembershipChange>) {
        let targets = self.targets().await;
        for (audience, destinations) in &targets {
            let changes: Vec<&MembershipChange> =
                batch.iter().filter(|c| &c.audience == audience).collect();
            if changes.is_empty() {
                continue;
            }
            for destination in destinations {
                let mut out = Vec::new();
                for change in &changes {
                    if change.transition == Transition::Entered
                        && !self.consented(destination, change).await
                    {
                        continue;
                    }
                    let book = self.book.read().expect("book lock poisoned");
                    out.push(json!({
                        "action": if change.transition == Transition::Entered { "add" } else { "remove" },
                        "profile": change.profile,
                        "identifiers": identifiers(&book, &change.profile, hashed_only(destination)),
                        "at": time::format_ms(change.at),
                        "caused_by": change.caused_by,
                    }));
                }
                if out.is_empty() {
                    continue;
                }
                let key = format!(
                    "audience:{audience}:{}:{}",
                    changes[0].profile, changes[0].at
                );
                self.post(
                    destination,
                    &key,
                    json!({"audience": audience, "changes": out}),
                )
                .await;
            }
        }
    }

    /// Whether the consent in force for the profile when it entered (its consent ledger,
    /// and the signals on the event that made it enter) grants the destination's purposes.
    async fn consented(&self, destination: &Destination, change: &MembershipChange) -> bool {
        if destination.purposes.is_empty() {
            return true;
        }
        // The moment of the change: with the causing event's seq, so that consent given on
        // the same instant but later in the log does not count.
        let (body, seq) = match change.caused_by {
            Cause::Event(seq) => {
                let Ok(found) = self.store.read_events(seq - 1, 1, None).await else {
                    return false;
                };
                let body = found
                    .first()
                    .filter(|e| e.seq == seq)
                    .and_then(|e| serde_json::from_str::<Value>(&e.body).ok())
                    .unwrap_or_default();
                (body, seq)
            }
            _ => (Value::Null, i64::MAX),
        };
        let in_force = {
            let book = self.book.read().expect("book lock poisoned");
            change
                .profile
                .parse()
                .ok()
                .and_then(|id| book.profiles.canonical(ProfileId(id)))
                .and_then(|p| book.profiles.facts(p))
                .map(|facts| facts.consent.state_at(change.at, seq))
        };
        match consent_gate(
            &self.policy,
            &destination.purposes,
            &body,
            in_force.as_ref(),
        ) {
            None => true,
            Some(suppression) => {
                tracing::info!(audience = %change.audience, destination = %destination.name, reason = %suppression, "audience add withheld by consent");
                false
            }
        }
    }

    async fn post(&self, destination: &Destination, key: &str, body: Value) {
        let body = body.to_string();
        let backoff = Backoff::default();
        for attempt in 0..MAX_ATTEMPTS {
            match self
                .webhook
                .post(
                    &destination.url,
                    &destination.signing_secret,
                    key,
                    body.clone(),
                )
                .await
            {
                Answer::Accepted { .. } => {
                    metrics::counter!("sightline_audience_sync_sent_total", "destination" => destination.name.clone()).increment(1);
                    return;
                }
                Answer::Refused { reason, .. } => {
                    tracing::error!(destination = %destination.name, %reason, "audience sync refused");
                    break;
                }
                Answer::Retry { wait, reason, .. } => {
                    tracing::warn!(destination = %destination.name, %reason, attempt, "audience sync failed; retrying");
                    tokio::time::sleep(wait.unwrap_or_else(|| backoff.delay(attempt, jitter())))
                        .await;
                }
            }
        }
        metrics::counter!("sightline_audience_sync_failed_total", "destination" => destination.name.clone()).increment(1);
    }
}
