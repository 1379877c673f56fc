//! The findings backlog: scan findings as items with an owner, a deadline, an impact and a
//! status, kept up to date by every later scan of the journey.
//!
//! Across scans (in scan order), per item of the scanned journey:
//! - seen, and no item yet → a new `open` item;
//! - seen, item `fixed` or `verified` → `open` again (reopened);
//! - seen, item `accepted_risk` whose acceptance expired by the scan's day → `open`;
//! - not seen, where the scan looked (its scenario and step ran, or for journey-wide
//!   findings the whole scan completed), item `open`, `fixed` or `accepted_risk` →
//!   `verified`: the problem is gone;
//! - where the scan did not look, nothing changes.
//!
//! By hand: `fixed` (from `open`), `accepted_risk` with a reason and an expiry day after
//! today (from `open` or `fixed`), `open` again with a reason (from any other status), and
//! assigning owner, deadline and impact (any status). `verified` is only ever set by a scan.
//! Applying a scan is idempotent: an item remembers the last scan applied to it.

use crate::{parse_day, required, Actor, GovernError, Result, Role};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A finding's severity: the scanner's own type (in `sightline_scan::findings`, which
/// builds without its `browser` feature), so an item's severity is its finding's and is
/// stored under the same names (`low` … `critical`).
pub use sightline_scan::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BacklogStatus {
    Open,
    AcceptedRisk,
    Fixed,
    Verified,
}

impl BacklogStatus {
    pub fn name(self) -> &'static str {
        match self {
            BacklogStatus::Open => "open",
            BacklogStatus::AcceptedRisk => "accepted_risk",
            BacklogStatus::Fixed => "fixed",
            BacklogStatus::Verified => "verified",
        }
    }

    pub fn parse(text: &str) -> Option<BacklogStatus> {
        [
            BacklogStatus::Open,
            BacklogStatus::AcceptedRisk,
            BacklogStatus::Fixed,
            BacklogStatus::Verified,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// A finding's identity across scans (as `sightline scan diff` matches them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FindingKey {
    pub kind: String,
    pub scenario: Option<String>,
    pub step: Option<String>,
    pub vendor: String,
}

/// A finding as one scan saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub key: FindingKey,
    pub severity: Severity,
    pub message: String,
    /// The URL of the request that proves it.
    pub evidence: Option<String>,
}

/// Where a scan looked: the (scenario, step) pairs that ran, and whether every scenario
/// ran to its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub steps: BTreeSet<(String, String)>,
    pub complete: bool,
}

impl Coverage {
    fn covers(&self, key: &FindingKey) -> bool {
        match (&key.scenario, &key.step) {
            (Some(scenario), Some(step)) => self.steps.contains(&(scenario.clone(), step.clone())),
            _ => self.complete,
        }
    }
}

/// A scan that the backlog is brought forward with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanInput<'a> {
    pub id: i64,
    pub journey: &'a str,
    /// When it was stored (ms) and its day.
    pub at: i64,
    pub day: NaiveDate,
    pub findings: &'a [Observed],
    pub coverage: &'a Coverage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub reason: String,
    /// The last day the acceptance holds, `YYYY-MM-DD`.
    pub expires: String,
    pub by: String,
}

/// One status change, kept on the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at: i64,
    pub from: Option<BacklogStatus>,
    pub to: BacklogStatus,
    /// The scan that caused it, or the person who did it.
    pub scan: Option<i64>,
    pub by: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacklogItem {
    pub journey: String,
    pub finding: FindingKey,
    pub severity: Severity,
    pub message: String,
    pub evidence: Option<String>,
    pub owner: Option<String>,
    /// `YYYY-MM-DD`.
    pub deadline: Option<String>,
    pub impact: Option<String>,
    pub status: BacklogStatus,
    pub acceptance: Option<Acceptance>,
    pub first_seen_scan: i64,
    pub last_seen_scan: i64,
    /// The last scan that changed this item (so applying a scan twice changes nothing).
    pub last_checked_scan: i64,
    pub history: Vec<Transition>,
}

impl BacklogItem {
    /// The store's key: one item per journey and finding.
    pub fn key(&self) -> String {
        item_key(&self.journey, &self.finding)
    }

