//! Judging one event against a source's plan: fixes first (renames, numeric strings), then
//! the rule of its kind, then the plan's mode for each violation found.

use crate::compile::{escape, Numeric, Plan, Rule};
use crate::document::{Fixes, Mode, ViolationKind};
use jsonschema::error::ValidationErrorKind;
use serde::Serialize;
use serde_json::{Map, Value};
use sightline_core::EventType;
use std::sync::Arc;

/// A source's plan with the source's fixes: what collection asks about each event.
#[derive(Debug)]
pub struct Enforcer {
    pub plan_name: String,
    pub plan_version: i64,
    plan: Arc<Plan>,
    fixes: Fixes,
}

/// One broken rule, as reported to the client, recorded and marked in the event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    /// The JSON pointer of the offending value in the event (`/properties/price`).
    pub path: String,
    /// What is wrong, without the value itself (it may be personal data).
    pub message: String,
    /// What was done about it.
    pub action: Mode,
    /// The offending value, when there is one (a missing property has none): kept only in
    /// masked form (see [`crate::mask`]).
    #[serde(skip)]
    pub value: Option<Value>,
}

/// The outcome for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Stored as it came.
    Keep,
    /// Stored as this body (fixed, omitted from, or marked).
    Rewrite(String),
    /// Not stored.
    Drop,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Screened {
    pub verdict: Verdict,
    /// The event's name for the record: the `track` event name, else the call type.
    pub event: String,
    pub violations: Vec<Violation>,
}

impl Enforcer {
    pub fn new(plan_name: String, plan_version: i64, plan: Arc<Plan>, fixes: Fixes) -> Enforcer {
        Enforcer {
            plan_name,
            plan_version,
            plan,
            fixes,
        }
    }

    /// Judges an event (its Segment JSON) of the given type. An event whose body is not a
    /// JSON object is kept untouched: collection has validated its shape already.
    ///
    /// A `track` event whose `properties` are a Snowplow self-describing JSON
    /// (`{"schema":"iglu:…","data":{…}}`) is judged by the rule imported from that schema,
    /// whatever its name, and the rule applies to `data`.
    pub fn screen(&self, event_type: EventType, body: &str) -> Screened {
        self.keeps_as_sent(event_type, body)
            .unwrap_or_else(|| self.screen_whole(event_type, body))
    }

