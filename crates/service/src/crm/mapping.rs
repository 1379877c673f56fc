//! The import mapping (TOML, or the same keys as JSON through the API): which CSV columns
//! are identifiers and which are traits, and how records are linked. Pure.

use sightline_identity::IdType;
use sightline_linkage::Mapping;

/// A parsed, validated import mapping.
#[derive(Debug, Clone)]
pub struct ImportMapping {
    /// The column holding each record's id in the CRM; it becomes the identifier
    /// `id_type:value` of the record's profile.
    pub id_column: String,
    pub id_type: IdType,
    /// The source the import's events are logged under.
    pub source: String,
    /// More identifier columns: column and identifier type (e.g. `mobile` → `phone`).
    pub identifiers: Vec<(String, IdType)>,
    /// Trait columns: column and the trait key it is stored under on the profile.
    pub traits: Vec<(String, String)>,
    pub linkage: LinkageSettings,
}

/// How imported records are linked after the deterministic pass.
#[derive(Debug, Clone)]
pub struct LinkageSettings {
    /// Comparisons and blocking rules, as in a `sightline link` mapping file.
    pub mapping: Mapping,
    /// Pairs at or above this match probability are links (below: no link).
    pub threshold: f64,
    /// Links at or above this are made automatically; those below go to clerical review.
    pub auto_link_threshold: f64,
    /// Link the records to existing profiles.
    pub profiles: bool,
    /// Link the file's records to each other.
    pub dedupe: bool,
    /// Re-estimate u by EM as well as m (default false: u comes from random pairs alone,
    /// which stays right when blocking makes agreement on a field common among the
    /// compared pairs, as a postcode rule does for postcodes on a small import).
    pub estimate_u: bool,
}

const TOP_KEYS: &str = "id_column, id_type, source, identifiers, traits, linkage";

/// A mistake in the mapping: the key and what to write instead.
fn bad(key: &str, message: impl Into<String>) -> String {
    format!("invalid import mapping at `{key}`: {}", message.into())
}

impl ImportMapping {
    pub fn from_toml_str(text: &str) -> Result<ImportMapping, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| bad("(file)", e.to_string()))?;
        ImportMapping::from_table(table)
    }

    /// The mapping from JSON with the same keys as the TOML file (the API's form).
    pub fn from_json(value: serde_json::Value) -> Result<ImportMapping, String> {
        let table: toml::Table = serde_json::from_value(value).map_err(|e| {
            bad(
                "(mapping)",
                format!("{e}; send an object with the TOML file's keys"),
            )
        })?;
        ImportMapping::from_table(table)
    }

    pub fn from_table(mut table: toml::Table) -> Result<ImportMapping, String> {
        if let Some(key) = table
            .keys()
            .find(|k| !TOP_KEYS.split(", ").any(|t| t == k.as_str()))
        {
            return Err(bad(key, format!("unknown key; allowed: {TOP_KEYS}")));
        }
        let text = |table: &mut toml::Table, key: &str| -> Result<Option<String>, String> {
            match table.remove(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.trim().is_empty() => {
                    Ok(Some(s.trim().to_owned()))
                }
                Some(_) => Err(bad(key, "expected a non-empty string")),
            }
        };
        let id_column = text(&mut table, "id_column")?.ok_or_else(|| {
            bad(
                "id_column",
                "missing: name the column holding each record's id in the CRM",
            )
        })?;
        let id_type = identifier_type(
            "id_type",
            &text(&mut table, "id_type")?.unwrap_or_else(|| "crm_id".into()),
        )?;
        let source = text(&mut table, "source")?.unwrap_or_else(|| "crm".into());
        if source.len() > 100 {
            return Err(bad("source", "a source name is at most 100 characters"));
        }
        let mut identifiers = Vec::new();
        for (column, kind) in column_table(&mut table, "identifiers")? {
            identifiers.push((
                column.clone(),
                identifier_type(&format!("identifiers.{column}"), &kind)?,
            ));
        }
        let traits = column_table(&mut table, "traits")?;
        for (column, key) in &traits {
            if key.is_empty() {
                return Err(bad(&format!("traits.{column}"), "name the trait"));
            }
        }
        for column in identifiers
            .iter()
            .map(|(c, _)| c)
            .chain(traits.iter().map(|(c, _)| c))
        {
            if *column == id_column {
                return Err(bad(
                    column,
                    "this is the id column, which is already the record's identifier",
                ));
            }
        }
        let linkage = match table.remove("linkage") {
            None => LinkageSettings::from_table(toml::Table::new())?,
            Some(toml::Value::Table(t)) => LinkageSettings::from_table(t)?,
            Some(_) => return Err(bad("linkage", "expected a table, [linkage]")),
        };
        Ok(ImportMapping {
            id_column,
            id_type,
            source,
            identifiers,
            traits,
            linkage,
        })
    }

    /// Every column the import reads, the id column first, each once.
    pub fn columns(&self) -> Vec<&str> {
        let mut columns = vec![self.id_column.as_str()];
        let mapped = self
            .identifiers
            .iter()
            .map(|(c, _)| c.as_str())
            .chain(self.traits.iter().map(|(c, _)| c.as_str()));
        for column in mapped {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        columns
    }
}

