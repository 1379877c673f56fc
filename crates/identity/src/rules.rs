//! Configuration (a serde struct, readable from TOML) and its validated, compiled form.

use std::collections::BTreeMap;

use phonenumber::country;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::identifier::IdType;

/// The `[identity]` section of the server configuration. Every field has a default, so an
/// empty section is valid. See README.md for the TOML form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// ISO 3166 region used to read phone numbers written without a country code when the
    /// event's `context.locale` names none.
    pub default_region: String,
    /// Most identifiers of one type a profile may hold.
    pub limits: BTreeMap<String, u32>,
    /// Limit for types not in `limits` (external ids, custom trait keys).
    pub default_limit: u32,
    /// Identifier types from highest to lowest priority; `*` stands for every type not named.
    pub priority: Vec<String>,
    /// Values that never link, for every type (compared case-insensitively).
    pub blocked_values: Vec<String>,
    /// Extra blocked values per type.
    pub blocked_values_by_type: BTreeMap<String, Vec<String>>,
    /// Block values made only of `0` and `-` (the pattern `^[0-]*$`, which includes "").
    pub block_zeros_and_dashes: bool,
    /// Trait keys (in `traits` or `context.traits`) that are identifiers of their own type.
    pub trait_identifiers: Vec<String>,
    /// An identifier seen with more distinct profiles than this is flagged as shared.
    pub shared_identifier_bound: u32,
    /// The type an alias call's `previousId` is read as.
    pub alias_previous_id_type: String,
}

impl Default for Config {
    fn default() -> Self {
        let limits = [
            ("user_id", 1),
            ("email", 5),
            ("phone", 5),
            ("device_id", 20),
            ("anonymous_id", 20),
        ];
        let blocked = [
            "",
            "null",
            "undefined",
            "0",
            "-1",
            "anonymous",
            "unknown",
            "none",
            "test@test.com",
            "test@example.com",
        ];
        let priority = [
            "user_id",
            "email",
            "phone",
            "*",
            "device_id",
            "anonymous_id",
        ];
        Config {
            default_region: "US".to_owned(),
            limits: limits.iter().map(|&(t, n)| (t.to_owned(), n)).collect(),
            default_limit: 5,
            priority: priority.iter().map(|&t| t.to_owned()).collect(),
            blocked_values: blocked.iter().map(|&v| v.to_owned()).collect(),
            blocked_values_by_type: BTreeMap::new(),
            block_zeros_and_dashes: true,
            trait_identifiers: Vec::new(),
            shared_identifier_bound: 3,
            alias_previous_id_type: "anonymous_id".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown phone region {0:?} (expected an ISO 3166 code such as \"US\")")]
    UnknownRegion(String),
    #[error("limit for {0:?} must be at least 1")]
    ZeroLimit(String),
    #[error("identifier type {0:?} appears twice in the priority list")]
    DuplicatePriority(String),
    #[error("shared_identifier_bound must be at least 1")]
    ZeroSharedBound,
}

/// Validated rules, compiled for fast lookups.
#[derive(Clone, Debug)]
pub struct Rules {
    default_region: country::Id,
    limits: FxHashMap<IdType, u32>,
    default_limit: u32,
    ranks: FxHashMap<IdType, u32>,
    unnamed_rank: u32,
    blocked_values: FxHashSet<String>,
    blocked_values_by_type: FxHashMap<IdType, FxHashSet<String>>,
    block_zeros_and_dashes: bool,
    trait_identifiers: Vec<(String, IdType)>,
    shared_identifier_bound: u32,
    alias_previous_id_type: IdType,
}

impl Default for Rules {
    fn default() -> Self {
        Rules::new(&Config::default()).expect("the default configuration is valid")
    }
}

fn lowered(values: &[String]) -> FxHashSet<String> {
    values.iter().map(|v| v.trim().to_lowercase()).collect()
}

impl Rules {
    pub fn new(config: &Config) -> Result<Rules, ConfigError> {
        let default_region = parse_region(&config.default_region)
            .ok_or_else(|| ConfigError::UnknownRegion(config.default_region.clone()))?;
        if config.default_limit == 0 {
            return Err(ConfigError::ZeroLimit("default_limit".to_owned()));
        }
        let mut limits = FxHashMap::default();
        for (name, &limit) in &config.limits {
            if limit == 0 {
                return Err(ConfigError::ZeroLimit(name.clone()));
            }
            limits.insert(IdType::parse(name), limit);
        }
        let mut ranks = FxHashMap::default();
        let mut unnamed_rank = None;
        for (rank, name) in (0u32..).zip(&config.priority) {
            let fresh = if name.trim() == "*" {
                unnamed_rank.replace(rank).is_none()
            } else {
                ranks.insert(IdType::parse(name), rank).is_none()
            };
            if !fresh {
                return Err(ConfigError::DuplicatePriority(name.clone()));
            }
        }
        if config.shared_identifier_bound == 0 {
            return Err(ConfigError::ZeroSharedBound);
        }
        Ok(Rules {
            default_region,
            limits,
            default_limit: config.default_limit,
            unnamed_rank: unnamed_rank.unwrap_or(ranks.len() as u32),
            ranks,
            blocked_values: lowered(&config.blocked_values),
            blocked_values_by_type: config
                .blocked_values_by_type
                .iter()
                .map(|(name, values)| (IdType::parse(name), lowered(values)))
                .collect(),
            block_zeros_and_dashes: config.block_zeros_and_dashes,
            trait_identifiers: config
                .trait_identifiers
                .iter()
                .map(|key| (key.clone(), IdType::parse(key)))
                .collect(),
            shared_identifier_bound: config.shared_identifier_bound,
            alias_previous_id_type: IdType::parse(&config.alias_previous_id_type),
        })
    }

    /// Most identifiers of this type one profile may hold.
    pub fn limit(&self, id_type: &IdType) -> u32 {
        self.limits
            .get(id_type)
            .copied()
            .unwrap_or(self.default_limit)
    }

    /// Priority rank: 0 is the highest.
    pub fn rank(&self, id_type: &IdType) -> u32 {
        self.ranks
            .get(id_type)
            .copied()
            .unwrap_or(self.unnamed_rank)
    }

    /// Whether a normalised value of this type must never link anything.
    pub fn is_blocked(&self, id_type: &IdType, value: &str) -> bool {
        if self.block_zeros_and_dashes && value.bytes().all(|b| b == b'0' || b == b'-') {
            return true;
        }
        let lower;
        let value = if value.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = value.to_ascii_lowercase();
            lower.as_str()
        } else {
            value
        };
        self.blocked_values.contains(value)
            || self
                .blocked_values_by_type
                .get(id_type)
                .is_some_and(|values| values.contains(value))
    }

    pub fn shared_identifier_bound(&self) -> u32 {
        self.shared_identifier_bound
    }

    pub fn default_region(&self) -> country::Id {
        self.default_region
    }

    pub(crate) fn trait_identifiers(&self) -> &[(String, IdType)] {
        &self.trait_identifiers
    }

    pub(crate) fn alias_previous_id_type(&self) -> &IdType {
        &self.alias_previous_id_type
    }
}

/// Reads an ISO 3166 alpha-2 region code in any case.
pub(crate) fn parse_region(code: &str) -> Option<country::Id> {
    code.trim().to_ascii_uppercase().parse().ok()
}
