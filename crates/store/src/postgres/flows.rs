//! Destinations' governance on PostgreSQL (see `crate::flows`).

use super::{destination_from_row, PostgresStore, DESTINATION_COLUMNS};
use crate::flows::{missing, moved, DestinationConfig, FlowLogRow, FlowRow, Flows};
use crate::{columns, NewTagLogEntry, Result};
use async_trait::async_trait;
use sightline_core::{Destination, NewDestination};
use tokio_postgres::{GenericClient, Row};

/// The migration (its place in `MIGRATIONS` is in `postgres.rs`).
pub(super) const MIGRATION: &str = include_str!("flows.sql");

async fn append(
    client: &impl GenericClient,
    destination_id: i64,
    entry: &NewTagLogEntry,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO destination_changes (destination_id, at, actor, action, entry)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &destination_id,
                &entry.at,
                &entry.actor,
                &entry.action,
                &entry.entry,
            ],
        )
        .await?;
    Ok(())
}

fn flow_from_row(row: &Row) -> FlowRow {
    FlowRow {
        destination_id: row.get(0),
        version: row.get(1),
        doc: row.get(2),
        updated_at: row.get(3),
    }
}

#[async_trait]
impl Flows for PostgresStore {
    async fn create_governed_destination(
        &self,
        new: NewDestination,
        approved: bool,
        flow: String,
        entry: NewTagLogEntry,
    ) -> Result<Destination> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = sightline_core::time::now_ms();
        let batch_size = i32::try_from(new.batch_size).unwrap_or(i32::MAX);
        let row = tx
            .query_opt(
                &format!(
                    "INSERT INTO destinations (name, kind, url, purposes, event_types, event_names,
                         batch_size, signing_secret, created_at, transform, settings, approved)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ON CONFLICT (name) DO NOTHING RETURNING {DESTINATION_COLUMNS}"
                ),
                &[
                    &new.name,
                    &new.kind.as_str(),
                    &new.url,
                    &columns::list(&new.purposes),
                    &columns::list(&new.event_types),
                    &columns::list(&new.event_names),
                    &batch_size,
                    &new.signing_secret,
                    &now,
                    &new.transform.to_string(),
                    &new.settings.to_string(),
                    &approved,
                ],
            )
            .await?
            .ok_or_else(|| columns::conflict(&new.name))?;
        let created = destination_from_row(&row)?;
        tx.execute(
            "INSERT INTO destination_flows (destination_id, version, doc, updated_at)
             VALUES ($1, 1, $2, $3)",
            &[&created.id, &flow, &now],
        )
        .await?;
        append(&*tx, created.id, &entry).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn write_flow(
        &self,
        destination_id: i64,
        version: Option<i64>,
        flow: String,
        entry: NewTagLogEntry,
        apply: Option<DestinationConfig>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = sightline_core::time::now_ms();
        // Locks the destination's row: a delete waits for this write, and this one sees it.
        let exists = tx
            .query_opt(
                "SELECT 1 FROM destinations WHERE id = $1 FOR UPDATE",
                &[&destination_id],
            )
            .await?
            .is_some();
        if !exists {
            return Err(missing(destination_id));
        }
        let written = match version {
            None => {
                tx.execute(
                    "INSERT INTO destination_flows (destination_id, version, doc, updated_at)
                     VALUES ($1, 1, $2, $3) ON CONFLICT (destination_id) DO NOTHING",
                    &[&destination_id, &flow, &now],
                )
                .await?
            }
            Some(v) => {
                tx.execute(
                    "UPDATE destination_flows SET version = version + 1, doc = $3, updated_at = $4
                     WHERE destination_id = $1 AND version = $2",
                    &[&destination_id, &v, &flow, &now],
                )
                .await?
            }
        };
        if written != 1 {
            return Err(moved(destination_id, version));
        }
        append(&*tx, destination_id, &entry).await?;
        if let Some(c) = apply {
            let batch_size = i32::try_from(c.batch_size).unwrap_or(i32::MAX);
            tx.execute(
                "UPDATE destinations SET kind = $2, url = $3, purposes = $4, event_types = $5,
                     event_names = $6, batch_size = $7, transform = $8, settings = $9,
                     approved = TRUE
                 WHERE id = $1",
                &[
                    &destination_id,
                    &c.kind.as_str(),
                    &c.url,
                    &columns::list(&c.purposes),
                    &columns::list(&c.event_types),
                    &columns::list(&c.event_names),
                    &batch_size,
                    &c.transform.to_string(),
                    &c.settings.to_string(),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn flows(&self) -> Result<Vec<FlowRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT destination_id, version, doc, updated_at FROM destination_flows
                 ORDER BY destination_id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(flow_from_row).collect())
    }

    async fn flow(&self, destination_id: i64) -> Result<Option<FlowRow>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT destination_id, version, doc, updated_at FROM destination_flows
                 WHERE destination_id = $1",
                &[&destination_id],
            )
            .await?;
        Ok(row.as_ref().map(flow_from_row))
    }

    async fn flow_log(
        &self,
        destination_id: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<FlowLogRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, destination_id, at, actor, action, entry FROM destination_changes
                 WHERE ($1::BIGINT IS NULL OR destination_id = $1) AND id > $2
                 ORDER BY id LIMIT $3",
                &[&destination_id, &after, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| FlowLogRow {
                id: r.get(0),
                destination_id: r.get(1),
                at: r.get(2),
                actor: r.get(3),
                action: r.get(4),
                entry: r.get(5),
            })
            .collect())
    }
}
