//! Erasure on SQLite (see `crate::erase`). Every connection zeroes what it frees
//! (`secure_delete`, set in `connect`), so neither the deleted rows nor earlier versions of
//! rewritten ones (a profile document saved again) leave bytes in free space; the log is not
//! rewritten. After the deletes both write-ahead logs are checkpointed and truncated: no
//! frame keeps the pages as they were.

use super::SqliteStore;
use crate::erase::{
    new_secret, DeletionRequest, Erased, ErasedCounts, Erasure, ErasureTarget, FORGET_SUPPRESSION,
    LINK_REVIEWS,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

/// The migration that creates erasure's tables (its place in `MIGRATIONS` is in `sqlite.rs`).
pub(super) const MIGRATION: &str = "CREATE TABLE privacy_secret (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        secret TEXT NOT NULL
     );
     CREATE TABLE erasures (
        id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        receipt TEXT NOT NULL
     );
     CREATE TABLE suppressed_identifiers (
        hash TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        created_at INTEGER NOT NULL
     ) WITHOUT ROWID;";

/// Statements deleting by profile id, with the table counted.
const BY_PROFILE: [(&str, &str); 8] = [
    ("profiles", "DELETE FROM profiles WHERE id = ?1"),
    (
        "profile_identifiers",
        "DELETE FROM profile_identifiers WHERE profile_id = ?1",
    ),
    (
        "profile_events",
        "DELETE FROM profile_events WHERE profile_id = ?1",
    ),
    (
        "profile_states",
        "DELETE FROM profile_states WHERE profile_id = ?1",
    ),
    (
        "profile_merges",
        "DELETE FROM profile_merges WHERE retired = ?1 OR survivor = ?1",
    ),
    (
        "consent_changes",
        "DELETE FROM consent_changes WHERE profile_id = ?1",
    ),
    (
        "audience_members",
        "DELETE FROM audience_members WHERE profile_id = ?1",
    ),
    (
        "profile_timers",
        "DELETE FROM profile_timers WHERE profile_id = ?1",
    ),
];

/// Exactly the terms of the partial expression index `audience_changes_by_profile`
/// (migration 28), or SQLite reads the table's whole history.
const DELETE_AUDIENCE_CHANGES: &str = "DELETE FROM audience_changes WHERE json_valid(change)
    AND json_extract(change, '$.profile') = ?1";

fn add(counts: &mut ErasedCounts, table: &str, n: usize) {
    *counts.entry(table.to_owned()).or_default() += n as u64;
}

/// How many erasures have removed stored profiles (see `Erasure::profile_erasures`).
pub(super) fn profile_erasures(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count FROM profile_erasures WHERE id = 1",
        [],
        |row| row.get(0),
    )
}

