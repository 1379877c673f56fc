//! What a destination does to an event before sending it: rename, remove, keep and hash
//! fields. Pure: a [`Transform`] and a Segment event as JSON in, the event changed in place.
//!
//! # Paths
//!
//! A field is named by a dotted path from the event root: `userId`, `context.ip`,
//! `properties.revenue`, `traits.address.city`. A path starting with `*.` stands for that
//! path under each of the three objects that carry user data — `properties`, `traits` and
//! `context.traits` — so `deny = ["*.email"]` removes `properties.email`, `traits.email`
//! and `context.traits.email`. A key that itself contains a dot cannot be named, nor a
//! top-level key `*`.
//!
//! # Rules, in the order [`Transform::apply`] runs them
//!
//! 1. `rename` (`"source" = "target"`) moves the value, creating missing objects on the
//!    way to the target. A missing source is a no-op; a target that cannot exist in this
//!    event (its parent is a string, say) leaves the value at its source.
//! 2. `deny` removes each path.
//! 3. `allow`, if not empty, makes `properties`, `traits` and `context.traits` keep only the
//!    keys it names: `*.email` keeps `email` in all three, `traits.email` in `traits` only.
//!    So an allow entry is `*.<key>`, `properties.<key>`, `traits.<key>` or
//!    `context.traits.<key>`, one key deep. The rest of the event (`type`, `userId`,
//!    `context.ip`, …) is not governed by `allow`: remove what must not be sent with `deny`.
//! 4. `hash` replaces every string and number at each path, inside arrays and objects too,
//!    by the lowercase hex SHA-256 of its normalised form (below). A value that already is
//!    64 hex digits is taken as hashed and kept, so hashing twice is hashing once. A value
//!    that normalises to nothing becomes `null`, not the hash of the empty string, which
//!    would match every other empty value.
//!
//! Renaming first means that `deny`, `allow` and `hash` name fields as the destination
//! receives them, and what they promise holds for what is sent: a denied path is never
//! sent, no key outside `allow` is sent in the governed objects, and a hashed path is never
//! sent in clear. [`Transform::validate`] rejects configurations that mix the two namings.
//!
//! # Hash normalisation
//!
//! Ad platforms match hashes of their users' identifiers, so a value must be normalised
//! exactly as they do before hashing. The kind of value is read from its key: a key
//! containing `email` is an email, one containing `phone` a phone number (case-insensitive;
//! inside an object or array under the path, the nearest such key decides).
//! [`HashFormat`] picks whose rules apply:
//!
//! - Text, both formats: leading and trailing whitespace trimmed, lowercased.
//! - Email, both formats: as text. [`HashFormat::Google`] also removes the dots in the local
//!   part of `gmail.com` and `googlemail.com` addresses (`Jane.Doe@Gmail.com` →
//!   `janedoe@gmail.com`).
//! - Phone: the digits, without leading zeros (no country code starts with 0, so they can
//!   only be an international `00` prefix or a national trunk `0`), then `+` in front for
//!   [`HashFormat::Google`] (E.164, `+14155550100`), digits only for [`HashFormat::Meta`]
//!   (`14155550100`). The number must carry its country code: neither platform can match a
//!   national number such as `020 7946 0000`, and this module cannot know which country to
//!   add.
//!
//! Sources:
//! - Google: Campaign Manager 360, "Enhanced Conversions", "Normalization and hashing"
//!   (developers.google.com/doubleclick-advertisers/guides/conversions_ec): SHA-256; trim;
//!   lowercase; phones in E.164; remove the periods before the domain of gmail.com and
//!   googlemail.com addresses. The Google Ads API page "Manage online click conversions",
//!   "Normalize and hash user-provided data"
//!   (developers.google.com/google-ads/api/docs/conversions/upload-online) gives the same
//!   trim, lowercase and E.164 rules. Its email wording has been read as removing dots and
//!   `+suffix`es for every domain, while Google's own client-library samples remove dots
//!   for gmail.com and googlemail.com only and keep `+suffix`es (googleads/google-ads-php
//!   issue 1119); this module does what the samples and the CM360 page do.
//! - Meta: Conversions API, "Customer Information Parameters"
//!   (developers.facebook.com/docs/marketing-api/conversions-api/parameters/
//!   customer-information-parameters): contact information must be SHA-256 hashed, emails
//!   trimmed and lowercased, phones as digits with the country code and without symbols,
//!   letters or leading zeros. Meta's own SDK normalisers agree (`EmailNormalizer`: trim,
//!   lowercase; `PhoneNormalizer`: digits only).
//!
//! Google is the default: E.164 is the standard form of a phone number, so it is what a
//! generic webhook's receiver can best reproduce; choose `meta` for a receiver that
//! forwards to Meta.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The objects that carry user data in a Segment event: those `*.` stands for and those
/// `allow` governs.
pub const GOVERNED: [&str; 3] = ["properties", "traits", "context.traits"];

