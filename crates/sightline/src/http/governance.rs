//! The governance half under `/api/v1`: scans, journeys, tags, backlog, vendors, lineage,
//! metrics and the report. Reads are open to every role but `privacy` ([`Reader`]); what a
//! change needs is checked by the registry's services.

use super::contract::shape::{
    any, array, boolean, deleted, held, integer, nullable, number, one_of, string, strings, text,
    time, Fields,
};
use super::contract::{
    json, json_of, list_of, list_with, object, shape, Access, Doc, Payload, Routes,
};
use super::{bad_request, created, json_body, ok, Acting, Answer, ApiState, Path, Reader};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use sightline_collect::error;
use sightline_govern::backlog::{BacklogAction, BacklogStatus, Filter, Severity};
use sightline_govern::journey::Journey;
use sightline_govern::tag::{Environment, TagAction, TagSpec, TagStatus};
use sightline_govern::vendor::VendorRisk;
use sightline_service::access::{MARKETING, READERS, SECURITY, TEAMS};
use sightline_service::governance::metrics::{self, Attribution};
use sightline_service::governance::registry::{self, Held};
use sightline_service::governance::{lineage, report, schedule};
use sightline_service::Error;
use std::collections::HashMap;
use utoipa::openapi::Schema;

/// A journey file sent to `POST /api/v1/journeys/import` may be at most this big.
const MAX_JOURNEY_BYTES: usize = 256 * 1024;

