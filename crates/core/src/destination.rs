//! Destinations that events are delivered to, and the delivery log kept per event and
//! destination.

use serde::Serialize;

/// Where a destination's events go: a signed webhook carrying Segment events as stored, or
/// a vendor's API, each event mapped to the request that vendor documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    Webhook,
    /// Google Analytics 4, Measurement Protocol.
    Ga4,
    /// Meta (Facebook, Instagram) Conversions API.
    Meta,
    /// TikTok Events API 2.0 (web events).
    Tiktok,
    /// LinkedIn Conversions API.
    Linkedin,
    /// Google Ads API, click conversion upload (enhanced conversions for leads).
    GoogleAds,
    /// PostgreSQL tables in a schema the user names, laid out as Segment's warehouses.
    Warehouse,
}

impl DestinationKind {
    pub const ALL: [DestinationKind; 7] = [
        DestinationKind::Webhook,
        DestinationKind::Ga4,
        DestinationKind::Meta,
        DestinationKind::Tiktok,
        DestinationKind::Linkedin,
        DestinationKind::GoogleAds,
        DestinationKind::Warehouse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Webhook => "webhook",
            DestinationKind::Ga4 => "ga4",
            DestinationKind::Meta => "meta",
            DestinationKind::Tiktok => "tiktok",
            DestinationKind::Linkedin => "linkedin",
            DestinationKind::GoogleAds => "google_ads",
            DestinationKind::Warehouse => "warehouse",
        }
    }

    pub fn parse(s: &str) -> Option<DestinationKind> {
        DestinationKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A destination as configured. Empty `event_types` / `event_names` mean "every".
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub id: i64,
    pub name: String,
    pub kind: DestinationKind,
    pub url: String,
    /// Sightline purposes an event's consent must grant, every one of them.
    pub purposes: Vec<String>,
    pub event_types: Vec<String>,
    pub event_names: Vec<String>,
    /// Events per request: 1 sends one JSON object, more send a JSON array.
    pub batch_size: u32,
    /// What is done to each event before it is sent (`sightline_activate::Transform` as
    /// JSON: allow, deny, hash, rename); `{}` sends events as stored.
    pub transform: serde_json::Value,
    /// A vendor type's settings that are not secret (`{"measurement_id":"G-…"}` for GA4);
    /// `{}` for a webhook.
    pub settings: serde_json::Value,
    /// A webhook's HMAC signing key, or a vendor type's credential (GA4's API secret,
    /// Meta's, TikTok's or LinkedIn's access token). Kept as is (both are needed as they are), never listed, never
    /// logged.
    #[serde(skip)]
    pub signing_secret: String,
    pub created_at: i64,
    /// Delivery to it is paused (`destination disable`); its checkpoint holds.
    pub disabled: bool,
    /// Its configuration is in force: false for a destination created as a proposal and
    /// not yet approved (`sightline_govern::flow`), which is delivered nothing.
    pub approved: bool,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("purposes", &self.purposes)
            .field("event_types", &self.event_types)
            .field("event_names", &self.event_names)
            .field("batch_size", &self.batch_size)
            .field("settings", &self.settings)
            .field("signing_secret", &"***")
            .field("disabled", &self.disabled)
            .field("approved", &self.approved)
            .finish()
    }
}

/// What became of one event at one destination. Events the destination's filter does not
/// want are not logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Delivered,
    /// Withheld because the event's consent does not grant a purpose the destination needs.
    Suppressed,
    /// Refused by the destination (or given up on): kept for replay.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Delivered,
        DeliveryStatus::Suppressed,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Suppressed => "suppressed",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One line of the delivery log: the latest outcome for (destination, seq).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub destination_id: i64,
    pub seq: i64,
    pub message_id: String,
    pub status: DeliveryStatus,
    /// HTTP requests made for it (0 when suppressed).
    pub attempts: u32,
    pub response_code: Option<u16>,
    pub latency_ms: Option<i64>,
    /// Why it was suppressed or dead (which purpose and signal; the response's code and body).
    pub reason: Option<String>,
    /// When this outcome was recorded, ms since the Unix epoch.
    pub at: i64,
}

/// A destination about to be created: the store assigns `id` and `created_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDestination {
    pub name: String,
    pub kind: DestinationKind,
    pub url: String,
    pub purposes: Vec<String>,
    pub event_types: Vec<String>,
    pub event_names: Vec<String>,
    pub batch_size: u32,
    pub transform: serde_json::Value,
    pub settings: serde_json::Value,
    pub signing_secret: String,
}

impl std::fmt::Debug for NewDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDestination")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("purposes", &self.purposes)
            .field("event_types", &self.event_types)
            .field("event_names", &self.event_names)
            .field("batch_size", &self.batch_size)
            .field("settings", &self.settings)
            .field("signing_secret", &"***")
            .finish()
    }
}
