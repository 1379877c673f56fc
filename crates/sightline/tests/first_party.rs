//! First-party collection in a real browser: a site on another origin loads Sightline's
//! analytics.js from Sightline (the snippet's CDN host pointed at it), and the calls it
//! made before and after the loader arrived reach the log with one anonymous id, the page
//! and campaign context, and the identified user kept across a reload.

mod common;

use chromiumoxide::browser::{Browser, BrowserConfig};
use common::{all_events, client, credentials, get, temp_dir, Backend, Server};
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A site's page with an analytics.js snippet of our own writing: a queue with the
/// standard method stubs and `load` injecting the loader from `cdn`.
fn site_page(cdn: &str, key: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>Trail shoe</title>
<link rel="canonical" href="/products/7">
<script>
(function () {{
  var analytics = window.analytics = window.analytics || [];
  ['page', 'identify', 'track', 'group', 'alias', 'ready', 'reset'].forEach(function (m) {{
    analytics[m] = function () {{
      var call = Array.prototype.slice.call(arguments);
      call.unshift(m);
      analytics.push(call);
      return analytics;
    }};
  }});
  analytics.load = function (key) {{
    var script = document.createElement('script');
    script.async = true;
    script.src = '{cdn}/analytics.js/v1/' + key + '/analytics.min.js';
    document.head.appendChild(script);
  }};
  analytics._writeKey = '{key}';
  analytics.load('{key}');
  analytics.page();
  if (location.search.indexOf('again') < 0) {{
    analytics.identify('u-42', {{email: 'ann@example.com', plan: 'pro'}});
  }}
  analytics.track('Order Completed', {{revenue: 42}});
  analytics.ready(function () {{ window.loaded = true; }});
}})();
</script></head><body><h1>Trail shoe</h1></body></html>"#
    )
}

