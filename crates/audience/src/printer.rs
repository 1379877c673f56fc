//! The text form of rules: `Display` prints what [`crate::parse`] reads back to the same
//! rule. Operands are parenthesized only where precedence (`not` > `and` > `or`) needs it.

use crate::condition::{Comparison, Literal};
use crate::lexer::{is_word_char, is_word_start};
use crate::rule::{EventCondition, Rule};
use std::fmt::{self, Display, Formatter, Write};

const KEYWORDS: [&str; 21] = [
    "event", "trait", "computed", "consent", "has", "not", "and", "or", "where", "count", "within",
    "contains", "exists", "true", "false", "track", "identify", "page", "screen", "group", "alias",
];

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Rule::And(rules) => write_joined(f, rules, " and ", |r| {
                matches!(r, Rule::And(_) | Rule::Or(_))
            }),
            Rule::Or(rules) => write_joined(f, rules, " or ", |r| matches!(r, Rule::Or(_))),
            Rule::Not(rule) => {
                f.write_str("not ")?;
                write_operand(f, rule, matches!(**rule, Rule::And(_) | Rule::Or(_)))
            }
            Rule::Event(condition) => condition.fmt(f),
            Rule::Trait(comparison) => write!(f, "trait {comparison}"),
            Rule::Computed(comparison) => write!(f, "computed {comparison}"),
            Rule::Consent(purpose) => write!(f, "consent {}", Name(purpose)),
            Rule::Has(identifier) => write!(f, "has {}", Name(identifier)),
        }
    }
}

fn write_joined(
    f: &mut Formatter<'_>,
    rules: &[Rule],
    separator: &str,
    needs_parentheses: impl Fn(&Rule) -> bool,
) -> fmt::Result {
    for (i, rule) in rules.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write_operand(f, rule, needs_parentheses(rule))?;
    }
    Ok(())
}

fn write_operand(f: &mut Formatter<'_>, rule: &Rule, parenthesize: bool) -> fmt::Result {
    if parenthesize {
        write!(f, "({rule})")
    } else {
        rule.fmt(f)
    }
}

impl Display for EventCondition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("event")?;
        if let Some(event_type) = self.filter.event_type {
            write!(f, " {event_type}")?;
        }
        if let Some(name) = &self.filter.name {
            write!(f, " {}", Quoted(name))?;
        }
        for (i, comparison) in self.filter.conditions.iter().enumerate() {
            f.write_str(if i == 0 { " where " } else { " and " })?;
            comparison.fmt(f)?;
        }
        // Always printed: it also ends a `where` list before a following `and`.
        write!(f, " count {} {}", self.count.op.as_str(), self.count.value)?;
        if let Some(span) = self.within {
            write!(f, " within {span}")?;
        }
        Ok(())
    }
}

impl Display for Comparison {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", Name(&self.name), self.test.operator())?;
        match self.test.literal() {
            Some(literal) => write!(f, " {literal}"),
            None => Ok(()),
        }
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            // Rust prints the shortest text that parses back to the same f64.
            Literal::Number(n) => write!(f, "{n}"),
            Literal::String(s) => Quoted(s).fmt(f),
        }
    }
}

/// A name, bare when it reads back as the same word, quoted otherwise.
struct Name<'a>(&'a str);

impl Display for Name<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        let bare = chars.next().is_some_and(is_word_start)
            && chars.all(is_word_char)
            && !KEYWORDS.contains(&self.0);
        if bare {
            f.write_str(self.0)
        } else {
            Quoted(self.0).fmt(f)
        }
    }
}

struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}
