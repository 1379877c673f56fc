//! Destinations end to end: the real binary on both backends delivering to a real HTTP
//! receiver started in the test, which records what it gets and can be told to fail.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{backends, client, credentials, get_json, send_ok, sightline_json, Backend, Server};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Value};
use sightline_activate::signature;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver answers to one request.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    retry_after: Option<u64>,
    body: &'static str,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        retry_after: None,
        body: "",
    }
}

/// One request as the receiver saw it, with the status it answered.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    status: u16,
    signature: String,
    idempotency_key: String,
    raw: Bytes,
    body: Value,
}

impl Received {
    /// The messageIds in the body: one event, or an array of them.
    fn message_ids(&self) -> Vec<String> {
        let events = match &self.body {
            Value::Array(events) => events.clone(),
            event => vec![event.clone()],
        };
        events
            .iter()
            .filter_map(|e| e["messageId"].as_str().map(String::from))
            .collect()
    }
}

#[derive(Default)]
struct ReceiverState {
    /// Answers for the next requests, in order; then `otherwise`.
    script: VecDeque<Reply>,
    otherwise: Option<Reply>,
    delay: Duration,
    received: Vec<Received>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<ReceiverState>>);

impl Receiver {
    /// Listens on a free port; returns the webhook URL.
    async fn start(&self) -> String {
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// Listens over TLS with `identity`'s certificate; returns the https URL.
    async fn start_tls(&self, identity: &(PKey<Private>, X509)) -> String {
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.clone());
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor.set_private_key(&identity.0).unwrap();
        acceptor.set_certificate(&identity.1).unwrap();
        let listener = TlsListener {
            tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: acceptor.build(),
        };
        let url = format!("https://{}/hook", listener.tcp.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.0.lock().unwrap().script.extend(replies);
    }

    fn otherwise(&self, reply: Reply) {
        self.0.lock().unwrap().otherwise = Some(reply);
    }

    fn delay(&self, delay: Duration) {
        self.0.lock().unwrap().delay = delay;
    }

    fn received(&self) -> Vec<Received> {
        self.0.lock().unwrap().received.clone()
    }

    /// Every messageId the receiver accepted (answered 2xx), in arrival order.
    fn accepted(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .flat_map(Received::message_ids)
            .collect()
    }

    fn seen(&self, message_id: &str) -> bool {
        self.received()
            .iter()
            .any(|r| r.message_ids().iter().any(|id| id == message_id))
    }
}

/// TLS over a TCP listener, for axum: each connection's handshake is done in `accept`.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: SslAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_openssl::SslStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            let Ok(ssl) = Ssl::new(self.acceptor.context()) else {
                continue;
            };
            let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, stream) else {
                continue;
            };
            if std::pin::Pin::new(&mut tls).accept().await.is_ok() {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A certificate for 127.0.0.1 made per run (no private key lives in the repo), and its key.
fn certificate_for_localhost() -> (PKey<Private>, X509) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "127.0.0.1").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&cert.x509v3_context(None, None))
        .unwrap();
    cert.append_extension(san).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    (key, cert.build())
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, raw: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (answer, delay) = {
        let mut state = receiver.0.lock().unwrap();
        let answer = state
            .script
            .pop_front()
            .or_else(|| state.otherwise.clone())
            .unwrap_or_else(|| reply(200));
        state.received.push(Received {
            at: Instant::now(),
            status: answer.status,
            signature: header(signature::SIGNATURE_HEADER),
            idempotency_key: header(signature::IDEMPOTENCY_HEADER),
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
        });
        (answer, state.delay)
    };
    tokio::time::sleep(delay).await;
    let mut response = (
        StatusCode::from_u16(answer.status).unwrap(),
        answer.body.to_string(),
    )
        .into_response();
    if let Some(seconds) = answer.retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    response
}

/// Polls `condition` every 50 ms until it holds; fails after 120 s.
async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn add_destination(backend: &Backend, name: &str, url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "destination",
        "add",
        name,
        "--type",
        "webhook",
        "--url",
        url,
    ];
    args.extend(extra);
    let created = sightline_json(backend, &args);
    assert_eq!(created["name"], name);
    created["signing_secret"].as_str().unwrap().to_string()
}

