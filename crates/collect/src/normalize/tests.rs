use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};

const NOW: i64 = 1_764_000_000_000;

fn received() -> Received {
    Received {
        at: NOW,
        gpc: false,
    }
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("gen-{n}")
    }
}

fn run(call: Call, body: &Value) -> Result<Parsed, RequestError> {
    parse(
        call,
        body.to_string().as_bytes(),
        received(),
        &Limits::default(),
        &mut ids(),
    )
}

fn single(kind: EventType, body: Value) -> Result<Value, EventError> {
    let parsed = run(Call::Single(kind), &body).expect("request accepted");
    parsed
        .events
        .into_iter()
        .next()
        .unwrap()
        .map(|p| serde_json::from_str(&p.body).unwrap())
}

#[test]
fn track_keeps_unknown_fields_and_sets_server_fields() {
    let event = single(
        EventType::Track,
        json!({"userId":"u1","event":"Order Completed","properties":{"total":19.99,"items":[{"sku":"a"}]},
               "context":{"ip":"1.2.3.4","custom":{"deep":true}},"integrations":{"All":false,"Mixpanel":true},
               "extra":"kept"}),
    )
    .unwrap();
    assert_eq!(
        event["properties"],
        json!({"total":19.99,"items":[{"sku":"a"}]})
    );
    assert_eq!(
        event["context"],
        json!({"ip":"1.2.3.4","custom":{"deep":true}})
    );
    assert_eq!(event["integrations"], json!({"All":false,"Mixpanel":true}));
    assert_eq!(event["extra"], "kept");
    assert_eq!(event["type"], "track");
    assert_eq!(event["messageId"], "gen-1");
    assert_eq!(event["receivedAt"], "2025-11-24T16:00:00.000Z");
    assert_eq!(event["timestamp"], event["receivedAt"]);
    assert!(event.get("gpc").is_none());
}

#[test]
fn clock_skew_is_corrected_from_sent_at() {
    // The device clock is 1 hour fast: it says it sent at NOW+1h, the event at NOW+1h−5s.
    let event = single(
        EventType::Track,
        json!({"userId":"u","event":"e","timestamp":"2025-11-24T16:59:55.000Z","sentAt":"2025-11-24T17:00:00.000Z"}),
    )
    .unwrap();
    assert_eq!(event["timestamp"], "2025-11-24T15:59:55.000Z");
    assert_eq!(event["originalTimestamp"], "2025-11-24T16:59:55.000Z");
    assert_eq!(event["sentAt"], "2025-11-24T17:00:00.000Z");
}

#[test]
fn batch_sent_at_context_and_integrations_apply_to_items() {
    let parsed = run(
        Call::Batch,
        &json!({"sentAt":"2025-11-24T16:00:10.000Z","context":{"library":{"name":"x"},"ip":"1"},
                "integrations":{"All":true},
                "batch":[{"type":"track","event":"e","userId":"u","timestamp":"2025-11-24T16:00:09.000Z",
                          "context":{"ip":"2"}}]}),
    )
    .unwrap();
    let event: Value = serde_json::from_str(&parsed.events[0].as_ref().unwrap().body).unwrap();
    assert_eq!(event["timestamp"], "2025-11-24T15:59:59.000Z");
    assert_eq!(event["context"], json!({"ip":"2","library":{"name":"x"}}));
    assert_eq!(event["integrations"], json!({"All":true}));
}

/// Found by fuzzing (fuzz/fuzz_targets/segment.rs): a batch-level `context` key written
/// with an escape was merged into the item's context unescaped, so the stored event was
/// not JSON (and a quote in the key could have written fields of its own).
#[test]
fn merged_batch_keys_with_escapes_stay_json() {
    let body = br#"{"context":{"lib\u0001ry":{"name":"x"},"a\",\"writeKey\":\"k":1},
        "batch":[{"type":"track","event":"e","userId":"u","context":{"ip":"2"}}]}"#;
    let parsed = parse(
        Call::Batch,
        body,
        received(),
        &Limits::default(),
        &mut ids(),
    )
    .unwrap();
    let stored = &parsed.events[0].as_ref().unwrap().body;
    let event: Value = serde_json::from_str(stored).expect("the stored event is JSON");
    assert_eq!(
        event["context"],
        json!({"ip":"2","lib\u{1}ry":{"name":"x"},"a\",\"writeKey\":\"k":1})
    );
    assert!(event.get("writeKey").is_none());
}

