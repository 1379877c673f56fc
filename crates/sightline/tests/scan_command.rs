//! `sightline scan` through the binary: report.json, the terminal summary, and the exit
//! codes CI gates rely on (0 below --fail-on, 3 at or above it, other non-zero for errors).
//! The scanner itself is tested in depth in crates/scan/tests. A journey the governance
//! registry holds is judged against the registry's tags, and `[[schedule]]` has the server
//! scan it in the background.

mod common;

use common::sightline;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

async fn site() -> String {
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                axum::response::Html("<html><body><h1>Shop</h1><a id=go href='/'>go</a></body></html>")
            }),
        )
        .route(
            "/pixel",
            axum::routing::get(|| async {
                // A tracker the shipped catalog does not know, on a host mapped to this server.
                axum::response::Html(
                    "<html><body><h1>Pixel</h1><img src='http://px.acme-tracker.test/p.gif'></body></html>",
                )
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

/// The journey to the site's `/pixel` page (its tracker host mapped to the site) with
/// `inventory` as its `[inventory]`, and a tracker database naming that host's vendor
/// Acme Ads (advertising): their paths in `dir`.
async fn pixel_journey(dir: &Path, inventory: &str) -> (PathBuf, PathBuf) {
    let url = site().await;
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let journey = dir.join("journey.toml");
    std::fs::write(
        &journey,
        format!(
            "name = \"pixel\"\n[browser]\nhost_resolver_rules = \"MAP px.acme-tracker.test 127.0.0.1:{port}\"\n\
             [inventory]\nvendors = [\"{inventory}\"]\n[[steps]]\nname = \"landing\"\nurl = \"{url}pixel\"\n"
        ),
    )
    .unwrap();
    let db = dir.join("trackerdb.json");
    std::fs::write(
        &db,
        r#"{"categories": {}, "organizations": {}, "patterns": {
             "acme_ads": {"name": "Acme Ads", "category": "advertising", "organization": null,
                          "domains": ["acme-tracker.test"], "filters": []}}}"#,
    )
    .unwrap();
    (journey, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_writes_the_report_and_gates_on_severity() {
    let temp = common::temp_dir("scan-cli");
    let dir = temp.path();
    let url = site().await;
    let journey = journey(dir, &url);
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
                "--allow-private-network",
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
                "--allow-private-network",
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

/// `--trackerdb` (Ghostery's format, a hand-made file), `--inventory`, screenshots beside the
/// report, `--parallel`, and `scan diff` over two report paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_db_inventory_file_screenshots_and_diff() {
    let temp = common::temp_dir("scan-cli-db");
    let dir = temp.path();
    let (journey, db) = pixel_journey(dir, "Hotjar").await;
    let inventory = dir.join("inventory.toml");
    std::fs::write(&inventory, "vendors = [\"Acme Ads\"]\n").unwrap();
    let (journey, db, inventory) = (
        journey.to_str().unwrap().to_owned(),
        db.to_str().unwrap().to_owned(),
        inventory.to_str().unwrap().to_owned(),
    );
    let run = |out: PathBuf, extra: Vec<String>| {
        let journey = journey.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "scan".to_owned(),
                journey,
                "--allow-private-network".to_owned(),
                "--out".to_owned(),
                out.to_str().unwrap().to_owned(),
                "--scenario".to_owned(),
                "no-interaction".to_owned(),
            ];
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            sightline(&args)
        })
    };

    let plain_out = dir.join("plain");
    let plain = run(plain_out.clone(), vec![]).await.unwrap();
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let db_out = dir.join("db");
    let with_db = run(
        db_out.clone(),
        vec![
            "--trackerdb".into(),
            db.clone(),
            "--inventory".into(),
            inventory,
            "--parallel".into(),
            "2".into(),
        ],
    )
    .await
    .unwrap();
    assert!(
        with_db.status.success(),
        "{}",
        String::from_utf8_lossy(&with_db.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(db_out.join("report.json")).unwrap()).unwrap();
    let step = &report["scenarios"][0]["steps"][0];
    assert!(
        step["vendors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "Acme Ads" && v["category"] == "advertising"),
        "{step}"
    );
    let findings = report["findings"].as_array().unwrap();
    // The tracker database names the vendor, so it is judged: it loads before consent.
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "pre_consent" && f["vendor"] == "Acme Ads"),
        "{findings:?}"
    );
    // The inventory file replaced the journey's: Acme Ads is declared, Hotjar is not listed.
    assert!(!findings
        .iter()
        .any(|f| f["kind"] == "shadow_vendor" && f["vendor"] == "Acme Ads"));
    assert!(!findings.iter().any(|f| f["kind"] == "zombie_tag"));
    let shot = step["screenshot"].as_str().unwrap();
    assert_eq!(shot, "screenshots/no-interaction/01-landing.png");
    assert!(std::fs::read(db_out.join(shot))
        .unwrap()
        .starts_with(b"\x89PNG"));

    // diff over the two report paths: the vendor the database named is new.
    let diff = sightline(&[
        "scan",
        "diff",
        plain_out.join("report.json").to_str().unwrap(),
        db_out.join("report.json").to_str().unwrap(),
    ]);
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        text.contains("+ vendor") && text.contains("Acme Ads"),
        "{text}"
    );

    // A malformed database is a clear error before any browser starts.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"patterns": {"x": {"category": "advertising"}}}"#).unwrap();
    let failed = run(
        dir.join("bad-out"),
        vec!["--trackerdb".into(), bad.to_str().unwrap().to_owned()],
    )
    .await
    .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("tracker database") && err.contains("patterns.x.name"),
        "{err}"
    );
    let zero = run(dir.join("zero"), vec!["--parallel".into(), "0".into()])
        .await
        .unwrap();
    assert_ne!(zero.status.code(), Some(0));
}

