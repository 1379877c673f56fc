//! The web console in Debian's Chromium against the real binary, on every backend: sign in,
//! the live tail, a person found by email with the merge explained, sources and write keys,
//! roles (no control a role may not use, and 403 from every action it tries anyway), sign
//! out; axe-core on every page (no serious or critical violation) and a screenshot of every
//! page under target/tmp/console-screenshots. One browser for the whole file.

mod common;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{Page, ScreenshotParams};
use common::{backends, client, credentials, send_ok, sightline_json, Backend, Server};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// axe-core, installed by scripts/setup.sh (npm, into tests/console/node_modules).
fn axe_source() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/console/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/setup.sh (npm installs axe-core for the console tests)",
            path.display()
        )
    })
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn token(backend: &Backend, role: &str, name: &str) -> String {
    sightline_json(
        backend,
        &["token", "create", "--role", role, "--name", name],
    )["token"]
        .as_str()
        .unwrap()
        .to_string()
}

struct Console<'a> {
    page: Page,
    server: &'a Server,
    axe: &'a str,
    shots: PathBuf,
    backend: &'static str,
}

impl Console<'_> {
    async fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluate {expression}: {e}"))
    }

    /// Evaluates, or the error (a page navigating away has no context to evaluate in).
    async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let params = EvaluateParams::builder()
            .expression(expression)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .unwrap();
        self.page
            .evaluate_expression(params)
            .await
            .map(|v| v.into_value().unwrap_or(Value::Null))
            .map_err(|e| e.to_string())
    }

    async fn open(&self, path: &str) {
        self.page
            .goto(format!("{}{path}", self.server.url))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        self.page.wait_for_navigation().await.unwrap();
    }

    async fn text(&self, selector: &str) -> String {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.innerText : ''; }})()",
            json!(selector)
        ))
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    async fn count(&self, selector: &str) -> u64 {
        self.eval(&format!(
            "document.querySelectorAll({}).length",
            json!(selector)
        ))
        .await
        .as_u64()
        .unwrap()
    }

    async fn path(&self) -> String {
        self.eval("location.pathname + location.search")
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits (bounded) until `check` holds, reloading the page between tries when asked.
    async fn until(&self, what: &str, reload: bool, check: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.try_eval(check).await == Ok(json!(true)) {
                return;
            }
            assert!(Instant::now() < deadline, "{}: {what}", self.backend);
            tokio::time::sleep(Duration::from_millis(250)).await;
            if reload {
                self.page.reload().await.unwrap();
                self.page.wait_for_navigation().await.unwrap();
            }
        }
    }

    async fn fill(&self, selector: &str, text: &str) {
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .click()
            .await
            .unwrap()
            .type_str(text)
            .await
            .unwrap();
    }

    /// Clicks what leads to another page, and waits (bounded) until that page has loaded.
    async fn submit(&self, selector: &str) {
        self.eval("window.__before = true").await;
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .click()
            .await
            .unwrap();
        self.until(
            &format!("a new page after clicking {selector}"),
            false,
            "window.__before === undefined && document.readyState === 'complete'",
        )
        .await;
    }

    async fn sign_in(&self, token: &str) {
        self.open("/login").await;
        self.fill("input[name=token]", token).await;
        self.submit("form.login button[type=submit]").await;
        assert_eq!(self.path().await, "/", "{}: signed in", self.backend);
    }

    async fn sign_out(&self) {
        self.submit("form[action='/logout'] button").await;
        assert!(self.path().await.starts_with("/login"), "signed out");
        self.open("/").await;
        assert!(
            self.path().await.starts_with("/login"),
            "no session after sign-out"
        );
    }

    /// axe-core on the page as shown: no serious or critical violation; and a screenshot.
    async fn check_page(&self, name: &str) {
        if self.eval("typeof axe").await != json!("object") {
            self.eval(&format!("{}; true", self.axe)).await;
        }
        let violations = self
            .eval(
                "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', ')))",
            )
            .await;
        assert_eq!(
            violations,
            json!([]),
            "{}: axe-core on {name}",
            self.backend
        );
        let png = self
            .page
            .screenshot(ScreenshotParams::builder().full_page(true).build())
            .await
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::write(self.shots.join(format!("{}-{name}.png", self.backend)), png).unwrap();
    }

    /// A form post from the page (with the session's CSRF secret): its status.
    async fn post(&self, path: &str, fields: Value) -> u64 {
        self.eval(&format!(
            "(() => {{
               const csrf = document.querySelector('input[name=csrf]').value;
               const body = new URLSearchParams(Object.assign({{csrf}}, {fields}));
               return fetch({path}, {{method: 'POST', body, redirect: 'manual'}}).then(r => r.status);
             }})()",
            path = json!(path)
        ))
        .await
        .as_u64()
        .unwrap()
    }

    async fn status(&self, path: &str) -> u64 {
        self.eval(&format!(
            "fetch({}, {{redirect: 'manual'}}).then(r => r.status)",
            json!(path)
        ))
        .await
        .as_u64()
        .unwrap()
    }
}

