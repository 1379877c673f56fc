//! Time windows with a controlled clock: enter on a purchase, exit exactly when the window
//! passes (by timer), re-enter on a new purchase; and the records and definitions as JSON.

use serde_json::{json, Map, Value};
use sightline_audience::{
    Audience, Cause, ComputedTrait, Event, EventType, MembershipChange, Millis, Profile, Transition,
};

const DAY: Millis = 86_400_000;
const T0: Millis = 1_750_000_000_000;

fn purchase<'a>(seq: i64, timestamp: Millis, properties: &'a Map<String, Value>) -> Event<'a> {
    Event {
        seq,
        event_type: EventType::Track,
        name: Some("Order Completed"),
        timestamp,
        properties,
    }
}

#[test]
fn buyers_enter_on_purchase_leave_when_the_window_passes_and_come_back() {
    let audience = Audience::parse(
        "recent buyers",
        r#"event "Order Completed" count >= 1 within 30d"#,
    )
    .unwrap();
    let profile = Profile::default();
    let no_properties = Map::new();
    let mut state = audience.new_state();
    assert_eq!(
        audience.refresh(&mut state, "p1", &profile, T0, Cause::Timer),
        None
    );
    assert_eq!(audience.next_change_at(&state, &profile, T0), None);

    let entered = audience.apply_event(
        &mut state,
        "p1",
        &profile,
        &purchase(7, T0, &no_properties),
        T0,
    );
    assert_eq!(
        entered,
        Some(MembershipChange {
            audience: "recent buyers".into(),
            profile: "p1".into(),
            transition: Transition::Entered,
            at: T0,
            caused_by: Cause::Event(7),
        })
    );

    // The purchase counts for 30 days: the timer is due exactly then, and not a moment before.
    let exit_at = audience.next_change_at(&state, &profile, T0).unwrap();
    assert_eq!(exit_at, T0 + 30 * DAY);
    assert!(audience.evaluate(&state, &profile, exit_at - 1));
    assert_eq!(
        audience.refresh(&mut state, "p1", &profile, exit_at - 1, Cause::Timer),
        None
    );
    let exited = audience
        .refresh(&mut state, "p1", &profile, exit_at, Cause::Timer)
        .unwrap();
    assert_eq!(
        (exited.transition, exited.at, exited.caused_by),
        (Transition::Exited, exit_at, Cause::Timer)
    );
    assert!(
        state.event_states()[0].timestamps().is_empty(),
        "expired timestamps are dropped"
    );
    assert_eq!(audience.next_change_at(&state, &profile, exit_at), None);

    let back_at = T0 + 45 * DAY;
    let reentered = audience.apply_event(
        &mut state,
        "p1",
        &profile,
        &purchase(9, back_at, &no_properties),
        back_at,
    );
    assert_eq!(
        reentered.map(|c| (c.transition, c.caused_by)),
        Some((Transition::Entered, Cause::Event(9)))
    );
    assert_eq!(
        audience.next_change_at(&state, &profile, back_at),
        Some(back_at + 30 * DAY)
    );
}

