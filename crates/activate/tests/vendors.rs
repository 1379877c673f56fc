//! Vendor destinations through the real delivery worker and a real store, against local
//! fakes of the vendors' APIs (`fakes/`) that check every request against the documented
//! schema and answer as the vendors do: mapping of every call type, batching by envelope,
//! retries (rate limits, server errors), dead letters and replay, a refused credential
//! holding delivery until replaced, consent suppression and the vendors' consent fields.

#[path = "fakes/mod.rs"]
mod fakes;

use fakes::{Fake, Kind, Scripted};
use serde_json::{json, Value};
use sightline_activate::backoff::Backoff;
use sightline_activate::webhook::Webhook;
use sightline_activate::{BreakerConfig, Deliverer, Settings};
use sightline_consent::Policy;
use sightline_core::{
    time, Delivery, DeliveryStatus, Destination, DestinationKind, EventType, NewDestination,
    NewEvent,
};
use sightline_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    source: i64,
    deliverer: Arc<Deliverer>,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = sightline_store::open(dir.path(), None).await.unwrap();
    let source = store.create_source("web", "hash").await.unwrap().id;
    let settings = Settings {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        breaker: BreakerConfig {
            failures_to_open: 1000,
            ..BreakerConfig::default()
        },
        replay_attempts: 2,
        ..Settings::default()
    };
    let webhook = Webhook::new(Duration::from_secs(10), None).unwrap();
    let deliverer = Deliverer::new(store.clone(), Policy::default(), None, webhook, settings);
    Rig {
        _dir: dir,
        store,
        source,
        deliverer,
    }
}

impl Rig {
    /// A refused credential holds `name`'s delivery: its worker keeps stepping (bounded)
    /// until the fake has seen `requests` requests, and no event has become a dead letter;
    /// then the credential is replaced by `secret`.
    async fn held_until_replaced(&self, name: &str, fake: &Fake, requests: usize, secret: &str) {
        let destination = self.store.destination_by_name(name).await.unwrap().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while fake.seen().len() < requests {
            assert!(Instant::now() < deadline, "{name} was not retried");
            let _ = tokio::time::timeout(
                Duration::from_millis(300),
                self.deliverer.deliver_next(&destination),
            )
            .await;
        }
        assert_eq!(
            self.store
                .deliveries(destination.id, None, 0, 10)
                .await
                .unwrap(),
            vec![],
            "a refused credential must not turn events into dead letters"
        );
        self.store
            .set_destination_secret(destination.id, secret)
            .await
            .unwrap();
    }

    async fn destination(
        &self,
        kind: DestinationKind,
        fake: &Fake,
        settings: Value,
        credential: &str,
        purposes: &[&str],
        batch_size: u32,
    ) -> Destination {
        self.store
            .create_destination(NewDestination {
                name: kind.as_str().into(),
                kind,
                url: fake.url.clone(),
                purposes: purposes.iter().map(|p| p.to_string()).collect(),
                event_types: vec![],
                event_names: vec![],
                batch_size,
                transform: json!({}),
                settings,
                signing_secret: credential.into(),
            })
            .await
            .unwrap()
    }

    /// Appends events (type, body) in one transaction; a messageId `m<i>` each unless set.
    async fn append(&self, events: Vec<(EventType, Value)>) {
        let new = events
            .into_iter()
            .enumerate()
            .map(|(i, (event_type, mut body))| {
                body["type"] = event_type.as_str().into();
                if body.get("messageId").is_none() {
                    body["messageId"] = format!("m{i}").into();
                }
                if body.get("timestamp").is_none() {
                    body["timestamp"] = time::format_ms(time::now_ms() - 60_000).into();
                }
                NewEvent {
                    source_id: self.source,
                    message_id: body["messageId"].as_str().unwrap().into(),
                    event_type,
                    received_at: time::now_ms(),
                    body: body.to_string(),
                }
            })
            .collect();
        self.store.append(new, 0).await.unwrap();
    }

    /// Steps the destination's worker until its checkpoint reaches the end of the log,
    /// reading the destination again at each step (as the server does); bounded.
    async fn deliver_all(&self, name: &str) -> Vec<Delivery> {
        let last = self.store.last_seq().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let destination = self.store.destination_by_name(name).await.unwrap().unwrap();
            let processor = format!("delivery:{}", destination.id);
            if self.store.checkpoint(&processor).await.unwrap() >= last {
                return self
                    .store
                    .deliveries(destination.id, None, 0, 1000)
                    .await
                    .unwrap();
            }
            assert!(Instant::now() < deadline, "delivery to {name} is stuck");
            // Long enough for a step to wait out a Retry-After; a step is cut short only
            // when it holds on something that never clears.
            let step = tokio::time::timeout(
                Duration::from_secs(10),
                self.deliverer.deliver_next(&destination),
            )
            .await;
            if let Ok(result) = step {
                result.unwrap();
            }
        }
    }
}