async fn audiences_and_destinations(c: &Console<'_>, admin: &str, key: &str, receiver: &AtomicU16) {
    c.sign_in(admin).await;

    // An event the receiver refuses becomes a dead letter; fixed, it is replayed.
    send_ok(
        c.server,
        key,
        "/v1/track",
        json!({"userId": "ann", "event": "Signed Up"}),
    )
    .await;
    c.open("/destinations").await;
    c.check_page("destinations").await;
    c.open("/destinations/crm").await;
    c.until(
        "a dead letter",
        true,
        "document.querySelector('#dead').innerText === '1'",
    )
    .await;
    assert!(c.text("#dead-letters").await.contains("400"));
    c.check_page("destination").await;
    receiver.store(200, Ordering::SeqCst);
    c.submit("form[action='/destinations/crm/replay'] button")
        .await;
    assert!(
        c.text("#replayed").await.contains("1 delivered"),
        "{}",
        c.text("main").await
    );
    assert_eq!(c.text("#dead").await, "0");
    assert_eq!(c.text("#delivered").await, "1");

    // A wrong rule: its error at its place as you type, and again when sent.
    c.open("/audiences").await;
    c.fill("#a-name", "signed-up").await;
    c.fill("#a-rule", "event \"Signed Up\" count >=").await;
    c.until(
        "the rule's error as you type",
        false,
        "!!document.querySelector('#rule-error .rule-error')",
    )
    .await;
    c.check_page("audiences-editor").await;
    c.submit("form.editor button[type=submit]").await;
    assert_eq!(c.path().await, "/audiences/create");
    let line = c
        .eval("document.querySelector('.rule-error').dataset.line")
        .await;
    let column = c
        .eval("document.querySelector('.rule-error').dataset.column")
        .await;
    assert_eq!(
        (line, column),
        (json!("1"), json!("27")),
        "{}",
        c.text(".rule-error").await
    );
    assert_eq!(
        c.eval("document.querySelector('#a-rule').getAttribute('aria-invalid')")
            .await,
        json!("true")
    );
    // Put right: created, and its members listed once the profiles have it.
    c.eval("document.querySelector('#a-rule').value = ''").await;
    c.fill("#a-rule", "event \"Signed Up\" count >= 1").await;
    c.submit("form.editor button[type=submit]").await;
    assert_eq!(c.path().await, "/audiences/signed-up");
    c.until(
        "the audience's member",
        true,
        "!!document.querySelector('#members') && document.querySelector('#members').innerText.includes('user_id:ann')",
    )
    .await;
    c.check_page("audience").await;
    // And the person's page says which audiences they are in.
    c.open("/profiles/user_id:ann").await;
    assert!(
        c.text("#audiences").await.contains("signed-up"),
        "{}",
        c.text("main").await
    );
    c.open("/audiences").await;
    assert!(c.text("#audiences").await.contains("signed-up"));
    c.check_page("audiences").await;
    // The session ends under an open live tail: it says so rather than showing the
    // sign-in page as rows.
    c.open("/events").await;
    c.post("/logout", json!({})).await;
    c.until(
        "the tail says it is signed out",
        false,
        "document.querySelector('#tail-status').innerText.includes('Signed out')",
    )
    .await;
    assert_eq!(c.count("#tail form").await, 0);
    c.open("/").await;
    assert!(c.path().await.starts_with("/login"));
}

