//! The governance registry through the binary, on SQLite and PostgreSQL: stored scans
//! (`scan`, `scan list`, `scan diff` by id, `scan import`).

mod common;

use common::{backends, sightline, sightline_json, Backend};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A local site for every host name (the journey maps them all onto it): a shop page that
/// loads Google Tag Manager while `tags_on` is set, which in turn loads a pixel from a
/// host no catalog knows.
struct Site {
    port: u16,
    tags_on: Arc<AtomicBool>,
}

async fn site() -> Site {
    let tags_on = Arc::new(AtomicBool::new(true));
    let on = tags_on.clone();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || {
                let on = on.load(Ordering::SeqCst);
                async move {
                    let tags = if on {
                        "<script src='http://www.googletagmanager.com/gtm.js'></script>"
                    } else {
                        ""
                    };
                    axum::response::Html(format!(
                        "<html><head>{tags}</head><body><h1>Shop</h1></body></html>"
                    ))
                }
            }),
        )
        .route(
            "/gtm.js",
            axum::routing::get(|| async {
                (
                    [("content-type", "application/javascript")],
                    "var i = new Image(); i.src = 'http://px.pixelhub.example/p.gif?ev=view';",
                )
            }),
        )
        .route(
            "/p.gif",
            axum::routing::get(|| async { ([("content-type", "image/gif")], "GIF89a") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Site { port, tags_on }
}

/// A journey file for the site; `inventory` is the vendor list it declares.
fn journey(dir: &Path, site: &Site, inventory: &[&str]) -> PathBuf {
    let path = dir.join(format!("journey-{}.toml", inventory.len()));
    let vendors: Vec<String> = inventory.iter().map(|v| format!("{v:?}")).collect();
    std::fs::write(
        &path,
        format!(
            "name = \"shop\"\n\
             [browser]\nhost_resolver_rules = \"MAP * 127.0.0.1:{port}\"\n\
             [inventory]\nvendors = [{vendors}]\n\
             [[steps]]\nname = \"landing\"\nurl = \"http://www.shop.example/\"\n",
            port = site.port,
            vendors = vendors.join(", ")
        ),
    )
    .unwrap();
    path
}

fn with_store(backend: &Backend, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    sightline(&all)
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a no-interaction scan into `out` and the backend's store; returns the scan id.
async fn scan(backend: &Backend, journey: &Path, out: &Path) -> i64 {
    let (backend, journey, out) = (backend.clone(), journey.to_owned(), out.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        with_store(
            &backend,
            &[
                "scan",
                journey.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--scenario",
                "no-interaction",
            ],
        )
    })
    .await
    .unwrap();
    let text = stdout(&output);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("scan: "))
        .unwrap_or_else(|| panic!("no scan id in {text}"));
    line.trim().parse().unwrap()
}

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sl-registry-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_are_stored_listed_and_diffed_by_id() {
    let site = site().await;
    for backend in backends("stored_scans").await {
        let name = backend.name();
        let dir = test_dir(&format!("stored-{name}"));
        let journey = journey(&dir, &site, &["Google Tag Manager"]);
        site.tags_on.store(true, Ordering::SeqCst);
        let first = scan(&backend, &journey, &dir.join("first")).await;
        site.tags_on.store(false, Ordering::SeqCst);
        let second = scan(&backend, &journey, &dir.join("second")).await;
        assert!(second > first, "{name}");

        let listed = sightline_json(&backend, &["scan", "list"]);
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 2, "{name}: {listed:?}");
        assert_eq!(listed[0]["id"], first, "{name}");
        assert_eq!(listed[0]["journey"], "shop", "{name}");
        assert!(
            listed[0]["summary"]["vendors"].as_u64().unwrap() >= 1,
            "{name}"
        );
        assert_eq!(
            listed[1]["summary"]["findings"], 1,
            "{name}: the zombie tag"
        );
        let other = sightline_json(&backend, &["scan", "list", "--journey", "blog"]);
        assert_eq!(other, Value::Array(vec![]), "{name}");

        // By id, by file, or one of each: the same diff.
        let by_id = stdout(&with_store(
            &backend,
            &["scan", "diff", &first.to_string(), &second.to_string()],
        ));
        assert!(by_id.contains("Google Tag Manager"), "{name}: {by_id}");
        let second_file = dir.join("second/report.json");
        let mixed = stdout(&with_store(
            &backend,
            &[
                "scan",
                "diff",
                &first.to_string(),
                second_file.to_str().unwrap(),
            ],
        ));
        assert_eq!(mixed, by_id, "{name}");
        let files = stdout(&sightline(&[
            "scan",
            "diff",
            dir.join("first/report.json").to_str().unwrap(),
            second_file.to_str().unwrap(),
        ]));
        assert_eq!(files, by_id, "{name}: two files need no store");

        // A report written elsewhere is imported as it is.
        let imported = stdout(&with_store(
            &backend,
            &["scan", "import", second_file.to_str().unwrap()],
        ));
        let imported: i64 = imported
            .trim()
            .strip_prefix("scan: ")
            .unwrap()
            .parse()
            .unwrap();
        let same = stdout(&with_store(
            &backend,
            &["scan", "diff", &second.to_string(), &imported.to_string()],
        ));
        assert_eq!(same, "no new or removed vendors or findings\n", "{name}");

        // Bad operands: clear errors.
        let unknown = with_store(&backend, &["scan", "diff", "999", &first.to_string()]);
        assert!(!unknown.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&unknown.stderr).contains("no stored scan 999"),
            "{name}: {}",
            String::from_utf8_lossy(&unknown.stderr)
        );
        let neither = with_store(&backend, &["scan", "diff", "nope.json", "1"]);
        assert!(
            String::from_utf8_lossy(&neither.stderr).contains("neither a report file"),
            "{name}"
        );
        let not_report = dir.join("bad.json");
        std::fs::write(&not_report, "{\"journey\": 1}").unwrap();
        let refused = with_store(&backend, &["scan", "import", not_report.to_str().unwrap()]);
        assert!(!refused.status.success(), "{name}");
        assert_eq!(
            sightline_json(&backend, &["scan", "list"])
                .as_array()
                .unwrap()
                .len(),
            3,
            "{name}: nothing stored from a bad file"
        );
    }
}
