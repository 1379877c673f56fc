//! Properties over random event streams on a small identifier universe, so that collisions,
//! conflicts, limits and shared identifiers happen often.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{json, Value};
use sightline_identity::{
    extract, normalise_email, normalise_phone, resolve, Change, Config, Graph, IdType, Identifier,
    ProfileId, Region, Rules,
};

fn pick(values: &'static [&'static str]) -> impl Strategy<Value = Option<&'static str>> {
    prop::option::weighted(0.6, prop::sample::select(values))
}

const USERS: &[&str] = &["u0", "u1", "u2", "u3", "null", "0"];
const ANONS: &[&str] = &["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"];
const EMAILS: &[&str] = &[
    "e0@x.io",
    "E1@x.io",
    "e2@x.io",
    "e3@x.io",
    "test@test.com",
    "junk",
];
const DEVICES: &[&str] = &["d0", "d1", "d2", "d3", "-1"];
const CRM: &[&str] = &["c0", "c1", "c2"];

fn event() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["identify", "track", "alias", "page"][..]),
        (pick(USERS), pick(ANONS), pick(ANONS)),
        (pick(EMAILS), pick(DEVICES), pick(CRM)),
    )
        .prop_map(|(kind, (user, anon, previous), (email, device, crm))| {
            let mut event = json!({"type": kind, "context": {"traits": {}}});
            if let Some(user) = user {
                event["userId"] = json!(user);
            }
            if let Some(anon) = anon {
                event["anonymousId"] = json!(anon);
            }
            if let Some(previous) = previous {
                event["previousId"] = json!(previous);
            }
            if let Some(email) = email {
                event["context"]["traits"]["email"] = json!(email);
            }
            if let Some(device) = device {
                event["context"]["device"] = json!({"id": device});
            }
            if let Some(crm) = crm {
                event["context"]["externalIds"] = json!([{"id": crm, "type": "crm_id"}]);
            }
            event
        })
}

fn stream() -> impl Strategy<Value = Vec<(i64, Value)>> {
    prop::collection::vec(event(), 0..60).prop_map(|events| (1..).zip(events).collect())
}

fn rules() -> impl Strategy<Value = Rules> {
    (
        (1u32..3, 1u32..3, 1u32..4, 1u32..4, 1u32..3),
        1u32..4,
        prop::sample::subsequence(&["a1", "d2", "e3@x.io", "c0"][..], 0..3),
    )
        .prop_map(|((user, email, device, anon, other), bound, blocked)| {
            let limits = [
                ("user_id", user),
                ("email", email),
                ("device_id", device),
                ("anonymous_id", anon),
            ];
            Rules::new(&Config {
                limits: limits.iter().map(|&(t, n)| (t.to_owned(), n)).collect(),
                default_limit: other,
                shared_identifier_bound: bound,
                blocked_values: Config::default()
                    .blocked_values
                    .into_iter()
                    .chain(blocked.into_iter().map(str::to_owned))
                    .collect(),
                ..Config::default()
            })
            .unwrap()
        })
}

fn rebuild(events: &[(i64, Value)], rules: &Rules) -> Graph {
    Graph::rebuild(events.iter().map(|(seq, e)| (*seq, e)), rules)
}

