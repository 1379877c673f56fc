//! The event as this crate sees it: a borrowed view of a stored event's fields, so that
//! the caller parses each body once and every audience and computed trait reads the same view.

use crate::time::Millis;
use serde_json::{Map, Value};

pub use sightline_core::EventType;

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
