//! Scheduled scans: the journeys of the registry that `[[schedule]]` names are scanned by
//! the server in the background, each when its latest stored scan (scheduled or run by
//! hand) is older than its period. One scan at a time, with at most `scan_browsers`
//! Chromium processes (one per scenario), each closed when its scenario ends: memory stays
//! bounded whatever the number of schedules. Each scan is stored as `sightline scan` stores
//! one (judged against the registry's tags, applied to the backlog, vendors and metrics);
//! the findings of high or critical severity that the journey's previous scan did not have
//! are sent to the schedule's `alert` destination (a webhook, signed as its deliveries are).

use crate::access::{require, Actor, READERS, TEAMS};
use crate::governance::{registry, scans};
use crate::processors::{Placement, Processor, Step, StepFuture};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use sightline_activate::webhook::{Answer, Webhook};
use sightline_core::{time, DestinationKind};
use sightline_scan::{scan_journey, Report, ScanOptions, Scenario, Severity};
use sightline_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One `[[schedule]]`, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// A journey of the registry (`sightline journey list`).
    pub journey: String,
    pub every: Duration,
    /// Empty: the four built-in scenarios, then the journey's custom ones.
    pub scenarios: Vec<Scenario>,
    /// The webhook destination told of new high and critical findings.
    pub alert: Option<String>,
    /// Let the journey's pages be on private addresses (an intranet shop, a test site).
    pub allow_private_network: bool,
}

/// The processor that runs the schedules.
pub struct Scheduler {
    pub store: Arc<dyn Store>,
    pub schedules: Vec<Schedule>,
    /// Scenarios scanned at once, each in its own Chromium.
    pub browsers: usize,
    pub webhook: Webhook,
    /// When each journey was last tried, so that one that fails waits its period too.
    tried: Mutex<HashMap<String, i64>>,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn Store>,
        schedules: Vec<Schedule>,
        browsers: usize,
        webhook: Webhook,
    ) -> Scheduler {
        Scheduler {
            store,
            schedules,
            browsers: browsers.max(1),
            webhook,
            tried: Mutex::default(),
        }
    }

    /// Runs the first schedule that is due, if any.
    async fn pass(&self) -> Result<Step> {
        let now = time::now_ms();
        for schedule in &self.schedules {
            let tried = self
                .tried
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&schedule.journey)
                .copied()
                .unwrap_or(i64::MIN);
            let state = state(self.store.as_ref(), schedule).await?;
            let last = state.last_scan.map_or(i64::MIN, |(_, at)| at).max(tried);
            let asked = state.requested.is_some_and(|at| at > last);
            if !asked
                && state
                    .due
                    .max(last.saturating_add(schedule.every.as_millis() as i64))
                    > now
            {
                continue;
            }
            self.tried
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(schedule.journey.clone(), now);
            let outcome = self.run(schedule).await;
            let label = if outcome.is_ok() { "stored" } else { "failed" };
            metrics::counter!("sightline_scheduled_scans_total",
                "journey" => schedule.journey.clone(), "outcome" => label)
            .increment(1);
            if let Err(e) = outcome {
                tracing::error!(journey = %schedule.journey, error = %format!("{e:#}"), "scheduled scan failed; tried again after its period");
            }
            return Ok(Step::More);
        }
        Ok(Step::Idle)
    }

    /// Scans the journey, stores the scan and sends the alert.
    async fn run(&self, schedule: &Schedule) -> Result<()> {
        let store = self.store.as_ref();
        let stored = registry::journey(store, &schedule.journey).await?.value;
        let journey = sightline_scan::Journey::parse(&stored.to_scanner_toml()?).map_err(|e| {
            anyhow::anyhow!("journey {:?} cannot be scanned: {e}", schedule.journey)
        })?;
        let catalog = sightline_scan::Catalog::with_user_file(None)?;
        let previous = match store.scans(Some(&schedule.journey)).await?.last() {
            Some(row) => Some(registry::stored_report(store, row.id).await?),
            None => None,
        };
        let options = ScanOptions {
            scenarios: schedule.scenarios.clone(),
            tags: registry::scan_inventory(store, &schedule.journey).await?,
            screenshots: false,
            parallel: self.browsers,
            allow_private_network: schedule.allow_private_network,
            ..ScanOptions::default()
        };
        tracing::info!(journey = %schedule.journey, "scheduled scan started");
        let report = scan_journey(&journey, &catalog, &options).await?;
        let row = scans::store_scan(store, &report).await?;
        tracing::info!(journey = %schedule.journey, scan = row.id, findings = report.findings.len(), "scheduled scan stored");
        if let Some(alert) = &schedule.alert {
            self.alert(alert, row.id, previous.as_ref(), &report)
                .await?;
        }
        Ok(())
    }

    /// Tells the alert destination of the high and critical findings `report` has that
    /// `previous` had not (all of them for a journey's first scan); nothing when none.
    async fn alert(
        &self,
        alert: &str,
        scan_id: i64,
        previous: Option<&Report>,
        report: &Report,
    ) -> Result<()> {
        let new = match previous {
            Some(previous) => sightline_scan::diff(previous, report).findings_added,
            None => report.findings.clone(),
        };
        let high: Vec<_> = new
            .into_iter()
            .filter(|f| f.severity >= Severity::High)
            .collect();
        if high.is_empty() {
            return Ok(());
        }
        let destination = self
            .store
            .destination_by_name(alert)
            .await?
            .filter(|d| d.kind == DestinationKind::Webhook && d.approved && !d.disabled)
            .with_context(|| {
                format!("alert destination {alert:?} is not an approved, enabled webhook")
            })?;
        let body = json!({
            "alert": "new_high_findings",
            "journey": report.journey,
            "scan_id": scan_id,
            "findings": high,
        })
        .to_string();
        let key = format!("scan:{scan_id}:alert");
        match self
            .webhook
            .post(&destination.url, &destination.signing_secret, &key, body)
            .await
        {
            Answer::Accepted { .. } | Answer::Partial { .. } => Ok(()),
            Answer::Refused { reason, .. } | Answer::Retry { reason, .. } => {
                anyhow::bail!("the alert to {alert:?} was not taken: {reason}")
            }
        }
    }
}

