//! What this process remembers of each managed object between its reconciles, in one place
//! keyed by the object's uid, behind one lock, and cleared in one call when the object goes.
//!
//! The status is the durable record; this memory only covers what it cannot: the reflector can
//! lag behind our own status write (so a quick second trigger must not apply the same state
//! twice, nor write back the outputs the stale copy holds), a request a vendor refused for good
//! must not be sent again unchanged, and transient failures in a row set the backoff.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::SyncStatus;
use crate::sync::LockOrRecover;
use crate::vendors::VendorError;

/// One object's last applied state, as this process knows it.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The fingerprint of the request the vendor confirmed.
    pub fingerprint: String,
    /// The sync-now annotation's value acted on.
    pub handled: Option<String>,
    /// What the vendor returned for it: the kind's `Managed::Outputs` (the uid fixes the kind),
    /// None when it returned nothing.
    outputs: Option<Arc<dyn Any + Send + Sync>>,
    /// When the vendor confirmed it: the status may show it later (see
    /// [`deferred_status`](super::deferred_status)).
    pub confirmed_at: Time,
}

impl Applied {
    /// What the vendor confirmed just now.
    pub fn new<O: Send + Sync + 'static>(
        fingerprint: String,
        handled: Option<String>,
        outputs: Option<O>,
    ) -> Applied {
        Applied {
            fingerprint,
            handled,
            outputs: outputs.map(|o| Arc::new(o) as Arc<dyn Any + Send + Sync>),
            confirmed_at: super::conditions::now(),
        }
    }

    /// The outputs remembered, as the kind's type `O`.
    pub fn outputs<O: Clone + 'static>(&self) -> Option<O> {
        self.outputs.as_ref()?.downcast_ref::<O>().cloned()
    }
}

/// A request a vendor refused for good.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// Which request on which client (fingerprint, client identity, sync request): the same
    /// attempt is refused again without a call.
    pub attempt: String,
    pub error: VendorError,
}

/// Everything remembered of one object.
#[derive(Default, Debug)]
struct Remembered {
    applied: Option<Applied>,
    refusal: Option<Refusal>,
    /// Transient failures in a row, for the backoff.
    failures: u32,
    /// A write's outcome was unknown and nothing was confirmed since: the fingerprint the
    /// status shows vouches for nothing either, even while the write that drops it is still
    /// owed (its object had moved on).
    doubted: bool,
}

impl Remembered {
    fn is_empty(&self) -> bool {
        self.applied.is_none() && self.refusal.is_none() && self.failures == 0 && !self.doubted
    }
}

/// Objects deleted lately, by uid. A reconcile that was under way when its object went may
/// still claim its record or remember what it applied after the deletion was handled; checked
/// at its end, it forgets the object once more. Kept for [`Departed::KEPT`], as a 64-bit hash
/// of the uid (16 bytes an object where the uid itself took about 90: a churn of thousands of
/// objects a minute keeps ten minutes of them). Two uids sharing a hash would at worst make a
/// live object's reconcile forget what it applied, which its status still records.
#[derive(Default)]
pub struct Departed {
    uids: Mutex<(HashMap<u64, Instant>, Option<Instant>)>,
    hasher: RandomState,
}

impl Departed {
    /// Longer than any reconcile runs (a vendor's timeout is capped well below).
    pub const KEPT: Duration = Duration::from_secs(600);

    fn lock(&self) -> MutexGuard<'_, (HashMap<u64, Instant>, Option<Instant>)> {
        // A panic while holding the lock left plain data behind, each field valid on its own.
        self.uids.lock_or_recover()
    }

    /// `uid` is gone. Entries older than [`Departed::KEPT`] are let go, at most once a minute.
    pub fn went(&self, uid: &str) {
        let now = Instant::now();
        let key = self.hasher.hash_one(uid);
        let mut guard = self.lock();
        let (uids, pruned) = &mut *guard;
        if pruned.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60)) {
            uids.retain(|_, at| now.duration_since(*at) < Self::KEPT);
            *pruned = Some(now);
        }
        uids.insert(key, now);
    }

    pub fn has_gone(&self, uid: &str) -> bool {
        let key = self.hasher.hash_one(uid);
        self.lock().0.contains_key(&key)
    }
}

