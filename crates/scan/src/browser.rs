//! Drives Debian's Chromium over the DevTools Protocol (chromiumoxide) through one scenario of
//! a journey and records what the network did. IO only: classification and rules live
//! elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::dom_storage::{
    GetDomStorageItemsParams, SerializedStorageKey, StorageId,
};
use chromiumoxide::cdp::browser_protocol::network::EventRequestWillBeSentExtraInfo;
use chromiumoxide::cdp::browser_protocol::network::{BlockPattern, SetBlockedUrLsParams};
use chromiumoxide::cdp::browser_protocol::network::{CookieParam, ResourceType};
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived,
    EventResponseReceivedExtraInfo, GetCookiesParams, Headers, SetExtraHttpHeadersParams,
};
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, CaptureScreenshotFormat, CaptureScreenshotParams,
    CreateIsolatedWorldParams, FrameId, GetFrameTreeParams,
};
use chromiumoxide::cdp::browser_protocol::storage::GetStorageKeyParams;
use chromiumoxide::cdp::js_protocol::debugger::{
    EnableParams as DebuggerEnableParams, EventScriptParsed,
};
use chromiumoxide::cdp::js_protocol::runtime::{EvaluateParams, ExecutionContextId};
use chromiumoxide::error::CdpError;
use chromiumoxide::Page;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::catalog::site_of;
use crate::cmp::{self, Banner};
use crate::crawl::Crawl;
use crate::evidence::{
    PendingRequest, RequestRecord, Scenario, ScenarioEvidence, ScriptRun, StepEvidence, StepTiming,
    StorageRecord,
};
use crate::journey::{Action, ConsentChoice, Journey};

/// How a scenario is run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub chromium: PathBuf,
    /// A step is settled once nothing is in flight and no request started or ended for
    /// this long …
    pub quiet: Duration,
    /// … or once this much time has passed since it started settling.
    pub settle_cap: Duration,
    /// Bound on one navigation, one selector wait and one CDP command.
    pub step_timeout: Duration,
    /// Block every request outside the step URL's site (to measure what the tags cost).
    pub block_third_parties: bool,
    /// Capture a PNG of the viewport after each step.
    pub screenshots: bool,
}

/// A cookie as read from the browser, before classification.
#[derive(Debug, Clone)]
pub(crate) struct RawCookie {
    pub name: String,
    pub domain: String,
    pub path: String,
    pub expires: Option<f64>,
}

/// Raw capture of one scenario: requests (unclassified) and cookies per step.
pub(crate) struct Capture {
    pub evidence: ScenarioEvidence,
    pub cookies: Vec<Vec<RawCookie>>,
}

/// Runs one scenario in a fresh profile. Never fails: whatever went wrong is recorded as the
/// scenario's `incomplete` reason, with the evidence captured until then.
pub(crate) async fn run_scenario(journey: &Journey, scenario: Scenario, s: &Settings) -> Capture {
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let mut steps: Vec<StepEvidence> = Vec::new();
    let mut cookies = Vec::new();
    let mut banner = None;
    let out = Output {
        recorder: &recorder,
        steps: &mut steps,
        cookies: &mut cookies,
        banner: &mut banner,
    };
    let result = drive(journey, &scenario, s, out).await;
    let (requests, scripts) = lock(&recorder).finish();
    for (step_index, rec) in requests {
        if let Some(step) = steps.get_mut(step_index) {
            step.requests.push(rec);
        }
    }
    for (step_index, run) in scripts {
        if let Some(step) = steps.get_mut(step_index) {
            step.scripts_run.push(run);
        }
    }
    Capture {
        evidence: ScenarioEvidence {
            scenario,
            steps,
            incomplete: result.err(),
            banner,
        },
        cookies,
    }
}

fn lock(r: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    // A listener that panicked leaves plain data behind; keep using it.
    r.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bounds every browser call: it fails after the step timeout, or at once when the
/// browser's connection is lost, instead of waiting on a browser that is gone.
struct Session {
    lost: watch::Receiver<bool>,
    timeout: Duration,
}

impl Session {
    fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    async fn call<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = chromiumoxide::Result<T>>,
    ) -> Result<T, String> {
        self.try_call(fut).await.map_err(|e| match e {
            CallError::Failed(e) => format!("{what}: {e}"),
            CallError::Timeout => format!("{what}: no answer within {:?}", self.timeout),
            CallError::Lost => format!("{what}: the browser died (DevTools connection lost)"),
        })
    }

    async fn try_call<T>(
        &self,
        fut: impl std::future::Future<Output = chromiumoxide::Result<T>>,
    ) -> Result<T, CallError> {
        let mut lost = self.lost.clone();
        tokio::select! {
            r = tokio::time::timeout(self.timeout, fut) => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(CdpError::Timeout)) | Err(_) => Err(CallError::Timeout),
                Ok(Err(e)) => Err(CallError::Failed(e)),
            },
            _ = lost.wait_for(|lost| *lost) => Err(CallError::Lost),
        }
    }
}

enum CallError {
    Failed(CdpError),
    Timeout,
    Lost,
}

/// The switches every scan's Chromium starts with, before the journey's own. They do two
/// jobs. They load pages the way the scan needs to see them (headless, http kept on http,
/// cross-site iframes in the page's process so their requests reach the page's Network
/// events). And they keep the browser quiet: nothing may leave it that the journey's pages
/// did not cause, because a privacy scanner must not tell third parties which pages it
/// visits, and the scanned site must see the visit and nothing else (issue 24). The quiet
/// switches follow the lists tools that automate Chromium keep (chrome-launcher's `flags.ts`
/// and "Chrome flags for tools", puppeteer's defaults) plus what Debian's Chromium 156 still
/// did with those alone; `tests/e2e.rs`
/// (`the_browser_sends_nothing_the_pages_did_not_cause`) fails on any request the pages did
/// not cause.
const BROWSER_FLAGS: &[&str] = &[
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-site-isolation-trials",
    // No first-run wizard, welcome page, default-browser prompt, search engine choice or
    // default apps.
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-search-engine-choice-screen",
    "--disable-default-apps",
    // Background services: the variations seed, extension and Safe Browsing list updates,
    // GCM, the upgrade detector, …
    "--disable-background-networking",
    // The default components (CRLSet, Widevine, …) are not registered for updates …
    "--disable-component-update",
    // … but a feature may still register one and ask for it on demand (Chromium 156 asks
    // update.googleapis.com for the on-device model manifest at every start). The update
    // server is moved to port 9 (discard), which Chromium refuses to connect to
    // (ERR_UNSAFE_PORT): nothing is sent.
    "--component-updater=url-source=http://127.0.0.1:9/",
    // No browser sign-in (no account-consistency headers added to Google requests), and the
    // account check Chromium makes at every start (POST accounts.google.com/ListAccounts,
    // which no switch or preference turns off) goes to the same refused port.
    "--allow-browser-signin=false",
    "--gaia-url=http://127.0.0.1:9/",
    "--disable-sync",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-client-side-phishing-detection",
    // Domain Reliability: reports about Google sites uploaded to Google.
    "--disable-domain-reliability",
    // No field-trial testing config: the browser behaves the same in every scan.
    "--disable-field-trial-config",
    // Metrics are recorded (nothing reads them) but never reported; no crash uploads.
    "--metrics-recording-only",
    "--disable-breakpad",
    // No desktop keyring over D-Bus for a throwaway profile.
    "--password-store=basic",
];

