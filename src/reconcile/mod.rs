//! The one generic reconciler every managed kind runs on. It owns finalizers, conditions,
//! events, fingerprints, drift checks and backoff; kinds and vendors only say how a spec maps
//! to an [`ExternalClient`](crate::vendors::ExternalClient) (see [`Managed`](crate::managed::Managed)).
//!
//! A vendor is called only when the desired state changed (the keyed fingerprint of the
//! request, secret values included, differs from `status.appliedFingerprint`), when a person
//! asks (`credsync.io/reconcile-requested-at`), or when a readable vendor's drift check is due.
//!
//! Decide, then act: [`decide`] says what the next step is from what is known (pure, table
//! tested); this file gathers the facts, does each step and writes the outcome. [`reconcile`]
//! only wires: kube's finalizer helper takes objects that hold the finalizer (apply, or clean
//! up and let go).

pub mod backoff;
pub mod claims;
pub mod conditions;
pub mod connection;
pub mod decide;
pub mod deferred_status;
pub mod events;
pub mod fingerprint;
pub mod in_use;
pub mod isolate;
pub mod memory;
pub mod status_write;

#[cfg(test)]
pub(crate) mod api_calls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, Event as FinalizerEvent, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use self::backoff::Backoff;
use self::conditions::Health;
use self::decide::{
    Cause, CleanupFacts, CleanupStep, Desired, DesiredState, Facts, Observed, Requeue, Step, Why,
};
use self::deferred_status::DeferredStatus;
use self::events::EventPublisher;
use self::fingerprint::FingerprintKey;
use self::memory::{Applied, ObjectMemory, Refusal};
use self::status_write::Written;
use crate::api::{FINALIZER, PAUSED_ANNOTATION, RECONCILE_REQUESTED_ANNOTATION, SyncStatus};
use crate::connections::{ClientCache, ConnectionClient, ConnectionStores, ResolvedConnection};
use crate::error::ReconcileError;
use crate::managed::Managed;
use crate::metrics;
use crate::secrets::{ResolvedSecrets, SecretReader};
use crate::vendors::http::TransportPolicy;
use crate::vendors::{ExternalClient, Observation, VendorError};

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub events: EventPublisher,
    pub secrets: SecretReader,
    pub fingerprint_key: FingerprintKey,
    pub connections: ConnectionStores,
    pub clients: ClientCache,
    pub transport: TransportPolicy,
    /// How often readable vendors are checked for drift.
    pub drift_interval: Duration,
    pub backoff: Backoff,
    /// What this process remembers of each object between reconciles (see [`memory`]).
    pub memory: ObjectMemory,
    /// Which resource owns which vendor record.
    pub claims: claims::ClaimTable,
    /// Bookkeeping status writes owed until a burst is over.
    pub deferred_status: Arc<DeferredStatus>,
    /// Objects deleted lately (see [`memory::Departed`]).
    pub departed: memory::Departed,
}

impl Context {
    /// `obj` is gone, whatever its deletion policy: drop everything this process remembers of
    /// it (its backoff included) and hand its record to the next claimant.
    pub fn forget_object<K: Managed>(&self, obj: &K) {
        let uid = obj.uid().unwrap_or_default();
        self.memory.forget(&uid);
        self.claims.release(&uid);
        self.deferred_status.settle(&uid);
        self.departed.went(&uid);
    }
}

/// Reconcile one managed resource.
pub async fn reconcile<K: Managed>(
    obj: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let kind = K::kind(&());
    let _in_flight = metrics::reconcile_started(&kind);
    let work = async {
        // No vendor call before the record claims are rebuilt after a start.
        ctx.claims.ready().await;
        with_finalizer(Arc::clone(&obj), &ctx).await
    };
    let result = match isolate::isolated(&kind, work).await {
        Some(result) => result,
        None => Err(internal_error(&*obj, &ctx).await),
    };
    // Deleted while this reconcile ran: what it claimed or remembered since goes too.
    if ctx.departed.has_gone(&obj.uid().unwrap_or_default()) {
        ctx.forget_object(&*obj);
    }
    let outcome = match &result {
        Ok(_) => {
            ctx.memory.clear_failures(&obj.uid().unwrap_or_default());
            "success"
        }
        Err(e) => e.reason(),
    };
    metrics::reconcile_finished(&kind, outcome, started.elapsed());
    result
}

