//! PostgreSQL backend: a connection pool for reads and administration, [`WRITERS`] writer
//! connections with group commit for the log, which commit in parallel (as do several
//! servers on one database).
//!
//! The log's promise to readers: one that has seen `seq = n` never later sees a smaller seq
//! commit. Appends keep it without being serialised:
//!
//! 1. *Reservation* (a tiny transaction of its own, under the exclusive advisory lock
//!    [`APPEND_LOCK`]): a group takes its seqs from the `events` identity sequence and records
//!    the smallest in `log_appends` with its backend's pid and start time, then commits
//!    (without waiting for the WAL flush: the append's commit flushes it, see
//!    [`NO_FLUSH_WAIT`]).
//! 2. *Append* (no lock): the group's transaction deletes its reservation row and inserts the
//!    events at the reserved seqs (a reserved seq whose event turns out a duplicate is a
//!    gap, as is every seq of a group that fails); other groups append at the same time.
//! 3. *Reads* of the log by seq (`read_events`, `last_seq`) take the lock shared, so that every
//!    reservation whose seqs were taken before is committed and none is taken meanwhile, then
//!    fix the bound below the smallest reservation of a live backend (the `pg_stat_activity`
//!    check, [`LIVE`]) and read, in a later statement, only `seq` below it. A backend found
//!    gone has ended its transaction before the read's snapshot was taken: its events are all
//!    visible or will never be. Reservations of dead backends (a crash between reservation and
//!    commit) are thus skipped by readers, and deleted when a writer connects.
//! 4. An append is answered once no live reservation below its own remains (it waits on their
//!    transactions' row locks), so that a caller that reads after its append returns sees its
//!    events, as with a serialised log.

use crate::group::{self, AppendRequest};
use crate::log;
use crate::{
    columns, profiles_moved, Access, Appended, Checkpoints, ConsoleSession, Definitions,
    Destinations, EventLog, LinkReviews, ProfileStore, Result, StoreError, MAX_MERGE_CHAIN,
    WRITE_QUEUE_REQUESTS,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use sightline_core::{
    AudienceDefinition, Delivery, DeliveryStatus, DeniedCount, Destination, EventType,
    NewDestination, NewEvent, ProfileSave, ProfilesState, Role, Source, StoredEvent, StoredProfile,
    Token, TraitDefinition,
};
use sightline_core::{IdentifierRow, LinkReview, NewLinkReview, ProfileRows, ReviewStatus};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

mod audit;
mod cluster;
mod erase;
mod flows;
mod govern;
mod plans;

/// Arbitrary, fixed: the advisory lock key that orders reservations of seqs (exclusive, held
/// only while one is taken) against reads of the log (shared). See the module comment.
const APPEND_LOCK: i64 = 7_461_001;
const MIGRATION_LOCK: i64 = APPEND_LOCK + 1;
/// Serialises profile saves, so that a save's check of the stored state holds until commit.
pub(crate) const PROFILES_LOCK: i64 = APPEND_LOCK + 2;
/// How many erasures have removed stored profiles (see `Erasure::profile_erasures`).
pub(crate) const PROFILE_ERASURES: &str = "SELECT count FROM profile_erasures WHERE id = 1";
/// Rows per statement when a save writes many (a rebuild): one round trip each.
const SAVE_CHUNK: usize = 20_000;

const MIGRATIONS: &[&str] = &[
    // 1: the event log, dedup, sources, keys, tokens, processor checkpoints.
    "CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        source_id BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        type TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        body TEXT NOT NULL
     );
     CREATE INDEX events_by_source ON events (source_id, seq);
     CREATE TABLE dedup (
        source_id BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        seen_at BIGINT NOT NULL,
        PRIMARY KEY (source_id, message_id)
     );
     CREATE INDEX dedup_by_age ON dedup (seen_at);
     CREATE TABLE sources (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
     );
     CREATE TABLE source_keys (
        key_hash TEXT PRIMARY KEY,
        source_id BIGINT NOT NULL REFERENCES sources (id),
        created_at BIGINT NOT NULL,
        expires_at BIGINT
     );
     CREATE TABLE tokens (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        created_at BIGINT NOT NULL
     );
     CREATE TABLE checkpoints (
        processor TEXT PRIMARY KEY,
        seq BIGINT NOT NULL
     );",
    // 2: destinations and the delivery log (the latest outcome per destination and event).
    "CREATE TABLE destinations (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        purposes TEXT NOT NULL,
        event_types TEXT NOT NULL,
        event_names TEXT NOT NULL,
        batch_size INT NOT NULL,
        signing_secret TEXT NOT NULL,
        created_at BIGINT NOT NULL
     );
     CREATE TABLE deliveries (
        destination_id BIGINT NOT NULL REFERENCES destinations (id),
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INT NOT NULL,
        response_code INT,
        latency_ms BIGINT,
        reason TEXT,
        at BIGINT NOT NULL,
        PRIMARY KEY (destination_id, seq)
     );
     CREATE INDEX deliveries_by_status ON deliveries (destination_id, status, seq);",
    // 3: audience definitions.
    "CREATE TABLE audiences (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        rule TEXT NOT NULL,
        sync TEXT NOT NULL,
        created_at BIGINT NOT NULL
     );",
    // 4: unified profiles, derived from the log by the profiles processor.
    "CREATE TABLE profiles (
        id BIGINT PRIMARY KEY,
        doc TEXT NOT NULL
     );
     CREATE TABLE profile_identifiers (
        id_type TEXT NOT NULL,
        value TEXT NOT NULL,
        profile_id BIGINT NOT NULL,
        shared BOOLEAN NOT NULL,
        seen_with TEXT NOT NULL,
        PRIMARY KEY (id_type, value)
     );
     CREATE INDEX profile_identifiers_by_profile ON profile_identifiers (profile_id);
     CREATE TABLE profile_events (
        profile_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (profile_id, seq)
     );
     CREATE TABLE profiles_state (
        id INT PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL,
        rules TEXT NOT NULL
     );",
    // 5: what a destination does to events before sending them.
    "ALTER TABLE destinations ADD COLUMN transform TEXT NOT NULL DEFAULT '{}';",
    // 6: identifier-free counts of events without analytics consent.
    "CREATE TABLE consent_denied_counts (
        day TEXT NOT NULL,
        source_id BIGINT NOT NULL,
        event TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (day, source_id, event)
     );",
    // 7: computed trait definitions.
    "CREATE TABLE computed_traits (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        definition TEXT NOT NULL,
        created_at BIGINT NOT NULL
     );",
    // 8: the history of live audience enters and exits.
    "CREATE TABLE audience_changes (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        audience TEXT NOT NULL,
        change TEXT NOT NULL
     );
     CREATE INDEX audience_changes_by_audience ON audience_changes (audience, id);",
    // 9: the clerical review queue of record linkage.
    "CREATE TABLE link_reviews (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        pair_key TEXT NOT NULL UNIQUE,
        origin TEXT NOT NULL,
        left_id TEXT NOT NULL,
        right_id TEXT NOT NULL,
        match_probability DOUBLE PRECISION NOT NULL,
        evidence TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        created_at BIGINT NOT NULL,
        decided_at BIGINT,
        seq BIGINT
     );
     CREATE INDEX link_reviews_by_status ON link_reviews (status, id);",
    // 10: the governance registry (see govern.rs): stored scans, token names, journeys, tags, the tag
    // change log (append-only: triggers refuse UPDATE, DELETE and TRUNCATE), backlog,
    // vendor risk.
    "CREATE TABLE scans (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        journey TEXT NOT NULL,
        at BIGINT NOT NULL,
        summary TEXT NOT NULL,
        report TEXT NOT NULL
     );
     CREATE INDEX scans_by_journey ON scans (journey, id);
     CREATE TABLE token_names (
        token_id BIGINT PRIMARY KEY REFERENCES tokens (id),
        name TEXT NOT NULL
     );
     CREATE TABLE gov_journeys (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        doc TEXT NOT NULL,
        updated_at BIGINT NOT NULL
     );
     CREATE TABLE gov_tags (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        doc TEXT NOT NULL,
        updated_at BIGINT NOT NULL
     );
     CREATE TABLE gov_backlog (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        doc TEXT NOT NULL,
        updated_at BIGINT NOT NULL
     );
     CREATE TABLE gov_vendors (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        doc TEXT NOT NULL,
        updated_at BIGINT NOT NULL
     );
     CREATE TABLE gov_tag_changes (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tag_id BIGINT NOT NULL REFERENCES gov_tags (id),
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        entry TEXT NOT NULL
     );
     CREATE INDEX gov_tag_changes_by_tag ON gov_tag_changes (tag_id, id);
     CREATE FUNCTION gov_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% on % refused: the tag change log is append-only and tags are retired, never deleted', TG_OP, TG_TABLE_NAME;
        END $$;
     CREATE TRIGGER gov_tag_changes_append_only BEFORE UPDATE OR DELETE ON gov_tag_changes
        FOR EACH ROW EXECUTE FUNCTION gov_refuse_change();
     CREATE TRIGGER gov_tag_changes_no_truncate BEFORE TRUNCATE ON gov_tag_changes
        FOR EACH STATEMENT EXECUTE FUNCTION gov_refuse_change();
     CREATE TRIGGER gov_tags_no_delete BEFORE DELETE ON gov_tags
        FOR EACH ROW EXECUTE FUNCTION gov_refuse_change();",
    // Governance metrics: per scan (`scan:ID`) and the log's consent counts per day
    // (`consent:DAY`) with the log position they are counted through (`consent-cursor`).
    "CREATE TABLE gov_metrics (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        doc TEXT NOT NULL,
        updated_at BIGINT NOT NULL
     );",
    // 12: the compact log (see log.rs). New events keep `body` NULL and store `payload`
    // (a tagged zstd frame with the shipped dictionary, TOAST does not compress values this
    // small) and `id_at` (where the quoted messageId was cut out); rows from before keep
    // their TEXT body, read as is. Dedup: one 16-byte digest of (source, messageId) instead
    // of the text, the existing claims converted in place (SHA-256 over the source id's 8
    // big-endian bytes and the id's UTF-8, as log::dedup_key computes it).
    "ALTER TABLE events ALTER COLUMN body DROP NOT NULL,
        ADD COLUMN id_at INTEGER,
        ADD COLUMN payload BYTEA;
     CREATE TABLE dedup_v12 (
        key BYTEA PRIMARY KEY,
        seen_at BIGINT NOT NULL
     );
     INSERT INTO dedup_v12 (key, seen_at)
        SELECT substring(sha256(int8send(source_id) || convert_to(message_id, 'UTF8')) FROM 1 FOR 16),
            max(seen_at)
        FROM dedup GROUP BY 1;
     DROP TABLE dedup;
     ALTER TABLE dedup_v12 RENAME TO dedup;
     ALTER INDEX dedup_v12_pkey RENAME TO dedup_pkey;
     CREATE INDEX dedup_by_age ON dedup (seen_at);",
    // 13: a destination can be paused.
    "ALTER TABLE destinations ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT false;",
    // 14: appends in flight (see the module comment): the first seq each has reserved, and
    // the backend that will commit it (a pid alone can be reused; with its start time it
    // names one backend). Readers stay below the smallest of a live backend.
    "CREATE TABLE log_appends (
        first_seq BIGINT PRIMARY KEY,
        pid INT NOT NULL,
        backend_start TIMESTAMPTZ NOT NULL
     );",
    // 15: the rest of the profiles processor's state, so that a start resumes from the store
    // instead of replaying the log: audience membership and computed trait states per
    // profile, where retired profile ids went, and the definitions the states follow.
    "CREATE TABLE profile_states (
        profile_id BIGINT PRIMARY KEY,
        state TEXT NOT NULL
     );
     CREATE TABLE profile_merges (
        retired BIGINT PRIMARY KEY,
        survivor BIGINT NOT NULL
     );
     ALTER TABLE profiles_state ADD COLUMN definitions TEXT NOT NULL DEFAULT '';",
    // 16: profile documents and states are rewritten after every page that touches them.
    // Half-full pages let an update stay on its page (a HOT update, whose old version the
    // next access prunes without waiting for vacuum), and compressing rows from 128 bytes
    // on (TOAST's default is 2 kB) halves the JSON: together the profiles' bytes per event
    // stop growing with each rewrite.
    "ALTER TABLE profiles SET (fillfactor = 50, toast_tuple_target = 128);
     ALTER TABLE profile_states SET (fillfactor = 50, toast_tuple_target = 128);",
    // 17: audience members and membership timers as rows, read without the processor's
    // memory. Clearing the definitions' fingerprint makes the next start rebuild the
    // profiles once, which fills both.
    "CREATE TABLE audience_members (
        audience TEXT NOT NULL,
        profile_id BIGINT NOT NULL,
        PRIMARY KEY (audience, profile_id)
     );
     CREATE TABLE profile_timers (
        profile_id BIGINT NOT NULL,
        audience TEXT NOT NULL,
        due_at BIGINT NOT NULL,
        PRIMARY KEY (profile_id, audience)
     );
     CREATE INDEX profile_timers_by_due ON profile_timers (due_at);
     UPDATE profiles_state SET definitions = '';",
    // 18: consent ledger entries as rows of their own, out of the profile documents (a site
    // may state consent on every call). The next start rebuilds the profiles once to fill it.
    "CREATE TABLE consent_changes (
        profile_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        change TEXT NOT NULL,
        PRIMARY KEY (profile_id, seq)
     );
     UPDATE profiles_state SET definitions = '';",
    // 19: a vendor destination's settings that are not secret (its credential is kept where a
    // webhook keeps its signing secret).
    "ALTER TABLE destinations ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';",
    // 20: tracking plans, their assignment to sources and the violations found (plans.sql).
    plans::MIGRATION,
    // 21: the audit log, a hash chain (audit.sql).
    audit::MIGRATION,
    // 22: destinations' governance: approval state, records, change log (flows.sql).
    flows::MIGRATION,
    // 23: erasure: the privacy secret, receipts and the suppression list (postgres/erase.rs).
    erase::MIGRATION,
    // 24: nodes and processor leases (cluster.rs); a dedup claim that is not yet known to
    // be in the log (the log on JetStream: jetstream.rs).
    concat!(
        "ALTER TABLE dedup ADD COLUMN published BOOLEAN NOT NULL DEFAULT true;",
        include_str!("cluster.sql")
    ),
    // 25: deletion requests kept until a destination answers (erase.rs).
    include_str!("deletion.sql"),
    // 26: scan schedules made through the API (the config file's `[[schedule]]` are not stored).
    "CREATE TABLE gov_schedules (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        doc TEXT NOT NULL,
        updated_at BIGINT NOT NULL
     );",
    // 27: console sessions, so that any node (and a restarted one) knows them.
    "CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        csrf TEXT NOT NULL,
        expires_at BIGINT NOT NULL
     );
     CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);",
    // 28: an erasure finds a person's audience changes by the profile each names (the
    // delete's exact terms, so that the planner uses it) instead of reading the whole history.
    "CREATE INDEX audience_changes_by_profile ON audience_changes
        ((change::jsonb ->> 'profile')) WHERE change LIKE '{%';",
    // 29: scans' screenshots, kept for a journey's latest scans (govern.rs).
    "CREATE TABLE scan_screenshots (
        scan_id BIGINT NOT NULL REFERENCES scans (id),
        path TEXT NOT NULL,
        image BYTEA NOT NULL,
        PRIMARY KEY (scan_id, path)
     );",
    // 30: how many erasures have removed stored profiles (erase.rs): a profiles save
    // read before the latest is refused; how much of the suppression list each server's
    // collector has in force, which an erasure waits for.
    "CREATE TABLE profile_erasures (
        id INT PRIMARY KEY CHECK (id = 1),
        count BIGINT NOT NULL
     );
     INSERT INTO profile_erasures (id, count) VALUES (1, 0);
     CREATE TABLE suppression_in_force (
        node TEXT PRIMARY KEY,
        entries BIGINT NOT NULL,
        seen_at BIGINT NOT NULL
     );
     ALTER TABLE dedup ADD COLUMN taken_at BIGINT NOT NULL DEFAULT 0;",
];

