//! `sightline-bench delivery`: events already in the log delivered through the real binary
//! to a local webhook receiver, against a plain HTTP client posting the very same request
//! bodies to the same receiver in the same run; plus the consent gate's cost per event.

use crate::{round3, sibling, start, Bodies, EVENTS_PER_BATCH};
use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use serde_json::{json, Value};
use sightline_activate::gate;
use sightline_consent::Policy;
use sightline_core::{Destination, DestinationKind, EventType};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver saw: the raw bodies (for the baseline to send again), the events
/// counted, when the first request came and when the run's last event did.
#[derive(Default)]
struct Seen {
    bodies: Vec<Bytes>,
    events: usize,
    first: Option<Instant>,
    last: Option<Instant>,
    last_message_id: String,
}

type Receiver = Arc<Mutex<Seen>>;

/// The events of a webhook body: one object, or an array of them.
fn events_in(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice(body) {
        Ok(Value::Array(events)) => events,
        Ok(event @ Value::Object(_)) => vec![event],
        _ => Vec::new(),
    }
}

/// A receiver on a free port that parses each body (as a real one would) and counts.
async fn receiver(last_message_id: String) -> Result<(String, Receiver)> {
    let seen: Receiver = Arc::new(Mutex::new(Seen {
        last_message_id,
        ..Seen::default()
    }));
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let seen = state.clone();
            async move {
                let now = Instant::now();
                let events = events_in(&body);
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.first.get_or_insert(now);
                seen.events += events.len();
                if events
                    .iter()
                    .any(|e| e["messageId"].as_str() == Some(seen.last_message_id.as_str()))
                {
                    seen.last = Some(now);
                }
                seen.bodies.push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

pub async fn delivery(postgres: Option<String>, requests: u64, batch: u32) -> Result<()> {
    let sightline = sibling("sightline")?;
    let data = std::env::temp_dir().join(format!("sightline-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let store_args: Vec<String> = match &postgres {
        Some(url) => vec!["--database-url".into(), url.clone()],
        None => vec!["--data".into(), data.display().to_string()],
    };
    let command = |args: &[&str]| crate::cli_json(&sightline, &store_args, args);
    // Unique per run, so that ids from earlier runs on the same database do not count.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let key = command(&["source", "add", &format!("bench-delivery-{run}")])?["write_key"]
        .as_str()
        .context("write_key")?
        .to_string();

    // Fill the log first, so that delivery alone is measured.
    let bodies = Bodies::new(EVENTS_PER_BATCH);
    let request_id = |r: u64| (run << 24) + r;
    {
        let server = start({
            let mut serve = Command::new(&sightline);
            serve
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(&store_args);
            serve
        })?;
        let http = reqwest::Client::new();
        for r in 0..requests {
            let response = http
                .post(format!("{}/v1/batch", server.url))
                .basic_auth(&key, Some(""))
                .body(bodies.render(request_id(r)))
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("ingest answered {}", response.status());
            }
        }
    }
    let last_id = format!(
        "bench-{}-{}",
        request_id(requests - 1),
        EVENTS_PER_BATCH - 1
    );

    let (url, seen) = receiver(last_id.clone()).await?;
    let batch_arg = batch.to_string();
    command(&[
        "destination",
        "add",
        &format!("bench-{run}"),
        "--url",
        &url,
        "--purposes",
        "necessary",
        "--batch",
        &batch_arg,
    ])?;
    let server = start({
        let mut serve = Command::new(&sightline);
        serve
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&store_args);
        serve
    })?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (delivered, elapsed, sent) = loop {
        {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(first), Some(last)) = (seen.first, seen.last) {
                break (seen.events, last - first, seen.bodies.clone());
            }
        }
        if Instant::now() > deadline {
            bail!("the receiver never got {last_id}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    drop(server);
    let _ = std::fs::remove_dir_all(&data);

    // The baseline: the same bodies, one request at a time, as one destination's worker.
    let http = reqwest::Client::new();
    let started = Instant::now();
    for body in &sent {
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        response.bytes().await?;
    }
    let baseline = started.elapsed();

    let events_per_s = delivered as f64 / elapsed.as_secs_f64().max(1e-9);
    let baseline_events_per_s = delivered as f64 / baseline.as_secs_f64().max(1e-9);
    println!(
        "{}",
        json!({
            "bench": "delivery",
            "backend": if postgres.is_some() { "postgres" } else { "sqlite" },
            "events": delivered,
            "batch": batch,
            "events_per_s": events_per_s.round(),
            "baseline": "plain-http-client",
            "baseline_events_per_s": baseline_events_per_s.round(),
            "ratio": round3(events_per_s / baseline_events_per_s),
            "gate_ns_per_event": round3(gate_ns_per_event(&sent)),
        })
    );
    Ok(())
}

/// The filter and consent gate alone on the delivered events, each given Segment consent
/// that grants the purpose, for a destination that requires it.
fn gate_ns_per_event(bodies: &[Bytes]) -> f64 {
    let mut events: Vec<Value> = bodies.iter().flat_map(|b| events_in(b)).collect();
    for event in &mut events {
        event["context"]["consent"] = json!({"categoryPreferences": {"Analytics": true}});
    }
    let destination = Destination {
        id: 0,
        name: "gate".into(),
        kind: DestinationKind::Webhook,
        url: String::new(),
        purposes: vec!["analytics".into()],
        event_types: vec![],
        event_names: vec![],
        batch_size: 1,
        transform: json!({}),
        settings: json!({}),
        signing_secret: String::new(),
        created_at: 0,
        disabled: false,
        approved: true,
    };
    let policy = Policy::default();
    // The profile's consent ledger in force at the event, as the server hands it to the gate.
    let in_force = sightline_consent::ConsentState::from([(
        "analytics".to_string(),
        sightline_consent::InForce {
            decision: sightline_consent::Decision::Granted,
            at: 0,
            seq: 1,
        },
    )]);
    let started = Instant::now();
    let delivered = events
        .iter()
        .filter(|e| {
            gate::route(&policy, &destination, EventType::Track, e, Some(&in_force))
                == gate::Route::Deliver
        })
        .count();
    std::hint::black_box(delivered);
    started.elapsed().as_nanos() as f64 / events.len().max(1) as f64
}
