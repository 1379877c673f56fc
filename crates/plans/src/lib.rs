//! Tracking plans (pure): what a source's events should look like, and what to do with the
//! ones that do not. A plan ([`PlanDocument`]) holds a JSON Schema (draft 2020-12) per
//! `track` event name and for `identify`/`group` traits and `page`/`screen` properties,
//! and a [`Mode`] per [`ViolationKind`]. [`Plan`] is a document compiled once;
//! [`Enforcer`] judges events with it after a source's [`Fixes`]; [`Tally`] counts what
//! it found until the violations are stored; [`Registry`] holds the plans in force by
//! source. `import` reads Segment's and Snowplow's formats and writes Segment's, `infer`
//! drafts a plan from observed events. No IO: text and values in, values out.

mod compile;
mod document;
pub mod import;
pub mod infer;
mod registry;
mod screen;
mod tally;

pub use compile::Plan;
pub use document::{
    CommonRule, Enforcement, Fixes, Mode, PlanDocument, PropertiesRule, TraitsRule, ViolationKind,
};
pub use registry::Registry;
pub use screen::{Enforcer, Screened, Verdict, Violation};
pub use tally::{mask, Tallied, Tally, TallyKey, SAMPLES_KEPT};

/// Why a plan (or a source's fixes, or an imported file) was refused; each says where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// Not JSON, or a key this version does not know (serde names the line and column).
    #[error("{0}")]
    Syntax(String),
    /// A schema the draft 2020-12 meta-schema refuses, or one that cannot be compiled.
    #[error("invalid schema at {at}: {message}")]
    Schema { at: String, message: String },
    /// A mode that does not apply to its kind of violation.
    #[error("invalid mode at {at}: {message}")]
    Mode { at: String, message: String },
    /// An imported file in neither format, or missing a part the format requires.
    #[error("cannot import: {0}")]
    Import(String),
}
