//! Identifier extraction and normalisation from a Segment event as the collector stores it.

use std::borrow::Cow;

use phonenumber::{country, Mode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identifier::{IdType, Identifier};
use crate::rules::{parse_region, Rules};

mod text;

/// The Segment call an event is, as far as identity is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    Identify,
    Alias,
    /// track, page, screen, group: identifiers seen together on one event.
    #[default]
    Other,
}

/// Why a value found on an event does not link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// A configured placeholder such as `null` or `test@example.com`.
    Blocked,
    /// Failed normalisation (not an email, not a valid phone number, not a scalar).
    Invalid,
}

/// A value that was found but will never link; the caller keeps it as a raw trait.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    #[serde(rename = "type")]
    pub id_type: IdType,
    pub raw: String,
    pub reason: RejectReason,
}

/// Everything identity resolution needs from one event.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventIdentifiers {
    pub call: Call,
    /// Normalised, linkable, without duplicates, in the order found.
    pub identifiers: Vec<Identifier>,
    pub rejected: Vec<Rejected>,
}

impl EventIdentifiers {
    fn push(&mut self, rules: &Rules, id_type: IdType, value: Result<String, String>) {
        match value {
            Ok(value) if rules.is_blocked(&id_type, &value) => self.rejected.push(Rejected {
                id_type,
                raw: value,
                reason: RejectReason::Blocked,
            }),
            Ok(value) => {
                let identifier = Identifier::new(id_type, value);
                if !self.identifiers.contains(&identifier) {
                    self.identifiers.push(identifier);
                }
            }
            Err(raw) => self.rejected.push(Rejected {
                id_type,
                raw,
                reason: RejectReason::Invalid,
            }),
        }
    }
}

/// Reads the identifiers of one stored Segment event. Never fails: what cannot be read is
/// either absent or reported in `rejected`.
pub fn extract(event: &Value, rules: &Rules) -> EventIdentifiers {
    identifiers(Fields::of_value(event, rules), rules)
}

/// Reads the identifiers of one stored Segment event from its JSON text: the same as
/// `extract(&serde_json::from_str(text).unwrap_or(Value::Null), rules)` (short of keys named
/// serde_json's private raw-value marker), without building the whole `Value`, which with
/// `preserve_order` costs an `IndexMap` per object. Text that is not JSON yields nothing.
pub fn extract_text(text: &str, rules: &Rules) -> EventIdentifiers {
    identifiers(text::fields(text, rules).unwrap_or_default(), rules)
}

/// An identifier value as found: `None` when absent or null, `Err` with its JSON text when
/// it is not a string or a number (numbers are their decimal string).
type Raw<'a> = Option<Result<Cow<'a, str>, String>>;

/// What extraction reads from an event, borrowed from a `Value` or from JSON text, so that
/// both entry points share one reading of it. A field that is not an object reads as empty.
#[derive(Default)]
struct Fields<'a> {
    call: Call,
    user_id: Raw<'a>,
    anonymous_id: Raw<'a>,
    /// `Some` when the key is present, even as null: it then hides `properties.previousId`.
    previous_id: Option<Raw<'a>>,
    properties_previous_id: Raw<'a>,
    traits: Option<Traits<'a>>,
    context: Option<Context<'a>>,
}

#[derive(Default)]
struct Traits<'a> {
    email: Raw<'a>,
    phone: Raw<'a>,
    /// By position in `Rules::trait_identifiers`; missing at the end when absent.
    custom: Vec<Raw<'a>>,
}

#[derive(Default)]
struct Context<'a> {
    locale: Option<Cow<'a, str>>,
    traits: Option<Traits<'a>>,
    device_id: Raw<'a>,
    external_ids: Vec<ExternalId<'a>>,
}

#[derive(Default)]
struct ExternalId<'a> {
    /// Only a string names a type.
    id_type: Option<Cow<'a, str>>,
    id: Raw<'a>,
}

fn call_of(name: Option<&str>) -> Call {
    match name {
        Some("identify") => Call::Identify,
        Some("alias") => Call::Alias,
        _ => Call::Other,
    }
}

