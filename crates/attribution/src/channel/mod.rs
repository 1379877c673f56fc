//! Channel grouping: GA4's default channel group, evaluated in order, first match
//! wins, with our own source lists and optional user rules evaluated first.
//! The rules are documented in `docs/channels.md`.

mod rules;
mod segment;
mod sources;
pub(crate) mod url;

use serde::Serialize;

use rules::Rule;
pub use rules::SourceCategory;

/// What a hit tells about where the visitor came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelInput {
    pub url: Option<String>,
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
}

/// Source, medium and campaign as GA4 derives them before grouping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficSource {
    pub source: String,
    pub medium: String,
    pub campaign: Option<String>,
    /// The ad click id that decided source or medium, if any.
    pub click_id: Option<&'static str>,
}

/// Ad click ids and the source and medium each implies when UTM tags are absent.
const CLICK_IDS: &[(&str, &str, &str)] = &[
    ("gclid", "google", "cpc"),
    ("gbraid", "google", "cpc"),
    ("wbraid", "google", "cpc"),
    ("msclkid", "bing", "cpc"),
    ("fbclid", "facebook", "paid"),
    ("ttclid", "tiktok", "paid"),
    ("li_fat_id", "linkedin", "paid"),
];

impl ChannelInput {
    /// True when the hit carries campaign tags or an ad click id, i.e. it is a new
    /// touch even in the middle of a session.
    pub fn has_campaign_signals(&self) -> bool {
        self.utm_source.is_some()
            || self.utm_medium.is_some()
            || self.utm_campaign.is_some()
            || self.click_id().is_some()
    }

    fn click_id(&self) -> Option<&'static (&'static str, &'static str, &'static str)> {
        let url = self.url.as_deref()?;
        CLICK_IDS
            .iter()
            .find(|(name, _, _)| url::query_param(url, name).is_some_and(|v| !v.is_empty()))
    }

    /// Source and medium the way GA4 fills them: UTM tags first, then the click id,
    /// then the referrer (a referrer on the page's own host is ignored), else direct.
    pub(crate) fn traffic_source(&self, lists: &rules::SourceLists) -> TrafficSource {
        let clean = |value: &Option<String>| {
            value
                .as_deref()
                .map(|v| v.trim().to_lowercase())
                .filter(|v| !v.is_empty())
        };
        let click = self.click_id();
        let referrer_host = self
            .referrer
            .as_deref()
            .and_then(url::host)
            .filter(|host| Some(host) != self.url.as_deref().and_then(url::host).as_ref());
        let referrer_source =
            referrer_host.map(|h| h.strip_prefix("www.").map(str::to_owned).unwrap_or(h));

        let utm_source = clean(&self.utm_source);
        let utm_medium = clean(&self.utm_medium);
        let source = utm_source
            .clone()
            .or_else(|| click.map(|(_, source, _)| source.to_string()))
            .or_else(|| referrer_source.clone())
            .unwrap_or_else(|| "(direct)".to_owned());
        let medium = utm_medium.clone().unwrap_or_else(|| match click {
            Some((_, _, medium)) => medium.to_string(),
            None if utm_source.is_some() => "(not set)".to_owned(),
            None if referrer_source.is_some() => {
                if lists.matches(SourceCategory::Search, &source) {
                    "organic".to_owned()
                } else {
                    "referral".to_owned()
                }
            }
            None => "(none)".to_owned(),
        });
        let click_id = click
            .filter(|_| utm_source.is_none() || utm_medium.is_none())
            .map(|(name, _, _)| *name);
        TrafficSource {
            source,
            medium,
            campaign: clean(&self.utm_campaign),
            click_id,
        }
    }
}

/// Groups hits into channels: user rules first, then GA4's default channel group.
#[derive(Debug, Clone, Default)]
pub struct ChannelGrouper {
    rules: Vec<Rule>,
    lists: rules::SourceLists,
}

impl ChannelGrouper {
    /// A grouper configured by a rules file (format in `docs/channels.md`).
    pub fn from_toml(text: &str) -> crate::Result<Self> {
        let (rules, lists) = rules::parse(text)?;
        Ok(Self { rules, lists })
    }

