//! Unified profiles end to end: events in through the tracking API, profiles read back
//! through the Profile API and the command line, on both backends.

mod common;

use common::{backends, client, credentials, send_ok, sightline, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn get(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}/api/v1/profiles/{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Profiles follow the log shortly after the acknowledgement: poll, bounded.
async fn wait_for(
    server: &Server,
    token: &str,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..500 {
        let (status, body) = get(server, token, path).await;
        if status == StatusCode::OK && done(&body) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{path} never reached the expected state");
}

#[tokio::test]
async fn anonymous_history_and_merge_protection_through_the_api() {
    for backend in backends("profiles").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let key = creds.write_key.as_str();
        send_ok(
            &server,
            key,
            "/v1/page",
            json!({"anonymousId":"laptop","name":"Home"}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId":"laptop","userId":"ann",
            "traits":{"email":"Ann@Example.com","plan":"free"}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId":"ann","event":"Order Completed"}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"userId":"ann","traits":{"plan":"pro"}}),
        )
        .await;
        // Bob logs in on the same laptop: he must not become Ann.
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId":"laptop","userId":"bob",
            "traits":{"email":"bob@example.com"}}),
        )
        .await;

        let ann = wait_for(&server, &creds.token, "email:ANN@example.com", |p| {
            p["event_count"] == 4
        })
        .await;
        assert_eq!(ann["traits"]["plan"], "pro", "{}", backend.name());
        let identifiers: Vec<String> = ann["identifiers"]
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
        assert!(identifiers.contains(&"anonymous_id:laptop".to_string()));
        assert!(identifiers.contains(&"user_id:ann".to_string()));
        assert!(
            !identifiers.contains(&"user_id:bob".to_string()),
            "merge protection"
        );

        let bob = wait_for(&server, &creds.token, "user_id:bob", |_| true).await;
        assert_ne!(bob["id"], ann["id"]);

        let (_, merges) = get(&server, &creds.token, "user_id:ann/merges").await;
        let explanation = merges["explanation"].as_array().unwrap();
        assert!(
            explanation
                .iter()
                .any(|s| s.as_str().unwrap().contains("identify")),
            "{merges}"
        );
        let (_, events) = get(&server, &creds.token, "user_id:ann/events?limit=3").await;
        let names: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["identify", "track", "identify"], "newest first");
        let before = events["next_before"].as_i64().unwrap();
        let (_, older) = get(
            &server,
            &creds.token,
            &format!("user_id:ann/events?before={before}"),
        )
        .await;
        assert_eq!(
            older["events"][0]["type"], "page",
            "the anonymous page view is on Ann's timeline"
        );
        let (_, traits) = get(&server, &creds.token, "user_id:ann/traits").await;
        assert_eq!(traits["traits"]["plan"]["value"], "pro");

        assert_eq!(
            get(&server, &creds.token, "user_id:nobody").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&server, &creds.token, "no-colon").await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            get(&server, &creds.token, "user_id:ann/everything").await.0,
            StatusCode::NOT_FOUND
        );

        // The command line rebuilds the same profiles from the log.
        let store_args = backend.args();
        let mut args = vec!["profile", "explain", "email:ann@example.com"];
        args.extend(store_args.iter().map(String::as_str));
        let output = sightline(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(
            text.contains("user_id:ann") && text.contains("identify"),
            "{text}"
        );
        let mut args = vec!["profile", "show", "user_id:ann"];
        args.extend(store_args.iter().map(String::as_str));
        let shown: Value = serde_json::from_slice(&sightline(&args).stdout).unwrap();
        assert_eq!(shown["id"], ann["id"]);
        assert_eq!(shown["event_count"], 4);
    }
}

