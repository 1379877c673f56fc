//! `sightline-bench sustained`: a steady load the server can keep up with (20,000 events/s
//! by default, in batches of 100 over 100,000 people) for 60 s, with everything configured
//! as `ingest` configures it; every 100 ms it reads each processor's lag in seconds (the age
//! of the oldest event it has not applied yet, from /metrics) and reports its percentiles.
//! The baseline, measured in the same run, is the acknowledgement latency of the same
//! requests: how long collection takes, against how long the profiles take after it.

use crate::ingest::{lags, Setup};
use crate::round3;
use anyhow::{bail, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EVENTS_PER_BATCH: u64 = 100;
const PEOPLE: u64 = 100_000;
/// Requests in flight at most: a server that falls behind shows as lag, not as a load
/// generator piling up connections.
const IN_FLIGHT: usize = 64;

/// A batch of fresh events: one in ten an `Order Completed` with a revenue.
fn batch(request: u64) -> String {
    let events: Vec<String> = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let n = request * EVENTS_PER_BATCH + i;
            let user = (n * 7919) % PEOPLE;
            let (event, properties) = if i % 10 == 0 {
                ("Order Completed", r#"{"order_id":"o-1","revenue":59.97,"currency":"EUR"}"#)
            } else {
                ("Product Added", r#"{"sku":"SKU-1234-ABCD","price":19.99,"currency":"EUR"}"#)
            };
            format!(
                r#"{{"type":"track","userId":"user-{user}","messageId":"s-{n}","event":"{event}","properties":{properties},"context":{{"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0","page":{{"path":"/products/1234"}}}}}}"#
            )
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, events.join(","))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub async fn run(postgres: Option<String>, rate: u64, length: Duration) -> Result<()> {
    let setup = Setup::new(postgres.as_deref()).await?;
    let server = setup.serve()?;
    let url = format!("{}/v1/batch", server.url);
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::<f64>::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));

    let sender = {
        let (http, stop, acks, failed, key) = (
            http.clone(),
            stop.clone(),
            acks.clone(),
            failed.clone(),
            setup.key.clone(),
        );
        tokio::spawn(async move {
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
                    .body(batch(request));
                let (acks, failed) = (acks.clone(), failed.clone());
                tokio::spawn(async move {
                    let sent = Instant::now();
                    match send.send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            acks.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(sent.elapsed().as_secs_f64() * 1e3);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    drop(slot);
                });
            }
            request
        })
    };

    let started = Instant::now();
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (processor, (_, seconds)) in lags(&http, &server).await? {
            samples.entry(processor).or_default().push(seconds);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let requests = sender.await?;
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} of {requests} requests failed");
    }
    let mut acks = acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    acks.sort_by(f64::total_cmp);
    let lag: BTreeMap<String, serde_json::Value> = samples
        .into_iter()
        .map(|(processor, mut seconds)| {
            seconds.sort_by(f64::total_cmp);
            let figures = json!({
                "p50_s": round3(percentile(&seconds, 0.5)),
                "p99_s": round3(percentile(&seconds, 0.99)),
                "max_s": round3(percentile(&seconds, 1.0)),
            });
            (processor, figures)
        })
        .collect();
    let profiles_p99 = lag
        .get("profiles")
        .and_then(|l| l["p99_s"].as_f64())
        .unwrap_or(f64::NAN);
    let ack_p99_ms = percentile(&acks, 0.99);
    println!(
        "{}",
        json!({
            "bench": "sustained",
            "backend": if postgres.is_some() { "postgres" } else { "sqlite" },
            "configured": "profiles, 2 audiences, 1 computed trait, 1 webhook",
            "target_events_per_s": rate,
            "events_per_s": ((acks.len() as u64 * EVENTS_PER_BATCH) as f64 / elapsed).round(),
            "seconds": round3(elapsed),
            "profiles_lag_p99_s": round3(profiles_p99),
            "lag_by_processor": lag,
            "baseline": "ack-latency-p99",
            "baseline_ack_p99_ms": round3(ack_p99_ms),
            "ratio": round3(profiles_p99 * 1e3 / ack_p99_ms),
        })
    );
    drop(server);
    Ok(())
}
