//! Erasure on PostgreSQL (see `crate::erase`): one transaction deletes the person's events,
//! their dedup claims and every derived row, under the profiles lock so that no profile save
//! interleaves. No live row holds them afterwards (dead tuples are vacuumed as usual).

use super::cluster::{store_now, NOW};
use super::{PostgresStore, PROFILES_LOCK, PROFILE_ERASURES};
use crate::erase::{
    new_secret, DeletionRequest, Erased, ErasedCounts, Erasure, ErasureTarget, FORGET_SUPPRESSION,
    LINK_REVIEWS,
};
use crate::Result;
use async_trait::async_trait;

/// The migration that creates erasure's tables (its place in `MIGRATIONS` is in
/// `postgres.rs`).
pub(super) const MIGRATION: &str = "CREATE TABLE privacy_secret (
        id INT PRIMARY KEY CHECK (id = 1),
        secret TEXT NOT NULL
     );
     CREATE TABLE erasures (
        id TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        receipt TEXT NOT NULL
     );
     CREATE TABLE suppressed_identifiers (
        hash TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        created_at BIGINT NOT NULL
     );
     CREATE TABLE log_erased (
        id INT PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL
     );";

/// `(table, statement)`: `$1` the profile ids (BIGINT[]), `$2` their text form, `$3` the
/// seqs, `$4` the identifier types and `$5` values (aligned), `$6` the `type:value` names,
/// `$7` and `$8` the kept profiles' `(profile id, seq)` entries (aligned). The dedup claims
/// go before the events they are computed from. Timelines and consent entries go by key,
/// never by seq alone (no index has seq first).
const DELETES: [(&str, &str); 15] = [
    (
        "dedup",
        "DELETE FROM dedup WHERE key IN (
            SELECT substring(sha256(int8send(source_id) || convert_to(message_id, 'UTF8')) FROM 1 FOR 16)
            FROM events WHERE seq = ANY($3))",
    ),
    ("events", "DELETE FROM events WHERE seq = ANY($3)"),
    ("profiles", "DELETE FROM profiles WHERE id = ANY($1)"),
    (
        "profile_identifiers",
        "DELETE FROM profile_identifiers WHERE profile_id = ANY($1)
            OR (id_type, value) IN (SELECT * FROM unnest($4::text[], $5::text[]))",
    ),
    (
        "profile_events",
        "DELETE FROM profile_events WHERE profile_id = ANY($1)",
    ),
    (
        "profile_events",
        "DELETE FROM profile_events
            WHERE (profile_id, seq) IN (SELECT * FROM unnest($7::bigint[], $8::bigint[]))",
    ),
    (
        "consent_changes",
        "DELETE FROM consent_changes
            WHERE (profile_id, seq) IN (SELECT * FROM unnest($7::bigint[], $8::bigint[]))",
    ),
    (
        "profile_states",
        "DELETE FROM profile_states WHERE profile_id = ANY($1)",
    ),
    (
        "profile_merges",
        "DELETE FROM profile_merges WHERE retired = ANY($1) OR survivor = ANY($1)",
    ),
    (
        "consent_changes",
        "DELETE FROM consent_changes WHERE profile_id = ANY($1)",
    ),
    (
        "audience_members",
        "DELETE FROM audience_members WHERE profile_id = ANY($1)",
    ),
    (
        "profile_timers",
        "DELETE FROM profile_timers WHERE profile_id = ANY($1)",
    ),
    (
        "audience_changes",
        // The terms of the partial index `audience_changes_by_profile` (migration 28).
        "DELETE FROM audience_changes WHERE change LIKE '{%' AND (change::jsonb ->> 'profile') = ANY($2)",
    ),
    // Keyed by destination and seq (a deleted destination's rows went with it): through
    // that key, not a scan of every delivery.
    (
        "deliveries",
        "DELETE FROM deliveries WHERE destination_id IN (SELECT id FROM destinations)
            AND seq = ANY($3)",
    ),
    (
        LINK_REVIEWS,
        "DELETE FROM link_reviews WHERE left_id = ANY($6) OR right_id = ANY($6)",
    ),
];