/// Objects that hold the finalizer (or are being deleted) go through kube's finalizer helper:
/// [`apply`] while they live, [`cleanup`] then letting go when deleted. The others are applied
/// directly: only a Delete-policy resource holds the finalizer, added when its sync decides so
/// (after binding, admission and its claim), where the helper would add it to every object.
async fn with_finalizer<K: Managed>(obj: Arc<K>, ctx: &Context) -> Result<Action, ReconcileError> {
    let held = has_finalizer(&*obj);
    let deleting = obj.meta().deletion_timestamp.is_some();
    if !held && !deleting {
        return apply(&*obj, ctx).await;
    }
    let result = finalizer(
        &api(&*obj, ctx),
        FINALIZER,
        Arc::clone(&obj),
        |event| async move {
            match event {
                FinalizerEvent::Apply(obj) => apply(&*obj, ctx).await,
                FinalizerEvent::Cleanup(obj) => cleanup(&*obj, ctx).await,
            }
        },
    )
    .await;
    let let_go = held && deleting;
    match result {
        Ok(action) => {
            if let_go {
                ctx.forget_object(&*obj);
            }
            Ok(action)
        }
        // Gone already: nothing left to hold.
        Err(finalizer::Error::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => {
            ctx.forget_object(&*obj);
            Ok(Action::await_change())
        }
        Err(e) => Err(from_finalizer_error(e)),
    }
}

fn from_finalizer_error(err: finalizer::Error<ReconcileError>) -> ReconcileError {
    match err {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => e.into(),
        // An object read from the API server always has a name.
        e @ (finalizer::Error::UnnamedObject | finalizer::Error::InvalidFinalizer) => {
            kube::Error::Service(e.to_string().into()).into()
        }
    }
}

/// Add our finalizer through kube's helper: the object holds none and is not being deleted, so
/// the helper only adds it (with a test that the finalizers did not change meanwhile) and
/// calls nothing; the finalizer's watch event brings the object back to apply.
async fn add_finalizer<K: Managed>(obj: &K, ctx: &Context) -> Result<(), ReconcileError> {
    finalizer(
        &api(obj, ctx),
        FINALIZER,
        Arc::new(obj.clone()),
        |_| async { Ok::<_, ReconcileError>(Action::await_change()) },
    )
    .await
    .map(|_| ())
    .map_err(from_finalizer_error)
}

/// Drop our finalizer while the object lives (its policy turned to Orphan). A merge patch
/// carrying the resourceVersion fails rather than overwrite a finalizer someone else added
/// meanwhile.
async fn remove_finalizer<K: Managed>(obj: &K, ctx: &Context) -> Result<(), ReconcileError> {
    let finalizers: Vec<&String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
    match api(obj, ctx)
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone already: nothing left to hold.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn has_finalizer<K: Resource>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == FINALIZER)
}

fn api<K: Managed>(obj: &K, ctx: &Context) -> Api<K> {
    Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default())
}

/// A reconcile of `obj` panicked (a bug): say so on the object, retry with backoff.
async fn internal_error<K: Managed>(obj: &K, ctx: &Context) -> ReconcileError {
    let err = ReconcileError::Internal;
    let mut sync = sync_status(obj);
    let health = Health::Progressing {
        reason: err.reason(),
        message: format!("{err} (retrying with backoff)"),
    };
    conditions::apply(
        &mut sync.conditions,
        &health,
        obj.meta().generation,
        &conditions::now(),
    );
    // Best effort: the error itself is what the controller acts on.
    if let Err(e) = write_status(obj, ctx, obj.status_with(sync, None)).await {
        tracing::warn!(
            reason = e.reason(),
            "could not record an internal error in status"
        );
    }
    err
}

/// Where a failed reconcile goes next: transient failures back off per object (honouring the
/// vendor's Retry-After), anything else waits for a change.
pub fn error_policy<K: Managed>(obj: Arc<K>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    if err.is_transient() {
        let failures = ctx.memory.count_failure(&obj.uid().unwrap_or_default());
        let delay = ctx.backoff.delay(failures, err.retry_after());
        tracing::info!(kind = %K::kind(&()), name = %obj.name_any(), namespace = obj.namespace().unwrap_or_default(), reason = err.reason(), retry_in = ?delay, "transient failure, retrying");
        Action::requeue(delay)
    } else {
        Action::await_change()
    }
}

