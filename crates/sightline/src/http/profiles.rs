//! `/api/v1/profiles/{type}:{value}` and what is below a profile.

use super::{bad_request, ok, Acting, Answer, ApiState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sightline_collect::error;
use sightline_service::lookup;
use sightline_service::lookup::ProfileView;
use std::collections::HashMap;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/profiles/{id}", get(profile))
        .route("/api/v1/profiles/{id}/{part}", get(profile_part))
}

/// `GET /api/v1/profiles/{type}:{value}`
async fn profile(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Answer {
    ok(lookup::with_live(&actor, &state.book, &id, |_, view| {
        lookup::profile_json(view)
    })?)
}

/// `GET /api/v1/profiles/{type}:{value}/traits|computed|events|identifiers|merges|consent`
async fn profile_part(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path((id, part)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let show = |f: fn(ProfileView<'_>) -> Value| {
        lookup::with_live(&actor, &state.book, &id, |_, view| f(view))
    };
    match part.as_str() {
        "traits" => ok(show(lookup::traits_json)?),
        "identifiers" => ok(show(lookup::identifiers_json)?),
        "merges" => ok(show(lookup::merges_json)?),
        "consent" => {
            let at = match query.get("at") {
                None => None,
                Some(text) => Some(
                    sightline_core::time::parse_ms(text)
                        .ok_or_else(|| bad_request("`at` must be an ISO 8601 time"))?,
                ),
            };
            ok(lookup::with_live(&actor, &state.book, &id, |_, view| {
                lookup::consent_json(view, at)
            })?)
        }
        "computed" => ok(lookup::with_live(
            &actor,
            &state.book,
            &id,
            lookup::computed_json,
        )?),
        "events" => events(&state, &actor, &id, &query).await,
        _ => Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "below a profile: traits, computed, events, identifiers, merges or consent",
        )),
    }
}

/// A profile's events, newest first, `limit` at a time before `before` (a sequence number).
async fn events(
    state: &ApiState,
    actor: &sightline_service::access::Actor,
    id: &str,
    query: &HashMap<String, String>,
) -> Answer {
    let number = |name: &str| query.get(name).map(|v| v.parse::<i64>());
    let limit = match number("limit") {
        None => 50,
        Some(Ok(n)) if n > 0 => (n as usize).min(sightline_service::events::MAX_PAGE),
        Some(_) => return Err(bad_request("`limit` must be a positive integer")),
    };
    let before = match number("before") {
        None => i64::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(bad_request("`before` must be a sequence number")),
    };
    let page = lookup::with_live(actor, &state.book, id, |_, view| {
        lookup::event_page(view, before, limit)
    })?;
    let events = lookup::events(
        state.store.as_ref(),
        &lookup::Timeline::Seqs(page),
        before,
        limit,
    )
    .await?;
    let next_before = events.last().map(|e| e.seq);
    let events: Vec<_> = events.iter().map(|e| e.to_json()).collect();
    ok(json!({"events": events, "next_before": next_before}))
}
