//! The runtime for the processors that keep derived state current from the log (profiles,
//! deliveries, audience sync, governance metrics, dedup pruning). A processor only knows how
//! to take one step — read from its checkpoint, apply a page, commit — and the
//! [`Supervisor`] runs every one of them the same way: again at once while there is more,
//! after its idle wait when there is not, with a growing backoff when a step fails or
//! panics (the next step resumes from the checkpoint), and until shutdown, when each
//! finishes the step it is in. Each processor's health is in /metrics:
//! `sightline_processor_up{processor}` (0 while backing off after a failure) and
//! `sightline_processor_failures_total{processor}`; a processor that follows the log also
//! says how far it has applied it, and [`progress`] turns that into its lag (events and
//! seconds), shown in /metrics and `GET /readyz?verbose`.

use futures_util::FutureExt;
use sightline_core::time;
use sightline_store::EventLog;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Nothing left to do, ever (its destination was deleted): it stops, and one of its
    /// name may be started again.
    Finished,
}

pub type StepFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Step>> + Send + 'a>>;
pub type PositionFuture<'a> =
    Pin<Box<dyn Future<Output = anyhow::Result<Option<i64>>> + Send + 'a>>;
pub type DrainFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Processor: Send + Sync + 'static {
    /// Its name in logs and metrics, e.g. `profiles` or `delivery:crm`; unique while it runs.
    fn name(&self) -> String;
    /// One step: from the checkpoint, a page, applied and committed.
    fn step(&self) -> StepFuture<'_>;
    /// How long to wait after a step that found nothing to do.
    fn idle(&self) -> Duration;
    /// For a processor that follows the log: the seq through which it has applied it.
    fn applied_through(&self) -> PositionFuture<'_> {
        Box::pin(async { Ok(None) })
    }
    /// Where it runs when several nodes share the store (see [`crate::cluster`]).
    fn placement(&self) -> Placement {
        Placement::Leased
    }
    /// Whether it runs behind the others when the CPU is short (on the runtime
    /// [`WAITING_NICE`] nicer): one that waits for another ([`Placement::With`]) never
    /// passes it anyway, and one whose output nobody waits for (a report's counts) should
    /// not slow the profiles catching up after a burst.
    fn behind(&self) -> bool {
        matches!(self.placement(), Placement::With(_))
    }
    /// Waits for what its steps left running (the profiles' last save) once it stops.
    fn drain(&self) -> DrainFuture<'_> {
        Box::pin(async {})
    }
}

