//! Scheduled scans: the journeys of the registry that a schedule names are scanned by the
//! server in the background, each when its latest stored scan (scheduled or run by hand)
//! is older than its period. Schedules come from the config file (`[[schedule]]`, read at
//! start and again when the server is sent SIGHUP) and from the API (stored, so every node sees them and a change applies at the
//! scheduler's next look, without a restart); the config's win where both name a journey.
//! One scan at a time, with at most `scan_browsers` Chromium processes (one per
//! scenario), each closed when its scenario ends: memory stays bounded whatever the number
//! of schedules. Each scan is stored as `sightline scan` stores one (judged against the
//! registry's tags, applied to the backlog, vendors and metrics); the findings of high or
//! critical severity that the journey's previous scan did not have are sent to the
//! schedule's `alert` destination (a webhook, signed as its deliveries are).

use crate::access::{require, Actor, READERS, SECURITY, TEAMS};
use crate::governance::{registry, scans};
use crate::processors::{Placement, Processor, Step, StepFuture};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sightline_activate::webhook::{Answer, Webhook};
use sightline_core::{time, DestinationKind};
use sightline_scan::{scan_journey, Report, ScanOptions, Scenario, Severity};
use sightline_store::{Governance, RecordKind, RecordWrite, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A schedule as written: a `[[schedule]]` of the config file, the body of
/// `POST /api/v1/schedules`, and the stored record of one made through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// A journey of the registry (`sightline journey list`).
    pub journey: String,
    /// How often, e.g. `24h` or `7d`; a minute at least.
    pub every: String,
    /// `no-interaction`, `accept-all`, `reject-all`, `gpc` or `custom:NAME`; none: the
    /// four built-in scenarios, then the journey's custom ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<String>,
    /// A webhook destination told of new high and critical findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// Let the journey's pages be on private addresses (an intranet shop, a test site).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_private_network: bool,
}

impl Definition {
    /// The schedule this defines, or what to fix: a named journey, a period of at least
    /// a minute, known scenarios. Whether the journey and the alert destination exist is
    /// the caller's to see (a config file may name ones added later).
    pub fn check(&self, origin: Origin) -> Result<Schedule, String> {
        if self.journey.trim().is_empty() {
            return Err("name the journey to scan".into());
        }
        let every = humantime::parse_duration(&self.every).map_err(|_| {
            format!(
                "every = {:?} is not a duration: write e.g. 24h or 7d",
                self.every
            )
        })?;
        if every < Duration::from_secs(60) {
            return Err(format!("every = {:?} is shorter than a minute", self.every));
        }
        let scenarios = self
            .scenarios
            .iter()
            .map(|name| Scenario::parse_or_explain(name))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Schedule {
            journey: self.journey.clone(),
            every,
            scenarios,
            alert: self.alert.clone(),
            allow_private_network: self.allow_private_network,
            origin,
        })
    }
}

/// Where a schedule is kept, and so where it is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A `[[schedule]]` of the config file: changed there, read at start and at SIGHUP.
    Config,
    /// Made through the API and stored.
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
        }
    }
}

/// One schedule, checked.
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
    pub origin: Origin,
}

/// Every schedule in force: the config file's, then the stored ones of other journeys.
pub async fn all(store: &dyn Governance, configured: &[Schedule]) -> crate::Result<Vec<Schedule>> {
    let mut schedules = configured.to_vec();
    for record in store.records(RecordKind::Schedule).await? {
        let definition: Definition = serde_json::from_str(&record.doc)?;
        if configured.iter().any(|s| s.journey == definition.journey) {
            continue;
        }
        let schedule = definition.check(Origin::Api).map_err(|e| {
            crate::Error::Internal(anyhow::anyhow!(
                "stored schedule of journey {:?} no longer checks: {e}",
                definition.journey
            ))
        })?;
        schedules.push(schedule);
    }
    Ok(schedules)
}

/// The config file's schedules as last read: a reload of the file replaces them while the
/// server runs, and every reader takes them afresh.
#[derive(Clone, Default)]
pub struct Configured(Arc<std::sync::RwLock<Arc<Vec<Schedule>>>>);

impl Configured {
    pub fn new(schedules: Vec<Schedule>) -> Configured {
        Configured(Arc::new(std::sync::RwLock::new(Arc::new(schedules))))
    }

