//! `sightline-bench scan`: a 10-step fixture journey scanned by the real `sightline scan`
//! under five consent scenarios (no-interaction, accept-all, reject-all, gpc and a custom
//! per-purpose choice), against the same 10 pages loaded by a bare Chromium with no
//! instrumentation (`chromium --headless --dump-dom URL`, one process per page, as a plain
//! page load costs), in the same run. The site is served from memory by this process; every
//! host name is mapped to it with `--host-resolver-rules`.
//!
//! `--crawl N`: a site of N pages (and an index linking them all) crawled by a journey's
//! `[crawl]` and scanned under no-interaction and accept-all, against the same N pages
//! through the bare Chromium loop; pages per minute per scenario, and the peak memory of
//! the scan (the `sightline` process and its browsers).
//!
//! `--crawl N --blacklight`: The Markup's Blacklight collector (an open-source privacy
//! scanner on Puppeteer, `bench/blacklight`) visits the same index and N of its pages in
//! the same Chromium, offline through the same host mapping: its pages per minute and peak
//! memory beside ours, and the third-party hosts each saw. Blacklight has no consent
//! scenarios (it scans as a visitor who never answers the banner), so it compares with one
//! scenario of ours; by its design it also waits a second on each page, scrolls it and
//! fills its forms.

use crate::{round3, sibling};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const STEPS: usize = 10;
const SCENARIOS: [&str; 5] = [
    "no-interaction",
    "accept-all",
    "reject-all",
    "gpc",
    "custom:analytics-only",
];

/// A first-party consent banner: each button stores the choice in a cookie; tags follow it.
const CMP_JS: &str = r#"
var choice = (document.cookie.match(/(?:^|; )consent=(\w+)/) || [])[1];
function load(src) { var s = document.createElement('script'); s.src = src; document.head.appendChild(s); }
function apply(c) {
  if (c === 'all' || c === 'analytics') load('http://cdn.bench-analytics.test/a.js');
  if (c === 'all') load('http://px.bench-ads.test/px.js');
}
apply(choice);
document.addEventListener('click', function (e) {
  var map = { 'cmp-accept': 'all', 'cmp-reject': 'none', 'cmp-analytics': 'analytics' };
  var c = map[e.target.id];
  if (!c) return;
  document.cookie = 'consent=' + c + '; path=/; max-age=31536000';
  document.getElementById('cmp-banner').remove();
  apply(c);
});
"#;

/// A tag manager that loads a chat widget whatever the consent (a fourth party).
const TM_JS: &str =
    "var s = document.createElement('script'); s.src = 'http://widget.bench-chat.test/w.js'; document.head.appendChild(s);";
const ANALYTICS_JS: &str = "navigator.sendBeacon('http://collect.bench-analytics.test/c?en=page_view&dl=' + encodeURIComponent(location.href));";
const ADS_JS: &str = "document.cookie = '_bpx=1; path=/; max-age=7776000'; new Image().src = 'http://px.bench-ads.test/tr?ev=PageView';";
const CHAT_JS: &str =
    "fetch('http://api.bench-chat.test/session', { method: 'POST', body: '{}' });";

const CATALOG: &str = r#"
[[vendor]]
name = "Bench Tags"
category = "tag_manager"
hosts = ["bench-tm.test"]
[[vendor]]
name = "Bench Analytics"
category = "analytics"
hosts = ["bench-analytics.test"]
[[vendor]]
name = "Bench Ads"
category = "advertising"
hosts = ["bench-ads.test"]
cookies = ["_bpx"]
[[vendor]]
name = "Bench Chat"
category = "support"
hosts = ["bench-chat.test"]
"#;

