//! `sightline journey|tags|backlog|vendor|lineage|metrics|report`: the governance half on
//! the command line.
//!
//! Commands that change the registry act as the API token given with `--token` (or
//! `SIGHTLINE_TOKEN`): its role is checked and its identity (`token:ID`) is what the change
//! log and the backlog history record, exactly as through the API.

use crate::config::{FileConfig, StoreArgs};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use sightline_govern::backlog::{BacklogAction, BacklogStatus, Filter, Severity};
use sightline_govern::journey::{Journey, Step};
use sightline_govern::tag::{Classification, Environment, StepRef, TagAction, TagSpec, TagStatus};
use sightline_govern::vendor::{DpaStatus, RiskRating, VendorRisk};
use sightline_govern::Actor;
use sightline_service::access::actor_for_token;
use sightline_service::governance::lineage::Format;
use sightline_service::governance::metrics::{self, Attribution};
use sightline_service::governance::registry::{self, Held};
use sightline_service::governance::{lineage, report};
use sightline_store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// The token a changing command acts as.
#[derive(Debug, Args)]
pub struct ActAs {
    /// The API token to act as (its role is checked; its id is recorded as the actor).
    #[arg(
        long,
        env = "SIGHTLINE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: String,
}

impl ActAs {
    /// The store, and the actor this token is in it.
    pub(crate) async fn open(
        &self,
        store: &StoreArgs,
        file: &FileConfig,
    ) -> Result<(Arc<dyn Store>, Actor)> {
        let store = store.open(file).await?;
        let actor = actor_for_token(store.as_ref(), &self.token).await?;
        Ok((store, actor))
    }
}

