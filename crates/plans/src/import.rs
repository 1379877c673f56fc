//! Other products' plan formats: Segment's tracking plan JSON (read and written) and
//! Snowplow's self-describing (Iglu) schemas (read).
//!
//! Segment's rules (its Config API and the Public API's export) are JSON Schemas of the
//! whole call: an event's properties schema sits at `properties.properties`, identify and
//! group traits at `properties.traits`. The Public API's newer list form (`rules` as an
//! array of `{type, key, jsonSchema}`) is read too.

use crate::document::{any_object, CommonRule, PlanDocument, PropertiesRule, TraitsRule};
use crate::PlanError;
use serde_json::{json, Map, Value};

/// The meta-schema URI Segment's rules name.
const SEGMENT_SCHEMA: &str = "http://json-schema.org/draft-07/schema#";

/// A plan from Segment's tracking plan JSON: the plan object itself, or it wrapped as
/// `{"trackingPlan": …}` or `{"data": {"trackingPlan": …}}`. Returns the plan's name when
/// the file gives one.
pub fn from_segment(text: &str) -> Result<(Option<String>, PlanDocument), PlanError> {
    let value: Value = serde_json::from_str(text).map_err(|e| PlanError::Syntax(e.to_string()))?;
    let mut plan = &value;
    for wrapper in ["data", "trackingPlan"] {
        if let Some(inner) = plan.get(wrapper) {
            plan = inner;
        }
    }
    let name = ["display_name", "name"]
        .iter()
        .find_map(|key| plan.get(*key).and_then(Value::as_str))
        .map(str::to_string);
    let rules = plan.get("rules").ok_or_else(|| {
        PlanError::Import("no `rules`: not a Segment tracking plan (expected `rules.events`, `rules.identify`, `rules.group`)".into())
    })?;
    let mut document = PlanDocument {
        description: plan
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        ..PlanDocument::default()
    };
    match rules {
        Value::Object(rules) => read_rule_object(rules, &mut document)?,
        Value::Array(list) => read_rule_list(list, &mut document)?,
        _ => {
            return Err(PlanError::Import(
                "`rules` is neither an object nor a list".into(),
            ))
        }
    }
    Ok((name, document))
}

fn read_rule_object(
    rules: &Map<String, Value>,
    document: &mut PlanDocument,
) -> Result<(), PlanError> {
    if let Some(events) = rules.get("events") {
        let events = events
            .as_array()
            .ok_or_else(|| PlanError::Import("`rules.events` is not a list".into()))?;
        for (index, event) in events.iter().enumerate() {
            let name = event.get("name").and_then(Value::as_str).ok_or_else(|| {
                PlanError::Import(format!("`rules.events[{index}]` has no `name`"))
            })?;
            let schema = event.get("rules").unwrap_or(&Value::Null);
            document.track.insert(
                name.to_string(),
                PropertiesRule {
                    description: text(event, "description"),
                    iglu: None,
                    properties: part(schema, "properties"),
                },
            );
        }
    }
    if let Some(identify) = rules.get("identify") {
        document.identify = Some(traits_rule(identify));
    }
    if let Some(group) = rules.get("group") {
        document.group = Some(traits_rule(group));
    }
    if let Some(global) = rules.get("global") {
        document.common = common_rule(global);
    }
    Ok(())
}

/// Segment's common rule, unless it says nothing (`{}`, or only its `$schema` and
/// `type: object`, as Segment writes an empty one).
fn common_rule(schema: &Value) -> Option<CommonRule> {
    let mut call = schema.as_object()?.clone();
    call.remove("$schema");
    let says_something = call
        .iter()
        .any(|(key, value)| !(key == "type" && value == "object"));
    says_something.then(|| CommonRule {
        description: String::new(),
        call: Value::Object(call),
    })
}

fn read_rule_list(list: &[Value], document: &mut PlanDocument) -> Result<(), PlanError> {
    for (index, rule) in list.iter().enumerate() {
        let kind = rule.get("type").and_then(Value::as_str).unwrap_or_default();
        let schema = rule.get("jsonSchema").unwrap_or(&Value::Null);
        match kind.to_ascii_uppercase().as_str() {
            "TRACK" => {
                let name = rule.get("key").and_then(Value::as_str).ok_or_else(|| {
                    PlanError::Import(format!("`rules[{index}]` is a TRACK rule without a `key`"))
                })?;
                document.track.insert(
                    name.to_string(),
                    PropertiesRule {
                        description: text(rule, "description"),
                        iglu: None,
                        properties: part(schema, "properties"),
                    },
                );
            }
            "IDENTIFY" => document.identify = Some(traits_rule(schema)),
            "GROUP" => document.group = Some(traits_rule(schema)),
            "PAGE" => {
                document.page = Some(PropertiesRule {
                    description: String::new(),
                    iglu: None,
                    properties: part(schema, "properties"),
                })
            }
            "COMMON" => document.common = common_rule(schema),
            other => {
                return Err(PlanError::Import(format!(
                    "`rules[{index}]` has type {other:?}: expected TRACK, IDENTIFY, GROUP, PAGE or COMMON"
                )))
            }
        }
    }
    Ok(())
}