/// How far before a claim's time its event may have been published by NATS's clock, and
/// how far after: the node's and NATS's clocks differ by this much at most (NTP keeps them
/// within milliseconds), and a publish follows its claim within an append's time.
#[cfg(feature = "jetstream")]
const CLOCK_SLACK: i64 = 5_000;

/// Appending connections per store, fed from one queue. More than one so that a group's
/// round trips overlap the next group's (appends no longer wait for each other); few,
/// because every one is a backend held open for the store's lifetime and group commit
/// already batches whatever waits.
const WRITERS: usize = 2;

/// True when the reservation `a` belongs to a backend that is still running: the same pid
/// and start time in `pg_stat_activity`. A role that may not see another role's sessions
/// there reads their `backend_start` as NULL; such a pid counts as alive (a reservation is
/// held, never skipped, when in doubt).
const LIVE: &str = "EXISTS (SELECT 1 FROM pg_stat_activity s WHERE s.pid = a.pid
    AND (s.backend_start = a.backend_start OR s.backend_start IS NULL))";

/// Opens a read of the log by seq: the lock shared (every reservation made before is
/// committed, none is made until the read commits), then the bound, kept in a
/// transaction-local setting for the next statement ([`BELOW`]). Two statements, so that
/// the liveness seen here comes before the next statement's snapshot: a reservation's
/// backend found gone ended its transaction before that snapshot, its events are in it or
/// never will be.
fn read_begin() -> String {
    format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock_shared({APPEND_LOCK});
         SELECT set_config('sightline.read_below', COALESCE(
             (SELECT min(a.first_seq) FROM log_appends a WHERE {LIVE}),
             9223372036854775807)::text, true);"
    )
}

/// The bound [`read_begin`] fixed: reads of the log keep `seq` below it.
const BELOW: &str = "current_setting('sightline.read_below')::bigint";

pub struct PostgresStore {
    pool: Pool,
    writer: mpsc::Sender<AppendRequest>,
    audit: crate::audit::Group,
    /// The event log when it is on JetStream (`connect_with_log`); else the `events` table.
    #[cfg(feature = "jetstream")]
    stream: Option<Arc<crate::jetstream::JetStreamLog>>,
}

fn pool_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Pool(e.to_string())
}

