//! Consent signal decoders and purpose policy for Sightline: pure functions,
//! plain data in, plain data out.
//!
//! - [`decode`] / [`decode_to_json`]: TCF v2.2, GPP and US Privacy strings,
//!   kind detected ([`tcf`], [`gpp`], [`usp`]).
//! - [`google`]: Google Consent Mode states and the `gcs` / `gcd` tag parameters.
//! - [`segment`]: Segment Consent Management preferences on events.
//! - [`policy`]: mapping any signal to per-purpose decisions, and the consent
//!   state at a point in time from a ledger.

mod bits;
mod error;
pub mod event;
pub mod google;
pub mod gpp;
pub mod ledger;
pub mod policy;
pub mod segment;
pub mod tcf;
pub mod usp;

use serde::Serialize;

pub use error::{DecodeError, EncodeError};
pub use event::EventSignals;
pub use google::{ConsentModeState, Gcd, Gcs, GoogleTagConsent, Grant};
pub use gpp::{GppSection, GppString, UsNational};
pub use ledger::{ConsentChange, ConsentState, InForce, Ledger};
pub use policy::{Decision, Policy, PolicyError, Signal};
pub use segment::SegmentConsent;
pub use tcf::{Deciseconds, PublisherRestriction, PublisherTc, RestrictionType, TcString};
pub use usp::{UsPrivacy, UspFlag};

/// A decoded consent string; serialises with a `kind` of `tcf`, `gpp` or `usp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Decoded {
    Tcf(Box<TcString>),
    Gpp(GppString),
    Usp(UsPrivacy),
}

/// Decodes a TCF v2 TC string, a GPP string or a US Privacy string, telling
/// them apart by their first characters: a TCF v2 core segment starts with
/// `C` (version 2; `B` is version 1), a GPP header with `D` (type 3), a US
/// Privacy string with its version digit.
pub fn decode(text: &str) -> Result<Decoded, DecodeError> {
    let text = text.trim();
    match text.chars().next() {
        None => Err(DecodeError::Empty),
        Some('C' | 'B') => TcString::decode(text).map(|tc| Decoded::Tcf(Box::new(tc))),
        Some('D') => GppString::decode(text).map(Decoded::Gpp),
        Some(c) if c.is_ascii_digit() => UsPrivacy::decode(text).map(Decoded::Usp),
        Some(_) => Err(DecodeError::UnknownKind {
            start: text.chars().take(8).collect(),
        }),
    }
}

/// [`decode`], rendered as the JSON of `sightline consent decode --json`
/// (shapes in docs/consent-json.md).
pub fn decode_to_json(text: &str) -> Result<serde_json::Value, DecodeError> {
    let decoded = decode(text)?;
    // Serialising plain structs of strings, numbers and lists cannot fail.
    Ok(serde_json::to_value(decoded).unwrap_or_default())
}
