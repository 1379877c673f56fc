//! The SQLite log writer's dedup index (migration 19): which (source, messageId) pairs the
//! log holds within the window, as a map from the first 8 bytes of each event's dedup key
//! ([`crate::log::dedup_key`]) to its seq, kept in memory by the writer.
//!
//! Why not a table keyed by the digest, as before: a random key lands on a random B-tree
//! page, so every event dirtied a page of its own, 4 KiB written to the WAL, fsynced before
//! the answer and copied again by the checkpoint, for a ~550-byte event. That volume made
//! the fsync, and so every append, several times slower.
//!
//! Now each event row keeps its digest (`dedup_digest`) and `events_by_arrival
//! (received_at, dedup_digest)` is appended in arrival order, so the index costs a few
//! sequential bytes per event. The map is derived state, rebuilt from that index:
//! - on the first append (for its window), not at open, so that commands that never
//!   append do not pay for it;
//! - for rows another process appended (the command line imports CRM rows beside a
//!   running server): every group first reads the log's last seq and loads what is past
//!   the seq it last saw, inside its write transaction, so nothing slips between;
//! - from scratch after a failed commit, whose seqs the map may hold.
//!
//! A digest hit is confirmed against the row it names (same source, same messageId, and
//! received within the window), so the decision stays exact.
//!
//! The map costs 9 bytes a slot (hashbrown's table of 8-byte rows and a control byte each;
//! 151 MB at 10 million events in the window, 285 MB as a `HashMap<i64, i64>`): a row
//! keeps the digest's upper 32 bits, which also place it, and the seq's lower 32 bits,
//! which name one seq among the last 2^32 the writer has seen. Several rows may share those
//! 32 bits (about one event in 400 at 10 million in the window): each is confirmed against
//! its row in turn. Only a window of more than 2^32 events (far more than fits this map in
//! memory) could name a row wrongly; the confirmation then fails and the event is stored
//! twice, never dropped.

use crate::Result;
use hashbrown::HashTable;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::{Mutex, MutexGuard};

/// The 8 bytes of a dedup key the SQLite log stores and the writer indexes.
pub(super) fn digest(key: &[u8; 16]) -> i64 {
    let mut first = [0; 8];
    first.copy_from_slice(&key[..8]);
    i64::from_be_bytes(first)
}

/// The map's rows: the digest's upper half | the seq's lower half (see the module's comment).
#[derive(Default)]
struct Rows(HashTable<u64>);

const LOWER: u64 = 0xFFFF_FFFF;

impl Rows {
    fn row(digest: i64, seq: i64) -> u64 {
        (digest as u64 & !LOWER) | (seq as u64 & LOWER)
    }

    /// Where a row goes: its fingerprint (the digest's upper half, already uniform: it is
    /// SHA-256) spread over all 64 bits, as hashbrown reads both ends of a hash.
    fn hash(row: u64) -> u64 {
        (row >> 32).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The seq a row names: the latest one at or before `through` with its lower half.
    fn seq(row: u64, through: i64) -> i64 {
        through - ((through as u64).wrapping_sub(row) & LOWER) as i64
    }

    fn insert(&mut self, row: u64) {
        if let hashbrown::hash_table::Entry::Vacant(slot) = self.0.entry(
            Rows::hash(row),
            |&held| held == row,
            |&held| Rows::hash(held),
        ) {
            slot.insert(row);
        }
    }

    fn remove(&mut self, row: u64) {
        if let Ok(held) = self.0.find_entry(Rows::hash(row), |&held| held == row) {
            held.remove();
        }
    }

    /// The seqs of the rows that may be this digest's.
    fn candidates(&self, digest: i64, through: i64) -> impl Iterator<Item = i64> + '_ {
        let upper = Rows::row(digest, 0);
        self.0
            .iter_hash(Rows::hash(upper))
            .filter(move |&&held| held & !LOWER == upper)
            .map(move |&held| Rows::seq(held, through))
    }

    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.0.retain(|held| keep(*held));
        // A window that held far more than it does now gives its memory back.
        if self.0.len() < self.0.capacity() / 4 {
            self.0.shrink_to(self.0.len() * 2, |&held| Rows::hash(held));
        }
    }
}

#[derive(Default)]
pub(super) struct RecentIds {
    rows: Rows,
    /// The arrival time (ms) from which the map holds every row; `None` before the first
    /// load.
    loaded_since: Option<i64>,
    /// The last seq of the log the map has seen.
    seen_through: i64,
}

