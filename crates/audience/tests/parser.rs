//! The text form: valid rules and their JSON, print/parse round trips, and errors with
//! positions.

use proptest::prelude::*;
use serde_json::json;
use sightline_audience::{
    parse, CompareOp, Comparison, CountCheck, EventCondition, EventFilter, EventType, Literal,
    Rule, Span, Test, TimeUnit,
};

/// Each text and the JSON form it must parse to.
fn valid_rules() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            r#"event "Order Completed" count >= 1 within 30d"#,
            json!({"event":{"name":"Order Completed","count":{"op":">=","value":1},"within":"30d"}}),
        ),
        (
            r#"event "Order Completed" within 30d"#,
            json!({"event":{"name":"Order Completed","within":"30d"}}),
        ),
        (
            r#"trait plan = "pro""#,
            json!({"trait":{"name":"plan","op":"=","value":"pro"}}),
        ),
        (
            "computed lifetime_value >= 100",
            json!({"computed":{"name":"lifetime_value","op":">=","value":100}}),
        ),
        ("consent advertising", json!({"consent":"advertising"})),
        ("has email", json!({"has":"email"})),
        (
            r#"event "Order Completed" where total > 50 count >= 2 within 7d"#,
            json!({"event":{"name":"Order Completed","where":[{"name":"total","op":">","value":50}],
                            "count":{"op":">=","value":2},"within":"7d"}}),
        ),
        (
            r#"event track "Order Completed" where total > 50 and coupon exists and tags contains "sale" count = 0 within 12h"#,
            json!({"event":{"type":"track","name":"Order Completed","where":[
                {"name":"total","op":">","value":50},{"name":"coupon","op":"exists"},
                {"name":"tags","op":"contains","value":"sale"}],"count":{"op":"=","value":0},"within":"12h"}}),
        ),
        (
            "event page count > 3",
            json!({"event":{"type":"page","count":{"op":">","value":3}}}),
        ),
        ("event", json!({"event":{}})),
        (
            r#"has email and consent advertising and not event "Order Completed" within 1d"#,
            json!({"and":[{"has":"email"},{"consent":"advertising"},
                          {"not":{"event":{"name":"Order Completed","within":"1d"}}}]}),
        ),
        (
            r#"trait plan = "pro" or trait plan = "team" and has phone"#,
            json!({"or":[{"trait":{"name":"plan","op":"=","value":"pro"}},
                         {"and":[{"trait":{"name":"plan","op":"=","value":"team"}},{"has":"phone"}]}]}),
        ),
        (
            r#"(trait plan = "pro" or trait plan = "team") and has phone"#,
            json!({"and":[{"or":[{"trait":{"name":"plan","op":"=","value":"pro"}},
                                 {"trait":{"name":"plan","op":"=","value":"team"}}]},{"has":"phone"}]}),
        ),
        (
            r#"event "Viewed" where price <= -1.5 and "first name" != "Ann" and trait vip = true"#,
            json!({"and":[{"event":{"name":"Viewed","where":[{"name":"price","op":"<=","value":-1.5},
                                                             {"name":"first name","op":"!=","value":"Ann"}]}},
                          {"trait":{"name":"vip","op":"=","value":true}}]}),
        ),
        (
            "not not consent \"ad storage\"",
            json!({"not":{"not":{"consent":"ad storage"}}}),
        ),
        (
            "trait address.city < \"M\"\n  or\n  trait first-name exists",
            json!({"or":[{"trait":{"name":"address.city","op":"<","value":"M"}},
                         {"trait":{"name":"first-name","op":"exists"}}]}),
        ),
        (
            r#"event "A" where count >= 1e3 count <= 5 within 45s"#,
            json!({"event":{"name":"A","where":[{"name":"count","op":">=","value":1000}],
                            "count":{"op":"<=","value":5},"within":"45s"}}),
        ),
        (
            "trait a>=1 and trait b!=-2 and trait c<\"x\" and trait d<=0 and trait e>1e2 and event count=0",
            json!({"and":[{"trait":{"name":"a","op":">=","value":1}},{"trait":{"name":"b","op":"!=","value":-2}},
                          {"trait":{"name":"c","op":"<","value":"x"}},{"trait":{"name":"d","op":"<=","value":0}},
                          {"trait":{"name":"e","op":">","value":100}},{"event":{"count":{"op":"=","value":0}}}]}),
        ),
        (
            r#"trait note = "say \"hi\"\n\u{e9}\\""#,
            json!({"trait":{"name":"note","op":"=","value":"say \"hi\"\né\\"}}),
        ),
    ]
}

#[test]
fn text_and_json_forms_agree() {
    for (text, json) in valid_rules() {
        let parsed = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let from_json =
            Rule::from_json(&json.to_string()).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(parsed, from_json, "{text}");
        assert_eq!(
            Rule::from_json(&parsed.to_json()).unwrap(),
            parsed,
            "{text}"
        );
        let printed = parsed.to_string();
        assert_eq!(
            parse(&printed).unwrap(),
            parsed,
            "{text} printed as {printed}"
        );
        assert_eq!(parse(&printed).unwrap().to_string(), printed);
    }
}

