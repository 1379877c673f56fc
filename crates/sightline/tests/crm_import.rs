//! CRM import with record linkage, end to end on both backends: web profiles in through the
//! tracking API, a CRM export in through `sightline import crm` and the API, links checked
//! through the Profile API and the command line, the review queue through both.

mod common;

use common::{backends, client, credentials, get_json, send_ok, sightline, Backend, Server};
use serde_json::{json, Value};
use std::path::Path;

const GIVEN: [&str; 30] = [
    "olivia", "liam", "emma", "noah", "amelia", "oliver", "isla", "jack", "sophia", "william",
    "ava", "henry", "grace", "leo", "chloe", "lucas", "zoe", "thomas", "ella", "james", "ruby",
    "oscar", "freya", "george", "poppy", "arthur", "evie", "harry", "daisy", "alfie",
];
const SURNAMES: [&str; 30] = [
    "smith", "jones", "williams", "brown", "wilson", "taylor", "nguyen", "johnson", "martin",
    "white", "anderson", "walker", "thompson", "harris", "lee", "ryan", "robinson", "kelly",
    "king", "davis", "wright", "evans", "roberts", "green", "hall", "wood", "jackson", "clarke",
    "patel", "khan",
];

/// Person `n` of the synthetic population: given name, surname, date of birth, postcode.
fn person(n: usize) -> (String, String, String, String) {
    let given = GIVEN[n % 30].to_owned();
    let surname = SURNAMES[(11 * (n / 30) + n) % 30].to_owned();
    let dob = format!(
        "{}-{:02}-{:02}",
        1950 + (n * 7) % 50,
        1 + n % 12,
        1 + (n * 11) % 28
    );
    let postcode = format!("{}", 2000 + n % 25);
    (given, surname, dob, postcode)
}

fn email(n: usize) -> String {
    let (given, surname, _, _) = person(n);
    format!("{given}.{surname}{n}@example.com")
}

/// A typo: the last letter of the given name replaced.
fn typo(name: &str) -> String {
    format!("{}q", &name[..name.len() - 1])
}

const MAPPING: &str = r#"
id_column = "customer_id"
id_type = "crm_id"
source = "crm"

[identifiers]
email = "email"

[traits]
first_name = "first_name"
last_name = "last_name"
dob = "birthday"
postcode = "postcode"

[linkage]
threshold = 0.05
auto_link_threshold = 0.99
"#;

/// The CRM export: exact-email copies of web people 0..60, misspelt copies without email of
/// 60..90, new people 200..240 with misspelt duplicates of 200..210 inside the file, an
/// over-merge (u100's email, u101's name), two borderline records, and bad rows.
fn crm_csv() -> String {
    let mut rows = vec!["customer_id,first_name,last_name,email,dob,postcode".to_owned()];
    for n in 0..60 {
        let (g, s, d, p) = person(n);
        let email = email(n).to_uppercase();
        rows.push(format!("c{n},{g},{s},{email},{d},{p}"));
    }
    for n in 60..90 {
        let (g, s, d, p) = person(n);
        rows.push(format!("c{n},{},{s},,{d},{p}", typo(&g)));
    }
    for n in 200..240 {
        let (g, s, d, p) = person(n);
        rows.push(format!("c{n},{g},{s},{},{d},{p}", email(n)));
    }
    for n in 200..210 {
        let (g, s, d, p) = person(n);
        rows.push(format!("d{n},{},{s},,{d},{p}", typo(&g)));
    }
    let (g, s, d, p) = person(101);
    rows.push(format!("c900,{g},{s},{},{d},{p}", email(100)));
    // Borderline: same surname and postcode, another given name, the birth year off.
    for (id, n) in [("c901", 102), ("c902", 103)] {
        let (_, s, d, p) = person(n);
        let year: usize = d[..4].parse().unwrap();
        let dob = format!("{}{}", year + 3, &d[4..]);
        rows.push(format!("{id},{},{s},,{dob},{p}", GIVEN[(n + 5) % 30]));
    }
    rows.push("c5,again,duplicate,,1970-01-01,2001".into());
    rows.push("c950,too,few".into());
    rows.push(",no,id,,1970-01-01,2001".into());
    rows.join("\n") + "\n"
}

