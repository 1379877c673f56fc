//! Tracking plans: a plan document (JSON Schema per event, compiled), Segment's
//! tracking-plan export and Iglu self-describing schemas (the two imports), and plan
//! fixes. An imported Segment plan compiles, and exports to a plan that imports again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_plans::{import, Fixes, Plan};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Plan::parse(text);
    let _ = Fixes::parse(text);
    let _ = import::from_iglu(text, None);
    let _ = import::from_iglu(text, Some("Fuzzed"));
    if let Ok((name, document)) = import::from_segment(text) {
        let _ = Plan::compile(document.clone());
        let exported = import::to_segment(name.as_deref().unwrap_or("plan"), &document);
        match import::from_segment(&exported.to_string()) {
            Ok((_, again)) => assert_eq!(again, document, "Segment export round trip: {exported}"),
            Err(e) => panic!("an exported plan does not import: {e}\n{exported}"),
        }
    }
});
