//! Comparisons of a named value (event property, profile trait or computed trait) with a
//! literal, and event filters built from them.

use crate::event::{Event, EventType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cmp::Ordering;

/// A constant in a rule: a string, a finite number or a boolean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Number(f64),
    String(String),
}

impl Literal {
    fn equals(&self, actual: &Value) -> bool {
        match (self, actual) {
            (Literal::Bool(b), Value::Bool(a)) => a == b,
            (Literal::Number(n), Value::Number(a)) => a.as_f64() == Some(*n),
            (Literal::String(s), Value::String(a)) => a == s,
            _ => false,
        }
    }

    /// Numbers order numerically and strings lexically (so ISO dates order by time);
    /// anything else does not order.
    fn order_of(&self, actual: &Value) -> Option<Ordering> {
        match (actual, self) {
            (Value::Number(a), Literal::Number(n)) => a.as_f64()?.partial_cmp(n),
            (Value::String(a), Literal::String(s)) => Some(a.as_str().cmp(s)),
            _ => None,
        }
    }
}

/// What is checked of a value. Serialized as `"op"` and `"value"` beside the name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "value")]
pub enum Test {
    #[serde(rename = "=")]
    Eq(Literal),
    /// The negation of `=`: also true when the value is absent.
    #[serde(rename = "!=")]
    Ne(Literal),
    #[serde(rename = ">")]
    Gt(Literal),
    #[serde(rename = ">=")]
    Ge(Literal),
    #[serde(rename = "<")]
    Lt(Literal),
    #[serde(rename = "<=")]
    Le(Literal),
    /// A string containing a substring, or an array containing an equal element.
    #[serde(rename = "contains")]
    Contains(Literal),
    /// Present and not null.
    #[serde(rename = "exists")]
    Exists,
}

impl Test {
    pub fn matches(&self, actual: Option<&Value>) -> bool {
        let actual = actual.filter(|v| !v.is_null());
        let order = |literal: &Literal| actual.and_then(|a| literal.order_of(a));
        match self {
            Test::Eq(literal) => actual.is_some_and(|a| literal.equals(a)),
            Test::Ne(literal) => !actual.is_some_and(|a| literal.equals(a)),
            Test::Gt(literal) => order(literal) == Some(Ordering::Greater),
            Test::Ge(literal) => order(literal).is_some_and(Ordering::is_ge),
            Test::Lt(literal) => order(literal) == Some(Ordering::Less),
            Test::Le(literal) => order(literal).is_some_and(Ordering::is_le),
            Test::Contains(literal) => match (actual, literal) {
                (Some(Value::String(a)), Literal::String(s)) => a.contains(s.as_str()),
                (Some(Value::Array(items)), _) => items.iter().any(|item| literal.equals(item)),
                _ => false,
            },
            Test::Exists => actual.is_some(),
        }
    }

    /// The operator as written in the text form.
    pub fn operator(&self) -> &'static str {
        match self {
            Test::Eq(_) => "=",
            Test::Ne(_) => "!=",
            Test::Gt(_) => ">",
            Test::Ge(_) => ">=",
            Test::Lt(_) => "<",
            Test::Le(_) => "<=",
            Test::Contains(_) => "contains",
            Test::Exists => "exists",
        }
    }

    pub fn literal(&self) -> Option<&Literal> {
        match self {
            Test::Eq(l) | Test::Ne(l) | Test::Gt(l) | Test::Ge(l) | Test::Lt(l) | Test::Le(l) => {
                Some(l)
            }
            Test::Contains(l) => Some(l),
            Test::Exists => None,
        }
    }
}

/// A test of one named value: `total > 50`, `plan = "pro"`, `coupon exists`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub name: String,
    #[serde(flatten)]
    pub test: Test,
}

impl Comparison {
    pub fn new(name: impl Into<String>, test: Test) -> Comparison {
        Comparison {
            name: name.into(),
            test,
        }
    }
}

/// The keys of an object [`lookup`] may read for `name`.
pub(crate) fn read_keys(name: &str) -> impl Iterator<Item = &str> {
    let root = name.split_once('.').map(|(root, _)| root);
    std::iter::once(name).chain(root)
}

