//! Incremental evaluation equals batch recomputation: random event streams (random
//! timestamps, out of order, some in the future), random rules and computed traits, timers
//! fired at `next_change_at`, and merges of two profiles.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sightline_audience::{
    Aggregation, Audience, Cause, CompareOp, Comparison, ComputedTrait, CountCheck, Event,
    EventCondition, EventFilter, EventType, Literal, Millis, Profile, Rule, Span, Test, TimeUnit,
    Transition,
};
use std::collections::BTreeMap;

const MINUTE: Millis = 60_000;
const START: Millis = 1_700_000_000_000;

#[derive(Clone, Debug)]
struct StoredEvent {
    seq: i64,
    name: &'static str,
    timestamp: Millis,
    properties: Map<String, Value>,
}

impl StoredEvent {
    fn view(&self) -> Event<'_> {
        Event {
            seq: self.seq,
            event_type: EventType::Track,
            name: Some(self.name),
            timestamp: self.timestamp,
            properties: &self.properties,
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// An event of profile A or B (B only matters for merges), timestamped relative to now.
    Event {
        name: &'static str,
        offset_minutes: i64,
        v: Option<i64>,
        w: Option<&'static str>,
        to_b: bool,
    },
    Advance {
        minutes: i64,
    },
    SetPlan(Option<&'static str>),
    ToggleConsent,
    SetLifetimeValue(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (
            prop::sample::select(vec!["A", "B", "C"]),
            -20i64..4,
            prop::option::of(-3i64..10),
            prop::option::of(prop::sample::select(vec!["x", "y", "z"])),
            any::<bool>(),
        )
            .prop_map(|(name, offset_minutes, v, w, to_b)| Step::Event { name, offset_minutes, v, w, to_b }),
        4 => (0i64..12).prop_map(|minutes| Step::Advance { minutes }),
        1 => prop::option::of(prop::sample::select(vec!["pro", "free"])).prop_map(Step::SetPlan),
        1 => Just(Step::ToggleConsent),
        1 => (0i64..20).prop_map(Step::SetLifetimeValue),
    ]
}

fn window() -> impl Strategy<Value = Option<Span>> {
    prop::option::weighted(
        0.8,
        (1u32..15).prop_map(|m| Span::new(m, TimeUnit::Minutes).unwrap()),
    )
}

fn filter() -> impl Strategy<Value = EventFilter> {
    let condition = prop_oneof![
        (0i64..8).prop_map(|n| Comparison::new("v", Test::Ge(Literal::Number(n as f64)))),
        (0i64..8).prop_map(|n| Comparison::new("v", Test::Lt(Literal::Number(n as f64)))),
        Just(Comparison::new("w", Test::Exists)),
        Just(Comparison::new("w", Test::Ne(Literal::String("x".into())))),
    ];
    (
        prop::option::of(prop::sample::select(vec!["A", "B"])),
        prop::collection::vec(condition, 0..2),
    )
        .prop_map(|(name, conditions)| EventFilter {
            event_type: None,
            name: name.map(str::to_owned),
            conditions,
        })
}

fn rule() -> impl Strategy<Value = Rule> {
    let op = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ]);
    let event = (filter(), op, 0u32..4, window()).prop_map(|(filter, op, value, within)| {
        Rule::Event(EventCondition {
            filter,
            count: CountCheck { op, value },
            within,
        })
    });
    let leaf = prop_oneof![
        6 => event,
        1 => Just(Rule::Trait(Comparison::new("plan", Test::Eq(Literal::String("pro".into()))))),
        1 => Just(Rule::Consent("advertising".into())),
        1 => Just(Rule::Has("email".into())),
        1 => (0i64..20).prop_map(|n| Rule::Computed(Comparison::new("ltv", Test::Ge(Literal::Number(n as f64))))),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Rule::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Rule::Or),
            inner.prop_map(|r| Rule::Not(Box::new(r))),
        ]
    })
}

/// The rule at `now` over all of the profile's events, straight from its definition.
fn batch_member(rule: &Rule, profile: &Profile, events: &[StoredEvent], now: Millis) -> bool {
    match rule {
        Rule::And(rules) => rules.iter().all(|r| batch_member(r, profile, events, now)),
        Rule::Or(rules) => rules.iter().any(|r| batch_member(r, profile, events, now)),
        Rule::Not(rule) => !batch_member(rule, profile, events, now),
        Rule::Event(condition) => {
            let in_window = |e: &StoredEvent| {
                condition
                    .within
                    .is_none_or(|w| e.timestamp + w.millis() > now)
            };
            let count = events
                .iter()
                .filter(|e| in_window(e) && condition.filter.matches(&e.view()))
                .count();
            condition.count.holds(count)
        }
        Rule::Trait(c) => c.test.matches(profile.traits.get(&c.name)),
        Rule::Computed(c) => c.test.matches(profile.computed.get(&c.name)),
        Rule::Consent(purpose) => profile.consents.contains(purpose),
        Rule::Has(identifier) => profile.identifiers.contains(identifier),
    }
}

