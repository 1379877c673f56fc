//! Sightline's journey scanner: runs a journey file in headless Chromium under each consent
//! scenario, records every request with its initiator chain and the cookies left behind, maps
//! hosts to vendors and turns the evidence into findings.
//!
//! Data flows `journey → browser (capture) → classify → findings → report`; only `browser`
//! does IO beyond reading the journey and catalog files.
//!
//! The Chromium driver is behind the `browser` feature (on by default). Without it every
//! type and the journey, catalog, findings, report and diff code stay; only running a scan
//! is refused ([`ScanError::NoBrowser`]).

#[cfg(feature = "browser")]
mod browser;
pub mod catalog;
pub mod cmp;
pub mod crawl;
pub mod diff;
/// The DNS wire format (a CNAME query and its answer) is always built: the answer parser
/// reads bytes from the network and is fuzzed (fuzz/fuzz_targets/dns_answer.rs); the UDP
/// look-up itself needs the `browser` feature's tokio.
pub mod dns;
pub mod evidence;
pub mod findings;
pub mod journey;
pub mod pii;
pub mod report;
pub mod tcfapi;
pub mod trackerdb;
pub mod vendor;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use catalog::Catalog;
pub use diff::{diff, ReportDiff};
pub use evidence::Scenario;
pub use findings::{Finding, FindingKind, InventoryTag, Severity, TagClass, TagState};
pub use journey::Journey;
pub use report::Report;
pub use vendor::{Category, Vendor};

#[cfg(feature = "browser")]
use {
    browser::{Capture, Settings},
    catalog::site_of,
    evidence::{CookieRecord, ScenarioEvidence},
    findings::{Cloaked, RuleInput},
    futures_util::StreamExt,
    pii::PiiNeedles,
    std::collections::HashMap,
    std::net::SocketAddr,
    std::time::Instant,
};

/// Where Debian's package puts Chromium.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("journey file {path}: {message}")]
    Journey { path: String, message: String },
    #[error("vendor catalog {path}: {message}")]
    Catalog { path: String, message: String },
    #[error("tracker database {path}: {message}")]
    TrackerDb { path: String, message: String },
    #[error("inventory file {path}: {message}")]
    Inventory { path: String, message: String },
    #[error(
        "Chromium not found at {path}: install Debian's chromium with scripts/install-chromium.sh \
         (or point SIGHTLINE_CHROMIUM at a Chromium binary)"
    )]
    ChromiumMissing { path: String },
    #[error("cannot write the report to {path}: {message}")]
    Output { path: String, message: String },
    #[error("cannot read the report {path}: {message}")]
    Input { path: String, message: String },
    #[error("journey {journey} cannot be scanned: {message}")]
    NotScannable { journey: String, message: String },
    /// A build without the `browser` feature: no Chromium driver to scan with.
    #[error(
        "this build of Sightline cannot run scans: a scan needs the `browser` feature (on by \
         default), which drives headless Chromium; rebuild with it (without \
         --no-default-features, or with --features browser)"
    )]
    NoBrowser,
}

/// How to run a scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Scenarios to run, in this order; empty means all four.
    pub scenarios: Vec<Scenario>,
    /// The Chromium binary; defaults to `$SIGHTLINE_CHROMIUM`, else `/usr/bin/chromium`.
    pub chromium: PathBuf,
    /// A user vendor catalog that extends the shipped one.
    pub user_catalog: Option<PathBuf>,
    /// An external tracker database (Ghostery's trackerdb.json or a Tracker Radar
    /// domain_map.json), asked for hosts neither catalog knows.
    pub tracker_db: Option<PathBuf>,
    /// An inventory file (`vendors = [...]`) used instead of the journey's `[inventory]`.
    pub inventory: Option<PathBuf>,
    /// The governance registry's tags, which then are the inventory (see
    /// [`findings::RuleInput::tags`]); neither the journey's `[inventory]` nor an inventory
    /// file is read.
    pub tags: Option<Vec<InventoryTag>>,
    /// Capture a screenshot after each step (default on); written beside report.json.
    pub screenshots: bool,
    /// How many scenarios run at once, each in its own Chromium; 0 (the default) picks
    /// from the machine's cores and free memory ([`auto_parallel`]).
    pub parallel: usize,
    /// A step has settled once nothing is in flight and no request started or ended for
    /// this long (default 500 ms) …
    pub quiet: Duration,
    /// … or after this long at most (default 10 s).
    pub settle_cap: Duration,
    /// Bound on one page load, one selector wait or one browser command (default 15 s).
    pub step_timeout: Duration,
    /// Also load the journey once more with every third-party request blocked and report
    /// each no-interaction step's load time without them (default off: it costs a run).
    pub tag_cost: bool,
    /// Let steps load `localhost` and loopback, private and link-local IP literals, and let
    /// the journey's `host_resolver_rules` apply (default off: a stored journey could
    /// otherwise point the scanner at the scanning machine or its network).
    pub allow_private_network: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            scenarios: Vec::new(),
            chromium: std::env::var_os("SIGHTLINE_CHROMIUM")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM)),
            user_catalog: None,
            tracker_db: None,
            inventory: None,
            tags: None,
            screenshots: true,
            parallel: 0,
            quiet: Duration::from_millis(500),
            settle_cap: Duration::from_secs(10),
            step_timeout: Duration::from_secs(15),
            tag_cost: false,
            allow_private_network: false,
        }
    }
}

