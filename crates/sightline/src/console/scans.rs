//! `/governance/scans/ID`: one stored scan as a person reads it: its findings, then one
//! scenario's steps at a time (paged: a crawl has hundreds), each with the screenshot taken
//! after it and the vendors seen.

use super::{encode, page, respond, when, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::html;
use sightline_service::access::{require, READERS};
use sightline_service::governance::registry;
use sightline_service::Error;
use std::collections::{HashMap, HashSet};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/governance/scans/{id}", get(scan))
        .route(
            "/governance/scans/{id}/screenshots/{scenario}/{file}",
            get(screenshot),
        )
}

/// Steps shown at once: a crawl's scenario has hundreds.
const STEPS: usize = 20;
/// Findings listed at once; the rest are in the report.
const FINDINGS: usize = 50;

async fn scan(
    State(state): State<ApiState>,
    signed: Signed,
    Path(id): Path<i64>,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    require(&signed.actor, READERS, "reading governance records").or_page(&signed)?;
    let store = state.store.as_ref();
    let row = registry::stored_scan(store, id).await.or_page(&signed)?;
    // A crawl's report is megabytes of JSON: read on the blocking pool.
    let shared = state.store.clone();
    let report =
        crate::http::off_workers(async move { registry::stored_report(shared.as_ref(), id).await })
            .await
            .map_err(|failure| super::error_page(Some(&signed), failure.into_error()))?;
    let kept: HashSet<String> = store
        .scan_screenshot_paths(id)
        .await
        .map_err(Error::from)
        .or_page(&signed)?
        .into_iter()
        .collect();
    let names: Vec<String> = report.scenarios.iter().map(|s| s.name.name()).collect();
    let shown = query
        .get("scenario")
        .and_then(|name| names.iter().position(|n| n == name))
        .unwrap_or(0);
    let from = query
        .get("from")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let link = |scenario: usize, from: usize| {
        format!(
            "/governance/scans/{id}?scenario={}&from={from}",
            encode(&names[scenario])
        )
    };
    let title = format!("Scan {id}: {}", report.journey);
    let body = html! {
        p {
            "Journey " strong { (report.journey) }
            ", scanned " (when(row.at))
            ", " (report.findings.len()) " finding(s)"
            @if report.incomplete { ", " strong { "incomplete" } }
            ". The whole report as JSON: " code { "GET /api/v1/scans/" (id) } "."
        }
        @if !report.findings.is_empty() {
            h2 #findings-h { "Findings" }
            table #scan-findings aria-labelledby="findings-h" {
                thead { tr { th scope="col" { "Severity" } th scope="col" { "Scenario" } th scope="col" { "Step" } th scope="col" { "Vendor" } th scope="col" { "What to do" } } }
                tbody {
                    @for f in report.findings.iter().take(FINDINGS) {
                        tr {
                            td { (f.severity.name()) }
                            td { @if let Some(s) = &f.scenario { (s) } }
                            td { @if let Some(s) = &f.step { (s) } }
                            td { (f.vendor) }
                            td { (f.message) }
                        }
                    }
                }
            }
            @if report.findings.len() > FINDINGS {
                p.hint { (report.findings.len() - FINDINGS) " more in the report." }
            }
        }
        @if names.len() > 1 {
            nav #scenarios aria-label="Scenarios" {
                "Scenarios: "
                @for (n, name) in names.iter().enumerate() {
                    @if n > 0 { " · " }
                    @if n == shown { strong aria-current="page" { (name) } } @else { a href=(link(n, 0)) { (name) } }
                }
            }
        }
        @if let Some(scenario) = report.scenarios.get(shown) {
            section aria-labelledby="scenario-h" {
                h2 #scenario-h { "Scenario " (scenario.name) }
                @if let Some(reason) = &scenario.incomplete { p { strong { "Stopped early: " } (reason) } }
                @for step in scenario.steps.iter().skip(from).take(STEPS) {
                    figure.step {
                        @match step.screenshot.as_deref().filter(|p| kept.contains(*p)) {
                            Some(path) => img src={ "/governance/scans/" (id) "/" (path) } alt={ "The page after the step " (step.name) " (" (scenario.name) ")" } width="640" loading="lazy";,
                            None => p.hint { "No screenshot was kept." },
                        }
                        figcaption {
                            strong { (step.name) } " " code { (step.url) } br;
                            (step.request_count) " requests, " (step.third_party_count) " to third parties"
                            @if !step.vendors.is_empty() {
                                "; vendors: "
                                @for (i, v) in step.vendors.iter().enumerate() {
                                    @if i > 0 { ", " } (v.name)
                                }
                            }
                            @if let Some(error) = &step.error { br; strong { "Error: " } (error) }
                        }
                    }
                }
                @if scenario.steps.len() > STEPS {
                    p {
                        "Steps " (from.min(scenario.steps.len()) + 1) "–" ((from + STEPS).min(scenario.steps.len())) " of " (scenario.steps.len()) ". "
                        @if from > 0 { a href=(link(shown, from.saturating_sub(STEPS))) { "Earlier steps" } " " }
                        @if from + STEPS < scenario.steps.len() { a href=(link(shown, from + STEPS)) { "Later steps" } }
                    }
                }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), &title, "/governance", body),
    ))
}

async fn screenshot(
    State(state): State<ApiState>,
    signed: Signed,
    Path((id, scenario, file)): Path<(i64, String, String)>,
) -> Html {
    require(&signed.actor, READERS, "reading governance records").or_page(&signed)?;
    let png = registry::stored_screenshot(state.store.as_ref(), id, &scenario, &file)
        .await
        .or_page(&signed)?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}
