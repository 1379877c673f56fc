//! The vocabulary shared by every module: identifier types, identifiers and profile ids.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of an identifier. The five built-in types are unit variants so that the hot
/// path never allocates for them; external ids and custom trait keys are `Custom`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum IdType {
    UserId,
    Email,
    Phone,
    DeviceId,
    AnonymousId,
    Custom(Box<str>),
}

impl IdType {
    pub fn as_str(&self) -> &str {
        match self {
            IdType::UserId => "user_id",
            IdType::Email => "email",
            IdType::Phone => "phone",
            IdType::DeviceId => "device_id",
            IdType::AnonymousId => "anonymous_id",
            IdType::Custom(name) => name,
        }
    }

    /// Parses a type name; names are trimmed and lower-cased, so `CRM_ID` and `crm_id` agree.
    pub fn parse(name: &str) -> IdType {
        let name = name.trim();
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        match name {
            "user_id" => IdType::UserId,
            "email" => IdType::Email,
            "phone" => IdType::Phone,
            "device_id" => IdType::DeviceId,
            "anonymous_id" => IdType::AnonymousId,
            other => IdType::Custom(other.into()),
        }
    }
}

impl From<String> for IdType {
    fn from(name: String) -> Self {
        IdType::parse(&name)
    }
}

impl From<IdType> for String {
    fn from(id_type: IdType) -> Self {
        id_type.as_str().to_owned()
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised identifier, e.g. `email:ann@example.com`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub id_type: IdType,
    pub value: String,
}

impl Identifier {
    pub fn new(id_type: IdType, value: impl Into<String>) -> Identifier {
        Identifier {
            id_type,
            value: value.into(),
        }
    }

    /// Parses the `type:value` form used by the Profile API (`user_id:42`).
    pub fn parse(text: &str) -> Option<Identifier> {
        let (id_type, value) = text.split_once(':')?;
        let id_type = IdType::parse(id_type);
        (!id_type.as_str().is_empty() && !value.is_empty()).then(|| Identifier::new(id_type, value))
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id_type, self.value)
    }
}

/// A canonical profile id: the log sequence number of the event that created the profile.
/// Log order is the truth, so the id is the same on every rebuild and for every batching;
/// on a merge the smaller (older) id survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileId(pub i64);

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
