//! The admin API under `/api/v1` (Bearer tokens) and the operational endpoints. Each
//! handler extracts its inputs and the acting identity ([`Acting`]), calls one service
//! operation, and answers; a service error becomes a status code in one place
//! ([`Failure`]).

mod audiences;
mod audit;
mod cluster;
pub mod contract;
mod crm;
mod destinations;
mod events;
mod governance;
mod plans;
mod privacy;
mod profiles;

use axum::extract::{FromRef, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use contract::{Access, Doc, Payload, Routes};
use metrics_exporter_prometheus::PrometheusHandle;
use sightline_collect::error;
use sightline_core::secret;
use sightline_service::access::{actor_of, Actor};
use sightline_service::plans::PlanKeeper;
use sightline_service::processors::{self, Supervisor};
use sightline_service::profiles::Live;
use sightline_service::Error;
use sightline_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Arc<dyn Store>,
    prometheus: PrometheusHandle,
    pub(crate) book: Live,
    pub(crate) tokens: Arc<TokenCache>,
    /// The server's deliverer: replays run on it, under its breakers and ledger.
    pub(crate) deliverer: Arc<sightline_activate::Deliverer>,
    /// The processors: their progress is in /metrics and `/readyz?verbose`.
    pub(crate) processors: Arc<Supervisor>,
    /// Keeps the tracking plans in force: a change made through the API reloads them at
    /// once, not at its next step.
    plans: Arc<PlanKeeper>,
    /// The approval policy of destinations (`[approval]`).
    approval: sightline_service::approval::ApprovalPolicy,
    /// Keeps the collector's suppression list: an erasure puts its identifiers in force
    /// before it answers.
    pub(crate) suppressor: Arc<sightline_service::erase::Suppressor>,
    /// The webhook client: erasures send destinations their deletion requests with it.
    pub(crate) webhook: sightline_activate::webhook::Webhook,
    /// This node among several (`GET /api/v1/cluster`).
    node: Node,
    /// The config file's `[[schedule]]` entries; those made through the API are stored.
    pub(crate) schedules: sightline_service::governance::schedule::Configured,
    /// Whether `/metrics` and `/readyz?verbose` answer without a token: only on the
    /// separate metrics listener (`--metrics-listen`), never on the main one.
    detail_open: bool,
}

impl FromRef<ApiState> for Arc<dyn Store> {
    fn from_ref(state: &ApiState) -> Self {
        state.store.clone()
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAt {
    /// On the main listener, to a token whose role may read it (the default).
    MainWithToken,
    /// Only on a listener of its own (`--metrics-listen`), without a token; the main
    /// listener answers 404.
    OwnListener,
}

/// This node: its place among several, and the address it serves on once bound.
#[derive(Clone, Default)]
pub struct Node {
    pub membership: Option<Arc<sightline_service::cluster::Membership>>,
    pub address: Arc<std::sync::OnceLock<String>>,
}

/// The main listener's routes, with `pages` (the console's HTML, outside the API's
/// contract) beside them, and (with [`MetricsAt::OwnListener`]) the metrics listener's:
/// `/metrics`, `/readyz` and `/healthz`, without a token. The pages are handed in by the
/// wiring, so that this layer knows nothing of the console built on it.
#[allow(clippy::too_many_arguments)]
pub fn routers(
    store: Arc<dyn Store>,
    prometheus: PrometheusHandle,
    book: Live,
    deliverer: Arc<sightline_activate::Deliverer>,
    processors: Arc<Supervisor>,
    plans: Arc<PlanKeeper>,
    metrics_at: MetricsAt,
    approval: sightline_service::approval::ApprovalPolicy,
    suppressor: Arc<sightline_service::erase::Suppressor>,
    webhook: sightline_activate::webhook::Webhook,
    node: Node,
    schedules: sightline_service::governance::schedule::Configured,
    pages: Router<ApiState>,
) -> (axum::Router, Option<axum::Router>) {
    let state = ApiState {
        tokens: Arc::new(TokenCache {
            store: store.clone(),
            known: Mutex::new(HashMap::new()),
        }),
        store,
        prometheus,
        book,
        deliverer,
        processors,
        plans,
        approval,
        suppressor,
        webhook,
        node,
        schedules,
        detail_open: false,
    };
    let own = match metrics_at {
        MetricsAt::MainWithToken => None,
        MetricsAt::OwnListener => Some(
            Router::new()
                .route("/healthz", get(healthz))
                .route("/readyz", get(readyz))
                .route("/metrics", get(render_metrics))
                .fallback(not_found)
                .with_state(ApiState {
                    detail_open: true,
                    ..state.clone()
                }),
        ),
    };
    let main = main_routes(metrics_at == MetricsAt::MainWithToken)
        .into_router()
        .merge(pages);
    let main = main
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors));
    (main.with_state(state), own)
}

