//! Several nodes end to end: three real `sightline serve` processes sharing one JetStream
//! stream (the local NATS) and one PostgreSQL schema, SDK traffic spread across them, nodes
//! killed with SIGKILL under load and started again. Afterwards every acknowledged event is
//! in the log exactly once, the profiles and an audience's members equal those a single
//! node rebuilds from the same log, no event reached the destination without consent, and
//! every repeat delivery of an event carried the same Idempotency-Key. An erasure through
//! one node holds on the others. A stream replicated on a three-server JetStream cluster
//! of the test's own loses nothing when the server leading it is killed.

mod common;

use axum::extract::State;
use axum::http::HeaderMap;
use common::{all_events, client, credentials, get_json, postgres, sightline, Server};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn nats_url() -> String {
    std::env::var("SIGHTLINE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A stream of this test's own, removed when dropped (a failed test's too), and before the
/// test starts should a killed run have left it.
struct TestStream {
    name: String,
}

impl TestStream {
    async fn new(test: &str) -> TestStream {
        let name = format!("T_{test}_{}", std::process::id());
        delete_stream(&name).await;
        TestStream { name }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--log-url".into(),
            nats_url(),
            "--log-stream".into(),
            self.name.clone(),
        ]
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A runtime of its own: the test's may be the one dropping this.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(delete_stream(&name))
        })
        .join()
        .unwrap();
    }
}

async fn delete_stream(name: &str) {
    let client = async_nats::connect(nats_url())
        .await
        .expect("NATS with JetStream at SIGHTLINE_TEST_NATS_URL (nats://127.0.0.1:4222)");
    let _ = async_nats::jetstream::new(client).delete_stream(name).await;
}

/// What the webhook receiver got: per messageId, the Idempotency-Key of every delivery.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<HashMap<String, Vec<String>>>>);

impl Received {
    async fn start(&self) -> String {
        async fn receive(
            State(received): State<Received>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> &'static str {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let events = match body {
                Value::Array(events) => events,
                event => vec![event],
            };
            let mut received = received.0.lock().unwrap();
            for event in events {
                if let Some(id) = event["messageId"].as_str() {
                    received.entry(id.to_owned()).or_default().push(key.clone());
                }
            }
            "ok"
        }
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn ids(&self) -> HashMap<String, Vec<String>> {
        self.0.lock().unwrap().clone()
    }
}

/// The nodes' base URLs as a load balancer knows them: a killed node's stays listed (its
/// requests fail and are sent again to the next one).
#[derive(Clone, Default)]
struct Balancer(Arc<Mutex<Vec<String>>>);

impl Balancer {
    fn pick(&self, turn: usize) -> String {
        let nodes = self.0.lock().unwrap();
        nodes[turn % nodes.len()].clone()
    }

    fn replace(&self, index: usize, url: String) {
        self.0.lock().unwrap()[index] = url;
    }
}

const USERS: usize = 40;
const BATCHES: usize = 240;
const PER_BATCH: usize = 10;

/// Batch `n`: an identify (with an email linking the user) and tracks, a third of them
/// with analytics consent denied.
fn batch(n: usize) -> (Value, Vec<(String, bool)>) {
    let mut events = Vec::new();
    let mut ids = Vec::new();
    for i in 0..PER_BATCH {
        let k = n * PER_BATCH + i;
        let user = format!("u{}", k % USERS);
        let id = format!("m{k}");
        let granted = !k.is_multiple_of(3);
        let context = json!({"consent": {"categoryPreferences": {"Analytics": granted}}});
        let event = if i == 0 {
            json!({"type": "identify", "userId": user, "messageId": id, "context": context,
                   "traits": {"email": format!("{user}@example.com"), "batch": n}})
        } else {
            json!({"type": "track", "userId": user, "messageId": id, "context": context,
                   "event": "Viewed", "properties": {"n": k}})
        };
        events.push(event);
        ids.push((id, granted));
    }
    (json!({"batch": events}), ids)
}