pub(super) fn routes() -> Routes {
    let tag = "governance";
    // Reads pass through [`Reader`], which checks `READERS`.
    let read = |summary: &'static str, answer: Payload| {
        Doc::new(tag, summary, Access::Token(READERS), answer)
    };
    let change = |summary: &'static str, roles, answer: Schema| {
        Doc::new(tag, summary, Access::Token(roles), json(answer))
    };
    let journey_body = || {
        object("`{\"name\":…,\"steps\":[{\"name\":…,\"url\":…}],…}`: a customer journey to scan")
    };
    let schedule_body = || {
        object("`{\"journey\":NAME,\"every\":\"24h\",\"scenarios\":[…],\"alert\":DESTINATION,\"allow_private_network\":false}`: scenarios, alert and allow_private_network (security or admin) are optional")
    };
    let attribution_query = |doc: Doc| {
        doc.query(
            "conversion",
            "Joins attribution variance for this conversion event",
        )
        .query("value_property", "The conversion's value property")
        .query("lookback", "How far back touches count, e.g. `30d`")
    };
    Routes::new()
        .get(
            "/api/v1/scans",
            scans,
            read("Every scan recorded", list_with("scans", scan_row())),
        )
        .get(
            "/api/v1/scans/{id}",
            scan_report,
            read(
                "A stored scan's report, as `sightline scan` writes report.json",
                json(scan()),
            )
            .path_id("id", "The scan's id (`GET /api/v1/scans`)"),
        )
        .get(
            "/api/v1/scans/{id}/screenshots/{scenario}/{file}",
            scan_screenshot,
            read(
                "A stored scan's screenshot of a step, by the path its report names (`screenshots/SCENARIO/FILE`)",
                Payload::Other("image/png", "The viewport after the step"),
            )
            .path_id("id", "The scan's id")
            .path("scenario", "The scenario's directory in the step's screenshot path")
            .path("file", "The file in the step's screenshot path"),
        )
        .get(
            "/api/v1/schedules",
            schedules,
            read(
                "The scheduled scans (the config file's `[[schedule]]` and those made through the API) and where each stands",
                list_with("schedules", schedule()),
            ),
        )
        .post(
            "/api/v1/schedules",
            add_schedule,
            change("Schedules a journey's scan (applies without a restart)", TEAMS, schedule())
                .status(201)
                .body(schedule_body()),
        )
        .put(
            "/api/v1/schedules/{journey}",
            replace_schedule,
            change(
                "Replaces a schedule made through the API (the body names the same journey)",
                TEAMS,
                schedule(),
            )
            .body(schedule_body()),
        )
        .delete(
            "/api/v1/schedules/{journey}",
            delete_schedule,
            change(
                "Deletes a schedule made through the API",
                TEAMS,
                deleted(),
            ),
        )
        .post(
            "/api/v1/schedules/{journey}/run",
            run_schedule,
            change(
                "Asks for a scheduled journey's scan now (the node running the schedules starts it within seconds)",
                TEAMS,
                Fields::described("The scan asked for")
                    .req("journey", string())
                    .req("requested_at", time())
                    .schema(),
            )
            .status(202),
        )
        .get(
            "/api/v1/journeys",
            journeys,
            read("Every journey", list_with("journeys", journey_held())),
        )
        .post(
            "/api/v1/journeys",
            add_journey,
            change("Adds a journey", MARKETING, journey_held())
                .status(201)
                .body(journey_body()),
        )
        .post(
            "/api/v1/journeys/import",
            import_journey,
            change("Imports a scanner journey file (TOML)", MARKETING, journey_held()).body(
                Payload::Other("application/toml", "A journey file as `sightline scan` reads it"),
            ),
        )
        .get(
            "/api/v1/journeys/{name}",
            journey,
            read("A journey", json(journey_held())),
        )
        .put(
            "/api/v1/journeys/{name}",
            replace_journey,
            change("Replaces a journey (the body names the same journey)", MARKETING, journey_held())
                .body(journey_body()),
        )
        .delete(
            "/api/v1/journeys/{name}",
            delete_journey,
            change("Deletes a journey", MARKETING, deleted()),
        )
        .get(
            "/api/v1/journeys/{name}/export",
            export_journey,
            read(
                "A journey as a scanner journey file",
                Payload::Other("application/toml", "The journey file"),
            ),
        )
        .get(
            "/api/v1/tags",
            tags,
            read("The tag inventory", list_with("tags", tag_held("A tag as held, with its status")))
                .query("status", "`proposed`, `approved`, `rejected` or `retired`"),
        )
        .post(
            "/api/v1/tags",
            propose,
            change(
                "Proposes a tag; a security person approves it",
                MARKETING,
                tag_held("The tag as proposed"),
            )
            .status(201)
            .body(json_of::<Proposal>()),
        )
        .get(
            "/api/v1/tags/log",
            whole_log,
            read("The change log of every tag", list_of("log", "A change: who, what, why, when")),
        )
        .post(
            "/api/v1/tags/adopt",
            adopt,
            change(
                "Proposes a tag for each vendor a scan saw that the inventory lacks",
                MARKETING,
                Fields::described("The tags proposed, one per vendor the inventory lacked")
                    .req("proposed", array(tag_held("A tag as proposed")))
                    .schema(),
            )
            .body(json_of::<Adopt>()),
        )
        .get(
            "/api/v1/tags/{id}/log",
            tag_log,
            read("A tag's change log", list_of("log", "A change: who, what, why, when"))
                .path_id("id", "The tag's id"),
        )
        .post(
            "/api/v1/tags/{id}/{action}",
            decide,
            change(
                "Approves, rejects or retires a tag (the workflow decides which action is whose)",
                TEAMS,
                tag_held("The tag as it now stands"),
            )
            .path_id("id", "The tag's id")
            .path_one_of("action", "The action", &["approve", "reject", "retire"])
            .body(json_of::<Reason>()),
        )
        .get(
            "/api/v1/backlog",
            backlog,
            read("The findings backlog", list_with("items", finding()))
                .query("journey", "Only this journey's findings")
                .query("owner", "Only this owner's")
                .query("severity", "`low`, `medium`, `high` or `critical`")
                .query("status", "`open`, `accepted_risk`, `fixed` or `verified`")
                .query("overdue", "`true`: only those past their deadline"),
        )
        .post(
            "/api/v1/backlog/{id}",
            backlog_act,
            change(
                "Acts on a finding: assign, fix, accept the risk, reopen",
                TEAMS,
                finding(),
            )
            .path_id("id", "The finding's id")
            .body(object(
                "`{\"action\":\"assign\",\"owner\":…}`, `{\"action\":\"fix\"}`, \
                 `{\"action\":\"accept_risk\",\"reason\":…,\"expires\":…}` or `{\"action\":\"reopen\",\"reason\":…}`",
            )),
        )
        .get(
            "/api/v1/vendors",
            vendors,
            read("Vendor risk records", list_with("vendors", vendor()))
                .query("overdue", "`true`: only those due for review"),
        )
        .post(
            "/api/v1/vendors",
            put_vendor,
            change("Records a vendor's risk", SECURITY, vendor()).body(object(
                "`{\"vendor\":…,\"rating\":\"low|medium|high|critical\",…}`",
            )),
        )
        .get(
            "/api/v1/lineage",
            lineage,
            read(
                "The lineage graph from sources to destinations",
                Payload::Other(
                    "application/x-ndjson",
                    "OpenLineage events as JSON lines (the default), or Graphviz `dot` or Mermaid text",
                ),
            )
            .query("format", "`openlineage` (default), `dot` or `mermaid`"),
        )
        .get(
            "/api/v1/governance/metrics",
            governance_metrics,
            attribution_query(read(
                "Governance metrics over time",
                json(series()),
            )),
        )
        .get(
            "/api/v1/report",
            report,
            attribution_query(read(
                "The governance report",
                Payload::Other("text/html", "A self-contained HTML page"),
            )),
        )
}

