//! The governance registry through the binary, on SQLite and PostgreSQL: stored scans
//! (`scan`, `scan list`, `scan diff` by id, `scan import`).
//!
//! The tests that scan need Chromium, so run only with the `browser` feature; without it
//! their helpers are unused.
#![cfg_attr(not(feature = "browser"), allow(dead_code, unused_imports))]

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
                    "var s = document.createElement('script'); \
                     s.src = 'http://px.pixelhub.example/p.js?ev=view'; \
                     document.head.appendChild(s);",
                )
            }),
        )
        .route(
            "/p.js",
            axum::routing::get(|| async {
                ([("content-type", "application/javascript")], "/* pixel */")
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Site { port, tags_on }
}

/// A journey file for the site; `inventory` is the vendor list it declares.
fn journey(dir: &Path, site: &Site, inventory: &[&str]) -> PathBuf {
    let path = dir.join(format!(
        "journey-{}.toml",
        inventory.join("-").replace(' ', "_")
    ));
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
/// The catalog knows the pixel's host as the vendor PixelHub.
async fn scan(backend: &Backend, journey: &Path, out: &Path) -> i64 {
    let (backend, journey, out) = (backend.clone(), journey.to_owned(), out.to_owned());
    let catalog = out.with_extension("catalog.toml");
    std::fs::write(
        &catalog,
        "[[vendor]]\nname = \"PixelHub\"\ncategory = \"advertising\"\nhosts = [\"pixelhub.example\"]\n",
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        with_store(
            &backend,
            &[
                "scan",
                journey.to_str().unwrap(),
                "--allow-private-network",
                "--out",
                out.to_str().unwrap(),
                "--scenario",
                "no-interaction",
                "--catalog",
                catalog.to_str().unwrap(),
            ],
        )
    })
    .await
    .unwrap();
    common::scan_id(&stdout(&output))
}

#[cfg(feature = "browser")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_are_stored_listed_and_diffed_by_id() {
    let site = site().await;
    for backend in backends("stored_scans").await {
        let name = backend.name();
        let temp = common::temp_dir(&format!("registry-stored-{name}"));
        let dir = temp.path();
        let journey = journey(dir, &site, &["Google Tag Manager"]);
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

/// Creates a token of a role for a person; returns the secret.
fn token(backend: &Backend, role: &str, name: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--role", role];
    if let Some(name) = name {
        args.extend(["--name", name]);
    }
    sightline_json(backend, &args)["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs a command that must fail; returns its stderr.
fn refused(backend: &Backend, args: &[&str]) -> String {
    let output = with_store(backend, args);
    assert!(
        !output.status.success(),
        "{args:?} should fail: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_of(backend: &Backend, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&stdout(&with_store(backend, &all))).unwrap()
}

const META: &[&str] = &[
    "tags",
    "propose",
    "--vendor",
    "Meta",
    "--purpose",
    "conversion measurement",
    "--owner",
    "growth",
    "--classification",
    "optional",
    "--consent-purpose",
    "advertising",
    "--step",
    "shop/checkout",
    "--collects",
    "email_sha256",
    "--review-date",
    "2027-06-01",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tag_workflow_refuses_self_approval_and_keeps_an_append_only_log() {
    for backend in backends("tag_workflow").await {
        let name = backend.name();
        let ann_marketing = token(&backend, "marketing", Some("ann"));
        let ann_security = token(&backend, "security", Some("ann"));
        let sam = token(&backend, "security", Some("sam"));
        let admin = token(&backend, "admin", None);

        let with = |args: &[&str], token: &str| -> Vec<String> {
            let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            all.extend(["--token".to_string(), token.to_string()]);
            all
        };
        let as_str = |v: &[String]| {
            v.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\u{1}")
        };
        let run = |args: Vec<String>| {
            let joined = as_str(&args);
            json_of(&backend, &joined.split('\u{1}').collect::<Vec<_>>())
        };
        let fail = |args: Vec<String>| {
            let joined = as_str(&args);
            refused(&backend, &joined.split('\u{1}').collect::<Vec<_>>())
        };

        // Proposing needs marketing (or admin); security may not.
        let err = fail(with(META, &sam));
        assert!(err.contains("marketing or admin"), "{name}: {err}");
        let tag = run(with(META, &ann_marketing));
        assert_eq!(tag["status"], "proposed", "{name}");
        assert_eq!(tag["proposed_by"], "ann", "{name}");
        let id = tag["id"].to_string();

        // Approving needs security, and not the proposer under another token.
        let err = fail(with(&["tags", "approve", &id], &admin));
        assert!(err.contains("security role"), "{name}: {err}");
        let err = fail(with(&["tags", "approve", &id], &ann_marketing));
        assert!(err.contains("security role"), "{name}: {err}");
        let err = fail(with(&["tags", "approve", &id], &ann_security));
        assert!(err.contains("ann proposed this revision"), "{name}: {err}");
        let err = fail(with(&["tags", "retire", &id, "--reason", "x"], &admin));
        assert!(err.contains("reject the proposal instead"), "{name}: {err}");
        let unchanged = json_of(&backend, &["tags", "list"]);
        assert_eq!(
            unchanged[0]["version"], 1,
            "{name}: refusals change nothing"
        );

        let approved = run(with(
            &["tags", "approve", &id, "--reason", "DPA signed"],
            &sam,
        ));
        assert_eq!(approved["status"], "approved", "{name}");
        assert_eq!(approved["decided_by"], "sam", "{name}");
        let err = fail(with(&["tags", "approve", &id], &sam));
        assert!(err.contains("only a proposed tag"), "{name}: {err}");
        let err = fail(with(&["tags", "approve", "999"], &sam));
        assert!(err.contains("no tag with id 999"), "{name}: {err}");

        // The same through the API, as the caller's token.
        let server = common::Server::start(&backend, &[]);
        let http = common::client();
        let url = |path: &str| format!("{}{path}", server.url);
        let hotjar = serde_json::json!({"tag": {
            "vendor": "Hotjar", "purpose": "heatmaps", "owner": "ux",
            "classification": "questionable", "consent_purpose": "analytics",
            "environment": "staging"}, "reason": "trial"});
        let answer = http
            .post(url("/api/v1/tags"))
            .bearer_auth(&sam)
            .json(&hotjar)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{name}");
        let answer = http
            .post(url("/api/v1/tags"))
            .bearer_auth(&admin)
            .json(&hotjar)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201, "{name}");
        let hotjar_id = answer.json::<Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        let decide = |who: &str, action: &str, reason: &str| {
            http.post(url(&format!("/api/v1/tags/{hotjar_id}/{action}")))
                .bearer_auth(who)
                .json(&serde_json::json!({"reason": reason}))
                .send()
        };
        assert_eq!(
            decide(&admin, "approve", "").await.unwrap().status(),
            403,
            "{name}"
        );
        assert_eq!(
            decide(&sam, "reject", "").await.unwrap().status(),
            400,
            "{name}: a reason is required"
        );
        let rejected = decide(&sam, "reject", "no DPA").await.unwrap();
        assert_eq!(rejected.status(), 200, "{name}");
        assert_eq!(
            decide(&sam, "approve", "").await.unwrap().status(),
            409,
            "{name}"
        );
        let bad = http
            .post(url("/api/v1/tags"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"tag": {"vendor": ""}}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{name}");
        let listed = common::get_json(&server, &sam, "/api/v1/tags?status=rejected").await;
        assert_eq!(listed["tags"][0]["vendor"], "Hotjar", "{name}");

        // Every accepted change is in the log, in order, with who and why.
        let log = common::get_json(&server, &sam, "/api/v1/tags/log").await;
        let log = log["log"].as_array().unwrap();
        let lines: Vec<(String, String, String)> = log
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["actor"].as_str().unwrap().to_string(),
                    e["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let admin_id = format!("token:{}", lines[2].1.trim_start_matches("token:"));
        assert_eq!(
            lines,
            [
                ("propose".to_string(), "ann".to_string(), String::new()),
                ("approve".into(), "sam".into(), "DPA signed".into()),
                ("propose".into(), admin_id, "trial".into()),
                ("reject".into(), "sam".into(), "no DPA".into()),
            ],
            "{name}"
        );
        assert_eq!(log[1]["from"], "proposed", "{name}");
        assert_eq!(log[1]["to"], "approved", "{name}");
        let cli_log = stdout(&with_store(&backend, &["tags", "log", &id]));
        assert_eq!(cli_log.lines().count(), 2, "{name}: {cli_log}");
        drop(server);
    }
}

fn item<'a>(items: &'a Value, kind: &str, vendor: &str) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["finding"]["kind"] == kind && i["finding"]["vendor"] == vendor)
        .unwrap_or_else(|| panic!("no {kind} item for {vendor} in {items}"))
}

#[cfg(feature = "browser")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_backlog_adoption_and_vendor_risk_are_fed_by_scans() {
    let site = site().await;
    site.tags_on.store(true, Ordering::SeqCst);
    for backend in backends("registry_flow").await {
        let name = backend.name();
        let temp = common::temp_dir(&format!("registry-flow-{name}"));
        let dir = temp.path();
        let mia = token(&backend, "marketing", Some("mia"));
        let sam = token(&backend, "security", Some("sam"));

        // Journeys: import the scanner file, export it again, and scan the export.
        let zombie_journey = journey(dir, &site, &["Hotjar", "Google Tag Manager"]);
        let imported = json_of(
            &backend,
            &[
                "journey",
                "import",
                zombie_journey.to_str().unwrap(),
                "--token",
                &mia,
            ],
        );
        assert_eq!(imported["name"], "shop", "{name}");
        assert_eq!(
            imported["settings"]["inventory"]["vendors"][0], "Hotjar",
            "{name}"
        );
        let exported = dir.join("exported.toml");
        stdout(&with_store(
            &backend,
            &[
                "journey",
                "export",
                "shop",
                "--out",
                exported.to_str().unwrap(),
            ],
        ));
        let first = scan(&backend, &exported, &dir.join("s1")).await;

        let err = refused(
            &backend,
            &[
                "journey",
                "import",
                zombie_journey.to_str().unwrap(),
                "--token",
                &sam,
            ],
        );
        assert!(err.contains("marketing or admin"), "{name}: {err}");
        let malformed = dir.join("malformed.toml");
        std::fs::write(
            &malformed,
            "name = \"shop\"\n[[steps]]\nname = \"landing\"\nurl = \"ftp://x\"\n",
        )
        .unwrap();
        let err = refused(
            &backend,
            &[
                "journey",
                "import",
                malformed.to_str().unwrap(),
                "--token",
                &mia,
            ],
        );
        assert!(err.contains("steps[0].url"), "{name}: {err}");
        let listed = json_of(&backend, &["journey", "list"]);
        assert_eq!(listed.as_array().unwrap().len(), 1, "{name}");
        assert_eq!(
            listed[0]["version"], 1,
            "{name}: a refused import changes nothing"
        );
        json_of(
            &backend,
            &[
                "journey",
                "add",
                "blog",
                "--step",
                "home=http://blog.example/",
                "--token",
                &mia,
            ],
        );
        let err = refused(
            &backend,
            &[
                "journey",
                "add",
                "blog",
                "--step",
                "home=http://blog.example/",
                "--token",
                &mia,
            ],
        );
        assert!(err.contains("already exists"), "{name}: {err}");
        let err = refused(
            &backend,
            &["journey", "add", "x", "--step", "nourl", "--token", &mia],
        );
        assert!(err.contains("NAME=URL"), "{name}: {err}");
        stdout(&with_store(
            &backend,
            &["journey", "delete", "blog", "--token", &mia],
        ));
        let err = refused(&backend, &["journey", "delete", "blog", "--token", &mia]);
        assert!(err.contains("no journey named"), "{name}: {err}");

        // The first scan's findings are open backlog items.
        let items = json_of(&backend, &["backlog", "list", "--journey", "shop"]);
        let zombie = item(&items, "zombie_tag", "Hotjar");
        assert_eq!(zombie["status"], "open", "{name}");
        assert_eq!(zombie["first_seen_scan"], first, "{name}");
        let fourth = item(&items, "fourth_party", "PixelHub");
        assert_eq!(fourth["status"], "open", "{name}");
        let zombie_id = zombie["id"].to_string();
        let assigned = json_of(
            &backend,
            &[
                "backlog",
                "assign",
                &zombie_id,
                "--owner",
                "web",
                "--deadline",
                "2020-01-01",
                "--token",
                &mia,
            ],
        );
        assert_eq!(assigned["overdue"], true, "{name}");
        let overdue = json_of(
            &backend,
            &["backlog", "list", "--overdue", "--owner", "web"],
        );
        assert_eq!(overdue.as_array().unwrap().len(), 1, "{name}");
        let none = json_of(&backend, &["backlog", "list", "--severity", "critical"]);
        assert_eq!(none, Value::Array(vec![]), "{name}");
        let err = refused(
            &backend,
            &[
                "backlog",
                "accept",
                &zombie_id,
                "--reason",
                "r",
                "--expires",
                "2099-01-01",
                "--token",
                &mia,
            ],
        );
        assert!(err.contains("security or admin"), "{name}: {err}");

        // Vendor risk: the tag manager's review is overdue; scans add what it loads.
        let risk = json_of(
            &backend,
            &[
                "vendor",
                "set",
                "Google Tag Manager",
                "--rating",
                "medium",
                "--dpa",
                "signed",
                "--last-review",
                "2020-01-01",
                "--token",
                &sam,
            ],
        );
        assert_eq!(risk["overdue"], true, "{name}");
        let err = refused(
            &backend,
            &["vendor", "set", "X", "--rating", "meh", "--token", &sam],
        );
        assert!(
            err.contains("low, medium, high or critical"),
            "{name}: {err}"
        );
        let err = refused(
            &backend,
            &["vendor", "set", "X", "--rating", "low", "--token", &mia],
        );
        assert!(err.contains("security or admin"), "{name}: {err}");

        // A fixed inventory: the next scan no longer sees the zombie tag and verifies it.
        let fixed_journey = journey(dir, &site, &["Google Tag Manager"]);
        json_of(
            &backend,
            &[
                "journey",
                "import",
                fixed_journey.to_str().unwrap(),
                "--token",
                &mia,
            ],
        );
        let second = scan(&backend, &fixed_journey, &dir.join("s2")).await;
        let items = json_of(&backend, &["backlog", "list"]);
        let zombie = item(&items, "zombie_tag", "Hotjar");
        assert_eq!(zombie["status"], "verified", "{name}");
        assert_eq!(zombie["overdue"], false, "{name}");
        assert_eq!(
            item(&items, "fourth_party", "PixelHub")["status"],
            "open",
            "{name}"
        );
        let err = refused(&backend, &["backlog", "fix", &zombie_id, "--token", &mia]);
        assert!(err.contains("only an open item"), "{name}: {err}");
        let vendors = json_of(&backend, &["vendor", "list", "--overdue"]);
        assert_eq!(vendors[0]["vendor"], "Google Tag Manager", "{name}");
        assert_eq!(
            vendors[0]["sub_processors"],
            serde_json::json!(["PixelHub"]),
            "{name}"
        );

        // The zombie comes back: the item reopens.
        let third = scan(&backend, &zombie_journey, &dir.join("s3")).await;
        let items = json_of(&backend, &["backlog", "list"]);
        let zombie = item(&items, "zombie_tag", "Hotjar");
        assert_eq!(zombie["status"], "open", "{name}");
        let notes: Vec<&str> = zombie["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["note"].as_str().unwrap())
            .collect();
        assert_eq!(
            notes,
            [
                format!("found by scan {first}"),
                format!("verified: scan {second} no longer sees it"),
                format!("reopened: scan {third} sees it again"),
            ],
            "{name}"
        );
        // Importing the same report again changes nothing.
        let before = json_of(&backend, &["backlog", "list"]);
        stdout(&with_store(
            &backend,
            &[
                "scan",
                "import",
                dir.join("s3/report.json").to_str().unwrap(),
            ],
        ));
        let after = json_of(&backend, &["backlog", "list"]);
        let statuses = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|i| i["status"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(statuses(&before), statuses(&after), "{name}");

        // Adoption: the vendors the first scan saw that the inventory lacks become proposals.
        let adopted = json_of(
            &backend,
            &["tags", "adopt", &first.to_string(), "--token", &mia],
        );
        let vendors: Vec<&str> = adopted
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["vendor"].as_str().unwrap())
            .collect();
        assert_eq!(vendors, ["Google Tag Manager", "PixelHub"], "{name}");
        assert_eq!(adopted[1]["classification"], "questionable", "{name}");
        assert_eq!(adopted[1]["steps"][0]["step"], "landing", "{name}");
        let again = json_of(
            &backend,
            &["tags", "adopt", &first.to_string(), "--token", &mia],
        );
        assert_eq!(again, Value::Array(vec![]), "{name}: nothing left to adopt");
        let err = refused(&backend, &["tags", "adopt", "999", "--token", &mia]);
        assert!(err.contains("no stored scan 999"), "{name}: {err}");

        // The same registry through the API.
        let server = common::Server::start(&backend, &[]);
        let backlog =
            common::get_json(&server, &sam, "/api/v1/backlog?journey=shop&status=open").await;
        assert!(
            backlog["items"].as_array().unwrap().len() >= 2,
            "{name}: {backlog}"
        );
        let http = common::client();
        let accept = http
            .post(format!("{}/api/v1/backlog/{zombie_id}", server.url))
            .bearer_auth(&sam)
            .json(&serde_json::json!({"action": "accept_risk", "reason": "legacy page, removal planned", "expires": "2099-01-01"}))
            .send()
            .await
            .unwrap();
        assert_eq!(accept.status(), 200, "{name}");
        let accepted: Value = accept.json().await.unwrap();
        assert_eq!(accepted["status"], "accepted_risk", "{name}");
        assert_eq!(accepted["acceptance"]["by"], "sam", "{name}");
        let invalid = http
            .post(format!("{}/api/v1/backlog/{zombie_id}", server.url))
            .bearer_auth(&sam)
            .json(&serde_json::json!({"action": "fix"}))
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), 409, "{name}");
        let unknown = http
            .post(format!("{}/api/v1/backlog/99999", server.url))
            .bearer_auth(&sam)
            .json(&serde_json::json!({"action": "fix"}))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404, "{name}");
        let exported = http
            .get(format!("{}/api/v1/journeys/shop/export", server.url))
            .bearer_auth(&mia)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(exported.contains("[[steps]]"), "{name}: {exported}");
        let bad_import = http
            .post(format!("{}/api/v1/journeys/import", server.url))
            .bearer_auth(&mia)
            .body("name = ")
            .send()
            .await
            .unwrap();
        assert_eq!(bad_import.status(), 400, "{name}");
        let scans = common::get_json(&server, &mia, "/api/v1/scans").await;
        assert_eq!(scans["scans"].as_array().unwrap().len(), 4, "{name}");
        let vendors = common::get_json(&server, &mia, "/api/v1/vendors?overdue=true").await;
        assert_eq!(
            vendors["vendors"][0]["vendor"], "Google Tag Manager",
            "{name}"
        );
        drop(server);
    }
}

/// A stored journey is written by whoever holds a marketing token and scanned by someone
/// else: it may not carry Chromium flags beyond the vetted few, nor waits over a minute.
/// A loopback URL may be stored; scanning it needs `--allow-private-network`.
#[cfg(feature = "browser")]
#[tokio::test]
async fn journeys_with_unsafe_chromium_flags_or_waits_are_refused() {
    for backend in backends("registry_unsafe").await {
        let name = backend.name();
        let temp = common::temp_dir(&format!("registry-unsafe-{name}"));
        let dir = temp.path();
        let mia = token(&backend, "marketing", Some("mia"));
        let file = |text: &str| {
            let path = dir.join("journey.toml");
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let flagged = file(
            "name = \"shop\"\n[browser]\nargs = [\"--renderer-cmd-prefix=touch /tmp/pwned\"]\n\
             [[steps]]\nname = \"landing\"\nurl = \"http://127.0.0.1:9/\"\n",
        );
        let err = refused(&backend, &["journey", "import", &flagged, "--token", &mia]);
        assert!(err.contains("--renderer-cmd-prefix"), "{name}: {err}");
        assert!(err.contains("not allowed"), "{name}: {err}");
        assert!(err.contains("--window-size"), "{name}: {err}");
        // The scanner refuses the file itself too, before any browser starts.
        let scanned = sightline(&["scan", &flagged, "--out", dir.to_str().unwrap()]);
        assert_eq!(scanned.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&scanned.stderr);
        assert!(stderr.contains("--renderer-cmd-prefix"), "{name}: {stderr}");

        let waiting = file(
            "name = \"shop\"\n[[steps]]\nname = \"landing\"\nurl = \"http://127.0.0.1:9/\"\n\
             actions = [{ wait_ms = 86400000 }]\n",
        );
        let err = refused(&backend, &["journey", "import", &waiting, "--token", &mia]);
        assert!(err.contains("wait_ms"), "{name}: {err}");
        assert!(err.contains("60000"), "{name}: {err}");
        let listed = json_of(&backend, &["journey", "list"]);
        assert_eq!(listed, Value::Array(vec![]), "{name}");

        // A loopback journey is stored, and exported as it is …
        let local = file(
            "name = \"shop\"\n[browser]\nargs = [\"--ignore-certificate-errors\"]\n\
             [[steps]]\nname = \"landing\"\nurl = \"http://127.0.0.1:9/\"\n",
        );
        json_of(&backend, &["journey", "import", &local, "--token", &mia]);
        let exported = dir.join("exported.toml");
        stdout(&with_store(
            &backend,
            &[
                "journey",
                "export",
                "shop",
                "--out",
                exported.to_str().unwrap(),
            ],
        ));
        // … but not scanned without the opt-in (refused before Chromium is looked for).
        let scanned = with_store(
            &backend,
            &[
                "scan",
                exported.to_str().unwrap(),
                "--out",
                dir.join("out").to_str().unwrap(),
            ],
        );
        assert_eq!(scanned.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&scanned.stderr);
        assert!(
            stderr.contains("--allow-private-network"),
            "{name}: {stderr}"
        );
        assert!(stderr.contains("steps[0].url"), "{name}: {stderr}");
    }
}
