//! What a scan observed, as plain data: the browser driver fills it in, the finding rules and
//! the report read it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::vendor::Category;

/// The consent scenarios a journey is scanned under: the four built-in ones and the custom
/// per-purpose choices a journey defines (`[consent.custom.NAME]`, named `custom:NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Scenario {
    NoInteraction,
    AcceptAll,
    RejectAll,
    Gpc,
    /// A per-purpose choice of the journey file, by its table name.
    Custom(String),
}

impl Scenario {
    /// The built-in scenarios, in the order a scan runs them.
    pub const ALL: [Scenario; 4] = [
        Scenario::NoInteraction,
        Scenario::AcceptAll,
        Scenario::RejectAll,
        Scenario::Gpc,
    ];

    pub fn name(&self) -> String {
        match self {
            Scenario::NoInteraction => "no-interaction".into(),
            Scenario::AcceptAll => "accept-all".into(),
            Scenario::RejectAll => "reject-all".into(),
            Scenario::Gpc => "gpc".into(),
            Scenario::Custom(name) => format!("custom:{name}"),
        }
    }

    /// Parses a scenario name as given on the command line (`custom:NAME` for a custom one).
    pub fn parse(name: &str) -> Option<Scenario> {
        if let Some(custom) = name.strip_prefix("custom:") {
            return valid_custom_name(custom).then(|| Scenario::Custom(custom.to_owned()));
        }
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// [`Scenario::parse`], or what to write instead: the one message of every place a
    /// scenario is named (command line, journey file, schedules).
    pub fn parse_or_explain(name: &str) -> Result<Scenario, String> {
        Scenario::parse(name).ok_or_else(|| {
            format!(
                "unknown scenario {name:?}: use no-interaction, accept-all, reject-all, gpc or \
                 custom:NAME (NAME of letters, digits, - and _)"
            )
        })
    }
}

/// Custom scenario names become directory names (screenshots) and command-line arguments:
/// letters, digits, `-` and `_` only.
pub fn valid_custom_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl From<Scenario> for String {
    fn from(s: Scenario) -> String {
        s.name()
    }
}

impl TryFrom<String> for Scenario {
    type Error = String;

    fn try_from(name: String) -> Result<Scenario, String> {
        Scenario::parse_or_explain(&name)
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// One network request as seen through CDP `Network.*` events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestRecord {
    pub url: String,
    pub method: String,
    /// CDP resource type: Document, Script, Image, XHR, Fetch, Ping, …
    pub resource_type: String,
    pub status: Option<i64>,
    /// Why the request failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// CDP initiator type: parser, script, preload, other, …
    pub initiator_type: String,
    /// The script (or document) that caused this request.
    pub initiator_url: Option<String>,
    /// This request, then the script that loaded it, then the script that loaded that one, …
    /// down to the first-party page.
    pub initiator_chain: Vec<String>,
    pub third_party: bool,
    pub vendor: Option<String>,
    pub category: Option<Category>,
    /// `Set-Cookie` lines of the response as they crossed the wire.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set_cookies: Vec<String>,
    /// Encoded bytes received.
    pub bytes: u64,
    /// Sent before the consent click of this scenario (only ever true on the first step).
    pub before_consent: bool,
    /// The `Referer` header sent, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referer: Option<String>,
    /// Request body, when the browser exposed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_body: Option<String>,
    /// Request headers as sent (names lowercased; CDP `requestWillBeSent` and the wire-level
    /// `requestWillBeSentExtraInfo`, which adds `Cookie`); kept for third-party requests only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl RequestRecord {
    pub fn host(&self) -> String {
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// A request still in flight when its step ended: its response, or the rest of it, had not
/// come by the time the step settled (or gave up settling, at `settle_cap`, or its page load
/// at the step timeout). The step is scanned with what arrived; this says what did not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingRequest {
    pub url: String,
    /// CDP resource type, as on [`RequestRecord`].
    pub resource_type: String,
    /// The response status when the headers came but the body did not finish.
    pub status: Option<i64>,
    pub third_party: bool,
    /// Catalog vendor of a third-party host, when known.
    pub vendor: Option<String>,
}

/// A cookie in the browser after a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CookieRecord {
    pub name: String,
    pub domain: String,
    pub path: String,
    /// Expiry as Unix seconds; `None` for a session cookie.
    pub expires: Option<f64>,
    pub third_party: bool,
    pub vendor: Option<String>,
}

/// A localStorage entry of a frame's origin after a step. localStorage never expires, so
/// unlike a cookie it has no expiry: it stays until a script or the visitor removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageRecord {
    /// The frame origin that holds it (the page's, or an iframe's).
    pub origin: String,
    pub key: String,
    /// The value, cut to its first 200 characters.
    pub value: String,
    pub third_party: bool,
    pub vendor: Option<String>,
}

/// Timings of one step in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// From navigation start to the page's `load` event.
    pub load_ms: u64,
    /// Whole step: navigation, actions and the quiet period that settled it.
    pub total_ms: u64,
    /// `load_ms` of the same step with every third-party request blocked, when measured
    /// (`ScanOptions::tag_cost`, no-interaction scenario): the latency the tags cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms_third_parties_blocked: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepEvidence {
    pub name: String,
    pub url: String,
    pub requests: Vec<RequestRecord>,
    pub cookies: Vec<CookieRecord>,
    pub local_storage: Vec<StorageRecord>,
    pub timing: StepTiming,
    /// What stopped the step, when something did; later steps were then not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Requests still in flight when the step ended, in the order they started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingRequest>,
    /// External scripts the step ran (CDP `Debugger.scriptParsed`); input to duplicate_tag.
    #[serde(skip)]
    pub scripts_run: Vec<ScriptRun>,
    /// PNG of the viewport once the step settled (CDP `Page.captureScreenshot`); the report
    /// writes it beside report.json.
    #[serde(skip)]
    pub screenshot: Option<Vec<u8>>,
}

