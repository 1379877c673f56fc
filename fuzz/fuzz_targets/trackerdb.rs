//! The tracker databases the scanner loads (`--tracker-db`): Ghostery's trackerdb.json and
//! DuckDuckGo Tracker Radar's domain_map.json; and a user vendor catalog (TOML), added to
//! the built-in one. Every entry read is found again by a look-up of its host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_scan::Catalog;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entries) = sightline_scan::trackerdb::parse(text) {
        for (host, _) in &entries {
            let _ = sightline_scan::catalog::site_of(host);
        }
    }
    let mut catalog = Catalog::builtin();
    if catalog.extend_from_str(text).is_ok() {
        let _ = catalog.lookup("www.example.com");
        let _ = catalog.lookup_cookie("_ga");
    }
});
