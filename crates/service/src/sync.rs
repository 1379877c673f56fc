//! Audience sync: sends each audience's adds and removes to the destinations it is synced
//! to — as signed webhook requests, or through an ad platform's audience API (Meta custom
//! audiences, Google Ads Customer Match: `sightline_activate::vendor::audiences`, emails
//! and phones hashed by the platform's rules) — from the enter and exit records the profiles processor
//! stores (`audience_changes`), each (destination, audience) pair from its own checkpoint
//! `sync:<destination id>:<audience>`. So a receiver that was down, or a Sightline that
//! restarted, misses nothing, and a slow receiver holds back only its own pairs — never the
//! profiles or the deliveries. A pair seen for the first time is sent the audience's
//! current members once (a snapshot) and then every change after it. An add, in a
//! snapshot or as a change, goes out only when the consent in force grants the
//! destination's purposes (for a change: the ledger at the change's moment and the signals
//! on the event that caused it; for a snapshot: the ledger now); removes always go out
//! (they only ever reduce what a destination holds).

use crate::lookup::stored_doc;
use crate::processors::{Processor, Step, StepFuture};
use crate::profiles::Live;
use anyhow::Result;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sightline_activate::backoff::{jitter, Backoff};
use sightline_activate::gate::consent_gate;
use sightline_activate::vendor::audiences::{self, Change, Contact};
use sightline_activate::vendor::Vendor;
use sightline_activate::webhook::{Answer, Webhook};
use sightline_activate::Transform;
use sightline_audience::{Cause, MembershipChange, Transition};
use sightline_consent::Policy;
use sightline_core::{time, Destination, DestinationKind};
use sightline_identity::Profile;
use sightline_profiles::ProfileDoc;
use sightline_store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Attempts per request before the pair waits for the next pass (its checkpoint holds).
const MAX_ATTEMPTS: u32 = 3;
/// Members per snapshot request, and changes per change request.
const CHUNK: usize = 1000;
/// The longest wait between attempts within one pass.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// The checkpoint of a pair whose snapshot is sent but whose audience had no record yet.
const SNAPSHOT_SENT: i64 = -1;

/// What a destination's transform lets out of a profile's identifiers in sync messages.
struct Shown {
    /// Emails and phones only as their SHA-256: the transform hashes anything (as an ad
    /// platform's connector asks).
    hashed_only: bool,
    /// `None` when the stored transform no longer reads: then nothing is shown, as the
    /// deliverer sends nothing rather than what it was meant to remove.
    transform: Option<Transform>,
}

impl Shown {
    fn of(destination: &Destination) -> Shown {
        let transform = serde_json::from_value::<Transform>(destination.transform.clone()).ok();
        Shown {
            hashed_only: transform.as_ref().is_none_or(|t| !t.hash.is_empty()),
            transform,
        }
    }

    /// Whether an identifier of `id_type` may go out: read as the field that carries it in
    /// an event (`userId`, `anonymousId`, or a key of the traits objects — `email`, `phone`,
    /// a custom type), judged by the transform's `deny` and `allow` as events are. A key
    /// denied in any traits object is withheld; with an `allow` list, a key must be allowed
    /// in one.
    fn allows(&self, id_type: &str) -> bool {
        let Some(transform) = &self.transform else {
            return false;
        };
        let top = match id_type {
            "user_id" => Some("userId"),
            "anonymous_id" => Some("anonymousId"),
            _ => None,
        };
        if let Some(field) = top {
            return !transform.deny.iter().any(|p| p == field);
        }
        let names = |path: &String| {
            ["*.", "traits.", "context.traits.", "properties."]
                .iter()
                .any(|prefix| path.strip_prefix(prefix) == Some(id_type))
        };
        !transform.deny.iter().any(names)
            && (transform.allow.is_empty() || transform.allow.iter().any(names))
    }
}

/// A profile's identifiers as a sync message carries them: those the destination's
/// transform lets out, emails and phones also as the SHA-256 of their normalised value (the
/// form ad platforms match on) and only so when the transform hashes.
fn identifiers(identity: &Profile, shown: &Shown) -> Value {
    identity
        .identifiers
        .iter()
        .filter(|i| shown.allows(i.id_type.as_str()))
        .map(|i| {
            let kind = i.id_type.as_str();
            let mut entry = json!({"type": kind, "value": i.value});
            if kind == "email" || kind == "phone" {
                entry["sha256"] = hex::encode(Sha256::digest(i.value.as_bytes())).into();
                if let Some(entry) = entry.as_object_mut().filter(|_| shown.hashed_only) {
                    entry.remove("value");
                }
            }
            entry
        })
        .collect()
}