/// A shop whose advertising pixel fires before any consent: the scan finds it.
async fn site() -> u16 {
    let page = || async {
        axum::response::Html(
            "<html><head><script src='http://px.pixelhub.example/p.js'></script></head>\
             <body><h1>Shop</h1><div id='banner'><button id='cmp-accept'>Accept all</button>\
             <button id='cmp-reject'>Reject all</button></div></body></html>",
        )
    };
    let script = || async { ([("content-type", "application/javascript")], "/* tag */") };
    let app = axum::Router::new()
        .route("/", axum::routing::get(page))
        .route("/p.js", axum::routing::get(script));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// Steps of the crawl report [`scan`] imports: more than the scan page shows at once.
const CRAWLED: usize = 25;

/// A crawl's report imported (many steps, no screenshots), then a scan of the shop through
/// the command line (the scanner's own Chromium), stored with its screenshots.
async fn scan(backend: &Backend, port: u16) {
    let dir = common::temp_dir("console-scan");
    let steps: Vec<Value> = (1..=CRAWLED)
        .map(|n| {
            json!({"name": format!("page {n}"), "url": format!("http://www.shop.example/p/{n}"),
                   "request_count": 1, "third_party_count": 0, "bytes": 100, "vendors": [],
                   "timing": {"load_ms": 5, "total_ms": 9}, "requests": [], "cookies": []})
        })
        .collect();
    let crawl = json!({"schema_version": 1, "journey": "crawl", "incomplete": false,
        "duration_ms": 1000, "findings": [],
        "scenarios": [{"name": "no-interaction", "incomplete": null, "steps": steps}]});
    let crawl_file = dir.path().join("crawl.json");
    std::fs::write(&crawl_file, crawl.to_string()).unwrap();
    let mut import = vec!["scan", "import", crawl_file.to_str().unwrap()];
    let store_args = backend.args();
    import.extend(store_args.iter().map(String::as_str));
    let imported = common::sightline(&import);
    assert!(
        imported.status.success(),
        "scan import: {}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let journey = dir.path().join("journey.toml");
    std::fs::write(
        &journey,
        format!(
            "name = \"shop\"\n\
             [browser]\nhost_resolver_rules = \"MAP * 127.0.0.1:{port}\"\n\
             [consent.accept-all]\nclick = [\"#cmp-accept\"]\n\
             [consent.reject-all]\nclick = [\"#cmp-reject\"]\n\
             [[steps]]\nname = \"landing\"\nurl = \"http://www.shop.example/\"\n"
        ),
    )
    .unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        "[[vendor]]\nname = \"PixelHub\"\ncategory = \"advertising\"\nhosts = [\"pixelhub.example\"]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut args: Vec<String> = [
        "scan",
        journey.to_str().unwrap(),
        "--allow-private-network",
        "--out",
        out.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--scenario",
        "no-interaction",
        "--scenario",
        "reject-all",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(backend.args());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::BIN)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "scan: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn governance(c: &Console<'_>, marketing: &str, security: &str) {
    // Marketing proposes a tag, and has no control to approve it; trying anyway is 403.
    c.sign_in(marketing).await;
    c.open("/governance/tags").await;
    c.fill("#t-vendor", "PixelHub").await;
    c.fill("#t-purpose", "retargeting").await;
    c.fill("#t-owner", "web").await;
    c.fill("#t-consent", "advertising").await;
    c.submit("form[action='/governance/tags/propose'] button")
        .await;
    assert!(
        c.text(".shown-once").await.contains("proposed"),
        "{}",
        c.text("main").await
    );
    let id = c
        .eval("document.querySelector('#tags tbody tr').dataset.id")
        .await;
    let id = id.as_str().unwrap().to_string();
    assert_eq!(c.text("#tags tbody tr .status").await, "proposed");
    assert_eq!(c.count("form[action$='/approve']").await, 0);
    c.check_page("tags").await;
    assert_eq!(
        c.post(&format!("/governance/tags/{id}/approve"), json!({}))
            .await,
        403
    );
    // Marketing may assign a finding but not accept its risk.
    c.open("/governance").await;
    assert!(
        c.count("#findings-open tbody tr").await >= 1,
        "the scan's findings are open"
    );
    assert_eq!(c.count("form[action$='/accept']").await, 0);
    let finding = c
        .eval("document.querySelector('#findings-open tbody tr').dataset.id")
        .await;
    let finding = finding.as_str().unwrap().to_string();
    assert_eq!(
        c.post(
            &format!("/governance/backlog/{finding}/accept"),
            json!({"reason": "mine", "expires": "2099-01-01"})
        )
        .await,
        403
    );
    c.sign_out().await;

    // Security approves it, and accepts a finding's risk until a day.
    c.sign_in(security).await;
    c.open("/governance/tags").await;
    c.fill(&format!("#why-{id}"), "DPA signed").await;
    c.submit(&format!(
        "form[action='/governance/tags/{id}/approve'] button[value=approve]"
    ))
    .await;
    assert!(c.text(".shown-once").await.contains("approved"));
    assert_eq!(c.text("#tags tbody tr .status").await, "approved");
    c.open("/governance").await;
    c.eval(&format!(
        "document.querySelector('tr[data-id=\"{finding}\"] details').open = true"
    ))
    .await;
    c.fill(
        &format!("#reason-{finding}"),
        "vendor contract until the site moves",
    )
    .await;
    c.eval(&format!(
        "document.querySelector('#expires-{finding}').value = '2099-01-01'"
    ))
    .await;
    c.submit(&format!(
        "form[action='/governance/backlog/{finding}/accept'] button"
    ))
    .await;
    let accepted = c
        .text(&format!("#findings-other tr[data-id=\"{finding}\"]"))
        .await;
    assert!(
        accepted.contains("accepted risk") && accepted.contains("2099-01-01"),
        "{accepted}"
    );
    c.check_page("governance").await;
    c.open("/governance/vendors").await;
    c.check_page("vendors").await;
    c.open("/governance/lineage").await;
    assert!(
        c.count("#lineage-diagram g.node").await >= 2,
        "the lineage is drawn"
    );
    c.check_page("lineage").await;
    // The metrics as charts: the stored scan's tags and vendors on its day, and the share
    // of events with a consent signal.
    c.open("/governance/metrics").await;
    assert_eq!(c.count("#counts-chart polyline.series").await, 4);
    assert_eq!(c.count("#shares-chart polyline.series").await, 2);
    let figures = c.text("#counts-table").await;
    let today = c.eval("new Date().toISOString().slice(0, 10)").await;
    assert!(
        figures.contains(today.as_str().unwrap()),
        "the scan's day is charted: {figures}"
    );
    c.check_page("governance-metrics").await;
    // A scan's report, with the screenshot of each step as the store keeps it.
    c.open("/governance").await;
    let report = c
        .eval("document.querySelector('#scans tbody a').getAttribute('href')")
        .await;
    c.open(report.as_str().unwrap()).await;
    // One scenario at a time, each step with its screenshot as a picture.
    for scenario in ["no-interaction", "reject-all"] {
        if scenario != "no-interaction" {
            let next = c
                .eval("document.querySelector('#scenarios a').getAttribute('href')")
                .await;
            c.open(next.as_str().unwrap()).await;
        }
        assert_eq!(c.text("#scenario-h").await, format!("Scenario {scenario}"));
        assert_eq!(
            c.text("#scenarios [aria-current=page]").await,
            scenario,
            "the scenario shown is marked"
        );
        let widths = c
            .eval(
                "Promise.all([...document.querySelectorAll('figure.step img')].map(i => {
                   i.loading = 'eager';
                   return i.decode().then(() => i.naturalWidth, () => 0);
                 }))",
            )
            .await;
        let widths = widths.as_array().unwrap().clone();
        assert_eq!(widths.len(), 1, "the scenario's one step: {scenario}");
        assert!(
            widths.iter().all(|w| w.as_u64() > Some(0)),
            "every screenshot is a picture: {widths:?}"
        );
    }
    c.check_page("scan").await;
    // The crawl's steps, a page at a time.
    c.open("/governance").await;
    let crawl = c
        .eval("document.querySelectorAll('#scans tbody a')[1].getAttribute('href')")
        .await;
    c.open(crawl.as_str().unwrap()).await;
    assert_eq!(c.count("figure.step").await, 20);
    let later = c
        .eval("[...document.querySelectorAll('main a')].find(a => a.textContent === 'Later steps').getAttribute('href')")
        .await;
    c.open(later.as_str().unwrap()).await;
    assert_eq!(c.count("figure.step").await, (CRAWLED - 20) as u64);
    assert!(c
        .text("main")
        .await
        .contains(&format!("Steps 21–{CRAWLED} of {CRAWLED}")));
    c.check_page("scan-crawl").await;
    c.sign_out().await;
}

