//! Storage of tracking plans: the plans (every version kept), which plan each source is
//! held to with its fixes, and the violations found (counts per source, event, kind and
//! day, and the last few masked samples). The plans themselves are opaque JSON here;
//! `sightline-plans` reads them.

use crate::Result;
use async_trait::async_trait;

/// A plan at one version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredPlan {
    pub id: i64,
    pub name: String,
    pub version: i64,
    /// The plan document (JSON).
    pub document: String,
    /// When this version was stored (ms).
    pub updated_at: i64,
}

/// A source held to a plan (its newest version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanAssignment {
    pub source_id: i64,
    pub source: String,
    pub plan: StoredPlan,
    /// The source's fixes (JSON).
    pub fixes: String,
}

/// Violations found since the last write, to add to the stored ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViolationDelta {
    pub source_id: i64,
    pub event: String,
    pub kind: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub count: i64,
    /// Samples (JSON), oldest first.
    pub samples: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ViolationCount {
    pub event: String,
    pub kind: String,
    pub day: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViolationSample {
    pub event: String,
    pub kind: String,
    /// The sample (JSON).
    pub sample: String,
}

/// A source's stored violations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceViolations {
    /// By day (newest first), then event and kind.
    pub counts: Vec<ViolationCount>,
    /// Per event and kind, the newest samples, newest first.
    pub samples: Vec<ViolationSample>,
}

#[async_trait]
pub trait TrackingPlans: Send + Sync {
    /// Stores a plan: a new name starts at version 1, a known one gets its next version;
    /// every version stays readable.
    async fn put_plan(&self, name: &str, document: &str) -> Result<StoredPlan>;
    /// A plan at its newest version, or at `version`.
    async fn plan(&self, name: &str, version: Option<i64>) -> Result<Option<StoredPlan>>;
    /// Every plan at its newest version, by name.
    async fn list_plans(&self) -> Result<Vec<StoredPlan>>;
    /// Holds the source to a plan with its fixes (JSON), or to none (`plan_id` `None`).
    /// A plan that does not exist is `NotFound`.
    async fn assign_plan(&self, source_id: i64, plan_id: Option<i64>, fixes: &str) -> Result<()>;
    /// Every source held to a plan, with the plan's newest version.
    async fn plan_assignments(&self) -> Result<Vec<PlanAssignment>>;
    /// A number that grows with every plan or assignment written: readers that keep plans
    /// in memory reload them when it moves.
    async fn plans_revision(&self) -> Result<i64>;
    /// Adds counts and samples in one transaction, keeping the newest `samples_kept`
    /// samples per (source, event, kind).
    async fn record_violations(&self, deltas: &[ViolationDelta], samples_kept: usize)
        -> Result<()>;
    /// A source's violations on `since_day` (`YYYY-MM-DD`) and after.
    async fn violations(&self, source_id: i64, since_day: &str) -> Result<SourceViolations>;
}
