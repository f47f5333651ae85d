//! Push first, record after. During a burst of changes (a thousand Secrets rotated at once) a
//! status write costs the API server as much as the Secret read that the next vendor call waits
//! for. A status write that only moves the bookkeeping (`lastSyncedTime`, `appliedFingerprint`:
//! conditions, generation and outputs unchanged) is therefore owed, not sent, while other
//! reconciles are running, and paid once the operator has been quiet for [`QUIET`], or after
//! [`MAX_DELAY`] whatever the load. Busy and quiet are read from the count of reconciles in
//! flight that [`Liveness`] keeps for /healthz: one record of them, not two.
//!
//! Paying a debt is a reconcile of the object (through the kind's queue), never a patch from
//! here: kube runs one reconcile per object at a time, so an owed write can never land after a
//! newer one, and it is written from what the process knows then. Nothing is sent twice
//! meanwhile: the applied state is in [`ObjectMemory`](super::memory::ObjectMemory). A debt
//! lost with the process (a crash, a leader handing over) leaves the status at the previous
//! fingerprint, so the next leader sends the value once more (writes are idempotent).
//!
//! A write that found its object changed since the reconcile read it (409) is owed the same
//! way ([`DeferredStatus::owe_afresh`]): the next reconcile reads the newer object.
//!
//! A process asked to stop (SIGTERM: a rollout, a drain) first pays what it owes
//! ([`DeferredStatus::pay_all`]) while it may still write, so the next process does not send
//! those values once more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fence::Fence;
use crate::liveness::{Activity, Liveness};
use crate::sync::LockOrRecover;

/// How long no reconcile may have run before owed status writes are paid.
pub const QUIET: Duration = Duration::from_millis(200);
/// The longest a status write is owed, however busy the operator is.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// How often the debts are looked at.
const TICK: Duration = Duration::from_millis(50);

/// Status fields that record when and what was last applied; the rest says what users act on.
const BOOKKEEPING: [&str; 2] = ["lastSyncedTime", "appliedFingerprint"];

/// `new` differs from `old` in bookkeeping only: deferring it hides nothing a user or a tool
/// waits for (Ready, its reason, observedGeneration, the vendor's ids). A fingerprint dropped
/// is not bookkeeping: it withdraws a claim about the vendor, and that is written at once.
pub fn bookkeeping_only<S: Serialize>(old: Option<&S>, new: &S) -> bool {
    let as_fields = |status: &S| match serde_json::to_value(status) {
        Ok(Value::Object(fields)) => Some(fields),
        _ => None,
    };
    let Some(mut old) = old.and_then(as_fields) else {
        return false;
    };
    let Some(mut new) = as_fields(new) else {
        return false;
    };
    if old.contains_key("appliedFingerprint") && !new.contains_key("appliedFingerprint") {
        return false;
    }
    for field in BOOKKEEPING {
        old.remove(field);
        new.remove(field);
    }
    old == new
}

/// Other reconciles are running, or one finished a moment ago: a burst is under way.
fn busy(in_flight: usize, since_last_finish: Duration) -> bool {
    // The reconcile asking is one of those in flight.
    in_flight > 1 || since_last_finish < QUIET
}

/// No reconcile runs, and none started or finished for [`QUIET`].
fn quiet(activity: &Activity) -> bool {
    let long_ago = |since: Option<Duration>| since.is_none_or(|d| d >= QUIET);
    activity.in_flight == 0 && long_ago(activity.since_start) && long_ago(activity.since_finish)
}

/// An owed write is paid once the operator is quiet, or once it has waited long enough.
fn due(owed_for: Duration, quiet: bool) -> bool {
    quiet || owed_for >= MAX_DELAY
}

/// One object's owed status write.
#[derive(Debug, Clone)]
struct Owed {
    kind: String,
    namespace: String,
    name: String,
    since: Instant,
    /// Handed to the kind's queue: the next reconcile of the object writes.
    due: bool,
}

/// The owed status writes of the process; how busy its reconciles are is [`Liveness`]'s record.
pub struct DeferredStatus {
    reconciles: Liveness,
    /// By object uid.
    owed: Mutex<HashMap<String, Owed>>,
    /// Per kind, where an object to reconcile is sent as (namespace, name).
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<(String, String)>>>,
    /// The process is stopping: every debt is due, and no write waits any more.
    stopping: AtomicBool,
}

impl Default for DeferredStatus {
    fn default() -> Self {
        DeferredStatus::new(Liveness::default())
    }
}