/// Scans a journey file under the chosen consent scenarios. Scenario failures (a page that
/// does not load, a selector that never appears, a browser that dies) do not fail the scan:
/// the report keeps what was captured and marks the scenario `incomplete` with the reason.
/// A build without the `browser` feature returns [`ScanError::NoBrowser`] before reading
/// anything.
pub async fn run_scan(journey_path: &Path, opts: &ScanOptions) -> Result<Report, ScanError> {
    if !cfg!(feature = "browser") {
        return Err(ScanError::NoBrowser);
    }
    let mut journey = Journey::load(journey_path)?;
    if let Some(path) = &opts.inventory {
        journey.inventory = Some(journey::Inventory::load(path)?);
    }
    let mut catalog = Catalog::with_user_file(opts.user_catalog.as_deref())?;
    if let Some(path) = &opts.tracker_db {
        catalog = catalog.with_tracker_db(path)?;
    }
    scan_journey(&journey, &catalog, opts).await
}

/// [`run_scan`] for a journey and catalog already loaded: [`ScanError::NoBrowser`] in a
/// build without the `browser` feature.
#[cfg(not(feature = "browser"))]
pub async fn scan_journey(
    _journey: &Journey,
    _catalog: &Catalog,
    _opts: &ScanOptions,
) -> Result<Report, ScanError> {
    Err(ScanError::NoBrowser)
}