async fn attribution_privacy_audit(
    c: &Console<'_>,
    keys: (&str, &str),
    marketing: &str,
    security: &str,
    privacy: &str,
    analyst: &str,
) {
    let (admin, key) = keys;
    let analytics = json!({"consent": {"purposes": {"analytics": true}}});
    send_ok(
        c.server,
        key,
        "/v1/batch",
        json!({"batch": [
            {"type": "page", "userId": "carl", "timestamp": "2026-01-02T09:00:00Z",
             "context": {"consent": {"purposes": {"analytics": true}},
                         "page": {"url": "https://www.shop.example/?utm_source=google&utm_medium=cpc"}}},
            {"type": "track", "event": "Order Completed", "userId": "carl",
             "timestamp": "2026-01-02T10:00:00Z", "context": analytics},
        ]}),
    )
    .await;

    // The overview: delivery health beside the event rate.
    c.sign_in(admin).await;
    assert!(c.text("#delivery-health").await.contains("crm"));
    c.sign_out().await;

    // Marketing compares the models for a conversion.
    c.sign_in(marketing).await;
    c.open("/attribution").await;
    c.fill("#conv", "Order Completed").await;
    c.submit("form[action='/attribution'] button").await;
    c.until(
        "the models side by side",
        true,
        "document.querySelectorAll('#attribution-chart rect.bar').length >= 8",
    )
    .await;
    assert!(
        c.text("#attribution")
            .await
            .to_lowercase()
            .contains("paid search"),
        "{}",
        c.text("#attribution").await
    );
    c.check_page("attribution").await;
    assert_eq!(c.count("nav a[href='/privacy']").await, 0);
    assert_eq!(c.status("/privacy").await, 403);
    assert_eq!(c.status("/audit").await, 403);
    c.sign_out().await;

    // Security reads the audit log, and not attribution.
    c.sign_in(security).await;
    assert_eq!(c.count("nav a[href='/attribution']").await, 0);
    assert_eq!(
        c.status("/attribution?conversion=Order+Completed").await,
        403
    );
    c.open("/audit").await;
    assert!(
        c.text("#audit").await.contains("tag.approve"),
        "the approval is audited"
    );
    c.check_page("audit").await;
    c.sign_out().await;

    // The analyst may not export or erase anyone.
    c.sign_in(analyst).await;
    assert_eq!(c.status("/privacy/export?id=user_id:carl").await, 403);
    assert_eq!(
        c.post(
            "/privacy/erase",
            json!({"identifier": "user_id:carl", "sure": "yes"})
        )
        .await,
        403
    );
    c.sign_out().await;

    // The privacy team exports a person and erases them, with a receipt.
    c.sign_in(privacy).await;
    c.open("/privacy").await;
    assert_eq!(c.status("/privacy/export?id=user_id:carl").await, 200);
    c.fill("#e-id", "user_id:carl").await;
    c.eval("document.querySelector('#e-sure').checked = true")
        .await;
    c.submit("form[action='/privacy/erase'] button").await;
    assert!(
        c.text("#erased").await.contains("Erased"),
        "{}",
        c.text("main").await
    );
    assert!(c.count("#erasures tbody tr").await >= 1);
    c.check_page("privacy").await;
    c.sign_out().await;
}

