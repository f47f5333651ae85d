//! Exponential backoff with jitter for transient failures: kube-runtime retries at whatever
//! delay the error policy gives, so the delay is computed here from the object's failures in a
//! row, which the object's memory counts (see [`super::memory`]) and clears on success.

use std::time::Duration;

use rand::Rng;

/// The backoff policy: from `base` doubling up to `max`.
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// How long to wait after the `failures`-th failure in a row (1 for the first):
    /// base·2^(n-1), capped, with ±25% jitter so a vendor outage does not bring every object
    /// back at once; never less than the vendor's `retry_after`, which is capped at the maximum
    /// too (a vendor's number is not trusted: a huge one must not overflow the scheduler or park
    /// the object for ever).
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let capped = exp.min(self.max);
        let jitter = rand::rng().random_range(0.75..=1.25);
        let delay = capped.mul_f64(jitter).min(self.max);
        match retry_after {
            Some(after) if after > delay => after.min(self.max),
            _ => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let d1 = b.delay(1, None);
        assert!(d1 >= Duration::from_millis(750) && d1 <= Duration::from_millis(1250));
        let d3 = b.delay(3, None);
        assert!(d3 >= Duration::from_secs(3) && d3 <= Duration::from_secs(5));
        assert!(b.delay(12, None) <= Duration::from_secs(60));
        assert!(b.delay(u32::MAX, None) <= Duration::from_secs(60));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(u64::MAX))),
            Duration::from_secs(60),
            "a vendor's huge wait is capped"
        );
    }
}
