//! Tracking plans on PostgreSQL (see `crate::plans`).

use super::PostgresStore;
use crate::plans::{
    PlanAssignment, SourceViolations, StoredPlan, TrackingPlans, ViolationCount, ViolationDelta,
    ViolationSample,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use tokio_postgres::Row;

/// The migration that creates the tables (its place in `MIGRATIONS` is in `postgres.rs`).
pub(super) const MIGRATION: &str = include_str!("plans.sql");

fn plan_from_row(row: &Row) -> StoredPlan {
    StoredPlan {
        id: row.get(0),
        name: row.get(1),
        version: row.get(2),
        document: row.get(3),
        updated_at: row.get(4),
    }
}

const BUMP_REVISION: &str = "UPDATE plan_revision SET revision = revision + 1";

#[async_trait]
impl TrackingPlans for PostgresStore {
    async fn put_plan(&self, name: &str, document: &str) -> Result<StoredPlan> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = sightline_core::time::now_ms();
        let row = tx
            .query_one(
                "INSERT INTO tracking_plans (name, version, document, updated_at)
                 VALUES ($1, 1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET version = tracking_plans.version + 1,
                    document = EXCLUDED.document, updated_at = EXCLUDED.updated_at
                 RETURNING id, name, version, document, updated_at",
                &[&name, &document, &now],
            )
            .await?;
        let plan = plan_from_row(&row);
        tx.execute(
            "INSERT INTO tracking_plan_versions (plan_id, version, document, created_at)
             VALUES ($1, $2, $3, $4)",
            &[&plan.id, &plan.version, &plan.document, &now],
        )
        .await?;
        tx.execute(BUMP_REVISION, &[]).await?;
        tx.commit().await?;
        Ok(plan)
    }

    async fn plan(&self, name: &str, version: Option<i64>) -> Result<Option<StoredPlan>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT p.id, p.name, v.version, v.document, v.created_at
                 FROM tracking_plans p
                 JOIN tracking_plan_versions v ON v.plan_id = p.id
                 WHERE p.name = $1 AND v.version = COALESCE($2, p.version)",
                &[&name, &version],
            )
            .await?
            .map(|row| plan_from_row(&row)))
    }

    async fn list_plans(&self) -> Result<Vec<StoredPlan>> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT id, name, version, document, updated_at FROM tracking_plans ORDER BY name",
                &[],
            )
            .await?
            .iter()
            .map(plan_from_row)
            .collect())
    }

    async fn assign_plan(&self, source_id: i64, plan_id: Option<i64>, fixes: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        match plan_id {
            Some(plan_id) => {
                let known = tx
                    .query_opt("SELECT id FROM tracking_plans WHERE id = $1", &[&plan_id])
                    .await?;
                if known.is_none() {
                    return Err(StoreError::NotFound(format!("no tracking plan {plan_id}")));
                }
                tx.execute(
                    "INSERT INTO plan_assignments (source_id, plan_id, fixes) VALUES ($1, $2, $3)
                     ON CONFLICT (source_id) DO UPDATE SET plan_id = EXCLUDED.plan_id,
                        fixes = EXCLUDED.fixes",
                    &[&source_id, &plan_id, &fixes],
                )
                .await?;
            }
            None => {
                tx.execute(
                    "DELETE FROM plan_assignments WHERE source_id = $1",
                    &[&source_id],
                )
                .await?;
            }
        }
        tx.execute(BUMP_REVISION, &[]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn plan_assignments(&self) -> Result<Vec<PlanAssignment>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.source_id, s.name, a.fixes,
                        p.id, p.name, p.version, p.document, p.updated_at
                 FROM plan_assignments a
                 JOIN sources s ON s.id = a.source_id
                 JOIN tracking_plans p ON p.id = a.plan_id
                 ORDER BY s.name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PlanAssignment {
                source_id: r.get(0),
                source: r.get(1),
                fixes: r.get(2),
                plan: StoredPlan {
                    id: r.get(3),
                    name: r.get(4),
                    version: r.get(5),
                    document: r.get(6),
                    updated_at: r.get(7),
                },
            })
            .collect())
    }

    async fn plans_revision(&self) -> Result<i64> {
        let client = self.client().await?;
        Ok(client
            .query_one("SELECT revision FROM plan_revision", &[])
            .await?
            .get(0))
    }

    async fn record_violations(
        &self,
        deltas: &[ViolationDelta],
        samples_kept: usize,
    ) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let count = tx
            .prepare(
                "INSERT INTO plan_violations (source_id, event, kind, day, count)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (source_id, event, kind, day)
                 DO UPDATE SET count = plan_violations.count + EXCLUDED.count",
            )
            .await?;
        let sample = tx
            .prepare(
                "INSERT INTO plan_violation_samples (source_id, event, kind, sample)
                 VALUES ($1, $2, $3, $4)",
            )
            .await?;
        let trim = tx
            .prepare(
                "DELETE FROM plan_violation_samples
                 WHERE source_id = $1 AND event = $2 AND kind = $3 AND id NOT IN (
                    SELECT id FROM plan_violation_samples
                    WHERE source_id = $1 AND event = $2 AND kind = $3
                    ORDER BY id DESC LIMIT $4)",
            )
            .await?;
        // Deltas come sorted by key, so two servers recording at once lock the count rows
        // in the same order and never deadlock.
        for d in deltas {
            tx.execute(&count, &[&d.source_id, &d.event, &d.kind, &d.day, &d.count])
                .await?;
            for s in &d.samples {
                tx.execute(&sample, &[&d.source_id, &d.event, &d.kind, s])
                    .await?;
            }
            if !d.samples.is_empty() {
                tx.execute(
                    &trim,
                    &[&d.source_id, &d.event, &d.kind, &(samples_kept as i64)],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn violations(&self, source_id: i64, since_day: &str) -> Result<SourceViolations> {
        let client = self.client().await?;
        let counts = client
            .query(
                "SELECT event, kind, day, count FROM plan_violations
                 WHERE source_id = $1 AND day >= $2 ORDER BY day DESC, event, kind",
                &[&source_id, &since_day],
            )
            .await?
            .iter()
            .map(|r| ViolationCount {
                event: r.get(0),
                kind: r.get(1),
                day: r.get(2),
                count: r.get(3),
            })
            .collect();
        let samples = client
            .query(
                "SELECT event, kind, sample FROM plan_violation_samples
                 WHERE source_id = $1 ORDER BY event, kind, id DESC",
                &[&source_id],
            )
            .await?
            .iter()
            .map(|r| ViolationSample {
                event: r.get(0),
                kind: r.get(1),
                sample: r.get(2),
            })
            .collect();
        Ok(SourceViolations { counts, samples })
    }
}