/// Profiles as sets of identifiers, independent of ids.
fn partition(graph: &Graph) -> BTreeSet<BTreeSet<Identifier>> {
    graph
        .profiles()
        .into_iter()
        .map(|p| p.identifiers.iter().cloned().collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn limits_are_never_exceeded(events in stream(), rules in rules()) {
        let graph = rebuild(&events, &rules);
        for profile in graph.profiles() {
            let mut counts: BTreeMap<&IdType, u32> = BTreeMap::new();
            for identifier in &profile.identifiers {
                *counts.entry(&identifier.id_type).or_default() += 1;
            }
            for (id_type, count) in counts {
                prop_assert!(count <= rules.limit(id_type), "{id_type}: {count} in {profile:?}");
            }
        }
    }

    #[test]
    fn blocked_values_never_link(events in stream(), rules in rules()) {
        let graph = rebuild(&events, &rules);
        for profile in graph.profiles() {
            for identifier in &profile.identifiers {
                prop_assert!(!rules.is_blocked(&identifier.id_type, &identifier.value), "{identifier}");
            }
        }
    }

    #[test]
    fn profiles_holding_different_user_ids_never_merge(events in stream(), rules in rules()) {
        let mut graph = Graph::new();
        for (seq, event) in &events {
            let ids = extract(event, &rules);
            let resolution = resolve(&ids, &graph.slice(&ids), &rules, *seq);
            let mut joined: BTreeSet<ProfileId> = BTreeSet::new();
            for change in &resolution.changes {
                if let Change::Merge { from, into, .. } = change {
                    joined.extend([*from, *into]);
                }
            }
            let identified = joined
                .iter()
                .filter(|&&p| graph.profile(p).is_some_and(|p| p.identifiers.iter().any(|i| i.id_type == IdType::UserId)))
                .count();
            prop_assert!(identified <= 1, "seq {seq} merges {identified} identified profiles");
            graph.apply(resolution);
        }
    }

    #[test]
    fn chunked_incremental_processing_equals_one_rebuild(
        events in stream(),
        rules in rules(),
        cuts in prop::collection::vec(0usize..60, 0..6),
    ) {
        let whole = rebuild(&events, &rules);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
        cuts.extend([0, events.len()]);
        cuts.sort_unstable();
        let mut state = Graph::new();
        for window in cuts.windows(2) {
            // Each chunk starts from the state the previous one left, as a processor
            // resuming from its checkpoint does, and resolves against loaded slices (the
            // rebuild reads the graph directly), so this also checks slices are complete.
            let mut graph = state.clone();
            let chunk = &events[window[0]..window[1]];
            let extracted: Vec<_> = chunk.iter().map(|(seq, e)| (*seq, extract(e, &rules))).collect();
            for (seq, ids) in &extracted {
                let resolution = resolve(ids, &graph.slice(ids), &rules, *seq);
                graph.apply(resolution);
            }
            state = graph;
        }
        prop_assert_eq!(&state, &whole);
        prop_assert_eq!(partition(&state), partition(&whole));
    }

    /// Without limits, conflicts, blocked values or shared flags, profiles are exactly the
    /// connected components of "seen on one event", whatever the order. (With limits or
    /// user_id conflicts, order decides which link is refused: the log order is the truth.)
    #[test]
    fn order_does_not_matter_when_no_rule_refuses(
        events in prop::collection::vec(event(), 0..40).prop_shuffle(),
        permutation in Just(()).prop_perturb(|_, rng| rng),
    ) {
        let rules = Rules::new(&Config {
            limits: BTreeMap::new(),
            default_limit: 1_000,
            shared_identifier_bound: 1_000,
            ..Config::default()
        }).unwrap();
        // Keep at most one user id so that no conflict can arise.
        let events: Vec<Value> = events.into_iter().map(|mut e| {
            if e.get("userId").is_some() { e["userId"] = json!("u0"); }
            e
        }).collect();
        let forward: Vec<(i64, Value)> = (1..).zip(events.iter().cloned()).collect();
        let mut shuffled = events;
        let mut rng = permutation;
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.random_range(0..=i));
        }
        let shuffled: Vec<(i64, Value)> = (1..).zip(shuffled).collect();
        prop_assert_eq!(partition(&rebuild(&forward, &rules)), partition(&rebuild(&shuffled, &rules)));
    }

    #[test]
    fn normalisation_never_panics(text in ".{0,40}", digits in "[0-9 +()-]{0,30}") {
        let _ = normalise_email(&text);
        for region in ["US", "GB", "DE", "FR", "JP", "IN"] {
            let region: Region = region.parse().unwrap();
            let _ = normalise_phone(&text, region);
            let _ = normalise_phone(&digits, region);
        }
        let mut graph = Graph::new();
        let event = json!({"type": "identify", "userId": text, "traits": {"email": text, "phone": digits}});
        graph.process(1, &event, &Rules::default());
    }
}
