//! Local fakes of the vendors' APIs for tests (and the bench): each checks every request
//! against the vendor's documented request schema, records what it received and any
//! departure from the schema, and answers as the vendor documents — success, a refused
//! request, a rate limit with its retry hint, a refused credential — in the order a test
//! scripts, then success. Shared by `#[path]` so that every test speaks to the same fake.

#![allow(dead_code)] // each test binary uses a different part of the fakes

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What the fake answers to one request, beyond its own schema checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripted {
    /// The answer the fake's own checks give (success for a valid request).
    AsChecked,
    /// A rate limit, with the vendor's retry hint (GA4: 429 and `Retry-After: 1`; Meta:
    /// Graph error code 17, "User request limit reached").
    RateLimited,
    /// A server error (503).
    Unavailable,
    /// The credential refused (GA4: 403; Meta: 400 with `OAuthException` code 190).
    BadCredential,
    /// The request refused as invalid (400; Meta: code 100, "Invalid parameter").
    Invalid,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Value,
    pub status: u16,
}

#[derive(Default)]
struct FakeState {
    script: VecDeque<Scripted>,
    seen: Vec<Seen>,
    /// Departures from the documented schema, one line each.
    problems: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Ga4,
    Meta,
}

/// A fake vendor API on a free local port.
#[derive(Clone)]
pub struct Fake {
    kind: Kind,
    /// The credential it accepts.
    credential: String,
    state: Arc<Mutex<FakeState>>,
    /// Where to point a destination (`--url`).
    pub url: String,
}

