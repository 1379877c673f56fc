//! `sightline-bench audience-sync`: the time from the HTTP acknowledgement of an
//! `Order Completed` event to the audience add it causes arriving at a local receiver, under
//! a background load of page views; against the same run's delivery of the very same events
//! to a plain webhook destination on the same receiver (the event path without audiences).

use crate::{cli_json, round3, sibling, start};
use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When each buyer's event was acknowledged, and when its add and its delivery arrived.
#[derive(Default)]
struct Clock {
    acked: HashMap<String, Instant>,
    synced: HashMap<String, Instant>,
    delivered: HashMap<String, Instant>,
}

type Shared = Arc<Mutex<Clock>>;

fn lock(clock: &Shared) -> std::sync::MutexGuard<'_, Clock> {
    clock.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receiver: `/audience` takes sync messages, `/plain` delivered events.
async fn receiver(clock: Shared) -> Result<String> {
    let synced = clock.clone();
    let delivered = clock;
    let app = axum::Router::new()
        .route(
            "/audience",
            axum::routing::post(move |body: Bytes| {
                let clock = synced.clone();
                async move {
                    let now = Instant::now();
                    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut clock = lock(&clock);
                    for change in message["changes"].as_array().into_iter().flatten() {
                        if change["action"] != "add" {
                            continue;
                        }
                        for id in change["identifiers"].as_array().into_iter().flatten() {
                            if id["type"] == "user_id" {
                                let user = id["value"].as_str().unwrap_or_default().to_string();
                                clock.synced.entry(user).or_insert(now);
                            }
                        }
                    }
                    "ok"
                }
            }),
        )
        .route(
            "/plain",
            axum::routing::post(move |body: Bytes| {
                let clock = delivered.clone();
                async move {
                    let now = Instant::now();
                    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if let Some(user) = event["userId"].as_str() {
                        lock(&clock)
                            .delivered
                            .entry(user.to_string())
                            .or_insert(now);
                    }
                    "ok"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

fn percentile(mut latencies: Vec<Duration>, p: usize) -> f64 {
    latencies.sort_unstable();
    let at = (latencies.len() * p / 100).min(latencies.len().saturating_sub(1));
    latencies.get(at).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

pub async fn run(load: u64, samples: usize) -> Result<()> {
    let sightline = sibling("sightline")?;
    let data = std::env::temp_dir().join(format!("sightline-bench-sync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let store = vec!["--data".to_string(), data.display().to_string()];
    let cli = |args: &[&str]| cli_json(&sightline, &store, args);
    let clock: Shared = Arc::default();
    let url = receiver(clock.clone()).await?;
    let key = cli(&["source", "add", "bench"])?["write_key"]
        .as_str()
        .context("write_key")?
        .to_string();
    cli(&[
        "destination",
        "add",
        "ads",
        "--url",
        &format!("{url}/audience"),
        // The audience's sync target only: its event filter wants a call type the bench
        // never sends, so no event deliveries compete with the adds.
        "--types",
        "alias",
    ])?;
    cli(&[
        "destination",
        "add",
        "plain",
        "--url",
        &format!("{url}/plain"),
        "--events",
        "Order Completed",
    ])?;
    cli(&[
        "audience",
        "add",
        "buyers",
        "--sync",
        "ads",
        "--rule",
        r#"event "Order Completed" count >= 1 within 30d"#,
    ])?;
    let server = start({
        let mut serve = Command::new(&sightline);
        serve
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&store);
        serve
    })?;

    // Background: page views from many anonymous visitors, 100 per request, at `load`/s.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let background = {
        let (stop, sent, url, key) = (stop.clone(), sent.clone(), server.url.clone(), key.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let every = Duration::from_secs_f64(100.0 / load.max(1) as f64);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let batch: Vec<Value> = (0..100)
                    .map(|i| {
                        n += 1;
                        json!({"type":"page","anonymousId":format!("v{}", n % 50_000),
                               "name":"Home","messageId":format!("bg-{n}-{i}")})
                    })
                    .collect();
                let request = http
                    .post(format!("{url}/v1/batch"))
                    .basic_auth(&key, Some(""))
                    .json(&json!({"batch": batch}));
                if let Ok(response) = request.send().await {
                    if response.status().is_success() {
                        sent.fetch_add(100, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // Let the load settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let sent_before = sent.load(Ordering::Relaxed);
    let http = reqwest::Client::new();
    for i in 0..samples {
        let user = format!("buyer-{i}");
        let response = http
            .post(format!("{}/v1/track", server.url))
            .basic_auth(&key, Some(""))
            .json(&json!({"userId": user, "event": "Order Completed",
                          "properties": {"revenue": 42}}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("track answered {}", response.status());
        }
        lock(&clock).acked.insert(user, Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (synced, delivered) = {
            let clock = lock(&clock);
            (clock.synced.len(), clock.delivered.len())
        };
        if synced >= samples && delivered >= samples {
            break;
        }
        if Instant::now() > deadline {
            bail!("after 60 s only {synced} adds and {delivered} deliveries of {samples} arrived");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load_per_s =
        (sent.load(Ordering::Relaxed) - sent_before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = background.await;
    drop(server);
    let _ = std::fs::remove_dir_all(&data);

    let clock = lock(&clock);
    let since_ack = |arrivals: &HashMap<String, Instant>| -> Vec<Duration> {
        clock
            .acked
            .iter()
            .filter_map(|(user, acked)| Some(arrivals.get(user)?.saturating_duration_since(*acked)))
            .collect()
    };
    let (synced, delivered) = (since_ack(&clock.synced), since_ack(&clock.delivered));
    let p99 = percentile(synced.clone(), 99);
    let baseline_p99 = percentile(delivered.clone(), 99);
    println!(
        "{}",
        json!({
            "bench": "audience_sync",
            "samples": samples,
            "background_events_per_s": load_per_s.round(),
            "p50_ms": round3(percentile(synced, 50)),
            "p99_ms": round3(p99),
            "baseline": "same-events-delivered-to-a-plain-webhook",
            "baseline_p50_ms": round3(percentile(delivered, 50)),
            "baseline_p99_ms": round3(baseline_p99),
            "ratio": round3(p99 / baseline_p99.max(f64::EPSILON)),
        })
    );
    Ok(())
}