/// Fields that are never objects in a Segment event, so a path inside one is a mistake
/// (most often `event.…`, taking the event's name for the event).
const SCALARS: [&str; 17] = [
    "type",
    "event",
    "userId",
    "anonymousId",
    "groupId",
    "previousId",
    "messageId",
    "timestamp",
    "sentAt",
    "receivedAt",
    "originalTimestamp",
    "name",
    "category",
    "context.ip",
    "context.locale",
    "context.userAgent",
    "context.timezone",
];

/// What a destination does to an event before sending it: see the [module](self) for the
/// rules. The default does nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Transform {
    /// If not empty, the only keys kept in `properties`, `traits` and `context.traits`.
    pub allow: Vec<String>,
    /// Paths removed.
    pub deny: Vec<String>,
    /// Paths whose values are replaced by the SHA-256 of their normalised form.
    pub hash: Vec<String>,
    /// Whose normalisation `hash` follows.
    pub hash_format: HashFormat,
    /// Source path → target path: values moved before the other rules run.
    pub rename: BTreeMap<String, String>,
}

/// Whose rules normalise a value before it is hashed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashFormat {
    /// Google Ads and Campaign Manager 360: phones in E.164 with `+`, dots removed from
    /// Gmail local parts.
    #[default]
    Google,
    /// Meta Conversions API: phones as digits only, emails only trimmed and lowercased.
    Meta,
}

impl Transform {
    /// Whether `apply` leaves every event as it is.
    pub fn is_identity(&self) -> bool {
        self.allow.is_empty()
            && self.deny.is_empty()
            && self.hash.is_empty()
            && self.rename.is_empty()
    }

    /// Checks the paths and that the rules do not contradict each other. The error says
    /// what to fix.
    pub fn validate(&self) -> Result<(), String> {
        for (list, paths) in [
            ("allow", &self.allow),
            ("deny", &self.deny),
            ("hash", &self.hash),
        ] {
            for path in paths {
                check_path(list, path)?;
            }
        }
        for path in self
            .rename
            .iter()
            .flat_map(|(source, target)| [source, target])
        {
            check_path("rename", path)?;
            if path.starts_with("*.") {
                return Err(format!(
                    "rename {path:?}: a rename moves one value, so write its full path, \
                     e.g. traits.email"
                ));
            }
        }
        for name in &self.allow {
            let shorthand = name
                .strip_prefix("*.")
                .is_some_and(|key| !key.contains('.'));
            if !shorthand && governed_key(&split(name)).is_none_or(|(_, rest)| rest.len() != 1) {
                let key = name.rsplit('.').next().unwrap_or(name);
                return Err(format!(
                    "allow {name:?}: allow keeps keys of properties, traits and \
                     context.traits, one key deep, so write *.{key} for all three or \
                     properties.{key}, traits.{key} or context.traits.{key}; remove other \
                     fields with deny"
                ));
            }
        }
        for allowed in &self.allow {
            for denied in &self.deny {
                if overlap(allowed, denied, |a, d| a.starts_with(d)) {
                    return Err(format!(
                        "{allowed:?} is in allow, but deny {denied:?} removes it: \
                         take it out of one of them"
                    ));
                }
            }
        }
        self.validate_renames()
    }

