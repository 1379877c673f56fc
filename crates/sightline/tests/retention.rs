//! Retention end to end on both backends: a source whose events expire after two seconds
//! beside one kept forever. The server's sweep removes the expired events and the profile
//! left without events, keeps the person who also has events of the other source (without
//! the expired ones in their timeline), and records it in the audit log; `sightline privacy
//! retention` does the same from the command line.

mod common;

use common::{backends, credentials, get, get_json, send_ok, sightline, temp_dir, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `age` has passed since `since` (the events' ages are the server's clock).
async fn age_past(since: Instant, age: Duration) {
    while since.elapsed() <= age {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn message_ids(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| e["messageId"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_events_and_the_profiles_they_alone_made_are_removed() {
    for backend in backends("retention").await {
        let name = backend.name();
        let web = credentials(&backend, "web");
        let crm = credentials(&backend, "crm");
        let dir = temp_dir("retention-config");
        let config = dir.path().join("sightline.toml");
        std::fs::write(
            &config,
            "[retention]\nsources = { web = \"2s\", crm = \"forever\" }\nevery = \"1s\"\n",
        )
        .unwrap();
        let config = config.to_str().unwrap();
        let server = Server::start(&backend, &["--config", config]);

        let sent = Instant::now();
        for (key, body) in [
            (
                &web.write_key,
                json!({"userId":"gone","event":"Viewed","messageId":"w1"}),
            ),
            (
                &web.write_key,
                json!({"userId":"kept","event":"Viewed","messageId":"w2"}),
            ),
            (
                &crm.write_key,
                json!({"userId":"kept","event":"Signed","messageId":"c1"}),
            ),
        ] {
            send_ok(&server, key, "/v1/track", body).await;
        }
        age_past(sent, Duration::from_secs(2)).await;
        // w1 and w2 were received a moment apart, so a sweep may take them one at a time.
        wait_for("the sweep", async || {
            let events = get_json(&server, &web.token, "/api/v1/events?limit=100").await;
            message_ids(events["events"].as_array().unwrap()) == ["c1"]
        })
        .await;
        let gone = get(&server, Some(&web.token), "/api/v1/profiles/user_id:gone").await;
        assert_eq!(gone.status(), 404, "{name}");
        let kept = get_json(
            &server,
            &web.token,
            "/api/v1/profiles/user_id:kept/events?limit=100",
        )
        .await;
        let timeline: Vec<&str> = kept["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["messageId"].as_str())
            .collect();
        assert_eq!(timeline, ["c1"], "{name}: {kept}");
        let audit = get_json(&server, &web.token, "/api/v1/audit?limit=1000").await;
        let sweeps: Vec<Value> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "privacy.retention")
            .map(|e| {
                assert_eq!(e["actor"], "retention", "{name}: {e}");
                serde_json::from_str(e["after"].as_str().unwrap()).unwrap()
            })
            .collect();
        assert!(!sweeps.is_empty(), "{name}: no retention entry in {audit}");
        let total = |field: &dyn Fn(&Value) -> &Value| -> u64 {
            sweeps.iter().map(|s| field(s).as_u64().unwrap_or(0)).sum()
        };
        assert_eq!(total(&|s| &s["events"]), 2, "{name}: {sweeps:?}");
        assert_eq!(total(&|s| &s["profiles"]), 1, "{name}: {sweeps:?}");
        // w1's entry went with the profile "gone"; w2's from "kept", which stays.
        let profile_events = total(&|s| &s["counts"]["profile_events"]);
        assert_eq!(profile_events, 2, "{name}: {sweeps:?}");

        // From the command line, with the server stopped.
        send_ok(
            &server,
            &web.write_key,
            "/v1/track",
            json!({"userId":"later","event":"Viewed","messageId":"w3"}),
        )
        .await;
        wait_for("the profile", async || {
            get(&server, Some(&web.token), "/api/v1/profiles/user_id:later")
                .await
                .status()
                == 200
        })
        .await;
        let stopped = Instant::now();
        assert!(server.terminate().success(), "{name}");
        age_past(stopped, Duration::from_secs(2)).await;
        let mut args = vec!["privacy", "retention", "--json", "--config", config];
        let store_args = backend.args();
        args.extend(store_args.iter().map(String::as_str));
        let output = sightline(&args);
        assert!(output.status.success(), "{name}: {output:?}");
        let swept: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(swept["events"], 1, "{name}: {swept}");
        assert_eq!(swept["profiles"], 1, "{name}: {swept}");

        // A retention rule naming a source that does not exist stops the start.
        std::fs::write(
            dir.path().join("bad.toml"),
            "[retention]\nsources = { nowhere = \"1d\" }\n",
        )
        .unwrap();
        let bad = dir.path().join("bad.toml");
        let mut args = vec!["privacy", "retention", "--config", bad.to_str().unwrap()];
        args.extend(store_args.iter().map(String::as_str));
        let refused = sightline(&args);
        assert!(!refused.status.success(), "{name}");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains("names source \"nowhere\""), "{name}: {said}");
    }
}
