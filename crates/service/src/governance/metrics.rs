//! Governance metrics at the edges (`sightline metrics`, `GET /api/v1/governance/metrics`):
//! a scan's metrics are recorded when it is stored; the log's consent counts are brought
//! forward from a cursor by the server's [`Refresher`] (a processor like the others: a
//! bounded page per step, its lag in /metrics) and by [`refresh`] before every read, each
//! reading only the records it changes; the day series joins them with
//! `sightline_govern::metrics`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sightline_attribution::{ChannelGrouper, PathsOptions};
use sightline_core::pruned::{self, Keep};
use sightline_govern::metrics::{self, ConsentCounts, DayMetrics, ScanMetrics, ScanObservation};
use sightline_scan::{FindingKind, Report, Scenario};
use sightline_store::{
    EventLog, Governance, RecordKind, RecordWrite, ScanRow, Store, StoreError, StoredRecord,
};

use crate::attribution::Question;

const CURSOR: &str = "consent-cursor";
const SCAN_CURSOR: &str = "scan-cursor";
const CONSENT_DAY: &str = "consent:";
const SCAN: &str = "scan:";
/// Events read per page; counted per refresh before a read at most, and per step of the
/// server's refresher (the next goes on from there). A step is kept small so that the
/// refresher, like every processor, never holds the CPU for long in one go: it once counted
/// half a million events per step, seconds of parsing right after a start that doubled the
/// profile lookups' p99.
const PAGE: usize = 1_000;
const COUNTED_PER_REFRESH: usize = 500_000;
const COUNTED_PER_STEP: usize = 10 * PAGE;
const WRITE_ATTEMPTS: usize = 3;
/// What the consent counts read of an event: its time and every place
/// `EventSignals::read` looks. Parsing only these keeps the refresher's cost per event
/// small next to the processors that need the whole body.
const COUNTED: Keep = Keep::Keys(&[
    ("timestamp", Keep::Whole),
    ("gpc", Keep::Whole),
    (
        "context",
        Keep::Keys(&[("consent", Keep::Whole), ("tcf", Keep::Whole)]),
    ),
]);

/// What a stored scan's report shows, for its metrics.
pub fn observe(row: &ScanRow, report: &Report) -> ScanObservation {
    let mut scan = ScanObservation {
        scan_id: row.id,
        journey: report.journey.clone(),
        at: row.at,
        ..ScanObservation::default()
    };
    for scenario in &report.scenarios {
        let scripts = scan
            .scripts
            .entry(scenario.name.name().to_string())
            .or_default();
        for step in &scenario.steps {
            for r in step.requests.iter().filter(|r| r.third_party) {
                scan.vendors
                    .insert(r.vendor.clone().unwrap_or_else(|| r.host()));
                if r.resource_type == "Script" {
                    scripts.extend(script_key(&r.url));
                }
            }
            if scenario.name == Scenario::NoInteraction {
                if let Some(blocked) = step.timing.load_ms_third_parties_blocked {
                    scan.load_times.push((step.timing.load_ms, blocked));
                }
            }
        }
    }
    scan.before_consent = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::PreConsent)
        .map(|f| f.vendor.clone())
        .collect();
    scan
}

/// A script by scheme, host and path: the same tag with another cache-buster is one tag.
fn script_key(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str()?,
        url.path()
    ))
}

fn parse<T: serde::de::DeserializeOwned>(record: &StoredRecord) -> Result<T> {
    serde_json::from_str(&record.doc)
        .with_context(|| format!("stored metric record {:?} is unreadable", record.key))
}

