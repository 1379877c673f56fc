//! `/destinations`: each destination's delivered, suppressed (by purpose) and dead counts;
//! `/destinations/NAME`: its dead letters a page at a time, and their replay.

use super::{encode, page, respond, when, Form, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use sightline_core::{Delivery, DeliveryStatus};
use sightline_service::access::MARKETING;
use sightline_service::destinations::{self, Replay};
use std::collections::{BTreeMap, HashMap};

/// Counts read per status: one page at most; more shows as "1000+".
const COUNTED: usize = 1000;
const DEAD_SHOWN: usize = 50;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/destinations", get(list))
        .route("/destinations/{name}", get(destination))
        .route("/destinations/{name}/replay", post(replay))
}

pub(super) fn path_of(name: &str) -> String {
    format!("/destinations/{}", encode(name).replace('+', "%20"))
}

pub(super) struct Counts {
    pub delivered: usize,
    pub suppressed: Vec<Delivery>,
    pub dead: usize,
}

pub(super) fn shown(n: usize) -> String {
    if n >= COUNTED {
        format!("{COUNTED}+")
    } else {
        n.to_string()
    }
}

pub(super) async fn counts(
    state: &ApiState,
    signed: &Signed,
    name: &str,
) -> Result<Counts, sightline_service::Error> {
    let read = |status| {
        destinations::deliveries(
            state.store.as_ref(),
            &signed.actor,
            name,
            Some(status),
            0,
            COUNTED,
        )
    };
    Ok(Counts {
        delivered: read(DeliveryStatus::Delivered).await?.len(),
        suppressed: read(DeliveryStatus::Suppressed).await?,
        dead: read(DeliveryStatus::Dead).await?.len(),
    })
}

async fn list(State(state): State<ApiState>, signed: Signed) -> Html {
    let all = destinations::list(state.store.as_ref(), &signed.actor)
        .await
        .or_page(&signed)?;
    let mut rows = Vec::new();
    for d in &all {
        rows.push((d, counts(&state, &signed, &d.name).await.or_page(&signed)?));
    }
    let body = html! {
        table #destinations {
            caption.sr { "Destinations and their delivery counts" }
            thead { tr {
                th scope="col" { "Destination" } th scope="col" { "Type" } th scope="col" { "State" }
                th scope="col" { "Delivered" } th scope="col" { "Suppressed" } th scope="col" { "Dead" }
            } }
            tbody {
                @for (d, c) in &rows {
                    tr {
                        th scope="row" { a href=(path_of(&d.name)) { (d.name) } }
                        td { (d.kind.as_str()) }
                        td { (state_of(d)) }
                        td.num { (shown(c.delivered)) }
                        td.num { (shown(c.suppressed.len())) }
                        td.num { @if c.dead > 0 { span.bad { (shown(c.dead)) } } @else { "0" } }
                    }
                }
            }
        }
        @if all.is_empty() { p { "No destinations: " code { "sightline destination add" } " adds one." } }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), "Destinations", "/destinations", body),
    ))
}

pub(super) fn state_of(d: &sightline_core::Destination) -> &'static str {
    if d.disabled {
        "paused"
    } else if !d.approved {
        "awaiting approval"
    } else {
        "delivering"
    }
}

async fn destination(
    State(state): State<ApiState>,
    signed: Signed,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    render(&state, &signed, &name, &query, None).await
}

async fn render(
    state: &ApiState,
    signed: &Signed,
    name: &str,
    query: &HashMap<String, String>,
    notice: Option<Markup>,
) -> Html {
    let d = destinations::list(state.store.as_ref(), &signed.actor)
        .await
        .or_page(signed)?
        .into_iter()
        .find(|d| d.name == name);
    let Some(d) = d else {
        return Err(super::error_page(
            Some(signed),
            sightline_service::Error::not_found(
                "destination",
                format!("no destination named {name:?}"),
            ),
        ));
    };
    let c = counts(state, signed, name).await.or_page(signed)?;
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for s in &c.suppressed {
        *by_reason
            .entry(
                s.reason
                    .clone()
                    .unwrap_or_else(|| "no reason recorded".into()),
            )
            .or_default() += 1;
    }
    let after = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let dead = destinations::deliveries(
        state.store.as_ref(),
        &signed.actor,
        name,
        Some(DeliveryStatus::Dead),
        after,
        DEAD_SHOWN,
    )
    .await
    .or_page(signed)?;
    let body = html! {
        @if let Some(n) = notice { (n) }
        p { (d.kind.as_str()) " to " code { (d.url) } " · " (state_of(&d))
            " · purposes: " (if d.purposes.is_empty() { "none".to_string() } else { d.purposes.join(", ") }) }
        table #counts {
            caption.sr { "Delivery outcomes" }
            tbody {
                tr { th scope="row" { "Delivered" } td.num #delivered { (shown(c.delivered)) } }
                tr { th scope="row" { "Suppressed" } td.num #suppressed { (shown(c.suppressed.len())) } }
                tr { th scope="row" { "Dead" } td.num #dead { (shown(c.dead)) } }
            }
        }
        @if !by_reason.is_empty() {
            h2 { "Suppressed, by purpose" }
            ul #suppressed-by { @for (reason, n) in &by_reason { li { (reason) ": " (n) } } }
        }
        h2 #dead-h { "Dead letters" }
        @if dead.is_empty() { p { "None." } } @else {
            table #dead-letters aria-labelledby="dead-h" {
                thead { tr { th scope="col" { "Seq" } th scope="col" { "Message id" } th scope="col" { "Attempts" } th scope="col" { "Answer" } th scope="col" { "Why" } th scope="col" { "At" } } }
                tbody {
                    @for x in &dead {
                        tr {
                            td.num { (x.seq) } td { code { (x.message_id) } } td.num { (x.attempts) }
                            td.num { (x.response_code.map_or("—".into(), |c| c.to_string())) }
                            td { (x.reason.clone().unwrap_or_default()) } td { (when(x.at)) }
                        }
                    }
                }
            }
            @if dead.len() == DEAD_SHOWN { @if let Some(l) = dead.last() { a href=(format!("?after={}", l.seq)) { "More dead letters" } } }
            @if signed.may(MARKETING) {
                form method="post" action=(format!("{}/replay", path_of(name))) {
                    (signed.csrf_field())
                    button type="submit" { "Replay the dead letters" }
                }
            }
        }
    };
    let title = format!("Destination {name}");
    Ok(respond(
        StatusCode::OK,
        page(Some(signed), &title, "/destinations", body),
    ))
}

async fn replay(
    State(state): State<ApiState>,
    signed: Signed,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Html {
    signed.check(&Form::parse(&body))?;
    let deliverer = state.deliverer.clone();
    let store = state.store.clone();
    let actor = signed.actor.clone();
    let target = name.clone();
    // A replay sends HTTP requests: on the blocking pool, as the API's.
    let tally = crate::http::off_workers(async move {
        destinations::replay(store.as_ref(), &actor, &deliverer, &target, Replay::Dead).await
    })
    .await;
    let tally = match tally {
        Ok(t) => t,
        Err(failure) => return Err(super::error_page(Some(&signed), failure.into_error())),
    };
    let notice = html! {
        p.shown-once #replayed role="status" {
            "Replayed: " (tally.delivered) " delivered, " (tally.suppressed) " suppressed, " (tally.dead) " dead."
        }
    };
    render(&state, &signed, &name, &HashMap::new(), Some(notice)).await
}
