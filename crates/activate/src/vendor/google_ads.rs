//! Google Ads API, click conversion upload (with enhanced conversions for leads). Pure.
//!
//! Built to the Google Ads API pages (developers.google.com/google-ads/api: "Manage online
//! click conversions", "Enhanced conversions for leads", `ConversionUploadService.
//! UploadClickConversions`, "Partial failures", "API errors"): a POST to
//! `/{api_version}/customers/{customer_id}:uploadClickConversions` with `Authorization:
//! Bearer <OAuth access token>`, `developer-token` and, for an account reached through a
//! manager, `login-customer-id`; the body `{"conversions": […], "partialFailure": true}`,
//! at most 2,000 conversions (Sightline sends at most 1,000, its bound on one request).
//! Each conversion: `conversionAction` (`customers/<id>/conversionActions/<id>`),
//! `conversionDateTime` (`yyyy-mm-dd hh:mm:ss+00:00`), `gclid` (or `gbraid`/`wbraid`),
//! `conversionValue` and `currencyCode`, `orderId` (Google counts one conversion per order
//! and action), `userIdentifiers` and `consent.adUserData`.
//!
//! A destination is one conversion action (`conversion_action_id`): choose which events
//! count as it with the destination's `--events` filter. Every track call that reaches it
//! is a conversion; page, identify, screen, group and alias are skipped. A conversion
//! carries the click id when the event has one (`context.gclid`, else the page URL's
//! `gclid`; `gbraid`, `wbraid` alike) and the person's hashed identifiers (enhanced
//! conversions for leads: Google matches them to the ad click when there is no gclid);
//! an event with neither is refused before sending, as is one older than 90 days, the
//! longest click-through window.
//!
//! `userIdentifiers`: `hashedEmail` (trimmed, lowercased, and for `gmail.com` and
//! `googlemail.com` addresses without the dots of the local part) and `hashedPhoneNumber`
//! (E.164 with its `+`), SHA-256 as lowercase hex, each with `userIdentifierSource:
//! FIRST_PARTY`. `consent.adUserData` is the event's own Google Consent Mode state when it
//! carries one, else what the gate decided on `advertising` (granted → `GRANTED`, else
//! `DENIED`).
//!
//! The credential is `DEVELOPER_TOKEN:ACCESS_TOKEN`, both secret. OAuth access tokens last
//! an hour: keep it fresh with `destination set-credential` (or point `--url` at a proxy
//! that adds the token); an expired one holds delivery, nothing is lost.
//!
//! Answers: 200 with no `partialFailureError` is delivered; with one, the conversions its
//! errors name (`location.fieldPathElements` `conversions[i]`) are dead letters alone and
//! the others delivered. 429 (`RESOURCE_EXHAUSTED`) is retried after Google's
//! `quotaErrorDetails.retryDelay` (else `Retry-After`, else the backoff), 5xx retried; 401
//! (`UNAUTHENTICATED`: the token expired) and 403 (`PERMISSION_DENIED`: a developer token
//! not approved, an account the user cannot reach) hold the destination until
//! `set-credential`; any other status (400 `INVALID_ARGUMENT`) refuses the whole batch.

use super::{
    event_time_ms, number_at, query_value, sha256_hex, text_at, trait_text, Input, Mapped, Request,
};
use crate::answer::{Answer, Reply};
use crate::backoff::MAX_RETRY_AFTER;
use serde_json::{json, Map, Value};
use sightline_core::EventType;
use std::collections::BTreeMap;
use std::time::Duration;

pub const ENDPOINT: &str = "https://googleads.googleapis.com";
pub const MAX_EVENTS: u32 = 1000;
/// The Google Ads API version, when the settings name none.
const API_VERSION: &str = "v22";
const MAX_AGE_MS: i64 = 90 * 24 * 3600 * 1000;