/// Applies the migrations past the stored version, up to `through` (all of them in use;
/// fewer only to make stores of earlier versions in tests).
async fn migrate(client: &mut Client, through: usize) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    if applied as usize > MIGRATIONS.len() {
        return Err(crate::newer_schema(applied as usize, MIGRATIONS.len()));
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(through)
        .skip(applied as usize)
    {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&(index as i32 + 1), &sightline_core::time::now_ms()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl PostgresStore {
    /// Connects to `url`, applies migrations and starts the log writer.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Open(format!(
                "bad PostgreSQL URL {}: {e}",
                crate::redact_url(url)
            ))
        })?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(pool_error)?;
        let cannot_connect = |e: tokio_postgres::Error| {
            StoreError::Open(format!(
                "cannot connect to PostgreSQL at {}: {e}",
                crate::redact_url(url)
            ))
        };
        let (mut migrator, connection) = config.connect(NoTls).await.map_err(cannot_connect)?;
        tokio::spawn(connection);
        migrate(&mut migrator, MIGRATIONS.len()).await?;
        drop(migrator);
        let (writer, queue) = mpsc::channel(WRITE_QUEUE_REQUESTS);
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        for _ in 0..WRITERS {
            let log_writer = Writer::open(config.clone()).await?;
            tokio::spawn(write_loop(log_writer, queue.clone()));
        }
        Ok(PostgresStore {
            pool,
            writer,
            audit: Default::default(),
            #[cfg(feature = "jetstream")]
            stream: None,
        })
    }

    /// Connects with the event log on JetStream as `log` says (see `jetstream.rs`).
    #[cfg(feature = "jetstream")]
    pub async fn connect_with_log(url: &str, log: &crate::LogSettings) -> Result<PostgresStore> {
        let stream = crate::jetstream::JetStreamLog::open(log).await?;
        let mut store = PostgresStore::connect(url).await?;
        store.stream = Some(Arc::new(stream));
        Ok(store)
    }

    /// Appends to the stream: claims in `dedup`, publishes, marks the claims published
    /// (see `jetstream.rs` for why in that order).
    #[cfg(feature = "jetstream")]
    async fn append_to_stream(
        &self,
        stream: &crate::jetstream::JetStreamLog,
        events: Vec<NewEvent>,
        dedup_since: i64,
    ) -> Result<Vec<Appended>> {
        let stored: Vec<log::Stored> = events.iter().map(log::Stored::of).collect();
        let firsts = crate::jetstream::first_occurrences(&events);
        let keys: Vec<&[u8]> = firsts.iter().map(|&i| &stored[i].key[..]).collect();
        let seen: Vec<i64> = firsts.iter().map(|&i| events[i].received_at).collect();
        let client = self.client().await?;
        // One statement claims every digest and answers with each claim as it stands after
        // it: new ones inserted, lapsed ones (older than the window) renewed unpublished,
        // and the others left as they are but written over with themselves, so that the
        // row returned is the latest committed one (a claim another append holds is waited
        // for, as an update waits, and seen as it committed). Claims are taken in key
        // order, so that two appends never deadlock on them. Published ones within the
        // window are duplicates; every other event (claimed here, or in doubt) is published
        // under the claim's `Nats-Msg-Id` (its digest and time), so that JetStream's window
        // drops a second copy of one in doubt, while a claim renewed after Sightline's
        // window is a new message.
        let claim = async || -> Result<HashMap<Vec<u8>, (i64, bool, i64)>> {
            let now = sightline_core::time::now_ms();
            Ok(client
                .query(
                    "INSERT INTO dedup (key, seen_at, published, taken_at)
                     SELECT k, r, false, $4 FROM unnest($1::bytea[], $2::bigint[]) AS u (k, r)
                     ORDER BY k
                     ON CONFLICT (key) DO UPDATE SET
                         published = dedup.published AND dedup.seen_at >= $3,
                         taken_at = CASE WHEN dedup.seen_at < $3 THEN EXCLUDED.taken_at
                                         ELSE dedup.taken_at END,
                         seen_at = CASE WHEN dedup.seen_at < $3 THEN EXCLUDED.seen_at
                                        ELSE dedup.seen_at END
                     RETURNING key, seen_at, published, taken_at",
                    &[&keys, &seen, &dedup_since, &now],
                )
                .await?
                .iter()
                .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
                .collect())
        };
        let mut claims = claim().await?;
        // A claim unpublished (in doubt: its node died between JetStream's acknowledgement
        // and marking it, or its append is still under way) and older than JetStream's
        // duplicate window can no longer be published again safely under its message id:
        // settled first from the stream, then claimed again. A younger one is published
        // again, and JetStream drops it if the first publish had landed.
        let doubt_before =
            sightline_core::time::now_ms() - stream.duplicate_window().as_millis() as i64;
        let in_doubt: Vec<([u8; 16], i64)> = claims
            .iter()
            .filter(|(_, &(_, published, taken_at))| !published && taken_at < doubt_before)
            .filter_map(|(key, &(.., taken_at))| Some((key.as_slice().try_into().ok()?, taken_at)))
            .collect();
        if !in_doubt.is_empty() {
            self.settle(stream, in_doubt).await?;
            claims = claim().await?;
        }
        let mut to_publish = Vec::new();
        for i in firsts {
            match claims.get(&stored[i].key[..]) {
                Some(&(seen_at, true, _)) if seen_at >= dedup_since => {}
                Some(&(seen_at, ..)) => to_publish.push((i, seen_at)),
                None => to_publish.push((i, events[i].received_at)),
            }
        }
        let messages: Vec<crate::jetstream::Message> = to_publish
            .iter()
            .map(|&(i, claimed_at)| crate::jetstream::Message {
                event: &events[i],
                stored: &stored[i],
                claimed_at,
            })
            .collect();
        let acks = stream.publish(&messages).await?;
        let done: Vec<&[u8]> = to_publish
            .iter()
            .map(|&(i, _)| &stored[i].key[..])
            .collect();
        let claimed: Vec<i64> = to_publish.iter().map(|&(_, at)| at).collect();
        // An upsert: a claim another append settled away while this one was still under way
        // (it took this one's for a dead node's) is put back, published.
        client
            .execute(
                "INSERT INTO dedup (key, seen_at, published, taken_at)
                 SELECT k, s, true, $3 FROM unnest($1::bytea[], $2::bigint[]) AS u (k, s)
                 ORDER BY k
                 ON CONFLICT (key) DO UPDATE SET published = true",
                &[&done, &claimed, &sightline_core::time::now_ms()],
            )
            .await?;
        let mut answers = vec![Appended::Duplicate; events.len()];
        for ((i, _), ack) in to_publish.into_iter().zip(acks) {
            answers[i] = ack;
        }
        Ok(answers)
    }

    /// Settles claims in doubt, `(key, taken_at)`: those whose event the stream holds
    /// (looked for among the messages JetStream stored within [`CLOCK_SLACK`] of the
    /// claim's time) are marked published, the others removed; returns how many of each.
    #[cfg(feature = "jetstream")]
    async fn settle(
        &self,
        stream: &crate::jetstream::JetStreamLog,
        mut claims: Vec<([u8; 16], i64)>,
    ) -> Result<(u64, u64)> {
        claims.sort_unstable_by_key(|&(_, taken_at)| taken_at);
        // Claims apart in time (left by different deaths) are looked for apart: the stream
        // between them is not read.
        let mut found = HashSet::new();
        for group in claims.chunk_by(|a, b| b.1 - a.1 <= 2 * CLOCK_SLACK) {
            let keys: HashSet<[u8; 16]> = group.iter().map(|(key, _)| *key).collect();
            let (first, last) = (group[0].1, group[group.len() - 1].1);
            found.extend(
                stream
                    .find_keys(&keys, first - CLOCK_SLACK, last + CLOCK_SLACK)
                    .await?,
            );
        }
        let client = self.client().await?;
        let (stored, missing): (Vec<_>, Vec<_>) =
            claims.iter().partition(|(key, _)| found.contains(key));
        let stored: Vec<&[u8]> = stored.iter().map(|(key, _)| &key[..]).collect();
        let published = client
            .execute(
                "UPDATE dedup SET published = true WHERE key = ANY($1)",
                &[&stored],
            )
            .await?;
        let (missing, taken): (Vec<&[u8]>, Vec<i64>) =
            missing.iter().map(|(key, at)| (&key[..], *at)).unzip();
        // Only as claimed when read: an append that took the claim again since goes on.
        let removed = client
            .execute(
                "DELETE FROM dedup d USING unnest($1::bytea[], $2::bigint[]) AS u (k, t)
                 WHERE d.key = u.k AND d.taken_at = u.t AND NOT d.published",
                &[&missing, &taken],
            )
            .await?;
        tracing::warn!(
            published,
            removed,
            "settled dedup claims left in doubt by a node that died while appending"
        );
        Ok((published, removed))
    }

    /// Applies migrations 1..=version to the database at `url` and nothing more: for tests
    /// that check how later versions open earlier stores.
    #[doc(hidden)]
    pub async fn create_at_version(url: &str, version: usize) -> Result<()> {
        let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(connection);
        migrate(&mut client, version).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// One read of the log by seq: `sql` keeps `seq` below [`BELOW`], in the transaction
    /// [`read_begin`] opens. BEGIN, the lock, the bound, the read and COMMIT go out
    /// pipelined: one round trip (after the statement's first preparation on a connection).
    async fn read_log(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        let begin = read_begin();
        // Every future sends its messages when first polled, and `biased` polls them first
        // in the order written. An error aborts the transaction, and the COMMIT ends it.
        let (begun, rows, committed) = tokio::join!(
            biased;
            client.batch_execute(&begin),
            client.query(&statement, params),
            client.batch_execute("COMMIT"),
        );
        begun?;
        let rows = rows?;
        committed?;
        Ok(rows)
    }
}

/// The one statement that appends a group: claims each (source, messageId)'s digest in `dedup`
/// (renewing claims older than the window) and inserts the claimed events in arrival
/// order at the group's reserved seqs (`$9` the first, an event's place in the group giving
/// its own), returning their sequence numbers. Claims are taken in key order, so that two
/// groups claiming the same keys wait for each other in one order and never deadlock.
const APPEND: &str = "
    WITH input AS (
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::int4[],
                             $6::bytea[], $7::bytea[])
            WITH ORDINALITY AS u (s, m, y, r, a, p, k, n)
    ), claimed AS (
        INSERT INTO dedup (key, seen_at)
        SELECT k, r FROM input ORDER BY k
        ON CONFLICT (key) DO UPDATE SET seen_at = EXCLUDED.seen_at
        WHERE dedup.seen_at < $8
        RETURNING key
    )
    INSERT INTO events (seq, source_id, message_id, type, received_at, id_at, payload)
    OVERRIDING SYSTEM VALUE
    SELECT $9::bigint + n - 1, s, m, y, r, a, p FROM input JOIN claimed ON key = k
    ORDER BY n
    RETURNING seq, source_id, message_id";

