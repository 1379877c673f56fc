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
            contract::object(
                "`node` (the node answering), `log_end` (the log's last seq), `nodes` (id, \
                 address, version, started_at, seen_ms_ago, alive) and `processors` \
                 (processor, node, lease_ms_left, applied, lag_events).",
            ),
        ),
    )
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
