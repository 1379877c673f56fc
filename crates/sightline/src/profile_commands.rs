//! `sightline profile …` and `sightline identity rebuild`: unified profiles as stored by the
//! server (or by a rebuild), looked up by any identifier.

use crate::cli::StoreArgs;
use crate::config::FileConfig;
use crate::profiles::{self, ProfileRules};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;
use sightline_core::{time, StoredEvent};
use sightline_identity::{normalise, IdType};
use sightline_profiles::{ProfileDoc, ProfileView};
use sightline_store::Store;
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

/// A profile as the store holds it, or as a replay of the log finds it.
struct Found {
    doc: ProfileDoc,
    timeline: Timeline,
}

/// Where a profile's events are listed.
enum Timeline {
    /// In the store, under this profile id.
    Stored(i64),
    /// Sequence numbers from a replay, ascending.
    Replayed(Vec<i64>),
}

/// Reads the stored profile when the stored profiles are current with the log under these
/// rules; otherwise (a server has not caught up yet, or the rules changed) replays the log,
/// so the answer is always the log's.
async fn find(store: &dyn Store, rules: ProfileRules, identifier: &str) -> Result<Found> {
    let Some((id_type, value)) = identifier.split_once(':') else {
        bail!("{identifier:?} is not an identifier: write type:value, e.g. email:ann@example.com");
    };
    let missing = || format!("no profile holds {identifier}");
    let current = match store.profiles_state().await? {
        Some(state) => state.rules == rules.fingerprint && state.seq >= store.last_seq().await?,
        None => false,
    };
    if current {
        let id_type = IdType::parse(id_type);
        let value =
            normalise(&id_type, value, rules.rules.default_region()).with_context(missing)?;
        let stored = store
            .stored_profile(id_type.as_str(), &value)
            .await?
            .with_context(missing)?;
        let doc = ProfileDoc::parse(&stored.doc)
            .with_context(|| format!("stored profile {} cannot be read", stored.id))?;
        return Ok(Found {
            doc,
            timeline: Timeline::Stored(stored.id),
        });
    }
    eprintln!(
        "note: the stored profiles are behind the log or were resolved under other rules: \
         answering from a replay of the log (`sightline identity rebuild` stores it)"
    );
    let book = profiles::rebuild(store, rules).await?;
    let view = book.profiles.find(id_type, value).with_context(missing)?;
    Ok(Found {
        doc: ProfileDoc {
            identity: view.identity.clone(),
            facts: view.facts.cloned().unwrap_or_default(),
        },
        timeline: Timeline::Replayed(view.facts.map(|f| f.events.clone()).unwrap_or_default()),
    })
}

/// Up to `limit` of the profile's events below `before`, newest first.
async fn events(
    store: &dyn Store,
    timeline: &Timeline,
    before: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    match timeline {
        Timeline::Stored(id) => Ok(store.stored_profile_events(*id, before, limit).await?),
        Timeline::Replayed(seqs) => {
            let end = seqs.partition_point(|&seq| seq < before);
            let mut events = Vec::new();
            for &seq in seqs[end.saturating_sub(limit)..end].iter().rev() {
                let found = store.read_events(seq - 1, 1, None).await?;
                events.extend(found.into_iter().filter(|e| e.seq == seq));
            }
            Ok(events)
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
    let found = find(store.as_ref(), file.profile_rules()?, identifier).await?;
    let view: ProfileView<'_> = found.doc.view();
    match command {
        ProfileCommand::Show { .. } => {
            println!("{}", serde_json::to_string_pretty(&view.to_json())?)
        }
        ProfileCommand::Explain { json: true, .. } => {
            println!("{}", serde_json::to_string(&view.identity.history)?)
        }
        ProfileCommand::Explain { .. } => {
            let identifiers: Vec<String> = view
                .identity
                .identifiers
                .iter()
                .map(|i| format!("{}:{}", i.id_type.as_str(), i.value))
                .collect();
            println!(
                "profile {} holds {}",
                view.identity.id.0,
                identifiers.join(", ")
            );
            for sentence in view.identity.explain() {
                println!("- {sentence}");
            }
        }
        ProfileCommand::Consent { at, json, .. } => {
            let at = match at {
                None => i64::MAX,
                Some(text) => time::parse_ms(&text)
                    .with_context(|| format!("--at {text:?} is not an ISO 8601 time"))?,
            };
            let ledger = &found.doc.facts.consent;
            let shown = json!({"state": ledger.state_at(at, i64::MAX), "history": ledger});
            let text = if json {
                serde_json::to_string(&shown)?
            } else {
                serde_json::to_string_pretty(&shown)?
            };
            println!("{text}");
        }
        ProfileCommand::Events { limit, before, .. } => {
            let before = before.unwrap_or(i64::MAX);
            for event in events(store.as_ref(), &found.timeline, before, limit).await? {
                println!("{}", event.to_json());
            }
        }
    }
    Ok(())
}
