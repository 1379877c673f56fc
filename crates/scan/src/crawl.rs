//! Crawling: a journey may name a start URL or a sitemap instead of (or before) its steps;
//! the pages found become its steps, each scanned under every scenario. Pure: which URLs a
//! crawl keeps, what a sitemap lists, and the page template of each URL, by which the
//! report groups findings (one bad tag on 500 product pages is one item with a count). The
//! browser's part (visiting pages, reading links) is `browser::discover`.

use crate::catalog::site_of;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use url::Url;

/// The most pages a crawl may scan, whatever is asked.
pub const MAX_PAGES: usize = 2000;
/// Sitemaps read at most (an index and the sitemaps it lists).
pub const MAX_SITEMAPS: usize = 20;

/// `[crawl]` in a journey file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crawl {
    /// The page discovery starts from: links are followed from it, breadth first.
    pub start: Option<String>,
    /// A sitemap (or sitemap index) whose URLs are the pages.
    pub sitemap: Option<String>,
    /// Pages scanned at most (the journey's own steps not counted).
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Links followed at most this many clicks away from `start`.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Only pages of the start's (or sitemap's) site: its registrable domain.
    #[serde(default = "yes")]
    pub same_site: bool,
    /// When given, only URLs matching one of these (`*` is any text).
    #[serde(default)]
    pub include: Vec<String>,
    /// URLs matching one of these are never visited (`*/logout*`).
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn default_max_pages() -> usize {
    50
}

fn default_max_depth() -> usize {
    3
}

fn yes() -> bool {
    true
}

impl Crawl {
    pub fn check(&self) -> Result<(), String> {
        if self.start.is_none() && self.sitemap.is_none() {
            return Err("key `crawl`: name a `start` URL, a `sitemap`, or both".into());
        }
        for (key, url) in [("start", &self.start), ("sitemap", &self.sitemap)] {
            if let Some(url) = url {
                match Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    _ => {
                        return Err(format!(
                            "key `crawl.{key}`: {url:?} is not an http or https URL"
                        ))
                    }
                }
            }
        }
        if !(1..=MAX_PAGES).contains(&self.max_pages) {
            return Err(format!(
                "key `crawl.max_pages`: 1 to {MAX_PAGES}, got {}",
                self.max_pages
            ));
        }
        Ok(())
    }

    /// The site pages must belong to (with `same_site`): the start's, else the sitemap's.
    pub fn site(&self) -> Option<String> {
        let url = self.start.as_ref().or(self.sitemap.as_ref())?;
        Url::parse(url).ok().and_then(|u| u.host_str().map(site_of))
    }

    /// Whether the crawl visits `url`: http(s), on the site when `same_site`, matching an
    /// `include` pattern when there are any, and no `exclude` one.
    pub fn wants(&self, url: &str) -> bool {
        let Ok(parsed) = Url::parse(url) else {
            return false;
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return false;
        }
        if self.same_site {
            let host = parsed.host_str().map(site_of);
            if host.is_none() || host != self.site() {
                return false;
            }
        }
        (self.include.is_empty() || self.include.iter().any(|p| wildcard(p, url)))
            && !self.exclude.iter().any(|p| wildcard(p, url))
    }
}

/// `url` without its fragment: `/a#top` and `/a` are one page.
pub fn page(url: &str) -> Option<String> {
    let mut parsed = Url::parse(url).ok()?;
    parsed.set_fragment(None);
    Some(parsed.into())
}

/// Whether `text` matches `pattern`, where `*` is any run of characters (none included)
/// and everything else is itself.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// What a sitemap lists: page URLs (`<urlset>`) or, for a sitemap index, more sitemaps.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sitemap {
    pub pages: Vec<String>,
    pub sitemaps: Vec<String>,
}

