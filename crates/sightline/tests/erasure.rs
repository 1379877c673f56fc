//! Erasure end to end on both backends: a person who used two devices, was identified by
//! email, stated their consent, has a row in an imported CRM export and entered an audience
//! synced to a webhook is erased by email through the API. Afterwards no table (and on
//! SQLite no byte of the database and write-ahead log files) holds their email, user id,
//! anonymous ids, CRM id or a trait value; the
//! receipt is signed, stored and audited; the webhook that received her data got a signed
//! deletion request; a later event with her email is dropped at
//! collection (and another person's, erased with `strip`, is kept without her user id); a
//! second erasure is a no-op with its own receipt; another person's profile and membership
//! are unchanged.

mod common;

use axum::extract::State;
use axum::routing::post;
use common::{
    all_events, backends, client, credentials, get, get_json, send_ok, sightline, Backend, Server,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What an erased person must leave nowhere (lowercase: matched without regard to case).
const ANN: [&str; 7] = [
    "ann@example.com",
    "ann-uid-42",
    "ann-laptop",
    "ann-phone",
    "quokka-zanzibar",
    // Her CRM row: its id and a trait only it holds.
    "crm-ann-9931",
    "wallaby-gold",
];

/// A request the webhook receiver got: its signature header and body.
#[derive(Clone)]
struct Received {
    signature: String,
    raw: Vec<u8>,
    body: Value,
}

/// A webhook receiver that records every request it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    async fn record(
        State(got): State<Arc<Mutex<Vec<Received>>>>,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> &'static str {
        got.lock().unwrap().push(Received {
            signature: headers
                .get("x-sightline-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            raw: body.to_vec(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        "ok"
    }
    let app = axum::Router::new()
        .route("/hook", post(record))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

fn run(backend: &Backend, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    sightline(&refs)
}

fn run_json(backend: &Backend, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let output = run(backend, &all);
    assert!(
        output.status.success(),
        "sightline {all:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

fn consent(analytics: bool, advertising: bool) -> Value {
    json!({"categoryPreferences": {"Analytics": analytics, "Advertising": advertising}})
}

async fn post_json(server: &Server, token: &str, path: &str, body: Value) -> (u16, Value) {
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

/// Polls `check` (every 20 ms, at most 30 s) until it holds; the last value read.
async fn until<F, Fut>(what: &str, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, Value)>,
{
    let mut last = Value::Null;
    for _ in 0..1500 {
        let (done, value) = check().await;
        if done {
            return value;
        }
        last = value;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not reached; last read {last:#}");
}

/// Whether the export holds everything the scenario made for Ann.
fn settled(export: &Value) -> bool {
    let events = export["events"].as_array().map_or(0, Vec::len);
    export["found"] == true
        && export["audiences"] == json!(["buyers"])
        && export["audience_syncs"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["passed"] == true))
        && export["crm_rows"]
            .as_array()
            .is_some_and(|rows| rows.len() == 1)
        && events == 5
        && export["deliveries"].as_array().is_some_and(|d| {
            d.len() == events && d.iter().filter(|d| d["status"] == "delivered").count() >= 4
        })
        && export["identifiers"]
            .as_array()
            .is_some_and(|ids| ids.iter().filter(|i| i["type"] == "anonymous_id").count() == 2)
}

/// The needles of `ANN` found in `text` (compared in lowercase).
fn found_in(text: &[u8]) -> Vec<&'static str> {
    let lower = text.to_ascii_lowercase();
    ANN.iter()
        .copied()
        .filter(|needle| {
            lower
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .collect()
}

/// Every row of every table, each with what it holds of Ann: `table: needles`.
async fn search_tables(backend: &Backend) -> Vec<String> {
    let mut hits = Vec::new();
    match backend {
        Backend::Sqlite(dir) => {
            for file in ["sightline.db", "log.db", "audit.db"] {
                let conn = rusqlite::Connection::open_with_flags(
                    dir.path().join(file),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                let tables: Vec<String> = conn
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                assert!(!tables.is_empty(), "{file}: no tables");
                for table in tables {
                    let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
                    let columns = stmt.column_count();
                    let mut rows = stmt.query([]).unwrap();
                    while let Some(row) = rows.next().unwrap() {
                        for i in 0..columns {
                            let bytes = match row.get_ref(i).unwrap() {
                                rusqlite::types::ValueRef::Text(t) => t.to_vec(),
                                rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
                                _ => continue,
                            };
                            let found = found_in(&bytes);
                            if !found.is_empty() {
                                hits.push(format!("{file} {table}: {found:?}"));
                            }
                        }
                    }
                }
            }
        }
        Backend::Postgres(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let tables = client
                .query(
                    "SELECT table_name::text FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                    &[],
                )
                .await
                .unwrap();
            assert!(tables.len() > 3, "{tables:?}");
            for table in tables {
                let table: String = table.get(0);
                let rows = client
                    .query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
                    .await
                    .unwrap();
                for row in rows {
                    let text: String = row.get(0);
                    let found = found_in(text.as_bytes());
                    if !found.is_empty() {
                        hits.push(format!("{table}: {found:?}"));
                    }
                }
            }
        }
    }
    hits
}

/// The install's privacy secret, as the store keeps it.
async fn privacy_secret(backend: &Backend) -> String {
    let sql = "SELECT secret FROM privacy_secret";
    match backend {
        Backend::Sqlite(dir) => {
            let conn = rusqlite::Connection::open_with_flags(
                dir.path().join("sightline.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }
        Backend::Postgres(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client.query_one(sql, &[]).await.unwrap().get(0)
        }
    }
}

/// Checks a receipt's signature as the README tells a reader to: HMAC-SHA256 under the
/// privacy secret of the receipt without `signature`, keys sorted, compact.
fn verify(secret: &str, receipt: &Value) -> bool {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(fields) => {
                let mut keys: Vec<&String> = fields.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&fields[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut unsigned = receipt.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    let key = openssl::pkey::PKey::hmac(secret.as_bytes()).unwrap();
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    signer
        .update(sorted(&unsigned).to_string().as_bytes())
        .unwrap();
    let mac: String = signer
        .sign_to_vec()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    receipt["signature"]["algorithm"] == "HMAC-SHA256" && receipt["signature"]["value"] == mac
}

/// What another person's profile is, for comparison: identifiers and traits.
/// No profile answers to any of `ids` (`type:value`).
async fn assert_no_profile(server: &Server, token: &str, backend: &str, ids: &[&str]) {
    for id in ids {
        let answer = get(server, Some(token), &format!("/api/v1/profiles/{id}")).await;
        assert_eq!(answer.status(), 404, "{backend}: {id}");
    }
}

async fn profile_of(server: &Server, token: &str, id: &str) -> Value {
    let profile = get_json(server, token, &format!("/api/v1/profiles/{id}")).await;
    json!({"id": profile["id"], "identifiers": profile["identifiers"], "traits": profile["traits"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_leaves_nothing_behind_and_others_stay() {
    for backend in backends("erasure").await {
        let name = backend.name();
        let (url, got) = receiver().await;
        let creds = credentials(&backend, "web");
        let hook = run_json(
            &backend,
            &[
                "destination",
                "add",
                "hook",
                "--url",
                &url,
                "--purposes",
                "analytics",
            ],
        );
        let hook_secret = hook["signing_secret"].as_str().unwrap().to_owned();
        run_json(
            &backend,
            &[
                "audience",
                "add",
                "buyers",
                "--rule",
                r#"event "Order Completed" count >= 1"#,
                "--sync",
                "hook",
            ],
        );
        let privacy = run_json(
            &backend,
            &["token", "create", "--role", "privacy", "--name", "dpo"],
        );
        let privacy_id = privacy["id"].as_i64().unwrap();
        let privacy = privacy["token"].as_str().unwrap().to_owned();
        let analyst = run_json(&backend, &["token", "create", "--role", "analyst"]);
        let analyst = analyst["token"].as_str().unwrap().to_owned();
        let server = Server::start(&backend, &[]);
        let key = creds.write_key.as_str();

        // Ann: a laptop and a phone, identified by email on the first, her consent stated.
        send_ok(
            &server,
            key,
            "/v1/page",
            json!({"anonymousId": "ann-laptop", "name": "Home",
                   "context": {"consent": consent(true, false)}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId": "ann-laptop", "userId": "ann-uid-42",
                   "traits": {"email": "Ann@Example.com", "nickname": "Quokka-Zanzibar"},
                   "context": {"consent": consent(true, false)}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"anonymousId": "ann-phone", "event": "Order Completed",
                   "properties": {"total": 42},
                   "context": {"consent": consent(true, true)}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId": "ann-phone", "userId": "ann-uid-42",
                   "context": {"consent": consent(true, true)}}),
        )
        .await;
        // Bob, another person, in the same audience and destination.
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId": "bob-tablet", "userId": "bob",
                   "traits": {"email": "bob@example.org", "nickname": "bobby"},
                   "context": {"consent": consent(true, true)}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId": "bob", "event": "Order Completed", "properties": {"total": 7},
                   "context": {"consent": consent(true, true)}}),
        )
        .await;

        // Her row in a CRM export, joined to her profile by email.
        let ann_row = "id,mail,tier\ncrm-ann-9931,ann@example.com,wallaby-gold\n";
        common::import_crm(&server, &creds.token, ann_row).await;

        // Both settled: profiles, deliveries and the audience's sync to the webhook.
        let export_path = "/api/v1/privacy/subjects/email:ann@example.com";
        until(&format!("{name}: Ann settled"), || async {
            let export = get_json(&server, &privacy, export_path).await;
            (settled(&export), export)
        })
        .await;
        let members_path = "/api/v1/audiences/buyers/members";
        until(&format!("{name}: both buyers"), || async {
            let members = get_json(&server, &creds.token, members_path).await;
            (members["count"] == 2, members)
        })
        .await;
        assert!(
            !got.lock().unwrap().is_empty(),
            "{name}: the webhook got nothing"
        );
        assert!(
            !got.lock()
                .unwrap()
                .iter()
                .any(|r| r.body["type"] == "deletion_request"),
            "{name}"
        );
        let bob_before = profile_of(&server, &creds.token, "email:bob@example.org").await;
        let bob_export = get_json(
            &server,
            &privacy,
            "/api/v1/privacy/subjects/email:bob@example.org",
        )
        .await;
        assert!(
            !search_tables(&backend).await.is_empty(),
            "{name}: Ann not stored?"
        );

        // The wrong role, a malformed identifier, an unknown mode: refused, nothing erased.
        let erasures = "/api/v1/privacy/erasures";
        let ask = json!({"identifier": "email:ANN@example.com"});
        assert_eq!(
            post_json(&server, &analyst, erasures, ask.clone()).await.0,
            403
        );
        for bad in [
            json!({"identifier": "ann@example.com"}),
            json!({"identifier": "email:not-an-email"}),
            json!({"identifier": "email:ann@example.com", "mode": "keep"}),
            json!({"who": "email:ann@example.com"}),
        ] {
            let (status, body) = post_json(&server, &privacy, erasures, bad.clone()).await;
            assert_eq!(status, 400, "{name}: {bad} answered {body}");
            assert_eq!(body["error"]["code"], "bad_request", "{name}: {body}");
        }
        assert_eq!(
            get_json(&server, &privacy, export_path).await["found"],
            true,
            "{name}"
        );

        // The erasure, by email in another case.
        let (status, receipt) = post_json(&server, &privacy, erasures, ask.clone()).await;
        assert_eq!(status, 201, "{name}: {receipt}");
        assert_eq!(receipt["status"], "completed", "{name}: {receipt:#}");
        assert_eq!(receipt["outcome"], "erased", "{name}: {receipt:#}");
        assert_eq!(receipt["removed"]["events"], 5, "{name}: {receipt:#}");
        assert_eq!(receipt["counts"]["events"], 5, "{name}: {receipt:#}");
        assert!(
            receipt["counts"]["profile_identifiers"].as_u64().unwrap() >= 4,
            "{name}: {receipt:#}"
        );
        assert!(
            receipt["counts"]["audience_members"].as_u64().unwrap() >= 1,
            "{name}: {receipt:#}"
        );
        assert_eq!(
            receipt["actor"],
            format!("token:{privacy_id}"),
            "{name}: {receipt:#}"
        );
        let id = receipt["id"].as_str().unwrap().to_owned();
        let secret = privacy_secret(&backend).await;
        assert!(verify(&secret, &receipt), "{name}: {receipt:#}");
        let mut forged = receipt.clone();
        forged["removed"]["events"] = json!(4);
        assert!(!verify(&secret, &forged), "{name}");
        // The command line checks it too.
        let temp = common::temp_dir("receipt");
        let (good, bad) = (temp.path().join("good.json"), temp.path().join("bad.json"));
        std::fs::write(&good, receipt.to_string()).unwrap();
        std::fs::write(&bad, forged.to_string()).unwrap();
        let checked = run(
            &backend,
            &["privacy", "verify-receipt", good.to_str().unwrap()],
        );
        assert!(
            checked.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let checked = run(
            &backend,
            &["privacy", "verify-receipt", bad.to_str().unwrap()],
        );
        assert!(!checked.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&checked.stderr).contains("does not match"),
            "{name}"
        );
        // Stored: read again by id and in the list; refused to the analyst.
        let again = get_json(&server, &privacy, &format!("{erasures}/{id}")).await;
        assert_eq!(again, receipt, "{name}");
        let listed = get_json(&server, &privacy, erasures).await;
        assert_eq!(listed["erasures"][0], receipt, "{name}: {listed}");
        let refused = get(&server, Some(&analyst), &format!("{erasures}/{id}")).await;
        assert_eq!(refused.status(), 403, "{name}");
        let missing = get(&server, Some(&privacy), &format!("{erasures}/er_nothing")).await;
        assert_eq!(missing.status(), 404, "{name}");

        // The webhook that received her data got a signed deletion request, with every
        // identifier she held; the receipt records its answer.
        let requests: Vec<Received> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body["type"] == "deletion_request")
            .cloned()
            .collect();
        assert_eq!(requests.len(), 1, "{name}");
        let request = &requests[0];
        assert!(
            sightline_activate::signature::verify(&hook_secret, &request.signature, &request.raw)
                .is_some(),
            "{name}: the deletion request is not signed"
        );
        assert_eq!(request.body["erasure_id"], id, "{name}");
        let named: Vec<String> = request.body["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}:{}",
                    i["type"].as_str().unwrap(),
                    i["value"].as_str().unwrap()
                )
            })
            .collect();
        for expected in [
            "email:ann@example.com",
            "user_id:ann-uid-42",
            "anonymous_id:ann-laptop",
            "anonymous_id:ann-phone",
            "crm_id:crm-ann-9931",
        ] {
            assert!(named.iter().any(|n| n == expected), "{name}: {named:?}");
        }
        assert_eq!(
            receipt["destinations_notified"],
            json!([{"status": "accepted", "code": 200, "destination": "hook", "attempts": 1}]),
            "{name}: {receipt:#}"
        );

        // Gone: from lookups, the audience, the log and every table.
        assert_no_profile(
            &server,
            &creds.token,
            name,
            &[
                "email:ann@example.com",
                "anonymous_id:ann-phone",
                "anonymous_id:ann-laptop",
                "user_id:ann-uid-42",
            ],
        )
        .await;
        let members = get_json(&server, &creds.token, members_path).await;
        assert_eq!(members["count"], 1, "{name}: {members}");
        let events = all_events(&server, &creds.token).await;
        assert_eq!(events.len(), 2, "{name}: {events:#?}");
        assert!(
            found_in(serde_json::to_string(&events).unwrap().as_bytes()).is_empty(),
            "{name}: {events:#?}"
        );
        let hits = search_tables(&backend).await;
        assert!(hits.is_empty(), "{name}: Ann is still in {hits:#?}");
        if let Backend::Sqlite(dir) = &backend {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    let found = found_in(&std::fs::read(&path).unwrap());
                    assert!(found.is_empty(), "{name}: {found:?} in {}", path.display());
                }
            }
        }

        // Suppressed: a later event with her email is dropped (and counted), another kept.
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId": "ann-tablet", "traits": {"email": "ANN@example.com"}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId": "carol", "event": "Signed Up"}),
        )
        .await;
        let events = all_events(&server, &creds.token).await;
        assert_eq!(events.len(), 3, "{name}: {events:#?}");
        assert!(events.iter().any(|e| e["userId"] == "carol"), "{name}");
        assert!(
            !serde_json::to_string(&events)
                .unwrap()
                .contains("ann-tablet"),
            "{name}: {events:#?}"
        );
        let metrics = common::metrics(&server).await;
        assert!(
            metrics.contains("sightline_events_suppressed_total{outcome=\"dropped\"} 1"),
            "{name}: {metrics}"
        );

        // Bob is as he was: his profile, his events, his membership.
        let bob_after = profile_of(&server, &creds.token, "email:bob@example.org").await;
        assert_eq!(bob_after, bob_before, "{name}");
        let bob_now = get_json(
            &server,
            &privacy,
            "/api/v1/privacy/subjects/email:bob@example.org",
        )
        .await;
        assert_eq!(bob_now["events"], bob_export["events"], "{name}");
        assert_eq!(bob_now["audiences"], json!(["buyers"]), "{name}");

        // Again: a no-op with its own receipt. Someone never seen: nothing found (the CLI).
        let (status, second) = post_json(&server, &privacy, erasures, ask.clone()).await;
        assert_eq!(status, 201, "{name}: {second}");
        assert_eq!(second["outcome"], "already erased", "{name}: {second:#}");
        assert_ne!(second["id"], receipt["id"], "{name}");
        assert_eq!(second["removed"]["events"], 0, "{name}: {second:#}");
        assert_eq!(
            second["destinations_notified"],
            json!([]),
            "{name}: {second:#}"
        );
        assert!(verify(&secret, &second), "{name}");
        let nobody = run_json(
            &backend,
            &[
                "privacy",
                "erase",
                "email:nobody@example.net",
                "--token",
                &privacy,
            ],
        );
        assert_eq!(nobody["outcome"], "nothing found", "{name}: {nobody:#}");
        assert!(verify(&secret, &nobody), "{name}");
        let refused = run(
            &backend,
            &[
                "privacy",
                "erase",
                "email:bob@example.org",
                "--token",
                &analyst,
            ],
        );
        assert!(!refused.status.success(), "{name}");

        // Carol asks with `strip`: her later events are kept without her user id.
        let (status, carol) = post_json(
            &server,
            &privacy,
            erasures,
            json!({"identifier": "user_id:carol", "mode": "strip"}),
        )
        .await;
        assert_eq!(status, 201, "{name}: {carol}");
        assert_eq!(carol["outcome"], "erased", "{name}: {carol:#}");
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId": "carol", "anonymousId": "carol-tab", "event": "Came Back"}),
        )
        .await;
        let events = all_events(&server, &creds.token).await;
        let back: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "Came Back")
            .collect();
        assert_eq!(back.len(), 1, "{name}: {events:#?}");
        assert!(back[0].get("userId").is_none(), "{name}: {:#}", back[0]);
        assert_eq!(back[0]["anonymousId"], "carol-tab", "{name}");
        assert!(!events.iter().any(|e| e["userId"] == "carol"), "{name}");
        let metrics = common::metrics(&server).await;
        assert!(
            metrics.contains("sightline_events_suppressed_total{outcome=\"stripped\"} 1"),
            "{name}: {metrics}"
        );

        // Dave is erased from the command line while the server runs: within a moment its
        // collector drops his events too.
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"userId": "dave", "traits": {"email": "dave@example.net"}}),
        )
        .await;
        let listed = |metrics: &str| -> Option<u64> {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix("sightline_suppressed_identifiers "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|v| v as u64)
        };
        let before = listed(&common::metrics(&server).await).unwrap_or(0);
        until(&format!("{name}: Dave's profile stored"), || async {
            let answer = get(&server, Some(&creds.token), "/api/v1/profiles/user_id:dave").await;
            (answer.status() == 200, Value::Null)
        })
        .await;
        let dave = run_json(
            &backend,
            &[
                "privacy",
                "erase",
                "email:dave@example.net",
                "--token",
                &privacy,
            ],
        );
        assert_eq!(dave["outcome"], "erased", "{name}: {dave:#}");
        until(
            &format!("{name}: the server took Dave's erasure in"),
            || async {
                let now = listed(&common::metrics(&server).await).unwrap_or(0);
                (now >= before + 2, json!(now))
            },
        )
        .await;
        let count = all_events(&server, &creds.token).await.len();
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId": "dave", "event": "Came Back"}),
        )
        .await;
        assert_eq!(
            all_events(&server, &creds.token).await.len(),
            count,
            "{name}"
        );
        let answer = get(&server, Some(&creds.token), "/api/v1/profiles/user_id:dave").await;
        assert_eq!(answer.status(), 404, "{name}");

        // The audit log: each erasure, by its id, without the identifier in clear.
        let audit = get_json(&server, &privacy, "/api/v1/audit?limit=1000").await;
        let entries: Vec<&Value> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "privacy.erase")
            .collect();
        assert_eq!(entries.len(), 5, "{name}: {entries:#?}");
        assert!(
            entries
                .iter()
                .any(|e| e["target"] == format!("erasure:{id}")),
            "{name}: {entries:#?}"
        );
        for entry in &entries {
            assert!(
                found_in(entry.to_string().as_bytes()).is_empty(),
                "{name}: {entry}"
            );
        }
        let verified = run(&backend, &["audit", "verify"]);
        assert!(verified.status.success(), "{name}");
    }
}