/// Reserves `$1` consecutive seqs (run under the exclusive [`APPEND_LOCK`], so that no
/// other reservation takes one between) and records the first with this backend's identity.
const RESERVE: &str = "
    WITH r AS (
        SELECT setval(q.s, nextval(q.s) + $1::bigint - 1) - $1::bigint + 1 AS first
        FROM (SELECT pg_get_serial_sequence('events', 'seq')::regclass AS s) q
    )
    INSERT INTO log_appends (first_seq, pid, backend_start)
    SELECT r.first, a.pid, a.backend_start FROM r, pg_stat_activity a
    WHERE a.pid = pg_backend_pid()
    RETURNING first_seq";

/// Ends this backend's reservation (a connection has one at a time; a row of an earlier
/// backend with the same pid is a dead one, safe to remove too).
const UNRESERVE: &str = "DELETE FROM log_appends WHERE pid = pg_backend_pid()";

/// The live reservations below `$1` that are still in flight: locking a row waits for the
/// transaction that is deleting it (the append in flight) and skips it once that commits.
fn in_flight_below() -> String {
    format!("SELECT a.first_seq FROM log_appends a WHERE a.first_seq < $1 AND {LIVE} FOR KEY SHARE OF a")
}

/// Reservations whose backend is gone: its transaction aborted, its events never commit.
fn dead_reservations() -> String {
    format!("DELETE FROM log_appends a WHERE NOT {LIVE}")
}

/// How long an append's answer waits for the appends in flight below it (see
/// [`Writer::wait_below`]) before it is given anyway: they are in flight for a round trip
/// or two; only a backend cut off from its client holds one for longer.
const WAIT_BELOW: Duration = Duration::from_secs(10);

/// Opens the transaction of a look at the appends in flight below one ([`in_flight_below`]):
/// it waits for them at most [`WAIT_BELOW`]. It writes nothing that must survive a crash (its row locks end with it), so its commit
/// does not wait for a WAL flush.
fn wait_begin() -> String {
    format!(
        "BEGIN; SET LOCAL lock_timeout = {}; {NO_FLUSH_WAIT}",
        WAIT_BELOW.as_millis()
    )
}

/// A transaction whose commit need not survive a crash commits without waiting for its
/// WAL to reach the disk: a reservation (after a crash its backend is gone, and readers skip
/// it either way), a look at the appends in flight. The append's own commit waits for its
/// flush, which covers everything logged before it (the reservation's seqs included).
const NO_FLUSH_WAIT: &str = "SET LOCAL synchronous_commit = off";

/// A writer's connection, reopened when it drops (a PostgreSQL restart, a network cut).
struct Writer {
    config: tokio_postgres::Config,
    client: Client,
    append: tokio_postgres::Statement,
    reserve: tokio_postgres::Statement,
    unreserve: tokio_postgres::Statement,
    below: tokio_postgres::Statement,
    /// A reservation could not be removed after a failed append: the connection is dropped
    /// (its backend ends, so readers skip the row) and a new one opened.
    broken: bool,
}

impl Writer {
    async fn open(config: tokio_postgres::Config) -> Result<Writer> {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(error = %e, "PostgreSQL writer connection closed");
            }
        });
        let dead = client.execute(&dead_reservations(), &[]).await?;
        if dead > 0 {
            tracing::warn!(
                reservations = dead,
                "removed the log reservations of appends whose connection ended before they committed"
            );
        }
        Ok(Writer {
            append: client.prepare(APPEND).await?,
            reserve: client.prepare(RESERVE).await?,
            unreserve: client.prepare(UNRESERVE).await?,
            below: client.prepare(&in_flight_below()).await?,
            config,
            client,
            broken: false,
        })
    }

    async fn reopen_if_closed(&mut self) -> Result<()> {
        if self.broken || self.client.is_closed() {
            tracing::warn!("reconnecting a PostgreSQL log writer");
            *self = Writer::open(self.config.clone()).await?;
        }
        Ok(())
    }

    /// After a failed append: ends any transaction and removes this backend's reservation
    /// (best effort; when that fails, the connection is replaced, which ends the backend).
    async fn abandon(&mut self) {
        let removed = match self.client.batch_execute("ROLLBACK").await {
            Ok(()) => self.client.execute(&self.unreserve, &[]).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!(error = %e, "cannot remove a failed append's reservation: reconnecting");
            self.broken = true;
        }
    }

    /// Waits until no live reservation below `first` is in flight, so that the append is
    /// answered once readers see its events. `check` is the first look (made with the
    /// commit). A row found without waiting is one whose append has not started its
    /// transaction yet (a moment), or failed and is being removed: looked at again shortly.
    async fn wait_below(&self, first: i64, mut check: Result<Vec<Row>, tokio_postgres::Error>) {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match check {
                Ok(rows) if rows.is_empty() => return,
                Ok(_) if started.elapsed() < WAIT_BELOW => {}
                Ok(rows) => {
                    tracing::warn!(
                        first_seq = first,
                        below = rows.len(),
                        "appends below this one are still in flight: answering it anyway"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot wait for the appends below this one: answering it anyway");
                    return;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            check = self.look_below(first).await;
        }
    }

    /// One look at the reservations in flight below `first`, waiting at most [`WAIT_BELOW`]
    /// for their transactions. The statements go out pipelined (one round trip).
    async fn look_below(&self, first: i64) -> Result<Vec<Row>, tokio_postgres::Error> {
        let client = &self.client;
        let begin = wait_begin();
        let params: [&(dyn ToSql + Sync); 1] = [&first];
        let (begun, rows, committed) = tokio::join!(
            biased;
            client.batch_execute(&begin),
            client.query(&self.below, &params),
            client.batch_execute("COMMIT"),
        );
        begun?;
        let rows = rows?;
        committed?;
        Ok(rows)
    }
}

async fn write_loop(
    mut writer: Writer,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<AppendRequest>>>,
) {
    loop {
        // One writer at a time takes a group; it commits while another takes the next.
        let group = {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(first) => group::take_group(first, &mut queue),
                None => return,
            }
        };
        let outcome = match writer.reopen_if_closed().await {
            Ok(()) => commit_group(&mut writer, &group).await,
            Err(e) => Err(e),
        };
        group::answer(group, outcome);
    }
}

async fn commit_group(writer: &mut Writer, group: &[AppendRequest]) -> Result<Vec<Vec<Appended>>> {
    // Within the group, a repeated (source, messageId) is a duplicate of its first
    // occurrence; the database decides only for the first occurrences.
    let mut seen = HashSet::new();
    let (fresh, stored): (Vec<&NewEvent>, Vec<&log::Stored>) = group
        .iter()
        .flat_map(|request| request.events.iter().zip(&request.stored))
        .filter(|(e, _)| seen.insert((e.source_id, e.message_id.as_str())))
        .unzip();
    // Every request carries the same configured window; the oldest bound is the safe one.
    let since = group.iter().map(|r| r.dedup_since).min().unwrap_or(0);
    let columns = (
        fresh.iter().map(|e| e.source_id).collect::<Vec<_>>(),
        fresh
            .iter()
            .map(|e| e.message_id.as_str())
            .collect::<Vec<_>>(),
        fresh
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        fresh.iter().map(|e| e.received_at).collect::<Vec<_>>(),
    );
    let id_at: Vec<Option<i32>> = stored.iter().map(|s| s.body.id_at).collect();
    let payloads: Vec<&[u8]> = stored.iter().map(|s| s.body.payload.as_slice()).collect();
    let keys: Vec<&[u8]> = stored.iter().map(|s| &s.key[..]).collect();
    let count = fresh.len() as i64;

    // Each pipeline below is one round trip: every future sends its messages when first
    // polled, and `biased` polls them first in the order written.
    //
    // 1. The reservation, committed under the exclusive lock (held for this statement
    //    only); then the append's transaction starts by deleting the reservation row, so
    //    that its commit ends the reservation and anyone waiting for it waits on that row.
    let client = &writer.client;
    let lock = format!("BEGIN; {NO_FLUSH_WAIT}; SELECT pg_advisory_xact_lock({APPEND_LOCK})");
    let reserve_params: [&(dyn ToSql + Sync); 1] = [&count];
    let (locked, reserved, begun, taken) = tokio::join!(
        biased;
        client.batch_execute(&lock),
        client.query_one(&writer.reserve, &reserve_params),
        client.batch_execute("COMMIT; BEGIN"),
        client.execute(&writer.unreserve, &[]),
    );
    let first: i64 = match (locked, reserved, begun, taken) {
        (Ok(()), Ok(row), Ok(()), Ok(_)) => row.get(0),
        (locked, reserved, begun, taken) => {
            let error = (locked.err())
                .or(reserved.err())
                .or(begun.err())
                .or(taken.err());
            writer.abandon().await;
            return Err(error.map_or_else(
                || StoreError::Commit("the reservation failed".into()),
                StoreError::from,
            ));
        }
    };

    // 2. The events at their seqs and COMMIT (no lock: other groups commit meanwhile);
    //    then, with the commit, the first look at the appends in flight below this one.
    let wait_begin = wait_begin();
    let append_params: [&(dyn ToSql + Sync); 9] = [
        &columns.0, &columns.1, &columns.2, &columns.3, &id_at, &payloads, &keys, &since, &first,
    ];
    let below_params: [&(dyn ToSql + Sync); 1] = [&first];
    let (appended, committed, wait_begun, below, wait_committed) = tokio::join!(
        biased;
        client.query(&writer.append, &append_params),
        client.batch_execute("COMMIT"),
        client.batch_execute(&wait_begin),
        client.query(&writer.below, &below_params),
        client.batch_execute("COMMIT"),
    );
    let rows = match (appended, committed) {
        (Ok(rows), Ok(())) => rows,
        (Err(e), _) | (_, Err(e)) => {
            writer.abandon().await;
            return Err(e.into());
        }
    };
    let below = match (wait_begun, below, wait_committed) {
        (Ok(()), Ok(rows), Ok(())) => Ok(rows),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => Err(e),
    };
    writer.wait_below(first, below).await;

    let seqs: HashMap<(i64, String), i64> = rows
        .into_iter()
        .map(|row| ((row.get(1), row.get(2)), row.get(0)))
        .collect();

    let mut answered = HashSet::new();
    Ok(group
        .iter()
        .map(|request| {
            request
                .events
                .iter()
                .map(|e| {
                    let key = (e.source_id, e.message_id.clone());
                    match seqs.get(&key) {
                        Some(&seq) if answered.insert(key) => Appended::Stored(seq),
                        _ => Appended::Duplicate,
                    }
                })
                .collect()
        })
        .collect())
}

