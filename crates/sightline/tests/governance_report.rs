//! Governance metrics and the HTML report through the binary, on SQLite and PostgreSQL: real
//! scans of a local site (no interaction, accept all, reject all, `--tag-cost`), events over
//! `/v1/batch` with and without consent signals and with conversions → `sightline metrics`
//! per scan and per day (CLI and API) → `sightline report`, rendered in headless Chromium,
//! screenshotted, and its key elements checked in the rendered page.

mod common;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use common::{backends, credentials, get, get_json, send_ok, sightline, Backend, Server};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shop whose pixel loads before any consent choice, and whose analytics loads only after
/// "accept all" (while `analytics_on`). Every host name is mapped onto this server.
async fn site(analytics_on: Arc<AtomicBool>) -> u16 {
    let page = move || {
        let on = analytics_on.load(Ordering::SeqCst);
        async move {
            let cmp = if on {
                "document.getElementById('cmp-accept').onclick = function () { \
                   var s = document.createElement('script'); \
                   s.src = 'http://cdn.statsco.example/s.js'; document.head.appendChild(s); };"
            } else {
                ""
            };
            axum::response::Html(format!(
                "<html><head><script src='http://px.pixelhub.example/p.js?v=1'></script></head>\
                 <body><h1>Shop</h1><div id='banner'><button id='cmp-accept'>Accept all</button>\
                 <button id='cmp-reject'>Reject all</button></div><script>{cmp}</script></body></html>"
            ))
        }
    };
    let script = || async { ([("content-type", "application/javascript")], "/* tag */") };
    let app = axum::Router::new()
        .route("/", axum::routing::get(page))
        .route("/p.js", axum::routing::get(script))
        .route("/s.js", axum::routing::get(script));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn write_journey(dir: &Path, port: u16) -> (PathBuf, PathBuf) {
    let journey = dir.join("journey.toml");
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
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        "[[vendor]]\nname = \"PixelHub\"\ncategory = \"advertising\"\nhosts = [\"pixelhub.example\"]\n\
         [[vendor]]\nname = \"StatsCo\"\ncategory = \"analytics\"\nhosts = [\"statsco.example\"]\n",
    )
    .unwrap();
    (journey, catalog)
}

