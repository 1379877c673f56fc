//! The `warehouse` destination: events as rows of PostgreSQL tables in a schema the user
//! names, laid out as Segment's warehouses lay them out, so that the queries and dbt
//! models written for those run unchanged. Pure: an event in, rows out; the SQL that
//! creates, evolves and fills the tables is built here as text. The writing is
//! `crate::warehouse`'s.
//!
//! Layout (one schema per destination):
//! - every call has a row in its type's table: `tracks`, `identifies`, `pages`, `screens`,
//!   `groups`, `aliases`;
//! - a track also has a row in the table of its event, named after it (`Order Completed` →
//!   `order_completed`), with the event's properties as columns;
//! - an identify with a `userId` upserts the person's row in `users` (`id` = the userId,
//!   its traits as columns; a later identify's traits replace earlier values, a trait it
//!   does not carry keeps its value).
//!
//! Every row has Segment's common columns: `id` (the messageId: the primary key, so a
//! batch sent twice adds nothing), `anonymous_id`, `user_id`, `received_at`, `sent_at`,
//! `timestamp`, `original_timestamp`, `uuid_ts` (when the row was loaded) and the call's
//! `context` flattened (`context_page_url`, `context_library_name`, …). Properties and
//! traits are flattened the same way (`product.price` → `product_price`), names turned to
//! snake case (`productId` → `product_id`); a property whose name is a common column's is
//! left out (the common column wins). Arrays are kept as JSON text.
//!
//! Column types follow the first value seen (`bigint`, `double precision`, `boolean`,
//! `timestamptz` for RFC 3339 date-times, else `text`); a later value that does not fit
//! widens the column (`bigint` to `double precision`, anything to `text`) instead of
//! being dropped.

use super::{Input, Mapped};
use serde_json::{Map, Value};
use sightline_core::EventType;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Events per batch, each one transaction and one INSERT per table.
pub const MAX_EVENTS: u32 = 1000;
/// PostgreSQL truncates longer identifiers (NAMEDATALEN − 1): names are cut here first so
/// that what we ask for is what the database keeps.
pub const MAX_NAME_BYTES: usize = 63;
/// Columns a table may reach: PostgreSQL's limit is 1,600, and a table that wide is a
/// tracking plan gone wrong. Values for columns past it are left out, with a warning.
pub const MAX_COLUMNS: usize = 1500;

/// The tables of each call type, and `users`: a track's event table may not take one of
/// these names (`Users` → `_users`).
const CALL_TABLES: [&str; 7] = [
    "tracks",
    "identifies",
    "users",
    "pages",
    "screens",
    "groups",
    "aliases",
];

/// The columns every row of an event table has; properties and traits never overwrite
/// them.
const COMMON: [&str; 11] = [
    "id",
    "anonymous_id",
    "user_id",
    "received_at",
    "sent_at",
    "timestamp",
    "original_timestamp",
    "uuid_ts",
    "event",
    "event_text",
    "context",
];

/// A warehouse destination's settings. The destination's URL is the database's
/// (`postgres://user@host:5432/db`) and its credential the user's password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The schema the tables go in, created when missing (Segment names it after the
    /// source).
    pub schema: String,
}

impl Settings {
    pub(super) fn check(&self) -> Result<(), String> {
        let schema = &self.schema;
        let valid = !schema.is_empty()
            && schema.len() <= MAX_NAME_BYTES
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(format!(
                "schema {schema:?} is not a schema name Sightline writes to: use 1 to 63 lowercase letters, digits and underscores, starting with a letter (for example \"web_prod\")"
            ));
        }
        if schema.starts_with("pg_") || schema == "information_schema" {
            return Err(format!(
                "schema {schema:?} is PostgreSQL's own: name a schema of your data"
            ));
        }
        Ok(())
    }

    /// Every event is loaded as it is (after the destination's transform): its rows are
    /// made when its batch is written.
    pub(super) fn map(&self, input: &Input<'_>) -> Mapped {
        Mapped::Item {
            envelope: Value::Null,
            item: input.event.clone(),
        }
    }
}