/// Sends every batch, each until some node acknowledges it, every fourth one to two nodes
/// at once (a client retrying on another node before the first answered); returns the
/// acknowledged messageIds with whether their consent was granted.
async fn load(balancer: Balancer, key: String, sent: Arc<AtomicUsize>) -> Vec<(String, bool)> {
    let http = client();
    let post = |url: String, body: Value| {
        http.post(format!("{url}/v1/batch"))
            .basic_auth(&key, Some(""))
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
    };
    let accepted =
        |answer: &reqwest::Result<reqwest::Response>| matches!(answer, Ok(r) if r.status() == 200);
    let mut acked = Vec::new();
    let mut turn = 0;
    for n in 0..BATCHES {
        let (body, ids) = batch(n);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            turn += 1;
            let first = post(balancer.pick(turn), body.clone());
            let done = if n % 4 == 0 {
                let second = post(balancer.pick(turn + 1), body.clone());
                let (first, second) = tokio::join!(first, second);
                accepted(&first) || accepted(&second)
            } else {
                accepted(&first.await)
            };
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "no node acknowledged batch {n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acked.extend(ids);
        sent.fetch_add(1, Ordering::SeqCst);
    }
    acked
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_sent(sent: &AtomicUsize, at_least: usize) {
    wait_for("the load", async || sent.load(Ordering::SeqCst) >= at_least).await;
}

/// Whether the profiles processor has an owner among the live nodes that applied the
/// whole log, seen from `server`.
async fn caught_up(server: &Server, token: &str) -> bool {
    let status = get_json(server, token, "/api/v1/cluster").await;
    let alive: HashSet<&str> = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["alive"] == true)
        .filter_map(|n| n["id"].as_str())
        .collect();
    status["processors"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| {
            p["processor"] == "profiles"
                && p["lag_events"] == 0
                && p["node"].as_str().is_some_and(|n| alive.contains(n))
        })
}

/// A profile as the API shows it, without its store-local id.
async fn profile(server: &Server, token: &str, user: &str) -> Value {
    let mut profile = get_json(server, token, &format!("/api/v1/profiles/user_id:{user}")).await;
    if let Some(map) = profile.as_object_mut() {
        map.remove("id");
    }
    profile
}

/// The audience the cluster keeps: users who viewed something with analytics consent.
fn add_viewers(backend: &common::Backend) {
    common::sightline_json(
        backend,
        &[
            "audience",
            "add",
            "viewers",
            "--rule",
            r#"event "Viewed" count >= 1 and consent analytics"#,
        ],
    );
}

