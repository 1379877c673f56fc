//! Where the event log is when it is not in the store: a NATS JetStream stream
//! (`--log-url`, `[log]`), and what is shown of it. The client is in `jetstream.rs`, built
//! with the `jetstream` feature; these types are there without it, so that a build without
//! it can say so.

use crate::{Result, StoreError};
use std::time::Duration;

/// Where the event log is and how its stream is configured (`--log-url`, `[log]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `nats://host:4222`
    pub url: String,
    /// The stream's name; its subjects are `<name>.events.<source id>`.
    pub stream: String,
    /// Copies JetStream keeps of each event (1, 3 or 5 in a JetStream cluster).
    pub replicas: usize,
    /// Events older than this are dropped by JetStream; `None` keeps them all.
    pub max_age: Option<Duration>,
    /// JetStream's own window for `Nats-Msg-Id` duplicates.
    pub duplicate_window: Duration,
}

impl LogSettings {
    pub const DEFAULT_STREAM: &'static str = "SIGHTLINE";
    pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

    pub fn new(url: impl Into<String>) -> LogSettings {
        LogSettings {
            url: url.into(),
            stream: Self::DEFAULT_STREAM.into(),
            replicas: 1,
            max_age: None,
            duplicate_window: Self::DEFAULT_DUPLICATE_WINDOW,
        }
    }

    /// A stream name JetStream accepts that is also one subject token, and a number of
    /// copies it can keep.
    pub fn check(&self) -> Result<()> {
        let valid = !self.stream.is_empty()
            && self.stream.len() <= 64
            && self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(StoreError::Open(format!(
                "log stream name {:?} is not usable: use 1 to 64 letters, digits, '-' or '_' ([log] stream)",
                self.stream
            )));
        }
        if !matches!(self.replicas, 1..=5) {
            return Err(StoreError::Open(format!(
                "log replicas {} is not usable: JetStream keeps 1 to 5 copies ([log] replicas)",
                self.replicas
            )));
        }
        Ok(())
    }
}

/// What `sightline log info` shows of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    pub url: String,
    pub stream: String,
    pub subjects: Vec<String>,
    pub replicas: usize,
    /// Seconds; 0 keeps events forever.
    pub max_age_secs: u64,
    pub duplicate_window_secs: u64,
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_checked() {
        let mut settings = LogSettings::new("nats://x");
        settings.stream = "a.b".into();
        assert!(settings.check().is_err());
        settings.stream = "ok_name-1".into();
        assert!(settings.check().is_ok());
    }
}
