//! Activation: consent-gated destinations fed from the event log.
//!
//! - [`gate`] (pure): a destination's event filter and the consent gate.
//! - [`vendor`] (pure): the destination types beside the webhook (GA4, Meta, TikTok,
//!   LinkedIn, Google Ads, the warehouse), each event
//!   mapped to the vendor's documented request, personal data hashed by its rules, and
//!   its answers classified by its error semantics.
//! - [`answer`] (pure): what an HTTP answer means for a delivery.
//! - [`signature`] (pure): the webhook's HMAC-SHA256 signature header.
//! - [`backoff`] (pure): retry delays and `Retry-After`.
//! - [`breaker`] (pure): the circuit breaker of one destination.
//! - [`transform`] (pure): what a destination does to an event before sending it.
//! - [`webhook`] (IO): one signed webhook request, or one vendor request, and its
//!   classified answer.
//! - [`warehouse`] (IO): one batch written into a warehouse's PostgreSQL tables.
//! - [`deliver`] (IO): a worker per destination reading the log from its checkpoint,
//!   retries, dead letters and replay.

pub mod answer;
pub mod backoff;
pub mod breaker;
pub mod deliver;
pub mod gate;
pub mod signature;
pub mod transform;
pub mod vendor;
pub mod warehouse;
pub mod webhook;

pub use breaker::{Breaker, BreakerConfig, Permit};
pub use deliver::{ConsentLedger, Deliverer, Settings, Tally};
pub use transform::{HashFormat, Transform};

use sightline_consent::Policy;
use sightline_core::{secret, DestinationKind, EventType, NewDestination};
use vendor::Vendor;

/// Signing secrets are this many random alphanumerics after `whsec_`.
const SIGNING_SECRET_LEN: usize = 40;
/// The largest `--batch`: with 32 KB events, a request stays under 32 MB.
pub const MAX_BATCH: u32 = 1000;

/// A destination as asked for on the command line, the API (JSON) or a TOML file, before
/// validation. In JSON and TOML the keys are the command line's options: `name`, `type`
/// (default `webhook`), `url`, `purposes`, `events`, `types`, `batch`, `transform`, and
/// for a vendor type `settings` (a table) and its credential as `credential` or as the
/// name of the environment variable holding it, `credential_env`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    pub name: String,
    #[serde(rename = "type", default = "webhook")]
    pub kind: String,
    /// Where requests go: required for a webhook; a vendor's documented endpoint when
    /// absent (set it to go through a proxy, or to a test server).
    #[serde(default)]
    pub url: Option<String>,
    /// Empty: a vendor type's default purposes (a webhook's: none).
    #[serde(default)]
    pub purposes: Vec<String>,
    #[serde(rename = "types", default)]
    pub event_types: Vec<String>,
    #[serde(rename = "events", default)]
    pub event_names: Vec<String>,
    /// Events per request: 1 for a webhook, the vendor's most for a vendor type.
    #[serde(rename = "batch", default)]
    pub batch_size: Option<u32>,
    #[serde(default)]
    pub transform: Transform,
    /// A vendor type's settings (GA4: `measurement_id`; Meta: `pixel_id`, …; TikTok:
    /// `pixel_code`, …; LinkedIn: `conversion_id`, …).
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// A vendor type's credential (GA4's API secret, Meta's, TikTok's or LinkedIn's access
    /// token).
    #[serde(default)]
    pub credential: Option<Credential>,
    /// The environment variable holding the credential, read by the command line
    /// ([`DestinationSpec::read_credential_env`]) and never by the server: the API must
    /// not be a way to read the server's environment.
    #[serde(default)]
    pub credential_env: Option<String>,
}

/// A vendor's credential, never shown back: kept out of `Debug`.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Credential(pub String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(***)")
    }
}

fn webhook() -> String {
    "webhook".into()
}

