//! The OpenLineage export validated against the published 2-0-2 core spec and the dataset
//! schema facet's spec (vendored in tests/data, see its README), with format checks (uuid,
//! date-time, uri) on and no network: the facet's references to the core resolve to the
//! vendored copy.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sightline_govern::lineage::*;

const CORE: &str = include_str!("data/OpenLineage-2-0-2.json");
const CORE_URI: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(CORE).expect("schema JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the spec compiles")
}

/// Validates a dataset's `facets` object (`{"schema": {...}, ...}`).
fn facet_validator() -> jsonschema::Validator {
    let facet: Value = serde_json::from_str(include_str!("data/SchemaDatasetFacet-1-2-0.json"))
        .expect("facet schema JSON");
    let core = jsonschema::Resource::from_contents(serde_json::from_str(CORE).unwrap())
        .expect("the core spec is a resource");
    jsonschema::options()
        .should_validate_formats(true)
        .with_resource(CORE_URI, core)
        .build(&facet)
        .expect("the facet spec compiles")
}

fn graph() -> Graph {
    build(&Evidence {
        sources: vec![SourceEvidence {
            name: "web".into(),
            events: vec![SampledEvent {
                received_at: 1,
                body: json!({"type": "identify", "userId": "u1", "traits": {"email": "a@b.co"}}),
            }],
        }],
        destinations: vec![DestinationEvidence {
            name: "crm hook".into(),
            kind: "webhook".into(),
            purposes: vec!["marketing".into()],
            transform: None,
            sent: BTreeMap::from([(
                "web".to_string(),
                vec![json!({"traits": {"email": "a@b.co"}})],
            )]),
            deliveries: BTreeMap::from([("delivered".to_string(), 1)]),
            window: Some((1, 2)),
            approval: None,
            audiences: vec!["buyers".into()],
        }],
        scans: vec![ScanEvidence {
            id: 1,
            journey: "shop".into(),
            site: "shop.test".into(),
            at: 3,
            vendors: vec![VendorSeen {
                name: "Google Analytics".into(),
                category: "analytics".into(),
                needs_consent: true,
                requests: vec![ScannedRequest {
                    url: "https://www.google-analytics.com/g/collect?tid=G-1&cid=5".into(),
                    post_body: None,
                }],
            }],
        }],
        owners: BTreeMap::new(),
    })
}

fn export() -> Vec<Value> {
    let mut n = 0u32;
    to_openlineage(
        &graph(),
        &OpenLineageOptions {
            event_time: chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
            producer: "urn:sightline:0.1.0",
            namespace: "sightline",
        },
        || {
            n += 1;
            format!("018f0000-0000-4000-8000-{n:012x}")
        },
    )
}

#[test]
fn every_event_is_a_valid_run_event_with_valid_schema_facets() {
    let v = validator();
    let facets_v = facet_validator();
    let events = export();
    assert_eq!(events.len(), 4);
    for event in &events {
        let errors: Vec<String> = v.iter_errors(event).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{event:#}");
        assert_eq!(event["schemaURL"], OPENLINEAGE_RUN_EVENT_SCHEMA);
        let datasets = event["inputs"]
            .as_array()
            .into_iter()
            .chain(event["outputs"].as_array())
            .flatten();
        for dataset in datasets {
            let facets = &dataset["facets"];
            let errors: Vec<String> = facets_v
                .iter_errors(facets)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{errors:?}\n{facets:#}");
            assert_eq!(
                facets["schema"]["_schemaURL"],
                "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
            );
        }
        let fields = &event["outputs"][0]["facets"]["schema"]["fields"];
        assert!(
            fields.as_array().is_some_and(|f| !f.is_empty()),
            "{event:#}"
        );
    }
}

#[test]
fn the_schema_rejects_what_the_spec_forbids() {
    let v = validator();
    let good = export().remove(0);
    let mut bad_run = good.clone();
    bad_run["run"]["runId"] = json!("run-1");
    let mut bad_type = good.clone();
    bad_type["eventType"] = json!("DONE");
    let mut bad_facet = good.clone();
    bad_facet["outputs"][0]["facets"]["schema"]
        .as_object_mut()
        .unwrap()
        .remove("_producer");
    let mut bad_time = good.clone();
    bad_time["eventTime"] = json!("yesterday");
    for (what, event) in [
        ("runId", bad_run),
        ("eventType", bad_type),
        ("facet", bad_facet),
        ("time", bad_time),
    ] {
        assert!(!v.is_valid(&event), "{what} should be refused");
    }
    assert!(v.is_valid(&good));

    let facets_v = facet_validator();
    let facets = &good["outputs"][0]["facets"];
    assert!(facets_v.is_valid(facets));
    let mut unnamed = facets.clone();
    unnamed["schema"]["fields"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    assert!(!facets_v.is_valid(&unnamed), "a field needs its name");
    let mut unproduced = facets.clone();
    unproduced["schema"]
        .as_object_mut()
        .unwrap()
        .remove("_producer");
    assert!(
        !facets_v.is_valid(&unproduced),
        "the core's facet rules apply through $ref"
    );
}
