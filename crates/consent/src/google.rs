//! Google Consent Mode v2: the consent state objects sent with events, and
//! the `gcs` / `gcd` parameters of Google tag requests.
//!
//! `gcd` is not documented by Google. Its letter table below comes from
//! community reverse engineering (Markus Baersch's Consent Mode FAQ, published
//! in English as "Consent Mode V2 For Google Tags" on simoahava.com, 2024, and
//! the articles that cite it); see docs/consent-json.md for the table and its
//! uncertainty.

use serde::Serialize;
use serde_json::Value;

use crate::DecodeError;

/// A consent type's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    Granted,
    Denied,
}

/// The seven Consent Mode types; `None` where the signal does not state one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ConsentModeState {
    pub ad_storage: Option<Grant>,
    pub analytics_storage: Option<Grant>,
    pub ad_user_data: Option<Grant>,
    pub ad_personalization: Option<Grant>,
    pub functionality_storage: Option<Grant>,
    pub personalization_storage: Option<Grant>,
    pub security_storage: Option<Grant>,
}

impl ConsentModeState {
    /// The consent type names Google defines, in a fixed order.
    pub const TYPES: [&'static str; 7] = [
        "ad_storage",
        "analytics_storage",
        "ad_user_data",
        "ad_personalization",
        "functionality_storage",
        "personalization_storage",
        "security_storage",
    ];

    /// Reads an object such as `{"ad_storage":"granted","analytics_storage":"denied"}`
    /// (the argument of `gtag('consent', …)`). Other keys are ignored; a known
    /// key with a value other than `"granted"` / `"denied"` is an error.
    pub fn from_json(value: &Value) -> Result<Self, DecodeError> {
        let object = value.as_object().ok_or_else(|| DecodeError::InvalidJson {
            path: "$".into(),
            found: json_kind(value),
            expected: "an object of consent types such as {\"ad_storage\":\"granted\"}",
        })?;
        let mut state = Self::default();
        for (name, value) in object {
            let Some(slot) = state.slot_mut(name) else {
                continue;
            };
            *slot = Some(match value.as_str() {
                Some("granted") => Grant::Granted,
                Some("denied") => Grant::Denied,
                _ => {
                    return Err(DecodeError::InvalidJson {
                        path: format!("$.{name}"),
                        found: value.to_string(),
                        expected: "\"granted\" or \"denied\"",
                    })
                }
            });
        }
        Ok(state)
    }

    /// The state of a consent type by its Google name.
    pub fn get(&self, name: &str) -> Option<Grant> {
        match name {
            "ad_storage" => self.ad_storage,
            "analytics_storage" => self.analytics_storage,
            "ad_user_data" => self.ad_user_data,
            "ad_personalization" => self.ad_personalization,
            "functionality_storage" => self.functionality_storage,
            "personalization_storage" => self.personalization_storage,
            "security_storage" => self.security_storage,
            _ => None,
        }
    }

    fn slot_mut(&mut self, name: &str) -> Option<&mut Option<Grant>> {
        Some(match name {
            "ad_storage" => &mut self.ad_storage,
            "analytics_storage" => &mut self.analytics_storage,
            "ad_user_data" => &mut self.ad_user_data,
            "ad_personalization" => &mut self.ad_personalization,
            "functionality_storage" => &mut self.functionality_storage,
            "personalization_storage" => &mut self.personalization_storage,
            "security_storage" => &mut self.security_storage,
            _ => return None,
        })
    }
}

pub(crate) fn json_kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// `gcs=G1xy`: x is ad_storage, y analytics_storage, 1 granted, 0 denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gcs {
    pub ad_storage: Grant,
    pub analytics_storage: Grant,
}

