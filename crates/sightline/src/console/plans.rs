//! `/plans`: the tracking plans, the sources held to each, and each such source's
//! violations of the last week (counts per day, event and kind; the newest samples, masked).

use super::{json_block, page, respond, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use maud::html;
use serde_json::Value;
use sightline_service::plans;

/// How far back the page counts violations.
const DAYS: i64 = 7;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/plans", get(plans_page))
}

async fn plans_page(State(state): State<ApiState>, signed: Signed) -> Html {
    let store = state.store.as_ref();
    let all = plans::list_plans(store, &signed.actor)
        .await
        .or_page(&signed)?;
    let since =
        sightline_core::time::day_of(sightline_core::time::now_ms() - (DAYS - 1) * 86_400_000);
    let mut found = Vec::new();
    for plan in &all {
        for source in plan["sources"].as_array().into_iter().flatten() {
            let source = source.as_str().unwrap_or_default();
            let violations = plans::violations(store, &signed.actor, source, &since)
                .await
                .or_page(&signed)?;
            found.push((
                plan["name"].as_str().unwrap_or_default().to_string(),
                violations,
            ));
        }
    }
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let body = html! {
        table #plans {
            caption.sr { "Tracking plans" }
            thead { tr { th scope="col" { "Plan" } th scope="col" { "Version" } th scope="col" { "Changed" } th scope="col" { "Sources held to it" } } }
            tbody {
                @for p in &all {
                    tr {
                        th scope="row" { (text(&p["name"])) }
                        td.num { (text(&p["version"])) }
                        td { (text(&p["updated_at"])) }
                        td { @for (i, s) in p["sources"].as_array().into_iter().flatten().enumerate() {
                            @if i > 0 { ", " } (text(s))
                        } }
                    }
                }
            }
        }
        @if all.is_empty() { p { "No tracking plan yet: " code { "sightline plan add NAME plan.json" } "." } }
        @for (plan, v) in &found {
            @let source = text(&v["source"]);
            section.violations id=(format!("violations-{source}")) {
                h2 { "Violations at " (source) " (plan " (plan) "), since " (text(&v["since"])) }
                @let counts = v["counts"].as_array().cloned().unwrap_or_default();
                @if counts.is_empty() {
                    p { "None." }
                } @else {
                    table.counts {
                        caption.sr { "Violations at " (source) " per day, event and kind" }
                        thead { tr { th scope="col" { "Day" } th scope="col" { "Event" } th scope="col" { "Kind" } th scope="col" { "Count" } } }
                        tbody { @for c in &counts {
                            tr { td { (text(&c["day"])) } td { (text(&c["event"])) } td { code { (text(&c["type"])) } } td.num { (text(&c["count"])) } }
                        } }
                    }
                    @let samples = v["samples"].as_array().cloned().unwrap_or_default();
                    @if !samples.is_empty() {
                        details { summary { "Newest samples (values masked)" span.sr { " at " (source) } }
                            (json_block(&Value::Array(samples))) }
                    }
                }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), "Tracking plans", "/plans", body),
    ))
}
