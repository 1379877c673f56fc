//! IAB Global Privacy Platform strings: a header listing section ids, then one
//! encoded section per id, all separated by `~`. Sections 2 (TCF EU v2),
//! 6 (US Privacy) and 7 (US National) are decoded; others are kept raw.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::bits::BitReader;
use crate::{DecodeError, TcString, UsPrivacy};

const HEADER: &str = "GPP header";
const USNAT_CORE: &str = "GPP usnat core segment";
const USNAT_GPC: &str = "GPP usnat GPC subsection";

const HEADER_TYPE: u64 = 3;
const HEADER_VERSION: u64 = 1;

/// Section ids of the decoded sections.
pub const SECTION_TCF_EU_V2: u16 = 2;
pub const SECTION_US_PRIVACY: u16 = 6;
pub const SECTION_US_NATIONAL: u16 = 7;

/// The API prefix the GPP spec gives each section id.
pub fn section_name(id: u16) -> &'static str {
    const NAMES: [&str; 28] = [
        "unknown",
        "tcfeuv1",
        "tcfeuv2",
        "header",
        "signalintegrity",
        "tcfcav1",
        "uspv1",
        "usnat",
        "usca",
        "usva",
        "usco",
        "usut",
        "usct",
        "usfl",
        "usmt",
        "usor",
        "ustx",
        "usde",
        "usia",
        "usne",
        "usnh",
        "usnj",
        "ustn",
        "usmn",
        "usmd",
        "usin",
        "usky",
        "usri",
    ];
    NAMES.get(usize::from(id)).copied().unwrap_or("unknown")
}

/// A decoded GPP string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GppString {
    /// Header version; always 1.
    pub version: u8,
    /// Section ids in header order (ascending).
    pub section_ids: Vec<u16>,
    /// One entry per section id, in the same order.
    pub sections: Vec<GppSection>,
}

/// One GPP section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GppSection {
    TcfEuV2(Box<TcString>),
    UsPrivacy(UsPrivacy),
    UsNational(UsNational),
    /// A section this crate does not decode, kept as sent.
    Other {
        id: u16,
        raw: String,
    },
}

impl GppSection {
    pub fn id(&self) -> u16 {
        match self {
            Self::TcfEuV2(_) => SECTION_TCF_EU_V2,
            Self::UsPrivacy(_) => SECTION_US_PRIVACY,
            Self::UsNational(_) => SECTION_US_NATIONAL,
            Self::Other { id, .. } => *id,
        }
    }
}

impl Serialize for GppSection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.id())?;
        map.serialize_entry("name", section_name(self.id()))?;
        match self {
            Self::TcfEuV2(tc) => map.serialize_entry("value", tc)?,
            Self::UsPrivacy(usp) => map.serialize_entry("value", usp)?,
            Self::UsNational(usnat) => map.serialize_entry("value", usnat)?,
            Self::Other { raw, .. } => map.serialize_entry("raw", raw)?,
        }
        map.end()
    }
}

impl GppString {
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let mut parts = text.trim().split('~');
        let header = parts.next().unwrap_or_default();
        let section_ids = decode_header(&mut BitReader::from_base64url(header, HEADER)?)?;
        let encoded: Vec<&str> = parts.collect();
        if encoded.len() != section_ids.len() {
            return Err(DecodeError::GppSectionCount {
                declared: section_ids.len(),
                found: encoded.len(),
            });
        }
        let sections = section_ids
            .iter()
            .zip(encoded)
            .map(|(&id, raw)| decode_section(id, raw))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            version: HEADER_VERSION as u8,
            section_ids,
            sections,
        })
    }

    /// The TCF EU v2 section, if present.
    pub fn tcf_eu_v2(&self) -> Option<&TcString> {
        self.sections.iter().find_map(|section| match section {
            GppSection::TcfEuV2(tc) => Some(tc.as_ref()),
            _ => None,
        })
    }

    /// The US Privacy section, if present.
    pub fn us_privacy(&self) -> Option<&UsPrivacy> {
        self.sections.iter().find_map(|section| match section {
            GppSection::UsPrivacy(usp) => Some(usp),
            _ => None,
        })
    }

    /// The US National section, if present.
    pub fn us_national(&self) -> Option<&UsNational> {
        self.sections.iter().find_map(|section| match section {
            GppSection::UsNational(usnat) => Some(usnat),
            _ => None,
        })
    }
}

