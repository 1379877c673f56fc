//! Segment Consent Management: the `context.consent.categoryPreferences` map
//! Segment's consent wrappers put on every event, and the
//! `Segment Consent Preference Updated` track event sent when it changes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::google::json_kind;
use crate::DecodeError;

/// The track event name Segment sends when the user changes preferences.
pub const PREFERENCE_UPDATED_EVENT: &str = "Segment Consent Preference Updated";

/// The consent Segment attached to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentConsent {
    /// Category name (as configured in the CMP, e.g. `Advertising`, `C0004`) → consented.
    pub category_preferences: BTreeMap<String, bool>,
    /// The event is a `Segment Consent Preference Updated` track call.
    pub is_preference_update: bool,
}

impl SegmentConsent {
    /// Reads a Segment event. `Ok(None)` when it carries no
    /// `context.consent.categoryPreferences`; an error when that field is
    /// present but not an object of booleans.
    pub fn from_event(event: &Value) -> Result<Option<Self>, DecodeError> {
        let Some(preferences) =
            crate::event::consent_of(event).and_then(|c| c.get("categoryPreferences"))
        else {
            return Ok(None);
        };
        let path = "$.context.consent.categoryPreferences";
        let object = preferences
            .as_object()
            .ok_or_else(|| DecodeError::InvalidJson {
                path: path.into(),
                found: json_kind(preferences),
                expected: "an object of category name to boolean",
            })?;
        let category_preferences = object
            .iter()
            .map(|(category, value)| {
                value
                    .as_bool()
                    .map(|granted| (category.clone(), granted))
                    .ok_or_else(|| DecodeError::InvalidJson {
                        path: format!("{path}.{category}"),
                        found: json_kind(value),
                        expected: "true or false",
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Self {
            category_preferences,
            is_preference_update: is_preference_update(event),
        }))
    }
}

/// Whether the event is Segment's `Segment Consent Preference Updated` track call.
pub fn is_preference_update(event: &Value) -> bool {
    event.get("event").and_then(Value::as_str) == Some(PREFERENCE_UPDATED_EVENT)
        && event
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(|kind| kind == "track")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_category_preferences_and_the_update_event() {
        let event = json!({
            "type": "track",
            "event": "Segment Consent Preference Updated",
            "context": {"consent": {"categoryPreferences": {"Advertising": false, "Analytics": true}}}
        });
        let consent = SegmentConsent::from_event(&event).unwrap().unwrap();
        assert!(!consent.category_preferences["Advertising"]);
        assert!(consent.category_preferences["Analytics"]);
        assert!(consent.is_preference_update);
        assert_eq!(
            SegmentConsent::from_event(&json!({"type": "page"})).unwrap(),
            None
        );
    }

    #[test]
    fn rejects_non_boolean_preferences() {
        let event = json!({"context": {"consent": {"categoryPreferences": {"Ads": "yes"}}}});
        let error = SegmentConsent::from_event(&event).unwrap_err().to_string();
        assert!(
            error.contains("categoryPreferences.Ads") && error.contains("true or false"),
            "{error}"
        );
    }
}
