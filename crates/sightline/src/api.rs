//! The admin API under `/api/v1` (Bearer tokens) and the operational endpoints.

mod governance;

use crate::profiles::Book;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use sightline_collect::error;
use sightline_core::{secret, time, DeliveryStatus, EventType, NewEvent, Role, Token};
use sightline_profiles::ProfileView;
use sightline_store::{Appended, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct ApiState {
    store: Arc<dyn Store>,
    prometheus: PrometheusHandle,
    book: Arc<RwLock<Book>>,
    tokens: Arc<TokenCache>,
    /// The server's deliverer: replays run on it, under its breakers and ledger.
    deliverer: Arc<sightline_activate::Deliverer>,
}

impl ApiState {
    /// The consent mapping the profiles are derived under.
    fn policy(&self) -> sightline_consent::Policy {
        let book = self.book.read().expect("book lock poisoned");
        book.rules.policy.clone()
    }
}

impl FromRef<ApiState> for Arc<dyn Store> {
    fn from_ref(state: &ApiState) -> Self {
        state.store.clone()
    }
}

impl FromRef<ApiState> for Arc<TokenCache> {
    fn from_ref(state: &ApiState) -> Self {
        state.tokens.clone()
    }
}

/// How long a token found in the store is trusted before the store is asked again.
const TOKEN_TTL: Duration = Duration::from_secs(10);
const TOKEN_CACHE_MAX: usize = 10_000;

/// Tokens by hash, kept briefly so that a busy API client costs no store round trip per
/// request. Only tokens found are kept: an unknown one is asked of the store every time.
struct TokenCache {
    store: Arc<dyn Store>,
    known: Mutex<HashMap<String, (Token, Instant)>>,
}

impl TokenCache {
    async fn token(&self, hash: String) -> sightline_store::Result<Option<Token>> {
        if let Some((token, at)) = self.known.lock().expect("token cache poisoned").get(&hash) {
            if at.elapsed() < TOKEN_TTL {
                return Ok(Some(token.clone()));
            }
        }
        let found = self.store.token_for_hash(&hash).await?;
        if let Some(token) = &found {
            let mut known = self.known.lock().expect("token cache poisoned");
            if known.len() >= TOKEN_CACHE_MAX {
                known.clear();
            }
            known.insert(hash, (token.clone(), Instant::now()));
        }
        Ok(found)
    }
}

pub fn router(
    store: Arc<dyn Store>,
    prometheus: PrometheusHandle,
    book: Arc<RwLock<Book>>,
    deliverer: Arc<sightline_activate::Deliverer>,
) -> axum::Router {
    Router::new()
        .route("/api/v1/events", get(events))
        .route("/api/v1/consent", post(record_consent))
        .route("/api/v1/measurement/consent-denied", get(consent_denied))
        .route("/api/v1/profiles/{id}", get(profile))
        .route("/api/v1/profiles/{id}/{part}", get(profile_part))
        .route("/api/v1/audiences", get(audiences).post(add_audience))
        .route("/api/v1/traits", get(traits).post(add_trait))
        .route("/api/v1/attribution", get(attribution))
        .route("/api/v1/audiences/{name}/{part}", get(audience_part))
        .route(
            "/api/v1/destinations",
            get(destinations).post(add_destination),
        )
        .route("/api/v1/destinations/{name}/deliveries", get(deliveries))
        .route("/api/v1/destinations/{name}/replay", post(replay))
        .route(
            "/api/v1/imports/crm",
            post(import_crm).layer(axum::extract::DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/api/v1/link-reviews", get(link_reviews))
        .route("/api/v1/link-reviews/{id}", get(link_review))
        .route(
            "/api/v1/link-reviews/{id}/{decision}",
            post(decide_link_review),
        )
        .merge(governance::routes())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint: see the README for the API",
            )
        })
        .with_state(ApiState {
            tokens: Arc::new(TokenCache {
                store: store.clone(),
                known: Mutex::new(HashMap::new()),
            }),
            store,
            prometheus,
            book,
            deliverer,
        })
}

/// A caller holding a valid `Authorization: Bearer` token.
struct Caller(Token);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<TokenCache>: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| error(StatusCode::UNAUTHORIZED, "unauthorized", message);
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                unauthorized("send an API token as `Authorization: Bearer <token>` (`sightline token create --role admin`)")
            })?;
        let tokens = Arc::<TokenCache>::from_ref(state);
        // Looked up by hash: the secret itself is never compared, so timing reveals
        // nothing about it.
        match tokens.token(secret::hash(presented.trim())).await {
            Ok(Some(token)) => Ok(Caller(token)),
            Ok(None) => Err(unauthorized("unknown API token")),
            Err(e) => {
                tracing::error!(error = %e, "token lookup failed");
                Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store did not answer: retry",
                ))
            }
        }
    }
}