/// Where a processor runs when several nodes share the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On one node at a time: the one holding its lease.
    Leased,
    /// On one node at a time, and only on the node running the named processor, whose
    /// memory it reads (delivery and audience sync read the profiles processor's book).
    /// It waits for that one (it never passes it), so it runs at a lower priority: when the
    /// CPU is short, the one it waits for catches up first.
    With(&'static str),
    /// On every node: it keeps that node's own memory current (plans, suppression list).
    EveryNode,
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

/// A running processor, as the supervisor knows it.
#[derive(Clone)]
struct Running {
    processor: Arc<dyn Processor>,
    /// False while it backs off after a failed step.
    up: Arc<AtomicBool>,
}

type Registry = Arc<Mutex<BTreeMap<String, Running>>>;

/// How much nicer than the server's the processors' threads are (see [`runtime`]).
const PROCESSOR_NICE: i32 = 10;
/// How much nicer still a processor that runs behind the others is ([`Processor::behind`]).
const WAITING_NICE: i32 = 5;

/// The runtimes for the processors, whose threads yield the CPU to the requests': they run
/// [`PROCESSOR_NICE`] nicer (on Linux, where niceness is per thread), so that when the CPU
/// is saturated the kernel runs the threads that answer and commit tracking requests first
/// and the processors catch up with what is left, and when it is not, the processors use
/// all of it. Those that run behind the others ([`Processor::behind`]) are [`WAITING_NICE`]
/// nicer still, on a runtime of their own. Blocking threads (a processor's store calls) run at their
/// runtime's priority too.
pub fn runtime() -> std::io::Result<Background> {
    let build = |name: &str, nice: i32| {
        let nicer = niceness().map(|server| (server + nice).min(MAX_NICE));
        tokio::runtime::Builder::new_multi_thread()
            .thread_name(name)
            .on_thread_start(move || {
                if let Some(nice) = nicer {
                    set_niceness(nice)
                }
            })
            .enable_all()
            .build()
    };
    Ok(Background {
        first: Some(build("processor", PROCESSOR_NICE)?),
        waiting: Some(build("processor-wait", PROCESSOR_NICE + WAITING_NICE)?),
    })
}

/// The processors' runtimes (see [`runtime`]). Dropped, they stop without waiting for
/// their tasks (the supervisor's shutdown has let them finish their steps), as a runtime
/// may not be dropped inside another's tasks otherwise.
pub struct Background {
    first: Option<tokio::runtime::Runtime>,
    waiting: Option<tokio::runtime::Runtime>,
}

impl Background {
    pub fn runtimes(&self) -> Runtimes {
        let handle = |runtime: &Option<tokio::runtime::Runtime>| {
            runtime
                .as_ref()
                .expect("present until dropped")
                .handle()
                .clone()
        };
        Runtimes {
            first: handle(&self.first),
            waiting: handle(&self.waiting),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for runtime in [self.first.take(), self.waiting.take()]
            .into_iter()
            .flatten()
        {
            runtime.shutdown_background();
        }
    }
}

/// Where processors run: those that run behind the others ([`Processor::behind`]) on
/// `waiting`, the others on `first`.
#[derive(Clone)]
pub struct Runtimes {
    pub first: tokio::runtime::Handle,
    pub waiting: tokio::runtime::Handle,
}

impl Runtimes {
    /// Everything on the current runtime.
    pub fn current() -> Runtimes {
        let current = tokio::runtime::Handle::current();
        Runtimes {
            first: current.clone(),
            waiting: current,
        }
    }
}

/// The largest niceness (the lowest priority) Linux has.
const MAX_NICE: i32 = 19;

/// The calling thread's niceness, where threads have their own (Linux).
fn niceness() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: nice(0) changes nothing; on Linux it returns the calling thread's
        // niceness (-1 is also an error's answer, but a server is not run at -1 in practice,
        // and mistaking it for one only makes the processors as nice as the rest).
        Some(unsafe { libc::nice(0) })
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Makes the calling thread `nice` (when that is nicer than it is: a thread may not raise
/// its own priority), e.g. a blocking thread started by a processor's thread is already.
fn set_niceness(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let by = nice - niceness().unwrap_or(nice);
        // SAFETY: nice only reads its integer argument; on Linux it changes the calling
        // thread's niceness by that much.
        if by > 0 && unsafe { libc::nice(by) } == -1 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "processors: cannot lower their threads' priority; they compete with requests"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Owns every running processor.
pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
    running: Registry,
    /// Where the processors run.
    runtimes: Runtimes,
    /// The leases this node holds, when it shares the store with other nodes: a leased
    /// processor steps only while its name is in the set. `None`: one node runs everything.
    leases: Option<watch::Receiver<BTreeSet<String>>>,
}

impl Supervisor {
    /// A supervisor running its processors on the current runtime.
    pub fn new() -> Arc<Supervisor> {
        Supervisor::on(Runtimes::current())
    }

    /// A supervisor running its processors on `runtimes` (the server's: see [`runtime`]).
    pub fn on(runtimes: Runtimes) -> Arc<Supervisor> {
        Supervisor::build(runtimes, None)
    }

    /// A supervisor of one node among several: a processor that is not
    /// [`Placement::EveryNode`] steps only while `leases` holds its name (kept by
    /// [`crate::cluster::Membership`]).
    pub fn clustered(
        runtimes: Runtimes,
        leases: watch::Receiver<BTreeSet<String>>,
    ) -> Arc<Supervisor> {
        Supervisor::build(runtimes, Some(leases))
    }

    fn build(
        runtimes: Runtimes,
        leases: Option<watch::Receiver<BTreeSet<String>>>,
    ) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            stop: watch::channel(false).0,
            tasks: Mutex::new(JoinSet::new()),
            running: Registry::default(),
            runtimes,
            leases,
        })
    }

    /// Runs `processor` until shutdown; false (and nothing started) when one of that name
    /// already runs or shutdown has begun.
    pub fn start(&self, processor: Arc<dyn Processor>) -> bool {
        let name = processor.name();
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if *self.stop.borrow() || running.contains_key(&name) {
            return false;
        }
        let entry = Running {
            processor,
            up: Arc::new(AtomicBool::new(true)),
        };
        running.insert(name.clone(), entry.clone());
        let placement = entry.processor.placement();
        let leases = self
            .leases
            .clone()
            .filter(|_| placement != Placement::EveryNode);
        let runtime = match entry.processor.behind() {
            true => &self.runtimes.waiting,
            false => &self.runtimes.first,
        };
        tasks.spawn_on(
            run(
                entry,
                name,
                self.stop.subscribe(),
                leases,
                self.running.clone(),
            ),
            runtime,
        );
        true
    }

    /// The running processors: name, placement and how far it has applied the log.
    pub async fn placements(&self) -> Vec<(String, Placement, Option<i64>)> {
        let mut all = Vec::new();
        for (name, entry) in self.running() {
            let applied = entry.processor.applied_through().await.ok().flatten();
            all.push((name, entry.processor.placement(), applied));
        }
        all
    }

    /// The running processors by name, each with whether it is up.
    fn running(&self) -> Vec<(String, Running)> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running
            .iter()
            .map(|(name, entry)| (name.clone(), entry.clone()))
            .collect()
    }

    /// Whether a processor steps on this node: always with one node; with several, while
    /// this node holds its lease (or it runs on every node).
    fn active_here(&self, name: &str, processor: &dyn Processor) -> bool {
        match &self.leases {
            None => true,
            Some(leases) => {
                processor.placement() == Placement::EveryNode || leases.borrow().contains(name)
            }
        }
    }

    /// Asks every processor to stop after its current step and waits up to `grace` for
    /// them; those still running then are cancelled (their checkpoints hold).
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let mut tasks =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("processors still busy after {grace:?}: cancelled");
            tasks.shutdown().await;
        }
    }
}

