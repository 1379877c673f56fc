//! Consent banners as sites have them: recipes for the common consent management
//! platforms (OneTrust, Cookiebot, Didomi, Usercentrics, Quantcast Choice, TrustArc,
//! Google's Privacy & messaging, Sourcepoint), used when a journey names no selectors of
//! its own for accept-all or reject-all. Pure: the scripts the browser runs (`cmp.js` in
//! the page, `frame.js` in each frame for banners that are cross-origin frames) and what
//! their answers mean; `browser.rs` runs them until a CMP is recognised or the wait ends.
//!
//! A recipe recognises its CMP by its globals, its elements or its script's host, makes the
//! choice through the CMP's own JavaScript API where it has one (`OneTrust.RejectAll()`,
//! `Cookiebot.submitCustomConsent(…)`, `Didomi.setUserDisagreeToAll()`,
//! `UC_UI.denyAllConsents()`, …), else clicks its known button, also inside open shadow
//! roots and frames.

use crate::vendor::Category;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The choice a scenario makes on the banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    AcceptAll,
    RejectAll,
    /// Some purposes: made through a CMP whose API takes them, by standard groups
    /// (Cookiebot's and OneTrust's categories) or by the site's own ids (Didomi's purposes
    /// and vendors, Usercentrics' services).
    Custom(Grants, CmpIds),
}

/// What a custom choice grants in the CMPs whose APIs take the site's own ids, as the
/// site's CMP configuration names them (`[consent.custom.NAME.cmp_ids]`): everything not
/// named is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmpIds {
    /// Didomi purpose ids (`Didomi.getPurposes()`).
    #[serde(default)]
    pub didomi_purposes: Vec<String>,
    /// Didomi vendor ids (`Didomi.getVendors()`); with none named, a vendor is granted
    /// when every purpose it asks consent for is.
    #[serde(default)]
    pub didomi_vendors: Vec<String>,
    /// Usercentrics service ids (the data processing services' template ids).
    #[serde(default)]
    pub usercentrics_services: Vec<String>,
}

impl CmpIds {
    /// The first id that is empty, as its key and index, for the journey's error.
    pub fn empty_id(&self) -> Option<String> {
        [
            ("didomi_purposes", &self.didomi_purposes),
            ("didomi_vendors", &self.didomi_vendors),
            ("usercentrics_services", &self.usercentrics_services),
        ]
        .into_iter()
        .find_map(|(key, ids)| {
            let i = ids.iter().position(|id| id.trim().is_empty())?;
            Some(format!("{key}[{i}]"))
        })
    }
}

/// The CMPs' common purpose groups a custom choice grants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    /// Statistics / performance: analytics, session replay, A/B testing.
    pub analytics: bool,
    /// Marketing / targeting: advertising, customer data, marketing automation.
    pub advertising: bool,
    /// Preferences / functional: support widgets.
    pub functional: bool,
    /// Social media.
    pub social: bool,
}

impl Grants {
    /// The groups a custom choice granting the catalog `categories` grants: each group by
    /// its main category (a CMP cannot grant analytics without the rest of its group).
    pub fn of(categories: &[Category]) -> Grants {
        Grants {
            analytics: categories.contains(&Category::Analytics),
            advertising: categories.contains(&Category::Advertising),
            functional: categories.contains(&Category::Support),
            social: categories.contains(&Category::Social),
        }
    }
}

impl Choice {
    pub fn as_str(&self) -> &'static str {
        match self {
            Choice::AcceptAll => "accept_all",
            Choice::RejectAll => "reject_all",
            Choice::Custom(..) => "custom",
        }
    }

    /// The choice as the scripts take it: `{…grants, "kind"}`, and for a custom choice
    /// `"ids"`, the site's own.
    fn json(&self) -> String {
        let grants = match self {
            Choice::Custom(grants, _) => *grants,
            _ => Grants::default(),
        };
        let mut value = serde_json::to_value(grants).unwrap_or_default();
        value["kind"] = self.as_str().into();
        if let Choice::Custom(_, ids) = self {
            value["ids"] = serde_json::to_value(ids).unwrap_or_default();
        }
        value.to_string()
    }
}

