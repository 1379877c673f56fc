//! `sightline-bench profiles`: the identity and profile path at scale, on a store configured
//! as users run it (profiles, two audiences, a computed trait and a webhook destination).
//! Loads N people (an identify with user id, anonymous id and email each) and then track
//! events spread over them up to the number of events asked for, through the tracking API;
//! then, once every processor has applied the whole log (so that the start measures the
//! cold cache, not a catch-up), measures (1) how fast a restarted server is ready (`/readyz`) with the stored
//! profiles and its resident memory then, (2) profile lookups by email over HTTP at a fixed
//! rate on that cold start (the latency a caller sees at that load), then closed-loop
//! against a bare keyed read of the same store over the same HTTP stack
//! (`/api/v1/events?after=K&limit=1`), in the same run, (3) resident memory after a mixed
//! load (tracking at a fixed rate with lookups at a fixed rate), and (4) `sightline identity
//! rebuild`: the log resolved and every profile stored, end to end.

use crate::ingest::Setup;
use crate::round3;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 500;

/// An HTTP client that drops a pooled connection idle for 5 s: the server closes one that
/// sends no request for 10 s (its header read timeout), and a request sent on it as it
/// closes fails ("connection closed before message completed"; seen in a mixed load).
fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?)
}

struct Lookups {
    per_s: f64,
    p99_ms: f64,
}

/// Latencies of lookups sent at a fixed rate (an open loop: a slow answer does not hold
/// back the next request, and each latency counts from when its request was due).
struct Paced {
    p50_ms: f64,
    p99_ms: f64,
    /// The second (counted from the phase's start) whose lookups had the highest p99, and
    /// that p99: tells a stall (one bad second) from a tail spread over the phase.
    worst_second: usize,
    worst_second_p99_ms: f64,
}

async fn paced_lookups(
    url: &str,
    token: &str,
    people: usize,
    rate: u64,
    length: Duration,
) -> Result<Paced> {
    let http = client()?;
    // Each request is due at start + n / rate, and its latency counts from then (an open
    // loop: a slow answer does not delay the next request nor hide its wait). The due times
    // come from a thread of their own: tokio's timer fires on whole milliseconds, which
    // added up to a millisecond of the bench's own lateness to every latency.
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let count = (length.as_secs_f64() * rate as f64) as u32;
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let pacer = std::thread::spawn(move || {
        for n in 0..count {
            let due = started + period * n;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if due_tx.send(due).is_err() {
                return;
            }
        }
    });
    let mut sends = Vec::new();
    let mut i: usize = 1;
    while let Some(due) = due_rx.recv().await {
        i = (i * 48271 + 11) % people.max(1);
        let request = http
            .get(format!("{url}/api/v1/profiles/email:p{i}@example.com"))
            .bearer_auth(token);
        sends.push(tokio::spawn(async move {
            let response = request.send().await?;
            if !response.status().is_success() {
                bail!("lookup answered {}", response.status());
            }
            response.bytes().await?;
            anyhow::Ok(due.elapsed())
        }));
    }
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacer panicked"))?;
    let mut by_second: Vec<Vec<Duration>> = Vec::new();
    let mut all = Vec::with_capacity(sends.len());
    for (n, send) in sends.into_iter().enumerate() {
        let latency = send.await??;
        let second = n / rate.max(1) as usize;
        by_second.resize_with(by_second.len().max(second + 1), Vec::new);
        by_second[second].push(latency);
        all.push(latency);
    }
    let p = |latencies: &mut Vec<Duration>, q: usize| {
        latencies.sort_unstable();
        let at = latencies.len() * q / 100;
        latencies.get(at).copied().unwrap_or_default().as_secs_f64() * 1e3
    };
    let (worst_second, worst_second_p99_ms) = by_second
        .iter_mut()
        .map(|second| p(second, 99))
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default();
    Ok(Paced {
        p50_ms: p(&mut all, 50),
        p99_ms: p(&mut all, 99),
        worst_second,
        worst_second_p99_ms,
    })
}

/// What the profiles bench loads and how long it measures.
pub struct Shape {
    /// People, one identify each.
    pub people: usize,
    /// Events in the log in all: the identifies, then track events spread over the people.
    pub events: usize,
    /// How long each lookup phase is measured.
    pub length: Duration,
    /// Concurrent clients of the closed-loop lookups.
    pub clients: usize,
    /// Lookups per second of the paced phases.
    pub rate: u64,
    /// How long the mixed load runs, and its tracked events per second.
    pub mixed: Duration,
    pub mixed_rate: u64,
}

