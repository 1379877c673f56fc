//! Server-side data flows (destinations) and their security approval, governed like tags.
//!
//! A destination's configuration is a [`FlowConfig`]; a [`Flow`] is its governance record:
//! the configuration in force (`approved`, `None` until a first approval) and the latest
//! revision (`config`) with its [`FlowStatus`]. Delivery and audience sync only ever use
//! the approved configuration.
//!
//! The rules:
//!
//! - proposing (creating a destination, or changing one) needs the `marketing` or `admin`
//!   role;
//! - a change needs review when it creates the destination or changes where its data goes
//!   or what goes there: its type, URL (endpoint), vendor settings (which account),
//!   purposes, event filter (types, names) or transform ([`reviewed_changes`]). Pausing,
//!   resuming, the batch size, a rotated credential and deleting do not;
//! - whether a change that needs review waits for approval is the [`Mode`] of the
//!   server's environment ([`ApprovalPolicy`]): `off` applies every change at once (as
//!   before approval existed); `required` (the default) holds the `marketing` role's
//!   changes for approval, while `admin` (and the operator at the command line) applies
//!   them at once, recorded as such; `strict` holds everyone's, admin's too;
//! - approving and rejecting need the `security` role (not `admin`), and an actor other
//!   than the revision's proposer — one person's marketing and security tokens count as
//!   one person, as for tags;
//! - a rejection needs a reason; a rejected change leaves the approved configuration in
//!   force; proposing again while a revision waits replaces it (a new revision).
//!
//! Every accepted action yields a [`FlowEntry`] for the destination change log.

use crate::tag::Environment;
use crate::{Actor, GovernError, Result, Role};
use serde::{Deserialize, Serialize};

/// What a destination sends where: everything of its configuration the approval covers,
/// and the batch size, which it does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowConfig {
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub purposes: Vec<String>,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub event_names: Vec<String>,
    #[serde(default)]
    pub transform: serde_json::Value,
    #[serde(default)]
    pub settings: serde_json::Value,
    pub batch_size: u32,
}

/// The fields of a configuration whose change needs review, by name.
pub const REVIEWED: [&str; 7] = [
    "type",
    "url",
    "settings",
    "purposes",
    "event_types",
    "event_names",
    "transform",
];

/// Which reviewed fields differ between `from` and `to` (all of them for a new
/// destination, `from` `None`), in [`REVIEWED`] order.
pub fn reviewed_changes(from: Option<&FlowConfig>, to: &FlowConfig) -> Vec<String> {
    let Some(from) = from else {
        return REVIEWED.iter().map(|f| f.to_string()).collect();
    };
    let differs = [
        from.kind != to.kind,
        from.url != to.url,
        from.settings != to.settings,
        from.purposes != to.purposes,
        from.event_types != to.event_types,
        from.event_names != to.event_names,
        from.transform != to.transform,
    ];
    REVIEWED
        .iter()
        .zip(differs)
        .filter(|(_, d)| *d)
        .map(|(f, _)| f.to_string())
        .collect()
}

/// Whether changes that need review wait for a security approval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every change applies at once.
    Off,
    /// The marketing role's changes wait for approval; admin's apply at once.
    #[default]
    Required,
    /// Everyone's changes wait for approval, admin's and the command line's too.
    Strict,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Required => "required",
            Mode::Strict => "strict",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        [Mode::Off, Mode::Required, Mode::Strict]
            .into_iter()
            .find(|m| m.name() == text)
    }

    /// Whether `role`'s reviewed changes wait for approval under this mode.
    pub fn holds(self, role: Role) -> bool {
        match self {
            Mode::Off => false,
            Mode::Required => role != Role::Admin,
            Mode::Strict => true,
        }
    }
}

/// The approval policy of destinations: the mode of each environment and the environment
/// this server is. The config file's `[approval]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalPolicy {
    pub environment: Environment,
    pub production: Mode,
    pub staging: Mode,
}

impl ApprovalPolicy {
    /// The same mode in every environment.
    pub fn everywhere(mode: Mode) -> ApprovalPolicy {
        ApprovalPolicy {
            environment: Environment::Production,
            production: mode,
            staging: mode,
        }
    }

