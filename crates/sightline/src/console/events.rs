//! `/events`: the live tail. The page shows the newest events that match its filters
//! (source, type, name); a small script asks `/events/feed` for the ones after it every
//! two seconds and puts them on top.

use super::{encode, json_body_of, page, respond, short, when, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde_json::Value;
use sightline_core::{EventType, StoredEvent};
use sightline_service::events;
use std::collections::HashMap;

/// How far back the page looks for matching events, and how many it shows.
const LOOK_BACK: usize = 1000;
const SHOWN: usize = 50;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/events", get(tail))
        .route("/events/feed", get(feed))
}

struct Filter {
    source: Option<String>,
    event_type: Option<String>,
    name: Option<String>,
}

impl Filter {
    fn from(query: &HashMap<String, String>) -> Filter {
        let field = |n: &str| {
            query
                .get(n)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Filter {
            source: field("source"),
            event_type: field("type"),
            name: field("name"),
        }
    }

    fn keeps(&self, event: &StoredEvent, body: &Value) -> bool {
        if self
            .event_type
            .as_deref()
            .is_some_and(|t| t != event.event_type.as_str())
        {
            return false;
        }
        match &self.name {
            Some(wanted) => name_of(event, body)
                .to_lowercase()
                .contains(&wanted.to_lowercase()),
            None => true,
        }
    }

    fn query(&self) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("source", &self.source),
            ("type", &self.event_type),
            ("name", &self.name),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", encode(v)));
            }
        }
        q.join("&")
    }
}

/// What the tail calls an event: a track's event name, a page's or screen's name, else its type.
fn name_of(event: &StoredEvent, body: &Value) -> String {
    let field = match event.event_type {
        EventType::Track => "event",
        EventType::Page | EventType::Screen => "name",
        _ => "",
    };
    body.get(field)
        .and_then(Value::as_str)
        .unwrap_or(event.event_type.as_str())
        .to_string()
}

fn who(body: &Value) -> String {
    ["userId", "anonymousId", "groupId"]
        .iter()
        .find_map(|k| {
            body.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| format!("{k}: {}", short(v)))
        })
        .unwrap_or_default()
}

fn rows(events: &[(StoredEvent, Value)]) -> Markup {
    html! {
        @for (e, body) in events.iter().rev() {
            tr data-seq=(e.seq) {
                td.num { (e.seq) }
                td { (when(e.received_at)) }
                td { "#" (e.source_id) }
                td { (e.event_type.as_str()) }
                td.name { (name_of(e, body)) }
                td { (who(body)) }
                td {
                    details {
                        summary { "JSON" span.sr { " of event " (e.seq) } }
                        (super::json_block(&e.to_json()))
                    }
                }
            }
        }
    }
}

/// Events after `after` that match, read a bounded number of pages.
async fn read(
    state: &ApiState,
    signed: &Signed,
    filter: &Filter,
    mut after: i64,
    pages: usize,
) -> Result<(Vec<(StoredEvent, Value)>, i64), sightline_service::Error> {
    let mut kept = Vec::new();
    for _ in 0..pages {
        let batch = events::page(
            state.store.as_ref(),
            &signed.actor,
            filter.source.as_deref(),
            after,
            LOOK_BACK,
        )
        .await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        let full = batch.len() == LOOK_BACK;
        for e in batch {
            let body = json_body_of(&e);
            if filter.keeps(&e, &body) {
                kept.push((e, body));
            }
        }
        if !full {
            break;
        }
    }
    Ok((kept, after))
}

async fn tail(
    State(state): State<ApiState>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    let filter = Filter::from(&query);
    let last = state
        .store
        .last_seq()
        .await
        .map_err(Into::into)
        .or_page(&signed)?;
    let (mut shown, _) = read(
        &state,
        &signed,
        &filter,
        (last - LOOK_BACK as i64).max(0),
        1,
    )
    .await
    .or_page(&signed)?;
    let skip = shown.len().saturating_sub(SHOWN);
    shown.drain(..skip);
    let feed = format!("/events/feed?{}", filter.query());
    let types = EventType::ALL;
    let body = html! {
        form.filters method="get" action="/events" {
            label for="f-source" { "Source" }
            input #f-source type="text" name="source" value=(filter.source.clone().unwrap_or_default());
            label for="f-type" { "Type" }
            select #f-type name="type" {
                option value="" { "any" }
                @for t in types {
                    @if filter.event_type.as_deref() == Some(t.as_str()) {
                        option value=(t.as_str()) selected { (t.as_str()) }
                    } @else {
                        option value=(t.as_str()) { (t.as_str()) }
                    }
                }
            }
            label for="f-name" { "Name contains" }
            input #f-name type="text" name="name" value=(filter.name.clone().unwrap_or_default());
            button type="submit" { "Filter" }
        }
        p #tail-status role="status" aria-live="polite" { "Live: new events appear on top." }
        table.events {
            caption.sr { "The newest events, newest first" }
            thead { tr {
                th scope="col" { "Seq" } th scope="col" { "Received" } th scope="col" { "Source" }
                th scope="col" { "Type" } th scope="col" { "Name" } th scope="col" { "Who" } th scope="col" { "Event" }
            } }
            tbody #tail data-feed=(feed) data-after=(last) { (rows(&shown)) }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), "Live events", "/events", body),
    ))
}

/// The rows after `after` that match (newest first), and through which seq they were read
/// (`X-Next-After`).
async fn feed(
    State(state): State<ApiState>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    let filter = Filter::from(&query);
    let after = query
        .get("after")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let (kept, next) = read(&state, &signed, &filter, after, 1)
        .await
        .or_page(&signed)?;
    let mut response = rows(&kept).into_string().into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&next.to_string()) {
        h.insert("x-next-after", v);
    }
    Ok(response)
}
