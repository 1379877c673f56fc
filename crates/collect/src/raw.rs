//! A JSON object read one level deep: its keys in order, each value kept as the exact
//! text the client sent. The collector validates and adds its fields without parsing
//! (and re-printing) what it does not need, so properties, traits and context are stored
//! byte for byte as sent (numbers keep their digits, keys their order) and cheaply.

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use std::fmt;

/// An object key: borrowed from the input when it had no escapes (so it is valid JSON
/// string content as is), decoded otherwise.
#[derive(Debug, Clone)]
pub enum Key<'a> {
    Plain(&'a str),
    Decoded(String),
}

/// Keys are the same when their text is, however they were written: `"writeKey"` and
/// `"write\u004bey"` are one key (found by fuzzing: compared by form, the escaped one was
/// a second field, so a `writeKey` was stored and a second `type` passed validation).
impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Plain(s) => s,
            Key::Decoded(s) => s,
        }
    }
}

/// A value: the client's text, or JSON the collector wrote.
#[derive(Debug, Clone)]
pub enum Field<'a> {
    Sent(&'a RawValue),
    Written(String),
}

impl Field<'_> {
    /// The value's JSON text.
    pub fn json(&self) -> &str {
        match self {
            Field::Sent(raw) => raw.get(),
            Field::Written(text) => text,
        }
    }

    /// What kind of JSON value this is, from its first character.
    pub fn kind(&self) -> Kind {
        match self.json().as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            _ => Kind::Number,
        }
    }

    /// The value as a string, when it is one.
    pub fn string(&self) -> Option<String> {
        let json = self.json();
        match self.kind() {
            // Without escapes, the text between the quotes is the string.
            Kind::String if !json.contains('\\') => {
                json.strip_prefix('"')?.strip_suffix('"').map(str::to_owned)
            }
            Kind::String => serde_json::from_str(json).ok(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

#[derive(Debug, Clone, Default)]
pub struct RawObject<'a> {
    fields: Vec<(Key<'a>, Field<'a>)>,
}

impl<'a> RawObject<'a> {
    pub fn get(&self, key: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// A field that is present and not `null`.
    pub fn present(&self, key: &str) -> Option<&Field<'a>> {
        self.get(key).filter(|f| f.kind() != Kind::Null)
    }

    pub fn remove(&mut self, key: &str) -> Option<Field<'a>> {
        let index = self.fields.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.fields.remove(index).1)
    }

    /// Sets a field: in its place when present, else at the end.
    pub fn set(&mut self, key: &'static str, value: Field<'a>) {
        match self.fields.iter_mut().find(|(k, _)| k.as_str() == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((Key::Plain(key), value)),
        }
    }

    /// Appends each field of `other` whose key is not present here, its key as it was
    /// read: a decoded key is escaped again when printed. True when any was added. (Found
    /// by fuzzing: the batch's keys were appended by their decoded text as if plain, so a
    /// batch-level `context` key holding an escape, `"a\u0001"` or `"a\"b"`, was printed
    /// raw and the stored event was not JSON.)
    pub fn extend_missing(&mut self, other: &RawObject<'a>) -> bool {
        let mut added = false;
        for (key, value) in &other.fields {
            if !self.contains(key.as_str()) {
                self.fields.push((key.clone(), value.clone()));
                added = true;
            }
        }
        added
    }

    /// A field as read: a repeated key's last value wins, as in serde_json's own `Value`.
    fn put(&mut self, key: Key<'a>, value: &'a RawValue) {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = Field::Sent(value),
            None => self.fields.push((key, Field::Sent(value))),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The length of [`RawObject::to_json`]'s text, short of the escapes a decoded key
    /// gets again.
    pub fn compact_len(&self) -> usize {
        let fields: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.as_str().len() + v.json().len() + 3)
            .sum();
        fields + self.fields.len().saturating_sub(1) + 2
    }

    /// The object as compact JSON: keys in the order sent, values as sent.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.compact_len());
        out.push('{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match key {
                Key::Plain(plain) => {
                    out.push('"');
                    out.push_str(plain);
                    out.push('"');
                }
                Key::Decoded(decoded) => {
                    out.push_str(&serde_json::Value::from(decoded.as_str()).to_string())
                }
            }
            out.push(':');
            out.push_str(value.json());
        }
        out.push('}');
        out
    }
}

/// A string written as a JSON value (the collector's own fields).
pub fn json_string(s: &str) -> String {
    // JSON escapes only the quote, the backslash and control characters: a string without
    // them is written as it is.
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        return serde_json::Value::from(s).to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    out.push_str(s);
    out.push('"');
    out
}

/// A visitor's answer to every scalar JSON value (a bool, a number, a string, null): the
/// same `$answer`, for visitors that only look inside arrays or objects.
macro_rules! any_scalar_is {
    ($answer:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($answer)
        }

        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($answer)
        }

        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($answer)
        }

        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($answer)
        }

        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($answer)
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($answer)
        }
    };
}

