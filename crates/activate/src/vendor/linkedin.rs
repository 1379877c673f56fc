//! LinkedIn Conversions API. Pure.
//!
//! Built to LinkedIn's Marketing API pages (learn.microsoft.com/linkedin/marketing/
//! integrations/ads-reporting/conversions-api, and "Protocol Versions", "Versioning",
//! "Error Handling"): a POST to `/rest/conversionEvents` with `Authorization: Bearer
//! <token>`, `LinkedIn-Version: YYYYMM`, `X-Restli-Protocol-Version: 2.0.0` and
//! `X-RestLi-Method: BATCH_CREATE`, the body `{"elements": […]}`, each element a
//! `conversion` (the conversion rule's URN, `urn:lla:llaPartnerConversion:<id>`),
//! `conversionHappenedAt` (ms since the epoch, at most 90 days ago: older ones are
//! rejected), `conversionValue` (`currencyCode`, `amount` as a string), `eventId` and
//! `user`: `userIds` (at least one) and `userInfo`. LinkedIn documents up to 5,000 events
//! per batch; Sightline sends at most 1,000 (its bound on one request).
//!
//! A destination is one conversion rule (`conversion_id`, created in Campaign Manager
//! with the Conversions API as its source): choose which events count as that conversion
//! with the destination's `--events` filter, and add a destination per rule. Every track
//! call that reaches it is a conversion; page, identify, screen, group and alias are
//! skipped. `eventId` is the event's `messageId`: give the Insight Tag the same event id
//! and LinkedIn counts the pair once.
//!
//! `user.userIds`: `SHA256_EMAIL`, the email trimmed and lowercased, then SHA-256 hashed
//! (lowercase hex), as LinkedIn requires; `LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID`, the
//! `li_fat_id` click id (`context.li_fat_id`, else the `li_fat_id` of the page URL's
//! query), as it is. `user.userInfo` (`firstName`, `lastName`, `companyName`, `title`,
//! `countryCode`) is sent only with both names, as LinkedIn requires of it. LinkedIn has
//! no phone identifier, so a phone is never sent. An event with no user id is refused
//! before sending (LinkedIn would reject it).
//!
//! Answers: 2xx with a per-element `status` in `elements`: a 2xx element was taken, any
//! other is refused alone (a dead letter with LinkedIn's message), the others delivered.
//! HTTP 429 (throttled) and 5xx are retried; 401 (a token expired or revoked) and 403 (a
//! token without the `rw_conversions` scope or access to the ad account) hold the
//! destination and are retried until `destination set-credential` replaces the token;
//! any other status (400, 422: the request is invalid) refuses the whole batch.

use super::{
    event_time_ms, number_at, query_value, sha256_hex, text_at, trait_text, Input, Mapped, Request,
};
use crate::answer::{Answer, Reply};
use serde_json::{json, Map, Value};
use sightline_core::EventType;

pub const ENDPOINT: &str = "https://api.linkedin.com/rest/conversionEvents";
pub const MAX_EVENTS: u32 = 1000;
/// The Marketing API version, when the settings name none: LinkedIn supports each
/// monthly version for at least a year.
const API_VERSION: &str = "202611";
const MAX_AGE_MS: i64 = 90 * 24 * 3600 * 1000;

/// A LinkedIn destination's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The conversion rule's id (digits), from Campaign Manager › Conversion tracking.
    pub conversion_id: String,
    /// The `LinkedIn-Version` header: `YYYYMM`.
    #[serde(default = "api_version")]
    pub api_version: String,
}

fn api_version() -> String {
    API_VERSION.into()
}

