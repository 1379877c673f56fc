//! Strings encoded by the IAB reference libraries (tests/vectors/*.mjs) must
//! decode to the fields those libraries read back from them.

use serde_json::Value;
use sightline_consent::gpp::GppSection;
use sightline_consent::{GppString, TcString, UspFlag};

fn vectors(json: &str) -> Vec<Value> {
    let file: Value = serde_json::from_str(json).expect("vector file is JSON");
    file["vectors"].as_array().expect("vectors array").clone()
}

fn ids<T: Into<u64> + Copy>(ids: &[T]) -> Value {
    ids.iter().map(|&id| id.into()).collect()
}

fn assert_tcf_fields(name: &str, tc: &TcString, expected: &Value) {
    let actual = serde_json::json!({
        "version": TcString::VERSION,
        "created_deciseconds": tc.created.0,
        "last_updated_deciseconds": tc.last_updated.0,
        "cmp_id": tc.cmp_id,
        "cmp_version": tc.cmp_version,
        "consent_screen": tc.consent_screen,
        "consent_language": tc.consent_language,
        "vendor_list_version": tc.vendor_list_version,
        "policy_version": tc.policy_version,
        "is_service_specific": tc.is_service_specific,
        "use_non_standard_texts": tc.use_non_standard_texts,
        "special_feature_opt_ins": ids(&tc.special_feature_opt_ins),
        "purposes_consent": ids(&tc.purposes_consent),
        "purposes_li_transparency": ids(&tc.purposes_li_transparency),
        "purpose_one_treatment": tc.purpose_one_treatment,
        "publisher_cc": tc.publisher_cc,
        "vendor_consents": ids(&tc.vendor_consents),
        "vendor_legitimate_interests": ids(&tc.vendor_legitimate_interests),
        "disclosed_vendors": ids(tc.disclosed_vendors.as_deref().unwrap_or_default()),
        "allowed_vendors": ids(tc.allowed_vendors.as_deref().unwrap_or_default()),
        "publisher_purposes_consent": ids(tc.publisher_tc.as_ref().map_or(&[][..], |p| &p.purposes_consent)),
        "publisher_purposes_li_transparency":
            ids(tc.publisher_tc.as_ref().map_or(&[][..], |p| &p.purposes_li_transparency)),
        "num_custom_purposes": tc.publisher_tc.as_ref().map_or(0, |p| p.num_custom_purposes),
        "custom_purposes_consent": ids(tc.publisher_tc.as_ref().map_or(&[][..], |p| &p.custom_purposes_consent)),
        "custom_purposes_li_transparency":
            ids(tc.publisher_tc.as_ref().map_or(&[][..], |p| &p.custom_purposes_li_transparency)),
    });
    for (field, value) in actual.as_object().unwrap() {
        assert_eq!(value, &expected[field], "{name}: field {field}");
    }
    let mut restrictions: Vec<Value> = tc
        .publisher_restrictions
        .iter()
        .map(|r| {
            serde_json::json!({
                "purpose_id": r.purpose_id,
                "restriction_type": r.restriction_type as u8,
                "vendors": ids(&r.vendors),
            })
        })
        .collect();
    restrictions.sort_by_key(|r| (r["purpose_id"].as_u64(), r["restriction_type"].as_u64()));
    assert_eq!(
        Value::from(restrictions),
        expected["publisher_restrictions"],
        "{name}: publisher_restrictions"
    );
}

#[test]
fn tcf_vectors_decode_field_by_field() {
    let vectors = vectors(include_str!("vectors/tcf.json"));
    assert!(vectors.len() >= 6);
    for vector in &vectors {
        let name = vector["name"].as_str().unwrap();
        let text = vector["tc_string"].as_str().unwrap();
        let tc = TcString::decode(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_tcf_fields(name, &tc, &vector["expected"]);
    }
}

#[test]
fn tcf_vectors_re_encode_to_the_reference_string() {
    for vector in vectors(include_str!("vectors/tcf.json")) {
        let text = vector["tc_string"].as_str().unwrap();
        let tc = TcString::decode(text).unwrap();
        assert_eq!(tc.encode().unwrap(), text, "{}", vector["name"]);
    }
}

/// Bit 229 of the core segment is the vendor consents' IsRangeEncoding flag:
/// the vectors cover both encodings.
#[test]
fn tcf_vectors_cover_bitfield_and_range_vendor_encodings() {
    const IS_RANGE_BIT: usize =
        6 + 36 + 36 + 12 + 12 + 6 + 12 + 12 + 6 + 1 + 1 + 12 + 24 + 24 + 1 + 12 + 16;
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let is_range = |text: &str| {
        let sextet = alphabet
            .find(text.as_bytes()[IS_RANGE_BIT / 6] as char)
            .unwrap();
        (sextet >> (5 - IS_RANGE_BIT % 6)) & 1 == 1
    };
    let vectors = vectors(include_str!("vectors/tcf.json"));
    let encoding = |name: &str| {
        let vector = vectors.iter().find(|v| v["name"] == name).unwrap();
        is_range(vector["tc_string"].as_str().unwrap())
    };
    assert!(!encoding("bitfield_vendors_en"));
    assert!(encoding("range_vendors_fr"));
}

#[test]
fn gpp_vectors_decode_field_by_field() {
    for vector in vectors(include_str!("vectors/gpp.json")) {
        let name = vector["name"].as_str().unwrap();
        let expected = &vector["expected"];
        let gpp = GppString::decode(vector["gpp_string"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            Value::from(gpp.section_ids.clone()),
            expected["section_ids"],
            "{name}"
        );
        assert_eq!(
            gpp.sections.iter().map(GppSection::id).collect::<Vec<_>>(),
            gpp.section_ids,
            "{name}"
        );

        if let Some(usp) = expected.get("uspv1") {
            let actual = gpp
                .us_privacy()
                .unwrap_or_else(|| panic!("{name}: uspv1 missing"));
            let flag = |f: UspFlag| f.as_char().to_string();
            assert_eq!(
                u64::from(actual.version),
                usp["version"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(flag(actual.notice), usp["notice"], "{name}");
            assert_eq!(flag(actual.opt_out_sale), usp["opt_out_sale"], "{name}");
            assert_eq!(flag(actual.lspa_covered), usp["lspa_covered"], "{name}");
        }
        if let Some(usnat) = expected.get("usnat") {
            let actual = serde_json::to_value(gpp.us_national().unwrap()).unwrap();
            for (field, value) in usnat.as_object().unwrap() {
                assert_eq!(&actual[field], value, "{name}: usnat.{field}");
            }
        }
        if let Some(tcf) = expected.get("tcfeuv2") {
            let actual = serde_json::to_value(gpp.tcf_eu_v2().unwrap()).unwrap();
            for (field, value) in tcf.as_object().unwrap() {
                assert_eq!(&actual[field], value, "{name}: tcfeuv2.{field}");
            }
        }
    }
}