pub struct Syncer {
    store: Arc<dyn Store>,
    book: Live,
    webhook: Webhook,
    policy: Policy,
    /// The (destination, audience) pairs held for want of a vendor list, each warned of
    /// once until it is configured.
    held: std::sync::Mutex<BTreeSet<(i64, String)>>,
}

impl Processor for Syncer {
    // It reads the profiles processor's book (consent, memberships): it runs where that does.
    fn placement(&self) -> crate::processors::Placement {
        crate::processors::Placement::With("profiles")
    }

    fn name(&self) -> String {
        "audience-sync".into()
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(self.pass())
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(200)
    }
}

/// How a request ended.
enum Sent {
    /// Accepted, or refused for good (counted and logged): the checkpoint moves on.
    Done,
    /// Still failing after the attempts: the checkpoint holds; the next pass tries again.
    Later,
}

impl Syncer {
    pub fn new(store: Arc<dyn Store>, book: Live, policy: Policy, webhook: Webhook) -> Syncer {
        Syncer {
            store,
            book,
            webhook,
            policy,
            held: Default::default(),
        }
    }

    /// The synced destinations of every audience, by audience name.
    async fn targets(&self) -> Result<BTreeMap<String, Vec<Destination>>> {
        let mut targets = BTreeMap::new();
        for definition in self.store.list_audiences().await? {
            if definition.sync.is_empty() {
                continue;
            }
            let mut destinations = Vec::new();
            for name in &definition.sync {
                match self.store.destination_by_name(name).await? {
                    // A vendor type without an audience API (GA4, TikTok, LinkedIn) can only
                    // come here by a name reused after the audience was added.
                    Some(destination) if !syncs(&destination) => {
                        tracing::warn!(audience = %definition.name, destination = %name, "sync destination has no audience API (webhook, meta and google_ads have): not synced")
                    }
                    // Proposed and not yet approved by security: sent nothing (its
                    // checkpoints stay, so it is sent what it missed once approved).
                    Some(destination) if !destination.approved => {
                        tracing::debug!(audience = %definition.name, destination = %name, "sync destination awaits approval: not synced")
                    }
                    Some(destination) => destinations.push(destination),
                    None => {
                        tracing::warn!(audience = %definition.name, destination = %name, "sync destination not found")
                    }
                }
            }
            targets.insert(definition.name, destinations);
        }
        Ok(targets)
    }

    /// One pass over every (destination, audience) pair: a page of changes each.
    async fn pass(&self) -> Result<Step> {
        let mut more = false;
        for (audience, destinations) in self.targets().await? {
            // An audience the profiles have not picked up yet has nothing to send.
            if !self.book.has_audience(&audience) {
                continue;
            }
            for destination in &destinations {
                more |= self.sync_pair(&audience, destination).await?;
            }
        }
        Ok(if more { Step::More } else { Step::Idle })
    }