/// A stored scan as listed (`ScanRow`).
fn scan_row() -> Schema {
    let summary = Fields::described("What `scan list` shows without reading the report")
        .req("incomplete", boolean())
        .req("scenarios", strings())
        .req("findings", integer())
        .req("findings_by_severity", shape::map_of("severity", integer()))
        .req("vendors", integer());
    Fields::described("A stored scan")
        .req("id", integer())
        .req("journey", string())
        .req(
            "at",
            shape::about(integer(), "When it was stored (ms since the epoch)"),
        )
        .req("summary", summary.schema())
        .schema()
}

/// A scan report as `sightline scan` writes report.json (`docs/report.md`).
fn scan() -> Schema {
    let vendor = Fields::new()
        .req("name", string())
        .req("category", string())
        .req("requests", integer())
        .open();
    let step = Fields::described("A step as scanned")
        .req("name", string())
        .req("url", string())
        .req("request_count", integer())
        .req("third_party_count", integer())
        .req("bytes", integer())
        .req("vendors", array(vendor.schema()))
        .req("timing", shape::free("Load timings (ms)"))
        .opt("error", string())
        .opt("pending", array(shape::free("A request still in flight")))
        .opt(
            "screenshot",
            text("`screenshots/SCENARIO/FILE.png`: `GET /api/v1/scans/{id}/` and this path"),
        )
        .req("requests", array(shape::free("A request seen")))
        .req("cookies", array(shape::free("A cookie set")))
        .opt(
            "local_storage",
            array(shape::free("A localStorage key set")),
        );
    let scenario = Fields::new()
        .req("name", string())
        .req("incomplete", nullable(text("Why it stopped early")))
        .opt("banner", shape::free("The consent banner as operated"))
        .req("steps", array(step.schema()));
    let found = Fields::new()
        .req("kind", string())
        .req("severity", one_of(&SEVERITIES))
        .req("scenario", nullable(string()))
        .req("step", nullable(string()))
        .req("vendor", string())
        .req("message", string())
        .req(
            "evidence",
            shape::free("The request, its initiator chain, a cookie"),
        );
    Fields::described("A scan report")
        .req("schema_version", integer())
        .req("journey", string())
        .req("incomplete", boolean())
        .req("duration_ms", integer())
        .req("scenarios", array(scenario.schema()))
        .req("findings", array(found.schema()))
        .opt(
            "templates",
            array(shape::free("A crawl's findings by page template")),
        )
        .schema()
}