/// The shared part of `obj`'s status as it stands.
fn sync_status<K: Managed>(obj: &K) -> SyncStatus {
    obj.status()
        .map(K::sync_status)
        .cloned()
        .unwrap_or_default()
}

/// What a sync that reached the vendor's state (or found nothing to do) leaves behind.
struct Synced<O> {
    fingerprint: String,
    /// The last value of the sync-now annotation acted on.
    handled: Option<String>,
    /// The newest vendor answer this process knows of, None when none is newer than the status.
    outputs: Option<O>,
    /// When the vendor last confirmed the desired state (write or read-back) in this process,
    /// if it did.
    confirmed_at: Option<Time>,
    /// An event to publish.
    event: Option<(&'static str, String)>,
    requeue: Requeue,
    connection: String,
}

/// Sync a living object: decide, do the step, decide again, until a step ends the sync.
async fn apply<K: Managed>(obj: &K, ctx: &Context) -> Result<Action, ReconcileError> {
    let uid = obj.uid().unwrap_or_default();
    let namespace = obj.namespace().unwrap_or_default();
    let mut old = sync_status(obj);
    if ctx.memory.doubted(&uid) {
        // A write's outcome was unknown since: the status's fingerprint no longer vouches for
        // the vendor, even if the write that drops it found the object moved on (409).
        old.applied_fingerprint = None;
    }
    let paused = annotation(obj, PAUSED_ANNOTATION) == Some("true");
    let requested = annotation(obj, RECONCILE_REQUESTED_ANNOTATION);
    // Read once per sync: what this process last applied, and last had refused.
    let applied = ctx.memory.applied(&uid);
    let refusal = ctx.memory.refusal(&uid);
    let mut holds_finalizer = has_finalizer(obj);
    let mut bound: Option<Bound<K::Outputs>> = None;
    let mut desired: Option<DesiredState> = None;
    let mut unavailable = false;
    let mut observed: Option<(Observed, Option<K::Outputs>)> = None;
    loop {
        let facts = Facts {
            generation: obj.meta().generation,
            status: &old,
            paused,
            requested,
            deletion_policy: obj.deletion_policy(),
            has_finalizer: holds_finalizer,
            desired: match (&desired, unavailable) {
                (Some(desired), _) => Desired::Bound(desired),
                (None, true) => Desired::Unavailable,
                (None, false) => Desired::Unbound,
            },
            applied: applied.as_ref(),
            refusal: refusal.as_ref(),
            observed: observed.as_ref().map(|(o, _)| *o),
            // Read at each decision: binding may have taken a while.
            now: Timestamp::now(),
            drift_interval: ctx.drift_interval,
        };
        let step = decide::decide(&facts);
        let handled = decide::handled(&facts);
        // What is sent and what the status shows once the step is done.
        let settled = |outputs, confirmed_at, event, requeue| {
            let (conn, ..) = bound.as_ref()?;
            Some(Synced {
                fingerprint: desired.as_ref()?.fingerprint.clone(),
                handled: handled.clone(),
                outputs,
                confirmed_at,
                event,
                requeue,
                connection: conn.key.as_named_by_its_resources(),
            })
        };
        let done = match step {
            Step::Bind => {
                match bind(obj, ctx, &namespace, OwnSecrets::Read).await {
                    Ok(b) => {
                        if !paused && let Err(e) = admitted_and_claimed(obj, ctx, &b) {
                            return finish_sync(obj, ctx, &old, Err(e)).await;
                        }
                        desired = Some(desired_state(ctx, &b));
                        bound = Some(b);
                    }
                    // Paused: the object is just not known to be in sync.
                    Err(_) if paused => unavailable = true,
                    Err(e) => {
                        if let ReconcileError::Connection { .. } = &e {
                            // It reaches no endpoint now, so it holds no record there.
                            ctx.claims.release(&uid);
                        }
                        return finish_sync(obj, ctx, &old, Err(e)).await;
                    }
                }
                continue;
            }
            Step::Pause { in_sync } => return write_paused(obj, ctx, &old, in_sync).await,
            Step::DeletionUnsupported => {
                let vendor = bound
                    .as_ref()
                    .and_then(|(conn, ..)| conn.vendor())
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                Err(ReconcileError::invalid(
                    "DeletionPolicyUnsupported",
                    format!(
                        "deletionPolicy Delete is not possible: {vendor} has no delete operation; set deletionPolicy: Orphan"
                    ),
                ))
            }
            Step::AddFinalizer { then } => {
                // Apply once the finalizer is in place; nothing decided yet, so the status
                // stays as it is.
                add_finalizer(obj, ctx).await?;
                return Ok(then.action());
            }
            Step::RemoveFinalizer => {
                remove_finalizer(obj, ctx).await?;
                holds_finalizer = false;
                continue;
            }
            Step::Refused(err) => Err(ReconcileError::Vendor(err)),
            Step::Observe => {
                let Some((_, secrets, external, client)) = bound.as_ref() else {
                    return Err(ReconcileError::Internal);
                };
                match external.observe().await {
                    Ok(observation) => observed = Some(observation_facts(observation)),
                    Err(e) => {
                        let err = ReconcileError::Vendor(vendor_failure(client, secrets, e));
                        return finish_sync(obj, ctx, &old, Err(err)).await;
                    }
                }
                continue;
            }
            Step::Apply {
                cause,
                refusal_attempt,
                then,
            } => {
                let (Some((conn, secrets, external, client)), Some(desired)) =
                    (bound.as_ref(), desired.as_ref())
                else {
                    return Err(ReconcileError::Internal);
                };
                match external.apply().await {
                    Ok(outputs) => {
                        // The vendor confirmed this state now, with these outputs (a
                        // re-created record has a new id).
                        let remembered = Applied::new(
                            desired.fingerprint.clone(),
                            handled.clone(),
                            Some(outputs.clone()),
                        );
                        let confirmed_at = remembered.confirmed_at.clone();
                        ctx.memory.remember_applied(&uid, remembered);
                        let event = match cause {
                            Cause::Changed | Cause::Requested => (
                                "Synced",
                                format!("applied the desired state through {}", conn.key),
                            ),
                            Cause::Drifted => (
                                "DriftCorrected",
                                format!(
                                    "the vendor's record differed from the spec; restored it through {}",
                                    conn.key
                                ),
                            ),
                        };
                        settled(Some(outputs), Some(confirmed_at), Some(event), then)
                            .ok_or(ReconcileError::Internal)
                    }
                    Err(e) => {
                        let err = vendor_failure(client, secrets, e);
                        if let Some(attempt) = refusal_attempt.filter(|_| !err.is_transient()) {
                            let refusal = Refusal {
                                attempt,
                                error: err.clone(),
                            };
                            ctx.memory.remember_refusal(&uid, refusal);
                        }
                        Err(write_failure(ctx, &uid, err))
                    }
                }
            }
            Step::Confirmed { then } => {
                let outputs = observed.take().and_then(|(_, outputs)| outputs);
                let fingerprint = desired
                    .as_ref()
                    .map(|d| d.fingerprint.clone())
                    .unwrap_or_default();
                let remembered = Applied::new(fingerprint, handled.clone(), outputs.clone());
                let confirmed_at = remembered.confirmed_at.clone();
                ctx.memory.remember_applied(&uid, remembered);
                settled(outputs, Some(confirmed_at), None, then).ok_or(ReconcileError::Internal)
            }
            Step::Wait { then } | Step::Nothing { then } => {
                // Nothing is sent: the outputs of this process's last write are newer than
                // those of a cached copy that may not show its status write yet.
                let outputs = applied.as_ref().and_then(Applied::outputs::<K::Outputs>);
                let confirmed_at = applied.as_ref().map(|a| a.confirmed_at.clone());
                settled(outputs, confirmed_at, None, then).ok_or(ReconcileError::Internal)
            }
        };
        return finish_sync(obj, ctx, &old, done).await;
    }
}

/// An observation as a fact to decide on, and the outputs it carried.
fn observation_facts<O>(observation: Observation<O>) -> (Observed, Option<O>) {
    match observation {
        Observation::UpToDate(outputs) => (Observed::UpToDate, Some(outputs)),
        Observation::Drifted(outputs) => (Observed::Drifted, Some(outputs)),
        Observation::Missing => (Observed::Missing, None),
        Observation::Unknown => (Observed::Unknown, None),
    }
}

/// What binding told the decision: the fingerprint of the full request and what the vendor
/// can do.
fn desired_state<O: Send + Sync + 'static>(
    ctx: &Context,
    (conn, _, external, client): &Bound<O>,
) -> DesiredState {
    DesiredState {
        fingerprint: ctx.fingerprint_key.fingerprint(
            &conn.fingerprint_material(),
            &external.fingerprint_material(),
        ),
        client_identity: client.identity.to_string(),
        readable: external.readable(),
        supports_delete: external.supports_delete(),
    }
}

