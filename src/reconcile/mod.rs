//! The one generic reconciler every managed kind runs on. It owns finalizers, conditions,
//! events, fingerprints, drift checks and backoff; kinds and vendors only say how a spec maps
//! to an [`ExternalClient`](crate::vendors::ExternalClient) (see [`managed::Managed`]).
//!
//! A vendor is called only when the desired state changed (the keyed fingerprint of the
//! request, secret values included, differs from `status.appliedFingerprint`), when a person
//! asks (`credsync.io/reconcile-requested-at`), or when a readable vendor's drift check is due.

pub mod backoff;
pub mod claims;
pub mod conditions;
pub mod error;
pub mod events;
pub mod fingerprint;
pub mod in_use;
pub mod isolate;
pub mod managed;
pub mod scrub;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use self::backoff::Backoff;
use self::conditions::Health;
use self::error::ReconcileError;
use self::events::EventPublisher;
use self::fingerprint::FingerprintKey;
use self::managed::Managed;
use crate::api::{DeletionPolicy, SyncStatus};
use crate::connections::{ClientCache, ConnectionClient, ConnectionStores, ResolvedConnection};
use crate::metrics;
use crate::secrets::{ResolvedSecrets, SecretReader};
use crate::vendors::http::TransportPolicy;
use crate::vendors::{ExternalClient, Observation, Outputs, VendorError};

/// Held while a Delete-policy resource's vendor record may still exist.
pub const FINALIZER: &str = "credsync.io/cleanup";
/// `"true"` stops every vendor call for the resource.
pub const PAUSED_ANNOTATION: &str = "credsync.io/paused";
/// Any new value asks for one sync now, even when nothing changed.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "credsync.io/reconcile-requested-at";

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
    /// What this process last applied per object (by uid). The reflector can lag behind our
    /// own status write; this keeps a quick second trigger from applying the same state twice,
    /// or from writing back the outputs the stale copy holds.
    pub applied: Mutex<HashMap<String, Applied>>,
    /// Requests a vendor refused for good, per object (uid → attempt, error): the same request
    /// on the same connection client is not sent again until something changes.
    pub refused: Mutex<HashMap<String, (String, VendorError)>>,
    /// Which resource owns which vendor record.
    pub claims: claims::ClaimTable,
}

/// One object's last applied state, as this process knows it.
#[derive(Clone, Debug)]
pub struct Applied {
    fingerprint: String,
    /// The sync-now annotation's value acted on.
    handled: Option<String>,
    /// What the vendor returned for it.
    outputs: Outputs,
}

impl Context {
    fn remembered(&self, uid: &str) -> Option<Applied> {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .cloned()
    }

    fn remember(&self, uid: String, applied: Applied) {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&uid);
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid, applied);
    }

    /// What this process last applied no longer vouches for the vendor's state.
    fn forget_applied(&self, uid: &str) {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    fn refused(&self, uid: &str, attempt: &str) -> Option<VendorError> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .filter(|(a, _)| a == attempt)
            .map(|(_, e)| e.clone())
    }

    fn refuse(&self, uid: String, attempt: String, err: VendorError) {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid, (attempt, err));
    }

    /// `obj` is gone, whatever its deletion policy: drop everything this process remembers of
    /// it (its backoff included) and hand its record to the next claimant.
    pub fn forget_object<K: Managed>(&self, obj: &K) {
        self.backoff.reset(&backoff_key(obj));
        self.forget(&obj.uid().unwrap_or_default());
    }

    /// The object is gone: drop everything this process remembers of it by uid, and hand its
    /// record to the next claimant.
    fn forget(&self, uid: &str) {
        self.claims.release(uid);
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
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
        if obj.meta().deletion_timestamp.is_some() {
            finalize(&*obj, &ctx).await
        } else {
            sync(&*obj, &ctx).await
        }
    };
    let result = match isolate::isolated(&kind, work).await {
        Some(result) => result,
        None => Err(internal_error(&*obj, &ctx).await),
    };
    let outcome = match &result {
        Ok(_) => {
            ctx.backoff.reset(&backoff_key(&*obj));
            "success"
        }
        Err(e) => e.reason(),
    };
    metrics::reconcile_finished(&kind, outcome, started.elapsed());
    result
}

