//! Tracking plans: storing, importing, showing and assigning them, the violations found,
//! a draft plan inferred from a source's events, and [`PlanKeeper`], the processor that
//! keeps the plans in force in the collector's memory and stores the violations it counts.

use crate::access::{require, Actor, ADMIN, READERS};
use crate::sources::source_named;
use crate::{Error, Result};
use serde_json::{json, Value};
use sightline_core::time;
use sightline_plans::{infer, Enforcer, Fixes, Plan, PlanDocument, Registry, SAMPLES_KEPT};
use sightline_store::{Store, StoredPlan, TrackingPlans, ViolationDelta};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a server looks for changed plans and stores the violations it counted.
pub const REFRESH: Duration = Duration::from_secs(1);

fn check_plan_name(name: &str) -> Result<()> {
    if name.trim().is_empty()
        || name.len() > 100
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "a plan name must be 1 to 100 characters, without '/' or control characters",
        ));
    }
    Ok(())
}

fn refused(e: sightline_plans::PlanError) -> Error {
    Error::invalid(format!("plan refused: {e}"))
}

fn unknown_plan(name: &str) -> Error {
    Error::not_found(
        "tracking plan",
        format!("no tracking plan named {name:?}: `sightline plan list` shows them"),
    )
}

/// A stored plan as shown: its document as JSON and the sources held to it.
pub fn plan_json(plan: &StoredPlan, sources: &[String]) -> Value {
    json!({
        "name": plan.name,
        "version": plan.version,
        "updated_at": time::format_ms(plan.updated_at),
        "sources": sources,
        "plan": serde_json::from_str::<Value>(&plan.document).unwrap_or(Value::Null),
    })
}

/// Stores a plan document (JSON): version 1 under a new name, the next version under a
/// known one. A document that does not compile is refused, with where it is wrong.
pub async fn put_plan(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    document: &str,
) -> Result<StoredPlan> {
    require(actor, ADMIN, "changing tracking plans")?;
    check_plan_name(name)?;
    let plan = Plan::parse(document).map_err(refused)?;
    store_document(store, actor, name, &plan.document).await
}

/// Stores the plan's next version and records it in the audit log.
async fn store_document(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    document: &PlanDocument,
) -> Result<StoredPlan> {
    let text = serde_json::to_string(document)?;
    let before = store.plan(name, None).await?.map(|p| plan_audit(&p));
    let stored = store.put_plan(name, &text).await?;
    let after = Some(plan_audit(&stored));
    crate::audit::record(store, actor, "plan.put", name, before, after).await?;
    Ok(stored)
}

fn plan_audit(plan: &StoredPlan) -> Value {
    serde_json::json!({
        "version": plan.version,
        "plan": serde_json::from_str::<Value>(&plan.document).unwrap_or(Value::Null),
    })
}

/// What an import reads.
pub enum ImportFormat<'a> {
    /// Segment's tracking plan JSON: the whole plan.
    Segment,
    /// A Snowplow self-describing schema: one `track` rule (for `event`, else the schema's
    /// name) added to the plan, which is created if needed.
    Iglu { event: Option<&'a str> },
}

/// Imports a plan from another product's format under `name` (for Segment, the file's own
/// name when `name` is `None`).
pub async fn import_plan(
    store: &dyn Store,
    actor: &Actor,
    name: Option<&str>,
    format: ImportFormat<'_>,
    text: &str,
) -> Result<StoredPlan> {
    require(actor, ADMIN, "changing tracking plans")?;
    let (name, document) = match format {
        ImportFormat::Segment => {
            let (own_name, document) =
                sightline_plans::import::from_segment(text).map_err(refused)?;
            let name = name
                .map(str::to_string)
                .or(own_name)
                .ok_or_else(|| Error::invalid("the file names no plan: give the plan's name"))?;
            (name, document)
        }
        ImportFormat::Iglu { event } => {
            let name = name.ok_or_else(|| {
                Error::invalid("an Iglu schema is one event's rule: name the plan to add it to")
            })?;
            let (event, rule) = sightline_plans::import::from_iglu(text, event).map_err(refused)?;
            let mut document = match store.plan(name, None).await? {
                Some(stored) => serde_json::from_str::<PlanDocument>(&stored.document)
                    .map_err(|e| Error::Internal(e.into()))?,
                None => PlanDocument::default(),
            };
            document.track.insert(event, rule);
            (name.to_string(), document)
        }
    };
    check_plan_name(&name)?;
    let compiled = Plan::compile(document).map_err(refused)?;
    store_document(store, actor, &name, &compiled.document).await
}

