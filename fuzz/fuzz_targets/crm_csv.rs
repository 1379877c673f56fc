//! CRM imports (`sightline import crm`, `POST /api/v1/imports/crm`): the mapping (TOML)
//! and the CSV export, then each record's event. The input is the mapping, a NUL byte and
//! the CSV; without a NUL byte it is all CSV, read with a fixed mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_identity::{Config, Rules};
use sightline_service::crm::mapping::ImportMapping;
use sightline_service::crm::records::{self, Origin};
use std::sync::OnceLock;

const MAPPING: &str = r#"
id_column = "customer_id"
id_type = "crm_id"
source = "crm"

[identifiers]
email = "email"
phone = "phone"

[traits]
first_name = "first_name"
last_name = "last_name"
dob = "birthday"
postcode = "postcode"
"#;

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| Rules::new(&Config::default()).expect("the default identity rules"))
}

fuzz_target!(|data: &[u8]| {
    let (mapping, csv) = match data.iter().position(|&b| b == 0) {
        Some(at) => {
            let Ok(text) = std::str::from_utf8(&data[..at]) else {
                return;
            };
            let Ok(mapping) = ImportMapping::from_toml_str(text) else {
                return;
            };
            (mapping, &data[at + 1..])
        }
        None => (
            ImportMapping::from_toml_str(MAPPING).expect("the fixed mapping"),
            data,
        ),
    };
    let _ = mapping.columns();
    let Ok(parsed) = records::parse(csv, &mapping, rules()) else {
        return;
    };
    let origin = Origin {
        file: "fuzz.csv".into(),
        source_id: 1,
        source: mapping.source.clone(),
    };
    for record in &parsed.records {
        assert_eq!(record.values.len(), parsed.columns.len());
        let event = records::record_event(record, &origin, 0);
        let _: serde_json::Value =
            serde_json::from_str(&event.body).expect("a record's event is JSON");
    }
});
