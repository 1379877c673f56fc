//! The headline end-to-end test of audiences: a suppression list ("bought in the last 30
//! days") synced to an ad-platform-like local receiver. The purchase's add arrives as it
//! happens; the remove arrives when the purchase leaves the window, with no new event.

mod common;

#[path = "../../activate/tests/fakes/mod.rs"]
mod fakes;

use axum::extract::State;
use axum::routing::post;
use common::{backends, client, credentials, sightline_json, Server};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// A receiver that records every JSON body it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    async fn record(
        State(got): State<Arc<Mutex<Vec<Value>>>>,
        body: axum::body::Bytes,
    ) -> &'static str {
        if let Ok(value) = serde_json::from_slice(&body) {
            got.lock().unwrap().push(value);
        }
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

/// The audience messages among what the receiver got (it also gets the events themselves).
fn audience_changes(got: &Mutex<Vec<Value>>) -> Vec<(String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|body| body["audience"] == "recent-buyers")
        .flat_map(|body| body["changes"].as_array().cloned().unwrap_or_default())
        .map(|change| {
            let user = change["identifiers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["type"] == "user_id")
                .map(|i| i["value"].as_str().unwrap().to_string())
                .unwrap_or_default();
            (change["action"].as_str().unwrap().to_string(), user)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_list_adds_and_removes_reach_the_ad_platform() {
    for backend in backends("audience_sync").await {
        let (url, got) = receiver().await;
        let creds = credentials(&backend, "web");
        sightline_json(
            &backend,
            &[
                "destination",
                "add",
                "ads",
                "--type",
                "webhook",
                "--url",
                &url,
                "--purposes",
                "advertising",
            ],
        );
        // A second ad platform asks for hashed identifiers only (its transform hashes).
        let (hashed_url, hashed_got) = receiver().await;
        let temp = common::temp_dir("sync-transform");
        let transform = temp.path().join("sync-transform.toml");
        std::fs::write(&transform, "hash = [\"*.email\"]\n").unwrap();
        sightline_json(
            &backend,
            &[
                "destination",
                "add",
                "ads-hashed",
                "--url",
                &hashed_url,
                "--purposes",
                "advertising",
                "--transform",
                transform.to_str().unwrap(),
            ],
        );
        sightline_json(
            &backend,
            &[
                "audience",
                "add",
                "recent-buyers",
                "--rule",
                r#"event "Order Completed" count >= 1 within 30d"#,
                "--sync",
                "ads",
                "--sync",
                "ads-hashed",
            ],
        );
        let server = Server::start(&backend, &[]);
        let day = 86_400_000;
        let now = sightline_core::time::now_ms();
        let order = |user: &str, advertising: bool, at: i64| {
            json!({"userId": user, "event": "Order Completed",
                   "timestamp": sightline_core::time::format_ms(at),
                   "context": {"consent": {"categoryPreferences": {"Advertising": advertising}},
                               "traits": {"email": format!("{user}@example.com")}}})
        };
        // Ann bought and allows advertising: added, then removed once 30 days have passed
        // since her purchase (8 s from now). Dan bought but refused advertising: never sent.
        for body in [
            order("ann", true, now - 30 * day + 8_000),
            order("dan", false, now - day),
        ] {
            let response = client()
                .post(format!("{}/v1/track", server.url))
                .basic_auth(&creds.write_key, Some(""))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
        let mut changes = Vec::new();
        for _ in 0..1500 {
            changes = audience_changes(&got);
            if changes.len() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            changes,
            [
                ("add".to_string(), "ann".to_string()),
                ("remove".to_string(), "ann".to_string())
            ],
            "{}",
            backend.name()
        );
        let message = got
            .lock()
            .unwrap()
            .iter()
            .find(|b| b["audience"] == "recent-buyers")
            .cloned()
            .unwrap();
        let email = message["changes"][0]["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "email")
            .cloned()
            .unwrap();
        assert_eq!(
            email["sha256"].as_str().unwrap().len(),
            64,
            "hashed for ad-platform matching"
        );
        assert_eq!(email["value"], "ann@example.com");
        let mut hashed = None;
        for _ in 0..500 {
            hashed = hashed_got
                .lock()
                .unwrap()
                .iter()
                .find(|b| b["audience"] == "recent-buyers" && b.get("changes").is_some())
                .cloned();
            if hashed.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let hashed = hashed.expect("the hashed-only destination got the add");
        let email = hashed["changes"][0]["identifiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "email")
            .cloned()
            .unwrap();
        assert_eq!(
            email["sha256"],
            message["changes"][0]["identifiers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["type"] == "email")
                .unwrap()["sha256"]
        );
        assert!(email.get("value").is_none(), "{}: {hashed}", backend.name());
        // Once everything is sent, each pair's lag reads 0 in /metrics.
        let caught_up = |text: &str| {
            text.lines().any(|line| {
                line.starts_with("sightline_audience_sync_lag_seconds{")
                    && line.contains(r#"destination="ads""#)
                    && line.contains(r#"audience="recent-buyers""#)
                    && line.ends_with(" 0")
            })
        };
        let mut text = String::new();
        for _ in 0..500 {
            text = common::metrics(&server).await;
            if caught_up(&text) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(caught_up(&text), "{}: {text}", backend.name());
        drop(server);
    }
}

/// The user ids among one audience's sync messages: snapshot members and changes alike.
fn users_sent(got: &Mutex<Vec<Value>>, audience: &str) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|body| body["audience"] == audience)
        .flat_map(|body| {
            let mut entries = body["members"].as_array().cloned().unwrap_or_default();
            entries.extend(body["changes"].as_array().cloned().unwrap_or_default());
            entries
        })
        .filter_map(|entry| {
            entry["identifiers"]
                .as_array()?
                .iter()
                .find(|i| i["type"] == "user_id")
                .map(|i| i["value"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Waits (bounded) until `done` holds of what the receiver got.
async fn until(got: &Mutex<Vec<Value>>, done: impl Fn(&[Value]) -> bool) {
    for _ in 0..1500 {
        if done(&got.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the receiver never got it: {:?}", got.lock().unwrap());
}

/// A sync added to an audience that already has members sends them once as a snapshot —
/// only those whose consent grants the destination's purposes, exactly as live adds — and
/// a restart sends nobody again: the pair goes on from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_sends_only_consenting_members_once_even_across_a_restart() {
    for backend in backends("audience_sync_snapshot").await {
        let (url, got) = receiver().await;
        let creds = credentials(&backend, "web");
        sightline_json(
            &backend,
            &[
                "destination",
                "add",
                "ads",
                "--url",
                &url,
                "--purposes",
                "advertising",
                "--types",
                "identify",
            ],
        );
        let server = Server::start(&backend, &[]);
        let order = |user: &str, advertising: bool| {
            json!({"userId": user, "event": "Order Completed",
                   "context": {"consent": {"categoryPreferences": {"Advertising": advertising}}}})
        };
        for body in [order("ann", true), order("dan", false)] {
            common::send_ok(&server, &creds.write_key, "/v1/track", body).await;
        }
        for _ in 0..1500 {
            let dan =
                common::get(&server, Some(&creds.token), "/api/v1/profiles/user_id:dan").await;
            if dan.status() == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The audience and its sync come after the purchases: both buyers are members.
        let added = client()
            .post(format!("{}/api/v1/audiences", server.url))
            .bearer_auth(&creds.token)
            .json(
                &json!({"name": "buyers", "rule": r#"event "Order Completed" count >= 1"#,
                          "sync": ["ads"]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 201, "{}", backend.name());
        until(&got, |bodies| {
            bodies
                .iter()
                .any(|b| b["audience"] == "buyers" && b["snapshot"] == true)
        })
        .await;
        let members =
            common::get_json(&server, &creds.token, "/api/v1/audiences/buyers/members").await;
        assert_eq!(members["count"], 2, "{}: {members}", backend.name());
        assert_eq!(
            users_sent(&got, "buyers"),
            ["ann"],
            "{}: dan refused advertising",
            backend.name()
        );

        // After a restart, a new buyer arrives as a change; nobody is sent again. A clean
        // stop: SIGKILL right after the receiver got the snapshot may come before the pair's
        // checkpoint is stored, and then the snapshot is sent again (at least once).
        assert!(server.terminate().success(), "{}", backend.name());
        let server = Server::start(&backend, &[]);
        common::send_ok(&server, &creds.write_key, "/v1/track", order("eve", true)).await;
        until(&got, |bodies| {
            bodies
                .iter()
                .any(|b| b["audience"] == "buyers" && b["changes"].is_array())
        })
        .await;
        assert_eq!(
            users_sent(&got, "buyers"),
            ["ann", "eve"],
            "{}",
            backend.name()
        );
        let snapshots = got
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["audience"] == "buyers" && b["snapshot"] == true)
            .count();
        assert_eq!(snapshots, 1, "{}", backend.name());
        drop(server);
    }
}

/// `sightline ARGS --json` with a vendor credential in the environment; must succeed.
fn with_credential(backend: &common::Backend, args: &[&str], credential: &str) -> Value {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    all.extend([
        "--credential-env".into(),
        "SL_VENDOR_CREDENTIAL".into(),
        "--json".into(),
    ]);
    let output = std::process::Command::new(common::BIN)
        .args(&all)
        .env("SL_VENDOR_CREDENTIAL", credential)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The same suppression list synced to Meta custom audiences and to Google Ads Customer
/// Match, each through its local fake (which checks every request against the documented
/// schema and applies adds and removes to the list): members arrive hashed by the
/// platform's rules, leave when they leave the audience, a throttled request is retried,
/// and a member without advertising consent is never sent. An audience cannot be synced to
/// a vendor destination that maps no list for it, and the error says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_platform_audiences_get_hashed_adds_and_removes() {
    for backend in backends("audience_sync_vendors").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let meta = fakes::Fake::start(fakes::Kind::Meta, "EAA-token").await;
        let google = fakes::Fake::start(fakes::Kind::GoogleAds, "dev:ya29").await;
        // Meta's first audience request is throttled (Graph error 17): retried.
        meta.script([fakes::Scripted::RateLimited]);
        with_credential(
            &backend,
            &[
                "destination",
                "add",
                "meta",
                "--type",
                "meta",
                "--url",
                &meta.url,
                "--setting",
                "pixel_id=1234567890",
            ],
            "EAA-token",
        );
        with_credential(
            &backend,
            &[
                "destination",
                "add",
                "google",
                "--type",
                "google_ads",
                "--url",
                &google.url,
                "--setting",
                "customer_id=1234567890",
                // Audiences only: no conversion action, so its events are skipped.
                "--setting",
                "audience.recent-buyers=777",
            ],
            "dev:ya29",
        );
        let audience = [
            "audience",
            "add",
            "recent-buyers",
            "--rule",
            r#"event "Order Completed" count >= 1 within 30d"#,
            "--sync",
            "meta",
            "--sync",
            "google",
        ];
        let mut refused: Vec<String> = audience.iter().map(|s| s.to_string()).collect();
        refused.extend(backend.args());
        let refused = std::process::Command::new(common::BIN)
            .args(&refused)
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("no Meta custom audience id for audience")
                && stderr.contains("--setting audience.recent-buyers=<id>"),
            "{name}: {stderr}"
        );
        let mut change: Vec<String> = [
            "destination",
            "change",
            "meta",
            "--setting",
            "audience.recent-buyers=2384",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        change.extend(backend.args());
        let changed = std::process::Command::new(common::BIN)
            .args(&change)
            .output()
            .unwrap();
        assert!(
            changed.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&changed.stderr)
        );
        let settings = sightline_json(&backend, &["destination", "list"]).to_string();
        assert!(
            settings.contains("1234567890"),
            "{name}: the pixel is kept: {settings}"
        );
        sightline_json(&backend, &audience);

        let server = Server::start(&backend, &[]);
        let day = 86_400_000;
        let now = sightline_core::time::now_ms();
        let order = |user: &str, advertising: bool, at: i64| {
            json!({"userId": user, "event": "Order Completed",
                   "timestamp": sightline_core::time::format_ms(at),
                   "context": {"consent": {"categoryPreferences": {"Advertising": advertising}},
                               "traits": {"email": format!(" {}@Example.com", user.to_uppercase()),
                                          "phone": "+1 (415) 555-0100"}}})
        };
        // Ann leaves the window 8 s from now; Eve stays; Dan refused advertising.
        for body in [
            order("ann", true, now - 30 * day + 8_000),
            order("eve", true, now - day),
            order("dan", false, now - day),
        ] {
            common::send_ok(&server, &creds.write_key, "/v1/track", body).await;
        }
        let hash = |user: &str| hex::encode(Sha256::digest(format!("{user}@example.com")));
        let (ann, eve, dan) = (hash("ann"), hash("eve"), hash("dan"));
        let removed_ann = |fake: &fakes::Fake, list: &str| {
            fake.list(list) == [eve.clone()]
                && fake
                    .seen()
                    .iter()
                    .any(|s| s.body.to_string().contains(&ann))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !(removed_ann(&meta, "2384") && removed_ann(&google, "777")) {
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: meta {:?}, google {:?}, seen {:?}",
                meta.list("2384"),
                google.list("777"),
                meta.seen()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(meta.problems().is_empty(), "{name}: {:?}", meta.problems());
        assert!(
            google.problems().is_empty(),
            "{name}: {:?}",
            google.problems()
        );
        let sent: Vec<fakes::Seen> = meta
            .seen()
            .into_iter()
            .chain(google.seen())
            .filter(|s| s.path.contains("/users") || s.path.contains("offlineUserDataJobs"))
            .collect();
        let all = format!("{sent:?}");
        assert!(
            !all.contains(&dan),
            "{name}: dan refused advertising: {all}"
        );
        assert!(
            !all.contains("example.com"),
            "{name}: nothing in clear: {all}"
        );
        // Meta: the throttled add retried, then Ann removed with a DELETE; phones hashed
        // as digits with the country code.
        let meta_calls: Vec<(String, String)> = sent
            .iter()
            .filter(|s| s.path.ends_with("/users"))
            .map(|s| (s.method.clone(), s.status.to_string()))
            .collect();
        assert_eq!(
            meta_calls.first(),
            Some(&("POST".into(), "400".into())),
            "{name}: {meta_calls:?}"
        );
        assert!(
            meta_calls.contains(&("DELETE".into(), "200".into())),
            "{name}: {meta_calls:?}"
        );
        let phone = hex::encode(Sha256::digest("14155550100"));
        assert!(all.contains(&phone), "{name}: {all}");
        // Google: each change a job created, given its operations, run; adds with consent.
        let verbs: Vec<&str> = sent
            .iter()
            .filter_map(|s| s.path.rsplit(':').next())
            .filter(|v| ["create", "addOperations", "run"].contains(v))
            .collect();
        assert!(
            verbs.len() >= 6 && verbs.len().is_multiple_of(3),
            "{name}: {verbs:?}"
        );
        assert!(
            verbs
                .chunks(3)
                .all(|c| c == ["create", "addOperations", "run"]),
            "{name}: {verbs:?}"
        );
        assert!(all.contains("adPersonalization"), "{name}: {all}");
        // The lineage shows what the sync sends each platform.
        let mut args: Vec<String> = ["lineage", "--format", "openlineage"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(backend.args());
        let lineage = std::process::Command::new(common::BIN)
            .args(&args)
            .output()
            .unwrap();
        let lineage = String::from_utf8_lossy(&lineage.stdout);
        for (destination, field) in [
            (
                "destination:google",
                "audience recent-buyers: userIdentifiers.hashedEmail",
            ),
            (
                "destination:meta",
                "audience recent-buyers: users.payload.data.PHONE",
            ),
        ] {
            assert!(
                lineage
                    .lines()
                    .any(|l| l.contains(&format!("\"{destination}\"")) && l.contains(field)),
                "{name}: {field} into {destination} in {lineage}"
            );
        }
        drop(server);
    }
}
