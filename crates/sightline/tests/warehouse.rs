//! The warehouse destination end to end: the real binary on both backends loading events
//! into the real PostgreSQL (a fresh schema per run), laid out as Segment's warehouses:
//! a table per call type and per track event, columns added and widened as properties
//! appear, a person's latest traits in `users`, consent suppression, and a replay that
//! adds nothing (rows are keyed by messageId) and never puts older traits over newer ones,
//! and an erasure that deletes the person's rows.

mod common;

use common::{backends, credentials, deliveries, send_ok, sightline_json, Server, BIN};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Polls `condition` every 50 ms until it holds; fails after 120 s.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn warehouse(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to SIGHTLINE_TEST_DATABASE_URL");
    tokio::spawn(connection);
    client
}

async fn count(client: &Client, schema: &str, table: &str) -> i64 {
    client
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".\"{table}\""),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{schema}.{table}: {e}"))
        .get(0)
}

async fn column_types(client: &Client, schema: &str, table: &str) -> Vec<(String, String)> {
    client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY column_name",
            &[&schema, &table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn consent(analytics: bool) -> Value {
    json!({"consent": {"purposes": {"analytics": analytics}},
           "library": {"name": "analytics.js", "version": "5.2"},
           "page": {"url": "https://shop.example/cart"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_in_segment_shaped_tables_that_evolve_and_replays_add_nothing() {
    let Ok(url) = std::env::var("SIGHTLINE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "SIGHTLINE_TEST_DATABASE_URL must be set in CI: the warehouse is tested on PostgreSQL"
        );
        eprintln!("SIGHTLINE_TEST_DATABASE_URL is not set: skipping the warehouse test");
        return;
    };
    let client = warehouse(&url).await;
    for backend in backends("warehouse").await {
        let name = backend.name();
        let schema = format!("dwh_{name}_{}", std::process::id());
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
            .unwrap();
        let creds = credentials(&backend, "web");

        // A password in the URL is refused: it would be shown by `destination list`.
        let mut add: Vec<String> = [
            "destination",
            "add",
            "dwh",
            "--type",
            "warehouse",
            "--setting",
            &format!("schema={schema}"),
            "--credential-env",
            "DWH_PASSWORD",
            "--json",
            "--url",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let with_password = Command::new(BIN)
            .args(&add)
            .arg("postgres://loader:hunter2@127.0.0.1/x")
            .args(backend.args())
            .env("DWH_PASSWORD", "pw")
            .output()
            .unwrap();
        assert!(!with_password.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&with_password.stderr);
        assert!(stderr.contains("keep the password out"), "{name}: {stderr}");
        add.push(url.clone());
        add.extend(backend.args());
        let added = Command::new(BIN)
            .args(&add)
            .env("DWH_PASSWORD", "unused-by-trust-auth")
            .output()
            .unwrap();
        assert!(
            added.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let listed = sightline_json(&backend, &["destination", "list"]).to_string();
        assert!(
            listed.contains("\"warehouse\"") && !listed.contains("unused-by-trust-auth"),
            "{name}: {listed}"
        );

        // A warehouse that does not answer holds its events: retried, never dead letters.
        let down = Command::new(BIN)
            .args([
                "destination",
                "add",
                "dwh-down",
                "--type",
                "warehouse",
                "--url",
                "postgres://loader@127.0.0.1:1/analytics",
                "--setting",
                "schema=web",
                "--credential-env",
                "DWH_PASSWORD",
            ])
            .args(backend.args())
            .env("DWH_PASSWORD", "pw")
            .output()
            .unwrap();
        assert!(down.status.success(), "{name}");

        let server = Server::start(&backend, &[]);
        send_ok(&server, &creds.write_key, "/v1/batch", json!({"batch": [
            {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "id-1",
             "traits": {"email": "ann@example.com", "plan": "free", "address": {"city": "Paris"}},
             "context": consent(true)},
            {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "t-1",
             "properties": {"orderId": "o1", "total": 30, "paid": true,
                            "placedAt": "2025-11-24T16:00:00.000Z", "products": [{"sku": "A"}],
                            "shipping": {"method": "post"}},
             "context": consent(true)},
            {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "t-2",
             "properties": {"orderId": "o2", "total": 12.5, "coupon": "WELCOME"},
             "context": consent(true)},
            {"type": "page", "anonymousId": "a1", "name": "Cart", "messageId": "p-1",
             "properties": {"path": "/cart", "title": "Cart"}, "context": consent(true)},
            {"type": "group", "userId": "u1", "groupId": "g1", "messageId": "g-1",
             "traits": {"name": "Acme", "employees": 40}, "context": consent(true)},
            {"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "al-1",
             "context": consent(true)},
            {"type": "screen", "anonymousId": "a2", "name": "Home", "messageId": "s-1",
             "context": consent(true)},
            {"type": "track", "anonymousId": "a3", "event": "Order Completed", "messageId": "denied",
             "properties": {"orderId": "o3", "total": 99}, "context": consent(false)},
        ]}))
        .await;
        wait_for(&format!("{name}: the first batch delivered"), || {
            deliveries(&backend, "dwh").len() == 8
        })
        .await;
        let outcomes = deliveries(&backend, "dwh");
        let status = |id: &str| {
            outcomes
                .iter()
                .find(|d| d["message_id"] == id)
                .map(|d| d["status"].as_str().unwrap().to_owned())
        };
        assert_eq!(status("t-1").as_deref(), Some("delivered"), "{name}");
        assert_eq!(status("denied").as_deref(), Some("suppressed"), "{name}");
        // sslmode=prefer (the default): encrypted when the server offers TLS.
        let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
        if ssl == "on" {
            let encrypted: bool = client
                .query_one(
                    "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.application_name = 'sightline warehouse'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert!(
                encrypted,
                "{name}: the warehouse connection is not encrypted"
            );
        }

        for (table, rows) in [
            ("identifies", 1),
            ("users", 1),
            ("tracks", 2),
            ("order_completed", 2),
            ("pages", 1),
            ("screens", 1),
            ("groups", 1),
            ("aliases", 1),
        ] {
            assert_eq!(
                count(&client, &schema, table).await,
                rows,
                "{name}: {table}"
            );
        }
        let types = column_types(&client, &schema, "order_completed").await;
        let type_of = |column: &str| {
            types
                .iter()
                .find(|(c, _)| c == column)
                .map(|(_, t)| t.as_str().to_owned())
        };
        // `total` came as 30, then 12.5: the column was widened, not a value dropped.
        assert_eq!(
            type_of("total").as_deref(),
            Some("double precision"),
            "{name}: {types:?}"
        );
        assert_eq!(type_of("paid").as_deref(), Some("boolean"), "{name}");
        assert_eq!(
            type_of("placed_at").as_deref(),
            Some("timestamp with time zone"),
            "{name}"
        );
        assert_eq!(type_of("products").as_deref(), Some("text"), "{name}");
        assert_eq!(
            type_of("shipping_method").as_deref(),
            Some("text"),
            "{name}"
        );
        assert_eq!(
            type_of("context_library_name").as_deref(),
            Some("text"),
            "{name}"
        );
        assert_eq!(
            type_of("received_at").as_deref(),
            Some("timestamp with time zone"),
            "{name}"
        );
        let order = client
            .query_one(
                &format!(
                    "SELECT order_id, total, paid, coupon, event, event_text, user_id, \
                     products, context_page_url FROM \"{schema}\".order_completed WHERE id = 't-1'"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(order.get::<_, String>(0), "o1", "{name}");
        assert_eq!(order.get::<_, f64>(1), 30.0, "{name}");
        assert_eq!(order.get::<_, Option<bool>>(2), Some(true), "{name}");
        assert_eq!(order.get::<_, Option<String>>(3), None, "{name}");
        assert_eq!(order.get::<_, String>(4), "order_completed", "{name}");
        assert_eq!(order.get::<_, String>(5), "Order Completed", "{name}");
        assert_eq!(order.get::<_, String>(6), "u1", "{name}");
        assert_eq!(order.get::<_, String>(7), r#"[{"sku":"A"}]"#, "{name}");
        assert_eq!(
            order.get::<_, String>(8),
            "https://shop.example/cart",
            "{name}"
        );

        // A later identify: its traits replace the stored ones, the others stay; a string
        // where a number was widens the column to text.
        send_ok(
            &server,
            &creds.write_key,
            "/v1/batch",
            json!({"batch": [
                {"type": "identify", "userId": "u1", "messageId": "id-2",
                 "traits": {"plan": "pro", "seats": 3}, "context": consent(true)},
                {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "t-3",
                 "properties": {"orderId": "o4", "total": "unknown"}, "context": consent(true)},
            ]}),
        )
        .await;
        wait_for(&format!("{name}: the second batch delivered"), || {
            deliveries(&backend, "dwh").len() == 10
        })
        .await;
        let user = client
            .query_one(
                &format!("SELECT plan, email, seats, address_city FROM \"{schema}\".users WHERE id = 'u1'"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(user.get::<_, String>(0), "pro", "{name}");
        assert_eq!(user.get::<_, String>(1), "ann@example.com", "{name}");
        assert_eq!(user.get::<_, i64>(2), 3, "{name}");
        assert_eq!(user.get::<_, String>(3), "Paris", "{name}");
        let types = column_types(&client, &schema, "order_completed").await;
        assert!(
            types.contains(&("total".into(), "text".into())),
            "{name}: {types:?}"
        );
        let totals: Vec<String> = client
            .query(
                &format!("SELECT total FROM \"{schema}\".order_completed ORDER BY id"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(totals, ["30", "12.5", "unknown"], "{name}");
        // A constraint of the warehouse's own refuses one event of a batch: that event
        // alone is a dead letter, with PostgreSQL's reason; the rest of the batch loads.
        client
            .batch_execute(&format!(
                "ALTER TABLE \"{schema}\".tracks ADD CONSTRAINT no_tests CHECK (event_text <> 'Test Event')"
            ))
            .await
            .unwrap();
        send_ok(
            &server,
            &creds.write_key,
            "/v1/batch",
            json!({"batch": [
                {"type": "track", "userId": "u1", "event": "Test Event", "messageId": "refused",
                 "context": consent(true)},
                {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "t-4",
                 "properties": {"orderId": "o5", "total": 1}, "context": consent(true)},
            ]}),
        )
        .await;
        wait_for(&format!("{name}: the third batch delivered"), || {
            deliveries(&backend, "dwh").len() == 12
        })
        .await;
        let outcomes = deliveries(&backend, "dwh");
        let refused = outcomes
            .iter()
            .find(|d| d["message_id"] == "refused")
            .unwrap();
        assert_eq!(refused["status"], "dead", "{name}: {refused}");
        assert!(
            refused["reason"].as_str().unwrap().contains("no_tests"),
            "{name}: {refused}"
        );
        let loaded = outcomes.iter().find(|d| d["message_id"] == "t-4").unwrap();
        assert_eq!(loaded["status"], "delivered", "{name}: {loaded}");
        assert_eq!(count(&client, &schema, "tracks").await, 4, "{name}");

        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let metrics = common::metrics(&server).await;
            if metrics.contains("sightline_delivery_failures_total{destination=\"dwh-down\"}") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: dwh-down never tried: {metrics}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let held = sightline_json(
            &backend,
            &["deliveries", "list", "--destination", "dwh-down"],
        );
        assert_eq!(held["deliveries"], json!([]), "{name}: {held}");
        drop(server);

        // Replaying the first batch adds no row and leaves the newer traits in place.
        let replayed = sightline_json(
            &backend,
            &[
                "deliveries",
                "replay",
                "--destination",
                "dwh",
                "--from-seq",
                "1",
                "--to-seq",
                "8",
            ],
        );
        assert_eq!(replayed["delivered"], 7, "{name}: {replayed}");
        for (table, rows) in [
            ("identifies", 2),
            ("users", 1),
            ("tracks", 4),
            ("order_completed", 4),
        ] {
            assert_eq!(
                count(&client, &schema, table).await,
                rows,
                "{name}: {table} after replay"
            );
        }
        let plan: String = client
            .query_one(
                &format!("SELECT plan FROM \"{schema}\".users WHERE id = 'u1'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            plan, "pro",
            "{name}: a replayed older identify must not win"
        );

        // Erasing the person reaches the warehouse: every row naming any of their
        // identifiers is deleted; another person's rows stay.
        let receipt = sightline_json(&backend, &["privacy", "erase", "user_id:u1"]);
        let notified = receipt["destinations_notified"].as_array().unwrap();
        let dwh = notified.iter().find(|n| n["destination"] == "dwh");
        assert_eq!(
            dwh.map(|n| n["status"].clone()),
            Some(json!("accepted")),
            "{name}: {receipt}"
        );
        for (table, rows) in [
            ("identifies", 0),
            ("users", 0),
            ("tracks", 0),
            ("order_completed", 0),
            ("groups", 0),
            ("aliases", 0),
            ("pages", 0),
            ("screens", 1),
        ] {
            assert_eq!(
                count(&client, &schema, table).await,
                rows,
                "{name}: {table} after the erasure"
            );
        }

        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
    }
}
