//! A circuit breaker for one destination: after enough failures in a row, stop sending for
//! a while rather than keep hammering a destination that is down, then try one request
//! before sending freely again. Pure: the time is passed in as milliseconds since the
//! epoch, as `sightline_core::time::now_ms` gives it.
//!
//! # States
//!
//! ```text
//!                  failure, fewer than failures_to_open in a row
//!                  ┌────┐
//!                  ▼    │
//!   ┌────────► Closed ──┘ ── failures_to_open-th failure in a row ──► Open(until)
//!   │                                                                  │     ▲
//!   │ success                                  allow at or after until │     │ failure
//!   │ (in any state)                           lets one trial through  ▼     │
//!   └──────────────────────────────────────────────────────────────── HalfOpen
//! ```
//!
//! - **Closed**: every request may go. A success resets the count of failures in a row;
//!   the `failures_to_open`-th failure in a row opens the breaker.
//! - **Open(until)**: nothing may go before `until`. The first [`Breaker::allow`] at or
//!   after it lets one trial request through and moves to HalfOpen.
//! - **HalfOpen**: the trial is out and nothing else may go. Its success closes the
//!   breaker; its failure opens it again for twice as long as the last time, up to
//!   `max_open_for`. The first opening after a success lasts `open_for`.
//!
//! A success closes the breaker from any state, even one reported late for a request sent
//! before the breaker opened: the destination has just answered, so it is up. A late
//! failure while open changes nothing, as the breaker already holds requests back.
//!
//! The caller must report the outcome of every request [`Breaker::allow`] let through,
//! with [`Breaker::on_success`] or [`Breaker::on_failure`] (a timeout is a failure):
//! a trial never reported keeps the breaker half-open for good.

use std::time::Duration;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker; 0 counts as 1.
    pub failures_to_open: u32,
    /// How long the first opening after a success lasts.
    pub open_for: Duration,
    /// The longest opening: each one after a failed trial lasts twice the last, up to this.
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures_to_open: 5,
            open_for: Duration::from_secs(1),
            max_open_for: Duration::from_secs(60),
        }
    }
}

/// Where a breaker is in its state machine: see the [module](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Requests go; `failures` is how many failed in a row.
    Closed { failures: u32 },
    /// No request goes before `until_ms`.
    Open { until_ms: i64 },
    /// One trial request is out; no other goes until its outcome is reported.
    HalfOpen,
}

/// What [`Breaker::allow`] says about sending a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Send it, and report its outcome.
    Send,
    /// The breaker is open: ask again at this time (ms since the epoch).
    WaitUntil(i64),
    /// A trial request is out: ask again once its outcome is reported.
    WaitForTrial,
}