    fn validate_renames(&self) -> Result<(), String> {
        let renames: Vec<_> = self.rename.iter().collect();
        for (i, (source, target)) in renames.iter().enumerate() {
            if source == target {
                return Err(format!(
                    "rename {source:?} to itself does nothing: remove it"
                ));
            }
            for (other_source, other_target) in &renames[i + 1..] {
                for a in [source, target] {
                    for b in [other_source, other_target] {
                        if nested(&split(a), &split(b)) {
                            return Err(format!(
                                "renames {source:?} → {target:?} and {other_source:?} → \
                                 {other_target:?} touch {a:?} and {b:?}, one inside the \
                                 other, so the result would depend on their order: \
                                 rename each value once, from where it is to where it goes"
                            ));
                        }
                    }
                }
            }
            for (list, names) in [("deny", &self.deny), ("hash", &self.hash)] {
                if let Some(name) = names.iter().find(|n| overlap(source, n, |s, n| s == n)) {
                    return Err(format!(
                        "{list} {name:?} names {source:?}, which rename moves to {target:?} \
                         first: {list} names fields after renaming, so write {target:?}"
                    ));
                }
            }
            if let Some(denied) = self
                .deny
                .iter()
                .find(|d| overlap(target, d, |t, d| t.starts_with(d)))
            {
                return Err(format!(
                    "rename moves {source:?} to {target:?}, which deny {denied:?} then \
                     removes: deny {source:?} instead, or drop the rename"
                ));
            }
            if self.drops(&split(target)) {
                return Err(format!(
                    "rename moves {source:?} to {target:?}, which allow then drops: \
                     add {target:?} to allow, or drop the rename"
                ));
            }
        }
        Ok(())
    }

    /// Applies the rules to `event`, in the order the [module](self) gives. Never panics,
    /// whatever the event and even if [`Transform::validate`] would reject `self`.
    pub fn apply(&self, event: &mut Value) {
        for (source, target) in &self.rename {
            let (source, target) = (split(source), split(target));
            if let Some(value) = remove(event, &source) {
                if let Err(value) = insert(event, &target, value) {
                    // The target cannot exist in this event: keep the value rather than
                    // lose it. Its old parent is still an object, so this cannot fail.
                    let _ = insert(event, &source, value);
                }
            }
        }
        for path in self.deny.iter().flat_map(|name| expand(name)) {
            remove(event, &path);
        }
        if !self.allow.is_empty() {
            for governed in GOVERNED {
                if let Some(Value::Object(object)) = get_mut(event, &split(governed)) {
                    object.retain(|key, _| self.allows(governed, key));
                }
            }
        }
        for path in self.hash.iter().flat_map(|name| expand(name)) {
            if let (Some(key), Some(value)) = (path.last(), get_mut(event, &path)) {
                hash_value(value, Kind::of(key), self.hash_format);
            }
        }
    }

    /// Whether a non-empty `allow` keeps `key` in the governed object `governed`.
    fn allows(&self, governed: &str, key: &str) -> bool {
        self.allow.iter().any(|name| {
            let named = name.strip_prefix("*.").or_else(|| {
                name.strip_prefix(governed)
                    .and_then(|rest| rest.strip_prefix('.'))
            });
            named == Some(key)
        })
    }

    /// Whether `allow` removes what is at `path`.
    fn drops(&self, path: &[&str]) -> bool {
        !self.allow.is_empty()
            && governed_key(path).is_some_and(|(governed, rest)| !self.allows(governed, rest[0]))
    }
}