/// Deletes the derived rows in one transaction of `sightline.db`, first adding the seqs on
/// the profiles' stored timelines to the target's; returns the count of profile erasures
/// after it.
fn erase_state(
    conn: &mut Connection,
    target: &mut ErasureTarget,
    counts: &mut ErasedCounts,
) -> Result<i64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached("SELECT seq FROM profile_events WHERE profile_id = ?1")?;
        let mut seqs = Vec::new();
        for id in &target.profiles {
            for seq in stmt.query_map([id], |row| row.get(0))? {
                seqs.push(seq?);
            }
        }
        target.add_seqs(seqs);
    }
    let erasures = match target.profiles.is_empty() {
        true => profile_erasures(&tx)?,
        false => tx.query_row(
            "UPDATE profile_erasures SET count = count + 1 WHERE id = 1 RETURNING count",
            [],
            |row| row.get(0),
        )?,
    };
    for &(table, sql) in &BY_PROFILE {
        add(counts, table, 0);
        let mut stmt = tx.prepare_cached(sql)?;
        for id in &target.profiles {
            add(counts, table, stmt.execute([id])?);
        }
    }
    {
        let mut stmt =
            tx.prepare_cached("DELETE FROM profile_identifiers WHERE id_type = ?1 AND value = ?2")?;
        for (id_type, value) in &target.identifiers {
            add(
                counts,
                "profile_identifiers",
                stmt.execute(params![id_type, value])?,
            );
        }
        // By key, never by seq alone: no index has seq first, so that would read the whole
        // table once per event.
        for table in ["profile_events", "consent_changes"] {
            let mut stmt = tx.prepare_cached(&format!(
                "DELETE FROM {table} WHERE profile_id = ?1 AND seq = ?2"
            ))?;
            for (profile, seq) in &target.kept_profile_events {
                add(counts, table, stmt.execute([profile, seq])?);
            }
        }
        add(counts, "audience_changes", 0);
        let mut stmt = tx.prepare_cached(DELETE_AUDIENCE_CHANGES)?;
        for name in target.profile_names() {
            add(counts, "audience_changes", stmt.execute([name])?);
        }
        // Keyed by destination and seq; a deleted destination's rows went with it.
        add(counts, "deliveries", 0);
        let destinations: Vec<i64> = tx
            .prepare_cached("SELECT id FROM destinations")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt =
            tx.prepare_cached("DELETE FROM deliveries WHERE destination_id = ?1 AND seq = ?2")?;
        for destination in &destinations {
            for seq in &target.seqs {
                add(counts, "deliveries", stmt.execute([destination, seq])?);
            }
        }
        add(counts, LINK_REVIEWS, 0);
        let mut stmt =
            tx.prepare_cached("DELETE FROM link_reviews WHERE left_id = ?1 OR right_id = ?1")?;
        for name in target.identifier_names() {
            add(counts, LINK_REVIEWS, stmt.execute([name])?);
        }
    }
    tx.commit()?;
    Ok(erasures)
}

/// Copies the write-ahead log into the database and truncates it, waiting (through the
/// busy handler) for readers of older snapshots; a checkpoint that still could not finish
/// is an error, so that the erasure is not reported done while a frame holds old pages.
fn truncate_wal(conn: &Connection, file: &str) -> Result<()> {
    for _ in 0..50 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(StoreError::Commit(format!(
        "the write-ahead log of {file} could not be checkpointed: readers kept it busy; erase again to finish"
    )))
}

#[async_trait]
impl Erasure for SqliteStore {
    async fn erase(&self, target: ErasureTarget) -> Result<Erased> {
        let (target, mut counts, profile_erasures) = self
            .with_conn(move |conn| {
                let (mut target, mut counts) = (target, ErasedCounts::new());
                let erasures = erase_state(conn, &mut target, &mut counts)?;
                truncate_wal(conn, "sightline.db")?;
                Ok((target, counts, erasures))
            })
            .await?;
        // The log: its writer thread holds the dedup index for every group it commits, so
        // holding it keeps this delete between the writer's transactions (as `prune_dedup`
        // does), and the index drops the deleted rows' entries.
        let recent = self.recent.clone();
        let seqs = target.seqs;
        let deleted = self
            .log
            .run(move |conn| {
                let mut recent = super::dedup::lock(&recent);
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut erased = Vec::with_capacity(seqs.len());
                {
                    let mut stmt = tx.prepare_cached(
                        "DELETE FROM events WHERE seq = ?1 RETURNING dedup_digest",
                    )?;
                    for &seq in &seqs {
                        let digest: Option<Option<i64>> =
                            stmt.query_row([seq], |row| row.get(0)).optional()?;
                        if let Some(digest) = digest {
                            erased.push((digest, seq));
                        }
                    }
                }
                tx.commit()?;
                for &(digest, seq) in &erased {
                    if let Some(digest) = digest {
                        recent.erased(digest, seq);
                    }
                }
                drop(recent);
                truncate_wal(conn, "log.db")?;
                Ok(erased.len())
            })
            .await?;
        add(&mut counts, "events", deleted);
        // The dedup digests live in the log's rows (sqlite/dedup.rs): gone with them.
        add(&mut counts, "dedup", 0);
        Ok(Erased {
            counts,
            profile_erasures,
        })
    }

    async fn profile_erasures(&self) -> Result<i64> {
        self.with_conn(|conn| Ok(profile_erasures(conn)?)).await
    }

