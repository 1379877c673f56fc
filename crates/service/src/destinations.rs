//! Destinations and their delivery log: adding (one or a file's worth), listing, the
//! outcomes page, and replay.

use crate::access::{require, Actor, MARKETING, READERS};
use crate::audit::record;
use crate::processors::{PositionFuture, Processor, Step, StepFuture, Supervisor};
use crate::{Error, Result};
use serde_json::{json, Value};
use sightline_activate::{Deliverer, Tally};
use sightline_core::{time, Delivery, DeliveryStatus, Destination, DestinationKind};
use sightline_store::{Destinations, Store};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The most deliveries one page holds.
pub const MAX_PAGE: usize = 1000;

/// A destination as the audit log keeps it: no signing secret or credential (never
/// serialised), its URL's credentials masked.
fn audit_view(destination: &Destination) -> Option<Value> {
    let mut value = crate::audit::snapshot(destination)?;
    value["url"] = masked_url(&destination.url).into();
    Some(value)
}

/// Replaces a vendor destination's credential. The delivery held by a refused one picks
/// the new one up at once (its worker starts its page again).
pub async fn set_credential(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    credential: &str,
) -> Result<()> {
    require(actor, MARKETING, "replacing a destination's credential")?;
    let destination = named(store, name).await?;
    if destination.kind == DestinationKind::Webhook {
        return Err(Error::invalid(format!(
            "destination {name:?} is a webhook: its signing secret is Sightline's own, not a credential"
        )));
    }
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(Error::invalid("the credential is empty"));
    }
    sightline_activate::vendor::Vendor::check_credential(destination.kind, credential)
        .map_err(Error::invalid)?;
    store
        .set_destination_secret(destination.id, credential)
        .await?;
    let redacted = Some(json!({"credential": crate::audit::REDACTED}));
    record(
        store,
        actor,
        "destination.set_credential",
        name,
        redacted.clone(),
        redacted,
    )
    .await
}

/// Every destination, without its signing secret and with any credentials in its URL
/// masked (a listing is read by more people than the one who added it).
pub async fn list(store: &dyn Destinations, actor: &Actor) -> Result<Vec<Destination>> {
    require(actor, READERS, "reading destinations")?;
    let mut destinations = store.list_destinations().await?;
    for d in &mut destinations {
        d.url = masked_url(&d.url);
    }
    Ok(destinations)
}

/// `https://user:secret@host/…` → `https://***:***@host/…`; other URLs as they are.
pub fn masked_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("***");
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        _ => text.to_owned(),
    }
}

/// A destination by name, or an error that says where to look.
pub async fn named(store: &dyn Destinations, name: &str) -> Result<Destination> {
    store.destination_by_name(name).await?.ok_or_else(|| {
        Error::not_found(
            "destination",
            format!("no destination named {name:?}: `sightline destination list` shows them"),
        )
    })
}

pub fn parse_status(text: &str) -> Result<DeliveryStatus> {
    DeliveryStatus::parse(text).ok_or_else(|| {
        Error::invalid(format!(
            "unknown delivery status {text:?}: use delivered, suppressed or dead"
        ))
    })
}

/// A destination's delivery outcomes after `after`, oldest first.
pub async fn deliveries(
    store: &dyn Destinations,
    actor: &Actor,
    name: &str,
    status: Option<DeliveryStatus>,
    after: i64,
    limit: usize,
) -> Result<Vec<Delivery>> {
    require(actor, READERS, "reading the delivery log")?;
    let destination = named(store, name).await?;
    Ok(store
        .deliveries(destination.id, status, after, limit.clamp(1, MAX_PAGE))
        .await?)
}

/// `{"deliveries":[…],"next_after":SEQ}`, times in RFC 3339.
pub fn page_json(page: &[Delivery], after: i64) -> Value {
    let deliveries: Vec<Value> = page
        .iter()
        .map(|d| {
            json!({
                "seq": d.seq,
                "message_id": d.message_id,
                "status": d.status,
                "attempts": d.attempts,
                "response_code": d.response_code,
                "latency_ms": d.latency_ms,
                "reason": d.reason,
                "at": time::format_ms(d.at),
            })
        })
        .collect();
    let next_after = page.last().map_or(after, |d| d.seq);
    json!({"deliveries": deliveries, "next_after": next_after})
}