fn granted(purpose: &str) -> Value {
    json!({"consent": {"purposes": {purpose: true}}})
}

fn statuses(deliveries: &[Delivery]) -> Vec<(String, DeliveryStatus)> {
    deliveries
        .iter()
        .map(|d| (d.message_id.clone(), d.status))
        .collect()
}

fn ga4_settings() -> Value {
    json!({"measurement_id": "G-TEST123"})
}

#[tokio::test]
async fn ga4_gets_every_call_type_mapped_batched_by_client_with_its_consent_fields() {
    let rig = rig().await;
    let fake = Fake::start(Kind::Ga4, "mp-secret").await;
    rig.destination(
        DestinationKind::Ga4,
        &fake,
        ga4_settings(),
        "mp-secret",
        &["analytics"],
        25,
    )
    .await;
    let context = |extra: Value| {
        let mut c = granted("analytics");
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    rig.append(vec![
        (EventType::Track, json!({"anonymousId": "a1", "userId": "u1", "event": "Order Completed",
            "properties": {"order_id": "o1", "revenue": 42, "currency": "usd", "email": "ann@example.com",
                           "products": [{"product_id": "p1", "price": 21, "quantity": 2}]},
            "context": context(json!({"page": {"url": "https://shop.example/thanks"}}))})),
        (EventType::Page, json!({"anonymousId": "a1", "userId": "u1", "name": "Thanks",
            "context": context(json!({"page": {"url": "https://shop.example/thanks"}}))})),
        (EventType::Screen, json!({"anonymousId": "a1", "name": "Home", "context": context(json!({}))})),
        (EventType::Identify, json!({"anonymousId": "a1", "userId": "u1", "traits": {"email": "ann@example.com"}, "context": context(json!({}))})),
        (EventType::Group, json!({"anonymousId": "a1", "userId": "u1", "groupId": "acme", "context": context(json!({}))})),
        (EventType::Alias, json!({"userId": "u1", "previousId": "a1", "context": context(json!({}))})),
        // Another browser: another request, with the consent mode it states.
        (EventType::Track, json!({"anonymousId": "a2", "event": "Video Played",
            "context": context(json!({"consent": {"purposes": {"analytics": true},
                "googleConsentMode": {"ad_user_data": "granted", "ad_personalization": "denied"}}}))})),
        // Analytics refused: never sent.
        (EventType::Track, json!({"anonymousId": "a3", "event": "Video Played",
            "context": {"consent": {"purposes": {"analytics": false}}}})),
    ])
    .await;

    let deliveries = rig.deliver_all("ga4").await;
    assert_eq!(
        statuses(&deliveries),
        [
            ("m0".into(), DeliveryStatus::Delivered),
            ("m1".into(), DeliveryStatus::Delivered),
            ("m4".into(), DeliveryStatus::Delivered),
            ("m6".into(), DeliveryStatus::Delivered),
            ("m7".into(), DeliveryStatus::Suppressed),
        ],
        "screen, identify and alias are skipped (not logged)"
    );
    assert_eq!(fake.problems(), Vec::<String>::new());
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "one request per client: {seen:?}");
    assert_eq!(seen[0].query["api_secret"], "mp-secret");
    assert_eq!(seen[0].query["measurement_id"], "G-TEST123");
    assert_eq!(seen[0].body["client_id"], "a1");
    assert_eq!(seen[0].body["user_id"], "u1");
    assert_eq!(
        seen[0].body["consent"],
        json!({"ad_user_data": "DENIED", "ad_personalization": "DENIED"}),
        "advertising is not granted: silence is refusal"
    );
    let names: Vec<_> = seen[0].body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["purchase", "page_view", "join_group"]);
    let purchase = &seen[0].body["events"][0]["params"];
    assert_eq!(purchase["transaction_id"], "o1");
    assert_eq!(purchase["value"], 42);
    assert_eq!(purchase["currency"], "USD");
    assert_eq!(
        purchase["items"],
        json!([{"item_id": "p1", "price": 21, "quantity": 2}])
    );
    assert!(purchase.get("email").is_none(), "GA4 forbids personal data");
    assert_eq!(seen[1].body["client_id"], "a2");
    assert_eq!(
        seen[1].body["consent"],
        json!({"ad_user_data": "GRANTED", "ad_personalization": "DENIED"})
    );
    assert_eq!(seen[1].body["events"][0]["name"], "video_played");
}