impl Caller {
    fn require(&self, roles: &[Role]) -> Result<(), Response> {
        if self.0.role == Role::Admin || roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(error(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("a {} token may not do this", self.0.role),
            ))
        }
    }
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn store_error(e: sightline_store::StoreError) -> Response {
    tracing::error!(error = %e, "store error");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the store did not answer: retry",
    )
}

/// 201 with what was created; 409 for a taken name, 503 when the store failed, else 400
/// with what to fix.
fn created(result: anyhow::Result<impl serde::Serialize>) -> Response {
    match result {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(e) => match e.downcast::<sightline_store::StoreError>() {
            Ok(sightline_store::StoreError::Conflict(message)) => {
                error(StatusCode::CONFLICT, "conflict", message)
            }
            Ok(other) => store_error(other),
            Err(e) => bad_request(format!("{e:#}")),
        },
    }
}

const MAX_PAGE: usize = 1000;

/// `after` (default 0) and `limit` (default 100, at most [`MAX_PAGE`]) of a paged read.
fn page_bounds(query: &HashMap<String, String>) -> Result<(i64, usize), Response> {
    let number = |name: &str, default: i64| -> Result<i64, Response> {
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
        (number("limit", 100)? as usize).clamp(1, MAX_PAGE),
    ))
}

/// `GET /api/v1/events?source=NAME&after=SEQ&limit=N`: the log, oldest first.
async fn events(
    caller: Caller,
    State(store): State<Arc<dyn Store>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    let (after, limit) = match page_bounds(&query) {
        Ok(bounds) => bounds,
        Err(e) => return e,
    };
    let source_id = match query.get("source").filter(|s| !s.is_empty()) {
        None => None,
        Some(name) => match store.source_by_name(name).await {
            Ok(Some(source)) => Some(source.id),
            Ok(None) => {
                return error(
                    StatusCode::NOT_FOUND,
                    "unknown_source",
                    format!("no source named {name:?}"),
                )
            }
            Err(e) => return store_error(e),
        },
    };
    match store.read_events(after, limit, source_id).await {
        Ok(events) => {
            let next_after = events.last().map_or(after, |e| e.seq);
            let events: Vec<_> = events.iter().map(|e| e.to_json()).collect();
            Json(json!({"events": events, "next_after": next_after})).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// `type:value`, e.g. `email:ann@example.com`.
fn identifier(id: &str) -> Result<(&str, &str), Response> {
    id.split_once(':')
        .filter(|(t, v)| !t.is_empty() && !v.is_empty())
        .ok_or_else(|| {
            bad_request(format!(
                "{id:?} is not an identifier: write type:value, e.g. user_id:42 or email:ann@example.com"
            ))
        })
}

/// A request's JSON body, or a 400 that shows what to send (`hint`) and what was wrong.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], hint: &str) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("{hint}: {e}")))
}

/// Runs `f` on the profile an identifier names, or answers 404.
fn with_profile<T>(
    state: &ApiState,
    id: &str,
    f: impl FnOnce(ProfileView<'_>) -> T,
) -> Result<T, Response> {
    let (id_type, value) = identifier(id)?;
    let book = state.book.read().expect("book lock poisoned");
    match book.profiles.find(id_type, value) {
        Some(view) => Ok(f(view)),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "unknown_profile",
            format!("no profile holds {id_type}:{value}"),
        )),
    }
}

/// `GET /api/v1/profiles/{type}:{value}`
async fn profile(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    match with_profile(&state, &id, |view| view.to_json()) {
        Ok(profile) => Json(profile).into_response(),
        Err(response) => response,
    }
}

/// `GET /api/v1/profiles/{type}:{value}/traits|identifiers|merges|events`
async fn profile_part(
    caller: Caller,
    State(state): State<ApiState>,
    Path((id, part)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    let answer = match part.as_str() {
        "traits" => with_profile(
            &state,
            &id,
            |view| json!({"traits": view.facts.map(|f| &f.traits)}),
        ),
        "identifiers" => with_profile(
            &state,
            &id,
            |view| json!({"identifiers": view.identity.identifiers}),
        ),
        "merges" => with_profile(
            &state,
            &id,
            |view| json!({"merges": view.identity.history, "explanation": view.identity.explain()}),
        ),
        "consent" => {
            let at = match query.get("at").map(|t| time::parse_ms(t)) {
                None => i64::MAX,
                Some(Some(at)) => at,
                Some(None) => return bad_request("`at` must be an ISO 8601 time".into()),
            };
            with_profile(&state, &id, |view| {
                let none = sightline_consent::Ledger::default();
                let ledger = view.facts.map_or(&none, |f| &f.consent);
                json!({"state": ledger.state_at(at, i64::MAX), "history": ledger})
            })
        }
        "computed" => {
            let (id_type, value) = match identifier(&id) {
                Ok(parts) => parts,
                Err(response) => return response,
            };
            let book = state.book.read().expect("book lock poisoned");
            match book.profiles.find(id_type, value) {
                Some(view) => Ok(json!({
                    "computed": book.memberships.computed(view.identity.id, time::now_ms())
                })),
                None => Err(error(
                    StatusCode::NOT_FOUND,
                    "unknown_profile",
                    format!("no profile holds {id_type}:{value}"),
                )),
            }
        }
        "events" => return profile_events(&state, &id, &query).await,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "below a profile: traits, computed, events, identifiers, merges or consent",
            )
        }
    };
    match answer {
        Ok(body) => Json(body).into_response(),
        Err(response) => response,
    }
}

