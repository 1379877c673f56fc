//! Journey TOML: the scanner's journey file (steps, actions, browser, consent, dns and
//! inventory tables) and its inventory, and the governance registry's import of it. A
//! journey the registry accepts exports to a file it reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(journey) = sightline_scan::Journey::parse(text) {
        let _ = journey.check_scannable(false);
        let _ = journey.default_scenarios();
        let _ = journey.custom_refusals();
        let _ = journey.filled_values();
        for scenario in journey.default_scenarios() {
            let _ = journey.consent_choice(&scenario);
        }
    }
    let _ = sightline_scan::journey::Inventory::parse(text);
    if let Ok(journey) = sightline_govern::journey::Journey::from_scanner_toml(text) {
        let exported = journey
            .to_scanner_toml()
            .expect("an accepted journey exports");
        match sightline_govern::journey::Journey::from_scanner_toml(&exported) {
            Ok(again) => assert_eq!(again, journey, "journey round trip via {exported}"),
            Err(e) => panic!("an exported journey does not import: {e}\n{exported}"),
        }
    }
});
