//! A seeded synthetic population with known ground truth, shared by the accuracy test and
//! the benchmark: people with several devices, shared household devices, typo'd and junk
//! emails, alias chains, junk user ids and phones in local formats.

use serde_json::{json, Value};

/// SplitMix64: tiny, fast and good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// One generated event: its log seq, the stored JSON and the person who really sent it.
pub struct SyntheticEvent {
    pub seq: i64,
    pub body: Value,
    pub person: usize,
}

struct Device {
    id: Option<String>,
    anonymous_id: String,
    logged_in: bool,
}

struct Person {
    user_id: String,
    locale: &'static str,
    email: String,
    phone_local: String,
    devices: Vec<Device>,
    resets: u32,
    logs_in: bool,
}

const REGIONS: [(&str, &str); 4] = [
    ("en-US", "(201) 555-"),
    ("en-GB", "07911 12"),
    ("de-DE", "0151 2345"),
    ("fr-FR", "06 12 34"),
];

fn person(index: usize, rng: &mut Rng) -> Person {
    let (locale, prefix) = REGIONS[rng.below(4) as usize];
    let household = index % 40 < 2;
    // Family tablets ask who is using them, so everyone in a household logs in.
    let logs_in = household || rng.chance(0.9);
    // Someone who never logs in cannot be followed across devices by any deterministic
    // rule, so such visitors get one device and the truth stays knowable.
    let device_count = if logs_in {
        1 + rng.below(3) as usize
    } else {
        1
    };
    let devices = (0..device_count)
        .map(|k| Device {
            // One person in twenty shares their first device (a family tablet) with a
            // household member.
            id: match k {
                0 if household => Some(format!("household-{}", index / 40)),
                _ if rng.chance(0.6) => Some(format!("dev-{index}-{k}")),
                _ => None,
            },
            anonymous_id: format!("anon-{index}-{k}-0"),
            logged_in: false,
        })
        .collect();
    Person {
        user_id: format!("user-{index}"),
        locale,
        email: format!("person{index}@example.org"),
        phone_local: format!("{prefix}{:04}", index % 10_000),
        devices,
        resets: 0,
        logs_in,
    }
}

fn context(person: &Person, device: &Device) -> Value {
    let mut context = json!({ "locale": person.locale });
    if let Some(id) = &device.id {
        context["device"] = json!({ "id": id });
    }
    context
}

fn email_trait(person: &Person, index: usize, rng: &mut Rng) -> Value {
    match rng.below(100) {
        0..=3 => json!(format!("person{index}@exmaple.org")),
        4..=5 => json!("test@test.com"),
        6..=7 => json!("n/a"),
        _ => json!(format!("  {}  ", person.email.to_uppercase())),
    }
}

fn next_event(person: &mut Person, index: usize, rng: &mut Rng) -> Value {
    let k = rng.below(person.devices.len() as u64) as usize;
    if person.devices[k].logged_in && rng.chance(0.05) {
        // Logout: the SDK resets the anonymous id.
        person.resets += 1;
        let device = &mut person.devices[k];
        device.logged_in = false;
        device.anonymous_id = format!("anon-{index}-{k}-{}", person.resets);
    }
    let device = &person.devices[k];
    let context = context(person, device);
    // On a shared tablet login comes early.
    let shared = device
        .id
        .as_deref()
        .is_some_and(|d| d.starts_with("household"));
    if !device.logged_in && person.logs_in && rng.chance(if shared { 0.9 } else { 0.5 }) {
        person.devices[k].logged_in = true;
        let device = &person.devices[k];
        if rng.chance(0.15) {
            return json!({
                "type": "alias",
                "previousId": device.anonymous_id,
                "userId": person.user_id,
                "anonymousId": device.anonymous_id,
                "context": context,
            });
        }
        let mut traits = json!({ "name": format!("Person {index}") });
        if rng.chance(0.7) {
            traits["email"] = email_trait(person, index, rng);
        }
        if rng.chance(0.4) {
            traits["phone"] = if rng.chance(0.5) {
                json!(person.phone_local)
            } else {
                json!("12")
            };
        }
        return json!({
            "type": "identify",
            "userId": person.user_id,
            "anonymousId": device.anonymous_id,
            "traits": traits,
            "context": context,
        });
    }
    let kind = if rng.chance(0.5) { "track" } else { "page" };
    let mut event = json!({
        "type": kind,
        "event": "Viewed",
        "anonymousId": device.anonymous_id,
        "properties": { "path": "/" },
        "context": context,
    });
    if device.logged_in {
        event["userId"] = json!(person.user_id);
    } else if rng.chance(0.03) {
        event["userId"] = json!(["null", "undefined", "0", ""][rng.below(4) as usize]);
    }
    event
}

/// `events` events, each from a person drawn at random among `people`; each person's own
/// events follow one another as that person's sessions would.
pub fn generate(people: usize, events: usize, seed: u64) -> Vec<SyntheticEvent> {
    let mut rng = Rng::new(seed);
    let mut persons: Vec<Person> = (0..people).map(|i| person(i, &mut rng)).collect();
    (1..=events as i64)
        .map(|seq| {
            let person = rng.below(people as u64) as usize;
            SyntheticEvent {
                seq,
                body: next_event(&mut persons[person], person, &mut rng),
                person,
            }
        })
        .collect()
}