/// Pauses (`disabled` true) or resumes delivery to a destination; its checkpoint holds, so
/// a resumed destination goes on from where it stopped.
pub async fn set_disabled(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    disabled: bool,
) -> Result<Destination> {
    require(actor, MARKETING, "pausing and resuming destinations")?;
    let mut destination = named(store, name).await?;
    store
        .set_destination_disabled(destination.id, disabled)
        .await?;
    let before = audit_view(&destination);
    destination.disabled = disabled;
    destination.url = masked_url(&destination.url);
    let action = if disabled {
        "destination.disable"
    } else {
        "destination.enable"
    };
    let after = audit_view(&destination);
    record(store, actor, action, name, before, after).await?;
    Ok(destination)
}

/// Removes a destination, its delivery log and its checkpoints. Audiences synced to it
/// keep its name and send to it again if one is added under that name.
pub async fn delete(store: &dyn Store, actor: &Actor, name: &str) -> Result<()> {
    require(actor, MARKETING, "deleting destinations")?;
    let destination = named(store, name).await?;
    store.delete_destination(destination.id).await?;
    let before = audit_view(&destination);
    record(store, actor, "destination.delete", name, before, None).await
}

/// Where a destination's delivery checkpoint was and is after [`skip_to`].
#[derive(Debug, serde::Serialize)]
pub struct Skipped {
    pub destination: String,
    pub from_seq: i64,
    pub to_seq: i64,
}

/// Moves a paused destination's delivery checkpoint to `seq`: the events up to it are
/// never sent (the way past an event a destination can never take; `deliveries replay
/// --from-seq` sends a range again). Only a paused destination, so that no delivery in
/// flight moves the checkpoint back.
pub async fn skip_to(store: &dyn Store, actor: &Actor, name: &str, seq: i64) -> Result<Skipped> {
    require(actor, MARKETING, "moving a destination's checkpoint")?;
    let destination = named(store, name).await?;
    if !destination.disabled {
        return Err(Error::Conflict(format!(
            "destination {name:?} is delivering: disable it first (`sightline destination disable {name}`), then skip, then enable it"
        )));
    }
    let last = store.last_seq().await?;
    if !(0..=last).contains(&seq) {
        return Err(Error::invalid(format!(
            "the log runs from seq 0 to {last}: skip to a seq in that range"
        )));
    }
    let checkpoint = sightline_activate::deliver::processor(&destination);
    let from_seq = store.checkpoint(&checkpoint).await?;
    store.set_checkpoint(&checkpoint, seq).await?;
    record(
        store,
        actor,
        "destination.skip",
        name,
        Some(json!({"seq": from_seq})),
        Some(json!({"seq": seq})),
    )
    .await?;
    Ok(Skipped {
        destination: destination.name,
        from_seq,
        to_seq: seq,
    })
}

/// What to send again.
pub enum Replay {
    /// Every dead letter of the destination.
    Dead,
    /// The log from `from` through `to` (seqs).
    Range { from: i64, to: i64 },
}

/// Sends events again through `deliverer` (bounded attempts each), records the new
/// outcomes in place of the old, and answers the tally.
pub async fn replay(
    store: &dyn Store,
    actor: &Actor,
    deliverer: &Deliverer,
    name: &str,
    which: Replay,
) -> Result<Tally> {
    require(actor, MARKETING, "replaying deliveries")?;
    let destination = named(store, name).await?;
    if !destination.approved {
        return Err(Error::Conflict(format!(
            "destination {name:?} awaits a security approval: nothing is sent to it before"
        )));
    }
    let (tally, what) = match which {
        Replay::Dead => (
            deliverer.replay_dead(&destination).await?,
            json!({"dead": true}),
        ),
        Replay::Range { from, to } => (
            deliverer.replay_range(&destination, from, to).await?,
            json!({"from_seq": from, "to_seq": to}),
        ),
    };
    record(store, actor, "destination.replay", name, None, Some(what)).await?;
    Ok(tally)
}

