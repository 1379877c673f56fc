use super::*;
use crate::Plan;
use proptest::prelude::*;
use serde_json::json;

fn plan(enforcement: Value) -> Arc<Plan> {
    let document = json!({
        "enforcement": enforcement,
        "track": {
            "Order Completed": {"properties": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string"},
                    "total": {"type": "number", "minimum": 0},
                    "quantity": {"type": "integer"},
                    "currency": {"enum": ["EUR", "USD"]}
                },
                "required": ["order_id"],
                "additionalProperties": false
            }}
        },
        "identify": {"traits": {"type": "object", "properties": {"age": {"type": "integer"}}}}
    });
    Arc::new(Plan::parse(&document.to_string()).unwrap())
}

fn enforcer(enforcement: Value, fixes: Fixes) -> Enforcer {
    Enforcer::new("web".into(), 3, plan(enforcement), fixes)
}

fn order(properties: Value) -> String {
    json!({"type": "track", "event": "Order Completed", "messageId": "m1", "properties": properties})
        .to_string()
}

fn body(screened: &Screened) -> Value {
    match &screened.verdict {
        Verdict::Rewrite(text) => serde_json::from_str(text).unwrap(),
        other => panic!("not rewritten: {other:?}"),
    }
}

#[test]
fn a_valid_event_is_kept_untouched() {
    let e = enforcer(json!({}), Fixes::default());
    let screened = e.screen(
        EventType::Track,
        &order(json!({"order_id": "o1", "total": 3.5})),
    );
    assert_eq!(screened.verdict, Verdict::Keep);
    assert!(screened.violations.is_empty());
    assert_eq!(screened.event, "Order Completed");
}

#[test]
fn flag_keeps_the_event_and_marks_each_violation_with_its_path() {
    let e = enforcer(json!({}), Fixes::default());
    let screened = e.screen(
        EventType::Track,
        &order(json!({"total": "12", "coupon": "X", "currency": "GBP"})),
    );
    let mut found: Vec<(ViolationKind, &str)> = screened
        .violations
        .iter()
        .map(|v| (v.kind, v.path.as_str()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (ViolationKind::UnplannedProperty, "/properties/coupon"),
            (ViolationKind::InvalidValue, "/properties/currency"),
            (ViolationKind::InvalidValue, "/properties/total"),
            (ViolationKind::MissingRequired, "/properties/order_id"),
        ]
    );
    assert!(screened.violations.iter().all(|v| v.action == Mode::Flag));
    let stored = body(&screened);
    assert_eq!(stored["properties"]["total"], "12", "flag changes no value");
    let marks = &stored["context"]["protocols"];
    assert_eq!(marks["plan"], "web");
    assert_eq!(marks["version"], 3);
    assert_eq!(marks["violations"].as_array().unwrap().len(), 4);
    for violation in &screened.violations {
        assert!(!violation.message.contains("GBP"), "{}", violation.message);
    }
}

#[test]
fn drop_drops_the_whole_event_when_any_violation_says_so() {
    let e = enforcer(json!({"invalid_value": "drop"}), Fixes::default());
    let screened = e.screen(
        EventType::Track,
        &order(json!({"order_id": "o", "total": -1})),
    );
    assert_eq!(screened.verdict, Verdict::Drop);
    assert_eq!(screened.violations.len(), 1);
    assert_eq!(screened.violations[0].action, Mode::Drop);
    // Another kind, still flagged, leaves a valid-valued event in.
    let screened = e.screen(
        EventType::Track,
        &order(json!({"order_id": "o", "extra": 1})),
    );
    assert!(matches!(screened.verdict, Verdict::Rewrite(_)));
}

#[test]
fn omit_removes_only_the_offending_properties() {
    let e = enforcer(
        json!({"invalid_value": "omit", "unplanned_property": "omit"}),
        Fixes::default(),
    );
    let screened = e.screen(
        EventType::Track,
        &order(json!({"order_id": "o", "total": "lots", "coupon": "X", "quantity": 2})),
    );
    let stored = body(&screened);
    assert_eq!(
        stored["properties"],
        json!({"order_id": "o", "quantity": 2})
    );
    assert!(screened.violations.iter().all(|v| v.action == Mode::Omit));
    assert_eq!(
        stored["context"]["protocols"]["violations"][0]["action"],
        "omit"
    );
}

