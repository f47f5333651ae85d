//! Decide, then act: what the reconciler does next for an object is a pure function of what it
//! knows ([`Facts`] for a sync, [`CleanupFacts`] for a deletion) to one [`Step`]. The caller
//! (`reconcile/mod.rs`) gathers the facts, does the step (binds, patches, calls the vendor),
//! adds what it learnt to the facts and decides again until a step ends the reconcile. So every
//! branch is tested here, table by table, without a cluster or a vendor; each requeue says why.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::conditions;
use super::fingerprint;
use super::memory::{Applied, Refusal};
use crate::api::{DeletionPolicy, SyncStatus};
use crate::vendors::VendorError;

/// What binding the object to its connection and desired state told.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredState {
    /// The keyed fingerprint of the full request (connection and kind, secret values included).
    pub fingerprint: String,
    /// Which connection client would send it (an in-process digest of its spec and values).
    pub client_identity: String,
    /// Whether the vendor can read the record back (drift checks).
    pub readable: bool,
    /// Whether the vendor can delete the record.
    pub supports_delete: bool,
}

/// Whether the desired state is known yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Desired<'a> {
    /// Not bound yet: the connection and Secrets are read only when a decision needs them.
    Unbound,
    /// Binding failed while paused: the object is not known to be in sync. (Unpaused, a failed
    /// binding is the reconcile's error and nothing more is decided.)
    Unavailable,
    Bound(&'a DesiredState),
}

/// What reading the vendor's record back showed (outputs aside: they only go to the status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    UpToDate,
    Missing,
    Drifted,
    /// The vendor could not read it back after all.
    Unknown,
}

/// Everything a sync decision rests on.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    pub generation: Option<i64>,
    /// The status as the object holds it.
    pub status: &'a SyncStatus,
    /// `credsync.io/paused` is `"true"`.
    pub paused: bool,
    /// The value of `credsync.io/reconcile-requested-at`.
    pub requested: Option<&'a str>,
    pub deletion_policy: DeletionPolicy,
    /// The object holds `credsync.io/cleanup`.
    pub has_finalizer: bool,
    pub desired: Desired<'a>,
    /// What this process last applied for the object (newer than a lagging status).
    pub applied: Option<&'a Applied>,
    /// The request the vendor last refused for good.
    pub refusal: Option<&'a Refusal>,
    /// What observing the record showed, once it was observed in this reconcile.
    pub observed: Option<Observed>,
    pub now: Timestamp,
    pub drift_interval: Duration,
}

/// Why a sync that sends something sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The desired state differs from the one applied last.
    Changed,
    /// A new value of `credsync.io/reconcile-requested-at` asks for one sync.
    Requested,
    /// The vendor's record is missing or differs from the spec.
    Drifted,
}

/// Why the object comes back when it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The finalizer was just added; its own watch event brings the object back.
    FinalizerAdded,
    /// Paused: nothing happens until the annotation is removed.
    Paused,
    /// A write-only vendor is sent again only on a change or a sync request.
    WriteOnly,
    /// The vendor could not read the record back this time; a change brings it back.
    Unreadable,
    /// A readable vendor's record is checked for drift every drift interval.
    DriftCheck,
}

/// When the object is reconciled again (besides any change of it), and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requeue {
    /// None: only a change brings it back.
    pub after: Option<Duration>,
    pub why: Why,
}

impl Requeue {
    pub const fn on_change(why: Why) -> Requeue {
        Requeue { after: None, why }
    }

    pub const fn after(after: Duration, why: Why) -> Requeue {
        Requeue {
            after: Some(after),
            why,
        }
    }

    pub fn action(&self) -> kube::runtime::controller::Action {
        match self.after {
            Some(after) => kube::runtime::controller::Action::requeue(after),
            None => kube::runtime::controller::Action::await_change(),
        }
    }
}

