//! Google Analytics 4, Measurement Protocol (web streams). Pure.
//!
//! Built to Google's "Measurement Protocol reference" and "Send Measurement Protocol
//! events" (developers.google.com/analytics/devguides/collection/protocol/ga4): a POST to
//! `/mp/collect?measurement_id=…&api_secret=…` with a JSON body of request-level
//! `client_id` (required for web streams), `user_id`, `consent` (`ad_user_data`,
//! `ad_personalization`: `GRANTED` or `DENIED`) and at most 25 `events`, each a `name`,
//! `params` and its own `timestamp_micros`; a body of at most 130 kB. Events may be
//! backdated up to 72 hours. GA4's collection limits (support.google.com/analytics/answer/
//! 9267744): names of events and parameters at most 40 characters, at most 25 parameters
//! per event, parameter values at most 100 characters (`page_location` 1,000,
//! `page_referrer` 420, `page_title` 300).
//!
//! Mapping: a track call is an event named after it — the Segment e-commerce events by
//! their GA4 recommended names (`Order Completed` → `purchase`, with `value`, `currency`,
//! `transaction_id` and `items`), other names in snake case (`Video Played` →
//! `video_played`); page → `page_view`, group → `join_group`. Identify and alias are
//! skipped: GA4 has no such call, and the `user_id` on later events links the person.
//! Screen is skipped too: screens belong to app streams, whose `screen_view` the
//! Measurement Protocol reserves. `client_id` is the event's `anonymousId` (else its `userId`).
//! GA4's policy forbids personal data, so properties named like an email or phone are
//! never sent. Google Consent Mode: `ad_user_data` and `ad_personalization` are the
//! event's own Consent Mode states when it carries them, else what the gate decided on the
//! `advertising` purpose (granted → `GRANTED`, anything else → `DENIED`: silence is
//! refusal).
//!
//! Answers: the Measurement Protocol answers 2xx to every request it receives, valid or
//! not (only its validation server reports errors), so a 2xx is delivered, 5xx, 408 and
//! 429 are retried (after `Retry-After`), and anything else is a refusal.

use super::{
    encode_query, event_name, event_time_ms, granted, names_contact, number_at, text_at,
    with_query, Input, Mapped, Request,
};
use crate::answer::{self, Answer, Reply};
use serde_json::{json, Map, Value};
use sightline_core::EventType;

pub const ENDPOINT: &str = "https://www.google-analytics.com/mp/collect";
pub const MAX_EVENTS: u32 = 25;
pub const MAX_BODY_BYTES: usize = 130_000;
/// How far back an event may be dated.
const MAX_AGE_MS: i64 = 72 * 3600 * 1000;
const MAX_NAME: usize = 40;
const MAX_PARAMS: usize = 25;
const MAX_VALUE: usize = 100;

/// Event names the Measurement Protocol reserves (its reference, "Reserved names").
const RESERVED_EVENTS: &[&str] = &[
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_impression",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_remove",
    "app_store_refund",
    "app_store_subscription_cancel",
    "app_store_subscription_convert",
    "app_store_subscription_renew",
    "app_uninstall",
    "app_update",
    "app_upgrade",
    "dynamic_link_app_open",
    "dynamic_link_app_update",
    "dynamic_link_first_open",
    "error",
    "first_open",
    "first_visit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "os_update",
    "session_start",
    "session_start_with_rollout",
    "user_engagement",
    "screen_view",
    "notification_send",
    "firebase_campaign",
    "app_install",
];
/// Prefixes reserved for event and parameter names.
const RESERVED_PREFIXES: [&str; 4] = ["_", "firebase_", "ga_", "google_"];

/// Segment e-commerce spec events and GA4's recommended event for each.
const RECOMMENDED: [(&str, &str); 16] = [
    ("Products Searched", "search"),
    ("Product List Viewed", "view_item_list"),
    ("Product Clicked", "select_item"),
    ("Product Viewed", "view_item"),
    ("Product Added", "add_to_cart"),
    ("Product Removed", "remove_from_cart"),
    ("Cart Viewed", "view_cart"),
    ("Product Added to Wishlist", "add_to_wishlist"),
    ("Checkout Started", "begin_checkout"),
    ("Payment Info Entered", "add_payment_info"),
    ("Order Completed", "purchase"),
    ("Order Refunded", "refund"),
    ("Promotion Viewed", "view_promotion"),
    ("Promotion Clicked", "select_promotion"),
    ("Signed Up", "sign_up"),
    ("Signed In", "login"),
];

