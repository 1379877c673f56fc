//! Vendor destinations end to end: the real binary on both backends, a GA4 destination
//! added on the command line (its API secret read from the environment), a Meta one added
//! through the API, both delivering to local fakes of the vendors' APIs that check each
//! request against the documented schema; consent suppression, a credential that is never
//! shown back, and a rotated credential through `destination set-credential`. Then a
//! TikTok destination from a destinations file, a LinkedIn one through the API and a
//! Google Ads one on the command line (a malformed credential refused), all delivering,
//! and each in the lineage graph with the fields of the request it receives.

mod common;

#[path = "../../activate/tests/fakes/mod.rs"]
mod fakes;

use common::{
    backends, client, credentials, deliveries, send_ok, sightline_json, Backend, Server, BIN,
};
use fakes::{Fake, Kind};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls `condition` every 50 ms until it holds; fails after 120 s.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `sightline ARGS --json` with `env` set; the output, whether it succeeded or not.
fn sightline_with_env(
    backend: &Backend,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    Command::new(BIN)
        .args(&all)
        .envs(env.iter().copied())
        .output()
        .expect("run sightline")
}

fn context(purposes: Value) -> Value {
    json!({"page": {"url": "https://shop.example/thanks"}, "userAgent": "Mozilla/5.0",
           "traits": {"email": "ann@example.com"}, "consent": {"purposes": purposes}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ga4_and_meta_receive_mapped_consented_events_from_the_binary() {
    for backend in backends("vendors").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let ga4 = Fake::start(Kind::Ga4, "mp-secret").await;
        let meta = Fake::start(Kind::Meta, "EAA-new").await;

        // GA4 on the command line: the secret comes from the environment only.
        let missing = sightline_with_env(
            &backend,
            &[
                "destination",
                "add",
                "analytics",
                "--type",
                "ga4",
                "--url",
                &ga4.url,
                "--setting",
                "measurement_id=G-TEST123",
                "--credential-env",
                "SL_TEST_UNSET_VAR",
            ],
            &[],
        );
        assert!(!missing.status.success(), "{name}");
        assert!(String::from_utf8_lossy(&missing.stderr).contains("SL_TEST_UNSET_VAR"));
        let added = sightline_with_env(
            &backend,
            &[
                "destination",
                "add",
                "analytics",
                "--type",
                "ga4",
                "--url",
                &ga4.url,
                "--setting",
                "measurement_id=G-TEST123",
                "--credential-env",
                "GA4_SECRET",
                "--json",
            ],
            &[("GA4_SECRET", "mp-secret")],
        );
        assert!(
            added.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let added: Value = serde_json::from_slice(&added.stdout).unwrap();
        assert_eq!(added["name"], "analytics");
        assert!(added.get("signing_secret").is_none(), "{name}: {added}");

        let server = Server::start(&backend, &[]);
        // Meta through the API, with a token that will be rotated.
        let created: Value = client()
            .post(format!("{}/api/v1/destinations", server.url))
            .bearer_auth(&creds.token)
            .json(&json!({"name": "meta", "type": "meta", "url": meta.url,
                          "settings": {"pixel_id": "1234567890"}, "credential": "EAA-old"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created["name"], "meta", "{name}: {created}");
        assert!(
            !created.to_string().contains("EAA-old"),
            "{name}: {created}"
        );
        let listed = sightline_json(&backend, &["destination", "list"]).to_string();
        assert!(
            !listed.contains("mp-secret") && !listed.contains("EAA-old"),
            "{name}: {listed}"
        );
        assert!(
            listed.contains("\"purposes\":[\"analytics\"]"),
            "{name}: {listed}"
        );
        assert!(
            listed.contains("\"purposes\":[\"advertising\"]"),
            "{name}: {listed}"
        );

        send_ok(&server, &creds.write_key, "/v1/batch", json!({"batch": [
            {"type": "track", "anonymousId": "a1", "userId": "u1", "event": "Order Completed", "messageId": "both",
             "properties": {"order_id": "o1", "revenue": 30, "currency": "EUR"},
             "context": context(json!({"analytics": true, "advertising": true}))},
            {"type": "page", "anonymousId": "a1", "name": "Thanks", "messageId": "analytics-only",
             "context": context(json!({"analytics": true, "advertising": false}))},
            {"type": "identify", "anonymousId": "a1", "userId": "u1", "messageId": "identify",
             "traits": {"plan": "pro"}, "context": context(json!({"analytics": true, "advertising": true}))},
        ]}))
        .await;

        wait_for("GA4 to accept two events", || {
            ga4.accepted_events().len() == 2
        })
        .await;
        let ga4_names: Vec<_> = ga4
            .accepted_events()
            .iter()
            .map(|e| e["name"].clone())
            .collect();
        assert_eq!(ga4_names, [json!("purchase"), json!("page_view")], "{name}");
        assert_eq!(ga4.seen()[0].query["api_secret"], "mp-secret");
        assert_eq!(ga4.problems(), Vec::<String>::new(), "{name}");

        // Meta refuses the old token: delivery holds, nothing becomes a dead letter.
        wait_for("Meta to refuse the old token", || !meta.seen().is_empty()).await;
        assert!(deliveries(&backend, "meta").is_empty(), "{name}");
        let rotated = sightline_with_env(
            &backend,
            &[
                "destination",
                "set-credential",
                "meta",
                "--credential-env",
                "META_TOKEN",
            ],
            &[("META_TOKEN", "EAA-new")],
        );
        assert!(
            rotated.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&rotated.stderr)
        );
        wait_for("Meta to accept the purchase", || {
            meta.accepted_events().len() == 1
        })
        .await;
        let purchase = &meta.accepted_events()[0];
        assert_eq!(purchase["event_name"], "Purchase");
        assert_eq!(purchase["event_id"], "both");
        assert_eq!(
            purchase["user_data"]["em"][0],
            json!(sightline_activate::vendor::sha256_hex("ann@example.com"))
        );
        assert_eq!(meta.problems(), Vec::<String>::new(), "{name}");

        wait_for("every outcome to be logged", || {
            deliveries(&backend, "meta").len() == 2 && deliveries(&backend, "analytics").len() == 2
        })
        .await;
        let meta_log = deliveries(&backend, "meta");
        assert_eq!(meta_log[0]["status"], "delivered", "{name}");
        assert_eq!(meta_log[1]["message_id"], "analytics-only");
        assert_eq!(
            meta_log[1]["status"], "suppressed",
            "{name}: advertising was refused"
        );
        server.terminate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiktok_linkedin_and_google_ads_receive_mapped_consented_events_and_show_in_lineage() {
    for backend in backends("vendors_ads").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let tiktok = Fake::start(Kind::Tiktok, "tt-token").await;
        let linkedin = Fake::start(Kind::Linkedin, "li-token").await;
        let google = Fake::start(Kind::GoogleAds, "dev-token:ya29.good").await;

        // TikTok from a destinations file, its token from the environment.
        let dir = common::temp_dir("vendors_ads");
        let file = dir.path().join("destinations.toml");
        std::fs::write(
            &file,
            format!(
                "[[destination]]\nname = \"tiktok\"\ntype = \"tiktok\"\nurl = \"{}\"\n\
                 credential_env = \"TIKTOK_TOKEN\"\n[destination.settings]\npixel_code = \"C4ABCDEF12345\"\n",
                tiktok.url
            ),
        )
        .unwrap();
        let imported = sightline_with_env(
            &backend,
            &["destination", "import", file.to_str().unwrap(), "--json"],
            &[("TIKTOK_TOKEN", "tt-token")],
        );
        assert!(
            imported.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&imported.stderr)
        );

        // Google Ads on the command line: its credential is DEVELOPER_TOKEN:ACCESS_TOKEN.
        let google_args = [
            "destination",
            "add",
            "google_ads",
            "--type",
            "google_ads",
            "--url",
            &google.url,
            "--setting",
            "customer_id=1234567890",
            "--setting",
            "conversion_action_id=987654",
            "--credential-env",
            "GOOGLE_ADS_CREDENTIAL",
        ];
        let malformed = sightline_with_env(
            &backend,
            &google_args,
            &[("GOOGLE_ADS_CREDENTIAL", "ya29.only")],
        );
        assert!(!malformed.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&malformed.stderr);
        assert!(
            stderr.contains("DEVELOPER_TOKEN:ACCESS_TOKEN") && !stderr.contains("ya29"),
            "{name}: {stderr}"
        );
        let added = sightline_with_env(
            &backend,
            &google_args,
            &[("GOOGLE_ADS_CREDENTIAL", "dev-token:ya29.good")],
        );
        assert!(
            added.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&added.stderr)
        );

        let server = Server::start(&backend, &[]);
        // LinkedIn through the API: one conversion rule, the events that count as it.
        let created: Value = client()
            .post(format!("{}/api/v1/destinations", server.url))
            .bearer_auth(&creds.token)
            .json(
                &json!({"name": "linkedin", "type": "linkedin", "url": linkedin.url,
                          "events": ["Order Completed"],
                          "settings": {"conversion_id": "104012"}, "credential": "li-token"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created["name"], "linkedin", "{name}: {created}");
        let listed = sightline_json(&backend, &["destination", "list"]).to_string();
        assert!(
            !listed.contains("tt-token")
                && !listed.contains("li-token")
                && !listed.contains("ya29"),
            "{name}: {listed}"
        );

        send_ok(&server, &creds.write_key, "/v1/batch", json!({"batch": [
            {"type": "track", "anonymousId": "a1", "userId": "u1", "event": "Order Completed", "messageId": "granted",
             "properties": {"order_id": "o1", "revenue": 30, "currency": "EUR"},
             "context": context(json!({"advertising": true}))},
            {"type": "page", "anonymousId": "a1", "name": "Thanks", "messageId": "page",
             "context": context(json!({"advertising": true}))},
            {"type": "track", "anonymousId": "a2", "event": "Order Completed", "messageId": "denied",
             "context": context(json!({"advertising": false}))},
        ]}))
        .await;

        wait_for(
            "every vendor to take the purchase and log both outcomes",
            || {
                tiktok.accepted_events().len() == 1
                    && linkedin.accepted_events().len() == 1
                    && deliveries(&backend, "tiktok").len() == 2
                    && deliveries(&backend, "linkedin").len() == 2
                    && google.accepted_events().len() == 1
                    && deliveries(&backend, "google_ads").len() == 2
            },
        )
        .await;
        let email = json!(sightline_activate::vendor::sha256_hex("ann@example.com"));
        let purchase = &tiktok.accepted_events()[0];
        assert_eq!(purchase["event"], "CompletePayment", "{name}");
        assert_eq!(purchase["event_id"], "granted");
        assert_eq!(purchase["user"]["email"], email);
        assert_eq!(tiktok.seen()[0].headers["access-token"], "tt-token");
        let conversion = &linkedin.accepted_events()[0];
        assert_eq!(conversion["eventId"], "granted", "{name}");
        assert_eq!(conversion["user"]["userIds"][0]["idValue"], email);
        assert_eq!(tiktok.problems(), Vec::<String>::new(), "{name}");
        assert_eq!(linkedin.problems(), Vec::<String>::new(), "{name}");
        let lead = &google.accepted_events()[0];
        assert_eq!(
            lead["userIdentifiers"][0]["hashedEmail"], email,
            "{name}: an enhanced conversion for leads"
        );
        assert_eq!(google.seen()[0].headers["developer-token"], "dev-token");
        assert_eq!(google.problems(), Vec::<String>::new(), "{name}");
        for destination in ["tiktok", "linkedin", "google_ads"] {
            let log = deliveries(&backend, destination);
            assert_eq!(log[0]["status"], "delivered", "{name}: {destination}");
            assert_eq!(log[1]["message_id"], "denied");
            assert_eq!(log[1]["status"], "suppressed", "{name}: {destination}");
        }

        // Lineage: each vendor with the fields of the request it receives.
        let mut args = vec!["lineage", "--format", "openlineage"];
        let store_args = backend.args();
        args.extend(store_args.iter().map(String::as_str));
        let lineage = String::from_utf8(common::sightline(&args).stdout).unwrap();
        let job = |job: &str| {
            lineage
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["eventType"] == "COMPLETE" && e["job"]["name"] == job)
                .unwrap_or_else(|| panic!("{name}: no {job} in {lineage}"))
                .to_string()
        };
        let tiktok_job = job("destination:tiktok");
        assert!(
            tiktok_job.contains("\"data.user.email\""),
            "{name}: {tiktok_job}"
        );
        let linkedin_job = job("destination:linkedin");
        assert!(
            linkedin_job.contains("\"elements.user.userIds.idValue\""),
            "{name}: {linkedin_job}"
        );
        // A replaced credential is checked as an added one is, and never echoed.
        let malformed = sightline_with_env(
            &backend,
            &[
                "destination",
                "set-credential",
                "google_ads",
                "--credential-env",
                "GOOGLE_ADS_CREDENTIAL",
            ],
            &[("GOOGLE_ADS_CREDENTIAL", "ya29.rotated-only")],
        );
        assert!(!malformed.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&malformed.stderr);
        assert!(
            stderr.contains("DEVELOPER_TOKEN:ACCESS_TOKEN") && !stderr.contains("ya29"),
            "{name}: {stderr}"
        );
        let google_job = job("destination:google_ads");
        assert!(
            google_job.contains("\"conversions.userIdentifiers.hashedEmail\""),
            "{name}: {google_job}"
        );
        server.terminate();
    }
}
