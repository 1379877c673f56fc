//! Resolution rules, scenario by scenario.

use serde_json::{json, Value};
use sightline_identity::{
    extract, resolve, Change, Config, Graph, GraphSlice, IdType, Identifier, IdentifierState,
    ProfileId, ProfileSummary, Rule, Rules,
};

fn id(text: &str) -> Identifier {
    Identifier::parse(text).unwrap()
}

fn run(events: &[(i64, Value)], rules: &Rules) -> Graph {
    Graph::rebuild(events.iter().map(|(seq, e)| (*seq, e)), rules)
}

fn owner(graph: &Graph, text: &str) -> i64 {
    graph.profile_of(&id(text)).unwrap().id.0
}

fn refusals(graph: &Graph, profile: i64) -> Vec<Rule> {
    let history = &graph.profile(ProfileId(profile)).unwrap().history;
    history
        .iter()
        .filter_map(|r| match &r.change {
            Change::Refuse { rule, .. } => Some(*rule),
            _ => None,
        })
        .collect()
}

#[test]
fn identify_joins_anonymous_history_and_explains_it() {
    let rules = Rules::default();
    let graph = run(
        &[
            (3, json!({"type": "page", "anonymousId": "a1"})),
            (
                17,
                json!({"type": "identify", "anonymousId": "a1", "userId": 42}),
            ),
        ],
        &rules,
    );
    assert_eq!(graph.profile_count(), 1);
    let profile = graph.profile_of(&id("user_id:42")).unwrap();
    assert_eq!(profile.id, ProfileId(3));
    assert_eq!(
        profile.explain(),
        vec![
            "profile 3 was created for anonymous_id:a1 by the event at seq 3",
            "anonymous_id:a1 and user_id:42 were joined by the identify call at seq 17",
        ]
    );
}

#[test]
fn alias_joins_previous_id_to_user_id() {
    let rules = Rules::default();
    let graph = run(
        &[
            (1, json!({"type": "track", "anonymousId": "a0"})),
            (2, json!({"type": "track", "userId": "u1"})),
            (
                3,
                json!({"type": "alias", "previousId": "a0", "userId": "u1"}),
            ),
        ],
        &rules,
    );
    assert_eq!(graph.profile_count(), 1);
    let profile = graph.profile_of(&id("user_id:u1")).unwrap();
    assert_eq!(profile.id, ProfileId(1), "the older profile keeps its id");
    assert_eq!(
        profile.explain().last().unwrap(),
        "profile 2 (user_id:u1) was merged into profile 1 (anonymous_id:a0) by the alias call \
         at seq 3; 1 is older and keeps its id"
    );
    assert_eq!(graph.canonical(ProfileId(2)), Some(ProfileId(1)));
}

#[test]
fn profiles_with_different_user_ids_never_merge() {
    let rules = Rules::default();
    let graph = run(
        &[
            (
                1,
                json!({"type": "identify", "userId": "u1", "anonymousId": "a1"}),
            ),
            (
                2,
                json!({"type": "identify", "userId": "u2", "anonymousId": "a1"}),
            ),
            (
                3,
                json!({"type": "track", "userId": "u2", "anonymousId": "a1"}),
            ),
        ],
        &rules,
    );
    assert_eq!(graph.profile_count(), 2);
    assert_eq!(owner(&graph, "anonymous_id:a1"), 1);
    assert_eq!(owner(&graph, "user_id:u2"), 2);
    assert_eq!(refusals(&graph, 2), vec![Rule::ConflictingUserId; 2]);
    assert!(graph.profile(ProfileId(2)).unwrap().explain()[1].contains(
        "anonymous_id:a1 (held by profile 1) was not linked to profile 2 at seq 2: both sides \
         hold a different user_id"
    ));
}