/// [`run_scan`] for a journey and catalog already loaded.
#[cfg(feature = "browser")]
pub async fn scan_journey(
    journey: &Journey,
    catalog: &Catalog,
    opts: &ScanOptions,
) -> Result<Report, ScanError> {
    journey
        .check_scannable(opts.allow_private_network)
        .map_err(|message| ScanError::NotScannable {
            journey: journey.name.clone(),
            message,
        })?;
    if !opts.chromium.is_file() {
        return Err(ScanError::ChromiumMissing {
            path: opts.chromium.display().to_string(),
        });
    }
    let started = Instant::now();
    let settings = Settings {
        chromium: opts.chromium.clone(),
        quiet: opts.quiet,
        settle_cap: opts.settle_cap,
        step_timeout: opts.step_timeout,
        block_third_parties: false,
        screenshots: opts.screenshots,
    };
    let crawled;
    let journey = match &journey.crawl {
        Some(crawl) => {
            let not_scannable = |message: String| ScanError::NotScannable {
                journey: journey.name.clone(),
                message,
            };
            let pages = browser::discover(journey, crawl, &settings)
                .await
                .map_err(|e| not_scannable(format!("the crawl failed: {e}")))?;
            crawled = journey.with_pages(&pages, opts.allow_private_network);
            if crawled.steps.is_empty() {
                return Err(not_scannable(
                    "the crawl found no page to scan: check [crawl] start, sitemap, include and exclude".into(),
                ));
            }
            &crawled
        }
        None => journey,
    };
    let scenarios = if opts.scenarios.is_empty() {
        journey.default_scenarios()
    } else {
        opts.scenarios.clone()
    };
    let parallel = match opts.parallel {
        0 => auto_parallel(
            std::thread::available_parallelism().map_or(1, usize::from),
            mem_available(),
        ),
        n => n.min(MAX_PARALLEL),
    };
    // Each scenario has its own browser and profile, so they can overlap; `buffered` hands
    // the results back in the order the scenarios were asked for.
    let settings_ref = &settings;
    let evidence: Vec<ScenarioEvidence> = futures_util::stream::iter(scenarios)
        .map(|scenario| async move {
            classify(
                browser::run_scenario(journey, scenario, settings_ref).await,
                catalog,
            )
        })
        .buffered(parallel)
        .collect()
        .await;
    let mut evidence = evidence;
    if opts.tag_cost {
        let blocked = Settings {
            block_third_parties: true,
            screenshots: false,
            ..settings.clone()
        };
        let bare = browser::run_scenario(journey, Scenario::NoInteraction, &blocked).await;
        add_blocked_load_times(&mut evidence, &bare.evidence);
    }
    let cloaked = match journey.dns.as_ref().and_then(|d| d.server_addr()) {
        Some(server) => find_cloaked(server, &evidence, catalog).await,
        None => HashMap::new(),
    };
    let input = RuleInput {
        inventory: journey.inventory.as_ref().map(|i| i.vendors.clone()),
        tags: opts.tags.clone(),
        pii: PiiNeedles::from_values(&journey.filled_values()),
        cloaked,
        refusals: journey.custom_refusals(),
    };
    let found = findings::evaluate(&evidence, &input);
    let duration = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut report = Report::new(&journey.name, evidence, found, duration);
    if journey.crawl.is_some() {
        let urls: Vec<String> = journey.steps.iter().map(|s| s.url.clone()).collect();
        let by_url = crawl::templates(&urls);
        let templates = journey
            .steps
            .iter()
            .filter_map(|s| Some((s.name.clone(), by_url.get(&s.url)?.clone())))
            .collect();
        report.templates = report::by_template(&report.findings, &templates);
    }
    Ok(report)
}

/// Upper bound on scenarios run at once, whatever is asked.
pub const MAX_PARALLEL: usize = 8;

/// Memory one headless Chromium scanning a page wants, with room to spare.
const BROWSER_MEMORY: u64 = 512 * 1024 * 1024;

/// How many scenarios to run at once: one per core, as many browsers as free memory holds
/// (512 MiB each), at most 4 by default; at least 1.
pub fn auto_parallel(cores: usize, mem_available: Option<u64>) -> usize {
    let by_memory = mem_available.map_or(1, |m| {
        usize::try_from(m / BROWSER_MEMORY).unwrap_or(usize::MAX)
    });
    cores.min(by_memory).clamp(1, 4)
}

/// `MemAvailable` of /proc/meminfo in bytes; `None` where there is no such file.
#[cfg(feature = "browser")]
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Copies the load times of the run with third parties blocked onto the no-interaction steps
/// that loaded fine in both.
#[cfg(feature = "browser")]
fn add_blocked_load_times(evidence: &mut [ScenarioEvidence], bare: &ScenarioEvidence) {
    let Some(sc) = evidence
        .iter_mut()
        .find(|s| s.scenario == Scenario::NoInteraction)
    else {
        return;
    };
    for (step, bare_step) in sc.steps.iter_mut().zip(&bare.steps) {
        if step.error.is_none() && bare_step.error.is_none() {
            step.timing.load_ms_third_parties_blocked = Some(bare_step.timing.load_ms);
        }
    }
}

/// Looks up the CNAME chain of every first-party host the scenarios contacted and keeps those
/// that end at a vendor needing consent. A host whose look-up fails is left out: the check
/// only ever adds findings it can prove.
#[cfg(feature = "browser")]
async fn find_cloaked(
    server: SocketAddr,
    evidence: &[ScenarioEvidence],
    catalog: &Catalog,
) -> HashMap<String, Cloaked> {
    let mut hosts: Vec<String> = evidence
        .iter()
        .flat_map(|sc| &sc.steps)
        .flat_map(|st| &st.requests)
        .filter(|r| !r.third_party)
        .map(|r| r.host())
        .filter(|h| !h.is_empty() && h.parse::<std::net::IpAddr>().is_err())
        .collect();
    hosts.sort();
    hosts.dedup();
    let mut cloaked = HashMap::new();
    for host in hosts {
        let Ok(chain) = dns::cname_chain(server, &host, Duration::from_secs(2)).await else {
            continue;
        };
        let hit = chain.iter().find_map(|target| {
            catalog
                .lookup(target)
                .filter(|v| v.category.needs_consent())
                .map(|v| Cloaked {
                    target: target.clone(),
                    vendor: v.name.clone(),
                })
        });
        if let Some(c) = hit {
            cloaked.insert(host, c);
        }
    }
    cloaked
}

