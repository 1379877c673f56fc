//! `/`: events per minute by source (an inline SVG chart), the processors' lag.

use super::{page, respond, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use sightline_govern::backlog::{BacklogStatus, Filter};
use sightline_service::access::{METRICS_READERS, READERS};
use sightline_service::governance::registry;
use sightline_service::{events, processors};
use std::collections::BTreeMap;

/// How many of the log's last events the chart counts: a bounded read, whatever the log's size.
const RECENT: usize = 1000;
/// The chart's span, in minutes.
const MINUTES: i64 = 30;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/", get(overview))
}

async fn overview(State(state): State<ApiState>, signed: Signed) -> Html {
    let mut body = Vec::new();
    if signed.may(READERS) {
        let last = state
            .store
            .last_seq()
            .await
            .map_err(Into::into)
            .or_page(&signed)?;
        let recent = events::page(
            state.store.as_ref(),
            &signed.actor,
            None,
            (last - RECENT as i64).max(0),
            RECENT,
        )
        .await
        .or_page(&signed)?;
        let now = sightline_core::time::now_ms();
        let first_minute = now / 60_000 - (MINUTES - 1);
        let mut by_source: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for e in &recent {
            let minute = e.received_at / 60_000 - first_minute;
            if (0..MINUTES).contains(&minute) {
                by_source
                    .entry(e.source_id)
                    .or_insert_with(|| vec![0; MINUTES as usize])[minute as usize] += 1;
            }
        }
        body.push(html! {
            section aria-labelledby="rate" {
                h2 #rate { "Events per minute by source" }
                p.hint { "The last " (MINUTES) " minutes, counted over the log's last " (RECENT) " events." }
                (chart(&by_source))
            }
        });
    }
    if signed.may(METRICS_READERS) {
        let progress = processors::progress(state.store.as_ref(), &state.processors)
            .await
            .map_err(sightline_service::Error::Internal)
            .or_page(&signed)?;
        body.push(html! {
            section aria-labelledby="lag" {
                h2 #lag { "Processors" }
                table {
                    caption.sr { "Each processor's state and lag behind the log" }
                    thead { tr { th scope="col" { "Processor" } th scope="col" { "State" } th scope="col" { "Behind (events)" } th scope="col" { "Behind (seconds)" } } }
                    tbody {
                        @for p in &progress {
                            tr {
                                td { (p.processor) }
                                td { @if p.up { "up" } @else { span.bad { "retrying" } } }
                                td.num { (p.behind.as_ref().map_or("—".to_string(), |b| b.events.to_string())) }
                                td.num { (p.behind.as_ref().map_or("—".to_string(), |b| format!("{:.1}", b.seconds))) }
                            }
                        }
                    }
                }
            }
        });
    }
    if signed.may(READERS) {
        let all = sightline_service::destinations::list(state.store.as_ref(), &signed.actor)
            .await
            .or_page(&signed)?;
        let mut rows = Vec::new();
        for d in &all {
            rows.push((
                d,
                super::destinations::counts(&state, &signed, &d.name)
                    .await
                    .or_page(&signed)?,
            ));
        }
        let items = registry::backlog_items(
            state.store.as_ref(),
            &Filter {
                journey: None,
                owner: None,
                severity: None,
                status: Some(BacklogStatus::Open),
                overdue: false,
            },
        )
        .await
        .or_page(&signed)?;
        let mut by_severity: BTreeMap<&'static str, usize> = BTreeMap::new();
        for i in &items {
            *by_severity.entry(i.value.severity.name()).or_default() += 1;
        }
        body.push(html! {
            section aria-labelledby="health" {
                h2 #health { "Delivery health" }
                @if rows.is_empty() { p { "No destinations." } } @else {
                    table #delivery-health aria-labelledby="health" {
                        thead { tr { th scope="col" { "Destination" } th scope="col" { "State" } th scope="col" { "Delivered" } th scope="col" { "Suppressed" } th scope="col" { "Dead" } } }
                        tbody {
                            @for (d, c) in &rows {
                                tr {
                                    th scope="row" { a href=(super::destinations::path_of(&d.name)) { (d.name) } }
                                    td { (super::destinations::state_of(d)) }
                                    td.num { (super::destinations::shown(c.delivered)) }
                                    td.num { (super::destinations::shown(c.suppressed.len())) }
                                    td.num { @if c.dead > 0 { span.bad { (super::destinations::shown(c.dead)) } } @else { "0" } }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="open-findings" {
                h2 #open-findings { "Open findings by severity" }
                @if by_severity.is_empty() { p { "No open findings." } } @else {
                    ul #findings-by-severity {
                        @for s in ["critical", "high", "medium", "low"] {
                            @if let Some(n) = by_severity.get(s) { li { a href="/governance" { (s) ": " (n) } } }
                        }
                    }
                }
            }
        });
    }
    if body.is_empty() {
        body.push(html! { p { "Your role has no overview figures; use the pages in the menu." } });
    }
    let markup = html! { @for b in &body { (b) } };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), "Overview", "/", markup),
    ))
}

pub(crate) const COLOURS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
];

/// One line per source over the minutes; the same figures in a table for screen readers.
pub(crate) fn chart(series: &BTreeMap<i64, Vec<u32>>) -> Markup {
    let (w, h, pad) = (600.0_f64, 200.0_f64, 30.0_f64);
    let top = series
        .values()
        .flat_map(|v| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |i: usize| pad + i as f64 * (w - 2.0 * pad) / (MINUTES - 1) as f64;
    let y = |n: u32| h - pad - n as f64 * (h - 2.0 * pad) / top;
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="rate-title" {
            title #rate-title { "Events per minute by source, last " (MINUTES) " minutes; peak " (top) }
            line x1=(pad) y1=(h - pad) x2=(w - pad) y2=(h - pad) stroke="#555" {}
            line x1=(pad) y1=(pad) x2=(pad) y2=(h - pad) stroke="#555" {}
            text x="2" y=(pad) font-size="10" { (top) }
            text x="2" y=(h - pad) font-size="10" { "0" }
            text x=(w - pad - 30.0) y=(h - 8.0) font-size="10" { "now" }
            @for (i, (source, counts)) in series.iter().enumerate() {
                @let points = counts.iter().enumerate().map(|(m, &n)| format!("{:.1},{:.1}", x(m), y(n))).collect::<Vec<_>>().join(" ");
                polyline.series data-source=(source) points=(points) fill="none" stroke=(COLOURS[i % COLOURS.len()]) stroke-width="2" {}
            }
        }
        @if series.is_empty() {
            p { "No events in the last " (MINUTES) " minutes." }
        } @else {
            ul.legend {
                @for (i, (source, counts)) in series.iter().enumerate() {
                    li { span.swatch data-colour=(i % COLOURS.len()) {} "source #" (source) ": " (counts.iter().sum::<u32>()) " events" }
                }
            }
        }
    }
}
