//! What turns changes into connection re-checks and resource reconciles: the Secret watch, the
//! deletion of connections, resources coming and going (for the in-use holds), and what a
//! connection's client learned about its vendor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{ClusterVendorConnection, ConnectionKind, VendorConnection};
use crate::connections::dependencies::{AllDependents, connection_changed};
use crate::connections::resolve::ConnectionResource;
use crate::connections::{ConnectionKey, ConnectionStores};
use crate::liveness::Liveness;
use crate::reconcile::Context;
use crate::secrets::{SecretId, UNWATCHED_SECRET_TYPES};

/// How often connections' learned capabilities are compared with their status.
const CAPABILITIES_INTERVAL: Duration = Duration::from_secs(1);

/// A resource's vendor call may teach a connection's client what its vendor serves (a missing
/// route, the path it serves); the connection's status shows it, so re-check a connection
/// whose record changed.
pub async fn follow_capabilities(
    ctx: Arc<Context>,
    queues: ConnectionQueues,
    shutdown: CancellationToken,
) {
    let mut seen: HashMap<ConnectionKey, u64> = HashMap::new();
    while shutdown
        .run_until_cancelled(tokio::time::sleep(CAPABILITIES_INTERVAL))
        .await
        .is_some()
    {
        let now: HashMap<ConnectionKey, u64> =
            ctx.clients.capability_versions().into_iter().collect();
        for (key, version) in &now {
            if seen.get(key).is_some_and(|v| v != version)
                || (!seen.contains_key(key) && *version > 0)
            {
                queues.request(key);
            }
        }
        seen = now;
    }
}

/// Where connection reconciles are requested.
#[derive(Clone)]
pub struct ConnectionQueues {
    pub namespaced: mpsc::UnboundedSender<ObjectRef<VendorConnection>>,
    pub cluster: mpsc::UnboundedSender<ObjectRef<ClusterVendorConnection>>,
}

impl ConnectionQueues {
    pub fn request(&self, key: &ConnectionKey) {
        // A closed queue means the controller stopped (shutdown): nothing left to ask.
        match (key.kind(), key.namespace()) {
            (ConnectionKind::VendorConnection, Some(ns)) => {
                let _ = self.namespaced.send(ObjectRef::new(key.name()).within(ns));
            }
            (ConnectionKind::VendorConnection, None) => {}
            (ConnectionKind::ClusterVendorConnection, _) => {
                let _ = self.cluster.send(ObjectRef::new(key.name()));
            }
        }
    }
}

/// One metadata-only watch of Secrets: nothing about unrelated Secrets is kept, and a change to
/// a referenced one queues its dependents (drops the client of a connection that uses it and
/// re-checks that connection).
pub async fn watch_secrets(
    liveness: &Liveness,
    api: Api<PartialObjectMeta<Secret>>,
    ctx: Arc<Context>,
    dependents: AllDependents,
    connections_queue: ConnectionQueues,
    shutdown: CancellationToken,
) {
    // Helm release and service-account token Secrets are never credsync's to read.
    let unwatched_types = UNWATCHED_SECRET_TYPES
        .map(|t| format!("type!={t}"))
        .join(",");
    let config = watcher::Config::default()
        .fields(&unwatched_types)
        .any_semantic()
        // Small pages: the initial list of a cluster with many Secrets never holds much at once.
        .page_size(100);
    let tracked = liveness.clone();
    let events = watcher(api, config)
        .backoff(liveness.watch_backoff())
        .inspect(move |event| tracked.watch_item("Secret", event.is_ok()));
    let mut events = std::pin::pin!(events);
    // Until shutdown, or the stream ends.
    while let Some(Some(event)) = shutdown.run_until_cancelled(events.next()).await {
        let meta = match event {
            Ok(watcher::Event::Apply(m) | watcher::Event::Delete(m)) => m,
            // Starting over (at start, or after a gap): changes may have been missed meanwhile.
            Ok(watcher::Event::Init) => {
                ctx.secrets.forget_all();
                ctx.clients.invalidate_all();
                continue;
            }
            Ok(watcher::Event::InitApply(_)) => continue,
            // What was checked before this list completed (connections reconcile before this
            // watch starts; a re-list follows a gap) may have missed a Secret appearing or
            // changing: check every connection and every resource again. Clients rebuilt from
            // the same values keep their identity, so nothing refused for good is sent again.
            Ok(watcher::Event::InitDone) => {
                let keys = ctx
                    .connections
                    .namespaced
                    .state()
                    .into_iter()
                    .map(|c| c.key());
                let keys = keys.chain(ctx.connections.cluster.state().into_iter().map(|c| c.key()));
                for key in keys {
                    connections_queue.request(&key);
                    connection_changed(&dependents, &key);
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Secret watch");
                continue;
            }
        };
        let (Some(namespace), name) = (meta.namespace(), meta.name_any()) else {
            continue;
        };
        ctx.secrets.changed(&namespace, &name);
        let secret = SecretId::new(&namespace, &name);
        let connections = ctx.clients.connections_reading(&secret);
        for key in &connections {
            ctx.clients.invalidate(key);
            connections_queue.request(key);
        }
        for deps in dependents.iter() {
            deps.secret_changed(&secret, &connections);
        }
    }
}

/// A deleted connection: its client goes, and the resources that used it are checked again
/// (they say ConnectionNotFound until it is back).
pub async fn connections_deleted(
    mut deleted: mpsc::UnboundedReceiver<ConnectionKey>,
    ctx: Arc<Context>,
    dependents: AllDependents,
    shutdown: CancellationToken,
) {
    while let Some(Some(key)) = shutdown.run_until_cancelled(deleted.recv()).await {
        ctx.clients.remove(&key);
        connection_changed(&dependents, &key);
    }
}

/// Pass resources' connection keys on to the connection reconcile (see `reconcile::connection::hold_while_needed`).
pub async fn forward_usage(
    mut usages: mpsc::UnboundedReceiver<ConnectionKey>,
    connections: ConnectionStores,
    queues: ConnectionQueues,
    shutdown: CancellationToken,
) {
    while let Some(Some(key)) = shutdown.run_until_cancelled(usages.recv()).await {
        // A connection that does not exist holds nothing (and the controller would warn).
        let exists = match (key.kind(), key.namespace()) {
            (ConnectionKind::VendorConnection, Some(ns)) => connections
                .namespaced
                .get(&ObjectRef::new(key.name()).within(ns))
                .is_some(),
            (ConnectionKind::VendorConnection, None) => false,
            (ConnectionKind::ClusterVendorConnection, _) => connections
                .cluster
                .get(&ObjectRef::new(key.name()))
                .is_some(),
        };
        if exists {
            queues.request(&key);
        }
    }
}
