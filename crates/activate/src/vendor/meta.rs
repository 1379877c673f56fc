//! Meta (Facebook, Instagram) Conversions API. Pure.
//!
//! Built to Meta's Conversions API pages (developers.facebook.com/docs/marketing-api/
//! conversions-api: "Using the API", "Parameters", "Customer Information Parameters") and
//! the Graph API's "Handling Errors": a POST to `/{api_version}/{pixel_id}/events?
//! access_token=…` with `{"data":[…], "test_event_code":…}`, at most 1,000 events, each
//! `event_name`, `event_time` (Unix seconds, at most 7 days old: one older event fails the
//! whole request), `event_id`, `action_source`, `event_source_url`, `user_data` and
//! `custom_data`. `event_id` is the event's `messageId`: give the browser pixel the same
//! id (`fbq('track', name, data, {eventID: messageId})`) and Meta counts the pair once.
//!
//! `user_data`: contact information is SHA-256 hashed after Meta's normalisation — `em`
//! trimmed and lowercased; `ph` digits only with the country code and no leading zeros;
//! `fn`, `ln`, `ct` lowercased without punctuation or spaces (UTF-8 letters kept); `st` and
//! `country` lowercased letters (the two-letter codes); `zp` lowercased without spaces or
//! dashes, a US ZIP+4 cut to its five digits; `ge` `f` or `m`; `db` `YYYYMMDD`;
//! `external_id` (the `userId`) hashed as sent, trimmed. `client_ip_address`,
//! `client_user_agent`, `fbc` and `fbp` are sent as they are (Meta asks for them unhashed).
//! Traits are read from `context.traits`, then an identify's `traits`, then `properties`.
//!
//! Mapping: a track call is its event, the Segment e-commerce events by Meta's standard
//! names (`Order Completed` → `Purchase` with `value`, `currency`, `order_id`,
//! `content_ids`, `contents`, `num_items`), others as custom events under their own name;
//! page → `PageView`. Identify, screen, group and alias are skipped: they are not
//! conversions. For `action_source` `website` Meta requires `event_source_url` and
//! `client_user_agent`; an event without them is refused before sending rather than
//! failing its batch (server events take `action_source = "system_generated"` or
//! another source in the settings). Consent: when the gate found the `sale_or_share`
//! purpose denied (a US Privacy or GPP opt-out, GPC), the event asks for Limited Data Use
//! (`data_processing_options: ["LDU"]`, country and state 0: Meta geolocates).
//!
//! Answers: 2xx delivered. Otherwise the Graph error object decides: `is_transient`, codes
//! 1 and 2 (temporary), 4, 17, 32, 341, 368, 613 and 80000–80014 (throttling) and HTTP
//! 5xx/429 are retried; an access token refused (codes 102, 190, 10, 200–299, HTTP
//! 401/403; by code, since Meta types most errors `OAuthException`) holds the destination and is retried, since every event would
//! fail alike until the token is replaced (`destination set-credential`); anything else
//! (an invalid parameter, code 100) refuses the batch.

use super::{
    encode_query, event_name, event_time_ms, number_at, sha256_hex, text_at, trait_text,
    with_query, Input, Mapped, Request,
};
use crate::answer::{Answer, Reply};
use serde_json::{json, Map, Value};
use sightline_consent::Decision;
use sightline_core::EventType;
use std::collections::BTreeMap;

pub const ENDPOINT: &str = "https://graph.facebook.com";
pub const MAX_EVENTS: u32 = 1000;
/// The Graph API version the Conversions API is called through, when the settings name
/// none: every version is supported for at least two years.
const API_VERSION: &str = "v25.0";
const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;
/// `action_source` values Meta documents.
const ACTION_SOURCES: [&str; 9] = [
    "email",
    "website",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
];

