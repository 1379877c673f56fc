//! One suite, both backends. PostgreSQL runs against `SIGHTLINE_TEST_DATABASE_URL`, each
//! test in a schema of its own; in CI (CI=true) a missing URL is a failure, not a skip.
//! Without the `postgres` feature (`--no-default-features`) only SQLite runs.

use sightline_core::{
    Delivery, DeliveryStatus, DeniedCount, DestinationKind, EventType, IdentifierRow,
    NewDestination, NewEvent, ProfileRows, ProfileSave, ProfilesState, Role, StoredProfile,
};
#[cfg(feature = "postgres")]
use sightline_store::PostgresStore;
use sightline_store::{Appended, ConsoleSession, EventLog, SqliteStore, Store};
use std::sync::Arc;

const DAY: i64 = 86_400_000;

/// The stores a test runs against; the SQLite directory is removed once the test's loop
/// over them ends.
struct Backends {
    stores: Vec<(&'static str, Arc<dyn Store>)>,
    dir: tempfile::TempDir,
    streams: Streams,
}

/// The JetStream streams a test made, deleted when its loop over the backends ends.
#[derive(Default)]
struct Streams(Vec<String>);

impl Drop for Streams {
    fn drop(&mut self) {
        #[cfg(feature = "jetstream")]
        if !self.0.is_empty() {
            let names = std::mem::take(&mut self.0);
            // A runtime of its own: the test's may be the one dropping this.
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(delete_streams(&names))
            })
            .join()
            .unwrap();
        }
    }
}

#[cfg(feature = "jetstream")]
fn nats_url() -> String {
    std::env::var("SIGHTLINE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

#[cfg(feature = "jetstream")]
async fn delete_streams(names: &[String]) {
    let client = async_nats::connect(nats_url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    for name in names {
        let _ = jetstream.delete_stream(name).await;
    }
}

impl IntoIterator for Backends {
    type Item = (&'static str, Arc<dyn Store>);
    type IntoIter = BackendsIter;

    fn into_iter(self) -> BackendsIter {
        BackendsIter {
            stores: self.stores.into_iter(),
            _dir: self.dir,
            _streams: self.streams,
        }
    }
}

struct BackendsIter {
    stores: std::vec::IntoIter<(&'static str, Arc<dyn Store>)>,
    _dir: tempfile::TempDir,
    _streams: Streams,
}

impl Iterator for BackendsIter {
    type Item = (&'static str, Arc<dyn Store>);

    fn next(&mut self) -> Option<Self::Item> {
        self.stores.next()
    }
}

/// Fails a test whose wait on the database has lasted two minutes (a wait that would
/// otherwise hang).
fn in_time(since: std::time::Instant, what: &str) {
    assert!(
        since.elapsed() < std::time::Duration::from_secs(120),
        "timed out waiting for {what}"
    );
}

fn temp_dir(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("sl-suite-{test}-"))
        .tempdir()
        .expect("a temporary directory")
}

async fn backends(test: &str) -> Backends {
    let dir = temp_dir(test);
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let mut stores: Vec<(&'static str, Arc<dyn Store>)> = vec![(
        "sqlite",
        Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
    )];
    #[cfg_attr(not(feature = "jetstream"), allow(unused_mut))]
    let mut streams = Streams::default();
    #[cfg(feature = "postgres")]
    if let Some(url) = postgres_url(test).await {
        stores.push((
            "postgres",
            Arc::new(PostgresStore::connect(&url).await.unwrap()),
        ));
        // The log on JetStream, the rest in a schema of its own.
        #[cfg(feature = "jetstream")]
        {
            let url = postgres_url(&format!("{test}_js")).await.unwrap();
            let mut log = sightline_store::LogSettings::new(nats_url());
            log.stream = format!("SUITE_{test}_{}", std::process::id());
            delete_streams(std::slice::from_ref(&log.stream)).await;
            streams.0.push(log.stream.clone());
            stores.push((
                "jetstream",
                Arc::new(PostgresStore::connect_with_log(&url, &log).await.unwrap()),
            ));
        }
    }
    Backends {
        stores,
        dir,
        streams,
    }
}

/// A fresh schema for this test on the test database, as a URL whose connections use it.
#[cfg(feature = "postgres")]
async fn postgres_url(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("SIGHTLINE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "SIGHTLINE_TEST_DATABASE_URL must be set in CI: PostgreSQL tests may not be skipped"
        );
        eprintln!("SIGHTLINE_TEST_DATABASE_URL is not set: skipping PostgreSQL for {test}");
        return None;
    };
    let schema = format!("suite_{test}_{}", std::process::id());
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to SIGHTLINE_TEST_DATABASE_URL");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{separator}options=-csearch_path%3D{schema}"))
}

fn event(source_id: i64, message_id: &str, at: i64) -> NewEvent {
    NewEvent {
        source_id,
        message_id: message_id.into(),
        event_type: EventType::Track,
        received_at: at,
        body: format!(r#"{{"type":"track","event":"e","messageId":"{message_id}"}}"#),
    }
}

fn seqs(outcome: &[Appended]) -> Vec<i64> {
    outcome
        .iter()
        .filter_map(|o| match o {
            Appended::Stored(seq) => Some(*seq),
            Appended::Duplicate => None,
        })
        .collect()
}

#[tokio::test]
async fn appends_get_increasing_sequence_numbers_and_read_back() {
    for (name, store) in backends("append").await {
        assert_eq!(store.last_seq().await.unwrap(), 0, "{name}");
        let first = store
            .append(vec![event(1, "a", 10), event(1, "b", 10)], 0)
            .await
            .unwrap();
        let second = store.append(vec![event(2, "c", 11)], 0).await.unwrap();
        let all: Vec<i64> = seqs(&first).into_iter().chain(seqs(&second)).collect();
        assert_eq!(all.len(), 3, "{name}");
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{name}: {all:?}");
        assert_eq!(store.last_seq().await.unwrap(), all[2], "{name}");

        let read = store.read_events(0, 10, None).await.unwrap();
        assert_eq!(
            read.iter()
                .map(|e| e.message_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"],
            "{name}"
        );
        assert_eq!(read[0].body, event(1, "a", 10).body, "{name}");
        assert_eq!(read[2].event_type, EventType::Track);
        let only_source_2 = store.read_events(0, 10, Some(2)).await.unwrap();
        assert_eq!(only_source_2.len(), 1, "{name}");
        let after_first = store.read_events(all[0], 1, None).await.unwrap();
        assert_eq!(after_first[0].message_id, "b", "{name}");
    }
}

#[tokio::test]
async fn duplicates_within_the_window_are_dropped_exactly() {
    for (name, store) in backends("dedup").await {
        let now = 100 * DAY;
        let since = now - DAY;
        let first = store
            .append(vec![event(1, "m1", now), event(1, "m1", now)], since)
            .await
            .unwrap();
        assert!(matches!(first[0], Appended::Stored(_)), "{name}");
        assert_eq!(
            first[1],
            Appended::Duplicate,
            "{name}: repeat inside one request"
        );
        let again = store
            .append(
                vec![event(1, "m1", now + 1), event(2, "m1", now + 1)],
                since,
            )
            .await
            .unwrap();
        assert_eq!(again[0], Appended::Duplicate, "{name}");
        assert!(
            matches!(again[1], Appended::Stored(_)),
            "{name}: another source's messageId is its own"
        );
        // Two days later the first sighting is outside a one-day window.
        let later = now + 2 * DAY;
        let outcome = store
            .append(vec![event(1, "m1", later)], later - DAY)
            .await
            .unwrap();
        assert!(matches!(outcome[0], Appended::Stored(_)), "{name}");
        assert_eq!(store.read_events(0, 10, None).await.unwrap().len(), 3);
        // What pruning counts is the backend's (PostgreSQL's claims, one per id; SQLite's
        // index, one per row): the first sighting's goes, the one in the window stays.
        assert!(store.prune_dedup(later).await.unwrap() >= 1, "{name}");
        let after_pruning = store
            .append(vec![event(1, "m1", later + 1)], later - DAY)
            .await
            .unwrap();
        assert_eq!(after_pruning[0], Appended::Duplicate, "{name}");
    }
}

#[tokio::test]
async fn concurrent_appends_share_commits_and_never_collide() {
    for (name, store) in backends("concurrent").await {
        let tasks: Vec<_> = (0..32)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    let batch = (0..50)
                        .map(|i| event(1, &format!("{task}-{i}"), 1))
                        .collect();
                    store.append(batch, 0).await.unwrap()
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            let outcome = task.await.unwrap();
            let mine = seqs(&outcome);
            assert_eq!(mine.len(), 50, "{name}");
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "{name}: in request order"
            );
            all.extend(mine);
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len(),
            32 * 50,
            "{name}: every sequence number is unique"
        );
        let read = store.read_events(0, 5000, None).await.unwrap();
        assert_eq!(read.len(), 32 * 50, "{name}");
    }
}

/// Appends from several tasks on several stores (`appenders`: on PostgreSQL two stores on
/// one schema, i.e. two processes) while a reader follows the log from the last seq it saw:
/// the reader never sees a seq at or below one it has passed, reads every stored event
/// exactly once and in order, each (source, messageId) is stored once however the
/// concurrent groups hold it, and an append's events are readable once it returns.
async fn appends_in_parallel_while_a_reader_follows(
    name: &str,
    appenders: Vec<Arc<dyn Store>>,
    reader: Arc<dyn Store>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    const TASKS: usize = 6;
    const REQUESTS: usize = 15;
    const IDS: usize = 300;
    let finished = Arc::new(AtomicBool::new(false));
    let follower = {
        let (reader, finished) = (reader.clone(), finished.clone());
        tokio::spawn(async move {
            let mut read: Vec<(i64, String)> = Vec::new();
            let mut last = 0;
            let since = std::time::Instant::now();
            loop {
                in_time(since, "the follower to read every append");
                // Taken before the read: once every append has returned, a read started
                // after sees all of them.
                let done = finished.load(Ordering::Acquire);
                let page = reader.read_events(last, 37, None).await.unwrap();
                for e in &page {
                    assert!(e.seq > last, "seq {} read after {last}", e.seq);
                    last = e.seq;
                    read.push((e.seq, e.message_id.clone()));
                }
                if page.is_empty() {
                    if done {
                        return read;
                    }
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for (s, store) in appenders.iter().enumerate() {
        for t in 0..TASKS {
            let (store, reader) = (store.clone(), reader.clone());
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for r in 0..REQUESTS {
                    // Overlapping ids across tasks and stores, in opposite orders.
                    let mut ids: Vec<String> = (0..8)
                        .map(|k| format!("m{}", (r * 8 + k + t * 37 + s * 101) % IDS))
                        .collect();
                    if (t + s) % 2 == 1 {
                        ids.reverse();
                    }
                    let batch = ids.iter().map(|id| event(1, id, 1)).collect();
                    let outcome = store.append(batch, 0).await.unwrap();
                    if let Some(&seq) = seqs(&outcome).last() {
                        assert!(
                            reader.last_seq().await.unwrap() >= seq,
                            "an appended seq {seq} is readable once the append returns"
                        );
                    }
                    outcomes.extend(ids.into_iter().zip(outcome));
                }
                outcomes
            }));
        }
    }
    let mut stored: Vec<(i64, String)> = Vec::new();
    let mut outcomes_by_id: std::collections::HashMap<String, (usize, usize)> =
        std::collections::HashMap::new();
    for task in tasks {
        for (id, outcome) in task.await.unwrap() {
            let counts = outcomes_by_id.entry(id.clone()).or_default();
            match outcome {
                Appended::Stored(seq) => {
                    counts.0 += 1;
                    stored.push((seq, id));
                }
                Appended::Duplicate => counts.1 += 1,
            }
        }
    }
    finished.store(true, std::sync::atomic::Ordering::Release);
    let read = follower.await.unwrap();

    for (id, (stored, duplicates)) in &outcomes_by_id {
        assert_eq!(
            *stored, 1,
            "{name}: {id} stored once ({duplicates} duplicates)"
        );
    }
    stored.sort();
    assert_eq!(
        read, stored,
        "{name}: every stored event read once, in order"
    );
    let all: Vec<(i64, String)> = reader
        .read_events(0, 100_000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.message_id))
        .collect();
    assert_eq!(all, read, "{name}: the follower read the whole log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_commit_in_parallel_and_a_reader_never_goes_back() {
    let temp = temp_dir("parallel");
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(temp.path()).await.unwrap());
    appends_in_parallel_while_a_reader_follows("sqlite", vec![sqlite.clone()], sqlite).await;
    #[cfg(feature = "postgres")]
    {
        let Some(url) = postgres_url("parallel").await else {
            return;
        };
        let mut stores: Vec<Arc<dyn Store>> = Vec::new();
        for _ in 0..3 {
            stores.push(Arc::new(PostgresStore::connect(&url).await.unwrap()));
        }
        let reader = stores.pop().unwrap();
        appends_in_parallel_while_a_reader_follows("postgres", stores, reader).await;
        let client = raw(&url).await;
        assert_eq!(in_flight(&client).await, 0, "no reservation is left");
    }
}

/// Two stores (two processes) append the same messageIds at once, in opposite orders:
/// each is stored by exactly one of them, and neither fails (the claims are taken in key
/// order, so two groups never deadlock over them; groups this big overlap in time).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_groups_with_the_same_message_ids_store_each_once() {
    let Some(url) = postgres_url("samegroup").await else {
        return;
    };
    let a = PostgresStore::connect(&url).await.unwrap();
    let b = PostgresStore::connect(&url).await.unwrap();
    for round in 0..30 {
        let ids: Vec<String> = (0..400).map(|k| format!("r{round}-{k}")).collect();
        let forward = ids.iter().map(|id| event(1, id, 1)).collect();
        let backward = ids.iter().rev().map(|id| event(1, id, 1)).collect();
        let (first, second) = tokio::join!(a.append(forward, 0), b.append(backward, 0));
        let (first, second) = (first.unwrap(), second.unwrap());
        for (k, id) in ids.iter().enumerate() {
            let stored = [first[k], second[ids.len() - 1 - k]]
                .iter()
                .filter(|o| matches!(o, Appended::Stored(_)))
                .count();
            assert_eq!(stored, 1, "{id}: {first:?} {second:?}");
        }
    }
    assert_eq!(
        a.read_events(0, 100_000, None).await.unwrap().len(),
        30 * 400
    );
}

/// Waits until `count` events are committed, as a raw connection sees them (beneath the
/// store's read bound).
#[cfg(feature = "postgres")]
async fn committed_events(observer: &tokio_postgres::Client, count: i64) {
    let since = std::time::Instant::now();
    while observer
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        < count
    {
        in_time(since, "the database");
        tokio::task::yield_now().await;
    }
}

/// A raw connection to a test's schema.
#[cfg(feature = "postgres")]
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[cfg(feature = "postgres")]
async fn in_flight(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM log_appends", &[])
        .await
        .unwrap()
        .get(0)
}

/// Reserves one seq for `client`'s backend as a writer does (7461001 is postgres.rs's
/// `APPEND_LOCK`); returns it.
#[cfg(feature = "postgres")]
async fn reserve(client: &tokio_postgres::Client) -> i64 {
    client
        .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(7461001)")
        .await
        .unwrap();
    let first = client
        .query_one(
            "INSERT INTO log_appends (first_seq, pid, backend_start)
             SELECT nextval(pg_get_serial_sequence('events', 'seq')), pid, backend_start
             FROM pg_stat_activity WHERE pid = pg_backend_pid() RETURNING first_seq",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client.batch_execute("COMMIT").await.unwrap();
    first
}

#[cfg(feature = "postgres")]
fn message_ids(events: &[sightline_core::StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.message_id.as_str()).collect()
}

/// An append in flight on a live backend holds readers below its reservation (its later
/// neighbours, committed meanwhile, are not read yet) until it commits; appends do not
/// wait for it to commit theirs, only to answer.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn an_append_in_flight_holds_readers_below_it() {
    let Some(url) = postgres_url("inflight").await else {
        return;
    };
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let before = seqs(&store.append(vec![event(1, "before", 1)], 0).await.unwrap())[0];

    // Another writer's append, as it runs: the reservation committed, then its transaction
    // holding the reservation row.
    let other = raw(&url).await;
    let reserved = reserve(&other).await;
    assert!(reserved > before);
    other
        .batch_execute("BEGIN; DELETE FROM log_appends WHERE pid = pg_backend_pid()")
        .await
        .unwrap();

    // An append returns once readers see its events (its answer waits for the one below).
    let append_and_read = |e: NewEvent| {
        let store = store.clone();
        tokio::spawn(async move {
            let seq = seqs(&store.append(vec![e], 0).await.unwrap())[0];
            (seq, store.last_seq().await.unwrap())
        })
    };
    let append = append_and_read(event(2, "after", 2));
    // It commits without waiting for the one in flight.
    let observer = raw(&url).await;
    committed_events(&observer, 2).await;
    assert_eq!(
        message_ids(&store.read_events(0, 10, None).await.unwrap()),
        ["before"]
    );
    assert!(store.read_events(0, 10, Some(2)).await.unwrap().is_empty());
    assert_eq!(store.last_seq().await.unwrap(), before);

    // The append in flight ends (as one whose events were all duplicates): reads go on.
    other.batch_execute("COMMIT").await.unwrap();
    let (after, seen) = append.await.unwrap();
    assert!(after > reserved);
    assert_eq!(seen, after, "readable once the append returned");
    assert_eq!(
        message_ids(&store.read_events(0, 10, None).await.unwrap()),
        ["before", "after"]
    );
    assert_eq!(store.last_seq().await.unwrap(), after);

    // A reservation of a live backend that is not (or no longer) appending holds readers
    // too, until it is removed.
    let held = reserve(&other).await;
    let append = append_and_read(event(1, "later", 3));
    committed_events(&observer, 3).await;
    assert_eq!(store.last_seq().await.unwrap(), after);
    other
        .execute("DELETE FROM log_appends WHERE first_seq = $1", &[&held])
        .await
        .unwrap();
    let (later, seen) = append.await.unwrap();
    assert_eq!(seen, later, "readable once the append returned");
    assert_eq!(
        message_ids(&store.read_events(after, 10, None).await.unwrap()),
        ["later"]
    );
    assert_eq!(store.last_seq().await.unwrap(), later);
}

/// A reservation left by a backend that ended before committing (a crash between the
/// reservation and the commit) does not hold readers, and a writer that opens removes it.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_dead_backends_reservation_is_skipped_and_removed() {
    let Some(url) = postgres_url("deadres").await else {
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    store.append(vec![event(1, "before", 1)], 0).await.unwrap();

    let doomed = raw(&url).await;
    let pid: i32 = doomed
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    reserve(&doomed).await;
    let admin = raw(&url).await;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let since = std::time::Instant::now();
    while admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        in_time(since, "the database");
        tokio::task::yield_now().await;
    }

    let after = seqs(&store.append(vec![event(1, "after", 2)], 0).await.unwrap())[0];
    assert_eq!(
        message_ids(&store.read_events(0, 10, None).await.unwrap()),
        ["before", "after"]
    );
    assert_eq!(store.last_seq().await.unwrap(), after);
    assert_eq!(in_flight(&admin).await, 1, "left until a writer opens");
    let _reopened = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(in_flight(&admin).await, 0, "removed when a writer opens");
}

