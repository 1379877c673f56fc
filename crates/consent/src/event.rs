//! The consent signals a Segment event carries, read once: Segment's
//! `context.consent.categoryPreferences`, Sightline purposes stated directly in
//! `context.consent.purposes` (what `POST /api/v1/consent` records), Google Consent Mode
//! states in `context.consent.googleConsentMode` (the object `gtag('consent', …)` takes,
//! e.g. `{"ad_storage":"denied","analytics_storage":"granted"}`), the `"gpc": true` the
//! collector stores for `Sec-GPC: 1`, and a consent string (TCF, GPP or US Privacy) in
//! `context.consent.tcf` or `context.tcf`. A signal that does not decode says nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::policy::Signal;
use crate::{ConsentModeState, Decoded, SegmentConsent};

/// Where each signal is read from; these names appear in ledger entries and suppression
/// reasons.
pub const SEGMENT_CATEGORIES: &str = "context.consent.categoryPreferences";
pub const PURPOSES: &str = "context.consent.purposes";
pub const GOOGLE_CONSENT_MODE: &str = "context.consent.googleConsentMode";
pub const GPC: &str = "gpc";
const CONSENT_STRINGS: [&str; 2] = ["context.consent.tcf", "context.tcf"];

/// `event.context.consent` (none when absent). Objects are walked key by key rather than by
/// JSON pointer: `Value::pointer` allocates a string per path segment, and every processor
/// reads the signals of every event.
pub(crate) fn consent_of(event: &Value) -> Option<&Value> {
    event.get("context")?.get("consent")
}

/// The consent signals of one event.
#[derive(Debug, Default)]
pub struct EventSignals {
    segment: Option<BTreeMap<String, bool>>,
    purposes: Option<BTreeMap<String, bool>>,
    consent_mode: Option<(Value, ConsentModeState)>,
    gpc: bool,
    strings: Vec<(&'static str, String, Decoded)>,
}

impl EventSignals {
    pub fn read(event: &Value) -> EventSignals {
        let consent = consent_of(event);
        let context_tcf = event.get("context").and_then(|c| c.get("tcf"));
        EventSignals {
            segment: SegmentConsent::from_event(event)
                .ok()
                .flatten()
                .map(|consent| consent.category_preferences),
            purposes: consent
                .and_then(|c| c.get("purposes"))
                .and_then(Value::as_object)
                .map(|stated| {
                    stated
                        .iter()
                        .filter_map(|(purpose, v)| Some((purpose.clone(), v.as_bool()?)))
                        .collect()
                }),
            consent_mode: consent
                .and_then(|c| c.get("googleConsentMode"))
                .and_then(|raw| Some((raw.clone(), ConsentModeState::from_json(raw).ok()?))),
            gpc: event.get("gpc").and_then(Value::as_bool) == Some(true),
            strings: CONSENT_STRINGS
                .into_iter()
                .zip([consent.and_then(|c| c.get("tcf")), context_tcf])
                .filter_map(|(name, value)| {
                    let text = value?.as_str()?.trim();
                    Some((name, text.to_owned(), crate::decode(text).ok()?))
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.segment.is_none()
            && self.purposes.is_none()
            && self.consent_mode.is_none()
            && !self.gpc
            && self.strings.is_empty()
    }

    /// Each signal with the name of where it was read.
    pub fn named(&self) -> Vec<(&'static str, Signal<'_>)> {
        let mut signals = Vec::new();
        if let Some(categories) = &self.segment {
            signals.push((SEGMENT_CATEGORIES, Signal::SegmentCategories(categories)));
        }
        if let Some(purposes) = &self.purposes {
            signals.push((PURPOSES, Signal::Purposes(purposes)));
        }
        if let Some((_, state)) = &self.consent_mode {
            signals.push((GOOGLE_CONSENT_MODE, Signal::ConsentMode(state)));
        }
        if self.gpc {
            signals.push((GPC, Signal::Gpc));
        }
        for (name, _, decoded) in &self.strings {
            signals.push((*name, Signal::from(decoded)));
        }
        signals
    }

    /// Each signal as received, by where it was read: the ledger's evidence.
    pub fn raw(&self) -> BTreeMap<String, Value> {
        let flags = |map: &BTreeMap<String, bool>| {
            Value::Object(
                map.iter()
                    .map(|(k, &v)| (k.clone(), Value::Bool(v)))
                    .collect(),
            )
        };
        let mut raw = BTreeMap::new();
        if let Some(categories) = &self.segment {
            raw.insert(SEGMENT_CATEGORIES.to_owned(), flags(categories));
        }
        if let Some(purposes) = &self.purposes {
            raw.insert(PURPOSES.to_owned(), flags(purposes));
        }
        if let Some((value, _)) = &self.consent_mode {
            raw.insert(GOOGLE_CONSENT_MODE.to_owned(), value.clone());
        }
        if self.gpc {
            raw.insert(GPC.to_owned(), Value::Bool(true));
        }
        for (name, text, _) in &self.strings {
            raw.insert((*name).to_owned(), Value::String(text.clone()));
        }
        raw
    }

    /// The CMP behind a TCF string (directly or in a GPP string), for the evidence.
    pub fn tcf(&self) -> Option<&crate::TcString> {
        self.strings
            .iter()
            .find_map(|(_, _, decoded)| match decoded {
                Decoded::Tcf(tc) => Some(&**tc),
                Decoded::Gpp(gpp) => gpp.sections.iter().find_map(|s| match s {
                    crate::GppSection::TcfEuV2(tc) => Some(&**tc),
                    _ => None,
                }),
                Decoded::Usp(_) => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decision, Policy};
    use serde_json::json;

    #[test]
    fn reads_every_signal_with_where_it_was_read() {
        let event = json!({"gpc": true, "context": {"consent": {
            "categoryPreferences": {"Analytics": true},
            "purposes": {"personalization": false},
            "googleConsentMode": {"ad_storage": "denied", "analytics_storage": "granted"},
            "tcf": "1YYN"}}});
        let signals = EventSignals::read(&event);
        let names: Vec<&str> = signals.named().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                SEGMENT_CATEGORIES,
                PURPOSES,
                GOOGLE_CONSENT_MODE,
                GPC,
                "context.consent.tcf"
            ]
        );
        assert_eq!(signals.raw()[GOOGLE_CONSENT_MODE]["ad_storage"], "denied");
        let all: Vec<_> = signals.named().into_iter().map(|(_, s)| s).collect();
        let decided = Policy::default().decide(&all);
        assert_eq!(decided["advertising"], Decision::Denied);
        assert_eq!(decided["analytics"], Decision::Granted);
        assert_eq!(decided["personalization"], Decision::Denied);
        assert!(EventSignals::read(&json!({"type": "track"})).is_empty());
        // A signal that does not decode says nothing.
        let bad = json!({"context": {"consent": {"googleConsentMode": {"ad_storage": "maybe"}}}});
        assert!(EventSignals::read(&bad).is_empty());
    }
}