fn delivery_log(backend: &Backend, destination: &str, status: Option<&str>) -> Vec<Value> {
    let mut args = vec![
        "deliveries",
        "list",
        "--destination",
        destination,
        "--limit",
        "1000",
    ];
    if let Some(status) = status {
        args.extend(["--status", status]);
    }
    sightline_json(backend, &args)["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

fn consent(analytics: bool) -> Value {
    json!({"consent": {"categoryPreferences": {"Analytics": analytics}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_signed_events_retrying_and_withholds_what_consent_denies() {
    for backend in backends("deliver").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let receiver = Receiver::default();
        let url = receiver.start().await;
        // Down twice, then rate limited with Retry-After, then fine.
        receiver.script([
            reply(503),
            reply(503),
            Reply {
                status: 429,
                retry_after: Some(1),
                body: "slow down",
            },
        ]);
        let secret = add_destination(&backend, "hook", &url, &["--purposes", "analytics"]);
        let server = Server::start(&backend, &[]);

        send_ok(&server, &creds.write_key, "/v1/track",
            json!({"userId":"u1","event":"Order Completed","messageId":"granted-1","context":consent(true)}),
        )
        .await;
        send_ok(&server, &creds.write_key, "/v1/batch", json!({"batch":[
            {"type":"track","userId":"u1","event":"Order Completed","messageId":"denied-1","context":consent(false)},
            {"type":"page","userId":"u1","name":"Home","messageId":"silent-1"},
            {"type":"identify","userId":"u1","traits":{"plan":"pro"},"messageId":"granted-2","context":consent(true)},
        ]}))
        .await;

        wait_for("both granted events to be accepted", || {
            let accepted = receiver.accepted();
            accepted.contains(&"granted-1".into()) && accepted.contains(&"granted-2".into())
        })
        .await;
        wait_for("all four outcomes to be logged", || {
            delivery_log(&backend, "hook", None).len() == 4
        })
        .await;

        // Nothing the consent withholds ever reached the receiver.
        assert!(!receiver.seen("denied-1"), "{name}");
        assert!(!receiver.seen("silent-1"), "{name}");
        let received = receiver.received();
        for request in &received {
            assert!(
                signature::verify(&secret, &request.signature, &request.raw).is_some(),
                "{name}: signature {:?}",
                request.signature
            );
            assert_eq!(request.idempotency_key, request.body["messageId"], "{name}");
        }
        let statuses: Vec<u16> = received.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [503, 503, 429, 200, 200], "{name}: in log order");
        assert_eq!(received[0].message_ids(), ["granted-1"], "{name}");
        assert!(
            received[3].at.duration_since(received[2].at) >= Duration::from_secs(1),
            "{name}: Retry-After honoured"
        );
        assert_eq!(received[3].body["event"], "Order Completed", "{name}");
        assert!(received[3].body["seq"].as_i64().is_some(), "{name}");

        // The log, through the API: delivered after four attempts, suppressed with why.
        let page: Value = get_json(
            &server,
            &creds.token,
            "/api/v1/destinations/hook/deliveries?limit=10",
        )
        .await;
        let log = page["deliveries"].as_array().unwrap();
        let by_id = |id: &str| {
            log.iter()
                .find(|d| d["message_id"] == id)
                .unwrap_or_else(|| panic!("{name}: {id} logged"))
                .clone()
        };
        let first = by_id("granted-1");
        assert_eq!(first["status"], "delivered", "{name}");
        assert_eq!(first["attempts"], 4, "{name}");
        assert_eq!(first["response_code"], 200, "{name}");
        let denied = by_id("denied-1");
        assert_eq!(denied["status"], "suppressed", "{name}");
        assert_eq!(
            denied["reason"],
            "purpose \"analytics\" denied by context.consent.categoryPreferences"
        );
        // The page carries no consent: the ledger's latest entry before it (the denial) decides.
        let silent = by_id("silent-1");
        assert_eq!(silent["status"], "suppressed", "{name}");
        assert_eq!(
            silent["reason"],
            format!(
                "purpose \"analytics\" denied by the consent ledger entry at seq {}",
                denied["seq"]
            ),
            "{name}"
        );
        assert_eq!(
            delivery_log(&backend, "hook", Some("suppressed")).len(),
            2,
            "{name}"
        );
        let filtered: Value = client()
            .get(format!(
                "{}/api/v1/destinations/hook/deliveries?status=delivered&after={}",
                server.url, first["seq"]
            ))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(filtered["deliveries"][0]["message_id"], "granted-2");

        let metrics = client()
            .get(format!("{}/metrics", server.url))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for metric in [
            "sightline_delivery_attempts_total{destination=\"hook\"} 5",
            "sightline_delivery_failures_total{destination=\"hook\"} 3",
            "sightline_delivery_suppressed_total{destination=\"hook\"} 2",
            "sightline_delivery_lag_events{destination=\"hook\"}",
        ] {
            assert!(metrics.contains(metric), "{name}: {metric} in\n{metrics}");
        }
        let listed = sightline_json(&backend, &["destination", "list"]);
        assert_eq!(listed[0]["purposes"], json!(["analytics"]), "{name}");
        assert!(
            !listed.to_string().contains(&secret),
            "{name}: secrets are not listed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_become_dead_letters_and_replay_once_fixed() {
    for backend in backends("dead").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let receiver = Receiver::default();
        let url = receiver.start().await;
        receiver.otherwise(Reply {
            status: 400,
            retry_after: None,
            body: "bad payload: missing email",
        });
        add_destination(
            &backend,
            "crm",
            &url,
            &["--types", "track", "--events", "Signed Up"],
        );
        let server = Server::start(&backend, &[]);
        send_ok(
            &server,
            &creds.write_key,
            "/v1/batch",
            json!({"batch":[
                {"type":"track","userId":"u1","event":"Signed Up","messageId":"up-1"},
                {"type":"track","userId":"u2","event":"Viewed","messageId":"viewed-1"},
                {"type":"identify","userId":"u2","messageId":"identify-1"},
                {"type":"track","userId":"u2","event":"Signed Up","messageId":"up-2"},
            ]}),
        )
        .await;

        wait_for("two dead letters", || {
            delivery_log(&backend, "crm", Some("dead")).len() == 2
        })
        .await;
        let dead = delivery_log(&backend, "crm", Some("dead"));
        assert_eq!(dead[0]["message_id"], "up-1", "{name}");
        assert_eq!(dead[0]["response_code"], 400, "{name}");
        assert_eq!(dead[0]["attempts"], 1, "{name}: a 400 is not retried");
        assert_eq!(
            dead[0]["reason"], "HTTP 400: bad payload: missing email",
            "{name}"
        );

        receiver.otherwise(reply(200));
        let tally = sightline_json(
            &backend,
            &["deliveries", "replay", "--destination", "crm", "--dead"],
        );
        assert_eq!(
            tally,
            json!({"delivered": 2, "suppressed": 0, "dead": 0}),
            "{name}"
        );
        assert_eq!(receiver.accepted(), ["up-1", "up-2"], "{name}");
        assert!(delivery_log(&backend, "crm", Some("dead")).is_empty());
        assert_eq!(
            delivery_log(&backend, "crm", Some("delivered")).len(),
            2,
            "{name}"
        );
        // The filter held: other events never went out.
        assert!(!receiver.seen("viewed-1") && !receiver.seen("identify-1"));

        // A range replays whatever its outcome was, through the same filter.
        let tally = sightline_json(
            &backend,
            &[
                "deliveries",
                "replay",
                "--destination",
                "crm",
                "--from-seq",
                "1",
            ],
        );
        assert_eq!(tally["delivered"], 2, "{name}");
        assert_eq!(
            receiver.accepted(),
            ["up-1", "up-2", "up-1", "up-2"],
            "{name}"
        );

        // The same through the API, on the running server.
        let replay = |path: &str, body: Value| {
            client()
                .post(format!("{}/api/v1/destinations/{path}/replay", server.url))
                .bearer_auth(&creds.token)
                .json(&body)
                .send()
        };
        let answer = replay("crm", json!({"from_seq": 1})).await.unwrap();
        assert_eq!(answer.status(), 200, "{name}");
        let tally: Value = answer.json().await.unwrap();
        assert_eq!(
            tally,
            json!({"delivered": 2, "suppressed": 0, "dead": 0}),
            "{name}"
        );
        assert_eq!(receiver.accepted().len(), 6, "{name}");
        assert_eq!(
            replay("nope", json!({"dead": true}))
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(replay("crm", json!({})).await.unwrap().status(), 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_delivery_loses_nothing() {
    const EVENTS: usize = 300;
    for backend in backends("deliverykill").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let receiver = Receiver::default();
        let url = receiver.start().await;
        // Slow enough that the kill lands while deliveries are in flight.
        receiver.delay(Duration::from_millis(10));
        add_destination(&backend, "slow", &url, &[]);
        let mut server = Server::start(&backend, &[]);
        let ids: Vec<String> = (0..EVENTS).map(|i| format!("k-{i}")).collect();
        for chunk in ids.chunks(100) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|id| json!({"type":"track","userId":"u","event":"Load","messageId":id}))
                .collect();
            send_ok(
                &server,
                &creds.write_key,
                "/v1/batch",
                json!({"batch": batch}),
            )
            .await;
        }
        wait_for("deliveries to be under way", || {
            receiver.accepted().len() >= 20
        })
        .await;
        server.kill9();
        let before_restart = receiver.accepted().len();
        assert!(
            before_restart < EVENTS,
            "{name}: the kill came after everything was delivered"
        );

        let _server = Server::start(&backend, &[]);
        wait_for("every acknowledged event to be delivered", || {
            let accepted: HashSet<String> = receiver.accepted().into_iter().collect();
            ids.iter().all(|id| accepted.contains(id))
        })
        .await;
        for request in receiver.received() {
            assert_eq!(
                request.idempotency_key, request.body["messageId"],
                "{name}: a duplicate is identifiable by its key"
            );
        }
        wait_for("the log to show every delivery", || {
            delivery_log(&backend, "slow", Some("delivered")).len() == EVENTS
        })
        .await;
        eprintln!(
            "{name}: {} requests accepted for {EVENTS} events ({before_restart} before kill -9)",
            receiver.accepted().len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_privacy_control_withholds_advertising() {
    for backend in backends("gpc").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let receiver = Receiver::default();
        let url = receiver.start().await;
        add_destination(&backend, "ads", &url, &["--purposes", "advertising"]);
        let server = Server::start(&backend, &[]);
        let granted = json!({"consent": {"categoryPreferences": {"Advertising": true}}});
        for (message_id, gpc) in [("with-gpc", true), ("without-gpc", false)] {
            let mut request = client()
                .post(format!("{}/v1/track", server.url))
                .basic_auth(&creds.write_key, Some(""))
                .json(
                    &json!({"userId":"u1","event":"Ad Clicked","messageId":message_id,
                              "context":granted}),
                );
            if gpc {
                request = request.header("Sec-GPC", "1");
            }
            assert_eq!(request.send().await.unwrap().status(), 200, "{name}");
        }
        wait_for("both outcomes to be logged", || {
            delivery_log(&backend, "ads", None).len() == 2
        })
        .await;
        let log = delivery_log(&backend, "ads", None);
        assert_eq!(log[0]["message_id"], "with-gpc", "{name}");
        assert_eq!(log[0]["status"], "suppressed", "{name}");
        assert_eq!(
            log[0]["reason"], "purpose \"advertising\" denied by gpc",
            "{name}"
        );
        assert_eq!(log[1]["status"], "delivered", "{name}");
        assert_eq!(receiver.accepted(), ["without-gpc"], "{name}");
    }
}

/// Consent recorded through the API goes into the profile's ledger, and the gate judges
/// each event by the consent in force at the event's time, naming the ledger entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_ledger_decides_by_the_events_time() {
    for backend in backends("ledger").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let receiver = Receiver::default();
        let url = receiver.start().await;
        add_destination(&backend, "ads", &url, &["--purposes", "advertising"]);
        let server = Server::start(&backend, &[]);
        let track = |id: &str, at: &str, context: Value| json!({"userId":"u1","event":"Ad Clicked","messageId":id,"timestamp":at,"context":context});
        let granted = json!({"consent": {"categoryPreferences": {"Advertising": true}}});
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            track("granted", "2026-03-01T10:00:00.000Z", granted),
        )
        .await;

        // The person opts out through the CMP's backend at 11:00.
        let record = |body: Value| {
            client()
                .post(format!("{}/api/v1/consent", server.url))
                .bearer_auth(&creds.token)
                .json(&body)
                .send()
        };
        let opt_out = json!({"identifier":"user_id:u1","purposes":{"advertising":false},
            "timestamp":"2026-03-01T11:00:00.000Z","jurisdiction":"EU",
            "evidence":{"cmp_id":300,"policy_version":"v7","page_url":"https://shop.test/privacy"}});
        let response = record(opt_out).await.unwrap();
        assert_eq!(response.status(), 201, "{name}");
        let opt_out_seq = response.json::<Value>().await.unwrap()["seq"]
            .as_i64()
            .unwrap();
        let bad = record(json!({"identifier":"user_id:u1","purposes":{"ads":false}}))
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{name}");
        assert!(
            bad.text().await.unwrap().contains("unknown purpose"),
            "{name}"
        );

        // Later events carry no consent of their own: the ledger decides, by event time.
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            track("after", "2026-03-01T12:00:00.000Z", json!({})),
        )
        .await;
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            track("backdated", "2026-03-01T10:30:00.000Z", json!({})),
        )
        .await;

        // Four: the recorded consent is an event in the log too (withheld: it denies ads).
        wait_for("four outcomes", || {
            delivery_log(&backend, "ads", None).len() == 4
        })
        .await;
        let log = delivery_log(&backend, "ads", None);
        let outcome = |id: &str| log.iter().find(|d| d["message_id"] == id).unwrap().clone();
        assert_eq!(outcome("granted")["status"], "delivered", "{name}");
        let recorded = log.iter().find(|d| d["seq"] == opt_out_seq).unwrap();
        assert_eq!(recorded["status"], "suppressed", "{name}");
        assert_eq!(
            outcome("backdated")["status"],
            "delivered",
            "{name}: consent at 10:30 was granted"
        );
        let after = outcome("after");
        assert_eq!(after["status"], "suppressed", "{name}");
        assert_eq!(
            after["reason"],
            format!(
                "purpose \"advertising\" denied by the consent ledger entry at seq {opt_out_seq}"
            ),
            "{name}"
        );
        let mut accepted = receiver.accepted();
        accepted.sort();
        assert_eq!(accepted, ["backdated", "granted"], "{name}");

        // The ledger, through the API and the command line.
        let consent: Value =
            get_json(&server, &creds.token, "/api/v1/profiles/user_id:u1/consent").await;
        assert_eq!(
            consent["state"]["advertising"]["decision"], "denied",
            "{consent}"
        );
        assert_eq!(consent["state"]["advertising"]["seq"], opt_out_seq);
        let history = consent["history"].as_array().unwrap();
        assert_eq!(history.len(), 2, "{consent}");
        assert_eq!(history[1]["source"], "api");
        assert_eq!(history[1]["jurisdiction"], "EU");
        assert_eq!(history[1]["evidence"]["policy_version"], "v7");
        assert_eq!(
            history[0]["signals"]["context.consent.categoryPreferences"]["Advertising"],
            true
        );
        let before: Value = get_json(
            &server,
            &creds.token,
            "/api/v1/profiles/user_id:u1/consent?at=2026-03-01T10:59:59.000Z",
        )
        .await;
        assert_eq!(
            before["state"]["advertising"]["decision"], "granted",
            "{before}"
        );
        let shown = sightline_json(&backend, &["profile", "consent", "user_id:u1"]);
        assert_eq!(shown["state"]["advertising"]["seq"], opt_out_seq, "{name}");

        // No event stated analytics: measurement keeps only identifier-free counts of them.
        let measured: Value = get_json(
            &server,
            &creds.token,
            "/api/v1/measurement/consent-denied?from=2026-03-01&to=2026-03-01",
        )
        .await;
        let clicks: Vec<&Value> = measured["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["event"] == "Ad Clicked")
            .collect();
        assert_eq!(clicks.len(), 1, "{name}: {measured}");
        assert_eq!(clicks[0]["count"], 3, "{name}: {measured}");
        assert!(
            !measured.to_string().contains("u1"),
            "no identifiers: {measured}"
        );
        let bad = client()
            .get(format!(
                "{}/api/v1/measurement/consent-denied?from=March",
                server.url
            ))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{name}");
        drop(server);
        // The same counts are stored with the profiles.
        let stored = sightline_json(
            &backend,
            &[
                "measurement",
                "consent-denied",
                "--from",
                "2026-03-01",
                "--to",
                "2026-03-01",
            ],
        );
        assert!(
            stored["counts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["event"] == "Ad Clicked" && c["count"] == 3),
            "{name}: {stored}"
        );
    }
}

/// A destination's transform shapes what it receives: fields renamed, removed and hashed as
/// ad platforms require, and a bad transform is refused when the destination is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_renames_removes_and_hashes_before_sending() {
    for backend in backends("transform").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let receiver = Receiver::default();
        let url = receiver.start().await;
        let temp = common::temp_dir("transform");
        let dir = temp.path();
        let file = dir.join("transform.toml");
        std::fs::write(
            &file,
            "deny = [\"context.ip\", \"properties.internal\"]\nhash = [\"context.traits.email\"]\n[rename]\n\"properties.total\" = \"properties.value\"\n",
        )
        .unwrap();
        add_destination(
            &backend,
            "ads",
            &url,
            &["--transform", file.to_str().unwrap()],
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "deny = [\"\"]\n").unwrap();
        let mut args = vec![
            "destination",
            "add",
            "bad",
            "--url",
            url.as_str(),
            "--transform",
            bad.to_str().unwrap(),
        ];
        let store_args = backend.args();
        args.extend(store_args.iter().map(String::as_str));
        let refused = common::sightline(&args);
        assert!(!refused.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("transform"),
            "{name}"
        );

        let server = Server::start(&backend, &[]);
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            json!({"userId":"u1","event":"Order Completed",
            "messageId":"order-1","properties":{"total":42,"internal":"x"},
            "context":{"ip":"203.0.113.9","traits":{"email":" Ann@Example.com "}}}),
        )
        .await;
        wait_for("the order to arrive", || receiver.seen("order-1")).await;
        let sent = receiver.received()[0].body.clone();
        assert_eq!(sent["properties"], json!({"value": 42}), "{name}: {sent}");
        assert!(sent["context"].get("ip").is_none(), "{name}: {sent}");
        // SHA-256 of "ann@example.com".
        assert_eq!(
            sent["context"]["traits"]["email"],
            "71d4f55f72fa128dfb468a1a3901507c804b74316488744d769d7f4b16696476",
            "{name}: {sent}"
        );
        drop(server);
    }
}

/// `consent_mapping` in the config file replaces the built-in purposes and mapping for
/// destinations, the consent API and the ledger alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_mapping_file_defines_the_purposes() {
    for backend in backends("mapping").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let temp = common::temp_dir("mapping");
        let dir = temp.path();
        let mapping = dir.join("mapping.toml");
        std::fs::write(
            &mapping,
            "purposes = [\"necessary\", \"email_marketing\"]\nalways_granted = [\"necessary\"]\n\
             [segment.categories]\nEmail = [\"email_marketing\"]\n",
        )
        .unwrap();
        let config = dir.join("sightline.toml");
        std::fs::write(
            &config,
            format!("consent_mapping = {:?}\n", mapping.to_str().unwrap()),
        )
        .unwrap();
        let config = config.to_str().unwrap();

        let add = |with_config: bool| {
            let mut args = vec![
                "destination",
                "add",
                "news",
                "--url",
                "http://127.0.0.1:9/hook",
                "--purposes",
                "email_marketing",
            ];
            if with_config {
                args.extend(["--config", config]);
            }
            let store_args = backend.args();
            args.extend(store_args.iter().map(String::as_str));
            common::sightline(&args)
        };
        let refused = add(false);
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("unknown purpose"),
            "{name}"
        );
        assert!(add(true).status.success(), "{name}");

        let server = Server::start(&backend, &["--config", config]);
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            json!({"userId":"u1","event":"Opened",
            "context":{"consent":{"categoryPreferences":{"Email":true}}}}),
        )
        .await;
        let recorded = client()
            .post(format!("{}/api/v1/consent", server.url))
            .bearer_auth(&creds.token)
            .json(&json!({"identifier":"user_id:u2","purposes":{"email_marketing":false}}))
            .send()
            .await
            .unwrap();
        assert_eq!(recorded.status(), 201, "{name}");
        // Destinations through the API, under the same mapping.
        let add = |body: Value| {
            client()
                .post(format!("{}/api/v1/destinations", server.url))
                .bearer_auth(&creds.token)
                .json(&body)
                .send()
        };
        let created = add(json!({"name":"news-api","url":"http://127.0.0.1:9/hook",
            "purposes":["email_marketing"],"types":["track"],"transform":{"hash":["*.email"]}}))
        .await
        .unwrap();
        assert_eq!(created.status(), 201, "{name}");
        let created: Value = created.json().await.unwrap();
        assert!(created["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"));
        let again = add(json!({"name":"news-api","url":"http://127.0.0.1:9/hook"}))
            .await
            .unwrap();
        assert_eq!(again.status(), 409, "{name}");
        let unknown =
            add(json!({"name":"ads","url":"http://127.0.0.1:9/hook","purposes":["advertising"]}))
                .await
                .unwrap();
        assert_eq!(
            unknown.status(),
            400,
            "{name}: not a purpose of this mapping"
        );
        let listed = sightline_json(&backend, &["destination", "list"]);
        assert!(
            listed.to_string().contains("\"*.email\""),
            "{name}: {listed}"
        );
        let state = |user: &'static str| {
            let (url, token) = (server.url.clone(), creds.token.clone());
            async move {
                let response = client()
                    .get(format!("{url}/api/v1/profiles/user_id:{user}/consent"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                response.json::<Value>().await.unwrap_or(Value::Null)
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (u1, u2) = (state("u1").await, state("u2").await);
            let decided = |v: &Value| v["state"]["email_marketing"]["decision"].clone();
            if decided(&u1) == "granted" && decided(&u2) == "denied" {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: {u1} {u2}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(server);
    }
}

/// https:// destinations are verified: a receiver whose certificate a configured CA file
/// vouches for gets the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_https_to_a_receiver_the_ca_file_trusts() {
    for backend in backends("https").await {
        let creds = credentials(&backend, "web");
        let identity = certificate_for_localhost();
        let receiver = Receiver::default();
        let url = receiver.start_tls(&identity).await;
        let temp = common::temp_dir("https");
        let dir = temp.path();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, identity.1.to_pem().unwrap()).unwrap();
        let config = dir.join("sightline.toml");
        std::fs::write(
            &config,
            format!("webhook_ca_file = {:?}\n", ca.to_str().unwrap()),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        add_destination(&backend, "secure", &url, &[]);
        let server = Server::start(&backend, &["--config", config]);
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            json!({"userId":"u1","event":"Order Completed","messageId":"over-tls"}),
        )
        .await;
        wait_for("the event over TLS", || receiver.seen("over-tls")).await;
        wait_for("its outcome", || {
            delivery_log(&backend, "secure", Some("delivered")).len() == 1
        })
        .await;
        drop(server);
    }
}

