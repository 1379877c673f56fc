//! TikTok Events API 2.0 (web events). Pure.
//!
//! Built to TikTok's Events API 2.0 pages (business-api.tiktok.com/portal/docs: "Report
//! web events in bulk", "Events API 2.0 parameters") and the Marketing API's return codes:
//! a POST to `/open_api/v1.3/event/track/` with the access token in an `Access-Token`
//! header and a JSON body `{"event_source": "web", "event_source_id": <pixel code>,
//! "test_event_code": …, "data": […]}`, at most 1,000 events, each `event`, `event_time`
//! (Unix seconds), `event_id`, `user`, `page`, `properties` and `limited_data_use`.
//! TikTok fails a whole request for one invalid event, so an event it may reject is
//! refused alone before sending: one without a timestamp, or older than 7 days (TikTok's
//! default click attribution window; TikTok documents no longer window for web events, so
//! Sightline keeps to Meta's 7 days). `event_id` is the event's `messageId`: give the pixel the same id
//! (`ttq.track(name, data, {event_id: messageId})`) and TikTok counts the pair once.
//!
//! `user`: `email` trimmed and lowercased, `phone` in E.164 (`+` and the country code,
//! digits only: `+1 (213) 373-4253` → `+12133734253`), `external_id` (the `userId`)
//! trimmed — each then SHA-256 hashed (lowercase hex), as TikTok requires; `ttclid`
//! (`context.ttclid`, else the `ttclid` of the page URL's query), `ttp`
//! (`context.ttp`, the `_ttp` cookie), `ip`, `user_agent` and `locale` are sent as they
//! are. Traits are read from `context.traits`, then an identify's `traits`, then
//! `properties`.
//!
//! Mapping: a track call is its event, the Segment e-commerce events by TikTok's standard
//! names (`Order Completed` → `CompletePayment` with `value`, `currency`, `order_id`,
//! `contents`), others as custom events under their own name. Page, identify, screen,
//! group and alias are skipped: the Events API's standard events have no page view (the
//! pixel's `Pageview` is its own) and the others are not conversions. Consent: when the
//! gate found the `sale_or_share` purpose denied (a US Privacy or GPP opt-out, GPC), the
//! event is sent with `limited_data_use: true`.
//!
//! Answers: TikTok answers HTTP 200 with a `code` in the body. 0 is delivered; 40100 (too
//! many requests) and the 5xxxx codes (TikTok's own errors), like HTTP 5xx and 429, are
//! retried; an access token refused (40104 none given, 40105 invalid or revoked, 40001 no
//! permission on the pixel, HTTP 401/403) holds the destination and is retried until
//! `destination set-credential` replaces it; any other code (40002, a parameter error)
//! refuses the request, every event in it.

use super::{
    event_name, event_time_ms, names_contact, number_at, query_value, sha256_hex, text_at,
    trait_text, Input, Mapped, Request,
};
use crate::answer::{Answer, Reply};
use serde_json::{json, Map, Value};
use sightline_consent::Decision;
use sightline_core::EventType;

pub const ENDPOINT: &str = "https://business-api.tiktok.com/open_api/v1.3/event/track/";
pub const MAX_EVENTS: u32 = 1000;
const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;

/// Segment e-commerce spec events and TikTok's standard event for each.
const STANDARD: [(&str, &str); 9] = [
    ("Products Searched", "Search"),
    ("Product Viewed", "ViewContent"),
    ("Product Added", "AddToCart"),
    ("Product Added to Wishlist", "AddToWishlist"),
    ("Checkout Started", "InitiateCheckout"),
    ("Payment Info Entered", "AddPaymentInfo"),
    ("Order Placed", "PlaceAnOrder"),
    ("Order Completed", "CompletePayment"),
    ("Signed Up", "CompleteRegistration"),
];

/// A TikTok destination's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The pixel code (Events Manager › Web Events), the request's `event_source_id`.
    pub pixel_code: String,
    /// From Events Manager's Test events tab: events then show there only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
}