#[test]
fn omit_cannot_fix_a_missing_property_so_that_is_flagged() {
    let e = enforcer(json!({"invalid_value": "omit"}), Fixes::default());
    let screened = e.screen(EventType::Track, &order(json!({"total": 1})));
    assert_eq!(screened.violations.len(), 1);
    assert_eq!(screened.violations[0].kind, ViolationKind::MissingRequired);
    assert_eq!(screened.violations[0].action, Mode::Flag);
}

#[test]
fn unplanned_events_follow_their_mode() {
    let unplanned = json!({"type": "track", "event": "Clicked", "properties": {}}).to_string();
    let allow = enforcer(json!({"unplanned_event": "allow"}), Fixes::default());
    assert_eq!(
        allow.screen(EventType::Track, &unplanned).verdict,
        Verdict::Keep
    );
    let flag = enforcer(json!({}), Fixes::default());
    let screened = flag.screen(EventType::Track, &unplanned);
    assert_eq!(screened.violations[0].kind, ViolationKind::UnplannedEvent);
    assert_eq!(screened.violations[0].path, "/event");
    assert!(matches!(screened.verdict, Verdict::Rewrite(_)));
    let drop = enforcer(json!({"unplanned_event": "drop"}), Fixes::default());
    assert_eq!(
        drop.screen(EventType::Track, &unplanned).verdict,
        Verdict::Drop
    );
}

#[test]
fn calls_without_a_rule_pass_and_traits_are_judged() {
    let e = enforcer(json!({"unplanned_event": "drop"}), Fixes::default());
    let page = json!({"type": "page", "properties": {"anything": 1}}).to_string();
    assert_eq!(e.screen(EventType::Page, &page).verdict, Verdict::Keep);
    let identify = json!({"type": "identify", "traits": {"age": "forty"}}).to_string();
    let screened = e.screen(EventType::Identify, &identify);
    assert_eq!(screened.event, "identify");
    assert_eq!(screened.violations[0].path, "/traits/age");
    let alias = json!({"type": "alias", "previousId": "a"}).to_string();
    assert_eq!(e.screen(EventType::Alias, &alias).verdict, Verdict::Keep);
}

#[test]
fn renames_and_numeric_strings_are_fixed_before_validation() {
    let fixes = Fixes {
        rename_events: [("order_completed".to_string(), "Order Completed".to_string())].into(),
        rename_properties: [("orderId".to_string(), "order_id".to_string())].into(),
        coerce_numbers: true,
    };
    let e = enforcer(json!({"invalid_value": "drop"}), fixes);
    let sent = json!({"type": "track", "event": "order_completed",
        "properties": {"orderId": "o9", "total": " 12.50 ", "quantity": "3"}});
    let screened = e.screen(EventType::Track, &sent.to_string());
    assert!(screened.violations.is_empty(), "{:?}", screened.violations);
    let stored = body(&screened);
    assert_eq!(stored["event"], "Order Completed");
    assert_eq!(
        stored["properties"],
        json!({"total": 12.5, "quantity": 3, "order_id": "o9"})
    );
    assert!(
        stored.get("context").is_none(),
        "a fixed, valid event carries no marks"
    );
    // A string that is not a number for its type stays as sent, and fails.
    let sent = json!({"type": "track", "event": "Order Completed",
        "properties": {"order_id": "o", "quantity": "2.5"}});
    let screened = e.screen(EventType::Track, &sent.to_string());
    assert_eq!(screened.verdict, Verdict::Drop);
}

#[test]
fn a_rename_never_overwrites_a_value_sent_under_the_new_name() {
    let fixes = Fixes {
        rename_properties: [("orderId".to_string(), "order_id".to_string())].into(),
        ..Fixes::default()
    };
    let e = enforcer(json!({"unplanned_property": "omit"}), fixes);
    let screened = e.screen(
        EventType::Track,
        &order(json!({"orderId": "old", "order_id": "new"})),
    );
    let stored = body(&screened);
    assert_eq!(stored["properties"], json!({"order_id": "new"}));
}