/// The `i`th event loaded: an identify for each of the first `people`, then track events
/// (one in ten an `Order Completed` with a revenue) spread over them.
fn event(i: usize, people: usize) -> String {
    let context = r#""context":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0","page":{"path":"/products/1234"}}"#;
    if i < people {
        format!(
            r#"{{"type":"identify","userId":"u{i}","anonymousId":"a{i}","messageId":"m{i}","traits":{{"email":"p{i}@example.com","plan":"pro"}},{context}}}"#
        )
    } else if i.is_multiple_of(10) {
        format!(
            r#"{{"type":"track","userId":"u{}","messageId":"m{i}","event":"Order Completed","properties":{{"order_id":"o{i}","revenue":59.97,"currency":"EUR"}},{context}}}"#,
            i % people.max(1)
        )
    } else {
        format!(
            r#"{{"type":"track","userId":"u{}","messageId":"m{i}","event":"Product Added","properties":{{"sku":"SKU-1234","price":19.99,"quantity":2}},{context}}}"#,
            i % people.max(1)
        )
    }
}

/// Sends events `range` as one batch request.
async fn send_batch(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    range: std::ops::Range<usize>,
    people: usize,
) -> Result<()> {
    let events: Vec<String> = range.map(|i| event(i, people)).collect();
    let body = format!(r#"{{"batch":[{}]}}"#, events.join(","));
    // An overloaded server answers 429 with Retry-After; the SDKs come back, so does this.
    for _ in 0..60 {
        let response = http
            .post(format!("{url}/v1/batch"))
            .basic_auth(key, Some(""))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await?;
        match response.status() {
            status if status.is_success() => return Ok(()),
            reqwest::StatusCode::TOO_MANY_REQUESTS => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            status => bail!("a batch was answered {status}"),
        }
    }
    bail!("a batch was refused as overloaded for a minute")
}

/// Tracks events from `first` on at `rate` events per second (batches of 100) for `length`.
async fn paced_tracking(
    url: &str,
    key: &str,
    first: usize,
    people: usize,
    rate: u64,
    length: Duration,
) -> Result<()> {
    const PER_REQUEST: usize = 100;
    let http = client()?;
    let per_s = (rate as f64 / PER_REQUEST as f64).max(1.0);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s));
    let started = Instant::now();
    let mut sends = Vec::new();
    let mut next = first;
    while started.elapsed() < length {
        ticks.tick().await;
        let (http, url, key) = (http.clone(), url.to_string(), key.to_string());
        let range = next..next + PER_REQUEST;
        next += PER_REQUEST;
        sends.push(tokio::spawn(async move {
            send_batch(&http, &url, &key, range, people).await
        }));
    }
    for send in sends {
        send.await??;
    }
    Ok(())
}

