//! `GET /api/v1/privacy/subjects/{type}:{value}`: a subject access export, everything held
//! about the person holding the identifier, as JSON or (`?format=html`) a readable page;
//! `POST /api/v1/privacy/erasures`: erases the person, answering the signed receipt under
//! its id, which `GET /api/v1/privacy/erasures/{id}` reads again (privacy and admin roles;
//! the service checks and records each in the audit log).

use super::contract::shape::{
    any, array, boolean, identifier, integer, map_of, nullable, number, one_of, string, strings,
    time, Fields,
};
use super::contract::{json, json_of, list_with, shape, Access, Doc, Routes};
use super::{bad_request, created, json_body, off_workers, ok, Acting, Answer, ApiState, Path};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use sightline_service::access::PRIVACY;
use sightline_service::erase::{self, Running, Suppress};
use sightline_service::privacy::{self, Format};
use std::collections::HashMap;
use utoipa::openapi::Schema;

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/api/v1/privacy/subjects/{id}",
        subject,
        Doc::new(
            "privacy",
            "A subject access export: everything held about the person (recorded in the audit log)",
            Access::Token(PRIVACY),
            json(export()),
        )
        .or_as("text/html", "with `?format=html`, the export as a readable page")
        .path(
            "id",
            "An identifier as `type:value`, e.g. `email:ann@example.com`",
        )
        .query("format", "`json` (the default) or `html`"),
    )
    .post(
        "/api/v1/privacy/erasures",
        erase_subject,
        Doc::new(
            "privacy",
            "Erases the person holding an identifier: their events and every row derived from \
             them; answers the signed receipt (recorded in the audit log)",
            Access::Token(PRIVACY),
            json(receipt(
                "The signed receipt: what was removed (no identifier in clear), counts per \
                 table, the destinations sent a deletion request and their answers",
            )),
        )
        .status(201)
        .body(json_of::<NewErasure>()),
    )
    .get(
        "/api/v1/privacy/erasures",
        erasures,
        Doc::new(
            "privacy",
            "The latest erasures' receipts, newest first",
            Access::Token(PRIVACY),
            list_with("erasures", receipt("An erasure's signed receipt")),
        )
        .query("limit", "At most this many (default 100, at most 1000)"),
    )
    .get(
        "/api/v1/privacy/erasures/{id}",
        erasure,
        Doc::new(
            "privacy",
            "An erasure's status and signed receipt",
            Access::Token(PRIVACY),
            json(receipt(
                "The receipt, as the erasure answered it; `follow_up` says what became of \
                 the deletion requests still queued when it was signed",
            )),
        )
        .path("id", "The erasure's id, e.g. `er_…`"),
    )
}

/// An erasure's signed receipt (`erase::receipt`, `erase::sign`, `erase::get`).
fn receipt(description: &str) -> Schema {
    let answer = || {
        Fields::described("A destination's deletion request and its answer")
            .req("destination", string())
            .req(
                "status",
                one_of(&[
                    "accepted", "refused", "queued", "not_sent", "gone", "failed",
                ]),
            )
            .opt("attempts", integer())
            .opt("code", nullable(integer()))
            .opt("reason", string())
    };
    Fields::described(description)
        .req("id", string())
        .req("status", one_of(&["completed"]))
        .req(
            "outcome",
            one_of(&["erased", "nothing found", "already erased"]),
        )
        .req("requested_at", time())
        .req("completed_at", time())
        .req("actor", string())
        .req(
            "subject",
            Fields::new()
                .req("identifier_type", string())
                .req("identifier_hmac_sha256", string())
                .schema(),
        )
        .req(
            "removed",
            Fields::new()
                .req("profiles", integer())
                .req("identifiers", integer())
                .req("events", integer())
                .schema(),
        )
        .req("counts", map_of("Rows deleted, by table", integer()))
        .req(
            "suppression",
            Fields::new()
                .req("mode", one_of(&["drop", "strip"]))
                .req("identifiers_listed", integer())
                .schema(),
        )
        .req("destinations_notified", array(answer().schema()))
        .req(
            "signature",
            Fields::new()
                .req("algorithm", one_of(&["HMAC-SHA256"]))
                .req("value", string())
                .schema(),
        )
        .opt(
            "follow_up",
            array(answer().opt("next_attempt_at", time()).schema()),
        )
        .schema()
}

