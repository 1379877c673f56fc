//! The journey file: named steps run in one browser session, how to give consent, and the
//! vendor inventory the scan is checked against.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::evidence::{valid_custom_name, Scenario};
use crate::vendor::Category;
use crate::ScanError;

/// A parsed journey file (see README.md, "Journey file").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journey {
    pub name: String,
    #[serde(default)]
    pub browser: BrowserConfig,
    #[serde(default)]
    pub consent: ConsentConfig,
    pub dns: Option<DnsConfig>,
    pub inventory: Option<Inventory>,
    /// Pages found by crawling, scanned after `steps` (`crawl.rs`).
    pub crawl: Option<crate::crawl::Crawl>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserConfig {
    /// Passed to Chromium as `--host-resolver-rules`, so vendor host names can be mapped onto
    /// local fixture servers.
    pub host_resolver_rules: Option<String>,
    /// Extra Chromium flags, appended after Sightline's own.
    #[serde(default)]
    pub args: Vec<String>,
}

/// The resolver asked for the CNAMEs of first-party hosts (cloaking checks); without it
/// the check is skipped.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// `IP:PORT` of a DNS server answering over UDP.
    pub server: String,
}

impl DnsConfig {
    pub fn server_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.parse().ok()
    }
}

/// How each consent choice is given; a missing table means the scenario cannot click.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentConfig {
    #[serde(rename = "accept-all")]
    pub accept_all: Option<ConsentChoice>,
    #[serde(rename = "reject-all")]
    pub reject_all: Option<ConsentChoice>,
    /// Per-purpose choices, `[consent.custom.NAME]`, run as scenario `custom:NAME`.
    #[serde(default)]
    pub custom: BTreeMap<String, CustomConsent>,
}

/// A per-purpose consent choice: how it is given, and which purposes it grants. Every
/// purpose that needs consent and is not granted counts as refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomConsent {
    #[serde(default)]
    pub click: Vec<String>,
    #[serde(default)]
    pub cookies: Vec<String>,
    #[serde(default)]
    pub local_storage: BTreeMap<String, String>,
    pub tcf: Option<String>,
    /// Purposes granted, as catalog categories that need consent (`analytics`,
    /// `advertising`, …): what the scan's findings judge the choice by, and what it grants
    /// through a CMP whose API takes standard groups (OneTrust, Cookiebot).
    #[serde(default)]
    pub grant: Vec<Category>,
    /// The same choice in the site's own ids, for a CMP whose API takes those (Didomi,
    /// Usercentrics): `[consent.custom.NAME.cmp_ids]`.
    #[serde(default)]
    pub cmp_ids: crate::cmp::CmpIds,
}

impl CustomConsent {
    pub fn choice(&self) -> ConsentChoice {
        ConsentChoice {
            click: self.click.clone(),
            cookies: self.cookies.clone(),
            local_storage: self.local_storage.clone(),
            tcf: self.tcf.clone(),
            cmp: None,
        }
    }

