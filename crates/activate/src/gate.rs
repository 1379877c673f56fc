//! Which events a destination gets: its event filter, then the consent gate. Pure: an
//! event and a destination in, a [`Route`] out.
//!
//! The gate takes the consent in force for the event's profile at the event's time, from
//! the profile's consent ledger, and the signals the event itself carries (read by
//! [`EventSignals`]); it lets the event through only if every purpose the destination
//! requires is granted, a denial from either winning. A purpose nothing states is not
//! granted.

use serde_json::Value;
use sightline_consent::{ConsentState, Decision, EventSignals, Policy};
use sightline_core::{Destination, EventType};
use std::collections::BTreeMap;

/// What a destination does with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Its filter does not want the event: skipped and not logged.
    Filtered,
    /// Its consent does not grant a required purpose: withheld and logged.
    Suppressed(Suppression),
    Deliver,
}

/// Why an event was withheld: the first required purpose that was not granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub purpose: String,
    /// `Denied` or `NotStated`.
    pub decision: Decision,
    /// What denied the purpose (empty when nothing stated it): the event's own signals by
    /// where they were read, and the consent ledger entry by its seq.
    pub decided_by: Vec<String>,
}

impl std::fmt::Display for Suppression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decision {
            Decision::Denied => write!(
                f,
                "purpose {:?} denied by {}",
                self.purpose,
                self.decided_by.join(", ")
            ),
            _ => write!(
                f,
                "purpose {:?} not granted: no consent signal states it",
                self.purpose
            ),
        }
    }
}

/// The event filter: empty lists let everything through. Names match a track call's
/// `event` or a page or screen call's `name`.
pub fn wants(destination: &Destination, event_type: EventType, event: &Value) -> bool {
    let type_ok = destination.event_types.is_empty()
        || destination
            .event_types
            .iter()
            .any(|t| t == event_type.as_str());
    let name_ok = destination.event_names.is_empty() || {
        let name = match event_type {
            EventType::Track => event.get("event"),
            EventType::Page | EventType::Screen => event.get("name"),
            _ => None,
        };
        name.and_then(Value::as_str)
            .is_some_and(|name| destination.event_names.iter().any(|n| n == name))
    };
    type_ok && name_ok
}

/// The consent gate alone: `None` when every required purpose is granted. `ledger` is the
/// consent in force for the event's profile at the event's time, when it is on one.
pub fn consent_gate(
    policy: &Policy,
    required: &[String],
    event: &Value,
    ledger: Option<&ConsentState>,
) -> Option<Suppression> {
    if required.is_empty() {
        return None;
    }
    let signals = EventSignals::read(event);
    let named = signals.named();
    let all: Vec<_> = named.iter().map(|(_, signal)| *signal).collect();
    let carried = policy.decide(&all);
    let in_force = |purpose: &str| ledger.and_then(|state| state.get(purpose));
    let decision = |purpose: &str| combined(&carried, ledger, purpose);
    let purpose = required.iter().find(|p| decision(p) != Decision::Granted)?;
    let mut decided_by: Vec<String> = named
        .iter()
        .filter(|(_, signal)| policy.decide(&[*signal]).get(purpose) == Some(&Decision::Denied))
        .map(|(name, _)| (*name).to_owned())
        .collect();
    // The event's own denial is also the ledger's latest entry: name the ledger only when
    // the denial is older than the event.
    if decided_by.is_empty() {
        if let Some(entry) = in_force(purpose).filter(|s| s.decision == Decision::Denied) {
            decided_by.push(format!("the consent ledger entry at seq {}", entry.seq));
        }
    }
    Some(Suppression {
        purpose: purpose.clone(),
        decision: decision(purpose),
        decided_by,
    })
}

/// What the event's own signals and the ledger's entry together say of `purpose`: a
/// denial from either wins, then a grant.
fn combined(
    carried: &BTreeMap<String, Decision>,
    ledger: Option<&ConsentState>,
    purpose: &str,
) -> Decision {
    let own = carried.get(purpose).copied().unwrap_or(Decision::NotStated);
    let kept = ledger
        .and_then(|state| state.get(purpose))
        .map_or(Decision::NotStated, |s| s.decision);
    match (own, kept) {
        (Decision::Denied, _) | (_, Decision::Denied) => Decision::Denied,
        (Decision::Granted, _) | (_, Decision::Granted) => Decision::Granted,
        _ => Decision::NotStated,
    }
}

