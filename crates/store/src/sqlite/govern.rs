//! The governance registry on SQLite (see `crate::govern`).

use super::SqliteStore;
use crate::govern::{
    refuse, NewTagLogEntry, RecordKind, RecordWrite, ScanRow, StoredRecord, SCREENSHOT_SCANS_KEPT,
};
use crate::{columns, Governance, Result, TagLogRow};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        id: row.get(0)?,
        key: row.get(1)?,
        version: row.get(2)?,
        doc: row.get(3)?,
        updated_at: row.get(4)?,
    })
}

fn scan_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ScanRow> {
    Ok(ScanRow {
        id: row.get(0)?,
        journey: row.get(1)?,
        at: row.get(2)?,
        summary: columns::parse_object(&row.get::<_, String>(3)?),
    })
}

const RECORD_COLUMNS: &str = "id, key, version, doc, updated_at";

/// One write inside a transaction, with the same rules as PostgreSQL's.
fn write(tx: &Transaction<'_>, kind: RecordKind, w: &RecordWrite) -> Result<StoredRecord> {
    let table = kind.table();
    let now = sightline_core::time::now_ms();
    match w.version {
        None => tx
            .query_row(
                &format!(
                    "INSERT INTO {table} (key, version, doc, updated_at) VALUES (?1, 1, ?2, ?3)
                     ON CONFLICT (key) DO NOTHING RETURNING {RECORD_COLUMNS}"
                ),
                params![w.key, w.doc, now],
                record_from_row,
            )
            .optional()?
            .ok_or_else(|| refuse::taken(kind, &w.key)),
        Some(version) => {
            let updated = tx
                .query_row(
                    &format!(
                        "UPDATE {table} SET version = version + 1, doc = ?3, updated_at = ?4
                         WHERE key = ?1 AND version = ?2 RETURNING {RECORD_COLUMNS}"
                    ),
                    params![w.key, version, w.doc, now],
                    record_from_row,
                )
                .optional()?;
            match updated {
                Some(record) => Ok(record),
                None => Err(find(tx, kind, &w.key)?.map_or_else(
                    || refuse::missing_key(kind, &w.key),
                    |_| refuse::moved(kind, &w.key, version),
                )),
            }
        }
    }
}

fn find(conn: &Connection, kind: RecordKind, key: &str) -> Result<Option<StoredRecord>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM {} WHERE key = ?1",
                kind.table()
            ),
            [key],
            record_from_row,
        )
        .optional()?)
}