#[derive(Debug, Subcommand)]
pub enum JourneyCommand {
    /// Create a journey from named steps, e.g. --step landing=https://shop.example/.
    Add {
        name: String,
        /// NAME=URL, in journey order (repeatable).
        #[arg(long = "step", value_name = "NAME=URL", required = true)]
        steps: Vec<String>,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Import a scanner journey file (replaces a journey of the same name).
    Import {
        file: PathBuf,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Print a journey as a scanner journey file (`sightline scan` runs it).
    Export {
        name: String,
        /// Write it here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List journeys and their steps.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Remove a journey.
    Delete {
        name: String,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Args)]
pub struct ProposeArgs {
    #[arg(long)]
    vendor: String,
    #[arg(long)]
    purpose: String,
    #[arg(long)]
    owner: String,
    /// essential, optional or questionable.
    #[arg(long)]
    classification: String,
    /// The consent purpose it needs (required unless essential).
    #[arg(long)]
    consent_purpose: Option<String>,
    /// JOURNEY/STEP it fires on (repeatable).
    #[arg(long = "step", value_name = "JOURNEY/STEP")]
    steps: Vec<String>,
    /// What it collects: a property name or PII class (repeatable).
    #[arg(long = "collects", value_name = "FIELD")]
    data_collected: Vec<String>,
    /// production or staging [default: production].
    #[arg(long)]
    environment: Option<String>,
    /// YYYY-MM-DD.
    #[arg(long)]
    review_date: Option<String>,
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TagsCommand {
    /// Propose a tag (or a revision of the vendor's tag in that environment).
    Propose {
        #[command(flatten)]
        spec: ProposeArgs,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Approve a proposed tag (security role; not its proposer).
    Approve {
        id: i64,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Reject a proposed tag (security role; not its proposer).
    Reject {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Retire an approved or rejected tag.
    Retire {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Propose a tag for every vendor a stored scan saw that the inventory lacks.
    Adopt {
        scan: i64,
        /// production or staging [default: production].
        #[arg(long)]
        environment: Option<String>,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// List the inventory.
    List {
        /// proposed, approved, rejected or retired.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// The change log (one tag's, or all), oldest first, one JSON object per line.
    Log {
        id: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BacklogCommand {
    /// List backlog items (from stored scans).
    List {
        #[arg(long)]
        journey: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// At least this severe: low, medium, high or critical.
        #[arg(long)]
        severity: Option<String>,
        /// open, accepted_risk, fixed or verified.
        #[arg(long)]
        status: Option<String>,
        /// Only items past their deadline or their acceptance's expiry.
        #[arg(long)]
        overdue: bool,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Set an item's owner, deadline (YYYY-MM-DD) or impact.
    Assign {
        id: i64,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        deadline: Option<String>,
        #[arg(long)]
        impact: Option<String>,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Mark an open item fixed (the next scan that no longer sees it verifies it).
    Fix {
        id: i64,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Accept an item as a risk until a day (security or admin role).
    Accept {
        id: i64,
        #[arg(long)]
        reason: String,
        /// The last day the acceptance holds, YYYY-MM-DD.
        #[arg(long)]
        expires: String,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Open an item again.
    Reopen {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum VendorCommand {
    /// Record a vendor's risk review (security or admin role); sub-processors seen by
    /// scans are kept.
    Set {
        vendor: String,
        /// low, medium, high or critical.
        #[arg(long)]
        rating: String,
        /// missing, requested, signed or not_needed [default: missing].
        #[arg(long)]
        dpa: Option<String>,
        /// Data shared with the vendor (repeatable).
        #[arg(long = "shares", value_name = "FIELD")]
        data_shared: Vec<String>,
        /// Purposes it serves (repeatable).
        #[arg(long = "purpose")]
        purposes: Vec<String>,
        /// Sub-processors known besides those scans see (repeatable).
        #[arg(long = "sub-processor")]
        sub_processors: Vec<String>,
        /// YYYY-MM-DD of the last review.
        #[arg(long)]
        last_review: Option<String>,
        #[arg(long, default_value_t = sightline_govern::vendor::DEFAULT_REVIEW_DAYS)]
        review_every_days: u32,
        #[arg(long)]
        notes: Option<String>,
        #[command(flatten)]
        act: ActAs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// List vendor risk records.
    List {
        /// Only those whose review is overdue (or that were never reviewed).
        #[arg(long)]
        overdue: bool,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

/// Parses a value of a serde enum from its snake_case name; the error lists the choices.
fn choice<T: serde::de::DeserializeOwned>(flag: &str, text: &str, choices: &str) -> Result<T> {
    serde_json::from_value(Value::String(text.to_string()))
        .with_context(|| format!("--{flag} {text:?}: use {choices}"))
}

fn environment(text: Option<&str>) -> Result<Environment> {
    text.map_or(Ok(Environment::Production), |e| {
        choice("environment", e, "production or staging")
    })
}

fn print_one<T: serde::Serialize>(held: &Held<T>, json: bool, what: &str) {
    if json {
        println!("{}", held.to_json());
    } else {
        println!("{what} {} (version {})", held.id, held.version);
    }
}

fn print_list(items: Vec<Value>, json: bool, line: impl Fn(&Value) -> String) {
    if json {
        println!("{}", Value::Array(items));
    } else {
        for item in &items {
            println!("{}", line(item));
        }
    }
}

pub async fn journey(command: JourneyCommand, file: &FileConfig) -> Result<()> {
    match command {
        JourneyCommand::Add {
            name,
            steps,
            act,
            store,
            json,
        } => {
            let steps = steps
                .iter()
                .map(|s| {
                    let (name, url) = s
                        .split_once('=')
                        .with_context(|| format!("--step {s:?}: write NAME=URL"))?;
                    Ok(Step {
                        name: name.into(),
                        url: url.into(),
                        actions: Vec::new(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let (store, actor) = act.open(&store, file).await?;
            let journey = Journey {
                name,
                steps,
                settings: Default::default(),
            };
            let held = registry::put_journey(store.as_ref(), &actor, journey, false).await?;
            print_one(&held, json, "journey");
        }
        JourneyCommand::Import {
            file: path,
            act,
            store,
            json,
        } => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let (store, actor) = act.open(&store, file).await?;
            let held = registry::import_journey(store.as_ref(), &actor, &text)
                .await
                .with_context(|| format!("{} was not imported", path.display()))?;
            print_one(&held, json, "journey");
        }
        JourneyCommand::Export { name, out, store } => {
            let store = store.open(file).await?;
            let text = registry::journey(store.as_ref(), &name)
                .await?
                .value
                .to_scanner_toml()?;
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
        }
        JourneyCommand::List { store, json } => {
            let store = store.open(file).await?;
            let list = registry::journeys(store.as_ref()).await?;
            print_list(list.iter().map(Held::to_json).collect(), json, |j| {
                let steps: Vec<&str> = j["steps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["name"].as_str())
                    .collect();
                format!(
                    "{}\t{}",
                    j["name"].as_str().unwrap_or(""),
                    steps.join(" > ")
                )
            });
        }
        JourneyCommand::Delete { name, act, store } => {
            let (store, actor) = act.open(&store, file).await?;
            registry::delete_journey(store.as_ref(), &actor, &name).await?;
            println!("deleted journey {name:?}");
        }
    }
    Ok(())
}

fn tag_spec(args: ProposeArgs) -> Result<TagSpec> {
    let steps = args
        .steps
        .iter()
        .map(|s| {
            let (journey, step) = s
                .split_once('/')
                .with_context(|| format!("--step {s:?}: write JOURNEY/STEP"))?;
            Ok(StepRef {
                journey: journey.into(),
                step: step.into(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TagSpec {
        vendor: args.vendor,
        purpose: args.purpose,
        owner: args.owner,
        steps,
        data_collected: args.data_collected,
        consent_purpose: args.consent_purpose,
        classification: choice::<Classification>(
            "classification",
            &args.classification,
            "essential, optional or questionable",
        )?,
        environment: environment(args.environment.as_deref())?,
        review_date: args.review_date,
    })
}

pub async fn tags(command: TagsCommand, file: &FileConfig) -> Result<()> {
    let (id, action, reason, act, store, json) = match command {
        TagsCommand::Propose {
            spec,
            reason,
            act,
            store,
            json,
        } => (
            None,
            TagAction::Propose(tag_spec(spec)?),
            reason,
            act,
            store,
            json,
        ),
        TagsCommand::Approve {
            id,
            reason,
            act,
            store,
            json,
        } => (Some(id), TagAction::Approve, reason, act, store, json),
        TagsCommand::Reject {
            id,
            reason,
            act,
            store,
            json,
        } => (Some(id), TagAction::Reject, reason, act, store, json),
        TagsCommand::Retire {
            id,
            reason,
            act,
            store,
            json,
        } => (Some(id), TagAction::Retire, reason, act, store, json),
        TagsCommand::Adopt {
            scan,
            environment: env,
            act,
            store,
            json,
        } => {
            let env = environment(env.as_deref())?;
            let (store, actor) = act.open(&store, file).await?;
            let proposed = registry::adopt(store.as_ref(), &actor, scan, env).await?;
            print_list(proposed.iter().map(Held::to_json).collect(), json, |t| {
                format!(
                    "proposed tag {} for {}",
                    t["id"],
                    t["vendor"].as_str().unwrap_or("")
                )
            });
            return Ok(());
        }
        TagsCommand::List {
            status,
            store,
            json,
        } => {
            let status = status
                .map(|s| {
                    TagStatus::parse(&s).with_context(|| {
                        format!("--status {s:?}: use proposed, approved, rejected or retired")
                    })
                })
                .transpose()?;
            let store = store.open(file).await?;
            let list = registry::tags(store.as_ref(), status).await?;
            print_list(list.iter().map(Held::to_json).collect(), json, |t| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\towner {}",
                    t["id"],
                    t["vendor"].as_str().unwrap_or(""),
                    t["environment"].as_str().unwrap_or(""),
                    t["status"].as_str().unwrap_or(""),
                    t["classification"].as_str().unwrap_or(""),
                    t["owner"].as_str().unwrap_or("")
                )
            });
            return Ok(());
        }
        TagsCommand::Log { id, store } => {
            let store = store.open(file).await?;
            for entry in registry::tag_log(store.as_ref(), id).await? {
                println!("{entry}");
            }
            return Ok(());
        }
    };
    let (store, actor) = act.open(&store, file).await?;
    let held = registry::tag_action(store.as_ref(), &actor, id, action, &reason).await?;
    if json {
        println!("{}", held.to_json());
    } else {
        println!("tag {} is {}", held.id, held.value.status.name());
    }
    Ok(())
}

pub async fn backlog(command: BacklogCommand, file: &FileConfig) -> Result<()> {
    let (id, action, act, store, json) = match command {
        BacklogCommand::List {
            journey,
            owner,
            severity,
            status,
            overdue,
            store,
            json,
        } => {
            let filter = Filter {
                journey,
                owner,
                severity: severity
                    .map(|s| {
                        Severity::from_name(&s).with_context(|| {
                            format!("--severity {s:?}: use low, medium, high or critical")
                        })
                    })
                    .transpose()?,
                status: status
                    .map(|s| {
                        BacklogStatus::parse(&s).with_context(|| {
                            format!("--status {s:?}: use open, accepted_risk, fixed or verified")
                        })
                    })
                    .transpose()?,
                overdue,
            };
            let store = store.open(file).await?;
            let items = registry::backlog_items(store.as_ref(), &filter).await?;
            print_list(
                items.iter().map(registry::backlog_json).collect(),
                json,
                |i| {
                    format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\towner {}",
                        i["id"],
                        i["status"].as_str().unwrap_or(""),
                        i["severity"].as_str().unwrap_or(""),
                        i["journey"].as_str().unwrap_or(""),
                        i["finding"]["kind"].as_str().unwrap_or(""),
                        i["finding"]["vendor"].as_str().unwrap_or(""),
                        i["owner"].as_str().unwrap_or("-")
                    )
                },
            );
            return Ok(());
        }
        BacklogCommand::Assign {
            id,
            owner,
            deadline,
            impact,
            act,
            store,
            json,
        } => (
            id,
            BacklogAction::Assign {
                owner,
                deadline,
                impact,
            },
            act,
            store,
            json,
        ),
        BacklogCommand::Fix {
            id,
            note,
            act,
            store,
            json,
        } => (id, BacklogAction::Fix { note }, act, store, json),
        BacklogCommand::Accept {
            id,
            reason,
            expires,
            act,
            store,
            json,
        } => (
            id,
            BacklogAction::AcceptRisk { reason, expires },
            act,
            store,
            json,
        ),
        BacklogCommand::Reopen {
            id,
            reason,
            act,
            store,
            json,
        } => (id, BacklogAction::Reopen { reason }, act, store, json),
    };
    let (store, actor) = act.open(&store, file).await?;
    let held = registry::backlog_act(store.as_ref(), &actor, id, action).await?;
    if json {
        println!("{}", registry::backlog_json(&held));
    } else {
        println!("backlog item {} is {}", held.id, held.value.status.name());
    }
    Ok(())
}

pub async fn vendor(command: VendorCommand, file: &FileConfig) -> Result<()> {
    match command {
        VendorCommand::Set {
            vendor,
            rating,
            dpa,
            data_shared,
            purposes,
            sub_processors,
            last_review,
            review_every_days,
            notes,
            act,
            store,
            json,
        } => {
            let risk = VendorRisk {
                vendor,
                data_shared,
                purposes,
                dpa: match dpa {
                    Some(d) => {
                        choice::<DpaStatus>("dpa", &d, "missing, requested, signed or not_needed")?
                    }
                    None => DpaStatus::Missing,
                },
                sub_processors: sub_processors.into_iter().collect(),
                last_review,
                review_every_days,
                rating: choice::<RiskRating>("rating", &rating, "low, medium, high or critical")?,
                notes,
            };
            let (store, actor) = act.open(&store, file).await?;
            let held = registry::put_vendor(store.as_ref(), &actor, risk).await?;
            if json {
                println!("{}", registry::vendor_json(&held));
            } else {
                println!(
                    "vendor {:?} recorded (version {})",
                    held.value.vendor, held.version
                );
            }
        }
        VendorCommand::List {
            overdue,
            store,
            json,
        } => {
            let store = store.open(file).await?;
            let list = registry::vendors(store.as_ref(), overdue).await?;
            print_list(
                list.iter().map(registry::vendor_json).collect(),
                json,
                |v| {
                    format!(
                        "{}\t{}\tDPA {}\tnext review {}{}",
                        v["vendor"].as_str().unwrap_or(""),
                        v["rating"].as_str().unwrap_or(""),
                        v["dpa"].as_str().unwrap_or(""),
                        v["next_review"].as_str().unwrap_or("now"),
                        if v["overdue"] == json!(true) {
                            "\tOVERDUE"
                        } else {
                            ""
                        }
                    )
                },
            );
        }
    }
    Ok(())
}

// -- Lineage, metrics, the report --

#[derive(Debug, clap::Args)]
pub struct LineageArgs {
    /// openlineage (RunEvents as JSON lines), dot or mermaid.
    #[arg(long, default_value = "openlineage", value_parser = |text: &str| Format::parse(text))]
    format: Format,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn lineage(args: LineageArgs, file: &FileConfig) -> Result<()> {
    let store = args.store.open(file).await?;
    let text = lineage::render(store.as_ref(), args.format).await?;
    match args.out {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct AttributionArgs {
    /// Join attribution variance: the track event that counts as a conversion.
    #[arg(long, value_name = "EVENT")]
    conversion: Option<String>,
    /// The conversion's property holding its value, e.g. revenue.
    #[arg(long, value_name = "PROPERTY", requires = "conversion")]
    value_property: Option<String>,
    /// Only touches this recent count towards a conversion.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    lookback: String,
}

impl AttributionArgs {
    pub fn attribution(&self, file: &FileConfig) -> Result<Option<Attribution>> {
        let Some(conversion) = self.conversion.clone() else {
            return Ok(None);
        };
        Ok(Some(Attribution {
            question: sightline_service::attribution::Question {
                conversion,
                value_property: self.value_property.clone(),
                lookback: Some(self.lookback.clone()),
                ..Default::default()
            },
            grouper: sightline_attribution::ChannelGrouper::default(),
            rules: file.profile_rules()?,
        }))
    }
}

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Print `{"scans":[…],"days":[…]}`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    attribution: AttributionArgs,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn metrics(args: MetricsArgs, file: &FileConfig) -> Result<()> {
    let attribution = args.attribution.attribution(file)?;
    let store = args.store.open(file).await?;
    let series = metrics::series(store.as_ref(), attribution).await?;
    if args.json {
        println!("{}", series.to_json());
        return Ok(());
    }
    println!("day\tscans\ttags\tvendors\tundocumented\tbefore consent\tblocked scripts\tthird-party ms\tvendor reduction\tconsent quality\tattribution variance");
    let count = |v: Option<usize>| v.map_or("-".into(), |v| v.to_string());
    let share = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    for d in &series.days {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            d.day,
            d.scans,
            count(d.tag_count),
            count(d.vendor_count),
            count(d.undocumented_vendors),
            count(d.tags_before_consent),
            share(d.blocked_script_rate),
            d.third_party_latency_ms
                .map_or("-".into(), |v| format!("{v:.0}")),
            d.vendor_reduction.map_or("-".into(), |v| v.to_string()),
            share(d.consent_quality),
            d.attribution_variance
                .map_or("-".into(), |v| format!("{v:.3}")),
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    attribution: AttributionArgs,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn report(args: ReportArgs, file: &FileConfig) -> Result<()> {
    let attribution = args.attribution.attribution(file)?;
    let store = args.store.open(file).await?;
    let html = report::render(store.as_ref(), attribution).await?;
    std::fs::write(&args.out, html)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("report: {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    /// clap checks the whole command tree (e.g. flags that collide with `--data`).
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }
}