/// Every plan at its newest version, each with the sources held to it.
pub async fn list_plans(store: &dyn TrackingPlans, actor: &Actor) -> Result<Vec<Value>> {
    require(actor, READERS, "reading tracking plans")?;
    let sources = sources_by_plan(store).await?;
    Ok(store
        .list_plans()
        .await?
        .iter()
        .map(|p| plan_json(p, sources.get(&p.id).map_or(&[][..], Vec::as_slice)))
        .collect())
}

async fn sources_by_plan(store: &dyn TrackingPlans) -> Result<HashMap<i64, Vec<String>>> {
    let mut by_plan: HashMap<i64, Vec<String>> = HashMap::new();
    for assignment in store.plan_assignments().await? {
        by_plan
            .entry(assignment.plan.id)
            .or_default()
            .push(assignment.source);
    }
    Ok(by_plan)
}

/// One plan, at its newest version or at `version`.
pub async fn show_plan(
    store: &dyn TrackingPlans,
    actor: &Actor,
    name: &str,
    version: Option<i64>,
) -> Result<Value> {
    require(actor, READERS, "reading tracking plans")?;
    let plan = store
        .plan(name, version)
        .await?
        .ok_or_else(|| match version {
            Some(v) => Error::not_found(
                "tracking plan",
                format!("tracking plan {name:?} has no version {v}"),
            ),
            None => unknown_plan(name),
        })?;
    let sources = sources_by_plan(store).await?;
    Ok(plan_json(
        &plan,
        sources.get(&plan.id).map_or(&[][..], Vec::as_slice),
    ))
}

/// A plan in Segment's tracking plan shape.
pub async fn export_segment(store: &dyn TrackingPlans, actor: &Actor, name: &str) -> Result<Value> {
    require(actor, READERS, "reading tracking plans")?;
    let plan = store
        .plan(name, None)
        .await?
        .ok_or_else(|| unknown_plan(name))?;
    let document: PlanDocument =
        serde_json::from_str(&plan.document).map_err(|e| Error::Internal(e.into()))?;
    Ok(sightline_plans::import::to_segment(&plan.name, &document))
}

/// Holds a source to a plan with its fixes (JSON; `{}` for none), or to none when `plan`
/// is `None`.
pub async fn assign_plan(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    plan: Option<&str>,
    fixes: &str,
) -> Result<()> {
    require(actor, ADMIN, "assigning tracking plans")?;
    let source = source_named(store, source).await?;
    let fixes = Fixes::parse(fixes).map_err(|e| Error::invalid(format!("fixes refused: {e}")))?;
    let plan_id = match plan {
        Some(name) => Some(
            store
                .plan(name, None)
                .await?
                .ok_or_else(|| unknown_plan(name))?
                .id,
        ),
        None => None,
    };
    let fixes = serde_json::to_string(&fixes)?;
    store.assign_plan(source.id, plan_id, &fixes).await?;
    let after = serde_json::json!({
        "plan": plan,
        "fixes": serde_json::from_str::<Value>(&fixes).unwrap_or(Value::Null),
    });
    crate::audit::record(store, actor, "plan.assign", &source.name, None, Some(after)).await
}

