//! Governance metrics as a time series per scan and per day.
//!
//! A scan's metrics are computed when it is stored, against the inventory of that moment
//! (so "undocumented vendors" is what was undocumented then), and kept. The log's consent
//! counts are kept per day and source. A day's figures join the two: the latest scan of
//! every journey stored up to that day (a journey not scanned that day still counts as its
//! last scan saw it), the day's consent counts and, when attribution is asked for, the
//! variance between the attribution models for that day's conversions.
//!
//! Definitions (also in docs/governance.md):
//! - **tag count**: distinct third-party scripts (scheme, host and path) any scenario loaded;
//! - **vendor count**: distinct third-party vendors any scenario sent a request to;
//! - **undocumented vendors**: vendors seen that have no tag in the inventory (any status);
//! - **tags firing before consent**: vendors with a `pre_consent` finding;
//! - **blocked-script rate**: of the third-party scripts loaded with every purpose accepted,
//!   the share not loaded when every purpose was refused (needs both scenarios);
//! - **page latency cost of third parties**: mean per measured step of its load time minus
//!   its load time with every third-party request blocked (`scan --tag-cost`), floored at 0;
//! - **vendor reduction**: the first scan's (or first day's) vendor count minus this one's;
//! - **consent quality**: the share of behavioural events (track, page, screen) from
//!   tracking sources that carry a consent signal that decodes;
//! - **attribution variance**: over the day's conversions, the models' standard deviation
//!   of credit summed over channels, divided by the mean credit summed over channels.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The scenario names the blocked-script rate compares.
pub const ACCEPT_ALL: &str = "accept_all";
pub const REJECT_ALL: &str = "reject_all";

/// What one stored scan shows, read from its report by the binary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanObservation {
    pub scan_id: i64,
    pub journey: String,
    /// When it was stored (ms).
    pub at: i64,
    /// Third-party vendors seen, over every scenario.
    pub vendors: BTreeSet<String>,
    /// Third-party scripts (scheme, host and path) loaded, by scenario name.
    pub scripts: BTreeMap<String, BTreeSet<String>>,
    /// Vendors with a `pre_consent` finding.
    pub before_consent: BTreeSet<String>,
    /// Each measured step's load time and its load time with third parties blocked (ms).
    pub load_times: Vec<(u64, u64)>,
}

/// One scan's metrics, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanMetrics {
    pub scan_id: i64,
    pub journey: String,
    /// When it was stored (ms) and that day (UTC, `YYYY-MM-DD`).
    pub at: i64,
    pub day: String,
    pub tag_count: usize,
    pub vendor_count: usize,
    pub undocumented_vendors: usize,
    pub tags_before_consent: usize,
    pub blocked_script_rate: Option<f64>,
    pub third_party_latency_ms: Option<f64>,
    /// The journey's first scan's vendor count minus this one's.
    pub vendor_reduction: i64,
    /// The names behind the counts, so that days can join journeys.
    pub tags: Vec<String>,
    pub vendors: Vec<String>,
    pub undocumented: Vec<String>,
    pub before_consent: Vec<String>,
}

/// One day's consent counts from one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentCounts {
    pub events: u64,
    pub with_consent_signal: u64,
}

/// One day's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayMetrics {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Scans stored that day.
    pub scans: usize,
    /// Journeys with a scan stored up to that day; the scan figures are theirs (none
    /// before the first scan).
    pub journeys: usize,
    pub tag_count: Option<usize>,
    pub vendor_count: Option<usize>,
    pub undocumented_vendors: Option<usize>,
    pub tags_before_consent: Option<usize>,
    pub blocked_script_rate: Option<f64>,
    pub third_party_latency_ms: Option<f64>,
    /// The first day's vendor count minus this day's.
    pub vendor_reduction: Option<i64>,
    pub events: u64,
    pub with_consent_signal: u64,
    /// `with_consent_signal / events`; none on a day without events.
    pub consent_quality: Option<f64>,
    pub attribution_variance: Option<f64>,
}
