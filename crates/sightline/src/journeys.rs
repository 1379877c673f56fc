//! `sightline attribution --conversion …`: attribution over the log, with touches and
//! conversions joined per unified profile, so a click on a phone and a purchase on a laptop
//! count together.

use crate::cli::StoreArgs;
use crate::config::FileConfig;
use crate::profiles::ProfileRules;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use sightline_attribution::{ChannelGrouper, JourneyConfig, PathsOptions, ProfileEvent};
use sightline_core::time;
use sightline_profiles::Profiles;

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

fn instant(what: &str, text: &str) -> Result<i64> {
    time::parse_ms(text)
        .or_else(|| time::parse_ms(&format!("{text}T00:00:00")))
        .with_context(|| {
            format!("{what} {text:?} is not a date: write YYYY-MM-DD or an RFC 3339 time")
        })
}

/// What to attribute: the question the command line and the API both ask.
#[derive(Debug, Default, Clone)]
pub struct Question {
    pub conversion: String,
    pub value_property: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub lookback: Option<String>,
    pub models: Vec<String>,
}

pub async fn run(args: LogAttributionArgs, file: &FileConfig) -> Result<()> {
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
    let question = Question {
        conversion,
        value_property: args.value_property.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
        lookback: Some(args.lookback.clone()),
        models: args.models.clone(),
    };
    let store = args.store.open(file).await?;
    let report = report(store.as_ref(), &question, &grouper, file.profile_rules()?).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if args.csv {
        print!("{}", crate::files::credit_csv(&report));
    } else {
        print!("{}", crate::files::credit_table(&report));
    }
    Ok(())
}

/// Every model's credit per channel (and per campaign) over the log's stitched journeys.
pub async fn report(
    store: &dyn sightline_store::Store,
    question: &Question,
    grouper: &ChannelGrouper,
    rules: ProfileRules,
) -> Result<Value> {
    let stitched = journeys(store, question, grouper, rules).await?;
    let mut report =
        sightline_attribution::journeys_report(&stitched.journeys, &PathsOptions::default())?;
    report["events_without_analytics_consent"] = stitched.without_consent.into();
    if !question.models.is_empty() {
        if let Some(models) = report["models"].as_object_mut() {
            models.retain(|name, _| {
                let base = name.strip_suffix("_value").unwrap_or(name);
                question.models.iter().any(|m| m == base)
            });
        }
    }
    Ok(report)
}

/// The log's journeys, stitched per unified profile, and how many events in the window
/// were left out for lack of analytics consent.
pub struct Stitched {
    pub journeys: Vec<sightline_attribution::Journey>,
    pub without_consent: u64,
}

pub async fn journeys(
    store: &dyn sightline_store::Store,
    question: &Question,
    grouper: &ChannelGrouper,
    rules: ProfileRules,
) -> Result<Stitched> {
    let from = question
        .from
        .as_deref()
        .map(|t| instant("from", t))
        .transpose()?;
    let to = question
        .to
        .as_deref()
        .map(|t| instant("to", t))
        .transpose()?;
    let lookback =
        crate::config::parse_duration("lookback", question.lookback.as_deref().unwrap_or("30d"))?;
    for model in &question.models {
        if !crate::files::MODELS.contains(&model.as_str()) {
            bail!(
                "unknown model {model:?}: use one of {}",
                crate::files::MODELS.join(", ")
            );
        }
    }

    let mut profiles = Profiles::with_policy(rules.rules, rules.policy);
    let mut landed = Vec::new();
    let mut events = Vec::new();
    // Events without analytics consent at their time are measured only as counts.
    let mut without_consent: u64 = 0;
    loop {
        let page = store.read_events(profiles.last_seq(), 1000, None).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            let applied = profiles.apply(event);
            let (Some(profile), Some(body)) = (applied.profile, applied.body) else {
                continue;
            };
            let at = body
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(time::parse_ms)
                .unwrap_or(event.received_at);
            if from.is_some_and(|from| at < from) || to.is_some_and(|to| at >= to) {
                continue;
            }
            if !applied.analytics {
                without_consent += 1;
                continue;
            }
            landed.push(profile);
            events.push((at, body));
        }
    }
    // Profiles merged after an event landed count as the profile they became.
    let journeys_input: Vec<ProfileEvent> = landed
        .into_iter()
        .zip(events)
        .filter_map(|(profile, (at, body))| {
            let profile = profiles.canonical(profile)?;
            Some(ProfileEvent::from((profile.0.to_string(), at, body)))
        })
        .collect();
    let config = JourneyConfig {
        value_property: question.value_property.clone(),
        lookback_ms: Some(lookback.as_millis() as i64),
        ..JourneyConfig::new(question.conversion.clone())
    };
    let journeys = sightline_attribution::build_journeys(&journeys_input, &config, grouper);
    Ok(Stitched {
        journeys,
        without_consent,
    })
}
