//! The tracking API: Segment's HTTP endpoints, answered the way Segment and RudderStack
//! SDKs expect. A request is authenticated, decompressed, bounded, validated (see
//! [`normalize`]) and appended to the log; 200 is sent only once the store has committed.

// Handlers and their helpers return a ready `Response` as the error: boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod auth;
pub mod browser;
pub mod normalize;
mod plans;
mod raw;
mod serve;
pub mod suppress;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use normalize::{Call, EventError, Limits, Received, RequestError};
use serde_json::{json, Value};
use sightline_core::{time, EventType, NewEvent};
use sightline_plans::Registry;
use sightline_store::{Appended, EventLog, Store};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use suppress::{Suppression, Verdict};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::KeyCache;
pub use serve::{serve, serve_with, HEADER_READ_TIMEOUT};

/// The collector's settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub limits: Limits,
    /// A (source, messageId) seen within this window is a duplicate.
    pub dedup_window: Duration,
    /// Authenticated tracking requests handled at once; more are answered 429 with
    /// `Retry-After`, which SDKs honour. Bounds memory: each may hold a body of up to 1 MB.
    /// A request with an unknown key never takes one.
    pub max_in_flight: usize,
    /// A request body must arrive whole within this long (else 408).
    pub body_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            dedup_window: Duration::from_secs(24 * 3600),
            max_in_flight: 256,
            body_timeout: Duration::from_secs(20),
        }
    }
}

pub struct Collector {
    store: Arc<dyn EventLog>,
    settings: Settings,
    keys: KeyCache,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// The tracking plans in force, by source (kept current by the server).
    plans: Arc<Registry>,
    /// Erased identifiers: events carrying them are dropped or stripped (kept current by
    /// the server).
    suppression: Arc<Suppression>,
}

impl Collector {
    /// A collector that holds no source to a tracking plan.
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Arc<Collector> {
        let suppression = Arc::new(Suppression::new(sightline_identity::Rules::default()));
        Collector::with_plans(store, settings, Arc::default(), suppression)
    }

    /// A collector that judges each source's events by the plans `plans` holds, and every
    /// event by the suppression list `suppression` holds.
    pub fn with_plans(
        store: Arc<dyn Store>,
        settings: Settings,
        plans: Arc<Registry>,
        suppression: Arc<Suppression>,
    ) -> Arc<Collector> {
        Arc::new(Collector {
            keys: KeyCache::new(store.clone()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight.max(1))),
            store,
            settings,
            plans,
            suppression,
        })
    }
}

/// Every tracking path with the call it takes: the Segment paths, analytics.js's one-letter
/// paths, and `/v1/import` (a batch). The router and the API's contract
/// (`GET /api/v1/openapi.json`) are both made from it.
pub fn paths() -> Vec<(String, Call)> {
    let mut paths = Vec::new();
    for kind in EventType::ALL {
        paths.push((format!("/v1/{kind}"), Call::Single(kind)));
        paths.push((format!("/v1/{}", &kind.as_str()[..1]), Call::Single(kind)));
    }
    for batch in ["/v1/batch", "/v1/b", "/v1/import"] {
        paths.push((batch.to_string(), Call::Batch));
    }
    paths
}

/// `/v1/*`: every one of [`paths`]; and the browser's loader and settings ([`browser`]).
pub fn router(collector: Arc<Collector>) -> Router {
    let mut router = Router::new();
    for (path, call) in paths() {
        router = router.route(
            &path,
            post(move |state, headers, body| collect(state, call, headers, body)),
        );
    }
    router
        .route(browser::LOADER, get(browser::loader))
        .route(browser::SETTINGS, get(browser::settings))
        .layer(cors())
        .with_state(collector)
}

/// Browser SDKs post from the site's origin, never the collector's, with a Basic
/// `Authorization` header: allow any origin, without cookies.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::HeaderName::from_static("sec-gpc"),
        ])
        .max_age(Duration::from_secs(24 * 3600))
}

/// A JSON error in the API's shape.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

fn rejected(reason: &'static str, count: usize) {
    metrics::counter!("sightline_events_rejected_total", "reason" => reason)
        .increment(count as u64);
}

/// An event carrying an erased identifier: `dropped` or `stripped`. The answer does not
/// tell (it would tell whoever sends an identifier whether it was erased): /metrics does.
fn suppressed(outcome: &'static str) {
    metrics::counter!("sightline_events_suppressed_total", "outcome" => outcome).increment(1);
}