/// The audience's members as their identifiers, in order.
async fn viewers(server: &Server, token: &str) -> Vec<String> {
    let members = get_json(server, token, "/api/v1/audiences/viewers/members").await;
    let mut list: Vec<String> = members["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["identifiers"].to_string())
        .collect();
    list.sort();
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_killed_under_load_lose_nothing_and_repeat_nothing() {
    let Some(backend) = postgres("cluster").await else {
        return;
    };
    let stream = TestStream::new("cluster").await;
    let log_args = stream.args();
    let log: Vec<&str> = log_args.iter().map(String::as_str).collect();
    let store_args = backend.args();
    let store: Vec<&str> = store_args.iter().map(String::as_str).collect();
    let creds = credentials(&backend, "web");
    let received = Received::default();
    let hook = received.start().await;
    let mut add = vec!["destination", "add", "hook", "--type", "webhook", "--url"];
    add.extend([hook.as_str(), "--purposes", "analytics", "--json"]);
    add.extend(&store);
    let added = sightline(&add);
    assert!(added.status.success(), "{added:?}");
    add_viewers(&backend);

    let mut nodes: Vec<Server> = (0..3).map(|_| Server::start(&backend, &log)).collect();
    let balancer = Balancer(Arc::new(Mutex::new(
        nodes.iter().map(|n| n.url.clone()).collect(),
    )));
    let sent = Arc::new(AtomicUsize::new(0));
    let traffic = tokio::spawn(load(
        balancer.clone(),
        creds.write_key.clone(),
        sent.clone(),
    ));

    // Kill each of the first two nodes in turn under load, and start it again later.
    for (victim, node) in nodes.iter_mut().take(2).enumerate() {
        wait_sent(&sent, BATCHES * (2 * victim + 1) / 5).await;
        node.kill9();
        wait_sent(&sent, BATCHES * (2 * victim + 2) / 5).await;
        *node = Server::start(&backend, &log);
        balancer.replace(victim, node.url.clone());
    }
    let acked = traffic.await.unwrap();
    assert_eq!(acked.len(), BATCHES * PER_BATCH);

    // Every acknowledged event is in the log once, and nothing else is.
    let events = all_events(&nodes[2], &creds.token).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        *counts
            .entry(event["messageId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(repeated.is_empty(), "stored more than once: {repeated:?}");
    let expected: HashSet<&str> = acked.iter().map(|(id, _)| id.as_str()).collect();
    let stored: HashSet<&str> = counts.keys().map(String::as_str).collect();
    assert_eq!(
        stored, expected,
        "the log holds exactly the acknowledged events"
    );
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "pages by stream seq");

    // Every node answers reads the same once the processors have caught up.
    wait_for("the profiles to catch up", async || {
        caught_up(&nodes[0], &creds.token).await
    })
    .await;
    let granted: HashSet<&str> = acked
        .iter()
        .filter(|(_, granted)| *granted)
        .map(|(id, _)| id.as_str())
        .collect();
    wait_for("every consented event to be delivered", async || {
        let delivered = received.ids();
        granted.iter().all(|id| delivered.contains_key(*id))
    })
    .await;
    let delivered = received.ids();
    for (id, keys) in &delivered {
        assert!(
            granted.contains(id.as_str()),
            "{id} was delivered without consent"
        );
        assert!(
            keys.iter().all(|k| k == &keys[0] && !k.is_empty()),
            "{id} was delivered again under another Idempotency-Key: {keys:?}"
        );
    }
    for user in ["u0", "u7", "u39"] {
        let on = [
            profile(&nodes[0], &creds.token, user).await,
            profile(&nodes[1], &creds.token, user).await,
            profile(&nodes[2], &creds.token, user).await,
        ];
        assert!(on[0].get("identifiers").is_some(), "{user}: {}", on[0]);
        assert!(
            on.iter().all(|p| p == &on[0]),
            "{user} differs between nodes: {on:?}"
        );
    }

    // The log and the nodes, as the command line shows them.
    let mut info = vec!["log", "info", "--json"];
    info.extend(&store);
    info.extend(&log);
    let info = sightline(&info);
    assert!(info.status.success(), "{info:?}");
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["stream"], stream.name.as_str());
    assert_eq!(info["messages"], json!(BATCHES * PER_BATCH));
    let mut status = vec!["cluster", "status", "--json"];
    status.extend(&store);
    status.extend(&log);
    let status = sightline(&status);
    assert!(status.status.success(), "{status:?}");
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let alive = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["alive"] == true)
        .count();
    assert_eq!(alive, 3, "{status}");

    // One node on a store of its own rebuilds the same profiles from the same log.
    let fresh = postgres("cluster_rebuild").await.unwrap();
    let single_token = credentials(&fresh, "other").token;
    add_viewers(&fresh);
    let single = Server::start(&fresh, &log);
    wait_for("the single node's rebuild", async || {
        caught_up(&single, &single_token).await
    })
    .await;
    for k in 0..USERS {
        let user = format!("u{k}");
        assert_eq!(
            profile(&single, &single_token, &user).await,
            profile(&nodes[2], &creds.token, &user).await,
            "{user}: the cluster's profile is not the single node's rebuild"
        );
    }
    let members = viewers(&nodes[2], &creds.token).await;
    assert!(members.len() > USERS / 2, "{members:?}");
    assert_eq!(
        viewers(&single, &single_token).await,
        members,
        "the cluster's audience is not the single node's rebuild"
    );
    drop(single);
    drop(nodes);
    drop(stream);
}

/// What stops a node at start: a NATS that cannot be reached, a stream configured
/// otherwise than the flags ask, and the log on JetStream without PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_used_as_asked_stops_the_start() {
    let Some(backend) = postgres("cluster_refusals").await else {
        return;
    };
    let stream = TestStream::new("refusals").await;
    let store_args = backend.args();
    let run = |extra: &[&str]| {
        let mut args = vec!["log", "info"];
        args.extend(store_args.iter().map(String::as_str));
        args.extend(extra);
        sightline(&args)
    };
    let said = |output: &std::process::Output| String::from_utf8_lossy(&output.stderr).into_owned();

    let unreachable = run(&[
        "--log-url",
        "nats://127.0.0.1:1",
        "--log-stream",
        &stream.name,
    ]);
    assert!(!unreachable.status.success());
    assert!(
        said(&unreachable).contains("cannot reach NATS"),
        "{}",
        said(&unreachable)
    );

    let log_args = stream.args();
    let log: Vec<&str> = log_args.iter().map(String::as_str).collect();
    let created = run(&log);
    assert!(created.status.success(), "{}", said(&created));
    let dir = common::temp_dir("cluster-config");
    let config = dir.path().join("sightline.toml");
    std::fs::write(&config, "[log]\nmax_age = \"1d\"\n").unwrap();
    let mut other = log.clone();
    other.extend(["--config", config.to_str().unwrap()]);
    let refused = run(&other);
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("max age none (kept forever) where [log] max_age asks 86400s"),
        "{}",
        said(&refused)
    );

    let no_postgres = sightline(&["log", "info", "--log-url", &nats_url()]);
    assert!(!no_postgres.status.success());
    assert!(
        said(&no_postgres).contains("give --database-url"),
        "{}",
        said(&no_postgres)
    );
}

