//! Argument definitions and the small subcommands (sources, tokens, events).

use crate::config::{self, FileConfig};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use sightline_core::{secret, time, Role};
use sightline_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
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
    /// TOML config file (keys: data, database_url, listen, dedup_window, key_grace, max_in_flight, consent_mapping, webhook_ca_file, [identity]).
    #[arg(long, global = true, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector and the API.
    Serve(ServeArgs),
    /// Manage tracking sources and their write keys.
    #[command(subcommand)]
    Source(SourceCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the event log.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Consent signals.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Consent-gated destinations that events are delivered to.
    #[command(subcommand)]
    Destination(crate::activate::DestinationCommand),
    /// The delivery log: list outcomes, replay dead letters.
    #[command(subcommand)]
    Deliveries(crate::activate::DeliveriesCommand),
    /// Audiences: rules over profiles and their events, evaluated as events arrive.
    #[command(subcommand)]
    Audience(AudienceCommand),
    /// Measurement kept without identifiers.
    #[command(subcommand)]
    Measurement(MeasurementCommand),
    /// Computed traits: per-profile aggregates of events, usable in audience rules.
    #[command(subcommand)]
    Trait(TraitCommand),
    /// Unified profiles, looked up by any identifier.
    #[command(subcommand)]
    Profile(crate::profile_commands::ProfileCommand),
    /// The identity graph behind the profiles.
    #[command(subcommand)]
    Identity(crate::profile_commands::IdentityCommand),
    /// Scan a customer journey in headless Chromium under each consent scenario.
    Scan(crate::scan::ScanArgs),
    /// Multi-touch attribution over the log's stitched journeys, or over imported paths.
    Attribution(crate::files::AttributionArgs),
    /// Probabilistic record linkage of CSV files, and its clerical review queue.
    #[command(subcommand)]
    Link(LinkCommand),
    /// Import records into profiles (CRM exports).
    #[command(subcommand)]
    Import(crate::crm::ImportCommand),
    /// Governance: customer journeys and their steps (scanner journey files in and out).
    #[command(subcommand)]
    Journey(crate::registry_cli::JourneyCommand),
    /// Governance: the tag inventory, its approval workflow and change log.
    #[command(subcommand)]
    Tags(crate::registry_cli::TagsCommand),
    /// Governance: the findings backlog fed by stored scans.
    #[command(subcommand)]
    Backlog(crate::registry_cli::BacklogCommand),
    /// Governance: vendor risk records and overdue reviews.
    #[command(subcommand)]
    Vendor(crate::registry_cli::VendorCommand),
    /// Governance: data lineage from sources and scanned sites to destinations and vendors.
    Lineage(crate::lineage::LineageArgs),
    /// Governance: metrics per scan and per day (tags, vendors, consent quality, …).
    Metrics(crate::metrics::MetricsArgs),
    /// Governance: the report for a CMO and a CISO, one self-contained HTML file.
    Report(crate::report::ReportArgs),
}

#[derive(Debug, Subcommand)]
enum LinkCommand {
    #[command(flatten)]
    Files(crate::files::LinkCommand),
    /// The clerical review queue: pairs an import scored between the two thresholds.
    #[command(subcommand)]
    Review(crate::crm::ReviewCommand),
}

