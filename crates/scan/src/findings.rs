//! The finding rules: pure functions from captured evidence to findings, one per kind.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::evidence::{CookieRecord, RequestRecord, Scenario, ScenarioEvidence, StepEvidence};
use crate::pii::{decode_form, decode_url, PiiNeedles};
use crate::vendor::Category;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// As typed on the command line (`scan --fail-on`): any case.
    pub fn parse(s: &str) -> Option<Severity> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// Its serde name (`low`, `medium`, `high`, `critical`).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Exactly its serde name, as the governance registry's filters take it.
    pub fn from_name(text: &str) -> Option<Severity> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// Finding kinds, named as PRODUCT.md fixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    PreConsent,
    AfterReject,
    GpcIgnored,
    ConsentNotPropagated,
    ShadowVendor,
    ZombieTag,
    DuplicateTag,
    PiiLeak,
    FourthParty,
    CnameCloaking,
    /// A vendor whose tag the registry rejected or retired still fires.
    RevokedTag,
    /// A tag classified questionable fires under reject-all: someone should review it.
    QuestionableTag,
    /// An approved tag does not fire on a step it is registered for (accept-all).
    MissingTag,
    /// The scenario's consent choice could not be made on the page's banner: its
    /// evidence is a visitor who made no choice, and it is not judged as the choice.
    BannerNotOperated,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::PreConsent => "pre_consent",
            FindingKind::AfterReject => "after_reject",
            FindingKind::GpcIgnored => "gpc_ignored",
            FindingKind::ConsentNotPropagated => "consent_not_propagated",
            FindingKind::ShadowVendor => "shadow_vendor",
            FindingKind::ZombieTag => "zombie_tag",
            FindingKind::DuplicateTag => "duplicate_tag",
            FindingKind::PiiLeak => "pii_leak",
            FindingKind::FourthParty => "fourth_party",
            FindingKind::CnameCloaking => "cname_cloaking",
            FindingKind::RevokedTag => "revoked_tag",
            FindingKind::QuestionableTag => "questionable_tag",
            FindingKind::MissingTag => "missing_tag",
            FindingKind::BannerNotOperated => "banner_not_operated",
        }
    }
}

/// What proves a finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingEvidence {
    /// URL of the offending request.
    pub request: Option<String>,
    /// The request, the script that loaded it, … down to the first-party page.
    pub initiator_chain: Vec<String>,
    /// A cookie the vendor holds after the step, when it has one.
    pub cookie: Option<CookieRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    /// `None` for journey-wide findings (zombie tags).
    pub scenario: Option<Scenario>,
    pub step: Option<String>,
    pub vendor: String,
    /// One sentence a person can act on.
    pub message: String,
    pub evidence: FindingEvidence,
}

/// A tag of the governance registry, as the rules judge the vendor it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryTag {
    /// The vendor, as the catalog names it (matched without regard to case).
    pub vendor: String,
    pub status: TagState,
    pub class: TagClass,
    /// The purpose the tag waits for, when it is one the scanner judges (a catalog
    /// category that needs consent); it replaces the catalog's category for the vendor.
    pub consent_purpose: Option<Category>,
    /// The steps of this journey it is registered to fire on.
    pub steps: Vec<String>,
}

/// Where a tag stands in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagState {
    Proposed,
    Approved,
    Rejected,
    Retired,
}

/// A tag's classification in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagClass {
    /// Needs no consent: expected under reject-all.
    Essential,
    Optional,
    Questionable,
}

/// What the rules need besides the evidence.
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    /// Vendor names the journey declares; `None` skips the inventory rules.
    pub inventory: Option<Vec<String>>,
    /// The registry's tags: when given, they are the inventory (`inventory` is not read),
    /// and each tag's classification and consent purpose decide the consent rules for
    /// its vendor.
    pub tags: Option<Vec<InventoryTag>>,
    /// Values typed during the journey.
    pub pii: PiiNeedles,
    /// First-party hosts whose CNAME chain ends at a vendor that needs consent.
    pub cloaked: HashMap<String, Cloaked>,
    /// The purposes each custom scenario refuses, by its name (without `custom:`).
    pub refusals: BTreeMap<String, Vec<Category>>,
}

/// A first-party host that is a vendor in disguise.
#[derive(Debug, Clone, PartialEq)]
pub struct Cloaked {
    /// The CNAME target that belongs to the vendor.
    pub target: String,
    pub vendor: String,
}

/// Runs every rule over every scenario's evidence; one finding per kind, scenario, step and
/// vendor (the first request that proves it), in a stable order.
pub fn evaluate(scenarios: &[ScenarioEvidence], input: &RuleInput) -> Vec<Finding> {
    let mut out = Vec::new();
    let judged;
    let scenarios = match &input.tags {
        Some(tags) => {
            judged = as_registered(scenarios, tags);
            &judged[..]
        }
        None => scenarios,
    };
    for sc in scenarios {
        if let Some(banner) = sc.banner.as_ref().filter(|b| !b.made) {
            out.push(banner_not_operated(sc, banner));
        }
        for step in &sc.steps {
            let scenario = &sc.scenario;
            if operated(sc) {
                consent_rules(scenario, step, &input.refusals, &mut out);
            }
            duplicate_tags(scenario, step, &mut out);
            pii_leaks(scenario, step, &input.pii, &mut out);
            fourth_parties(scenario, step, &mut out);
            cname_cloaking(scenario, step, &input.cloaked, &mut out);
        }
    }
    match (&input.tags, &input.inventory) {
        (Some(tags), _) => registry_rules(scenarios, tags, &mut out),
        (None, Some(inventory)) => inventory_rules(scenarios, inventory, &mut out),
        (None, None) => {}
    }
    let mut seen = HashSet::new();
    out.retain(|f| seen.insert((f.kind, f.scenario.clone(), f.step.clone(), f.vendor.clone())));
    out
}

/// Whether the scenario's consent choice was made (or needed no banner): a scenario whose
/// banner could not be operated is judged by no consent rule, since its visitor made no
/// choice.
fn operated(sc: &ScenarioEvidence) -> bool {
    sc.banner.as_ref().is_none_or(|b| b.made)
}

