//! One way to take a lock. The operator's shared state behind a `std::sync::Mutex` is plain data
//! (maps, sets, counters) that no half-done update can leave invalid, so a panic in one task
//! while holding a lock must not turn every later lock into a panic in every other task: the
//! guard is recovered from the poison instead.

use std::sync::{Mutex, MutexGuard};

/// `lock_or_recover()` on a `std::sync::Mutex`: its guard, poisoned or not.
pub trait LockOrRecover<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T>;
}

impl<T> LockOrRecover<T> for Mutex<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::LockOrRecover;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_lock_poisoned_by_a_panic_still_hands_out_its_data() {
        let shared = Arc::new(Mutex::new(vec![1]));
        let held = shared.clone();
        let panicked = std::thread::spawn(move || {
            let mut guard = held.lock_or_recover();
            guard.push(2);
            panic!("a task panics while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(shared.is_poisoned());
        assert_eq!(*shared.lock_or_recover(), vec![1, 2]);
    }
}
