//! `sightline privacy export TYPE:VALUE --out DIR`: a subject access export written as
//! files, `export.json` (everything held about the person) and `export.html` (the same as a
//! readable page), readable by their owner only; `sightline privacy erase TYPE:VALUE`:
//! erases the person, printing the signed receipt; `sightline privacy verify-receipt FILE`:
//! checks a receipt's signature with this install's privacy secret.

use crate::config::{FileConfig, StoreArgs};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use sightline_service::access::{actor_for_token, operator};
use sightline_service::erase::{self, Suppress};
use sightline_service::lookup;
use sightline_service::privacy::{self, Format};
use sightline_service::retention;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Export everything held about the person holding an identifier (TYPE:VALUE, e.g.
    /// email:ann@example.com or anonymous_id:a-1) into DIR: export.json and export.html.
    Export {
        identifier: String,
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Act as this API token (its role must be privacy or admin; the audit log records
        /// it) instead of as the operator.
        #[arg(
            long,
            env = "SIGHTLINE_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        token: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Erase the person holding an identifier (TYPE:VALUE): their events and every row
    /// derived from them; their identifiers go on the suppression list. Prints the signed
    /// receipt. A server running on the same store takes the erasure in within a second.
    Erase {
        identifier: String,
        /// What later events carrying an erased identifier become: drop (not stored,
        /// counted) or strip (stored without those identifiers).
        #[arg(long, default_value = "drop", value_name = "drop|strip")]
        mode: String,
        /// Act as this API token (its role must be privacy or admin; the audit log records
        /// it) instead of as the operator.
        #[arg(
            long,
            env = "SIGHTLINE_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        token: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// Print the whole receipt as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check an erasure receipt (a file holding the JSON an erasure answered) against its
    /// signature with this install's privacy secret: exits 0 when it is as signed, non-zero
    /// when it was changed or signed elsewhere.
    VerifyReceipt {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove now what [retention] in the config file lets expire: events older than their
    /// source's maximum age, and the profiles left without events (a running server sweeps
    /// on its own, every [retention] every). Prints what was removed.
    Retention {
        #[command(flatten)]
        store: StoreArgs,
        /// Print the counts as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: PrivacyCommand, file: &FileConfig) -> Result<()> {
    match command {
        PrivacyCommand::Export {
            identifier,
            out,
            token,
            store,
            json,
        } => export(identifier, out, token, store, json, file).await,
        PrivacyCommand::Erase {
            identifier,
            mode,
            token,
            store,
            json,
        } => erase_subject(identifier, mode, token, store, json, file).await,
        PrivacyCommand::Retention { store, json } => {
            let store = store.open(file).await?;
            let (policy, _) = file.retention(store.as_ref()).await?;
            let rules = file.profile_rules()?;
            let swept = retention::sweep_all(store.as_ref(), &operator(), &rules, &policy).await?;
            if json {
                println!("{}", serde_json::to_string(&swept)?);
            } else {
                println!(
                    "retention: {} events and {} profiles removed",
                    swept.events, swept.profiles
                );
                for (table, n) in swept.counts.iter().filter(|(_, n)| **n > 0) {
                    println!("  {table}: {n}");
                }
            }
            Ok(())
        }
        PrivacyCommand::VerifyReceipt { file: path, store } => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let receipt: serde_json::Value = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not JSON: give the receipt an erasure answered",
                    path.display()
                )
            })?;
            let store = store.open(file).await?;
            let id = receipt["id"].as_str().unwrap_or("without an id").to_owned();
            if erase::verify_receipt(store.as_ref(), &operator(), &receipt).await? {
                println!("receipt {id}: as signed by this install");
                Ok(())
            } else {
                anyhow::bail!(
                    "receipt {id}: does not match its signature: it was changed, or signed by another install"
                )
            }
        }
    }
}

async fn erase_subject(
    identifier: String,
    mode: String,
    token: Option<String>,
    store: StoreArgs,
    json: bool,
    file: &FileConfig,
) -> Result<()> {
    let mode = Suppress::parse(&mode)?;
    let store = store.open(file).await?;
    let actor = match token {
        Some(token) => actor_for_token(store.as_ref(), &token).await?,
        None => operator(),
    };
    let region = file.profile_rules()?.rules.default_region();
    let webhook = file.webhook()?;
    let receipt = erase::erase(
        store.as_ref(),
        None,
        &webhook,
        &actor,
        region,
        &identifier,
        mode,
    )
    .await?;
    if json {
        println!("{receipt}");
    } else {
        println!(
            "erasure {}: {} ({} events, {} profiles)",
            receipt["id"].as_str().unwrap_or_default(),
            receipt["outcome"].as_str().unwrap_or_default(),
            receipt["removed"]["events"],
            receipt["removed"]["profiles"],
        );
        println!("{}", serde_json::to_string_pretty(&receipt)?);
    }
    Ok(())
}

async fn export(
    identifier: String,
    out: PathBuf,
    token: Option<String>,
    store: StoreArgs,
    json: bool,
    file: &FileConfig,
) -> Result<()> {
    let store = store.open(file).await?;
    let actor = match token {
        Some(token) => actor_for_token(store.as_ref(), &token).await?,
        None => operator(),
    };
    let rules = file.profile_rules()?;
    if !lookup::stored_current(store.as_ref(), &rules).await? {
        eprintln!(
            "note: the stored profiles are behind the log or were resolved under other rules: \
             the export holds what they hold (a running server keeps them current; \
             `sightline identity rebuild` stores them)"
        );
    }
    let region = rules.rules.default_region();
    let export =
        privacy::export(store.as_ref(), &actor, region, &identifier, Format::Files).await?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let json_path = out.join("export.json");
    let html_path = out.join("export.html");
    write_private(&json_path, &serde_json::to_vec_pretty(&export)?)?;
    write_private(&html_path, privacy::render_html(&export).as_bytes())?;
    let counts = privacy::counts(&export);
    if json {
        println!(
            "{}",
            json!({
                "subject": export["subject"],
                "found": export["found"],
                "profile": export["profile"]["id"],
                "counts": counts,
                "files": [json_path, html_path],
            })
        );
    } else {
        match export["profile"]["id"].as_i64() {
            Some(id) => println!(
                "exported profile {id} ({}): {} events, {} deliveries, {} audience changes, {} CRM rows",
                export["subject"].as_str().unwrap_or_default(),
                counts["events"],
                counts["deliveries"],
                counts["audience_history"],
                counts["crm_rows"],
            ),
            None => println!(
                "no one holds {}: an empty export",
                export["subject"].as_str().unwrap_or_default()
            ),
        }
        println!("  {}\n  {}", json_path.display(), html_path.display());
    }
    Ok(())
}

/// Writes a file that only its owner may read (it holds personal data), replacing one there.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // A file that was there keeps its mode when opened: set it.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
