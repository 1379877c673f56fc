//! Storage of the governance registry (stored scans, journeys, tags and their change log,
//! the findings backlog, vendor risk, governance metrics). A trait of its own, which [`crate::Store`] requires,
//! so that every store is also a registry and the two evolve apart.
//!
//! Registry records are JSON documents (`sightline-govern`'s types) in one table per kind,
//! each under a unique key and a version that every write must name: a write based on a
//! version that has moved is a `Conflict` and changes nothing, so two writers never lose
//! each other's changes. Tags change only together with an entry in their change log, and
//! that log is append-only: the trait has no path that edits or removes an entry, and both
//! backends refuse `UPDATE` and `DELETE` on it (and `DELETE` on tags) with triggers.

use crate::Result;
use async_trait::async_trait;

/// The registry's record tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Journey,
    Tag,
    Backlog,
    VendorRisk,
    Metric,
    Schedule,
}

impl RecordKind {
    /// The table; a fixed name, never user input.
    pub(crate) fn table(self) -> &'static str {
        match self {
            RecordKind::Journey => "gov_journeys",
            RecordKind::Tag => "gov_tags",
            RecordKind::Backlog => "gov_backlog",
            RecordKind::VendorRisk => "gov_vendors",
            RecordKind::Metric => "gov_metrics",
            RecordKind::Schedule => "gov_schedules",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            RecordKind::Journey => "journey",
            RecordKind::Tag => "tag",
            RecordKind::Backlog => "backlog item",
            RecordKind::VendorRisk => "vendor risk record",
            RecordKind::Metric => "metric record",
            RecordKind::Schedule => "scan schedule",
        }
    }
}

/// A stored scan report (the report itself is read by id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanRow {
    pub id: i64,
    pub journey: String,
    /// When it was stored (ms).
    pub at: i64,
    /// What `scan list` shows without reading the report (JSON object).
    pub summary: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub id: i64,
    pub key: String,
    /// 1 when created, one more with every update.
    pub version: i64,
    pub doc: String,
    pub updated_at: i64,
}

/// One record to write: created when `version` is `None` (a taken key is a `Conflict`),
/// else the record under `key` updated if it still is at `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    pub key: String,
    pub version: Option<i64>,
    pub doc: String,
}

/// An entry of the tag change log as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagLogRow {
    pub id: i64,
    pub tag_id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    /// The whole entry as JSON (`sightline_govern::ChangeEntry`).
    pub entry: String,
}

/// What [`Governance::write_tag`] appends beside the tag's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTagLogEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub entry: String,
}

/// How many of a journey's latest scans keep their screenshots: a scheduled scan takes a
/// few megabytes of them, so older ones go (their reports stay).
pub const SCREENSHOT_SCANS_KEPT: i64 = 20;

#[async_trait]
pub trait Governance: Send + Sync {
    /// Stores a scan report (JSON text) with its summary and its screenshots (PNGs by their
    /// path relative to the report, as the report names them); returns its row. Only a
    /// journey's last [`SCREENSHOT_SCANS_KEPT`] scans keep their screenshots.
    async fn save_scan(
        &self,
        journey: &str,
        summary: &serde_json::Value,
        report: &str,
        screenshots: &[(String, Vec<u8>)],
    ) -> Result<ScanRow>;
    /// A stored scan's screenshot by the path its report names.
    async fn scan_screenshot(&self, id: i64, path: &str) -> Result<Option<Vec<u8>>>;
    /// The paths of the screenshots a stored scan keeps (none once it is past the last
    /// [`SCREENSHOT_SCANS_KEPT`] of its journey).
    async fn scan_screenshot_paths(&self, id: i64) -> Result<Vec<String>>;
    /// Stored scans, oldest first; only one journey's when named.
    async fn scans(&self, journey: Option<&str>) -> Result<Vec<ScanRow>>;
    /// One stored scan's row, without its report.
    async fn scan(&self, id: i64) -> Result<Option<ScanRow>>;
    /// A stored scan's report (JSON text).
    async fn scan_report(&self, id: i64) -> Result<Option<String>>;

    /// Every record of a kind, by id.
    async fn records(&self, kind: RecordKind) -> Result<Vec<StoredRecord>>;
    async fn record(&self, kind: RecordKind, key: &str) -> Result<Option<StoredRecord>>;
    async fn record_by_id(&self, kind: RecordKind, id: i64) -> Result<Option<StoredRecord>>;
    /// Applies every write in one transaction, or none: a taken key, a moved version or
    /// a missing record fails the whole call. Tags are refused here ([`Self::write_tag`]).
    async fn write_records(
        &self,
        kind: RecordKind,
        writes: Vec<RecordWrite>,
    ) -> Result<Vec<StoredRecord>>;
    /// Removes a record still at `version`. Tags are never removed (they are retired).
    async fn delete_record(&self, kind: RecordKind, id: i64, version: i64) -> Result<()>;

    /// Names the person a token belongs to (the actor the registry records and compares
    /// for self-approval); replaces an earlier name.
    async fn set_token_name(&self, token_id: i64, name: &str) -> Result<()>;
    async fn token_name(&self, token_id: i64) -> Result<Option<String>>;

    /// Writes a tag and appends its change-log entry in one transaction.
    async fn write_tag(&self, write: RecordWrite, entry: NewTagLogEntry) -> Result<StoredRecord>;
    /// Change-log entries with `id > after`, oldest first; only one tag's when given.
    async fn tag_log(
        &self,
        tag_id: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<TagLogRow>>;
}

/// Messages both backends give for refused writes.
pub(crate) mod refuse {
    use super::RecordKind;
    use crate::StoreError;

    pub fn taken(kind: RecordKind, key: &str) -> StoreError {
        StoreError::Conflict(format!("a {} {key:?} already exists", kind.noun()))
    }

    pub fn moved(kind: RecordKind, key: &str, version: i64) -> StoreError {
        StoreError::Conflict(format!(
            "the {} {key:?} changed since version {version} was read: read it again and retry",
            kind.noun()
        ))
    }

    pub fn missing_key(kind: RecordKind, key: &str) -> StoreError {
        StoreError::NotFound(format!("no {} {key:?}", kind.noun()))
    }

    pub fn missing_id(kind: RecordKind, id: i64) -> StoreError {
        StoreError::NotFound(format!("no {} with id {id}", kind.noun()))
    }

    pub fn tags_need_the_log() -> StoreError {
        StoreError::Conflict(
            "tags change only with an entry in their change log, and are never removed".into(),
        )
    }
}