    /// The mode in force here.
    pub fn mode(&self) -> Mode {
        match self.environment {
            Environment::Production => self.production,
            Environment::Staging => self.staging,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    /// The latest revision waits for a security approval.
    Pending,
    /// The latest revision is in force.
    Approved,
    /// The latest revision was refused; the approved one (if any) stays in force.
    Rejected,
}

impl FlowStatus {
    pub fn name(self) -> &'static str {
        match self {
            FlowStatus::Pending => "pending",
            FlowStatus::Approved => "approved",
            FlowStatus::Rejected => "rejected",
        }
    }
}

/// A destination's governance record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub destination: String,
    pub status: FlowStatus,
    /// 1 for the first proposal, one more with each.
    pub revision: u32,
    /// The latest revision (pending, approved or rejected, as `status` says).
    pub config: FlowConfig,
    /// The configuration in force: what delivery and audience sync use; `None` until one
    /// is approved, and the destination receives nothing until then.
    pub approved: Option<FlowConfig>,
    /// The reviewed fields the latest revision changes from the approved configuration.
    pub changes: Vec<String>,
    pub proposed_by: String,
    /// Who approved or rejected the latest revision, or applied it without review.
    pub decided_by: Option<String>,
}

impl Flow {
    /// The latest revision waits for approval.
    pub fn is_pending(&self) -> bool {
        self.status == FlowStatus::Pending
    }

    /// Where it stands, in words: see [`standing`].
    pub fn standing(&self) -> &'static str {
        standing(self.approved.is_some(), self.is_pending())
    }
}

/// Where a destination's approval stands, in words (the command line, lineage and the
/// report show it): `approved`, `approved; a change awaits approval`, `pending approval`
/// (receives nothing) or `rejected` (never approved: receives nothing). `in_force`: a
/// configuration is approved; `pending`: a revision waits for review.
pub fn standing(in_force: bool, pending: bool) -> &'static str {
    match (in_force, pending) {
        (true, false) => "approved",
        (true, true) => "approved; a change awaits approval",
        (false, true) => "pending approval",
        (false, false) => "rejected",
    }
}

/// What an actor does to a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowAction {
    /// A new destination or a changed configuration.
    Propose(Box<FlowConfig>),
    Approve,
    Reject,
}

impl FlowAction {
    pub fn name(&self) -> &'static str {
        match self {
            FlowAction::Propose(_) => "propose",
            FlowAction::Approve => "approve",
            FlowAction::Reject => "reject",
        }
    }
}

/// One entry of the destination change log: who, when, what, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEntry {
    pub at: i64,
    pub actor: String,
    pub role: Role,
    /// `propose` (waits for approval), `apply` (in force at once: nothing reviewed changed,
    /// the policy is off, or an admin under `required`), `approve` or `reject`.
    pub action: String,
    pub reason: String,
    pub from: Option<FlowStatus>,
    pub to: FlowStatus,
    pub revision: u32,
    pub changes: Vec<String>,
    /// The record as it stands after the change.
    pub flow: Flow,
}

/// What an accepted action decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub flow: Flow,
    pub entry: FlowEntry,
    /// The configuration to put in force now (the destination's stored configuration
    /// becomes it), or `None` when what is in force does not change.
    pub apply: Option<FlowConfig>,
}

fn forbid(actor: &Actor, what: &str, roles: &str) -> GovernError {
    GovernError::Forbidden(format!(
        "{} holds the {} role: {what} needs {roles}",
        actor.name, actor.role
    ))
}

