//! The audit log: every change made through the API or the command line (and every lookup
//! of a person's profile), appended as a hash chain. The chain logic here is IO-free:
//! [`canonical_bytes`], [`seal`] and [`verify`]. Backends append through [`AuditLog`],
//! serialising appends (SQLite's write lock, a PostgreSQL advisory lock) so the chain stays
//! linear: each entry's `prev_hash` is the hash of the entry before it (64 zeros for the
//! first), its `hash` is SHA-256 over its canonical bytes, and ids run 1, 2, 3… without gaps.

use crate::{Result, StoreError};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::future::Future;
use tokio::sync::oneshot;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry to append: what the caller knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Who acted: `token:ID` (or the token's person), `cli` for the operator.
    pub actor: String,
    pub role: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// What was done, e.g. `destination.create`, `profile.read`.
    pub action: String,
    /// On what, e.g. the destination's name or the identifier looked up.
    pub target: String,
    /// JSON (secrets redacted), `null` when there was nothing before.
    pub before: String,
    /// JSON (secrets redacted), `null` when there is nothing after.
    pub after: String,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub role: String,
    pub at: i64,
    pub action: String,
    pub target: String,
    pub before: String,
    pub after: String,
    /// Hex SHA-256 of the previous entry (`GENESIS` for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this entry's canonical bytes.
    pub hash: String,
}

/// The bytes an entry's hash is taken over: a JSON array of every field but `hash`, in a
/// fixed order (serde_json writes strings and integers one way only).
pub fn canonical_bytes(entry: &AuditEntry) -> Vec<u8> {
    serde_json::to_vec(&(
        entry.id,
        &entry.actor,
        &entry.role,
        entry.at,
        &entry.action,
        &entry.target,
        &entry.before,
        &entry.after,
        &entry.prev_hash,
    ))
    .expect("a tuple of strings and integers serialises")
}

pub fn hash_of(entry: &AuditEntry) -> String {
    hex_lower(&Sha256::digest(canonical_bytes(entry)))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry that follows `last` (the chain's current end, `None` when it is empty).
pub fn seal(last: Option<(i64, &str)>, new: NewAuditEntry) -> AuditEntry {
    let (id, prev_hash) = match last {
        Some((id, hash)) => (id + 1, hash.to_string()),
        None => (1, GENESIS.to_string()),
    };
    let mut entry = AuditEntry {
        id,
        actor: new.actor,
        role: new.role,
        at: new.at,
        action: new.action,
        target: new.target,
        before: new.before,
        after: new.after,
        prev_hash,
        hash: String::new(),
    };
    entry.hash = hash_of(&entry);
    entry
}

/// Where a chain breaks: the first bad entry and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The id of the first bad entry as stored (or the id expected, for a gap).
    pub id: i64,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit entry {}: {}", self.id, self.reason)
    }
}

/// Checks a chain read in id order from its first entry: ids 1, 2, 3…, each `prev_hash`
/// the previous entry's hash, each `hash` its own. Returns the number of entries.
/// An edited, removed (but for the last), inserted or reordered entry breaks it; removing
/// the newest entries is seen only against a head recorded elsewhere (`audit verify`
/// prints it).
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Result<u64, Broken> {
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for (expected_id, entry) in (1..).zip(entries) {
        if entry.id != expected_id {
            return Err(Broken {
                id: entry.id,
                reason: format!("expected id {expected_id} (an entry removed, inserted or moved)"),
            });
        }
        if entry.prev_hash != prev {
            return Err(Broken {
                id: entry.id,
                reason: "its previous hash is not the hash of the entry before it".into(),
            });
        }
        if hash_of(entry) != entry.hash {
            return Err(Broken {
                id: entry.id,
                reason: "its content does not match its hash (edited)".into(),
            });
        }
        prev = entry.hash.clone();
        count += 1;
    }
    Ok(count)
}