/// Marks first/third parties and vendors on requests and cookies, and links initiator chains.
#[cfg(feature = "browser")]
fn classify(capture: Capture, catalog: &Catalog) -> ScenarioEvidence {
    let Capture {
        mut evidence,
        cookies,
    } = capture;
    for (step, raw_cookies) in evidence.steps.iter_mut().zip(cookies) {
        let first_party = url::Url::parse(&step.url)
            .ok()
            .and_then(|u| u.host_str().map(site_of))
            .unwrap_or_default();
        for r in &mut step.requests {
            let host = r.host();
            if host.is_empty() {
                continue; // data:, blob: and the like never leave the browser
            }
            r.third_party = site_of(&host) != first_party;
            if !r.third_party {
                // Headers are evidence of what third parties receive; the report keeps
                // first-party requests lean.
                r.headers.clear();
            }
            if let Some(v) = catalog.lookup(&host).filter(|_| r.third_party) {
                r.vendor = Some(v.name.clone());
                r.category = Some(v.category);
            }
        }
        for p in &mut step.pending {
            let host = url::Url::parse(&p.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            if host.is_empty() {
                continue;
            }
            p.third_party = site_of(&host) != first_party;
            p.vendor = catalog
                .lookup(&host)
                .filter(|_| p.third_party)
                .map(|v| v.name.clone());
        }
        step.cookies = raw_cookies
            .into_iter()
            .map(|c| {
                let host = c.domain.trim_start_matches('.');
                let third_party = site_of(host) != first_party;
                CookieRecord {
                    vendor: catalog
                        .lookup(host)
                        .filter(|_| third_party)
                        .or_else(|| catalog.lookup_cookie(&c.name))
                        .map(|v| v.name.clone()),
                    third_party,
                    name: c.name,
                    domain: c.domain,
                    path: c.path,
                    expires: c.expires,
                }
            })
            .collect();
        for entry in &mut step.local_storage {
            let host = url::Url::parse(&entry.origin)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            entry.third_party = site_of(&host) != first_party;
            // Scripts of a vendor loaded by the page write into the page's own storage: the
            // key names the vendor there, as a cookie name does.
            entry.vendor = catalog
                .lookup(&host)
                .filter(|_| entry.third_party)
                .or_else(|| catalog.lookup_cookie(&entry.key))
                .map(|v| v.name.clone());
        }
    }
    evidence::link_initiator_chains(&mut evidence.steps);
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_follows_cores_and_memory() {
        const GIB: u64 = 1024 * 1024 * 1024;
        assert_eq!(auto_parallel(2, Some(16 * GIB)), 2);
        assert_eq!(auto_parallel(16, Some(16 * GIB)), 4);
        assert_eq!(auto_parallel(8, Some(GIB)), 2);
        assert_eq!(auto_parallel(8, Some(GIB / 4)), 1);
        assert_eq!(auto_parallel(0, None), 1);
        assert_eq!(auto_parallel(8, None), 1);
    }

    /// Only in a build without the `browser` feature (`--no-default-features`).
    #[cfg(not(feature = "browser"))]
    #[tokio::test]
    async fn a_scan_without_the_browser_feature_says_how_to_get_it() {
        let err = run_scan(Path::new("journey.toml"), &ScanOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ScanError::NoBrowser), "{err:?}");
        assert!(err.to_string().contains("`browser` feature"), "{err}");
        let journey = Journey::parse(
            r#"
name = "shop"
[[steps]]
name = "landing"
url = "https://shop.example/"
"#,
        )
        .unwrap();
        let err = scan_journey(&journey, &Catalog::builtin(), &ScanOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ScanError::NoBrowser), "{err:?}");
    }
}
