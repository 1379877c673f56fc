//! Which columns are compared and how, and which blocking rules generate pairs.
//!
//! Defaults come from recognising common column names; a TOML mapping file
//! overrides them (format documented on [`Mapping::from_toml_str`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::compare::Comparison;
use crate::normalize::column_key;
use crate::Error;

/// How one column is compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSpec {
    pub column: String,
    #[serde(flatten)]
    pub comparison: Comparison,
    /// Adjust exact-match weights by how common the value is ("smith" counts less).
    pub term_frequency: bool,
}

/// A function applied to a column value to form a blocking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyTransform {
    /// The normalised value itself.
    Value,
    /// The first four digits of a date (its year).
    Year,
    /// The American Soundex code of the value.
    Soundex,
    /// The first N characters.
    Prefix(usize),
}

/// One component of a blocking rule: a column and a transform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockingKey {
    pub column: String,
    pub transform: KeyTransform,
}

impl BlockingKey {
    fn value(column: &str) -> Self {
        Self {
            column: column.to_owned(),
            transform: KeyTransform::Value,
        }
    }

    fn with(column: &str, transform: KeyTransform) -> Self {
        Self {
            column: column.to_owned(),
            transform,
        }
    }

    /// Parses `column`, `year(column)`, `soundex(column)` or `prefix(column, N)`.
    fn parse(text: &str, key: &str) -> Result<Self, Error> {
        let bad = |message: String| Error::Mapping {
            key: key.to_owned(),
            message,
        };
        let text = text.trim();
        let Some((function, rest)) = text.split_once('(') else {
            return Ok(Self::value(text));
        };
        let args = rest
            .strip_suffix(')')
            .ok_or_else(|| bad(format!("`{text}` lacks a closing parenthesis")))?;
        let mut args = args.split(',').map(str::trim);
        let column = args.next().unwrap_or_default();
        if column.is_empty() {
            return Err(bad(format!("`{text}` names no column")));
        }
        let transform = match function.trim() {
            "year" => KeyTransform::Year,
            "soundex" => KeyTransform::Soundex,
            "prefix" => {
                let n = args
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        bad(format!(
                            "`{text}`: prefix needs a length, e.g. prefix({column}, 3)"
                        ))
                    })?;
                KeyTransform::Prefix(n)
            }
            other => {
                return Err(bad(format!(
                "unknown key function `{other}`; allowed: year(col), soundex(col), prefix(col, N)"
            )))
            }
        };
        Ok(Self::with(column, transform))
    }
}

impl fmt::Display for BlockingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transform {
            KeyTransform::Value => write!(f, "{}", self.column),
            KeyTransform::Year => write!(f, "year({})", self.column),
            KeyTransform::Soundex => write!(f, "soundex({})", self.column),
            KeyTransform::Prefix(n) => write!(f, "prefix({}, {n})", self.column),
        }
    }
}

/// Pairs of records whose keys are all equal (and not null) are compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockingRule {
    pub keys: Vec<BlockingKey>,
}

impl fmt::Display for BlockingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, key) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(" & ")?;
            }
            write!(f, "{key}")?;
        }
        Ok(())
    }
}

/// The fields to compare and the blocking rules, resolved against actual columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedMapping {
    pub fields: Vec<FieldSpec>,
    pub blocking: Vec<BlockingRule>,
}

/// What a column name is recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    GivenName,
    Surname,
    BirthDate,
    Postcode,
    StreetNumber,
    Address1,
    Address2,
    City,
    State,
    Email,
    Phone,
    NationalId,
    ExternalId,
    Gender,
    Age,
}