/// A schedule and where it stands (`schedule::shown`).
fn schedule() -> Schema {
    Fields::described("A schedule and where it stands")
        .req("journey", string())
        .req("every", text("The period, e.g. `1day`, `12h`"))
        .req("scenarios", strings())
        .req("alert", nullable(string()))
        .req("allow_private_network", boolean())
        .req("origin", one_of(&["config", "api"]))
        .req(
            "last_scan",
            nullable(
                Fields::new()
                    .req("id", integer())
                    .req("at", time())
                    .schema(),
            ),
        )
        .req("next_run", time())
        .req("run_requested", boolean())
        .schema()
}

/// A journey as held (`Held<Journey>`).
fn journey_held() -> Schema {
    let step = Fields::new()
        .req("name", string())
        .req("url", string())
        .opt("actions", array(any("A scanner action")));
    held(
        Fields::described("A journey as held: its id, version and definition")
            .req("name", string())
            .req("steps", array(step.schema()))
            .opt("settings", shape::free("The scanner's settings for it")),
    )
}

/// A tag as held (`Held<Tag>`, its spec flattened).
fn tag_held(description: &str) -> Schema {
    let step = Fields::new().req("journey", string()).req("step", string());
    held(
        Fields::described(description)
            .req("vendor", string())
            .req("purpose", string())
            .req("owner", string())
            .req("steps", array(step.schema()))
            .req("data_collected", strings())
            .req("consent_purpose", nullable(string()))
            .req(
                "classification",
                one_of(&["essential", "optional", "questionable"]),
            )
            .req("environment", one_of(&["production", "staging"]))
            .req("review_date", nullable(text("YYYY-MM-DD")))
            .req(
                "status",
                one_of(&["proposed", "approved", "rejected", "retired"]),
            )
            .req("revision", integer())
            .req("proposed_by", string())
            .req("decided_by", nullable(string())),
    )
}

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const BACKLOG_STATUSES: [&str; 4] = ["open", "accepted_risk", "fixed", "verified"];

/// A backlog item as shown (`registry::backlog_json`).
fn finding() -> Schema {
    let key = Fields::new()
        .req("kind", string())
        .req("scenario", nullable(string()))
        .req("step", nullable(string()))
        .req("vendor", string());
    let acceptance = Fields::new()
        .req("reason", string())
        .req("expires", text("YYYY-MM-DD"))
        .req("by", string());
    let transition = Fields::new()
        .req("at", integer())
        .req("from", nullable(one_of(&BACKLOG_STATUSES)))
        .req("to", one_of(&BACKLOG_STATUSES))
        .req("scan", nullable(integer()))
        .req("by", nullable(string()))
        .req("note", string());
    held(
        Fields::described("A finding with its owner, deadline and status")
            .req("journey", string())
            .req("finding", key.schema())
            .req("severity", one_of(&SEVERITIES))
            .req("message", string())
            .req("evidence", nullable(string()))
            .req("owner", nullable(string()))
            .req("deadline", nullable(text("YYYY-MM-DD")))
            .req("impact", nullable(string()))
            .req("status", one_of(&BACKLOG_STATUSES))
            .req("acceptance", nullable(acceptance.schema()))
            .req("first_seen_scan", integer())
            .req("last_seen_scan", integer())
            .req("last_checked_scan", integer())
            .req("history", array(transition.schema()))
            .req("overdue", boolean()),
    )
}

/// A vendor's risk record as shown (`registry::vendor_json`).
fn vendor() -> Schema {
    held(
        Fields::described("The vendor's record, with its next review and whether it is overdue")
            .req("vendor", string())
            .req("data_shared", strings())
            .req("purposes", strings())
            .req(
                "dpa",
                one_of(&["missing", "requested", "signed", "not_needed"]),
            )
            .req("sub_processors", strings())
            .req("last_review", nullable(text("YYYY-MM-DD")))
            .req("review_every_days", integer())
            .req("rating", one_of(&SEVERITIES))
            .req("notes", nullable(string()))
            .req(
                "next_review",
                nullable(text("YYYY-MM-DD; none when never reviewed")),
            )
            .req("overdue", boolean()),
    )
}

