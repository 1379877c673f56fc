//! Storing a scan: the report kept, then the registry (backlog, vendors) and the metrics
//! brought forward with it.

use super::{metrics, registry};
use crate::{Error, Result};
use serde_json::json;
use sightline_scan::Report;
use sightline_store::{Governance, ScanRow};
use std::collections::BTreeMap;

/// What `scan list` shows of a report without reading it again.
fn summary(report: &Report) -> serde_json::Value {
    let mut by_severity: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &report.findings {
        *by_severity.entry(f.severity.name()).or_default() += 1;
    }
    let vendors: std::collections::BTreeSet<&str> = report
        .scenarios
        .iter()
        .flat_map(|s| &s.steps)
        .flat_map(|s| &s.vendors)
        .map(|v| v.name.as_str())
        .collect();
    json!({
        "incomplete": report.incomplete,
        "scenarios": report.scenarios.iter().map(|s| s.name.name()).collect::<Vec<_>>(),
        "findings": report.findings.len(),
        "findings_by_severity": by_severity,
        "vendors": vendors.len(),
    })
}

/// Stores a scan report with its screenshots; returns its row (with the id later commands
/// name it by).
/// The backlog and the vendors' sub-processors are then brought forward with it, and its
/// metrics recorded.
pub async fn store_scan(store: &dyn Governance, report: &Report) -> Result<ScanRow> {
    let text = serde_json::to_string(report)?;
    let row = store
        .save_scan(
            &report.journey,
            &summary(report),
            &text,
            &report.screenshot_files,
        )
        .await?;
    // Another writer may move a record between our read and write (a version conflict,
    // nothing written): read again and retry, a bounded number of times.
    for attempt in 1..=WRITE_ATTEMPTS {
        let applied = match registry::apply_scan_to_backlog(store, &row, report).await {
            Ok(_) => registry::apply_scan_to_vendors(store, report)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        let applied = match applied {
            Ok(()) => metrics::record_scans(store).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        match applied {
            Ok(()) => break,
            Err(Error::Conflict(_)) if attempt < WRITE_ATTEMPTS => continue,
            Err(e) => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "scan {} is stored but the backlog, vendors or metrics were not brought forward ({e}): `sightline scan import` the report again",
                    row.id
                )))
            }
        }
    }
    Ok(row)
}

const WRITE_ATTEMPTS: usize = 3;