/// The error for a path that cannot name a field, or `Ok`.
fn check_path(list: &str, path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err(format!(
            "{list} has an empty path: name a field, e.g. properties.revenue, or remove it"
        ));
    }
    if path.trim() != path {
        return Err(format!(
            "{list} path {path:?} has spaces around it: remove them"
        ));
    }
    if path.split('.').any(str::is_empty) {
        return Err(format!(
            "{list} path {path:?} has an empty key: join keys with single dots, \
             e.g. context.traits.email"
        ));
    }
    if path.split('.').skip(1).any(|key| key == "*") || path == "*" {
        return Err(format!(
            "{list} path {path:?}: * only stands for properties, traits and context.traits \
             at the start of a path, e.g. *.email"
        ));
    }
    if let Some(scalar) = SCALARS.iter().find(|s| {
        path.strip_prefix(**s)
            .is_some_and(|rest| rest.starts_with('.'))
    }) {
        return Err(format!(
            "{list} path {path:?} goes inside {scalar}, which is never an object in a Segment \
             event: paths start at the event root, e.g. properties.revenue"
        ));
    }
    Ok(())
}

fn split(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// The paths `name` stands for: itself, or three for a `*.` path.
fn expand(name: &str) -> Vec<Vec<&str>> {
    match name.strip_prefix("*.") {
        Some(rest) => GOVERNED
            .iter()
            .map(|governed| governed.split('.').chain(rest.split('.')).collect())
            .collect(),
        None => vec![split(name)],
    }
}

/// Whether some path `a` stands for and some path `b` stands for satisfy `related`.
fn overlap(a: &str, b: &str, related: impl Fn(&[&str], &[&str]) -> bool) -> bool {
    let bs = expand(b);
    expand(a).iter().any(|a| bs.iter().any(|b| related(a, b)))
}

/// Whether one path is the other or inside it.
fn nested(a: &[&str], b: &[&str]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The governed object `path` is inside, and the rest of the path below it (not empty).
fn governed_key<'p, 'k>(path: &'p [&'k str]) -> Option<(&'static str, &'p [&'k str])> {
    GOVERNED.into_iter().find_map(|governed| {
        let rest = path.strip_prefix(split(governed).as_slice())?;
        (!rest.is_empty()).then_some((governed, rest))
    })
}

fn get_mut<'v>(value: &'v mut Value, path: &[&str]) -> Option<&'v mut Value> {
    path.iter()
        .try_fold(value, |value, key| value.as_object_mut()?.get_mut(*key))
}

fn remove(value: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parent) = path.split_last()?;
    // `shift_remove` keeps the other keys in the order the event had them.
    get_mut(value, parent)?.as_object_mut()?.shift_remove(*last)
}

/// Puts `new` at `path`, creating missing objects on the way, or gives it back untouched if
/// a value on the way is not an object. Objects are only created below the last existing
/// one, so a failure leaves `value` as it was.
fn insert(value: &mut Value, path: &[&str], new: Value) -> Result<(), Value> {
    let Some((last, parent)) = path.split_last() else {
        return Err(new);
    };
    let mut value = value;
    for key in parent {
        let Value::Object(object) = value else {
            return Err(new);
        };
        value = object
            .entry(*key)
            .or_insert_with(|| Value::Object(Map::new()));
    }
    match value {
        Value::Object(object) => {
            object.insert((*last).to_owned(), new);
            Ok(())
        }
        _ => Err(new),
    }
}

/// How a value is normalised before it is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Phone,
    Text,
}

impl Kind {
    /// The kind of the value under `key`.
    fn of(key: &str) -> Kind {
        let key = key.to_lowercase();
        if key.contains("email") {
            Kind::Email
        } else if key.contains("phone") {
            Kind::Phone
        } else {
            Kind::Text
        }
    }

    /// The kind of a value under `key` inside a value of this kind: an object of phones
    /// (`{"home": …, "work": …}`) holds phones.
    fn within(self, key: &str) -> Kind {
        match Kind::of(key) {
            Kind::Text => self,
            kind => kind,
        }
    }
}

