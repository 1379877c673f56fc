//! `/governance`: journeys, their scans and the findings backlog (assign, accept a risk
//! until a day); `/governance/tags`: the tag inventory and its approval workflow (marketing
//! proposes, security approves or rejects, never their own); `/governance/lineage`: the
//! lineage graph as the report draws it; `/governance/metrics`: the governance metrics per
//! day as charts.

use super::{page, respond, when, Form, Html, OrPage, Signed};
use crate::http::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, PreEscaped};
use serde_json::{json, Value};
use sightline_core::Role;
use sightline_govern::backlog::{BacklogAction, BacklogStatus, Filter};
use sightline_govern::tag::{TagAction, TagSpec, TagStatus};
use sightline_service::access::{require, READERS, TEAMS};
use sightline_service::governance::{lineage, registry};
use sightline_service::Error;

/// The latest scans listed.
const SCANS: usize = 50;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/governance", get(backlog))
        .route("/governance/backlog/{id}/{action}", post(backlog_act))
        .route("/governance/tags", get(tags))
        .route("/governance/tags/propose", post(propose))
        .route("/governance/tags/{id}/{action}", post(decide))
        .route("/governance/lineage", get(lineage_page))
        .route("/governance/vendors", get(vendors))
        .route("/governance/metrics", get(metrics_page))
}

fn reading(signed: &Signed) -> Result<(), Response> {
    require(&signed.actor, READERS, "reading governance records").or_page(signed)
}

fn status_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s.replace('_', " "),
        _ => String::new(),
    }
}