#[test]
fn limits_refuse_the_lower_priority_identifier_and_keep_the_event() {
    let config = Config {
        limits: [("email".to_owned(), 2)].into_iter().collect(),
        ..Config::default()
    };
    let rules = Rules::new(&config).unwrap();
    let mut events = vec![];
    for (seq, email) in [(1, "a@x.io"), (2, "b@x.io"), (3, "c@x.io")] {
        events.push((
            seq,
            json!({"type": "identify", "userId": "u", "traits": {"email": email}}),
        ));
    }
    let mut graph = run(&events, &rules);
    assert_eq!(graph.profile_count(), 1);
    assert!(graph.profile_of(&id("email:c@x.io")).is_none());
    assert_eq!(refusals(&graph, 1), vec![Rule::LimitExceeded]);
    // An event with the over-limit email and an anonymous id lands on the user's profile;
    // the email, new to the graph, cannot join it and is refused again.
    let landed = graph.process(
        4,
        &json!({"type": "track", "userId": "u", "anonymousId": "a", "context": {"traits": {"email": "c@x.io"}}}),
        &rules,
    );
    assert_eq!(landed, Some(ProfileId(1)));
    assert_eq!(owner(&graph, "anonymous_id:a"), 1);
    // Merging two profiles that together break the limit is refused too.
    graph.process(
        5,
        &json!({"type": "identify", "anonymousId": "b", "traits": {"email": "d@x.io"}}),
        &rules,
    );
    graph.process(
        6,
        &json!({"type": "identify", "anonymousId": "b", "traits": {"email": "e@x.io"}}),
        &rules,
    );
    let landed = graph.process(
        7,
        &json!({"type": "track", "userId": "u", "anonymousId": "b"}),
        &rules,
    );
    assert_eq!(landed, Some(ProfileId(1)));
    assert_eq!(graph.profile_count(), 2);
    let profile = graph.profile(ProfileId(1)).unwrap();
    assert!(profile
        .explain()
        .last()
        .unwrap()
        .contains("the profile would hold more email identifiers than its limit (limit_exceeded)"));
}

#[test]
fn blocked_values_never_link() {
    let rules = Rules::default();
    let graph = run(
        &[
            (
                1,
                json!({"type": "track", "userId": "null", "anonymousId": "a1"}),
            ),
            (
                2,
                json!({"type": "track", "userId": "null", "anonymousId": "a2"}),
            ),
            (
                3,
                json!({"type": "identify", "anonymousId": "a3", "traits": {"email": "test@test.com"}}),
            ),
            (
                4,
                json!({"type": "identify", "anonymousId": "a4", "traits": {"email": "test@test.com"}}),
            ),
        ],
        &rules,
    );
    assert_eq!(graph.profile_count(), 4);
    assert_eq!(refusals(&graph, 1), vec![Rule::BlockedValue]);
    assert_eq!(
        graph.profile(ProfileId(1)).unwrap().explain()[1],
        "user_id:null was not linked to profile 1 at seq 1: it is a blocked placeholder value \
         (blocked_value)"
    );
}

#[test]
fn an_identifier_seen_with_too_many_profiles_is_flagged_shared_and_stops_linking() {
    let rules = Rules::default(); // bound 3
    let mut events = vec![];
    for user in 1..=4 {
        events.push((user, json!({"type": "identify", "userId": format!("u{user}"), "context": {"device": {"id": "kiosk"}}})));
    }
    let mut graph = run(&events, &rules);
    let state = graph.identifier(&id("device_id:kiosk")).unwrap();
    assert!(state.shared);
    assert_eq!(state.profile, ProfileId(1));
    assert!(graph.profile(ProfileId(1)).unwrap().explain().last().unwrap().contains(
        "device_id:kiosk was flagged as shared at seq 4: it was seen with 4 profiles, more than \
         the bound of 3"
    ));
    // A new visitor on the kiosk gets a profile of their own.
    let landed = graph.process(
        5,
        &json!({"type": "page", "anonymousId": "fresh", "context": {"device": {"id": "kiosk"}}}),
        &rules,
    );
    assert_eq!(landed, Some(ProfileId(5)));
    // With nothing else to go on, an event lands on the shared identifier's owner.
    let landed = graph.process(
        6,
        &json!({"type": "page", "context": {"device": {"id": "kiosk"}}}),
        &rules,
    );
    assert_eq!(landed, Some(ProfileId(1)));
}

#[test]
fn rebuilding_with_a_new_blocked_value_splits_profiles_joined_only_through_it() {
    let events = [
        (
            1,
            json!({"type": "identify", "userId": "ann", "traits": {"email": "info@corp.io"}}),
        ),
        (
            2,
            json!({"type": "identify", "anonymousId": "b1", "traits": {"email": "info@corp.io"}}),
        ),
        (
            3,
            json!({"type": "identify", "anonymousId": "b1", "traits": {"email": "bob@corp.io"}}),
        ),
        (4, json!({"type": "track", "anonymousId": "b1"})),
    ];
    let before = run(&events, &Rules::default());
    assert_eq!(before.profile_count(), 1);

    let config = Config {
        blocked_values_by_type: [("email".to_owned(), vec!["info@corp.io".to_owned()])].into(),
        ..Config::default()
    };
    let after = run(&events, &Rules::new(&config).unwrap());
    assert_eq!(after.profile_count(), 2);
    assert_eq!(owner(&after, "user_id:ann"), 1);
    assert_eq!(owner(&after, "anonymous_id:b1"), 2);
    assert_eq!(owner(&after, "email:bob@corp.io"), 2);
    assert!(after.profile_of(&id("email:info@corp.io")).is_none());
}

