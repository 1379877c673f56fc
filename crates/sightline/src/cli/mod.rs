//! The command line: argument definitions, dispatch, and the small subcommands (sources,
//! tokens, events, consent, measurement). Each command parses its arguments, calls the
//! services (`sightline_service`) as the operator (or as `--token`), and prints.

mod attribution;
mod audiences;
mod cluster;
mod crm;
mod destinations;
mod governance;
mod link;
mod plans;
mod privacy;
mod profiles;
pub mod scan;

use crate::config::{self, FileConfig, StoreArgs};
use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use sightline_core::{time, Role};
use sightline_service::access::operator;
use sightline_service::{events, sources};
use sightline_store::Store;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "sightline",
    version,
    about = "Customer data platform with marketing-tag governance built in",
    long_about = "Customer data platform with marketing-tag governance built in.\n\n\
        Settings come from flags, then SIGHTLINE_* environment variables, then the TOML file \
        named by --config, then defaults."
)]
pub struct Cli {
    /// TOML config file (keys: data, database_url, log_url, node_id, listen, metrics_listen, dedup_window, key_grace, max_in_flight, profile_cache, consent_mapping, webhook_ca_file, scan_browsers, [identity], [approval], [log], [retention], [[schedule]]).
    #[arg(long, global = true, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector and the API.
    Serve(crate::serve::ServeArgs),
    /// Manage tracking sources and their write keys.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the event log.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Where the event log is (the store, or a JetStream stream).
    #[command(subcommand)]
    Log(cluster::LogCommand),
    /// The nodes sharing the store and the processor each runs.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Consent signals.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Consent-gated destinations that events are delivered to.
    #[command(subcommand)]
    Destination(destinations::DestinationCommand),
    /// The delivery log: list outcomes, replay dead letters.
    #[command(subcommand)]
    Deliveries(destinations::DeliveriesCommand),
    /// Audiences: rules over profiles and their events, evaluated as events arrive.
    #[command(subcommand)]
    Audience(audiences::AudienceCommand),
    /// Tracking plans: schemas per source enforced at collection, their violations.
    #[command(subcommand)]
    Plan(plans::PlanCommand),
    /// Measurement kept without identifiers.
    #[command(subcommand)]
    Measurement(MeasurementCommand),
    /// Computed traits: per-profile aggregates of events, usable in audience rules.
    #[command(subcommand)]
    Trait(audiences::TraitCommand),
    /// Unified profiles, looked up by any identifier.
    #[command(subcommand)]
    Profile(profiles::ProfileCommand),
    /// The identity graph behind the profiles.
    #[command(subcommand)]
    Identity(profiles::IdentityCommand),
    /// Scan a customer journey in headless Chromium under each consent scenario.
    Scan(scan::ScanArgs),
    /// Multi-touch attribution over the log's stitched journeys, or over imported paths.
    Attribution(attribution::AttributionArgs),
    /// Probabilistic record linkage of CSV files, and its clerical review queue.
    #[command(subcommand)]
    Link(link::LinkCommand),
    /// Import records into profiles (CRM exports).
    #[command(subcommand)]
    Import(crm::ImportCommand),
    /// Governance: customer journeys and their steps (scanner journey files in and out).
    #[command(subcommand)]
    Journey(governance::JourneyCommand),
    /// Governance: the tag inventory, its approval workflow and change log.
    #[command(subcommand)]
    Tags(governance::TagsCommand),
    /// Governance: the findings backlog fed by stored scans.
    #[command(subcommand)]
    Backlog(governance::BacklogCommand),
    /// Governance: vendor risk records and overdue reviews.
    #[command(subcommand)]
    Vendor(governance::VendorCommand),
    /// Governance: data lineage from sources and scanned sites to destinations and vendors.
    Lineage(governance::LineageArgs),
    /// Governance: metrics per scan and per day (tags, vendors, consent quality, …).
    Metrics(governance::MetricsArgs),
    /// Governance: the report for a CMO and a CISO, one self-contained HTML file.
    Report(governance::ReportArgs),
    /// The audit log of every change (and profile lookup): list it, verify its hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Privacy rights: export everything held about a person (subject access).
    #[command(subcommand)]
    Privacy(privacy::PrivacyCommand),
    /// Print the HTTP API's OpenAPI 3.1 document, as served at /api/v1/openapi.json and
    /// checked in as docs/openapi.json.
    Openapi {
        /// Print the route × role matrix in Markdown instead (docs/roles.md).
        #[arg(long)]
        roles: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print entries, oldest first, after id AFTER (JSON lines with --json).
    List {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain: exits non-zero naming the first bad entry when one was
    /// edited, removed, inserted or moved; else prints the count and the newest hash.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum MeasurementCommand {
    /// Counts of the events analytics consent did not cover, per day, source and event
    /// name: all that is kept of them for measurement.
    ConsentDenied {
        /// First day, YYYY-MM-DD.
        #[arg(long, default_value = "0000-01-01")]
        from: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long, default_value = "9999-12-31")]
        to: String,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConsentCommand {
    /// Decode a TCF v2 TC string, a GPP string or a US Privacy string (kind detected).
    Decode {
        /// The consent string, e.g. a `euconsent-v2` cookie value or `1YNN`.
        string: String,
        /// Print one line of JSON (the default is indented JSON).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SourceCommand {
    /// Create a source and print its write key (shown this once).
    Add {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Print {"id","name","write_key"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List sources (never their keys).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new write key; the old ones keep working for the grace period.
    RotateKey {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        /// How long the old keys keep working [default: 24h; "0s" revokes them now].
        #[arg(long, env = "SIGHTLINE_KEY_GRACE", value_name = "DURATION")]
        grace: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token and print it (shown this once).
    Create {
        /// admin, marketing, security, analyst, privacy or metrics (reads /metrics only).
        #[arg(long)]
        role: String,
        /// The person it is for: the governance registry records this name as the actor
        /// and refuses approvals of one's own proposals across one's tokens.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print {"id","role","token"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print events from the log as NDJSON and follow new ones as they arrive.
    Tail {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this source's events.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// Start after this sequence number [default: the end of the log].
        #[arg(long, value_name = "SEQ", conflicts_with = "from_start")]
        after: Option<i64>,
        /// Start at the beginning of the log.
        #[arg(long)]
        from_start: bool,
        /// Print what is there and exit instead of following.
        #[arg(long)]
        no_follow: bool,
    },
}

pub async fn run(cli: Cli) -> Result<()> {
    let file = FileConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => crate::serve::run(args, &file, cli.config.as_deref()).await,
        Command::Openapi { roles } => {
            if roles {
                print!("{}", crate::http::contract::roles_markdown());
            } else {
                print!("{}", crate::http::contract::document());
            }
            Ok(())
        }
        Command::Source(command) => source(command, &file).await,
        Command::Token(TokenCommand::Create {
            role,
            name,
            store,
            json,
        }) => {
            let Some(role) = Role::parse(&role) else {
                bail!("unknown role {role:?}: use admin, marketing, security, analyst, privacy or metrics");
            };
            let store = store.open(&file).await?;
            let (token, secret) =
                sources::create_token(store.as_ref(), &operator(), role, name.as_deref()).await?;
            if json {
                println!(
                    "{}",
                    json!({"id": token.id, "role": token.role, "token": secret})
                );
            } else {
                println!("created {role} token (shown once): {secret}");
            }
            Ok(())
        }
        Command::Destination(command) => destinations::destination(command, &file).await,
        Command::Deliveries(command) => destinations::deliveries(command, &file).await,
        Command::Audience(command) => audiences::audience(command, &file).await,
        Command::Plan(command) => plans::plan(command, &file).await,
        Command::Profile(command) => profiles::profile(command, &file).await,
        Command::Identity(command) => profiles::identity(command, &file).await,
        Command::Log(command) => cluster::log(command, &file).await,
        Command::Cluster(command) => cluster::cluster(command, &file).await,
        Command::Trait(command) => audiences::computed_traits(command, &file).await,
        Command::Measurement(MeasurementCommand::ConsentDenied {
            from,
            to,
            store,
            json,
        }) => {
            let store = store.open(&file).await?;
            let counts = events::consent_denied(store.as_ref(), &operator(), &from, &to).await?;
            if json {
                println!("{}", json!({"counts": counts}));
            } else {
                for c in counts {
                    println!(
                        "{}\tsource {}\t{}\t{}",
                        c.day, c.source_id, c.event, c.count
                    );
                }
            }
            Ok(())
        }
        Command::Scan(args) => scan::run(args, &file).await,
        Command::Attribution(args) => attribution::run(args, &file).await,
        Command::Link(command) => link::run(command, &file).await,
        Command::Import(command) => crm::import(command, &file).await,
        Command::Journey(command) => governance::journey(command, &file).await,
        Command::Tags(command) => governance::tags(command, &file).await,
        Command::Backlog(command) => governance::backlog(command, &file).await,
        Command::Vendor(command) => governance::vendor(command, &file).await,
        Command::Lineage(args) => governance::lineage(args, &file).await,
        Command::Metrics(args) => governance::metrics(args, &file).await,
        Command::Report(args) => governance::report(args, &file).await,
        Command::Audit(command) => audit(command, &file).await,
        Command::Privacy(command) => privacy::run(command, &file).await,
        Command::Consent(ConsentCommand::Decode { string, json }) => {
            let decoded = sightline_consent::decode(string.trim())?;
            let text = if json {
                serde_json::to_string(&decoded)?
            } else {
                serde_json::to_string_pretty(&decoded)?
            };
            println!("{text}");
            Ok(())
        }
        Command::Events(EventsCommand::Tail {
            store,
            source,
            after,
            from_start,
            no_follow,
        }) => {
            let store = store.open(&file).await?;
            tail(
                store.as_ref(),
                source.as_deref(),
                after,
                from_start,
                !no_follow,
            )
            .await
        }
    }
}

async fn audit(command: AuditCommand, file: &FileConfig) -> Result<()> {
    match command {
        AuditCommand::List {
            after,
            limit,
            store,
            json,
        } => {
            let store = store.open(file).await?;
            let entries =
                sightline_service::audit::list(store.as_ref(), &operator(), after, limit).await?;
            for e in entries {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        e.id,
                        time::format_ms(e.at),
                        e.actor,
                        e.role,
                        e.action,
                        e.target
                    );
                }
            }
            Ok(())
        }
        AuditCommand::Verify { store } => {
            let store = store.open(file).await?;
            match sightline_service::audit::verify(store.as_ref(), &operator()).await? {
                sightline_service::audit::Verified::Intact { entries, head } => {
                    println!("audit log intact: {entries} entries, head {head}");
                    Ok(())
                }
                sightline_service::audit::Verified::Broken(broken) => {
                    bail!("audit log broken at {broken}")
                }
            }
        }
    }
}

async fn source(command: SourceCommand, file: &FileConfig) -> Result<()> {
    match command {
        SourceCommand::Add { name, store, json } => {
            let store = store.open(file).await?;
            let (source, key) = sources::add_source(store.as_ref(), &operator(), &name).await?;
            if json {
                println!(
                    "{}",
                    json!({"id": source.id, "name": source.name, "write_key": key})
                );
            } else {
                println!(
                    "created source {:?}; its write key (shown once): {key}",
                    source.name
                );
            }
        }
        SourceCommand::List { store, json } => {
            let store = store.open(file).await?;
            let listed = sources::list_sources(store.as_ref(), &operator()).await?;
            if json {
                println!("{}", serde_json::to_string(&listed)?);
            } else {
                for s in listed {
                    println!(
                        "{}\t{}\tcreated {}",
                        s.id,
                        s.name,
                        time::format_ms(s.created_at)
                    );
                }
            }
        }
        SourceCommand::RotateKey {
            name,
            store,
            grace,
            json,
        } => {
            let grace = grace
                .or_else(|| file.key_grace.clone())
                .unwrap_or_else(|| "24h".into());
            let grace = config::parse_duration("--grace", &grace)?;
            let store = store.open(file).await?;
            let rotated = sources::rotate_key(store.as_ref(), &operator(), &name, grace).await?;
            let until = time::format_ms(rotated.old_keys_valid_until);
            if json {
                println!(
                    "{}",
                    json!({"id": rotated.source.id, "name": rotated.source.name,
                           "write_key": rotated.write_key, "old_keys_valid_until": until})
                );
            } else {
                println!(
                    "new write key for {:?} (shown once): {}\nold keys work until {until}",
                    rotated.source.name, rotated.write_key
                );
            }
        }
    }
    Ok(())
}

async fn tail(
    store: &dyn Store,
    source: Option<&str>,
    after: Option<i64>,
    from_start: bool,
    follow: bool,
) -> Result<()> {
    let mut position = match (after, from_start || !follow) {
        (Some(seq), _) => seq,
        (None, true) => 0,
        (None, false) => store.last_seq().await?,
    };
    let mut idle = tokio::time::interval(Duration::from_millis(200));
    loop {
        let events = events::page(store, &operator(), source, position, 1000).await?;
        for event in &events {
            println!("{}", event.to_json());
        }
        if let Some(last) = events.last() {
            position = last.seq;
        }
        if events.len() < 1000 {
            if !follow {
                return Ok(());
            }
            idle.tick().await;
        }
    }
}
