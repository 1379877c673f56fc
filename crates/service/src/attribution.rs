//! Attribution over the log, with touches and conversions joined per unified profile, so a
//! click on a phone and a purchase on a laptop count together.

use crate::access::{require, Actor};
use crate::profiles::ProfileRules;
use crate::{Error, Result};
use serde_json::Value;
use sightline_attribution::{ChannelGrouper, JourneyConfig, PathsOptions, ProfileEvent};
use sightline_core::time;
use sightline_profiles::Profiles;

/// The models, in the order reports list them.
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

fn instant(what: &str, text: &str) -> Result<i64> {
    time::parse_ms(text)
        .or_else(|| time::parse_ms(&format!("{text}T00:00:00")))
        .ok_or_else(|| {
            Error::invalid(format!(
                "{what} {text:?} is not a date: write YYYY-MM-DD or an RFC 3339 time"
            ))
        })
}

/// A duration as people write it: "24h", "30m", "7d", "1h 30m".
pub fn duration(what: &str, text: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(text).map_err(|_| {
        Error::invalid(format!(
            "{what} {text:?} is not a duration: write e.g. 24h, 90m or 7d"
        ))
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

/// Every model's credit per channel (and per campaign) over the log's stitched journeys.
pub async fn report(
    store: &dyn sightline_store::EventLog,
    actor: &Actor,
    question: &Question,
    grouper: &ChannelGrouper,
    rules: ProfileRules,
) -> Result<Value> {
    require(actor, crate::access::ATTRIBUTION_READERS, "attribution")?;
    let stitched = journeys(store, question, grouper, rules).await?;
    let mut report =
        sightline_attribution::journeys_report(&stitched.journeys, &PathsOptions::default())
            .map_err(|e| Error::invalid(e.to_string()))?;
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
    store: &dyn sightline_store::EventLog,
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
    let lookback = duration("lookback", question.lookback.as_deref().unwrap_or("30d"))?;
    for model in &question.models {
        if !MODELS.contains(&model.as_str()) {
            return Err(Error::invalid(format!(
                "unknown model {model:?}: use one of {}",
                MODELS.join(", ")
            )));
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
