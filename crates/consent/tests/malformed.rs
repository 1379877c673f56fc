//! Malformed input yields an error that says what is wrong and where.

use sightline_consent::{decode, DecodeError, GppString, TcString, UsNational, UsPrivacy};

const VALID_TCF: &str = "CQgaaaAQgdOnpAKADBENCWFIAPLAAEPAAAYgAtkUQAAIAAAAAAAAAIAPkQAAAIAA.IAAA";

#[test]
fn empty_and_unrecognised_strings() {
    assert_eq!(decode("  "), Err(DecodeError::Empty));
    let message = decode("hello world").unwrap_err().to_string();
    assert!(
        message.contains("unrecognised") && message.contains("'1YNN'"),
        "{message}"
    );
}

#[test]
fn truncated_tcf_names_the_missing_field_and_offset() {
    let error = decode(&VALID_TCF[..20]).unwrap_err();
    assert_eq!(
        error,
        DecodeError::Truncated {
            segment: "TCF core segment",
            field: "VendorListVersion",
            offset: 120,
            needed: 12,
            available: 0,
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("VendorListVersion") && message.contains("bit offset 120"),
        "{message}"
    );

    let error = TcString::decode(&VALID_TCF[..40]).unwrap_err().to_string();
    assert!(error.contains("VendorConsents"), "{error}");
}

#[test]
fn bad_base64_names_segment_and_position() {
    let error = decode("CQgaaa*AQgdOnpAKADBENCWFIAPLAAEPAAAYgAtkUQ").unwrap_err();
    assert_eq!(
        error,
        DecodeError::InvalidBase64 {
            segment: "TCF core segment",
            position: 6,
            found: '*'
        }
    );
    let error = TcString::decode(&format!("{}.IA!A", &VALID_TCF[..64])).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::InvalidBase64 {
                position: 2,
                found: '!',
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn padding_and_standard_alphabet_are_tolerated() {
    let standard = VALID_TCF.replace('-', "+").replace('_', "/");
    assert_eq!(TcString::decode(&standard), TcString::decode(VALID_TCF));
    let padded = VALID_TCF.replace(".IAAA", ".IAAA==");
    assert_eq!(TcString::decode(&padded), TcString::decode(VALID_TCF));
}

#[test]
fn wrong_versions_are_reported() {
    // A TCF v1.1 consent string.
    let error = decode("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA").unwrap_err();
    assert_eq!(
        error,
        DecodeError::UnsupportedVersion {
            format: "TCF",
            found: 1,
            supported: 2
        }
    );
    assert!(error.to_string().contains("only version 2"));
    // GPP header version 2.
    let error = decode("DCABTA~1YNN").unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::UnsupportedVersion {
                format: "GPP",
                found: 2,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn unknown_tcf_segment_type() {
    // 'o' = 101000: segment type 5.
    let error = TcString::decode(&format!("{}.oAAA", &VALID_TCF[..64]))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("SegmentType") && error.contains("got 5"),
        "{error}"
    );
}

#[test]
fn duplicate_tcf_segment() {
    let error = TcString::decode(&format!("{VALID_TCF}.IAAA")).unwrap_err();
    assert_eq!(
        error,
        DecodeError::DuplicateSegment {
            segment: "TCF disclosed vendors segment"
        }
    );
}

#[test]
fn bad_gpp_section_ids() {
    // Header declares section 6 but carries no section, or two.
    assert_eq!(
        GppString::decode("DBABTA"),
        Err(DecodeError::GppSectionCount {
            declared: 1,
            found: 0
        })
    );
    assert_eq!(
        GppString::decode("DBABTA~1YNN~1YNN"),
        Err(DecodeError::GppSectionCount {
            declared: 1,
            found: 2
        })
    );
    // Section id list with an unterminated Fibonacci code.
    let error = GppString::decode("DBABAAAA~1YNN").unwrap_err().to_string();
    assert!(
        error.contains("SectionIds.Start") && error.contains("truncated"),
        "{error}"
    );
    // Not a GPP header type.
    let error = GppString::decode("CBABTA~1YNN").unwrap_err().to_string();
    assert!(error.contains("Type") && error.contains("got 2"), "{error}");
    // Empty section.
    assert_eq!(
        GppString::decode("DBABTA~"),
        Err(DecodeError::EmptyGppSection {
            id: 6,
            name: "uspv1"
        })
    );
}

#[test]
fn bad_sections_inside_gpp() {
    let error = decode("DBABTA~1YQN").unwrap_err().to_string();
    assert!(error.starts_with("in GPP section 6 (uspv1): "), "{error}");
    assert!(
        error.contains("opt-out of sale (position 2) is 'Q'"),
        "{error}"
    );
    let error = decode("DBABMA~CQuMEMAQuM").unwrap_err().to_string();
    assert!(
        error.starts_with("in GPP section 2 (tcfeuv2): the TCF core segment is truncated"),
        "{error}"
    );
    let error = UsNational::decode("DVYWGBAIBCSY").unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::UnsupportedVersion {
                format: "GPP usnat",
                found: 3,
                ..
            }
        ),
        "{error}"
    );
    let error = UsNational::decode("CVYWGBAIBCSY.wA")
        .unwrap_err()
        .to_string();
    assert!(error.contains("SubsectionType"), "{error}");
    let error = UsNational::decode("CVYW").unwrap_err().to_string();
    assert!(error.contains("usnat core segment is truncated"), "{error}");
}

#[test]
fn bad_us_privacy_characters() {
    for (text, needle) in [
        ("1YNX", "LSPA (position 3) is 'X'"),
        ("1ZNN", "notice (position 1) is 'Z'"),
        ("0YNN", "version (position 0) is '0'"),
        ("1YNNN", "5 characters"),
        ("1", "1 characters"),
    ] {
        let message = UsPrivacy::decode(text).unwrap_err().to_string();
        assert!(message.contains(needle), "{text}: {message}");
        assert!(
            message.contains("'1YNN'"),
            "says what a valid value looks like: {message}"
        );
    }
}