impl<'a> Fields<'a> {
    fn of_value(event: &'a Value, rules: &Rules) -> Fields<'a> {
        let raw = |v: &'a Value, key: &str| v.get(key).and_then(scalar);
        let traits = |v: &'a Value| Traits {
            email: raw(v, "email"),
            phone: raw(v, "phone"),
            custom: rules
                .trait_identifiers()
                .iter()
                .map(|(key, _)| raw(v, key))
                .collect(),
        };
        let context = |c: &'a Value| Context {
            locale: c.get("locale").and_then(Value::as_str).map(Cow::Borrowed),
            traits: c.get("traits").map(traits),
            device_id: c.get("device").and_then(|d| raw(d, "id")),
            external_ids: c
                .get("externalIds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|e| ExternalId {
                    id_type: e.get("type").and_then(Value::as_str).map(Cow::Borrowed),
                    id: raw(e, "id"),
                })
                .collect(),
        };
        Fields {
            call: call_of(event.get("type").and_then(Value::as_str)),
            user_id: raw(event, "userId"),
            anonymous_id: raw(event, "anonymousId"),
            previous_id: event.get("previousId").map(scalar),
            properties_previous_id: event.get("properties").and_then(|p| raw(p, "previousId")),
            traits: event.get("traits").map(traits),
            context: event.get("context").map(context),
        }
    }
}

/// The extraction rules proper, over the fields read from an event.
fn identifiers(fields: Fields<'_>, rules: &Rules) -> EventIdentifiers {
    let Fields {
        call,
        user_id,
        anonymous_id,
        previous_id,
        properties_previous_id,
        traits,
        context,
    } = fields;
    let mut out = EventIdentifiers {
        call,
        ..EventIdentifiers::default()
    };
    let region = context
        .as_ref()
        .and_then(|c| c.locale.as_deref())
        .and_then(locale_region)
        .unwrap_or_else(|| rules.default_region());

    let mut add = |id_type: IdType, raw: Raw<'_>| {
        if let Some(value) = raw {
            let normalised =
                value.and_then(|v| normalise(&id_type, &v, region).ok_or_else(|| v.into_owned()));
            out.push(rules, id_type, normalised);
        }
    };

    add(IdType::UserId, user_id);
    add(IdType::AnonymousId, anonymous_id);
    if call == Call::Alias {
        let previous = previous_id.unwrap_or(properties_previous_id);
        add(rules.alias_previous_id_type().clone(), previous);
    }
    // A group call's top-level traits describe the group, not the person.
    let own_traits = traits.filter(|_| call == Call::Identify);
    let (context_traits, device_id, external_ids) = match context {
        Some(c) => (c.traits, c.device_id, c.external_ids),
        None => (None, None, Vec::new()),
    };
    for traits in [own_traits, context_traits].into_iter().flatten() {
        add(IdType::Email, traits.email);
        add(IdType::Phone, traits.phone);
        for ((_, id_type), raw) in rules.trait_identifiers().iter().zip(traits.custom) {
            add(id_type.clone(), raw);
        }
    }
    add(IdType::DeviceId, device_id);
    for external in external_ids {
        if let Some(id_type) = external.id_type {
            let id_type = IdType::parse(&id_type);
            if !id_type.as_str().is_empty() {
                add(id_type, external.id);
            }
        }
    }
    out
}

/// A JSON value as identifier text (see [`Raw`]).
fn scalar(value: &Value) -> Raw<'_> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(Ok(Cow::Borrowed(s))),
        Value::Number(n) => Some(Ok(Cow::Owned(n.to_string()))),
        other => Some(Err(other.to_string())),
    }
}

/// Normalises a value of the given type; `None` when it is not a valid value of that type.
pub fn normalise(id_type: &IdType, raw: &str, region: country::Id) -> Option<String> {
    match id_type {
        IdType::Email => normalise_email(raw),
        IdType::Phone => normalise_phone(raw, region),
        _ => Some(raw.trim().to_owned()),
    }
}

/// Trimmed and lower-cased; one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn normalise_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(email)
}

/// E.164 (`+14155550123`) when the number is valid for its region.
pub fn normalise_phone(raw: &str, region: country::Id) -> Option<String> {
    // Cheap screening keeps junk away from the full parser and bounds its work.
    let digits = raw.bytes().filter(u8::is_ascii_digit).count();
    let plausible = raw.len() <= 40
        && (5..=17).contains(&digits)
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || b" +-().\t/".contains(&b));
    if !plausible {
        return None;
    }
    let number = phonenumber::parse(Some(region), raw).ok()?;
    phonenumber::is_valid(&number).then(|| number.format().mode(Mode::E164).to_string())
}

/// The region of a locale such as `en-GB` or `pt_BR`.
fn locale_region(locale: &str) -> Option<country::Id> {
    let (_, region) = locale.split_once(['-', '_'])?;
    parse_region(region.get(..2)?)
}
