//! From a tracking request's body to events ready for the log: the Segment spec's rules,
//! with no IO. Limits that make a request unacceptable refuse the whole request; a batch
//! item that breaks a field rule is refused on its own and its siblings are kept.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
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

#[derive(Deserialize)]
struct BatchEnvelope<'a> {
    #[serde(borrow, default)]
    batch: Option<&'a RawValue>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    integrations: Option<Value>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<Value>,
    #[serde(rename = "writeKey", default)]
    write_key: Option<Value>,
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
    match call {
        Call::Single(kind) => parse_single(kind, body, received, limits, new_id),
        Call::Batch => parse_batch(body, received, limits, new_id),
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
    let value: Value = serde_json::from_slice(body).map_err(RequestError::from_json)?;
    let Value::Object(mut event) = value else {
        return Err(RequestError::NotAnObject);
    };
    check_message_id(&event, 0, limits)?;
    let write_key = take_write_key(&mut event);
    event.insert("type".into(), kind.as_str().into());
    let shared = Shared::default();
    Ok(Parsed {
        write_key,
        events: vec![prepare(event, &shared, received, new_id)],
    })
}

fn parse_batch(
    body: &[u8],
    received: Received,
    limits: &Limits,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Parsed, RequestError> {
    // Items are borrowed raw, so that each one's size is seen as sent and it is parsed once.
    // (serde would also read a struct from an array, so the object is checked first.)
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => RequestError::NotAnObject,
                Err(e) => RequestError::from_json(e),
            },
        );
    }
    let envelope: BatchEnvelope<'_> =
        serde_json::from_slice(body).map_err(RequestError::from_json)?;
    let items: Vec<&RawValue> = match envelope.batch {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|_| RequestError::BatchNotArray)?,
        None => return Err(RequestError::BatchNotArray),
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
    let mut parsed_items = Vec::with_capacity(items.len());
    for (index, raw) in items.iter().enumerate() {
        let size = raw.get().len();
        if size > limits.max_event_bytes {
            return Err(RequestError::EventTooLarge {
                index,
                size,
                limit: limits.max_event_bytes,
            });
        }
        let item: Value = serde_json::from_str(raw.get()).map_err(RequestError::from_json)?;
        if let Value::Object(map) = &item {
            check_message_id(map, index, limits)?;
        }
        parsed_items.push(item);
    }
    let shared = Shared {
        context: envelope.context.filter(Value::is_object),
        integrations: envelope.integrations.filter(Value::is_object),
        sent_at: envelope.sent_at,
    };
    let events = parsed_items
        .into_iter()
        .map(|item| match item {
            Value::Object(mut event) => {
                take_write_key(&mut event);
                prepare(event, &shared, received, new_id)
            }
            _ => Err(EventError::NotAnObject),
        })
        .collect();
    Ok(Parsed {
        write_key: envelope
            .write_key
            .and_then(|k| k.as_str().map(str::to_owned)),
        events,
    })
}

/// Batch-level fields that apply to every item.
#[derive(Default)]
struct Shared {
    context: Option<Value>,
    integrations: Option<Value>,
    sent_at: Option<Value>,
}

fn check_message_id(
    event: &Map<String, Value>,
    index: usize,
    limits: &Limits,
) -> Result<(), RequestError> {
    if let Some(Value::String(id)) = event.get("messageId") {
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
fn take_write_key(event: &mut Map<String, Value>) -> Option<String> {
    match event.remove("writeKey") {
        Some(Value::String(key)) => Some(key),
        _ => None,
    }
}

fn prepare(
    mut event: Map<String, Value>,
    shared: &Shared,
    received: Received,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Prepared, EventError> {
    let kind = match event.get("type") {
        Some(Value::String(t)) => {
            EventType::parse(t).ok_or_else(|| EventError::UnknownType(t.clone()))?
        }
        Some(_) => {
            return Err(EventError::WrongType {
                field: "type",
                expected: "a string",
            })
        }
        None => return Err(EventError::MissingType),
    };
    validate(kind, &event)?;

    for (field, value) in [
        ("context", &shared.context),
        ("integrations", &shared.integrations),
    ] {
        if let Some(Value::Object(batch_level)) = value {
            merge_under(&mut event, field, batch_level);
        }
    }

    let message_id = match event.get("messageId") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => new_id(),
    };
    event.insert("messageId".into(), message_id.clone().into());

    correct_clock(&mut event, shared.sent_at.as_ref(), received.at)?;
    event.insert("receivedAt".into(), format_ms(received.at).into());
    if received.gpc {
        event.insert("gpc".into(), true.into());
    }

    Ok(Prepared {
        message_id,
        event_type: kind,
        body: Value::Object(event).to_string(),
    })
}

/// Item-level keys win over the batch's, one level deep, as Segment merges them.
fn merge_under(event: &mut Map<String, Value>, field: &str, batch_level: &Map<String, Value>) {
    match event.get_mut(field) {
        Some(Value::Object(own)) => {
            for (key, value) in batch_level {
                own.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        Some(_) => {}
        None => {
            event.insert(field.into(), Value::Object(batch_level.clone()));
        }
    }
}

fn is_id(value: Option<&Value>) -> Result<bool, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) => Ok(!s.is_empty()),
        Some(Value::Number(_)) => Ok(true),
        Some(_) => Err("a string or a number"),
    }
}

fn validate(kind: EventType, event: &Map<String, Value>) -> Result<(), EventError> {
    let id = |field: &'static str| {
        is_id(event.get(field)).map_err(|expected| EventError::WrongType { field, expected })
    };
    let has_user = id("userId")?;
    let has_anonymous = id("anonymousId")?;
    for field in ["properties", "traits", "context", "integrations"] {
        if matches!(event.get(field), Some(v) if !v.is_object() && !v.is_null()) {
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
    if kind == EventType::Track && !event.get("event").is_some_and(Value::is_string) {
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

fn timestamp_of(value: Option<&Value>, field: &'static str) -> Result<Option<i64>, EventError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_ms(s).map(Some).ok_or(EventError::BadTimestamp {
            field,
            value: s.clone(),
        }),
        Some(other) => Err(EventError::BadTimestamp {
            field,
            value: other.to_string(),
        }),
    }
}

/// Segment's clock-skew correction: a device whose clock is off by d sends both its
/// `timestamp` and `sentAt` off by d, so `timestamp = receivedAt − (sentAt − timestamp)`
/// removes d. The device's own reading is kept as `originalTimestamp`.
fn correct_clock(
    event: &mut Map<String, Value>,
    batch_sent_at: Option<&Value>,
    received_at: i64,
) -> Result<(), EventError> {
    let client_time = timestamp_of(event.get("timestamp"), "timestamp")?;
    let sent_at = match event.get("sentAt") {
        Some(v) if !v.is_null() => timestamp_of(Some(v), "sentAt")?,
        _ => {
            let batch = timestamp_of(batch_sent_at, "sentAt")?;
            if let Some(v) = batch_sent_at.filter(|_| batch.is_some()) {
                event.insert("sentAt".into(), v.clone());
            }
            batch
        }
    };
    timestamp_of(event.get("originalTimestamp"), "originalTimestamp")?;
    let corrected = match (client_time, sent_at) {
        (Some(t), Some(sent)) => received_at - (sent - t),
        (Some(t), None) => t,
        (None, _) => received_at,
    };
    if let Some(original) = event.get("timestamp").cloned() {
        event.entry("originalTimestamp").or_insert(original);
    }
    event.insert("timestamp".into(), format_ms(corrected).into());
    Ok(())
}

#[cfg(test)]
mod tests;
