//! The web console: server-rendered HTML (maud, checked at compile time) on the main
//! listener, beside the API. Every page and action calls the same service operation as the
//! API, with the same role check; this module only signs people in, renders and parses
//! forms. One module per page family.
//!
//! Sessions: `/login` takes an API token; the session (a random id, kept in the store as
//! its hash with the token's hash and the session's CSRF secret) is known to every node
//! behind a load balancer and outlives a restart; it ends after 12 hours or at sign-out. The cookie is HttpOnly, SameSite=Strict, and Secure when the request
//! came over HTTPS (`X-Forwarded-Proto: https` from the proxy that terminates TLS). Every
//! form posts the session's CSRF secret, compared in constant time; the sign-in form
//! itself is protected by a double-submit cookie. Each request resolves the token again
//! (cached 10 s, like the API), so a revoked token ends its sessions.

mod attribution;
mod audiences;
mod audit;
mod destinations;
mod events;
mod governance;
mod overview;
mod plans;
mod privacy;
mod profiles;
mod scans;
mod sources;

use crate::http::ApiState;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use sightline_core::{secret, time, Role};
use sightline_service::access::{self, Actor};
use sightline_service::Error;
use sightline_store::{Access, ConsoleSession};
use std::collections::HashMap;
use std::time::Duration;

/// The session cookie.
const SESSION: &str = "sl_session";
/// The sign-in form's double-submit cookie.
const LOGIN: &str = "sl_login";
/// How long a session lasts from sign-in.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Nothing from another origin, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes (HTML, outside the API's contract).
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .merge(overview::routes())
        .merge(events::routes())
        .merge(profiles::routes())
        .merge(sources::routes())
        .merge(plans::routes())
        .merge(audiences::routes())
        .merge(destinations::routes())
        .merge(governance::routes())
        .merge(scans::routes())
        .merge(attribution::routes())
        .merge(privacy::routes())
        .merge(audit::routes())
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Starts a session for a token: kept in the store (by the hash of its id), so that every
/// node and a restarted one know it. Its id, for the cookie.
async fn start_session(store: &dyn Access, token_hash: String) -> sightline_store::Result<String> {
    let id = secret::generate("", 43);
    let expires_at = time::now_ms() + SESSION_TTL.as_millis() as i64;
    store
        .start_session(ConsoleSession {
            id_hash: secret::hash(&id),
            token_hash,
            csrf: secret::generate("", 43),
            expires_at,
        })
        .await?;
    Ok(id)
}

/// Equal, in time that depends only on the lengths.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Over HTTPS (as the proxy in front says): cookies get `Secure`.
fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
) -> String {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if https(headers) {
        c.push_str("; Secure");
    }
    c
}

/// A signed-in person: their actor and the session's CSRF secret.
pub(crate) struct Signed {
    pub actor: Actor,
    pub csrf: String,
}

impl Signed {
    /// May this person do what `roles` allow? (What the service will check again.)
    pub fn may(&self, roles: &[Role]) -> bool {
        access::require(&self.actor, roles, "").is_ok()
    }

    /// The posted CSRF secret matches the session's; a 403 page otherwise.
    pub fn check(&self, form: &Form) -> Result<(), Response> {
        match form.get("csrf") {
            Some(sent) if same(sent, &self.csrf) => Ok(()),
            _ => Err(message_page(
                self,
                StatusCode::FORBIDDEN,
                "Refused",
                "The form was not sent from this console's page (CSRF check failed): reload the page and try again.",
            )),
        }
    }

    /// The hidden CSRF field of every form.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

impl FromRequestParts<ApiState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            if parts.method == axum::http::Method::GET {
                Redirect::to(&format!("/login?next={}", encode(&next))).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "sign in first: /login").into_response()
            }
        };
        let Some(id) = cookie(&parts.headers, SESSION) else {
            return Err(to_login());
        };
        let session = match state.store.session(&secret::hash(id), time::now_ms()).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(error_page(None, e.into())),
        };
        match state.tokens.actor(session.token_hash.clone()).await {
            Ok(Some(actor)) => Ok(Signed {
                actor,
                csrf: session.csrf,
            }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(error_page(None, e)),
        }
    }
}

/// A posted form (`application/x-www-form-urlencoded`), the last value of each field.
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("").trim()
    }
}

/// Percent-encodes a query value or path segment.
pub(crate) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The pages of the navigation, each with the roles that may open it.
const NAV: &[(&str, &str, &[Role])] = &[
    (
        "/",
        "Overview",
        &[
            Role::Marketing,
            Role::Security,
            Role::Analyst,
            Role::Privacy,
            Role::Metrics,
        ],
    ),
    ("/events", "Live events", access::READERS),
    ("/profiles", "Profiles", access::PROFILE_READERS),
    ("/audiences", "Audiences", access::READERS),
    ("/destinations", "Destinations", access::READERS),
    ("/governance", "Findings", access::READERS),
    ("/governance/tags", "Tags", access::READERS),
    ("/governance/lineage", "Lineage", access::READERS),
    ("/governance/vendors", "Vendors", access::READERS),
    ("/governance/metrics", "Metrics", access::READERS),
    ("/attribution", "Attribution", access::ATTRIBUTION_READERS),
    ("/privacy", "Privacy", access::PRIVACY),
    ("/audit", "Audit", access::AUDITORS),
    ("/sources", "Sources", access::ADMIN),
    ("/plans", "Tracking plans", access::READERS),
];