fn banner_not_operated(sc: &ScenarioEvidence, banner: &crate::cmp::Banner) -> Finding {
    let why = banner
        .detail
        .clone()
        .unwrap_or_else(|| "the choice could not be made".into());
    Finding {
        kind: FindingKind::BannerNotOperated,
        severity: Severity::Medium,
        scenario: Some(sc.scenario.clone()),
        step: sc.steps.first().map(|s| s.name.clone()),
        vendor: banner.cmp.clone().unwrap_or_else(|| "consent banner".into()),
        message: format!(
            "the {} scenario could not make its consent choice: {why}; its requests are those of a visitor who made none, and no consent rule judged them",
            sc.scenario
        ),
        evidence: FindingEvidence::default(),
    }
}

/// The name a request is reported under: its catalog vendor, else its host.
fn vendor_name(r: &RequestRecord) -> String {
    r.vendor.clone().unwrap_or_else(|| r.host())
}

fn needs_consent(r: &RequestRecord) -> bool {
    r.third_party && r.category.is_some_and(Category::needs_consent)
}

fn finding(
    kind: FindingKind,
    severity: Severity,
    scenario: &Scenario,
    step: &StepEvidence,
    r: &RequestRecord,
    message: String,
) -> Finding {
    let vendor = vendor_name(r);
    let cookie = step
        .cookies
        .iter()
        .find(|c| c.vendor.as_deref() == Some(vendor.as_str()))
        .cloned();
    Finding {
        kind,
        severity,
        scenario: Some(scenario.clone()),
        step: Some(step.name.clone()),
        vendor,
        message,
        evidence: FindingEvidence {
            request: Some(r.url.clone()),
            initiator_chain: r.initiator_chain.clone(),
            cookie,
        },
    }
}

/// What a scenario's consent choice refuses: nothing for no-interaction and gpc (no choice
/// is made), every purpose for reject-all, the ungranted purposes of a custom choice.
fn refused_purposes(
    scenario: &Scenario,
    refusals: &BTreeMap<String, Vec<Category>>,
) -> Vec<Category> {
    match scenario {
        Scenario::RejectAll => Category::PURPOSES.to_vec(),
        Scenario::Custom(name) => refusals.get(name).cloned().unwrap_or_default(),
        Scenario::NoInteraction | Scenario::AcceptAll | Scenario::Gpc => Vec::new(),
    }
}

/// The Consent Mode signals that may not say "granted" when these purposes are refused.
fn refused_signals(refused: &[Category]) -> Vec<&'static str> {
    let mut signals = Vec::new();
    if refused.contains(&Category::Advertising) {
        signals.extend(["ad_storage", "ad_user_data", "ad_personalization"]);
    }
    if refused.contains(&Category::Analytics) {
        signals.push("analytics_storage");
    }
    signals
}

/// pre_consent, after_reject, gpc_ignored and consent_not_propagated. A custom choice's
/// refused purposes are judged like reject-all's: their vendors firing after the choice are
/// `after_reject`, named with the refused purpose.
fn consent_rules(
    scenario: &Scenario,
    step: &StepEvidence,
    refusals: &BTreeMap<String, Vec<Category>>,
    out: &mut Vec<Finding>,
) {
    let refused = refused_purposes(scenario, refusals);
    let signals = refused_signals(&refused);
    for r in &step.requests {
        let v = vendor_name(r);
        let pre_consent = match scenario {
            Scenario::NoInteraction => true,
            Scenario::AcceptAll | Scenario::Custom(_) => r.before_consent,
            Scenario::RejectAll | Scenario::Gpc => false,
        };
        if pre_consent && needs_consent(r) {
            out.push(finding(
                FindingKind::PreConsent,
                Severity::High,
                scenario,
                step,
                r,
                format!("{v} loads before the visitor gave consent"),
            ));
        }
        let refused_category = r.category.filter(|c| refused.contains(c));
        if let (Some(category), false, true) =
            (refused_category, r.before_consent, needs_consent(r))
        {
            let message = match scenario {
                Scenario::RejectAll => format!("{v} loads after the visitor rejected all"),
                _ => format!(
                    "{v} ({}) loads after the visitor refused {} ({scenario})",
                    category.name(),
                    category.name()
                ),
            };
            out.push(finding(
                FindingKind::AfterReject,
                Severity::High,
                scenario,
                step,
                r,
                message,
            ));
        }
        if *scenario == Scenario::Gpc
            && r.third_party
            && r.category.is_some_and(Category::is_sale_or_sharing)
        {
            out.push(finding(
                FindingKind::GpcIgnored,
                Severity::High,
                scenario,
                step,
                r,
                format!("{v} (sale/sharing) loads although the browser sends Sec-GPC: 1"),
            ));
        }
        if !signals.is_empty() && !r.before_consent && r.third_party {
            let said = consent_mode_of(&r.url);
            let wrong: Vec<&str> = signals
                .iter()
                .copied()
                .filter(|s| said.granted.contains(s))
                .collect();
            if !wrong.is_empty() {
                let choice = match scenario {
                    Scenario::RejectAll => "reject-all".to_owned(),
                    _ => format!("{scenario} refused them"),
                };
                out.push(finding(
                    FindingKind::ConsentNotPropagated,
                    Severity::Medium,
                    scenario,
                    step,
                    r,
                    format!(
                        "{v} request says {} (storage granted: {}) after {choice}",
                        said.parameters.join(" "),
                        wrong.join(", ")
                    ),
                ));
            }
        }
    }
}

/// What a Google tag request's `gcs` and `gcd` parameters say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentModeSaid {
    /// Consent Mode signals stated as granted (the state in force: `gcd`'s update, else its
    /// default; `gcd` wins over `gcs` where both speak).
    pub granted: Vec<&'static str>,
    /// The parameters read, as `name=value`, for the evidence.
    pub parameters: Vec<String>,
}