/// An object read with the array under one of its keys split into its items in the same
/// pass (a batch request's `batch`): the other fields, and the last such key's items, or
/// `Err(())` when its value is not an array. Each item is read one level deep as it is
/// met. Reading the object, then the array, then each item walked every byte three times.
pub struct WithItems<'k>(pub &'k str);

/// An item of the split array: an object and its size as compact JSON, or `Err(())` for
/// any other value.
pub type Item<'a> = Result<(RawObject<'a>, usize), ()>;

/// What [`WithItems`] reads: the fields but the split one, and its items if present.
pub type Split<'a> = (RawObject<'a>, Option<Result<Vec<Item<'a>>, ()>>);

impl<'de> DeserializeSeed<'de> for WithItems<'_> {
    type Value = Split<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Split<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for WithItems<'_> {
    type Value = Split<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Split<'de>, A::Error> {
        let mut object = RawObject::default();
        let mut items = None;
        while let Some(key) = map.next_key::<KeyIn<'de>>()? {
            if key.0.as_str() == self.0 {
                items = Some(map.next_value::<Items<'de>>()?.0);
                continue;
            }
            object.put(key.0, map.next_value()?);
        }
        Ok((object, items))
    }
}

/// A JSON array's items, or `Err(())` for any other value (read through).
struct Items<'a>(Result<Vec<Item<'a>>, ()>);

impl<'de> Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemsVisitor)
    }
}

struct ItemsVisitor;

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(ItemIn(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Items(Ok(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Items(Err(())))
    }

    any_scalar_is!(Items(Err(())));
}

/// An item: an object read one level deep, or `Err(())` for any other value.
struct ItemIn<'a>(Item<'a>);

impl<'de> Deserialize<'de> for ItemIn<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor).map(ItemIn)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<'de>, A::Error> {
        let object = ObjectVisitor.visit_map(map)?;
        let size = object.compact_len();
        Ok(Ok((object, size)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(()))
    }

    any_scalar_is!(Err(()));
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = RawObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = RawObject::default();
        while let Some(key) = map.next_key::<KeyIn<'de>>()? {
            object.put(key.0, map.next_value()?);
        }
        Ok(object)
    }
}

struct KeyIn<'a>(Key<'a>);

impl<'de> Deserialize<'de> for KeyIn<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyIn<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(KeyIn(Key::Plain(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(KeyIn(Key::Decoded(s.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_values_and_order_as_sent() {
        let text = r#"{"b": 1.10, "a\"q": {"x" : [1, 2]}, "c": null, "b": 1e3}"#;
        let object: RawObject = serde_json::from_str(text).unwrap();
        assert_eq!(
            object.to_json(),
            r#"{"b":1e3,"a\"q":{"x" : [1, 2]},"c":null}"#
        );
        assert_eq!(object.get("a\"q").unwrap().kind(), Kind::Object);
        assert!(object.present("c").is_none());
        let back: serde_json::Value = serde_json::from_str(&object.to_json()).unwrap();
        assert_eq!(back["a\"q"]["x"][1], 2);
    }

    #[test]
    fn the_compact_length_is_the_written_length() {
        for text in [
            "{}",
            r#"{ "a" : 1 }"#,
            r#"{"b": 1.10, "c": {"x" : [1, 2]}, "d": null}"#,
        ] {
            let object: RawObject = serde_json::from_str(text).unwrap();
            assert_eq!(object.compact_len(), object.to_json().len(), "{text}");
        }
    }

    #[test]
    fn sets_in_place_or_at_the_end() {
        let mut object: RawObject = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        object.set("a", Field::Written("3".into()));
        object.set("z", Field::Written(json_string("é\"")));
        assert_eq!(object.remove("b").unwrap().json(), "2");
        assert_eq!(object.to_json(), r#"{"a":3,"z":"é\""}"#);
    }

    #[test]
    fn a_key_written_with_escapes_is_the_same_key() {
        let text = r#"{"writeKey":"a","type":"track","write\u004bey":"b","typ\u0065":"alias"}"#;
        let mut object: RawObject = serde_json::from_str(text).unwrap();
        assert_eq!(object.to_json(), r#"{"writeKey":"b","type":"alias"}"#);
        assert_eq!(object.get("type").unwrap().json(), r#""alias""#);
        assert_eq!(object.remove("writeKey").unwrap().json(), r#""b""#);
        assert!(object.get("writeKey").is_none());
        assert_eq!(object.to_json(), r#"{"type":"alias"}"#);
    }

    #[test]
    fn merged_keys_are_printed_escaped() {
        let mut own: RawObject = serde_json::from_str(r#"{"a":1}"#).unwrap();
        let batch: RawObject =
            serde_json::from_str(r#"{"a":2,"b\u0001":3,"q\"\\":4,"plain":5}"#).unwrap();
        assert!(own.extend_missing(&batch));
        let back: serde_json::Value = serde_json::from_str(&own.to_json()).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"a":1,"b\u{1}":3,"q\"\\":4,"plain":5})
        );
        assert!(!own.extend_missing(&batch));
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for text in ["[1]", "1", "\"x\"", "null"] {
            assert!(serde_json::from_str::<RawObject>(text).is_err(), "{text}");
        }
    }
}