#[derive(Debug, Subcommand)]
enum AudienceCommand {
    /// Define an audience, e.g. --rule 'event "Order Completed" count >= 1 within 30d'.
    Add {
        name: String,
        /// The rule in the audience language's text form (see the README).
        #[arg(long)]
        rule: String,
        /// A destination to send adds and removes to (repeatable).
        #[arg(long, value_name = "DESTINATION")]
        sync: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// List audiences.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Print an audience's current members (each profile with its identifiers).
    Members {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
        /// One JSON array (the default prints one JSON object per line: NDJSON).
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV: profile,identifiers.
        #[arg(long)]
        csv: bool,
    },
    /// Print an audience's enter and exit records, oldest first, one JSON object per line
    /// (each with its time and the event or timer that caused it).
    History {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TraitCommand {
    /// Define a computed trait from its JSON, e.g.
    /// '{"name":"orders_30d","aggregate":{"kind":"count"},"within":"30d","event":{"name":"Order Completed"}}'.
    Add {
        definition: String,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Define every computed trait a TOML file lists as `[[trait]]` tables (the JSON's keys);
    /// names already taken are left as they are.
    Import {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// List computed traits.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
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

/// Checks a `YYYY-MM-DD` day (the form days are stored and compared in).
pub fn check_day(text: &str) -> Result<()> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let valid = bytes.len() == 10
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10);
    if !valid {
        bail!("{text:?} is not a day: write YYYY-MM-DD");
    }
    Ok(())
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

/// Where the store is: SQLite in the data directory unless a PostgreSQL URL is given.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory for the embedded SQLite store [default: ./sightline-data].
    #[arg(long, env = "SIGHTLINE_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// postgres://user@host:port/db selects PostgreSQL instead of SQLite.
    #[arg(
        long,
        env = "SIGHTLINE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
}

impl StoreArgs {
    pub async fn open(&self, file: &FileConfig) -> Result<Arc<dyn Store>> {
        let data = self
            .data
            .clone()
            .or_else(|| file.data.clone())
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR));
        let url = self
            .database_url
            .clone()
            .or_else(|| file.database_url.clone());
        sightline_store::open(&data, url.as_deref())
            .await
            .context("cannot open the store")
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on [default: 127.0.0.1:8088]; port 0 picks a free port.
    #[arg(long, env = "SIGHTLINE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// A (source, messageId) seen within this window is dropped as a duplicate [default: 24h].
    #[arg(long, env = "SIGHTLINE_DEDUP_WINDOW", value_name = "DURATION")]
    pub dedup_window: Option<String>,
    /// Tracking requests handled at once; more get 429 with Retry-After [default: 256].
    #[arg(long, env = "SIGHTLINE_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<usize>,
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
        /// admin, marketing or security.
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

pub const WRITE_KEY_LEN: usize = 32;
pub const TOKEN_PREFIX: &str = "slt_";
pub const TOKEN_LEN: usize = 40;

pub async fn run(cli: Cli) -> Result<()> {
    let file = FileConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve(args) => crate::serve::run(args, &file).await,
        Command::Source(SourceCommand::Add { name, store, json }) => {
            let store = store.open(&file).await?;
            let (source, key) = add_source(store.as_ref(), &name).await?;
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
            Ok(())
        }
        Command::Source(SourceCommand::List { store, json }) => {
            let store = store.open(&file).await?;
            let sources = store.list_sources().await?;
            if json {
                println!("{}", serde_json::to_string(&sources)?);
            } else {
                for s in sources {
                    println!(
                        "{}\t{}\tcreated {}",
                        s.id,
                        s.name,
                        time::format_ms(s.created_at)
                    );
                }
            }
            Ok(())
        }
        Command::Source(SourceCommand::RotateKey {
            name,
            store,
            grace,
            json,
        }) => {
            let grace = grace
                .or_else(|| file.key_grace.clone())
                .unwrap_or_else(|| "24h".into());
            let grace = config::parse_duration("--grace", &grace)?;
            let store = store.open(&file).await?;
            let source = store.source_by_name(&name).await?.with_context(|| {
                format!("no source named {name:?}: `sightline source list` shows them")
            })?;
            let key = secret::generate("", WRITE_KEY_LEN);
            let until = time::now_ms() + grace.as_millis() as i64;
            store
                .rotate_key(source.id, &secret::hash(&key), until)
                .await?;
            if json {
                println!(
                    "{}",
                    json!({"id": source.id, "name": source.name, "write_key": key,
                           "old_keys_valid_until": time::format_ms(until)})
                );
            } else {
                println!(
                    "new write key for {:?} (shown once): {key}\nold keys work until {}",
                    source.name,
                    time::format_ms(until)
                );
            }
            Ok(())
        }
        Command::Token(TokenCommand::Create {
            role,
            name,
            store,
            json,
        }) => {
            let Some(role) = Role::parse(&role) else {
                bail!("unknown role {role:?}: use admin, marketing or security");
            };
            let name = name.map(|n| n.trim().to_string());
            if name
                .as_ref()
                .is_some_and(|n| n.is_empty() || n.len() > 100 || n.starts_with("token:"))
            {
                bail!("--name must be 1 to 100 characters and not start with \"token:\"");
            }
            let store = store.open(&file).await?;
            let (token, secret) = create_token(store.as_ref(), role).await?;
            if let Some(name) = &name {
                store.set_token_name(token.id, name).await?;
            }
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
        Command::Destination(command) => crate::activate::destination(command, &file).await,
        Command::Deliveries(command) => crate::activate::deliveries(command, &file).await,
        Command::Audience(command) => audience(command, &file).await,
        Command::Profile(command) => crate::profile_commands::profile(command, &file).await,
        Command::Identity(command) => crate::profile_commands::identity(command, &file).await,
        Command::Trait(command) => computed_traits(command, &file).await,
        Command::Measurement(MeasurementCommand::ConsentDenied {
            from,
            to,
            store,
            json,
        }) => {
            check_day(&from)?;
            check_day(&to)?;
            let store = store.open(&file).await?;
            let counts = store.consent_denied_counts(&from, &to).await?;
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
        Command::Scan(args) => crate::scan::run(args, &file).await,
        Command::Attribution(args) => match args.paths {
            Some(paths) => crate::files::attribution(paths),
            None => crate::journeys::run(args.log, &file).await,
        },
        Command::Link(LinkCommand::Files(command)) => crate::files::link(command),
        Command::Link(LinkCommand::Review(command)) => {
            crate::crm::review_command(command, &file).await
        }
        Command::Import(command) => crate::crm::import_command(command, &file).await,
        Command::Journey(command) => crate::registry_cli::journey(command, &file).await,
        Command::Tags(command) => crate::registry_cli::tags(command, &file).await,
        Command::Backlog(command) => crate::registry_cli::backlog(command, &file).await,
        Command::Vendor(command) => crate::registry_cli::vendor(command, &file).await,
        Command::Lineage(args) => crate::lineage::run(args, &file).await,
        Command::Metrics(args) => crate::metrics::run(args, &file).await,
        Command::Report(args) => crate::report::run(args, &file).await,
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

/// Reads a TOML file (of `[[table]]` lists) into `T`; the error names the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid {what}", path.display()))
}

/// An import's line for one entry: what was created, or that its name was taken (the
/// import goes on); any other failure stops it.
pub fn imported(name: &str, created: Result<serde_json::Value>) -> Result<serde_json::Value> {
    created.or_else(|e| match e.downcast_ref::<sightline_store::StoreError>() {
        Some(sightline_store::StoreError::Conflict(_)) => {
            Ok(json!({"name": name, "skipped": "the name is taken"}))
        }
        _ => Err(e),
    })
}

/// Checks a computed trait definition and stores it.
pub async fn add_trait(
    store: &dyn Store,
    definition: &sightline_audience::ComputedTrait,
) -> Result<sightline_core::TraitDefinition> {
    let name = &definition.name;
    if name.trim().is_empty() || name.len() > 100 || name.contains('/') {
        bail!("a computed trait's name must be 1 to 100 characters, without '/'");
    }
    Ok(store
        .create_trait(name, &serde_json::to_string(definition)?)
        .await?)
}

/// Validates an audience rule and stores it.
pub async fn add_audience(
    store: &dyn Store,
    name: &str,
    rule: &str,
    sync: &[String],
) -> Result<sightline_core::AudienceDefinition> {
    if name.trim().is_empty() || name.len() > 100 || name.contains('/') {
        bail!("an audience name must be 1 to 100 characters, without '/'");
    }
    sightline_audience::Audience::parse(name, rule)
        .map_err(|e| anyhow::anyhow!("invalid rule: {e}"))?;
    for destination in sync {
        if store.destination_by_name(destination).await?.is_none() {
            bail!("no destination named {destination:?} to sync to: `sightline destination list` shows them");
        }
    }
    Ok(store.create_audience(name, rule, sync).await?)
}

async fn computed_traits(command: TraitCommand, file: &FileConfig) -> Result<()> {
    use sightline_audience::ComputedTrait;
    match command {
        TraitCommand::Add {
            definition,
            store,
            json,
        } => {
            let definition: ComputedTrait = serde_json::from_str(&definition).context(
                "the definition is not a computed trait (see crates/audience/README.md)",
            )?;
            let store = store.open(file).await?;
            let created = add_trait(store.as_ref(), &definition).await?;
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!("created computed trait {:?}", created.name);
            }
        }
        TraitCommand::Import {
            file: path,
            store,
            json,
        } => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct TraitsFile {
                #[serde(rename = "trait")]
                traits: Vec<ComputedTrait>,
            }
            let listed: TraitsFile = read_toml(&path, "computed traits file")?;
            let store = store.open(file).await?;
            let mut report = Vec::new();
            for definition in &listed.traits {
                let created = add_trait(store.as_ref(), definition)
                    .await
                    .map(|t| json!({"name": t.name, "id": t.id}));
                report.push(imported(&definition.name, created)?);
            }
            if json {
                println!("{}", serde_json::Value::Array(report));
            } else {
                for line in report {
                    println!("{line}");
                }
            }
        }
        TraitCommand::List { store, json } => {
            let store = store.open(file).await?;
            let traits = store.list_traits().await?;
            if json {
                println!("{}", serde_json::to_string(&traits)?);
            } else {
                for t in traits {
                    println!("{}\t{}", t.name, t.definition);
                }
            }
        }
    }
    Ok(())
}

async fn audience(command: AudienceCommand, file: &FileConfig) -> Result<()> {
    match command {
        AudienceCommand::Add {
            name,
            rule,
            sync,
            store,
            json,
        } => {
            let store = store.open(file).await?;
            let definition = add_audience(store.as_ref(), &name, &rule, &sync).await?;
            if json {
                println!("{}", json!({"id": definition.id, "name": definition.name}));
            } else {
                println!("created audience {:?}", definition.name);
            }
        }
        AudienceCommand::List { store, json } => {
            let store = store.open(file).await?;
            let definitions = store.list_audiences().await?;
            if json {
                println!("{}", serde_json::to_string(&definitions)?);
            } else {
                for d in definitions {
                    println!("{}\t{}", d.name, d.rule);
                }
            }
        }
        AudienceCommand::Members {
            name,
            store,
            json,
            csv,
        } => {
            let store = store.open(file).await?;
            let book = crate::profiles::rebuild(store.as_ref(), file.profile_rules()?).await?;
            let members = book.memberships.members(&name).with_context(|| {
                format!("no audience named {name:?}: `sightline audience list` shows them")
            })?;
            let list = crate::profiles::member_list(&book, members);
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if csv {
                print!("{}", crate::profiles::members_csv(&list));
            } else {
                for member in list {
                    println!("{member}");
                }
            }
        }
        AudienceCommand::History { name, store } => {
            let store = store.open(file).await?;
            if !store.list_audiences().await?.iter().any(|a| a.name == name) {
                bail!("no audience named {name:?}: `sightline audience list` shows them");
            }
            let mut after = 0;
            loop {
                let page = store.audience_history(&name, after, 1000).await?;
                let Some(&(last, _)) = page.last() else {
                    break;
                };
                for (_, change) in page {
                    println!("{change}");
                }
                after = last;
            }
        }
    }
    Ok(())
}

pub async fn add_source(store: &dyn Store, name: &str) -> Result<(sightline_core::Source, String)> {
    if name.trim().is_empty() || name.len() > 100 {
        bail!("a source name must be 1 to 100 characters");
    }
    let key = secret::generate("", WRITE_KEY_LEN);
    let source = store.create_source(name, &secret::hash(&key)).await?;
    Ok((source, key))
}

pub async fn create_token(
    store: &dyn Store,
    role: Role,
) -> Result<(sightline_core::Token, String)> {
    let secret = secret::generate(TOKEN_PREFIX, TOKEN_LEN);
    let token = store.create_token(role, &secret::hash(&secret)).await?;
    Ok((token, secret))
}

async fn tail(
    store: &dyn Store,
    source: Option<&str>,
    after: Option<i64>,
    from_start: bool,
    follow: bool,
) -> Result<()> {
    let source_id = match source {
        Some(name) => Some(
            store
                .source_by_name(name)
                .await?
                .with_context(|| format!("no source named {name:?}"))?
                .id,
        ),
        None => None,
    };
    let mut position = match (after, from_start || !follow) {
        (Some(seq), _) => seq,
        (None, true) => 0,
        (None, false) => store.last_seq().await?,
    };
    let mut idle = tokio::time::interval(Duration::from_millis(200));
    loop {
        let events = store.read_events(position, 1000, source_id).await?;
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