#[test]
fn per_type_rules() {
    let cases = [
        (EventType::Track, json!({"userId":"u"}), "missing_field"),
        (
            EventType::Track,
            json!({"userId":"u","event":7}),
            "wrong_type",
        ),
        (EventType::Alias, json!({"userId":"u"}), "missing_field"),
        (
            EventType::Alias,
            json!({"previousId":"p","anonymousId":"a"}),
            "missing_field",
        ),
        (EventType::Group, json!({"userId":"u"}), "missing_field"),
        (
            EventType::Group,
            json!({"userId":"u","groupId":""}),
            "missing_field",
        ),
        (
            EventType::Identify,
            json!({"traits":{}}),
            "missing_identity",
        ),
        (EventType::Page, json!({"userId":{"x":1}}), "wrong_type"),
        (
            EventType::Identify,
            json!({"userId":"u","traits":[1]}),
            "wrong_type",
        ),
        (
            EventType::Track,
            json!({"userId":"u","event":"e","timestamp":"noon"}),
            "bad_timestamp",
        ),
    ];
    for (kind, body, code) in cases {
        let err = single(kind, body.clone()).unwrap_err();
        assert_eq!(err.code(), code, "{kind} {body}: {err}");
    }
    for (kind, body) in [
        (EventType::Alias, json!({"previousId":"p","userId":"u"})),
        (EventType::Group, json!({"anonymousId":"a","groupId":42})),
        (EventType::Identify, json!({"userId":7})),
        (EventType::Screen, json!({"anonymousId":"a","name":"Home"})),
    ] {
        single(kind, body).unwrap();
    }
}

