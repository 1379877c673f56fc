//! Identifier extraction and normalisation from a Segment event as the collector stores it.

use std::borrow::Cow;

use phonenumber::{country, Mode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identifier::{IdType, Identifier};
use crate::rules::{parse_region, Rules};

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
    let call = match event.get("type").and_then(Value::as_str) {
        Some("identify") => Call::Identify,
        Some("alias") => Call::Alias,
        _ => Call::Other,
    };
    let mut out = EventIdentifiers {
        call,
        ..EventIdentifiers::default()
    };
    let context = event.get("context");
    let region = context
        .and_then(|c| c.get("locale"))
        .and_then(Value::as_str)
        .and_then(locale_region)
        .unwrap_or_else(|| rules.default_region());

    let mut add = |id_type: IdType, raw: Option<&Value>| {
        if let Some(value) = raw.and_then(scalar) {
            let normalised =
                value.and_then(|v| normalise(&id_type, &v, region).ok_or_else(|| v.into_owned()));
            out.push(rules, id_type, normalised);
        }
    };

    add(IdType::UserId, event.get("userId"));
    add(IdType::AnonymousId, event.get("anonymousId"));
    if call == Call::Alias {
        let previous = event
            .get("previousId")
            .or_else(|| event.get("properties").and_then(|p| p.get("previousId")));
        add(rules.alias_previous_id_type().clone(), previous);
    }
    // A group call's top-level traits describe the group, not the person.
    let own_traits = (call == Call::Identify)
        .then(|| event.get("traits"))
        .flatten();
    let context_traits = context.and_then(|c| c.get("traits"));
    for traits in [own_traits, context_traits].into_iter().flatten() {
        add(IdType::Email, traits.get("email"));
        add(IdType::Phone, traits.get("phone"));
        for (key, id_type) in rules.trait_identifiers() {
            add(id_type.clone(), traits.get(key));
        }
    }
    if let Some(context) = context {
        add(
            IdType::DeviceId,
            context.get("device").and_then(|d| d.get("id")),
        );
        let external = context.get("externalIds").and_then(Value::as_array);
        for entry in external.into_iter().flatten() {
            if let Some(id_type) = entry.get("type").and_then(Value::as_str) {
                let id_type = IdType::parse(id_type);
                if !id_type.as_str().is_empty() {
                    add(id_type, entry.get("id"));
                }
            }
        }
    }
    out
}

/// A JSON value as identifier text: `None` when absent or null, `Err` with its JSON text
/// when it is not a string or a number (numbers are their decimal string).
fn scalar(value: &Value) -> Option<Result<Cow<'_, str>, String>> {
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