/// Segment product fields and GA4 item parameters.
const ITEM_FIELDS: [(&str, &str); 9] = [
    ("product_id", "item_id"),
    ("sku", "item_id"),
    ("name", "item_name"),
    ("category", "item_category"),
    ("brand", "item_brand"),
    ("variant", "item_variant"),
    ("price", "price"),
    ("quantity", "quantity"),
    ("coupon", "coupon"),
];

/// Segment properties with a GA4 parameter of their own (the first that is present wins).
const PARAMS: [(&str, &str); 9] = [
    ("revenue", "value"),
    ("total", "value"),
    ("value", "value"),
    ("currency", "currency"),
    ("order_id", "transaction_id"),
    ("coupon", "coupon"),
    ("shipping", "shipping"),
    ("tax", "tax"),
    ("query", "search_term"),
];

/// A GA4 destination's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The web stream's measurement ID (`G-…`), under Admin › Data streams.
    pub measurement_id: String,
}

impl Settings {
    pub(super) fn check(&self) -> Result<(), String> {
        let id = &self.measurement_id;
        if id.is_empty()
            || id.len() > 64
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "measurement_id {id:?} is not a GA4 measurement ID: copy it (G-…) from Admin › Data streams"
            ));
        }
        Ok(())
    }

    pub(super) fn map(&self, input: &Input<'_>) -> Mapped {
        let event = input.event;
        let (name, mut params) = match input.event_type {
            // Screens are app-stream events, whose `screen_view` the Measurement Protocol
            // reserves for the Firebase SDK.
            EventType::Identify | EventType::Alias | EventType::Screen => return Mapped::Skip,
            EventType::Track => {
                let Some(segment_name) = event_name(event) else {
                    return Mapped::Refuse("a track call without an event name".into());
                };
                let name = match RECOMMENDED.iter().find(|(s, _)| *s == segment_name) {
                    Some((_, recommended)) => (*recommended).to_owned(),
                    None => match snake_case(segment_name) {
                        Some(name) => name,
                        None => {
                            return Mapped::Refuse(format!(
                            "event {segment_name:?} has no letter to start a GA4 event name with"
                        ))
                        }
                    },
                };
                (name, commerce_params(event))
            }
            EventType::Page => ("page_view".to_owned(), page_params(event)),
            EventType::Group => {
                let mut params = Map::new();
                if let Some(group) = text_at(event, &["/groupId"]) {
                    params.insert("group_id".into(), truncated(&group, MAX_VALUE).into());
                }
                ("join_group".to_owned(), params)
            }
        };
        if RESERVED_EVENTS.contains(&name.as_str())
            || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            return Mapped::Refuse(format!(
                "{name:?} is a name GA4 reserves for its own events: rename the event"
            ));
        }
        let Some(at) = event_time_ms(event) else {
            return Mapped::Refuse("the event has no valid timestamp".into());
        };
        if input.now_ms - at > MAX_AGE_MS {
            return Mapped::Refuse(
                "the event is older than the 72 hours GA4 accepts for backdated events".into(),
            );
        }
        other_params(event, &mut params);
        let Some(client_id) = text_at(event, &["/anonymousId", "/userId"]) else {
            return Mapped::Refuse(
                "GA4 needs a client_id: the event has no anonymousId or userId".into(),
            );
        };
        let mut envelope = Map::new();
        envelope.insert("client_id".into(), client_id.into());
        if let Some(user_id) = text_at(event, &["/userId"]) {
            envelope.insert("user_id".into(), truncated(&user_id, 256).into());
        }
        envelope.insert("consent".into(), consent(input));
        Mapped::Item {
            envelope: Value::Object(envelope),
            item: json!({"name": name, "params": params, "timestamp_micros": at.saturating_mul(1000)}),
        }
    }

    pub(super) fn request(
        &self,
        endpoint: &str,
        api_secret: &str,
        envelope: &Value,
        events: Vec<Value>,
    ) -> Request {
        let mut body = envelope.as_object().cloned().unwrap_or_default();
        body.insert("events".into(), Value::Array(events));
        Request {
            method: super::Method::Post,
            url: with_query(
                endpoint,
                &format!(
                    "measurement_id={}&api_secret={}",
                    encode_query(&self.measurement_id),
                    encode_query(api_secret)
                ),
            ),
            headers: Vec::new(),
            body: Value::Object(body).to_string(),
        }
    }
}