#[tokio::test]
async fn sources_keys_and_rotation() {
    for (name, store) in backends("sources").await {
        assert!(store.is_empty().await.unwrap(), "{name}");
        let web = store.create_source("web", "hash-1").await.unwrap();
        assert!(!store.is_empty().await.unwrap(), "{name}");
        let err = store.create_source("web", "hash-x").await.unwrap_err();
        assert!(err.to_string().contains("already exists"), "{name}: {err}");
        assert_eq!(
            store.source_for_key("hash-1", 5).await.unwrap(),
            Some(web.clone())
        );
        assert_eq!(
            store.source_for_key("nope", 5).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store.source_by_name("web").await.unwrap(),
            Some(web.clone())
        );
        assert_eq!(
            store.list_sources().await.unwrap(),
            vec![web.clone()],
            "{name}"
        );

        store.rotate_key(web.id, "hash-2", 1_000).await.unwrap();
        assert_eq!(
            store.source_for_key("hash-1", 999).await.unwrap(),
            Some(web.clone())
        );
        assert_eq!(
            store.source_for_key("hash-1", 1_000).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store.source_for_key("hash-2", 10_000).await.unwrap(),
            Some(web)
        );
    }
}

#[tokio::test]
async fn tokens_and_checkpoints() {
    for (name, store) in backends("tokens").await {
        let token = store.create_token(Role::Security, "t-hash").await.unwrap();
        assert_eq!(token.role, Role::Security, "{name}");
        assert_eq!(store.token_for_hash("t-hash").await.unwrap(), Some(token));
        assert_eq!(store.token_for_hash("other").await.unwrap(), None, "{name}");

        assert_eq!(store.checkpoint("identity").await.unwrap(), 0, "{name}");
        store.set_checkpoint("identity", 42).await.unwrap();
        store.set_checkpoint("identity", 43).await.unwrap();
        assert_eq!(store.checkpoint("identity").await.unwrap(), 43, "{name}");
        store.ping().await.unwrap();
    }
}

#[tokio::test]
async fn console_sessions_last_until_they_expire_or_end() {
    for (name, store) in backends("sessions").await {
        let now = sightline_core::time::now_ms();
        let session = |id: &str, expires_at: i64| ConsoleSession {
            id_hash: id.into(),
            token_hash: "t-hash".into(),
            csrf: format!("csrf-{id}"),
            expires_at,
        };
        store.start_session(session("old", now - 1)).await.unwrap();
        store
            .start_session(session("a", now + 60_000))
            .await
            .unwrap();
        assert_eq!(
            store.session("a", now).await.unwrap(),
            Some(session("a", now + 60_000)),
            "{name}"
        );
        assert_eq!(
            store.session("a", now + 60_000).await.unwrap(),
            None,
            "{name}: expired"
        );
        assert_eq!(
            store.session("old", now - 10).await.unwrap(),
            None,
            "{name}: removed at the next start"
        );
        assert_eq!(store.session("b", now).await.unwrap(), None, "{name}");
        store.end_session("a").await.unwrap();
        assert_eq!(
            store.session("a", now).await.unwrap(),
            None,
            "{name}: ended"
        );
        store.end_session("a").await.unwrap();
    }
}

fn hook(name: &str) -> NewDestination {
    NewDestination {
        name: name.into(),
        kind: DestinationKind::Webhook,
        url: "http://127.0.0.1:9/hook".into(),
        purposes: vec!["analytics".into(), "advertising".into()],
        event_types: vec!["track".into()],
        event_names: vec!["Order Completed".into(), "a, b".into()],
        batch_size: 10,
        transform: serde_json::json!({"deny": ["context.ip"]}),
        settings: serde_json::json!({}),
        signing_secret: "s3cret".into(),
    }
}

fn delivery(destination_id: i64, seq: i64, status: DeliveryStatus) -> Delivery {
    Delivery {
        destination_id,
        seq,
        message_id: format!("m{seq}"),
        status,
        attempts: 2,
        response_code: Some(503),
        latency_ms: Some(12),
        reason: Some("why".into()),
        at: 1_000 + seq,
    }
}