    /// The purposes this choice refuses: every category that needs consent and is not
    /// granted.
    pub fn refused(&self) -> Vec<Category> {
        Category::PURPOSES
            .into_iter()
            .filter(|c| !self.grant.contains(c))
            .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentChoice {
    /// Selectors clicked in order on the first step, the way a person would.
    #[serde(default)]
    pub click: Vec<String>,
    /// Cookies set on the first step's URL before it loads, as `name=value`.
    #[serde(default)]
    pub cookies: Vec<String>,
    /// localStorage entries set on the first step's origin before its scripts run.
    #[serde(default)]
    pub local_storage: BTreeMap<String, String>,
    /// A TCF v2 TC string the scanner's own `__tcfapi` answers with in every frame, from
    /// before the first page script runs, the way a CMP with a stored choice would.
    pub tcf: Option<String>,
    /// Set when the journey names no way to make this choice: the scanner recognises the
    /// page's CMP and makes it through the CMP (`cmp.rs`).
    #[serde(skip)]
    pub cmp: Option<crate::cmp::Choice>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Vendor names as the catalog spells them.
    #[serde(default)]
    pub vendors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// One action of a step, written as an inline table whose key says what it does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Action {
    Fill { fill: String, value: String },
    Click { click: String },
    WaitFor { wait_for: String },
    WaitMs { wait_ms: u64 },
}

impl Inventory {
    /// Reads an inventory file: `vendors = ["Google Analytics", …]`, the same shape as the
    /// journey's `[inventory]` table (used until the governance registry holds it).
    pub fn load(path: &Path) -> Result<Inventory, ScanError> {
        let err = |message: String| ScanError::Inventory {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Inventory::parse(&text).map_err(err)
    }

    pub fn parse(text: &str) -> Result<Inventory, String> {
        let inventory: Inventory = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(i) = inventory.vendors.iter().position(|v| v.trim().is_empty()) {
            return Err(format!(
                "key `vendors[{i}]`: a vendor name must not be empty"
            ));
        }
        Ok(inventory)
    }
}

/// The Chromium flags a journey may add in `[browser].args`: each changes only how pages
/// look or are identified. Anything else is refused: the scanner runs Chromium without its
/// sandbox, and flags such as `--renderer-cmd-prefix` or `--utility-cmd-prefix` run a
/// command, `--proxy-server` sends every request through a host of the journey's choosing,
/// `--remote-debugging-*` or `--user-data-dir` reach outside the scan. A stored journey is
/// written by whoever holds a marketing token, and run by whoever scans.
/// `ignore-certificate-errors` lets fixture sites use self-signed certificates; the scan's
/// browser holds no credentials, so it only weakens what the scan's own evidence is worth.
pub const ALLOWED_BROWSER_FLAGS: [&str; 8] = [
    "window-size",
    "lang",
    "accept-lang",
    "user-agent",
    "force-device-scale-factor",
    "hide-scrollbars",
    "mute-audio",
    "ignore-certificate-errors",
];

/// The longest `{ wait_ms = N }` of one action: a minute.
pub const MAX_WAIT_MS: u64 = 60_000;

/// One `[browser].args` entry, `--name` or `--name=value`, as (name, value), when it is an
/// allowed flag; the error names the flag and the allowed ones.
pub fn check_browser_arg(arg: &str) -> Result<(&str, Option<&str>), String> {
    let flag = arg.trim();
    let flag = flag.strip_prefix("--").unwrap_or(flag);
    let (name, value) = match flag.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (flag, None),
    };
    let allowed = ALLOWED_BROWSER_FLAGS.contains(&name);
    if !allowed {
        return Err(format!(
            "Chromium flag {arg:?} is not allowed; a journey may set only --{}",
            ALLOWED_BROWSER_FLAGS.join(", --")
        ));
    }
    if value.is_some_and(|v| v.chars().any(char::is_control)) {
        return Err(format!(
            "Chromium flag --{name}: the value must not hold control characters"
        ));
    }
    Ok((name, value))
}

/// Every `[browser].args` entry is an allowed flag; the error names the key.
pub fn check_browser_args(args: &[String]) -> Result<(), String> {
    for (i, arg) in args.iter().enumerate() {
        check_browser_arg(arg).map_err(|e| format!("key `browser.args[{i}]`: {e}"))?;
    }
    Ok(())
}

/// A `wait_ms` is at most [`MAX_WAIT_MS`].
pub fn check_wait_ms(wait_ms: u64) -> Result<(), String> {
    if wait_ms > MAX_WAIT_MS {
        return Err(format!(
            "wait_ms = {wait_ms} is over the limit of {MAX_WAIT_MS} (60 s): wait for a selector instead"
        ));
    }
    Ok(())
}

/// Whether a scan may load `url`: http(s) only, and, unless `allow_private_network`, not
/// `localhost` nor a loopback, private, link-local, shared or unspecified IP literal. (A
/// public name that resolves to a private address is not caught here.)
pub fn check_scan_url(url: &str, allow_private_network: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http and https URLs are scanned"));
    }
    if allow_private_network {
        return Ok(());
    }
    let private = match parsed.host() {
        None => true,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => private_v4(ip),
        Some(url::Host::Ipv6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => {
                let first = ip.segments()[0];
                ip.is_loopback()
                    || ip.is_unspecified()
                    || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                    || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
            }
        },
    };
    if private {
        return Err(format!(
            "{url:?} is on this machine or a private network: scan it with --allow-private-network \
             (ScanOptions::allow_private_network) if that is meant"
        ));
    }
    Ok(())
}

fn private_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
}