/// See the module: the Measurement Protocol reports nothing but transport and server
/// failures.
pub(super) fn classify(reply: &Reply) -> Answer {
    answer::by_status(reply)
}

/// `ad_user_data` and `ad_personalization` for the request.
fn consent(input: &Input<'_>) -> Value {
    let advertising = granted(input.consent, "advertising");
    let state = |name: &str| {
        let stated = input
            .event
            .pointer(&format!("/context/consent/googleConsentMode/{name}"))
            .and_then(Value::as_str);
        match stated {
            Some("granted") => "GRANTED",
            Some("denied") => "DENIED",
            _ if advertising => "GRANTED",
            _ => "DENIED",
        }
    };
    json!({"ad_user_data": state("ad_user_data"), "ad_personalization": state("ad_personalization")})
}

/// `Video Played` → `video_played`: letters, digits and underscores, starting with a
/// letter, at most 40 characters; `None` when no letter is left to start with.
fn snake_case(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let start = out.find(|c: char| c.is_ascii_alphabetic())?;
    let name = out[start..].trim_end_matches('_');
    Some(truncated(name, MAX_NAME).trim_end_matches('_').to_owned())
}

/// A parameter name GA4 takes, or `None` for one it reserves or cannot take.
fn param_name(key: &str) -> Option<String> {
    if RESERVED_PREFIXES.iter().any(|p| key.starts_with(p)) {
        return None;
    }
    let name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        .then(|| truncated(&name, MAX_NAME).to_owned())
}

/// A whole number as an integer (a quantity of `2`, not `2.0`), others as they are.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