#[test]
fn printing_is_canonical_and_parenthesizes_only_where_needed() {
    let cases = [
        (
            r#"event "Order Completed" within 30d"#,
            r#"event "Order Completed" count >= 1 within 30d"#,
        ),
        (
            "has email and (has phone and has push)",
            "has email and (has phone and has push)",
        ),
        ("((has email))", "has email"),
        (
            "not (has email or has phone)",
            "not (has email or has phone)",
        ),
        ("(has a and has b) or has c", "has a and has b or has c"),
        ("has a or (has b or has c)", "has a or (has b or has c)"),
        (
            "trait \"and\" = 1 and consent \"x y\"",
            "trait \"and\" = 1 and consent \"x y\"",
        ),
        ("trait total = 100.0", "trait total = 100"),
        ("trait \"plain\" = 0.1", "trait plain = 0.1"),
    ];
    for (text, canonical) in cases {
        assert_eq!(parse(text).unwrap().to_string(), canonical, "{text}");
    }
}

#[test]
fn errors_say_what_was_expected_and_where() {
    let cases = [
        (
            "trait x == 1",
            r#"expected a value (a string, a number, true or false) after "=" at 1:10"#,
        ),
        (
            r#"event "A" whre total > 1"#,
            r#"expected "where", "count", "within", "and" or "or" after "A" at 1:11"#,
        ),
        (
            r#"event "A" where x = 1 within 1d count >= 1"#,
            r#"expected "and" or "or" after "1d" at 1:33"#,
        ),
        (
            r#"event "A" count >= 1 where x = 1"#,
            r#"expected "within", "and" or "or" after "1" at 1:22"#,
        ),
        (
            r#"event "A" where x = 1 = 2"#,
            r#"expected "count", "within", "and" or "or" after "1" at 1:23"#,
        ),
        (
            r#"event "A" "B""#,
            r#"expected "where", "count", "within", "and" or "or" after "A" at 1:11"#,
        ),
        (
            r#"event "Order Completed" count >= abc"#,
            r#"expected a number after ">=" at 1:34"#,
        ),
        (
            r#"event "Order Completed" count >="#,
            r#"expected a number after ">=" at 1:33"#,
        ),
        (
            r#"event "Order Completed" count 2"#,
            r#"expected a comparison (=, !=, >, >=, <, <=) after "count" at 1:31"#,
        ),
        (
            "event count >= 2.5",
            "expected a whole number from 0 to 1000 at 1:16",
        ),
        (
            "event count >= 1001",
            "expected a whole number from 0 to 1000 at 1:16",
        ),
        (
            "event within",
            r#"expected a duration like 30d, 12h, 15m or 45s after "within" at 1:13"#,
        ),
        (
            "event within 30",
            r#"expected a duration like 30d, 12h, 15m or 45s after "within" at 1:14"#,
        ),
        (
            "event within 30w",
            "`30w` is neither a number nor a duration like 30d, 12h, 15m or 45s at 1:14",
        ),
        (
            "event within 0d",
            "`0d` is not a duration: the amount must be 1 to 4294967295 at 1:14",
        ),
        (
            "trait plan",
            r#"expected an operator (=, !=, >, >=, <, <=, contains or exists) after "plan" at 1:11"#,
        ),
        (
            "trait plan =",
            r#"expected a value (a string, a number, true or false) after "=" at 1:13"#,
        ),
        (
            "trait vip > true",
            r#"expected a number or a string after ">" at 1:13"#,
        ),
        ("trait = 1", r#"expected a trait name after "trait" at 1:7"#),
        (
            "has",
            r#"expected an identifier type such as email after "has" at 1:4"#,
        ),
        (
            "",
            "expected a condition (event, trait, computed, consent, has, not or \"(\") at 1:1",
        ),
        (
            "plan = 1",
            "expected a condition (event, trait, computed, consent, has, not or \"(\") at 1:1",
        ),
        (
            "has email and",
            r#"expected a condition (event, trait, computed, consent, has, not or "(") after "and" at 1:14"#,
        ),
        (
            "has email has phone",
            r#"expected "and", "or" or the end of the rule after "email" at 1:11"#,
        ),
        (
            "(has email",
            r#"expected "and", "or" or ")" after "email" at 1:11"#,
        ),
        (
            "has email)",
            r#"expected "and", "or" or the end of the rule after "email" at 1:10"#,
        ),
        (
            "has email\nand\n  trait x ! 1",
            "expected \"=\" after \"!\" at 3:11",
        ),
        ("trait x = \"open", "unterminated string at 1:11"),
        (
            "trait x = \"a\\qb\"",
            "expected an escape (\\\", \\\\, \\n, \\r, \\t or \\u{HEX}) after \"\\\" at 1:13",
        ),
        (
            "trait x = \"\\u{d800}\"",
            r"expected a Unicode scalar value like \u{e9} at 1:12",
        ),
        ("trait x = 1e999", "number out of range at 1:11"),
        (
            "trait x = -",
            "expected a number like 12, -3 or 0.5 at 1:11",
        ),
        ("trait é = 1", "unexpected character 'é' at 1:7"),
        (
            "has email and\n  trait \"é\" = @",
            "unexpected character '@' at 2:15",
        ),
        (
            &format!("{}has email", "not ".repeat(40)),
            "rules nest more than 32 levels deep at 1:133",
        ),
    ];
    for (text, message) in cases {
        let error = parse(text).expect_err(text);
        assert_eq!(error.to_string(), message, "{text}");
        assert!(text.is_char_boundary(error.offset));
    }
}

#[test]
fn error_positions_carry_offset_line_and_column() {
    let error = parse("has email or\n  trait plan = ").unwrap_err();
    assert_eq!((error.offset, error.line, error.column), (28, 2, 16));
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("plan".to_owned()),
        Just("count".to_owned()),
        Just("and".to_owned()),
        Just("address.city".to_owned()),
        "[a-z_][a-z0-9_.-]{0,6}",
        any::<String>(),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<bool>().prop_map(Literal::Bool),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Literal::Number),
        (-1000i32..1000).prop_map(|n| Literal::Number(f64::from(n) / 4.0)),
        any::<String>().prop_map(Literal::String),
    ]
}