impl RecentIds {
    /// Brings the map up to date inside a group's write transaction, for a window that
    /// starts at `since` (ms).
    pub fn prepare(&mut self, conn: &Connection, since: i64) -> Result<()> {
        let last = super::last_seq(conn)?;
        match self.loaded_since {
            None => {
                self.load(
                    conn,
                    "SELECT dedup_digest, seq FROM events INDEXED BY events_by_arrival
                     WHERE received_at >= ?1",
                    since,
                )?;
                self.loaded_since = Some(since);
            }
            Some(loaded) => {
                if since < loaded {
                    self.load(
                        conn,
                        &format!(
                            "SELECT dedup_digest, seq FROM events INDEXED BY events_by_arrival
                             WHERE received_at >= ?1 AND received_at < {loaded}"
                        ),
                        since,
                    )?;
                    self.loaded_since = Some(since);
                }
                if last > self.seen_through {
                    self.load(
                        conn,
                        "SELECT dedup_digest, seq FROM events WHERE seq > ?1",
                        self.seen_through,
                    )?;
                }
            }
        }
        self.seen_through = last;
        Ok(())
    }

    fn load(&mut self, conn: &Connection, sql: &str, from: i64) -> Result<()> {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([from])?;
        while let Some(row) = rows.next()? {
            let (Some(digest), seq): (Option<i64>, i64) = (row.get(0)?, row.get(1)?) else {
                continue;
            };
            self.record(digest, seq);
        }
        Ok(())
    }

    /// Whether the log holds this (source, messageId), received at or after `since`.
    pub fn holds(
        &self,
        conn: &Connection,
        digest: i64,
        source_id: i64,
        message_id: &str,
        since: i64,
    ) -> Result<bool> {
        for seq in self.rows.candidates(digest, self.seen_through) {
            let row: Option<(i64, String, i64)> = conn
                .prepare_cached(
                    "SELECT source_id, message_id, received_at FROM events WHERE seq = ?1",
                )?
                .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            if matches!(row, Some((source, id, at)) if source == source_id && id == message_id && at >= since)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Notes a stored row.
    pub fn record(&mut self, digest: i64, seq: i64) {
        self.seen_through = self.seen_through.max(seq);
        self.rows.insert(Rows::row(digest, seq));
    }

    /// Drops the entry of an erased row (`digest` as stored in it). The rest of the map
    /// stays: rebuilding it would read every row of the window on the next append.
    pub fn erased(&mut self, digest: i64, seq: i64) {
        self.rows.remove(Rows::row(digest, seq));
    }

    /// Drops everything: the next group rebuilds the map from the log.
    pub fn forget(&mut self) {
        *self = RecentIds::default();
    }
}

/// The dedup index, locked. One a panic left part-way through a group (the group rolled
/// back) is forgotten, so that it is loaded again from the log rather than trusted or
/// failing every later append.
pub(super) fn lock(recent: &Mutex<RecentIds>) -> MutexGuard<'_, RecentIds> {
    recent.lock().unwrap_or_else(|poisoned| {
        recent.clear_poison();
        let mut recent = poisoned.into_inner();
        recent.forget();
        recent
    })
}

impl RecentIds {
    /// Drops the entries of rows before `first_kept` (see [`first_kept`]); returns how many.
    /// A window reaching back before `before` later loads them again.
    pub fn prune(&mut self, first_kept: i64, before: i64) -> u64 {
        let held = self.rows.0.len();
        let through = self.seen_through;
        self.rows
            .retain(|row| Rows::seq(row, through) >= first_kept);
        if let Some(loaded) = self.loaded_since {
            self.loaded_since = Some(loaded.max(before));
        }
        (held - self.rows.0.len()) as u64
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.rows.0.len()
    }
}

/// The first seq received at or after `before` (ms), as a reader sees the log: rows it
/// cannot see yet are newer than any it can, so everything past its last seq is kept too.
pub(super) fn first_kept(conn: &Connection, before: i64) -> Result<i64> {
    let (first, last): (Option<i64>, i64) = conn.query_row(
        "SELECT (SELECT seq FROM events INDEXED BY events_by_arrival
                 WHERE received_at >= ?1 ORDER BY received_at LIMIT 1),
                COALESCE((SELECT MAX(seq) FROM events), 0)",
        params![before],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(first.unwrap_or(last + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, source_id INTEGER, message_id TEXT,
                received_at INTEGER, dedup_digest INTEGER);
             CREATE INDEX events_by_arrival ON events (received_at, dedup_digest);",
        )
        .unwrap();
        conn
    }

    fn append(conn: &Connection, source: i64, id: &str, at: i64) -> (i64, i64) {
        let digest = digest(&crate::log::dedup_key(source, id));
        conn.execute(
            "INSERT INTO events (source_id, message_id, received_at, dedup_digest)
             VALUES (?1, ?2, ?3, ?4)",
            params![source, id, at, digest],
        )
        .unwrap();
        (digest, conn.last_insert_rowid())
    }