/// Destinations from a TOML file: every entry checked before any is stored; names taken are
/// skipped, so importing twice is safe.
#[tokio::test]
async fn destinations_import_from_a_toml_file() {
    for backend in backends("import").await {
        let name = backend.name();
        let temp = common::temp_dir("import");
        let dir = temp.path();
        let file = dir.join("destinations.toml");
        std::fs::write(
            &file,
            r#"
[[destination]]
name = "crm"
url = "https://crm.example/hook"
purposes = ["analytics"]
events = ["Order Completed"]

[[destination]]
name = "ads"
url = "http://127.0.0.1:9/hook"
purposes = ["advertising"]
batch = 50
[destination.transform]
hash = ["*.email"]
"#,
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let first = sightline_json(&backend, &["destination", "import", file]);
        assert_eq!(first.as_array().unwrap().len(), 2, "{name}: {first}");
        assert!(first[1]["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"));
        let again = sightline_json(&backend, &["destination", "import", file]);
        assert_eq!(again[0]["skipped"], "the name is taken", "{name}: {again}");
        let listed = sightline_json(&backend, &["destination", "list"]);
        let ads = listed
            .as_array()
            .or_else(|| listed["destinations"].as_array())
            .unwrap()
            .iter()
            .find(|d| d["name"] == "ads")
            .unwrap()
            .clone();
        assert_eq!(ads["batch_size"], 50, "{name}: {ads}");
        assert_eq!(ads["transform"]["hash"][0], "*.email", "{name}: {ads}");

        // One bad entry and nothing is stored.
        let bad = dir.join("bad.toml");
        std::fs::write(
            &bad,
            "[[destination]]\nname = \"ok\"\nurl = \"http://127.0.0.1:9/\"\n\n[[destination]]\nname = \"bad\"\nurl = \"ftp://x/\"\n",
        )
        .unwrap();
        let mut args = vec!["destination", "import", bad.to_str().unwrap()];
        let store_args = backend.args();
        args.extend(store_args.iter().map(String::as_str));
        let refused = common::sightline(&args);
        assert!(!refused.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("\"bad\""),
            "{name}"
        );
        let listed = sightline_json(&backend, &["destination", "list"]).to_string();
        assert!(!listed.contains("\"ok\""), "{name}: {listed}");
    }
}

/// An event a destination refuses with a retryable answer for ever pins its checkpoint.
/// Disabling ends the stuck page, `skip-to` moves the checkpoint past the event (only while
/// disabled), enabling resumes after it; `DELETE` removes the destination. Through the API
/// and the command line, on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_destination_is_disabled_skipped_past_and_enabled() {
    for backend in backends("skip_to").await {
        let name = backend.name();
        let creds = credentials(&backend, "web");
        let receiver = Receiver::default();
        let url = receiver.start().await;
        receiver.otherwise(reply(503));
        add_destination(&backend, "stuck", &url, &[]);
        let server = Server::start(&backend, &[]);
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            json!({"userId":"u1","event":"Poison","messageId":"poison-1"}),
        )
        .await;
        wait_for("the poison event to be retried", || {
            receiver
                .received()
                .iter()
                .filter(|r| r.message_ids() == ["poison-1"])
                .count()
                >= 2
        })
        .await;
        let poison_seq = common::all_events(&server, &creds.token).await[0]["seq"]
            .as_i64()
            .unwrap();
        let post = |path: String, body: Value| {
            let request = client()
                .post(format!("{}{path}", server.url))
                .bearer_auth(&creds.token)
                .json(&body);
            async move { request.send().await.unwrap() }
        };
        let skip = json!({ "seq": poison_seq });
        let refused = post("/api/v1/destinations/stuck/skip-to".into(), skip.clone()).await;
        assert_eq!(refused.status(), 409, "{name}: only a disabled destination");
        let disabled = post("/api/v1/destinations/stuck/disable".into(), json!({})).await;
        assert_eq!(disabled.status(), 200, "{name}");
        let disabled: Value = disabled.json().await.unwrap();
        assert_eq!(disabled["disabled"], true, "{name}");
        let skipped = sightline_json(
            &backend,
            &[
                "destination",
                "skip-to",
                "stuck",
                "--seq",
                &poison_seq.to_string(),
            ],
        );
        assert_eq!(skipped["to_seq"], poison_seq, "{name}");
        assert!(skipped["from_seq"].as_i64().unwrap() < poison_seq, "{name}");

        receiver.otherwise(reply(200));
        send_ok(
            &server,
            &creds.write_key,
            "/v1/track",
            json!({"userId":"u1","event":"Fine","messageId":"fine-1"}),
        )
        .await;
        let enabled = post("/api/v1/destinations/stuck/enable".into(), json!({})).await;
        assert_eq!(enabled.status(), 200, "{name}");
        wait_for("the next event", || {
            receiver.accepted().contains(&"fine-1".to_string())
        })
        .await;
        assert_eq!(receiver.accepted(), ["fine-1"], "{name}: poison-1 skipped");
        // Its progress is in /readyz?verbose and /metrics; once its checkpoint is
        // committed, it is behind by nothing.
        let verbose = || async {
            common::get(&server, Some(&creds.token), "/readyz?verbose")
                .await
                .text()
                .await
                .unwrap()
        };
        let caught_up = "[+]processor delivery:stuck up: 0 events, 0.0 s behind";
        let deadline = Instant::now() + Duration::from_secs(120);
        while !verbose().await.contains(caught_up) {
            assert!(Instant::now() < deadline, "{name}: {}", verbose().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let metrics = common::metrics(&server).await;
        assert!(
            metrics.contains("sightline_processor_lag_events{processor=\"delivery:stuck\"} 0"),
            "{name}: {metrics}"
        );

        let deleted = client()
            .delete(format!("{}/api/v1/destinations/stuck", server.url))
            .bearer_auth(&creds.token)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 200, "{name}");
        let listed = common::get_json(&server, &creds.token, "/api/v1/destinations").await;
        assert_eq!(listed["destinations"], json!([]), "{name}");
        // A deleted destination's delivery stops instead of idling for ever.
        while verbose().await.contains("delivery:stuck") {
            assert!(Instant::now() < deadline, "{name}: {}", verbose().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            verbose().await.contains("[+]processor profiles up"),
            "{name}"
        );
        drop(server);
    }
}