fn orderable() -> impl Strategy<Value = Literal> {
    literal().prop_filter("orderable", |l| !matches!(l, Literal::Bool(_)))
}

fn comparison() -> impl Strategy<Value = Comparison> {
    let test = prop_oneof![
        literal().prop_map(Test::Eq),
        literal().prop_map(Test::Ne),
        orderable().prop_map(Test::Gt),
        orderable().prop_map(Test::Ge),
        orderable().prop_map(Test::Lt),
        orderable().prop_map(Test::Le),
        literal().prop_map(Test::Contains),
        Just(Test::Exists),
    ];
    (name(), test).prop_map(|(name, test)| Comparison { name, test })
}

fn event_condition() -> impl Strategy<Value = EventCondition> {
    let op = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ]);
    let unit = prop::sample::select(vec![
        TimeUnit::Seconds,
        TimeUnit::Minutes,
        TimeUnit::Hours,
        TimeUnit::Days,
    ]);
    (
        prop::option::of(prop::sample::select(EventType::ALL.to_vec())),
        prop::option::of(any::<String>()),
        prop::collection::vec(comparison(), 0..3),
        op,
        0u32..=1000,
        prop::option::of((1u32.., unit)),
    )
        .prop_map(
            |(event_type, name, conditions, op, value, within)| EventCondition {
                filter: EventFilter {
                    event_type,
                    name,
                    conditions,
                },
                count: CountCheck { op, value },
                within: within.and_then(|(amount, unit)| Span::new(amount, unit)),
            },
        )
}

fn rule() -> impl Strategy<Value = Rule> {
    let leaf = prop_oneof![
        event_condition().prop_map(Rule::Event),
        comparison().prop_map(Rule::Trait),
        comparison().prop_map(Rule::Computed),
        name().prop_map(Rule::Consent),
        name().prop_map(Rule::Has),
    ];
    leaf.prop_recursive(5, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Rule::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Rule::Or),
            inner.prop_map(|r| Rule::Not(Box::new(r))),
        ]
    })
}

/// Words, symbols and fragments of rules, so that random input gets deep into the parser.
fn token_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "event",
            "trait",
            "computed",
            "consent",
            "has",
            "not",
            "and",
            "or",
            "where",
            "count",
            "within",
            "contains",
            "exists",
            "true",
            "false",
            "track",
            "page",
            "(",
            ")",
            "=",
            "!=",
            ">",
            ">=",
            "<",
            "<=",
            "\"Order\"",
            "30d",
            "12h",
            "0d",
            "1.5",
            "-2",
            "1e400",
            "\"",
            "\\",
            "!",
            "plan",
            "total",
            "\n",
            "é",
        ]),
        any::<String>().prop_map(|s| Box::leak(s.into_boxed_str()) as &str),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn printed_rules_parse_back_to_themselves(rule in rule()) {
        let text = rule.to_string();
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&parsed, &rule);
        prop_assert_eq!(Rule::from_json(&rule.to_json()).unwrap(), rule);
    }

    #[test]
    fn the_parser_never_panics_on_any_string(text in any::<String>()) {
        check_error_or_round_trip(&text)?;
    }

    #[test]
    fn the_parser_never_panics_on_rule_fragments(text in token_soup()) {
        check_error_or_round_trip(&text)?;
    }
}

fn check_error_or_round_trip(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(rule) => prop_assert_eq!(parse(&rule.to_string()).unwrap(), rule),
        Err(error) => {
            prop_assert!(text.is_char_boundary(error.offset));
            prop_assert!(error.line >= 1 && error.column >= 1);
        }
    }
    Ok(())
}
