//! Storage by role, two real backends: a trait per concern ([`EventLog`], [`Access`],
//! [`Checkpoints`], [`Definitions`], [`Destinations`], [`ProfileStore`], [`LinkReviews`],
//! [`Flows`], [`Governance`], [`TrackingPlans`], [`AuditLog`], [`Erasure`]) and [`Store`], every role at once. The event log is append-only: every
//! accepted event gets a sequence number that only grows, in commit order, so that
//! processors can consume the log from a checkpoint. Appends are grouped: concurrent
//! requests share one transaction (group commit), and each request's events are stored all
//! or none.
//!
//! The PostgreSQL backend is behind the `postgres` feature (on by default); without it
//! the store is SQLite only.

mod audit;
mod cluster;
mod erase;
mod flows;
mod govern;
mod group;
#[cfg(feature = "jetstream")]
mod jetstream;
mod log;
mod log_settings;
mod plans;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use async_trait::async_trait;
use sightline_core::{
    AudienceDefinition, Delivery, DeliveryStatus, DeniedCount, Destination, NewDestination,
    NewEvent, ProfileRows, ProfileSave, ProfilesState, Role, Source, StoredEvent, StoredProfile,
    Token, TraitDefinition,
};
use sightline_core::{LinkReview, NewLinkReview, ReviewStatus};
use std::path::Path;
use std::sync::Arc;

pub use audit::{
    canonical_bytes, seal, verify as verify_audit_chain, AuditEntry, AuditLog,
    Broken as BrokenChain, Durability, NewAuditEntry, GENESIS as AUDIT_GENESIS,
};
pub use cluster::{Cluster, ClusterRows, LeaseRow, NodeRow};
pub use erase::{
    DeletionRequest, Erased, ErasedCounts, Erasure, ErasureTarget, ERASED_TABLES, LINK_REVIEWS,
};
pub use flows::{DestinationConfig, FlowLogRow, FlowRow, Flows};
pub use govern::{
    Governance, NewTagLogEntry, RecordKind, RecordWrite, ScanRow, StoredRecord, TagLogRow,
    SCREENSHOT_SCANS_KEPT,
};
pub use log_settings::{LogInfo, LogSettings};
pub use plans::{
    PlanAssignment, SourceViolations, StoredPlan, TrackingPlans, ViolationCount, ViolationDelta,
    ViolationSample,
};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("the commit failed: {0}")]
    Commit(String),
    #[error("a storage worker failed: {0}")]
    Worker(String),
    #[error("cannot open the store: {0}")]
    Open(String),
    /// A stored row Sightline cannot read as it was written (an unreadable event, a role or
    /// status it does not know): refused, never read as some default.
    #[error("a stored row cannot be read: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What became of one event handed to [`EventLog::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this sequence number.
    Stored(i64),
    /// Its (source, messageId) was seen within the dedup window: acknowledged, not stored.
    Duplicate,
}

/// The event log: appends (grouped, deduplicated) and reads by seq. What collection and
/// every processor that follows the log need.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends one request's events atomically and durably; returns once committed.
    /// An event whose (source, messageId) was stored at or after `dedup_since` (ms) is a
    /// duplicate; an older one starts a new window.
    async fn append(&self, events: Vec<NewEvent>, dedup_since: i64) -> Result<Vec<Appended>>;
    /// Events with `seq > after`, oldest first.
    async fn read_events(
        &self,
        after: i64,
        limit: usize,
        source_id: Option<i64>,
    ) -> Result<Vec<StoredEvent>>;
    /// The highest sequence number in the log (0 when empty).
    async fn last_seq(&self) -> Result<i64>;
    /// Cheap check that the store answers.
    async fn ping(&self) -> Result<()>;
    /// Forgets dedup entries older than `before` (ms); returns how many.
    async fn prune_dedup(&self, before: i64) -> Result<u64>;
    /// The JetStream stream holding the log; `None` when the log is in the store itself.
    async fn stream_info(&self) -> Result<Option<LogInfo>> {
        Ok(None)
    }
}

