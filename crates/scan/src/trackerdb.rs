//! External tracker databases a user supplies (their licences forbid shipping them inside
//! Sightline): Ghostery's `trackerdb.json` and DuckDuckGo Tracker Radar's `domain_map.json`.
//! Both become host-suffix entries asked after the shipped and user catalogs.
//!
//! Formats, as their exporters write them:
//! - Ghostery (`scripts/export-json` of github.com/ghostery/trackerdb): an object with
//!   `categories`, `organizations`, `patterns`, `domains` and `filters`; each pattern is
//!   `{ "name", "category", "organization", "domains": [..], "filters": [..], … }`. Only
//!   `patterns` is read: its `name`, `category` and `domains` (the adblock-syntax `filters`
//!   are not: the catalog matches hosts).
//! - Tracker Radar (`build-data/generated/domain_map.json`): an object from a registrable
//!   domain to `{ "entityName", "displayName", "aliases" }`. It names owners but no
//!   category, so its vendors are `unknown` (named in the report, not judged for consent).

use serde_json::Value;

use crate::vendor::{Category, Vendor};

/// Ghostery's category keys mapped to the catalog's categories. Keys it adds later, and
/// those that say nothing about consent (players, comments, extensions, misc, telemetry),
/// are `unknown`.
pub fn ghostery_category(key: &str) -> Category {
    match key {
        "advertising" | "pornvertising" => Category::Advertising,
        "site_analytics" => Category::Analytics,
        "social_media" => Category::Social,
        "customer_interaction" => Category::Support,
        "consent" => Category::Cmp,
        "essential" | "cdn" | "hosting" | "utilities" | "utility" => Category::Essential,
        _ => Category::Unknown,
    }
}

/// Reads either format (told apart by Ghostery's `patterns` key) into (host suffix, vendor)
/// entries. The error names the JSON path that is wrong.
pub fn parse(text: &str) -> Result<Vec<(String, Vendor)>, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(object) = root.as_object() else {
        return Err(
            "expected a JSON object: Ghostery's trackerdb.json (with `patterns`) or a \
             Tracker Radar domain_map.json"
                .into(),
        );
    };
    let entries = if object.contains_key("patterns") {
        ghostery(object)?
    } else {
        domain_map(object)?
    };
    if entries.is_empty() {
        return Err("it lists no tracker domains".into());
    }
    Ok(entries)
}

fn ghostery(root: &serde_json::Map<String, Value>) -> Result<Vec<(String, Vendor)>, String> {
    let Some(patterns) = root["patterns"].as_object() else {
        return Err("`patterns`: expected an object of patterns by key".into());
    };
    let mut out = Vec::new();
    for (key, pattern) in patterns {
        let path = format!("patterns.{key}");
        let field = |name: &str| -> Result<&str, String> {
            pattern
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| format!("`{path}.{name}`: expected a non-empty string"))
        };
        let vendor = Vendor {
            name: field("name")?.trim().to_owned(),
            category: ghostery_category(field("category")?),
        };
        let domains = match pattern.get("domains") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(domains)) => domains,
            Some(_) => return Err(format!("`{path}.domains`: expected an array of domains")),
        };
        for (i, d) in domains.iter().enumerate() {
            let host = d
                .as_str()
                .and_then(host_suffix)
                .ok_or_else(|| format!("`{path}.domains[{i}]`: expected a domain, got {d}"))?;
            out.push((host, vendor.clone()));
        }
    }
    Ok(out)
}

fn domain_map(root: &serde_json::Map<String, Value>) -> Result<Vec<(String, Vendor)>, String> {
    let mut out = Vec::new();
    for (domain, entry) in root {
        let host = host_suffix(domain).ok_or_else(|| {
            format!("key {domain:?}: expected a domain (a Tracker Radar domain_map.json)")
        })?;
        let name = ["displayName", "entityName"]
            .iter()
            .find_map(|k| entry.get(*k).and_then(Value::as_str))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                format!(
                    "`{domain}`: expected an object with `displayName` or `entityName` \
                     (neither Ghostery's trackerdb.json, which has `patterns`, nor a Tracker \
                     Radar domain_map.json)"
                )
            })?;
        out.push((
            host,
            Vendor {
                name: name.to_owned(),
                category: Category::Unknown,
            },
        ));
    }
    Ok(out)
}