/// How a warehouse connection is encrypted, by libpq's `sslmode` in the destination's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// `disable`: plain.
    Off,
    /// `prefer` (the default: TLS when the server offers it) and `require`: encrypted, the
    /// certificate not checked, as libpq does.
    Unverified,
    /// `verify-ca`: the certificate must chain to a root the system trusts.
    VerifyCa,
    /// `verify-full`: and name the URL's host.
    VerifyFull,
}

/// The URL tokio-postgres reads (it knows `sslmode` only up to `require`) and the TLS it
/// asks for; the error says what to fix.
pub fn connection(url: &str) -> Result<(String, Tls), String> {
    let mut parsed =
        reqwest::Url::parse(url).map_err(|e| format!("the warehouse URL is not a URL: {e}"))?;
    let mode = parsed
        .query_pairs()
        .find(|(key, _)| key == "sslmode")
        .map(|(_, value)| value.into_owned());
    let (tls, kept) = match mode.as_deref() {
        None | Some("prefer") => (Tls::Unverified, "prefer"),
        Some("disable") => (Tls::Off, "disable"),
        Some("require") => (Tls::Unverified, "require"),
        Some("verify-ca") => (Tls::VerifyCa, "require"),
        Some("verify-full") => (Tls::VerifyFull, "require"),
        Some(other) => {
            return Err(format!(
                "sslmode={other} is not one Sightline knows: use disable, prefer, require, verify-ca or verify-full"
            ))
        }
    };
    let others: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != "sslmode")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    parsed
        .query_pairs_mut()
        .clear()
        .extend_pairs(others)
        .append_pair("sslmode", kept);
    Ok((parsed.into(), tls))
}

/// A column's type, from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnType {
    Boolean,
    BigInt,
    Double,
    Timestamp,
    Text,
}

impl ColumnType {
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Boolean => "boolean",
            ColumnType::BigInt => "bigint",
            ColumnType::Double => "double precision",
            ColumnType::Timestamp => "timestamptz",
            ColumnType::Text => "text",
        }
    }

    /// A column's type as `information_schema.columns.data_type` names it. A column the
    /// user changed to a type of their own is written as its nearest kind (PostgreSQL
    /// casts the text we send).
    pub fn of_sql(data_type: &str) -> ColumnType {
        match data_type {
            "boolean" => ColumnType::Boolean,
            "smallint" | "integer" | "bigint" => ColumnType::BigInt,
            "real" | "double precision" | "numeric" => ColumnType::Double,
            "timestamptz" | "timestamp with time zone" | "timestamp without time zone" | "date" => {
                ColumnType::Timestamp
            }
            _ => ColumnType::Text,
        }
    }

    /// The narrowest type that holds values of both: whole numbers go in a column of
    /// fractions, anything else that differs only as text.
    pub fn widen(self, other: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (BigInt, Double) | (Double, BigInt) => Double,
            _ => Text,
        }
    }
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Bool(bool),
    Int(i64),
    Float(f64),
    /// RFC 3339, as PostgreSQL parses it.
    Time(String),
    Text(String),
}

impl Cell {
    pub fn column_type(&self) -> ColumnType {
        match self {
            Cell::Bool(_) => ColumnType::Boolean,
            Cell::Int(_) => ColumnType::BigInt,
            Cell::Float(_) => ColumnType::Double,
            Cell::Time(_) => ColumnType::Timestamp,
            Cell::Text(_) => ColumnType::Text,
        }
    }

    /// The text PostgreSQL reads as this value, in a column of its type or a wider one.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Bool(b) => b.to_string(),
            Cell::Int(n) => n.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Time(t) | Cell::Text(t) => t.clone(),
        }
    }

    fn of(value: &Value) -> Option<Cell> {
        Some(match value {
            Value::Null | Value::Object(_) => return None,
            Value::Bool(b) => Cell::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Cell::Int(i),
                None => Cell::Float(n.as_f64()?),
            },
            Value::String(s) => match date_time(s) {
                Some(t) => Cell::Time(t),
                // PostgreSQL's text cannot hold NUL, which JSON can: it becomes U+FFFD
                // rather than failing the event.
                None if s.contains('\0') => Cell::Text(s.replace('\0', "\u{FFFD}")),
                None => Cell::Text(s.clone()),
            },
            // As JSON text, where a NUL is the escape `\u0000`.
            Value::Array(_) => Cell::Text(value.to_string()),
        })
    }
}