/// Segment e-commerce spec events and Meta's standard event for each.
const STANDARD: [(&str, &str); 8] = [
    ("Products Searched", "Search"),
    ("Product Viewed", "ViewContent"),
    ("Product Added", "AddToCart"),
    ("Product Added to Wishlist", "AddToWishlist"),
    ("Checkout Started", "InitiateCheckout"),
    ("Payment Info Entered", "AddPaymentInfo"),
    ("Order Completed", "Purchase"),
    ("Signed Up", "CompleteRegistration"),
];

/// A Meta destination's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The pixel (dataset) id, digits; none for a destination that only fills custom
    /// audiences (its events are then skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_id: Option<String>,
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Where events happened; `website` unless said otherwise.
    #[serde(default = "website")]
    pub action_source: String,
    /// From Events Manager's Test events tab: events then show there only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
    /// The custom audience (its id, digits) each synced Sightline audience fills, by the
    /// audience's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audiences: BTreeMap<String, String>,
}

fn api_version() -> String {
    API_VERSION.into()
}

fn website() -> String {
    "website".into()
}

impl Settings {
    pub(super) fn check(&self) -> Result<(), String> {
        match &self.pixel_id {
            Some(pixel) if pixel.is_empty() || !pixel.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(format!(
                    "pixel_id {pixel:?} is not a Meta pixel id: copy the digits from Events Manager"
                ))
            }
            None if self.audiences.is_empty() => {
                return Err(
                    "pixel_id: a Meta destination needs its pixel id (Events Manager), \
                            or audiences.NAME=ID when it only fills custom audiences"
                        .into(),
                )
            }
            _ => {}
        }
        let version = self.api_version.strip_prefix('v').unwrap_or("");
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!(
                "api_version {:?} is not a Graph API version such as {API_VERSION}",
                self.api_version
            ));
        }
        if !ACTION_SOURCES.contains(&self.action_source.as_str()) {
            return Err(format!(
                "action_source {:?} is not one Meta knows: use one of {}",
                self.action_source,
                ACTION_SOURCES.join(", ")
            ));
        }
        super::audiences::check_lists(&self.audiences, "a Meta custom audience id")
    }

    pub(super) fn map(&self, input: &Input<'_>) -> Mapped {
        if self.pixel_id.is_none() {
            return Mapped::Skip;
        }
        let event = input.event;
        let name = match input.event_type {
            EventType::Track => match event_name(event) {
                Some(name) => STANDARD
                    .iter()
                    .find(|(segment, _)| *segment == name)
                    .map_or(name, |(_, standard)| standard)
                    .to_owned(),
                None => return Mapped::Refuse("a track call without an event name".into()),
            },
            EventType::Page => "PageView".to_owned(),
            EventType::Identify | EventType::Screen | EventType::Group | EventType::Alias => {
                return Mapped::Skip
            }
        };
        let Some(at) = event_time_ms(event) else {
            return Mapped::Refuse("the event has no valid timestamp".into());
        };
        if input.now_ms - at > MAX_AGE_MS {
            return Mapped::Refuse(
                "the event is older than the 7 days Meta accepts (an older one would fail its whole batch)"
                    .into(),
            );
        }
        let source_url = text_at(event, &["/context/page/url", "/properties/url"]);
        let user_data = user_data(event);
        if self.action_source == "website" {
            if source_url.is_none() {
                return Mapped::Refuse(
                    "Meta requires event_source_url for website events and the event has no \
                     context.page.url: set the destination's action_source (e.g. \
                     system_generated) for events sent from servers"
                        .into(),
                );
            }
            if !user_data.contains_key("client_user_agent") {
                return Mapped::Refuse(
                    "Meta requires client_user_agent for website events and the event has no \
                     context.userAgent: set the destination's action_source for events sent \
                     from servers"
                        .into(),
                );
            }
        }
        let mut item = Map::new();
        item.insert("event_name".into(), name.into());
        item.insert("event_time".into(), at.div_euclid(1000).into());
        item.insert("event_id".into(), input.message_id.into());
        item.insert("action_source".into(), self.action_source.clone().into());
        if let Some(url) = source_url {
            item.insert("event_source_url".into(), url.into());
        }
        item.insert("user_data".into(), Value::Object(user_data));
        let custom = custom_data(event);
        if !custom.is_empty() {
            item.insert("custom_data".into(), Value::Object(custom));
        }
        if input.consent.get("sale_or_share") == Some(&Decision::Denied) {
            item.insert("data_processing_options".into(), json!(["LDU"]));
            item.insert("data_processing_options_country".into(), 0.into());
            item.insert("data_processing_options_state".into(), 0.into());
        }
        Mapped::Item {
            envelope: Value::Null,
            item: Value::Object(item),
        }
    }

    pub(super) fn request(&self, endpoint: &str, access_token: &str, data: Vec<Value>) -> Request {
        let mut body = json!({ "data": data });
        if let Some(code) = &self.test_event_code {
            body["test_event_code"] = code.clone().into();
        }
        let path = format!(
            "{}/{}/{}/events",
            endpoint.trim_end_matches('/'),
            self.api_version,
            self.pixel_id.as_deref().unwrap_or_default()
        );
        Request {
            method: super::Method::Post,
            url: with_query(
                &path,
                &format!("access_token={}", encode_query(access_token)),
            ),
            headers: Vec::new(),
            body: body.to_string(),
        }
    }
}

