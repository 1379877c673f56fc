//! End to end: real Chromium scans the fixture sites in tests/fixtures/site, served by a
//! local server that answers both http and https (vendor hosts are HSTS-preloaded, so
//! Chromium upgrades them to https) on one port; `--host-resolver-rules` maps every host
//! name onto it. Only with the `browser` feature (on by default).
#![cfg(feature = "browser")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::{X509NameBuilder, X509};
use sightline_scan::{run_scan, FindingKind, Report, ScanError, ScanOptions, Scenario, Severity};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One request the fixture server answered.
#[derive(Debug, Clone)]
struct Seen {
    host: String,
    /// The path, without the query.
    path: String,
    headers: HashMap<String, String>,
}

struct FixtureServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The server name (SNI) of every TLS handshake, also of connections that never sent a
    /// request (a preconnect).
    tls_names: Arc<Mutex<Vec<String>>>,
}

/// A throwaway self-signed certificate, made per run so no private key lives in the repo
/// (Chromium runs with --ignore-certificate-errors).
fn self_signed() -> (PKey<Private>, X509) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "sightline-scan fixture")
        .unwrap();
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
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    (key, cert.build())
}

/// Serves tests/fixtures/site/HOST/PATH; unknown paths answer 204 (beacons). With a pid
/// file, a request for `/crash-browser` first kills the process whose pid it holds.
async fn start_server(crash_pid_file: Option<PathBuf>) -> FixtureServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (key, cert) = self_signed();
    let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    tls.set_private_key(&key).unwrap();
    tls.set_certificate(&cert).unwrap();
    let tls = Arc::new(tls.build());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tls_names = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let names = tls_names.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tls = tls.clone();
            let log = log.clone();
            let names = names.clone();
            let crash = crash_pid_file.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if stream.peek(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                // A TLS handshake starts with record type 22.
                if first[0] == 0x16 {
                    let Ok(ssl) = Ssl::new(tls.context()) else {
                        return;
                    };
                    let Ok(mut s) = tokio_openssl::SslStream::new(ssl, stream) else {
                        return;
                    };
                    let accepted = Pin::new(&mut s).accept().await.is_ok();
                    let name = s.ssl().servername(openssl::ssl::NameType::HOST_NAME);
                    names
                        .lock()
                        .unwrap()
                        .push(name.unwrap_or_default().to_owned());
                    if accepted {
                        serve(s, &log, crash.as_deref()).await;
                    }
                } else {
                    serve(stream, &log, crash.as_deref()).await;
                }
            });
        }
    });
    FixtureServer {
        port,
        seen,
        tls_names,
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    log: &Mutex<Vec<Seen>>,
    crash_pid_file: Option<&Path>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_owned();
    let method = request_line
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    let target = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body_read = buf.len() - head_end - 4;
    while body_read < length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body_read += n,
        }
    }
    let host = headers
        .get("host")
        .map(|h| h.split(':').next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let origin = headers.get("origin").cloned().unwrap_or_else(|| "*".into());
    log.lock().unwrap().push(Seen {
        host: host.clone(),
        path: path.clone(),
        headers,
    });
    if method == "OPTIONS" {
        // CORS preflights pass, so scripts can send their custom headers (as vendor APIs allow).
        let r = format!(
            "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: {origin}\r\n\
             Access-Control-Allow-Methods: GET, POST\r\nAccess-Control-Allow-Headers: *\r\n\
             Connection: close\r\n\r\n"
        );
        let _ = s.write_all(r.as_bytes()).await;
        let _ = s.shutdown().await;
        return;
    }
    if path == "/hang.js" {
        // Never answer: holds the page's load event back.
        std::future::pending::<()>().await;
    }
    if path == "/endless.html" {
        // The headers and the start of the page, then nothing: the document never finishes.
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
                  <!doctype html><title>Endless</title><link rel=\"icon\" href=\"data:,\">\
                  <h1>Endless</h1>",
            )
            .await;
        let _ = s.flush().await;
        std::future::pending::<()>().await;
    }
    if let (Some(pid_file), "/crash-browser") = (crash_pid_file, path.as_str()) {
        let pid = std::fs::read_to_string(pid_file).unwrap();
        let killed = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        assert!(killed.success());
    }
    let file_path = if path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.clone()
    };
    let site = fixtures().join("site").join(&host);
    let file = site.join(file_path.trim_start_matches('/'));
    // Keep requests inside the fixture tree.
    let inside = !file_path.contains("..") && !host.contains("..") && !host.is_empty();
    let response = match std::fs::read(&file) {
        Ok(body) if inside && file.is_file() => {
            let kind = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript",
                Some("xml") => "application/xml",
                _ => "image/gif",
            };
            let extra =
                std::fs::read_to_string(format!("{}.headers", file.display())).unwrap_or_default();
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                body.len(),
                extra.lines().map(|l| format!("{l}\r\n")).collect::<String>()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        }
        _ => b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = s.write_all(&response).await;
    let _ = s.shutdown().await;
}