impl LinkageSettings {
    fn from_table(mut table: toml::Table) -> Result<LinkageSettings, String> {
        let probability = |table: &mut toml::Table, key: &str, default: f64| match table.remove(key)
        {
            None => Ok(default),
            Some(v) => v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| {
                    bad(
                        &format!("linkage.{key}"),
                        "expected a probability from 0 to 1",
                    )
                }),
        };
        let flag = |table: &mut toml::Table, key: &str, default: bool| match table.remove(key) {
            None => Ok(default),
            Some(toml::Value::Boolean(b)) => Ok(b),
            Some(_) => Err(bad(&format!("linkage.{key}"), "expected true or false")),
        };
        let threshold = probability(&mut table, "threshold", 0.5)?;
        let auto_link_threshold = probability(&mut table, "auto_link_threshold", 0.95)?;
        if auto_link_threshold < threshold {
            return Err(bad(
                "linkage.auto_link_threshold",
                format!("{auto_link_threshold} is below `threshold` {threshold}"),
            ));
        }
        let profiles = flag(&mut table, "profiles", true)?;
        let dedupe = flag(&mut table, "dedupe", true)?;
        let estimate_u = flag(&mut table, "estimate_u", false)?;
        // What is left is a `sightline link` mapping file; its errors name keys under
        // `linkage.`.
        let text = toml::to_string(&table).map_err(|e| bad("linkage", e.to_string()))?;
        let mapping = Mapping::from_toml_str(&text).map_err(|e| match e {
            sightline_linkage::Error::Mapping { key, message } => {
                bad(&format!("linkage.{key}"), message)
            }
            other => other.to_string(),
        })?;
        Ok(LinkageSettings {
            mapping,
            threshold,
            auto_link_threshold,
            profiles,
            dedupe,
            estimate_u,
        })
    }
}

fn identifier_type(key: &str, name: &str) -> Result<IdType, String> {
    let id_type = IdType::parse(name);
    let valid = !id_type.as_str().is_empty()
        && id_type
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(id_type)
    } else {
        Err(bad(
            key,
            format!("{name:?} is not an identifier type: use letters, digits and _, e.g. crm_id, email, phone"),
        ))
    }
}

