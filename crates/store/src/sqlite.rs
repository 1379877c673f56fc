//! SQLite backend: WAL, the event log in a database file of its own (`log.db`) with one
//! writer thread and group commit, the audit log in another (`audit.db`), everything else
//! in `sightline.db`, small pools of connections to each.
//!
//! Why three files: SQLite has one write lock per file. With the log beside the derived
//! state, every processor's write (a page of profiles, a delivery checkpoint) held the log
//! writer back, and their pages crowded its cache and its fsyncs. Apart, ingest never waits
//! for a processor. Likewise the audit log, appended by requests (every profile read is
//! audited before it is answered), waits for no processor's transaction (at nice 19, one
//! holding the lock may be descheduled for long). Nothing commits to two files at once: the
//! log and the audit log are appended alone, and the processors read the log and write
//! their state with its position to `sightline.db`.
//!
//! A commit is acknowledged only once it survives power loss, not only a crash: the WAL is
//! fsynced after it. The fsync is pipelined: the writer commits with `synchronous=NORMAL`
//! (frames written, not synced) and hands the group to a syncer thread, which fsyncs the
//! WAL file once for every group that is waiting and only then answers them. So the next
//! group's inserts overlap the previous group's fsync. If SQLite restarts the WAL after a
//! checkpoint in between, the frames were already copied into the database file and synced
//! by that checkpoint, so the fsync still covers every answered commit.

use crate::group::{self, AppendRequest};
use crate::log;
use crate::{
    columns, profiles_moved, Access, Appended, Checkpoints, ConsoleSession, Definitions,
    Destinations, EventLog, LinkReviews, ProfileStore, Result, StoreError, MAX_MERGE_CHAIN,
    WRITE_QUEUE_REQUESTS,
};
use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};
use sightline_core::{
    AudienceDefinition, Delivery, DeliveryStatus, DeniedCount, Destination, EventType,
    NewDestination, NewEvent, ProfileSave, ProfilesState, Role, Source, StoredEvent, StoredProfile,
    Token, TraitDefinition,
};
use sightline_core::{IdentifierRow, LinkReview, NewLinkReview, ProfileRows, ReviewStatus};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;

mod audit;
mod cluster;
mod dedup;
mod erase;
mod flows;
mod govern;
mod plans;

const MIGRATIONS: &[&str] = &[
    // 1: the event log, dedup, sources, keys, tokens, processor checkpoints.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        source_id INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        type TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        body TEXT NOT NULL
     );
     CREATE INDEX events_by_source ON events (source_id, seq);
     CREATE TABLE dedup (
        source_id INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (source_id, message_id)
     ) WITHOUT ROWID;
     CREATE INDEX dedup_by_age ON dedup (seen_at);
     CREATE TABLE sources (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE source_keys (
        key_hash TEXT PRIMARY KEY,
        source_id INTEGER NOT NULL REFERENCES sources (id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER
     );
     CREATE TABLE tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE checkpoints (
        processor TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
     );",
    // 2: destinations and the delivery log (the latest outcome per destination and event).
    "CREATE TABLE destinations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        purposes TEXT NOT NULL,
        event_types TEXT NOT NULL,
        event_names TEXT NOT NULL,
        batch_size INTEGER NOT NULL,
        signing_secret TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );
     CREATE TABLE deliveries (
        destination_id INTEGER NOT NULL REFERENCES destinations (id),
        seq INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        response_code INTEGER,
        latency_ms INTEGER,
        reason TEXT,
        at INTEGER NOT NULL,
        PRIMARY KEY (destination_id, seq)
     ) WITHOUT ROWID;
     CREATE INDEX deliveries_by_status ON deliveries (destination_id, status, seq);",
    // 3: audience definitions.
    "CREATE TABLE audiences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        rule TEXT NOT NULL,
        sync TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );",
    // 4: unified profiles, derived from the log by the profiles processor.
    "CREATE TABLE profiles (
        id INTEGER PRIMARY KEY,
        doc TEXT NOT NULL
     );
     CREATE TABLE profile_identifiers (
        id_type TEXT NOT NULL,
        value TEXT NOT NULL,
        profile_id INTEGER NOT NULL,
        shared INTEGER NOT NULL,
        seen_with TEXT NOT NULL,
        PRIMARY KEY (id_type, value)
     ) WITHOUT ROWID;
     CREATE INDEX profile_identifiers_by_profile ON profile_identifiers (profile_id);
     CREATE TABLE profile_events (
        profile_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (profile_id, seq)
     ) WITHOUT ROWID;
     CREATE TABLE profiles_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        rules TEXT NOT NULL
     );",
    // 5: what a destination does to events before sending them.
    "ALTER TABLE destinations ADD COLUMN transform TEXT NOT NULL DEFAULT '{}';",
    // 6: identifier-free counts of events without analytics consent.
    "CREATE TABLE consent_denied_counts (
        day TEXT NOT NULL,
        source_id INTEGER NOT NULL,
        event TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (day, source_id, event)
     ) WITHOUT ROWID;",
    // 7: computed trait definitions.
    "CREATE TABLE computed_traits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        definition TEXT NOT NULL,
        created_at INTEGER NOT NULL
     );",
    // 8: the history of live audience enters and exits.
    "CREATE TABLE audience_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        audience TEXT NOT NULL,
        change TEXT NOT NULL
     );
     CREATE INDEX audience_changes_by_audience ON audience_changes (audience, id);",
    // 9: the clerical review queue of record linkage.
    "CREATE TABLE link_reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pair_key TEXT NOT NULL UNIQUE,
        origin TEXT NOT NULL,
        left_id TEXT NOT NULL,
        right_id TEXT NOT NULL,
        match_probability REAL NOT NULL,
        evidence TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        created_at INTEGER NOT NULL,
        decided_at INTEGER,
        seq INTEGER
     );
     CREATE INDEX link_reviews_by_status ON link_reviews (status, id);",
    // 10: the governance registry (see govern.rs): stored scans, token names, journeys, tags, the tag
    // change log (append-only: triggers refuse UPDATE and DELETE), backlog, vendor risk.
    "CREATE TABLE scans (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        journey TEXT NOT NULL,
        at INTEGER NOT NULL,
        summary TEXT NOT NULL,
        report TEXT NOT NULL
     );
     CREATE INDEX scans_by_journey ON scans (journey, id);
     CREATE TABLE token_names (
        token_id INTEGER PRIMARY KEY REFERENCES tokens (id),
        name TEXT NOT NULL
     );
     CREATE TABLE gov_journeys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        updated_at INTEGER NOT NULL
     );
     CREATE TABLE gov_tags (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        updated_at INTEGER NOT NULL
     );
     CREATE TABLE gov_backlog (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        updated_at INTEGER NOT NULL
     );
     CREATE TABLE gov_vendors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        updated_at INTEGER NOT NULL
     );
     CREATE TABLE gov_tag_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tag_id INTEGER NOT NULL REFERENCES gov_tags (id),
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        entry TEXT NOT NULL
     );
     CREATE INDEX gov_tag_changes_by_tag ON gov_tag_changes (tag_id, id);
     CREATE TRIGGER gov_tag_changes_no_update BEFORE UPDATE ON gov_tag_changes
        BEGIN SELECT RAISE(ABORT, 'the tag change log is append-only: UPDATE refused'); END;
     CREATE TRIGGER gov_tag_changes_no_delete BEFORE DELETE ON gov_tag_changes
        BEGIN SELECT RAISE(ABORT, 'the tag change log is append-only: DELETE refused'); END;
     CREATE TRIGGER gov_tags_no_delete BEFORE DELETE ON gov_tags
        BEGIN SELECT RAISE(ABORT, 'tags are retired, never deleted: DELETE refused'); END;",
    // Governance metrics: per scan (`scan:ID`) and the log's consent counts per day
    // (`consent:DAY`) with the log position they are counted through (`consent-cursor`).
    "CREATE TABLE gov_metrics (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        updated_at INTEGER NOT NULL
     );",
    // 12: the compact log (see log.rs). Events: the type as a small integer, `id_at` (where
    // the quoted messageId was cut out of the body) and the body as a tagged BLOB (a zstd
    // frame with the shipped dictionary); rows from before keep their TEXT body, read as
    // is. The table is rebuilt to change column types; its AUTOINCREMENT position is kept.
    // Dedup: one 16-byte digest of (source, messageId) instead of the text (the claims of
    // the old table are converted by `convert_dedup` in the same transaction).
    "CREATE TABLE events_v12 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        source_id INTEGER NOT NULL,
        type INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        id_at INTEGER,
        body BLOB NOT NULL
     );
     INSERT INTO events_v12 (seq, source_id, type, received_at, message_id, id_at, body)
        SELECT seq, source_id,
            CASE type WHEN 'track' THEN 0 WHEN 'identify' THEN 1 WHEN 'page' THEN 2
                WHEN 'screen' THEN 3 WHEN 'group' THEN 4 WHEN 'alias' THEN 5 ELSE 0 END,
            received_at, message_id, NULL, body
        FROM events ORDER BY seq;
     DELETE FROM sqlite_sequence WHERE name = 'events_v12';
     INSERT INTO sqlite_sequence (name, seq)
        SELECT 'events_v12', seq FROM sqlite_sequence WHERE name = 'events';
     DROP TABLE events;
     ALTER TABLE events_v12 RENAME TO events;
     CREATE INDEX events_by_source ON events (source_id, seq);
     DROP INDEX dedup_by_age;
     ALTER TABLE dedup RENAME TO dedup_v1;
     CREATE TABLE dedup (
        key BLOB PRIMARY KEY,
        seen_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX dedup_by_age ON dedup (seen_at);",
    // 13: a destination can be paused.
    "ALTER TABLE destinations ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;",
    // 14: the rest of the profiles processor's state, so that a start resumes from the store
    // instead of replaying the log: audience membership and computed trait states per
    // profile, where retired profile ids went, and the definitions the states follow.
    "CREATE TABLE profile_states (
        profile_id INTEGER PRIMARY KEY,
        state TEXT NOT NULL
     );
     CREATE TABLE profile_merges (
        retired INTEGER PRIMARY KEY,
        survivor INTEGER NOT NULL
     );
     ALTER TABLE profiles_state ADD COLUMN definitions TEXT NOT NULL DEFAULT '';",
    // 15: audience members and membership timers as rows, read without the processor's
    // memory. Clearing the definitions' fingerprint makes the next start rebuild the
    // profiles once, which fills both.
    "CREATE TABLE audience_members (
        audience TEXT NOT NULL,
        profile_id INTEGER NOT NULL,
        PRIMARY KEY (audience, profile_id)
     ) WITHOUT ROWID;
     CREATE TABLE profile_timers (
        profile_id INTEGER NOT NULL,
        audience TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        PRIMARY KEY (profile_id, audience)
     ) WITHOUT ROWID;
     CREATE INDEX profile_timers_by_due ON profile_timers (due_at);
     UPDATE profiles_state SET definitions = '';",
    // 16: consent ledger entries as rows of their own, out of the profile documents (a site
    // may state consent on every call). The next start rebuilds the profiles once to fill it.
    "CREATE TABLE consent_changes (
        profile_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        change TEXT NOT NULL,
        PRIMARY KEY (profile_id, seq)
     ) WITHOUT ROWID;
     UPDATE profiles_state SET definitions = '';",
    // 17: a vendor destination's settings that are not secret (its credential is kept where a
    // webhook keeps its signing secret).
    "ALTER TABLE destinations ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';",
    // 18: tracking plans, their assignment to sources and the violations found (plans.sql).
    plans::MIGRATION,
    // 19: the event log moved to `log.db` (`move_log` copies the rows there and commits
    // them first), and dedup with it (sqlite/dedup.rs): the digests live in the log's rows,
    // not in a table keyed by them, which wrote one random page per event.
    "DROP TABLE events;
     DROP TABLE dedup;",
    // 20: the audit log, a hash chain (audit.sql).
    audit::MIGRATION,
    // 21: destinations' governance: approval state, records, change log (flows.sql).
    flows::MIGRATION,
    // 22: erasure: the privacy secret, receipts and the suppression list (sqlite/erase.rs).
    erase::MIGRATION,
    // 23: nodes and processor leases (cluster.rs).
    include_str!("cluster.sql"),
    // 24: deletion requests kept until a destination answers (erase.rs).
    include_str!("deletion.sql"),
    // 25: scan schedules made through the API (the config file's `[[schedule]]` are not stored).
    "CREATE TABLE gov_schedules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        updated_at INTEGER NOT NULL
     );",
    // 26: console sessions, so that any node (and a restarted one) knows them.
    "CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        csrf TEXT NOT NULL,
        expires_at INTEGER NOT NULL
     );
     CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);",
    // 27: the audit log moved to `audit.db` (`move_audit` copies the entries there and
    // commits them first), so that appending to it (every profile read is audited) never
    // waits for the processors' write transactions on this file.
    "DROP TABLE audit_log;",
    // 28: an erasure finds a person's audience changes by the profile each names (the
    // delete's exact terms, so that the planner uses it) instead of reading the whole history.
    "CREATE INDEX audience_changes_by_profile ON audience_changes
        (json_extract(change, '$.profile')) WHERE json_valid(change);",
    // 29: scans' screenshots, kept for a journey's latest scans (govern.rs).
    "CREATE TABLE scan_screenshots (
        scan_id INTEGER NOT NULL REFERENCES scans (id),
        path TEXT NOT NULL,
        image BLOB NOT NULL,
        PRIMARY KEY (scan_id, path)
     );",
    // 30: how many erasures have removed stored profiles (erase.rs): a profiles save
    // read before the latest is refused; how much of the suppression list each server's
    // collector has in force, which an erasure waits for.
    "CREATE TABLE profile_erasures (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        count INTEGER NOT NULL
     );
     INSERT INTO profile_erasures (id, count) VALUES (1, 0);
     CREATE TABLE suppression_in_force (
        node TEXT PRIMARY KEY,
        entries INTEGER NOT NULL,
        seen_at INTEGER NOT NULL
     );",
];

