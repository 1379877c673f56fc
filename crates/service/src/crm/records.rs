//! CSV rows to CRM records, and records to the events that log them. Pure: bytes and rules
//! in, records, bad rows and events out.

use super::mapping::ImportMapping;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use sightline_core::{time, EventType, NewEvent};
use sightline_identity::{normalise, Identifier, Rules};
use std::collections::HashMap;

/// One good row.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmRecord {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    /// The record's own identifier, from the id column.
    pub id: Identifier,
    /// Its other identifiers, normalised (invalid or blocked values left out, as warnings).
    pub identifiers: Vec<Identifier>,
    /// Trait key and value (trimmed), for the non-empty trait columns.
    pub traits: Vec<(String, String)>,
    /// One value per [`Parsed::columns`] for linkage: identifiers normalised, traits as
    /// written; `None` when empty or not usable.
    pub values: Vec<Option<String>>,
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// A value of an imported row that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub line: u64,
    pub column: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub records: Vec<CrmRecord>,
    pub bad_rows: Vec<BadRow>,
    pub warnings: Vec<Warning>,
    /// The mapped columns after the id column (identifiers, then traits, each by name):
    /// what linkage compares.
    pub columns: Vec<String>,
}

/// Reads a CRM export. A header that lacks a mapped column fails the whole file (nothing
/// could be imported right); a bad row is reported with its line and skipped, and every
/// other row is kept.
pub fn parse(csv: &[u8], mapping: &ImportMapping, rules: &Rules) -> Result<Parsed, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(csv);
    let header: Vec<String> = reader
        .byte_headers()
        .map_err(|e| format!("cannot read the CSV header: {e}"))?
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .to_owned()
        })
        .collect();
    if header.iter().all(String::is_empty) {
        return Err("the CSV file has no header row".into());
    }
    let wanted = mapping.columns();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| !header.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the CSV header lacks the mapped column(s) {}; its columns are: {}",
            missing.join(", "),
            header.join(", ")
        ));
    }
    let index = |column: &str| {
        header
            .iter()
            .position(|h| h == column)
            .expect("checked above")
    };
    let id_index = index(&mapping.id_column);
    let identifier_columns: Vec<(usize, &str, &sightline_identity::IdType)> = mapping
        .identifiers
        .iter()
        .map(|(c, t)| (index(c), c.as_str(), t))
        .collect();
    let trait_columns: Vec<(usize, &str)> = mapping
        .traits
        .iter()
        .map(|(c, key)| (index(c), key.as_str()))
        .collect();
    let columns: Vec<String> = wanted[1..].iter().map(|c| (*c).to_owned()).collect();
    let region = rules.default_region();

    let mut parsed = Parsed {
        columns,
        ..Parsed::default()
    };
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let mut row = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) if e.is_io_error() => return Err(format!("cannot read the CSV: {e}")),
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                parsed.bad_rows.push(BadRow {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        }
        let line = row.position().map_or(line, |p| p.line());
        let bad = |reason: String| BadRow { line, reason };
        if row.len() != header.len() {
            parsed.bad_rows.push(bad(format!(
                "expected {} fields, found {}",
                header.len(),
                row.len()
            )));
            continue;
        }
        let Ok(fields) = row
            .iter()
            .map(std::str::from_utf8)
            .collect::<Result<Vec<&str>, _>>()
        else {
            parsed.bad_rows.push(bad("not valid UTF-8".into()));
            continue;
        };
        let raw_id = fields[id_index];
        if raw_id.is_empty() {
            parsed
                .bad_rows
                .push(bad(format!("empty id in `{}`", mapping.id_column)));
            continue;
        }
        let id = match normalise(&mapping.id_type, raw_id, region) {
            Some(value) if !rules.is_blocked(&mapping.id_type, &value) => {
                Identifier::new(mapping.id_type.clone(), value)
            }
            Some(_) => {
                parsed.bad_rows.push(bad(format!(
                    "the id `{raw_id}` is a blocked placeholder value and would link nothing"
                )));
                continue;
            }
            None => {
                parsed.bad_rows.push(bad(format!(
                    "the id `{raw_id}` is not a valid {} value",
                    mapping.id_type
                )));
                continue;
            }
        };
        if let Some(first) = first_line.get(&id.value) {
            parsed.bad_rows.push(bad(format!(
                "duplicate id `{raw_id}` (first on line {first})"
            )));
            continue;
        }
        first_line.insert(id.value.clone(), line);

        let mut record = CrmRecord {
            line,
            id,
            identifiers: Vec::new(),
            traits: Vec::new(),
            values: vec![None; parsed.columns.len()],
        };
        let slot = |column: &str| parsed.columns.iter().position(|c| c == column);
        for &(i, column, id_type) in &identifier_columns {
            let raw = fields[i];
            if raw.is_empty() {
                continue;
            }
            let warn = |reason: String| Warning {
                line,
                column: column.to_owned(),
                reason,
            };
            match normalise(id_type, raw, region) {
                Some(value) if rules.is_blocked(id_type, &value) => parsed.warnings.push(warn(
                    format!("`{raw}` is a blocked placeholder value; left out"),
                )),
                Some(value) => {
                    if let Some(s) = slot(column) {
                        record.values[s] = Some(value.clone());
                    }
                    record
                        .identifiers
                        .push(Identifier::new(id_type.clone(), value));
                }
                None => parsed
                    .warnings
                    .push(warn(format!("`{raw}` is not a valid {id_type}; left out"))),
            }
        }
        for &(i, key) in &trait_columns {
            let value = fields[i];
            if value.is_empty() {
                continue;
            }
            record.traits.push((key.to_owned(), value.to_owned()));
            if let Some(s) = slot(&header[i]) {
                record.values[s].get_or_insert_with(|| value.to_owned());
            }
        }
        parsed.records.push(record);
    }
    Ok(parsed)
}

