//! `sightline serve`: opens the store, creates the first source and token on an empty
//! store, and serves the tracking API, the admin API and the operational endpoints, and
//! delivers to destinations from the log, until SIGINT/SIGTERM; then it drains in-flight
//! requests (deliveries resume from their checkpoints on the next start).

use crate::cli::{self, ServeArgs};
use crate::config::{self, FileConfig};
use anyhow::{Context, Result};
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use sightline_collect::{Collector, Settings};
use sightline_core::Role;
use sightline_store::Store;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub async fn run(args: ServeArgs, file: &FileConfig) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let dedup_window = args
        .dedup_window
        .or_else(|| file.dedup_window.clone())
        .unwrap_or_else(|| "24h".into());
    let dedup_window = config::parse_duration("dedup window", &dedup_window)?;
    let listen = args
        .listen
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| config::DEFAULT_LISTEN.into());

    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("sightline_http_request_duration_seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Prefix("sightline_commit_batch".into()),
            &[
                1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 20000.0,
            ],
        )?
        .install_recorder()
        .context("cannot install the metrics recorder")?;

    let store = args.store.open(file).await?;
    bootstrap(store.as_ref()).await?;
    metrics::gauge!("sightline_log_last_seq").set(store.last_seq().await? as f64);

    let defaults = Settings::default();
    let collector = Collector::new(
        store.clone(),
        Settings {
            dedup_window,
            max_in_flight: args
                .max_in_flight
                .or(file.max_in_flight)
                .unwrap_or(defaults.max_in_flight),
            ..defaults
        },
    );
    let rules = file.profile_rules()?;
    let policy = rules.policy.clone();
    let webhook = file.webhook()?;
    let book = Arc::new(RwLock::new(
        crate::profiles::open(store.as_ref(), rules).await?,
    ));
    let (changes, to_sync) = tokio::sync::mpsc::channel(10_000);
    tokio::spawn(crate::profiles::follow(
        store.clone(),
        book.clone(),
        changes,
    ));
    tokio::spawn(
        crate::sync::Syncer::new(store.clone(), book.clone(), policy.clone(), webhook.clone())
            .run(to_sync),
    );
    let deliverer = sightline_activate::Deliverer::new(
        store.clone(),
        policy.clone(),
        Some(Arc::new(crate::profiles::BookLedger(book.clone()))),
        webhook,
        sightline_activate::Settings::default(),
    );
    let app = sightline_collect::router(collector)
        .merge(crate::api::router(
            store.clone(),
            prometheus,
            book.clone(),
            deliverer.clone(),
        ))
        .layer(middleware::from_fn(time_request));

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is another server using it?"))?;
    eprintln!("sightline listening on http://{}", listener.local_addr()?);
    tokio::spawn(deliverer.run());
    tokio::spawn(crate::metrics::refresh_forever(
        store.clone(),
        Duration::from_secs(30),
    ));
    tokio::spawn(sightline_collect::prune_dedup_forever(
        store.clone(),
        dedup_window,
        Duration::from_secs(600),
    ));
    sightline_collect::serve(listener, app, shutdown_signal())
        .await
        .context("the server stopped with an error")?;
    tracing::info!("stopped; in-flight requests were answered");
    Ok(())
}

/// On a store with no sources and no tokens: the `default` source and an admin token,
/// printed this once.
async fn bootstrap(store: &dyn Store) -> Result<()> {
    if !store.is_empty().await? {
        return Ok(());
    }
    let (source, write_key) = cli::add_source(store, "default").await?;
    let (_, token) = cli::create_token(store, Role::Admin).await?;
    println!(
        "First start on an empty store. These secrets are shown only this once:\n  \
         source {:?} write key: {write_key}\n  admin API token:      {token}",
        source.name
    );
    Ok(())
}

async fn time_request(request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        "sightline_http_request_duration_seconds",
        "path" => path,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
