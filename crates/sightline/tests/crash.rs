//! `kill -9` under load and during a rebuild. After a server is killed while clients send:
//! every acknowledged event is in the log exactly once, every request is stored whole or not
//! at all, and the derived state (profiles with their merges and traits, computed traits,
//! audience memberships) that the restarted server resumes from the store and catches up
//! equals a rebuild of the whole log. A rebuild killed part way leaves a store that a server
//! carries on from, again to that same state. The servers hold a few profiles in memory, so
//! profiles are evicted and loaded back from the store all along.

mod common;

use common::{all_events, backends, client, credentials, sightline, Backend, Server};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const BATCH: usize = 50;
/// Kill once this many events were acknowledged, while the clients keep sending.
const KILL_AFTER: usize = 3_000;
/// Events in the log before the rebuild that is killed: enough pages (the rebuild stores
/// 4,000 events at a time) to be caught part way.
const REBUILT: usize = 16_000;
/// Fewer profiles in memory than users sending.
const CACHE: [&str; 2] = ["--profile-cache", "3"];

/// Event `i` of client `c`'s batch `b`: the user's identify (which joins one of five
/// anonymous ids to the user and sets a trait: the plan, which flips with every batch
/// but client 0's, so that "pro" has a member wherever the kill falls), then tracks of an
/// anonymous id (seven in turn, two of them never identified), one in ten an order with a
/// revenue.
fn sent_event(c: usize, b: usize, i: usize) -> Value {
    let id = format!("c{c}-b{b}-e{i}");
    if i == 0 {
        let plan = if b.is_multiple_of(2) && c != 0 {
            "free"
        } else {
            "pro"
        };
        json!({"type": "identify", "messageId": id, "userId": format!("user-{c}"),
               "anonymousId": format!("anon-{c}-{}", b % 5),
               "traits": {"email": format!("c{c}@example.com"), "plan": plan}})
    } else if i.is_multiple_of(10) {
        json!({"type": "track", "messageId": id, "anonymousId": format!("anon-{c}-{}", b % 7),
               "event": "Order Completed", "properties": {"revenue": i, "pad": "x".repeat(200)}})
    } else {
        json!({"type": "track", "messageId": id, "anonymousId": format!("anon-{c}-{}", b % 7),
               "event": "Load", "properties": {"pad": "x".repeat(200)}})
    }
}