/// Reads `gcs` (`G1xy`, documented by Google) and `gcd` (four letters for ad_storage,
/// analytics_storage, ad_user_data and ad_personalization; `gcs` lacks the last two) from a
/// URL. The `gcd` letter table is reverse-engineered, not documented: it is the one in
/// `sightline_consent::google` (from Markus Baersch's Consent Mode FAQ, "Consent Mode V2 For
/// Google Tags", simoahava.com, 2024), checked here against the independent decoder of
/// Analytics Debugger's "Google Consent Parser" (github.com/analytics-debugger/
/// gtm-template-server-side-google-consent-parser, README "Bitwise Operations": a letter's
/// base64url index v gives default = (v >> 2) & 3 and update = v & 3, with 1 not set,
/// 2 denied, 3 granted) by the test `gcd_letters_match_the_bitwise_decoding`. A malformed or
/// unknown parameter is ignored, never an error: the rule only reports what it can read.
pub fn consent_mode_of(url: &str) -> ConsentModeSaid {
    use sightline_consent::{Gcd, Gcs, Grant};
    let mut said = ConsentModeSaid::default();
    let Ok(u) = url::Url::parse(url) else {
        return said;
    };
    let mut state: BTreeMap<&'static str, Grant> = BTreeMap::new();
    let (mut gcs, mut gcd) = (None, None);
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "gcs" => gcs = Some(v.into_owned()),
            "gcd" => gcd = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(value) = gcs {
        if let Ok(parsed) = Gcs::parse(&value) {
            state.insert("ad_storage", parsed.ad_storage);
            state.insert("analytics_storage", parsed.analytics_storage);
            said.parameters.push(format!("gcs={value}"));
        }
    }
    if let Some(value) = gcd {
        if let Ok(parsed) = Gcd::parse(&value) {
            for (name, signal) in [
                ("ad_storage", parsed.ad_storage),
                ("analytics_storage", parsed.analytics_storage),
                ("ad_user_data", parsed.ad_user_data),
                ("ad_personalization", parsed.ad_personalization),
            ] {
                if let Some(grant) = signal.effective() {
                    state.insert(name, grant);
                }
            }
            said.parameters.push(format!("gcd={value}"));
        }
    }
    said.granted = [
        "ad_storage",
        "analytics_storage",
        "ad_user_data",
        "ad_personalization",
    ]
    .into_iter()
    .filter(|s| state.get(s) == Some(&Grant::Granted))
    .collect();
    said
}

/// The same vendor script or container loaded more than once on a step: requested twice,
/// or run twice in one document (a second identical `<script src>` is served from Blink's
/// memory cache without a request, but still runs).
fn duplicate_tags(scenario: &Scenario, step: &StepEvidence, out: &mut Vec<Finding>) {
    let vendor_script = |url: &str| {
        step.requests
            .iter()
            .find(|r| r.url == url && r.third_party && r.vendor.is_some())
    };
    let mut requested = HashSet::new();
    let requested_twice = step
        .requests
        .iter()
        .filter(|r| r.resource_type == "Script" && r.third_party && r.vendor.is_some())
        .filter(|r| !requested.insert(tag_key(&r.url)));
    let mut ran = HashSet::new();
    let ran_twice = step
        .scripts_run
        .iter()
        .filter(|s| !ran.insert((s.context, tag_key(&s.url))))
        .filter_map(|s| vendor_script(&s.url));
    for r in requested_twice.chain(ran_twice) {
        out.push(finding(
            FindingKind::DuplicateTag,
            Severity::Low,
            scenario,
            step,
            r,
            format!(
                "{} tag {} is loaded more than once on this step",
                vendor_name(r),
                tag_key(&r.url)
            ),
        ));
    }
}

/// Identifies one tag: host and path plus the container or measurement id, so cache-busting
/// parameters do not hide a duplicate and two different containers are not one.
fn tag_key(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let id = u
                .query_pairs()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| format!("?id={v}"))
                .unwrap_or_default();
            format!("{}{}{id}", u.host_str().unwrap_or_default(), u.path())
        }
        Err(_) => url.to_owned(),
    }
}

/// Personal data typed on the journey (or any email) sent to a third party.
fn pii_leaks(scenario: &Scenario, step: &StepEvidence, pii: &PiiNeedles, out: &mut Vec<Finding>) {
    for r in step.requests.iter().filter(|r| r.third_party) {
        let hit = pii
            .find(&decode_url(&r.url))
            .map(|h| (h, "URL".to_owned()))
            .or_else(|| {
                let body = r.post_body.as_deref()?;
                pii.find(body)
                    .or_else(|| pii.find(&decode_form(body)))
                    .map(|h| (h, "body".to_owned()))
            })
            .or_else(|| {
                // A first-party URL holding personal data leaks through the Referer header.
                let referer = r.referer.as_deref()?;
                pii.find(&decode_url(referer))
                    .map(|h| (h, "Referer header".to_owned()))
            })
            .or_else(|| {
                // Any other header: custom ones a script sets, the Cookie the browser adds.
                r.headers
                    .iter()
                    .filter(|(name, _)| name.as_str() != "referer")
                    .find_map(|(name, value)| {
                        pii.find(value)
                            .or_else(|| pii.find(&decode_form(value)))
                            .map(|h| (h, format!("header {name}")))
                    })
            });
        if let Some(((kind, _), place)) = hit {
            out.push(finding(
                FindingKind::PiiLeak,
                Severity::Critical,
                scenario,
                step,
                r,
                format!(
                    "{} receives {} in the request {place}",
                    vendor_name(r),
                    kind.describe()
                ),
            ));
        }
    }
}

/// A vendor's script that loads another vendor.
fn fourth_parties(scenario: &Scenario, step: &StepEvidence, out: &mut Vec<Finding>) {
    for r in step.requests.iter().filter(|r| r.third_party) {
        let (Some(vendor), Some(loader_url)) = (&r.vendor, r.initiator_chain.get(1)) else {
            continue;
        };
        let Some(loader) = step
            .requests
            .iter()
            .rev()
            .find(|l| &l.url == loader_url && l.third_party)
        else {
            continue;
        };
        let Some(loader_vendor) = &loader.vendor else {
            continue;
        };
        if loader_vendor != vendor {
            // A tag manager loading tags is what the site configured it to do.
            let severity = if loader.category == Some(Category::TagManager) {
                Severity::Low
            } else {
                Severity::Medium
            };
            out.push(finding(
                FindingKind::FourthParty,
                severity,
                scenario,
                step,
                r,
                format!("{vendor} is loaded by {loader_vendor}'s script, not by the site"),
            ));
        }
    }
}

/// First-party requests to a host that is a CNAME for a tracking vendor.
fn cname_cloaking(
    scenario: &Scenario,
    step: &StepEvidence,
    cloaked: &HashMap<String, Cloaked>,
    out: &mut Vec<Finding>,
) {
    for r in step.requests.iter().filter(|r| !r.third_party) {
        let host = r.host();
        if let Some(c) = cloaked.get(&host) {
            let mut f = finding(
                FindingKind::CnameCloaking,
                Severity::High,
                scenario,
                step,
                r,
                format!(
                    "{host} looks first-party but is a CNAME for {} ({})",
                    c.target, c.vendor
                ),
            );
            f.vendor = c.vendor.clone();
            out.push(f);
        }
    }
}