/// Where an import's events came from, as they record it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// e.g. `customers.csv`, or `api` for an upload.
    pub file: String,
    pub source_id: i64,
    pub source: String,
}

impl Origin {
    /// How review items and link evidence name the import.
    pub fn describe(&self) -> String {
        format!("crm import {} (source {})", self.file, self.source)
    }
}

fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..16])
}

/// The `identify` event that logs one record: its identifiers in `context.externalIds`, its
/// traits in `traits`. The messageId is a digest of the source and the record, so importing
/// the same row again within the dedup window stores nothing new.
pub fn record_event(record: &CrmRecord, origin: &Origin, now: i64) -> NewEvent {
    let mut content = vec![origin.source.as_str(), record.id.value.as_str()];
    for (key, value) in &record.traits {
        content.extend([key.as_str(), value.as_str()]);
    }
    let ids: Vec<String> = record.identifiers.iter().map(|i| i.to_string()).collect();
    content.extend(ids.iter().map(String::as_str));
    let message_id = format!("crm-{}", digest(&content));
    let traits: Map<String, Value> = record
        .traits
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let external_ids: Vec<Value> = std::iter::once(&record.id)
        .chain(&record.identifiers)
        .map(external_id)
        .collect();
    let body = json!({
        "type": "identify",
        "messageId": message_id,
        "timestamp": time::format_ms(now),
        "receivedAt": time::format_ms(now),
        "traits": traits,
        "context": {
            "externalIds": external_ids,
            "import": {"kind": "crm", "file": origin.file, "line": record.line},
        },
    });
    NewEvent {
        source_id: origin.source_id,
        message_id,
        event_type: EventType::Identify,
        received_at: now,
        body: body.to_string(),
    }
}

/// An identifier as a Segment external id (identity reads any type from there).
fn external_id(identifier: &Identifier) -> Value {
    json!({
        "id": identifier.value,
        "type": identifier.id_type.as_str(),
        "collection": "users",
        "encoding": "none",
    })
}

/// The record linkage event that joins two identifiers' profiles, carrying the evidence of
/// the link in `context.linkage`. Identity merges them under its usual protection (limits,
/// user_id conflicts, blocked and shared values) and records the evidence in the history.
pub fn link_event(
    left: &Identifier,
    right: &Identifier,
    evidence: Value,
    message_id: String,
    source_id: i64,
    now: i64,
) -> NewEvent {
    let body = json!({
        "type": "identify",
        "messageId": message_id,
        "timestamp": time::format_ms(now),
        "receivedAt": time::format_ms(now),
        "context": {
            "externalIds": [external_id(left), external_id(right)],
            "linkage": evidence,
        },
    });
    NewEvent {
        source_id,
        message_id,
        event_type: EventType::Identify,
        received_at: now,
        body: body.to_string(),
    }
}

