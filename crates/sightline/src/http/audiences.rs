//! `/api/v1/audiences`, `/api/v1/traits` and `/api/v1/attribution`.

use super::contract::shape::{
    any_of, array, identifier, integer, map_of, nullable, number, one_of, string, strings, Fields,
};
use super::contract::{json, json_of, list_with, object, shape, Access, Doc, Routes};
use super::{
    bad_request, created, json_body, ok, page_bounds, Acting, Answer, ApiState, Failure, Path,
};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;
use sightline_collect::error;
use sightline_service::access::{ATTRIBUTION_READERS, MARKETING, READERS};
use sightline_service::{attribution, audiences, Error};
use std::collections::HashMap;
use utoipa::openapi::Schema;

pub(super) fn routes() -> Routes {
    let tag = "audiences";
    Routes::new()
        .get(
            "/api/v1/audiences",
            list,
            Doc::new(
                tag,
                "Audience definitions with their member counts",
                Access::Token(READERS),
                list_with(
                    "audiences",
                    Fields::described("An audience: its name, rule and member count")
                        .req("name", string())
                        .req("rule", string())
                        .req(
                            "members",
                            shape::about(
                                nullable(integer()),
                                "null until the profiles have picked the audience up",
                            ),
                        )
                        .schema(),
                ),
            ),
        )
        .post(
            "/api/v1/audiences",
            add,
            Doc::new(
                tag,
                "Adds an audience defined by a rule in the text form",
                Access::Token(MARKETING),
                json(
                    Fields::described("The audience's definition")
                        .req("id", integer())
                        .req("name", string())
                        .req("rule", string())
                        .req("sync", strings())
                        .req("created_at", integer())
                        .schema(),
                ),
            )
            .status(201)
            .body(json_of::<NewAudience>()),
        )
        .get(
            "/api/v1/audiences/{name}/{part}",
            audience_part,
            Doc::new(
                tag,
                "An audience's members (JSON, NDJSON or CSV) or its membership history",
                Access::Token(READERS),
                json(any_of([members(), history()])),
            )
            .or_as(
                "application/x-ndjson",
                "members with `format=ndjson`: a member per line",
            )
            .or_as(
                "text/csv",
                "members with `format=csv`: `profile,identifiers`, the identifiers as \
                 `type:value` joined by `;`",
            )
            .path_one_of("part", "What to read", &["members", "history"])
            .query("format", "members: `json` (default), `ndjson` or `csv`")
            .query("after", "history: changes after this id")
            .query("limit", "history: at most this many (default 100)"),
        )
        .get(
            "/api/v1/traits",
            traits,
            Doc::new(
                tag,
                "Every computed trait definition",
                Access::Token(READERS),
                list_with("traits", trait_definition("A computed trait's definition")),
            ),
        )
        .post(
            "/api/v1/traits",
            add_trait,
            Doc::new(
                tag,
                "Adds a computed trait: a per-profile aggregate of events",
                Access::Token(MARKETING),
                json(trait_definition("The trait's definition, as stored")),
            )
            .status(201)
            .body(object(
                "A computed trait, e.g. `{\"name\":\"orders\",\"aggregate\":{\"kind\":\"count\"},\"event\":{\"name\":\"Order Completed\"},\"within\":\"30d\"}`",
            )),
        )
        .get(
            "/api/v1/attribution",
            attribute,
            Doc::new(
                "attribution",
                "Multi-touch attribution over stitched journeys, with the variance between models",
                Access::Token(ATTRIBUTION_READERS),
                json(attribution(true)),
            )
            .query("conversion", "The event that is a conversion (required)")
            .query("value_property", "The property holding the conversion's value")
            .query("from", "First day, YYYY-MM-DD")
            .query("to", "Last day, YYYY-MM-DD")
            .query("lookback", "How far back touches count, e.g. `30d`")
            .query("model", "Models to run, comma-separated (default all)"),
        )
}

/// A stored computed trait (`sightline_core::TraitDefinition`).
fn trait_definition(description: &str) -> Schema {
    Fields::described(description)
        .req("id", integer())
        .req("name", string())
        .req(
            "definition",
            shape::free("The computed trait as sent (aggregate, event, within)"),
        )
        .req("created_at", integer())
        .schema()
}