/// The next step of a sync.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Read the connection, the Secrets and the desired state (then decide again).
    Bind,
    /// Paused: write `Paused`, call nobody. `in_sync`: the vendor still holds what the spec
    /// and Secrets say (Ready stays True).
    Pause { in_sync: bool },
    /// deletionPolicy Delete on a vendor that cannot delete: stalled, nothing sent.
    DeletionUnsupported,
    /// Add the finalizer before the first vendor write, and stop.
    AddFinalizer { then: Requeue },
    /// The policy turned to Orphan: drop the finalizer (then decide again).
    RemoveFinalizer,
    /// The same request on the same client was refused for good: say so again, call nobody.
    Refused(VendorError),
    /// Send the desired state. A permanent refusal is remembered under `refusal_attempt`, when
    /// set (a drift correction re-sends a state the vendor took before).
    Apply {
        cause: Cause,
        refusal_attempt: Option<String>,
        then: Requeue,
    },
    /// Read the record back (then decide again).
    Observe,
    /// The vendor read back the desired state: it is confirmed now.
    Confirmed { then: Requeue },
    /// In sync; the next drift check is not due yet.
    Wait { then: Requeue },
    /// In sync as far as can be known; nothing to send or check.
    Nothing { then: Requeue },
}

/// Decide the next step of a sync.
pub fn decide(facts: &Facts) -> Step {
    if facts.paused {
        return decide_paused(facts);
    }
    let desired = match facts.desired {
        Desired::Bound(desired) => desired,
        // (Unavailable is never decided on unpaused: the binding's error ends the reconcile.)
        Desired::Unbound | Desired::Unavailable => return Step::Bind,
    };
    let wants_finalizer = facts.deletion_policy == DeletionPolicy::Delete;
    if wants_finalizer && !desired.supports_delete {
        return Step::DeletionUnsupported;
    }
    if wants_finalizer && !facts.has_finalizer {
        return Step::AddFinalizer {
            then: Requeue::on_change(Why::FinalizerAdded),
        };
    }
    if !wants_finalizer && facts.has_finalizer {
        return Step::RemoveFinalizer;
    }
    let then = if desired.readable {
        Requeue::after(facts.drift_interval, Why::DriftCheck)
    } else {
        Requeue::on_change(Why::WriteOnly)
    };
    let (last_fingerprint, last_handled) = last_applied(facts.applied, facts.status);
    // Each value of the annotation asks for one sync: a new value does, its removal (or the
    // same value again, also after a restart) does not.
    let requested = facts
        .requested
        .is_some_and(|r| last_handled.as_deref() != Some(r));
    if last_fingerprint != desired.fingerprint || requested {
        let attempt = format!(
            "{}|{}|{:?}",
            desired.fingerprint, desired.client_identity, facts.requested
        );
        if let Some(refusal) = facts.refusal.filter(|r| r.attempt == attempt) {
            return Step::Refused(refusal.error.clone());
        }
        let cause = if last_fingerprint != desired.fingerprint {
            Cause::Changed
        } else {
            Cause::Requested
        };
        return Step::Apply {
            cause,
            refusal_attempt: Some(attempt),
            then,
        };
    }
    if !desired.readable {
        return Step::Nothing { then };
    }
    match facts.observed {
        None => match drift_due(
            facts.status.last_synced_time.as_ref(),
            facts.drift_interval,
            facts.now,
        ) {
            Some(wait) => Step::Wait {
                then: Requeue::after(wait, Why::DriftCheck),
            },
            None => Step::Observe,
        },
        Some(Observed::UpToDate) => Step::Confirmed { then },
        Some(Observed::Missing | Observed::Drifted) => Step::Apply {
            cause: Cause::Drifted,
            refusal_attempt: None,
            then,
        },
        Some(Observed::Unknown) => Step::Nothing {
            then: Requeue::on_change(Why::Unreadable),
        },
    }
}

/// Paused: Ready only while what the vendor got is still what the spec and its Secrets say,
/// which needs the desired state only when the object is Ready for its generation.
fn decide_paused(facts: &Facts) -> Step {
    let ready_now = conditions::find(&facts.status.conditions, conditions::READY)
        .is_some_and(|c| c.status == "True" && c.observed_generation == facts.generation);
    if !ready_now {
        return Step::Pause { in_sync: false };
    }
    match facts.desired {
        Desired::Unbound => Step::Bind,
        Desired::Unavailable => Step::Pause { in_sync: false },
        Desired::Bound(desired) => Step::Pause {
            in_sync: last_applied(facts.applied, facts.status).0 == desired.fingerprint,
        },
    }
}