#[tokio::test]
async fn attribution_over_the_log_joins_devices() {
    for backend in backends("journeys").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let key = creds.write_key.as_str();
        // A paid search click on the phone, an email click on the laptop, a purchase on the
        // laptop; on each device the banner's answer grants analytics on the first page.
        let consented = json!({"consent":{"categoryPreferences":{"Analytics":true}}});
        send_ok(&server, key, "/v1/page", json!({"anonymousId":"phone","timestamp":"2026-03-01T10:00:00Z",
            "context": consented,
            "properties":{"url":"https://shop.test/?utm_source=google&utm_medium=cpc&utm_campaign=spring"}})).await;
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId":"phone","userId":"42","timestamp":"2026-03-01T10:01:00Z"}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/page",
            json!({"anonymousId":"laptop","timestamp":"2026-03-02T09:00:00Z","context": consented,
            "properties":{"url":"https://shop.test/sale?utm_source=newsletter&utm_medium=email"}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId":"laptop","userId":"42","timestamp":"2026-03-02T09:01:00Z"}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId":"42","event":"Order Completed","timestamp":"2026-03-02T09:05:00Z",
            "properties":{"revenue":100}}),
        )
        .await;
        // Someone who never answered the banner: counted, not measured person by person.
        send_ok(
            &server,
            key,
            "/v1/page",
            json!({"userId":"43","timestamp":"2026-03-02T10:00:00Z",
            "properties":{"url":"https://shop.test/?utm_source=google&utm_medium=cpc"}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId":"43","event":"Order Completed",
            "timestamp":"2026-03-02T10:05:00Z","properties":{"revenue":50}}),
        )
        .await;
        let api: Value = client()
            .get(format!("{}/api/v1/attribution?conversion=Order%20Completed&value_property=revenue&from=2026-03-01&model=first_touch,linear", server.url))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            api["models"]["first_touch"]["Paid Search"],
            1.0,
            "{}: {api}",
            backend.name()
        );
        assert!(
            api["models"].get("markov").is_none(),
            "only the models asked for"
        );
        assert_eq!(
            api["events_without_analytics_consent"],
            2,
            "{}: user 43's page and purchase are only counted: {api}",
            backend.name()
        );
        let missing = client()
            .get(format!("{}/api/v1/attribution", server.url))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
        drop(server);

        let store_args = backend.args();
        let mut args = vec![
            "attribution",
            "--conversion",
            "Order Completed",
            "--value-property",
            "revenue",
            "--from",
            "2026-03-01",
            "--to",
            "2026-04-01",
            "--json",
        ];
        args.extend(store_args.iter().map(String::as_str));
        let output = sightline(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        let models = &report["models"];
        assert_eq!(
            models["first_touch"]["Paid Search"],
            1.0,
            "{}: {report}",
            backend.name()
        );
        assert_eq!(models["last_touch"]["Email"], 1.0, "{}", backend.name());
        assert_eq!(models["linear_value"]["Paid Search"], 50.0);

        let mut args = vec![
            "attribution",
            "--conversion",
            "Order Completed",
            "--value-property",
            "revenue",
            "--csv",
        ];
        args.extend(store_args.iter().map(String::as_str));
        let csv = String::from_utf8(sightline(&args).stdout).unwrap();
        assert!(csv.starts_with("channel,model,credit,value\n"), "{csv}");
        assert!(csv.contains("Paid Search,first_touch,1,100\n"), "{csv}");

        let mut args = vec![
            "attribution",
            "--conversion",
            "Order Completed",
            "--model",
            "nonsense",
        ];
        args.extend(store_args.iter().map(String::as_str));
        let bad = sightline(&args);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown model"));
    }
}