fn hash_value(value: &mut Value, kind: Kind, format: HashFormat) {
    match value {
        Value::String(s) => *value = hashed(s, kind, format),
        Value::Number(n) => *value = hashed(&n.to_string(), kind, format),
        Value::Array(items) => {
            for item in items {
                hash_value(item, kind, format);
            }
        }
        Value::Object(object) => {
            for (key, item) in object {
                hash_value(item, kind.within(key), format);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// What a hashed field carries instead of `s`.
fn hashed(s: &str, kind: Kind, format: HashFormat) -> Value {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return s.into();
    }
    let normal = normalise(s, kind, format);
    if normal.is_empty() {
        Value::Null
    } else {
        hex::encode(Sha256::digest(normal.as_bytes())).into()
    }
}

/// An email (or with `phone`, a phone) as Google hashes it, for the Google Ads type.
pub(crate) fn normalise_google(s: &str, phone: bool) -> String {
    let kind = if phone { Kind::Phone } else { Kind::Email };
    normalise(s, kind, HashFormat::Google)
}

/// A phone as Meta hashes it: digits only, with the country code.
pub(crate) fn normalise_meta_phone(s: &str) -> String {
    normalise(s, Kind::Phone, HashFormat::Meta)
}

/// `s` as the platform hashes it: see "Hash normalisation" in the [module](self) docs.
fn normalise(s: &str, kind: Kind, format: HashFormat) -> String {
    match kind {
        Kind::Text => s.trim().to_lowercase(),
        Kind::Email => {
            let email = s.trim().to_lowercase();
            match (format, email.rsplit_once('@')) {
                (HashFormat::Google, Some((local, domain @ ("gmail.com" | "googlemail.com")))) => {
                    format!("{}@{domain}", local.replace('.', ""))
                }
                _ => email,
            }
        }
        Kind::Phone => {
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            let digits = digits.trim_start_matches('0');
            match format {
                HashFormat::Google if !digits.is_empty() => format!("+{digits}"),
                _ => digits.to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// SHA-256 hex digests computed outside this code (`printf %s … | sha256sum`).
    const FOOBAR_GMAIL: &str = "ec3fe428cd3e33246cc5b36bbc373b06f77edbdde90b5f8fc998e99857ec20c2";
    const TEST_EXAMPLE: &str = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b";
    const PLUS_PHONE: &str = "40d3f4e02db27d66cf4cfdda506c2c945f115a7955cc8491dda98ce5beabcda0";
    const DIGITS_PHONE: &str = "5e7ec4c79ccac6e420876e65ad0e6b4b2ccf73ec3dccb50297bf2890a1ec73b9";
    const JANE_DOE: &str = "ed37d99b1445238af3386f81a77a2caf3fffc0cd610be39b4f3ba53943dc66bf";

    fn transform(config: Value) -> Transform {
        serde_json::from_value(config).unwrap()
    }

    fn applied(config: Value, mut event: Value) -> Value {
        let t = transform(config);
        t.validate().unwrap();
        t.apply(&mut event);
        event
    }

    fn event() -> Value {
        json!({
            "type": "track",
            "event": "Order Completed",
            "userId": "u1",
            "properties": {"revenue": 10, "email": "a@b.c", "coupon": "X"},
            "traits": {"email": "a@b.c", "plan": "pro"},
            "context": {"ip": "1.2.3.4", "traits": {"email": "a@b.c", "age": 30}},
        })
    }

    #[test]
    fn every_field_is_optional_and_unknown_fields_are_refused() {
        assert_eq!(transform(json!({})), Transform::default());
        let err = serde_json::from_value::<Transform>(json!({"alow": ["x"]})).unwrap_err();
        assert!(err.to_string().contains("unknown field `alow`"), "{err}");
        let meta = transform(json!({"hash_format": "meta"}));
        assert_eq!(meta.hash_format, HashFormat::Meta);
    }

    #[test]
    fn the_default_changes_nothing() {
        assert_eq!(applied(json!({}), event()), event());
    }

    #[test]
    fn deny_removes_a_path_or_with_a_star_its_copy_in_every_governed_object() {
        let out = applied(
            json!({"deny": ["context.ip", "properties.coupon"]}),
            event(),
        );
        assert_eq!(
            out["context"],
            json!({"traits": {"email": "a@b.c", "age": 30}})
        );
        assert_eq!(out["properties"], json!({"revenue": 10, "email": "a@b.c"}));

        let out = applied(json!({"deny": ["*.email", "userId"]}), event());
        assert_eq!(out["properties"], json!({"revenue": 10, "coupon": "X"}));
        assert_eq!(out["traits"], json!({"plan": "pro"}));
        assert_eq!(out["context"]["traits"], json!({"age": 30}));
        assert!(out.get("userId").is_none());
    }

    #[test]
    fn allow_keeps_only_named_keys_in_the_governed_objects() {
        let out = applied(json!({"allow": ["*.email", "properties.revenue"]}), event());
        assert_eq!(out["properties"], json!({"revenue": 10, "email": "a@b.c"}));
        assert_eq!(out["traits"], json!({"email": "a@b.c"}));
        assert_eq!(
            out["context"],
            json!({"ip": "1.2.3.4", "traits": {"email": "a@b.c"}})
        );
        // The envelope is not governed by allow.
        assert_eq!(out["userId"], "u1");
        assert_eq!(out["event"], "Order Completed");
    }

    #[test]
    fn allow_with_a_path_keeps_the_key_in_that_object_only() {
        let out = applied(json!({"allow": ["traits.email"]}), event());
        assert_eq!(out["properties"], json!({}));
        assert_eq!(out["traits"], json!({"email": "a@b.c"}));
        assert_eq!(out["context"]["traits"], json!({}));
    }

    #[test]
    fn rename_moves_values_and_creates_parents() {
        let out = applied(
            json!({"rename": {"properties.revenue": "properties.value", "userId": "context.user.id"}}),
            event(),
        );
        assert_eq!(
            out["properties"],
            json!({"email": "a@b.c", "coupon": "X", "value": 10})
        );
        assert_eq!(out["context"]["user"], json!({"id": "u1"}));
        assert!(out.get("userId").is_none());
    }

    #[test]
    fn rename_of_a_missing_source_or_to_an_impossible_target_changes_nothing() {
        let config = json!({"rename": {"properties.missing": "properties.x"}});
        assert_eq!(applied(config, event()), event());
        // `properties.coupon` is a string, so nothing can go inside it.
        let config = json!({"rename": {"properties.revenue": "properties.coupon.value"}});
        assert_eq!(applied(config, event()), event());
    }

    #[test]
    fn rules_after_rename_name_fields_as_sent() {
        let out = applied(
            json!({
                "rename": {"properties.revenue": "properties.value"},
                "allow": ["properties.value", "*.email"],
                "hash": ["*.email"],
            }),
            event(),
        );
        let hashed = hex::encode(Sha256::digest(b"a@b.c"));
        assert_eq!(out["properties"], json!({"email": hashed, "value": 10}));
    }

    #[test]
    fn emails_are_trimmed_lowercased_and_gmail_dots_go_for_google_only() {
        let out = applied(
            json!({"hash": ["*.email", "properties.work_email"]}),
            json!({"traits": {"email": "  Foo.Bar@GMail.com "},
                   "properties": {"work_email": "Test@Example.com"}}),
        );
        assert_eq!(out["traits"]["email"], FOOBAR_GMAIL);
        assert_eq!(out["properties"]["work_email"], TEST_EXAMPLE);

        let event = json!({"traits": {"email": "foo.bar@googlemail.com"}});
        assert_eq!(
            normalise("foo.bar@googlemail.com", Kind::Email, HashFormat::Google),
            "foobar@googlemail.com"
        );
        let out = applied(
            json!({"hash": ["traits.email"], "hash_format": "meta"}),
            event,
        );
        let meta = hex::encode(Sha256::digest(b"foo.bar@googlemail.com"));
        assert_eq!(out["traits"]["email"], meta);
    }

    #[test]
    fn phones_are_e164_for_google_and_digits_for_meta() {
        let event =
            json!({"traits": {"phone": "+1 (415) 555-0100", "mobilePhone": 14155550100u64}});
        let out = applied(
            json!({"hash": ["traits.phone", "traits.mobilePhone"]}),
            event.clone(),
        );
        assert_eq!(
            out["traits"],
            json!({"phone": PLUS_PHONE, "mobilePhone": PLUS_PHONE})
        );
        let out = applied(json!({"hash": ["*.phone"], "hash_format": "meta"}), event);
        assert_eq!(out["traits"]["phone"], DIGITS_PHONE);
        // An international 00 prefix is a leading zero.
        assert_eq!(
            normalise("00 1 415 555 0100", Kind::Phone, HashFormat::Google),
            "+14155550100"
        );
    }

    #[test]
    fn other_values_are_trimmed_and_lowercased_arrays_and_objects_hashed_inside() {
        let out = applied(
            json!({"hash": ["traits.name", "traits.emails", "traits.contact"]}),
            json!({"traits": {
                "name": " Jane DOE ",
                "emails": ["test@example.com", null, true],
                "contact": {"email": "TEST@example.com", "phones": {"home": "+1 415 555 0100"}},
            }}),
        );
        assert_eq!(
            out["traits"],
            json!({
                "name": JANE_DOE,
                "emails": [TEST_EXAMPLE, null, true],
                "contact": {"email": TEST_EXAMPLE, "phones": {"home": PLUS_PHONE}},
            })
        );
    }

    #[test]
    fn hashes_are_kept_and_empty_values_become_null() {
        let out = applied(
            json!({"hash": ["*.email", "*.phone"]}),
            json!({"traits": {"email": FOOBAR_GMAIL, "phone": "n/a"}, "properties": {"email": "  "}}),
        );
        assert_eq!(out["traits"], json!({"email": FOOBAR_GMAIL, "phone": null}));
        assert_eq!(out["properties"], json!({"email": null}));
    }

    #[test]
    fn bad_configurations_say_what_to_fix() {
        let cases = [
            (json!({"deny": [""]}), "empty path"),
            (json!({"hash": [" traits.email"]}), "spaces"),
            (json!({"deny": ["context..ip"]}), "empty key"),
            (json!({"deny": ["event.properties.x"]}), "goes inside event"),
            (json!({"rename": {"userId.x": "y"}}), "goes inside userId"),
            (
                json!({"deny": ["properties.*.x"]}),
                "at the start of a path",
            ),
            (json!({"hash": ["*"]}), "e.g. *.email"),
            (
                json!({"allow": ["context.ip"]}),
                "remove other fields with deny",
            ),
            (json!({"allow": ["email"]}), "write *.email for all three"),
            (json!({"allow": ["*.a.b"]}), "one key deep"),
            (json!({"allow": ["properties.a.b"]}), "properties.b"),
            (
                json!({"allow": ["*.email"], "deny": ["traits.email"]}),
                "take it out",
            ),
            (
                json!({"allow": ["traits.email"], "deny": ["traits"]}),
                "take it out",
            ),
            (
                json!({"rename": {"*.email": "*.em"}}),
                "write its full path",
            ),
            (json!({"rename": {"a": "a"}}), "to itself"),
            (
                json!({"rename": {"a": "b", "b": "c"}}),
                "rename each value once",
            ),
            (
                json!({"rename": {"a.b": "c", "a": "d"}}),
                "rename each value once",
            ),
            (
                json!({"rename": {"traits.email": "traits.em"}, "hash": ["*.email"]}),
                "write \"traits.em\"",
            ),
            (
                json!({"rename": {"context.ip": "properties.ip"}, "deny": ["context.ip"]}),
                "after renaming",
            ),
            (
                json!({"rename": {"a": "context.ip"}, "deny": ["context"]}),
                "deny \"a\" instead",
            ),
            (
                json!({"rename": {"a": "traits.b"}, "allow": ["*.email"]}),
                "add \"traits.b\" to allow",
            ),
        ];
        for (config, hint) in cases {
            let err = transform(config.clone()).validate().unwrap_err();
            assert!(err.contains(hint), "{config}: {err}");
        }
    }

    #[test]
    fn good_configurations_pass() {
        let t = transform(json!({
            "allow": ["*.email", "properties.revenue", "context.traits.age", "traits.value"],
            "deny": ["context.ip", "properties.coupon", "anonymousId", "*.address.street"],
            "hash": ["*.email", "traits.phone"],
            "rename": {"properties.total": "traits.value", "a.b": "a", "x": "x.y"},
        }));
        assert_eq!(t.validate(), Ok(()));
    }

    /// Keys that land often in the governed objects and in the paths below.
    const KEYS: [&str; 8] = [
        "properties",
        "traits",
        "context",
        "email",
        "phone",
        "a",
        "b",
        "name",
    ];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::sample::select(KEYS.to_vec()).prop_map(String::from),
            1 => "[a-z.]{0,4}",
        ]
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[ a-zA-Z0-9@.+()-]{0,20}".prop_map(Value::from),
            "[0-9a-f]{64}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec((key(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// An event-shaped object, so the rules have something to bite on.
    fn event_json() -> impl Strategy<Value = Value> {
        (json(), json(), json(), json()).prop_map(|(properties, traits, context_traits, rest)| {
            json!({
                "type": "track",
                "properties": properties,
                "traits": traits,
                "context": {"traits": context_traits, "rest": rest},
            })
        })
    }

    fn path() -> impl Strategy<Value = String> {
        (any::<bool>(), proptest::collection::vec(key(), 1..4)).prop_map(|(star, keys)| {
            let path = keys.join(".");
            if star {
                format!("*.{path}")
            } else {
                path
            }
        })
    }

    fn paths() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(path(), 0..4)
    }

    fn any_transform() -> impl Strategy<Value = Transform> {
        (
            paths(),
            paths(),
            paths(),
            any::<bool>(),
            proptest::collection::btree_map(path(), path(), 0..3),
        )
            .prop_map(|(allow, deny, hash, meta, rename)| Transform {
                allow,
                deny,
                hash,
                hash_format: if meta {
                    HashFormat::Meta
                } else {
                    HashFormat::Google
                },
                rename,
            })
    }

    fn get<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
        path.iter()
            .try_fold(value, |value, key| value.as_object()?.get(*key))
    }

    proptest! {
        #[test]
        fn apply_never_panics(t in any_transform(), mut value in prop_oneof![json(), event_json()]) {
            t.apply(&mut value);
        }

        #[test]
        fn without_renames_applying_twice_is_applying_once(
            mut t in any_transform(),
            event in event_json(),
        ) {
            t.rename.clear();
            let mut once = event;
            t.apply(&mut once);
            let mut twice = once.clone();
            t.apply(&mut twice);
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn a_denied_path_is_never_sent(t in any_transform(), mut event in event_json()) {
            t.apply(&mut event);
            for path in t.deny.iter().flat_map(|name| expand(name)) {
                prop_assert!(get(&event, &path).is_none(), "{:?} in {}", path, event);
            }
        }

        #[test]
        fn no_key_outside_allow_is_sent_in_the_governed_objects(
            mut t in any_transform(),
            mut event in event_json(),
            everywhere in proptest::sample::subsequence(KEYS.to_vec(), 1..4),
        ) {
            t.allow.extend(everywhere.into_iter().map(|key| format!("*.{key}")));
            t.apply(&mut event);
            for governed in GOVERNED {
                let Some(Value::Object(object)) = get(&event, &split(governed)) else { continue };
                for key in object.keys() {
                    let allowed = t.allow.contains(&format!("*.{key}"))
                        || t.allow.contains(&format!("{governed}.{key}"));
                    prop_assert!(allowed, "{}.{} survived {:?}", governed, key, t.allow);
                }
            }
        }

        #[test]
        fn hashed_paths_carry_only_digests(t in any_transform(), mut event in event_json()) {
            t.apply(&mut event);
            fn digests_only(value: &Value) -> bool {
                match value {
                    Value::String(s) => s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()),
                    Value::Number(_) => false,
                    Value::Array(items) => items.iter().all(digests_only),
                    Value::Object(object) => object.values().all(digests_only),
                    Value::Null | Value::Bool(_) => true,
                }
            }
            for path in t.hash.iter().flat_map(|name| expand(name)) {
                if let Some(value) = get(&event, &path) {
                    prop_assert!(digests_only(value), "{:?} in {}", path, event);
                }
            }
        }
    }
}
