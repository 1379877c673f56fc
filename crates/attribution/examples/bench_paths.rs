//! Benchmark: 1,000,000 seeded paths over 10 channels, every heuristic model plus the
//! order-1 Markov model, against ChannelAttribution (Python, C++ core) on the same
//! paths in the same run.
//!
//! Run with `cargo run --release --example bench_paths` after `bench/install.sh`.
//! Our time covers parsing the CSV bytes (ChannelAttribution also parses the path
//! strings inside its timed call) and running the models; ChannelAttribution's time
//! covers `heuristic_models` plus `markov_model(order=1)`, measured inside Python.
//! The last stdout line is the JSON result. Set `PYTHON` to choose the interpreter.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{exit, Command};
use std::time::Instant;

use sightline_attribution::models::{
    first_touch, last_non_direct, last_touch, linear, markov, position_based, time_decay,
    PositionWeights,
};
use sightline_attribution::read_paths_csv;

const PATHS: usize = 1_000_000;
const CHANNELS: [&str; 10] = [
    "Organic Search",
    "Paid Search",
    "Email",
    "Direct",
    "Paid Social",
    "Organic Social",
    "Referral",
    "Display",
    "Affiliates",
    "Paid Video",
];
/// Relative frequency of each channel in the generated paths.
const FREQUENCY: [f64; 10] = [9.0, 7.0, 5.0, 6.0, 4.0, 3.0, 3.0, 2.0, 1.0, 1.0];
/// Multiplier on the odds of converting per touch of each channel.
const LIFT: [f64; 10] = [1.3, 1.6, 2.0, 1.1, 0.9, 1.0, 1.2, 0.8, 1.5, 0.9];

/// SplitMix64: a tiny seeded generator, enough for synthetic data.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn channel(&mut self, cumulative: &[f64]) -> usize {
        let target = self.next_f64() * cumulative[cumulative.len() - 1];
        cumulative
            .iter()
            .position(|&c| target < c)
            .unwrap_or(cumulative.len() - 1)
    }
}

fn generate_csv() -> String {
    let mut rng = SplitMix(20_261_124);
    let cumulative: Vec<f64> = FREQUENCY
        .iter()
        .scan(0.0, |sum, f| {
            *sum += f;
            Some(*sum)
        })
        .collect();
    let mut csv = String::with_capacity(PATHS * 48);
    csv.push_str("path,total_conversions,total_conversion_value,total_null\n");
    for _ in 0..PATHS {
        // Path length 1..=12, geometric with mean about 2.5.
        let mut length = 1;
        while length < 12 && rng.next_f64() < 0.6 {
            length += 1;
        }
        let mut odds = 0.04;
        for i in 0..length {
            let channel = rng.channel(&cumulative);
            odds *= LIFT[channel];
            if i > 0 {
                csv.push_str(" > ");
            }
            csv.push_str(CHANNELS[channel]);
        }
        let converted = rng.next_f64() < odds / (1.0 + odds);
        let value = if converted {
            20.0 + 180.0 * rng.next_f64()
        } else {
            0.0
        };
        let _ = writeln!(
            csv,
            ",{},{value:.2},{}",
            u8::from(converted),
            u8::from(!converted)
        );
    }
    csv
}

fn run_sightline(csv: &str) -> Result<f64, Box<dyn Error>> {
    let start = Instant::now();
    let paths = read_paths_csv(csv.as_bytes())?;
    let credits = [
        first_touch(&paths),
        last_touch(&paths),
        last_non_direct(&paths),
        linear(&paths),
        time_decay(&paths, 1.0)?,
        position_based(&paths, PositionWeights::default())?,
        markov(&paths, 1)?.credit,
    ];
    let seconds = start.elapsed().as_secs_f64();
    let total = paths.total_conversions();
    for credit in &credits {
        let sum: f64 = credit.conversions.iter().sum();
        if (sum - total).abs() > 1e-6 * total {
            return Err(format!("credit {sum} does not add up to {total} conversions").into());
        }
    }
    Ok(seconds)
}

fn run_baseline(csv_path: &std::path::Path) -> Result<f64, Box<dyn Error>> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/channelattribution_baseline.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(csv_path)
        .output()
        .map_err(|e| format!("cannot run `{python}`: {e}; install Python 3 or set PYTHON"))?;
    if !output.status.success() {
        return Err(format!(
            "the ChannelAttribution baseline failed; run bench/install.sh first.\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(last)
        .map_err(|e| format!("unexpected baseline output `{last}`: {e}"))?;
    result["baseline_s"]
        .as_f64()
        .ok_or_else(|| format!("baseline output lacks baseline_s: {last}").into())
}

fn main() {
    if let Err(error) = run() {
        eprintln!("bench_paths: {error}");
        exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let csv = generate_csv();
    let dir = std::env::temp_dir().join(format!("sightline-bench-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let csv_path = dir.join("paths.csv");
    std::fs::write(&csv_path, &csv)?;

    let sightline_s = run_sightline(&csv)?;
    println!("sightline: {sightline_s:.3} s");
    let baseline = run_baseline(&csv_path);
    let _ = std::fs::remove_dir_all(&dir);
    let baseline_s = baseline?;
    println!("ChannelAttribution: {baseline_s:.3} s");
    println!(
        "{}",
        serde_json::json!({
            "bench": "attribution",
            "paths": PATHS,
            "channels": CHANNELS.len(),
            "sightline_s": sightline_s,
            "baseline": "ChannelAttribution",
            "baseline_s": baseline_s,
            "ratio": baseline_s / sightline_s,
        })
    );
    Ok(())
}