#[test]
fn resolve_works_on_a_slice_a_database_would_load() {
    let rules = Rules::default();
    let event = json!({"type": "identify", "userId": "u9", "anonymousId": "a9", "context": {"device": {"id": "d9"}}});
    let ids = extract(&event, &rules);
    // The store knows a9 (profile 10) and d9 (profile 4, a user's profile).
    let slice = GraphSlice {
        identifiers: vec![
            (
                id("anonymous_id:a9"),
                IdentifierState {
                    profile: ProfileId(10),
                    shared: false,
                    seen_with: vec![],
                },
            ),
            (
                id("device_id:d9"),
                IdentifierState {
                    profile: ProfileId(4),
                    shared: false,
                    seen_with: vec![],
                },
            ),
        ],
        profiles: vec![
            (
                ProfileId(10),
                ProfileSummary::from(vec![(IdType::AnonymousId, 1)]),
            ),
            (
                ProfileId(4),
                ProfileSummary::from(vec![(IdType::UserId, 1), (IdType::DeviceId, 1)]),
            ),
        ],
    };
    assert_eq!(
        serde_json::to_value(&slice.profiles[1].1).unwrap(),
        json!([["user_id", 1], ["device_id", 1]])
    );
    let resolution = resolve(&ids, &slice, &rules, 50);
    assert_eq!(resolution.profile, Some(ProfileId(10)));
    assert_eq!(
        resolution.changes,
        vec![
            Change::Attach {
                profile: ProfileId(10),
                identifier: id("user_id:u9"),
                joined_with: id("anonymous_id:a9"),
                rule: Rule::Identify,
            },
            Change::Refuse {
                identifier: id("device_id:d9"),
                profile: Some(ProfileId(10)),
                owner: Some(ProfileId(4)),
                rule: Rule::ConflictingUserId,
                limit_type: None,
            },
            Change::SeenWith {
                identifier: id("device_id:d9"),
                profile: ProfileId(10)
            },
        ]
    );
    // Changes are plain data a processor can store as JSON.
    let stored = serde_json::to_value(&resolution.changes[0]).unwrap();
    assert_eq!(
        stored,
        json!({"change": "attach", "profile": 10, "identifier": {"type": "user_id", "value": "u9"},
               "joined_with": {"type": "anonymous_id", "value": "a9"}, "rule": "identify"})
    );
}

#[test]
fn events_without_identifiers_land_nowhere() {
    let mut graph = Graph::new();
    let landed = graph.process(
        1,
        &json!({"type": "track", "userId": "undefined"}),
        &Rules::default(),
    );
    assert_eq!(landed, None);
    assert_eq!(graph.profile_count(), 0);
}

#[test]
fn resolve_refuses_blocked_identifiers_it_is_handed_directly() {
    let rules = Rules::default();
    let ids = sightline_identity::EventIdentifiers {
        identifiers: vec![id("user_id:undefined"), id("anonymous_id:a")],
        ..Default::default()
    };
    let resolution = resolve(&ids, &GraphSlice::default(), &rules, 1);
    assert_eq!(
        resolution.changes,
        vec![
            Change::CreateProfile {
                profile: ProfileId(1),
                identifier: id("anonymous_id:a"),
                rule: Rule::SameEvent
            },
            Change::Refuse {
                identifier: id("user_id:undefined"),
                profile: Some(ProfileId(1)),
                owner: None,
                rule: Rule::BlockedValue,
                limit_type: None,
            },
        ]
    );
}

#[test]
fn loosening_a_limit_without_rebuild_merges_once_with_a_clean_history() {
    let tight = Rules::new(&Config {
        limits: [("email".to_owned(), 1)].into(),
        ..Config::default()
    })
    .unwrap();
    let mut graph = run(
        &[
            (
                1,
                json!({"type": "identify", "anonymousId": "a1", "traits": {"email": "x@a.io"}}),
            ),
            (
                2,
                json!({"type": "identify", "anonymousId": "a2", "traits": {"email": "y@a.io"}}),
            ),
            (
                3,
                json!({"type": "track", "anonymousId": "a1", "context": {"device": {"id": "d"}}}),
            ),
            (
                4,
                json!({"type": "track", "anonymousId": "a2", "context": {"device": {"id": "d"}}}),
            ),
        ],
        &tight,
    );
    assert_eq!(graph.profile_count(), 2);
    assert_eq!(refusals(&graph, 1), vec![Rule::LimitExceeded]);
    assert_eq!(refusals(&graph, 2), vec![Rule::LimitExceeded]);
    graph.process(
        5,
        &json!({"type": "track", "anonymousId": "a2", "context": {"device": {"id": "d"}}}),
        &Rules::default(),
    );
    assert_eq!(graph.profile_count(), 1);
    let explained = graph.profile(ProfileId(2)).unwrap().explain();
    assert_eq!(
        explained
            .iter()
            .filter(|s| s.contains("limit_exceeded"))
            .count(),
        1,
        "{explained:#?}"
    );
    assert_eq!(
        explained.last().unwrap(),
        "profile 2 (anonymous_id:a2) was merged into profile 1 (device_id:d) by appearing \
         together on the event at seq 5; 1 is older and keeps its id"
    );
}