/// A plan whose `Checkout` rule was imported from an Iglu schema.
fn iglu_enforcer(enforcement: Value) -> Enforcer {
    let schema = json!({
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": "com.acme", "name": "checkout", "format": "jsonschema", "version": "1-0-2"},
        "type": "object",
        "properties": {"total": {"type": "number"}, "step": {"type": "integer"}},
        "required": ["total"],
        "additionalProperties": false
    });
    let (event, rule) = crate::import::from_iglu(&schema.to_string(), Some("Checkout")).unwrap();
    let mut document: crate::PlanDocument =
        serde_json::from_value(json!({"enforcement": enforcement})).unwrap();
    document.track.insert(event, rule);
    Enforcer::new(
        "shop".into(),
        1,
        Arc::new(Plan::compile(document).unwrap()),
        Fixes::default(),
    )
}

fn self_describing(event: &str, schema: &str, data: Value) -> String {
    json!({"type": "track", "event": event, "messageId": "m1",
           "properties": {"schema": schema, "data": data}})
    .to_string()
}

#[test]
fn a_track_event_carrying_an_iglu_schema_is_judged_by_that_schemas_rule() {
    let e = iglu_enforcer(json!({"invalid_value": "omit", "unplanned_property": "omit"}));
    let uri = "iglu:com.acme/checkout/jsonschema/1-0-2";
    // Its own name need not be the rule's: the schema it carries decides.
    let valid = e.screen(
        EventType::Track,
        &self_describing("checkout", uri, json!({"total": 3.5, "step": 2})),
    );
    assert_eq!(valid.verdict, Verdict::Keep);
    assert_eq!(valid.event, "checkout");

    let screened = e.screen(
        EventType::Track,
        &self_describing(
            "checkout",
            uri,
            json!({"total": 3.5, "step": "two", "x": 1}),
        ),
    );
    let paths: Vec<(&str, Mode)> = screened
        .violations
        .iter()
        .map(|v| (v.path.as_str(), v.action))
        .collect();
    assert_eq!(
        paths,
        [
            ("/properties/data/step", Mode::Omit),
            ("/properties/data/x", Mode::Omit)
        ]
    );
    let stored = body(&screened);
    assert_eq!(stored["properties"]["data"], json!({"total": 3.5}));
    assert_eq!(stored["properties"]["schema"], uri);

    let missing = e.screen(
        EventType::Track,
        &self_describing("checkout", uri, json!({})),
    );
    assert_eq!(missing.violations[0].path, "/properties/data/total");
    assert_eq!(missing.violations[0].kind, ViolationKind::MissingRequired);
}

#[test]
fn an_iglu_schema_the_plan_lacks_is_an_unplanned_event() {
    let e = iglu_enforcer(json!({"unplanned_event": "drop"}));
    // Another version of the schema is another schema, as Iglu resolves them.
    let screened = e.screen(
        EventType::Track,
        &self_describing(
            "Checkout",
            "iglu:com.acme/checkout/jsonschema/1-0-3",
            json!({"total": 1}),
        ),
    );
    assert_eq!(screened.verdict, Verdict::Drop);
    assert_eq!(screened.violations[0].kind, ViolationKind::UnplannedEvent);
    assert_eq!(screened.violations[0].path, "/properties/schema");
    // Properties that only look self-describing (no `iglu:` URI, or no object `data`) are
    // judged by the event's name.
    for properties in [
        json!({"schema": "https://example.com/s.json", "data": {"total": 1}}),
        json!({"schema": "iglu:com.acme/checkout/jsonschema/1-0-2", "data": "x"}),
    ] {
        let sent = json!({"type": "track", "event": "Checkout", "messageId": "m1", "properties": properties});
        let screened = e.screen(EventType::Track, &sent.to_string());
        let judged_by_name = screened
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::UnplannedProperty && v.path == "/properties/schema");
        assert!(judged_by_name, "{sent}: {:?}", screened.violations);
    }
}