/// Who may write to the log and who may act: sources with their write keys, and API
/// tokens with their roles.
#[async_trait]
pub trait Access: Send + Sync {
    /// True when the store has neither sources nor tokens: a first start.
    async fn is_empty(&self) -> Result<bool>;
    async fn create_source(&self, name: &str, key_hash: &str) -> Result<Source>;
    async fn list_sources(&self) -> Result<Vec<Source>>;
    async fn source_by_name(&self, name: &str) -> Result<Option<Source>>;
    /// The source whose write key hashes to `key_hash` and has not expired at `now`.
    async fn source_for_key(&self, key_hash: &str, now: i64) -> Result<Option<Source>>;
    /// Adds a new key to the source; its current keys stay valid until `old_valid_until`.
    async fn rotate_key(&self, source_id: i64, key_hash: &str, old_valid_until: i64) -> Result<()>;
    async fn create_token(&self, role: Role, token_hash: &str) -> Result<Token>;
    async fn token_for_hash(&self, token_hash: &str) -> Result<Option<Token>>;
    /// Keeps a console session (and removes those expired), so that every node behind a
    /// load balancer and a restarted one know it.
    async fn start_session(&self, session: ConsoleSession) -> Result<()>;
    /// The session whose id hashes to `id_hash`, unless it expired by `now`.
    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<ConsoleSession>>;
    async fn end_session(&self, id_hash: &str) -> Result<()>;
}

/// A signed-in console session, kept by the hash of its id (the cookie's value is never
/// stored) with the hash of the API token it signed in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub token_hash: String,
    /// The secret every form of the session posts back.
    pub csrf: String,
    /// When it ends (ms).
    pub expires_at: i64,
}

/// Processors' positions in the log, by processor name (the interface that maps onto a
/// JetStream durable consumer).
#[async_trait]
pub trait Checkpoints: Send + Sync {
    /// A processor's position in the log (0 when it never committed one).
    async fn checkpoint(&self, processor: &str) -> Result<i64>;
    async fn set_checkpoint(&self, processor: &str, seq: i64) -> Result<()>;
}

