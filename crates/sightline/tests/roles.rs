//! The route × role matrix of the HTTP API, end to end against the real binary (one server
//! for the whole file). Who may call a route comes from the served OpenAPI document (its
//! `security` and `x-roles`, made from the route registrations; `docs/roles.md` is the same
//! matrix); this file holds a sample request per route, in an order that creates before it
//! uses. For every route and role: a role the document admits gets neither 401 nor 403, any
//! other gets 403; no token gets 401 (a route open to all answers it). The tracking API
//! refuses every API token (401) and takes the write key.

mod common;

use common::{client, sightline_json, temp_dir, Backend, Server};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

const ROLES: [&str; 6] = [
    "admin",
    "marketing",
    "security",
    "analyst",
    "privacy",
    "metrics",
];

enum Body {
    None,
    Json(Value),
    Raw(&'static str),
}

/// A request per documented route: method, the path template as documented, the path
/// sent, the body.
fn samples() -> Vec<(&'static str, &'static str, &'static str, Body)> {
    use Body::{Json, None, Raw};
    let journey = json!({"name": "shop", "steps": [{"name": "home", "url": "https://shop.test/"}]});
    vec![
        ("GET", "/healthz", "/healthz", None),
        ("GET", "/readyz", "/readyz", None),
        ("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", None),
        // The browser's loader and settings: open, keyed by a write key in the path.
        (
            "GET",
            "/analytics.js/v1/{write_key}/analytics.min.js",
            "/analytics.js/v1/no-such-key/analytics.min.js",
            None,
        ),
        (
            "GET",
            "/v1/projects/{write_key}/settings",
            "/v1/projects/no-such-key/settings",
            None,
        ),
        ("GET", "/metrics", "/metrics", None),
        // The log and measurement.
        ("GET", "/api/v1/events", "/api/v1/events", None),
        (
            "GET",
            "/api/v1/measurement/consent-denied",
            "/api/v1/measurement/consent-denied",
            None,
        ),
        (
            "POST",
            "/api/v1/consent",
            "/api/v1/consent",
            Json(json!({"identifier": "user_id:u1", "purposes": {"advertising": false}})),
        ),
        // Profiles.
        (
            "GET",
            "/api/v1/profiles/{id}",
            "/api/v1/profiles/user_id:u1",
            None,
        ),
        (
            "GET",
            "/api/v1/profiles/{id}/{part}",
            "/api/v1/profiles/user_id:u1/traits",
            None,
        ),
        // Audiences, traits, attribution.
        ("GET", "/api/v1/audiences", "/api/v1/audiences", None),
        (
            "POST",
            "/api/v1/audiences",
            "/api/v1/audiences",
            Json(json!({"name": "buyers", "rule": "event \"Order Completed\" within 30d"})),
        ),
        (
            "GET",
            "/api/v1/audiences/{name}/{part}",
            "/api/v1/audiences/buyers/members",
            None,
        ),
        ("GET", "/api/v1/traits", "/api/v1/traits", None),
        (
            "POST",
            "/api/v1/traits",
            "/api/v1/traits",
            Json(
                json!({"name": "orders_30d", "aggregate": {"kind": "count"}, "within": "30d",
                        "event": {"name": "Order Completed"}}),
            ),
        ),
        (
            "GET",
            "/api/v1/attribution",
            "/api/v1/attribution?conversion=Order%20Completed",
            None,
        ),
        // Destinations.
        ("GET", "/api/v1/destinations", "/api/v1/destinations", None),
        (
            "POST",
            "/api/v1/destinations",
            "/api/v1/destinations",
            Json(json!({"name": "hook", "url": "http://127.0.0.1:9/hook", "purposes": []})),
        ),
        (
            "GET",
            "/api/v1/destinations/{name}/deliveries",
            "/api/v1/destinations/hook/deliveries",
            None,
        ),
        (
            "GET",
            "/api/v1/destinations/pending",
            "/api/v1/destinations/pending",
            None,
        ),
        (
            "GET",
            "/api/v1/destinations/log",
            "/api/v1/destinations/log",
            None,
        ),
        (
            "POST",
            "/api/v1/destinations/{name}/change",
            "/api/v1/destinations/hook/change",
            Json(json!({"batch": 1})),
        ),
        (
            "POST",
            "/api/v1/destinations/{name}/approve",
            "/api/v1/destinations/nobody/approve",
            Json(json!({})),
        ),
        (
            "POST",
            "/api/v1/destinations/{name}/reject",
            "/api/v1/destinations/nobody/reject",
            Json(json!({"reason": "no DPA"})),
        ),
        (
            "POST",
            "/api/v1/destinations/{name}/credential",
            "/api/v1/destinations/hook/credential",
            Json(json!({"credential": "c"})),
        ),
        (
            "POST",
            "/api/v1/destinations/{name}/disable",
            "/api/v1/destinations/hook/disable",
            Json(json!({})),
        ),
        (
            "POST",
            "/api/v1/destinations/{name}/skip-to",
            "/api/v1/destinations/hook/skip-to",
            Json(json!({"seq": 0})),
        ),
        (
            "POST",
            "/api/v1/destinations/{name}/enable",
            "/api/v1/destinations/hook/enable",
            Json(json!({})),
        ),
        (
            "POST",
            "/api/v1/destinations/{name}/replay",
            "/api/v1/destinations/hook/replay",
            Json(json!({"dead": true})),
        ),
        (
            "DELETE",
            "/api/v1/destinations/{name}",
            "/api/v1/destinations/hook",
            None,
        ),
        // CRM import and link reviews.
        (
            "POST",
            "/api/v1/imports/crm",
            "/api/v1/imports/crm",
            Json(json!({"csv": "id,mail\na1,a1@example.com\n",
                        "mapping": {"id_column": "id", "identifiers": {"mail": "email"},
                                    "linkage": {"profiles": false, "dedupe": false}}})),
        ),
        ("GET", "/api/v1/link-reviews", "/api/v1/link-reviews", None),
        (
            "GET",
            "/api/v1/link-reviews/{id}",
            "/api/v1/link-reviews/99999",
            None,
        ),
        (
            "POST",
            "/api/v1/link-reviews/{id}/{decision}",
            "/api/v1/link-reviews/99999/accept",
            None,
        ),
        // Governance.
        ("GET", "/api/v1/scans", "/api/v1/scans", None),
        ("GET", "/api/v1/scans/{id}", "/api/v1/scans/1", None),
        (
            "GET",
            "/api/v1/scans/{id}/screenshots/{scenario}/{file}",
            "/api/v1/scans/1/screenshots/no-interaction/01-home.png",
            None,
        ),
        ("GET", "/api/v1/schedules", "/api/v1/schedules", None),
        (
            "POST",
            "/api/v1/schedules",
            "/api/v1/schedules",
            Json(json!({"journey": "nothing", "every": "1h"})),
        ),
        (
            "PUT",
            "/api/v1/schedules/{journey}",
            "/api/v1/schedules/nothing",
            Json(json!({"journey": "nothing", "every": "1h"})),
        ),
        (
            "DELETE",
            "/api/v1/schedules/{journey}",
            "/api/v1/schedules/nothing",
            None,
        ),
        (
            "POST",
            "/api/v1/schedules/{journey}/run",
            "/api/v1/schedules/nothing-scheduled/run",
            None,
        ),
        ("GET", "/api/v1/journeys", "/api/v1/journeys", None),
        (
            "POST",
            "/api/v1/journeys",
            "/api/v1/journeys",
            Json(journey.clone()),
        ),
        (
            "GET",
            "/api/v1/journeys/{name}",
            "/api/v1/journeys/shop",
            None,
        ),
        (
            "GET",
            "/api/v1/journeys/{name}/export",
            "/api/v1/journeys/shop/export",
            None,
        ),
        (
            "PUT",
            "/api/v1/journeys/{name}",
            "/api/v1/journeys/shop",
            Json(journey),
        ),
        (
            "POST",
            "/api/v1/journeys/import",
            "/api/v1/journeys/import",
            Raw(
                "name = \"imported\"\n\n[[steps]]\nname = \"home\"\nurl = \"https://shop.test/\"\n",
            ),
        ),
        (
            "DELETE",
            "/api/v1/journeys/{name}",
            "/api/v1/journeys/shop",
            None,
        ),
        ("GET", "/api/v1/tags", "/api/v1/tags", None),
        (
            "POST",
            "/api/v1/tags",
            "/api/v1/tags",
            Json(
                json!({"tag": {"vendor": "Hotjar", "purpose": "heatmaps", "owner": "ux",
                                "classification": "questionable", "consent_purpose": "analytics",
                                "environment": "staging"}, "reason": "trial"}),
            ),
        ),
        ("GET", "/api/v1/tags/log", "/api/v1/tags/log", None),
        (
            "POST",
            "/api/v1/tags/adopt",
            "/api/v1/tags/adopt",
            Json(json!({"scan": 99999})),
        ),
        (
            "GET",
            "/api/v1/tags/{id}/log",
            "/api/v1/tags/99999/log",
            None,
        ),
        (
            "POST",
            "/api/v1/tags/{id}/{action}",
            "/api/v1/tags/99999/retire",
            Json(json!({"reason": "gone"})),
        ),
        ("GET", "/api/v1/backlog", "/api/v1/backlog", None),
        (
            "POST",
            "/api/v1/backlog/{id}",
            "/api/v1/backlog/99999",
            Json(json!({"action": "fix"})),
        ),
        ("GET", "/api/v1/vendors", "/api/v1/vendors", None),
        (
            "POST",
            "/api/v1/vendors",
            "/api/v1/vendors",
            Json(json!({"vendor": "Hotjar", "rating": "low"})),
        ),
        ("GET", "/api/v1/lineage", "/api/v1/lineage", None),
        (
            "GET",
            "/api/v1/governance/metrics",
            "/api/v1/governance/metrics",
            None,
        ),
        ("GET", "/api/v1/report", "/api/v1/report", None),
        // Tracking plans.
        (
            "GET",
            "/api/v1/tracking-plans",
            "/api/v1/tracking-plans",
            None,
        ),
        (
            "POST",
            "/api/v1/tracking-plans",
            "/api/v1/tracking-plans",
            Json(json!({"name": "shop", "plan": {"track": {}}})),
        ),
        (
            "GET",
            "/api/v1/tracking-plans/{name}",
            "/api/v1/tracking-plans/shop",
            None,
        ),
        (
            "PUT",
            "/api/v1/tracking-plans/{name}",
            "/api/v1/tracking-plans/shop",
            Raw("{\"track\":{}}"),
        ),
        (
            "POST",
            "/api/v1/tracking-plans/import",
            "/api/v1/tracking-plans/import?format=segment&name=seg",
            Raw("{\"name\":\"seg\",\"rules\":{\"events\":[]}}"),
        ),
        (
            "PUT",
            "/api/v1/sources/{name}/tracking-plan",
            "/api/v1/sources/web/tracking-plan",
            Json(json!({"plan": null})),
        ),
        (
            "GET",
            "/api/v1/sources/{name}/violations",
            "/api/v1/sources/web/violations",
            None,
        ),
        // The audit log, subject access exports and erasures.
        ("GET", "/api/v1/audit", "/api/v1/audit", None),
        // The nodes and who runs which processor.
        ("GET", "/api/v1/cluster", "/api/v1/cluster", None),
        (
            "GET",
            "/api/v1/privacy/subjects/{id}",
            "/api/v1/privacy/subjects/user_id:u1?format=html",
            None,
        ),
        // Erasures (of someone no one holds: each allowed one is "nothing found").
        (
            "POST",
            "/api/v1/privacy/erasures",
            "/api/v1/privacy/erasures",
            Json(json!({"identifier": "user_id:nobody-here"})),
        ),
        (
            "GET",
            "/api/v1/privacy/erasures",
            "/api/v1/privacy/erasures",
            None,
        ),
        (
            "GET",
            "/api/v1/privacy/erasures/{id}",
            "/api/v1/privacy/erasures/er_none",
            None,
        ),
    ]
}

/// A tracking call every `/v1/*` path takes (a batch reads `batch`, a single call the rest).
fn tracking_call() -> Value {
    json!({"type": "track", "userId": "u1", "event": "Signed Up", "previousId": "u0",
           "groupId": "g1", "batch": [{"type": "track", "userId": "u1", "event": "Signed Up"}]})
}

/// Who may call it, from the document: `None` when no credential is needed, `Some(roles)`
/// for an API token (empty for a write-key route: no role's token is a write key).
fn admitted(operation: &Value) -> Option<Vec<String>> {
    let schemes: Vec<&str> = operation["security"]
        .as_array()
        .map(|all| {
            all.iter()
                .flat_map(|s| s.as_object().into_iter().flat_map(|o| o.keys()))
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    if schemes.is_empty() {
        return None;
    }
    Some(
        operation["x-roles"]
            .as_array()
            .map(|roles| {
                roles
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_the_documented_roles_and_only_them() {
    let backend = Backend::Sqlite(Arc::new(temp_dir("roles")));
    let write_key = sightline_json(&backend, &["source", "add", "web"])["write_key"]
        .as_str()
        .unwrap()
        .to_string();
    let tokens: Vec<(&str, String)> = ROLES
        .iter()
        .map(|role| {
            let made = sightline_json(&backend, &["token", "create", "--role", role]);
            (*role, made["token"].as_str().unwrap().to_string())
        })
        .collect();
    let server = Server::start(&backend, &[]);
    let http = client();
    let document: Value = http
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operation =
        |method: &str, template: &str| document["paths"][template][method.to_lowercase()].clone();

    // Every documented route has a sample, and every sample a documented route.
    let mut requests: Vec<(String, String, String, Body)> = samples()
        .into_iter()
        .map(|(m, t, p, b)| (m.to_string(), t.to_string(), p.to_string(), b))
        .collect();
    for (path, item) in document["paths"].as_object().unwrap() {
        if path.starts_with("/v1/") && item["post"].is_object() {
            requests.push((
                "POST".into(),
                path.clone(),
                path.clone(),
                Body::Json(tracking_call()),
            ));
        }
    }
    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let sampled: BTreeSet<String> = requests
        .iter()
        .map(|(m, t, _, _)| format!("{m} {t}"))
        .collect();
    let unsampled: Vec<_> = documented.difference(&sampled).collect();
    let undocumented: Vec<_> = sampled.difference(&documented).collect();
    assert!(
        unsampled.is_empty() && undocumented.is_empty(),
        "add a sample request to roles.rs for {unsampled:?}; these samples are not in the \
         document: {undocumented:?}"
    );

    let mut failures = Vec::new();
    let send = |method: &str, path: &str, body: &Body| {
        let url = format!("{}{path}", server.url);
        let request = match method {
            "GET" => http.get(&url),
            "POST" => http.post(&url),
            "PUT" => http.put(&url),
            "DELETE" => http.delete(&url),
            other => panic!("method {other}"),
        };
        match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Raw(text) => request.body(*text),
        }
    };
    for (method, template, path, body) in &requests {
        let admitted = admitted(&operation(method, template));
        let route = format!("{method} {path}");
        // Without credentials.
        let status = send(method, path, body).send().await.unwrap().status();
        match &admitted {
            None if status == 401 || status == 403 || status.is_server_error() => failures.push(
                format!("{route}: open to all, got {status} without a token"),
            ),
            Some(_) if status != 401 => {
                failures.push(format!("{route}: needs a credential, got {status} without"))
            }
            _ => {}
        }
        // The refused first, so that an allowed change (a delete) cannot turn a refusal
        // into a 404: every service checks the role before it looks anything up.
        let may = |role: &str| {
            admitted
                .as_ref()
                .is_none_or(|a| a.iter().any(|r| r == role))
        };
        let mut order: Vec<&(&str, String)> = tokens.iter().filter(|(r, _)| !may(r)).collect();
        order.extend(tokens.iter().filter(|(r, _)| may(r)));
        let write_key_route = admitted.as_ref().is_some_and(Vec::is_empty);
        for (role, token) in order {
            let status = send(method, path, body)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let refusal = if write_key_route { 401 } else { 403 };
            if may(role) && (status == 403 || status == 401 || status >= 500) {
                failures.push(format!("{route}: {role} may, got {status}"));
            }
            if may(role) && *role == "admin" && (status == 404 || status == 405) {
                // A documented route the server does not serve (or under another method).
                let answer = send(method, path, body)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                let text = answer.text().await.unwrap_or_default();
                if status == 405 || text.contains("no such endpoint") {
                    failures.push(format!("{route}: documented but not served ({status})"));
                }
            }
            if !may(role) && status != refusal {
                failures.push(format!("{route}: {role} may not, got {status}"));
            }
        }
        if write_key_route {
            let status = send(method, path, body)
                .basic_auth(&write_key, Some(""))
                .send()
                .await
                .unwrap()
                .status();
            if !status.is_success() {
                failures.push(format!("{route}: the write key got {status}"));
            }
        }
    }

    // `/readyz?verbose` names destinations: the same roles as /metrics.
    let detail = admitted(&operation("GET", "/metrics")).expect("/metrics needs a token");
    for (role, token) in &tokens {
        let status = send("GET", "/readyz?verbose", &Body::None)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let expected_refusal = !detail.iter().any(|r| r == role);
        if expected_refusal != (status == 403) {
            failures.push(format!("GET /readyz?verbose: {role} got {status}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