/// A source's violations since `since_day` (`YYYY-MM-DD`): counts per day, event and
/// kind, and the newest masked samples.
pub async fn violations(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    since_day: &str,
) -> Result<Value> {
    require(actor, READERS, "reading violations")?;
    crate::events::check_day(since_day)?;
    let source = source_named(store, source).await?;
    let found = store.violations(source.id, since_day).await?;
    let samples: Vec<Value> = found
        .samples
        .iter()
        .map(|s| {
            json!({
                "event": s.event,
                "type": s.kind,
                "sample": serde_json::from_str::<Value>(&s.sample).unwrap_or(Value::Null),
            })
        })
        .collect();
    let counts: Vec<Value> = found
        .counts
        .iter()
        .map(|c| json!({"day": c.day, "event": c.event, "type": c.kind, "count": c.count}))
        .collect();
    Ok(json!({"source": source.name, "since": since_day, "counts": counts, "samples": samples}))
}

/// The most events `infer` reads: enough to see a site's shape, bounded in time.
pub const INFER_MAX_EVENTS: usize = 200_000;

/// A draft plan from the source's events received at or after `since` (ms): names,
/// property types, required properties by frequency, enum candidates. Not stored.
pub async fn infer_plan(
    store: &dyn Store,
    actor: &Actor,
    source: &str,
    since: i64,
) -> Result<Value> {
    require(actor, READERS, "reading the event log")?;
    let source = source_named(store, source).await?;
    let mut inference = infer::Inference::new(infer::Settings::default());
    let mut after = last_seq_received_before(store, since - RECEIVED_ORDER_SLACK_MS).await?;
    let mut read = 0usize;
    loop {
        let page = store.read_events(after, 1000, Some(source.id)).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for event in page.iter().filter(|e| e.received_at >= since) {
            inference.observe(event.event_type, &event.body);
            read += 1;
        }
        if read >= INFER_MAX_EVENTS {
            break;
        }
    }
    let draft = inference.draft();
    Ok(json!({"source": source.name, "events_read": read, "plan": draft}))
}

/// How far out of seq order two events' receive times may be: collection stamps an event
/// when its request arrives, and concurrent requests (or nodes) reach the log in another
/// order, but never minutes apart.
const RECEIVED_ORDER_SLACK_MS: i64 = 10 * 60 * 1000;

/// A seq at or after which every event was received at or after `before` (within
/// [`RECEIVED_ORDER_SLACK_MS`]): the highest seq whose event was received earlier, found
/// by bisecting the log, so that a read from a recent time does not start at the log's
/// first event. 0 when there is none.
async fn last_seq_received_before(store: &dyn Store, before: i64) -> Result<i64> {
    // Invariant: the event at or after `low` (if any) was received before `before`, and
    // every event at or after `high` at or after it.
    let (mut low, mut high) = (0, store.last_seq().await? + 1);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        // The first event at or after `middle` (erasures leave gaps in the seqs).
        match store.read_events(middle - 1, 1, None).await?.first() {
            Some(event) if event.seq < high && event.received_at < before => low = event.seq,
            // None in [middle, high) was received before.
            _ => high = middle,
        }
    }
    Ok(low)
}

/// Keeps the plans in force in the collector's [`Registry`] (reloaded when the store's
/// plan revision moves, so a change made anywhere takes effect within [`REFRESH`]) and
/// stores the violations the collector counted.
pub struct PlanKeeper {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    /// The revision in force; held across a whole reload, so that a reload after an API
    /// change and the periodic one never put an older set of plans back in force.
    loaded: tokio::sync::Mutex<Option<i64>>,
}

