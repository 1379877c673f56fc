//! `GET /api/v1/privacy/subjects/{type}:{value}`: a subject access export, everything held
//! about the person holding the identifier, as JSON or (`?format=html`) a readable page
//! (privacy and admin roles; the service checks and records the export in the audit log).

use super::contract::{object, Access, Doc, Routes};
use super::{bad_request, off_workers, Acting, Answer, ApiState, Path};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use sightline_service::access::PRIVACY;
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