/// axum's own rejections (a body over the limit, a query string or path that does not
/// parse, a method the route does not have) answer in plain text or with no body; the API
/// answers every error as `{"error":{"code","message"}}`, so under `/api/` those are
/// rewritten to it (with the headers they had, such as `Allow`).
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // A rejection's text is a line; more than this is not one.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let said = String::from_utf8_lossy(&text).trim().to_owned();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too_large",
            "the request body is over the API's limit of 2 MiB: send less".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this path does not take that method: see the Allow header and docs/openapi.json"
                .to_owned(),
        ),
        _ if said.is_empty() => (
            "error",
            status.canonical_reason().unwrap_or("error").to_owned(),
        ),
        _ if status.is_client_error() => ("bad_request", said),
        _ => ("error", said),
    };
    let rewritten = error(status, code, message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (rewritten, body) = rewritten.into_parts();
    parts.headers.extend(rewritten.headers);
    Response::from_parts(parts, body)
}

/// The main listener's routes, each with its documentation; `/metrics` among them unless
/// it has a listener of its own. The OpenAPI document is made from `main_routes(true)`.
pub(crate) fn main_routes(metrics_on_main: bool) -> Routes {
    let operations = "operations";
    let routes = Routes::new()
        .merge(events::routes())
        .merge(profiles::routes())
        .merge(audiences::routes())
        .merge(destinations::routes())
        .merge(crm::routes())
        .merge(governance::routes())
        .merge(plans::routes())
        .merge(audit::routes())
        .merge(privacy::routes())
        .merge(cluster::routes())
        .get(
            "/healthz",
            healthz,
            Doc::new(
                operations,
                "Liveness: the process answers",
                Access::Open,
                Payload::Other("text/plain", "`ok`"),
            ),
        )
        .get(
            "/readyz",
            readyz,
            Doc::new(
                operations,
                "Readiness: the store answers (503 when it does not)",
                Access::Open,
                Payload::Other(
                    "text/plain",
                    "`ready`; with `?verbose`, a line per check and processor first",
                ),
            )
            .query(
                "verbose",
                "Adds a line per check and processor: it names destinations, so it needs a token \
                 whose role may read `/metrics` (403 otherwise, 401 without one)",
            ),
        )
        .get(
            "/api/v1/openapi.json",
            openapi,
            Doc::new(
                operations,
                "This document: the API's OpenAPI 3.1 contract (it holds no data)",
                Access::Open,
                contract::json(
                    contract::shape::Fields::described(
                        "The OpenAPI document, as checked in at docs/openapi.json.",
                    )
                    .req("openapi", contract::shape::string())
                    .req(
                        "info",
                        contract::shape::free("The API's title, version and description"),
                    )
                    .req(
                        "paths",
                        contract::shape::free("Every route, by path and method"),
                    )
                    .opt(
                        "components",
                        contract::shape::free("Schemas and security schemes"),
                    )
                    .open()
                    .schema(),
                ),
            ),
        );
    if !metrics_on_main {
        return routes;
    }
    routes.get(
        "/metrics",
        render_metrics,
        Doc::new(
            operations,
            "Prometheus metrics (with `--metrics-listen ADDR` served there without a token, \
             and 404 here)",
            contract::DETAIL,
            Payload::Other("text/plain", "The Prometheus text format, version 0.0.4."),
        ),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        contract::document(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: see the README for the API",
    )
}

/// How long a token found in the store is trusted before the store is asked again.
const TOKEN_TTL: Duration = Duration::from_secs(10);
const TOKEN_CACHE_MAX: usize = 10_000;

/// The actors of tokens by hash, kept briefly so that a busy API client costs no store
/// round trip per request. Only tokens found are kept: an unknown one is asked of the
/// store every time.
pub(crate) struct TokenCache {
    store: Arc<dyn Store>,
    known: Mutex<HashMap<String, (Actor, Instant)>>,
}

impl TokenCache {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Actor, Instant)>> {
        // The map holds only copies of stored tokens: a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is used as it is.
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) async fn actor(&self, hash: String) -> Result<Option<Actor>, Error> {
        if let Some((actor, at)) = self.known().get(&hash) {
            if at.elapsed() < TOKEN_TTL {
                return Ok(Some(actor.clone()));
            }
        }
        let Some(token) = self.store.token_for_hash(&hash).await? else {
            return Ok(None);
        };
        let actor = actor_of(self.store.as_ref(), &token).await?;
        let mut known = self.known();
        if known.len() >= TOKEN_CACHE_MAX {
            known.clear();
        }
        known.insert(hash, (actor.clone(), Instant::now()));
        Ok(Some(actor))
    }
}