    /// Sends the pair's snapshot (first time) or its next page of changes; true when more
    /// changes may be waiting.
    async fn sync_pair(&self, audience: &str, destination: &Destination) -> Result<bool> {
        // A vendor destination without a list for the audience is held before any reading.
        let vendor = vendor_of(destination);
        let target = match &vendor {
            Some(vendor) => match self.list_for(destination, vendor, audience) {
                Some(list) => Some((vendor, list)),
                None => return Ok(false),
            },
            None => None,
        };
        let checkpoint = format!("sync:{}:{audience}", destination.id);
        let position = self.store.checkpoint(&checkpoint).await?;
        if position == 0 {
            // The last record before the snapshot is read first: a change stored after it
            // is sent as a change (at worst once more than needed), never lost.
            let last = self.last_change(audience).await?;
            if let Sent::Done = self.snapshot(audience, destination, target).await? {
                let done = if last == 0 { SNAPSHOT_SENT } else { last };
                self.store.set_checkpoint(&checkpoint, done).await?;
            }
            return Ok(false);
        }
        let page = self
            .store
            .audience_history(audience, position, CHUNK)
            .await?;
        let changes: Vec<MembershipChange> = page
            .iter()
            .filter_map(|(_, change)| serde_json::from_str(change).ok())
            .collect();
        // How long the oldest change not yet sent has waited (0 when none waits).
        let waited = changes
            .first()
            .map_or(0, |c| (time::now_ms() - c.at).max(0));
        metrics::gauge!("sightline_audience_sync_lag_seconds",
            "destination" => destination.name.clone(), "audience" => audience.to_owned())
        .set(waited as f64 / 1000.0);
        let Some(&(last, _)) = page.last() else {
            return Ok(false);
        };
        let shown = Shown::of(destination);
        let mut out = Vec::new();
        let mut members = Vec::new();
        for change in &changes {
            let doc = match change.profile.parse() {
                Ok(id) => match self.store.stored_profile_by_id(id).await? {
                    Some(stored) => Some(stored_doc(&stored)?),
                    None => None,
                },
                Err(_) => None,
            };
            if change.transition == Transition::Entered
                && !self.consented(destination, change, doc.as_ref()).await?
            {
                continue;
            }
            let entered = change.transition == Transition::Entered;
            if target.is_some() {
                let contact = doc.as_ref().map(|d| contact(&d.identity, &shown));
                members.push((change.profile.clone(), entered, contact.unwrap_or_default()));
                continue;
            }
            let shown_identifiers = doc
                .as_ref()
                .map_or(json!([]), |d| identifiers(&d.identity, &shown));
            out.push(json!({
                "action": if change.transition == Transition::Entered { "add" } else { "remove" },
                "profile": change.profile,
                "identifiers": shown_identifiers,
                "at": time::format_ms(change.at),
                "caused_by": change.caused_by,
            }));
        }
        let key = format!("audience:{audience}:changes:{}-{last}", page[0].0);
        let sent = match target {
            Some(target) => self.post_vendor(destination, target, &key, members).await,
            None if out.is_empty() => Sent::Done,
            None => {
                let body = json!({"audience": audience, "changes": out});
                self.post(destination, &key, body).await
            }
        };
        if let Sent::Later = sent {
            return Ok(false);
        }
        self.store.set_checkpoint(&checkpoint, last).await?;
        Ok(page.len() == CHUNK)
    }

    /// The id of the audience's last enter or exit record (0 when it has none).
    async fn last_change(&self, audience: &str) -> Result<i64> {
        let mut last = 0;
        loop {
            let page = self.store.audience_history(audience, last, CHUNK).await?;
            match page.last() {
                Some(&(id, _)) => last = id,
                None => return Ok(last),
            }
            if page.len() < CHUNK {
                return Ok(last);
            }
        }
    }

    /// The audience's current members whose consent now grants the destination's purposes,
    /// read from the stored profiles a page at a time.
    async fn snapshot(
        &self,
        audience: &str,
        destination: &Destination,
        target: Option<(&Vendor, &str)>,
    ) -> Result<Sent> {
        let shown = Shown::of(destination);
        let at = time::now_ms();
        let (mut after, mut part) = (0, 0);
        loop {
            let page = self.store.audience_members(audience, after, CHUNK).await?;
            let mut members = Vec::with_capacity(page.len());
            let mut contacts = Vec::new();
            for stored in &page {
                let doc = stored_doc(stored)?;
                if self.consented_now(destination, &doc, at) {
                    let profile = stored.id.to_string();
                    if target.is_some() {
                        contacts.push((profile, true, contact(&doc.identity, &shown)));
                    } else {
                        members.push(
                            json!({"profile": profile, "identifiers": identifiers(&doc.identity, &shown)}),
                        );
                    }
                }
            }
            let key = format!("audience:{audience}:snapshot:{at}:{part}");
            let sent = match target {
                Some(target) if !contacts.is_empty() => {
                    Some(self.post_vendor(destination, target, &key, contacts).await)
                }
                None if !members.is_empty() => {
                    let body = json!({"audience": audience, "snapshot": true, "part": part, "members": members});
                    Some(self.post(destination, &key, body).await)
                }
                _ => None,
            };
            match sent {
                Some(Sent::Later) => return Ok(Sent::Later),
                Some(Sent::Done) => part += 1,
                None => {}
            }
            match page.last() {
                Some(last) if page.len() == CHUNK => after = last.id,
                _ => return Ok(Sent::Done),
            }
        }
    }