#[async_trait]
impl Erasure for PostgresStore {
    async fn erase(&self, mut target: ErasureTarget) -> Result<Erased> {
        let names = target.profile_names();
        let identifier_names = target.identifier_names();
        let (types, values): (Vec<String>, Vec<String>) =
            target.identifiers.iter().cloned().unzip();
        let (kept_profiles, kept_seqs): (Vec<i64>, Vec<i64>) =
            target.kept_profile_events.iter().copied().unzip();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PROFILES_LOCK])
            .await?;
        let timelines = tx
            .query(
                "SELECT seq FROM profile_events WHERE profile_id = ANY($1)",
                &[&target.profiles],
            )
            .await?;
        target.add_seqs(timelines.iter().map(|row| row.get(0)));
        let profile_erasures: i64 = match target.profiles.is_empty() {
            true => tx.query_one(PROFILE_ERASURES, &[]).await?.get(0),
            false => tx
                .query_one(
                    "UPDATE profile_erasures SET count = count + 1 WHERE id = 1 RETURNING count",
                    &[],
                )
                .await?
                .get(0),
        };
        // The log's end stays where it was when its last events go (see `last_seq`).
        tx.execute(
            "INSERT INTO log_erased (id, seq)
             SELECT 1, MAX(seq) FROM events WHERE seq = ANY($1) HAVING MAX(seq) IS NOT NULL
             ON CONFLICT (id) DO UPDATE SET seq = GREATEST(log_erased.seq, excluded.seq)",
            &[&target.seqs],
        )
        .await?;
        let mut counts = ErasedCounts::new();
        for (table, sql) in DELETES {
            // Each statement names only the parameters it uses; the rest are bound unused
            // through a statement-level `WITH` that PostgreSQL ignores.
            let statement = format!(
                "WITH unused AS (SELECT $1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) {sql}"
            );
            let deleted = tx
                .execute(
                    statement.as_str(),
                    &[
                        &target.profiles,
                        &names,
                        &target.seqs,
                        &types,
                        &values,
                        &identifier_names,
                        &kept_profiles,
                        &kept_seqs,
                    ],
                )
                .await?;
            *counts.entry(table.to_owned()).or_default() += deleted;
        }
        // With the log on JetStream, the claims are found from the events in the stream,
        // and the events deleted from it once the derived rows are gone.
        #[cfg(feature = "jetstream")]
        if let Some(stream) = &self.stream {
            let keys = stream.keys_of(&target.seqs).await?;
            let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
            let claims = tx
                .execute("DELETE FROM dedup WHERE key = ANY($1)", &[&keys])
                .await?;
            counts.insert("dedup".to_owned(), claims);
            tx.commit().await?;
            counts.insert("events".to_owned(), stream.delete(&target.seqs).await?);
            return Ok(Erased {
                counts,
                profile_erasures,
            });
        }
        tx.commit().await?;
        Ok(Erased {
            counts,
            profile_erasures,
        })
    }

    async fn profile_erasures(&self) -> Result<i64> {
        let client = self.client().await?;
        Ok(client.query_one(PROFILE_ERASURES, &[]).await?.get(0))
    }

    async fn privacy_secret(&self) -> Result<String> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO privacy_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&new_secret()],
            )
            .await?;
        Ok(client
            .query_one("SELECT secret FROM privacy_secret WHERE id = 1", &[])
            .await?
            .get(0))
    }

    async fn save_erasure(&self, id: &str, at: i64, receipt: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO erasures (id, created_at, receipt) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET receipt = excluded.receipt",
                &[&id, &at, &receipt],
            )
            .await?;
        Ok(())
    }

    async fn erasure(&self, id: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT receipt FROM erasures WHERE id = $1", &[&id])
            .await?
            .map(|row| row.get(0)))
    }

    async fn erasures(&self, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT receipt FROM erasures ORDER BY created_at DESC, id DESC LIMIT $1",
                &[&limit],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    async fn suppress(&self, entries: Vec<(String, String)>) -> Result<()> {
        let (hashes, modes): (Vec<String>, Vec<String>) = entries.into_iter().unzip();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO suppressed_identifiers (hash, mode, created_at)
                 SELECT h, m, $3 FROM unnest($1::text[], $2::text[]) AS t (h, m)
                 ON CONFLICT (hash) DO UPDATE SET mode = excluded.mode",
                &[&hashes, &modes, &sightline_core::time::now_ms()],
            )
            .await?;
        Ok(())
    }

    async fn suppressed(&self) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT hash, mode FROM suppressed_identifiers ORDER BY hash",
                &[],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    async fn suppression_in_force(&self, node: &str, entries: i64) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO suppression_in_force (node, entries, seen_at) VALUES ($1, $2, {NOW})
                     ON CONFLICT (node) DO UPDATE SET entries = excluded.entries, seen_at = excluded.seen_at"
                ),
                &[&node, &entries],
            )
            .await?;
        client
            .execute(
                &format!("DELETE FROM suppression_in_force WHERE seen_at < {NOW} - $1"),
                &[&FORGET_SUPPRESSION],
            )
            .await?;
        Ok(())
    }

    async fn forget_suppression_node(&self, node: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM suppression_in_force WHERE node = $1", &[&node])
            .await?;
        Ok(())
    }

    async fn suppression_nodes(&self) -> Result<(i64, Vec<(String, i64, i64)>)> {
        let client = self.client().await?;
        let now = store_now(&client).await?;
        let nodes = client
            .query(
                "SELECT node, entries, seen_at FROM suppression_in_force",
                &[],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        Ok((now, nodes))
    }

    async fn save_deletion_request(&self, request: &DeletionRequest) -> Result<()> {
        let r = request;
        self.client()
            .await?
            .execute(
                "INSERT INTO deletion_requests
                    (erasure_id, destination, body, attempts, next_at, status, outcome)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (erasure_id, destination) DO UPDATE SET body = excluded.body, attempts = excluded.attempts,
                    next_at = excluded.next_at, status = excluded.status, outcome = excluded.outcome",
                &[&r.erasure_id, &r.destination, &r.body, &r.attempts, &r.next_at, &r.status, &r.outcome],
            )
            .await?;
        Ok(())
    }

    async fn due_deletion_requests(&self, now: i64, limit: usize) -> Result<Vec<DeletionRequest>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {DELETION_COLUMNS} FROM deletion_requests
                     WHERE status = 'queued' AND next_at <= $1 ORDER BY next_at LIMIT $2"
                ),
                &[&now, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(deletion_from_row).collect())
    }

    async fn deletion_requests(&self, erasure_id: &str) -> Result<Vec<DeletionRequest>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {DELETION_COLUMNS} FROM deletion_requests
                     WHERE erasure_id = $1 ORDER BY destination"
                ),
                &[&erasure_id],
            )
            .await?;
        Ok(rows.iter().map(deletion_from_row).collect())
    }
}

const DELETION_COLUMNS: &str = "erasure_id, destination, body, attempts, next_at, status, outcome";

fn deletion_from_row(row: &tokio_postgres::Row) -> DeletionRequest {
    DeletionRequest {
        erasure_id: row.get(0),
        destination: row.get(1),
        body: row.get(2),
        attempts: row.get(3),
        next_at: row.get(4),
        status: row.get(5),
        outcome: row.get(6),
    }
}
