//! Activation: consent-gated destinations fed from the event log.
//!
//! - [`gate`] (pure): a destination's event filter and the consent gate.
//! - [`signature`] (pure): the webhook's HMAC-SHA256 signature header.
//! - [`backoff`] (pure): retry delays and `Retry-After`.
//! - [`breaker`] (pure): the circuit breaker of one destination.
//! - [`transform`] (pure): what a destination does to an event before sending it.
//! - [`webhook`] (IO): one signed request and its classified answer.
//! - [`deliver`] (IO): a worker per destination reading the log from its checkpoint,
//!   retries, dead letters and replay.

pub mod backoff;
pub mod breaker;
pub mod deliver;
pub mod gate;
pub mod signature;
pub mod transform;
pub mod webhook;

pub use breaker::{Breaker, BreakerConfig, Permit};
pub use deliver::{ConsentLedger, Deliverer, Settings, Tally};
pub use transform::{HashFormat, Transform};

use sightline_consent::Policy;
use sightline_core::{secret, DestinationKind, EventType, NewDestination};

/// Signing secrets are this many random alphanumerics after `whsec_`.
const SIGNING_SECRET_LEN: usize = 40;
/// The largest `--batch`: with 32 KB events, a request stays under 32 MB.
pub const MAX_BATCH: u32 = 1000;

/// A destination as asked for on the command line, the API (JSON) or a TOML file, before
/// validation. In JSON and TOML the keys are the command line's options: `name`, `type`
/// (default `webhook`), `url`, `purposes`, `events`, `types`, `batch` (default 1) and
/// `transform`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    pub name: String,
    #[serde(rename = "type", default = "webhook")]
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub purposes: Vec<String>,
    #[serde(rename = "types", default)]
    pub event_types: Vec<String>,
    #[serde(rename = "events", default)]
    pub event_names: Vec<String>,
    #[serde(rename = "batch", default = "one")]
    pub batch_size: u32,
    #[serde(default)]
    pub transform: Transform,
}

fn webhook() -> String {
    "webhook".into()
}

fn one() -> u32 {
    1
}

impl DestinationSpec {
    /// Checks every field against `policy`'s purposes and gives the destination a new
    /// signing secret. The error says what to fix.
    pub fn validate(self, policy: &Policy) -> Result<NewDestination, String> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err("a destination name must be 1 to 100 characters".into());
        }
        let kind = DestinationKind::parse(&self.kind)
            .ok_or_else(|| format!("unknown destination type {:?}: use webhook", self.kind))?;
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("--url {:?} is not a URL: {e}", self.url))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(format!(
                    "--url must be https://… or http://…, not {other}://"
                ))
            }
        }
        policy.check_purposes(&self.purposes)?;
        if let Some(unknown) = self
            .event_types
            .iter()
            .find(|t| EventType::parse(t).is_none())
        {
            return Err(format!(
                "unknown event type {unknown:?}: use track, identify, page, screen, group or alias"
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(format!("--batch must be 1 to {MAX_BATCH}"));
        }
        self.transform
            .validate()
            .map_err(|e| format!("the transform is not valid: {e}"))?;
        let transform = serde_json::to_value(&self.transform)
            .map_err(|e| format!("the transform cannot be stored: {e}"))?;
        Ok(NewDestination {
            name: self.name,
            kind,
            url: url.into(),
            purposes: self.purposes,
            event_types: self.event_types,
            event_names: self.event_names,
            batch_size: self.batch_size,
            transform,
            signing_secret: secret::generate("whsec_", SIGNING_SECRET_LEN),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DestinationSpec {
        DestinationSpec {
            name: "crm".into(),
            kind: "webhook".into(),
            url: "http://127.0.0.1:9000/hook".into(),
            purposes: vec!["analytics".into()],
            event_types: vec!["track".into()],
            event_names: vec![],
            batch_size: 1,
            transform: Transform::default(),
        }
    }

    #[test]
    fn a_valid_spec_gets_a_fresh_secret() {
        let policy = Policy::default();
        let a = spec().validate(&policy).unwrap();
        let b = spec().validate(&policy).unwrap();
        assert!(a.signing_secret.starts_with("whsec_"));
        assert_ne!(a.signing_secret, b.signing_secret);
        assert_eq!(a.url, "http://127.0.0.1:9000/hook");
    }

    #[test]
    fn bad_specs_say_what_to_fix() {
        let policy = Policy::default();
        /// A way to spoil a spec, and a word the error must contain.
        type Case = (fn(&mut DestinationSpec), &'static str);
        let cases: [Case; 7] = [
            (|s| s.name = " ".into(), "name"),
            (|s| s.kind = "kafka".into(), "webhook"),
            (|s| s.url = "not a url".into(), "not a URL"),
            (|s| s.url = "ftp://x/".into(), "http://"),
            (|s| s.purposes = vec!["ads".into()], "advertising"),
            (|s| s.event_types = vec!["click".into()], "track"),
            (|s| s.batch_size = 0, "--batch"),
        ];
        for (break_it, hint) in cases {
            let mut bad = spec();
            break_it(&mut bad);
            let err = bad.validate(&policy).unwrap_err();
            assert!(err.contains(hint), "{err}");
        }
    }
}
