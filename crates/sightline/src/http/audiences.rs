//! `/api/v1/audiences`, `/api/v1/traits` and `/api/v1/attribution`.

use super::{bad_request, created, json_body, ok, page_bounds, Acting, Answer, ApiState, Failure};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use sightline_collect::error;
use sightline_service::{attribution, audiences, Error};
use std::collections::HashMap;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/audiences", get(list).post(add))
        .route("/api/v1/audiences/{name}/{part}", get(audience_part))
        .route("/api/v1/traits", get(traits).post(add_trait))
        .route("/api/v1/attribution", get(attribute))
}

/// `GET /api/v1/audiences`: definitions and member counts.
async fn list(Acting(actor): Acting, State(state): State<ApiState>) -> Answer {
    let list = audiences::audiences_with_counts(state.store.as_ref(), &actor, &state.book).await?;
    ok(json!({ "audiences": list }))
}

#[derive(serde::Deserialize)]
struct NewAudience {
    name: String,
    rule: String,
    #[serde(default)]
    sync: Vec<String>,
}

/// `POST /api/v1/audiences` `{"name":…,"rule":…}`: the rule in the text form.
async fn add(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let new: NewAudience = json_body(&body, "send {\"name\":…,\"rule\":…}")?;
    let definition = audiences::add_audience(
        state.store.as_ref(),
        &actor,
        &new.name,
        &new.rule,
        &new.sync,
    )
    .await?;
    created(definition)
}

/// `GET /api/v1/audiences/{name}/members|history`
async fn audience_part(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Path((name, part)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    match part.as_str() {
        "history" => {
            let (after, limit) = page_bounds(&query)?;
            let rows =
                audiences::history(state.store.as_ref(), &actor, &name, after, limit).await?;
            let next_after = rows.last().map(|(id, _)| *id);
            let history: Vec<_> = rows.into_iter().map(|(_, change)| change).collect();
            ok(json!({"history": history, "next_after": next_after}))
        }
        "members" => {
            let format = query
                .get("format")
                .map_or("json", String::as_str)
                .to_owned();
            if !["json", "ndjson", "csv"].contains(&format.as_str()) {
                return Err(bad_request(format!(
                    "format {format:?} is not one of json, ndjson, csv"
                )));
            }
            let list = audiences::members(state.store.as_ref(), &actor, &state.book, &name).await?;
            // A large audience takes a while to serialise: off the async workers.
            tokio::task::spawn_blocking(move || {
                Ok(match format.as_str() {
                    "ndjson" => {
                        let lines: String = list.iter().map(|m| format!("{m}\n")).collect();
                        ([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response()
                    }
                    "csv" => (
                        [(header::CONTENT_TYPE, "text/csv")],
                        audiences::members_csv(&list),
                    )
                        .into_response(),
                    _ => axum::Json(json!({"count": list.len(), "members": list})).into_response(),
                })
            })
            .await
            .map_err(|e| Failure(Error::Internal(e.into())))?
        }
        _ => Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "below an audience: members or history",
        )),
    }
}

/// `GET /api/v1/traits`: every computed trait definition.
async fn traits(Acting(actor): Acting, State(state): State<ApiState>) -> Answer {
    let traits = audiences::list_traits(state.store.as_ref(), &actor).await?;
    ok(json!({ "traits": traits }))
}

/// `POST /api/v1/traits` with a computed trait's JSON definition.
async fn add_trait(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Answer {
    let definition: sightline_audience::ComputedTrait = json_body(
        &body,
        "send a computed trait, e.g. {\"name\":\"orders\",\"aggregate\":{\"kind\":\"count\"}}",
    )?;
    created(audiences::add_trait(state.store.as_ref(), &actor, &definition).await?)
}

/// `GET /api/v1/attribution?conversion=EVENT&value_property=&from=&to=&lookback=&model=a,b`
async fn attribute(
    Acting(actor): Acting,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let Some(conversion) = query.get("conversion").filter(|c| !c.is_empty()) else {
        return Err(bad_request(
            "say which event is a conversion: ?conversion=Order%20Completed",
        ));
    };
    let question = attribution::Question {
        conversion: conversion.clone(),
        value_property: query.get("value_property").cloned(),
        from: query.get("from").cloned(),
        to: query.get("to").cloned(),
        lookback: query.get("lookback").cloned(),
        models: query
            .get("model")
            .map(|m| m.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
    };
    let rules = state.book.rules().clone();
    let report = super::off_workers(async move {
        let grouper = sightline_attribution::ChannelGrouper::default();
        attribution::report(state.store.as_ref(), &actor, &question, &grouper, rules).await
    })
    .await?;
    ok(report)
}