#[test]
fn the_common_rule_judges_every_call_as_a_whole_and_never_omits() {
    let document = json!({
        "enforcement": {"invalid_value": "omit", "unplanned_property": "omit"},
        "common": {"call": {"type": "object",
            "properties": {"context": {"type": "object", "properties": {"app": {"type": "string"}},
                "required": ["app"]}, "userId": {"type": "string"}},
            "required": ["context"]}},
        "identify": {"traits": {"type": "object", "properties": {"age": {"type": "integer"}}}}
    });
    let plan = Arc::new(Plan::parse(&document.to_string()).unwrap());
    let e = Enforcer::new("web".into(), 1, plan, Fixes::default());
    let good = json!({"type": "identify", "userId": "u", "context": {"app": "shop"}, "traits": {"age": 3}});
    assert_eq!(
        e.screen(EventType::Identify, &good.to_string()).verdict,
        Verdict::Keep
    );

    let sent = json!({"type": "identify", "userId": 7, "context": {}, "traits": {"age": "x"}});
    let screened = e.screen(EventType::Identify, &sent.to_string());
    let found: Vec<(&str, ViolationKind, Mode)> = screened
        .violations
        .iter()
        .map(|v| (v.path.as_str(), v.kind, v.action))
        .collect();
    assert_eq!(
        found,
        [
            ("/traits/age", ViolationKind::InvalidValue, Mode::Omit),
            ("/context/app", ViolationKind::MissingRequired, Mode::Flag),
            ("/userId", ViolationKind::InvalidValue, Mode::Flag),
        ]
    );
    let stored = body(&screened);
    assert_eq!(stored["userId"], 7, "a call's own key is never omitted");
    assert_eq!(stored["traits"], json!({}));
    // A track event with no rule of its own is judged by the common rule too.
    let track = json!({"type": "track", "event": "Anything", "properties": {}});
    let screened = e.screen(EventType::Track, &track.to_string());
    let found: Vec<(&str, ViolationKind)> = screened
        .violations
        .iter()
        .map(|v| (v.path.as_str(), v.kind))
        .collect();
    assert_eq!(
        found,
        [
            ("/event", ViolationKind::UnplannedEvent),
            ("/context", ViolationKind::MissingRequired)
        ]
    );
}