/// The connection's tenancy admits `obj`, and `obj` holds its vendor record.
fn admitted_and_claimed<K: Managed>(
    obj: &K,
    ctx: &Context,
    (conn, _, _, client): &Bound<K::Outputs>,
) -> Result<(), ReconcileError> {
    admit(obj, conn, client)?;
    claim_record(obj, ctx, conn)
}

/// Paused: write `Paused`, Ready only while `in_sync`; call nobody.
async fn write_paused<K: Managed>(
    obj: &K,
    ctx: &Context,
    old: &SyncStatus,
    in_sync: bool,
) -> Result<Action, ReconcileError> {
    let mut sync = old.clone();
    let message = format!("{PAUSED_ANNOTATION} is \"true\": no vendor calls until it is removed");
    let health = if in_sync {
        Health::Ready {
            reason: "Paused",
            message,
        }
    } else {
        Health::Suspended {
            reason: "Paused",
            message: format!(
                "{message}; the spec or a Secret changed since the last sync (or it never synced), and nothing is sent while paused"
            ),
        }
    };
    conditions::apply(
        &mut sync.conditions,
        &health,
        obj.meta().generation,
        &conditions::now(),
    );
    sync.observed_generation = obj.meta().generation;
    write_status(obj, ctx, obj.status_with(sync, None)).await?;
    Ok(Requeue::on_change(Why::Paused).action())
}

