//! Merge history in plain words.

use crate::resolve::{Change, Record, Rule};

/// How an event made a link: "by the identify call at seq 17".
fn by_call(rule: Rule, seq: i64) -> String {
    match rule {
        Rule::Identify => format!("by the identify call at seq {seq}"),
        Rule::Alias => format!("by the alias call at seq {seq}"),
        Rule::RecordLinkage => format!("by record linkage at seq {seq}"),
        _ => format!("by appearing together on the event at seq {seq}"),
    }
}

/// How an event created a profile: "by the event at seq 3".
fn created_by(rule: Rule, seq: i64) -> String {
    match rule {
        Rule::Identify | Rule::Alias | Rule::RecordLinkage => by_call(rule, seq),
        _ => format!("by the event at seq {seq}"),
    }
}

/// One sentence per record, in history order; `SeenWith` bookkeeping is left out.
pub fn explain(history: &[Record]) -> Vec<String> {
    history.iter().filter_map(sentence).collect()
}

/// The plain-words form of one record; a record caused by record linkage is followed by
/// its evidence: how the link was decided and the waterfall of per-field weights.
pub fn sentence(record: &Record) -> Option<String> {
    let mut text = change_sentence(record)?;
    if let Some(evidence) = &record.linkage {
        text.push_str(&linkage_evidence(evidence));
    }
    Some(text)
}

/// The evidence of a record link in words: its decision, probability, and one line per
/// compared field (level, weight, running total), as the linkage engine explained it.
pub fn linkage_evidence(evidence: &serde_json::Value) -> String {
    let number = |v: &serde_json::Value, key: &str| v.get(key).and_then(|n| n.as_f64());
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|t| t.as_str())
            .unwrap_or("∅")
            .to_owned()
    };
    let decision = match evidence.get("decision").and_then(|d| d.as_str()) {
        Some("auto_link") => "linked automatically above the upper threshold".to_owned(),
        Some("accepted") => match evidence.get("review").and_then(|r| r.as_i64()) {
            Some(id) => format!("accepted in clerical review (review {id})"),
            None => "accepted in clerical review".to_owned(),
        },
        Some(other) => other.to_owned(),
        None => "linked".to_owned(),
    };
    let mut out = format!(
        "\n    {decision}: {} <-> {}, match probability {:.6} (match weight {:+.2})",
        text(evidence, "left_id"),
        text(evidence, "right_id"),
        number(evidence, "match_probability").unwrap_or(f64::NAN),
        number(evidence, "match_weight").unwrap_or(f64::NAN),
    );
    if let Some(prior) = number(evidence, "prior_weight") {
        out.push_str(&format!(
            "\n    {:<16} {prior:>+8.2} {prior:>+9.2}",
            "prior"
        ));
    }
    let fields = evidence.get("fields").and_then(|f| f.as_array());
    for field in fields.into_iter().flatten() {
        out.push_str(&format!(
            "\n    {:<16} {:>+8.2} {:>+9.2}   {} | {} vs {}",
            text(field, "column"),
            number(field, "weight").unwrap_or(0.0),
            number(field, "cumulative_weight").unwrap_or(0.0),
            text(field, "label"),
            text(field, "left_value"),
            text(field, "right_value"),
        ));
    }
    out
}

fn change_sentence(record: &Record) -> Option<String> {
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
