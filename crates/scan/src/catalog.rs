//! The vendor catalog: host suffixes mapped to vendors and categories. Sightline ships its own
//! (`catalog/vendors.toml`, compiled in); a user catalog of the same shape extends or overrides it.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::vendor::{Category, Vendor};
use crate::ScanError;

const BUILTIN: &str = include_str!("../catalog/vendors.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    vendor: Vec<VendorEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VendorEntry {
    name: String,
    category: Category,
    hosts: Vec<String>,
    #[serde(default)]
    cookies: Vec<String>,
}

/// Host-suffix lookup table.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_suffix: HashMap<String, Vendor>,
    /// Entries of an external tracker database; asked only when `by_suffix` has no match.
    fallback: HashMap<String, Vendor>,
    /// Cookie-name prefixes, for the first-party cookies vendor scripts set.
    cookie_prefixes: Vec<(String, Vendor)>,
}

impl Catalog {
    /// The catalog Sightline ships.
    pub fn builtin() -> Catalog {
        let mut c = Catalog::default();
        c.extend_from_str(BUILTIN).expect(
            "the shipped catalog parses (tested by builtin_catalog_parses_and_is_large_enough)",
        );
        c
    }

    /// Builtin plus a user catalog file, whose entries win on the same suffix.
    pub fn with_user_file(path: Option<&Path>) -> Result<Catalog, ScanError> {
        let mut c = Catalog::builtin();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|e| ScanError::Catalog {
                path: path.display().to_string(),
                message: format!("cannot read: {e}"),
            })?;
            c.extend_from_str(&text)
                .map_err(|message| ScanError::Catalog {
                    path: path.display().to_string(),
                    message,
                })?;
        }
        Ok(c)
    }

    /// Adds the `[[vendor]]` entries of a catalog TOML text.
    pub fn extend_from_str(&mut self, text: &str) -> Result<(), String> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, v) in file.vendor.into_iter().enumerate() {
            if v.name.trim().is_empty() {
                return Err(format!("key `vendor[{i}].name`: must not be empty"));
            }
            let vendor = Vendor {
                name: v.name.clone(),
                category: v.category,
            };
            for prefix in v.cookies.into_iter().filter(|p| !p.is_empty()) {
                self.cookie_prefixes.retain(|(p, _)| *p != prefix);
                self.cookie_prefixes.push((prefix, vendor.clone()));
            }
            for host in v.hosts {
                let host = host.trim().trim_start_matches('.').to_ascii_lowercase();
                if host.is_empty() {
                    return Err(format!("key `vendor[{i}].hosts`: empty host suffix"));
                }
                self.by_suffix.insert(host, vendor.clone());
            }
        }
        Ok(())
    }

    /// Adds an external tracker database file (Ghostery's trackerdb.json or a Tracker Radar
    /// domain_map.json, see [`crate::trackerdb`]) below the shipped and user entries.
    pub fn with_tracker_db(mut self, path: &Path) -> Result<Catalog, ScanError> {
        let err = |message: String| ScanError::TrackerDb {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        for (host, vendor) in crate::trackerdb::parse(&text).map_err(err)? {
            self.fallback.insert(host, vendor);
        }
        Ok(self)
    }

    /// The vendor whose longest host suffix matches `host` (label-wise, so
    /// `evilfacebook.net` does not match `facebook.net`); the shipped and user catalogs
    /// first, then a tracker database.
    pub fn lookup(&self, host: &str) -> Option<&Vendor> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        longest_suffix(&self.by_suffix, &host).or_else(|| longest_suffix(&self.fallback, &host))
    }

    /// The vendor whose longest cookie-name prefix matches `name` (`_ga_ABC` → Google
    /// Analytics).
    pub fn lookup_cookie(&self, name: &str) -> Option<&Vendor> {
        self.cookie_prefixes
            .iter()
            .filter(|(p, _)| name.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, v)| v)
    }

    /// Number of distinct vendors known.
    pub fn vendor_count(&self) -> usize {
        let mut names: Vec<&str> = self.by_suffix.values().map(|v| v.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

fn longest_suffix<'a>(table: &'a HashMap<String, Vendor>, host: &str) -> Option<&'a Vendor> {
    let mut rest = host;
    loop {
        if let Some(v) = table.get(rest) {
            return Some(v);
        }
        match rest.find('.') {
            Some(i) => rest = &rest[i + 1..],
            None => return None,
        }
    }
}