/// Type (6 bits, 3), version (6 bits, 1), then the section ids as a
/// Fibonacci-coded range: a 12-bit count, then per entry an IsRange flag and
/// one or two Fibonacci integers, each an offset from the previous id.
fn decode_header(r: &mut BitReader) -> Result<Vec<u16>, DecodeError> {
    let header_type = r.read(6, "Type")?;
    if header_type != HEADER_TYPE {
        return Err(r.invalid(
            "Type",
            0,
            header_type,
            "3 (the GPP header), i.e. a string starting with 'DB'",
        ));
    }
    let version = r.read(6, "Version")?;
    if version != HEADER_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            format: "GPP",
            found: version,
            supported: HEADER_VERSION,
        });
    }
    let count = r.read(12, "SectionIds.NumEntries")?;
    let mut ids = Vec::new();
    let mut previous = 0u64;
    for _ in 0..count {
        let is_range = r.read_bool("SectionIds.IsRange")?;
        let offset = r.position();
        let start = previous + r.read_fibonacci("SectionIds.Start")?;
        let end = if is_range {
            start + r.read_fibonacci("SectionIds.End")?
        } else {
            start
        };
        let end = u16::try_from(end)
            .map_err(|_| r.invalid("SectionIds", offset, end, "section ids up to 65535"))?;
        ids.extend(start as u16..=end);
        previous = u64::from(end);
    }
    Ok(ids)
}

fn decode_section(id: u16, raw: &str) -> Result<GppSection, DecodeError> {
    let name = section_name(id);
    if raw.trim().is_empty() {
        return Err(DecodeError::EmptyGppSection { id, name });
    }
    let in_section = |error| DecodeError::InGppSection {
        id,
        name,
        error: Box::new(error),
    };
    Ok(match id {
        SECTION_TCF_EU_V2 => {
            GppSection::TcfEuV2(Box::new(TcString::decode(raw).map_err(in_section)?))
        }
        SECTION_US_PRIVACY => GppSection::UsPrivacy(UsPrivacy::decode(raw).map_err(in_section)?),
        SECTION_US_NATIONAL => GppSection::UsNational(UsNational::decode(raw).map_err(in_section)?),
        _ => GppSection::Other {
            id,
            raw: raw.to_string(),
        },
    })
}

/// GPP section 7, the US multi-state privacy agreement (usnat), versions 1
/// and 2. Values are the spec's 2-bit codes: 0 not applicable, 1 yes (notice
/// given / opted out / no consent), 2 no (see docs/consent-json.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsNational {
    pub version: u8,
    pub sharing_notice: u8,
    pub sale_opt_out_notice: u8,
    pub sharing_opt_out_notice: u8,
    pub targeted_advertising_opt_out_notice: u8,
    pub sensitive_data_processing_opt_out_notice: u8,
    pub sensitive_data_limit_use_notice: u8,
    pub sale_opt_out: u8,
    pub sharing_opt_out: u8,
    pub targeted_advertising_opt_out: u8,
    /// 12 entries in version 1, 16 in version 2.
    pub sensitive_data_processing: Vec<u8>,
    /// 2 entries in version 1, 3 in version 2.
    pub known_child_sensitive_data_consents: Vec<u8>,
    pub personal_data_consents: u8,
    pub mspa_covered_transaction: u8,
    pub mspa_opt_out_option_mode: u8,
    pub mspa_service_provider_mode: u8,
    /// The GPC subsection's flag; `None` when the subsection is absent.
    pub gpc: Option<bool>,
}

