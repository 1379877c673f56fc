//! Tracking plans end to end: the real binary on both backends, plans enforced at
//! collection in each mode, managed by the command line and the API, violations stored and
//! shown, and `plan check` / `plan import` / `plan infer` as a pipeline uses them.

mod common;

use common::{
    all_events, backends, client, credentials, get_json, metrics, sightline, sightline_json,
    temp_dir, Backend, Server,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The plan every test holds sources to, with the enforcement given.
fn plan(enforcement: Value) -> Value {
    json!({
        "enforcement": enforcement,
        "track": {
            "Order Completed": {"properties": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "total": {"type": "number"},
                    "email": {"type": "string", "format": "email"}
                },
                "required": ["order_id"],
                "additionalProperties": false
            }}
        },
        "identify": {"traits": {"type": "object", "properties": {"age": {"type": "integer"}}}}
    })
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

fn run(backend: &Backend, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(backend.args());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    sightline(&refs)
}

fn run_ok(backend: &Backend, args: &[&str]) -> String {
    let output = run(backend, args);
    assert!(
        output.status.success(),
        "sightline {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn batch(server: &Server, key: &str, events: Value) -> Value {
    let response = client()
        .post(format!("{}/v1/batch", server.url))
        .basic_auth(key, Some(""))
        .json(&json!({ "batch": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a plan never makes an SDK retry");
    response.json().await.unwrap()
}

fn order(id: &str, properties: Value) -> Value {
    json!({"type": "track", "event": "Order Completed", "userId": "u1", "messageId": id,
           "properties": properties})
}

/// The sample batch: a valid order, an order with a wrong type and an unplanned property,
/// an order without its required id, and an unplanned event.
fn sample_batch(prefix: &str) -> Value {
    json!([
        order(&format!("{prefix}-ok"), json!({"order_id": "o1", "total": 10})),
        order(&format!("{prefix}-bad"), json!({"order_id": "o2", "total": "ten", "email": "ann@example.com", "coupon": "X"})),
        order(&format!("{prefix}-missing"), json!({"total": 1})),
        {"type": "track", "event": "Clicked", "userId": "u1", "messageId": format!("{prefix}-unplanned")},
    ])
}

fn paths(report: &Value) -> Vec<String> {
    let mut found: Vec<String> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{} {} {}",
                v["path"].as_str().unwrap(),
                v["kind"].as_str().unwrap(),
                v["action"].as_str().unwrap()
            )
        })
        .collect();
    found.sort();
    found
}

/// The value of the Prometheus series `name` with all of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> Option<u64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn stored<'a>(events: &'a [Value], message_id: &str) -> Option<&'a Value> {
    events.iter().find(|e| e["messageId"] == message_id)
}

