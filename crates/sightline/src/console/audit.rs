//! `/audit`: the audit log, a page at a time (oldest first, as the API).

use super::{json_block, page, respond, when, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use maud::html;
use sightline_service::audit;
use std::collections::HashMap;

const PAGE: usize = 50;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/audit", get(audit_page))
}

async fn audit_page(
    State(state): State<ApiState>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    let after = query
        .get("after")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let entries = audit::list(state.store.as_ref(), &signed.actor, after, PAGE)
        .await
        .or_page(&signed)?;
    let parse = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    let body = html! {
        p.hint { "Each entry holds the hash of the one before: " code { "sightline audit verify" } " checks the chain." }
        table #audit {
            caption.sr { "Audit log entries, oldest first" }
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Role" }
                th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Change" }
            } }
            tbody {
                @for e in &entries {
                    tr {
                        td.num { (e.id) } td { (when(e.at)) } td { (e.actor) } td { (e.role) }
                        td { code { (e.action) } } td { (e.target) }
                        td { details { summary { "Before and after" span.sr { " of entry " (e.id) } }
                            (json_block(&serde_json::json!({"before": parse(&e.before), "after": parse(&e.after)}))) } }
                    }
                }
            }
        }
        @if entries.is_empty() { p { "No entries." } }
        @if entries.len() == PAGE { @if let Some(l) = entries.last() { a href=(format!("/audit?after={}", l.id)) { "Later entries" } } }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), "Audit log", "/audit", body),
    ))
}
