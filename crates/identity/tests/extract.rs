//! Extraction and normalisation.

use serde_json::json;
use sightline_identity::{
    extract, normalise_email, normalise_phone, Call, Config, IdType, Identifier, Region,
    RejectReason, Rules,
};

fn id(t: &str, v: &str) -> Identifier {
    Identifier::new(IdType::parse(t), v)
}

fn region(code: &str) -> Region {
    code.parse().unwrap()
}

#[test]
fn emails_are_trimmed_and_lower_cased() {
    assert_eq!(
        normalise_email("  Ann@Example.COM "),
        Some("ann@example.com".into())
    );
    assert_eq!(
        normalise_email("a.b+tag@mail.example.org"),
        Some("a.b+tag@mail.example.org".into())
    );
    for bad in [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@@example.com",
        "ann smith@example.com",
        "ann@.com",
        "ann@example.com.",
    ] {
        assert_eq!(normalise_email(bad), None, "{bad:?}");
    }
}

#[test]
fn phones_become_e164_in_several_formats_and_regions() {
    let cases = [
        ("US", "(201) 555-0123", "+12015550123"),
        ("US", "201.555.0123", "+12015550123"),
        ("US", "201-555-0123", "+12015550123"),
        ("US", "+1 201 555 0123", "+12015550123"),
        ("GB", "020 7946 0018", "+442079460018"),
        ("GB", "07911 123456", "+447911123456"),
        ("GB", "+44 7911 123456", "+447911123456"),
        ("DE", "030 12345678", "+493012345678"),
        ("DE", "0151 23456789", "+4915123456789"),
        ("FR", "06 12 34 56 78", "+33612345678"),
        // An international number is read the same whatever the default region.
        ("DE", "+1 (201) 555-0123", "+12015550123"),
    ];
    for (r, raw, e164) in cases {
        assert_eq!(
            normalise_phone(raw, region(r)).as_deref(),
            Some(e164),
            "{r} {raw}"
        );
    }
    for bad in [
        "12",
        "555-0123",
        "phone",
        "+1 201 555 0123 ext 5",
        "",
        "0000000000",
    ] {
        assert_eq!(normalise_phone(bad, region("US")), None, "{bad:?}");
    }
}

#[test]
fn identify_reads_user_anonymous_traits_device_and_external_ids() {
    let rules = Rules::default();
    let event = json!({
        "type": "identify",
        "userId": "42",
        "anonymousId": " a1 ",
        "traits": { "email": "Ann@Example.com", "phone": "020 7946 0018" },
        "context": {
            "locale": "en-GB",
            "device": { "id": "dev-1" },
            "externalIds": [
                { "id": "C-9", "type": "CRM_ID", "collection": "users", "encoding": "none" },
                { "id": 77, "type": "loyalty", "collection": "users", "encoding": "none" },
                { "id": "x", "collection": "users" }
            ]
        }
    });
    let ids = extract(&event, &rules);
    assert_eq!(ids.call, Call::Identify);
    assert_eq!(
        ids.identifiers,
        vec![
            id("user_id", "42"),
            id("anonymous_id", "a1"),
            id("email", "ann@example.com"),
            id("phone", "+442079460018"),
            id("device_id", "dev-1"),
            id("crm_id", "C-9"),
            id("loyalty", "77"),
        ]
    );
    assert!(ids.rejected.is_empty());
}

#[test]
fn numeric_user_ids_are_their_decimal_string() {
    let ids = extract(&json!({"type": "track", "userId": 42}), &Rules::default());
    assert_eq!(ids.identifiers, vec![id("user_id", "42")]);
    let ids = extract(&json!({"type": "track", "userId": true}), &Rules::default());
    assert_eq!(ids.identifiers, vec![]);
    assert_eq!(ids.rejected[0].reason, RejectReason::Invalid);
}

#[test]
fn alias_joins_previous_id_to_user_id() {
    let rules = Rules::default();
    let top = extract(
        &json!({"type": "alias", "previousId": "a0", "userId": "u1"}),
        &rules,
    );
    assert_eq!(top.call, Call::Alias);
    assert_eq!(
        top.identifiers,
        vec![id("user_id", "u1"), id("anonymous_id", "a0")]
    );
    let nested = json!({"type": "alias", "userId": "u1", "properties": {"previousId": "a0"}});
    assert_eq!(extract(&nested, &rules).identifiers, top.identifiers);
    // previousId means nothing on other calls.
    let track = json!({"type": "track", "userId": "u1", "previousId": "a0"});
    assert_eq!(
        extract(&track, &rules).identifiers,
        vec![id("user_id", "u1")]
    );
}

