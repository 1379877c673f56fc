//! Timestamps: milliseconds since the Unix epoch inside, RFC 3339 outside.

use chrono::{DateTime, SecondsFormat, Utc};

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// RFC 3339 in UTC with milliseconds, the form Segment uses: `2026-11-24T13:19:29.123Z`.
pub fn format_ms(ms: i64) -> String {
    use chrono::{Datelike, Timelike};
    let time = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    if !(0..=9999).contains(&time.year()) {
        return time.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    // Written digit by digit: the collector writes two of these for every event it takes
    // in, and chrono's formatter cost several times as much.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, time.year() as u32);
    put(5, 2, time.month());
    put(8, 2, time.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    put(17, 2, time.second());
    put(20, 3, time.timestamp_subsec_millis());
    out.iter().map(|&b| char::from(b)).collect()
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

        /// Any time at all is written as chrono's RFC 3339 writer writes it.
        #[test]
        fn a_time_is_written_as_rfc_3339_writes_it(
            ms in proptest::prop_oneof![
                -62_167_219_200_000i64..253_402_300_799_999,
                proptest::num::i64::ANY,
            ]
        ) {
            let expected = DateTime::<Utc>::from_timestamp_millis(ms)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Millis, true);
            proptest::prop_assert_eq!(format_ms(ms), expected);
        }
    }

    #[test]
    fn reads_offsets_and_naive_times() {
        assert_eq!(parse_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_ms("1970-01-01T00:00:01.5"), Some(1500));
        assert_eq!(parse_ms("yesterday"), None);
    }
}
