//! `/api/v1/imports/crm` and the clerical review queue `/api/v1/link-reviews` (admin only).

use super::contract::{json_of, object, page_of, Access, Doc, Routes, Verb};
use super::{json_body, ok, page_bounds, Acting, Answer, ApiState, Failure, Path};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::json;
use sightline_collect::error;
use sightline_service::access::ADMIN;
use sightline_service::crm::{self, mapping::ImportMapping, ProfilesAt};
use sightline_service::Error;
use std::collections::HashMap;

/// The largest import request: the CSV and the mapping in one JSON body.
pub const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

pub(super) fn routes() -> Routes {
    let tag = "crm";
    let item = "A clerical review item: the record, the candidate profile, the match probability";
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
                object("The import's report: records read, linked, new, sent to review"),
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
                page_of("reviews", item, "next_after"),
            )
            .query("status", "`pending` (default), `accepted`, `rejected` or `all`")
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
                object("`{\"review\":{…},\"explanation\":\"…\"}`: the item and its match weights as text"),
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
                object("The item as decided"),
            )
            .path_id("id", "The item's id")
            .path_one_of("decision", "The decision", &["accept", "reject"]),
        )
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
