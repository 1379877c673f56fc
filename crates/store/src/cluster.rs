//! Nodes sharing one store, and the leases that give each processor one owner among them
//! (see `sightline_service::cluster`). Times are the store's clock (PostgreSQL's, when
//! several nodes share it), so that nodes with skewed clocks agree on who holds what.

use crate::Result;
use async_trait::async_trait;

/// A node as it last said it was alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    /// Where it serves its API (`host:port`).
    pub address: String,
    pub version: String,
    pub started_at: i64,
    /// The store's clock when it last said it was alive (set by the store).
    pub seen_at: i64,
}

/// Who holds a processor's lease, until when, and how far the processor had applied the
/// log at the last renewal (for one that follows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub processor: String,
    pub node: String,
    pub expires_at: i64,
    pub applied: Option<i64>,
}

/// The nodes and leases, with the store's clock to read `expires_at` and `seen_at` against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRows {
    pub now: i64,
    pub nodes: Vec<NodeRow>,
    pub leases: Vec<LeaseRow>,
}

#[async_trait]
pub trait Cluster: Send + Sync {
    /// Records that `node` is alive now (its `seen_at` is ignored: the store sets it).
    async fn heartbeat(&self, node: &NodeRow) -> Result<()>;
    /// Takes the lease on `processor` for `node`, or renews it, until `ttl_ms` from now:
    /// true when `node` holds it. A lease another node holds is taken only once expired.
    async fn hold_lease(
        &self,
        processor: &str,
        node: &str,
        ttl_ms: i64,
        applied: Option<i64>,
    ) -> Result<bool>;
    /// Gives up `node`'s leases on `processors` (all of them when `None`), so that another
    /// node takes them without waiting for them to expire.
    async fn release_leases(&self, node: &str, processors: Option<&[String]>) -> Result<()>;
    /// Forgets `node` (a clean stop) and nodes not seen for `forget_after_ms`.
    async fn leave(&self, node: &str, forget_after_ms: i64) -> Result<()>;
    async fn cluster(&self) -> Result<ClusterRows>;
}