    /// The usual case, cheaply: an event the plan keeps as sent (no fix applies, nothing
    /// is wrong), found by reading only its name and the object its rule judges (a whole
    /// parse of the body was most of a plan's cost). `None` when that cannot be shown this
    /// way: [`Enforcer::screen_whole`] then decides.
    fn keeps_as_sent(&self, event_type: EventType, body: &str) -> Option<Screened> {
        use serde_json::value::RawValue;
        #[derive(serde::Deserialize)]
        struct Parts<'a> {
            event: Option<String>,
            #[serde(borrow, default, deserialize_with = "present")]
            properties: Option<&'a RawValue>,
            #[serde(borrow, default, deserialize_with = "present")]
            traits: Option<&'a RawValue>,
        }
        /// A field that is there, even as `null` (which a plain `Option` reads as absent,
        /// while a rule judges `null` as sent).
        fn present<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<&'de RawValue>, D::Error> {
            <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
        }
        let judges_traits = match event_type {
            EventType::Track | EventType::Page | EventType::Screen => false,
            EventType::Identify | EventType::Group => true,
            EventType::Alias => return Some(keep(event_type.as_str().to_string())),
        };
        if self.plan.common.is_some() {
            return None;
        }
        let parts: Parts = serde_json::from_str(body).ok()?;
        let name = match event_type {
            EventType::Track => {
                let name = parts.event.unwrap_or_default();
                if self.fixes.rename_events.contains_key(&name) {
                    return None;
                }
                name
            }
            other => other.as_str().to_string(),
        };
        let subject = match judges_traits {
            true => parts.traits,
            false => parts.properties,
        };
        let mut subject: Value = match subject {
            Some(raw) => serde_json::from_str(raw.get()).ok()?,
            None => Value::Object(Map::new()),
        };
        let carried = match event_type {
            EventType::Track => subject_schema(&subject),
            _ => None,
        };
        if carried.is_some() {
            subject = subject.get_mut("data")?.take();
        }
        let rule = self.rule(event_type, &name, carried.as_deref());
        if let Value::Object(fields) = &subject {
            let renamed = self
                .fixes
                .rename_properties
                .keys()
                .any(|k| fields.contains_key(k));
            let coerced = self.fixes.coerce_numbers
                && rule.is_some_and(|rule| {
                    rule.numeric
                        .keys()
                        .any(|k| fields.get(k).is_some_and(Value::is_string))
                });
            if renamed || coerced {
                return None;
            }
        }
        let Some(rule) = rule else {
            let unplanned = event_type == EventType::Track
                && self.plan.document.enforcement.unplanned_event != Mode::Allow;
            return (!unplanned).then(|| keep(name));
        };
        if rule.compares_objects {
            crate::compile::sort_keys(&mut subject);
        }
        rule.validator.is_valid(&subject).then(|| keep(name))
    }

    /// The rule an event is judged by: its kind's, or for a `track` event its name's, or
    /// the rule of the Iglu schema it carries.
    fn rule(&self, event_type: EventType, name: &str, carried: Option<&str>) -> Option<&Rule> {
        match (event_type, carried) {
            (EventType::Track, Some(uri)) => {
                self.plan.iglu.get(uri).and_then(|n| self.plan.track.get(n))
            }
            (EventType::Track, None) => self.plan.track.get(name),
            (EventType::Identify, _) => self.plan.identify.as_ref(),
            (EventType::Group, _) => self.plan.group.as_ref(),
            (EventType::Page, _) => self.plan.page.as_ref(),
            (EventType::Screen, _) => self.plan.screen.as_ref(),
            (EventType::Alias, _) => None,
        }
    }

    /// Judges the event from its whole body, and rewrites it where fixes, omissions or
    /// marks change it.
    fn screen_whole(&self, event_type: EventType, body: &str) -> Screened {
        let mut subject: &[&str] = match event_type {
            EventType::Track | EventType::Page | EventType::Screen => &["properties"],
            EventType::Identify | EventType::Group => &["traits"],
            EventType::Alias => return keep(event_type.as_str().to_string()),
        };
        let Ok(Value::Object(mut event)) = serde_json::from_str::<Value>(body) else {
            return keep(event_type.as_str().to_string());
        };
        let mut changed = false;

        let name = match event_type {
            EventType::Track => {
                let sent = event.get("event").and_then(Value::as_str).unwrap_or("");
                match self.fixes.rename_events.get(sent) {
                    Some(renamed) => {
                        let renamed = renamed.clone();
                        event.insert("event".into(), Value::String(renamed.clone()));
                        changed = true;
                        renamed
                    }
                    None => sent.to_string(),
                }
            }
            other => other.as_str().to_string(),
        };
        let carried = match event_type {
            EventType::Track => carried_schema(&event),
            _ => None,
        };
        if carried.is_some() {
            subject = &["properties", "data"];
        }
        let rule = self.rule(event_type, &name, carried.as_deref());

        if let Some(fields) = object_at_mut(&mut event, subject) {
            changed |= rename_keys(fields, &self.fixes);
            if let (true, Some(rule)) = (self.fixes.coerce_numbers, rule) {
                changed |= coerce_numbers(fields, rule);
            }
        }

        let prefix: String = subject.iter().map(|key| format!("/{key}")).collect();
        let mut violations = Vec::new();
        let mut omit = Vec::new();
        match rule {
            None if event_type == EventType::Track => {
                let mode = self.plan.document.enforcement.unplanned_event;
                if mode != Mode::Allow {
                    let (path, message) = match carried {
                        Some(_) => (
                            "/properties/schema",
                            "no rule in the plan for this event's Iglu schema",
                        ),
                        None => ("/event", "no rule in the plan for this event name"),
                    };
                    violations.push(Violation {
                        kind: ViolationKind::UnplannedEvent,
                        path: path.into(),
                        message: message.into(),
                        action: mode,
                        value: None,
                    });
                }
            }
            None => {}
            Some(rule) => {
                let empty = Value::Object(Map::new());
                let fields = value_at(&event, subject).unwrap_or(&empty);
                let sorted;
                let fields = match rule.compares_objects {
                    true => {
                        sorted = sorted_keys(fields);
                        &sorted
                    }
                    false => fields,
                };
                if !rule.validator.is_valid(fields) {
                    for error in rule.validator.iter_errors(fields) {
                        self.judge(&error, &prefix, fields, &mut violations, Some(&mut omit));
                    }
                }
            }
        }
        if let Some(common) = &self.plan.common {
            // The call's own keys are never omitted (a `userId`, the `context`): a broken
            // common rule flags or drops.
            let call = Value::Object(std::mem::take(&mut event));
            let sorted;
            let judged = match common.compares_objects {
                true => {
                    sorted = sorted_keys(&call);
                    &sorted
                }
                false => &call,
            };
            if !common.validator.is_valid(judged) {
                for error in common.validator.iter_errors(judged) {
                    self.judge(&error, "", judged, &mut violations, None);
                }
            }
            if let Value::Object(call) = call {
                event = call;
            }
        }

        if violations.is_empty() {
            return match changed {
                true => rewrite(name, &event, violations),
                false => keep(name),
            };
        }
        if violations.iter().any(|v| v.action == Mode::Drop) {
            for v in &mut violations {
                v.action = Mode::Drop;
            }
            return Screened {
                verdict: Verdict::Drop,
                event: name,
                violations,
            };
        }
        if let Some(fields) = object_at_mut(&mut event, subject) {
            for key in &omit {
                fields.shift_remove(key);
            }
        }
        mark(&mut event, &self.plan_name, self.plan_version, &violations);
        rewrite(name, &event, violations)
    }

    /// One validation error as a violation with its action; an omission is only possible
    /// for a top-level property of the judged object, and only where `omit` is given (else
    /// the event is flagged instead). `prefix` is the JSON pointer of the judged object in
    /// the event (`/properties`).
    fn judge(
        &self,
        error: &jsonschema::ValidationError<'_>,
        prefix: &str,
        subject: &Value,
        violations: &mut Vec<Violation>,
        mut omit: Option<&mut Vec<String>>,
    ) {
        let enforcement = &self.plan.document.enforcement;
        let pointer = error.instance_path.as_str();
        let top_key = top_level_key(pointer);
        match &error.kind {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let mode = enforcement.unplanned_property;
                for key in unexpected {
                    let path = format!("{prefix}{pointer}/{}", escape(key));
                    let value = subject
                        .pointer(&format!("{pointer}/{}", escape(key)))
                        .cloned();
                    // Only a key of the properties or traits themselves can be omitted.
                    let action = match (mode, pointer.is_empty(), omit.as_deref_mut()) {
                        (Mode::Omit, true, Some(omit)) => {
                            omit.push(key.clone());
                            Mode::Omit
                        }
                        (Mode::Omit, _, _) => Mode::Flag,
                        (other, _, _) => other,
                    };
                    violations.push(Violation {
                        kind: ViolationKind::UnplannedProperty,
                        path,
                        message: "not in the plan".into(),
                        action,
                        value,
                    });
                }
            }
            ValidationErrorKind::Required { property } => {
                let missing = property.as_str().unwrap_or_default();
                violations.push(Violation {
                    kind: ViolationKind::MissingRequired,
                    path: format!("{prefix}{pointer}/{}", escape(missing)),
                    message: "required but missing".into(),
                    action: enforcement.missing_required,
                    value: None,
                });
            }
            kind => {
                let action = match (enforcement.invalid_value, top_key, omit) {
                    (Mode::Omit, Some(key), Some(omit)) => {
                        if !omit.contains(&key) {
                            omit.push(key);
                        }
                        Mode::Omit
                    }
                    (Mode::Omit, _, _) => Mode::Flag,
                    (other, _, _) => other,
                };
                violations.push(Violation {
                    kind: ViolationKind::InvalidValue,
                    path: format!("{prefix}{pointer}"),
                    message: describe(kind, error.schema_path.as_str()),
                    action,
                    value: Some(error.instance.clone().into_owned()),
                });
            }
        }
    }
}