/// Objects are equal whatever their keys' order, in `const`, `enum` and `uniqueItems`
/// (serde_json's `preserve_order` keeps the order they were written in).
#[test]
fn compared_objects_match_in_any_key_order() {
    let document = json!({"track": {"E": {"properties": {"type": "object", "properties": {
        "pair": {"const": {"a": 1, "b": {"c": 2, "d": 3}}},
        "one_of": {"enum": [{"x": 1, "y": 2}]},
        "set": {"uniqueItems": true}
    }}}}});
    let plan = Arc::new(Plan::parse(&document.to_string()).unwrap());
    let e = Enforcer::new("web".into(), 1, plan, Fixes::default());
    let judged = |properties: &str| {
        let body = format!(r#"{{"type":"track","event":"E","properties":{properties}}}"#);
        e.screen(EventType::Track, &body).violations.len()
    };
    assert_eq!(
        judged(r#"{"pair":{"b":{"d":3,"c":2},"a":1},"one_of":{"y":2,"x":1}}"#),
        0
    );
    assert_eq!(judged(r#"{"pair":{"b":{"d":3,"c":9},"a":1}}"#), 1);
    assert_eq!(judged(r#"{"set":[{"a":1,"b":2},{"b":2,"a":1}]}"#), 1);
    assert_eq!(judged(r#"{"set":[{"a":1,"b":2},{"b":1,"a":2}]}"#), 0);
}

#[test]
fn two_rules_may_not_share_an_iglu_schema() {
    let rule = json!({"iglu": "iglu:com.acme/checkout/jsonschema/1-0-2", "properties": {"type": "object"}});
    let document = json!({"track": {"A": rule, "B": rule}});
    let error = Plan::parse(&document.to_string()).unwrap_err().to_string();
    assert!(error.contains("/track/B/iglu"), "{error}");
    assert!(
        error.contains("already the schema of the rule for \"A\""),
        "{error}"
    );
}

/// Events of every kind, some with a fix or a common rule to apply, for the comparison of
/// the quick path with the whole one.
fn any_event() -> impl Strategy<Value = (EventType, String)> {
    let value = prop_oneof![
        Just(json!("o1")),
        Just(json!("12")),
        Just(json!(3.5)),
        Just(json!(-1)),
        Just(json!(null)),
        Just(json!({"b": 1, "a": 2})),
        Just(json!(["x"])),
    ];
    let key = prop_oneof![
        Just("order_id"),
        Just("total"),
        Just("quantity"),
        Just("currency"),
        Just("orderId"),
        Just("age"),
        Just("schema"),
        Just("data"),
    ];
    let kind = prop_oneof![
        Just(EventType::Track),
        Just(EventType::Identify),
        Just(EventType::Page),
        Just(EventType::Alias),
    ];
    let name = prop_oneof![
        Just("Order Completed"),
        Just("order_completed"),
        Just("Other")
    ];
    (
        kind,
        name,
        proptest::collection::vec((key, value), 0..5),
        any::<bool>(),
    )
        .prop_map(|(kind, name, pairs, carried)| {
            let mut fields = serde_json::Map::new();
            for (k, v) in pairs {
                fields.insert(k.to_string(), v);
            }
            let fields = Value::Object(fields);
            let subject = match (carried, fields.as_object().is_some_and(|f| f.contains_key("schema"))) {
                (true, _) => json!({"schema": "iglu:com.acme/checkout/jsonschema/1-0-2", "data": fields}),
                // A subject that is not an object at all.
                (false, true) => Value::Null,
                (false, false) => fields,
            };
            let key = if kind == EventType::Identify { "traits" } else { "properties" };
            let mut body = json!({"type": kind.as_str(), "event": name, "messageId": "m1", "context": {"app": "x"}});
            body[key] = subject;
            (kind, body.to_string())
        })
}

proptest! {
    /// Whatever the event, the plan and the fixes, the quick path decides as the whole one.
    #[test]
    fn the_quick_path_judges_as_the_whole_body_does(
        (kind, body) in any_event(),
        mode in prop_oneof![Just("flag"), Just("omit"), Just("drop")],
        unplanned in prop_oneof![Just("allow"), Just("flag")],
        fixes in prop_oneof![
            Just(Fixes::default()),
            Just(Fixes { coerce_numbers: true, ..Fixes::default() }),
            Just(Fixes::parse(r#"{"rename_events":{"order_completed":"Order Completed"},"rename_properties":{"orderId":"order_id"}}"#).unwrap()),
        ],
        common in any::<bool>(),
    ) {
        let mut document: crate::PlanDocument = serde_json::from_value(json!({
            "enforcement": {"invalid_value": mode, "unplanned_property": mode, "unplanned_event": unplanned},
            "identify": {"traits": {"type": "object", "properties": {"age": {"type": "integer"}}}}
        })).unwrap();
        document.track = plan(json!({})).document.track.clone();
        if common {
            document.common = serde_json::from_value(json!({"call": {"required": ["context"]}})).unwrap();
        }
        let e = Enforcer::new("web".into(), 1, Arc::new(Plan::compile(document).unwrap()), fixes);
        prop_assert_eq!(e.screen(kind, &body), e.screen_whole(kind, &body));
    }

    /// Whatever the properties, screening never panics, a kept event is the one sent, and
    /// a rewritten one is JSON that still holds the messageId.
    #[test]
    fn screening_any_properties_is_total(
        key in "[a-z_]{1,8}",
        number in proptest::num::f64::ANY,
        text in ".{0,12}",
        mode in prop_oneof![Just("flag"), Just("omit"), Just("drop")],
    ) {
        let e = enforcer(
            json!({"invalid_value": mode, "unplanned_property": mode}),
            Fixes { coerce_numbers: true, ..Fixes::default() },
        );
        let mut properties = json!({"order_id": text.clone(), "total": text});
        properties[key] = serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number);
        let sent = order(properties);
        match e.screen(EventType::Track, &sent).verdict {
            Verdict::Keep | Verdict::Drop => {}
            Verdict::Rewrite(body) => {
                let stored: Value = serde_json::from_str(&body).unwrap();
                prop_assert_eq!(&stored["messageId"], "m1");
            }
        }
    }
}
