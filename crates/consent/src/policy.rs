//! Sightline purposes and the policy that turns consent signals into a
//! per-purpose decision, plus the consent state at a point in time from an
//! ordered ledger of such decisions.
//!
//! The mapping file (TOML, format in the crate README section and in
//! [`DEFAULT_MAPPING_TOML`]) says which TCF purposes and special features,
//! Google Consent Mode types, US Privacy / usnat opt-outs, GPC and Segment
//! categories bear on which Sightline purposes. When several signals bear on
//! one purpose, a denial wins over a grant, and a grant over silence.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::google::ConsentModeState;
use crate::gpp::{usnat_value, GppSection, GppString, UsNational};
use crate::{Decoded, Grant, TcString, UsPrivacy, UspFlag};

/// The mapping Sightline ships with; [`Policy::default`] is built from it.
pub const DEFAULT_MAPPING_TOML: &str = include_str!("default_mapping.toml");

/// TCF v2.2 purposes a vendor may base on legitimate interest (1 and 3–6 are
/// consent only).
const TCF_LEGITIMATE_INTEREST_PURPOSES: [u8; 6] = [2, 7, 8, 9, 10, 11];

/// What a signal says about one Sightline purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Granted,
    Denied,
    NotStated,
}

impl Decision {
    /// Combines two statements about one purpose: denial wins, then grant.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Denied, _) | (_, Self::Denied) => Self::Denied,
            (Self::Granted, _) | (_, Self::Granted) => Self::Granted,
            _ => Self::NotStated,
        }
    }
}

impl From<Grant> for Decision {
    fn from(grant: Grant) -> Self {
        match grant {
            Grant::Granted => Self::Granted,
            Grant::Denied => Self::Denied,
        }
    }
}

