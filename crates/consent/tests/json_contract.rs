//! The JSON printed by `sightline consent decode --json` (PRODUCT.md,
//! docs/consent-json.md).

use serde_json::{json, Value};
use sightline_consent::decode_to_json;

#[test]
fn tcf_json_has_the_product_contract_fields() {
    let json =
        decode_to_json("CQgaaaAQgdOnpAKADBENCWFIAPLAAEPAAAYgAtkUQAAIAAAAAAAAAIAPkQAAAIAA.IAAA")
            .unwrap();
    assert_eq!(json["kind"], "tcf");
    assert_eq!(json["version"], 2);
    assert_eq!(json["cmp_id"], 10);
    assert_eq!(json["cmp_version"], 3);
    assert_eq!(json["consent_language"], "EN");
    assert_eq!(json["vendor_list_version"], 150);
    assert_eq!(json["policy_version"], 5);
    assert_eq!(json["purposes_consent"], json!([1, 2, 3, 4, 7, 9, 10]));
    assert_eq!(json["purposes_li_transparency"], json!([2, 7, 8, 9, 10]));
    assert_eq!(json["special_feature_opt_ins"], json!([1]));
    assert_eq!(json["vendor_consents"], json!([2, 6, 8, 12, 31, 91]));
    assert_eq!(json["vendor_legitimate_interests"], json!([2, 6, 31]));
    assert_eq!(json["publisher_cc"], "DE");
    assert_eq!(json["created"], "2026-03-01T12:00:00.000Z");
    assert_eq!(json["last_updated"], "2026-03-02T08:30:15.300Z");
    assert_eq!(json["last_updated_deciseconds"], 17_724_402_153u64);
    assert_eq!(json["disclosed_vendors"], json!([]));
    assert_eq!(json["allowed_vendors"], Value::Null);
    assert_eq!(json["publisher_tc"], Value::Null);
    assert_eq!(json["publisher_restrictions"], json!([]));
}

#[test]
fn tcf_json_restrictions_and_publisher_tc() {
    let json = decode_to_json(
        "CQiOXTgQiOXTgAHABBDECWFAAOAAAEAAAACYAKIiAEACQRADCAAoAAgAKAB4dABgASABgUACADIA.IAAA",
    )
    .unwrap();
    assert_eq!(
        json["publisher_restrictions"][0],
        json!({"purpose_id": 2, "restriction_type": "not_allowed", "vendors": [1, 2, 3, 4, 5, 30]})
    );
    let json =
        decode_to_json("CQmq3T2Qmq3T2TSA4BITCWFwAHAAAAJAAJCYABMAAUAA.IABu.fAAACEAAAtEg").unwrap();
    assert_eq!(
        json["publisher_tc"],
        json!({
            "purposes_consent": [1, 2, 3],
            "purposes_li_transparency": [2, 7],
            "num_custom_purposes": 5,
            "custom_purposes_consent": [1, 3],
            "custom_purposes_li_transparency": [2, 5]
        })
    );
}

#[test]
fn gpp_json_lists_sections_by_id_and_name() {
    let json = decode_to_json("DBACPeA~CQuMEMAQuMEMAAfACAENCWFgANIAAAAAAAYgF5wBAABAAGAAQAvMABiIAAAA.IAAA.YAAAAAAAAAAA~1YNN~CVYWGBAIBCSY.QA").unwrap();
    assert_eq!(json["kind"], "gpp");
    assert_eq!(json["version"], 1);
    assert_eq!(json["section_ids"], json!([2, 6, 7]));
    let sections = json["sections"].as_array().unwrap();
    assert_eq!(sections[0]["name"], "tcfeuv2");
    assert_eq!(sections[0]["value"]["cmp_id"], 31);
    assert_eq!(
        sections[1],
        json!({"id": 6, "name": "uspv1", "value": {"version": 1, "notice": "Y", "opt_out_sale": "N", "lspa_covered": "N"}})
    );
    assert_eq!(sections[2]["name"], "usnat");
    assert_eq!(sections[2]["value"]["sale_opt_out"], 1);
    assert_eq!(sections[2]["value"]["gpc"], false);
}

#[test]
fn gpp_json_keeps_unknown_sections_raw() {
    let json = decode_to_json("DBABBg~BVQqAAAAAgA").unwrap();
    assert_eq!(
        json["sections"],
        json!([{"id": 8, "name": "usca", "raw": "BVQqAAAAAgA"}])
    );
}

#[test]
fn usp_json() {
    assert_eq!(
        decode_to_json(" 1YYN ").unwrap(),
        json!({"kind": "usp", "version": 1, "notice": "Y", "opt_out_sale": "Y", "lspa_covered": "N"})
    );
    assert_eq!(decode_to_json("1---").unwrap()["opt_out_sale"], "-");
}
