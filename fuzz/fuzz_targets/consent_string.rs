//! Consent strings as they arrive in events and on the command line: TCF v2 TC strings,
//! GPP strings (with their TCF, USP and US National sections) and US Privacy strings,
//! through the dispatching `decode` and each decoder. A TC string that decodes and encodes
//! again decodes to the same value; a US Privacy string prints back as read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_consent::{decode, decode_to_json, GppString, TcString, UsNational, UsPrivacy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decode(text);
    let _ = decode_to_json(text);
    let _ = GppString::decode(text);
    let _ = UsNational::decode(text);
    if let Ok(tc) = TcString::decode(text) {
        if let Ok(encoded) = tc.encode() {
            let again = TcString::decode(&encoded).expect("an encoded TC string decodes");
            assert_eq!(again, tc, "TC string round trip: {text} -> {encoded}");
        }
    }
    if let Ok(usp) = UsPrivacy::decode(text) {
        let printed = usp.encode();
        assert_eq!(UsPrivacy::decode(&printed).ok(), Some(usp));
    }
});
