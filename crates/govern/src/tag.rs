//! The tag inventory and its approval workflow.
//!
//! A tag is one vendor's tag in one environment. Its status moves
//! `proposed → approved | rejected → retired`; proposing again (a revision: changed
//! purpose, owner, data, …) sends any tag back to `proposed`, so a changed tag is always
//! approved again. The rules:
//!
//! - proposing needs the `marketing` or `admin` role;
//! - approving and rejecting need the `security` role — not `admin`: an approval is the
//!   security team's decision, and no single token can both propose and approve;
//! - whoever proposed a revision cannot approve or reject it (self-approval is refused);
//! - retiring needs `marketing`, `security` or `admin`, and only an approved or rejected
//!   tag can be retired (a proposal is rejected instead);
//! - rejecting and retiring need a reason.
//!
//! Every accepted action yields a [`ChangeEntry`] (who, when, what, why, the status before
//! and after, the tag as it then stands), which the store appends to the change log.

use crate::{required, Actor, GovernError, Result, Role};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Essential,
    Optional,
    Questionable,
}

impl Classification {
    /// Its serde name.
    pub fn name(self) -> &'static str {
        match self {
            Classification::Essential => "essential",
            Classification::Optional => "optional",
            Classification::Questionable => "questionable",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    #[default]
    Production,
    Staging,
}

impl Environment {
    pub fn name(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagStatus {
    Proposed,
    Approved,
    Rejected,
    Retired,
}

impl TagStatus {
    pub fn name(self) -> &'static str {
        match self {
            TagStatus::Proposed => "proposed",
            TagStatus::Approved => "approved",
            TagStatus::Rejected => "rejected",
            TagStatus::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<TagStatus> {
        [
            TagStatus::Proposed,
            TagStatus::Approved,
            TagStatus::Rejected,
            TagStatus::Retired,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// A journey step a tag fires on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRef {
    pub journey: String,
    pub step: String,
}

/// What a proposal says about a tag (everything but its workflow state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagSpec {
    /// The vendor, as the scanner's catalog names it.
    pub vendor: String,
    pub purpose: String,
    pub owner: String,
    #[serde(default)]
    pub steps: Vec<StepRef>,
    /// What it collects: property names or PII classes (`email`, `ip`, `page_url`, …).
    #[serde(default)]
    pub data_collected: Vec<String>,
    /// The consent purpose it needs (`analytics`, `advertising`, …); none for essential tags.
    #[serde(default)]
    pub consent_purpose: Option<String>,
    pub classification: Classification,
    #[serde(default)]
    pub environment: Environment,
    /// When it is next reviewed, `YYYY-MM-DD`.
    #[serde(default)]
    pub review_date: Option<String>,
}

impl TagSpec {
    /// The spec trimmed and checked; the error names the field to fix.
    pub fn validated(mut self) -> Result<TagSpec> {
        self.vendor = required("vendor", &self.vendor, 200)?;
        self.purpose = required("purpose", &self.purpose, 1000)?;
        self.owner = required("owner", &self.owner, 200)?;
        for (i, s) in self.steps.iter_mut().enumerate() {
            s.journey = required(&format!("steps[{i}].journey"), &s.journey, 200)?;
            s.step = required(&format!("steps[{i}].step"), &s.step, 200)?;
        }
        for (i, d) in self.data_collected.iter_mut().enumerate() {
            *d = required(&format!("data_collected[{i}]"), d, 200)?;
        }
        if let Some(purpose) = &self.consent_purpose {
            self.consent_purpose = Some(required("consent_purpose", purpose, 100)?);
        }
        if self.classification != Classification::Essential && self.consent_purpose.is_none() {
            return Err(GovernError::Invalid(
                "consent_purpose: an optional or questionable tag needs the consent purpose it waits for"
                    .into(),
            ));
        }
        if let Some(day) = &self.review_date {
            crate::parse_day("review_date", day)?;
        }
        Ok(self)
    }

    /// The inventory's key: one tag per vendor (case-insensitive) and environment.
    pub fn key(&self) -> String {
        key(&self.vendor, self.environment)
    }
}

pub fn key(vendor: &str, environment: Environment) -> String {
    format!("{}|{}", vendor.trim().to_lowercase(), environment.name())
}

/// A tag in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(flatten)]
    pub spec: TagSpec,
    pub status: TagStatus,
    /// 1 for the first proposal, one more with each revision.
    pub revision: u32,
    /// Who proposed the current revision.
    pub proposed_by: String,
    /// Who approved, rejected or retired it last.
    pub decided_by: Option<String>,
}

/// What an actor does to a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagAction {
    Propose(TagSpec),
    Approve,
    Reject,
    Retire,
}

impl TagAction {
    pub fn name(&self) -> &'static str {
        match self {
            TagAction::Propose(_) => "propose",
            TagAction::Approve => "approve",
            TagAction::Reject => "reject",
            TagAction::Retire => "retire",
        }
    }
}

/// One entry of the change log: who, when, what, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    pub at: i64,
    pub actor: String,
    pub role: Role,
    pub action: String,
    pub reason: String,
    pub from: Option<TagStatus>,
    pub to: TagStatus,
    pub revision: u32,
    /// The tag as it stands after the change.
    pub tag: Tag,
}

fn forbid(actor: &Actor, what: &str, roles: &str) -> GovernError {
    GovernError::Forbidden(format!(
        "{} holds the {} role: {what} needs {roles}",
        actor.name, actor.role
    ))
}

/// Applies an action to a tag (`None` when the inventory has none under the spec's key);
/// returns the tag's new state and its change-log entry, or why it was refused.
pub fn apply(
    current: Option<&Tag>,
    action: TagAction,
    actor: &Actor,
    reason: &str,
    at: i64,
) -> Result<(Tag, ChangeEntry)> {
    let reason = reason.trim();
    if reason.chars().count() > 2000 {
        return Err(GovernError::Invalid(
            "reason: at most 2000 characters".into(),
        ));
    }
    let name = action.name();
    let next = match (action, current) {
        (TagAction::Propose(spec), current) => {
            if !matches!(actor.role, Role::Marketing | Role::Admin) {
                return Err(forbid(
                    actor,
                    "proposing a tag",
                    "the marketing or admin role",
                ));
            }
            let spec = spec.validated()?;
            if let Some(tag) = current {
                if tag.spec.key() != spec.key() {
                    return Err(GovernError::Invalid(
                        "a revision keeps the tag's vendor and environment".into(),
                    ));
                }
            }
            Tag {
                spec,
                status: TagStatus::Proposed,
                revision: current.map_or(1, |t| t.revision + 1),
                proposed_by: actor.name.clone(),
                decided_by: None,
            }
        }
        (_, None) => {
            return Err(GovernError::Invalid(format!(
                "there is no such tag to {name}: propose it first"
            )))
        }
        (action @ (TagAction::Approve | TagAction::Reject), Some(tag)) => {
            if actor.role != Role::Security {
                return Err(forbid(
                    actor,
                    &format!("to {name} a tag"),
                    "the security role",
                ));
            }
            if tag.status != TagStatus::Proposed {
                return Err(GovernError::Transition(format!(
                    "the tag is {}: only a proposed tag can be approved or rejected",
                    tag.status.name()
                )));
            }
            if tag.proposed_by == actor.name {
                return Err(GovernError::Forbidden(format!(
                    "{} proposed this revision and so cannot {name} it: another security reviewer must",
                    actor.name
                )));
            }
            if action == TagAction::Reject && reason.is_empty() {
                return Err(GovernError::Invalid(
                    "say why it is rejected: a reason is required".into(),
                ));
            }
            Tag {
                status: if action == TagAction::Approve {
                    TagStatus::Approved
                } else {
                    TagStatus::Rejected
                },
                decided_by: Some(actor.name.clone()),
                ..tag.clone()
            }
        }
        (TagAction::Retire, Some(tag)) => {
            if !matches!(actor.role, Role::Marketing | Role::Security | Role::Admin) {
                return Err(forbid(
                    actor,
                    "retiring a tag",
                    "the marketing, security or admin role",
                ));
            }
            if !matches!(tag.status, TagStatus::Approved | TagStatus::Rejected) {
                return Err(GovernError::Transition(format!(
                    "the tag is {}: only an approved or rejected tag can be retired{}",
                    tag.status.name(),
                    if tag.status == TagStatus::Proposed {
                        " (reject the proposal instead)"
                    } else {
                        ""
                    }
                )));
            }
            if reason.is_empty() {
                return Err(GovernError::Invalid(
                    "say why it is retired: a reason is required".into(),
                ));
            }
            Tag {
                status: TagStatus::Retired,
                decided_by: Some(actor.name.clone()),
                ..tag.clone()
            }
        }
    };
    let entry = ChangeEntry {
        at,
        actor: actor.name.clone(),
        role: actor.role,
        action: name.to_string(),
        reason: reason.to_string(),
        from: current.map(|t| t.status),
        to: next.status,
        revision: next.revision,
        tag: next.clone(),
    };
    Ok((next, entry))
}

/// Vendors a scan saw that the inventory has no tag for (any status, in `environment`),
/// in the order given, each once.
pub fn missing_vendors<'a>(
    inventory: &[Tag],
    seen: impl IntoIterator<Item = &'a str>,
    environment: Environment,
) -> Vec<String> {
    let known: std::collections::HashSet<String> = inventory.iter().map(|t| t.spec.key()).collect();
    let mut out: Vec<String> = Vec::new();
    for vendor in seen {
        let k = key(vendor, environment);
        if !known.contains(&k) && !out.iter().any(|v| key(v, environment) == k) {
            out.push(vendor.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn actor(name: &str, role: Role) -> Actor {
        Actor {
            name: name.into(),
            role,
            token: None,
        }
    }

    fn spec() -> TagSpec {
        TagSpec {
            vendor: "Meta".into(),
            purpose: "conversion measurement".into(),
            owner: "growth team".into(),
            steps: vec![StepRef {
                journey: "shop".into(),
                step: "checkout".into(),
            }],
            data_collected: vec!["email_sha256".into()],
            consent_purpose: Some("advertising".into()),
            classification: Classification::Optional,
            environment: Environment::Production,
            review_date: Some("2027-06-01".into()),
        }
    }

    #[test]
    fn the_happy_path_and_its_log() {
        let ann = actor("ann", Role::Marketing);
        let sec = actor("sam", Role::Security);
        let (proposed, e1) = apply(None, TagAction::Propose(spec()), &ann, "", 1).unwrap();
        assert_eq!(
            (proposed.status, proposed.revision),
            (TagStatus::Proposed, 1)
        );
        assert_eq!(
            (e1.from, e1.to, e1.action.as_str()),
            (None, TagStatus::Proposed, "propose")
        );
        let (approved, e2) =
            apply(Some(&proposed), TagAction::Approve, &sec, "DPA signed", 2).unwrap();
        assert_eq!(approved.status, TagStatus::Approved);
        assert_eq!(approved.decided_by.as_deref(), Some("sam"));
        assert_eq!(
            (e2.from, e2.reason.as_str(), e2.role),
            (Some(TagStatus::Proposed), "DPA signed", Role::Security)
        );
        let (retired, _) =
            apply(Some(&approved), TagAction::Retire, &ann, "campaign over", 3).unwrap();
        assert_eq!(retired.status, TagStatus::Retired);
        // A revision of a retired tag goes through approval again.
        let (again, e4) = apply(
            Some(&retired),
            TagAction::Propose(spec()),
            &ann,
            "back for Q3",
            4,
        )
        .unwrap();
        assert_eq!(
            (again.status, again.revision, e4.from),
            (TagStatus::Proposed, 2, Some(TagStatus::Retired))
        );
    }

    #[test]
    fn roles_and_self_approval() {
        let (proposed, _) = apply(
            None,
            TagAction::Propose(spec()),
            &actor("ann", Role::Marketing),
            "",
            1,
        )
        .unwrap();
        for who in [actor("bob", Role::Marketing), actor("root", Role::Admin)] {
            let err = apply(Some(&proposed), TagAction::Approve, &who, "", 2).unwrap_err();
            assert!(matches!(err, GovernError::Forbidden(_)), "{err}");
            assert!(err.to_string().contains("security role"), "{err}");
        }
        let err = apply(
            None,
            TagAction::Propose(spec()),
            &actor("sam", Role::Security),
            "",
            1,
        )
        .unwrap_err();
        assert!(matches!(err, GovernError::Forbidden(_)));
        // An admin proposes; the same name holding a security token still cannot approve.
        let (by_admin, _) = apply(
            None,
            TagAction::Propose(spec()),
            &actor("token:1", Role::Admin),
            "",
            1,
        )
        .unwrap();
        let err = apply(
            Some(&by_admin),
            TagAction::Approve,
            &actor("token:1", Role::Security),
            "",
            2,
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot approve"), "{err}");
        let ok = apply(
            Some(&by_admin),
            TagAction::Approve,
            &actor("token:2", Role::Security),
            "",
            2,
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn invalid_transitions_and_input() {
        let sec = actor("sam", Role::Security);
        let ann = actor("ann", Role::Marketing);
        let (proposed, _) = apply(None, TagAction::Propose(spec()), &ann, "", 1).unwrap();
        let err = apply(Some(&proposed), TagAction::Retire, &ann, "why not", 2).unwrap_err();
        assert!(
            err.to_string().contains("reject the proposal instead"),
            "{err}"
        );
        let err = apply(Some(&proposed), TagAction::Reject, &sec, " ", 2).unwrap_err();
        assert!(err.to_string().contains("reason"), "{err}");
        let (rejected, _) = apply(Some(&proposed), TagAction::Reject, &sec, "no DPA", 2).unwrap();
        let err = apply(Some(&rejected), TagAction::Approve, &sec, "", 3).unwrap_err();
        assert!(matches!(err, GovernError::Transition(_)), "{err}");
        assert!(apply(None, TagAction::Approve, &sec, "", 1).is_err());
        let mut bad = spec();
        bad.consent_purpose = None;
        let err = apply(None, TagAction::Propose(bad), &ann, "", 1).unwrap_err();
        assert!(err.to_string().contains("consent_purpose"), "{err}");
        let mut bad = spec();
        bad.review_date = Some("next year".into());
        assert!(apply(None, TagAction::Propose(bad), &ann, "", 1)
            .unwrap_err()
            .to_string()
            .contains("review_date"));
        let mut other = spec();
        other.environment = Environment::Staging;
        assert!(apply(Some(&proposed), TagAction::Propose(other), &ann, "", 2).is_err());
    }

    #[test]
    fn missing_vendors_are_those_without_a_tag() {
        let (tag, _) = apply(
            None,
            TagAction::Propose(spec()),
            &actor("a", Role::Admin),
            "",
            1,
        )
        .unwrap();
        let missing = missing_vendors(
            &[tag],
            ["meta", "Hotjar", "TikTok", "hotjar"],
            Environment::Production,
        );
        assert_eq!(missing, ["Hotjar", "TikTok"]);
        assert_eq!(
            missing_vendors(&[], ["Meta"], Environment::Staging),
            ["Meta"]
        );
    }

    fn any_actor() -> impl Strategy<Value = Actor> {
        (
            prop::sample::select(vec!["ann", "bob", "sam", "tia"]),
            prop::sample::select(Role::ALL.to_vec()),
        )
            .prop_map(|(name, role)| actor(name, role))
    }

    fn any_action() -> impl Strategy<Value = TagAction> {
        prop_oneof![
            Just(TagAction::Propose(spec())),
            Just(TagAction::Approve),
            Just(TagAction::Reject),
            Just(TagAction::Retire),
        ]
    }

    proptest! {
        /// Over any sequence of actions by anyone: the log chains (each entry starts where
        /// the last ended), a refused action changes nothing, every approval and rejection
        /// is by a security actor other than the revision's proposer, and a retired tag
        /// was approved or rejected just before.
        #[test]
        fn workflow_invariants(steps in prop::collection::vec((any_action(), any_actor(), prop::bool::ANY), 1..40)) {
            let mut tag: Option<Tag> = None;
            let mut log: Vec<ChangeEntry> = Vec::new();
            for (i, (action, who, with_reason)) in steps.into_iter().enumerate() {
                let reason = if with_reason { "because" } else { "" };
                let before = tag.clone();
                match apply(tag.as_ref(), action.clone(), &who, reason, i as i64) {
                    Ok((next, entry)) => {
                        prop_assert_eq!(entry.from, before.as_ref().map(|t| t.status));
                        prop_assert_eq!(entry.to, next.status);
                        prop_assert_eq!(&entry.tag, &next);
                        prop_assert_eq!(&entry.actor, &who.name);
                        if let Some(last) = log.last() {
                            prop_assert_eq!(Some(last.to), entry.from);
                        }
                        match action {
                            TagAction::Approve | TagAction::Reject => {
                                prop_assert_eq!(who.role, Role::Security);
                                prop_assert_ne!(&before.as_ref().unwrap().proposed_by, &who.name);
                                prop_assert_eq!(before.unwrap().status, TagStatus::Proposed);
                            }
                            TagAction::Retire => {
                                prop_assert!(matches!(before.unwrap().status, TagStatus::Approved | TagStatus::Rejected));
                                prop_assert!(!entry.reason.is_empty());
                            }
                            TagAction::Propose(_) => {
                                prop_assert!(matches!(who.role, Role::Marketing | Role::Admin));
                            }
                        }
                        log.push(entry);
                        tag = Some(next);
                    }
                    Err(_) => prop_assert_eq!(&tag, &before),
                }
            }
            if let Some(tag) = &tag {
                if tag.status == TagStatus::Approved {
                    prop_assert_ne!(tag.decided_by.as_deref(), Some(tag.proposed_by.as_str()));
                }
            }
        }
    }
}