/// The columns `event_from_row` reads, from the events table aliased `e`.
const EVENT_COLUMNS: &str =
    "e.seq, e.source_id, e.message_id, e.type, e.received_at, e.id_at, e.payload, e.body";

/// An event row in either form: migration 12's (`payload`, see log.rs) or, for rows stored
/// before it, the plain TEXT body as sent.
fn event_from_row(row: &Row) -> Result<StoredEvent> {
    let seq: i64 = row.get(0);
    let message_id: String = row.get(2);
    let body = match row.get::<_, Option<&[u8]>>(6) {
        Some(payload) => {
            let id_at: Option<i32> = row.get(5);
            log::decode(&message_id, id_at.map(i64::from), payload)
                .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?
        }
        None => row.get(7),
    };
    Ok(StoredEvent {
        seq,
        source_id: row.get(1),
        message_id,
        event_type: columns::known("event type", row.get(3), EventType::parse(row.get(3)))?,
        received_at: row.get(4),
        body,
    })
}

fn source_from_row(row: &Row) -> Source {
    Source {
        id: row.get(0),
        name: row.get(1),
        created_at: row.get(2),
    }
}

const REVIEW_COLUMNS: &str = "id, origin, left_id, right_id, match_probability, evidence, \
     status, created_at, decided_at, seq";

fn review_from_row(row: &Row) -> Result<LinkReview> {
    Ok(LinkReview {
        id: row.get(0),
        origin: row.get(1),
        left: row.get(2),
        right: row.get(3),
        match_probability: row.get(4),
        evidence: columns::parse_object(row.get(5)),
        status: crate::reviews::status(row.get(6))?,
        created_at: row.get(7),
        decided_at: row.get(8),
        seq: row.get(9),
    })
}

fn trait_from_row(row: &Row) -> TraitDefinition {
    TraitDefinition {
        id: row.get(0),
        name: row.get(1),
        definition: columns::parse_object(row.get(2)),
        created_at: row.get(3),
    }
}

fn audience_from_row(row: &Row) -> AudienceDefinition {
    AudienceDefinition {
        id: row.get(0),
        name: row.get(1),
        rule: row.get(2),
        sync: columns::parse_list(row.get(3)),
        created_at: row.get(4),
    }
}

fn token_from_row(row: &Row) -> Result<Token> {
    Ok(Token {
        id: row.get(0),
        role: columns::role(row.get(1))?,
    })
}

const DESTINATION_COLUMNS: &str = "id, name, kind, url, purposes, event_types, event_names, \
     batch_size, signing_secret, created_at, transform, disabled, settings, approved";

fn destination_from_row(row: &Row) -> Result<Destination> {
    Ok(Destination {
        id: row.get(0),
        name: row.get(1),
        kind: columns::kind(row.get(2))?,
        url: row.get(3),
        purposes: columns::parse_list(row.get(4)),
        event_types: columns::parse_list(row.get(5)),
        event_names: columns::parse_list(row.get(6)),
        batch_size: row.get::<_, i32>(7).try_into().unwrap_or(1),
        signing_secret: row.get(8),
        created_at: row.get(9),
        transform: columns::parse_object(row.get(10)),
        disabled: row.get(11),
        settings: columns::parse_object(row.get(12)),
        approved: row.get(13),
    })
}

fn delivery_from_row(row: &Row) -> Result<Delivery> {
    Ok(Delivery {
        destination_id: row.get(0),
        seq: row.get(1),
        message_id: row.get(2),
        status: columns::status(row.get(3))?,
        attempts: row.get::<_, i32>(4).try_into().unwrap_or(0),
        response_code: row
            .get::<_, Option<i32>>(5)
            .and_then(|code| code.try_into().ok()),
        latency_ms: row.get(6),
        reason: row.get(7),
        at: row.get(8),
    })
}

#[async_trait]
impl EventLog for PostgresStore {
    async fn append(&self, events: Vec<NewEvent>, dedup_since: i64) -> Result<Vec<Appended>> {
        #[cfg(feature = "jetstream")]
        if let Some(stream) = &self.stream {
            return self.append_to_stream(stream, events, dedup_since).await;
        }
        group::submit(&self.writer, events, dedup_since).await
    }

    async fn read_events(
        &self,
        after: i64,
        limit: usize,
        source_id: Option<i64>,
    ) -> Result<Vec<StoredEvent>> {
        #[cfg(feature = "jetstream")]
        if let Some(stream) = &self.stream {
            return stream.read_events(after, limit, source_id).await;
        }
        // Two statements, so that a source's read can walk `events_by_source`.
        let rows = match source_id {
            None => {
                self.read_log(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq > $1 AND e.seq < {BELOW}
                         ORDER BY e.seq LIMIT $2"
                    ),
                    &[&after, &(limit as i64)],
                )
                .await?
            }
            Some(source) => {
                self.read_log(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events e
                         WHERE e.source_id = $1 AND e.seq > $2 AND e.seq < {BELOW}
                         ORDER BY e.seq LIMIT $3"
                    ),
                    &[&source, &after, &(limit as i64)],
                )
                .await?
            }
        };
        rows.iter().map(event_from_row).collect()
    }

    async fn last_seq(&self) -> Result<i64> {
        #[cfg(feature = "jetstream")]
        if let Some(stream) = &self.stream {
            return stream.last_seq().await;
        }
        let rows = self
            .read_log(
                // The highest seq erased counts too (postgres/erase.rs): an erasure of the
                // last events does not move the log's end back.
                &format!(
                    "SELECT GREATEST(COALESCE(MAX(seq), 0),
                        COALESCE((SELECT seq FROM log_erased WHERE id = 1), 0))
                     FROM events WHERE seq < {BELOW}"
                ),
                &[],
            )
            .await?;
        Ok(rows.first().map_or(0, |row| row.get(0)))
    }

    async fn ping(&self) -> Result<()> {
        self.client().await?.query_one("SELECT 1", &[]).await?;
        #[cfg(feature = "jetstream")]
        if let Some(stream) = &self.stream {
            stream.last_seq().await?;
        }
        Ok(())
    }

    async fn prune_dedup(&self, before: i64) -> Result<u64> {
        let client = self.client().await?;
        Ok(client
            .execute("DELETE FROM dedup WHERE seen_at < $1", &[&before])
            .await?)
    }

    async fn stream_info(&self) -> Result<Option<crate::LogInfo>> {
        #[cfg(feature = "jetstream")]
        if let Some(stream) = &self.stream {
            return Ok(Some(stream.info().await?));
        }
        Ok(None)
    }
}

