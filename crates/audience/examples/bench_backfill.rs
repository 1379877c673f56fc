//! Backfill benchmark: 1,000,000 synthetic historical events over 100,000 profiles evaluated
//! for 10 audiences, against a same-run baseline that only reads each event's fields once.
//! Prints one JSON line last: `cargo run --release --example bench_backfill`.

use serde_json::{json, Map, Value};
use sightline_audience::{Audience, Cause, Event, EventType, MembershipState, Millis, Profile};
use std::hint::black_box;
use std::time::Instant;

const EVENTS: usize = 1_000_000;
const PROFILES: usize = 100_000;
const DAY: Millis = 86_400_000;
const NOW: Millis = 1_764_000_000_000;

const AUDIENCES: [&str; 10] = [
    r#"event "Order Completed" count >= 1 within 30d"#,
    r#"event "Order Completed" where total > 100 count >= 2 within 90d"#,
    r#"event "Product Viewed" count >= 3 within 7d and not event "Order Completed" within 7d"#,
    r#"trait plan = "pro" and consent advertising"#,
    r#"has email and consent advertising and event "Order Completed" within 60d"#,
    r#"event page count >= 5 within 14d"#,
    r#"event "Order Completed" count = 0 within 90d and event "Product Viewed" within 30d"#,
    r#"(trait plan = "team" or trait plan = "pro") and event "Signed In" within 1d"#,
    r#"event "Added To Cart" within 3d and not event "Order Completed" within 3d and consent advertising"#,
    r#"has phone and event "Order Completed" where currency = "EUR" count >= 1"#,
];

const TRACK_NAMES: [&str; 4] = [
    "Product Viewed",
    "Added To Cart",
    "Order Completed",
    "Signed In",
];

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct LogEvent {
    seq: i64,
    profile: u32,
    event_type: EventType,
    name: &'static str,
    timestamp: Millis,
    properties: Map<String, Value>,
}

impl LogEvent {
    fn view(&self) -> Event<'_> {
        Event {
            seq: self.seq,
            event_type: self.event_type,
            name: Some(self.name),
            timestamp: self.timestamp,
            properties: &self.properties,
        }
    }
}

fn profiles(rng: &mut Rng) -> Vec<Profile> {
    (0..PROFILES)
        .map(|_| {
            let mut profile = Profile::default();
            let plan = ["free", "free", "pro", "team"][rng.below(4) as usize];
            profile.traits.insert("plan".into(), json!(plan));
            for (identifier, percent) in [("email", 60), ("phone", 30), ("user_id", 80)] {
                if rng.below(100) < percent {
                    profile.identifiers.insert(identifier.into());
                }
            }
            for (purpose, percent) in [("advertising", 50), ("analytics", 70)] {
                if rng.below(100) < percent {
                    profile.consents.insert(purpose.into());
                }
            }
            profile
        })
        .collect()
}

/// Events over the last 90 days, in log (time) order.
fn events(rng: &mut Rng) -> Vec<LogEvent> {
    let mut timestamps: Vec<Millis> = (0..EVENTS)
        .map(|_| NOW - 90 * DAY + rng.below(90 * DAY as u64) as Millis)
        .collect();
    timestamps.sort_unstable();
    timestamps
        .into_iter()
        .enumerate()
        .map(|(i, timestamp)| {
            let profile = rng.below(PROFILES as u64) as u32;
            let mut properties = Map::new();
            let (event_type, name) = if rng.below(10) < 2 {
                properties.insert("url".into(), json!("https://shop.example/"));
                (EventType::Page, "Home")
            } else {
                let currency = if rng.below(4) == 0 { "EUR" } else { "USD" };
                properties.insert("total".into(), json!(rng.below(30_000) as f64 / 100.0));
                properties.insert("currency".into(), json!(currency));
                (
                    EventType::Track,
                    TRACK_NAMES[rng.below(TRACK_NAMES.len() as u64) as usize],
                )
            };
            LogEvent {
                seq: i as i64 + 1,
                profile,
                event_type,
                name,
                timestamp,
                properties,
            }
        })
        .collect()
}

/// The baseline: touch each event once, reading the fields an audience reads.
fn plain_scan(events: &[LogEvent]) -> u64 {
    let mut checksum = 0u64;
    for event in events {
        let view = black_box(event.view());
        let total = view
            .properties
            .get("total")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        checksum = checksum
            .wrapping_add(view.seq as u64 ^ view.timestamp as u64)
            .wrapping_add(view.name.map_or(0, str::len) as u64)
            .wrapping_add(total as u64)
            .wrapping_add(event.profile as u64);
    }
    checksum
}

fn main() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let profiles = profiles(&mut rng);
    let events = events(&mut rng);
    let audiences: Vec<Audience> = AUDIENCES
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            Audience::parse(format!("audience_{i}"), rule).expect("benchmark rules parse")
        })
        .collect();

    let start = Instant::now();
    black_box(plain_scan(&events));
    let baseline_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut states: Vec<MembershipState> = (0..PROFILES)
        .flat_map(|_| audiences.iter().map(Audience::new_state))
        .collect();
    let mut changes = 0usize;
    for (p, profile) in profiles.iter().enumerate() {
        let id = p.to_string();
        for (a, audience) in audiences.iter().enumerate() {
            changes += usize::from(
                audience
                    .refresh(
                        &mut states[p * audiences.len() + a],
                        &id,
                        profile,
                        NOW,
                        Cause::Timer,
                    )
                    .is_some(),
            );
        }
    }
    for event in &events {
        let p = event.profile as usize;
        let view = event.view();
        for (a, audience) in audiences.iter().enumerate() {
            // The profile id is only read when membership changes; a real processor has it.
            let change = audience.apply_event(
                &mut states[p * audiences.len() + a],
                "",
                &profiles[p],
                &view,
                NOW,
            );
            changes += usize::from(change.is_some());
        }
    }
    let seconds = start.elapsed().as_secs_f64();

    for (a, audience) in audiences.iter().enumerate() {
        let members = (0..PROFILES)
            .filter(|p| states[p * audiences.len() + a].is_member())
            .count();
        println!("{:>7} members  {}", members, audience.rule());
    }
    println!("{changes} membership changes");
    let events_per_s = EVENTS as f64 / seconds;
    let baseline_events_per_s = EVENTS as f64 / baseline_seconds;
    println!(
        "{}",
        json!({
            "bench": "audience_backfill",
            "events": EVENTS,
            "audiences": audiences.len(),
            "events_per_s": events_per_s.round(),
            "baseline": "plain_scan",
            "baseline_events_per_s": baseline_events_per_s.round(),
            "ratio": (events_per_s / baseline_events_per_s * 1e4).round() / 1e4,
        })
    );
}
