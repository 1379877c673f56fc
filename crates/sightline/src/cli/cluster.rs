//! `sightline log info` and `sightline cluster status`: where the event log is, and the
//! nodes sharing it with the processor each runs.

use crate::config::{FileConfig, StoreArgs};
use anyhow::Result;
use clap::Subcommand;
use sightline_service::cluster;

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Where the event log is: the JetStream stream and its settings and state (with
    /// --log-url), or the store.
    Info {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The nodes sharing the store, which node runs which processor, and each one's lag.
    Status {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
}

pub async fn log(command: LogCommand, file: &FileConfig) -> Result<()> {
    let LogCommand::Info { store, json } = command;
    let store = store.open(file).await?;
    let last_seq = store.last_seq().await?;
    match store.stream_info().await? {
        Some(info) if json => println!(
            "{}",
            serde_json::json!({
                "where": "jetstream",
                "url": info.url,
                "stream": info.stream,
                "subjects": info.subjects,
                "replicas": info.replicas,
                "max_age_secs": info.max_age_secs,
                "duplicate_window_secs": info.duplicate_window_secs,
                "messages": info.messages,
                "bytes": info.bytes,
                "first_seq": info.first_seq,
                "last_seq": info.last_seq,
            })
        ),
        Some(info) => {
            println!(
                "log:              JetStream stream {} at {}",
                info.stream, info.url
            );
            println!("subjects:         {}", info.subjects.join(", "));
            println!("replicas:         {}", info.replicas);
            let age = if info.max_age_secs == 0 {
                "kept forever".to_owned()
            } else {
                humantime::format_duration(std::time::Duration::from_secs(info.max_age_secs))
                    .to_string()
            };
            println!("max age:          {age}");
            println!(
                "duplicate window: {}",
                humantime::format_duration(std::time::Duration::from_secs(
                    info.duplicate_window_secs
                ))
            );
            println!("events:           {} ({} bytes)", info.messages, info.bytes);
            println!("seqs:             {} to {}", info.first_seq, info.last_seq);
        }
        None if json => println!(
            "{}",
            serde_json::json!({"where": "store", "last_seq": last_seq})
        ),
        None => {
            println!("log:      in the store (give --log-url nats://HOST:4222 to use JetStream)");
            println!("last seq: {last_seq}");
        }
    }
    Ok(())
}

pub async fn cluster(command: ClusterCommand, file: &FileConfig) -> Result<()> {
    let ClusterCommand::Status { store, json } = command;
    let store = store.open(file).await?;
    let status = cluster::status(store.cluster().await?, store.last_seq().await?, None);
    if json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    println!("log end: seq {}", status.log_end);
    println!("nodes:");
    if status.nodes.is_empty() {
        println!("  none (serve with --log-url for several nodes)");
    }
    for node in &status.nodes {
        println!(
            "  {:<28} {:<22} v{:<8} {} (seen {:.1} s ago)",
            node.id,
            node.address,
            node.version,
            if node.alive { "alive" } else { "silent" },
            node.seen_ms_ago as f64 / 1000.0
        );
    }
    println!("processors:");
    for p in &status.processors {
        let lag = p
            .lag_events
            .map_or(String::new(), |lag| format!(", {lag} events behind"));
        println!(
            "  {:<28} {}{lag}",
            p.processor,
            p.node.as_deref().unwrap_or("(no owner: lease expired)")
        );
    }
    Ok(())
}
