//! `/audiences`: the audiences with their member counts and the rule editor (a parse error
//! shown at its line and column, as you type and when sent); `/audiences/NAME`: its
//! members a page at a time, its member count over time, and where it is synced.

use super::{encode, page, respond, when, Form, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde_json::Value;
use sightline_service::access::{MARKETING, READERS};
use sightline_service::{audiences, destinations, Error};
use std::collections::{BTreeMap, HashMap};

const MEMBERS: usize = 50;
/// Membership changes read for the chart: a bounded number, oldest first.
const HISTORY_PAGES: usize = 5;
const HISTORY_PAGE: usize = 1000;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/audiences", get(list))
        .route("/audiences/check", get(check))
        .route("/audiences/create", post(create))
        .route("/audiences/{name}", get(audience))
}

/// A rule's parse error, at its place in the text: the line, a caret under the column,
/// and the message. The same parser the service validates with.
fn rule_error(rule: &str) -> Option<Markup> {
    let e = sightline_audience::parse(rule).err()?;
    let line = rule.lines().nth(e.line.saturating_sub(1)).unwrap_or("");
    let caret = format!("{}^", " ".repeat(e.column.saturating_sub(1)));
    Some(html! {
        div.notice.rule-error data-line=(e.line) data-column=(e.column) {
            p { "Line " (e.line) ", column " (e.column) ": " (e.message) }
            pre aria-hidden="true" { (line) "\n" (caret) }
        }
    })
}

/// As you type: the rule's error, or that it parses. Pure: reads nothing.
async fn check(_signed: Signed, Query(query): Query<HashMap<String, String>>) -> Html {
    let rule = query.get("rule").map(String::as_str).unwrap_or("");
    let body = match rule_error(rule) {
        Some(e) => e,
        None if rule.trim().is_empty() => html! {},
        None => html! { p.ok { "The rule parses." } },
    };
    Ok(respond(StatusCode::OK, body))
}

async fn list(State(state): State<ApiState>, signed: Signed) -> Html {
    render(&state, &signed, StatusCode::OK, None, ("", "", "")).await
}

async fn render(
    state: &ApiState,
    signed: &Signed,
    status: StatusCode,
    problem: Option<Markup>,
    (name, rule, sync): (&str, &str, &str),
) -> Html {
    let all = audiences::audiences_with_counts(state.store.as_ref(), &signed.actor, &state.book)
        .await
        .or_page(signed)?;
    let body = html! {
        table #audiences {
            caption.sr { "Audiences" }
            thead { tr { th scope="col" { "Audience" } th scope="col" { "Rule" } th scope="col" { "Members" } } }
            tbody {
                @for a in &all {
                    @let n = a["name"].as_str().unwrap_or("");
                    tr {
                        th scope="row" { a href=(format!("/audiences/{}", encode(n).replace('+', "%20"))) { (n) } }
                        td { code { (a["rule"].as_str().unwrap_or("")) } }
                        td.num { (a["members"].as_i64().map_or("starting".to_string(), |m| m.to_string())) }
                    }
                }
            }
        }
        @if all.is_empty() { p { "No audiences yet." } }
        @if signed.may(MARKETING) {
            h2 #new-audience { "New audience" }
            form.editor method="post" action="/audiences/create" aria-labelledby="new-audience" {
                (signed.csrf_field())
                label for="a-name" { "Name" }
                input #a-name type="text" name="name" required maxlength="100" value=(name);
                label for="a-rule" { "Rule" }
                @if problem.is_some() {
                    textarea #a-rule name="rule" rows="4" required aria-invalid="true" aria-describedby="rule-help rule-error" { (rule) }
                } @else {
                    textarea #a-rule name="rule" rows="4" required aria-describedby="rule-help rule-error" { (rule) }
                }
                p.hint #rule-help { "For example " code { "event \"Order Completed\" count >= 1 within 30d and trait plan = \"pro\"" } }
                div #rule-error role="status" aria-live="polite" data-check="/audiences/check" { @if let Some(p) = &problem { (p) } }
                label for="a-sync" { "Sync to destinations (optional, comma-separated)" }
                input #a-sync type="text" name="sync" value=(sync);
                button type="submit" { "Create audience" }
            }
        }
    };
    Ok(respond(
        status,
        page(Some(signed), "Audiences", "/audiences", body),
    ))
}

async fn create(State(state): State<ApiState>, signed: Signed, body: axum::body::Bytes) -> Html {
    let form = Form::parse(&body);
    signed.check(&form)?;
    let (name, rule, sync) = (form.text("name"), form.text("rule"), form.text("sync"));
    let targets: Vec<String> = sync
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    match audiences::add_audience(state.store.as_ref(), &signed.actor, name, rule, &targets).await {
        Ok(created) => Ok(Redirect::to(&format!(
            "/audiences/{}",
            encode(&created.name).replace('+', "%20")
        ))
        .into_response()),
        Err(Error::Invalid(message)) => {
            let problem =
                rule_error(rule).unwrap_or_else(|| html! { p.notice role="alert" { (message) } });
            render(
                &state,
                &signed,
                StatusCode::BAD_REQUEST,
                Some(problem),
                (name, rule, sync),
            )
            .await
        }
        Err(e) => Err(super::error_page(Some(&signed), e)),
    }
}

