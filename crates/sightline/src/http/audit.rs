//! `GET /api/v1/audit?after=ID&limit=N`: the audit log, oldest first (security, privacy
//! and admin roles; the service checks).

use super::contract::{page_of, Access, Doc, Routes};
use super::{ok, page_bounds, Acting, Answer, ApiState};
use axum::extract::{Query, State};
use serde_json::json;
use sightline_service::access::AUDITORS;
use sightline_service::audit;
use std::collections::HashMap;

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/api/v1/audit",
        page,
        Doc::new(
            "audit",
            "The audit log, oldest first",
            Access::Token(AUDITORS),
            page_of(
                "entries",
                "Who did what, when, to what: the actor, role, action, target, before and after, and the chain hash",
                "next_after",
            ),
        )
        .query("after", "Entries after this id (default 0)")
        .query("limit", "At most this many (default 100)"),
    )
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
