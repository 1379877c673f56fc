//! A tracking plan as it is written, stored and shown: JSON with a rule per `track` event
//! name, for `identify` and `group` traits and for `page` and `screen` properties, each a
//! JSON Schema (draft 2020-12) of the properties or traits, a `common` rule over every
//! call as a whole, and the enforcement modes.
//! Unknown keys are refused, so a misspelt key never silently means "no rule".

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDocument {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Rules for `track` events, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub track: BTreeMap<String, PropertiesRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identify: Option<TraitsRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<TraitsRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PropertiesRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<PropertiesRule>,
    /// A rule over every call as a whole (`context`, `userId`, …), beside its kind's rule:
    /// Segment's common (`global`) JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common: Option<CommonRule>,
}

/// A rule over the whole call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonRule {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The JSON Schema of the call's JSON.
    #[serde(default = "any_object")]
    pub call: Value,
}

/// A rule over an event's `properties`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertiesRule {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The Iglu URI (`iglu:vendor/name/jsonschema/version`) of the Snowplow schema this rule
    /// was imported from, kept to say where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iglu: Option<String>,
    /// The JSON Schema of `properties`; absent, any properties are valid.
    #[serde(default = "any_object")]
    pub properties: Value,
}

/// A rule over a call's `traits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraitsRule {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default = "any_object")]
    pub traits: Value,
}

pub(crate) fn any_object() -> Value {
    serde_json::json!({"type": "object"})
}

/// What happens to an event for each kind of violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enforcement {
    /// A `track` event whose name has no rule: `allow`, `flag` or `drop`.
    #[serde(default = "flag")]
    pub unplanned_event: Mode,
    /// A property or trait the schema does not allow (`additionalProperties`,
    /// `unevaluatedProperties`): `flag`, `omit` or `drop`.
    #[serde(default = "flag")]
    pub unplanned_property: Mode,
    /// A value of the wrong type or outside its constraints: `flag`, `omit` or `drop`.
    #[serde(default = "flag")]
    pub invalid_value: Mode,
    /// A required property or trait that is missing: `flag` or `drop` (nothing to omit).
    #[serde(default = "flag")]
    pub missing_required: Mode,
}

fn flag() -> Mode {
    Mode::Flag
}

impl Default for Enforcement {
    /// Accept and flag everything: a new plan never loses data until told to.
    fn default() -> Self {
        Enforcement {
            unplanned_event: Mode::Flag,
            unplanned_property: Mode::Flag,
            invalid_value: Mode::Flag,
            missing_required: Mode::Flag,
        }
    }
}

impl Enforcement {
    pub fn mode(&self, kind: ViolationKind) -> Mode {
        match kind {
            ViolationKind::UnplannedEvent => self.unplanned_event,
            ViolationKind::UnplannedProperty => self.unplanned_property,
            ViolationKind::InvalidValue => self.invalid_value,
            ViolationKind::MissingRequired => self.missing_required,
        }
    }
}

/// What is done with an event that breaks a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Accepted as it is, not recorded (only for unplanned events).
    Allow,
    /// Accepted, recorded, and marked in `context.protocols.violations`.
    Flag,
    /// Accepted without the offending properties or traits, recorded and marked.
    Omit,
    /// Not stored; recorded and reported in the response.
    Drop,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Allow => "allow",
            Mode::Flag => "flag",
            Mode::Omit => "omit",
            Mode::Drop => "drop",
        }
    }
}

/// The kinds of violation a plan tells apart, each with its own [`Mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    UnplannedEvent,
    UnplannedProperty,
    InvalidValue,
    MissingRequired,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 4] = [
        ViolationKind::UnplannedEvent,
        ViolationKind::UnplannedProperty,
        ViolationKind::InvalidValue,
        ViolationKind::MissingRequired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::UnplannedEvent => "unplanned_event",
            ViolationKind::UnplannedProperty => "unplanned_property",
            ViolationKind::InvalidValue => "invalid_value",
            ViolationKind::MissingRequired => "missing_required",
        }
    }

    /// The modes that make sense for this kind: nothing can be omitted from an unplanned
    /// event or for a missing property, and only an unplanned event may be let through
    /// unrecorded (a schema that forbids something means it).
    pub fn allows(self, mode: Mode) -> bool {
        match self {
            ViolationKind::UnplannedEvent => mode != Mode::Omit,
            ViolationKind::MissingRequired => matches!(mode, Mode::Flag | Mode::Drop),
            ViolationKind::UnplannedProperty | ViolationKind::InvalidValue => mode != Mode::Allow,
        }
    }
}

/// Fixes applied to a source's events before its plan judges them, as RudderStack users
/// configure transformations: renames and coercion of numeric strings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixes {
    /// `track` event names, old → new.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename_events: BTreeMap<String, String>,
    /// Top-level property and trait keys, old → new (a key already present under its new
    /// name is left alone: the event's own value wins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename_properties: BTreeMap<String, String>,
    /// A string holding a number, where the plan's schema wants a number or an integer,
    /// becomes that number.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coerce_numbers: bool,
}

impl Fixes {
    /// Reads fixes from JSON; unknown keys are refused with their position.
    pub fn parse(text: &str) -> Result<Fixes, crate::PlanError> {
        serde_json::from_str(text).map_err(|e| crate::PlanError::Syntax(e.to_string()))
    }
}
