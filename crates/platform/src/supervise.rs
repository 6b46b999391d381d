//! Supervised background work: every long-running task of a service (outbox
//! relay, consumers, dispatcher, reminders, search upkeep…) is owned here. A
//! worker that ends or panics before shutdown is logged and started again with a
//! growing pause; readiness turns NOT_SERVING while one stays down longer than
//! `workers.unhealthy_after_ms`, and back once it has run steadily again. At
//! shutdown the service waits for every worker within its drain deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::Shutdown;
use crate::config::WorkersConfig;
use crate::grpc::Readiness;

/// How long a restarted worker must keep running to count as recovered: long
/// enough that one failing every few seconds counts as down (and its pauses
/// keep growing).
const STEADY: Duration = Duration::from_secs(10);
/// The pause before the first restart, doubled before each further one.
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// Owns a service's background workers.
#[derive(Clone)]
pub struct Supervisor {
    tracker: TaskTracker,
    readiness: Readiness,
    shutdown: Shutdown,
    cfg: WorkersConfig,
}

impl Supervisor {
    pub fn new(readiness: Readiness, shutdown: Shutdown, cfg: WorkersConfig) -> Supervisor {
        Supervisor {
            tracker: TaskTracker::new(),
            readiness,
            shutdown,
            cfg,
        }
    }

    /// The shutdown signal workers are to stop on.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Runs `make()` as worker `name` until shutdown, starting it again whenever
    /// it ends or panics before then. `make` builds a fresh run each time.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let worker = Worker {
            name: name.into(),
            readiness: self.readiness.clone(),
            shutdown: self.shutdown.clone(),
            cfg: self.cfg.clone(),
        };
        self.tracker.spawn(worker.supervise(make));
    }

    /// Runs `work` once, owned like a worker (joined at shutdown) but not
    /// restarted: set-up that starts workers of its own.
    pub fn spawn_once(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(work);
    }

    /// Waits up to `within` for every worker to finish (call after shutdown is
    /// triggered); false when some did not.
    pub async fn join(&self, within: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok()
    }
}

struct Worker {
    name: String,
    readiness: Readiness,
    shutdown: Shutdown,
    cfg: WorkersConfig,
}

impl Worker {
    async fn supervise<F, Fut>(self, mut make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let condition = format!("worker:{}", self.name);
        let unhealthy_after = Duration::from_millis(self.cfg.unhealthy_after_ms);
        let restart_max = Duration::from_millis(self.cfg.restart_max_ms);
        // Since when the worker has been down (ended, or restarted but not yet
        // steady), and whether readiness has been told.
        let mut down_since: Option<Instant> = None;
        let mut reported_down = false;
        let mut failures: u32 = 0;
        loop {
            // Its own task, so a panic ends that run and not the supervisor.
            let mut run = tokio::spawn(make());
            let steady_at = Instant::now() + STEADY;
            let ended = loop {
                let unhealthy_at = down_since.map(|d| d + unhealthy_after);
                tokio::select! {
                    ended = &mut run => break ended,
                    _ = tokio::time::sleep_until(steady_at), if down_since.is_some() => {
                        tracing::info!(worker = %self.name, "worker recovered");
                        down_since = None;
                        failures = 0;
                        if reported_down {
                            reported_down = false;
                            self.readiness.set_condition(&condition, true).await;
                        }
                    }
                    _ = sleep_until_some(unhealthy_at), if !reported_down => {
                        reported_down = true;
                        self.report_down(&condition).await;
                    }
                }
            };
            if self.shutdown.is_triggered() {
                return;
            }
            match ended {
                Ok(()) => {
                    tracing::error!(worker = %self.name, "worker ended before shutdown; restarting")
                }
                Err(e) if e.is_panic() => {
                    let panic = e.into_panic();
                    tracing::error!(worker = %self.name, panic = panic_text(panic.as_ref()), "worker panicked; restarting");
                }
                Err(e) => {
                    tracing::error!(worker = %self.name, error = %e, "worker stopped; restarting")
                }
            }
            let now = Instant::now();
            let since = *down_since.get_or_insert(now);
            failures = failures.saturating_add(1);
            let pause = selfhelp_core::time::Backoff::new(FIRST_PAUSE, restart_max).after(failures);
            let restart_at = now + pause;
            loop {
                let unhealthy_at = since + unhealthy_after;
                tokio::select! {
                    _ = self.shutdown.wait() => return,
                    _ = tokio::time::sleep_until(restart_at) => break,
                    _ = tokio::time::sleep_until(unhealthy_at), if !reported_down => {
                        reported_down = true;
                        self.report_down(&condition).await;
                    }
                }
            }
        }
    }

