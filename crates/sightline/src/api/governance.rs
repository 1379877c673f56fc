//! The governance registry's API under `/api/v1`: scans, journeys, tags, backlog, vendors.
//! Every handler acts as the caller's token (`token:ID`, its role) through the same
//! functions the CLI uses (`crate::registry`), so both paths apply the same rules.

use super::{bad_request, error, json_body, ApiState, Caller};
use crate::registry::{self, Held};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sightline_govern::backlog::{BacklogAction, BacklogStatus, Filter, Severity};
use sightline_govern::journey::Journey;
use sightline_govern::tag::{Environment, TagAction, TagSpec, TagStatus};
use sightline_govern::vendor::VendorRisk;
use sightline_govern::GovernError;
use std::collections::HashMap;

/// The caller as the registry's actor: its token's person (or `token:ID`) and role.
struct Acting(sightline_govern::Actor);

impl FromRequestParts<ApiState> for Acting {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(token) = Caller::from_request_parts(parts, state).await?;
        registry::actor_of(state.store.as_ref(), &token)
            .await
            .map(Acting)
            .map_err(|e| answer(Err(e), StatusCode::OK))
    }
}

/// A journey file sent to `POST /api/v1/journeys/import` may be at most this big.
const MAX_JOURNEY_BYTES: usize = 256 * 1024;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/scans", get(scans))
        .route("/api/v1/journeys", get(journeys).post(add_journey))
        .route("/api/v1/journeys/import", post(import_journey))
        .route(
            "/api/v1/journeys/{name}",
            get(journey).put(replace_journey).delete(delete_journey),
        )
        .route("/api/v1/journeys/{name}/export", get(export_journey))
        .route("/api/v1/tags", get(tags).post(propose))
        .route("/api/v1/tags/log", get(whole_log))
        .route("/api/v1/tags/adopt", post(adopt))
        .route("/api/v1/tags/{id}/log", get(tag_log))
        .route("/api/v1/tags/{id}/{action}", post(decide))
        .route("/api/v1/backlog", get(backlog))
        .route("/api/v1/backlog/{id}", post(backlog_act))
        .route("/api/v1/vendors", get(vendors).post(put_vendor))
        .route("/api/v1/lineage", get(lineage))
        .route("/api/v1/governance/metrics", get(governance_metrics))
        .route("/api/v1/report", get(report))
}

/// `?format=openlineage` (default; JSON lines), `dot` or `mermaid`.
async fn lineage(
    _caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let format = match crate::lineage::Format::parse(
        query.get("format").map_or("openlineage", String::as_str),
    ) {
        Ok(f) => f,
        Err(e) => return bad_request(format!("{e:#}")),
    };
    match crate::lineage::render(state.store.as_ref(), format).await {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(e) => answer(Err(e), StatusCode::OK),
    }
}

/// `?conversion=EVENT[&value_property=P][&lookback=30d]` joins attribution variance.
fn attribution(
    state: &ApiState,
    query: &HashMap<String, String>,
) -> Option<crate::metrics::Attribution> {
    let conversion = query.get("conversion").filter(|c| !c.is_empty())?;
    Some(crate::metrics::Attribution {
        question: crate::journeys::Question {
            conversion: conversion.clone(),
            value_property: query.get("value_property").cloned(),
            lookback: query.get("lookback").cloned(),
            ..Default::default()
        },
        grouper: sightline_attribution::ChannelGrouper::default(),
        rules: state.book.read().expect("book lock poisoned").rules.clone(),
    })
}

async fn governance_metrics(
    _caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let attribution = attribution(&state, &query);
    let series = crate::metrics::series(state.store.as_ref(), attribution).await;
    answer(series.map(|s| s.to_json()), StatusCode::OK)
}

async fn report(
    _caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let attribution = attribution(&state, &query);
    match crate::report::render(state.store.as_ref(), attribution).await {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => answer(Err(e), StatusCode::OK),
    }
}

