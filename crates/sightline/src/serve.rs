//! `sightline serve`: opens the store, creates the first source and token on an empty
//! store, and serves the tracking API, the admin API and the operational endpoints, and
//! runs the processors that follow the log (profiles, deliveries, audience sync, metrics,
//! dedup pruning) under one supervisor, until SIGINT/SIGTERM; then it drains in-flight
//! requests and lets each processor finish its step (they resume from their checkpoints on
//! the next start).

use crate::config::{self, FileConfig, StoreArgs};
use crate::http::MetricsAt;
use anyhow::{Context, Result};
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use clap::Args;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use sightline_collect::suppress::{Mode, Suppression};
use sightline_collect::{Collector, Settings};
use sightline_service::cluster::Membership;
use sightline_service::destinations::Deliveries;
use sightline_service::erase::{DeletionRetries, Suppress, Suppressor};
use sightline_service::events::DedupPruner;
use sightline_service::governance::metrics::Refresher;
use sightline_service::governance::schedule::{Configured, Scheduler};
use sightline_service::plans::PlanKeeper;
use sightline_service::processors::{self, Supervisor};
use sightline_service::profiles::{self, Follower, Ledger};
use sightline_service::retention::Retention;
use sightline_service::sources;
use sightline_service::sync::Syncer;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the processors get to finish the step they are in at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on [default: 127.0.0.1:8088]; port 0 picks a free port.
    #[arg(long, env = "SIGHTLINE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Serve /metrics (and /readyz, /healthz) without a token on this address of its own,
    /// meant for a private interface (e.g. 127.0.0.1:9090); the main listener then no longer
    /// serves /metrics. Without it, /metrics on the main listener needs an API token whose
    /// role may read it (`sightline token create --role metrics`).
    #[arg(long, env = "SIGHTLINE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// A (source, messageId) seen within this window is dropped as a duplicate [default: 24h].
    #[arg(long, env = "SIGHTLINE_DEDUP_WINDOW", value_name = "DURATION")]
    pub dedup_window: Option<String>,
    /// Tracking requests handled at once; more get 429 with Retry-After [default: 256].
    #[arg(long, env = "SIGHTLINE_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Profiles the profiles processor holds in memory; the rest are read from the store
    /// as events need them [default: 100000].
    #[arg(long, env = "SIGHTLINE_PROFILE_CACHE", value_name = "N")]
    pub profile_cache: Option<usize>,
    /// This node's name among several sharing the log (--log-url) [default: the host name
    /// and a random suffix, new at every start].
    #[arg(long, env = "SIGHTLINE_NODE_ID", value_name = "NAME")]
    pub node_id: Option<String>,
}

/// `RUST_LOG`, else `info`. chromiumoxide warns of every DevTools message newer than its
/// protocol definitions (many per scanned page with Debian's Chromium) and skips it
/// harmlessly, so those warnings stay out unless `RUST_LOG` names chromiumoxide.
fn log_filter() -> Result<tracing_subscriber::EnvFilter> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let named = std::env::var("RUST_LOG").is_ok_and(|asked| asked.contains("chromiumoxide"));
    Ok(if named {
        filter
    } else {
        filter.add_directive("chromiumoxide::handler=error".parse()?)
    })
}

