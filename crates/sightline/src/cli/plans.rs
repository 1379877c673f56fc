//! `sightline plan …`: tracking plans on the store a running server enforces them from
//! (a change takes effect there within a second), and `plan check` for CI pipelines.

use crate::cli::scan::Exit;
use crate::config::{FileConfig, StoreArgs};
use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};
use sightline_core::time::{self, DAY_MS};
use sightline_core::EventType;
use sightline_plans::{Enforcer, Fixes, Plan};
use sightline_service::access::operator;
use sightline_service::plans::{self, ImportFormat};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `plan check` exits with this code when any event breaks the plan, so that a pipeline
/// can tell violations from errors (which exit 1).
const VIOLATIONS_EXIT: u8 = 3;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Segment's tracking plan JSON (its Public API's export).
    Segment,
    /// A Snowplow self-describing JSON Schema (Iglu), for one track event.
    Iglu,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Store a plan from a JSON file: version 1 under a new name, the next version under a
    /// known one.
    Add {
        name: String,
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Print {"name","version"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a plan: Segment's tracking plan JSON, or a Snowplow Iglu schema added as a
    /// track event's rule to the plan named.
    Import {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "segment")]
        format: Format,
        /// The plan's name [default for segment: the file's own name].
        #[arg(long)]
        name: Option<String>,
        /// For an Iglu schema: the track event it is the rule of [default: the schema's name].
        #[arg(long)]
        event: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// List plans with their versions and the sources held to them.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Print a plan (JSON), or in Segment's shape with --segment.
    Show {
        name: String,
        /// An earlier version [default: the newest].
        #[arg(long, value_name = "N", conflicts_with = "segment")]
        version: Option<i64>,
        /// Export in Segment's tracking plan shape.
        #[arg(long)]
        segment: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Hold a source to a plan (several sources may share one), with its fixes.
    Assign {
        plan: String,
        #[arg(long, value_name = "NAME")]
        source: String,
        /// A JSON file of fixes applied before validation: `rename_events`,
        /// `rename_properties` (old → new), `coerce_numbers` (true/false).
        #[arg(long, value_name = "FILE")]
        fixes: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Release a source from its plan.
    Unassign {
        #[arg(long, value_name = "NAME")]
        source: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A source's violations: counts per day, event and type, and masked samples.
    Violations {
        #[arg(long, value_name = "NAME")]
        source: String,
        /// First day, YYYY-MM-DD [default: 7 days ago].
        #[arg(long, value_name = "DAY")]
        since: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Check events (one Segment JSON call per line) against a plan file or stored plan;
    /// prints each violation with its path and exits 3 when there is any.
    Check {
        /// A plan file (JSON), or the name of a stored plan.
        plan: String,
        events: PathBuf,
        /// Fixes (JSON) to apply first, as a source's would be.
        #[arg(long, value_name = "FILE")]
        fixes: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Draft a plan from a source's events (names, property types, required properties,
    /// enum candidates), to review and then `plan add`.
    Infer {
        #[arg(long, value_name = "NAME")]
        source: String,
        /// Only events received since: YYYY-MM-DD, or a duration ago (7d, 12h).
        #[arg(long, value_name = "D")]
        since: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
}

pub async fn plan(command: PlanCommand, file: &FileConfig) -> Result<()> {
    match command {
        PlanCommand::Add {
            name,
            file: path,
            store,
            json,
        } => {
            let document = read(&path, "plan")?;
            let store = store.open(file).await?;
            let stored = plans::put_plan(store.as_ref(), &operator(), &name, &document).await?;
            print_stored(&stored, json);
        }
        PlanCommand::Import {
            file: path,
            format,
            name,
            event,
            store,
            json,
        } => {
            let text = read(&path, "file")?;
            let format = match format {
                Format::Segment => ImportFormat::Segment,
                Format::Iglu => ImportFormat::Iglu {
                    event: event.as_deref(),
                },
            };
            let store = store.open(file).await?;
            let stored =
                plans::import_plan(store.as_ref(), &operator(), name.as_deref(), format, &text)
                    .await?;
            print_stored(&stored, json);
        }
        PlanCommand::List { store, json } => {
            let store = store.open(file).await?;
            let list = plans::list_plans(store.as_ref(), &operator()).await?;
            if json {
                println!("{}", Value::Array(list));
            } else {
                for plan in &list {
                    println!(
                        "{}\tversion {}\tsources: {}",
                        plan["name"].as_str().unwrap_or_default(),
                        plan["version"],
                        plan["sources"]
                    );
                }
            }
        }
        PlanCommand::Show {
            name,
            version,
            segment,
            store,
        } => {
            let store = store.open(file).await?;
            let shown = match segment {
                true => plans::export_segment(store.as_ref(), &operator(), &name).await?,
                false => plans::show_plan(store.as_ref(), &operator(), &name, version).await?,
            };
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        PlanCommand::Assign {
            plan,
            source,
            fixes,
            store,
        } => {
            let fixes = match fixes {
                Some(path) => read(&path, "fixes")?,
                None => "{}".into(),
            };
            let store = store.open(file).await?;
            plans::assign_plan(store.as_ref(), &operator(), &source, Some(&plan), &fixes).await?;
            println!("source {source:?} is held to plan {plan:?}");
        }
        PlanCommand::Unassign { source, store } => {
            let store = store.open(file).await?;
            plans::assign_plan(store.as_ref(), &operator(), &source, None, "{}").await?;
            println!("source {source:?} is held to no plan");
        }
        PlanCommand::Violations {
            source,
            since,
            store,
            json,
        } => {
            let since = since.unwrap_or_else(|| time::day_of(time::now_ms() - 7 * DAY_MS));
            let store = store.open(file).await?;
            let found = plans::violations(store.as_ref(), &operator(), &source, &since).await?;
            if json {
                println!("{found}");
            } else {
                for count in found["counts"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}\t{}",
                        count["day"].as_str().unwrap_or_default(),
                        count["event"].as_str().unwrap_or_default(),
                        count["type"].as_str().unwrap_or_default(),
                        count["count"]
                    );
                }
            }
        }
        PlanCommand::Check {
            plan,
            events,
            fixes,
            store,
        } => {
            let plan_path = Path::new(&plan);
            let (name, version, document) = if plan_path.is_file() {
                (plan.clone(), 0, read(plan_path, "plan")?)
            } else {
                let store = store.open(file).await?;
                let shown = plans::show_plan(store.as_ref(), &operator(), &plan, None).await?;
                let version = shown["version"].as_i64().unwrap_or_default();
                (plan.clone(), version, shown["plan"].to_string())
            };
            let compiled =
                Plan::parse(&document).map_err(|e| anyhow::anyhow!("plan refused: {e}"))?;
            let fixes = match fixes {
                Some(path) => Fixes::parse(&read(&path, "fixes")?)
                    .map_err(|e| anyhow::anyhow!("fixes refused: {e}"))?,
                None => Fixes::default(),
            };
            let enforcer = Enforcer::new(name, version, Arc::new(compiled), fixes);
            check(&enforcer, &events)?;
        }
        PlanCommand::Infer {
            source,
            since,
            store,
        } => {
            let since = match since {
                None => 0,
                Some(text) => since_ms(&text)?,
            };
            let store = store.open(file).await?;
            let draft = plans::infer_plan(store.as_ref(), &operator(), &source, since).await?;
            eprintln!(
                "drafted from {} events of source {source:?}: review, then `sightline plan add NAME FILE`",
                draft["events_read"]
            );
            println!("{}", serde_json::to_string_pretty(&draft["plan"])?);
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` (its start, UTC) or a duration ago (`7d`, `12h`).
fn since_ms(text: &str) -> Result<i64> {
    if let Some(ms) = time::parse_ms(&format!("{text}T00:00:00Z")) {
        return Ok(ms);
    }
    match humantime::parse_duration(text) {
        Ok(ago) => Ok(time::now_ms() - ago.as_millis() as i64),
        Err(_) => bail!("--since {text:?} is neither a day (YYYY-MM-DD) nor a duration (7d, 12h)"),
    }
}

fn print_stored(stored: &sightline_store::StoredPlan, json: bool) {
    if json {
        println!(
            "{}",
            json!({"name": stored.name, "version": stored.version})
        );
    } else {
        println!("stored plan {:?} version {}", stored.name, stored.version);
    }
}

/// Checks every line; prints each violation as `LINE EVENT PATH: MESSAGE (TYPE, ACTION)`.
fn check(enforcer: &Enforcer, events: &Path) -> Result<()> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(events)
            .with_context(|| format!("cannot read the events {}", events.display()))?,
    );
    let (mut checked, mut broken, mut problems) = (0usize, 0usize, 0usize);
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("cannot read line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        checked += 1;
        let event_type = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(event)) => event
                .get("type")
                .and_then(Value::as_str)
                .and_then(EventType::parse),
            _ => {
                println!("line {number}: not a JSON object");
                problems += 1;
                continue;
            }
        };
        let Some(event_type) = event_type else {
            println!("line {number}: /type: missing or not a call type (track, identify, page, screen, group, alias)");
            problems += 1;
            continue;
        };
        let screened = enforcer.screen(event_type, &line);
        if screened.violations.is_empty() {
            continue;
        }
        broken += 1;
        for v in &screened.violations {
            println!(
                "line {number} {:?} {}: {} ({}, {})",
                screened.event,
                v.path,
                v.message,
                v.kind.as_str(),
                v.action.as_str(),
            );
        }
    }
    if broken + problems > 0 {
        return Err(Exit {
            code: VIOLATIONS_EXIT,
            message: format!(
                "{broken} of {checked} events break the plan; {problems} lines are not events"
            ),
        }
        .into());
    }
    eprintln!("{checked} events checked: no violations");
    Ok(())
}
