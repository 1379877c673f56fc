//! `sightline-bench soak`: an hour (by default) of mixed load on one server with everything
//! configured as `ingest` configures it, plus what a live deployment also sees: SDK traffic
//! (identify, page and track in batches, paced), API reads (profiles, timelines, the event
//! log, audiences, deliveries), a new audience every five minutes, a second webhook
//! destination whose receiver fails one request in ten, and a journey scanned by the
//! server's scheduler every ten minutes in Chromium. Once a minute it samples the server's
//! memory, open files, threads and each processor's lag, and prints the sample (stderr);
//! at the end one JSON line with every sample. Then it checks that nothing acknowledged was
//! lost (the log holds every event acknowledged) and that the failing destination received
//! every event at least once. The baseline is the first minute's sample: the ratio is the
//! last minute's memory against it.
//!
//! Not in CI: an hour is the point. `bench/run.sh soak --minutes 5` checks the script.

use crate::ingest::{lags, Setup};
use crate::{round3, scan, Server};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EVENTS_PER_BATCH: u64 = 50;
const PEOPLE: u64 = 50_000;
const IN_FLIGHT: usize = 64;
/// API reads per second.
const READS_PER_S: u64 = 20;
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
const NEW_AUDIENCE_EVERY: Duration = Duration::from_secs(300);

/// A batch of fresh events for people spread over [`PEOPLE`]: per ten events one identify
/// (with an email, so identities merge across devices), two page views and seven tracks,
/// one of them an order.
fn batch(request: u64) -> String {
    let events: Vec<String> = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let n = request * EVENTS_PER_BATCH + i;
            let person = (n * 7919) % PEOPLE;
            let ids = format!(
                r#""userId":"user-{person}","anonymousId":"anon-{person}-{}","messageId":"soak-{n}""#,
                n % 3
            );
            let context = r#""context":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0","page":{"path":"/products/1234","referrer":"https://news.example/?utm_source=news"}}"#;
            match i % 10 {
                0 => format!(
                    r#"{{"type":"identify",{ids},"traits":{{"email":"person{person}@example.com","plan":"p{}"}},{context}}}"#,
                    n % 4
                ),
                1 | 2 => format!(
                    r#"{{"type":"page",{ids},"name":"Product","properties":{{"path":"/products/{}"}},{context}}}"#,
                    n % 100
                ),
                3 => format!(
                    r#"{{"type":"track",{ids},"event":"Order Completed","properties":{{"order_id":"o-{n}","revenue":59.97,"currency":"EUR"}},{context}}}"#
                ),
                _ => format!(
                    r#"{{"type":"track",{ids},"event":"Product Added","properties":{{"sku":"SKU-{}","price":19.99,"currency":"EUR"}},{context}}}"#,
                    n % 500
                ),
            }
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, events.join(","))
}

