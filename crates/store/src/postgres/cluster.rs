//! Nodes and leases on PostgreSQL (see `crate::cluster`), timed by the database's clock.

use super::PostgresStore;
use crate::cluster::{Cluster, ClusterRows, LeaseRow, NodeRow};
use crate::Result;
use async_trait::async_trait;

/// The database's clock in milliseconds since the Unix epoch.
pub(super) const NOW: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

#[async_trait]
impl Cluster for PostgresStore {
    async fn heartbeat(&self, node: &NodeRow) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO nodes (id, address, version, started_at, seen_at)
                     VALUES ($1, $2, $3, $4, {NOW})
                     ON CONFLICT (id) DO UPDATE SET address = excluded.address,
                        version = excluded.version, seen_at = excluded.seen_at"
                ),
                &[&node.id, &node.address, &node.version, &node.started_at],
            )
            .await?;
        Ok(())
    }

    async fn hold_lease(
        &self,
        processor: &str,
        node: &str,
        ttl_ms: i64,
        applied: Option<i64>,
    ) -> Result<bool> {
        let client = self.client().await?;
        let held = client
            .execute(
                &format!(
                    "INSERT INTO leases (processor, node, expires_at, applied)
                     VALUES ($1, $2, {NOW} + $3, $4)
                     ON CONFLICT (processor) DO UPDATE SET node = excluded.node,
                        expires_at = excluded.expires_at, applied = excluded.applied
                     WHERE leases.node = excluded.node OR leases.expires_at < {NOW}"
                ),
                &[&processor, &node, &ttl_ms, &applied],
            )
            .await?;
        Ok(held == 1)
    }

    async fn release_leases(&self, node: &str, processors: Option<&[String]>) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM leases WHERE node = $1 AND ($2::text[] IS NULL OR processor = ANY($2))",
                &[&node, &processors],
            )
            .await?;
        Ok(())
    }

    async fn leave(&self, node: &str, forget_after_ms: i64) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &format!("DELETE FROM nodes WHERE id = $1 OR seen_at < {NOW} - $2"),
                &[&node, &forget_after_ms],
            )
            .await?;
        Ok(())
    }

    async fn cluster(&self) -> Result<ClusterRows> {
        let client = self.client().await?;
        let now = store_now(&client).await?;
        let nodes = client
            .query(
                "SELECT id, address, version, started_at, seen_at FROM nodes ORDER BY id",
                &[],
            )
            .await?
            .iter()
            .map(|r| NodeRow {
                id: r.get(0),
                address: r.get(1),
                version: r.get(2),
                started_at: r.get(3),
                seen_at: r.get(4),
            })
            .collect();
        let leases = client
            .query(
                "SELECT processor, node, expires_at, applied FROM leases ORDER BY processor",
                &[],
            )
            .await?
            .iter()
            .map(|r| LeaseRow {
                processor: r.get(0),
                node: r.get(1),
                expires_at: r.get(2),
                applied: r.get(3),
            })
            .collect();
        Ok(ClusterRows { now, nodes, leases })
    }
}

/// The store's clock now (ms), which nodes' times are kept and compared by.
pub(super) async fn store_now(client: &tokio_postgres::Client) -> Result<i64> {
    Ok(client
        .query_one(&format!("SELECT {NOW}"), &[])
        .await?
        .get(0))
}
