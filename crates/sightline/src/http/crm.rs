//! `/api/v1/imports/crm` and the clerical review queue `/api/v1/link-reviews` (admin only).

use super::contract::shape::{any, array, integer, nullable, number, one_of, string, Fields};
use super::contract::{json, json_of, page_with, Access, Doc, Routes, Verb};
use super::{json_body, ok, page_bounds, Acting, Answer, ApiState, Failure, Path};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::json;
use sightline_collect::error;
use sightline_service::access::ADMIN;
use sightline_service::crm::{self, mapping::ImportMapping, ProfilesAt};
use sightline_service::Error;
use std::collections::HashMap;
use utoipa::openapi::Schema;

/// The largest import request: the CSV and the mapping in one JSON body.
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

pub(super) fn routes() -> Routes {
    let tag = "crm";
    Routes::new()
        .on(
            Verb::Post,
            "/api/v1/imports/crm",
            axum::routing::post(import)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
            Doc::new(
                tag,
                "Imports CRM records (CSV) and links them to profiles, like `sightline import crm`",
                Access::Token(ADMIN),
                json(report()),
            )
            .body(json_of::<ImportRequest>()),
        )
        .get(
            "/api/v1/link-reviews",
            reviews,
            Doc::new(
                tag,
                "The clerical review queue",
                Access::Token(ADMIN),
                page_with("reviews", review_item(), "next_after"),
            )
            .query(
                "status",
                "`pending` (default), `accepted`, `rejected` or `all`",
            )
            .query("after", "Items after this id (default 0)")
            .query("limit", "At most this many (default 100)"),
        )
        .get(
            "/api/v1/link-reviews/{id}",
            review,
            Doc::new(
                tag,
                "One review item with its evidence",
                Access::Token(ADMIN),
                json(
                    Fields::described("The item, and it and its match weights as text")
                        .req("review", review_item())
                        .req("explanation", string())
                        .schema(),
                ),
            )
            .path_id("id", "The item's id"),
        )
        .post(
            "/api/v1/link-reviews/{id}/{decision}",
            decide,
            Doc::new(
                tag,
                "Accepts (links the record to the profile) or rejects a review item",
                Access::Token(ADMIN),
                json(
                    Fields::described("The item as decided")
                        .req("id", integer())
                        .req("status", status())
                        .req("seq", nullable(integer()))
                        .req("left", string())
                        .req("right", string())
                        .schema(),
                ),
            )
            .path_id("id", "The item's id")
            .path_one_of("decision", "The decision", &["accept", "reject"]),
        )
}

/// Where a review item stands (`sightline_core::ReviewStatus`).
fn status() -> Schema {
    one_of(&sightline_core::ReviewStatus::ALL.map(|s| s.as_str()))
}

/// A stored review item (`sightline_core::LinkReview`).
fn review_item() -> Schema {
    Fields::described("A clerical review item")
        .req("id", integer())
        .req("origin", string())
        .req("left", string())
        .req("right", string())
        .req("match_probability", number())
        .req(
            "evidence",
            any("The engine's explanation: prior, per-field level and weight"),
        )
        .req("status", status())
        .req("created_at", integer())
        .req("decided_at", nullable(integer()))
        .req("seq", nullable(integer()))
        .schema()
}

/// A link the engine proposed (`crm::plan::ProposedLink`), as `type:value`s.
fn proposed(fields: Fields) -> Fields {
    fields
        .req("pass", one_of(&["profiles", "dedupe"]))
        .req("left", string())
        .req("right", string())
        .req("match_probability", number())
}