/// Records a stored scan's metrics against the inventory of this moment; a scan recorded
/// before keeps its metrics.
async fn record_scan(
    store: &dyn Governance,
    row: &ScanRow,
    report: &Report,
) -> Result<ScanMetrics> {
    let key = format!("{SCAN}{}", row.id);
    if let Some(kept) = store.record(RecordKind::Metric, &key).await? {
        return parse(&kept);
    }
    // Only an approved tag documents its vendor: a proposed, rejected or retired one does not.
    let documented: BTreeSet<String> =
        super::registry::tags(store, Some(sightline_govern::tag::TagStatus::Approved))
            .await?
            .into_iter()
            .map(|t| t.value.spec.vendor.to_lowercase())
            .collect();
    // The journey's first stored scan (scans are recorded in id order, so it has its
    // metrics unless it is this one).
    let first = match store.scans(Some(&report.journey)).await?.first() {
        Some(first) if first.id < row.id => {
            match store
                .record(RecordKind::Metric, &format!("{SCAN}{}", first.id))
                .await?
            {
                Some(kept) => Some(parse::<ScanMetrics>(&kept)?),
                None => None,
            }
        }
        _ => None,
    };
    let computed = metrics::scan_metrics(&observe(row, report), &documented, first.as_ref());
    let write = RecordWrite {
        key: key.clone(),
        version: None,
        doc: serde_json::to_string(&computed)?,
    };
    match store.write_records(RecordKind::Metric, vec![write]).await {
        Ok(_) => Ok(computed),
        // Another process recorded it first: theirs is kept.
        Err(StoreError::Conflict(_)) => match store.record(RecordKind::Metric, &key).await? {
            Some(kept) => parse(&kept),
            None => Ok(computed),
        },
        Err(e) => Err(e.into()),
    }
}

async fn scan_metrics(store: &dyn Governance) -> Result<Vec<ScanMetrics>> {
    let mut out: Vec<ScanMetrics> = store
        .records(RecordKind::Metric)
        .await?
        .iter()
        .filter(|r| r.key.starts_with(SCAN))
        .map(parse)
        .collect::<Result<_>>()?;
    out.sort_by_key(|m| (m.at, m.scan_id));
    Ok(out)
}

/// Brings the metrics forward: scans stored without metrics (before metrics were kept)
/// get theirs, and the log's consent counts are counted on from their cursor.
pub async fn refresh(store: &dyn Store) -> Result<()> {
    record_scans(store).await?;
    count_consent_on(store, COUNTED_PER_REFRESH).await?;
    Ok(())
}

/// [`count_consent`], read again after a version conflict: another process counted at the
/// same time (nothing of ours was written), so it counts on from where that one got.
async fn count_consent_on(store: &dyn Store, budget: usize) -> Result<Counted> {
    let mut attempt = 1;
    loop {
        match count_consent(store, budget).await {
            Err(e) if attempt < WRITE_ATTEMPTS && is_conflict(&e) => attempt += 1,
            done => return done,
        }
    }
}

/// How far a pass of the consent counts got.
#[derive(Debug, PartialEq, Eq)]
enum Counted {
    /// Through the end of the log.
    All,
    /// Its budget ran out first.
    Budget,
}

