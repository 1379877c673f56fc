//! `sightline-bench vendors`: events delivered per second from the log by the real
//! delivery worker to local fakes of GA4's Measurement Protocol, Meta's Conversions API,
//! TikTok's Events API, LinkedIn's Conversions API and the Google Ads API's click
//! conversion upload (the tests' fakes, which check every
//! request against the vendor's schema), and with `--warehouse URL` into a warehouse
//! destination's tables on that PostgreSQL database, against the
//! plain signed webhook to a receiver that parses each body, in the same run, on the same
//! store and events. What differs is the vendor's work: mapping, hashing, its batching.

#[path = "../../crates/activate/tests/fakes/mod.rs"]
mod fakes;

use crate::round3;
use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use fakes::{Fake, Kind};
use serde_json::{json, Value};
use sightline_activate::webhook::Webhook;
use sightline_activate::{Deliverer, Settings};
use sightline_consent::Policy;
use sightline_core::{time, DestinationKind, EventType, NewDestination, NewEvent};
use sightline_store::Store;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Consecutive events of one person (a session): GA4 batches only one client's events.
const SESSION: usize = 10;

/// A receiver that parses each webhook body, as a real one would, and counts requests.
async fn webhook_receiver() -> Result<(String, Arc<AtomicUsize>)> {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let counted = counted.clone();
            async move {
                let _ = serde_json::from_slice::<Value>(&body);
                counted.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, requests))
}

fn events(source: i64, count: usize) -> Vec<NewEvent> {
    let now = time::now_ms();
    (0..count)
        .map(|i| {
            let person = i / SESSION;
            let (event_type, mut body) = if i % 3 == 0 {
                (EventType::Page, json!({"name": "Product"}))
            } else {
                (
                    EventType::Track,
                    json!({"event": "Order Completed", "properties": {
                        "order_id": format!("o{i}"), "revenue": 19.99, "currency": "EUR",
                        "products": [{"product_id": "p1", "price": 19.99, "quantity": 1}]}}),
                )
            };
            let message_id = format!("bench-{i}");
            body["type"] = event_type.as_str().into();
            body["messageId"] = message_id.clone().into();
            body["anonymousId"] = format!("anon-{person}").into();
            body["userId"] = format!("user-{person}").into();
            body["timestamp"] = time::format_ms(now - 60_000).into();
            body["context"] = json!({
                "page": {"url": "https://shop.example/p/1", "title": "Product"},
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64)", "ip": "203.0.113.9",
                "traits": {"email": format!("person{person}@example.com"), "phone": "+44 20 7946 0000"},
                "consent": {"purposes": {"analytics": true, "advertising": true}}
            });
            NewEvent {
                source_id: source,
                message_id,
                event_type,
                received_at: now,
                body: body.to_string(),
            }
        })
        .collect()
}

