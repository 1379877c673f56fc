#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_consent::google::{Gcd, Gcs, GoogleTagConsent};
use sightline_consent::{decode_to_json, GppString, TcString, UsNational};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = decode_to_json(&text);
    let _ = TcString::decode(&text);
    let _ = GppString::decode(&text);
    let _ = UsNational::decode(&text);
    let _ = Gcs::parse(&text);
    let _ = Gcd::parse(&text);
    let _ = GoogleTagConsent::from_url(&text);
    if let Ok(tc) = TcString::decode(&text) {
        // Whatever decodes must re-encode and decode to the same value.
        let encoded = tc.encode().expect("decoded values fit their fields");
        assert_eq!(TcString::decode(&encoded).expect("re-encoded string decodes"), tc);
    }
});
