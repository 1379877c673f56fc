//! The clerical review queue of record linkage: pairs scored between the two thresholds,
//! kept until a person accepts (the link goes to the log) or rejects them.

use serde::Serialize;

/// Where a review item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    Pending,
    /// Accepted: a record linkage event joining the two sides was appended (its seq kept).
    Accepted,
    Rejected,
}

impl ReviewStatus {
    pub const ALL: [ReviewStatus; 3] = [
        ReviewStatus::Pending,
        ReviewStatus::Accepted,
        ReviewStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Accepted => "accepted",
            ReviewStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<ReviewStatus> {
        ReviewStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A pair to queue for review. `left` and `right` are identifiers (`type:value`) that
/// name the two sides; a pair already queued (in either order) is not queued again.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLinkReview {
    /// What produced it, e.g. `crm import customers.csv`.
    pub origin: String,
    pub left: String,
    pub right: String,
    pub match_probability: f64,
    /// The linkage explanation (the waterfall) as JSON.
    pub evidence: String,
}

/// A stored review item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkReview {
    pub id: i64,
    pub origin: String,
    pub left: String,
    pub right: String,
    pub match_probability: f64,
    pub evidence: serde_json::Value,
    pub status: ReviewStatus,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    /// The seq of the record linkage event an acceptance appended.
    pub seq: Option<i64>,
}