/// A Google Ads destination's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Google Ads account the conversions go to, ten digits without dashes.
    pub customer_id: String,
    /// The conversion action's id (Goals › Conversions, the `ctId` of its URL); none for a
    /// destination that only fills Customer Match lists (its events are then skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_action_id: Option<String>,
    /// The manager account the credential reaches the account through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_customer_id: Option<String>,
    #[serde(default = "api_version")]
    pub api_version: String,
    /// The Customer Match user list (its id, digits) each synced Sightline audience fills,
    /// by the audience's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audiences: BTreeMap<String, String>,
}

fn api_version() -> String {
    API_VERSION.into()
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Settings {
    pub(super) fn check(&self) -> Result<(), String> {
        if !digits(&self.customer_id) {
            return Err(format!(
                "customer_id {:?} is not a Google Ads customer id: its ten digits without dashes",
                self.customer_id
            ));
        }
        match &self.conversion_action_id {
            Some(action) if !digits(action) => {
                return Err(format!(
                    "conversion_action_id {action:?} is not a conversion action id: copy the digits (ctId) from Goals › Conversions"
                ))
            }
            None if self.audiences.is_empty() => {
                return Err("conversion_action_id: a Google Ads destination needs its conversion \
                            action, or audiences.NAME=ID when it only fills Customer Match lists"
                    .into())
            }
            _ => {}
        }
        if let Some(login) = &self.login_customer_id {
            if !digits(login) {
                return Err(format!(
                    "login_customer_id {login:?} is not a manager account's customer id: its digits without dashes"
                ));
            }
        }
        let version = self.api_version.strip_prefix('v').unwrap_or("");
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "api_version {:?} is not a Google Ads API version such as {API_VERSION}",
                self.api_version
            ));
        }
        super::audiences::check_lists(&self.audiences, "a Customer Match user list id")
    }

    pub(super) fn map(&self, input: &Input<'_>) -> Mapped {
        let Some(action) = &self.conversion_action_id else {
            return Mapped::Skip;
        };
        let event = input.event;
        match input.event_type {
            EventType::Track => {}
            EventType::Page
            | EventType::Identify
            | EventType::Screen
            | EventType::Group
            | EventType::Alias => return Mapped::Skip,
        }
        let Some(at) = event_time_ms(event) else {
            return Mapped::Refuse("the event has no valid timestamp".into());
        };
        if input.now_ms - at > MAX_AGE_MS {
            return Mapped::Refuse(
                "the event is older than 90 days, the longest click-through window Google Ads takes"
                    .into(),
            );
        }
        let Some(time) = chrono::DateTime::from_timestamp_millis(at) else {
            return Mapped::Refuse("the event has no valid timestamp".into());
        };
        let mut item = Map::new();
        item.insert(
            "conversionAction".into(),
            format!("customers/{}/conversionActions/{action}", self.customer_id).into(),
        );
        item.insert(
            "conversionDateTime".into(),
            time.format("%Y-%m-%d %H:%M:%S+00:00").to_string().into(),
        );
        let mut click = false;
        for id in ["gclid", "gbraid", "wbraid"] {
            let value = text_at(
                event,
                &[&format!("/context/{id}"), &format!("/properties/{id}")],
            )
            .or_else(|| {
                text_at(event, &["/context/page/url"]).and_then(|url| query_value(&url, id))
            });
            if let Some(value) = value {
                // One click id per conversion: Google refuses more.
                if !click {
                    item.insert(id.into(), value.into());
                    click = true;
                }
            }
        }
        let identifiers = identifiers(event);
        if !click && identifiers.is_empty() {
            return Mapped::Refuse(
                "Google Ads needs a click id (gclid, gbraid, wbraid) or the person's email or \
                 phone (enhanced conversions for leads) and the event has none"
                    .into(),
            );
        }
        if !identifiers.is_empty() {
            item.insert("userIdentifiers".into(), Value::Array(identifiers));
        }
        if let Some(value) = ["revenue", "total", "value"]
            .iter()
            .find_map(|key| number_at(event, &format!("/properties/{key}")))
        {
            item.insert("conversionValue".into(), value.into());
            if let Some(currency) =
                text_at(event, &["/properties/currency"]).and_then(|c| super::currency_code(&c))
            {
                item.insert("currencyCode".into(), currency.into());
            }
        }
        if let Some(order) = text_at(event, &["/properties/order_id"]) {
            item.insert("orderId".into(), order.into());
        }
        item.insert("consent".into(), json!({"adUserData": ad_user_data(input)}));
        Mapped::Item {
            envelope: Value::Null,
            item: Value::Object(item),
        }
    }

    pub(super) fn request(
        &self,
        endpoint: &str,
        credential: &str,
        conversions: Vec<Value>,
    ) -> Request {
        Request {
            method: super::Method::Post,
            url: format!(
                "{}/{}/customers/{}:uploadClickConversions",
                endpoint.trim_end_matches('/'),
                self.api_version,
                self.customer_id
            ),
            headers: self.headers(credential),
            body: json!({"conversions": conversions, "partialFailure": true}).to_string(),
        }
    }

    /// The credential's headers, and the manager account's when there is one.
    pub(super) fn headers(&self, credential: &str) -> Vec<(&'static str, String)> {
        let (developer_token, access_token) = split_credential(credential);
        let mut headers = vec![
            ("Authorization", format!("Bearer {access_token}")),
            ("developer-token", developer_token.to_owned()),
        ];
        if let Some(login) = &self.login_customer_id {
            headers.push(("login-customer-id", login.clone()));
        }
        headers
    }
}

