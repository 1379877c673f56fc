//! From a tracking request's body to events ready for the log: the Segment spec's rules,
//! with no IO. Limits that make a request unacceptable refuse the whole request; a batch
//! item that breaks a field rule is refused on its own and its siblings are kept.

use crate::raw::{json_string, Field, Kind, RawObject, WithItems};
use serde::de::DeserializeSeed;
use sightline_core::time::{format_ms, parse_ms};
use sightline_core::EventType;

/// Segment's published limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_request_bytes: usize,
    pub max_batch_events: usize,
    pub max_message_id_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 32 * 1024,
            max_request_bytes: 500 * 1024,
            max_batch_events: 2_500,
            max_message_id_chars: 100,
        }
    }
}

/// What the path asked for: one call of a type, or a batch of typed items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Single(EventType),
    Batch,
}

/// A reason to refuse a whole request. Nothing of it is stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed JSON at line {line} column {column}: {message}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("`batch` must be an array of events")]
    BatchNotArray,
    #[error("the request is {size} bytes, over the {limit}-byte (500 KB) request limit: send fewer events per batch")]
    RequestTooLarge { size: usize, limit: usize },
    #[error("event {index} is {size} bytes, over the {limit}-byte (32 KB) event limit: trim its properties or traits")]
    EventTooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
    #[error("the batch holds {count} events, over the limit of {limit} per batch: split it")]
    TooManyEvents { count: usize, limit: usize },
    #[error("event {index} has a messageId of {chars} characters: it must be under {limit}")]
    MessageIdTooLong {
        index: usize,
        chars: usize,
        limit: usize,
    },
    #[error("the batch is empty: send at least one event")]
    EmptyBatch,
    #[error("the number {number} is out of range: JSON numbers must fit a 64-bit float (send larger values as strings)")]
    NumberOutOfRange { number: String },
}

impl RequestError {
    /// A stable, machine-readable name for the error (and the metrics label).
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::MalformedJson { .. } => "malformed_json",
            RequestError::NotAnObject => "not_an_object",
            RequestError::BatchNotArray => "batch_not_array",
            RequestError::RequestTooLarge { .. } => "request_too_large",
            RequestError::EventTooLarge { .. } => "event_too_large",
            RequestError::TooManyEvents { .. } => "too_many_events",
            RequestError::MessageIdTooLong { .. } => "message_id_too_long",
            RequestError::EmptyBatch => "empty_batch",
            RequestError::NumberOutOfRange { .. } => "number_out_of_range",
        }
    }

    /// Over a size limit is 413; every other refusal is 400.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            RequestError::RequestTooLarge { .. } | RequestError::EventTooLarge { .. }
        )
    }

    fn from_json(e: serde_json::Error) -> RequestError {
        let message = e.to_string();
        // serde_json appends " at line L column C"; the fields carry that already.
        let message = match message.rfind(" at line ") {
            Some(cut) => message[..cut].to_string(),
            None => message,
        };
        RequestError::MalformedJson {
            line: e.line(),
            column: e.column(),
            message,
        }
    }
}

/// A reason to refuse one event. In a batch its siblings are still stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event must be a JSON object")]
    NotAnObject,
    #[error(
        "the event has no `type`: set it to one of track, identify, page, screen, group, alias"
    )]
    MissingType,
    #[error("unknown event type {0:?}: use one of track, identify, page, screen, group, alias")]
    UnknownType(String),
    #[error("{kind} calls need `{field}`")]
    MissingField {
        kind: EventType,
        field: &'static str,
    },
    #[error("every call needs `userId` or `anonymousId`")]
    MissingIdentity,
    #[error("`{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("`{field}` is not an ISO 8601 date-time: {value:?}")]
    BadTimestamp { field: &'static str, value: String },
    #[error("`messageId` holds a control character (U+{code:04X}): send printable characters only, e.g. a UUID")]
    BadMessageId { code: u32 },
}

