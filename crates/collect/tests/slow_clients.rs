//! Slow clients are bounded in time: headers by the server's header read timeout, bodies by
//! the collector's body timeout. Short timeouts here; the bounds on the waits below only
//! keep a broken build from hanging, nothing is asserted about how long anything took.

use axum::routing::get;
use axum::Router;
use sightline_collect::{router, serve_with, Collector, Settings};
use sightline_core::secret;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(60);

async fn start(app: Router, header_read_timeout: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve_with(
        listener,
        app,
        header_read_timeout,
        std::future::pending(),
    ));
    address
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut got))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// One answer: its head, and its body by `content-length`.
async fn read_answer(stream: &mut TcpStream) -> String {
    let read = async {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed: {got:?}");
            got.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&got).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        got.extend(body);
        String::from_utf8_lossy(&got).into_owned()
    };
    tokio::time::timeout(BOUND, read).await.expect("an answer")
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = Router::new().route("/", get(|| async { "ok" }));
    let address = start(app, Duration::from_millis(200)).await;

    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");

    // A prompt client is served.
    let mut prompt = TcpStream::connect(&address).await.unwrap();
    prompt
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut prompt).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let store = sightline_store::open(dir.path(), None).await.unwrap();
    let key = "wk_test_key";
    store
        .create_source("web", &secret::hash(key))
        .await
        .unwrap();
    let collector = Collector::new(
        store,
        Settings {
            max_in_flight: 1,
            body_timeout: Duration::from_millis(200),
            ..Settings::default()
        },
    );
    let address = start(router(collector), Duration::from_secs(10)).await;
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));

    // Authenticated, so it holds the only slot while its body is read.
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(
        format!(
            "POST /v1/track HTTP/1.1\r\nhost: x\r\nauthorization: Basic {auth}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_answer(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    // The slot is free again.
    let body = r#"{"userId":"u","event":"e"}"#;
    let mut prompt = TcpStream::connect(&address).await.unwrap();
    prompt
        .write_all(
            format!(
                "POST /v1/track HTTP/1.1\r\nhost: x\r\nauthorization: Basic {auth}\r\n\
                 connection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_answer(&mut prompt).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