const RECOGNISED: &[(Role, &[&str])] = &[
    (
        Role::GivenName,
        &[
            "given_name",
            "first_name",
            "firstname",
            "fname",
            "forename",
            "givenname",
        ],
    ),
    (
        Role::Surname,
        &[
            "surname",
            "last_name",
            "lastname",
            "lname",
            "family_name",
            "familyname",
        ],
    ),
    (
        Role::BirthDate,
        &[
            "date_of_birth",
            "dob",
            "birth_date",
            "birthdate",
            "birthday",
        ],
    ),
    (
        Role::Postcode,
        &[
            "postcode",
            "post_code",
            "zip",
            "zipcode",
            "zip_code",
            "postal_code",
            "postalcode",
        ],
    ),
    (
        Role::StreetNumber,
        &["street_number", "house_number", "street_no"],
    ),
    (
        Role::Address1,
        &[
            "address_1",
            "address1",
            "address",
            "street",
            "address_line_1",
            "street_address",
        ],
    ),
    (Role::Address2, &["address_2", "address2", "address_line_2"]),
    (Role::City, &["suburb", "city", "town", "locality"]),
    (Role::State, &["state", "region", "province", "county"]),
    (Role::Email, &["email", "email_address", "e_mail"]),
    (
        Role::Phone,
        &["phone", "phone_number", "telephone", "mobile", "tel"],
    ),
    (
        Role::NationalId,
        &[
            "soc_sec_id",
            "ssn",
            "social_security_number",
            "national_id",
            "nin",
        ],
    ),
    (
        Role::ExternalId,
        &[
            "crm_id",
            "external_id",
            "customer_id",
            "account_id",
            "member_id",
        ],
    ),
    (Role::Gender, &["gender", "sex"]),
    (Role::Age, &["age"]),
];

fn role_of(column: &str) -> Option<Role> {
    let key = column_key(column);
    RECOGNISED
        .iter()
        .find(|(_, names)| names.contains(&key.as_str()))
        .map(|(role, _)| *role)
}

fn jaro_winkler(thresholds: &[f64]) -> Comparison {
    Comparison::JaroWinkler {
        thresholds: thresholds.to_vec(),
    }
}

fn levenshtein(thresholds: &[u32]) -> Comparison {
    Comparison::Levenshtein {
        thresholds: thresholds.to_vec(),
    }
}

/// Default comparison and term-frequency setting for a recognised role.
fn default_comparison(role: Role) -> (Comparison, bool) {
    match role {
        Role::GivenName | Role::Surname => (jaro_winkler(&[0.92, 0.88, 0.7]), true),
        Role::BirthDate => (Comparison::Date, false),
        Role::Postcode | Role::StreetNumber => (levenshtein(&[1]), false),
        Role::Address1 | Role::Address2 => (jaro_winkler(&[0.9, 0.8]), false),
        Role::City => (jaro_winkler(&[0.92, 0.8]), true),
        Role::State | Role::Gender | Role::ExternalId => (Comparison::Exact, false),
        Role::Email | Role::Phone | Role::NationalId => (levenshtein(&[1, 2]), false),
        Role::Age => (
            Comparison::Numeric {
                thresholds: vec![1.0, 5.0],
            },
            false,
        ),
    }
}

/// Default blocking rules for person data, kept when all their columns exist.
fn default_blocking(columns_by_role: &BTreeMap<u8, String>) -> Vec<BlockingRule> {
    use KeyTransform::{Soundex, Value, Year};
    let templates: &[&[(Role, KeyTransform)]] = &[
        &[(Role::Postcode, Value)],
        &[(Role::Surname, Value), (Role::BirthDate, Year)],
        &[(Role::GivenName, Value), (Role::Surname, Value)],
        &[(Role::BirthDate, Value)],
        &[(Role::NationalId, Value)],
        &[(Role::Surname, Soundex), (Role::GivenName, Soundex)],
        &[(Role::Email, Value)],
        &[(Role::Phone, Value)],
        &[(Role::ExternalId, Value)],
    ];
    templates
        .iter()
        .filter_map(|template| {
            let keys = template
                .iter()
                .map(|(role, transform)| {
                    columns_by_role
                        .get(&(*role as u8))
                        .map(|column| BlockingKey::with(column, *transform))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(BlockingRule { keys })
        })
        .collect()
}

/// User overrides on top of (or instead of) the recognised defaults.
///
/// The TOML format:
///
/// ```toml
/// # Recognise common column names (given_name, surname, dob, postcode, email, ...).
/// # Default true; false compares only the [fields] listed here.
/// recognise_columns = true
///
/// # One table per column, by its exact header name.
/// [fields.given_name]
/// kind = "jaro_winkler"      # exact | jaro_winkler | levenshtein | date | numeric | ignore
/// thresholds = [0.92, 0.88]  # jaro_winkler: similarity >=, strictest first
/// term_frequency = true      # common values ("smith") weigh less on exact matches
///
/// [fields.postcode]
/// kind = "levenshtein"
/// thresholds = [1, 2]        # edit distance <=, strictest first
///
/// [fields.age]
/// kind = "numeric"
/// thresholds = [1, 5]        # absolute difference <=, strictest first
///
/// [fields.address_2]
/// kind = "ignore"            # do not compare this column
///
/// # Blocking rules replace the defaults when present. A pair is compared when any
/// # rule has all its keys equal; keys are `col`, `year(col)`, `soundex(col)`,
/// # `prefix(col, N)`.
/// [[blocking]]
/// keys = ["surname", "year(date_of_birth)"]
///
/// [[blocking]]
/// keys = ["postcode"]
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    recognise_columns: bool,
    fields: BTreeMap<String, Option<FieldOverride>>,
    blocking: Option<Vec<BlockingRule>>,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            recognise_columns: true,
            fields: BTreeMap::new(),
            blocking: None,
        }
    }
}

