//! Identity resolution throughput: 1,000,000 synthetic events over 200,000 people through
//! the in-memory resolver from their stored JSON text (parse + extract + resolve + apply,
//! `Graph::process_text`), against a same-run baseline that only parses and extracts the
//! same events (`extract_text`).
//!
//! cargo run --release --example bench_resolve

#[path = "../tests/common/population.rs"]
mod population;

use std::hint::black_box;
use std::time::{Duration, Instant};

use sightline_identity::{extract_text, normalise_phone, Graph, Region, Rules};

const EVENTS: usize = 1_000_000;
const PEOPLE: usize = 200_000;
/// The two measurements alternate block by block, so that both see the same share of a
/// shared machine.
const BLOCK: usize = 10_000;

fn main() {
    let rules = Rules::default();
    let events = population::generate(PEOPLE, EVENTS, 42);
    let mut people: Vec<usize> = events.iter().map(|e| e.person).collect();
    people.sort_unstable();
    people.dedup();
    let bodies: Vec<(i64, String)> = events
        .into_iter()
        .map(|e| (e.seq, e.body.to_string()))
        .collect();
    // The phone metadata loads once per process; keep that start-up cost out of both timings.
    if let Ok(region) = "US".parse::<Region>() {
        black_box(normalise_phone("(201) 555-0123", region));
    }

    let mut graph = Graph::new();
    let mut extract_time = Duration::ZERO;
    let mut resolve_time = Duration::ZERO;
    let mut landed = 0usize;
    for block in bodies.chunks(BLOCK) {
        let started = Instant::now();
        for (_, body) in block {
            black_box(extract_text(body, &rules));
        }
        let extracted = Instant::now();
        for (seq, body) in block {
            landed += usize::from(graph.process_text(*seq, body, &rules).is_some());
        }
        extract_time += extracted - started;
        resolve_time += extracted.elapsed();
    }
    let baseline = bodies.len() as f64 / extract_time.as_secs_f64();
    let measured = bodies.len() as f64 / resolve_time.as_secs_f64();
    println!(
        "{} events ({landed} on a profile), {} profiles for {} people; extract_only {:.2} s, resolve {:.2} s",
        bodies.len(),
        graph.profile_count(),
        people.len(),
        extract_time.as_secs_f64(),
        resolve_time.as_secs_f64(),
    );
    println!(
        "{{\"bench\":\"identity_resolve\",\"events\":{EVENTS},\"events_per_s\":{measured:.0},\"baseline\":\"extract_only\",\"baseline_events_per_s\":{baseline:.0},\"ratio\":{:.3}}}",
        measured / baseline
    );
}