/// Audience and computed trait definitions, and the audiences' stored enter and exit
/// history.
#[async_trait]
pub trait Definitions: Send + Sync {
    /// A [`StoreError::Conflict`] when the name is taken.
    /// Stores an audience definition; a taken name is a `Conflict`.
    async fn create_audience(
        &self,
        name: &str,
        rule: &str,
        sync: &[String],
    ) -> Result<AudienceDefinition>;
    async fn list_audiences(&self) -> Result<Vec<AudienceDefinition>>;
    /// Stores a computed trait definition (JSON); a taken name is a `Conflict`.
    async fn create_trait(&self, name: &str, definition: &str) -> Result<TraitDefinition>;
    async fn list_traits(&self) -> Result<Vec<TraitDefinition>>;
    /// An audience's stored enter and exit records with `id > after`, oldest first, as
    /// `(id, JSON)`.
    async fn audience_history(
        &self,
        audience: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>>;
}

/// Destinations and their delivery log (the latest outcome per event), committed with a
/// delivery processor's checkpoint.
#[async_trait]
pub trait Destinations: Send + Sync {
    async fn create_destination(&self, destination: NewDestination) -> Result<Destination>;
    async fn list_destinations(&self) -> Result<Vec<Destination>>;
    async fn destination_by_name(&self, name: &str) -> Result<Option<Destination>>;
    /// Pauses (true) or resumes delivery to a destination.
    async fn set_destination_disabled(&self, id: i64, disabled: bool) -> Result<()>;
    /// Replaces a destination's secret (a vendor type's credential).
    async fn set_destination_secret(&self, id: i64, secret: &str) -> Result<()>;
    /// Removes a destination with its delivery log and its delivery and sync checkpoints,
    /// in one transaction.
    async fn delete_destination(&self, id: i64) -> Result<()>;
    /// Records outcomes (at most one per (destination, seq) in a call), each replacing any
    /// earlier one for its (destination, seq), and in the same transaction moves
    /// `checkpoint` (processor, seq) forward when one is given (never back: one moved past
    /// it meanwhile stays).
    async fn record_deliveries(
        &self,
        deliveries: Vec<Delivery>,
        checkpoint: Option<(String, i64)>,
    ) -> Result<()>;
    /// A destination's delivery log with `seq > after`, oldest first.
    async fn deliveries(
        &self,
        destination_id: i64,
        status: Option<DeliveryStatus>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>>;
}

/// The profiles processor's stored state: profiles, identifiers, timelines, audience and
/// trait states, merges, consent counts, saved a page at a time with its position.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Where the stored profiles stand; `None` before the first save.
    async fn profiles_state(&self) -> Result<Option<ProfilesState>>;
    /// Applies one save atomically. A save on top of a state other than its `base_seq`
    /// (or its rules) is a `Conflict` and changes nothing.
    async fn save_profiles(&self, save: ProfileSave) -> Result<()>;
    /// Every stored profile row and the state they stand at, read consistently (`None` on a
    /// store that has never saved profiles): what a start restores instead of replaying.
    async fn load_profiles(&self) -> Result<Option<(ProfilesState, ProfileRows)>>;
    /// Counts of events without analytics consent on days `from..=to` (`YYYY-MM-DD`).
    async fn consent_denied_counts(&self, from: &str, to: &str) -> Result<Vec<DeniedCount>>;
    /// The stored profile holding an identifier (type and normalised value).
    async fn stored_profile(&self, id_type: &str, value: &str) -> Result<Option<StoredProfile>> {
        let identifier = (id_type.to_string(), value.to_string());
        Ok(self
            .stored_profiles(vec![identifier])
            .await?
            .pop()
            .flatten())
    }
    /// The stored profile holding each identifier (type and normalised value), in order,
    /// read at once: what delivery's consent gate asks for a page of events.
    async fn stored_profiles(
        &self,
        identifiers: Vec<(String, String)>,
    ) -> Result<Vec<Option<StoredProfile>>>;
    /// The stored profile a profile id now belongs to (itself, or the survivor of the
    /// merges that retired it).
    async fn stored_profile_by_id(&self, id: i64) -> Result<Option<StoredProfile>>;
    /// Up to `limit` members of an audience with a profile id above `after`, in id order.
    async fn audience_members(
        &self,
        audience: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredProfile>>;
    /// How many members each audience with any has, by name.
    async fn audience_sizes(&self) -> Result<Vec<(String, i64)>>;
    /// The stored rows of the live profiles holding any of `identifiers` (`(type, value)`)
    /// or with an id in `ids`: documents, every identifier each holds, and states, read
    /// consistently: what the profiles processor loads into its working set.
    async fn working_set(
        &self,
        identifiers: Vec<(String, String)>,
        ids: Vec<i64>,
    ) -> Result<ProfileRows>;
    /// Up to `limit` membership timers due at or before `through`, earliest first:
    /// `(audience, profile, due_at)`.
    async fn due_timers(&self, through: i64, limit: usize) -> Result<Vec<(String, i64, i64)>>;
    /// A stored profile's events with `seq < before`, newest first.
    async fn stored_profile_events(
        &self,
        profile: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;
}

/// Record linkage: the clerical review queue (migration 9, `link_reviews`).
#[async_trait]
pub trait LinkReviews: Send + Sync {
    /// Queues pairs for clerical review in one transaction. A pair already queued, in
    /// either order and whatever its status, is not queued again (a rejected pair stays
    /// rejected across imports). Returns, aligned with `reviews`, each new item's id or
    /// `None` for a pair skipped.
    async fn add_link_reviews(&self, reviews: Vec<NewLinkReview>) -> Result<Vec<Option<i64>>>;
    /// Review items with `id > after`, oldest first; only those in `status` when given.
    async fn link_reviews(
        &self,
        status: Option<ReviewStatus>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LinkReview>>;
    async fn link_review(&self, id: i64) -> Result<Option<LinkReview>>;
    /// Decides a pending item (accepted with the seq of the link event appended, or
    /// rejected). `NotFound` for an unknown id, `Conflict` when it was already decided.
    async fn decide_link_review(
        &self,
        id: i64,
        status: ReviewStatus,
        seq: Option<i64>,
    ) -> Result<LinkReview>;
}

/// Every role at once: what a backend is, and what a consumer takes when it truly needs
/// everything (the server's wiring, the command line). A consumer that needs one or two
/// roles takes those (`&dyn EventLog`, `Arc<dyn Destinations>`); a `&dyn Store` coerces to
/// any of them. Implemented for every type that implements all the roles.
pub trait Store:
    EventLog
    + Access
    + Checkpoints
    + Definitions
    + Destinations
    + Flows
    + ProfileStore
    + LinkReviews
    + Governance
    + TrackingPlans
    + AuditLog
    + Erasure
    + Cluster
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: EventLog
        + Access
        + Checkpoints
        + Definitions
        + Destinations
        + Flows
        + ProfileStore
        + LinkReviews
        + Governance
        + TrackingPlans
        + AuditLog
        + Erasure
        + Cluster
        + Send
        + Sync
        + 'static
{
}

pub use reviews::review_undecidable;

/// Review queue helpers both backends share.
mod reviews {
    use crate::StoreError;
    use sightline_core::{LinkReview, ReviewStatus};

    /// The unique key of an unordered pair.
    pub fn pair_key(left: &str, right: &str) -> String {
        let (a, b) = if left <= right {
            (left, right)
        } else {
            (right, left)
        };
        format!("{a}\n{b}")
    }

    pub fn status(text: &str) -> Result<ReviewStatus, StoreError> {
        crate::columns::known("review status", text, ReviewStatus::parse(text))
    }

    /// Why an item cannot be decided: unknown, or decided already.
    pub fn review_undecidable(id: i64, found: Option<&LinkReview>) -> StoreError {
        match found {
            None => StoreError::NotFound(format!(
                "no review item {id}: `sightline link review list` shows them"
            )),
            Some(item) => StoreError::Conflict(format!(
                "review item {id} was already {}",
                item.status.as_str()
            )),
        }
    }
}

/// How many merges a walk from a retired profile id to its survivor follows at most.
const MAX_MERGE_CHAIN: usize = 1_000;

/// Why a save may not go on top of the stored profiles: another process rewrote them since
/// its base, or an erasure removed profiles since it was read (`stored_erasures`).
fn profiles_moved(
    stored: Option<&ProfilesState>,
    stored_erasures: i64,
    save: &ProfileSave,
) -> Option<StoreError> {
    if stored_erasures != save.profile_erasures {
        return Some(StoreError::Conflict(format!(
            "an erasure removed stored profiles after these were read ({} erasures, not {}): they are read again from the store",
            stored_erasures, save.profile_erasures
        )));
    }
    let matches = match stored {
        None => save.base_seq == 0,
        Some(state) => state.seq == save.base_seq && state.rules == save.state.rules,
    };
    (!save.replace && !matches).then(|| {
        StoreError::Conflict(format!(
            "the stored profiles are no longer at seq {} under these rules: another process rewrote them",
            save.base_seq
        ))
    })
}

/// Destination and delivery columns that both backends store the same way.
mod columns {
    use sightline_core::{DeliveryStatus, DestinationKind};

    /// Lists are kept as JSON arrays in one text column.
    pub fn list(items: &[String]) -> String {
        serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
    }

    pub fn parse_list(text: &str) -> Vec<String> {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// A JSON object kept in one text column (`{}` when absent or unreadable).
    pub fn parse_object(text: &str) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}))
    }