impl DeferredStatus {
    /// Judging busy and quiet from the reconciles `reconciles` sees (the managed kinds').
    pub fn new(reconciles: Liveness) -> Self {
        DeferredStatus {
            reconciles,
            owed: Mutex::default(),
            queues: Mutex::default(),
            stopping: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Owed>> {
        // A panic while holding the lock left plain data behind, each entry valid on its own.
        self.owed.lock_or_recover()
    }

    /// Where `kind`'s objects go when their owed write is due.
    pub fn on_due(&self, kind: &str, queue: mpsc::UnboundedSender<(String, String)>) {
        self.queues
            .lock_or_recover()
            .insert(kind.to_string(), queue);
    }

    /// Whether `uid`'s bookkeeping-only write may wait: not when its debt is being paid.
    pub fn may_defer(&self, uid: &str) -> bool {
        let paying = self.lock().get(uid).is_some_and(|o| o.due);
        let activity = self.reconciles.activity();
        !paying
            && !self.stopping.load(Ordering::Relaxed)
            && busy(
                activity.in_flight,
                activity.since_finish.unwrap_or(Duration::MAX),
            )
    }

    /// `uid`'s status write is owed (since its first deferral, if it already was).
    pub fn owe(&self, uid: &str, kind: &str, namespace: &str, name: &str) {
        self.lock().entry(uid.to_string()).or_insert_with(|| Owed {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            since: Instant::now(),
            due: false,
        });
    }

    /// `uid`'s status write is owed anew, even if the debt was being paid: the write that paid
    /// it found the object changed since it was read.
    pub fn owe_afresh(&self, uid: &str, kind: &str, namespace: &str, name: &str) {
        self.settle(uid);
        self.owe(uid, kind, namespace, name);
    }

    /// `uid`'s status is written (or needs no write, or the object is gone): nothing is owed.
    pub fn settle(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// How many status writes are owed.
    pub fn owed(&self) -> usize {
        self.lock().len()
    }

    /// The debts to pay now, marked as being paid: all of them once the operator is quiet (or
    /// stopping), else those owed for [`MAX_DELAY`].
    fn take_due(&self) -> Vec<Owed> {
        let quiet = self.stopping.load(Ordering::Relaxed) || quiet(&self.reconciles.activity());
        self.lock()
            .values_mut()
            .filter(|o| !o.due && due(o.since.elapsed(), quiet))
            .map(|o| {
                o.due = true;
                o.clone()
            })
            .collect()
    }

    /// The process is stopping: every debt is due now and no write is deferred any more. Wait
    /// until all are paid, `limit` has passed, or `fence` has closed (this replica may no longer
    /// write: another leads). Returns how many are still owed. The reconciles that pay them
    /// must still run meanwhile ([`DeferredStatus::pay_when_due`] included).
    pub async fn pay_all(&self, limit: Duration, fence: &Fence) -> usize {
        self.stopping.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + limit;
        loop {
            let left = self.owed();
            if left == 0 || Instant::now() >= deadline || !fence.is_open() {
                return left;
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Hand due debts to their kinds' queues until `shutdown`.
    pub async fn pay_when_due(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            let due = self.take_due();
            if due.is_empty() {
                continue;
            }
            let queues = self.queues.lock_or_recover().clone();
            for owed in due {
                match queues.get(&owed.kind) {
                    Some(queue) => {
                        let _ = queue.send((owed.namespace, owed.name));
                    }
                    // No queue for the kind (tests without a controller): nothing to pay with.
                    None => tracing::debug!(kind = %owed.kind, "no queue for an owed status write"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Synced"}],
            "observedGeneration": 1,
            "lastSyncedTime": "2026-01-01T00:00:00Z",
            "appliedFingerprint": "a",
            "credentialSetId": "x",
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut s = base();
        s[field] = value;
        s
    }

    #[test]
    fn only_bookkeeping_changes_may_wait() {
        let rows: &[(&str, Option<Value>, Value, bool)] = &[
            (
                "a new fingerprint and time",
                Some(base()),
                with("appliedFingerprint", json!("b")),
                true,
            ),
            (
                "a new time alone",
                Some(base()),
                with("lastSyncedTime", json!("2026-01-01T00:00:01Z")),
                true,
            ),
            ("the first status", None, base(), false),
            (
                "Ready changes",
                Some(base()),
                with(
                    "conditions",
                    json!([{"type": "Ready", "status": "False", "reason": "VendorError"}]),
                ),
                false,
            ),
            (
                "a new generation observed",
                Some(base()),
                with("observedGeneration", json!(2)),
                false,
            ),
            (
                "a vendor output changes",
                Some(base()),
                with("credentialSetId", json!("y")),
                false,
            ),
            (
                "the fingerprint dropped (unknown outcome)",
                Some(base()),
                {
                    let mut s = base();
                    s.as_object_mut().map(|m| m.remove("appliedFingerprint"));
                    s
                },
                false,
            ),
        ];
        for (name, old, new, expected) in rows {
            assert_eq!(bookkeeping_only(old.as_ref(), new), *expected, "{name}");
        }
    }

    #[test]
    fn busy_while_others_run_or_just_ran() {
        let rows = [
            ("alone, quiet for long", 1, Duration::from_secs(1), false),
            ("another running", 2, Duration::from_secs(1), true),
            ("one finished just now", 1, Duration::from_millis(5), true),
        ];
        for (name, in_flight, since, expected) in rows {
            assert_eq!(busy(in_flight, since), expected, "{name}");
        }
    }

    #[test]
    fn quiet_when_nothing_ran_for_a_while() {
        let activity = |in_flight, start: Option<u64>, finish: Option<u64>| Activity {
            in_flight,
            since_start: start.map(Duration::from_millis),
            since_finish: finish.map(Duration::from_millis),
        };
        let rows = [
            ("nothing ever ran", activity(0, None, None), true),
            (
                "the last finished long ago",
                activity(0, Some(900), Some(800)),
                true,
            ),
            ("one running", activity(1, Some(900), Some(800)), false),
            (
                "one finished just now",
                activity(0, Some(900), Some(10)),
                false,
            ),
        ];
        for (name, activity, expected) in rows {
            assert_eq!(quiet(&activity), expected, "{name}");
        }
    }

    #[test]
    fn debts_are_paid_when_quiet_or_too_old() {
        let rows = [
            ("quiet", Duration::ZERO, true, true),
            ("busy, fresh", Duration::from_millis(10), false, false),
            ("busy, owed for the longest delay", MAX_DELAY, false, true),
        ];
        for (name, owed_for, quiet, expected) in rows {
            assert_eq!(due(owed_for, quiet), expected, "{name}");
        }
    }

    #[tokio::test]
    async fn owed_writes_reach_the_kinds_queue_once_quiet_and_are_paid_once() {
        let reconciles = Liveness::default();
        let deferred = Arc::new(DeferredStatus::new(reconciles.clone()));
        let (queue, mut requests) = mpsc::unbounded_channel();
        deferred.on_due("SsoAppCredential", queue);
        {
            let _a = reconciles.working();
            let _b = reconciles.working();
            assert!(deferred.may_defer("u1"), "two running: busy");
            deferred.owe("u1", "SsoAppCredential", "ns", "one");
            deferred.owe("u1", "SsoAppCredential", "ns", "one");
            assert_eq!(deferred.owed(), 1, "one debt per object");
            assert!(deferred.take_due().is_empty(), "not while busy");
        }
        tokio::time::sleep(QUIET + Duration::from_millis(20)).await;
        let stop = CancellationToken::new();
        let payer = tokio::spawn(Arc::clone(&deferred).pay_when_due(stop.clone()));
        let sent = tokio::time::timeout(Duration::from_secs(2), requests.recv()).await;
        assert_eq!(sent.ok().flatten(), Some(("ns".into(), "one".into())));
        {
            let _paying = reconciles.working();
            assert!(
                !deferred.may_defer("u1"),
                "the reconcile paying the debt writes, however busy"
            );
        }
        deferred.settle("u1");
        assert_eq!(deferred.owed(), 0);
        tokio::time::sleep(TICK * 3).await;
        assert!(requests.try_recv().is_err(), "paid once");
        stop.cancel();
        let _ = payer.await;
    }

    #[test]
    fn a_debt_owed_afresh_while_being_paid_is_due_again() {
        let deferred = DeferredStatus::default();
        deferred.owe("u1", "SsoAppCredential", "ns", "one");
        assert_eq!(deferred.take_due().len(), 1, "quiet: due at once");
        assert!(deferred.take_due().is_empty(), "handed over once");
        // The paying write found the object changed since it was read.
        deferred.owe("u1", "SsoAppCredential", "ns", "one");
        assert!(deferred.take_due().is_empty(), "owing again is not enough");
        deferred.owe_afresh("u1", "SsoAppCredential", "ns", "one");
        assert_eq!(deferred.owed(), 1);
        assert_eq!(deferred.take_due().len(), 1, "owed afresh: due again");
    }

    /// Stopping while busy: every debt is due at once and nothing more is deferred; the wait
    /// ends when all are paid, at the limit, or when the fence closes (another leads).
    #[tokio::test]
    async fn a_stopping_process_pays_everything_it_owes_first() {
        let reconciles = Liveness::default();
        let deferred = Arc::new(DeferredStatus::new(reconciles.clone()));
        let _a = reconciles.working();
        let _b = reconciles.working();
        deferred.owe("u1", "SsoAppCredential", "ns", "one");
        deferred.owe("u2", "SsoAppCredential", "ns", "two");
        assert!(deferred.take_due().is_empty(), "busy: not yet");

        let fence = Fence::open();
        let paying = {
            let deferred = Arc::clone(&deferred);
            let fence = fence.clone();
            tokio::spawn(async move { deferred.pay_all(Duration::from_secs(5), &fence).await })
        };
        tokio::time::sleep(TICK).await;
        assert_eq!(
            deferred.take_due().len(),
            2,
            "stopping: all due, however busy"
        );
        assert!(!deferred.may_defer("u3"), "stopping: nothing more waits");
        deferred.settle("u1");
        deferred.settle("u2");
        let left = tokio::time::timeout(Duration::from_secs(2), paying).await;
        assert_eq!(
            left.ok().and_then(Result::ok),
            Some(0),
            "returns once all are paid"
        );

        // Unpaid debts: the wait ends at the limit, or at once when the fence is closed.
        deferred.owe("u4", "SsoAppCredential", "ns", "four");
        let started = Instant::now();
        assert_eq!(deferred.pay_all(TICK * 2, &fence).await, 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        let closed = Fence::closed();
        assert_eq!(deferred.pay_all(Duration::from_secs(60), &closed).await, 1);
    }
}