fn page(step: usize) -> String {
    let form = if step == 5 {
        "<form id=f><input id=email type=email><button id=go type=button>Sign up</button></form>"
    } else {
        ""
    };
    let next = if step < STEPS {
        format!("<a href='/step-{}.html'>next</a>", step + 1)
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html><head><title>Step {step}</title>\
         <script src='/cmp.js'></script>\
         <script src='http://tags.bench-tm.test/tm.js?id=TM-1'></script>\
         <link rel=stylesheet href='/site.css'></head><body>\
         <div id=cmp-banner>Cookies? <button id=cmp-accept>Accept all</button>\
         <button id=cmp-reject>Reject all</button> <button id=cmp-analytics>Analytics only</button></div>\
         <h1>Step {step}</h1><p>{}</p><img src='/hero-{step}.gif' alt=''>{form}{next}</body></html>",
        "Lorem ipsum dolor sit amet. ".repeat(40)
    )
}

pub(crate) async fn serve_site() -> Result<u16> {
    use axum::http::{header, HeaderMap, Uri};
    use axum::response::IntoResponse;
    async fn answer(headers: HeaderMap, uri: Uri) -> axum::response::Response {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let path = uri.path();
        let js = |body: &'static str| {
            ([(header::CONTENT_TYPE, "text/javascript")], body).into_response()
        };
        match (host.as_str(), path) {
            ("www.bench.test", "/cmp.js") => js(CMP_JS),
            ("www.bench.test", "/site.css") => {
                ([(header::CONTENT_TYPE, "text/css")], "body { font: 16px sans-serif }").into_response()
            }
            ("www.bench.test", "/index.html") => {
                let links: String = (1..=MAX_CRAWL)
                    .map(|n| format!("<a href='/step-{n}.html'>{n}</a> "))
                    .collect();
                // The banner too: a crawl's consent is given on its first page.
                axum::response::Html(format!(
                    "<!doctype html><title>Index</title><script src='/cmp.js'></script>\
                     <div id=cmp-banner><button id=cmp-accept>Accept all</button></div>{links}"
                ))
                .into_response()
            }
            ("www.bench.test", p) if p.starts_with("/step-") => {
                let n: usize = p
                    .trim_start_matches("/step-")
                    .trim_end_matches(".html")
                    .parse()
                    .unwrap_or(1);
                axum::response::Html(page(n)).into_response()
            }
            ("tags.bench-tm.test", "/tm.js") => js(TM_JS),
            ("cdn.bench-analytics.test", "/a.js") => js(ANALYTICS_JS),
            ("px.bench-ads.test", "/px.js") => js(ADS_JS),
            ("widget.bench-chat.test", "/w.js") => js(CHAT_JS),
            // Images and beacons: a 1x1 GIF.
            _ => (
                [(header::CONTENT_TYPE, "image/gif")],
                &b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"[..],
            )
                .into_response(),
        }
    }
    let app = axum::Router::new().fallback(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

pub(crate) fn journey(port: u16) -> String {
    let mut text = format!(
        "name = \"bench\"\n[browser]\nhost_resolver_rules = \"MAP * 127.0.0.1:{port}\"\n\
         [consent.accept-all]\nclick = [\"#cmp-accept\"]\n\
         [consent.reject-all]\nclick = [\"#cmp-reject\"]\n\
         [consent.custom.analytics-only]\nclick = [\"#cmp-analytics\"]\ngrant = [\"analytics\"]\n\
         [inventory]\nvendors = [\"Bench Tags\", \"Bench Analytics\", \"Bench Ads\"]\n"
    );
    for step in 1..=STEPS {
        text.push_str(&format!(
            "[[steps]]\nname = \"step-{step}\"\nurl = \"http://www.bench.test/step-{step}.html\"\n"
        ));
        if step == 5 {
            text.push_str(
                "actions = [{ fill = \"#email\", value = \"ann@example.com\" }, { click = \"#go\" }]\n",
            );
        }
    }
    text
}

fn chromium() -> String {
    std::env::var("SIGHTLINE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// The same pages loaded by a bare Chromium: one `--dump-dom` process per page, no DevTools.
fn bare_load(port: u16, profile: &Path, pages: usize) -> Result<f64> {
    let started = Instant::now();
    for step in 1..=pages {
        let out = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
            ])
            .arg(format!("--host-resolver-rules=MAP * 127.0.0.1:{port}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(format!("http://www.bench.test/step-{step}.html"))
            .output()
            .context("cannot run chromium")?;
        if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("<h1>Step") {
            bail!(
                "bare chromium failed on step {step}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// `sightline scan` of the bench's journey and catalog in `dir` under `scenarios`, its
/// report in `out`.
fn scan_command(sightline: &Path, dir: &Path, out: &Path, scenarios: &[&str]) -> Command {
    let mut command = Command::new(sightline);
    command
        .arg("scan")
        .arg(dir.join("journey.toml"))
        // The fixture site listens on 127.0.0.1.
        .arg("--allow-private-network")
        .arg("--out")
        .arg(out)
        .arg("--catalog")
        .arg(dir.join("catalog.toml"));
    for s in scenarios {
        command.args(["--scenario", s]);
    }
    command
}

/// One `sightline scan` of the journey; returns wall milliseconds and the report.
fn scan(sightline: &Path, dir: &Path, parallel: Option<&str>) -> Result<(f64, Value)> {
    let out = dir.join(format!("out-{}", parallel.unwrap_or("auto")));
    let mut command = scan_command(sightline, dir, &out, &SCENARIOS);
    if let Some(n) = parallel {
        command.args(["--parallel", n]);
    }
    let started = Instant::now();
    let output = command.output()?;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    if !output.status.success() {
        bail!(
            "sightline scan failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json"))?)?;
    if report["incomplete"] != json!(false) {
        bail!("the bench scan is incomplete: {}", report["scenarios"]);
    }
    Ok((wall, report))
}

pub async fn run() -> Result<()> {
    let sightline = sibling("sightline")?;
    let port = serve_site().await?;
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("journey.toml"), journey(port))?;
    std::fs::write(dir.join("catalog.toml"), CATALOG)?;

    let (bare_ms, scan_auto, scan_serial) = tokio::task::spawn_blocking({
        let (dir, sightline) = (dir.clone(), sightline.clone());
        move || -> Result<_> {
            // Warm the page cache of the browser binary once, outside the timings.
            bare_load(port, &dir.join("warm"), STEPS)?;
            let bare = bare_load(port, &dir.join("bare"), STEPS)?;
            let auto = scan(&sightline, &dir, None)?;
            let serial = scan(&sightline, &dir, Some("1"))?;
            Ok((bare, auto, serial))
        }
    })
    .await??;
    let (scan_ms, report) = scan_auto;
    let (serial_ms, _) = scan_serial;
    let scenarios = report["scenarios"].as_array().map_or(0, Vec::len);
    let steps: usize = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["steps"].as_array().map_or(0, Vec::len))
        .sum();
    let findings = report["findings"].as_array().map_or(0, Vec::len);
    let screenshots = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["steps"].as_array().into_iter().flatten())
        .filter(|s| s["screenshot"].is_string())
        .count();
    println!(
        "{}",
        json!({
            "bench": "scan",
            "steps": STEPS,
            "scenarios": scenarios,
            "steps_scanned": steps,
            "findings": findings,
            "screenshots": screenshots,
            "scan_wall_ms": scan_ms.round(),
            "scan_serial_wall_ms": serial_ms.round(),
            "baseline": "bare chromium --headless --dump-dom, one process per page, no DevTools",
            "baseline_10_steps_ms": bare_ms.round(),
            "ratio_vs_bare_10_steps": round3(scan_ms / bare_ms),
            "ratio_vs_bare_per_scenario": round3(scan_ms / (bare_ms * scenarios.max(1) as f64)),
        })
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The index links this many pages; a crawl takes the first N.
const MAX_CRAWL: usize = 2000;

/// The crawl variant: see the module's documentation.
pub async fn crawl(pages: usize, blacklight: bool) -> Result<()> {
    let sightline = sibling("sightline")?;
    let port = serve_site().await?;
    let dir = tempfile_dir()?;
    std::fs::write(
        dir.join("journey.toml"),
        format!(
            "name = \"crawl\"\n[browser]\nhost_resolver_rules = \"MAP * 127.0.0.1:{port}\"\n\
             [consent.accept-all]\nclick = [\"#cmp-accept\"]\n\
             [inventory]\nvendors = [\"Bench Tags\", \"Bench Analytics\", \"Bench Ads\"]\n\
             [crawl]\nstart = \"http://www.bench.test/index.html\"\nmax_pages = {}\nmax_depth = 1\n\
             include = [\"*/step-*\", \"*/index.html\"]\n",
            pages + 1
        ),
    )?;
    std::fs::write(dir.join("catalog.toml"), CATALOG)?;
    let (bare_ms, (scan_ms, peak_bytes, report), peer) = tokio::task::spawn_blocking({
        let (dir, sightline) = (dir.clone(), sightline.clone());
        move || -> Result<_> {
            bare_load(port, &dir.join("warm"), STEPS)?;
            let bare = bare_load(port, &dir.join("bare"), pages)?;
            let ours = scan_measured(&sightline, &dir)?;
            let peer = match blacklight {
                true => Some(run_blacklight(port, pages, &dir)?),
                false => None,
            };
            Ok((bare, ours, peer))
        }
    })
    .await??;
    let scanned: Vec<usize> = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["steps"].as_array().map_or(0, Vec::len))
        .collect();
    if scanned.len() != 2 || scanned.iter().any(|n| *n != pages + 1) {
        bail!(
            "the crawl scanned {scanned:?} pages per scenario, not {}",
            pages + 1
        );
    }
    let per_minute = |count: usize, ms: f64| round3(count as f64 / (ms / 60_000.0));
    let mut figures = json!({
            "bench": "scan-crawl",
            "pages": pages + 1,
            "scenarios": 2,
            "scan_wall_ms": scan_ms.round(),
            "pages_per_minute_per_scenario": per_minute(pages + 1, scan_ms),
            "peak_memory_pss_mib": round3(peak_bytes as f64 / (1024.0 * 1024.0)),
            "templates": report["templates"].as_array().map_or(0, Vec::len),
            "findings": report["findings"].as_array().map_or(0, Vec::len),
            "baseline": "bare chromium --headless --dump-dom, one process per page, no DevTools",
            "baseline_pages_per_minute": per_minute(pages, bare_ms),
            "ratio_vs_bare": round3(per_minute(pages + 1, scan_ms) / per_minute(pages, bare_ms)),
    });
    if let Some(peer) = peer {
        // Our two scenarios share one wall time; Blacklight scans as one of them.
        let ours = per_minute(pages + 1, scan_ms / 2.0);
        let theirs = per_minute(peer.pages, peer.wall_ms);
        figures["peer"] = json!("blacklight-collector 3.11.0 (Puppeteer), one scenario");
        figures["peer_pages"] = json!(peer.pages);
        figures["peer_pages_per_minute"] = json!(theirs);
        figures["peer_peak_memory_pss_mib"] =
            json!(round3(peer.peak_bytes as f64 / (1024.0 * 1024.0)));
        figures["peer_third_party_hosts"] = json!(peer.third_party_hosts);
        figures["third_party_hosts"] = json!(third_party_hosts(&report, "no-interaction"));
        figures["ratio_vs_peer_per_scenario"] = json!(round3(ours / theirs));
    }
    println!("{figures}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `sightline scan` of the crawl journey under two scenarios: wall ms, peak bytes (PSS),
/// the report.
fn scan_measured(sightline: &Path, dir: &Path) -> Result<(f64, u64, Value)> {
    let out = dir.join("out-crawl");
    let mut command = scan_command(sightline, dir, &out, &["no-interaction", "accept-all"]);
    let (wall, peak, _) = measured(&mut command, "sightline scan")?;
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json"))?)?;
    Ok((wall, peak, report))
}

/// Runs `command` to its end, sampling the memory of the process and its descendants every
/// 100 ms: wall ms, peak bytes (PSS), its standard output.
fn measured(command: &mut Command, what: &str) -> Result<(f64, u64, String)> {
    use std::io::Read;
    let started = Instant::now();
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    // Drained beside the sampling, so that a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak = peak.max(tree_rss(child.id()));
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    let stdout = stdout.join().unwrap_or_default();
    if !status.success() {
        bail!("{what} failed: {}", stderr.join().unwrap_or_default());
    }
    Ok((wall, peak, stdout))
}

/// The hosts other than the fixture site's own that `scenario`'s pages sent requests to.
fn third_party_hosts(report: &Value, scenario: &str) -> Vec<String> {
    let hosts: std::collections::BTreeSet<String> = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == scenario)
        .flat_map(|s| s["steps"].as_array().into_iter().flatten())
        .flat_map(|step| step["requests"].as_array().into_iter().flatten())
        .filter_map(|r| reqwest::Url::parse(r["url"].as_str()?).ok())
        .filter_map(|url| url.host_str().map(str::to_owned))
        .filter(|host| host != "www.bench.test")
        .collect();
    hosts.into_iter().collect()
}

/// What Blacklight's run of the crawl site gave.
struct Peer {
    /// Its own measure of the collection (from before its browser starts to its report).
    wall_ms: f64,
    pages: usize,
    peak_bytes: u64,
    third_party_hosts: Value,
}

/// Blacklight over the index and `pages` of its links (`bench/blacklight/collect.js`).
fn run_blacklight(port: u16, pages: usize, dir: &Path) -> Result<Peer> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("blacklight/collect.js");
    if !script.with_file_name("node_modules").exists() {
        bail!("Blacklight is not installed: run bench/blacklight/install.sh");
    }
    let mut command = Command::new("node");
    command
        .arg(&script)
        .arg("http://www.bench.test/index.html")
        .arg(pages.to_string())
        .arg(port.to_string())
        .arg(dir.join("blacklight"))
        .env("SIGHTLINE_CHROMIUM", chromium());
    let (_, peak_bytes, stdout) = measured(&mut command, "blacklight")?;
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("blacklight printed no result")?;
    let result: Value = serde_json::from_str(line)?;
    let visited = result["pages"].as_u64().unwrap_or(0) as usize;
    if visited != pages + 1 {
        bail!("blacklight visited {visited} pages, not {}", pages + 1);
    }
    Ok(Peer {
        wall_ms: result["ms"].as_f64().context("blacklight gave no time")?,
        pages: visited,
        peak_bytes,
        third_party_hosts: result["third_party_hosts"].clone(),
    })
}

/// The memory of `root` and every process descended from it (proportional set size, else
/// resident), in bytes.
pub(crate) fn tree_rss(root: u32) -> u64 {
    let mut parents: Vec<(u32, u32, u64)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        // Proportional set size: the browsers' shared pages are counted once between them,
        // where summing their RSS would count them in every process.
        let pss = std::fs::read_to_string(entry.path().join("smaps_rollup"))
            .ok()
            .and_then(|rollup| {
                rollup
                    .lines()
                    .find_map(|l| l.strip_prefix("Pss:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            });
        if let Some(ppid) = field("PPid:") {
            let kib = pss.or_else(|| field("VmRSS:")).unwrap_or(0);
            parents.push((pid, ppid as u32, kib * 1024));
        }
    }
    let mut tree = vec![root];
    let mut total = 0;
    while let Some(pid) = tree.pop() {
        for (child, ppid, rss) in &parents {
            if *child == pid {
                total += rss;
            }
            if *ppid == pid {
                tree.push(*child);
            }
        }
    }
    total
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sightline-bench-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