#[tokio::test]
async fn destinations_and_their_delivery_log() {
    for (name, store) in backends("destinations").await {
        let created = store.create_destination(hook("crm")).await.unwrap();
        assert_eq!(created.name, "crm", "{name}");
        assert_eq!(created.event_names, ["Order Completed", "a, b"], "{name}");
        assert_eq!(created.batch_size, 10, "{name}");
        assert_eq!(created.signing_secret, "s3cret", "{name}");
        assert_eq!(created.transform["deny"][0], "context.ip", "{name}");
        let err = store.create_destination(hook("crm")).await.unwrap_err();
        assert!(err.to_string().contains("already exists"), "{name}: {err}");
        let other = store.create_destination(hook("ads")).await.unwrap();
        assert_eq!(
            store.list_destinations().await.unwrap(),
            vec![created.clone(), other.clone()],
            "{name}"
        );
        assert_eq!(
            store.destination_by_name("crm").await.unwrap(),
            Some(created.clone()),
            "{name}"
        );
        assert_eq!(store.destination_by_name("nope").await.unwrap(), None);

        let ga4 = store
            .create_destination(NewDestination {
                kind: DestinationKind::Ga4,
                settings: serde_json::json!({"measurement_id": "G-1"}),
                signing_secret: "api-secret".into(),
                ..hook("analytics")
            })
            .await
            .unwrap();
        assert_eq!(ga4.kind, DestinationKind::Ga4, "{name}");
        assert_eq!(ga4.settings["measurement_id"], "G-1", "{name}");
        store
            .set_destination_secret(ga4.id, "rotated")
            .await
            .unwrap();
        let rotated = store
            .destination_by_name("analytics")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rotated.signing_secret, "rotated", "{name}");
        assert_eq!(rotated.settings, ga4.settings, "{name}");
        store.delete_destination(ga4.id).await.unwrap();

        let processor = format!("delivery:{}", created.id);
        store
            .record_deliveries(
                vec![
                    delivery(created.id, 1, DeliveryStatus::Delivered),
                    delivery(created.id, 2, DeliveryStatus::Dead),
                    delivery(created.id, 3, DeliveryStatus::Suppressed),
                    delivery(other.id, 2, DeliveryStatus::Dead),
                ],
                Some((processor.clone(), 3)),
            )
            .await
            .unwrap();
        assert_eq!(store.checkpoint(&processor).await.unwrap(), 3, "{name}");
        let all = store.deliveries(created.id, None, 0, 10).await.unwrap();
        assert_eq!(all.iter().map(|d| d.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[0], delivery(created.id, 1, DeliveryStatus::Delivered));
        let dead = store
            .deliveries(created.id, Some(DeliveryStatus::Dead), 0, 10)
            .await
            .unwrap();
        assert_eq!(dead, vec![delivery(created.id, 2, DeliveryStatus::Dead)]);
        let page = store.deliveries(created.id, None, 1, 1).await.unwrap();
        assert_eq!(page.len(), 1, "{name}");
        assert_eq!(page[0].seq, 2, "{name}");

        // A replayed dead letter replaces its earlier outcome; no checkpoint moves.
        let mut replayed = delivery(created.id, 2, DeliveryStatus::Delivered);
        replayed.response_code = None;
        replayed.latency_ms = None;
        replayed.reason = None;
        store
            .record_deliveries(vec![replayed.clone()], None)
            .await
            .unwrap();
        assert!(store
            .deliveries(created.id, Some(DeliveryStatus::Dead), 0, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.deliveries(created.id, None, 1, 1).await.unwrap(),
            vec![replayed],
            "{name}"
        );
        assert_eq!(store.checkpoint(&processor).await.unwrap(), 3, "{name}");
    }
}

#[tokio::test]
async fn reopening_keeps_the_log_and_the_dedup_state() {
    let temp = temp_dir("reopen");
    let dir = temp.path();
    {
        let store = SqliteStore::open(dir).await.unwrap();
        store.append(vec![event(1, "kept", 5)], 0).await.unwrap();
    }
    let store = SqliteStore::open(dir).await.unwrap();
    assert_eq!(store.read_events(0, 10, None).await.unwrap().len(), 1);
    let outcome = store.append(vec![event(1, "kept", 6)], 0).await.unwrap();
    assert_eq!(outcome, vec![Appended::Duplicate]);
}

/// The command line appends (CRM imports) beside a running server, each with a store of
/// its own on the same file: each sees the other's events as duplicates.
#[tokio::test]
async fn two_processes_appending_to_one_log_dedup_each_others_events() {
    let temp = temp_dir("two-writers");
    let server = SqliteStore::open(temp.path()).await.unwrap();
    let command = SqliteStore::open(temp.path()).await.unwrap();
    let first = server.append(vec![event(1, "s", 5)], 0).await.unwrap();
    assert!(matches!(first[0], Appended::Stored(_)));
    let imported = command
        .append(vec![event(1, "s", 6), event(1, "c", 6)], 0)
        .await
        .unwrap();
    assert_eq!(imported[0], Appended::Duplicate);
    assert!(matches!(imported[1], Appended::Stored(_)));
    let again = server.append(vec![event(1, "c", 7)], 0).await.unwrap();
    assert_eq!(again, vec![Appended::Duplicate]);
    assert_eq!(server.read_events(0, 10, None).await.unwrap().len(), 2);
}

#[tokio::test]
async fn audience_definitions() {
    for (name, store) in backends("audiences").await {
        assert!(store.list_audiences().await.unwrap().is_empty(), "{name}");
        let buyers = store
            .create_audience(
                "buyers",
                r#"event "Order Completed" count >= 1 within 30d"#,
                &["ads".to_string()],
            )
            .await
            .unwrap();
        assert_eq!(buyers.name, "buyers");
        assert_eq!(buyers.sync, ["ads"]);
        let err = store
            .create_audience("buyers", "has email", &[])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{name}: {err}");
        store
            .create_audience("known", "has email", &[])
            .await
            .unwrap();
        let all = store.list_audiences().await.unwrap();
        assert_eq!(all.len(), 2, "{name}");
        assert_eq!(all[0], buyers, "{name}");
    }
}

fn holds(id_type: &str, value: &str, profile: i64) -> IdentifierRow {
    IdentifierRow {
        id_type: id_type.into(),
        value: value.into(),
        profile,
        shared: false,
        seen_with: "[]".into(),
    }
}

fn denied(day: &str, count: i64) -> DeniedCount {
    DeniedCount {
        day: day.into(),
        source_id: 1,
        event: "Viewed".into(),
        count,
    }
}

fn state(seq: i64) -> ProfilesState {
    ProfilesState {
        seq,
        rules: "r1".into(),
        definitions: "d1".into(),
    }
}

async fn event_seqs(store: &dyn Store, profile: i64) -> Vec<i64> {
    let events = store.stored_profile_events(profile, i64::MAX, 10).await;
    events.unwrap().iter().map(|e| e.seq).collect()
}

#[tokio::test]
async fn stored_profiles_apply_saves_in_order_and_refuse_a_moved_base() {
    for (name, store) in backends("profiles").await {
        assert_eq!(store.profiles_state().await.unwrap(), None, "{name}");
        let stored = seqs(
            &store
                .append((1..=4).map(|i| event(1, &format!("m{i}"), i)).collect(), 0)
                .await
                .unwrap(),
        );
        let (a, b) = (stored[0], stored[2]);
        // Two profiles, each with an identifier and events.
        let first = ProfileSave {
            replace: false,
            base_seq: 0,
            profile_erasures: 0,
            state: state(stored[2]),
            rows: ProfileRows {
                retired: vec![],
                profiles: vec![(a, r#"{"n":"a"}"#.into()), (b, r#"{"n":"b"}"#.into())],
                identifiers: vec![
                    holds("email", "ann@x.com", a),
                    holds("anonymous_id", "d1", b),
                ],
                events: vec![(a, stored[0]), (a, stored[1]), (b, stored[2])],
                denied_counts: vec![denied("2026-05-04", 3), denied("2026-05-05", 1)],
                audience_changes: vec![("buyers".into(), r#"{"n":1}"#.into())],
                states: vec![(a, r#"{"s":"a"}"#.into()), (b, r#"{"s":"b"}"#.into())],
                members: vec![("buyers".into(), a, true), ("buyers".into(), b, true)],
                timers: vec![
                    ("buyers".into(), a, Some(50)),
                    ("buyers".into(), b, Some(40)),
                    ("keen".into(), a, Some(90)),
                ],
                consent: vec![
                    (a, stored[1], r#"{"c":"a1"}"#.into()),
                    (a, stored[0], r#"{"c":"a0"}"#.into()),
                    (b, stored[2], r#"{"c":"b2"}"#.into()),
                ],
            },
        };
        assert_eq!(store.load_profiles().await.unwrap(), None, "{name}");
        store.save_profiles(first).await.unwrap();
        assert_eq!(
            store.profiles_state().await.unwrap(),
            Some(state(stored[2]))
        );
        let found = store
            .stored_profile("anonymous_id", "d1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.id, found.doc.as_str(), found.states.as_deref()),
            (b, r#"{"n":"b"}"#, Some(r#"{"s":"b"}"#)),
            "{name}"
        );
        let ann = store
            .stored_profile("email", "ann@x.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ann.consent,
            [r#"{"c":"a0"}"#, r#"{"c":"a1"}"#],
            "{name}: by seq"
        );
        let asked = [
            ("email", "ann@x.com"),
            ("anonymous_id", "d1"),
            ("email", "nobody@x.com"),
            ("email", "ann@x.com"),
        ];
        let many = store
            .stored_profiles(
                asked
                    .iter()
                    .map(|(t, v)| (t.to_string(), v.to_string()))
                    .collect(),
            )
            .await
            .unwrap();
        assert_eq!(
            many,
            [
                Some(ann.clone()),
                Some(found.clone()),
                None,
                Some(ann.clone())
            ],
            "{name}: each identifier's profile, in order"
        );
        assert_eq!(
            event_seqs(store.as_ref(), a).await,
            [stored[1], stored[0]],
            "{name}"
        );
        let ids = |profiles: Vec<StoredProfile>| profiles.iter().map(|p| p.id).collect::<Vec<_>>();
        let members = store.audience_members("buyers", 0, 10).await.unwrap();
        assert_eq!(ids(members), [a, b], "{name}");
        let after_a = store.audience_members("buyers", a, 10).await.unwrap();
        assert_eq!(ids(after_a), [b], "{name}: paged by profile id");
        assert_eq!(
            store.audience_sizes().await.unwrap(),
            [("buyers".to_string(), 2)],
            "{name}"
        );
        assert_eq!(
            store.due_timers(50, 10).await.unwrap(),
            [("buyers".to_string(), b, 40), ("buyers".to_string(), a, 50)],
            "{name}: earliest first, none later than asked"
        );
        assert_eq!(
            store
                .stored_profile_events(a, stored[1], 10)
                .await
                .unwrap()
                .len(),
            1,
            "{name}: `before` pages"
        );

        // b merges into a: its identifiers and events move, its row goes.
        let merge = ProfileSave {
            replace: false,
            base_seq: stored[2],
            profile_erasures: 0,
            state: state(stored[3]),
            rows: ProfileRows {
                retired: vec![(b, a)],
                profiles: vec![(a, r#"{"n":"a+b"}"#.into())],
                identifiers: vec![],
                events: vec![(a, stored[3])],
                denied_counts: vec![denied("2026-05-04", 2)],
                audience_changes: vec![
                    ("buyers".into(), r#"{"n":2}"#.into()),
                    ("other".into(), r#"{"n":3}"#.into()),
                ],
                states: vec![(a, r#"{"s":"a+b"}"#.into())],
                members: vec![("buyers".into(), b, false), ("keen".into(), a, true)],
                timers: vec![("buyers".into(), a, None)],
                consent: vec![(a, stored[3], r#"{"c":"a3"}"#.into())],
            },
        };
        store.save_profiles(merge.clone()).await.unwrap();
        // Everything a start restores, as the saves left it.
        let (loaded_state, loaded) = store.load_profiles().await.unwrap().unwrap();
        assert_eq!(loaded_state, state(stored[3]), "{name}");
        assert_eq!(
            loaded.profiles,
            [(a, r#"{"n":"a+b"}"#.to_string())],
            "{name}"
        );
        assert_eq!(loaded.states, [(a, r#"{"s":"a+b"}"#.to_string())], "{name}");
        assert_eq!(loaded.retired, [(b, a)], "{name}: where b went is kept");
        let mut owners: Vec<(String, i64)> = loaded
            .identifiers
            .iter()
            .map(|i| (i.value.clone(), i.profile))
            .collect();
        owners.sort();
        assert_eq!(
            owners,
            [("ann@x.com".into(), a), ("d1".into(), a)],
            "{name}"
        );
        assert_eq!(
            loaded.events,
            [
                (a, stored[0]),
                (a, stored[1]),
                (a, stored[2]),
                (a, stored[3])
            ],
            "{name}"
        );
        let mut counts = loaded.denied_counts.clone();
        counts.sort();
        assert_eq!(
            counts,
            [denied("2026-05-04", 5), denied("2026-05-05", 1)],
            "{name}"
        );
        let found = store
            .stored_profile("anonymous_id", "d1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.id, found.doc.as_str()),
            (a, r#"{"n":"a+b"}"#),
            "{name}"
        );
        assert_eq!(
            event_seqs(store.as_ref(), a).await,
            [stored[3], stored[2], stored[1], stored[0]]
        );
        assert!(event_seqs(store.as_ref(), b).await.is_empty(), "{name}");
        let loaded = store
            .working_set(
                vec![
                    ("anonymous_id".into(), "d1".into()),
                    ("email".into(), "nobody@x.com".into()),
                ],
                vec![b, stored[3] + 99],
            )
            .await
            .unwrap();
        assert_eq!(
            loaded.profiles,
            [(a, r#"{"n":"a+b"}"#.to_string())],
            "{name}: the holder of d1, once; a retired id and an unknown one load nothing"
        );
        let mut held: Vec<&str> = loaded
            .identifiers
            .iter()
            .map(|i| i.value.as_str())
            .collect();
        held.sort();
        assert_eq!(
            held,
            ["ann@x.com", "d1"],
            "{name}: every identifier it holds"
        );
        assert_eq!(loaded.states, [(a, r#"{"s":"a+b"}"#.to_string())], "{name}");
        let ledger: Vec<i64> = loaded.consent.iter().map(|(_, seq, _)| *seq).collect();
        assert_eq!(ledger, stored, "{name}: b's consent went with it to a");
        assert!(loaded.consent.iter().all(|(p, _, _)| *p == a), "{name}");
        let retired = store.stored_profile_by_id(b).await.unwrap().unwrap();
        assert_eq!(
            (retired.id, retired.states.as_deref(), retired.consent.len()),
            (a, Some(r#"{"s":"a+b"}"#), 4),
            "{name}: a retired id finds its survivor"
        );
        let members = store.audience_members("keen", 0, 10).await.unwrap();
        assert_eq!(
            members[0].consent.len(),
            4,
            "{name}: members come with their ledgers"
        );
        assert_eq!(
            store.stored_profile_by_id(stored[3] + 99).await.unwrap(),
            None
        );
        assert_eq!(
            store.audience_sizes().await.unwrap(),
            [("buyers".to_string(), 1), ("keen".to_string(), 1)],
            "{name}"
        );
        assert_eq!(
            store.due_timers(i64::MAX, 10).await.unwrap(),
            [("keen".to_string(), a, 90)],
            "{name}: a cleared timer and a retired profile's are gone"
        );
        let counts = store
            .consent_denied_counts("2026-05-04", "2026-05-04")
            .await
            .unwrap();
        assert_eq!(counts, [denied("2026-05-04", 5)], "{name}: saves add up");
        let history = store.audience_history("buyers", 0, 10).await.unwrap();
        let changes: Vec<&str> = history.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(changes, [r#"{"n":1}"#, r#"{"n":2}"#], "{name}");
        let later = store
            .audience_history("buyers", history[0].0, 10)
            .await
            .unwrap();
        assert_eq!(later.len(), 1, "{name}: paged by id");

        // A save on a base that moved (here: replaying the same save) changes nothing.
        let err = store.save_profiles(merge).await.unwrap_err();
        assert!(err.to_string().contains("another process"), "{name}: {err}");
        let other_rules = ProfileSave {
            base_seq: stored[3],
            state: ProfilesState {
                seq: stored[3],
                rules: "r2".into(),
                definitions: "d1".into(),
            },
            ..ProfileSave::default()
        };
        assert!(store.save_profiles(other_rules).await.is_err(), "{name}");

        // A replace starts from nothing, whatever was stored.
        let rebuild = ProfileSave {
            replace: true,
            base_seq: 0,
            profile_erasures: 0,
            state: ProfilesState {
                seq: stored[3],
                rules: "r2".into(),
                definitions: "d2".into(),
            },
            rows: ProfileRows {
                profiles: vec![(b, r#"{"n":"b"}"#.into())],
                identifiers: vec![holds("anonymous_id", "d1", b)],
                events: vec![(b, stored[2])],
                ..ProfileRows::default()
            },
        };
        store.save_profiles(rebuild).await.unwrap();
        assert_eq!(
            store.stored_profile("email", "ann@x.com").await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            store
                .stored_profile("anonymous_id", "d1")
                .await
                .unwrap()
                .unwrap()
                .id,
            b
        );
        assert!(event_seqs(store.as_ref(), a).await.is_empty(), "{name}");
        assert!(store.audience_sizes().await.unwrap().is_empty(), "{name}");
        assert!(store.due_timers(i64::MAX, 10).await.unwrap().is_empty());
        assert_eq!(
            store.profiles_state().await.unwrap().unwrap().rules,
            "r2",
            "{name}"
        );
        assert!(
            store
                .consent_denied_counts("2000-01-01", "2100-01-01")
                .await
                .unwrap()
                .is_empty(),
            "{name}: a rebuild replaces the counts"
        );
        assert_eq!(
            store.audience_history("buyers", 0, 10).await.unwrap().len(),
            2,
            "{name}: a rebuild keeps the history of what happened"
        );
        let (_, loaded) = store.load_profiles().await.unwrap().unwrap();
        assert!(
            loaded.states.is_empty() && loaded.retired.is_empty(),
            "{name}: a rebuild replaces the states and the merges"
        );
    }
}

#[tokio::test]
async fn computed_trait_definitions() {
    for (name, store) in backends("traits").await {
        assert!(store.list_traits().await.unwrap().is_empty(), "{name}");
        let definition = r#"{"name":"orders","aggregate":{"kind":"count"}}"#;
        let created = store.create_trait("orders", definition).await.unwrap();
        assert_eq!(created.definition["aggregate"]["kind"], "count", "{name}");
        let err = store.create_trait("orders", definition).await.unwrap_err();
        assert!(err.to_string().contains("already exists"), "{name}: {err}");
        assert_eq!(store.list_traits().await.unwrap(), [created], "{name}");
    }
}

// ---- Record linkage: the clerical review queue ----

fn review(left: &str, right: &str, probability: f64) -> sightline_core::NewLinkReview {
    sightline_core::NewLinkReview {
        origin: "crm import test.csv".into(),
        left: left.into(),
        right: right.into(),
        match_probability: probability,
        evidence: format!(r#"{{"left_id":"{left}","right_id":"{right}","fields":[]}}"#),
    }
}

#[tokio::test]
async fn link_review_queue() {
    use sightline_core::ReviewStatus;
    use sightline_store::StoreError;
    for (name, store) in backends("reviews").await {
        let ids = store
            .add_link_reviews(vec![
                review("crm_id:c1", "email:ann@x.io", 0.7),
                review("crm_id:c2", "crm_id:c3", 0.6),
            ])
            .await
            .unwrap();
        assert!(ids.iter().all(Option::is_some), "{name}: {ids:?}");
        let (first, second) = (ids[0].unwrap(), ids[1].unwrap());
        assert!(second > first, "{name}");
        // The same pair, in either order, is not queued twice; a new one is.
        let again = store
            .add_link_reviews(vec![
                review("email:ann@x.io", "crm_id:c1", 0.9),
                review("crm_id:c2", "crm_id:c3", 0.6),
                review("crm_id:c4", "crm_id:c5", 0.55),
            ])
            .await
            .unwrap();
        assert_eq!(again[..2], [None, None], "{name}");
        let third = again[2].expect("a new pair is queued");

        let pending = store
            .link_reviews(Some(ReviewStatus::Pending), 0, 10)
            .await
            .unwrap();
        assert_eq!(
            pending.iter().map(|r| r.id).collect::<Vec<_>>(),
            [first, second, third],
            "{name}"
        );
        let item = &pending[0];
        assert_eq!(
            (item.left.as_str(), item.right.as_str()),
            ("crm_id:c1", "email:ann@x.io"),
            "{name}"
        );
        assert_eq!(item.match_probability, 0.7, "{name}");
        assert_eq!(item.evidence["right_id"], "email:ann@x.io", "{name}");
        assert_eq!(
            (item.status, item.seq, item.decided_at),
            (ReviewStatus::Pending, None, None)
        );
        let page = store.link_reviews(None, first, 1).await.unwrap();
        assert_eq!(
            page.iter().map(|r| r.id).collect::<Vec<_>>(),
            [second],
            "{name}"
        );

        let accepted = store
            .decide_link_review(first, ReviewStatus::Accepted, Some(42))
            .await
            .unwrap();
        assert_eq!(
            (accepted.status, accepted.seq),
            (ReviewStatus::Accepted, Some(42)),
            "{name}"
        );
        assert!(accepted.decided_at.is_some(), "{name}");
        let rejected = store
            .decide_link_review(second, ReviewStatus::Rejected, None)
            .await
            .unwrap();
        assert_eq!(rejected.status, ReviewStatus::Rejected, "{name}");
        // Decided once: a second decision is a conflict and changes nothing.
        let twice = store
            .decide_link_review(first, ReviewStatus::Rejected, None)
            .await
            .unwrap_err();
        assert!(
            matches!(twice, StoreError::Conflict(ref m) if m.contains("accepted")),
            "{name}: {twice}"
        );
        let unknown = store
            .decide_link_review(9999, ReviewStatus::Accepted, None)
            .await
            .unwrap_err();
        assert!(
            matches!(unknown, StoreError::NotFound(_)),
            "{name}: {unknown}"
        );
        assert_eq!(
            store.link_review(first).await.unwrap().unwrap().status,
            ReviewStatus::Accepted,
            "{name}"
        );
        assert!(store.link_review(9999).await.unwrap().is_none(), "{name}");
        let by_status = |status| {
            let store = store.clone();
            async move { store.link_reviews(Some(status), 0, 10).await.unwrap().len() }
        };
        assert_eq!(by_status(ReviewStatus::Pending).await, 1, "{name}");
        assert_eq!(by_status(ReviewStatus::Accepted).await, 1, "{name}");
        assert_eq!(by_status(ReviewStatus::Rejected).await, 1, "{name}");
        // A rejected pair stays rejected: importing it again does not queue it.
        let requeued = store
            .add_link_reviews(vec![review("crm_id:c3", "crm_id:c2", 0.8)])
            .await
            .unwrap();
        assert_eq!(requeued, [None], "{name}");
    }
}

// ---- The governance registry (`Governance`) ----

use sightline_store::{
    Durability, Governance, NewTagLogEntry, RecordKind, RecordWrite, SCREENSHOT_SCANS_KEPT,
};

fn create(key: &str, doc: &str) -> RecordWrite {
    RecordWrite {
        key: key.into(),
        version: None,
        doc: doc.into(),
    }
}

fn update(key: &str, version: i64, doc: &str) -> RecordWrite {
    RecordWrite {
        key: key.into(),
        version: Some(version),
        doc: doc.into(),
    }
}

fn log_entry(action: &str) -> NewTagLogEntry {
    NewTagLogEntry {
        at: 1_000,
        actor: "token:1".into(),
        action: action.into(),
        entry: format!(r#"{{"action":"{action}"}}"#),
    }
}

#[tokio::test]
async fn stored_scans_list_by_journey_and_read_back() {
    for (name, store) in backends("scans").await {
        let summary = serde_json::json!({"findings": 2});
        let a = store
            .save_scan("shop", &summary, r#"{"journey":"shop"}"#, &[])
            .await
            .unwrap();
        let b = store
            .save_scan("blog", &summary, r#"{"journey":"blog"}"#, &[])
            .await
            .unwrap();
        assert!(b.id > a.id, "{name}");
        assert_eq!(a.summary["findings"], 2, "{name}");
        assert_eq!(
            store.scans(None).await.unwrap(),
            [a.clone(), b.clone()],
            "{name}"
        );
        assert_eq!(
            store.scans(Some("shop")).await.unwrap(),
            std::slice::from_ref(&a),
            "{name}"
        );
        assert_eq!(
            store.scan_report(b.id).await.unwrap().as_deref(),
            Some(r#"{"journey":"blog"}"#),
            "{name}"
        );
        assert_eq!(store.scan_report(b.id + 10).await.unwrap(), None, "{name}");
        assert_eq!(store.scan(b.id).await.unwrap(), Some(b.clone()), "{name}");
        assert_eq!(store.scan(b.id + 10).await.unwrap(), None, "{name}");
    }
}

/// A scan's screenshots read back by the path its report names; a journey's older scans
/// lose theirs (not their reports), other journeys' scans keep theirs.
#[tokio::test]
async fn scan_screenshots_are_kept_for_a_journeys_latest_scans() {
    for (name, store) in backends("screenshots").await {
        let shot = |n: i64| vec![(format!("screenshots/s/{n:02}-step.png"), vec![n as u8; 3])];
        let blog = store
            .save_scan("blog", &serde_json::json!({}), "{}", &shot(0))
            .await
            .unwrap();
        let mut shop = Vec::new();
        for n in 1..=SCREENSHOT_SCANS_KEPT + 1 {
            let row = store
                .save_scan("shop", &serde_json::json!({}), "{}", &shot(n))
                .await
                .unwrap();
            shop.push(row.id);
        }
        let image = |id, n: i64| {
            let store = store.clone();
            async move {
                store
                    .scan_screenshot(id, &format!("screenshots/s/{n:02}-step.png"))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(image(shop[0], 1).await, None, "{name}: the oldest lost it");
        assert!(store
            .scan_screenshot_paths(shop[0])
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.scan_screenshot_paths(shop[1]).await.unwrap(),
            ["screenshots/s/02-step.png"],
            "{name}"
        );
        assert_eq!(
            store.scan_report(shop[0]).await.unwrap().as_deref(),
            Some("{}")
        );
        assert_eq!(image(shop[1], 2).await, Some(vec![2; 3]), "{name}");
        let last = SCREENSHOT_SCANS_KEPT + 1;
        assert_eq!(
            image(shop[last as usize - 1], last).await,
            Some(vec![last as u8; 3])
        );
        assert_eq!(image(shop[1], 1).await, None, "{name}: another scan's path");
        assert_eq!(
            image(blog.id, 0).await,
            Some(vec![0; 3]),
            "{name}: another journey"
        );
    }
}

#[tokio::test]
async fn registry_records_are_versioned_and_written_all_or_nothing() {
    for (name, store) in backends("records").await {
        let kind = RecordKind::Journey;
        let made = store
            .write_records(
                kind,
                vec![create("shop", "{\"v\":1}"), create("blog", "{}")],
            )
            .await
            .unwrap();
        assert_eq!(made[0].version, 1, "{name}");
        let taken = store
            .write_records(kind, vec![create("new", "{}"), create("shop", "{}")])
            .await
            .unwrap_err();
        assert!(
            taken.to_string().contains("already exists"),
            "{name}: {taken}"
        );
        assert!(
            store.record(kind, "new").await.unwrap().is_none(),
            "{name}: a failed write changes nothing"
        );
        let updated = store
            .write_records(kind, vec![update("shop", 1, "{\"v\":2}")])
            .await
            .unwrap();
        assert_eq!(
            (updated[0].id, updated[0].version),
            (made[0].id, 2),
            "{name}"
        );
        let stale = store
            .write_records(kind, vec![update("shop", 1, "{\"v\":3}")])
            .await
            .unwrap_err();
        assert!(
            stale.to_string().contains("changed since version 1"),
            "{name}: {stale}"
        );
        let missing = store
            .write_records(kind, vec![update("nope", 1, "{}")])
            .await
            .unwrap_err();
        assert!(
            matches!(missing, sightline_store::StoreError::NotFound(_)),
            "{name}"
        );
        assert_eq!(
            store
                .record_by_id(kind, made[0].id)
                .await
                .unwrap()
                .unwrap()
                .doc,
            "{\"v\":2}",
            "{name}"
        );
        // Kinds are separate tables: the same key may exist in each.
        store
            .write_records(RecordKind::Backlog, vec![create("shop", "{}")])
            .await
            .unwrap();
        assert!(
            store.delete_record(kind, made[1].id, 7).await.is_err(),
            "{name}"
        );
        store.delete_record(kind, made[1].id, 1).await.unwrap();
        let keys: Vec<_> = store
            .records(kind)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, ["shop"], "{name}");
    }
}

#[tokio::test]
async fn tags_change_only_with_their_append_only_log() {
    for (name, store) in backends("tags").await {
        let tag = store
            .write_tag(
                create("meta|production", "{\"s\":\"proposed\"}"),
                log_entry("propose"),
            )
            .await
            .unwrap();
        let approved = store
            .write_tag(
                update("meta|production", 1, "{\"s\":\"approved\"}"),
                log_entry("approve"),
            )
            .await
            .unwrap();
        assert_eq!(approved.version, 2, "{name}");
        // A stale write appends nothing to the log.
        assert!(store
            .write_tag(update("meta|production", 1, "{}"), log_entry("reject"))
            .await
            .is_err());
        let other = store
            .write_tag(create("hotjar|staging", "{}"), log_entry("propose"))
            .await
            .unwrap();
        let log = store.tag_log(Some(tag.id), 0, 100).await.unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["propose", "approve"], "{name}");
        assert_eq!(log[0].actor, "token:1", "{name}");
        let all = store.tag_log(None, log[0].id, 100).await.unwrap();
        assert_eq!(all.len(), 2, "{name}");
        assert_eq!(all[1].tag_id, other.id, "{name}");
        // No path in the trait edits tags without the log or removes them.
        assert!(store
            .write_records(RecordKind::Tag, vec![update("meta|production", 2, "{}")])
            .await
            .is_err());
        assert!(store
            .delete_record(RecordKind::Tag, tag.id, 2)
            .await
            .is_err());
    }
}

/// Even SQL written by hand cannot edit or remove the tag change log, nor remove a tag.
#[tokio::test]
async fn the_databases_refuse_edits_of_the_tag_log() {
    let refused = [
        "UPDATE gov_tag_changes SET actor = 'someone else'",
        "DELETE FROM gov_tag_changes",
        "DELETE FROM gov_tags",
    ];
    let temp = temp_dir("triggers");
    let dir = temp.path();
    let store = SqliteStore::open(dir).await.unwrap();
    store
        .write_tag(create("meta|production", "{}"), log_entry("propose"))
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(dir.join("sightline.db")).unwrap();
    for sql in refused {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("refused"), "sqlite {sql}: {err}");
    }
    assert_eq!(store.tag_log(None, 0, 10).await.unwrap().len(), 1);

    #[cfg(feature = "postgres")]
    {
        let Some(url) = postgres_url("triggers").await else {
            return;
        };
        let store = PostgresStore::connect(&url).await.unwrap();
        store
            .write_tag(create("meta|production", "{}"), log_entry("propose"))
            .await
            .unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for sql in refused.into_iter().chain(["TRUNCATE gov_tag_changes"]) {
            let err = client.batch_execute(sql).await.unwrap_err();
            let message = format!("{err:?}");
            assert!(message.contains("refused"), "postgres {sql}: {message}");
        }
        assert_eq!(store.tag_log(None, 0, 10).await.unwrap().len(), 1);
    }
}

/// A role, status or type this version does not know (a newer version's, or a hand edit) is
/// refused as corrupt, never read as some default: an unknown role must not act as
/// `marketing`, an unknown delivery status must not read as `dead`, an unknown event type
/// must not read as `track`.
#[tokio::test]
async fn unknown_stored_roles_and_statuses_are_refused() {
    let edits = [
        "UPDATE tokens SET role = 'superuser'",
        "UPDATE destinations SET kind = 'carrier_pigeon'",
        "UPDATE deliveries SET status = 'misplaced'",
        "UPDATE link_reviews SET status = 'maybe'",
    ];
    let temp = temp_dir("undecodable");
    let store = SqliteStore::open(temp.path()).await.unwrap();
    let destination = store_one_of_each(&store).await;
    let conn = rusqlite::Connection::open(temp.path().join("sightline.db")).unwrap();
    for sql in edits {
        conn.execute(sql, []).unwrap();
    }
    // SQLite keeps the type as the index of `EventType::ALL` (migration 12), in `log.db`.
    rusqlite::Connection::open(temp.path().join("log.db"))
        .unwrap()
        .execute("UPDATE events SET type = 99", [])
        .unwrap();
    assert_each_is_refused("sqlite", &store, destination, "99").await;

    #[cfg(feature = "postgres")]
    {
        let Some(url) = postgres_url("undecodable").await else {
            return;
        };
        let store = PostgresStore::connect(&url).await.unwrap();
        let destination = store_one_of_each(&store).await;
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for sql in edits {
            client.batch_execute(sql).await.unwrap();
        }
        client
            .batch_execute("UPDATE events SET type = 'teleport'")
            .await
            .unwrap();
        assert_each_is_refused("postgres", &store, destination, "teleport").await;
    }
}

/// A token, a destination with a delivery, a review item and an event; the destination's id.
async fn store_one_of_each(store: &dyn Store) -> i64 {
    let token = store.create_token(Role::Security, "h1").await.unwrap();
    assert_eq!(token.role, Role::Security);
    let destination = store.create_destination(hook("hooks")).await.unwrap().id;
    let seq = seqs(&store.append(vec![event(1, "m1", 1)], 0).await.unwrap())[0];
    store
        .record_deliveries(
            vec![delivery(destination, seq, DeliveryStatus::Delivered)],
            None,
        )
        .await
        .unwrap();
    store
        .add_link_reviews(vec![review("crm_id:1", "email:a@example.com", 0.9)])
        .await
        .unwrap();
    destination
}

async fn assert_each_is_refused(name: &str, store: &dyn Store, destination: i64, kind: &str) {
    let refused = store.token_for_hash("h1").await.unwrap_err();
    assert!(
        refused.to_string().contains("superuser"),
        "{name}: {refused}"
    );
    let refused = store.list_destinations().await.unwrap_err();
    assert!(
        refused.to_string().contains("carrier_pigeon"),
        "{name}: {refused}"
    );
    let refused = store
        .deliveries(destination, None, 0, 10)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("misplaced"),
        "{name}: {refused}"
    );
    let refused = store.link_reviews(None, 0, 10).await.unwrap_err();
    assert!(refused.to_string().contains("maybe"), "{name}: {refused}");
    let refused = store.read_events(0, 10, None).await.unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("event type") && message.contains(kind),
        "{name}: {refused}"
    );
}

// ---- The compact log (migration 12): exact bodies, and stores from before it ----

/// Old-format events (as migrations 1–11 stored them): (source, messageId, type, ms after
/// the test's `old_arrival`, body).
const OLD_EVENTS: &[(i64, &str, &str, i64, &str)] = &[
    (
        1,
        "old-1",
        "track",
        10,
        r#"{"type":"track","event":"Signed Up","messageId":"old-1"}"#,
    ),
    (
        2,
        "old-2",
        "identify",
        11,
        "{ \"type\" : \"identify\", \"userId\":\"u\u{e9}\", \"messageId\":\"old-2\" }",
    ),
    (
        1,
        "old-3",
        "page",
        12,
        r#"{"type":"page","n":123456789012345678901234567890,"messageId":"old-3"}"#,
    ),
];

/// A store made by migrations 1–11 with rows written as they wrote them, opened by this
/// version: the old rows read back as they were, their dedup claims still hold, and new
/// events continue the sequence in the new form.
#[tokio::test]
async fn a_store_from_before_the_compact_log_opens_and_reads_the_same_events() {
    let now = sightline_core::time::now_ms();
    // Received within the dedup window, stored by the old format.
    let old_arrival = now - DAY / 2;
    let temp = temp_dir("migrate12");
    SqliteStore::create_at_version(temp.path(), 11).unwrap();
    {
        let conn = rusqlite::Connection::open(temp.path().join("sightline.db")).unwrap();
        for &(source, id, kind, at, body) in OLD_EVENTS {
            conn.execute(
                "INSERT INTO events (source_id, message_id, type, received_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![source, id, kind, old_arrival + at, body],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO dedup (source_id, message_id, seen_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![source, id, now],
            )
            .unwrap();
        }
        // A rolled-back append leaves the AUTOINCREMENT position past the last row.
        conn.execute_batch(
            "INSERT INTO events (source_id, message_id, type, received_at, body)
                 VALUES (1, 'gone', 'track', 13, '{}');
             DELETE FROM events WHERE message_id = 'gone';",
        )
        .unwrap();
    }
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let mut stores: Vec<(&str, Arc<dyn Store>)> = vec![(
        "sqlite",
        Arc::new(SqliteStore::open(temp.path()).await.unwrap()),
    )];
    #[cfg(feature = "postgres")]
    if let Some(url) = postgres_url("migrate12").await {
        PostgresStore::create_at_version(&url, 11).await.unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for &(source, id, kind, at, body) in OLD_EVENTS {
            client
                .execute(
                    "INSERT INTO events (source_id, message_id, type, received_at, body)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&source, &id, &kind, &(old_arrival + at), &body],
                )
                .await
                .unwrap();
            client
                .execute(
                    "INSERT INTO dedup (source_id, message_id, seen_at) VALUES ($1, $2, $3)",
                    &[&source, &id, &now],
                )
                .await
                .unwrap();
        }
        client
            .batch_execute(
                "INSERT INTO events (source_id, message_id, type, received_at, body)
                     VALUES (1, 'gone', 'track', 13, '{}');
                 DELETE FROM events WHERE message_id = 'gone';",
            )
            .await
            .unwrap();
        stores.push((
            "postgres",
            Arc::new(PostgresStore::connect(&url).await.unwrap()),
        ));
    }
    let kinds = [EventType::Track, EventType::Identify, EventType::Page];
    for (name, store) in stores {
        let read = store.read_events(0, 10, None).await.unwrap();
        assert_eq!(read.len(), OLD_EVENTS.len(), "{name}");
        for ((e, &(source, id, _, at, body)), kind) in read.iter().zip(OLD_EVENTS).zip(kinds) {
            assert_eq!(
                (
                    e.source_id,
                    e.message_id.as_str(),
                    e.event_type,
                    e.received_at,
                    e.body.as_str()
                ),
                (source, id, kind, old_arrival + at, body),
                "{name}"
            );
        }
        assert_eq!(
            read.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3],
            "{name}"
        );
        let only_source_1 = store.read_events(0, 10, Some(1)).await.unwrap();
        assert_eq!(only_source_1.len(), 2, "{name}");

        // The old claims still hold within the window; another source's id is its own.
        let outcome = store
            .append(
                vec![
                    event(1, "old-1", now),
                    event(3, "old-1", now),
                    event(1, "new", now),
                ],
                now - DAY,
            )
            .await
            .unwrap();
        assert_eq!(outcome[0], Appended::Duplicate, "{name}");
        // The sequence continues past the rolled-back append (seq 4). PostgreSQL reserves a
        // seq for every event a group may store before its dedup decides: the duplicate's
        // (5) stays a gap.
        let expected = if name == "sqlite" { [5, 6] } else { [6, 7] };
        assert_eq!(seqs(&outcome), expected, "{name}");
        let read = store.read_events(3, 10, None).await.unwrap();
        assert_eq!(read.len(), 2, "{name}");
        assert_eq!(read[1].body, event(1, "new", now).body, "{name}");
        assert_eq!(store.prune_dedup(now + 1).await.unwrap(), 5, "{name}");
    }
}

/// JSON text as clients send it: odd whitespace, unicode (escaped or not), big and odd
/// numbers, nesting, and the messageId field written in various ways.
fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let ws = proptest::sample::select(vec!["", " ", "\n", "\t", "  \r\n "]);
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-0.0".to_string()),
        Just("123456789012345678901234567890".to_string()),
        Just("1e400".to_string()),
        Just("-1.5E-7".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        ".*".prop_map(|s: String| serde_json::to_string(&s).unwrap()),
        "[a-z\u{e9}\u{1F600}]{0,8}".prop_map(|s| format!("\"{s}\\u00e9\\ud83d\\ude00\\n\"")),
    ];
    leaf.prop_recursive(3, 24, 5, move |inner| {
        let ws = ws.clone();
        prop_oneof![
            (proptest::collection::vec((inner.clone(), ws.clone()), 0..5)).prop_map(|items| {
                let parts: Vec<String> = items
                    .into_iter()
                    .map(|(v, w)| format!("{w}{v}{w}"))
                    .collect();
                format!("[{}]", parts.join(","))
            }),
            (proptest::collection::vec(("[a-zA-Z\u{fc}]{0,6}", inner, ws), 0..5)).prop_map(
                |fields| {
                    let parts: Vec<String> = fields
                        .into_iter()
                        .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}"))
                        .collect();
                    format!("{{{}}}", parts.join(","))
                }
            ),
        ]
    })
}

/// Any body round-trips byte for byte through append and read, on both backends, whether
/// it holds its messageId as the collector writes it, escaped, as a number, twice, or not.
#[test]
fn any_body_round_trips_byte_for_byte() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backends = runtime.block_on(backends("roundtrip"));
    let stores: Vec<(&'static str, Arc<dyn Store>)> = backends.stores.clone();
    let source = std::sync::atomic::AtomicI64::new(1);
    let strategy = (
        "[a-zA-Z0-9\u{e9}\u{1F600}\"\\\\/ -]{0,24}",
        json_text(),
        json_text(),
        0..5usize,
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |(id, before, after, form)| {
            let quoted = serde_json::to_string(&id).unwrap();
            let field = match form {
                0 => format!("\"messageId\":{quoted}"),
                1 => format!("\"messageId\" :\n{}", quoted.replace('\u{e9}', "\\u00e9")),
                2 => "\"messageId\":42".to_string(),
                3 => format!("\"messageId\":{quoted},\"copy\":{quoted}"),
                _ => "\"other\":1".to_string(),
            };
            let body = format!("{{\"a\":{before},{field},\"b\":{after}}}");
            let source_id = source.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sent = NewEvent {
                source_id,
                message_id: id.clone(),
                event_type: EventType::ALL[form % EventType::ALL.len()],
                received_at: 7,
                body: body.clone(),
            };
            for (name, store) in &stores {
                let outcome = runtime
                    .block_on(store.append(vec![sent.clone()], 0))
                    .unwrap();
                let [Appended::Stored(seq)] = outcome[..] else {
                    panic!("{name}: not stored: {outcome:?}");
                };
                let read = runtime
                    .block_on(store.read_events(seq - 1, 1, None))
                    .unwrap();
                prop_assert_eq!(&read[0].body, &body, "{}", name);
                prop_assert_eq!(&read[0].message_id, &id, "{}", name);
                prop_assert_eq!(read[0].event_type, sent.event_type, "{}", name);
                prop_assert_eq!(read[0].source_id, source_id, "{}", name);
            }
            Ok(())
        })
        .unwrap();
    drop(stores);
    drop(backends);
}

// ---- Tracking plans (`TrackingPlans`) ----

use sightline_store::ViolationDelta;

#[tokio::test]
async fn tracking_plans_are_versioned_and_assigned_to_sources() {
    for (name, store) in backends("plans").await {
        let web = store.create_source("web", "hash-web").await.unwrap();
        let app = store.create_source("app", "hash-app").await.unwrap();
        let start = store.plans_revision().await.unwrap();
        assert!(store.list_plans().await.unwrap().is_empty(), "{name}");

        let first = store.put_plan("shop", r#"{"track":{}}"#).await.unwrap();
        assert_eq!(first.version, 1, "{name}");
        let second = store
            .put_plan("shop", r#"{"track":{"A":{}}}"#)
            .await
            .unwrap();
        assert_eq!((second.id, second.version), (first.id, 2), "{name}");
        assert!(store.plans_revision().await.unwrap() > start, "{name}");

        let newest = store.plan("shop", None).await.unwrap().unwrap();
        assert_eq!(newest.document, r#"{"track":{"A":{}}}"#, "{name}");
        let old = store.plan("shop", Some(1)).await.unwrap().unwrap();
        assert_eq!(old.document, r#"{"track":{}}"#, "{name}");
        assert!(
            store.plan("shop", Some(3)).await.unwrap().is_none(),
            "{name}"
        );
        assert!(store.plan("other", None).await.unwrap().is_none(), "{name}");
        assert_eq!(store.list_plans().await.unwrap(), [newest], "{name}");

        // Two sources share the plan; each has its own fixes.
        let before = store.plans_revision().await.unwrap();
        store
            .assign_plan(web.id, Some(first.id), r#"{"coerce_numbers":true}"#)
            .await
            .unwrap();
        store
            .assign_plan(app.id, Some(first.id), "{}")
            .await
            .unwrap();
        assert!(store.plans_revision().await.unwrap() > before, "{name}");
        let assigned = store.plan_assignments().await.unwrap();
        let summary: Vec<(&str, i64, &str)> = assigned
            .iter()
            .map(|a| (a.source.as_str(), a.plan.version, a.fixes.as_str()))
            .collect();
        assert_eq!(
            summary,
            [("app", 2, "{}"), ("web", 2, r#"{"coerce_numbers":true}"#)],
            "{name}: an assignment follows the plan's newest version"
        );

        let err = store
            .assign_plan(web.id, Some(first.id + 100), "{}")
            .await
            .unwrap_err();
        assert!(
            matches!(err, sightline_store::StoreError::NotFound(_)),
            "{name}: {err}"
        );
        store.assign_plan(app.id, None, "{}").await.unwrap();
        let assigned = store.plan_assignments().await.unwrap();
        assert_eq!(assigned.len(), 1, "{name}");
        assert_eq!(assigned[0].source, "web", "{name}");
    }
}

fn delta(source_id: i64, event: &str, day: &str, count: i64, samples: &[&str]) -> ViolationDelta {
    ViolationDelta {
        source_id,
        event: event.into(),
        kind: "invalid_value".into(),
        day: day.into(),
        count,
        samples: samples.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn violations_add_up_per_day_and_keep_the_newest_samples() {
    for (name, store) in backends("violations").await {
        let source = store.create_source("web", "hash-web").await.unwrap();
        let first = [
            delta(
                source.id,
                "Order Completed",
                "2026-12-01",
                3,
                &["{\"n\":1}", "{\"n\":2}"],
            ),
            delta(
                source.id,
                "Order Completed",
                "2026-12-02",
                1,
                &["{\"n\":3}"],
            ),
            delta(
                source.id + 1,
                "Order Completed",
                "2026-12-02",
                9,
                &["{\"other\":1}"],
            ),
        ];
        store.record_violations(&first, 3).await.unwrap();
        store
            .record_violations(
                &[delta(
                    source.id,
                    "Order Completed",
                    "2026-12-02",
                    4,
                    &["{\"n\":4}", "{\"n\":5}"],
                )],
                3,
            )
            .await
            .unwrap();
        store.record_violations(&[], 3).await.unwrap();

        let found = store.violations(source.id, "2026-12-01").await.unwrap();
        let counts: Vec<(&str, i64)> = found
            .counts
            .iter()
            .map(|c| (c.day.as_str(), c.count))
            .collect();
        assert_eq!(counts, [("2026-12-02", 5), ("2026-12-01", 3)], "{name}");
        let samples: Vec<&str> = found.samples.iter().map(|s| s.sample.as_str()).collect();
        assert_eq!(
            samples,
            ["{\"n\":5}", "{\"n\":4}", "{\"n\":3}"],
            "{name}: newest first, 3 kept"
        );

        let recent = store.violations(source.id, "2026-12-02").await.unwrap();
        assert_eq!(recent.counts.len(), 1, "{name}");
        let none = store.violations(source.id + 2, "2026-01-01").await.unwrap();
        assert!(none.counts.is_empty() && none.samples.is_empty(), "{name}");
    }
}

fn audit_entry(n: usize) -> sightline_store::NewAuditEntry {
    sightline_store::NewAuditEntry {
        actor: format!("token:{n}"),
        role: "admin".into(),
        at: 1_700_000_000_000 + n as i64,
        action: "source.create".into(),
        target: format!("s{n}"),
        before: "null".into(),
        after: format!(r#"{{"name":"s{n}"}}"#),
    }
}

#[tokio::test]
async fn concurrent_audit_appends_keep_one_linear_chain() {
    for (name, store) in backends("audit").await {
        assert!(
            store.audit_entries(0, 10).await.unwrap().is_empty(),
            "{name}"
        );
        let appends = (0..24).map(|n| {
            let store = store.clone();
            // Reads and changes in the same groups: one chain, whatever each waits for.
            let durability = if n % 3 == 0 {
                Durability::Synced
            } else {
                Durability::Committed
            };
            tokio::spawn(async move {
                store
                    .append_audit(audit_entry(n), durability)
                    .await
                    .unwrap()
            })
        });
        let mut ids = Vec::new();
        for append in appends {
            ids.push(append.await.unwrap().id);
        }
        ids.sort();
        assert_eq!(ids, (1..=24).collect::<Vec<i64>>(), "{name}");
        let all = store.audit_entries(0, 100).await.unwrap();
        assert_eq!(all.len(), 24, "{name}");
        assert_eq!(sightline_store::verify_audit_chain(&all), Ok(24), "{name}");
        let page = store.audit_entries(10, 5).await.unwrap();
        assert_eq!(
            page.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![11, 12, 13, 14, 15],
            "{name}"
        );
        assert_eq!(page[0].prev_hash, all[9].hash, "{name}");
    }
}

/// A SQLite store from before the audit log had a file of its own: its entries move to
/// `audit.db` at the next start, and the chain goes on from them.
#[tokio::test]
async fn a_store_from_before_audit_db_moves_its_audit_log_and_extends_the_chain() {
    use sightline_store::AuditLog;
    let temp = temp_dir("migrate27");
    SqliteStore::create_at_version(temp.path(), 26).unwrap();
    let first = sightline_store::seal(None, audit_entry(1));
    let second = sightline_store::seal(Some((first.id, &first.hash)), audit_entry(2));
    {
        let conn = rusqlite::Connection::open(temp.path().join("sightline.db")).unwrap();
        for e in [&first, &second] {
            conn.execute(
                "INSERT INTO audit_log (id, actor, role, at, action, target, before, after, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![e.id, e.actor, e.role, e.at, e.action, e.target, e.before, e.after, e.prev_hash, e.hash],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(temp.path()).await.unwrap();
    assert_eq!(
        store.audit_entries(0, 10).await.unwrap(),
        vec![first, second.clone()]
    );
    let third = store
        .append_audit(audit_entry(3), Durability::Synced)
        .await
        .unwrap();
    assert_eq!(
        (third.id, third.prev_hash.as_str()),
        (3, second.hash.as_str())
    );
    let all = store.audit_entries(0, 10).await.unwrap();
    assert_eq!(sightline_store::verify_audit_chain(&all), Ok(3));
    drop(store);
    let state = rusqlite::Connection::open(temp.path().join("sightline.db")).unwrap();
    let left: i64 = state
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'audit_log'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the table left sightline.db");
}

/// Destinations' governance: a destination created unapproved, its record versioned, a
/// configuration put in force only together with the record and a change-log entry, the
/// log append-only even to SQL written by hand.
#[tokio::test]
async fn destination_flows_change_with_their_append_only_log() {
    use sightline_store::{DestinationConfig, Flows};
    for (name, store) in backends("flows").await {
        let created = store
            .create_governed_destination(
                hook("crm"),
                false,
                "{\"v\":1}".into(),
                log_entry("propose"),
            )
            .await
            .unwrap();
        assert!(!created.approved, "{name}");
        let read = store.destination_by_name("crm").await.unwrap().unwrap();
        assert!(!read.approved, "{name}");
        assert!(store
            .create_governed_destination(hook("crm"), true, "{}".into(), log_entry("propose"))
            .await
            .is_err());
        let row = store.flow(created.id).await.unwrap().unwrap();
        assert_eq!((row.version, row.doc.as_str()), (1, "{\"v\":1}"), "{name}");
        let config = DestinationConfig {
            kind: DestinationKind::Webhook,
            url: "http://127.0.0.1:9/new".into(),
            purposes: vec!["analytics".into()],
            event_types: vec!["track".into()],
            event_names: vec![],
            batch_size: 7,
            transform: serde_json::json!({}),
            settings: serde_json::json!({}),
        };
        // A stale version writes nothing, not even the log entry or the configuration.
        assert!(store
            .write_flow(
                created.id,
                Some(9),
                "{}".into(),
                log_entry("approve"),
                Some(config.clone())
            )
            .await
            .is_err());
        assert!(store
            .write_flow(created.id, None, "{}".into(), log_entry("approve"), None)
            .await
            .is_err());
        assert!(
            !store
                .destination_by_name("crm")
                .await
                .unwrap()
                .unwrap()
                .approved
        );
        store
            .write_flow(
                created.id,
                Some(1),
                "{\"v\":2}".into(),
                log_entry("approve"),
                Some(config),
            )
            .await
            .unwrap();
        let approved = store.destination_by_name("crm").await.unwrap().unwrap();
        assert!(approved.approved, "{name}");
        assert_eq!(approved.url, "http://127.0.0.1:9/new", "{name}");
        assert_eq!(
            (approved.batch_size, approved.purposes.len()),
            (7, 1),
            "{name}"
        );
        assert_eq!(approved.signing_secret, created.signing_secret, "{name}");
        assert_eq!(store.flows().await.unwrap().len(), 1, "{name}");
        let log = store.flow_log(Some(created.id), 0, 10).await.unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["propose", "approve"], "{name}");
        // A destination from before approval existed is approved and has no record.
        let old = store.create_destination(hook("old")).await.unwrap();
        assert!(old.approved, "{name}");
        assert!(store.flow(old.id).await.unwrap().is_none(), "{name}");
        // Deleting removes the record, never the log.
        store.delete_destination(created.id).await.unwrap();
        assert!(store.flow(created.id).await.unwrap().is_none(), "{name}");
        assert_eq!(
            store.flow_log(None, 0, 10).await.unwrap().len(),
            2,
            "{name}"
        );
    }
    let temp = temp_dir("flow-triggers");
    let store = SqliteStore::open(temp.path()).await.unwrap();
    store
        .create_governed_destination(hook("crm"), false, "{}".into(), log_entry("propose"))
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(temp.path().join("sightline.db")).unwrap();
    for sql in [
        "UPDATE destination_changes SET actor = 'someone else'",
        "DELETE FROM destination_changes",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("refused"), "sqlite {sql}: {err}");
    }
    #[cfg(feature = "postgres")]
    if let Some(url) = postgres_url("flow_triggers").await {
        let store = PostgresStore::connect(&url).await.unwrap();
        store
            .create_governed_destination(hook("crm"), false, "{}".into(), log_entry("propose"))
            .await
            .unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for sql in [
            "UPDATE destination_changes SET actor = 'someone else'",
            "DELETE FROM destination_changes",
            "TRUNCATE destination_changes",
        ] {
            let err = client.batch_execute(sql).await.unwrap_err();
            assert!(
                format!("{err:?}").contains("refused"),
                "postgres {sql}: {err:?}"
            );
        }
    }
}

/// Every file of a SQLite store (databases and their write-ahead logs), read raw.
fn raw_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    [
        "sightline.db",
        "sightline.db-wal",
        "log.db",
        "log.db-wal",
        "audit.db",
        "audit.db-wal",
    ]
    .iter()
    .filter_map(|file| Some((file.to_string(), std::fs::read(dir.join(file)).ok()?)))
    .collect()
}

fn holds_bytes(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn erasure_removes_one_person_and_leaves_the_others() {
    use sightline_core::ReviewStatus;
    use sightline_store::ErasureTarget;
    let backends = backends("erasure").await;
    let dir = backends.dir.path().to_owned();
    for (name, store) in backends {
        // Ann: three events, a profile merged from a retired one; Bob: two events.
        let stored = seqs(
            &store
                .append((1..=5).map(|i| event(1, &format!("e{i}"), i)).collect(), 0)
                .await
                .unwrap(),
        );
        let (ann, retired, bob) = (stored[0], stored[1], stored[3]);
        let ann_doc = r#"{"email":"ann-erased@x.com","traits":{"plan":"ANN-TRAIT-VALUE"}}"#;
        let bob_doc = r#"{"email":"bob-kept@x.com","traits":{"plan":"BOB-TRAIT-VALUE"}}"#;
        let change = |profile: i64, who: &str| {
            format!(r#"{{"profile":"{profile}","who":"{who}","kind":"entered"}}"#)
        };
        let first = ProfileSave {
            replace: false,
            base_seq: 0,
            profile_erasures: 0,
            state: state(stored[2]),
            rows: ProfileRows {
                retired: vec![],
                profiles: vec![
                    (ann, ann_doc.into()),
                    (retired, r#"{"email":"ann-old@x.com"}"#.into()),
                    (bob, bob_doc.into()),
                ],
                identifiers: vec![
                    holds("email", "ann-erased@x.com", ann),
                    holds("anonymous_id", "ann-device-1", ann),
                    holds("anonymous_id", "ann-device-2", retired),
                    holds("email", "bob-kept@x.com", bob),
                ],
                events: vec![(ann, stored[0]), (retired, stored[1]), (bob, stored[3])],
                denied_counts: vec![denied("2026-05-04", 1)],
                audience_changes: vec![
                    ("buyers".into(), change(ann, "ann-erased@x.com")),
                    ("buyers".into(), change(retired, "ann-old")),
                    ("buyers".into(), change(bob, "bob-kept@x.com")),
                ],
                states: vec![
                    (ann, r#"{"s":"ANN-TRAIT-VALUE"}"#.into()),
                    (bob, r#"{"s":"bob"}"#.into()),
                ],
                members: vec![("buyers".into(), ann, true), ("buyers".into(), bob, true)],
                timers: vec![
                    ("buyers".into(), ann, Some(50)),
                    ("buyers".into(), bob, Some(40)),
                ],
                consent: vec![
                    (ann, stored[0], r#"{"c":"ann"}"#.into()),
                    (bob, stored[3], r#"{"c":"bob"}"#.into()),
                ],
            },
        };
        store.save_profiles(first).await.unwrap();
        let merge = ProfileSave {
            replace: false,
            base_seq: stored[2],
            profile_erasures: 0,
            state: state(stored[4]),
            rows: ProfileRows {
                retired: vec![(retired, ann)],
                profiles: vec![(ann, ann_doc.into())],
                identifiers: vec![holds("anonymous_id", "ann-device-2", ann)],
                events: vec![(ann, stored[1]), (ann, stored[2]), (bob, stored[4])],
                ..ProfileRows::default()
            },
        };
        store.save_profiles(merge).await.unwrap();
        let hook = store.create_destination(hook("crm")).await.unwrap();
        store
            .record_deliveries(
                stored
                    .iter()
                    .map(|&seq| delivery(hook.id, seq, DeliveryStatus::Delivered))
                    .collect(),
                Some((format!("delivery:{}", hook.id), stored[4])),
            )
            .await
            .unwrap();
        store
            .add_link_reviews(vec![
                review("email:ann-erased@x.com", "crm:1", 0.8),
                review("email:bob-kept@x.com", "crm:2", 0.8),
            ])
            .await
            .unwrap();
        store.set_checkpoint("profiles", stored[4]).await.unwrap();

        let target = ErasureTarget {
            profiles: vec![ann, retired],
            identifiers: vec![
                ("email".into(), "ann-erased@x.com".into()),
                ("anonymous_id".into(), "ann-device-1".into()),
                ("anonymous_id".into(), "ann-device-2".into()),
            ],
            // Not the third event, which a merge moved onto Ann's timeline: the erasure
            // finds it there (a save may land between the reading of a target and its
            // erasure).
            seqs: stored[..2].to_vec(),
            ..ErasureTarget::default()
        };
        assert_eq!(store.profile_erasures().await.unwrap(), 0, "{name}");
        let erased = store.erase(target.clone()).await.unwrap();
        assert_eq!(erased.profile_erasures, 1, "{name}");
        assert_eq!(store.profile_erasures().await.unwrap(), 1, "{name}");
        let counts = erased.counts;
        let count = |table: &str| counts.get(table).copied().unwrap_or(0);
        assert_eq!(count("events"), 3, "{name}: {counts:?}");
        assert_eq!(count("profiles"), 1, "{name}: {counts:?}");
        assert_eq!(count("profile_identifiers"), 3, "{name}: {counts:?}");
        assert_eq!(count("profile_events"), 3, "{name}: {counts:?}");
        assert_eq!(count("profile_merges"), 1, "{name}: {counts:?}");
        assert_eq!(count("audience_members"), 1, "{name}: {counts:?}");
        assert_eq!(count("profile_timers"), 1, "{name}: {counts:?}");
        assert_eq!(count("audience_changes"), 2, "{name}: {counts:?}");
        assert_eq!(count("consent_changes"), 1, "{name}: {counts:?}");
        assert_eq!(count("deliveries"), 3, "{name}: {counts:?}");
        assert_eq!(count("link_reviews"), 1, "{name}: {counts:?}");

        // Ann is gone from every read.
        let left: Vec<i64> = store
            .read_events(0, 100, None)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(left, stored[3..], "{name}");
        for (id_type, value) in &target.identifiers {
            assert!(
                store
                    .stored_profile(id_type, value)
                    .await
                    .unwrap()
                    .is_none(),
                "{name}: {value}"
            );
        }
        assert!(store.stored_profile_by_id(ann).await.unwrap().is_none());
        assert!(store.stored_profile_by_id(retired).await.unwrap().is_none());
        let members = store.audience_members("buyers", 0, 10).await.unwrap();
        assert_eq!(
            members.iter().map(|p| p.id).collect::<Vec<_>>(),
            [bob],
            "{name}"
        );
        assert_eq!(
            store.due_timers(1_000, 10).await.unwrap(),
            [("buyers".to_string(), bob, 40)],
            "{name}"
        );
        let history = store.audience_history("buyers", 0, 10).await.unwrap();
        assert_eq!(history.len(), 1, "{name}: {history:?}");
        assert!(history[0].1.contains("bob-kept"), "{name}");
        let delivered = store.deliveries(hook.id, None, 0, 10).await.unwrap();
        assert_eq!(
            delivered.iter().map(|d| d.seq).collect::<Vec<_>>(),
            stored[3..],
            "{name}"
        );
        let reviews = store.link_reviews(None, 0, 10).await.unwrap();
        assert_eq!(reviews.len(), 1, "{name}");
        assert_eq!(reviews[0].left, "email:bob-kept@x.com", "{name}");
        assert_eq!(reviews[0].status, ReviewStatus::Pending, "{name}");

        // Bob is as he was, and the positions stand.
        let kept = store
            .stored_profile("email", "bob-kept@x.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((kept.id, kept.doc.as_str()), (bob, bob_doc), "{name}");
        assert_eq!(kept.consent, [r#"{"c":"bob"}"#], "{name}");
        assert_eq!(
            event_seqs(store.as_ref(), bob).await,
            [stored[4], stored[3]]
        );
        assert_eq!(store.checkpoint("profiles").await.unwrap(), stored[4]);
        assert_eq!(
            store.profiles_state().await.unwrap(),
            Some(state(stored[4])),
            "{name}"
        );
        // A save of profiles read before the erasure could write Ann back: refused, a
        // rebuild's too; read after it, it goes on.
        let after = |replace: bool, profile_erasures: i64| ProfileSave {
            replace,
            base_seq: stored[4],
            profile_erasures,
            state: state(stored[4]),
            rows: ProfileRows {
                profiles: vec![(ann, ann_doc.into())],
                ..ProfileRows::default()
            },
        };
        for replace in [false, true] {
            let refused = store.save_profiles(after(replace, 0)).await;
            assert!(
                matches!(refused, Err(sightline_store::StoreError::Conflict(_))),
                "{name}: {refused:?}"
            );
        }
        assert!(store.stored_profile_by_id(ann).await.unwrap().is_none());
        let mut bob_again = after(false, 1);
        bob_again.rows.profiles = vec![(bob, bob_doc.into())];
        store.save_profiles(bob_again).await.unwrap();
        // Seqs are not reused, and an event with an erased messageId is new again.
        let again = seqs(&store.append(vec![event(1, "e1", 10)], 0).await.unwrap());
        assert_eq!(again.len(), 1, "{name}");
        assert!(again[0] > stored[4], "{name}: {again:?}");

        // Erasing the log's last event leaves its end where it was.
        let last = seqs(&store.append(vec![event(1, "e-last", 11)], 0).await.unwrap())[0];
        let only_last = ErasureTarget {
            seqs: vec![last],
            ..ErasureTarget::default()
        };
        let erased = store.erase(only_last).await.unwrap();
        assert_eq!(erased.counts["events"], 1, "{name}");
        // No profile went: the profiles' saves go on.
        assert_eq!(erased.profile_erasures, 1, "{name}");
        assert_eq!(store.last_seq().await.unwrap(), last, "{name}");

        // A second erasure finds nothing left.
        let twice = store.erase(target).await.unwrap();
        assert!(twice.counts.values().all(|&n| n == 0), "{name}: {twice:?}");

        if name == "sqlite" {
            for (file, bytes) in raw_files(&dir) {
                for needle in [
                    "ann-erased@x.com",
                    "ANN-TRAIT-VALUE",
                    "ann-device-1",
                    "ann-old@x.com",
                ] {
                    assert!(!holds_bytes(&bytes, needle), "{file} still holds {needle}");
                }
                if file == "sightline.db" {
                    assert!(holds_bytes(&bytes, "bob-kept@x.com"), "{file} lost bob");
                }
            }
        }

        // What each server's collector has of the suppression list in force, by the
        // store's clock.
        store.suppression_in_force("node-a", 2).await.unwrap();
        store.suppression_in_force("node-a", 3).await.unwrap();
        let (now, nodes) = store.suppression_nodes().await.unwrap();
        assert_eq!(nodes.len(), 1, "{name}: {nodes:?}");
        let (node, entries, seen_at) = &nodes[0];
        assert_eq!((node.as_str(), *entries), ("node-a", 3), "{name}");
        assert!(
            *seen_at <= now && *seen_at > now - 60_000,
            "{name}: {nodes:?}"
        );
        store.forget_suppression_node("node-a").await.unwrap();
        assert_eq!(store.suppression_nodes().await.unwrap().1, [], "{name}");

        // What erasure keeps: a stable secret, receipts, the suppression list.
        let secret = store.privacy_secret().await.unwrap();
        assert!(secret.len() >= 32, "{name}");
        assert_eq!(store.privacy_secret().await.unwrap(), secret, "{name}");
        store.save_erasure("er_1", 5, r#"{"n":1}"#).await.unwrap();
        assert_eq!(
            store.erasure("er_1").await.unwrap().as_deref(),
            Some(r#"{"n":1}"#)
        );
        assert_eq!(store.erasure("er_2").await.unwrap(), None, "{name}");
        store.save_erasure("er_0", 7, r#"{"n":0}"#).await.unwrap();
        assert_eq!(
            store.erasures(10).await.unwrap(),
            [r#"{"n":0}"#, r#"{"n":1}"#],
            "{name}: newest first"
        );
        assert_eq!(store.erasures(1).await.unwrap().len(), 1, "{name}");
        store
            .suppress(vec![
                ("h1".into(), "drop".into()),
                ("h2".into(), "strip".into()),
            ])
            .await
            .unwrap();
        store
            .suppress(vec![("h1".into(), "strip".into())])
            .await
            .unwrap();
        assert_eq!(
            store.suppressed().await.unwrap(),
            [
                ("h1".to_string(), "strip".to_string()),
                ("h2".to_string(), "strip".to_string())
            ],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_or_is_given_up() {
    use sightline_store::NodeRow;
    for (name, store) in backends("leases").await {
        let node = |id: &str| NodeRow {
            id: id.into(),
            address: format!("{id}:8088"),
            version: "1".into(),
            started_at: 5,
            seen_at: 0,
        };
        store.heartbeat(&node("a")).await.unwrap();
        store.heartbeat(&node("b")).await.unwrap();
        let minute = 60_000;
        assert!(
            store
                .hold_lease("profiles", "a", minute, Some(3))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !store
                .hold_lease("profiles", "b", minute, None)
                .await
                .unwrap(),
            "{name}: held by a"
        );
        assert!(
            store
                .hold_lease("profiles", "a", minute, Some(9))
                .await
                .unwrap(),
            "{name}: renewed"
        );
        // An expired lease goes to whoever asks next.
        assert!(
            store.hold_lease("metrics", "a", -1, None).await.unwrap(),
            "{name}"
        );
        assert!(
            store
                .hold_lease("metrics", "b", minute, None)
                .await
                .unwrap(),
            "{name}: expired"
        );
        assert!(
            !store
                .hold_lease("metrics", "a", minute, None)
                .await
                .unwrap(),
            "{name}"
        );

        let rows = store.cluster().await.unwrap();
        let ids: Vec<_> = rows.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"], "{name}");
        assert!(
            rows.nodes
                .iter()
                .all(|n| n.seen_at > 0 && n.address.ends_with(":8088")),
            "{name}"
        );
        let held: Vec<_> = rows
            .leases
            .iter()
            .map(|l| (l.processor.as_str(), l.node.as_str(), l.applied))
            .collect();
        assert_eq!(
            held,
            [("metrics", "b", None), ("profiles", "a", Some(9))],
            "{name}"
        );

        // Given up, a lease is free at once; a node that leaves is no longer listed.
        store
            .release_leases("a", Some(&["profiles".to_owned()]))
            .await
            .unwrap();
        assert!(
            store
                .hold_lease("profiles", "b", minute, None)
                .await
                .unwrap(),
            "{name}"
        );
        store.release_leases("b", None).await.unwrap();
        assert!(store.cluster().await.unwrap().leases.is_empty(), "{name}");
        store.leave("a", minute).await.unwrap();
        let ids: Vec<_> = store
            .cluster()
            .await
            .unwrap()
            .nodes
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, ["b"], "{name}");
    }
}

/// A store a newer Sightline migrated is refused with what to do, never opened.
#[tokio::test]
async fn a_store_of_a_newer_schema_is_refused() {
    let temp = temp_dir("newer");
    drop(SqliteStore::open(temp.path()).await.unwrap());
    rusqlite::Connection::open(temp.path().join("sightline.db"))
        .unwrap()
        .execute_batch("PRAGMA user_version = 9999")
        .unwrap();
    let refused = SqliteStore::open(temp.path())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("version 9999, newer than this Sightline"),
        "{refused}"
    );
    #[cfg(feature = "postgres")]
    if let Some(url) = postgres_url("newer").await {
        drop(PostgresStore::connect(&url).await.unwrap());
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)",
                &[],
            )
            .await
            .unwrap();
        let refused = PostgresStore::connect(&url)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("version 9999, newer than this Sightline"),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn kept_deletion_requests_come_due_and_keep_their_last_state() {
    use sightline_store::DeletionRequest;
    for (name, store) in backends("deletion").await {
        let request = |destination: &str, next_at: i64| DeletionRequest {
            erasure_id: "er_1".into(),
            destination: destination.into(),
            body: r#"{"identifiers":["email:ann@example.com"]}"#.into(),
            attempts: 5,
            next_at,
            status: "queued".into(),
            outcome: r#"{"code":503}"#.into(),
        };
        store
            .save_deletion_request(&request("crm", 100))
            .await
            .unwrap();
        store
            .save_deletion_request(&request("ads", 50))
            .await
            .unwrap();
        store
            .save_deletion_request(&request("late", 500))
            .await
            .unwrap();
        let due: Vec<String> = store
            .due_deletion_requests(200, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.destination)
            .collect();
        assert_eq!(due, ["ads", "crm"], "{name}: the longest due first");
        // Answered: no longer due, and its body (the identifiers) gone.
        let mut answered = request("ads", 50);
        answered.status = "accepted".into();
        answered.attempts = 6;
        answered.body = String::new();
        store.save_deletion_request(&answered).await.unwrap();
        assert_eq!(
            store.due_deletion_requests(200, 10).await.unwrap().len(),
            1,
            "{name}"
        );
        let kept = store.deletion_requests("er_1").await.unwrap();
        assert_eq!(kept.len(), 3, "{name}");
        assert_eq!(kept[0], answered, "{name}");
        assert!(
            store.deletion_requests("er_2").await.unwrap().is_empty(),
            "{name}"
        );
    }
}

/// A node that died between JetStream's acknowledgement and marking its claims leaves them
/// in doubt. A retry after JetStream's window settles them from the stream: a claim whose
/// event the stream holds is a duplicate however late the retry; one whose event it lacks
/// is claimed again and stored.
#[cfg(feature = "jetstream")]
#[tokio::test]
async fn claims_left_in_doubt_are_settled_from_the_stream() {
    let Some(url) = postgres_url("settle_claims").await else {
        return;
    };
    let mut log = sightline_store::LogSettings::new(nats_url());
    log.stream = format!("SUITE_settle_claims_{}", std::process::id());
    // Short, so that the test can outlast it.
    log.duplicate_window = std::time::Duration::from_secs(1);
    delete_streams(std::slice::from_ref(&log.stream)).await;
    let _streams = Streams(vec![log.stream.clone()]);
    let store = PostgresStore::connect_with_log(&url, &log).await.unwrap();
    let now = sightline_core::time::now_ms();
    let both = |at: i64| vec![event(1, "landed", at), event(1, "lost", at)];
    let stored = seqs(&store.append(both(now), 0).await.unwrap());
    assert_eq!(stored.len(), 2);

    // As the node would have left them: both claims unpublished; the second event never
    // stored.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute("UPDATE dedup SET published = false", &[])
        .await
        .unwrap();
    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let stream = jetstream.get_stream(&log.stream).await.unwrap();
    assert!(stream.delete_message(stored[1] as u64).await.unwrap());

    // Retried after JetStream's window (a later receipt time, as a retry has).
    tokio::time::sleep(log.duplicate_window * 2).await;
    let again = store.append(both(now + 1), 0).await.unwrap();
    assert!(matches!(again[0], Appended::Duplicate), "{again:?}");
    assert!(matches!(again[1], Appended::Stored(_)), "{again:?}");
    let unpublished: i64 = client
        .query_one("SELECT count(*) FROM dedup WHERE NOT published", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unpublished, 0);
    // Concurrent appends of events received long ago are not in doubt: only the claim's
    // own time counts.
    let old = store.append(vec![event(1, "old", 1)], 0).await.unwrap();
    assert!(matches!(old[0], Appended::Stored(_)), "{old:?}");
}