impl Fake {
    pub async fn start(kind: Kind, credential: &str) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let url = match kind {
            Kind::Ga4 => format!("http://{address}/mp/collect"),
            Kind::Meta => format!("http://{address}"),
        };
        let fake = Fake {
            kind,
            credential: credential.into(),
            state: Arc::default(),
            url,
        };
        let app = match kind {
            Kind::Ga4 => axum::Router::new().route("/mp/collect", axum::routing::post(ga4)),
            Kind::Meta => {
                axum::Router::new().route("/{version}/{pixel}/events", axum::routing::post(meta))
            }
        }
        .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.lock().unwrap().problems.clone()
    }

    /// The events of every accepted request, in arrival order.
    pub fn accepted_events(&self) -> Vec<Value> {
        let key = match self.kind {
            Kind::Ga4 => "events",
            Kind::Meta => "data",
        };
        self.seen()
            .into_iter()
            .filter(|s| (200..300).contains(&s.status))
            .flat_map(|s| s.body[key].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Records the request and its schema problems, and picks the answer: the script's
    /// next, else `valid`'s verdict.
    fn answer(&self, seen: Seen, problems: Vec<String>) -> Option<Scripted> {
        let mut state = self.state.lock().unwrap();
        let scripted = state.script.pop_front();
        state.problems.extend(problems);
        state.seen.push(seen);
        scripted
    }

    fn set_last_status(&self, status: u16) {
        if let Some(last) = self.state.lock().unwrap().seen.last_mut() {
            last.status = status;
        }
    }
}

fn seen(path: String, query: HashMap<String, String>, raw: &Bytes) -> Seen {
    Seen {
        path,
        query,
        body: serde_json::from_slice(raw).unwrap_or(Value::Null),
        status: 0,
    }
}

// ---- GA4 Measurement Protocol ----------------------------------------------------------

/// Event names the Measurement Protocol reserves, and its reserved prefixes.
const GA4_RESERVED: [&str; 8] = [
    "session_start",
    "first_visit",
    "user_engagement",
    "screen_view",
    "app_remove",
    "error",
    "first_open",
    "ad_click",
];

/// The Measurement Protocol reference's schema and limits.
fn ga4_problems(raw: &Bytes, query: &HashMap<String, String>, body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(p);
    if raw.len() > 130_000 {
        problem(format!("body of {} bytes over 130 kB", raw.len()));
    }
    if !query
        .get("measurement_id")
        .is_some_and(|m| m.starts_with("G-"))
    {
        problem("measurement_id missing from the query".into());
    }
    let Some(object) = body.as_object() else {
        problem("body is not a JSON object".into());
        return problems;
    };
    for key in object.keys() {
        if ![
            "client_id",
            "user_id",
            "timestamp_micros",
            "user_properties",
            "consent",
            "events",
            "non_personalized_ads",
            "user_data",
            "user_location",
            "device",
            "ip_override",
            "validation_behavior",
        ]
        .contains(&key.as_str())
        {
            problem(format!("unknown top-level field {key}"));
        }
    }
    if !body["client_id"].is_string() {
        problem("client_id (required for web streams) is not a string".into());
    }
    if let Some(user_id) = body.get("user_id") {
        if user_id.as_str().is_none_or(|u| u.chars().count() > 256) {
            problem("user_id is not a string of at most 256 characters".into());
        }
    }
    if let Some(consent) = body.get("consent") {
        for (key, value) in consent.as_object().into_iter().flatten() {
            if !["ad_user_data", "ad_personalization"].contains(&key.as_str())
                || !["GRANTED", "DENIED"].contains(&value.as_str().unwrap_or(""))
            {
                problem(format!("consent.{key} = {value} is not GRANTED or DENIED"));
            }
        }
    }
    let events = body["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() || events.len() > 25 {
        problem(format!("{} events: 1 to 25 allowed", events.len()));
    }
    for event in &events {
        let name = event["name"].as_str().unwrap_or("");
        let valid_name = name.len() <= 40
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name
            || GA4_RESERVED.contains(&name)
            || ["ga_", "google_", "firebase_"]
                .iter()
                .any(|p| name.starts_with(p))
        {
            problem(format!("event name {name:?} is not one GA4 takes"));
        }
        if let Some(micros) = event.get("timestamp_micros") {
            if micros.as_i64().is_none_or(|m| m <= 1_000_000_000_000_000) {
                problem(format!("timestamp_micros {micros} is not in microseconds"));
            }
        }
        let params = event["params"].as_object().cloned().unwrap_or_default();
        if params.len() > 25 {
            problem(format!("{name}: {} params, over 25", params.len()));
        }
        for (key, value) in &params {
            if key.len() > 40 || !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
                problem(format!("{name}: param name {key:?}"));
            }
            let max = match key.as_str() {
                "page_location" => 1000,
                "page_referrer" => 420,
                "page_title" => 300,
                _ => 100,
            };
            if value.as_str().is_some_and(|s| s.chars().count() > max) {
                problem(format!("{name}: {key} longer than {max}"));
            }
            if value.as_str().is_some_and(|s| s.contains('@')) {
                problem(format!(
                    "{name}: {key} looks like an email: GA4 forbids personal data"
                ));
            }
        }
    }
    problems
}

async fn ga4(
    State(fake): State<Fake>,
    Query(query): Query<HashMap<String, String>>,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let problems = ga4_problems(&raw, &query, &body);
    let scripted = fake.answer(seen("/mp/collect".into(), query, &raw), problems);
    let (status, retry_after) = match scripted {
        Some(Scripted::RateLimited) => (429, Some("1")),
        Some(Scripted::Unavailable) => (503, None),
        Some(Scripted::BadCredential) => (403, None),
        Some(Scripted::Invalid) => (400, None),
        // The Measurement Protocol answers 2xx to anything it receives (its validation
        // server alone reports errors; a wrong secret is simply not recorded): tests read
        // the problems and the query instead.
        Some(Scripted::AsChecked) | None => (204, None),
    };
    fake.set_last_status(status);
    let mut response = StatusCode::from_u16(status).unwrap().into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.parse().unwrap());
    }
    response
}

// ---- Meta Conversions API --------------------------------------------------------------