/// See the module for what each answer means.
pub(super) fn classify(reply: &Reply) -> Answer {
    let status = reply.status;
    if (200..300).contains(&status) {
        return Answer::Accepted { code: status };
    }
    let error = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|body| body.get("error").cloned())
        .unwrap_or(Value::Null);
    let code = error.get("code").and_then(Value::as_i64);
    let transient = error.get("is_transient").and_then(Value::as_bool) == Some(true)
        || matches!(
            code,
            Some(1 | 2 | 4 | 17 | 32 | 341 | 368 | 613 | 80000..=80014)
        );
    // By code, not by `type`: Meta gives most errors, an invalid parameter's too, the
    // type `OAuthException`.
    let credential =
        matches!(code, Some(10 | 102 | 190 | 200..=299)) || status == 401 || status == 403;
    let reason = reply.reason();
    if transient || status >= 500 || status == 429 {
        Answer::Retry {
            code: Some(status),
            wait: reply.retry_after,
            reason,
        }
    } else if credential {
        Answer::Retry {
            code: Some(status),
            wait: reply.retry_after,
            reason: format!(
                "Meta refused the access token; delivery holds until it is replaced \
                 (`sightline destination set-credential`): {reason}"
            ),
        }
    } else {
        Answer::Refused {
            code: Some(status),
            reason,
        }
    }
}

/// The customer information parameters: see the module for each normalisation.
fn user_data(event: &Value) -> Map<String, Value> {
    let mut data = Map::new();
    let mut hashed = |key: &str, value: Option<String>, normalise: fn(&str) -> String| {
        if let Some(hash) = value.and_then(|v| sha256_hex(&normalise(&v))) {
            data.insert(key.into(), json!([hash]));
        }
    };
    hashed("em", trait_text(event, &["email"]), email);
    hashed("ph", trait_text(event, &["phone"]), phone);
    hashed("fn", trait_text(event, &["firstName", "first_name"]), name);
    hashed("ln", trait_text(event, &["lastName", "last_name"]), name);
    hashed("ge", trait_text(event, &["gender"]), gender);
    hashed("db", trait_text(event, &["birthday"]), birthday);
    hashed("ct", trait_text(event, &["address.city"]), name);
    hashed("st", trait_text(event, &["address.state"]), letters);
    hashed(
        "zp",
        trait_text(event, &["address.postalCode", "address.postal_code"]),
        zip,
    );
    hashed("country", trait_text(event, &["address.country"]), letters);
    hashed("external_id", text_at(event, &["/userId"]), |s| {
        s.trim().to_owned()
    });
    // An empty field is not a hash of nothing; `hashed` already skipped those.
    for (key, pointer) in [
        ("client_ip_address", "/context/ip"),
        ("client_user_agent", "/context/userAgent"),
        ("fbc", "/context/fbc"),
        ("fbp", "/context/fbp"),
    ] {
        if let Some(value) = text_at(event, &[pointer]) {
            data.insert(key.into(), value.into());
        }
    }
    data
}

