//! A connection's `requestsPerSecond` as evenly spaced send slots that each request reserves
//! in turn. A request that must wait sleeps once, until its own slot. Checking a limiter and
//! sleeping to check again (governor) lets one request of those arriving together through per
//! wake-up and sends the rest back to sleep: with `--io-batch-window`, far fewer than N a
//! second; without it, needless wake-ups whenever requests contend.

use std::time::Duration;

use tokio::time::Instant;

use crate::sync::LockOrRecover;

/// Send slots `period` apart; the next one free is `next`.
pub struct RateSlots {
    period: Duration,
    next: std::sync::Mutex<Option<Instant>>,
}

impl RateSlots {
    /// Slots for `requests_per_second` (at least 1), with 10% headroom: "N per second" must
    /// hold over any one-second window the vendor measures on arrival, even when requests sent
    /// in order are delayed unevenly on the way (2% let a busy host's jitter put N + 1 in a
    /// window), or leave a little late together after a wait.
    pub fn new(requests_per_second: u32) -> RateSlots {
        RateSlots {
            period: Duration::from_secs_f64(1.1 / f64::from(requests_per_second.max(1))),
            next: std::sync::Mutex::new(None),
        }
    }

    /// Reserve the next free slot at or after `now`; returns when it is.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut next = self.next.lock_or_recover();
        let slot = next.map_or(now, |free| free.max(now));
        *next = Some(slot + self.period);
        slot
    }

    /// Wait for a slot of this request's own. A request dropped while it waits leaves its
    /// slot unused: the vendor sees fewer requests, never more.
    pub async fn wait(&self) {
        let slot = self.reserve(Instant::now());
        // A slot already here is taken at once: even a timer set for now fires only on the
        // runtime's next turn of its timer wheel.
        if slot > Instant::now() {
            tokio::time::sleep_until(slot).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most slots reserved in any window of one second.
    fn busiest_second(slots: &[Instant]) -> usize {
        slots
            .iter()
            .map(|&start| {
                slots
                    .iter()
                    .filter(|&&s| s >= start && s < start + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn slots_never_exceed_the_rate_in_any_second_whatever_the_arrivals() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // (requests per second, arrival times in ms, most in one second)
        let cases: [(u32, Vec<u64>, usize); 4] = [
            (5, vec![0; 40], 5),
            (10, (0..40).map(|i| i * 50).collect(), 10),
            (1, vec![0, 0, 1_000, 2_000, 2_100], 1),
            (1_000, vec![3; 3_000], 1_000),
        ];
        for (rps, arrivals, most) in cases {
            let rate = RateSlots::new(rps);
            let slots: Vec<Instant> = arrivals.iter().map(|&a| rate.reserve(ms(a))).collect();
            assert!(busiest_second(&slots) <= most, "{rps}/s");
            for (slot, &arrival) in slots.iter().zip(&arrivals) {
                assert!(*slot >= ms(arrival), "{rps}/s: a slot before its request");
            }
        }
    }

    #[test]
    fn requests_arriving_together_get_consecutive_slots_and_an_idle_rate_starts_afresh() {
        let rate = RateSlots::new(10);
        let t0 = Instant::now();
        let period = Duration::from_millis(110);
        let together: Vec<Instant> = (0..3).map(|_| rate.reserve(t0)).collect();
        assert_eq!(together, vec![t0, t0 + period, t0 + 2 * period]);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(rate.reserve(later), later, "no debt after idling");
        assert_eq!(rate.reserve(later), later + period);
    }

    #[tokio::test]
    async fn a_free_slot_is_taken_without_waiting_for_the_timer() {
        use futures::FutureExt;
        let rate = RateSlots::new(100);
        assert_eq!(
            rate.wait().now_or_never(),
            Some(()),
            "the first slot is now"
        );
        assert_eq!(rate.wait().now_or_never(), None, "the next is 11 ms later");
    }

    #[tokio::test]
    async fn a_waiting_request_sleeps_until_its_own_slot() {
        let rate = RateSlots::new(100);
        let start = Instant::now();
        for _ in 0..3 {
            rate.wait().await;
        }
        // A sleep never ends early: the third slot is two periods (11 ms each) after the first.
        assert!(start.elapsed() >= Duration::from_millis(22));
    }
}
