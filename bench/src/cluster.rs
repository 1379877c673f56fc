//! `sightline-bench cluster`: batched ingest with the log on JetStream and state in
//! PostgreSQL, through one node and then through two, with the same load generator in the
//! same run (two wrk processes, each with half the connections, both against the one node
//! or one against each), everything configured as in `ingest`. Then the failover time:
//! under load, the node running the profiles processor is killed with SIGKILL, and the time
//! until the other node's profiles lag starts falling is measured.
//!
//! Both nodes, NATS, PostgreSQL and wrk share this machine's cores, so a second node adds
//! no CPU: the figure to read is per core, and what the second node costs or gives.

use crate::ingest::{lags, wrk, Run, Setup, EVENTS_PER_BATCH};
use crate::{round3, Server};
use anyhow::{bail, Result};
use serde_json::json;
use std::time::{Duration, Instant};

const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);

/// wrk against each of `urls` at once, `connections` split between them; their sum.
fn load(setup: &Setup, urls: &[&str], connections: usize, length: Duration) -> Result<Run> {
    let each = (connections / urls.len()).max(1);
    let runs: Vec<Result<Run>> = std::thread::scope(|scope| {
        let handles: Vec<_> = urls
            .iter()
            .map(|url| {
                scope.spawn(move || {
                    wrk(url, &setup.key, EVENTS_PER_BATCH, each, length, &setup.data)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a wrk thread"))
            .collect()
    });
    let mut sum = Run {
        events_per_s: 0.0,
        requests_per_s: 0.0,
        p99_ms: 0.0,
        refused: 0,
    };
    for run in runs {
        let run = run?;
        sum.events_per_s += run.events_per_s;
        sum.requests_per_s += run.requests_per_s;
        sum.p99_ms = sum.p99_ms.max(run.p99_ms);
        sum.refused += run.refused;
    }
    Ok(sum)
}

/// The profiles processor's lag as `node` reports it; `None` when it runs elsewhere.
async fn profiles_lag(http: &reqwest::Client, node: &Server) -> Result<Option<f64>> {
    Ok(lags(http, node).await?.get("profiles").map(|lag| lag.0))
}

/// Waits until some node runs the profiles processor and every processor on every node
/// has applied the whole log; the seconds it took.
async fn caught_up(nodes: &[&Server]) -> Result<f64> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let mut profiles = false;
        let mut largest = 0f64;
        for node in nodes {
            let lags = lags(&http, node).await?;
            profiles |= lags.contains_key("profiles");
            largest = lags.values().map(|l| l.0).fold(largest, f64::max);
        }
        if profiles && largest == 0.0 {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > CATCH_UP_LIMIT {
            bail!("the processors did not catch up within {CATCH_UP_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(postgres: &str, nats: &str, length: Duration, connections: usize) -> Result<()> {
    let stream = format!("BENCH_{}", std::process::id());
    let log = vec![
        "--log-url".to_string(),
        nats.to_string(),
        "--log-stream".into(),
        stream.clone(),
    ];
    let outcome = measure(postgres, &log, length, connections).await;
    let client = async_nats::connect(nats).await?;
    let _ = async_nats::jetstream::new(client)
        .delete_stream(&stream)
        .await;
    let figures = outcome?;
    println!("{figures}");
    Ok(())
}

async fn measure(
    postgres: &str,
    log: &[String],
    length: Duration,
    connections: usize,
) -> Result<serde_json::Value> {
    let setup = Setup::with(Some(postgres), log).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let first = setup.serve()?;
    load(&setup, &[&first.url], connections, Duration::from_secs(1))?;
    caught_up(&[&first]).await?;
    let one = load(&setup, &[&first.url, &first.url], connections, length)?;
    let one_caught_up_s = caught_up(&[&first]).await?;

    let second = setup.serve()?;
    let two = load(&setup, &[&first.url, &second.url], connections, length)?;
    let two_caught_up_s = caught_up(&[&first, &second]).await?;

    // Failover: kill the node running the profiles processor while the other takes load.
    let http = reqwest::Client::new();
    let (mut owner, survivor) = if profiles_lag(&http, &first).await?.is_some() {
        (first, second)
    } else {
        (second, first)
    };
    let loader = {
        let (url, key, data) = (survivor.url.clone(), setup.key.clone(), setup.data.clone());
        let each = (connections / 2).max(1);
        std::thread::spawn(move || {
            wrk(
                &url,
                &key,
                EVENTS_PER_BATCH,
                each,
                Duration::from_secs(25),
                &data,
            )
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = owner.child.kill();
    let killed = Instant::now();
    let mut last = None;
    let failover_s = loop {
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("the profiles processor did not move to the other node within 60 s");
        }
        if let Some(lag) = profiles_lag(&http, &survivor).await? {
            if last.is_some_and(|last| lag < last) || lag == 0.0 {
                break killed.elapsed().as_secs_f64();
            }
            last = Some(lag);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    loader.join().expect("the load thread")?;
    let _ = owner.child.wait();
    caught_up(&[&survivor]).await?;

    Ok(json!({
        "bench": "cluster",
        "backend": "jetstream+postgres",
        "configured": "profiles, 2 audiences, 1 computed trait, 1 webhook",
        "load": format!("2 x wrk -t2 -c{}", connections / 2),
        "events_per_batch": EVENTS_PER_BATCH,
        "cores": cores,
        "one_node_events_per_s": one.events_per_s.round(),
        "one_node_events_per_s_per_core": (one.events_per_s / cores as f64).round(),
        "one_node_batch_p99_ms": round3(one.p99_ms),
        "one_node_caught_up_s": round3(one_caught_up_s),
        "two_nodes_events_per_s": two.events_per_s.round(),
        "two_nodes_events_per_s_per_core": (two.events_per_s / cores as f64).round(),
        "two_nodes_batch_p99_ms": round3(two.p99_ms),
        "two_nodes_caught_up_s": round3(two_caught_up_s),
        "baseline": "one node, same load generator",
        "ratio": round3(two.events_per_s / one.events_per_s),
        "refused_requests": one.refused + two.refused,
        "failover_s": round3(failover_s),
    }))
}