/// Features switched off (one `--disable-features`, since Chromium keeps only the last).
const DISABLED_FEATURES: &[&str] = &[
    // Keep http URLs on http instead of trying https first …
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    // … and cross-site iframes in the page's process, so their requests are seen.
    "IsolateOrigins",
    "site-per-process",
    // Quiet: Google Translate, optimization hints, Cast discovery, autofill's form
    // queries (content-autofill.googleapis.com), certificate-transparency list updates,
    // the new-tab feed, and the network time queries (clients2.google.com/time).
    "Translate",
    "OptimizationHints",
    "MediaRouter",
    "DialMediaRouteProvider",
    "AutofillServerCommunication",
    "CertificateTransparencyComponentUpdater",
    "InterestFeedContentSuggestions",
    "NetworkTimeServiceQuerying",
];

/// The preferences of each scan's fresh profile, written before Chromium first starts on it
/// so that neither Chromium's defaults nor a distribution's initial preferences (Debian's
/// `/etc/chromium/master_preferences`) apply: the browser starts on `about:blank` (no start
/// or new-tab page: Debian's Chromium otherwise opens start.duckduckgo.com), and the
/// per-profile services that call Google are off. `alternate_error_pages` also gates the
/// captive-portal probes made after a certificate error.
fn profile_preferences() -> serde_json::Value {
    serde_json::json!({
        "session": { "restore_on_startup": 4, "startup_urls": ["about:blank"] },
        "homepage": "about:blank",
        "homepage_is_newtabpage": false,
        "browser": { "check_default_browser": false, "has_seen_welcome_page": true },
        "alternate_error_pages": { "enabled": false },
        "autofill": { "profile_enabled": false, "credit_card_enabled": false },
        "credentials_enable_service": false,
        "net": { "network_prediction_options": 2 },
        "safebrowsing": { "enabled": false, "scout_reporting_enabled": false },
        "search": { "suggest_enabled": false },
        "signin": { "allowed": false },
        "spellcheck": { "use_spelling_service": false },
        "translate": { "enabled": false },
    })
}

/// Writes [`profile_preferences`] into a new profile directory.
fn write_profile(dir: &Path) -> std::io::Result<()> {
    let default = dir.join("Default");
    std::fs::create_dir_all(&default)?;
    std::fs::write(
        default.join("Preferences"),
        profile_preferences().to_string(),
    )
}

/// Where Debian's package puts the browser itself.
const DEBIAN_BROWSER: &str = "/usr/lib/chromium/chromium";

/// The program to start for the configured Chromium. Debian's `/usr/bin/chromium` is a
/// shell script that sources `/etc/chromium.d/*` before running the browser: those files add
/// flags of their own (`--enable-remote-extensions`, which keeps the script from adding
/// `--disable-background-networking`, and `--load-extension`) and export Google API keys,
/// and an administrator may add more. A scan starts the browser itself instead, so that
/// only [`BROWSER_FLAGS`] and the journey's flags apply. Any other binary or wrapper is run
/// as configured (its flags come before ours, and Chromium keeps the last of a repeated
/// switch).
fn launch_binary(configured: &Path) -> PathBuf {
    launch_binary_with(configured, Path::new(DEBIAN_BROWSER))
}

fn launch_binary_with(configured: &Path, debian_browser: &Path) -> PathBuf {
    use std::io::Read;
    let mut head = Vec::new();
    let read = std::fs::File::open(configured)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .is_ok();
    let is_debian_wrapper =
        read && head.starts_with(b"#!") && head.windows(16).any(|w| w == b"/etc/chromium.d/");
    if is_debian_wrapper && debian_browser.is_file() {
        debian_browser.to_path_buf()
    } else {
        configured.to_path_buf()
    }
}

/// Chromium flags as (name, value) pairs; chromiumoxide adds the leading dashes. The
/// journey's own flags are checked against the allowed list again here, at launch, however
/// the journey was made.
fn chromium_args(journey: &Journey) -> Result<Vec<(String, Option<String>)>, String> {
    let mut flags: Vec<String> = BROWSER_FLAGS.iter().map(|s| s.to_string()).collect();
    flags.push(format!(
        "--disable-features={}",
        DISABLED_FEATURES.join(",")
    ));
    if let Some(rules) = &journey.browser.host_resolver_rules {
        flags.push(format!("--host-resolver-rules={rules}"));
    }
    let mut args: Vec<(String, Option<String>)> = flags
        .iter()
        .map(|f| {
            let f = f.trim().trim_start_matches("--");
            match f.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (f.to_owned(), None),
            }
        })
        .collect();
    for arg in &journey.browser.args {
        let (name, value) = crate::journey::check_browser_arg(arg)?;
        args.push((name.to_owned(), value.map(str::to_owned)));
    }
    Ok(args)
}

async fn drive(
    journey: &Journey,
    scenario: &Scenario,
    s: &Settings,
    out: Output<'_>,
) -> Result<(), String> {
    let choice = journey.consent_choice(scenario)?;
    let launched = Launched::start(journey, s).await?;
    let result = drive_page(
        journey,
        scenario,
        s,
        &launched.browser,
        &launched.session,
        choice,
        out,
    )
    .await;
    launched.close().await;
    result
}

/// A Chromium started for one scenario (or a crawl), with a profile of its own.
struct Launched {
    browser: Browser,
    session: Session,
    handler_task: tokio::task::JoinHandle<()>,
    /// Removed when dropped, after the browser is gone.
    _profile: tempfile::TempDir,
}