/// The later of a recorded sync time and a confirmation (the status may hold a newer one,
/// written by another replica).
fn newest(recorded: Option<Time>, confirmed: Time) -> Option<Time> {
    match recorded {
        Some(recorded) if recorded.0 > confirmed.0 => Some(recorded),
        _ => Some(confirmed),
    }
}

/// Write the outcome of a sync: conditions, what was applied, events; then the requeue, or the
/// error for the error policy.
async fn finish_sync<K: Managed>(
    obj: &K,
    ctx: &Context,
    old_sync: &SyncStatus,
    result: Result<Synced<K::Outputs>, ReconcileError>,
) -> Result<Action, ReconcileError> {
    let namespace = obj.namespace().unwrap_or_default();
    let now = conditions::now();
    let mut sync = old_sync.clone();
    sync.observed_generation = obj.meta().generation;
    let mut outputs = None;
    let (health, action, error) = match result {
        Ok(done) => {
            sync.applied_fingerprint = Some(done.fingerprint);
            sync.last_handled_reconcile_at = done.handled;
            if let Some(confirmed_at) = done.confirmed_at {
                sync.last_synced_time = newest(sync.last_synced_time, confirmed_at);
            }
            outputs = done.outputs;
            if let Some((reason, note)) = done.event {
                publish(ctx, obj, EventType::Normal, reason, note);
            }
            let health = Health::Ready {
                reason: "Synced",
                message: format!("in sync with the vendor through {}", done.connection),
            };
            (health, done.requeue.action(), None)
        }
        Err(err) => {
            if let ReconcileError::OutcomeUnknown(_) = &err {
                // The vendor may hold what was sent, or what it held before: the next desired
                // state is sent whatever it is, even the one applied last.
                sync.applied_fingerprint = None;
            } else if let Some(applied) = ctx.memory.applied(&obj.uid().unwrap_or_default()) {
                // What this process last applied is newer than a status whose write was owed
                // (or that the cache does not show yet).
                sync.applied_fingerprint = Some(applied.fingerprint);
                sync.last_synced_time = newest(sync.last_synced_time, applied.confirmed_at);
            }
            let message = err.to_string();
            let health = if err.is_transient() {
                Health::Progressing {
                    reason: err.reason(),
                    message: format!("{message} (retrying with backoff)"),
                }
            } else {
                Health::Stalled {
                    reason: err.reason(),
                    message,
                }
            };
            (health, Action::await_change(), Some(err))
        }
    };
    let reason_changed = conditions::find(&old_sync.conditions, conditions::READY)
        .map(|c| c.reason.as_str())
        != Some(health.reason());
    if error.is_some() && reason_changed {
        publish(
            ctx,
            obj,
            EventType::Warning,
            health.reason(),
            health.message().to_string(),
        );
    }
    conditions::apply(&mut sync.conditions, &health, obj.meta().generation, &now);
    let status = obj.status_with(sync, outputs.as_ref());
    let uid = obj.uid().unwrap_or_default();
    // Push first, record after: during a burst a bookkeeping-only write waits (see
    // `deferred_status`); the object is reconciled again to write it.
    if error.is_none()
        && deferred_status::bookkeeping_only(obj.status(), &status)
        && ctx.deferred_status.may_defer(&uid)
    {
        let kind = K::kind(&());
        ctx.deferred_status
            .owe(&uid, &kind, &namespace, &obj.name_any());
        metrics::status_write_deferred(&kind);
    } else {
        write_status(obj, ctx, status).await?;
    }
    // Stalled is an error all the same (counted under its reason); the error policy retries
    // transient errors and waits for a change otherwise.
    match error {
        Some(err) => {
            if !err.is_transient() {
                tracing::warn!(kind = %K::kind(&()), name = %obj.name_any(), %namespace, reason = err.reason(), "stalled: {}", health.message());
            }
            Err(err)
        }
        None => Ok(action),
    }
}