impl EventError {
    pub fn code(&self) -> &'static str {
        match self {
            EventError::NotAnObject => "not_an_object",
            EventError::MissingType => "missing_type",
            EventError::UnknownType(_) => "unknown_type",
            EventError::MissingField { .. } => "missing_field",
            EventError::MissingIdentity => "missing_identity",
            EventError::WrongType { .. } => "wrong_type",
            EventError::BadTimestamp { .. } => "bad_timestamp",
            EventError::BadMessageId { .. } => "bad_message_id",
        }
    }
}

/// An event ready for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub message_id: String,
    pub event_type: EventType,
    /// The Segment JSON as sent, with the server's fields set.
    pub body: String,
}

/// A request, read: the write key it carried in its body, and each event's outcome in order.
#[derive(Debug)]
pub struct Parsed {
    pub write_key: Option<String>,
    pub events: Vec<Result<Prepared, EventError>>,
}

/// Facts about the request that the collector, not the client, decides.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Server clock (ms).
    pub at: i64,
    /// The request carried `Sec-GPC: 1`.
    pub gpc: bool,
}

/// Reads a (decompressed) request body. `new_id` makes a messageId for events without one.
pub fn parse(
    call: Call,
    body: &[u8],
    received: Received,
    limits: &Limits,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Parsed, RequestError> {
    if body.len() > limits.max_request_bytes {
        return Err(RequestError::RequestTooLarge {
            size: body.len(),
            limit: limits.max_request_bytes,
        });
    }
    // The events are stored as sent, and every reader of the log parses them into 64-bit
    // floats: a number past that range would be acknowledged and then skipped by all of
    // them, so it is refused here.
    let scanned = scan(body);
    if let Some(number) = scanned.out_of_range {
        let number = &body[number];
        return Err(RequestError::NumberOutOfRange {
            number: String::from_utf8_lossy(&number[..number.len().min(40)]).into_owned(),
        });
    }
    // A lone UTF-16 surrogate escape (`"\udc00"`, as JavaScript writes a string cut
    // inside an emoji) passes the collector's lazy parse but fails every reader's strict
    // one, so it is stored as U+FFFD, the replacement a lossy decoder would make.
    let repaired;
    let body = if scanned.lone_surrogates.is_empty() {
        body
    } else {
        let mut copy = body.to_vec();
        for at in scanned.lone_surrogates {
            copy[at..at + 6].copy_from_slice(br"\uFFFD");
        }
        repaired = copy;
        &repaired
    };
    match call {
        Call::Single(kind) => parse_single(kind, body, received, limits, new_id),
        Call::Batch => parse_batch(body, received, limits, new_id),
    }
}

/// What one walk over a request body finds that the lazy parse would let through.
#[derive(Debug, Default)]
struct Scan {
    /// The first number (outside strings) that does not fit an `f64`.
    out_of_range: Option<std::ops::Range<usize>>,
    /// Where each `\uXXXX` escape of an unpaired surrogate starts.
    lone_surrogates: Vec<usize>,
}

/// Walks the JSON text `json` once: a number with an exponent or so many digits that it
/// may not fit an `f64` is parsed to see; each escape in a string is decoded far enough to
/// tell a lone surrogate from a pair.
fn scan(json: &[u8]) -> Scan {
    let mut found = Scan::default();
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += match json[i] {
                        b'\\' => match surrogate_at(json, i) {
                            Some(0xD800..=0xDBFF)
                                if matches!(surrogate_at(json, i + 6), Some(0xDC00..=0xDFFF)) =>
                            {
                                12
                            }
                            Some(_) => {
                                found.lone_surrogates.push(i);
                                6
                            }
                            None => 2,
                        },
                        _ => 1,
                    };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let number = &json[start..i];
                let suspect = number.len() > 300 || number.iter().any(|b| matches!(b, b'e' | b'E'));
                if found.out_of_range.is_none()
                    && suspect
                    && std::str::from_utf8(number)
                        .ok()
                        .and_then(|text| text.parse::<f64>().ok())
                        .is_some_and(|value| !value.is_finite())
                {
                    found.out_of_range = Some(start..i);
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// The code unit of the `\uXXXX` escape at `at` if it is a surrogate (U+D800 to U+DFFF).
fn surrogate_at(json: &[u8], at: usize) -> Option<u16> {
    let escape = json.get(at..at + 6)?;
    if &escape[..2] != br"\u" || !escape[2..].iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let unit = u16::from_str_radix(std::str::from_utf8(&escape[2..]).ok()?, 16).ok()?;
    (0xD800..=0xDFFF).contains(&unit).then_some(unit)
}

/// The body as an object; any other JSON value is `NotAnObject`.
fn body_object(body: &[u8]) -> Result<RawObject<'_>, RequestError> {
    serde_json::from_slice(body).map_err(object_error)
}

/// A failed read of a body that must be an object: `NotAnObject` when it is JSON of
/// another kind, else where the JSON is malformed.
fn object_error(e: serde_json::Error) -> RequestError {
    if e.is_data() {
        RequestError::NotAnObject
    } else {
        RequestError::from_json(e)
    }
}

fn parse_single(
    kind: EventType,
    body: &[u8],
    received: Received,
    limits: &Limits,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Parsed, RequestError> {
    if body.len() > limits.max_event_bytes {
        return Err(RequestError::EventTooLarge {
            index: 0,
            size: body.len(),
            limit: limits.max_event_bytes,
        });
    }
    let mut event = body_object(body)?;
    check_message_id(&event, 0, limits)?;
    let write_key = take_write_key(&mut event);
    event.set("type", Field::Written(json_string(kind.as_str())));
    Ok(Parsed {
        write_key,
        events: vec![prepare(event, &Shared::of(received), received, new_id)],
    })
}

fn parse_batch(
    body: &[u8],
    received: Received,
    limits: &Limits,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Parsed, RequestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let read = WithItems("batch")
        .deserialize(&mut deserializer)
        .and_then(|split| deserializer.end().map(|()| split));
    let (mut envelope, items) = read.map_err(object_error)?;
    let Some(Ok(items)) = items else {
        return Err(RequestError::BatchNotArray);
    };
    if items.is_empty() {
        return Err(RequestError::EmptyBatch);
    }
    if items.len() > limits.max_batch_events {
        return Err(RequestError::TooManyEvents {
            count: items.len(),
            limit: limits.max_batch_events,
        });
    }
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Ok((item, size)) = item else {
            events.push(Err(EventError::NotAnObject));
            continue;
        };
        if size > limits.max_event_bytes {
            return Err(RequestError::EventTooLarge {
                index,
                size,
                limit: limits.max_event_bytes,
            });
        }
        check_message_id(&item, index, limits)?;
        events.push(Ok(item));
    }
    let shared = Shared {
        context: object_field(&envelope, "context"),
        integrations: object_field(&envelope, "integrations"),
        sent_at: envelope.present("sentAt").cloned(),
        ..Shared::of(received)
    };
    let events = events
        .into_iter()
        .map(|item| {
            item.and_then(|mut event| {
                take_write_key(&mut event);
                prepare(event, &shared, received, new_id)
            })
        })
        .collect();
    Ok(Parsed {
        write_key: take_write_key(&mut envelope),
        events,
    })
}

/// Batch-level fields that apply to every item.
struct Shared<'a> {
    context: Option<RawObject<'a>>,
    integrations: Option<RawObject<'a>>,
    sent_at: Option<Field<'a>>,
    /// `receivedAt` as JSON, the same for every event of the request.
    received_at: String,
}

impl Shared<'_> {
    /// Nothing shared but the time of receipt.
    fn of(received: Received) -> Shared<'static> {
        Shared {
            context: None,
            integrations: None,
            sent_at: None,
            received_at: json_string(&format_ms(received.at)),
        }
    }
}