impl Launched {
    async fn start(journey: &Journey, s: &Settings) -> Result<Launched, String> {
        let profile =
            tempfile::tempdir().map_err(|e| format!("cannot create a profile dir: {e}"))?;
        write_profile(profile.path()).map_err(|e| format!("cannot write the profile: {e}"))?;
        let mut builder = BrowserConfig::builder()
            .chrome_executable(launch_binary(&s.chromium))
            .disable_default_args()
            .no_sandbox()
            .user_data_dir(profile.path());
        for (name, value) in chromium_args(journey)? {
            builder = match value {
                Some(v) => builder.arg((name.as_str(), v.as_str())),
                None => builder.arg(name),
            };
        }
        let config = builder
            .disable_cache()
            .launch_timeout(s.step_timeout)
            .request_timeout(s.step_timeout)
            .build()
            .map_err(|e| format!("browser config: {e}"))?;
        let (browser, mut handler) = Browser::launch(config)
            .await
            .map_err(|e| format!("cannot start {}: {e}", s.chromium.display()))?;
        // The handler drives the CDP connection; a WebSocket error means the browser is gone
        // (crashed or killed), which every pending call then hears about through `lost`.
        let (lost_tx, lost) = watch::channel(false);
        let handler_task = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(CdpError::Ws(_)) = event {
                    break;
                }
            }
            let _ = lost_tx.send(true);
        });
        Ok(Launched {
            browser,
            session: Session {
                lost,
                timeout: s.step_timeout,
            },
            handler_task,
            _profile: profile,
        })
    }

    async fn close(mut self) {
        let closed = !self.session.is_lost()
            && matches!(
                tokio::time::timeout(Duration::from_secs(5), self.browser.close()).await,
                Ok(Ok(_))
            );
        if !closed {
            let _ = self.browser.kill().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.wait()).await;
        self.handler_task.abort();
    }
}

/// The pages a journey's `[crawl]` finds: a sitemap's (and its index's sitemaps') URLs,
/// then pages reached by following links from `start`, breadth first, up to `max_depth`
/// clicks away, each kept only if the crawl wants it, until `max_pages`. Visited with no
/// consent given; a page that does not load is skipped.
pub(crate) async fn discover(
    journey: &Journey,
    crawl: &Crawl,
    s: &Settings,
) -> Result<Vec<String>, String> {
    let launched = Launched::start(journey, s).await?;
    let found = crawl_pages(&launched, crawl, s).await;
    launched.close().await;
    found
}

async fn crawl_pages(
    launched: &Launched,
    crawl: &Crawl,
    s: &Settings,
) -> Result<Vec<String>, String> {
    let ses = &launched.session;
    let page = ses
        .call(
            "cannot open a page",
            launched.browser.new_page("about:blank"),
        )
        .await?;
    let mut pages: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut keep = |url: &str, pages: &mut Vec<String>| -> bool {
        match crate::crawl::page(url) {
            Some(url) if pages.len() < crawl.max_pages && crawl.wants(&url) => {
                if seen.insert(url.clone()) {
                    pages.push(url);
                    return true;
                }
                false
            }
            _ => false,
        }
    };
    let mut sitemaps: Vec<String> = crawl.sitemap.iter().cloned().collect();
    let mut read = 0;
    let mut unread = None;
    while let Some(sitemap) = sitemaps.pop() {
        if read >= crate::crawl::MAX_SITEMAPS {
            break;
        }
        read += 1;
        let text = match page_text(ses, &page, &sitemap).await {
            Ok(text) => text,
            Err(e) => {
                unread.get_or_insert(e);
                continue;
            }
        };
        let listed = crate::crawl::sitemap(&text);
        sitemaps.extend(listed.sitemaps);
        for url in listed.pages {
            keep(&url, &mut pages);
        }
    }
    if let Some(start) = &crawl.start {
        let mut frontier = vec![start.clone()];
        keep(start, &mut pages);
        // Links on pages `depth` clicks away are `depth + 1` away.
        for _depth in 0..crawl.max_depth {
            let mut next = Vec::new();
            for url in frontier {
                if pages.len() >= crawl.max_pages {
                    break;
                }
                let Ok(links) = links_of(ses, &page, s, &url).await else {
                    continue;
                };
                for link in links {
                    if keep(&link, &mut pages) {
                        next.push(link);
                    }
                }
            }
            frontier = next;
        }
    }
    match unread {
        Some(e) if pages.is_empty() => Err(format!("the sitemap could not be read: {e}")),
        _ => Ok(pages),
    }
}

/// The text of the document at `url` (a sitemap's XML as served).
async fn page_text(ses: &Session, page: &Page, url: &str) -> Result<String, String> {
    ses.call(&format!("cannot load {url}"), page.goto(url))
        .await?;
    let text = ses
        .call(
            "cannot read the document",
            page.evaluate(
                "document instanceof XMLDocument ? new XMLSerializer().serializeToString(document) \
                 : document.documentElement.outerHTML",
            ),
        )
        .await?;
    Ok(text.into_value::<String>().unwrap_or_default())
}

/// The links of the page at `url`, once it settled, as absolute URLs.
async fn links_of(
    ses: &Session,
    page: &Page,
    s: &Settings,
    url: &str,
) -> Result<Vec<String>, String> {
    ses.call(&format!("cannot load {url}"), page.goto(url))
        .await?;
    tokio::time::sleep(s.quiet).await;
    let links = ses
        .call(
            "cannot read the links",
            page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)"),
        )
        .await?;
    Ok(links.into_value::<Vec<String>>().unwrap_or_default())
}

/// What one scenario run writes into.
struct Output<'a> {
    recorder: &'a Arc<Mutex<Recorder>>,
    steps: &'a mut Vec<StepEvidence>,
    cookies: &'a mut Vec<Vec<RawCookie>>,
    banner: &'a mut Option<Banner>,
}

/// How the first step makes the scenario's consent choice.
enum Consent<'a> {
    /// None to make (no-interaction, gpc), or made before the page loads (cookies, TC string).
    Given,
    /// The journey's selectors, clicked in order.
    Clicks(&'a [String]),
    /// Through the page's CMP (`cmp.rs`).
    Cmp(cmp::Choice),
}

