//! `/profiles?q=TYPE:VALUE` (search) and `/profiles/TYPE:VALUE` (one person): identifiers,
//! traits with their source and time, merges in plain words, computed traits, the consent
//! ledger and the timeline.

use super::{encode, json_block, page, respond, short, when, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde_json::Value;
use sightline_service::lookup;
use std::collections::HashMap;

const TIMELINE: usize = 50;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/profiles", get(search))
        .route("/profiles/{id}", get(person))
}

/// `ann@example.com` alone means `email:ann@example.com`.
fn identifier(q: &str) -> String {
    let q = q.trim();
    if !q.contains(':') && q.contains('@') {
        format!("email:{q}")
    } else {
        q.to_string()
    }
}

async fn find(
    state: &ApiState,
    signed: &Signed,
    id: &str,
) -> Result<lookup::Found, sightline_service::Error> {
    let region = state.book.rules().rules.default_region();
    lookup::find(state.store.as_ref(), &signed.actor, region, id).await
}

fn search_form(q: &str) -> Markup {
    html! {
        form.search method="get" action="/profiles" role="search" {
            label for="q" { "Identifier (TYPE:VALUE, or an email)" }
            input #q type="search" name="q" value=(q) placeholder="email:ann@example.com";
            button type="submit" { "Find" }
        }
    }
}

async fn search(
    State(state): State<ApiState>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    // The role is checked by the lookup; without a query, checked here the same way.
    sightline_service::access::require(
        &signed.actor,
        sightline_service::access::PROFILE_READERS,
        "reading profiles",
    )
    .or_page(&signed)?;
    let q = query.get("q").map(String::as_str).unwrap_or("").trim();
    let result = if q.is_empty() {
        html! {}
    } else {
        let id = identifier(q);
        match find(&state, &signed, &id).await {
            Ok(found) => {
                let view = found.view();
                let ids = lookup::identifiers_json(view);
                html! {
                    section aria-labelledby="found" {
                        h2 #found { "Found" }
                        p {
                            a href=(format!("/profiles/{}", encode_path(&id))) { "Profile " (view.identity.id.0) }
                            " — " (ids["identifiers"].as_array().map_or(0, Vec::len)) " identifiers"
                        }
                    }
                }
            }
            Err(sightline_service::Error::NotFound { message, .. }) => html! {
                p.notice role="status" { "No one holds " code { (id) } ". " (message) }
            },
            Err(sightline_service::Error::Invalid(message)) => html! {
                p.notice role="alert" { (message) }
            },
            Err(e) => return Err(super::error_page(Some(&signed), e)),
        }
    };
    let body = html! { (search_form(q)) (result) };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), "Profiles", "/profiles", body),
    ))
}

/// A path segment: `:` and `@` stay readable.
fn encode_path(id: &str) -> String {
    encode(id)
        .replace("%3A", ":")
        .replace("%40", "@")
        .replace('+', "%20")
}