    /// Whether the consent in force now for a member grants the destination's purposes.
    fn consented_now(&self, destination: &Destination, member: &ProfileDoc, now: i64) -> bool {
        if destination.purposes.is_empty() {
            return true;
        }
        let in_force = member.facts.consent.state_at(now, i64::MAX);
        match consent_gate(
            &self.policy,
            &destination.purposes,
            &Value::Null,
            Some(&in_force),
        ) {
            None => true,
            Some(suppression) => {
                tracing::info!(destination = %destination.name, profile = member.identity.id.0, reason = %suppression, "audience member withheld from a snapshot by consent");
                false
            }
        }
    }

    /// Whether the consent in force for the profile when it entered (its consent ledger,
    /// and the signals on the event that made it enter) grants the destination's purposes.
    async fn consented(
        &self,
        destination: &Destination,
        change: &MembershipChange,
        member: Option<&ProfileDoc>,
    ) -> Result<bool> {
        if destination.purposes.is_empty() {
            return Ok(true);
        }
        // The moment of the change: with the causing event's seq, so that consent given on
        // the same instant but later in the log does not count.
        let (body, seq) = match change.caused_by {
            Cause::Event(seq) => {
                let body = crate::events::event_at(self.store.as_ref(), seq)
                    .await?
                    .and_then(|e| serde_json::from_str::<Value>(&e.body).ok())
                    .unwrap_or_default();
                (body, seq)
            }
            _ => (Value::Null, i64::MAX),
        };
        let in_force = member.map(|doc| doc.facts.consent.state_at(change.at, seq));
        Ok(
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
            },
        )
    }

    async fn post(&self, destination: &Destination, key: &str, body: Value) -> Sent {
        let body = body.to_string();
        self.attempts(destination, || {
            self.webhook.post(
                &destination.url,
                &destination.signing_secret,
                key,
                body.clone(),
            )
        })
        .await
    }

    /// Sends a page of adds and removes to a vendor's `list` through its audience API:
    /// removes first, then adds, each profile by its last change in the page (an enter then
    /// an exit is a remove).
    async fn post_vendor(
        &self,
        destination: &Destination,
        (vendor, list): (&Vendor, &str),
        key: &str,
        members: Vec<(String, bool, Contact)>,
    ) -> Sent {
        let mut last: BTreeMap<String, (bool, Contact)> = BTreeMap::new();
        for (profile, entered, contact) in members {
            last.insert(profile, (entered, contact));
        }
        for (change, add) in [(Change::Remove, false), (Change::Add, true)] {
            let contacts: Vec<Contact> = last
                .values()
                .filter(|(entered, _)| *entered == add)
                .map(|(_, contact)| contact.clone())
                .collect();
            for (i, chunk) in contacts.chunks(audiences::MAX_MEMBERS).enumerate() {
                let key = format!("{key}:{change:?}:{i}");
                let Some(call) = vendor.audience_call(
                    &destination.url,
                    &destination.signing_secret,
                    list,
                    change,
                    chunk,
                    &key,
                ) else {
                    continue;
                };
                let sent = self
                    .attempts(destination, || {
                        self.webhook.send_audience_call(vendor, call.clone())
                    })
                    .await;
                if let Sent::Later = sent {
                    return Sent::Later;
                }
            }
        }
        Sent::Done
    }

    /// The vendor's list `audience` fills; `None` (warned of once until it is configured)
    /// while the destination's settings map none.
    fn list_for<'v>(
        &self,
        destination: &Destination,
        vendor: &'v Vendor,
        audience: &str,
    ) -> Option<&'v str> {
        let pair = (destination.id, audience.to_owned());
        let list = vendor.audience_list(audience);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match list {
            Ok(list) => {
                held.remove(&pair);
                Some(list)
            }
            Err(reason) => {
                if held.insert(pair) {
                    tracing::warn!(audience, destination = %destination.name, %reason, "audience sync held");
                }
                None
            }
        }
    }

    /// Up to [`MAX_ATTEMPTS`] of `send`, waiting between them as the answers ask.
    async fn attempts<F, Fut>(&self, destination: &Destination, send: F) -> Sent
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Answer>,
    {
        let backoff = Backoff::default();
        for attempt in 0..MAX_ATTEMPTS {
            match send().await {
                // A webhook's answer is never partial: it is one request, one body. A
                // vendor's refusal of some members leaves the others taken.
                Answer::Accepted { .. } | Answer::Partial { .. } => {
                    metrics::counter!("sightline_audience_sync_sent_total", "destination" => destination.name.clone()).increment(1);
                    return Sent::Done;
                }
                Answer::Refused { reason, .. } => {
                    tracing::error!(destination = %destination.name, %reason, "audience sync refused for good");
                    metrics::counter!("sightline_audience_sync_failed_total", "destination" => destination.name.clone()).increment(1);
                    return Sent::Done;
                }
                Answer::Retry { wait, reason, .. } => {
                    tracing::warn!(destination = %destination.name, %reason, attempt, "audience sync failed; retrying");
                    if attempt + 1 < MAX_ATTEMPTS {
                        // A long Retry-After is honoured by the next pass, not here.
                        let wait = wait.unwrap_or_else(|| backoff.delay(attempt, jitter()));
                        tokio::time::sleep(wait.min(MAX_WAIT)).await;
                    }
                }
            }
        }
        metrics::counter!("sightline_audience_sync_retries_total", "destination" => destination.name.clone()).increment(1);
        Sent::Later
    }
}