/// Runs the server with the settings of `args` and of the config file `file` (read from
/// `config_path`, which SIGHUP reads again for its `[[schedule]]` entries).
pub async fn run(args: ServeArgs, file: &FileConfig, config_path: Option<&Path>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter()?)
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
    let metrics_listen = args
        .metrics_listen
        .or_else(|| file.metrics_listen.clone())
        .map(|addr| check_metrics_listen(&addr, &listen).map(|()| addr))
        .transpose()?;

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

    let clustered = args.store.log_settings(file)?.is_some();
    let store = args.store.open(file).await?;
    if let Some(first) = sources::bootstrap(store.as_ref()).await? {
        println!(
            "First start on an empty store. These secrets are shown only this once:\n  \
             source {:?} write key: {}\n  admin API token:      {}",
            first.source.name, first.write_key, first.admin_token
        );
    }
    metrics::gauge!("sightline_log_last_seq").set(store.last_seq().await? as f64);

    // The plans are in force before the first request: a source held to one never has an
    // event collected without it.
    let plans = Arc::new(sightline_plans::Registry::default());
    let plan_keeper = Arc::new(PlanKeeper::new(store.clone(), plans.clone()));
    plan_keeper.reload().await?;

    let (retention, sweep_every) = file.retention(store.as_ref()).await?;
    let schedules = Configured::new(file.schedules()?);
    // Listened for from here on (unheard, SIGHUP would end the process).
    let hangups = Hangups::listen();
    let rules = file.profile_rules()?;
    let policy = rules.policy.clone();
    let suppression = Arc::new(Suppression::new(rules.rules.clone()));
    let book = profiles::Live::new(profiles::open(store.as_ref(), rules).await?);

    // How this node is named among those sharing the store (and in their records).
    let node_id = args
        .node_id
        .clone()
        .or_else(|| file.node_id.clone())
        .unwrap_or_else(sightline_service::cluster::default_node_id);

    // Likewise the suppression list: no event carrying an erased identifier is collected.
    let suppressor = {
        let suppression = suppression.clone();
        Arc::new(Suppressor::new(
            store.clone(),
            book.clone(),
            Box::new(move |secret, entries| {
                suppression.replace(
                    secret,
                    entries.into_iter().map(|(hash, mode)| {
                        let mode = match mode {
                            Suppress::Drop => Mode::Drop,
                            Suppress::Strip => Mode::Strip,
                        };
                        (hash, mode)
                    }),
                )
            }),
            node_id.clone(),
        ))
    };
    suppressor.reload().await?;

    let defaults = Settings::default();
    let collector = Collector::with_plans(
        store.clone(),
        Settings {
            dedup_window,
            max_in_flight: args
                .max_in_flight
                .or(file.max_in_flight)
                .unwrap_or(defaults.max_in_flight),
            ..defaults
        },
        plans,
        suppression,
    );
    let webhook = file.webhook()?;
    let profile_cache = args
        .profile_cache
        .or(file.profile_cache)
        .unwrap_or(profiles::DEFAULT_CACHE)
        .max(1);
    let deliverer = sightline_activate::Deliverer::new(
        store.clone(),
        policy.clone(),
        Some(Arc::new(Ledger {
            book: book.clone(),
            store: store.clone(),
        })),
        webhook.clone(),
        sightline_activate::Settings::default(),
    );
    // The processors run on a runtime of their own, at a lower priority than the requests'.
    let background = processors::runtime().context("cannot start the processors' runtime")?;
    // With the log on JetStream, several nodes share the store: each processor runs on the
    // node holding its lease.
    let node = crate::http::Node {
        membership: clustered.then(|| Membership::new(store.clone(), node_id)),
        address: Default::default(),
    };
    let processors = match &node.membership {
        Some(membership) => Supervisor::clustered(background.runtimes(), membership.leases()),
        None => Supervisor::on(background.runtimes()),
    };
    let (api, metrics_app) = crate::http::routers(
        store.clone(),
        prometheus,
        book.clone(),
        deliverer.clone(),
        processors.clone(),
        plan_keeper.clone(),
        if metrics_listen.is_some() {
            MetricsAt::OwnListener
        } else {
            MetricsAt::MainWithToken
        },
        file.approval_policy(),
        suppressor.clone(),
        webhook.clone(),
        node.clone(),
        schedules.clone(),
        crate::console::router(),
    );
    let app = sightline_collect::router(collector)
        .merge(api)
        .layer(middleware::from_fn(time_request));

    // The metrics listener first: a bad address stops the start before anything is served.
    let metrics_server = match (metrics_listen, metrics_app) {
        (Some(addr), Some(metrics_app)) => {
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| {
                    format!("cannot listen for metrics on {addr} (--metrics-listen)")
                })?;
            eprintln!(
                "sightline metrics (no token) on http://{}/metrics",
                listener.local_addr()?
            );
            Some(tokio::spawn(sightline_collect::serve(
                listener,
                metrics_app,
                shutdown_signal(),
            )))
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is another server using it?"))?;
    let address = listener.local_addr()?.to_string();
    eprintln!("sightline listening on http://{address}");
    node.address.set(address.clone()).ok();
    let (leave, left) = tokio::sync::oneshot::channel::<()>();
    let membership = node.membership.clone().map(|membership| {
        eprintln!("sightline node {} (log on JetStream)", membership.id());
        membership.set_address(address);
        let processors = processors.clone();
        tokio::spawn(async move {
            membership
                .run(processors, async {
                    let _ = left.await;
                })
                .await
        })
    });
    processors.start(Arc::new(Follower::new(
        store.clone(),
        book.clone(),
        profile_cache,
    )));
    processors.start(Arc::new(Syncer::new(
        store.clone(),
        book.clone(),
        policy,
        webhook.clone(),
    )));
    processors.start(Arc::new(Deliveries::new(
        store.clone(),
        deliverer,
        &processors,
    )));
    processors.start(Arc::new(Refresher(store.clone())));
    processors.start(plan_keeper.clone());
    processors.start(suppressor.clone());
    if !retention.is_empty() {
        processors.start(Arc::new(Retention {
            store: store.clone(),
            book: book.clone(),
            policy: retention,
            every: sweep_every,
        }));
    }
    tokio::spawn(reload_schedules_on_hangup(
        hangups,
        config_path.map(Path::to_owned),
        schedules.clone(),
    ));
    processors.start(Arc::new(Scheduler::new(
        store.clone(),
        schedules,
        file.scan_browsers.unwrap_or(1),
        webhook.clone(),
    )));
    processors.start(Arc::new(DeletionRetries {
        store: store.clone(),
        webhook: webhook.clone(),
    }));
    processors.start(Arc::new(DedupPruner {
        store: store.clone(),
        window: dedup_window,
    }));
    sightline_collect::serve(listener, app, shutdown_signal())
        .await
        .context("the server stopped with an error")?;
    if let Some(metrics_server) = metrics_server {
        match metrics_server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the metrics listener stopped with an error"),
            Err(e) => tracing::error!(error = %e, "the metrics listener failed"),
        }
    }
    tracing::info!("in-flight requests were answered; stopping the processors");
    processors.shutdown(SHUTDOWN_GRACE).await;
    if let Err(e) = suppressor.leave().await {
        tracing::warn!(error = %e, "cannot say this server's collector stopped; erasures wait 5 s for it");
    }
    // Then the leases go, so that another node takes the processors at once.
    let _ = leave.send(());
    if let Some(membership) = membership {
        let _ = membership.await;
    }
    if let Err(e) = plan_keeper.store_violations().await {
        tracing::error!(error = %e, "the last violations counted could not be stored");
    }
    drop(background);
    tracing::info!("stopped");
    Ok(())
}