async fn person(
    State(state): State<ApiState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    let found = find(&state, &signed, &id).await.or_page(&signed)?;
    let view = found.view();
    let before = query
        .get("before")
        .and_then(|b| b.parse::<i64>().ok())
        .unwrap_or(i64::MAX);
    let timeline = lookup::events(state.store.as_ref(), &found.timeline, before, TIMELINE)
        .await
        .or_page(&signed)?;
    let computed = lookup::computed_json(state.store.as_ref(), &found)
        .await
        .or_page(&signed)?;
    let member_of = lookup::audiences(&found).or_page(&signed)?;
    let identifiers = lookup::identifiers_json(view);
    let merges = lookup::merges_json(view);
    let consent = lookup::consent_json(view, None);
    let facts = view.facts;
    let body = html! {
        (search_form(""))
        p { "Profile " (view.identity.id.0)
            @if let Some(f) = facts {
                " · " (f.event_count) " events"
                @if let Some(t) = f.first_seen { " · first seen " (when(t)) }
                @if let Some(t) = f.last_seen { " · last seen " (when(t)) }
            }
        }
        section aria-labelledby="ids" {
            h2 #ids { "Identifiers" }
            ul #identifiers {
                @for i in identifiers["identifiers"].as_array().into_iter().flatten() {
                    li { code { (short(&i["type"])) ":" (short(&i["value"])) } }
                }
            }
        }
        section aria-labelledby="merges-h" {
            h2 #merges-h { "How these identifiers were joined" }
            @let sentences = merges["explanation"].as_array().cloned().unwrap_or_default();
            @if sentences.is_empty() {
                p { "Nothing was merged: every identifier came in together." }
            } @else {
                ol #merges { @for s in &sentences { li { (short(s)) } } }
            }
        }
        section aria-labelledby="traits-h" {
            h2 #traits-h { "Traits" }
            table #traits {
                caption.sr { "Traits with their source and time" }
                thead { tr { th scope="col" { "Trait" } th scope="col" { "Value" } th scope="col" { "Source" } th scope="col" { "Set at" } } }
                tbody {
                    @for (name, t) in facts.map(|f| &f.traits).into_iter().flatten() {
                        tr { th scope="row" { (name) } td { (short(&t.value)) } td { "#" (t.source_id) } td { (when(t.at)) } }
                    }
                }
            }
        }
        section aria-labelledby="audiences-h" {
            h2 #audiences-h { "Audiences" }
            @if member_of.is_empty() { p { "In no audience." } }
            ul #audiences {
                @for a in &member_of {
                    li { a href=(format!("/audiences/{}", encode(a).replace('+', "%20"))) { (a) } }
                }
            }
        }
        section aria-labelledby="computed-h" {
            h2 #computed-h { "Computed traits" }
            (object_table("computed", &computed["computed"]))
        }
        section aria-labelledby="consent-h" {
            h2 #consent-h { "Consent" }
            h3 { "In force now" }
            (object_table("consent-state", &consent["state"]))
            h3 { "Ledger" }
            @let history = consent["history"].as_array().cloned().unwrap_or_default();
            @if history.is_empty() { p { "No consent recorded." } }
            ol.timeline #consent {
                @for c in history.iter().rev() {
                    li {
                        strong { (c["at"].as_i64().map(when).unwrap_or_default()) }
                        " from " (short(&c["source"]))
                        @if let Some(j) = c["jurisdiction"].as_str() { " (" (j) ")" }
                        ": " (decisions(&c["decisions"]))
                        details { summary { "Evidence and signals" } (json_block(&serde_json::json!({"evidence": c["evidence"], "signals": c["signals"]}))) }
                    }
                }
            }
        }
        section aria-labelledby="timeline-h" {
            h2 #timeline-h { "Timeline" }
            ol.timeline #timeline {
                @for e in &timeline {
                    @let body = super::json_body_of(e);
                    li {
                        strong { (when(e.received_at)) } " " (e.event_type.as_str())
                        @if let Some(n) = body.get("event").or(body.get("name")).and_then(Value::as_str) { " " em { (n) } }
                        details { summary { "JSON" span.sr { " of event " (e.seq) } } (json_block(&e.to_json())) }
                    }
                }
            }
            @if timeline.len() == TIMELINE {
                @if let Some(last) = timeline.last() {
                    a href=(format!("?before={}", last.seq)) { "Older events" }
                }
            }
        }
    };
    let title = format!("Profile {}", view.identity.id.0);
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), &title, "/profiles", body),
    ))
}

fn decisions(value: &Value) -> String {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(purpose, d)| format!("{purpose} {}", short(d)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn object_table(id: &str, value: &Value) -> Markup {
    match value.as_object() {
        Some(m) if !m.is_empty() => html! {
            table id=(id) {
                tbody { @for (k, v) in m { tr { th scope="row" { (k) } td { (short(v)) } } } }
            }
        },
        _ => html! { p { "None." } },
    }
}
