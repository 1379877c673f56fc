//! The event as this crate sees it: a borrowed view of a stored event's fields, so that
//! the caller parses each body once and every audience and computed trait reads the same view.

use crate::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The six Segment calls (the names `sightline-core` uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Track,
        EventType::Identify,
        EventType::Page,
        EventType::Screen,
        EventType::Group,
        EventType::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of a profile, read from the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event<'a> {
    /// The log sequence number; recorded as the cause of membership changes and used to
    /// order events with equal timestamps.
    pub seq: i64,
    pub event_type: EventType,
    /// `event` of a track call, `name` of a page or screen call.
    pub name: Option<&'a str>,
    /// When it happened (the skew-corrected `timestamp`), in milliseconds.
    pub timestamp: Millis,
    /// `properties` (track, page, screen) or `traits` (identify, group).
    pub properties: &'a Map<String, Value>,
}
