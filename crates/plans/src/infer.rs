//! A draft plan from observed events: the event names seen, each property's JSON types,
//! the properties present often enough to be required, and the string properties with few
//! distinct values as enum candidates. A draft to review, never applied by itself.

use crate::document::{PlanDocument, PropertiesRule, TraitsRule};
use serde_json::{json, Map, Value};
use sightline_core::EventType;
use std::collections::{BTreeMap, BTreeSet};

/// What inference decides by.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A property present in at least this share of its events is required.
    pub required_share: f64,
    /// A string property with at most this many distinct values is an enum candidate…
    pub max_enum_values: usize,
    /// …once it was seen at least this many times (else every rare property looks like one).
    pub min_enum_observations: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            required_share: 0.95,
            max_enum_values: 10,
            min_enum_observations: 20,
        }
    }
}

/// What was seen of one property.
#[derive(Debug, Default)]
struct Field {
    present: u64,
    types: BTreeSet<&'static str>,
    /// Distinct string values, until there are more than an enum may have.
    strings: BTreeSet<String>,
    too_many_strings: bool,
}

/// What was seen of one kind of call (a `track` name, identify, group, page, screen).
#[derive(Debug, Default)]
struct Subject {
    count: u64,
    fields: BTreeMap<String, Field>,
}

#[derive(Debug, Default)]
pub struct Inference {
    settings: Settings,
    track: BTreeMap<String, Subject>,
    identify: Subject,
    group: Subject,
    page: Subject,
    screen: Subject,
}

impl Inference {
    pub fn new(settings: Settings) -> Inference {
        Inference {
            settings,
            ..Inference::default()
        }
    }

    /// Takes in one event (its stored JSON body); bodies that are not JSON objects are
    /// skipped.
    pub fn observe(&mut self, event_type: EventType, body: &str) {
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(body) else {
            return;
        };
        let (subject, key) = match event_type {
            EventType::Track => {
                let Some(name) = event.get("event").and_then(Value::as_str) else {
                    return;
                };
                (
                    self.track.entry(name.to_string()).or_default(),
                    "properties",
                )
            }
            EventType::Identify => (&mut self.identify, "traits"),
            EventType::Group => (&mut self.group, "traits"),
            EventType::Page => (&mut self.page, "properties"),
            EventType::Screen => (&mut self.screen, "properties"),
            EventType::Alias => return,
        };
        subject.count += 1;
        let Some(Value::Object(fields)) = event.get(key) else {
            return;
        };
        let max_enum = self.settings.max_enum_values;
        for (name, value) in fields {
            let field = subject.fields.entry(name.clone()).or_default();
            field.present += 1;
            field.types.insert(json_type(value));
            if let (Value::String(text), false) = (value, field.too_many_strings) {
                field.strings.insert(text.clone());
                if field.strings.len() > max_enum {
                    field.too_many_strings = true;
                    field.strings.clear();
                }
            }
        }
    }

    /// The draft: flagging everything (nothing is dropped until a person decides).
    pub fn draft(&self) -> PlanDocument {
        let mut document = PlanDocument::default();
        for (name, subject) in &self.track {
            document.track.insert(
                name.clone(),
                PropertiesRule {
                    description: format!("inferred from {} events", subject.count),
                    iglu: None,
                    properties: self.schema(subject),
                },
            );
        }
        let traits = |subject: &Subject| {
            (subject.count > 0).then(|| TraitsRule {
                description: format!("inferred from {} calls", subject.count),
                traits: self.schema(subject),
            })
        };
        document.identify = traits(&self.identify);
        document.group = traits(&self.group);
        let properties = |subject: &Subject| {
            (subject.count > 0).then(|| PropertiesRule {
                description: format!("inferred from {} calls", subject.count),
                iglu: None,
                properties: self.schema(subject),
            })
        };
        document.page = properties(&self.page);
        document.screen = properties(&self.screen);
        document
    }

    fn schema(&self, subject: &Subject) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (name, field) in &subject.fields {
            let mut schema = Map::new();
            let types: Vec<&str> = normalised_types(&field.types);
            schema.insert(
                "type".into(),
                match types.as_slice() {
                    [one] => json!(one),
                    many => json!(many),
                },
            );
            let only_strings = types == ["string"];
            if only_strings
                && !field.too_many_strings
                && field.present >= self.settings.min_enum_observations
            {
                schema.insert("enum".into(), json!(field.strings));
            }
            properties.insert(name.clone(), Value::Object(schema));
            if field.present as f64 >= self.settings.required_share * subject.count as f64 {
                required.push(name.clone());
            }
        }
        json!({"type": "object", "properties": properties, "required": required})
    }
}

/// `integer` is a `number`: a property seen as both is a number.
fn normalised_types(types: &BTreeSet<&'static str>) -> Vec<&'static str> {
    types
        .iter()
        .copied()
        .filter(|t| !(*t == "integer" && types.contains("number")))
        .collect()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Enforcer, Fixes, Plan, Verdict};
    use std::sync::Arc;

    /// A generated log: 100 orders (revenue sometimes an integer, currency from three
    /// values, a coupon on one in ten), 40 identifies, and one odd event.
    const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];

    fn generated() -> Vec<(EventType, String)> {
        let mut log = Vec::new();
        for i in 0..100 {
            let mut properties = json!({
                "order_id": format!("o{i}"),
                "revenue": if i % 2 == 0 { json!(i) } else { json!(i as f64 + 0.5) },
                "currency": CURRENCIES[i % 3],
            });
            if i % 10 == 0 {
                properties["coupon"] = json!(format!("C{i}"));
            }
            log.push((
                EventType::Track,
                json!({"type": "track", "event": "Order Completed", "properties": properties})
                    .to_string(),
            ));
        }
        for i in 0..40 {
            log.push((
                EventType::Identify,
                json!({"type": "identify", "traits": {"email": format!("u{i}@example.com"), "age": i}})
                    .to_string(),
            ));
        }
        log.push((
            EventType::Track,
            json!({"type": "track", "event": "Odd"}).to_string(),
        ));
        log.push((EventType::Track, "not json".to_string()));
        log
    }

    #[test]
    fn drafts_types_required_properties_and_enums_from_a_log() {
        let mut inference = Inference::new(Settings::default());
        for (kind, body) in generated() {
            inference.observe(kind, &body);
        }
        let draft = inference.draft();
        let order = &draft.track["Order Completed"].properties;
        assert_eq!(order["properties"]["revenue"]["type"], "number");
        assert_eq!(
            order["properties"]["currency"]["enum"],
            json!(["EUR", "GBP", "USD"])
        );
        assert!(
            order["properties"]["order_id"].get("enum").is_none(),
            "100 distinct ids are no enum"
        );
        assert!(
            order["properties"]["coupon"].get("enum").is_none(),
            "10 sightings are too few"
        );
        assert_eq!(
            order["required"],
            json!(["currency", "order_id", "revenue"])
        );
        let traits = &draft.identify.as_ref().unwrap().traits;
        assert_eq!(traits["properties"]["age"]["type"], "integer");
        assert_eq!(draft.track["Odd"].properties["required"], json!([]));
        assert!(draft.group.is_none() && draft.page.is_none());

        // The draft compiles and passes the log it came from.
        let plan = Arc::new(Plan::compile(draft).unwrap());
        let enforcer = Enforcer::new("draft".into(), 1, plan, Fixes::default());
        for (kind, body) in generated() {
            let screened = enforcer.screen(kind, &body);
            assert_eq!(
                screened.verdict,
                Verdict::Keep,
                "{body}: {:?}",
                screened.violations
            );
        }
    }
}