/// An RFC 3339 date-time (`2025-11-24T16:00:00.000Z`), normalised; dates alone and other
/// forms stay text.
fn date_time(text: &str) -> Option<String> {
    if text.len() < 20 || text.len() > 40 || text.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(parsed.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// What a row does when its table already holds its `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// An event loaded again: the first load stands.
    Keep,
    /// A person's latest traits: the values this row carries replace the stored ones, if
    /// it was received no earlier than the stored row.
    Merge,
}

/// One row of one table; `columns` are unique and hold `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: String,
    pub on_conflict: OnConflict,
    pub columns: Vec<(String, Cell)>,
}

impl Row {
    fn new(table: String, on_conflict: OnConflict) -> Row {
        Row {
            table,
            on_conflict,
            columns: Vec::new(),
        }
    }

    /// Adds a column unless the row has one of that name already (the first wins).
    fn put(&mut self, name: String, cell: Cell) {
        if !name.is_empty() && !self.columns.iter().any(|(n, _)| *n == name) {
            self.columns.push((name, cell));
        }
    }

    /// Adds `object`'s fields flattened (`a.b` → `a_b`) under `prefix`, leaving out names
    /// in `reserved`.
    fn flatten(&mut self, prefix: &str, object: &Map<String, Value>, reserved: &[&str]) {
        for (key, value) in object {
            let name = column_name(&join(prefix, key));
            if name.is_empty() || reserved.contains(&name.as_str()) {
                continue;
            }
            match value {
                Value::Object(inner) => self.flatten(&name, inner, reserved),
                other => {
                    if let Some(cell) = Cell::of(other) {
                        self.put(name, cell);
                    }
                }
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Cell> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}_{key}")
    }
}

/// A name as a column or table name, as Segment's warehouses make them: snake case
/// (`productId`, `Product ID` → `product_id`), ASCII letters, digits and underscores,
/// not starting with a digit, at most 63 bytes. Empty when nothing is left.
pub fn column_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut previous: Option<char> = None;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            let lower_before =
                previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
            if c.is_ascii_uppercase() && lower_before {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        previous = Some(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out.truncate(MAX_NAME_BYTES);
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// The table of a track call's event: its name in snake case, `_` before a name that is
/// a call type's table. `None` for a name with no letter or digit.
pub fn event_table(event: &str) -> Option<String> {
    let name = column_name(event);
    if name.is_empty() {
        return None;
    }
    if CALL_TABLES.contains(&name.as_str()) {
        let mut prefixed = format!("_{name}");
        prefixed.truncate(MAX_NAME_BYTES);
        return Some(prefixed);
    }
    Some(name)
}

/// The rows one event (as stored, after the destination's transform) becomes;
/// `loaded_at` is the `uuid_ts` of them all (RFC 3339).
pub fn rows(event_type: EventType, event: &Value, message_id: &str, loaded_at: &str) -> Vec<Row> {
    let empty = Map::new();
    let object = event.as_object().unwrap_or(&empty);
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let common = |table: &str| {
        let mut row = Row::new(table.to_owned(), OnConflict::Keep);
        row.put("id".into(), Cell::Text(message_id.to_owned()));
        for (column, key) in [("anonymous_id", "anonymousId"), ("user_id", "userId")] {
            if let Some(cell) = object.get(key).and_then(Cell::of) {
                row.put(column.into(), Cell::Text(cell.to_text()));
            }
        }
        for (column, key) in [
            ("received_at", "receivedAt"),
            ("sent_at", "sentAt"),
            ("timestamp", "timestamp"),
            ("original_timestamp", "originalTimestamp"),
        ] {
            if let Some(cell) = object.get(key).and_then(Cell::of) {
                row.put(column.into(), cell);
            }
        }
        row.put("uuid_ts".into(), Cell::Time(loaded_at.to_owned()));
        if let Some(Value::Object(context)) = object.get("context") {
            row.flatten("context", context, &[]);
        }
        row
    };
    let fields = |key: &str| match object.get(key) {
        Some(Value::Object(fields)) => fields,
        _ => &empty,
    };
    match event_type {
        EventType::Track => {
            let name = text("event").unwrap_or_default();
            let mut tracks = common("tracks");
            if let Some(slug) = event_table(&name) {
                tracks.put("event".into(), Cell::Text(slug));
            }
            tracks.put("event_text".into(), Cell::Text(name.clone()));
            let mut rows = vec![tracks.clone()];
            if let Some(table) = event_table(&name) {
                let mut own = tracks;
                own.table = table;
                own.flatten("", fields("properties"), &COMMON);
                rows.push(own);
            }
            rows
        }
        EventType::Identify => {
            let mut identifies = common("identifies");
            identifies.flatten("", fields("traits"), &COMMON);
            let mut rows = vec![identifies];
            if let Some(user_id) = object.get("userId").and_then(Cell::of) {
                let mut user = Row::new("users".into(), OnConflict::Merge);
                user.put("id".into(), Cell::Text(user_id.to_text()));
                if let Some(received) = object.get("receivedAt").and_then(Cell::of) {
                    user.put("received_at".into(), received);
                }
                user.put("uuid_ts".into(), Cell::Time(loaded_at.to_owned()));
                user.flatten("", fields("traits"), &COMMON);
                rows.push(user);
            }
            rows
        }
        EventType::Page | EventType::Screen => {
            let table = if event_type == EventType::Page {
                "pages"
            } else {
                "screens"
            };
            let mut row = common(table);
            if let Some(name) = text("name") {
                row.put("name".into(), Cell::Text(name));
            }
            if let Some(category) = text("category") {
                row.put("category".into(), Cell::Text(category));
            }
            row.flatten("", fields("properties"), &COMMON);
            vec![row]
        }
        EventType::Group => {
            let mut row = common("groups");
            if let Some(group) = object.get("groupId").and_then(Cell::of) {
                row.put("group_id".into(), Cell::Text(group.to_text()));
            }
            row.flatten("", fields("traits"), &COMMON);
            vec![row]
        }
        EventType::Alias => {
            let mut row = common("aliases");
            if let Some(previous) = object.get("previousId").and_then(Cell::of) {
                row.put("previous_id".into(), Cell::Text(previous.to_text()));
            }
            vec![row]
        }
    }
}

/// A batch's rows gathered per table, in the order tables first appear. A person's rows
/// in `users` are merged into one per `id` (later values over earlier ones), since one
/// statement may not update a row twice.
pub fn by_table(rows: Vec<Row>) -> Vec<(String, Vec<Row>)> {
    let mut tables: Vec<(String, Vec<Row>)> = Vec::new();
    for row in rows {
        let index = match tables.iter().position(|(t, _)| *t == row.table) {
            Some(index) => index,
            None => {
                tables.push((row.table.clone(), Vec::new()));
                tables.len() - 1
            }
        };
        let rows = &mut tables[index].1;
        let same = (row.on_conflict == OnConflict::Merge)
            .then(|| rows.iter().position(|r| r.get("id") == row.get("id")))
            .flatten();
        match same {
            Some(earlier) => {
                let earlier = &mut rows[earlier];
                for (name, cell) in row.columns {
                    match earlier.columns.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, old)) => *old = cell,
                        None => earlier.columns.push((name, cell)),
                    }
                }
            }
            None => rows.push(row),
        }
    }
    tables
}

