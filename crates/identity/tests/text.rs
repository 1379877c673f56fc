//! The text entry points (`extract_text`, `Graph::process_text`) agree exactly with parsing
//! the text to a `Value` and using `extract` / `Graph::process`.

#[path = "common/population.rs"]
#[allow(dead_code)] // Only the events are needed here, not who sent them.
mod population;

use proptest::prelude::*;
use serde_json::Value;
use sightline_identity::{extract, extract_text, Config, Graph, Rules};

/// What a consumer that parses first gets: text that is not JSON is `null`.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn custom_rules() -> Rules {
    Rules::new(&Config {
        // `email` twice: a configured key may also be a built-in one.
        trait_identifiers: vec!["crm".to_owned(), "email".to_owned()],
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn the_synthetic_population_reads_and_resolves_the_same_from_text() {
    let events: Vec<(i64, String)> = population::generate(3_000, 40_000, 11)
        .into_iter()
        .map(|e| (e.seq, e.body.to_string()))
        .collect();
    for rules in [Rules::default(), custom_rules()] {
        let mut from_value = Graph::new();
        let mut from_text = Graph::new();
        for (seq, text) in &events {
            let value = parse(text);
            assert_eq!(
                extract_text(text, &rules),
                extract(&value, &rules),
                "{text}"
            );
            assert_eq!(
                from_text.process_text(*seq, text, &rules),
                from_value.process(*seq, &value, &rules),
                "{text}"
            );
        }
        assert_eq!(from_text, from_value);
    }
}

/// The keys extraction reads, a few it does not, and escaped spellings of two of them.
const KEYS: &[&str] = &[
    "type",
    "userId",
    "anonymousId",
    "previousId",
    "properties",
    "traits",
    "context",
    "locale",
    "device",
    "id",
    "externalIds",
    "email",
    "phone",
    "crm",
    "name",
    r"user\u0049d",
    r"\u0074ype",
];

/// JSON scalars as text, including numbers that read differently or not at all.
const SCALARS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "42",
    "-12",
    "1.5",
    "1E2",
    "1e400",
    "18446744073709551616",
    r#""""#,
    r#""identify""#,
    r#""alias""#,
    r#""group""#,
    r#""\u0069dentify""#,
    r#""en-GB""#,
    r#""de_DE""#,
    r#""crm_id""#,
    r#""EMAIL""#,
    r#""  Ann@Example.COM ""#,
    r#""n/a""#,
    r#""(201) 555-0123""#,
    r#""07911 123456""#,
    r#""12""#,
    r#""null""#,
    r#""a\"b""#,
    r#""\ud83d\ude00""#,
    r#""\ud800""#,
];

/// JSON text built from the pieces above, with repeated keys and any nesting, so that the
/// fields extraction reads appear in every shape and position.
fn json_text() -> impl Strategy<Value = String> {
    let scalar = prop::sample::select(SCALARS).prop_map(str::to_owned);
    scalar.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            object(KEYS, inner),
        ]
    })
}

/// A whole event: an object most of the time, sometimes cut short or with trailing text.
fn event_text() -> impl Strategy<Value = String> {
    (json_text(), json_text(), 0usize..400, 0u8..10).prop_map(|(text, other, cut, how)| {
        let event = format!(r#"{{"type":{other},"context":{text},"traits":{text},"x":{text}}}"#);
        match how {
            0 => text,
            1 => event.chars().take(cut).collect(),
            2 => format!("{event} x"),
            _ => event,
        }
    })
}

/// An object with entries from `keys` (repeats included) and values from `value`.
fn object(
    keys: &'static [&'static str],
    value: impl Strategy<Value = String>,
) -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(keys), value), 0..6).prop_map(|entries| {
        let entries: Vec<String> = entries
            .into_iter()
            .map(|(key, value)| format!("\"{key}\":{value}"))
            .collect();
        format!("{{{}}}", entries.join(","))
    })
}

/// Mostly values that matter for the field, sometimes any scalar.
fn values(typical: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(typical),
        1 => prop::sample::select(SCALARS),
    ]
    .prop_map(str::to_owned)
    .boxed()
}

/// An object of some of `fields` (repeats included), in any order.
fn fields(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
    let entries: Vec<BoxedStrategy<String>> = fields
        .into_iter()
        .map(|(key, value)| value.prop_map(move |v| format!("\"{key}\":{v}")).boxed())
        .collect();
    prop::collection::vec(prop::strategy::Union::new(entries), 0..6)
        .prop_map(|entries| format!("{{{}}}", entries.join(",")))
        .boxed()
}

/// Segment-shaped events: every field extraction reads, in every position, repeated, null
/// or of the wrong kind.
fn shaped_event() -> impl Strategy<Value = String> {
    let ids = || values(&[r#""u1""#, r#""a1""#, "42", r#"" a2 ""#, "null", "{}"]);
    let traits = || {
        fields(vec![
            (
                "email",
                values(&[r#""  Ann@Example.COM ""#, r#""n/a""#, "null"]),
            ),
            (
                "phone",
                values(&[r#""07911 123456""#, r#""(201) 555-0123""#, r#""12""#]),
            ),
            ("crm", ids()),
            ("name", ids()),
        ])
    };
    let external = fields(vec![
        ("type", values(&[r#""crm_id""#, r#""EMAIL""#, r#"" ""#])),
        ("id", ids()),
    ]);
    let external_ids = prop::collection::vec(prop_oneof![external, ids()], 0..3)
        .prop_map(|items| format!("[{}]", items.join(",")))
        .boxed();
    let context = fields(vec![
        (
            "locale",
            values(&[r#""en-GB""#, r#""de_DE""#, r#""e""#, "5", "null"]),
        ),
        ("traits", prop_oneof![3 => traits(), 1 => ids()].boxed()),
        (
            "device",
            prop_oneof![3 => fields(vec![("id", ids())]), 1 => ids()].boxed(),
        ),
        (
            "externalIds",
            prop_oneof![3 => external_ids, 1 => ids()].boxed(),
        ),
    ]);
    fields(vec![
        (
            "type",
            values(&[r#""identify""#, r#""alias""#, r#""track""#]),
        ),
        ("userId", ids()),
        ("anonymousId", ids()),
        ("previousId", ids()),
        (
            "properties",
            fields(vec![("previousId", ids()), ("path", ids())]),
        ),
        ("traits", traits()),
        ("context", context),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_json_text_extracts_as_its_parsed_value(text in event_text()) {
        for rules in [Rules::default(), custom_rules()] {
            prop_assert_eq!(extract_text(&text, &rules), extract(&parse(&text), &rules), "{}", text);
        }
    }

    #[test]
    fn segment_shaped_text_extracts_as_its_parsed_value(text in shaped_event()) {
        for rules in [Rules::default(), custom_rules()] {
            prop_assert_eq!(extract_text(&text, &rules), extract(&parse(&text), &rules), "{}", text);
        }
    }
}