/// 400 for bad input, 403 for a role or self-approval refusal, 409 for an invalid
/// transition or a taken name or moved version, 404 for an unknown id, 503 when the store
/// failed.
fn answer(result: anyhow::Result<Value>, ok: StatusCode) -> Response {
    let e = match result {
        Ok(body) => return (ok, Json(body)).into_response(),
        Err(e) => e,
    };
    if let Some(refused) = e.downcast_ref::<GovernError>() {
        return match refused {
            GovernError::Invalid(m) => bad_request(m.clone()),
            GovernError::Forbidden(m) => error(StatusCode::FORBIDDEN, "forbidden", m.clone()),
            GovernError::Transition(m) => {
                error(StatusCode::CONFLICT, "invalid_transition", m.clone())
            }
        };
    }
    match e.downcast::<sightline_store::StoreError>() {
        Ok(sightline_store::StoreError::Conflict(m)) => error(StatusCode::CONFLICT, "conflict", m),
        Ok(sightline_store::StoreError::NotFound(m)) => {
            error(StatusCode::NOT_FOUND, "not_found", m)
        }
        Ok(other) => super::store_error(other),
        Err(e) => bad_request(format!("{e:#}")),
    }
}

fn list<T: serde::Serialize>(
    key: &str,
    items: anyhow::Result<Vec<Held<T>>>,
) -> anyhow::Result<Value> {
    Ok(json!({ key: items?.iter().map(Held::to_json).collect::<Vec<_>>() }))
}

async fn scans(_caller: Caller, State(state): State<ApiState>) -> Response {
    let listed = state.store.scans(None).await.map_err(anyhow::Error::from);
    answer(listed.map(|s| json!({"scans": s})), StatusCode::OK)
}

async fn journeys(_caller: Caller, State(state): State<ApiState>) -> Response {
    answer(
        list("journeys", registry::journeys(state.store.as_ref()).await),
        StatusCode::OK,
    )
}

async fn journey(
    _caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    let found = registry::journey(state.store.as_ref(), &name).await;
    answer(found.map(|h| h.to_json()), StatusCode::OK)
}

async fn add_journey(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    let journey: Journey = match json_body(
        &body,
        "send {\"name\":…,\"steps\":[{\"name\":…,\"url\":…}]}",
    ) {
        Ok(j) => j,
        Err(response) => return response,
    };
    let put = registry::put_journey(state.store.as_ref(), &actor, journey, false).await;
    answer(put.map(|h| h.to_json()), StatusCode::CREATED)
}

async fn replace_journey(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let journey: Journey = match json_body(
        &body,
        "send {\"name\":…,\"steps\":[{\"name\":…,\"url\":…}]}",
    ) {
        Ok(j) => j,
        Err(response) => return response,
    };
    if journey.name.trim() != name {
        return bad_request(format!(
            "the body names journey {:?}, the path {name:?}",
            journey.name
        ));
    }
    let put = registry::put_journey(state.store.as_ref(), &actor, journey, true).await;
    answer(put.map(|h| h.to_json()), StatusCode::OK)
}

async fn delete_journey(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    let deleted = registry::delete_journey(state.store.as_ref(), &actor, &name).await;
    answer(deleted.map(|()| json!({"deleted": name})), StatusCode::OK)
}

/// `POST /api/v1/journeys/import` with a scanner journey file (TOML) as the body.
async fn import_journey(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    if body.len() > MAX_JOURNEY_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a journey file may be at most {MAX_JOURNEY_BYTES} bytes"),
        );
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad_request("send the journey file as UTF-8 TOML".into());
    };
    let imported = registry::import_journey(state.store.as_ref(), &actor, text).await;
    answer(imported.map(|h| h.to_json()), StatusCode::OK)
}

