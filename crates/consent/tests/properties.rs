//! Property tests: TCF encode/decode round trip, no panics on any input, and
//! the consent-at-time derivation.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sightline_consent::google::{Gcd, Gcs, GoogleTagConsent};
use sightline_consent::policy::Decision;
use sightline_consent::{
    decode, decode_to_json, Deciseconds, GppString, PublisherRestriction, PublisherTc,
    RestrictionType, TcString, UsNational, UsPrivacy,
};
use sightline_consent::{ConsentChange, Ledger};

fn id_set<T: Ord + Copy + std::fmt::Debug + 'static>(
    ids: impl Strategy<Value = T> + 'static,
    max: usize,
) -> impl Strategy<Value = Vec<T>> {
    proptest::collection::btree_set(ids, 0..=max).prop_map(|set| set.into_iter().collect())
}

/// Vendor ids as scattered ids, long runs, or both, so both encodings occur.
fn vendor_ids() -> impl Strategy<Value = Vec<u16>> {
    let runs = proptest::collection::vec((1u16..3000, 0u16..400), 0..4);
    (id_set(1u16..3000, 30), runs).prop_map(|(scattered, runs)| {
        let mut ids: BTreeSet<u16> = scattered.into_iter().collect();
        for (start, length) in runs {
            ids.extend(start..=start.saturating_add(length));
        }
        ids.into_iter().collect()
    })
}

fn letters() -> impl Strategy<Value = String> {
    "[A-Z]{2}"
}

fn restriction() -> impl Strategy<Value = PublisherRestriction> {
    let kinds = prop_oneof![
        Just(RestrictionType::NotAllowed),
        Just(RestrictionType::RequireConsent),
        Just(RestrictionType::RequireLegitimateInterest),
    ];
    (1u8..=63, kinds, vendor_ids()).prop_map(|(purpose_id, restriction_type, vendors)| {
        PublisherRestriction {
            purpose_id,
            restriction_type,
            vendors,
        }
    })
}

fn publisher_tc() -> impl Strategy<Value = PublisherTc> {
    (0u8..=63).prop_flat_map(|custom| {
        let custom_ids = move || {
            id_set(1u8..=custom.max(1), usize::from(custom)).prop_map(move |ids| {
                ids.into_iter()
                    .filter(|&id| id <= custom)
                    .collect::<Vec<u8>>()
            })
        };
        (
            id_set(1u8..=24, 24),
            id_set(1u8..=24, 24),
            custom_ids(),
            custom_ids(),
        )
            .prop_map(
                move |(purposes_consent, purposes_li_transparency, custom_consent, custom_li)| {
                    PublisherTc {
                        purposes_consent,
                        purposes_li_transparency,
                        num_custom_purposes: custom,
                        custom_purposes_consent: custom_consent,
                        custom_purposes_li_transparency: custom_li,
                    }
                },
            )
    })
}

prop_compose! {
    fn tc_string()(
        times in (0u64..1 << 36, 0u64..1 << 36),
        cmp in (0u16..4096, 0u16..4096, 0u8..64),
        language in letters(),
        country in letters(),
        versions in (0u16..4096, 0u8..64),
        flags in any::<(bool, bool, bool)>(),
        special_features in id_set(1u8..=12, 12),
        purposes_consent in id_set(1u8..=24, 24),
        purposes_li_transparency in id_set(1u8..=24, 24),
        vendor_consents in vendor_ids(),
        vendor_legitimate_interests in vendor_ids(),
        publisher_restrictions in proptest::collection::vec(restriction(), 0..4),
        disclosed_vendors in proptest::option::of(vendor_ids()),
        allowed_vendors in proptest::option::of(vendor_ids()),
        publisher_tc in proptest::option::of(publisher_tc()),
    ) -> TcString {
        TcString {
            created: Deciseconds(times.0),
            last_updated: Deciseconds(times.1),
            cmp_id: cmp.0,
            cmp_version: cmp.1,
            consent_screen: cmp.2,
            consent_language: language,
            vendor_list_version: versions.0,
            policy_version: versions.1,
            is_service_specific: flags.0,
            use_non_standard_texts: flags.1,
            special_feature_opt_ins: special_features,
            purposes_consent,
            purposes_li_transparency,
            purpose_one_treatment: flags.2,
            publisher_cc: country,
            vendor_consents,
            vendor_legitimate_interests,
            publisher_restrictions,
            disclosed_vendors,
            allowed_vendors,
            publisher_tc,
        }
    }
}

