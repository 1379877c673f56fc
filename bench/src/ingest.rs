//! `sightline-bench ingest`: batched and single-event ingest through wrk (a load generator
//! in its own process, stronger than the server), against a no-op HTTP server that parses
//! the same JSON and discards it, measured by the same wrk in the same run. Sightline runs
//! as users run it: profiles, two audiences, one computed trait and one webhook destination
//! (to a local receiver) are configured. After the load it waits for every processor that
//! follows the log to catch up, and reports how long that took.

use crate::{cli_json, round3, sibling, start, FreshDatabase, Server};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Distinct people the events are spread over.
const PEOPLE: u64 = 100_000;

/// Events per batch request.
pub(crate) const EVENTS_PER_BATCH: usize = 100;

/// How long the processors may take to catch up after the load before the run fails.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);

/// The wrk script: every request carries fresh messageIds (`<run>-<thread>-<request>-<item>`,
/// the run's tag telling apart wrk processes loading one store at once);
/// one event in ten is an `Order Completed` with a revenue, the others `Product Added`,
/// spread over [`PEOPLE`] user ids. `done` prints one line of JSON the bench reads.
const SCRIPT: &str = r#"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
local context = '"context":{"ip":"203.0.113.7","library":{"name":"bench","version":"1"},'
  .. '"userAgent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0",'
  .. '"page":{"path":"/products/1234","referrer":"https://news.example/"}},'
  .. '"timestamp":"2026-11-24T10:00:00.000Z"'
local added = '"event":"Product Added","properties":{"sku":"SKU-1234-ABCD","price":19.99,'
  .. '"currency":"EUR","quantity":2,"category":"shoes","brand":"Acme","coupon":"WINTER",'
  .. '"position":3,"url":"https://shop.example/products/1234?utm_source=news&utm_medium=email",'
  .. '"name":"Trail running shoe"},'
local ordered = '"event":"Order Completed","properties":{"order_id":"o-1","revenue":59.97,'
  .. '"currency":"EUR","products":[{"sku":"SKU-1234-ABCD","price":19.99,"quantity":3}],'
  .. '"coupon":"WINTER","url":"https://shop.example/checkout/done?utm_source=news"},'

local function event(i)
  local n = (counter * EVENTS + i) * 7919 + tid
  local user = n % PEOPLE
  local kind = (i % 10 == 0) and ordered or added
  return '{"type":"track","userId":"user-' .. user .. '","messageId":"bench-' .. RUN .. '-' .. tid .. '-'
    .. counter .. '-' .. i .. '",' .. kind .. context .. '}'
end

function request()
  counter = counter + 1
  local body
  if EVENTS == 1 then
    body = event(0)
  else
    local parts = {}
    for i = 1, EVENTS do
      parts[i] = event(i)
    end
    body = '{"batch":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", PATH, HEADERS, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"failed":%d,"non_2xx":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"#;

/// One wrk run's figures.
pub(crate) struct Run {
    pub events_per_s: f64,
    pub requests_per_s: f64,
    pub p99_ms: f64,
    pub refused: u64,
}