/// `--metrics-listen` must be a host:port (a name or an IP) other than the main listener's;
/// a mistake is told at start, before the store is opened.
fn check_metrics_listen(addr: &str, listen: &str) -> Result<()> {
    let port = addr
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .and_then(|(_, port)| port.parse::<u16>().ok());
    if port.is_none() {
        anyhow::bail!(
            "--metrics-listen {addr:?} is not an address: give HOST:PORT, e.g. 127.0.0.1:9090 (a private interface: /metrics is served there without a token)"
        );
    }
    if addr == listen && port != Some(0) {
        anyhow::bail!(
            "--metrics-listen {addr} is the main listener's address: give another (e.g. 127.0.0.1:9090)"
        );
    }
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

/// SIGHUP, where there is such a signal.
struct Hangups(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangups {
    fn listen() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Hangups(signal(SignalKind::hangup()).ok())
        }
        #[cfg(not(unix))]
        Hangups()
    }

    /// The next one; never, where none can come.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.0 {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending().await
    }
}

/// Reads the config file's `[[schedule]]` entries again at every SIGHUP: a file that does
/// not read, or whose schedules are not valid, is reported and changes nothing. The other
/// settings take effect at the next start.
async fn reload_schedules_on_hangup(
    mut hangups: Hangups,
    path: Option<std::path::PathBuf>,
    schedules: Configured,
) {
    loop {
        hangups.next().await;
        let Some(path) = &path else {
            tracing::warn!("SIGHUP: there is no config file (--config) to read again");
            continue;
        };
        match FileConfig::load(Some(path)).and_then(|file| file.schedules()) {
            Ok(read) => {
                let count = read.len();
                schedules.replace(read);
                tracing::info!(
                    path = %path.display(),
                    count,
                    "SIGHUP: the config file's [[schedule]] entries are read again (other settings take effect at the next start)"
                );
            }
            Err(e) => tracing::error!(
                path = %path.display(),
                "SIGHUP: the config file's schedules are kept as they were: {e:#}"
            ),
        }
    }
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
