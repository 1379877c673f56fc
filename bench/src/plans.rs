//! `sightline-bench plans`: what enforcing a tracking plan costs collection. One server,
//! configured as users run it (ingest.rs's `Setup`: profiles, two audiences, a computed
//! trait, a webhook), two sources: one held to a plan of 50 `track` events × 10 properties (the load's two event
//! names among them, every property typed, required and nothing else allowed), one held to
//! none. The same wrk load (ingest.rs's batches of 100) alternates between the two, twice
//! each, so that both see the same warm store and the same background processors; the
//! ratio of their throughputs is the plan's cost.

use crate::ingest::{wrk, Setup, EVENTS_PER_BATCH};
use crate::{cli_json, round3};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::process::Command;
use std::time::Duration;

/// The plan: the load's `Product Added` and `Order Completed` as it sends them, and 48
/// more events of 10 properties each.
fn plan() -> Value {
    let typed = |pairs: &[(&str, Value)]| {
        let properties: Map<String, Value> = pairs
            .iter()
            .map(|(name, schema)| (name.to_string(), schema.clone()))
            .collect();
        let required: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
        json!({"properties": {"type": "object", "properties": properties,
                              "required": required, "additionalProperties": false}})
    };
    let string = json!({"type": "string", "maxLength": 200});
    let money = json!({"type": "number", "minimum": 0});
    let mut track = Map::new();
    track.insert(
        "Product Added".into(),
        typed(&[
            ("sku", string.clone()),
            ("price", money.clone()),
            ("currency", json!({"enum": ["EUR", "USD", "GBP"]})),
            ("quantity", json!({"type": "integer", "minimum": 1})),
            ("category", string.clone()),
            ("brand", string.clone()),
            ("coupon", string.clone()),
            ("position", json!({"type": "integer"})),
            ("url", json!({"type": "string", "pattern": "^https://"})),
            ("name", string.clone()),
        ]),
    );
    track.insert(
        "Order Completed".into(),
        typed(&[
            ("order_id", string.clone()),
            ("revenue", money.clone()),
            ("currency", json!({"enum": ["EUR", "USD", "GBP"]})),
            (
                "products",
                json!({"type": "array", "items": {"type": "object",
                    "properties": {"sku": {"type": "string"}, "price": {"type": "number"},
                                   "quantity": {"type": "integer"}},
                    "required": ["sku", "price", "quantity"]}}),
            ),
            ("coupon", string.clone()),
            ("url", json!({"type": "string", "pattern": "^https://"})),
        ]),
    );
    for event in 0..48 {
        let pairs: Vec<(String, Value)> = (0..10)
            .map(|p| {
                let schema = if p % 2 == 0 {
                    string.clone()
                } else {
                    money.clone()
                };
                (format!("property_{p}"), schema)
            })
            .collect();
        let borrowed: Vec<(&str, Value)> =
            pairs.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
        track.insert(format!("Event {event}"), typed(&borrowed));
    }
    json!({"enforcement": {"unplanned_event": "drop", "invalid_value": "drop"}, "track": track})
}

pub async fn run(postgres: Option<String>, length: Duration, connections: usize) -> Result<()> {
    // The product as users run it (profiles, two audiences, a computed trait, a webhook),
    // whose source is the one without a plan.
    let setup = Setup::new(postgres.as_deref()).await?;
    let (sightline, store_args, data) = (&setup.sightline, &setup.store_args, &setup.data);
    let planned_source = format!("planned-{}", setup.source);
    let planned = cli_json(sightline, store_args, &["source", "add", &planned_source])?
        ["write_key"]
        .as_str()
        .context("write_key")?
        .to_string();
    let free = setup.key.clone();
    let plan_file = data.join("plan.json");
    std::fs::write(&plan_file, plan().to_string())?;
    let plan_name = format!("plan-{}", setup.source);
    cli_json(
        sightline,
        store_args,
        &["plan", "add", &plan_name, &plan_file.display().to_string()],
    )?;
    let assigned = Command::new(sightline)
        .args(["plan", "assign", &plan_name, "--source", &planned_source])
        .args(store_args)
        .output()?;
    if !assigned.status.success() {
        bail!(
            "plan assign failed: {}",
            String::from_utf8_lossy(&assigned.stderr)
        );
    }

    let server = setup.serve()?;
    let load = |key: &str, length: Duration| {
        wrk(
            &server.url,
            key,
            EVENTS_PER_BATCH,
            connections,
            length,
            data,
        )
    };
    load(&free, Duration::from_secs(1))?;
    load(&planned, Duration::from_secs(1))?;
    let (mut with_plan, mut without_plan, mut refused) = (0.0, 0.0, 0);
    for _ in 0..2 {
        let free_run = load(&free, length)?;
        let planned_run = load(&planned, length)?;
        without_plan += free_run.events_per_s / 2.0;
        with_plan += planned_run.events_per_s / 2.0;
        refused += free_run.refused + planned_run.refused;
    }
    let metrics = reqwest::get(server.metrics_url()?).await?.text().await?;
    // Every event of the load is valid under the plan: a dropped one would make the
    // planned source look faster than it is.
    if metrics.contains("sightline_plan_events_total") {
        bail!("the plan flagged or dropped events of the load: the comparison would be unfair");
    }
    drop(server);
    println!(
        "{}",
        json!({
            "bench": "plans",
            "backend": if postgres.is_some() { "postgres" } else { "sqlite" },
            "configured": "profiles, 2 audiences, 1 computed trait, 1 webhook",
            "plan": "50 track events x 10 properties, types, enums, patterns, required, no others",
            "load": format!("wrk -t2 -c{connections}, batches of {EVENTS_PER_BATCH}, alternating"),
            "events_per_s": with_plan.round(),
            "baseline": "same server, a source without a plan",
            "baseline_events_per_s": without_plan.round(),
            "ratio": round3(with_plan / without_plan),
            "refused_requests": refused,
        })
    );
    Ok(())
}