fn object_field<'a>(object: &RawObject<'a>, key: &str) -> Option<RawObject<'a>> {
    match object.get(key)? {
        Field::Sent(raw) if raw.get().starts_with('{') => serde_json::from_str(raw.get()).ok(),
        _ => None,
    }
}

fn check_message_id(event: &RawObject, index: usize, limits: &Limits) -> Result<(), RequestError> {
    let id = event.get("messageId").and_then(|field| match field.kind() {
        Kind::Number => Some(field.json().to_string()),
        _ => field.string(),
    });
    if let Some(id) = id {
        let chars = id.chars().count();
        if chars >= limits.max_message_id_chars {
            return Err(RequestError::MessageIdTooLong {
                index,
                chars,
                limit: limits.max_message_id_chars,
            });
        }
    }
    Ok(())
}

/// The write key is a credential: read it, and never store it.
fn take_write_key(event: &mut RawObject) -> Option<String> {
    event.remove("writeKey").and_then(|key| key.string())
}

fn prepare<'a>(
    mut event: RawObject<'a>,
    shared: &Shared<'a>,
    received: Received,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Prepared, EventError> {
    let kind = match event.get("type") {
        None => return Err(EventError::MissingType),
        Some(field) => match field.string() {
            Some(t) => EventType::parse(&t).ok_or(EventError::UnknownType(t))?,
            None => {
                return Err(EventError::WrongType {
                    field: "type",
                    expected: "a string",
                })
            }
        },
    };
    validate(kind, &event)?;

    for (field, batch_level) in [
        ("context", &shared.context),
        ("integrations", &shared.integrations),
    ] {
        if let Some(batch_level) = batch_level {
            merge_under(&mut event, field, batch_level);
        }
    }

    let message_id = match event.get("messageId") {
        Some(field) => match (field.kind(), field.string()) {
            (Kind::String, Some(id)) if !id.is_empty() => Some(id),
            (Kind::Number, _) => Some(field.json().to_string()),
            _ => None,
        },
        None => None,
    };
    if let Some(c) = message_id
        .as_deref()
        .and_then(|id| id.chars().find(|c| c.is_control()))
    {
        // It becomes an HTTP header (`Idempotency-Key`) on the way out, where a control
        // character cannot go.
        return Err(EventError::BadMessageId { code: c as u32 });
    }
    let message_id = match message_id {
        Some(id) => id,
        None => {
            let id = new_id();
            event.set("messageId", Field::Written(json_string(&id)));
            id
        }
    };

    strip_linkage(&mut event);
    correct_clock(&mut event, shared.sent_at.as_ref(), received.at)?;
    event.set("receivedAt", Field::Written(shared.received_at.clone()));
    if received.gpc {
        event.set("gpc", Field::Written("true".into()));
    }

    Ok(Prepared {
        message_id,
        event_type: kind,
        body: event.to_json(),
    })
}

