//! The connection reconciler, shared by both connection kinds: a connection is Ready when its
//! settings and Secrets make a client, and it (with its Secrets) is held while a resource still
//! has a vendor record to delete through it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::Context;
use super::conditions::{self, Health};
use super::in_use;
use crate::connections::dependencies::{AllDependents, connection_changed};
use crate::connections::resolve::{ConnectionResource, secrets_named};
use crate::connections::{ConnectionKey, ResolvedConnection};
use crate::error::ReconcileError;
use crate::secrets::SecretId;
use crate::vendors::capabilities::{Capabilities, Capability};

/// What connection reconciles share.
pub struct ConnectionContext {
    base: Arc<Context>,
    dependents: AllDependents,
    /// Connections whose Secrets this process put on hold, at the (uid, generation) it did:
    /// a spec change may name other Secrets. Also serializes the holds, so two reconciles
    /// never undo each other.
    held: tokio::sync::Mutex<HashMap<ConnectionKey, ConnectionVersion>>,
    /// This Deployment's in-use finalizer (one per shard).
    in_use_finalizer: String,
}

/// A connection object's uid and generation.
type ConnectionVersion = (Option<String>, Option<i64>);

impl ConnectionContext {
    /// `in_use_finalizer` is this Deployment's (see `in_use::finalizer_for_shard`).
    pub fn new(base: Arc<Context>, dependents: AllDependents, in_use_finalizer: String) -> Self {
        ConnectionContext {
            base,
            dependents,
            held: Default::default(),
            in_use_finalizer,
        }
    }
}

/// A connection is Ready when its settings and Secrets make a client; whether the vendor
/// answers shows on the resources that use it. A change of its client or health re-queues
/// those resources. One being deleted (held by someone else's finalizer) stays usable until it
/// is gone; `triggers::connections_deleted` handles that.
pub async fn reconcile_connection<C: ConnectionResource>(
    conn: Arc<C>,
    ctx: Arc<ConnectionContext>,
) -> Result<Action, ReconcileError> {
    crate::reconcile::isolate::isolated("connection", check_connection(conn, ctx))
        .await
        .unwrap_or(Err(ReconcileError::Internal))
}