/// The caller: the person and role of a valid `Authorization: Bearer` token. Every
/// `/api/v1` handler takes it; what the role allows is the service's to decide.
struct Acting(Actor);

impl FromRequestParts<ApiState> for Acting {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        bearer_actor(
            &parts.headers,
            state,
            "`sightline token create --role admin`",
        )
        .await
        .map(Acting)
    }
}

/// The actor of the request's `Authorization: Bearer` token; 401 without a known one, with
/// how to make one (`create`).
async fn bearer_actor(
    headers: &HeaderMap,
    state: &ApiState,
    create: &str,
) -> Result<Actor, Response> {
    let unauthorized = |message: &str| error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            unauthorized(&format!(
                "send an API token as `Authorization: Bearer <token>` ({create})"
            ))
        })?;
    // Looked up by hash: the secret itself is never compared, so timing reveals
    // nothing about it.
    match state.tokens.actor(secret::hash(presented.trim())).await {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => Err(unauthorized("unknown API token")),
        Err(e) => Err(Failure(e).into_response()),
    }
}

/// May the caller see the operational detail (`/metrics`, `/readyz?verbose`)? On the
/// metrics listener anyone may (it is meant for a private interface); on the main listener
/// only a token whose role is in [`METRICS_READERS`](sightline_service::access::METRICS_READERS).
async fn may_see_detail(headers: &HeaderMap, state: &ApiState) -> Result<(), Response> {
    if state.detail_open {
        return Ok(());
    }
    let actor = bearer_actor(
        headers,
        state,
        "`sightline token create --role metrics`; or serve /metrics without a token on `--metrics-listen ADDR`",
    )
    .await?;
    sightline_service::access::require(
        &actor,
        sightline_service::access::METRICS_READERS,
        "reading metrics",
    )
    .map_err(|e| Failure(e).into_response())
}

/// A caller whose role may read what every team reads (the governance records, lineage,
/// the report): every role but `privacy`.
struct Reader(#[allow(dead_code)] Actor);

impl FromRequestParts<ApiState> for Reader {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let Acting(actor) = Acting::from_request_parts(parts, state).await?;
        sightline_service::access::require(
            &actor,
            sightline_service::access::READERS,
            "reading governance records",
        )
        .map_err(|e| Failure(e).into_response())?;
        Ok(Reader(actor))
    }
}

/// axum's `Path`, but a segment that does not parse (an id that is not a number, bytes
/// that are not UTF-8) gets the API's JSON error: axum's own rejection is plain text.
struct Path<T>(T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<ApiState> for Path<T> {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| bad_request(rejection.body_text()))
    }
}

/// A service error as an HTTP answer: the one place statuses are chosen.
pub(crate) struct Failure(Error);

impl Failure {
    /// The service error (the console renders it as a page).
    pub(crate) fn into_error(self) -> Error {
        self.0
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure(e)
    }
}