#[async_trait]
impl Access for PostgresStore {
    async fn is_empty(&self) -> Result<bool> {
        let client = self.client().await?;
        Ok(client
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM sources) AND NOT EXISTS (SELECT 1 FROM tokens)",
                &[],
            )
            .await?
            .get(0))
    }

    async fn create_source(&self, name: &str, key_hash: &str) -> Result<Source> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = sightline_core::time::now_ms();
        let row = tx
            .query_opt(
                "INSERT INTO sources (name, created_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at",
                &[&name, &now],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(format!(
                    "a source named {name:?} already exists: pick another name, or rotate its key with `sightline source rotate-key {name}`"
                ))
            })?;
        let source = source_from_row(&row);
        tx.execute(
            "INSERT INTO source_keys (key_hash, source_id, created_at) VALUES ($1, $2, $3)",
            &[&key_hash, &source.id, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(source)
    }

    async fn list_sources(&self) -> Result<Vec<Source>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, name, created_at FROM sources ORDER BY id", &[])
            .await?;
        Ok(rows.iter().map(source_from_row).collect())
    }

    async fn source_by_name(&self, name: &str) -> Result<Option<Source>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, name, created_at FROM sources WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok(row.as_ref().map(source_from_row))
    }

    async fn source_for_key(&self, key_hash: &str, now: i64) -> Result<Option<Source>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT s.id, s.name, s.created_at FROM source_keys k
                 JOIN sources s ON s.id = k.source_id
                 WHERE k.key_hash = $1 AND (k.expires_at IS NULL OR k.expires_at > $2)",
                &[&key_hash, &now],
            )
            .await?;
        Ok(row.as_ref().map(source_from_row))
    }

    async fn rotate_key(&self, source_id: i64, key_hash: &str, old_valid_until: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "UPDATE source_keys SET expires_at = $2 WHERE source_id = $1
             AND (expires_at IS NULL OR expires_at > $2)",
            &[&source_id, &old_valid_until],
        )
        .await?;
        tx.execute(
            "INSERT INTO source_keys (key_hash, source_id, created_at) VALUES ($1, $2, $3)",
            &[&key_hash, &source_id, &sightline_core::time::now_ms()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_token(&self, role: Role, token_hash: &str) -> Result<Token> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO tokens (token_hash, role, created_at) VALUES ($1, $2, $3)
                 RETURNING id, role",
                &[&token_hash, &role.as_str(), &sightline_core::time::now_ms()],
            )
            .await?;
        token_from_row(&row)
    }

    async fn token_for_hash(&self, token_hash: &str) -> Result<Option<Token>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, role FROM tokens WHERE token_hash = $1",
                &[&token_hash],
            )
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn start_session(&self, session: ConsoleSession) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM console_sessions WHERE expires_at <= $1",
                &[&sightline_core::time::now_ms()],
            )
            .await?;
        client
            .execute(
                "INSERT INTO console_sessions (id_hash, token_hash, csrf, expires_at)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &session.id_hash,
                    &session.token_hash,
                    &session.csrf,
                    &session.expires_at,
                ],
            )
            .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<ConsoleSession>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT token_hash, csrf, expires_at FROM console_sessions
                 WHERE id_hash = $1 AND expires_at > $2",
                &[&id_hash, &now],
            )
            .await?;
        Ok(row.map(|row| ConsoleSession {
            id_hash: id_hash.to_string(),
            token_hash: row.get(0),
            csrf: row.get(1),
            expires_at: row.get(2),
        }))
    }

    async fn end_session(&self, id_hash: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM console_sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Checkpoints for PostgresStore {
    async fn checkpoint(&self, processor: &str) -> Result<i64> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT seq FROM checkpoints WHERE processor = $1",
                &[&processor],
            )
            .await?;
        Ok(row.map(|r| r.get(0)).unwrap_or(0))
    }

    async fn set_checkpoint(&self, processor: &str, seq: i64) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO checkpoints (processor, seq) VALUES ($1, $2)
                 ON CONFLICT (processor) DO UPDATE SET seq = EXCLUDED.seq",
                &[&processor, &seq],
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Definitions for PostgresStore {
    async fn create_audience(
        &self,
        name: &str,
        rule: &str,
        sync: &[String],
    ) -> Result<AudienceDefinition> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO audiences (name, rule, sync, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING RETURNING id, name, rule, sync, created_at",
                &[
                    &name,
                    &rule,
                    &columns::list(sync),
                    &sightline_core::time::now_ms(),
                ],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(format!("an audience named {name:?} already exists"))
            })?;
        Ok(audience_from_row(&row))
    }

    async fn create_trait(&self, name: &str, definition: &str) -> Result<TraitDefinition> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO computed_traits (name, definition, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING RETURNING id, name, definition, created_at",
                &[&name, &definition, &sightline_core::time::now_ms()],
            )
            .await?
            .ok_or_else(|| columns::trait_conflict(name))?;
        Ok(trait_from_row(&row))
    }

    async fn audience_history(
        &self,
        audience: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, change FROM audience_changes WHERE audience = $1 AND id > $2
                 ORDER BY id LIMIT $3",
                &[&audience, &after, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn list_traits(&self) -> Result<Vec<TraitDefinition>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, definition, created_at FROM computed_traits ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(trait_from_row).collect())
    }

    async fn list_audiences(&self) -> Result<Vec<AudienceDefinition>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, rule, sync, created_at FROM audiences ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(audience_from_row).collect())
    }
}

