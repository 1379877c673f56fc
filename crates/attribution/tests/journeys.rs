//! From events to journeys and a report over them.

use serde_json::{json, Value};
use sightline_attribution::journeys::{path_set, Dimension};
use sightline_attribution::{
    build_journeys, journeys_report, ChannelGrouper, JourneyConfig, PathsOptions, ProfileEvent,
};

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;

fn page(url: &str, referrer: &str) -> Value {
    json!({"type": "page", "properties": {"url": url, "referrer": referrer}})
}

fn order(revenue: Option<f64>) -> Value {
    match revenue {
        Some(r) => {
            json!({"type": "track", "event": "Order Completed", "properties": {"revenue": r}})
        }
        None => json!({"type": "track", "event": "Order Completed"}),
    }
}

fn events() -> Vec<ProfileEvent> {
    let site = "https://shop.example.com/";
    let mut events: Vec<ProfileEvent> = vec![
        // p1: organic search, then an email click in the same session, then a direct
        // visit two hours later that converts twice, then a Facebook visit.
        ("p1".into(), 0, page(site, "https://www.google.com/")),
        ("p1".into(), 5 * MIN, page("https://shop.example.com/p/1", site)),
        (
            "p1".into(),
            10 * MIN,
            page("https://shop.example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=june", ""),
        ),
        ("p1".into(), 120 * MIN, page(site, "")),
        ("p1".into(), 121 * MIN, order(Some(50.0))),
        ("p1".into(), 122 * MIN, order(Some(20.0))),
        ("p1".into(), 3 * DAY, page(site, "https://l.facebook.com/")),
        // p2: a paid search click seen on a track event, then 40 days later a direct
        // visit that converts: the click is outside the 30-day lookback.
        (
            "p2".into(),
            0,
            json!({"type": "track", "event": "Signed Up", "context": {"campaign": {"source": "google", "medium": "cpc", "name": "brand"}}}),
        ),
        ("p2".into(), 40 * DAY, page(site, "")),
        ("p2".into(), 40 * DAY + MIN, order(None)),
        // p3: a conversion without any touch.
        ("p3".into(), 7, order(Some(5.0))),
    ]
    .into_iter()
    .map(ProfileEvent::from)
    .collect();
    events.reverse(); // input order must not matter
    events
}

fn config() -> JourneyConfig {
    JourneyConfig {
        value_property: Some("revenue".into()),
        ..JourneyConfig::new("Order Completed")
    }
}

#[test]
fn sessions_touches_and_conversions() {
    let journeys = build_journeys(&events(), &config(), &ChannelGrouper::default());
    let channels = |i: usize| -> Vec<&str> {
        journeys[i]
            .touches
            .iter()
            .map(|t| t.channel.as_str())
            .collect()
    };
    assert_eq!(journeys.len(), 5);
    // p1, first conversion: three sessions' worth of touches.
    assert_eq!(journeys[0].profile_id, "p1");
    assert_eq!(channels(0), ["Organic Search", "Email", "Direct"]);
    assert_eq!(journeys[0].converted_at_ms, Some(121 * MIN));
    assert_eq!(journeys[0].value, 50.0);
    assert_eq!(journeys[0].touches[1].campaign.as_deref(), Some("june"));
    // Second conversion in the same session keeps the session's touch.
    assert_eq!(channels(1), ["Direct"]);
    assert_eq!(journeys[1].value, 20.0);
    // What follows stays open.
    assert_eq!(channels(2), ["Organic Social"]);
    assert_eq!(journeys[2].converted_at_ms, None);
    // p2: the paid click is beyond the lookback window.
    assert_eq!(channels(3), ["Direct"]);
    assert_eq!(journeys[3].value, 0.0);
    // p3: converted with nothing to credit.
    assert_eq!(journeys[4].profile_id, "p3");
    assert!(journeys[4].touches.is_empty());
    assert_eq!(journeys[4].converted_at_ms, Some(7));

    let mut longer = config();
    longer.lookback_ms = None;
    let journeys = build_journeys(&events(), &longer, &ChannelGrouper::default());
    let p2: Vec<&str> = journeys
        .iter()
        .find(|j| j.profile_id == "p2")
        .unwrap()
        .touches
        .iter()
        .map(|t| t.channel.as_str())
        .collect();
    assert_eq!(p2, ["Paid Search", "Direct"]);
}

#[test]
fn touch_ages_are_days_before_the_conversion() {
    let journeys = build_journeys(&events(), &config(), &ChannelGrouper::default());
    let paths = path_set(&journeys, Dimension::Channel).unwrap();
    let first = &paths.paths()[0];
    // Organic Search at 0, conversion at 121 min.
    assert!((first.ages[0] - 121.0 / (24.0 * 60.0)).abs() < 1e-12);
    assert_eq!(first.conversions, 1.0);
    let campaigns = path_set(&journeys, Dimension::Campaign).unwrap();
    assert!(campaigns.labels().iter().any(|l| l == "Email / june"));
    assert!(campaigns.labels().iter().any(|l| l == "Direct / (not set)"));
}

#[test]
fn report_over_journeys() {
    let journeys = build_journeys(&events(), &config(), &ChannelGrouper::default());
    let report = journeys_report(&journeys, &PathsOptions::default()).unwrap();
    assert_eq!(report["totals"]["journeys"], 5);
    assert_eq!(report["totals"]["unattributed_conversions"], 1);
    // Three credited conversions (p1 twice, p2 once), worth 70.
    assert_eq!(report["totals"]["conversions"], 3.0);
    assert_eq!(report["totals"]["conversion_value"], 70.0);
    assert_eq!(report["models"]["last_touch"]["Direct"], 3.0);
    assert_eq!(report["models"]["last_non_direct"]["Email"], 1.0);
    assert_eq!(
        report["campaigns"]["models"]["first_touch"]["Organic Search / (not set)"],
        1.0
    );
    assert_eq!(report["options"]["time_decay_unit"], "days");
}