/// What the scanner found of a consent banner and did with it, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banner {
    /// The CMP recognised (`onetrust`, `cookiebot`, …), if any.
    pub cmp: Option<String>,
    /// How the choice was made: `api` (the CMP's JavaScript API) or `selector` (its
    /// button clicked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Whether the choice was made.
    pub made: bool,
    /// Why not, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The script that recognises the page's CMP and, when `act`, makes `choice` through it.
/// Recognising first and acting after lets the scanner mark when the choice was made.
pub fn page_script(choice: &Choice, act: bool) -> String {
    format!("({})({}, {act})", include_str!("cmp.js"), choice.json())
}

/// The script run in each frame: a banner that is a frame of its own, found and, when
/// `act`, clicked.
pub fn frame_script(choice: &Choice, act: bool) -> String {
    format!("({})({}, {act})", include_str!("frame.js"), choice.json())
}

/// A script's answer as a banner: `None` while no CMP is recognised (it may still be
/// loading), and for an answer that is not one of ours.
pub fn read(answer: &Value) -> Option<Banner> {
    serde_json::from_value::<Banner>(answer.clone())
        .ok()
        .filter(|banner| banner.cmp.is_some())
}

/// The banner of a page where no CMP the recipes know appeared within `waited`.
pub fn not_found(choice: &Choice, waited: Duration) -> Banner {
    Banner {
        cmp: None,
        method: None,
        made: false,
        detail: Some(format!(
            "no consent banner of a CMP the scanner knows appeared within {}s, and the journey names no selectors for this choice: give [consent.{}] click = [\"…\"]",
            waited.as_secs(),
            match choice {
                Choice::Custom(..) => "custom.NAME".to_owned(),
                other => other.as_str().replace('_', "-"),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scripts_call_their_recipes_with_the_choice() {
        let page = page_script(&Choice::RejectAll, true);
        assert!(page.starts_with("(// The consent banner recipes"), "{page}");
        assert!(
            page.ends_with(
                r#")({"analytics":false,"advertising":false,"functional":false,"social":false,"kind":"reject_all"}, true)"#
            ),
            "{page}"
        );
        for api in [
            "OneTrust.RejectAll()",
            "Cookiebot.submitCustomConsent(false, false, false)",
            "Didomi.setUserDisagreeToAll()",
            "UC_UI.denyAllConsents()",
        ] {
            assert!(page.contains(api), "{api}");
        }
        assert!(
            frame_script(&Choice::AcceptAll, false).ends_with(r#""kind":"accept_all"}, false)"#)
        );
        let ids = CmpIds {
            didomi_purposes: vec!["analytics-Xb4".into()],
            ..CmpIds::default()
        };
        let custom = page_script(
            &Choice::Custom(
                Grants::of(&[
                    Category::Analytics,
                    Category::SessionReplay,
                    Category::AbTesting,
                ]),
                ids,
            ),
            true,
        );
        assert!(custom.contains(r#"{"analytics":true,"advertising":false,"functional":false,"social":false,"kind":"custom","ids":{"didomi_purposes":["analytics-Xb4"],"didomi_vendors":[],"usercentrics_services":[]}}, true)"#), "{custom}");
        for api in [
            "UpdateConsent",
            "Didomi.setCurrentUserStatus",
            "__ucCmp.updateServicesConsents",
            "UC_UI.acceptServices",
        ] {
            assert!(custom.contains(api), "{api}");
        }
    }

    #[test]
    fn answers_are_read_as_banners() {
        assert_eq!(read(&json!({"cmp": null, "made": false})), None);
        assert_eq!(read(&json!("garbage")), None);
        assert_eq!(
            read(&json!({"cmp": "didomi", "method": "api", "made": true})),
            Some(Banner {
                cmp: Some("didomi".into()),
                method: Some("api".into()),
                made: true,
                detail: None
            })
        );
        let missing = not_found(&Choice::AcceptAll, Duration::from_secs(10));
        assert!(!missing.made);
        assert!(missing.detail.unwrap().contains("[consent.accept-all]"));
    }
}