    async fn report_down(&self, condition: &str) {
        tracing::error!(
            worker = %self.name,
            after_ms = self.cfg.unhealthy_after_ms,
            "worker down too long: readiness NOT_SERVING until it recovers"
        );
        self.readiness.set_condition(condition, false).await;
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The message a panic was raised with.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn supervisor(unhealthy_after_ms: u64) -> (crate::shutdown::ShutdownTrigger, Supervisor) {
        let readiness = crate::grpc::health("selfhelp.test.v1.Test").await.readiness;
        readiness.set(true).await;
        let (trigger, shutdown) = Shutdown::new();
        let cfg = WorkersConfig {
            unhealthy_after_ms,
            restart_max_ms: 10_000,
        };
        (trigger, Supervisor::new(readiness, shutdown, cfg))
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_panics_or_ends_is_restarted_and_readiness_follows_it() {
        let (trigger, sup) = supervisor(500).await;
        let readiness = sup.readiness.clone();
        let runs = Arc::new(AtomicUsize::new(0));
        sup.spawn("flaky", {
            let (runs, stop) = (runs.clone(), sup.shutdown().clone());
            move || {
                let (runs, stop) = (runs.clone(), stop.clone());
                async move {
                    match runs.fetch_add(1, Ordering::SeqCst) {
                        0 => {}                  // ends at once
                        1 | 2 => panic!("boom"), // then panics twice
                        _ => stop.wait().await,  // then runs until shutdown
                    }
                }
            }
        });
        // Down for 200 + 400 + 800 ms of pauses: past the 500 ms allowed.
        let mut seen_down = false;
        while runs.load(Ordering::SeqCst) < 4 {
            seen_down |= !readiness.is_serving();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            seen_down,
            "readiness went NOT_SERVING while the worker was down"
        );
        assert_eq!(readiness.failing(), vec!["worker:flaky".to_string()]);
        tokio::time::sleep(STEADY + Duration::from_millis(50)).await;
        assert!(readiness.is_serving(), "back once it ran steadily");
        trigger.trigger();
        assert!(sup.join(Duration::from_secs(1)).await, "joined at shutdown");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            4,
            "not restarted after shutdown"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_outage_does_not_touch_readiness() {
        let (trigger, sup) = supervisor(5_000).await;
        let readiness = sup.readiness.clone();
        let runs = Arc::new(AtomicUsize::new(0));
        sup.spawn("once", {
            let (runs, stop) = (runs.clone(), sup.shutdown().clone());
            move || {
                let (runs, stop) = (runs.clone(), stop.clone());
                async move {
                    if runs.fetch_add(1, Ordering::SeqCst) > 0 {
                        stop.wait().await
                    }
                }
            }
        });
        let mut seen_down = false;
        for _ in 0..300 {
            seen_down |= !readiness.is_serving();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(!seen_down);
        trigger.trigger();
        assert!(sup.join(Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn join_gives_up_on_a_worker_that_ignores_shutdown() {
        let (trigger, sup) = supervisor(5_000).await;
        sup.spawn("stubborn", std::future::pending::<()>);
        trigger.trigger();
        assert!(!sup.join(Duration::from_secs(2)).await);
    }
}
