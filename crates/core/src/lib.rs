//! The event model shared by every stage: Segment call types, events as they enter and
//! leave the log, sources and API roles, secrets and time.

pub mod destination;
pub mod event;
pub mod profile;
pub mod pruned;
pub mod review;
pub mod secret;
pub mod time;

pub use destination::{Delivery, DeliveryStatus, Destination, DestinationKind, NewDestination};
pub use event::{EventType, NewEvent, StoredEvent};
pub use profile::{
    DeniedCount, IdentifierRow, ProfileRows, ProfileSave, ProfilesState, StoredProfile,
};
pub use review::{LinkReview, NewLinkReview, ReviewStatus};

/// A tracking source: the write keys of one site or app map to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Source {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

/// What an API token may do. `admin` may do everything except approve or reject tags
/// (`security`, see crates/govern); `marketing` proposes tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Marketing,
    Security,
    /// Reads everything the others may read (events, profiles, audiences, reports, lineage);
    /// changes nothing.
    Analyst,
    /// Reads profiles and the audit log (and, later, access and erasure requests).
    Privacy,
    /// Reads `/metrics` and `/readyz?verbose` and nothing else: the token a Prometheus
    /// scrape config holds.
    Metrics,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Marketing,
        Role::Security,
        Role::Analyst,
        Role::Privacy,
        Role::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Marketing => "marketing",
            Role::Security => "security",
            Role::Analyst => "analyst",
            Role::Privacy => "privacy",
            Role::Metrics => "metrics",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored audience definition: a rule in the audience language's text form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AudienceDefinition {
    pub id: i64,
    pub name: String,
    pub rule: String,
    /// Destinations its adds and removes are sent to.
    pub sync: Vec<String>,
    pub created_at: i64,
}

/// A stored computed trait definition (`sightline_audience::ComputedTrait` as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraitDefinition {
    pub id: i64,
    pub name: String,
    pub definition: serde_json::Value,
    pub created_at: i64,
}

/// An API token as the store knows it: never the secret itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    pub id: i64,
    pub role: Role,
}
