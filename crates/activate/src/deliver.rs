//! Delivery from the log: one worker per destination reads the log from its own
//! checkpoint (`delivery:<id>`), routes each event (filtered, suppressed by consent, or
//! sent), and commits the outcomes with the checkpoint in one transaction. IO.
//!
//! At-least-once: the checkpoint moves only past events whose outcome is recorded
//! (delivered, suppressed, dead) or that the filter skips, so a crash at any point resends
//! at most what was sent since the last commit (one page, or one second of requests). Order: one worker per destination sends one request at a
//! time, in log order, and retries it until it is accepted or refused. Memory: the log is
//! read one page at a time.

use crate::backoff::{self, Backoff};
use crate::breaker::{Breaker, BreakerConfig, Permit};
use crate::gate::{self, Route};
use crate::transform::Transform;
use crate::vendor::{self, Mapped, Vendor};
use crate::warehouse::Loader;
use crate::webhook::{Answer, Webhook};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use sightline_consent::{ConsentState, Policy};
use sightline_core::pruned::{self, Keep};
use sightline_core::{time, Delivery, DeliveryStatus, Destination, EventType, StoredEvent};
use sightline_store::{Store, StoreError};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Events read from the log at a time: with 32 KB events, at most 32 MB per worker.
    pub page_size: usize,
    /// How often an idle destination looks for new events.
    pub idle_poll: Duration,
    /// How often the server looks for destinations added while it runs.
    pub discover_every: Duration,
    /// Per request, connecting included.
    pub timeout: Duration,
    pub backoff: Backoff,
    /// When a destination's requests keep failing, stop sending for a while.
    pub breaker: BreakerConfig,
    /// Requests per event batch before a replay gives up (the live worker never does).
    pub replay_attempts: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            page_size: 1024,
            idle_poll: Duration::from_millis(200),
            discover_every: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            breaker: BreakerConfig::default(),
            replay_attempts: 5,
        }
    }
}

/// What a run of deliveries came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub delivered: u64,
    pub suppressed: u64,
    pub dead: u64,
}

impl Tally {
    fn count(&mut self, deliveries: &[Delivery]) {
        for d in deliveries {
            match d.status {
                DeliveryStatus::Delivered => self.delivered += 1,
                DeliveryStatus::Suppressed => self.suppressed += 1,
                DeliveryStatus::Dead => self.dead += 1,
            }
        }
    }
}

/// Outcomes are committed at the end of each page, and sooner once this long has passed
/// since the last commit: one transaction (an fsync) per page keeps small batches cheap,
/// and a slow receiver still sees its progress recorded every second.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// What delivery reads of an event it sends as stored: what the gate reads (the type and
/// name, the consent signals), what a [`ConsentLedger`] reads to place the event (its time,
/// and its identifiers as `sightline_identity::extract` reads them), and a `seq` the sent
/// body would replace. `tests::the_routed_parts_route_and_place_as_the_whole_body` holds
/// it to the whole body.
const ROUTED: Keep = Keep::Keys(&[
    ("type", Keep::Whole),
    ("event", Keep::Whole),
    ("name", Keep::Whole),
    ("timestamp", Keep::Whole),
    ("gpc", Keep::Whole),
    ("seq", Keep::Whole),
    ("userId", Keep::Whole),
    ("anonymousId", Keep::Whole),
    ("previousId", Keep::Whole),
    ("traits", Keep::Whole),
    ("properties", Keep::Keys(&[("previousId", Keep::Whole)])),
    (
        "context",
        Keep::Keys(&[
            ("consent", Keep::Whole),
            ("tcf", Keep::Whole),
            ("locale", Keep::Whole),
            ("traits", Keep::Whole),
            ("device", Keep::Whole),
            ("externalIds", Keep::Whole),
        ]),
    ),
]);

/// The checkpoint name of a destination's worker.
pub fn processor(destination: &Destination) -> String {
    format!("delivery:{}", destination.id)
}

/// An event on its way out: for a webhook the event as transformed, for a vendor type
/// the item it was mapped to and the envelope it shares with the rest of its request.
struct Outgoing<'a> {
    seq: i64,
    event_type: EventType,
    message_id: String,
    body: Value,
    /// For a webhook that sends events as stored, the stored text, sent in place of
    /// `body` (which then holds only what [`ROUTED`] reads).
    stored: Option<&'a str>,
    envelope: Value,
    /// The item's size in JSON, for a vendor's limit on a request body.
    bytes: usize,
}