/// Where a schedule stands: its journey's latest stored scan (id, ms), when it is next
/// due (ms), and a run asked for through the API that has not happened yet (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub last_scan: Option<(i64, i64)>,
    pub due: i64,
    pub requested: Option<i64>,
}

/// The checkpoint that holds when a run of `journey` was last asked for.
fn run_key(journey: &str) -> String {
    format!("scan-schedule:run:{journey}")
}

/// Where `schedule` stands in the store.
pub async fn state(store: &dyn Store, schedule: &Schedule) -> Result<State> {
    let last_scan = store
        .scans(Some(&schedule.journey))
        .await?
        .iter()
        .map(|s| (s.id, s.at))
        .max_by_key(|&(_, at)| at);
    let requested = Some(store.checkpoint(&run_key(&schedule.journey)).await?)
        .filter(|&at| at > 0 && last_scan.is_none_or(|(_, last)| at > last));
    let due = match (requested, last_scan) {
        (Some(at), _) => at,
        (None, Some((_, at))) => at.saturating_add(schedule.every.as_millis() as i64),
        (None, None) => 0,
    };
    Ok(State {
        last_scan,
        due,
        requested,
    })
}

/// Every schedule and where it stands, as the API shows them.
pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    schedules: &[Schedule],
) -> crate::Result<Value> {
    require(actor, READERS, "reading scan schedules")?;
    let now = time::now_ms();
    let mut listed = Vec::new();
    for schedule in schedules {
        let state = state(store, schedule).await?;
        listed.push(json!({
            "journey": schedule.journey,
            "every": humantime::format_duration(schedule.every).to_string(),
            "scenarios": schedule.scenarios.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "alert": schedule.alert,
            "last_scan": state.last_scan.map(|(id, at)| json!({"id": id, "at": time::format_ms(at)})),
            "next_run": time::format_ms(state.due.max(now)),
            "run_requested": state.requested.is_some(),
        }));
    }
    Ok(json!({ "schedules": listed }))
}

/// Asks for a run of a scheduled journey now (on whichever node runs the schedules),
/// recorded in the audit log.
pub async fn request_run(
    store: &dyn Store,
    actor: &Actor,
    schedules: &[Schedule],
    journey: &str,
) -> crate::Result<Value> {
    require(actor, TEAMS, "running a scheduled scan")?;
    if !schedules.iter().any(|s| s.journey == journey) {
        return Err(crate::Error::not_found(
            "schedule",
            format!("no schedule scans journey {journey:?}: add a [[schedule]] to the config file"),
        ));
    }
    let now = time::now_ms();
    store.set_checkpoint(&run_key(journey), now).await?;
    crate::audit::record(store, actor, "scan.schedule.run", journey, None, None).await?;
    Ok(json!({"journey": journey, "requested_at": time::format_ms(now)}))
}

impl Processor for Scheduler {
    fn name(&self) -> String {
        "scan-schedule".into()
    }

    fn step(&self) -> StepFuture<'_> {
        Box::pin(self.pass())
    }

    fn idle(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn placement(&self) -> Placement {
        Placement::Leased
    }
}