/// A table's columns as the warehouse holds them.
pub type Columns = BTreeMap<String, ColumnType>;

/// What a table needs before `rows` can go in: columns to add and columns to widen,
/// each with its type, given the columns it has (`None`: the table does not exist yet, and
/// `add` is what it is created with). Columns past [`MAX_COLUMNS`] are not added; their
/// names are in `dropped`.
#[derive(Debug, Default, PartialEq)]
pub struct Change {
    pub add: Vec<(String, ColumnType)>,
    pub widen: Vec<(String, ColumnType)>,
    pub dropped: Vec<String>,
}

pub fn change(existing: Option<&Columns>, rows: &[Row]) -> Change {
    let empty = Columns::new();
    let existing = existing.unwrap_or(&empty);
    let mut wanted: Columns = Columns::new();
    for row in rows {
        for (name, cell) in &row.columns {
            let kind = cell.column_type();
            wanted
                .entry(name.clone())
                .and_modify(|t| *t = t.widen(kind))
                .or_insert(kind);
        }
    }
    let mut change = Change::default();
    let mut count = existing.len();
    // `id` first, then in name order: a created table reads well, and a change is the
    // same whichever event came first.
    let mut names: Vec<&String> = wanted.keys().collect();
    names.sort_by_key(|n| (n.as_str() != "id", n.as_str()));
    for name in names {
        let kind = wanted[name];
        match existing.get(name) {
            Some(&has) => {
                let wider = has.widen(kind);
                if wider != has {
                    change.widen.push((name.clone(), wider));
                }
            }
            None if count < MAX_COLUMNS => {
                count += 1;
                change.add.push((name.clone(), kind));
            }
            None => change.dropped.push(name.clone()),
        }
    }
    change
}

