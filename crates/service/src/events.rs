//! Reading the event log, recording consent into it, and the identifier-free measurement
//! kept beside it.

use crate::access::{require, Actor, MARKETING, READERS};
use crate::sources::source_named;
use crate::{Error, Result};
use serde_json::{json, Value};
use sightline_core::{secret, time, DeniedCount, EventType, NewEvent, StoredEvent};
use sightline_store::{Appended, EventLog, ProfileStore, Store};

/// The most entries one page of a list holds.
pub const MAX_PAGE: usize = 1000;

/// Up to `limit` events after `after`, oldest first, of one source when named.
pub async fn page(
    store: &dyn Store,
    actor: &Actor,
    source: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    require(actor, READERS, "reading the event log")?;
    let source_id = match source {
        Some(name) => Some(source_named(store, name).await?.id),
        None => None,
    };
    Ok(store
        .read_events(after, limit.clamp(1, MAX_PAGE), source_id)
        .await?)
}

/// The event at `seq`, if the log holds it.
pub async fn event_at(store: &dyn EventLog, seq: i64) -> Result<Option<StoredEvent>> {
    let found = store.read_events(seq - 1, 1, None).await?;
    Ok(found.into_iter().find(|e| e.seq == seq))
}

/// Checks a `YYYY-MM-DD` day (the form days are stored and compared in).
pub fn check_day(text: &str) -> Result<()> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let valid = bytes.len() == 10
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10);
    if !valid {
        return Err(Error::invalid(format!(
            "{text:?} is not a day: write YYYY-MM-DD"
        )));
    }
    Ok(())
}

/// Counts of the events analytics consent did not cover, per day, source and event name:
/// all that is kept of them for measurement, as the profiles stored them.
pub async fn consent_denied(
    store: &dyn ProfileStore,
    actor: &Actor,
    from: &str,
    to: &str,
) -> Result<Vec<DeniedCount>> {
    require(actor, READERS, "reading measurement")?;
    check_day(from)?;
    check_day(to)?;
    Ok(store.consent_denied_counts(from, to).await?)
}

/// Days a consent request's `messageId` is remembered, as for tracking calls by default.
const CONSENT_DEDUP_MS: i64 = 24 * 3_600_000;

/// What recording consent did.
pub enum Recorded {
    /// Appended at this seq.
    Stored { seq: i64, message_id: String },
    /// The same `messageId` was recorded within the dedup window.
    Duplicate { message_id: String },
}

impl Recorded {
    pub fn to_json(&self) -> Value {
        match self {
            Recorded::Stored { seq, message_id } => json!({"seq": seq, "messageId": message_id}),
            Recorded::Duplicate { message_id } => {
                json!({"duplicate": true, "messageId": message_id})
            }
        }
    }
}

/// Records consent for an identifier as an event in the log (source 0, `api`); the
/// profile's consent ledger takes it in from there.
pub async fn record_consent(
    store: &dyn sightline_store::Store,
    actor: &Actor,
    request: crate::consent::ConsentRequest,
    policy: &sightline_consent::Policy,
) -> Result<Recorded> {
    require(actor, MARKETING, "recording consent")?;
    let now = time::now_ms();
    let (message_id, event) =
        crate::consent::to_event(request, policy, now, || secret::generate("consent-", 24))
            .map_err(Error::Invalid)?;
    let new = NewEvent {
        source_id: 0,
        message_id: message_id.clone(),
        event_type: EventType::Track,
        received_at: now,
        body: event.to_string(),
    };
    let outcome = store.append(vec![new], now - CONSENT_DEDUP_MS).await?;
    crate::audit::record(
        store,
        actor,
        "consent.record",
        &message_id,
        None,
        serde_json::from_str(&event.to_string()).ok(),
    )
    .await?;
    Ok(match outcome.first() {
        Some(Appended::Stored(seq)) => Recorded::Stored {
            seq: *seq,
            message_id,
        },
        _ => Recorded::Duplicate { message_id },
    })
}

/// Forgets dedup entries once they fall out of the window, every ten minutes.
pub struct DedupPruner {
    pub store: std::sync::Arc<dyn EventLog>,
    pub window: std::time::Duration,
}

impl crate::processors::Processor for DedupPruner {
    fn name(&self) -> String {
        "dedup-prune".into()
    }

    fn step(&self) -> crate::processors::StepFuture<'_> {
        Box::pin(async move {
            let before = time::now_ms() - self.window.as_millis() as i64;
            let pruned = self.store.prune_dedup(before).await?;
            if pruned > 0 {
                tracing::debug!(entries = pruned, "pruned dedup entries");
            }
            Ok(crate::processors::Step::Idle)
        })
    }

    fn idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(600)
    }
}
