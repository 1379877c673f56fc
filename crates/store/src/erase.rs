//! Erasure (GDPR article 17): the role that removes one person's events from the log and
//! every derived row about them, and keeps what erasure needs afterwards: the server-held
//! secret that keys the suppression list and signs receipts, the receipts, and the
//! suppression list (keyed hashes of erased identifiers, never the identifiers).
//!
//! What belongs to the person is decided above the store (crates/service/src/erase.rs):
//! the store is handed profile ids, identifiers and event seqs, and deletes exactly the rows
//! that name them, in one transaction per database. A checkpoint is a seq and stays valid:
//! rows below it may go, seqs are never reused.

use async_trait::async_trait;
use std::collections::BTreeMap;

use crate::Result;

/// Whom to erase, as the rows name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureTarget {
    /// The live profile id and every id merged into it.
    pub profiles: Vec<i64>,
    /// `(type, normalised value)` of every identifier they hold.
    pub identifiers: Vec<(String, String)>,
    /// The seqs of their events in the log (with the deliveries of those events).
    pub seqs: Vec<i64>,
    /// `(profile id, seq)`: timeline and consent entries of profiles that are not erased
    /// (retention removes some events of a profile that stays). The erased profiles' own
    /// entries go by their ids: a merge moves a retired profile's entries to the survivor,
    /// so those ids hold every entry of their events.
    pub kept_profile_events: Vec<(i64, i64)>,
}

impl ErasureTarget {
    /// Adds seqs to erase (kept sorted, each once).
    pub fn add_seqs(&mut self, seqs: impl IntoIterator<Item = i64>) {
        self.seqs.extend(seqs);
        self.seqs.sort_unstable();
        self.seqs.dedup();
    }

    /// The identifiers as review items name them (`type:value`).
    pub fn identifier_names(&self) -> Vec<String> {
        self.identifiers
            .iter()
            .map(|(t, v)| format!("{t}:{v}"))
            .collect()
    }

    /// The profile ids as audience history records name them (text).
    pub fn profile_names(&self) -> Vec<String> {
        self.profiles.iter().map(i64::to_string).collect()
    }
}

/// A deletion request an erasure could not get answered in time, kept until it is: the
/// destination (by name), the body sent, how often it was tried, when next, and the last
/// outcome (JSON). `status` is `queued` until it ends `accepted`, `refused`, `failed` or
/// `gone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionRequest {
    pub erasure_id: String,
    pub destination: String,
    pub body: String,
    pub attempts: i64,
    pub next_at: i64,
    pub status: String,
    pub outcome: String,
}

/// Rows deleted, by table.
pub type ErasedCounts = BTreeMap<String, u64>;

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub counts: ErasedCounts,
    /// [`Erasure::profile_erasures`] after it (counting it when it removed profiles).
    pub profile_erasures: i64,
}

/// The tables an erasure deletes from, in the order counts are reported.
pub const ERASED_TABLES: [&str; 12] = [
    "events",
    "dedup",
    "profiles",
    "profile_identifiers",
    "profile_events",
    "profile_states",
    "profile_merges",
    "consent_changes",
    "audience_members",
    "profile_timers",
    "audience_changes",
    "deliveries",
];

/// Also counted: `link_reviews`.
pub const LINK_REVIEWS: &str = "link_reviews";

/// Erasure of one person, and what it keeps afterwards.
#[async_trait]
pub trait Erasure: Send + Sync {
    /// Deletes the target's events from the log and every derived row naming its profile
    /// ids, identifiers or seqs; returns the rows deleted per table. The events on the
    /// profiles' timelines as stored when the deletes run are erased too, whether or not
    /// the target lists them (a save from another node may land between the reading of
    /// the target and its erasure). SQLite: freed cells are zeroed (`secure_delete`) and
    /// both write-ahead logs are checkpointed and truncated, so no copy of the rows remains
    /// in the files. PostgreSQL: no live row holds them.
    async fn erase(&self, target: ErasureTarget) -> Result<Erased>;
    /// How many erasures have removed stored profiles. A profiles processor saves only on
    /// top of the count it read them under (`ProfileSave::erasures`): after an erasure by
    /// another node or process, it reads them again rather than write the person back.
    async fn profile_erasures(&self) -> Result<i64>;
    /// The server-held privacy secret, made on first use: it keys the suppression
    /// list's hashes and signs receipts.
    async fn privacy_secret(&self) -> Result<String>;
    /// Stores an erasure's receipt (JSON) under its id.
    async fn save_erasure(&self, id: &str, at: i64, receipt: &str) -> Result<()>;
    /// An erasure's receipt by id.
    async fn erasure(&self, id: &str) -> Result<Option<String>>;
    /// The receipts of the latest erasures, newest first, at most `limit`.
    async fn erasures(&self, limit: usize) -> Result<Vec<String>>;
    /// Adds `(keyed hash, mode)` entries to the suppression list (a hash already listed
    /// takes the new mode).
    async fn suppress(&self, entries: Vec<(String, String)>) -> Result<()>;
    /// The whole suppression list, `(keyed hash, mode)`.
    async fn suppressed(&self) -> Result<Vec<(String, String)>>;
    /// Records that `node`'s collector has a suppression list of `entries` entries in force,
    /// now by the store's clock; forgets nodes not heard of for [`FORGET_SUPPRESSION`].
    async fn suppression_in_force(&self, node: &str, entries: i64) -> Result<()>;
    /// Forgets `node`'s record: its collector has stopped (a clean stop), and no erasure
    /// waits for it.
    async fn forget_suppression_node(&self, node: &str) -> Result<()>;
    /// The store's clock now, and each node's last record: `(node, entries, seen_at)`.
    async fn suppression_nodes(&self) -> Result<(i64, Vec<(String, i64, i64)>)>;
    /// Stores a deletion request as it now stands (new, or after an attempt).
    async fn save_deletion_request(&self, request: &DeletionRequest) -> Result<()>;
    /// Queued deletion requests due at `now`, the longest due first, at most `limit`.
    async fn due_deletion_requests(&self, now: i64, limit: usize) -> Result<Vec<DeletionRequest>>;
    /// An erasure's kept deletion requests, by destination.
    async fn deletion_requests(&self, erasure_id: &str) -> Result<Vec<DeletionRequest>>;
}

/// How long a node's record of its suppression list is kept after it was last heard of.
pub const FORGET_SUPPRESSION: i64 = 3_600_000;

/// A new privacy secret: 64 random alphanumeric characters.
pub(crate) fn new_secret() -> String {
    sightline_core::secret::generate("", 64)
}