/// The tag the registry holds for a vendor (an approved one first).
fn tag_of<'a>(tags: &'a [InventoryTag], vendor: &str) -> Option<&'a InventoryTag> {
    let named = |t: &&InventoryTag| t.vendor.eq_ignore_ascii_case(vendor);
    tags.iter()
        .filter(named)
        .find(|t| t.status == TagState::Approved)
        .or_else(|| tags.iter().find(named))
}

/// The evidence with each registered vendor's category as its tag says: an essential tag
/// needs no consent, a tag's consent purpose replaces the catalog's category.
fn as_registered(scenarios: &[ScenarioEvidence], tags: &[InventoryTag]) -> Vec<ScenarioEvidence> {
    let mut judged = scenarios.to_vec();
    for r in judged
        .iter_mut()
        .flat_map(|sc| sc.steps.iter_mut())
        .flat_map(|step| step.requests.iter_mut())
        .filter(|r| r.third_party)
    {
        let Some(tag) = tag_of(tags, &vendor_name(r)) else {
            continue;
        };
        match (tag.class, tag.consent_purpose) {
            (TagClass::Essential, _) => r.category = Some(Category::Essential),
            (_, Some(purpose)) => r.category = Some(purpose),
            _ => {}
        }
    }
    judged
}

/// Against the registry: shadow_vendor (fires without an approved tag), revoked_tag (its
/// tag rejected or retired), questionable_tag (fires under reject-all), missing_tag (an
/// approved tag absent from a step it is registered for, under accept-all) and zombie_tag
/// (approved, never seen).
fn registry_rules(scenarios: &[ScenarioEvidence], tags: &[InventoryTag], out: &mut Vec<Finding>) {
    let mut seen: Vec<String> = Vec::new();
    for sc in scenarios {
        for step in &sc.steps {
            for r in step.requests.iter().filter(|r| r.third_party) {
                let v = vendor_name(r);
                let tag = tag_of(tags, &v);
                if sc.scenario == Scenario::RejectAll
                    && tag.is_some_and(|t| {
                        t.status == TagState::Approved && t.class == TagClass::Questionable
                    })
                {
                    out.push(finding(
                        FindingKind::QuestionableTag,
                        Severity::Medium,
                        &sc.scenario,
                        step,
                        r,
                        format!("{v} is classified questionable and loads after the visitor rejected all: review its tag"),
                    ));
                }
                if seen.iter().any(|s| s.eq_ignore_ascii_case(&v)) {
                    continue;
                }
                seen.push(v.clone());
                let (kind, severity, message) =
                    match tag.map(|t| t.status) {
                        Some(TagState::Approved) => continue,
                        Some(state @ (TagState::Rejected | TagState::Retired)) => {
                            (
                                FindingKind::RevokedTag,
                                Severity::High,
                                format!(
                            "{v} still loads although its tag is {}: remove it from the site",
                            if state == TagState::Rejected { "rejected" } else { "retired" }
                        ),
                            )
                        }
                        Some(TagState::Proposed) => (
                            FindingKind::ShadowVendor,
                            Severity::Medium,
                            format!("{v} loads but its tag is only proposed: approve or reject it"),
                        ),
                        None => (
                            FindingKind::ShadowVendor,
                            Severity::Medium,
                            format!("{v} loads but has no approved tag in the registry"),
                        ),
                    };
                out.push(finding(kind, severity, &sc.scenario, step, r, message));
            }
        }
    }
    let accepted = scenarios
        .iter()
        .find(|sc| sc.scenario == Scenario::AcceptAll && operated(sc));
    for tag in tags.iter().filter(|t| t.status == TagState::Approved) {
        if !seen.iter().any(|s| s.eq_ignore_ascii_case(&tag.vendor)) {
            out.push(Finding {
                kind: FindingKind::ZombieTag,
                severity: Severity::Low,
                scenario: None,
                step: None,
                vendor: tag.vendor.clone(),
                message: format!(
                    "{} has an approved tag but never loads in any scenario",
                    tag.vendor
                ),
                evidence: FindingEvidence::default(),
            });
            continue;
        }
        let Some(accepted) = accepted else { continue };
        for step in accepted
            .steps
            .iter()
            .filter(|s| tag.steps.contains(&s.name))
        {
            let fired = step
                .requests
                .iter()
                .any(|r| r.third_party && vendor_name(r).eq_ignore_ascii_case(&tag.vendor));
            if !fired {
                out.push(Finding {
                    kind: FindingKind::MissingTag,
                    severity: Severity::Low,
                    scenario: Some(Scenario::AcceptAll),
                    step: Some(step.name.clone()),
                    vendor: tag.vendor.clone(),
                    message: format!(
                        "{} is registered to fire on step {:?} but does not, even after accept-all",
                        tag.vendor, step.name
                    ),
                    evidence: FindingEvidence::default(),
                });
            }
        }
    }
}

