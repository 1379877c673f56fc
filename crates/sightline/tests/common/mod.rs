//! The harness for end-to-end tests: the real `sightline` binary on a real store,
//! driven over HTTP and through its command line.

#![allow(dead_code)] // each test binary uses a different part of the harness

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_sightline");

/// Where a test's server keeps its data. The SQLite directory is removed when the last
/// clone of its backend is dropped.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite(Arc<tempfile::TempDir>),
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub fn args(&self) -> Vec<String> {
        match self {
            Backend::Sqlite(dir) => vec!["--data".into(), dir.path().display().to_string()],
            Backend::Postgres(url) => vec!["--database-url".into(), url.clone()],
        }
    }
}

/// A directory for one test's files, removed when dropped.
pub fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("sl-{name}-"))
        .tempdir()
        .expect("a temporary directory")
}

/// SQLite in a fresh directory, and PostgreSQL in a fresh schema when
/// `SIGHTLINE_TEST_DATABASE_URL` is set (required in CI) and the binary is built with its
/// `postgres` feature.
pub async fn backends(test: &str) -> Vec<Backend> {
    let mut all = vec![Backend::Sqlite(Arc::new(temp_dir(&format!("e2e-{test}"))))];
    all.extend(postgres(test).await);
    all
}

/// A fresh schema at `SIGHTLINE_TEST_DATABASE_URL`, when set.
#[cfg(feature = "postgres")]
pub async fn postgres(test: &str) -> Option<Backend> {
    match std::env::var("SIGHTLINE_TEST_DATABASE_URL") {
        Ok(base) => {
            let schema = format!("e2e_{test}_{}", std::process::id());
            let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                .await
                .expect("connect to SIGHTLINE_TEST_DATABASE_URL");
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
                ))
                .await
                .expect("create a test schema");
            let separator = if base.contains('?') { '&' } else { '?' };
            Some(Backend::Postgres(format!(
                "{base}{separator}options=-csearch_path%3D{schema}"
            )))
        }
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "SIGHTLINE_TEST_DATABASE_URL must be set in CI: PostgreSQL tests may not be skipped"
            );
            eprintln!("SIGHTLINE_TEST_DATABASE_URL is not set: skipping PostgreSQL for {test}");
            None
        }
    }
}

/// A binary built without the `postgres` feature refuses PostgreSQL URLs: SQLite only.
#[cfg(not(feature = "postgres"))]
pub async fn postgres(test: &str) -> Option<Backend> {
    eprintln!("built without the `postgres` feature: skipping PostgreSQL for {test}");
    None
}

/// Runs a `sightline` command to completion.
pub fn sightline(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run sightline")
}

