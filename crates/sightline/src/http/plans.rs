//! `/api/v1/tracking-plans` and a source's plan and violations.

use super::contract::shape::{
    any_of, array, integer, nullable, string, strings, text, time, Fields,
};
use super::contract::{json, json_of, list_with, shape, Access, Doc, Payload, Routes};
use super::{bad_request, created, json_body, ok, Acting, Answer, ApiState, Path};
use axum::extract::{Query, State};
use serde_json::{json, Value};
use sightline_core::time;
use sightline_service::access::{ADMIN, READERS};
use sightline_service::plans::{self, ImportFormat};
use std::collections::HashMap;
use utoipa::openapi::Schema;

pub(super) fn routes() -> Routes {
    let tag = "tracking plans";
    let stored = || {
        json(
            Fields::described("The plan's version now in force")
                .req("name", string())
                .req("version", integer())
                .schema(),
        )
    };
    Routes::new()
        .get(
            "/api/v1/tracking-plans",
            list,
            Doc::new(
                tag,
                "Every tracking plan",
                Access::Token(READERS),
                list_with("tracking_plans", plan()),
            ),
        )
        .post(
            "/api/v1/tracking-plans",
            add,
            Doc::new(
                tag,
                "Adds a plan, or its next version",
                Access::Token(ADMIN),
                stored(),
            )
            .status(201)
            .body(json_of::<NewPlan>()),
        )
        .post(
            "/api/v1/tracking-plans/import",
            import,
            Doc::new(
                tag,
                "Imports a Segment tracking plan or Iglu schema",
                Access::Token(ADMIN),
                stored(),
            )
            .status(201)
            .query("format", "`segment` (default) or `iglu`")
            .query("name", "The plan's name (default: the file's)")
            .query("event", "iglu: the event the schema describes")
            .body(Payload::Other("application/json", "The file as exported")),
        )
        .get(
            "/api/v1/tracking-plans/{name}",
            show,
            Doc::new(
                tag,
                "A plan's document",
                Access::Token(READERS),
                json(any_of([plan(), segment_plan()])),
            )
            .query("version", "This version (default the latest)")
            .query("format", "`segment`: as a Segment tracking plan"),
        )
        .put(
            "/api/v1/tracking-plans/{name}",
            update,
            Doc::new(
                tag,
                "Stores a plan's next version",
                Access::Token(ADMIN),
                stored(),
            )
            .body(Payload::Other("application/json", "The plan document")),
        )
        .put(
            "/api/v1/sources/{name}/tracking-plan",
            assign,
            Doc::new(
                tag,
                "Holds a source to a plan (or releases it), with its fixes",
                Access::Token(ADMIN),
                json(
                    Fields::described("The plan the source is now held to; null for none")
                        .req("source", string())
                        .req("plan", nullable(string()))
                        .schema(),
                ),
            )
            .body(json_of::<Assignment>()),
        )
        .get(
            "/api/v1/sources/{name}/violations",
            violations,
            Doc::new(
                tag,
                "A source's tracking plan violations",
                Access::Token(READERS),
                json(violations_answer()),
            )
            .query(
                "since",
                "From this day, YYYY-MM-DD (default: the last 7 days)",
            ),
        )
}

/// A plan's version as stored (`plans::plan_json`).
fn plan() -> Schema {
    Fields::described("The plan's version, the sources held to it and its document")
        .req("name", string())
        .req("version", integer())
        .req("updated_at", time())
        .req("sources", strings())
        .req("plan", shape::free("The plan document"))
        .schema()
}

/// A plan as a Segment tracking plan (`sightline_plans::import::to_segment`).
fn segment_plan() -> Schema {
    let event = Fields::new()
        .req("name", string())
        .req("description", string())
        .req("rules", shape::free("The JSON Schema of the event's call"))
        .req("version", integer());
    Fields::described("With `format=segment`: the plan as a Segment tracking plan")
        .req("name", string())
        .req("description", string())
        .req(
            "rules",
            Fields::new()
                .req("events", array(event.schema()))
                .opt(
                    "identify",
                    shape::free("The JSON Schema of an identify call"),
                )
                .opt("group", shape::free("The JSON Schema of a group call"))
                .opt("global", shape::free("The JSON Schema of every call"))
                .schema(),
        )
        .schema()
}

