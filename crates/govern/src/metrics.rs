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
use sightline_core::time::day_of;
use sightline_core::EventType;

/// The scenario names the blocked-script rate compares.
pub const ACCEPT_ALL: &str = "accept-all";
pub const REJECT_ALL: &str = "reject-all";

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

/// A scan's metrics. `documented` holds the inventory's vendors, lowercased; `first` is the
/// journey's first scan's metrics (none when this is its first).
pub fn scan_metrics(
    scan: &ScanObservation,
    documented: &BTreeSet<String>,
    first: Option<&ScanMetrics>,
) -> ScanMetrics {
    let tags: BTreeSet<&String> = scan.scripts.values().flatten().collect();
    let undocumented: Vec<String> = scan
        .vendors
        .iter()
        .filter(|v| !documented.contains(&v.to_lowercase()))
        .cloned()
        .collect();
    let blocked_script_rate = match (scan.scripts.get(ACCEPT_ALL), scan.scripts.get(REJECT_ALL)) {
        (Some(accepted), Some(refused)) if !accepted.is_empty() => {
            let held_back = accepted.difference(refused).count();
            Some(held_back as f64 / accepted.len() as f64)
        }
        _ => None,
    };
    let third_party_latency_ms = (!scan.load_times.is_empty()).then(|| {
        let cost: u64 = scan
            .load_times
            .iter()
            .map(|&(load, blocked)| load.saturating_sub(blocked))
            .sum();
        cost as f64 / scan.load_times.len() as f64
    });
    let vendor_count = scan.vendors.len();
    ScanMetrics {
        scan_id: scan.scan_id,
        journey: scan.journey.clone(),
        at: scan.at,
        day: day_of(scan.at),
        tag_count: tags.len(),
        vendor_count,
        undocumented_vendors: undocumented.len(),
        tags_before_consent: scan.before_consent.len(),
        blocked_script_rate,
        third_party_latency_ms,
        vendor_reduction: first.map_or(0, |f| f.vendor_count as i64 - vendor_count as i64),
        tags: tags.into_iter().cloned().collect(),
        vendors: scan.vendors.iter().cloned().collect(),
        undocumented,
        before_consent: scan.before_consent.iter().cloned().collect(),
    }
}

/// Whether a logged event counts towards consent quality: behavioural (track, page,
/// screen) and from a tracking source, not from the consent API (source 0), whose events
/// state consent by construction.
pub fn counts_for_consent(event_type: EventType, source_id: i64) -> bool {
    source_id != 0
        && matches!(
            event_type,
            EventType::Track | EventType::Page | EventType::Screen
        )
}

