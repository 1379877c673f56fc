//! Consent recorded directly (`POST /api/v1/consent`): a request becomes a `Segment Consent
//! Preference Updated` event in the log, so the consent ledger is derived from the log
//! like every other profile fact and a rebuild recovers it. Pure, apart from the caller's
//! clock and id.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sightline_consent::Policy;
use sightline_core::time;
use std::collections::BTreeMap;

/// The largest consent request accepted.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024;

/// What a caller records: whose consent, the signals, when, and the evidence.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsentRequest {
    /// `type:value`, e.g. `email:ann@example.com` or `anonymous_id:a-1`.
    pub identifier: String,
    /// Sightline purposes stated directly.
    #[serde(default)]
    pub purposes: BTreeMap<String, bool>,
    /// Segment consent categories, as a CMP integration sends them.
    #[serde(default)]
    pub category_preferences: BTreeMap<String, bool>,
    /// A TCF v2, GPP or US Privacy string.
    pub consent_string: Option<String>,
    /// Google Consent Mode states, e.g. `{"ad_storage":"denied"}`.
    pub google_consent_mode: Option<Value>,
    /// When the consent was given (ISO 8601); now when absent.
    pub timestamp: Option<String>,
    /// e.g. `EU`, `US-CA`.
    pub jurisdiction: Option<String>,
    /// CMP id and version, page URL, policy version: kept with the ledger entry.
    #[serde(default)]
    pub evidence: Map<String, Value>,
    /// Makes retries safe: the same id within the dedup window is recorded once.
    pub message_id: Option<String>,
}

/// The event that records `request`, or what to fix. `now` and `new_id` are the caller's.
pub fn to_event(
    request: ConsentRequest,
    policy: &Policy,
    now: i64,
    new_id: impl FnOnce() -> String,
) -> Result<(String, Value), String> {
    let (id_type, value) = request
        .identifier
        .split_once(':')
        .filter(|(t, v)| !t.is_empty() && !v.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "identifier {:?} is not type:value, e.g. email:ann@example.com",
                request.identifier
            )
        })?;
    policy.check_purposes(request.purposes.keys())?;
    if let Some(text) = &request.consent_string {
        sightline_consent::decode(text.trim())
            .map_err(|e| format!("consentString does not decode: {e}"))?;
    }
    if let Some(states) = &request.google_consent_mode {
        sightline_consent::ConsentModeState::from_json(states)
            .map_err(|e| format!("googleConsentMode is not valid: {e}"))?;
    }
    if request.purposes.is_empty()
        && request.category_preferences.is_empty()
        && request.consent_string.is_none()
        && request.google_consent_mode.is_none()
    {
        return Err(
            "state some consent: purposes, categoryPreferences, consentString or googleConsentMode"
                .into(),
        );
    }
    let at = match &request.timestamp {
        Some(text) => time::parse_ms(text)
            .ok_or_else(|| format!("timestamp {text:?} is not an ISO 8601 time"))?,
        None => now,
    };
    let message_id = match request.message_id {
        Some(id) if id.is_empty() || id.len() > 100 => {
            return Err("messageId must be 1 to 100 characters".into())
        }
        Some(id) => id,
        None => new_id(),
    };

    let mut consent = Map::new();
    if !request.purposes.is_empty() {
        consent.insert("purposes".into(), json!(request.purposes));
    }
    if !request.category_preferences.is_empty() {
        consent.insert(
            "categoryPreferences".into(),
            json!(request.category_preferences),
        );
    }
    if let Some(text) = request.consent_string {
        consent.insert("tcf".into(), json!(text.trim()));
    }
    if let Some(states) = request.google_consent_mode {
        consent.insert("googleConsentMode".into(), states);
    }
    if let Some(jurisdiction) = request.jurisdiction {
        consent.insert("jurisdiction".into(), json!(jurisdiction));
    }
    if !request.evidence.is_empty() {
        consent.insert("evidence".into(), Value::Object(request.evidence));
    }
    let mut event = json!({
        "type": "track",
        "event": sightline_consent::segment::PREFERENCE_UPDATED_EVENT,
        "messageId": message_id,
        "timestamp": time::format_ms(at),
        "receivedAt": time::format_ms(now),
        "context": {"consent": consent},
    });
    let value = value.trim();
    match id_type {
        "user_id" => event["userId"] = json!(value),
        "anonymous_id" => event["anonymousId"] = json!(value),
        "email" | "phone" => event["context"]["traits"] = json!({ id_type: value }),
        "device_id" => event["context"]["device"] = json!({ "id": value }),
        other => event["context"]["externalIds"] = json!([{"id": value, "type": other}]),
    }
    Ok((message_id, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> Result<(String, Value), String> {
        let request: ConsentRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
        to_event(request, &Policy::default(), 1_000, || "generated".into())
    }

    #[test]
    fn a_request_becomes_a_consent_update_on_the_identifier() {
        let (id, event) = request(json!({
            "identifier": "email:Ann@Example.com",
            "purposes": {"advertising": false},
            "consentString": "1YNN",
            "jurisdiction": "US-CA",
            "evidence": {"cmp_id": 7, "policy_version": "v3"},
            "timestamp": "2026-01-01T00:00:00.000Z"
        }))
        .unwrap();
        assert_eq!(id, "generated");
        assert_eq!(event["event"], "Segment Consent Preference Updated");
        assert_eq!(event["context"]["traits"]["email"], "Ann@Example.com");
        assert_eq!(
            event["context"]["consent"]["purposes"]["advertising"],
            false
        );
        assert_eq!(event["context"]["consent"]["tcf"], "1YNN");
        assert_eq!(
            event["context"]["consent"]["evidence"]["policy_version"],
            "v3"
        );
        assert_eq!(event["timestamp"], "2026-01-01T00:00:00.000Z");
        let signals = sightline_consent::EventSignals::read(&event);
        assert_eq!(signals.named().len(), 2);
    }

    #[test]
    fn bad_requests_say_what_to_fix() {
        let cases = [
            (
                json!({"identifier": "ann", "purposes": {"ads": true}}),
                "type:value",
            ),
            (
                json!({"identifier": "user_id:1", "purposes": {"ads": true}}),
                "unknown purpose",
            ),
            (json!({"identifier": "user_id:1"}), "state some consent"),
            (
                json!({"identifier": "user_id:1", "consentString": "nope"}),
                "does not decode",
            ),
            (
                json!({"identifier": "user_id:1", "purposes": {"analytics": true}, "timestamp": "soon"}),
                "ISO 8601",
            ),
            (
                json!({"identifier": "user_id:1", "googleConsentMode": {"ad_storage": "yes"}}),
                "googleConsentMode",
            ),
            (
                json!({"identifier": "user_id:1", "purpose": {}}),
                "unknown field",
            ),
        ];
        for (body, expected) in cases {
            let err = request(body.clone()).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