/// A domain as a lowercase host suffix, or `None` when it is not shaped like one.
fn host_suffix(domain: &str) -> Option<String> {
    let host = domain.trim().trim_matches('.').to_ascii_lowercase();
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    /// A hand-made file in Ghostery's export shape (no data of theirs).
    const GHOSTERY: &str = r##"{
      "categories": { "advertising": { "name": "Advertising", "color": "#cb55cd", "description": "x" } },
      "organizations": { "acme": { "name": "Acme Corp" } },
      "patterns": {
        "acme_ads": { "name": "Acme Ads", "category": "advertising", "organization": "acme",
                      "domains": ["ads.acme-tracker.example", "acme-pixel.example"],
                      "filters": ["||acme-pixel.example^$3p"] },
        "acme_stats": { "name": "Acme Stats", "category": "site_analytics", "domains": ["stats.acme.example"] },
        "acme_cmp": { "name": "Acme Consent", "category": "consent", "domains": ["cmp.acme.example"] },
        "acme_new": { "name": "Acme Later", "category": "a_category_added_later", "domains": ["later.acme.example"] },
        "no_domains": { "name": "Filters Only", "category": "advertising", "filters": ["/ads.js"] }
      },
      "domains": { "acme-pixel.example": "acme_ads" },
      "filters": {}
    }"##;

    #[test]
    fn reads_ghostery_patterns() {
        let entries = parse(GHOSTERY).unwrap();
        let get = |h: &str| entries.iter().find(|(host, _)| host == h).map(|(_, v)| v);
        assert_eq!(get("acme-pixel.example").unwrap().name, "Acme Ads");
        assert_eq!(
            get("ads.acme-tracker.example").unwrap().category,
            Category::Advertising
        );
        assert_eq!(
            get("stats.acme.example").unwrap().category,
            Category::Analytics
        );
        assert_eq!(get("cmp.acme.example").unwrap().category, Category::Cmp);
        assert_eq!(
            get("later.acme.example").unwrap().category,
            Category::Unknown
        );
        assert_eq!(entries.len(), 5);
    }

    #[test]
    fn reads_tracker_radar_domain_maps() {
        let entries = parse(
            r#"{ "acme-pixel.example": { "entityName": "Acme Corp", "displayName": "Acme", "aliases": [] },
                 "other.example": { "entityName": "Other Inc." } }"#,
        )
        .unwrap();
        assert!(entries.contains(&(
            "acme-pixel.example".into(),
            Vendor {
                name: "Acme".into(),
                category: Category::Unknown
            }
        )));
        assert!(entries.iter().any(|(_, v)| v.name == "Other Inc."));
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        let cases = [
            ("", "not JSON"),
            ("[1, 2]", "expected a JSON object"),
            (r#"{"patterns": []}"#, "`patterns`"),
            (
                r#"{"patterns": {"x": {"category": "advertising", "domains": ["a.example"]}}}"#,
                "`patterns.x.name`",
            ),
            (
                r#"{"patterns": {"x": {"name": "X", "category": "advertising", "domains": "a.example"}}}"#,
                "`patterns.x.domains`",
            ),
            (
                r#"{"patterns": {"x": {"name": "X", "category": "advertising", "domains": ["a b"]}}}"#,
                "`patterns.x.domains[0]`",
            ),
            (r#"{"a.example": {"owner": "X"}}"#, "displayName"),
            (r#"{"patterns": {}}"#, "no tracker domains"),
        ];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_tracker_db_ranks_below_the_shipped_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trackerdb.json");
        std::fs::write(
            &path,
            r#"{"patterns": {
                 "ga": {"name": "GA per Ghostery", "category": "site_analytics", "domains": ["google-analytics.com"]},
                 "acme": {"name": "Acme Ads", "category": "advertising", "domains": ["acme-pixel.example"]}
               }}"#,
        )
        .unwrap();
        let c = Catalog::builtin().with_tracker_db(&path).unwrap();
        assert_eq!(
            c.lookup("www.google-analytics.com").unwrap().name,
            "Google Analytics"
        );
        assert_eq!(c.lookup("t.acme-pixel.example").unwrap().name, "Acme Ads");
        let err = Catalog::builtin()
            .with_tracker_db(&dir.path().join("missing.json"))
            .unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
