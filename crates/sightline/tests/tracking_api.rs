//! The tracking API end to end: the real binary on both backends, over HTTP.

mod common;

use common::{all_events, backends, client, credentials, sightline, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;

async fn post(server: &Server, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{}{path}", server.url))
        .basic_auth(key, Some(""))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post_raw(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = client().post(format!("{}{path}", server.url)).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn basic(key: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

/// What, path, headers, body, expected status, expected error code.
type BadCase<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    StatusCode,
    &'a str,
);

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn every_call_type_is_stored_as_sent_with_server_fields() {
    for backend in backends("calls").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let key = &creds.write_key;
        let calls = [
            (
                "/v1/track",
                json!({"userId":"u1","event":"Order Completed","properties":{"total":19.99,"items":[{"sku":"a"}]},
                "context":{"ip":"10.0.0.1","library":{"name":"curl"}},"integrations":{"All":false,"Mixpanel":true},
                "messageId":"m-track","timestamp":"2026-01-01T00:00:00.000Z","sentAt":"2026-01-01T00:00:10.000Z","custom":[1,2]}),
            ),
            (
                "/v1/identify",
                json!({"userId":"u1","anonymousId":"a1","traits":{"email":"ann@example.com"},"messageId":"m-identify"}),
            ),
            (
                "/v1/page",
                json!({"anonymousId":"a1","name":"Home","properties":{"url":"https://x.test/"},"messageId":"m-page"}),
            ),
            (
                "/v1/screen",
                json!({"userId":"u1","name":"Settings","messageId":"m-screen"}),
            ),
            (
                "/v1/group",
                json!({"userId":"u1","groupId":"g1","traits":{"plan":"team"},"messageId":"m-group"}),
            ),
            (
                "/v1/alias",
                json!({"userId":"u1","previousId":"a1","messageId":"m-alias"}),
            ),
            (
                "/v1/t",
                json!({"userId":"u1","event":"Short Path","messageId":"m-short"}),
            ),
        ];
        for (path, body) in &calls {
            let (status, answer) = post(&server, path, key, body).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{} {path}: {answer}",
                backend.name()
            );
            assert_eq!(answer["accepted"], 1);
        }
        for path in ["/v1/batch", "/v1/import", "/v1/b"] {
            let body = json!({"batch":[{"type":"track","userId":"u2","event":format!("via {path}")}],
                              "context":{"app":"batch-level"}});
            let (status, answer) = post(&server, path, key, &body).await;
            assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        }

        let events = all_events(&server, &creds.token).await;
        assert_eq!(events.len(), calls.len() + 3, "{}", backend.name());
        for (event, (path, sent)) in events.iter().zip(&calls) {
            for (field, value) in sent.as_object().unwrap() {
                if field == "timestamp" {
                    continue;
                }
                assert_eq!(
                    &event[field],
                    value,
                    "{} {path}: field {field}",
                    backend.name()
                );
            }
            assert!(event["seq"].as_i64().unwrap() > 0);
            assert!(event["receivedAt"].as_str().unwrap().ends_with('Z'));
            assert!(event["timestamp"].is_string());
        }
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "track", "identify", "page", "screen", "group", "alias", "track", "track", "track",
                "track"
            ]
        );
        // Clock skew: sent 10 s after the event, so the event is 10 s before receipt.
        let received =
            sightline_core::time::parse_ms(events[0]["receivedAt"].as_str().unwrap()).unwrap();
        let corrected =
            sightline_core::time::parse_ms(events[0]["timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(received - corrected, 10_000);
        assert_eq!(events[0]["originalTimestamp"], "2026-01-01T00:00:00.000Z");
        assert_eq!(events[7]["context"], json!({"app":"batch-level"}));
        assert!(events[1]["messageId"] == "m-identify");
        assert!(
            events[8]["messageId"].as_str().unwrap().len() >= 32,
            "generated messageId"
        );
    }
}

#[tokio::test]
async fn bad_input_gets_its_documented_answer_and_stores_nothing() {
    for backend in backends("bad_input").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let key = creds.write_key.as_str();
        let auth = basic(key);
        let json_headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        let ok_event = br#"{"userId":"u","event":"e"}"#.to_vec();
        let many_fields: serde_json::Map<String, Value> =
            (0..10_000).map(|i| (format!("p{i}"), json!(i))).collect();
        let big_batch = json!({"batch": vec![json!({"type":"track","userId":"u","event":"e","properties":{"pad":"x".repeat(30_000)}}); 20]});

        let cases: Vec<BadCase> = vec![
            (
                "malformed JSON",
                "/v1/track",
                json_headers.to_vec(),
                b"{\"userId\": ".to_vec(),
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                "not an object",
                "/v1/track",
                json_headers.to_vec(),
                b"[1,2]".to_vec(),
                StatusCode::BAD_REQUEST,
                "not_an_object",
            ),
            (
                "wrong type",
                "/v1/track",
                json_headers.to_vec(),
                br#"{"userId":"u","event":["e"]}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                "wrong_type",
            ),
            (
                "missing ids",
                "/v1/track",
                json_headers.to_vec(),
                br#"{"event":"e"}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                "missing_identity",
            ),
            (
                "missing event",
                "/v1/track",
                json_headers.to_vec(),
                br#"{"userId":"u"}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                "missing_field",
            ),
            (
                "huge number of fields",
                "/v1/track",
                json_headers.to_vec(),
                json!({"userId":"u","event":"e","properties":many_fields})
                    .to_string()
                    .into_bytes(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "event_too_large",
            ),
            (
                "oversize request",
                "/v1/batch",
                json_headers.to_vec(),
                big_batch.to_string().into_bytes(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
            ),
            (
                "bad gzip",
                "/v1/track",
                vec![
                    ("authorization", auth.as_str()),
                    ("content-encoding", "gzip"),
                ],
                b"not gzip".to_vec(),
                StatusCode::BAD_REQUEST,
                "bad_gzip",
            ),
            (
                "unknown encoding",
                "/v1/track",
                vec![("authorization", auth.as_str()), ("content-encoding", "br")],
                ok_event.clone(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
            ),
            (
                "no key",
                "/v1/track",
                vec![],
                ok_event.clone(),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                "wrong key",
                "/v1/track",
                vec![("authorization", "Basic d3Jvbmc6")],
                ok_event.clone(),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                "not basic",
                "/v1/track",
                vec![("authorization", "Bearer x")],
                ok_event.clone(),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                "wrong key in body",
                "/v1/track",
                vec![],
                br#"{"writeKey":"nope","userId":"u","event":"e"}"#.to_vec(),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
            (
                "all items invalid",
                "/v1/batch",
                json_headers.to_vec(),
                br#"{"batch":[{"type":"track"}]}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                "no_valid_events",
            ),
        ];
        for (what, path, headers, body, status, code) in cases {
            let (got, answer) = post_raw(&server, path, &headers, body).await;
            assert_eq!(got, status, "{} {what}: {answer}", backend.name());
            assert_eq!(
                answer["error"]["code"],
                code,
                "{} {what}: {answer}",
                backend.name()
            );
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.len() > 10),
                "{what}: the message says what to fix"
            );
        }
        // A gzip bomb is held to the request limit.
        let bomb = gzip(&vec![b' '; 20 * 1024 * 1024]);
        let (status, answer) = post_raw(
            &server,
            "/v1/batch",
            &[("authorization", &auth), ("content-encoding", "gzip")],
            bomb,
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");

        assert!(
            all_events(&server, &creds.token).await.is_empty(),
            "nothing was stored"
        );
        let health = client()
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK, "the server stays up");
    }
}

#[tokio::test]
async fn sdk_habits_gzip_text_plain_body_key_and_cors() {
    for backend in backends("habits").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let auth = basic(&creds.write_key);
        // analytics.js: text/plain JSON; gzip like the server SDKs; key in the body.
        let (status, _) = post_raw(
            &server,
            "/v1/t",
            &[("authorization", &auth), ("content-type", "text/plain")],
            br#"{"userId":"u","event":"plain"}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = post_raw(
            &server,
            "/v1/batch",
            &[("authorization", &auth), ("content-encoding", "gzip")],
            gzip(br#"{"batch":[{"type":"track","userId":"u","event":"zipped"}]}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let body = json!({"writeKey": creds.write_key, "batch":[{"type":"track","userId":"u","event":"body key"}]});
        let (status, _) = post_raw(&server, "/v1/batch", &[], body.to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = post_raw(
            &server,
            "/v1/track",
            &[("authorization", &auth), ("sec-gpc", "1")],
            br#"{"userId":"u","event":"gpc"}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);

        let events = all_events(&server, &creds.token).await;
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["plain", "zipped", "body key", "gpc"],
            "{}",
            backend.name()
        );
        assert!(
            events.iter().all(|e| e.get("writeKey").is_none()),
            "keys are never stored"
        );
        assert_eq!(events[3]["gpc"], true);
        assert!(events[0].get("gpc").is_none());

        let preflight = client()
            .request(reqwest::Method::OPTIONS, format!("{}/v1/t", server.url))
            .header("origin", "https://shop.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success());
        let allowed = preflight.headers();
        assert_eq!(
            allowed["access-control-allow-origin"],
            "https://shop.example"
        );
        assert!(allowed["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization"));
    }
}

#[tokio::test]
async fn batches_keep_valid_items_and_report_invalid_ones() {
    for backend in backends("partial").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let body = json!({"batch":[
            {"type":"track","userId":"u","event":"good 1"},
            {"type":"alias","userId":"u"},
            {"type":"track","userId":"u","event":"good 2"},
        ]});
        let (status, answer) = post(&server, "/v1/batch", &creds.write_key, &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["accepted"], 2);
        assert_eq!(
            answer["rejected"],
            json!([{"index":1,"code":"missing_field","message":"alias calls need `previousId`"}])
        );
        assert_eq!(
            all_events(&server, &creds.token).await.len(),
            2,
            "{}",
            backend.name()
        );
    }
}

#[tokio::test]
async fn duplicates_are_dropped_across_a_restart() {
    for backend in backends("dedup").await {
        let creds = credentials(&backend, "web");
        let body = json!({"userId":"u","event":"once","messageId":"fixed-id"});
        {
            let server = Server::start(&backend, &[]);
            let (_, answer) = post(&server, "/v1/track", &creds.write_key, &body).await;
            assert_eq!(answer["accepted"], 1);
            let (_, answer) = post(&server, "/v1/track", &creds.write_key, &body).await;
            assert_eq!(answer["duplicates"], 1);
            assert!(server.terminate().success(), "a clean shutdown");
        }
        let server = Server::start(&backend, &[]);
        let (status, answer) = post(&server, "/v1/track", &creds.write_key, &body).await;
        assert_eq!(
            (status, answer["duplicates"].clone()),
            (StatusCode::OK, json!(1))
        );
        assert_eq!(
            all_events(&server, &creds.token).await.len(),
            1,
            "{}",
            backend.name()
        );
        drop(server);

        // With a zero window, nothing is a duplicate any more.
        let server = Server::start(&backend, &["--dedup-window", "0s"]);
        let (_, answer) = post(&server, "/v1/track", &creds.write_key, &body).await;
        assert_eq!(answer["accepted"], 1);
    }
}

#[tokio::test]
async fn admin_api_pages_filters_and_guards_the_log() {
    for backend in backends("admin").await {
        let creds = credentials(&backend, "web");
        let app = common::sightline_json(&backend, &["source", "add", "app"]);
        let server = Server::start(&backend, &[]);
        for i in 0..5 {
            post(
                &server,
                "/v1/track",
                &creds.write_key,
                &json!({"userId":"u","event":format!("web {i}")}),
            )
            .await;
        }
        post(
            &server,
            "/v1/track",
            app["write_key"].as_str().unwrap(),
            &json!({"userId":"u","event":"app"}),
        )
        .await;

        let get = |query: &str, token: Option<&str>| {
            let mut request = client().get(format!("{}/api/v1/events?{query}", server.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let page: Value = get("after=0&limit=2", Some(&creds.token))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["events"].as_array().unwrap().len(), 2);
        let next = page["next_after"].as_i64().unwrap();
        let rest: Value = get(&format!("after={next}&limit=100"), Some(&creds.token))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(rest["events"].as_array().unwrap().len(), 4);
        let only_app: Value = get("source=app", Some(&creds.token))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(only_app["events"][0]["event"], "app");
        assert_eq!(only_app["events"].as_array().unwrap().len(), 1);

        let unknown = get("source=nope", Some(&creds.token)).await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let bad = get("after=-1", Some(&creds.token)).await.unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            get("", None).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get("", Some("slt_wrong")).await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );

        let ready = client()
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        let metrics = client()
            .get(format!("{}/metrics", server.url))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for name in [
            "sightline_events_accepted_total",
            "sightline_http_request_duration_seconds_bucket",
            "sightline_commit_batch_events_bucket",
            "sightline_log_last_seq",
        ] {
            assert!(metrics.contains(name), "{name} in /metrics");
        }

        // The CLI reads the same log while the server runs.
        let mut args = vec!["events", "tail", "--no-follow", "--source", "web"];
        let store_args = backend.args();
        args.extend(store_args.iter().map(String::as_str));
        let output = sightline(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[4]["event"], "web 4");
    }
}

#[tokio::test]
async fn rotated_keys_keep_working_for_their_grace_period_only() {
    for backend in backends("rotate").await {
        let creds = credentials(&backend, "web");
        let mut args = vec!["source", "rotate-key", "web", "--grace", "1h"];
        let store_args = backend.args();
        args.extend(store_args.iter().map(String::as_str));
        args.push("--json");
        let rotated: Value = serde_json::from_slice(&sightline(&args).stdout).unwrap();
        let new_key = rotated["write_key"].as_str().unwrap().to_string();
        let server = Server::start(&backend, &[]);
        let event = json!({"userId":"u","event":"e"});
        assert_eq!(
            post(&server, "/v1/track", &creds.write_key, &event).await.0,
            StatusCode::OK
        );
        assert_eq!(
            post(&server, "/v1/track", &new_key, &event).await.0,
            StatusCode::OK
        );
        drop(server);

        args[4] = "0s";
        let revoked: Value = serde_json::from_slice(&sightline(&args).stdout).unwrap();
        let server = Server::start(&backend, &[]);
        assert_eq!(
            post(&server, "/v1/track", &new_key, &event).await.0,
            StatusCode::UNAUTHORIZED
        );
        let newest = revoked["write_key"].as_str().unwrap();
        assert_eq!(
            post(&server, "/v1/track", newest, &event).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn overload_is_answered_429_with_retry_after() {
    let backend = backends("overload").await.remove(0);
    let creds = credentials(&backend, "web");
    let server = Server::start(&backend, &["--max-in-flight", "1"]);
    // A request whose body never finishes holds the only slot. If it arrives while a probe
    // holds the slot, it is itself refused and answered: then it is sent again.
    let address = server.url.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nhost: {address}\r\nauthorization: {}\r\ncontent-length: 100\r\n\r\n{{",
        basic(&creds.write_key)
    );
    let event = json!({"userId":"u","event":"e"});
    let mut stalled = None;
    let mut answer = None;
    for _ in 0..200 {
        let refused_already = match stalled.as_mut() {
            None => true,
            Some(stream) => {
                let mut byte = [0u8; 1];
                tokio::time::timeout(
                    std::time::Duration::from_millis(1),
                    tokio::io::AsyncReadExt::read(stream, &mut byte),
                )
                .await
                .is_ok()
            }
        };
        if refused_already {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
                .await
                .unwrap();
            stalled = Some(stream);
        }
        let response = client()
            .post(format!("{}/v1/track", server.url))
            .basic_auth(&creds.write_key, Some(""))
            .json(&event)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            answer = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let answer = answer.expect("a second request is refused while the slot is held");
    assert_eq!(answer.headers()["retry-after"], "1");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");

    drop(stalled);
    let mut status = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..200 {
        status = post(&server, "/v1/track", &creds.write_key, &event).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "the slot is freed when the client goes away"
    );
}

#[tokio::test]
async fn a_message_id_with_a_control_character_is_refused_like_other_invalid_events() {
    for backend in backends("poison_id").await {
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let name = backend.name();
        let body = json!({"batch":[
            {"type":"track","userId":"u","event":"good","messageId":"m-good"},
            {"type":"track","userId":"u","event":"poison","messageId":"m-\u{1}-bad"},
        ]});
        let (status, answer) = post(&server, "/v1/batch", &creds.write_key, &body).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(answer["accepted"], 1, "{name}: {answer}");
        assert_eq!(answer["rejected"][0]["index"], 1, "{name}: {answer}");
        assert_eq!(
            answer["rejected"][0]["code"], "bad_message_id",
            "{name}: {answer}"
        );
        assert!(
            answer["rejected"][0]["message"]
                .as_str()
                .unwrap()
                .contains("control character"),
            "{name}: {answer}"
        );

        let single = json!({"userId":"u","event":"poison","messageId":"line\nbreak"});
        let (status, answer) = post(&server, "/v1/track", &creds.write_key, &single).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert_eq!(
            answer["error"]["code"], "bad_message_id",
            "{name}: {answer}"
        );

        let stored = all_events(&server, &creds.token).await;
        assert_eq!(stored.len(), 1, "{name}: {stored:?}");
        assert_eq!(stored[0]["messageId"], "m-good", "{name}: {stored:?}");
    }
}

/// Opens a connection, sends `head`, and reads the first answer's head when `answered`
/// (a `100 Continue` once the server starts reading the body, or a final answer).
async fn open_slow(address: &str, head: &str, answered: bool) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    if answered {
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.unwrap();
            assert_eq!(n, 1, "the server closed the connection: {got:?}");
            got.push(byte[0]);
        }
    }
    (stream, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn slow_clients_without_a_valid_key_do_not_crowd_out_the_sdks() {
    let backend = backends("slow_clients").await.remove(0);
    let creds = credentials(&backend, "web");
    let server = Server::start(&backend, &["--max-in-flight", "2"]);
    let address = server.url.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    // Headers that never end: such a request never reaches the collector (and the server
    // closes the connection after its header read timeout).
    for _ in 0..4 {
        let head = format!("POST /v1/track HTTP/1.1\r\nhost: {address}\r\ncontent-");
        held.push(open_slow(&address, &head, false).await.0);
    }
    // No key in the header (it could be in the body), and a body that never finishes: its
    // body is read, without a slot. `Expect: 100-continue` makes the server say when it
    // starts reading the body.
    for _ in 0..4 {
        let head = format!(
            "POST /v1/batch HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
             expect: 100-continue\r\ncontent-length: 1000\r\n\r\n"
        );
        let (mut stream, answer) = open_slow(&address, &head, true).await;
        assert!(answer.starts_with("HTTP/1.1 100"), "{answer}");
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"{\"writeKey\":\"")
            .await
            .unwrap();
        held.push(stream);
    }
    // An unknown key in the header: answered at once, body unread, no slot.
    for _ in 0..4 {
        let head = format!(
            "POST /v1/track HTTP/1.1\r\nhost: {address}\r\nauthorization: {}\r\n\
             expect: 100-continue\r\ncontent-length: 1000\r\n\r\n",
            basic("not-a-key")
        );
        let (stream, answer) = open_slow(&address, &head, true).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        held.push(stream);
    }
    // Twelve connections are held open, with two slots: an SDK's request still gets in.
    let event = json!({"userId":"u","event":"e"});
    for _ in 0..3 {
        let (status, answer) = post(&server, "/v1/track", &creds.write_key, &event).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    drop(held);
}