#[tokio::test]
async fn audiences_follow_events_and_time() {
    for backend in backends("audiences").await {
        let creds = credentials(&backend, "web");
        let store_args = backend.args();
        let mut args = vec![
            "audience",
            "add",
            "buyers",
            "--rule",
            r#"event "Order Completed" count >= 1 within 30d"#,
            "--json",
        ];
        args.extend(store_args.iter().map(String::as_str));
        let added = sightline(&args);
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        let mut bad = vec!["audience", "add", "broken", "--rule", "event count >="];
        bad.extend(store_args.iter().map(String::as_str));
        let refused = sightline(&bad);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid rule"));

        let server = Server::start(&backend, &[]);
        let key = creds.write_key.as_str();
        // Ann bought yesterday; Bob's purchase leaves the 30-day window a few seconds from now.
        let day = 86_400_000;
        let now = sightline_core::time::now_ms();
        let at = |ms: i64| sightline_core::time::format_ms(ms);
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"userId":"ann","traits":{"email":"ann@example.com"}}),
        )
        .await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId":"ann","event":"Order Completed","timestamp":at(now - day)}),
        )
        .await;
        send_ok(&server, key, "/v1/track", json!({"userId":"bob","event":"Order Completed","timestamp":at(now - 30 * day + 8_000)})).await;
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId":"cy","event":"Product Viewed"}),
        )
        .await;

        let members = |name: &'static str| {
            let (url, token) = (server.url.clone(), creds.token.clone());
            async move {
                let response = client()
                    .get(format!("{url}/api/v1/audiences/{name}/members"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                if response.status() != StatusCode::OK {
                    return None;
                }
                let body: Value = response.json().await.unwrap();
                let ids: Vec<String> = body["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|m| m["identifiers"].as_array().unwrap().clone())
                    .filter(|i| i["type"] == "user_id")
                    .map(|i| i["value"].as_str().unwrap().to_string())
                    .collect();
                Some(ids)
            }
        };
        // Bob leaves by the clock alone, without a new event: wait for his exit.
        let history = || {
            let (url, token) = (server.url.clone(), creds.token.clone());
            async move {
                let body: Value = client()
                    .get(format!("{url}/api/v1/audiences/buyers/history"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["history"].as_array().cloned().unwrap_or_default()
            }
        };
        let mut exits = Vec::new();
        for _ in 0..1500 {
            exits = history()
                .await
                .into_iter()
                .filter(|c| c["transition"] == "exited")
                .collect();
            if !exits.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            exits.len(),
            1,
            "{}: bob's purchase left the window",
            backend.name()
        );
        assert_eq!(exits[0]["caused_by"], "timer");
        assert_eq!(
            members("buyers").await.unwrap(),
            ["ann"],
            "{}: only ann is a buyer once bob's purchase left the window",
            backend.name()
        );

        // An audience added through the API while the server runs is backfilled (after the
        // timer above: the backfill replays the log, and its records are history, not news).
        let created = client()
            .post(format!("{}/api/v1/audiences", server.url))
            .bearer_auth(&creds.token)
            .json(&json!({"name":"known","rule":"has email"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let invalid = client()
            .post(format!("{}/api/v1/audiences", server.url))
            .bearer_auth(&creds.token)
            .json(&json!({"name":"x","rule":"trait plan = "}))
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);

        let mut known = None;
        for _ in 0..500 {
            known = members("known").await;
            if known.as_ref().is_some_and(|m| !m.is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(known.unwrap(), ["ann"]);

        // Exports: a count with the JSON, NDJSON and CSV.
        let members_in = |format: &'static str| {
            let (url, token) = (server.url.clone(), creds.token.clone());
            async move {
                client()
                    .get(format!(
                        "{url}/api/v1/audiences/buyers/members?format={format}"
                    ))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        let counted: Value = serde_json::from_str(&members_in("json").await).unwrap();
        assert_eq!(counted["count"], 1, "{counted}");
        let ndjson = members_in("ndjson").await;
        let line: Value = serde_json::from_str(ndjson.trim()).unwrap();
        assert!(line["identifiers"].to_string().contains("ann"), "{ndjson}");
        let csv = members_in("csv").await;
        assert!(csv.starts_with("profile,identifiers\n"), "{csv}");
        assert!(csv.contains("user_id:ann"), "{csv}");
        assert_eq!(csv.lines().count(), 2, "{csv}");

        let mut args = vec!["audience", "members", "buyers", "--json"];
        args.extend(store_args.iter().map(String::as_str));
        let output = sightline(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            listed.as_array().unwrap().len(),
            1,
            "the CLI rebuilds the same memberships: {listed}"
        );
        let mut args = vec!["audience", "history", "buyers"];
        args.extend(store_args.iter().map(String::as_str));
        let output = sightline(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let records: Vec<Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert!(
            records
                .iter()
                .any(|r| r["transition"] == "entered" && r["caused_by"]["event"].is_number()),
            "{records:?}"
        );
    }
}

#[tokio::test]
async fn identity_rules_come_from_the_config_file() {
    for backend in backends("identity_config").await {
        let creds = credentials(&backend, "web");
        let temp = common::temp_dir("identity");
        let config = temp.path().join("identity.toml");
        std::fs::write(&config, "[identity]\nblocked_values = [\"kiosk\"]\n").unwrap();
        let config = config.to_str().unwrap().to_string();
        let server = Server::start(&backend, &["--config", &config]);
        // Two people type their email on the shop's kiosk, whose anonymous id they share.
        for email in ["a@example.com", "b@example.com"] {
            send_ok(
                &server,
                &creds.write_key,
                "/v1/identify",
                json!({"anonymousId":"kiosk","traits":{"email":email}}),
            )
            .await;
        }
        let a = wait_for(&server, &creds.token, "email:a@example.com", |_| true).await;
        let b = wait_for(&server, &creds.token, "email:b@example.com", |_| true).await;
        assert_ne!(
            a["id"],
            b["id"],
            "{}: a blocked kiosk id links nobody",
            backend.name()
        );
        drop(server);

        let store_args = backend.args();
        let show = |with_config: bool| {
            let mut args = vec!["profile", "show", "email:a@example.com"];
            if with_config {
                args.extend(["--config", config.as_str()]);
            }
            args.extend(store_args.iter().map(String::as_str));
            let output = sightline(&args);
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice::<Value>(&output.stdout).unwrap()["identifiers"]
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!(show(true), 1, "only a's email");
        assert_eq!(
            show(false),
            3,
            "with the default rules the kiosk joins both emails"
        );
    }
}

/// Runs the command line on the backend's store; returns stdout and stderr.
fn cli(backend: &common::Backend, args: &[&str]) -> (String, String) {
    let store_args = backend.args();
    let mut all = args.to_vec();
    all.extend(store_args.iter().map(String::as_str));
    let output = sightline(&all);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{all:?}: {stderr}");
    (String::from_utf8(output.stdout).unwrap(), stderr)
}

/// `profile show` from the stored profiles (not a replay): the server stores each page
/// shortly after applying it, so poll until the stored state has caught up.
fn stored_identifiers(backend: &common::Backend, args: &[&str]) -> usize {
    for _ in 0..300 {
        let (out, err) = cli(backend, args);
        if !err.contains("replay") {
            let profile: Value = serde_json::from_str(&out).unwrap();
            return profile["identifiers"].as_array().unwrap().len();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{args:?}: the stored profiles never caught up with the log");
}

#[tokio::test]
async fn profiles_are_stored_and_a_rebuild_splits_an_over_merge() {
    for backend in backends("identity_rebuild").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        for email in ["a@example.com", "b@example.com"] {
            send_ok(
                &server,
                &creds.write_key,
                "/v1/identify",
                json!({"anonymousId":"kiosk","traits":{"email":email}}),
            )
            .await;
        }
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            json!({"anonymousId":"kiosk","event":"Kiosk Closed"}),
        )
        .await;
        let joined = wait_for(&server, &creds.token, "email:a@example.com", |p| {
            p["event_count"] == 3
        })
        .await;
        let show_a = ["profile", "show", "email:a@example.com"];
        assert_eq!(
            stored_identifiers(&backend, &show_a),
            3,
            "{}: under the default rules the kiosk id joins both emails",
            backend.name()
        );
        let (stored, _) = cli(&backend, &show_a);
        assert_eq!(
            serde_json::from_str::<Value>(&stored).unwrap(),
            joined,
            "the stored profile is the one the API shows"
        );
        let (newest, _) = cli(
            &backend,
            &["profile", "events", "email:b@example.com", "--limit", "1"],
        );
        let newest: Value = serde_json::from_str(newest.trim()).unwrap();
        assert_eq!(newest["event"], "Kiosk Closed", "{newest}");
        drop(server);

        // The kiosk id was a placeholder: block it and rebuild.
        let temp = common::temp_dir("rebuild");
        let config = temp.path().join("rebuild.toml");
        std::fs::write(&config, "[identity]\nblocked_values = [\"kiosk\"]\n").unwrap();
        let config = config.to_str().unwrap();
        let (summary, _) = cli(
            &backend,
            &["identity", "rebuild", "--json", "--config", config],
        );
        let summary: Value = serde_json::from_str(&summary).unwrap();
        assert_eq!(summary["profiles"], 2, "{summary}");
        let (a, err) = cli(
            &backend,
            &["profile", "show", "email:a@example.com", "--config", config],
        );
        assert!(
            !err.contains("replay"),
            "read from the stored rebuild: {err}"
        );
        let a: Value = serde_json::from_str(&a).unwrap();
        assert_eq!(a["identifiers"].as_array().unwrap().len(), 1, "{a}");
        let (explained, _) = cli(
            &backend,
            &[
                "profile",
                "explain",
                "email:b@example.com",
                "--config",
                config,
            ],
        );
        assert!(!explained.contains("a@example.com"), "{explained}");

        // A server started under other rules than the stored ones stores a rebuild first.
        let server = Server::start(&backend, &[]);
        assert_eq!(stored_identifiers(&backend, &show_a), 3);
        drop(server);
    }
}

/// Computed traits defined through the API, the command line and a TOML file, kept as
/// events arrive (backfilled over the log first) and usable in audience rules.
#[tokio::test]
async fn computed_traits_are_kept_live_and_feed_audiences() {
    for backend in backends("computed").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let key = creds.write_key.clone();
        let server = Server::start(&backend, &[]);
        // History before the definitions exist: the backfill takes it in.
        let order = |user: &str, revenue: i64| json!({"userId": user, "event": "Order Completed", "properties": {"revenue": revenue}});
        send_ok(&server, &key, "/v1/track", order("u1", 30)).await;

        let post = |path: &'static str, body: Value| {
            let (url, token) = (server.url.clone(), creds.token.clone());
            async move {
                client()
                    .post(format!("{url}{path}"))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let orders = json!({"name":"orders_30d","aggregate":{"kind":"count"},"within":"30d",
                            "event":{"name":"Order Completed"}});
        assert_eq!(
            post("/api/v1/traits", orders.clone()).await,
            StatusCode::CREATED,
            "{name}"
        );
        assert_eq!(
            post("/api/v1/traits", orders).await,
            StatusCode::CONFLICT,
            "{name}"
        );
        assert_eq!(
            post(
                "/api/v1/traits",
                json!({"name":"x","aggregate":{"kind":"median"}})
            )
            .await,
            StatusCode::BAD_REQUEST,
            "{name}"
        );
        let store_args = backend.args();
        let mut args = vec![
            "trait",
            "add",
            r#"{"name":"ltv","aggregate":{"kind":"sum","property":"revenue"},"event":{"name":"Order Completed"}}"#,
        ];
        args.extend(store_args.iter().map(String::as_str));
        let added = sightline(&args);
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        let temp = common::temp_dir("traits");
        let dir = temp.path();
        let file = dir.join("traits.toml");
        std::fs::write(
            &file,
            "[[trait]]\nname = \"last_order\"\nwithin = \"365d\"\n[trait.aggregate]\nkind = \"last_seen\"\n[trait.event]\nname = \"Order Completed\"\n",
        )
        .unwrap();
        let mut args = vec!["trait", "import", file.to_str().unwrap()];
        args.extend(store_args.iter().map(String::as_str));
        assert!(sightline(&args).status.success(), "{name}");
        assert_eq!(
            post(
                "/api/v1/audiences",
                json!({"name":"repeat-buyers","rule":"computed orders_30d >= 2"})
            )
            .await,
            StatusCode::CREATED
        );

        send_ok(&server, &key, "/v1/track", order("u1", 70)).await;
        send_ok(&server, &key, "/v1/track", order("u2", 10)).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let computed = common::get_json(
                &server,
                &creds.token,
                "/api/v1/profiles/user_id:u1/computed",
            )
            .await;
            let members = common::get_json(
                &server,
                &creds.token,
                "/api/v1/audiences/repeat-buyers/members",
            )
            .await;
            let done = computed["computed"]["orders_30d"] == 2
                && computed["computed"]["ltv"] == 100.0
                && computed["computed"]["last_order"].is_number()
                && members["count"] == 1;
            if done {
                assert!(members.to_string().contains("\"u1\""), "{name}: {members}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: {computed} {members}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let listed = common::sightline_json(&backend, &["trait", "list"]);
        assert_eq!(listed.as_array().unwrap().len(), 3, "{name}: {listed}");
        drop(server);
    }
}

/// A client cannot forge record-linkage evidence (only the CRM import, which appends to the
/// log directly, writes `context.linkage`), nor pin a trait with a far-future timestamp.
#[tokio::test]
async fn forged_linkage_and_future_timestamps_from_clients_do_not_count() {
    for backend in backends("forged").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let key = creds.write_key.as_str();
        let name = backend.name();
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId":"tablet","traits":{"email":"eve@example.com"}}),
        )
        .await;
        send_ok(&server, key, "/v1/identify", json!({"userId":"eve"})).await;
        // Joins the two profiles: by the identify rule, whatever the event claims.
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"userId":"eve","anonymousId":"tablet",
            "context":{"linkage":{"decision":"auto_link","match_probability":0.99,"fields":[]}}}),
        )
        .await;
        // A far-future time would win "latest wins" for good …
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"userId":"eve","traits":{"plan":"pinned"},"timestamp":"2100-01-01T00:00:00.000Z"}),
        )
        .await;
        // … over what comes later.
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"userId":"eve","traits":{"plan":"current"}}),
        )
        .await;

        let eve = wait_for(&server, &creds.token, "user_id:eve", |p| {
            p["event_count"] == 5
        })
        .await;
        assert_eq!(eve["traits"]["plan"], "current", "{name}: {eve}");

        let (_, merges) = get(&server, &creds.token, "user_id:eve/merges").await;
        let records = merges["merges"].as_array().unwrap();
        assert!(
            records.iter().any(|r| r["change"] == "merge"),
            "{name}: {merges}"
        );
        assert!(
            records
                .iter()
                .all(|r| r["rule"] != "record_linkage" && r["linkage"].is_null()),
            "{name}: {merges}"
        );
        assert!(
            !merges.to_string().contains("record linkage"),
            "{name}: {merges}"
        );
    }
}

