//! `/governance/scans/ID`: one stored scan as a person reads it: each scenario's steps with
//! the screenshot taken after the step, the vendors seen and the findings.

use super::{page, respond, when, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::html;
use sightline_scan::report::is_screenshot_path;
use sightline_service::access::{require, READERS};
use sightline_service::governance::registry;
use sightline_service::Error;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/governance/scans/{id}", get(scan))
        .route(
            "/governance/scans/{id}/screenshots/{scenario}/{file}",
            get(screenshot),
        )
}

async fn scan(State(state): State<ApiState>, signed: Signed, Path(id): Path<i64>) -> Html {
    require(&signed.actor, READERS, "reading governance records").or_page(&signed)?;
    let store = state.store.as_ref();
    let report = registry::stored_report(store, id).await.or_page(&signed)?;
    let row = store
        .scans(Some(&report.journey))
        .await
        .map_err(Error::from)
        .or_page(&signed)?
        .into_iter()
        .find(|row| row.id == id);
    let title = format!("Scan {id}: {}", report.journey);
    let body = html! {
        p {
            "Journey " strong { (report.journey) }
            @if let Some(row) = &row { ", scanned " (when(row.at)) }
            ", " (report.findings.len()) " finding(s)"
            @if report.incomplete { ", " strong { "incomplete" } }
            ". As JSON: " code { "GET /api/v1/scans/" (id) } "."
        }
        @if !report.findings.is_empty() {
            h2 #findings-h { "Findings" }
            table #scan-findings aria-labelledby="findings-h" {
                thead { tr { th scope="col" { "Severity" } th scope="col" { "Scenario" } th scope="col" { "Step" } th scope="col" { "Vendor" } th scope="col" { "What to do" } } }
                tbody {
                    @for f in &report.findings {
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
        }
        @for (n, scenario) in report.scenarios.iter().enumerate() {
            section aria-labelledby={ "scenario-" (n) } {
                h2 id={ "scenario-" (n) } { "Scenario " (scenario.name) }
                @if let Some(reason) = &scenario.incomplete { p { strong { "Stopped early: " } (reason) } }
                @for step in &scenario.steps {
                    figure.step {
                        @match step.screenshot.as_deref().filter(|p| is_screenshot_path(p)) {
                            Some(path) => img src={ "/governance/scans/" (id) "/" (path) } alt={ "The page after the step " (step.name) " (" (scenario.name) ")" } width="640" loading="lazy";,
                            None => p.hint { "No screenshot was taken." },
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
