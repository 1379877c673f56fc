//! `sightline scan JOURNEY.toml --out DIR` and `sightline scan diff A B`: journey scans in
//! headless Chromium, per consent scenario (see `crates/scan`).

use crate::config::{FileConfig, StoreArgs};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sightline_scan::{run_scan, Report, ScanOptions, Scenario, Severity};
use sightline_service::governance::{registry, scans};
use std::path::PathBuf;

/// Ends the command with this exit code after printing the message to stderr.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Findings at or above `--fail-on` exit with this code, so CI gates can tell them from errors.
const FINDINGS_EXIT: u8 = 3;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ScanArgs {
    #[command(subcommand)]
    diff: Option<ScanCommand>,
    /// The journey file (TOML): steps, consent selectors, browser settings, inventory.
    /// The report is also stored (see `sightline scan list`).
    journey: Option<PathBuf>,
    /// Directory for report.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Scenarios to run: no-interaction, accept-all, reject-all, gpc, or custom:NAME for a
    /// journey's [consent.custom.NAME] [default: the four, then every custom one].
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Exit with 3 when a finding reaches this severity: low, medium, high or critical.
    #[arg(long, value_name = "SEVERITY")]
    fail_on: Option<String>,
    /// A vendor catalog (TOML) extending the one Sightline ships.
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// Also load each no-interaction step with third parties blocked, to measure their cost.
    #[arg(long)]
    tag_cost: bool,
    /// A tracker database extending the vendor lookup below the catalogs: Ghostery's
    /// trackerdb.json or a DuckDuckGo Tracker Radar domain_map.json.
    #[arg(long, value_name = "FILE")]
    trackerdb: Option<PathBuf>,
    /// An inventory file (TOML `vendors = [...]`) used instead of the journey's [inventory]
    /// [default: for a journey the registry holds, the registry's tags (`sightline tags
    /// list`) once it has one; else the journey's [inventory]].
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Scenarios run at once, each in its own Chromium [default: from cores and free memory,
    /// at most 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=8))]
    parallel: Option<u16>,
    /// Do not capture a screenshot per step.
    #[arg(long)]
    no_screenshots: bool,
    /// Let steps load localhost and private, loopback or link-local IP addresses, and let
    /// the journey's host_resolver_rules apply (off by default).
    #[arg(long)]
    allow_private_network: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum ScanCommand {
    /// New and removed vendors and findings between two reports, each a report.json path
    /// or a stored scan's id.
    Diff {
        old: String,
        new: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List stored scans, oldest first.
    List {
        /// Only this journey's.
        #[arg(long)]
        journey: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Store a report.json written by an earlier `sightline scan` (e.g. one run in CI).
    Import {
        report: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(args: ScanArgs, file: &FileConfig) -> Result<()> {
    if let Some(command) = args.diff {
        return stored(command, file).await;
    }
    let journey = args
        .journey
        .context("name the journey file: sightline scan JOURNEY.toml --out DIR")?;
    let out = args.out.context("say where the report goes: --out DIR")?;
    let scenarios = args
        .scenarios
        .iter()
        .map(|name| Scenario::parse_or_explain(name).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let fail_on = args
        .fail_on
        .as_deref()
        .map(|text| {
            Severity::parse(text).with_context(|| {
                format!("unknown severity {text:?}: use low, medium, high or critical")
            })
        })
        .transpose()?;
    let options = ScanOptions {
        scenarios,
        user_catalog: args.catalog,
        tracker_db: args.trackerdb,
        inventory: args.inventory,
        screenshots: !args.no_screenshots,
        parallel: args.parallel.map_or(0, usize::from),
        tag_cost: args.tag_cost,
        allow_private_network: args.allow_private_network,
        ..ScanOptions::default()
    };
    let store = args.store.open(file).await?;
    // A journey the registry holds is judged against the registry's tags, unless an
    // inventory file is given.
    let tags = match options.inventory {
        Some(_) => None,
        None => {
            let name = sightline_scan::Journey::load(&journey)?.name;
            registry::scan_inventory(store.as_ref(), &name).await?
        }
    };
    let options = ScanOptions { tags, ..options };
    let report = run_scan(&journey, &options).await?;
    let written = report.write_json(&out)?;
    print!("{}", report.summary());
    println!("report: {}", written.display());
    let stored = scans::store_scan(store.as_ref(), &report)
        .await
        .context("the report is written but could not be stored")?;
    println!("scan: {}", stored.id);
    match fail_on {
        Some(threshold) if report.reaches(threshold) => Err(Exit {
            code: FINDINGS_EXIT,
            message: format!(
                "findings reach --fail-on {}",
                args.fail_on.unwrap_or_default()
            ),
        }
        .into()),
        _ => Ok(()),
    }
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
            Err(_) => anyhow::bail!(
                "{text:?} is neither a report file nor a stored scan id (`sightline scan list` shows them)"
            ),
        }
    }
}

async fn stored(command: ScanCommand, file: &FileConfig) -> Result<()> {
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
                        registry::stored_report(store.as_ref(), id).await?
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
            let report = Report::read_with_screenshots(&report)?;
            let store = store.open(file).await?;
            let stored = scans::store_scan(store.as_ref(), &report).await?;
            println!("scan: {}", stored.id);
        }
    }
    Ok(())
}