/// The value named `name`: the key itself, or else a dotted path into nested objects
/// (`address.city`), as Segment traits and properties nest.
pub(crate) fn lookup<'v>(get: impl Fn(&str) -> Option<&'v Value>, name: &str) -> Option<&'v Value> {
    get(name).or_else(|| {
        let mut path = name.split('.');
        let root = get(path.next()?)?;
        path.try_fold(root, |value, key| value.get(key))
    })
}

/// Which events count: an optional type, an optional name and property conditions that
/// must all hold. The empty filter matches every event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "where", default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Comparison>,
}

impl EventFilter {
    /// The properties its conditions read: each name and, for a dotted path, its first key
    /// (see [`lookup`]).
    pub fn properties(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().flat_map(|c| read_keys(&c.name))
    }

    pub fn matches(&self, event: &Event<'_>) -> bool {
        self.event_type.is_none_or(|t| t == event.event_type)
            && self.name.as_deref().is_none_or(|n| event.name == Some(n))
            && self.conditions.iter().all(|c| {
                c.test
                    .matches(lookup(|key| event.properties.get(key), &c.name))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(test: Test, value: Value) -> bool {
        test.matches(Some(&value))
    }

    #[test]
    fn tests_follow_their_documented_meaning() {
        let num = |n| Literal::Number(n);
        let text = |s: &str| Literal::String(s.into());
        assert!(check(Test::Eq(num(50.0)), json!(50)));
        assert!(check(Test::Eq(num(0.5)), json!(0.5)));
        assert!(!check(Test::Eq(num(50.0)), json!("50")));
        assert!(check(Test::Ne(num(50.0)), json!("50")));
        assert!(Test::Ne(num(1.0)).matches(None));
        assert!(!Test::Eq(num(1.0)).matches(None));
        assert!(check(Test::Gt(num(50.0)), json!(50.5)));
        assert!(!check(Test::Gt(num(50.0)), json!(50)));
        assert!(check(Test::Ge(num(50.0)), json!(50)));
        assert!(check(Test::Lt(text("2025-01-01")), json!("2024-12-31")));
        assert!(check(Test::Le(num(-1.0)), json!(-1)));
        assert!(!check(Test::Lt(num(1.0)), json!(true)));
        assert!(check(Test::Contains(text("sale")), json!("summer sale")));
        assert!(check(Test::Contains(text("a")), json!(["b", "a"])));
        assert!(check(Test::Contains(num(2.0)), json!([1, 2])));
        assert!(!check(Test::Contains(text("x")), json!(5)));
        assert!(check(Test::Exists, json!(0)));
        assert!(!check(Test::Exists, Value::Null));
        assert!(!Test::Exists.matches(None));
        assert!(check(Test::Eq(Literal::Bool(true)), json!(true)));
    }

    #[test]
    fn names_are_keys_or_dotted_paths() {
        let map = json!({"address": {"city": "Lyon"}, "a.b": 1, "a": {"b": 2}});
        let map = map.as_object().unwrap();
        assert_eq!(
            lookup(|key| map.get(key), "address.city"),
            Some(&json!("Lyon"))
        );
        assert_eq!(
            lookup(|key| map.get(key), "a.b"),
            Some(&json!(1)),
            "an exact key wins"
        );
        assert_eq!(lookup(|key| map.get(key), "address.zip"), None);
        assert_eq!(lookup(|key| map.get(key), "address.city.x"), None);
        assert_eq!(lookup(|key| map.get(key), ""), None);
    }

    #[test]
    fn comparisons_read_and_write_op_and_value() {
        let c: Comparison =
            serde_json::from_str(r#"{"name":"total","op":">=","value":50}"#).unwrap();
        assert_eq!(c, Comparison::new("total", Test::Ge(Literal::Number(50.0))));
        let e: Comparison = serde_json::from_str(r#"{"name":"coupon","op":"exists"}"#).unwrap();
        assert_eq!(e.test, Test::Exists);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"coupon","op":"exists"}"#
        );
        let back: Comparison = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
