//! Settings come from flags, then `SIGHTLINE_*` environment variables (clap reads both),
//! then an optional TOML file, then defaults: in that order of precedence. Both the command
//! line and `serve` read them here.

use anyhow::{Context, Result};
use clap::Args;
use sightline_store::{LogSettings, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_DATA_DIR: &str = "./sightline-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8088";

pub use sightline_service::config::FileConfig;

/// Where the store is: SQLite in the data directory unless a PostgreSQL URL is given.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory for the embedded SQLite store [default: ./sightline-data].
    #[arg(long, env = "SIGHTLINE_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// postgres://user@host:port/db selects PostgreSQL instead of SQLite.
    #[arg(
        long,
        env = "SIGHTLINE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// nats://host:4222 puts the event log on NATS JetStream, so that several nodes share
    /// it (state in the PostgreSQL of --database-url).
    #[arg(
        long,
        env = "SIGHTLINE_LOG_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    log_url: Option<String>,
    /// The JetStream stream holding the log [default: SIGHTLINE, or [log] stream].
    #[arg(long, env = "SIGHTLINE_LOG_STREAM", value_name = "NAME")]
    log_stream: Option<String>,
}

impl StoreArgs {
    /// Where the log is when it is on JetStream (`None`: in the store).
    pub fn log_settings(&self, file: &FileConfig) -> Result<Option<LogSettings>> {
        let Some(url) = self.log_url.clone().or_else(|| file.log_url.clone()) else {
            return Ok(None);
        };
        let section = file.log.as_ref();
        let mut settings = LogSettings::new(url);
        if let Some(stream) = self
            .log_stream
            .clone()
            .or_else(|| section.and_then(|l| l.stream.clone()))
        {
            settings.stream = stream;
        }
        if let Some(replicas) = section.and_then(|l| l.replicas) {
            settings.replicas = replicas;
        }
        if let Some(age) = section.and_then(|l| l.max_age.as_deref()) {
            settings.max_age = Some(parse_duration("[log] max_age", age)?);
        }
        if let Some(window) = section.and_then(|l| l.duplicate_window.as_deref()) {
            settings.duplicate_window = parse_duration("[log] duplicate_window", window)?;
        }
        settings.check()?;
        Ok(Some(settings))
    }

    pub async fn open(&self, file: &FileConfig) -> Result<Arc<dyn Store>> {
        let data = self
            .data
            .clone()
            .or_else(|| file.data.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let url = self
            .database_url
            .clone()
            .or_else(|| file.database_url.clone());
        let log = self.log_settings(file)?;
        sightline_store::open_with_log(&data, url.as_deref(), log.as_ref())
            .await
            .context("cannot open the store")
    }
}

/// Reads a TOML file (of `[[table]]` lists) into `T`; the error names the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid {what}", path.display()))
}

/// A duration as people write it: "24h", "30m", "7d", "1h 30m".
pub fn parse_duration(what: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text)
        .with_context(|| format!("{what} {text:?} is not a duration: write e.g. 24h, 90m or 7d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(
            parse_duration("w", "24h").unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            parse_duration("w", "1h 30m").unwrap(),
            Duration::from_secs(5_400)
        );
        assert!(parse_duration("w", "soon")
            .unwrap_err()
            .to_string()
            .contains("24h"));
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("sl-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sightline.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9\"\nlisten_port = 1\n").unwrap();
        let err = FileConfig::load(Some(&path)).unwrap_err();
        assert!(format!("{err:#}").contains("listen_port"));
        std::fs::write(&path, "listen = \"0.0.0.0:9\"\n").unwrap();
        assert_eq!(
            FileConfig::load(Some(&path)).unwrap().listen.as_deref(),
            Some("0.0.0.0:9")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_approval_policy_reads_one_mode_or_one_per_environment() {
        use sightline_service::approval::{Environment, Mode};
        let read = |text: &str| toml::from_str::<FileConfig>(text).map(|f| f.approval_policy());
        assert_eq!(read("").unwrap().mode(), Mode::Required);
        assert_eq!(
            read("[approval]\ndestinations = \"off\"\n").unwrap().mode(),
            Mode::Off
        );
        let policy = read(
            "[approval]\nenvironment = \"staging\"\n\
             destinations = { production = \"strict\", staging = \"off\" }\n",
        )
        .unwrap();
        assert_eq!(policy.environment, Environment::Staging);
        assert_eq!(
            (policy.production, policy.mode()),
            (Mode::Strict, Mode::Off)
        );
        assert!(read("[approval]\ndestinations = \"sometimes\"\n").is_err());
        assert!(read("[approval]\nenvironment = \"qa\"\n").is_err());
    }
}
