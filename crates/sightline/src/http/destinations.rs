//! `/api/v1/destinations`, their delivery log and replay.

use super::contract::shape::{
    array, boolean, deleted, integer, nullable, one_of, string, strings, Fields,
};
use super::contract::{
    json, json_of, list_with, object, page_of, page_with, shape, Access, Doc, Payload, Routes,
};
use super::{bad_request, created, json_body, ok, page_bounds, Acting, Answer, ApiState, Path};
use axum::extract::{Query, State};
use serde_json::json;
use sightline_service::access::{MARKETING, READERS, SECURITY};
use sightline_service::approval;
use sightline_service::destinations::{self, Replay};
use std::collections::HashMap;

pub(super) fn routes() -> Routes {
    let tag = "destinations";
    let change = |summary: &'static str, answer: Payload| {
        Doc::new(tag, summary, Access::Token(MARKETING), answer)
    };
    Routes::new()
        .get(
            "/api/v1/destinations",
            list,
            Doc::new(
                tag,
                "Every destination, without its signing secret or credential",
                Access::Token(READERS),
                list_with("destinations", destination("A destination")),
            ),
        )
        .post(
            "/api/v1/destinations",
            add,
            change(
                "Adds a consent-gated destination: a webhook, or a vendor type",
                json(created_answer()),
            )
            .status(201)
            .body(object(
                "`{\"name\":…,\"url\":\"http://…\",\"purposes\":[…],\"events\":[…]}`, or for a vendor \
                 `{\"name\":…,\"type\":\"ga4\"|\"meta\"|\"tiktok\"|\"linkedin\"|\"google_ads\"|\"warehouse\",\"settings\":{…},\"credential\":\"…\"}`",
            )),
        )
        .get(
            "/api/v1/destinations/pending",
            pending,
            Doc::new(
                tag,
                "Destinations with a revision waiting for a security approval",
                Access::Token(READERS),
                list_with("destinations", flow()),
            ),
        )
        .get(
            "/api/v1/destinations/log",
            change_log,
            Doc::new(
                tag,
                "The destination change log, oldest first",
                Access::Token(READERS),
                page_of(
                    "entries",
                    "Who proposed, applied, approved or rejected what, when and why",
                    "next_after",
                ),
            )
            .query("destination", "Only this destination's entries")
            .query("after", "Entries after this id (default 0)")
            .query("limit", "At most this many (default 100)"),
        )
        .post(
            "/api/v1/destinations/{name}/change",
            change_destination,
            change(
                "Changes where or what a destination sends; a change by the marketing role waits \
                 for a security approval (as the approval policy says), the approved \
                 configuration staying in force",
                json(flow()),
            )
            .body(object(
                "`{\"url\":…,\"purposes\":[…],\"events\":[…],\"types\":[…],\"batch\":N,\
                 \"transform\":{…},\"settings\":{…},\"reason\":…}`, every key optional",
            )),
        )
        .post(
            "/api/v1/destinations/{name}/approve",
            approve,
            Doc::new(
                tag,
                "Approves a destination's waiting revision, which is in force at once: a security \
                 reviewer other than its proposer (admin cannot approve)",
                Access::Token(SECURITY),
                json(flow()),
            )
            .body(json_of::<Reason>()),
        )
        .post(
            "/api/v1/destinations/{name}/reject",
            reject,
            Doc::new(
                tag,
                "Rejects a destination's waiting revision (a reason is required): a security \
                 reviewer other than its proposer",
                Access::Token(SECURITY),
                json(flow()),
            )
            .body(json_of::<Reason>()),
        )
        .get(
            "/api/v1/destinations/{name}/deliveries",
            deliveries,
            Doc::new(
                tag,
                "The delivery log, oldest first",
                Access::Token(READERS),
                page_with("deliveries", delivery(), "next_after"),
            )
            .query("status", "`delivered`, `suppressed` or `dead`")
            .query("after", "Outcomes after this sequence number (default 0)")
            .query("limit", "At most this many (default 100)"),
        )
        .delete(
            "/api/v1/destinations/{name}",
            remove,
            change(
                "Removes a destination with its delivery log and checkpoints",
                json(deleted()),
            ),
        )
        .post(
            "/api/v1/destinations/{name}/replay",
            replay,
            change(
                "Sends dead letters or a range of events again; answers the tally",
                json(tally()),
            )
            .body(json_of::<ReplayRequest>()),
        )
        .post(
            "/api/v1/destinations/{name}/disable",
            disable,
            change("Pauses delivery; the checkpoint holds", json(destination("The destination as it now stands"))),
        )
        .post(
            "/api/v1/destinations/{name}/enable",
            enable,
            change("Resumes delivery from where it stopped", json(destination("The destination as it now stands"))),
        )
        .post(
            "/api/v1/destinations/{name}/skip-to",
            skip_to,
            change(
                "Moves a disabled destination's checkpoint: the events up to it are never sent",
                json(skipped()),
            )
            .body(json_of::<SkipTo>()),
        )
        .post(
            "/api/v1/destinations/{name}/credential",
            set_credential,
            change(
                "Replaces a vendor destination's credential",
                json(
                    Fields::new()
                        .req("destination", string())
                        .req("credential", one_of(&["replaced"]))
                        .schema(),
                ),
            )
            .body(json_of::<NewCredential>()),
        )
}