/// A whole page: the layout around `body`.
pub(crate) fn page(signed: Option<&Signed>, title: &str, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sightline" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Sightline" }
                    @if let Some(s) = signed {
                        nav aria-label="Console" {
                            ul {
                                @for (href, label, roles) in NAV {
                                    @if s.may(roles) {
                                        li {
                                            @if *href == current {
                                                a href=(href) aria-current="page" { (label) }
                                            } @else {
                                                a href=(href) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        div.who {
                            span { (s.actor.name) " · " (s.actor.role.as_str()) }
                            form method="post" action="/logout" {
                                (s.csrf_field())
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A rendered page as a response.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

pub(crate) fn message_page(
    signed: &Signed,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    respond(
        status,
        page(
            Some(signed),
            title,
            "",
            html! { p.notice role="alert" { (text) } },
        ),
    )
}

/// A service error as a page, with the status the API gives it.
pub(crate) fn error_page(signed: Option<&Signed>, e: Error) -> Response {
    let status = crate::http::status_of(&e);
    let text = match &e {
        Error::Unavailable(_) | Error::Internal(_) => {
            tracing::error!(error = %format!("{e:#}"), "console request failed");
            "The request failed on our side; the error is logged.".to_string()
        }
        other => other.to_string(),
    };
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Not valid",
        _ => "Failed",
    };
    respond(
        status,
        page(
            signed,
            title,
            "",
            html! { p.notice role="alert" { (text) } },
        ),
    )
}

/// What a page handler answers: its page, or the error's.
pub(crate) type Html = Result<Response, Response>;

/// Maps a service error to its page.
pub(crate) trait OrPage<T> {
    fn or_page(self, signed: &Signed) -> Result<T, Response>;
}

impl<T> OrPage<T> for Result<T, Error> {
    fn or_page(self, signed: &Signed) -> Result<T, Response> {
        self.map_err(|e| error_page(Some(signed), e))
    }
}

async fn login_form(headers: HeaderMap, Query(query): Query<HashMap<String, String>>) -> Response {
    login_page(&headers, query.get("next").map(String::as_str), None)
}

fn login_page(headers: &HeaderMap, next: Option<&str>, problem: Option<&str>) -> Response {
    let nonce = secret::generate("", 32);
    let status = if problem.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let body = html! {
        @if let Some(p) = problem { p.notice role="alert" { (p) } }
        form.login method="post" action="/login" {
            input type="hidden" name="csrf" value=(nonce);
            input type="hidden" name="next" value=(next.unwrap_or("/"));
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="off" required;
            p.hint { "A token made with " code { "sightline token create --role ROLE" } "; its role decides what you see and may do." }
            button type="submit" { "Sign in" }
        }
    };
    let mut response = respond(status, page(None, "Sign in", "", body));
    if let Ok(v) = HeaderValue::from_str(&set_cookie(headers, LOGIN, &nonce, "/login", Some(3600)))
    {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn login(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let next = form.text("next");
    // Only a path of this console: never a redirect elsewhere.
    let next = if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    };
    let posted = cookie(&headers, LOGIN).is_some_and(|c| same(c, form.text("csrf")));
    if !posted {
        return login_page(
            &headers,
            Some(next),
            Some("The sign-in form expired: sign in again."),
        );
    }
    let hash = secret::hash(form.text("token"));
    match state.tokens.actor(hash.clone()).await {
        Ok(Some(_)) => {
            let id = match start_session(state.store.as_ref(), hash).await {
                Ok(id) => id,
                Err(e) => return error_page(None, e.into()),
            };
            let mut response = Redirect::to(next).into_response();
            let h = response.headers_mut();
            for c in [
                set_cookie(&headers, SESSION, &id, "/", None),
                set_cookie(&headers, LOGIN, "", "/login", Some(0)),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Ok(None) => login_page(&headers, Some(next), Some("Unknown API token.")),
        Err(e) => error_page(None, e),
    }
}

async fn logout(
    State(state): State<ApiState>,
    signed: Signed,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = signed.check(&Form::parse(&body)) {
        return refused;
    }
    if let Some(id) = cookie(&headers, SESSION) {
        if let Err(e) = state.store.end_session(&secret::hash(id)).await {
            return error_page(Some(&signed), e.into());
        }
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&headers, SESSION, "", "/", Some(0))) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// A time (ms) as the console shows it.
pub(crate) fn when(ms: i64) -> String {
    sightline_core::time::format_ms(ms)
}

/// A JSON value as short text: strings bare, the rest as JSON.
pub(crate) fn short(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Pretty JSON in a `<pre>`.
pub(crate) fn json_block(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { (text) } }
}

/// An event's stored body as JSON (null if it no longer parses: shown, not hidden, by `to_json`).
pub(crate) fn json_body_of(event: &sightline_core::StoredEvent) -> serde_json::Value {
    serde_json::from_str(&event.body).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sl_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(!set_cookie(&h, SESSION, "v", "/", None).contains("Secure"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let c = set_cookie(&h, SESSION, "v", "/", None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
    }
}
