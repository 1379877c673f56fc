//! `sightline-bench log-size`: bytes on disk per acknowledged event, everything included.
//! Starts the real `sightline serve` on a fresh store (a new SQLite data directory, or with
//! `--postgres URL` a new database created beside the one the URL names), sends N realistic
//! Segment events (segment.rs: mixed track/page/identify, ~550 bytes, unique messageIds)
//! through `/v1/batch`, waits until the stored profiles stand at the log's last seq, stops
//! the server and measures the store: SQLite, the database file plus its WAL after a
//! truncating checkpoint (per table and index from `dbstat`); PostgreSQL,
//! `pg_total_relation_size` of every table (heap, indexes, TOAST). The baseline, measured in
//! the same run, is the mean size of the JSON sent per event.

use crate::segment::{self, Rng};
use crate::{round3, sibling, start, FreshDatabase};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map};
use std::process::Command;
use std::time::{Duration, Instant};

const BATCH: usize = 100;
const CLIENTS: usize = 4;

pub async fn run(postgres: Option<String>, events: usize, users: u64) -> Result<()> {
    let sightline = sibling("sightline")?;
    let data =
        std::env::temp_dir().join(format!("sightline-bench-log-size-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let database = match &postgres {
        Some(url) => Some(FreshDatabase::create(url, "log_size").await?),
        None => None,
    };
    let store_args: Vec<String> = match &database {
        Some(db) => vec!["--database-url".into(), db.url.clone()],
        None => vec!["--data".into(), data.display().to_string()],
    };
    let key = crate::cli_json(&sightline, &store_args, &["source", "add", "bench"])?["write_key"]
        .as_str()
        .context("write_key")?
        .to_string();

    // The events, made before the server starts; their JSON is the baseline.
    let mut rng = Rng::new(0x10_6517e);
    let bodies: Vec<String> = (0..events)
        .map(|i| segment::event(&mut rng, &segment::SHOP, i as u64, users).to_string())
        .collect();
    let json_bytes: usize = bodies.iter().map(String::len).sum();
    let batches: Vec<String> = bodies
        .chunks(BATCH)
        .map(|chunk| format!("{{\"batch\":[{}]}}", chunk.join(",")))
        .collect();
    drop(bodies);

    let mut serve = Command::new(&sightline);
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(&store_args);
    let mut server = start(serve)?;
    let http = reqwest::Client::new();
    let sent = Instant::now();
    for chunk in batches.chunks(CLIENTS) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|body| {
                let request = http
                    .post(format!("{}/v1/batch", server.url))
                    .basic_auth(&key, Some(""))
                    .header("content-type", "application/json")
                    .body(body.clone());
                tokio::spawn(request.send())
            })
            .collect();
        for send in sends {
            let response = send.await??;
            if !response.status().is_success() {
                bail!("/v1/batch answered {}", response.status());
            }
        }
    }
    let ingest_s = sent.elapsed().as_secs_f64();

    // Derived state counts too: wait until the stored profiles stand at the last seq.
    let caught_up = Instant::now();
    loop {
        let (last, profiles) = match &database {
            Some(db) => db.positions().await?,
            None => sqlite_positions(&data)?,
        };
        if last > 0 && profiles >= last {
            break;
        }
        if caught_up.elapsed() > Duration::from_secs(600) {
            bail!("the profiles did not catch up: log at {last}, profiles at {profiles}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let catch_up_s = caught_up.elapsed().as_secs_f64();
    // A clean stop (SIGTERM), so that nothing is mid-write when the files are measured.
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let _ = server.child.wait();
    drop(server);

    let (total, tables) = match &database {
        Some(db) => db.sizes().await?,
        None => sqlite_sizes(&data)?,
    };
    let stored = match &database {
        Some(db) => db.positions().await?.0,
        None => sqlite_positions(&data)?.0,
    };
    drop(database);
    let _ = std::fs::remove_dir_all(&data);
    if stored != events as i64 {
        bail!("the log holds {stored} events, {events} were sent");
    }

    let per_event = |bytes: u64| round3(bytes as f64 / events as f64);
    let event_bytes = json_bytes as f64 / events as f64;
    let group = |names: &[&str]| -> u64 {
        tables
            .iter()
            .filter(|(name, _)| names.contains(&name.as_str()))
            .map(|(_, bytes)| bytes)
            .sum()
    };
    let log = group(LOG_OBJECTS);
    let derived = group(DERIVED_OBJECTS);
    let mut breakdown = Map::new();
    for (name, bytes) in &tables {
        if *bytes >= 4096 * 4 {
            breakdown.insert(name.clone(), json!(per_event(*bytes)));
        }
    }
    println!(
        "{}",
        json!({
            "bench": "log-size",
            "backend": if postgres.is_some() { "postgres" } else { "sqlite" },
            "events": events,
            "users": users,
            "bytes_per_event": per_event(total),
            "baseline": "mean-event-json-bytes",
            "baseline_bytes_per_event": round3(event_bytes),
            "ratio": round3(total as f64 / events as f64 / event_bytes),
            "log_bytes_per_event": per_event(log),
            "log_ratio": round3(log as f64 / events as f64 / event_bytes),
            "derived_bytes_per_event": per_event(derived),
            "per_object_bytes_per_event": breakdown,
            "ingest_events_per_s": (events as f64 / ingest_s).round(),
            "profiles_caught_up_s": round3(catch_up_s),
        })
    );
    Ok(())
}

/// The log: events, dedup claims, their indexes (either backend's names, any version's).
const LOG_OBJECTS: &[&str] = &[
    "events",
    "events_by_source",
    "events_by_arrival",
    "events_pkey",
    "dedup",
    "dedup_by_age",
    "dedup_pkey",
    "sqlite_autoindex_dedup_1",
    "sqlite_sequence",
];
/// What the profiles processor derives per event.
const DERIVED_OBJECTS: &[&str] = &[
    "profiles",
    "profiles_pkey",
    "profile_identifiers",
    "profile_identifiers_pkey",
    "sqlite_autoindex_profile_identifiers_1",
    "profile_identifiers_by_profile",
    "profile_events",
    "profile_events_pkey",
    "sqlite_autoindex_profile_events_1",
    "profiles_state",
    "consent_denied_counts",
    "consent_denied_counts_pkey",
    "sqlite_autoindex_consent_denied_counts_1",
    "audience_changes",
];

/// (the log's last seq, the seq the stored profiles stand at).
fn sqlite_positions(dir: &std::path::Path) -> Result<(i64, i64)> {
    let open = |file: &str| -> Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            dir.join(file),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    };
    let last: i64 =
        open("log.db")?.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    let profiles: i64 = open("sightline.db")?
        .query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM profiles_state",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    Ok((last, profiles))
}

/// The store's database files (`sightline.db`, the log's `log.db`, the audit log's
/// `audit.db`) plus their WALs after a truncating checkpoint, and bytes per object.
fn sqlite_sizes(dir: &std::path::Path) -> Result<(u64, Vec<(String, u64)>)> {
    let (mut total, mut tables) = (0, Vec::new());
    for file in ["sightline.db", "log.db", "audit.db"] {
        let db = dir.join(file);
        let conn = rusqlite::Connection::open(&db)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let mut stmt = conn.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")?;
        let objects = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        for object in objects {
            tables.push(object?);
        }
        drop(stmt);
        drop(conn);
        let size = |path: std::path::PathBuf| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        total += size(db.clone()) + size(db.with_extension("db-wal"));
    }
    Ok((total, tables))
}

impl FreshDatabase {
    async fn client(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn positions(&self) -> Result<(i64, i64)> {
        let client = self.client().await?;
        let last: i64 = client
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM events", &[])
            .await?
            .get(0);
        let profiles: i64 = client
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM profiles_state", &[])
            .await?
            .get(0);
        Ok((last, profiles))
    }

    /// Every table's total size (heap, indexes, TOAST) and each relation's own size.
    async fn sizes(&self) -> Result<(u64, Vec<(String, u64)>)> {
        let client = self.client().await?;
        let total: i64 = client
            .query_one(
                "SELECT COALESCE(SUM(pg_total_relation_size(oid)), 0)::bigint FROM pg_class
                 WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
                &[],
            )
            .await?
            .get(0);
        // Each table with its TOAST, and each index, on its own.
        let rows = client
            .query(
                "SELECT relname::text,
                     (CASE WHEN relkind = 'r' THEN pg_table_size(oid) ELSE pg_relation_size(oid) END)::bigint
                 FROM pg_class WHERE relkind IN ('r', 'i') AND relnamespace = 'public'::regnamespace",
                &[],
            )
            .await?;
        let tables = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect();
        Ok((total as u64, tables))
    }
}
