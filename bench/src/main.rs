//! Sightline's benchmarks, each through the real binary and each printing one JSON line with
//! a baseline measured in the same run. `ingest`: see ingest.rs. `sustained`: see
//! sustained.rs. `delivery`: see delivery.rs.
//! `profiles`: see profiles.rs. `erasure`: see erasure.rs. `log-size`: see log_size.rs. `audience-sync`: see audience.rs. `scan`: see scan.rs. `plans`: see plans.rs. `console`: see console.rs. `soak`: see soak.rs.

mod audience;
mod cluster;
mod console;
mod delivery;
mod erasure;
mod ingest;
mod log_size;
mod plans;
mod profiles;
mod scan;
mod segment;
mod soak;
mod sustained;
mod vendors;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Sightline benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Batched ingest with the log on JetStream and state in PostgreSQL, one node against
    /// two (same load generator, same run), and the failover time of the profiles
    /// processor when its node is killed.
    Cluster {
        /// The PostgreSQL database the nodes share.
        #[arg(long, value_name = "URL")]
        postgres: String,
        /// NATS with JetStream.
        #[arg(long, value_name = "URL", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Seconds each phase is measured.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// wrk's connections, split between the two load generators.
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// Ingest throughput and latency under wrk, everything configured, as a ratio against
    /// a no-op HTTP server.
    Ingest {
        /// Measure on PostgreSQL at this URL instead of SQLite.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Seconds each phase is measured.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// wrk's connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// Batched ingest with a tracking plan of 50 events x 10 properties enforced, against
    /// the same server's source without a plan.
    Plans {
        /// Measure on PostgreSQL at this URL instead of SQLite.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Seconds each of the four phases is measured.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// wrk's connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// A steady load for a while, everything configured: each processor's lag in seconds
    /// (percentiles of samples every 100 ms) against the requests' acknowledgement latency.
    Sustained {
        /// Measure on PostgreSQL at this URL instead of SQLite.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Events per second, in batches of 100.
        #[arg(long, default_value_t = 20_000)]
        rate: u64,
        /// Seconds the load lasts.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Webhook delivery from the log, as a ratio against a plain HTTP client.
    Delivery {
        /// Measure on PostgreSQL at this URL instead of SQLite.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Ingest requests of 100 events put in the log before delivery starts.
        #[arg(long, default_value_t = 500)]
        requests: u64,
        /// Events per webhook request.
        #[arg(long, default_value_t = 100)]
        batch: u32,
    },
    /// Events per second delivered to the GA4 and Meta fakes against the plain webhook.
    Vendors {
        /// Events in the log, delivered to each destination in turn.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Also load them into a warehouse destination on this PostgreSQL database (a
        /// schema of its own, dropped after).
        #[arg(long, value_name = "URL")]
        warehouse: Option<String>,
    },
    /// Profile rebuild and lookups at scale, against a keyed read of the same store.
    Profiles {
        /// People to load (one identify each: user id, anonymous id, email).
        #[arg(long, default_value_t = 2_000_000)]
        people: usize,
        /// Events in the log in all: the identifies, then track events over the people.
        #[arg(long, default_value_t = 10_000_000)]
        events: usize,
        /// Seconds each lookup phase is measured.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent lookup clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Lookups per second of the paced phases.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Seconds of the mixed load (tracking and lookups at fixed rates).
        #[arg(long, default_value_t = 60)]
        mixed_seconds: u64,
        /// Tracked events per second during the mixed load.
        #[arg(long, default_value_t = 5_000)]
        mixed_rate: u64,
    },
    /// Erasing one person from a log of millions of events, against their subject access
    /// export, with the bytes written against the log's size.
    Erasure {
        /// Measure on PostgreSQL at this URL instead of SQLite.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// People to load (one identify each: user id, anonymous id, email).
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        /// Events in the log in all: the identifies, then track events over the people.
        #[arg(long, default_value_t = 10_000_000)]
        events: usize,
    },
    /// Every page of the web console at a million profiles, against a keyed read.
    Console {
        /// People to load (one identify each: user id, anonymous id, email).
        #[arg(long, default_value_t = 1_000_000)]
        people: usize,
        /// Events in the log in all: the identifies, then track events over the people.
        #[arg(long, default_value_t = 2_000_000)]
        events: usize,
        /// Loads of each page, one after another.
        #[arg(long, default_value_t = 20)]
        times: usize,
    },
    /// Event-to-receiver latency of audience adds under background load.
    AudienceSync {
        /// Background page views per second.
        #[arg(long, default_value_t = 5_000)]
        load: u64,
        /// Buyers whose add is timed.
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// Bytes on disk per stored event, everything included, against the JSON sent.
    LogSize {
        /// Measure on PostgreSQL: a new database is created beside the one this URL names
        /// (and dropped afterwards).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Events sent (mixed track/page/identify, ~550 bytes each).
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Distinct people the events are spread over.
        #[arg(long, default_value_t = 10_000)]
        users: u64,
    },
    /// Trains the log's zstd dictionary (crates/store/src/log/segment-v1.dict) on events of
    /// segment.rs's TRAINING site and prints how it compresses the SHOP site's events.
    TrainDict {
        /// Where to write the dictionary.
        #[arg(long)]
        out: PathBuf,
        /// Training events.
        #[arg(long, default_value_t = 20_000)]
        samples: usize,
        /// Largest dictionary size in bytes.
        #[arg(long, default_value_t = 16_384)]
        size: usize,
    },
    /// A 10-step journey scanned under five consent scenarios, against bare Chromium loads;
    /// with `--crawl N`, a generated N-page site crawled and scanned under two scenarios.
    Scan {
        /// Crawl a site of this many pages instead (the figure: 200).
        #[arg(long, value_name = "PAGES")]
        crawl: Option<usize>,
        /// With `--crawl`: also run The Markup's Blacklight collector over the same site
        /// (`bench/blacklight/install.sh` installs it).
        #[arg(long, requires = "crawl")]
        blacklight: bool,
    },
    /// An hour of mixed load (SDK traffic, API reads, new audiences, a destination failing
    /// one request in ten, scheduled scans) with memory, open files and lag sampled each
    /// minute; not in CI.
    Soak {
        /// Run on PostgreSQL at this URL instead of SQLite.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Minutes the load lasts.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// Events per second, in batches of 50.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
    },
    /// The baseline: accepts the same requests, parses the JSON, discards it.
    NoopServer,
}

const EVENTS_PER_BATCH: usize = 100;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Bench::NoopServer => runtime.block_on(noop_server()),
        Bench::Soak {
            postgres,
            minutes,
            rate,
        } => runtime.block_on(soak::run(postgres, minutes.max(1), rate.max(50))),
        Bench::Console {
            people,
            events,
            times,
        } => runtime.block_on(console::run(people.max(1), events, times.max(1))),
        Bench::Erasure {
            postgres,
            people,
            events,
        } => runtime.block_on(erasure::run(postgres, people.max(1), events)),
        Bench::Vendors { events, warehouse } => {
            runtime.block_on(vendors::run(events.max(1), warehouse))
        }
        Bench::Scan { crawl: None, .. } => runtime.block_on(scan::run()),
        Bench::Scan {
            crawl: Some(pages),
            blacklight,
        } => runtime.block_on(scan::crawl(pages.clamp(1, 2000), blacklight)),
        Bench::TrainDict { out, samples, size } => segment::train_dictionary(&out, samples, size),
        Bench::LogSize {
            postgres,
            events,
            users,
        } => runtime.block_on(log_size::run(postgres, events.max(1), users.max(1))),
        Bench::AudienceSync { load, samples } => {
            runtime.block_on(audience::run(load, samples.max(1)))
        }
        Bench::Delivery {
            postgres,
            requests,
            batch,
        } => runtime.block_on(delivery::delivery(postgres, requests.max(1), batch)),
        Bench::Profiles {
            people,
            events,
            seconds,
            clients,
            rate,
            mixed_seconds,
            mixed_rate,
        } => runtime.block_on(profiles::run(profiles::Shape {
            people,
            events,
            length: Duration::from_secs(seconds),
            clients,
            rate,
            mixed: Duration::from_secs(mixed_seconds),
            mixed_rate,
        })),
        Bench::Sustained {
            postgres,
            rate,
            seconds,
        } => runtime.block_on(sustained::run(
            postgres,
            rate.max(100),
            Duration::from_secs(seconds.max(1)),
        )),
        Bench::Plans {
            postgres,
            seconds,
            connections,
        } => runtime.block_on(plans::run(
            postgres,
            Duration::from_secs(seconds.max(1)),
            connections.max(1),
        )),
        Bench::Cluster {
            postgres,
            nats,
            seconds,
            connections,
        } => runtime.block_on(cluster::run(
            &postgres,
            &nats,
            Duration::from_secs(seconds.max(1)),
            connections.max(2),
        )),
        Bench::Ingest {
            postgres,
            seconds,
            connections,
        } => runtime.block_on(ingest::run(
            postgres,
            Duration::from_secs(seconds),
            connections.max(1),
        )),
    }
}

async fn noop_server() -> Result<()> {
    use axum::routing::post;
    async fn parse_and_drop(body: axum::body::Bytes) -> axum::Json<Value> {
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        std::hint::black_box(parsed);
        axum::Json(json!({"success": true}))
    }
    let app = axum::Router::new()
        .route("/v1/batch", post(parse_and_drop))
        .route("/v1/track", post(parse_and_drop));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    eprintln!("sightline listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// A server process under test; killed on drop.
pub(crate) struct Server {
    child: Child,
    url: String,
    /// The metrics listener (`--metrics-listen`), when the server was started with one.
    metrics: Option<String>,
}

impl Server {
    /// Where to read /metrics: the metrics listener, which needs no token (the main
    /// listener's /metrics does).
    pub(crate) fn metrics_url(&self) -> Result<String> {
        self.metrics
            .as_ref()
            .map(|base| format!("{base}/metrics"))
            .context("the server was started without --metrics-listen")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now, in MiB (Linux's `VmRSS`).
    pub(crate) fn rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .context("no VmRSS in the server's status")?
            .parse()?;
        Ok(kib / 1024.0)
    }

    /// Bytes the server has caused to be written to storage so far (Linux's
    /// `/proc/PID/io` `write_bytes`); none where the kernel does not count them.
    pub(crate) fn written_bytes(&self) -> Option<u64> {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).ok()?;
        io.lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))
            .and_then(|rest| rest.trim().parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(mut command: Command) -> Result<Server> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn")
        .spawn()
        .context("start the server under test")?;
    let stderr = child.stderr.take().context("stderr")?;
    let (found, url) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("sightline listening on ") {
                let _ = found.send((false, url.to_string()));
            } else if let Some(url) = line
                .strip_prefix("sightline metrics (no token) on ")
                .and_then(|u| u.strip_suffix("/metrics"))
            {
                let _ = found.send((true, url.to_string()));
            } else {
                eprintln!("[server] {line}");
            }
        }
    });
    // The metrics listener, when there is one, is announced before the main one.
    let mut metrics = None;
    let url = loop {
        match url
            .recv_timeout(Duration::from_secs(60))
            .context("the server did not start")?
        {
            (true, base) => metrics = Some(base),
            (false, url) => break url,
        }
    };
    Ok(Server {
        child,
        url,
        metrics,
    })
}

/// Runs `sightline ARGS STORE_ARGS --json`, which must succeed; its output parsed.
pub(crate) fn cli_json(sightline: &Path, store_args: &[String], args: &[&str]) -> Result<Value> {
    let output = Command::new(sightline)
        .args(args)
        .args(store_args)
        .arg("--json")
        .output()?;
    if !output.status.success() {
        bail!(
            "sightline {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

pub(crate) fn sibling(name: &str) -> Result<PathBuf> {
    let path = std::env::current_exe()?
        .parent()
        .context("the bench binary has no directory")?
        .join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p sightline` (bench/run.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// Bodies with unique messageIds, made cheaply: the template is split around the ids.
struct Bodies {
    pieces: Vec<String>,
}

impl Bodies {
    fn new(events: usize) -> Bodies {
        let properties = json!({
            "sku": "SKU-1234-ABCD", "price": 19.99, "currency": "EUR", "quantity": 2,
            "category": "shoes", "brand": "Acme", "coupon": "WINTER", "position": 3,
            "url": "https://shop.example/products/1234?utm_source=news&utm_medium=email",
            "name": "Trail running shoe"
        });
        let context = json!({"ip": "203.0.113.7", "library": {"name": "bench", "version": "1"},
                             "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0",
                             "page": {"path": "/products/1234", "referrer": "https://news.example/"}});
        let event = |id: &str| {
            json!({"type": "track", "userId": "user-1234567", "event": "Product Added",
                   "messageId": id, "properties": properties, "context": context,
                   "timestamp": "2026-11-24T10:00:00.000Z"})
            .to_string()
        };
        let one = event("@@ID@@");
        let (before, after) = one.split_once("@@ID@@").expect("placeholder");
        let mut pieces = Vec::new();
        if events == 1 {
            pieces.push(before.to_string());
            pieces.push(after.to_string());
        } else {
            pieces.push(format!("{{\"batch\":[{before}"));
            for _ in 1..events {
                pieces.push(format!("{after},{before}"));
            }
            pieces.push(format!("{after}]}}"));
        }
        Bodies { pieces }
    }

    fn render(&self, request: u64) -> Vec<u8> {
        let mut body = Vec::with_capacity(
            self.pieces.iter().map(String::len).sum::<usize>() + 32 * self.pieces.len(),
        );
        for (i, piece) in self.pieces.iter().enumerate() {
            body.extend_from_slice(piece.as_bytes());
            if i + 1 < self.pieces.len() {
                body.extend_from_slice(format!("bench-{request}-{i}").as_bytes());
            }
        }
        body
    }
}

/// A database created for one run beside the one a URL names (so that a run starts
/// empty: no events, audiences or destinations of earlier runs), dropped with it.
pub(crate) struct FreshDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl FreshDatabase {
    pub async fn create(url: &str, purpose: &str) -> Result<FreshDatabase> {
        let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .context("connect to PostgreSQL")?;
        tokio::spawn(connection);
        let name = format!("sightline_bench_{purpose}_{}", std::process::id());
        // One statement each: neither may run inside a (multi-statement) transaction.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let base = match url.rfind('/') {
            Some(slash) if slash > url.find("://").map_or(0, |s| s + 2) => &url[..slash],
            _ => url,
        };
        Ok(FreshDatabase {
            admin_url: url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for FreshDatabase {
    /// Drops the database on a thread of its own: a drop may run on the async runtime,
    /// which cannot wait there.
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (admin, connection) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the bench database {}", self.name);
        }
    }
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
