//! Commands that work on plain files, without a store: attribution over imported paths and
//! record linkage of CSV files. Each reads its inputs, calls a pure crate, writes outputs.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use sightline_attribution::models::{PositionWeights, ShapleyVariant};
use sightline_attribution::PathsOptions;
use sightline_linkage::{Dataset, LinkOptions, LinkResult, Mapping};
use std::path::{Path, PathBuf};

/// `attribution` over the log (flags), or `attribution paths FILE.csv`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AttributionArgs {
    #[command(subcommand)]
    pub paths: Option<AttributionCommand>,
    #[command(flatten)]
    pub log: crate::journeys::LogAttributionArgs,
}

#[derive(Debug, Subcommand)]
pub enum AttributionCommand {
    /// Run every model over paths imported from a CSV file
    /// (columns path,total_conversions,total_conversion_value,total_null; channels joined by " > ").
    Paths {
        file: PathBuf,
        /// Print the full report as JSON (the default is a table of credit per model).
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print channel,model,credit,value rows as CSV.
        #[arg(long)]
        csv: bool,
        /// Markov chain order, 1 to 4.
        #[arg(long, default_value_t = 1)]
        markov_order: usize,
        /// Shapley variant: simplified, or ordered (adds credit by position).
        #[arg(long, default_value = "simplified")]
        shapley: String,
        /// Time-decay half-life in path steps.
        #[arg(long, default_value_t = 1.0)]
        half_life: f64,
        /// Position-based weights of the first and last touch, e.g. 0.4,0.4.
        #[arg(long, default_value = "0.4,0.4", value_name = "FIRST,LAST")]
        position_weights: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
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

pub fn attribution(command: AttributionCommand) -> Result<()> {
    let AttributionCommand::Paths {
        file,
        json,
        csv,
        markov_order,
        shapley,
        half_life,
        position_weights,
    } = command;
    let (first, last) = position_weights
        .split_once(',')
        .and_then(|(f, l)| Some((f.trim().parse().ok()?, l.trim().parse().ok()?)))
        .context("--position-weights takes two numbers, FIRST,LAST, e.g. 0.4,0.4")?;
    let options = PathsOptions {
        markov_order,
        shapley_variant: shapley.parse::<ShapleyVariant>()?,
        half_life_steps: half_life,
        position_weights: PositionWeights { first, last },
        ..PathsOptions::default()
    };
    let input =
        std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
    let report = sightline_attribution::paths_report(input, &options)
        .with_context(|| format!("cannot attribute the paths in {}", file.display()))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else if csv {
        print!("{}", credit_csv(&report));
    } else {
        print!("{}", credit_table(&report));
    }
    Ok(())
}

pub const MODELS: [&str; 8] = [
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
    "markov",
    "shapley",
];

/// Conversions credited to each channel, one column per model shown, and the spread across
/// all models.
pub fn credit_table(report: &Value) -> String {
    let models: Vec<&str> = MODELS
        .into_iter()
        .filter(|m| report["models"].get(m).is_some())
        .collect();
    let mut channels: Vec<&String> = models
        .first()
        .and_then(|m| report["models"][m].as_object())
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    channels.sort();
    let width = channels.iter().map(|c| c.len()).max().unwrap_or(7).max(7);
    let mut out = format!("{:width$}", "channel");
    for model in &models {
        out.push_str(&format!(" {model:>15}"));
    }
    out.push_str(&format!(" {:>15}\n", "std_dev"));
    for channel in channels {
        out.push_str(&format!("{channel:width$}"));
        for model in &models {
            let credit = report["models"][*model][channel].as_f64().unwrap_or(0.0);
            out.push_str(&format!(" {credit:>15.2}"));
        }
        let spread = report["variance"][channel]["std_dev"]
            .as_f64()
            .unwrap_or(0.0);
        out.push_str(&format!(" {spread:>15.2}\n"));
    }
    out
}

/// `channel,model,credit,value`: one row per channel and model shown.
/// A CSV field: quoted (with quotes doubled) when it holds a comma, quote or line break.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub fn credit_csv(report: &Value) -> String {
    let mut out = String::from("channel,model,credit,value\n");
    for model in MODELS {
        let (Some(credit), value) = (
            report["models"][model].as_object(),
            report["models"][format!("{model}_value")].as_object(),
        ) else {
            continue;
        };
        let mut channels: Vec<&String> = credit.keys().collect();
        channels.sort();
        for channel in channels {
            let quoted = csv_field(channel);
            let credit = credit[channel].as_f64().unwrap_or(0.0);
            let value = value
                .and_then(|v| v.get(channel))
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            out.push_str(&format!("{quoted},{model},{credit},{value}\n"));
        }
    }
    out
}

pub fn link(command: LinkCommand) -> Result<()> {
    let (result, args, left, right) = match command {
        LinkCommand::Dedupe { file, options } => {
            let records = load(&file, &options.id_column)?;
            let opts = link_options(&options)?;
            report_plan(&sightline_linkage::plan_dedupe(&records, &opts)?);
            let result = sightline_linkage::dedupe(&records, &opts)?;
            (result, options, records, None)
        }
        LinkCommand::Pair {
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

#[cfg(test)]
mod csv_tests {
    use super::csv_field;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("Paid Search"), "Paid Search");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