/// Item-level keys win over the batch's, one level deep, as Segment merges them.
fn merge_under<'a>(event: &mut RawObject<'a>, field: &'static str, batch_level: &RawObject<'a>) {
    match event.get(field) {
        Some(own) if own.kind() == Kind::Object => {
            let Ok(mut merged) = serde_json::from_str::<RawObject>(own.json()) else {
                return;
            };
            if merged.extend_missing(batch_level) {
                let json = merged.to_json();
                event.set(field, Field::Written(json));
            }
        }
        Some(_) => {}
        None => event.set(field, Field::Written(batch_level.to_json())),
    }
}

/// `context.linkage` is record-linkage evidence that identity reads in merge explanations:
/// only Sightline's own CRM import (which appends to the log directly) writes it, so a
/// client's is dropped. Runs after the batch's context is merged in.
fn strip_linkage(event: &mut RawObject) {
    let Some(context) = event.get("context").filter(|c| c.kind() == Kind::Object) else {
        return;
    };
    // Without the word or an escape (which could spell it), no key is `linkage`.
    let text = context.json();
    if !text.contains("linkage") && !text.contains('\\') {
        return;
    }
    let Ok(mut context) = serde_json::from_str::<RawObject>(text) else {
        return;
    };
    if context.remove("linkage").is_some() {
        let json = context.to_json();
        event.set("context", Field::Written(json));
    }
}