#[async_trait]
impl Destinations for PostgresStore {
    async fn create_destination(&self, new: NewDestination) -> Result<Destination> {
        let client = self.client().await?;
        let batch_size = i32::try_from(new.batch_size).unwrap_or(i32::MAX);
        let row = client
            .query_opt(
                &format!(
                    "INSERT INTO destinations (name, kind, url, purposes, event_types, event_names,
                         batch_size, signing_secret, created_at, transform, settings)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (name) DO NOTHING RETURNING {DESTINATION_COLUMNS}"
                ),
                &[
                    &new.name,
                    &new.kind.as_str(),
                    &new.url,
                    &columns::list(&new.purposes),
                    &columns::list(&new.event_types),
                    &columns::list(&new.event_names),
                    &batch_size,
                    &new.signing_secret,
                    &sightline_core::time::now_ms(),
                    &new.transform.to_string(),
                    &new.settings.to_string(),
                ],
            )
            .await?
            .ok_or_else(|| columns::conflict(&new.name))?;
        destination_from_row(&row)
    }

    async fn set_destination_disabled(&self, id: i64, disabled: bool) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE destinations SET disabled = $2 WHERE id = $1",
                &[&id, &disabled],
            )
            .await?;
        Ok(())
    }

    async fn set_destination_secret(&self, id: i64, secret: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE destinations SET signing_secret = $2 WHERE id = $1",
                &[&id, &secret],
            )
            .await?;
        Ok(())
    }

    async fn delete_destination(&self, id: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM deliveries WHERE destination_id = $1", &[&id])
            .await?;
        tx.execute(
            "DELETE FROM checkpoints WHERE processor = $1 OR processor LIKE $2",
            &[&format!("delivery:{id}"), &format!("sync:{id}:%")],
        )
        .await?;
        tx.execute(
            "DELETE FROM destination_flows WHERE destination_id = $1",
            &[&id],
        )
        .await?;
        tx.execute("DELETE FROM destinations WHERE id = $1", &[&id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_destinations(&self) -> Result<Vec<Destination>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY id"),
                &[],
            )
            .await?;
        rows.iter().map(destination_from_row).collect()
    }

    async fn destination_by_name(&self, name: &str) -> Result<Option<Destination>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE name = $1"),
                &[&name],
            )
            .await?;
        row.as_ref().map(destination_from_row).transpose()
    }

    async fn record_deliveries(
        &self,
        deliveries: Vec<Delivery>,
        checkpoint: Option<(String, i64)>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One statement for the whole batch: the columns as arrays.
        let column = |f: fn(&Delivery) -> i64| deliveries.iter().map(f).collect::<Vec<_>>();
        let (destination_ids, seqs, ats) = (
            column(|d| d.destination_id),
            column(|d| d.seq),
            column(|d| d.at),
        );
        let message_ids: Vec<&str> = deliveries.iter().map(|d| d.message_id.as_str()).collect();
        let statuses: Vec<&str> = deliveries.iter().map(|d| d.status.as_str()).collect();
        let attempts: Vec<i32> = deliveries
            .iter()
            .map(|d| i32::try_from(d.attempts).unwrap_or(i32::MAX))
            .collect();
        let codes: Vec<Option<i32>> = deliveries
            .iter()
            .map(|d| d.response_code.map(i32::from))
            .collect();
        let latencies: Vec<Option<i64>> = deliveries.iter().map(|d| d.latency_ms).collect();
        let reasons: Vec<Option<&str>> = deliveries.iter().map(|d| d.reason.as_deref()).collect();
        tx.execute(
            "INSERT INTO deliveries (destination_id, seq, message_id, status, attempts,
                 response_code, latency_ms, reason, at)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[],
                 $6::int[], $7::bigint[], $8::text[], $9::bigint[])
             ON CONFLICT (destination_id, seq) DO UPDATE SET message_id = EXCLUDED.message_id,
                 status = EXCLUDED.status, attempts = EXCLUDED.attempts,
                 response_code = EXCLUDED.response_code, latency_ms = EXCLUDED.latency_ms,
                 reason = EXCLUDED.reason, at = EXCLUDED.at",
            &[
                &destination_ids,
                &seqs,
                &message_ids,
                &statuses,
                &attempts,
                &codes,
                &latencies,
                &reasons,
                &ats,
            ],
        )
        .await?;
        if let Some((processor, seq)) = checkpoint {
            // Never back: a checkpoint moved past this page meanwhile (`destination
            // skip-to`) stays where it was moved.
            tx.execute(
                "INSERT INTO checkpoints (processor, seq) VALUES ($1, $2)
                 ON CONFLICT (processor) DO UPDATE SET seq = GREATEST(checkpoints.seq, EXCLUDED.seq)",
                &[&processor, &seq],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn deliveries(
        &self,
        destination_id: i64,
        status: Option<DeliveryStatus>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let client = self.client().await?;
        // Two statements, so that a status filter can use `deliveries_by_status` (a
        // prepared `status = $2 OR $2 IS NULL` plan cannot).
        let rows =
            match status {
                None => client
                    .query(
                        "SELECT destination_id, seq, message_id, status, attempts, response_code,
                             latency_ms, reason, at FROM deliveries
                         WHERE destination_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                        &[&destination_id, &after, &(limit as i64)],
                    )
                    .await?,
                Some(status) => client
                    .query(
                        "SELECT destination_id, seq, message_id, status, attempts, response_code,
                             latency_ms, reason, at FROM deliveries
                         WHERE destination_id = $1 AND status = $2 AND seq > $3
                         ORDER BY seq LIMIT $4",
                        &[&destination_id, &status.as_str(), &after, &(limit as i64)],
                    )
                    .await?,
            };
        rows.iter().map(delivery_from_row).collect()
    }
}

#[async_trait]
impl ProfileStore for PostgresStore {
    async fn profiles_state(&self) -> Result<Option<ProfilesState>> {
        let client = self.client().await?;
        Ok(profiles_state(&client).await?)
    }

    async fn save_profiles(&self, save: ProfileSave) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PROFILES_LOCK])
            .await?;
        let erasures: i64 = tx.query_one(PROFILE_ERASURES, &[]).await?.get(0);
        if let Some(conflict) = profiles_moved(profiles_state(&tx).await?.as_ref(), erasures, &save)
        {
            return Err(conflict);
        }
        if save.replace {
            tx.batch_execute(
                "TRUNCATE profiles; TRUNCATE profile_identifiers; TRUNCATE profile_events;
                 TRUNCATE consent_denied_counts; TRUNCATE profile_states; TRUNCATE profile_merges;
                 TRUNCATE audience_members; TRUNCATE profile_timers; TRUNCATE consent_changes;",
            )
            .await?;
        }
        let rows = &save.rows;
        for &(retired, survivor) in &rows.retired {
            tx.execute(
                "UPDATE profile_identifiers SET profile_id = $2 WHERE profile_id = $1",
                &[&retired, &survivor],
            )
            .await?;
            tx.execute(
                "UPDATE profile_events SET profile_id = $2 WHERE profile_id = $1",
                &[&retired, &survivor],
            )
            .await?;
            tx.execute("DELETE FROM profiles WHERE id = $1", &[&retired])
                .await?;
            tx.execute(
                "DELETE FROM profile_states WHERE profile_id = $1",
                &[&retired],
            )
            .await?;
            tx.execute(
                "DELETE FROM profile_timers WHERE profile_id = $1",
                &[&retired],
            )
            .await?;
            tx.execute(
                "UPDATE consent_changes SET profile_id = $2 WHERE profile_id = $1",
                &[&retired, &survivor],
            )
            .await?;
            tx.execute(
                "INSERT INTO profile_merges (retired, survivor) VALUES ($1, $2)
                 ON CONFLICT (retired) DO UPDATE SET survivor = EXCLUDED.survivor",
                &[&retired, &survivor],
            )
            .await?;
        }
        for chunk in rows.profiles.chunks(SAVE_CHUNK) {
            let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
            let docs: Vec<&str> = chunk.iter().map(|(_, doc)| doc.as_str()).collect();
            tx.execute(
                "INSERT INTO profiles (id, doc) SELECT * FROM unnest($1::bigint[], $2::text[])
                 ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
                &[&ids, &docs],
            )
            .await?;
        }
        for chunk in rows.identifiers.chunks(SAVE_CHUNK) {
            let text = |f: fn(&sightline_core::IdentifierRow) -> &str| -> Vec<&str> {
                chunk.iter().map(f).collect()
            };
            let (types, values, seen_with) = (
                text(|r| &r.id_type),
                text(|r| &r.value),
                text(|r| &r.seen_with),
            );
            let profiles: Vec<i64> = chunk.iter().map(|r| r.profile).collect();
            let shared: Vec<bool> = chunk.iter().map(|r| r.shared).collect();
            tx.execute(
                "INSERT INTO profile_identifiers (id_type, value, profile_id, shared, seen_with)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[], $5::text[])
                 ON CONFLICT (id_type, value) DO UPDATE SET profile_id = EXCLUDED.profile_id,
                     shared = EXCLUDED.shared, seen_with = EXCLUDED.seen_with",
                &[&types, &values, &profiles, &shared, &seen_with],
            )
            .await?;
        }
        for chunk in rows.events.chunks(SAVE_CHUNK) {
            let profiles: Vec<i64> = chunk.iter().map(|(profile, _)| *profile).collect();
            let seqs: Vec<i64> = chunk.iter().map(|(_, seq)| *seq).collect();
            tx.execute(
                "INSERT INTO profile_events (profile_id, seq)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
                &[&profiles, &seqs],
            )
            .await?;
        }
        for chunk in rows.audience_changes.chunks(SAVE_CHUNK) {
            let audiences: Vec<&str> = chunk.iter().map(|(a, _)| a.as_str()).collect();
            let changes: Vec<&str> = chunk.iter().map(|(_, c)| c.as_str()).collect();
            tx.execute(
                "INSERT INTO audience_changes (audience, change)
                 SELECT * FROM unnest($1::text[], $2::text[])",
                &[&audiences, &changes],
            )
            .await?;
        }
        for chunk in rows.denied_counts.chunks(SAVE_CHUNK) {
            let days: Vec<&str> = chunk.iter().map(|c| c.day.as_str()).collect();
            let sources: Vec<i64> = chunk.iter().map(|c| c.source_id).collect();
            let events: Vec<&str> = chunk.iter().map(|c| c.event.as_str()).collect();
            let counts: Vec<i64> = chunk.iter().map(|c| c.count).collect();
            tx.execute(
                "INSERT INTO consent_denied_counts (day, source_id, event, count)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
                 ON CONFLICT (day, source_id, event)
                 DO UPDATE SET count = consent_denied_counts.count + EXCLUDED.count",
                &[&days, &sources, &events, &counts],
            )
            .await?;
        }
        for chunk in rows.states.chunks(SAVE_CHUNK) {
            let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
            let states: Vec<&str> = chunk.iter().map(|(_, state)| state.as_str()).collect();
            tx.execute(
                "INSERT INTO profile_states (profile_id, state)
                 SELECT * FROM unnest($1::bigint[], $2::text[])
                 ON CONFLICT (profile_id) DO UPDATE SET state = EXCLUDED.state",
                &[&ids, &states],
            )
            .await?;
        }
        for chunk in rows.members.chunks(SAVE_CHUNK) {
            let (entered, exited): (Vec<_>, Vec<_>) = chunk.iter().partition(|(_, _, m)| *m);
            for (sql, rows) in [
                (
                    "INSERT INTO audience_members (audience, profile_id)
                     SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
                    entered,
                ),
                (
                    "DELETE FROM audience_members m USING unnest($1::text[], $2::bigint[]) AS x(a, p)
                     WHERE m.audience = x.a AND m.profile_id = x.p",
                    exited,
                ),
            ] {
                let audiences: Vec<&str> = rows.iter().map(|(a, _, _)| a.as_str()).collect();
                let profiles: Vec<i64> = rows.iter().map(|(_, p, _)| *p).collect();
                tx.execute(sql, &[&audiences, &profiles]).await?;
            }
        }
        for chunk in rows.consent.chunks(SAVE_CHUNK) {
            let profiles: Vec<i64> = chunk.iter().map(|(p, _, _)| *p).collect();
            let seqs: Vec<i64> = chunk.iter().map(|(_, seq, _)| *seq).collect();
            let changes: Vec<&str> = chunk.iter().map(|(_, _, c)| c.as_str()).collect();
            tx.execute(
                "INSERT INTO consent_changes (profile_id, seq, change)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])
                 ON CONFLICT DO NOTHING",
                &[&profiles, &seqs, &changes],
            )
            .await?;
        }
        for chunk in rows.timers.chunks(SAVE_CHUNK) {
            let (set, cleared): (Vec<_>, Vec<_>) = chunk.iter().partition(|(_, _, d)| d.is_some());
            let audiences: Vec<&str> = set.iter().map(|(a, _, _)| a.as_str()).collect();
            let profiles: Vec<i64> = set.iter().map(|(_, p, _)| *p).collect();
            let due: Vec<i64> = set.iter().filter_map(|(_, _, d)| *d).collect();
            tx.execute(
                "INSERT INTO profile_timers (profile_id, audience, due_at)
                 SELECT p, a, d FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS x(a, p, d)
                 ON CONFLICT (profile_id, audience) DO UPDATE SET due_at = EXCLUDED.due_at",
                &[&audiences, &profiles, &due],
            )
            .await?;
            let audiences: Vec<&str> = cleared.iter().map(|(a, _, _)| a.as_str()).collect();
            let profiles: Vec<i64> = cleared.iter().map(|(_, p, _)| *p).collect();
            tx.execute(
                "DELETE FROM profile_timers t USING unnest($1::text[], $2::bigint[]) AS x(a, p)
                 WHERE t.audience = x.a AND t.profile_id = x.p",
                &[&audiences, &profiles],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO profiles_state (id, seq, rules, definitions) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, rules = EXCLUDED.rules,
                 definitions = EXCLUDED.definitions",
            &[&save.state.seq, &save.state.rules, &save.state.definitions],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_profiles(&self) -> Result<Option<(ProfilesState, ProfileRows)>> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let Some(state) = profiles_state(&tx).await? else {
            return Ok(None);
        };
        let pairs = |rows: Vec<Row>| -> Vec<(i64, i64)> {
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        let texts = |rows: Vec<Row>| -> Vec<(i64, String)> {
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        let rows = ProfileRows {
            retired: pairs(
                tx.query(
                    "SELECT retired, survivor FROM profile_merges ORDER BY retired",
                    &[],
                )
                .await?,
            ),
            events: pairs(
                tx.query(
                    "SELECT profile_id, seq FROM profile_events ORDER BY profile_id, seq",
                    &[],
                )
                .await?,
            ),
            profiles: texts(
                tx.query("SELECT id, doc FROM profiles ORDER BY id", &[])
                    .await?,
            ),
            states: texts(
                tx.query(
                    "SELECT profile_id, state FROM profile_states ORDER BY profile_id",
                    &[],
                )
                .await?,
            ),
            identifiers: tx
                .query(
                    "SELECT id_type, value, profile_id, shared, seen_with FROM profile_identifiers",
                    &[],
                )
                .await?
                .iter()
                .map(identifier_from_row)
                .collect(),
            denied_counts: tx
                .query(
                    "SELECT day, source_id, event, count FROM consent_denied_counts",
                    &[],
                )
                .await?
                .iter()
                .map(|r| DeniedCount {
                    day: r.get(0),
                    source_id: r.get(1),
                    event: r.get(2),
                    count: r.get(3),
                })
                .collect(),
            consent: tx
                .query("SELECT profile_id, seq, change FROM consent_changes", &[])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
            ..ProfileRows::default()
        };
        tx.commit().await?;
        Ok(Some((state, rows)))
    }

    async fn consent_denied_counts(&self, from: &str, to: &str) -> Result<Vec<DeniedCount>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT day, source_id, event, count FROM consent_denied_counts
                 WHERE day >= $1 AND day <= $2 ORDER BY day, source_id, event",
                &[&from, &to],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeniedCount {
                day: r.get(0),
                source_id: r.get(1),
                event: r.get(2),
                count: r.get(3),
            })
            .collect())
    }

    async fn stored_profiles(
        &self,
        identifiers: Vec<(String, String)>,
    ) -> Result<Vec<Option<StoredProfile>>> {
        let (types, values): (Vec<&str>, Vec<&str>) = identifiers
            .iter()
            .map(|(t, v)| (t.as_str(), v.as_str()))
            .unzip();
        let mut client = self.client().await?;
        // One snapshot for the profiles and their ledgers.
        let tx = snapshot(&mut client).await?;
        let rows = tx
            .query(
                "SELECT p.id, p.doc, s.state, x.n FROM unnest($1::text[], $2::text[])
                     WITH ORDINALITY AS x (t, v, n)
                 JOIN profile_identifiers i ON i.id_type = x.t AND i.value = x.v
                 JOIN profiles p ON p.id = i.profile_id
                 LEFT JOIN profile_states s ON s.profile_id = p.id",
                &[&types, &values],
            )
            .await?;
        // Several identifiers may name one profile: its ledger is read once.
        let mut profiles: Vec<StoredProfile> = Vec::new();
        let mut indexes: HashMap<i64, usize> = HashMap::new();
        let mut places = Vec::with_capacity(rows.len());
        for row in &rows {
            let profile = stored_profile_from_row(row);
            let index = *indexes.entry(profile.id).or_insert_with(|| {
                profiles.push(profile);
                profiles.len() - 1
            });
            places.push((row.get::<_, i64>(3) as usize - 1, index));
        }
        let profiles = with_ledgers(&tx, profiles).await?;
        tx.commit().await?;
        let mut found = vec![None; identifiers.len()];
        for (at, index) in places {
            found[at] = Some(profiles[index].clone());
        }
        Ok(found)
    }

    async fn stored_profile_by_id(&self, id: i64) -> Result<Option<StoredProfile>> {
        let client = self.client().await?;
        let mut id = id;
        // Bounded, so that even a hand-made cycle of merges cannot hang the walk.
        for _ in 0..MAX_MERGE_CHAIN {
            let found = client
                .query_opt(
                    "SELECT p.id, p.doc, s.state FROM profiles p
                     LEFT JOIN profile_states s ON s.profile_id = p.id WHERE p.id = $1",
                    &[&id],
                )
                .await?;
            if let Some(row) = found {
                let found = vec![stored_profile_from_row(&row)];
                return Ok(with_ledgers(&client, found).await?.pop());
            }
            match client
                .query_opt(
                    "SELECT survivor FROM profile_merges WHERE retired = $1",
                    &[&id],
                )
                .await?
            {
                Some(row) => id = row.get(0),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    async fn audience_members(
        &self,
        audience: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredProfile>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT p.id, p.doc, s.state FROM audience_members m
                 JOIN profiles p ON p.id = m.profile_id
                 LEFT JOIN profile_states s ON s.profile_id = p.id
                 WHERE m.audience = $1 AND m.profile_id > $2 ORDER BY m.profile_id LIMIT $3",
                &[&audience, &after, &(limit as i64)],
            )
            .await?;
        with_ledgers(&client, rows.iter().map(stored_profile_from_row).collect()).await
    }

    async fn audience_sizes(&self) -> Result<Vec<(String, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT audience, count(*) FROM audience_members GROUP BY audience ORDER BY audience",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn working_set(
        &self,
        identifiers: Vec<(String, String)>,
        ids: Vec<i64>,
    ) -> Result<ProfileRows> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let types: Vec<&str> = identifiers.iter().map(|(t, _)| t.as_str()).collect();
        let values: Vec<&str> = identifiers.iter().map(|(_, v)| v.as_str()).collect();
        let wanted: Vec<i64> = tx
            .query(
                "SELECT DISTINCT i.profile_id FROM profile_identifiers i
                 JOIN unnest($1::text[], $2::text[]) AS x(t, v) ON i.id_type = x.t AND i.value = x.v
                 UNION SELECT unnest($3::bigint[]) ORDER BY 1",
                &[&types, &values, &ids],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut rows = ProfileRows::default();
        for r in tx
            .query(
                "SELECT p.id, p.doc, s.state FROM profiles p
                 LEFT JOIN profile_states s ON s.profile_id = p.id
                 WHERE p.id = ANY($1) ORDER BY p.id",
                &[&wanted],
            )
            .await?
        {
            let profile = stored_profile_from_row(&r);
            rows.states
                .extend(profile.states.map(|state| (profile.id, state)));
            rows.profiles.push((profile.id, profile.doc));
        }
        rows.identifiers = tx
            .query(
                "SELECT id_type, value, profile_id, shared, seen_with FROM profile_identifiers
                 WHERE profile_id = ANY($1)",
                &[&wanted],
            )
            .await?
            .iter()
            .map(identifier_from_row)
            .collect();
        rows.consent = ledgers_of(&tx, &wanted).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn due_timers(&self, through: i64, limit: usize) -> Result<Vec<(String, i64, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT audience, profile_id, due_at FROM profile_timers
                 WHERE due_at <= $1 ORDER BY due_at, profile_id, audience LIMIT $2",
                &[&through, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn stored_profile_events(
        &self,
        profile: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let client = self.client().await?;
        #[cfg(feature = "jetstream")]
        if let Some(stream) = &self.stream {
            let seqs: Vec<i64> = client
                .query(
                    "SELECT seq FROM profile_events WHERE profile_id = $1 AND seq < $2
                     ORDER BY seq DESC LIMIT $3",
                    &[&profile, &before, &(limit as i64)],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            return stream.events_at(&seqs).await;
        }
        let rows = client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS}
                     FROM profile_events p JOIN events e ON e.seq = p.seq
                     WHERE p.profile_id = $1 AND p.seq < $2 ORDER BY p.seq DESC LIMIT $3"
                ),
                &[&profile, &before, &(limit as i64)],
            )
            .await?;
        rows.iter().map(event_from_row).collect()
    }
}

#[async_trait]
impl LinkReviews for PostgresStore {
    // ---- Record linkage: the clerical review queue ----

    async fn add_link_reviews(&self, reviews: Vec<NewLinkReview>) -> Result<Vec<Option<i64>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare(
                "INSERT INTO link_reviews (pair_key, origin, left_id, right_id,
                     match_probability, evidence, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (pair_key) DO NOTHING RETURNING id",
            )
            .await?;
        let now = sightline_core::time::now_ms();
        let mut ids = Vec::with_capacity(reviews.len());
        for r in &reviews {
            let row = tx
                .query_opt(
                    &insert,
                    &[
                        &crate::reviews::pair_key(&r.left, &r.right),
                        &r.origin,
                        &r.left,
                        &r.right,
                        &r.match_probability,
                        &r.evidence,
                        &now,
                    ],
                )
                .await?;
            ids.push(row.map(|r| r.get(0)));
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn link_reviews(
        &self,
        status: Option<ReviewStatus>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LinkReview>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {REVIEW_COLUMNS} FROM link_reviews
                     WHERE id > $1 AND ($2::TEXT IS NULL OR status = $2) ORDER BY id LIMIT $3"
                ),
                &[&after, &status.map(ReviewStatus::as_str), &(limit as i64)],
            )
            .await?;
        rows.iter().map(review_from_row).collect()
    }

    async fn link_review(&self, id: i64) -> Result<Option<LinkReview>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {REVIEW_COLUMNS} FROM link_reviews WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(review_from_row).transpose()
    }

    async fn decide_link_review(
        &self,
        id: i64,
        status: ReviewStatus,
        seq: Option<i64>,
    ) -> Result<LinkReview> {
        let client = self.client().await?;
        let decided = client
            .query_opt(
                &format!(
                    "UPDATE link_reviews SET status = $2, decided_at = $3, seq = $4
                     WHERE id = $1 AND status = 'pending' RETURNING {REVIEW_COLUMNS}"
                ),
                &[&id, &status.as_str(), &sightline_core::time::now_ms(), &seq],
            )
            .await?;
        match decided {
            Some(row) => review_from_row(&row),
            None => {
                let found = self.link_review(id).await?;
                Err(crate::reviews::review_undecidable(id, found.as_ref()))
            }
        }
    }
}

