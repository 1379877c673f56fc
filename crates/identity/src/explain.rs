//! Merge history in plain words.

use crate::graph::Record;
use crate::resolve::{Change, Rule};

/// How an event made a link: "by the identify call at seq 17".
fn by_call(rule: Rule, seq: i64) -> String {
    match rule {
        Rule::Identify => format!("by the identify call at seq {seq}"),
        Rule::Alias => format!("by the alias call at seq {seq}"),
        _ => format!("by appearing together on the event at seq {seq}"),
    }
}

/// How an event created a profile: "by the event at seq 3".
fn created_by(rule: Rule, seq: i64) -> String {
    match rule {
        Rule::Identify | Rule::Alias => by_call(rule, seq),
        _ => format!("by the event at seq {seq}"),
    }
}

/// One sentence per record, in history order; `SeenWith` bookkeeping is left out.
pub fn explain(history: &[Record]) -> Vec<String> {
    history.iter().filter_map(sentence).collect()
}

/// The plain-words form of one record.
pub fn sentence(record: &Record) -> Option<String> {
    let seq = record.seq;
    Some(match &record.change {
        Change::CreateProfile {
            profile,
            identifier,
            rule,
        } => format!(
            "profile {profile} was created for {identifier} {}",
            created_by(*rule, seq)
        ),
        Change::Attach {
            identifier,
            joined_with,
            rule,
            ..
        } => format!(
            "{joined_with} and {identifier} were joined {}",
            by_call(*rule, seq)
        ),
        Change::Merge {
            from,
            into,
            via,
            joined_with,
            rule,
        } => format!(
            "profile {from} ({via}) was merged into profile {into} ({joined_with}) {}; \
             {into} is older and keeps its id",
            by_call(*rule, seq)
        ),
        Change::Refuse {
            identifier,
            profile,
            owner,
            rule,
            limit_type,
        } => {
            let target =
                profile.map_or_else(|| "any profile".to_owned(), |p| format!("profile {p}"));
            let held = owner.map_or_else(String::new, |o| format!(" (held by profile {o})"));
            let why = match (rule, limit_type) {
                (Rule::LimitExceeded, Some(t)) => {
                    format!("the profile would hold more {t} identifiers than its limit")
                }
                (Rule::ConflictingUserId, _) => {
                    "both sides hold a different user_id, so they are different people".to_owned()
                }
                (Rule::BlockedValue, _) => "it is a blocked placeholder value".to_owned(),
                (Rule::InvalidValue, _) => {
                    format!("it is not a valid {} value", identifier.id_type)
                }
                _ => "a rule refused it".to_owned(),
            };
            format!(
                "{identifier}{held} was not linked to {target} at seq {seq}: {why} ({})",
                rule.as_str()
            )
        }
        Change::FlagShared {
            identifier,
            profiles,
            bound,
            ..
        } => format!(
            "{identifier} was flagged as shared at seq {seq}: it was seen with {profiles} \
             profiles, more than the bound of {bound}, and no longer links ({})",
            Rule::SharedIdentifier.as_str()
        ),
        Change::SeenWith { .. } => return None,
    })
}