#[tokio::test]
async fn ga4_retries_rate_limits_after_retry_after_and_dead_letters_a_refusal_for_replay() {
    let rig = rig().await;
    let fake = Fake::start(Kind::Ga4, "mp-secret").await;
    rig.destination(
        DestinationKind::Ga4,
        &fake,
        ga4_settings(),
        "mp-secret",
        &[],
        1,
    )
    .await;
    // First event: rate limited (Retry-After: 1), then down, then accepted. Second:
    // refused as invalid, a dead letter.
    fake.script([
        Scripted::RateLimited,
        Scripted::Unavailable,
        Scripted::AsChecked,
        Scripted::Invalid,
    ]);
    rig.append(vec![
        (
            EventType::Track,
            json!({"anonymousId": "a1", "event": "First"}),
        ),
        (
            EventType::Track,
            json!({"anonymousId": "a1", "event": "Second"}),
        ),
    ])
    .await;
    let started = Instant::now();
    let deliveries = rig.deliver_all("ga4").await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not waited for"
    );
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(deliveries[1].status, DeliveryStatus::Dead);
    assert_eq!(deliveries[1].response_code, Some(400));
    assert_eq!(fake.seen().len(), 4);

    let destination = rig.store.destination_by_name("ga4").await.unwrap().unwrap();
    let tally = rig.deliverer.replay_dead(&destination).await.unwrap();
    assert_eq!((tally.delivered, tally.dead), (1, 0));
    let names: Vec<_> = fake
        .accepted_events()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

fn meta_settings() -> Value {
    json!({"pixel_id": "1234567890", "api_version": "v25.0", "action_source": "website"})
}

fn web(extra: Value) -> Value {
    let mut event = json!({"anonymousId": "a1",
        "context": {"page": {"url": "https://shop.example/p"}, "userAgent": "Mozilla/5.0", "ip": "203.0.113.9",
                    "consent": {"purposes": {"advertising": true}},
                    "traits": {"email": " Ann@Example.com ", "phone": "+1 (234) 567-8901"}}});
    event
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    event
}

#[tokio::test]
async fn meta_gets_conversions_with_hashed_user_data_and_event_ids_for_dedup() {
    let rig = rig().await;
    let fake = Fake::start(Kind::Meta, "EAA-token").await;
    rig.destination(
        DestinationKind::Meta,
        &fake,
        meta_settings(),
        "EAA-token",
        &["advertising"],
        1000,
    )
    .await;
    let eight_days_ago = time::format_ms(time::now_ms() - 8 * 24 * 3600 * 1000);
    rig.append(vec![
        (EventType::Track, web(json!({"userId": "u1", "event": "Order Completed", "messageId": "order-1",
            "properties": {"order_id": "o1", "revenue": 42.5, "currency": "EUR",
                           "products": [{"product_id": "p1", "quantity": 1, "price": 42.5}]}}))),
        (EventType::Page, web(json!({"name": "Product"}))),
        (EventType::Identify, web(json!({"userId": "u1"}))),
        (EventType::Screen, web(json!({"name": "Home"}))),
        (EventType::Group, web(json!({"groupId": "g"}))),
        (EventType::Alias, web(json!({"userId": "u1", "previousId": "a1"}))),
        // Older than Meta's 7 days: it would fail the whole batch, so it is refused alone.
        (EventType::Track, web(json!({"event": "Late", "timestamp": eight_days_ago}))),
        // Advertising refused: never sent.
        (EventType::Track, json!({"anonymousId": "a9", "event": "Lead", "context": {"consent": {"purposes": {"advertising": false}}}})),
        // Opted out of sale (US Privacy 1YYN): sent with Limited Data Use.
        (EventType::Track, web(json!({"event": "Lead", "messageId": "ldu-1",
            "context": {"page": {"url": "https://shop.example/p"}, "userAgent": "Mozilla/5.0",
                        "consent": {"purposes": {"advertising": true}, "tcf": "1YYN"}}}))),
    ])
    .await;
    let deliveries = rig.deliver_all("meta").await;
    assert_eq!(
        statuses(&deliveries),
        [
            ("order-1".into(), DeliveryStatus::Delivered),
            ("m1".into(), DeliveryStatus::Delivered),
            ("m6".into(), DeliveryStatus::Dead),
            ("m7".into(), DeliveryStatus::Suppressed),
            ("ldu-1".into(), DeliveryStatus::Delivered),
        ]
    );
    assert!(deliveries[2].reason.as_deref().unwrap().contains("7 days"));
    assert_eq!(fake.problems(), Vec::<String>::new());
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "one batch: {seen:?}");
    assert_eq!(seen[0].path, "/v25.0/1234567890/events");
    let data = seen[0].body["data"].as_array().unwrap();
    let purchase = &data[0];
    assert_eq!(purchase["event_name"], "Purchase");
    assert_eq!(
        purchase["event_id"], "order-1",
        "the messageId, for dedup with the pixel"
    );
    // Meta's own example vectors: test@example.com's hash; 12345678901's.
    let user = &purchase["user_data"];
    assert_eq!(
        user["ph"][0],
        "254aa248acb47dd654ca3ea53f48c2c26d641d23d7e2e93a1ec56258df7674c4"
    );
    assert_ne!(user["em"][0], "ann@example.com");
    assert_eq!(user["client_ip_address"], "203.0.113.9");
    assert_eq!(purchase["custom_data"]["value"], 42.5);
    assert_eq!(purchase["custom_data"]["content_ids"], json!(["p1"]));
    assert_eq!(data[1]["event_name"], "PageView");
    assert!(data[1].get("data_processing_options").is_none());
    assert_eq!(data[2]["event_id"], "ldu-1");
    assert_eq!(data[2]["data_processing_options"], json!(["LDU"]));
    assert!(
        !seen[0].body.to_string().contains("Example.com"),
        "no email in clear"
    );
}