#[test]
fn path_type_wins_and_write_key_is_never_stored() {
    let parsed = run(
        Call::Single(EventType::Page),
        &json!({"type":"track","userId":"u","writeKey":"secret"}),
    )
    .unwrap();
    assert_eq!(parsed.write_key.as_deref(), Some("secret"));
    let body = &parsed.events[0].as_ref().unwrap().body;
    assert!(!body.contains("secret"));
    assert!(body.contains(r#""type":"page""#));
}

/// Found by fuzzing (fuzz/fuzz_targets/segment.rs): a key spelled with a JSON escape was
/// a second field beside the plain one, so the escaped `writeKey` was stored in the log and
/// the escaped `type` (read last by every later JSON reader) was not the validated one.
#[test]
fn keys_written_with_escapes_are_the_keys_they_spell() {
    let body = br#"{"batch":[{"type":"track","event":"e","userId":"u","typ\u0065":"alias","write\u004bey":"k"}]}"#;
    let parsed = parse(
        Call::Batch,
        body,
        received(),
        &Limits::default(),
        &mut ids(),
    )
    .unwrap();
    // The last `type` wins, as in serde_json: an alias without `previousId` is refused.
    assert_eq!(
        parsed.events[0],
        Err(EventError::MissingField {
            kind: EventType::Alias,
            field: "previousId"
        })
    );
    let body = br#"{"type":"track","event":"e","userId":"u","write\u004bey":"k","writeKey":"w"}"#;
    let parsed = parse(
        Call::Single(EventType::Track),
        body,
        received(),
        &Limits::default(),
        &mut ids(),
    )
    .unwrap();
    assert_eq!(parsed.write_key.as_deref(), Some("w"));
    let stored = &parsed.events[0].as_ref().unwrap().body;
    assert!(!stored.contains("write"), "{stored}");
}

#[test]
fn gpc_is_recorded() {
    let parsed = parse(
        Call::Single(EventType::Track),
        br#"{"userId":"u","event":"e"}"#,
        Received { at: NOW, gpc: true },
        &Limits::default(),
        &mut ids(),
    )
    .unwrap();
    let event: Value = serde_json::from_str(&parsed.events[0].as_ref().unwrap().body).unwrap();
    assert_eq!(event["gpc"], true);
}

#[test]
fn invalid_batch_items_do_not_sink_their_siblings() {
    let parsed = run(
        Call::Batch,
        &json!({"batch":[{"type":"track","userId":"u","event":"ok"},{"type":"track","userId":"u"},
                          {"type":"bogus","userId":"u"},7,{"userId":"u"}]}),
    )
    .unwrap();
    let codes: Vec<_> = parsed
        .events
        .iter()
        .map(|e| e.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "missing_field",
            "unknown_type",
            "not_an_object",
            "missing_type"
        ]
    );
}

#[test]
fn limits_refuse_the_whole_request() {
    let big = "x".repeat(33 * 1024);
    let err = run(
        Call::Single(EventType::Track),
        &json!({"userId":"u","event":big}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "event_too_large");
    assert!(err.is_too_large());

    let item = json!({"type":"track","userId":"u","event":"e","properties":{"p":"y".repeat(400)}});
    let err = run(Call::Batch, &json!({"batch": vec![item.clone(); 2_000]})).unwrap_err();
    assert_eq!(err.code(), "request_too_large");

    // In a batch, an event's size is its size as compact JSON; an item that is not an
    // object is refused on its own, whatever its size.
    let big_item =
        json!({"type":"track","userId":"u","event":"e","properties":{"p":"z".repeat(33 * 1024)}});
    let err = run(Call::Batch, &json!({"batch": [item.clone(), big_item]})).unwrap_err();
    assert_eq!(err.code(), "event_too_large");
    assert!(err.to_string().contains("event 1"), "{err}");
    let parsed = run(
        Call::Batch,
        &json!({"batch": [item.clone(), "w".repeat(33 * 1024)]}),
    )
    .unwrap();
    assert_eq!(
        parsed.events[1].as_ref().unwrap_err().code(),
        "not_an_object"
    );

    let small = json!({"type":"track","userId":"u","event":"e"});
    let err = run(Call::Batch, &json!({"batch": vec![small; 2_501]})).unwrap_err();
    assert_eq!(err.code(), "too_many_events");

    let err = run(
        Call::Batch,
        &json!({"batch":[{"type":"track","userId":"u","event":"e","messageId":"m".repeat(100)}]}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "message_id_too_long");
    assert!(err.to_string().contains("under 100"));

    for (body, code) in [
        (json!({"batch":[]}), "empty_batch"),
        (json!({"batch":{}}), "batch_not_array"),
        (json!([1]), "not_an_object"),
    ] {
        assert_eq!(run(Call::Batch, &body).unwrap_err().code(), code);
    }
}

#[test]
fn malformed_json_says_where() {
    let err = parse(
        Call::Batch,
        b"{\"batch\": [\n  {\"type\": }\n]}",
        received(),
        &Limits::default(),
        &mut ids(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RequestError::MalformedJson {
            line: 2,
            column: 12,
            message: "expected value".into()
        }
    );
}

proptest! {
    #[test]
    fn parser_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        for call in [Call::Batch, Call::Single(EventType::Track)] {
            let _ = parse(call, &body, received(), &Limits::default(), &mut ids());
        }
    }

    #[test]
    fn every_accepted_event_keeps_what_was_sent(
        props in proptest::collection::btree_map("[a-z]{1,8}", any::<i64>(), 0..20),
        user in "[a-zA-Z0-9]{1,20}",
    ) {
        let body = json!({"userId": user, "event": "e", "properties": props});
        let event = single(EventType::Track, body.clone()).unwrap();
        prop_assert_eq!(&event["properties"], &body["properties"]);
        prop_assert_eq!(&event["userId"], &body["userId"]);
        prop_assert!(event["messageId"].is_string());
    }

    #[test]
    fn batch_outcomes_match_items_one_to_one(valid in proptest::collection::vec(any::<bool>(), 1..50)) {
        let items: Vec<Value> = valid
            .iter()
            .map(|&ok| if ok { json!({"type":"track","userId":"u","event":"e"}) } else { json!({"type":"track"}) })
            .collect();
        let parsed = run(Call::Batch, &json!({"batch": items})).unwrap();
        prop_assert_eq!(parsed.events.len(), valid.len());
        for (outcome, ok) in parsed.events.iter().zip(valid) {
            prop_assert_eq!(outcome.is_ok(), ok);
        }
    }
}

#[test]
fn values_are_stored_byte_for_byte() {
    let body = br#"{"userId":"u","event":"e","properties":{"total":1.10,"big":123456789012345678901234567890,"nested":{"z":1,"a":[true, null]}},"context":{"traits":{"name":"\u00e9"}}}"#;
    let parsed = parse(
        Call::Single(EventType::Track),
        body,
        received(),
        &Limits::default(),
        &mut ids(),
    )
    .unwrap();
    let stored = &parsed.events[0].as_ref().unwrap().body;
    assert!(stored.starts_with(
        r#"{"userId":"u","event":"e","properties":{"total":1.10,"big":123456789012345678901234567890,"nested":{"z":1,"a":[true, null]}},"context":{"traits":{"name":"\u00e9"}},"type":"track""#
    ), "{stored}");
}

#[test]
fn a_message_id_with_a_control_character_is_refused_on_its_own() {
    let parsed = run(
        Call::Batch,
        &json!({"batch":[
            {"type":"track","userId":"u","event":"e","messageId":"m-\u{0}-1"},
            {"type":"track","userId":"u","event":"e","messageId":"line\nbreak"},
            {"type":"track","userId":"u","event":"e","messageId":"del\u{7f}"},
            {"type":"track","userId":"u","event":"e","messageId":"ok-1"},
            {"type":"track","userId":"u","event":"e","messageId":"caf\u{e9}-2"}]}),
    )
    .unwrap();
    let codes: Vec<_> = parsed
        .events
        .iter()
        .map(|e| e.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        [
            "bad_message_id",
            "bad_message_id",
            "bad_message_id",
            "ok",
            "ok"
        ]
    );
    let message = parsed.events[1].as_ref().unwrap_err().to_string();
    assert!(message.contains("control character"), "{message}");
    assert!(message.contains("U+000A"), "{message}");

    let err = single(
        EventType::Track,
        json!({"userId":"u","event":"e","messageId":"a\tb"}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "bad_message_id");
}

#[test]
fn a_long_numeric_message_id_is_refused_like_a_long_string() {
    let body = format!(
        r#"{{"batch":[{{"type":"track","userId":"u","event":"e","messageId":{}}}]}}"#,
        "9".repeat(150)
    );
    let err = parse(
        Call::Batch,
        body.as_bytes(),
        received(),
        &Limits::default(),
        &mut ids(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "message_id_too_long");
}

#[test]
fn context_linkage_from_a_client_is_dropped() {
    let event = single(
        EventType::Identify,
        json!({"userId":"u","context":{"ip":"1","linkage":{"probability":0.99}}}),
    )
    .unwrap();
    assert_eq!(event["context"], json!({"ip":"1"}));

    // Also when it comes in with the batch's context.
    let parsed = run(
        Call::Batch,
        &json!({"context":{"linkage":{"probability":0.99}},
                "batch":[{"type":"identify","userId":"u","context":{"ip":"2"}},
                         {"type":"identify","userId":"v"}]}),
    )
    .unwrap();
    for (outcome, context) in parsed.events.iter().zip([json!({"ip":"2"}), json!({})]) {
        let event: Value = serde_json::from_str(&outcome.as_ref().unwrap().body).unwrap();
        assert_eq!(event["context"], context);
    }

    // Also when its key is written with an escape.
    let parsed = raw(
        Call::Single(EventType::Identify),
        r#"{"userId":"u","context":{"ip":"3","l\u0069nkage":{"probability":0.99}}}"#,
    )
    .unwrap();
    let event: Value = serde_json::from_str(&parsed.events[0].as_ref().unwrap().body).unwrap();
    assert_eq!(event["context"], json!({"ip":"3"}));
}

/// The batch is split into its items as the body is read: the key however it is written,
/// the last of a repeated one, and anything but an array refused as before.
#[test]
fn the_batch_is_found_as_the_key_it_spells() {
    let count = |body: &str| raw(Call::Batch, body).map(|p| p.events.len());
    let track = r#"{"type":"track","userId":"u","event":"e"}"#;
    assert_eq!(
        count(&format!(r#"{{"b\u0061tch":[{track},{track}]}}"#)),
        Ok(2)
    );
    assert_eq!(
        count(&format!(
            r#"{{"batch":[{track}],"batch":[{track},{track},{track}]}}"#
        )),
        Ok(3)
    );
    assert_eq!(
        count(&format!(r#"{{"batch":[{track}],"batch":{{"a":[1]}}}}"#))
            .unwrap_err()
            .code(),
        "batch_not_array"
    );
    for value in [r#"{"a":1}"#, r#""x""#, "1", "-1.5", "true", "null"] {
        assert_eq!(
            count(&format!(r#"{{"batch":{value}}}"#))
                .unwrap_err()
                .code(),
            "batch_not_array",
            "{value}"
        );
    }
    assert_eq!(
        count(r#"{"context":{}}"#).unwrap_err().code(),
        "batch_not_array"
    );
    assert_eq!(count(r#"[1]"#).unwrap_err().code(), "not_an_object");
    assert_eq!(
        count(&format!(r#"{{"batch":[{track}]}} x"#))
            .unwrap_err()
            .code(),
        "malformed_json"
    );
    assert_eq!(
        count(&format!(r#"{{"batch":[{track},]}}"#))
            .unwrap_err()
            .code(),
        "malformed_json"
    );
    // The batch's own fields still apply and its write key is still taken.
    let parsed = raw(
        Call::Batch,
        &format!(r#"{{"writeKey":"k","batch":[{track}],"context":{{"ip":"9"}}}}"#),
    )
    .unwrap();
    assert_eq!(parsed.write_key.as_deref(), Some("k"));
    let event: Value = serde_json::from_str(&parsed.events[0].as_ref().unwrap().body).unwrap();
    assert_eq!(event["context"], json!({"ip":"9"}));
}

#[test]
fn a_far_future_timestamp_becomes_received_at() {
    // Without sentAt: a year ahead.
    let event = single(
        EventType::Track,
        json!({"userId":"u","event":"e","timestamp":"2026-11-24T16:00:00.000Z"}),
    )
    .unwrap();
    assert_eq!(event["timestamp"], "2025-11-24T16:00:00.000Z");
    assert_eq!(event["originalTimestamp"], "2026-11-24T16:00:00.000Z");
    // With sentAt: the event claims to come a day after it was sent.
    let event = single(
        EventType::Track,
        json!({"userId":"u","event":"e","timestamp":"2025-11-25T16:00:00.000Z","sentAt":"2025-11-24T16:00:00.000Z"}),
    )
    .unwrap();
    assert_eq!(event["timestamp"], "2025-11-24T16:00:00.000Z");
    // Within the tolerance it stays.
    let event = single(
        EventType::Track,
        json!({"userId":"u","event":"e","timestamp":"2025-11-24T16:00:30.000Z"}),
    )
    .unwrap();
    assert_eq!(event["timestamp"], "2025-11-24T16:00:30.000Z");
}

fn raw(call: Call, body: &str) -> Result<Parsed, RequestError> {
    parse(
        call,
        body.as_bytes(),
        received(),
        &Limits::default(),
        &mut ids(),
    )
}

#[test]
fn a_number_past_a_64_bit_float_refuses_the_request() {
    let digits = "9".repeat(320);
    for body in [
        r#"{"userId":"u","event":"e","properties":{"big":1e400}}"#.to_string(),
        r#"{"userId":"u","event":"e","properties":{"small":-1.5E+309}}"#.to_string(),
        format!(r#"{{"userId":"u","event":"e","properties":{{"long":{digits}}}}}"#),
    ] {
        let refused = raw(Call::Single(EventType::Track), &body).unwrap_err();
        assert_eq!(refused.code(), "number_out_of_range", "{body}");
    }
    let batch = r#"{"batch":[{"type":"track","userId":"u","event":"e"}],"context":{"n":2e999}}"#;
    assert_eq!(
        raw(Call::Batch, batch).unwrap_err().code(),
        "number_out_of_range"
    );
    // In range, or in a string (with escaped quotes before it), numbers are kept as sent.
    for body in [
        r#"{"userId":"u","event":"e","properties":{"big":1e300,"tiny":1e-400,"n":-0.5E2}}"#,
        r#"{"userId":"u","event":"e\"1e400","properties":{"s":"2e999 \\","k":1}}"#,
    ] {
        let parsed = raw(Call::Single(EventType::Track), body).expect(body);
        assert!(parsed.events[0].is_ok(), "{body}");
    }
}

/// `units` as JavaScript's `JSON.stringify` writes them: every unit as a `\uXXXX` escape,
/// so an unpaired surrogate is sent as one.
fn utf16_escaped(units: &[u16]) -> String {
    units.iter().map(|unit| format!("\\u{unit:04x}")).collect()
}

#[test]
fn a_lone_surrogate_is_stored_as_the_replacement_character_and_a_pair_as_sent() {
    let body = format!(
        r#"{{"userId":"u\udc00","event":"e","properties":{{"cut":"ab{}","pair":"{}","text":"\\ud800"}}}}"#,
        utf16_escaped(&[0xD83D]),
        utf16_escaped(&[0xD83D, 0xDE00]),
    );
    let parsed = raw(Call::Single(EventType::Track), &body).expect("accepted");
    let stored: Value = serde_json::from_str(&parsed.events[0].as_ref().unwrap().body).unwrap();
    assert_eq!(stored["userId"], "u\u{FFFD}");
    assert_eq!(stored["properties"]["cut"], "ab\u{FFFD}");
    assert_eq!(stored["properties"]["pair"], "\u{1F600}");
    // An escaped backslash before "ud800" is text, not an escape.
    assert_eq!(stored["properties"]["text"], "\\ud800");
}

proptest! {
    #[test]
    fn a_number_in_range_is_never_refused(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let body = format!(r#"{{"userId":"u","event":"e","properties":{{"x":{x:e}}}}}"#);
        prop_assert!(raw(Call::Single(EventType::Track), &body).is_ok(), "{}", body);
    }

    #[test]
    fn any_utf16_string_is_stored_as_its_lossy_decoding(
        units in proptest::collection::vec(prop_oneof![any::<u16>(), 0xD800u16..0xE000], 0..12),
        batch in any::<bool>(),
    ) {
        let text = utf16_escaped(&units);
        let (call, body) = if batch {
            (Call::Batch, format!(r#"{{"batch":[{{"type":"track","userId":"u","event":"e","properties":{{"s":"{text}"}}}}]}}"#))
        } else {
            (Call::Single(EventType::Track), format!(r#"{{"userId":"u","event":"e","properties":{{"s":"{text}"}}}}"#))
        };
        let parsed = raw(call, &body).expect("accepted");
        let stored: Value = serde_json::from_str(&parsed.events[0].as_ref().unwrap().body).unwrap();
        let decoded = String::from_utf16_lossy(&units);
        prop_assert_eq!(stored["properties"]["s"].as_str(), Some(decoded.as_str()));
    }

    #[test]
    fn no_stored_timestamp_lies_past_received_at_and_the_device_reading_is_kept(
        // From ten years before to ten years after receipt, in ms.
        timestamp in -315_360_000_000i64..315_360_000_000,
        sent in proptest::option::of(-315_360_000_000i64..315_360_000_000),
    ) {
        let mut body = json!({"userId":"u","event":"e",
            "timestamp": sightline_core::time::format_ms(NOW + timestamp)});
        if let Some(sent) = sent {
            body["sentAt"] = json!(sightline_core::time::format_ms(NOW + sent));
        }
        let event = single(EventType::Track, body.clone()).unwrap();
        let stored = parse_ms(event["timestamp"].as_str().unwrap()).unwrap();
        prop_assert!(stored <= NOW + FUTURE_TOLERANCE_MS, "{} stored as {}", body, stored);
        let corrected = match sent {
            Some(sent) => NOW - (sent - timestamp),
            None => NOW + timestamp,
        };
        if corrected <= NOW + FUTURE_TOLERANCE_MS {
            prop_assert_eq!(stored, corrected);
        } else {
            prop_assert_eq!(stored, NOW);
        }
        prop_assert_eq!(&event["originalTimestamp"], &body["timestamp"]);
    }
}

proptest! {
    /// The collector's own strings and the strings it reads agree with serde_json's.
    #[test]
    fn strings_are_written_and_read_as_serde_json_does(text in any::<String>()) {
        let written = crate::raw::json_string(&text);
        prop_assert_eq!(&written, &Value::from(text.as_str()).to_string());
        let raw_value: Box<serde_json::value::RawValue> =
            serde_json::from_str(&written).unwrap();
        prop_assert_eq!(crate::raw::Field::Sent(&raw_value).string(), Some(text));
    }
}
