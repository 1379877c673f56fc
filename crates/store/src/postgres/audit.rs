//! The audit log on PostgreSQL (see `crate::audit`).

use super::PostgresStore;
use crate::audit::{seal, AuditEntry, AuditLog, Durability, NewAuditEntry};
use crate::Result;
use async_trait::async_trait;
use tokio_postgres::Row;

/// The migration that creates the table (its place in `MIGRATIONS` is in `postgres.rs`).
pub(super) const MIGRATION: &str = include_str!("audit.sql");

/// The advisory lock key appends hold for their transaction ("audit" in ASCII).
const APPEND_LOCK: i64 = 0x61_75_64_69_74;

const COLUMNS: &str = "id, actor, role, at, action, target, before, after, prev_hash, hash";

fn entry_from_row(row: &Row) -> AuditEntry {
    AuditEntry {
        id: row.get(0),
        actor: row.get(1),
        role: row.get(2),
        at: row.get(3),
        action: row.get(4),
        target: row.get(5),
        before: row.get(6),
        after: row.get(7),
        prev_hash: row.get(8),
        hash: row.get(9),
    }
}

impl PostgresStore {
    /// Seals and stores `entries` in order after the chain's end, in one transaction; with
    /// [`Durability::Committed`] its commit does not wait for the WAL flush
    /// (`synchronous_commit = off` for this transaction only).
    async fn append_audits(
        &self,
        entries: Vec<NewAuditEntry>,
        durability: Durability,
    ) -> Result<Vec<AuditEntry>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if durability == Durability::Committed {
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
        }
        // Serialises appends (across processes too): the last hash is read and the next
        // entries inserted under it.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
            .await?;
        let mut last = tx
            .query_opt(
                "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await?
            .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)));
        let insert = tx
            .prepare(&format!(
                "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .await?;
        let mut sealed_all = Vec::with_capacity(entries.len());
        for entry in entries {
            let sealed = seal(last.as_ref().map(|(id, h)| (*id, h.as_str())), entry);
            tx.execute(
                &insert,
                &[
                    &sealed.id,
                    &sealed.actor,
                    &sealed.role,
                    &sealed.at,
                    &sealed.action,
                    &sealed.target,
                    &sealed.before,
                    &sealed.after,
                    &sealed.prev_hash,
                    &sealed.hash,
                ],
            )
            .await?;
            last = Some((sealed.id, sealed.hash.clone()));
            sealed_all.push(sealed);
        }
        tx.commit().await?;
        Ok(sealed_all)
    }
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn append_audit(
        &self,
        entry: NewAuditEntry,
        durability: Durability,
    ) -> Result<AuditEntry> {
        self.audit
            .append(entry, durability, |entries, durability| {
                self.append_audits(entries, durability)
            })
            .await
    }

    async fn audit_entries(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        let client = self.client().await?;
        Ok(client
            .query(
                &format!("SELECT {COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"),
                &[&after, &(limit as i64)],
            )
            .await?
            .iter()
            .map(entry_from_row)
            .collect())
    }
}
