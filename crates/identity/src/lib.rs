//! Deterministic identity resolution with merge protection for Sightline.
//!
//! The core is [`resolve`]: a pure function from one event's identifiers and the slice of
//! the identity graph they touch to a list of plain [`Change`]s. [`Graph`] is the in-memory
//! graph that feeds it slices and applies its changes; a database-backed processor does the
//! same with rows. See README.md for the rules and ARCHITECTURE-section.md for invariants.
//!
//! ```
//! use serde_json::json;
//! use sightline_identity::{Graph, Identifier, ProfileId, Rules};
//!
//! let rules = Rules::default();
//! let mut graph = Graph::new();
//! graph.process(3, &json!({"type": "page", "anonymousId": "a1"}), &rules);
//! let landed = graph.process(17, &json!({"type": "identify", "anonymousId": "a1", "userId": 42}), &rules);
//! assert_eq!(landed, Some(ProfileId(3)));
//!
//! let profile = graph.profile_of(&Identifier::parse("user_id:42").unwrap()).unwrap();
//! assert_eq!(
//!     profile.explain()[1],
//!     "anonymous_id:a1 and user_id:42 were joined by the identify call at seq 17"
//! );
//! ```

mod explain;
mod extract;
mod graph;
mod identifier;
mod key;
mod resolve;
mod rules;

pub use explain::{explain, linkage_evidence, sentence};
pub use extract::{
    extract, extract_text, normalise, normalise_email, normalise_phone, Call, EventIdentifiers,
    RejectReason, Rejected,
};
pub use graph::{Graph, Profile};
pub use identifier::{IdType, Identifier, ProfileId};
pub use phonenumber::country::Id as Region;
pub use resolve::{
    resolve, Change, GraphSlice, GraphView, IdentifierState, ProfileSummary, Record, Resolution,
    Rule,
};
pub use rules::{Config, ConfigError, Rules};
