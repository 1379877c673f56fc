//! The audience rule: its AST (which is also its JSON form) and the checks every rule
//! passes, whether it was parsed from text or read from JSON.

use crate::condition::{Comparison, EventFilter, Literal, Test};
use crate::time::Span;
use serde::{Deserialize, Serialize};

/// The largest count a rule may test. Membership state keeps up to this many timestamps per
/// event condition, so it bounds the state of every profile.
pub const MAX_COUNT: u32 = 1_000;

/// How deeply rules may nest; deeper input is refused instead of overflowing the stack.
pub const MAX_DEPTH: usize = 32;

/// An audience rule. Externally tagged in JSON: `{"and":[…]}`, `{"not":{…}}`,
/// `{"event":{…}}`, `{"trait":{…}}`, `{"computed":{…}}`, `{"consent":"advertising"}`,
/// `{"has":"email"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// All hold (at least two rules).
    And(Vec<Rule>),
    /// At least one holds (at least two rules).
    Or(Vec<Rule>),
    Not(Box<Rule>),
    /// Enough matching events, in a window or ever.
    Event(EventCondition),
    /// A profile trait.
    Trait(Comparison),
    /// A computed trait's current value.
    Computed(Comparison),
    /// The profile has granted this consent purpose.
    Consent(String),
    /// The profile has an identifier of this type (`email`, `user_id`, `phone`…).
    Has(String),
}

/// `event [TYPE] ["NAME"] [where …] [count OP N] [within SPAN]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventCondition {
    #[serde(flatten)]
    pub filter: EventFilter,
    #[serde(default)]
    pub count: CountCheck,
    /// `None`: all time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Span>,
}

/// A test of how many matching events there are. The default is `count >= 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountCheck {
    pub op: CompareOp,
    pub value: u32,
}

impl Default for CountCheck {
    fn default() -> CountCheck {
        CountCheck {
            op: CompareOp::Ge,
            value: 1,
        }
    }
}

/// A comparison operator: of counts here, and the operators of [`Test`] in the text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        }
    }
}

impl CountCheck {
    pub fn holds(self, count: usize) -> bool {
        let (count, n) = (count as u64, u64::from(self.value));
        match self.op {
            CompareOp::Eq => count == n,
            CompareOp::Ne => count != n,
            CompareOp::Gt => count > n,
            CompareOp::Ge => count >= n,
            CompareOp::Lt => count < n,
            CompareOp::Le => count <= n,
        }
    }

    /// How many of the most recent matching events decide this check: a count saturated at
    /// this bound gives the same answer as the true count.
    pub fn retained(self) -> usize {
        let n = self.value as usize;
        match self.op {
            CompareOp::Ge | CompareOp::Lt => n,
            CompareOp::Gt | CompareOp::Le | CompareOp::Eq | CompareOp::Ne => n + 1,
        }
    }
}

