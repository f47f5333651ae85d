//! `--io-batch-window`: under load, handle the network's events in batches. Before a runtime
//! thread waits for I/O it first sleeps the window, so the answers of many requests arrive in
//! one wake-up instead of one each (context switches, and on shared cores the API server
//! interrupted less). Only while busy: when the thread's last wait for I/O outlasted the
//! window, events are sparse, the sleep would batch nothing and cost a wake-up of its own, so
//! the thread waits for I/O at once. And only while no reconcile waits for a turn: the window
//! lengthens every running reconcile, so with a line it would slow the line down (at
//! N = 100,000 created at the API server's pace the line then grew to 24 s; without the window
//! it stays near one second: docs/benchmarks.md, sixth pass).

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// When this thread began its current wait for I/O.
    static WAITING_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// How long this thread's last wait for I/O lasted.
    static LAST_WAIT: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Sleep the window before waiting for I/O when the last wait was shorter than it (events
/// come often enough that the sleep gathers several) and no work waits for a turn: then every
/// reconcile slowed by the window keeps a turn from the next, and the line grows.
pub fn batches(last_wait: Option<Duration>, window: Duration, line: bool) -> bool {
    !window.is_zero() && !line && last_wait.is_some_and(|wait| wait < window)
}

/// Batch `builder`'s threads' I/O with `window` (nothing when it is zero) while `line()` says
/// no work waits for a turn.
pub fn install(builder: &mut tokio::runtime::Builder, window: Duration, line: fn() -> bool) {
    if window.is_zero() {
        return;
    }
    builder
        // Called only when no task can run: the thread would sleep in the kernel anyway.
        .on_thread_park(move || {
            if batches(LAST_WAIT.get(), window, line()) {
                std::thread::sleep(window);
            }
            WAITING_SINCE.set(Some(Instant::now()));
        })
        .on_thread_unpark(|| {
            LAST_WAIT.set(WAITING_SINCE.take().map(|since| since.elapsed()));
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_thread_whose_last_wait_was_shorter_than_the_window_batches_and_only_with_no_line() {
        let ms = Duration::from_millis;
        let cases = [
            (None, ms(2), false, false),
            (Some(ms(1)), ms(2), false, true),
            (Some(ms(0)), ms(2), false, true),
            (Some(ms(0)), ms(2), true, false),
            (Some(ms(2)), ms(2), false, false),
            (Some(ms(900)), ms(2), false, false),
            (Some(ms(0)), ms(0), false, false),
        ];
        for (last_wait, window, line, want) in cases {
            assert_eq!(
                batches(last_wait, window, line),
                want,
                "{last_wait:?} {window:?} line: {line}"
            );
        }
    }
}
