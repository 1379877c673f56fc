//! Parsing only the parts of an event a reader looks at.
//!
//! A stored event is ~550 bytes of JSON, most of it properties and context a given
//! processor never reads; `serde_json::Value` with `preserve_order` builds an `IndexMap`
//! and a `String` for every one of those keys. [`parse`] walks the same text but builds
//! only the keys a [`Keep`] names, skipping the rest without allocating, and returns a
//! `Value` that every reader of the full one reads the same at the kept paths.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// Which part of a JSON value to build.
#[derive(Debug, Clone, Copy)]
pub enum Keep<'a> {
    /// The whole value.
    Whole,
    /// Of an object, only these keys, each pruned in turn. A value that is not an object is
    /// built whole (readers that expect an object see what the full parse gives them).
    Keys(&'a [(&'a str, Keep<'a>)]),
}

/// The JSON `text` with only what `keep` names: at every kept path, the same value as
/// `serde_json::from_str::<Value>(text)` has there. Fails where the full parse fails
/// (text that is not JSON), also in the skipped parts.
pub fn parse(text: &str, keep: &Keep<'_>) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = keep.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

impl<'de> DeserializeSeed<'de> for &Keep<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self {
            Keep::Whole => serde::Deserialize::deserialize(deserializer),
            Keep::Keys(keys) => deserializer.deserialize_any(Pruning(keys)),
        }
    }
}

/// Builds a value, pruning it to `0` when it is an object.
struct Pruning<'a>(&'a [(&'a str, Keep<'a>)]);

impl<'de> Visitor<'de> for Pruning<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = Map::new();
        while let Some(key) = map.next_key_seed(Key)? {
            match self.0.iter().find(|(name, _)| *name == key) {
                Some((_, keep)) => {
                    kept.insert(key.into_owned(), map.next_value_seed(keep)?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An object key, borrowed from the text unless it holds escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SIGNALS: Keep = Keep::Keys(&[
        ("timestamp", Keep::Whole),
        (
            "context",
            Keep::Keys(&[("consent", Keep::Whole), ("tcf", Keep::Whole)]),
        ),
    ]);

    #[test]
    fn keeps_only_the_named_paths() {
        let text = r#"{"type":"track","timestamp":"2026-01-01T00:00:00Z","properties":{"a":[1,{"b":2}]},
            "context":{"ip":"1.2.3.4","consent":{"categoryPreferences":{"Ads":true}},"tcf":"CP"}}"#;
        assert_eq!(
            parse(text, &SIGNALS).unwrap(),
            json!({"timestamp": "2026-01-01T00:00:00Z",
                   "context": {"consent": {"categoryPreferences": {"Ads": true}}, "tcf": "CP"}})
        );
    }

    #[test]
    fn a_kept_path_that_is_not_an_object_is_built_whole() {
        let text = r#"{"context":[1,"x",null,2.5,{"ip":"1"}],"timestamp":7}"#;
        assert_eq!(
            parse(text, &SIGNALS).unwrap(),
            json!({"context": [1, "x", null, 2.5, {"ip": "1"}], "timestamp": 7})
        );
        assert_eq!(parse("\"text\"", &SIGNALS).unwrap(), json!("text"));
    }

    #[test]
    fn escaped_keys_match_and_repeated_keys_keep_the_last() {
        let text = r#"{"time\u0073tamp":1,"timestamp":2}"#;
        assert_eq!(parse(text, &SIGNALS).unwrap(), json!({"timestamp": 2}));
    }

    #[test]
    fn what_is_not_json_fails_also_in_skipped_parts() {
        assert!(parse(r#"{"properties":{"a":}}"#, &SIGNALS).is_err());
        assert!(parse(r#"{"timestamp":1} trailing"#, &SIGNALS).is_err());
        assert!(parse("", &SIGNALS).is_err());
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec!["timestamp", "context", "consent", "tcf", "ip", "a"]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        /// At every kept path the pruned value equals the full one.
        #[test]
        fn agrees_with_the_full_parse_at_kept_paths(value in json_value()) {
            let text = value.to_string();
            let full: Value = serde_json::from_str(&text).unwrap();
            let pruned = parse(&text, &SIGNALS).unwrap();
            for path in ["/timestamp", "/context", "/context/consent", "/context/tcf"] {
                let wanted = match path {
                    "/context" if full["context"].is_object() => None,
                    _ => full.pointer(path),
                };
                if let Some(wanted) = wanted {
                    prop_assert_eq!(pruned.pointer(path), Some(wanted), "at {}", path);
                }
            }
            prop_assert_eq!(full.is_object(), pruned.is_object());
            if let Some(kept) = pruned.as_object() {
                prop_assert!(kept.keys().all(|k| k == "timestamp" || k == "context"));
            }
        }
    }
}