/// A source's violations (`plans::violations`).
fn violations_answer() -> Schema {
    let count = Fields::new()
        .req("day", text("YYYY-MM-DD"))
        .req("event", string())
        .req("type", string())
        .req("count", integer());
    let sample = Fields::new()
        .req("event", string())
        .req("type", string())
        .req(
            "sample",
            shape::any("The violating event, its values masked"),
        );
    Fields::described("Violations counted per day, event and kind, with the newest samples")
        .req("source", string())
        .req("since", text("YYYY-MM-DD"))
        .req("counts", array(count.schema()))
        .req("samples", array(sample.schema()))
        .schema()
}

/// Puts a change in force in this server now (others pick it up within a second); the
/// change is stored either way, so a failed reload is only logged.
async fn reload(state: &ApiState) {
    if let Err(e) = state.plans.reload().await {
        tracing::warn!(error = %e, "tracking plans not reloaded after a change; the next step will");
    }
}

/// `GET /api/v1/tracking-plans`
async fn list(Acting(actor): Acting, State(state): State<ApiState>) -> Answer {
    let list = plans::list_plans(state.store.as_ref(), &actor).await?;
    ok(json!({ "tracking_plans": list }))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPlan {
    name: String,
    /// The plan document.
    #[schema(value_type = Object)]
    plan: Value,
}

/// `POST /api/v1/tracking-plans` `{"name":…,"plan":{…}}`: a new plan, or the next version.
async fn add(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let new: NewPlan = json_body(&body, "send {\"name\":…,\"plan\":{…}}")?;
    let stored = plans::put_plan(
        state.store.as_ref(),
        &actor,
        &new.name,
        &new.plan.to_string(),
    )
    .await?;
    reload(&state).await;
    created(json!({"name": stored.name, "version": stored.version}))
}

/// `PUT /api/v1/tracking-plans/{name}` with the plan document: its next version.
async fn update(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let document = std::str::from_utf8(&body).map_err(|_| bad_request("the body is not UTF-8"))?;
    let stored = plans::put_plan(state.store.as_ref(), &actor, &name, document).await?;
    reload(&state).await;
    ok(json!({"name": stored.name, "version": stored.version}))
}

/// `POST /api/v1/tracking-plans/import?format=segment|iglu[&name=…][&event=…]` with the
/// file as the body.
async fn import(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Answer {
    let text = std::str::from_utf8(&body).map_err(|_| bad_request("the body is not UTF-8"))?;
    let format = match query.get("format").map_or("segment", String::as_str) {
        "segment" => ImportFormat::Segment,
        "iglu" => ImportFormat::Iglu {
            event: query.get("event").map(String::as_str),
        },
        other => {
            return Err(bad_request(format!(
                "format {other:?} is not one of segment, iglu"
            )))
        }
    };
    let name = query.get("name").map(String::as_str);
    let stored = plans::import_plan(state.store.as_ref(), &actor, name, format, text).await?;
    reload(&state).await;
    created(json!({"name": stored.name, "version": stored.version}))
}

/// `GET /api/v1/tracking-plans/{name}[?version=N][&format=segment]`
async fn show(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    if query.get("format").map(String::as_str) == Some("segment") {
        return ok(plans::export_segment(state.store.as_ref(), &actor, &name).await?);
    }
    let version = match query.get("version") {
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| bad_request(format!("version {text:?} is not a number")))?,
        ),
        None => None,
    };
    ok(plans::show_plan(state.store.as_ref(), &actor, &name, version).await?)
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Assignment {
    /// The plan's name; `null` releases the source.
    plan: Option<String>,
    /// Renames and defaults applied before the plan judges an event.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    fixes: Option<Value>,
}

/// `PUT /api/v1/sources/{name}/tracking-plan` `{"plan":…|null,"fixes":{…}}`
async fn assign(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(source): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let assignment: Assignment = json_body(&body, "send {\"plan\":…|null,\"fixes\":{…}}")?;
    let fixes = assignment.fixes.unwrap_or_else(|| json!({})).to_string();
    plans::assign_plan(
        state.store.as_ref(),
        &actor,
        &source,
        assignment.plan.as_deref(),
        &fixes,
    )
    .await?;
    reload(&state).await;
    ok(json!({"source": source, "plan": assignment.plan}))
}

/// `GET /api/v1/sources/{name}/violations[?since=YYYY-MM-DD]` (default: the last 7 days)
async fn violations(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(source): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let since = query
        .get("since")
        .cloned()
        .unwrap_or_else(|| time::format_ms(time::now_ms() - 7 * 86_400_000)[..10].to_string());
    ok(plans::violations(state.store.as_ref(), &actor, &source, &since).await?)
}
