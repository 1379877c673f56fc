//! Destination types beside the webhook: each maps Segment events to the request its
//! vendor documents. Pure: plain data in (an event, the consent decisions the gate made on
//! it, the time), a request body out; the sending is `webhook.rs`'s and the worker is
//! `deliver.rs`'s, with their retries, breaker, dead letters and replay.
//!
//! A type is three decisions, each a function here:
//! - [`Vendor::map`]: what one event becomes — an item of a request, nothing (a call the
//!   vendor has no use for, skipped like an event the filter does not want), or a refusal
//!   before sending (an event the vendor would reject, such as one older than it accepts:
//!   a vendor that rejects a whole batch for one bad event must never be sent it).
//! - [`Vendor::request`]: a batch of items as one request. Items carry an envelope (GA4's
//!   request-level `client_id`, `user_id` and `consent`): only items with equal envelopes
//!   share a request, at most [`Vendor::max_batch`] of them and [`Vendor::max_body_bytes`].
//! - [`Vendor::classify`]: what the vendor's answer means (accepted, retry, refused, or
//!   for a vendor that answers per item some items refused), by its own error semantics
//!   on top of the HTTP status.
//!
//! Personal data is normalised and hashed (SHA-256, lowercase hex) by each vendor's
//! documented rules before it leaves; a value that already is 64 hex digits is taken as
//! hashed by the sender and kept.

pub mod audiences;
pub mod ga4;
pub mod google_ads;
pub mod linkedin;
pub mod meta;
pub mod tiktok;
pub mod warehouse;

use crate::answer::{Answer, Reply};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sightline_consent::Decision;
use sightline_core::{DestinationKind, EventType};
use std::collections::BTreeMap;

/// A vendor destination's settings, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vendor {
    Ga4(ga4::Settings),
    Meta(meta::Settings),
    Tiktok(tiktok::Settings),
    Linkedin(linkedin::Settings),
    GoogleAds(google_ads::Settings),
    /// Not an HTTP API: its batches are written by `crate::warehouse`.
    Warehouse(warehouse::Settings),
}

/// One event as a vendor type sees it, after the destination's transform.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub event_type: EventType,
    pub event: &'a Value,
    pub message_id: &'a str,
    /// The gate's decision on every purpose for this event (`gate::decisions`).
    pub consent: &'a BTreeMap<String, Decision>,
    /// Now, ms since the Unix epoch: vendors refuse events older than they accept.
    pub now_ms: i64,
}

/// What a vendor type makes of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// A call this vendor has no use for: skipped and not logged.
    Skip,
    /// An event the vendor would reject: a dead letter with this reason, never sent.
    Refuse(String),
    /// An item of a request; items with equal envelopes may share one.
    Item { envelope: Value, item: Value },
}

/// One HTTP request with a JSON body. The URL or a header carries the credential: neither
/// is ever logged or put in a delivery's reason.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The HTTP methods vendor APIs are called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    /// Meta removes audience members with a DELETE that has a body.
    Delete,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &"***")
            .field("body", &self.body)
            .finish()
    }
}

impl Vendor {
    /// The vendor type of a destination, its stored settings read; `None` for a webhook.
    pub fn of(kind: DestinationKind, settings: &Value) -> Result<Option<Vendor>, String> {
        let read =
            |e: serde_json::Error| format!("the {} settings are not valid: {e}", kind.as_str());
        Ok(match kind {
            DestinationKind::Webhook => None,
            DestinationKind::Ga4 => Some(Vendor::Ga4(
                serde_json::from_value(settings.clone()).map_err(read)?,
            )),
            DestinationKind::Meta => Some(Vendor::Meta(
                serde_json::from_value(settings.clone()).map_err(read)?,
            )),
            DestinationKind::Tiktok => Some(Vendor::Tiktok(
                serde_json::from_value(settings.clone()).map_err(read)?,
            )),
            DestinationKind::Linkedin => Some(Vendor::Linkedin(
                serde_json::from_value(settings.clone()).map_err(read)?,
            )),
            DestinationKind::GoogleAds => Some(Vendor::GoogleAds(
                serde_json::from_value(settings.clone()).map_err(read)?,
            )),
            DestinationKind::Warehouse => Some(Vendor::Warehouse(
                serde_json::from_value(settings.clone()).map_err(read)?,
            )),
        })
    }

    /// Checks settings as given by a person (CLI, API or TOML); the error says what to fix.
    pub fn check(kind: DestinationKind, settings: &Map<String, Value>) -> Result<Value, String> {
        let value = Value::Object(settings.clone());
        let vendor = match Vendor::of(kind, &value)? {
            Some(vendor) => vendor,
            None if settings.is_empty() => return Ok(value),
            None => return Err("a webhook takes no settings: remove them".into()),
        };
        match &vendor {
            Vendor::Ga4(s) => s.check()?,
            Vendor::Meta(s) => s.check()?,
            Vendor::Tiktok(s) => s.check()?,
            Vendor::Linkedin(s) => s.check()?,
            Vendor::GoogleAds(s) => s.check()?,
            Vendor::Warehouse(s) => s.check()?,
        }
        Ok(vendor.settings())
    }