async fn audience(
    State(state): State<ApiState>,
    signed: Signed,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Html {
    let definitions = audiences::list_audiences(state.store.as_ref(), &signed.actor)
        .await
        .or_page(&signed)?;
    let Some(definition) = definitions.into_iter().find(|d| d.name == name) else {
        return Err(super::error_page(
            Some(&signed),
            Error::not_found("audience", format!("no audience named {name:?}")),
        ));
    };
    let after = query.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let members = match audiences::members_page(
        state.store.as_ref(),
        &signed.actor,
        &state.book,
        &name,
        after,
        MEMBERS,
    )
    .await
    {
        Ok(page) => Some(page),
        // Defined but not yet picked up by the profiles: in a few seconds.
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(super::error_page(Some(&signed), e)),
    };
    // Count over time: the running sum of enters and exits, per minute.
    let mut changes = Vec::new();
    let mut from = 0;
    for _ in 0..HISTORY_PAGES {
        let rows = audiences::history(
            state.store.as_ref(),
            &signed.actor,
            &name,
            from,
            HISTORY_PAGE,
        )
        .await
        .or_page(&signed)?;
        let full = rows.len() == HISTORY_PAGE;
        if let Some((id, _)) = rows.last() {
            from = *id;
        }
        changes.extend(rows.into_iter().map(|(_, c)| c));
        if !full {
            break;
        }
    }
    let truncated = changes.len() == HISTORY_PAGES * HISTORY_PAGE;
    let mut count = 0i64;
    let mut series: BTreeMap<i64, i64> = BTreeMap::new();
    for c in &changes {
        count += match c["transition"].as_str() {
            Some("entered") => 1,
            Some("exited") => -1,
            _ => 0,
        };
        if let Some(at) = c["at"].as_i64() {
            series.insert(at / 60_000 * 60_000, count);
        }
    }
    let synced = if signed.may(READERS) && !definition.sync.is_empty() {
        destinations::list(state.store.as_ref(), &signed.actor)
            .await
            .or_page(&signed)?
            .into_iter()
            .filter(|d| definition.sync.contains(&d.name))
            .collect()
    } else {
        Vec::new()
    };
    let body = html! {
        p { "Rule: " code #rule { (definition.rule) } }
        p { "Created " (when(definition.created_at)) }
        section aria-labelledby="count-h" {
            h2 #count-h { "Members over time" }
            @if truncated { p.hint { "The first " (changes.len()) " changes." } }
            (count_chart(&series))
        }
        section aria-labelledby="sync-h" {
            h2 #sync-h { "Sync" }
            @if definition.sync.is_empty() { p { "Not synced to any destination." } }
            ul {
                @for d in &definition.sync {
                    @let found = synced.iter().find(|s| &s.name == d);
                    li {
                        a href=(format!("/destinations/{}", encode(d).replace('+', "%20"))) { (d) } ": "
                        @match found {
                            Some(s) if s.disabled => "paused",
                            Some(s) if !s.approved => "awaiting approval",
                            Some(_) => "syncing (each enter and exit is sent as it happens)",
                            None => "no such destination",
                        }
                    }
                }
            }
        }
        section aria-labelledby="members-h" {
            h2 #members-h { "Members" }
            @match &members {
                None => p role="status" { "The profiles are picking this audience up: reload in a few seconds." },
                Some((list, next)) => {
                    @if list.is_empty() { p { "No members." } }
                    ul #members {
                        @for m in list {
                            li {
                                "Profile " (m["id"]) ": "
                                @for (i, id) in m["identifiers"].as_array().into_iter().flatten().enumerate() {
                                    @if i > 0 { ", " }
                                    @let text = format!("{}:{}", id["type"].as_str().unwrap_or(""), id["value"].as_str().unwrap_or(""));
                                    a href=(format!("/profiles/{}", encode(&text).replace("%3A", ":").replace("%40", "@"))) { (text) }
                                }
                            }
                        }
                    }
                    @if let Some(n) = next { a href=(format!("?after={n}")) { "More members" } }
                }
            }
        }
    };
    let title = format!("Audience {name}");
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), &title, "/audiences", body),
    ))
}

/// The member count after each minute with a change, as a step line.
fn count_chart(series: &BTreeMap<i64, i64>) -> Markup {
    if series.is_empty() {
        return html! { p { "No one has entered yet." } };
    }
    let (w, h, pad) = (600.0_f64, 160.0_f64, 30.0_f64);
    let (first, last) = (
        *series.keys().next().unwrap_or(&0),
        *series.keys().last().unwrap_or(&0),
    );
    let span = (last - first).max(60_000) as f64;
    let top = series.values().copied().max().unwrap_or(0).max(1) as f64;
    let x = |t: i64| pad + (t - first) as f64 * (w - 2.0 * pad) / span;
    let y = |n: i64| h - pad - n as f64 * (h - 2.0 * pad) / top;
    let mut points = Vec::new();
    let mut previous = 0;
    for (&t, &n) in series {
        points.push(format!("{:.1},{:.1}", x(t), y(previous)));
        points.push(format!("{:.1},{:.1}", x(t), y(n)));
        previous = n;
    }
    points.push(format!("{:.1},{:.1}", w - pad, y(previous)));
    let values: Vec<Value> = series.values().map(|v| Value::from(*v)).collect();
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="count-title" {
            title #count-title { "Member count from " (when(first)) " to " (when(last)) ": now " (values.last().cloned().unwrap_or_default()) }
            line x1=(pad) y1=(h - pad) x2=(w - pad) y2=(h - pad) stroke="#555" {}
            text x="2" y=(pad) font-size="10" { (top) }
            text x="2" y=(h - pad) font-size="10" { "0" }
            polyline points=(points.join(" ")) fill="none" stroke="#1f77b4" stroke-width="2" {}
        }
    }
}