/// Delivers the whole log to `name` and returns the seconds it took.
async fn deliver_all(store: &Arc<dyn Store>, deliverer: &Deliverer, name: &str) -> Result<f64> {
    let destination = store
        .destination_by_name(name)
        .await?
        .context("the destination")?;
    let last = store.last_seq().await?;
    let processor = sightline_activate::deliver::processor(&destination);
    let started = Instant::now();
    while store.checkpoint(&processor).await? < last {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("delivery to {name} did not finish in 10 minutes");
        }
        deliverer.deliver_next(&destination).await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

pub async fn run(count: usize, warehouse: Option<String>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("sl-bench-vendors-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let schema = format!("bench_warehouse_{}", std::process::id());
    let warehouse = match warehouse {
        Some(url) => {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .context("connecting to the --warehouse database")?;
            tokio::spawn(connection);
            Some((url, client))
        }
        None => None,
    };
    let result = measure(&dir, count, warehouse.as_ref(), &schema).await;
    if let Some((_, client)) = &warehouse {
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(
    dir: &std::path::Path,
    count: usize,
    warehouse: Option<&(String, tokio_postgres::Client)>,
    schema: &str,
) -> Result<()> {
    let store = sightline_store::open(dir, None).await?;
    let source = store.create_source("bench", "hash").await?.id;
    for chunk in events(source, count).chunks(1000) {
        store.append(chunk.to_vec(), 0).await?;
    }
    let (hook_url, hook_requests) = webhook_receiver().await?;
    let ga4 = Fake::start(Kind::Ga4, "mp-secret").await;
    let meta = Fake::start(Kind::Meta, "EAA-token").await;
    let tiktok = Fake::start(Kind::Tiktok, "tt-token").await;
    let linkedin = Fake::start(Kind::Linkedin, "li-token").await;
    let google_ads = Fake::start(Kind::GoogleAds, "dev-token:ya29.bench").await;
    let add =
        |name: &str, kind, url: String, batch_size, settings: Value, secret: &str| NewDestination {
            name: name.into(),
            kind,
            url,
            purposes: vec!["analytics".into()],
            event_types: vec![],
            event_names: vec![],
            batch_size,
            transform: json!({}),
            settings,
            signing_secret: secret.into(),
        };
    store
        .create_destination(add(
            "webhook",
            DestinationKind::Webhook,
            hook_url,
            100,
            json!({}),
            "whsec_bench",
        ))
        .await?;
    store
        .create_destination(add(
            "ga4",
            DestinationKind::Ga4,
            ga4.url.clone(),
            25,
            json!({"measurement_id": "G-BENCH"}),
            "mp-secret",
        ))
        .await?;
    store
        .create_destination(add(
            "meta",
            DestinationKind::Meta,
            meta.url.clone(),
            1000,
            json!({"pixel_id": "1234567890", "api_version": "v25.0", "action_source": "website"}),
            "EAA-token",
        ))
        .await?;
    store
        .create_destination(add(
            "tiktok",
            DestinationKind::Tiktok,
            tiktok.url.clone(),
            1000,
            json!({"pixel_code": "C4BENCH"}),
            "tt-token",
        ))
        .await?;
    store
        .create_destination(add(
            "linkedin",
            DestinationKind::Linkedin,
            linkedin.url.clone(),
            1000,
            json!({"conversion_id": "104012", "api_version": "202611"}),
            "li-token",
        ))
        .await?;
    store
        .create_destination(add(
            "google_ads",
            DestinationKind::GoogleAds,
            google_ads.url.clone(),
            1000,
            json!({"customer_id": "1234567890", "conversion_action_id": "987654", "api_version": "v22"}),
            "dev-token:ya29.bench",
        ))
        .await?;
    if let Some((url, _)) = warehouse {
        store
            .create_destination(add(
                "warehouse",
                DestinationKind::Warehouse,
                url.clone(),
                1000,
                json!({"schema": schema}),
                "",
            ))
            .await?;
    }
    let deliverer = Deliverer::new(
        store.clone(),
        Policy::default(),
        None,
        Webhook::new(Duration::from_secs(10), None)?,
        Settings::default(),
    );
    let webhook_s = deliver_all(&store, &deliverer, "webhook").await?;
    let ga4_s = deliver_all(&store, &deliverer, "ga4").await?;
    let meta_s = deliver_all(&store, &deliverer, "meta").await?;
    let tiktok_s = deliver_all(&store, &deliverer, "tiktok").await?;
    let linkedin_s = deliver_all(&store, &deliverer, "linkedin").await?;
    let google_ads_s = deliver_all(&store, &deliverer, "google_ads").await?;
    let warehouse_s = match warehouse {
        Some((_, client)) => {
            let seconds = deliver_all(&store, &deliverer, "warehouse").await?;
            let loaded: i64 = client
                .query_one(
                    &format!(
                        "SELECT (SELECT count(*) FROM \"{schema}\".tracks) + (SELECT count(*) FROM \"{schema}\".pages)"
                    ),
                    &[],
                )
                .await?
                .get(0);
            if loaded != count as i64 {
                bail!("the warehouse holds {loaded} of {count} events");
            }
            Some(seconds)
        }
        None => None,
    };
    for (fake, name) in [
        (&ga4, "ga4"),
        (&meta, "meta"),
        (&tiktok, "tiktok"),
        (&linkedin, "linkedin"),
        (&google_ads, "google_ads"),
    ] {
        let problems = fake.problems();
        if !problems.is_empty() {
            bail!(
                "{name}'s fake found requests off its schema: {:?}",
                &problems[..problems.len().min(5)]
            );
        }
    }
    // TikTok, LinkedIn and Google Ads take conversions only: the page calls are skipped.
    let tracks = (0..count).filter(|i| i % 3 != 0).count();
    if ga4.accepted_events().len() != count
        || meta.accepted_events().len() != count
        || tiktok.accepted_events().len() != tracks
        || linkedin.accepted_events().len() != tracks
        || google_ads.accepted_events().len() != tracks
    {
        bail!(
            "not every event arrived: ga4 {}, meta {} of {count}; tiktok {}, linkedin {}, google_ads {} of {tracks}",
            ga4.accepted_events().len(),
            meta.accepted_events().len(),
            tiktok.accepted_events().len(),
            linkedin.accepted_events().len(),
            google_ads.accepted_events().len()
        );
    }
    let rate = |seconds: f64| round3(count as f64 / seconds.max(1e-9));
    let mut figures = json!({
            "bench": "vendors",
            "events": count,
            "baseline": "webhook",
            "baseline_events_per_s": rate(webhook_s),
            "ga4_events_per_s": rate(ga4_s),
            "ga4_ratio": round3(webhook_s / ga4_s.max(1e-9)),
            "meta_events_per_s": rate(meta_s),
            "meta_ratio": round3(webhook_s / meta_s.max(1e-9)),
            "tiktok_events_per_s": rate(tiktok_s),
            "tiktok_ratio": round3(webhook_s / tiktok_s.max(1e-9)),
            "linkedin_events_per_s": rate(linkedin_s),
            "linkedin_ratio": round3(webhook_s / linkedin_s.max(1e-9)),
            "google_ads_events_per_s": rate(google_ads_s),
            "google_ads_ratio": round3(webhook_s / google_ads_s.max(1e-9)),
            "webhook_requests": hook_requests.load(Ordering::Relaxed),
            "ga4_requests": ga4.seen().len(),
            "meta_requests": meta.seen().len(),
            "tiktok_requests": tiktok.seen().len(),
            "linkedin_requests": linkedin.seen().len(),
            "google_ads_requests": google_ads.seen().len(),
    });
    if let Some(seconds) = warehouse_s {
        figures["warehouse_events_per_s"] = rate(seconds).into();
        figures["warehouse_ratio"] = round3(webhook_s / seconds.max(1e-9)).into();
    }
    println!("{figures}");
    Ok(())
}