/// `GET /api/v1/measurement/consent-denied?from=YYYY-MM-DD&to=YYYY-MM-DD`: identifier-free
/// counts of the events analytics consent did not cover, per day, source and event name.
async fn consent_denied(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    let day = |name: &str, default: &str| -> Result<String, Response> {
        let text = query.get(name).map_or(default, String::as_str);
        crate::cli::check_day(text)
            .map(|()| text.to_owned())
            .map_err(|e| bad_request(format!("`{name}`: {e}")))
    };
    let (from, to) = match (day("from", "0000-01-01"), day("to", "9999-12-31")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let book = state.book.read().expect("book lock poisoned");
    Json(json!({"counts": book.profiles.denied_counts(&from, &to)})).into_response()
}

/// Days a consent request's `messageId` is remembered, as for tracking calls by default.
const CONSENT_DEDUP_MS: i64 = 24 * 3_600_000;

/// `POST /api/v1/consent`: records consent for an identifier as an event in the log; the
/// profile's consent ledger takes it in from there.
async fn record_consent(
    caller: Caller,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing]) {
        return denied;
    }
    if body.len() > crate::consent::MAX_REQUEST_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "a consent request may be at most {} bytes",
                crate::consent::MAX_REQUEST_BYTES
            ),
        );
    }
    let request = match json_body(
        &body,
        "send {\"identifier\":\"type:value\",\"purposes\":{…}}",
    ) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let now = time::now_ms();
    let policy = state.policy();
    let (message_id, event) = match crate::consent::to_event(request, &policy, now, || {
        secret::generate("consent-", 24)
    }) {
        Ok(recorded) => recorded,
        Err(message) => return bad_request(message),
    };
    let new = NewEvent {
        source_id: 0,
        message_id: message_id.clone(),
        event_type: EventType::Track,
        received_at: now,
        body: event.to_string(),
    };
    match state.store.append(vec![new], now - CONSENT_DEDUP_MS).await {
        Ok(outcome) => match outcome.first() {
            Some(Appended::Stored(seq)) => (
                StatusCode::CREATED,
                Json(json!({"seq": seq, "messageId": message_id})),
            )
                .into_response(),
            _ => Json(json!({"duplicate": true, "messageId": message_id})).into_response(),
        },
        Err(e) => store_error(e),
    }
}