/// `DEVELOPER_TOKEN:ACCESS_TOKEN` as its two parts; a credential without the colon is
/// refused when it is set (`check_credential`), and sent as an access token alone here.
fn split_credential(credential: &str) -> (&str, &str) {
    credential.split_once(':').unwrap_or(("", credential))
}

/// Whether a credential has both parts.
pub fn check_credential(credential: &str) -> Result<(), String> {
    match credential.trim().split_once(':') {
        Some((developer, access)) if !developer.is_empty() && !access.is_empty() => Ok(()),
        _ => Err(
            "a google_ads credential is DEVELOPER_TOKEN:ACCESS_TOKEN (the developer token, a \
             colon, an OAuth access token)"
                .into(),
        ),
    }
}

/// `GRANTED` or `DENIED`: the event's Consent Mode state, else the gate's decision.
fn ad_user_data(input: &Input<'_>) -> &'static str {
    let stated = input
        .event
        .pointer("/context/consent/googleConsentMode/ad_user_data")
        .and_then(Value::as_str);
    match stated {
        Some("granted") => "GRANTED",
        Some("denied") => "DENIED",
        _ if super::granted(input.consent, "advertising") => "GRANTED",
        _ => "DENIED",
    }
}

/// The hashed email and phone, as Google normalises them.
fn identifiers(event: &Value) -> Vec<Value> {
    let mut identifiers = Vec::new();
    for (field, names, phone) in [
        ("hashedEmail", &["email"][..], false),
        ("hashedPhoneNumber", &["phone"][..], true),
    ] {
        let hash = trait_text(event, names)
            .and_then(|value| sha256_hex(&crate::transform::normalise_google(&value, phone)));
        if let Some(hash) = hash {
            identifiers.push(json!({field: hash, "userIdentifierSource": "FIRST_PARTY"}));
        }
    }
    identifiers
}

/// See the module for what each answer means.
pub(super) fn classify(reply: &Reply) -> Answer {
    let status = reply.status;
    let reason = reply.reason();
    let body = serde_json::from_slice::<Value>(&reply.body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        let Some(failure) = body.get("partialFailureError").filter(|f| !f.is_null()) else {
            return Answer::Accepted { code: status };
        };
        let mut refused: Vec<(usize, String)> = Vec::new();
        for error in failures(failure) {
            let index = error
                .pointer("/location/fieldPathElements")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| e["fieldName"] == "conversions")
                .and_then(|e| e["index"].as_u64())
                .and_then(|i| usize::try_from(i).ok());
            let message: String = error["message"]
                .as_str()
                .unwrap_or("no message")
                .chars()
                .take(crate::answer::SNIPPET_BYTES)
                .collect();
            if let Some(index) = index {
                if !refused.iter().any(|(i, _)| *i == index) {
                    refused.push((
                        index,
                        format!("Google Ads refused the conversion: {message}"),
                    ));
                }
            }
        }
        return if refused.is_empty() {
            // A failure that names no conversion: nothing says which were taken.
            Answer::Refused {
                code: Some(status),
                reason,
            }
        } else {
            Answer::Partial {
                code: status,
                refused,
            }
        };
    }
    if status == 429 || status >= 500 || status == 408 {
        return Answer::Retry {
            code: Some(status),
            wait: retry_delay(&body).or(reply.retry_after),
            reason,
        };
    }
    if status == 401 || status == 403 {
        return Answer::Retry {
            code: Some(status),
            wait: reply.retry_after,
            reason: format!(
                "Google Ads refused the credential; delivery holds until it is replaced \
                 (`sightline destination set-credential`): {reason}"
            ),
        };
    }
    Answer::Refused {
        code: Some(status),
        reason,
    }
}