fn run(backend: &Backend, args: &[&str]) -> String {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let output = sightline(&all);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A scan under three scenarios with the tag cost measured; returns the scan id.
async fn scan(backend: &Backend, journey: &Path, catalog: &Path, out: &Path) -> i64 {
    let (backend, journey, catalog, out) = (
        backend.clone(),
        journey.to_owned(),
        catalog.to_owned(),
        out.to_owned(),
    );
    let text = tokio::task::spawn_blocking(move || {
        run(
            &backend,
            &[
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
                "accept-all",
                "--scenario",
                "reject-all",
                "--tag-cost",
                "--no-screenshots",
            ],
        )
    })
    .await
    .unwrap();
    common::scan_id(&text)
}

/// Two days of events: the first with one of its two counted events carrying a consent
/// signal, the second with three of four (a TC string that does not decode is no signal),
/// and two conversions whose paths the models credit differently. Identify calls are not
/// counted.
fn events() -> Value {
    let analytics = json!({"consent": {"purposes": {"analytics": true}}});
    let page = |user: &str, at: &str, query: &str| {
        json!({"type": "page", "userId": user, "timestamp": at,
               "context": {"consent": {"purposes": {"analytics": true}},
                           "page": {"url": format!("https://www.shop.example/{query}")}}})
    };
    json!({"batch": [
        {"type": "track", "event": "Viewed", "userId": "u0", "timestamp": "2020-01-01T10:00:00Z",
         "context": {"consent": {"categoryPreferences": {"analytics": true}}}},
        {"type": "track", "event": "Viewed", "userId": "u0", "timestamp": "2020-01-01T11:00:00Z"},
        {"type": "identify", "userId": "u0", "timestamp": "2020-01-01T12:00:00Z"},
        page("u1", "2020-01-02T09:00:00Z", "?utm_source=google&utm_medium=cpc"),
        page("u1", "2020-01-02T09:30:00Z", "?utm_source=newsletter&utm_medium=email"),
        {"type": "track", "event": "Order Completed", "userId": "u1",
         "timestamp": "2020-01-02T10:00:00Z", "context": analytics},
        {"type": "track", "event": "Viewed", "userId": "u2", "timestamp": "2020-01-02T11:00:00Z",
         "context": {"consent": {"tcf": "not-a-tc-string"}}},
    ]})
}

fn day<'a>(days: &'a Value, name: &str) -> &'a Value {
    days.as_array()
        .unwrap()
        .iter()
        .find(|d| d["day"] == name)
        .unwrap_or_else(|| panic!("no day {name} in {days}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_scans_and_the_log_and_the_report_renders_in_chromium() {
    let analytics_on = Arc::new(AtomicBool::new(true));
    let port = site(analytics_on.clone()).await;
    for backend in backends("governance_report").await {
        let name = backend.name();
        let temp = common::temp_dir("governance");
        let dir = temp.path();
        let (journey, catalog) = write_journey(dir, port);
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        send_ok(&server, &creds.write_key, "/v1/batch", events()).await;

        // The inventory knows PixelHub (an approved tag) but not StatsCo when the first
        // scan is stored.
        let proposed: Value = serde_json::from_str(&run(
            &backend,
            &[
                "tags",
                "propose",
                "--json",
                "--vendor",
                "PixelHub",
                "--purpose",
                "retargeting",
                "--owner",
                "growth",
                "--classification",
                "optional",
                "--consent-purpose",
                "advertising",
                "--token",
                &creds.token,
            ],
        ))
        .unwrap();
        let security: Value = serde_json::from_str(&run(
            &backend,
            &[
                "token", "create", "--role", "security", "--name", "sam", "--json",
            ],
        ))
        .unwrap();
        run(
            &backend,
            &[
                "tags",
                "approve",
                &proposed["id"].to_string(),
                "--token",
                security["token"].as_str().unwrap(),
            ],
        );
        let first = scan(&backend, &journey, &catalog, &dir.join("first")).await;
        analytics_on.store(false, Ordering::SeqCst);
        let second = scan(&backend, &journey, &catalog, &dir.join("second")).await;
        analytics_on.store(true, Ordering::SeqCst);

        let cli: Value = serde_json::from_str(&run(
            &backend,
            &["metrics", "--json", "--conversion", "Order Completed"],
        ))
        .unwrap();
        let scans = cli["scans"].as_array().unwrap();
        assert_eq!(scans.len(), 2, "{name}: {cli}");
        let (a, b) = (&scans[0], &scans[1]);
        assert_eq!(
            (a["scan_id"].as_i64(), b["scan_id"].as_i64()),
            (Some(first), Some(second))
        );
        assert_eq!(
            a["tag_count"], 2,
            "{name}: the pixel and the analytics script: {a}"
        );
        assert_eq!(a["vendors"], json!(["PixelHub", "StatsCo"]), "{name}");
        assert_eq!(a["undocumented"], json!(["StatsCo"]), "{name}");
        assert_eq!(a["before_consent"], json!(["PixelHub"]), "{name}");
        assert_eq!(
            a["blocked_script_rate"], 0.5,
            "{name}: refusing held back the analytics but not the pixel"
        );
        assert!(
            a["third_party_latency_ms"].as_f64().unwrap() >= 0.0,
            "{name}: {a}"
        );
        assert_eq!(a["vendor_reduction"], 0, "{name}");
        assert_eq!(b["vendor_count"], 1, "{name}: {b}");
        assert_eq!(b["vendor_reduction"], 1, "{name}");
        assert_eq!(b["blocked_script_rate"], 0.0, "{name}");

        let days = &cli["days"];
        let first_day = day(days, "2020-01-01");
        assert_eq!(first_day["events"], 2, "{name}: identify is not counted");
        assert_eq!(first_day["consent_quality"], 0.5, "{name}");
        assert_eq!(
            first_day["vendor_count"],
            Value::Null,
            "{name}: before any scan"
        );
        let second_day = day(days, "2020-01-02");
        assert_eq!(second_day["events"], 4, "{name}");
        assert_eq!(second_day["with_consent_signal"], 3, "{name}");
        assert!(
            second_day["attribution_variance"].as_f64().unwrap() > 0.0,
            "{name}: first and last touch disagree: {second_day}"
        );
        let last = days.as_array().unwrap().last().unwrap();
        assert_eq!(
            (last["scans"].as_u64(), last["vendor_count"].as_u64()),
            (Some(2), Some(1))
        );

        // The API answers the same series.
        let api = get_json(
            &server,
            &creds.token,
            "/api/v1/governance/metrics?conversion=Order%20Completed",
        )
        .await;
        assert_eq!(api, cli, "{name}");

        let response = get(&server, Some(&creds.token), "/api/v1/report").await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("id=\"lineage-diagram\""));

        let report = dir.join("report.html");
        run(
            &backend,
            &[
                "report",
                "--out",
                report.to_str().unwrap(),
                "--conversion",
                "Order Completed",
            ],
        );
        let rendered = render(&report, &dir.join("report.png")).await;
        check_rendered(name, &rendered);
        drop(server);
    }
}

