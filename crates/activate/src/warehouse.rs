//! Writing a warehouse destination's batches into PostgreSQL. IO; the rows, the tables'
//! changes and the SQL are `vendor::warehouse`'s.
//!
//! A batch is one transaction: its tables are created or evolved, then its rows inserted,
//! so a batch is either wholly in the warehouse or not at all, and loading it again adds
//! nothing (rows are keyed by messageId). A batch the database refuses (a value it will not
//! take) is loaded again one event at a time, so that only the events it refuses become
//! dead letters.
//!
//! One connection per destination (its worker sends one batch at a time), kept with the
//! columns of the schema's tables as last read; a failure that may have left that view
//! stale (a lost connection, a table dropped behind our back) drops both, and the retry
//! reads the schema again.

use crate::answer::Answer;
use crate::vendor::warehouse::{self, ColumnType, Columns, Row, Statement, Tls};
use crate::vendor::Vendor;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;
use sightline_core::Destination;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

/// The longest one batch may take, its tables' changes included.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Loader {
    connect_timeout: Duration,
    connections: std::sync::Mutex<HashMap<i64, Arc<Mutex<Option<Connection>>>>>,
}

struct Connection {
    client: tokio_postgres::Client,
    /// The URL, credential and schema it was made for: a destination changed since then
    /// connects again.
    target: (String, String, String),
    tables: BTreeMap<String, Columns>,
}

/// A failure while loading, classified.
struct Failure {
    /// Worth trying again (after reading the schema again).
    retry: bool,
    reason: String,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        let Some(db) = error.as_db_error() else {
            // No answer from the database: the connection, a timeout, a protocol error.
            return Failure {
                retry: true,
                reason: format!("the warehouse connection failed: {error}"),
            };
        };
        let code = db.code();
        let class = &code.code()[..2];
        // A refused login or missing privilege holds the destination, as a vendor's refused
        // token does, until the credential or the grants are fixed: nothing is lost.
        let retry = matches!(class, "08" | "28" | "40" | "53" | "55" | "57" | "58" | "XX")
            || *code == SqlState::INSUFFICIENT_PRIVILEGE
            || *code == SqlState::UNDEFINED_TABLE
            || *code == SqlState::UNDEFINED_COLUMN;
        let hint = match class {
            "28" => " (check the destination's URL and credential)",
            "42" if *code == SqlState::INSUFFICIENT_PRIVILEGE => {
                " (the user needs CREATE on the database or schema, and to own its tables)"
            }
            _ => "",
        };
        Failure {
            retry,
            reason: format!("PostgreSQL {}: {}{hint}", code.code(), db.message()),
        }
    }
}

impl Loader {
    pub fn new(connect_timeout: Duration) -> Loader {
        Loader {
            connect_timeout,
            connections: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Loads a batch: `events` are each event's rows, in log order. Accepted when all are
    /// in; Partial when the database refused some events (their indexes in `events`).
    pub async fn load(
        &self,
        destination: &Destination,
        settings: &warehouse::Settings,
        events: &[Vec<Row>],
    ) -> Answer {
        let slot = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(destination.id)
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        let all: Vec<Row> = events.iter().flatten().cloned().collect();
        let failure = match self.load_rows(&mut slot, destination, settings, all).await {
            Ok(()) => return Answer::Accepted { code: 200 },
            Err(failure) => failure,
        };
        if failure.retry {
            *slot = None;
            return Answer::Retry {
                code: None,
                wait: None,
                reason: failure.reason,
            };
        }
        if events.len() == 1 {
            return Answer::Refused {
                code: None,
                reason: failure.reason,
            };
        }
        // Find the events the database refuses, loading the rest.
        let mut refused = Vec::new();
        for (index, rows) in events.iter().enumerate() {
            match self
                .load_rows(&mut slot, destination, settings, rows.clone())
                .await
            {
                Ok(()) => {}
                Err(failure) if failure.retry => {
                    *slot = None;
                    // What loaded stays loaded (a retry skips it by messageId).
                    return Answer::Retry {
                        code: None,
                        wait: None,
                        reason: failure.reason,
                    };
                }
                Err(failure) => refused.push((index, failure.reason)),
            }
        }
        if refused.len() == events.len() {
            return Answer::Refused {
                code: None,
                reason: failure.reason,
            };
        }
        Answer::Partial { code: 200, refused }
    }

    async fn load_rows(
        &self,
        slot: &mut Option<Connection>,
        destination: &Destination,
        settings: &warehouse::Settings,
        rows: Vec<Row>,
    ) -> Result<(), Failure> {
        let target = (
            destination.url.clone(),
            destination.signing_secret.clone(),
            settings.schema.clone(),
        );
        let mut connection = match slot.take() {
            Some(connection) if connection.target == target => connection,
            _ => connect(destination, target, self.connect_timeout).await?,
        };
        let written =
            tokio::time::timeout(LOAD_TIMEOUT, write(&mut connection, &settings.schema, rows))
                .await
                .unwrap_or_else(|_| {
                    Err(Failure {
                        retry: true,
                        reason: format!(
                            "the warehouse did not finish the batch within {}s",
                            LOAD_TIMEOUT.as_secs()
                        ),
                    })
                });
        *slot = Some(connection);
        written
    }
}

/// Connects, creates the schema if it is missing and reads its tables' columns.
async fn connect(
    destination: &Destination,
    target: (String, String, String),
    connect_timeout: Duration,
) -> Result<Connection, Failure> {
    let refused = |reason: String| Failure {
        retry: false,
        reason,
    };
    let (url, tls) = warehouse::connection(&destination.url).map_err(refused)?;
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        refused(format!(
            "the destination's URL is not a PostgreSQL URL: {e}"
        ))
    })?;
    config
        .password(destination.signing_secret.as_bytes())
        .connect_timeout(connect_timeout)
        .application_name("sightline warehouse");
    let timed_out = || Failure {
        retry: true,
        reason: format!(
            "the warehouse did not answer within {}s",
            connect_timeout.as_secs()
        ),
    };
    let client = match tls {
        Tls::Off => {
            let (client, connection) = tokio::time::timeout(connect_timeout, config.connect(NoTls))
                .await
                .map_err(|_| timed_out())??;
            drive(&destination.name, connection);
            client
        }
        _ => {
            let connector = tls_connector(tls)
                .map_err(|e| refused(format!("TLS to the warehouse cannot be set up: {e}")))?;
            let (client, connection) =
                tokio::time::timeout(connect_timeout, config.connect(connector))
                    .await
                    .map_err(|_| timed_out())??;
            drive(&destination.name, connection);
            client
        }
    };
    let schema = &target.2;
    let exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[schema])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&warehouse::create_schema(schema))
            .await?;
    }
    let mut tables: BTreeMap<String, Columns> = BTreeMap::new();
    for row in client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = $1",
            &[schema],
        )
        .await?
    {
        let (table, column, data_type): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        tables
            .entry(table)
            .or_default()
            .insert(column, ColumnType::of_sql(&data_type));
    }
    Ok(Connection {
        client,
        target,
        tables,
    })
}

