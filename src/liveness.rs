//! What /healthz reports: whether the controllers still make progress, so the kubelet restarts
//! an operator that is stuck rather than one that is merely idle.
//!
//! Two signs of a wedged operator, each judged against `--liveness-stall-after`:
//! - a watch stream that has only failed for that long (the API server gone, RBAC or a CRD
//!   removed): every failed attempt of a watch yields an error, so a run of errors with no
//!   success in between is a stall. A watch that reconnects quietly yields nothing, so a run
//!   also ends when no error came for longer than the watch's longest retry interval (which
//!   is why tracked watches use [`Liveness::watch_backoff`]);
//! - reconciles in flight and none finishing for that long.
//!
//! A quiet cluster produces neither errors nor work, so it stays healthy.

use crate::sync::LockOrRecover;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use rand::Rng;
use tokio::time::Instant;

/// The default of `--liveness-stall-after`.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(300);

/// Shared handle on the operator's progress.
#[derive(Clone, Debug)]
pub struct Liveness(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    stall_after: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per watch: since when it has failed without a success, and its latest failure.
    watches: BTreeMap<String, Streak>,
    /// Reconciles in flight, and when one last started from idle or finished.
    in_flight: usize,
    last_progress: Option<Instant>,
    /// When a reconcile last started, and last finished.
    last_start: Option<Instant>,
    last_finish: Option<Instant>,
}

/// Reconciles in flight, and how long ago one last started and one last finished (None: none
/// has yet): how busy the operator is (see `reconcile::deferred_status`).
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    pub in_flight: usize,
    pub since_start: Option<Duration>,
    pub since_finish: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Streak {
    since: Instant,
    latest: Instant,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness::new(DEFAULT_STALL_AFTER)
    }
}

impl Liveness {
    pub fn new(stall_after: Duration) -> Liveness {
        Liveness(Arc::new(Inner {
            stall_after: stall_after.max(Duration::from_secs(1)),
            state: Mutex::new(State::default()),
        }))
    }

    pub fn stall_after(&self) -> Duration {
        self.0.stall_after
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock_or_recover()
    }

    /// The longest wait between two attempts of a tracked watch: a few attempts fit in the
    /// stall window, and no longer than kube's own default (30 s).
    pub fn watch_retry_max(&self) -> Duration {
        (self.0.stall_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// The retry policy of tracked watches (kube's default, with [`Self::watch_retry_max`]).
    pub fn watch_backoff(&self) -> ResetTimerBackoff<WatchRetry> {
        let max = self.watch_retry_max();
        let first = Duration::from_millis(800).min(max);
        ResetTimerBackoff::new(
            WatchRetry {
                first,
                next: first,
                max,
            },
            Duration::from_secs(120),
        )
    }

    /// No error for this long after the last one: the watch reconnected (quietly). Its
    /// retries come at most `watch_retry_max` plus under a second of jitter apart.
    fn quiet_after_error(&self) -> Duration {
        self.watch_retry_max() * 2 + Duration::from_secs(1)
    }

    /// Record one item of watch `name`: a success ends its run of failures.
    pub fn watch_item(&self, name: &str, ok: bool) {
        self.watch_item_at(name, ok, Instant::now());
    }

    fn watch_item_at(&self, name: &str, ok: bool, now: Instant) {
        let quiet = self.quiet_after_error();
        let mut state = self.state();
        if ok {
            state.watches.remove(name);
            return;
        }
        let streak = state.watches.entry(name.to_string()).or_insert(Streak {
            since: now,
            latest: now,
        });
        if now.duration_since(streak.latest) > quiet {
            streak.since = now;
        }
        streak.latest = now;
    }

    /// A reconcile started; progress is recorded when the guard drops.
    pub fn working(&self) -> Working {
        let now = Instant::now();
        let mut state = self.state();
        if state.in_flight == 0 {
            state.last_progress = Some(now);
        }
        state.in_flight += 1;
        state.last_start = Some(now);
        Working(self.clone())
    }

    /// How busy the reconciles are now.
    pub fn activity(&self) -> Activity {
        let now = Instant::now();
        let state = self.state();
        Activity {
            in_flight: state.in_flight,
            since_start: state.last_start.map(|at| now.duration_since(at)),
            since_finish: state.last_finish.map(|at| now.duration_since(at)),
        }
    }

    /// Ok, or what is stuck.
    pub fn check(&self) -> Result<(), String> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), String> {
        let stall = self.0.stall_after;
        let quiet = self.quiet_after_error();
        let state = self.state();
        let mut stuck = Vec::new();
        for (name, streak) in &state.watches {
            let failing_for = now.duration_since(streak.since);
            if now.duration_since(streak.latest) <= quiet && failing_for >= stall {
                stuck.push(format!(
                    "the {name} watch has failed for {}s without a success",
                    failing_for.as_secs()
                ));
            }
        }
        if state.in_flight > 0
            && let Some(last) = state.last_progress
            && now.duration_since(last) >= stall
        {
            stuck.push(format!(
                "{} reconciles in flight and none finished for {}s",
                state.in_flight,
                now.duration_since(last).as_secs()
            ));
        }
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "stalled beyond --liveness-stall-after ({}s): {}",
                stall.as_secs(),
                stuck.join("; ")
            ))
        }
    }
}