/// What was last applied (fingerprint, handled sync request): this process's memory, else the
/// status.
pub fn last_applied(applied: Option<&Applied>, status: &SyncStatus) -> (String, Option<String>) {
    applied
        .map(|a| (a.fingerprint.clone(), a.handled.clone()))
        .unwrap_or_else(|| {
            (
                status
                    .applied_fingerprint
                    .as_deref()
                    .map(fingerprint::as_current)
                    .unwrap_or_default(),
                status.last_handled_reconcile_at.clone(),
            )
        })
}

/// The sync request a sync leaves handled: the annotation's value now, else the one handled
/// last.
pub fn handled(facts: &Facts) -> Option<String> {
    facts
        .requested
        .map(str::to_string)
        .or_else(|| last_applied(facts.applied, facts.status).1)
}

/// How long until the next drift check, or None when it is due now (or never happened).
pub fn drift_due(last: Option<&Time>, interval: Duration, now: Timestamp) -> Option<Duration> {
    let last = last?;
    let elapsed = Duration::try_from(now.duration_since(last.0)).unwrap_or(Duration::ZERO);
    interval.checked_sub(elapsed).filter(|d| !d.is_zero())
}

/// Everything a deletion decision rests on (the object holds the finalizer).
#[derive(Clone, Debug)]
pub struct CleanupFacts {
    pub deletion_policy: DeletionPolicy,
    pub paused: bool,
    /// The object is bound to its connection and admitted by its tenancy policy; None while not
    /// bound yet.
    pub bound: Option<bool>,
    /// The object holds the claim on its vendor record.
    pub holds_claim: bool,
}

/// The next step of a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanupStep {
    /// Let the object go (the finalizer helper drops the finalizer) without a vendor call.
    Release,
    /// Deletion waits while paused.
    BlockedPaused,
    /// Bind the object to its connection (Secrets as stand-ins: a delete sends only the
    /// record's identity) and check its tenancy (then decide again).
    Bind,
    /// The binding or the tenancy check failed: its error blocks the deletion.
    BlockedUnbound,
    /// Delete the vendor record, then let the object go.
    Delete,
}

