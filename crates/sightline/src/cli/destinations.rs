//! `sightline destination …` and `sightline deliveries …`: destinations and their
//! delivery log, on the store a running server delivers from.

use crate::config::{FileConfig, StoreArgs};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::Value;
use sightline_activate::{Deliverer, DestinationSpec, Settings, Transform};
use sightline_core::time;
use sightline_service::access::operator;
use sightline_service::approval;
use sightline_service::destinations::{self, Replay};
use sightline_service::profiles::{self, Ledger, Live};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum DestinationCommand {
    /// Add a consent-gated destination: a webhook (its signing secret printed this once),
    /// or a vendor's API (ga4, meta, tiktok, linkedin, google_ads) with its settings and
    /// credential.
    Add {
        name: String,
        /// The destination type: webhook, ga4 (Google Analytics 4 Measurement Protocol),
        /// meta (Meta Conversions API), tiktok (TikTok Events API), linkedin (LinkedIn
        /// Conversions API), google_ads (Google Ads click conversion upload) or warehouse
        /// (PostgreSQL tables laid out as Segment's warehouses).
        #[arg(long = "type", value_name = "TYPE", default_value = "webhook")]
        kind: String,
        /// Where events are POSTed (http://…): required for a webhook; for a vendor type
        /// its documented endpoint unless given (a proxy, a test server); for a warehouse
        /// its database (postgres://user@host:5432/db, the password as the credential).
        #[arg(long)]
        url: Option<String>,
        /// Purposes an event's consent must grant, all of them (e.g. analytics,advertising)
        /// [default: none for a webhook, analytics for ga4 and warehouse, advertising for
        /// meta, tiktok, linkedin and google_ads].
        #[arg(long, value_delimiter = ',', value_name = "P1,P2")]
        purposes: Vec<String>,
        /// Only these event names (a track call's `event`, a page or screen call's `name`).
        #[arg(long, value_delimiter = ',', value_name = "E1,E2")]
        events: Vec<String>,
        /// Only these call types (track, identify, page, screen, group, alias).
        #[arg(long, value_delimiter = ',', value_name = "T1,T2")]
        types: Vec<String>,
        /// Events per request: for a webhook 1 sends a JSON object, more a JSON array
        /// [default: 1 for a webhook, the vendor's most (ga4 25, meta, tiktok, linkedin and
        /// google_ads 1000) otherwise].
        #[arg(long, value_name = "N")]
        batch: Option<u32>,
        /// A TOML file of what to do to each event before sending it: `allow`, `deny`,
        /// `hash` (SHA-256 of normalised emails and phones), `rename`, `hash_format`.
        #[arg(long, value_name = "FILE")]
        transform: Option<std::path::PathBuf>,
        /// A vendor type's setting, repeated: ga4 measurement_id=G-…; meta pixel_id=…,
        /// action_source=website, test_event_code=…, api_version=v25.0; tiktok
        /// pixel_code=C…, test_event_code=…; linkedin conversion_id=…, api_version=202611;
        /// google_ads customer_id=…, conversion_action_id=…, login_customer_id=…,
        /// api_version=v22; meta and google_ads audience.NAME=ID (the custom audience or
        /// Customer Match user list the audience NAME syncs to); warehouse schema=NAME.
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// The environment variable holding a vendor type's credential (ga4: the
        /// Measurement Protocol API secret; meta: a Conversions API access token; tiktok:
        /// an Events API access token; linkedin: an OAuth access token with the
        /// rw_conversions scope; google_ads: DEVELOPER_TOKEN:ACCESS_TOKEN; warehouse: the
        /// database user's password), so that it is never on the command line.
        #[arg(long, value_name = "VAR")]
        credential_env: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print {"id","name"} (and a webhook's "signing_secret") as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a vendor destination's credential (a rotated token): delivery held by a
    /// refused credential goes on with the new one.
    SetCredential {
        name: String,
        /// The environment variable holding the new credential.
        #[arg(long, value_name = "VAR")]
        credential_env: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add every destination a TOML file lists as `[[destination]]` tables (keys as the
    /// options of `add`, and a `[destination.transform]` table); names already taken are
    /// left as they are.
    Import {
        file: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Print [{"name","id","signing_secret"} | {"name","skipped"}] as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List destinations (never their secrets; credentials in URLs masked).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Pause delivery to a destination; its checkpoint holds.
    Disable {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Resume delivery to a destination from where it stopped.
    Enable {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a destination with its delivery log and checkpoints.
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change where or what a destination sends (only what is given changes). Under the
    /// approval policy a change by the marketing role (or by anyone, `strict`) to its URL,
    /// settings, purposes, event filter or transform waits for a security approval, the
    /// approved configuration staying in force; acts as the operator (admin) unless
    /// --token is given.
    Change {
        name: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, value_delimiter = ',')]
        purposes: Option<Vec<String>>,
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long, value_delimiter = ',')]
        types: Option<Vec<String>>,
        #[arg(long)]
        batch: Option<u32>,
        /// A TOML file of the new transform.
        #[arg(long, value_name = "FILE")]
        transform: Option<std::path::PathBuf>,
        /// A vendor type's setting to set, repeated (the others kept), as for `add`: e.g.
        /// `audience.buyers=23842…` syncs the audience `buyers` to that Meta custom
        /// audience or Google Ads user list.
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Why, for the change log.
        #[arg(long, default_value = "")]
        reason: String,
        /// The API token to act as.
        #[arg(
            long,
            env = "SIGHTLINE_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        token: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Approve a destination's waiting revision: a security token of a person other than
    /// its proposer (admin cannot approve). It is in force at once.
    Approve {
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        act: super::governance::ActAs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Reject a destination's waiting revision (a reason is required); the approved
    /// configuration, if any, stays in force.
    Reject {
        name: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        act: super::governance::ActAs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Destinations with a revision waiting for a security approval.
    Pending {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// The destination change log (proposals, approvals, rejections, changes applied).
    Log {
        /// Only this destination's.
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Move a disabled destination's checkpoint: events up to SEQ are never sent (the way
    /// past an event it can never take).
    SkipTo {
        name: String,
        #[arg(long, value_name = "SEQ")]
        seq: i64,
        #[command(flatten)]
        store: StoreArgs,
        /// Print {"destination","from_seq","to_seq"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// A destination's delivery log, oldest first.
    List {
        #[arg(long, value_name = "NAME")]
        destination: String,
        /// delivered, suppressed or dead.
        #[arg(long)]
        status: Option<String>,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        after: i64,
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Send events again: the dead letters (--dead) or a range of the log (--from-seq).
    #[command(group = clap::ArgGroup::new("which").required(true).args(["dead", "from_seq"]))]
    Replay {
        #[arg(long, value_name = "NAME")]
        destination: String,
        /// Every dead letter of the destination.
        #[arg(long)]
        dead: bool,
        /// The first sequence number of a range to send again.
        #[arg(long, value_name = "SEQ", conflicts_with = "dead")]
        from_seq: Option<i64>,
        /// The last sequence number of the range [default: the end of the log].
        #[arg(long, value_name = "SEQ", requires = "from_seq")]
        to_seq: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print {"delivered","suppressed","dead"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn destination(command: DestinationCommand, file: &FileConfig) -> Result<()> {
    match command {
        DestinationCommand::Change {
            name,
            url,
            purposes,
            events,
            types,
            batch,
            transform,
            settings,
            reason,
            token,
            store,
        } => {
            let transform = match transform {
                None => None,
                Some(path) => Some(crate::config::read_toml(&path, "transform")?),
            };
            let policy = file.consent_policy()?;
            let store = store.open(file).await?;
            let settings = if settings.is_empty() {
                None
            } else {
                let current = store
                    .destination_by_name(&name)
                    .await?
                    .with_context(|| format!("no destination named {name:?}"))?;
                let mut merged = current.settings.as_object().cloned().unwrap_or_default();
                merge_settings(&mut merged, parse_settings(&settings)?);
                Some(merged)
            };
            let change = approval::DestinationChange {
                url,
                purposes: purposes.map(tidy),
                event_types: types.map(tidy),
                event_names: events.map(tidy),
                batch_size: batch,
                transform,
                settings,
                reason: Some(reason),
            };
            let actor = match token {
                Some(secret) => {
                    sightline_service::access::actor_for_token(store.as_ref(), &secret).await?
                }
                None => operator(),
            };
            let flow = approval::change(
                store.as_ref(),
                &actor,
                &name,
                change,
                &policy,
                &file.approval_policy(),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&flow)?);
        }
        DestinationCommand::Approve {
            name,
            reason,
            act,
            store,
        } => {
            let (store, actor) = act.open(&store, file).await?;
            let flow = approval::decide(store.as_ref(), &actor, &name, true, &reason).await?;
            println!("{}", serde_json::to_string_pretty(&flow)?);
        }
        DestinationCommand::Reject {
            name,
            reason,
            act,
            store,
        } => {
            let (store, actor) = act.open(&store, file).await?;
            let flow = approval::decide(store.as_ref(), &actor, &name, false, &reason).await?;
            println!("{}", serde_json::to_string_pretty(&flow)?);
        }
        DestinationCommand::Pending { store, json } => {
            let store = store.open(file).await?;
            let pending = approval::flows(store.as_ref(), &operator(), true).await?;
            if json {
                println!("{}", serde_json::to_string(&pending)?);
            } else if pending.is_empty() {
                println!("no destination awaits approval");
            } else {
                for flow in pending {
                    println!(
                        "{}\trevision {}\tproposed by {}\tchanges {}\t{}",
                        flow.destination,
                        flow.revision,
                        flow.proposed_by,
                        flow.changes.join(","),
                        flow.config.url
                    );
                }
            }
        }
        DestinationCommand::Log { name, store } => {
            let store = store.open(file).await?;
            let mut after = 0;
            loop {
                let page = approval::log(
                    store.as_ref(),
                    &operator(),
                    name.as_deref(),
                    after,
                    approval::MAX_PAGE,
                )
                .await?;
                let entries = page["entries"].as_array().cloned().unwrap_or_default();
                if entries.is_empty() {
                    break;
                }
                for entry in entries {
                    println!("{entry}");
                }
                after = page["next_after"].as_i64().unwrap_or(after);
            }
        }
        DestinationCommand::Add {
            name,
            kind,
            url,
            purposes,
            events,
            types,
            batch,
            transform,
            settings,
            credential_env,
            store,
            json,
        } => {
            let transform = match transform {
                None => Transform::default(),
                Some(path) => crate::config::read_toml(&path, "transform")?,
            };
            let mut spec = DestinationSpec {
                name,
                kind,
                url,
                purposes: tidy(purposes),
                event_types: tidy(types),
                event_names: tidy(events),
                batch_size: batch,
                transform,
                settings: parse_settings(&settings)?,
                credential: None,
                credential_env,
            };
            spec.read_credential_env(|name| std::env::var(name).ok())
                .map_err(anyhow::Error::msg)?;
            let policy = file.consent_policy()?;
            let store = store.open(file).await?;
            let (created, flow) = approval::add(
                store.as_ref(),
                &operator(),
                spec,
                &policy,
                &file.approval_policy(),
            )
            .await?;
            let answer = approval::created_json(&created, &flow);
            if flow.is_pending() && !json {
                println!(
                    "destination {:?} is proposed: it receives nothing until a security reviewer approves it (`sightline destination approve`)",
                    created.name
                );
            }
            if json {
                println!("{answer}");
            } else {
                match answer["signing_secret"].as_str() {
                    Some(secret) => println!(
                        "created destination {:?}; its signing secret (shown once): {secret}",
                        created.name
                    ),
                    None => println!(
                        "created {} destination {:?}",
                        created.kind.as_str(),
                        created.name
                    ),
                }
            }
        }
        DestinationCommand::SetCredential {
            name,
            credential_env,
            store,
        } => {
            let credential = std::env::var(&credential_env)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("the environment variable {credential_env} is not set")
                })?;
            let store = store.open(file).await?;
            destinations::set_credential(store.as_ref(), &operator(), &name, &credential).await?;
            println!("replaced the credential of destination {name:?}");
        }
        DestinationCommand::Import {
            file: path,
            store,
            json,
        } => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct DestinationsFile {
                destination: Vec<DestinationSpec>,
            }
            let mut listed: DestinationsFile =
                crate::config::read_toml(&path, "destinations file")?;
            for spec in &mut listed.destination {
                spec.read_credential_env(|name| std::env::var(name).ok())
                    .map_err(anyhow::Error::msg)?;
            }
            let policy = file.consent_policy()?;
            let store = store.open(file).await?;
            let report = approval::import(
                store.as_ref(),
                &operator(),
                listed.destination,
                &policy,
                &file.approval_policy(),
            )
            .await?;
            if json {
                println!("{}", Value::Array(report));
            } else {
                for line in report {
                    match line["signing_secret"].as_str() {
                        Some(secret) => println!(
                            "created destination {}; its signing secret (shown once): {secret}",
                            line["name"]
                        ),
                        None if line.get("skipped").is_some() => {
                            println!("skipped {}: the name is taken", line["name"])
                        }
                        None => println!("created destination {}", line["name"]),
                    }
                }
            }
        }
        DestinationCommand::List { store, json } => {
            let store = store.open(file).await?;
            let listed = destinations::list(store.as_ref(), &operator()).await?;
            if json {
                println!("{}", serde_json::to_string(&listed)?);
            } else {
                let flows = sightline_service::approval::all_flows(store.as_ref(), false).await?;
                for d in listed {
                    let flow = flows.iter().find(|f| f.destination == d.name);
                    println!(
                        "{}\t{}\t{}\t{}\tpurposes: {}\t{}{}",
                        d.id,
                        d.name,
                        d.kind.as_str(),
                        d.url,
                        d.purposes.join(","),
                        sightline_service::approval::describe(d.approved, flow),
                        if d.disabled { "\tdisabled" } else { "" }
                    );
                }
            }
        }
        DestinationCommand::Disable { name, store } => {
            let store = store.open(file).await?;
            destinations::set_disabled(store.as_ref(), &operator(), &name, true).await?;
            println!("disabled destination {name:?}");
        }
        DestinationCommand::Enable { name, store } => {
            let store = store.open(file).await?;
            destinations::set_disabled(store.as_ref(), &operator(), &name, false).await?;
            println!("enabled destination {name:?}");
        }
        DestinationCommand::Delete { name, store } => {
            let store = store.open(file).await?;
            destinations::delete(store.as_ref(), &operator(), &name).await?;
            println!("deleted destination {name:?} with its delivery log");
        }
        DestinationCommand::SkipTo {
            name,
            seq,
            store,
            json,
        } => {
            let store = store.open(file).await?;
            let skipped = destinations::skip_to(store.as_ref(), &operator(), &name, seq).await?;
            if json {
                println!("{}", serde_json::to_string(&skipped)?);
            } else {
                println!(
                    "destination {name:?} now goes on after seq {} (was {})",
                    skipped.to_seq, skipped.from_seq
                );
            }
        }
    }
    Ok(())
}

pub async fn deliveries(command: DeliveriesCommand, file: &FileConfig) -> Result<()> {
    match command {
        DeliveriesCommand::List {
            destination,
            status,
            after,
            limit,
            store,
            json,
        } => {
            let status = status
                .as_deref()
                .map(destinations::parse_status)
                .transpose()?;
            let store = store.open(file).await?;
            let page = destinations::deliveries(
                store.as_ref(),
                &operator(),
                &destination,
                status,
                after,
                limit,
            )
            .await?;
            if json {
                println!("{}", destinations::page_json(&page, after));
            } else {
                for d in &page {
                    println!(
                        "{}\t{}\t{}\tattempts {}\t{}\t{}",
                        d.seq,
                        time::format_ms(d.at),
                        d.status.as_str(),
                        d.attempts,
                        d.response_code.map_or("-".into(), |c| c.to_string()),
                        d.reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
        DeliveriesCommand::Replay {
            destination,
            dead,
            from_seq,
            to_seq,
            store,
            json,
        } => {
            let which = match (dead, from_seq) {
                (true, _) => Replay::Dead,
                (false, Some(from)) => Replay::Range {
                    from,
                    to: to_seq.unwrap_or(i64::MAX),
                },
                (false, None) => anyhow::bail!("say what to replay: --dead or --from-seq SEQ"),
            };
            let store = store.open(file).await?;
            // The consent ledger at every event's time, as the server's would have it.
            let rules = file.profile_rules()?;
            let policy = rules.policy.clone();
            let book = profiles::rebuild(store.as_ref(), rules).await?;
            let deliverer = Deliverer::new(
                store.clone(),
                policy,
                Some(Arc::new(Ledger {
                    book: Live::new(book),
                    store: store.clone(),
                })),
                file.webhook()?,
                Settings::default(),
            );
            let tally =
                destinations::replay(store.as_ref(), &operator(), &deliverer, &destination, which)
                    .await?;
            if json {
                println!("{}", serde_json::to_string(&tally)?);
            } else {
                println!(
                    "replayed to {destination:?}: {} delivered, {} suppressed, {} dead",
                    tally.delivered, tally.suppressed, tally.dead
                );
            }
        }
    }
    Ok(())
}

/// `--setting KEY=VALUE` options as a settings table (values are text);
/// `audience.NAME=ID` goes into the `audiences` table.
fn parse_settings(items: &[String]) -> Result<serde_json::Map<String, Value>> {
    let mut settings = serde_json::Map::new();
    for item in items {
        let (key, value) = match item.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => (key.trim(), value.trim()),
            _ => anyhow::bail!("--setting {item:?} is not KEY=VALUE, e.g. measurement_id=G-XXXX"),
        };
        let value = Value::String(value.to_owned());
        match key.strip_prefix("audience.") {
            Some(audience) => {
                let mut one = serde_json::Map::new();
                one.insert(audience.to_owned(), value);
                merge_settings(
                    &mut settings,
                    [("audiences".to_owned(), Value::Object(one))]
                        .into_iter()
                        .collect(),
                );
            }
            None => {
                settings.insert(key.to_owned(), value);
            }
        }
    }
    Ok(settings)
}

/// `given` over `settings`, key by key; tables (`audiences`) merged one level down.
fn merge_settings(
    settings: &mut serde_json::Map<String, Value>,
    given: serde_json::Map<String, Value>,
) {
    for (key, value) in given {
        match (settings.get_mut(&key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
            (_, value) => {
                settings.insert(key, value);
            }
        }
    }
}

/// Comma lists as people type them: `a, b,,c` is `a`, `b`, `c`.
fn tidy(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect()
}
