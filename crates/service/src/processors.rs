//! One runtime for the processors that keep derived state current from the log (profiles,
//! deliveries, audience sync, governance metrics, dedup pruning). A processor only knows how
//! to take one step — read from its checkpoint, apply a page, commit — and the
//! [`Supervisor`] runs every one of them the same way: again at once while there is more,
//! after its idle wait when there is not, with a growing backoff when a step fails or
//! panics (the next step resumes from the checkpoint), and until shutdown, when each
//! finishes the step it is in. Each processor's health is in /metrics:
//! `sightline_processor_up{processor}` (0 while backing off after a failure) and
//! `sightline_processor_failures_total{processor}`.

use futures_util::FutureExt;
use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What a step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// There may be more right away: step again at once.
    More,
    /// Caught up: wait the processor's idle time before the next step.
    Idle,
}

pub type StepFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Step>> + Send + 'a>>;

pub trait Processor: Send + Sync + 'static {
    /// Its name in logs and metrics, e.g. `profiles` or `delivery:crm`; unique while it runs.
    fn name(&self) -> String;
    /// One step: from the checkpoint, a page, applied and committed.
    fn step(&self) -> StepFuture<'_>;
    /// How long to wait after a step that found nothing to do.
    fn idle(&self) -> Duration;
}

/// The first wait after a failed step; it doubles with each failure in a row, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait after the `failures`-th failed step in a row.
pub fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF)
}

/// Owns every running processor.
pub struct Supervisor {
    stop: watch::Sender<bool>,
    running: Mutex<(JoinSet<()>, HashSet<String>)>,
}

impl Default for Supervisor {
    fn default() -> Supervisor {
        Supervisor {
            stop: watch::channel(false).0,
            running: Mutex::new((JoinSet::new(), HashSet::new())),
        }
    }
}

impl Supervisor {
    pub fn new() -> Arc<Supervisor> {
        Arc::new(Supervisor::default())
    }

    /// Runs `processor` until shutdown; false (and nothing started) when one of that name
    /// already runs or shutdown has begun.
    pub fn start(&self, processor: Arc<dyn Processor>) -> bool {
        let name = processor.name();
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if *self.stop.borrow() || !running.1.insert(name.clone()) {
            return false;
        }
        running.0.spawn(run(processor, name, self.stop.subscribe()));
        true
    }

    /// Asks every processor to stop after its current step and waits up to `grace` for
    /// them; those still running then are cancelled (their checkpoints hold).
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let mut tasks = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut running.0)
        };
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("processors still busy after {grace:?}: cancelled");
            tasks.shutdown().await;
        }
    }
}

async fn run(processor: Arc<dyn Processor>, name: String, mut stop: watch::Receiver<bool>) {
    let up = metrics::gauge!("sightline_processor_up", "processor" => name.clone());
    let failed =
        metrics::counter!("sightline_processor_failures_total", "processor" => name.clone());
    up.set(1.0);
    let mut failures = 0u32;
    while !*stop.borrow() {
        let outcome = AssertUnwindSafe(processor.step()).catch_unwind().await;
        let wait = match outcome {
            Ok(Ok(step)) => {
                failures = 0;
                up.set(1.0);
                match step {
                    Step::More => {
                        // Others (and the requests) get their turn between pages.
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Step::Idle => processor.idle(),
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                tracing::warn!(processor = %name, error = %format!("{e:#}"), failures, "a processor step failed; retrying from its checkpoint");
                failed.increment(1);
                up.set(0.0);
                backoff(failures)
            }
            Err(panic) => {
                failures += 1;
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(processor = %name, panic = %message, failures, "a processor step panicked; restarting it from its checkpoint");
                failed.increment(1);
                up.set(0.0);
                backoff(failures)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::debug!(processor = %name, "stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    /// Fails, then panics, then works through `pages` pages, then idles; counts its steps.
    struct Flaky {
        steps: AtomicU32,
        pages: u32,
        done: tokio::sync::Notify,
    }

    impl Processor for Flaky {
        fn name(&self) -> String {
            "flaky".into()
        }

        fn step(&self) -> StepFuture<'_> {
            Box::pin(async move {
                let step = self.steps.fetch_add(1, Ordering::SeqCst);
                match step {
                    0 => anyhow::bail!("the store did not answer"),
                    1 => panic!("a bug"),
                    n if n < 2 + self.pages => Ok(Step::More),
                    _ => {
                        self.done.notify_one();
                        Ok(Step::Idle)
                    }
                }
            })
        }

        fn idle(&self) -> Duration {
            Duration::from_secs(3600)
        }
    }

    #[tokio::test]
    async fn a_failing_or_panicking_step_is_retried_and_shutdown_ends_an_idle_wait() {
        let supervisor = Supervisor::new();
        let flaky = Arc::new(Flaky {
            steps: AtomicU32::new(0),
            pages: 3,
            done: tokio::sync::Notify::new(),
        });
        assert!(supervisor.start(flaky.clone()));
        assert!(!supervisor.start(flaky.clone()), "one of a name at a time");
        flaky.done.notified().await;
        assert_eq!(flaky.steps.load(Ordering::SeqCst), 2 + 3 + 1);
        // Idle for an hour: shutdown must not wait for it.
        supervisor.shutdown(Duration::from_secs(60)).await;
        assert!(
            !supervisor.start(flaky.clone()),
            "nothing starts after shutdown"
        );
    }
}
