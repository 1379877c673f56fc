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
    let capacity = file.profile_cache.unwrap_or(profiles::DEFAULT_CACHE).max(1);
    let mut bar = Progress::new();
    let mut done = None;
    profiles::rebuild_into_store(store.as_ref(), file.profile_rules()?, capacity, |at| {
        bar.show(at);
        done = Some(at);
    })
    .await?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let (events, stored) = done.map_or((0, 0), |at| (at.seq, at.profiles));
    let summary = json!({
        "profiles": stored,
        "seq": events,
        "seconds": (seconds * 1000.0).round() / 1000.0,
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "stored {stored} profiles rebuilt from the log up to seq {events} in {seconds:.2} s"
        );
    }
    Ok(())
}

/// A progress bar on standard error, when it is a terminal, redrawn at most five times a
/// second.
struct Progress {
    shown: Option<Instant>,
    terminal: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            shown: None,
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    fn show(&mut self, at: profiles::Rebuilding) {
        if !self.terminal || self.shown.is_some_and(|t| t.elapsed().as_millis() < 200) {
            return;
        }
        self.shown = Some(Instant::now());
        let share = at.seq as f64 / at.end.max(1) as f64;
        let filled = (share * 30.0).round() as usize;
        eprint!(
            "\rrebuilding profiles [{}{}] {:>3.0}%  seq {} of {}, {} profiles",
            "#".repeat(filled.min(30)),
            " ".repeat(30 - filled.min(30)),
            share * 100.0,
            at.seq,
            at.end,
            at.profiles
        );
    }

    fn finish(&self) {
        if self.terminal && self.shown.is_some() {
            eprintln!();
        }
    }
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
