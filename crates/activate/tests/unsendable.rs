//! A stored event whose messageId cannot be an HTTP header value (here a control
//! character, appended straight to the log as only an import could) is a dead letter, not
//! a request retried for ever: the worker's checkpoint moves past it and the next event is
//! delivered.

use sightline_activate::webhook::Webhook;
use sightline_activate::{Deliverer, Settings};
use sightline_consent::Policy;
use sightline_core::{DeliveryStatus, DestinationKind, EventType, NewDestination, NewEvent};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A receiver answering 200 to every request and noting each one's Idempotency-Key.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body by its Content-Length.
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let header = |name: &str| {
                        text[..end].lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let length: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if request.len() < end + 4 + length {
                        continue;
                    }
                    seen.lock()
                        .unwrap()
                        .push(header("idempotency-key").unwrap_or_default());
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    request.clear();
                }
            });
        }
    });
    (url, keys)
}

#[tokio::test]
async fn an_unsendable_message_id_is_dead_lettered_and_the_checkpoint_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = sightline_store::open(dir.path(), None).await.unwrap();
    let (url, keys) = receiver().await;
    let source = store.create_source("import", "hash").await.unwrap();
    let destination = store
        .create_destination(NewDestination {
            name: "hook".into(),
            kind: DestinationKind::Webhook,
            url,
            purposes: vec![],
            event_types: vec![],
            event_names: vec![],
            batch_size: 1,
            transform: serde_json::json!({}),
            settings: serde_json::json!({}),
            signing_secret: "whsec_test".into(),
        })
        .await
        .unwrap();
    let event = |message_id: &str| NewEvent {
        source_id: source.id,
        message_id: message_id.into(),
        event_type: EventType::Track,
        received_at: 1_764_000_000_000,
        body: serde_json::json!({"type":"track","event":"e","userId":"u","messageId":message_id})
            .to_string(),
    };
    store
        .append(vec![event("bad\u{1}id"), event("good-id")], 0)
        .await
        .unwrap();

    let settings = Settings {
        idle_poll: Duration::from_millis(20),
        discover_every: Duration::from_millis(20),
        ..Settings::default()
    };
    let webhook = Webhook::new(Duration::from_secs(10), None).unwrap();
    let deliverer = Deliverer::new(store.clone(), Policy::default(), None, webhook, settings);

    // Before the fix the first event was retried for ever and this never moved: a bound
    // on the wait, not a timing assertion.
    let processor = format!("delivery:{}", destination.id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.checkpoint(&processor).await.unwrap() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint is stuck at {}",
            store.checkpoint(&processor).await.unwrap()
        );
        let stepped = tokio::time::timeout(
            Duration::from_millis(500),
            deliverer.deliver_next(&destination),
        )
        .await;
        if let Ok(result) = stepped {
            result.unwrap();
        }
    }

    let outcomes = store.deliveries(destination.id, None, 0, 10).await.unwrap();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(outcomes[0].status, DeliveryStatus::Dead);
    assert_eq!(outcomes[0].response_code, None);
    let reason = outcomes[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("cannot be built"), "{reason}");
    assert_eq!(outcomes[1].status, DeliveryStatus::Delivered);
    assert_eq!(*keys.lock().unwrap(), ["good-id"]);
}