/// The registrable part of a host ("site"), used to tell first from third parties. An
/// approximation of the Public Suffix List covering the common two-label public suffixes;
/// shipping the whole list was not worth its weight for this.
pub fn site_of(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    if n <= 2 {
        return host;
    }
    const SECOND_LEVEL: &[&str] = &["co", "com", "net", "org", "gov", "ac", "edu", "ne", "or"];
    let keep = if labels[n - 1].len() == 2 && SECOND_LEVEL.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_is_large_enough() {
        let mut c = Catalog::default();
        c.extend_from_str(BUILTIN).unwrap();
        assert!(c.vendor_count() >= 100, "{}", c.vendor_count());
    }

    #[test]
    fn matches_by_longest_label_suffix() {
        let c = Catalog::builtin();
        let name = |h: &str| c.lookup(h).map(|v| v.name.clone());
        assert_eq!(
            name("www.google-analytics.com").as_deref(),
            Some("Google Analytics")
        );
        assert_eq!(
            name("region1.google-analytics.com").as_deref(),
            Some("Google Analytics")
        );
        assert_eq!(name("connect.facebook.net").as_deref(), Some("Meta"));
        assert_eq!(
            name("www.googletagmanager.com").as_deref(),
            Some("Google Tag Manager")
        );
        assert_eq!(
            name("stats.g.doubleclick.net").as_deref(),
            Some("DoubleClick")
        );
        assert_eq!(name("px.ads.linkedin.com").as_deref(), Some("LinkedIn"));
        assert_eq!(
            name("bat.bing.com").as_deref(),
            Some("Microsoft Advertising")
        );
        assert_eq!(name("static.hotjar.com").as_deref(), Some("Hotjar"));
        assert_eq!(name("cdn.segment.com").as_deref(), Some("Segment"));
        assert_eq!(name("js.hs-scripts.com").as_deref(), Some("HubSpot"));
        assert_eq!(name("static.criteo.net").as_deref(), Some("Criteo"));
        assert_eq!(name("api2.amplitude.com").as_deref(), Some("Amplitude"));
        assert_eq!(name("api-js.mixpanel.com").as_deref(), Some("Mixpanel"));
        assert_eq!(name("analytics.tiktok.com").as_deref(), Some("TikTok"));
        assert_eq!(
            name("WWW.GOOGLE-ANALYTICS.COM.").as_deref(),
            Some("Google Analytics")
        );
        assert_eq!(name("evilfacebook.net"), None);
        assert_eq!(name("www.shop.test"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn cookies_by_name_prefix() {
        let c = Catalog::builtin();
        assert_eq!(
            c.lookup_cookie("_ga_ABC123").unwrap().name,
            "Google Analytics"
        );
        assert_eq!(c.lookup_cookie("_fbp").unwrap().name, "Meta");
        assert_eq!(c.lookup_cookie("_gcl_au").unwrap().name, "Google Ads");
        assert!(c.lookup_cookie("session").is_none());
    }

    #[test]
    fn user_catalog_extends_and_overrides() {
        let mut c = Catalog::builtin();
        c.extend_from_str(
            "[[vendor]]\nname = \"Acme Pixel\"\ncategory = \"advertising\"\nhosts = [\"pixel.acme.example\"]\n\
             [[vendor]]\nname = \"Our CDN\"\ncategory = \"essential\"\nhosts = [\"fonts.googleapis.com\"]\n",
        )
        .unwrap();
        assert_eq!(c.lookup("a.pixel.acme.example").unwrap().name, "Acme Pixel");
        assert_eq!(c.lookup("fonts.googleapis.com").unwrap().name, "Our CDN");
        let err = c
            .extend_from_str("[[vendor]]\nname = \"X\"\ncategory = \"spying\"\nhosts = []\n")
            .unwrap_err();
        assert!(err.contains("category"), "{err}");
    }

    #[test]
    fn sites() {
        assert_eq!(site_of("www.shop.test"), "shop.test");
        assert_eq!(site_of("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(site_of("localhost"), "localhost");
        assert_eq!(site_of("127.0.0.1"), "127.0.0.1");
        assert_eq!(site_of("connect.facebook.net"), "facebook.net");
    }
}
