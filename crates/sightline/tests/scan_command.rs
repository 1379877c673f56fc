//! `sightline scan` through the binary: report.json, the terminal summary, and the exit
//! codes CI gates rely on (0 below --fail-on, 3 at or above it, other non-zero for errors).
//! The scanner itself is tested in depth in crates/scan/tests.

mod common;

use common::sightline;
use serde_json::Value;
use std::path::{Path, PathBuf};

async fn site() -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html("<html><body><h1>Shop</h1><a id=go href='/'>go</a></body></html>")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}/")
}

fn journey(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("journey.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"plain\"\n[inventory]\nvendors = [\"Hotjar\"]\n[[steps]]\nname = \"landing\"\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_writes_the_report_and_gates_on_severity() {
    let dir = std::env::temp_dir().join(format!("sl-scan-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = site().await;
    let journey = journey(&dir, &url);
    let out = dir.join("out");
    let (journey, out) = (journey.to_str().unwrap(), out.to_str().unwrap());
    // Scans are also stored: keep the store in the test's directory.
    let data = dir.join("data").display().to_string();

    // The inventory lists a vendor the site never loads: a zombie tag.
    let run = tokio::task::spawn_blocking({
        let (journey, out, data) = (journey.to_string(), out.to_string(), data.clone());
        move || {
            sightline(&[
                "scan",
                &journey,
                "--out",
                &out,
                "--data",
                &data,
                "--scenario",
                "no-interaction",
            ])
        }
    })
    .await
    .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(Path::new(out).join("report.json")).unwrap())
            .unwrap();
    let findings = report["findings"].as_array().unwrap();
    let zombie = findings
        .iter()
        .find(|f| f["kind"] == "zombie_tag")
        .expect("a zombie tag finding");
    for field in ["kind", "severity", "scenario", "vendor", "evidence"] {
        assert!(zombie.get(field).is_some(), "{field} in {zombie}");
    }
    assert_eq!(zombie["vendor"], "Hotjar");
    assert!(String::from_utf8_lossy(&run.stdout).contains("report:"));

    let gated = tokio::task::spawn_blocking({
        let (journey, out, data) = (journey.to_string(), out.to_string(), data.clone());
        move || {
            sightline(&[
                "scan",
                &journey,
                "--out",
                &out,
                "--data",
                &data,
                "--scenario",
                "no-interaction",
                "--fail-on",
                "low",
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(
        gated.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&gated.stderr)
    );

    let missing = sightline(&["scan", "/nonexistent/journey.toml", "--out", out]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&missing.stderr).is_empty());
    let bad = sightline(&["scan", journey, "--out", out, "--scenario", "sometimes"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scenario"));
}