/// A DNS server that answers `metrics.shop.test` with a CNAME to Adobe's
/// `shop.sc.omtrdc.net` and every other name with NXDOMAIN.
async fn start_dns() -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let query = &buf[..n];
            // The question name runs from byte 12 to its zero label.
            let Some(end) = query[12..].iter().position(|b| *b == 0).map(|i| 12 + i) else {
                continue;
            };
            let mut labels = Vec::new();
            let mut at = 12;
            while at < end {
                let len = query[at] as usize;
                labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).into_owned());
                at += 1 + len;
            }
            let mut r = query[..end + 5].to_vec();
            r[2] = 0x81;
            if labels.join(".") == "metrics.shop.test" {
                r[3] = 0x80;
                r[7] = 1;
                r.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 1, 44]);
                let mut target = Vec::new();
                for l in ["shop", "sc", "omtrdc", "net"] {
                    target.push(l.len() as u8);
                    target.extend_from_slice(l.as_bytes());
                }
                target.push(0);
                r.extend_from_slice(&(target.len() as u16).to_be_bytes());
                r.extend_from_slice(&target);
            } else {
                r[3] = 0x83; // NXDOMAIN
            }
            let _ = socket.send_to(&r, from).await;
        }
    });
    port
}

/// A TC string granting these purposes (and consent for vendor 755, Google).
fn tc_string(purposes: &[u8]) -> String {
    sightline_consent::TcString {
        cmp_id: 300,
        cmp_version: 1,
        consent_language: "EN".into(),
        vendor_list_version: 150,
        policy_version: 5,
        publisher_cc: "DE".into(),
        purposes_consent: purposes.to_vec(),
        vendor_consents: vec![755],
        ..Default::default()
    }
    .encode()
    .unwrap()
}

