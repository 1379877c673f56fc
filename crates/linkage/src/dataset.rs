//! Records loaded from CSV into a compact column-major store.

use rustc_hash::FxHashSet as HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::normalize::push_normalized;
use crate::Error;

/// A row that could not be loaded, with the line number it started on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    pub line: u64,
    pub reason: String,
}

/// A table of records: an id per record and normalised values per column.
///
/// Values live row by row in one string arena, so a million records cost a few
/// allocations rather than one per cell, and comparing two records touches two
/// small regions of memory instead of one per column.
#[derive(Debug, Clone)]
pub struct Dataset {
    id_column: String,
    columns: Vec<String>,
    /// Shared with the results built from this dataset instead of copied.
    ids: Arc<[String]>,
    text: String,
    /// End offset in `text` of cell `row * columns.len() + column`; a cell whose
    /// end equals its start is null.
    ends: Vec<u32>,
    skipped: Vec<SkippedRow>,
}

impl Dataset {
    /// Loads a CSV file whose header names the columns; `id_column` names the record id.
    pub fn from_csv_path(path: impl AsRef<Path>, id_column: &str) -> Result<Self, Error> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|error| Error::Io {
            path: path.to_owned(),
            error,
        })?;
        Self::from_csv_reader(std::io::BufReader::with_capacity(1 << 16, file), id_column)
    }

    /// Loads CSV from any reader. Headers and values are trimmed (FEBRL puts a space
    /// after each comma). Rows with the wrong number of fields, invalid UTF-8, an empty
    /// or duplicate id are skipped and listed in [`Dataset::skipped_rows`].
    pub fn from_csv_reader(reader: impl Read, id_column: &str) -> Result<Self, Error> {
        let mut csv = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(reader);
        let header = csv.byte_headers().map_err(csv_error)?.clone();
        if header.is_empty() {
            return Err(Error::EmptyHeader);
        }
        let columns: Vec<String> = header
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim_start_matches('\u{feff}')
                    .to_owned()
            })
            .collect();
        let mut builder = Builder::new(columns, id_column)?;
        let mut record = csv::ByteRecord::new();
        loop {
            match csv.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    let fields: Result<Vec<&str>, _> =
                        record.iter().map(std::str::from_utf8).collect();
                    match fields {
                        Ok(fields) => builder.push(line, &fields),
                        Err(_) => builder.skip(line, "not valid UTF-8".into()),
                    }
                }
                Err(err) => {
                    let line = err.position().map_or(0, |p| p.line());
                    if err.is_io_error() {
                        return Err(csv_error(err));
                    }
                    builder.skip(line, err.to_string());
                }
            }
        }
        Ok(builder.finish())
    }

    /// Builds a dataset from in-memory rows (each row holds one value per column).
    /// Rows are numbered from 1 in [`Dataset::skipped_rows`].
    pub fn from_rows<R, V>(
        columns: Vec<String>,
        id_column: &str,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Self, Error>
    where
        R: AsRef<[V]>,
        V: AsRef<str>,
    {
        let mut builder = Builder::new(columns, id_column)?;
        for (index, row) in rows.into_iter().enumerate() {
            let fields: Vec<&str> = row.as_ref().iter().map(AsRef::as_ref).collect();
            builder.push(index as u64 + 1, &fields);
        }
        Ok(builder.finish())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn id_column(&self) -> &str {
        &self.id_column
    }

    /// All column names in file order, the id column included.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn id(&self, row: usize) -> &str {
        &self.ids[row]
    }

    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    pub(crate) fn shared_ids(&self) -> Arc<[String]> {
        Arc::clone(&self.ids)
    }

    /// Position of a column by exact name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The normalised value of a cell; `None` when it is null (empty).
    pub fn value(&self, row: usize, column: usize) -> Option<&str> {
        let cell = row * self.columns.len() + column;
        let start = if cell == 0 {
            0
        } else {
            self.ends[cell - 1] as usize
        };
        let end = self.ends[cell] as usize;
        (end > start).then(|| &self.text[start..end])
    }

    /// Rows that were skipped while loading, with their line numbers.
    pub fn skipped_rows(&self) -> &[SkippedRow] {
        &self.skipped
    }
}