/// The circuit breaker of one destination.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    /// Openings since the last success, which double each next opening's length.
    openings: u32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            state: State::Closed { failures: 0 },
            openings: 0,
        }
    }

    /// Where the breaker is now, for logs and metrics.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a request may go at `now_ms`. When the breaker is open and `until` has come,
    /// this lets the one trial through and the breaker becomes half-open.
    pub fn allow(&mut self, now_ms: i64) -> Permit {
        match self.state {
            State::Closed { .. } => Permit::Send,
            State::Open { until_ms } if now_ms < until_ms => Permit::WaitUntil(until_ms),
            State::Open { .. } => {
                self.state = State::HalfOpen;
                Permit::Send
            }
            State::HalfOpen => Permit::WaitForTrial,
        }
    }

    /// A request succeeded: the breaker closes.
    pub fn on_success(&mut self) {
        self.state = State::Closed { failures: 0 };
        self.openings = 0;
    }

    /// A request failed at `now_ms`.
    pub fn on_failure(&mut self, now_ms: i64) {
        match self.state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failures_to_open.max(1) {
                    self.open(now_ms);
                } else {
                    self.state = State::Closed { failures };
                }
            }
            State::Open { .. } => {}
            State::HalfOpen => self.open(now_ms),
        }
    }

    fn open(&mut self, now_ms: i64) {
        let open_for = self
            .config
            .open_for
            .saturating_mul(2u32.saturating_pow(self.openings.min(31)))
            .min(self.config.max_open_for);
        let open_ms = i64::try_from(open_for.as_millis()).unwrap_or(i64::MAX);
        self.state = State::Open {
            until_ms: now_ms.saturating_add(open_ms),
        };
        self.openings = self.openings.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig::default())
    }

    /// A default breaker opened at `now_ms` by five failures.
    fn opened(now_ms: i64) -> Breaker {
        let mut b = breaker();
        for _ in 0..5 {
            b.on_failure(now_ms);
        }
        b
    }

    #[test]
    fn closed_counts_failures_in_a_row_and_opens_at_the_threshold() {
        let mut b = breaker();
        for failures in 1..5 {
            b.on_failure(0);
            assert_eq!(b.state(), State::Closed { failures });
            assert_eq!(b.allow(0), Permit::Send);
        }
        b.on_failure(0);
        assert_eq!(b.state(), State::Open { until_ms: 1000 });
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut b = breaker();
        for _ in 0..4 {
            b.on_failure(0);
        }
        b.on_success();
        b.on_failure(0);
        assert_eq!(b.state(), State::Closed { failures: 1 });
    }

    #[test]
    fn open_holds_requests_until_its_time_then_lets_one_trial_through() {
        let mut b = opened(0);
        assert_eq!(b.allow(0), Permit::WaitUntil(1000));
        assert_eq!(b.allow(999), Permit::WaitUntil(1000));
        assert_eq!(b.allow(1000), Permit::Send);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.allow(1000), Permit::WaitForTrial);
        assert_eq!(b.allow(5000), Permit::WaitForTrial);
    }

    #[test]
    fn a_successful_trial_closes_and_the_next_opening_is_short_again() {
        let mut b = opened(0);
        b.allow(1000);
        b.on_success();
        assert_eq!(b.state(), State::Closed { failures: 0 });
        assert_eq!(b.allow(1000), Permit::Send);
        for _ in 0..5 {
            b.on_failure(2000);
        }
        assert_eq!(b.state(), State::Open { until_ms: 3000 });
    }

    #[test]
    fn failed_trials_double_the_opening_up_to_the_max() {
        let mut b = opened(0);
        let mut now = 0;
        let mut lengths = vec![];
        for _ in 0..9 {
            let State::Open { until_ms } = b.state() else {
                panic!("{:?}", b.state())
            };
            lengths.push(until_ms - now);
            now = until_ms;
            assert_eq!(b.allow(now), Permit::Send);
            b.on_failure(now);
        }
        assert_eq!(
            lengths,
            [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
        );
    }

    #[test]
    fn a_late_failure_while_open_changes_nothing_and_a_late_success_closes() {
        let mut b = opened(0);
        b.on_failure(500);
        assert_eq!(b.state(), State::Open { until_ms: 1000 });
        b.on_success();
        assert_eq!(b.state(), State::Closed { failures: 0 });
    }

    #[test]
    fn zero_failures_to_open_counts_as_one() {
        let mut b = Breaker::new(BreakerConfig {
            failures_to_open: 0,
            ..BreakerConfig::default()
        });
        b.on_failure(0);
        assert_eq!(b.state(), State::Open { until_ms: 1000 });
    }

    #[test]
    fn far_times_and_long_openings_saturate() {
        let mut b = Breaker::new(BreakerConfig {
            failures_to_open: 1,
            open_for: Duration::MAX,
            max_open_for: Duration::MAX,
        });
        b.on_failure(i64::MAX - 1);
        assert_eq!(b.state(), State::Open { until_ms: i64::MAX });
        assert_eq!(b.allow(i64::MAX), Permit::Send);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allow,
        Success,
        Failure,
    }

    /// How time moves before an op: by some milliseconds, or to just around the end of the
    /// current opening, where an off-by-one would show.
    #[derive(Debug, Clone)]
    enum Step {
        By(i64),
        NearUntil(i64),
    }

    proptest! {
        #[test]
        fn never_sends_while_open_and_a_success_always_closes(
            failures_to_open in 0u32..8,
            open_for in 1u64..5000,
            max_open_for in 1u64..60_000,
            ops in proptest::collection::vec(
                (
                    prop_oneof![Just(Op::Allow), Just(Op::Success), Just(Op::Failure)],
                    prop_oneof![(0i64..3000).prop_map(Step::By), (-2i64..=2).prop_map(Step::NearUntil)],
                ),
                0..200,
            ),
        ) {
            let config = BreakerConfig {
                failures_to_open,
                open_for: Duration::from_millis(open_for),
                max_open_for: Duration::from_millis(max_open_for),
            };
            let mut b = Breaker::new(config);
            let mut now = 0;
            for (op, step) in ops {
                now = match (step, b.state()) {
                    (Step::NearUntil(offset), State::Open { until_ms }) => (until_ms + offset).max(now),
                    (Step::By(ms), _) => now + ms,
                    (Step::NearUntil(_), _) => now,
                };
                let before = b.state();
                match op {
                    Op::Allow => {
                        let permit = b.allow(now);
                        match before {
                            State::Closed { .. } => prop_assert_eq!(permit, Permit::Send),
                            State::Open { until_ms } if now < until_ms => {
                                prop_assert_eq!(permit, Permit::WaitUntil(until_ms));
                                prop_assert_eq!(b.state(), before);
                            }
                            State::Open { .. } => {
                                prop_assert_eq!(permit, Permit::Send);
                                prop_assert_eq!(b.state(), State::HalfOpen);
                            }
                            State::HalfOpen => prop_assert_eq!(permit, Permit::WaitForTrial),
                        }
                    }
                    Op::Success => {
                        b.on_success();
                        prop_assert_eq!(b.state(), State::Closed { failures: 0 });
                    }
                    Op::Failure => {
                        b.on_failure(now);
                        let opened_now = !matches!(before, State::Open { .. });
                        if let (State::Open { until_ms }, true) = (b.state(), opened_now) {
                            let open_ms = until_ms - now;
                            prop_assert!((open_for.min(max_open_for) as i64..=max_open_for as i64).contains(&open_ms));
                        }
                    }
                }
            }
        }
    }
}
