//! Local fakes of the vendors' APIs for tests (and the bench): each checks every request
//! against the vendor's documented request schema, records what it received and any
//! departure from the schema, and answers as the vendor documents — success, a refused
//! request, some items refused (where the vendor answers per item), a rate limit with its
//! retry hint, a refused credential — in the order a test
//! scripts, then success. Shared by `#[path]` so that every test speaks to the same fake.

#![allow(dead_code)] // each test binary uses a different part of the fakes

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
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
    /// Graph error code 17, "User request limit reached"; TikTok: code 40100; LinkedIn:
    /// 429).
    RateLimited,
    /// A server error (503; TikTok: code 50000).
    Unavailable,
    /// The credential refused (GA4: 403; Meta: 400 with `OAuthException` code 190;
    /// TikTok: code 40105; LinkedIn: 401 `REVOKED_ACCESS_TOKEN`).
    BadCredential,
    /// The request refused as invalid (400; Meta: code 100, "Invalid parameter"; TikTok:
    /// code 40002).
    Invalid,
    /// LinkedIn, Google Ads: the request taken but its first item refused (LinkedIn: a
    /// per-element 400; Google Ads: a `partialFailureError` naming `conversions[0]`);
    /// vendors without partial failure refuse the whole request as `Invalid`.
    PartlyRefused,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST`, or `DELETE` (Meta's audience removes).
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    /// The headers that carry a credential or a protocol version, lowercased names.
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub status: u16,
    /// The items the vendor refused in an accepted request (LinkedIn), by index.
    pub refused: Vec<usize>,
}

#[derive(Default)]
struct FakeState {
    script: VecDeque<Scripted>,
    seen: Vec<Seen>,
    /// Departures from the documented schema, one line each.
    problems: Vec<String>,
    /// Each audience list's members as applied (Meta: at once; Google: when its job
    /// runs), by the hash that names them (the email's, else the phone's).
    lists: HashMap<String, std::collections::BTreeSet<String>>,
    /// Google's offline user data jobs, by id.
    jobs: HashMap<u64, GoogleJob>,
}

/// A Customer Match job as the fake keeps it.
#[derive(Debug, Clone, Default)]
struct GoogleJob {
    list: String,
    /// `create` or `remove`, with the member's first identifier hash.
    operations: Vec<(String, String)>,
    ran: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Ga4,
    Meta,
    Tiktok,
    Linkedin,
    GoogleAds,
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
            Kind::Tiktok => format!("http://{address}/open_api/v1.3/event/track/"),
            Kind::Linkedin => format!("http://{address}/rest/conversionEvents"),
            Kind::GoogleAds => format!("http://{address}"),
        };
        let fake = Fake {
            kind,
            credential: credential.into(),
            state: Arc::default(),
            url,
        };
        let app = match kind {
            Kind::Ga4 => axum::Router::new().route("/mp/collect", axum::routing::post(ga4)),
            Kind::Meta => axum::Router::new()
                .route("/{version}/{pixel}/events", axum::routing::post(meta))
                .route(
                    "/{version}/{audience}/users",
                    axum::routing::post(meta_users_added).delete(meta_users_removed),
                ),
            Kind::Tiktok => axum::Router::new()
                .route("/open_api/v1.3/event/track/", axum::routing::post(tiktok)),
            Kind::Linkedin => {
                axum::Router::new().route("/rest/conversionEvents", axum::routing::post(linkedin))
            }
            Kind::GoogleAds => axum::Router::new()
                .route(
                    "/{version}/customers/{call}",
                    axum::routing::post(google_ads),
                )
                .route(
                    "/{version}/customers/{customer}/{call}",
                    axum::routing::post(google_job_create),
                )
                .route(
                    "/{version}/customers/{customer}/offlineUserDataJobs/{call}",
                    axum::routing::post(google_job_call),
                ),
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

    /// The members of a vendor audience list (its id) as the vendor applied them.
    pub fn list(&self, list: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .lists
            .get(list)
            .map(|members| members.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.lock().unwrap().problems.clone()
    }

    /// The events of every accepted request, in arrival order.
    pub fn accepted_events(&self) -> Vec<Value> {
        let key = match self.kind {
            Kind::Ga4 => "events",
            Kind::Meta | Kind::Tiktok => "data",
            Kind::Linkedin => "elements",
            Kind::GoogleAds => "conversions",
        };
        self.seen()
            .into_iter()
            .filter(|s| (200..300).contains(&s.status))
            .flat_map(|s| {
                let items = s.body[key].as_array().cloned().unwrap_or_default();
                items
                    .into_iter()
                    .enumerate()
                    .filter(move |(i, _)| !s.refused.contains(i))
                    .map(|(_, item)| item)
            })
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

    fn set_last_refused(&self, refused: Vec<usize>) {
        if let Some(last) = self.state.lock().unwrap().seen.last_mut() {
            last.refused = refused;
        }
    }
}

fn seen(path: String, query: HashMap<String, String>, raw: &Bytes) -> Seen {
    Seen {
        method: "POST".into(),
        path,
        query,
        headers: HashMap::new(),
        body: serde_json::from_slice(raw).unwrap_or(Value::Null),
        status: 0,
        refused: Vec::new(),
    }
}

/// The headers a vendor reads, by lowercase name.
fn kept_headers(headers: &HeaderMap) -> HashMap<String, String> {
    [
        "access-token",
        "authorization",
        "linkedin-version",
        "x-restli-protocol-version",
        "x-restli-method",
        "developer-token",
        "login-customer-id",
        "content-type",
    ]
    .into_iter()
    .filter_map(|name| {
        let value = headers.get(name)?.to_str().ok()?;
        Some((name.to_owned(), value.to_owned()))
    })
    .collect()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
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
        Some(Scripted::Invalid | Scripted::PartlyRefused) => (400, None),
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
    let (status, response) = graph_refusal(scripted, credential_ok, invalid).unwrap_or_else(|| {
        (
            200,
            axum::Json(
                json!({"events_received": received, "messages": [], "fbtrace_id": "AbCdEf"}),
            )
            .into_response(),
        )
    });
    fake.set_last_status(status);
    response
}

/// The Graph API's refusal of a request, scripted or as the fake's checks found it; `None`
/// to take it. Meta has no partial failure: one invalid item fails the whole request.
fn graph_refusal(
    scripted: Option<Scripted>,
    credential_ok: bool,
    invalid: bool,
) -> Option<(u16, Response)> {
    Some(match scripted {
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
        Some(Scripted::Invalid | Scripted::PartlyRefused) => (
            400,
            graph_error(400, 100, "OAuthException", "(#100) Invalid parameter"),
        ),
        Some(Scripted::AsChecked) | None if !credential_ok => (
            400,
            graph_error(400, 190, "OAuthException", "Invalid OAuth access token"),
        ),
        Some(Scripted::AsChecked) | None if invalid => (
            400,
            graph_error(400, 100, "OAuthException", "(#100) Invalid parameter"),
        ),
        Some(Scripted::AsChecked) | None => return None,
    })
}

// ---- TikTok Events API 2.0 -------------------------------------------------------------

/// Whether a hashed field is SHA-256 hex, as a string or an array of them (both are
/// documented).
fn hashed(value: &Value) -> bool {
    is_sha256_hex(value)
        || value
            .as_array()
            .is_some_and(|v| v.iter().all(is_sha256_hex))
}

/// The Events API 2.0 parameters (web): what makes TikTok refuse a whole request.
fn tiktok_problems(body: &Value, now_s: i64) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = body.as_object() else {
        return vec!["body is not a JSON object".into()];
    };
    for key in object.keys() {
        if !["event_source", "event_source_id", "test_event_code", "data"].contains(&key.as_str()) {
            problems.push(format!("unknown top-level field {key}"));
        }
    }
    if body["event_source"] != "web" {
        problems.push(format!("event_source {} is not web", body["event_source"]));
    }
    if body["event_source_id"]
        .as_str()
        .is_none_or(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        problems.push("event_source_id (the pixel code) missing".into());
    }
    let data = body["data"].as_array().cloned().unwrap_or_default();
    if data.is_empty() || data.len() > 1000 {
        problems.push(format!("{} events in data: 1 to 1000 allowed", data.len()));
    }
    for event in &data {
        let name = event["event"].as_str().unwrap_or("");
        if name.is_empty() {
            problems.push("an event without event".into());
        }
        for key in event.as_object().into_iter().flat_map(|o| o.keys()) {
            if ![
                "event",
                "event_time",
                "event_id",
                "user",
                "page",
                "properties",
                "limited_data_use",
            ]
            .contains(&key.as_str())
            {
                problems.push(format!("{name}: unknown field {key}"));
            }
        }
        match event["event_time"].as_i64() {
            Some(t) if now_s - t <= 7 * 24 * 3600 && t <= now_s + 600 => {}
            other => problems.push(format!(
                "{name}: event_time {other:?} is not Unix seconds in the last 7 days"
            )),
        }
        if !event["event_id"].is_string() {
            problems.push(format!("{name}: no event_id to deduplicate with the pixel"));
        }
        let user = &event["user"];
        if !user.is_object() {
            problems.push(format!("{name}: no user"));
        }
        for key in ["email", "phone", "external_id"] {
            if let Some(value) = user.get(key) {
                if !hashed(value) {
                    problems.push(format!("{name}: user.{key} is not SHA-256 hex: {value}"));
                }
            }
        }
        for key in ["ttclid", "ttp", "ip", "user_agent", "locale"] {
            if user.get(key).is_some_and(|v| !v.is_string()) {
                problems.push(format!("{name}: user.{key} is not a string"));
            }
        }
        if let Some(page) = event.get("page") {
            if !page["url"].is_string() {
                problems.push(format!("{name}: page without url"));
            }
        }
        let properties = &event["properties"];
        if let Some(value) = properties.get("value") {
            if !value.is_number() {
                problems.push(format!("{name}: properties.value {value} is not a number"));
            }
        }
        if let Some(currency) = properties.get("currency") {
            if currency
                .as_str()
                .is_none_or(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
            {
                problems.push(format!("{name}: currency {currency} is not ISO 4217"));
            }
        }
        for content in properties["contents"].as_array().into_iter().flatten() {
            if !content["content_id"].is_string() {
                problems.push(format!("{name}: a content without content_id"));
            }
        }
        if event
            .get("limited_data_use")
            .is_some_and(|v| !v.is_boolean())
        {
            problems.push(format!("{name}: limited_data_use is not a boolean"));
        }
    }
    problems
}

fn tiktok_answer(code: i64, message: &str) -> Response {
    // TikTok's Business API answers HTTP 200 and puts the outcome in `code`.
    axum::Json(
        json!({"code": code, "message": message, "request_id": "2025120412000000", "data": {}}),
    )
    .into_response()
}

async fn tiktok(State(fake): State<Fake>, headers: HeaderMap, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let problems = tiktok_problems(&body, now_s());
    let kept = kept_headers(&headers);
    let token = kept.get("access-token").cloned();
    let invalid = !problems.is_empty();
    let mut seen = seen("/open_api/v1.3/event/track/".into(), HashMap::new(), &raw);
    seen.headers = kept;
    let scripted = fake.answer(seen, problems);
    let response = match scripted {
        Some(Scripted::RateLimited) => {
            tiktok_answer(40100, "Too many requests. Please retry in some time.")
        }
        Some(Scripted::Unavailable) => tiktok_answer(50000, "System error"),
        Some(Scripted::BadCredential) => {
            tiktok_answer(40105, "The access token is invalid or has been revoked.")
        }
        Some(Scripted::Invalid | Scripted::PartlyRefused) => {
            tiktok_answer(40002, "Invalid parameters")
        }
        Some(Scripted::AsChecked) | None if token.is_none() => {
            tiktok_answer(40104, "Access token is null.")
        }
        Some(Scripted::AsChecked) | None if token.as_deref() != Some(fake.credential.as_str()) => {
            tiktok_answer(40105, "The access token is invalid or has been revoked.")
        }
        // One invalid event fails the whole request.
        Some(Scripted::AsChecked) | None if invalid => tiktok_answer(40002, "Invalid parameters"),
        Some(Scripted::AsChecked) | None => tiktok_answer(0, "OK"),
    };
    let ok = matches!(scripted, Some(Scripted::AsChecked) | None)
        && !invalid
        && token.as_deref() == Some(fake.credential.as_str());
    // The HTTP status is 200 either way; `seen.status` says whether TikTok took it.
    fake.set_last_status(if ok { 200 } else { 400 });
    response
}

// ---- LinkedIn Conversions API ----------------------------------------------------------

const LINKEDIN_ID_TYPES: [&str; 4] = [
    "SHA256_EMAIL",
    "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID",
    "ACXIOM_ID",
    "ORACLE_MOAT_ID",
];

/// The request's protocol headers, as LinkedIn's versioned API requires them.
fn linkedin_header_problems(headers: &HashMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    if !headers
        .get("linkedin-version")
        .is_some_and(|v| v.len() == 6 && v.bytes().all(|b| b.is_ascii_digit()))
    {
        problems.push("LinkedIn-Version is not YYYYMM".into());
    }
    if headers.get("x-restli-protocol-version").map(String::as_str) != Some("2.0.0") {
        problems.push("X-Restli-Protocol-Version is not 2.0.0".into());
    }
    if headers.get("x-restli-method").map(String::as_str) != Some("BATCH_CREATE") {
        problems.push("X-RestLi-Method is not BATCH_CREATE for a batch".into());
    }
    problems
}

/// One element's departures from the conversion event schema.
fn linkedin_element_problems(element: &Value, now_ms: i64) -> Vec<String> {
    let mut problems = Vec::new();
    let id = element["eventId"].as_str().unwrap_or("?").to_owned();
    let conversion = element["conversion"].as_str().unwrap_or("");
    let rule = conversion.strip_prefix("urn:lla:llaPartnerConversion:");
    if rule.is_none_or(|r| r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit())) {
        problems.push(format!(
            "{id}: conversion {conversion:?} is not a conversion rule URN"
        ));
    }
    match element["conversionHappenedAt"].as_i64() {
        Some(t) if now_ms - t <= 90 * 24 * 3600 * 1000 && t <= now_ms + 600_000 => {}
        other => problems.push(format!(
            "{id}: conversionHappenedAt {other:?} is not ms in the last 90 days"
        )),
    }
    if let Some(value) = element.get("conversionValue") {
        let currency_ok = value["currencyCode"]
            .as_str()
            .is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
        let amount_ok = value["amount"]
            .as_str()
            .is_some_and(|a| a.parse::<f64>().is_ok());
        if !currency_ok || !amount_ok {
            problems.push(format!(
                "{id}: conversionValue {value} is not a currency and an amount string"
            ));
        }
    }
    let ids = element["user"]["userIds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if ids.is_empty() {
        problems.push(format!("{id}: user.userIds is empty"));
    }
    for user_id in &ids {
        let kind = user_id["idType"].as_str().unwrap_or("");
        if !LINKEDIN_ID_TYPES.contains(&kind) || !user_id["idValue"].is_string() {
            problems.push(format!("{id}: user id {user_id}"));
        }
        if kind == "SHA256_EMAIL" && !is_sha256_hex(&user_id["idValue"]) {
            problems.push(format!("{id}: SHA256_EMAIL is not SHA-256 hex"));
        }
    }
    if let Some(info) = element["user"].get("userInfo") {
        if !info["firstName"].is_string() || !info["lastName"].is_string() {
            problems.push(format!("{id}: userInfo needs firstName and lastName"));
        }
    }
    problems
}

fn linkedin_error(status: u16, service_code: i64, code: &str, message: &str) -> Response {
    let body = json!({"status": status, "serviceErrorCode": service_code, "code": code, "message": message});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

async fn linkedin(State(fake): State<Fake>, headers: HeaderMap, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let kept = kept_headers(&headers);
    let mut problems = linkedin_header_problems(&kept);
    let elements = body["elements"].as_array().cloned().unwrap_or_default();
    if elements.is_empty() || elements.len() > 5000 {
        problems.push(format!("{} elements: 1 to 5000 allowed", elements.len()));
    }
    let now_ms = now_s() * 1000;
    let per_element: Vec<Vec<String>> = elements
        .iter()
        .map(|e| linkedin_element_problems(e, now_ms))
        .collect();
    let request_invalid = !problems.is_empty();
    problems.extend(per_element.iter().flatten().cloned());
    let authorized = kept.get("authorization") == Some(&format!("Bearer {}", fake.credential));
    let mut seen = seen("/rest/conversionEvents".into(), HashMap::new(), &raw);
    seen.headers = kept;
    let scripted = fake.answer(seen, problems);
    let (status, refused, response) = match scripted {
        Some(Scripted::RateLimited) => (
            429,
            vec![],
            linkedin_error(
                429,
                101,
                "TOO_MANY_REQUESTS",
                "Resource level throttle limit for calls to this resource is reached.",
            ),
        ),
        Some(Scripted::Unavailable) => (
            503,
            vec![],
            linkedin_error(503, 0, "SERVICE_UNAVAILABLE", "Service unavailable"),
        ),
        Some(Scripted::BadCredential) => (
            401,
            vec![],
            linkedin_error(
                401,
                65601,
                "REVOKED_ACCESS_TOKEN",
                "The token used in the request has been revoked by the user",
            ),
        ),
        Some(Scripted::Invalid) => (
            400,
            vec![],
            linkedin_error(400, 100, "INVALID_REQUEST", "Invalid request body"),
        ),
        Some(Scripted::AsChecked | Scripted::PartlyRefused) | None if !authorized => (
            401,
            vec![],
            linkedin_error(401, 65600, "INVALID_ACCESS_TOKEN", "Invalid access token"),
        ),
        Some(Scripted::AsChecked | Scripted::PartlyRefused) | None if request_invalid => (
            400,
            vec![],
            linkedin_error(400, 100, "INVALID_REQUEST", "Invalid request"),
        ),
        scripted => {
            // Each element is created or refused on its own.
            let answers: Vec<Value> = per_element
                .iter()
                .enumerate()
                .map(|(i, problems)| {
                    if i == 0 && scripted == Some(Scripted::PartlyRefused) {
                        json!({"status": 400, "error": {"status": 400, "message": "The conversion rule is not active for this ad account"}})
                    } else if let Some(problem) = problems.first() {
                        json!({"status": 400, "error": {"status": 400, "message": problem}})
                    } else {
                        json!({"status": 201})
                    }
                })
                .collect();
            let refused = answers
                .iter()
                .enumerate()
                .filter(|(_, a)| a["status"] != 201)
                .map(|(i, _)| i)
                .collect();
            (
                200,
                refused,
                axum::Json(json!({"elements": answers})).into_response(),
            )
        }
    };
    fake.set_last_status(status);
    fake.set_last_refused(refused);
    response
}

// ---- Google Ads API: uploadClickConversions ---------------------------------------------

fn google_error(status: u16, name: &str, message: &str, extra: Value) -> Response {
    let mut error = json!({"code": status, "message": message, "status": name,
        "details": [{"@type": "type.googleapis.com/google.ads.googleads.v22.errors.GoogleAdsFailure",
                     "errors": [{"errorCode": {}, "message": message}], "requestId": "fake"}]});
    if let Value::Object(extra) = extra {
        if let Some(first) = error["details"][0]["errors"][0].as_object_mut() {
            first.extend(extra);
        }
    }
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"error": error})),
    )
        .into_response()
}

fn is_conversion_time(value: &Value) -> bool {
    // yyyy-mm-dd hh:mm:ss+|-hh:mm
    value.as_str().is_some_and(|s| {
        let b = s.as_bytes();
        s.len() == 25
            && [4, 7].iter().all(|&i| b[i] == b'-')
            && b[10] == b' '
            && [13, 16, 22].iter().all(|&i| b[i] == b':')
            && (b[19] == b'+' || b[19] == b'-')
            && s.char_indices()
                .filter(|(i, _)| ![4, 7, 10, 13, 16, 19, 22].contains(i))
                .all(|(_, c)| c.is_ascii_digit())
    })
}

/// One conversion's departures from `ClickConversion`.
fn google_conversion_problems(conversion: &Value, customer: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for key in conversion.as_object().into_iter().flat_map(|o| o.keys()) {
        if ![
            "conversionAction",
            "conversionDateTime",
            "gclid",
            "gbraid",
            "wbraid",
            "conversionValue",
            "currencyCode",
            "orderId",
            "userIdentifiers",
            "consent",
            "externalAttributionData",
            "customVariables",
            "cartData",
            "conversionEnvironment",
        ]
        .contains(&key.as_str())
        {
            problems.push(format!("unknown field {key}"));
        }
    }
    let action = conversion["conversionAction"].as_str().unwrap_or("");
    let prefix = format!("customers/{customer}/conversionActions/");
    if action
        .strip_prefix(&prefix)
        .is_none_or(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
    {
        problems.push(format!(
            "conversionAction {action:?} is not one of customer {customer}"
        ));
    }
    if !is_conversion_time(&conversion["conversionDateTime"]) {
        problems.push(format!(
            "conversionDateTime {} is not yyyy-mm-dd hh:mm:ss+hh:mm",
            conversion["conversionDateTime"]
        ));
    }
    let clicks = ["gclid", "gbraid", "wbraid"]
        .iter()
        .filter(|k| conversion.get(**k).is_some())
        .count();
    let identifiers = conversion["userIdentifiers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if clicks > 1 {
        problems.push("more than one of gclid, gbraid, wbraid".into());
    }
    if clicks == 0 && identifiers.is_empty() {
        problems.push("neither a click id nor user identifiers".into());
    }
    if identifiers.len() > 5 {
        problems.push(format!("{} user identifiers, over 5", identifiers.len()));
    }
    for identifier in &identifiers {
        let hash = identifier
            .get("hashedEmail")
            .or_else(|| identifier.get("hashedPhoneNumber"));
        if !hash.is_some_and(is_sha256_hex) {
            problems.push(format!(
                "user identifier {identifier} is not a SHA-256 hex email or phone"
            ));
        }
    }
    if conversion
        .get("conversionValue")
        .is_some_and(|v| !v.is_number())
    {
        problems.push("conversionValue is not a number".into());
    }
    if let Some(currency) = conversion.get("currencyCode") {
        if currency
            .as_str()
            .is_none_or(|c| c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            problems.push(format!("currencyCode {currency} is not ISO 4217"));
        }
    }
    if let Some(consent) = conversion.get("consent") {
        if !["GRANTED", "DENIED"].contains(&consent["adUserData"].as_str().unwrap_or("")) {
            problems.push(format!("consent {consent} is not GRANTED or DENIED"));
        }
    }
    problems
}

async fn google_ads(
    State(fake): State<Fake>,
    Path((version, call)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let kept = kept_headers(&headers);
    let mut problems = Vec::new();
    let customer = call.strip_suffix(":uploadClickConversions").unwrap_or("");
    if !version.starts_with('v')
        || customer.is_empty()
        || !customer.bytes().all(|b| b.is_ascii_digit())
    {
        problems.push(format!("path /{version}/customers/{call}"));
    }
    if body["partialFailure"] != true {
        problems.push("partialFailure is not true (uploadClickConversions requires it)".into());
    }
    let conversions = body["conversions"].as_array().cloned().unwrap_or_default();
    if conversions.is_empty() || conversions.len() > 2000 {
        problems.push(format!(
            "{} conversions: 1 to 2000 allowed",
            conversions.len()
        ));
    }
    let per_conversion: Vec<Vec<String>> = conversions
        .iter()
        .map(|c| google_conversion_problems(c, customer))
        .collect();
    let request_invalid = !problems.is_empty();
    problems.extend(per_conversion.iter().flatten().cloned());
    let (developer, access) = fake.credential.split_once(':').unwrap_or(("", ""));
    let authorized = kept.get("authorization") == Some(&format!("Bearer {access}"))
        && kept.get("developer-token").map(String::as_str) == Some(developer);
    let mut seen = seen(format!("/{version}/customers/{call}"), HashMap::new(), &raw);
    seen.headers = kept;
    let scripted = fake.answer(seen, problems);
    let (status, refused, response) = match scripted {
        Some(Scripted::RateLimited) => (
            429,
            vec![],
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Too many requests. Retry in 1 seconds.",
                json!({"details": {"quotaErrorDetails": {"rateScope": "DEVELOPER", "rateName": "RequestsPerDeveloperPerDay", "retryDelay": "1s"}}}),
            ),
        ),
        Some(Scripted::Unavailable) => (
            503,
            vec![],
            google_error(
                503,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                json!({}),
            ),
        ),
        Some(Scripted::BadCredential) => (
            401,
            vec![],
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
                json!({}),
            ),
        ),
        Some(Scripted::Invalid) => (
            400,
            vec![],
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                json!({}),
            ),
        ),
        _ if !authorized => (
            401,
            vec![],
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
                json!({}),
            ),
        ),
        _ if request_invalid => (
            400,
            vec![],
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                json!({}),
            ),
        ),
        scripted => {
            // With partialFailure, each conversion is taken or refused on its own.
            let mut errors = Vec::new();
            let mut refused = Vec::new();
            for (i, problems) in per_conversion.iter().enumerate() {
                let message = if i == 0 && scripted == Some(Scripted::PartlyRefused) {
                    Some("The click associated with the given identifier is too old.".to_owned())
                } else {
                    problems.first().cloned()
                };
                if let Some(message) = message {
                    refused.push(i);
                    errors.push(json!({"errorCode": {"conversionUploadError": "INVALID_CONVERSION"}, "message": message,
                        "location": {"fieldPathElements": [{"fieldName": "conversions", "index": i}]}}));
                }
            }
            let results: Vec<Value> = conversions
                .iter()
                .enumerate()
                .map(|(i, c)| if refused.contains(&i) { json!({}) } else { json!({"conversionAction": c["conversionAction"], "conversionDateTime": c["conversionDateTime"]}) })
                .collect();
            let mut answer = json!({"results": results});
            if !errors.is_empty() {
                answer["partialFailureError"] = json!({"code": 3, "message": "Multiple errors in ‘details’. First error: conversion refused.",
                    "details": [{"@type": "type.googleapis.com/google.ads.googleads.v22.errors.GoogleAdsFailure", "errors": errors}]});
            }
            (200, refused, axum::Json(answer).into_response())
        }
    };
    fake.set_last_status(status);
    fake.set_last_refused(refused);
    response
}

// ---- Meta custom audiences: /{custom_audience_id}/users ---------------------------------

/// The keys a custom audience's multi-key schema takes.
const META_KEYS: [&str; 15] = [
    "EXTERN_ID",
    "EMAIL",
    "PHONE",
    "GEN",
    "DOBY",
    "DOBM",
    "DOBD",
    "LN",
    "FN",
    "FI",
    "CT",
    "ST",
    "ZIP",
    "MADID",
    "COUNTRY",
];

/// The `/users` parameters: what makes Meta refuse the request.
fn meta_users_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let schema: Vec<&str> = match &body["payload"]["schema"] {
        Value::Array(keys) => keys.iter().filter_map(Value::as_str).collect(),
        other => vec![other.as_str().unwrap_or("")],
    };
    for key in &schema {
        if !META_KEYS.contains(key) && !key.ends_with("_SHA256") {
            problems.push(format!("schema key {key:?} is not one Meta knows"));
        }
    }
    let data = body["payload"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if data.is_empty() || data.len() > 10_000 {
        problems.push(format!(
            "{} rows in payload.data: 1 to 10000 allowed",
            data.len()
        ));
    }
    for row in &data {
        let cells = row.as_array().cloned().unwrap_or_default();
        if cells.len() != schema.len() {
            problems.push(format!(
                "row {row} does not have the schema's {} keys",
                schema.len()
            ));
        }
        if cells.iter().all(|c| c == "") {
            problems.push(format!("row {row} has no key"));
        }
        for cell in cells.iter().filter(|c| *c != "") {
            if !is_sha256_hex(cell) {
                problems.push(format!("{cell} is not hashed (SHA-256, hex)"));
            }
        }
    }
    let session = &body["session"];
    if session["session_id"].as_u64().unwrap_or(0) == 0
        || session["batch_seq"].as_u64().unwrap_or(0) == 0
        || !session["last_batch_flag"].is_boolean()
    {
        problems.push(format!(
            "session {session} lacks session_id, batch_seq or last_batch_flag"
        ));
    }
    problems
}

async fn meta_users_added(
    state: State<Fake>,
    path: Path<(String, String)>,
    query: Query<HashMap<String, String>>,
    raw: Bytes,
) -> Response {
    meta_users(state, path, query, raw, true)
}

async fn meta_users_removed(
    state: State<Fake>,
    path: Path<(String, String)>,
    query: Query<HashMap<String, String>>,
    raw: Bytes,
) -> Response {
    meta_users(state, path, query, raw, false)
}

fn meta_users(
    State(fake): State<Fake>,
    Path((version, audience)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    raw: Bytes,
    add: bool,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut problems = meta_users_problems(&body);
    if !version.starts_with('v') || !audience.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(format!("path /{version}/{audience}/users"));
    }
    let credential_ok = query.get("access_token") == Some(&fake.credential);
    let invalid = !problems.is_empty();
    let mut seen = seen(format!("/{version}/{audience}/users"), query, &raw);
    seen.method = if add { "POST" } else { "DELETE" }.into();
    let scripted = fake.answer(seen, problems);
    let rows = body["payload"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (status, response) = match graph_refusal(scripted, credential_ok, invalid) {
        Some(refused) => refused,
        None => {
            let mut state = fake.state.lock().unwrap();
            let members = state.lists.entry(audience.clone()).or_default();
            for row in &rows {
                let Some(key) = row.as_array().and_then(|cells| {
                    cells
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|c| !c.is_empty())
                }) else {
                    continue;
                };
                if add {
                    members.insert(key.to_owned());
                } else {
                    members.remove(key);
                }
            }
            (
                200,
                axum::Json(json!({"audience_id": audience, "session_id": body["session"]["session_id"],
                    "num_received": rows.len(), "num_invalid_entries": 0, "invalid_entry_samples": {}}))
                .into_response(),
            )
        }
    };
    fake.set_last_status(status);
    response
}

// ---- Google Ads Customer Match: OfflineUserDataJobService ------------------------------

/// Whether the request carries the credential the fake accepts.
fn google_authorized(fake: &Fake, kept: &HashMap<String, String>) -> bool {
    let (developer, access) = fake.credential.split_once(':').unwrap_or(("", ""));
    kept.get("authorization") == Some(&format!("Bearer {access}"))
        && kept.get("developer-token").map(String::as_str) == Some(developer)
}

/// A scripted or checked answer to a job request, `None` to go on.
fn google_job_refusal(
    fake: &Fake,
    seen: Seen,
    problems: Vec<String>,
    authorized: bool,
) -> Option<Response> {
    let invalid = !problems.is_empty();
    let (status, response) = match fake.answer(seen, problems) {
        Some(Scripted::RateLimited) => (
            429,
            google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Too many requests. Retry in 1 seconds.",
                json!({"details": {"quotaErrorDetails": {"retryDelay": "1s"}}}),
            ),
        ),
        Some(Scripted::Unavailable) => (
            503,
            google_error(
                503,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                json!({}),
            ),
        ),
        Some(Scripted::BadCredential) => (
            401,
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
                json!({}),
            ),
        ),
        Some(Scripted::Invalid | Scripted::PartlyRefused) => (
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                json!({}),
            ),
        ),
        _ if !authorized => (
            401,
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
                json!({}),
            ),
        ),
        _ if invalid => (
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                json!({}),
            ),
        ),
        _ => return None,
    };
    fake.set_last_status(status);
    Some(response)
}

async fn google_job_create(
    State(fake): State<Fake>,
    Path((version, customer, call)): Path<(String, String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let kept = kept_headers(&headers);
    let authorized = google_authorized(&fake, &kept);
    let mut problems = Vec::new();
    if call != "offlineUserDataJobs:create" || !customer.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(format!("path /{version}/customers/{customer}/{call}"));
    }
    let job = &body["job"];
    if job["type"] != "CUSTOMER_MATCH_USER_LIST" {
        problems.push(format!(
            "job.type {} is not CUSTOMER_MATCH_USER_LIST",
            job["type"]
        ));
    }
    let list = job["customerMatchUserListMetadata"]["userList"]
        .as_str()
        .and_then(|l| l.strip_prefix(&format!("customers/{customer}/userLists/")))
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned);
    if list.is_none() {
        problems.push(format!(
            "userList {} is not customers/{customer}/userLists/ID",
            job["customerMatchUserListMetadata"]["userList"]
        ));
    }
    for (key, value) in job["customerMatchUserListMetadata"]["consent"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !["adUserData", "adPersonalization"].contains(&key.as_str())
            || !["GRANTED", "DENIED", "UNSPECIFIED"].contains(&value.as_str().unwrap_or(""))
        {
            problems.push(format!("consent {key}: {value} is not a Consent field"));
        }
    }
    let mut seen = seen(
        format!("/{version}/customers/{customer}/{call}"),
        HashMap::new(),
        &raw,
    );
    seen.headers = kept;
    if let Some(refused) = google_job_refusal(&fake, seen, problems, authorized) {
        return refused;
    }
    let id = {
        let mut state = fake.state.lock().unwrap();
        let id = state.jobs.len() as u64 + 1;
        state.jobs.insert(
            id,
            GoogleJob {
                list: list.unwrap_or_default(),
                ..Default::default()
            },
        );
        id
    };
    fake.set_last_status(200);
    axum::Json(json!({"resourceName": format!("customers/{customer}/offlineUserDataJobs/{id}")}))
        .into_response()
}

async fn google_job_call(
    State(fake): State<Fake>,
    Path((version, customer, call)): Path<(String, String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let kept = kept_headers(&headers);
    let authorized = google_authorized(&fake, &kept);
    let mut problems = Vec::new();
    let (id, verb) = call.split_once(':').unwrap_or(("", ""));
    let id: u64 = id.parse().unwrap_or(0);
    let job = fake.state.lock().unwrap().jobs.get(&id).cloned();
    match &job {
        None => problems.push(format!("no job {id} for {call}")),
        Some(job) if job.ran => problems.push(format!("job {id} already ran: {call}")),
        Some(_) => {}
    }
    let mut operations = Vec::new();
    match verb {
        "addOperations" => {
            let ops = body["operations"].as_array().cloned().unwrap_or_default();
            if ops.is_empty() || ops.len() > 100_000 {
                problems.push(format!("{} operations: 1 to 100000 allowed", ops.len()));
            }
            for op in &ops {
                let (kind, data) = match (op.get("create"), op.get("remove")) {
                    (Some(data), None) => ("create", data),
                    (None, Some(data)) => ("remove", data),
                    _ => {
                        problems.push(format!("operation {op} is not one create or remove"));
                        continue;
                    }
                };
                let ids = data["userIdentifiers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if ids.is_empty() {
                    problems.push(format!("operation {op} has no userIdentifiers"));
                }
                for identifier in &ids {
                    let fields: Vec<(&String, &Value)> =
                        identifier.as_object().into_iter().flatten().collect();
                    let hashed = fields.len() == 1
                        && ["hashedEmail", "hashedPhoneNumber"].contains(&fields[0].0.as_str())
                        && is_sha256_hex(fields[0].1);
                    if !hashed {
                        problems.push(format!("user identifier {identifier} is not one hashedEmail or hashedPhoneNumber"));
                    }
                }
                if let Some(first) = ids
                    .first()
                    .and_then(Value::as_object)
                    .and_then(|o| o.values().next())
                    .and_then(Value::as_str)
                {
                    operations.push((kind.to_owned(), first.to_owned()));
                }
            }
        }
        "run" => {
            if job.as_ref().is_some_and(|j| j.operations.is_empty()) {
                problems.push(format!("job {id} runs with no operations"));
            }
        }
        _ => problems.push(format!("{call} is not addOperations or run")),
    }
    let mut seen = seen(
        format!("/{version}/customers/{customer}/offlineUserDataJobs/{call}"),
        HashMap::new(),
        &raw,
    );
    seen.headers = kept;
    if let Some(refused) = google_job_refusal(&fake, seen, problems, authorized) {
        return refused;
    }
    {
        let mut guard = fake.state.lock().unwrap();
        let state = &mut *guard;
        let job = state.jobs.get_mut(&id).expect("checked above");
        if verb == "run" {
            job.ran = true;
            let members = state.lists.entry(job.list.clone()).or_default();
            for (kind, key) in &job.operations {
                if kind == "create" {
                    members.insert(key.clone());
                } else {
                    members.remove(key);
                }
            }
        } else {
            job.operations.extend(operations);
        }
    }
    fake.set_last_status(200);
    let answer = if verb == "run" {
        json!({"name": format!("customers/{customer}/operations/{id}")})
    } else {
        json!({})
    };
    axum::Json(answer).into_response()
}