/// What an import did (`crm::ImportReport`).
fn report() -> Schema {
    let line = |fields: Fields| fields.req("line", integer()).req("reason", string());
    let pass = Fields::described("A linkage pass: the engine's summary, or why it could not run")
        .req("pass", one_of(&["profiles", "dedupe"]))
        .opt(
            "summary",
            Fields::described("The linkage engine's summary of the run")
                .req("mode", one_of(&["dedupe", "pair"]))
                .req("left_records", integer())
                .opt("right_records", integer())
                .req("compared_pairs", integer())
                .req("u_sample_pairs", integer())
                .req("threshold", number())
                .req("auto_link_threshold", number())
                .req("links", integer())
                .req("auto_links", integer())
                .req("review", integer())
                .open()
                .schema(),
        )
        .opt("error", string());
    let auto_link = proposed(Fields::described(
        "An automatic link, its event's seq (null when logged before) and what identity made of it",
    ))
    .req("seq", nullable(integer()))
    .req("outcome", one_of(&["merged", "refused"]))
    .opt("rule", string());
    let queued = proposed(Fields::described(
        "A pair sent to review; `id` null when it was queued (or decided) before",
    ))
    .req("id", nullable(integer()));
    Fields::described("The import's report: records read, logged, linked, sent to review")
        .req("file", string())
        .req("source", string())
        .req("records", integer())
        .req("logged", integer())
        .req("already_logged", integer())
        .req("bad_rows", array(line(Fields::new()).schema()))
        .req(
            "warnings",
            array(line(Fields::new()).req("column", string()).schema()),
        )
        .req("joined_existing", integer())
        .req("passes", array(pass.schema()))
        .req("auto_links", array(auto_link.schema()))
        .req("reviews", array(queued.schema()))
        .req("reviews_not_queued", integer())
        .schema()
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    /// The CRM export as CSV text.
    csv: String,
    /// The mapping: the TOML file's text, or an object with its keys.
    mapping: serde_json::Value,
    /// A name for the import's records and review items (default `api`).
    #[serde(default)]
    file: Option<String>,
}

/// `POST /api/v1/imports/crm` with `{"csv": "...", "mapping": "<TOML>" | {...}}`: the same
/// import as `sightline import crm`, answered with its report once the server's profiles
/// have taken in the links.
async fn import(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Ok(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "an import request may be at most {MAX_IMPORT_BYTES} bytes: split the file"
                ),
            ))
        }
        Err(rejection) => return Err(Failure(Error::invalid(rejection.body_text()))),
    };
    let request: ImportRequest = json_body(
        &body,
        "send {\"csv\": \"<CSV text>\", \"mapping\": \"<mapping TOML>\" or {...}}",
    )?;
    let mapping = match request.mapping {
        serde_json::Value::String(text) => ImportMapping::from_toml_str(&text),
        other => ImportMapping::from_json(other),
    }
    .map_err(Error::Invalid)?;
    let file = request.file.unwrap_or_else(|| "api".into());
    let report = crm::import(
        state.store.as_ref(),
        &actor,
        request.csv.as_bytes(),
        &file,
        &mapping,
        &ProfilesAt::Live(state.book.clone()),
    )
    .await?;
    ok(report)
}

/// `GET /api/v1/link-reviews?status=pending|accepted|rejected|all&after=ID&limit=N`
async fn reviews(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let (after, limit) = page_bounds(&query)?;
    let status = crm::status_filter(query.get("status").map_or("pending", String::as_str))?;
    let items = crm::reviews(state.store.as_ref(), &actor, status, after, limit).await?;
    let next_after = items.last().map_or(after, |i| i.id);
    ok(json!({"reviews": items, "next_after": next_after}))
}

/// `GET /api/v1/link-reviews/{id}`: one item with its evidence (the waterfall).
async fn review(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(id): Path<i64>,
) -> Answer {
    let item = crm::review(state.store.as_ref(), &actor, id).await?;
    ok(json!({"review": item, "explanation": crm::review_text(&item)}))
}

/// `POST /api/v1/link-reviews/{id}/accept|reject`
async fn decide(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path((id, decision)): Path<(i64, String)>,
) -> Answer {
    let item = match decision.as_str() {
        "accept" => crm::accept(state.store.as_ref(), &actor, id).await?,
        "reject" => crm::reject(state.store.as_ref(), &actor, id).await?,
        _ => {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "not_found",
                "below a review item: accept or reject",
            ))
        }
    };
    ok(crm::decided(&item))
}
