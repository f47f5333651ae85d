//! A fence: the moment up to which this replica may start (and finish) vendor calls. Leader
//! election moves it forward on every Lease renewal it sees; the vendor transport only reads
//! it, so it needs to know nothing about Leases. Without leader election it is open for good.
//!
//! Why: a leader cut off from the API server cannot renew its Lease and does not learn that a
//! standby took over. The fence lets it stop on its own clock, before the Lease could expire,
//! so no write of the old leader reaches a vendor after a new leader could have begun.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Where the fence stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    /// No limit: a single replica without leader election.
    Open,
    /// Calls may start, and must end, before this instant.
    Until(Instant),
}

/// A shared, cheap-to-clone handle on one fence.
#[derive(Clone, Debug)]
pub struct Fence(Arc<watch::Sender<Limit>>);

impl Default for Fence {
    fn default() -> Self {
        Fence::open()
    }
}

impl Fence {
    /// A fence that never closes (no leader election).
    pub fn open() -> Fence {
        Fence(Arc::new(watch::Sender::new(Limit::Open)))
    }

    /// A fence that is closed until someone extends it (a replica that does not lead yet).
    pub fn closed() -> Fence {
        Fence(Arc::new(watch::Sender::new(Limit::Until(Instant::now()))))
    }

    /// Let calls through until `until`. Never widens an open fence into a limited one and
    /// never moves backwards (use [`Fence::close`] for that).
    pub fn extend_until(&self, until: Instant) {
        self.0.send_if_modified(|limit| match *limit {
            Limit::Until(current) if current < until => {
                *limit = Limit::Until(until);
                true
            }
            _ => false,
        });
    }

    /// Refuse calls from now on (the Lease is lost or being released).
    pub fn close(&self) {
        let now = Instant::now();
        self.0.send_if_modified(|limit| match *limit {
            Limit::Until(current) if current <= now => false,
            _ => {
                *limit = Limit::Until(now);
                true
            }
        });
    }

    /// How long calls may still run, or None when the fence is open for good. Zero: closed.
    pub fn remaining(&self) -> Option<Duration> {
        match *self.0.borrow() {
            Limit::Open => None,
            Limit::Until(until) => Some(until.saturating_duration_since(Instant::now())),
        }
    }

    /// Whether a call may start now.
    pub fn is_open(&self) -> bool {
        self.remaining().is_none_or(|left| !left.is_zero())
    }

    /// Resolves once the fence is closed: at its deadline, unless it was extended meanwhile.
    /// Pending forever while the fence is open for good.
    pub async fn closed_now(&self) {
        let mut limit = self.0.subscribe();
        loop {
            let current = *limit.borrow_and_update();
            match current {
                Limit::Open => {
                    if limit.changed().await.is_err() {
                        // Nobody can move an open fence any more.
                        return std::future::pending().await;
                    }
                }
                Limit::Until(until) => {
                    if until <= Instant::now() {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        changed = limit.changed() => if changed.is_err() {
                            tokio::time::sleep_until(until).await;
                        },
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn extends_forward_and_closes() {
        let fence = Fence::closed();
        assert!(!fence.is_open());
        fence.extend_until(Instant::now() + ms(300));
        assert!(fence.is_open());
        // A renewal seen out of order does not pull it back.
        fence.extend_until(Instant::now() + ms(1));
        assert!(fence.remaining().is_some_and(|left| left > ms(200)));

        let watcher = fence.clone();
        let started = Instant::now();
        let closed = tokio::spawn(async move {
            watcher.closed_now().await;
            Instant::now()
        });
        tokio::time::sleep(ms(200)).await;
        fence.extend_until(Instant::now() + ms(300));
        let at = closed.await.expect("joined");
        assert!(at - started >= ms(500), "followed the extension");
        assert!(!fence.is_open());

        fence.extend_until(Instant::now() + ms(10_000));
        fence.close();
        assert!(!fence.is_open());
    }

    #[tokio::test]
    async fn open_never_closes_by_itself() {
        let fence = Fence::open();
        assert!(fence.is_open());
        assert_eq!(fence.remaining(), None);
        fence.extend_until(Instant::now());
        assert!(fence.is_open());
        let wait = tokio::time::timeout(ms(200), fence.closed_now()).await;
        assert!(wait.is_err(), "an open fence never closes by itself");
        fence.close();
        assert!(!fence.is_open());
    }
}
