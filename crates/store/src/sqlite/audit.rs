//! The audit log on SQLite (see `crate::audit`).

use super::SqliteStore;
use crate::audit::{seal, AuditEntry, AuditLog, Durability, NewAuditEntry};
use crate::Result;
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

/// The migration that creates the table (its place in `MIGRATIONS` is in `sqlite.rs`).
pub(super) const MIGRATION: &str = include_str!("audit.sql");

const COLUMNS: &str = "id, actor, role, at, action, target, before, after, prev_hash, hash";

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.get(0)?,
        actor: row.get(1)?,
        role: row.get(2)?,
        at: row.get(3)?,
        action: row.get(4)?,
        target: row.get(5)?,
        before: row.get(6)?,
        after: row.get(7)?,
        prev_hash: row.get(8)?,
        hash: row.get(9)?,
    })
}

impl SqliteStore {
    /// Seals and stores `entries` in order after the chain's end, in one transaction:
    /// synced to disk before it answers, or with [`Durability::Committed`] only written to
    /// the WAL (the connection's `synchronous = FULL` relaxed to `NORMAL` for this commit;
    /// the next synced commit on the file flushes it too).
    async fn append_audits(
        &self,
        entries: Vec<NewAuditEntry>,
        durability: Durability,
    ) -> Result<Vec<AuditEntry>> {
        self.audit_log
            .run(move |conn| {
                // Prepared once per connection, as every statement of an append is: a read
                // is audited, so this runs once per profile lookup.
                let synchronous = |conn: &rusqlite::Connection, level: &str| -> Result<()> {
                    conn.prepare_cached(&format!("PRAGMA synchronous = {level}"))?
                        .execute([])?;
                    Ok(())
                };
                let relaxed = durability == Durability::Committed;
                if relaxed {
                    synchronous(conn, "NORMAL")?;
                }
                let appended = append_in(conn, entries);
                if relaxed {
                    synchronous(conn, "FULL")?;
                }
                appended
            })
            .await
    }
}

/// [`SqliteStore::append_audits`]'s transaction.
fn append_in(
    conn: &mut rusqlite::Connection,
    entries: Vec<NewAuditEntry>,
) -> Result<Vec<AuditEntry>> {
    // Immediate: the write lock is taken before the last hash is read.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut last: Option<(i64, String)> = tx
        .prepare_cached("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let mut sealed_all = Vec::with_capacity(entries.len());
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO audit_log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?;
        for entry in entries {
            let sealed = seal(last.as_ref().map(|(id, h)| (*id, h.as_str())), entry);
            insert.execute(params![
                sealed.id,
                sealed.actor,
                sealed.role,
                sealed.at,
                sealed.action,
                sealed.target,
                sealed.before,
                sealed.after,
                sealed.prev_hash,
                sealed.hash
            ])?;
            last = Some((sealed.id, sealed.hash.clone()));
            sealed_all.push(sealed);
        }
    }
    tx.commit()?;
    Ok(sealed_all)
}

#[async_trait]
impl AuditLog for SqliteStore {
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
        self.audit_log
            .run(move |conn| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {COLUMNS} FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![after, limit as i64], entry_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }
}
