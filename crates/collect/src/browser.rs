//! First-party collection for the browser: Sightline serves an analytics.js-compatible
//! loader and the settings Segment's analytics.js (analytics-next) asks its CDN for, so that
//! a site points the snippet's CDN host at its own (sub)domain, CNAME'd to Sightline, and
//! sends its events once, to itself, with no third-party request.
//!
//! - `GET /analytics.js/v1/{writeKey}/analytics.min.js`: Sightline's own loader
//!   (`browser/analytics.js`), which takes over the snippet's queue and posts to the
//!   server it came from.
//! - `GET /v1/projects/{writeKey}/settings`: what analytics-next reads before it sends
//!   (`cdnURL` set to this server): the Segment.io integration pointed back at this server's
//!   `/v1`, no other integration, no metrics to anyone.
//!
//! An unknown write key is a 404 either way.

use crate::Collector;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sightline_core::time;
use std::sync::Arc;

/// The loader's path, as the snippet builds it from its CDN host.
pub const LOADER: &str = "/analytics.js/v1/{write_key}/analytics.min.js";
/// The settings' path, as analytics-next builds it from `cdnURL`.
pub const SETTINGS: &str = "/v1/projects/{write_key}/settings";

static SCRIPT: &str = include_str!("browser/analytics.js");

/// Browsers and CDNs may keep both for five minutes: a rotated-out key stops loading soon
/// after its grace ends.
const CACHE: &str = "public, max-age=300";

pub(crate) async fn loader(
    State(collector): State<Arc<Collector>>,
    Path(write_key): Path<String>,
) -> Response {
    if let Err(refused) = known(&collector, &write_key).await {
        return refused;
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(CACHE)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        SCRIPT,
    )
        .into_response()
}

pub(crate) async fn settings(
    State(collector): State<Arc<Collector>>,
    Path(write_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = known(&collector, &write_key).await {
        return refused;
    }
    let (protocol, host) = origin(&headers);
    let body = json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": format!("{host}/v1"),
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": true,
            }
        },
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    });
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static(CACHE)),
            (
                header::VARY,
                HeaderValue::from_static("Host, X-Forwarded-Proto, X-Forwarded-Host"),
            ),
        ],
        Json(body),
    )
        .into_response()
}

/// Where the browser reached this server: `X-Forwarded-Proto` and `X-Forwarded-Host` from
/// a proxy in front, else `Host` over plain HTTP.
fn origin(headers: &HeaderMap) -> (&'static str, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()))
    };
    let protocol = match header("x-forwarded-proto").as_deref() {
        Some("https") => "https",
        _ => "http",
    };
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or_else(|| "localhost".into());
    (protocol, host)
}

async fn known(collector: &Collector, write_key: &str) -> Result<(), Response> {
    match collector.keys.source_for(write_key, time::now_ms()).await? {
        Some(_) => Ok(()),
        None => Err(crate::error(
            StatusCode::NOT_FOUND,
            "unknown_write_key",
            "no source has this write key: copy it from `sightline source list` or rotate-key",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_the_proxys_when_one_says_so() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("10.0.0.5:8088"));
        assert_eq!(origin(&headers), ("http", "10.0.0.5:8088".to_owned()));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https, http"));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("data.shop.example"),
        );
        assert_eq!(origin(&headers), ("https", "data.shop.example".to_owned()));
        headers.insert("x-forwarded-host", HeaderValue::from_static("a b"));
        assert_eq!(origin(&headers).1, "10.0.0.5:8088");
    }
}