/// Applies an action to the flow of the destination named `destination` (`current`
/// `None` for a new one) under `mode`; returns the decision, or why it was refused.
pub fn apply(
    current: Option<&Flow>,
    destination: &str,
    action: FlowAction,
    actor: &Actor,
    mode: Mode,
    reason: &str,
    at: i64,
) -> Result<Decision> {
    let reason = reason.trim();
    if reason.chars().count() > 2000 {
        return Err(GovernError::Invalid(
            "reason: at most 2000 characters".into(),
        ));
    }
    let name = action.name();
    let (next, logged_as, apply) = match (action, current) {
        (FlowAction::Propose(config), current) => {
            let config = *config;
            if !matches!(actor.role, Role::Marketing | Role::Admin) {
                return Err(forbid(
                    actor,
                    "proposing a destination or a change to one",
                    "the marketing or admin role",
                ));
            }
            let in_force = current.and_then(|f| f.approved.as_ref());
            let changes = reviewed_changes(in_force, &config);
            let at_once = changes.is_empty() || !mode.holds(actor.role);
            let flow = Flow {
                destination: destination.to_string(),
                status: if at_once {
                    FlowStatus::Approved
                } else {
                    FlowStatus::Pending
                },
                revision: current.map_or(1, |f| f.revision + 1),
                approved: if at_once {
                    Some(config.clone())
                } else {
                    in_force.cloned()
                },
                config: config.clone(),
                changes,
                proposed_by: actor.name.clone(),
                decided_by: at_once.then(|| actor.name.clone()),
            };
            if at_once {
                (flow, "apply", Some(config))
            } else {
                (flow, "propose", None)
            }
        }
        (_, None) => {
            return Err(GovernError::Invalid(format!(
                "there is no proposal to {name}: the destination has no governance record"
            )))
        }
        (action @ (FlowAction::Approve | FlowAction::Reject), Some(flow)) => {
            if actor.role != Role::Security {
                return Err(forbid(
                    actor,
                    &format!("to {name} a destination"),
                    "the security role",
                ));
            }
            if flow.status != FlowStatus::Pending {
                return Err(GovernError::Transition(format!(
                    "destination {:?} has no pending change (revision {} is {}): only a pending one can be approved or rejected",
                    flow.destination,
                    flow.revision,
                    flow.status.name()
                )));
            }
            if flow.proposed_by == actor.name {
                return Err(GovernError::Forbidden(format!(
                    "{} proposed this revision and so cannot {name} it: another security reviewer must",
                    actor.name
                )));
            }
            if action == FlowAction::Reject && reason.is_empty() {
                return Err(GovernError::Invalid(
                    "say why it is rejected: a reason is required".into(),
                ));
            }
            let approve = action == FlowAction::Approve;
            let next = Flow {
                status: if approve {
                    FlowStatus::Approved
                } else {
                    FlowStatus::Rejected
                },
                approved: if approve {
                    Some(flow.config.clone())
                } else {
                    flow.approved.clone()
                },
                decided_by: Some(actor.name.clone()),
                ..flow.clone()
            };
            let apply = approve.then(|| flow.config.clone());
            (next, name, apply)
        }
    };
    let entry = FlowEntry {
        at,
        actor: actor.name.clone(),
        role: actor.role,
        action: logged_as.to_string(),
        reason: reason.to_string(),
        from: current.map(|f| f.status),
        to: next.status,
        revision: next.revision,
        changes: next.changes.clone(),
        flow: next.clone(),
    };
    Ok(Decision {
        flow: next,
        entry,
        apply,
    })
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

    fn config(url: &str) -> FlowConfig {
        FlowConfig {
            kind: "webhook".into(),
            url: url.into(),
            purposes: vec!["analytics".into()],
            event_types: vec![],
            event_names: vec!["Order Completed".into()],
            transform: serde_json::json!({}),
            settings: serde_json::json!({}),
            batch_size: 1,
        }
    }

    const D: &str = "crm";

    #[test]
    fn a_marketing_proposal_waits_for_another_security_person() {
        let ann = actor("ann", Role::Marketing);
        let d = apply(
            None,
            D,
            FlowAction::Propose(Box::new(config("http://a/"))),
            &ann,
            Mode::Required,
            "",
            1,
        )
        .unwrap();
        assert_eq!(d.flow.status, FlowStatus::Pending);
        assert_eq!(d.flow.approved, None);
        assert_eq!(d.apply, None);
        assert_eq!(d.entry.action, "propose");
        assert_eq!(d.flow.changes.len(), REVIEWED.len());
        // The same person holding a security token cannot approve it.
        let err = apply(
            Some(&d.flow),
            D,
            FlowAction::Approve,
            &actor("ann", Role::Security),
            Mode::Required,
            "",
            2,
        )
        .unwrap_err();
        assert!(matches!(err, GovernError::Forbidden(_)), "{err}");
        assert!(err.to_string().contains("cannot approve"), "{err}");
        for who in [actor("root", Role::Admin), actor("bob", Role::Marketing)] {
            let err = apply(
                Some(&d.flow),
                D,
                FlowAction::Approve,
                &who,
                Mode::Required,
                "",
                2,
            )
            .unwrap_err();
            assert!(err.to_string().contains("security role"), "{err}");
        }
        let ok = apply(
            Some(&d.flow),
            D,
            FlowAction::Approve,
            &actor("sam", Role::Security),
            Mode::Required,
            "DPA signed",
            3,
        )
        .unwrap();
        assert_eq!(ok.flow.status, FlowStatus::Approved);
        assert_eq!(ok.apply, Some(config("http://a/")));
        assert_eq!(ok.flow.decided_by.as_deref(), Some("sam"));
        assert_eq!(
            (ok.entry.from, ok.entry.to),
            (Some(FlowStatus::Pending), FlowStatus::Approved)
        );
    }

    #[test]
    fn a_change_keeps_the_approved_configuration_until_approved() {
        let ann = actor("ann", Role::Marketing);
        let sam = actor("sam", Role::Security);
        let first = apply(
            None,
            D,
            FlowAction::Propose(Box::new(config("http://a/"))),
            &ann,
            Mode::Required,
            "",
            1,
        )
        .unwrap();
        let approved = apply(
            Some(&first.flow),
            D,
            FlowAction::Approve,
            &sam,
            Mode::Required,
            "",
            2,
        )
        .unwrap()
        .flow;
        let change = apply(
            Some(&approved),
            D,
            FlowAction::Propose(Box::new(config("http://b/"))),
            &ann,
            Mode::Required,
            "",
            3,
        )
        .unwrap();
        assert_eq!(change.flow.status, FlowStatus::Pending);
        assert_eq!(change.flow.approved, Some(config("http://a/")));
        assert_eq!(change.flow.changes, ["url"]);
        assert_eq!(change.apply, None);
        // Rejected: the old one stays in force.
        let err = apply(
            Some(&change.flow),
            D,
            FlowAction::Reject,
            &sam,
            Mode::Required,
            "",
            4,
        )
        .unwrap_err();
        assert!(err.to_string().contains("reason"), "{err}");
        let rejected = apply(
            Some(&change.flow),
            D,
            FlowAction::Reject,
            &sam,
            Mode::Required,
            "unknown host",
            4,
        )
        .unwrap();
        assert_eq!(rejected.flow.status, FlowStatus::Rejected);
        assert_eq!(rejected.flow.approved, Some(config("http://a/")));
        assert_eq!(rejected.apply, None);
        // Not reviewed: the batch size alone applies at once.
        let mut bigger = config("http://a/");
        bigger.batch_size = 50;
        let batch = apply(
            Some(&rejected.flow),
            D,
            FlowAction::Propose(Box::new(bigger.clone())),
            &ann,
            Mode::Strict,
            "",
            5,
        )
        .unwrap();
        assert_eq!(batch.flow.status, FlowStatus::Approved);
        assert_eq!(batch.apply, Some(bigger));
        assert_eq!(batch.entry.action, "apply");
        // Nothing pending: nothing to approve.
        let err = apply(
            Some(&batch.flow),
            D,
            FlowAction::Approve,
            &sam,
            Mode::Required,
            "",
            6,
        )
        .unwrap_err();
        assert!(matches!(err, GovernError::Transition(_)), "{err}");
    }

    #[test]
    fn the_policy_decides_whose_changes_wait() {
        let cases = [
            (Mode::Off, Role::Marketing, false),
            (Mode::Off, Role::Admin, false),
            (Mode::Required, Role::Marketing, true),
            (Mode::Required, Role::Admin, false),
            (Mode::Strict, Role::Marketing, true),
            (Mode::Strict, Role::Admin, true),
        ];
        for (mode, role, waits) in cases {
            let d = apply(
                None,
                D,
                FlowAction::Propose(Box::new(config("http://a/"))),
                &actor("x", role),
                mode,
                "",
                1,
            )
            .unwrap();
            assert_eq!(d.flow.is_pending(), waits, "{mode:?} {role:?}");
            assert_eq!(d.apply.is_some(), !waits);
        }
        for role in [Role::Security, Role::Analyst, Role::Privacy, Role::Metrics] {
            let err = apply(
                None,
                D,
                FlowAction::Propose(Box::new(config("http://a/"))),
                &actor("x", role),
                Mode::Off,
                "",
                1,
            )
            .unwrap_err();
            assert!(matches!(err, GovernError::Forbidden(_)));
        }
        let mut policy = ApprovalPolicy {
            environment: Environment::Staging,
            production: Mode::Strict,
            staging: Mode::Off,
        };
        assert_eq!(policy.mode(), Mode::Off);
        policy.environment = Environment::Production;
        assert_eq!(policy.mode(), Mode::Strict);
        assert_eq!(ApprovalPolicy::default().mode(), Mode::Required);
        assert_eq!(Mode::parse("strict"), Some(Mode::Strict));
        assert_eq!(Mode::parse("maybe"), None);
    }

    #[test]
    fn reviewed_changes_name_each_field() {
        let a = config("http://a/");
        assert!(reviewed_changes(Some(&a), &a).is_empty());
        let mut b = a.clone();
        b.purposes.push("advertising".into());
        b.transform = serde_json::json!({"deny": ["traits.email"]});
        b.event_types = vec!["track".into()];
        b.batch_size = 9;
        assert_eq!(
            reviewed_changes(Some(&a), &b),
            ["purposes", "event_types", "transform"]
        );
    }

    fn any_actor() -> impl Strategy<Value = Actor> {
        (
            prop::sample::select(vec!["ann", "bob", "sam", "tia"]),
            prop::sample::select(Role::ALL.to_vec()),
        )
            .prop_map(|(name, role)| actor(name, role))
    }

    fn any_action() -> impl Strategy<Value = FlowAction> {
        prop_oneof![
            prop::sample::select(vec!["http://a/", "http://b/", "http://c/"])
                .prop_map(|u| FlowAction::Propose(Box::new(config(u)))),
            Just(FlowAction::Approve),
            Just(FlowAction::Reject),
        ]
    }

    fn any_mode() -> impl Strategy<Value = Mode> {
        prop::sample::select(vec![Mode::Off, Mode::Required, Mode::Strict])
    }

    proptest! {
        /// Over any sequence of actions by anyone under any modes: the configuration in
        /// force only ever changes to one that a security actor other than its proposer
        /// approved, or that its proposer's role and the mode let apply at once; a refused
        /// action changes nothing; the log chains.
        #[test]
        fn only_approved_configurations_come_into_force(
            steps in prop::collection::vec((any_action(), any_actor(), any_mode(), prop::bool::ANY), 1..40)
        ) {
            let mut flow: Option<Flow> = None;
            let mut last: Option<FlowEntry> = None;
            for (i, (action, who, mode, with_reason)) in steps.into_iter().enumerate() {
                let reason = if with_reason { "because" } else { "" };
                let before = flow.clone();
                match apply(flow.as_ref(), D, action.clone(), &who, mode, reason, i as i64) {
                    Ok(d) => {
                        prop_assert_eq!(d.entry.from, before.as_ref().map(|f| f.status));
                        prop_assert_eq!(&d.entry.flow, &d.flow);
                        if let Some(last) = &last {
                            prop_assert_eq!(Some(last.to), d.entry.from);
                        }
                        let in_force_before = before.as_ref().and_then(|f| f.approved.clone());
                        if d.flow.approved != in_force_before {
                            prop_assert_eq!(d.apply.as_ref(), d.flow.approved.as_ref());
                            match &action {
                                FlowAction::Approve => {
                                    prop_assert_eq!(who.role, Role::Security);
                                    prop_assert_ne!(&before.as_ref().unwrap().proposed_by, &who.name);
                                }
                                FlowAction::Propose(_) => {
                                    prop_assert!(!mode.holds(who.role) || d.flow.changes.is_empty());
                                }
                                FlowAction::Reject => prop_assert!(false, "a rejection changed what is in force"),
                            }
                        }
                        if d.flow.is_pending() {
                            prop_assert!(d.apply.is_none());
                        }
                        last = Some(d.entry);
                        flow = Some(d.flow);
                    }
                    Err(_) => prop_assert_eq!(&flow, &before),
                }
            }
        }
    }
}