/// A reconcile of `obj` panicked (a bug): say so on the object, retry with backoff.
async fn internal_error<K: Managed>(obj: &K, ctx: &Context) -> ReconcileError {
    let err = ReconcileError::Internal;
    let mut sync = obj
        .status()
        .map(K::sync_status)
        .cloned()
        .unwrap_or_default();
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
    if let Err(e) = write_status(obj, ctx, K::make_status(sync, obj.outputs())).await {
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
        let delay = ctx
            .backoff
            .next_delay(&backoff_key(&*obj), err.retry_after());
        tracing::info!(kind = %K::kind(&()), name = %obj.name_any(), namespace = obj.namespace().unwrap_or_default(), reason = err.reason(), retry_in = ?delay, "transient failure, retrying");
        Action::requeue(delay)
    } else {
        Action::await_change()
    }
}

fn backoff_key<K: Managed>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

impl Synced {
    /// What this sync leaves applied, for the process's memory.
    fn applied(&self) -> Applied {
        Applied {
            fingerprint: self.fingerprint.clone(),
            handled: self.handled.clone(),
            outputs: self.outputs.clone(),
        }
    }
}

/// The outcome of the vendor part of a sync.
struct Synced {
    fingerprint: String,
    /// The last value of the sync-now annotation acted on.
    handled: Option<String>,
    outputs: Outputs,
    /// The vendor confirmed the desired state now (write or read-back).
    confirmed: bool,
    /// An event to publish.
    event: Option<(&'static str, String)>,
    requeue: Action,
    connection: String,
    /// Nothing was decided yet (a finalizer was just added); leave the status alone.
    pending: bool,
}

async fn sync<K: Managed>(obj: &K, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = obj.namespace().unwrap_or_default();
    let old_sync = obj
        .status()
        .map(K::sync_status)
        .cloned()
        .unwrap_or_default();

    if annotation(obj, PAUSED_ANNOTATION) == Some("true") {
        let mut sync = old_sync.clone();
        let message =
            format!("{PAUSED_ANNOTATION} is \"true\": no vendor calls until it is removed");
        // Ready only while what the vendor got is still what the spec and its Secrets say.
        let health = if paused_in_sync(obj, ctx, &namespace, &old_sync).await {
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
        write_status(obj, ctx, K::make_status(sync, obj.outputs())).await?;
        return Ok(Action::await_change());
    }

    let result = sync_vendor(obj, ctx, &namespace, &old_sync).await;
    let now = conditions::now();
    let mut sync = old_sync.clone();
    sync.observed_generation = obj.meta().generation;
    let mut outputs = obj.outputs();
    let (health, action, error) = match result {
        Ok(done) if done.pending => return Ok(done.requeue),
        Ok(done) => {
            sync.applied_fingerprint = Some(done.fingerprint);
            sync.last_handled_reconcile_at = done.handled;
            if done.confirmed {
                sync.last_synced_time = Some(now.clone());
            }
            outputs = outputs.updated_by(done.outputs);
            if let Some((reason, note)) = done.event {
                publish(ctx, obj, EventType::Normal, reason, note);
            }
            let health = Health::Ready {
                reason: "Synced",
                message: format!("in sync with the vendor through {}", done.connection),
            };
            (health, done.requeue, None)
        }
        Err(err) => {
            if let ReconcileError::OutcomeUnknown(_) = &err {
                // The vendor may hold what was sent, or what it held before: the next desired
                // state is sent whatever it is, even the one applied last.
                sync.applied_fingerprint = None;
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
    write_status(obj, ctx, K::make_status(sync, outputs)).await?;
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

/// Resolve the connection and Secrets, then call the vendor if the desired state changed or a
/// drift check is due. Vendor error texts are scrubbed of every secret value (see [`scrub`]).
async fn sync_vendor<K: Managed>(
    obj: &K,
    ctx: &Context,
    namespace: &str,
    old: &SyncStatus,
) -> Result<Synced, ReconcileError> {
    let uid = obj.uid().unwrap_or_default();
    let bound = bind(obj, ctx, namespace, OwnSecrets::Read).await;
    if let Err(ReconcileError::Connection { .. }) = &bound {
        // It reaches no endpoint now, so it holds no record there.
        ctx.claims.release(&uid);
    }
    let (conn, secrets, external, client) = bound?;
    admit(obj, &conn, &client)?;
    claim_record(obj, ctx, &conn)?;
    if obj.deletion_policy() == DeletionPolicy::Delete && !external.supports_delete() {
        return Err(ReconcileError::invalid(
            "DeletionPolicyUnsupported",
            format!(
                "deletionPolicy Delete is not possible: {} has no delete operation; set deletionPolicy: Orphan",
                conn.vendor().map(|v| v.to_string()).unwrap_or_default()
            ),
        ));
    }
    let wants_finalizer = obj.deletion_policy() == DeletionPolicy::Delete;
    if ensure_finalizer(obj, ctx, wants_finalizer).await? && wants_finalizer {
        // Apply once the finalizer is in place: its watch event brings the object back.
        return Ok(Synced {
            fingerprint: old.applied_fingerprint.clone().unwrap_or_default(),
            handled: old.last_handled_reconcile_at.clone(),
            outputs: Outputs::default(),
            confirmed: false,
            event: None,
            requeue: Action::await_change(),
            connection: conn.key.to_string(),
            pending: true,
        });
    }

    let fingerprint = ctx.fingerprint_key.fingerprint(
        &conn.fingerprint_material(),
        &external.fingerprint_material(),
    );
    let requested = annotation(obj, RECONCILE_REQUESTED_ANNOTATION);
    let remembered = ctx.remembered(&uid);
    let (last_fingerprint, last_handled) = last_applied(remembered.as_ref(), old);
    // When nothing is sent, the outputs of the last write this process made are newer than
    // those of a cached copy that may not show its status write yet.
    let remembered_outputs = remembered.map(|a| a.outputs).unwrap_or_default();
    // Each value of the annotation asks for one sync: a new value does, its removal (or the
    // same value again, also after a restart) does not.
    let sync_requested = requested.is_some_and(|r| last_handled.as_deref() != Some(r));
    let changed = last_fingerprint != fingerprint || sync_requested;
    let mut done = Synced {
        handled: requested.map(str::to_string).or(last_handled),
        fingerprint,
        outputs: remembered_outputs,
        confirmed: false,
        event: None,
        requeue: Action::await_change(),
        connection: conn.key.to_string(),
        pending: false,
    };
    let drift_check = if external.readable() {
        Action::requeue(ctx.drift_interval)
    } else {
        Action::await_change()
    };
    let vendor_failed = |e| vendor_failure(&client, &secrets, e);
    if changed {
        // The same request on the same client was refused for good: say so again, call nobody.
        let attempt = format!("{}|{}|{requested:?}", done.fingerprint, client.identity);
        if let Some(refused) = ctx.refused(&uid, &attempt) {
            return Err(ReconcileError::Vendor(refused));
        }
        done.outputs = match external.apply().await {
            Ok(outputs) => outputs,
            Err(e) => {
                let err = vendor_failed(e);
                if !err.is_transient() {
                    ctx.refuse(uid.clone(), attempt, err.clone());
                }
                return Err(write_failure(ctx, &uid, err));
            }
        };
        ctx.remember(uid, done.applied());
        done.confirmed = true;
        done.event = Some((
            "Synced",
            format!("applied the desired state through {}", done.connection),
        ));
        done.requeue = drift_check;
        return Ok(done);
    }
    if !external.readable() {
        return Ok(done);
    }
    if let Some(wait) = drift_due(old.last_synced_time.as_ref(), ctx.drift_interval) {
        done.requeue = Action::requeue(wait);
        return Ok(done);
    }
    match external.observe().await.map_err(vendor_failed)? {
        Observation::UpToDate(outputs) => {
            done.outputs = outputs;
            done.confirmed = true;
        }
        Observation::Missing | Observation::Drifted(_) => {
            done.outputs = external
                .apply()
                .await
                .map_err(|e| write_failure(ctx, &uid, vendor_failed(e)))?;
            done.confirmed = true;
            done.event = Some((
                "DriftCorrected",
                format!(
                    "the vendor's record differed from the spec; restored it through {}",
                    done.connection
                ),
            ));
        }
        Observation::Unknown => return Ok(done),
    }
    // The vendor confirmed this state now, with these outputs (a re-created record has a new id).
    ctx.remember(uid, done.applied());
    done.requeue = drift_check;
    Ok(done)
}

/// A write failed with `err`: when its outcome is unknown, what this process last applied no
/// longer vouches for the vendor's state.
fn write_failure(ctx: &Context, uid: &str, err: VendorError) -> ReconcileError {
    if err.outcome_unknown() {
        ctx.forget_applied(uid);
    }
    ReconcileError::write_failed(err)
}

/// What was last applied (fingerprint, handled sync request): this process's memory
/// (`remembered`), else the status.
fn last_applied(remembered: Option<&Applied>, old: &SyncStatus) -> (String, Option<String>) {
    remembered
        .map(|a| (a.fingerprint.clone(), a.handled.clone()))
        .unwrap_or_else(|| {
            (
                old.applied_fingerprint.clone().unwrap_or_default(),
                old.last_handled_reconcile_at.clone(),
            )
        })
}

/// Whether a paused object is still in sync: Ready for its current generation, and its spec
/// and Secrets make the request last applied. Reads Secrets, calls no vendor.
async fn paused_in_sync<K: Managed>(
    obj: &K,
    ctx: &Context,
    namespace: &str,
    old: &SyncStatus,
) -> bool {
    let ready_now = conditions::find(&old.conditions, conditions::READY)
        .is_some_and(|c| c.status == "True" && c.observed_generation == obj.meta().generation);
    if !ready_now {
        return false;
    }
    let Ok((conn, _, external, _)) = bind(obj, ctx, namespace, OwnSecrets::Read).await else {
        return false;
    };
    let desired = ctx.fingerprint_key.fingerprint(
        &conn.fingerprint_material(),
        &external.fingerprint_material(),
    );
    last_applied(ctx.remembered(&obj.uid().unwrap_or_default()).as_ref(), old).0 == desired
}

/// How long until the next drift check, or None when it is due now.
fn drift_due(last: Option<&Time>, interval: Duration) -> Option<Duration> {
    let last = last?;
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(last.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    interval.checked_sub(elapsed).filter(|d| !d.is_zero())
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
        let own = scrub::Redactions::new(secrets.values());
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
type Bound = (
    ResolvedConnection,
    ResolvedSecrets,
    Box<dyn ExternalClient>,
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
) -> Result<Bound, ReconcileError> {
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

/// Deletion: with policy Delete, remove the vendor record before letting the object go; when
/// that cannot be done the finalizer stays and the conditions say why and how to let go.
async fn finalize<K: Managed>(obj: &K, ctx: &Context) -> Result<Action, ReconcileError> {
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if obj.deletion_policy() == DeletionPolicy::Delete {
        if annotation(obj, PAUSED_ANNOTATION) == Some("true") {
            return deletion_blocked(
                obj,
                ctx,
                ReconcileError::invalid(
                    "Paused",
                    format!("deletion waits: {PAUSED_ANNOTATION} is \"true\""),
                ),
            )
            .await;
        }
        let namespace = obj.namespace().unwrap_or_default();
        let (conn, secrets, external, client) =
            match bind(obj, ctx, &namespace, OwnSecrets::Placeholders).await {
                Ok(bound) => bound,
                Err(e) => return deletion_blocked(obj, ctx, e).await,
            };
        // The connection's policy no longer lets this resource touch its record.
        if let Err(e) = admit(obj, &conn, &client) {
            return deletion_blocked(obj, ctx, e).await;
        }
        // The record belongs to another resource: deleting it would take it from its owner.
        if !ctx.claims.holds(&obj.uid().unwrap_or_default()) {
            ensure_finalizer(obj, ctx, false).await?;
            ctx.forget_object(obj);
            return Ok(Action::await_change());
        }
        if let Err(e) = external.delete().await {
            let e = vendor_failure(&client, &secrets, e);
            return deletion_blocked(obj, ctx, ReconcileError::Vendor(e)).await;
        }
        publish(
            ctx,
            obj,
            EventType::Normal,
            "Deleted",
            "removed the record from the vendor".into(),
        );
    }
    ensure_finalizer(obj, ctx, false).await?;
    ctx.forget_object(obj);
    Ok(Action::await_change())
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
    write_status(obj, ctx, K::make_status(sync, obj.outputs())).await?;
    // Transient: retried with backoff; otherwise the error policy waits for a change.
    Err(err)
}

/// Add or remove our finalizer. A merge patch carrying the resourceVersion fails rather than
/// overwrite a finalizer someone else added meanwhile.
/// Returns whether it changed anything.
async fn ensure_finalizer<K: Managed>(
    obj: &K,
    ctx: &Context,
    wanted: bool,
) -> Result<bool, ReconcileError> {
    let has = obj.finalizers().iter().any(|f| f == FINALIZER);
    if has == wanted {
        return Ok(false);
    }
    let mut finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if wanted {
        finalizers.push(FINALIZER.to_string());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        // Gone already: nothing left to hold.
        Err(kube::Error::Api(s)) if s.code == 404 && !wanted => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Write the status only when it differs from what the object has.
async fn write_status<K: Managed>(
    obj: &K,
    ctx: &Context,
    status: K::Status,
) -> Result<(), ReconcileError> {
    if obj.status() == Some(&status) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    // A merge patch keeps what it does not name: a field the new status drops (an applied
    // fingerprint that no longer vouches for the vendor) is named with null.
    let mut new = serde_json::to_value(&status).unwrap_or_default();
    if let (Some(old), Some(fields)) = (
        obj.status()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_object().cloned()),
        new.as_object_mut(),
    ) {
        for key in old.keys() {
            fields.entry(key.clone()).or_insert(serde_json::Value::Null);
        }
    }
    let patch = json!({ "status": new });
    match api
        .patch_status(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            metrics::status_written(&K::kind(&()));
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
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
