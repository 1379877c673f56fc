//! IAB US Privacy strings (CCPA), e.g. `1YNN`: version, explicit notice,
//! opt-out of sale, LSPA coverage.

use serde::{Serialize, Serializer};

use crate::DecodeError;

/// One US Privacy flag: `Y`, `N` or `-` (not applicable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UspFlag {
    Yes,
    No,
    NotApplicable,
}

impl UspFlag {
    fn parse(c: char) -> Option<Self> {
        match c {
            'Y' => Some(Self::Yes),
            'N' => Some(Self::No),
            '-' => Some(Self::NotApplicable),
            _ => None,
        }
    }

    /// The character the flag is written as.
    pub fn as_char(self) -> char {
        match self {
            Self::Yes => 'Y',
            Self::No => 'N',
            Self::NotApplicable => '-',
        }
    }
}

impl Serialize for UspFlag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_char(self.as_char())
    }
}

/// A decoded US Privacy string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct UsPrivacy {
    /// Always 1, the only version the spec defines.
    pub version: u8,
    /// Explicit notice / opportunity to opt out was given.
    pub notice: UspFlag,
    /// The user opted out of the sale of personal information.
    pub opt_out_sale: UspFlag,
    /// The publisher is a signatory to the IAB Limited Service Provider Agreement.
    pub lspa_covered: UspFlag,
}

impl UsPrivacy {
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let invalid = |problem: String| DecodeError::InvalidUsPrivacy {
            value: text.to_string(),
            problem,
        };
        let chars: Vec<char> = text.trim().chars().collect();
        let [version, notice, opt_out_sale, lspa_covered] = chars[..] else {
            return Err(invalid(format!("it has {} characters", chars.len())));
        };
        if version != '1' {
            return Err(invalid(format!("version (position 0) is {version:?}")));
        }
        let flag = |position: usize, name: &str, c: char| {
            UspFlag::parse(c)
                .ok_or_else(|| invalid(format!("{name} (position {position}) is {c:?}")))
        };
        Ok(Self {
            version: 1,
            notice: flag(1, "notice", notice)?,
            opt_out_sale: flag(2, "opt-out of sale", opt_out_sale)?,
            lspa_covered: flag(3, "LSPA", lspa_covered)?,
        })
    }

    /// The four-character form, e.g. `1YNN`.
    pub fn encode(&self) -> String {
        [self.notice, self.opt_out_sale, self.lspa_covered]
            .iter()
            .fold(self.version.to_string(), |mut text, flag| {
                text.push(flag.as_char());
                text
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_flags_and_not_applicable() {
        let usp = UsPrivacy::decode("1YNN").unwrap();
        assert_eq!(
            (usp.notice, usp.opt_out_sale, usp.lspa_covered),
            (UspFlag::Yes, UspFlag::No, UspFlag::No)
        );
        assert_eq!(
            UsPrivacy::decode("1---").unwrap().opt_out_sale,
            UspFlag::NotApplicable
        );
        assert_eq!(UsPrivacy::decode("1YYN").unwrap().encode(), "1YYN");
    }

    #[test]
    fn errors_name_the_bad_position() {
        let message = UsPrivacy::decode("1YXN").unwrap_err().to_string();
        assert!(
            message.contains("opt-out of sale (position 2) is 'X'"),
            "{message}"
        );
        assert!(UsPrivacy::decode("2YNN")
            .unwrap_err()
            .to_string()
            .contains("version (position 0)"));
        assert!(UsPrivacy::decode("1YN")
            .unwrap_err()
            .to_string()
            .contains("3 characters"));
        assert!(UsPrivacy::decode("1ynn").is_err());
    }
}