/// Counts one event (see [`counts_for_consent`]) into its UTC day and source.
pub fn count_event(
    days: &mut BTreeMap<String, BTreeMap<String, ConsentCounts>>,
    day: String,
    source: &str,
    has_consent_signal: bool,
) {
    let counts = days
        .entry(day)
        .or_default()
        .entry(source.to_owned())
        .or_default();
    counts.events += 1;
    counts.with_consent_signal += u64::from(has_consent_signal);
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The day series: every day with a stored scan or logged events, oldest first. `scans`
/// in any order; `consent` per day and source; `attribution` per day.
pub fn day_series(
    scans: &[ScanMetrics],
    consent: &BTreeMap<String, BTreeMap<String, ConsentCounts>>,
    attribution: &BTreeMap<String, f64>,
) -> Vec<DayMetrics> {
    let mut scans: Vec<&ScanMetrics> = scans.iter().collect();
    scans.sort_by_key(|s| (s.at, s.scan_id));
    let days: BTreeSet<&String> = scans.iter().map(|s| &s.day).chain(consent.keys()).collect();

    // The latest scan of each journey so far, as the days go by.
    let mut latest: BTreeMap<&str, &ScanMetrics> = BTreeMap::new();
    let mut pending = scans.iter().peekable();
    let mut first_vendor_count: Option<usize> = None;
    let mut out = Vec::with_capacity(days.len());
    for day in days {
        let mut stored_that_day = 0;
        while let Some(scan) = pending.next_if(|s| s.day <= *day) {
            stored_that_day += usize::from(scan.day == *day);
            latest.insert(&scan.journey, scan);
        }
        let union = |pick: fn(&ScanMetrics) -> &Vec<String>| -> Option<usize> {
            (!latest.is_empty()).then(|| {
                latest
                    .values()
                    .flat_map(|s| pick(s))
                    .collect::<BTreeSet<_>>()
                    .len()
            })
        };
        let vendor_count = union(|s| &s.vendors);
        if first_vendor_count.is_none() {
            first_vendor_count = vendor_count;
        }
        let counts = consent
            .get(day.as_str())
            .into_iter()
            .flat_map(|d| d.values());
        let (events, with_consent_signal) = counts.fold((0, 0), |(e, w), c| {
            (e + c.events, w + c.with_consent_signal)
        });
        out.push(DayMetrics {
            day: day.clone(),
            scans: stored_that_day,
            journeys: latest.len(),
            tag_count: union(|s| &s.tags),
            vendor_count,
            undocumented_vendors: union(|s| &s.undocumented),
            tags_before_consent: union(|s| &s.before_consent),
            blocked_script_rate: mean(latest.values().filter_map(|s| s.blocked_script_rate)),
            third_party_latency_ms: mean(latest.values().filter_map(|s| s.third_party_latency_ms)),
            vendor_reduction: first_vendor_count
                .zip(vendor_count)
                .map(|(first, now)| first as i64 - now as i64),
            events,
            with_consent_signal,
            consent_quality: (events > 0).then(|| with_consent_signal as f64 / events as f64),
            attribution_variance: attribution.get(day.as_str()).copied(),
        });
    }
    out
}

/// The attribution variance of one report's `variance` object (channel → `{mean, std_dev}`):
/// the models' disagreement as a share of the credit; none without credit.
pub fn attribution_variance(variance: &serde_json::Value) -> Option<f64> {
    let channels = variance.as_object()?;
    let (spread, credit) = channels.values().fold((0.0, 0.0), |(s, c), v| {
        let read = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        (s + read("std_dev"), c + read("mean"))
    });
    (credit > 0.0 && spread.is_finite()).then(|| spread / credit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY_MS: i64 = 86_400_000;
    /// 2026-12-01T00:00:00Z.
    const DEC_1: i64 = 1_796_083_200_000;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn observation(id: i64, journey: &str, at: i64, vendors: &[&str]) -> ScanObservation {
        ScanObservation {
            scan_id: id,
            journey: journey.into(),
            at,
            vendors: set(vendors),
            scripts: BTreeMap::from([
                (
                    ACCEPT_ALL.to_string(),
                    vendors
                        .iter()
                        .map(|v| format!("https://{v}/tag.js"))
                        .collect(),
                ),
                (REJECT_ALL.to_string(), set(&["https://cmp.example/cmp.js"])),
            ]),
            before_consent: set(&vendors[..1.min(vendors.len())]),
            load_times: vec![(900, 400), (300, 500)],
        }
    }

    #[test]
    fn a_scan_counts_tags_vendors_and_what_the_inventory_lacks() {
        let scan = observation(7, "checkout", DEC_1 + 5, &["Meta Pixel", "Hotjar"]);
        let m = scan_metrics(&scan, &set(&["meta pixel"]), None);
        assert_eq!(m.day, "2026-12-01");
        assert_eq!(m.tag_count, 3, "two vendor tags and the CMP's script");
        assert_eq!(m.vendor_count, 2);
        assert_eq!(m.undocumented, vec!["Hotjar".to_string()]);
        assert_eq!(m.tags_before_consent, 1);
        assert_eq!(
            m.blocked_script_rate,
            Some(1.0),
            "refusing held back both tags"
        );
        assert_eq!(m.third_party_latency_ms, Some(250.0), "(500 + 0) / 2 steps");
        assert_eq!(m.vendor_reduction, 0);

        let later = observation(8, "checkout", DEC_1 + DAY_MS, &["Meta Pixel"]);
        let next = scan_metrics(&later, &set(&[]), Some(&m));
        assert_eq!(next.vendor_reduction, 1);
        assert_eq!(next.undocumented_vendors, 1, "the inventory of that moment");
    }

    #[test]
    fn rates_need_their_evidence() {
        let mut scan = observation(1, "j", DEC_1, &["A"]);
        scan.scripts.remove(REJECT_ALL);
        scan.load_times.clear();
        let m = scan_metrics(&scan, &BTreeSet::new(), None);
        assert_eq!(m.blocked_script_rate, None);
        assert_eq!(m.third_party_latency_ms, None);
    }

    #[test]
    fn only_behavioural_events_of_tracking_sources_count() {
        assert!(counts_for_consent(EventType::Track, 1));
        assert!(counts_for_consent(EventType::Page, 2));
        assert!(!counts_for_consent(EventType::Identify, 1));
        assert!(!counts_for_consent(EventType::Track, 0));
    }

    #[test]
    fn days_join_the_latest_scan_of_every_journey_and_the_consent_counts() {
        let d = &set(&[]);
        let a1 = scan_metrics(&observation(1, "a", DEC_1, &["X", "Y"]), d, None);
        let b1 = scan_metrics(&observation(2, "b", DEC_1 + 10, &["Y", "Z"]), d, None);
        let a2 = scan_metrics(
            &observation(3, "a", DEC_1 + 2 * DAY_MS, &["Z"]),
            d,
            Some(&a1),
        );
        let mut consent = BTreeMap::new();
        count_event(&mut consent, "2026-12-02".into(), "web", true);
        count_event(&mut consent, "2026-12-02".into(), "web", false);
        count_event(&mut consent, "2026-12-02".into(), "app", true);
        count_event(&mut consent, "2026-11-30".into(), "web", false);
        let attribution = BTreeMap::from([("2026-12-02".to_string(), 0.25)]);

        let days = day_series(
            &[a2.clone(), b1.clone(), a1.clone()],
            &consent,
            &attribution,
        );
        let names: Vec<&str> = days.iter().map(|d| d.day.as_str()).collect();
        assert_eq!(
            names,
            ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03"]
        );

        let before = &days[0];
        assert_eq!((before.journeys, before.vendor_count), (0, None));
        assert_eq!(before.consent_quality, Some(0.0));

        let first = &days[1];
        assert_eq!((first.scans, first.journeys), (2, 2));
        assert_eq!(first.vendor_count, Some(3), "X, Y and Z");
        assert_eq!(first.vendor_reduction, Some(0));
        assert_eq!(first.consent_quality, None, "no events that day");

        let carried = &days[2];
        assert_eq!(carried.scans, 0);
        assert_eq!(
            carried.vendor_count,
            Some(3),
            "both journeys as last scanned"
        );
        assert_eq!(carried.events, 3);
        assert_eq!(carried.consent_quality, Some(2.0 / 3.0));
        assert_eq!(carried.attribution_variance, Some(0.25));

        let rescanned = &days[3];
        assert_eq!(rescanned.scans, 1);
        assert_eq!(
            rescanned.vendor_count,
            Some(2),
            "a dropped X and Y, b still sends to Y and Z"
        );
        assert_eq!(rescanned.vendor_reduction, Some(1));
    }

    #[test]
    fn attribution_variance_is_spread_over_credit() {
        let v = serde_json::json!({
            "Email": {"mean": 3.0, "std_dev": 1.0},
            "Paid Search": {"mean": 1.0, "std_dev": 1.0},
        });
        assert_eq!(attribution_variance(&v), Some(0.5));
        assert_eq!(attribution_variance(&serde_json::json!({})), None);
        assert_eq!(attribution_variance(&serde_json::json!([1])), None);
    }

    proptest! {
        #[test]
        fn rates_are_shares_and_days_are_ordered(
            scans in proptest::collection::vec(
                (0i64..4, 0i64..10 * DAY_MS, proptest::collection::btree_set("[a-e]", 0..5),
                 proptest::collection::btree_set("[a-e]", 0..5),
                 proptest::collection::vec((0u64..5_000, 0u64..5_000), 0..4)),
                0..12),
            events in proptest::collection::vec((0i64..10, any::<bool>()), 0..40),
        ) {
            let mut kept: Vec<ScanMetrics> = Vec::new();
            for (i, (journey, at, accepted, refused, load_times)) in scans.into_iter().enumerate() {
                let journey = format!("j{journey}");
                let scan = ScanObservation {
                    scan_id: i as i64,
                    journey: journey.clone(),
                    at: DEC_1 + at,
                    vendors: accepted.clone(),
                    scripts: BTreeMap::from([
                        (ACCEPT_ALL.to_string(), accepted),
                        (REJECT_ALL.to_string(), refused),
                    ]),
                    before_consent: BTreeSet::new(),
                    load_times,
                };
                let first = kept.iter().find(|k| k.journey == journey).cloned();
                let m = scan_metrics(&scan, &BTreeSet::new(), first.as_ref());
                if let Some(rate) = m.blocked_script_rate {
                    prop_assert!((0.0..=1.0).contains(&rate));
                }
                if let Some(cost) = m.third_party_latency_ms {
                    prop_assert!(cost >= 0.0);
                }
                kept.push(m);
            }
            let mut consent = BTreeMap::new();
            for (day, signal) in events {
                count_event(&mut consent, day_of(DEC_1 + day * DAY_MS), "web", signal);
            }
            let days = day_series(&kept, &consent, &BTreeMap::new());
            prop_assert!(days.windows(2).all(|w| w[0].day < w[1].day));
            prop_assert_eq!(days.iter().map(|d| d.scans).sum::<usize>(), kept.len());
            for d in &days {
                if let Some(q) = d.consent_quality {
                    prop_assert!((0.0..=1.0).contains(&q));
                }
                prop_assert!(d.with_consent_signal <= d.events);
            }
            if let Some(first) = days.iter().find(|d| d.vendor_count.is_some()) {
                prop_assert_eq!(first.vendor_reduction, Some(0));
            }
        }
    }
}