    /// The schedules in force now.
    pub fn get(&self) -> Arc<Vec<Schedule>> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn replace(&self, schedules: Vec<Schedule>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(schedules);
    }
}

/// The processor that runs the schedules.
pub struct Scheduler {
    pub store: Arc<dyn Store>,
    /// The config file's schedules (the stored ones are read at every look).
    pub configured: Configured,
    /// Scenarios scanned at once, each in its own Chromium.
    pub browsers: usize,
    pub webhook: Webhook,
    /// When each journey was last tried, so that one that fails waits its period too.
    tried: Mutex<HashMap<String, i64>>,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn Store>,
        configured: Configured,
        browsers: usize,
        webhook: Webhook,
    ) -> Scheduler {
        Scheduler {
            store,
            configured,
            browsers: browsers.max(1),
            webhook,
            tried: Mutex::default(),
        }
    }

    /// Runs the first schedule that is due, if any.
    async fn pass(&self) -> Result<Step> {
        let now = time::now_ms();
        for schedule in &all(self.store.as_ref(), &self.configured.get()).await? {
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
            screenshots: true,
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

/// A schedule and where it stands, as the API shows it.
async fn shown(store: &dyn Store, schedule: &Schedule, now: i64) -> crate::Result<Value> {
    let state = state(store, schedule).await?;
    Ok(json!({
        "journey": schedule.journey,
        "every": humantime::format_duration(schedule.every).to_string(),
        "scenarios": schedule.scenarios.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "alert": schedule.alert,
        "allow_private_network": schedule.allow_private_network,
        "origin": schedule.origin.as_str(),
        "last_scan": state.last_scan.map(|(id, at)| json!({"id": id, "at": time::format_ms(at)})),
        "next_run": time::format_ms(state.due.max(now)),
        "run_requested": state.requested.is_some(),
    }))
}

/// Every schedule and where it stands, as the API shows them.
pub async fn list(
    store: &dyn Store,
    actor: &Actor,
    configured: &[Schedule],
) -> crate::Result<Value> {
    require(actor, READERS, "reading scan schedules")?;
    let now = time::now_ms();
    let mut listed = Vec::new();
    for schedule in all(store, configured).await? {
        listed.push(shown(store, &schedule, now).await?);
    }
    Ok(json!({ "schedules": listed }))
}

/// Stores a schedule made through the API (`replace`: the journey's stored one is
/// replaced, else it must have none), after checking that its journey and alert
/// destination exist; recorded in the audit log. The scheduler takes it in at its next
/// look, on whichever node runs the schedules.
pub async fn put(
    store: &dyn Store,
    actor: &Actor,
    configured: &[Schedule],
    definition: Definition,
    replace: bool,
) -> crate::Result<Value> {
    require(actor, TEAMS, "changing scan schedules")?;
    if definition.allow_private_network {
        // Scanning private addresses reaches the company's own network from the server.
        require(actor, SECURITY, "scanning private addresses on a schedule")?;
    }
    let schedule = definition.check(Origin::Api).map_err(|e| {
        crate::Error::invalid(format!("schedule of journey {:?}: {e}", definition.journey))
    })?;
    in_config(configured, &schedule.journey, "change")?;
    registry::journey(store, &schedule.journey).await?;
    if let Some(alert) = &schedule.alert {
        let destination = store.destination_by_name(alert).await?;
        if destination.is_none_or(|d| d.kind != DestinationKind::Webhook) {
            return Err(crate::Error::invalid(format!(
                "alert {alert:?} is not a webhook destination: `sightline destination list` shows them"
            )));
        }
    }
    let current = store
        .record(RecordKind::Schedule, &schedule.journey)
        .await?;
    let version = match (replace, &current) {
        (true, Some(record)) => Some(record.version),
        (true, None) => return Err(not_stored(&schedule.journey)),
        (false, Some(_)) => {
            return Err(crate::Error::Conflict(format!(
                "journey {:?} is scheduled already: PUT /api/v1/schedules/{} changes its schedule",
                schedule.journey, schedule.journey
            )))
        }
        (false, None) => None,
    };
    let doc = serde_json::to_string(&definition)?;
    store
        .write_records(
            RecordKind::Schedule,
            vec![RecordWrite {
                key: schedule.journey.clone(),
                version,
                doc,
            }],
        )
        .await?;
    let action = if replace {
        "scan.schedule.replace"
    } else {
        "scan.schedule.create"
    };
    let before = current
        .map(|record| serde_json::from_str::<Value>(&record.doc))
        .transpose()?;
    let after = Some(serde_json::to_value(&definition)?);
    crate::audit::record(store, actor, action, &schedule.journey, before, after).await?;
    shown(store, &schedule, time::now_ms()).await
}

/// Deletes a schedule made through the API; recorded in the audit log.
pub async fn delete(
    store: &dyn Store,
    actor: &Actor,
    configured: &[Schedule],
    journey: &str,
) -> crate::Result<()> {
    require(actor, TEAMS, "changing scan schedules")?;
    in_config(configured, journey, "remove")?;
    let record = store
        .record(RecordKind::Schedule, journey)
        .await?
        .ok_or_else(|| not_stored(journey))?;
    store
        .delete_record(RecordKind::Schedule, record.id, record.version)
        .await?;
    // A run asked for and not made goes with the schedule.
    store.set_checkpoint(&run_key(journey), 0).await?;
    let before = Some(serde_json::from_str::<Value>(&record.doc)?);
    crate::audit::record(store, actor, "scan.schedule.delete", journey, before, None).await
}

/// A conflict when the config file schedules `journey`: the API does not `verb` it.
fn in_config(configured: &[Schedule], journey: &str, verb: &str) -> crate::Result<()> {
    if configured.iter().any(|s| s.journey == journey) {
        return Err(crate::Error::Conflict(format!(
            "journey {journey:?} is scheduled by the config file's [[schedule]]: {verb} it there"
        )));
    }
    Ok(())
}

fn not_stored(journey: &str) -> crate::Error {
    crate::Error::not_found(
        "schedule",
        format!("no schedule scans journey {journey:?}: POST /api/v1/schedules makes one"),
    )
}

/// Asks for a run of a scheduled journey now (on whichever node runs the schedules),
/// recorded in the audit log.
pub async fn request_run(
    store: &dyn Store,
    actor: &Actor,
    configured: &[Schedule],
    journey: &str,
) -> crate::Result<Value> {
    require(actor, TEAMS, "running a scheduled scan")?;
    if !all(store, configured)
        .await?
        .iter()
        .any(|s| s.journey == journey)
    {
        return Err(not_stored(journey));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(every: &str, scenarios: &[&str]) -> Definition {
        Definition {
            journey: "shop".into(),
            every: every.into(),
            scenarios: scenarios.iter().map(|s| s.to_string()).collect(),
            alert: None,
            allow_private_network: false,
        }
    }

    #[test]
    fn a_definition_checks_its_period_and_scenarios() {
        let schedule = definition("7d", &["reject-all", "custom:eu"])
            .check(Origin::Api)
            .unwrap();
        assert_eq!(schedule.every, Duration::from_secs(7 * 86_400));
        assert_eq!(schedule.scenarios.len(), 2);
        assert_eq!(schedule.origin, Origin::Api);
        for (every, scenarios, says) in [
            ("59s", vec![], "shorter than a minute"),
            ("daily", vec![], "not a duration"),
            ("1h", vec!["dance"], "unknown scenario \"dance\""),
        ] {
            let refused = definition(every, &scenarios).check(Origin::Config);
            assert!(refused.unwrap_err().contains(says), "{every} {scenarios:?}");
        }
        let mut unnamed = definition("1h", &[]);
        unnamed.journey = " ".into();
        assert!(unnamed
            .check(Origin::Api)
            .unwrap_err()
            .contains("name the journey"));
    }

    #[test]
    fn a_stored_definition_reads_back_as_written_and_refuses_unknown_keys() {
        let mut written = definition("24h", &["gpc"]);
        written.alert = Some("security-alerts".into());
        let doc = serde_json::to_string(&written).unwrap();
        assert_eq!(serde_json::from_str::<Definition>(&doc).unwrap(), written);
        let minimal: Definition =
            serde_json::from_str(r#"{"journey":"shop","every":"1h"}"#).unwrap();
        assert_eq!(minimal, definition("1h", &[]));
        assert!(serde_json::from_str::<Definition>(
            r#"{"journey":"shop","every":"1h","evry":"2h"}"#
        )
        .is_err());
    }
}
