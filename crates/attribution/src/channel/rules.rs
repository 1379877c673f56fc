//! Source lists and user rules, and the TOML file that configures both.

use std::collections::HashMap;

use serde::Deserialize;

use super::sources;
use crate::error::{Error, Result};

/// The source categories GA4's channel rules look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceCategory {
    Search,
    Social,
    Video,
    Shopping,
}

/// Source lists per category, as lower-case entries (see `sources.rs` for the syntax).
#[derive(Debug, Clone)]
pub struct SourceLists {
    lists: HashMap<SourceCategory, Vec<String>>,
}

impl Default for SourceLists {
    fn default() -> Self {
        let own = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Self {
            lists: HashMap::from([
                (SourceCategory::Search, own(sources::SEARCH)),
                (SourceCategory::Social, own(sources::SOCIAL)),
                (SourceCategory::Video, own(sources::VIDEO)),
                (SourceCategory::Shopping, own(sources::SHOPPING)),
            ]),
        }
    }
}

impl SourceLists {
    pub fn matches(&self, category: SourceCategory, source: &str) -> bool {
        self.lists
            .get(&category)
            .is_some_and(|list| list.iter().any(|entry| source_matches(entry, source)))
    }
}

/// Whether a lower-case `source` matches a list entry: equal, a subdomain of a domain
/// entry, or a host carrying a brand entry as a label other than its last.
fn source_matches(entry: &str, source: &str) -> bool {
    if source == entry {
        return true;
    }
    if entry.contains('.') {
        return source
            .strip_suffix(entry)
            .is_some_and(|prefix| prefix.ends_with('.'));
    }
    let mut labels: Vec<&str> = source.split('.').collect();
    labels.pop();
    labels.contains(&entry)
}

/// A user rule: every condition given must hold; within a condition any listed value
/// may match. Values compare case-insensitively.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Channel name assigned when the rule matches.
    pub channel: String,
    /// Sources, matched like list entries (`partner.example` also matches its subdomains).
    #[serde(default)]
    pub source: Vec<String>,
    /// Source categories (`search`, `social`, `video`, `shopping`).
    #[serde(default)]
    pub source_category: Vec<SourceCategory>,
    /// Exact mediums.
    #[serde(default)]
    pub medium: Vec<String>,
    /// Substrings of the campaign name.
    #[serde(default)]
    pub campaign_contains: Vec<String>,
}

impl Rule {
    pub(super) fn matches(
        &self,
        source: &str,
        medium: &str,
        campaign: &str,
        lists: &SourceLists,
    ) -> bool {
        (self.source.is_empty() || self.source.iter().any(|e| source_matches(e, source)))
            && (self.source_category.is_empty()
                || self
                    .source_category
                    .iter()
                    .any(|&c| lists.matches(c, source)))
            && (self.medium.is_empty() || self.medium.iter().any(|m| m == medium))
            && (self.campaign_contains.is_empty()
                || self
                    .campaign_contains
                    .iter()
                    .any(|c| campaign.contains(c.as_str())))
    }

    fn normalise(mut self) -> Self {
        for list in [
            &mut self.source,
            &mut self.medium,
            &mut self.campaign_contains,
        ] {
            for value in list.iter_mut() {
                *value = value.trim().to_lowercase();
            }
        }
        self
    }

    fn has_condition(&self) -> bool {
        !(self.source.is_empty()
            && self.source_category.is_empty()
            && self.medium.is_empty()
            && self.campaign_contains.is_empty())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListEdit {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    /// Start from an empty list instead of the built-in one.
    #[serde(default)]
    replace: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    sources: HashMap<SourceCategory, ListEdit>,
    #[serde(default)]
    rules: Vec<Rule>,
}

pub(super) fn parse(text: &str) -> Result<(Vec<Rule>, SourceLists)> {
    let file: RulesFile = toml::from_str(text).map_err(|e| Error::Rules(e.to_string()))?;
    let mut lists = SourceLists::default();
    for (category, edit) in file.sources {
        let list = lists.lists.entry(category).or_default();
        if edit.replace {
            list.clear();
        }
        let normalised = |values: Vec<String>| -> Vec<String> {
            values
                .into_iter()
                .map(|v| v.trim().to_lowercase())
                .collect()
        };
        let remove = normalised(edit.remove);
        list.retain(|entry| !remove.contains(entry));
        list.extend(normalised(edit.add));
    }
    let mut rules = Vec::with_capacity(file.rules.len());
    for (index, rule) in file.rules.into_iter().enumerate() {
        if rule.channel.trim().is_empty() || !rule.has_condition() {
            return Err(Error::Rules(format!(
                "rule {} needs a non-empty `channel` and at least one of `source`, \
                 `source_category`, `medium`, `campaign_contains`",
                index + 1
            )));
        }
        rules.push(rule.normalise());
    }
    Ok((rules, lists))
}