#[test]
fn a_second_purchase_moves_the_exit_and_old_purchases_never_enter() {
    let audience = Audience::parse("buyers", r#"event "Order Completed" within 30d"#).unwrap();
    let profile = Profile::default();
    let no_properties = Map::new();
    let mut state = audience.new_state();

    // Backfill: a purchase that left the window before it was processed changes nothing.
    let late = audience.apply_event(
        &mut state,
        "p",
        &profile,
        &purchase(1, T0 - 31 * DAY, &no_properties),
        T0,
    );
    assert_eq!(late, None);

    audience
        .apply_event(
            &mut state,
            "p",
            &profile,
            &purchase(2, T0 - 20 * DAY, &no_properties),
            T0,
        )
        .unwrap();
    assert_eq!(
        audience.next_change_at(&state, &profile, T0),
        Some(T0 + 10 * DAY)
    );
    let again = audience.apply_event(
        &mut state,
        "p",
        &profile,
        &purchase(3, T0 - DAY, &no_properties),
        T0,
    );
    assert_eq!(again, None, "already a member");
    assert_eq!(
        audience.next_change_at(&state, &profile, T0),
        Some(T0 + 29 * DAY)
    );
}

#[test]
fn lapsed_customers_enter_by_timer() {
    let audience = Audience::parse(
        "lapsed",
        r#"event "Order Completed" where total > 50 count >= 1 and not event "Order Completed" within 14d"#,
    )
    .unwrap();
    let profile = Profile::default();
    let big: Map<String, Value> = json!({"total": 80}).as_object().unwrap().clone();
    let mut state = audience.new_state();
    assert_eq!(
        audience.apply_event(&mut state, "p", &profile, &purchase(1, T0, &big), T0),
        None
    );
    let at = audience.next_change_at(&state, &profile, T0).unwrap();
    assert_eq!(at, T0 + 14 * DAY);
    let change = audience
        .refresh(&mut state, "p", &profile, at, Cause::Timer)
        .unwrap();
    assert_eq!(
        (change.transition, change.caused_by),
        (Transition::Entered, Cause::Timer)
    );
    assert_eq!(audience.next_change_at(&state, &profile, at), None);
}

#[test]
fn trait_consent_and_identifier_changes_go_through_refresh() {
    let audience = Audience::parse(
        "pro",
        r#"trait plan = "pro" and consent advertising and has email"#,
    )
    .unwrap();
    let mut profile = Profile::default();
    let mut state = audience.new_state();
    profile.traits.insert("plan".into(), json!("pro"));
    profile.identifiers.insert("email".into());
    assert_eq!(
        audience.refresh(&mut state, "p", &profile, T0, Cause::Event(1)),
        None
    );
    profile.consents.insert("advertising".into());
    assert_eq!(
        audience.next_change_at(&state, &profile, T0),
        Some(T0),
        "stale until refreshed"
    );
    let entered = audience
        .refresh(&mut state, "p", &profile, T0, Cause::Event(2))
        .unwrap();
    assert_eq!(
        (entered.transition, entered.caused_by),
        (Transition::Entered, Cause::Event(2))
    );
    profile.consents.remove("advertising");
    let exited = audience
        .refresh(&mut state, "p", &profile, T0 + 1, Cause::Event(3))
        .unwrap();
    assert_eq!(exited.transition, Transition::Exited);
}

#[test]
fn a_merge_combines_event_history_and_retires_the_absorbed_profile() {
    let audience =
        Audience::parse("repeat", r#"event "Order Completed" count >= 2 within 7d"#).unwrap();
    let profile = Profile::default();
    let no_properties = Map::new();
    let (mut web, mut app) = (audience.new_state(), audience.new_state());
    audience.apply_event(
        &mut web,
        "web",
        &profile,
        &purchase(1, T0, &no_properties),
        T0,
    );
    audience.apply_event(
        &mut app,
        "app",
        &profile,
        &purchase(2, T0 + DAY, &no_properties),
        T0 + DAY,
    );
    assert!(!web.is_member() && !app.is_member());

    let merged = audience
        .merge(&mut web, &app, "web", &profile, T0 + DAY, Cause::Event(3))
        .unwrap();
    assert_eq!(
        (merged.transition, merged.profile.as_str()),
        (Transition::Entered, "web")
    );
    assert_eq!(
        audience.remove(&app, "app", T0 + DAY, Cause::Event(3)),
        None
    );
    let gone = audience
        .remove(&web, "web", T0 + 2 * DAY, Cause::Event(4))
        .unwrap();
    assert_eq!(gone.transition, Transition::Exited);
    assert_eq!(
        audience.next_change_at(&web, &profile, T0 + DAY),
        Some(T0 + 7 * DAY)
    );
}

#[test]
fn changes_and_states_serialize_for_storage() {
    let change = MembershipChange {
        audience: "buyers".into(),
        profile: "p1".into(),
        transition: Transition::Exited,
        at: 5,
        caused_by: Cause::Timer,
    };
    assert_eq!(
        serde_json::to_value(&change).unwrap(),
        json!({"audience":"buyers","profile":"p1","transition":"exited","at":5,"caused_by":"timer"})
    );
    let by_event = MembershipChange {
        caused_by: Cause::Event(42),
        ..change
    };
    assert_eq!(
        serde_json::to_value(&by_event).unwrap()["caused_by"],
        json!({"event": 42})
    );

    let audience = Audience::parse("buyers", r#"event "Order Completed" count >= 2"#).unwrap();
    let mut state = audience.new_state();
    let no_properties = Map::new();
    audience.apply_event(
        &mut state,
        "p",
        &Profile::default(),
        &purchase(1, T0, &no_properties),
        T0,
    );
    let stored = serde_json::to_string(&state).unwrap();
    assert_eq!(stored, format!(r#"{{"member":false,"events":[[{T0}]]}}"#));
    assert_eq!(
        serde_json::from_str::<sightline_audience::MembershipState>(&stored).unwrap(),
        state
    );
}

#[test]
fn computed_traits_read_from_json_and_slide_with_time() {
    let definition: ComputedTrait = serde_json::from_value(json!({
        "name": "spend_7d",
        "aggregate": {"kind": "sum", "property": "total"},
        "within": "7d",
        "event": {"type": "track", "name": "Order Completed", "where": [{"name": "total", "op": ">", "value": 0}]}
    }))
    .unwrap();
    let mut state = definition.new_state();
    let first: Map<String, Value> = json!({"total": 19.5}).as_object().unwrap().clone();
    let second: Map<String, Value> = json!({"total": 30}).as_object().unwrap().clone();
    assert_eq!(definition.value(&state, T0), Some(json!(0)));
    assert!(definition.apply(&mut state, &purchase(1, T0, &first), T0));
    assert!(definition.apply(
        &mut state,
        &purchase(2, T0 + 2 * DAY, &second),
        T0 + 2 * DAY
    ));
    assert_eq!(definition.value(&state, T0 + 2 * DAY), Some(json!(49.5)));
    assert_eq!(
        definition.next_change_at(&state, T0 + 2 * DAY),
        Some(T0 + 7 * DAY)
    );
    assert_eq!(definition.value(&state, T0 + 7 * DAY), Some(json!(30)));
    assert_eq!(definition.value(&state, T0 + 9 * DAY), Some(json!(0)));
    definition.expire(&mut state, T0 + 9 * DAY);
    assert_eq!(definition.next_change_at(&state, T0 + 9 * DAY), None);

    let all_time: ComputedTrait = serde_json::from_str(
        r#"{"name":"favourite","aggregate":{"kind":"most_frequent","property":"total"}}"#,
    )
    .unwrap();
    let mut state = all_time.new_state();
    for (seq, properties) in [(1, &first), (2, &second), (3, &second)] {
        all_time.apply(&mut state, &purchase(seq, T0, properties), T0);
    }
    assert_eq!(all_time.value(&state, T0), Some(json!(30)));
    assert_eq!(all_time.next_change_at(&state, T0), None);
}