async fn collect(
    State(collector): State<Arc<Collector>>,
    call: Call,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A key in the Basic header is checked before anything else: an unknown one is
    // answered without reading the body and without an in-flight slot, so clients that
    // hold connections open with no valid key cannot crowd out the SDKs.
    let header_key = match auth::basic_write_key(&headers) {
        Ok(key) => key,
        Err(message) => {
            rejected("unauthorized", 1);
            return error(StatusCode::UNAUTHORIZED, "unauthorized", message);
        }
    };
    let mut source = None;
    if let Some(key) = &header_key {
        match collector.keys.source_for(key, time::now_ms()).await {
            Ok(Some(found)) => source = Some(found),
            Ok(None) => return unauthorized(),
            Err(response) => return response,
        }
    }
    // Authenticated by the header: the slot is taken before the body is read. A key only
    // in the body (`writeKey`) needs the body first; that read is bounded in size and time
    // and holds no slot.
    let mut permit = None;
    if source.is_some() {
        match take_slot(&collector) {
            Ok(taken) => permit = Some(taken),
            Err(response) => return response,
        }
    }
    let limits = collector.settings.limits;
    let body = match read_body(&collector.settings, &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };

    let now = time::now_ms();
    let received = Received {
        at: now,
        gpc: headers
            .get("sec-gpc")
            .is_some_and(|v| v.as_bytes().trim_ascii() == b"1"),
    };
    let parsed = match normalize::parse(call, &body, received, &limits, &mut || {
        uuid::Uuid::new_v4().to_string()
    }) {
        Ok(parsed) => parsed,
        Err(e) => return refuse(&e),
    };

    let source = match source {
        Some(source) => source,
        None => match &parsed.write_key {
            Some(key) => match collector.keys.source_for(key, now).await {
                Ok(Some(found)) => found,
                Ok(None) => return unauthorized(),
                Err(response) => return response,
            },
            None => return unauthorized(),
        },
    };
    let _permit = match permit {
        Some(permit) => permit,
        None => match take_slot(&collector) {
            Ok(taken) => taken,
            Err(response) => return response,
        },
    };

    let mut events = Vec::with_capacity(parsed.events.len());
    let mut problems = Vec::new();
    let enforcer = collector.plans.enforcer(source.id);
    let mut screening = plans::Screening::default();
    let mut dropped_erased = 0usize;
    for (index, outcome) in parsed.events.into_iter().enumerate() {
        match outcome {
            Ok(mut p) => {
                if let Some(enforcer) = &enforcer {
                    if !screening.admit(enforcer, &collector.plans, &source, index, &mut p, now) {
                        continue;
                    }
                }
                match collector.suppression.screen(&mut p.body) {
                    Verdict::Keep => {}
                    Verdict::Stripped(_) => suppressed("stripped"),
                    Verdict::Drop => {
                        suppressed("dropped");
                        dropped_erased += 1;
                        continue;
                    }
                }
                events.push(NewEvent {
                    source_id: source.id,
                    message_id: p.message_id,
                    event_type: p.event_type,
                    received_at: now,
                    body: p.body,
                })
            }
            Err(e) => problems.push((index, e)),
        }
    }
    for (_, e) in &problems {
        rejected(e.code(), 1);
    }
    if events.is_empty() && !screening.dropped_any() && dropped_erased == 0 {
        return refuse_events(call, &problems);
    }

    let accepted_count = events.len();
    let dedup_since = now - collector.settings.dedup_window.as_millis() as i64;
    let appended = match events.is_empty() {
        // Every valid event was dropped by the plan or the suppression list: nothing to
        // append, still a 200 (an SDK must not retry it).
        true => Ok(Vec::new()),
        false => collector.store.append(events, dedup_since).await,
    };
    let outcome = match appended {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(error = %e, "append failed; the client is told to retry");
            rejected("store_unavailable", accepted_count);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the event log could not commit this request; nothing of it was stored: retry",
            );
        }
    };
    let duplicates = outcome
        .iter()
        .filter(|o| matches!(o, Appended::Duplicate))
        .count();
    if let Some(last) = outcome.iter().rev().find_map(|o| match o {
        Appended::Stored(seq) => Some(*seq),
        Appended::Duplicate => None,
    }) {
        metrics::gauge!("sightline_log_last_seq").set(last as f64);
    }
    metrics::counter!("sightline_events_accepted_total", "source" => source.name.clone())
        .increment((outcome.len() - duplicates) as u64);
    metrics::counter!("sightline_events_duplicate_total").increment(duplicates as u64);

    let mut answer = json!({
        "success": true,
        "accepted": outcome.len() - duplicates,
        "duplicates": duplicates,
    });
    if !problems.is_empty() {
        answer["rejected"] = problem_list(&problems);
    }
    screening.report(&source.name, &mut answer);
    (StatusCode::OK, Json(answer)).into_response()
}

