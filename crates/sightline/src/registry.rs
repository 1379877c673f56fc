//! The governance registry at the edges: stored scans (`sightline scan list|diff|import`).

use crate::config::FileConfig;
use crate::scan::ScanCommand;
use anyhow::{bail, Context, Result};
use serde_json::json;
use sightline_scan::Report;
use sightline_store::{ScanRow, Store};
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

/// Stores a scan report; returns its row (with the id later commands name it by).
pub async fn store_scan(store: &dyn Store, report: &Report) -> Result<ScanRow> {
    let text = serde_json::to_string(report)?;
    Ok(store
        .save_scan(&report.journey, &summary(report), &text)
        .await?)
}

/// A stored scan's report, or a clear error naming the id.
pub async fn stored_report(store: &dyn Store, id: i64) -> Result<Report> {
    let text = store
        .scan_report(id)
        .await?
        .with_context(|| format!("no stored scan {id}: `sightline scan list` shows them"))?;
    serde_json::from_str(&text).with_context(|| format!("stored scan {id} is not a scan report"))
}

/// A `scan diff` operand: a report file when one exists at that path, else a stored scan id.
enum Operand {
    File(std::path::PathBuf),
    Stored(i64),
}

impl Operand {
    fn parse(text: &str) -> Result<Operand> {
        let path = std::path::Path::new(text);
        if path.exists() {
            return Ok(Operand::File(path.to_path_buf()));
        }
        match text.parse::<i64>() {
            Ok(id) => Ok(Operand::Stored(id)),
            Err(_) => bail!(
                "{text:?} is neither a report file nor a stored scan id (`sightline scan list` shows them)"
            ),
        }
    }
}

pub async fn scan_command(command: ScanCommand, file: &FileConfig) -> Result<()> {
    match command {
        ScanCommand::Diff { old, new, store } => {
            // The store is opened only when an operand is a stored scan.
            let opened = tokio::sync::OnceCell::new();
            let mut reports = Vec::with_capacity(2);
            for text in [&old, &new] {
                reports.push(match Operand::parse(text)? {
                    Operand::File(path) => Report::read_json(&path)?,
                    Operand::Stored(id) => {
                        let store = opened.get_or_try_init(|| store.open(file)).await?;
                        stored_report(store.as_ref(), id).await?
                    }
                });
            }
            let (old, new) = (&reports[0], &reports[1]);
            print!("{}", sightline_scan::diff(old, new).summary());
        }
        ScanCommand::List {
            journey,
            store,
            json,
        } => {
            let store = store.open(file).await?;
            let scans = store.scans(journey.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&scans)?);
            } else {
                for s in scans {
                    println!(
                        "{}\t{}\t{}\t{} finding(s)\t{} vendor(s){}",
                        s.id,
                        s.journey,
                        sightline_core::time::format_ms(s.at),
                        s.summary["findings"],
                        s.summary["vendors"],
                        if s.summary["incomplete"] == true {
                            "\tincomplete"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        ScanCommand::Import { report, store } => {
            let report = Report::read_json(&report)?;
            let store = store.open(file).await?;
            let stored = store_scan(store.as_ref(), &report).await?;
            println!("scan: {}", stored.id);
        }
    }
    Ok(())
}
