//! `sightline profile …` and `sightline identity rebuild`: unified profiles as stored by the
//! server (or by a rebuild), looked up by any identifier.

use crate::config::{FileConfig, StoreArgs};
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use sightline_service::access::operator;
use sightline_service::{lookup, profiles};
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Print the profile holding an identifier (type:value, e.g. email:ann@example.com).
    Show {
        identifier: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Say in plain words why these identifiers are one person.
    Explain {
        identifier: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Print the merge records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a profile's consent: the state per purpose and the ledger of every change.
    Consent {
        identifier: String,
        /// The state at this time (ISO 8601) instead of the latest.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// One line of JSON (the default is indented).
        #[arg(long)]
        json: bool,
    },
    /// Print a profile's events, newest first, one JSON object per line.
    Events {
        identifier: String,
        /// How many events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only events with a sequence number below this one (the next page).
        #[arg(long, value_name = "SEQ")]
        before: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Recompute every profile from the log under the configured [identity] rules and store
    /// them in place of the stored ones (e.g. after adding a blocked value).
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn identity(command: IdentityCommand, file: &FileConfig) -> Result<()> {
    let IdentityCommand::Rebuild { store, json } = command;
    let store = store.open(file).await?;
    let started = Instant::now();
    let book = profiles::rebuild_stored(store.as_ref(), file.profile_rules()?).await?;
    let seconds = started.elapsed().as_secs_f64();
    let events = book.profiles.last_seq();
    let summary = json!({
        "profiles": book.profiles.profile_count(),
        "seq": events,
        "seconds": (seconds * 1000.0).round() / 1000.0,
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "stored {} profiles rebuilt from the log up to seq {events} in {seconds:.2} s",
            book.profiles.profile_count()
        );
    }
    // Freeing millions of small allocations one by one takes seconds; the process is
    // about to exit, which frees them at once.
    std::mem::forget(book);
    Ok(())
}

pub async fn profile(command: ProfileCommand, file: &FileConfig) -> Result<()> {
    let (identifier, store) = match &command {
        ProfileCommand::Show { identifier, store }
        | ProfileCommand::Explain {
            identifier, store, ..
        }
        | ProfileCommand::Events {
            identifier, store, ..
        }
        | ProfileCommand::Consent {
            identifier, store, ..
        } => (identifier, store),
    };
    let store = store.open(file).await?;
    let rules = file.profile_rules()?;
    if !lookup::stored_current(store.as_ref(), &rules).await? {
        eprintln!(
            "note: the stored profiles are behind the log or were resolved under other rules: \
             answering from a replay of the log (`sightline identity rebuild` stores it)"
        );
    }
    let found = lookup::find_stored(store.as_ref(), &operator(), rules, identifier).await?;
    match command {
        ProfileCommand::Show { .. } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&lookup::profile_json(found.view()))?
            )
        }
        ProfileCommand::Explain { json: true, .. } => {
            println!("{}", serde_json::to_string(&found.doc.identity.history)?)
        }
        ProfileCommand::Explain { .. } => {
            let identity = &found.doc.identity;
            let identifiers: Vec<String> = identity
                .identifiers
                .iter()
                .map(|i| format!("{}:{}", i.id_type.as_str(), i.value))
                .collect();
            println!("profile {} holds {}", identity.id.0, identifiers.join(", "));
            for sentence in identity.explain() {
                println!("- {sentence}");
            }
        }
        ProfileCommand::Consent { at, json, .. } => {
            let at = at.map(|text| lookup::instant("--at", &text)).transpose()?;
            let shown = lookup::consent_json(found.view(), at);
            let text = if json {
                serde_json::to_string(&shown)?
            } else {
                serde_json::to_string_pretty(&shown)?
            };
            println!("{text}");
        }
        ProfileCommand::Events { limit, before, .. } => {
            let before = before.unwrap_or(i64::MAX);
            for event in lookup::events(store.as_ref(), &found.timeline, before, limit).await? {
                println!("{}", event.to_json());
            }
        }
    }
    Ok(())
}