/// Doubling waits from `first` up to `max`, each with up to `first` of jitter (as kube's
/// default watch backoff, whose constructor is not public).
#[derive(Debug, Clone)]
pub struct WatchRetry {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Iterator for WatchRetry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = self.first.mul_f64(rand::rng().random_range(0.0..1.0));
        Some(wait + jitter)
    }
}

impl Backoff for WatchRetry {
    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// One reconcile in flight (see [`Liveness::working`]).
pub struct Working(Liveness);

impl Drop for Working {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.last_progress = Some(now);
        state.last_finish = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_failing_watch_stalls_and_a_quiet_one_does_not() {
        let live = Liveness::new(secs(8));
        assert_eq!(live.watch_retry_max(), secs(2));
        let t0 = Instant::now();
        assert!(live.check_at(t0).is_ok(), "nothing happened: healthy");
        assert!(
            live.check_at(t0 + secs(3600)).is_ok(),
            "a quiet hour: healthy"
        );

        for i in 0..5 {
            live.watch_item_at("Secret", false, t0 + secs(2 * i));
        }
        let err = live.check_at(t0 + secs(10)).expect_err("10 s of failures");
        assert!(err.contains("Secret watch"), "{err}");
        // It reconnected without an event: quiet past the retry interval ends the run.
        assert!(live.check_at(t0 + secs(16)).is_ok());
        // Failures again: a new run, judged from its own start.
        live.watch_item_at("Secret", false, t0 + secs(16));
        assert!(live.check_at(t0 + secs(17)).is_ok());
        live.watch_item_at("Secret", false, t0 + secs(20));
        live.watch_item_at("Secret", false, t0 + secs(24));
        assert!(live.check_at(t0 + secs(24)).is_err());
        live.watch_item_at("Secret", true, t0 + secs(25));
        assert!(
            live.check_at(t0 + secs(25)).is_ok(),
            "a success ends the run"
        );
    }

    #[test]
    fn reconciles_that_never_finish_stall() {
        let live = Liveness::new(secs(10));
        let t0 = Instant::now();
        let stuck = live.working();
        assert!(live.check_at(t0 + secs(9)).is_ok());
        let err = live.check_at(t0 + secs(11)).expect_err("nothing finished");
        assert!(err.contains("1 reconciles in flight"), "{err}");
        // Another one finishing is progress.
        drop(live.working());
        let t1 = Instant::now();
        assert!(live.check_at(t1 + secs(9)).is_ok());
        drop(stuck);
        assert!(live.check_at(t1 + secs(3600)).is_ok(), "idle is healthy");
    }
}