/// A restart resumes the profiles, memberships and computed traits from the store instead of
/// replaying the log, and goes on from there as if it had never stopped: merges with
/// identifiers stored before the restart, windows counted across it.
#[tokio::test]
async fn a_restart_resumes_profiles_from_the_store() {
    for backend in backends("resume").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        cli(
            &backend,
            &[
                "audience",
                "add",
                "keen",
                "--rule",
                r#"event "Viewed" count >= 3 within 30d"#,
            ],
        );
        cli(
            &backend,
            &[
                "trait",
                "add",
                r#"{"name":"views","aggregate":{"kind":"count"},"event":{"name":"Viewed"}}"#,
            ],
        );
        let key = creds.write_key.as_str();
        let server = Server::start(&backend, &[]);
        for body in [
            json!({"anonymousId":"a1","event":"Viewed"}),
            json!({"anonymousId":"a1","event":"Viewed"}),
            json!({"anonymousId":"a2","event":"Viewed"}),
        ] {
            send_ok(&server, key, "/v1/track", body).await;
        }
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId":"a1","userId":"u1","traits":{"email":"ann@example.com"}}),
        )
        .await;
        let before = wait_for(&server, &creds.token, "email:ann@example.com", |p| {
            p["event_count"] == 3
        })
        .await;
        let last_seq = common::all_events(&server, &creds.token).await.len() as f64;
        // Stopped once the stored profiles hold everything (the profile CLI reads them).
        stored_identifiers(&backend, &["profile", "show", "email:ann@example.com"]);
        assert!(server.terminate().success(), "{name}");

        let server = Server::start(&backend, &[]);
        let metrics = common::metrics(&server).await;
        assert!(
            metrics.contains(&format!(
                "sightline_profiles_start_replay_from_seq {last_seq}"
            )),
            "{name}: resumed at the stored position, not replayed from 0: {metrics}"
        );
        let (status, after) = get(&server, &creds.token, "email:ann@example.com").await;
        assert_eq!((status, &after), (StatusCode::OK, &before), "{name}");
        // a2 joins u1 across the restart: its view and a1's make three, and the audience
        // and the computed trait see all of them.
        send_ok(
            &server,
            key,
            "/v1/identify",
            json!({"anonymousId":"a2","userId":"u1"}),
        )
        .await;
        let merged = wait_for(&server, &creds.token, "user_id:u1", |p| {
            p["event_count"] == 5
        })
        .await;
        assert_eq!(merged["traits"]["email"], "ann@example.com", "{name}");
        send_ok(
            &server,
            key,
            "/v1/track",
            json!({"userId":"u1","event":"Viewed"}),
        )
        .await;
        // The fourth view counted (the audience holds u1 from the third on, so its members
        // alone do not say the fourth was applied).
        let computed = loop_until(|| async {
            let computed = common::get_json(
                &server,
                &creds.token,
                "/api/v1/profiles/user_id:u1/computed",
            )
            .await;
            (computed["computed"]["views"] == 4).then_some(computed)
        })
        .await;
        assert_eq!(computed["computed"]["views"], 4, "{name}: {computed}");
        let keen = loop_until(|| async {
            let members =
                common::get_json(&server, &creds.token, "/api/v1/audiences/keen/members").await;
            let ids = members["members"].to_string();
            ids.contains("\"u1\"").then_some(ids)
        })
        .await;
        assert!(keen.contains("\"a2\""), "{name}: {keen}");
        drop(server);
    }
}

/// Polls `check` (bounded) until it gives a value.
async fn loop_until<T, F, Fut>(check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..500 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the condition was never met");
}
