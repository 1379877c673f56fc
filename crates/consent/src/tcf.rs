//! IAB TCF v2.2 TC strings: the core segment and the optional disclosed
//! vendors, allowed vendors and publisher TC segments, decoded and encoded.
//!
//! Layout from the IAB spec "Consent string and vendor list formats v2": the
//! segments are joined by `.`, each is base64url of big-endian bit fields; the
//! core comes first, every other segment opens with a 3-bit segment type.

use serde::{Serialize, Serializer};

use crate::bits::{BitReader, BitWriter};
use crate::{DecodeError, EncodeError};

const CORE: &str = "TCF core segment";
const OPTIONAL: &str = "TCF optional segment";
const DISCLOSED: &str = "TCF disclosed vendors segment";
const ALLOWED: &str = "TCF allowed vendors segment";
const PUBLISHER: &str = "TCF publisher TC segment";

const SEGMENT_DISCLOSED_VENDORS: u64 = 1;
const SEGMENT_ALLOWED_VENDORS: u64 = 2;
const SEGMENT_PUBLISHER_TC: u64 = 3;

const PURPOSES: usize = 24;
const SPECIAL_FEATURES: usize = 12;

/// A point in time as TCF stores it: deciseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Deciseconds(pub u64);

impl Deciseconds {
    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-03-02T08:30:15.300Z`.
    pub fn to_rfc3339(self) -> String {
        let seconds = self.0 / 10;
        let millis = (self.0 % 10) * 100;
        let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), to format RFC 3339 without a date-time dependency.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// What a publisher restriction requires of the listed vendors for one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum RestrictionType {
    /// The vendors may not process data for the purpose.
    NotAllowed = 0,
    /// The vendors need consent (not legitimate interest) for the purpose.
    RequireConsent = 1,
    /// The vendors need legitimate interest (not consent) for the purpose.
    RequireLegitimateInterest = 2,
}

/// One publisher restriction: a purpose, a restriction type and its vendors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublisherRestriction {
    pub purpose_id: u8,
    pub restriction_type: RestrictionType,
    /// Sorted vendor ids.
    pub vendors: Vec<u16>,
}

/// The publisher TC segment (type 3): the publisher's own purposes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PublisherTc {
    pub purposes_consent: Vec<u8>,
    pub purposes_li_transparency: Vec<u8>,
    /// How many custom purposes the two custom bitfields cover (0–63).
    pub num_custom_purposes: u8,
    pub custom_purposes_consent: Vec<u8>,
    pub custom_purposes_li_transparency: Vec<u8>,
}

/// A decoded TCF v2 TC string. Id lists are sorted and 1-based; the optional
/// segments are `None` when the string does not carry them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcString {
    pub created: Deciseconds,
    pub last_updated: Deciseconds,
    pub cmp_id: u16,
    pub cmp_version: u16,
    pub consent_screen: u8,
    /// Two uppercase letters, ISO 639-1 (e.g. `EN`).
    pub consent_language: String,
    pub vendor_list_version: u16,
    pub policy_version: u8,
    pub is_service_specific: bool,
    pub use_non_standard_texts: bool,
    pub special_feature_opt_ins: Vec<u8>,
    pub purposes_consent: Vec<u8>,
    pub purposes_li_transparency: Vec<u8>,
    pub purpose_one_treatment: bool,
    /// Two uppercase letters, ISO 3166-1 alpha-2 (e.g. `DE`).
    pub publisher_cc: String,
    pub vendor_consents: Vec<u16>,
    pub vendor_legitimate_interests: Vec<u16>,
    pub publisher_restrictions: Vec<PublisherRestriction>,
    pub disclosed_vendors: Option<Vec<u16>>,
    pub allowed_vendors: Option<Vec<u16>>,
    pub publisher_tc: Option<PublisherTc>,
}

impl TcString {
    /// The only TCF version this crate reads and writes.
    pub const VERSION: u8 = 2;

    /// Decodes a TC string (segments joined by `.`).
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let mut segments = text.trim().split('.');
        let core = segments.next().unwrap_or_default();
        let mut tc = decode_core(&mut BitReader::from_base64url(core, CORE)?)?;
        for segment in segments {
            let mut reader = BitReader::from_base64url(segment, OPTIONAL)?;
            let offset = reader.position();
            match reader.read(3, "SegmentType")? {
                SEGMENT_DISCLOSED_VENDORS => {
                    reader.relabel(DISCLOSED);
                    let vendors = read_vendor_set(&mut reader, &DISCLOSED_VENDORS)?;
                    set_once(&mut tc.disclosed_vendors, vendors, DISCLOSED)?;
                }
                SEGMENT_ALLOWED_VENDORS => {
                    reader.relabel(ALLOWED);
                    let vendors = read_vendor_set(&mut reader, &ALLOWED_VENDORS)?;
                    set_once(&mut tc.allowed_vendors, vendors, ALLOWED)?;
                }
                SEGMENT_PUBLISHER_TC => {
                    reader.relabel(PUBLISHER);
                    let publisher = decode_publisher_tc(&mut reader)?;
                    set_once(&mut tc.publisher_tc, publisher, PUBLISHER)?;
                }
                other => {
                    return Err(reader.invalid(
                        "SegmentType",
                        offset,
                        other,
                        "1 (disclosed vendors), 2 (allowed vendors) or 3 (publisher TC)",
                    ))
                }
            }
        }
        Ok(tc)
    }

    /// Encodes the core segment and every optional segment that is `Some`,
    /// choosing the smaller of the bitfield and range vendor encodings.
    pub fn encode(&self) -> Result<String, EncodeError> {
        let mut segments = vec![self.encode_core()?];
        if let Some(vendors) = &self.disclosed_vendors {
            segments.push(encode_vendor_segment(
                SEGMENT_DISCLOSED_VENDORS,
                vendors,
                "disclosed_vendors",
            )?);
        }
        if let Some(vendors) = &self.allowed_vendors {
            segments.push(encode_vendor_segment(
                SEGMENT_ALLOWED_VENDORS,
                vendors,
                "allowed_vendors",
            )?);
        }
        if let Some(publisher) = &self.publisher_tc {
            segments.push(encode_publisher_tc(publisher)?);
        }
        Ok(segments.join("."))
    }

    fn encode_core(&self) -> Result<String, EncodeError> {
        let mut w = BitWriter::default();
        w.write(u64::from(Self::VERSION), 6);
        write_fitting(&mut w, "created", self.created.0, 36)?;
        write_fitting(&mut w, "last_updated", self.last_updated.0, 36)?;
        write_fitting(&mut w, "cmp_id", self.cmp_id.into(), 12)?;
        write_fitting(&mut w, "cmp_version", self.cmp_version.into(), 12)?;
        write_fitting(&mut w, "consent_screen", self.consent_screen.into(), 6)?;
        w.write(letters("consent_language", &self.consent_language)?, 12);
        write_fitting(
            &mut w,
            "vendor_list_version",
            self.vendor_list_version.into(),
            12,
        )?;
        write_fitting(&mut w, "policy_version", self.policy_version.into(), 6)?;
        w.write_bool(self.is_service_specific);
        w.write_bool(self.use_non_standard_texts);
        write_ids(
            &mut w,
            "special_feature_opt_ins",
            &self.special_feature_opt_ins,
            SPECIAL_FEATURES,
        )?;
        write_ids(&mut w, "purposes_consent", &self.purposes_consent, PURPOSES)?;
        write_ids(
            &mut w,
            "purposes_li_transparency",
            &self.purposes_li_transparency,
            PURPOSES,
        )?;
        w.write_bool(self.purpose_one_treatment);
        w.write(letters("publisher_cc", &self.publisher_cc)?, 12);
        write_vendor_set(&mut w, "vendor_consents", &self.vendor_consents)?;
        write_vendor_set(
            &mut w,
            "vendor_legitimate_interests",
            &self.vendor_legitimate_interests,
        )?;
        let restrictions = self.publisher_restrictions.len() as u64;
        write_fitting(&mut w, "publisher_restrictions", restrictions, 12)?;
        for restriction in &self.publisher_restrictions {
            let purpose = restriction.purpose_id;
            if !(1..=63).contains(&purpose) {
                return Err(out_of_range(
                    "publisher_restrictions.purpose_id",
                    purpose,
                    "1 to 63",
                ));
            }
            w.write(purpose.into(), 6);
            w.write(restriction.restriction_type as u64, 2);
            write_ranges(
                &mut w,
                "publisher_restrictions.vendors",
                &runs(&restriction.vendors)?,
            )?;
        }
        Ok(w.into_base64url())
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, segment: &'static str) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateSegment { segment });
    }
    *slot = Some(value);
    Ok(())
}

fn decode_core(r: &mut BitReader) -> Result<TcString, DecodeError> {
    let version = r.read(6, "Version")?;
    if version != u64::from(TcString::VERSION) {
        return Err(DecodeError::UnsupportedVersion {
            format: "TCF",
            found: version,
            supported: 2,
        });
    }
    Ok(TcString {
        created: Deciseconds(r.read(36, "Created")?),
        last_updated: Deciseconds(r.read(36, "LastUpdated")?),
        cmp_id: r.read_u16(12, "CmpId")?,
        cmp_version: r.read_u16(12, "CmpVersion")?,
        consent_screen: r.read_u8(6, "ConsentScreen")?,
        consent_language: read_letters(r, "ConsentLanguage")?,
        vendor_list_version: r.read_u16(12, "VendorListVersion")?,
        policy_version: r.read_u8(6, "TcfPolicyVersion")?,
        is_service_specific: r.read_bool("IsServiceSpecific")?,
        use_non_standard_texts: r.read_bool("UseNonStandardTexts")?,
        special_feature_opt_ins: r.read_bitfield(SPECIAL_FEATURES, "SpecialFeatureOptIns")?,
        purposes_consent: r.read_bitfield(PURPOSES, "PurposesConsent")?,
        purposes_li_transparency: r.read_bitfield(PURPOSES, "PurposesLITransparency")?,
        purpose_one_treatment: r.read_bool("PurposeOneTreatment")?,
        publisher_cc: read_letters(r, "PublisherCC")?,
        vendor_consents: read_vendor_set(r, &VENDOR_CONSENTS)?,
        vendor_legitimate_interests: read_vendor_set(r, &VENDOR_LEGITIMATE_INTERESTS)?,
        publisher_restrictions: read_publisher_restrictions(r)?,
        disclosed_vendors: None,
        allowed_vendors: None,
        publisher_tc: None,
    })
}

fn decode_publisher_tc(r: &mut BitReader) -> Result<PublisherTc, DecodeError> {
    let purposes_consent = r.read_bitfield(PURPOSES, "PubPurposesConsent")?;
    let purposes_li_transparency = r.read_bitfield(PURPOSES, "PubPurposesLITransparency")?;
    let num_custom_purposes = r.read_u8(6, "NumCustomPurposes")?;
    let width = usize::from(num_custom_purposes);
    Ok(PublisherTc {
        purposes_consent,
        purposes_li_transparency,
        num_custom_purposes,
        custom_purposes_consent: r.read_bitfield(width, "CustomPurposesConsent")?,
        custom_purposes_li_transparency: r.read_bitfield(width, "CustomPurposesLITransparency")?,
    })
}

/// Two letters, 6 bits each, `A` = 0.
fn read_letters(r: &mut BitReader, field: &'static str) -> Result<String, DecodeError> {
    let offset = r.position();
    let mut text = String::with_capacity(2);
    for _ in 0..2 {
        let letter = r.read_u8(6, field)?;
        if letter > 25 {
            return Err(r.invalid(field, offset, letter, "two letters each encoded 0-25 (A-Z)"));
        }
        text.push(char::from(b'A' + letter));
    }
    Ok(text)
}

/// Field names of one vendor section, so errors say which section failed.
struct VendorFields {
    max_vendor_id: &'static str,
    is_range_encoding: &'static str,
    bit_field: &'static str,
    ranges: RangeFields,
}

struct RangeFields {
    num_entries: &'static str,
    is_a_range: &'static str,
    start: &'static str,
    end: &'static str,
}

macro_rules! range_fields {
    ($section:literal) => {
        RangeFields {
            num_entries: concat!($section, ".NumEntries"),
            is_a_range: concat!($section, ".IsARange"),
            start: concat!($section, ".StartOrOnlyVendorId"),
            end: concat!($section, ".EndVendorId"),
        }
    };
}

macro_rules! vendor_fields {
    ($section:literal) => {
        VendorFields {
            max_vendor_id: concat!($section, ".MaxVendorId"),
            is_range_encoding: concat!($section, ".IsRangeEncoding"),
            bit_field: concat!($section, ".BitField"),
            ranges: range_fields!($section),
        }
    };
}

const VENDOR_CONSENTS: VendorFields = vendor_fields!("VendorConsents");
const VENDOR_LEGITIMATE_INTERESTS: VendorFields = vendor_fields!("VendorLegitimateInterests");
const DISCLOSED_VENDORS: VendorFields = vendor_fields!("DisclosedVendors");
const ALLOWED_VENDORS: VendorFields = vendor_fields!("AllowedVendors");
const RESTRICTION_VENDORS: RangeFields = range_fields!("PubRestrictionEntry");

/// MaxVendorId, then either one flag per vendor or a list of id ranges.
fn read_vendor_set(r: &mut BitReader, fields: &VendorFields) -> Result<Vec<u16>, DecodeError> {
    let max_vendor_id = r.read_u16(16, fields.max_vendor_id)?;
    if r.read_bool(fields.is_range_encoding)? {
        read_ranges(r, &fields.ranges)
    } else {
        r.read_bitfield(usize::from(max_vendor_id), fields.bit_field)
    }
}

/// NumEntries, then per entry IsARange, a start id and, for ranges, an end id.
fn read_ranges(r: &mut BitReader, fields: &RangeFields) -> Result<Vec<u16>, DecodeError> {
    let count = r.read(12, fields.num_entries)?;
    let mut ranges = Vec::new();
    for _ in 0..count {
        let is_range = r.read_bool(fields.is_a_range)?;
        let offset = r.position();
        let start = r.read_u16(16, fields.start)?;
        if start == 0 {
            return Err(r.invalid(fields.start, offset, 0, "a vendor id of 1 or more"));
        }
        let end = if is_range {
            let offset = r.position();
            let end = r.read_u16(16, fields.end)?;
            if end < start {
                return Err(r.invalid(
                    fields.end,
                    offset,
                    end,
                    "an end vendor id not below the start id",
                ));
            }
            end
        } else {
            start
        };
        ranges.push((start, end));
    }
    Ok(expand_ranges(ranges))
}

/// Sorted, de-duplicated ids of possibly overlapping ranges; overlaps are
/// skipped so hostile input cannot make the output larger than 65 535 ids.
fn expand_ranges(mut ranges: Vec<(u16, u16)>) -> Vec<u16> {
    ranges.sort_unstable();
    let mut ids = Vec::new();
    let mut next = 1u32;
    for (start, end) in ranges {
        let (start, end) = (u32::from(start).max(next), u32::from(end));
        ids.extend((start..=end).filter_map(|id| u16::try_from(id).ok()));
        next = next.max(end + 1);
    }
    ids
}

fn read_publisher_restrictions(
    r: &mut BitReader,
) -> Result<Vec<PublisherRestriction>, DecodeError> {
    let count = r.read(12, "NumPubRestrictions")?;
    let mut restrictions = Vec::new();
    for _ in 0..count {
        let offset = r.position();
        let purpose_id = r.read_u8(6, "PubRestrictionEntry.PurposeId")?;
        if purpose_id == 0 {
            return Err(r.invalid(
                "PubRestrictionEntry.PurposeId",
                offset,
                0,
                "a purpose id from 1 to 63",
            ));
        }
        let offset = r.position();
        let restriction_type = match r.read(2, "PubRestrictionEntry.RestrictionType")? {
            0 => RestrictionType::NotAllowed,
            1 => RestrictionType::RequireConsent,
            2 => RestrictionType::RequireLegitimateInterest,
            other => {
                return Err(r.invalid(
                    "PubRestrictionEntry.RestrictionType",
                    offset,
                    other,
                    "0 (not allowed), 1 (require consent) or 2 (require legitimate interest)",
                ))
            }
        };
        let vendors = read_ranges(r, &RESTRICTION_VENDORS)?;
        restrictions.push(PublisherRestriction {
            purpose_id,
            restriction_type,
            vendors,
        });
    }
    Ok(restrictions)
}

fn out_of_range(
    field: &'static str,
    value: impl ToString,
    expected: impl Into<String>,
) -> EncodeError {
    EncodeError::OutOfRange {
        field,
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// Writes `value` in `width` bits, or says the field's maximum.
fn write_fitting(
    w: &mut BitWriter,
    field: &'static str,
    value: u64,
    width: usize,
) -> Result<(), EncodeError> {
    if value >> width != 0 {
        let max = (1u64 << width) - 1;
        return Err(out_of_range(
            field,
            value,
            format!("at most {max} ({width} bits)"),
        ));
    }
    w.write(value, width);
    Ok(())
}

fn letters(field: &'static str, text: &str) -> Result<u64, EncodeError> {
    match text.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            let code = |c: &u8| u64::from(c.to_ascii_uppercase() - b'A');
            Ok((code(a) << 6) | code(b))
        }
        _ => Err(out_of_range(field, format!("{text:?}"), "two letters A-Z")),
    }
}

fn write_ids(
    w: &mut BitWriter,
    field: &'static str,
    ids: &[u8],
    width: usize,
) -> Result<(), EncodeError> {
    if let Some(&id) = ids.iter().find(|&&id| id == 0 || usize::from(id) > width) {
        return Err(out_of_range(
            field,
            id,
            "ids from 1 to the field's width (24 purposes, 12 special features)",
        ));
    }
    w.write_bitfield(ids, width);
    Ok(())
}

/// Maximal runs of consecutive ids, as (first, last).
fn runs(ids: &[u16]) -> Result<Vec<(u16, u16)>, EncodeError> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.first() == Some(&0) {
        return Err(out_of_range("vendor id", 0, "vendor ids from 1 to 65535"));
    }
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for id in sorted {
        match runs.last_mut() {
            Some((_, last)) if u32::from(*last) + 1 == u32::from(id) => *last = id,
            _ => runs.push((id, id)),
        }
    }
    Ok(runs)
}

fn write_ranges(
    w: &mut BitWriter,
    field: &'static str,
    runs: &[(u16, u16)],
) -> Result<(), EncodeError> {
    write_fitting(w, field, runs.len() as u64, 12)?;
    for &(first, last) in runs {
        w.write_bool(first != last);
        w.write(first.into(), 16);
        if first != last {
            w.write(last.into(), 16);
        }
    }
    Ok(())
}

/// MaxVendorId, then whichever of bitfield and ranges is shorter (ties go to
/// the bitfield, like the IAB encoder).
fn write_vendor_set(
    w: &mut BitWriter,
    field: &'static str,
    ids: &[u16],
) -> Result<(), EncodeError> {
    let runs = runs(ids)?;
    let max_vendor_id = runs.last().map_or(0, |&(_, last)| last);
    let bitfield_bits = usize::from(max_vendor_id);
    let range_bits = 12
        + runs
            .iter()
            .map(|&(first, last)| if first == last { 17 } else { 33 })
            .sum::<usize>();
    w.write(max_vendor_id.into(), 16);
    if range_bits < bitfield_bits {
        w.write_bool(true);
        write_ranges(w, field, &runs)
    } else {
        w.write_bool(false);
        let ids: Vec<u16> = runs
            .iter()
            .flat_map(|&(first, last)| first..=last)
            .collect();
        w.write_bitfield(&ids, bitfield_bits);
        Ok(())
    }
}

fn encode_vendor_segment(
    kind: u64,
    ids: &[u16],
    field: &'static str,
) -> Result<String, EncodeError> {
    let mut w = BitWriter::default();
    w.write(kind, 3);
    write_vendor_set(&mut w, field, ids)?;
    Ok(w.into_base64url())
}

fn encode_publisher_tc(publisher: &PublisherTc) -> Result<String, EncodeError> {
    let mut w = BitWriter::default();
    w.write(SEGMENT_PUBLISHER_TC, 3);
    write_ids(
        &mut w,
        "publisher_tc.purposes_consent",
        &publisher.purposes_consent,
        PURPOSES,
    )?;
    write_ids(
        &mut w,
        "publisher_tc.purposes_li_transparency",
        &publisher.purposes_li_transparency,
        PURPOSES,
    )?;
    write_fitting(
        &mut w,
        "publisher_tc.num_custom_purposes",
        publisher.num_custom_purposes.into(),
        6,
    )?;
    let width = usize::from(publisher.num_custom_purposes);
    write_ids(
        &mut w,
        "publisher_tc.custom_purposes_consent",
        &publisher.custom_purposes_consent,
        width,
    )?;
    write_ids(
        &mut w,
        "publisher_tc.custom_purposes_li_transparency",
        &publisher.custom_purposes_li_transparency,
        width,
    )?;
    Ok(w.into_base64url())
}

/// The JSON contract of `sightline consent decode` for TCF (see
/// docs/consent-json.md): kept apart from [`TcString`] so the wire shape is
/// explicit and timestamps appear both as RFC 3339 and as deciseconds.
#[derive(Serialize)]
struct TcStringJson<'a> {
    version: u8,
    created: String,
    created_deciseconds: u64,
    last_updated: String,
    last_updated_deciseconds: u64,
    cmp_id: u16,
    cmp_version: u16,
    consent_screen: u8,
    consent_language: &'a str,
    vendor_list_version: u16,
    policy_version: u8,
    is_service_specific: bool,
    use_non_standard_texts: bool,
    purpose_one_treatment: bool,
    publisher_cc: &'a str,
    purposes_consent: &'a [u8],
    purposes_li_transparency: &'a [u8],
    special_feature_opt_ins: &'a [u8],
    vendor_consents: &'a [u16],
    vendor_legitimate_interests: &'a [u16],
    publisher_restrictions: &'a [PublisherRestriction],
    disclosed_vendors: Option<&'a [u16]>,
    allowed_vendors: Option<&'a [u16]>,
    publisher_tc: Option<&'a PublisherTc>,
}

impl Serialize for TcString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TcStringJson {
            version: Self::VERSION,
            created: self.created.to_rfc3339(),
            created_deciseconds: self.created.0,
            last_updated: self.last_updated.to_rfc3339(),
            last_updated_deciseconds: self.last_updated.0,
            cmp_id: self.cmp_id,
            cmp_version: self.cmp_version,
            consent_screen: self.consent_screen,
            consent_language: &self.consent_language,
            vendor_list_version: self.vendor_list_version,
            policy_version: self.policy_version,
            is_service_specific: self.is_service_specific,
            use_non_standard_texts: self.use_non_standard_texts,
            purpose_one_treatment: self.purpose_one_treatment,
            publisher_cc: &self.publisher_cc,
            purposes_consent: &self.purposes_consent,
            purposes_li_transparency: &self.purposes_li_transparency,
            special_feature_opt_ins: &self.special_feature_opt_ins,
            vendor_consents: &self.vendor_consents,
            vendor_legitimate_interests: &self.vendor_legitimate_interests,
            publisher_restrictions: &self.publisher_restrictions,
            disclosed_vendors: self.disclosed_vendors.as_deref(),
            allowed_vendors: self.allowed_vendors.as_deref(),
            publisher_tc: self.publisher_tc.as_ref(),
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_deciseconds_as_rfc3339() {
        assert_eq!(Deciseconds(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Deciseconds(17_724_402_153).to_rfc3339(),
            "2026-03-02T08:30:15.300Z"
        );
        assert_eq!(
            Deciseconds(9_517_824_000).to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Deciseconds(41_076_287_999).to_rfc3339(),
            "2100-03-01T23:59:59.900Z"
        );
    }

    #[test]
    fn overlapping_ranges_expand_once() {
        assert_eq!(
            expand_ranges(vec![(5, 7), (1, 2), (6, 9), (2, 2)]),
            vec![1, 2, 5, 6, 7, 8, 9]
        );
        assert_eq!(
            expand_ranges(vec![(1, u16::MAX); 3]).len(),
            usize::from(u16::MAX)
        );
    }

    #[test]
    fn encoder_picks_range_for_long_runs_and_bitfield_for_scattered_ids() {
        let mut range = BitWriter::default();
        write_vendor_set(&mut range, "v", &(1..=500).collect::<Vec<_>>()).unwrap();
        assert_eq!(range.len(), 16 + 1 + 12 + 33);
        let mut bitfield = BitWriter::default();
        write_vendor_set(&mut bitfield, "v", &[2, 6, 8]).unwrap();
        assert_eq!(bitfield.len(), 16 + 1 + 8);
    }

    #[test]
    fn encoder_rejects_values_that_do_not_fit() {
        let tc = TcString {
            cmp_id: 5000,
            consent_language: "EN".into(),
            publisher_cc: "DE".into(),
            ..TcString::default()
        };
        assert!(matches!(
            tc.encode(),
            Err(EncodeError::OutOfRange {
                field: "cmp_id",
                ..
            })
        ));
        let tc = TcString {
            consent_language: "E1".into(),
            publisher_cc: "DE".into(),
            ..TcString::default()
        };
        assert!(matches!(
            tc.encode(),
            Err(EncodeError::OutOfRange {
                field: "consent_language",
                ..
            })
        ));
    }
}