    #[test]
    fn loads_the_window_then_follows_other_writers() {
        let conn = log();
        let (old, _) = append(&conn, 1, "old", 10);
        let (kept, _) = append(&conn, 1, "kept", 100);
        let mut recent = RecentIds::default();
        recent.prepare(&conn, 50).unwrap();
        assert!(!recent.holds(&conn, old, 1, "old", 50).unwrap());
        assert!(recent.holds(&conn, kept, 1, "kept", 50).unwrap());
        assert!(
            !recent.holds(&conn, kept, 2, "kept", 50).unwrap(),
            "same digest, other source"
        );
        // Another process appends: the next group sees it.
        let (theirs, _) = append(&conn, 1, "theirs", 110);
        recent.prepare(&conn, 50).unwrap();
        assert!(recent.holds(&conn, theirs, 1, "theirs", 50).unwrap());
        // A wider window loads what the first load left out.
        recent.prepare(&conn, 0).unwrap();
        assert!(recent.holds(&conn, old, 1, "old", 0).unwrap());
        assert_eq!(recent.len(), 3);
    }

    /// A panic while the index is held (as inside a group's commit) leaves it forgotten,
    /// to be loaded again, and every later lock works.
    #[test]
    fn an_index_a_panic_left_is_forgotten_not_a_panic_for_every_later_append() {
        let conn = log();
        let (kept, _) = append(&conn, 1, "kept", 10);
        let recent = Mutex::new(RecentIds::default());
        lock(&recent).prepare(&conn, 0).unwrap();
        let panicked = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _held = lock(&recent);
                    panic!("a group's commit failed part-way");
                })
                .join()
        });
        assert!(panicked.is_err() && recent.is_poisoned());
        let mut again = lock(&recent);
        assert_eq!(again.len(), 0, "forgotten");
        again.prepare(&conn, 0).unwrap();
        assert!(again.holds(&conn, kept, 1, "kept", 0).unwrap());
        drop(again);
        assert!(!recent.is_poisoned());
    }

    #[test]
    fn an_erased_row_is_no_longer_held_and_the_rest_of_the_map_stays() {
        let conn = log();
        let (gone, gone_seq) = append(&conn, 1, "gone", 10);
        let (kept, _) = append(&conn, 1, "kept", 10);
        let mut recent = RecentIds::default();
        recent.prepare(&conn, 0).unwrap();
        conn.execute("DELETE FROM events WHERE seq = ?1", [gone_seq])
            .unwrap();
        recent.erased(gone, gone_seq);
        assert!(!recent.holds(&conn, gone, 1, "gone", 0).unwrap());
        assert!(recent.holds(&conn, kept, 1, "kept", 0).unwrap());
        assert_eq!(recent.len(), 1);
        // Sent again after the erasure, it is stored and then held again.
        let (again, again_seq) = append(&conn, 1, "gone", 20);
        recent.record(again, again_seq);
        recent.erased(gone, gone_seq);
        assert!(recent.holds(&conn, again, 1, "gone", 0).unwrap());
    }

    /// Ids whose digests share their upper half (the row's fingerprint) are each found,
    /// and an id sharing it without being in the log is not.
    #[test]
    fn ids_sharing_a_fingerprint_are_each_confirmed_against_their_row() {
        let conn = log();
        let upper = 0x5EED_0000_0000_0000_u64 as i64;
        let mut recent = RecentIds::default();
        for (id, lower) in [("a", 1), ("b", 2)] {
            conn.execute(
                "INSERT INTO events (source_id, message_id, received_at, dedup_digest)
                 VALUES (1, ?1, 10, ?2)",
                params![id, upper | lower],
            )
            .unwrap();
            recent.record(upper | lower, conn.last_insert_rowid());
        }
        assert!(recent.holds(&conn, upper | 1, 1, "a", 0).unwrap());
        assert!(recent.holds(&conn, upper | 2, 1, "b", 0).unwrap());
        assert!(!recent.holds(&conn, upper | 3, 1, "c", 0).unwrap());
        recent.record(upper | 1, 1);
        assert_eq!(recent.len(), 2, "a row noted twice is held once");
    }

    proptest::proptest! {
        /// A row names its seq among the 2^32 up to the latest the writer has seen, across
        /// the wrap of the lower half.
        #[test]
        fn a_row_names_its_seq(
            digest: i64,
            through in 0_i64..1 << 40,
            back in 0_i64..1 << 32,
        ) {
            let seq = through - back;
            proptest::prop_assume!(seq >= 0);
            proptest::prop_assert_eq!(Rows::seq(Rows::row(digest, seq), through), seq);
        }
    }

    #[test]
    fn prunes_by_arrival_and_keeps_what_it_cannot_see() {
        let conn = log();
        append(&conn, 1, "a", 10);
        append(&conn, 1, "b", 20);
        let mut recent = RecentIds::default();
        recent.prepare(&conn, 0).unwrap();
        recent.record(12345, 99); // committed after the reader's snapshot
        let mut prune = |before| recent.prune(first_kept(&conn, before).unwrap(), before);
        assert_eq!(prune(15), 1);
        assert_eq!(prune(1_000), 1);
        assert_eq!(recent.len(), 1, "the unseen row stays");
        // The pruned range is loaded again if a window asks for it.
        recent.prepare(&conn, 0).unwrap();
        assert_eq!(recent.len(), 3);
    }
}
