//! Tracking plans on SQLite (see `crate::plans`).

use super::SqliteStore;
use crate::plans::{
    PlanAssignment, SourceViolations, StoredPlan, TrackingPlans, ViolationCount, ViolationDelta,
    ViolationSample,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

/// The migration that creates the tables (its place in `MIGRATIONS` is in `sqlite.rs`).
pub(super) const MIGRATION: &str = include_str!("plans.sql");

fn plan_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredPlan> {
    Ok(StoredPlan {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        document: row.get(3)?,
        updated_at: row.get(4)?,
    })
}

fn bump_revision(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("UPDATE plan_revision SET revision = revision + 1", [])?;
    Ok(())
}

#[async_trait]
impl TrackingPlans for SqliteStore {
    async fn put_plan(&self, name: &str, document: &str) -> Result<StoredPlan> {
        let (name, document) = (name.to_string(), document.to_string());
        self.with_conn(move |conn| {
            let now = sightline_core::time::now_ms();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let plan = tx.query_row(
                "INSERT INTO tracking_plans (name, version, document, updated_at)
                 VALUES (?1, 1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET version = version + 1,
                    document = excluded.document, updated_at = excluded.updated_at
                 RETURNING id, name, version, document, updated_at",
                params![name, document, now],
                plan_from_row,
            )?;
            tx.execute(
                "INSERT INTO tracking_plan_versions (plan_id, version, document, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![plan.id, plan.version, plan.document, now],
            )?;
            bump_revision(&tx)?;
            tx.commit()?;
            Ok(plan)
        })
        .await
    }

    async fn plan(&self, name: &str, version: Option<i64>) -> Result<Option<StoredPlan>> {
        let name = name.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT p.id, p.name, v.version, v.document, v.created_at
                     FROM tracking_plans p
                     JOIN tracking_plan_versions v ON v.plan_id = p.id
                     WHERE p.name = ?1 AND v.version = COALESCE(?2, p.version)",
                    params![name, version],
                    plan_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn list_plans(&self) -> Result<Vec<StoredPlan>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, version, document, updated_at FROM tracking_plans ORDER BY name",
            )?;
            let rows = stmt.query_map([], plan_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn assign_plan(&self, source_id: i64, plan_id: Option<i64>, fixes: &str) -> Result<()> {
        let fixes = fixes.to_string();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            match plan_id {
                Some(plan_id) => {
                    let known: Option<i64> = tx
                        .query_row(
                            "SELECT id FROM tracking_plans WHERE id = ?1",
                            [plan_id],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if known.is_none() {
                        return Err(StoreError::NotFound(format!("no tracking plan {plan_id}")));
                    }
                    tx.execute(
                        "INSERT INTO plan_assignments (source_id, plan_id, fixes) VALUES (?1, ?2, ?3)
                         ON CONFLICT (source_id) DO UPDATE SET plan_id = excluded.plan_id,
                            fixes = excluded.fixes",
                        params![source_id, plan_id, fixes],
                    )?;
                }
                None => {
                    tx.execute(
                        "DELETE FROM plan_assignments WHERE source_id = ?1",
                        [source_id],
                    )?;
                }
            }
            bump_revision(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn plan_assignments(&self) -> Result<Vec<PlanAssignment>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT a.source_id, s.name, a.fixes,
                        p.id, p.name, p.version, p.document, p.updated_at
                 FROM plan_assignments a
                 JOIN sources s ON s.id = a.source_id
                 JOIN tracking_plans p ON p.id = a.plan_id
                 ORDER BY s.name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(PlanAssignment {
                    source_id: r.get(0)?,
                    source: r.get(1)?,
                    fixes: r.get(2)?,
                    plan: StoredPlan {
                        id: r.get(3)?,
                        name: r.get(4)?,
                        version: r.get(5)?,
                        document: r.get(6)?,
                        updated_at: r.get(7)?,
                    },
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn plans_revision(&self) -> Result<i64> {
        self.with_conn(|conn| {
            Ok(conn.query_row("SELECT revision FROM plan_revision", [], |r| r.get(0))?)
        })
        .await
    }

    async fn record_violations(
        &self,
        deltas: &[ViolationDelta],
        samples_kept: usize,
    ) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let deltas = deltas.to_vec();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut count = tx.prepare_cached(
                    "INSERT INTO plan_violations (source_id, event, kind, day, count)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (source_id, event, kind, day)
                     DO UPDATE SET count = count + excluded.count",
                )?;
                let mut sample = tx.prepare_cached(
                    "INSERT INTO plan_violation_samples (source_id, event, kind, sample)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                let mut trim = tx.prepare_cached(
                    "DELETE FROM plan_violation_samples
                     WHERE source_id = ?1 AND event = ?2 AND kind = ?3 AND id NOT IN (
                        SELECT id FROM plan_violation_samples
                        WHERE source_id = ?1 AND event = ?2 AND kind = ?3
                        ORDER BY id DESC LIMIT ?4)",
                )?;
                for d in &deltas {
                    count.execute(params![d.source_id, d.event, d.kind, d.day, d.count])?;
                    for s in &d.samples {
                        sample.execute(params![d.source_id, d.event, d.kind, s])?;
                    }
                    if !d.samples.is_empty() {
                        trim.execute(params![d.source_id, d.event, d.kind, samples_kept as i64])?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn violations(&self, source_id: i64, since_day: &str) -> Result<SourceViolations> {
        let since_day = since_day.to_string();
        self.with_conn(move |conn| {
            let mut counts = conn.prepare(
                "SELECT event, kind, day, count FROM plan_violations
                 WHERE source_id = ?1 AND day >= ?2 ORDER BY day DESC, event, kind",
            )?;
            let counts = counts
                .query_map(params![source_id, since_day], |r| {
                    Ok(ViolationCount {
                        event: r.get(0)?,
                        kind: r.get(1)?,
                        day: r.get(2)?,
                        count: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut samples = conn.prepare(
                "SELECT event, kind, sample FROM plan_violation_samples
                 WHERE source_id = ?1 ORDER BY event, kind, id DESC",
            )?;
            let samples = samples
                .query_map([source_id], |r| {
                    Ok(ViolationSample {
                        event: r.get(0)?,
                        kind: r.get(1)?,
                        sample: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(SourceViolations { counts, samples })
        })
        .await
    }
}