#[tokio::test]
async fn meta_rate_limits_are_retried_and_a_refused_token_holds_delivery_until_replaced() {
    let rig = rig().await;
    let fake = Fake::start(Kind::Meta, "EAA-good").await;
    rig.destination(
        DestinationKind::Meta,
        &fake,
        meta_settings(),
        "EAA-expired",
        &[],
        1000,
    )
    .await;
    rig.append(vec![(EventType::Track, web(json!({"event": "Lead"})))])
        .await;
    // The fake refuses the token (code 190) every time: steps run, nothing is dead.
    rig.held_until_replaced("meta", &fake, 3, "EAA-good").await;
    fake.script([Scripted::RateLimited]);
    let deliveries = rig.deliver_all("meta").await;
    assert_eq!(
        statuses(&deliveries),
        [("m0".into(), DeliveryStatus::Delivered)]
    );
    let tokens: Vec<_> = fake
        .seen()
        .iter()
        .map(|s| s.query["access_token"].clone())
        .collect();
    assert_eq!(tokens.last().map(String::as_str), Some("EAA-good"));
    assert_eq!(
        fake.seen()
            .iter()
            .rev()
            .take(2)
            .map(|s| s.status)
            .collect::<Vec<_>>(),
        [200, 400],
        "rate limited (code 17) once, then accepted"
    );
}

#[tokio::test]
async fn meta_refuses_an_invalid_batch_whole_and_it_becomes_dead_letters() {
    let rig = rig().await;
    let fake = Fake::start(Kind::Meta, "EAA-token").await;
    rig.destination(
        DestinationKind::Meta,
        &fake,
        meta_settings(),
        "EAA-token",
        &[],
        1000,
    )
    .await;
    fake.script([Scripted::Invalid]);
    rig.append(vec![
        (EventType::Track, web(json!({"event": "A"}))),
        (EventType::Track, web(json!({"event": "B"}))),
    ])
    .await;
    let deliveries = rig.deliver_all("meta").await;
    assert_eq!(
        statuses(&deliveries),
        [
            ("m0".into(), DeliveryStatus::Dead),
            ("m1".into(), DeliveryStatus::Dead)
        ]
    );
    let reason = deliveries[0].reason.clone().unwrap();
    assert!(reason.contains("Invalid parameter"), "{reason}");
    assert!(
        !reason.contains("EAA-token"),
        "the token is never in a reason"
    );
}

fn tiktok_settings() -> Value {
    json!({"pixel_code": "C4ABCDEF12345"})
}