/// A write failed with `err`: when its outcome is unknown, what this process last applied no
/// longer vouches for the vendor's state.
fn write_failure(ctx: &Context, uid: &str, err: VendorError) -> ReconcileError {
    if err.outcome_unknown() {
        ctx.memory.doubt_applied(uid);
    }
    ReconcileError::write_failed(err)
}

/// Deletion (the object holds the finalizer; the helper drops it when this succeeds): with
/// policy Delete, remove the vendor record first; when that cannot be done the finalizer stays
/// and the conditions say why and how to let go.
async fn cleanup<K: Managed>(obj: &K, ctx: &Context) -> Result<Action, ReconcileError> {
    let uid = obj.uid().unwrap_or_default();
    let namespace = obj.namespace().unwrap_or_default();
    let mut facts = CleanupFacts {
        deletion_policy: obj.deletion_policy(),
        paused: annotation(obj, PAUSED_ANNOTATION) == Some("true"),
        bound: None,
        holds_claim: false,
    };
    let mut bound = None;
    let mut unbound = None;
    loop {
        match decide::decide_cleanup(&facts) {
            CleanupStep::Release => return Ok(Action::await_change()),
            CleanupStep::BlockedPaused => {
                let err = ReconcileError::invalid(
                    "Paused",
                    format!("deletion waits: {PAUSED_ANNOTATION} is \"true\""),
                );
                return deletion_blocked(obj, ctx, err).await;
            }
            CleanupStep::Bind => {
                let checked = match bind(obj, ctx, &namespace, OwnSecrets::Placeholders).await {
                    // The connection's policy may no longer let this resource touch its record.
                    Ok(b) => admit(obj, &b.0, &b.3).map(|()| b),
                    Err(e) => Err(e),
                };
                match checked {
                    Ok(b) => {
                        bound = Some(b);
                        facts.holds_claim = ctx.claims.holds(&uid);
                        facts.bound = Some(true);
                    }
                    Err(e) => {
                        unbound = Some(e);
                        facts.bound = Some(false);
                    }
                }
            }
            CleanupStep::BlockedUnbound => {
                let err = unbound.take().unwrap_or(ReconcileError::Internal);
                return deletion_blocked(obj, ctx, err).await;
            }
            CleanupStep::Delete => {
                let Some((_, secrets, external, client)) = bound.as_ref() else {
                    return Err(ReconcileError::Internal);
                };
                if let Err(e) = external.delete().await {
                    let e = vendor_failure(client, secrets, e);
                    return deletion_blocked(obj, ctx, ReconcileError::Vendor(e)).await;
                }
                publish(
                    ctx,
                    obj,
                    EventType::Normal,
                    "Deleted",
                    "removed the record from the vendor".into(),
                );
                return Ok(Action::await_change());
            }
        }
    }
}