async fn run(
    entry: Running,
    name: String,
    mut stop: watch::Receiver<bool>,
    mut leases: Option<watch::Receiver<BTreeSet<String>>>,
    registry: Registry,
) {
    let Running { processor, up } = entry;
    let up_gauge = metrics::gauge!("sightline_processor_up", "processor" => name.clone());
    let failed =
        metrics::counter!("sightline_processor_failures_total", "processor" => name.clone());
    let set_up = |value: bool| {
        up.store(value, Ordering::Relaxed);
        up_gauge.set(if value { 1.0 } else { 0.0 });
    };
    set_up(true);
    let mut failures = 0u32;
    while !*stop.borrow() {
        if let Some(leases) = &mut leases {
            if !leases.borrow_and_update().contains(&name) {
                // Another node runs it: wait until this one holds its lease.
                tokio::select! {
                    changed = leases.changed() => if changed.is_err() { break },
                    _ = stop.changed() => {}
                }
                continue;
            }
        }
        let outcome = AssertUnwindSafe(processor.step()).catch_unwind().await;
        let wait = match outcome {
            Ok(Ok(step)) => {
                failures = 0;
                set_up(true);
                match step {
                    Step::More => {
                        // Others (and the requests) get their turn between pages.
                        tokio::task::yield_now().await;
                        continue;
                    }
                    Step::Idle => processor.idle(),
                    Step::Finished => {
                        tracing::info!(processor = %name, "finished");
                        break;
                    }
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                tracing::warn!(processor = %name, error = %format!("{e:#}"), failures, "a processor step failed; retrying from its checkpoint");
                failed.increment(1);
                set_up(false);
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
                set_up(false);
                backoff(failures)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
    processor.drain().await;
    registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&name);
    tracing::debug!(processor = %name, "stopped");
}

/// How far one running processor is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Progress {
    pub processor: String,
    /// False while it backs off after a failed step.
    pub up: bool,
    /// For a processor that follows the log: how far behind its end it is.
    pub behind: Option<Behind>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Behind {
    /// The log's last seq minus the last one applied: the events still to apply (an upper
    /// bound, as duplicates leave gaps in the seqs).
    pub events: i64,
    /// How long ago the oldest event still to apply was received; 0 when caught up.
    pub seconds: f64,
}

/// The progress of every processor stepping on this node, read now; also set as the gauges
/// `sightline_processor_lag_events{processor}` and `sightline_processor_lag_seconds{processor}`.
pub async fn progress(
    store: &dyn EventLog,
    supervisor: &Supervisor,
) -> anyhow::Result<Vec<Progress>> {
    let log_end = store.last_seq().await?;
    let now = time::now_ms();
    let mut all = Vec::new();
    for (name, entry) in supervisor.running() {
        // Another node's to report.
        if !supervisor.active_here(&name, entry.processor.as_ref()) {
            continue;
        }
        let behind = match entry.processor.applied_through().await? {
            None => None,
            Some(applied) if applied >= log_end => Some(Behind {
                events: 0,
                seconds: 0.0,
            }),
            Some(applied) => {
                let oldest = store.read_events(applied, 1, None).await?;
                let received = oldest.first().map_or(now, |e| e.received_at);
                Some(Behind {
                    events: log_end - applied,
                    seconds: (now - received).max(0) as f64 / 1000.0,
                })
            }
        };
        if let Some(behind) = &behind {
            metrics::gauge!("sightline_processor_lag_events", "processor" => name.clone())
                .set(behind.events as f64);
            metrics::gauge!("sightline_processor_lag_seconds", "processor" => name.clone())
                .set(behind.seconds);
        }
        all.push(Progress {
            processor: name,
            up: entry.up.load(Ordering::Relaxed),
            behind,
        });
    }
    Ok(all)
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

    #[cfg(target_os = "linux")]
    #[test]
    fn the_processors_runtimes_run_nicer_than_the_server() {
        let server = niceness().unwrap();
        let background = runtime().unwrap();
        let nice = |runtime: &Option<tokio::runtime::Runtime>| {
            runtime.as_ref().unwrap().block_on(async {
                let worker = tokio::spawn(async { niceness() }).await.unwrap();
                let blocking = tokio::task::spawn_blocking(niceness).await.unwrap();
                // A blocking thread started from a worker (already nicer) is no nicer still.
                let nested = tokio::spawn(async { tokio::task::spawn_blocking(niceness).await })
                    .await
                    .unwrap()
                    .unwrap();
                (worker, blocking, nested)
            })
        };
        let expected = Some((server + PROCESSOR_NICE).min(MAX_NICE));
        assert_eq!(nice(&background.first), (expected, expected, expected));
        let expected = Some((server + PROCESSOR_NICE + WAITING_NICE).min(MAX_NICE));
        assert_eq!(nice(&background.waiting), (expected, expected, expected));
        assert_eq!(
            niceness(),
            Some(server),
            "the caller's thread is left as it was"
        );
    }

    /// Notes the niceness of the thread its first step ran on.
    struct Notes {
        behind: bool,
        niceness: Mutex<Option<i32>>,
        stepped: tokio::sync::Notify,
    }

    impl Processor for Notes {
        fn name(&self) -> String {
            format!("notes-{}", self.behind)
        }

        fn step(&self) -> StepFuture<'_> {
            Box::pin(async move {
                *self.niceness.lock().unwrap() = niceness();
                self.stepped.notify_one();
                Ok(Step::Idle)
            })
        }

        fn idle(&self) -> Duration {
            Duration::from_secs(3600)
        }

        fn behind(&self) -> bool {
            self.behind
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_processor_behind_the_others_runs_on_the_nicer_runtime() {
        let server = niceness().unwrap();
        let background = runtime().unwrap();
        let caller = tokio::runtime::Runtime::new().unwrap();
        let seen = caller.block_on(async {
            let supervisor = Supervisor::on(background.runtimes());
            let mut seen = Vec::new();
            for behind in [false, true] {
                let notes = Arc::new(Notes {
                    behind,
                    niceness: Mutex::new(None),
                    stepped: tokio::sync::Notify::new(),
                });
                let stepped = notes.stepped.notified();
                assert!(supervisor.start(notes.clone()));
                stepped.await;
                seen.push(*notes.niceness.lock().unwrap());
            }
            supervisor.shutdown(Duration::from_secs(10)).await;
            seen
        });
        assert_eq!(
            seen,
            [
                Some((server + PROCESSOR_NICE).min(MAX_NICE)),
                Some((server + PROCESSOR_NICE + WAITING_NICE).min(MAX_NICE)),
            ]
        );
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

    /// Has applied the log through `through`; finishes at its first step when `finish`.
    struct Follows {
        through: i64,
        finish: bool,
        stepped: tokio::sync::Notify,
    }

    impl Processor for Follows {
        fn name(&self) -> String {
            format!("follows-{}", self.through)
        }

        fn step(&self) -> StepFuture<'_> {
            Box::pin(async move {
                self.stepped.notify_one();
                Ok(if self.finish {
                    Step::Finished
                } else {
                    Step::Idle
                })
            })
        }

        fn idle(&self) -> Duration {
            Duration::from_secs(3600)
        }

        fn applied_through(&self) -> PositionFuture<'_> {
            Box::pin(async move { Ok(Some(self.through)) })
        }
    }

    #[tokio::test]
    async fn progress_says_how_far_behind_the_log_each_processor_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = sightline_store::SqliteStore::open(dir.path())
            .await
            .unwrap();
        let received = time::now_ms() - 5_000;
        let events = (0..5)
            .map(|i| sightline_core::NewEvent {
                source_id: 1,
                message_id: format!("m{i}"),
                event_type: sightline_core::EventType::Track,
                received_at: received + i,
                body: format!(r#"{{"type":"track","event":"E","messageId":"m{i}"}}"#),
            })
            .collect();
        store.append(events, 0).await.unwrap();
        let supervisor = Supervisor::new();
        let behind = |through| {
            Arc::new(Follows {
                through,
                finish: false,
                stepped: tokio::sync::Notify::new(),
            })
        };
        assert!(supervisor.start(behind(2)));
        assert!(supervisor.start(behind(5)));
        let all = progress(&store, &supervisor).await.unwrap();
        assert_eq!(all.len(), 2);
        let lagging = all[0].behind.clone().unwrap();
        assert_eq!(
            (all[0].processor.as_str(), lagging.events),
            ("follows-2", 3)
        );
        // The oldest event still to apply (seq 3) was received 5 s ago, give or take.
        assert!(lagging.seconds >= 4.9, "{lagging:?}");
        assert_eq!(
            all[1].behind,
            Some(Behind {
                events: 0,
                seconds: 0.0
            })
        );
        assert!(all.iter().all(|p| p.up));
        supervisor.shutdown(Duration::from_secs(60)).await;
    }

    #[tokio::test]
    async fn a_finished_processor_leaves_and_may_start_again() {
        let supervisor = Supervisor::new();
        let finishing = Arc::new(Follows {
            through: 0,
            finish: true,
            stepped: tokio::sync::Notify::new(),
        });
        assert!(supervisor.start(finishing.clone()));
        finishing.stepped.notified().await;
        // It leaves the registry right after its step; start again until it is let in.
        while !supervisor.start(finishing.clone()) {
            tokio::task::yield_now().await;
        }
        finishing.stepped.notified().await;
        supervisor.shutdown(Duration::from_secs(60)).await;
    }
}