impl Settings {
    pub(super) fn check(&self) -> Result<(), String> {
        let code = &self.pixel_code;
        if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "pixel_code {code:?} is not a TikTok pixel code: copy it (C…) from Events Manager › Web Events"
            ));
        }
        Ok(())
    }

    pub(super) fn map(&self, input: &Input<'_>) -> Mapped {
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
            EventType::Page
            | EventType::Identify
            | EventType::Screen
            | EventType::Group
            | EventType::Alias => return Mapped::Skip,
        };
        let Some(at) = event_time_ms(event) else {
            return Mapped::Refuse("the event has no valid timestamp".into());
        };
        if input.now_ms - at > MAX_AGE_MS {
            return Mapped::Refuse(
                "the event is older than 7 days, TikTok's attribution window (an event TikTok rejects fails its whole batch)"
                    .into(),
            );
        }
        let mut item = Map::new();
        item.insert("event".into(), name.into());
        item.insert("event_time".into(), at.div_euclid(1000).into());
        item.insert("event_id".into(), input.message_id.into());
        item.insert("user".into(), Value::Object(user(event)));
        let mut page = Map::new();
        for (field, pointers) in [
            ("url", ["/context/page/url", "/properties/url"]),
            (
                "referrer",
                ["/context/page/referrer", "/properties/referrer"],
            ),
        ] {
            if let Some(value) = text_at(event, &pointers) {
                page.insert(field.into(), value.into());
            }
        }
        if !page.is_empty() {
            item.insert("page".into(), Value::Object(page));
        }
        let properties = properties(event);
        if !properties.is_empty() {
            item.insert("properties".into(), Value::Object(properties));
        }
        if input.consent.get("sale_or_share") == Some(&Decision::Denied) {
            item.insert("limited_data_use".into(), true.into());
        }
        Mapped::Item {
            envelope: Value::Null,
            item: Value::Object(item),
        }
    }

    pub(super) fn request(&self, endpoint: &str, access_token: &str, data: Vec<Value>) -> Request {
        let mut body = json!({
            "event_source": "web",
            "event_source_id": self.pixel_code,
            "data": data,
        });
        if let Some(code) = &self.test_event_code {
            body["test_event_code"] = code.clone().into();
        }
        Request {
            method: super::Method::Post,
            url: endpoint.to_owned(),
            headers: vec![("Access-Token", access_token.to_owned())],
            body: body.to_string(),
        }
    }
}

/// See the module for what each answer means.
pub(super) fn classify(reply: &Reply) -> Answer {
    let status = reply.status;
    let body = serde_json::from_slice::<Value>(&reply.body).unwrap_or(Value::Null);
    let code = body.get("code").and_then(Value::as_i64);
    let reason = reply.reason();
    let retry = |reason: String| Answer::Retry {
        code: Some(status),
        wait: reply.retry_after,
        reason,
    };
    if status >= 500 || status == 429 || status == 408 || code == Some(40100) {
        return retry(reason);
    }
    if matches!(code, Some(40001 | 40104 | 40105)) || status == 401 || status == 403 {
        return retry(format!(
            "TikTok refused the access token; delivery holds until it is replaced \
             (`sightline destination set-credential`): {reason}"
        ));
    }
    if (200..300).contains(&status) {
        return match code {
            Some(0) => Answer::Accepted { code: status },
            Some(50000..=59999) => retry(reason),
            _ => Answer::Refused {
                code: Some(status),
                reason,
            },
        };
    }
    Answer::Refused {
        code: Some(status),
        reason,
    }
}

/// The `user` object: see the module for each normalisation.
fn user(event: &Value) -> Map<String, Value> {
    let mut user = Map::new();
    let mut hashed = |key: &str, value: Option<String>, normalise: fn(&str) -> String| {
        if let Some(hash) = value.and_then(|v| sha256_hex(&normalise(&v))) {
            user.insert(key.into(), hash.into());
        }
    };
    hashed("email", trait_text(event, &["email"]), email);
    hashed("phone", trait_text(event, &["phone"]), phone);
    hashed("external_id", text_at(event, &["/userId"]), |s| {
        s.trim().to_owned()
    });
    let ttclid = text_at(event, &["/context/ttclid", "/properties/ttclid"]).or_else(|| {
        text_at(event, &["/context/page/url"]).and_then(|url| query_value(&url, "ttclid"))
    });
    if let Some(ttclid) = ttclid {
        user.insert("ttclid".into(), ttclid.into());
    }
    for (key, pointer) in [
        ("ttp", "/context/ttp"),
        ("ip", "/context/ip"),
        ("user_agent", "/context/userAgent"),
        ("locale", "/context/locale"),
    ] {
        if let Some(value) = text_at(event, &[pointer]) {
            user.insert(key.into(), value.into());
        }
    }
    user
}