/// The database files beside `sightline.db`.
const LOG_FILE: &str = "log.db";
const AUDIT_FILE: &str = "audit.db";

/// The schema of `log.db`, its own `user_version` counting these.
const LOG_MIGRATIONS: &[&str] = &[
    // 1: the events (migration 12's layout, see log.rs) and each one's dedup digest, in
    // arrival order for loading the dedup window (sqlite/dedup.rs).
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        source_id INTEGER NOT NULL,
        type INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        id_at INTEGER,
        body BLOB NOT NULL,
        dedup_digest INTEGER NOT NULL
     );
     CREATE INDEX events_by_source ON events (source_id, seq);
     CREATE INDEX events_by_arrival ON events (received_at, dedup_digest);",
];

/// The schema of `audit.db`, its own `user_version` counting these.
const AUDIT_MIGRATIONS: &[&str] = &[
    // 1: the audit log (audit.sql), as migration 20 made it in `sightline.db`.
    audit::MIGRATION,
];

/// The migration whose dedup claims `convert_dedup` rewrites.
const COMPACT_LOG: usize = 12;
/// The migration before which `move_log` copies the events to `log.db`.
const LOG_MOVED: usize = 19;
/// The migration before which `move_audit` copies the audit log to `audit.db`.
const AUDIT_MOVED: usize = 27;

/// Copies the audit log of `sightline.db` into `audit.db` (whose schema is made) and
/// commits it there before migration 27 drops it from `sightline.db`: a crash in between
/// leaves both copies, and the next start copies again over what this one left.
fn move_audit(conn: &mut Connection, dir: &Path) -> Result<()> {
    move_to(conn, &dir.join(AUDIT_FILE), AUDIT_MIGRATIONS, |tx| {
        tx.execute_batch(
            "DELETE FROM moved.audit_log;
             INSERT INTO moved.audit_log SELECT * FROM main.audit_log ORDER BY id;",
        )?;
        Ok(())
    })
}