/// Whether a destination has an API audiences are synced to: a webhook, or a vendor type
/// with an audience API whose settings read.
fn syncs(destination: &Destination) -> bool {
    destination.kind == DestinationKind::Webhook || vendor_of(destination).is_some()
}

/// The vendor type of a destination with an audience API; `None` for a webhook.
fn vendor_of(destination: &Destination) -> Option<Vendor> {
    Vendor::of(destination.kind, &destination.settings)
        .ok()
        .flatten()
        .filter(Vendor::syncs_audiences)
}

/// A profile's emails and phones that the destination's transform lets out, in clear: the
/// vendor type hashes them by its own rules.
fn contact(identity: &Profile, shown: &Shown) -> Contact {
    let mut contact = Contact::default();
    for identifier in &identity.identifiers {
        let kind = identifier.id_type.as_str();
        if !shown.allows(kind) {
            continue;
        }
        match kind {
            "email" => contact.emails.push(identifier.value.clone()),
            "phone" => contact.phones.push(identifier.value.clone()),
            _ => {}
        }
    }
    contact
}

#[cfg(test)]
mod tests {
    use super::Shown;
    use serde_json::json;
    use sightline_core::{Destination, DestinationKind};

    fn shown(transform: serde_json::Value) -> Shown {
        Shown::of(&Destination {
            id: 1,
            name: "ads".into(),
            kind: DestinationKind::Webhook,
            url: "http://127.0.0.1:9/".into(),
            purposes: vec![],
            event_types: vec![],
            event_names: vec![],
            batch_size: 1,
            transform,
            settings: serde_json::json!({}),
            signing_secret: "s".into(),
            created_at: 0,
            disabled: false,
            approved: true,
        })
    }

    #[test]
    fn a_transform_s_deny_and_allow_lists_judge_identifiers_as_they_judge_fields() {
        let open = shown(json!({}));
        assert!(["user_id", "anonymous_id", "email", "phone", "crm_id"]
            .iter()
            .all(|t| open.allows(t)));
        assert!(!open.hashed_only);

        let denied = shown(json!({"deny": ["*.phone", "context.traits.crm_id", "anonymousId"]}));
        assert!(!denied.allows("phone"));
        assert!(!denied.allows("crm_id"));
        assert!(!denied.allows("anonymous_id"));
        assert!(denied.allows("email") && denied.allows("user_id"));

        let allowed = shown(json!({"allow": ["traits.email"], "hash": ["*.email"]}));
        assert!(allowed.allows("email"));
        assert!(!allowed.allows("phone"), "not in the allow list");
        assert!(
            allowed.allows("user_id"),
            "allow does not govern top-level fields"
        );
        assert!(allowed.hashed_only);

        let unreadable = shown(json!({"deny": "not a list"}));
        assert!(
            !unreadable.allows("user_id"),
            "an unreadable transform shows nothing"
        );
    }
}
