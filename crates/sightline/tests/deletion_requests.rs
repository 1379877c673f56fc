//! Deletion requests a destination does not answer in time are kept and sent again in the
//! background until it does, on both backends: the receipt says `queued`, reading the
//! erasure later shows the outcome (`follow_up`, outside what is signed, so the receipt
//! still verifies), and every attempt carried the same body and Idempotency-Key.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::{backends, client, credentials, get_json, send_ok, sightline, temp_dir, Server};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The deletion requests the receiver got: (Idempotency-Key, body).
type Got = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook that takes deliveries, and answers the first `refuse` deletion requests 503
/// with `Retry-After: 1`.
async fn receiver(refuse: usize) -> (String, Got) {
    let got: Got = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                move |State(got): State<Got>, headers: HeaderMap, body: String| async move {
                    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    if parsed["type"] != "deletion_request" {
                        return StatusCode::OK.into_response();
                    }
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let mut got = got.lock().unwrap();
                    got.push((key, body));
                    if got.len() <= refuse {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", "1")],
                            "busy",
                        )
                            .into_response()
                    } else {
                        StatusCode::OK.into_response()
                    }
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_deletion_request_is_kept_until_answered() {
    for backend in backends("deletion_requests").await {
        let name = backend.name();
        // Five attempts within the erasure, one more in the background, then accepted.
        let (url, got) = receiver(6).await;
        let creds = credentials(&backend, "web");
        let mut add = vec!["destination", "add", "hook", "--url", &url, "--json"];
        let store_args = backend.args();
        add.extend(store_args.iter().map(String::as_str));
        assert!(sightline(&add).status.success(), "{name}");
        let server = Server::start(&backend, &[]);
        send_ok(
            &server,
            &creds.write_key,
            "/v1/identify",
            json!({"userId": "ann", "traits": {"email": "ann@example.com"}, "messageId": "i1",
                   "context": {"consent": {"categoryPreferences": {"Analytics": true}}}}),
        )
        .await;
        until("the delivery", async || {
            let log = get_json(
                &server,
                &creds.token,
                "/api/v1/destinations/hook/deliveries",
            )
            .await;
            let delivered = log.to_string().contains("delivered");
            delivered.then_some(log)
        })
        .await;

        let answer = client()
            .post(format!("{}/api/v1/privacy/erasures", server.url))
            .bearer_auth(&creds.token)
            .json(&json!({"identifier": "email:ann@example.com"}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{name}");
        let receipt: Value = answer.json().await.unwrap();
        let notified = &receipt["destinations_notified"][0];
        assert_eq!(notified["status"], "queued", "{name}: {receipt}");
        assert_eq!(notified["attempts"], 5, "{name}");

        let id = receipt["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/privacy/erasures/{id}");
        let read = until("the kept request's answer", async || {
            let read = get_json(&server, &creds.token, &path).await;
            (read["follow_up"][0]["status"] == "accepted").then_some(read)
        })
        .await;
        assert_eq!(
            read["follow_up"][0]["destination"], "hook",
            "{name}: {read}"
        );
        assert_eq!(read["follow_up"][0]["attempts"], 7, "{name}: {read}");
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 7, "{name}");
        assert!(
            got.iter().all(|sent| sent == &got[0]),
            "{name}: one body, one key"
        );
        assert!(got[0].0.starts_with(&id), "{name}: {:?}", got[0].0);

        // The signed part is unchanged by the follow-up.
        let dir = temp_dir("deletion-receipt");
        let file = dir.path().join("receipt.json");
        std::fs::write(&file, read.to_string()).unwrap();
        let mut verify = vec!["privacy", "verify-receipt", file.to_str().unwrap()];
        verify.extend(store_args.iter().map(String::as_str));
        let verified = sightline(&verify);
        assert!(verified.status.success(), "{name}: {verified:?}");
    }
}