/// Writes a fixture journey with the servers' ports (and the tcf fixture's TC strings)
/// filled in.
fn journey(name: &str, port: u16, dns_port: u16, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    let path = dir.join(name);
    let text = text
        .replace("{PORT}", &port.to_string())
        .replace("{DNS_PORT}", &dns_port.to_string())
        .replace("{TCF_ALL}", &tc_string(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
        .replace("{TCF_NONE}", &tc_string(&[]))
        .replace("{TCF_MEASURE}", &tc_string(&[1, 7, 8, 9, 10]));
    std::fs::write(&path, text).unwrap();
    path
}

fn options() -> ScanOptions {
    ScanOptions {
        quiet: Duration::from_millis(400),
        step_timeout: Duration::from_secs(20),
        // The fixture sites listen on 127.0.0.1.
        allow_private_network: true,
        ..ScanOptions::default()
    }
}

async fn scan(path: &Path, opts: &ScanOptions) -> Report {
    // A missing Chromium fails here, naming scripts/install-chromium.sh.
    run_scan(path, opts).await.unwrap_or_else(|e| panic!("{e}"))
}

fn find<'a>(
    r: &'a Report,
    kind: FindingKind,
    scenario: Option<Scenario>,
    vendor: &str,
) -> &'a sightline_scan::Finding {
    r.findings
        .iter()
        .find(|f| f.kind == kind && f.scenario == scenario && f.vendor == vendor)
        .unwrap_or_else(|| {
            panic!(
                "no {kind:?} finding for {vendor} in {scenario:?}; findings:\n{}",
                r.summary()
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_journey_seeds_every_finding_kind_and_clean_journey_has_none() {
    let server = start_server(None).await;
    let dns_port = start_dns().await;
    let dir = tempfile::tempdir().unwrap();
    let shop = scan(
        &journey("shop.toml", server.port, dns_port, dir.path()),
        &options(),
    )
    .await;
    println!("{}", shop.summary());
    assert!(!shop.incomplete, "{}", shop.summary());
    // The four built-in scenarios, then the journey's custom one.
    let names: Vec<String> = shop.scenarios.iter().map(|s| s.name.name()).collect();
    assert_eq!(
        names,
        [
            "no-interaction",
            "accept-all",
            "reject-all",
            "gpc",
            "custom:analytics-only"
        ]
    );

    // Evidence: requests with vendors, initiator chains, Set-Cookie, cookies.
    let landing = &shop.scenarios[0].steps[0];
    assert_eq!(landing.name, "landing");
    assert!(landing.request_count >= 8, "{landing:#?}");
    assert!(landing.third_party_count >= 6);
    let tiktok_hit = landing
        .requests
        .iter()
        .find(|r| {
            r.url
                .starts_with("https://analytics.tiktok.com/api/v2/pixel")
        })
        .expect("TikTok beacon captured");
    assert_eq!(
        tiktok_hit.initiator_chain,
        vec![
            "https://analytics.tiktok.com/api/v2/pixel?event=Pageview",
            "https://analytics.tiktok.com/i18n/pixel/events.js",
            "http://www.googletagmanager.com/gtm.js?id=GTM-SHOP",
            "http://www.shop.test/",
        ]
    );
    let tr = landing
        .requests
        .iter()
        .find(|r| r.url.starts_with("https://www.facebook.com/tr"))
        .expect("Meta beacon captured");
    assert_eq!(tr.status, Some(200));
    assert!(
        tr.set_cookies.iter().any(|c| c.starts_with("fr=fixture")),
        "{tr:#?}"
    );
    assert_eq!(tr.vendor.as_deref(), Some("Meta"));
    assert_eq!(tr.referer.as_deref(), Some("http://www.shop.test/"));

    // Requests inside a cross-site iframe are captured, chained through the frame.
    let signup = &shop.scenarios[0].steps[1];
    let watch = signup
        .requests
        .iter()
        .find(|r| {
            r.url
                .starts_with("https://www.youtube.com/api/stats/watchtime")
        })
        .expect("the iframe's beacon");
    assert_eq!(
        watch.initiator_chain,
        vec![
            "https://www.youtube.com/api/stats/watchtime?docid=demo",
            "https://www.youtube.com/player.js",
            "https://www.youtube.com/embed/demo.html",
            "http://www.shop.test/signup.html",
        ]
    );

    // Every finding kind, with its evidence.
    let pre = find(
        &shop,
        FindingKind::PreConsent,
        Some(Scenario::NoInteraction),
        "Google Analytics",
    );
    assert_eq!(pre.step.as_deref(), Some("landing"));
    assert_eq!(pre.severity, Severity::High);
    assert!(pre
        .evidence
        .request
        .as_deref()
        .unwrap()
        .contains("google-analytics.com"));
    assert_eq!(
        pre.evidence.initiator_chain.last().unwrap(),
        "http://www.shop.test/"
    );
    assert_eq!(
        pre.evidence.cookie.as_ref().map(|c| c.name.as_str()),
        Some("_ga")
    );
    // Loaded by the page before the accept click, too; the pixel's cookie is the evidence.
    let meta = find(
        &shop,
        FindingKind::PreConsent,
        Some(Scenario::AcceptAll),
        "Meta",
    );
    let fbp = meta.evidence.cookie.as_ref().expect("the _fbp cookie");
    assert_eq!(fbp.name, "_fbp");
    assert!(!fbp.third_party && fbp.expires.is_some());

    let rej = find(
        &shop,
        FindingKind::AfterReject,
        Some(Scenario::RejectAll),
        "Meta",
    );
    // On the second step, after the reject click of the first.
    assert!(shop
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::AfterReject && f.step.as_deref() == Some("lead-capture")));
    assert!(rej.evidence.request.is_some());

    // A custom per-purpose choice: advertising refused, so Meta firing after the click is
    // after_reject naming the purpose; Google Analytics (granted) is not.
    let analytics_only = Scenario::Custom("analytics-only".into());
    let refused = find(
        &shop,
        FindingKind::AfterReject,
        Some(analytics_only.clone()),
        "Meta",
    );
    assert!(
        refused.message.contains("refused advertising"),
        "{}",
        refused.message
    );
    assert!(!shop
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::AfterReject
            && f.scenario == Some(analytics_only.clone())
            && f.vendor == "Google Analytics"));
    // Its gcs=G111 says ad_storage granted, which the choice refused.
    let cnp_custom = find(
        &shop,
        FindingKind::ConsentNotPropagated,
        Some(analytics_only.clone()),
        "Google Analytics",
    );
    assert!(
        cnp_custom.message.contains("ad_storage")
            && !cnp_custom.message.contains("analytics_storage"),
        "{}",
        cnp_custom.message
    );

    let gpc = find(&shop, FindingKind::GpcIgnored, Some(Scenario::Gpc), "Meta");
    assert!(gpc.message.contains("Sec-GPC"));
    let gpc_sent = server.seen.lock().unwrap().iter().any(|s| {
        s.host == "www.facebook.com" && s.headers.get("sec-gpc").map(String::as_str) == Some("1")
    });
    assert!(gpc_sent, "the gpc scenario sends Sec-GPC: 1");

    let cnp = find(
        &shop,
        FindingKind::ConsentNotPropagated,
        Some(Scenario::RejectAll),
        "Google Analytics",
    );
    assert!(cnp
        .evidence
        .request
        .as_deref()
        .unwrap()
        .contains("gcs=G111"));

    let shadow = shop
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::ShadowVendor && f.vendor == "TikTok")
        .expect("TikTok is a shadow vendor");
    assert!(shadow.evidence.initiator_chain.len() >= 3);
    let zombie = find(&shop, FindingKind::ZombieTag, None, "Hotjar");
    assert_eq!(zombie.step, None);

    let dup = find(
        &shop,
        FindingKind::DuplicateTag,
        Some(Scenario::NoInteraction),
        "Google Tag Manager",
    );
    assert!(dup.message.contains("GTM-SHOP"), "{}", dup.message);
    // The same pixel URL twice in one document is caught by its two runs.
    let dup_meta = find(
        &shop,
        FindingKind::DuplicateTag,
        Some(Scenario::AcceptAll),
        "Meta",
    );
    assert_eq!(dup_meta.step.as_deref(), Some("lead-capture"));

    let pii = find(
        &shop,
        FindingKind::PiiLeak,
        Some(Scenario::AcceptAll),
        "Meta",
    );
    assert_eq!(pii.step.as_deref(), Some("lead-capture"));
    assert_eq!(pii.severity, Severity::Critical);
    assert!(pii.message.contains("body"), "{}", pii.message);
    // An email in a custom request header of a third-party call.
    let header_pii = find(
        &shop,
        FindingKind::PiiLeak,
        Some(Scenario::AcceptAll),
        "Segment",
    );
    assert!(
        header_pii.message.contains("header x-user-email"),
        "{}",
        header_pii.message
    );

    let fourth = find(
        &shop,
        FindingKind::FourthParty,
        Some(Scenario::NoInteraction),
        "TikTok",
    );
    assert_eq!(
        fourth.evidence.initiator_chain[1],
        "http://www.googletagmanager.com/gtm.js?id=GTM-SHOP"
    );

    let cloaked = find(
        &shop,
        FindingKind::CnameCloaking,
        Some(Scenario::NoInteraction),
        "Adobe Analytics",
    );
    assert!(cloaked
        .evidence
        .request
        .as_deref()
        .unwrap()
        .starts_with("http://metrics.shop.test/"));
    assert!(
        cloaked.message.contains("shop.sc.omtrdc.net"),
        "{}",
        cloaked.message
    );

    // Cookies after a step carry first/third party and expiry.
    let accept_landing = &shop.scenarios[1].steps[0];
    let consent = accept_landing
        .cookies
        .iter()
        .find(|c| c.name == "consent")
        .expect("the banner's consent cookie");
    assert!(!consent.third_party && consent.expires.is_some());

    // localStorage after a step: the vendor key a script wrote into the page's own storage,
    // and the storage of a cross-site iframe, each with its party and vendor.
    let ttp = landing
        .local_storage
        .iter()
        .find(|e| e.key == "_ttp_id")
        .unwrap_or_else(|| {
            panic!(
                "TikTok's key in the site's storage: {:#?}",
                landing.local_storage
            )
        });
    assert_eq!(ttp.origin, "http://www.shop.test");
    assert_eq!(
        (ttp.third_party, ttp.vendor.as_deref()),
        (false, Some("TikTok"))
    );
    assert_eq!(ttp.value, "fixture-visitor");
    let player = signup
        .local_storage
        .iter()
        .find(|e| e.key == "yt-player-quality")
        .unwrap_or_else(|| panic!("the iframe's storage: {:#?}", signup.local_storage));
    assert!(player.origin.ends_with("www.youtube.com"), "{player:?}");
    assert_eq!(
        (player.third_party, player.vendor.as_deref()),
        (true, Some("YouTube"))
    );

    // Output and exit semantics.
    let out = dir.path().join("out");
    let written = shop.write_json(&out).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(written).unwrap()).unwrap();
    let kinds: std::collections::BTreeSet<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.len(),
        10,
        "every finding kind of PRODUCT.md: {kinds:?}"
    );
    assert!(shop.reaches(Severity::Critical));
    // One screenshot per step and scenario, beside the report, named in it.
    for (sc, sc_json) in shop
        .scenarios
        .iter()
        .zip(json["scenarios"].as_array().unwrap())
    {
        for (i, (st, st_json)) in sc
            .steps
            .iter()
            .zip(sc_json["steps"].as_array().unwrap())
            .enumerate()
        {
            let rel = st.screenshot.as_deref().expect("a screenshot per step");
            assert_eq!(st_json["screenshot"], rel);
            assert!(
                rel.starts_with("screenshots/") && rel.contains(&format!("/{:02}-", i + 1)),
                "{rel}"
            );
            let png = std::fs::read(out.join(rel)).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{rel} is a PNG");
            assert!(st.timing.load_ms > 0, "load timing kept: {st:#?}");
        }
    }
    assert_eq!(
        shop.scenarios[4].steps[0].screenshot.as_deref(),
        Some("screenshots/custom-analytics-only/01-landing.png")
    );

    let clean = scan(
        &journey("clean.toml", server.port, dns_port, dir.path()),
        &options(),
    )
    .await;
    println!("{}", clean.summary());
    assert!(!clean.incomplete, "{}", clean.summary());
    assert!(clean.findings.is_empty(), "{}", clean.summary());
    assert!(!clean.reaches(Severity::Low));
    // Analytics does load once accepted, and consent carries over to the second step.
    let accepted = &clean.scenarios[1];
    assert!(accepted.steps[0]
        .vendors
        .iter()
        .any(|v| v.name == "Google Analytics"));
    assert!(accepted.steps[1]
        .vendors
        .iter()
        .any(|v| v.name == "Google Analytics"));
    assert!(clean.scenarios[2].steps[1].vendors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_keep_partial_results_marked_incomplete() {
    let server = start_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        format!(
            r##"
name = "broken"
[browser]
host_resolver_rules = "MAP www.down.test 127.0.0.1:9, MAP * 127.0.0.1:{port}"
[consent.accept-all]
click = ["#no-such-banner"]
[[steps]]
name = "landing"
url = "http://www.clean.test/"
[[steps]]
name = "down"
url = "http://www.down.test/"
"##,
            port = server.port
        ),
    )
    .unwrap();
    let opts = ScanOptions {
        scenarios: vec![Scenario::NoInteraction, Scenario::AcceptAll],
        step_timeout: Duration::from_secs(3),
        ..options()
    };
    let r = scan(&path, &opts).await;
    assert!(r.incomplete);
    // An unreachable URL: the first step is kept, the second carries the error.
    let no = &r.scenarios[0];
    let reason = no.incomplete.as_deref().unwrap();
    assert!(
        reason.contains("down") && reason.contains("ERR_"),
        "{reason}"
    );
    assert_eq!(no.steps.len(), 2);
    assert!(no.steps[0].request_count >= 1 && no.steps[0].error.is_none());
    assert!(no.steps[1].error.is_some());
    // A consent selector that never appears.
    let acc = &r.scenarios[1];
    let reason = acc.incomplete.as_deref().unwrap();
    assert!(reason.contains("#no-such-banner"), "{reason}");
    assert!(acc.steps[0].request_count >= 1);
    assert!(r.summary().contains("INCOMPLETE"));
}