/// The batch being filled, and where its events go.
struct Batch<'a> {
    destination: &'a Destination,
    vendor: Option<&'a Vendor>,
    events: Vec<Outgoing<'a>>,
    bytes: usize,
}

impl<'a> Batch<'a> {
    /// Whether `next` must go in a request of its own, after this batch is sent: its
    /// envelope differs, or it would take the body past the vendor's limit.
    fn cannot_take(&self, next: &Outgoing) -> bool {
        let Some(first) = self.events.first() else {
            return false;
        };
        first.envelope != next.envelope
            || self
                .vendor
                .and_then(Vendor::max_body_bytes)
                .is_some_and(|max| self.bytes + next.bytes + 1 > max)
    }

    fn push(&mut self, event: Outgoing<'a>) {
        self.bytes += event.bytes + 1;
        self.events.push(event);
    }

    fn full(&self) -> bool {
        self.events.len() >= self.destination.batch_size.max(1) as usize
    }

    fn take(&mut self) -> Vec<Outgoing<'a>> {
        self.bytes = 0;
        std::mem::take(&mut self.events)
    }
}

/// The consent ledger as delivery reads it, kept by whatever follows the log into
/// profiles.
#[async_trait::async_trait]
pub trait ConsentLedger: Send + Sync + 'static {
    /// The last log position the ledger has taken in: later events wait for it, so that an
    /// event is never judged on a ledger that has not seen the consent before it.
    fn known_through(&self) -> i64;
    /// For each event (with its body parsed, at least the parts [`ROUTED`] names), the
    /// consent in force at its time for the profile it is on, if any, in order. A page at a time, so that what is read from the
    /// store for it is read at once.
    async fn consent_for(
        &self,
        events: &[(&StoredEvent, &Value)],
    ) -> Result<Vec<Option<ConsentState>>, StoreError>;
}