/// Delivery to one destination as a processor: its next page of the log from its
/// checkpoint, each time. The destination is read again at every step, so one disabled or
/// deleted stops being sent to at the next step (and one re-created under the name is
/// sent to from its own checkpoint).
struct DeliveryTo {
    store: Arc<dyn Store>,
    deliverer: Arc<Deliverer>,
    name: String,
}

impl DeliveryTo {
    /// Returns once the destination is disabled, deleted, replaced, given a new
    /// credential (a page held by a refused one starts again with the new one) or a newly
    /// approved configuration (the rest of the page goes where the approval says).
    async fn paused(&self, current: &Destination) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match self.store.destination_by_name(&self.name).await {
                Ok(Some(d)) if d == *current => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(destination = %self.name, error = %e, "cannot read the destination")
                }
            }
        }
    }
}

impl Processor for DeliveryTo {
    // It reads the profiles processor's book (consent, memberships): it runs where that does.
    fn placement(&self) -> crate::processors::Placement {
        crate::processors::Placement::With("profiles")
    }

    fn name(&self) -> String {
        format!("delivery:{}", self.name)
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(async move {
            let Some(destination) = self.store.destination_by_name(&self.name).await? else {
                // Deleted: the discovery starts one again if the name comes back.
                return Ok(Step::Finished);
            };
            // Paused, or proposed and not yet approved by security: nothing is read or
            // sent, and its checkpoint holds.
            if destination.disabled || !destination.approved {
                return Ok(Step::Idle);
            }
            // A page retries a failing event in place; disabling (or deleting) the
            // destination ends it, the uncommitted outcomes to be sent again later.
            tokio::select! {
                more = self.deliverer.deliver_next(&destination) => Ok(match more? {
                    true => Step::More,
                    false => Step::Idle,
                }),
                () = self.paused(&destination) => Ok(Step::Idle),
            }
        })
    }

    fn idle(&self) -> Duration {
        self.deliverer.settings().idle_poll
    }

    fn applied_through(&self) -> PositionFuture<'_> {
        Box::pin(async move {
            Ok(match self.store.destination_by_name(&self.name).await? {
                // One awaiting approval follows nothing yet: no lag to report.
                Some(destination) if destination.approved => Some(
                    self.store
                        .checkpoint(&sightline_activate::deliver::processor(&destination))
                        .await?,
                ),
                _ => None,
            })
        })
    }
}

/// Starts a delivery processor for every destination, present and added while the server
/// runs.
pub struct Deliveries {
    store: Arc<dyn Store>,
    deliverer: Arc<Deliverer>,
    supervisor: Weak<Supervisor>,
}

impl Deliveries {
    pub fn new(
        store: Arc<dyn Store>,
        deliverer: Arc<Deliverer>,
        supervisor: &Arc<Supervisor>,
    ) -> Deliveries {
        Deliveries {
            store,
            deliverer,
            supervisor: Arc::downgrade(supervisor),
        }
    }
}

impl Processor for Deliveries {
    // It reads the profiles processor's book (consent, memberships): it runs where that does.
    fn placement(&self) -> crate::processors::Placement {
        crate::processors::Placement::With("profiles")
    }

    fn name(&self) -> String {
        "destinations".into()
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(async move {
            let Some(supervisor) = self.supervisor.upgrade() else {
                return Ok(Step::Idle);
            };
            for destination in self.store.list_destinations().await? {
                // Started once per name; a running one is left as it is.
                supervisor.start(Arc::new(DeliveryTo {
                    store: self.store.clone(),
                    deliverer: self.deliverer.clone(),
                    name: destination.name,
                }));
            }
            Ok(Step::Idle)
        })
    }

    fn idle(&self) -> Duration {
        self.deliverer.settings().discover_every
    }
}

#[cfg(test)]
mod tests {
    use super::masked_url;

    #[test]
    fn credentials_in_urls_are_masked() {
        assert_eq!(
            masked_url("https://bob:hunter2@hooks.example/x?y=1"),
            "https://***:***@hooks.example/x?y=1"
        );
        assert_eq!(
            masked_url("https://token@hooks.example/"),
            "https://***@hooks.example/"
        );
        assert_eq!(
            masked_url("http://hooks.example/a"),
            "http://hooks.example/a"
        );
        assert_eq!(masked_url("not a url"), "not a url");
    }
}
