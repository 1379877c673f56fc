//! How long to wait before retrying a delivery. Pure: the random part is passed in.

use std::time::Duration;

/// Exponential backoff with jitter: retry `n` waits a random time between half and all of
/// `min(initial * 2^n, max)`, so that many destinations failing together do not retry in
/// lockstep, while each still waits at least half its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before retry `retry` (0 for the first), `jitter` in `[0, 1]`.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let step = self
            .initial
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max);
        step / 2 + step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// The longest `Retry-After` honoured; a longer one is cut to this so a worker never
/// sleeps for days on one answer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// A `Retry-After` value: delay-seconds, or an HTTP date relative to `now_ms`.
pub fn retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            let ms = (at.timestamp_millis() - now_ms).max(0);
            Duration::from_millis(ms as u64)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A uniformly random number in `[0, 1]` for [`Backoff::delay`].
pub fn jitter() -> f64 {
    // A failed random source only loses the jitter, never the retry.
    getrandom::u64().map_or(0.5, |r| (r >> 11) as f64 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_from_initial_up_to_max() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff.delay(3, 1.0), Duration::from_millis(800));
        assert_eq!(backoff.delay(40, 1.0), Duration::from_secs(30));
        assert_eq!(backoff.delay(u32::MAX, 0.0), Duration::from_secs(15));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("2", 0), Some(Duration::from_secs(2)));
        assert_eq!(retry_after("99999999", 0), Some(MAX_RETRY_AFTER));
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    proptest! {
        #[test]
        fn delays_are_bounded_and_grow(retry in 0u32..100, jitter in 0.0f64..=1.0) {
            let backoff = Backoff::default();
            let delay = backoff.delay(retry, jitter);
            prop_assert!(delay <= backoff.max);
            prop_assert!(delay >= backoff.initial / 2);
            prop_assert!(backoff.delay(retry + 1, 0.0) >= backoff.delay(retry, 0.0));
        }

        #[test]
        fn jitter_is_in_range(_ in 0..10) {
            let j = jitter();
            prop_assert!((0.0..=1.0).contains(&j));
        }
    }
}