/// The Iglu URI of a track event's self-describing properties (`{"schema":"iglu:…",
/// "data":{…}}`, as Snowplow's trackers send a self-describing event), if they are one.
fn carried_schema(event: &Map<String, Value>) -> Option<String> {
    subject_schema(event.get("properties")?)
}

/// The Iglu URI of properties that are a self-describing JSON.
fn subject_schema(properties: &Value) -> Option<String> {
    let uri = properties.get("schema")?.as_str()?;
    (uri.starts_with("iglu:") && properties.get("data").is_some_and(Value::is_object))
        .then(|| uri.to_string())
}

/// A copy of `value` with every object's keys sorted, for a rule that compares objects.
fn sorted_keys(value: &Value) -> Value {
    let mut sorted = value.clone();
    crate::compile::sort_keys(&mut sorted);
    sorted
}

/// The value under `path` (object keys from the event's root).
fn value_at<'a>(event: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(event.get(*first)?, |value, key| value.get(*key))
}

/// The object under `path`, when it is one.
fn object_at_mut<'a>(
    event: &'a mut Map<String, Value>,
    path: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(event.get_mut(*first)?, |value, key| value.get_mut(*key))?
        .as_object_mut()
}

fn keep(event: String) -> Screened {
    Screened {
        verdict: Verdict::Keep,
        event,
        violations: Vec::new(),
    }
}