/// A JetStream cluster of three `nats-server` processes of this test's own (the machine's
/// NATS is a single server), killed when dropped.
struct NatsCluster {
    servers: Vec<std::process::Child>,
    /// (client, monitoring) port of each server.
    ports: Vec<(u16, u16)>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    async fn start() -> NatsCluster {
        let dir = common::temp_dir("nats-cluster");
        // Held until all are chosen, so that no port is handed out twice.
        let listeners: Vec<[std::net::TcpListener; 3]> = (0..3)
            .map(|_| std::array::from_fn(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()))
            .collect();
        let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
        let routes: Vec<String> = listeners
            .iter()
            .map(|l| format!("nats://127.0.0.1:{}", port(&l[1])))
            .collect();
        let ports: Vec<[u16; 3]> = listeners.iter().map(|l| l.each_ref().map(port)).collect();
        drop(listeners);
        let servers = ports
            .iter()
            .enumerate()
            .map(|(i, [client, cluster, monitor])| {
                std::process::Command::new("nats-server")
                    .args(["-a", "127.0.0.1", "-p", &client.to_string()])
                    .args(["-n", &format!("n{i}"), "-js", "-sd"])
                    .arg(dir.path().join(format!("n{i}")))
                    .args(["--cluster_name", "sightline-test", "--cluster"])
                    .arg(format!("nats://127.0.0.1:{cluster}"))
                    .args(["--routes", &routes.join(","), "-m", &monitor.to_string()])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("nats-server (scripts/setup.sh installs it)")
            })
            .collect();
        let cluster = NatsCluster {
            servers,
            ports: ports.iter().map(|[c, _, m]| (*c, *m)).collect(),
            _dir: dir,
        };
        wait_for("the NATS cluster's meta leader", async || {
            cluster.meta_leader().await.is_some()
        })
        .await;
        cluster
    }

    /// `--log-url` naming every server.
    fn url(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|(client, _)| format!("nats://127.0.0.1:{client}"))
            .collect();
        urls.join(",")
    }

    /// `/jsz` of `server`, unless it is down.
    async fn jsz_of(&self, server: usize, query: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/jsz?{query}", self.ports[server].1);
        client().get(url).send().await.ok()?.json().await.ok()
    }

    /// `/jsz` of the first server still running.
    async fn jsz(&self, query: &str) -> Option<Value> {
        for server in 0..self.ports.len() {
            if let Some(jsz) = self.jsz_of(server, query).await {
                return Some(jsz);
            }
        }
        None
    }

    /// The server leading the JetStream cluster, once every server names the same.
    async fn meta_leader(&self) -> Option<String> {
        let mut leaders = HashSet::new();
        for server in 0..self.ports.len() {
            let jsz = self.jsz_of(server, "").await?;
            leaders.insert(jsz["meta_cluster"]["leader"].as_str()?.to_owned());
        }
        (leaders.len() == 1)
            .then(|| leaders.into_iter().next())
            .flatten()
    }

    /// The index of the server leading `stream`, and how many servers replicate it.
    async fn stream_leader(&self, stream: &str) -> Option<(usize, usize)> {
        let jsz = self.jsz("accounts=true&streams=true").await?;
        let detail = jsz["account_details"]
            .as_array()?
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
            .find(|s| s["name"] == stream)?;
        let leader = detail["cluster"]["leader"].as_str()?;
        let replicas = detail["cluster"]["replicas"].as_array().map_or(0, Vec::len) + 1;
        Some((leader.strip_prefix('n')?.parse().ok()?, replicas))
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// A stream with three replicas on a three-server JetStream cluster: its leader killed
/// with SIGKILL under load, the node goes on through the other two (the client moves to
/// another server of `--log-url`'s list, the stream elects a new leader); every
/// acknowledged event is in the log once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_log_loses_nothing_when_a_nats_server_dies() {
    let Some(backend) = postgres("cluster_replicas").await else {
        return;
    };
    let mut nats = NatsCluster::start().await;
    let stream = format!("T_replicas_{}", std::process::id());
    let dir = common::temp_dir("replicas-config");
    let config = dir.path().join("sightline.toml");
    std::fs::write(&config, "[log]\nreplicas = 3\n").unwrap();
    let log_args = [
        "--log-url".to_owned(),
        nats.url(),
        "--log-stream".to_owned(),
        stream.clone(),
        "--config".to_owned(),
        config.display().to_string(),
    ];
    let log: Vec<&str> = log_args.iter().map(String::as_str).collect();
    let creds = credentials(&backend, "web");
    let node = Server::start(&backend, &log);
    let balancer = Balancer(Arc::new(Mutex::new(vec![node.url.clone()])));
    let sent = Arc::new(AtomicUsize::new(0));
    let traffic = tokio::spawn(load(balancer, creds.write_key.clone(), sent.clone()));

    wait_sent(&sent, BATCHES / 3).await;
    let (leader, replicas) = nats
        .stream_leader(&stream)
        .await
        .expect("the stream's leader in /jsz");
    assert_eq!(replicas, 3, "the stream is on every server");
    let _ = nats.servers[leader].kill();
    let _ = nats.servers[leader].wait();
    let acked = traffic.await.unwrap();
    assert_eq!(acked.len(), BATCHES * PER_BATCH);
    let (new_leader, _) = nats.stream_leader(&stream).await.expect("a new leader");
    assert_ne!(new_leader, leader);

    // Reads go on too: the profiles take in the whole log, and it pages through.
    wait_for("the profiles to catch up", async || {
        caught_up(&node, &creds.token).await
    })
    .await;
    let events = all_events(&node, &creds.token).await;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &events {
        *counts
            .entry(event["messageId"].as_str().unwrap())
            .or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(repeated.is_empty(), "stored more than once: {repeated:?}");
    let expected: HashSet<&str> = acked.iter().map(|(id, _)| id.as_str()).collect();
    let stored: HashSet<&str> = counts.keys().copied().collect();
    assert_eq!(
        stored, expected,
        "the log holds exactly the acknowledged events"
    );

    let mut info = vec!["log", "info", "--json"];
    let store_args = backend.args();
    info.extend(store_args.iter().map(String::as_str));
    info.extend(&log);
    let info = sightline(&info);
    assert!(info.status.success(), "{info:?}");
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["replicas"], 3, "{info}");
    assert_eq!(info["messages"], json!(BATCHES * PER_BATCH), "{info}");
    drop(node);
}