#[test]
fn blocked_values_are_reported_and_never_extracted() {
    let rules = Rules::default();
    for junk in [
        "",
        "null",
        "NULL",
        "undefined",
        "0",
        "-1",
        "anonymous",
        "Unknown",
        "none",
        "000",
        "0-0-0",
        "---",
    ] {
        let ids = extract(
            &json!({"type": "track", "userId": junk, "anonymousId": "a"}),
            &rules,
        );
        assert_eq!(ids.identifiers, vec![id("anonymous_id", "a")], "{junk:?}");
        assert_eq!(ids.rejected[0].reason, RejectReason::Blocked, "{junk:?}");
    }
    for junk in ["test@test.com", "TEST@example.com"] {
        let ids = extract(
            &json!({"type": "identify", "traits": {"email": junk}}),
            &rules,
        );
        assert!(ids.identifiers.is_empty(), "{junk:?}");
        assert_eq!(ids.rejected[0].reason, RejectReason::Blocked);
    }
    // "1-0" is not made only of zeros and dashes.
    let ids = extract(&json!({"type": "track", "userId": "1-0"}), &rules);
    assert_eq!(ids.identifiers, vec![id("user_id", "1-0")]);
}

#[test]
fn invalid_email_and_phone_are_reported_not_linked() {
    let event =
        json!({"type": "identify", "userId": "u", "traits": {"email": "n/a", "phone": "12"}});
    let ids = extract(&event, &Rules::default());
    assert_eq!(ids.identifiers, vec![id("user_id", "u")]);
    let rejected: Vec<_> = ids
        .rejected
        .iter()
        .map(|r| (r.id_type.as_str(), r.raw.as_str(), r.reason))
        .collect();
    assert_eq!(
        rejected,
        vec![
            ("email", "n/a", RejectReason::Invalid),
            ("phone", "12", RejectReason::Invalid)
        ]
    );
}

#[test]
fn configured_blocked_values_custom_traits_and_region() {
    let config: Config = serde_json::from_value(json!({
        "default_region": "de",
        "trait_identifiers": ["loyalty_id"],
        "blocked_values_by_type": { "device_id": ["00000000-0000-0000-0000-000000000000x", "emulator"] },
    }))
    .unwrap();
    let rules = Rules::new(&config).unwrap();
    let event = json!({
        "type": "track",
        "anonymousId": "a",
        "context": {
            "device": { "id": "Emulator" },
            "traits": { "loyalty_id": "L-1", "phone": "030 12345678" },
        }
    });
    let ids = extract(&event, &rules);
    assert_eq!(
        ids.identifiers,
        vec![
            id("anonymous_id", "a"),
            id("phone", "+493012345678"),
            id("loyalty_id", "L-1")
        ]
    );
    assert_eq!(ids.rejected.len(), 1);
    // Only this type blocks "emulator".
    let ids = extract(&json!({"type": "track", "anonymousId": "emulator"}), &rules);
    assert_eq!(ids.identifiers, vec![id("anonymous_id", "emulator")]);
}

#[test]
fn group_traits_describe_the_group_not_the_person() {
    let event = json!({"type": "group", "userId": "u", "groupId": "g", "traits": {"email": "corp@example.com"}});
    assert_eq!(
        extract(&event, &Rules::default()).identifiers,
        vec![id("user_id", "u")]
    );
}

#[test]
fn malformed_events_yield_nothing_and_do_not_panic() {
    let rules = Rules::default();
    for event in [
        json!(null),
        json!([]),
        json!("x"),
        json!({"context": 5}),
        json!({"context": {"externalIds": {"id": 1}}}),
        json!({"context": {"externalIds": [1, null]}}),
        json!({"type": "identify", "traits": [1]}),
        json!({"context": {"locale": "e"}}),
    ] {
        let ids = extract(&event, &rules);
        assert!(ids.identifiers.is_empty(), "{event}");
    }
}

#[test]
fn invalid_configs_are_refused() {
    let bad = [
        json!({"default_region": "XX"}),
        json!({"limits": {"email": 0}}),
        json!({"priority": ["email", "email"]}),
        json!({"shared_identifier_bound": 0}),
    ];
    for config in bad {
        let config: Config = serde_json::from_value(config).unwrap();
        assert!(Rules::new(&config).is_err(), "{config:?}");
    }
    assert!(serde_json::from_value::<Config>(json!({"limit": {}})).is_err());
}

#[test]
fn an_empty_config_section_means_the_defaults() {
    let empty: Config = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty, Config::default());
    assert!(Rules::new(&empty).is_ok());
    let round_trip: Config =
        serde_json::from_value(serde_json::to_value(Config::default()).unwrap()).unwrap();
    assert_eq!(round_trip, Config::default());
    let rules = Rules::default();
    assert_eq!(rules.limit(&IdType::UserId), 1);
    assert_eq!(rules.limit(&IdType::parse("crm_id")), 5);
    let ranks: Vec<u32> = [
        "user_id",
        "email",
        "phone",
        "crm_id",
        "device_id",
        "anonymous_id",
    ]
    .iter()
    .map(|t| rules.rank(&IdType::parse(t)))
    .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
}