async fn check_connection<C: ConnectionResource>(
    conn: Arc<C>,
    ctx: Arc<ConnectionContext>,
) -> Result<Action, ReconcileError> {
    let key = conn.key();
    let before = ctx.base.clients.identity(&key);
    let resolved = ResolvedConnection::of(&*conn);
    let checked = ctx
        .base
        .clients
        .get(&resolved, &ctx.base.secrets, &ctx.base.transport)
        .await;
    let client_changed = checked.as_ref().ok().map(|c| c.identity) != before;
    let health = match &checked {
        Ok(client) => Health::Ready {
            reason: "Valid",
            message: capability_note(
                "settings and Secrets are valid; whether the vendor answers shows on the resources using this connection",
                client.vendor.capabilities(),
            ),
        },
        Err(e) if e.is_transient() => Health::Progressing {
            reason: e.reason(),
            message: e.to_string(),
        },
        Err(e) => Health::Stalled {
            reason: e.reason(),
            message: e.to_string(),
        },
    };
    let mut status = conn.current_status().cloned().unwrap_or_default();
    conditions::apply(
        &mut status.sync.conditions,
        &health,
        conn.meta().generation,
        &conditions::now(),
    );
    status.sync.observed_generation = conn.meta().generation;
    status.vendor = conn.endpoint().vendor();
    status.capabilities = checked
        .as_ref()
        .map(|client| capability_statuses(client.vendor.capabilities()))
        .unwrap_or_default();
    let status_changed = conn.current_status() != Some(&status);
    // The resources using the connection hear of it only when its client or its health changed
    // (a connection they could not find before included), not on every re-check, nor when it
    // only learned what its vendor serves (their own calls taught it that).
    let health_changed =
        conn.current_status().map(|s| (&s.sync, s.vendor)) != Some((&status.sync, status.vendor));
    if client_changed || health_changed {
        connection_changed(&ctx.dependents, &key);
    }
    if status_changed {
        let patch = serde_json::json!({ "status": status });
        conn.api(ctx.base.client.clone())
            .patch_status(
                &conn.name_any(),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await?;
    }
    hold_while_needed(&*conn, &ctx).await?;
    match checked {
        Err(e) if e.is_transient() => Err(e),
        _ => Ok(Action::await_change()),
    }
}

/// The connection's status view of what its vendor serves.
fn capability_statuses(found: &Capabilities) -> Vec<crate::api::CapabilityStatus> {
    found
        .snapshot()
        .into_iter()
        .map(|(operation, capability)| match capability {
            Capability::Supported { variant } => crate::api::CapabilityStatus {
                operation: operation.to_string(),
                supported: true,
                variant: variant.map(str::to_string),
                message: None,
            },
            Capability::Unsupported { why } => crate::api::CapabilityStatus {
                operation: operation.to_string(),
                supported: false,
                variant: None,
                message: Some(why),
            },
        })
        .collect()
}

/// `message`, with what the vendor does not serve (and what credsync does instead).
fn capability_note(message: &str, found: &Capabilities) -> String {
    let missing: Vec<String> = found
        .snapshot()
        .into_iter()
        .filter_map(|(operation, capability)| match capability {
            Capability::Unsupported { why } => Some(format!("{operation}: {why}")),
            Capability::Supported { .. } => None,
        })
        .collect();
    if missing.is_empty() {
        message.to_string()
    } else {
        format!(
            "{message}; the vendor does not serve every operation credsync assumed (see status.capabilities): {}",
            missing.join("; ")
        )
    }
}

pub fn connection_error_policy<C: ConnectionResource>(
    _conn: Arc<C>,
    _err: &ReconcileError,
    _ctx: Arc<ConnectionContext>,
) -> Action {
    Action::requeue(Duration::from_secs(10))
}

/// Keep the connection and its Secrets while a resource must still delete its record through
/// them (see `reconcile::in_use`); let them go when none must.
async fn hold_while_needed<C: ConnectionResource>(
    conn: &C,
    ctx: &ConnectionContext,
) -> Result<(), ReconcileError> {
    // Judged on complete caches only: a half-listed one would let go of what is still needed.
    // The claim table opens once every kind's cache is complete. (Not Store::wait_until_ready:
    // of several tasks waiting on one store at once, only the last is woken.)
    ctx.base.claims.ready().await;
    let needed = |key: &ConnectionKey| ctx.dependents.iter().any(|d| d.needs_for_cleanup(key));
    let key = conn.key();
    let in_use = needed(&key);
    let finalizer = ctx.in_use_finalizer.as_str();
    let held = in_use::held(conn.meta(), finalizer);
    let version = (conn.meta().uid.clone(), conn.meta().generation);
    let client = &ctx.base.client;
    let api = conn.api(client.clone());
    let name = conn.name_any();
    let own = conn.meta().namespace.as_deref();
    // A VendorConnection may name only its own namespace's Secrets: never touch another
    // tenant's, whatever its spec says (its client could not be built from them either).
    let secrets: Vec<SecretId> = secrets_named(conn)
        .into_iter()
        .filter(|secret| own.is_none_or(|own| own == secret.namespace))
        .collect();
    let mut held_versions = ctx.held.lock().await;
    if in_use {
        // Done for this spec already (its Secrets are held whenever the connection is): no
        // API call on each of the many resource events that lead here.
        if held && held_versions.get(&key) == Some(&version) {
            return Ok(());
        }
        // Secrets first: a connection marked in use always has its credentials held.
        for secret in &secrets {
            in_use::hold_secret(client, &secret.namespace, &secret.name, finalizer, true).await?;
        }
        in_use::hold(&api, &name, finalizer, true).await?;
        held_versions.insert(key, version);
    } else {
        held_versions.remove(&key);
        // Its Secrets were let go before the connection was.
        if !held {
            return Ok(());
        }
        for secret in &secrets {
            let shared_and_needed = ctx
                .base
                .connections
                .naming_secret(secret)
                .iter()
                .any(&needed);
            if !shared_and_needed {
                in_use::hold_secret(client, &secret.namespace, &secret.name, finalizer, false)
                    .await?;
            }
        }
        in_use::hold(&api, &name, finalizer, false).await?;
    }
    // Here only when the hold changed or the spec did: a spec edited while in use may have
    // left Secrets it no longer names on hold.
    let mut namespaces: std::collections::BTreeSet<String> =
        secrets.into_iter().map(|secret| secret.namespace).collect();
    namespaces.extend(own.map(str::to_string));
    for namespace in namespaces {
        let listed = Api::<Secret>::namespaced(client.clone(), &namespace)
            .list_metadata(&kube::api::ListParams::default())
            .await?;
        for secret in listed.items {
            let secret_name = secret.name_any();
            if in_use::held(&secret.metadata, finalizer)
                && !ctx
                    .base
                    .connections
                    .naming_secret(&SecretId::new(&namespace, &secret_name))
                    .iter()
                    .any(&needed)
            {
                in_use::hold_secret(client, &namespace, &secret_name, finalizer, false).await?;
            }
        }
    }
    Ok(())
}
