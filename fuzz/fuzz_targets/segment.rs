//! Segment tracking payloads as the collector reads them (`POST /v1/{track,…}` and
//! `/v1/batch`): the first byte picks the call (one of the six types, or a batch), the rest
//! is the (already inflated) body. Every event the collector prepares must be a JSON object
//! that carries its messageId and type, since that text is what the log stores.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_collect::normalize::{Call, Limits, Received};
use sightline_core::EventType;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let call = match pick % 8 {
        n @ 0..=5 => Call::Single(EventType::ALL[n as usize]),
        _ => Call::Batch,
    };
    sightline_fuzz::check_segment(
        call,
        body,
        &Limits::default(),
        Received {
            at: 1_700_000_000_000,
            gpc: pick & 0x80 != 0,
        },
    );
});
