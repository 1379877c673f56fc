//! The governance registry on PostgreSQL (see `crate::govern`).

use super::PostgresStore;
use crate::govern::{
    refuse, NewTagLogEntry, RecordKind, RecordWrite, ScanRow, StoredRecord, SCREENSHOT_SCANS_KEPT,
};
use crate::{columns, Governance, Result, TagLogRow};
use async_trait::async_trait;
use tokio_postgres::{GenericClient, Row};

fn record_from_row(row: &Row) -> StoredRecord {
    StoredRecord {
        id: row.get(0),
        key: row.get(1),
        version: row.get(2),
        doc: row.get(3),
        updated_at: row.get(4),
    }
}

fn scan_from_row(row: &Row) -> ScanRow {
    ScanRow {
        id: row.get(0),
        journey: row.get(1),
        at: row.get(2),
        summary: columns::parse_object(row.get(3)),
    }
}

const RECORD_COLUMNS: &str = "id, key, version, doc, updated_at";

async fn find(
    client: &impl GenericClient,
    kind: RecordKind,
    key: &str,
) -> Result<Option<StoredRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM {} WHERE key = $1",
        kind.table()
    );
    Ok(client
        .query_opt(&sql, &[&key])
        .await?
        .as_ref()
        .map(record_from_row))
}

/// One write inside a transaction, with the same rules as SQLite's.
async fn write(tx: &impl GenericClient, kind: RecordKind, w: &RecordWrite) -> Result<StoredRecord> {
    let table = kind.table();
    let now = sightline_core::time::now_ms();
    match w.version {
        None => {
            let sql = format!(
                "INSERT INTO {table} (key, version, doc, updated_at) VALUES ($1, 1, $2, $3)
                 ON CONFLICT (key) DO NOTHING RETURNING {RECORD_COLUMNS}"
            );
            tx.query_opt(&sql, &[&w.key, &w.doc, &now])
                .await?
                .as_ref()
                .map(record_from_row)
                .ok_or_else(|| refuse::taken(kind, &w.key))
        }
        Some(version) => {
            let sql = format!(
                "UPDATE {table} SET version = version + 1, doc = $3, updated_at = $4
                 WHERE key = $1 AND version = $2 RETURNING {RECORD_COLUMNS}"
            );
            match tx
                .query_opt(&sql, &[&w.key, &version, &w.doc, &now])
                .await?
            {
                Some(row) => Ok(record_from_row(&row)),
                None => Err(find(tx, kind, &w.key).await?.map_or_else(
                    || refuse::missing_key(kind, &w.key),
                    |_| refuse::moved(kind, &w.key, version),
                )),
            }
        }
    }
}