async fn backlog(State(state): State<ApiState>, signed: Signed) -> Html {
    reading(&signed)?;
    let store = state.store.as_ref();
    let journeys = registry::journeys(store).await.or_page(&signed)?;
    let mut scans = store
        .scans(None)
        .await
        .map_err(Error::from)
        .or_page(&signed)?;
    let skip = scans.len().saturating_sub(SCANS);
    scans.drain(..skip);
    let items = registry::backlog_items(
        store,
        &Filter {
            journey: None,
            owner: None,
            severity: None,
            status: None,
            overdue: false,
        },
    )
    .await
    .or_page(&signed)?;
    let open: Vec<_> = items
        .iter()
        .filter(|i| i.value.status == BacklogStatus::Open)
        .collect();
    let others: Vec<_> = items
        .iter()
        .filter(|i| i.value.status != BacklogStatus::Open)
        .collect();
    let acts = signed.may(TEAMS);
    // The backlog's rule (sightline-govern): accepting a risk is security's (or admin's).
    let accepts = matches!(signed.actor.role, Role::Security | Role::Admin);
    let today = registry::today().to_string();
    let row = |i: &registry::Held<sightline_govern::backlog::BacklogItem>| {
        let v = &i.value;
        html! {
            tr data-id=(i.id) {
                td.num { (i.id) }
                td { (v.severity.name()) }
                td { (v.journey) }
                td { (v.message) @if let Some(e) = &v.evidence { br; span.hint { (e) } } }
                td { (v.owner.clone().unwrap_or_default()) }
                td { (v.deadline.clone().unwrap_or_default()) }
                td.status { (status_name(&v.status))
                    @if let Some(a) = &v.acceptance { br; span.hint { "until " (a.expires) " by " (a.by) ": " (a.reason) } } }
                @if acts {
                    td {
                        @if v.status == BacklogStatus::Open {
                            details {
                                summary { "Act" span.sr { " on finding " (i.id) } }
                                form.stack method="post" action=(format!("/governance/backlog/{}/assign", i.id)) {
                                    (signed.csrf_field())
                                    label for=(format!("owner-{}", i.id)) { "Owner" }
                                    input id=(format!("owner-{}", i.id)) type="text" name="owner" value=(v.owner.clone().unwrap_or_default());
                                    label for=(format!("deadline-{}", i.id)) { "Deadline" }
                                    input id=(format!("deadline-{}", i.id)) type="date" name="deadline" value=(v.deadline.clone().unwrap_or_default());
                                    button type="submit" { "Assign" }
                                }
                                @if accepts {
                                form.stack method="post" action=(format!("/governance/backlog/{}/accept", i.id)) {
                                    (signed.csrf_field())
                                    label for=(format!("reason-{}", i.id)) { "Why the risk is accepted" }
                                    input id=(format!("reason-{}", i.id)) type="text" name="reason" required;
                                    label for=(format!("expires-{}", i.id)) { "Accepted until" }
                                    input id=(format!("expires-{}", i.id)) type="date" name="expires" min=(today) required;
                                    button type="submit" { "Accept risk" }
                                }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let head = html! {
        thead { tr {
            th scope="col" { "Id" } th scope="col" { "Severity" } th scope="col" { "Journey" }
            th scope="col" { "Finding" } th scope="col" { "Owner" } th scope="col" { "Deadline" }
            th scope="col" { "Status" } @if acts { th scope="col" { "Action" } }
        } }
    };
    let body = html! {
        section aria-labelledby="open-h" {
            h2 #open-h { "Open findings (" (open.len()) ")" }
            @if open.is_empty() { p { "No open findings." } } @else {
                table #findings-open aria-labelledby="open-h" { (head) tbody { @for i in &open { (row(i)) } } }
            }
        }
        section aria-labelledby="closed-h" {
            h2 #closed-h { "Accepted, fixed and verified (" (others.len()) ")" }
            @if !others.is_empty() {
                table #findings-other aria-labelledby="closed-h" { (head) tbody { @for i in &others { (row(i)) } } }
            }
        }
        section aria-labelledby="scans-h" {
            h2 #scans-h { "Journeys and their scans" }
            ul #journeys { @for j in &journeys { li { (j.value.name) } } }
            @if journeys.is_empty() { p { "No journeys in the registry." } }
            table #scans aria-labelledby="scans-h" {
                thead { tr { th scope="col" { "Scan" } th scope="col" { "Journey" } th scope="col" { "When" } th scope="col" { "Summary" } } }
                tbody {
                    @for s in scans.iter().rev() {
                        tr { td.num { a href={ "/governance/scans/" (s.id) } { (s.id) } } td { (s.journey) } td { (when(s.at)) }
                             td { @if let Some(m) = s.summary.as_object() { @for (k, v) in m { (k) ": " (v) " " } } } }
                    }
                }
            }
            p.hint { "A scan's number opens its report, with the screenshot of each step." }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(&signed), "Governance: findings", "/governance", body),
    ))
}

fn optional(text: &str) -> Option<String> {
    Some(text.to_string()).filter(|t| !t.is_empty())
}

async fn backlog_act(
    State(state): State<ApiState>,
    signed: Signed,
    Path((id, action)): Path<(i64, String)>,
    body: axum::body::Bytes,
) -> Html {
    let form = Form::parse(&body);
    signed.check(&form)?;
    let action = match action.as_str() {
        "assign" => BacklogAction::Assign {
            owner: optional(form.text("owner")),
            deadline: optional(form.text("deadline")),
            impact: None,
        },
        "accept" => BacklogAction::AcceptRisk {
            reason: form.text("reason").to_string(),
            expires: form.text("expires").to_string(),
        },
        _ => {
            return Err(super::error_page(
                Some(&signed),
                Error::not_found("record", "no such action"),
            ))
        }
    };
    registry::backlog_act(state.store.as_ref(), &signed.actor, id, action)
        .await
        .or_page(&signed)?;
    Ok(Redirect::to("/governance").into_response())
}

async fn tags(State(state): State<ApiState>, signed: Signed) -> Html {
    tags_page(&state, &signed, None).await
}

async fn tags_page(state: &ApiState, signed: &Signed, notice: Option<String>) -> Html {
    reading(signed)?;
    let all = registry::tags(state.store.as_ref(), None)
        .await
        .or_page(signed)?;
    let proposes = matches!(signed.actor.role, Role::Marketing | Role::Admin);
    let decides = signed.actor.role == Role::Security;
    let body = html! {
        @if let Some(n) = notice { p.shown-once role="status" { (n) } }
        table #tags {
            caption.sr { "Tag inventory" }
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "Vendor" } th scope="col" { "Purpose" } th scope="col" { "Owner" }
                th scope="col" { "Classification" } th scope="col" { "Consent" } th scope="col" { "Environment" }
                th scope="col" { "Status" } th scope="col" { "Proposed by" } th scope="col" { "Decided by" }
                @if decides { th scope="col" { "Decision" } }
            } }
            tbody {
                @for t in &all {
                    @let v = &t.value;
                    tr data-id=(t.id) {
                        td.num { (t.id) }
                        th scope="row" { (v.spec.vendor) }
                        td { (v.spec.purpose) }
                        td { (v.spec.owner) }
                        td { (status_name(&v.spec.classification)) }
                        td { (v.spec.consent_purpose.clone().unwrap_or_else(|| "none".into())) }
                        td { (status_name(&v.spec.environment)) }
                        td.status { (v.status.name()) }
                        td { (v.proposed_by) }
                        td { (v.decided_by.clone().unwrap_or_default()) }
                        @if decides {
                            td {
                                @if v.status == TagStatus::Proposed && v.proposed_by != signed.actor.name {
                                    form.inline method="post" action=(format!("/governance/tags/{}/approve", t.id)) {
                                        (signed.csrf_field())
                                        label for=(format!("why-{}", t.id)) { "Reason" }
                                        input id=(format!("why-{}", t.id)) type="text" name="reason";
                                        button type="submit" name="decision" value="approve" { "Approve " (v.spec.vendor) }
                                        button type="submit" formaction=(format!("/governance/tags/{}/reject", t.id)) { "Reject" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if all.is_empty() { p { "No tags in the inventory." } }
        @if proposes {
            h2 #propose-h { "Propose a tag" }
            form.editor method="post" action="/governance/tags/propose" aria-labelledby="propose-h" {
                (signed.csrf_field())
                label for="t-vendor" { "Vendor" }
                input #t-vendor type="text" name="vendor" required;
                label for="t-purpose" { "Purpose" }
                input #t-purpose type="text" name="purpose" required;
                label for="t-owner" { "Owner" }
                input #t-owner type="text" name="owner" required;
                label for="t-class" { "Classification" }
                select #t-class name="classification" {
                    option value="essential" { "essential" }
                    option value="optional" selected { "optional" }
                    option value="questionable" { "questionable" }
                }
                label for="t-consent" { "Consent purpose it needs (none for essential tags)" }
                input #t-consent type="text" name="consent_purpose" placeholder="analytics";
                label for="t-env" { "Environment" }
                select #t-env name="environment" {
                    option value="production" { "production" }
                    option value="staging" { "staging" }
                }
                label for="t-reason" { "Why" }
                input #t-reason type="text" name="reason";
                button type="submit" { "Propose tag" }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(Some(signed), "Governance: tags", "/governance/tags", body),
    ))
}

async fn propose(State(state): State<ApiState>, signed: Signed, body: axum::body::Bytes) -> Html {
    let form = Form::parse(&body);
    signed.check(&form)?;
    // The service's own check, before the form is read: a role that may not change tags
    // gets 403 whatever it sent.
    require(&signed.actor, TEAMS, "changing tags").or_page(&signed)?;
    let spec: TagSpec = serde_json::from_value(json!({
        "vendor": form.text("vendor"),
        "purpose": form.text("purpose"),
        "owner": form.text("owner"),
        "classification": form.text("classification"),
        "consent_purpose": optional(form.text("consent_purpose")),
        "environment": form.text("environment"),
    }))
    .map_err(|e| Error::invalid(format!("the tag is not valid: {e}")))
    .or_page(&signed)?;
    let done = registry::tag_action(
        state.store.as_ref(),
        &signed.actor,
        None,
        TagAction::Propose(spec),
        form.text("reason"),
    )
    .await
    .or_page(&signed)?;
    let notice = format!(
        "Tag {} ({}) proposed: a security reviewer decides.",
        done.id, done.value.spec.vendor
    );
    tags_page(&state, &signed, Some(notice)).await
}

async fn decide(
    State(state): State<ApiState>,
    signed: Signed,
    Path((id, action)): Path<(i64, String)>,
    body: axum::body::Bytes,
) -> Html {
    let form = Form::parse(&body);
    signed.check(&form)?;
    let action = match action.as_str() {
        "approve" => TagAction::Approve,
        "reject" => TagAction::Reject,
        _ => {
            return Err(super::error_page(
                Some(&signed),
                Error::not_found("record", "no such action"),
            ))
        }
    };
    let done = registry::tag_action(
        state.store.as_ref(),
        &signed.actor,
        Some(id),
        action,
        form.text("reason"),
    )
    .await
    .or_page(&signed)?;
    let notice = format!("Tag {} is now {}.", done.id, done.value.status.name());
    tags_page(&state, &signed, Some(notice)).await
}

async fn lineage_page(State(state): State<ApiState>, signed: Signed) -> Html {
    reading(&signed)?;
    let evidence = lineage::gather(state.store.as_ref())
        .await
        .map_err(Error::Internal)
        .or_page(&signed)?;
    let graph = sightline_govern::lineage::build(&evidence);
    let drawn = sightline_govern::report::lineage_html(&graph);
    let body = html! {
        p.hint { "Also as OpenLineage, DOT or Mermaid: " code { "GET /api/v1/lineage?format=dot" } "." }
        div.lineage tabindex="0" role="region" aria-label="Lineage diagram and its edges" { (PreEscaped(drawn)) }
    };
    Ok(respond(
        StatusCode::OK,
        page(
            Some(&signed),
            "Governance: lineage",
            "/governance/lineage",
            body,
        ),
    ))
}

/// Vendor risk: each vendor's rating, DPA, fourth parties seen by scans, and its reviews.
async fn vendors(State(state): State<ApiState>, signed: Signed) -> Html {
    reading(&signed)?;
    let all = registry::vendors(state.store.as_ref(), false)
        .await
        .or_page(&signed)?;
    let list: Vec<Value> = all.iter().map(registry::vendor_json).collect();
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(super::short).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    let body = html! {
        p.hint { "Records are kept with " code { "sightline vendors put" } "; scans add the fourth parties each vendor loads." }
        table #vendors {
            caption.sr { "Vendor risk" }
            thead { tr {
                th scope="col" { "Vendor" } th scope="col" { "Rating" } th scope="col" { "DPA" } th scope="col" { "Data shared" }
                th scope="col" { "Fourth parties" } th scope="col" { "Last review" } th scope="col" { "Next review" }
            } }
            tbody {
                @for v in &list {
                    tr {
                        th scope="row" { (text(&v["vendor"])) }
                        td { (text(&v["rating"])) }
                        td { (text(&v["dpa"])) }
                        td { (text(&v["data_shared"])) }
                        td { (text(&v["sub_processors"])) }
                        td { (text(&v["last_review"])) }
                        td { (text(&v["next_review"])) @if v["overdue"] == Value::Bool(true) { " " span.bad { "overdue" } } }
                    }
                }
            }
        }
        @if list.is_empty() { p { "No vendor records." } }
    };
    Ok(respond(
        StatusCode::OK,
        page(
            Some(&signed),
            "Governance: vendor risk",
            "/governance/vendors",
            body,
        ),
    ))
}

/// The governance metrics per day (`GET /api/v1/governance/metrics`) as two charts, counts
/// and shares, each with its figures in a table.
async fn metrics_page(State(state): State<ApiState>, signed: Signed) -> Html {
    reading(&signed)?;
    let store = state.store.clone();
    // It brings the stored scans' metrics forward first: on the blocking pool, as the API's.
    let series = crate::http::off_workers(async move {
        sightline_service::governance::metrics::series(store.as_ref(), None).await
    })
    .await
    .map_err(|failure| super::error_page(Some(&signed), failure.into_error()))?;
    let days = &series.days;
    let count = |f: fn(&sightline_govern::metrics::DayMetrics) -> Option<usize>| {
        days.iter()
            .map(|d| f(d).map(|n| n as f64))
            .collect::<Vec<_>>()
    };
    let counts = [
        ("Tags", count(|d| d.tag_count)),
        ("Vendors", count(|d| d.vendor_count)),
        ("Undocumented vendors", count(|d| d.undocumented_vendors)),
        ("Tags before consent", count(|d| d.tags_before_consent)),
    ];
    let shares = [
        (
            "Events with a consent signal",
            days.iter().map(|d| d.consent_quality).collect::<Vec<_>>(),
        ),
        (
            "Scripts blocked",
            days.iter().map(|d| d.blocked_script_rate).collect(),
        ),
    ];
    let labels: Vec<&str> = days.iter().map(|d| d.day.as_str()).collect();
    let body = html! {
        p.hint { "Per day, the figures of each journey's latest scan up to that day, and the share of events carrying a consent signal. Also as JSON: " code { "GET /api/v1/governance/metrics" } "." }
        @if days.is_empty() {
            p { "No scans and no events yet." }
        } @else {
            h2 #counts-title { "Tags and vendors" }
            (day_chart("counts", &labels, &counts, false))
            h2 #shares-title { "Consent signal and blocked scripts" }
            (day_chart("shares", &labels, &shares, true))
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(
            Some(&signed),
            "Governance: metrics",
            "/governance/metrics",
            body,
        ),
    ))
}

/// One line per series over the days (a day without a figure is left out of its line),
/// then the same figures as a table. `shares` are fractions shown as percentages.
fn day_chart(
    id: &str,
    days: &[&str],
    lines: &[(&str, Vec<Option<f64>>)],
    shares: bool,
) -> maud::Markup {
    use super::overview::COLOURS;
    let (w, h, pad) = (600.0_f64, 200.0_f64, 30.0_f64);
    let top = match shares {
        true => 1.0,
        false => lines
            .iter()
            .flat_map(|(_, v)| v.iter().flatten().copied())
            .fold(1.0_f64, f64::max),
    };
    let x = |i: usize| pad + i as f64 * (w - 2.0 * pad) / (days.len().max(2) - 1) as f64;
    let y = |v: f64| h - pad - v * (h - 2.0 * pad) / top;
    let shown = |v: f64| match shares {
        true => format!("{:.1}%", v * 100.0),
        false => format!("{v}"),
    };
    html! {
        svg.chart #(format!("{id}-chart")) viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby=(format!("{id}-title")) {
            line x1=(pad) y1=(h - pad) x2=(w - pad) y2=(h - pad) stroke="#555" {}
            line x1=(pad) y1=(pad) x2=(pad) y2=(h - pad) stroke="#555" {}
            text x="2" y=(pad) font-size="10" { (shown(top)) }
            text x="2" y=(h - pad) font-size="10" { "0" }
            @if let Some(first) = days.first() {
                text x=(pad) y=(h - 8.0) font-size="10" { (first) }
            }
            @if let (true, Some(last)) = (days.len() > 1, days.last()) {
                text x=(w - pad - 60.0) y=(h - 8.0) font-size="10" { (last) }
            }
            @for (i, (name, values)) in lines.iter().enumerate() {
                @let colour = COLOURS[i % COLOURS.len()];
                @let points: Vec<(f64, f64)> = values.iter().enumerate().filter_map(|(d, v)| v.map(|v| (x(d), y(v)))).collect();
                polyline.series data-series=(name) points=(points.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect::<Vec<_>>().join(" ")) fill="none" stroke=(colour) stroke-width="2" {}
                // A dot per day, so that a day alone (no line to draw) shows too.
                @for (px, py) in &points {
                    circle cx=(format!("{px:.1}")) cy=(format!("{py:.1}")) r="3" fill=(colour) {}
                }
            }
        }
        ul.legend {
            @for (i, (name, _)) in lines.iter().enumerate() {
                li { span.swatch data-colour=(i % COLOURS.len()) {} (name) }
            }
        }
        table.figures #(format!("{id}-table")) {
            caption.sr { "The figures of the chart above, per day" }
            thead { tr { th scope="col" { "Day" } @for (name, _) in lines { th scope="col" { (name) } } } }
            tbody {
                @for (d, day) in days.iter().enumerate() {
                    tr { th scope="row" { (day) } @for (_, values) in lines { td.num { @if let Some(v) = values[d] { (shown(v)) } } } }
                }
            }
        }
    }
}