/// A destination's type (`sightline_core::DestinationKind`).
fn kind() -> utoipa::openapi::Schema {
    one_of(&sightline_core::DestinationKind::ALL.map(|k| k.as_str()))
}

/// What creating a destination answers (`approval::created_json`).
fn created_answer() -> utoipa::openapi::Schema {
    Fields::described(
        "The destination's id and name, and its approval: `pending` receives nothing until a \
         security reviewer approves it. A webhook's signing secret is shown this once.",
    )
    .req("id", integer())
    .req("name", string())
    .req("approval", one_of(&["pending", "approved", "rejected"]))
    .opt("signing_secret", string())
    .schema()
}

/// A destination as configured (`sightline_core::Destination`), its URL's credentials
/// masked and without its signing secret or credential.
fn destination(description: &str) -> utoipa::openapi::Schema {
    Fields::described(description)
        .req("id", integer())
        .req("name", string())
        .req("kind", kind())
        .req("url", string())
        .req("purposes", strings())
        .req("event_types", strings())
        .req("event_names", strings())
        .req("batch_size", integer())
        .req(
            "transform",
            shape::free("allow, deny, hash, rename; `{}` sends events as stored"),
        )
        .req(
            "settings",
            shape::free("A vendor type's settings that are not secret"),
        )
        .req("created_at", integer())
        .req("disabled", boolean())
        .req("approved", boolean())
        .schema()
}

/// What a destination sends where (`sightline_govern::flow::FlowConfig`).
fn flow_config() -> utoipa::openapi::Schema {
    Fields::new()
        .req("kind", kind())
        .req("url", string())
        .req("purposes", strings())
        .req("event_types", strings())
        .req("event_names", strings())
        .req(
            "transform",
            shape::any("The transform (allow, deny, hash, rename)"),
        )
        .req(
            "settings",
            shape::any("A vendor type's settings that are not secret"),
        )
        .req("batch_size", integer())
        .schema()
}

/// A destination's governance record (`sightline_govern::flow::Flow`), URLs masked.
fn flow() -> utoipa::openapi::Schema {
    Fields::described("The destination's governance record")
        .req("destination", string())
        .req("status", one_of(&["pending", "approved", "rejected"]))
        .req("revision", integer())
        .req("config", flow_config())
        .req("approved", nullable(flow_config()))
        .req("changes", array(one_of(&sightline_govern::flow::REVIEWED)))
        .req("proposed_by", string())
        .req("decided_by", nullable(string()))
        .schema()
}

/// An event's delivery outcome (`destinations::page_json`).
fn delivery() -> utoipa::openapi::Schema {
    Fields::described("An event's delivery outcome")
        .req("seq", integer())
        .req("message_id", string())
        .req("status", one_of(&["delivered", "suppressed", "dead"]))
        .req("attempts", integer())
        .req("response_code", nullable(integer()))
        .req("latency_ms", nullable(integer()))
        .req(
            "reason",
            nullable(shape::text(
                "Why it was suppressed or dead: which purpose and signal; the response's code \
                 and body",
            )),
        )
        .req("at", shape::time())
        .schema()
}

/// What a replay came to (`sightline_activate::Tally`).
fn tally() -> utoipa::openapi::Schema {
    Fields::described("How many were delivered, suppressed and dead this time")
        .req("delivered", integer())
        .req("suppressed", integer())
        .req("dead", integer())
        .schema()
}

/// Where the checkpoint was and is (`destinations::Skipped`).
fn skipped() -> utoipa::openapi::Schema {
    Fields::described("The destination's checkpoint before and after")
        .req("destination", string())
        .req("from_seq", integer())
        .req("to_seq", integer())
        .schema()
}

/// `GET /api/v1/destinations`: every destination, without its signing secret.
async fn list(Acting(actor): Acting, State(state): State<ApiState>) -> Answer {
    let listed = destinations::list(state.store.as_ref(), &actor).await?;
    ok(json!({ "destinations": listed }))
}

/// `POST /api/v1/destinations`: adds a destination and answers `{"id","name"}`, with a
/// webhook's signing secret, shown this once (a vendor type's credential never is).
async fn add(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let spec: sightline_activate::DestinationSpec = json_body(
        &body,
        "send {\"name\":…,\"url\":\"http://…\",\"purposes\":[…]}, or for a vendor \
         {\"name\":…,\"type\":\"ga4\" (or meta, tiktok, linkedin, google_ads, warehouse),\"settings\":{…},\"credential\":\"…\"}",
    )?;
    let policy = state.book.rules().policy.clone();
    let (d, flow) =
        approval::add(state.store.as_ref(), &actor, spec, &policy, &state.approval).await?;
    created(approval::created_json(&d, &flow))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewCredential {
    credential: String,
}

/// `POST /api/v1/destinations/{name}/credential` with `{"credential":"…"}`: replaces a
/// vendor destination's credential.
async fn set_credential(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let request: NewCredential = json_body(&body, "send {\"credential\":\"…\"}")?;
    destinations::set_credential(state.store.as_ref(), &actor, &name, &request.credential).await?;
    ok(json!({ "destination": name, "credential": "replaced" }))
}

/// What `POST /api/v1/destinations/{name}/replay` sends again.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// The dead letters.
    #[serde(default)]
    dead: bool,
    /// Or the events from this sequence number…
    from_seq: Option<i64>,
    /// …to this one (default: the end of the log).
    to_seq: Option<i64>,
}