/// The per-object memory of the process.
#[derive(Default)]
pub struct ObjectMemory {
    objects: Mutex<HashMap<String, Remembered>>,
}

impl ObjectMemory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Remembered>> {
        // A panic while holding the lock left plain data behind, each field valid on its own.
        self.objects.lock_or_recover()
    }

    /// Change what is remembered of `uid`; an object with nothing left is dropped.
    fn update<R>(&self, uid: &str, change: impl FnOnce(&mut Remembered) -> R) -> R {
        let mut objects = self.lock();
        let entry = objects.entry(uid.to_string()).or_default();
        let result = change(entry);
        if entry.is_empty() {
            objects.remove(uid);
        }
        result
    }

    /// What `uid` last applied, as this process knows it.
    pub fn applied(&self, uid: &str) -> Option<Applied> {
        self.lock().get(uid).and_then(|r| r.applied.clone())
    }

    /// The vendor confirmed `applied`: remember it, and forget any refusal (the request changed).
    pub fn remember_applied(&self, uid: &str, applied: Applied) {
        self.update(uid, |r| {
            r.applied = Some(applied);
            r.refusal = None;
            r.doubted = false;
        });
    }

    /// The cache shows these statuses (by uid): where one records what this process last
    /// applied (the same fingerprint and sync request, confirmed no later) and that was
    /// confirmed before `settled_before`, the status says it all and the memory of it goes. At
    /// 100,000 resources that is tens of MiB nobody needs. The time bound keeps the memory
    /// while a reconcile could still hold a copy of the object from before the status write.
    pub fn forget_recorded<'a>(
        &self,
        statuses: impl IntoIterator<Item = (&'a str, &'a SyncStatus)>,
        settled_before: &Time,
    ) {
        let mut objects = self.lock();
        for (uid, status) in statuses {
            let Some(remembered) = objects.get_mut(uid) else {
                continue;
            };
            let shown = remembered.applied.as_ref().is_some_and(|applied| {
                applied.confirmed_at.0 < settled_before.0
                    && status.applied_fingerprint.as_deref() == Some(applied.fingerprint.as_str())
                    && status.last_handled_reconcile_at == applied.handled
                    && status
                        .last_synced_time
                        .as_ref()
                        .is_some_and(|t| t.0 >= applied.confirmed_at.0)
            });
            if shown {
                remembered.applied = None;
                if remembered.is_empty() {
                    objects.remove(uid);
                }
            }
        }
    }

    /// A write's outcome is unknown: neither what this process last applied nor the status
    /// vouches for the vendor's state until the vendor confirms a state again.
    pub fn doubt_applied(&self, uid: &str) {
        self.update(uid, |r| {
            r.applied = None;
            r.doubted = true;
        });
    }

    /// Whether a write's outcome was unknown since the vendor last confirmed a state.
    pub fn doubted(&self, uid: &str) -> bool {
        self.lock().get(uid).is_some_and(|r| r.doubted)
    }

    /// The request the vendor last refused for good.
    pub fn refusal(&self, uid: &str) -> Option<Refusal> {
        self.lock().get(uid).and_then(|r| r.refusal.clone())
    }

    pub fn remember_refusal(&self, uid: &str, refusal: Refusal) {
        self.update(uid, |r| r.refusal = Some(refusal));
    }

    /// Count one more transient failure in a row; returns how many there are now.
    pub fn count_failure(&self, uid: &str) -> u32 {
        self.update(uid, |r| {
            r.failures = r.failures.saturating_add(1);
            r.failures
        })
    }

    /// A reconcile succeeded: the next failure starts the backoff over.
    pub fn clear_failures(&self, uid: &str) {
        self.update(uid, |r| r.failures = 0);
    }

    /// Transient failures in a row.
    pub fn failures(&self, uid: &str) -> u32 {
        self.lock().get(uid).map_or(0, |r| r.failures)
    }

    /// The object is gone: forget everything about it.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// How many objects something is remembered of.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_uid_and_forgets_everything_at_once() {
        let memory = ObjectMemory::default();
        memory.remember_refusal(
            "a",
            Refusal {
                attempt: "fp|client|None".into(),
                error: VendorError::permanent("VendorRejected", "no"),
            },
        );
        assert_eq!(memory.count_failure("a"), 1);
        assert_eq!(memory.count_failure("a"), 2);
        memory.remember_applied("a", Applied::new("fp".into(), None, Some(7_i64)));
        assert_eq!(
            memory.refusal("a"),
            None,
            "a confirmed write ends a refusal"
        );
        assert_eq!(
            memory.applied("a").and_then(|a| a.outputs::<i64>()),
            Some(7)
        );
        assert_eq!(
            memory.applied("a").and_then(|a| a.outputs::<String>()),
            None,
            "another kind's outputs type reads nothing"
        );
        assert_eq!(memory.failures("b"), 0);
        memory.forget("a");
        assert!(memory.applied("a").is_none());
        assert_eq!(memory.failures("a"), 0);
        assert!(memory.is_empty());
    }

    #[test]
    fn what_the_status_shows_is_not_remembered_twice() {
        let memory = ObjectMemory::default();
        let applied = Applied::new::<()>("fp".into(), Some("req".into()), None);
        let shown = SyncStatus {
            applied_fingerprint: Some("fp".into()),
            last_handled_reconcile_at: Some("req".into()),
            last_synced_time: Some(applied.confirmed_at.clone()),
            ..Default::default()
        };
        let rows = [
            (
                "an older fingerprint (a write still owed)",
                SyncStatus {
                    applied_fingerprint: Some("old".into()),
                    ..shown.clone()
                },
                true,
            ),
            (
                "another sync request",
                SyncStatus {
                    last_handled_reconcile_at: None,
                    ..shown.clone()
                },
                true,
            ),
            (
                "an earlier sync time (a confirmation still owed)",
                SyncStatus {
                    last_synced_time: Some(Time(
                        applied.confirmed_at.0 - k8s_openapi::jiff::SignedDuration::from_secs(1),
                    )),
                    ..shown.clone()
                },
                true,
            ),
            (
                "no sync time",
                SyncStatus {
                    last_synced_time: None,
                    ..shown.clone()
                },
                true,
            ),
            ("all of it", shown.clone(), false),
        ];
        let later = Time(applied.confirmed_at.0 + k8s_openapi::jiff::SignedDuration::from_secs(1));
        memory.count_failure("b");
        for (name, status, kept) in rows {
            memory.remember_applied("a", applied.clone());
            memory.forget_recorded([("a", &status), ("b", &status)], &later);
            assert_eq!(memory.applied("a").is_some(), kept, "{name}");
            assert_eq!(
                memory.failures("b"),
                1,
                "{name}: nothing applied, nothing dropped"
            );
        }
        assert_eq!(memory.len(), 1, "an object with nothing left is dropped");
        memory.remember_applied("a", applied.clone());
        memory.forget_recorded([("a", &shown)], &applied.confirmed_at);
        assert!(
            memory.applied("a").is_some(),
            "kept while a reconcile may hold a copy from before the status write"
        );
    }

    #[test]
    fn departed_objects_are_known_for_a_while() {
        let departed = Departed::default();
        assert!(!departed.has_gone("a"));
        departed.went("a");
        assert!(departed.has_gone("a") && !departed.has_gone("b"));
    }

    #[test]
    fn an_object_with_nothing_left_takes_no_room() {
        let memory = ObjectMemory::default();
        memory.count_failure("a");
        memory.clear_failures("a");
        memory.remember_applied("b", Applied::new::<()>("fp".into(), None, None));
        memory.doubt_applied("b");
        assert!(
            memory.doubted("b"),
            "a doubt is kept: the status may still vouch"
        );
        memory.remember_applied("b", Applied::new::<()>("fp2".into(), None, None));
        assert!(!memory.doubted("b"), "a confirmation ends the doubt");
        memory.forget("b");
        assert_eq!(memory.len(), 0);
    }
}