/// Reads the `<loc>` entries of a sitemap (sitemaps.org protocol) without a full XML
/// parser: each `<loc>` holds one URL, with XML's five entities escaped; those inside
/// `<sitemap>` entries are sitemaps, the others pages.
pub fn sitemap(xml: &str) -> Sitemap {
    let mut out = Sitemap::default();
    let mut rest = xml;
    while let Some(open) = rest.find("<loc>") {
        let before = &rest[..open];
        let after = &rest[open + "<loc>".len()..];
        let Some(close) = after.find("</loc>") else {
            break;
        };
        let loc = unescape(after[..close].trim());
        // Inside a <sitemap> entry when the last entry opened before it is one.
        let in_sitemap = before.rfind("<sitemap>") > before.rfind("<url>");
        if !loc.is_empty() {
            if in_sitemap {
                out.sitemaps.push(loc);
            } else {
                out.pages.push(loc);
            }
        }
        rest = &after[close + "</loc>".len()..];
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Pages that share all but their last path segment, at least this many: their last
/// segment is a variable (`/products/blue-shirt`, `/products/red-hat` → `/products/*`).
const SIBLINGS: usize = 4;

/// The template of each page: its path, with segments that hold a digit or are one of
/// [`SIBLINGS`] or more siblings replaced by `*` (`/products/123` → `/products/*`).
pub fn templates(pages: &[String]) -> HashMap<String, String> {
    let paths: Vec<(String, Vec<String>)> = pages
        .iter()
        .map(|page| {
            let path = Url::parse(page)
                .map(|u| u.path().to_owned())
                .unwrap_or_else(|_| page.clone());
            let segments = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.bytes().any(|b| b.is_ascii_digit()) {
                        "*".to_owned()
                    } else {
                        s.to_owned()
                    }
                })
                .collect();
            (page.clone(), segments)
        })
        .collect();
    let mut siblings: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for (_, segments) in &paths {
        if let Some((_, parent)) = segments.split_last() {
            *siblings.entry(parent.to_vec()).or_default() += 1;
        }
    }
    paths
        .into_iter()
        .map(|(page, mut segments)| {
            if let Some((last, parent)) = segments.split_last_mut() {
                if siblings.get(parent).copied().unwrap_or(0) >= SIBLINGS {
                    *last = "*".into();
                }
            }
            (page, format!("/{}", segments.join("/")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn crawl() -> Crawl {
        Crawl {
            start: Some("https://www.shop.test/".into()),
            sitemap: None,
            max_pages: 50,
            max_depth: 3,
            same_site: true,
            include: vec![],
            exclude: vec!["*/logout*".into()],
        }
    }

    #[test]
    fn a_crawl_stays_on_its_site_and_off_excluded_pages() {
        let c = crawl();
        assert!(c.wants("https://www.shop.test/products/1"));
        assert!(c.wants("http://shop.test/about"), "same registrable domain");
        assert!(!c.wants("https://www.facebook.com/shop"));
        assert!(!c.wants("https://www.shop.test/account/logout?x=1"));
        assert!(!c.wants("mailto:hi@shop.test"));
        let only_products = Crawl {
            include: vec!["*/products/*".into()],
            ..crawl()
        };
        assert!(only_products.wants("https://www.shop.test/products/1"));
        assert!(!only_products.wants("https://www.shop.test/about"));
        let anywhere = Crawl {
            same_site: false,
            ..crawl()
        };
        assert!(anywhere.wants("https://www.facebook.com/shop"));
    }

    #[test]
    fn crawl_settings_are_checked() {
        assert!(crawl().check().is_ok());
        let none = Crawl {
            start: None,
            ..crawl()
        };
        assert!(none.check().unwrap_err().contains("start"));
        let ftp = Crawl {
            start: Some("ftp://x/".into()),
            ..crawl()
        };
        assert!(ftp.check().unwrap_err().contains("crawl.start"));
        let huge = Crawl {
            max_pages: MAX_PAGES + 1,
            ..crawl()
        };
        assert!(huge.check().unwrap_err().contains("max_pages"));
    }

    #[test]
    fn wildcards_match_any_run() {
        assert!(wildcard("*/logout*", "https://x/logout"));
        assert!(wildcard("https://x/*", "https://x/"));
        assert!(wildcard("*a*b*", "xxaxxbxx"));
        assert!(!wildcard("*a*b", "xxaxxbxx"));
        assert!(wildcard("exact", "exact"));
        assert!(!wildcard("exact", "exactly"));
        assert!(!wildcard("a*a", "a"), "the ends may not overlap");
    }

    #[test]
    fn sitemaps_and_sitemap_indexes_are_read() {
        let urlset = r#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://www.shop.test/</loc><lastmod>2025-01-01</lastmod></url>
  <url><loc> https://www.shop.test/search?q=a&amp;page=2 </loc></url>
</urlset>"#;
        assert_eq!(
            sitemap(urlset),
            Sitemap {
                pages: vec![
                    "https://www.shop.test/".into(),
                    "https://www.shop.test/search?q=a&page=2".into()
                ],
                sitemaps: vec![]
            }
        );
        let index = r#"<sitemapindex><sitemap><loc>https://www.shop.test/a.xml</loc></sitemap>
            <sitemap><loc>https://www.shop.test/b.xml</loc></sitemap></sitemapindex>"#;
        assert_eq!(sitemap(index).sitemaps.len(), 2);
        assert!(sitemap(index).pages.is_empty());
        assert_eq!(sitemap("<loc>unclosed"), Sitemap::default());
    }

    #[test]
    fn pages_are_grouped_by_template() {
        let pages: Vec<String> = [
            "https://s.test/",
            "https://s.test/products/123",
            "https://s.test/products/456?color=red",
            "https://s.test/blog/hello-world",
            "https://s.test/blog/second-post",
            "https://s.test/blog/third",
            "https://s.test/blog/fourth",
            "https://s.test/about",
            "https://s.test/contact",
        ]
        .map(String::from)
        .to_vec();
        let t = templates(&pages);
        assert_eq!(t["https://s.test/"], "/");
        assert_eq!(t["https://s.test/products/123"], "/products/*");
        assert_eq!(t["https://s.test/products/456?color=red"], "/products/*");
        assert_eq!(t["https://s.test/blog/hello-world"], "/blog/*");
        assert_eq!(
            t["https://s.test/about"], "/about",
            "three top pages are not siblings enough"
        );
        assert_eq!(
            page("https://s.test/a#top").as_deref(),
            Some("https://s.test/a")
        );
    }

    proptest! {
        #[test]
        fn the_sitemap_reader_never_panics_and_finds_what_it_is_given(
            noise in "[<>a-z/&;:. ]{0,200}",
            locs in prop::collection::vec("https://[a-z]{1,8}\\.test/[a-z0-9/]{0,12}", 0..6)
        ) {
            let _ = sitemap(&noise);
            let xml: String = locs.iter().map(|l| format!("<url><loc>{l}</loc></url>")).collect();
            prop_assert_eq!(sitemap(&format!("<urlset>{xml}</urlset>")).pages, locs);
        }

        #[test]
        fn a_pattern_without_wildcards_matches_only_itself(a in "[a-z/]{0,10}", b in "[a-z/]{0,10}") {
            prop_assert_eq!(wildcard(&a, &b), a == b);
            prop_assert!(wildcard("*", &b));
        }
    }
}
