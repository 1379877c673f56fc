//! A plan document compiled once: every schema checked against the draft 2020-12
//! meta-schema and built into a validator, so that judging an event compiles nothing.

use crate::document::{Mode, PlanDocument, ViolationKind};
use crate::PlanError;
use jsonschema::Validator;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// A compiled rule: the validator of the properties or traits, and the top-level keys
/// whose schema asks for a number (what numeric-string coercion may convert).
pub struct Rule {
    pub(crate) validator: Validator,
    pub(crate) numeric: HashMap<String, Numeric>,
    /// The rule compares whole values (`const` or `enum` holding an object, `uniqueItems`),
    /// so what it judges is given with every object's keys sorted (see [`sort_keys`]).
    pub(crate) compares_objects: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Numeric {
    Integer,
    Number,
}

/// A plan ready to judge events.
pub struct Plan {
    pub document: PlanDocument,
    pub(crate) track: HashMap<String, Rule>,
    /// The track rule (by event name) of each Iglu URI a rule was imported from: a track
    /// event that carries a self-describing JSON is judged by the rule of its schema.
    pub(crate) iglu: HashMap<String, String>,
    pub(crate) identify: Option<Rule>,
    pub(crate) group: Option<Rule>,
    pub(crate) page: Option<Rule>,
    pub(crate) screen: Option<Rule>,
    pub(crate) common: Option<Rule>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// Reads and compiles a plan written as JSON. Errors say where: the line and column of
    /// a syntax error or unknown key, the JSON pointer of a bad schema or mode.
    pub fn parse(text: &str) -> Result<Plan, PlanError> {
        let document: PlanDocument =
            serde_json::from_str(text).map_err(|e| PlanError::Syntax(e.to_string()))?;
        Plan::compile(document)
    }

    pub fn compile(document: PlanDocument) -> Result<Plan, PlanError> {
        for kind in ViolationKind::ALL {
            let mode = document.enforcement.mode(kind);
            if !kind.allows(mode) {
                return Err(PlanError::Mode {
                    at: format!("/enforcement/{}", kind.as_str()),
                    message: format!(
                        "`{}` is not a mode for {}: use {}",
                        mode.as_str(),
                        kind.as_str(),
                        allowed_modes(kind)
                    ),
                });
            }
        }
        let mut track = HashMap::with_capacity(document.track.len());
        let mut iglu: HashMap<String, String> = HashMap::new();
        for (name, rule) in &document.track {
            let at = format!("/track/{}/properties", escape(name));
            track.insert(name.clone(), compile_rule(&rule.properties, &at)?);
            if let Some(uri) = &rule.iglu {
                if let Some(other) = iglu.insert(uri.clone(), name.clone()) {
                    return Err(PlanError::Schema {
                        at: format!("/track/{}/iglu", escape(name)),
                        message: format!(
                            "{uri} is already the schema of the rule for {other:?}: an Iglu schema is one rule's"
                        ),
                    });
                }
            }
        }
        let identify = match &document.identify {
            Some(rule) => Some(compile_rule(&rule.traits, "/identify/traits")?),
            None => None,
        };
        let group = match &document.group {
            Some(rule) => Some(compile_rule(&rule.traits, "/group/traits")?),
            None => None,
        };
        let page = match &document.page {
            Some(rule) => Some(compile_rule(&rule.properties, "/page/properties")?),
            None => None,
        };
        let screen = match &document.screen {
            Some(rule) => Some(compile_rule(&rule.properties, "/screen/properties")?),
            None => None,
        };
        let common = match &document.common {
            Some(rule) => Some(compile_rule(&rule.call, "/common/call")?),
            None => None,
        };
        Ok(Plan {
            document,
            track,
            iglu,
            common,
            identify,
            group,
            page,
            screen,
        })
    }
}

fn allowed_modes(kind: ViolationKind) -> String {
    [Mode::Allow, Mode::Flag, Mode::Omit, Mode::Drop]
        .into_iter()
        .filter(|m| kind.allows(*m))
        .map(|m| format!("`{}`", m.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One schema compiled under draft 2020-12 (whatever `$schema` it names is checked by the
/// meta-schema, not followed: a plan never fetches anything).
fn compile_rule(schema: &Value, at: &str) -> Result<Rule, PlanError> {
    // The validator compares objects key by key in the order they are held, which with
    // serde_json's `preserve_order` (on in this workspace) is the order they were written:
    // `{"a":1,"b":2}` would not equal `{"b":2,"a":1}`. So the values a rule compares
    // against, and then what it judges, are held with sorted keys.
    let mut sorted = schema.clone();
    let compares_objects = sort_compared_values(&mut sorted);
    let validator = jsonschema::draft202012::options()
        .build(&sorted)
        .map_err(|e| PlanError::Schema {
            at: format!("{at}{}", e.instance_path),
            message: schema_problem(&e),
        })?;
    Ok(Rule {
        validator,
        numeric: numeric_keys(schema),
        compares_objects,
    })
}

/// Sorts the keys of every object under a `const` or `enum` of `schema`; true when the
/// schema compares objects (such a `const` or `enum`, or `uniqueItems`).
fn sort_compared_values(schema: &mut Value) -> bool {
    let mut compares = false;
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "const" | "enum" => {
                        compares |= holds_an_object(value);
                        sort_keys(value);
                    }
                    "uniqueItems" => compares = true,
                    _ => compares |= sort_compared_values(value),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                compares |= sort_compared_values(item);
            }
        }
        _ => {}
    }
    compares
}

fn holds_an_object(value: &Value) -> bool {
    match value {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().any(holds_an_object),
        _ => false,
    }
}

/// Every object in `value` with its keys in sorted order.
pub(crate) fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// What is wrong with a schema, in words that do not repeat the whole offending value.
fn schema_problem(e: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match &e.kind {
        K::Referencing(inner) => format!(
            "a `$ref` cannot be resolved ({inner}): a plan's schemas must be self-contained"
        ),
        _ => {
            let keyword = e
                .schema_path
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            format!("not a valid draft 2020-12 schema ({keyword}): {e}")
        }
    }
}

/// The top-level keys whose schema's `type` is `number` or `integer` (alone or with
/// `null`): the only places where a numeric string is turned into a number.
fn numeric_keys(schema: &Value) -> HashMap<String, Numeric> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return HashMap::new();
    };
    properties
        .iter()
        .filter_map(|(key, sub)| {
            let types: HashSet<&str> = match sub.get("type")? {
                Value::String(t) => [t.as_str()].into_iter().collect(),
                Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                _ => return None,
            };
            if types.contains("string") {
                return None;
            }
            if types.contains("number") {
                Some((key.clone(), Numeric::Number))
            } else if types.contains("integer") {
                Some((key.clone(), Numeric::Integer))
            } else {
                None
            }
        })
        .collect()
}

