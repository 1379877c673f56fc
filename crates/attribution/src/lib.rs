//! Sightline attribution: channel grouping and multi-touch attribution models.
//!
//! Pure logic, no IO beyond reading a [`std::io::Read`] handed in:
//! - [`channel`]: GA4 default channel grouping with our own source lists and user rules;
//! - [`journeys`]: touches, sessions and paths from Segment events;
//! - [`read_paths_csv`]: aggregated paths from CSV;
//! - [`models`]: first/last touch, last non-direct, linear, time decay, position-based,
//!   Markov removal effects (exact) and Shapley values (exact);
//! - [`paths_report`] / [`journeys_report`]: the JSON of `sightline attribution paths`.

pub mod channel;
mod csv_paths;
mod error;
pub mod journeys;
pub mod models;
mod path;
mod report;

pub use channel::{ChannelGrouper, ChannelInput, TrafficSource};
pub use csv_paths::read_paths_csv;
pub use error::{Error, Result};
pub use journeys::{build_journeys, Dimension, Journey, JourneyConfig, ProfileEvent, Touchpoint};
pub use path::{AgeUnit, Path, PathSet};
pub use report::{journeys_report, paths_report, report, PathsOptions};