/// Copies the events of `sightline.db` into `log.db` (whose schema is made), with their
/// dedup digests and the `AUTOINCREMENT` position, and commits them there before migration
/// 19 drops them from `sightline.db`: a crash in between leaves both copies, and the next
/// start copies again over what this one left in `log.db`.
fn move_log(conn: &mut Connection, dir: &Path) -> Result<()> {
    move_to(conn, &dir.join(LOG_FILE), LOG_MIGRATIONS, |tx| {
        tx.execute_batch(
            "DELETE FROM moved.events;
             DELETE FROM moved.sqlite_sequence WHERE name = 'events';
             INSERT INTO moved.sqlite_sequence (name, seq)
                SELECT 'events', seq FROM main.sqlite_sequence WHERE name = 'events';",
        )?;
        let mut rows = tx.prepare(
            "SELECT seq, source_id, type, received_at, message_id, id_at, body
             FROM main.events ORDER BY seq",
        )?;
        let mut copy = tx.prepare(
            "INSERT INTO moved.events
                (seq, source_id, type, received_at, message_id, id_at, body, dedup_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let (source_id, message_id): (i64, String) = (row.get(1)?, row.get(4)?);
            let digest = dedup::digest(&log::dedup_key(source_id, &message_id));
            // As stored: a row from before migration 12 keeps its TEXT body.
            let value = |i| row.get::<_, rusqlite::types::Value>(i);
            copy.execute(params![
                value(0)?,
                source_id,
                value(2)?,
                value(3)?,
                message_id,
                value(5)?,
                value(6)?,
                digest
            ])?;
        }
        Ok(())
    })
}

/// Makes the schema of the database file at `path`, attaches it to `conn` as `moved` and
/// runs `copy` in one transaction, committed before it returns.
fn move_to(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
    copy: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
) -> Result<()> {
    migrate_own(&mut connect(path)?, migrations)?;
    conn.execute("ATTACH DATABASE ?1 AS moved", [path.display().to_string()])?;
    let moved = (|| -> Result<()> {
        // Deferred: the first write takes the attached file's lock only.
        let tx = conn.transaction()?;
        copy(&tx)?;
        tx.commit()?;
        Ok(())
    })();
    conn.execute("DETACH DATABASE moved", [])?;
    moved
}

/// Applies the migrations of a database file with a schema of its own (`log.db`,
/// `audit.db`) past its stored version.
fn migrate_own(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let applied: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in migrations.iter().enumerate().skip(applied as usize) {
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
    }
    tx.commit()?;
    Ok(())
}

/// Migration 12's second half: each claim of the old dedup table under its digest key.
fn convert_dedup(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    {
        let mut old = tx.prepare("SELECT source_id, message_id, seen_at FROM dedup_v1")?;
        let mut claim = tx.prepare(
            "INSERT INTO dedup (key, seen_at) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)",
        )?;
        let mut rows = old.query([])?;
        while let Some(row) = rows.next()? {
            let (source_id, message_id, seen_at): (i64, String, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            claim.execute(params![
                &log::dedup_key(source_id, &message_id)[..],
                seen_at
            ])?;
        }
    }
    tx.execute_batch("DROP TABLE dedup_v1")?;
    Ok(())
}

pub struct SqliteStore {
    /// `sightline.db`: everything but the log.
    state: Pool,
    /// `log.db`, for reading the log.
    log: Pool,
    /// `audit.db`: the audit log, whose appends take no lock the processors hold.
    audit_log: Pool,
    /// Dropped with the store, it ends the audit log's checkpointer thread.
    _stop_audit_checkpoints: std::sync::mpsc::SyncSender<()>,
    writer: mpsc::Sender<AppendRequest>,
    /// The log writer's dedup index (sqlite/dedup.rs); pruned from outside by
    /// `prune_dedup`.
    recent: Arc<Mutex<dedup::RecentIds>>,
    durable: Arc<Durable>,
    audit: crate::audit::Group,
}

/// How far the log is known to survive power loss; reads of the log stop there. The files
/// are fsynced apart: a processor that read a row not yet synced could commit its position
/// past it to `sightline.db`, and after a power loss the events appended again at those seqs
/// would be skipped.
struct Durable {
    through: std::sync::atomic::AtomicI64,
    wal: PathBuf,
}

impl Durable {
    /// After an fsync that covered every row up to `seq`.
    fn advance(&self, seq: i64) {
        self.through
            .fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
    }

    /// The last seq a read of `limit` rows past `after` may return. The syncer advances
    /// it as it answers appends; a reader whose page reaches past it while the log holds
    /// more (rows not synced yet, or appended by another process) syncs the WAL itself:
    /// every row committed before that fsync is then on disk (a checkpoint that restarted
    /// the WAL in between synced the rows it copied).
    fn bound(&self, conn: &Connection, after: i64, limit: usize) -> Result<i64> {
        let known = self.through.load(std::sync::atomic::Ordering::Acquire);
        if known >= after.saturating_add(limit as i64) {
            return Ok(known);
        }
        let last = last_seq(conn)?;
        if last > known {
            sync_wal(&self.wal).map_err(|e| {
                StoreError::Commit(format!(
                    "cannot fsync the write-ahead log {}: {e}",
                    self.wal.display()
                ))
            })?;
            self.advance(last);
        }
        Ok(last)
    }
}

/// The log's last seq (0 when empty), as `conn` sees it: the highest ever stored, kept by
/// `AUTOINCREMENT`, so that an erasure of the last events does not move it back (processors'
/// checkpoints and the stored profiles' position stay at or below it).
fn last_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                        COALESCE((SELECT MAX(seq) FROM events), 0))",
        )?
        .query_row([], |r| r.get(0))?)
}