impl Settings {
    pub(super) fn check(&self) -> Result<(), String> {
        let id = &self.conversion_id;
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "conversion_id {id:?} is not a LinkedIn conversion rule id: copy the digits from Campaign Manager › Conversion tracking"
            ));
        }
        let version = &self.api_version;
        let month = version.get(4..).and_then(|m| m.parse::<u32>().ok());
        if version.len() != 6
            || !version.bytes().all(|b| b.is_ascii_digit())
            || !month.is_some_and(|m| (1..=12).contains(&m))
        {
            return Err(format!(
                "api_version {version:?} is not a LinkedIn Marketing API version such as {API_VERSION} (YYYYMM)"
            ));
        }
        Ok(())
    }

    pub(super) fn map(&self, input: &Input<'_>) -> Mapped {
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
                "the event is older than the 90 days LinkedIn takes conversions for".into(),
            );
        }
        let user = user(event);
        if user["userIds"].as_array().is_none_or(Vec::is_empty) {
            return Mapped::Refuse(
                "LinkedIn needs a user id and the event has neither an email \
                 (context.traits.email) nor a li_fat_id click id (context.li_fat_id)"
                    .into(),
            );
        }
        let mut item = Map::new();
        item.insert(
            "conversion".into(),
            format!("urn:lla:llaPartnerConversion:{}", self.conversion_id).into(),
        );
        item.insert("conversionHappenedAt".into(), at.into());
        if let Some(value) = conversion_value(event) {
            item.insert("conversionValue".into(), value);
        }
        item.insert("eventId".into(), input.message_id.into());
        item.insert("user".into(), user);
        Mapped::Item {
            envelope: Value::Null,
            item: Value::Object(item),
        }
    }

    pub(super) fn request(
        &self,
        endpoint: &str,
        access_token: &str,
        elements: Vec<Value>,
    ) -> Request {
        Request {
            method: super::Method::Post,
            url: endpoint.to_owned(),
            headers: vec![
                ("Authorization", format!("Bearer {access_token}")),
                ("LinkedIn-Version", self.api_version.clone()),
                ("X-Restli-Protocol-Version", "2.0.0".into()),
                ("X-RestLi-Method", "BATCH_CREATE".into()),
            ],
            body: json!({ "elements": elements }).to_string(),
        }
    }
}

/// See the module for what each answer means.
pub(super) fn classify(reply: &Reply) -> Answer {
    let status = reply.status;
    let reason = reply.reason();
    if (200..300).contains(&status) {
        let body = serde_json::from_slice::<Value>(&reply.body).unwrap_or(Value::Null);
        let refused: Vec<(usize, String)> = body
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(index, element)| {
                let element_status = element.get("status").and_then(Value::as_u64)?;
                if (200..300).contains(&element_status) {
                    return None;
                }
                let message = element
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                let message: String = message.chars().take(crate::answer::SNIPPET_BYTES).collect();
                Some((
                    index,
                    format!("LinkedIn refused the event: HTTP {element_status}: {message}"),
                ))
            })
            .collect();
        return if refused.is_empty() {
            Answer::Accepted { code: status }
        } else {
            Answer::Partial {
                code: status,
                refused,
            }
        };
    }
    if status >= 500 || status == 429 || status == 408 {
        return Answer::Retry {
            code: Some(status),
            wait: reply.retry_after,
            reason,
        };
    }
    if status == 401 || status == 403 {
        return Answer::Retry {
            code: Some(status),
            wait: reply.retry_after,
            reason: format!(
                "LinkedIn refused the access token; delivery holds until it is replaced \
                 (`sightline destination set-credential`): {reason}"
            ),
        };
    }
    Answer::Refused {
        code: Some(status),
        reason,
    }
}

/// `user`: see the module for each identifier.
fn user(event: &Value) -> Value {
    let mut ids = Vec::new();
    if let Some(hash) = trait_text(event, &["email"]).and_then(|e| sha256_hex(&email(&e))) {
        ids.push(json!({"idType": "SHA256_EMAIL", "idValue": hash}));
    }
    let click = text_at(event, &["/context/li_fat_id", "/properties/li_fat_id"]).or_else(|| {
        text_at(event, &["/context/page/url"]).and_then(|url| query_value(&url, "li_fat_id"))
    });
    if let Some(click) = click {
        ids.push(json!({"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": click}));
    }
    let mut user = json!({ "userIds": ids });
    let first = trait_text(event, &["firstName", "first_name"]);
    let last = trait_text(event, &["lastName", "last_name"]);
    if let (Some(first), Some(last)) = (first, last) {
        let mut info = json!({"firstName": first.trim(), "lastName": last.trim()});
        for (key, names) in [
            ("companyName", ["company.name", "company"]),
            ("title", ["title", "job_title"]),
            ("countryCode", ["address.country", "country"]),
        ] {
            if let Some(value) = trait_text(event, &names) {
                info[key] = value.trim().into();
            }
        }
        user["userInfo"] = info;
    }
    user
}