fn rewrite(event: String, body: &Map<String, Value>, violations: Vec<Violation>) -> Screened {
    let verdict = match serde_json::to_string(body) {
        Ok(text) => Verdict::Rewrite(text),
        // A map of JSON values always serialises; were it ever not to, the event is kept
        // as sent rather than lost.
        Err(_) => Verdict::Keep,
    };
    Screened {
        verdict,
        event,
        violations,
    }
}

/// The first segment of a JSON pointer, unescaped: the property or trait it is under.
fn top_level_key(pointer: &str) -> Option<String> {
    let rest = pointer.strip_prefix('/')?;
    let segment = rest.split('/').next()?;
    Some(segment.replace("~1", "/").replace("~0", "~"))
}

fn rename_keys(subject: &mut Map<String, Value>, fixes: &Fixes) -> bool {
    let mut changed = false;
    for (old, new) in &fixes.rename_properties {
        if subject.contains_key(new) {
            continue;
        }
        if let Some(value) = subject.shift_remove(old) {
            subject.insert(new.clone(), value);
            changed = true;
        }
    }
    changed
}

fn coerce_numbers(subject: &mut Map<String, Value>, rule: &Rule) -> bool {
    let mut changed = false;
    for (key, numeric) in &rule.numeric {
        let Some(Value::String(text)) = subject.get(key) else {
            continue;
        };
        if let Some(number) = parse_number(text.trim(), *numeric) {
            subject.insert(key.clone(), Value::Number(number));
            changed = true;
        }
    }
    changed
}

/// A numeric string as a JSON number: an integer for `integer`, any finite number for
/// `number`; anything else (empty, `NaN`, `1e999`, `12 apples`) stays a string and fails
/// validation as sent.
fn parse_number(text: &str, numeric: Numeric) -> Option<serde_json::Number> {
    if let Ok(integer) = text.parse::<i64>() {
        return Some(integer.into());
    }
    match numeric {
        Numeric::Integer => None,
        Numeric::Number => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64),
    }
}

/// The violations in the event itself, as Segment Protocols marks them, so that everything
/// downstream (destinations, exports) can tell a flagged event apart.
fn mark(event: &mut Map<String, Value>, plan: &str, version: i64, violations: &[Violation]) {
    let marks: Vec<Value> = violations
        .iter()
        .map(|v| {
            serde_json::json!({
                "type": v.kind.as_str(),
                "path": v.path,
                "message": v.message,
                "action": v.action.as_str(),
            })
        })
        .collect();
    let context = event
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()));
    if !context.is_object() {
        *context = Value::Object(Map::new());
    }
    if let Value::Object(context) = context {
        context.insert(
            "protocols".into(),
            serde_json::json!({"plan": plan, "version": version, "violations": marks}),
        );
    }
}

/// A validation error in words, without the offending value.
fn describe(kind: &ValidationErrorKind, schema_path: &str) -> String {
    use ValidationErrorKind as K;
    match kind {
        K::Type { kind } => format!("not of type {}", type_names(kind)),
        K::Enum { options } => format!("not one of {options}"),
        K::Constant { expected_value } => format!("not {expected_value}"),
        K::Minimum { limit } => format!("less than the minimum {limit}"),
        K::Maximum { limit } => format!("more than the maximum {limit}"),
        K::ExclusiveMinimum { limit } => format!("not more than {limit}"),
        K::ExclusiveMaximum { limit } => format!("not less than {limit}"),
        K::MinLength { limit } => format!("shorter than {limit} characters"),
        K::MaxLength { limit } => format!("longer than {limit} characters"),
        K::MinItems { limit } => format!("fewer than {limit} items"),
        K::MaxItems { limit } => format!("more than {limit} items"),
        K::Pattern { pattern } => format!("does not match the pattern {pattern:?}"),
        K::Format { format } => format!("not a valid {format}"),
        K::MultipleOf { multiple_of } => format!("not a multiple of {multiple_of}"),
        K::UniqueItems => "has duplicate items".into(),
        _ => {
            let keyword = schema_path.rsplit('/').next().unwrap_or_default();
            format!("does not satisfy `{keyword}`")
        }
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    use jsonschema::error::TypeKind;
    match kind {
        TypeKind::Single(t) => t.to_string(),
        TypeKind::Multiple(types) => types
            .into_iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

#[cfg(test)]
mod tests;