/// The status a service error answers with, in the API and the console alike.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict(_) | Error::Transition(_) => StatusCode::CONFLICT,
        Error::NotCaughtUp(_) | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self.0 {
            Error::Invalid(m) => error(StatusCode::BAD_REQUEST, "bad_request", m),
            Error::Forbidden(m) => error(StatusCode::FORBIDDEN, "forbidden", m),
            Error::NotFound {
                what: "record",
                message,
            } => error(StatusCode::NOT_FOUND, "not_found", message),
            Error::NotFound { what, message } => {
                error(StatusCode::NOT_FOUND, &format!("unknown_{what}"), message)
            }
            Error::Conflict(m) => error(StatusCode::CONFLICT, "conflict", m),
            Error::Transition(m) => error(StatusCode::CONFLICT, "invalid_transition", m),
            Error::NotCaughtUp(m) => error(StatusCode::SERVICE_UNAVAILABLE, "not_caught_up", m),
            Error::Unavailable(e) => {
                tracing::error!(error = %e, "store error");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store did not answer: retry",
                )
            }
            Error::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request failed on our side; the error is logged",
                )
            }
        }
    }
}

/// What a handler answers.
type Answer = Result<Response, Failure>;

fn bad_request(message: impl Into<String>) -> Failure {
    Failure(Error::invalid(message))
}

/// 200 with a JSON body.
fn ok(body: impl serde::Serialize) -> Answer {
    Ok(Json(body).into_response())
}

/// 201 with what was created.
fn created(body: impl serde::Serialize) -> Answer {
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Runs a heavy request (attribution, the report, a replay) on the blocking pool, so that
/// its CPU work does not hold one of the few async workers collection needs; its store
/// calls still run on the runtime (`Handle::block_on`).
pub(crate) async fn off_workers<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Failure> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(work))
        .await
        .map_err(|e| Failure(Error::Internal(e.into())))?
        .map_err(Failure)
}

/// `after` (default 0) and `limit` (default 100, at most `MAX_PAGE`) of a paged read.
fn page_bounds(query: &HashMap<String, String>) -> Result<(i64, usize), Failure> {
    let number = |name: &str, default: i64| -> Result<i64, Failure> {
        match query.get(name) {
            None => Ok(default),
            Some(text) => text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                bad_request(format!(
                    "`{name}` must be a non-negative integer, not {text:?}"
                ))
            }),
        }
    };
    Ok((
        number("after", 0)?,
        (number("limit", 100)? as usize).clamp(1, sightline_service::events::MAX_PAGE),
    ))
}

/// A request's JSON body, or a 400 that shows what to send (`hint`) and what was wrong.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], hint: &str) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("{hint}: {e}")))
}

/// Ready when the store answers. `?verbose` adds a line per check and per processor, with
/// how far behind the log each is (informational: a destination that is down must not take
/// collection out of a load balancer).
async fn readyz(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store did not answer: retry",
        );
    }
    if !query.contains_key("verbose") {
        return (StatusCode::OK, "ready\n").into_response();
    }
    // The detail names the processors, and so the destinations: the same rule as /metrics.
    if let Err(refused) = may_see_detail(&headers, &state).await {
        return refused;
    }
    let mut text = String::from("[+]store ok\n");
    if let Some((seq, end)) = state.book.rebuilding() {
        text.push_str(&format!(
            "[~]profiles rebuilding from the log: {}% (seq {seq} of {end})\n",
            seq * 100 / end.max(1)
        ));
    }
    match processors::progress(state.store.as_ref(), &state.processors).await {
        Ok(all) => {
            for p in all {
                let mark = if p.up { '+' } else { '!' };
                let state = if p.up { "up" } else { "retrying" };
                let behind = p.behind.map_or(String::new(), |b| {
                    format!(": {} events, {:.1} s behind", b.events, b.seconds)
                });
                text.push_str(&format!(
                    "[{mark}]processor {} {state}{behind}\n",
                    p.processor
                ));
            }
        }
        Err(e) => text.push_str(&format!("[!]processors: progress unknown ({e})\n")),
    }
    text.push_str("ready\n");
    (StatusCode::OK, text).into_response()
}

/// Prometheus text. It names sources and destinations: a token on the main listener, or
/// the metrics listener of its own.
async fn render_metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(refused) = may_see_detail(&headers, &state).await {
        return refused;
    }
    // The lag gauges are read when asked for, not kept current by every step.
    if let Err(e) = processors::progress(state.store.as_ref(), &state.processors).await {
        tracing::warn!(error = %e, "cannot read the processors' progress");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}
