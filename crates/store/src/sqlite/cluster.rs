//! Nodes and leases on SQLite (see `crate::cluster`): one node uses them, but the API and
//! the shared suite read them the same way on both backends.

use super::SqliteStore;
use crate::cluster::{Cluster, ClusterRows, LeaseRow, NodeRow};
use crate::Result;
use async_trait::async_trait;
use rusqlite::params;
use sightline_core::time::now_ms;

#[async_trait]
impl Cluster for SqliteStore {
    async fn heartbeat(&self, node: &NodeRow) -> Result<()> {
        let node = node.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO nodes (id, address, version, started_at, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET address = excluded.address,
                    version = excluded.version, seen_at = excluded.seen_at",
                params![
                    node.id,
                    node.address,
                    node.version,
                    node.started_at,
                    now_ms()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn hold_lease(
        &self,
        processor: &str,
        node: &str,
        ttl_ms: i64,
        applied: Option<i64>,
    ) -> Result<bool> {
        let (processor, node) = (processor.to_owned(), node.to_owned());
        self.with_conn(move |conn| {
            let now = now_ms();
            let held = conn.execute(
                "INSERT INTO leases (processor, node, expires_at, applied) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (processor) DO UPDATE SET node = excluded.node,
                    expires_at = excluded.expires_at, applied = excluded.applied
                 WHERE leases.node = excluded.node OR leases.expires_at < ?5",
                params![processor, node, now + ttl_ms, applied, now],
            )?;
            Ok(held == 1)
        })
        .await
    }

    async fn release_leases(&self, node: &str, processors: Option<&[String]>) -> Result<()> {
        let node = node.to_owned();
        let processors = processors.map(|p| serde_json::to_string(p).unwrap_or_default());
        self.with_conn(move |conn| {
            conn.execute(
                "DELETE FROM leases WHERE node = ?1
                 AND (?2 IS NULL OR processor IN (SELECT value FROM json_each(?2)))",
                params![node, processors],
            )?;
            Ok(())
        })
        .await
    }

    async fn leave(&self, node: &str, forget_after_ms: i64) -> Result<()> {
        let node = node.to_owned();
        self.with_conn(move |conn| {
            conn.execute(
                "DELETE FROM nodes WHERE id = ?1 OR seen_at < ?2",
                params![node, now_ms() - forget_after_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn cluster(&self) -> Result<ClusterRows> {
        self.with_conn(|conn| {
            let nodes = conn
                .prepare("SELECT id, address, version, started_at, seen_at FROM nodes ORDER BY id")?
                .query_map([], |r| {
                    Ok(NodeRow {
                        id: r.get(0)?,
                        address: r.get(1)?,
                        version: r.get(2)?,
                        started_at: r.get(3)?,
                        seen_at: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let leases = conn
                .prepare(
                    "SELECT processor, node, expires_at, applied FROM leases ORDER BY processor",
                )?
                .query_map([], |r| {
                    Ok(LeaseRow {
                        processor: r.get(0)?,
                        node: r.get(1)?,
                        expires_at: r.get(2)?,
                        applied: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(ClusterRows {
                now: now_ms(),
                nodes,
                leases,
            })
        })
        .await
    }
}