fn email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// E.164: `+`, then the digits, without the `00` of an international prefix. A number
/// without a country code cannot be told from one with it, so it is hashed with a `+`
/// before its digits all the same: TikTok simply will not match it.
fn phone(s: &str) -> String {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let digits = match s.trim_start().starts_with('+') {
        true => digits.as_str(),
        false => digits.strip_prefix("00").unwrap_or(&digits),
    };
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        String::new()
    } else {
        format!("+{digits}")
    }
}

/// `properties` from a track call's: value, currency, order, search and products in
/// TikTok's names, other scalar properties as they are (never an email or phone).
fn properties(event: &Value) -> Map<String, Value> {
    let mut data = Map::new();
    if let Some(value) = ["revenue", "total", "value"]
        .iter()
        .find_map(|key| number_at(event, &format!("/properties/{key}")))
    {
        data.insert("value".into(), value.into());
    }
    for (segment, tiktok) in [
        ("currency", "currency"),
        ("order_id", "order_id"),
        ("query", "query"),
        ("description", "description"),
    ] {
        if let Some(value) = text_at(event, &[&format!("/properties/{segment}")]) {
            let value = match tiktok {
                // An ISO 4217 code or nothing: TikTok refuses the whole request otherwise.
                "currency" => match super::currency_code(&value) {
                    Some(code) => code,
                    None => continue,
                },
                _ => value,
            };
            data.insert(tiktok.into(), value.into());
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
            let mut content = json!({ "content_id": id, "content_type": "product" });
            for (segment, tiktok) in [
                ("name", "content_name"),
                ("category", "content_category"),
                ("brand", "brand"),
            ] {
                if let Some(value) = text_at(product, &[&format!("/{segment}")]) {
                    content[tiktok] = value.into();
                }
            }
            if let Some(quantity) = number_at(product, "/quantity") {
                content["quantity"] = json!(quantity.round() as i64);
            }
            if let Some(price) = number_at(product, "/price") {
                content["price"] = json!(price);
            }
            Some(content)
        })
        .collect();
    if !contents.is_empty() {
        data.insert("content_type".into(), "product".into());
        data.insert("contents".into(), Value::Array(contents));
    }
    if let Some(Value::Object(properties)) = event.get("properties") {
        const MAPPED: [&str; 16] = [
            "revenue",
            "total",
            "value",
            "currency",
            "order_id",
            "query",
            "description",
            "products",
            "product_id",
            "quantity",
            "price",
            "sku",
            "url",
            "referrer",
            "ttclid",
            "name",
        ];
        for (key, value) in properties {
            let scalar = matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_));
            if scalar
                && !MAPPED.contains(&key.as_str())
                && !names_contact(key)
                && !data.contains_key(key)
            {
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

    fn settings() -> Settings {
        Settings {
            pixel_code: "C4ABCDEF12345".into(),
            test_event_code: None,
        }
    }

    fn mapped(event_type: EventType, event: Value, sale: Decision) -> Mapped {
        let consent: BTreeMap<String, Decision> = [
            ("advertising".to_owned(), Decision::Granted),
            ("sale_or_share".to_owned(), sale),
        ]
        .into_iter()
        .collect();
        settings().map(&Input {
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

    /// TikTok's normalisation (email trimmed and lowercased; phone in E.164 with its `+`)
    /// with the SHA-256 of the normalised values; the email vector is the one Meta
    /// publishes for `test@example.com`, the same input under the same rule.
    #[test]
    fn contact_information_is_hashed_as_tiktok_documents() {
        let vector = |normalise: fn(&str) -> String, input: &str| sha256_hex(&normalise(input));
        assert_eq!(
            vector(email, "  Test@Example.COM ").as_deref(),
            Some("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b")
        );
        assert_eq!(phone("+1 (213) 373-4253"), "+12133734253");
        assert_eq!(phone("0044 20 7946 0000"), "+442079460000");
        assert_eq!(phone("no digits"), "");
        assert_eq!(
            vector(phone, "+1 (213) 373-4253"),
            sha256_hex("+12133734253")
        );
        assert_ne!(sha256_hex("+12133734253"), sha256_hex("12133734253"));
    }

    #[test]
    fn order_completed_is_a_complete_payment_with_hashed_user() {
        let event = web_event(json!({
            "userId": " u-42 ",
            "event": "Order Completed",
            "context": {"page": {"url": "https://shop.example/thanks?ttclid=E.C.P.abc", "referrer": "https://r.example/"},
                        "userAgent": "UA/1", "ip": "203.0.113.9", "locale": "en-US", "ttp": "2F7h37Yk",
                        "traits": {"email": "Test@Example.com", "phone": "+1 213 373 4253"}},
            "properties": {"order_id": "o1", "revenue": 25, "currency": "usd", "coupon": "X",
                           "email": "leak@example.com",
                           "products": [{"product_id": "p1", "name": "Shoe", "quantity": 2, "price": 12.5}]}
        }));
        let Mapped::Item { envelope, item } = mapped(EventType::Track, event, Decision::Granted)
        else {
            panic!("not an item")
        };
        assert_eq!(envelope, Value::Null);
        let hash = |s: &str| sha256_hex(s).unwrap();
        assert_eq!(
            item,
            json!({
                "event": "CompletePayment",
                "event_time": (NOW - 5000) / 1000,
                "event_id": "msg-1",
                "user": {
                    "email": hash("test@example.com"), "phone": hash("+12133734253"),
                    "external_id": hash("u-42"), "ttclid": "E.C.P.abc", "ttp": "2F7h37Yk",
                    "ip": "203.0.113.9", "user_agent": "UA/1", "locale": "en-US"
                },
                "page": {"url": "https://shop.example/thanks?ttclid=E.C.P.abc", "referrer": "https://r.example/"},
                "properties": {"value": 25.0, "currency": "USD", "order_id": "o1", "content_type": "product",
                               "contents": [{"content_id": "p1", "content_type": "product", "content_name": "Shoe",
                                             "quantity": 2, "price": 12.5}],
                               "coupon": "X"}
            })
        );
    }

    #[test]
    fn every_call_type_has_its_mapping() {
        let custom = mapped(
            EventType::Track,
            web_event(json!({"event": "Quote Asked"})),
            Decision::Granted,
        );
        assert!(matches!(custom, Mapped::Item { ref item, .. } if item["event"] == "Quote Asked"));
        let search = mapped(
            EventType::Track,
            web_event(json!({"event": "Products Searched", "properties": {"query": "shoes"}})),
            Decision::Granted,
        );
        assert!(
            matches!(search, Mapped::Item { ref item, .. } if item["event"] == "Search" && item["properties"]["query"] == "shoes")
        );
        let euro = mapped(
            EventType::Track,
            web_event(json!({"event": "X", "properties": {"revenue": 3, "currency": "euro"}})),
            Decision::Granted,
        );
        assert!(
            matches!(euro, Mapped::Item { ref item, .. } if item["properties"].get("currency").is_none()),
            "not an ISO 4217 code: not sent"
        );
        for skipped in [
            EventType::Page,
            EventType::Identify,
            EventType::Screen,
            EventType::Group,
            EventType::Alias,
        ] {
            assert_eq!(
                mapped(skipped, web_event(json!({})), Decision::Granted),
                Mapped::Skip
            );
        }
        assert!(matches!(
            mapped(EventType::Track, web_event(json!({})), Decision::Granted),
            Mapped::Refuse(_)
        ));
    }

    #[test]
    fn an_opt_out_of_sale_asks_for_limited_data_use() {
        let item = |sale| match mapped(EventType::Track, web_event(json!({"event": "Lead"})), sale)
        {
            Mapped::Item { item, .. } => item,
            other => panic!("not an item: {other:?}"),
        };
        assert_eq!(item(Decision::Denied)["limited_data_use"], true);
        assert!(item(Decision::NotStated).get("limited_data_use").is_none());
    }

    #[test]
    fn events_that_would_fail_a_batch_are_refused_alone() {
        let old = web_event(
            json!({"event": "X", "timestamp": sightline_core::time::format_ms(NOW - MAX_AGE_MS - 1)}),
        );
        match mapped(EventType::Track, old, Decision::Granted) {
            Mapped::Refuse(reason) => assert!(reason.contains("7 days"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let untimed = json!({"event": "X", "timestamp": "yesterday"});
        assert!(matches!(
            mapped(EventType::Track, untimed, Decision::Granted),
            Mapped::Refuse(_)
        ));
    }

    #[test]
    fn the_request_carries_the_pixel_and_the_token_in_a_header() {
        let mut with_test = settings();
        with_test.test_event_code = Some("TEST123".into());
        let request = Vendor::Tiktok(with_test).request(
            "http://127.0.0.1:9/open_api/v1.3/event/track/",
            "tt-token",
            &Value::Null,
            vec![json!({"event": "X"})],
        );
        let request = request.expect("an HTTP vendor makes a request");
        assert_eq!(request.url, "http://127.0.0.1:9/open_api/v1.3/event/track/");
        assert_eq!(
            request.headers,
            vec![("Access-Token", "tt-token".to_owned())]
        );
        assert_eq!(
            serde_json::from_str::<Value>(&request.body).unwrap(),
            json!({"event_source": "web", "event_source_id": "C4ABCDEF12345",
                   "data": [{"event": "X"}], "test_event_code": "TEST123"})
        );
        assert!(!format!("{request:?}").contains("tt-token"));
    }

    #[test]
    fn return_codes_decide_what_is_retried() {
        let reply = |status: u16, body: Value| Reply {
            status,
            retry_after: None,
            body: body.to_string().into_bytes(),
        };
        let code = |code: i64| json!({"code": code, "message": "m", "request_id": "r", "data": {}});
        assert_eq!(
            classify(&reply(200, code(0))),
            Answer::Accepted { code: 200 }
        );
        for retried in [40100, 50000, 50002] {
            assert!(
                matches!(classify(&reply(200, code(retried))), Answer::Retry { .. }),
                "{retried}"
            );
        }
        for token in [40001, 40104, 40105] {
            match classify(&reply(200, code(token))) {
                Answer::Retry { reason, .. } => {
                    assert!(reason.contains("set-credential"), "{reason}")
                }
                other => panic!("a refused token must hold the destination, got {other:?}"),
            }
        }
        assert!(matches!(
            classify(&reply(200, code(40002))),
            Answer::Refused {
                code: Some(200),
                ..
            }
        ));
        assert!(matches!(
            classify(&reply(200, json!("not json"))),
            Answer::Refused { .. }
        ));
        let waited = Reply {
            retry_after: Some(Duration::from_secs(3)),
            ..reply(429, json!({}))
        };
        assert!(matches!(
            classify(&waited),
            Answer::Retry { wait: Some(_), .. }
        ));
        assert!(matches!(
            classify(&reply(503, json!("down"))),
            Answer::Retry { .. }
        ));
        assert!(matches!(
            classify(&reply(404, json!("no"))),
            Answer::Refused { .. }
        ));
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().check().is_ok());
        let bad = Settings {
            pixel_code: "C4-ABC".into(),
            test_event_code: None,
        };
        assert!(bad.check().unwrap_err().contains("pixel_code"));
    }

    proptest! {
        #[test]
        fn any_traits_map_without_panicking_and_contact_data_is_never_clear(
            email_in in "\\PC{0,40}", phone_in in "\\PC{0,30}", user in "\\PC{0,20}", url in "\\PC{0,40}",
        ) {
            let event = web_event(json!({"event": "X", "userId": user, "context": {"page": {"url": url},
                "traits": {"email": email_in, "phone": phone_in}}}));
            if let Mapped::Item { item, .. } = mapped(EventType::Track, event, Decision::Granted) {
                for key in ["email", "phone", "external_id"] {
                    if let Some(hash) = item["user"].get(key) {
                        let hash = hash.as_str().unwrap();
                        prop_assert_eq!(hash.len(), 64);
                        prop_assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                    }
                }
            }
        }
    }
}
