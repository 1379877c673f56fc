//! How an event is laid out in the log (migration 12, both backends), kept in one place so
//! that SQLite and PostgreSQL store and read the same bytes.
//!
//! - **The body is stored without its messageId.** The collector writes the messageId into
//!   the body, and the log also keeps it in its own column (deliveries and processors read
//!   it there). So the JSON string of the id (`"…"`, as serde_json quotes it) is cut out of
//!   the body at its first occurrence and its byte offset kept (`id_at`); a read splices it
//!   back. A body that does not hold the quoted id (a numeric messageId, an id escaped
//!   differently) is kept whole (`id_at` NULL). Any occurrence will do: splicing the same
//!   bytes back at the same offset gives the body byte for byte, whatever JSON it is.
//! - **The rest is compressed with zstd and a dictionary** trained on Segment-shaped events
//!   (`log/segment-v1.dict`, see `bench/src/main.rs train-dict`). Per-row compression of
//!   ~550-byte JSON barely pays without one (a small frame has no history to refer to); with
//!   it, the field names, library and user-agent strings and the usual structure are
//!   references into the dictionary. The first byte of the stored payload names its form:
//!   [`RAW`] (the UTF-8 bytes, when compression would not make them smaller) or
//!   [`ZSTD_SEGMENT_V1`]. A new dictionary gets a new tag; every tag ever written stays
//!   readable.
//! - **Dedup is keyed by a 128-bit digest** of (source, messageId) ([`dedup_key`]): the first
//!   16 bytes of SHA-256 over the source id (8 bytes, big-endian) and the id's UTF-8 bytes.
//!   A false duplicate would drop an event, so the digest is long enough that none happens
//!   in practice (about 2^-128 per pair of ids; a million billion ids in one window give a
//!   chance below 10^-8) and cryptographic, so that no client can craft an id that collides
//!   with another's. PostgreSQL claims all 16 bytes in its `dedup` table; SQLite keeps the
//!   first 8 with each event and confirms a match against the row (sqlite/dedup.rs).
//!
//! Rows written before migration 12 keep their plain text body and are read as they are.

use sha2::{Digest, Sha256};
use std::cell::RefCell;

/// The payload is the body's UTF-8 bytes.
pub(crate) const RAW: u8 = 0;
/// The payload is a zstd frame made with [`DICTIONARY`] (no dictionary id, no checksum).
pub(crate) const ZSTD_SEGMENT_V1: u8 = 1;

/// Trained on Segment-shaped events (analytics.js context, e-commerce spec events).
static DICTIONARY: &[u8] = include_bytes!("log/segment-v1.dict");
/// zstd's level: one of its fast (negative) levels. On ~550-byte Segment events with the
/// dictionary, `zstd -b --fast=3 -D segment-v1.dict` compresses at 1.7x the speed of level
/// 3 and decompresses (every processor reads every event) at 2x, for frames 7% larger
/// (ratio 2.01 against 2.17); compression had been a third of the request workers' time.
const LEVEL: i32 = -3;
/// The largest body a read will inflate (far above the collector's event limit).
const MAX_BODY: usize = 64 << 20;

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// An event body as the log stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// Where the quoted messageId was cut out of the body; `None` when it was not.
    pub id_at: Option<i32>,
    /// A tag byte ([`RAW`] or [`ZSTD_SEGMENT_V1`]) and the (cut) body in that form.
    pub payload: Vec<u8>,
}

/// An event ready for the log's tables: made by the caller of `append` (in parallel, off
/// the one writer), so the writer only inserts.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub key: [u8; 16],
    pub body: Encoded,
}

impl Stored {
    pub fn of(event: &sightline_core::NewEvent) -> Stored {
        Stored {
            key: dedup_key(event.source_id, &event.message_id),
            body: encode(&event.message_id, &event.body),
        }
    }
}

/// The 16-byte dedup key of (source, messageId).
pub(crate) fn dedup_key(source_id: i64, message_id: &str) -> [u8; 16] {
    let mut hash = Sha256::new();
    hash.update(source_id.to_be_bytes());
    hash.update(message_id.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&hash.finalize()[..16]);
    key
}

pub(crate) fn encode(message_id: &str, body: &str) -> Encoded {
    let quoted = serde_json::to_string(message_id).unwrap_or_default();
    let found = match body.find(&quoted) {
        Some(at) if !message_id.is_empty() => i32::try_from(at).ok(),
        _ => None,
    };
    let cut = match found {
        Some(at) => {
            let at = at as usize;
            let mut cut = String::with_capacity(body.len() - quoted.len());
            cut.push_str(&body[..at]);
            cut.push_str(&body[at + quoted.len()..]);
            cut
        }
        None => body.to_string(),
    };
    let compressed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = new_compressor().ok();
        }
        cell.as_mut().and_then(|c| c.compress(cut.as_bytes()).ok())
    });
    let payload = match compressed {
        Some(frame) if frame.len() < cut.len() => {
            let mut payload = Vec::with_capacity(frame.len() + 1);
            payload.push(ZSTD_SEGMENT_V1);
            payload.extend_from_slice(&frame);
            payload
        }
        _ => {
            let mut payload = Vec::with_capacity(cut.len() + 1);
            payload.push(RAW);
            payload.extend_from_slice(cut.as_bytes());
            payload
        }
    };
    Encoded {
        id_at: found,
        payload,
    }
}

