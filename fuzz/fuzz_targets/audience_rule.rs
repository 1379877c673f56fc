//! The audience rule language, in both forms the API accepts: text (lexer and parser)
//! and JSON. Every rule read prints to text that parses back to the same rule, and its JSON
//! reads back to it too (the printer's and the JSON form's promise).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_audience::{parse, Audience, Rule};

fn check(rule: &Rule, from: &str) {
    let printed = rule.to_string();
    match parse(&printed) {
        Ok(again) => assert_eq!(
            &again, rule,
            "print/parse round trip of {from:?} via {printed:?}"
        ),
        Err(e) => panic!("{from:?} printed as {printed:?}, which does not parse: {e}"),
    }
    let json = rule.to_json();
    match Rule::from_json(&json) {
        Ok(again) => assert_eq!(&again, rule, "JSON round trip of {from:?} via {json}"),
        Err(e) => panic!("{from:?} as JSON {json} does not read back: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rule) = parse(text) {
        check(&rule, text);
        let _ = Audience::new("fuzz", rule);
    }
    if let Ok(rule) = Rule::from_json(text) {
        check(&rule, text);
    }
});