fn run(backend: &Backend, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let output = sightline(&refs);
    assert!(
        output.status.success(),
        "sightline {all:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn run_json(backend: &Backend, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_slice(&run(backend, &all).stdout).expect("JSON output")
}

async fn profile(server: &Server, token: &str, id: &str) -> Value {
    get_json(server, token, &format!("/api/v1/profiles/{id}")).await
}

/// Polls (bounded) until `done` holds for the profile an identifier names.
async fn wait_for(server: &Server, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1000 {
        let found = profile(server, token, id).await;
        if done(&found) {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("profile {id} never reached the expected state");
}

async fn same_profile(server: &Server, token: &str, a: &str, b: &str) -> bool {
    let (a, b) = (
        profile(server, token, a).await,
        profile(server, token, b).await,
    );
    a["id"].is_i64() && a["id"] == b["id"]
}

fn link_for<'a>(report: &'a Value, left: &str) -> &'a Value {
    report["auto_links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["left"] == left)
        .unwrap_or_else(|| panic!("no automatic link for {left}: {report}"))
}

fn review_for(report: &Value, left: &str) -> i64 {
    report["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["left"] == left)
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("no review item for {left}: {report}"))
}

#[tokio::test]
async fn crm_import_links_records_into_profiles_with_review_and_merge_protection() {
    for backend in backends("crm_import").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let token = creds.token.as_str();
        let batch: Vec<Value> = (0..120)
            .map(|n| {
                let (g, s, d, p) = person(n);
                json!({"type": "identify", "userId": format!("u{n}"), "traits": {
                    "email": email(n), "first_name": g, "last_name": s,
                    "birthday": d, "postcode": p}})
            })
            .collect();
        send_ok(
            &server,
            &creds.write_key,
            "/v1/batch",
            json!({"batch": batch}),
        )
        .await;
        wait_for(&server, token, "user_id:u119", |p| p["id"].is_i64()).await;

        let temp = common::temp_dir("crm");
        let dir = temp.path();
        let (csv, mapping) = (dir.join("customers.csv"), dir.join("mapping.toml"));
        std::fs::write(&csv, crm_csv()).unwrap();
        std::fs::write(&mapping, MAPPING).unwrap();
        let path = |p: &Path| p.display().to_string();
        let report = run_json(
            &backend,
            &["import", "crm", &path(&csv), "--mapping", &path(&mapping)],
        );

        // Bad rows are reported with their lines; every good row is imported.
        let bad: Vec<(i64, String)> = report["bad_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["line"].as_i64().unwrap(),
                    b["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(bad.len(), 3, "{name}: {bad:?}");
        assert_eq!(bad[0].0, 145, "{name}: {bad:?}");
        assert!(
            bad[0].1.contains("duplicate id `c5` (first on line 7)"),
            "{name}: {bad:?}"
        );
        assert!(bad[1].1.contains("expected 6 fields"), "{name}: {bad:?}");
        assert!(bad[2].1.contains("empty id"), "{name}: {bad:?}");
        assert_eq!(report["records"], 143, "{name}");
        assert_eq!(report["logged"], 143, "{name}");
        // 60 exact emails, and the over-merge record's email.
        assert_eq!(report["joined_existing"], 61, "{name}");

        // The deterministic pass: an exact (differently cased) email joins the web profile.
        let joined = wait_for(&server, token, "crm_id:c7", |p| p["id"].is_i64()).await;
        assert_eq!(
            joined["id"],
            profile(&server, token, "user_id:u7").await["id"],
            "{name}"
        );
        assert_eq!(joined["traits"]["first_name"], person(7).0, "{name}");

        // A misspelt given name with the same surname, birth date and postcode links
        // automatically into the existing profile, the waterfall in its merge history.
        let misspelt = link_for(&report, "crm_id:c60");
        assert_eq!(misspelt["right"], "user_id:u60", "{name}: {misspelt}");
        assert_eq!(misspelt["outcome"], "merged", "{name}: {misspelt}");
        assert!(
            misspelt["match_probability"].as_f64().unwrap() >= 0.99,
            "{name}"
        );
        let u60 = profile(&server, token, "user_id:u60").await["id"].clone();
        wait_for(&server, token, "crm_id:c60", |p| p["id"] == u60).await;
        let merges = get_json(&server, token, "/api/v1/profiles/crm_id:c60/merges").await;
        let record = merges["merges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == "record_linkage" && r["change"] == "merge")
            .unwrap_or_else(|| panic!("{name}: no record linkage merge in {merges}"))
            .clone();
        let evidence = &record["linkage"];
        assert_eq!(evidence["decision"], "auto_link", "{name}");
        let fields = evidence["fields"].as_array().unwrap();
        let given = fields.iter().find(|f| f["column"] == "first_name").unwrap();
        assert!(
            given["label"].as_str().unwrap().starts_with("jaro_winkler"),
            "{name}: {given}"
        );
        assert!(given["weight"].as_f64().unwrap() > 0.0, "{name}: {given}");
        let dob = fields.iter().find(|f| f["column"] == "dob").unwrap();
        assert_eq!(dob["label"], "exact", "{name}: {dob}");
        let explained = merges["explanation"].as_array().unwrap();
        assert!(
            explained
                .iter()
                .any(|s| s.as_str().unwrap().contains("by record linkage")),
            "{name}: {explained:?}"
        );
        let text =
            String::from_utf8(run(&backend, &["profile", "explain", "crm_id:c60"]).stdout).unwrap();
        assert!(text.contains("by record linkage"), "{name}: {text}");
        assert!(
            text.contains("linked automatically above the upper threshold"),
            "{name}: {text}"
        );
        assert!(text.contains("first_name"), "{name}: {text}");

        // The file against itself: a misspelt duplicate of a new person joins it.
        let duplicate = link_for(&report, "crm_id:c200");
        assert_eq!(duplicate["right"], "crm_id:d200", "{name}: {duplicate}");
        assert_eq!(duplicate["pass"], "dedupe", "{name}");
        assert!(
            same_profile(&server, token, "crm_id:c200", "crm_id:d200").await,
            "{name}"
        );

        // Merge protection: c900 holds u100's email (so it is u100's profile) and u101's
        // name; the link to u101 would join two user ids and is refused, visibly.
        let over = link_for(&report, "crm_id:c900");
        assert_eq!(over["right"], "user_id:u101", "{name}: {over}");
        assert_eq!(over["outcome"], "refused", "{name}: {over}");
        assert_eq!(over["rule"], "conflicting_user_id", "{name}: {over}");
        assert!(
            !same_profile(&server, token, "user_id:u100", "user_id:u101").await,
            "{name}"
        );
        let merges = get_json(&server, token, "/api/v1/profiles/user_id:u101/merges").await;
        let refused = merges["merges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["change"] == "refuse")
            .unwrap_or_else(|| panic!("{name}: no refusal in {merges}"));
        assert_eq!(refused["rule"], "conflicting_user_id", "{name}");
        assert_eq!(refused["linkage"]["right_id"], "user_id:u101", "{name}");

        // Borderline pairs wait for a person: accept joins them, reject keeps them apart.
        let accept = review_for(&report, "crm_id:c901");
        let reject = review_for(&report, "crm_id:c902");
        let pending = run_json(&backend, &["link", "review", "list"]);
        let listed: Vec<i64> = pending
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert!(
            listed.contains(&accept) && listed.contains(&reject),
            "{name}: {listed:?}"
        );
        let item = pending
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == accept)
            .unwrap();
        assert_eq!(item["right"], "user_id:u102", "{name}: {item}");
        let p = item["match_probability"].as_f64().unwrap();
        assert!((0.05..0.99).contains(&p), "{name}: {p}");
        assert!(
            item["evidence"]["fields"].as_array().unwrap().len() >= 4,
            "{name}: {item}"
        );
        let text = String::from_utf8(run(&backend, &["link", "review", "list"]).stdout).unwrap();
        assert!(
            text.contains(&format!(
                "review {accept} [pending] crm_id:c901 <-> user_id:u102"
            )),
            "{name}: {text}"
        );
        assert!(text.contains("last_name"), "{name}: {text}");

        let accepted = client()
            .post(format!(
                "{}/api/v1/link-reviews/{accept}/accept",
                server.url
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 200, "{name}");
        let accepted: Value = accepted.json().await.unwrap();
        assert_eq!(accepted["status"], "accepted", "{name}");
        let u102 = profile(&server, token, "user_id:u102").await["id"].clone();
        wait_for(&server, token, "crm_id:c901", |p| p["id"] == u102).await;
        let merges = get_json(&server, token, "/api/v1/profiles/crm_id:c901/merges").await;
        let record = merges["merges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == "record_linkage")
            .unwrap();
        assert_eq!(record["linkage"]["decision"], "accepted", "{name}");
        assert_eq!(record["linkage"]["review"], accept, "{name}");
        let again = client()
            .post(format!(
                "{}/api/v1/link-reviews/{accept}/accept",
                server.url
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 409, "{name}");

        let rejected = run_json(&backend, &["link", "review", "reject", &reject.to_string()]);
        assert_eq!(rejected["status"], "rejected", "{name}");
        assert!(
            !same_profile(&server, token, "crm_id:c902", "user_id:u103").await,
            "{name}"
        );

        // Importing the same file again logs nothing new and queues nothing again.
        let again = run_json(
            &backend,
            &["import", "crm", &path(&csv), "--mapping", &path(&mapping)],
        );
        assert_eq!(again["logged"], 0, "{name}: {again}");
        assert!(
            again["reviews"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["id"].is_null()),
            "{name}: {again}"
        );
        assert!(
            !same_profile(&server, token, "crm_id:c902", "user_id:u103").await,
            "{name}"
        );

        // The log is the truth: a rebuild from it gives the same profiles and histories.
        let served = get_json(&server, token, "/api/v1/profiles/crm_id:c60/merges").await;
        run(&backend, &["identity", "rebuild"]);
        let rebuilt: Value = serde_json::from_slice(
            &run(&backend, &["profile", "explain", "crm_id:c60", "--json"]).stdout,
        )
        .unwrap();
        assert_eq!(rebuilt, served["merges"], "{name}");

        // The API import: the same flow, the mapping as JSON; a body over the limit is 413.
        let upload = client()
            .post(format!("{}/api/v1/imports/crm", server.url))
            .bearer_auth(token)
            .json(&json!({
                "file": "upload.csv",
                "csv": format!("id,mail\na1,{}\n,nobody@example.com\n", email(110)),
                "mapping": {"id_column": "id", "identifiers": {"mail": "email"},
                            "linkage": {"profiles": false, "dedupe": false}},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), 200, "{name}");
        let uploaded: Value = upload.json().await.unwrap();
        assert_eq!(uploaded["logged"], 1, "{name}: {uploaded}");
        assert_eq!(uploaded["bad_rows"][0]["line"], 3, "{name}: {uploaded}");
        assert!(
            same_profile(&server, token, "crm_id:a1", "user_id:u110").await,
            "{name}"
        );
        let bad_mapping = client()
            .post(format!("{}/api/v1/imports/crm", server.url))
            .bearer_auth(token)
            .json(&json!({"csv": "id\n1\n", "mapping": {"id_column": "id", "colour": 1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_mapping.status(), 400, "{name}");
        let message: Value = bad_mapping.json().await.unwrap();
        assert!(message.to_string().contains("colour"), "{name}: {message}");
        let too_large = client()
            .post(format!("{}/api/v1/imports/crm", server.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(vec![b' '; 32 * 1024 * 1024 + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(too_large.status(), 413, "{name}");
        let message: Value = too_large.json().await.unwrap();
        assert!(
            message.to_string().contains("33554432"),
            "{name}: {message}"
        );
    }
}