async fn drive_page(
    journey: &Journey,
    scenario: &Scenario,
    s: &Settings,
    browser: &Browser,
    ses: &Session,
    choice: Option<ConsentChoice>,
    out: Output<'_>,
) -> Result<(), String> {
    let recorder = out.recorder;
    let page = ses
        .call("cannot open a page", browser.new_page("about:blank"))
        .await?;
    let listeners = ses
        .call(
            "cannot subscribe to network events",
            listen(&page, recorder),
        )
        .await?;
    // Debugger.scriptParsed reports every script run, also those Blink serves from its
    // memory cache without a network event (a tag pasted twice with the same URL).
    ses.call(
        "cannot enable the debugger domain",
        page.execute(DebuggerEnableParams::default()),
    )
    .await?;

    if *scenario == Scenario::Gpc {
        let headers = Headers::new(serde_json::json!({ "Sec-GPC": "1" }));
        ses.call(
            "cannot set Sec-GPC",
            page.execute(SetExtraHttpHeadersParams::new(headers)),
        )
        .await?;
        ses.call(
            "cannot set navigator.globalPrivacyControl",
            page.execute(AddScriptToEvaluateOnNewDocumentParams::new(
                "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', \
                 { get: () => true, configurable: true });",
            )),
        )
        .await?;
    }
    if let Some(tc) = choice.as_ref().and_then(|c| c.tcf.as_deref()) {
        let script = crate::tcfapi::tcfapi_script(tc)?;
        ses.call(
            "cannot install __tcfapi",
            page.execute(AddScriptToEvaluateOnNewDocumentParams::new(script)),
        )
        .await?;
    }
    let clicks = choice.as_ref().map(|c| c.click.clone()).unwrap_or_default();
    let through_cmp = choice.as_ref().and_then(|c| c.cmp.clone());
    if let (Some(choice), Some(first)) = (&choice, journey.steps.first()) {
        preset_consent(ses, &page, choice, &first.url).await?;
    }
    lock(recorder).before_consent = !clicks.is_empty() || through_cmp.is_some();
    let first_consent = match through_cmp {
        Some(choice) => Consent::Cmp(choice),
        None if !clicks.is_empty() => Consent::Clicks(&clicks),
        None => Consent::Given,
    };

    let mut result = Ok(());
    for (i, step) in journey.steps.iter().enumerate() {
        lock(recorder).begin_step(i);
        if s.block_third_parties {
            ses.call(
                "cannot block third parties",
                page.execute(block_all_but_site_of(&step.url)),
            )
            .await?;
        }
        let started = Instant::now();
        let consent = if i == 0 {
            &first_consent
        } else {
            &Consent::Given
        };
        let outcome = run_step(ses, &page, s, recorder, &step.url, &step.actions, consent).await;
        let mut evidence = StepEvidence {
            name: step.name.clone(),
            url: step.url.clone(),
            timing: StepTiming {
                total_ms: millis(started.elapsed()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut load_fired = true;
        match outcome {
            Ok(load) => {
                evidence.timing.load_ms = millis(load.took);
                load_fired = load.fired;
                if load.banner.is_some() {
                    *out.banner = load.banner;
                }
            }
            Err(e) => {
                result = Err(format!("step {:?}: {e}", step.name));
                evidence.error = Some(e);
            }
        }
        // What the step is scanned without: requests still waiting for (the rest of) an
        // answer after the load timeout and settling.
        evidence.pending = {
            let mut rec = lock(recorder);
            let pending = rec.pending();
            // Reported here; later steps neither wait for them nor report them again.
            rec.abandon_in_flight();
            pending
        };
        if s.screenshots && !ses.is_lost() {
            // Evidence of what the visitor saw; a failed capture leaves the step without one.
            evidence.screenshot = screenshot(ses, &page).await.ok();
        }
        if !ses.is_lost() {
            // A frame that went away while being read leaves nothing to record; a lost
            // browser is reported by the cookie read below.
            evidence.local_storage = local_storage(ses, &page).await.unwrap_or_default();
        }
        out.steps.push(evidence);
        // Cookies of every origin contacted so far, so third-party cookies are seen too.
        let urls = lock(recorder).origins();
        let read = if ses.is_lost() {
            Err("the browser died".to_owned())
        } else {
            ses.call(
                "cannot read cookies",
                page.execute(GetCookiesParams { urls: Some(urls) }),
            )
            .await
        };
        match read {
            Ok(r) => out.cookies.push(
                r.result
                    .cookies
                    .iter()
                    .map(|c| RawCookie {
                        name: c.name.clone(),
                        domain: c.domain.clone(),
                        path: c.path.clone(),
                        expires: (!c.session).then_some(c.expires),
                    })
                    .collect(),
            ),
            Err(e) => {
                out.cookies.push(Vec::new());
                if result.is_ok() {
                    result = Err(format!("step {:?}: {e}", step.name));
                }
            }
        }
        if !load_fired && result.is_ok() && !ses.is_lost() {
            // Leave the unfinished page for about:blank (no request; it commits and fires
            // `load`), as a visitor who gives up would, and wait until it has. chromiumoxide
            // sends a navigation only once the previous one reached its load event, or after
            // 30 s; an aborted load (Page.stopLoading) fires none, so without this the next
            // step would not load. What the page sends as it goes (unload beacons) belongs to
            // this step.
            let left = ses
                .call(
                    "cannot leave the unfinished page",
                    page.evaluate("location.replace('about:blank')"),
                )
                .await;
            if left.is_ok() {
                let _ = ses
                    .call("leaving the unfinished page", page.wait_for_navigation())
                    .await;
            }
        }
        if result.is_err() {
            break;
        }
    }
    for l in listeners {
        l.abort();
    }
    result
}

/// The localStorage of every frame, the page's and its iframes', unclassified. Each frame is
/// read under its storage key (CDP `Storage.getStorageKey`), since Chromium partitions an
/// iframe's storage by the top-level site it is embedded in.
async fn local_storage(ses: &Session, page: &Page) -> Result<Vec<StorageRecord>, String> {
    const MAX_VALUE_CHARS: usize = 200;
    let tree = ses
        .call(
            "cannot read the frame tree",
            page.execute(GetFrameTreeParams::default()),
        )
        .await?;
    let mut frames = vec![&tree.result.frame_tree];
    let mut seen_keys = std::collections::HashSet::new();
    let mut entries = Vec::new();
    while let Some(node) = frames.pop() {
        frames.extend(node.child_frames.iter().flatten());
        let origin = &node.frame.security_origin;
        if !origin.starts_with("http") {
            continue; // about:blank and opaque origins keep nothing worth reporting
        }
        let key = GetStorageKeyParams {
            frame_id: Some(node.frame.id.clone()),
        };
        // A frame that went away while being read has nothing left to record.
        let Ok(key) = ses
            .call("cannot read a storage key", page.execute(key))
            .await
        else {
            continue;
        };
        let key = key.result.storage_key.inner().clone();
        if !seen_keys.insert(key.clone()) {
            continue;
        }
        let id = StorageId {
            security_origin: None,
            storage_key: Some(SerializedStorageKey::new(key)),
            is_local_storage: true,
        };
        let Ok(items) = ses
            .call(
                "cannot read localStorage",
                page.execute(GetDomStorageItemsParams::new(id)),
            )
            .await
        else {
            continue;
        };
        for item in &items.result.entries {
            if let [key, value] = item.inner().as_slice() {
                entries.push(StorageRecord {
                    origin: origin.clone(),
                    key: key.clone(),
                    value: value.chars().take(MAX_VALUE_CHARS).collect(),
                    third_party: false,
                    vendor: None,
                });
            }
        }
    }
    entries.sort_by(|a, b| (&a.origin, &a.key).cmp(&(&b.origin, &b.key)));
    Ok(entries)
}

/// A PNG of the viewport (CDP `Page.captureScreenshot`).
async fn screenshot(ses: &Session, page: &Page) -> Result<Vec<u8>, String> {
    let params = CaptureScreenshotParams {
        format: Some(CaptureScreenshotFormat::Png),
        ..Default::default()
    };
    let shot = ses
        .call("cannot capture a screenshot", page.execute(params))
        .await?;
    let encoded: &str = shot.result.data.as_ref();
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("screenshot is not base64: {e}"))
}

/// Blocks every URL but those of the site (registrable domain) of `url` and its subdomains.
fn block_all_but_site_of(url: &str) -> SetBlockedUrLsParams {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let site = site_of(&host);
    SetBlockedUrLsParams {
        url_patterns: Some(vec![
            BlockPattern::new(format!("*://{site}:*/*"), false),
            BlockPattern::new(format!("*://*.{site}:*/*"), false),
            BlockPattern::new("*://*:*/*", true),
        ]),
    }
}

/// Cookies and localStorage a consent choice presets before the first page loads.
async fn preset_consent(
    ses: &Session,
    page: &Page,
    choice: &ConsentChoice,
    url: &str,
) -> Result<(), String> {
    for c in &choice.cookies {
        let (name, value) = c.split_once('=').unwrap_or((c, ""));
        let mut param = CookieParam::new(name.trim(), value.trim());
        param.url = Some(url.to_owned());
        ses.call(
            &format!("cannot set consent cookie {name:?}"),
            page.set_cookie(param),
        )
        .await?;
    }
    if !choice.local_storage.is_empty() {
        let origin = url::Url::parse(url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let entries = serde_json::to_string(&choice.local_storage).unwrap_or_default();
        let origin = js_string(&origin);
        let script = format!(
            "if (location.origin === {origin}) {{ const e = {entries}; \
             for (const k in e) localStorage.setItem(k, e[k]); }}"
        );
        ses.call(
            "cannot preset localStorage",
            page.execute(AddScriptToEvaluateOnNewDocumentParams::new(script)),
        )
        .await?;
    }
    Ok(())
}

/// How a step's page load went.
struct Load {
    /// Navigation start to the load event, or to the step timeout when it never came.
    took: Duration,
    /// Whether the load event came (a subresource that never answers, or a document that
    /// never ends, holds it back).
    fired: bool,
    /// The banner operated through its CMP, on the step that made the consent choice.
    banner: Option<Banner>,
}

/// Loads a step's URL, makes the consent choice (first step only), runs its actions and
/// lets each part settle.
async fn run_step(
    ses: &Session,
    page: &Page,
    s: &Settings,
    recorder: &Arc<Mutex<Recorder>>,
    url: &str,
    actions: &[Action],
    consent: &Consent<'_>,
) -> Result<Load, String> {
    let started = Instant::now();
    let fired = match ses.try_call(page.goto(url)).await {
        Ok(_) => true,
        // A subresource that never answers holds the load event back; once the document
        // itself arrived the page is there to scan, and settling bounds the rest.
        Err(CallError::Timeout) if lock(recorder).document_answered() => false,
        Err(CallError::Timeout) => {
            return Err(format!("loading {url} took longer than {:?}", ses.timeout))
        }
        Err(CallError::Failed(e)) => return Err(format!("cannot load {url}: {e}")),
        Err(CallError::Lost) => {
            return Err(format!(
                "loading {url}: the browser died (DevTools connection lost)"
            ))
        }
    };
    let mut load = Load {
        took: started.elapsed(),
        fired,
        banner: None,
    };
    settle(recorder, s).await;
    match consent {
        Consent::Given => {}
        Consent::Clicks(selectors) => {
            for (n, selector) in selectors.iter().enumerate() {
                wait_for(ses, page, selector).await?;
                if n == 0 {
                    // Everything up to here settled, so what follows came after the click.
                    lock(recorder).before_consent = false;
                }
                click(ses, page, selector).await?;
                settle(recorder, s).await;
            }
        }
        Consent::Cmp(choice) => {
            load.banner = Some(operate_banner(ses, page, recorder, choice).await);
            settle(recorder, s).await;
        }
    }
    for action in actions {
        match action {
            Action::Click { click: sel } => {
                wait_for(ses, page, sel).await?;
                click(ses, page, sel).await?;
            }
            Action::Fill { fill: sel, value } => {
                wait_for(ses, page, sel).await?;
                fill(ses, page, sel, value).await?;
            }
            Action::WaitFor { wait_for: sel } => wait_for(ses, page, sel).await?,
            Action::WaitMs { wait_ms } => {
                let wait = (*wait_ms).min(crate::journey::MAX_WAIT_MS);
                tokio::time::sleep(Duration::from_millis(wait)).await
            }
        }
    }
    settle(recorder, s).await;
    Ok(load)
}

/// Waits until no request is in flight and none started or ended for `quiet`, or until
/// `settle_cap` passed. Pages full of beacons never reach network idle, so the cap bounds it.
async fn settle(recorder: &Mutex<Recorder>, s: &Settings) {
    let started = Instant::now();
    // What the last command set off may not have reached us yet: the quiet period starts now.
    lock(recorder).last_activity = started;
    loop {
        let (since, busy) = {
            let rec = lock(recorder);
            (rec.last_activity.elapsed(), rec.in_flight() > 0)
        };
        if (since >= s.quiet && !busy) || started.elapsed() >= s.settle_cap {
            return;
        }
        let wait = if busy {
            Duration::ZERO
        } else {
            s.quiet - since
        };
        tokio::time::sleep(wait.max(Duration::from_millis(20))).await;
    }
}

fn js_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Polls for a selector until it matches or the step timeout passes. A failed evaluation
/// (the page navigating away under us) counts as "not yet"; a dead browser ends the wait.
async fn wait_for(ses: &Session, page: &Page, selector: &str) -> Result<(), String> {
    let expr = format!("document.querySelector({}) !== null", js_string(selector));
    let started = Instant::now();
    loop {
        if ses.is_lost() {
            return Err(format!("waiting for {selector:?}: the browser died"));
        }
        if let Ok(r) = ses.call("", page.evaluate(expr.as_str())).await {
            if r.into_value::<bool>().unwrap_or(false) {
                return Ok(());
            }
        }
        if started.elapsed() >= ses.timeout {
            return Err(format!(
                "selector {selector:?} did not appear within {:?}",
                ses.timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The longest the scanner waits for a CMP it knows to appear on the first step.
const BANNER_WAIT: Duration = Duration::from_secs(10);

/// Waits for a CMP the recipes know (in the page or any of its frames), then makes
/// `choice` through it; what came before is marked as before consent.
async fn operate_banner(
    ses: &Session,
    page: &Page,
    recorder: &Mutex<Recorder>,
    choice: &cmp::Choice,
) -> Banner {
    let wait = BANNER_WAIT.min(ses.timeout);
    let started = Instant::now();
    let mut worlds = Worlds::new();
    loop {
        let out_of_time = ses.is_lost() || started.elapsed() >= wait;
        if let Some(found) = run_banner_scripts(ses, page, &mut worlds, choice, false).await {
            // What follows the choice is after consent; should it not be made, nothing was.
            lock(recorder).before_consent = false;
            let acted = run_banner_scripts(ses, page, &mut worlds, choice, true)
                .await
                .unwrap_or(Banner {
                    made: false,
                    detail: Some("the banner went away before the choice could be made".into()),
                    ..found
                });
            if acted.made || out_of_time {
                return acted;
            }
            // Its API or buttons may not be ready yet.
            lock(recorder).before_consent = true;
        } else if out_of_time {
            return cmp::not_found(choice, wait);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the recipes in the page, then (unless the page's CMP made the choice) in each
/// frame in a world of the scanner's own, where a CMP whose banner is a cross-origin frame
/// keeps its buttons: the frame's answer, else the page's.
async fn run_banner_scripts(
    ses: &Session,
    page: &Page,
    worlds: &mut Worlds,
    choice: &cmp::Choice,
    act: bool,
) -> Option<Banner> {
    let script = cmp::page_script(choice, act);
    // A failed evaluation (the page navigating) is "not yet".
    let in_page = match ses.call("", page.evaluate(script.as_str())).await {
        Ok(answer) => answer.value().and_then(cmp::read),
        Err(_) => None,
    };
    if in_page.as_ref().is_some_and(|b| b.made || !act) {
        return in_page;
    }
    in_frames(ses, page, worlds, choice, act).await.or(in_page)
}

/// The scanner's isolated world in each frame, by frame id: made once per frame while the
/// banner is waited for, not at every look.
type Worlds = HashMap<FrameId, ExecutionContextId>;

/// The frame script in every frame of the page; the first banner it finds.
async fn in_frames(
    ses: &Session,
    page: &Page,
    worlds: &mut Worlds,
    choice: &cmp::Choice,
    act: bool,
) -> Option<Banner> {
    let tree = ses
        .call("", page.execute(GetFrameTreeParams::default()))
        .await
        .ok()?;
    let mut frames: Vec<_> = tree
        .result
        .frame_tree
        .child_frames
        .iter()
        .flatten()
        .collect();
    let script = cmp::frame_script(choice, act);
    while let Some(node) = frames.pop() {
        frames.extend(node.child_frames.iter().flatten());
        let frame = &node.frame.id;
        let context = match worlds.get(frame) {
            Some(context) => *context,
            None => {
                let Ok(world) = CreateIsolatedWorldParams::builder()
                    .frame_id(frame.clone())
                    .world_name("sightline-consent")
                    .build()
                else {
                    continue;
                };
                // A frame that went away meanwhile has no banner.
                let Ok(world) = ses.call("", page.execute(world)).await else {
                    continue;
                };
                let context = world.result.execution_context_id;
                worlds.insert(frame.clone(), context);
                context
            }
        };
        let mut evaluate = EvaluateParams::new(script.clone());
        evaluate.context_id = Some(context);
        evaluate.return_by_value = Some(true);
        match ses.call("", page.execute(evaluate)).await {
            Ok(answer) => {
                if let Some(banner) = answer.result.result.value.as_ref().and_then(cmp::read) {
                    return Some(banner);
                }
            }
            // The frame navigated and its world went with it: made again at the next look.
            Err(_) => {
                worlds.remove(frame);
            }
        }
    }
    None
}

async fn click(ses: &Session, page: &Page, selector: &str) -> Result<(), String> {
    let expr = format!("document.querySelector({}).click()", js_string(selector));
    ses.call(
        &format!("cannot click {selector:?}"),
        page.evaluate(expr.as_str()),
    )
    .await
    .map(|_| ())
}

async fn fill(ses: &Session, page: &Page, selector: &str, value: &str) -> Result<(), String> {
    let expr = format!(
        "(() => {{ const e = document.querySelector({}); e.focus(); e.value = {}; \
         e.dispatchEvent(new Event('input', {{ bubbles: true }})); \
         e.dispatchEvent(new Event('change', {{ bubbles: true }})); }})()",
        js_string(selector),
        js_string(value)
    );
    ses.call(
        &format!("cannot fill {selector:?}"),
        page.evaluate(expr.as_str()),
    )
    .await
    .map(|_| ())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Subscribes to the network events, each stream feeding the recorder from its own task.
async fn listen(
    page: &Page,
    recorder: &Arc<Mutex<Recorder>>,
) -> chromiumoxide::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let mut sent = page.event_listener::<EventRequestWillBeSent>().await?;
    let r = recorder.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = sent.next().await {
            lock(&r).request(&ev);
        }
    }));
    let mut received = page.event_listener::<EventResponseReceived>().await?;
    let r = recorder.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = received.next().await {
            lock(&r)
                .status
                .insert(ev.request_id.inner().clone(), ev.response.status);
        }
    }));
    let mut extra = page
        .event_listener::<EventResponseReceivedExtraInfo>()
        .await?;
    let r = recorder.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = extra.next().await {
            let cookies = set_cookie_lines(ev.headers.inner());
            lock(&r)
                .set_cookies
                .entry(ev.request_id.inner().clone())
                .or_default()
                .push(cookies);
        }
    }));
    let mut sent_extra = page
        .event_listener::<EventRequestWillBeSentExtraInfo>()
        .await?;
    let r = recorder.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = sent_extra.next().await {
            lock(&r)
                .wire_headers
                .entry(ev.request_id.inner().clone())
                .or_default()
                .push(all_headers(ev.headers.inner()));
        }
    }));
    let mut finished = page.event_listener::<EventLoadingFinished>().await?;
    let r = recorder.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = finished.next().await {
            let bytes = ev.encoded_data_length.max(0.0) as u64;
            let mut rec = lock(&r);
            rec.last_activity = Instant::now();
            rec.bytes.insert(ev.request_id.inner().clone(), bytes);
        }
    }));
    let mut parsed = page.event_listener::<EventScriptParsed>().await?;
    let r = recorder.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = parsed.next().await {
            if !ev.url.is_empty() {
                let mut rec = lock(&r);
                let step = rec.step;
                rec.scripts.push((
                    step,
                    ScriptRun {
                        context: *ev.execution_context_id.inner(),
                        url: ev.url.clone(),
                    },
                ));
            }
        }
    }));
    let mut failed = page.event_listener::<EventLoadingFailed>().await?;
    let r = recorder.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = failed.next().await {
            let mut rec = lock(&r);
            rec.last_activity = Instant::now();
            rec.failed
                .insert(ev.request_id.inner().clone(), ev.error_text.clone());
        }
    }));
    Ok(tasks)
}