#[tokio::test]
async fn tiktok_gets_conversions_with_hashed_user_data_and_event_ids_for_dedup() {
    let rig = rig().await;
    let fake = Fake::start(Kind::Tiktok, "tt-token").await;
    rig.destination(
        DestinationKind::Tiktok,
        &fake,
        tiktok_settings(),
        "tt-token",
        &["advertising"],
        1000,
    )
    .await;
    let eight_days_ago = time::format_ms(time::now_ms() - 8 * 24 * 3600 * 1000);
    rig.append(vec![
        (EventType::Track, web(json!({"userId": "u1", "event": "Order Completed", "messageId": "order-1",
            "properties": {"order_id": "o1", "revenue": 42.5, "currency": "eur",
                           "products": [{"product_id": "p1", "quantity": 1, "price": 42.5}]}}))),
        (EventType::Page, web(json!({"name": "Product"}))),
        (EventType::Identify, web(json!({"userId": "u1"}))),
        (EventType::Screen, web(json!({"name": "Home"}))),
        (EventType::Group, web(json!({"groupId": "g"}))),
        (EventType::Alias, web(json!({"userId": "u1", "previousId": "a1"}))),
        (EventType::Track, web(json!({"event": "Quote Asked"}))),
        // Older than TikTok's 7 days: it would fail the whole request, so it is refused alone.
        (EventType::Track, web(json!({"event": "Late", "timestamp": eight_days_ago}))),
        // Advertising refused: never sent.
        (EventType::Track, json!({"anonymousId": "a9", "event": "Lead", "context": {"consent": {"purposes": {"advertising": false}}}})),
        // Opted out of sale (US Privacy 1YYN): sent with limited_data_use.
        (EventType::Track, web(json!({"event": "Lead", "messageId": "ldu-1",
            "context": {"page": {"url": "https://shop.example/p?ttclid=E.C.P.x1"}, "userAgent": "Mozilla/5.0",
                        "consent": {"purposes": {"advertising": true}, "tcf": "1YYN"}}}))),
    ])
    .await;
    let deliveries = rig.deliver_all("tiktok").await;
    assert_eq!(
        statuses(&deliveries),
        [
            ("order-1".into(), DeliveryStatus::Delivered),
            ("m6".into(), DeliveryStatus::Delivered),
            ("m7".into(), DeliveryStatus::Dead),
            ("m8".into(), DeliveryStatus::Suppressed),
            ("ldu-1".into(), DeliveryStatus::Delivered),
        ],
        "page, identify, screen, group and alias are skipped (not logged)"
    );
    assert!(deliveries[2].reason.as_deref().unwrap().contains("7 days"));
    assert_eq!(fake.problems(), Vec::<String>::new());
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "one batch: {seen:?}");
    assert_eq!(seen[0].headers["access-token"], "tt-token");
    assert_eq!(seen[0].body["event_source"], "web");
    assert_eq!(seen[0].body["event_source_id"], "C4ABCDEF12345");
    let data = seen[0].body["data"].as_array().unwrap();
    let purchase = &data[0];
    assert_eq!(purchase["event"], "CompletePayment");
    assert_eq!(
        purchase["event_id"], "order-1",
        "the messageId, for dedup with the pixel"
    );
    let hash = |s: &str| sightline_activate::vendor::sha256_hex(s).unwrap();
    let user = &purchase["user"];
    assert_eq!(user["email"], hash("ann@example.com"));
    assert_eq!(user["phone"], hash("+12345678901"), "E.164 with its +");
    assert_eq!(user["external_id"], hash("u1"));
    assert_eq!(user["ip"], "203.0.113.9");
    assert_eq!(purchase["properties"]["value"], 42.5);
    assert_eq!(purchase["properties"]["currency"], "EUR");
    assert_eq!(purchase["properties"]["contents"][0]["content_id"], "p1");
    assert_eq!(data[1]["event"], "Quote Asked");
    assert!(data[1].get("limited_data_use").is_none());
    assert_eq!(data[2]["event_id"], "ldu-1");
    assert_eq!(data[2]["limited_data_use"], true);
    assert_eq!(data[2]["user"]["ttclid"], "E.C.P.x1");
    assert!(
        !seen[0].body.to_string().contains("Example.com"),
        "no email in clear"
    );
}