/// A profile's events, newest first, `limit` at a time before `before` (a sequence number).
async fn profile_events(state: &ApiState, id: &str, query: &HashMap<String, String>) -> Response {
    let number = |name: &str| query.get(name).map(|v| v.parse::<i64>());
    let limit = match number("limit") {
        None => 50,
        Some(Ok(n)) if n > 0 => (n as usize).min(MAX_PAGE),
        Some(_) => return bad_request("`limit` must be a positive integer".into()),
    };
    let before = match number("before") {
        None => i64::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request("`before` must be a sequence number".into()),
    };
    let seqs = match with_profile(state, id, |view| {
        let all = view.facts.map(|f| f.events.as_slice()).unwrap_or_default();
        let end = all.partition_point(|&seq| seq < before);
        all[end.saturating_sub(limit)..end].to_vec()
    }) {
        Ok(seqs) => seqs,
        Err(response) => return response,
    };
    let mut events = Vec::with_capacity(seqs.len());
    for &seq in seqs.iter().rev() {
        match state.store.read_events(seq - 1, 1, None).await {
            Ok(found) => events.extend(found.iter().filter(|e| e.seq == seq).map(|e| e.to_json())),
            Err(e) => return store_error(e),
        }
    }
    let next_before = seqs.first().copied();
    Json(json!({"events": events, "next_before": next_before})).into_response()
}

/// `GET /api/v1/destinations`: every destination, without its signing secret.
async fn destinations(caller: Caller, State(store): State<Arc<dyn Store>>) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    match store.list_destinations().await {
        Ok(destinations) => Json(json!({"destinations": destinations})).into_response(),
        Err(e) => store_error(e),
    }
}

/// `POST /api/v1/destinations`: adds a destination and answers its signing secret, shown
/// this once.
async fn add_destination(
    caller: Caller,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing]) {
        return denied;
    }
    let spec: sightline_activate::DestinationSpec = match json_body(
        &body,
        "send {\"name\":…,\"url\":\"http://…\",\"purposes\":[…]}",
    ) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let policy = state.policy();
    let new = match spec.validate(&policy) {
        Ok(new) => new,
        Err(message) => return bad_request(message),
    };
    let stored = state.store.create_destination(new).await;
    created(
        stored
            .map_err(anyhow::Error::from)
            .map(|d| json!({"id": d.id, "name": d.name, "signing_secret": d.signing_secret})),
    )
}

/// What `POST /api/v1/destinations/{name}/replay` sends again.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    #[serde(default)]
    dead: bool,
    from_seq: Option<i64>,
    to_seq: Option<i64>,
}

/// `POST /api/v1/destinations/{name}/replay` with `{"dead":true}` or
/// `{"from_seq":N,"to_seq":M}`: sends those events again (bounded attempts each), records
/// the new outcomes in place of the old and answers the tally.
async fn replay(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing]) {
        return denied;
    }
    let request: ReplayRequest = match json_body(
        &body,
        "send {\"dead\":true} or {\"from_seq\":N,\"to_seq\":M}",
    ) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let destination = match state.store.destination_by_name(&name).await {
        Ok(Some(destination)) => destination,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_destination",
                format!("no destination named {name:?}"),
            )
        }
        Err(e) => return store_error(e),
    };
    let tally = match (request.dead, request.from_seq) {
        (true, None) => state.deliverer.replay_dead(&destination).await,
        (false, Some(from)) => {
            let to = request.to_seq.unwrap_or(i64::MAX);
            state.deliverer.replay_range(&destination, from, to).await
        }
        _ => {
            return bad_request(
                "say what to replay: \"dead\": true, or \"from_seq\" (and \"to_seq\")".into(),
            )
        }
    };
    match tally {
        Ok(tally) => Json(tally).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/v1/destinations/{name}/deliveries?status=&after=SEQ&limit=N`: the delivery
/// log, oldest first.
async fn deliveries(
    caller: Caller,
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    let (after, limit) = match page_bounds(&query) {
        Ok(bounds) => bounds,
        Err(e) => return e,
    };
    let status = match query.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match DeliveryStatus::parse(text) {
            Some(status) => Some(status),
            None => {
                return bad_request(format!(
                    "`status` must be delivered, suppressed or dead, not {text:?}"
                ))
            }
        },
    };
    let destination = match store.destination_by_name(&name).await {
        Ok(Some(destination)) => destination,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "unknown_destination",
                format!("no destination named {name:?}"),
            )
        }
        Err(e) => return store_error(e),
    };
    match store.deliveries(destination.id, status, after, limit).await {
        Ok(page) => Json(crate::activate::page_json(&page, after)).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/v1/audiences`: definitions and member counts.
async fn audiences(caller: Caller, State(state): State<ApiState>) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    let definitions = match state.store.list_audiences().await {
        Ok(definitions) => definitions,
        Err(e) => return store_error(e),
    };
    let book = state.book.read().expect("book lock poisoned");
    let list: Vec<_> = definitions
        .iter()
        .map(|d| {
            // A definition the follower has not picked up yet has no count.
            let members = book.memberships.members(&d.name).map(|m| m.len());
            json!({"name": d.name, "rule": d.rule, "members": members})
        })
        .collect();
    Json(json!({"audiences": list})).into_response()
}

