//! Timestamps: milliseconds since the Unix epoch inside, RFC 3339 outside.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// RFC 3339 in UTC with milliseconds, the form Segment uses: `2026-11-24T13:19:29.123Z`.
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The UTC day of a time in ms, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    use chrono::Datelike;
    // Written out rather than through `format("%Y-%m-%d")` or `format_ms`, which cost
    // more for every one of the log's events the consent counts read.
    let day = DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .date_naive();
    format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day())
}

/// Parses an ISO 8601 / RFC 3339 timestamp with an offset (`Z` or `+hh:mm`).
/// A date-time without an offset is read as UTC, as the Segment libraries do.
pub fn parse_ms(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_milliseconds() {
        let ms = 1_764_000_000_123;
        assert_eq!(parse_ms(&format_ms(ms)), Some(ms));
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }

    proptest::proptest! {
        /// Any time from year 0 to 9999 (the times events carry) is on the day chrono's
        /// `%Y-%m-%d` names.
        #[test]
        fn a_day_is_named_as_iso_8601_writes_it(ms in -62_167_219_200_000i64..253_402_300_799_999) {
            let expected = DateTime::<Utc>::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string();
            proptest::prop_assert_eq!(day_of(ms), expected);
        }
    }

    #[test]
    fn reads_offsets_and_naive_times() {
        assert_eq!(parse_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_ms("1970-01-01T00:00:01.5"), Some(1500));
        assert_eq!(parse_ms("yesterday"), None);
    }
}
