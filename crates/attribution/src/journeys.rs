//! From events to journeys: touches grouped into sessions, and per-profile paths that
//! end in a conversion or stay open.
//!
//! Per profile, in time order:
//! - a session ends after `session_timeout_ms` without any event;
//! - a touch is recorded for the first touch-carrying event of a session (page events,
//!   and track events with UTM tags or click ids), and again whenever a hit in the
//!   session carries campaign signals that differ from the session's (GA4 starts a new
//!   session on a campaign change);
//! - a conversion event closes the journey with the touches of the last
//!   `lookback_ms` (older ones are dropped); when none is left but the converting
//!   session has a touch, that touch is used, so several conversions in one session all
//!   get the session's source;
//! - touches after the last conversion form a non-converting journey.

use serde::Serialize;
use serde_json::Value;

use crate::channel::{ChannelGrouper, ChannelInput, TrafficSource};
use crate::error::Result;
use crate::path::{AgeUnit, Path, PathSet};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// One stored event of a resolved profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileEvent {
    pub profile_id: String,
    pub timestamp_ms: i64,
    /// The Segment event (`type`, `event`, `properties`, `context`, …).
    pub event: Value,
}

impl From<(String, i64, Value)> for ProfileEvent {
    fn from((profile_id, timestamp_ms, event): (String, i64, Value)) -> Self {
        Self {
            profile_id,
            timestamp_ms,
            event,
        }
    }
}

/// How journeys are cut from events.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyConfig {
    /// Name of the track event that counts as a conversion.
    pub conversion_event: String,
    /// Property of the conversion event holding its value (e.g. `revenue`); without it
    /// every conversion is worth 0.
    pub value_property: Option<String>,
    /// Inactivity that ends a session (GA4 default: 30 minutes).
    pub session_timeout_ms: i64,
    /// Only touches this recent count towards a conversion; `None` keeps all.
    pub lookback_ms: Option<i64>,
    /// Page events are touches.
    pub page_touches: bool,
    /// Track events carrying UTM tags or click ids are touches.
    pub track_touches: bool,
}

impl JourneyConfig {
    pub fn new(conversion_event: impl Into<String>) -> Self {
        Self {
            conversion_event: conversion_event.into(),
            value_property: None,
            session_timeout_ms: 30 * MINUTE_MS,
            lookback_ms: Some(30 * DAY_MS),
            page_touches: true,
            track_touches: true,
        }
    }
}

/// One marketing touch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Touchpoint {
    pub timestamp_ms: i64,
    pub channel: String,
    pub source: String,
    pub medium: String,
    pub campaign: Option<String>,
}

/// The touches of one profile up to a conversion, or after the last one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    pub profile_id: String,
    pub touches: Vec<Touchpoint>,
    /// Time of the conversion; `None` for a journey that did not convert.
    pub converted_at_ms: Option<i64>,
    pub value: f64,
    /// Conversion time, or the profile's last event for a non-converting journey.
    pub ended_at_ms: i64,
}

/// What the models credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Channel,
    /// `channel / campaign`, with `(not set)` for touches without a campaign.
    Campaign,
}

/// Per-profile state while walking its events.
struct ProfileWalk<'a> {
    config: &'a JourneyConfig,
    profile_id: &'a str,
    touches: Vec<Touchpoint>,
    session_touch: Option<Touchpoint>,
    last_event_ms: Option<i64>,
    journeys: Vec<Journey>,
}