fn csv_error(err: csv::Error) -> Error {
    Error::Csv {
        line: err.position().map_or(0, |p| p.line()),
        message: err.to_string(),
    }
}

struct Builder {
    dataset: Dataset,
    id_index: usize,
    ids: Vec<String>,
    seen_ids: HashSet<String>,
}

impl Builder {
    fn new(columns: Vec<String>, id_column: &str) -> Result<Self, Error> {
        let id_index =
            columns
                .iter()
                .position(|c| c == id_column)
                .ok_or_else(|| Error::MissingIdColumn {
                    wanted: id_column.to_owned(),
                    found: columns.clone(),
                })?;
        Ok(Self {
            dataset: Dataset {
                id_column: id_column.to_owned(),
                columns,
                ids: Arc::from([]),
                text: String::new(),
                ends: Vec::new(),
                skipped: Vec::new(),
            },
            id_index,
            ids: Vec::new(),
            seen_ids: HashSet::default(),
        })
    }

    fn skip(&mut self, line: u64, reason: String) {
        self.dataset.skipped.push(SkippedRow { line, reason });
    }

    fn push(&mut self, line: u64, fields: &[&str]) {
        let expected = self.dataset.columns.len();
        if fields.len() != expected {
            return self.skip(
                line,
                format!("expected {expected} fields, found {}", fields.len()),
            );
        }
        let id = fields[self.id_index].trim();
        if id.is_empty() {
            return self.skip(line, format!("empty id in `{}`", self.dataset.id_column));
        }
        if !self.seen_ids.insert(id.to_owned()) {
            return self.skip(line, format!("duplicate id `{id}`"));
        }
        let text = &mut self.dataset.text;
        let ends = &mut self.dataset.ends;
        let start = (text.len(), ends.len());
        for raw in fields {
            push_normalized(raw, text);
            match u32::try_from(text.len()) {
                Ok(end) => ends.push(end),
                Err(_) => {
                    // Offsets are 32-bit to halve their memory; the row does not fit.
                    text.truncate(start.0);
                    ends.truncate(start.1);
                    return self.skip(line, "dataset text exceeds 4 GiB; split the file".into());
                }
            }
        }
        self.ids.push(id.to_owned());
    }

    fn finish(mut self) -> Dataset {
        self.dataset.ids = self.ids.into();
        self.dataset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_trimmed_normalised_values() {
        let csv = "rec_id, given_name, surname\nr1, Mary  Ann , SMITH\nr2, , jones\n";
        let ds = Dataset::from_csv_reader(csv.as_bytes(), "rec_id").unwrap();
        assert_eq!(ds.columns(), ["rec_id", "given_name", "surname"]);
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.value(0, 1), Some("mary ann"));
        assert_eq!(ds.value(0, 2), Some("smith"));
        assert_eq!(ds.value(1, 1), None);
        assert_eq!(ds.id(1), "r2");
    }

    #[test]
    fn missing_id_column_names_the_columns_found() {
        let err = Dataset::from_csv_reader("a,b\n1,2\n".as_bytes(), "id").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`id` not found"), "{message}");
        assert!(message.contains("a, b"), "{message}");
    }

    #[test]
    fn bad_rows_are_skipped_with_line_numbers_and_good_rows_kept() {
        let csv = b"id,name\n1,ann\n2,bob,extra\n,nobody\n1,again\n3,\xff\n4,dan\n";
        let ds = Dataset::from_csv_reader(&csv[..], "id").unwrap();
        assert_eq!(ds.ids(), ["1", "4"]);
        let lines: Vec<u64> = ds.skipped_rows().iter().map(|s| s.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert!(ds.skipped_rows()[0].reason.contains("expected 2 fields"));
        assert!(ds.skipped_rows()[2].reason.contains("duplicate id"));
    }
}