/// Scans after the scan cursor get their metrics, oldest first, if they have none (a scan
/// just stored, or scans stored before metrics were kept, so a journey's first scan is
/// recorded before the scans measured against it); the cursor then moves past them, so
/// each call reads only new rows.
pub async fn record_scans(store: &dyn Governance) -> Result<()> {
    let cursor = store.record(RecordKind::Metric, SCAN_CURSOR).await?;
    let after = match &cursor {
        Some(r) => parse::<Value>(r)?["id"].as_i64().unwrap_or(0),
        None => 0,
    };
    let rows: Vec<ScanRow> = store
        .scans(None)
        .await?
        .into_iter()
        .filter(|r| r.id > after)
        .collect();
    let Some(last) = rows.last().map(|r| r.id) else {
        return Ok(());
    };
    for row in &rows {
        let key = format!("{SCAN}{}", row.id);
        if store.record(RecordKind::Metric, &key).await?.is_none() {
            let report = super::registry::stored_report(store, row.id).await?;
            record_scan(store, row, &report).await?;
        }
    }
    let write = RecordWrite {
        key: SCAN_CURSOR.into(),
        version: cursor.map(|r| r.version),
        doc: json!({ "id": last }).to_string(),
    };
    match store.write_records(RecordKind::Metric, vec![write]).await {
        // Another process moved it at the same time, over the same scans.
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn is_conflict(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<StoreError>(),
        Some(StoreError::Conflict(_))
    )
}

/// Where the consent counts have counted through, and the record that keeps it.
async fn consent_cursor(store: &dyn Governance) -> Result<(i64, Option<StoredRecord>)> {
    let kept = store.record(RecordKind::Metric, CURSOR).await?;
    let seq = match &kept {
        Some(r) => parse::<Value>(r)?["seq"].as_i64().unwrap_or(0),
        None => 0,
    };
    Ok((seq, kept))
}

/// One pass of the consent counts over at most `budget` events; the counts and the cursor
/// are written in one transaction, so every event is counted exactly once.
async fn count_consent(store: &dyn Store, budget: usize) -> Result<Counted> {
    let (cursor, kept_cursor) = consent_cursor(store).await?;
    // Read once there is something to count: an idle step is a record and an empty page.
    let mut sources: Option<BTreeMap<i64, String>> = None;
    let mut counted: BTreeMap<String, BTreeMap<String, ConsentCounts>> = BTreeMap::new();
    let (mut seq, mut read, mut counted_all) = (cursor, 0, false);
    while read < budget {
        let page = store
            .read_events(seq, PAGE.min(budget - read), None)
            .await?;
        let Some(last) = page.last() else {
            counted_all = true;
            break;
        };
        seq = last.seq;
        read += page.len();
        let sources = match &mut sources {
            Some(sources) => sources,
            None => sources.insert(
                store
                    .list_sources()
                    .await?
                    .into_iter()
                    .map(|s| (s.id, s.name))
                    .collect(),
            ),
        };
        for event in &page {
            if !metrics::counts_for_consent(event.event_type, event.source_id) {
                continue;
            }
            let Ok(body) = pruned::parse(&event.body, &COUNTED) else {
                continue;
            };
            let at = body
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(sightline_core::time::parse_ms)
                .unwrap_or(event.received_at);
            let signal = !sightline_consent::event::EventSignals::read(&body).is_empty();
            let source = sources
                .get(&event.source_id)
                .cloned()
                .unwrap_or_else(|| format!("source {}", event.source_id));
            metrics::count_event(
                &mut counted,
                sightline_core::time::day_of(at),
                &source,
                signal,
            );
        }
    }
    let counted_through = if counted_all {
        Counted::All
    } else {
        Counted::Budget
    };
    if seq == cursor {
        return Ok(counted_through);
    }

    let mut writes = vec![RecordWrite {
        key: CURSOR.into(),
        version: kept_cursor.map(|r| r.version),
        doc: json!({ "seq": seq }).to_string(),
    }];
    // Only the days these events fell on are read and written.
    for (day, by_source) in counted {
        let key = format!("{CONSENT_DAY}{day}");
        let (version, mut kept) = match store.record(RecordKind::Metric, &key).await? {
            Some(r) => (
                Some(r.version),
                parse::<BTreeMap<String, ConsentCounts>>(&r)?,
            ),
            None => (None, BTreeMap::new()),
        };
        for (source, c) in by_source {
            let k = kept.entry(source).or_default();
            k.events += c.events;
            k.with_consent_signal += c.with_consent_signal;
        }
        writes.push(RecordWrite {
            key,
            version,
            doc: serde_json::to_string(&kept)?,
        });
    }
    store.write_records(RecordKind::Metric, writes).await?;
    Ok(counted_through)
}

/// The consent counts kept, by day and source.
async fn consent_counts(
    store: &dyn Governance,
) -> Result<BTreeMap<String, BTreeMap<String, ConsentCounts>>> {
    store
        .records(RecordKind::Metric)
        .await?
        .iter()
        .filter_map(|r| Some((r.key.strip_prefix(CONSENT_DAY)?.to_owned(), r)))
        .map(|(day, r)| Ok((day, parse(r)?)))
        .collect()
}

/// What to attribute when the series includes attribution variance.
pub struct Attribution {
    pub question: Question,
    pub grouper: ChannelGrouper,
    pub rules: crate::profiles::ProfileRules,
}

/// The models' variance per day, over the journeys that converted (or ended) that day.
async fn attribution_by_day(store: &dyn EventLog, a: Attribution) -> Result<BTreeMap<String, f64>> {
    let stitched = crate::attribution::journeys(store, &a.question, &a.grouper, a.rules).await?;
    let mut by_day: BTreeMap<String, Vec<sightline_attribution::Journey>> = BTreeMap::new();
    for journey in stitched.journeys {
        let day =
            sightline_core::time::day_of(journey.converted_at_ms.unwrap_or(journey.ended_at_ms));
        by_day.entry(day).or_default().push(journey);
    }
    let mut out = BTreeMap::new();
    for (day, journeys) in by_day {
        // A day without a touched conversion has no credit to vary.
        let Ok(report) =
            sightline_attribution::journeys_report(&journeys, &PathsOptions::default())
        else {
            continue;
        };
        if let Some(v) = metrics::attribution_variance(&report["variance"]) {
            out.insert(day, v);
        }
    }
    Ok(out)
}

/// The series per scan and per day, brought forward first.
pub struct Series {
    pub scans: Vec<ScanMetrics>,
    pub days: Vec<DayMetrics>,
}

pub async fn series(store: &dyn Store, attribution: Option<Attribution>) -> crate::Result<Series> {
    refresh(store).await?;
    let scans = scan_metrics(store).await?;
    let consent = consent_counts(store).await?;
    let variance = match attribution {
        Some(a) => attribution_by_day(store, a).await?,
        None => BTreeMap::new(),
    };
    let days = metrics::day_series(&scans, &consent, &variance);
    Ok(Series { scans, days })
}

impl Series {
    pub fn to_json(&self) -> Value {
        json!({ "scans": self.scans, "days": self.days })
    }
}

/// Keeps the log's consent counts current for the server: each step counts on at most
/// [`COUNTED_PER_STEP`] events. (Scans get their metrics when they are stored, and any
/// stored before metrics were kept when the metrics are next read: [`refresh`].)
pub struct Refresher(pub std::sync::Arc<dyn Store>);

impl crate::processors::Processor for Refresher {
    fn name(&self) -> String {
        "governance-metrics".into()
    }

    fn step(&self) -> crate::processors::StepFuture<'_> {
        Box::pin(async move {
            Ok(
                match count_consent_on(self.0.as_ref(), COUNTED_PER_STEP).await? {
                    Counted::Budget => crate::processors::Step::More,
                    Counted::All => crate::processors::Step::Idle,
                },
            )
        })
    }

    fn idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    fn applied_through(&self) -> crate::processors::PositionFuture<'_> {
        Box::pin(async move { Ok(Some(consent_cursor(self.0.as_ref()).await?.0)) })
    }

    /// Counts for a report nobody waits on: behind the profiles after a burst.
    fn behind(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_store::{Governance, SqliteStore};

    /// The consent counts read of a pruned body what they would read of the whole one.
    #[test]
    fn the_counted_parts_read_as_the_whole_body() {
        let context = r#""ip":"1.2.3.4","page":{"url":"https://shop.test/"}"#;
        for signals in [
            r#""context":{CONTEXT}"#.to_string(),
            r#""gpc":true,"context":{CONTEXT}"#.to_string(),
            r#""context":{CONTEXT,"tcf":"1YYN"}"#.to_string(),
            r#""context":{CONTEXT,"consent":{"categoryPreferences":{"Ads":true},
                "purposes":{"analytics":false},"tcf":"1YNN",
                "googleConsentMode":{"ad_storage":"denied"}}}"#
                .to_string(),
            r#""context":"not an object""#.to_string(),
        ] {
            let text = format!(
                r#"{{"type":"track","timestamp":"2026-01-02T03:04:05Z","properties":{{"a":1}},{}}}"#,
                signals.replace("CONTEXT", context)
            );
            let full: Value = serde_json::from_str(&text).unwrap();
            let counted = pruned::parse(&text, &COUNTED).unwrap();
            assert_eq!(full["timestamp"], counted["timestamp"], "{text}");
            let names = |body: &Value| {
                let signals = sightline_consent::event::EventSignals::read(body);
                let named: Vec<&str> = signals.named().iter().map(|(name, _)| *name).collect();
                format!("{named:?}")
            };
            assert_eq!(names(&full), names(&counted), "{text}");
        }
    }

    /// A one-step report of a scan that saw one third-party script.
    fn report() -> Report {
        serde_json::from_value(json!({
            "schema_version": 1, "journey": "shop", "incomplete": false, "duration_ms": 10,
            "findings": [],
            "scenarios": [{"name": "accept-all", "incomplete": null, "steps": [{
                "name": "landing", "url": "http://www.shop.test/", "request_count": 1,
                "third_party_count": 1, "bytes": 10, "vendors": [],
                "timing": {"load_ms": 5, "total_ms": 6},
                "requests": [{"url": "https://cdn.vendor.test/tag.js?v=2", "method": "GET",
                    "resource_type": "Script", "status": 200, "initiator_type": "parser",
                    "initiator_url": null, "initiator_chain": [], "third_party": true,
                    "vendor": "Vendor", "category": "analytics", "bytes": 10,
                    "before_consent": false}],
                "cookies": []
            }]}]
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn the_refresher_counts_a_bounded_page_per_step_as_a_refresh_counts_them_all() {
        use crate::processors::Processor;
        let (stepped, whole) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut stores = Vec::new();
        for dir in [&stepped, &whole] {
            let store = SqliteStore::open(dir.path()).await.unwrap();
            let source = sightline_store::Access::create_source(&store, "web", "hash")
                .await
                .unwrap()
                .id;
            let events = (0..5)
                .map(|i| sightline_core::NewEvent {
                    source_id: source,
                    message_id: format!("m{i}"),
                    event_type: sightline_core::EventType::Track,
                    received_at: 1_764_000_000_000,
                    body: format!(
                        r#"{{"type":"track","event":"E","timestamp":"2026-01-0{}T00:00:00Z"{}}}"#,
                        1 + i % 2,
                        if i % 3 == 0 { r#","gpc":true"# } else { "" }
                    ),
                })
                .collect();
            store.append(events, 0).await.unwrap();
            stores.push(std::sync::Arc::new(store));
        }
        let stepped: std::sync::Arc<dyn Store> = stores[0].clone();
        let refresher = Refresher(stepped.clone());
        assert_eq!(refresher.applied_through().await.unwrap(), Some(0));
        for (counted, through) in [
            (Counted::Budget, 2),
            (Counted::Budget, 4),
            (Counted::All, 5),
        ] {
            assert_eq!(
                count_consent_on(stepped.as_ref(), 2).await.unwrap(),
                counted
            );
            assert_eq!(refresher.applied_through().await.unwrap(), Some(through));
        }
        assert_eq!(
            refresher.step().await.unwrap(),
            crate::processors::Step::Idle
        );
        refresh(stores[1].as_ref()).await.unwrap();
        let counts = |store: std::sync::Arc<SqliteStore>| async move {
            consent_counts(store.as_ref()).await.unwrap()
        };
        let (stepped, whole) = (
            counts(stores[0].clone()).await,
            counts(stores[1].clone()).await,
        );
        assert_eq!(stepped, whole);
        assert_eq!(stepped.len(), 2, "two days: {stepped:?}");
    }

    #[tokio::test]
    async fn scans_stored_without_metrics_get_them_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let report = report();
        // Stored the way scans were before metrics were kept: the report only.
        let text = serde_json::to_string(&report).unwrap();
        let old = store
            .save_scan("shop", &json!({}), &text, &[])
            .await
            .unwrap();
        // The next scan, stored the way scans are now, no longer sees the vendor: it is
        // measured against the old one, which gets its metrics first.
        let mut cleaned = report.clone();
        cleaned.scenarios[0].steps[0].requests.clear();
        let newer = crate::governance::scans::store_scan(&store, &cleaned)
            .await
            .unwrap();

        let kept = scan_metrics(&store).await.unwrap();
        let ids: Vec<i64> = kept.iter().map(|m| m.scan_id).collect();
        assert_eq!(ids, [old.id, newer.id]);
        assert_eq!(kept[0].tags, ["https://cdn.vendor.test/tag.js"]);
        assert_eq!(kept[0].undocumented, ["Vendor"]);
        assert_eq!((kept[1].vendor_count, kept[1].vendor_reduction), (0, 1));

        // A second refresh changes nothing; recording a scan again keeps its metrics.
        let before = store.records(RecordKind::Metric).await.unwrap();
        refresh(&store).await.unwrap();
        record_scan(&store, &old, &report).await.unwrap();
        assert_eq!(store.records(RecordKind::Metric).await.unwrap(), before);
    }
}