/// `Set-Cookie` header values; CDP joins repeated headers with newlines.
fn set_cookie_lines(headers: &serde_json::Value) -> Vec<String> {
    headers
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.as_str())
        .flat_map(|v| v.split('\n'))
        .map(str::to_owned)
        .collect()
}

/// The script (or document) that caused a request: the innermost stack frame with a URL,
/// through async parents, else the initiator's URL, else the document.
fn initiator_url(ev: &EventRequestWillBeSent) -> Option<String> {
    let mut stack = ev.initiator.stack.as_ref();
    while let Some(st) = stack {
        if let Some(f) = st.call_frames.iter().find(|f| !f.url.is_empty()) {
            return Some(f.url.clone());
        }
        stack = st.parent.as_deref();
    }
    if let Some(url) = ev.initiator.url.as_ref().filter(|u| !u.is_empty()) {
        return Some(url.clone());
    }
    let is_own_document = ev.document_url == ev.request.url;
    (!is_own_document && !ev.document_url.is_empty()).then(|| ev.document_url.clone())
}

/// Every header, names lowercased (CDP joins repeated headers with newlines).
fn all_headers(headers: &serde_json::Value) -> BTreeMap<String, String> {
    headers
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_owned())))
        .collect()
}

fn header(headers: &serde_json::Value, name: &str) -> Option<String> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned)
}

