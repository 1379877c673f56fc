//! Several nodes sharing one store (the log on JetStream, state in PostgreSQL): each node
//! says it is alive and holds leases in the store, so that every processor has one owner
//! among the nodes at a time. A node renews what it holds every [`RENEW_EVERY`]; a lease
//! lasts [`LEASE_TTL`] from its last renewal, so a node that dies loses its processors to
//! another within `LEASE_TTL + RENEW_EVERY` (10 s). A node that stops cleanly gives them up
//! at once. The [`Supervisor`] runs a leased processor only while this node holds it.
//!
//! Invariant: a lease is renewed only by its holder, and taken by another node only once
//! expired by the store's clock. A node cut off from the store for longer than the lease
//! stops its processors at its next failed renewal, but a step already under way finishes:
//! processors apply idempotently (profiles by message id, deliveries under their
//! Idempotency-Key), so such an overlap repeats work, never changes its result.

use crate::access::{require, Actor, METRICS_READERS};
use crate::processors::{Placement, Supervisor};
use crate::Result;
use serde::Serialize;
use sightline_store::{ClusterRows, NodeRow, Store};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const LEASE_TTL: Duration = Duration::from_secs(8);
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// A node not seen for this long is dropped from the list.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// This node's place among the nodes sharing the store.
pub struct Membership {
    store: Arc<dyn Store>,
    node: std::sync::Mutex<NodeRow>,
    held: watch::Sender<BTreeSet<String>>,
    id: String,
}

impl Membership {
    /// This node as `id`; its address is set once it listens.
    pub fn new(store: Arc<dyn Store>, id: String) -> Arc<Membership> {
        Arc::new(Membership {
            store,
            id: id.clone(),
            node: std::sync::Mutex::new(NodeRow {
                id,
                address: String::new(),
                version: env!("CARGO_PKG_VERSION").into(),
                started_at: sightline_core::time::now_ms(),
                seen_at: 0,
            }),
            held: watch::channel(BTreeSet::new()).0,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where this node serves its API, as the other nodes and operators see it listed.
    pub fn set_address(&self, address: String) {
        self.node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .address = address;
    }

    /// The leases held, as they change (for [`Supervisor::clustered`]).
    pub fn leases(&self) -> watch::Receiver<BTreeSet<String>> {
        self.held.subscribe()
    }

    /// Keeps this node's heartbeat and its processors' leases until `stop` resolves; then
    /// gives them up and leaves.
    pub async fn run(
        &self,
        supervisor: Arc<Supervisor>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => break,
            }
            let held = match tokio::time::timeout(RENEW_EVERY, self.renew(&supervisor)).await {
                Ok(Ok(held)) => held,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cluster: cannot renew this node's leases; its processors pause");
                    BTreeSet::new()
                }
                Err(_) => {
                    tracing::warn!(
                        "cluster: renewing the leases timed out; this node's processors pause"
                    );
                    BTreeSet::new()
                }
            };
            metrics::gauge!("sightline_cluster_leases_held").set(held.len() as f64);
            self.held.send_if_modified(|current| {
                let changed = *current != held;
                if changed {
                    tracing::info!(leases = ?held, "cluster: this node's processors");
                    *current = held;
                }
                changed
            });
        }
        self.held.send_replace(BTreeSet::new());
        if let Err(e) = self.leave().await {
            tracing::warn!(error = %e, "cluster: cannot give up this node's leases; others take them when they expire");
        }
    }

    /// Says this node is alive, and takes or renews the leases of its processors: those
    /// leased on their own first, then those placed with one this node now holds.
    async fn renew(&self, supervisor: &Supervisor) -> Result<BTreeSet<String>> {
        let node = self
            .node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        self.store.heartbeat(&node).await?;
        let ttl = LEASE_TTL.as_millis() as i64;
        let placements = supervisor.placements().await;
        let mut held = BTreeSet::new();
        for (name, placement, applied) in &placements {
            if *placement == Placement::Leased
                && self.store.hold_lease(name, &self.id, ttl, *applied).await?
            {
                held.insert(name.clone());
            }
        }
        let mut give_up = Vec::new();
        for (name, placement, applied) in &placements {
            if let Placement::With(leader) = placement {
                if !held.contains(*leader) {
                    give_up.push(name.clone());
                } else if self.store.hold_lease(name, &self.id, ttl, *applied).await? {
                    held.insert(name.clone());
                }
            }
        }
        if !give_up.is_empty() {
            self.store.release_leases(&self.id, Some(&give_up)).await?;
        }
        Ok(held)
    }