fn is_sha256_hex(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The Conversions API's parameters: what makes Meta refuse a whole batch.
fn meta_problems(body: &Value, now_s: i64) -> Vec<String> {
    let mut problems = Vec::new();
    let data = body["data"].as_array().cloned().unwrap_or_default();
    if data.is_empty() || data.len() > 1000 {
        problems.push(format!("{} events in data: 1 to 1000 allowed", data.len()));
    }
    for event in &data {
        let name = event["event_name"].as_str().unwrap_or("");
        if name.is_empty() {
            problems.push("an event without event_name".into());
        }
        match event["event_time"].as_i64() {
            Some(t) if now_s - t <= 7 * 24 * 3600 && t <= now_s + 600 => {}
            other => problems.push(format!(
                "{name}: event_time {other:?} outside the last 7 days"
            )),
        }
        let source = event["action_source"].as_str().unwrap_or("");
        if ![
            "email",
            "website",
            "app",
            "phone_call",
            "chat",
            "physical_store",
            "system_generated",
            "business_messaging",
            "other",
        ]
        .contains(&source)
        {
            problems.push(format!("{name}: action_source {source:?}"));
        }
        let user = &event["user_data"];
        if !user.is_object() {
            problems.push(format!("{name}: no user_data"));
        }
        if source == "website"
            && (!event["event_source_url"].is_string() || !user["client_user_agent"].is_string())
        {
            problems.push(format!(
                "{name}: website events need event_source_url and client_user_agent"
            ));
        }
        for key in [
            "em",
            "ph",
            "fn",
            "ln",
            "ge",
            "db",
            "ct",
            "st",
            "zp",
            "country",
            "external_id",
        ] {
            if let Some(values) = user.get(key) {
                let hashed = values
                    .as_array()
                    .is_some_and(|v| v.iter().all(is_sha256_hex))
                    || is_sha256_hex(values);
                if !hashed {
                    problems.push(format!(
                        "{name}: user_data.{key} is not SHA-256 hex: {values}"
                    ));
                }
            }
        }
        if !event["event_id"].is_string() {
            problems.push(format!("{name}: no event_id to deduplicate with the pixel"));
        }
    }
    problems
}

fn graph_error(status: u16, code: i64, kind: &str, message: &str) -> Response {
    let body =
        json!({"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

async fn meta(
    State(fake): State<Fake>,
    Path((version, pixel)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut problems = meta_problems(&body, now_s);
    if !version.starts_with('v') || !pixel.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(format!("path /{version}/{pixel}/events"));
    }
    let credential_ok = query.get("access_token") == Some(&fake.credential);
    let received = body["data"].as_array().map_or(0, Vec::len);
    let invalid = !problems.is_empty();
    let scripted = fake.answer(
        seen(format!("/{version}/{pixel}/events"), query, &raw),
        problems,
    );
    let (status, response) = match scripted {
        Some(Scripted::RateLimited) => (
            400,
            graph_error(
                400,
                17,
                "OAuthException",
                "(#17) User request limit reached",
            ),
        ),
        Some(Scripted::Unavailable) => (
            503,
            graph_error(503, 2, "OAuthException", "Service temporarily unavailable"),
        ),
        Some(Scripted::BadCredential) => (
            400,
            graph_error(400, 190, "OAuthException", "Error validating access token"),
        ),
        Some(Scripted::Invalid) => (
            400,
            graph_error(400, 100, "OAuthException", "(#100) Invalid parameter"),
        ),
        Some(Scripted::AsChecked) | None if !credential_ok => (
            400,
            graph_error(400, 190, "OAuthException", "Invalid OAuth access token"),
        ),
        // One invalid event fails the whole request, as Meta documents.
        Some(Scripted::AsChecked) | None if invalid => (
            400,
            graph_error(400, 100, "OAuthException", "(#100) Invalid parameter"),
        ),
        Some(Scripted::AsChecked) | None => (
            200,
            axum::Json(
                json!({"events_received": received, "messages": [], "fbtrace_id": "AbCdEf"}),
            )
            .into_response(),
        ),
    };
    fake.set_last_status(status);
    response
}
