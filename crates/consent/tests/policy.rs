//! Decoded signals through the purpose policy.

use std::collections::BTreeMap;

use serde_json::json;
use sightline_consent::policy::{Decision, Policy, Signal};
use sightline_consent::{decode, ConsentModeState, GoogleTagConsent, SegmentConsent};

fn decide(policy: &Policy, text: &str) -> BTreeMap<String, Decision> {
    let decoded = decode(text).unwrap();
    policy.decide(&[Signal::from(&decoded)])
}

#[test]
fn us_privacy_opt_out_denies_sale_or_share() {
    let policy = Policy::default();
    assert_eq!(decide(&policy, "1YYN")["sale_or_share"], Decision::Denied);
    assert_eq!(decide(&policy, "1YNN")["sale_or_share"], Decision::Granted);
    assert_eq!(
        decide(&policy, "1---")["sale_or_share"],
        Decision::NotStated
    );
    assert_eq!(decide(&policy, "1YYN")["analytics"], Decision::NotStated);
}

#[test]
fn gpp_sections_are_judged_together() {
    // tcfeuv2 (purposes 1, 2, 4, 7), uspv1 1YNN, usnat with sale opted out and GPC off.
    let result = decide(
        &Policy::default(),
        "DBACPeA~CQuMEMAQuMEMAAfACAENCWFgANIAAAAAAAYgF5wBAABAAGAAQAvMABiIAAAA.IAAA.YAAAAAAAAAAA~1YNN~CVYWGBAIBCSY.QA",
    );
    assert_eq!(
        result["sale_or_share"],
        Decision::Denied,
        "usnat opt-out beats uspv1 'N'"
    );
    assert_eq!(
        result["advertising"],
        Decision::Denied,
        "TCF purpose 3 not consented"
    );
    assert_eq!(
        result["analytics"],
        Decision::Denied,
        "TCF purposes 8 and 9 not consented"
    );
    assert_eq!(result["functional"], Decision::NotStated);
    assert_eq!(result["necessary"], Decision::Granted);
}

#[test]
fn usnat_gpc_flag_counts_as_gpc() {
    // usnat with sale/sharing opted out, targeted advertising not opted out, GPC set.
    let result = decide(&Policy::default(), "DBABLA~CVYWGBAIBCSY.YA");
    assert_eq!(result["advertising"], Decision::Denied);
}

#[test]
fn google_tag_and_segment_signals() {
    let policy = Policy::default();
    let tag = GoogleTagConsent::from_url(
        "https://www.google-analytics.com/g/collect?gcs=G101&gcd=13p3r3p3p5l1",
    )
    .unwrap();
    let state = tag.state();
    let result = policy.decide(&[Signal::ConsentMode(&state)]);
    assert_eq!(result["analytics"], Decision::Granted);
    assert_eq!(result["advertising"], Decision::Denied);

    let event = json!({"type": "track", "event": "Order Completed",
        "context": {"consent": {"categoryPreferences": {"analytics": true, "DataSharing": false, "C0009": true}}}});
    let consent = SegmentConsent::from_event(&event).unwrap().unwrap();
    let result = policy.decide(&[Signal::SegmentCategories(&consent.category_preferences)]);
    assert_eq!(result["analytics"], Decision::Granted);
    assert_eq!(result["sale_or_share"], Decision::Denied);
    assert_eq!(result["advertising"], Decision::NotStated);

    let gcm =
        ConsentModeState::from_json(&json!({"ad_storage": "granted", "ad_user_data": "granted",
        "ad_personalization": "granted"}))
        .unwrap();
    let result = policy.decide(&[Signal::ConsentMode(&gcm), Signal::Gpc]);
    assert_eq!(
        result["advertising"],
        Decision::Denied,
        "GPC overrides a Consent Mode grant"
    );
}

/// The custom mapping shown in README-section.md.
#[test]
fn readme_mapping_example_parses_and_applies() {
    let policy = Policy::from_toml(
        r#"
purposes = ["necessary", "analytics", "marketing"]
always_granted = ["necessary"]

[tcf]
legitimate_interest = true

[tcf.purposes]
1 = ["analytics", "marketing"]
4 = ["marketing"]
8 = ["analytics"]

[tcf.special_features]
1 = ["marketing"]

[google_consent_mode]
analytics_storage = ["analytics"]
ad_user_data = ["marketing"]

[us_privacy]
opt_out_sale = ["marketing"]

[gpc]
opt_out = ["marketing"]

[segment.categories]
C0002 = ["analytics"]
C0004 = ["marketing"]
"#,
    )
    .unwrap();
    assert_eq!(policy.purposes(), ["necessary", "analytics", "marketing"]);
    let result = decide(
        &policy,
        "CQgaaaAQgdOnpAKADBENCWFIAPLAAEPAAAYgAtkUQAAIAAAAAAAAAIAPkQAAAIAA.IAAA",
    );
    assert_eq!(
        result["analytics"],
        Decision::Granted,
        "purpose 8 by legitimate interest"
    );
    assert_eq!(result["marketing"], Decision::Granted);
}
