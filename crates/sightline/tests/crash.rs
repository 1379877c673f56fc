//! `kill -9` under load: every acknowledged event is in the log exactly once after a
//! restart, every request is stored whole or not at all, and the profiles resumed from the
//! store count exactly the log's events. The servers hold a few profiles in memory, so
//! profiles are evicted and loaded back from the store all along.

mod common;

use common::{all_events, backends, client, credentials, Server};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CLIENTS: usize = 8;
const BATCH: usize = 50;
/// Kill once this many events were acknowledged, while the clients keep sending.
const KILL_AFTER: usize = 3_000;
/// Fewer profiles in memory than users sending.
const CACHE: [&str; 2] = ["--profile-cache", "3"];

#[tokio::test]
async fn acknowledged_events_survive_kill_9_exactly_once() {
    for backend in backends("crash").await {
        let creds = credentials(&backend, "web");
        let mut server = Server::start(&backend, &CACHE);
        let url = server.url.clone();
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let acked_count = Arc::new(AtomicUsize::new(0));
        let sent_batches = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));

        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, key) = (url.clone(), creds.write_key.clone());
                let (acked, acked_count, sent) =
                    (acked.clone(), acked_count.clone(), sent_batches.clone());
                tokio::spawn(async move {
                    let http = client();
                    for b in 0.. {
                        let ids: Vec<String> = (0..BATCH).map(|i| format!("c{c}-b{b}-e{i}")).collect();
                        let batch: Vec<Value> = ids
                            .iter()
                            .map(|id| json!({"type":"track","userId":format!("user-{c}"),"event":"Load","messageId":id,
                                             "properties":{"pad":"x".repeat(300)}}))
                            .collect();
                        sent.lock().unwrap().push(ids.clone());
                        let response = http
                            .post(format!("{url}/v1/batch"))
                            .basic_auth(&key, Some(""))
                            .json(&json!({"batch": batch}))
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status().is_success() => {
                                acked.lock().unwrap().extend(ids);
                                acked_count.fetch_add(BATCH, Ordering::SeqCst);
                            }
                            // The server is gone: stop, as a client whose requests fail would.
                            _ => return,
                        }
                    }
                })
            })
            .collect();

        // Bounded wait for load to build up, polling rather than sleeping blindly.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while acked_count.load(Ordering::SeqCst) < KILL_AFTER {
            assert!(
                std::time::Instant::now() < deadline,
                "the load never built up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        server.kill9();
        for client in clients {
            client.await.unwrap();
        }

        let server = Server::start(&backend, &CACHE);
        let events = all_events(&server, &creds.token).await;
        let mut stored: HashMap<String, usize> = HashMap::new();
        for event in &events {
            assert_eq!(event["event"], "Load", "every stored event is whole");
            *stored
                .entry(event["messageId"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
        assert!(acked.len() >= KILL_AFTER);
        for id in &acked {
            assert_eq!(
                stored.get(id),
                Some(&1),
                "{}: acknowledged {id} stored once",
                backend.name()
            );
        }
        assert!(stored.values().all(|&n| n == 1), "nothing stored twice");
        for batch in sent_batches.lock().unwrap().iter() {
            let present = batch.iter().filter(|id| stored.contains_key(*id)).count();
            assert!(
                present == 0 || present == BATCH,
                "{}: a request stored in part ({present}/{BATCH})",
                backend.name()
            );
        }
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));

        // The profiles resumed from whatever the killed server had saved, then applied the
        // rest: each user's profile counts exactly the user's events in the log.
        let mut per_user: HashMap<String, usize> = HashMap::new();
        for event in &events {
            *per_user
                .entry(event["userId"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        for (user, expected) in &per_user {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let profile = common::get(
                    &server,
                    Some(&creds.token),
                    &format!("/api/v1/profiles/user_id:{user}"),
                )
                .await;
                let count = match profile.status().as_u16() {
                    200 => profile.json::<Value>().await.unwrap()["event_count"].as_u64(),
                    _ => None,
                };
                if count == Some(*expected as u64) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline
                        && count.is_none_or(|n| n < *expected as u64),
                    "{}: {user}'s profile counts {count:?} events, the log holds {expected}",
                    backend.name()
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        eprintln!(
            "{}: {} acknowledged, {} stored after kill -9",
            backend.name(),
            acked.len(),
            events.len()
        );
    }
}