    /// A value of a closed set, or `Corrupt` naming what and the text: an unknown role must
    /// not read as `marketing`, nor an unknown status as `dead`.
    pub fn known<T>(what: &str, text: &str, parsed: Option<T>) -> Result<T, crate::StoreError> {
        parsed.ok_or_else(|| {
            crate::StoreError::Corrupt(format!(
                "stored {what} {text:?} is not one this version knows"
            ))
        })
    }

    pub fn kind(text: &str) -> Result<DestinationKind, crate::StoreError> {
        known("destination type", text, DestinationKind::parse(text))
    }

    pub fn status(text: &str) -> Result<DeliveryStatus, crate::StoreError> {
        known("delivery status", text, DeliveryStatus::parse(text))
    }

    pub fn role(text: &str) -> Result<sightline_core::Role, crate::StoreError> {
        known("token role", text, sightline_core::Role::parse(text))
    }

    pub fn trait_conflict(name: &str) -> crate::StoreError {
        crate::StoreError::Conflict(format!(
            "a computed trait named {name:?} already exists: pick another name"
        ))
    }

    pub fn conflict(name: &str) -> crate::StoreError {
        crate::StoreError::Conflict(format!(
            "a destination named {name:?} already exists: pick another name"
        ))
    }
}

/// Opens the store a command line or config names: PostgreSQL when a `postgres://` URL
/// is given, else SQLite in `data_dir`. Migrations are applied before it returns.
/// A build without the `postgres` feature refuses a PostgreSQL URL with a
/// [`StoreError::Open`] that says so.
pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Arc<dyn Store>> {
    open_with_log(data_dir, database_url, None).await
}

/// [`open`], with the event log on JetStream when `log` is given (state in PostgreSQL).
pub async fn open_with_log(
    data_dir: &Path,
    database_url: Option<&str>,
    log: Option<&LogSettings>,
) -> Result<Arc<dyn Store>> {
    match (database_url, log) {
        #[cfg(feature = "jetstream")]
        (Some(url), Some(log)) if is_postgres_url(url) => {
            Ok(Arc::new(PostgresStore::connect_with_log(url, log).await?))
        }
        (None, Some(log)) => Err(StoreError::Open(format!(
            "the event log on JetStream ({}) keeps the rest of the state in PostgreSQL, which \
             every node shares: give --database-url postgres://user@host:port/db as well",
            redact_url(&log.url)
        ))),
        #[cfg(not(feature = "jetstream"))]
        (_, Some(_)) => Err(StoreError::Open(
            "this build of Sightline has no JetStream support: rebuild it with the `cluster` \
             feature (on by default), or omit --log-url to keep the log in the store"
                .into(),
        )),
        #[cfg(feature = "postgres")]
        (Some(url), None) if is_postgres_url(url) => {
            Ok(Arc::new(PostgresStore::connect(url).await?))
        }
        #[cfg(not(feature = "postgres"))]
        (Some(url), _) if is_postgres_url(url) => Err(StoreError::Open(format!(
            "{:?} names a PostgreSQL database, but this build of Sightline has no PostgreSQL \
             support: rebuild it with the `postgres` feature (on by default), or omit \
             --database-url to use SQLite in the data directory",
            redact_url(url)
        ))),
        (Some(url), _) => Err(StoreError::Open(format!(
            "unsupported database URL {:?}: use postgres://user@host:port/db, or omit it for SQLite in the data directory",
            redact_url(url)
        ))),
        (None, None) => Ok(Arc::new(SqliteStore::open(data_dir).await?)),
    }
}

/// A store migrated by a newer Sightline than this one: refused, never written with an
/// older idea of its tables (another node, or the last start, ran a newer version).
fn newer_schema(stored: usize, known: usize) -> StoreError {
    StoreError::Open(format!(
        "the store's schema is at version {stored}, newer than this Sightline {} knows ({known}): \
         run the version the other nodes run (or the one that last opened this store)",
        env!("CARGO_PKG_VERSION")
    ))
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A URL fit for logs: any password replaced by `***`, in each of a comma-separated list
/// (the servers of a NATS cluster, the hosts of a PostgreSQL URL).
pub fn redact_url(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// How many requests' appends may wait for the writer before callers are held back.
const WRITE_QUEUE_REQUESTS: usize = 4096;
/// A group commit stops taking more requests once it holds this many events.
const GROUP_COMMIT_MAX_EVENTS: usize = 20_000;

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("mysql://h"), "mysql://h");
        assert_eq!(
            redact_url("nats://u:p@a:4222,nats://v:q@b:4222"),
            "nats://u:***@a:4222,nats://v:***@b:4222"
        );
    }

    /// Only in a build without the `postgres` feature (`--no-default-features`).
    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn a_postgres_url_without_the_feature_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = match super::open(dir.path(), Some("postgres://u:secret@h:5432/db")).await {
            Err(err) => err,
            Ok(_) => panic!("a build without the postgres feature opened a PostgreSQL URL"),
        };
        assert!(matches!(err, super::StoreError::Open(_)), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("no PostgreSQL support"), "{message}");
        assert!(message.contains("`postgres` feature"), "{message}");
        assert!(message.contains("omit --database-url"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        // SQLite still opens.
        super::open(dir.path(), None).await.unwrap();
    }
}
