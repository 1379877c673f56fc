//! The server's TOML config file (`sightline --config`), with the parts of it that are
//! parsed further: the `[identity]` rules and durations; and a consent mapping file
//! (`consent_mapping`), read as its own TOML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_service::config::FileConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = FileConfig::from_toml_str(text) {
        let identity = config.identity.clone().unwrap_or_default();
        let _ = sightline_identity::Rules::new(&identity);
    }
    if let Ok(policy) = sightline_consent::Policy::from_toml(text) {
        let _ = policy.decide(&[]);
        for purpose in policy.purposes() {
            let _ = policy.always_granted(purpose);
        }
    }
});
