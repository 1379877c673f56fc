//! The real Segment SDKs, pointed at Sightline (only the host changes): every call type
//! through `@segment/analytics-node` and `segment-analytics-python`, read back through
//! the API and compared field by field. `scripts/setup.sh` installs both SDKs.

mod common;

use common::{all_events, backends, credentials, Server};
use serde_json::Value;
use sightline_core::time::parse_ms;
use std::path::PathBuf;
use std::process::Command;

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk")
}

fn run_sdk(program: &str, script: &str, server: &Server, key: &str, run: &str) -> Vec<Value> {
    let output = Command::new(program)
        .current_dir(sdk_dir())
        .args([script, &server.url, key, run])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}; run scripts/setup.sh"));
    assert!(
        output.status.success(),
        "{script} failed (run scripts/setup.sh to install the SDKs): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints the calls it made")
}

/// Each call the SDK made is in the log once, with every field it set.
fn compare(sdk: &str, calls: &[Value], events: &[Value], library: &str) {
    for call in calls {
        let kind = call["type"].as_str().unwrap();
        let matching: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e["type"] == kind
                    && e["userId"] == call["userId"]
                    && e["anonymousId"] == call["anonymousId"]
            })
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{sdk} {kind}: exactly one stored event in {events:#?}"
        );
        let stored = matching[0];
        for (field, sent) in call.as_object().unwrap() {
            if field == "timestamp" {
                // The device's clock reading is kept as originalTimestamp.
                let sent = parse_ms(sent.as_str().unwrap()).unwrap();
                let kept = parse_ms(stored["originalTimestamp"].as_str().unwrap()).unwrap();
                assert_eq!(kept, sent, "{sdk} {kind}: originalTimestamp");
                continue;
            }
            match sent.as_object() {
                // SDKs may add to an object (analytics-node copies a page's category
                // into its properties); everything the caller set must be there as set.
                Some(object) => {
                    for (key, value) in object {
                        assert_eq!(&stored[field][key], value, "{sdk} {kind}: {field}.{key}");
                    }
                }
                None => assert_eq!(&stored[field], sent, "{sdk} {kind}: field {field}"),
            }
        }
        assert!(stored["messageId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()));
        assert!(stored["receivedAt"].is_string() && stored["timestamp"].is_string());
        assert!(stored["sentAt"].is_string(), "{sdk} {kind}: sentAt kept");
        assert!(
            stored.get("writeKey").is_none(),
            "{sdk}: the write key is never stored"
        );
        let lib = stored["context"]["library"]["name"]
            .as_str()
            .unwrap_or_default();
        assert!(
            lib.contains(library),
            "{sdk} {kind}: context.library.name {lib:?}"
        );
    }
}

#[tokio::test]
async fn segment_sdks_send_every_call_type() {
    for backend in backends("sdks").await {
        let creds = credentials(&backend, "sdk");
        let server = Server::start(&backend, &[]);
        let run = backend.name();
        let node_calls = run_sdk("node", "send.mjs", &server, &creds.write_key, run);
        let python_calls = run_sdk("python3", "send.py", &server, &creds.write_key, run);
        assert_eq!(node_calls.len(), 6);
        assert_eq!(python_calls.len(), 6);

        let events = all_events(&server, &creds.token).await;
        assert_eq!(events.len(), 12, "{}", backend.name());
        compare("analytics-node", &node_calls, &events, "analytics-node");
        compare(
            "analytics-python",
            &python_calls,
            &events,
            "analytics-python",
        );
    }
}