impl Journey {
    /// What a scan checks before it starts a browser: the flags and waits (as parsing
    /// does, for journeys built in code), every step URL ([`check_scan_url`]), and
    /// `host_resolver_rules`, which can point any name at any address and so needs
    /// `allow_private_network`.
    pub fn check_scannable(&self, allow_private_network: bool) -> Result<(), String> {
        check_browser_args(&self.browser.args)?;
        if self.browser.host_resolver_rules.is_some() && !allow_private_network {
            return Err("key `browser.host_resolver_rules` maps host names onto any address: \
                 scan with --allow-private-network (ScanOptions::allow_private_network) if that is meant"
                .into());
        }
        for (i, step) in self.steps.iter().enumerate() {
            check_scan_url(&step.url, allow_private_network)
                .map_err(|e| format!("key `steps[{i}].url`: {e}"))?;
            for (j, action) in step.actions.iter().enumerate() {
                if let Action::WaitMs { wait_ms } = action {
                    check_wait_ms(*wait_ms)
                        .map_err(|e| format!("key `steps[{i}].actions[{j}]`: {e}"))?;
                }
            }
        }
        if let Some(crawl) = &self.crawl {
            for (key, url) in [("start", &crawl.start), ("sitemap", &crawl.sitemap)] {
                if let Some(url) = url {
                    check_scan_url(url, allow_private_network)
                        .map_err(|e| format!("key `crawl.{key}`: {e}"))?;
                }
            }
        }
        Ok(())
    }