#[tokio::test]
async fn missing_chromium_and_bad_journeys_are_clear_errors() {
    let opts = ScanOptions {
        chromium: PathBuf::from("/nonexistent/chromium"),
        allow_private_network: true,
        ..ScanOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let err = run_scan(&journey("clean.toml", 1, 1, dir.path()), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::ChromiumMissing { .. }));
    assert!(
        err.to_string().contains("scripts/install-chromium.sh"),
        "{err}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[steps]]\nname = \"a\"\nurl = \"nope\"\n",
    )
    .unwrap();
    let err = run_scan(&bad, &ScanOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("steps[0].url"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_dies_mid_scan_leaves_partial_results() {
    let dir = tempfile::tempdir().unwrap();
    // A Chromium whose pid the fixture server can kill when the journey reaches the step.
    let pid_file = dir.path().join("chromium.pid");
    let wrapper = dir.path().join("chromium");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec '{}' \"$@\"\n",
            pid_file.display(),
            sightline_scan::DEFAULT_CHROMIUM
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", wrapper.to_str().unwrap()])
        .status()
        .unwrap();
    let server = start_server(Some(pid_file)).await;
    let path = dir.path().join("crash.toml");
    std::fs::write(
        &path,
        format!(
            r##"
name = "crash"
[browser]
host_resolver_rules = "MAP * 127.0.0.1:{port}"
[[steps]]
name = "landing"
url = "http://www.clean.test/"
[[steps]]
name = "crash"
url = "http://www.clean.test/crash-browser"
"##,
            port = server.port
        ),
    )
    .unwrap();
    let opts = ScanOptions {
        scenarios: vec![Scenario::NoInteraction],
        chromium: wrapper,
        step_timeout: Duration::from_secs(5),
        ..options()
    };
    let r = scan(&path, &opts).await;
    let sc = &r.scenarios[0];
    assert!(r.incomplete);
    assert!(
        sc.incomplete.as_deref().unwrap().contains("crash"),
        "{:?}",
        sc.incomplete
    );
    assert!(sc.steps[0].error.is_none() && sc.steps[0].request_count >= 1);
    assert!(sc.steps[1].error.is_some());
}

/// Issue 24: pages that never finish are scanned with what arrived, and the report says
/// which requests were still pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_whose_load_event_never_fires_is_still_scanned() {
    let server = start_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"slow\"\n[browser]\nhost_resolver_rules = \"MAP * 127.0.0.1:{}\"\n\
             args = [\"--ignore-certificate-errors\"]\n\
             [[steps]]\nname = \"slow\"\nurl = \"http://www.clean.test/slow.html\"\n\
             [[steps]]\nname = \"endless\"\nurl = \"http://www.clean.test/endless.html\"\n",
            server.port
        ),
    )
    .unwrap();
    let opts = ScanOptions {
        scenarios: vec![Scenario::NoInteraction],
        step_timeout: Duration::from_secs(3),
        settle_cap: Duration::from_secs(2),
        ..options()
    };
    let r = scan(&path, &opts).await;
    println!("{}", r.summary());
    assert!(!r.incomplete, "{}", r.summary());
    // A subresource that never answers: the page is scanned, the request recorded without
    // a status, and named as pending (with its vendor when it is a third party's).
    let step = &r.scenarios[0].steps[0];
    assert!(step.error.is_none(), "{step:#?}");
    let hang = step
        .requests
        .iter()
        .find(|q| q.url.ends_with("/hang.js"))
        .expect("the hanging script is recorded");
    assert_eq!(hang.status, None);
    // Two async scripts: either may start first.
    let mut pending: Vec<(&str, Option<&str>, bool)> = step
        .pending
        .iter()
        .map(|p| (p.url.as_str(), p.vendor.as_deref(), p.third_party))
        .collect();
    pending.sort();
    assert_eq!(
        pending,
        [
            ("http://www.clean.test/hang.js", None, false),
            ("https://connect.facebook.net/hang.js", Some("Meta"), true),
        ],
        "{step:#?}"
    );
    assert!(step.vendors.iter().any(|v| v.name == "Meta"));
    // A document that never finishes: what arrived is scanned (a screenshot, cookies), and
    // the document itself is pending, its status known.
    let endless = &r.scenarios[0].steps[1];
    assert!(endless.error.is_none(), "{endless:#?}");
    assert!(endless.screenshot.is_some());
    assert_eq!(endless.pending.len(), 1, "{endless:#?}");
    assert_eq!(endless.pending[0].url, "http://www.clean.test/endless.html");
    assert_eq!(endless.pending[0].resource_type, "Document");
    assert_eq!(endless.pending[0].status, Some(200));
    // The report says so, and keeps it.
    let summary = r.summary();
    assert!(
        summary.contains("still pending: https://connect.facebook.net/hang.js (Meta)"),
        "{summary}"
    );
    let written = r.write_json(&dir.path().join("out")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(written).unwrap()).unwrap();
    let reported = json["scenarios"][0]["steps"][0]["pending"]
        .as_array()
        .unwrap();
    assert!(
        reported
            .iter()
            .any(|p| p["url"] == "https://connect.facebook.net/hang.js" && p["vendor"] == "Meta"),
        "{reported:?}"
    );
}