fn post_body(ev: &EventRequestWillBeSent) -> Option<String> {
    const MAX_BODY: usize = 64 * 1024;
    let entries = ev.request.post_data_entries.as_ref()?;
    let mut bytes = Vec::new();
    for e in entries {
        if let Some(b) = &e.bytes {
            let encoded: &str = b.as_ref();
            if let Ok(mut d) = base64::engine::general_purpose::STANDARD.decode(encoded) {
                bytes.append(&mut d);
            }
        }
    }
    bytes.truncate(MAX_BODY);
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
}

/// Collects CDP network events of one scenario. Events of different kinds arrive on separate
/// streams, so they are kept by request id and joined once the scenario ends.
struct Recorder {
    step: usize,
    before_consent: bool,
    last_activity: Instant,
    /// (step, request id, record) in the order the requests started; a redirect adds a
    /// record with the same id.
    requests: Vec<(usize, String, RequestRecord)>,
    status: HashMap<String, i64>,
    /// One entry per response of the id (redirect hops first), in order.
    set_cookies: HashMap<String, Vec<Vec<String>>>,
    /// Request headers as sent on the wire, one entry per hop of the id, in order.
    wire_headers: HashMap<String, Vec<BTreeMap<String, String>>>,
    bytes: HashMap<String, u64>,
    failed: HashMap<String, String>,
    /// Requests still in flight when their step ended: reported as that step's pending ones,
    /// then no longer waited for.
    abandoned: std::collections::HashSet<String>,
    /// Scripts run, with the step they ran in.
    scripts: Vec<(usize, ScriptRun)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            step: 0,
            before_consent: false,
            last_activity: Instant::now(),
            requests: Vec::new(),
            status: HashMap::new(),
            set_cookies: HashMap::new(),
            wire_headers: HashMap::new(),
            bytes: HashMap::new(),
            failed: HashMap::new(),
            abandoned: Default::default(),
            scripts: Vec::new(),
        }
    }
}