/// A JSON pointer segment (RFC 6901).
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_refused_with_its_position() {
        let err = Plan::parse("{\n  \"track\": {},\n  \"trak\": {}\n}").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("unknown field `trak`"), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn an_unknown_key_inside_a_rule_is_refused() {
        let err = Plan::parse(r#"{"track": {"Signed Up": {"propertys": {}}}}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `propertys`"),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_schema_is_refused_with_its_pointer() {
        let err = Plan::parse(
            r#"{"track": {"Order/Completed": {"properties": {"type": "object",
                "properties": {"price": {"type": "money"}}}}}}"#,
        )
        .unwrap_err();
        match &err {
            PlanError::Schema { at, .. } => assert!(
                at.starts_with("/track/Order~1Completed/properties/properties/price/type"),
                "{at}"
            ),
            other => panic!("not a schema error: {other:?}"),
        }
    }

    #[test]
    fn an_external_ref_is_refused_not_fetched() {
        let err =
            Plan::parse(r#"{"identify": {"traits": {"$ref": "https://example.com/traits.json"}}}"#)
                .unwrap_err();
        match &err {
            PlanError::Schema { at, message } => {
                assert!(at.starts_with("/identify/traits"), "{at}");
                assert!(message.contains("self-contained"), "{message}");
            }
            other => panic!("not a schema error: {other:?}"),
        }
    }

    #[test]
    fn a_mode_that_makes_no_sense_for_its_kind_is_refused() {
        let err = Plan::parse(r#"{"enforcement": {"missing_required": "omit"}}"#).unwrap_err();
        match &err {
            PlanError::Mode { at, message } => {
                assert_eq!(at, "/enforcement/missing_required");
                assert!(message.contains("`flag`, `drop`"), "{message}");
            }
            other => panic!("not a mode error: {other:?}"),
        }
        let err = Plan::parse(r#"{"enforcement": {"invalid_value": "allow"}}"#).unwrap_err();
        assert!(matches!(err, PlanError::Mode { .. }), "{err:?}");
        let err = Plan::parse(r#"{"enforcement": {"invalid_value": "ignore"}}"#).unwrap_err();
        assert!(matches!(err, PlanError::Syntax(_)), "{err:?}");
    }

    #[test]
    fn numeric_keys_are_the_number_typed_ones() {
        let keys = numeric_keys(&serde_json::json!({"properties": {
            "price": {"type": "number"},
            "quantity": {"type": ["integer", "null"]},
            "sku": {"type": "string"},
            "either": {"type": ["string", "number"]},
            "free": {}
        }}));
        assert_eq!(keys.len(), 2);
        assert_eq!(keys["price"], Numeric::Number);
        assert_eq!(keys["quantity"], Numeric::Integer);
    }
}