/// Why a rule (from JSON or built in code) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid rule JSON: {0}")]
    Json(String),
    #[error("`{0}` needs at least two rules")]
    TooFewOperands(&'static str),
    #[error("counts go up to {MAX_COUNT}, not {0}")]
    CountTooLarge(u32),
    #[error("`{0}` compares numbers or strings, not booleans")]
    UnorderedLiteral(&'static str),
    #[error("numbers in rules must be finite")]
    NonFiniteNumber,
    #[error("rules nest more than {MAX_DEPTH} levels deep")]
    TooDeep,
}

impl Rule {
    /// Reads the JSON form and checks it.
    pub fn from_json(json: &str) -> Result<Rule, RuleError> {
        let rule: Rule = serde_json::from_str(json).map_err(|e| RuleError::Json(e.to_string()))?;
        rule.validate()?;
        Ok(rule)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a rule always serializes")
    }

    /// Checks what the types cannot say; every valid rule prints to text that parses back
    /// to it.
    pub fn validate(&self) -> Result<(), RuleError> {
        self.validate_at(1)
    }

    fn validate_at(&self, depth: usize) -> Result<(), RuleError> {
        if depth > MAX_DEPTH {
            return Err(RuleError::TooDeep);
        }
        match self {
            Rule::And(rules) | Rule::Or(rules) => {
                if rules.len() < 2 {
                    let op = if matches!(self, Rule::And(_)) {
                        "and"
                    } else {
                        "or"
                    };
                    return Err(RuleError::TooFewOperands(op));
                }
                rules.iter().try_for_each(|r| r.validate_at(depth + 1))
            }
            Rule::Not(rule) => rule.validate_at(depth + 1),
            Rule::Event(condition) => {
                if condition.count.value > MAX_COUNT {
                    return Err(RuleError::CountTooLarge(condition.count.value));
                }
                condition
                    .filter
                    .conditions
                    .iter()
                    .try_for_each(validate_comparison)
            }
            Rule::Trait(c) | Rule::Computed(c) => validate_comparison(c),
            Rule::Consent(_) | Rule::Has(_) => Ok(()),
        }
    }

    /// Whether it reads a computed trait's value anywhere.
    pub fn reads_computed(&self) -> bool {
        match self {
            Rule::And(rules) | Rule::Or(rules) => rules.iter().any(Rule::reads_computed),
            Rule::Not(rule) => rule.reads_computed(),
            Rule::Computed(_) => true,
            Rule::Event(_) | Rule::Trait(_) | Rule::Consent(_) | Rule::Has(_) => false,
        }
    }

    /// The event conditions in the order evaluation visits them (depth first, left to
    /// right); membership state keeps one [`crate::EventState`] per entry.
    pub fn event_conditions(&self) -> Vec<&EventCondition> {
        fn collect<'r>(rule: &'r Rule, out: &mut Vec<&'r EventCondition>) {
            match rule {
                Rule::And(rules) | Rule::Or(rules) => rules.iter().for_each(|r| collect(r, out)),
                Rule::Not(rule) => collect(rule, out),
                Rule::Event(condition) => out.push(condition),
                Rule::Trait(_) | Rule::Computed(_) | Rule::Consent(_) | Rule::Has(_) => {}
            }
        }
        let mut out = Vec::new();
        collect(self, &mut out);
        out
    }
}

fn validate_comparison(comparison: &Comparison) -> Result<(), RuleError> {
    match &comparison.test {
        Test::Gt(Literal::Bool(_))
        | Test::Ge(Literal::Bool(_))
        | Test::Lt(Literal::Bool(_))
        | Test::Le(Literal::Bool(_)) => {
            Err(RuleError::UnorderedLiteral(comparison.test.operator()))
        }
        test => match test.literal() {
            Some(Literal::Number(n)) if !n.is_finite() => Err(RuleError::NonFiniteNumber),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retained_counts_decide_every_check() {
        for op in [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ] {
            for value in 0..5 {
                let check = CountCheck { op, value };
                for count in 0..12 {
                    assert_eq!(check.holds(count), check.holds(count.min(check.retained())));
                }
            }
        }
    }

    #[test]
    fn invalid_json_rules_are_refused() {
        assert!(matches!(
            Rule::from_json(r#"{"and":[{"has":"email"}]}"#),
            Err(RuleError::TooFewOperands("and"))
        ));
        assert!(matches!(
            Rule::from_json(r#"{"event":{"count":{"op":">=","value":5000}}}"#),
            Err(RuleError::CountTooLarge(5000))
        ));
        assert!(matches!(
            Rule::from_json(r#"{"trait":{"name":"x","op":">","value":true}}"#),
            Err(RuleError::UnorderedLiteral(">"))
        ));
        assert!(matches!(
            Rule::from_json(r#"{"event":{"within":"0d"}}"#),
            Err(RuleError::Json(_))
        ));
        assert!(matches!(Rule::from_json("[]"), Err(RuleError::Json(_))));
        let deep = format!(
            "{}{}{}",
            r#"{"not":"#.repeat(40),
            r#"{"has":"email"}"#,
            "}".repeat(40)
        );
        assert_eq!(Rule::from_json(&deep), Err(RuleError::TooDeep));
    }

    #[test]
    fn a_rule_reads_computed_traits_only_where_it_names_one() {
        let reads = |text: &str| crate::parse(text).unwrap().reads_computed();
        assert!(!reads(
            r#"event "Order Completed" count >= 1 within 30d and has email"#
        ));
        assert!(!reads(r#"trait plan = "pro" or consent advertising"#));
        assert!(reads(r#"computed ltv > 100"#));
        assert!(reads(
            r#"has email and not (trait vip = true or computed ltv > 100)"#
        ));
    }
}