struct Run {
    profile: Profile,
    now: Millis,
    seq: i64,
}

impl Run {
    fn event(
        &mut self,
        name: &'static str,
        offset_minutes: i64,
        v: Option<i64>,
        w: Option<&'static str>,
    ) -> StoredEvent {
        self.seq += 1;
        let mut properties = Map::new();
        if let Some(v) = v {
            properties.insert("v".into(), json!(v));
        }
        if let Some(w) = w {
            properties.insert("w".into(), json!(w));
        }
        StoredEvent {
            seq: self.seq,
            name,
            timestamp: self.now + offset_minutes * MINUTE,
            properties,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn incremental_membership_equals_batch_at_every_checkpoint(
        rule in rule(),
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let audience = Audience::new("test", rule.clone()).unwrap();
        let mut run = Run { profile: Profile::default(), now: START, seq: 0 };
        run.profile.identifiers.insert("email".into());
        let mut state = audience.new_state();
        let mut events = Vec::new();
        // Membership as the change records tell it.
        let mut recorded = false;
        let record = |change: Option<sightline_audience::MembershipChange>, recorded: &mut bool| {
            if let Some(change) = change {
                prop_assert_eq!(change.transition == Transition::Entered, !*recorded);
                *recorded = !*recorded;
            }
            Ok(())
        };
        record(audience.refresh(&mut state, "p", &run.profile, run.now, Cause::Timer), &mut recorded)?;

        for step in steps {
            match step {
                Step::Advance { minutes } => {
                    let target = run.now + minutes * MINUTE + 7;
                    while let Some(at) = audience.next_change_at(&state, &run.profile, run.now) {
                        prop_assert!(at > run.now);
                        if at > target {
                            break;
                        }
                        run.now = at;
                        let change = audience.refresh(&mut state, "p", &run.profile, at, Cause::Timer);
                        prop_assert!(change.is_some(), "no change at the announced instant {}", at);
                        prop_assert_eq!(change.as_ref().unwrap().caused_by, Cause::Timer);
                        record(change, &mut recorded)?;
                        prop_assert_eq!(state.is_member(), batch_member(&rule, &run.profile, &events, at));
                    }
                    run.now = target;
                }
                Step::Event { name, offset_minutes, v, w, .. } => {
                    let event = run.event(name, offset_minutes, v, w);
                    let change = audience.apply_event(&mut state, "p", &run.profile, &event.view(), run.now);
                    if let Some(change) = &change {
                        prop_assert_eq!(change.caused_by, Cause::Event(event.seq));
                    }
                    record(change, &mut recorded)?;
                    events.push(event);
                }
                Step::SetPlan(plan) => {
                    match plan {
                        Some(plan) => run.profile.traits.insert("plan".into(), json!(plan)),
                        None => run.profile.traits.remove("plan"),
                    };
                    run.seq += 1;
                    record(audience.refresh(&mut state, "p", &run.profile, run.now, Cause::Event(run.seq)), &mut recorded)?;
                }
                Step::ToggleConsent => {
                    if !run.profile.consents.remove("advertising") {
                        run.profile.consents.insert("advertising".into());
                    }
                    run.seq += 1;
                    record(audience.refresh(&mut state, "p", &run.profile, run.now, Cause::Event(run.seq)), &mut recorded)?;
                }
                Step::SetLifetimeValue(ltv) => {
                    run.profile.computed.insert("ltv".into(), json!(ltv));
                    run.seq += 1;
                    record(audience.refresh(&mut state, "p", &run.profile, run.now, Cause::Event(run.seq)), &mut recorded)?;
                }
            }
            prop_assert_eq!(state.is_member(), batch_member(&rule, &run.profile, &events, run.now));
            prop_assert_eq!(state.is_member(), recorded);
        }
        let bound: usize = rule.event_conditions().iter().map(|c| c.count.retained()).sum();
        let kept: usize = state.event_states().iter().map(|s| s.timestamps().len()).sum();
        prop_assert!(kept <= bound);
    }

    #[test]
    fn merged_profiles_evaluate_as_one(
        rule in rule(),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let audience = Audience::new("test", rule.clone()).unwrap();
        let mut run = Run { profile: Profile::default(), now: START, seq: 0 };
        let (mut a, mut b) = (audience.new_state(), audience.new_state());
        let mut events = Vec::new();
        for step in steps {
            match step {
                Step::Event { name, offset_minutes, v, w, to_b } => {
                    let event = run.event(name, offset_minutes, v, w);
                    let state = if to_b { &mut b } else { &mut a };
                    audience.apply_event(state, "p", &run.profile, &event.view(), run.now);
                    events.push(event);
                }
                Step::Advance { minutes } => run.now += minutes * MINUTE,
                _ => {}
            }
        }
        audience.merge(&mut a, &b, "p", &run.profile, run.now, Cause::Event(run.seq));
        prop_assert_eq!(a.is_member(), batch_member(&rule, &run.profile, &events, run.now));
        for later in [1, 5, 30] {
            let at = run.now + later * MINUTE;
            prop_assert_eq!(audience.evaluate(&a, &run.profile, at), batch_member(&rule, &run.profile, &events, at));
        }
    }
}

fn aggregation() -> impl Strategy<Value = Aggregation> {
    let numeric = || Just("v".to_owned());
    let any_property = || prop::sample::select(vec!["v".to_owned(), "w".to_owned()]);
    prop_oneof![
        Just(Aggregation::Count),
        numeric().prop_map(|property| Aggregation::Sum { property }),
        any_property().prop_map(|property| Aggregation::Min { property }),
        numeric().prop_map(|property| Aggregation::Max { property }),
        any_property().prop_map(|property| Aggregation::First { property }),
        any_property().prop_map(|property| Aggregation::Last { property }),
        any_property().prop_map(|property| Aggregation::MostFrequent { property }),
        Just(Aggregation::FirstSeen),
        Just(Aggregation::LastSeen),
    ]
}

fn computed_trait() -> impl Strategy<Value = ComputedTrait> {
    (aggregation(), window(), filter()).prop_map(|(aggregate, within, event)| ComputedTrait {
        name: "t".into(),
        aggregate,
        within,
        event,
    })
}

/// The trait's value at `now` from its definition, written independently of the crate.
fn batch_value(definition: &ComputedTrait, events: &[StoredEvent], now: Millis) -> Option<Value> {
    let counted: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| {
            definition
                .within
                .is_none_or(|w| e.timestamp + w.millis() > now)
        })
        .filter(|e| definition.event.matches(&e.view()))
        .collect();
    let values = |property: &str| -> Vec<(Millis, i64, Value)> {
        counted
            .iter()
            .filter_map(|e| {
                e.properties
                    .get(property)
                    .map(|v| (e.timestamp, e.seq, v.clone()))
            })
            .collect()
    };
    let numbers = |property: &str| -> Vec<i64> {
        values(property)
            .iter()
            .filter_map(|(_, _, v)| v.as_i64())
            .collect()
    };
    match &definition.aggregate {
        Aggregation::Count => Some(json!(counted.len())),
        Aggregation::Sum { property } => Some(json!(numbers(property).iter().sum::<i64>())),
        Aggregation::Min { property } => numbers(property).into_iter().min().map(|n| json!(n)),
        Aggregation::Max { property } => numbers(property).into_iter().max().map(|n| json!(n)),
        Aggregation::First { property } => values(property)
            .into_iter()
            .min_by_key(|(t, s, _)| (*t, *s))
            .map(|x| x.2),
        Aggregation::Last { property } => values(property)
            .into_iter()
            .max_by_key(|(t, s, _)| (*t, *s))
            .map(|x| x.2),
        Aggregation::MostFrequent { property } => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for (_, _, v) in values(property) {
                *counts.entry(v.to_string()).or_default() += 1;
            }
            let best = counts.values().copied().max()?;
            let (text, _) = counts.iter().find(|(_, &n)| n == best)?;
            serde_json::from_str(text).ok()
        }
        Aggregation::FirstSeen => counted.iter().map(|e| e.timestamp).min().map(|t| json!(t)),
        Aggregation::LastSeen => counted.iter().map(|e| e.timestamp).max().map(|t| json!(t)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn incremental_computed_traits_equal_batch_at_every_checkpoint(
        definition in computed_trait(),
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let mut run = Run { profile: Profile::default(), now: START, seq: 0 };
        let mut state = definition.new_state();
        let (mut a, mut b) = (definition.new_state(), definition.new_state());
        let mut events = Vec::new();
        for step in steps {
            match step {
                Step::Event { name, offset_minutes, v, w, to_b } => {
                    let event = run.event(name, offset_minutes, v, w);
                    definition.apply(&mut state, &event.view(), run.now);
                    definition.apply(if to_b { &mut b } else { &mut a }, &event.view(), run.now);
                    events.push(event);
                }
                Step::Advance { minutes } => {
                    let before = definition.value(&state, run.now);
                    let target = run.now + minutes * MINUTE;
                    match definition.next_change_at(&state, run.now) {
                        Some(at) => {
                            prop_assert!(at > run.now);
                            prop_assert_eq!(definition.value(&state, at - 1), before);
                        }
                        None => prop_assert_eq!(definition.value(&state, target), before),
                    }
                    run.now = target;
                    definition.expire(&mut state, run.now);
                }
                _ => {}
            }
            let expected = batch_value(&definition, &events, run.now);
            prop_assert_eq!(definition.value(&state, run.now), expected.clone());
            let views: Vec<Event<'_>> = events.iter().map(StoredEvent::view).collect();
            prop_assert_eq!(definition.compute(&views, run.now), expected);
        }
        definition.merge(&mut a, &b);
        prop_assert_eq!(definition.value(&a, run.now), batch_value(&definition, &events, run.now));
    }
}
