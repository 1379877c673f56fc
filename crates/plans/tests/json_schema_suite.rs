//! The official JSON Schema Test Suite's draft 2020-12 cases for the keywords a tracking
//! plan's rules use, run through a plan: each case's schema is a `track` rule, each
//! instance the event's `properties`, and the event must be judged valid exactly when the
//! suite says it is. `scripts/json-schema-suite.sh` (run by `scripts/setup.sh`) fetches the
//! suite.

use serde_json::{json, Value};
use sightline_core::EventType;
use sightline_plans::{Enforcer, Fixes, Plan};
use std::path::PathBuf;
use std::sync::Arc;

/// The suite's files a plan's rules draw on. Left out: remote and dynamic references
/// (`refRemote`, `dynamicRef`, `anchor`, `id`, `ref`, `defs`, `vocabulary`: a plan never
/// fetches a schema and refuses a `$ref` outside itself), and the optional cases.
const FILES: &[&str] = &[
    "additionalProperties",
    "allOf",
    "anyOf",
    "boolean_schema",
    "const",
    "contains",
    "default",
    "dependentRequired",
    "dependentSchemas",
    "enum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "format",
    "if-then-else",
    "items",
    "maxContains",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minContains",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "multipleOf",
    "not",
    "oneOf",
    "pattern",
    "patternProperties",
    "prefixItems",
    "properties",
    "propertyNames",
    "required",
    "type",
    "unevaluatedItems",
    "unevaluatedProperties",
    "uniqueItems",
];

fn suite() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("json-schema-suite/4.23.0/draft2020-12")
}

#[test]
fn plans_judge_the_json_schema_test_suite_as_it_expects() {
    let dir = suite();
    assert!(
        dir.join("type.json").exists(),
        "the JSON Schema Test Suite is not at {}: run scripts/json-schema-suite.sh",
        dir.display()
    );
    let (mut cases, mut failures) = (0, Vec::new());
    for file in FILES {
        let text = std::fs::read_to_string(dir.join(format!("{file}.json"))).unwrap();
        let groups: Vec<Value> = serde_json::from_str(&text).unwrap();
        for group in &groups {
            let description = group["description"].as_str().unwrap_or_default();
            let document = json!({"track": {"E": {"properties": group["schema"]}}});
            let plan = match Plan::parse(&document.to_string()) {
                Ok(plan) => Arc::new(plan),
                Err(e) => {
                    failures.push(format!("{file} / {description}: refused: {e}"));
                    continue;
                }
            };
            let enforcer = Enforcer::new("suite".into(), 1, plan, Fixes::default());
            for test in group["tests"].as_array().unwrap() {
                cases += 1;
                let event = json!({"type": "track", "event": "E", "properties": test["data"]});
                let screened = enforcer.screen(EventType::Track, &event.to_string());
                let expected = test["valid"].as_bool().unwrap();
                if screened.violations.is_empty() != expected {
                    failures.push(format!(
                        "{file} / {description} / {}: expected valid = {expected}, got {:?}",
                        test["description"].as_str().unwrap_or_default(),
                        screened.violations
                    ));
                }
            }
        }
    }
    assert!(cases > 900, "only {cases} cases ran");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