/// `"schema"."table"`: names here are made by [`column_name`] or checked by
/// [`Settings::check`], so quoting is all they need.
fn qualified(schema: &str, table: &str) -> String {
    format!("\"{schema}\".\"{table}\"")
}

pub fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")
}

/// The statements that make `change` to a table, created when `exists` is false. (Should
/// another node create it first, with fewer columns, the insert fails on a missing column
/// and is retried after the columns are read again.)
pub fn ddl(schema: &str, table: &str, exists: bool, change: &Change) -> Vec<String> {
    let target = qualified(schema, table);
    let added = change.add.iter().filter(|(name, _)| name != "id");
    let mut statements = Vec::new();
    if exists {
        for (name, kind) in added {
            statements.push(format!(
                "ALTER TABLE {target} ADD COLUMN IF NOT EXISTS \"{name}\" {}",
                kind.sql()
            ));
        }
    } else {
        let mut create = format!("CREATE TABLE IF NOT EXISTS {target} (\"id\" text PRIMARY KEY");
        for (name, kind) in added {
            let _ = write!(create, ", \"{name}\" {}", kind.sql());
        }
        create.push(')');
        statements.push(create);
    }
    for (name, kind) in &change.widen {
        statements.push(format!(
            "ALTER TABLE {target} ALTER COLUMN \"{name}\" TYPE {kind} USING \"{name}\"::{kind}",
            kind = kind.sql()
        ));
    }
    statements
}

/// One statement and its parameters (every value as text, cast by the statement).
#[derive(Debug, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Option<String>>,
}

/// The INSERT of a table's rows: one text array per column, unnested into rows and cast
/// to each column's type, so that a statement is as short for 1,000 rows as for one and
/// its parameters travel as arrays.
#[derive(Debug, PartialEq)]
pub struct Insert {
    pub sql: String,
    /// A column's values, row by row (`None`: the row has no value for it).
    pub columns: Vec<Vec<Option<String>>>,
}