/// The decision on every purpose of `policy` for this event, as the gate makes it: what a
/// vendor type reads to fill the vendor's own consent fields (Google's `ad_user_data`,
/// Meta's Limited Data Use) for an event the gate let through.
pub fn decisions(
    policy: &Policy,
    event: &Value,
    ledger: Option<&ConsentState>,
) -> BTreeMap<String, Decision> {
    let signals = EventSignals::read(event);
    let named = signals.named();
    let all: Vec<_> = named.iter().map(|(_, signal)| *signal).collect();
    let carried = policy.decide(&all);
    policy
        .purposes()
        .iter()
        .map(|purpose| (purpose.clone(), combined(&carried, ledger, purpose)))
        .collect()
}

/// The filter, then the consent gate.
pub fn route(
    policy: &Policy,
    destination: &Destination,
    event_type: EventType,
    event: &Value,
    ledger: Option<&ConsentState>,
) -> Route {
    if !wants(destination, event_type, event) {
        return Route::Filtered;
    }
    match consent_gate(policy, &destination.purposes, event, ledger) {
        Some(suppression) => Route::Suppressed(suppression),
        None => Route::Deliver,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use sightline_consent::event::{GPC, SEGMENT_CATEGORIES};
    use sightline_core::DestinationKind;
    use std::collections::BTreeMap;

    pub(crate) fn destination(purposes: &[&str], types: &[&str], names: &[&str]) -> Destination {
        Destination {
            id: 1,
            name: "hook".into(),
            kind: DestinationKind::Webhook,
            url: "http://127.0.0.1:9/".into(),
            purposes: purposes.iter().map(|p| p.to_string()).collect(),
            event_types: types.iter().map(|p| p.to_string()).collect(),
            event_names: names.iter().map(|p| p.to_string()).collect(),
            batch_size: 1,
            transform: json!({}),
            settings: json!({}),
            signing_secret: "s".into(),
            created_at: 0,
            disabled: false,
            approved: true,
        }
    }

    fn track(consent: Value) -> Value {
        json!({"type":"track","event":"Order Completed","userId":"u","context":{"consent":consent}})
    }

    #[test]
    fn granted_purposes_pass_and_necessary_needs_no_signal() {
        let policy = Policy::default();
        let event = track(json!({"categoryPreferences":{"Analytics":true,"Advertising":true}}));
        let both = destination(&["analytics", "advertising"], &[], &[]);
        assert_eq!(
            route(&policy, &both, EventType::Track, &event, None),
            Route::Deliver
        );
        let necessary = destination(&["necessary"], &[], &[]);
        assert_eq!(
            route(&policy, &necessary, EventType::Track, &json!({}), None),
            Route::Deliver
        );
        let none = destination(&[], &[], &[]);
        assert_eq!(
            route(&policy, &none, EventType::Track, &json!({}), None),
            Route::Deliver
        );
    }

    #[test]
    fn a_denial_names_the_purpose_and_the_signal() {
        let policy = Policy::default();
        let event = track(json!({"categoryPreferences":{"Analytics":true,"Advertising":false}}));
        let Route::Suppressed(why) = route(
            &policy,
            &destination(&["analytics", "advertising"], &[], &[]),
            EventType::Track,
            &event,
            None,
        ) else {
            panic!("advertising was denied");
        };
        assert_eq!(why.purpose, "advertising");
        assert_eq!(why.decision, Decision::Denied);
        assert_eq!(why.decided_by, [SEGMENT_CATEGORIES]);
        assert_eq!(
            why.to_string(),
            "purpose \"advertising\" denied by context.consent.categoryPreferences"
        );
    }

    #[test]
    fn gpc_denies_advertising_even_when_the_cmp_grants_it() {
        let policy = Policy::default();
        let mut event = track(json!({"categoryPreferences":{"Advertising":true}}));
        event["gpc"] = json!(true);
        let why = consent_gate(&policy, &["advertising".into()], &event, None).unwrap();
        assert_eq!(why.decided_by, [GPC]);
        assert!(consent_gate(&policy, &["functional".into()], &event, None).is_some());
    }

    #[test]
    fn silence_is_not_consent() {
        let policy = Policy::default();
        let why = consent_gate(
            &policy,
            &["analytics".into()],
            &json!({"type":"track"}),
            None,
        )
        .unwrap();
        assert_eq!(why.decision, Decision::NotStated);
        assert!(why.decided_by.is_empty());
        assert!(why.to_string().contains("no consent signal"));
        // A malformed signal says nothing either.
        let bad =
            track(json!({"categoryPreferences":{"Analytics":"yes"}, "tcf": "not a TC string"}));
        assert!(consent_gate(&policy, &["analytics".into()], &bad, None).is_some());
    }

    #[test]
    fn a_us_privacy_string_in_context_is_read() {
        let policy = Policy::default();
        let opted_out = json!({"context":{"tcf":"1YYN"}});
        let why = consent_gate(&policy, &["sale_or_share".into()], &opted_out, None).unwrap();
        assert_eq!(why.decided_by, ["context.tcf"]);
        let not_opted_out = json!({"context":{"consent":{"tcf":"1YNN"}}});
        assert!(consent_gate(&policy, &["sale_or_share".into()], &not_opted_out, None).is_none());
    }

    #[test]
    fn the_filter_matches_types_and_names() {
        let policy = Policy::default();
        let only_orders = destination(&[], &["track"], &["Order Completed"]);
        let order = json!({"event":"Order Completed"});
        assert_eq!(
            route(&policy, &only_orders, EventType::Track, &order, None),
            Route::Deliver
        );
        assert_eq!(
            route(
                &policy,
                &only_orders,
                EventType::Track,
                &json!({"event":"Viewed"}),
                None
            ),
            Route::Filtered
        );
        assert_eq!(
            route(&policy, &only_orders, EventType::Identify, &order, None),
            Route::Filtered
        );
        let pages = destination(&[], &[], &["Home"]);
        assert!(wants(&pages, EventType::Page, &json!({"name":"Home"})));
        assert!(!wants(&pages, EventType::Identify, &json!({"name":"Home"})));
    }

    /// Segment categories of the default mapping and the purposes each grants.
    const CATEGORIES: [(&str, &str); 8] = [
        ("Necessary", "necessary"),
        ("StrictlyNecessary", "necessary"),
        ("Functional", "functional"),
        ("Analytics", "analytics"),
        ("Advertising", "advertising"),
        ("Marketing", "advertising"),
        ("Personalization", "personalization"),
        ("DataSharing", "sale_or_share"),
    ];
    const PURPOSES: [&str; 6] = [
        "necessary",
        "functional",
        "analytics",
        "advertising",
        "personalization",
        "sale_or_share",
    ];

    /// The rule, written independently of the policy code: a purpose is granted when it is
    /// `necessary`, or some category grants it, none denies it and GPC does not opt out of it.
    fn granted(purpose: &str, preferences: &BTreeMap<String, bool>, gpc: bool) -> bool {
        let says = |value: bool| {
            CATEGORIES
                .iter()
                .any(|(c, p)| *p == purpose && preferences.get(*c) == Some(&value))
        };
        purpose == "necessary"
            || (says(true)
                && !says(false)
                && !(gpc && ["advertising", "sale_or_share"].contains(&purpose)))
    }

    proptest! {
        #[test]
        fn no_event_reaches_a_destination_whose_purposes_were_not_granted(
            preferences in proptest::collection::btree_map(
                proptest::sample::select(CATEGORIES.map(|(c, _)| c.to_string()).to_vec()),
                any::<bool>(),
                0..8,
            ),
            gpc in any::<bool>(),
            has_consent in any::<bool>(),
            required in proptest::sample::subsequence(PURPOSES.to_vec(), 0..=6),
        ) {
            let mut event = json!({"type":"track","event":"e","userId":"u"});
            if has_consent {
                event["context"] = json!({"consent":{"categoryPreferences": &preferences}});
            }
            if gpc {
                event["gpc"] = json!(true);
            }
            let effective = if has_consent { preferences.clone() } else { BTreeMap::new() };
            let all_granted = required.iter().all(|p| granted(p, &effective, gpc));
            let destination = destination(&required, &[], &[]);
            let routed = route(&Policy::default(), &destination, EventType::Track, &event, None);
            prop_assert_eq!(routed == Route::Deliver, all_granted, "{:?}", routed);
        }
    }
}