/// Serves `page` at every path on a port of its own (another origin than Sightline's).
async fn site(page: String) -> String {
    let app = axum::Router::new().fallback(move || {
        let page = page.clone();
        async move { axum::response::Html(page) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The events whose messageId starts with `prefix` (a browser library's), once there are
/// `at_least`.
async fn events_from(server: &Server, token: &str, prefix: &str, at_least: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events: Vec<Value> = all_events(server, token)
            .await
            .into_iter()
            .filter(|e| {
                e["messageId"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(prefix))
            })
            .collect();
        if events.len() >= at_least {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the browser's events did not arrive: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one event of this type.
fn of_type<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let mut found = events.iter().filter(|e| e["type"] == kind);
    let event = found
        .next()
        .unwrap_or_else(|| panic!("no {kind} in {events:?}"));
    assert!(found.next().is_none(), "more than one {kind} in {events:?}");
    event
}

/// Debian's Chromium, headless, with a profile of its own; and the task driving it.
async fn chromium() -> (Browser, tokio::task::JoinHandle<()>) {
    let chromium = std::env::var("SIGHTLINE_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let profile = tempfile::tempdir().unwrap().keep();
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .disable_default_args()
        .no_sandbox()
        .user_data_dir(profile)
        .args([
            "--headless",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.expect("start Chromium");
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, driver)
}

/// One browser for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_send_to_their_own_domain_in_chromium() {
    let (mut browser, driver) = chromium().await;
    let visitor = a_site_sends_to_its_own_domain_through_the_first_party_loader(&browser).await;
    segments_analytics_next_reads_its_settings_from_sightline(&browser, &visitor).await;
    browser.close().await.unwrap();
    driver.await.unwrap();
}

/// The visitor's anonymous id, as the first-party cookie keeps it.
async fn a_site_sends_to_its_own_domain_through_the_first_party_loader(
    browser: &Browser,
) -> String {
    // Collection is the same on both backends: SQLite will do.
    let backend = Backend::Sqlite(Arc::new(temp_dir("first-party")));
    let creds = credentials(&backend, "web");
    let server = Server::start(&backend, &[]);
    let site = site(site_page(&server.url, &creds.write_key)).await;

    // The loader and settings for a known key; 404 for another.
    let loader = get(
        &server,
        None,
        &format!("/analytics.js/v1/{}/analytics.min.js", creds.write_key),
    )
    .await;
    assert_eq!(loader.status(), 200);
    assert!(loader.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/javascript"));
    let settings: Value = client()
        .get(format!(
            "{}/v1/projects/{}/settings",
            server.url, creds.write_key
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let host = server.url.trim_start_matches("http://");
    assert_eq!(
        settings["integrations"]["Segment.io"]["apiHost"],
        format!("{host}/v1")
    );
    assert_eq!(settings["metrics"]["sampleRate"], 0);
    for path in [
        "/analytics.js/v1/nope/analytics.min.js",
        "/v1/projects/nope/settings",
    ] {
        assert_eq!(get(&server, None, path).await.status(), 404, "{path}");
    }

    let page = browser
        .new_page(format!("{site}/products/7?utm_source=news&utm_campaign=winter").as_str())
        .await
        .unwrap();
    page.wait_for_navigation().await.unwrap();

    let events = events_from(&server, &creds.token, "ajs-", 3).await;
    // Each call is its own request, sent at once: they may arrive in any order.
    let mut kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["identify", "page", "track"]);
    let (page_call, identify, track) = (
        of_type(&events, "page"),
        of_type(&events, "identify"),
        of_type(&events, "track"),
    );
    let anonymous = page_call["anonymousId"].as_str().unwrap().to_owned();
    assert!(events
        .iter()
        .all(|e| e["anonymousId"] == anonymous.as_str()));
    assert!(page_call.get("userId").is_none(), "{page_call}");
    assert_eq!(identify["userId"], "u-42");
    assert_eq!(identify["traits"]["email"], "ann@example.com");
    assert_eq!(track["userId"], "u-42");
    assert_eq!(track["event"], "Order Completed");
    assert_eq!(track["properties"]["revenue"], 42);
    let context = &page_call["context"];
    assert_eq!(context["page"]["path"], "/products/7");
    assert_eq!(context["page"]["title"], "Trail shoe");
    assert_eq!(context["campaign"]["source"], "news");
    assert_eq!(context["campaign"]["name"], "winter");
    assert_eq!(context["library"]["name"], "sightline-analytics.js");
    assert!(context["userAgent"].as_str().unwrap().contains("Chrome"));
    assert_eq!(
        page_call["properties"]["url"]
            .as_str()
            .unwrap()
            .split('?')
            .next(),
        Some(format!("{site}/products/7").as_str())
    );

    // The visitor comes back: same anonymous id, still identified, first-party cookie set.
    page.goto(format!("{site}/products/7?again=1").as_str())
        .await
        .unwrap();
    page.wait_for_navigation().await.unwrap();
    let events = events_from(&server, &creds.token, "ajs-", 5).await;
    let later = &events[3..];
    assert!(later.iter().all(|e| e["anonymousId"] == anonymous.as_str()));
    assert!(later.iter().all(|e| e["userId"] == "u-42"), "{later:?}");
    let cookies: String = page
        .evaluate("document.cookie")
        .await
        .unwrap()
        .into_value()
        .unwrap();
    assert!(cookies.contains("ajs_anonymous_id="), "{cookies}");
    anonymous
}

/// Segment's own analytics.js (analytics-next, from npm: scripts/setup.sh installs it into
/// tests/sdk) with its CDN set to Sightline: it reads the settings Sightline serves and
/// sends to Sightline, and the visitor keeps the anonymous id the first-party loader gave
/// them (same host, so the same cookie: a site can move between the two).
async fn segments_analytics_next_reads_its_settings_from_sightline(
    browser: &Browser,
    visitor: &str,
) {
    let bundle = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sdk/node_modules/@segment/analytics-next/dist/umd/standalone.js");
    let bundle = std::fs::read_to_string(&bundle)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup.sh", bundle.display()));
    let backend = Backend::Sqlite(Arc::new(temp_dir("analytics-next")));
    let creds = credentials(&backend, "web");
    let server = Server::start(&backend, &[]);
    let page = format!(
        r#"<!doctype html><html><head><title>Sign up</title><script>
window.analytics = [];
window.analytics._writeKey = '{key}';
window.analytics._cdn = '{cdn}';
window.analytics.push(['page']);
window.analytics.push(['identify', 'u-42', {{email: 'ann@example.com'}}]);
window.analytics.push(['track', 'Signed Up', {{plan: 'pro'}}]);
</script><script src="/standalone.js"></script></head><body>Sign up</body></html>"#,
        key = creds.write_key,
        cdn = server.url
    );
    let app = axum::Router::new()
        .route(
            "/standalone.js",
            axum::routing::get(move || {
                let bundle = bundle.clone();
                async move { ([("content-type", "application/javascript")], bundle) }
            }),
        )
        .fallback(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let tab = browser
        .new_page(format!("{site}/signup").as_str())
        .await
        .unwrap();
    tab.wait_for_navigation().await.unwrap();
    let events = events_from(&server, &creds.token, "ajs-next-", 3).await;
    // analytics-next sends its queue's calls concurrently: found by type.
    let of = |kind: &str| of_type(&events, kind);
    assert_eq!(of("identify")["userId"], "u-42");
    assert_eq!(of("identify")["traits"]["email"], "ann@example.com");
    assert_eq!(of("track")["properties"]["plan"], "pro");
    assert_eq!(of("page")["context"]["page"]["path"], "/signup");
    let ids: Vec<&Value> = events.iter().map(|e| &e["anonymousId"]).collect();
    assert!(
        ids.iter().all(|id| *id == visitor),
        "{ids:?}, the visitor was {visitor}"
    );
}
