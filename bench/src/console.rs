//! `sightline-bench console`: every page of the web console on a store with a million
//! profiles, configured as users run it (profiles, two audiences, a computed trait and a
//! webhook destination). Loads the people and events through the tracking API, signs in
//! as a browser does (the sign-in form's cookie, then the session cookie), and loads each
//! page in turn, sequentially, as one person clicking through; against a keyed read of the
//! same store over the same HTTP stack (`/api/v1/events?after=K&limit=1`), same run. The
//! goal: every page under 200 ms.

use crate::ingest::Setup;
use crate::round3;
use anyhow::{bail, Context, Result};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// The goal for every page, in milliseconds.
const GOAL_MS: f64 = 200.0;

/// The value of the cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}="))?.split(';').next())
        .map(str::to_owned)
}

/// `value` as a form field (every byte but letters and digits percent-encoded).
fn encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs in with `token` as the console's form does; the session cookie.
async fn sign_in(http: &reqwest::Client, url: &str, token: &str) -> Result<String> {
    let form = http.get(format!("{url}/login")).send().await?;
    let csrf = set_cookie(&form, "sl_login").context("the sign-in form set no cookie")?;
    let signed = http
        .post(format!("{url}/login"))
        .header(COOKIE, format!("sl_login={csrf}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!(
            "token={}&csrf={}&next=%2F",
            encoded(token),
            encoded(&csrf)
        ))
        .send()
        .await?;
    if !signed.status().is_redirection() || signed.headers().get(LOCATION).is_none() {
        bail!("signing in answered {}", signed.status());
    }
    set_cookie(&signed, "sl_session").context("signing in set no session")
}

/// The median and worst of `times` requests to `path`, each waited for in turn.
async fn timed(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    auth: (reqwest::header::HeaderName, &str),
    times: usize,
) -> Result<(f64, f64)> {
    let mut all = Vec::with_capacity(times);
    for _ in 0..times {
        let sent = Instant::now();
        let response = http
            .get(format!("{url}{path}"))
            .header(auth.0.clone(), auth.1)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            bail!(
                "{path} answered {status}: {}",
                body.chars().take(300).collect::<String>()
            );
        }
        all.push(sent.elapsed());
    }
    all.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok((ms(all[all.len() / 2]), ms(all[all.len() - 1])))
}

/// The first name in the API's list `path` answers under `key`.
async fn first_name(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    path: &str,
    key: &str,
) -> Result<String> {
    let listed: Value = http
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    listed[key][0]["name"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{path} lists no {key}"))
}

pub async fn run(people: usize, events: usize, times: usize) -> Result<()> {
    let events = events.max(people);
    let setup = Setup::new(None).await?;
    let token = setup.admin_token()?;
    let server = setup.serve()?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let load_s = crate::profiles::load(&http, &server, &setup.key, people, events).await?;
    let url = server.url.as_str();
    let session = sign_in(&http, url, &token).await?;
    let audience = first_name(&http, url, &token, "/api/v1/audiences", "audiences").await?;
    let destination =
        first_name(&http, url, &token, "/api/v1/destinations", "destinations").await?;

    let person = people / 2;
    let pages = [
        "/".to_string(),
        "/events".into(),
        "/profiles".into(),
        format!("/profiles?q=p{person}%40example.com"),
        format!("/profiles/email:p{person}@example.com"),
        "/sources".into(),
        "/audiences".into(),
        format!("/audiences/{audience}"),
        "/destinations".into(),
        format!("/destinations/{destination}"),
        format!("/destinations/{destination}?status=dead"),
        "/governance".into(),
        "/governance/tags".into(),
        "/governance/lineage".into(),
        "/governance/vendors".into(),
        "/attribution".into(),
        "/privacy".into(),
        "/audit".into(),
    ];
    let cookie = format!("sl_session={session}");
    let mut measured = Map::new();
    let mut slowest = (String::new(), 0.0_f64);
    for page in &pages {
        let (p50, max) = timed(&http, url, page, (COOKIE, &cookie), times).await?;
        if max > slowest.1 {
            slowest = (page.clone(), max);
        }
        measured.insert(
            page.clone(),
            json!({"p50_ms": round3(p50), "max_ms": round3(max)}),
        );
    }
    let bearer = format!("Bearer {token}");
    let (baseline_p50, baseline_max) = timed(
        &http,
        url,
        &format!("/api/v1/events?after={}&limit=1", events / 2),
        (reqwest::header::AUTHORIZATION, &bearer),
        times,
    )
    .await?;

    println!(
        "{}",
        json!({
            "bench": "console",
            "configured": "profiles, 2 audiences, 1 computed trait, 1 webhook",
            "profiles": people,
            "events": events,
            "load_events_per_s": (events as f64 / load_s).round(),
            "loads_per_page": times,
            "pages": measured,
            "slowest_page": slowest.0,
            "slowest_max_ms": round3(slowest.1),
            "goal_ms": GOAL_MS,
            "all_under_goal": slowest.1 < GOAL_MS,
            "baseline": "keyed-event-read-over-http",
            "baseline_p50_ms": round3(baseline_p50),
            "baseline_max_ms": round3(baseline_max),
            "ratio": round3(slowest.1 / baseline_max.max(f64::EPSILON)),
        })
    );
    Ok(())
}