#[async_trait]
impl Governance for PostgresStore {
    async fn save_scan(
        &self,
        journey: &str,
        summary: &serde_json::Value,
        report: &str,
        screenshots: &[(String, Vec<u8>)],
    ) -> Result<ScanRow> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = scan_from_row(
            &tx.query_one(
                "INSERT INTO scans (journey, at, summary, report) VALUES ($1, $2, $3, $4)
                 RETURNING id, journey, at, summary",
                &[
                    &journey,
                    &sightline_core::time::now_ms(),
                    &summary.to_string(),
                    &report,
                ],
            )
            .await?,
        );
        let insert = tx
            .prepare("INSERT INTO scan_screenshots (scan_id, path, image) VALUES ($1, $2, $3)")
            .await?;
        for (path, image) in screenshots {
            tx.execute(&insert, &[&row.id, path, image]).await?;
        }
        tx.execute(
            "DELETE FROM scan_screenshots WHERE scan_id IN (
                 SELECT id FROM scans WHERE journey = $1 ORDER BY id DESC OFFSET $2)",
            &[&journey, &SCREENSHOT_SCANS_KEPT],
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn scan_screenshot(&self, id: i64, path: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT image FROM scan_screenshots WHERE scan_id = $1 AND path = $2",
                &[&id, &path],
            )
            .await?
            .map(|row| row.get(0)))
    }

    async fn scans(&self, journey: Option<&str>) -> Result<Vec<ScanRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, journey, at, summary FROM scans
                 WHERE $1::TEXT IS NULL OR journey = $1 ORDER BY id",
                &[&journey],
            )
            .await?;
        Ok(rows.iter().map(scan_from_row).collect())
    }

    async fn scan(&self, id: i64) -> Result<Option<ScanRow>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT id, journey, at, summary FROM scans WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|row| scan_from_row(&row)))
    }

    async fn scan_report(&self, id: i64) -> Result<Option<String>> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT report FROM scans WHERE id = $1", &[&id])
            .await?
            .map(|row| row.get(0)))
    }

    async fn scan_screenshot_paths(&self, id: i64) -> Result<Vec<String>> {
        let client = self.client().await?;
        Ok(client
            .query(
                "SELECT path FROM scan_screenshots WHERE scan_id = $1 ORDER BY path",
                &[&id],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    async fn records(&self, kind: RecordKind) -> Result<Vec<StoredRecord>> {
        let client = self.client().await?;
        let sql = format!("SELECT {RECORD_COLUMNS} FROM {} ORDER BY id", kind.table());
        Ok(client
            .query(&sql, &[])
            .await?
            .iter()
            .map(record_from_row)
            .collect())
    }

    async fn record(&self, kind: RecordKind, key: &str) -> Result<Option<StoredRecord>> {
        let client = self.client().await?;
        find(&**client, kind, key).await
    }

    async fn record_by_id(&self, kind: RecordKind, id: i64) -> Result<Option<StoredRecord>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM {} WHERE id = $1",
            kind.table()
        );
        Ok(client
            .query_opt(&sql, &[&id])
            .await?
            .as_ref()
            .map(record_from_row))
    }

    async fn write_records(
        &self,
        kind: RecordKind,
        writes: Vec<RecordWrite>,
    ) -> Result<Vec<StoredRecord>> {
        if kind == RecordKind::Tag {
            return Err(refuse::tags_need_the_log());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut written = Vec::with_capacity(writes.len());
        for w in &writes {
            written.push(write(&*tx, kind, w).await?);
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn delete_record(&self, kind: RecordKind, id: i64, version: i64) -> Result<()> {
        if kind == RecordKind::Tag {
            return Err(refuse::tags_need_the_log());
        }
        let table = kind.table();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let current = tx
            .query_opt(
                &format!("SELECT key, version FROM {table} WHERE id = $1 FOR UPDATE"),
                &[&id],
            )
            .await?;
        match current {
            None => return Err(refuse::missing_id(kind, id)),
            Some(row) if row.get::<_, i64>(1) != version => {
                return Err(refuse::moved(kind, row.get(0), version))
            }
            Some(_) => {}
        }
        tx.execute(&format!("DELETE FROM {table} WHERE id = $1"), &[&id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_token_name(&self, token_id: i64, name: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO token_names (token_id, name) VALUES ($1, $2)
                 ON CONFLICT (token_id) DO UPDATE SET name = EXCLUDED.name",
                &[&token_id, &name],
            )
            .await?;
        Ok(())
    }

    async fn token_name(&self, token_id: i64) -> Result<Option<String>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT name FROM token_names WHERE token_id = $1",
                &[&token_id],
            )
            .await?
            .map(|row| row.get(0)))
    }

    async fn write_tag(&self, w: RecordWrite, entry: NewTagLogEntry) -> Result<StoredRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let tag = write(&*tx, RecordKind::Tag, &w).await?;
        tx.execute(
            "INSERT INTO gov_tag_changes (tag_id, at, actor, action, entry)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &tag.id,
                &entry.at,
                &entry.actor,
                &entry.action,
                &entry.entry,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(tag)
    }

    async fn tag_log(
        &self,
        tag_id: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<TagLogRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, tag_id, at, actor, action, entry FROM gov_tag_changes
                 WHERE ($1::BIGINT IS NULL OR tag_id = $1) AND id > $2 ORDER BY id LIMIT $3",
                &[&tag_id, &after, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| TagLogRow {
                id: r.get(0),
                tag_id: r.get(1),
                at: r.get(2),
                actor: r.get(3),
                action: r.get(4),
                entry: r.get(5),
            })
            .collect())
    }
}
