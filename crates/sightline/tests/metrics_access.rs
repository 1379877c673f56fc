//! Who may read `/metrics` (and `/readyz?verbose`), end to end through the binary: by
//! default a token on the main listener; with `--metrics-listen` (or `metrics_listen` in
//! the config file, or `SIGHTLINE_METRICS_LISTEN`) an address of its own without a token,
//! and the main listener no longer serves it. `/healthz` and plain `/readyz` stay open.

mod common;

use common::{client, sightline_json, temp_dir, Backend, Server, BIN};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

async fn status(url: String, token: Option<&str>) -> u16 {
    let request = client().get(url);
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

fn token(backend: &Backend, role: &str) -> String {
    sightline_json(backend, &["token", "create", "--role", role])["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_the_main_listener_need_a_token_that_may_read_them() {
    let backend = Backend::Sqlite(Arc::new(temp_dir("metrics-token")));
    let admin = token(&backend, "admin");
    let scraper = token(&backend, "metrics");
    let analyst = token(&backend, "analyst");
    let privacy = token(&backend, "privacy");
    let server = Server::start(&backend, &[]);
    assert!(server.metrics_url.is_none());
    let at = |path: &str| format!("{}{path}", server.url);

    assert_eq!(status(at("/metrics"), None).await, 401);
    assert_eq!(status(at("/metrics"), Some("slt_wrong")).await, 401);
    let refused = client()
        .get(at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(refused.contains("unauthorized"), "{refused}");
    assert!(refused.contains("--role metrics"), "{refused}");
    assert!(!refused.contains("sightline_"), "{refused}");
    for allowed in [&admin, &scraper, &analyst] {
        let response = client()
            .get(at("/metrics"))
            .bearer_auth(allowed)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("sightline_log_last_seq"));
    }
    assert_eq!(status(at("/metrics"), Some(&privacy)).await, 403);
    // The metrics role reads metrics and nothing else.
    assert_eq!(status(at("/api/v1/events"), Some(&scraper)).await, 403);
    assert_eq!(
        status(at("/api/v1/destinations"), Some(&scraper)).await,
        403
    );

    // Health and plain readiness stay open (probes and load balancers send no token);
    // the verbose detail names the processors, so it follows the metrics rule.
    assert_eq!(status(at("/healthz"), None).await, 200);
    assert_eq!(status(at("/readyz"), None).await, 200);
    assert_eq!(status(at("/readyz?verbose"), None).await, 401);
    assert_eq!(status(at("/readyz?verbose"), Some(&privacy)).await, 403);
    let verbose = client()
        .get(at("/readyz?verbose"))
        .bearer_auth(&scraper)
        .send()
        .await
        .unwrap();
    assert_eq!(verbose.status(), 200);
    assert!(verbose.text().await.unwrap().contains("[+]store ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_serves_them_without_a_token_and_the_main_one_no_longer() {
    let backend = Backend::Sqlite(Arc::new(temp_dir("metrics-listen")));
    let admin = token(&backend, "admin");
    let server = Server::start(&backend, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics_url = server.metrics_url.clone().expect("a metrics listener");
    assert_ne!(metrics_url, server.url);

    let open = client()
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    assert!(open
        .text()
        .await
        .unwrap()
        .contains("sightline_log_last_seq"));
    assert_eq!(
        status(format!("{metrics_url}/readyz?verbose"), None).await,
        200
    );
    assert_eq!(status(format!("{metrics_url}/healthz"), None).await, 200);
    // It serves nothing else.
    assert_eq!(
        status(format!("{metrics_url}/api/v1/events"), Some(&admin)).await,
        404
    );

    // The main listener no longer serves metrics, to anyone; the rest is unchanged.
    let main = |path: &str| format!("{}{path}", server.url);
    assert_eq!(status(main("/metrics"), None).await, 404);
    assert_eq!(status(main("/metrics"), Some(&admin)).await, 404);
    assert_eq!(status(main("/healthz"), None).await, 200);
    assert_eq!(status(main("/readyz"), None).await, 200);
    assert_eq!(status(main("/api/v1/events"), Some(&admin)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_sets_the_metrics_listener() {
    let temp = temp_dir("metrics-config");
    let config = temp.path().join("sightline.toml");
    std::fs::write(&config, "metrics_listen = \"127.0.0.1:0\"\n").unwrap();
    let backend = Backend::Sqlite(Arc::new(temp_dir("metrics-config-data")));
    let server = Server::start(&backend, &["--config", config.to_str().unwrap()]);
    let metrics_url = server.metrics_url.clone().expect("a metrics listener");
    assert_eq!(status(format!("{metrics_url}/metrics"), None).await, 200);
    assert_eq!(status(format!("{}/metrics", server.url), None).await, 404);
}

/// `sightline serve` with these arguments and environment must stop at start with an
/// error naming the metrics listener; its stderr.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let data = temp_dir("metrics-bad");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg("--data")
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    // Bounded: a server that started anyway would never exit.
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(command.output().expect("run sightline serve"));
    });
    let output = output
        .recv_timeout(Duration::from_secs(120))
        .expect("a bad --metrics-listen must stop the start");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains("--metrics-listen"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    stderr
}

#[test]
fn a_bad_metrics_listen_address_is_a_clear_error_at_start() {
    for bad in [
        "nonsense",
        "127.0.0.1",
        ":9090",
        "127.0.0.1:99999",
        "127.0.0.1:port",
    ] {
        let stderr = refused_start(&["--metrics-listen", bad], &[]);
        assert!(stderr.contains("HOST:PORT"), "{bad}: {stderr}");
    }
    let stderr = refused_start(&[], &[("SIGHTLINE_METRICS_LISTEN", "nonsense")]);
    assert!(stderr.contains("HOST:PORT"), "{stderr}");
    // A well-formed address that cannot be bound: the reason, and which option.
    let stderr = refused_start(&["--metrics-listen", "192.0.2.1:9090"], &[]);
    assert!(stderr.contains("cannot listen for metrics"), "{stderr}");
}