/// fsyncs a write-ahead log; returns its length. A missing WAL (never written) holds
/// nothing to sync.
fn sync_wal(wal: &Path) -> std::io::Result<u64> {
    match std::fs::File::open(wal) {
        Ok(file) => {
            file.sync_data()?;
            Ok(file.metadata()?.len())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Connections open at once per database file, at most. Each holds its own page cache (up
/// to [`READER_CACHE_KIB`]) and parsed schema, so an unbounded pool grew with every request
/// in flight: 16 concurrent profile lookups held 16 connections and ~450 MiB. A query is
/// CPU work on a machine with few cores (or a page read the OS caches for every connection),
/// so more at once would not answer sooner; callers past the bound wait their turn, in order.
const POOL_CONNECTIONS: usize = 8;

/// Connections to one database file, opened as needed (up to [`POOL_CONNECTIONS`]) and kept
/// for reuse.
struct Pool {
    path: PathBuf,
    /// Each connection's page cache, in KiB.
    cache_kib: i64,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection that may be open: held while one is in use.
    turns: tokio::sync::Semaphore,
}

impl Pool {
    fn new(path: PathBuf, connections: usize, cache_kib: i64) -> Pool {
        Pool {
            path,
            cache_kib,
            idle: Mutex::new(Vec::new()),
            turns: tokio::sync::Semaphore::new(connections),
        }
    }

    /// Runs `f` on one of the connections, off the async runtime.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let _turn = self
            .turns
            .acquire()
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (path, cache_kib) = (self.path.clone(), self.cache_kib);
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let mut conn = match pooled {
                Some(conn) => conn,
                None => match connect(&path).and_then(|conn| cache_size(conn, cache_kib)) {
                    Ok(conn) => conn,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = f(&mut conn);
            (Some(conn), result)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?;
        if let Some(conn) = conn {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
        result
    }
}

/// Page cache per connection, in KiB: the writer's holds the hot pages of the log and of
/// the rows a dedup hit confirms, a reader's the pages of the profiles and deliveries its
/// processor writes. SQLite's default (2 MiB) made most
/// B-tree steps a `pread` and spilled dirty pages mid-transaction.
///
/// The writer's is not larger because a larger one costs it at commits: when a B-tree split
/// reorders its new pages, SQLite parks one at the lock-byte page's number (beyond any
/// log's end), and the commit that follows drops pages past the database's end by scanning
/// the whole cache. At 64 MiB that scan was a seventh of the writer's time under load
/// (`perf`; a uprobe on `pcache1Truncate` showed the parked page), and ingest measured
/// 0.36–0.38 of the no-op server against 0.38–0.40 at this size, same machine and hour.
const WRITER_CACHE_KIB: i64 = 16_384;
const READER_CACHE_KIB: i64 = 16_384;
/// A reader of `log.db` walks pages in seq order (the processors) or reads single rows by
/// seq (timelines, dedup hits), where the OS's page cache serves as well: 8 connections
/// at [`READER_CACHE_KIB`] held up to 128 MiB for little.
const LOG_READER_CACHE_KIB: i64 = 4_096;

fn cache_size(conn: Connection, kib: i64) -> Result<Connection> {
    conn.execute_batch(&format!("PRAGMA cache_size = -{kib}"))?;
    Ok(conn)
}

/// The write-ahead log is copied back into the database (a checkpoint) once it is this
/// large, by the checkpointer thread rather than by whichever connection commits: SQLite's
/// automatic checkpoint ran inside the log writer's commits and took a sixth of its time.
const CHECKPOINT_WAL_BYTES: u64 = 16 << 20;
const NO_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0";

/// While another connection holds the write lock, look again soon: the log writer holds
/// `log.db`'s for most of the time under load, letting go only between groups (the command
/// line appending beside a server waits for those moments), and processors take turns on
/// `sightline.db`'s. SQLite's own busy timeout sleeps up to 100 ms between tries and so
/// missed those moments. About 10 s in all.
fn retry_soon(attempts: i32) -> bool {
    let (quick, slow) = (200, 5_000);
    if attempts < quick {
        std::thread::sleep(std::time::Duration::from_micros(200));
    } else {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    attempts < quick + slow
}

/// Prepared statements each connection keeps: more than any one connection uses.
const STATEMENTS_CACHED: usize = 256;

fn connect(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    // Other processes (the CLI beside a running server) may hold the write lock briefly.
    conn.busy_handler(Some(retry_soon))?;
    // rusqlite keeps 16 by default; a profiles save alone prepares more than that, and a
    // statement evicted is parsed and planned again on its next use.
    conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    // Plans that do not depend on the values bound. Without this, SQLite marks a statement
    // whose plan looked at a bound value (`col = ?` on an integer, `LIMIT ?`) to be parsed
    // and planned again when that value changes, and `sqlite3_clear_bindings`, which
    // rusqlite calls on every statement it puts back in its cache, counts as a change: each
    // use of such a cached statement was a fresh prepare (a third of the delivery's time,
    // looking up stored profiles' consent, by `perf`).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // `secure_delete`: freed space is zeroed, so that an erased person's rows, and earlier
    // versions of rows rewritten since (a profile document saved again), leave no bytes in
    // the files (sqlite/erase.rs). The log writer only inserts: it costs it nothing.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA cache_size = -{READER_CACHE_KIB};"
    ))?;
    Ok(conn)
}

/// Applies the migrations of `sightline.db` past its stored version, up to `through` (all
/// of them in use; fewer only to make stores of earlier versions in tests). Those before
/// [`LOG_MOVED`] and [`AUDIT_MOVED`] commit apart from those after, with the move of the
/// log (the audit log) to its own file in between.
fn migrate(conn: &mut Connection, dir: &Path, through: usize) -> Result<()> {
    let applied = |conn: &Connection| -> Result<usize> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        Ok(version as usize)
    };
    if applied(conn)? > MIGRATIONS.len() {
        return Err(crate::newer_schema(applied(conn)?, MIGRATIONS.len()));
    }
    type Move = fn(&mut Connection, &Path) -> Result<()>;
    for (moved_at, move_out) in [(LOG_MOVED, move_log as Move), (AUDIT_MOVED, move_audit)] {
        migrate_span(conn, through.min(moved_at - 1))?;
        if applied(conn)? == moved_at - 1 && through >= moved_at {
            move_out(conn, dir)?;
        }
    }
    migrate_span(conn, through)
}

/// One transaction of [`migrate`]: the migrations past the stored version up to `through`.
fn migrate_span(conn: &mut Connection, through: usize) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let applied: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(through)
        .skip(applied as usize)
    {
        tx.execute_batch(sql)?;
        if index + 1 == COMPACT_LOG {
            convert_dedup(&tx)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/sightline.db`, `DIR/log.db` and `DIR/audit.db` and
    /// applies migrations.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Open(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("sightline.db");
        let log_path = data_dir.join(LOG_FILE);
        let audit_path = data_dir.join(AUDIT_FILE);
        let (writer, queue) = mpsc::channel(WRITE_QUEUE_REQUESTS);
        let (state_path, writer_path, dir) = (path.clone(), log_path.clone(), data_dir.to_owned());
        let mut conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let mut conn = connect(&writer_path)?;
            migrate_own(&mut conn, LOG_MIGRATIONS)?;
            migrate(&mut connect(&state_path)?, &dir, MIGRATIONS.len())?;
            migrate_own(&mut connect(&dir.join(AUDIT_FILE))?, AUDIT_MIGRATIONS)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Open(e.to_string()))??;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -{WRITER_CACHE_KIB};
             PRAGMA wal_autocheckpoint = 0;"
        ))?;
        let wal = PathBuf::from(format!("{}-wal", log_path.display()));
        // What a crashed process left in the WAL is made durable before anyone reads it.
        sync_wal(&wal)
            .map_err(|e| StoreError::Open(format!("cannot fsync {}: {e}", wal.display())))?;
        let durable = Arc::new(Durable {
            through: std::sync::atomic::AtomicI64::new(last_seq(&conn)?),
            wal: wal.clone(),
        });
        let checkpoints = connect(&log_path)?;
        checkpoints.execute_batch(NO_AUTOCHECKPOINT)?;
        let (synced, to_sync) = std::sync::mpsc::sync_channel(SYNC_QUEUE_GROUPS);
        let (nudge, nudged) = std::sync::mpsc::sync_channel(1);
        let recent = Arc::new(Mutex::new(dedup::RecentIds::default()));
        let writer_recent = recent.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(&mut conn, queue, synced, &writer_recent))
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let syncer_durable = durable.clone();
        std::thread::Builder::new()
            .name("sqlite-syncer".into())
            .spawn(move || sync_loop(&syncer_durable, to_sync, nudge))
            .map_err(|e| StoreError::Open(e.to_string()))?;
        std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || checkpoint_loop(&checkpoints, &wal, nudged))
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let audit_checkpoints = connect(&audit_path)?;
        let (stop_audit_checkpoints, audit_stopped) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-audit-checkpointer".into())
            .spawn(move || audit_checkpoint_loop(&audit_checkpoints, audit_stopped))
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(SqliteStore {
            state: Pool::new(path, POOL_CONNECTIONS, READER_CACHE_KIB),
            log: Pool::new(log_path, POOL_CONNECTIONS, LOG_READER_CACHE_KIB),
            // Appends take turns under the file's write lock (grouped, `audit::Group`): one
            // connection appends, another reads the log for `audit list` meanwhile.
            audit_log: Pool::new(audit_path, 2, READER_CACHE_KIB),
            _stop_audit_checkpoints: stop_audit_checkpoints,
            writer,
            recent,
            durable,
            audit: Default::default(),
        })
    }

    /// Creates `DIR/sightline.db` at schema version `version` (migrations 1..=version) and
    /// nothing more: for tests that check how later versions open earlier stores.
    #[doc(hidden)]
    pub fn create_at_version(data_dir: &Path, version: usize) -> Result<()> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open(e.to_string()))?;
        let mut conn = connect(&data_dir.join("sightline.db"))?;
        migrate(&mut conn, data_dir, version)
    }

    /// Runs `f` on a connection to `sightline.db`, off the async runtime.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.state.run(f).await
    }
}

/// Committed groups waiting for their fsync; the writer waits when this many are queued.
const SYNC_QUEUE_GROUPS: usize = 64;

type Committed = (Vec<AppendRequest>, Vec<Vec<Appended>>);

fn write_loop(
    conn: &mut Connection,
    mut queue: mpsc::Receiver<AppendRequest>,
    synced: std::sync::mpsc::SyncSender<Committed>,
    recent: &Mutex<dedup::RecentIds>,
) {
    while let Some(first) = queue.blocking_recv() {
        let group = group::take_group(first, &mut queue);
        let mut recent = dedup::lock(recent);
        let committed = commit_group(conn, &group, &mut recent);
        if committed.is_err() {
            // It may hold seqs the rollback took back.
            recent.forget();
        }
        drop(recent);
        match committed {
            Ok(outcome) => {
                if let Err(std::sync::mpsc::SendError((group, _))) = synced.send((group, outcome)) {
                    group::answer(group, Err(StoreError::Closed));
                }
            }
            Err(e) => group::answer(group, Err(e)),
        }
    }
}

/// Makes committed groups durable, one fsync for all that are waiting, then answers them;
/// nudges the checkpointer when the write-ahead log has grown past its bound.
fn sync_loop(
    durable: &Durable,
    committed: std::sync::mpsc::Receiver<Committed>,
    checkpoint: std::sync::mpsc::SyncSender<()>,
) {
    let wal = &durable.wal;
    while let Ok(first) = committed.recv() {
        let mut groups = vec![first];
        groups.extend(committed.try_iter());
        let synced = sync_wal(wal);
        if synced.as_ref().is_ok_and(|&len| len > CHECKPOINT_WAL_BYTES) {
            // Full: one is pending already, which will see this growth too.
            let _ = checkpoint.try_send(());
        }
        if synced.is_ok() {
            let last = groups
                .iter()
                .flat_map(|(_, outcome)| outcome.iter().flatten())
                .filter_map(|appended| match appended {
                    Appended::Stored(seq) => Some(*seq),
                    Appended::Duplicate => None,
                })
                .max();
            if let Some(last) = last {
                durable.advance(last);
            }
        }
        for (group, outcome) in groups {
            let outcome = match &synced {
                Ok(_) => Ok(outcome),
                Err(e) => Err(StoreError::Commit(format!(
                    "cannot fsync the write-ahead log {}: {e}",
                    wal.display()
                ))),
            };
            group::answer(group, outcome);
        }
    }
}

/// Copies the write-ahead log back into the database when nudged, and at least every
/// second when it has grown past its bound (appends by another process, which do not pass
/// this syncer, grow it too). A passive checkpoint never blocks a writer or a reader; the log
/// starts over from its beginning once a checkpoint has copied all of it.
fn checkpoint_loop(conn: &Connection, wal: &Path, nudged: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match nudged.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => {
                let size = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
                if size <= CHECKPOINT_WAL_BYTES {
                    continue;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "the write-ahead log checkpoint failed; retrying later");
        }
    }
}

/// How often the audit log's write-ahead log is copied back into `audit.db` in the
/// background.
const AUDIT_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Copies the audit log's write-ahead log into `audit.db` (a passive checkpoint: appends go
/// on meanwhile) every [`AUDIT_CHECKPOINT_EVERY`] until `stopped` says the store is gone.
/// Every profile read appends an entry, and SQLite's automatic checkpoint, run inside the
/// append that crosses a thousand pages, synced and copied all of them while that read
/// waited (5 ms and more: the lookups' p99). It still runs there, as only a checkpoint
/// between two appends lets the next one start the write-ahead log over (a background one
/// alone never catches up under steady reads and the file grows without bound); but this
/// one has synced and copied nearly everything by then, so it only has the last few pages.
fn audit_checkpoint_loop(conn: &Connection, stopped: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(AUDIT_CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "the audit log's checkpoint failed; retrying later");
        }
    }
}

fn commit_group(
    conn: &mut Connection,
    group: &[AppendRequest],
    recent: &mut dedup::RecentIds,
) -> Result<Vec<Vec<Appended>>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let widest = group.iter().map(|r| r.dedup_since).min().unwrap_or(0);
    recent.prepare(&tx, widest)?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (source_id, type, received_at, message_id, id_at, body, dedup_digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for request in group {
            let mut outcome = Vec::with_capacity(request.events.len());
            for (e, stored) in request.events.iter().zip(&request.stored) {
                let digest = dedup::digest(&stored.key);
                if recent.holds(&tx, digest, e.source_id, &e.message_id, request.dedup_since)? {
                    outcome.push(Appended::Duplicate);
                    continue;
                }
                insert.execute(params![
                    e.source_id,
                    log::type_code(e.event_type),
                    e.received_at,
                    e.message_id,
                    stored.body.id_at,
                    stored.body.payload,
                    digest
                ])?;
                let seq = tx.last_insert_rowid();
                recent.record(digest, seq);
                outcome.push(Appended::Stored(seq));
            }
            results.push(outcome);
        }
    }
    tx.commit()?;
    Ok(results)
}

const REVIEW_COLUMNS: &str = "id, origin, left_id, right_id, match_probability, evidence, \
     status, created_at, decided_at, seq";

/// A column value the row cannot be read with, as rusqlite's error for that column.
fn undecodable(column: usize, e: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        e.to_string().into(),
    )
}

fn review_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LinkReview> {
    Ok(LinkReview {
        id: row.get(0)?,
        origin: row.get(1)?,
        left: row.get(2)?,
        right: row.get(3)?,
        match_probability: row.get(4)?,
        evidence: columns::parse_object(&row.get::<_, String>(5)?),
        status: crate::reviews::status(&row.get::<_, String>(6)?).map_err(|e| undecodable(6, e))?,
        created_at: row.get(7)?,
        decided_at: row.get(8)?,
        seq: row.get(9)?,
    })
}

fn trait_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TraitDefinition> {
    Ok(TraitDefinition {
        id: row.get(0)?,
        name: row.get(1)?,
        definition: columns::parse_object(&row.get::<_, String>(2)?),
        created_at: row.get(3)?,
    })
}

/// The columns `event_from_row` reads, from the events table aliased `e`.
const EVENT_COLUMNS: &str =
    "e.seq, e.source_id, e.message_id, e.type, e.received_at, e.id_at, e.body";

/// An event row in either form: migration 12's (integer type, BLOB payload, see log.rs) or,
/// for rows stored before it, the plain TEXT body as sent.
fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    use rusqlite::types::ValueRef;
    let seq: i64 = row.get(0)?;
    let message_id: String = row.get(2)?;
    let event_type = match row.get_ref(3)? {
        ValueRef::Integer(code) => {
            columns::known("event type", &code.to_string(), log::type_from_code(code))
                .map_err(|e| undecodable(3, e))?
        }
        other => {
            let text = other.as_str().unwrap_or_default();
            columns::known("event type", text, EventType::parse(text))
                .map_err(|e| undecodable(3, e))?
        }
    };
    let body = match row.get_ref(6)? {
        ValueRef::Blob(payload) => log::decode(&message_id, row.get(5)?, payload).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Blob,
                format!("event {seq}: {e}").into(),
            )
        })?,
        _ => row.get(6)?,
    };
    Ok(StoredEvent {
        seq,
        source_id: row.get(1)?,
        message_id,
        event_type,
        received_at: row.get(4)?,
        body,
    })
}

fn source_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Source> {
    Ok(Source {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
    })
}

fn audience_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AudienceDefinition> {
    Ok(AudienceDefinition {
        id: row.get(0)?,
        name: row.get(1)?,
        rule: row.get(2)?,
        sync: columns::parse_list(&row.get::<_, String>(3)?),
        created_at: row.get(4)?,
    })
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    let role: String = row.get(1)?;
    Ok(Token {
        id: row.get(0)?,
        role: columns::role(&role).map_err(|e| undecodable(1, e))?,
    })
}

const DESTINATION_COLUMNS: &str = "id, name, kind, url, purposes, event_types, event_names, \
     batch_size, signing_secret, created_at, transform, disabled, settings, approved";

fn destination_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Destination> {
    Ok(Destination {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: columns::kind(&row.get::<_, String>(2)?).map_err(|e| undecodable(2, e))?,
        url: row.get(3)?,
        purposes: columns::parse_list(&row.get::<_, String>(4)?),
        event_types: columns::parse_list(&row.get::<_, String>(5)?),
        event_names: columns::parse_list(&row.get::<_, String>(6)?),
        batch_size: row.get(7)?,
        signing_secret: row.get(8)?,
        created_at: row.get(9)?,
        transform: columns::parse_object(&row.get::<_, String>(10)?),
        disabled: row.get(11)?,
        settings: columns::parse_object(&row.get::<_, String>(12)?),
        approved: row.get(13)?,
    })
}

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        destination_id: row.get(0)?,
        seq: row.get(1)?,
        message_id: row.get(2)?,
        status: columns::status(&row.get::<_, String>(3)?).map_err(|e| undecodable(3, e))?,
        attempts: row.get(4)?,
        response_code: row.get(5)?,
        latency_ms: row.get(6)?,
        reason: row.get(7)?,
        at: row.get(8)?,
    })
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, events: Vec<NewEvent>, dedup_since: i64) -> Result<Vec<Appended>> {
        group::submit(&self.writer, events, dedup_since).await
    }

    async fn read_events(
        &self,
        after: i64,
        limit: usize,
        source_id: Option<i64>,
    ) -> Result<Vec<StoredEvent>> {
        let durable = self.durable.clone();
        self.log
            .run(move |conn| {
                let through = durable.bound(conn, after, limit)?;
                // Two statements, so that a source's read walks `events_by_source`.
                let rows = match source_id {
                    None => {
                        let mut stmt = conn.prepare_cached(&format!(
                            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq > ?1 AND e.seq <= ?2
                         ORDER BY e.seq LIMIT ?3"
                        ))?;
                        let rows =
                            stmt.query_map(params![after, through, limit as i64], event_from_row)?;
                        rows.collect::<rusqlite::Result<Vec<_>>>()?
                    }
                    Some(source) => {
                        let mut stmt = conn.prepare_cached(&format!(
                            "SELECT {EVENT_COLUMNS} FROM events e INDEXED BY events_by_source
                         WHERE e.source_id = ?1 AND e.seq > ?2 AND e.seq <= ?3
                         ORDER BY e.seq LIMIT ?4"
                        ))?;
                        let rows = stmt.query_map(
                            params![source, after, through, limit as i64],
                            event_from_row,
                        )?;
                        rows.collect::<rusqlite::Result<Vec<_>>>()?
                    }
                };
                Ok(rows)
            })
            .await
    }

    async fn last_seq(&self) -> Result<i64> {
        self.log.run(|conn| last_seq(conn)).await
    }

    async fn ping(&self) -> Result<()> {
        self.with_conn(|conn| Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?))
            .await
    }

    async fn prune_dedup(&self, before: i64) -> Result<u64> {
        let recent = self.recent.clone();
        self.log
            .run(move |conn| {
                // Found before taking the lock, which the log writer holds for every group.
                let first_kept = dedup::first_kept(conn, before)?;
                let mut recent = dedup::lock(&recent);
                Ok(recent.prune(first_kept, before))
            })
            .await
    }
}

#[async_trait]
impl Access for SqliteStore {
    async fn is_empty(&self) -> Result<bool> {
        self.with_conn(|conn| {
            Ok(conn.query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM sources) AND NOT EXISTS (SELECT 1 FROM tokens)",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn create_source(&self, name: &str, key_hash: &str) -> Result<Source> {
        let (name, key_hash) = (name.to_string(), key_hash.to_string());
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM sources WHERE name = ?1)",
                [&name],
                |r| r.get(0),
            )?;
            if exists {
                return Err(StoreError::Conflict(format!(
                    "a source named {name:?} already exists: pick another name, or rotate its key with `sightline source rotate-key {name}`"
                )));
            }
            let now = sightline_core::time::now_ms();
            let source = tx.query_row(
                "INSERT INTO sources (name, created_at) VALUES (?1, ?2) RETURNING id, name, created_at",
                params![name, now],
                source_from_row,
            )?;
            tx.execute(
                "INSERT INTO source_keys (key_hash, source_id, created_at) VALUES (?1, ?2, ?3)",
                params![key_hash, source.id, now],
            )?;
            tx.commit()?;
            Ok(source)
        })
        .await
    }

    async fn list_sources(&self) -> Result<Vec<Source>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare("SELECT id, name, created_at FROM sources ORDER BY id")?;
            let rows = stmt.query_map([], source_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn source_by_name(&self, name: &str) -> Result<Option<Source>> {
        let name = name.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, name, created_at FROM sources WHERE name = ?1",
                    [name],
                    source_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn source_for_key(&self, key_hash: &str, now: i64) -> Result<Option<Source>> {
        let key_hash = key_hash.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT s.id, s.name, s.created_at FROM source_keys k
                     JOIN sources s ON s.id = k.source_id
                     WHERE k.key_hash = ?1 AND (k.expires_at IS NULL OR k.expires_at > ?2)",
                    params![key_hash, now],
                    source_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn rotate_key(&self, source_id: i64, key_hash: &str, old_valid_until: i64) -> Result<()> {
        let key_hash = key_hash.to_string();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = sightline_core::time::now_ms();
            tx.execute(
                "UPDATE source_keys SET expires_at = ?2 WHERE source_id = ?1
                 AND (expires_at IS NULL OR expires_at > ?2)",
                params![source_id, old_valid_until],
            )?;
            tx.execute(
                "INSERT INTO source_keys (key_hash, source_id, created_at) VALUES (?1, ?2, ?3)",
                params![key_hash, source_id, now],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_token(&self, role: Role, token_hash: &str) -> Result<Token> {
        let token_hash = token_hash.to_string();
        self.with_conn(move |conn| {
            Ok(conn.query_row(
                "INSERT INTO tokens (token_hash, role, created_at) VALUES (?1, ?2, ?3)
                 RETURNING id, role",
                params![token_hash, role.as_str(), sightline_core::time::now_ms()],
                token_from_row,
            )?)
        })
        .await
    }

    async fn token_for_hash(&self, token_hash: &str) -> Result<Option<Token>> {
        let token_hash = token_hash.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, role FROM tokens WHERE token_hash = ?1",
                    [token_hash],
                    token_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn start_session(&self, session: ConsoleSession) -> Result<()> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM console_sessions WHERE expires_at <= ?1",
                [sightline_core::time::now_ms()],
            )?;
            tx.execute(
                "INSERT INTO console_sessions (id_hash, token_hash, csrf, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    session.id_hash,
                    session.token_hash,
                    session.csrf,
                    session.expires_at
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<ConsoleSession>> {
        let id_hash = id_hash.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT token_hash, csrf, expires_at FROM console_sessions
                     WHERE id_hash = ?1 AND expires_at > ?2",
                    params![id_hash, now],
                    |row| {
                        Ok(ConsoleSession {
                            id_hash: id_hash.clone(),
                            token_hash: row.get(0)?,
                            csrf: row.get(1)?,
                            expires_at: row.get(2)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }

    async fn end_session(&self, id_hash: &str) -> Result<()> {
        let id_hash = id_hash.to_string();
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM console_sessions WHERE id_hash = ?1", [id_hash])?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Checkpoints for SqliteStore {
    async fn checkpoint(&self, processor: &str) -> Result<i64> {
        let processor = processor.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT seq FROM checkpoints WHERE processor = ?1",
                    [processor],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0))
        })
        .await
    }

    async fn set_checkpoint(&self, processor: &str, seq: i64) -> Result<()> {
        let processor = processor.to_string();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO checkpoints (processor, seq) VALUES (?1, ?2)
                 ON CONFLICT (processor) DO UPDATE SET seq = excluded.seq",
                params![processor, seq],
            )?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Definitions for SqliteStore {
    async fn create_audience(
        &self,
        name: &str,
        rule: &str,
        sync: &[String],
    ) -> Result<AudienceDefinition> {
        let (name, rule, sync) = (name.to_string(), rule.to_string(), columns::list(sync));
        self.with_conn(move |conn| {
            conn.query_row(
                "INSERT INTO audiences (name, rule, sync, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING RETURNING id, name, rule, sync, created_at",
                params![name, rule, sync, sightline_core::time::now_ms()],
                audience_from_row,
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::Conflict(format!("an audience named {name:?} already exists"))
            })
        })
        .await
    }

    async fn create_trait(&self, name: &str, definition: &str) -> Result<TraitDefinition> {
        let (name, definition) = (name.to_string(), definition.to_string());
        self.with_conn(move |conn| {
            conn.query_row(
                "INSERT INTO computed_traits (name, definition, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING RETURNING id, name, definition, created_at",
                params![name, definition, sightline_core::time::now_ms()],
                trait_from_row,
            )
            .optional()?
            .ok_or_else(|| columns::trait_conflict(&name))
        })
        .await
    }

    async fn audience_history(
        &self,
        audience: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>> {
        let audience = audience.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, change FROM audience_changes WHERE audience = ?1 AND id > ?2
                 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![audience, after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn list_traits(&self) -> Result<Vec<TraitDefinition>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, definition, created_at FROM computed_traits ORDER BY id",
            )?;
            let rows = stmt.query_map([], trait_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn list_audiences(&self) -> Result<Vec<AudienceDefinition>> {
        self.with_conn(|conn| {
            let mut stmt =
                conn.prepare("SELECT id, name, rule, sync, created_at FROM audiences ORDER BY id")?;
            let rows = stmt.query_map([], audience_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[async_trait]
impl Destinations for SqliteStore {
    async fn create_destination(&self, new: NewDestination) -> Result<Destination> {
        self.with_conn(move |conn| {
            let sql = format!(
                "INSERT INTO destinations (name, kind, url, purposes, event_types, event_names,
                     batch_size, signing_secret, created_at, transform, settings)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (name) DO NOTHING RETURNING {DESTINATION_COLUMNS}"
            );
            conn.query_row(
                &sql,
                params![
                    new.name,
                    new.kind.as_str(),
                    new.url,
                    columns::list(&new.purposes),
                    columns::list(&new.event_types),
                    columns::list(&new.event_names),
                    new.batch_size,
                    new.signing_secret,
                    sightline_core::time::now_ms(),
                    new.transform.to_string(),
                    new.settings.to_string()
                ],
                destination_from_row,
            )
            .optional()?
            .ok_or_else(|| columns::conflict(&new.name))
        })
        .await
    }

    async fn set_destination_disabled(&self, id: i64, disabled: bool) -> Result<()> {
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE destinations SET disabled = ?2 WHERE id = ?1",
                params![id, disabled],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_destination_secret(&self, id: i64, secret: &str) -> Result<()> {
        let secret = secret.to_owned();
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE destinations SET signing_secret = ?2 WHERE id = ?1",
                params![id, secret],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_destination(&self, id: i64) -> Result<()> {
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM deliveries WHERE destination_id = ?1", [id])?;
            tx.execute(
                "DELETE FROM checkpoints WHERE processor = ?1 OR processor LIKE ?2",
                params![format!("delivery:{id}"), format!("sync:{id}:%")],
            )?;
            tx.execute(
                "DELETE FROM destination_flows WHERE destination_id = ?1",
                [id],
            )?;
            tx.execute("DELETE FROM destinations WHERE id = ?1", [id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn list_destinations(&self) -> Result<Vec<Destination>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY id"
            ))?;
            let rows = stmt.query_map([], destination_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn destination_by_name(&self, name: &str) -> Result<Option<Destination>> {
        let name = name.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE name = ?1"),
                    [name],
                    destination_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn record_deliveries(
        &self,
        deliveries: Vec<Delivery>,
        checkpoint: Option<(String, i64)>,
    ) -> Result<()> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut record = tx.prepare_cached(
                    "INSERT OR REPLACE INTO deliveries (destination_id, seq, message_id, status,
                         attempts, response_code, latency_ms, reason, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for d in &deliveries {
                    record.execute(params![
                        d.destination_id,
                        d.seq,
                        d.message_id,
                        d.status.as_str(),
                        d.attempts,
                        d.response_code,
                        d.latency_ms,
                        d.reason,
                        d.at
                    ])?;
                }
            }
            if let Some((processor, seq)) = checkpoint {
                // Never back: a checkpoint moved past this page meanwhile (`destination
                // skip-to`) stays where it was moved.
                tx.execute(
                    "INSERT INTO checkpoints (processor, seq) VALUES (?1, ?2)
                     ON CONFLICT (processor) DO UPDATE SET seq = max(seq, excluded.seq)",
                    params![processor, seq],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn deliveries(
        &self,
        destination_id: i64,
        status: Option<DeliveryStatus>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        self.with_conn(move |conn| {
            // Two statements: one `status = ?2 OR ?2 IS NULL` would walk the whole
            // destination's log by its key to find the few failed among millions sent.
            let rows = match status {
                None => conn
                    .prepare_cached(
                        "SELECT destination_id, seq, message_id, status, attempts, response_code,
                             latency_ms, reason, at FROM deliveries
                         WHERE destination_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                    )?
                    .query_map(
                        params![destination_id, after, limit as i64],
                        delivery_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                Some(status) => conn
                    .prepare_cached(
                        "SELECT destination_id, seq, message_id, status, attempts, response_code,
                             latency_ms, reason, at FROM deliveries INDEXED BY deliveries_by_status
                         WHERE destination_id = ?1 AND status = ?2 AND seq > ?3
                         ORDER BY seq LIMIT ?4",
                    )?
                    .query_map(
                        params![destination_id, status.as_str(), after, limit as i64],
                        delivery_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            Ok(rows)
        })
        .await
    }
}

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn profiles_state(&self) -> Result<Option<ProfilesState>> {
        self.with_conn(|conn| Ok(profiles_state(conn)?)).await
    }

    async fn save_profiles(&self, save: ProfileSave) -> Result<()> {
        self.with_conn(move |conn| save_profiles(conn, save)).await
    }

    async fn load_profiles(&self) -> Result<Option<(ProfilesState, ProfileRows)>> {
        self.with_conn(load_profiles).await
    }

    async fn consent_denied_counts(&self, from: &str, to: &str) -> Result<Vec<DeniedCount>> {
        let (from, to) = (from.to_string(), to.to_string());
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT day, source_id, event, count FROM consent_denied_counts
                 WHERE day >= ?1 AND day <= ?2 ORDER BY day, source_id, event",
            )?;
            let rows = stmt.query_map(params![from, to], |r| {
                Ok(DeniedCount {
                    day: r.get(0)?,
                    source_id: r.get(1)?,
                    event: r.get(2)?,
                    count: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn stored_profiles(
        &self,
        identifiers: Vec<(String, String)>,
    ) -> Result<Vec<Option<StoredProfile>>> {
        self.with_conn(move |conn| {
            // One read transaction: every answer from the same state.
            let tx = conn.transaction()?;
            let mut stmt = tx.prepare_cached(
                "SELECT p.id, p.doc, s.state FROM profile_identifiers i
                 JOIN profiles p ON p.id = i.profile_id
                 LEFT JOIN profile_states s ON s.profile_id = p.id
                 WHERE i.id_type = ?1 AND i.value = ?2",
            )?;
            let found = identifiers
                .iter()
                .map(|(id_type, value)| {
                    stmt.query_row(params![id_type, value], stored_profile_from_row)
                        .optional()?
                        .map(|p| with_ledger(&tx, p))
                        .transpose()
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(stmt);
            tx.commit()?;
            Ok(found)
        })
        .await
    }

    async fn stored_profile_by_id(&self, id: i64) -> Result<Option<StoredProfile>> {
        self.with_conn(move |conn| {
            let mut profile = conn.prepare_cached(
                "SELECT p.id, p.doc, s.state FROM profiles p
                 LEFT JOIN profile_states s ON s.profile_id = p.id WHERE p.id = ?1",
            )?;
            let mut survivor =
                conn.prepare_cached("SELECT survivor FROM profile_merges WHERE retired = ?1")?;
            let mut id = id;
            // Bounded, so that even a hand-made cycle of merges cannot hang the walk.
            for _ in 0..MAX_MERGE_CHAIN {
                if let Some(found) = profile
                    .query_row([id], stored_profile_from_row)
                    .optional()?
                {
                    return Ok(Some(with_ledger(conn, found)?));
                }
                match survivor.query_row([id], |r| r.get(0)).optional()? {
                    Some(next) => id = next,
                    None => return Ok(None),
                }
            }
            Ok(None)
        })
        .await
    }

    async fn audience_members(
        &self,
        audience: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredProfile>> {
        let audience = audience.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT p.id, p.doc, s.state FROM audience_members m
                 JOIN profiles p ON p.id = m.profile_id
                 LEFT JOIN profile_states s ON s.profile_id = p.id
                 WHERE m.audience = ?1 AND m.profile_id > ?2 ORDER BY m.profile_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![audience, after, limit as i64],
                stored_profile_from_row,
            )?;
            let members = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(members
                .into_iter()
                .map(|p| with_ledger(conn, p))
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn audience_sizes(&self) -> Result<Vec<(String, i64)>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT audience, count(*) FROM audience_members GROUP BY audience ORDER BY audience",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn working_set(
        &self,
        identifiers: Vec<(String, String)>,
        ids: Vec<i64>,
    ) -> Result<ProfileRows> {
        self.with_conn(move |conn| Ok(working_set(conn, &identifiers, ids)?))
            .await
    }

    async fn due_timers(&self, through: i64, limit: usize) -> Result<Vec<(String, i64, i64)>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT audience, profile_id, due_at FROM profile_timers
                 WHERE due_at <= ?1 ORDER BY due_at, profile_id, audience LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![through, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn stored_profile_events(
        &self,
        profile: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let seqs: Vec<i64> = self
            .with_conn(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT seq FROM profile_events
                     WHERE profile_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![profile, before, limit as i64], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await?;
        self.log
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq = ?1"
                ))?;
                let mut events = Vec::with_capacity(seqs.len());
                for seq in seqs {
                    // A seq the log no longer holds (erased) is skipped.
                    if let Some(event) = stmt.query_row([seq], event_from_row).optional()? {
                        events.push(event);
                    }
                }
                Ok(events)
            })
            .await
    }
}

#[async_trait]
impl LinkReviews for SqliteStore {
    // ---- Record linkage: the clerical review queue ----

    async fn add_link_reviews(&self, reviews: Vec<NewLinkReview>) -> Result<Vec<Option<i64>>> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(reviews.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO link_reviews (pair_key, origin, left_id, right_id,
                         match_probability, evidence, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (pair_key) DO NOTHING RETURNING id",
                )?;
                let now = sightline_core::time::now_ms();
                for r in &reviews {
                    let id: Option<i64> = insert
                        .query_row(
                            params![
                                crate::reviews::pair_key(&r.left, &r.right),
                                r.origin,
                                r.left,
                                r.right,
                                r.match_probability,
                                r.evidence,
                                now
                            ],
                            |row| row.get(0),
                        )
                        .optional()?;
                    ids.push(id);
                }
            }
            tx.commit()?;
            Ok(ids)
        })
        .await
    }

    async fn link_reviews(
        &self,
        status: Option<ReviewStatus>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LinkReview>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {REVIEW_COLUMNS} FROM link_reviews
                 WHERE id > ?1 AND (?2 IS NULL OR status = ?2) ORDER BY id LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![after, status.map(ReviewStatus::as_str), limit as i64],
                review_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn link_review(&self, id: i64) -> Result<Option<LinkReview>> {
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {REVIEW_COLUMNS} FROM link_reviews WHERE id = ?1"),
                    [id],
                    review_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn decide_link_review(
        &self,
        id: i64,
        status: ReviewStatus,
        seq: Option<i64>,
    ) -> Result<LinkReview> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let decided = tx
                .query_row(
                    &format!(
                        "UPDATE link_reviews SET status = ?2, decided_at = ?3, seq = ?4
                         WHERE id = ?1 AND status = 'pending' RETURNING {REVIEW_COLUMNS}"
                    ),
                    params![id, status.as_str(), sightline_core::time::now_ms(), seq],
                    review_from_row,
                )
                .optional()?;
            let decided = match decided {
                Some(item) => item,
                None => {
                    let found = tx
                        .query_row(
                            &format!("SELECT {REVIEW_COLUMNS} FROM link_reviews WHERE id = ?1"),
                            [id],
                            review_from_row,
                        )
                        .optional()?;
                    return Err(crate::reviews::review_undecidable(id, found.as_ref()));
                }
            };
            tx.commit()?;
            Ok(decided)
        })
        .await
    }
}

fn working_set(
    conn: &mut Connection,
    identifiers: &[(String, String)],
    ids: Vec<i64>,
) -> rusqlite::Result<ProfileRows> {
    let tx = conn.transaction()?;
    let mut wanted: std::collections::BTreeSet<i64> = ids.into_iter().collect();
    let mut rows = ProfileRows::default();
    {
        let mut owner = tx.prepare_cached(
            "SELECT profile_id FROM profile_identifiers WHERE id_type = ?1 AND value = ?2",
        )?;
        for (id_type, value) in identifiers {
            if let Some(profile) = owner
                .query_row(params![id_type, value], |r| r.get(0))
                .optional()?
            {
                wanted.insert(profile);
            }
        }
        let mut profile = tx.prepare_cached(
            "SELECT p.doc, s.state FROM profiles p
             LEFT JOIN profile_states s ON s.profile_id = p.id WHERE p.id = ?1",
        )?;
        let mut held = tx.prepare_cached(
            "SELECT id_type, value, shared, seen_with FROM profile_identifiers
             WHERE profile_id = ?1",
        )?;
        for id in wanted {
            let Some((doc, state)) = profile
                .query_row([id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })
                .optional()?
            else {
                continue;
            };
            rows.profiles.push((id, doc));
            rows.states.extend(state.map(|state| (id, state)));
            let held = held.query_map([id], |r| {
                Ok(IdentifierRow {
                    id_type: r.get(0)?,
                    value: r.get(1)?,
                    profile: id,
                    shared: r.get(2)?,
                    seen_with: r.get(3)?,
                })
            })?;
            for row in held {
                rows.identifiers.push(row?);
            }
            for change in ledger_of(&tx, id)? {
                rows.consent.push((id, change.0, change.1));
            }
        }
    }
    tx.commit()?;
    Ok(rows)
}

/// A profile's consent ledger entries `(seq, JSON)`, in seq order.
fn ledger_of(conn: &Connection, profile: i64) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, change FROM consent_changes WHERE profile_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([profile], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// A stored profile read by `stored_profile_from_row`, with its consent ledger.
fn with_ledger(conn: &Connection, mut profile: StoredProfile) -> rusqlite::Result<StoredProfile> {
    profile.consent = ledger_of(conn, profile.id)?
        .into_iter()
        .map(|(_, change)| change)
        .collect();
    Ok(profile)
}

fn stored_profile_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredProfile> {
    Ok(StoredProfile {
        id: r.get(0)?,
        doc: r.get(1)?,
        states: r.get(2)?,
        consent: Vec::new(),
    })
}

fn profiles_state(conn: &Connection) -> rusqlite::Result<Option<ProfilesState>> {
    conn.query_row(
        "SELECT seq, rules, definitions FROM profiles_state",
        [],
        |r| {
            Ok(ProfilesState {
                seq: r.get(0)?,
                rules: r.get(1)?,
                definitions: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Every stored profile row, read in one transaction with the state they stand at.
fn load_profiles(conn: &mut Connection) -> Result<Option<(ProfilesState, ProfileRows)>> {
    let tx = conn.transaction()?;
    let Some(state) = profiles_state(&tx)? else {
        return Ok(None);
    };
    let mut rows = ProfileRows::default();
    {
        let pairs = |sql: &str| -> rusqlite::Result<Vec<(i64, i64)>> {
            let mut stmt = tx.prepare(sql)?;
            let read = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            read.collect()
        };
        rows.retired = pairs("SELECT retired, survivor FROM profile_merges ORDER BY retired")?;
        rows.events = pairs("SELECT profile_id, seq FROM profile_events ORDER BY profile_id, seq")?;
        let texts = |sql: &str| -> rusqlite::Result<Vec<(i64, String)>> {
            let mut stmt = tx.prepare(sql)?;
            let read = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            read.collect()
        };
        rows.profiles = texts("SELECT id, doc FROM profiles ORDER BY id")?;
        rows.states = texts("SELECT profile_id, state FROM profile_states ORDER BY profile_id")?;
        let mut stmt = tx.prepare("SELECT profile_id, seq, change FROM consent_changes")?;
        rows.consent = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = tx.prepare(
            "SELECT id_type, value, profile_id, shared, seen_with FROM profile_identifiers",
        )?;
        rows.identifiers = stmt
            .query_map([], |r| {
                Ok(IdentifierRow {
                    id_type: r.get(0)?,
                    value: r.get(1)?,
                    profile: r.get(2)?,
                    shared: r.get(3)?,
                    seen_with: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt =
            tx.prepare("SELECT day, source_id, event, count FROM consent_denied_counts")?;
        rows.denied_counts = stmt
            .query_map([], |r| {
                Ok(DeniedCount {
                    day: r.get(0)?,
                    source_id: r.get(1)?,
                    event: r.get(2)?,
                    count: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(Some((state, rows)))
}

fn save_profiles(conn: &mut Connection, save: ProfileSave) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let erasures = erase::profile_erasures(&tx)?;
    if let Some(conflict) = profiles_moved(profiles_state(&tx)?.as_ref(), erasures, &save) {
        return Err(conflict);
    }
    if save.replace {
        tx.execute_batch(
            "DELETE FROM profiles; DELETE FROM profile_identifiers; DELETE FROM profile_events;
             DELETE FROM consent_denied_counts; DELETE FROM profile_states;
             DELETE FROM profile_merges; DELETE FROM audience_members;
             DELETE FROM profile_timers; DELETE FROM consent_changes;",
        )?;
    }
    let rows = &save.rows;
    {
        let mut move_identifiers = tx.prepare_cached(
            "UPDATE profile_identifiers SET profile_id = ?2 WHERE profile_id = ?1",
        )?;
        let mut move_events =
            tx.prepare_cached("UPDATE profile_events SET profile_id = ?2 WHERE profile_id = ?1")?;
        let mut retire = tx.prepare_cached("DELETE FROM profiles WHERE id = ?1")?;
        let mut retire_states =
            tx.prepare_cached("DELETE FROM profile_states WHERE profile_id = ?1")?;
        let mut retire_timers =
            tx.prepare_cached("DELETE FROM profile_timers WHERE profile_id = ?1")?;
        let mut move_consent =
            tx.prepare_cached("UPDATE consent_changes SET profile_id = ?2 WHERE profile_id = ?1")?;
        let mut merged = tx.prepare_cached(
            "INSERT OR REPLACE INTO profile_merges (retired, survivor) VALUES (?1, ?2)",
        )?;
        for &(retired, survivor) in &rows.retired {
            move_identifiers.execute([retired, survivor])?;
            move_events.execute([retired, survivor])?;
            retire.execute([retired])?;
            retire_states.execute([retired])?;
            retire_timers.execute([retired])?;
            move_consent.execute([retired, survivor])?;
            merged.execute([retired, survivor])?;
        }
        let mut profile = tx.prepare_cached(
            "INSERT INTO profiles (id, doc) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
        )?;
        for (id, doc) in &rows.profiles {
            profile.execute(params![id, doc])?;
        }
        let mut identifier = tx.prepare_cached(
            "INSERT INTO profile_identifiers (id_type, value, profile_id, shared, seen_with)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id_type, value) DO UPDATE SET profile_id = excluded.profile_id,
                 shared = excluded.shared, seen_with = excluded.seen_with",
        )?;
        for row in &rows.identifiers {
            identifier.execute(params![
                row.id_type,
                row.value,
                row.profile,
                row.shared,
                row.seen_with
            ])?;
        }
        let mut event = tx.prepare_cached(
            "INSERT OR IGNORE INTO profile_events (profile_id, seq) VALUES (?1, ?2)",
        )?;
        for &(profile, seq) in &rows.events {
            event.execute([profile, seq])?;
        }
        let mut history =
            tx.prepare_cached("INSERT INTO audience_changes (audience, change) VALUES (?1, ?2)")?;
        for (audience, change) in &rows.audience_changes {
            history.execute(params![audience, change])?;
        }
        let mut count = tx.prepare_cached(
            "INSERT INTO consent_denied_counts (day, source_id, event, count) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (day, source_id, event) DO UPDATE SET count = count + excluded.count",
        )?;
        for c in &rows.denied_counts {
            count.execute(params![c.day, c.source_id, c.event, c.count])?;
        }
        let mut state = tx.prepare_cached(
            "INSERT INTO profile_states (profile_id, state) VALUES (?1, ?2)
             ON CONFLICT (profile_id) DO UPDATE SET state = excluded.state",
        )?;
        for (profile, text) in &rows.states {
            state.execute(params![profile, text])?;
        }
        let mut enter = tx.prepare_cached(
            "INSERT OR IGNORE INTO audience_members (audience, profile_id) VALUES (?1, ?2)",
        )?;
        let mut exit = tx.prepare_cached(
            "DELETE FROM audience_members WHERE audience = ?1 AND profile_id = ?2",
        )?;
        for (audience, profile, member) in &rows.members {
            if *member { &mut enter } else { &mut exit }.execute(params![audience, profile])?;
        }
        let mut set_timer = tx.prepare_cached(
            "INSERT INTO profile_timers (profile_id, audience, due_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (profile_id, audience) DO UPDATE SET due_at = excluded.due_at",
        )?;
        let mut clear_timer = tx
            .prepare_cached("DELETE FROM profile_timers WHERE profile_id = ?1 AND audience = ?2")?;
        for (audience, profile, due) in &rows.timers {
            match due {
                Some(due) => set_timer.execute(params![profile, audience, due])?,
                None => clear_timer.execute(params![profile, audience])?,
            };
        }
        let mut consent = tx.prepare_cached(
            "INSERT OR IGNORE INTO consent_changes (profile_id, seq, change) VALUES (?1, ?2, ?3)",
        )?;
        for (profile, seq, change) in &rows.consent {
            consent.execute(params![profile, seq, change])?;
        }
    }
    tx.execute(
        "INSERT INTO profiles_state (id, seq, rules, definitions) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, rules = excluded.rules,
             definitions = excluded.definitions",
        params![save.state.seq, save.state.rules, save.state.definitions],
    )?;
    tx.commit()?;
    Ok(())
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("state", &self.state.path)
            .field("log", &self.log.path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached statement is planned once, whatever values are bound at each use.
    #[test]
    fn cached_statements_are_not_prepared_again_for_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connect(&dir.path().join("t.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (a INTEGER NOT NULL, b INTEGER NOT NULL, c TEXT,
                 PRIMARY KEY (a, b)) WITHOUT ROWID;
             INSERT INTO t VALUES (1, 1, 'x'), (2, 1, 'y'), (2, 2, 'z');",
        )
        .unwrap();
        let sql = "SELECT b, c FROM t WHERE a = ?1 ORDER BY b LIMIT ?2";
        for (a, limit) in [(1, 1), (2, 5), (7, 1), (2, 0), (1, 100)] {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let rows: Vec<i64> = stmt
                .query_map(params![a, limit], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(rows.len() <= limit as usize);
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "the cached statement was planned again"
        );
    }

    /// With SQLite's own checkpoints off, the checkpointer thread copies a write-ahead log
    /// that grew past its bound back into the database file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_copies_a_grown_log_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let wal = dir.path().join("log.db-wal");
        let db = dir.path().join("log.db");
        let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let before = size(&db);
        // Incompressible bodies, so that the log grows past the bound in a few groups.
        let mut noise = 0x9e37_79b9_7f4a_7c15_u64;
        let mut body = || {
            (0..2_000)
                .map(|_| {
                    noise ^= noise << 13;
                    noise ^= noise >> 7;
                    noise ^= noise << 17;
                    char::from(b'a' + (noise % 26) as u8)
                })
                .collect::<String>()
        };
        let mut n = 0;
        while size(&wal) <= CHECKPOINT_WAL_BYTES {
            let events = (0..200)
                .map(|_| {
                    n += 1;
                    NewEvent {
                        source_id: 1,
                        message_id: format!("m{n}"),
                        event_type: EventType::Track,
                        received_at: 1,
                        body: format!(r#"{{"messageId":"m{n}","pad":"{}"}}"#, body()),
                    }
                })
                .collect();
            store.append(events, 0).await.unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while size(&db) < before + CHECKPOINT_WAL_BYTES / 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was never checkpointed: database {} bytes, log {}",
                size(&db),
                size(&wal)
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(store.last_seq().await.unwrap(), n);
    }
}
