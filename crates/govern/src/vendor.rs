//! Vendor risk: per vendor the data shared, purposes, DPA status, sub-processors (the
//! fourth parties scans saw it load), last review, review interval and risk rating.

use crate::{parse_day, required, GovernError, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpaStatus {
    #[default]
    Missing,
    Requested,
    Signed,
    NotNeeded,
}

impl DpaStatus {
    /// Its serde name.
    pub fn name(self) -> &'static str {
        match self {
            DpaStatus::Missing => "missing",
            DpaStatus::Requested => "requested",
            DpaStatus::Signed => "signed",
            DpaStatus::NotNeeded => "not_needed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskRating {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskRating {
    /// Its serde name.
    pub fn name(self) -> &'static str {
        match self {
            RiskRating::Low => "low",
            RiskRating::Medium => "medium",
            RiskRating::High => "high",
            RiskRating::Critical => "critical",
        }
    }
}

/// Days between reviews when none is given.
pub const DEFAULT_REVIEW_DAYS: u32 = 365;

fn default_review_days() -> u32 {
    DEFAULT_REVIEW_DAYS
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorRisk {
    pub vendor: String,
    #[serde(default)]
    pub data_shared: Vec<String>,
    #[serde(default)]
    pub purposes: Vec<String>,
    #[serde(default)]
    pub dpa: DpaStatus,
    /// Fourth parties seen loaded by this vendor; scans add to it.
    #[serde(default)]
    pub sub_processors: BTreeSet<String>,
    /// `YYYY-MM-DD`; none means never reviewed.
    #[serde(default)]
    pub last_review: Option<String>,
    #[serde(default = "default_review_days")]
    pub review_every_days: u32,
    pub rating: RiskRating,
    #[serde(default)]
    pub notes: Option<String>,
}

impl VendorRisk {
    /// The record trimmed and checked; the error names the field to fix.
    pub fn validated(mut self) -> Result<VendorRisk> {
        self.vendor = required("vendor", &self.vendor, 200)?;
        if let Some(day) = &self.last_review {
            parse_day("last_review", day)?;
        }
        if self.review_every_days == 0 || self.review_every_days > 3660 {
            return Err(GovernError::Invalid(
                "review_every_days must be 1 to 3660".into(),
            ));
        }
        Ok(self)
    }

    /// The day the next review is due; `None` when it was never reviewed (due now).
    pub fn next_review(&self) -> Option<NaiveDate> {
        let last = parse_day("", self.last_review.as_deref()?).ok()?;
        last.checked_add_days(chrono::Days::new(u64::from(self.review_every_days)))
    }

    /// Never reviewed, or the next review is before `today`.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        self.next_review().is_none_or(|due| due < today)
    }

    /// Adds the fourth parties a scan saw this vendor load; true when any was new.
    pub fn add_sub_processors<'a>(&mut self, seen: impl IntoIterator<Item = &'a str>) -> bool {
        let before = self.sub_processors.len();
        self.sub_processors.extend(
            seen.into_iter()
                .filter(|s| !s.eq_ignore_ascii_case(&self.vendor))
                .map(str::to_string),
        );
        self.sub_processors.len() > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn risk(last_review: Option<&str>) -> VendorRisk {
        serde_json::from_value(serde_json::json!({
            "vendor": "Meta", "rating": "high", "last_review": last_review,
        }))
        .unwrap()
    }

    #[test]
    fn overdue_reviews() {
        let today = parse_day("", "2026-12-03").unwrap();
        assert!(risk(None).is_overdue(today), "never reviewed");
        assert!(!risk(Some("2026-01-01")).is_overdue(today));
        assert!(risk(Some("2025-12-02")).is_overdue(today));
        assert!(
            !risk(Some("2025-12-03")).is_overdue(today),
            "due today is not overdue"
        );
        assert_eq!(risk(None).review_every_days, DEFAULT_REVIEW_DAYS);
        assert!(risk(Some("2026-02-30"))
            .validated()
            .unwrap_err()
            .to_string()
            .contains("last_review"));
        let bad: std::result::Result<VendorRisk, _> =
            serde_json::from_value(serde_json::json!({"vendor": "x", "rating": "meh"}));
        assert!(bad.is_err());
    }

    #[test]
    fn sub_processors_accumulate() {
        let mut r = risk(None);
        assert!(r.add_sub_processors(["TikTok", "meta"]));
        assert!(!r.add_sub_processors(["TikTok"]));
        assert_eq!(r.sub_processors.iter().collect::<Vec<_>>(), ["TikTok"]);
    }

    proptest! {
        /// Overdue exactly when today is past last review + interval.
        #[test]
        fn overdue_matches_the_interval(offset in 0i64..2000, every in 1u32..800) {
            let last = parse_day("", "2024-01-01").unwrap();
            let today = last + chrono::Duration::days(offset);
            let mut r = risk(Some("2024-01-01"));
            r.review_every_days = every;
            prop_assert_eq!(r.is_overdue(today), offset > i64::from(every));
        }
    }
}
