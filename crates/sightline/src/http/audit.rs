//! `GET /api/v1/audit?after=ID&limit=N`: the audit log, oldest first (security, privacy
//! and admin roles; the service checks).

use super::{ok, page_bounds, Acting, Answer, ApiState};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use sightline_service::audit;
use std::collections::HashMap;

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/api/v1/audit", get(page))
}

async fn page(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let (after, limit) = page_bounds(&query)?;
    let entries = audit::list(state.store.as_ref(), &actor, after, limit).await?;
    let next_after = entries.last().map_or(after, |e| e.id);
    ok(json!({"entries": entries, "next_after": next_after}))
}
