//! Attribution paths CSV (`sightline attribution paths FILE`, ChannelAttribution's
//! format): read, then the whole report over it (every model: heuristics, Markov, Shapley),
//! as the command runs it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_attribution::{paths_report, read_paths_csv, PathsOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(paths) = read_paths_csv(data) else {
        return;
    };
    // The models' cost grows with the number of channels (Shapley) and paths; the fuzzer
    // is after parsing mistakes and the models' edge cases, not their scaling.
    if paths.labels().len() <= 12 && paths.paths().len() <= 200 {
        let _ = paths_report(data, &PathsOptions::default());
    }
});