impl Recorder {
    fn begin_step(&mut self, step: usize) {
        self.step = step;
        if step > 0 {
            self.before_consent = false;
        }
    }

    fn request(&mut self, ev: &EventRequestWillBeSent) {
        self.last_activity = Instant::now();
        let id = ev.request_id.inner().clone();
        if let Some(redirect) = &ev.redirect_response {
            if let Some((_, _, prev)) = self.requests.iter_mut().rev().find(|(_, i, _)| *i == id) {
                prev.status = Some(redirect.status);
            }
        }
        let record = RequestRecord {
            url: ev.request.url.clone(),
            method: ev.request.method.clone(),
            resource_type: ev
                .r#type
                .as_ref()
                .unwrap_or(&ResourceType::Other)
                .as_ref()
                .to_owned(),
            initiator_type: ev.initiator.r#type.as_ref().to_owned(),
            initiator_url: initiator_url(ev),
            before_consent: self.before_consent,
            referer: header(ev.request.headers.inner(), "referer"),
            headers: all_headers(ev.request.headers.inner()),
            post_body: post_body(ev),
            ..Default::default()
        };
        self.requests.push((self.step, id, record));
    }

    /// Whether a document of the current step got a response (the page committed, maybe
    /// after redirects).
    fn document_answered(&self) -> bool {
        self.requests.iter().any(|(step, id, r)| {
            *step == self.step && r.resource_type == "Document" && self.status.contains_key(id)
        })
    }

    /// Whether a request started and has neither finished, nor failed, nor been given up.
    fn is_in_flight(&self, id: &str) -> bool {
        !self.bytes.contains_key(id)
            && !self.failed.contains_key(id)
            && !self.abandoned.contains(id)
    }

