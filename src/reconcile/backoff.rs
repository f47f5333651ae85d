//! Per-object exponential backoff with jitter for transient failures: kube-runtime retries at
//! whatever delay the error policy gives, so the failure counts live here, cleared on success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

/// Failure counts per object.
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Count one more failure of `key` and say how long to wait: base·2^(n-1), capped, with
    /// ±25% jitter so a vendor outage does not bring every object back at once; never less
    /// than the vendor's `retry_after`, which is capped at the maximum too (a vendor's number is
    /// not trusted: a huge one must not overflow the scheduler or park the object for ever).
    pub fn next_delay(&self, key: &str, retry_after: Option<Duration>) -> Duration {
        let n = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let exp = self.base.saturating_mul(1u32 << (n - 1).min(20));
        let capped = exp.min(self.max);
        let jitter = rand::rng().random_range(0.75..=1.25);
        let delay = capped.mul_f64(jitter).min(self.max);
        match retry_after {
            Some(after) if after > delay => after.min(self.max),
            _ => delay,
        }
    }

    /// Forget `key`'s failures.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Failures counted for `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let d1 = b.next_delay("a", None);
        assert!(d1 >= Duration::from_millis(750) && d1 <= Duration::from_millis(1250));
        for _ in 0..10 {
            b.next_delay("a", None);
        }
        assert!(b.next_delay("a", None) <= Duration::from_secs(60));
        assert_eq!(b.failures("a"), 12);
        assert_eq!(
            b.next_delay("b", Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            b.next_delay("c", Some(Duration::from_secs(u64::MAX))),
            Duration::from_secs(60),
            "a vendor's huge wait is capped"
        );
        b.reset("a");
        assert_eq!(b.failures("a"), 0);
    }
}
