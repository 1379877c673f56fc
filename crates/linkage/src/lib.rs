//! Probabilistic record linkage (Fellegi–Sunter with EM) for Sightline.
//!
//! Plain data in, plain data out: load records with [`Dataset::from_csv_path`],
//! call [`dedupe`] or [`pair`], write the links with [`LinkResult::write_links_csv`].
//! The only IO is CSV reading and writing through paths and readers/writers.

mod blocking;
mod compare;
mod dataset;
mod em;
mod error;
mod link;
mod mapping;
mod model;
mod normalize;
mod random;

pub use blocking::RuleCount;
pub use compare::Comparison;
pub use dataset::{Dataset, SkippedRow};
pub use em::EmOptions;
pub use error::Error;
pub use link::{
    dedupe, pair, plan_dedupe, plan_pair, Decision, EmReport, FieldParameters, LevelParameters,
    LinkOptions, LinkResult, ScoredPair, Summary,
};
pub use mapping::{BlockingKey, BlockingRule, FieldSpec, KeyTransform, Mapping, ResolvedMapping};
pub use model::{Explanation, FieldContribution, Model};
pub use normalize::normalize;
pub use random::SplitMix64;