    /// Checks a vendor type's credential as given (a destination added, a credential
    /// replaced); the error says what to fix and never repeats the credential.
    pub fn check_credential(kind: DestinationKind, credential: &str) -> Result<(), String> {
        match kind {
            DestinationKind::GoogleAds => google_ads::check_credential(credential),
            _ => Ok(()),
        }
    }

    /// The settings as stored, defaults filled in.
    fn settings(&self) -> Value {
        let stored = match self {
            Vendor::Ga4(s) => serde_json::to_value(s),
            Vendor::Meta(s) => serde_json::to_value(s),
            Vendor::Tiktok(s) => serde_json::to_value(s),
            Vendor::Linkedin(s) => serde_json::to_value(s),
            Vendor::GoogleAds(s) => serde_json::to_value(s),
            Vendor::Warehouse(s) => serde_json::to_value(s),
        };
        stored.unwrap_or_else(|_| Value::Object(Map::new()))
    }

    /// The vendor's documented endpoint, used when a destination names none.
    pub fn default_endpoint(kind: DestinationKind) -> Option<&'static str> {
        match kind {
            DestinationKind::Webhook | DestinationKind::Warehouse => None,
            DestinationKind::Ga4 => Some(ga4::ENDPOINT),
            DestinationKind::Meta => Some(meta::ENDPOINT),
            DestinationKind::Tiktok => Some(tiktok::ENDPOINT),
            DestinationKind::Linkedin => Some(linkedin::ENDPOINT),
            DestinationKind::GoogleAds => Some(google_ads::ENDPOINT),
        }
    }

    /// The Sightline purposes an event's consent must grant when the destination names
    /// none: analytics for an analytics tool, advertising for an ad platform.
    pub fn default_purposes(kind: DestinationKind) -> &'static [&'static str] {
        match kind {
            DestinationKind::Webhook => &[],
            DestinationKind::Ga4 | DestinationKind::Warehouse => &["analytics"],
            DestinationKind::Meta
            | DestinationKind::Tiktok
            | DestinationKind::Linkedin
            | DestinationKind::GoogleAds => &["advertising"],
        }
    }

    /// The most events the vendor takes in one request.
    pub fn max_batch(kind: DestinationKind) -> Option<u32> {
        match kind {
            DestinationKind::Webhook => None,
            DestinationKind::Ga4 => Some(ga4::MAX_EVENTS),
            DestinationKind::Meta => Some(meta::MAX_EVENTS),
            DestinationKind::Tiktok => Some(tiktok::MAX_EVENTS),
            DestinationKind::Linkedin => Some(linkedin::MAX_EVENTS),
            DestinationKind::GoogleAds => Some(google_ads::MAX_EVENTS),
            DestinationKind::Warehouse => Some(warehouse::MAX_EVENTS),
        }
    }

    /// The largest request body the vendor takes, if it documents one.
    pub fn max_body_bytes(&self) -> Option<usize> {
        match self {
            Vendor::Ga4(_) => Some(ga4::MAX_BODY_BYTES),
            Vendor::Meta(_)
            | Vendor::Tiktok(_)
            | Vendor::Linkedin(_)
            | Vendor::GoogleAds(_)
            | Vendor::Warehouse(_) => None,
        }
    }

    pub fn map(&self, input: &Input<'_>) -> Mapped {
        match self {
            Vendor::Ga4(s) => s.map(input),
            Vendor::Meta(s) => s.map(input),
            Vendor::Tiktok(s) => s.map(input),
            Vendor::Linkedin(s) => s.map(input),
            Vendor::GoogleAds(s) => s.map(input),
            Vendor::Warehouse(s) => s.map(input),
        }
    }

    /// The request for a batch of items sharing `envelope`; `endpoint` is the
    /// destination's URL, `credential` its secret. `None` for the warehouse, which is
    /// written to, not requested.
    pub fn request(
        &self,
        endpoint: &str,
        credential: &str,
        envelope: &Value,
        items: Vec<Value>,
    ) -> Option<Request> {
        Some(match self {
            Vendor::Ga4(s) => s.request(endpoint, credential, envelope, items),
            Vendor::Meta(s) => s.request(endpoint, credential, items),
            Vendor::Tiktok(s) => s.request(endpoint, credential, items),
            Vendor::Linkedin(s) => s.request(endpoint, credential, items),
            Vendor::GoogleAds(s) => s.request(endpoint, credential, items),
            Vendor::Warehouse(_) => return None,
        })
    }

    pub fn classify(&self, reply: &Reply) -> Answer {
        match self {
            Vendor::Ga4(_) => ga4::classify(reply),
            Vendor::Meta(_) => meta::classify(reply),
            Vendor::Tiktok(_) => tiktok::classify(reply),
            Vendor::Linkedin(_) => linkedin::classify(reply),
            Vendor::GoogleAds(_) => google_ads::classify(reply),
            Vendor::Warehouse(_) => crate::answer::by_status(reply),
        }
    }
}