    /// Requests in flight.
    fn in_flight(&self) -> usize {
        self.requests
            .iter()
            .filter(|(_, id, _)| self.is_in_flight(id))
            .map(|(_, id, _)| id)
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Gives up on every request in flight (at the end of a step).
    fn abandon_in_flight(&mut self) {
        let ids: Vec<String> = self
            .requests
            .iter()
            .filter(|(_, id, _)| self.is_in_flight(id))
            .map(|(_, id, _)| id.clone())
            .collect();
        self.abandoned.extend(ids);
    }

    /// Requests in flight now, each by its latest hop, in the order they started.
    fn pending(&self) -> Vec<PendingRequest> {
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<PendingRequest> = self
            .requests
            .iter()
            .rev()
            .filter(|(_, id, _)| self.is_in_flight(id))
            .filter(|(_, id, _)| seen.insert(id))
            .map(|(_, id, r)| PendingRequest {
                url: r.url.clone(),
                resource_type: r.resource_type.clone(),
                status: self.status.get(id).copied(),
                ..Default::default()
            })
            .collect();
        out.reverse();
        out
    }

    /// Origins of every URL requested so far, for reading their cookies.
    fn origins(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .requests
            .iter()
            .filter_map(|(_, _, r)| url::Url::parse(&r.url).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(|u| format!("{}/", u.origin().ascii_serialization()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Joins responses to requests; returns (step index, record) in request order, and the
    /// scripts run.
    #[allow(clippy::type_complexity)]
    fn finish(&mut self) -> (Vec<(usize, RequestRecord)>, Vec<(usize, ScriptRun)>) {
        let mut hop_of: HashMap<String, usize> = HashMap::new();
        let mut last_of: HashMap<String, usize> = HashMap::new();
        for (n, (_, id, _)) in self.requests.iter().enumerate() {
            last_of.insert(id.clone(), n);
        }
        let mut out = Vec::with_capacity(self.requests.len());
        for (n, (step, id, mut rec)) in std::mem::take(&mut self.requests).into_iter().enumerate() {
            let hop = hop_of.entry(id.clone()).or_insert(0);
            if let Some(lines) = self.set_cookies.get(&id).and_then(|v| v.get(*hop)) {
                rec.set_cookies = lines.clone();
            }
            if let Some(wire) = self.wire_headers.get(&id).and_then(|v| v.get(*hop)) {
                rec.headers.extend(wire.clone());
            }
            *hop += 1;
            if last_of.get(&id) == Some(&n) {
                if let Some(status) = self.status.get(&id) {
                    rec.status = Some(*status);
                }
                rec.bytes = self.bytes.get(&id).copied().unwrap_or(0);
                rec.error = self.failed.get(&id).cloned();
            }
            out.push((step, rec));
        }
        (out, std::mem::take(&mut self.scripts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debians_wrapper_is_skipped_for_the_browser_itself() {
        let dir = tempfile::tempdir().unwrap();
        let browser = dir.path().join("chromium-bin");
        std::fs::write(&browser, b"\x7fELF").unwrap();
        let wrapper = dir.path().join("chromium");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\nfor file in /etc/chromium.d/*; do . $file; done\nexec chromium \"$@\"\n",
        )
        .unwrap();
        assert_eq!(launch_binary_with(&wrapper, &browser), browser);
        // Another wrapper, a binary, a missing file, or no browser where Debian puts it:
        // run what was configured.
        let other = dir.path().join("other");
        std::fs::write(&other, "#!/bin/sh\nexec /usr/bin/chromium \"$@\"\n").unwrap();
        assert_eq!(launch_binary_with(&other, &browser), other);
        assert_eq!(launch_binary_with(&browser, &browser), browser);
        let missing = dir.path().join("missing");
        assert_eq!(launch_binary_with(&missing, &browser), missing);
        assert_eq!(launch_binary_with(&wrapper, &missing), wrapper);
    }

    #[test]
    fn one_disable_features_switch_and_a_profile_that_starts_blank() {
        let journey = Journey::parse(
            "name = \"j\"\n[browser]\nargs = [\"--lang=de\"]\n\
             [[steps]]\nname = \"a\"\nurl = \"https://shop.example/\"\n",
        )
        .unwrap();
        let args = chromium_args(&journey).unwrap();
        let features: Vec<_> = args
            .iter()
            .filter(|(k, _)| k == "disable-features")
            .collect();
        assert_eq!(features.len(), 1, "{args:?}");
        let value = features[0].1.as_deref().unwrap();
        assert!(value.contains("NetworkTimeServiceQuerying") && value.contains("HttpsUpgrades"));
        assert!(args.contains(&(
            "component-updater".into(),
            Some("url-source=http://127.0.0.1:9/".into())
        )));
        assert!(args.contains(&("lang".into(), Some("de".into()))));

        let dir = tempfile::tempdir().unwrap();
        write_profile(dir.path()).unwrap();
        let prefs: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("Default/Preferences")).unwrap(),
        )
        .unwrap();
        assert_eq!(prefs["session"]["startup_urls"][0], "about:blank");
        assert_eq!(prefs["safebrowsing"]["enabled"], false);
    }

    #[test]
    fn pending_requests_are_those_neither_finished_nor_failed() {
        let mut rec = Recorder::default();
        let req = |url: &str| RequestRecord {
            url: url.into(),
            resource_type: "Script".into(),
            ..Default::default()
        };
        rec.requests.push((0, "1".into(), req("http://a.test/")));
        rec.requests
            .push((0, "2".into(), req("http://a.test/hang.js")));
        rec.requests
            .push((0, "3".into(), req("http://a.test/gone.js")));
        // A redirect: the pending hop is the latest.
        rec.requests.push((0, "4".into(), req("http://t.test/r")));
        rec.requests
            .push((0, "4".into(), req("https://t.test/slow")));
        rec.bytes.insert("1".into(), 10);
        rec.failed.insert("3".into(), "net::ERR_ABORTED".into());
        rec.status.insert("4".into(), 200);
        let pending = rec.pending();
        let urls: Vec<_> = pending.iter().map(|p| p.url.as_str()).collect();
        assert_eq!(urls, ["http://a.test/hang.js", "https://t.test/slow"]);
        assert_eq!(pending[1].status, Some(200));
        assert_eq!(pending[0].status, None);
        // Given up at the end of the step: the next step neither waits for nor reports them.
        rec.abandon_in_flight();
        assert!(rec.pending().is_empty());
        assert_eq!(rec.in_flight(), 0);
    }
}