fn traits_rule(whole_call: &Value) -> TraitsRule {
    TraitsRule {
        description: String::new(),
        traits: part(whole_call, "traits"),
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The schema of one field of the call (`properties`, `traits`) from a schema of the whole
/// call; any schema when the rule says nothing about it.
fn part(whole_call: &Value, field: &str) -> Value {
    whole_call
        .get("properties")
        .and_then(|p| p.get(field))
        .cloned()
        .unwrap_or_else(any_object)
}

/// The plan in Segment's shape (what `from_segment` reads back to the same plan).
pub fn to_segment(name: &str, document: &PlanDocument) -> Value {
    let events: Vec<Value> = document
        .track
        .iter()
        .map(|(event, rule)| {
            json!({
                "name": event,
                "description": rule.description,
                "rules": whole_call("properties", &rule.properties),
                "version": 1,
            })
        })
        .collect();
    let mut rules = json!({"events": events});
    if let Some(identify) = &document.identify {
        rules["identify"] = whole_call("traits", &identify.traits);
    }
    if let Some(group) = &document.group {
        rules["group"] = whole_call("traits", &group.traits);
    }
    if let Some(common) = &document.common {
        let mut global = common.call.clone();
        if let Value::Object(global) = &mut global {
            global.insert("$schema".into(), SEGMENT_SCHEMA.into());
        }
        rules["global"] = global;
    }
    json!({"name": name, "description": document.description, "rules": rules})
}

fn whole_call(field: &str, schema: &Value) -> Value {
    json!({
        "$schema": SEGMENT_SCHEMA,
        "type": "object",
        "properties": {field: schema},
    })
}

/// A `track` rule from a Snowplow self-describing schema: the event name is `event` if
/// given, else the schema's `self.name`; the rule keeps the schema's Iglu URI.
pub fn from_iglu(text: &str, event: Option<&str>) -> Result<(String, PropertiesRule), PlanError> {
    let value: Value = serde_json::from_str(text).map_err(|e| PlanError::Syntax(e.to_string()))?;
    let Value::Object(mut schema) = value else {
        return Err(PlanError::Import("an Iglu schema is a JSON object".into()));
    };
    let header = schema.remove("self").ok_or_else(|| {
        PlanError::Import("no `self`: not a self-describing schema (expected `self.vendor`, `self.name`, `self.format`, `self.version`)".into())
    })?;
    let field = |key: &str| -> Result<String, PlanError> {
        header
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| PlanError::Import(format!("`self.{key}` is missing or not a string")))
    };
    let (vendor, name, format, version) = (
        field("vendor")?,
        field("name")?,
        field("format")?,
        field("version")?,
    );
    if format != "jsonschema" {
        return Err(PlanError::Import(format!(
            "`self.format` is {format:?}: only `jsonschema` schemas can be imported"
        )));
    }
    let well_formed_version = version.split('-').count() == 3
        && version
            .split('-')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed_version {
        return Err(PlanError::Import(format!(
            "`self.version` is {version:?}: Iglu versions are MODEL-REVISION-ADDITION, e.g. 1-0-0"
        )));
    }
    // The `$schema` of an Iglu schema names Snowplow's meta-schema, which a plan does not
    // fetch; the rest is plain JSON Schema.
    schema.remove("$schema");
    let event = event.map_or(name.clone(), str::to_string);
    Ok((
        event,
        PropertiesRule {
            description: schema
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            iglu: Some(format!("iglu:{vendor}/{name}/{format}/{version}")),
            properties: Value::Object(schema),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Plan;

    const SEGMENT: &str = r#"{
      "trackingPlan": {
        "name": "workspaces/acme/tracking-plans/rs_1",
        "display_name": "Acme web",
        "rules": {
          "global": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
          "events": [
            {"name": "Order Completed", "description": "Checkout done", "version": 1,
             "rules": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
               "properties": {"properties": {"type": "object",
                 "properties": {"revenue": {"type": "number"}}, "required": ["revenue"]}},
               "required": ["properties"]}}
          ],
          "identify": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"traits": {"type": "object", "properties": {"email": {"type": "string"}}}}},
          "group": {"type": "object", "properties": {}}
        }
      }
    }"#;

    #[test]
    fn reads_a_segment_plan_and_exports_it_back_the_same() {
        let (name, document) = from_segment(SEGMENT).unwrap();
        assert_eq!(name.as_deref(), Some("Acme web"));
        let rule = &document.track["Order Completed"];
        assert_eq!(rule.description, "Checkout done");
        assert_eq!(rule.properties["required"], json!(["revenue"]));
        assert_eq!(
            document.identify.as_ref().unwrap().traits["properties"]["email"]["type"],
            "string"
        );
        assert_eq!(document.group.as_ref().unwrap().traits, any_object());
        assert_eq!(document.common, None, "an empty global rule is no rule");
        Plan::compile(document.clone()).expect("an imported plan compiles");

        let exported = to_segment("Acme web", &document).to_string();
        let (again_name, again) = from_segment(&exported).unwrap();
        assert_eq!(again_name.as_deref(), Some("Acme web"));
        assert_eq!(again, document);
    }

    #[test]
    fn reads_the_public_api_rule_list() {
        let text = r#"{"data": {"trackingPlan": {"name": "tp", "rules": [
            {"type": "TRACK", "key": "Signed Up", "version": 1,
             "jsonSchema": {"properties": {"properties": {"type": "object", "required": ["plan"]}}}},
            {"type": "IDENTIFY", "key": "", "jsonSchema": {"properties": {"traits": {"type": "object"}}}},
            {"type": "COMMON", "jsonSchema": {"$schema": "http://json-schema.org/draft-07/schema#",
             "type": "object", "properties": {"context": {"type": "object", "required": ["app"]}}}}
        ]}}}"#;
        let (name, document) = from_segment(text).unwrap();
        assert_eq!(name.as_deref(), Some("tp"));
        assert_eq!(
            document.track["Signed Up"].properties["required"],
            json!(["plan"])
        );
        assert!(document.identify.is_some());
        let common = document.common.as_ref().expect("the COMMON rule is kept");
        assert_eq!(
            common.call,
            json!({"type": "object", "properties": {"context": {"type": "object", "required": ["app"]}}})
        );
        // Exported, it is Segment's `global` rule, and reads back the same.
        let exported = to_segment("tp", &document);
        assert_eq!(
            exported["rules"]["global"]["properties"]["context"]["required"],
            json!(["app"])
        );
        let (_, again) = from_segment(&exported.to_string()).unwrap();
        assert_eq!(again, document);
        let bad = r#"{"rules": [{"type": "ALIAS"}]}"#;
        assert!(from_segment(bad)
            .unwrap_err()
            .to_string()
            .contains("rules[0]"));
        assert!(matches!(from_segment("{}"), Err(PlanError::Import(_))));
    }

    #[test]
    fn reads_an_iglu_schema_as_a_track_rule() {
        let text = r#"{
          "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
          "description": "A checkout",
          "self": {"vendor": "com.acme", "name": "checkout", "format": "jsonschema", "version": "1-0-2"},
          "type": "object",
          "properties": {"sku": {"type": "string", "maxLength": 32}},
          "required": ["sku"],
          "additionalProperties": false
        }"#;
        let (event, rule) = from_iglu(text, None).unwrap();
        assert_eq!(event, "checkout");
        assert_eq!(
            rule.iglu.as_deref(),
            Some("iglu:com.acme/checkout/jsonschema/1-0-2")
        );
        assert!(rule.properties.get("self").is_none());
        assert!(rule.properties.get("$schema").is_none());
        let (event, _) = from_iglu(text, Some("Checkout Started")).unwrap();
        assert_eq!(event, "Checkout Started");
        let mut document = PlanDocument::default();
        document.track.insert(event, rule);
        Plan::compile(document).expect("an Iglu schema compiles");
    }

    #[test]
    fn refuses_what_is_not_an_iglu_schema() {
        let no_self = r#"{"type": "object"}"#;
        assert!(from_iglu(no_self, None)
            .unwrap_err()
            .to_string()
            .contains("self"));
        let bad_version =
            r#"{"self": {"vendor": "v", "name": "n", "format": "jsonschema", "version": "1.0"}}"#;
        assert!(from_iglu(bad_version, None)
            .unwrap_err()
            .to_string()
            .contains("MODEL-REVISION-ADDITION"));
        let other_format =
            r#"{"self": {"vendor": "v", "name": "n", "format": "thrift", "version": "1-0-0"}}"#;
        assert!(from_iglu(other_format, None)
            .unwrap_err()
            .to_string()
            .contains("jsonschema"));
    }
}