#[tokio::test]
async fn tiktok_retries_rate_limits_and_its_own_errors_and_dead_letters_a_refused_batch_for_replay()
{
    let rig = rig().await;
    let fake = Fake::start(Kind::Tiktok, "tt-token").await;
    rig.destination(
        DestinationKind::Tiktok,
        &fake,
        tiktok_settings(),
        "tt-token",
        &[],
        1,
    )
    .await;
    // First event: rate limited (code 40100), then TikTok's own error (50000), then
    // taken. Second: refused as invalid (40002), a dead letter.
    fake.script([
        Scripted::RateLimited,
        Scripted::Unavailable,
        Scripted::AsChecked,
        Scripted::Invalid,
    ]);
    rig.append(vec![
        (EventType::Track, web(json!({"event": "First"}))),
        (EventType::Track, web(json!({"event": "Second"}))),
    ])
    .await;
    let deliveries = rig.deliver_all("tiktok").await;
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    assert_eq!(deliveries[0].attempts, 3);
    assert_eq!(deliveries[1].status, DeliveryStatus::Dead);
    let reason = deliveries[1].reason.clone().unwrap();
    assert!(reason.contains("40002"), "{reason}");
    assert!(
        !reason.contains("tt-token"),
        "the token is never in a reason"
    );
    assert_eq!(fake.seen().len(), 4);

    let destination = rig
        .store
        .destination_by_name("tiktok")
        .await
        .unwrap()
        .unwrap();
    let tally = rig.deliverer.replay_dead(&destination).await.unwrap();
    assert_eq!((tally.delivered, tally.dead), (1, 0));
    let names: Vec<_> = fake
        .accepted_events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["First", "Second"]);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn tiktok_a_refused_token_holds_delivery_until_replaced() {
    let rig = rig().await;
    let fake = Fake::start(Kind::Tiktok, "tt-good").await;
    rig.destination(
        DestinationKind::Tiktok,
        &fake,
        tiktok_settings(),
        "tt-revoked",
        &[],
        1000,
    )
    .await;
    rig.append(vec![(EventType::Track, web(json!({"event": "Lead"})))])
        .await;
    // The fake refuses the token (code 40105) every time: steps run, nothing is dead.
    rig.held_until_replaced("tiktok", &fake, 3, "tt-good").await;
    let deliveries = rig.deliver_all("tiktok").await;
    assert_eq!(
        statuses(&deliveries),
        [("m0".into(), DeliveryStatus::Delivered)]
    );
    assert_eq!(
        fake.seen().last().unwrap().headers["access-token"],
        "tt-good"
    );
}

fn linkedin_settings() -> Value {
    json!({"conversion_id": "104012", "api_version": "202611"})
}