#[async_trait]
impl Governance for SqliteStore {
    async fn save_scan(
        &self,
        journey: &str,
        summary: &serde_json::Value,
        report: &str,
        screenshots: &[(String, Vec<u8>)],
    ) -> Result<ScanRow> {
        let (journey, summary, report) =
            (journey.to_string(), summary.to_string(), report.to_string());
        let screenshots = screenshots.to_vec();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let row = tx.query_row(
                "INSERT INTO scans (journey, at, summary, report) VALUES (?1, ?2, ?3, ?4)
                 RETURNING id, journey, at, summary",
                params![journey, sightline_core::time::now_ms(), summary, report],
                scan_from_row,
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO scan_screenshots (scan_id, path, image) VALUES (?1, ?2, ?3)",
            )?;
            for (path, image) in &screenshots {
                insert.execute(params![row.id, path, image])?;
            }
            drop(insert);
            tx.execute(
                "DELETE FROM scan_screenshots WHERE scan_id IN (
                     SELECT id FROM scans WHERE journey = ?1 ORDER BY id DESC LIMIT -1 OFFSET ?2)",
                params![journey, SCREENSHOT_SCANS_KEPT],
            )?;
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    async fn scan_screenshot(&self, id: i64, path: &str) -> Result<Option<Vec<u8>>> {
        let path = path.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT image FROM scan_screenshots WHERE scan_id = ?1 AND path = ?2",
                    params![id, path],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn scans(&self, journey: Option<&str>) -> Result<Vec<ScanRow>> {
        let journey = journey.map(str::to_string);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, journey, at, summary FROM scans
                 WHERE ?1 IS NULL OR journey = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([journey], scan_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn scan(&self, id: i64) -> Result<Option<ScanRow>> {
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, journey, at, summary FROM scans WHERE id = ?1",
                    [id],
                    scan_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn scan_report(&self, id: i64) -> Result<Option<String>> {
        self.with_conn(move |conn| {
            Ok(conn
                .query_row("SELECT report FROM scans WHERE id = ?1", [id], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn scan_screenshot_paths(&self, id: i64) -> Result<Vec<String>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT path FROM scan_screenshots WHERE scan_id = ?1 ORDER BY path",
            )?;
            let paths = stmt.query_map([id], |r| r.get(0))?;
            Ok(paths.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .await
    }

    async fn records(&self, kind: RecordKind) -> Result<Vec<StoredRecord>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM {} ORDER BY id",
                kind.table()
            ))?;
            let rows = stmt.query_map([], record_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn record(&self, kind: RecordKind, key: &str) -> Result<Option<StoredRecord>> {
        let key = key.to_string();
        self.with_conn(move |conn| find(conn, kind, &key)).await
    }

    async fn record_by_id(&self, kind: RecordKind, id: i64) -> Result<Option<StoredRecord>> {
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "SELECT {RECORD_COLUMNS} FROM {} WHERE id = ?1",
                        kind.table()
                    ),
                    [id],
                    record_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn write_records(
        &self,
        kind: RecordKind,
        writes: Vec<RecordWrite>,
    ) -> Result<Vec<StoredRecord>> {
        if kind == RecordKind::Tag {
            return Err(refuse::tags_need_the_log());
        }
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let written = writes
                .iter()
                .map(|w| write(&tx, kind, w))
                .collect::<Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(written)
        })
        .await
    }

    async fn delete_record(&self, kind: RecordKind, id: i64, version: i64) -> Result<()> {
        if kind == RecordKind::Tag {
            return Err(refuse::tags_need_the_log());
        }
        self.with_conn(move |conn| {
            let table = kind.table();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current: Option<(String, i64)> = tx
                .query_row(
                    &format!("SELECT key, version FROM {table} WHERE id = ?1"),
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match current {
                None => return Err(refuse::missing_id(kind, id)),
                Some((key, stored)) if stored != version => {
                    return Err(refuse::moved(kind, &key, version))
                }
                Some(_) => {}
            }
            tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn set_token_name(&self, token_id: i64, name: &str) -> Result<()> {
        let name = name.to_string();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO token_names (token_id, name) VALUES (?1, ?2)
                 ON CONFLICT (token_id) DO UPDATE SET name = excluded.name",
                params![token_id, name],
            )?;
            Ok(())
        })
        .await
    }

    async fn token_name(&self, token_id: i64) -> Result<Option<String>> {
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT name FROM token_names WHERE token_id = ?1",
                    [token_id],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn write_tag(&self, w: RecordWrite, entry: NewTagLogEntry) -> Result<StoredRecord> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let tag = write(&tx, RecordKind::Tag, &w)?;
            tx.execute(
                "INSERT INTO gov_tag_changes (tag_id, at, actor, action, entry)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tag.id, entry.at, entry.actor, entry.action, entry.entry],
            )?;
            tx.commit()?;
            Ok(tag)
        })
        .await
    }

    async fn tag_log(
        &self,
        tag_id: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<TagLogRow>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, tag_id, at, actor, action, entry FROM gov_tag_changes
                 WHERE (?1 IS NULL OR tag_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![tag_id, after, limit as i64], |r| {
                Ok(TagLogRow {
                    id: r.get(0)?,
                    tag_id: r.get(1)?,
                    at: r.get(2)?,
                    actor: r.get(3)?,
                    action: r.get(4)?,
                    entry: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