/// Loads `url` with wrk for `length`: `EVENTS_PER_BATCH` events per request to `/v1/batch`,
/// or one per request to `/v1/track`.
pub(crate) fn wrk(
    url: &str,
    key: &str,
    events: usize,
    connections: usize,
    length: Duration,
    dir: &Path,
) -> Result<Run> {
    let path = if events == 1 {
        "/v1/track"
    } else {
        "/v1/batch"
    };
    let auth = base64_basic(key);
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let script = format!(
        "RUN = \"{run}\"\nEVENTS = {events}\nPEOPLE = {PEOPLE}\nPATH = \"{path}\"\n\
         HEADERS = {{[\"Content-Type\"] = \"application/json\", [\"Authorization\"] = \"Basic {auth}\"}}\n{SCRIPT}"
    );
    let file = dir.join(format!("load-{run}.lua"));
    std::fs::write(&file, script)?;
    let output = Command::new("wrk")
        .args(["-t", "2", "-c", &connections.to_string()])
        .args(["-d", &format!("{}s", length.as_secs().max(1))])
        .args(["--timeout", "10s", "-s"])
        .arg(&file)
        .arg(url)
        .output()
        .context("run wrk (bench/run.sh installs it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK "))
        .with_context(|| {
            format!(
                "wrk printed no figures: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let figures: Value = serde_json::from_str(line)?;
    let number = |name: &str| figures[name].as_u64().unwrap_or(0);
    if number("failed") > 0 {
        bail!("wrk saw failed requests against {url}: {line}");
    }
    let seconds = number("duration_us") as f64 / 1e6;
    let accepted = number("requests").saturating_sub(number("non_2xx"));
    Ok(Run {
        events_per_s: (accepted as usize * events) as f64 / seconds,
        requests_per_s: accepted as f64 / seconds,
        p99_ms: number("p99_us") as f64 / 1e3,
        refused: number("non_2xx"),
    })
}

fn base64_basic(key: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{key}:");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A webhook receiver that answers 200 to everything and counts the requests.
pub(crate) async fn receiver() -> Result<(String, Arc<AtomicU64>)> {
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let app = axum::Router::new().fallback(move |_body: axum::body::Bytes| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, count))
}

/// Each log-following processor's lag, read from /metrics: events and seconds behind.
pub(crate) async fn lags(
    http: &reqwest::Client,
    server: &Server,
) -> Result<std::collections::BTreeMap<String, (f64, f64)>> {
    let text = http.get(server.metrics_url()?).send().await?.text().await?;
    let mut lags = std::collections::BTreeMap::new();
    for line in text.lines() {
        let (metric, seconds) = match line.split_once('{') {
            Some(("sightline_processor_lag_events", rest)) => (rest, false),
            Some(("sightline_processor_lag_seconds", rest)) => (rest, true),
            _ => continue,
        };
        let Some((labels, value)) = metric.rsplit_once(' ') else {
            continue;
        };
        let processor = labels
            .trim_start_matches("processor=\"")
            .trim_end_matches("\"}")
            .to_string();
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        let entry: &mut (f64, f64) = lags.entry(processor).or_default();
        if seconds {
            entry.1 = value;
        } else {
            entry.0 = value;
        }
    }
    Ok(lags)
}

/// How long the processors took to apply the whole log, from a moment on.
pub(crate) struct CaughtUp {
    /// Seconds until the profiles had.
    pub profiles_s: f64,
    /// Seconds until every processor had.
    pub all_s: f64,
    /// The events the profiles were behind at that moment.
    pub profiles_backlog: f64,
}

/// Waits until the profiles, then every processor, have applied the whole log.
pub(crate) async fn caught_up(server: &Server) -> Result<CaughtUp> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut profiles_at = None;
    let mut profiles_backlog = None;
    loop {
        let lags = lags(&http, server).await?;
        let largest = lags.values().map(|l| l.0).fold(0.0, f64::max);
        let profiles = lags.get("profiles").map_or(f64::NAN, |l| l.0);
        let profiles_backlog = *profiles_backlog.get_or_insert(profiles);
        if profiles == 0.0 && profiles_at.is_none() {
            profiles_at = Some(started.elapsed().as_secs_f64());
        }
        if let (Some(profiles_s), 0.0) = (profiles_at, largest) {
            return Ok(CaughtUp {
                profiles_s,
                all_s: started.elapsed().as_secs_f64(),
                profiles_backlog,
            });
        }
        if started.elapsed() > CATCH_UP_LIMIT {
            bail!(
                "the processors did not catch up within {CATCH_UP_LIMIT:?} (lag {largest} events)"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A store configured as users run it, and the write key of its source.
pub(crate) struct Setup {
    pub sightline: std::path::PathBuf,
    pub data: std::path::PathBuf,
    pub store_args: Vec<String>,
    pub key: String,
    /// The source's name.
    pub source: String,
    /// Requests the webhook destination's receiver got.
    pub received: Arc<AtomicU64>,
    /// On PostgreSQL, the run's own database, dropped with the setup.
    _database: Option<FreshDatabase>,
}

impl Setup {
    /// A source, two audiences, a computed trait and a webhook destination (to a local
    /// receiver) on a new SQLite store, or on a new PostgreSQL database beside the one
    /// `postgres` names (each run starts empty).
    pub async fn new(postgres: Option<&str>) -> Result<Setup> {
        Setup::with(postgres, &[]).await
    }

    /// A new admin API token of the store.
    pub fn admin_token(&self) -> Result<String> {
        Ok(cli_json(
            &self.sightline,
            &self.store_args,
            &["token", "create", "--role", "admin"],
        )?["token"]
            .as_str()
            .context("token")?
            .to_string())
    }

    /// [`Setup::new`], with `extra` store flags (e.g. the log on JetStream) on every command
    /// and server.
    pub async fn with(postgres: Option<&str>, extra: &[String]) -> Result<Setup> {
        let sightline = sibling("sightline")?;
        let data = std::env::temp_dir().join(format!("sightline-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let database = match postgres {
            Some(url) => Some(FreshDatabase::create(url, "run").await?),
            None => None,
        };
        let mut store_args: Vec<String> = match &database {
            Some(db) => vec!["--database-url".into(), db.url.clone()],
            None => vec!["--data".into(), data.join("store").display().to_string()],
        };
        store_args.extend_from_slice(extra);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let unique = format!("{}-{nanos}", std::process::id());
        let source = format!("bench-{unique}");
        let key = cli_json(&sightline, &store_args, &["source", "add", &source])?["write_key"]
            .as_str()
            .context("write_key")?
            .to_string();
        let (hook, received) = receiver().await?;
        for (name, rule) in [
            ("buyers", "event \"Order Completed\" count >= 1 within 30d"),
            ("browsers", "event \"Product Added\" count >= 3 within 7d"),
        ] {
            let name = format!("{name}-{unique}");
            cli_json(
                &sightline,
                &store_args,
                &["audience", "add", &name, "--rule", rule],
            )?;
        }
        let ltv = json!({"name": format!("ltv_{}", unique.replace('-', "_")),
            "aggregate": {"kind": "sum", "property": "revenue"},
            "event": {"name": "Order Completed"}})
        .to_string();
        cli_json(&sightline, &store_args, &["trait", "add", &ltv])?;
        let sink = format!("sink-{unique}");
        cli_json(
            &sightline,
            &store_args,
            &[
                "destination",
                "add",
                &sink,
                "--type",
                "webhook",
                "--url",
                &hook,
                "--batch",
                "100",
            ],
        )?;
        Ok(Setup {
            sightline,
            data,
            store_args,
            key,
            source,
            received,
            _database: database,
        })
    }

    /// `sightline serve` on this store.
    pub fn serve(&self) -> Result<Server> {
        let mut serve = Command::new(&self.sightline);
        serve
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(&self.store_args);
        start(serve)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

pub async fn run(postgres: Option<String>, length: Duration, connections: usize) -> Result<()> {
    let setup = Setup::new(postgres.as_deref()).await?;
    let (key, data) = (&setup.key, &setup.data);
    let warmup = Duration::from_secs(1);
    let load = |url: &str, events: usize, length: Duration| {
        wrk(url, key, events, connections, length, data)
    };
    let mut noop = Command::new(std::env::current_exe()?);
    noop.arg("noop-server");
    let (base_batched, base_single) = {
        let noop = start(noop)?;
        load(&noop.url, EVENTS_PER_BATCH, warmup)?;
        let batched = load(&noop.url, EVENTS_PER_BATCH, length)?;
        (batched, load(&noop.url, 1, length)?)
    };

    let server = setup.serve()?;
    load(&server.url, EVENTS_PER_BATCH, warmup)?;
    caught_up(&server).await?;
    let batched = load(&server.url, EVENTS_PER_BATCH, length)?;
    let after_load = caught_up(&server).await?;
    // Single events once everything has caught up, so that the backlog of the batched
    // phase does not weigh on them.
    let single = load(&server.url, 1, length)?;
    caught_up(&server).await?;
    drop(server);

    println!(
        "{}",
        json!({
            "bench": "ingest",
            "backend": if postgres.is_some() { "postgres" } else { "sqlite" },
            "configured": "profiles, 2 audiences, 1 computed trait, 1 webhook",
            "load": format!("wrk -t2 -c{connections}"),
            "people": PEOPLE,
            "events_per_batch": EVENTS_PER_BATCH,
            "events_per_s": batched.events_per_s.round(),
            "baseline": "noop-http",
            "baseline_events_per_s": base_batched.events_per_s.round(),
            "ratio": round3(batched.events_per_s / base_batched.events_per_s),
            "batch_p99_ms": round3(batched.p99_ms),
            "refused_requests": batched.refused + single.refused,
            "single_requests_per_s": single.requests_per_s.round(),
            "baseline_single_requests_per_s": base_single.requests_per_s.round(),
            "single_ratio": round3(single.requests_per_s / base_single.requests_per_s),
            "p99_ms": round3(single.p99_ms),
            "baseline_p99_ms": round3(base_single.p99_ms),
            "profiles_backlog_events": after_load.profiles_backlog,
            "profiles_caught_up_s": round3(after_load.profiles_s),
            "profiles_catch_up_events_per_s": (after_load.profiles_backlog / after_load.profiles_s).round(),
            "all_processors_caught_up_s": round3(after_load.all_s),
            "webhook_requests": setup.received.load(Ordering::Relaxed),
        })
    );
    Ok(())
}