/// Resolves and applies one event as a record linkage event, the way the profiles
/// processor does for an identify carrying `context.linkage`.
fn link(graph: &mut Graph, seq: i64, event: &Value, rules: &Rules) {
    let ids = extract(event, rules);
    let resolution = resolve(&ids, &graph.slice(&ids), rules, seq)
        .by_record_linkage(event["context"]["linkage"].clone());
    graph.apply(resolution);
}

#[test]
fn a_record_link_merges_under_merge_protection_with_its_evidence_in_the_history() {
    let mut config = Config::default();
    config.limits.insert("crm_id".to_owned(), 1);
    let rules = Rules::new(&config).unwrap();
    let crm = |seq: i64, crm_id: &str| {
        (
            seq,
            json!({"type": "identify", "context": {"externalIds": [{"type": "crm_id", "id": crm_id}]}}),
        )
    };
    let mut graph = run(
        &[
            (
                1,
                json!({"type": "identify", "userId": "u1", "traits": {"email": "ann@x.io"}}),
            ),
            crm(2, "c1"),
            crm(3, "c2"),
        ],
        &rules,
    );
    let evidence = json!({
        "decision": "auto_link", "left_id": "crm_id:c1", "right_id": "email:ann@x.io",
        "match_probability": 0.99, "match_weight": 6.6, "prior_weight": -3.0,
        "fields": [{"column": "surname", "label": "jaro_winkler >= 0.92", "weight": 9.6,
                    "cumulative_weight": 6.6, "left_value": "smyth", "right_value": "smith"}]
    });
    let linked = json!({"type": "identify", "context": {
        "externalIds": [{"type": "crm_id", "id": "c1"}, {"type": "email", "id": "ann@x.io"}],
        "linkage": evidence}});
    link(&mut graph, 4, &linked, &rules);
    assert_eq!(owner(&graph, "crm_id:c1"), 1);
    let history = &graph.profile(ProfileId(1)).unwrap().history;
    let merge = history.last().unwrap();
    assert!(matches!(
        merge.change,
        Change::Merge {
            from: ProfileId(2),
            into: ProfileId(1),
            rule: Rule::RecordLinkage,
            ..
        }
    ));
    assert_eq!(merge.linkage.as_ref(), Some(&evidence));
    let text = graph.profile(ProfileId(1)).unwrap().explain().join("\n");
    assert!(
        text.contains("merged into profile 1 (email:ann@x.io) by record linkage at seq 4"),
        "{text}"
    );
    assert!(text.contains("match probability 0.990000"), "{text}");
    assert!(text.contains("surname"), "{text}");
    assert!(text.contains("smyth vs smith"), "{text}");

    // A second CRM record would give the profile two crm_ids: merge protection refuses it,
    // and the refusal keeps the evidence of the link it refused.
    let over = json!({"type": "identify", "context": {
        "externalIds": [{"type": "crm_id", "id": "c2"}, {"type": "email", "id": "ann@x.io"}],
        "linkage": {"decision": "accepted", "review": 7, "match_probability": 0.7}}});
    link(&mut graph, 5, &over, &rules);
    assert_eq!(owner(&graph, "crm_id:c2"), 3);
    assert_eq!(refusals(&graph, 1), [Rule::LimitExceeded]);
    let refused = graph
        .profile(ProfileId(3))
        .unwrap()
        .history
        .last()
        .unwrap()
        .clone();
    assert_eq!(refused.linkage.as_ref().unwrap()["review"], 7);
    let text = graph.profile(ProfileId(3)).unwrap().explain().join("\n");
    assert!(text.contains("limit_exceeded"), "{text}");
    assert!(
        text.contains("accepted in clerical review (review 7)"),
        "{text}"
    );
}