#[derive(serde::Deserialize)]
struct NewAudience {
    name: String,
    rule: String,
    #[serde(default)]
    sync: Vec<String>,
}

/// `GET /api/v1/traits`: every computed trait definition.
async fn traits(caller: Caller, State(state): State<ApiState>) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    match state.store.list_traits().await {
        Ok(traits) => Json(json!({"traits": traits})).into_response(),
        Err(e) => store_error(e),
    }
}

/// `POST /api/v1/traits` with a computed trait's JSON definition.
async fn add_trait(
    caller: Caller,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing]) {
        return denied;
    }
    let definition: sightline_audience::ComputedTrait = match json_body(
        &body,
        "send a computed trait, e.g. {\"name\":\"orders\",\"aggregate\":{\"kind\":\"count\"}}",
    ) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    created(crate::cli::add_trait(state.store.as_ref(), &definition).await)
}

/// `POST /api/v1/audiences` `{"name":…,"rule":…}`: the rule in the text form.
async fn add_audience(
    caller: Caller,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing]) {
        return denied;
    }
    let new: NewAudience = match json_body(&body, "send {\"name\":…,\"rule\":…}") {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    created(crate::cli::add_audience(state.store.as_ref(), &new.name, &new.rule, &new.sync).await)
}

/// `GET /api/v1/audiences/{name}/members|history`
async fn audience_part(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, part)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing, Role::Security]) {
        return denied;
    }
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            "unknown_audience",
            format!("no audience named {name:?} (a new one appears within a few seconds)"),
        )
    };
    if part == "history" {
        let known = {
            let book = state.book.read().expect("book lock poisoned");
            book.memberships.members(&name).is_some()
        };
        if !known {
            return unknown();
        }
        let (after, limit) = match page_bounds(&query) {
            Ok(bounds) => bounds,
            Err(e) => return e,
        };
        return match state.store.audience_history(&name, after, limit).await {
            Ok(rows) => {
                let next_after = rows.last().map(|(id, _)| *id);
                let history: Vec<serde_json::Value> = rows
                    .iter()
                    .filter_map(|(_, change)| serde_json::from_str(change).ok())
                    .collect();
                Json(json!({"history": history, "next_after": next_after})).into_response()
            }
            Err(e) => store_error(e),
        };
    }
    let book = state.book.read().expect("book lock poisoned");
    match part.as_str() {
        "members" => {
            let Some(members) = book.memberships.members(&name) else {
                return unknown();
            };
            let list = crate::profiles::member_list(&book, members);
            match query.get("format").map(String::as_str) {
                None | Some("json") => {
                    Json(json!({"count": list.len(), "members": list})).into_response()
                }
                Some("ndjson") => {
                    let lines: String = list.iter().map(|m| format!("{m}\n")).collect();
                    ([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response()
                }
                Some("csv") => (
                    [(header::CONTENT_TYPE, "text/csv")],
                    crate::profiles::members_csv(&list),
                )
                    .into_response(),
                Some(other) => {
                    bad_request(format!("format {other:?} is not one of json, ndjson, csv"))
                }
            }
        }

        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "below an audience: members or history",
        ),
    }
}

/// `GET /api/v1/attribution?conversion=EVENT&value_property=&from=&to=&lookback=&model=a,b`
async fn attribution(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = caller.require(&[Role::Marketing]) {
        return denied;
    }
    let Some(conversion) = query.get("conversion").filter(|c| !c.is_empty()) else {
        return bad_request(
            "say which event is a conversion: ?conversion=Order%20Completed".into(),
        );
    };
    let question = crate::journeys::Question {
        conversion: conversion.clone(),
        value_property: query.get("value_property").cloned(),
        from: query.get("from").cloned(),
        to: query.get("to").cloned(),
        lookback: query.get("lookback").cloned(),
        models: query
            .get("model")
            .map(|m| m.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
    };
    let grouper = sightline_attribution::ChannelGrouper::default();
    let rules = state.book.read().expect("book lock poisoned").rules.clone();
    match crate::journeys::report(state.store.as_ref(), &question, &grouper, rules).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => match e.downcast_ref::<sightline_store::StoreError>() {
            Some(store) => {
                tracing::error!(error = %store, "store error");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store did not answer: retry",
                )
            }
            None => bad_request(format!("{e:#}")),
        },
    }
}