impl ProfileWalk<'_> {
    fn step(&mut self, timestamp_ms: i64, event: &Value, grouper: &ChannelGrouper) {
        let new_session = self
            .last_event_ms
            .is_none_or(|last| timestamp_ms.saturating_sub(last) > self.config.session_timeout_ms);
        self.last_event_ms = Some(timestamp_ms);
        if new_session {
            self.session_touch = None;
        }

        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = event.get("event").and_then(Value::as_str);
        if kind == "track" && name == Some(self.config.conversion_event.as_str()) {
            self.convert(timestamp_ms, event);
            return;
        }
        let is_page = kind == "page" && self.config.page_touches;
        let is_track = kind == "track" && self.config.track_touches;
        if !is_page && !is_track {
            return;
        }
        let input = ChannelInput::from_segment_event(event);
        let signals = input.has_campaign_signals();
        if !(is_page || signals) {
            return;
        }
        let traffic = grouper.traffic_source(&input);
        let starts_touch = match &self.session_touch {
            None => true,
            Some(current) => signals && !same_campaign(current, &traffic),
        };
        if starts_touch {
            let touch = Touchpoint {
                timestamp_ms,
                channel: grouper.channel_of(&traffic),
                source: traffic.source,
                medium: traffic.medium,
                campaign: traffic.campaign,
            };
            self.session_touch = Some(touch.clone());
            self.touches.push(touch);
        }
    }

    fn convert(&mut self, timestamp_ms: i64, event: &Value) {
        if let Some(lookback) = self.config.lookback_ms {
            let since = timestamp_ms.saturating_sub(lookback);
            self.touches.retain(|t| t.timestamp_ms >= since);
        }
        let mut touches = std::mem::take(&mut self.touches);
        if touches.is_empty() {
            touches.extend(self.session_touch.clone());
        }
        let value = self
            .config
            .value_property
            .as_deref()
            .and_then(|property| event.get("properties")?.get(property))
            .and_then(number)
            .unwrap_or(0.0);
        self.journeys.push(Journey {
            profile_id: self.profile_id.to_owned(),
            touches,
            converted_at_ms: Some(timestamp_ms),
            value,
            ended_at_ms: timestamp_ms,
        });
    }

    fn finish(mut self) -> Vec<Journey> {
        if !self.touches.is_empty() {
            self.journeys.push(Journey {
                profile_id: self.profile_id.to_owned(),
                touches: self.touches,
                converted_at_ms: None,
                value: 0.0,
                ended_at_ms: self.last_event_ms.unwrap_or_default(),
            });
        }
        self.journeys
    }
}

fn same_campaign(touch: &Touchpoint, traffic: &TrafficSource) -> bool {
    touch.source == traffic.source
        && touch.medium == traffic.medium
        && touch.campaign == traffic.campaign
}

/// A finite, non-negative value from a JSON number or numeric string.
fn number(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (number.is_finite() && number >= 0.0).then_some(number)
}

/// Cuts the events of all profiles into journeys (order of input does not matter).
pub fn build_journeys(
    events: &[ProfileEvent],
    config: &JourneyConfig,
    grouper: &ChannelGrouper,
) -> Vec<Journey> {
    let mut order: Vec<&ProfileEvent> = events.iter().collect();
    order.sort_by(|a, b| {
        (a.profile_id.as_str(), a.timestamp_ms).cmp(&(b.profile_id.as_str(), b.timestamp_ms))
    });
    let mut journeys = Vec::new();
    for profile in order.chunk_by(|a, b| a.profile_id == b.profile_id) {
        let mut walk = ProfileWalk {
            config,
            profile_id: &profile[0].profile_id,
            touches: Vec::new(),
            session_touch: None,
            last_event_ms: None,
            journeys: Vec::new(),
        };
        for event in profile {
            walk.step(event.timestamp_ms, &event.event, grouper);
        }
        journeys.extend(walk.finish());
    }
    journeys
}

/// The journeys as paths over `dimension`, with touch ages in days for time decay.
/// Journeys without touches cannot be credited and are left out.
pub fn path_set(journeys: &[Journey], dimension: Dimension) -> Result<PathSet> {
    let mut paths = PathSet::new(AgeUnit::Days);
    for journey in journeys {
        let touches = journey
            .touches
            .iter()
            .map(|touch| match dimension {
                Dimension::Channel => paths.intern(&touch.channel),
                Dimension::Campaign => paths.intern(&format!(
                    "{} / {}",
                    touch.channel,
                    touch.campaign.as_deref().unwrap_or("(not set)")
                )),
            })
            .collect();
        let ages = journey
            .touches
            .iter()
            .map(|touch| {
                journey.ended_at_ms.saturating_sub(touch.timestamp_ms) as f64 / DAY_MS as f64
            })
            .collect();
        let converted = journey.converted_at_ms.is_some();
        paths.push(Path {
            touches,
            ages,
            conversions: if converted { 1.0 } else { 0.0 },
            value: journey.value,
            nulls: if converted { 0.0 } else { 1.0 },
        })?;
    }
    Ok(paths)
}
