//! `/api/v1/events`, `/api/v1/consent`, `/api/v1/measurement/consent-denied`.

use super::{created, json_body, ok, page_bounds, Acting, Answer, ApiState, Failure};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sightline_collect::error;
use sightline_service::consent::MAX_REQUEST_BYTES;
use sightline_service::events::{self, Recorded};
use std::collections::HashMap;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/events", get(page))
        .route("/api/v1/consent", post(record_consent))
        .route("/api/v1/measurement/consent-denied", get(consent_denied))
}

/// `GET /api/v1/events?source=NAME&after=SEQ&limit=N`: the log, oldest first.
async fn page(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let (after, limit) = page_bounds(&query)?;
    let source = query.get("source").filter(|s| !s.is_empty());
    let events = events::page(
        state.store.as_ref(),
        &actor,
        source.map(String::as_str),
        after,
        limit,
    )
    .await?;
    let next_after = events.last().map_or(after, |e| e.seq);
    let events: Vec<_> = events.iter().map(|e| e.to_json()).collect();
    ok(json!({"events": events, "next_after": next_after}))
}

/// `GET /api/v1/measurement/consent-denied?from=YYYY-MM-DD&to=YYYY-MM-DD`: identifier-free
/// counts of the events analytics consent did not cover, per day, source and event name.
async fn consent_denied(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let from = query.get("from").map_or("0000-01-01", String::as_str);
    let to = query.get("to").map_or("9999-12-31", String::as_str);
    let counts = events::consent_denied(state.store.as_ref(), &actor, from, to).await?;
    ok(json!({ "counts": counts }))
}

/// `POST /api/v1/consent`: records consent for an identifier as an event in the log; the
/// profile's consent ledger takes it in from there.
async fn record_consent(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    if body.len() > MAX_REQUEST_BYTES {
        return Ok(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a consent request may be at most {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    let request = json_body(
        &body,
        "send {\"identifier\":\"type:value\",\"purposes\":{…}}",
    )?;
    let policy = state.book.rules().policy.clone();
    let recorded = events::record_consent(state.store.as_ref(), &actor, request, &policy)
        .await
        .map_err(Failure)?;
    match recorded {
        Recorded::Stored { .. } => created(recorded.to_json()),
        Recorded::Duplicate { .. } => Ok(Json(recorded.to_json()).into_response()),
    }
}