/// The governance metrics (`metrics::Series::to_json`).
fn series() -> Schema {
    let scan = Fields::described("One scan's figures")
        .req("scan_id", integer())
        .req("journey", string())
        .req("at", integer())
        .req("day", text("YYYY-MM-DD"))
        .req("tag_count", integer())
        .req("vendor_count", integer())
        .req("undocumented_vendors", integer())
        .req("tags_before_consent", integer())
        .req("blocked_script_rate", nullable(number()))
        .req("third_party_latency_ms", nullable(number()))
        .req("vendor_reduction", integer())
        .req("tags", strings())
        .req("vendors", strings())
        .req("undocumented", strings())
        .req("before_consent", strings());
    let day = Fields::described("One day's figures")
        .req("day", text("YYYY-MM-DD"))
        .req("scans", integer())
        .req("journeys", integer())
        .req("tag_count", nullable(integer()))
        .req("vendor_count", nullable(integer()))
        .req("undocumented_vendors", nullable(integer()))
        .req("tags_before_consent", nullable(integer()))
        .req("blocked_script_rate", nullable(number()))
        .req("third_party_latency_ms", nullable(number()))
        .req("vendor_reduction", nullable(integer()))
        .req("events", integer())
        .req("with_consent_signal", integer())
        .req("consent_quality", nullable(number()))
        .req("attribution_variance", nullable(number()));
    Fields::described("The series per scan and per day: tags, vendors, consent, variance")
        .req("scans", array(scan.schema()))
        .req("days", array(day.schema()))
        .schema()
}

/// `?format=openlineage` (default; JSON lines), `dot` or `mermaid`.
async fn lineage(
    _: Reader,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let format = lineage::Format::parse(query.get("format").map_or("openlineage", String::as_str))?;
    let text = lineage::render(state.store.as_ref(), format).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], text).into_response())
}

/// `?conversion=EVENT[&value_property=P][&lookback=30d]` joins attribution variance.
fn attribution(state: &ApiState, query: &HashMap<String, String>) -> Option<Attribution> {
    let conversion = query.get("conversion").filter(|c| !c.is_empty())?;
    Some(Attribution {
        question: sightline_service::attribution::Question {
            conversion: conversion.clone(),
            value_property: query.get("value_property").cloned(),
            lookback: query.get("lookback").cloned(),
            ..Default::default()
        },
        grouper: sightline_attribution::ChannelGrouper::default(),
        rules: state.book.rules().clone(),
    })
}

async fn governance_metrics(
    _: Reader,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let attribution = attribution(&state, &query);
    let series =
        super::off_workers(async move { metrics::series(state.store.as_ref(), attribution).await })
            .await?;
    ok(series.to_json())
}

async fn report(
    _: Reader,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let attribution = attribution(&state, &query);
    let html =
        super::off_workers(async move { report::render(state.store.as_ref(), attribution).await })
            .await?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

fn list<T: serde::Serialize>(key: &str, items: Vec<Held<T>>) -> Value {
    json!({ key: items.iter().map(Held::to_json).collect::<Vec<_>>() })
}

/// A query parameter read with `parse`, or a 400 naming the values it takes.
fn choice<T>(
    query: &HashMap<String, String>,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    values: &str,
) -> Result<Option<T>, super::Failure> {
    match query.get(name) {
        None => Ok(None),
        Some(text) => parse(text)
            .map(Some)
            .ok_or_else(|| bad_request(format!("`{name}` must be {values}, not {text:?}"))),
    }
}

const JOURNEY_HINT: &str = "send {\"name\":…,\"steps\":[{\"name\":…,\"url\":…}]}";

async fn scans(_: Reader, State(state): State<ApiState>) -> Answer {
    let listed = state.store.scans(None).await.map_err(Error::from)?;
    ok(json!({ "scans": listed }))
}

async fn scan_report(_: Reader, State(state): State<ApiState>, Path(id): Path<i64>) -> Answer {
    // Answered as stored: the report is the scanner's own JSON, and can be megabytes.
    let report = registry::stored_report_text(state.store.as_ref(), id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], report).into_response())
}