#[tokio::test]
async fn linkedin_gets_conversions_of_its_rule_and_a_refused_element_is_a_dead_letter_alone() {
    let rig = rig().await;
    let fake = Fake::start(Kind::Linkedin, "li-token").await;
    rig.destination(
        DestinationKind::Linkedin,
        &fake,
        linkedin_settings(),
        "li-token",
        &["advertising"],
        1000,
    )
    .await;
    // LinkedIn takes the batch but refuses its first element.
    fake.script([Scripted::PartlyRefused]);
    let hundred_days_ago = time::format_ms(time::now_ms() - 100 * 24 * 3600 * 1000);
    rig.append(vec![
        (EventType::Track, web(json!({"userId": "u1", "event": "Demo Booked", "messageId": "refused-1"}))),
        (EventType::Track, web(json!({"userId": "u1", "event": "Order Completed", "messageId": "order-1",
            "properties": {"revenue": 42.5, "currency": "EUR"},
            "context": {"li_fat_id": "df8a1b2c-3d4e", "consent": {"purposes": {"advertising": true}},
                        "traits": {"email": " Ann@Example.com ", "firstName": "Ann", "lastName": "Lee", "title": "CTO"}}}))),
        (EventType::Page, web(json!({"name": "Product"}))),
        (EventType::Identify, web(json!({"userId": "u1"}))),
        (EventType::Screen, web(json!({"name": "Home"}))),
        (EventType::Group, web(json!({"groupId": "g"}))),
        (EventType::Alias, web(json!({"userId": "u1", "previousId": "a1"}))),
        // No email nor click id: LinkedIn could match no one.
        (EventType::Track, json!({"anonymousId": "a5", "event": "Lead", "context": {"consent": {"purposes": {"advertising": true}}}})),
        // Older than LinkedIn's 90 days.
        (EventType::Track, web(json!({"event": "Late", "timestamp": hundred_days_ago}))),
        // Advertising refused: never sent.
        (EventType::Track, json!({"anonymousId": "a9", "event": "Lead", "context": {"consent": {"purposes": {"advertising": false}},
            "traits": {"email": "x@example.com"}}})),
    ])
    .await;
    let deliveries = rig.deliver_all("linkedin").await;
    assert_eq!(
        statuses(&deliveries),
        [
            ("refused-1".into(), DeliveryStatus::Dead),
            ("order-1".into(), DeliveryStatus::Delivered),
            ("m7".into(), DeliveryStatus::Dead),
            ("m8".into(), DeliveryStatus::Dead),
            ("m9".into(), DeliveryStatus::Suppressed),
        ],
        "page, identify, screen, group and alias are skipped (not logged)"
    );
    let refused = deliveries[0].reason.clone().unwrap();
    assert!(refused.contains("not active"), "{refused}");
    assert_eq!(deliveries[0].response_code, Some(200));
    assert!(deliveries[2].reason.as_deref().unwrap().contains("user id"));
    assert!(deliveries[3].reason.as_deref().unwrap().contains("90 days"));
    assert_eq!(fake.problems(), Vec::<String>::new());
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "one batch: {seen:?}");
    assert_eq!(seen[0].headers["authorization"], "Bearer li-token");
    assert_eq!(seen[0].headers["linkedin-version"], "202611");
    assert_eq!(seen[0].headers["x-restli-method"], "BATCH_CREATE");
    let order = &seen[0].body["elements"][1];
    assert_eq!(order["conversion"], "urn:lla:llaPartnerConversion:104012");
    assert_eq!(order["eventId"], "order-1");
    assert_eq!(
        order["conversionValue"],
        json!({"currencyCode": "EUR", "amount": "42.5"})
    );
    let hash = sightline_activate::vendor::sha256_hex("ann@example.com").unwrap();
    assert_eq!(
        order["user"]["userIds"],
        json!([{"idType": "SHA256_EMAIL", "idValue": hash},
               {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": "df8a1b2c-3d4e"}])
    );
    assert_eq!(order["user"]["userInfo"]["title"], "CTO");
    assert!(!seen[0].body.to_string().contains("Example.com"));
    assert_eq!(fake.accepted_events().len(), 1);
}

#[tokio::test]
async fn linkedin_holds_on_a_refused_token_then_retries_throttling_and_dead_letters_an_invalid_batch(
) {
    let rig = rig().await;
    let fake = Fake::start(Kind::Linkedin, "li-good").await;
    rig.destination(
        DestinationKind::Linkedin,
        &fake,
        linkedin_settings(),
        "li-expired",
        &[],
        1,
    )
    .await;
    rig.append(vec![
        (EventType::Track, web(json!({"event": "First"}))),
        (EventType::Track, web(json!({"event": "Second"}))),
    ])
    .await;
    // 401 every time: the destination holds, nothing is dead.
    rig.held_until_replaced("linkedin", &fake, 3, "li-good")
        .await;
    fake.script([
        Scripted::RateLimited,
        Scripted::Unavailable,
        Scripted::AsChecked,
        Scripted::Invalid,
    ]);
    let deliveries = rig.deliver_all("linkedin").await;
    assert_eq!(
        statuses(&deliveries),
        [
            ("m0".into(), DeliveryStatus::Delivered),
            ("m1".into(), DeliveryStatus::Dead)
        ]
    );
    assert_eq!(deliveries[0].attempts, 3, "429, then 503, then taken");
    assert_eq!(deliveries[1].response_code, Some(400));
    assert!(!deliveries[1].reason.as_deref().unwrap().contains("li-good"));
    // Read again: the replay sends with the credential stored now.
    let destination = rig
        .store
        .destination_by_name("linkedin")
        .await
        .unwrap()
        .unwrap();
    let tally = rig.deliverer.replay_dead(&destination).await.unwrap();
    assert_eq!((tally.delivered, tally.dead), (1, 0));
    assert_eq!(fake.accepted_events().len(), 2);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

fn google_ads_settings() -> Value {
    json!({"customer_id": "1234567890", "conversion_action_id": "987654", "api_version": "v22"})
}

#[tokio::test]
async fn google_ads_gets_click_and_lead_conversions_and_a_refused_one_is_a_dead_letter_alone() {
    let rig = rig().await;
    let fake = Fake::start(Kind::GoogleAds, "dev-token:ya29.good").await;
    rig.destination(
        DestinationKind::GoogleAds,
        &fake,
        google_ads_settings(),
        "dev-token:ya29.good",
        &["advertising"],
        1000,
    )
    .await;
    // Google takes the batch but refuses its first conversion (partial failure).
    fake.script([Scripted::PartlyRefused]);
    rig.append(vec![
        (EventType::Track, web(json!({"event": "Lead", "messageId": "expired-click",
            "context": {"gclid": "Cj0-old", "consent": {"purposes": {"advertising": true}}}}))),
        (EventType::Track, web(json!({"event": "Order Completed", "messageId": "order-1",
            "properties": {"order_id": "o1", "revenue": 42.5, "currency": "eur"},
            "context": {"page": {"url": "https://shop.example/?gclid=Cj0KCQ"}, "consent": {"purposes": {"advertising": true},
                        "googleConsentMode": {"ad_user_data": "granted"}},
                        "traits": {"email": " Jane.Doe@Gmail.com "}}}))),
        // Enhanced conversions for leads: no click id, the hashed email and phone.
        (EventType::Track, web(json!({"event": "Lead", "messageId": "lead-1"}))),
        (EventType::Page, web(json!({"name": "Product"}))),
        (EventType::Identify, web(json!({"userId": "u1"}))),
        (EventType::Screen, web(json!({"name": "Home"}))),
        (EventType::Group, web(json!({"groupId": "g"}))),
        (EventType::Alias, web(json!({"userId": "u1", "previousId": "a1"}))),
        // Nothing to match the conversion with.
        (EventType::Track, json!({"anonymousId": "a5", "event": "Lead", "messageId": "nobody",
            "context": {"consent": {"purposes": {"advertising": true}}}})),
        // Advertising refused: never sent.
        (EventType::Track, json!({"anonymousId": "a9", "event": "Lead", "messageId": "refused",
            "context": {"gclid": "g", "consent": {"purposes": {"advertising": false}}}})),
    ])
    .await;
    let deliveries = rig.deliver_all("google_ads").await;
    assert_eq!(
        statuses(&deliveries),
        [
            ("expired-click".into(), DeliveryStatus::Dead),
            ("order-1".into(), DeliveryStatus::Delivered),
            ("lead-1".into(), DeliveryStatus::Delivered),
            ("nobody".into(), DeliveryStatus::Dead),
            ("refused".into(), DeliveryStatus::Suppressed),
        ],
        "page, identify, screen, group and alias are skipped (not logged)"
    );
    assert!(deliveries[0].reason.as_deref().unwrap().contains("too old"));
    assert!(deliveries[3]
        .reason
        .as_deref()
        .unwrap()
        .contains("click id"));
    assert_eq!(fake.problems(), Vec::<String>::new());
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "one batch: {seen:?}");
    assert_eq!(
        seen[0].path,
        "/v22/customers/1234567890:uploadClickConversions"
    );
    assert_eq!(seen[0].headers["authorization"], "Bearer ya29.good");
    assert_eq!(seen[0].headers["developer-token"], "dev-token");
    let order = &seen[0].body["conversions"][1];
    assert_eq!(order["gclid"], "Cj0KCQ");
    assert_eq!(order["orderId"], "o1");
    assert_eq!(order["currencyCode"], "EUR");
    assert_eq!(order["consent"]["adUserData"], "GRANTED");
    let hash = |s: &str| sightline_activate::vendor::sha256_hex(s).unwrap();
    assert_eq!(
        order["userIdentifiers"][0]["hashedEmail"],
        hash("janedoe@gmail.com"),
        "Gmail's dots removed, as Google normalises"
    );
    let lead = &seen[0].body["conversions"][2];
    assert!(lead.get("gclid").is_none());
    assert_eq!(
        lead["userIdentifiers"][0]["hashedEmail"],
        hash("ann@example.com")
    );
    assert_eq!(
        lead["userIdentifiers"][1]["hashedPhoneNumber"],
        hash("+12345678901")
    );
    assert_eq!(fake.accepted_events().len(), 2);
}

#[tokio::test]
async fn google_ads_holds_on_an_expired_token_then_waits_out_its_quota_delay_and_dead_letters_an_invalid_batch(
) {
    let rig = rig().await;
    let fake = Fake::start(Kind::GoogleAds, "dev-token:ya29.fresh").await;
    rig.destination(
        DestinationKind::GoogleAds,
        &fake,
        google_ads_settings(),
        "dev-token:ya29.expired",
        &[],
        1,
    )
    .await;
    rig.append(vec![
        (
            EventType::Track,
            web(json!({"event": "First", "context": {"gclid": "g1"}})),
        ),
        (
            EventType::Track,
            web(json!({"event": "Second", "context": {"gclid": "g2"}})),
        ),
    ])
    .await;
    rig.held_until_replaced("google_ads", &fake, 3, "dev-token:ya29.fresh")
        .await;
    fake.script([
        Scripted::RateLimited,
        Scripted::Unavailable,
        Scripted::AsChecked,
        Scripted::Invalid,
    ]);
    let deliveries = rig.deliver_all("google_ads").await;
    assert_eq!(
        statuses(&deliveries),
        [
            ("m0".into(), DeliveryStatus::Delivered),
            ("m1".into(), DeliveryStatus::Dead)
        ]
    );
    assert_eq!(deliveries[0].attempts, 3, "429, then 503, then taken");
    let reason = deliveries[1].reason.clone().unwrap();
    assert!(reason.contains("INVALID_ARGUMENT"), "{reason}");
    assert!(!reason.contains("ya29"), "the token is never in a reason");
    let destination = rig
        .store
        .destination_by_name("google_ads")
        .await
        .unwrap()
        .unwrap();
    let tally = rig.deliverer.replay_dead(&destination).await.unwrap();
    assert_eq!((tally.delivered, tally.dead), (1, 0));
    assert_eq!(fake.accepted_events().len(), 2);
    assert_eq!(fake.problems(), Vec::<String>::new());
}
