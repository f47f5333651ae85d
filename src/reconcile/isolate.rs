//! One reconcile's panic must not end the process that serves every team: kube-runtime polls
//! all reconciles inside one controller stream, so an unwinding reconcile would take the whole
//! operator down and crash-loop it on the same object. Each reconcile runs through
//! [`isolated`], which turns a panic into an error of that object alone.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::metrics;

/// Run `work`; a panic inside it becomes `None` (and is counted under `component`).
/// The panic's text is not returned: it may hold anything, and it goes to the log only
/// through the process's panic hook (see [`install_panic_hook`]).
pub async fn isolated<T>(component: &str, work: impl Future<Output = T>) -> Option<T> {
    // Shared state touched by a reconcile sits behind poison-tolerant locks that each hold a
    // single consistent update, so resuming after an unwind leaves nothing half-written.
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(out) => Some(out),
        Err(_) => {
            metrics::panicked(component);
            None
        }
    }
}

/// Log panics as one structured line with where they happened. The message is logged only
/// when it is a literal of our own code: a formatted one could carry data from outside.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info.payload().downcast_ref::<&'static str>().copied();
        tracing::error!(
            %location,
            message = message.unwrap_or("(formatted message withheld)"),
            "internal error: a panic was caught; the object's reconcile failed with reason InternalError"
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_that_work_failing_not_the_process() {
        assert_eq!(isolated("isolate-test", async { 7 }).await, Some(7));
        let panicking = async {
            let wait = std::time::Duration::MAX;
            // The class of crash a vendor's huge Retry-After once caused.
            let _ = std::time::Instant::now() + wait;
        };
        assert_eq!(isolated("isolate-test", panicking).await, None);
        let after = metrics::encode();
        assert!(
            after.contains("credsync_panics_total{component=\"isolate-test\"} 1"),
            "{after}"
        );
    }
}