/// Sends the `events` through the tracking API, batches of [`BATCH`] eight at a time, and
/// waits until the profiles have applied (and stored) the whole log; the other processors
/// (delivery above all) may still be behind, as after any busy hour. The seconds it took.
pub(crate) async fn load(
    http: &reqwest::Client,
    server: &crate::Server,
    key: &str,
    people: usize,
    events: usize,
) -> Result<f64> {
    let loaded = Instant::now();
    let batches: Vec<usize> = (0..events).step_by(BATCH).collect();
    for chunk in batches.chunks(8) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|&first| {
                let (http, url, key) = (http.clone(), server.url.clone(), key.to_string());
                let range = first..(first + BATCH).min(events);
                tokio::spawn(async move { send_batch(&http, &url, &key, range, people).await })
            })
            .collect();
        for send in sends {
            send.await??;
        }
    }
    let load_s = loaded.elapsed().as_secs_f64();
    loop {
        let lags = crate::ingest::lags(http, server).await?;
        if lags
            .get("profiles")
            .is_some_and(|(events, _)| *events == 0.0)
        {
            return Ok(load_s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(shape: Shape) -> Result<()> {
    let Shape {
        people,
        length,
        clients,
        rate,
        ..
    } = shape;
    let events = shape.events.max(people);
    let setup = Setup::new(None).await?;
    let token = setup.admin_token()?;

    let server = setup.serve()?;
    let http = client()?;
    let load_s = load(&http, &server, &setup.key, people, events).await?;
    crate::ingest::caught_up(&server).await?;
    drop(server);

    // A restarted server resumes the stored profiles: the time until `/readyz` says so.
    let restarted = Instant::now();
    let server = setup.serve()?;
    loop {
        let ready = http.get(format!("{}/readyz", server.url)).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if restarted.elapsed() > Duration::from_secs(300) {
            bail!("the restarted server was not ready within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let start_s = restarted.elapsed().as_secs_f64();
    let rss_after_start = server.rss_mib()?;
    // First after the start: no profile is in the server's cache yet.
    let cold = paced_lookups(&server.url, &token, people, rate, length).await?;

    let lookup = |path: Arc<dyn Fn(usize) -> String + Send + Sync>| {
        let (url, token) = (server.url.clone(), token.clone());
        async move {
            let stop = Arc::new(AtomicBool::new(false));
            let started = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|c| {
                    let (url, token, stop, path) =
                        (url.clone(), token.clone(), stop.clone(), path.clone());
                    tokio::spawn(async move {
                        let http = client()?;
                        let mut latencies = Vec::new();
                        let mut i = c * 7919;
                        while !stop.load(Ordering::Relaxed) {
                            i = (i * 48271 + 11) % people.max(1);
                            let sent = Instant::now();
                            let response = http
                                .get(format!("{url}{}", path(i)))
                                .bearer_auth(&token)
                                .send()
                                .await?;
                            if !response.status().is_success() {
                                bail!("lookup answered {}", response.status());
                            }
                            response.bytes().await?;
                            latencies.push(sent.elapsed());
                        }
                        anyhow::Ok(latencies)
                    })
                })
                .collect();
            tokio::time::sleep(length).await;
            stop.store(true, Ordering::Relaxed);
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await??);
            }
            all.sort_unstable();
            let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
            anyhow::Ok(Lookups {
                per_s: all.len() as f64 / started.elapsed().as_secs_f64(),
                p99_ms: p99.as_secs_f64() * 1e3,
            })
        }
    };
    let profiles = lookup(Arc::new(|i| {
        format!("/api/v1/profiles/email:p{i}@example.com")
    }))
    .await?;
    let baseline = lookup(Arc::new(|i| format!("/api/v1/events?after={i}&limit=1"))).await?;
    let rss_after_lookups = server.rss_mib()?;
    let (mixed_lookups, tracked) = tokio::join!(
        paced_lookups(&server.url, &token, people, rate, shape.mixed),
        paced_tracking(
            &server.url,
            &setup.key,
            events,
            people,
            shape.mixed_rate,
            shape.mixed
        ),
    );
    let mixed_lookups = mixed_lookups?;
    tracked?;
    let rss_after_mixed = server.rss_mib()?;
    drop(server);

    // End to end, log to stored profiles: resolve the whole log and store every profile,
    // identifier and timeline row in place of the stored ones.
    let stored = crate::cli_json(
        &setup.sightline,
        &setup.store_args,
        &["identity", "rebuild"],
    )?;
    let stored_s = stored["seconds"].as_f64().context("seconds")?;

    println!(
        "{}",
        json!({
            "bench": "profiles",
            "configured": "profiles, 2 audiences, 1 computed trait, 1 webhook",
            "profiles": people,
            "events": events,
            "load_events_per_s": (events as f64 / load_s).round(),
            "start_s": round3(start_s),
            "rss_after_start_mib": rss_after_start.round(),
            "cold_paced_p50_ms": round3(cold.p50_ms),
            "cold_paced_p99_ms": round3(cold.p99_ms),
            "cold_worst_second": cold.worst_second,
            "cold_worst_second_p99_ms": round3(cold.worst_second_p99_ms),
            "rss_after_lookups_mib": rss_after_lookups.round(),
            "mixed_s": shape.mixed.as_secs(),
            "mixed_events_per_s": shape.mixed_rate,
            "mixed_paced_p99_ms": round3(mixed_lookups.p99_ms),
            "rss_after_mixed_mib": rss_after_mixed.round(),
            "rebuild_stored_s": round3(stored_s),
            "rebuild_stored_events_per_s": (events as f64 / stored_s).round(),
            "lookups_per_s": profiles.per_s.round(),
            "p99_ms": round3(profiles.p99_ms),
            "baseline": "keyed-event-read-over-http",
            "baseline_lookups_per_s": baseline.per_s.round(),
            "baseline_p99_ms": round3(baseline.p99_ms),
            "ratio": round3(profiles.per_s / baseline.per_s),
            "paced_lookups_per_s": rate,
        })
    );
    Ok(())
}
