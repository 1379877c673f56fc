//! `sightline audience …` and `sightline trait …`: audiences, their members and history,
//! and computed traits.

use crate::config::{FileConfig, StoreArgs};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use sightline_service::access::operator;
use sightline_service::{audiences, profiles};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AudienceCommand {
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
pub enum TraitCommand {
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

pub async fn computed_traits(command: TraitCommand, file: &FileConfig) -> Result<()> {
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
            let created = audiences::add_trait(store.as_ref(), &operator(), &definition).await?;
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
            let listed: TraitsFile = crate::config::read_toml(&path, "computed traits file")?;
            let store = store.open(file).await?;
            let report =
                audiences::import_traits(store.as_ref(), &operator(), &listed.traits).await?;
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
            let traits = audiences::list_traits(store.as_ref(), &operator()).await?;
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

pub async fn audience(command: AudienceCommand, file: &FileConfig) -> Result<()> {
    match command {
        AudienceCommand::Add {
            name,
            rule,
            sync,
            store,
            json,
        } => {
            let store = store.open(file).await?;
            let definition =
                audiences::add_audience(store.as_ref(), &operator(), &name, &rule, &sync).await?;
            if json {
                println!("{}", json!({"id": definition.id, "name": definition.name}));
            } else {
                println!("created audience {:?}", definition.name);
            }
        }
        AudienceCommand::List { store, json } => {
            let store = store.open(file).await?;
            let definitions = audiences::list_audiences(store.as_ref(), &operator()).await?;
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
            let book = profiles::rebuild(store.as_ref(), file.profile_rules()?).await?;
            let list = audiences::replayed_members(&operator(), &book, &name)?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if csv {
                print!("{}", audiences::members_csv(&list));
            } else {
                for member in list {
                    println!("{member}");
                }
            }
        }
        AudienceCommand::History { name, store } => {
            let store = store.open(file).await?;
            let mut after = 0;
            loop {
                let page =
                    audiences::history(store.as_ref(), &operator(), &name, after, 1000).await?;
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
