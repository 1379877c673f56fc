//! The consent gate over the consent ledger: over random consent histories and event
//! streams, no event is delivered to a destination whose purposes were not all granted at
//! the event's time. The ledger is kept by the real profiles code; the rule it is checked
//! against is written here independently.

use proptest::prelude::*;
use serde_json::json;
use sightline_activate::gate::{route, Route};
use sightline_consent::Policy;
use sightline_core::{Destination, DestinationKind, EventType, StoredEvent};
use sightline_identity::Rules;
use sightline_profiles::{event_time, EventProfile, Profiles};
use std::collections::BTreeMap;

const PURPOSES: [&str; 2] = ["analytics", "advertising"];

/// One generated event: whose, when (minutes), and what consent it states, if any.
#[derive(Debug, Clone)]
struct Generated {
    person: u8,
    minute: i64,
    stated: BTreeMap<String, bool>,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        0u8..3,
        0i64..30,
        proptest::collection::btree_map(
            proptest::sample::select(PURPOSES.map(String::from).to_vec()),
            any::<bool>(),
            0..=2,
        ),
    )
        .prop_map(|(person, minute, stated)| Generated {
            person,
            minute,
            stated,
        })
}

fn destination(purposes: &[&str]) -> Destination {
    Destination {
        id: 1,
        name: "d".into(),
        kind: DestinationKind::Webhook,
        url: "http://127.0.0.1:9/".into(),
        purposes: purposes.iter().map(|p| p.to_string()).collect(),
        event_types: vec![],
        event_names: vec![],
        batch_size: 1,
        transform: json!({}),
        settings: json!({}),
        signing_secret: "s".into(),
        created_at: 0,
        disabled: false,
        approved: true,
    }
}

/// The rule: a purpose is granted for an event when, of that person's events up to it in
/// the log, the last one in (time, seq) order at or before the event's moment that states
/// the purpose grants it.
fn granted(history: &[(i64, i64, &Generated)], person: u8, at: (i64, i64), purpose: &str) -> bool {
    history
        .iter()
        .filter(|(t, s, g)| g.person == person && (*t, *s) <= at && g.stated.contains_key(purpose))
        .max_by_key(|(t, s, _)| (*t, *s))
        .is_some_and(|(_, _, g)| g.stated[purpose])
}

proptest! {
    #[test]
    fn no_event_reaches_a_destination_its_consent_at_the_time_does_not_grant(
        stream in proptest::collection::vec(generated(), 1..60),
        required in proptest::sample::subsequence(PURPOSES.to_vec(), 1..=2),
    ) {
        let policy = Policy::default();
        let destination = destination(&required);
        let mut profiles = Profiles::new(Rules::default());
        let mut history = Vec::new();
        for (index, g) in stream.iter().enumerate() {
            let seq = index as i64 + 1;
            let mut body = json!({"type":"track","event":"e","userId":format!("u{}", g.person),
                "timestamp": sightline_core::time::format_ms(g.minute * 60_000)});
            if !g.stated.is_empty() {
                body["context"] = json!({"consent": {"purposes": &g.stated}});
            }
            let event = StoredEvent {
                seq,
                source_id: 1,
                message_id: format!("m{seq}"),
                event_type: EventType::Track,
                received_at: 0,
                body: body.to_string(),
            };
            // The deliverer judges an event once the ledger has taken it in, as here.
            profiles.apply(&event);
            let at = event_time(&event, &body);
            history.push((at, seq, g));
            let held = match profiles.locate_event(&body) {
                EventProfile::Held(profile) => Some(profile),
                _ => None,
            };
            let in_force = held
                .and_then(|p| profiles.facts(p))
                .map(|facts| facts.consent.state_at(at, seq));
            prop_assert!(in_force.is_some(), "every event is on a profile");
            let routed = route(&policy, &destination, EventType::Track, &body, in_force.as_ref());
            let all_granted = required.iter().all(|p| granted(&history, g.person, (at, seq), p));
            prop_assert_eq!(routed == Route::Deliver, all_granted, "event {} {:?}: {:?}", seq, g, routed);
        }
    }
}

#[test]
fn the_rule_reads_the_latest_statement_of_the_same_person() {
    let g = Generated {
        person: 0,
        minute: 1,
        stated: BTreeMap::from([("analytics".to_string(), true)]),
    };
    let history = [(60_000, 1, &g)];
    assert!(granted(&history, 0, (60_000, 1), "analytics"));
    assert!(!granted(&history, 0, (59_999, 5), "analytics"));
    assert!(!granted(&history, 1, (60_000, 1), "analytics"));
    assert!(!granted(&history, 0, (60_000, 1), "advertising"));
}