fn email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Digits only, without the leading zeros of an international prefix or trunk code.
fn phone(s: &str) -> String {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').to_owned()
}

/// Lowercase, without spaces or punctuation; letters of any script kept.
fn name(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Lowercase ASCII letters only (`CA`, `us`).
fn letters(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Lowercase without spaces or dashes; a US ZIP+4 (`94025-1234`) keeps its five digits.
fn zip(s: &str) -> String {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    if compact.len() == 9 && compact.bytes().all(|b| b.is_ascii_digit()) && s.contains('-') {
        compact[..5].to_owned()
    } else {
        compact
    }
}

/// `f` or `m` from `female`/`male`/`F`/`M`; anything else is not sent.
fn gender(s: &str) -> String {
    match s.trim().to_lowercase().as_str() {
        "f" | "female" => "f".into(),
        "m" | "male" => "m".into(),
        _ => String::new(),
    }
}

/// `YYYYMMDD` from an ISO date (`1990-01-31`, or a date-time starting with one).
fn birthday(s: &str) -> String {
    let date = s.trim().get(..10).unwrap_or("");
    match chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
        Ok(day) => day.format("%Y%m%d").to_string(),
        Err(_) => String::new(),
    }
}

/// `custom_data` from a track call's properties: value, currency, order and products in
/// Meta's names, other scalar properties as they are (never an email or phone).
fn custom_data(event: &Value) -> Map<String, Value> {
    let mut data = Map::new();
    if let Some(value) = ["revenue", "total", "value"]
        .iter()
        .find_map(|key| number_at(event, &format!("/properties/{key}")))
    {
        data.insert("value".into(), value.into());
    }
    for (segment, meta) in [
        ("currency", "currency"),
        ("order_id", "order_id"),
        ("query", "search_string"),
        ("category", "content_category"),
    ] {
        if let Some(value) = text_at(event, &[&format!("/properties/{segment}")]) {
            data.insert(meta.into(), value.into());
        }
    }
    let products: Vec<&Value> = match event.pointer("/properties/products") {
        Some(Value::Array(products)) => products.iter().collect(),
        _ if event.pointer("/properties/product_id").is_some() => {
            event.get("properties").into_iter().collect()
        }
        _ => Vec::new(),
    };
    let contents: Vec<Value> = products
        .iter()
        .filter_map(|product| {
            let id = text_at(product, &["/product_id", "/sku", "/id"])?;
            let mut content = json!({ "id": id });
            if let Some(quantity) = number_at(product, "/quantity") {
                content["quantity"] = json!(quantity.round() as i64);
            }
            if let Some(price) = number_at(product, "/price") {
                content["item_price"] = json!(price);
            }
            Some(content)
        })
        .collect();
    if !contents.is_empty() {
        data.insert(
            "content_ids".into(),
            contents.iter().map(|c| c["id"].clone()).collect(),
        );
        data.insert("num_items".into(), contents.len().into());
        data.insert("contents".into(), Value::Array(contents));
        data.insert("content_type".into(), "product".into());
    }
    if let Some(Value::Object(properties)) = event.get("properties") {
        for (key, value) in properties {
            let scalar = matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_));
            let mapped = [
                "revenue",
                "total",
                "value",
                "currency",
                "order_id",
                "query",
                "category",
                "products",
                "product_id",
                "quantity",
                "price",
                "sku",
                "url",
            ]
            .contains(&key.as_str());
            if scalar && !mapped && !super::names_contact(key) && !data.contains_key(key) {
                data.insert(key.clone(), value.clone());
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendor::{Input, Vendor};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    const NOW: i64 = 1_764_000_000_000;

    fn settings(action_source: &str) -> Settings {
        Settings {
            pixel_id: Some("1234567890".into()),
            api_version: API_VERSION.into(),
            action_source: action_source.into(),
            test_event_code: None,
            audiences: BTreeMap::new(),
        }
    }

    fn mapped(settings: &Settings, event_type: EventType, event: Value, sale: Decision) -> Mapped {
        let consent: BTreeMap<String, Decision> = [
            ("advertising".to_owned(), Decision::Granted),
            ("sale_or_share".to_owned(), sale),
        ]
        .into_iter()
        .collect();
        settings.map(&Input {
            event_type,
            event: &event,
            message_id: "msg-1",
            consent: &consent,
            now_ms: NOW,
        })
    }

    fn web_event(extra: Value) -> Value {
        let mut event = json!({
            "anonymousId": "a1", "timestamp": sightline_core::time::format_ms(NOW - 5000),
            "context": {"page": {"url": "https://shop.example/thanks"}, "userAgent": "UA/1", "ip": "203.0.113.9"}
        });
        event
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        event
    }

    /// Vectors from Meta's own examples: the `em` of its Conversions API Gateway server
    /// events example is the hash of `test@example.com`, the `ph` of "Using the API" the
    /// hash of `12345678901`.
    #[test]
    fn contact_information_is_hashed_as_meta_documents() {
        let vector = |normalise: fn(&str) -> String, input: &str| sha256_hex(&normalise(input));
        assert_eq!(
            vector(email, "  Test@Example.COM ").as_deref(),
            Some("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b")
        );
        assert_eq!(
            vector(phone, "+1 (234) 567-8901").as_deref(),
            Some("254aa248acb47dd654ca3ea53f48c2c26d641d23d7e2e93a1ec56258df7674c4")
        );
        assert_eq!(phone("001 234 567 8901"), "12345678901");
        assert_eq!(name("  Mary-Ann O'Brien "), "maryannobrien");
        assert_eq!(name("Zoë"), "zoë");
        assert_eq!(letters("CA"), "ca");
        assert_eq!(zip("94025-1234"), "94025");
        assert_eq!(zip("SW1A 1AA"), "sw1a1aa");
        assert_eq!(gender("Female"), "f");
        assert_eq!(gender("other"), "");
        assert_eq!(birthday("1990-01-31"), "19900131");
        assert_eq!(birthday("31/01/1990"), "");
    }

    #[test]
    fn order_completed_is_a_purchase_with_hashed_user_data() {
        let event = web_event(json!({
            "userId": "u-42",
            "event": "Order Completed",
            "context": {"page": {"url": "https://shop.example/thanks"}, "userAgent": "UA/1", "ip": "203.0.113.9",
                        "fbp": "fb.1.1558571054389.1098115397",
                        "traits": {"email": "Test@Example.com", "phone": "+1 234 567 8901", "firstName": "Ann",
                                   "gender": "female", "address": {"city": "Menlo Park", "state": "CA", "country": "US"}}},
            "properties": {"order_id": "o1", "revenue": 25, "currency": "USD", "coupon": "X",
                           "email": "leak@example.com",
                           "products": [{"product_id": "p1", "quantity": 2, "price": 12.5}]}
        }));
        let Mapped::Item { envelope, item } = mapped(
            &settings("website"),
            EventType::Track,
            event,
            Decision::Granted,
        ) else {
            panic!("not an item")
        };
        assert_eq!(envelope, Value::Null);
        let hash = |s: &str| sha256_hex(s).unwrap();
        assert_eq!(
            item,
            json!({
                "event_name": "Purchase",
                "event_time": (NOW - 5000) / 1000,
                "event_id": "msg-1",
                "action_source": "website",
                "event_source_url": "https://shop.example/thanks",
                "user_data": {
                    "em": [hash("test@example.com")], "ph": [hash("12345678901")], "fn": [hash("ann")],
                    "ge": [hash("f")], "ct": [hash("menlopark")], "st": [hash("ca")], "country": [hash("us")],
                    "external_id": [hash("u-42")], "client_ip_address": "203.0.113.9",
                    "client_user_agent": "UA/1", "fbp": "fb.1.1558571054389.1098115397"
                },
                "custom_data": {"value": 25.0, "currency": "USD", "order_id": "o1",
                                "content_ids": ["p1"], "num_items": 1,
                                "contents": [{"id": "p1", "quantity": 2, "item_price": 12.5}],
                                "content_type": "product", "coupon": "X"}
            })
        );
    }

    #[test]
    fn every_call_type_has_its_mapping() {
        let page = mapped(
            &settings("website"),
            EventType::Page,
            web_event(json!({"name": "Home"})),
            Decision::Granted,
        );
        assert!(matches!(page, Mapped::Item { ref item, .. } if item["event_name"] == "PageView"));
        let custom = mapped(
            &settings("website"),
            EventType::Track,
            web_event(json!({"event": "Quote Asked"})),
            Decision::Granted,
        );
        assert!(
            matches!(custom, Mapped::Item { ref item, .. } if item["event_name"] == "Quote Asked")
        );
        for skipped in [
            EventType::Identify,
            EventType::Screen,
            EventType::Group,
            EventType::Alias,
        ] {
            assert_eq!(
                mapped(
                    &settings("website"),
                    skipped,
                    web_event(json!({})),
                    Decision::Granted
                ),
                Mapped::Skip
            );
        }
    }

    #[test]
    fn an_opt_out_of_sale_asks_for_limited_data_use() {
        let Mapped::Item { item, .. } = mapped(
            &settings("website"),
            EventType::Page,
            web_event(json!({})),
            Decision::Denied,
        ) else {
            panic!("not an item")
        };
        assert_eq!(item["data_processing_options"], json!(["LDU"]));
        assert_eq!(item["data_processing_options_country"], 0);
        assert_eq!(item["data_processing_options_state"], 0);
        let Mapped::Item { item, .. } = mapped(
            &settings("website"),
            EventType::Page,
            web_event(json!({})),
            Decision::NotStated,
        ) else {
            panic!("not an item")
        };
        assert!(item.get("data_processing_options").is_none());
    }

    #[test]
    fn events_that_would_fail_a_batch_are_refused_alone() {
        let refused = |settings: &Settings, event: Value| match mapped(
            settings,
            EventType::Track,
            event,
            Decision::Granted,
        ) {
            Mapped::Refuse(reason) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let old = web_event(
            json!({"event": "X", "timestamp": sightline_core::time::format_ms(NOW - MAX_AGE_MS - 1)}),
        );
        assert!(refused(&settings("website"), old).contains("7 days"));
        let server =
            json!({"event": "X", "userId": "u", "timestamp": sightline_core::time::format_ms(NOW)});
        assert!(refused(&settings("website"), server.clone()).contains("event_source_url"));
        assert!(matches!(
            mapped(
                &settings("system_generated"),
                EventType::Track,
                server,
                Decision::Granted
            ),
            Mapped::Item { .. }
        ));
    }

    #[test]
    fn the_request_goes_to_the_pixel_with_the_token_in_its_query() {
        let mut with_test = settings("website");
        with_test.test_event_code = Some("TEST123".into());
        let request = Vendor::Meta(with_test).request(
            "http://127.0.0.1:9/",
            "EAA/tok",
            &Value::Null,
            vec![json!({"event_name": "X"})],
        );
        let request = request.expect("an HTTP vendor makes a request");
        assert_eq!(
            request.url,
            "http://127.0.0.1:9/v25.0/1234567890/events?access_token=EAA%2Ftok"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&request.body).unwrap(),
            json!({"data": [{"event_name": "X"}], "test_event_code": "TEST123"})
        );
    }

    #[test]
    fn graph_errors_decide_what_is_retried() {
        let reply = |status: u16, body: Value| Reply {
            status,
            retry_after: Some(Duration::from_secs(7)),
            body: body.to_string().into_bytes(),
        };
        let error = |code: i64, kind: &str| json!({"error": {"message": "m", "type": kind, "code": code, "fbtrace_id": "t"}});
        assert_eq!(
            classify(&reply(200, json!({"events_received": 2}))),
            Answer::Accepted { code: 200 }
        );
        for throttled in [4, 17, 32, 613, 80004, 1, 2] {
            assert!(
                matches!(
                    classify(&reply(400, error(throttled, "OAuthException"))),
                    Answer::Retry { wait: Some(_), .. }
                ),
                "{throttled}"
            );
        }
        let transient = json!({"error": {"code": 100, "is_transient": true}});
        assert!(matches!(
            classify(&reply(400, transient)),
            Answer::Retry { .. }
        ));
        match classify(&reply(400, error(190, "OAuthException"))) {
            Answer::Retry { reason, .. } => assert!(reason.contains("set-credential"), "{reason}"),
            other => panic!("a refused token must hold the destination, got {other:?}"),
        }
        assert!(matches!(
            classify(&reply(400, error(100, "OAuthException"))),
            Answer::Refused {
                code: Some(400),
                ..
            }
        ));
        assert!(matches!(
            classify(&reply(503, json!("down"))),
            Answer::Retry { .. }
        ));
        assert!(matches!(
            classify(&reply(400, json!("not an error object"))),
            Answer::Refused { .. }
        ));
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings("website").check().is_ok());
        assert!(settings("shop")
            .check()
            .unwrap_err()
            .contains("action_source"));
        let mut bad = settings("website");
        bad.pixel_id = Some("px-1".into());
        assert!(bad.check().unwrap_err().contains("pixel_id"));
        // Without a pixel only an audience-only destination reads, and it skips events.
        bad.pixel_id = None;
        assert!(bad.check().unwrap_err().contains("audiences.NAME"));
        bad.audiences.insert("buyers".into(), "2384".into());
        assert!(bad.check().is_ok());
        let event = json!({"event": "Order Completed", "timestamp": "2026-01-01T00:00:00Z"});
        let consent = BTreeMap::new();
        let input = Input {
            event_type: EventType::Track,
            event: &event,
            message_id: "m",
            consent: &consent,
            now_ms: 0,
        };
        assert_eq!(bad.map(&input), Mapped::Skip);
        bad = settings("website");
        bad.api_version = "latest".into();
        assert!(bad.check().unwrap_err().contains("api_version"));
    }

    proptest! {
        #[test]
        fn any_traits_map_without_panicking_and_contact_data_is_never_clear(
            email_in in "\\PC{0,40}", phone_in in "\\PC{0,30}", zip_in in "\\PC{0,12}", born in "\\PC{0,20}",
        ) {
            let event = web_event(json!({"event": "X", "context": {"page": {"url": "u"}, "userAgent": "UA",
                "traits": {"email": email_in, "phone": phone_in, "birthday": born, "address": {"postalCode": zip_in}}}}));
            if let Mapped::Item { item, .. } = mapped(&settings("website"), EventType::Track, event, Decision::Granted) {
                for key in ["em", "ph", "db", "zp"] {
                    if let Some(values) = item["user_data"].get(key) {
                        let hash = values[0].as_str().unwrap();
                        prop_assert_eq!(hash.len(), 64);
                        prop_assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                    }
                }
            }
        }
    }
}
