//! The governance registry as pure logic: plain data in, plain data out, no IO and no
//! clock (times and days are passed in). The binary stores what these functions return.
//!
//! - [`journey`]: journeys and their steps, and the scanner's journey TOML in and out.
//! - [`tag`]: the tag inventory, its approval workflow and change-log entries.
//! - [`flow`]: destinations (server-side data flows) and their security approval.
//! - [`backlog`]: scan findings as backlog items, their transitions across re-scans and by hand.
//! - [`vendor`]: vendor risk records and overdue reviews.
//! - [`lineage`]: the lineage graph from evidence, and its OpenLineage, DOT and Mermaid forms.
//! - [`metrics`]: governance metrics per scan and per day.
//! - [`report`]: the self-contained HTML report.

pub mod backlog;
pub mod flow;
pub mod journey;
pub mod lineage;
pub mod metrics;
pub mod report;
pub mod tag;
pub mod vendor;

pub use sightline_core::Role;

/// Why an action was refused. Nothing is changed by a refused action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovernError {
    /// The input is malformed: the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The actor's role (or identity, for self-approval) does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// The record's current status does not allow it.
    #[error("{0}")]
    Transition(String),
}

pub type Result<T> = std::result::Result<T, GovernError>;

/// Who acts: an identity (a token's `token:ID`, or a name) and the role it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    /// The API token acting, `None` for the operator at the command line (the audit log
    /// records `token:ID` or `cli`).
    pub token: Option<i64>,
}

/// Parses a `YYYY-MM-DD` day; the error names the field.
pub fn parse_day(field: &str, text: &str) -> Result<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| {
            GovernError::Invalid(format!("{field}: {text:?} is not a day: write YYYY-MM-DD"))
        })
}

/// A required text field: trimmed, 1 to `max` characters.
pub(crate) fn required(field: &str, text: &str, max: usize) -> Result<String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(GovernError::Invalid(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_strict() {
        assert!(parse_day("d", "2026-12-03").is_ok());
        for bad in ["2026-13-01", "2026-2-1", "tomorrow", "", "2026-02-30"] {
            let err = parse_day("review_date", bad).unwrap_err();
            assert!(err.to_string().contains("review_date"), "{bad}");
        }
    }
}
