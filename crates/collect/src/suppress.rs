//! The suppression list's hook in collection: an event carrying an identifier that was
//! erased is dropped (and counted), or, when its erasure asked for `strip`, stored without
//! the fields that carry it. The list holds keyed hashes only (HMAC-SHA256 under the
//! install's privacy secret of `type:value`, the identifier normalised as profiles read it);
//! each event's identifiers are read with the identity rules and hashed the same way. An
//! empty list costs nothing.

use serde_json::Value;
use sightline_core::secret::keyed_hash;
use sightline_identity::{extract, extract_text, Identifier, Rules};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// What becomes of a later event carrying an erased identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not stored; counted.
    Drop,
    /// Stored without the fields carrying it.
    Strip,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "drop" => Some(Mode::Drop),
            "strip" => Some(Mode::Strip),
            _ => None,
        }
    }
}

/// What the list decided for one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop,
    /// Kept, these many fields removed.
    Stripped(usize),
}

struct List {
    secret: String,
    modes: HashMap<String, Mode>,
}

/// The suppression list in force, replaced whole when the stored one changes.
pub struct Suppression {
    rules: Rules,
    list: RwLock<Arc<List>>,
}

impl Suppression {
    /// An empty list; identifiers are read from events under `rules`.
    pub fn new(rules: Rules) -> Suppression {
        Suppression {
            rules,
            list: RwLock::new(Arc::new(List {
                secret: String::new(),
                modes: HashMap::new(),
            })),
        }
    }

    /// Puts a list in force: `(keyed hash, mode)` under `secret`.
    pub fn replace(&self, secret: String, entries: impl IntoIterator<Item = (String, Mode)>) {
        let list = Arc::new(List {
            secret,
            modes: entries.into_iter().collect(),
        });
        *self.list.write().unwrap_or_else(|p| p.into_inner()) = list;
    }