fn new_compressor() -> std::io::Result<zstd::bulk::Compressor<'static>> {
    use zstd::zstd_safe::CParameter;
    let mut compressor = zstd::bulk::Compressor::with_dictionary(LEVEL, DICTIONARY)?;
    // The tag byte names the dictionary; the frame need not repeat it, nor a checksum.
    compressor.set_parameter(CParameter::DictIdFlag(false))?;
    compressor.set_parameter(CParameter::ChecksumFlag(false))?;
    compressor.set_parameter(CParameter::ContentSizeFlag(true))?;
    Ok(compressor)
}

/// The body [`encode`] was given, from what it returned. The error says what is wrong
/// with a row that does not decode (it never happens to rows this module wrote).
pub(crate) fn decode(
    message_id: &str,
    id_at: Option<i64>,
    payload: &[u8],
) -> Result<String, String> {
    let (&tag, rest) = payload
        .split_first()
        .ok_or_else(|| "an empty payload".to_string())?;
    let quoted = match id_at {
        Some(_) => serde_json::to_string(message_id).map_err(|e| e.to_string())?,
        None => String::new(),
    };
    // One allocation of the body's final size: the cut body, then the messageId.
    let mut body = match tag {
        RAW => {
            let mut body = Vec::with_capacity(rest.len() + quoted.len());
            body.extend_from_slice(rest);
            body
        }
        ZSTD_SEGMENT_V1 => DECOMPRESSOR.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(
                    zstd::bulk::Decompressor::with_dictionary(DICTIONARY)
                        .map_err(|e| format!("zstd: {e}"))?,
                );
            }
            let decompressor = cell.as_mut().expect("set above");
            match zstd::bulk::Decompressor::upper_bound(rest).filter(|&n| n <= MAX_BODY) {
                Some(size) => {
                    let mut body = Vec::with_capacity(size + quoted.len());
                    decompressor
                        .decompress_to_buffer(rest, &mut body)
                        .map_err(|e| format!("zstd: {e}"))?;
                    Ok(body)
                }
                None => decompressor
                    .decompress(rest, MAX_BODY)
                    .map_err(|e| format!("zstd: {e}")),
            }
        })?,
        other => return Err(format!("unknown payload form {other}")),
    };
    if let Some(at) = id_at {
        // Within the body and not inside a character (a UTF-8 continuation byte).
        let at = usize::try_from(at)
            .ok()
            .filter(|&at| at <= body.len() && body.get(at).is_none_or(|&b| b as i8 >= -0x40))
            .ok_or_else(|| format!("bad messageId offset {at}"))?;
        body.extend_from_slice(quoted.as_bytes());
        body[at..].rotate_right(quoted.len());
    }
    String::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))
}

/// The log's `type` column: a small integer per event type (SQLite, migration 12).
pub(crate) fn type_code(kind: sightline_core::EventType) -> i64 {
    sightline_core::EventType::ALL
        .iter()
        .position(|&t| t == kind)
        .unwrap_or(0) as i64
}

/// The event type a `type` code stands for; `None` for a code this version does not know
/// (read as corrupt, never as some default type).
pub(crate) fn type_from_code(code: i64) -> Option<sightline_core::EventType> {
    usize::try_from(code)
        .ok()
        .and_then(|i| sightline_core::EventType::ALL.get(i).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_cuts_the_id() {
        let body = r#"{"type":"track","event":"Product Added","messageId":"m-1","properties":{"sku":"A"},"context":{"library":{"name":"analytics.js"}}}"#;
        let encoded = encode("m-1", body);
        assert_eq!(encoded.id_at, Some(body.find("\"m-1\"").unwrap() as i32));
        assert_eq!(
            decode("m-1", encoded.id_at.map(i64::from), &encoded.payload).unwrap(),
            body
        );
        // A body without the quoted id is kept whole.
        let numeric = r#"{"messageId":42}"#;
        let encoded = encode("42", numeric);
        assert_eq!(encoded.id_at, None);
        assert_eq!(decode("42", None, &encoded.payload).unwrap(), numeric);
    }

    #[test]
    fn dedup_keys_are_16_bytes_and_distinct_per_source() {
        assert_eq!(dedup_key(1, "a").len(), 16);
        assert_ne!(dedup_key(1, "a"), dedup_key(2, "a"));
        assert_ne!(dedup_key(1, "a"), dedup_key(1, "b"));
    }

    #[test]
    fn type_codes_round_trip() {
        for kind in sightline_core::EventType::ALL {
            assert_eq!(type_from_code(type_code(kind)), Some(kind));
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(decode("m", None, &[]).is_err());
        assert!(decode("m", None, &[9, 1, 2]).is_err());
        assert!(decode("m", None, &[ZSTD_SEGMENT_V1, 1, 2, 3]).is_err());
        assert!(decode("m", Some(99), &[RAW, b'x']).is_err());
        // Inside a character.
        assert!(decode("m", Some(1), &[RAW, 0xc3, 0xa9]).is_err());
        assert_eq!(decode("m", Some(2), &[RAW, 0xc3, 0xa9]).unwrap(), "é\"m\"");
    }

    proptest::proptest! {
        /// Any body, short (kept raw) or long (compressed), with its messageId anywhere or
        /// nowhere, decodes to itself.
        #[test]
        fn any_body_round_trips(
            before in "\\PC{0,40}",
            after in "\\PC{0,40}",
            id in "[a-zA-Z0-9é-]{0,12}",
            repeat in 0usize..30,
            with_id: bool,
        ) {
            let quoted = serde_json::to_string(&id).unwrap();
            let middle = if with_id { quoted.as_str() } else { "" };
            let body = format!("{before}{middle}{}", after.repeat(repeat));
            let encoded = encode(&id, &body);
            let decoded = decode(&id, encoded.id_at.map(i64::from), &encoded.payload);
            proptest::prop_assert_eq!(decoded, Ok(body));
        }
    }
}