/// Values of a usnat 2-bit field.
pub mod usnat_value {
    pub const NOT_APPLICABLE: u8 = 0;
    /// Notice given, opted out, or consent not given (per field).
    pub const YES: u8 = 1;
    pub const NO: u8 = 2;
}

impl UsNational {
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let mut parts = text.split('.');
        let r = &mut BitReader::from_base64url(parts.next().unwrap_or_default(), USNAT_CORE)?;
        let version = r.read_u8(6, "Version")?;
        let (sensitive, child) = match version {
            1 => (12, 2),
            2 => (16, 3),
            other => {
                return Err(DecodeError::UnsupportedVersion {
                    format: "GPP usnat",
                    found: other.into(),
                    supported: 2,
                })
            }
        };
        let mut usnat = Self {
            version,
            sharing_notice: read_code(r, "SharingNotice")?,
            sale_opt_out_notice: read_code(r, "SaleOptOutNotice")?,
            sharing_opt_out_notice: read_code(r, "SharingOptOutNotice")?,
            targeted_advertising_opt_out_notice: read_code(r, "TargetedAdvertisingOptOutNotice")?,
            sensitive_data_processing_opt_out_notice: read_code(
                r,
                "SensitiveDataProcessingOptOutNotice",
            )?,
            sensitive_data_limit_use_notice: read_code(r, "SensitiveDataLimitUseNotice")?,
            sale_opt_out: read_code(r, "SaleOptOut")?,
            sharing_opt_out: read_code(r, "SharingOptOut")?,
            targeted_advertising_opt_out: read_code(r, "TargetedAdvertisingOptOut")?,
            sensitive_data_processing: (0..sensitive)
                .map(|_| read_code(r, "SensitiveDataProcessing"))
                .collect::<Result<_, _>>()?,
            known_child_sensitive_data_consents: (0..child)
                .map(|_| read_code(r, "KnownChildSensitiveDataConsents"))
                .collect::<Result<_, _>>()?,
            personal_data_consents: read_code(r, "PersonalDataConsents")?,
            mspa_covered_transaction: read_code(r, "MspaCoveredTransaction")?,
            mspa_opt_out_option_mode: read_code(r, "MspaOptOutOptionMode")?,
            mspa_service_provider_mode: read_code(r, "MspaServiceProviderMode")?,
            gpc: None,
        };
        if let Some(subsection) = parts.next() {
            let r = &mut BitReader::from_base64url(subsection, USNAT_GPC)?;
            let subsection_type = r.read(2, "SubsectionType")?;
            if subsection_type != 1 {
                return Err(r.invalid(
                    "SubsectionType",
                    0,
                    subsection_type,
                    "1 (the GPC subsection)",
                ));
            }
            usnat.gpc = Some(r.read_bool("Gpc")?);
        }
        Ok(usnat)
    }
}

/// A 2-bit usnat code; 3 is undefined by the spec.
fn read_code(r: &mut BitReader, field: &'static str) -> Result<u8, DecodeError> {
    let offset = r.position();
    match r.read_u8(2, field)? {
        3 => Err(r.invalid(field, offset, 3, "0 (not applicable), 1 (yes) or 2 (no)")),
        code => Ok(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_spec_header_example() {
        // The GPP spec's example header for sections 2 and 6.
        let header =
            decode_header(&mut BitReader::from_base64url("DBACNY", HEADER).unwrap()).unwrap();
        assert_eq!(header, vec![2, 6]);
    }

    #[test]
    fn keeps_unknown_sections_raw() {
        // Header listing section 8 (usca) only: count 1, single, fib(8) = 000011.
        let gpp = GppString::decode("DBABBg~BVQqAAAAAgA").unwrap();
        assert_eq!(gpp.section_ids, vec![8]);
        assert_eq!(
            gpp.sections,
            vec![GppSection::Other {
                id: 8,
                raw: "BVQqAAAAAgA".into()
            }]
        );
    }
}