/// A `[table]` of `column = "name"` entries, by column name.
fn column_table(table: &mut toml::Table, key: &str) -> Result<Vec<(String, String)>, String> {
    let Some(value) = table.remove(key) else {
        return Ok(Vec::new());
    };
    let entries = value
        .as_table()
        .ok_or_else(|| bad(key, "expected a table of column = \"name\" entries"))?;
    entries
        .iter()
        .map(|(column, name)| match name.as_str() {
            Some(name) => Ok((column.clone(), name.trim().to_owned())),
            None => Err(bad(&format!("{key}.{column}"), "expected a string")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        id_column = "customer_id"
        source = "salesforce"
        [identifiers]
        email = "email"
        mobile = "phone"
        [traits]
        first_name = "first_name"
        last_name = "last_name"
        dob = "birthday"
        [linkage]
        threshold = 0.6
        auto_link_threshold = 0.9
        dedupe = false
        [linkage.fields.last_name]
        kind = "jaro_winkler"
        thresholds = [0.9]
        [[linkage.blocking]]
        keys = ["dob"]
    "#;

    #[test]
    fn reads_identifiers_traits_and_linkage_settings() {
        let m = ImportMapping::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(m.id_column, "customer_id");
        assert_eq!(m.id_type, IdType::parse("crm_id"));
        assert_eq!(m.source, "salesforce");
        assert_eq!(
            m.identifiers,
            [
                ("email".to_owned(), IdType::Email),
                ("mobile".to_owned(), IdType::Phone)
            ]
        );
        assert_eq!(m.traits[0], ("dob".to_owned(), "birthday".to_owned()));
        assert_eq!(
            m.columns(),
            [
                "customer_id",
                "email",
                "mobile",
                "dob",
                "first_name",
                "last_name"
            ]
        );
        assert_eq!(
            (m.linkage.threshold, m.linkage.auto_link_threshold),
            (0.6, 0.9)
        );
        assert!(m.linkage.profiles && !m.linkage.dedupe);
        let columns: Vec<String> = ["customer_id", "last_name", "dob"]
            .map(str::to_owned)
            .to_vec();
        let resolved = m.linkage.mapping.resolve(&columns, "customer_id").unwrap();
        assert_eq!(resolved.blocking[0].to_string(), "dob");
    }

    #[test]
    fn the_json_form_has_the_same_keys() {
        let m = ImportMapping::from_json(serde_json::json!({
            "id_column": "id", "traits": {"surname": "last_name"},
            "linkage": {"auto_link_threshold": 0.99}
        }))
        .unwrap();
        assert_eq!(m.traits, [("surname".to_owned(), "last_name".to_owned())]);
        assert_eq!(m.linkage.auto_link_threshold, 0.99);
        assert_eq!(m.source, "crm");
    }

    #[test]
    fn mistakes_name_the_key_and_what_to_write() {
        let cases = [
            ("source = \"x\"", "id_column", "missing"),
            ("id_column = \"id\"\ncolour = 1", "colour", "allowed"),
            (
                "id_column = \"id\"\n[identifiers]\nemail = 3",
                "identifiers.email",
                "string",
            ),
            (
                "id_column = \"id\"\n[identifiers]\nmail = \"e mail\"",
                "identifiers.mail",
                "identifier type",
            ),
            (
                "id_column = \"id\"\n[traits]\nid = \"x\"",
                "`id`",
                "id column",
            ),
            (
                "id_column = \"id\"\n[linkage]\nthreshold = 2",
                "linkage.threshold",
                "probability",
            ),
            (
                "id_column = \"id\"\n[linkage]\nthreshold = 0.9\nauto_link_threshold = 0.8",
                "linkage.auto_link_threshold",
                "below",
            ),
            (
                "id_column = \"id\"\n[linkage.fields.surname]\nkind = \"fuzzy\"",
                "linkage.fields.surname.kind",
                "jaro_winkler",
            ),
            (
                "id_column = \"id\"\n[linkage]\ndedupe = \"yes\"",
                "linkage.dedupe",
                "true or false",
            ),
        ];
        for (text, key, hint) in cases {
            let message = ImportMapping::from_toml_str(text).unwrap_err();
            assert!(message.contains(key), "{message}");
            assert!(message.contains(hint), "{message}");
        }
    }
}
