//! `sightline link dedupe|pair`: record linkage of CSV files, without a store; and
//! `sightline link review …`, the clerical review queue CRM imports fill.

use crate::config::FileConfig;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sightline_linkage::{Dataset, LinkOptions, LinkResult, Mapping};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    #[command(flatten)]
    Files(FileLinkCommand),
    /// The clerical review queue: pairs an import scored between the two thresholds.
    #[command(subcommand)]
    Review(super::crm::ReviewCommand),
}

pub async fn run(command: LinkCommand, file: &FileConfig) -> Result<()> {
    match command {
        LinkCommand::Files(command) => link_files(command),
        LinkCommand::Review(command) => super::crm::review(command, file).await,
    }
}

#[derive(Debug, Subcommand)]
pub enum FileLinkCommand {
    /// Find records of one CSV file that describe the same person.
    Dedupe {
        file: PathBuf,
        #[command(flatten)]
        options: LinkArgs,
    },
    /// Find records of A and B that describe the same person.
    Pair {
        left: PathBuf,
        right: PathBuf,
        #[command(flatten)]
        options: LinkArgs,
    },
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The column holding each record's id (never compared).
    #[arg(long, value_name = "COL")]
    id_column: String,
    /// Where to write left_id,right_id,match_probability.
    #[arg(long, value_name = "LINKS.csv")]
    out: PathBuf,
    /// Write every pair at or above this match probability.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// TOML file of comparisons and blocking rules (see the README).
    #[arg(long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Print the run's summary as JSON on stdout (the default is text on stderr).
    #[arg(long)]
    json: bool,
    /// Show why each link scored what it did: per field its comparison level and weight
    /// (a waterfall) on stdout, or as `explanations` in the --json summary.
    #[arg(long)]
    explain: bool,
}

fn link_files(command: FileLinkCommand) -> Result<()> {
    let (result, args, left, right) = match command {
        FileLinkCommand::Dedupe { file, options } => {
            let records = load(&file, &options.id_column)?;
            let opts = link_options(&options)?;
            report_plan(&sightline_linkage::plan_dedupe(&records, &opts)?);
            let result = sightline_linkage::dedupe(&records, &opts)?;
            (result, options, records, None)
        }
        FileLinkCommand::Pair {
            left,
            right,
            options,
        } => {
            let (a, b) = (
                load(&left, &options.id_column)?,
                load(&right, &options.id_column)?,
            );
            let opts = link_options(&options)?;
            report_plan(&sightline_linkage::plan_pair(&a, &b, &opts)?);
            (sightline_linkage::pair(&a, &b, &opts)?, options, a, Some(b))
        }
    };
    write_links(&result, &args)?;
    let right = right.as_ref().unwrap_or(&left);
    let explanations: Vec<sightline_linkage::Explanation> = if args.explain {
        result
            .pairs
            .iter()
            .take_while(|p| p.match_probability >= args.threshold)
            .map(|p| result.explain(&left, right, p))
            .collect()
    } else {
        Vec::new()
    };
    if args.json {
        let mut summary = serde_json::to_value(&result.summary)?;
        if args.explain {
            summary["explanations"] = serde_json::to_value(&explanations)?;
        }
        println!("{summary}");
    } else {
        for explanation in &explanations {
            println!("{explanation}");
        }
        let s = &result.summary;
        eprintln!(
            "{} links at or above {} ({} automatic, {} for review) from {} compared pairs; EM ran {} iterations; {} rows skipped",
            s.links,
            s.threshold,
            s.auto_links,
            s.review,
            s.compared_pairs,
            s.em.iterations,
            s.skipped_left.len() + s.skipped_right.len()
        );
        for skipped in s.skipped_left.iter().chain(&s.skipped_right) {
            eprintln!("  skipped line {}: {}", skipped.line, skipped.reason);
        }
    }
    Ok(())
}

fn load(path: &Path, id_column: &str) -> Result<Dataset> {
    Ok(Dataset::from_csv_path(path, id_column)?)
}

fn link_options(args: &LinkArgs) -> Result<LinkOptions> {
    if !(0.0..=1.0).contains(&args.threshold) {
        anyhow::bail!("--threshold is a probability: give a number from 0 to 1");
    }
    let mapping = match &args.mapping {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read mapping {}", path.display()))?;
            Mapping::from_toml_str(&text)
                .with_context(|| format!("mapping {} is not valid", path.display()))?
        }
        None => Mapping::default(),
    };
    Ok(LinkOptions {
        mapping,
        threshold: args.threshold,
        ..LinkOptions::default()
    })
}

/// Blocking's cost, before any comparison runs.
fn report_plan(rules: &[sightline_linkage::RuleCount]) {
    for rule in rules {
        eprintln!(
            "blocking rule {}: {} comparisons",
            rule.rule, rule.comparisons
        );
    }
}

fn write_links(result: &LinkResult, args: &LinkArgs) -> Result<()> {
    let out = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(out);
    result.write_links_csv(&mut out, args.threshold)?;
    std::io::Write::flush(&mut out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(())
}
