//! Storage of destinations' governance (`sightline_govern::flow`): each destination's
//! record (the revision proposed and the configuration approved, as JSON) and the
//! destination change log. A role of its own, which [`crate::Store`] requires.
//!
//! The configuration in force is the destination's own row (`Destinations`), which is
//! what delivery and audience sync read; it changes only together with the record and an
//! entry in the log ([`Flows::write_flow`] with `apply`), and a destination created
//! without approval (`approved` false) is delivered nothing. The log is append-only: the
//! trait has no path that edits or removes an entry, and both backends refuse `UPDATE`
//! and `DELETE` on it with triggers. Removing a destination removes its record, not its
//! log.

use crate::{NewTagLogEntry, Result};
use async_trait::async_trait;
use sightline_core::{Destination, DestinationKind, NewDestination};

/// A destination's configuration as an approval puts it in force (its row's columns but
/// the name, secret and state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationConfig {
    pub kind: DestinationKind,
    pub url: String,
    pub purposes: Vec<String>,
    pub event_types: Vec<String>,
    pub event_names: Vec<String>,
    pub batch_size: u32,
    pub transform: serde_json::Value,
    pub settings: serde_json::Value,
}

/// A destination's stored governance record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    pub destination_id: i64,
    /// 1 when created, one more with every write.
    pub version: i64,
    /// `sightline_govern::flow::Flow` as JSON.
    pub doc: String,
    pub updated_at: i64,
}

/// An entry of the destination change log as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLogRow {
    pub id: i64,
    pub destination_id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    /// The whole entry as JSON (`sightline_govern::flow::FlowEntry`).
    pub entry: String,
}

#[async_trait]
pub trait Flows: Send + Sync {
    /// Creates a destination with its governance record (`flow`, version 1) and its first
    /// change-log entry, in one transaction. `approved` false: nothing is delivered to it
    /// until a [`Self::write_flow`] applies a configuration. A taken name is a `Conflict`.
    async fn create_governed_destination(
        &self,
        new: NewDestination,
        approved: bool,
        flow: String,
        entry: NewTagLogEntry,
    ) -> Result<Destination>;
    /// In one transaction: writes the destination's record if it still is at `version`
    /// (`None`: it has none yet; a moved version or a taken record is a `Conflict` and
    /// writes nothing), appends the entry, and with `apply` puts that configuration in
    /// force (the destination's row takes it and is approved). A missing destination is
    /// `NotFound`.
    async fn write_flow(
        &self,
        destination_id: i64,
        version: Option<i64>,
        flow: String,
        entry: NewTagLogEntry,
        apply: Option<DestinationConfig>,
    ) -> Result<()>;
    /// Every destination's record, by destination id.
    async fn flows(&self) -> Result<Vec<FlowRow>>;
    async fn flow(&self, destination_id: i64) -> Result<Option<FlowRow>>;
    /// Change-log entries with `id > after`, oldest first; only one destination's when
    /// given.
    async fn flow_log(
        &self,
        destination_id: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<FlowLogRow>>;
}

pub(crate) fn moved(destination_id: i64, version: Option<i64>) -> crate::StoreError {
    crate::StoreError::Conflict(match version {
        Some(v) => format!(
            "destination {destination_id}'s governance record changed since version {v} was read: read it again and retry"
        ),
        None => format!(
            "destination {destination_id} already has a governance record: read it and retry"
        ),
    })
}

pub(crate) fn missing(destination_id: i64) -> crate::StoreError {
    crate::StoreError::NotFound(format!("no destination with id {destination_id}"))
}