/// When an append may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Once the entry is on disk: the record of a change survives a power loss.
    Synced,
    /// Once the entry is committed, without waiting for the disk: it survives the process
    /// dying (kill -9 included), not the machine losing power before its next flush. For
    /// reads (`profile.read`), audited at every lookup: waiting for a flush per lookup
    /// made a lookup's p99 an fsync queued behind the processors' commits (29 ms against
    /// 4 ms without it, `sightline-bench profiles`).
    Committed,
}

/// An entry waiting for its group's turn, with who is waiting for it.
type Waiting = (
    NewAuditEntry,
    Durability,
    oneshot::Sender<Result<AuditEntry>>,
);

/// Appends made at the same time share one transaction (group commit), which waits for the
/// disk if any of its entries asks to ([`Durability::Synced`]). Every lookup of a person
/// appends a `profile.read` entry; with a commit (an fsync, under the store's write lock)
/// per entry, a few thousand lookups a second held that lock long enough for the
/// processors' writes and the lookups themselves to time out on it.
#[derive(Default)]
pub(crate) struct Group {
    pending: std::sync::Mutex<Vec<Waiting>>,
    /// Held by the one caller committing; the next takes whatever queued meanwhile.
    committing: tokio::sync::Mutex<()>,
}

impl Group {
    /// Appends `entry` with whatever else is waiting: `commit` seals and stores entries in
    /// the order given, in one serialised transaction, as durable as the most demanding of
    /// them asks.
    pub async fn append<F, Fut>(
        &self,
        entry: NewAuditEntry,
        durability: Durability,
        commit: F,
    ) -> Result<AuditEntry>
    where
        F: FnOnce(Vec<NewAuditEntry>, Durability) -> Fut,
        Fut: Future<Output = Result<Vec<AuditEntry>>>,
    {
        let (reply, answer) = oneshot::channel();
        self.queue().push((entry, durability, reply));
        {
            let _turn = self.committing.lock().await;
            let waiting = std::mem::take(&mut *self.queue());
            // Empty when an earlier caller's turn took this entry along.
            if !waiting.is_empty() {
                let durability = if waiting.iter().any(|(_, d, _)| *d == Durability::Synced) {
                    Durability::Synced
                } else {
                    Durability::Committed
                };
                let (entries, replies): (Vec<_>, Vec<_>) =
                    waiting.into_iter().map(|(e, _, r)| (e, r)).unzip();
                match commit(entries, durability).await {
                    Ok(sealed) => {
                        for (reply, entry) in replies.into_iter().zip(sealed) {
                            let _ = reply.send(Ok(entry));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(StoreError::Commit(message.clone())));
                        }
                    }
                }
            }
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        // Nothing panics while holding it; a poisoned queue is still a valid Vec.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one entry after the current last one, in a serialised transaction that
    /// entries appended at the same time share; answers as `durability` says.
    async fn append_audit(
        &self,
        entry: NewAuditEntry,
        durability: Durability,
    ) -> Result<AuditEntry>;
    /// Entries with id > `after`, oldest first, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn new(n: i64) -> NewAuditEntry {
        NewAuditEntry {
            actor: format!("token:{n}"),
            role: "admin".into(),
            at: 1_700_000_000_000 + n,
            action: "destination.create".into(),
            target: format!("d{n}"),
            before: "null".into(),
            after: format!("{{\"n\":{n}}}"),
        }
    }

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let last = out.last().map(|e| (e.id, e.hash.as_str()));
            let entry = seal(last, new(i as i64));
            out.push(entry);
        }
        out
    }

    #[test]
    fn a_sealed_chain_verifies() {
        assert_eq!(verify(&chain(0)), Ok(0));
        let entries = chain(5);
        assert_eq!(entries[0].prev_hash, GENESIS);
        assert_eq!(entries[4].id, 5);
        assert_eq!(verify(&entries), Ok(5));
    }

    #[test]
    fn canonical_bytes_are_fixed() {
        let entry = seal(None, new(1));
        assert_eq!(
            String::from_utf8(canonical_bytes(&entry)).unwrap(),
            format!(
                "[1,\"token:1\",\"admin\",1700000000001,\"destination.create\",\"d1\",\"null\",\"{{\\\"n\\\":1}}\",\"{GENESIS}\"]"
            )
        );
        assert_eq!(entry.hash.len(), 64);
    }

    /// What a group's commit is asked for: a flush only when one of its entries needs it.
    async fn committed_as(durabilities: &[Durability]) -> Vec<Durability> {
        let group = std::sync::Arc::new(Group::default());
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        // Held, so that every append queues before the first commits: one group.
        let turn = group.committing.lock().await;
        let appends: Vec<_> = durabilities
            .iter()
            .enumerate()
            .map(|(n, &durability)| {
                let (group, asked) = (group.clone(), asked.clone());
                tokio::spawn(async move {
                    let commit = |entries: Vec<NewAuditEntry>, durability| {
                        asked.lock().unwrap().push(durability);
                        std::future::ready(Ok(entries.into_iter().map(|e| seal(None, e)).collect()))
                    };
                    group.append(new(n as i64), durability, commit).await
                })
            })
            .collect();
        while group.queue().len() < durabilities.len() {
            tokio::task::yield_now().await;
        }
        drop(turn);
        for append in appends {
            append.await.unwrap().unwrap();
        }
        let asked = asked.lock().unwrap().clone();
        asked
    }

    #[tokio::test]
    async fn a_group_is_flushed_when_one_of_its_entries_needs_it() {
        use Durability::*;
        assert_eq!(committed_as(&[Committed, Committed]).await, [Committed]);
        assert_eq!(
            committed_as(&[Committed, Synced, Committed]).await,
            [Synced]
        );
        assert_eq!(committed_as(&[Synced]).await, [Synced]);
    }

    #[test]
    fn an_edit_names_the_entry() {
        let mut entries = chain(3);
        entries[1].after = "{\"n\":9}".into();
        let broken = verify(&entries).unwrap_err();
        assert_eq!(broken.id, 2);
        assert!(broken.to_string().contains("audit entry 2"));
    }

    fn edit(entry: &mut AuditEntry, field: usize) {
        match field {
            0 => entry.id += 7,
            1 => entry.actor.push('x'),
            2 => entry.role.push('x'),
            3 => entry.at += 1,
            4 => entry.action.push('x'),
            5 => entry.target.push('x'),
            6 => entry.before.push(' '),
            7 => entry.after.push(' '),
            8 => entry.prev_hash.replace_range(0..1, "f"),
            _ => entry.hash.replace_range(0..1, "f"),
        }
    }

    proptest! {
        #[test]
        fn any_single_field_edit_is_detected(len in 1usize..12, at in 0usize..12, field in 0usize..10) {
            let mut entries = chain(len);
            let at = at % len;
            let before = entries[at].clone();
            edit(&mut entries[at], field);
            prop_assume!(entries[at] != before);
            let broken = verify(&entries).unwrap_err();
            // The edited entry or, for an edited hash, the one after it.
            prop_assert!(broken.id == entries[at].id || broken.id == before.id + 1);
        }

        #[test]
        fn a_deletion_is_detected(len in 2usize..12, at in 0usize..12) {
            let mut entries = chain(len);
            let at = at % (len - 1); // removing the newest is seen only against the head
            entries.remove(at);
            prop_assert!(verify(&entries).is_err());
        }

        #[test]
        fn a_swap_is_detected(len in 2usize..12, a in 0usize..12, b in 0usize..12) {
            let mut entries = chain(len);
            let (a, b) = (a % len, b % len);
            prop_assume!(a != b);
            entries.swap(a, b);
            prop_assert!(verify(&entries).is_err());
        }

        #[test]
        fn an_insertion_is_detected(len in 1usize..12, at in 0usize..12) {
            let mut entries = chain(len);
            let at = at % len;
            // A forged entry sealed onto the one before it.
            let last = if at == 0 { None } else { Some((entries[at - 1].id, entries[at - 1].hash.as_str())) };
            let forged = seal(last, new(99));
            entries.insert(at, forged);
            prop_assert!(verify(&entries).is_err());
        }
    }
}