async fn readyz(State(store): State<Arc<dyn Store>>) -> Response {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

async fn render_metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}

// ---- Record linkage: CRM import and the clerical review queue (admin only) ----

/// The largest import request: the CSV and the mapping in one JSON body.
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    /// The CRM export as CSV text.
    csv: String,
    /// The mapping: the TOML file's text, or an object with its keys.
    mapping: serde_json::Value,
    /// A name for the import's records and review items (default `api`).
    #[serde(default)]
    file: Option<String>,
}

/// `POST /api/v1/imports/crm` with `{"csv": "...", "mapping": "<TOML>" | {...}}`: the same
/// import as `sightline import crm`, answered with its report once the server's profiles
/// have taken in the links.
async fn import_crm(
    caller: Caller,
    State(state): State<ApiState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if let Err(denied) = caller.require(&[]) {
        return denied;
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "an import request may be at most {MAX_IMPORT_BYTES} bytes: split the file"
                ),
            )
        }
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    let request: ImportRequest = match json_body(
        &body,
        "send {\"csv\": \"<CSV text>\", \"mapping\": \"<mapping TOML>\" or {...}}",
    ) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let mapping = match request.mapping {
        serde_json::Value::String(text) => crate::crm::mapping::ImportMapping::from_toml_str(&text),
        other => crate::crm::mapping::ImportMapping::from_json(other),
    };
    let mapping = match mapping {
        Ok(mapping) => mapping,
        Err(message) => return bad_request(message),
    };
    let file = request.file.unwrap_or_else(|| "api".into());
    let profiles = crate::crm::ProfilesAt::Live(state.book.clone());
    match crate::crm::import(
        state.store.as_ref(),
        request.csv.as_bytes(),
        &file,
        &mapping,
        &profiles,
    )
    .await
    {
        Ok(report) => Json(report).into_response(),
        Err(e) => match e.downcast::<sightline_store::StoreError>() {
            Ok(store) => store_error(store),
            Err(e) if e.is::<crate::crm::NotCaughtUp>() => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_caught_up",
                format!("{e}"),
            ),
            Err(e) => bad_request(format!("{e:#}")),
        },
    }
}

/// `GET /api/v1/link-reviews?status=pending|accepted|rejected|all&after=ID&limit=N`
async fn link_reviews(
    caller: Caller,
    State(store): State<Arc<dyn Store>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = caller.require(&[]) {
        return denied;
    }
    let (after, limit) = match page_bounds(&query) {
        Ok(bounds) => bounds,
        Err(e) => return e,
    };
    let status = query.get("status").map_or("pending", String::as_str);
    let status = match crate::crm::status_filter(status) {
        Ok(status) => status,
        Err(message) => return bad_request(message),
    };
    match store.link_reviews(status, after, limit).await {
        Ok(items) => {
            let next_after = items.last().map_or(after, |i| i.id);
            Json(json!({"reviews": items, "next_after": next_after})).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// `GET /api/v1/link-reviews/{id}`: one item with its evidence (the waterfall).
async fn link_review(
    caller: Caller,
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<i64>,
) -> Response {
    if let Err(denied) = caller.require(&[]) {
        return denied;
    }
    match store.link_review(id).await {
        Ok(Some(item)) => Json(json!({
            "review": item,
            "explanation": crate::crm::review_text(&item),
        }))
        .into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown_review",
            format!("no review item {id}"),
        ),
        Err(e) => store_error(e),
    }
}

/// `POST /api/v1/link-reviews/{id}/accept|reject`
async fn decide_link_review(
    caller: Caller,
    State(store): State<Arc<dyn Store>>,
    Path((id, decision)): Path<(i64, String)>,
) -> Response {
    if let Err(denied) = caller.require(&[]) {
        return denied;
    }
    let decided = match decision.as_str() {
        "accept" => crate::crm::accept(store.as_ref(), id).await,
        "reject" => crate::crm::reject(store.as_ref(), id).await,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "below a review item: accept or reject",
            )
        }
    };
    match decided {
        Ok(item) => Json(crate::crm::decided(&item)).into_response(),
        Err(sightline_store::StoreError::NotFound(message)) => {
            error(StatusCode::NOT_FOUND, "unknown_review", message)
        }
        Err(sightline_store::StoreError::Conflict(message)) => {
            error(StatusCode::CONFLICT, "conflict", message)
        }
        Err(e) => store_error(e),
    }
}