/// `POST /api/v1/destinations/{name}/replay` with `{"dead":true}` or
/// `{"from_seq":N,"to_seq":M}`: sends those events again (bounded attempts each), records
/// the new outcomes in place of the old and answers the tally.
async fn replay(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let request: ReplayRequest = json_body(
        &body,
        "send {\"dead\":true} or {\"from_seq\":N,\"to_seq\":M}",
    )?;
    let which = match (request.dead, request.from_seq) {
        (true, None) => Replay::Dead,
        (false, Some(from)) => Replay::Range {
            from,
            to: request.to_seq.unwrap_or(i64::MAX),
        },
        _ => {
            return Err(bad_request(
                "say what to replay: \"dead\": true, or \"from_seq\" (and \"to_seq\")",
            ))
        }
    };
    let tally = super::off_workers(async move {
        destinations::replay(state.store.as_ref(), &actor, &state.deliverer, &name, which).await
    })
    .await?;
    ok(tally)
}

/// `GET /api/v1/destinations/{name}/deliveries?status=&after=SEQ&limit=N`: the delivery
/// log, oldest first.
async fn deliveries(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let (after, limit) = page_bounds(&query)?;
    let status = match query.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(destinations::parse_status(text).map_err(|_| {
            bad_request(format!(
                "`status` must be delivered, suppressed or dead, not {text:?}"
            ))
        })?),
    };
    let page =
        destinations::deliveries(state.store.as_ref(), &actor, &name, status, after, limit).await?;
    ok(destinations::page_json(&page, after))
}

/// `POST /api/v1/destinations/{name}/disable`: pauses delivery; its checkpoint holds.
async fn disable(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Answer {
    ok(destinations::set_disabled(state.store.as_ref(), &actor, &name, true).await?)
}

/// `POST /api/v1/destinations/{name}/enable`: resumes delivery from where it stopped.
async fn enable(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Answer {
    ok(destinations::set_disabled(state.store.as_ref(), &actor, &name, false).await?)
}

/// `DELETE /api/v1/destinations/{name}`: removes it with its delivery log and checkpoints.
async fn remove(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Answer {
    destinations::delete(state.store.as_ref(), &actor, &name).await?;
    ok(json!({ "deleted": name }))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SkipTo {
    seq: i64,
}

/// `POST /api/v1/destinations/{name}/skip-to` with `{"seq":N}`: a disabled destination's
/// checkpoint moves to N; the events up to it are never sent.
async fn skip_to(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let request: SkipTo = json_body(&body, "send {\"seq\":N}")?;
    ok(destinations::skip_to(state.store.as_ref(), &actor, &name, request.seq).await?)
}

/// `GET /api/v1/destinations/pending`: the governance records waiting for approval.
async fn pending(Acting(actor): Acting, State(state): State<ApiState>) -> Answer {
    let flows = approval::flows(state.store.as_ref(), &actor, true).await?;
    ok(json!({ "destinations": flows }))
}

/// `GET /api/v1/destinations/log?destination=&after=&limit=`: the change log.
async fn change_log(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let (after, limit) = page_bounds(&query)?;
    let name = query.get("destination").filter(|s| !s.is_empty());
    ok(approval::log(
        state.store.as_ref(),
        &actor,
        name.map(String::as_str),
        after,
        limit,
    )
    .await?)
}

/// `POST /api/v1/destinations/{name}/change` with the fields to change.
async fn change_destination(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let change: approval::DestinationChange = json_body(
        &body,
        "send the fields to change: {\"url\":…,\"purposes\":[…],\"events\":[…],\"types\":[…],\"batch\":N,\"transform\":{…},\"settings\":{…},\"reason\":…}",
    )?;
    let policy = state.book.rules().policy.clone();
    ok(approval::change(
        state.store.as_ref(),
        &actor,
        &name,
        change,
        &policy,
        &state.approval,
    )
    .await?)
}

/// Why, for the change log.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/destinations/{name}/approve` with `{"reason":…}`.
async fn approve(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let request: Reason = if body.is_empty() {
        Reason {
            reason: String::new(),
        }
    } else {
        json_body(&body, "send {\"reason\":…}")?
    };
    ok(approval::decide(state.store.as_ref(), &actor, &name, true, &request.reason).await?)
}

/// `POST /api/v1/destinations/{name}/reject` with `{"reason":…}` (required).
async fn reject(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let request: Reason = json_body(&body, "send {\"reason\":…}")?;
    ok(approval::decide(state.store.as_ref(), &actor, &name, false, &request.reason).await?)
}
