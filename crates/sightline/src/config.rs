//! Settings come from flags, then `SIGHTLINE_*` environment variables (clap reads both),
//! then an optional TOML file, then defaults: in that order of precedence. Both the command
//! line and `serve` read them here.

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;
use sightline_service::profiles::ProfileRules;
use sightline_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_DATA_DIR: &str = "./sightline-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8088";

/// The TOML config file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    /// A private address (e.g. 127.0.0.1:9090) that serves `/metrics` without a token; the
    /// main listener then no longer serves it.
    pub metrics_listen: Option<String>,
    /// e.g. "24h", "90m"
    pub dedup_window: Option<String>,
    /// How long a rotated-out write key keeps working, e.g. "24h".
    pub key_grace: Option<String>,
    /// Tracking requests handled at once.
    pub max_in_flight: Option<usize>,
    /// Profiles the profiles processor holds in memory.
    pub profile_cache: Option<usize>,
    /// Identity resolution rules: limits, priority, blocked values, default phone region
    /// (see crates/identity/README.md).
    pub identity: Option<sightline_identity::Config>,
    /// A consent mapping file: the purposes, and which signals grant which (see
    /// crates/consent/README.md); the built-in mapping when absent.
    pub consent_mapping: Option<PathBuf>,
    /// PEM certificates trusted for https:// destinations besides the system's roots (an
    /// internal CA).
    pub webhook_ca_file: Option<PathBuf>,
    /// The security approval of destinations (`[approval]`): which environment this server
    /// is, and per environment whether a destination and a change to where or what it
    /// sends wait for a security approval.
    pub approval: Option<ApprovalConfig>,
}

/// `[approval]`: `environment = "production" | "staging"` (production by default) and
/// `destinations = "required" | "strict" | "off"`, or a table of both environments
/// (`destinations = { production = "required", staging = "off" }`); `required` when
/// absent. `required`: the marketing role's changes wait for a security approval, admin's
/// (and the command line's) apply at once; `strict`: everyone's wait; `off`: none do.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    #[serde(default)]
    pub environment: sightline_service::approval::Environment,
    pub destinations: Option<ModeSetting>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ModeSetting {
    Everywhere(sightline_service::approval::Mode),
    PerEnvironment(PerEnvironment),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerEnvironment {
    #[serde(default)]
    production: sightline_service::approval::Mode,
    #[serde(default)]
    staging: sightline_service::approval::Mode,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| {
            format!(
                "config file {} is not valid: keys are data, database_url, listen, metrics_listen, dedup_window, key_grace, max_in_flight, profile_cache, consent_mapping, webhook_ca_file, [identity] and [approval]",
                path.display()
            )
        })
    }
}

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
}

impl StoreArgs {
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
        sightline_store::open(&data, url.as_deref())
            .await
            .context("cannot open the store")
    }
}

impl FileConfig {
    /// The identity rules and the consent mapping the file sets, or the defaults, with a
    /// fingerprint that tells stored profiles derived under others apart (they are then
    /// rebuilt).
    pub fn profile_rules(&self) -> Result<ProfileRules> {
        let config = self.identity.clone().unwrap_or_default();
        let rules = sightline_identity::Rules::new(&config)
            .context("the [identity] section of the config file is not valid")?;
        let mapping = self.consent_mapping_text()?;
        let policy = self.consent_policy()?;
        let text = serde_json::to_string(&config)? + mapping.as_deref().unwrap_or_default();
        Ok(ProfileRules {
            rules,
            policy,
            fingerprint: sightline_core::secret::hash(&text)[..16].to_owned(),
        })
    }

    /// The consent mapping in force: the file's, or the built-in one.
    pub fn consent_policy(&self) -> Result<sightline_consent::Policy> {
        Ok(match self.consent_mapping_text()? {
            Some(text) => sightline_consent::Policy::from_toml(&text)?,
            None => sightline_consent::Policy::default(),
        })
    }

    /// The client every webhook (delivery and audience sync) is sent with.
    pub fn webhook(&self) -> Result<sightline_activate::webhook::Webhook> {
        let roots = self
            .webhook_ca_file
            .as_ref()
            .map(|path| {
                std::fs::read(path)
                    .with_context(|| format!("cannot read webhook_ca_file {}", path.display()))
            })
            .transpose()?;
        sightline_activate::webhook::Webhook::new(
            sightline_activate::Settings::default().timeout,
            roots.as_deref(),
        )
        .context("webhook_ca_file must hold PEM certificates; the HTTP client cannot start")
    }

    /// The approval policy of destinations the file sets (`[approval]`), or the default:
    /// approval required in every environment.
    pub fn approval_policy(&self) -> sightline_service::approval::ApprovalPolicy {
        use sightline_service::approval::ApprovalPolicy;
        let Some(approval) = &self.approval else {
            return ApprovalPolicy::default();
        };
        let mut policy = match &approval.destinations {
            None => ApprovalPolicy::default(),
            Some(ModeSetting::Everywhere(mode)) => ApprovalPolicy::everywhere(*mode),
            Some(ModeSetting::PerEnvironment(per)) => ApprovalPolicy {
                production: per.production,
                staging: per.staging,
                ..ApprovalPolicy::default()
            },
        };
        policy.environment = approval.environment;
        policy
    }

    fn consent_mapping_text(&self) -> Result<Option<String>> {
        self.consent_mapping
            .as_ref()
            .map(|path| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the consent mapping {}", path.display()))
            })
            .transpose()
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
