//! The security approval of destinations, end to end on both backends: a marketing token's
//! new webhook receives nothing until a security reviewer other than its proposer approves
//! it; a URL change waits too, delivery going on to the old approved URL meanwhile; with the
//! policy off a marketing token's destination delivers at once, as before.

mod common;

use axum::body::Bytes;
use axum::extract::{Path, State};
use common::{backends, client, credentials, send_ok, sightline_json, Backend, Server};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a local receiver got: (path, messageId) per event, in order.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, String)>>>);

async fn receive(State(r): State<Receiver>, Path(path): Path<String>, raw: Bytes) -> &'static str {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let events = match body {
        Value::Array(events) => events,
        event => vec![event],
    };
    let mut got = r.0.lock().unwrap();
    for e in events {
        if let Some(id) = e["messageId"].as_str() {
            got.push((path.clone(), id.to_string()));
        }
    }
    "ok"
}

impl Receiver {
    /// Listens on a free port; returns its base URL (`http://…/`), any path taken.
    async fn start(&self) -> String {
        let app = axum::Router::new()
            .route("/{path}", axum::routing::post(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn at(&self, path: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Waits (bounded) until `id` arrived at `path`.
    async fn wait_for(&self, path: &str, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.at(path).iter().any(|m| m == id) {
            assert!(
                Instant::now() < deadline,
                "{id} never reached /{path}: got {:?}",
                self.0.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn token(backend: &Backend, role: &str, name: &str) -> String {
    sightline_json(
        backend,
        &["token", "create", "--role", role, "--name", name],
    )["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn call(server: &Server, token: &str, path: &str, body: Value) -> (u16, Value) {
    let answer = client()
        .post(format!("{}{path}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// The lineage graph in DOT: its destination nodes' labels say where approval stands.
async fn lineage(server: &Server, token: &str) -> String {
    text(server, token, "/api/v1/lineage?format=dot").await
}

async fn text(server: &Server, token: &str, path: &str) -> String {
    client()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn track(server: &Server, key: &str, id: &str) {
    send_ok(
        server,
        key,
        "/v1/track",
        json!({"userId": "u1", "event": "Order Completed", "messageId": id}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketing_destination_receives_nothing_until_another_person_in_security_approves() {
    for backend in backends("approval").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let mia = token(&backend, "marketing", "mia");
        let mia_security = token(&backend, "security", "mia");
        let sam = token(&backend, "security", "sam");
        let receiver = Receiver::default();
        let base = receiver.start().await;
        let server = Server::start(&backend, &[]);

        let (status, created) = call(
            &server,
            &mia,
            "/api/v1/destinations",
            json!({"name": "crm", "url": format!("{base}old"), "purposes": []}),
        )
        .await;
        assert_eq!(status, 201, "{name}: {created}");
        assert_eq!(created["approval"], "pending", "{name}");
        assert!(created["signing_secret"].is_string(), "{name}");
        track(&server, &creds.write_key, "m1").await;

        assert!(
            lineage(&server, &sam)
                .await
                .contains("crm (webhook, pending approval)"),
            "{name}: lineage does not show the pending flow"
        );
        let report = text(&server, &sam, "/api/v1/report").await;
        let row = &report[report
            .find("<tr data-destination=\"crm\">")
            .unwrap_or_else(|| panic!("{name}: the report has no row for crm"))..];
        assert!(
            row[..row.find("</tr>").unwrap()].contains("pending approval"),
            "{name}: the report does not show the pending flow"
        );
        let mut list = vec!["destination", "list"];
        let store_args = backend.args();
        list.extend(store_args.iter().map(String::as_str));
        let listed = common::sightline(&list);
        assert!(listed.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&listed.stdout).contains("\tpending approval"),
            "{name}: `destination list` does not show the pending flow: {}",
            String::from_utf8_lossy(&listed.stdout)
        );
        let pending = common::get_json(&server, &sam, "/api/v1/destinations/pending").await;
        assert_eq!(pending["destinations"][0]["destination"], "crm", "{name}");
        assert_eq!(pending["destinations"][0]["proposed_by"], "mia", "{name}");

        // Not the proposer, even holding a security token; not admin; not marketing.
        for (who, token) in [
            ("mia as security", &mia_security),
            ("admin", &creds.token),
            ("mia", &mia),
        ] {
            let (status, answer) = call(
                &server,
                token,
                "/api/v1/destinations/crm/approve",
                json!({}),
            )
            .await;
            assert_eq!(status, 403, "{name}: {who}: {answer}");
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            receiver.0.lock().unwrap().is_empty(),
            "{name}: a pending destination was sent events"
        );
        let (status, _) = call(
            &server,
            &sam,
            "/api/v1/destinations/crm/reject",
            json!({"reason": ""}),
        )
        .await;
        assert_eq!(status, 400, "{name}: a rejection needs a reason");

        let (status, approved) = call(
            &server,
            &sam,
            "/api/v1/destinations/crm/approve",
            json!({"reason": "DPA signed"}),
        )
        .await;
        assert_eq!(status, 200, "{name}: {approved}");
        assert_eq!(approved["status"], "approved", "{name}");
        assert_eq!(approved["decided_by"], "sam", "{name}");
        track(&server, &creds.write_key, "m2").await;
        receiver.wait_for("old", "m2").await;

        // A URL change by marketing waits; delivery goes on to the approved URL.
        let (status, changed) = call(
            &server,
            &mia,
            "/api/v1/destinations/crm/change",
            json!({"url": format!("{base}new"), "reason": "new CRM"}),
        )
        .await;
        assert_eq!(status, 200, "{name}: {changed}");
        assert_eq!(changed["status"], "pending", "{name}");
        assert_eq!(changed["changes"], json!(["url"]), "{name}");
        track(&server, &creds.write_key, "m3").await;
        receiver.wait_for("old", "m3").await;
        assert!(
            lineage(&server, &sam)
                .await
                .contains("crm (webhook, approved; a change awaits approval)"),
            "{name}: lineage does not show the pending change"
        );
        assert!(receiver.at("new").is_empty(), "{name}");
        let (status, _) = call(
            &server,
            &mia_security,
            "/api/v1/destinations/crm/approve",
            json!({}),
        )
        .await;
        assert_eq!(
            status, 403,
            "{name}: the proposer approved their own change"
        );

        let (status, _) = call(&server, &sam, "/api/v1/destinations/crm/approve", json!({})).await;
        assert_eq!(status, 200, "{name}");
        track(&server, &creds.write_key, "m4").await;
        receiver.wait_for("new", "m4").await;
        assert!(!receiver.at("old").contains(&"m4".to_string()), "{name}");

        // The change log holds every step.
        let log = common::get_json(&server, &sam, "/api/v1/destinations/log?destination=crm").await;
        let steps: Vec<(String, String)> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["actor"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("propose", "mia"),
            ("approve", "sam"),
            ("propose", "mia"),
            ("approve", "sam"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(steps, expected, "{name}");
        drop(server);

        // The policy off: a marketing token's destination delivers at once.
        let dir = common::temp_dir("approval-off");
        let config = dir.path().join("sightline.toml");
        std::fs::write(&config, "[approval]\ndestinations = \"off\"\n").unwrap();
        let server = Server::start(&backend, &["--config", config.to_str().unwrap()]);
        let (status, created) = call(
            &server,
            &mia,
            "/api/v1/destinations",
            json!({"name": "direct", "url": format!("{base}direct"), "purposes": []}),
        )
        .await;
        assert_eq!(status, 201, "{name}: {created}");
        assert_eq!(created["approval"], "approved", "{name}");
        track(&server, &creds.write_key, "m5").await;
        receiver.wait_for("direct", "m5").await;
    }
}