/// Runs a `sightline … --json` command that must succeed, and parses its output.
pub fn sightline_json(backend: &Backend, args: &[&str]) -> Value {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    all.push("--json".into());
    let output = Command::new(BIN)
        .args(&all)
        .output()
        .expect("run sightline");
    assert!(
        output.status.success(),
        "sightline {all:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// A destination's delivery log (its first 100 outcomes), from `deliveries list`.
pub fn deliveries(backend: &Backend, destination: &str) -> Vec<Value> {
    sightline_json(
        backend,
        &[
            "deliveries",
            "list",
            "--destination",
            destination,
            "--limit",
            "100",
        ],
    )["deliveries"]
        .as_array()
        .expect("a deliveries list")
        .clone()
}

/// A running `sightline serve`.
pub struct Server {
    child: Child,
    /// What the server has written to stderr so far, line by line.
    logged: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub url: String,
    /// The metrics listener's base URL, when started with `--metrics-listen`.
    pub metrics_url: Option<String>,
    pub backend: Backend,
    /// A `metrics` role token, made on first use to read /metrics on the main listener.
    metrics_token: std::sync::OnceLock<String>,
}

impl Server {
    /// Starts a server on a free port and waits (bounded) until it listens.
    pub fn start(backend: &Backend, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(backend.args())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sightline serve");
        let stderr = child.stderr.take().expect("stderr");
        let (found, url) = mpsc::channel();
        let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = logged.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line.clone());
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
        let mut metrics_url = None;
        let url = loop {
            match url
                .recv_timeout(Duration::from_secs(120))
                .expect("the server did not start listening")
            {
                (true, metrics) => metrics_url = Some(metrics),
                (false, url) => break url,
            }
        };
        Server {
            child,
            logged,
            url,
            metrics_url,
            backend: backend.clone(),
            metrics_token: std::sync::OnceLock::new(),
        }
    }

    /// A token that may read /metrics on the main listener (the `metrics` role), made
    /// through the command line on first use.
    pub fn metrics_token(&self) -> &str {
        self.metrics_token.get_or_init(|| {
            sightline_json(&self.backend, &["token", "create", "--role", "metrics"])["token"]
                .as_str()
                .unwrap()
                .to_string()
        })
    }

    /// Waits (bounded) until the server has logged a line holding `text`.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self.logged.lock().unwrap().iter().any(|l| l.contains(text)) {
            assert!(
                std::time::Instant::now() < deadline,
                "the server never logged {text:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the server SIGHUP.
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("send SIGHUP");
        assert!(status.success());
    }

    /// SIGKILL: no chance to flush or drain.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("send SIGTERM");
        self.child.wait().expect("wait for sightline")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A source and an admin token on a backend, made through the command line.
pub struct Credentials {
    pub write_key: String,
    pub token: String,
}

pub fn credentials(backend: &Backend, source: &str) -> Credentials {
    let source = sightline_json(backend, &["source", "add", source]);
    let token = sightline_json(backend, &["token", "create", "--role", "admin"]);
    Credentials {
        write_key: source["write_key"].as_str().unwrap().to_string(),
        token: token["token"].as_str().unwrap().to_string(),
    }
}

/// Posts a tracking call that must be accepted.
pub async fn send_ok(server: &Server, key: &str, path: &str, body: Value) {
    let response = client()
        .post(format!("{}{path}", server.url))
        .basic_auth(key, Some(""))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
}

/// Imports a CRM export's `csv` (columns `id`, `mail`, `tier`) through the API: rows
/// identified by email, `tier` a trait, no linkage.
pub async fn import_crm(server: &Server, token: &str, csv: &str) {
    let imported = client()
        .post(format!("{}/api/v1/imports/crm", server.url))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "file": "crm.csv",
            "csv": csv,
            "mapping": {"id_column": "id", "identifiers": {"mail": "email"},
                        "traits": {"tier": "tier"},
                        "linkage": {"profiles": false, "dedupe": false}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 200, "{:?}", imported.text().await);
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `GET` an admin API path (`/api/v1/…`) with a token; the answer's JSON (null if none).
pub async fn get_json(server: &Server, token: &str, path: &str) -> Value {
    client()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// `GET` an admin API path with a token (or none); the answer as it came.
pub async fn get(server: &Server, token: Option<&str>, path: &str) -> reqwest::Response {
    let request = client().get(format!("{}{path}", server.url));
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
    .send()
    .await
    .unwrap()
}

/// `GET /metrics`, as text: on the metrics listener when there is one, else on the main
/// listener with a `metrics` token.
pub async fn metrics(server: &Server) -> String {
    let response = match &server.metrics_url {
        Some(url) => client().get(format!("{url}/metrics")).send().await.unwrap(),
        None => get(server, Some(server.metrics_token()), "/metrics").await,
    };
    assert_eq!(response.status(), 200, "GET /metrics");
    response.text().await.unwrap()
}

/// The id `sightline scan` and `scan import` print (`scan: ID`).
pub fn scan_id(stdout: &str) -> i64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("scan: "))
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no scan id in {stdout}"))
}

/// Every event in the log, through the admin API, following `next_after`. A page answered
/// 503 (the store did not answer: a JetStream failover under way) is asked again, as a
/// client would, for up to a minute.
pub async fn all_events(server: &Server, token: &str) -> Vec<Value> {
    let mut after = 0;
    let mut events = Vec::new();
    loop {
        let path = format!("/api/v1/events?after={after}&limit=1000");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let page = loop {
            let answer = get(server, Some(token), &path).await;
            if answer.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE
                || std::time::Instant::now() > deadline
            {
                break answer.json::<Value>().await.unwrap_or(Value::Null);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let batch = page["events"]
            .as_array()
            .unwrap_or_else(|| panic!("a page of events: {page}"))
            .clone();
        if batch.is_empty() {
            return events;
        }
        after = page["next_after"].as_i64().unwrap();
        events.extend(batch);
    }
}
