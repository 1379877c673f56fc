//! Reading a [`ChannelInput`] from a Segment event.

use serde_json::Value;

use super::{url, ChannelInput};

fn text(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

impl ChannelInput {
    /// Page URL and referrer from `properties.url`/`properties.referrer` or
    /// `context.page.url`/`context.page.referrer`; UTM tags from `context.campaign`
    /// (`name`, `source`, `medium`, `term`, `content`), else from the URL's
    /// `utm_*` query parameters.
    pub fn from_segment_event(event: &Value) -> Self {
        let url = text(event, "/properties/url").or_else(|| text(event, "/context/page/url"));
        let referrer =
            text(event, "/properties/referrer").or_else(|| text(event, "/context/page/referrer"));
        let campaign = |key: &str| text(event, &format!("/context/campaign/{key}"));
        Self {
            utm_source: campaign("source"),
            utm_medium: campaign("medium"),
            utm_campaign: campaign("name"),
            utm_term: campaign("term"),
            utm_content: campaign("content"),
            url,
            referrer,
        }
        .with_url_tags()
    }

    /// A hit known by its page URL and referrer; UTM tags come from the URL.
    pub fn from_url(url: &str, referrer: Option<&str>) -> Self {
        Self {
            url: Some(url.to_owned()),
            referrer: referrer.map(str::to_owned),
            ..Self::default()
        }
        .with_url_tags()
    }

    /// Fills the UTM tags that are still missing from the URL's `utm_*` parameters.
    pub fn with_url_tags(mut self) -> Self {
        if let Some(url) = self.url.as_deref() {
            let from_query =
                |name: &str| url::query_param(url, name).filter(|v| !v.trim().is_empty());
            for (tag, name) in [
                (&mut self.utm_source, "utm_source"),
                (&mut self.utm_medium, "utm_medium"),
                (&mut self.utm_campaign, "utm_campaign"),
                (&mut self.utm_term, "utm_term"),
                (&mut self.utm_content, "utm_content"),
            ] {
                if tag.is_none() {
                    *tag = from_query(name);
                }
            }
        }
        self
    }
}
