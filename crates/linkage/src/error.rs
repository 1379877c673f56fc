use std::path::PathBuf;

/// Everything that can go wrong while loading data or linking it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("CSV error at line {line}: {message}")]
    Csv { line: u64, message: String },

    #[error("cannot write links: {0}")]
    WriteLinks(String),

    #[error("id column `{wanted}` not found; the columns are: {}", found.join(", "))]
    MissingIdColumn { wanted: String, found: Vec<String> },

    #[error("the CSV file has no header row")]
    EmptyHeader,

    #[error("invalid mapping at `{key}`: {message}")]
    Mapping { key: String, message: String },

    #[error(
        "no field to compare: none of the columns ({}) is recognised; \
         add [fields.COLUMN] entries to the mapping file",
        columns.join(", ")
    )]
    NoFields { columns: Vec<String> },

    #[error(
        "no blocking rule applies to these columns; add [[blocking]] rules to the mapping file \
         (e.g. `keys = [\"{example}\"]`)"
    )]
    NoBlockingRule { example: String },

    #[error(
        "blocking would generate {total} comparisons, above the limit of {limit}; \
         use stricter [[blocking]] rules (per rule: {per_rule})"
    )]
    TooManyComparisons {
        total: u64,
        limit: u64,
        per_rule: String,
    },

    #[error("the {side} dataset has no usable record")]
    NoRecords { side: &'static str },

    #[error("invalid option `{option}`: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },
}
