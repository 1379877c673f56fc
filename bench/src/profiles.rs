//! `sightline-bench profiles`: the identity and profile path at scale. Loads N people (an
//! identify with user id, anonymous id and email each) through the tracking API, then
//! measures (1) how fast a restarted server resumes the stored profiles and its resident
//! memory then and after the lookups, (2) profile
//! lookups by email over HTTP against a bare keyed read of the same store over the same
//! HTTP stack (`/api/v1/events?after=K&limit=1`), in the same run (closed loop: as many
//! as the clients get answered), and lookups at a fixed rate (the latency a caller sees
//! at that load), and (3) `sightline
//! identity rebuild`: the log resolved and every profile stored, end to end.

use crate::{round3, sibling, start};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 500;

struct Lookups {
    per_s: f64,
    p99_ms: f64,
}

/// Latencies of lookups sent at a fixed rate (an open loop: a slow answer does not hold
/// back the next request, and each latency counts from when its request was due).
struct Paced {
    p50_ms: f64,
    p99_ms: f64,
}

async fn paced_lookups(
    url: &str,
    token: &str,
    people: usize,
    rate: u64,
    length: Duration,
) -> Result<Paced> {
    let http = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sends = Vec::new();
    let mut i: usize = 1;
    while started.elapsed() < length {
        let due = ticks.tick().await;
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
    let mut all = Vec::with_capacity(sends.len());
    for send in sends {
        all.push(send.await??);
    }
    all.sort_unstable();
    let at = |q: usize| all.get(all.len() * q / 100).copied().unwrap_or_default();
    Ok(Paced {
        p50_ms: at(50).as_secs_f64() * 1e3,
        p99_ms: at(99).as_secs_f64() * 1e3,
    })
}

pub async fn run(people: usize, length: Duration, clients: usize, rate: u64) -> Result<()> {
    let sightline = sibling("sightline")?;
    let data =
        std::env::temp_dir().join(format!("sightline-bench-profiles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let store = vec!["--data".to_string(), data.display().to_string()];
    let cli_json = |args: &[&str]| crate::cli_json(&sightline, &store, args);
    let key = cli_json(&["source", "add", "bench"])?["write_key"]
        .as_str()
        .context("key")?
        .to_string();
    let token = cli_json(&["token", "create", "--role", "admin"])?["token"]
        .as_str()
        .context("token")?
        .to_string();
    let serve = || {
        let mut command = Command::new(&sightline);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(&store);
        command
    };

    let server = start(serve())?;
    let http = reqwest::Client::new();
    let loaded = Instant::now();
    let batches: Vec<usize> = (0..people).step_by(BATCH).collect();
    for chunk in batches.chunks(8) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|&first| {
                let batch: Vec<Value> = (first..(first + BATCH).min(people))
                    .map(|i| json!({"type":"identify","userId":format!("u{i}"),"anonymousId":format!("a{i}"),
                                    "messageId":format!("m{i}"),"traits":{"email":format!("p{i}@example.com"),"plan":"pro"}}))
                    .collect();
                let request = http
                    .post(format!("{}/v1/batch", server.url))
                    .basic_auth(&key, Some(""))
                    .json(&json!({"batch": batch}));
                tokio::spawn(request.send())
            })
            .collect();
        for send in sends {
            if !send.await??.status().is_success() {
                bail!("loading failed");
            }
        }
    }
    let load_s = loaded.elapsed().as_secs_f64();
    // Stopped once the profiles have applied (and stored) the whole log.
    loop {
        let lags = crate::ingest::lags(&http, &server).await?;
        if lags
            .get("profiles")
            .is_some_and(|(events, _)| *events == 0.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);

    // A restarted server resumes the stored profiles before it listens.
    let restarted = Instant::now();
    let server = start(serve())?;
    let start_s = restarted.elapsed().as_secs_f64();
    let rss_after_start = server.rss_mib()?;

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
                        let http = reqwest::Client::new();
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
    let paced = paced_lookups(&server.url, &token, people, rate, length).await?;
    let rss_after_lookups = server.rss_mib()?;
    drop(server);

    // End to end, log to stored profiles: resolve the whole log and store every profile,
    // identifier and timeline row in place of the stored ones.
    let stored = cli_json(&["identity", "rebuild"])?;
    let stored_s = stored["seconds"].as_f64().context("seconds")?;
    let _ = std::fs::remove_dir_all(&data);

    println!(
        "{}",
        json!({
            "bench": "profiles",
            "profiles": people,
            "load_events_per_s": (people as f64 / load_s).round(),
            "start_s": round3(start_s),
            "rss_after_start_mib": rss_after_start.round(),
            "rss_after_lookups_mib": rss_after_lookups.round(),
            "rebuild_stored_s": round3(stored_s),
            "rebuild_stored_events_per_s": (people as f64 / stored_s).round(),
            "lookups_per_s": profiles.per_s.round(),
            "p99_ms": round3(profiles.p99_ms),
            "baseline": "keyed-event-read-over-http",
            "baseline_lookups_per_s": baseline.per_s.round(),
            "baseline_p99_ms": round3(baseline.p99_ms),
            "ratio": round3(profiles.per_s / baseline.per_s),
            "paced_lookups_per_s": rate,
            "paced_p50_ms": round3(paced.p50_ms),
            "paced_p99_ms": round3(paced.p99_ms),
        })
    );
    Ok(())
}
