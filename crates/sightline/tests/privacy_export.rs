//! Subject access export end to end on both backends: a person who used two devices, was
//! identified, changed their consent, entered an audience synced to a webhook, had events
//! delivered to it and a CRM row imported; their export through the API (by email and by an
//! anonymous id), as an HTML page and through `sightline privacy export`, holds all of it
//! and nothing of another person; the analyst role is refused; each export is in the audit
//! log without the identifier in clear.

mod common;

use axum::extract::State;
use axum::routing::post;
use common::{backends, credentials, get, get_json, send_ok, sightline, Backend, Server};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A webhook receiver that records every JSON body it is sent.
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

/// The sequence numbers of an export's events.
fn seqs(export: &Value) -> Vec<i64> {
    export["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

/// Whether the export holds everything the scenario made: polled, since profiles,
/// deliveries and audience history follow the log shortly after the acknowledgement.
fn complete(export: &Value) -> bool {
    // Each of her five events (the CRM row's too: her ledger grants analytics) delivered.
    let delivered = export["deliveries"]
        .as_array()
        .is_some_and(|d| d.len() == 5 && d.iter().all(|d| d["status"] == "delivered"));
    let synced = export["audience_syncs"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["passed"] == true));
    export["found"] == true
        && export["crm_rows"].as_array().is_some_and(|r| r.len() == 1)
        && export["audiences"] == json!(["buyers"])
        && delivered
        && synced
        && export["identifiers"].as_array().is_some_and(|ids| {
            ["anonymous_id", "user_id", "email", "crm_id"]
                .iter()
                .all(|t| ids.iter().any(|i| i["type"] == *t))
        })
        && export["identifiers"]
            .as_array()
            .is_some_and(|ids| ids.iter().filter(|i| i["type"] == "anonymous_id").count() == 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_access_export_holds_the_person_and_no_one_else() {
    for backend in backends("privacy_export").await {
        let name = backend.name();
        let (url, got) = receiver().await;
        let creds = credentials(&backend, "web");
        run_json(
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

        // Ann: a laptop and a phone (two anonymous ids), identified on both, her consent
        // stated and changed; a trait that is markup, for the page to escape.
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
            json!({"anonymousId": "ann-laptop", "userId": "ann",
                   "traits": {"email": "Ann@Example.com", "nickname": "<script>alert('ann')</script>"},
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
            json!({"anonymousId": "ann-phone", "userId": "ann",
                   "context": {"consent": consent(true, true)}}),
        )
        .await;
        // Bob, another person, on the same site, the same audience and destination.
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
        // A CRM export with a row for each of them.
        let rows = "id,mail,tier\nc1,ann@example.com,gold\nc2,bob@example.org,silver\n";
        common::import_crm(&server, &creds.token, rows).await;

        // The export by email, once the profiles, deliveries and sync have followed.
        let path = "/api/v1/privacy/subjects/email:ANN@example.com";
        let mut export = Value::Null;
        for _ in 0..1500 {
            export = get_json(&server, &privacy, path).await;
            if complete(&export) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(complete(&export), "{name}: {export:#}");
        assert!(
            !got.lock().unwrap().is_empty(),
            "{name}: the webhook got nothing"
        );
        let profile = export["profile"]["id"].as_i64().unwrap();
        assert_eq!(export["subject"], "email:ann@example.com", "{name}");

        // Every event: the two devices', the identifies and the CRM row (5), each theirs.
        let events = export["events"].as_array().unwrap();
        assert_eq!(events.len(), 5, "{name}: {events:#?}");
        for anon in ["ann-laptop", "ann-phone"] {
            assert!(
                events.iter().any(|e| e["anonymousId"] == anon),
                "{name}: no event of {anon}"
            );
        }
        assert!(events.iter().any(|e| e["event"] == "Order Completed"));
        assert!(events.iter().all(|e| e["source"].is_string()), "{name}");
        // Traits with their provenance; the CRM row; consent changes in the ledger.
        let traits = export["traits"].as_array().unwrap();
        let tier = traits.iter().find(|t| t["trait"] == "tier").unwrap();
        assert_eq!(tier["value"], "gold", "{name}");
        assert!(tier["seq"].is_i64() && tier["source"].is_string(), "{name}");
        let row = &export["crm_rows"][0];
        assert_eq!(row["file"], "crm.csv", "{name}: {row}");
        assert_eq!(row["line"], 2, "{name}: {row}");
        assert_eq!(row["traits"]["tier"], "gold", "{name}: {row}");
        let ledger = export["consent"]["history"].to_string();
        assert!(ledger.contains("advertising"), "{name}: {ledger}");
        assert_eq!(
            export["consent"]["state"]["advertising"]["decision"], "granted",
            "{name}: {}",
            export["consent"]
        );
        assert!(
            !export["merges"].as_array().unwrap().is_empty(),
            "{name}: no merge history"
        );
        // The audience: membership, its history, and the sync to the webhook.
        let history = export["audience_history"].as_array().unwrap();
        assert!(
            history
                .iter()
                .any(|h| h["audience"] == "buyers" && h["transition"] == "entered"),
            "{name}: {history:#?}"
        );
        let sync = export["audience_syncs"].as_array().unwrap();
        assert!(
            sync.iter().all(|s| s["destination"] == "hook"
                && s["purposes"] == json!(["analytics"])
                && s["audience"] == "buyers"),
            "{name}: {sync:#?}"
        );
        // Deliveries: to the webhook, of their events only, with the purposes.
        let ours: Vec<i64> = seqs(&export);
        for delivery in export["deliveries"].as_array().unwrap() {
            assert_eq!(delivery["destination"], "hook", "{name}");
            assert_eq!(delivery["purposes"], json!(["analytics"]), "{name}");
            assert!(delivery["at"].is_string(), "{name}");
            assert!(
                ours.contains(&delivery["seq"].as_i64().unwrap()),
                "{name}: {delivery}"
            );
        }
        // Nothing of Bob anywhere in it.
        let text = export.to_string();
        for bob in ["bob", "silver", "\"c2\"", "\"total\":7"] {
            assert!(!text.contains(bob), "{name}: Bob's {bob} in Ann's export");
        }

        // By an anonymous id: the same person, the same events.
        let by_phone = get_json(
            &server,
            &privacy,
            "/api/v1/privacy/subjects/anonymous_id:ann-phone",
        )
        .await;
        assert_eq!(by_phone["profile"]["id"], profile, "{name}");
        assert_eq!(seqs(&by_phone), seqs(&export), "{name}");
        assert_eq!(by_phone["crm_rows"], export["crm_rows"], "{name}");

        // The page: readable, every value escaped.
        let page = get(&server, Some(&privacy), &format!("{path}?format=html")).await;
        assert_eq!(page.status(), 200, "{name}");
        assert!(page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let page = page.text().await.unwrap();
        assert!(!page.contains("<script"), "{name}: unescaped markup");
        assert!(
            page.contains("&lt;script&gt;alert(&#39;ann&#39;)&lt;/script&gt;"),
            "{name}"
        );
        assert!(
            page.contains("ann-phone") && page.contains("crm.csv"),
            "{name}"
        );

        // No one holds it: an empty export, not a 404. Malformed: 400. Analyst: 403.
        let nobody = get(
            &server,
            Some(&privacy),
            "/api/v1/privacy/subjects/email:nobody@example.com",
        )
        .await;
        assert_eq!(nobody.status(), 200, "{name}");
        let nobody: Value = nobody.json().await.unwrap();
        assert_eq!(nobody["found"], false, "{name}");
        assert_eq!(nobody["events"], json!([]), "{name}");
        for bad in [
            "/api/v1/privacy/subjects/ann@example.com",
            "/api/v1/privacy/subjects/email:not-an-email",
            "/api/v1/privacy/subjects/email:ann@example.com?format=pdf",
        ] {
            let answer = get(&server, Some(&privacy), bad).await;
            assert_eq!(answer.status(), 400, "{name}: {bad}");
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["error"]["code"], "bad_request", "{name}: {body}");
        }
        assert_eq!(get(&server, Some(&analyst), path).await.status(), 403);

        // The command line writes the same export as files.
        let temp = common::temp_dir("privacy-export");
        let out = temp.path().join("ann");
        let summary = run_json(
            &backend,
            &[
                "privacy",
                "export",
                "anonymous_id:ann-laptop",
                "--out",
                out.to_str().unwrap(),
                "--token",
                &privacy,
            ],
        );
        assert_eq!(summary["profile"], profile, "{name}: {summary}");
        let written: Value =
            serde_json::from_slice(&std::fs::read(out.join("export.json")).unwrap()).unwrap();
        assert_eq!(seqs(&written), seqs(&export), "{name}");
        assert_eq!(written["deliveries"], export["deliveries"], "{name}");
        let html = std::fs::read_to_string(out.join("export.html")).unwrap();
        assert!(!html.contains("<script"), "{name}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join("export.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{name}: export readable by others");
        }
        let refused = run(
            &backend,
            &[
                "privacy",
                "export",
                "email:ann@example.com",
                "--out",
                out.to_str().unwrap(),
                "--token",
                &analyst,
            ],
        );
        assert!(!refused.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("privacy or admin"),
            "{name}: {}",
            String::from_utf8_lossy(&refused.stderr)
        );

        // The audit log: who saw whom, by profile and the identifier's digest, never the
        // identifier in clear.
        let mut entries = Vec::new();
        loop {
            let page = get_json(
                &server,
                &privacy,
                &format!("/api/v1/audit?after={}&limit=1000", entries.len()),
            )
            .await;
            let page = page["entries"].as_array().unwrap().clone();
            if page.is_empty() {
                break;
            }
            entries.extend(page);
        }
        let exports: Vec<&Value> = entries
            .iter()
            .filter(|e| e["action"] == "privacy.export")
            .collect();
        let digest = sightline_core::secret::hash("email:ann@example.com");
        let mine = exports
            .iter()
            .find(|e| e["after"].as_str().unwrap().contains(&digest))
            .unwrap_or_else(|| panic!("{name}: no export entry for Ann: {exports:#?}"));
        assert_eq!(mine["actor"], format!("token:{privacy_id}"), "{name}");
        assert_eq!(mine["role"], "privacy", "{name}");
        assert_eq!(mine["target"], format!("profile:{profile}"), "{name}");
        assert!(
            exports.iter().any(|e| e["target"] == "nobody"),
            "{name}: the empty export is not audited"
        );
        assert!(
            exports.iter().any(|e| e["after"]
                .as_str()
                .unwrap()
                .contains("\"format\":\"files\"")),
            "{name}: the command line's export is not audited"
        );
        for entry in &exports {
            let entry = entry.to_string();
            assert!(
                !entry.contains("ann@example.com") && !entry.contains("ann-phone"),
                "{name}: an identifier in clear: {entry}"
            );
        }
        let verified = run(&backend, &["audit", "verify"]);
        assert!(verified.status.success(), "{name}");
    }
}
