//! Record linkage inputs (`sightline link dedupe|pair`): the mapping file (TOML) and the
//! records CSV, resolved against each other, planned, and linked when small. The input is
//! the mapping, a NUL byte and the CSV; without a NUL byte it is all CSV, with the
//! mapping recognised from the column names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_linkage::{dedupe, plan_dedupe, Dataset, LinkOptions, Mapping};

fuzz_target!(|data: &[u8]| {
    let (mapping, csv) = match data.iter().position(|&b| b == 0) {
        Some(at) => {
            let Ok(text) = std::str::from_utf8(&data[..at]) else {
                return;
            };
            let Ok(mapping) = Mapping::from_toml_str(text) else {
                return;
            };
            (mapping, &data[at + 1..])
        }
        None => (Mapping::default(), data),
    };
    let Ok(records) = Dataset::from_csv_reader(csv, "id") else {
        return;
    };
    let _ = records.skipped_rows();
    let opts = LinkOptions {
        mapping,
        threads: 1,
        u_sample_pairs: 200,
        max_comparisons: 10_000,
        ..LinkOptions::default()
    };
    if plan_dedupe(&records, &opts).is_ok() && records.len() <= 50 {
        let _ = dedupe(&records, &opts);
    }
});
