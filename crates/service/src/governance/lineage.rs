//! `sightline lineage` and `GET /api/v1/lineage`: reads the evidence for the lineage graph
//! from the store (a bounded sample of each source's events, the delivery log, stored scans,
//! tag owners) and renders it with `sightline_govern::lineage`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;
use sightline_activate::vendor::{Mapped, Vendor};
use sightline_activate::Transform;
use sightline_govern::lineage::{
    self, DestinationEvidence, Evidence, OpenLineageOptions, SampledEvent, ScanEvidence,
    ScannedRequest, SourceEvidence, VendorSeen,
};
use sightline_scan::{Category, Report};
use sightline_store::Store;

/// The newest log entries the source samples are taken from.
pub const SAMPLE_WINDOW: i64 = 10_000;
/// Events sampled per source at most.
pub const SAMPLE_PER_SOURCE: usize = 1_000;
/// Delivery outcomes counted per destination at most.
pub const DELIVERIES_COUNTED: usize = 100_000;
/// The newest stored scans read.
pub const SCANS_READ: usize = 20;
/// The `producer` URI: this build of Sightline (a URN: the project has no published URL).
const PRODUCER: &str = concat!("urn:sightline:", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Openlineage,
    Dot,
    Mermaid,
}

impl Format {
    pub fn parse(text: &str) -> crate::Result<Format> {
        match text {
            "openlineage" => Ok(Format::Openlineage),
            "dot" => Ok(Format::Dot),
            "mermaid" => Ok(Format::Mermaid),
            other => Err(crate::Error::invalid(format!(
                "unknown lineage format {other:?}: use openlineage, dot or mermaid"
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Openlineage => "application/x-ndjson",
            Format::Dot => "text/vnd.graphviz; charset=utf-8",
            Format::Mermaid => "text/plain; charset=utf-8",
        }
    }
}

/// The lineage in `format`; OpenLineage as one RunEvent JSON object per line.
pub async fn render(store: &dyn Store, format: Format) -> crate::Result<String> {
    let graph = lineage::build(&gather(store).await?);
    Ok(match format {
        Format::Dot => lineage::to_dot(&graph),
        Format::Mermaid => lineage::to_mermaid(&graph),
        Format::Openlineage => {
            let options = OpenLineageOptions {
                event_time: chrono::Utc::now(),
                producer: PRODUCER,
                namespace: "sightline",
            };
            let events =
                lineage::to_openlineage(&graph, &options, || uuid::Uuid::new_v4().to_string());
            let mut out = String::new();
            for event in events {
                out.push_str(&event.to_string());
                out.push('\n');
            }
            out
        }
    })
}

/// Reads the evidence; every read is bounded (see the constants).
pub async fn gather(store: &dyn Store) -> Result<Evidence> {
    let after = (store.last_seq().await? - SAMPLE_WINDOW).max(0);
    let mut sources = Vec::new();
    let mut typed: BTreeMap<String, Vec<(sightline_core::EventType, Value)>> = BTreeMap::new();
    for source in store.list_sources().await? {
        let events = store
            .read_events(after, SAMPLE_PER_SOURCE, Some(source.id))
            .await?;
        let mut sampled = Vec::new();
        for event in events {
            let Ok(body) = serde_json::from_str::<Value>(&event.body) else {
                continue;
            };
            typed
                .entry(source.name.clone())
                .or_default()
                .push((event.event_type, body.clone()));
            sampled.push(SampledEvent {
                received_at: event.received_at,
                body,
            });
        }
        sources.push(SourceEvidence {
            name: source.name,
            events: sampled,
        });
    }

    let approvals: BTreeMap<String, sightline_govern::flow::Flow> =
        crate::approval::all_flows(store, false)
            .await?
            .into_iter()
            .map(|f| (f.destination.clone(), f))
            .collect();
    let audiences = store.list_audiences().await?;
    let mut destinations = Vec::new();
    for dest in store.list_destinations().await? {
        // A stored transform equal to the default does nothing: no transform step.
        let transform: Option<Transform> = serde_json::from_value(dest.transform.clone())
            .ok()
            .filter(|t| *t != Transform::default());
        // Unreadable settings send nothing (`deliver.rs`), so they show nothing either.
        let vendor = Vendor::of(dest.kind, &dest.settings);
        let mut sent: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (source, events) in &typed {
            for (event_type, body) in events {
                if vendor.is_err() || !sightline_activate::gate::wants(&dest, *event_type, body) {
                    continue;
                }
                let mut body = body.clone();
                if let Some(t) = &transform {
                    t.apply(&mut body);
                }
                if let Ok(Some(vendor)) = &vendor {
                    // A vendor receives its own request, not the event: its fields are the
                    // lineage's (sent as one event's request would be, at the event's time).
                    let at = body
                        .get("timestamp")
                        .and_then(Value::as_str)
                        .and_then(sightline_core::time::parse_ms)
                        .unwrap_or_else(sightline_core::time::now_ms);
                    let input = sightline_activate::vendor::Input {
                        event_type: *event_type,
                        event: &body,
                        message_id: "",
                        consent: &BTreeMap::new(),
                        now_ms: at,
                    };
                    let Mapped::Item { envelope, item } = vendor.map(&input) else {
                        continue;
                    };
                    // A warehouse makes no request: it loads the event as it is.
                    body = match vendor.request(&dest.url, "", &envelope, vec![item.clone()]) {
                        None => item,
                        Some(request) => match serde_json::from_str(&request.body) {
                            Ok(request) => request,
                            Err(_) => continue,
                        },
                    };
                }
                sent.entry(source.clone()).or_default().push(body);
            }
        }
        let mut deliveries: BTreeMap<String, u64> = BTreeMap::new();
        let mut window: Option<(i64, i64)> = None;
        let (mut cursor, mut counted) = (0, 0);
        while counted < DELIVERIES_COUNTED {
            let page = store.deliveries(dest.id, None, cursor, 1_000).await?;
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            counted += page.len();
            for d in &page {
                *deliveries.entry(d.status.as_str().to_owned()).or_default() += 1;
                window = Some(window.map_or((d.at, d.at), |(a, b)| (a.min(d.at), b.max(d.at))));
            }
        }
        destinations.push(DestinationEvidence {
            name: dest.name.clone(),
            kind: dest.kind.as_str().to_owned(),
            purposes: dest.purposes.clone(),
            transform: transform.is_some().then(|| dest.transform.clone()),
            sent,
            deliveries,
            window,
            approval: Some(crate::approval::describe(
                dest.approved,
                approvals.get(&dest.name),
            )),
            audiences: audiences
                .iter()
                .filter(|a| a.sync.contains(&dest.name))
                .map(|a| a.name.clone())
                .collect(),
        });
    }

    let rows = store.scans(None).await?;
    let mut scans = Vec::new();
    for row in rows.iter().rev().take(SCANS_READ) {
        let Some(text) = store.scan_report(row.id).await? else {
            continue;
        };
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("stored scan {} is not a readable report", row.id))?;
        scans.push(scan_evidence(row.id, row.at, &report));
    }
    scans.reverse();

    let mut owners = BTreeMap::new();
    for tag in super::registry::tags(store, None).await? {
        owners
            .entry(tag.value.spec.vendor.to_lowercase())
            .or_insert(tag.value.spec.owner.clone());
    }
    Ok(Evidence {
        sources,
        destinations,
        scans,
        owners,
    })
}

/// A stored scan's third parties and the requests each received, over every scenario.
pub fn scan_evidence(id: i64, at: i64, report: &Report) -> ScanEvidence {
    let site = report
        .scenarios
        .iter()
        .flat_map(|s| s.steps.first())
        .find_map(|step| {
            url::Url::parse(&step.url)
                .ok()?
                .host_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| report.journey.clone());
    let mut vendors: BTreeMap<String, VendorSeen> = BTreeMap::new();
    for step in report.scenarios.iter().flat_map(|s| &s.steps) {
        for r in step.requests.iter().filter(|r| r.third_party) {
            let name = r.vendor.clone().unwrap_or_else(|| r.host());
            let category = r.category.unwrap_or(Category::Unknown);
            vendors
                .entry(name.clone())
                .or_insert_with(|| VendorSeen {
                    name,
                    category: category.name().to_owned(),
                    needs_consent: category.needs_consent(),
                    requests: Vec::new(),
                })
                .requests
                .push(ScannedRequest {
                    url: r.url.clone(),
                    post_body: r.post_body.clone(),
                });
        }
    }
    ScanEvidence {
        id,
        journey: report.journey.clone(),
        site,
        at,
        vendors: vendors.into_values().collect(),
    }
}
