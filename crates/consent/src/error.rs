//! The one error type of the decoders. Every message says what is malformed,
//! where (segment, bit offset, field) and what a valid value looks like.

use thiserror::Error;

/// Why a consent signal could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error(
        "empty consent string: expected a TCF v2 TC string (starts with 'C'), \
         a GPP string (starts with 'DB') or a US Privacy string such as '1YNN'"
    )]
    Empty,

    #[error(
        "unrecognised consent string starting with {start:?}: expected a TCF v2 TC string \
         (starts with 'C'), a GPP string (starts with 'DB') or a US Privacy string such as '1YNN'"
    )]
    UnknownKind { start: String },

    #[error(
        "invalid character {found:?} at position {position} of the {segment}: expected \
         base64url (A-Z, a-z, 0-9, '-', '_'; '+', '/' and trailing '=' are tolerated)"
    )]
    InvalidBase64 {
        segment: &'static str,
        position: usize,
        found: char,
    },

    #[error(
        "the {segment} is truncated: field {field} needs {needed} bit(s) at bit offset {offset} \
         but only {available} remain"
    )]
    Truncated {
        segment: &'static str,
        field: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },

    #[error(
        "invalid {field} at bit offset {offset} of the {segment}: got {found}, expected {expected}"
    )]
    InvalidField {
        segment: &'static str,
        field: &'static str,
        offset: usize,
        found: String,
        expected: &'static str,
    },

    #[error("unsupported {format} version {found}: only version {supported} is supported")]
    UnsupportedVersion {
        format: &'static str,
        found: u64,
        supported: u64,
    },

    #[error("the TC string has two {segment}s: each optional segment may appear once")]
    DuplicateSegment { segment: &'static str },

    #[error(
        "the GPP header lists {declared} section id(s) but the string has {found} section(s) \
         after the header: sections are separated by '~', one per id"
    )]
    GppSectionCount { declared: usize, found: usize },

    #[error(
        "GPP section {id} ({name}) is empty: expected its encoded value between '~' separators"
    )]
    EmptyGppSection { id: u16, name: &'static str },

    #[error("in GPP section {id} ({name}): {error}")]
    InGppSection {
        id: u16,
        name: &'static str,
        error: Box<DecodeError>,
    },

    #[error(
        "invalid US Privacy string {value:?}: {problem}; expected four characters: \
         version '1', then notice, opt-out of sale and LSPA each 'Y', 'N' or '-' (e.g. '1YNN', '1---')"
    )]
    InvalidUsPrivacy { value: String, problem: String },

    #[error(
        "invalid Google consent parameter {parameter}={value:?}: {problem}; expected {expected}"
    )]
    InvalidGoogleParameter {
        parameter: &'static str,
        value: String,
        problem: String,
        expected: &'static str,
    },

    #[error("invalid consent JSON at {path}: got {found}, expected {expected}")]
    InvalidJson {
        path: String,
        found: String,
        expected: &'static str,
    },
}

/// Why a TC string could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("{field} = {value} does not fit: expected {expected}")]
    OutOfRange {
        field: &'static str,
        value: String,
        expected: String,
    },
}
