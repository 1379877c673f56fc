//! Time: instants are milliseconds since the Unix epoch (as in `sightline-core`), and
//! windows are a whole number of one unit so that `30d` prints back as `30d`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Milliseconds since the Unix epoch. Time is always passed in; nothing here reads a clock.
pub type Millis = i64;

/// The unit of a [`Span`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl TimeUnit {
    fn millis(self) -> i64 {
        match self {
            TimeUnit::Seconds => 1_000,
            TimeUnit::Minutes => 60_000,
            TimeUnit::Hours => 3_600_000,
            TimeUnit::Days => 86_400_000,
        }
    }

    fn suffix(self) -> char {
        match self {
            TimeUnit::Seconds => 's',
            TimeUnit::Minutes => 'm',
            TimeUnit::Hours => 'h',
            TimeUnit::Days => 'd',
        }
    }

    pub(crate) fn from_suffix(suffix: &str) -> Option<TimeUnit> {
        match suffix {
            "s" => Some(TimeUnit::Seconds),
            "m" => Some(TimeUnit::Minutes),
            "h" => Some(TimeUnit::Hours),
            "d" => Some(TimeUnit::Days),
            _ => None,
        }
    }
}

/// A positive length of time such as `30d`, `12h`, `15m` or `45s`: the width of a window.
/// Serialized as that text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span {
    amount: u32,
    unit: TimeUnit,
}

impl Span {
    /// `None` for a zero amount: an empty window would hold nothing.
    pub fn new(amount: u32, unit: TimeUnit) -> Option<Span> {
        (amount > 0).then_some(Span { amount, unit })
    }

    pub fn amount(self) -> u32 {
        self.amount
    }

    pub fn unit(self) -> TimeUnit {
        self.unit
    }

    pub fn millis(self) -> i64 {
        i64::from(self.amount) * self.unit.millis()
    }

    /// The instant at which something that happened `at` leaves a window of this span.
    pub fn expiry(self, at: Millis) -> Millis {
        at.saturating_add(self.millis())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

/// Why a text is not a span.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration: write a positive whole number and a unit s, m, h or d, like 30d")]
pub struct SpanError(String);

impl FromStr for Span {
    type Err = SpanError;

    fn from_str(s: &str) -> Result<Span, SpanError> {
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (amount, suffix) = s.split_at(digits);
        amount
            .parse()
            .ok()
            .zip(TimeUnit::from_suffix(suffix))
            .and_then(|(amount, unit)| Span::new(amount, unit))
            .ok_or_else(|| SpanError(s.to_owned()))
    }
}

impl TryFrom<String> for Span {
    type Error = SpanError;

    fn try_from(s: String) -> Result<Span, SpanError> {
        s.parse()
    }
}

impl From<Span> for String {
    fn from(span: Span) -> String {
        span.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print() {
        for text in ["30d", "12h", "15m", "45s", "4294967295d"] {
            assert_eq!(text.parse::<Span>().unwrap().to_string(), text);
        }
        for bad in [
            "",
            "0d",
            "d",
            "30",
            "30w",
            "-1d",
            "1.5d",
            "99999999999d",
            "30 d",
        ] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
        assert_eq!("2d".parse::<Span>().unwrap().millis(), 172_800_000);
    }
}
