//! The API's contract is checked in: the OpenAPI document the server serves at
//! `/api/v1/openapi.json` is `docs/openapi.json`, and `sightline openapi --roles` is
//! `docs/roles.md`. Both are made from the route registrations (crates/sightline/src/http),
//! so a changed route fails here until they are regenerated:
//!
//!     UPDATE_OPENAPI=1 cargo test -p sightline --test openapi

mod common;

use common::{client, sightline, sightline_json, temp_dir, Backend, Server};
use std::path::PathBuf;
use std::sync::Arc;

fn docs(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(file)
}

/// Fails unless `file` holds `current`; with `UPDATE_OPENAPI=1`, writes it instead.
fn matches_checked_in(file: &str, current: &str) {
    let path = docs(file);
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, current).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == current,
        "docs/{file} differs from what the code documents: regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p sightline --test openapi` and commit it"
    );
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_one() {
    let backend = Backend::Sqlite(Arc::new(temp_dir("openapi")));
    let server = Server::start(&backend, &[]);
    let response = client()
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "served without a token");
    let served = response.text().await.unwrap();
    let document: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    matches_checked_in("openapi.json", &served);
}

#[test]
fn the_role_matrix_is_the_checked_in_one() {
    let output = sightline(&["openapi", "--roles"]);
    assert!(output.status.success());
    matches_checked_in("roles.md", &String::from_utf8(output.stdout).unwrap());
}

#[test]
fn the_command_prints_the_same_document() {
    let output = sightline(&["openapi"]);
    assert!(output.status.success());
    matches_checked_in("openapi.json", &String::from_utf8(output.stdout).unwrap());
}

/// Found by schemathesis: axum answered a path segment that does not parse (an id that is
/// not a number) in plain text, not with the documented JSON error.
#[tokio::test]
async fn a_malformed_path_segment_gets_the_json_error() {
    let backend = Backend::Sqlite(Arc::new(temp_dir("openapi-path")));
    let token = sightline_json(&backend, &["token", "create", "--role", "admin"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let server = Server::start(&backend, &[]);
    let response = client()
        .get(format!("{}/api/v1/tags/not-a-number/log", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
}

/// axum's own answers under `/api/` (a body over the limit, a method the path does not
/// take) come in the API's JSON error shape too, with their headers; the console's pages
/// keep theirs.
#[tokio::test]
async fn rejections_before_a_handler_get_the_json_error() {
    let backend = Backend::Sqlite(Arc::new(temp_dir("openapi-rejections")));
    let token = sightline_json(&backend, &["token", "create", "--role", "admin"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let server = Server::start(&backend, &[]);
    let too_large = client()
        .post(format!("{}/api/v1/audiences", server.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    let body: serde_json::Value = too_large.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("2 MiB"),
        "{body}"
    );

    let wrong_method = client()
        .delete(format!("{}/api/v1/events", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let allow = wrong_method.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    let body: serde_json::Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    let page = client()
        .delete(format!("{}/login", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 405);
    assert_ne!(
        page.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
}