/// Polls until the source's stored violations reach `total` (they are stored in bulk
/// about every second), bounded.
async fn violations_reaching(server: &Server, token: &str, source: &str, total: i64) -> Value {
    let since = Instant::now();
    loop {
        let found = get_json(
            server,
            token,
            &format!("/api/v1/sources/{source}/violations?since=2000-01-01"),
        )
        .await;
        let sum: i64 = found["counts"]
            .as_array()
            .map_or(0, |c| c.iter().map(|c| c["count"].as_i64().unwrap()).sum());
        if sum >= total {
            return found;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "violations never reached {total}: {found}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn plans_are_enforced_at_collection_in_each_mode() {
    for backend in backends("plan_modes").await {
        let dir = temp_dir("plan-modes");
        let web = credentials(&backend, "web");
        let app = sightline_json(&backend, &["source", "add", "app"]);
        let ios = sightline_json(&backend, &["source", "add", "ios"]);
        let flagging = write(dir.path(), "flag.json", &plan(json!({})).to_string());
        let omitting = write(
            dir.path(),
            "omit.json",
            &plan(json!({"invalid_value": "omit", "unplanned_property": "omit", "unplanned_event": "allow"})).to_string(),
        );
        let dropping = write(
            dir.path(),
            "drop.json",
            &plan(json!({"invalid_value": "drop", "unplanned_property": "drop", "missing_required": "drop", "unplanned_event": "drop"})).to_string(),
        );
        assert_eq!(
            sightline_json(&backend, &["plan", "add", "flagging", &flagging])["version"],
            1
        );
        sightline_json(&backend, &["plan", "add", "omitting", &omitting]);
        sightline_json(&backend, &["plan", "add", "dropping", &dropping]);
        let fixes = write(
            dir.path(),
            "fixes.json",
            r#"{"rename_events": {"order_completed": "Order Completed"}, "coerce_numbers": true}"#,
        );
        run_ok(
            &backend,
            &[
                "plan", "assign", "flagging", "--source", "web", "--fixes", &fixes,
            ],
        );
        run_ok(&backend, &["plan", "assign", "omitting", "--source", "ios"]);
        run_ok(&backend, &["plan", "assign", "dropping", "--source", "app"]);
        let listed = sightline_json(&backend, &["plan", "list"]);
        assert_eq!(listed[1]["name"], "flagging", "{listed}");
        assert_eq!(listed[1]["sources"], json!(["web"]), "{listed}");

        let server = Server::start(&backend, &[]);
        let name = backend.name();

        // Flag: everything is stored, the violations marked in the events and the answer.
        let answer = batch(&server, &web.write_key, sample_batch("web")).await;
        assert_eq!(answer["accepted"], 4, "{name}: {answer}");
        let flagged = answer["flagged"].as_array().unwrap();
        assert_eq!(flagged.len(), 3, "{name}: {answer}");
        assert_eq!(flagged[0]["index"], 1);
        assert_eq!(
            paths(&flagged[0]),
            [
                "/properties/coupon unplanned_property flag",
                "/properties/total invalid_value flag",
            ],
            "{name}"
        );
        assert_eq!(
            paths(&flagged[1]),
            ["/properties/order_id missing_required flag"],
            "{name}"
        );
        assert_eq!(
            paths(&flagged[2]),
            ["/event unplanned_event flag"],
            "{name}"
        );
        // Fixes run first: the renamed event with a numeric string is valid.
        let fixed = batch(
            &server,
            &web.write_key,
            json!([{"type": "track", "event": "order_completed", "userId": "u1", "messageId": "web-fixed",
                    "properties": {"order_id": "o3", "total": "12.5"}}]),
        )
        .await;
        assert!(fixed.get("flagged").is_none(), "{name}: {fixed}");

        // Omit: the offending properties are gone, the rest is stored; unplanned allowed.
        let answer = batch(
            &server,
            ios["write_key"].as_str().unwrap(),
            sample_batch("ios"),
        )
        .await;
        assert_eq!(answer["accepted"], 4, "{name}: {answer}");
        assert_eq!(
            answer["flagged"].as_array().unwrap().len(),
            2,
            "{name}: {answer}"
        );

        // Drop: only the valid event is stored; the rest are reported, still a 200.
        let answer = batch(
            &server,
            app["write_key"].as_str().unwrap(),
            sample_batch("app"),
        )
        .await;
        assert_eq!(answer["accepted"], 1, "{name}: {answer}");
        let dropped: Vec<i64> = answer["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["index"].as_i64().unwrap())
            .collect();
        assert_eq!(dropped, [1, 2, 3], "{name}: {answer}");
        // A batch the plan drops whole is still answered 200 with nothing accepted.
        let answer = batch(
            &server,
            app["write_key"].as_str().unwrap(),
            json!([order("app-again", json!({}))]),
        )
        .await;
        assert_eq!(answer["accepted"], 0, "{name}: {answer}");
        assert_eq!(
            answer["dropped"].as_array().unwrap().len(),
            1,
            "{name}: {answer}"
        );

        let events = all_events(&server, &web.token).await;
        let bad = stored(&events, "web-bad").expect("a flagged event is stored");
        assert_eq!(
            bad["properties"]["total"], "ten",
            "{name}: flag changes nothing"
        );
        assert_eq!(bad["context"]["protocols"]["plan"], "flagging", "{name}");
        assert_eq!(
            bad["context"]["protocols"]["violations"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "{name}"
        );
        let fixed = stored(&events, "web-fixed").unwrap();
        assert_eq!(fixed["event"], "Order Completed", "{name}");
        assert_eq!(fixed["properties"]["total"], 12.5, "{name}");
        let omitted = stored(&events, "ios-bad").unwrap();
        assert_eq!(
            omitted["properties"],
            json!({"order_id": "o2", "email": "ann@example.com"}),
            "{name}"
        );
        assert!(
            stored(&events, "ios-unplanned")
                .unwrap()
                .get("context")
                .and_then(|c| c.get("protocols"))
                .is_none(),
            "{name}"
        );
        assert!(stored(&events, "app-ok").is_some(), "{name}");
        for id in ["app-bad", "app-missing", "app-unplanned", "app-again"] {
            assert!(stored(&events, id).is_none(), "{name}: {id} was dropped");
        }

        // Violations are stored per source, event and type, samples masked.
        let found = violations_reaching(&server, &web.token, "web", 4).await;
        let counts: Vec<(String, i64)> = found["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    format!(
                        "{} {}",
                        c["event"].as_str().unwrap(),
                        c["type"].as_str().unwrap()
                    ),
                    c["count"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            counts,
            [
                ("Clicked unplanned_event".to_string(), 1),
                ("Order Completed invalid_value".to_string(), 1),
                ("Order Completed missing_required".to_string(), 1),
                ("Order Completed unplanned_property".to_string(), 1),
            ],
            "{name}: {found}"
        );
        let samples = found["samples"].to_string();
        assert!(samples.contains("web-bad"), "{name}: {samples}");
        assert!(
            !samples.contains("\"ten\""),
            "{name}: a sample's text is masked: {samples}"
        );
        violations_reaching(&server, &web.token, "app", 5).await;
        let text = metrics(&server).await;
        assert_eq!(
            metric(
                &text,
                "sightline_plan_violations_total",
                &[
                    "source=\"app\"",
                    "type=\"invalid_value\"",
                    "action=\"drop\""
                ]
            ),
            Some(1),
            "{name}: {text}"
        );
        assert_eq!(
            metric(
                &text,
                "sightline_plan_events_total",
                &["source=\"app\"", "outcome=\"dropped\""]
            ),
            Some(4),
            "{name}: {text}"
        );

        let cli = sightline_json(
            &backend,
            &[
                "plan",
                "violations",
                "--source",
                "web",
                "--since",
                "2000-01-01",
            ],
        );
        assert_eq!(cli["counts"].as_array().unwrap().len(), 4, "{name}: {cli}");
        server.terminate();
    }
}

#[tokio::test]
async fn the_api_manages_plans_and_a_change_is_in_force_at_once() {
    for backend in backends("plan_api").await {
        let name = backend.name();
        let web = credentials(&backend, "web");
        let marketing = sightline_json(&backend, &["token", "create", "--role", "marketing"]);
        let marketing = marketing["token"].as_str().unwrap();
        let server = Server::start(&backend, &[]);
        let api = |path: &str| format!("{}{path}", server.url);

        // A bad plan is refused with where it is wrong.
        let bad =
            json!({"name": "shop", "plan": {"track": {"A": {"properties": {"type": "text"}}}}});
        let response = client()
            .post(api("/api/v1/tracking-plans"))
            .bearer_auth(&web.token)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/track/A/properties/type"),
            "{name}: {body}"
        );
        let unknown = json!({"name": "shop", "plan": {"trak": {}}});
        let response = client()
            .post(api("/api/v1/tracking-plans"))
            .bearer_auth(&web.token)
            .json(&unknown)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name}");

        // Only admin changes plans; other roles read them.
        let new = json!({"name": "shop", "plan": plan(json!({"unplanned_event": "drop"}))});
        let response = client()
            .post(api("/api/v1/tracking-plans"))
            .bearer_auth(marketing)
            .json(&new)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{name}");
        let response = client()
            .post(api("/api/v1/tracking-plans"))
            .bearer_auth(&web.token)
            .json(&new)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{name}");

        // Assigned through the API, the plan judges the very next event.
        let response = client()
            .put(api("/api/v1/sources/web/tracking-plan"))
            .bearer_auth(&web.token)
            .json(&json!({"plan": "shop"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let answer = batch(
            &server,
            &web.write_key,
            json!([{"type": "track", "event": "Nope", "userId": "u"}]),
        )
        .await;
        assert_eq!(
            answer["dropped"].as_array().map(Vec::len),
            Some(1),
            "{name}: {answer}"
        );

        let shown = get_json(&server, marketing, "/api/v1/tracking-plans/shop").await;
        assert_eq!(shown["version"], 1, "{name}: {shown}");
        assert_eq!(shown["sources"], json!(["web"]), "{name}");
        let segment = get_json(
            &server,
            marketing,
            "/api/v1/tracking-plans/shop?format=segment",
        )
        .await;
        assert_eq!(
            segment["rules"]["events"][0]["name"], "Order Completed",
            "{name}: {segment}"
        );

        // A new version through PUT; the old one stays readable.
        let response = client()
            .put(api("/api/v1/tracking-plans/shop"))
            .bearer_auth(&web.token)
            .body(plan(json!({"unplanned_event": "allow"})).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let answer = batch(
            &server,
            &web.write_key,
            json!([{"type": "track", "event": "Nope", "userId": "u"}]),
        )
        .await;
        assert_eq!(answer["accepted"], 1, "{name}: {answer}");
        assert!(answer.get("flagged").is_none(), "{name}: {answer}");
        let old = get_json(&server, &web.token, "/api/v1/tracking-plans/shop?version=1").await;
        assert_eq!(
            old["plan"]["enforcement"]["unplanned_event"], "drop",
            "{name}: {old}"
        );

        // Released, the source is collected as before.
        let response = client()
            .put(api("/api/v1/sources/web/tracking-plan"))
            .bearer_auth(&web.token)
            .json(&json!({"plan": null}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let answer = batch(
            &server,
            &web.write_key,
            json!([order("free", json!({"total": "x"}))]),
        )
        .await;
        assert!(answer.get("flagged").is_none(), "{name}: {answer}");

        // A plan changed from the command line while the server runs is picked up.
        let dir = temp_dir("plan-api");
        let file = write(
            dir.path(),
            "strict.json",
            &plan(json!({"invalid_value": "drop"})).to_string(),
        );
        sightline_json(&backend, &["plan", "add", "strict", &file]);
        run_ok(&backend, &["plan", "assign", "strict", "--source", "web"]);
        let since = Instant::now();
        loop {
            let answer = batch(
                &server,
                &web.write_key,
                json!([order(
                    &format!("probe-{}", since.elapsed().as_nanos()),
                    json!({"order_id": "o", "total": "x"})
                )]),
            )
            .await;
            if answer.get("dropped").is_some() {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "{name}: the CLI's change never took effect"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.terminate();
    }
}

#[tokio::test]
async fn plans_are_inferred_from_a_sources_events() {
    for backend in backends("plan_infer").await {
        let name = backend.name();
        let web = credentials(&backend, "web");
        let server = Server::start(&backend, &[]);
        let mut generated = Vec::new();
        for i in 0..40 {
            let currency = ["EUR", "USD"][i % 2];
            let mut properties =
                json!({"order_id": format!("o{i}"), "currency": currency, "total": i});
            if i % 4 == 0 {
                properties["coupon"] = json!("SPRING");
            }
            generated.push(order(&format!("m{i}"), properties));
        }
        batch(&server, &web.write_key, Value::Array(generated)).await;
        server.terminate();

        let output = run_ok(
            &backend,
            &["plan", "infer", "--source", "web", "--since", "1d"],
        );
        let draft: Value = serde_json::from_str(&output).unwrap();
        let order = &draft["track"]["Order Completed"]["properties"];
        assert_eq!(
            order["required"],
            json!(["currency", "order_id", "total"]),
            "{name}: {draft}"
        );
        assert_eq!(
            order["properties"]["currency"]["enum"],
            json!(["EUR", "USD"]),
            "{name}"
        );
        assert_eq!(order["properties"]["total"]["type"], "integer", "{name}");

        // The draft is a plan the store takes as it is.
        let dir = temp_dir("plan-infer");
        let file = write(dir.path(), "draft.json", &output);
        sightline_json(&backend, &["plan", "add", "drafted", &file]);
    }
}

#[test]
fn plan_check_prints_each_violation_with_its_path_and_fails() {
    let dir = temp_dir("plan-check");
    let plan_file = write(dir.path(), "plan.json", &plan(json!({})).to_string());
    let good = write(
        dir.path(),
        "good.ndjson",
        &format!(
            "{}\n\n{}\n",
            order("a", json!({"order_id": "o"})),
            json!({"type": "identify", "traits": {"age": 3}})
        ),
    );
    let output = sightline(&["plan", "check", &plan_file, &good]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let bad = write(
        dir.path(),
        "bad.ndjson",
        &format!(
            "{}\n{}\nnot json\n{}\n",
            order("a", json!({"order_id": "o"})),
            order("b", json!({"order_id": 7, "extra": true})),
            json!({"type": "identify", "traits": {"age": "old"}})
        ),
    );
    let output = sightline(&["plan", "check", &plan_file, &bad]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("line 2 \"Order Completed\" /properties/order_id: not of type string (invalid_value, flag)"), "{printed}");
    assert!(printed.contains("line 2 \"Order Completed\" /properties/extra: not in the plan (unplanned_property, flag)"), "{printed}");
    assert!(printed.contains("line 3: not a JSON object"), "{printed}");
    assert!(
        printed.contains("line 4 \"identify\" /traits/age"),
        "{printed}"
    );
    assert!(!printed.contains("line 1 "), "{printed}");

    // A bad plan fails with where it is wrong, not with a violation's exit code.
    let broken = write(
        dir.path(),
        "broken.json",
        "{\"track\": {},\n \"tracks\": {}}",
    );
    let output = sightline(&["plan", "check", &broken, &good]);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("unknown field `tracks`") && message.contains("line 2"),
        "{message}"
    );
}

#[tokio::test]
async fn segment_plans_and_iglu_schemas_are_imported_and_exported() {
    for backend in backends("plan_import").await {
        let name = backend.name();
        let dir = temp_dir("plan-import");
        let segment = json!({"trackingPlan": {"display_name": "Acme", "rules": {
            "events": [{"name": "Signed Up", "description": "d", "version": 1, "rules": {
                "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"properties": {"type": "object", "required": ["plan"]}}}}],
            "identify": {"type": "object", "properties": {"traits": {"type": "object", "required": ["email"]}}},
            "global": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"context": {"type": "object", "required": ["app"]}}}
        }}});
        let file = write(dir.path(), "segment.json", &segment.to_string());
        let stored = sightline_json(&backend, &["plan", "import", &file]);
        assert_eq!(stored, json!({"name": "Acme", "version": 1}), "{name}");

        let iglu = json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": "com.acme", "name": "checkout", "format": "jsonschema", "version": "1-0-0"},
            "type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]
        });
        let file = write(dir.path(), "iglu.json", &iglu.to_string());
        let stored = sightline_json(
            &backend,
            &[
                "plan",
                "import",
                &file,
                "--format",
                "iglu",
                "--name",
                "Acme",
                "--event",
                "Checkout Started",
            ],
        );
        assert_eq!(stored["version"], 2, "{name}");

        let shown: Value =
            serde_json::from_str(&run_ok(&backend, &["plan", "show", "Acme"])).unwrap();
        let rules = &shown["plan"]["track"];
        assert_eq!(
            rules["Checkout Started"]["iglu"], "iglu:com.acme/checkout/jsonschema/1-0-0",
            "{name}: {shown}"
        );
        assert_eq!(
            rules["Signed Up"]["properties"]["required"],
            json!(["plan"]),
            "{name}"
        );

        // A track event carrying the schema (Snowplow's self-describing JSON as its
        // properties) is judged by the schema's rule, whatever its name.
        let carrying = |data: Value| {
            json!({"type": "track", "event": "checkout", "context": {"app": {"name": "shop"}},
                "properties": {"schema": "iglu:com.acme/checkout/jsonschema/1-0-0", "data": data}})
        };
        // Segment's common (`global`) rule judges every call as a whole.
        let mut without_app = carrying(json!({"sku": "s1"}));
        without_app["context"] = json!({});
        let events = write(
            dir.path(),
            "self-describing.ndjson",
            &format!(
                "{}\n{}\n{}\n",
                carrying(json!({"sku": "s1"})),
                carrying(json!({})),
                without_app
            ),
        );
        let output = run(&backend, &["plan", "check", "Acme", &events]);
        let printed = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(3), "{name}: {printed}");
        assert!(
            printed.contains("line 2 \"checkout\" /properties/data/sku: required but missing (missing_required, flag)"),
            "{name}: {printed}"
        );
        assert!(
            printed.contains(
                "line 3 \"checkout\" /context/app: required but missing (missing_required, flag)"
            ),
            "{name}: {printed}"
        );
        assert!(!printed.contains("line 1 "), "{name}: {printed}");

        // Exported in Segment's shape, it imports back to the same plan.
        let exported = run_ok(&backend, &["plan", "show", "Acme", "--segment"]);
        let file = write(dir.path(), "exported.json", &exported);
        sightline_json(&backend, &["plan", "import", &file, "--name", "Copy"]);
        let copy: Value =
            serde_json::from_str(&run_ok(&backend, &["plan", "show", "Copy"])).unwrap();
        let mut expected = shown["plan"].clone();
        expected["track"]["Checkout Started"]
            .as_object_mut()
            .unwrap()
            .remove("iglu");
        assert_eq!(copy["plan"], expected, "{name}");

        let not_iglu = write(dir.path(), "plain.json", r#"{"type": "object"}"#);
        let output = run(
            &backend,
            &[
                "plan", "import", &not_iglu, "--format", "iglu", "--name", "Acme",
            ],
        );
        assert!(!output.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("self"),
            "{name}"
        );
    }
}
