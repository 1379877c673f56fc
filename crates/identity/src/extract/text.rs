//! Reads the fields extraction needs straight from JSON text. Every value goes through
//! `deserialize_any`, as it does when parsing a `Value`, so exactly the same texts are
//! rejected (bad syntax, numbers out of range, lone surrogates, nesting too deep); but only
//! identifier values are kept, and strings without escapes stay borrowed from the text.
//!
//! One difference remains: serde_json's private raw-value marker key
//! (`$serde_json::private::RawValue`) means something to `Value` parsing outside identifier
//! values, and nothing here.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{call_of, scalar, Context, ExternalId, Fields, Raw, Traits};
use crate::rules::Rules;

/// The fields of the event in `text`; `Err` when it is not JSON.
pub(super) fn fields<'a>(text: &'a str, rules: &Rules) -> serde_json::Result<Fields<'a>> {
    let mut json = serde_json::Deserializer::from_str(text);
    let fields = Reader::new(rules).deserialize(&mut json)?;
    json.end()?;
    Ok(fields)
}

/// How one field reads each kind of JSON value. By default it keeps nothing, as `Value::get`
/// finds nothing in a value that is not an object, but still parses everything through.
trait Read<'de>: Default {
    /// Null, a boolean or a number, as `Value` parsing makes it.
    fn scalar(_value: Value) -> Self {
        Self::default()
    }

    fn borrowed_string(text: &'de str) -> Self {
        Self::string(text)
    }

    /// A string that had escapes, so cannot be borrowed.
    fn string(_text: &str) -> Self {
        Self::default()
    }

    fn map<A: MapAccess<'de>>(mut map: A, rules: &Rules) -> Result<Self, A::Error> {
        let skip = Reader::<Skip>::new(rules);
        while map.next_entry_seed(skip, skip)?.is_some() {}
        Ok(Self::default())
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A, rules: &Rules) -> Result<Self, A::Error> {
        while seq.next_element_seed(Reader::<Skip>::new(rules))?.is_some() {}
        Ok(Self::default())
    }
}

/// Reads any JSON value as `R`; the rules say which trait keys are identifiers.
struct Reader<'r, R> {
    rules: &'r Rules,
    read: PhantomData<R>,
}

impl<'r, R> Reader<'r, R> {
    fn new(rules: &'r Rules) -> Self {
        Reader {
            rules,
            read: PhantomData,
        }
    }
}

// Not derived: the derive would require `R: Copy`.
impl<R> Clone for Reader<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Reader<'_, R> {}

impl<'de, R: Read<'de>> DeserializeSeed<'de> for Reader<'_, R> {
    type Value = R;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<R, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, R: Read<'de>> Visitor<'de> for Reader<'_, R> {
    type Value = R;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<R, E> {
        Ok(R::scalar(Value::Null))
    }