impl DestinationSpec {
    /// Takes the credential from the environment variable `credential_env` names, read by
    /// `lookup`.
    pub fn read_credential_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        if let Some(variable) = self.credential_env.take() {
            if self.credential.is_some() {
                return Err(format!(
                    "destination {:?} has both credential and credential_env: keep one",
                    self.name
                ));
            }
            let value = lookup(&variable)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    format!("the environment variable {variable} (credential_env) is not set")
                })?;
            self.credential = Some(Credential(value));
        }
        Ok(())
    }

    /// Checks every field against `policy`'s purposes; a webhook gets a new signing secret,
    /// a vendor type keeps its credential in the same place. The error says what to fix.
    pub fn validate(self, policy: &Policy) -> Result<NewDestination, String> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err("a destination name must be 1 to 100 characters".into());
        }
        let kind = DestinationKind::parse(&self.kind).ok_or_else(|| {
            let known: Vec<_> = DestinationKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "unknown destination type {:?}: use {}",
                self.kind,
                known.join(", ")
            )
        })?;
        let url = match (&self.url, Vendor::default_endpoint(kind)) {
            (Some(url), _) => url.clone(),
            (None, Some(endpoint)) => endpoint.to_owned(),
            (None, None) if kind == DestinationKind::Warehouse => {
                return Err(
                    "a warehouse needs --url: its database, postgres://user@host:5432/db".into(),
                )
            }
            (None, None) => return Err("a webhook needs --url: where events are POSTed".into()),
        };
        let url =
            reqwest::Url::parse(&url).map_err(|e| format!("--url {url:?} is not a URL: {e}"))?;
        match (kind, url.scheme()) {
            (DestinationKind::Warehouse, "postgres" | "postgresql") => {
                if url.password().is_some() {
                    return Err("keep the password out of --url: give it as the destination's credential (--credential-env)".into());
                }
                vendor::warehouse::connection(url.as_str())?;
            }
            (DestinationKind::Warehouse, other) => {
                return Err(format!(
                    "a warehouse's --url is its PostgreSQL database, postgres://user@host:5432/db, not {other}://…"
                ))
            }
            (_, "http" | "https") => {}
            (_, other) => {
                return Err(format!(
                    "--url must be https://… or http://…, not {other}://"
                ))
            }
        }
        let purposes = if self.purposes.is_empty() {
            Vendor::default_purposes(kind)
                .iter()
                .map(|p| (*p).to_owned())
                .collect()
        } else {
            self.purposes
        };
        policy.check_purposes(&purposes)?;
        if let Some(unknown) = self
            .event_types
            .iter()
            .find(|t| EventType::parse(t).is_none())
        {
            return Err(format!(
                "unknown event type {unknown:?}: use track, identify, page, screen, group or alias"
            ));
        }
        let most = Vendor::max_batch(kind).unwrap_or(MAX_BATCH);
        let batch_size = self.batch_size.unwrap_or(match kind {
            DestinationKind::Webhook => 1,
            _ => most,
        });
        if !(1..=most).contains(&batch_size) {
            return Err(format!(
                "--batch must be 1 to {most} for a {} destination",
                kind.as_str()
            ));
        }
        self.transform
            .validate()
            .map_err(|e| format!("the transform is not valid: {e}"))?;
        let transform = serde_json::to_value(&self.transform)
            .map_err(|e| format!("the transform cannot be stored: {e}"))?;
        if self.credential_env.is_some() {
            return Err(
                "credential_env is read by the command line only: send the credential itself"
                    .into(),
            );
        }
        let settings = Vendor::check(kind, &self.settings)?;
        let signing_secret = match (kind, self.credential) {
            (DestinationKind::Webhook, None) => secret::generate("whsec_", SIGNING_SECRET_LEN),
            (DestinationKind::Webhook, Some(_)) => {
                return Err(
                    "a webhook takes no credential: Sightline makes its signing secret".into(),
                )
            }
            (_, Some(Credential(credential))) if !credential.trim().is_empty() => {
                Vendor::check_credential(kind, credential.trim())?;
                credential.trim().to_owned()
            }
            (_, _) => {
                return Err(format!(
                    "a {} destination needs its credential ({}): give the name of the \
                     environment variable holding it with --credential-env",
                    kind.as_str(),
                    credential_name(kind)
                ))
            }
        };
        Ok(NewDestination {
            name: self.name,
            kind,
            url: url.into(),
            purposes,
            event_types: self.event_types,
            event_names: self.event_names,
            batch_size,
            transform,
            settings,
            signing_secret,
        })
    }
}

