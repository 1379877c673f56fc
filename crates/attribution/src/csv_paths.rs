//! Import of aggregated paths from CSV:
//! `path,total_conversions,total_conversion_value,total_null`, channels joined by `>`.

use std::io::Read;

use crate::error::{Error, Result};
use crate::path::{AgeUnit, Path, PathSet};

struct Columns {
    path: usize,
    conversions: usize,
    value: Option<usize>,
    nulls: Option<usize>,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Self> {
        let find = |name: &str| {
            header.iter().position(|h| {
                h.trim()
                    .trim_start_matches('\u{feff}')
                    .eq_ignore_ascii_case(name)
            })
        };
        Ok(Self {
            path: find("path").ok_or(Error::MissingColumn { column: "path" })?,
            conversions: find("total_conversions").ok_or(Error::MissingColumn {
                column: "total_conversions",
            })?,
            value: find("total_conversion_value"),
            nulls: find("total_null"),
        })
    }
}

/// Reads paths from CSV. Channels are split on `>` and trimmed, so `a > b`, `a>b` and
/// ` a >b ` are the same path. Missing optional columns count as zero.
pub fn read_paths_csv<R: Read>(input: R) -> Result<PathSet> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header = reader.headers().map_err(syntax_error)?.clone();
    let columns = Columns::from_header(&header)?;

    let mut paths = PathSet::new(AgeUnit::Steps);
    // Byte records skip the per-record UTF-8 check of the whole row; each used field is
    // checked on its own, which is most of the parsing time on large files.
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(syntax_error)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|field| field.trim_ascii().is_empty()) {
            continue;
        }
        let field = |index: usize| -> Result<&str> {
            let bytes = record.get(index).unwrap_or_default().trim_ascii();
            std::str::from_utf8(bytes).map_err(|_| Error::BadRow {
                line,
                message: "the row is not valid UTF-8; save the file as UTF-8".to_owned(),
            })
        };
        let number = |index: Option<usize>, name: &str| match index {
            Some(index) => parse_count(field(index)?, name, line),
            None => Ok(0.0),
        };
        let conversions = number(Some(columns.conversions), "total_conversions")?;
        let value = number(columns.value, "total_conversion_value")?;
        let nulls = number(columns.nulls, "total_null")?;
        if value > 0.0 && conversions == 0.0 {
            return Err(Error::BadRow {
                line,
                message: format!(
                    "`total_conversion_value` is {value} but `total_conversions` is 0; value \
                     belongs to conversions, so set the value to 0 or count the conversions"
                ),
            });
        }

        let raw_path = field(columns.path)?;
        let mut touches = Vec::new();
        for channel in raw_path.split('>').map(str::trim) {
            if channel.is_empty() {
                return Err(Error::BadRow {
                    line,
                    message: if raw_path.is_empty() {
                        "`path` is empty; give at least one channel, e.g. `Email`".to_owned()
                    } else {
                        format!(
                            "path `{raw_path}` has an empty channel; write channels joined by \
                         ` > `, e.g. `Organic Search > Email`"
                        )
                    },
                });
            }
            touches.push(paths.intern(channel));
        }
        paths.push(Path {
            touches,
            ages: Vec::new(),
            conversions,
            value,
            nulls,
        })?;
    }
    Ok(paths)
}

fn parse_count(text: &str, column: &str, line: u64) -> Result<f64> {
    if text.is_empty() {
        return Ok(0.0);
    }
    match text.parse::<f64>() {
        Ok(number) if number.is_finite() && number >= 0.0 => Ok(number),
        _ => Err(Error::BadRow {
            line,
            message: format!(
                "`{column}` is `{text}`; it must be a non-negative number such as `3` or `12.5`"
            ),
        }),
    }
}

fn syntax_error(error: csv::Error) -> Error {
    Error::CsvSyntax {
        line: error.position().map_or(0, |p| p.line()),
        message: error.to_string(),
    }
}