/// The INSERT that writes `rows` into a table whose columns are `columns` (after its
/// change); `None` when there is nothing to write. Values for columns the table lacks
/// (past [`MAX_COLUMNS`]) are left out.
pub fn insert(schema: &str, table: &str, columns: &Columns, rows: &[Row]) -> Option<Insert> {
    let mut names: Vec<&str> = Vec::new();
    for row in rows {
        for (name, _) in &row.columns {
            if columns.contains_key(name) && !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    if names.is_empty() || rows.is_empty() {
        return None;
    }
    let target = qualified(schema, table);
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let merge = rows[0].on_conflict == OnConflict::Merge;
    let conflict = if merge {
        let sets: Vec<String> = names
            .iter()
            .filter(|n| **n != "id")
            .map(|n| format!("\"{n}\" = COALESCE(EXCLUDED.\"{n}\", {target}.\"{n}\")"))
            .collect();
        if sets.is_empty() {
            " ON CONFLICT (\"id\") DO NOTHING".to_owned()
        } else {
            let newer = if columns.contains_key("received_at") {
                format!(
                    " WHERE {target}.\"received_at\" IS NULL OR EXCLUDED.\"received_at\" IS NULL OR {target}.\"received_at\" <= EXCLUDED.\"received_at\""
                )
            } else {
                String::new()
            };
            format!(
                " ON CONFLICT (\"id\") DO UPDATE SET {}{newer}",
                sets.join(", ")
            )
        }
    } else {
        " ON CONFLICT (\"id\") DO NOTHING".to_owned()
    };
    let casts: Vec<String> = names
        .iter()
        .map(|n| match columns[*n] {
            ColumnType::Text => format!("u.\"{n}\""),
            kind => format!("u.\"{n}\"::{}", kind.sql()),
        })
        .collect();
    let arrays: Vec<String> = (1..=names.len()).map(|i| format!("${i}::text[]")).collect();
    let sql = format!(
        "INSERT INTO {target} ({}) SELECT {} FROM unnest({}) AS u({}){conflict}",
        list.join(", "),
        casts.join(", "),
        arrays.join(", "),
        list.join(", ")
    );
    let columns = names
        .iter()
        .map(|name| {
            rows.iter()
                .map(|row| row.get(name).map(Cell::to_text))
                .collect()
        })
        .collect();
    Some(Insert { sql, columns })
}

/// The columns that name a person, and the identifier types whose values they hold: a
/// person's rows are those where any of them holds one of theirs.
const PERSON_COLUMNS: [(&str, &[&str]); 6] = [
    ("user_id", &["user_id"]),
    ("anonymous_id", &["anonymous_id"]),
    ("previous_id", &["user_id", "anonymous_id"]),
    ("email", &["email"]),
    ("context_traits_email", &["email"]),
    ("context_traits_user_id", &["user_id"]),
];

/// The DELETEs that remove a person from a schema's tables (`tables`, as the warehouse
/// holds them), one per table that has a column naming them: `identifiers` are the
/// person's `(type, value)` pairs, as an erasure lists them (emails normalised, so an
/// email column is compared trimmed and lowercased). In `users` the row's `id` is the
/// userId.
pub fn deletes(
    schema: &str,
    tables: &BTreeMap<String, Columns>,
    identifiers: &[(String, String)],
) -> Vec<Statement> {
    let values = |types: &[&str]| -> Vec<String> {
        identifiers
            .iter()
            .filter(|(t, _)| types.contains(&t.as_str()))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let mut statements = Vec::new();
    for (table, columns) in tables {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut person_columns: Vec<(&str, &[&str])> = PERSON_COLUMNS.to_vec();
        if table == "users" {
            person_columns.push(("id", &["user_id"]));
        }
        for (column, types) in person_columns {
            let wanted = values(types);
            if wanted.is_empty() || !columns.contains_key(column) {
                continue;
            }
            params.push(Some(
                serde_json::to_string(&wanted).expect("strings serialize"),
            ));
            let value = if types == ["email"] {
                format!("lower(btrim(\"{column}\"::text))")
            } else {
                format!("\"{column}\"::text")
            };
            conditions.push(format!(
                "{value} IN (SELECT jsonb_array_elements_text(${}::text::jsonb))",
                params.len()
            ));
        }
        if !conditions.is_empty() {
            statements.push(Statement {
                sql: format!(
                    "DELETE FROM {} WHERE {}",
                    qualified(schema, table),
                    conditions.join(" OR ")
                ),
                params,
            });
        }
    }
    statements
}

#[cfg(test)]
mod tests;
