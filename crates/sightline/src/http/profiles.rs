//! `/api/v1/profiles/{type}:{value}` and what is below a profile.

use super::contract::shape::{
    any, any_of, array, identifier, integer, map_of, nullable, one_of, string, time, Fields,
};
use super::contract::{json, shape, Access, Doc, Routes};
use super::{bad_request, ok, Acting, Answer, ApiState, Failure, Path};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::json;
use sightline_collect::error;
use sightline_service::access::{Actor, PROFILE_READERS};
use sightline_service::lookup;
use std::collections::HashMap;
use utoipa::openapi::Schema;

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
                json(unified_profile()),
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
                json(any_of([
                    Fields::described("traits: each trait with its value and provenance")
                        .req("traits", map_of("By trait", stored_trait()))
                        .schema(),
                    Fields::described("computed: the computed traits' values")
                        .req(
                            "computed",
                            shape::free("By computed trait: its value now"),
                        )
                        .schema(),
                    Fields::described("events: a page of the profile's events, newest first")
                        .req("events", array(event()))
                        .req("next_before", nullable(integer()))
                        .schema(),
                    Fields::described("identifiers")
                        .req("identifiers", array(identifier()))
                        .schema(),
                    Fields::described("merges: the profile's history, and in words")
                        .req("merges", array(merge()))
                        .req("explanation", array(string()))
                        .schema(),
                    consent(),
                ])),
            )
            .path("id", id)
            .path_one_of("part", "What to read", PARTS)
            .query("limit", "events: at most this many (default 50)")
            .query("before", "events: before this sequence number")
            .query("at", "consent: as it stood at this ISO 8601 time"),
        )
}

/// A profile as the API shows it (`sightline_profiles::ProfileView::to_json`).
pub(super) fn unified_profile() -> Schema {
    Fields::described("The unified profile: its identifiers, traits and activity")
        .req("id", integer())
        .req("identifiers", array(identifier()))
        .req("traits", shape::free("By trait: its latest value"))
        .req("first_seen", nullable(time()))
        .req("last_seen", nullable(time()))
        .req("event_count", integer())
        .schema()
}

/// A trait with its provenance (`sightline_profiles::Trait`).
fn stored_trait() -> Schema {
    Fields::new()
        .req("value", any("The value"))
        .req("at", integer())
        .req("seq", integer())
        .req("source_id", integer())
        .schema()
}

/// An event as stored: the Segment JSON with the server's fields and its `seq`.
pub(super) fn event() -> Schema {
    Fields::described("An event as stored: the Segment JSON with the server's fields")
        .req("seq", integer())
        .opt("type", string())
        .open()
        .schema()
}

/// A record of a profile's history (`sightline_identity::Record`: the change flattened).
pub(super) fn merge() -> Schema {
    Fields::described("A change of the profile's identity, at the event `seq`")
        .req("seq", integer())
        .req(
            "change",
            one_of(&[
                "create_profile",
                "attach",
                "merge",
                "refuse",
                "seen_with",
                "flag_shared",
            ]),
        )
        .opt("rule", string())
        .opt(
            "linkage",
            shape::free("The record linkage evidence, when a link caused it"),
        )
        .open()
        .schema()
}

/// The consent in force and the ledger (`lookup::consent_json`).
pub(super) fn consent() -> Schema {
    let decision = || one_of(&["granted", "denied", "not_stated"]);
    let in_force = Fields::new()
        .req("decision", decision())
        .req("at", integer())
        .req("seq", integer());
    let change = Fields::described("A consent change")
        .req("at", integer())
        .req("seq", integer())
        .req("source", string())
        .req(
            "signals",
            shape::free("The signals as received, by where they were read"),
        )
        .req("decisions", map_of("By purpose", decision()))
        .opt("jurisdiction", string())
        .opt(
            "evidence",
            shape::free("CMP id and version, page URL, policy version"),
        );
    Fields::described("consent: in force by purpose, and the whole ledger")
        .req("state", map_of("By purpose", in_force.schema()))
        .req("history", array(change.schema()))
        .schema()
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