/// One of the `max_in_flight` slots, or the 429 that says to come back.
fn take_slot(collector: &Collector) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    collector
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            rejected("overloaded", 1);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "too many requests in flight: retry after the number of seconds in Retry-After",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        })
}

/// The request body, inflated: at most the request limit (twice that on the wire, as a
/// compressed body may be a little larger than what it inflates to; the inflated size is
/// held to the limit) and within `body_timeout`.
async fn read_body(
    settings: &Settings,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Response> {
    let limits = settings.limits;
    let read = tokio::time::timeout(
        settings.body_timeout,
        axum::body::to_bytes(body, limits.max_request_bytes * 2),
    )
    .await;
    let raw = match read {
        Ok(Ok(raw)) => raw,
        Ok(Err(_)) => {
            rejected("request_too_large", 1);
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!(
                    "the request is over the {}-byte (500 KB) request limit: send fewer events per batch",
                    limits.max_request_bytes
                ),
            ));
        }
        Err(_) => {
            rejected("body_timeout", 1);
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s: send the whole body at once",
                    settings.body_timeout.as_secs_f64()
                ),
            ));
        }
    };
    decode_body(headers, raw, limits.max_request_bytes)
}

fn unauthorized() -> Response {
    rejected("unauthorized", 1);
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "unknown or expired write key: send the source's write key as the HTTP Basic username (empty password) or as `writeKey` in the body",
    )
}

fn refuse(e: &RequestError) -> Response {
    rejected(e.code(), 1);
    let status = if e.is_too_large() {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    error(status, e.code(), e.to_string())
}

fn problem_list(problems: &[(usize, EventError)]) -> Value {
    problems
        .iter()
        .map(|(index, e)| json!({"index": index, "code": e.code(), "message": e.to_string()}))
        .collect()
}

/// Nothing in the request was valid: a single call answers with its event's error, a
/// batch with every item's.
fn refuse_events(call: Call, problems: &[(usize, EventError)]) -> Response {
    match (call, problems) {
        (Call::Single(_), [(_, e)]) => error(StatusCode::BAD_REQUEST, e.code(), e.to_string()),
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": {"code": "no_valid_events", "message": "no event in the batch is valid; see `rejected`"},
                "rejected": problem_list(problems),
            })),
        )
            .into_response(),
    }
}

/// The body as JSON bytes: inflated when gzip-encoded, never past `limit`.
fn decode_body(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, Response> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(HeaderValue::as_bytes)
        .unwrap_or(b"identity");
    match encoding.trim_ascii() {
        b"identity" | b"" => Ok(raw),
        b"gzip" | b"x-gzip" => match inflate_gzip(&raw, limit) {
            Ok(inflated) => Ok(Bytes::from(inflated)),
            Err(Inflate::TooLarge(e)) => Err(refuse(&e)),
            Err(Inflate::Bad(e)) => {
                rejected("bad_gzip", 1);
                Err(error(
                    StatusCode::BAD_REQUEST,
                    "bad_gzip",
                    format!(
                        "the body is marked `Content-Encoding: gzip` but does not inflate: {e}"
                    ),
                ))
            }
        },
        other => {
            rejected("unsupported_encoding", 1);
            Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!(
                    "Content-Encoding {:?} is not supported: send gzip or no encoding",
                    String::from_utf8_lossy(other)
                ),
            ))
        }
    }
}

/// Why a gzip body was not inflated.
#[derive(Debug)]
pub enum Inflate {
    /// It inflates to more than the limit (reading stops just past it).
    TooLarge(RequestError),
    /// It is not gzip, or is cut short or corrupt.
    Bad(std::io::Error),
}

/// A gzip body (one member or several, as `MultiGzDecoder` reads them) inflated, never past
/// `limit` bytes. Pure: the HTTP handler calls it on the raw body, and so does the fuzz target
/// (fuzz/fuzz_targets/segment_gzip.rs).
pub fn inflate_gzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, Inflate> {
    let mut inflated = Vec::with_capacity(raw.len().saturating_mul(4).min(limit + 1));
    flate2::read::MultiGzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(Inflate::Bad)?;
    if inflated.len() > limit {
        return Err(Inflate::TooLarge(RequestError::RequestTooLarge {
            size: inflated.len(),
            limit,
        }));
    }
    Ok(inflated)
}