/// A vendor call failed: a wait the vendor asked for holds the whole connection back, and the
/// text is scrubbed of the resource's secret values and the connection's credentials.
fn vendor_failure(
    client: &ConnectionClient,
    secrets: &ResolvedSecrets,
    e: VendorError,
) -> VendorError {
    client.vendor.hold_off(&e);
    e.map_message(|m| {
        let own = crate::scrub::Redactions::new(secrets.values());
        client.redactions.scrub(&own.scrub(&m))
    })
}

/// Whether the connection's tenancy policy admits `obj` (privileged settings are refused
/// without one).
fn admit<K: Managed>(
    obj: &K,
    conn: &ResolvedConnection,
    client: &ConnectionClient,
) -> Result<(), ReconcileError> {
    let policy = conn.endpoint.tenancy.clone().unwrap_or_default();
    obj.admitted(&policy, &client.vendor).map_err(|why| {
        ReconcileError::invalid(
            "PolicyDenied",
            format!("{why}; nothing is sent (the connection's spec.tenancy is set by its owner)"),
        )
    })
}

/// Claim the vendor record `obj` names on `conn`'s endpoint; another resource holding it
/// stalls `obj` before any vendor call.
fn claim_record<K: Managed>(
    obj: &K,
    ctx: &Context,
    conn: &ResolvedConnection,
) -> Result<(), ReconcileError> {
    let uid = obj.uid().unwrap_or_default();
    let (Some(record), Some(vendor), Some(url)) =
        (obj.record(), conn.vendor(), conn.endpoint.url())
    else {
        ctx.claims.release(&uid);
        return Ok(());
    };
    let key = claims::RecordKey::new(vendor, url, record);
    match ctx.claims.claim(key, claimant(obj)) {
        claims::Claim::Held => Ok(()),
        claims::Claim::HeldBy(holder) => Err(ReconcileError::invalid(
            "RecordClaimed",
            format!(
                "the vendor record this resource names is managed by {holder} (one record, one owner; same endpoint, same record); nothing is sent. Point this resource at another record, or delete {holder} and this one takes over"
            ),
        )),
    }
}

/// `obj` as a claimant of its record.
pub fn claimant<K: Managed>(obj: &K) -> claims::Claimant {
    let kind = K::kind(&()).to_string();
    let namespace = obj.namespace().unwrap_or_default();
    claims::Claimant {
        uid: obj.uid().unwrap_or_default(),
        name: format!("{kind} {namespace}/{}", obj.name_any()),
        kind,
        namespace,
        object: obj.name_any(),
    }
}

/// The claims of every resource in a cache whose status shows it applied its record (the
/// holders before a restart), for [`claims::ClaimTable::rebuild`]. The others claim as they
/// reconcile.
pub fn cached_claims<K: Managed>(
    objects: &[Arc<K>],
    connections: &ConnectionStores,
) -> Vec<(claims::RecordKey, claims::Claimant, claims::Seniority)> {
    objects
        .iter()
        .filter_map(|obj| {
            let sync = obj.status().map(K::sync_status)?;
            let claimed_elsewhere = conditions::find(&sync.conditions, conditions::READY)
                .is_some_and(|c| c.reason == "RecordClaimed");
            if sync.applied_fingerprint.is_none() || claimed_elsewhere {
                return None;
            }
            let namespace = obj.namespace().unwrap_or_default();
            let endpoint = connections.cached_endpoint(&namespace, obj.connection_ref())?;
            let key = claims::RecordKey::new(endpoint.vendor()?, endpoint.url()?, obj.record()?);
            let seniority = claims::Seniority {
                not_applied: false,
                created: obj
                    .meta()
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                uid: obj.uid().unwrap_or_default(),
            };
            Some((key, claimant(&**obj), seniority))
        })
        .collect()
}