/// At most `max` characters of `s`.
fn truncated(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// A property value as a GA4 parameter: strings (cut to 100 characters), numbers and
/// booleans (as 0/1 is not documented, booleans are sent as text); objects, arrays and
/// nulls are not parameters.
fn param_value(value: &Value) -> Option<Value> {
    match value {
        Value::String(s) => Some(truncated(s, MAX_VALUE).into()),
        Value::Number(_) => Some(value.clone()),
        Value::Bool(b) => Some(b.to_string().into()),
        _ => None,
    }
}

/// The parameters a Segment e-commerce event has GA4 names for, and its products as
/// `items`.
fn commerce_params(event: &Value) -> Map<String, Value> {
    let mut params = Map::new();
    for (segment, ga4) in PARAMS {
        if params.contains_key(ga4) {
            continue;
        }
        let pointer = format!("/properties/{segment}");
        let value = match ga4 {
            "value" | "shipping" | "tax" => number_at(event, &pointer).map(number),
            _ => text_at(event, &[&pointer]).map(|s| truncated(&s, MAX_VALUE).into()),
        };
        if let Some(value) = value {
            params.insert(ga4.into(), value);
        }
    }
    if let Some(currency) = params.get_mut("currency") {
        if let Some(code) = currency.as_str() {
            *currency = code.to_ascii_uppercase().into();
        }
    }
    let products = match event.pointer("/properties/products") {
        Some(Value::Array(products)) => products.iter().collect::<Vec<_>>(),
        // A single-product event (Product Viewed, Product Added) is its own item.
        _ if event.pointer("/properties/product_id").is_some()
            || event.pointer("/properties/sku").is_some() =>
        {
            event.get("properties").into_iter().collect()
        }
        _ => Vec::new(),
    };
    let items: Vec<Value> = products
        .into_iter()
        .filter_map(|product| {
            let mut item = Map::new();
            for (segment, ga4) in ITEM_FIELDS {
                if item.contains_key(ga4) {
                    continue;
                }
                let value = match ga4 {
                    "price" | "quantity" => number_at(product, &format!("/{segment}")).map(number),
                    _ => text_at(product, &[&format!("/{segment}")])
                        .map(|s| truncated(&s, MAX_VALUE).into()),
                };
                if let Some(value) = value {
                    item.insert(ga4.into(), value);
                }
            }
            // GA4 needs an item's id or name.
            (item.contains_key("item_id") || item.contains_key("item_name"))
                .then_some(Value::Object(item))
        })
        .collect();
    if !items.is_empty() {
        params.insert("items".into(), Value::Array(items));
    }
    params
}

/// `page_location`, `page_title` and `page_referrer` from the page call's properties,
/// else its `context.page`.
fn page_params(event: &Value) -> Map<String, Value> {
    let mut params = Map::new();
    for (field, param, max) in [
        ("url", "page_location", 1000),
        ("title", "page_title", 300),
        ("referrer", "page_referrer", 420),
    ] {
        let value = text_at(
            event,
            &[
                &format!("/properties/{field}"),
                &format!("/context/page/{field}"),
            ],
        )
        .or_else(|| {
            (field == "title")
                .then(|| event_name(event).map(str::to_owned))
                .flatten()
        });
        if let Some(value) = value {
            params.insert(param.into(), truncated(&value, max).into());
        }
    }
    params
}

/// The event's other scalar properties as parameters, up to GA4's 25 in all (the ones
/// mapped above first, then the properties in the order sent); never an email or phone.
fn other_params(event: &Value, params: &mut Map<String, Value>) {
    let Some(Value::Object(properties)) = event.get("properties") else {
        return;
    };
    let consumed = |key: &str| {
        PARAMS.iter().any(|(segment, _)| *segment == key)
            || ["products", "url", "title", "referrer", "path", "search"].contains(&key)
            || ITEM_FIELDS.iter().any(|(segment, _)| *segment == key)
                && params.contains_key("items")
    };
    let extra: Vec<(String, Value)> = properties
        .iter()
        .filter(|(key, _)| !consumed(key) && !names_contact(key))
        .filter_map(|(key, value)| Some((param_name(key)?, param_value(value)?)))
        .collect();
    for (name, value) in extra {
        if params.len() >= MAX_PARAMS {
            break;
        }
        params.entry(name).or_insert(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendor::{Input, Vendor};
    use proptest::prelude::*;
    use sightline_consent::Decision;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_764_000_000_000;

    fn settings() -> Settings {
        Settings {
            measurement_id: "G-TEST123".into(),
        }
    }

    fn at(ms: i64) -> String {
        sightline_core::time::format_ms(ms)
    }

    fn consent(advertising: Decision) -> BTreeMap<String, Decision> {
        [
            ("analytics".to_owned(), Decision::Granted),
            ("advertising".to_owned(), advertising),
        ]
        .into_iter()
        .collect()
    }

    fn mapped(event_type: EventType, event: Value, advertising: Decision) -> Mapped {
        settings().map(&Input {
            event_type,
            event: &event,
            message_id: "m1",
            consent: &consent(advertising),
            now_ms: NOW,
        })
    }

    fn item(mapped: Mapped) -> (Value, Value) {
        match mapped {
            Mapped::Item { envelope, item } => (envelope, item),
            other => panic!("expected an item, got {other:?}"),
        }
    }

    #[test]
    fn order_completed_is_a_purchase_with_items() {
        let (envelope, event) = item(mapped(
            EventType::Track,
            json!({"type": "track", "event": "Order Completed", "anonymousId": "a1", "userId": "u1",
                   "timestamp": at(NOW - 1000),
                   "properties": {"order_id": "o-1", "revenue": 30.5, "currency": "eur",
                                  "email": "ann@example.com", "coupon": "SAVE",
                                  "products": [{"product_id": "p1", "name": "Shoe", "price": "10.25", "quantity": 2},
                                               {"brand": "no id nor name"}],
                                  "gift": true, "nested": {"no": 1}}}),
            Decision::Granted,
        ));
        assert_eq!(
            envelope,
            json!({"client_id": "a1", "user_id": "u1",
                   "consent": {"ad_user_data": "GRANTED", "ad_personalization": "GRANTED"}})
        );
        assert_eq!(
            event,
            json!({"name": "purchase", "timestamp_micros": (NOW - 1000) * 1000, "params": {
                "value": 30.5, "currency": "EUR", "transaction_id": "o-1", "coupon": "SAVE",
                "items": [{"item_id": "p1", "item_name": "Shoe", "price": 10.25, "quantity": 2}],
                "gift": "true"}})
        );
    }

    #[test]
    fn every_call_type_has_its_mapping() {
        let base = |extra: Value| {
            let mut event = json!({"anonymousId": "a1", "timestamp": at(NOW)});
            event
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            event
        };
        let name = |t, extra| item(mapped(t, base(extra), Decision::Granted)).1;
        assert_eq!(
            name(
                EventType::Track,
                json!({"event": "Video Played!", "properties": {"Video Id": 7}})
            ),
            json!({"name": "video_played", "timestamp_micros": NOW * 1000, "params": {"Video_Id": 7}})
        );
        assert_eq!(
            name(
                EventType::Page,
                json!({"name": "Home", "context": {"page": {"url": "https://s.example/", "referrer": "https://r.example/"}}})
            ),
            json!({"name": "page_view", "timestamp_micros": NOW * 1000, "params": {
                "page_location": "https://s.example/", "page_title": "Home", "page_referrer": "https://r.example/"}})
        );
        assert_eq!(
            name(EventType::Group, json!({"groupId": "acme"})),
            json!({"name": "join_group", "timestamp_micros": NOW * 1000, "params": {"group_id": "acme"}})
        );
        for skipped in [EventType::Identify, EventType::Alias, EventType::Screen] {
            assert_eq!(
                mapped(skipped, base(json!({})), Decision::Granted),
                Mapped::Skip
            );
        }
    }

    #[test]
    fn consent_mode_states_pass_through_and_silence_is_denial() {
        let event = |consent: Value| json!({"event": "X", "userId": "u", "timestamp": at(NOW), "context": {"consent": consent}});
        let (envelope, _) = item(mapped(
            EventType::Track,
            event(json!({})),
            Decision::NotStated,
        ));
        assert_eq!(envelope["client_id"], "u");
        assert_eq!(
            envelope["consent"],
            json!({"ad_user_data": "DENIED", "ad_personalization": "DENIED"})
        );
        let (envelope, _) = item(mapped(
            EventType::Track,
            event(
                json!({"googleConsentMode": {"ad_user_data": "granted", "ad_personalization": "denied"}}),
            ),
            Decision::Denied,
        ));
        assert_eq!(
            envelope["consent"],
            json!({"ad_user_data": "GRANTED", "ad_personalization": "DENIED"})
        );
    }

    #[test]
    fn events_ga4_would_drop_are_refused_before_sending() {
        let refused = |event_type, event: Value| match mapped(event_type, event, Decision::Granted)
        {
            Mapped::Refuse(reason) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let old = refused(
            EventType::Track,
            json!({"event": "X", "anonymousId": "a", "timestamp": at(NOW - MAX_AGE_MS - 1)}),
        );
        assert!(old.contains("72 hours"), "{old}");
        let reserved = refused(
            EventType::Track,
            json!({"event": "session_start", "anonymousId": "a", "timestamp": at(NOW)}),
        );
        assert!(reserved.contains("reserves"), "{reserved}");
        let nameless = refused(
            EventType::Track,
            json!({"event": "1 2 3", "anonymousId": "a", "timestamp": at(NOW)}),
        );
        assert!(nameless.contains("letter"), "{nameless}");
    }

    #[test]
    fn the_request_carries_the_ids_in_its_query_and_the_envelope_in_its_body() {
        let vendor = Vendor::Ga4(settings());
        let request = vendor.request(
            "http://127.0.0.1:9/mp/collect",
            "s3cr&t",
            &json!({"client_id": "a1"}),
            vec![json!({"name": "x"})],
        );
        let request = request.expect("an HTTP vendor makes a request");
        assert_eq!(
            request.url,
            "http://127.0.0.1:9/mp/collect?measurement_id=G-TEST123&api_secret=s3cr%26t"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&request.body).unwrap(),
            json!({"client_id": "a1", "events": [{"name": "x"}]})
        );
        assert!(!format!("{request:?}").contains("s3cr"));
    }

    proptest! {
        #[test]
        fn names_are_what_ga4_takes(name in "\\PC{0,80}") {
            if let Some(name) = snake_case(&name) {
                prop_assert!(name.len() <= MAX_NAME);
                prop_assert!(name.starts_with(|c: char| c.is_ascii_lowercase()));
                prop_assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            }
            if let Some(param) = param_name(&name) {
                prop_assert!(param.chars().count() <= MAX_NAME);
                prop_assert!(param.starts_with(|c: char| c.is_ascii_alphabetic()));
            }
        }

        #[test]
        fn any_event_maps_without_panicking_and_within_limits(
            props in proptest::collection::btree_map("[a-z_]{1,50}", "\\PC{0,200}", 0..60),
            name in "\\PC{0,60}",
        ) {
            let event = json!({"event": name, "anonymousId": "a", "timestamp": at(NOW), "properties": props});
            if let Mapped::Item { item, .. } = mapped(EventType::Track, event, Decision::Granted) {
                let params = item["params"].as_object().unwrap();
                prop_assert!(params.len() <= MAX_PARAMS);
                for (key, value) in params {
                    prop_assert!(!names_contact(key));
                    if let Some(s) = value.as_str() {
                        prop_assert!(s.chars().count() <= MAX_VALUE);
                    }
                }
            }
        }
    }
}
