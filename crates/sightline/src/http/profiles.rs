//! `/api/v1/profiles/{type}:{value}` and what is below a profile.

use super::contract::{object, Access, Doc, Routes};
use super::{bad_request, ok, Acting, Answer, ApiState, Failure, Path};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::json;
use sightline_collect::error;
use sightline_service::access::{Actor, PROFILE_READERS};
use sightline_service::lookup;
use std::collections::HashMap;

/// What is below a profile.
const PARTS: &[&str] = &[
    "traits",
    "computed",
    "events",
    "identifiers",
    "merges",
    "consent",
];

pub(super) fn routes() -> Routes {
    let id =
        "Any of the person's identifiers as `type:value`: `user_id:42`, `email:ann@example.com`";
    Routes::new()
        .get(
            "/api/v1/profiles/{id}",
            profile,
            Doc::new(
                "profiles",
                "A unified profile, found by any of its identifiers (404 when none holds it)",
                Access::Token(PROFILE_READERS),
                object("`{\"id\":…,\"identifiers\":[{\"type\":…,\"value\":…}],\"traits\":{…},…}`"),
            )
            .path("id", id),
        )
        .get(
            "/api/v1/profiles/{id}/{part}",
            profile_part,
            Doc::new(
                "profiles",
                "A part of a profile: its traits, computed traits, events (newest first), identifiers, merges or consent",
                Access::Token(PROFILE_READERS),
                object("The part; `events` answers `{\"events\":[…],\"next_before\":SEQ}`"),
            )
            .path("id", id)
            .path_one_of("part", "What to read", PARTS)
            .query("limit", "events: at most this many (default 50)")
            .query("before", "events: before this sequence number")
            .query("at", "consent: as it stood at this ISO 8601 time"),
        )
}

/// `GET /api/v1/profiles/{type}:{value}`
async fn profile(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Answer {
    let found = find(&state, &actor, &id).await?;
    ok(lookup::profile_json(found.view()))
}

async fn find(state: &ApiState, actor: &Actor, id: &str) -> Result<lookup::Found, Failure> {
    let region = state.book.rules().rules.default_region();
    Ok(lookup::find(state.store.as_ref(), actor, region, id).await?)
}

/// `GET /api/v1/profiles/{type}:{value}/traits|computed|events|identifiers|merges|consent`
async fn profile_part(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path((id, part)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    if part == "events" {
        return events(&state, &actor, &id, &query).await;
    }
    if !PARTS.contains(&part.as_str()) {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "below a profile: traits, computed, events, identifiers, merges or consent",
        ));
    }
    let at = match query.get("at").filter(|_| part == "consent") {
        None => None,
        Some(text) => Some(
            sightline_core::time::parse_ms(text)
                .ok_or_else(|| bad_request("`at` must be an ISO 8601 time"))?,
        ),
    };
    let found = find(&state, &actor, &id).await?;
    let view = found.view();
    ok(match part.as_str() {
        "traits" => lookup::traits_json(view),
        "identifiers" => lookup::identifiers_json(view),
        "merges" => lookup::merges_json(view),
        "consent" => lookup::consent_json(view, at),
        _ => lookup::computed_json(state.store.as_ref(), &found).await?,
    })
}

/// A profile's events, newest first, `limit` at a time before `before` (a sequence number).
async fn events(
    state: &ApiState,
    actor: &Actor,
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
    let found = find(state, actor, id).await?;
    let events = lookup::events(state.store.as_ref(), &found.timeline, before, limit).await?;
    let next_before = events.last().map(|e| e.seq);
    let events: Vec<_> = events.iter().map(|e| e.to_json()).collect();
    ok(json!({"events": events, "next_before": next_before}))
}
