//! `sightline import crm` and `sightline link review …`: CRM imports into profiles and the
//! clerical review queue they fill.

use crate::config::{FileConfig, StoreArgs};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use sightline_service::access::operator;
use sightline_service::crm;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a CRM export (CSV): each row becomes a profile update in the log, linked to
    /// existing profiles by exact identifiers, then by probabilistic record linkage.
    Crm {
        file: PathBuf,
        /// TOML file naming the id column, identifier and trait columns, and linkage
        /// settings (see the README).
        #[arg(long, value_name = "FILE")]
        mapping: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List review items, oldest first (pending ones unless --status says otherwise).
    List {
        /// pending, accepted, rejected or all.
        #[arg(long, default_value = "pending")]
        status: String,
        #[command(flatten)]
        store: StoreArgs,
        /// One JSON array (the default prints each item with its waterfall).
        #[arg(long)]
        json: bool,
    },
    /// Accept a pair: a record linkage event joining them goes to the log.
    Accept {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Reject a pair: they stay apart, and later imports do not queue them again.
    Reject {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

pub async fn import(command: ImportCommand, file: &FileConfig) -> Result<()> {
    let ImportCommand::Crm {
        file: path,
        mapping,
        store,
        json,
    } = command;
    let text = std::fs::read_to_string(&mapping)
        .with_context(|| format!("cannot read mapping {}", mapping.display()))?;
    let mapping = crm::mapping::ImportMapping::from_toml_str(&text)
        .map_err(|e| anyhow::anyhow!("mapping {}: {e}", mapping.display()))?;
    let csv = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let store = store.open(file).await?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let report = crm::import(
        store.as_ref(),
        &operator(),
        &csv,
        &name,
        &mapping,
        &crm::ProfilesAt::Replay(Box::new(file.profile_rules()?)),
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report_text(&report));
    }
    let failed: Vec<String> = report
        .passes
        .iter()
        .filter_map(|p| Some(format!("{}: {}", p.pass, p.error.as_ref()?)))
        .collect();
    if !failed.is_empty() {
        bail!(
            "the records were imported, but linkage could not run ({}); fix the mapping and import again",
            failed.join("; ")
        );
    }
    Ok(())
}

fn report_text(r: &crm::ImportReport) -> String {
    let mut out = format!(
        "imported {} records from {} as source {:?} ({} logged now, {} already logged); {} bad rows; {} on a profile that existed before the import\n",
        r.records, r.file, r.source, r.logged, r.already_logged, r.bad_rows.len(), r.joined_existing
    );
    for bad in &r.bad_rows {
        out.push_str(&format!("  bad row at line {}: {}\n", bad.line, bad.reason));
    }
    for warning in &r.warnings {
        out.push_str(&format!(
            "  line {} column {}: {}\n",
            warning.line, warning.column, warning.reason
        ));
    }
    for pass in &r.passes {
        match (&pass.summary, &pass.error) {
            (Some(s), _) => {
                let rules: Vec<String> = s
                    .blocking
                    .iter()
                    .map(|b| format!("{} {}", b.rule, b.comparisons))
                    .collect();
                out.push_str(&format!(
                    "linkage {}: {} comparisons (blocking: {}); EM {} iterations; {} automatic, {} for review\n",
                    pass.pass, s.compared_pairs, rules.join(", "), s.em.iterations, s.auto_links, s.review
                ));
            }
            (None, Some(e)) => out.push_str(&format!("linkage {}: not run: {e}\n", pass.pass)),
            (None, None) => {}
        }
    }
    for link in &r.auto_links {
        let outcome = match &link.outcome {
            crm::plan::Outcome::Merged => "merged".to_owned(),
            crm::plan::Outcome::Refused(rule) => format!("refused by merge protection ({rule})"),
        };
        out.push_str(&format!(
            "auto link {} <-> {} ({:.6}): {outcome}\n",
            link.link.left, link.link.right, link.link.match_probability
        ));
    }
    for review in &r.reviews {
        let id = review
            .id
            .map_or_else(|| "already queued".to_owned(), |id| format!("review {id}"));
        out.push_str(&format!(
            "for review: {} <-> {} ({:.6}): {id}\n",
            review.link.left, review.link.right, review.link.match_probability
        ));
    }
    if r.reviews_not_queued > 0 {
        out.push_str(&format!(
            "{} more pairs for review were not queued (at most {} per import)\n",
            r.reviews_not_queued,
            crm::plan::MAX_REVIEWS_PER_IMPORT
        ));
    }
    out
}

pub async fn review(command: ReviewCommand, file: &FileConfig) -> Result<()> {
    match command {
        ReviewCommand::List {
            status,
            store,
            json,
        } => {
            let status = crm::status_filter(&status)?;
            let store = store.open(file).await?;
            let mut items = Vec::new();
            let mut after = 0;
            loop {
                let page = crm::reviews(store.as_ref(), &operator(), status, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                items.extend(page);
            }
            if json {
                println!("{}", serde_json::to_string(&items)?);
            } else {
                for item in &items {
                    println!("{}", crm::review_text(item));
                }
            }
        }
        ReviewCommand::Accept { id, store, json } => {
            let store = store.open(file).await?;
            let item = crm::accept(store.as_ref(), &operator(), id).await?;
            if json {
                println!("{}", crm::decided(&item));
            } else {
                println!(
                    "accepted review {id}: {} and {} are linked by the event at seq {}",
                    item.left,
                    item.right,
                    item.seq
                        .map_or_else(|| "(logged before)".to_owned(), |s| s.to_string())
                );
            }
        }
        ReviewCommand::Reject { id, store, json } => {
            let store = store.open(file).await?;
            let item = crm::reject(store.as_ref(), &operator(), id).await?;
            if json {
                println!("{}", crm::decided(&item));
            } else {
                println!(
                    "rejected review {id}: {} and {} stay apart",
                    item.left, item.right
                );
            }
        }
    }
    Ok(())
}