/// `sightline ARGS --data DATA [--json]`, which must succeed; its JSON output when asked.
fn in_store(data: &str, args: &[&str], json: bool) -> Value {
    let mut all = args.to_vec();
    all.extend(["--data", data]);
    if json {
        all.push("--json");
    }
    let output = sightline(&all);
    assert!(
        output.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if json {
        serde_json::from_slice(&output.stdout).unwrap()
    } else {
        Value::Null
    }
}

/// A journey imported into the registry is scanned against the registry's tags, not its
/// own `[inventory]`: a vendor without an approved tag is a shadow vendor, one whose tag was
/// rejected is a high `revoked_tag`, and an approved tag that never loads is a zombie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_tags_are_the_inventory_of_a_stored_journey() {
    let temp = common::temp_dir("scan-cli-registry");
    let dir = temp.path();
    // Its own inventory declares Acme Ads: read only outside the registry.
    let (journey, db) = pixel_journey(dir, "Acme Ads").await;
    let data = dir.join("data").display().to_string();
    let (journey, db) = (journey.display().to_string(), db.display().to_string());
    let token = |role: &str, name: &str| {
        in_store(
            &data,
            &["token", "create", "--role", role, "--name", name],
            true,
        )["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (marketing, security) = (token("marketing", "ann"), token("security", "sam"));
    in_store(
        &data,
        &["journey", "import", &journey, "--token", &marketing],
        false,
    );
    let propose = |vendor: &str| {
        in_store(
            &data,
            &[
                "tags",
                "propose",
                "--vendor",
                vendor,
                "--purpose",
                "ads",
                "--owner",
                "growth",
                "--classification",
                "optional",
                "--consent-purpose",
                "advertising",
                "--token",
                &marketing,
            ],
            true,
        )["id"]
            .to_string()
    };
    let hotjar = propose("Hotjar");
    in_store(
        &data,
        &["tags", "approve", &hotjar, "--token", &security],
        false,
    );
    let scan = |out: &str| {
        let (journey, db, data) = (journey.clone(), db.clone(), data.clone());
        let out = dir.join(out);
        async move {
            let run = tokio::task::spawn_blocking({
                let out = out.display().to_string();
                move || {
                    sightline(&[
                        "scan",
                        &journey,
                        "--allow-private-network",
                        "--out",
                        &out,
                        "--data",
                        &data,
                        "--scenario",
                        "no-interaction",
                        "--trackerdb",
                        &db,
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
                serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
            report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["kind"] != "pre_consent")
                .map(|f| {
                    (
                        f["kind"].as_str().unwrap().to_owned(),
                        f["vendor"].as_str().unwrap().to_owned(),
                        f["severity"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let pair = |kind: &str, vendor: &str, severity: &str| {
        (kind.to_owned(), vendor.to_owned(), severity.to_owned())
    };
    assert_eq!(
        scan("no-tag").await,
        [
            pair("shadow_vendor", "Acme Ads", "medium"),
            pair("zombie_tag", "Hotjar", "low")
        ]
    );
    let acme = propose("Acme Ads");
    in_store(
        &data,
        &[
            "tags", "reject", &acme, "--reason", "no DPA", "--token", &security,
        ],
        false,
    );
    assert_eq!(
        scan("rejected").await,
        [
            pair("revoked_tag", "Acme Ads", "high"),
            pair("zombie_tag", "Hotjar", "low")
        ]
    );
}

/// `[[schedule]]`: the server scans a journey of the registry in the background, stores the
/// scan, and tells the alert webhook of the new high findings; a schedule that cannot be
/// read stops the start saying what to fix, and SIGHUP reads them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_scans_are_stored_and_alert_on_new_high_findings() {
    // A page that loads Google Analytics before any consent, GA's host mapped to the site.
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html(
                "<html><body><h1>Shop</h1><img src='http://www.google-analytics.com/collect?v=1'></body></html>",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let alerts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let hook = {
        let alerts = alerts.clone();
        let app = axum::Router::new().route(
            "/alert",
            axum::routing::post(move |body: axum::body::Bytes| {
                let alerts = alerts.clone();
                async move {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        alerts.lock().unwrap().push(v);
                    }
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/alert", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    };

    let temp = common::temp_dir("scan-schedule");
    let dir = temp.path().to_owned();
    let data = dir.display().to_string();
    let journey = dir.join("journey.toml");
    std::fs::write(
        &journey,
        format!(
            "name = \"shop\"\n[browser]\nhost_resolver_rules = \"MAP www.google-analytics.com 127.0.0.1:{port}\"\n\
             [[steps]]\nname = \"landing\"\nurl = \"http://127.0.0.1:{port}/\"\n"
        ),
    )
    .unwrap();
    let marketing = in_store(&data, &["token", "create", "--role", "marketing"], true)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    in_store(
        &data,
        &[
            "journey",
            "import",
            journey.to_str().unwrap(),
            "--token",
            &marketing,
        ],
        false,
    );
    in_store(
        &data,
        &["destination", "add", "security-alerts", "--url", &hook],
        true,
    );
    let config = dir.join("sightline.toml");
    let write_config = |every: &str| {
        std::fs::write(
            &config,
            format!(
                "[[schedule]]\njourney = \"shop\"\nevery = \"{every}\"\nscenarios = [\"no-interaction\"]\n\
                 alert = \"security-alerts\"\nallow_private_network = true\n"
            ),
        )
        .unwrap();
    };

    write_config("10s");
    let refused = sightline(&[
        "serve",
        "--data",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("shorter than a minute"), "{stderr}");

    write_config("1h");
    let backend = common::Backend::Sqlite(std::sync::Arc::new(temp));
    let server = common::Server::start(&backend, &["--config", config.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while alerts.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no alert arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let alert = alerts.lock().unwrap()[0].clone();
    assert_eq!(alert["alert"], "new_high_findings", "{alert}");
    assert_eq!(alert["journey"], "shop", "{alert}");
    let findings = alert["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "pre_consent" && f["vendor"] == "Google Analytics"),
        "{alert}"
    );
    assert!(findings
        .iter()
        .all(|f| f["severity"] == "high" || f["severity"] == "critical"));
    let scans = common::sightline_json(&backend, &["scan", "list"]);
    let listed = scans
        .as_array()
        .or_else(|| scans["scans"].as_array())
        .unwrap();
    assert_eq!(listed.len(), 1, "one scan until the period passes: {scans}");
    assert_eq!(listed[0]["id"], alert["scan_id"], "{scans}");

    // The scheduled scan kept its screenshots: its report names each step's, and the API
    // answers it as a PNG (a path outside the report's form is not found).
    let http = reqwest::Client::new();
    let scan = &alert["scan_id"];
    let report = common::get_json(&server, &marketing, &format!("/api/v1/scans/{scan}")).await;
    let shot = report["scenarios"][0]["steps"][0]["screenshot"]
        .as_str()
        .unwrap_or_else(|| panic!("a screenshot: {report}"));
    let image = |path: String| {
        http.get(format!("{}/api/v1/scans/{scan}/{path}", server.url))
            .bearer_auth(&marketing)
            .send()
    };
    let png = image(shot.to_owned()).await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let outside = image("screenshots/no-interaction/..%2F..%2Freport.png".into());
    assert_eq!(outside.await.unwrap().status(), 404);

    // Through the API: where the schedule stands, and a run asked for now. The second scan
    // finds nothing new, so no second alert.
    let shown = common::get_json(&server, &marketing, "/api/v1/schedules").await;
    let schedule = &shown["schedules"][0];
    assert_eq!(schedule["journey"], "shop", "{shown}");
    assert_eq!(schedule["every"], "1h", "{shown}");
    assert_eq!(schedule["last_scan"]["id"], alert["scan_id"], "{shown}");
    let run = |journey: &str| {
        http.post(format!("{}/api/v1/schedules/{journey}/run", server.url))
            .bearer_auth(&marketing)
            .send()
    };
    assert_eq!(run("elsewhere").await.unwrap().status(), 404);
    assert_eq!(run("shop").await.unwrap().status(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let scans = common::sightline_json(&backend, &["scan", "list"]);
        if scans.as_array().map_or(0, Vec::len) == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the asked-for run never happened: {scans}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(alerts.lock().unwrap().len(), 1, "nothing new, no alert");

    // A schedule made through the API applies without a restart; the config's stay the
    // config's to change.
    let blog = dir.join("blog.toml");
    std::fs::write(
        &blog,
        std::fs::read_to_string(&journey)
            .unwrap()
            .replace("name = \"shop\"", "name = \"blog\""),
    )
    .unwrap();
    in_store(
        &data,
        &[
            "journey",
            "import",
            blog.to_str().unwrap(),
            "--token",
            &marketing,
        ],
        false,
    );
    let security = in_store(&data, &["token", "create", "--role", "security"], true)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{}{path}", server.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let blog_schedule = json!({"journey": "blog", "every": "1h", "scenarios": ["no-interaction"],
                               "allow_private_network": true});
    let post = |token: &str, body: Value| {
        send(
            reqwest::Method::POST,
            "/api/v1/schedules",
            token,
            Some(body),
        )
    };
    let refused = post(&marketing, blog_schedule.clone()).await.unwrap();
    assert_eq!(
        refused.status(),
        403,
        "private addresses are security's call"
    );
    for (body, status, says) in [
        (
            json!({"journey": "blog", "every": "10s"}),
            400,
            "shorter than a minute",
        ),
        (
            json!({"journey": "blog", "every": "1h", "scenarios": ["dance"]}),
            400,
            "unknown scenario",
        ),
        (
            json!({"journey": "blog", "every": "1h", "alert": "nowhere"}),
            400,
            "not a webhook destination",
        ),
        (
            json!({"journey": "blog", "every": "1h", "colour": "red"}),
            400,
            "colour",
        ),
        (
            json!({"journey": "gone", "every": "1h"}),
            404,
            "no journey named",
        ),
        (
            json!({"journey": "shop", "every": "2h"}),
            409,
            "config file",
        ),
    ] {
        let answer = post(&security, body.clone()).await.unwrap();
        assert_eq!(answer.status(), status, "{body}");
        let text = answer.text().await.unwrap();
        assert!(text.contains(says), "{body}: {text}");
    }
    let made = post(&security, blog_schedule.clone()).await.unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["origin"], "api", "{made}");
    assert_eq!(
        post(&security, blog_schedule.clone())
            .await
            .unwrap()
            .status(),
        409
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let scans = common::sightline_json(&backend, &["scan", "list"]);
        if scans
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["journey"] == "blog")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule made through the API never ran: {scans}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let replaced = send(
        reqwest::Method::PUT,
        "/api/v1/schedules/blog",
        &security,
        Some(json!({"journey": "blog", "every": "2h", "allow_private_network": true})),
    )
    .await
    .unwrap();
    assert_eq!(replaced.status(), 200);
    let shown = common::get_json(&server, &marketing, "/api/v1/schedules").await;
    let listed = shown["schedules"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{shown}");
    assert_eq!(listed[0]["origin"], "config", "{shown}");
    assert_eq!(listed[1]["journey"], "blog", "{shown}");
    assert_eq!(listed[1]["every"], "2h", "{shown}");
    assert!(listed[1]["last_scan"]["id"].is_i64(), "{shown}");
    let delete = |journey: &str| {
        send(
            reqwest::Method::DELETE,
            &format!("/api/v1/schedules/{journey}"),
            &marketing,
            None,
        )
    };
    assert_eq!(delete("shop").await.unwrap().status(), 409);
    assert_eq!(delete("blog").await.unwrap().status(), 200);
    assert_eq!(delete("blog").await.unwrap().status(), 404);
    let shown = common::get_json(&server, &marketing, "/api/v1/schedules").await;
    assert_eq!(shown["schedules"].as_array().unwrap().len(), 1, "{shown}");
    let audit = common::get_json(&server, &security, "/api/v1/audit").await;
    for action in [
        "scan.schedule.create",
        "scan.schedule.replace",
        "scan.schedule.delete",
    ] {
        assert!(audit.to_string().contains(action), "{action}: {audit}");
    }

    // SIGHUP reads the config file's schedules again: one that is not valid is reported and
    // changes nothing; a valid one is in force at once.
    let every = || async {
        let shown = common::get_json(&server, &marketing, "/api/v1/schedules").await;
        shown["schedules"][0]["every"].as_str().unwrap().to_owned()
    };
    write_config("10s");
    server.hangup();
    server.wait_for_log("kept as they were");
    assert_eq!(every().await, "1h");
    write_config("2h");
    server.hangup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while every().await != "2h" {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the schedules"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(server);
}
