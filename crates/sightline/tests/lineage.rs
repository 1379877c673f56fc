//! `sightline lineage` end to end on both backends: a source's events ingested over
//! /v1/batch, a webhook destination delivering to a receiver started here, and a stored scan
//! (`scan import`) → the lineage in all three formats, through the CLI and the API.

mod common;

use common::{backends, client, credentials, send_ok, sightline, sightline_json, Backend, Server};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accepts every delivery; counts them.
async fn receiver(count: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            count.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn lineage(backend: &Backend, format: &str) -> String {
    let mut args = vec!["lineage".to_string(), "--format".into(), format.into()];
    args.extend(backend.args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = sightline(&refs);
    assert!(
        output.status.success(),
        "lineage --format {format}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON RunEvent per line"))
        .collect()
}

fn consent(analytics: bool) -> Value {
    json!({"consent": {"categoryPreferences": {"Analytics": analytics}}})
}

/// A small scan report: one step of shop.test sending an email to a pixel.
fn report() -> Value {
    let request = |url: &str, vendor: &str, category: &str, body: Option<&str>| {
        json!({"url": url, "method": "GET", "resource_type": "Image", "status": 200,
               "initiator_type": "script", "initiator_url": null, "initiator_chain": [],
               "third_party": true, "vendor": vendor, "category": category, "bytes": 10,
               "before_consent": false, "post_body": body})
    };
    json!({
        "schema_version": 1, "journey": "shop", "incomplete": false, "duration_ms": 10,
        "findings": [],
        "scenarios": [{"name": "accept-all", "incomplete": null, "steps": [{
            "name": "landing", "url": "http://www.shop.test/", "request_count": 2,
            "third_party_count": 2, "bytes": 20,
            "vendors": [{"name": "Meta Pixel", "category": "advertising", "requests": 2}],
            "timing": {"load_ms": 5, "total_ms": 6},
            "requests": [
                request("https://www.facebook.com/tr?id=1&ev=PageView", "Meta Pixel", "advertising", None),
                request("https://www.facebook.com/tr", "Meta Pixel", "advertising", Some("em=ada%40example.com&ev=Lead")),
            ],
            "cookies": []
        }]}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_from_events_deliveries_and_a_scan() {
    for backend in backends("lineage").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let delivered = Arc::new(AtomicUsize::new(0));
        let url = receiver(delivered.clone()).await;
        sightline_json(
            &backend,
            &[
                "destination",
                "add",
                "hook",
                "--type",
                "webhook",
                "--url",
                &url,
                "--purposes",
                "analytics",
            ],
        );
        let temp = common::temp_dir("lineage");
        let dir = temp.path();
        let report_file = dir.join("report.json");
        std::fs::write(&report_file, report().to_string()).unwrap();
        let mut import = vec![
            "scan".to_string(),
            "import".into(),
            report_file.display().to_string(),
        ];
        import.extend(backend.args());
        let refs: Vec<&str> = import.iter().map(String::as_str).collect();
        let imported = sightline(&refs);
        assert!(
            imported.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&imported.stderr)
        );
        let scan_id: i64 = String::from_utf8_lossy(&imported.stdout)
            .trim()
            .strip_prefix("scan: ")
            .and_then(|id| id.parse().ok())
            .expect("scan: ID");

        let server = Server::start(&backend, &[]);
        send_ok(
            &server,
            &creds.write_key,
            "/v1/batch",
            json!({"batch": [
                {"type": "identify", "userId": "u1", "messageId": "m1", "context": consent(true),
                 "traits": {"email": "ada@example.com", "phone": "+14155550123", "plan": "pro"}},
                {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m2",
                 "context": consent(true), "properties": {"total": 42}},
                {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m3",
                 "context": consent(false), "properties": {"total": 7}},
            ]}),
        )
        .await;

        // Poll (bounded) until the delivery log holds all three outcomes.
        let deadline = Instant::now() + Duration::from_secs(120);
        let run = loop {
            let all = events(&lineage(&backend, "openlineage"));
            let hook = all
                .iter()
                .find(|e| e["eventType"] == "COMPLETE" && e["job"]["name"] == "destination:hook")
                .cloned();
            if let Some(hook) = hook {
                let counts = &hook["outputs"][0]["outputFacets"]["sightline_lineage"]["evidence"]
                    ["deliveries"];
                if counts["delivered"] == 2 && counts["suppressed"] == 1 {
                    break (all, hook);
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name}: deliveries never all logged"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (all, hook) = run;
        assert_eq!(
            delivered.load(Ordering::SeqCst),
            2,
            "{name}: the receiver got the granted two"
        );
        assert_eq!(
            all.len(),
            4,
            "{name}: START and COMPLETE for the hook and the pixel"
        );
        for event in &all {
            assert_eq!(
                event["schemaURL"],
                "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
            );
            assert!(uuid::Uuid::parse_str(event["run"]["runId"].as_str().unwrap()).is_ok());
        }
        assert_eq!(hook["inputs"][0]["name"], "source:web", "{name}");
        let source_fields: Vec<&str> = hook["inputs"][0]["facets"]["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        for field in [
            "traits.email",
            "traits.phone",
            "traits.plan",
            "properties.total",
            "userId",
        ] {
            assert!(
                source_fields.contains(&field),
                "{name}: {field} in {source_fields:?}"
            );
        }
        let facet = &hook["outputs"][0]["outputFacets"]["sightline_lineage"];
        assert_eq!(facet["purposes"], json!(["analytics"]), "{name}");
        let pii: Vec<&str> = facet["pii"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for class in ["email", "phone", "identifier"] {
            assert!(pii.contains(&class), "{name}: {class} in {pii:?}");
        }
        let doc = hook["job"]["facets"]["documentation"]["description"]
            .as_str()
            .unwrap();
        assert!(doc.contains("consent gate (analytics)"), "{name}: {doc}");

        let pixel = all
            .iter()
            .find(|e| e["eventType"] == "COMPLETE" && e["job"]["name"] == "vendor:Meta Pixel")
            .expect("the scanned vendor");
        assert_eq!(pixel["inputs"][0]["name"], "site:www.shop.test", "{name}");
        let evidence = &pixel["outputs"][0]["outputFacets"]["sightline_lineage"]["evidence"];
        assert_eq!(evidence["scans"], json!([scan_id]), "{name}");
        assert_eq!(evidence["requests"], 2, "{name}");
        let fields = &pixel["outputs"][0]["facets"]["schema"]["fields"];
        let em = fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "em")
            .expect("em");
        assert_eq!(em["description"], "PII: email", "{name}");

        let dot = lineage(&backend, "dot");
        for needle in [
            "\"source:web\" -> \"step:collection\"",
            "\"consent:analytics\" -> \"destination:hook\"",
            "\"consent:advertising\" -> \"vendor:Meta Pixel\"",
            "delivered 2, suppressed 1",
            &format!("2 requests in scan #{scan_id}"),
        ] {
            assert!(dot.contains(needle), "{name}: {needle} in\n{dot}");
        }
        let mermaid = lineage(&backend, "mermaid");
        assert!(mermaid.starts_with("flowchart LR\n"), "{name}");
        assert!(mermaid.contains("[[\"Meta Pixel\"]]"), "{name}: {mermaid}");
        assert!(mermaid.contains("PII: email"), "{name}: {mermaid}");

        // The API gives the same graph; a bad format is a 400.
        let api = client()
            .get(format!("{}/api/v1/lineage?format=dot", server.url))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200, "{name}");
        assert_eq!(api.text().await.unwrap(), dot, "{name}");
        let bad = client()
            .get(format!("{}/api/v1/lineage?format=svg", server.url))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{name}");
        let anonymous = client()
            .get(format!("{}/api/v1/lineage", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{name}");
    }
}
