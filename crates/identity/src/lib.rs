//! Deterministic identity resolution with merge protection for Sightline.
//!
//! The core is [`resolve`]: a pure function from one event's identifiers and the slice of
//! the identity graph they touch to a list of plain [`Change`]s. [`Graph`] is the in-memory
//! graph that feeds it slices and applies its changes; a database-backed processor does the
//! same with rows. See README.md for the rules and ARCHITECTURE-section.md for invariants.

mod explain;
mod extract;
mod graph;
mod identifier;
mod resolve;
mod rules;

pub use explain::{explain, sentence};
pub use extract::{
    extract, normalise, normalise_email, normalise_phone, Call, EventIdentifiers, RejectReason,
    Rejected,
};
pub use graph::{Graph, Profile, Record};
pub use identifier::{IdType, Identifier, ProfileId};
pub use phonenumber::country::Id as Region;
pub use resolve::{resolve, Change, GraphSlice, IdentifierState, ProfileSummary, Resolution, Rule};
pub use rules::{Config, ConfigError, Rules};