pub struct Deliverer {
    store: Arc<dyn Store>,
    policy: Policy,
    /// Without one, only the consent an event carries counts.
    ledger: Option<Arc<dyn ConsentLedger>>,
    webhook: Webhook,
    warehouse: Loader,
    settings: Settings,
    /// One circuit breaker per destination id.
    breakers: Mutex<HashMap<i64, Breaker>>,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        policy: Policy,
        ledger: Option<Arc<dyn ConsentLedger>>,
        webhook: Webhook,
        settings: Settings,
    ) -> Arc<Deliverer> {
        Arc::new(Deliverer {
            webhook,
            warehouse: Loader::new(settings.timeout),
            store,
            policy,
            ledger,
            settings,
            breakers: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Delivers the destination's next page of the log from its checkpoint; true when there
    /// may be more right away. The server runs it for every destination under its
    /// processor supervisor.
    pub async fn deliver_next(&self, destination: &Destination) -> Result<bool, StoreError> {
        self.catch_up(destination, &processor(destination)).await
    }

    /// Delivers the next page of the log; true when there may be more right away.
    async fn catch_up(
        &self,
        destination: &Destination,
        processor: &str,
    ) -> Result<bool, StoreError> {
        let position = self.store.checkpoint(processor).await?;
        let mut events = self
            .store
            .read_events(position, self.settings.page_size, None)
            .await?;
        let full = events.len() == self.settings.page_size;
        if let Some(ledger) = &self.ledger {
            let known = ledger.known_through();
            events.retain(|e| e.seq <= known);
        }
        let reached = match events.last() {
            Some(last) => {
                self.deliver(destination, &events, None, Some(processor))
                    .await?;
                last.seq
            }
            None => position,
        };
        let lag = (self.store.last_seq().await? - reached).max(0);
        metrics::gauge!("sightline_delivery_lag_events", "destination" => destination.name.clone())
            .set(lag as f64);
        Ok(full && events.len() == self.settings.page_size)
    }

    /// Routes and sends `events` (in log order) and records every outcome. With a
    /// checkpoint, it moves in the same transaction as the outcomes it covers.
    async fn deliver(
        &self,
        destination: &Destination,
        events: &[StoredEvent],
        max_attempts: Option<u32>,
        checkpoint: Option<&str>,
    ) -> Result<Tally, StoreError> {
        let mut tally = Tally::default();
        let mut outcomes = Vec::new();
        let mut last_commit = Instant::now();
        // Validated when the destination was added. Should it not read, send nothing:
        // sending untransformed could leak what it was meant to hash or remove.
        let transform = serde_json::from_value::<Transform>(destination.transform.clone())
            .map_err(|e| format!("the destination's transform cannot be read: {e}"));
        let vendor = Vendor::of(destination.kind, &destination.settings);
        let mut batch = Batch {
            destination,
            vendor: vendor.as_ref().ok().and_then(Option::as_ref),
            events: Vec::new(),
            bytes: 0,
        };
        let now_ms = time::now_ms();
        // A webhook that changes nothing sends each event's stored text: of its body only
        // what routes it is built (most of delivery's work was building the rest and
        // writing it out again).
        let as_stored =
            matches!(vendor, Ok(None)) && transform.as_ref().is_ok_and(Transform::is_identity);
        let bodies: Vec<Option<Value>> = events
            .iter()
            .map(|event| match as_stored {
                true => pruned::parse(&event.body, &ROUTED).ok(),
                false => serde_json::from_str::<Value>(&event.body).ok(),
            })
            .collect();
        let parsed: Vec<(&StoredEvent, &Value)> = events
            .iter()
            .zip(&bodies)
            .filter_map(|(event, body)| Some((event, body.as_ref()?)))
            .collect();
        let mut in_force = match &self.ledger {
            Some(ledger) => {
                let answers = ledger.consent_for(&parsed).await?;
                // Never a missing answer read as "no ledger state" by the gate.
                if answers.len() != parsed.len() {
                    return Err(StoreError::Worker(format!(
                        "the consent ledger answered for {} of {} events",
                        answers.len(),
                        parsed.len()
                    )));
                }
                answers
            }
            None => Vec::new(),
        }
        .into_iter();
        for (event, body) in events.iter().zip(bodies) {
            let Some(body) = body else {
                // The collector only stores JSON; a body that no longer parses is kept
                // as a dead letter rather than blocking the destination.
                outcomes.push(outcome(
                    destination,
                    event.seq,
                    &event.message_id,
                    DeliveryStatus::Dead,
                    Some("the stored event is not valid JSON".into()),
                ));
                continue;
            };
            // One answer per parsed event, in order (none without a ledger).
            let in_force = in_force.next().flatten();
            let dead = |reason: String| {
                outcome(
                    destination,
                    event.seq,
                    &event.message_id,
                    DeliveryStatus::Dead,
                    Some(reason),
                )
            };
            match gate::route(
                &self.policy,
                destination,
                event.event_type,
                &body,
                in_force.as_ref(),
            ) {
                Route::Filtered => {}
                Route::Suppressed(why) => {
                    metrics::counter!("sightline_delivery_suppressed_total",
                        "destination" => destination.name.clone())
                    .increment(1);
                    outcomes.push(outcome(
                        destination,
                        event.seq,
                        &event.message_id,
                        DeliveryStatus::Suppressed,
                        Some(why.to_string()),
                    ));
                }
                Route::Deliver => {
                    // Read before the transform, which may remove the signals.
                    let consent = match &vendor {
                        Ok(Some(_)) => gate::decisions(&self.policy, &body, in_force.as_ref()),
                        _ => Default::default(),
                    };
                    let mut body = body;
                    match &transform {
                        Ok(transform) => transform.apply(&mut body),
                        Err(reason) => {
                            outcomes.push(dead(reason.clone()));
                            continue;
                        }
                    }
                    let next = match &vendor {
                        Err(reason) => {
                            outcomes.push(dead(reason.clone()));
                            continue;
                        }
                        Ok(None) => {
                            let stored = as_stored.then_some(event.body.as_str());
                            // Without a top-level `seq` to replace, the stored text is sent;
                            // with one (rare), the event is built whole.
                            let (body, stored) = match stored {
                                Some(_) if body.get("seq").is_some() => {
                                    (serde_json::from_str(&event.body).unwrap_or(body), None)
                                }
                                stored => (body, stored),
                            };
                            Outgoing {
                                seq: event.seq,
                                event_type: event.event_type,
                                message_id: event.message_id.clone(),
                                body,
                                stored,
                                envelope: Value::Null,
                                bytes: 0,
                            }
                        }
                        Ok(Some(vendor)) => match vendor.map(&vendor::Input {
                            event_type: event.event_type,
                            event: &body,
                            message_id: &event.message_id,
                            consent: &consent,
                            now_ms,
                        }) {
                            Mapped::Skip => continue,
                            Mapped::Refuse(reason) => {
                                dead_letters(&destination.name, 1);
                                outcomes.push(dead(reason));
                                continue;
                            }
                            Mapped::Item { envelope, item } => {
                                let bytes = item.to_string().len();
                                if vendor.max_body_bytes().is_some_and(|max| bytes >= max) {
                                    dead_letters(&destination.name, 1);
                                    outcomes.push(dead(format!(
                                        "the event is larger than the {} bytes {} takes in a request",
                                        vendor.max_body_bytes().unwrap_or_default(),
                                        destination.kind.as_str()
                                    )));
                                    continue;
                                }
                                Outgoing {
                                    seq: event.seq,
                                    event_type: event.event_type,
                                    message_id: event.message_id.clone(),
                                    body: item,
                                    stored: None,
                                    envelope,
                                    bytes,
                                }
                            }
                        },
                    };
                    if batch.cannot_take(&next) {
                        let Some(sent) = self.send(&mut batch, max_attempts, checkpoint).await?
                        else {
                            return Ok(tally);
                        };
                        outcomes.extend(sent);
                    }
                    batch.push(next);
                    if batch.full() {
                        let Some(sent) = self.send(&mut batch, max_attempts, checkpoint).await?
                        else {
                            return Ok(tally);
                        };
                        outcomes.extend(sent);
                        if last_commit.elapsed() >= COMMIT_EVERY {
                            tally.count(&outcomes);
                            self.record(std::mem::take(&mut outcomes), checkpoint, event.seq)
                                .await?;
                            last_commit = Instant::now();
                        }
                    }
                }
            }
        }
        if !batch.events.is_empty() {
            let Some(sent) = self.send(&mut batch, max_attempts, checkpoint).await? else {
                return Ok(tally);
            };
            outcomes.extend(sent);
        }
        tally.count(&outcomes);
        if let Some(last) = events.last() {
            self.record(outcomes, checkpoint, last.seq).await?;
        }
        Ok(tally)
    }

    async fn record(
        &self,
        outcomes: Vec<Delivery>,
        checkpoint: Option<&str>,
        seq: i64,
    ) -> Result<(), StoreError> {
        let checkpoint = checkpoint.map(|processor| (processor.to_string(), seq));
        if outcomes.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        self.store.record_deliveries(outcomes, checkpoint).await
    }

    /// How long the destination's breaker says to wait before the next request, if at all.
    fn breaker_wait(&self, destination: &Destination) -> Option<Duration> {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        let breaker = breakers
            .entry(destination.id)
            .or_insert_with(|| Breaker::new(self.settings.breaker));
        let now = time::now_ms();
        let wait = match breaker.allow(now) {
            Permit::Send => None,
            Permit::WaitUntil(until) => Some(Duration::from_millis((until - now).max(1) as u64)),
            // One request per destination is in flight at a time, so a trial's outcome is
            // reported before the next ask; this only guards against a caller that did not.
            Permit::WaitForTrial => Some(Duration::from_millis(100)),
        };
        metrics::gauge!("sightline_delivery_breaker_open", "destination" => destination.name.clone())
            .set(if wait.is_some() { 1.0 } else { 0.0 });
        wait
    }

    fn breaker_outcome(&self, destination: &Destination, answered: bool) {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(breaker) = breakers.get_mut(&destination.id) {
            if answered {
                breaker.on_success();
            } else {
                breaker.on_failure(time::now_ms());
            }
        }
    }

    /// Whether the live checkpoint was moved past `seq` by someone else (`destination
    /// skip-to`) while a batch was being retried.
    async fn skipped_past(&self, checkpoint: Option<&str>, seq: i64) -> Result<bool, StoreError> {
        match checkpoint {
            Some(processor) => Ok(self.store.checkpoint(processor).await? >= seq),
            None => Ok(false),
        }
    }

    /// Sends one batch until the receiver accepts or refuses it (or, with `max_attempts`,
    /// until the attempts run out), and returns its outcomes; `None` when, between two
    /// attempts, the live checkpoint was moved past the batch (the page is abandoned).
    async fn send(
        &self,
        batch: &mut Batch<'_>,
        max_attempts: Option<u32>,
        checkpoint: Option<&str>,
    ) -> Result<Option<Vec<Delivery>>, StoreError> {
        let destination = batch.destination;
        let vendor = batch.vendor;
        let batch = batch.take();
        let label = destination.name.clone();
        let request = match vendor {
            None => Request::Webhook(request_body(destination, &batch)),
            Some(Vendor::Warehouse(settings)) => {
                let loaded_at = time::format_ms(time::now_ms());
                let rows = batch
                    .iter()
                    .map(|event| {
                        vendor::warehouse::rows(
                            event.event_type,
                            &event.body,
                            &event.message_id,
                            &loaded_at,
                        )
                    })
                    .collect();
                Request::Warehouse(settings, rows)
            }
            Some(vendor) => Request::Vendor(
                vendor,
                vendor.request(
                    &destination.url,
                    &destination.signing_secret,
                    &batch[0].envelope,
                    batch.iter().map(|event| event.body.clone()).collect(),
                ),
            ),
        };
        let last_seq = batch.last().map_or(0, |b| b.seq);
        let mut attempts = 0u32;
        loop {
            if attempts > 0 && self.skipped_past(checkpoint, last_seq).await? {
                tracing::info!(destination = %label, seq = last_seq, "the checkpoint was moved past the batch being retried: abandoning the page");
                return Ok(None);
            }
            if let Some(wait) = self.breaker_wait(destination) {
                tokio::time::sleep(wait).await;
                continue;
            }
            attempts += 1;
            metrics::counter!("sightline_delivery_attempts_total", "destination" => label.clone())
                .increment(1);
            let started = Instant::now();
            let answer = match &request {
                Request::Vendor(vendor, Some(request)) => {
                    self.webhook.send_vendor(vendor, request.clone()).await
                }
                Request::Vendor(_, None) => Answer::Refused {
                    code: None,
                    reason: format!(
                        "a {} destination makes no request",
                        destination.kind.as_str()
                    ),
                },
                Request::Warehouse(settings, rows) => {
                    self.warehouse.load(destination, settings, rows).await
                }
                Request::Webhook((body, idempotency_key)) => {
                    self.webhook
                        .post(
                            &destination.url,
                            &destination.signing_secret,
                            idempotency_key,
                            body.clone(),
                        )
                        .await
                }
            };
            let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            let finished = |status, code, reason: Option<String>| {
                batch
                    .iter()
                    .map(|event| Delivery {
                        attempts,
                        response_code: code,
                        latency_ms: Some(latency_ms),
                        ..outcome(
                            destination,
                            event.seq,
                            &event.message_id,
                            status,
                            reason.clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            match answer {
                Answer::Accepted { code } => {
                    self.breaker_outcome(destination, true);
                    metrics::counter!("sightline_delivery_delivered_total", "destination" => label)
                        .increment(batch.len() as u64);
                    return Ok(Some(finished(DeliveryStatus::Delivered, Some(code), None)));
                }
                Answer::Partial { code, refused } => {
                    self.breaker_outcome(destination, true);
                    let mut outcomes =
                        finished(DeliveryStatus::Delivered, Some(code), None::<String>);
                    let mut dead = 0;
                    for (index, reason) in refused {
                        // An index the request did not have is the vendor's mistake: the
                        // items it names are the only ones refused.
                        if let Some(outcome) = outcomes.get_mut(index) {
                            if outcome.status == DeliveryStatus::Delivered {
                                dead += 1;
                            }
                            outcome.status = DeliveryStatus::Dead;
                            outcome.reason = Some(reason);
                        }
                    }
                    if dead > 0 {
                        failed(&label);
                        dead_letters(&label, dead);
                    }
                    metrics::counter!("sightline_delivery_delivered_total", "destination" => label)
                        .increment((batch.len() - dead) as u64);
                    return Ok(Some(outcomes));
                }
                Answer::Refused { code, reason } => {
                    // The receiver answered (or the request could not even be built): a
                    // refusal is about the request, not the receiver's health.
                    if code.is_some() {
                        self.breaker_outcome(destination, true);
                    }
                    failed(&label);
                    dead_letters(&label, batch.len());
                    return Ok(Some(finished(DeliveryStatus::Dead, code, Some(reason))));
                }
                Answer::Retry { code, wait, reason } => {
                    self.breaker_outcome(destination, false);
                    failed(&label);
                    if max_attempts.is_some_and(|max| attempts >= max) {
                        dead_letters(&label, batch.len());
                        let reason = format!("gave up after {attempts} attempts: {reason}");
                        return Ok(Some(finished(DeliveryStatus::Dead, code, Some(reason))));
                    }
                    let wait = wait.unwrap_or_else(|| {
                        self.settings.backoff.delay(attempts - 1, backoff::jitter())
                    });
                    tracing::debug!(destination = %label, attempts, ?wait, %reason, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Sends a destination's dead letters again (with bounded attempts) and records the
    /// new outcomes in their place. Reads the delivery log one page at a time.
    pub async fn replay_dead(&self, destination: &Destination) -> Result<Tally, StoreError> {
        let mut tally = Tally::default();
        let mut after = 0;
        loop {
            let dead = self
                .store
                .deliveries(
                    destination.id,
                    Some(DeliveryStatus::Dead),
                    after,
                    self.settings.page_size,
                )
                .await?;
            let Some(last) = dead.last() else {
                return Ok(tally);
            };
            after = last.seq;
            let mut events = Vec::with_capacity(dead.len());
            for letter in &dead {
                let event = self.store.read_events(letter.seq - 1, 1, None).await?;
                // An event erased since then has nothing left to send.
                events.extend(event.into_iter().filter(|e| e.seq == letter.seq));
            }
            let replayed = self
                .deliver(
                    destination,
                    &events,
                    Some(self.settings.replay_attempts),
                    None,
                )
                .await?;
            tally.delivered += replayed.delivered;
            tally.suppressed += replayed.suppressed;
            tally.dead += replayed.dead;
        }
    }

    /// Sends the events with `from <= seq <= to` again (with bounded attempts), whatever
    /// their earlier outcome; the consent gate and filter apply as for live delivery.
    pub async fn replay_range(
        &self,
        destination: &Destination,
        from: i64,
        to: i64,
    ) -> Result<Tally, StoreError> {
        let mut tally = Tally::default();
        let mut after = from.saturating_sub(1);
        while after < to {
            let mut events = self
                .store
                .read_events(after, self.settings.page_size, None)
                .await?;
            let full_page = events.len() == self.settings.page_size;
            events.retain(|e| e.seq <= to);
            let Some(last) = events.last() else {
                return Ok(tally);
            };
            after = last.seq;
            let replayed = self
                .deliver(
                    destination,
                    &events,
                    Some(self.settings.replay_attempts),
                    None,
                )
                .await?;
            tally.delivered += replayed.delivered;
            tally.suppressed += replayed.suppressed;
            tally.dead += replayed.dead;
            if !full_page {
                break;
            }
        }
        Ok(tally)
    }
}

/// One request that was not accepted.
fn failed(destination: &str) {
    metrics::counter!("sightline_delivery_failures_total", "destination" => destination.to_string())
        .increment(1);
}

fn dead_letters(destination: &str, events: usize) {
    metrics::counter!("sightline_delivery_dead_total", "destination" => destination.to_string())
        .increment(events as u64);
}

fn outcome(
    destination: &Destination,
    seq: i64,
    message_id: &str,
    status: DeliveryStatus,
    reason: Option<String>,
) -> Delivery {
    Delivery {
        destination_id: destination.id,
        seq,
        message_id: message_id.to_string(),
        status,
        attempts: 0,
        response_code: None,
        latency_ms: None,
        reason,
        at: time::now_ms(),
    }
}

/// One batch's request, built once and sent again as is on each attempt.
enum Request<'a> {
    /// The JSON body and its idempotency key, signed at each attempt.
    Webhook((String, String)),
    /// `None` for a type that is not sent over HTTP (only the warehouse, built above).
    Vendor(&'a Vendor, Option<vendor::Request>),
    /// Each event's rows.
    Warehouse(
        &'a vendor::warehouse::Settings,
        Vec<Vec<vendor::warehouse::Row>>,
    ),
}

/// The JSON body (one event as the events API shows it, or an array of them for a
/// batching destination) and its idempotency key: the event's messageId, or
/// `<destination id>:<first seq>-<last seq>` for a batch.
fn request_body(destination: &Destination, batch: &[Outgoing]) -> (String, String) {
    match batch {
        [only] if destination.batch_size <= 1 => {
            let mut body = String::new();
            write_with_seq(&mut body, only);
            (body, only.message_id.clone())
        }
        _ => {
            let first = batch.first().map_or(0, |e| e.seq);
            let last = batch.last().map_or(0, |e| e.seq);
            let size = batch
                .iter()
                .map(|e| e.stored.map_or(512, str::len) + 32)
                .sum::<usize>();
            let mut body = String::with_capacity(size + 2);
            body.push('[');
            for (i, event) in batch.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                write_with_seq(&mut body, event);
            }
            body.push(']');
            (body, format!("{}:{first}-{last}", destination.id))
        }
    }
}

/// Writes the event's JSON with its log position as `seq`: the stored text with `seq`
/// added last, or the built body through [`WithSeq`].
fn write_with_seq(out: &mut String, event: &Outgoing) {
    match event.stored.and_then(object_text) {
        Some((inside, empty)) => {
            out.push_str(inside);
            if !empty {
                out.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "\"seq\":{}}}", event.seq);
        }
        None => out.push_str(&json_text(&WithSeq::of(event))),
    }
}

/// An object's JSON text without its closing brace, and whether it has no members; `None`
/// for text that is not an object.
fn object_text(text: &str) -> Option<(&str, bool)> {
    let text = text.trim_matches(JSON_WHITESPACE);
    let inside = text.strip_prefix('{')?.strip_suffix('}')?;
    let empty = inside.trim_matches(JSON_WHITESPACE).is_empty();
    Some((&text[..text.len() - 1], empty))
}

const JSON_WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];

/// An event's JSON with its log position as `seq` (in place of a `seq` it carried, else
/// last), written without copying the event.
struct WithSeq<'a>(&'a Value, i64);

impl WithSeq<'_> {
    fn of<'a>(event: &'a Outgoing) -> WithSeq<'a> {
        WithSeq(&event.body, event.seq)
    }
}

impl Serialize for WithSeq<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(map) = self.0 else {
            return self.0.serialize(serializer);
        };
        let carried = map.contains_key("seq");
        let mut out = serializer.serialize_map(Some(map.len() + usize::from(!carried)))?;
        for (key, value) in map {
            if key == "seq" {
                out.serialize_entry(key, &self.1)?;
            } else {
                out.serialize_entry(key, value)?;
            }
        }
        if !carried {
            out.serialize_entry("seq", &self.1)?;
        }
        out.end()
    }
}

/// JSON text of values that always serialize (JSON values, whose keys are strings).
fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;
    use serde_json::json;

    #[test]
    fn the_log_position_goes_last_or_in_place_of_a_carried_seq_and_nothing_else_moves() {
        let plain = json!({"type": "track", "event": "A", "properties": {"seq": 1}});
        assert_eq!(
            json_text(&WithSeq(&plain, 42)),
            r#"{"type":"track","event":"A","properties":{"seq":1},"seq":42}"#
        );
        let carried = json!({"seq": "mine", "type": "track"});
        assert_eq!(
            json_text(&WithSeq(&carried, 7)),
            r#"{"seq":7,"type":"track"}"#
        );
        let batch = [WithSeq(&plain, 1), WithSeq(&json!([1]), 2)];
        assert_eq!(
            json_text(&batch.as_slice()),
            r#"[{"type":"track","event":"A","properties":{"seq":1},"seq":1},[1]]"#
        );
    }

    fn outgoing<'a>(seq: i64, body: Value, stored: Option<&'a str>) -> Outgoing<'a> {
        Outgoing {
            seq,
            event_type: EventType::Track,
            message_id: format!("m-{seq}"),
            body,
            stored,
            envelope: Value::Null,
            bytes: 0,
        }
    }

    fn hook(batch_size: u32) -> Destination {
        Destination {
            id: 3,
            batch_size,
            ..gate::tests::destination(&[], &[], &[])
        }
    }

    #[test]
    fn a_stored_text_is_sent_as_its_built_body_would_be() {
        for text in [
            r#"{"type":"track","event":"A","properties":{"seq":1,"price":1.50}}"#,
            " {\n\"type\" : \"page\" } \n",
            "{}",
            "{ \t}",
        ] {
            let built: Value = serde_json::from_str(text).unwrap();
            let from_text = request_body(&hook(1), &[outgoing(9, json!({}), Some(text))]);
            let from_value = request_body(&hook(1), &[outgoing(9, built, None)]);
            assert_eq!(
                serde_json::from_str::<Value>(&from_text.0).unwrap(),
                serde_json::from_str::<Value>(&from_value.0).unwrap(),
                "{text}"
            );
            assert_eq!(from_text.1, "m-9");
        }
        // The text as sent: numbers keep their digits.
        let (body, _) = request_body(
            &hook(1),
            &[outgoing(4, json!({}), Some(r#"{"price":1.50}"#))],
        );
        assert_eq!(body, r#"{"price":1.50,"seq":4}"#);
        // A batch mixes both forms.
        let (body, key) = request_body(
            &hook(10),
            &[
                outgoing(1, json!({}), Some(r#"{"a":1}"#)),
                outgoing(2, json!({"seq": "mine", "b": 2}), None),
            ],
        );
        assert_eq!(body, r#"[{"a":1,"seq":1},{"seq":2,"b":2}]"#);
        assert_eq!(key, "3:1-2");
    }

    /// JSON fragments of the parts of an event delivery reads, and of parts it does not.
    fn event_text() -> impl Strategy<Value = String> {
        let pick = |options: &'static [&'static str]| proptest::sample::select(options);
        (
            pick(&["track", "page", "identify", "screen", "alias"]),
            pick(&["", r#","event":"Order Completed""#, r#","event":"A","name":"B""#, r#","name":"Home""#]),
            pick(&["", r#","userId":"u1""#, r#","userId":42"#, r#","userId":null"#]),
            pick(&["", r#","anonymousId":"a1""#, r#","previousId":"p0""#, r#","previousId":null"#]),
            pick(&["", r#","traits":{"email":"Ann@Example.com","phone":"+1 555 0100"}"#]),
            pick(&[
                "",
                r#","consent":{"categoryPreferences":{"Advertising":false,"Analytics":true}}"#,
                r#","consent":{"purposes":{"advertising":true}},"tcf":"CPzHq4APzHq4AAKAeAENCZCgAP_AAH_AAAqIAAAAAAAA""#,
                r#","consent":{"googleConsentMode":{"ad_storage":"denied","analytics_storage":"granted"}}"#,
                r#","traits":{"email":"b@example.com"},"device":{"id":"d-1"},"externalIds":[{"id":"x","type":"crm_id"}],"locale":"en-GB""#,
            ]),
            pick(&["", r#","gpc":true"#, r#","timestamp":"2026-01-02T03:04:05.000Z""#, r#","seq":7"#]),
            pick(&["", r#","properties":{"previousId":"p1","revenue":3.5,"seq":1}"#, r#","integrations":{"All":false}"#]),
        )
            .prop_map(|(t, name, user, anon, traits, context, top, rest)| {
                format!(
                    r#"{{"type":"{t}"{name}{user}{anon}{traits},"context":{{"page":{{"url":"https://x.test/"}}{context}}}{top}{rest}}}"#
                )
            })
    }

    proptest::proptest! {
        /// The parts of a body [`ROUTED`] keeps route it (filter and consent gate), place
        /// it on a profile (identifiers, time) and show a carried `seq` as the whole body does.
        #[test]
        fn the_routed_parts_route_and_place_as_the_whole_body(text in event_text()) {
            let whole: Value = serde_json::from_str(&text).unwrap();
            let routed = pruned::parse(&text, &ROUTED).unwrap();
            let event = StoredEvent {
                seq: 5,
                source_id: 1,
                message_id: "m".into(),
                event_type: EventType::parse(whole["type"].as_str().unwrap()).unwrap(),
                received_at: 1,
                body: text.clone(),
            };
            let policy = Policy::default();
            for (purposes, names) in [
                (vec![], vec![]),
                (vec!["advertising".to_string()], vec![]),
                (vec!["analytics".to_string(), "advertising".to_string()], vec!["Order Completed".to_string(), "Home".to_string()]),
            ] {
                let destination = Destination { purposes, event_names: names, ..hook(1) };
                proptest::prop_assert_eq!(
                    gate::route(&policy, &destination, event.event_type, &routed, None),
                    gate::route(&policy, &destination, event.event_type, &whole, None)
                );
            }
            let rules = sightline_identity::Rules::default();
            proptest::prop_assert_eq!(
                sightline_identity::extract(&routed, &rules),
                sightline_identity::extract(&whole, &rules)
            );
            proptest::prop_assert_eq!(
                sightline_profiles::event_time(&event, &routed),
                sightline_profiles::event_time(&event, &whole)
            );
            proptest::prop_assert_eq!(routed.get("seq"), whole.get("seq"));
        }
    }
}