/// Clients sending batches until `stop` events were acknowledged in all (or the server is
/// gone); each batch's message ids are noted before it is sent, and again once acknowledged.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    acked_count: Arc<AtomicUsize>,
    sent: Arc<Mutex<Vec<Vec<String>>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str, key: &str, first_batch: usize, stop: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let acked_count = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
        let clients = (0..CLIENTS)
            .map(|c| {
                let (url, key) = (url.to_string(), key.to_string());
                let (acked, acked_count, sent) = (acked.clone(), acked_count.clone(), sent.clone());
                tokio::spawn(async move {
                    let http = client();
                    for b in first_batch.. {
                        if acked_count.load(Ordering::SeqCst) >= stop {
                            return;
                        }
                        let batch: Vec<Value> = (0..BATCH).map(|i| sent_event(c, b, i)).collect();
                        let ids: Vec<String> = batch
                            .iter()
                            .map(|e| e["messageId"].as_str().unwrap().to_string())
                            .collect();
                        sent.lock().unwrap().push(ids.clone());
                        let response = http
                            .post(format!("{url}/v1/batch"))
                            .basic_auth(&key, Some(""))
                            .json(&json!({"batch": batch}))
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status().is_success() => {
                                acked.lock().unwrap().extend(ids);
                                acked_count.fetch_add(BATCH, Ordering::SeqCst);
                            }
                            // The server is gone: stop, as a client whose requests fail would.
                            _ => return,
                        }
                    }
                })
            })
            .collect();
        Load {
            acked,
            acked_count,
            sent,
            clients,
        }
    }

    /// Waits (bounded, polling) until at least `count` events were acknowledged.
    async fn wait_acked(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked_count.load(Ordering::SeqCst) < count {
            assert!(Instant::now() < deadline, "the load never built up");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finish(self) -> (HashSet<String>, Vec<Vec<String>>) {
        for client in self.clients {
            client.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().iter().cloned().collect();
        let sent = self.sent.lock().unwrap().clone();
        (acked, sent)
    }
}

/// Waits (bounded) until the profiles processor has applied the whole log.
async fn caught_up(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let metrics = common::metrics(server).await;
        if metrics
            .lines()
            .any(|l| l == "sightline_processor_lag_events{processor=\"profiles\"} 0")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: the profiles never caught up",
            server.backend.name()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the profiles processor derived: every identifier's profile (with its computed
/// traits) and both audiences' members.
async fn derived_state(
    server: &Server,
    token: &str,
    identifiers: &BTreeSet<String>,
) -> BTreeMap<String, Value> {
    caught_up(server).await;
    let mut state = BTreeMap::new();
    for identifier in identifiers {
        for path in [
            format!("/api/v1/profiles/{identifier}"),
            format!("/api/v1/profiles/{identifier}/computed"),
        ] {
            let response = common::get(server, Some(token), &path).await;
            assert_eq!(response.status(), 200, "GET {path}");
            state.insert(path, response.json().await.unwrap());
        }
    }
    for audience in ["pro", "buyers"] {
        let path = format!("/api/v1/audiences/{audience}/members");
        let mut members = common::get_json(server, token, &path).await;
        let list = members["members"].as_array_mut().unwrap();
        list.sort_by_key(|m| m.to_string());
        state.insert(path, members);
    }
    state
}

/// The first difference between two derived states, for an assertion's message.
fn first_difference(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> String {
    a.iter()
        .find(|(path, value)| b.get(*path) != Some(value))
        .map(|(path, value)| format!("{path}: {value} against {:?}", b.get(path)))
        .unwrap_or_else(|| "the same paths differ in number".into())
}

/// Where a rebuild stands: the seq its stored profiles are at, read from the store.
async fn stored_profiles_seq(backend: &Backend) -> Option<i64> {
    let sql = "SELECT seq FROM profiles_state";
    match backend {
        Backend::Sqlite(dir) => {
            let conn = rusqlite::Connection::open_with_flags(
                dir.path().join("sightline.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok()?;
            conn.busy_timeout(Duration::from_secs(5)).ok()?;
            conn.query_row(sql, [], |row| row.get(0)).ok()
        }
        Backend::Postgres(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(connection);
            client.query_opt(sql, &[]).await.ok()?.map(|row| row.get(0))
        }
    }
}

/// `sightline identity rebuild`, killed with SIGKILL once it has stored a page and before
/// it has stored the last one.
async fn kill_a_rebuild_part_way(backend: &Backend, log_end: i64) {
    let mut args = vec!["identity".to_string(), "rebuild".to_string()];
    args.extend(backend.args());
    let mut rebuild = std::process::Command::new(common::BIN)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sightline identity rebuild");
    // The stored seq is the server's (the log's end) until the rebuild stores nothing at
    // seq 0, then each page's: kill once it is between.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if stored_profiles_seq(backend)
            .await
            .is_some_and(|seq| 0 < seq && seq < log_end)
        {
            break;
        }
        assert!(
            rebuild.try_wait().unwrap().is_none(),
            "{}: the rebuild ended before it could be killed part way; store more events",
            backend.name()
        );
        assert!(Instant::now() < deadline, "the rebuild never stored a page");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    rebuild.kill().unwrap();
    rebuild.wait().unwrap();
}

fn run(backend: &Backend, args: &[&str]) {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    let output = sightline(&args);
    assert!(
        output.status.success(),
        "sightline {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged_and_derived_state_equals_a_rebuild() {
    for backend in backends("crash").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        run(
            &backend,
            &["audience", "add", "pro", "--rule", "trait plan = \"pro\""],
        );
        run(
            &backend,
            &[
                "audience",
                "add",
                "buyers",
                "--rule",
                "event \"Order Completed\" count >= 3",
            ],
        );
        run(
            &backend,
            &[
                "trait",
                "add",
                r#"{"name":"ltv","aggregate":{"kind":"sum","property":"revenue"},"event":{"name":"Order Completed"}}"#,
            ],
        );

        let mut server = Server::start(&backend, &CACHE);
        let load = Load::start(&server.url, &creds.write_key, 0, usize::MAX);
        load.wait_acked(KILL_AFTER).await;
        server.kill9();
        let (acked, sent_batches) = load.finish().await;

        let server = Server::start(&backend, &CACHE);
        let events = all_events(&server, &creds.token).await;
        let mut stored: HashMap<String, usize> = HashMap::new();
        for event in &events {
            let id = event["messageId"].as_str().unwrap();
            let (c, b, i) = match id.split('-').collect::<Vec<_>>()[..] {
                [c, b, i] => (
                    c[1..].parse().unwrap(),
                    b[1..].parse().unwrap(),
                    i[1..].parse().unwrap(),
                ),
                _ => panic!("{name}: unexpected message id {id}"),
            };
            let sent = sent_event(c, b, i);
            for field in [
                "type",
                "userId",
                "anonymousId",
                "event",
                "traits",
                "properties",
            ] {
                assert_eq!(event[field], sent[field], "{name}: {id} is stored whole");
            }
            *stored.entry(id.to_string()).or_default() += 1;
        }
        assert!(acked.len() >= KILL_AFTER);
        for id in &acked {
            assert_eq!(
                stored.get(id),
                Some(&1),
                "{name}: acknowledged {id} stored once"
            );
        }
        assert!(stored.values().all(|&n| n == 1), "nothing stored twice");
        for batch in &sent_batches {
            let present = batch.iter().filter(|id| stored.contains_key(*id)).count();
            assert!(
                present == 0 || present == BATCH,
                "{name}: a request stored in part ({present}/{BATCH})"
            );
        }
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));

        // The restarted server resumed the profiles from what the killed one had saved and
        // applied the rest: the same state as a rebuild of the log from the start.
        let mut identifiers = BTreeSet::new();
        for event in &events {
            if let Some(user) = event["userId"].as_str() {
                identifiers.insert(format!("user_id:{user}"));
            }
            identifiers.insert(format!(
                "anonymous_id:{}",
                event["anonymousId"].as_str().unwrap()
            ));
        }
        let resumed = derived_state(&server, &creds.token, &identifiers).await;
        server.terminate();
        run(&backend, &["identity", "rebuild"]);
        let server = Server::start(&backend, &CACHE);
        let rebuilt = derived_state(&server, &creds.token, &identifiers).await;
        assert!(
            resumed == rebuilt,
            "{name}: the state resumed after kill -9 differs from a rebuild: {}",
            first_difference(&resumed, &rebuilt)
        );
        assert!(
            rebuilt["/api/v1/audiences/buyers/members"]["count"].as_u64() > Some(0)
                && rebuilt["/api/v1/audiences/pro/members"]["count"].as_u64() > Some(0),
            "{name}: the audiences have members: {rebuilt:?}"
        );

        // More history, then a rebuild killed part way: a server carries it on to the state
        // a whole rebuild gives.
        let first_batch = events
            .iter()
            .filter_map(|e| {
                e["messageId"].as_str()?.split('-').nth(1)?[1..]
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .unwrap()
            + 1;
        let load = Load::start(&server.url, &creds.write_key, first_batch, REBUILT);
        load.wait_acked(REBUILT).await;
        load.finish().await;
        let events = all_events(&server, &creds.token).await;
        let log_end = events.last().unwrap()["seq"].as_i64().unwrap();
        for event in &events {
            if let Some(user) = event["userId"].as_str() {
                identifiers.insert(format!("user_id:{user}"));
            }
            identifiers.insert(format!(
                "anonymous_id:{}",
                event["anonymousId"].as_str().unwrap()
            ));
        }
        server.terminate();
        kill_a_rebuild_part_way(&backend, log_end).await;
        let server = Server::start(&backend, &CACHE);
        let carried_on = derived_state(&server, &creds.token, &identifiers).await;
        server.terminate();
        run(&backend, &["identity", "rebuild"]);
        let server = Server::start(&backend, &CACHE);
        let rebuilt = derived_state(&server, &creds.token, &identifiers).await;
        assert!(
            carried_on == rebuilt,
            "{name}: the state carried on from a killed rebuild differs from a rebuild: {}",
            first_difference(&carried_on, &rebuilt)
        );
        eprintln!(
            "{name}: {} acknowledged before kill -9, {} events in the end, {} identifiers compared",
            acked.len(),
            events.len(),
            identifiers.len()
        );
    }
}
