//! A gzip-encoded tracking request (`Content-Encoding: gzip`): inflated as the handler
//! does (bounded by the request limit), then read as a batch. An inflated body is never
//! over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_collect::normalize::{Call, Limits, Received};

fuzz_target!(|data: &[u8]| {
    // A small limit, so that bombs and the limit's edge are both reached quickly.
    let limits = Limits {
        max_request_bytes: 64 * 1024,
        ..Limits::default()
    };
    match sightline_collect::inflate_gzip(data, limits.max_request_bytes) {
        Ok(body) => {
            assert!(body.len() <= limits.max_request_bytes);
            sightline_fuzz::check_segment(
                Call::Batch,
                &body,
                &limits,
                Received { at: 0, gpc: false },
            );
        }
        Err(_) => {}
    }
});
