//! `GET /api/v1/privacy/subjects/{type}:{value}`: a subject access export, everything held
//! about the person holding the identifier, as JSON or (`?format=html`) a readable page
//! (privacy and admin roles; the service checks and records the export in the audit log).

use super::{bad_request, off_workers, Acting, Answer, ApiState};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use sightline_service::privacy::{self, Format};
use std::collections::HashMap;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/privacy/subjects/{id}", get(subject))
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
