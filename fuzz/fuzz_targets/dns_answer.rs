//! DNS answers to the scanner's CNAME queries (cloaking checks): read from a UDP datagram
//! the resolver sends. The query id the parser expects is taken from the datagram, so that
//! most inputs get past the id check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_scan::dns;

fuzz_target!(|data: &[u8]| {
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    if let Ok(Some(name)) = dns::parse_cname(data, id) {
        // A CNAME target comes from at most 128 labels of at most 63 bytes each.
        assert!(name.len() <= 128 * 64, "{} bytes", name.len());
    }
    // The query side: a host name from the input.
    if let Ok(host) = std::str::from_utf8(data) {
        if let Ok(query) = dns::encode_query(id, host) {
            assert_eq!(dns::parse_cname(&query, id), Ok(None));
        }
    }
});