/// shadow_vendor (seen, not declared) and zombie_tag (declared, never seen).
fn inventory_rules(scenarios: &[ScenarioEvidence], inventory: &[String], out: &mut Vec<Finding>) {
    let declared = |name: &str| inventory.iter().any(|i| i.eq_ignore_ascii_case(name));
    let mut seen: Vec<String> = Vec::new();
    for sc in scenarios {
        for step in &sc.steps {
            for r in step.requests.iter().filter(|r| r.third_party) {
                let v = vendor_name(r);
                if seen.contains(&v) {
                    continue;
                }
                seen.push(v.clone());
                if !declared(&v) {
                    out.push(finding(
                        FindingKind::ShadowVendor,
                        Severity::Medium,
                        &sc.scenario,
                        step,
                        r,
                        format!("{v} is seen on the journey but not in its inventory"),
                    ));
                }
            }
        }
    }
    for name in inventory {
        if !seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            out.push(Finding {
                kind: FindingKind::ZombieTag,
                severity: Severity::Low,
                scenario: None,
                step: None,
                vendor: name.clone(),
                message: format!("{name} is in the inventory but never seen in any scenario"),
                evidence: FindingEvidence::default(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ScriptRun;

    const PAGE: &str = "http://www.shop.test/";

    fn vendor_req(url: &str, vendor: &str, category: Category) -> RequestRecord {
        RequestRecord {
            url: url.into(),
            method: "GET".into(),
            resource_type: "Script".into(),
            third_party: true,
            vendor: Some(vendor.into()),
            category: Some(category),
            initiator_chain: vec![url.into(), PAGE.into()],
            ..Default::default()
        }
    }

    fn ga() -> RequestRecord {
        vendor_req(
            "https://www.google-analytics.com/g/collect?v=2&gcs=G111",
            "Google Analytics",
            Category::Analytics,
        )
    }

    fn step(requests: Vec<RequestRecord>) -> StepEvidence {
        StepEvidence {
            name: "landing".into(),
            url: PAGE.into(),
            requests,
            ..Default::default()
        }
    }

    fn run(scenario: Scenario, requests: Vec<RequestRecord>) -> Vec<Finding> {
        evaluate(
            &[ScenarioEvidence {
                scenario,
                steps: vec![step(requests)],
                incomplete: None,
                banner: None,
            }],
            &RuleInput::default(),
        )
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn pre_consent_under_no_interaction_and_before_the_accept_click() {
        let f = run(Scenario::NoInteraction, vec![ga()]);
        assert_eq!(kinds(&f), vec![FindingKind::PreConsent]);
        assert_eq!(f[0].vendor, "Google Analytics");
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].evidence.initiator_chain.last().unwrap(), PAGE);

        let mut before = ga();
        before.before_consent = true;
        assert_eq!(
            kinds(&run(Scenario::AcceptAll, vec![before])),
            vec![FindingKind::PreConsent]
        );
        assert!(run(Scenario::AcceptAll, vec![ga()]).is_empty());
    }

    #[test]
    fn tag_managers_cmps_and_first_parties_are_not_consent_findings() {
        let gtm = vendor_req(
            "https://www.googletagmanager.com/gtm.js?id=GTM-1",
            "Google Tag Manager",
            Category::TagManager,
        );
        let cmp = vendor_req("https://cdn.cookielaw.org/x.js", "OneTrust", Category::Cmp);
        let mut own = ga();
        own.third_party = false;
        assert!(run(Scenario::NoInteraction, vec![gtm, cmp, own]).is_empty());
    }

    #[test]
    fn a_banner_that_could_not_be_operated_is_a_finding_and_no_choice_is_judged() {
        let scenario = |banner| ScenarioEvidence {
            scenario: Scenario::RejectAll,
            steps: vec![step(vec![ga()])],
            incomplete: None,
            banner: Some(banner),
        };
        let failed = crate::cmp::Banner {
            cmp: Some("quantcast".into()),
            method: None,
            made: false,
            detail: Some("quantcast offers no reject-all".into()),
        };
        let f = evaluate(&[scenario(failed)], &RuleInput::default());
        assert_eq!(kinds(&f), vec![FindingKind::BannerNotOperated]);
        assert_eq!(f[0].vendor, "quantcast");
        assert_eq!(f[0].severity, Severity::Medium);
        assert!(f[0].message.contains("no reject-all"), "{}", f[0].message);
        let made = crate::cmp::Banner {
            cmp: Some("onetrust".into()),
            method: Some("api".into()),
            made: true,
            detail: None,
        };
        let f = evaluate(&[scenario(made)], &RuleInput::default());
        assert_eq!(
            kinds(&f),
            vec![FindingKind::AfterReject, FindingKind::ConsentNotPropagated]
        );
    }

    #[test]
    fn after_reject_and_consent_not_propagated() {
        let f = run(Scenario::RejectAll, vec![ga()]);
        assert_eq!(
            kinds(&f),
            vec![FindingKind::AfterReject, FindingKind::ConsentNotPropagated]
        );
        assert!(f[1].message.contains("G111"));
        let mut before = ga();
        before.before_consent = true;
        assert!(run(Scenario::RejectAll, vec![before]).is_empty());
    }

    #[test]
    fn gcs_values() {
        let granted = |url: &str| consent_mode_of(url).granted;
        assert_eq!(
            granted("https://g.test/c?gcs=G111"),
            vec!["ad_storage", "analytics_storage"]
        );
        assert_eq!(
            granted("https://g.test/c?gcs=G101"),
            vec!["analytics_storage"]
        );
        assert_eq!(granted("https://g.test/c?gcs=G110"), vec!["ad_storage"]);
        assert!(granted("https://g.test/c?gcs=G100").is_empty());
        assert!(granted("https://g.test/c?gcs=G1").is_empty());
        assert!(granted("https://g.test/c").is_empty());
        assert!(granted("not a url").is_empty());
        assert_eq!(
            consent_mode_of("https://g.test/c?gcs=G100&x=1").parameters,
            vec!["gcs=G100"]
        );
    }

    #[test]
    fn gcd_covers_what_gcs_misses() {
        // gcs says storage denied; gcd says ad_user_data and ad_personalization were
        // updated to granted (r = default denied, update granted).
        let said = consent_mode_of("https://g.test/c?gcs=G100&gcd=13p3p3r3r5l1");
        assert_eq!(said.granted, vec!["ad_user_data", "ad_personalization"]);
        assert_eq!(said.parameters, vec!["gcs=G100", "gcd=13p3p3r3r5l1"]);
        // gcd wins over gcs where both speak: v = granted by default and update.
        let said = consent_mode_of("https://g.test/c?gcs=G100&gcd=11v1q1p1p5");
        assert_eq!(said.granted, vec!["ad_storage"]);
        // An unreadable gcd is ignored, gcs still read.
        let said = consent_mode_of("https://g.test/c?gcs=G101&gcd=11z1z1z1z5");
        assert_eq!(said.granted, vec!["analytics_storage"]);
        assert_eq!(said.parameters, vec!["gcs=G101"]);
    }

    /// The letter table of `sightline_consent` against the independent bitwise decoding of
    /// Analytics Debugger's Google Consent Parser (see `consent_mode_of`): base64url index v,
    /// default = (v >> 2) & 3, update = v & 3; 1 not set, 2 denied, 3 granted.
    #[test]
    fn gcd_letters_match_the_bitwise_decoding() {
        use sightline_consent::{Gcd, Grant};
        const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let state = |bits: usize| match bits {
            2 => Some(Grant::Denied),
            3 => Some(Grant::Granted),
            _ => None,
        };
        for letter in ['l', 'p', 'q', 'r', 't', 'u', 'v', 'm', 'n'] {
            let v = BASE64URL.find(letter).unwrap();
            let gcd = Gcd::parse(&format!("11{letter}1{letter}1{letter}1{letter}5")).unwrap();
            for signal in [
                gcd.ad_storage,
                gcd.analytics_storage,
                gcd.ad_user_data,
                gcd.ad_personalization,
            ] {
                assert_eq!(signal.default, state((v >> 2) & 3), "default of {letter}");
                assert_eq!(signal.update, state(v & 3), "update of {letter}");
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const LETTERS: [char; 9] = ['l', 'p', 'q', 'r', 't', 'u', 'v', 'm', 'n'];

        proptest! {
            /// Arbitrary URLs and parameter values never panic.
            #[test]
            fn consent_mode_of_never_panics(url in ".*", gcs in ".*", gcd in ".*") {
                let _ = consent_mode_of(&url);
                let q = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("gcs", &gcs)
                    .append_pair("gcd", &gcd)
                    .finish();
                let _ = consent_mode_of(&format!("https://g.test/c?{q}"));
            }

            /// A well-formed gcd is read signal by signal: granted exactly where the letter's
            /// state in force is granted (update, else default).
            #[test]
            fn gcd_signals_are_read_in_order(
                letters in proptest::array::uniform4(proptest::sample::select(LETTERS.to_vec())),
                digits in proptest::array::uniform4(0u8..10),
            ) {
                let gcd: String = std::iter::once("1".to_owned())
                    .chain(letters.iter().zip(digits).map(|(l, d)| format!("{d}{l}")))
                    .chain(std::iter::once("5".to_owned()))
                    .collect();
                let said = consent_mode_of(&format!("https://g.test/c?gcd={gcd}"));
                let in_force_granted = |l: char| matches!(l, 'r' | 't' | 'v' | 'n');
                let names = ["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"];
                let expected: Vec<&str> = names
                    .iter()
                    .zip(letters)
                    .filter(|(_, l)| in_force_granted(*l))
                    .map(|(n, _)| *n)
                    .collect();
                prop_assert_eq!(said.granted, expected);
            }
        }
    }

    fn custom_input(name: &str, refused: Vec<Category>) -> RuleInput {
        RuleInput {
            refusals: [(name.to_owned(), refused)].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_custom_choice_judges_its_refused_purposes_only() {
        let scenario = Scenario::Custom("analytics-only".into());
        let mut meta = vendor_req(
            "https://www.facebook.com/tr?ev=PageView",
            "Meta",
            Category::Advertising,
        );
        meta.resource_type = "Image".into();
        let mut before = meta.clone();
        before.before_consent = true;
        let refused: Vec<Category> = Category::PURPOSES
            .into_iter()
            .filter(|c| *c != Category::Analytics)
            .collect();
        let f = evaluate(
            &[ScenarioEvidence {
                scenario: scenario.clone(),
                steps: vec![step(vec![before, ga(), meta])],
                incomplete: None,
                banner: None,
            }],
            &custom_input("analytics-only", refused),
        );
        // Before the choice: pre_consent. After it: Meta (advertising refused) is after_reject;
        // Google Analytics (granted) is fine, though its gcs=G111 says ad_storage granted.
        assert_eq!(
            kinds(&f),
            vec![
                FindingKind::PreConsent,
                FindingKind::ConsentNotPropagated,
                FindingKind::AfterReject
            ]
        );
        assert_eq!(f[0].vendor, "Meta");
        assert!(
            f[1].message.contains("ad_storage") && !f[1].message.contains("analytics_storage"),
            "{}",
            f[1].message
        );
        assert_eq!(f[2].vendor, "Meta");
        assert_eq!(f[2].scenario, Some(scenario));
        assert!(
            f[2].message
                .contains("refused advertising (custom:analytics-only)"),
            "{}",
            f[2].message
        );
    }

    #[test]
    fn gcd_granted_under_reject_all_is_not_propagated() {
        let ads = vendor_req(
            "https://www.googleadservices.com/pagead/conversion?gcs=G100&gcd=13p3p3r3r5",
            "Google Ads",
            Category::Advertising,
        );
        let f = run(Scenario::RejectAll, vec![ads]);
        assert_eq!(
            kinds(&f),
            vec![FindingKind::AfterReject, FindingKind::ConsentNotPropagated]
        );
        assert!(
            f[1].message.contains("ad_user_data, ad_personalization"),
            "{}",
            f[1].message
        );
        assert!(f[1].message.contains("gcd=13p3p3r3r5"), "{}", f[1].message);
    }

    #[test]
    fn personal_data_in_any_header_and_its_md5() {
        let mut r = vendor_req(
            "https://api.vendor.test/collect",
            "Segment",
            Category::CustomerData,
        );
        r.headers
            .insert("x-user-email".into(), "ann@example.com".into());
        let input = RuleInput {
            pii: PiiNeedles::from_values(&["ann@example.com"]),
            ..Default::default()
        };
        let evidence = |r: RequestRecord| {
            [ScenarioEvidence {
                scenario: Scenario::AcceptAll,
                steps: vec![step(vec![r])],
                incomplete: None,
                banner: None,
            }]
        };
        let f = evaluate(&evidence(r.clone()), &input);
        assert_eq!(kinds(&f), vec![FindingKind::PiiLeak]);
        assert!(
            f[0].message.contains("header x-user-email"),
            "{}",
            f[0].message
        );
        r.headers.clear();
        r.headers.insert(
            "cookie".into(),
            "uid=257c57037d384ae37ea27a07e8a01665".into(),
        );
        let f = evaluate(&evidence(r), &input);
        assert!(
            f[0].message
                .contains("the MD5 of an email address in the request header cookie"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn gpc_ignored_only_for_sale_or_sharing() {
        let meta = vendor_req(
            "https://connect.facebook.net/fbevents.js",
            "Meta",
            Category::Advertising,
        );
        let f = run(Scenario::Gpc, vec![meta, ga()]);
        assert_eq!(kinds(&f), vec![FindingKind::GpcIgnored]);
        assert_eq!(f[0].vendor, "Meta");
    }

    #[test]
    fn duplicate_tags_by_container() {
        let gtm = |id: &str, cb: &str| {
            vendor_req(
                &format!("https://www.googletagmanager.com/gtm.js?id={id}&cb={cb}"),
                "Google Tag Manager",
                Category::TagManager,
            )
        };
        let f = run(
            Scenario::AcceptAll,
            vec![gtm("GTM-1", "a"), gtm("GTM-1", "b")],
        );
        assert_eq!(kinds(&f), vec![FindingKind::DuplicateTag]);
        assert!(f[0].message.contains("GTM-1"));
        assert!(run(
            Scenario::AcceptAll,
            vec![gtm("GTM-1", "a"), gtm("GTM-2", "a")]
        )
        .is_empty());
    }

    #[test]
    fn duplicate_tags_by_script_runs_in_one_document() {
        let fb = vendor_req(
            "https://connect.facebook.net/en_US/fbevents.js",
            "Meta",
            Category::Advertising,
        );
        let run_in = |context| ScriptRun {
            context,
            url: fb.url.clone(),
        };
        let evidence = |runs: Vec<ScriptRun>| {
            let mut s = step(vec![fb.clone()]);
            s.scripts_run = runs;
            vec![ScenarioEvidence {
                scenario: Scenario::AcceptAll,
                steps: vec![s],
                incomplete: None,
                banner: None,
            }]
        };
        let f = evaluate(&evidence(vec![run_in(1), run_in(1)]), &RuleInput::default());
        assert_eq!(kinds(&f), vec![FindingKind::DuplicateTag]);
        assert_eq!(f[0].vendor, "Meta");
        // Once per document (the step navigated) is no duplicate.
        let f = evaluate(&evidence(vec![run_in(1), run_in(2)]), &RuleInput::default());
        assert!(f.is_empty());
    }

    #[test]
    fn pii_in_third_party_url_or_body_only() {
        let input = RuleInput {
            pii: PiiNeedles::from_values(&["ann@example.com"]),
            ..RuleInput::default()
        };
        let mut tr = vendor_req(
            "https://www.facebook.com/tr?ev=Lead&em=ann%40example.com",
            "Meta",
            Category::Advertising,
        );
        tr.resource_type = "Image".into();
        let mut body = vendor_req(
            "https://api.segment.io/v1/t",
            "Segment",
            Category::CustomerData,
        );
        body.resource_type = "Fetch".into();
        body.post_body = Some(r#"{"traits":{"email":"ann@example.com"}}"#.into());
        let mut own = tr.clone();
        own.third_party = false;
        own.vendor = None;
        let mut referred = vendor_req(
            "https://bat.bing.com/action/0",
            "Microsoft Advertising",
            Category::Advertising,
        );
        referred.referer = Some("http://www.shop.test/thanks?email=ann%40example.com".into());
        let f = evaluate(
            &[ScenarioEvidence {
                scenario: Scenario::AcceptAll,
                steps: vec![step(vec![tr, body, own, referred])],
                incomplete: None,
                banner: None,
            }],
            &input,
        );
        assert_eq!(kinds(&f), vec![FindingKind::PiiLeak; 3]);
        assert!(f[0].message.contains("URL"), "{}", f[0].message);
        assert!(f[1].message.contains("body"), "{}", f[1].message);
        assert!(f[2].message.contains("Referer"), "{}", f[2].message);
        assert_eq!(f[0].severity, Severity::Critical);
    }

    #[test]
    fn fourth_party_when_a_vendor_script_loads_another_vendor() {
        let criteo = vendor_req(
            "https://static.criteo.net/js/ld.js",
            "Criteo",
            Category::Advertising,
        );
        let mut xandr = vendor_req(
            "https://ib.adnxs.com/px",
            "Xandr (AppNexus)",
            Category::Advertising,
        );
        xandr.initiator_chain = vec![xandr.url.clone(), criteo.url.clone(), PAGE.into()];
        let mut own_beacon = vendor_req(
            "https://static.criteo.net/px",
            "Criteo",
            Category::Advertising,
        );
        own_beacon.initiator_chain = vec![own_beacon.url.clone(), criteo.url.clone(), PAGE.into()];
        let f = run(Scenario::AcceptAll, vec![criteo, xandr, own_beacon]);
        assert_eq!(kinds(&f), vec![FindingKind::FourthParty]);
        assert_eq!(f[0].vendor, "Xandr (AppNexus)");
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[0].evidence.initiator_chain.len(), 3);
    }

    #[test]
    fn cname_cloaked_first_party_hosts() {
        let mut input = RuleInput::default();
        input.cloaked.insert(
            "metrics.shop.test".into(),
            Cloaked {
                target: "shop.sc.omtrdc.net".into(),
                vendor: "Adobe Analytics".into(),
            },
        );
        let mut own = vendor_req("http://metrics.shop.test/b/ss", "x", Category::Unknown);
        own.third_party = false;
        own.vendor = None;
        let mut page = own.clone();
        page.url = PAGE.into();
        let f = evaluate(
            &[ScenarioEvidence {
                scenario: Scenario::AcceptAll,
                steps: vec![step(vec![page, own])],
                incomplete: None,
                banner: None,
            }],
            &input,
        );
        assert_eq!(kinds(&f), vec![FindingKind::CnameCloaking]);
        assert_eq!(f[0].vendor, "Adobe Analytics");
        assert!(f[0].message.contains("shop.sc.omtrdc.net"));
    }

    #[test]
    fn shadow_and_zombie_against_the_inventory() {
        let input = RuleInput {
            inventory: Some(vec!["google analytics".into(), "Hotjar".into()]),
            ..RuleInput::default()
        };
        let tiktok = vendor_req(
            "https://analytics.tiktok.com/e.js",
            "TikTok",
            Category::Advertising,
        );
        let f = evaluate(
            &[ScenarioEvidence {
                scenario: Scenario::AcceptAll,
                steps: vec![step(vec![ga(), tiktok])],
                incomplete: None,
                banner: None,
            }],
            &input,
        );
        assert_eq!(
            kinds(&f),
            vec![FindingKind::ShadowVendor, FindingKind::ZombieTag]
        );
        assert_eq!(f[0].vendor, "TikTok");
        assert_eq!(f[1].vendor, "Hotjar");
        assert_eq!(f[1].scenario, None);
    }

    fn tag(vendor: &str, status: TagState, class: TagClass) -> InventoryTag {
        InventoryTag {
            vendor: vendor.into(),
            status,
            class,
            consent_purpose: None,
            steps: vec![],
        }
    }

    #[test]
    fn the_registry_is_the_inventory_and_its_status_counts() {
        let tiktok = vendor_req(
            "https://analytics.tiktok.com/e.js",
            "TikTok",
            Category::Advertising,
        );
        let hotjar = vendor_req(
            "https://static.hotjar.com/c.js",
            "Hotjar",
            Category::SessionReplay,
        );
        let meta = vendor_req(
            "https://connect.facebook.net/fbevents.js",
            "Meta",
            Category::Advertising,
        );
        let mut ga_tag = tag("google analytics", TagState::Approved, TagClass::Optional);
        ga_tag.steps = vec!["landing".into(), "checkout".into()];
        let input = RuleInput {
            // Ignored: the registry's tags are the inventory.
            inventory: Some(vec!["TikTok".into()]),
            tags: Some(vec![
                ga_tag,
                tag("TikTok", TagState::Proposed, TagClass::Optional),
                tag("Hotjar", TagState::Rejected, TagClass::Optional),
                tag("Meta", TagState::Retired, TagClass::Optional),
                tag("Criteo", TagState::Approved, TagClass::Optional),
                // A rejected tag documents nothing.
                tag("Bing", TagState::Rejected, TagClass::Optional),
            ]),
            ..RuleInput::default()
        };
        let mut checkout = step(vec![]);
        checkout.name = "checkout".into();
        let f = evaluate(
            &[ScenarioEvidence {
                scenario: Scenario::AcceptAll,
                steps: vec![step(vec![ga(), tiktok, hotjar, meta]), checkout],
                incomplete: None,
                banner: None,
            }],
            &input,
        );
        let got: Vec<(FindingKind, &str, Severity)> = f
            .iter()
            .map(|f| (f.kind, f.vendor.as_str(), f.severity))
            .collect();
        assert_eq!(
            got,
            vec![
                (FindingKind::ShadowVendor, "TikTok", Severity::Medium),
                (FindingKind::RevokedTag, "Hotjar", Severity::High),
                (FindingKind::RevokedTag, "Meta", Severity::High),
                (FindingKind::MissingTag, "google analytics", Severity::Low),
                (FindingKind::ZombieTag, "Criteo", Severity::Low),
            ]
        );
        assert!(f[0].message.contains("only proposed"), "{}", f[0].message);
        assert!(f[2].message.contains("retired"), "{}", f[2].message);
        assert_eq!(f[3].step.as_deref(), Some("checkout"));
    }

    #[test]
    fn a_tags_class_and_purpose_decide_its_consent_findings() {
        // Under reject-all: an essential tag is expected, a questionable one is flagged for
        // review, an optional one is judged by its own purpose.
        let chat = vendor_req(
            "https://widget.intercom.io/w.js",
            "Intercom",
            Category::Support,
        );
        let replay = vendor_req(
            "https://static.hotjar.com/c.js",
            "Hotjar",
            Category::SessionReplay,
        );
        let ga = ga();
        let mut ga_tag = tag("Google Analytics", TagState::Approved, TagClass::Optional);
        ga_tag.consent_purpose = Some(Category::Advertising);
        let input = RuleInput {
            tags: Some(vec![
                tag("Intercom", TagState::Approved, TagClass::Essential),
                tag("Hotjar", TagState::Approved, TagClass::Questionable),
                ga_tag,
            ]),
            ..RuleInput::default()
        };
        let f = evaluate(
            &[ScenarioEvidence {
                scenario: Scenario::RejectAll,
                steps: vec![step(vec![chat, replay, ga])],
                incomplete: None,
                banner: None,
            }],
            &input,
        );
        let got: Vec<(FindingKind, &str)> = f.iter().map(|f| (f.kind, f.vendor.as_str())).collect();
        assert!(!got.iter().any(|(_, v)| *v == "Intercom"), "{got:?}");
        assert!(
            got.contains(&(FindingKind::QuestionableTag, "Hotjar")),
            "{got:?}"
        );
        let ga_after = f
            .iter()
            .find(|f| f.kind == FindingKind::AfterReject && f.vendor == "Google Analytics")
            .expect("judged by its tag's purpose");
        assert_eq!(ga_after.severity, Severity::High);
        // Under a custom choice refusing only advertising, GA (tagged advertising) fires
        // after the refusal; under one refusing only analytics, it does not.
        for (refused, flagged) in [(Category::Advertising, true), (Category::Analytics, false)] {
            let mut input = custom_input("c", vec![refused]);
            input.tags = Some(vec![{
                let mut t = tag("Google Analytics", TagState::Approved, TagClass::Optional);
                t.consent_purpose = Some(Category::Advertising);
                t
            }]);
            let f = evaluate(
                &[ScenarioEvidence {
                    scenario: Scenario::Custom("c".into()),
                    steps: vec![step(vec![ga_after_choice()])],
                    incomplete: None,
                    banner: None,
                }],
                &input,
            );
            assert_eq!(
                f.iter().any(|f| f.kind == FindingKind::AfterReject),
                flagged,
                "{refused:?}: {f:?}"
            );
        }
    }

    /// GA firing after the visitor's choice.
    fn ga_after_choice() -> RequestRecord {
        let mut r = ga();
        r.before_consent = false;
        r
    }

    #[test]
    fn evidence_carries_the_vendor_cookie() {
        let mut s = step(vec![ga()]);
        s.cookies.push(CookieRecord {
            name: "_ga".into(),
            domain: ".google-analytics.com".into(),
            path: "/".into(),
            expires: Some(2e9),
            third_party: true,
            vendor: Some("Google Analytics".into()),
        });
        let f = evaluate(
            &[ScenarioEvidence {
                scenario: Scenario::NoInteraction,
                steps: vec![s],
                incomplete: None,
                banner: None,
            }],
            &RuleInput::default(),
        );
        assert_eq!(f[0].evidence.cookie.as_ref().unwrap().name, "_ga");
    }

    #[test]
    fn one_finding_per_kind_scenario_step_and_vendor() {
        let f = run(Scenario::NoInteraction, vec![ga(), ga(), ga()]);
        assert_eq!(
            kinds(&f),
            vec![FindingKind::PreConsent, FindingKind::DuplicateTag]
        );
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High && Severity::High > Severity::Medium);
        assert_eq!(Severity::parse("HIGH"), Some(Severity::High));
        assert_eq!(Severity::parse("urgent"), None);
        assert_eq!(Severity::from_name("high"), Some(Severity::High));
        assert_eq!(Severity::from_name("HIGH"), None);
        for s in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
            assert_eq!(Severity::from_name(s.name()), Some(s));
        }
    }
}