async fn scan_screenshot(
    _: Reader,
    State(state): State<ApiState>,
    Path((id, scenario, file)): Path<(i64, String, String)>,
) -> Answer {
    let png = registry::stored_screenshot(state.store.as_ref(), id, &scenario, &file).await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

async fn schedules(Acting(actor): Acting, State(state): State<ApiState>) -> Answer {
    ok(schedule::list(state.store.as_ref(), &actor, &state.schedules.get()).await?)
}

const SCHEDULE_HINT: &str = "send {\"journey\":…,\"every\":\"24h\"}";

async fn add_schedule(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let definition: schedule::Definition = json_body(&body, SCHEDULE_HINT)?;
    created(
        schedule::put(
            state.store.as_ref(),
            &actor,
            &state.schedules.get(),
            definition,
            false,
        )
        .await?,
    )
}

async fn replace_schedule(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(journey): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let definition: schedule::Definition = json_body(&body, SCHEDULE_HINT)?;
    if definition.journey != journey {
        return Err(bad_request(format!(
            "the body names journey {:?}, the path {journey:?}",
            definition.journey
        )));
    }
    ok(schedule::put(
        state.store.as_ref(),
        &actor,
        &state.schedules.get(),
        definition,
        true,
    )
    .await?)
}

async fn delete_schedule(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(journey): Path<String>,
) -> Answer {
    schedule::delete(
        state.store.as_ref(),
        &actor,
        &state.schedules.get(),
        &journey,
    )
    .await?;
    ok(json!({ "deleted": journey }))
}

async fn run_schedule(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(journey): Path<String>,
) -> Answer {
    let asked = schedule::request_run(
        state.store.as_ref(),
        &actor,
        &state.schedules.get(),
        &journey,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(asked)).into_response())
}

async fn journeys(_: Reader, State(state): State<ApiState>) -> Answer {
    ok(list(
        "journeys",
        registry::journeys(state.store.as_ref()).await?,
    ))
}

async fn journey(_: Reader, State(state): State<ApiState>, Path(name): Path<String>) -> Answer {
    ok(registry::journey(state.store.as_ref(), &name)
        .await?
        .to_json())
}

async fn add_journey(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let journey: Journey = json_body(&body, JOURNEY_HINT)?;
    let put = registry::put_journey(state.store.as_ref(), &actor, journey, false).await?;
    created(put.to_json())
}

async fn replace_journey(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let journey: Journey = json_body(&body, JOURNEY_HINT)?;
    if journey.name.trim() != name {
        return Err(bad_request(format!(
            "the body names journey {:?}, the path {name:?}",
            journey.name
        )));
    }
    let put = registry::put_journey(state.store.as_ref(), &actor, journey, true).await?;
    ok(put.to_json())
}

