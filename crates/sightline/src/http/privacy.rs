//! `GET /api/v1/privacy/subjects/{type}:{value}`: a subject access export, everything held
//! about the person holding the identifier, as JSON or (`?format=html`) a readable page;
//! `POST /api/v1/privacy/erasures`: erases the person, answering the signed receipt under
//! its id, which `GET /api/v1/privacy/erasures/{id}` reads again (privacy and admin roles;
//! the service checks and records each in the audit log).

use super::contract::{json_of, list_of, object, Access, Doc, Routes};
use super::{bad_request, created, json_body, off_workers, ok, Acting, Answer, ApiState, Path};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use sightline_service::access::PRIVACY;
use sightline_service::erase::{self, Running, Suppress};
use sightline_service::privacy::{self, Format};
use std::collections::HashMap;

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/api/v1/privacy/subjects/{id}",
        subject,
        Doc::new(
            "privacy",
            "A subject access export: everything held about the person (recorded in the audit log)",
            Access::Token(PRIVACY),
            object("The export; with `?format=html` a readable page (text/html) instead"),
        )
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
            object(
                "The receipt: `id`, `status`, `outcome` (`erased`, `nothing found` or \
                 `already erased`), `counts` per table, `signature`",
            ),
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
            list_of("erasures", "An erasure's signed receipt"),
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
            object("The receipt, as the erasure answered it"),
        )
        .path("id", "The erasure's id, e.g. `er_…`"),
    )
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
