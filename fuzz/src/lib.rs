//! What several fuzz targets share: the checks on a tracking request's outcome.

use serde_json::Value;
use sightline_collect::normalize::{self, Call, Limits, Received};
use sightline_core::EventType;

/// Reads `body` as the collector does and checks every event it prepares: the stored text
/// is a JSON object whose `type` is the event's type and whose `messageId` is the event's
/// id (as the log's dedup key and every later reader see it), and no write key is stored.
pub fn check_segment(call: Call, body: &[u8], limits: &Limits, received: Received) {
    let mut ids = 0u32;
    let mut new_id = || {
        ids += 1;
        format!("fuzz-{ids}")
    };
    let Ok(parsed) = normalize::parse(call, body, received, limits, &mut new_id) else {
        return;
    };
    if let Call::Batch = call {
        assert!(!parsed.events.is_empty());
        assert!(parsed.events.len() <= limits.max_batch_events);
    }
    for prepared in parsed.events.into_iter().flatten() {
        let stored: Value = match serde_json::from_str(&prepared.body) {
            Ok(value) => value,
            Err(e) => panic!("stored body is not JSON ({e}): {}", prepared.body),
        };
        let object = stored.as_object().expect("the stored body is an object");
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .and_then(EventType::parse);
        assert_eq!(
            kind,
            Some(prepared.event_type),
            "the stored type differs from the validated one: {}",
            prepared.body
        );
        if let Some(Value::String(id)) = object.get("messageId") {
            assert_eq!(
                id, &prepared.message_id,
                "stored messageId differs: {}",
                prepared.body
            );
        }
        assert!(
            !object.contains_key("writeKey"),
            "a write key is stored: {}",
            prepared.body
        );
        assert!(object.contains_key("receivedAt"));
    }
}
