//! Destinations' governance on SQLite (see `crate::flows`).

use super::{destination_from_row, SqliteStore, DESTINATION_COLUMNS};
use crate::flows::{missing, moved, DestinationConfig, FlowLogRow, FlowRow, Flows};
use crate::{columns, NewTagLogEntry, Result};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};
use sightline_core::{Destination, NewDestination};

/// The migration (its place in `MIGRATIONS` is in `sqlite.rs`).
pub(super) const MIGRATION: &str = include_str!("flows.sql");

fn append(tx: &Transaction<'_>, destination_id: i64, entry: &NewTagLogEntry) -> Result<()> {
    tx.execute(
        "INSERT INTO destination_changes (destination_id, at, actor, action, entry)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            destination_id,
            entry.at,
            entry.actor,
            entry.action,
            entry.entry
        ],
    )?;
    Ok(())
}

fn flow_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FlowRow> {
    Ok(FlowRow {
        destination_id: row.get(0)?,
        version: row.get(1)?,
        doc: row.get(2)?,
        updated_at: row.get(3)?,
    })
}

#[async_trait]
impl Flows for SqliteStore {
    async fn create_governed_destination(
        &self,
        new: NewDestination,
        approved: bool,
        flow: String,
        entry: NewTagLogEntry,
    ) -> Result<Destination> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = sightline_core::time::now_ms();
            let created = tx
                .query_row(
                    &format!(
                        "INSERT INTO destinations (name, kind, url, purposes, event_types,
                             event_names, batch_size, signing_secret, created_at, transform,
                             settings, approved)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                         ON CONFLICT (name) DO NOTHING RETURNING {DESTINATION_COLUMNS}"
                    ),
                    params![
                        new.name,
                        new.kind.as_str(),
                        new.url,
                        columns::list(&new.purposes),
                        columns::list(&new.event_types),
                        columns::list(&new.event_names),
                        new.batch_size,
                        new.signing_secret,
                        now,
                        new.transform.to_string(),
                        new.settings.to_string(),
                        approved
                    ],
                    destination_from_row,
                )
                .optional()?
                .ok_or_else(|| columns::conflict(&new.name))?;
            tx.execute(
                "INSERT INTO destination_flows (destination_id, version, doc, updated_at)
                 VALUES (?1, 1, ?2, ?3)",
                params![created.id, flow, now],
            )?;
            append(&tx, created.id, &entry)?;
            tx.commit()?;
            Ok(created)
        })
        .await
    }

    async fn write_flow(
        &self,
        destination_id: i64,
        version: Option<i64>,
        flow: String,
        entry: NewTagLogEntry,
        apply: Option<DestinationConfig>,
    ) -> Result<()> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now = sightline_core::time::now_ms();
            let exists: bool = tx
                .query_row(
                    "SELECT 1 FROM destinations WHERE id = ?1",
                    [destination_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                return Err(missing(destination_id));
            }
            let written = match version {
                None => tx.execute(
                    "INSERT INTO destination_flows (destination_id, version, doc, updated_at)
                     VALUES (?1, 1, ?2, ?3) ON CONFLICT (destination_id) DO NOTHING",
                    params![destination_id, flow, now],
                )?,
                Some(v) => tx.execute(
                    "UPDATE destination_flows SET version = version + 1, doc = ?3, updated_at = ?4
                     WHERE destination_id = ?1 AND version = ?2",
                    params![destination_id, v, flow, now],
                )?,
            };
            if written != 1 {
                return Err(moved(destination_id, version));
            }
            append(&tx, destination_id, &entry)?;
            if let Some(c) = apply {
                tx.execute(
                    "UPDATE destinations SET kind = ?2, url = ?3, purposes = ?4,
                         event_types = ?5, event_names = ?6, batch_size = ?7, transform = ?8,
                         settings = ?9, approved = 1
                     WHERE id = ?1",
                    params![
                        destination_id,
                        c.kind.as_str(),
                        c.url,
                        columns::list(&c.purposes),
                        columns::list(&c.event_types),
                        columns::list(&c.event_names),
                        c.batch_size,
                        c.transform.to_string(),
                        c.settings.to_string()
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn flows(&self) -> Result<Vec<FlowRow>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT destination_id, version, doc, updated_at FROM destination_flows
                 ORDER BY destination_id",
            )?;
            let rows = stmt.query_map([], flow_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn flow(&self, destination_id: i64) -> Result<Option<FlowRow>> {
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT destination_id, version, doc, updated_at FROM destination_flows
                     WHERE destination_id = ?1",
                    [destination_id],
                    flow_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn flow_log(
        &self,
        destination_id: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<FlowLogRow>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, destination_id, at, actor, action, entry FROM destination_changes
                 WHERE (?1 IS NULL OR destination_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![destination_id, after, limit as i64], |r| {
                Ok(FlowLogRow {
                    id: r.get(0)?,
                    destination_id: r.get(1)?,
                    at: r.get(2)?,
                    actor: r.get(3)?,
                    action: r.get(4)?,
                    entry: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
