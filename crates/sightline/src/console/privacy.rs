//! `/privacy`: the erasures done (their receipts), a person's data exported (subject
//! access, as a JSON download) and erased.

use super::{json_block, page, respond, short, Form, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use sightline_service::access::{require, PRIVACY};
use sightline_service::erase::{self, Running, Suppress};
use sightline_service::privacy::{self, Format};
use std::collections::HashMap;

const LISTED: usize = 50;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/privacy", get(privacy_page))
        .route("/privacy/export", get(export))
        .route("/privacy/erase", post(erase_person))
}

async fn privacy_page(State(state): State<ApiState>, signed: Signed) -> Html {
    render(&state, &signed, None).await
}

async fn render(state: &ApiState, signed: &Signed, done: Option<Markup>) -> Html {
    let list = erase::list(state.store.as_ref(), &signed.actor, LISTED)
        .await
        .or_page(signed)?;
    let body = html! {
        @if let Some(d) = done { (d) }
        section aria-labelledby="export-h" {
            h2 #export-h { "Export a person's data" }
            form.filters method="get" action="/privacy/export" {
                label for="x-id" { "Identifier (TYPE:VALUE)" }
                input #x-id type="text" name="id" required placeholder="email:ann@example.com";
                button type="submit" { "Download their data (JSON)" }
            }
        }
        section aria-labelledby="erase-h" {
            h2 #erase-h { "Erase a person" }
            form.editor method="post" action="/privacy/erase" aria-labelledby="erase-h" {
                (signed.csrf_field())
                label for="e-id" { "Identifier (TYPE:VALUE)" }
                input #e-id type="text" name="identifier" required placeholder="email:ann@example.com";
                label for="e-mode" { "Events that still carry the identifier afterwards" }
                select #e-mode name="mode" {
                    option value="drop" { "dropped (not stored)" }
                    option value="strip" { "stored without it" }
                }
                div {
                    input #e-sure type="checkbox" name="sure" value="yes" required;
                    label for="e-sure" { " Erase their events, profile and derived rows for good" }
                }
                button type="submit" { "Erase" }
            }
        }
        section aria-labelledby="erasures-h" {
            h2 #erasures-h { "Erasures" }
            @if list.is_empty() { p { "None yet." } }
            table #erasures aria-labelledby="erasures-h" {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Requested" } th scope="col" { "Status" } th scope="col" { "Outcome" } th scope="col" { "Receipt" } } }
                tbody {
                    @for r in &list {
                        tr {
                            td { code { (short(&r["id"])) } } td { (short(&r["requested_at"])) }
                            td { (short(&r["status"])) } td { (short(&r["outcome"])) }
                            td { details { summary { "Receipt" } (json_block(r)) } }
                        }
                    }
                }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(signed), "Privacy", "/privacy", body),
    ))
}

async fn export(
    State(state): State<ApiState>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    let id = query
        .get("id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let region = state.book.rules().rules.default_region();
    let (store, actor) = (state.store.clone(), signed.actor.clone());
    let exported = crate::http::off_workers(async move {
        privacy::export(store.as_ref(), &actor, region, &id, Format::Json).await
    })
    .await
    .map_err(|f| super::error_page(Some(&signed), f.into_error()))?;
    let text = serde_json::to_string_pretty(&exported).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"subject-export.json\"",
            ),
        ],
        text,
    )
        .into_response())
}

async fn erase_person(
    State(state): State<ApiState>,
    signed: Signed,
    body: axum::body::Bytes,
) -> Html {
    let form = Form::parse(&body);
    signed.check(&form)?;
    // The service checks again; checked first so that a wrong role is told so whatever it sent.
    require(&signed.actor, PRIVACY, "erasing a person's data").or_page(&signed)?;
    if form.text("sure") != "yes" {
        return Err(super::error_page(
            Some(&signed),
            sightline_service::Error::invalid("tick the box to confirm the erasure"),
        ));
    }
    let mode = Suppress::parse(form.get("mode").unwrap_or("drop")).or_page(&signed)?;
    let identifier = form.text("identifier").to_string();
    let region = state.book.rules().rules.default_region();
    let (store, webhook, actor) = (
        state.store.clone(),
        state.webhook.clone(),
        signed.actor.clone(),
    );
    let running = Running {
        book: state.book.clone(),
        suppressor: state.suppressor.clone(),
    };
    let receipt = crate::http::off_workers(async move {
        erase::erase(
            store.as_ref(),
            Some(&running),
            &webhook,
            &actor,
            region,
            &identifier,
            mode,
        )
        .await
    })
    .await
    .map_err(|f| super::error_page(Some(&signed), f.into_error()))?;
    let done = html! {
        div.shown-once #erased role="status" {
            p { "Erased: " (short(&receipt["outcome"])) " (receipt " code { (short(&receipt["id"])) } ")." }
        }
    };
    render(&state, &signed, Some(done)).await
}