    async fn privacy_secret(&self) -> Result<String> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO privacy_secret (id, secret) VALUES (1, ?1)",
                [new_secret()],
            )?;
            Ok(
                conn.query_row("SELECT secret FROM privacy_secret WHERE id = 1", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }

    async fn save_erasure(&self, id: &str, at: i64, receipt: &str) -> Result<()> {
        let (id, receipt) = (id.to_owned(), receipt.to_owned());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO erasures (id, created_at, receipt) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET receipt = excluded.receipt",
                params![id, at, receipt],
            )?;
            Ok(())
        })
        .await
    }

    async fn erasure(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_owned();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row("SELECT receipt FROM erasures WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?)
        })
        .await
    }

    async fn erasures(&self, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT receipt FROM erasures ORDER BY created_at DESC, id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    async fn suppress(&self, entries: Vec<(String, String)>) -> Result<()> {
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            {
                let now = sightline_core::time::now_ms();
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO suppressed_identifiers (hash, mode, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (hash) DO UPDATE SET mode = excluded.mode",
                )?;
                for (hash, mode) in &entries {
                    stmt.execute(params![hash, mode, now])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn suppressed(&self) -> Result<Vec<(String, String)>> {
        self.with_conn(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT hash, mode FROM suppressed_identifiers ORDER BY hash")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn suppression_in_force(&self, node: &str, entries: i64) -> Result<()> {
        let node = node.to_owned();
        self.with_conn(move |conn| {
            let now = sightline_core::time::now_ms();
            conn.execute(
                "INSERT INTO suppression_in_force (node, entries, seen_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (node) DO UPDATE SET entries = excluded.entries, seen_at = excluded.seen_at",
                params![node, entries, now],
            )?;
            conn.execute(
                "DELETE FROM suppression_in_force WHERE seen_at < ?1",
                [now - FORGET_SUPPRESSION],
            )?;
            Ok(())
        })
        .await
    }

    async fn forget_suppression_node(&self, node: &str) -> Result<()> {
        let node = node.to_owned();
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM suppression_in_force WHERE node = ?1", [node])?;
            Ok(())
        })
        .await
    }

    async fn suppression_nodes(&self) -> Result<(i64, Vec<(String, i64, i64)>)> {
        self.with_conn(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT node, entries, seen_at FROM suppression_in_force")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let nodes = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((sightline_core::time::now_ms(), nodes))
        })
        .await
    }

    async fn save_deletion_request(&self, request: &DeletionRequest) -> Result<()> {
        let r = request.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO deletion_requests
                    (erasure_id, destination, body, attempts, next_at, status, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (erasure_id, destination) DO UPDATE SET body = excluded.body, attempts = excluded.attempts,
                    next_at = excluded.next_at, status = excluded.status, outcome = excluded.outcome",
                params![r.erasure_id, r.destination, r.body, r.attempts, r.next_at, r.status, r.outcome],
            )?;
            Ok(())
        })
        .await
    }

    async fn due_deletion_requests(&self, now: i64, limit: usize) -> Result<Vec<DeletionRequest>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELETION_COLUMNS} FROM deletion_requests
                 WHERE status = 'queued' AND next_at <= ?1 ORDER BY next_at LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now, limit as i64], deletion_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn deletion_requests(&self, erasure_id: &str) -> Result<Vec<DeletionRequest>> {
        let erasure_id = erasure_id.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELETION_COLUMNS} FROM deletion_requests
                 WHERE erasure_id = ?1 ORDER BY destination"
            ))?;
            let rows = stmt.query_map(params![erasure_id], deletion_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

const DELETION_COLUMNS: &str = "erasure_id, destination, body, attempts, next_at, status, outcome";

fn deletion_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeletionRequest> {
    Ok(DeletionRequest {
        erasure_id: row.get(0)?,
        destination: row.get(1)?,
        body: row.get(2)?,
        attempts: row.get(3)?,
        next_at: row.get(4)?,
        status: row.get(5)?,
        outcome: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_persons_audience_changes_are_found_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        crate::sqlite::SqliteStore::open(dir.path()).await.unwrap();
        let conn = Connection::open(dir.path().join("sightline.db")).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {DELETE_AUDIENCE_CHANGES}"))
            .unwrap()
            .query_map(["p1"], |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            plan,
            ["SEARCH audience_changes USING INDEX audience_changes_by_profile (<expr>=?)"]
        );
    }
}