/// A subject access export (`sightline_service::privacy::export`).
fn export() -> Schema {
    let trait_row = Fields::new()
        .req("trait", string())
        .req("value", any("The value"))
        .req("set_at", time())
        .req("seq", integer())
        .req("source", string());
    let audience_change = Fields::new()
        .req("id", integer())
        .req("audience", string())
        .req("profile", any("The profile id"))
        .req("transition", one_of(&["entered", "exited"]))
        .req("at", nullable(time()))
        .req("caused_by", any("`{\"event\":SEQ}` or `\"timer\"`"));
    let review = Fields::new()
        .req("id", integer())
        .req("origin", string())
        .req("left", string())
        .req("right", string())
        .req("match_probability", number())
        .req("evidence", any("The match weights"))
        .req("status", one_of(&["pending", "accepted", "rejected"]))
        .req("created_at", integer())
        .req("decided_at", nullable(integer()))
        .req("seq", nullable(integer()));
    let event = Fields::described("An event as stored, with its source's name")
        .req("seq", integer())
        .req("source", string())
        .open();
    Fields::described("Everything held about the person holding the identifier")
        .req("subject", string())
        .req("found", boolean())
        .req("profile", nullable(super::profiles::unified_profile()))
        .req("identifiers", array(identifier()))
        .req("merges", array(super::profiles::merge()))
        .req("traits", array(trait_row.schema()))
        .req(
            "computed_traits",
            shape::free("By computed trait: its value now"),
        )
        .req("consent", super::profiles::consent())
        .req("audiences", strings())
        .req("audience_history", array(audience_change.schema()))
        .req(
            "deliveries",
            array(shape::free(
                "A destination's outcome for one of their events: destination, type, \
                 purposes, seq, message_id, status, at, attempts, response_code, reason",
            )),
        )
        .req(
            "audience_syncs",
            array(shape::free(
                "An audience change synced to a destination, and whether the sync passed it",
            )),
        )
        .req(
            "crm_rows",
            array(shape::free(
                "A CRM row imported about them: seq, source, imported_at, kind, file, line, \
                 identifiers, traits",
            )),
        )
        .req("link_reviews", array(review.schema()))
        .req("events", array(event.schema()))
        .req("notes", strings())
        .req("generated_at", time())
        .req("profiles_through_seq", integer())
        .req("log_last_seq", integer())
        .schema()
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewErasure {
    /// The person, by any identifier as `type:value`, e.g. `email:ann@example.com`.
    identifier: String,
    /// What later events carrying an erased identifier become: `drop` (the default: not
    /// stored, counted) or `strip` (stored without those identifiers).
    #[serde(default)]
    mode: Option<String>,
}

/// `POST /api/v1/privacy/erasures` `{"identifier":"TYPE:VALUE","mode":"drop"|"strip"}`
async fn erase_subject(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let new: NewErasure = json_body(
        &body,
        "send {\"identifier\":\"TYPE:VALUE\"} (and \"mode\":\"drop\" or \"strip\")",
    )?;
    let mode = match new.mode.as_deref() {
        None => Suppress::Drop,
        Some(text) => Suppress::parse(text)?,
    };
    let region = state.book.rules().rules.default_region();
    let (store, webhook) = (state.store.clone(), state.webhook.clone());
    let running = Running {
        book: state.book.clone(),
        suppressor: state.suppressor.clone(),
    };
    // A person's whole history can be long: erased off the async workers.
    let receipt = off_workers(async move {
        erase::erase(
            store.as_ref(),
            Some(&running),
            &webhook,
            &actor,
            region,
            &new.identifier,
            mode,
        )
        .await
    })
    .await?;
    created(receipt)
}

/// `GET /api/v1/privacy/erasures?limit=N`
async fn erasures(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let limit = match query.get("limit") {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                bad_request(format!("`limit` must be a positive integer, not {text:?}"))
            })?,
    };
    let list = erase::list(state.store.as_ref(), &actor, limit).await?;
    ok(serde_json::json!({ "erasures": list }))
}

/// `GET /api/v1/privacy/erasures/{id}`
async fn erasure(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Answer {
    ok(erase::get(state.store.as_ref(), &actor, &id).await?)
}

async fn subject(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let format = match query.get("format").map(String::as_str) {
        None | Some("json") => Format::Json,
        Some("html") => Format::Html,
        Some(other) => {
            return Err(bad_request(format!(
                "`format` is json (the default) or html, not {other:?}"
            )))
        }
    };
    let region = state.book.rules().rules.default_region();
    let store = state.store.clone();
    // A person's whole history can be long: built off the async workers.
    let export =
        off_workers(
            async move { privacy::export(store.as_ref(), &actor, region, &id, format).await },
        )
        .await?;
    // Personal data: no cache keeps a copy.
    let no_store = (header::CACHE_CONTROL, "no-store");
    Ok(match format {
        Format::Html => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8"), no_store],
            privacy::render_html(&export),
        )
            .into_response(),
        _ => ([no_store], Json(export)).into_response(),
    })
}
