//! Google Consent Mode parameters from tag requests: `gcs` and `gcd` in a URL, a query
//! string or a form body, and the JSON form; and the consent a Segment event carries
//! (`context.consent`, the signals the consent gate reads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_consent::{
    ConsentModeState, EventSignals, Gcd, Gcs, GoogleTagConsent, Policy, SegmentConsent,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Gcs::parse(text);
    let _ = Gcd::parse(text);
    if let Ok(consent) = GoogleTagConsent::from_url(text) {
        let _ = consent.state();
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = ConsentModeState::from_json(&value);
        let _ = SegmentConsent::from_event(&value);
        let _ = sightline_consent::segment::is_preference_update(&value);
        let signals = EventSignals::read(&value);
        let _ = signals.named();
        let _ = signals.raw();
        let _ = signals.tcf();
        let named: Vec<_> = signals.named().into_iter().map(|(_, s)| s).collect();
        let _ = Policy::default().decide(&named);
    }
});