/// Lowercase hex SHA-256 of `normalised`, or `None` when there is nothing to hash (the
/// hash of the empty string would match every other empty value). A value that already
/// is 64 hex digits was hashed by the sender and is kept as it is.
pub fn sha256_hex(normalised: &str) -> Option<String> {
    if normalised.is_empty() {
        return None;
    }
    if normalised.len() == 64 && normalised.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(normalised.to_ascii_lowercase());
    }
    Some(hex::encode(Sha256::digest(normalised.as_bytes())))
}

/// The first of `pointers` that holds a string (or a number, as text) in `event`.
fn text_at(event: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| match event.pointer(p)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A trait of the person, wherever the call carries it: `context.traits`, an identify's
/// `traits`, a track's `properties`, in that order; `names` are its spellings.
fn trait_text(event: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        let name = name.replace('.', "/");
        text_at(
            event,
            &[
                &format!("/context/traits/{name}"),
                &format!("/traits/{name}"),
                &format!("/properties/{name}"),
            ],
        )
    })
}

/// A number at `pointer`, also when sent as a numeric string (`"19.99"`).
fn number_at(event: &Value, pointer: &str) -> Option<f64> {
    match event.pointer(pointer)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// The event's time (its `timestamp`, corrected for clock skew by the collector), ms.
fn event_time_ms(event: &Value) -> Option<i64> {
    event
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(sightline_core::time::parse_ms)
}

/// A track call's name, a page or screen call's name.
fn event_name(event: &Value) -> Option<&str> {
    event
        .get("event")
        .or_else(|| event.get("name"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|name| !name.is_empty())
}

/// An ISO 4217 currency code (`eur` → `EUR`), or `None` for anything that cannot be one.
fn currency_code(value: &str) -> Option<String> {
    let code = value.trim().to_ascii_uppercase();
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())).then_some(code)
}

/// Whether a property is personal data a key names (an email or a phone): never passed on
/// as a plain parameter, only hashed where the vendor has a field for it.
fn names_contact(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("email") || key.contains("phone")
}

fn granted(consent: &BTreeMap<String, Decision>, purpose: &str) -> bool {
    consent.get(purpose) == Some(&Decision::Granted)
}

/// The value of `name` in `url`'s query, if it has one and it is not empty.
fn query_value(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    let value = url
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())?;
    (!value.is_empty()).then_some(value)
}

/// Appends `query` (already encoded) to `endpoint`, after any query it has.
fn with_query(endpoint: &str, query: &str) -> String {
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{separator}{query}")
}

/// `value` as a query parameter value (RFC 3986 unreserved characters kept).
fn encode_query(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_are_lowercase_hex_and_nothing_hashes_to_nothing() {
        assert_eq!(
            sha256_hex("test@example.com").as_deref(),
            Some("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b")
        );
        assert_eq!(sha256_hex(""), None);
        let hashed = "973DFE463EC85785F5F95AF5BA3906EEDB2D931C24E69824A89EA65DBA4E813B";
        assert_eq!(sha256_hex(hashed), Some(hashed.to_ascii_lowercase()));
    }

    #[test]
    fn traits_are_read_from_context_then_traits_then_properties() {
        let event = json!({"traits": {"email": "a@x"}, "properties": {"email": "b@x"},
                           "context": {"traits": {"address": {"city": "Paris"}}}});
        assert_eq!(trait_text(&event, &["email"]).as_deref(), Some("a@x"));
        assert_eq!(
            trait_text(&event, &["address.city"]).as_deref(),
            Some("Paris")
        );
        assert_eq!(trait_text(&event, &["phone"]), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(with_query("http://h/p", "a=1"), "http://h/p?a=1");
        assert_eq!(with_query("http://h/p?x=2", "a=1"), "http://h/p?x=2&a=1");
    }

    #[test]
    fn settings_are_checked_per_type() {
        let none = Map::new();
        assert_eq!(
            Vendor::check(DestinationKind::Webhook, &none),
            Ok(json!({}))
        );
        let mut some = Map::new();
        some.insert("measurement_id".into(), json!("G-ABC123"));
        assert!(Vendor::check(DestinationKind::Webhook, &some)
            .unwrap_err()
            .contains("webhook takes no settings"));
        assert_eq!(
            Vendor::check(DestinationKind::Ga4, &some),
            Ok(json!({"measurement_id": "G-ABC123"}))
        );
        let err = Vendor::check(DestinationKind::Ga4, &none).unwrap_err();
        assert!(err.contains("measurement_id"), "{err}");
        some.insert("measurment".into(), json!("typo"));
        let err = Vendor::check(DestinationKind::Ga4, &some).unwrap_err();
        assert!(err.contains("measurment"), "{err}");
    }
}