/// The messageId of an automatic link: the same pair and evidence give the same id.
pub fn auto_link_message_id(left: &Identifier, right: &Identifier) -> String {
    format!(
        "link-{}",
        digest(&[&left.to_string(), &right.to_string(), "auto_link"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_identity::{extract, IdType};

    fn mapping() -> ImportMapping {
        ImportMapping::from_toml_str(
            r#"
            id_column = "id"
            [identifiers]
            email = "email"
            phone = "phone"
            [traits]
            first = "first_name"
            last = "last_name"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn bad_rows_are_reported_with_lines_and_good_rows_kept() {
        let csv = "id,first,last,email,phone,notes\n\
                   c1,Ann,Smith,ANN@x.io,,vip\n\
                   c2,Bob,Jones\n\
                   ,Cat,Lee,,,\n\
                   c1,Ann,Again,,,\n\
                   c3,Dan,Ng,n/a,+1 650 253 0000,\n\
                   \"c4\",\"Eve\",\"Quote\"\"d\",,,\n\
                   0,Zero,Id,,,\n";
        let parsed = parse(csv.as_bytes(), &mapping(), &Rules::default()).unwrap();
        let ids: Vec<&str> = parsed.records.iter().map(|r| r.id.value.as_str()).collect();
        assert_eq!(ids, ["c1", "c3", "c4"]);
        let bad: Vec<(u64, &str)> = parsed
            .bad_rows
            .iter()
            .map(|b| (b.line, b.reason.as_str()))
            .collect();
        assert_eq!(bad[0], (3, "expected 6 fields, found 3"));
        assert_eq!(bad[1], (4, "empty id in `id`"));
        assert_eq!(bad[2], (5, "duplicate id `c1` (first on line 2)"));
        assert!(bad[3].0 == 8 && bad[3].1.contains("blocked"), "{bad:?}");
        assert_eq!(bad.len(), 4);
        assert_eq!(parsed.warnings.len(), 1);
        assert_eq!(
            (parsed.warnings[0].line, parsed.warnings[0].column.as_str()),
            (6, "email")
        );
        let c1 = &parsed.records[0];
        assert_eq!(c1.identifiers, [Identifier::new(IdType::Email, "ann@x.io")]);
        assert_eq!(parsed.columns, ["email", "phone", "first", "last"]);
        assert_eq!(
            c1.values,
            [
                Some("ann@x.io".into()),
                None,
                Some("Ann".into()),
                Some("Smith".into())
            ]
        );
        let c3 = &parsed.records[1];
        assert_eq!(
            c3.identifiers,
            [Identifier::new(IdType::Phone, "+16502530000")]
        );
        assert_eq!(parsed.records[2].traits[1].1, "Quote\"d");
    }

    #[test]
    fn a_header_without_a_mapped_column_fails_the_file_naming_it() {
        let err = parse(b"id,first\nc1,Ann\n", &mapping(), &Rules::default()).unwrap_err();
        assert!(err.contains("email, phone, last"), "{err}");
        assert!(err.contains("id, first"), "{err}");
    }

    #[test]
    fn events_carry_identifiers_and_traits_and_identity_reads_them() {
        let parsed = parse(
            b"id,first,last,email,phone\nC-1,Ann,Smith,ann@x.io,\n",
            &mapping(),
            &Rules::default(),
        )
        .unwrap();
        let origin = Origin {
            file: "f.csv".into(),
            source_id: 3,
            source: "crm".into(),
        };
        let event = record_event(&parsed.records[0], &origin, 1_000);
        let again = record_event(&parsed.records[0], &origin, 2_000);
        assert_eq!(event.message_id, again.message_id);
        let body: Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(body["traits"]["last_name"], "Smith");
        assert_eq!(body["context"]["import"]["line"], 2);
        let ids = extract(&body, &Rules::default());
        assert_eq!(
            ids.identifiers,
            [
                Identifier::new(IdType::parse("crm_id"), "C-1"),
                Identifier::new(IdType::Email, "ann@x.io")
            ]
        );
        let link = link_event(
            &ids.identifiers[0],
            &Identifier::new(IdType::UserId, "u1"),
            json!({"decision": "auto_link"}),
            "m".into(),
            3,
            1_000,
        );
        let body: Value = serde_json::from_str(&link.body).unwrap();
        let linked = extract(&body, &Rules::default()).identifiers;
        assert!(
            linked.contains(&Identifier::new(IdType::UserId, "u1")),
            "{linked:?}"
        );
        assert_eq!(body["context"]["linkage"]["decision"], "auto_link");
    }
}