/// Decide the next step of a deletion.
pub fn decide_cleanup(facts: &CleanupFacts) -> CleanupStep {
    if facts.deletion_policy == DeletionPolicy::Orphan {
        return CleanupStep::Release;
    }
    if facts.paused {
        return CleanupStep::BlockedPaused;
    }
    match facts.bound {
        None => CleanupStep::Bind,
        Some(false) => CleanupStep::BlockedUnbound,
        // The record belongs to another resource: deleting it would take it from its owner.
        Some(true) if !facts.holds_claim => CleanupStep::Release,
        Some(true) => CleanupStep::Delete,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> Timestamp {
        "2026-11-28T12:00:00Z".parse().expect("time")
    }

    fn ago(seconds: i64) -> Time {
        Time(now() - k8s_openapi::jiff::SignedDuration::from_secs(seconds))
    }

    fn ready(generation: i64) -> Condition {
        Condition {
            type_: conditions::READY.into(),
            status: "True".into(),
            observed_generation: Some(generation),
            reason: "Synced".into(),
            message: String::new(),
            last_transition_time: Time(now()),
        }
    }

    /// One MAC (bytes 0, 1, ... 31) as an earlier release wrote it, and as written today.
    const LEGACY: &str =
        "hmac-sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const CURRENT: &str = "hmac-sha256-128:AAECAwQFBgcICQoLDA0ODw";

    fn synced(fingerprint: &str, last_synced: Option<Time>) -> SyncStatus {
        SyncStatus {
            applied_fingerprint: Some(fingerprint.into()),
            last_synced_time: last_synced,
            conditions: vec![ready(2)],
            observed_generation: Some(2),
            ..SyncStatus::default()
        }
    }

    fn desired(fingerprint: &str, readable: bool, supports_delete: bool) -> DesiredState {
        DesiredState {
            fingerprint: fingerprint.into(),
            client_identity: "client".into(),
            readable,
            supports_delete,
        }
    }

    fn refusal(attempt: &str) -> Refusal {
        Refusal {
            attempt: attempt.into(),
            error: VendorError::permanent("VendorRejected", "no"),
        }
    }

    /// One row: how the facts differ from an unpaused, Orphan, write-only object whose status
    /// shows fingerprint `a` applied, and the step expected.
    struct Row {
        name: &'static str,
        status: SyncStatus,
        paused: bool,
        requested: Option<&'static str>,
        policy: DeletionPolicy,
        has_finalizer: bool,
        desired: Option<DesiredState>,
        unavailable: bool,
        applied: Option<Applied>,
        refusal: Option<Refusal>,
        observed: Option<Observed>,
        want: Step,
    }

    impl Default for Row {
        fn default() -> Row {
            Row {
                name: "",
                status: synced("a", Some(ago(60))),
                paused: false,
                requested: None,
                policy: DeletionPolicy::Orphan,
                has_finalizer: false,
                desired: Some(desired("a", false, true)),
                unavailable: false,
                applied: None,
                refusal: None,
                observed: None,
                want: Step::Bind,
            }
        }
    }

    #[test]
    fn sync_decisions() {
        let write_only = Requeue::on_change(Why::WriteOnly);
        let drift_check = Requeue::after(HOUR, Why::DriftCheck);
        let rows = vec![
            Row {
                name: "not bound yet: bind first",
                desired: None,
                want: Step::Bind,
                ..Row::default()
            },
            Row {
                name: "paused, never Ready: Paused, not in sync, nothing read",
                paused: true,
                status: SyncStatus::default(),
                desired: None,
                want: Step::Pause { in_sync: false },
                ..Row::default()
            },
            Row {
                name: "paused, Ready for an older generation: not in sync",
                paused: true,
                status: SyncStatus {
                    conditions: vec![ready(1)],
                    ..synced("a", None)
                },
                want: Step::Pause { in_sync: false },
                ..Row::default()
            },
            Row {
                name: "paused, Ready: bind to compare the fingerprint",
                paused: true,
                desired: None,
                want: Step::Bind,
                ..Row::default()
            },
            Row {
                name: "paused, binding failed: not in sync",
                paused: true,
                desired: None,
                unavailable: true,
                want: Step::Pause { in_sync: false },
                ..Row::default()
            },
            Row {
                name: "paused, same fingerprint: in sync",
                paused: true,
                want: Step::Pause { in_sync: true },
                ..Row::default()
            },
            Row {
                name: "paused, changed fingerprint: not in sync, nothing sent",
                paused: true,
                desired: Some(desired("b", false, true)),
                want: Step::Pause { in_sync: false },
                ..Row::default()
            },
            Row {
                name: "paused: this process's memory is newer than the status",
                paused: true,
                desired: Some(desired("b", false, true)),
                applied: Some(Applied::new::<()>("b".into(), None, None)),
                want: Step::Pause { in_sync: true },
                ..Row::default()
            },
            Row {
                name: "Delete on a vendor without delete: refused before the finalizer",
                policy: DeletionPolicy::Delete,
                desired: Some(desired("a", false, false)),
                want: Step::DeletionUnsupported,
                ..Row::default()
            },
            Row {
                name: "Delete without the finalizer: add it, its event brings the object back",
                policy: DeletionPolicy::Delete,
                desired: Some(desired("b", false, true)),
                want: Step::AddFinalizer {
                    then: Requeue::on_change(Why::FinalizerAdded),
                },
                ..Row::default()
            },
            Row {
                name: "Orphan holding the finalizer: drop it first",
                has_finalizer: true,
                want: Step::RemoveFinalizer,
                ..Row::default()
            },
            Row {
                name: "changed, write-only: apply, then wait for a change",
                desired: Some(desired("b", false, true)),
                want: Step::Apply {
                    cause: Cause::Changed,
                    refusal_attempt: Some("b|client|None".into()),
                    then: write_only,
                },
                ..Row::default()
            },
            Row {
                name: "changed, readable, Delete with its finalizer: apply, then a drift check",
                policy: DeletionPolicy::Delete,
                has_finalizer: true,
                desired: Some(desired("b", true, true)),
                want: Step::Apply {
                    cause: Cause::Changed,
                    refusal_attempt: Some("b|client|None".into()),
                    then: drift_check,
                },
                ..Row::default()
            },
            Row {
                name: "never applied: apply",
                status: SyncStatus::default(),
                want: Step::Apply {
                    cause: Cause::Changed,
                    refusal_attempt: Some("a|client|None".into()),
                    then: write_only,
                },
                ..Row::default()
            },
            Row {
                name: "written by an earlier release (the whole MAC in hex), same MAC: nothing",
                status: synced(LEGACY, Some(ago(60))),
                desired: Some(desired(CURRENT, false, true)),
                want: Step::Nothing { then: write_only },
                ..Row::default()
            },
            Row {
                name: "written by an earlier release, another MAC: apply",
                status: synced(LEGACY, Some(ago(60))),
                desired: Some(desired(
                    "hmac-sha256-128:AAECAwQFBgcICQoLDA0OAA",
                    false,
                    true,
                )),
                want: Step::Apply {
                    cause: Cause::Changed,
                    refusal_attempt: Some(
                        "hmac-sha256-128:AAECAwQFBgcICQoLDA0OAA|client|None".into(),
                    ),
                    then: write_only,
                },
                ..Row::default()
            },
            Row {
                name: "a new sync request: apply the same state once",
                requested: Some("t1"),
                want: Step::Apply {
                    cause: Cause::Requested,
                    refusal_attempt: Some("a|client|Some(\"t1\")".into()),
                    then: write_only,
                },
                ..Row::default()
            },
            Row {
                name: "a sync request already handled: nothing",
                requested: Some("t1"),
                status: SyncStatus {
                    last_handled_reconcile_at: Some("t1".into()),
                    ..synced("a", None)
                },
                want: Step::Nothing { then: write_only },
                ..Row::default()
            },
            Row {
                name: "applied by this process, status not yet seen: nothing again",
                status: synced("old", None),
                applied: Some(Applied::new::<()>("a".into(), None, None)),
                want: Step::Nothing { then: write_only },
                ..Row::default()
            },
            Row {
                name: "this process's write failed with its outcome unknown: status says nothing applied",
                status: SyncStatus {
                    applied_fingerprint: None,
                    ..synced("a", None)
                },
                want: Step::Apply {
                    cause: Cause::Changed,
                    refusal_attempt: Some("a|client|None".into()),
                    then: write_only,
                },
                ..Row::default()
            },
            Row {
                name: "the same request on the same client was refused: say so, send nothing",
                desired: Some(desired("b", false, true)),
                refusal: Some(refusal("b|client|None")),
                want: Step::Refused(VendorError::permanent("VendorRejected", "no")),
                ..Row::default()
            },
            Row {
                name: "a refusal of another request: apply",
                desired: Some(desired("b", false, true)),
                refusal: Some(refusal("b|other client|None")),
                want: Step::Apply {
                    cause: Cause::Changed,
                    refusal_attempt: Some("b|client|None".into()),
                    then: write_only,
                },
                ..Row::default()
            },
            Row {
                name: "unchanged, write-only: nothing, wait for a change",
                want: Step::Nothing { then: write_only },
                ..Row::default()
            },
            Row {
                name: "unchanged, readable, checked a minute ago: wait for the drift check",
                desired: Some(desired("a", true, true)),
                want: Step::Wait {
                    then: Requeue::after(HOUR - Duration::from_secs(60), Why::DriftCheck),
                },
                ..Row::default()
            },
            Row {
                name: "unchanged, readable, drift check due: observe",
                status: synced("a", Some(ago(3600))),
                desired: Some(desired("a", true, true)),
                want: Step::Observe,
                ..Row::default()
            },
            Row {
                name: "unchanged, readable, never confirmed: observe",
                status: synced("a", None),
                desired: Some(desired("a", true, true)),
                want: Step::Observe,
                ..Row::default()
            },
            Row {
                name: "observed up to date: confirmed, next drift check",
                status: synced("a", None),
                desired: Some(desired("a", true, true)),
                observed: Some(Observed::UpToDate),
                want: Step::Confirmed { then: drift_check },
                ..Row::default()
            },
            Row {
                name: "observed missing: re-create, refusals not remembered",
                status: synced("a", None),
                desired: Some(desired("a", true, true)),
                observed: Some(Observed::Missing),
                want: Step::Apply {
                    cause: Cause::Drifted,
                    refusal_attempt: None,
                    then: drift_check,
                },
                ..Row::default()
            },
            Row {
                name: "observed drifted: correct it",
                status: synced("a", None),
                desired: Some(desired("a", true, true)),
                observed: Some(Observed::Drifted),
                want: Step::Apply {
                    cause: Cause::Drifted,
                    refusal_attempt: None,
                    then: drift_check,
                },
                ..Row::default()
            },
            Row {
                name: "observed nothing after all: nothing, wait for a change",
                status: synced("a", None),
                desired: Some(desired("a", true, true)),
                observed: Some(Observed::Unknown),
                want: Step::Nothing {
                    then: Requeue::on_change(Why::Unreadable),
                },
                ..Row::default()
            },
        ];
        for row in &rows {
            let facts = Facts {
                generation: Some(2),
                status: &row.status,
                paused: row.paused,
                requested: row.requested,
                deletion_policy: row.policy,
                has_finalizer: row.has_finalizer,
                desired: match (&row.desired, row.unavailable) {
                    (_, true) => Desired::Unavailable,
                    (Some(d), false) => Desired::Bound(d),
                    (None, false) => Desired::Unbound,
                },
                applied: row.applied.as_ref(),
                refusal: row.refusal.as_ref(),
                observed: row.observed,
                now: now(),
                drift_interval: HOUR,
            };
            assert_eq!(decide(&facts), row.want, "{}", row.name);
        }
    }

    #[test]
    fn cleanup_decisions() {
        let base = CleanupFacts {
            deletion_policy: DeletionPolicy::Delete,
            paused: false,
            bound: None,
            holds_claim: true,
        };
        let rows = [
            (
                "Orphan: let go, call nobody",
                CleanupFacts {
                    deletion_policy: DeletionPolicy::Orphan,
                    paused: true,
                    ..base.clone()
                },
                CleanupStep::Release,
            ),
            (
                "Delete, paused: blocked",
                CleanupFacts {
                    paused: true,
                    ..base.clone()
                },
                CleanupStep::BlockedPaused,
            ),
            ("Delete: bind first", base.clone(), CleanupStep::Bind),
            (
                "Delete, binding or tenancy failed: blocked",
                CleanupFacts {
                    bound: Some(false),
                    ..base.clone()
                },
                CleanupStep::BlockedUnbound,
            ),
            (
                "Delete, the record is another resource's: let go without deleting it",
                CleanupFacts {
                    bound: Some(true),
                    holds_claim: false,
                    ..base.clone()
                },
                CleanupStep::Release,
            ),
            (
                "Delete, bound, holding the record: delete it",
                CleanupFacts {
                    bound: Some(true),
                    ..base.clone()
                },
                CleanupStep::Delete,
            ),
        ];
        for (name, facts, want) in rows {
            assert_eq!(decide_cleanup(&facts), want, "{name}");
        }
    }

    #[test]
    fn the_handled_sync_request_is_the_current_else_the_last() {
        let status = SyncStatus {
            last_handled_reconcile_at: Some("t0".into()),
            ..SyncStatus::default()
        };
        let mut facts = Facts {
            generation: Some(1),
            status: &status,
            paused: false,
            requested: None,
            deletion_policy: DeletionPolicy::Orphan,
            has_finalizer: false,
            desired: Desired::Unbound,
            applied: None,
            refusal: None,
            observed: None,
            now: now(),
            drift_interval: HOUR,
        };
        assert_eq!(handled(&facts).as_deref(), Some("t0"));
        facts.requested = Some("t1");
        assert_eq!(handled(&facts).as_deref(), Some("t1"));
    }
}