/// What the rendered page shows, read back from Chromium; the screenshot is checked here.
async fn render(report: &Path, screenshot: &Path) -> Value {
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
            height: 1000,
            ..Viewport::default()
        })
        .build()
        .unwrap();
    let (mut browser, mut handler) = Browser::launch(config).await.expect("start Chromium");
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let url = format!("file://{}", report.display());
    let page = browser.new_page(url.as_str()).await.unwrap();
    page.wait_for_navigation().await.unwrap();
    let png = page
        .screenshot(ScreenshotParams::builder().full_page(true).build())
        .await
        .unwrap();
    std::fs::write(screenshot, &png).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (width, height) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert!(
        width >= 1000 && height > 1000,
        "{width}x{height}: the whole report"
    );
    let shown: Value = page
        .evaluate(
            "(() => {
               const size = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
               const all = s => [...document.querySelectorAll(s)];
               return {
                 sections: Object.fromEntries(all('section').map(s => [s.id, size(s)])),
                 tiles: Object.fromEntries(all('.tile').map(t =>
                   [t.dataset.metric, t.querySelector('.value').textContent.trim()])),
                 charts: Object.fromEntries(all('svg.chart').map(c =>
                   [c.dataset.metric, [size(c)[0], c.querySelectorAll('circle').length]])),
                 nodes: all('#lineage-diagram g.node').map(n => n.dataset.id),
                 edges: all('#lineage-diagram g.edge').length,
                 diagram: size(document.querySelector('#lineage-diagram')),
                 statuses: all('#inventory-table .badge').map(b => b.className),
                 open_findings: all('#findings-open tbody tr').length,
                 outside: all('[src], [href]').map(e => e.getAttribute('src') || e.getAttribute('href'))
                   .filter(u => !u.startsWith('#')),
               };
             })()",
        )
        .await
        .unwrap()
        .into_value()
        .unwrap();
    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    shown
}

fn check_rendered(name: &str, shown: &Value) {
    for section in [
        "summary",
        "findings",
        "inventory",
        "vendors",
        "lineage",
        "trends",
    ] {
        let size = &shown["sections"][section];
        assert!(
            size[0].as_f64().unwrap() > 0.0 && size[1].as_f64().unwrap() > 0.0,
            "{name}: section {section} is laid out: {shown}"
        );
    }
    let tiles = &shown["tiles"];
    assert_eq!(
        tiles["tags"].as_str().map(|t| t.starts_with('1')),
        Some(true),
        "{name}: {tiles}"
    );
    assert_eq!(tiles["vendor_count"], "1", "{name}: {tiles}");
    assert_eq!(
        tiles["vendor_reduction"], "0",
        "{name}: both scans fell on one day: {tiles}"
    );
    assert_eq!(
        tiles["consent_quality"], "75.0%",
        "{name}: the last day with events"
    );
    assert_eq!(tiles["blocked_script_rate"], "0.0%", "{name}: {tiles}");
    for metric in [
        "tag_count",
        "vendor_count",
        "undocumented_vendors",
        "tags_before_consent",
        "consent_quality",
        "blocked_script_rate",
        "third_party_latency_ms",
        "vendor_reduction",
        "attribution_variance",
    ] {
        let chart = &shown["charts"][metric];
        assert!(
            chart[0].as_f64().unwrap() > 100.0,
            "{name}: chart {metric}: {shown}"
        );
        assert!(
            chart[1].as_u64().unwrap() >= 1,
            "{name}: {metric} has points"
        );
    }
    let nodes: Vec<&str> = shown["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        nodes.iter().any(|n| n.ends_with(":web")),
        "{name}: the source: {nodes:?}"
    );
    assert!(
        nodes.iter().any(|n| n.contains("PixelHub")),
        "{name}: the vendor: {nodes:?}"
    );
    assert!(shown["edges"].as_u64().unwrap() >= 2, "{name}");
    assert!(shown["diagram"][1].as_f64().unwrap() > 50.0, "{name}");
    assert_eq!(
        shown["statuses"],
        json!(["badge status-approved"]),
        "{name}"
    );
    assert!(
        shown["open_findings"].as_u64().unwrap() >= 1,
        "{name}: the pixel before consent"
    );
    assert_eq!(
        shown["outside"],
        json!([]),
        "{name}: nothing loaded from outside"
    );
}

/// Runs a command that must fail; returns its stderr.
fn refused(backend: &Backend, args: &[&str]) -> String {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let output = sightline(&all);
    assert!(!output.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_metrics_and_report_requests_are_clear_errors_that_change_nothing() {
    for backend in backends("governance_bad_input").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        send_ok(&server, &creds.write_key, "/v1/batch", events()).await;
        let before = run(&backend, &["metrics", "--json"]);

        let err = refused(
            &backend,
            &[
                "metrics",
                "--conversion",
                "Order Completed",
                "--lookback",
                "soon",
            ],
        );
        assert!(err.contains("lookback"), "{name}: {err}");
        let err = refused(&backend, &["metrics", "--value-property", "revenue"]);
        assert!(err.contains("--conversion"), "{name}: {err}");
        let err = refused(
            &backend,
            &["report", "--out", "/nonexistent-dir/report.html"],
        );
        assert!(
            err.contains("cannot write /nonexistent-dir/report.html"),
            "{name}: {err}"
        );
        let err = refused(&backend, &["report"]);
        assert!(err.contains("--out"), "{name}: {err}");

        let answer = get(
            &server,
            Some(&creds.token),
            "/api/v1/governance/metrics?conversion=Order%20Completed&lookback=soon",
        )
        .await;
        assert_eq!(answer.status(), 400, "{name}");
        let body: Value = answer.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("lookback"),
            "{name}: {body}"
        );
        let anonymous = get(&server, None, "/api/v1/report").await;
        assert_eq!(anonymous.status(), 401, "{name}");

        assert_eq!(
            run(&backend, &["metrics", "--json"]),
            before,
            "{name}: nothing changed"
        );
    }
}