/// Every decoder, on the same input; none may panic.
fn decode_everything(text: &str) {
    let _ = decode(text);
    let _ = decode_to_json(text);
    let _ = TcString::decode(text);
    let _ = GppString::decode(text);
    let _ = UsNational::decode(text);
    let _ = UsPrivacy::decode(text);
    let _ = Gcs::parse(text);
    let _ = Gcd::parse(text);
    let _ = GoogleTagConsent::from_url(text);
}

const VECTORS: [&str; 3] = [
    "CQfaJIAQfaJIAEsAVCFRCWFMAP_gAEPgAAqII_QA4AAgMhAlgETAI_AlhACgAUBwgEsAAAAA.IAAA",
    "CQm_ngOQm_ngOA3AJBNLCWFAAJAAAAAAABpYADgIAAAAAAAA.IAEAMAAA.QCWQAoADgASASwAA.cAAAAAAAAAAA",
    "DBACPeA~CQuMEMAQuMEMAAfACAENCWFgANIAAAAAAAYgF5wBAABAAGAAQAvMABiIAAAA.IAAA.YAAAAAAAAAAA~1YNN~CVYWGBAIBCSY.QA",
];

proptest! {
    #[test]
    fn tcf_round_trips(tc in tc_string()) {
        let encoded = tc.encode().unwrap();
        prop_assert_eq!(TcString::decode(&encoded).unwrap(), tc);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_strings(text in "\\PC{0,200}") {
        decode_everything(&text);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_everything(&String::from_utf8_lossy(&bytes));
    }

    /// Strings in the decoders' own alphabets get past the first checks and
    /// exercise the bit-level parsing.
    #[test]
    fn decoders_never_panic_on_plausible_strings(
        prefix in prop_oneof![Just("C"), Just("DB"), Just("1"), Just("G1"), Just("11")],
        body in "[A-Za-z0-9_~.=+/-]{0,300}",
    ) {
        decode_everything(&format!("{prefix}{body}"));
    }

    #[test]
    fn decoders_never_panic_on_corrupted_vectors(
        which in 0..VECTORS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), "[A-Za-z0-9_.~-]"), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut text: Vec<char> = VECTORS[which].chars().collect();
        for (index, replacement) in edits {
            let at = index.index(text.len());
            text[at] = replacement.chars().next().unwrap();
        }
        let text: String = text.into_iter().collect();
        decode_everything(&text);
        decode_everything(&text[..cut.index(text.len() + 1)]);
        if let Ok(tc) = TcString::decode(&text) {
            let encoded = tc.encode().expect("decoded values fit their fields");
            prop_assert_eq!(TcString::decode(&encoded).unwrap(), tc);
        }
    }

    /// The ledger's state at a moment (time, seq) is, per purpose, the last change in
    /// (time, seq) order at or before it that states it, whatever order the changes were
    /// recorded in.
    #[test]
    fn ledger_state_is_the_latest_stated_decision(
        changes in proptest::collection::vec(
            (0i64..40, prop_oneof![Just("analytics"), Just("advertising")],
             prop_oneof![Just(Decision::Granted), Just(Decision::Denied), Just(Decision::NotStated)]),
            0..25,
        ),
        at in 0i64..45,
        seq in 0i64..30,
    ) {
        let changes: Vec<ConsentChange> = changes
            .into_iter()
            .enumerate()
            .map(|(seq, (time, purpose, decision))| ConsentChange {
                at: time,
                seq: seq as i64,
                source: "api".into(),
                signals: BTreeMap::new(),
                decisions: BTreeMap::from([(purpose.to_string(), decision)]),
                jurisdiction: None,
                evidence: Default::default(),
            })
            .collect();
        let mut ledger = Ledger::default();
        for change in changes.iter().rev() {
            ledger.record(change.clone());
        }
        let state = ledger.state_at(at, seq);
        for purpose in ["analytics", "advertising"] {
            prop_assert_eq!(ledger.decision_at(purpose, at, seq), state.get(purpose).copied());
            let expected = changes
                .iter()
                .filter(|c| (c.at, c.seq) <= (at, seq) && c.decisions.get(purpose).is_some_and(|&d| d != Decision::NotStated))
                .max_by_key(|c| (c.at, c.seq));
            match (expected, state.get(purpose)) {
                (None, None) => {}
                (Some(change), Some(actual)) => {
                    prop_assert_eq!(actual.decision, change.decisions[purpose]);
                    prop_assert_eq!((actual.at, actual.seq), (change.at, change.seq));
                }
                (expected, actual) => prop_assert!(false, "{purpose}: expected {expected:?}, got {actual:?}"),
            }
        }
    }
}
