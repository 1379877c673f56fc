//! `sightline attribution`: over the log's stitched journeys (`--conversion`), or over
//! paths imported from a CSV file (`attribution paths FILE.csv`).

use crate::config::{FileConfig, StoreArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use sightline_attribution::models::{PositionWeights, ShapleyVariant};
use sightline_attribution::{ChannelGrouper, PathsOptions};
use sightline_service::access::operator;
use sightline_service::attribution::{self, MODELS};
use sightline_service::export::csv_field;
use std::path::PathBuf;

/// `attribution` over the log (flags), or `attribution paths FILE.csv`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AttributionArgs {
    #[command(subcommand)]
    pub paths: Option<AttributionCommand>,
    #[command(flatten)]
    pub log: LogAttributionArgs,
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

#[derive(Debug, Args)]
pub struct LogAttributionArgs {
    /// The track event that counts as a conversion, e.g. "Order Completed".
    #[arg(long, value_name = "EVENT")]
    conversion: Option<String>,
    /// The conversion's property holding its value, e.g. revenue.
    #[arg(long, value_name = "PROPERTY")]
    value_property: Option<String>,
    /// Only events at or after this time (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only events before this time (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only touches this recent count towards a conversion.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    lookback: String,
    /// Models to show (first_touch, last_touch, last_non_direct, linear, time_decay,
    /// position_based, markov, shapley) [default: all].
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// Channel rules file (TOML) extending the GA4 default channel grouping.
    #[arg(long, value_name = "FILE")]
    channel_rules: Option<std::path::PathBuf>,
    /// Print the full report as JSON.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print channel,model,credit,value rows as CSV.
    #[arg(long)]
    csv: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: AttributionArgs, file: &FileConfig) -> Result<()> {
    match args.paths {
        Some(paths) => self::paths(paths),
        None => log(args.log, file).await,
    }
}

async fn log(args: LogAttributionArgs, file: &FileConfig) -> Result<()> {
    let Some(conversion) = args.conversion.clone() else {
        bail!("say which event is a conversion: --conversion \"Order Completed\" (or use `attribution paths FILE.csv`)");
    };
    let grouper = match &args.channel_rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            ChannelGrouper::from_toml(&text)
                .with_context(|| format!("channel rules {} are not valid", path.display()))?
        }
        None => ChannelGrouper::default(),
    };
    let question = attribution::Question {
        conversion,
        value_property: args.value_property.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        lookback: Some(args.lookback.clone()),
        models: args.models.clone(),
    };
    let store = args.store.open(file).await?;
    let report = attribution::report(
        store.as_ref(),
        &operator(),
        &question,
        &grouper,
        file.profile_rules()?,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if args.csv {
        print!("{}", credit_csv(&report));
    } else {
        print!("{}", credit_table(&report));
    }
    Ok(())
}

fn paths(command: AttributionCommand) -> Result<()> {
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

/// Conversions credited to each channel, one column per model shown, and the spread across
/// all models.
fn credit_table(report: &Value) -> String {
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
fn credit_csv(report: &Value) -> String {
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