/// The `GoogleAdsFailure` errors of a `partialFailureError` or an `error`'s details.
fn failures(status: &Value) -> impl Iterator<Item = &Value> {
    status["details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|detail| detail["errors"].as_array().into_iter().flatten())
}

/// The wait a quota error asks for: `quotaErrorDetails.retryDelay`, e.g. `"30s"`.
fn retry_delay(body: &Value) -> Option<Duration> {
    failures(&body["error"]).find_map(|error| {
        let delay = error
            .pointer("/details/quotaErrorDetails/retryDelay")?
            .as_str()?;
        let seconds = delay.strip_suffix('s')?.parse::<f64>().ok()?;
        (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds).min(MAX_RETRY_AFTER))
    })
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
            customer_id: "1234567890".into(),
            conversion_action_id: Some("987654".into()),
            login_customer_id: None,
            api_version: API_VERSION.into(),
            audiences: BTreeMap::new(),
        }
    }

    fn mapped(event: Value, advertising: Decision) -> Mapped {
        let consent: BTreeMap<String, Decision> = [("advertising".to_owned(), advertising)]
            .into_iter()
            .collect();
        settings().map(&Input {
            event_type: EventType::Track,
            event: &event,
            message_id: "msg-1",
            consent: &consent,
            now_ms: NOW,
        })
    }

    fn event(extra: Value) -> Value {
        let mut event = json!({"anonymousId": "a1", "event": "Lead",
            "timestamp": sightline_core::time::format_ms(NOW - 5000)});
        event
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        event
    }

    /// Google's normalisation: the Gmail dots go, the phone is E.164 with its `+`. The
    /// digests are `printf %s … | sha256sum` of the normalised values.
    #[test]
    fn identifiers_are_hashed_as_google_documents() {
        let ids = identifiers(
            &json!({"traits": {"email": " Jane.Doe@Gmail.com ", "phone": "+1 (415) 555-0100"}}),
        );
        assert_eq!(
            ids,
            vec![
                json!({"hashedEmail": sha256_hex("janedoe@gmail.com").unwrap(), "userIdentifierSource": "FIRST_PARTY"}),
                json!({"hashedPhoneNumber": sha256_hex("+14155550100").unwrap(), "userIdentifierSource": "FIRST_PARTY"}),
            ]
        );
        assert_eq!(
            sha256_hex("test@example.com").as_deref(),
            Some("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b")
        );
    }

    #[test]
    fn a_track_call_is_a_click_conversion_of_the_action() {
        let Mapped::Item { envelope, item } = mapped(
            event(json!({"event": "Order Completed",
                "properties": {"revenue": "42.5", "currency": "eur", "order_id": "o-1"},
                "context": {"page": {"url": "https://shop.example/?gclid=Cj0KCQ&x=1"},
                            "traits": {"email": "test@example.com"}}})),
            Decision::Granted,
        ) else {
            panic!("not an item")
        };
        assert_eq!(envelope, Value::Null);
        let at = chrono::DateTime::from_timestamp_millis(NOW - 5000).unwrap();
        assert_eq!(
            item,
            json!({
                "conversionAction": "customers/1234567890/conversionActions/987654",
                "conversionDateTime": at.format("%Y-%m-%d %H:%M:%S+00:00").to_string(),
                "gclid": "Cj0KCQ",
                "userIdentifiers": [{"hashedEmail": "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b",
                                     "userIdentifierSource": "FIRST_PARTY"}],
                "conversionValue": 42.5, "currencyCode": "EUR", "orderId": "o-1",
                "consent": {"adUserData": "GRANTED"}
            })
        );
    }

    #[test]
    fn every_call_type_has_its_mapping_and_unmatchable_events_are_refused() {
        for skipped in [
            EventType::Page,
            EventType::Identify,
            EventType::Screen,
            EventType::Group,
            EventType::Alias,
        ] {
            let consent = BTreeMap::new();
            let e = event(json!({"context": {"gclid": "g"}}));
            let input = Input {
                event_type: skipped,
                event: &e,
                message_id: "m",
                consent: &consent,
                now_ms: NOW,
            };
            assert_eq!(settings().map(&input), Mapped::Skip);
        }
        match mapped(event(json!({})), Decision::Granted) {
            Mapped::Refuse(reason) => assert!(reason.contains("click id"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let old = event(json!({"context": {"gclid": "g"},
            "timestamp": sightline_core::time::format_ms(NOW - MAX_AGE_MS - 1)}));
        assert!(
            matches!(mapped(old, Decision::Granted), Mapped::Refuse(r) if r.contains("90 days"))
        );
        // Enhanced conversions for leads: no click id, a hashed phone.
        let Mapped::Item { item, .. } = mapped(
            event(json!({"context": {"traits": {"phone": "0044 20 7946 0000"},
                         "consent": {"googleConsentMode": {"ad_user_data": "granted"}}}})),
            Decision::NotStated,
        ) else {
            panic!("not an item")
        };
        assert!(item.get("gclid").is_none());
        assert_eq!(
            item["userIdentifiers"][0]["hashedPhoneNumber"],
            sha256_hex("+442079460000").unwrap()
        );
        assert_eq!(
            item["consent"]["adUserData"], "GRANTED",
            "Consent Mode's own state"
        );
        let Mapped::Item { item, .. } = mapped(
            event(json!({"context": {"gclid": "g"}})),
            Decision::NotStated,
        ) else {
            panic!("not an item")
        };
        assert_eq!(
            item["consent"]["adUserData"], "DENIED",
            "silence is refusal"
        );
    }

    #[test]
    fn the_request_carries_both_tokens_in_headers() {
        let mut with_manager = settings();
        with_manager.login_customer_id = Some("1112223333".into());
        let request = Vendor::GoogleAds(with_manager).request(
            "http://127.0.0.1:9/",
            "dev-tok:ya29.access",
            &Value::Null,
            vec![json!({"gclid": "g"})],
        );
        let request = request.expect("an HTTP vendor makes a request");
        assert_eq!(
            request.url,
            "http://127.0.0.1:9/v22/customers/1234567890:uploadClickConversions"
        );
        assert_eq!(
            request.headers,
            vec![
                ("Authorization", "Bearer ya29.access".to_owned()),
                ("developer-token", "dev-tok".to_owned()),
                ("login-customer-id", "1112223333".to_owned()),
            ]
        );
        assert_eq!(
            serde_json::from_str::<Value>(&request.body).unwrap(),
            json!({"conversions": [{"gclid": "g"}], "partialFailure": true})
        );
        assert!(!format!("{request:?}").contains("ya29"));
        assert!(check_credential("dev:ya29").is_ok());
        assert!(check_credential("ya29-only").is_err());
        assert!(check_credential(":ya29").is_err());
    }

    #[test]
    fn answers_are_read_with_partial_failures_and_quota_delays() {
        let reply = |status: u16, body: Value| Reply {
            status,
            retry_after: None,
            body: body.to_string().into_bytes(),
        };
        assert_eq!(
            classify(&reply(200, json!({"results": [{"gclid": "g"}]}))),
            Answer::Accepted { code: 200 }
        );
        let partial = json!({"results": [{}, {"gclid": "g"}], "partialFailureError": {
            "code": 3, "message": "Multiple errors in ‘details’.",
            "details": [{"@type": "type.googleapis.com/google.ads.googleads.v22.errors.GoogleAdsFailure",
                "errors": [{"errorCode": {"conversionUploadError": "EXPIRED_EVENT"},
                            "message": "The click associated with the given identifier is too old.",
                            "location": {"fieldPathElements": [{"fieldName": "conversions", "index": 0},
                                                               {"fieldName": "gclid"}]}}]}]}});
        assert_eq!(
            classify(&reply(200, partial)),
            Answer::Partial {
                code: 200,
                refused: vec![(
                    0,
                    "Google Ads refused the conversion: The click associated with the given identifier is too old.".into()
                )]
            }
        );
        let quota = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Too many requests.",
            "details": [{"@type": "type.googleapis.com/google.ads.googleads.v22.errors.GoogleAdsFailure",
                "errors": [{"errorCode": {"quotaError": "RESOURCE_EXHAUSTED"}, "message": "Too many requests.",
                            "details": {"quotaErrorDetails": {"rateScope": "DEVELOPER", "rateName": "Requests", "retryDelay": "2s"}}}]}]}});
        assert!(matches!(
            classify(&reply(429, quota)),
            Answer::Retry { code: Some(429), wait: Some(wait), .. } if wait == Duration::from_secs(2)
        ));
        for token in [401, 403] {
            match classify(&reply(
                token,
                json!({"error": {"code": token, "status": "UNAUTHENTICATED"}}),
            )) {
                Answer::Retry { reason, .. } => assert!(reason.contains("set-credential")),
                other => panic!("a refused credential must hold the destination, got {other:?}"),
            }
        }
        assert!(matches!(
            classify(&reply(503, json!({}))),
            Answer::Retry { wait: None, .. }
        ));
        assert!(matches!(
            classify(&reply(
                400,
                json!({"error": {"code": 400, "status": "INVALID_ARGUMENT"}})
            )),
            Answer::Refused {
                code: Some(400),
                ..
            }
        ));
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().check().is_ok());
        let mut bad = settings();
        bad.customer_id = "123-456-7890".into();
        assert!(bad.check().unwrap_err().contains("customer_id"));
        bad = settings();
        bad.conversion_action_id = Some(String::new());
        assert!(bad.check().unwrap_err().contains("conversion_action_id"));
        bad.conversion_action_id = None;
        assert!(bad.check().unwrap_err().contains("audiences.NAME"));
        bad.audiences.insert("buyers".into(), "777".into());
        assert!(bad.check().is_ok());
        bad = settings();
        bad.login_customer_id = Some("x".into());
        assert!(bad.check().unwrap_err().contains("login_customer_id"));
        bad = settings();
        bad.api_version = "22".into();
        assert!(bad.check().unwrap_err().contains("api_version"));
    }

    proptest! {
        #[test]
        fn any_traits_map_without_panicking_and_identifiers_are_never_clear(
            email_in in "\\PC{0,40}", phone_in in "\\PC{0,30}", url in "\\PC{0,40}",
        ) {
            let e = event(json!({"context": {"page": {"url": url}, "traits": {"email": email_in, "phone": phone_in}}}));
            if let Mapped::Item { item, .. } = mapped(e, Decision::Granted) {
                for id in item["userIdentifiers"].as_array().into_iter().flatten() {
                    let hash = id.get("hashedEmail").or_else(|| id.get("hashedPhoneNumber")).unwrap();
                    let hash = hash.as_str().unwrap();
                    prop_assert_eq!(hash.len(), 64);
                    prop_assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                }
            }
        }
    }
}