async fn export_journey(
    _caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Response {
    let exported = match registry::journey(state.store.as_ref(), &name).await {
        Ok(held) => held.value.to_scanner_toml().map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match exported {
        Ok(text) => ([(header::CONTENT_TYPE, "application/toml")], text).into_response(),
        Err(e) => answer(Err(e), StatusCode::OK),
    }
}

async fn tags(
    _caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let status = match query.get("status").map(|s| TagStatus::parse(s).ok_or(s)) {
        None => None,
        Some(Ok(status)) => Some(status),
        Some(Err(s)) => {
            return bad_request(format!(
                "`status` must be proposed, approved, rejected or retired, not {s:?}"
            ))
        }
    };
    answer(
        list("tags", registry::tags(state.store.as_ref(), status).await),
        StatusCode::OK,
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Proposal {
    tag: TagSpec,
    #[serde(default)]
    reason: String,
}

async fn propose(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    let proposal: Proposal = match json_body(
        &body,
        "send {\"tag\":{\"vendor\":…,\"purpose\":…,\"owner\":…,\"classification\":…},\"reason\":…}",
    ) {
        Ok(p) => p,
        Err(response) => return response,
    };
    let done = registry::tag_action(
        state.store.as_ref(),
        &actor,
        None,
        TagAction::Propose(proposal.tag),
        &proposal.reason,
    )
    .await;
    answer(done.map(|h| h.to_json()), StatusCode::CREATED)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/tags/{id}/approve|reject|retire` with `{"reason":…}`.
async fn decide(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path((id, action)): Path<(i64, String)>,
    body: axum::body::Bytes,
) -> Response {
    let action = match action.as_str() {
        "approve" => TagAction::Approve,
        "reject" => TagAction::Reject,
        "retire" => TagAction::Retire,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "below a tag: approve, reject, retire or log",
            )
        }
    };
    let reason: Reason = if body.is_empty() {
        Reason::default()
    } else {
        match json_body(&body, "send {\"reason\":…}") {
            Ok(r) => r,
            Err(response) => return response,
        }
    };
    let done = registry::tag_action(
        state.store.as_ref(),
        &actor,
        Some(id),
        action,
        &reason.reason,
    )
    .await;
    answer(done.map(|h| h.to_json()), StatusCode::OK)
}

async fn whole_log(_caller: Caller, State(state): State<ApiState>) -> Response {
    let log = registry::tag_log(state.store.as_ref(), None).await;
    answer(log.map(|entries| json!({"log": entries})), StatusCode::OK)
}

async fn tag_log(_caller: Caller, State(state): State<ApiState>, Path(id): Path<i64>) -> Response {
    let log = registry::tag_log(state.store.as_ref(), Some(id)).await;
    answer(log.map(|entries| json!({"log": entries})), StatusCode::OK)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Adopt {
    scan: i64,
    #[serde(default)]
    environment: Environment,
}

async fn adopt(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    let request: Adopt = match json_body(&body, "send {\"scan\":ID}") {
        Ok(r) => r,
        Err(response) => return response,
    };
    let proposed = registry::adopt(
        state.store.as_ref(),
        &actor,
        request.scan,
        request.environment,
    )
    .await;
    answer(list("proposed", proposed), StatusCode::OK)
}

/// `GET /api/v1/backlog?journey=&owner=&severity=&status=&overdue=true`
async fn backlog(
    _caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let severity = match query.get("severity").map(|s| Severity::parse(s).ok_or(s)) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(s)) => {
            return bad_request(format!(
                "`severity` must be low, medium, high or critical, not {s:?}"
            ))
        }
    };
    let status = match query
        .get("status")
        .map(|s| BacklogStatus::parse(s).ok_or(s))
    {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(s)) => {
            return bad_request(format!(
                "`status` must be open, accepted_risk, fixed or verified, not {s:?}"
            ))
        }
    };
    let filter = Filter {
        journey: query.get("journey").cloned(),
        owner: query.get("owner").cloned(),
        severity,
        status,
        overdue: query.get("overdue").is_some_and(|v| v == "true"),
    };
    let items = registry::backlog_items(state.store.as_ref(), &filter).await;
    answer(
        items.map(
            |items| json!({"items": items.iter().map(registry::backlog_json).collect::<Vec<_>>()}),
        ),
        StatusCode::OK,
    )
}

/// `POST /api/v1/backlog/{id}` with `{"action":"assign"|"fix"|"accept_risk"|"reopen",…}`.
async fn backlog_act(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    let action: BacklogAction = match json_body(
        &body,
        "send {\"action\":\"assign\",\"owner\":…} or fix, accept_risk (reason, expires), reopen (reason)",
    ) {
        Ok(a) => a,
        Err(response) => return response,
    };
    let done = registry::backlog_act(state.store.as_ref(), &actor, id, action).await;
    answer(done.map(|h| registry::backlog_json(&h)), StatusCode::OK)
}

async fn vendors(
    _caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let overdue = query.get("overdue").is_some_and(|v| v == "true");
    let listed = registry::vendors(state.store.as_ref(), overdue).await;
    answer(
        listed.map(|v| json!({"vendors": v.iter().map(registry::vendor_json).collect::<Vec<_>>()})),
        StatusCode::OK,
    )
}

async fn put_vendor(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Response {
    let risk: VendorRisk = match json_body(
        &body,
        "send {\"vendor\":…,\"rating\":\"low|medium|high|critical\",…}",
    ) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let put = registry::put_vendor(state.store.as_ref(), &actor, risk).await;
    answer(put.map(|h| registry::vendor_json(&h)), StatusCode::OK)
}