impl Gcs {
    pub fn parse(value: &str) -> Result<Self, DecodeError> {
        let invalid = |problem: &str| {
            DecodeError::InvalidGoogleParameter {
            parameter: "gcs",
            value: value.to_string(),
            problem: problem.to_string(),
            expected: "'G1' then one digit for ad_storage and one for analytics_storage (1 granted, 0 denied), e.g. G111",
        }
        };
        let Some(digits) = value.strip_prefix("G1") else {
            return Err(invalid("it does not start with 'G1'"));
        };
        let grant = |digit| match digit {
            b'1' => Ok(Grant::Granted),
            b'0' => Ok(Grant::Denied),
            _ => Err(invalid("a state digit is neither 0 nor 1")),
        };
        match digits.as_bytes() {
            [ad, analytics] => Ok(Self {
                ad_storage: grant(*ad)?,
                analytics_storage: grant(*analytics)?,
            }),
            _ => Err(invalid("it is not four characters long")),
        }
    }
}

/// One signal of `gcd`: the default state set before any update, and the
/// state set by an update command, each absent when not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GcdSignal {
    pub letter: char,
    pub default: Option<Grant>,
    pub update: Option<Grant>,
}

impl GcdSignal {
    /// The state in force: the update if there was one, else the default.
    pub fn effective(&self) -> Option<Grant> {
        self.update.or(self.default)
    }

    /// The reverse-engineered letter table (see the module docs).
    fn from_letter(letter: char) -> Option<Self> {
        use Grant::{Denied, Granted};
        let (default, update) = match letter {
            'l' => (None, None),
            'p' => (Some(Denied), None),
            'q' => (Some(Denied), Some(Denied)),
            'r' => (Some(Denied), Some(Granted)),
            't' => (Some(Granted), None),
            'u' => (Some(Granted), Some(Denied)),
            'v' => (Some(Granted), Some(Granted)),
            'm' => (None, Some(Denied)),
            'n' => (None, Some(Granted)),
            _ => return None,
        };
        Some(Self {
            letter,
            default,
            update,
        })
    }
}

/// `gcd`, e.g. `11p1p1p1p5`: digits separate one letter per signal, in the
/// order ad_storage, analytics_storage, ad_user_data, ad_personalization.
/// The digits are not interpreted (their meaning is unknown); letters past
/// the fourth are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gcd {
    pub ad_storage: GcdSignal,
    pub analytics_storage: GcdSignal,
    pub ad_user_data: GcdSignal,
    pub ad_personalization: GcdSignal,
    pub extra: String,
}

impl Gcd {
    pub fn parse(value: &str) -> Result<Self, DecodeError> {
        const EXPECTED: &str = "digits separating one letter per signal (ad_storage, analytics_storage, \
                                ad_user_data, ad_personalization), letters from l, p, q, r, t, u, v, m, n, e.g. 11p1p1p1p5";
        let invalid = |problem: String| DecodeError::InvalidGoogleParameter {
            parameter: "gcd",
            value: value.to_string(),
            problem,
            expected: EXPECTED,
        };
        if let Some((position, c)) = value
            .char_indices()
            .find(|(_, c)| !c.is_ascii_alphanumeric())
        {
            return Err(invalid(format!(
                "character {c:?} at position {position} is neither a digit nor a letter"
            )));
        }
        let letters: Vec<(usize, char)> = value
            .char_indices()
            .filter(|(_, c)| c.is_ascii_alphabetic())
            .collect();
        let mut signals = Vec::with_capacity(4);
        for (position, letter) in letters.iter().take(4).copied() {
            let signal = GcdSignal::from_letter(letter).ok_or_else(|| {
                invalid(format!(
                    "letter {letter:?} at position {position} is not in the known table"
                ))
            })?;
            signals.push(signal);
        }
        let [ad_storage, analytics_storage, ad_user_data, ad_personalization] = signals[..] else {
            return Err(invalid(format!(
                "it has {} letter(s), not 4",
                letters.len()
            )));
        };
        Ok(Self {
            ad_storage,
            analytics_storage,
            ad_user_data,
            ad_personalization,
            extra: letters[4..].iter().map(|&(_, c)| c).collect(),
        })
    }
}

/// The consent parameters of one Google tag request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct GoogleTagConsent {
    pub gcs: Option<Gcs>,
    pub gcd: Option<Gcd>,
}

