//! `GET /api/v1/cluster`: the nodes sharing the store, which node runs which processor, and
//! each processor's lag (one node running everything when the log is in the store).

use super::contract::{self, Doc, Routes};
use super::{ok, Acting, Answer, ApiState};
use axum::extract::State;
use sightline_service::cluster;

pub(super) fn routes() -> Routes {
    Routes::new().get(
        "/api/v1/cluster",
        status,
        Doc::new(
            "operations",
            "The nodes, who runs which processor, and each processor's lag",
            contract::DETAIL,
            contract::json(status_schema()),
        ),
    )
}

/// The cluster as `cluster::read` answers it (`cluster::Status`).
fn status_schema() -> utoipa::openapi::Schema {
    use contract::shape::{array, boolean, integer, nullable, string, Fields};
    let node = Fields::described("A node sharing the store")
        .req("id", string())
        .req("address", string())
        .req("version", string())
        .req("started_at", integer())
        .req("seen_ms_ago", integer())
        .req("alive", boolean());
    let processor = Fields::described("A processor: the node holding its lease, and its lag")
        .req("processor", string())
        .req("node", nullable(string()))
        .req("lease_ms_left", integer())
        .req("applied", nullable(integer()))
        .req("lag_events", nullable(integer()));
    Fields::described("The nodes, who runs which processor, and each processor's lag")
        .req("node", nullable(string()))
        .req("log_end", integer())
        .req("nodes", array(node.schema()))
        .req("processors", array(processor.schema()))
        .schema()
}

async fn status(Acting(actor): Acting, State(state): State<ApiState>) -> Answer {
    let address = state.node.address.get().map_or("", String::as_str);
    ok(cluster::read(
        state.store.as_ref(),
        &actor,
        state.node.membership.as_deref(),
        &state.processors,
        address,
    )
    .await?)
}