    /// The journey with the crawled `pages` as steps after its own (named by their path,
    /// made unique); the pages a crawl may not visit (a private address) are left out.
    pub fn with_pages(&self, pages: &[String], allow_private_network: bool) -> Journey {
        let mut journey = self.clone();
        let mut names: std::collections::HashSet<String> =
            journey.steps.iter().map(|s| s.name.clone()).collect();
        for page in pages {
            if check_scan_url(page, allow_private_network).is_err() {
                continue;
            }
            let path = url::Url::parse(page)
                .map(|u| match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_owned(),
                })
                .unwrap_or_else(|_| page.clone());
            let mut name = path.clone();
            let mut n = 2;
            while !names.insert(name.clone()) {
                name = format!("{path} ({n})");
                n += 1;
            }
            journey.steps.push(Step {
                name,
                url: page.clone(),
                actions: Vec::new(),
            });
        }
        journey
    }

    /// Reads and validates a journey file.
    pub fn load(path: &Path) -> Result<Journey, ScanError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScanError::Journey {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Journey::parse(&text).map_err(|message| ScanError::Journey {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses journey TOML; the error names the offending key and line.
    pub fn parse(text: &str) -> Result<Journey, String> {
        let journey: Journey = toml::from_str(text).map_err(|e| {
            // The untagged action enum loses the reason; say what an action may be.
            let msg = e.to_string();
            if msg.contains("did not match any variant of untagged enum Action") {
                format!(
                    "{msg}\nan action is one of {{ click = \"SEL\" }}, {{ fill = \"SEL\", value = \"TEXT\" }}, \
                     {{ wait_for = \"SEL\" }}, {{ wait_ms = N }}"
                )
            } else {
                msg
            }
        })?;
        journey.validate()?;
        Ok(journey)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("key `name`: must not be empty".into());
        }
        if self.steps.is_empty() && self.crawl.is_none() {
            return Err(
                "key `steps`: a journey needs at least one [[steps]] entry, or a [crawl]".into(),
            );
        }
        if let Some(crawl) = &self.crawl {
            crawl.check()?;
        }
        if let Some(dns) = &self.dns {
            if dns.server_addr().is_none() {
                return Err(format!(
                    "key `dns.server`: expected IP:PORT, e.g. \"127.0.0.1:5353\", got {:?}",
                    dns.server
                ));
            }
        }
        check_browser_args(&self.browser.args)?;
        let mut seen = std::collections::HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let key = format!("steps[{i}]");
            if step.name.trim().is_empty() {
                return Err(format!("key `{key}.name`: must not be empty"));
            }
            if !seen.insert(step.name.as_str()) {
                return Err(format!(
                    "key `{key}.name`: duplicate step name {:?}",
                    step.name
                ));
            }
            match url::Url::parse(&step.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => {
                    return Err(format!(
                        "key `{key}.url`: scheme {:?} is not http or https",
                        u.scheme()
                    ))
                }
                Err(e) => return Err(format!("key `{key}.url`: {e}: {:?}", step.url)),
            }
            for (j, action) in step.actions.iter().enumerate() {
                if let Action::WaitMs { wait_ms } = action {
                    check_wait_ms(*wait_ms)
                        .map_err(|e| format!("key `{key}.actions[{j}]`: {e}"))?;
                }
            }
        }
        let mut choices: Vec<(String, ConsentChoice)> = Vec::new();
        for (name, choice) in [
            ("accept-all", &self.consent.accept_all),
            ("reject-all", &self.consent.reject_all),
        ] {
            if let Some(choice) = choice {
                choices.push((name.to_owned(), choice.clone()));
            }
        }
        for (name, custom) in &self.consent.custom {
            if !valid_custom_name(name) {
                return Err(format!(
                    "key `consent.custom.{name}`: a custom scenario name has only letters, digits, - and _"
                ));
            }
            for (i, c) in custom.grant.iter().enumerate() {
                if !c.needs_consent() {
                    return Err(format!(
                        "key `consent.custom.{name}.grant[{i}]`: {:?} does not need consent; purposes are {}",
                        c.name(),
                        Category::PURPOSES.map(Category::name).join(", ")
                    ));
                }
            }
            if let Some(key) = custom.cmp_ids.empty_id() {
                return Err(format!(
                    "key `consent.custom.{name}.cmp_ids.{key}`: an id is empty; give the id as the site's CMP configuration names it"
                ));
            }
            choices.push((format!("custom.{name}"), custom.choice()));
        }
        for (name, choice) in choices {
            for (i, c) in choice.cookies.iter().enumerate() {
                if !c.contains('=') || c.starts_with('=') {
                    return Err(format!(
                        "key `consent.{name}.cookies[{i}]`: expected \"name=value\", got {c:?}"
                    ));
                }
            }
            if let Some(tc) = &choice.tcf {
                sightline_consent::TcString::decode(tc).map_err(|e| {
                    format!("key `consent.{name}.tcf`: not a TCF v2 TC string: {e}")
                })?;
            }
        }
        Ok(())
    }

    /// The scenarios a scan runs when none are named: the four built-in ones, then each
    /// custom choice in name order.
    pub fn default_scenarios(&self) -> Vec<Scenario> {
        let mut all = Scenario::ALL.to_vec();
        all.extend(self.consent.custom.keys().cloned().map(Scenario::Custom));
        all
    }

    /// How a scenario gives consent: `None` when it gives none (no-interaction, gpc); for
    /// accept-all and reject-all without a table of the journey's, through the page's CMP;
    /// an error naming the missing table for a custom choice the journey does not have.
    pub fn consent_choice(&self, scenario: &Scenario) -> Result<Option<ConsentChoice>, String> {
        let missing = |table: String| format!("the journey has no [{table}] table");
        match scenario {
            Scenario::NoInteraction | Scenario::Gpc => Ok(None),
            Scenario::AcceptAll => Ok(Some(self.consent.accept_all.clone().unwrap_or(
                ConsentChoice {
                    cmp: Some(crate::cmp::Choice::AcceptAll),
                    ..ConsentChoice::default()
                },
            ))),
            Scenario::RejectAll => Ok(Some(self.consent.reject_all.clone().unwrap_or(
                ConsentChoice {
                    cmp: Some(crate::cmp::Choice::RejectAll),
                    ..ConsentChoice::default()
                },
            ))),
            Scenario::Custom(name) => self
                .consent
                .custom
                .get(name)
                .map(|c| {
                    let mut choice = c.choice();
                    if choice == ConsentChoice::default() {
                        // No way given: through the page's CMP, if its API takes purposes.
                        let grants = crate::cmp::Grants::of(&c.grant);
                        choice.cmp = Some(crate::cmp::Choice::Custom(grants, c.cmp_ids.clone()));
                    }
                    Some(choice)
                })
                .ok_or_else(|| missing(format!("consent.custom.{name}"))),
        }
    }

    /// The refused purposes of each custom scenario, by scenario name.
    pub fn custom_refusals(&self) -> BTreeMap<String, Vec<Category>> {
        self.consent
            .custom
            .iter()
            .map(|(name, c)| (name.clone(), c.refused()))
            .collect()
    }

    /// The values typed into fields during the journey: what a PII leak would carry.
    pub fn filled_values(&self) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|s| &s.actions)
            .filter_map(|a| match a {
                Action::Fill { value, .. } => Some(value.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r##"
name = "shop"
[browser]
host_resolver_rules = "MAP *.shop.test 127.0.0.1:8080, MAP connect.facebook.net 127.0.0.1:8081"
args = ["--ignore-certificate-errors"]
[dns]
server = "127.0.0.1:5353"
[consent.accept-all]
click = ["#cmp-accept"]
[consent.reject-all]
click = ["#cmp-reject"]
[inventory]
vendors = ["Google Analytics", "Meta"]
[[steps]]
name = "landing"
url = "http://www.shop.test/"
[[steps]]
name = "lead-capture"
url = "http://www.shop.test/signup"
actions = [ { fill = "#email", value = "ann@example.com" }, { click = "#submit" }, { wait_ms = 500 } ]
"##;

    #[test]
    fn a_crawl_may_stand_for_the_steps_and_its_pages_become_steps() {
        let j = Journey::parse(
            "name = \"c\"\n[crawl]\nstart = \"https://www.shop.test/\"\nexclude = [\"*/logout*\"]\n",
        )
        .unwrap();
        let crawl = j.crawl.clone().unwrap();
        assert_eq!(
            (crawl.max_pages, crawl.max_depth, crawl.same_site),
            (50, 3, true)
        );
        let err = Journey::parse("name = \"c\"\n").unwrap_err();
        assert!(err.contains("[crawl]"), "{err}");
        let err = Journey::parse("name = \"c\"\n[crawl]\nmax_pages = 5\n").unwrap_err();
        assert!(err.contains("start"), "{err}");
        let pages = [
            "https://www.shop.test/".to_owned(),
            "https://www.shop.test/search?q=a".to_owned(),
            "http://www.shop.test/".to_owned(),
            "http://127.0.0.1/admin".to_owned(),
        ];
        let steps: Vec<(String, String)> = j
            .with_pages(&pages, false)
            .steps
            .into_iter()
            .map(|s| (s.name, s.url))
            .collect();
        assert_eq!(
            steps,
            [
                ("/".to_owned(), pages[0].clone()),
                ("/search?q=a".to_owned(), pages[1].clone()),
                ("/ (2)".to_owned(), pages[2].clone()),
            ],
            "a private address is not scanned without --allow-private-network"
        );
    }

    #[test]
    fn parses_the_issue_example() {
        let j = Journey::parse(ISSUE_EXAMPLE).unwrap();
        assert_eq!(j.name, "shop");
        assert_eq!(j.browser.args, vec!["--ignore-certificate-errors"]);
        assert_eq!(
            j.dns.unwrap().server_addr(),
            Some(([127, 0, 0, 1], 5353).into())
        );
        assert_eq!(j.consent.accept_all.unwrap().click, vec!["#cmp-accept"]);
        assert_eq!(
            j.inventory.unwrap().vendors,
            vec!["Google Analytics", "Meta"]
        );
        assert_eq!(j.steps.len(), 2);
        assert_eq!(
            j.steps[1].actions,
            vec![
                Action::Fill {
                    fill: "#email".into(),
                    value: "ann@example.com".into()
                },
                Action::Click {
                    click: "#submit".into()
                },
                Action::WaitMs { wait_ms: 500 },
            ]
        );
    }

    #[test]
    fn consent_values_and_wait_for_parse() {
        let j = Journey::parse(
            r##"
name = "x"
[consent.accept-all]
cookies = ["cmp=all"]
local_storage = { cmp = "all" }
[[steps]]
name = "a"
url = "https://a.test/"
actions = [{ wait_for = "#banner" }]
"##,
        )
        .unwrap();
        let accept = j.consent.accept_all.unwrap();
        assert_eq!(accept.cookies, vec!["cmp=all"]);
        assert_eq!(accept.local_storage["cmp"], "all");
        assert_eq!(
            j.steps[0].actions,
            vec![Action::WaitFor {
                wait_for: "#banner".into()
            }]
        );
    }

    #[test]
    fn malformed_files_name_the_key() {
        let cases = [
            ("name = 3\n[[steps]]\nname='a'\nurl='http://a.test/'", "name"),
            ("name = 'x'", "steps"),
            ("name = 'x'\nsteps = []", "steps"),
            ("name = 'x'\n[[steps]]\nname='a'\nurl='not a url'", "steps[0].url"),
            ("name = 'x'\n[[steps]]\nname='a'\nurl='ftp://a.test/'", "steps[0].url"),
            (
                "name = 'x'\n[[steps]]\nname='a'\nurl='http://a.test/'\n[[steps]]\nname='a'\nurl='http://a.test/'",
                "steps[1].name",
            ),
            (
                "name = 'x'\n[dns]\nserver='localhost'\n[[steps]]\nname='a'\nurl='http://a.test/'",
                "dns.server",
            ),
            ("name = 'x'\nbogus = 1\n[[steps]]\nname='a'\nurl='http://a.test/'", "bogus"),
            (
                "name = 'x'\n[[steps]]\nname='a'\nurl='http://a.test/'\nactions=[{ tap = '#x' }]",
                "an action is one of",
            ),
            (
                "name = 'x'\n[[steps]]\nname='a'\nurl='http://a.test/'\nactions=[{ click = '#x', value = 'y' }]",
                "an action is one of",
            ),
            (
                "name = 'x'\n[consent.reject-all]\ncookies=['novalue']\n[[steps]]\nname='a'\nurl='http://a.test/'",
                "consent.reject-all.cookies[0]",
            ),
        ];
        for (text, key) in cases {
            let err = Journey::parse(text).unwrap_err();
            assert!(
                err.contains(key),
                "error for {text:?} should name {key:?}: {err}"
            );
        }
    }

    #[test]
    fn custom_choices_and_tc_strings() {
        let tc = sightline_consent::TcString {
            consent_language: "EN".into(),
            publisher_cc: "DE".into(),
            purposes_consent: vec![1, 8],
            ..Default::default()
        }
        .encode()
        .unwrap();
        let j = Journey::parse(&format!(
            r##"
name = "x"
[consent.accept-all]
tcf = "{tc}"
[consent.custom.analytics-only]
click = ["#cmp-customize", "#cmp-save"]
grant = ["analytics"]
[consent.custom.b]
tcf = "{tc}"
grant = ["analytics", "advertising"]
[consent.custom.c]
grant = ["analytics"]
[consent.custom.c.cmp_ids]
didomi_purposes = ["audience-m-9P"]
usercentrics_services = ["HkocEodjb7"]
[[steps]]
name = "a"
url = "https://a.test/"
"##
        ))
        .unwrap();
        assert_eq!(
            j.consent.accept_all.as_ref().unwrap().tcf.as_deref(),
            Some(tc.as_str())
        );
        let names: Vec<String> = j.default_scenarios().iter().map(Scenario::name).collect();
        assert_eq!(
            names,
            [
                "no-interaction",
                "accept-all",
                "reject-all",
                "gpc",
                "custom:analytics-only",
                "custom:b",
                "custom:c"
            ]
        );
        // No selectors, no TC string: through the page's CMP, with the site's own ids.
        let through_cmp = j
            .consent_choice(&Scenario::Custom("c".into()))
            .unwrap()
            .unwrap();
        let ids = crate::cmp::CmpIds {
            didomi_purposes: vec!["audience-m-9P".into()],
            didomi_vendors: vec![],
            usercentrics_services: vec!["HkocEodjb7".into()],
        };
        assert_eq!(
            through_cmp.cmp,
            Some(crate::cmp::Choice::Custom(
                crate::cmp::Grants::of(&[Category::Analytics]),
                ids
            ))
        );
        let custom = Scenario::Custom("analytics-only".into());
        let choice = j.consent_choice(&custom).unwrap().unwrap();
        assert_eq!(choice.click, vec!["#cmp-customize", "#cmp-save"]);
        let refused = &j.custom_refusals()["analytics-only"];
        assert!(
            refused.contains(&Category::Advertising) && !refused.contains(&Category::Analytics)
        );
        assert_eq!(refused.len(), Category::PURPOSES.len() - 1);
        assert!(!j.custom_refusals()["b"].contains(&Category::Advertising));
        assert_eq!(j.consent_choice(&Scenario::Gpc).unwrap(), None);
        let auto = j.consent_choice(&Scenario::RejectAll).unwrap().unwrap();
        assert_eq!(auto.cmp, Some(crate::cmp::Choice::RejectAll));
        assert!(auto.click.is_empty());
        let err = j
            .consent_choice(&Scenario::Custom("nope".into()))
            .unwrap_err();
        assert!(err.contains("[consent.custom.nope]"), "{err}");
    }

    #[test]
    fn bad_custom_choices_name_the_key() {
        let step = "[[steps]]\nname='a'\nurl='http://a.test/'";
        let cases = [
            (
                format!("name='x'\n[consent.custom.a]\ngrant=['cmp']\n{step}"),
                "consent.custom.a.grant[0]",
            ),
            (
                format!("name='x'\n[consent.custom.a]\ngrant=['spying']\n{step}"),
                "grant",
            ),
            (
                format!("name='x'\n[consent.custom.'a b']\nclick=['#x']\n{step}"),
                "consent.custom.a b",
            ),
            (
                format!("name='x'\n[consent.custom.a]\ntcf='CPnotatcstring'\n{step}"),
                "consent.custom.a.tcf",
            ),
            (
                format!("name='x'\n[consent.reject-all]\ntcf='nope'\n{step}"),
                "consent.reject-all.tcf",
            ),
            (
                format!("name='x'\n[consent.custom.a]\ncookies=['x']\n{step}"),
                "consent.custom.a.cookies[0]",
            ),
            (
                format!("name='x'\n[consent.custom.a]\nrefuse=['analytics']\n{step}"),
                "refuse",
            ),
            (
                format!(
                    "name='x'\n[consent.custom.a.cmp_ids]\ndidomi_purposes=['ok', ' ']\n{step}"
                ),
                "consent.custom.a.cmp_ids.didomi_purposes[1]",
            ),
            (
                format!("name='x'\n[consent.custom.a.cmp_ids]\ndidomi_purpose=['x']\n{step}"),
                "didomi_purpose",
            ),
        ];
        for (text, key) in cases {
            let err = Journey::parse(&text).unwrap_err();
            assert!(
                err.contains(key),
                "error for {text:?} should name {key:?}: {err}"
            );
        }
    }

    #[test]
    fn inventory_files() {
        let i = Inventory::parse("vendors = [\"Meta\", \"Hotjar\"]\n").unwrap();
        assert_eq!(i.vendors, vec!["Meta", "Hotjar"]);
        assert!(Inventory::parse("vendor = [\"Meta\"]")
            .unwrap_err()
            .contains("vendor"));
        assert!(Inventory::parse("vendors = [\" \"]")
            .unwrap_err()
            .contains("vendors[0]"));
        assert!(Inventory::parse("vendors = 3").is_err());
        let dir = tempfile::tempdir().unwrap();
        let err = Inventory::load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(err.to_string().contains("inventory file"), "{err}");
    }

    #[test]
    fn filled_values_are_collected() {
        let j = Journey::parse(ISSUE_EXAMPLE).unwrap();
        assert_eq!(j.filled_values(), vec!["ann@example.com"]);
    }
}

#[cfg(test)]
mod safety_tests {
    use super::*;

    fn journey(browser: &str, url: &str, actions: &str) -> String {
        format!(
            "name = \"j\"\n[browser]\n{browser}\n[[steps]]\nname = \"s\"\nurl = \"{url}\"\nactions = [{actions}]\n"
        )
    }

    #[test]
    fn only_vetted_chromium_flags_are_accepted() {
        for bad in [
            "--renderer-cmd-prefix=sh -c 'touch /tmp/x'",
            "--utility-cmd-prefix=/bin/sh",
            "--proxy-server=10.0.0.1:3128",
            "--remote-debugging-port=9222",
            "-renderer-cmd-prefix=x",
            "renderer-cmd-prefix=x",
            "--WINDOW-SIZE=1,1",
            "--window-size =1,1",
        ] {
            let text = journey(&format!("args = [{bad:?}]"), "http://example.com/", "");
            let err = Journey::parse(&text).unwrap_err();
            assert!(err.contains("browser.args[0]"), "{bad}: {err}");
            assert!(err.contains("not allowed"), "{bad}: {err}");
            assert!(
                err.contains("--window-size"),
                "names the allowed flags: {err}"
            );
        }
        let text = journey(
            r#"args = ["--ignore-certificate-errors", "--window-size=1280,800", "--lang=de", "--user-agent=Mozilla/5.0 (X11) Test"]"#,
            "http://example.com/",
            "",
        );
        Journey::parse(&text).unwrap();
        assert!(check_browser_arg("--user-agent=a\nb").is_err());
    }

    #[test]
    fn wait_ms_is_bounded() {
        let text = journey("", "http://example.com/", "{ wait_ms = 60001 }");
        let err = Journey::parse(&text).unwrap_err();
        assert!(err.contains("steps[0].actions[0]"), "{err}");
        assert!(err.contains("60000"), "{err}");
        Journey::parse(&journey("", "http://example.com/", "{ wait_ms = 60000 }")).unwrap();
    }

    #[test]
    fn private_and_loopback_urls_need_the_opt_in() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://app.localhost/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            let err = check_scan_url(url, false).unwrap_err();
            assert!(err.contains("--allow-private-network"), "{url}: {err}");
            check_scan_url(url, true).unwrap();
        }
        for url in [
            "https://example.com/",
            "http://8.8.8.8/",
            "http://[2001:db8::1]/",
        ] {
            check_scan_url(url, false).unwrap();
        }
        assert!(check_scan_url("file:///etc/passwd", true).is_err());
        assert!(check_scan_url("javascript:alert(1)", true).is_err());
    }

    #[test]
    fn a_journey_with_a_loopback_url_parses_but_is_not_scannable_without_the_opt_in() {
        let j = Journey::parse(&journey("", "http://127.0.0.1:9/", "")).unwrap();
        let err = j.check_scannable(false).unwrap_err();
        assert!(err.contains("steps[0].url"), "{err}");
        j.check_scannable(true).unwrap();

        let j = Journey::parse(&journey(
            "host_resolver_rules = \"MAP * 10.0.0.1\"",
            "http://example.com/",
            "",
        ))
        .unwrap();
        let err = j.check_scannable(false).unwrap_err();
        assert!(err.contains("host_resolver_rules"), "{err}");
        j.check_scannable(true).unwrap();
    }
}