/// An erasure asked for right after a burst of events, before the profiles have taken them
/// in: it waits for them, so that the person's latest events are erased with the rest and
/// nothing of theirs is left for the profiles to apply afterwards (which would make them a
/// profile again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_right_after_a_burst_erases_the_latest_events_too() {
    for backend in backends("erasure_burst").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let privacy = run_json(
            &backend,
            &["token", "create", "--role", "privacy", "--name", "dpo"],
        );
        let privacy = privacy["token"].as_str().unwrap().to_owned();
        let server = Server::start(&backend, &[]);
        let key = creds.write_key.as_str();

        // Others' events first, then hers: the profiles take them in in that order.
        for round in 0..8 {
            let batch: Vec<Value> = (0..500)
                .map(|i| json!({"type": "page", "anonymousId": format!("other-{round}-{i}"), "name": "Home"}))
                .collect();
            send_ok(&server, key, "/v1/batch", json!({"batch": batch})).await;
        }
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId": "eve-laptop", "userId": "eve-uid-7",
                   "traits": {"email": "eve@example.com", "nickname": "Numbat-Quimper"}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId": "eve-uid-7", "event": "Order Completed"}),
        )
        .await;

        let ask = json!({"identifier": "email:eve@example.com"});
        let (status, receipt) = post_json(&server, &privacy, "/api/v1/privacy/erasures", ask).await;
        assert_eq!(status, 201, "{name}: {receipt}");
        assert_eq!(receipt["outcome"], "erased", "{name}: {receipt:#}");
        assert_eq!(receipt["counts"]["events"], 2, "{name}: {receipt:#}");

        // Once the profiles are past every event, she is in none of them, nor in the log.
        until(&format!("{name}: the others' profiles stored"), || async {
            let last = get(
                &server,
                Some(&creds.token),
                "/api/v1/profiles/anonymous_id:other-7-499",
            )
            .await;
            (last.status() == 200, Value::Null)
        })
        .await;
        assert_no_profile(
            &server,
            &creds.token,
            name,
            &[
                "email:eve@example.com",
                "user_id:eve-uid-7",
                "anonymous_id:eve-laptop",
            ],
        )
        .await;
        let events = serde_json::to_string(&all_events(&server, &creds.token).await).unwrap();
        for needle in [
            "eve@example.com",
            "eve-uid-7",
            "eve-laptop",
            "Numbat-Quimper",
        ] {
            assert!(
                !events.contains(needle),
                "{name}: the log still holds {needle}"
            );
        }
    }
}