    /// The channel of one hit.
    pub fn channel(&self, input: &ChannelInput) -> String {
        self.channel_of(&input.traffic_source(&self.lists))
    }

    /// Source, medium and campaign the way GA4 fills them: UTM tags first, then the
    /// ad click id, then the referrer (one on the page's own host is ignored), else
    /// `(direct)` / `(none)`.
    pub fn traffic_source(&self, input: &ChannelInput) -> TrafficSource {
        input.traffic_source(&self.lists)
    }

    /// The channel of an already derived source, medium and campaign.
    pub fn channel_of(&self, traffic: &TrafficSource) -> String {
        let source = traffic.source.to_lowercase();
        let medium = traffic.medium.to_lowercase();
        let campaign = traffic.campaign.as_deref().unwrap_or("").to_lowercase();
        self.rules
            .iter()
            .find(|rule| rule.matches(&source, &medium, &campaign, &self.lists))
            .map(|rule| rule.channel.clone())
            .unwrap_or_else(|| default_channel(&source, &medium, &campaign, &self.lists).into())
    }
}

/// GA4's paid media medium: `^(.*cp.*|ppc|retargeting|paid.*)$`.
fn is_paid_medium(medium: &str) -> bool {
    medium.contains("cp")
        || medium == "ppc"
        || medium == "retargeting"
        || medium.starts_with("paid")
}

/// GA4's shopping campaign: `^(.*(([^a-df-z]|^)shop|shopping).*)$`, i.e. "shopping", or
/// "shop" at the start or after anything but a letter other than `e` (so `eshop`
/// and `summer-shop` match, `workshop` does not).
fn is_shopping_campaign(campaign: &str) -> bool {
    campaign.contains("shopping")
        || campaign.match_indices("shop").any(|(i, _)| {
            campaign[..i]
                .chars()
                .next_back()
                .is_none_or(|c| c == 'e' || !c.is_ascii_lowercase())
        })
}

fn one_of(value: &str, options: &[&str]) -> bool {
    options.contains(&value)
}

/// GA4's default channel group, rules in GA4's order.
fn default_channel(
    source: &str,
    medium: &str,
    campaign: &str,
    lists: &rules::SourceLists,
) -> &'static str {
    use SourceCategory::*;
    let paid = is_paid_medium(medium);
    let shopping_site = lists.matches(Shopping, source);
    let shopping_campaign = is_shopping_campaign(campaign);
    let email = ["email", "e-mail", "e_mail", "e mail"];
    if source == "(direct)" && one_of(medium, &["(none)", "(not set)"]) {
        "Direct"
    } else if campaign.contains("cross-network") {
        "Cross-network"
    } else if (shopping_site || shopping_campaign) && paid {
        "Paid Shopping"
    } else if lists.matches(Search, source) && paid {
        "Paid Search"
    } else if lists.matches(Social, source) && paid {
        "Paid Social"
    } else if lists.matches(Video, source) && paid {
        "Paid Video"
    } else if one_of(
        medium,
        &["display", "banner", "expandable", "interstitial", "cpm"],
    ) {
        "Display"
    } else if paid {
        "Paid Other"
    } else if shopping_site || shopping_campaign {
        "Organic Shopping"
    } else if lists.matches(Social, source)
        || one_of(
            medium,
            &[
                "social",
                "social-network",
                "social-media",
                "sm",
                "social network",
                "social media",
            ],
        )
    {
        "Organic Social"
    } else if lists.matches(Video, source) || medium.contains("video") {
        "Organic Video"
    } else if lists.matches(Search, source) || medium == "organic" {
        "Organic Search"
    } else if one_of(source, &email) || one_of(medium, &email) {
        "Email"
    } else if medium == "affiliate" {
        "Affiliates"
    } else if one_of(medium, &["referral", "app", "link"]) {
        "Referral"
    } else if medium == "audio" {
        "Audio"
    } else if source == "sms" || medium == "sms" {
        "SMS"
    } else if medium.ends_with("push")
        || medium.contains("mobile")
        || medium.contains("notification")
        || source == "firebase"
    {
        "Mobile Push Notifications"
    } else {
        "Unassigned"
    }
}