/// A webhook receiver that answers 500 to every tenth request; counts both.
async fn flaky_receiver() -> Result<(String, Arc<AtomicU64>, Arc<AtomicU64>)> {
    let (requests, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (r, f) = (requests.clone(), failed.clone());
    let app = axum::Router::new().fallback(move |_body: axum::body::Bytes| {
        let (r, f) = (r.clone(), f.clone());
        async move {
            if r.fetch_add(1, Ordering::Relaxed) % 10 == 9 {
                f.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            } else {
                axum::http::StatusCode::OK
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, requests, failed))
}

/// Latencies in milliseconds gathered since the last sample.
#[derive(Default)]
struct Window(Mutex<Vec<f64>>);

impl Window {
    fn push(&self, ms: f64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
    }

    /// (count, p99) of what was gathered, emptying the window.
    fn take(&self) -> (usize, f64) {
        let mut taken = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        taken.sort_by(f64::total_cmp);
        let p99 = taken
            .get(((taken.len().max(1) - 1) as f64 * 0.99).round() as usize)
            .copied()
            .unwrap_or(f64::NAN);
        (taken.len(), p99)
    }
}

/// What the load tasks count.
#[derive(Default)]
struct Counts {
    acked_events: AtomicU64,
    failed_requests: AtomicU64,
    reads: AtomicU64,
    /// Reads answered with a 5xx or not at all.
    failed_reads: AtomicU64,
    audiences_added: AtomicU64,
    acks: Window,
    read_latency: Window,
}

/// Paced SDK traffic until `stop`.
async fn send(url: String, key: String, rate: u64, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let every = Duration::from_secs_f64(EVENTS_PER_BATCH as f64 / rate as f64);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut request = 0u64;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        request += 1;
        let send = http
            .post(&url)
            .basic_auth(&key, Some(""))
            .timeout(Duration::from_secs(30))
            .body(batch(request));
        let counts = counts.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            match send.send().await {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    counts.acks.push(sent.elapsed().as_secs_f64() * 1e3);
                    counts
                        .acked_events
                        .fetch_add(EVENTS_PER_BATCH, Ordering::Relaxed);
                }
                _ => {
                    counts.failed_requests.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(slot);
        });
    }
    // Wait for the requests in flight.
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
}

/// API reads at [`READS_PER_S`] until `stop`, round the routes a console and integrations
/// call; every few minutes a new audience.
async fn read(
    base: String,
    token: String,
    destination: String,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / READS_PER_S));
    let mut last_audience = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        n += 1;
        let person = (n * 104_729) % PEOPLE;
        let path = match n % 8 {
            0 | 1 => format!("/api/v1/profiles/user_id:user-{person}"),
            2 => format!("/api/v1/profiles/email:person{person}@example.com"),
            3 => format!("/api/v1/profiles/user_id:user-{person}/events?limit=20"),
            4 => "/api/v1/events?limit=50".to_string(),
            5 => "/api/v1/audiences".to_string(),
            6 => format!("/api/v1/destinations/{destination}/deliveries?limit=20"),
            _ => "/readyz".to_string(),
        };
        let started = Instant::now();
        let answer = http
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        counts.reads.fetch_add(1, Ordering::Relaxed);
        match answer {
            // 404: a person not seen yet.
            Ok(r) if r.status().is_success() || r.status() == 404 => {
                let _ = r.bytes().await;
                counts
                    .read_latency
                    .push(started.elapsed().as_secs_f64() * 1e3);
            }
            Ok(r) => {
                eprintln!("[soak] GET {path}: {}", r.status());
                counts.failed_reads.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("[soak] GET {path}: {e}");
                counts.failed_reads.fetch_add(1, Ordering::Relaxed);
            }
        }
        if last_audience.elapsed() >= NEW_AUDIENCE_EVERY {
            last_audience = Instant::now();
            let added = counts.audiences_added.fetch_add(1, Ordering::Relaxed);
            let rule = format!("event \"Product Added\" count >= {} within 1d", 2 + added);
            let answer = http
                .post(format!("{base}/api/v1/audiences"))
                .bearer_auth(&token)
                .json(&json!({"name": format!("soak-{added}"), "rule": rule}))
                .send()
                .await;
            if !matches!(&answer, Ok(r) if r.status() == 201) {
                eprintln!("[soak] adding an audience: {answer:?}");
                counts.failed_reads.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Open file descriptors and threads of a process.
fn fds_and_threads(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    (fds, threads)
}

/// The sum of a metric's samples whose labels contain `with` (all of them when empty).
fn metric(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']) && rest.contains(with))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .fold(0.0, |sum, value| sum + value)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

pub async fn run(postgres: Option<String>, minutes: u64, rate: u64) -> Result<()> {
    let setup = Setup::new(postgres.as_deref()).await?;
    let token = setup.admin_token()?;
    let (flaky_url, flaky_requests, flaky_failed) = flaky_receiver().await?;
    let flaky = format!("flaky-{}", std::process::id());
    crate::cli_json(
        &setup.sightline,
        &setup.store_args,
        &[
            "destination",
            "add",
            &flaky,
            "--type",
            "webhook",
            "--url",
            &flaky_url,
            "--batch",
            "100",
        ],
    )?;
    let site = scan::serve_site().await?;
    let journey = setup.data.join("journey.toml");
    let name = format!("soak-{}", std::process::id());
    let text = scan::journey(site).replacen("name = \"bench\"", &format!("name = \"{name}\""), 1);
    std::fs::write(&journey, text)?;
    crate::cli_json(
        &setup.sightline,
        &setup.store_args,
        &[
            "journey",
            "import",
            &journey.display().to_string(),
            "--token",
            &token,
        ],
    )?;
    let server = setup.serve()?;
    let http = reqwest::Client::new();
    let scheduled = http
        .post(format!("{}/api/v1/schedules", server.url))
        .bearer_auth(&token)
        .json(&json!({"journey": name, "every": "10m",
                      "scenarios": ["no-interaction", "accept-all"],
                      "allow_private_network": true}))
        .send()
        .await?;
    if scheduled.status() != 201 {
        bail!("scheduling the scan: {}", scheduled.text().await?);
    }

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(send(
        format!("{}/v1/batch", server.url),
        setup.key.clone(),
        rate,
        counts.clone(),
        stop.clone(),
    ));
    let reader = tokio::spawn(read(
        server.url.clone(),
        token.clone(),
        flaky.clone(),
        counts.clone(),
        stop.clone(),
    ));

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut acked_before = 0;
    for minute in 1..=minutes.max(1) {
        tokio::time::sleep_until((started + SAMPLE_EVERY * minute as u32).into()).await;
        let sample = sample(&server, &setup, &counts, minute, acked_before).await?;
        acked_before = counts.acked_events.load(Ordering::Relaxed);
        eprintln!("[soak] {sample}");
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    sender.await?;
    reader.await?;
    // An error here still prints the hour's samples, then fails the run.
    let caught_up = crate::ingest::caught_up(&server)
        .await
        .map(|c| c.all_s)
        .map_err(|e| format!("{e:#}"));
    let metrics = http.get(server.metrics_url()?).send().await?.text().await?;
    let flaky_label = format!("destination=\"{flaky}\"");
    let delivered = metric(&metrics, "sightline_delivery_delivered_total", &flaky_label);
    let dead = metric(&metrics, "sightline_delivery_dead_total", "");
    let scans_ok = metric(
        &metrics,
        "sightline_scheduled_scans_total",
        "outcome=\"stored\"",
    );
    let scans_all = metric(&metrics, "sightline_scheduled_scans_total", "");
    drop(server);
    let in_log = events_in_log(&setup)?;

    let acked = counts.acked_events.load(Ordering::Relaxed);
    let failed_requests = counts.failed_requests.load(Ordering::Relaxed);
    let failed_reads = counts.failed_reads.load(Ordering::Relaxed);
    let field = |s: &Value, name: &str| s[name].as_f64().unwrap_or(f64::NAN);
    let first = samples.first().context("no sample")?;
    let last = samples.last().context("no sample")?;
    let max_of = |name: &str| samples.iter().map(|s| field(s, name)).fold(0.0, f64::max);
    let worst_lag = samples
        .iter()
        .filter_map(|s| s["lag_s"].as_object())
        .flat_map(|lag| lag.values().filter_map(Value::as_f64))
        .fold(0.0, f64::max);
    println!(
        "{}",
        json!({
            "bench": "soak",
            "backend": if postgres.is_some() { "postgres" } else { "sqlite" },
            "configured": "profiles, 2 audiences + 1 every 5 min, 1 computed trait, 1 webhook, \
                           1 webhook failing 1 request in 10, a journey scanned every 10 min",
            "minutes": minutes,
            "target_events_per_s": rate,
            "reads_per_s": READS_PER_S,
            "events_acked": acked,
            "events_in_log": in_log,
            "lost": acked.saturating_sub(in_log),
            "failed_requests": failed_requests,
            "failed_reads": failed_reads,
            "audiences_added": counts.audiences_added.load(Ordering::Relaxed),
            "scans": scans_all,
            "scans_ok": scans_ok,
            "flaky_requests": flaky_requests.load(Ordering::Relaxed),
            "flaky_failed_on_purpose": flaky_failed.load(Ordering::Relaxed),
            "flaky_delivered_events": delivered,
            "dead_letters": dead,
            "caught_up_after_s": caught_up.as_ref().ok().map(|s| round3(*s)),
            "rss_mib_max": round3(max_of("rss_mib")),
            "fds_max": max_of("fds"),
            "lag_s_max": round3(worst_lag),
            "baseline": "first-minute",
            "baseline_rss_mib": field(first, "rss_mib"),
            "rss_mib": field(last, "rss_mib"),
            "ratio": round3(field(last, "rss_mib") / field(first, "rss_mib")),
            "samples": samples,
        })
    );
    if let Err(e) = caught_up {
        bail!("after the load: {e}");
    }
    if acked > in_log {
        bail!("{} acknowledged events are not in the log", acked - in_log);
    }
    if delivered < acked as f64 {
        bail!("the failing destination got {delivered} of {acked} events");
    }
    Ok(())
}

/// One minute's figures.
async fn sample(
    server: &Server,
    setup: &Setup,
    counts: &Counts,
    minute: u64,
    acked_before: u64,
) -> Result<Value> {
    let pid = server.pid();
    let (fds, threads) = fds_and_threads(pid);
    let http = reqwest::Client::new();
    let lags = lags(&http, server).await?;
    let acked = counts.acked_events.load(Ordering::Relaxed);
    let (acks, ack_p99) = counts.acks.take();
    let (reads, read_p99) = counts.read_latency.take();
    let round = |map: BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        map.into_iter().map(|(k, v)| (k, round3(v))).collect()
    };
    Ok(json!({
        "minute": minute,
        "rss_mib": round3(server.rss_mib()?),
        "with_browsers_mib": round3(scan::tree_rss(pid) as f64 / (1 << 20) as f64),
        "fds": fds,
        "threads": threads,
        "events_per_s": ((acked - acked_before) as f64 / SAMPLE_EVERY.as_secs_f64()).round(),
        "requests": acks,
        "ack_p99_ms": round3(ack_p99),
        "reads": reads,
        "read_p99_ms": round3(read_p99),
        "failed_requests": counts.failed_requests.load(Ordering::Relaxed),
        "failed_reads": counts.failed_reads.load(Ordering::Relaxed),
        "lag_events": round(lags.iter().map(|(p, l)| (p.clone(), l.0)).collect()),
        "lag_s": round(lags.iter().map(|(p, l)| (p.clone(), l.1)).collect()),
        "store_mib": if setup.store_args.first().is_some_and(|a| a == "--data") {
            json!(round3(dir_bytes(&setup.data.join("store")) as f64 / (1 << 20) as f64))
        } else {
            Value::Null
        },
    }))
}

/// Events in the store's log, counted from `sightline events tail --from-start --no-follow`.
fn events_in_log(setup: &Setup) -> Result<u64> {
    let mut tail = Command::new(&setup.sightline)
        .args([
            "events",
            "tail",
            "--from-start",
            "--no-follow",
            "--source",
            &setup.source,
        ])
        .args(&setup.store_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let out = tail.stdout.take().context("stdout")?;
    let lines = std::io::BufReader::with_capacity(1 << 20, out)
        .split(b'\n')
        .try_fold(0u64, |n, line| line.map(|_| n + 1))?;
    if !tail.wait()?.success() {
        bail!("sightline events tail failed");
    }
    Ok(lines)
}