    async fn leave(&self) -> Result<()> {
        self.store.release_leases(&self.id, None).await?;
        self.store
            .leave(&self.id, FORGET_AFTER.as_millis() as i64)
            .await?;
        Ok(())
    }
}

/// The host's name and a random suffix: unique among the nodes, new at every start.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// `GET /api/v1/cluster`, `sightline cluster status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The node answering; `None` from the command line.
    pub node: Option<String>,
    /// The log's last seq.
    pub log_end: i64,
    pub nodes: Vec<NodeStatus>,
    pub processors: Vec<ProcessorStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: i64,
    /// Milliseconds since it last said it was alive.
    pub seen_ms_ago: i64,
    /// Seen within a lease's time.
    pub alive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessorStatus {
    pub processor: String,
    /// The node holding its lease; `None` when its lease expired and no node took it yet.
    pub node: Option<String>,
    /// Milliseconds until its lease expires, unless renewed.
    pub lease_ms_left: i64,
    /// The seq through which it had applied the log at its last renewal.
    pub applied: Option<i64>,
    /// Events of the log it had not applied then.
    pub lag_events: Option<i64>,
}

/// The cluster as the store holds it.
pub fn status(rows: ClusterRows, log_end: i64, node: Option<String>) -> Status {
    let ttl = LEASE_TTL.as_millis() as i64;
    Status {
        node,
        log_end,
        nodes: rows
            .nodes
            .into_iter()
            .map(|n| NodeStatus {
                seen_ms_ago: (rows.now - n.seen_at).max(0),
                alive: rows.now - n.seen_at <= ttl,
                id: n.id,
                address: n.address,
                version: n.version,
                started_at: n.started_at,
            })
            .collect(),
        processors: rows
            .leases
            .into_iter()
            .map(|l| {
                let live = l.expires_at >= rows.now;
                ProcessorStatus {
                    processor: l.processor,
                    node: live.then_some(l.node),
                    lease_ms_left: (l.expires_at - rows.now).max(0),
                    applied: l.applied,
                    lag_events: l.applied.map(|a| (log_end - a).max(0)),
                }
            })
            .collect(),
    }
}

/// The cluster seen from this node: from the store's leases when it shares the store
/// (`membership`), else this node running every processor.
pub async fn read(
    store: &dyn Store,
    actor: &Actor,
    membership: Option<&Membership>,
    supervisor: &Supervisor,
    address: &str,
) -> Result<Status> {
    require(actor, METRICS_READERS, "reading the cluster's state")?;
    let log_end = store.last_seq().await?;
    if let Some(membership) = membership {
        let rows = store.cluster().await?;
        return Ok(status(rows, log_end, Some(membership.id().to_owned())));
    }
    let now = sightline_core::time::now_ms();
    let id = "local".to_owned();
    let processors = supervisor
        .placements()
        .await
        .into_iter()
        .map(|(processor, _, applied)| ProcessorStatus {
            processor,
            node: Some(id.clone()),
            lease_ms_left: 0,
            applied,
            lag_events: applied.map(|a| (log_end - a).max(0)),
        })
        .collect();
    Ok(Status {
        node: Some(id.clone()),
        log_end,
        nodes: vec![NodeStatus {
            id,
            address: address.to_owned(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: now,
            seen_ms_ago: 0,
            alive: true,
        }],
        processors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_store::{LeaseRow, NodeRow};

    #[test]
    fn an_expired_lease_has_no_owner_and_a_silent_node_is_not_alive() {
        let rows = ClusterRows {
            now: 100_000,
            nodes: vec![
                NodeRow {
                    id: "a".into(),
                    address: "h:1".into(),
                    version: "0".into(),
                    started_at: 0,
                    seen_at: 99_000,
                },
                NodeRow {
                    id: "b".into(),
                    address: "h:2".into(),
                    version: "0".into(),
                    started_at: 0,
                    seen_at: 50_000,
                },
            ],
            leases: vec![
                LeaseRow {
                    processor: "profiles".into(),
                    node: "a".into(),
                    expires_at: 105_000,
                    applied: Some(90),
                },
                LeaseRow {
                    processor: "metrics".into(),
                    node: "b".into(),
                    expires_at: 60_000,
                    applied: None,
                },
            ],
        };
        let status = status(rows, 100, None);
        assert!(status.nodes[0].alive);
        assert!(!status.nodes[1].alive);
        assert_eq!(status.processors[0].node.as_deref(), Some("a"));
        assert_eq!(status.processors[0].lag_events, Some(10));
        assert_eq!(status.processors[1].node, None);
        assert_eq!(status.processors[1].lease_ms_left, 0);
    }
}
