//! The TOML config file of `sightline` (the command line and `serve`): its keys and what
//! they configure. It lives here rather than in the binary so that its parsing can be
//! fuzzed (fuzz/fuzz_targets/config_toml.rs); the binary re-exports it from its `config`
//! module, where flags and environment variables are merged with it.

use crate::profiles::ProfileRules;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The TOML config file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub database_url: Option<String>,
    /// `nats://host:4222`: the event log on NATS JetStream, for several nodes (state in
    /// the PostgreSQL of `database_url`).
    pub log_url: Option<String>,
    /// `[log]`: the JetStream stream's settings.
    pub log: Option<LogConfig>,
    /// `[retention]`: how long events are kept, by default and per source.
    pub retention: Option<RetentionConfig>,
    /// This node's name among several [default: the host name and a random suffix].
    pub node_id: Option<String>,
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
    /// `[[schedule]]`: journeys of the registry `sightline serve` scans in the background.
    #[serde(default)]
    pub schedule: Vec<crate::governance::schedule::Definition>,
    /// Scenarios a scheduled scan runs at once, each in its own Chromium [default: 1].
    pub scan_browsers: Option<usize>,
}

/// `[log]`: the stream that holds the event log when `log_url` is set. A stream that
/// exists with other settings stops the start (JetStream keeps its own configuration).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The stream's name [default: SIGHTLINE].
    pub stream: Option<String>,
    /// Copies JetStream keeps of each event: 1, 3 or 5 [default: 1].
    pub replicas: Option<usize>,
    /// Events older than this are dropped, e.g. "400d" [default: kept forever].
    pub max_age: Option<String>,
    /// JetStream's own window for repeated publishes of one event [default: 2m].
    pub duplicate_window: Option<String>,
}

/// `[retention]`: events older than their source's maximum age are removed on a schedule
/// (`crate::retention`). Ages are durations ("400d", "13w") or "forever".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Every source without an age of its own [default: forever].
    pub default: Option<String>,
    /// By source name, e.g. `{ web = "30d", crm = "forever" }`.
    pub sources: Option<std::collections::BTreeMap<String, String>>,
    /// How often the server sweeps [default: 1h].
    pub every: Option<String>,
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
    pub environment: crate::approval::Environment,
    pub destinations: Option<ModeSetting>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ModeSetting {
    Everywhere(crate::approval::Mode),
    PerEnvironment(PerEnvironment),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerEnvironment {
    #[serde(default)]
    production: crate::approval::Mode,
    #[serde(default)]
    staging: crate::approval::Mode,
}

impl FileConfig {
    /// Reads the file's text: unknown keys are refused. No IO; what the text names (the
    /// consent mapping, the CA file) is read later, by the methods that need it.
    pub fn from_toml_str(text: &str) -> Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        FileConfig::from_toml_str(&text).with_context(|| {
            format!(
                "config file {} is not valid: keys are data, database_url, log_url, node_id, listen, metrics_listen, dedup_window, key_grace, max_in_flight, profile_cache, consent_mapping, webhook_ca_file, scan_browsers, [identity], [approval], [log], [retention] and [[schedule]]",
                path.display()
            )
        })
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

    /// The `[[schedule]]` entries, checked (see `Definition::check`), one per journey.
    /// Whether each journey and alert destination exists is seen when it runs (they may
    /// be added while the server runs).
    pub fn schedules(&self) -> Result<Vec<crate::governance::schedule::Schedule>> {
        use crate::governance::schedule::{Origin, Schedule};
        let mut schedules: Vec<Schedule> = Vec::new();
        for (i, entry) in self.schedule.iter().enumerate() {
            let at = format!("[[schedule]] {} ({:?})", i + 1, entry.journey);
            anyhow::ensure!(
                !schedules.iter().any(|s| s.journey == entry.journey),
                "{at}: the journey is scheduled twice"
            );
            let schedule = entry
                .check(Origin::Config)
                .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
            schedules.push(schedule);
        }
        Ok(schedules)
    }

    /// The retention policy (`[retention]`) with the sources named by the store's ids, and
    /// how often the server sweeps; a source the store does not have is refused.
    pub async fn retention(
        &self,
        store: &dyn sightline_store::Access,
    ) -> Result<(crate::retention::Policy, std::time::Duration)> {
        let age = |what: &str, text: &str| -> Result<Option<std::time::Duration>> {
            if text == "forever" {
                return Ok(None);
            }
            let age = humantime::parse_duration(text).with_context(|| {
                format!("[retention] {what} {text:?} is not a duration: write e.g. 400d, 13w, or forever")
            })?;
            anyhow::ensure!(!age.is_zero(), "[retention] {what} must be longer than 0");
            Ok(Some(age))
        };
        let Some(config) = &self.retention else {
            return Ok((Default::default(), crate::retention::DEFAULT_EVERY));
        };
        let default = config
            .default
            .as_deref()
            .map(|d| age("default", d))
            .transpose()?
            .flatten();
        let mut sources = std::collections::HashMap::new();
        for (name, text) in config.sources.iter().flatten() {
            let source = store.source_by_name(name).await?.with_context(|| {
                format!("[retention] names source {name:?}, which does not exist: `sightline source list` shows them")
            })?;
            sources.insert(source.id, age(&format!("for {name}"), text)?);
        }
        let every = match &config.every {
            Some(text) => humantime::parse_duration(text)
                .ok()
                .filter(|every| !every.is_zero())
                .with_context(|| {
                    format!("[retention] every {text:?} is not a duration: write e.g. 1h")
                })?,
            None => crate::retention::DEFAULT_EVERY,
        };
        Ok((crate::retention::Policy::new(default, sources), every))
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
    pub fn approval_policy(&self) -> crate::approval::ApprovalPolicy {
        use crate::approval::ApprovalPolicy;
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