    /// How many hashes are listed.
    pub fn len(&self) -> usize {
        self.current().modes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<List> {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Judges one event's body (its JSON text), stripping it in place when that is the
    /// verdict.
    pub fn screen(&self, body: &mut String) -> Verdict {
        let list = self.current();
        if list.modes.is_empty() {
            return Verdict::Keep;
        }
        let hits = list.listed(extract_text(body, &self.rules).identifiers);
        if hits.is_empty() {
            return Verdict::Keep;
        }
        if hits.contains(&Mode::Drop) {
            return Verdict::Drop;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(body) else {
            return Verdict::Drop;
        };
        let listed = |body: &Value| {
            !list
                .listed(extract(body, &self.rules).identifiers)
                .is_empty()
        };
        let mut removed = 0;
        for field in candidates(&value) {
            // A field is taken out when it alone, in an event of the same call, carries a
            // listed identifier (the same one may be in several fields).
            if alone(&value, &field).is_some_and(|alone| listed(&alone)) {
                remove(&mut value, &field);
                removed += 1;
            }
        }
        if listed(&value) {
            // Carried where no field can be taken out: not stored at all.
            return Verdict::Drop;
        }
        // Segment needs one of the two: an anonymous id no one else holds.
        let holds = |key: &str| value.get(key).is_some_and(|v| !v.is_null());
        if !holds("userId") && !holds("anonymousId") {
            value["anonymousId"] = Value::String(uuid::Uuid::new_v4().to_string());
        }
        *body = value.to_string();
        Verdict::Stripped(removed)
    }
}

impl List {
    /// The modes of the identifiers listed.
    fn listed(&self, identifiers: Vec<Identifier>) -> Vec<Mode> {
        identifiers
            .into_iter()
            .filter_map(|identifier| {
                let hash = keyed_hash(
                    &self.secret,
                    &format!("{}:{}", identifier.id_type.as_str(), identifier.value),
                );
                self.modes.get(&hash).copied()
            })
            .collect()
    }
}

/// Where in an event identifiers can be: `(object path, key)` or an `externalIds` entry.
#[derive(Debug, Clone)]
enum Field {
    Key(Vec<&'static str>, String),
    ExternalId(usize),
}

fn candidates(body: &Value) -> Vec<Field> {
    let mut fields: Vec<Field> = ["userId", "anonymousId", "previousId"]
        .iter()
        .map(|k| Field::Key(vec![], k.to_string()))
        .collect();
    fields.push(Field::Key(vec!["properties"], "previousId".into()));
    fields.push(Field::Key(vec!["context", "device"], "id".into()));
    for path in [vec!["traits"], vec!["context", "traits"]] {
        if let Some(Value::Object(traits)) = at(body, &path) {
            for key in traits.keys() {
                fields.push(Field::Key(path.clone(), key.clone()));
            }
        }
    }
    // Last first, so that removing one does not move those still to try.
    if let Some(Value::Array(ids)) = at(body, &["context", "externalIds"]) {
        fields.extend((0..ids.len()).rev().map(Field::ExternalId));
    }
    fields
}

fn at<'a>(body: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(body, |v, key| v.get(key))
}

/// An event of the same call holding only `field` (and `None` when the body lacks it).
fn alone(body: &Value, field: &Field) -> Option<Value> {
    let (path, value) = match field {
        Field::Key(path, key) => (path.as_slice(), at(body, path)?.get(key)?.clone()),
        Field::ExternalId(i) => (
            &["context"][..],
            serde_json::json!({"externalIds": [at(body, &["context", "externalIds"])?.get(*i)?]}),
        ),
    };
    let mut inner = match field {
        Field::Key(_, key) => serde_json::json!({ key.as_str(): value }),
        Field::ExternalId(_) => value,
    };
    for step in path.iter().rev() {
        inner = serde_json::json!({ *step: inner });
    }
    if let Some(call) = body.get("type") {
        inner["type"] = call.clone();
    }
    Some(inner)
}

fn remove(body: &mut Value, field: &Field) {
    let (path, key): (&[&str], Option<&str>) = match field {
        Field::Key(path, key) => (path, Some(key)),
        Field::ExternalId(_) => (&["context", "externalIds"], None),
    };
    let mut here = body;
    for step in path {
        match here.get_mut(*step) {
            Some(next) => here = next,
            None => return,
        }
    }
    match (field, key, here) {
        (_, Some(key), Value::Object(object)) => {
            object.shift_remove(key);
        }
        (Field::ExternalId(i), None, Value::Array(ids)) if *i < ids.len() => {
            ids.remove(*i);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(mode: Mode, ids: &[&str]) -> Suppression {
        let list = Suppression::new(Rules::default());
        list.replace("k".into(), ids.iter().map(|id| (keyed_hash("k", id), mode)));
        list
    }

    #[test]
    fn an_empty_list_keeps_everything() {
        let list = Suppression::new(Rules::default());
        let mut body = json!({"userId": "u1", "type": "track"}).to_string();
        assert_eq!(list.screen(&mut body), Verdict::Keep);
    }

    #[test]
    fn a_listed_email_in_any_case_drops_the_event() {
        let list = listed(Mode::Drop, &["email:ann@example.com"]);
        let mut body = json!({"type": "identify", "anonymousId": "a1",
                              "traits": {"email": "ANN@Example.com"}})
        .to_string();
        assert_eq!(list.screen(&mut body), Verdict::Drop);
        let mut other = json!({"type": "identify", "anonymousId": "a1",
                               "traits": {"email": "bob@example.com"}})
        .to_string();
        assert_eq!(list.screen(&mut other), Verdict::Keep);
    }

    #[test]
    fn strip_removes_the_fields_and_keeps_the_event_valid() {
        let list = listed(Mode::Strip, &["email:ann@example.com", "user_id:ann"]);
        let mut body = json!({"type": "identify", "userId": "ann",
                              "traits": {"email": "ann@example.com", "plan": "pro"},
                              "context": {"traits": {"email": "ann@example.com"}}})
        .to_string();
        assert_eq!(list.screen(&mut body), Verdict::Stripped(3));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body.get("userId").is_none());
        assert_eq!(body["traits"], json!({"plan": "pro"}));
        assert!(body["anonymousId"].is_string());
        assert!(!body.to_string().contains("ann"));
    }

    #[test]
    fn strip_takes_out_external_ids() {
        let list = listed(Mode::Strip, &["crm_id:c-1"]);
        let mut body = json!({"type": "track", "anonymousId": "a9", "event": "x",
            "context": {"externalIds": [
                {"id": "c-1", "type": "crm_id", "collection": "users", "encoding": "none"},
                {"id": "c-2", "type": "crm_id", "collection": "users", "encoding": "none"}]}})
        .to_string();
        assert_eq!(list.screen(&mut body), Verdict::Stripped(1));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["context"]["externalIds"][0]["id"], "c-2");
        assert_eq!(body["anonymousId"], "a9");
    }
}