/// A column's comparison from the mapping file; `None` in the map means "ignore".
#[derive(Debug, Clone, PartialEq)]
struct FieldOverride {
    comparison: Comparison,
    term_frequency: bool,
}

const FIELD_KINDS: &str = "exact, jaro_winkler, levenshtein, date, numeric, ignore";

impl Mapping {
    /// Parses a mapping file; see the type's documentation for the format.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        let table: toml::Table = toml::from_str(text).map_err(|err| Error::Mapping {
            key: "(file)".into(),
            message: err.to_string(),
        })?;
        let mut mapping = Mapping::default();
        for (key, value) in &table {
            match key.as_str() {
                "recognise_columns" | "recognize_columns" => {
                    mapping.recognise_columns = value.as_bool().ok_or_else(|| Error::Mapping {
                        key: key.clone(),
                        message: "expected true or false".into(),
                    })?;
                }
                "fields" => {
                    let fields = value.as_table().ok_or_else(|| Error::Mapping {
                        key: "fields".into(),
                        message: "expected tables like [fields.surname]".into(),
                    })?;
                    for (column, spec) in fields {
                        let parsed = parse_field(column, spec)?;
                        mapping.fields.insert(column.clone(), parsed);
                    }
                }
                "blocking" => mapping.blocking = Some(parse_blocking(value)?),
                other => {
                    return Err(Error::Mapping {
                        key: other.to_owned(),
                        message: "unknown key; allowed: recognise_columns, fields, blocking".into(),
                    })
                }
            }
        }
        Ok(mapping)
    }

    /// Compares `column` as given (builder-style, for programmatic use).
    pub fn with_field(
        mut self,
        column: &str,
        comparison: Comparison,
        term_frequency: bool,
    ) -> Self {
        self.fields.insert(
            column.to_owned(),
            Some(FieldOverride {
                comparison,
                term_frequency,
            }),
        );
        self
    }

    /// Replaces the blocking rules (builder-style, for programmatic use).
    pub fn with_blocking(mut self, rules: Vec<BlockingRule>) -> Self {
        self.blocking = Some(rules);
        self
    }

    /// Resolves fields and blocking rules against the columns available in the data
    /// (for linking two files, the columns both have). The id column is never a field.
    pub fn resolve(&self, columns: &[String], id_column: &str) -> Result<ResolvedMapping, Error> {
        let missing = |key: String, column: &str| Error::Mapping {
            key,
            message: format!(
                "column `{column}` is not in the data; columns: {}",
                columns.join(", ")
            ),
        };
        for column in self.fields.keys() {
            if column == id_column {
                return Err(Error::Mapping {
                    key: format!("fields.{column}"),
                    message: "this is the id column, which is never compared".into(),
                });
            }
            if !columns.contains(column) {
                return Err(missing(format!("fields.{column}"), column));
            }
        }
        let mut fields = Vec::new();
        let mut columns_by_role = BTreeMap::new();
        for column in columns.iter().filter(|c| *c != id_column) {
            let role = role_of(column).filter(|_| self.recognise_columns);
            if let Some(role) = role {
                columns_by_role
                    .entry(role as u8)
                    .or_insert_with(|| column.clone());
            }
            let spec = match (self.fields.get(column), role) {
                (Some(None), _) => None,
                (Some(Some(o)), _) => Some((o.comparison.clone(), o.term_frequency)),
                (None, Some(role)) => Some(default_comparison(role)),
                (None, None) => None,
            };
            if let Some((comparison, term_frequency)) = spec {
                fields.push(FieldSpec {
                    column: column.clone(),
                    comparison,
                    term_frequency,
                });
            }
        }
        if fields.is_empty() {
            return Err(Error::NoFields {
                columns: columns.to_vec(),
            });
        }
        let blocking = match &self.blocking {
            Some(rules) => {
                for (i, rule) in rules.iter().enumerate() {
                    for key in &rule.keys {
                        if !columns.contains(&key.column) {
                            return Err(missing(format!("blocking[{i}].keys"), &key.column));
                        }
                    }
                }
                rules.clone()
            }
            None => default_blocking(&columns_by_role),
        };
        if blocking.is_empty() {
            return Err(Error::NoBlockingRule {
                example: fields[0].column.clone(),
            });
        }
        Ok(ResolvedMapping { fields, blocking })
    }
}