/// A consent signal the policy can judge.
#[derive(Debug, Clone, Copy)]
pub enum Signal<'a> {
    Tcf(&'a TcString),
    Gpp(&'a GppString),
    UsPrivacy(&'a UsPrivacy),
    UsNational(&'a UsNational),
    ConsentMode(&'a ConsentModeState),
    /// Segment `categoryPreferences`: category → consented.
    SegmentCategories(&'a BTreeMap<String, bool>),
    /// Sightline purposes stated directly: purpose → granted (unknown purposes say nothing).
    Purposes(&'a BTreeMap<String, bool>),
    /// Global Privacy Control (`Sec-GPC: 1`): an opt-out.
    Gpc,
}

impl<'a> From<&'a Decoded> for Signal<'a> {
    fn from(decoded: &'a Decoded) -> Self {
        match decoded {
            Decoded::Tcf(tc) => Self::Tcf(tc),
            Decoded::Gpp(gpp) => Self::Gpp(gpp),
            Decoded::Usp(usp) => Self::UsPrivacy(usp),
        }
    }
}

/// Why a mapping file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("invalid consent mapping TOML: {0}")]
    Toml(String),
    #[error("consent mapping: {section} names purpose {purpose:?}, which is not in `purposes` ({known})")]
    UnknownPurpose {
        section: String,
        purpose: String,
        known: String,
    },
    #[error("consent mapping: key {key:?} in [{section}] is invalid: expected {expected}")]
    InvalidKey {
        section: &'static str,
        key: String,
        expected: &'static str,
    },
}

/// The mapping file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    purposes: Vec<String>,
    #[serde(default)]
    always_granted: Vec<String>,
    #[serde(default)]
    tcf: TcfMapping,
    #[serde(default)]
    google_consent_mode: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    us_privacy: UsPrivacyMapping,
    #[serde(default)]
    usnat: UsNatMapping,
    #[serde(default)]
    gpc: GpcMapping,
    #[serde(default)]
    segment: SegmentMapping,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcfMapping {
    #[serde(default)]
    legitimate_interest: bool,
    #[serde(default)]
    purposes: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    special_features: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsPrivacyMapping {
    #[serde(default)]
    opt_out_sale: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsNatMapping {
    #[serde(default)]
    sale_opt_out: Vec<String>,
    #[serde(default)]
    sharing_opt_out: Vec<String>,
    #[serde(default)]
    targeted_advertising_opt_out: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GpcMapping {
    #[serde(default)]
    opt_out: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentMapping {
    #[serde(default)]
    categories: BTreeMap<String, Vec<String>>,
}

/// A validated mapping from consent signals to Sightline purposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    purposes: Vec<String>,
    always_granted: BTreeSet<String>,
    tcf_legitimate_interest: bool,
    tcf_purposes: BTreeMap<u8, Vec<String>>,
    tcf_special_features: BTreeMap<u8, Vec<String>>,
    consent_mode: BTreeMap<String, Vec<String>>,
    usp_opt_out_sale: Vec<String>,
    usnat_sale_opt_out: Vec<String>,
    usnat_sharing_opt_out: Vec<String>,
    usnat_targeted_advertising_opt_out: Vec<String>,
    gpc_opt_out: Vec<String>,
    /// Keyed by lowercased category name: CMPs differ in capitalisation.
    segment_categories: BTreeMap<String, Vec<String>>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::from_toml(DEFAULT_MAPPING_TOML).expect("the default mapping is valid (tested)")
    }
}

impl Policy {
    /// Parses and validates a mapping file.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let file: MappingFile =
            toml::from_str(text).map_err(|error| PolicyError::Toml(error.to_string()))?;
        let known: BTreeSet<&str> = file.purposes.iter().map(String::as_str).collect();
        let check = |section: &str, purposes: &[String]| match purposes
            .iter()
            .find(|purpose| !known.contains(purpose.as_str()))
        {
            Some(purpose) => Err(PolicyError::UnknownPurpose {
                section: section.to_string(),
                purpose: purpose.clone(),
                known: file.purposes.join(", "),
            }),
            None => Ok(purposes.to_vec()),
        };
        let numbered =
            |section: &'static str, map: &BTreeMap<String, Vec<String>>, max: u8, expected| {
                map.iter()
                    .map(|(key, purposes)| {
                        let id = key
                            .parse::<u8>()
                            .ok()
                            .filter(|id| (1..=max).contains(id))
                            .ok_or_else(|| PolicyError::InvalidKey {
                                section,
                                key: key.clone(),
                                expected,
                            })?;
                        Ok((id, check(&format!("[{section}] {key}"), purposes)?))
                    })
                    .collect::<Result<BTreeMap<_, _>, PolicyError>>()
            };
        for name in file.google_consent_mode.keys() {
            if !ConsentModeState::TYPES.contains(&name.as_str()) {
                return Err(PolicyError::InvalidKey {
                    section: "google_consent_mode",
                    key: name.clone(),
                    expected: "a Consent Mode type: ad_storage, analytics_storage, ad_user_data, \
                               ad_personalization, functionality_storage, personalization_storage, security_storage",
                });
            }
        }
        Ok(Self {
            always_granted: check("always_granted", &file.always_granted)?
                .into_iter()
                .collect(),
            tcf_legitimate_interest: file.tcf.legitimate_interest,
            tcf_purposes: numbered(
                "tcf.purposes",
                &file.tcf.purposes,
                24,
                "a TCF purpose id from 1 to 24",
            )?,
            tcf_special_features: numbered(
                "tcf.special_features",
                &file.tcf.special_features,
                12,
                "a TCF special feature id from 1 to 12",
            )?,
            consent_mode: file
                .google_consent_mode
                .iter()
                .map(|(name, purposes)| {
                    Ok((
                        name.clone(),
                        check(&format!("[google_consent_mode] {name}"), purposes)?,
                    ))
                })
                .collect::<Result<_, PolicyError>>()?,
            usp_opt_out_sale: check("[us_privacy] opt_out_sale", &file.us_privacy.opt_out_sale)?,
            usnat_sale_opt_out: check("[usnat] sale_opt_out", &file.usnat.sale_opt_out)?,
            usnat_sharing_opt_out: check("[usnat] sharing_opt_out", &file.usnat.sharing_opt_out)?,
            usnat_targeted_advertising_opt_out: check(
                "[usnat] targeted_advertising_opt_out",
                &file.usnat.targeted_advertising_opt_out,
            )?,
            gpc_opt_out: check("[gpc] opt_out", &file.gpc.opt_out)?,
            segment_categories: file
                .segment
                .categories
                .iter()
                .map(|(category, purposes)| {
                    Ok((
                        category.to_lowercase(),
                        check(&format!("[segment.categories] {category}"), purposes)?,
                    ))
                })
                .collect::<Result<_, PolicyError>>()?,
            purposes: file.purposes,
        })
    }

    /// Whether the mapping grants `purpose` whatever the signals say (e.g. `necessary`).
    pub fn always_granted(&self, purpose: &str) -> bool {
        self.always_granted.contains(purpose)
    }

    /// An error naming the first of `purposes` this mapping does not define.
    pub fn check_purposes<'a>(
        &self,
        purposes: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), String> {
        match purposes.into_iter().find(|p| !self.purposes.contains(p)) {
            Some(unknown) => Err(format!(
                "unknown purpose {unknown:?}: the purposes are {}",
                self.purposes.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// The configured Sightline purposes, in file order.
    pub fn purposes(&self) -> &[String] {
        &self.purposes
    }

    /// The decision for every configured purpose given these signals together.
    pub fn decide(&self, signals: &[Signal<'_>]) -> BTreeMap<String, Decision> {
        let mut votes = Votes::default();
        for signal in signals {
            self.judge(*signal, &mut votes);
        }
        self.purposes
            .iter()
            .map(|purpose| {
                let decision = if self.always_granted.contains(purpose) {
                    Decision::Granted
                } else {
                    votes.0.get(purpose).copied().unwrap_or(Decision::NotStated)
                };
                (purpose.clone(), decision)
            })
            .collect()
    }

    fn judge(&self, signal: Signal<'_>, votes: &mut Votes) {
        match signal {
            Signal::Tcf(tc) => self.judge_tcf(tc, votes),
            Signal::Gpp(gpp) => {
                for section in &gpp.sections {
                    match section {
                        GppSection::TcfEuV2(tc) => self.judge_tcf(tc, votes),
                        GppSection::UsPrivacy(usp) => self.judge(Signal::UsPrivacy(usp), votes),
                        GppSection::UsNational(usnat) => {
                            self.judge(Signal::UsNational(usnat), votes)
                        }
                        GppSection::Other { .. } => {}
                    }
                }
            }
            Signal::UsPrivacy(usp) => {
                let decision = match usp.opt_out_sale {
                    UspFlag::Yes => Decision::Denied,
                    UspFlag::No => Decision::Granted,
                    UspFlag::NotApplicable => Decision::NotStated,
                };
                votes.cast(&self.usp_opt_out_sale, decision);
            }
            Signal::UsNational(usnat) => {
                let opt_outs = [
                    (&self.usnat_sale_opt_out, usnat.sale_opt_out),
                    (&self.usnat_sharing_opt_out, usnat.sharing_opt_out),
                    (
                        &self.usnat_targeted_advertising_opt_out,
                        usnat.targeted_advertising_opt_out,
                    ),
                ];
                for (purposes, code) in opt_outs {
                    let decision = match code {
                        usnat_value::YES => Decision::Denied,
                        usnat_value::NO => Decision::Granted,
                        _ => Decision::NotStated,
                    };
                    votes.cast(purposes, decision);
                }
                if usnat.gpc == Some(true) {
                    self.judge(Signal::Gpc, votes);
                }
            }
            Signal::ConsentMode(state) => {
                for (name, purposes) in &self.consent_mode {
                    if let Some(grant) = state.get(name) {
                        votes.cast(purposes, grant.into());
                    }
                }
            }
            Signal::SegmentCategories(categories) => {
                for (category, &granted) in categories {
                    if let Some(purposes) = self.segment_categories.get(&category.to_lowercase()) {
                        votes.cast(
                            purposes,
                            if granted {
                                Decision::Granted
                            } else {
                                Decision::Denied
                            },
                        );
                    }
                }
            }
            Signal::Purposes(stated) => {
                for (purpose, &granted) in stated {
                    if self.purposes.contains(purpose) {
                        votes.cast(std::slice::from_ref(purpose), granted_if(granted));
                    }
                }
            }
            Signal::Gpc => votes.cast(&self.gpc_opt_out, Decision::Denied),
        }
    }

    /// A TC string states every purpose and special feature: a flag not set
    /// is a refusal, not silence.
    fn judge_tcf(&self, tc: &TcString, votes: &mut Votes) {
        for (&id, purposes) in &self.tcf_purposes {
            let consented = tc.purposes_consent.contains(&id);
            let legitimate_interest = self.tcf_legitimate_interest
                && TCF_LEGITIMATE_INTEREST_PURPOSES.contains(&id)
                && tc.purposes_li_transparency.contains(&id);
            votes.cast(purposes, granted_if(consented || legitimate_interest));
        }
        for (&id, purposes) in &self.tcf_special_features {
            votes.cast(
                purposes,
                granted_if(tc.special_feature_opt_ins.contains(&id)),
            );
        }
    }
}

fn granted_if(granted: bool) -> Decision {
    if granted {
        Decision::Granted
    } else {
        Decision::Denied
    }
}

/// Accumulated statements per purpose.
#[derive(Default)]
struct Votes(BTreeMap<String, Decision>);

impl Votes {
    fn cast(&mut self, purposes: &[String], decision: Decision) {
        if decision == Decision::NotStated {
            return;
        }
        for purpose in purposes {
            let current = self.0.entry(purpose.clone()).or_insert(Decision::NotStated);
            *current = current.and(decision);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::Grant;

    #[test]
    fn default_mapping_is_valid_and_lists_the_default_purposes() {
        let policy = Policy::default();
        assert_eq!(
            policy.purposes(),
            [
                "necessary",
                "functional",
                "analytics",
                "advertising",
                "personalization",
                "sale_or_share"
            ]
        );
    }

    #[test]
    fn gpc_denies_sale_and_advertising_only() {
        let result = Policy::default().decide(&[Signal::Gpc]);
        assert_eq!(result["sale_or_share"], Decision::Denied);
        assert_eq!(result["advertising"], Decision::Denied);
        assert_eq!(result["analytics"], Decision::NotStated);
        assert_eq!(result["necessary"], Decision::Granted);
    }

    #[test]
    fn tcf_refusal_of_one_mapped_purpose_denies() {
        let tc = TcString {
            purposes_consent: vec![1, 2, 3, 4, 7, 8, 9],
            ..TcString::default()
        };
        let result = Policy::default().decide(&[Signal::Tcf(&tc)]);
        assert_eq!(result["advertising"], Decision::Granted);
        assert_eq!(result["analytics"], Decision::Granted);
        assert_eq!(
            result["personalization"],
            Decision::Denied,
            "purposes 5 and 6 not consented"
        );
        assert_eq!(result["sale_or_share"], Decision::NotStated);
    }

    #[test]
    fn consent_mode_and_segment_signals_combine_with_denial_winning() {
        let state = ConsentModeState {
            analytics_storage: Some(Grant::Granted),
            ad_storage: Some(Grant::Granted),
            ..ConsentModeState::default()
        };
        let categories = BTreeMap::from([("advertising".to_string(), false)]);
        let result = Policy::default().decide(&[
            Signal::ConsentMode(&state),
            Signal::SegmentCategories(&categories),
        ]);
        assert_eq!(result["analytics"], Decision::Granted);
        assert_eq!(result["advertising"], Decision::Denied);
    }

    #[test]
    fn rejects_unknown_purposes_and_keys() {
        let unknown = "purposes = [\"a\"]\n[gpc]\nopt_out = [\"b\"]\n";
        assert!(matches!(
            Policy::from_toml(unknown),
            Err(PolicyError::UnknownPurpose { .. })
        ));
        let bad_key = "purposes = [\"a\"]\n[tcf.purposes]\n30 = [\"a\"]\n";
        assert!(matches!(
            Policy::from_toml(bad_key),
            Err(PolicyError::InvalidKey { .. })
        ));
        assert!(matches!(
            Policy::from_toml("purposes = 1"),
            Err(PolicyError::Toml(_))
        ));
    }
}