async fn delete_journey(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Answer {
    registry::delete_journey(state.store.as_ref(), &actor, &name).await?;
    ok(json!({ "deleted": name }))
}

/// `POST /api/v1/journeys/import` with a scanner journey file (TOML) as the body.
async fn import_journey(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    if body.len() > MAX_JOURNEY_BYTES {
        return Ok(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a journey file may be at most {MAX_JOURNEY_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| bad_request("send the journey file as UTF-8 TOML"))?;
    ok(registry::import_journey(state.store.as_ref(), &actor, text)
        .await?
        .to_json())
}

async fn export_journey(
    _: Reader,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Answer {
    let held = registry::journey(state.store.as_ref(), &name).await?;
    let text = held.value.to_scanner_toml().map_err(Error::from)?;
    Ok(([(header::CONTENT_TYPE, "application/toml")], text).into_response())
}

async fn tags(
    _: Reader,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let status = choice(
        &query,
        "status",
        TagStatus::parse,
        "proposed, approved, rejected or retired",
    )?;
    ok(list(
        "tags",
        registry::tags(state.store.as_ref(), status).await?,
    ))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Proposal {
    /// `{"vendor":…,"purpose":…,"owner":…,"classification":…,"consent_purpose":…,"environment":…}`
    #[schema(value_type = Object)]
    tag: TagSpec,
    #[serde(default)]
    reason: String,
}

async fn propose(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let proposal: Proposal = json_body(
        &body,
        "send {\"tag\":{\"vendor\":…,\"purpose\":…,\"owner\":…,\"classification\":…},\"reason\":…}",
    )?;
    let done = registry::tag_action(
        state.store.as_ref(),
        &actor,
        None,
        TagAction::Propose(proposal.tag),
        &proposal.reason,
    )
    .await?;
    created(done.to_json())
}

#[derive(serde::Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/tags/{id}/approve|reject|retire` with `{"reason":…}`.
async fn decide(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path((id, action)): Path<(i64, String)>,
    body: axum::body::Bytes,
) -> Answer {
    let action = match action.as_str() {
        "approve" => TagAction::Approve,
        "reject" => TagAction::Reject,
        "retire" => TagAction::Retire,
        _ => {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "not_found",
                "below a tag: approve, reject, retire or log",
            ))
        }
    };
    let reason: Reason = if body.is_empty() {
        Reason::default()
    } else {
        json_body(&body, "send {\"reason\":…}")?
    };
    let done = registry::tag_action(
        state.store.as_ref(),
        &actor,
        Some(id),
        action,
        &reason.reason,
    )
    .await?;
    ok(done.to_json())
}

async fn whole_log(_: Reader, State(state): State<ApiState>) -> Answer {
    ok(json!({ "log": registry::tag_log(state.store.as_ref(), None).await? }))
}

async fn tag_log(_: Reader, State(state): State<ApiState>, Path(id): Path<i64>) -> Answer {
    ok(json!({ "log": registry::tag_log(state.store.as_ref(), Some(id)).await? }))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Adopt {
    /// The scan's id.
    scan: i64,
    /// `production` (the default) or `staging`.
    #[serde(default)]
    #[schema(value_type = String)]
    environment: Environment,
}

async fn adopt(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let request: Adopt = json_body(&body, "send {\"scan\":ID}")?;
    let proposed = registry::adopt(
        state.store.as_ref(),
        &actor,
        request.scan,
        request.environment,
    )
    .await?;
    ok(list("proposed", proposed))
}

/// `GET /api/v1/backlog?journey=&owner=&severity=&status=&overdue=true`
async fn backlog(
    _: Reader,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let filter = Filter {
        journey: query.get("journey").cloned(),
        owner: query.get("owner").cloned(),
        severity: choice(
            &query,
            "severity",
            Severity::from_name,
            "low, medium, high or critical",
        )?,
        status: choice(
            &query,
            "status",
            BacklogStatus::parse,
            "open, accepted_risk, fixed or verified",
        )?,
        overdue: query.get("overdue").is_some_and(|v| v == "true"),
    };
    let items = registry::backlog_items(state.store.as_ref(), &filter).await?;
    ok(json!({"items": items.iter().map(registry::backlog_json).collect::<Vec<_>>()}))
}

/// `POST /api/v1/backlog/{id}` with `{"action":"assign"|"fix"|"accept_risk"|"reopen",…}`.
async fn backlog_act(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Answer {
    let action: BacklogAction = json_body(
        &body,
        "send {\"action\":\"assign\",\"owner\":…} or fix, accept_risk (reason, expires), reopen (reason)",
    )?;
    let done = registry::backlog_act(state.store.as_ref(), &actor, id, action).await?;
    ok(registry::backlog_json(&done))
}

async fn vendors(
    _: Reader,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let overdue = query.get("overdue").is_some_and(|v| v == "true");
    let listed = registry::vendors(state.store.as_ref(), overdue).await?;
    ok(json!({"vendors": listed.iter().map(registry::vendor_json).collect::<Vec<_>>()}))
}

async fn put_vendor(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let risk: VendorRisk = json_body(
        &body,
        "send {\"vendor\":…,\"rating\":\"low|medium|high|critical\",…}",
    )?;
    let put = registry::put_vendor(state.store.as_ref(), &actor, risk).await?;
    ok(registry::vendor_json(&put))
}