fn parse_field(column: &str, spec: &toml::Value) -> Result<Option<FieldOverride>, Error> {
    let key = |name: &str| format!("fields.{column}.{name}");
    let bad = |k: String, message: String| Error::Mapping { key: k, message };
    let table = spec
        .as_table()
        .ok_or_else(|| bad(format!("fields.{column}"), "expected a table".into()))?;
    for name in table.keys() {
        if !["kind", "thresholds", "term_frequency"].contains(&name.as_str()) {
            return Err(bad(
                key(name),
                "unknown key; allowed: kind, thresholds, term_frequency".into(),
            ));
        }
    }
    let kind = table
        .get("kind")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| bad(key("kind"), format!("missing; one of: {FIELD_KINDS}")))?;
    let numbers = || -> Result<Vec<f64>, Error> {
        let Some(value) = table.get("thresholds") else {
            return Ok(Vec::new());
        };
        value
            .as_array()
            .ok_or_else(|| bad(key("thresholds"), "expected an array of numbers".into()))?
            .iter()
            .map(|v| {
                v.as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .ok_or_else(|| bad(key("thresholds"), format!("`{v:?}` is not a number")))
            })
            .collect()
    };
    let thresholds = numbers()?;
    let strictly = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(bad(key("thresholds"), what.to_owned()))
        }
    };
    let non_empty = !thresholds.is_empty() && thresholds.len() <= 8;
    let comparison = match kind {
        "ignore" => return Ok(None),
        "exact" | "date" => {
            strictly(thresholds.is_empty(), "not allowed for this kind")?;
            if kind == "exact" {
                Comparison::Exact
            } else {
                Comparison::Date
            }
        }
        "jaro_winkler" => {
            strictly(
                non_empty
                    && thresholds.iter().all(|t| (0.0..1.0).contains(t))
                    && thresholds.windows(2).all(|w| w[0] > w[1]),
                "1 to 8 similarities in [0, 1), strictly decreasing, e.g. [0.92, 0.88]",
            )?;
            Comparison::JaroWinkler { thresholds }
        }
        "levenshtein" => {
            strictly(
                non_empty
                    && thresholds.iter().all(|t| t.fract() == 0.0 && *t >= 1.0)
                    && thresholds.windows(2).all(|w| w[0] < w[1]),
                "1 to 8 whole distances >= 1, strictly increasing, e.g. [1, 2]",
            )?;
            Comparison::Levenshtein {
                thresholds: thresholds.iter().map(|t| *t as u32).collect(),
            }
        }
        "numeric" => {
            strictly(
                non_empty
                    && thresholds.iter().all(|t| *t > 0.0)
                    && thresholds.windows(2).all(|w| w[0] < w[1]),
                "1 to 8 positive differences, strictly increasing, e.g. [1, 5]",
            )?;
            Comparison::Numeric { thresholds }
        }
        other => {
            return Err(bad(
                key("kind"),
                format!("unknown kind `{other}`; one of: {FIELD_KINDS}"),
            ))
        }
    };
    let term_frequency = match table.get("term_frequency") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad(key("term_frequency"), "expected true or false".into()))?,
    };
    Ok(Some(FieldOverride {
        comparison,
        term_frequency,
    }))
}