fn email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// `conversionValue` from `revenue`, `total` or `value`, with the event's `currency`
/// (LinkedIn requires one: an amount without it is not sent).
fn conversion_value(event: &Value) -> Option<Value> {
    let amount = ["revenue", "total", "value"]
        .iter()
        .find_map(|key| number_at(event, &format!("/properties/{key}")))?;
    let currency = super::currency_code(&text_at(event, &["/properties/currency"])?)?;
    Some(json!({"currencyCode": currency, "amount": amount.to_string()}))
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
            conversion_id: "104012".into(),
            api_version: API_VERSION.into(),
        }
    }

    fn mapped(event_type: EventType, event: Value) -> Mapped {
        let consent: BTreeMap<String, Decision> = [("advertising".to_owned(), Decision::Granted)]
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

    fn event(extra: Value) -> Value {
        let mut event = json!({"anonymousId": "a1", "event": "Lead",
            "timestamp": sightline_core::time::format_ms(NOW - 5000),
            "context": {"traits": {"email": " Test@Example.COM "}}});
        event
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        event
    }

    /// LinkedIn's rule (trimmed, lowercased, SHA-256 as lowercase hex); the vector is the
    /// hash Meta publishes for `test@example.com`, the same input under the same rule.
    #[test]
    fn the_email_is_hashed_as_linkedin_documents() {
        assert_eq!(
            sha256_hex(&email("  Test@Example.COM ")).as_deref(),
            Some("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b")
        );
    }

    #[test]
    fn a_track_call_is_a_conversion_of_the_rule() {
        let Mapped::Item { envelope, item } = mapped(
            EventType::Track,
            event(json!({
                "event": "Order Completed",
                "properties": {"revenue": "42.5", "currency": "eur", "email": "leak@example.com"},
                "context": {"page": {"url": "https://shop.example/?li_fat_id=df8a-11"},
                            "traits": {"email": "Test@Example.com", "phone": "+1 213 373 4253",
                                       "firstName": " Ann ", "lastName": "Lee", "company": {"name": "Acme"},
                                       "title": "CTO", "address": {"country": "US"}}}
            })),
        ) else {
            panic!("not an item")
        };
        assert_eq!(envelope, Value::Null);
        assert_eq!(
            item,
            json!({
                "conversion": "urn:lla:llaPartnerConversion:104012",
                "conversionHappenedAt": NOW - 5000,
                "conversionValue": {"currencyCode": "EUR", "amount": "42.5"},
                "eventId": "msg-1",
                "user": {
                    "userIds": [
                        {"idType": "SHA256_EMAIL", "idValue": "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"},
                        {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": "df8a-11"}
                    ],
                    "userInfo": {"firstName": "Ann", "lastName": "Lee", "companyName": "Acme",
                                 "title": "CTO", "countryCode": "US"}
                }
            })
        );
        assert!(
            !item.to_string().contains("213"),
            "no phone: LinkedIn has no field for it"
        );
    }

    #[test]
    fn every_call_type_has_its_mapping() {
        assert!(matches!(
            mapped(EventType::Track, event(json!({}))),
            Mapped::Item { .. }
        ));
        for skipped in [
            EventType::Page,
            EventType::Identify,
            EventType::Screen,
            EventType::Group,
            EventType::Alias,
        ] {
            assert_eq!(mapped(skipped, event(json!({}))), Mapped::Skip);
        }
        // Half a name is no userInfo; an amount without a currency is no value.
        let Mapped::Item { item, .. } = mapped(
            EventType::Track,
            event(json!({"properties": {"value": 3},
                         "context": {"traits": {"email": "a@b.c", "firstName": "Ann"}}})),
        ) else {
            panic!("not an item")
        };
        assert!(item["user"].get("userInfo").is_none());
        assert!(item.get("conversionValue").is_none());
    }

    #[test]
    fn events_linkedin_would_reject_are_refused_before_sending() {
        let refused = |event: Value| match mapped(EventType::Track, event) {
            Mapped::Refuse(reason) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let old = refused(event(
            json!({"timestamp": sightline_core::time::format_ms(NOW - MAX_AGE_MS - 1)}),
        ));
        assert!(old.contains("90 days"), "{old}");
        let anonymous = refused(json!({"event": "Lead",
            "timestamp": sightline_core::time::format_ms(NOW), "context": {"traits": {"firstName": "A", "lastName": "B"}}}));
        assert!(anonymous.contains("user id"), "{anonymous}");
    }

    #[test]
    fn the_request_is_a_versioned_batch_create_with_a_bearer_token() {
        let request = Vendor::Linkedin(settings()).request(
            "http://127.0.0.1:9/rest/conversionEvents",
            "li-token",
            &Value::Null,
            vec![json!({"eventId": "x"})],
        );
        let request = request.expect("an HTTP vendor makes a request");
        assert_eq!(request.url, "http://127.0.0.1:9/rest/conversionEvents");
        assert_eq!(
            request.headers,
            vec![
                ("Authorization", "Bearer li-token".to_owned()),
                ("LinkedIn-Version", API_VERSION.to_owned()),
                ("X-Restli-Protocol-Version", "2.0.0".to_owned()),
                ("X-RestLi-Method", "BATCH_CREATE".to_owned()),
            ]
        );
        assert_eq!(
            serde_json::from_str::<Value>(&request.body).unwrap(),
            json!({"elements": [{"eventId": "x"}]})
        );
        assert!(!format!("{request:?}").contains("li-token"));
    }

    #[test]
    fn answers_are_read_per_element() {
        let reply = |status: u16, body: Value| Reply {
            status,
            retry_after: None,
            body: body.to_string().into_bytes(),
        };
        assert_eq!(
            classify(&reply(
                200,
                json!({"elements": [{"status": 201}, {"status": 201}]})
            )),
            Answer::Accepted { code: 200 }
        );
        assert_eq!(
            classify(&reply(
                200,
                json!({"elements": [{"status": 201},
                {"status": 400, "error": {"message": "conversionHappenedAt is too old", "status": 400}}]})
            )),
            Answer::Partial {
                code: 200,
                refused: vec![(
                    1,
                    "LinkedIn refused the event: HTTP 400: conversionHappenedAt is too old".into()
                )]
            }
        );
        for retried in [429, 500, 503] {
            assert!(matches!(
                classify(&reply(retried, json!({"status": retried}))),
                Answer::Retry { .. }
            ));
        }
        for token in [401, 403] {
            match classify(&reply(
                token,
                json!({"status": token, "serviceErrorCode": 65601}),
            )) {
                Answer::Retry { reason, .. } => assert!(reason.contains("set-credential")),
                other => panic!("a refused token must hold the destination, got {other:?}"),
            }
        }
        assert!(matches!(
            classify(&reply(422, json!({"status": 422, "message": "bad"}))),
            Answer::Refused {
                code: Some(422),
                ..
            }
        ));
    }

    #[test]
    fn settings_are_checked() {
        assert!(settings().check().is_ok());
        let mut bad = settings();
        bad.conversion_id = "urn:lla:1".into();
        assert!(bad.check().unwrap_err().contains("conversion_id"));
        bad = settings();
        bad.api_version = "202613".into();
        assert!(bad.check().unwrap_err().contains("api_version"));
    }

    proptest! {
        #[test]
        fn any_traits_map_without_panicking_and_the_email_is_never_clear(
            email_in in "\\PC{0,40}", url in "\\PC{0,40}", first in "\\PC{0,10}",
        ) {
            let event = event(json!({"context": {"page": {"url": url},
                "traits": {"email": email_in.clone(), "firstName": first, "lastName": "L"}}}));
            if let Mapped::Item { item, .. } = mapped(EventType::Track, event) {
                for id in item["user"]["userIds"].as_array().unwrap() {
                    if id["idType"] == "SHA256_EMAIL" {
                        let hash = id["idValue"].as_str().unwrap();
                        prop_assert_eq!(hash.len(), 64);
                        prop_assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                    }
                }
            }
        }
    }
}
