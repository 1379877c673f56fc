//! `sightline-bench erasure`: erasing one person from a long log. Loads N people and M
//! events (profiles.rs's shape: an identify each, then track events spread over them) into
//! a store with everything configured, waits until every processor has caught up, then
//! erases one person through `POST /api/v1/privacy/erasures`.
//!
//! It reports the erasure's time against the same person's subject access export (`GET
//! /api/v1/privacy/subjects/…`, which reads the same rows) measured just before, and, on
//! SQLite, how many bytes the server wrote while erasing against the size of the log: an
//! erasure that rewrote the log would write at least the log's size. It checks that the
//! receipt removed every one of the person's events, that their export is empty afterwards
//! while another person's is unchanged, and times the first tracking request after it (the
//! log writer rebuilds its duplicate index after an erasure).

use crate::ingest::{caught_up, Setup};
use crate::profiles::load;
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Instant;

pub async fn run(postgres: Option<String>, people: usize, events: usize) -> Result<()> {
    let events = events.max(people);
    let setup = Setup::new(postgres.as_deref()).await?;
    let token = setup.admin_token()?;
    let server = setup.serve()?;
    let http = reqwest::Client::new();
    let load_s = load(&http, &server, &setup.key, people, events).await?;
    caught_up(&server).await?;

    // The person erased, and another one whose export warms the same code paths first.
    let (person, warm) = (people / 2, people / 3);
    let api = |path: &str| format!("{}/api/v1/{path}", server.url);
    let export = |i: usize| {
        http.get(api(&format!("privacy/subjects/email:p{i}@example.com")))
            .bearer_auth(&token)
            .send()
    };
    let other: Value = export(warm).await?.error_for_status()?.json().await?;
    let exported = Instant::now();
    let held: Value = export(person).await?.error_for_status()?.json().await?;
    let export_ms = exported.elapsed().as_secs_f64() * 1e3;
    let person_events = held["events"].as_array().context("export events")?.len();
    ensure!(
        person_events > 0,
        "the export found none of the person's events"
    );

    // On SQLite the server process writes the store's files itself, so what it wrote while
    // erasing is the erasure's cost on disk.
    let log_bytes = log_file_bytes(&setup);
    let written_before = log_bytes.and_then(|_| server.written_bytes());
    let erased = Instant::now();
    let receipt: Value = http
        .post(api("privacy/erasures"))
        .bearer_auth(&token)
        .json(&json!({ "identifier": format!("email:p{person}@example.com") }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let erase_ms = erased.elapsed().as_secs_f64() * 1e3;
    let written = match (written_before, server.written_bytes()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let removed = receipt["counts"]["events"]
        .as_u64()
        .context("receipt counts")?;
    ensure!(
        removed == person_events as u64,
        "the receipt removed {removed} events of the {person_events} the export listed: {receipt}"
    );

    // The first append after the erasure, and that the person is gone.
    let tracked = Instant::now();
    let body = json!({"batch": [{"type": "track", "userId": format!("u{}", people + 1),
        "messageId": format!("after-erasure-{}", std::process::id()), "event": "Product Added"}]});
    let response = http
        .post(format!("{}/v1/batch", server.url))
        .basic_auth(&setup.key, Some(""))
        .json(&body)
        .send()
        .await?;
    let first_append_ms = tracked.elapsed().as_secs_f64() * 1e3;
    if !response.status().is_success() {
        bail!(
            "a tracking request after the erasure was answered {}",
            response.status()
        );
    }
    let left: Value = export(person).await?.error_for_status()?.json().await?;
    ensure!(
        left["events"].as_array().is_some_and(Vec::is_empty),
        "the erased person's export still lists events"
    );
    let kept: Value = export(warm).await?.error_for_status()?.json().await?;
    ensure!(
        kept["events"] == other["events"],
        "another person's events changed with the erasure"
    );

    let mib = |bytes: u64| (bytes as f64 / (1 << 20) as f64 * 10.0).round() / 10.0;
    println!(
        "{}",
        json!({
            "bench": "erasure",
            "backend": if postgres.is_some() { "postgres" } else { "sqlite" },
            "configured": "profiles, 2 audiences, 1 computed trait, 1 webhook",
            "events": events,
            "people": people,
            "load_s": crate::round3(load_s),
            "person_events": person_events,
            "erase_ms": crate::round3(erase_ms),
            "baseline": "subject-export",
            "baseline_ms": crate::round3(export_ms),
            "ratio": crate::round3(erase_ms / export_ms),
            "log_mib": log_bytes.map(mib),
            "written_during_erasure_mib": written.map(mib),
            "written_fraction_of_log": match (written, log_bytes) {
                (Some(w), Some(l)) if l > 0 => Some(crate::round3(w as f64 / l as f64)),
                _ => None,
            },
            "first_append_after_ms": crate::round3(first_append_ms),
            "deletion_requests": receipt["destinations_notified"].as_array().map_or(0, Vec::len),
        })
    );
    Ok(())
}

/// The SQLite log's size on disk (`log.db` and its write-ahead log); none on PostgreSQL.
fn log_file_bytes(setup: &Setup) -> Option<u64> {
    let dir = setup.data.join("store");
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    dir.exists().then(|| size("log.db") + size("log.db-wal"))
}