impl GoogleTagConsent {
    /// Reads `gcs` and `gcd` from a URL, a query string (with or without `?`)
    /// or a form-encoded POST body. Absent parameters are `None`; a present but
    /// malformed one is an error.
    pub fn from_url(url_or_query: &str) -> Result<Self, DecodeError> {
        let query = match url_or_query.split_once('?') {
            Some((_, query)) => query,
            None => url_or_query,
        };
        let query = query.split('#').next().unwrap_or_default();
        let mut consent = Self::default();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("gcs", value)) => consent.gcs = Some(Gcs::parse(value)?),
                Some(("gcd", value)) => consent.gcd = Some(Gcd::parse(value)?),
                _ => {}
            }
        }
        Ok(consent)
    }

    /// The Consent Mode state these parameters state: `gcd` where present
    /// (it carries all four v2 signals), else `gcs` (which lacks ad_user_data
    /// and ad_personalization).
    pub fn state(&self) -> ConsentModeState {
        let mut state = ConsentModeState::default();
        if let Some(gcs) = &self.gcs {
            state.ad_storage = Some(gcs.ad_storage);
            state.analytics_storage = Some(gcs.analytics_storage);
        }
        if let Some(gcd) = &self.gcd {
            let pairs = [
                (&mut state.ad_storage, gcd.ad_storage),
                (&mut state.analytics_storage, gcd.analytics_storage),
                (&mut state.ad_user_data, gcd.ad_user_data),
                (&mut state.ad_personalization, gcd.ad_personalization),
            ];
            for (slot, signal) in pairs {
                if let Some(grant) = signal.effective() {
                    *slot = Some(grant);
                }
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_consent_mode_objects() {
        let state = ConsentModeState::from_json(&json!({
            "ad_storage": "denied", "analytics_storage": "granted", "wait_for_update": 500
        }))
        .unwrap();
        assert_eq!(state.ad_storage, Some(Grant::Denied));
        assert_eq!(state.analytics_storage, Some(Grant::Granted));
        assert_eq!(state.ad_user_data, None);
        let error = ConsentModeState::from_json(&json!({"ad_user_data": true})).unwrap_err();
        assert!(error.to_string().contains("$.ad_user_data"), "{error}");
    }

    #[test]
    fn parses_gcs() {
        let gcs = Gcs::parse("G101").unwrap();
        assert_eq!(
            (gcs.ad_storage, gcs.analytics_storage),
            (Grant::Denied, Grant::Granted)
        );
        assert!(Gcs::parse("G121").is_err());
        assert!(Gcs::parse("G1011").is_err());
        assert!(Gcs::parse("X100").is_err());
    }

    #[test]
    fn parses_gcd_letters() {
        let gcd = Gcd::parse("11p1r1l1v5").unwrap();
        assert_eq!(gcd.ad_storage.effective(), Some(Grant::Denied));
        assert_eq!(gcd.analytics_storage.default, Some(Grant::Denied));
        assert_eq!(gcd.analytics_storage.effective(), Some(Grant::Granted));
        assert_eq!(gcd.ad_user_data.effective(), None);
        assert_eq!(gcd.ad_personalization.update, Some(Grant::Granted));
        assert_eq!(gcd.extra, "");
        assert_eq!(Gcd::parse("13t3t3t2t5l1").unwrap().extra, "l");
        assert!(Gcd::parse("11p1x1p1p5")
            .unwrap_err()
            .to_string()
            .contains("'x' at position 4"));
        assert!(Gcd::parse("11p1p5").is_err());
        assert!(Gcd::parse("11p1p 1p1p5").is_err());
    }

    #[test]
    fn extracts_parameters_from_urls() {
        let url = "https://region1.google-analytics.com/g/collect?v=2&tid=G-X&gcs=G100&gcd=13q3q3q2q5l1&en=page_view#x";
        let consent = GoogleTagConsent::from_url(url).unwrap();
        assert_eq!(consent.gcs.unwrap().ad_storage, Grant::Denied);
        let state = consent.state();
        assert_eq!(state.ad_user_data, Some(Grant::Denied));
        assert_eq!(state.ad_personalization, Some(Grant::Denied));
        assert_eq!(
            GoogleTagConsent::from_url("v=2&en=scroll").unwrap(),
            GoogleTagConsent::default()
        );
        assert!(GoogleTagConsent::from_url("?gcs=G1").is_err());
    }
}