/// An audience's members (`audiences::members`, each `profiles::member_json`).
fn members() -> Schema {
    let member = Fields::described("A member: the profile's id and identifiers")
        .req("id", integer())
        .req("identifiers", array(identifier()));
    Fields::described("members: the audience's members")
        .req("count", integer())
        .req("members", array(member.schema()))
        .schema()
}

/// An audience's membership changes (`sightline_audience::MembershipChange`), a page.
fn history() -> Schema {
    let change = Fields::described("A membership change")
        .req("audience", string())
        .req("profile", string())
        .req("transition", one_of(&["entered", "exited"]))
        .req("at", integer())
        .req(
            "caused_by",
            any_of([
                Fields::described("The event with this log sequence number")
                    .req("event", integer())
                    .schema(),
                one_of(&["timer"]),
            ]),
        );
    Fields::described("history: enter and exit records, oldest first")
        .req("history", array(change.schema()))
        .req("next_after", nullable(integer()))
        .schema()
}

/// The attribution report (`sightline_attribution::journeys_report`, with
/// `events_without_analytics_consent`); the same report per campaign (`with_campaigns`
/// false) under `campaigns`.
fn attribution(with_campaigns: bool) -> Schema {
    let per_channel = |what: &str| map_of(what, number());
    let spread = Fields::described("The spread of one channel's credit across the models")
        .req("mean", number())
        .req("std_dev", number())
        .req("min", number())
        .req("max", number())
        .req("cv", number());
    let markov = Fields::new()
        .req("order", integer())
        .req("states", integer())
        .req("conversion_probability", nullable(number()))
        .req("removal_effects", per_channel("By channel"))
        .req("value_removal_effects", per_channel("By channel"));
    let shapley = Fields::new()
        .req("variant", one_of(&["simplified", "ordered"]))
        .opt(
            "conversions_by_position",
            map_of("By channel", array(number())),
        );
    let mut totals = Fields::new()
        .req("paths", integer())
        .req("channels", integer())
        .req("conversions", number())
        .req("conversion_value", number())
        .req("nulls", number());
    if with_campaigns {
        totals = totals
            .req("journeys", integer())
            .req("unattributed_conversions", integer());
    }
    let options = Fields::new()
        .req("markov_order", integer())
        .req("time_decay_half_life", number())
        .req("time_decay_unit", one_of(&["steps", "days"]))
        .req("position_first", number())
        .req("position_last", number());
    let mut report = Fields::described(if with_campaigns {
        "Credit per channel for each model, and the variance between them"
    } else {
        "The same report per `channel / campaign`"
    })
    .req(
        "models",
        map_of(
            "By model (`first_touch`, `last_touch`, `last_non_direct`, `linear`, `time_decay`, \
             `position_based`, `markov`, `shapley`, and each with `_value`): credit by channel",
            per_channel("By channel"),
        ),
    )
    .req("variance", map_of("By channel", spread.schema()))
    .req(
        "variance_value",
        map_of("By channel", {
            Fields::described("The spread of one channel's value credit across the models")
                .req("mean", number())
                .req("std_dev", number())
                .req("min", number())
                .req("max", number())
                .req("cv", number())
                .schema()
        }),
    )
    .req("markov", markov.schema())
    .req("shapley", shapley.schema())
    .req("totals", totals.schema())
    .req("options", options.schema());
    if with_campaigns {
        report = report
            .req("campaigns", attribution(false))
            .req("events_without_analytics_consent", integer());
    }
    report.schema()
}

/// `GET /api/v1/audiences`: definitions and member counts.
async fn list(Acting(actor): Acting, State(state): State<ApiState>) -> Answer {
    let list = audiences::audiences_with_counts(state.store.as_ref(), &actor, &state.book).await?;
    ok(json!({ "audiences": list }))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
struct NewAudience {
    name: String,
    /// The rule in its text form, e.g. `event "Order Completed" count >= 1 within 30d`.
    rule: String,
    /// Destinations the members are synced to.
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