    fn move_to(
        &mut self,
        to: BacklogStatus,
        at: i64,
        scan: Option<i64>,
        by: Option<&str>,
        note: String,
    ) {
        self.history.push(Transition {
            at,
            from: Some(self.status),
            to,
            scan,
            by: by.map(str::to_string),
            note,
        });
        if to != BacklogStatus::AcceptedRisk {
            self.acceptance = None;
        }
        self.status = to;
    }

    /// Past its deadline and not resolved, or resting on an acceptance that has expired.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        let past = |day: &str| parse_day("", day).is_ok_and(|d| d < today);
        match self.status {
            BacklogStatus::Open | BacklogStatus::Fixed => {
                self.deadline.as_deref().is_some_and(past)
            }
            BacklogStatus::AcceptedRisk => {
                self.acceptance.as_ref().is_some_and(|a| past(&a.expires))
            }
            BacklogStatus::Verified => false,
        }
    }
}

pub fn item_key(journey: &str, f: &FindingKey) -> String {
    format!(
        "{journey}|{}|{}|{}|{}",
        f.kind,
        f.scenario.as_deref().unwrap_or("*"),
        f.step.as_deref().unwrap_or("*"),
        f.vendor
    )
}

/// Brings a journey's items forward with one scan; returns the items it created or
/// changed (in the order: existing items by position, then new ones by finding order).
pub fn apply_scan(items: &[BacklogItem], scan: &ScanInput<'_>) -> Vec<BacklogItem> {
    let mut changed = Vec::new();
    let mut seen_keys = BTreeSet::new();
    for item in items.iter().filter(|i| i.journey == scan.journey) {
        if item.last_checked_scan >= scan.id {
            seen_keys.insert(item.finding.clone());
            continue;
        }
        let mut next = item.clone();
        match scan.findings.iter().find(|f| f.key == item.finding) {
            Some(found) => {
                next.severity = found.severity;
                next.message = found.message.clone();
                next.evidence = found.evidence.clone();
                next.last_seen_scan = scan.id;
                let expired = next
                    .acceptance
                    .as_ref()
                    .is_some_and(|a| parse_day("", &a.expires).is_ok_and(|d| d < scan.day));
                match next.status {
                    BacklogStatus::Fixed | BacklogStatus::Verified => next.move_to(
                        BacklogStatus::Open,
                        scan.at,
                        Some(scan.id),
                        None,
                        format!("reopened: scan {} sees it again", scan.id),
                    ),
                    BacklogStatus::AcceptedRisk if expired => next.move_to(
                        BacklogStatus::Open,
                        scan.at,
                        Some(scan.id),
                        None,
                        format!(
                            "reopened: the accepted risk expired and scan {} still sees it",
                            scan.id
                        ),
                    ),
                    BacklogStatus::Open | BacklogStatus::AcceptedRisk => {}
                }
            }
            None if scan.coverage.covers(&item.finding)
                && next.status != BacklogStatus::Verified =>
            {
                next.move_to(
                    BacklogStatus::Verified,
                    scan.at,
                    Some(scan.id),
                    None,
                    format!("verified: scan {} no longer sees it", scan.id),
                );
            }
            None => {}
        }
        seen_keys.insert(item.finding.clone());
        if next != *item {
            next.last_checked_scan = scan.id;
            changed.push(next);
        }
    }
    for found in scan.findings {
        if seen_keys.insert(found.key.clone()) {
            changed.push(BacklogItem {
                journey: scan.journey.to_string(),
                finding: found.key.clone(),
                severity: found.severity,
                message: found.message.clone(),
                evidence: found.evidence.clone(),
                owner: None,
                deadline: None,
                impact: None,
                status: BacklogStatus::Open,
                acceptance: None,
                first_seen_scan: scan.id,
                last_seen_scan: scan.id,
                last_checked_scan: scan.id,
                history: vec![Transition {
                    at: scan.at,
                    from: None,
                    to: BacklogStatus::Open,
                    scan: Some(scan.id),
                    by: None,
                    note: format!("found by scan {}", scan.id),
                }],
            });
        }
    }
    changed
}