/// Whether an id field holds an id: a non-empty string or a number.
fn is_id(field: Option<&Field>) -> Result<bool, &'static str> {
    match field.map(|f| (f.kind(), f.json())) {
        None | Some((Kind::Null, _)) => Ok(false),
        Some((Kind::String, text)) => Ok(text != "\"\""),
        Some((Kind::Number, _)) => Ok(true),
        Some(_) => Err("a string or a number"),
    }
}

fn validate(kind: EventType, event: &RawObject) -> Result<(), EventError> {
    let id = |field: &'static str| {
        is_id(event.get(field)).map_err(|expected| EventError::WrongType { field, expected })
    };
    let has_user = id("userId")?;
    let has_anonymous = id("anonymousId")?;
    for field in ["properties", "traits", "context", "integrations"] {
        if matches!(event.get(field).map(Field::kind), Some(k) if k != Kind::Object && k != Kind::Null)
        {
            return Err(EventError::WrongType {
                field,
                expected: "an object",
            });
        }
    }
    let required: &[&'static str] = match kind {
        EventType::Track => &["event"],
        EventType::Group => &["groupId"],
        EventType::Alias => &["previousId", "userId"],
        EventType::Identify | EventType::Page | EventType::Screen => &[],
    };
    for &field in required {
        if !id(field)? {
            return Err(EventError::MissingField { kind, field });
        }
    }
    if kind == EventType::Track && event.get("event").map(Field::kind) != Some(Kind::String) {
        return Err(EventError::WrongType {
            field: "event",
            expected: "a string",
        });
    }
    if !has_user && !has_anonymous {
        return Err(EventError::MissingIdentity);
    }
    Ok(())
}

fn timestamp_of(field: Option<&Field>, name: &'static str) -> Result<Option<i64>, EventError> {
    let Some(field) = field.filter(|f| f.kind() != Kind::Null) else {
        return Ok(None);
    };
    field
        .string()
        .and_then(|s| parse_ms(&s))
        .map(Some)
        .ok_or_else(|| EventError::BadTimestamp {
            field: name,
            value: field.json().to_string(),
        })
}

/// How far past `receivedAt` a corrected `timestamp` may lie before it is taken for a
/// wrong clock and set to `receivedAt`.
pub const FUTURE_TOLERANCE_MS: i64 = 60_000;

/// Segment's clock-skew correction: a device whose clock is off by d sends both its
/// `timestamp` and `sentAt` off by d, so `timestamp = receivedAt − (sentAt − timestamp)`
/// removes d. The device's own reading is kept as `originalTimestamp`. An event cannot
/// have happened after it was received: a corrected time more than
/// [`FUTURE_TOLERANCE_MS`] past `receivedAt` becomes `receivedAt` (else a far-future time
/// would win every "latest wins" trait for good).
fn correct_clock<'a>(
    event: &mut RawObject<'a>,
    batch_sent_at: Option<&Field<'a>>,
    received_at: i64,
) -> Result<(), EventError> {
    let client_time = timestamp_of(event.get("timestamp"), "timestamp")?;
    let sent_at = match event.present("sentAt") {
        Some(own) => timestamp_of(Some(own), "sentAt")?,
        None => {
            let batch = timestamp_of(batch_sent_at, "sentAt")?;
            if let (Some(_), Some(field)) = (batch, batch_sent_at) {
                event.set("sentAt", field.clone());
            }
            batch
        }
    };
    timestamp_of(event.get("originalTimestamp"), "originalTimestamp")?;
    let corrected = match (client_time, sent_at) {
        (Some(t), Some(sent)) => received_at.saturating_sub(sent.saturating_sub(t)),
        (Some(t), None) => t,
        (None, _) => received_at,
    };
    let corrected = if corrected > received_at.saturating_add(FUTURE_TOLERANCE_MS) {
        received_at
    } else {
        corrected
    };
    if client_time.is_some() && !event.contains("originalTimestamp") {
        if let Some(original) = event.get("timestamp").cloned() {
            event.set("originalTimestamp", original);
        }
    }
    event.set(
        "timestamp",
        Field::Written(json_string(&format_ms(corrected))),
    );
    Ok(())
}

#[cfg(test)]
mod tests;