/// What a vendor type's credential is called in the vendor's own console.
pub fn credential_name(kind: DestinationKind) -> &'static str {
    match kind {
        DestinationKind::Webhook => "none: Sightline makes the signing secret",
        DestinationKind::Ga4 => "the Measurement Protocol API secret",
        DestinationKind::Meta => "a Conversions API access token",
        DestinationKind::Tiktok => "an Events API access token",
        DestinationKind::Linkedin => "an OAuth access token with the rw_conversions scope",
        DestinationKind::GoogleAds => {
            "DEVELOPER_TOKEN:ACCESS_TOKEN (the developer token, an OAuth access token)"
        }
        DestinationKind::Warehouse => "the password of the database user in --url",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DestinationSpec {
        DestinationSpec {
            name: "crm".into(),
            kind: "webhook".into(),
            url: Some("http://127.0.0.1:9000/hook".into()),
            purposes: vec!["analytics".into()],
            event_types: vec!["track".into()],
            event_names: vec![],
            batch_size: None,
            transform: Transform::default(),
            settings: serde_json::Map::new(),
            credential: None,
            credential_env: None,
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
    fn a_vendor_type_has_its_endpoint_purposes_batch_and_credential() {
        let mut ga4 = spec();
        ga4.kind = "ga4".into();
        ga4.url = None;
        ga4.purposes = vec![];
        ga4.settings.insert("measurement_id".into(), "G-ABC".into());
        ga4.credential = Some(Credential(" api-secret ".into()));
        let new = ga4.clone().validate(&Policy::default()).unwrap();
        assert_eq!(new.url, vendor::ga4::ENDPOINT);
        assert_eq!(new.purposes, ["analytics"]);
        assert_eq!(new.batch_size, vendor::ga4::MAX_EVENTS);
        assert_eq!(new.signing_secret, "api-secret");
        assert_eq!(new.settings, serde_json::json!({"measurement_id": "G-ABC"}));
        assert!(!format!("{ga4:?}").contains("api-secret"));
        ga4.purposes = vec!["analytics".into(), "advertising".into()];
        ga4.batch_size = Some(26);
        let err = ga4.clone().validate(&Policy::default()).unwrap_err();
        assert!(err.contains("1 to 25"), "{err}");
        ga4.batch_size = Some(10);
        let new = ga4.validate(&Policy::default()).unwrap();
        assert_eq!(new.purposes, ["analytics", "advertising"]);

        let mut meta = spec();
        meta.kind = "meta".into();
        meta.url = None;
        meta.purposes = vec![];
        meta.settings.insert("pixel_id".into(), "123".into());
        meta.credential = Some(Credential("EAAtoken".into()));
        let new = meta.validate(&Policy::default()).unwrap();
        assert_eq!(new.purposes, ["advertising"]);
        assert_eq!(new.batch_size, 1000);
        assert_eq!(
            new.settings,
            serde_json::json!({"pixel_id": "123", "api_version": "v25.0", "action_source": "website"})
        );

        let mut tiktok = spec();
        tiktok.kind = "tiktok".into();
        tiktok.url = None;
        tiktok.purposes = vec![];
        tiktok
            .settings
            .insert("pixel_code".into(), "C4ABCDEF".into());
        tiktok.credential = Some(Credential("tt-token".into()));
        let new = tiktok.validate(&Policy::default()).unwrap();
        assert_eq!(new.url, vendor::tiktok::ENDPOINT);
        assert_eq!(new.purposes, ["advertising"]);
        assert_eq!(new.batch_size, 1000);
        assert_eq!(new.settings, serde_json::json!({"pixel_code": "C4ABCDEF"}));

        let mut linkedin = spec();
        linkedin.kind = "linkedin".into();
        linkedin.url = None;
        linkedin.purposes = vec![];
        linkedin
            .settings
            .insert("conversion_id".into(), "104012".into());
        linkedin.credential = Some(Credential("li-token".into()));
        let new = linkedin.clone().validate(&Policy::default()).unwrap();
        assert_eq!(new.url, vendor::linkedin::ENDPOINT);
        assert_eq!(new.purposes, ["advertising"]);
        assert_eq!(new.batch_size, 1000);
        assert_eq!(
            new.settings,
            serde_json::json!({"conversion_id": "104012", "api_version": "202611"})
        );
        linkedin.credential = None;
        let err = linkedin.validate(&Policy::default()).unwrap_err();
        assert!(err.contains("rw_conversions"), "{err}");

        let mut google = spec();
        google.kind = "google_ads".into();
        google.url = None;
        google.purposes = vec![];
        google
            .settings
            .insert("customer_id".into(), "1234567890".into());
        google
            .settings
            .insert("conversion_action_id".into(), "987654".into());
        google.credential = Some(Credential("ya29-without-developer-token".into()));
        let err = google.clone().validate(&Policy::default()).unwrap_err();
        assert!(err.contains("DEVELOPER_TOKEN:ACCESS_TOKEN"), "{err}");
        assert!(!err.contains("ya29"), "{err}");
        google.credential = Some(Credential("dev:ya29".into()));
        let new = google.validate(&Policy::default()).unwrap();
        // A URL without a path gets its `/`; the request trims it.
        assert_eq!(new.url, format!("{}/", vendor::google_ads::ENDPOINT));
        assert_eq!(new.purposes, ["advertising"]);
        assert_eq!(new.batch_size, 1000);
        assert_eq!(new.settings["api_version"], "v22");
    }

    #[test]
    fn the_command_line_reads_a_credential_from_the_environment() {
        let mut from_env = spec();
        from_env.credential_env = Some("GA4_SECRET".into());
        let lookup = |name: &str| (name == "GA4_SECRET").then(|| "s3cret".to_owned());
        from_env.read_credential_env(lookup).unwrap();
        assert!(matches!(&from_env.credential, Some(Credential(c)) if c == "s3cret"));
        assert_eq!(from_env.credential_env, None);
        let mut unset = spec();
        unset.credential_env = Some("NOT_SET".into());
        let err = unset.read_credential_env(lookup).unwrap_err();
        assert!(err.contains("NOT_SET"), "{err}");
    }

    #[test]
    fn a_warehouse_is_a_postgresql_url_a_schema_and_a_password() {
        let policy = Policy::default();
        let warehouse = |url: Option<&str>, schema: Option<&str>| {
            let mut spec = spec();
            spec.kind = "warehouse".into();
            spec.url = url.map(str::to_owned);
            if let Some(schema) = schema {
                spec.settings.insert("schema".into(), schema.into());
            }
            spec.credential = Some(Credential("pw".into()));
            spec.validate(&policy)
        };
        let new = warehouse(Some("postgres://loader@db:5432/analytics"), Some("web")).unwrap();
        assert_eq!(new.kind, DestinationKind::Warehouse);
        assert_eq!(new.purposes, ["analytics"]);
        assert_eq!(new.batch_size, vendor::warehouse::MAX_EVENTS);
        assert_eq!(new.signing_secret, "pw");
        for (url, schema, hint) in [
            (None, Some("web"), "postgres://user@host"),
            (Some("https://db/"), Some("web"), "not https://"),
            (
                Some("postgres://loader:pw@db/a"),
                Some("web"),
                "keep the password out",
            ),
            (Some("postgres://db/a"), None, "schema"),
            (Some("postgres://db/a"), Some("Web"), "lowercase"),
        ] {
            let err = warehouse(url, schema).unwrap_err();
            assert!(err.contains(hint), "{err}");
        }
    }

    #[test]
    fn bad_specs_say_what_to_fix() {
        let policy = Policy::default();
        /// A way to spoil a spec, and a word the error must contain.
        type Case = (fn(&mut DestinationSpec), &'static str);
        let cases: [Case; 13] = [
            (
                |s| s.credential_env = Some("HOME".into()),
                "command line only",
            ),
            (|s| s.name = " ".into(), "name"),
            (
                |s| s.kind = "kafka".into(),
                "webhook, ga4, meta, tiktok, linkedin",
            ),
            (|s| s.url = Some("not a url".into()), "not a URL"),
            (|s| s.url = Some("ftp://x/".into()), "http://"),
            (|s| s.url = None, "needs --url"),
            (|s| s.purposes = vec!["ads".into()], "advertising"),
            (|s| s.event_types = vec!["click".into()], "track"),
            (|s| s.batch_size = Some(0), "--batch"),
            (|s| s.batch_size = Some(1001), "1 to 1000"),
            (
                |s| s.credential = Some(Credential("x".into())),
                "no credential",
            ),
            (|s| s.kind = "ga4".into(), "measurement_id"),
            (
                |s| {
                    s.kind = "ga4".into();
                    s.settings.insert("measurement_id".into(), "G-1".into());
                },
                "--credential-env",
            ),
        ];
        for (break_it, hint) in cases {
            let mut bad = spec();
            break_it(&mut bad);
            let err = bad.validate(&policy).unwrap_err();
            assert!(err.contains(hint), "{err}");
        }
    }
}
