//! `/attribution`: the models side by side, as a chart and a table, for a chosen
//! conversion and period.

use super::{page, respond, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde_json::Value;
use sightline_service::access::{require, ATTRIBUTION_READERS};
use sightline_service::attribution;
use std::collections::{BTreeSet, HashMap};

const MODELS: [&str; 8] = [
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
    "markov",
    "shapley",
];
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#555555", "#b8860b",
];

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/attribution", get(attribution_page))
}

async fn attribution_page(
    State(state): State<ApiState>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    require(&signed.actor, ATTRIBUTION_READERS, "attribution").or_page(&signed)?;
    let field = |n: &str| {
        query
            .get(n)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let conversion = field("conversion");
    let (from, to) = (field("from"), field("to"));
    let result = match &conversion {
        None => None,
        Some(conversion) => {
            let question = attribution::Question {
                conversion: conversion.clone(),
                value_property: None,
                from: from.clone(),
                to: to.clone(),
                lookback: field("lookback"),
                models: Vec::new(),
            };
            let rules = state.book.rules().clone();
            let (store, actor) = (state.store.clone(), signed.actor.clone());
            // Heavy: on the blocking pool, as the API's.
            Some(
                crate::http::off_workers(async move {
                    let grouper = sightline_attribution::ChannelGrouper::default();
                    attribution::report(store.as_ref(), &actor, &question, &grouper, rules).await
                })
                .await,
            )
        }
    };
    let shown = match result {
        None => html! { p { "Name the conversion event to compare the models." } },
        Some(Ok(report)) => models(&report),
        Some(Err(failure)) => match failure.into_error() {
            sightline_service::Error::Invalid(m) => html! { p.notice role="alert" { (m) } },
            e => return Err(super::error_page(Some(&signed), e)),
        },
    };
    let body = html! {
        form.filters method="get" action="/attribution" {
            label for="conv" { "Conversion event" }
            input #conv type="text" name="conversion" required value=(conversion.clone().unwrap_or_default()) placeholder="Order Completed";
            label for="from" { "From" }
            input #from type="date" name="from" value=(from.clone().unwrap_or_default());
            label for="to" { "To" }
            input #to type="date" name="to" value=(to.clone().unwrap_or_default());
            button type="submit" { "Compare models" }
        }
        (shown)
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), "Attribution", "/attribution", body),
    ))
}

/// Conversions credited per channel, one bar per model; the same figures as a table.
fn models(report: &Value) -> Markup {
    let m = &report["models"];
    let channels: BTreeSet<String> = MODELS
        .iter()
        .filter_map(|model| m[*model].as_object())
        .flat_map(|o| o.keys().cloned())
        .collect();
    if channels.is_empty() {
        return html! { p #no-conversions { "No conversions with touches in this period." } };
    }
    let credit = |model: &str, channel: &str| m[model][channel].as_f64().unwrap_or(0.0);
    let top = channels
        .iter()
        .flat_map(|c| MODELS.iter().map(move |model| credit(model, c)))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let (group_w, bar_w, h, pad) = (MODELS.len() as f64 * 10.0 + 20.0, 10.0, 220.0, 30.0);
    // At least the overview chart's width, so that a single channel is not drawn huge.
    let w = (pad * 2.0 + group_w * channels.len() as f64).max(600.0);
    html! {
        svg.chart #attribution-chart viewBox=(format!("0 0 {w} {}", h + 40.0)) role="img" aria-labelledby="attr-title" {
            title #attr-title { "Conversions credited per channel by each of the eight models; the table below has the figures" }
            line x1=(pad) y1=(h) x2=(w - pad) y2=(h) stroke="#555" {}
            text x="2" y=(pad) font-size="10" { (format!("{top:.1}")) }
            @for (g, channel) in channels.iter().enumerate() {
                @let x0 = pad + g as f64 * group_w + 10.0;
                @for (i, model) in MODELS.iter().enumerate() {
                    @let v = credit(model, channel);
                    @let bh = v / top * (h - pad);
                    rect.bar data-model=(model) data-channel=(channel) x=(format!("{:.1}", x0 + i as f64 * bar_w)) y=(format!("{:.1}", h - bh))
                        width=(bar_w - 1.0) height=(format!("{bh:.1}")) fill=(COLOURS[i]) {
                        title { (channel) ", " (model) ": " (format!("{v:.2}")) }
                    }
                }
                text x=(format!("{x0:.1}")) y=(h + 14.0) font-size="10" { (channel) }
            }
        }
        ul.legend {
            @for (i, model) in MODELS.iter().enumerate() {
                li { span.swatch data-colour=(i) {} (model.replace('_', " ")) }
            }
        }
        table #attribution {
            caption { "Conversions credited per channel, by model" }
            thead { tr { th scope="col" { "Channel" } @for model in MODELS { th scope="col" { (model.replace('_', " ")) } } } }
            tbody {
                @for channel in &channels {
                    tr { th scope="row" { (channel) } @for model in MODELS { td.num { (format!("{:.2}", credit(model, channel))) } } }
                }
            }
        }
    }
}