    fn visit_bool<E>(self, v: bool) -> Result<R, E> {
        Ok(R::scalar(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<R, E> {
        Ok(R::scalar(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<R, E> {
        Ok(R::scalar(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<R, E> {
        Ok(R::scalar(Value::from(v)))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<R, E> {
        Ok(R::borrowed_string(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<R, E> {
        Ok(R::string(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R, A::Error> {
        R::map(map, self.rules)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R, A::Error> {
        R::seq(seq, self.rules)
    }
}

/// A value nothing is read from.
#[derive(Default)]
struct Skip;

impl Read<'_> for Skip {}

/// A string, as `Value::as_str` reads it.
type Text<'a> = Option<Cow<'a, str>>;

impl<'de> Read<'de> for Text<'de> {
    fn borrowed_string(text: &'de str) -> Self {
        Some(Cow::Borrowed(text))
    }

    fn string(text: &str) -> Self {
        Some(Cow::Owned(text.to_owned()))
    }
}

impl<'de> Read<'de> for Raw<'de> {
    fn scalar(value: Value) -> Self {
        owned(&value)
    }

    fn borrowed_string(text: &'de str) -> Self {
        Some(Ok(Cow::Borrowed(text)))
    }

    fn string(text: &str) -> Self {
        Some(Ok(Cow::Owned(text.to_owned())))
    }

    // Objects and arrays are reported by their JSON text, so they are built as `Value`s.
    fn map<A: MapAccess<'de>>(map: A, _: &Rules) -> Result<Self, A::Error> {
        Ok(owned(&Value::deserialize(MapAccessDeserializer::new(map))?))
    }

    fn seq<A: SeqAccess<'de>>(seq: A, _: &Rules) -> Result<Self, A::Error> {
        Ok(owned(&Value::deserialize(SeqAccessDeserializer::new(seq))?))
    }
}

fn owned<'a>(value: &Value) -> Raw<'a> {
    scalar(value).map(|raw| raw.map(|text| Cow::Owned(text.into_owned())))
}

/// The value of the entry whose key was just read.
fn value<'de, R: Read<'de>, A: MapAccess<'de>>(map: &mut A, rules: &Rules) -> Result<R, A::Error> {
    map.next_value_seed(Reader::new(rules))
}

/// Reads an object key by key. A repeated key overwrites, as it does in a `Value`.
fn object<'de, T: Default, A: MapAccess<'de>>(
    mut map: A,
    rules: &Rules,
    mut field: impl FnMut(&mut T, &str, &mut A) -> Result<(), A::Error>,
) -> Result<T, A::Error> {
    let mut object = T::default();
    while let Some(key) = map.next_key_seed(Reader::<Text>::new(rules))? {
        field(&mut object, key.as_deref().unwrap_or_default(), &mut map)?;
    }
    Ok(object)
}

impl<'de> Read<'de> for Fields<'de> {
    fn map<A: MapAccess<'de>>(map: A, rules: &Rules) -> Result<Self, A::Error> {
        object(map, rules, |fields: &mut Fields<'de>, key, map| {
            match key {
                "type" => fields.call = call_of(value::<Text, _>(map, rules)?.as_deref()),
                "userId" => fields.user_id = value(map, rules)?,
                "anonymousId" => fields.anonymous_id = value(map, rules)?,
                "previousId" => fields.previous_id = Some(value(map, rules)?),
                "properties" => {
                    fields.properties_previous_id = value::<Properties, _>(map, rules)?.previous_id
                }
                "traits" => fields.traits = Some(value(map, rules)?),
                "context" => fields.context = Some(value(map, rules)?),
                _ => value::<Skip, _>(map, rules).map(drop)?,
            }
            Ok(())
        })
    }
}

#[derive(Default)]
struct Properties<'a> {
    previous_id: Raw<'a>,
}

impl<'de> Read<'de> for Properties<'de> {
    fn map<A: MapAccess<'de>>(map: A, rules: &Rules) -> Result<Self, A::Error> {
        object(map, rules, |properties: &mut Properties<'de>, key, map| {
            match key {
                "previousId" => properties.previous_id = value(map, rules)?,
                _ => value::<Skip, _>(map, rules).map(drop)?,
            }
            Ok(())
        })
    }
}

impl<'de> Read<'de> for Traits<'de> {
    fn map<A: MapAccess<'de>>(map: A, rules: &Rules) -> Result<Self, A::Error> {
        let custom = rules.trait_identifiers();
        object(map, rules, |traits: &mut Traits<'de>, key, map| {
            let slots = || (0..custom.len()).filter(|&i| custom[i].0 == key);
            if !matches!(key, "email" | "phone") && slots().next().is_none() {
                return value::<Skip, _>(map, rules).map(drop);
            }
            // A configured trait key may also be `email` or `phone`: every slot gets it.
            let raw: Raw = value(map, rules)?;
            for i in slots() {
                if traits.custom.len() <= i {
                    traits.custom.resize(i + 1, None);
                }
                traits.custom[i] = raw.clone();
            }
            match key {
                "email" => traits.email = raw,
                "phone" => traits.phone = raw,
                _ => {}
            }
            Ok(())
        })
    }
}

impl<'de> Read<'de> for Context<'de> {
    fn map<A: MapAccess<'de>>(map: A, rules: &Rules) -> Result<Self, A::Error> {
        object(map, rules, |context: &mut Context<'de>, key, map| {
            match key {
                "locale" => context.locale = value(map, rules)?,
                "traits" => context.traits = Some(value(map, rules)?),
                "device" => context.device_id = value::<Device, _>(map, rules)?.id,
                "externalIds" => context.external_ids = value(map, rules)?,
                _ => value::<Skip, _>(map, rules).map(drop)?,
            }
            Ok(())
        })
    }
}

#[derive(Default)]
struct Device<'a> {
    id: Raw<'a>,
}

impl<'de> Read<'de> for Device<'de> {
    fn map<A: MapAccess<'de>>(map: A, rules: &Rules) -> Result<Self, A::Error> {
        object(map, rules, |device: &mut Device<'de>, key, map| {
            match key {
                "id" => device.id = value(map, rules)?,
                _ => value::<Skip, _>(map, rules).map(drop)?,
            }
            Ok(())
        })
    }
}

/// Only an array holds external ids.
impl<'de> Read<'de> for Vec<ExternalId<'de>> {
    fn seq<A: SeqAccess<'de>>(mut seq: A, rules: &Rules) -> Result<Self, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element_seed(Reader::new(rules))? {
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl<'de> Read<'de> for ExternalId<'de> {
    fn map<A: MapAccess<'de>>(map: A, rules: &Rules) -> Result<Self, A::Error> {
        object(map, rules, |entry: &mut ExternalId<'de>, key, map| {
            match key {
                "type" => entry.id_type = value(map, rules)?,
                "id" => entry.id = value(map, rules)?,
                _ => value::<Skip, _>(map, rules).map(drop)?,
            }
            Ok(())
        })
    }
}
