//! The route × role matrix of the HTTP API, end to end against the real binary (one server
//! for the whole file): for every route, each role that may not use it gets 403, and each
//! role that may does not (whatever else it gets: 200, 201, 400, 404, 409…). Admin may do
//! everything; the `metrics` role nothing but read /metrics. The same matrix is in the README ("Roles").

mod common;

use common::{client, sightline_json, temp_dir, Backend, Server};
use serde_json::{json, Value};
use std::sync::Arc;

const M: &str = "marketing";
const S: &str = "security";
const AN: &str = "analyst";
const P: &str = "privacy";
/// Reads /metrics and the readiness detail, nothing else.
const MT: &str = "metrics";
const ROLES: [&str; 6] = ["admin", M, S, AN, P, MT];

/// method, path, body (JSON, or raw text for a `Raw` body), the roles besides admin that
/// may use it.
enum Body {
    None,
    Json(Value),
    Raw(&'static str),
}

fn matrix() -> Vec<(&'static str, &'static str, Body, Vec<&'static str>)> {
    use Body::{Json, None, Raw};
    let readers = || vec![M, S, AN];
    let profile_readers = || vec![M, S, AN, P];
    let journey = json!({"name": "shop", "steps": [{"name": "home", "url": "https://shop.test/"}]});
    vec![
        // The log and measurement.
        ("GET", "/api/v1/events", None, readers()),
        ("GET", "/api/v1/measurement/consent-denied", None, readers()),
        (
            "POST",
            "/api/v1/consent",
            Json(json!({"identifier": "user_id:u1", "purposes": {"advertising": false}})),
            vec![M],
        ),
        // Profiles.
        (
            "GET",
            "/api/v1/profiles/user_id:u1",
            None,
            profile_readers(),
        ),
        (
            "GET",
            "/api/v1/profiles/user_id:u1/traits",
            None,
            profile_readers(),
        ),
        // Audiences, traits, attribution.
        ("GET", "/api/v1/audiences", None, readers()),
        (
            "POST",
            "/api/v1/audiences",
            Json(json!({"name": "buyers", "rule": "event \"Order Completed\" within 30d"})),
            vec![M],
        ),
        ("GET", "/api/v1/audiences/buyers/members", None, readers()),
        ("GET", "/api/v1/traits", None, readers()),
        (
            "POST",
            "/api/v1/traits",
            Json(
                json!({"name": "orders_30d", "aggregate": {"kind": "count"}, "within": "30d",
                        "event": {"name": "Order Completed"}}),
            ),
            vec![M],
        ),
        (
            "GET",
            "/api/v1/attribution?conversion=Order%20Completed",
            None,
            vec![M, AN],
        ),
        // Destinations.
        ("GET", "/api/v1/destinations", None, readers()),
        (
            "POST",
            "/api/v1/destinations",
            Json(json!({"name": "hook", "url": "http://127.0.0.1:9/hook", "purposes": []})),
            vec![M],
        ),
        (
            "GET",
            "/api/v1/destinations/hook/deliveries",
            None,
            readers(),
        ),
        (
            "POST",
            "/api/v1/destinations/hook/credential",
            Json(json!({"credential": "c"})),
            vec![M],
        ),
        (
            "POST",
            "/api/v1/destinations/hook/disable",
            Json(json!({})),
            vec![M],
        ),
        (
            "POST",
            "/api/v1/destinations/hook/skip-to",
            Json(json!({"seq": 0})),
            vec![M],
        ),
        (
            "POST",
            "/api/v1/destinations/hook/enable",
            Json(json!({})),
            vec![M],
        ),
        (
            "POST",
            "/api/v1/destinations/hook/replay",
            Json(json!({"dead": true})),
            vec![M],
        ),
        ("DELETE", "/api/v1/destinations/hook", None, vec![M]),
        // CRM import and link reviews.
        (
            "POST",
            "/api/v1/imports/crm",
            Json(json!({"csv": "id,mail\na1,a1@example.com\n",
                        "mapping": {"id_column": "id", "identifiers": {"mail": "email"},
                                    "linkage": {"profiles": false, "dedupe": false}}})),
            vec![],
        ),
        ("GET", "/api/v1/link-reviews", None, vec![]),
        ("GET", "/api/v1/link-reviews/99999", None, vec![]),
        ("POST", "/api/v1/link-reviews/99999/accept", None, vec![]),
        ("POST", "/api/v1/link-reviews/99999/reject", None, vec![]),
        // Governance.
        ("GET", "/api/v1/scans", None, readers()),
        ("GET", "/api/v1/journeys", None, readers()),
        ("POST", "/api/v1/journeys", Json(journey.clone()), vec![M]),
        ("GET", "/api/v1/journeys/shop", None, readers()),
        ("GET", "/api/v1/journeys/shop/export", None, readers()),
        ("PUT", "/api/v1/journeys/shop", Json(journey), vec![M]),
        (
            "POST",
            "/api/v1/journeys/import",
            Raw(
                "name = \"imported\"\n\n[[steps]]\nname = \"home\"\nurl = \"https://shop.test/\"\n",
            ),
            vec![M],
        ),
        ("DELETE", "/api/v1/journeys/shop", None, vec![M]),
        ("GET", "/api/v1/tags", None, readers()),
        (
            "POST",
            "/api/v1/tags",
            Json(
                json!({"tag": {"vendor": "Hotjar", "purpose": "heatmaps", "owner": "ux",
                                "classification": "questionable", "consent_purpose": "analytics",
                                "environment": "staging"}, "reason": "trial"}),
            ),
            vec![M],
        ),
        ("GET", "/api/v1/tags/log", None, readers()),
        (
            "POST",
            "/api/v1/tags/adopt",
            Json(json!({"scan": 99999})),
            vec![M],
        ),
        ("GET", "/api/v1/tags/99999/log", None, readers()),
        (
            "POST",
            "/api/v1/tags/99999/retire",
            Json(json!({"reason": "gone"})),
            vec![M, S],
        ),
        ("GET", "/api/v1/backlog", None, readers()),
        (
            "POST",
            "/api/v1/backlog/99999",
            Json(json!({"action": "fix"})),
            vec![M, S],
        ),
        ("GET", "/api/v1/vendors", None, readers()),
        (
            "POST",
            "/api/v1/vendors",
            Json(json!({"vendor": "Hotjar", "rating": "low"})),
            vec![S],
        ),
        ("GET", "/api/v1/lineage", None, readers()),
        ("GET", "/api/v1/governance/metrics", None, readers()),
        ("GET", "/api/v1/report", None, readers()),
        // Tracking plans.
        ("GET", "/api/v1/tracking-plans", None, readers()),
        (
            "POST",
            "/api/v1/tracking-plans",
            Json(json!({"name": "shop", "plan": {"track": {}}})),
            vec![],
        ),
        ("GET", "/api/v1/tracking-plans/shop", None, readers()),
        (
            "PUT",
            "/api/v1/tracking-plans/shop",
            Raw("{\"track\":{}}"),
            vec![],
        ),
        (
            "POST",
            "/api/v1/tracking-plans/import?format=segment&name=seg",
            Raw("{\"name\":\"seg\",\"rules\":{\"events\":[]}}"),
            vec![],
        ),
        (
            "PUT",
            "/api/v1/sources/web/tracking-plan",
            Json(json!({"plan": null})),
            vec![],
        ),
        ("GET", "/api/v1/sources/web/violations", None, readers()),
        // The operational detail: it names sources and destinations (the metrics
        // listener, `--metrics-listen`, serves it without a token instead).
        ("GET", "/metrics", None, vec![M, S, AN, MT]),
        ("GET", "/readyz?verbose", None, vec![M, S, AN, MT]),
        // The audit log, and subject access exports.
        ("GET", "/api/v1/audit", None, vec![S, P]),
        ("GET", "/api/v1/privacy/subjects/user_id:u1", None, vec![P]),
        (
            "GET",
            "/api/v1/privacy/subjects/user_id:u1?format=html",
            None,
            vec![P],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_the_wrong_roles_and_only_them() {
    let backend = Backend::Sqlite(Arc::new(temp_dir("roles")));
    sightline_json(&backend, &["source", "add", "web"]);
    let tokens: Vec<(&str, String)> = ROLES
        .iter()
        .map(|role| {
            let made = sightline_json(&backend, &["token", "create", "--role", role]);
            (*role, made["token"].as_str().unwrap().to_string())
        })
        .collect();
    let server = Server::start(&backend, &[]);
    let http = client();
    let mut failures = Vec::new();
    for (method, path, body, allowed) in matrix() {
        // The refused first, so that an allowed change (a delete) cannot turn a refusal
        // into a 404: every service checks the role before it looks anything up.
        let mut order: Vec<&(&str, String)> = tokens
            .iter()
            .filter(|(r, _)| *r != "admin" && !allowed.contains(r))
            .collect();
        order.extend(
            tokens
                .iter()
                .filter(|(r, _)| *r == "admin" || allowed.contains(r)),
        );
        for (role, token) in order {
            let url = format!("{}{path}", server.url);
            let request = match method {
                "GET" => http.get(&url),
                "POST" => http.post(&url),
                "PUT" => http.put(&url),
                "DELETE" => http.delete(&url),
                other => panic!("method {other}"),
            }
            .bearer_auth(token);
            let request = match &body {
                Body::None => request,
                Body::Json(value) => request.json(value),
                Body::Raw(text) => request.body(*text),
            };
            let status = request.send().await.unwrap().status().as_u16();
            let may = *role == "admin" || allowed.contains(role);
            if may && (status == 403 || status == 401) {
                failures.push(format!("{method} {path}: {role} may, got {status}"));
            }
            if !may && status != 403 {
                failures.push(format!("{method} {path}: {role} may not, got {status}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
