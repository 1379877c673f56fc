use serde_json::Value;

/// The six Segment calls. `batch` and `import` are envelopes, not event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Track,
        EventType::Identify,
        EventType::Page,
        EventType::Screen,
        EventType::Group,
        EventType::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated event on its way into the log. `body` is the Segment JSON with the
/// server's fields set; it is stored as text so that what the client sent is kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub source_id: i64,
    pub message_id: String,
    pub event_type: EventType,
    /// Server clock, milliseconds since the Unix epoch.
    pub received_at: i64,
    pub body: String,
}

/// An event as read back from the log, with its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub source_id: i64,
    pub message_id: String,
    pub event_type: EventType,
    pub received_at: i64,
    pub body: String,
}

impl StoredEvent {
    /// The event as the API shows it: the stored Segment JSON plus `seq`.
    pub fn to_json(&self) -> Value {
        let mut value: Value = serde_json::from_str(&self.body).unwrap_or_else(|_| {
            // The log only ever holds JSON that the collector produced; a body that no
            // longer parses is shown as a string rather than hidden.
            Value::String(self.body.clone())
        });
        if let Value::Object(map) = &mut value {
            map.insert("seq".into(), self.seq.into());
        }
        value
    }
}