/// `id_type, value, profile_id, shared, seen_with`.
fn identifier_from_row(r: &Row) -> IdentifierRow {
    IdentifierRow {
        id_type: r.get(0),
        value: r.get(1),
        profile: r.get(2),
        shared: r.get(3),
        seen_with: r.get(4),
    }
}

fn stored_profile_from_row(r: &Row) -> StoredProfile {
    StoredProfile {
        id: r.get(0),
        doc: r.get(1),
        states: r.get(2),
        consent: Vec::new(),
    }
}

/// The consent ledger entries `(profile, seq, JSON)` of these profiles, in seq order.
async fn ledgers_of(
    client: &impl deadpool_postgres::GenericClient,
    profiles: &[i64],
) -> Result<Vec<(i64, i64, String)>> {
    Ok(client
        .query(
            "SELECT profile_id, seq, change FROM consent_changes
             WHERE profile_id = ANY($1) ORDER BY profile_id, seq",
            &[&profiles],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// A read-only transaction that sees one snapshot throughout.
async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}

/// Stored profiles read by `stored_profile_from_row`, with their consent ledgers.
async fn with_ledgers(
    client: &impl deadpool_postgres::GenericClient,
    mut profiles: Vec<StoredProfile>,
) -> Result<Vec<StoredProfile>> {
    let ids: Vec<i64> = profiles.iter().map(|p| p.id).collect();
    let places: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    for (profile, _, change) in ledgers_of(client, &ids).await? {
        if let Some(&at) = places.get(&profile) {
            profiles[at].consent.push(change);
        }
    }
    Ok(profiles)
}

async fn profiles_state(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Option<ProfilesState>, tokio_postgres::Error> {
    let row = client
        .query_opt("SELECT seq, rules, definitions FROM profiles_state", &[])
        .await?;
    Ok(row.map(|r| ProfilesState {
        seq: r.get(0),
        rules: r.get(1),
        definitions: r.get(2),
    }))
}