/// Removes a person from the destination's tables (see `vendor::warehouse::deletes`), in
/// one transaction: an erasure reaching the warehouse. `identifiers` are the person's
/// `(type, value)` pairs.
pub async fn erase(
    destination: &Destination,
    identifiers: &[(String, String)],
    connect_timeout: Duration,
) -> Answer {
    let settings = match Vendor::of(destination.kind, &destination.settings) {
        Ok(Some(Vendor::Warehouse(settings))) => settings,
        _ => {
            return Answer::Refused {
                code: None,
                reason: "the destination is not a warehouse with readable settings".into(),
            }
        }
    };
    let target = (
        destination.url.clone(),
        destination.signing_secret.clone(),
        settings.schema.clone(),
    );
    let deleted = async {
        let mut connection = connect(destination, target, connect_timeout).await?;
        let transaction = connection.client.transaction().await?;
        for delete in warehouse::deletes(&settings.schema, &connection.tables, identifiers) {
            transaction.execute(&delete.sql, &params(&delete)).await?;
        }
        transaction.commit().await?;
        Ok::<_, Failure>(())
    };
    match tokio::time::timeout(LOAD_TIMEOUT, deleted).await {
        Ok(Ok(())) => Answer::Accepted { code: 200 },
        Ok(Err(failure)) if failure.retry => Answer::Retry {
            code: None,
            wait: None,
            reason: failure.reason,
        },
        Ok(Err(failure)) => Answer::Refused {
            code: None,
            reason: failure.reason,
        },
        Err(_) => Answer::Retry {
            code: None,
            wait: None,
            reason: format!(
                "the warehouse did not finish the deletes within {}s",
                LOAD_TIMEOUT.as_secs()
            ),
        },
    }
}

/// A statement's parameters as tokio-postgres takes them.
fn params(statement: &Statement) -> Vec<&(dyn ToSql + Sync)> {
    statement
        .params
        .iter()
        .map(|p| p as &(dyn ToSql + Sync))
        .collect()
}

/// Runs a connection's IO until it closes.
fn drive(
    destination: &str,
    connection: impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
) {
    let name = destination.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(destination = %name, error = %e, "warehouse connection closed");
        }
    });
}

/// OpenSSL for `sslmode` `prefer`/`require` (encrypted, the certificate not checked, as
/// libpq does), `verify-ca` (checked against the system's roots) and `verify-full` (and
/// the host name).
fn tls_connector(tls: Tls) -> Result<MakeTlsConnector, openssl::error::ErrorStack> {
    let mut builder = SslConnector::builder(SslMethod::tls())?;
    if tls == Tls::Unverified {
        builder.set_verify(SslVerifyMode::NONE);
    }
    let mut connector = MakeTlsConnector::new(builder.build());
    if tls != Tls::VerifyFull {
        connector.set_callback(|config, _| {
            config.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(connector)
}

/// One batch's rows in one transaction; the known columns change only once it commits.
async fn write(connection: &mut Connection, schema: &str, rows: Vec<Row>) -> Result<(), Failure> {
    let mut changed: Vec<(String, Columns)> = Vec::new();
    let transaction = connection.client.transaction().await?;
    for (table, rows) in warehouse::by_table(rows) {
        let known = connection.tables.get(&table);
        let change = warehouse::change(known, &rows);
        if !change.dropped.is_empty() {
            tracing::warn!(schema, table = %table, columns = ?change.dropped,
                limit = warehouse::MAX_COLUMNS,
                "the warehouse table has as many columns as it may: these are left out");
        }
        for statement in warehouse::ddl(schema, &table, known.is_some(), &change) {
            transaction.batch_execute(&statement).await?;
        }
        let mut columns = known.cloned().unwrap_or_default();
        columns.extend(change.add.iter().chain(&change.widen).cloned());
        if let Some(insert) = warehouse::insert(schema, &table, &columns, &rows) {
            let arrays: Vec<&(dyn ToSql + Sync)> = insert
                .columns
                .iter()
                .map(|c| c as &(dyn ToSql + Sync))
                .collect();
            transaction.execute(&insert.sql, &arrays).await?;
        }
        changed.push((table, columns));
    }
    transaction.commit().await?;
    connection.tables.extend(changed);
    Ok(())
}