/// What a person does to an item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum BacklogAction {
    /// Sets the given fields; the others stay.
    Assign {
        owner: Option<String>,
        deadline: Option<String>,
        impact: Option<String>,
    },
    Fix {
        #[serde(default)]
        note: String,
    },
    AcceptRisk {
        reason: String,
        expires: String,
    },
    Reopen {
        reason: String,
    },
}

/// Applies a person's action to an item; the error says why it was refused.
/// Accepting a risk is a security decision: it needs the `security` or `admin` role; the
/// rest any role.
pub fn act(
    item: &BacklogItem,
    action: BacklogAction,
    actor: &Actor,
    today: NaiveDate,
    at: i64,
) -> Result<BacklogItem> {
    let mut next = item.clone();
    let who = Some(actor.name.as_str());
    match action {
        BacklogAction::Assign {
            owner,
            deadline,
            impact,
        } => {
            if owner.is_none() && deadline.is_none() && impact.is_none() {
                return Err(GovernError::Invalid(
                    "say what to set: owner, deadline or impact".into(),
                ));
            }
            if let Some(owner) = owner {
                next.owner = Some(required("owner", &owner, 200)?);
            }
            if let Some(deadline) = deadline {
                parse_day("deadline", &deadline)?;
                next.deadline = Some(deadline);
            }
            if let Some(impact) = impact {
                next.impact = Some(required("impact", &impact, 2000)?);
            }
        }
        BacklogAction::Fix { note } => {
            if item.status != BacklogStatus::Open {
                return Err(GovernError::Transition(format!(
                    "the item is {}: only an open item can be marked fixed",
                    item.status.name()
                )));
            }
            let note = if note.trim().is_empty() {
                "marked fixed".to_string()
            } else {
                note.trim().to_string()
            };
            next.move_to(BacklogStatus::Fixed, at, None, who, note);
        }
        BacklogAction::AcceptRisk { reason, expires } => {
            if !matches!(actor.role, Role::Security | Role::Admin) {
                return Err(GovernError::Forbidden(format!(
                    "{} holds the {} role: accepting a risk needs the security or admin role",
                    actor.name, actor.role
                )));
            }
            if !matches!(item.status, BacklogStatus::Open | BacklogStatus::Fixed) {
                return Err(GovernError::Transition(format!(
                    "the item is {}: only an open or fixed item can be accepted as a risk",
                    item.status.name()
                )));
            }
            let reason = required("reason", &reason, 2000)?;
            if parse_day("expires", &expires)? <= today {
                return Err(GovernError::Invalid(format!(
                    "expires: {expires} is not after today: an accepted risk must expire in the future"
                )));
            }
            next.move_to(BacklogStatus::AcceptedRisk, at, None, who, reason.clone());
            next.acceptance = Some(Acceptance {
                reason,
                expires,
                by: actor.name.clone(),
            });
        }
        BacklogAction::Reopen { reason } => {
            if item.status == BacklogStatus::Open {
                return Err(GovernError::Transition("the item is already open".into()));
            }
            let reason = required("reason", &reason, 2000)?;
            next.move_to(BacklogStatus::Open, at, None, who, reason);
        }
    }
    Ok(next)
}

/// A backlog query: every given filter must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub journey: Option<String>,
    pub owner: Option<String>,
    /// At least this severe.
    pub severity: Option<Severity>,
    pub status: Option<BacklogStatus>,
    pub overdue: bool,
}

