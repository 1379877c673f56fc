//! `/api/v1/events`, `/api/v1/consent`, `/api/v1/measurement/consent-denied`.

use super::contract::shape::{array, boolean, integer, string, text, Fields};
use super::contract::{json, object, page_with, Access, Doc, Routes};
use super::{created, json_body, ok, page_bounds, Acting, Answer, ApiState, Failure};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use sightline_collect::error;
use sightline_service::access::{MARKETING, READERS};
use sightline_service::consent::MAX_REQUEST_BYTES;
use sightline_service::events::{self, Recorded};
use std::collections::HashMap;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get(
            "/api/v1/events",
            page,
            Doc::new(
                "events",
                "The event log, oldest first",
                Access::Token(READERS),
                page_with("events", super::profiles::event(), "next_after"),
            )
            .query("source", "Only this source's events")
            .query("after", "Events after this sequence number (default 0)")
            .query("limit", "At most this many (default 100)"),
        )
        .post(
            "/api/v1/consent",
            record_consent,
            Doc::new(
                "consent",
                "Records consent for an identifier as an event in the log",
                Access::Token(MARKETING),
                json(
                    Fields::described(
                        "The consent event recorded (201, with its `seq`), or a duplicate of one \
                         recorded within a day (200, `duplicate` true)",
                    )
                    .req("messageId", string())
                    .opt("seq", integer())
                    .opt("duplicate", boolean())
                    .schema(),
                ),
            )
            .status(201)
            .also(200)
            .body(object(
                "`{\"identifier\":\"type:value\",\"purposes\":{\"advertising\":false,…}}`",
            )),
        )
        .get(
            "/api/v1/measurement/consent-denied",
            consent_denied,
            Doc::new(
                "events",
                "Identifier-free counts of the events analytics consent did not cover",
                Access::Token(READERS),
                json(
                    Fields::described("Counts per day, source and event name")
                        .req(
                            "counts",
                            array(
                                Fields::new()
                                    .req("day", text("YYYY-MM-DD"))
                                    .req("source_id", integer())
                                    .req(
                                        "event",
                                        text(
                                            "A track call's event name, a page or screen \
                                             call's name, else the call type",
                                        ),
                                    )
                                    .req("count", integer())
                                    .schema(),
                            ),
                        )
                        .schema(),
                ),
            )
            .query("from", "First day, YYYY-MM-DD")
            .query("to", "Last day, YYYY-MM-DD"),
        )
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