/// An erasure through one node holds on the others: once it has answered, no node keeps an
/// event naming the person, and none of the profiles' owner's memory writes them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_through_one_node_holds_on_every_node() {
    let Some(backend) = postgres("cluster_erasure").await else {
        return;
    };
    let stream = TestStream::new("cluster_erasure").await;
    let log_args = stream.args();
    let log: Vec<&str> = log_args.iter().map(String::as_str).collect();
    let creds = credentials(&backend, "web");
    let privacy = common::sightline_json(
        &backend,
        &["token", "create", "--role", "privacy", "--name", "dpo"],
    );
    let privacy = privacy["token"].as_str().unwrap().to_owned();
    let (a, b) = (Server::start(&backend, &log), Server::start(&backend, &log));
    let key = creds.write_key.as_str();
    let zed = json!({"userId": "zed", "traits": {"email": "zed@example.com", "nickname": "Okapi-Tromso"}});
    common::send_ok(&b, key, "/v1/identify", zed.clone()).await;
    wait_for("Zed's profile", async || {
        common::get(&a, Some(&creds.token), "/api/v1/profiles/user_id:zed")
            .await
            .status()
            == 200
    })
    .await;

    let erased = client()
        .post(format!("{}/api/v1/privacy/erasures", a.url))
        .bearer_auth(&privacy)
        .json(&json!({"identifier": "email:zed@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 201);
    let receipt: Value = erased.json().await.unwrap();
    assert_eq!(receipt["outcome"], "erased", "{receipt:#}");
    // The other node no longer keeps his events, from the answer on.
    common::send_ok(
        &b,
        key,
        "/v1/track",
        json!({"userId": "zed", "event": "Came Back"}),
    )
    .await;
    common::send_ok(&b, key, "/v1/identify", json!({"userId": "yan"})).await;
    wait_for("the profiles past the last event", async || {
        common::get(&a, Some(&creds.token), "/api/v1/profiles/user_id:yan")
            .await
            .status()
            == 200
    })
    .await;
    for node in [&a, &b] {
        let answer = common::get(node, Some(&creds.token), "/api/v1/profiles/user_id:zed").await;
        assert_eq!(answer.status(), 404);
    }
    let events = serde_json::to_string(&all_events(&a, &creds.token).await).unwrap();
    for needle in ["\"zed\"", "zed@example.com", "Okapi-Tromso"] {
        assert!(!events.contains(needle), "the log still holds {needle}");
    }
    drop((a, b));
}