fn parse_blocking(value: &toml::Value) -> Result<Vec<BlockingRule>, Error> {
    let rules = value.as_array().ok_or_else(|| Error::Mapping {
        key: "blocking".into(),
        message: "expected [[blocking]] tables with `keys = [...]`".into(),
    })?;
    rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let key = format!("blocking[{i}].keys");
            let keys = rule
                .get("keys")
                .and_then(toml::Value::as_array)
                .filter(|keys| !keys.is_empty())
                .ok_or_else(|| Error::Mapping {
                    key: key.clone(),
                    message: "expected a non-empty array of strings, e.g. [\"surname\"]".into(),
                })?;
            let keys = keys
                .iter()
                .map(|k| {
                    let text = k.as_str().ok_or_else(|| Error::Mapping {
                        key: key.clone(),
                        message: format!("`{k:?}` is not a string"),
                    })?;
                    BlockingKey::parse(text, &key)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(BlockingRule { keys })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn febrl_columns() -> Vec<String> {
        "rec_id,given_name,surname,street_number,address_1,address_2,suburb,postcode,state,date_of_birth,soc_sec_id"
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn recognises_febrl_columns() {
        let resolved = Mapping::default()
            .resolve(&febrl_columns(), "rec_id")
            .unwrap();
        let names: Vec<&str> = resolved.fields.iter().map(|f| f.column.as_str()).collect();
        assert_eq!(names.len(), 10);
        assert!(!names.contains(&"rec_id"));
        assert_eq!(resolved.fields[8].comparison, Comparison::Date);
        assert_eq!(resolved.blocking[0].to_string(), "postcode");
        assert_eq!(
            resolved.blocking[1].to_string(),
            "surname & year(date_of_birth)"
        );
    }

    #[test]
    fn toml_overrides_fields_and_blocking() {
        let mapping = Mapping::from_toml_str(
            r#"
            [fields.postcode]
            kind = "exact"
            [fields.address_2]
            kind = "ignore"
            [fields.given_name]
            kind = "jaro_winkler"
            thresholds = [0.95]
            term_frequency = false
            [[blocking]]
            keys = ["soundex(surname)", "prefix(given_name, 2)"]
            "#,
        )
        .unwrap();
        let resolved = mapping.resolve(&febrl_columns(), "rec_id").unwrap();
        assert!(resolved.fields.iter().all(|f| f.column != "address_2"));
        let given = resolved
            .fields
            .iter()
            .find(|f| f.column == "given_name")
            .unwrap();
        assert_eq!(given.comparison, jaro_winkler(&[0.95]));
        assert!(!given.term_frequency);
        assert_eq!(resolved.blocking.len(), 1);
        assert_eq!(
            resolved.blocking[0].to_string(),
            "soundex(surname) & prefix(given_name, 2)"
        );
    }

    #[test]
    fn bad_mappings_name_the_key_and_what_is_allowed() {
        let cases = [
            (
                "[fields.surname]\nkind = \"fuzzy\"",
                "fields.surname.kind",
                "jaro_winkler",
            ),
            (
                "[fields.surname]\nkind = \"jaro_winkler\"\nthresholds = [0.8, 0.9]",
                "fields.surname.thresholds",
                "decreasing",
            ),
            (
                "[[blocking]]\nkeys = [\"hash(surname)\"]",
                "blocking[0].keys",
                "soundex",
            ),
            ("colour = 1", "colour", "allowed"),
        ];
        for (text, key, hint) in cases {
            let message = Mapping::from_toml_str(text).unwrap_err().to_string();
            assert!(message.contains(key), "{message}");
            assert!(message.contains(hint), "{message}");
        }
        let unknown_column = Mapping::from_toml_str("[fields.nope]\nkind = \"exact\"")
            .unwrap()
            .resolve(&febrl_columns(), "rec_id")
            .unwrap_err()
            .to_string();
        assert!(unknown_column.contains("fields.nope"), "{unknown_column}");
        let id_compared = Mapping::from_toml_str("[fields.rec_id]\nkind = \"exact\"")
            .unwrap()
            .resolve(&febrl_columns(), "rec_id")
            .unwrap_err()
            .to_string();
        assert!(id_compared.contains("id column"), "{id_compared}");
    }

    #[test]
    fn unrecognised_columns_need_a_mapping() {
        let columns = vec!["id".to_owned(), "colour".to_owned()];
        let err = Mapping::default().resolve(&columns, "id").unwrap_err();
        assert!(matches!(err, Error::NoFields { .. }));
    }
}
