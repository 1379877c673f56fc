//! The one error type of the crate. Every message says what to change.

/// Everything that can go wrong while reading input or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CSV could not be read as CSV at all (bad quoting, invalid UTF-8, IO failure).
    #[error("paths CSV, line {line}: {message}; check the quoting and that the file is UTF-8")]
    CsvSyntax { line: u64, message: String },

    /// The header lacks a required column.
    #[error(
        "paths CSV: missing column `{column}`; the header must name the columns \
         `path,total_conversions,total_conversion_value,total_null` \
         (only `path` and `total_conversions` are required)"
    )]
    MissingColumn { column: &'static str },

    /// A data row is well-formed CSV but its content is unusable.
    #[error("paths CSV, line {line}: {message}")]
    BadRow { line: u64, message: String },

    /// The channel rules file is not valid TOML or does not match the expected shape.
    #[error("channel rules: {0}; see docs/channels.md for the file format")]
    Rules(String),

    /// A path built in code is inconsistent with its path set.
    #[error("invalid path: {0}")]
    InvalidPath(String),

    /// An option passed to a model is out of range.
    #[error("invalid option `{option}`: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },

    /// The higher-order Markov chain would need more states than a dense solve can handle.
    #[error(
        "the order-{order} Markov chain has {states} states, more than the {limit} this \
         exact solver handles; use a lower `markov order`"
    )]
    TooManyMarkovStates {
        order: usize,
        states: usize,
        limit: usize,
    },
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