impl PlanKeeper {
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>) -> PlanKeeper {
        PlanKeeper {
            store,
            registry,
            loaded: tokio::sync::Mutex::new(None),
        }
    }

    /// Loads the plans if they changed since the last load. A plan that no longer
    /// compiles (written by a newer version) is skipped with an error in the log: its
    /// sources are collected without a plan rather than not at all.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let mut loaded = self.loaded.lock().await;
        let revision = self.store.plans_revision().await?;
        if *loaded == Some(revision) {
            return Ok(());
        }
        let mut compiled: HashMap<(i64, i64), Arc<Plan>> = HashMap::new();
        let mut enforcers = HashMap::new();
        for assignment in self.store.plan_assignments().await? {
            let key = (assignment.plan.id, assignment.plan.version);
            let plan = match compiled.get(&key) {
                Some(plan) => plan.clone(),
                None => match Plan::parse(&assignment.plan.document) {
                    Ok(plan) => {
                        let plan = Arc::new(plan);
                        compiled.insert(key, plan.clone());
                        plan
                    }
                    Err(e) => {
                        tracing::error!(plan = %assignment.plan.name, error = %e, "a stored tracking plan does not compile; its sources are collected without it");
                        continue;
                    }
                },
            };
            let fixes = Fixes::parse(&assignment.fixes).unwrap_or_else(|e| {
                tracing::error!(source = %assignment.source, error = %e, "stored fixes are unreadable; the source is collected without them");
                Fixes::default()
            });
            enforcers.insert(
                assignment.source_id,
                Arc::new(Enforcer::new(
                    assignment.plan.name.clone(),
                    assignment.plan.version,
                    plan,
                    fixes,
                )),
            );
        }
        tracing::info!(sources = enforcers.len(), revision, "tracking plans loaded");
        self.registry.replace(enforcers);
        *loaded = Some(revision);
        Ok(())
    }

    /// Stores what the collector counted; on failure the counts are put back for the next
    /// step. The server calls it once more after its last request.
    pub async fn store_violations(&self) -> anyhow::Result<()> {
        let tallied = self.registry.tally().drain();
        if tallied.is_empty() {
            return Ok(());
        }
        let deltas: Vec<ViolationDelta> = tallied
            .iter()
            .map(|t| ViolationDelta {
                source_id: t.key.source_id,
                event: t.key.event.clone(),
                kind: t.key.kind.as_str().to_string(),
                day: t.key.day.clone(),
                count: t.count as i64,
                samples: t.samples.clone(),
            })
            .collect();
        if let Err(e) = self.store.record_violations(&deltas, SAMPLES_KEPT).await {
            self.registry.tally().restore(tallied);
            return Err(e.into());
        }
        Ok(())
    }
}

impl crate::processors::Processor for PlanKeeper {
    // It keeps this node's own memory current.
    fn placement(&self) -> crate::processors::Placement {
        crate::processors::Placement::EveryNode
    }

    fn name(&self) -> String {
        "tracking-plans".into()
    }

    fn step(&self) -> crate::processors::StepFuture<'_> {
        Box::pin(async move {
            // Violations first: a reload that fails must not keep counts from the store.
            self.store_violations().await?;
            self.reload().await?;
            Ok(crate::processors::Step::Idle)
        })
    }

    fn idle(&self) -> Duration {
        REFRESH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{EventType, NewEvent};
    use sightline_store::EventLog;

    /// The bisection finds the last event received before a time, and 0 when every event
    /// is as recent.
    #[tokio::test]
    async fn a_read_from_a_time_starts_at_the_last_event_received_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = sightline_store::SqliteStore::open(dir.path())
            .await
            .unwrap();
        assert_eq!(last_seq_received_before(&store, 1_000).await.unwrap(), 0);
        // Events received at 10, 20, …, 1000; seqs 1 to 100.
        let events: Vec<NewEvent> = (1..=100)
            .map(|i| NewEvent {
                source_id: 1,
                message_id: format!("m{i}"),
                event_type: EventType::Track,
                received_at: i * 10,
                body: format!(r#"{{"type":"track","event":"E","messageId":"m{i}"}}"#),
            })
            .collect();
        store.append(events, 0).await.unwrap();
        for (before, expected) in [(5, 0), (10, 0), (11, 1), (500, 49), (505, 50), (2_000, 100)] {
            assert_eq!(
                last_seq_received_before(&store, before).await.unwrap(),
                expected,
                "before {before}"
            );
        }
    }
}