/// One run of an external script, in one JavaScript execution context (one document).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptRun {
    pub context: i64,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioEvidence {
    pub scenario: Scenario,
    pub steps: Vec<StepEvidence>,
    /// Set when the scenario did not run to its end; the steps hold what was captured.
    pub incomplete: Option<String>,
    /// The consent banner the scanner operated through its CMP (accept-all and reject-all
    /// of a journey that names no selectors for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<crate::cmp::Banner>,
}

/// Fills in every request's initiator chain by following initiator URLs back through the
/// requests that loaded them (in order, across the steps of one scenario, so a step's scripts
/// resolve to the loads that preceded them). Stops at a URL no request loaded (the page) or
/// on a cycle, and never goes deeper than `MAX_CHAIN`.
pub fn link_initiator_chains(steps: &mut [StepEvidence]) {
    const MAX_CHAIN: usize = 12;
    let mut initiator_of: HashMap<String, Option<String>> = HashMap::new();
    for step in steps.iter_mut() {
        for req in step.requests.iter_mut() {
            let mut chain = vec![req.url.clone()];
            let mut next = req.initiator_url.clone();
            while let Some(url) = next.take() {
                if chain.contains(&url) || chain.len() >= MAX_CHAIN {
                    break;
                }
                next = initiator_of.get(&url).cloned().flatten();
                chain.push(url);
            }
            req.initiator_chain = chain;
            initiator_of.insert(req.url.clone(), req.initiator_url.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str, initiator: Option<&str>) -> RequestRecord {
        RequestRecord {
            url: url.into(),
            initiator_url: initiator.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn chains_follow_scripts_down_to_the_page() {
        let page = "http://www.shop.test/";
        let gtm = "http://www.googletagmanager.com/gtm.js?id=GTM-1";
        let tt = "http://analytics.tiktok.com/events.js";
        let beacon = "http://analytics.tiktok.com/collect?e=pv";
        let mut steps = vec![StepEvidence {
            requests: vec![
                req(page, None),
                req(gtm, Some(page)),
                req(tt, Some(gtm)),
                req(beacon, Some(tt)),
            ],
            ..Default::default()
        }];
        link_initiator_chains(&mut steps);
        assert_eq!(steps[0].requests[0].initiator_chain, vec![page]);
        assert_eq!(
            steps[0].requests[3].initiator_chain,
            vec![beacon, tt, gtm, page]
        );
    }

    #[test]
    fn chains_survive_cycles() {
        let mut steps = vec![StepEvidence {
            requests: vec![
                req("http://a/", Some("http://b/")),
                req("http://b/", Some("http://a/")),
            ],
            ..Default::default()
        }];
        link_initiator_chains(&mut steps);
        assert_eq!(
            steps[0].requests[1].initiator_chain,
            vec!["http://b/", "http://a/"]
        );
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(&s.name()), Some(s));
        }
        assert_eq!(Scenario::parse("custom"), None);
        assert_eq!(Scenario::parse("custom:"), None);
        assert_eq!(Scenario::parse("custom:a/b"), None);
        let custom = Scenario::parse("custom:analytics-only").unwrap();
        assert_eq!(custom, Scenario::Custom("analytics-only".into()));
        assert_eq!(custom.name(), "custom:analytics-only");
        let json = serde_json::to_string(&custom).unwrap();
        assert_eq!(json, "\"custom:analytics-only\"");
        assert_eq!(serde_json::from_str::<Scenario>(&json).unwrap(), custom);
        assert!(serde_json::from_str::<Scenario>("\"sometimes\"").is_err());
    }
}