/// Issue 24: the scanning browser makes no request of its own. Every host name maps to the
/// fixture server, so whatever the browser sends, to any host, arrives there: the server
/// must see exactly the requests the page causes (no start page, no Google service, no
/// component update, no favicon the page did not ask for), and the scan must have recorded
/// each of them. TLS handshakes count too, so a preconnect that sends no request is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_sends_nothing_the_pages_did_not_cause() {
    let server = start_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.toml");
    std::fs::write(
        &path,
        format!(
            r##"
name = "quiet"
[browser]
host_resolver_rules = "MAP * 127.0.0.1:{port}"
args = ["--ignore-certificate-errors"]
[[steps]]
name = "signup"
url = "http://www.clean.test/quiet.html"
actions = [ {{ fill = "#email", value = "ann@example.com" }}, {{ fill = "#street", value = "1 Main St" }} ]
"##,
            port = server.port
        ),
    )
    .unwrap();
    let opts = ScanOptions {
        scenarios: vec![Scenario::NoInteraction],
        ..options()
    };
    let r = scan(&path, &opts).await;
    assert!(!r.incomplete, "{}", r.summary());
    let expected = [
        ("www.clean.test", "/quiet.html"),
        ("www.clean.test", "/quiet.js"),
        ("www.google-analytics.com", "/g/collect"),
    ];
    let mut recorded: Vec<(String, String)> = r.scenarios[0]
        .steps
        .iter()
        .flat_map(|s| &s.requests)
        .map(|q| {
            let u = url::Url::parse(&q.url).unwrap();
            (u.host_str().unwrap().to_owned(), u.path().to_owned())
        })
        .collect();
    recorded.sort();
    let mut served: Vec<(String, String)> = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.host.clone(), s.path.clone()))
        .collect();
    served.sort();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .collect();
    assert_eq!(recorded, expected, "what the scan recorded");
    assert_eq!(
        served, expected,
        "every request that left the browser; anything beyond the page's own is the \
         browser's traffic"
    );
    let mut names = server.tls_names.lock().unwrap().clone();
    names.sort();
    names.dedup();
    assert_eq!(names, ["www.google-analytics.com"], "TLS server names");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_cost_reloads_the_journey_with_third_parties_blocked() {
    let server = start_server(None).await;
    let dns_port = start_dns().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ScanOptions {
        scenarios: vec![Scenario::NoInteraction],
        tag_cost: true,
        ..options()
    };
    let r = scan(
        &journey("shop.toml", server.port, dns_port, dir.path()),
        &opts,
    )
    .await;
    assert!(!r.incomplete, "{}", r.summary());
    for step in &r.scenarios[0].steps {
        assert!(
            step.timing.load_ms_third_parties_blocked.is_some(),
            "{step:#?}"
        );
    }
    assert!(r.summary().contains("without third parties"));
    // The blocked run reached the first party only: every vendor hit the server saw is one
    // the scanned run recorded.
    let recorded = r.scenarios[0]
        .steps
        .iter()
        .flat_map(|s| &s.requests)
        .filter(|q| q.url.starts_with("https://connect.facebook.net/"))
        .count();
    let served = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.host == "connect.facebook.net")
        .count();
    assert!(recorded > 0);
    assert_eq!(served, recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc_strings_given_through_tcfapi_decide_what_loads() {
    let server = start_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = journey("tcf.toml", server.port, 1, dir.path());
    let r = scan(&path, &options()).await;
    println!("{}", r.summary());
    assert!(!r.incomplete, "{}", r.summary());
    let vendors = |scenario: &Scenario| -> Vec<String> {
        let sc = r.scenarios.iter().find(|s| &s.name == scenario).unwrap();
        sc.steps[0].vendors.iter().map(|v| v.name.clone()).collect()
    };
    // The tag manager reads the TC string through the scanner's __tcfapi: everything with
    // all purposes, analytics only with the measurement purposes, nothing without consent.
    assert_eq!(
        vendors(&Scenario::AcceptAll),
        ["Amplitude", "Meta", "Tealium"]
    );
    assert_eq!(
        vendors(&Scenario::Custom("measurement".into())),
        ["Amplitude", "Tealium"]
    );
    assert_eq!(vendors(&Scenario::RejectAll), ["Tealium"]);
    // No __tcfapi without a configured choice: the container loads nothing.
    assert_eq!(vendors(&Scenario::NoInteraction), ["Tealium"]);
    assert_eq!(vendors(&Scenario::Gpc), ["Tealium"]);
    // The site honours every choice: the only findings are the vendors its tag manager
    // loads (fourth parties, low since a tag manager loading tags is its job).
    assert!(
        r.findings
            .iter()
            .all(|f| f.kind == FindingKind::FourthParty && f.severity == Severity::Low),
        "{}",
        r.summary()
    );
    assert_eq!(r.findings.len(), 3, "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_banners_are_operated_through_their_cmp_or_reported() {
    let server = start_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ScanOptions {
        scenarios: vec![Scenario::AcceptAll, Scenario::RejectAll],
        ..options()
    };
    let banner = |r: &Report, scenario: Scenario| {
        r.scenarios
            .iter()
            .find(|s| s.name == scenario)
            .and_then(|s| s.banner.clone())
            .unwrap_or_else(|| panic!("no banner in {scenario:?}: {}", r.summary()))
    };
    let vendors = |r: &Report, scenario: Scenario| -> Vec<String> {
        let sc = r.scenarios.iter().find(|s| s.name == scenario).unwrap();
        sc.steps[0].vendors.iter().map(|v| v.name.clone()).collect()
    };

    // OneTrust's API: the tags load only after AllowAll, and none after RejectAll.
    let r = scan(&journey("onetrust.toml", server.port, 1, dir.path()), &opts).await;
    println!("{}", r.summary());
    for scenario in [Scenario::AcceptAll, Scenario::RejectAll] {
        let b = banner(&r, scenario.clone());
        assert_eq!(b.cmp.as_deref(), Some("onetrust"), "{b:?}");
        assert_eq!((b.method.as_deref(), b.made), (Some("api"), true), "{b:?}");
    }
    let accepted = vendors(&r, Scenario::AcceptAll);
    assert!(
        accepted.contains(&"Amplitude".to_owned()) && accepted.contains(&"Meta".to_owned()),
        "{accepted:?}"
    );
    let rejected = vendors(&r, Scenario::RejectAll);
    assert!(
        !rejected.contains(&"Amplitude".to_owned()) && !rejected.contains(&"Meta".to_owned()),
        "{rejected:?}"
    );
    // The tags came after the choice: no pre-consent finding under accept-all.
    assert!(
        r.findings
            .iter()
            .all(|f| f.kind != FindingKind::PreConsent && f.kind != FindingKind::BannerNotOperated),
        "{}",
        r.summary()
    );

    // A per-purpose choice made through the CMP's API: only the analytics tag loads.
    let only_analytics = |r: &Report, scenario: Scenario| {
        let b = banner(r, scenario.clone());
        assert_eq!((b.method.as_deref(), b.made), (Some("api"), true), "{b:?}");
        assert_eq!(
            vendors(r, scenario)
                .iter()
                .filter(|v| *v == "Amplitude" || *v == "Meta")
                .collect::<Vec<_>>(),
            ["Amplitude"],
            "{}",
            r.summary()
        );
    };
    // Through OneTrust's UpdateConsent, by its standard groups.
    let custom = Scenario::Custom("analytics-only".into());
    let r = scan(
        &journey("onetrust.toml", server.port, 1, dir.path()),
        &ScanOptions {
            scenarios: vec![custom.clone()],
            ..options()
        },
    )
    .await;
    only_analytics(&r, custom.clone());

    // Didomi and Usercentrics take it by the site's own ids, which the journey names.
    let no_ids = Scenario::Custom("no-ids".into());
    let r = scan(
        &journey("didomi.toml", server.port, 1, dir.path()),
        &ScanOptions {
            scenarios: vec![custom.clone(), no_ids.clone()],
            ..options()
        },
    )
    .await;
    println!("{}", r.summary());
    assert_eq!(banner(&r, custom.clone()).cmp.as_deref(), Some("didomi"));
    only_analytics(&r, custom.clone());
    // Without ids the choice cannot be made, and the report says which key to add.
    let b = banner(&r, no_ids.clone());
    assert_eq!((b.cmp.as_deref(), b.made), (Some("didomi"), false), "{b:?}");
    let f = find(&r, FindingKind::BannerNotOperated, Some(no_ids), "didomi");
    assert!(f.message.contains("didomi_purposes"), "{}", f.message);
    // Usercentrics' browser API (v3, `__ucCmp`), and its earlier UI's (v2, `UC_UI`).
    for file in ["usercentrics.toml", "usercentrics-v2.toml"] {
        let r = scan(
            &journey(file, server.port, 1, dir.path()),
            &ScanOptions {
                scenarios: vec![custom.clone()],
                ..options()
            },
        )
        .await;
        println!("{}", r.summary());
        let cmp = banner(&r, custom.clone()).cmp;
        assert_eq!(cmp.as_deref(), Some("usercentrics"), "{file}");
        only_analytics(&r, custom.clone());
    }

    // Sourcepoint's banner is a cross-origin frame: its button is clicked in the frame.
    let r = scan(
        &journey("sourcepoint.toml", server.port, 1, dir.path()),
        &opts,
    )
    .await;
    println!("{}", r.summary());
    let b = banner(&r, Scenario::AcceptAll);
    assert_eq!(
        (b.cmp.as_deref(), b.method.as_deref(), b.made),
        (Some("sourcepoint"), Some("selector"), true),
        "{b:?}"
    );
    assert!(vendors(&r, Scenario::AcceptAll).contains(&"Amplitude".to_owned()));
    assert!(banner(&r, Scenario::RejectAll).made);
    assert!(!vendors(&r, Scenario::RejectAll).contains(&"Amplitude".to_owned()));

    // TrustArc's preference manager is a cross-origin frame too; its "required cookies
    // only" is the reject.
    let r = scan(&journey("trustarc.toml", server.port, 1, dir.path()), &opts).await;
    println!("{}", r.summary());
    for scenario in [Scenario::AcceptAll, Scenario::RejectAll] {
        let b = banner(&r, scenario.clone());
        assert_eq!(
            (b.cmp.as_deref(), b.method.as_deref(), b.made),
            (Some("trustarc"), Some("selector"), true),
            "{scenario}: {b:?}"
        );
    }
    assert!(vendors(&r, Scenario::AcceptAll).contains(&"Amplitude".to_owned()));
    assert!(!vendors(&r, Scenario::RejectAll).contains(&"Amplitude".to_owned()));

    // A banner without a reject on its first layer: accepting works, rejecting cannot be
    // done, and the report says so instead of judging the scenario as a refusal.
    let r = scan(
        &journey("quantcast.toml", server.port, 1, dir.path()),
        &opts,
    )
    .await;
    println!("{}", r.summary());
    let b = banner(&r, Scenario::AcceptAll);
    assert_eq!(
        (b.cmp.as_deref(), b.method.as_deref(), b.made),
        (Some("quantcast"), Some("selector"), true),
        "{b:?}"
    );
    assert!(vendors(&r, Scenario::AcceptAll).contains(&"Meta".to_owned()));
    let b = banner(&r, Scenario::RejectAll);
    assert_eq!(
        (b.cmp.as_deref(), b.made),
        (Some("quantcast"), false),
        "{b:?}"
    );
    let f = find(
        &r,
        FindingKind::BannerNotOperated,
        Some(Scenario::RejectAll),
        "quantcast",
    );
    assert!(f.message.contains("reject-all"), "{}", f.message);
    assert!(
        r.findings
            .iter()
            .all(|f| f.kind != FindingKind::AfterReject),
        "{}",
        r.summary()
    );

    // A page with no CMP at all, and no selectors in the journey: the scenario says so.
    let none = dir.path().join("none.toml");
    std::fs::write(
        &none,
        format!(
            "name = \"none\"\n[browser]\nhost_resolver_rules = \"MAP * 127.0.0.1:{}\"\n\
             [[steps]]\nname = \"landing\"\nurl = \"http://www.tcf.test/\"\n",
            server.port
        ),
    )
    .unwrap();
    let r = scan(
        &none,
        &ScanOptions {
            scenarios: vec![Scenario::RejectAll],
            ..options()
        },
    )
    .await;
    let b = banner(&r, Scenario::RejectAll);
    assert_eq!((b.cmp.as_deref(), b.made), (None, false), "{b:?}");
    let f = find(
        &r,
        FindingKind::BannerNotOperated,
        Some(Scenario::RejectAll),
        "consent banner",
    );
    assert!(f.message.contains("[consent.reject-all]"), "{}", f.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_scans_the_pages_it_finds_and_groups_findings_by_template() {
    let server = start_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ScanOptions {
        scenarios: vec![Scenario::NoInteraction],
        ..options()
    };
    let r = scan(&journey("crawl.toml", server.port, 1, dir.path()), &opts).await;
    println!("{}", r.summary());
    assert!(!r.incomplete, "{}", r.summary());
    let mut steps: Vec<&str> = r.scenarios[0]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    steps.sort_unstable();
    // Linked pages (the fragment dropped), and the sitemap's page no link reaches; not the
    // excluded logout, nor the links off the site.
    assert_eq!(
        steps,
        [
            "/",
            "/about.html",
            "/faq.html",
            "/products/1.html",
            "/products/2.html",
            "/products/3.html",
            "/products/4.html",
            "/products/5.html",
            "/products/6.html"
        ]
    );
    let ga: Vec<_> = r
        .templates
        .iter()
        .filter(|t| t.kind == FindingKind::PreConsent && t.vendor == "Google Analytics")
        .collect();
    assert_eq!(ga.len(), 1, "{:?}", r.templates);
    assert_eq!(ga[0].template, "/products/*");
    assert_eq!(ga[0].pages, 6);
    assert_eq!(ga[0].examples.len(), 3);

    // Limits: at most max_pages pages, breadth first from the start.
    let limited = dir.path().join("limited.toml");
    std::fs::write(
        &limited,
        format!(
            "name = \"limited\"\n[browser]\nhost_resolver_rules = \"MAP * 127.0.0.1:{}\"\n\
             [crawl]\nstart = \"http://www.crawl.test/\"\nmax_pages = 3\n",
            server.port
        ),
    )
    .unwrap();
    let r = scan(&limited, &opts).await;
    let steps: Vec<&str> = r.scenarios[0]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(steps, ["/", "/products/1.html", "/products/2.html"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_in_parallel_report_what_a_serial_run_reports() {
    let server = start_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = journey("tcf.toml", server.port, 1, dir.path());
    let serial = scan(
        &path,
        &ScanOptions {
            parallel: 1,
            ..options()
        },
    )
    .await;
    let parallel = scan(
        &path,
        &ScanOptions {
            parallel: 5,
            ..options()
        },
    )
    .await;
    let shape = |r: &Report| -> Vec<(String, Vec<String>, usize)> {
        r.scenarios
            .iter()
            .map(|s| {
                (
                    s.name.name(),
                    s.steps[0].vendors.iter().map(|v| v.name.clone()).collect(),
                    s.steps[0].request_count,
                )
            })
            .collect()
    };
    assert_eq!(shape(&serial), shape(&parallel));
    // Findings in the same order with the same evidence (cookie expiry times aside).
    let facts = |r: &Report| -> Vec<_> {
        r.findings
            .iter()
            .map(|f| {
                (
                    f.kind,
                    f.scenario.clone(),
                    f.vendor.clone(),
                    f.message.clone(),
                    f.evidence.initiator_chain.clone(),
                    f.evidence.cookie.as_ref().map(|c| c.name.clone()),
                )
            })
            .collect()
    };
    assert_eq!(facts(&serial), facts(&parallel));
    assert_eq!(serial.scenarios.len(), 5);
}
