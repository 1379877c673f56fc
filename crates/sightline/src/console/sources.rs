//! `/sources`: the sources and their write keys (create, rotate with a grace period); a new
//! key is shown once, on the answer to the form that made it.

use super::{page, respond, when, Form, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use sightline_service::access::ADMIN;
use sightline_service::sources;
use std::time::Duration;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/sources", get(list))
        .route("/sources/create", post(create))
        .route("/sources/rotate", post(rotate))
}

async fn list(State(state): State<ApiState>, signed: Signed) -> Html {
    render(&state, &signed, None).await
}

async fn render(state: &ApiState, signed: &Signed, shown: Option<Markup>) -> Html {
    let all = sources::list_sources(state.store.as_ref(), &signed.actor)
        .await
        .or_page(signed)?;
    let body = html! {
        @if let Some(s) = shown { (s) }
        table #sources {
            caption.sr { "Sources" }
            thead { tr { th scope="col" { "Id" } th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Write key" } } }
            tbody {
                @for s in &all {
                    tr {
                        td.num { (s.id) }
                        th scope="row" { (s.name) }
                        td { (when(s.created_at)) }
                        td {
                            @if signed.may(ADMIN) {
                                form.inline method="post" action="/sources/rotate" {
                                    (signed.csrf_field())
                                    input type="hidden" name="source" value=(s.name);
                                    label for=(format!("grace-{}", s.id)) { "Old key valid for" }
                                    select id=(format!("grace-{}", s.id)) name="grace" {
                                        option value="0" { "no time" }
                                        option value="3600" { "1 hour" }
                                        option value="86400" selected { "1 day" }
                                        option value="604800" { "7 days" }
                                    }
                                    button type="submit" { "Rotate key of " (s.name) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if signed.may(ADMIN) {
            h2 { "Add a source" }
            form method="post" action="/sources/create" {
                (signed.csrf_field())
                label for="source-name" { "Name" }
                input #source-name type="text" name="name" required maxlength="100";
                button type="submit" { "Add source" }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(signed), "Sources", "/sources", body),
    ))
}

fn key_once(what: &str, key: &str, extra: Markup) -> Markup {
    html! {
        div.shown-once role="status" {
            p { (what) " Its write key, shown this once:" }
            p { code #write-key { (key) } }
            (extra)
        }
    }
}

async fn create(State(state): State<ApiState>, signed: Signed, body: axum::body::Bytes) -> Html {
    let form = Form::parse(&body);
    signed.check(&form)?;
    let (source, key) = sources::add_source(state.store.as_ref(), &signed.actor, form.text("name"))
        .await
        .or_page(&signed)?;
    let shown = key_once(&format!("Source {} added.", source.name), &key, html! {});
    render(&state, &signed, Some(shown)).await
}

async fn rotate(State(state): State<ApiState>, signed: Signed, body: axum::body::Bytes) -> Html {
    let form = Form::parse(&body);
    signed.check(&form)?;
    let grace = form
        .text("grace")
        .parse::<u64>()
        .unwrap_or(86_400)
        .min(30 * 86_400);
    let rotated = sources::rotate_key(
        state.store.as_ref(),
        &signed.actor,
        form.text("source"),
        Duration::from_secs(grace),
    )
    .await
    .or_page(&signed)?;
    let shown = key_once(
        &format!("New key for {}.", rotated.source.name),
        &rotated.write_key,
        html! { p { "The old keys work until " (when(rotated.old_keys_valid_until)) "." } },
    );
    render(&state, &signed, Some(shown)).await
}