/// Everything needed to talk to the vendor about `obj`: its connection, its Secret values, its
/// ExternalClient and the connection's client.
type Bound<O> = (
    ResolvedConnection,
    ResolvedSecrets,
    Box<dyn ExternalClient<Outputs = O>>,
    ConnectionClient,
);

/// Which of the resource's own Secret values binding reads.
#[derive(Clone, Copy)]
enum OwnSecrets {
    /// All of them (a sync sends them).
    Read,
    /// None: empty placeholders, never sent. A delete sends only the record's identity
    /// (SuperOffice: type and public value; HelloID: user and application GUIDs), so deleting
    /// never waits for Secrets that a namespace deletion takes in the same sweep.
    Placeholders,
}

/// Bind `obj` to its connection's client and its desired state.
async fn bind<K: Managed>(
    obj: &K,
    ctx: &Context,
    namespace: &str,
    own: OwnSecrets,
) -> Result<Bound<K::Outputs>, ReconcileError> {
    let conn = ctx
        .connections
        .resolve(&ctx.client, namespace, obj.connection_ref())
        .await?;
    let client = ctx.clients.get(&conn, &ctx.secrets, &ctx.transport).await?;
    let secrets = match own {
        OwnSecrets::Read => ctx.secrets.resolve(namespace, &obj.secret_refs()).await?,
        // Nothing of the resource's is read, so there is nothing of it to scrub either.
        OwnSecrets::Placeholders => ResolvedSecrets::placeholders(&obj.secret_refs()),
    };
    let external = obj.external(&client.vendor, &secrets)?;
    Ok((conn, secrets, external, client))
}

async fn deletion_blocked<K: Managed>(
    obj: &K,
    ctx: &Context,
    err: ReconcileError,
) -> Result<Action, ReconcileError> {
    let message = format!(
        "cannot delete the vendor record yet: {}. To let the resource go without deleting it, set spec.deletionPolicy: Orphan",
        err
    );
    let health = if err.is_transient() {
        Health::Progressing {
            reason: "DeletionFailed",
            message,
        }
    } else {
        Health::Stalled {
            reason: "DeletionBlocked",
            message,
        }
    };
    let mut sync = obj
        .status()
        .map(K::sync_status)
        .cloned()
        .unwrap_or_default();
    if conditions::find(&sync.conditions, conditions::READY).map(|c| c.message.as_str())
        != Some(health.message())
    {
        publish(
            ctx,
            obj,
            EventType::Warning,
            health.reason(),
            health.message().to_string(),
        );
    }
    conditions::apply(
        &mut sync.conditions,
        &health,
        obj.meta().generation,
        &conditions::now(),
    );
    write_status(obj, ctx, obj.status_with(sync, None)).await?;
    // Transient: retried with backoff; otherwise the error policy waits for a change.
    Err(err)
}

/// Write the status only when it differs from what the object has.
async fn write_status<K: Managed>(
    obj: &K,
    ctx: &Context,
    status: K::Status,
) -> Result<(), ReconcileError> {
    let uid = obj.uid().unwrap_or_default();
    if obj.status() == Some(&status) {
        ctx.deferred_status.settle(&uid);
        return Ok(());
    }
    match status_write::write(&ctx.client, obj, &status).await? {
        Written::Done => {
            metrics::status_written(&K::kind(&()));
            // Whatever was owed is superseded by what was just written.
            ctx.deferred_status.settle(&uid);
        }
        // Owed, not sent as a patch over whatever changed: the next reconcile writes from the
        // newer object. A change of spec, annotations or finalizers brings it anyway; a change
        // of status alone (often our own last write, not yet in the cache) only through the debt.
        Written::ObjectMovedOn => ctx.deferred_status.owe_afresh(
            &uid,
            &K::kind(&()),
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
        ),
        Written::ObjectGone => ctx.deferred_status.settle(&uid),
    }
    Ok(())
}

fn publish<K: Managed>(ctx: &Context, obj: &K, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    ctx.events.publish(event, obj.object_ref(&()));
}

fn annotation<'a, K: Resource>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.meta()
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}