impl Filter {
    pub fn matches(&self, item: &BacklogItem, today: NaiveDate) -> bool {
        self.journey.as_ref().is_none_or(|j| *j == item.journey)
            && self
                .owner
                .as_ref()
                .is_none_or(|o| item.owner.as_ref() == Some(o))
            && self.severity.is_none_or(|s| item.severity >= s)
            && self.status.is_none_or(|s| item.status == s)
            && (!self.overdue || item.is_overdue(today))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(text: &str) -> NaiveDate {
        parse_day("", text).unwrap()
    }

    fn finding(kind: &str, vendor: &str) -> Observed {
        Observed {
            key: FindingKey {
                kind: kind.into(),
                scenario: Some("no-interaction".into()),
                step: Some("landing".into()),
                vendor: vendor.into(),
            },
            severity: Severity::High,
            message: format!("{vendor} {kind}"),
            evidence: Some(format!("https://{vendor}/x")),
        }
    }

    fn full() -> Coverage {
        Coverage {
            steps: [("no-interaction".to_string(), "landing".to_string())].into(),
            complete: true,
        }
    }

    /// Applies a scan and merges the changes into `items` as the store would.
    fn scan(
        items: &mut Vec<BacklogItem>,
        id: i64,
        today: &str,
        findings: &[Observed],
        coverage: &Coverage,
    ) -> usize {
        let changes = apply_scan(
            items,
            &ScanInput {
                id,
                journey: "shop",
                at: id * 1000,
                day: day(today),
                findings,
                coverage,
            },
        );
        let n = changes.len();
        for change in changes {
            match items.iter_mut().find(|i| i.key() == change.key()) {
                Some(slot) => *slot = change,
                None => items.push(change),
            }
        }
        n
    }

    fn status(items: &[BacklogItem], vendor: &str) -> BacklogStatus {
        items
            .iter()
            .find(|i| i.finding.vendor == vendor)
            .unwrap()
            .status
    }

    const SEC: fn() -> Actor = || Actor {
        name: "sam".into(),
        role: Role::Security,
        token: None,
    };

    #[test]
    fn rescans_verify_and_reopen() {
        let mut items = Vec::new();
        let meta = finding("pre_consent", "Meta");
        scan(
            &mut items,
            1,
            "2026-12-01",
            std::slice::from_ref(&meta),
            &full(),
        );
        assert_eq!(status(&items, "Meta"), BacklogStatus::Open);
        // The same scan again changes nothing.
        assert_eq!(
            scan(
                &mut items,
                1,
                "2026-12-01",
                std::slice::from_ref(&meta),
                &full()
            ),
            0
        );
        // A scan that did not run the step leaves it alone.
        assert_eq!(
            scan(&mut items, 2, "2026-12-02", &[], &Coverage::default()),
            0
        );
        assert_eq!(status(&items, "Meta"), BacklogStatus::Open);
        items[0] = act(
            &items[0],
            BacklogAction::Fix {
                note: "removed the pixel".into(),
            },
            &SEC(),
            day("2026-12-02"),
            2500,
        )
        .unwrap();
        assert_eq!(status(&items, "Meta"), BacklogStatus::Fixed);
        scan(&mut items, 3, "2026-12-03", &[], &full());
        assert_eq!(status(&items, "Meta"), BacklogStatus::Verified);
        scan(
            &mut items,
            4,
            "2026-12-04",
            std::slice::from_ref(&meta),
            &full(),
        );
        assert_eq!(status(&items, "Meta"), BacklogStatus::Open);
        let notes: Vec<_> = items[0].history.iter().map(|t| t.note.as_str()).collect();
        assert_eq!(
            notes,
            [
                "found by scan 1",
                "removed the pixel",
                "verified: scan 3 no longer sees it",
                "reopened: scan 4 sees it again"
            ]
        );
        assert_eq!((items[0].first_seen_scan, items[0].last_seen_scan), (1, 4));
    }

    #[test]
    fn accepted_risk_holds_until_it_expires() {
        let mut items = Vec::new();
        let meta = finding("pre_consent", "Meta");
        scan(
            &mut items,
            1,
            "2026-12-01",
            std::slice::from_ref(&meta),
            &full(),
        );
        let accept = BacklogAction::AcceptRisk {
            reason: "legal basis documented".into(),
            expires: "2026-12-10".into(),
        };
        let marketer = Actor {
            name: "ann".into(),
            role: Role::Marketing,
            token: None,
        };
        assert!(matches!(
            act(&items[0], accept.clone(), &marketer, day("2026-12-01"), 1).unwrap_err(),
            GovernError::Forbidden(_)
        ));
        let past = BacklogAction::AcceptRisk {
            reason: "r".into(),
            expires: "2026-12-01".into(),
        };
        assert!(act(&items[0], past, &SEC(), day("2026-12-01"), 1)
            .unwrap_err()
            .to_string()
            .contains("not after today"));
        items[0] = act(&items[0], accept, &SEC(), day("2026-12-01"), 1500).unwrap();
        scan(
            &mut items,
            2,
            "2026-12-10",
            std::slice::from_ref(&meta),
            &full(),
        );
        assert_eq!(status(&items, "Meta"), BacklogStatus::AcceptedRisk);
        assert!(!items[0].is_overdue(day("2026-12-10")));
        assert!(items[0].is_overdue(day("2026-12-11")));
        scan(
            &mut items,
            3,
            "2026-12-11",
            std::slice::from_ref(&meta),
            &full(),
        );
        assert_eq!(status(&items, "Meta"), BacklogStatus::Open);
        assert_eq!(items[0].acceptance, None);
    }

    #[test]
    fn manual_transitions_are_checked() {
        let mut items = Vec::new();
        scan(
            &mut items,
            1,
            "2026-12-01",
            &[finding("pii_leak", "Meta")],
            &full(),
        );
        let item = &items[0];
        let today = day("2026-12-01");
        assert!(matches!(
            act(
                item,
                BacklogAction::Reopen { reason: "x".into() },
                &SEC(),
                today,
                1
            ),
            Err(GovernError::Transition(_))
        ));
        let none = BacklogAction::Assign {
            owner: None,
            deadline: None,
            impact: None,
        };
        assert!(act(item, none, &SEC(), today, 1).is_err());
        let bad_day = BacklogAction::Assign {
            owner: Some("web".into()),
            deadline: Some("soon".into()),
            impact: None,
        };
        assert!(act(item, bad_day, &SEC(), today, 1)
            .unwrap_err()
            .to_string()
            .contains("deadline"));
        let assign = BacklogAction::Assign {
            owner: Some("web team".into()),
            deadline: Some("2026-11-30".into()),
            impact: Some("emails reach Meta".into()),
        };
        let assigned = act(item, assign, &SEC(), today, 1).unwrap();
        assert!(assigned.is_overdue(today));
        let filter = Filter {
            owner: Some("web team".into()),
            severity: Some(Severity::Medium),
            overdue: true,
            ..Filter::default()
        };
        assert!(filter.matches(&assigned, today));
        assert!(!Filter {
            severity: Some(Severity::Critical),
            ..Filter::default()
        }
        .matches(&assigned, today));
        assert!(!Filter {
            journey: Some("blog".into()),
            ..Filter::default()
        }
        .matches(&assigned, today));
        let fixed = act(
            &assigned,
            BacklogAction::Fix {
                note: String::new(),
            },
            &SEC(),
            today,
            2,
        )
        .unwrap();
        assert!(act(
            &fixed,
            BacklogAction::Fix {
                note: String::new()
            },
            &SEC(),
            today,
            3
        )
        .is_err());
        let parsed: BacklogAction =
            serde_json::from_str(r#"{"action":"accept_risk","reason":"r","expires":"2027-01-01"}"#)
                .unwrap();
        assert!(matches!(parsed, BacklogAction::AcceptRisk { .. }));
    }

    proptest! {
        /// Over any sequence of fully covering scans: after each one, an item exists for
        /// every finding ever seen, exactly the findings the scan saw are open, the rest
        /// verified; and applying the same scan again changes nothing.
        #[test]
        fn backlog_follows_the_latest_scan(scans in prop::collection::vec(prop::collection::btree_set(0usize..6, 0..6), 1..12)) {
            let vendors = ["A", "B", "C", "D", "E", "F"];
            let mut items = Vec::new();
            let mut ever = BTreeSet::new();
            for (i, seen) in scans.iter().enumerate() {
                let id = i as i64 + 1;
                let findings: Vec<Observed> = seen.iter().map(|&v| finding("pre_consent", vendors[v])).collect();
                scan(&mut items, id, "2026-12-01", &findings, &full());
                ever.extend(seen.iter().copied());
                prop_assert_eq!(items.len(), ever.len());
                for &v in &ever {
                    let expected = if seen.contains(&v) { BacklogStatus::Open } else { BacklogStatus::Verified };
                    prop_assert_eq!(status(&items, vendors[v]), expected);
                }
                prop_assert_eq!(scan(&mut items, id, "2026-12-01", &findings, &full()), 0);
                for item in &items {
                    let chained = item.history.windows(2).all(|w| w[0].to == w[1].from.unwrap());
                    prop_assert!(chained);
                    prop_assert_eq!(item.history.last().unwrap().to, item.status);
                }
            }
        }
    }
}