/// A webhook receiver that answers every request with the status it is set to.
async fn receiver(status: Arc<AtomicU16>) -> String {
    let app = axum::Router::new().fallback(move || {
        let status = status.clone();
        async move { axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap() }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn launch() -> (Browser, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    let chromium = std::env::var("SIGHTLINE_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .disable_default_args()
        .no_sandbox()
        .user_data_dir(profile.path())
        .args([
            "--headless",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .viewport(Viewport {
            width: 1280,
            height: 900,
            ..Viewport::default()
        })
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.expect("start Chromium");
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, driver, profile)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    let axe = axe_source();
    let shots = screenshots();
    let (mut browser, driver, _profile) = launch().await;
    let shop = site().await;
    for backend in backends("console").await {
        let creds = credentials(&backend, "web");
        let privacy = token(&backend, "privacy", "pia");
        let analyst = token(&backend, "analyst", "ana");
        let marketing = token(&backend, "marketing", "mia");
        let security = token(&backend, "security", "sam");
        scan(&backend, shop).await;
        let refusing = Arc::new(AtomicU16::new(400));
        let hook = receiver(refusing.clone()).await;
        sightline_json(
            &backend,
            &[
                "destination",
                "add",
                "crm",
                "--type",
                "webhook",
                "--url",
                &hook,
                "--events",
                "Signed Up",
            ],
        );
        let server = Server::start(&backend, &[]);
        let page = browser.new_page("about:blank").await.unwrap();
        let console = Console {
            page,
            server: &server,
            axe: &axe,
            shots: shots.clone(),
            backend: backend.name(),
        };
        flows(&console, &creds.token, &creds.write_key, &privacy, &analyst).await;
        audiences_and_destinations(&console, &creds.token, &creds.write_key, &refusing).await;
        governance(&console, &marketing, &security).await;
        attribution_privacy_audit(
            &console,
            (&creds.token, &creds.write_key),
            &marketing,
            &security,
            &privacy,
            &analyst,
        )
        .await;
        console.page.close().await.unwrap();
    }
    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
}

async fn flows(c: &Console<'_>, admin: &str, key: &str, privacy: &str, analyst: &str) {
    // Signed out, every page leads to the sign-in form.
    c.open("/events").await;
    assert_eq!(c.path().await, "/login?next=%2Fevents");
    c.check_page("login").await;

    // A wrong token is refused with a message.
    c.fill("input[name=token]", "not-a-token").await;
    c.submit("form.login button[type=submit]").await;
    assert!(c.text("main").await.contains("Unknown API token"));

    // Admin signs in with the keyboard alone: Tab from the skip link to the token field,
    // Enter to send.
    c.open("/login").await;
    let skip = c.page.find_element("a.skip").await.unwrap();
    skip.focus().await.unwrap().press_key("Tab").await.unwrap();
    assert_eq!(c.eval("document.activeElement.id").await, json!("token"));
    let field = c.page.find_element("#token").await.unwrap();
    field.type_str(admin).await.unwrap();
    c.eval("window.__before = true").await;
    field.press_key("Enter").await.unwrap();
    c.until(
        "signed in with the keyboard",
        false,
        "window.__before === undefined && document.readyState === 'complete'",
    )
    .await;
    assert_eq!(c.path().await, "/", "{}: signed in with Enter", c.backend);
    for link in [
        "/governance",
        "/governance/tags",
        "/governance/lineage",
        "/governance/vendors",
        "/governance/metrics",
        "/attribution",
        "/privacy",
        "/audit",
        "/audiences",
        "/destinations",
    ] {
        assert_eq!(c.count(&format!("nav a[href='{link}']")).await, 1, "{link}");
    }
    assert_eq!(c.text("main h1").await, "Overview");
    for link in ["/events", "/profiles", "/sources"] {
        assert_eq!(c.count(&format!("nav a[href='{link}']")).await, 1, "{link}");
    }

    // An event sent through the Segment API appears in the live tail without a reload.
    c.open("/events").await;
    c.check_page("events").await;
    send_ok(
        c.server,
        key,
        "/v1/track",
        json!({"anonymousId": "laptop", "event": "Console Tail Check", "properties": {"plan": "pro"}}),
    )
    .await;
    c.until(
        "the tracked event appears in the live tail",
        false,
        "document.querySelector('#tail').innerText.includes('Console Tail Check')",
    )
    .await;
    // The filters: by name (one match), by a type it is not (none).
    c.open("/events?name=tail+check").await;
    assert_eq!(c.count("#tail tr").await, 1);
    c.open("/events?type=identify").await;
    assert_eq!(c.count("#tail tr").await, 0);

    // A person found by email, with how their identifiers were joined in plain words.
    send_ok(
        c.server,
        key,
        "/v1/identify",
        json!({"anonymousId": "laptop", "userId": "ann", "traits": {"email": "Ann@Example.com", "plan": "pro"}}),
    )
    .await;
    c.open("/profiles").await;
    c.check_page("profiles").await;
    c.fill("#q", "ann@example.com").await;
    c.submit("form.search button").await;
    c.until(
        "the profile is found by email",
        true,
        "!!document.querySelector('main a[href^=\"/profiles/\"]')",
    )
    .await;
    c.check_page("profile-search").await;
    c.submit("main a[href^='/profiles/']").await;
    assert!(
        c.path().await.starts_with("/profiles/email:"),
        "{}",
        c.path().await
    );
    c.until(
        "both events are on the person's timeline",
        true,
        "document.querySelectorAll('#timeline > li').length === 2",
    )
    .await;
    let ids = c.text("#identifiers").await;
    assert!(
        ids.contains("anonymous_id:laptop") && ids.contains("user_id:ann"),
        "{ids}"
    );
    let merges = c.text("#merges").await;
    assert!(!merges.is_empty(), "the merge is explained");
    assert!(merges.contains("laptop"), "{merges}");
    let traits = c.text("#traits").await;
    assert!(
        traits.contains("plan") && traits.contains("pro") && traits.contains("#1"),
        "{traits}"
    );
    c.check_page("profile").await;

    // Sources: a new one's key is shown once; a rotated key too, the old one kept a while.
    c.open("/sources").await;
    c.check_page("sources").await;
    c.fill("#source-name", "app").await;
    c.submit("form[action='/sources/create'] button").await;
    let shown = c.text("#write-key").await;
    assert!(shown.len() >= 20, "a write key is shown: {shown:?}");
    c.open("/sources").await;
    assert!(
        c.text("main").await.find(&shown).is_none(),
        "shown only once"
    );
    c.submit("form[action='/sources/rotate'] button").await;
    let rotated = c.text("#write-key").await;
    assert!(rotated.len() >= 20 && rotated != shown);
    assert!(c.text(".shown-once").await.contains("old keys work until"));
    // The rotated source still takes the old key (grace) and the new one.
    send_ok(
        c.server,
        &rotated,
        "/v1/track",
        json!({"anonymousId": "x", "event": "New Key"}),
    )
    .await;
    send_ok(
        c.server,
        key,
        "/v1/track",
        json!({"anonymousId": "x", "event": "Old Key"}),
    )
    .await;

    // Tracking plans: a source held to one, and its violations, counted within a second.
    let admin_call = |method: reqwest::Method, path: &str, body: Value| {
        client()
            .request(method, format!("{}{path}", c.server.url))
            .bearer_auth(admin)
            .json(&body)
            .send()
    };
    let plan = json!({"track": {"Plan Checked": {"properties": {"type": "object",
        "properties": {"plan": {"type": "string"}}, "additionalProperties": false}}}});
    let made = admin_call(
        reqwest::Method::POST,
        "/api/v1/tracking-plans",
        json!({"name": "shop", "plan": plan}),
    )
    .await
    .unwrap();
    assert_eq!(made.status(), 201, "{:?}", made.text().await);
    let held = admin_call(
        reqwest::Method::PUT,
        "/api/v1/sources/web/tracking-plan",
        json!({"plan": "shop"}),
    )
    .await
    .unwrap();
    assert_eq!(held.status(), 200, "{:?}", held.text().await);
    send_ok(
        c.server,
        key,
        "/v1/track",
        json!({"anonymousId": "x", "event": "Plan Checked", "properties": {"plan": 3, "coupon": "SECRET"}}),
    )
    .await;
    c.open("/plans").await;
    assert!(c.text("#plans").await.contains("shop"));
    c.until(
        "the violations are counted on the plans page",
        true,
        "(document.querySelector('#violations-web .counts') || {innerText: ''}).innerText.includes('unplanned_property')",
    )
    .await;
    let counted = c.text("#violations-web").await;
    assert!(
        counted.contains("invalid_value") && counted.contains("Plan Checked"),
        "{counted}"
    );
    assert!(!counted.contains("SECRET"), "samples are masked: {counted}");
    c.check_page("plans").await;
    // Released again, so that the rest of the walk is not judged.
    admin_call(
        reqwest::Method::PUT,
        "/api/v1/sources/web/tracking-plan",
        json!({"plan": null}),
    )
    .await
    .unwrap();

    // A form without the session's CSRF secret is refused.
    let refused = c
        .eval("fetch('/sources/create', {method: 'POST', body: new URLSearchParams({name: 'evil'})}).then(r => r.status)")
        .await;
    assert_eq!(refused, json!(403));
    c.open("/").await;
    c.check_page("overview").await;
    assert!(
        c.count("svg.chart polyline").await >= 1,
        "a line per source"
    );
    c.sign_out().await;

    // The analyst reads events and profiles, and sees no control of the admin's.
    c.sign_in(analyst).await;
    assert_eq!(c.count("nav a[href='/sources']").await, 0);
    assert_eq!(c.count("nav a[href='/events']").await, 1);
    assert_eq!(c.status("/sources").await, 403);
    assert_eq!(
        c.post("/sources/create", json!({"name": "mine"})).await,
        403
    );
    assert_eq!(
        c.post("/sources/rotate", json!({"source": "web", "grace": "0"}))
            .await,
        403
    );
    c.open("/audiences").await;
    assert_eq!(
        c.count("form.editor").await,
        0,
        "no rule editor for the analyst"
    );
    assert_eq!(
        c.post(
            "/audiences/create",
            json!({"name": "mine", "rule": "has email"})
        )
        .await,
        403
    );
    c.open("/destinations/crm").await;
    assert_eq!(c.count("form[action$='/replay']").await, 0);
    assert_eq!(c.post("/destinations/crm/replay", json!({})).await, 403);
    c.open("/sources").await;
    assert!(
        c.text("main").await.contains("analyst role"),
        "the refusal says why"
    );
    c.check_page("forbidden").await;
    c.sign_out().await;

    // The privacy team reads profiles only.
    c.sign_in(privacy).await;
    assert_eq!(c.count("nav a[href='/events']").await, 0);
    assert_eq!(c.count("nav a[href='/profiles']").await, 1);
    assert_eq!(c.status("/events").await, 403);
    assert_eq!(c.status("/events/feed?after=0").await, 403);
    assert_eq!(c.status("/audiences").await, 403);
    assert_eq!(c.status("/destinations").await, 403);
    assert_eq!(c.status("/governance").await, 403);
    assert_eq!(c.status("/governance/tags").await, 403);
    assert_eq!(
        c.post("/governance/tags/propose", json!({"vendor": "x"}))
            .await,
        403
    );
    assert_eq!(c.status("/profiles/email:ann@example.com").await, 200);
    assert_eq!(
        c.post("/sources/create", json!({"name": "mine"})).await,
        403
    );
    c.check_page("overview-privacy").await;
    c.sign_out().await;
}

fn encoded(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// The session cookie's flags, the security headers and the sign-in form's own CSRF check,
/// over plain HTTP.
#[tokio::test]
async fn sessions_cookies_and_headers() {
    for backend in backends("console_http").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = http
            .get(format!("{}/login", server.url))
            .send()
            .await
            .unwrap();
        let csp = form.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        let login_cookie = form.headers()["set-cookie"].to_str().unwrap().to_string();
        let html = form.text().await.unwrap();
        let nonce = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string();
        let cookie = login_cookie.split(';').next().unwrap().to_string();

        // Without the form's cookie: refused.
        let no_cookie = http
            .post(format!("{}/login", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded(&[
                ("token", creds.token.as_str()),
                ("csrf", nonce.as_str()),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(no_cookie.status(), 401);
        assert!(no_cookie.headers().get("location").is_none());

        let mut jar = String::new();
        for https in [false, true] {
            let mut request = http
                .post(format!("{}/login", server.url))
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded(&[
                    ("token", creds.token.as_str()),
                    ("csrf", nonce.as_str()),
                    ("next", "//evil.example/"),
                ]));
            if https {
                request = request.header("x-forwarded-proto", "https");
            }
            let signed = request.send().await.unwrap();
            assert_eq!(signed.status(), 303);
            assert_eq!(
                signed.headers()["location"],
                "/",
                "never a redirect elsewhere"
            );
            let session = signed
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .find(|c| c.starts_with("sl_session="))
                .unwrap();
            assert!(
                session.contains("HttpOnly") && session.contains("SameSite=Strict"),
                "{session}"
            );
            assert_eq!(session.contains("Secure"), https, "{session}");
            jar = session.split(';').next().unwrap().to_string();
            let overview = http
                .get(format!("{}/", server.url))
                .header("cookie", &jar)
                .send()
                .await
                .unwrap();
            assert_eq!(overview.status(), 200);
            assert_eq!(overview.headers()["x-frame-options"], "DENY");
            // A post without the CSRF secret, even with the session: 403.
            let post = http
                .post(format!("{}/sources/create", server.url))
                .header("cookie", &jar)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded(&[("name", "evil")]))
                .send()
                .await
                .unwrap();
            assert_eq!(post.status(), 403);
        }
        // The API is untouched by the console: JSON 404 for an unknown API path still.
        let api = client()
            .get(format!("{}/api/v1/nothing", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 404);

        // Sessions are kept in the store: a restarted server (as another node would) knows
        // the session, and signing out ends it there.
        drop(server);
        let server = Server::start(&backend, &[]);
        let page = |jar: String| {
            http.get(format!("{}/", server.url))
                .header("cookie", jar)
                .send()
        };
        let overview = page(jar.clone()).await.unwrap();
        assert_eq!(overview.status(), 200, "the session outlived the restart");
        let html = overview.text().await.unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string();
        let out = http
            .post(format!("{}/logout", server.url))
            .header("cookie", &jar)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded(&[("csrf", csrf.as_str())]))
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 303);
        let after = page(jar.clone()).await.unwrap();
        assert_eq!(after.status(), 303, "signed out");
        assert!(after.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login"));
        let forged = page("sl_session=not-a-session".into()).await.unwrap();
        assert_eq!(forged.status(), 303);
    }
}
