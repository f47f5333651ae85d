//! Wiring: one kube-runtime Controller per kind on the generic reconciler, reflector stores for
//! connections, and one metadata-only Secret watch that pushes Secret changes to the resources
//! (directly or through their connection) that use them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{
    ClusterVendorConnection, ConnectionKind, CrmUserCredential, ErpIdentity, SsoAppCredential,
    VendorConnection, VendorEndpoint,
};
use crate::liveness::Liveness;
use crate::metrics;
use crate::reconcile::backoff::Backoff;
use crate::reconcile::conditions::{self, Health};
use crate::reconcile::connection::{
    ClientCache, ConnectionKey, ConnectionStores, ResolvedConnection, secret_names,
};
use crate::reconcile::error::ReconcileError;
use crate::reconcile::events::EventPublisher;
use crate::reconcile::fingerprint::{FingerprintKey, FingerprintKeyError};
use crate::reconcile::in_use;
use crate::reconcile::managed::Managed;
use crate::reconcile::{self, Context};
use crate::secrets::{ConnectionScope, SecretReader, UNWATCHED_SECRET_TYPES};
use crate::server::Readiness;
use crate::vendors::capabilities::{Capabilities, Capability};
use crate::vendors::http::TransportPolicy;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the operator's own objects (fingerprint key).
    pub operator_namespace: String,
    /// Name of the Secret holding the fingerprint key.
    pub fingerprint_secret: String,
    /// How often readable vendors are checked for drift.
    pub drift_interval: Duration,
    /// Reconciles running at once, per kind.
    pub concurrency: u16,
    /// Rules for reaching vendors.
    pub transport: TransportPolicy,
    /// First and largest retry delay for transient failures.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Serve only this namespace (its resources, VendorConnections and Secrets); all when None.
    pub watch_namespace: Option<String>,
    /// Serve only resources with these labels (a label selector), to shard across Deployments.
    pub label_selector: Option<String>,
    /// Normal events published per second at most (Warnings are not limited); 0: none.
    pub normal_events_per_second: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            operator_namespace: "credsync-system".into(),
            fingerprint_secret: "credsync-fingerprint-key".into(),
            drift_interval: Duration::from_secs(3600),
            concurrency: 16,
            transport: TransportPolicy::default(),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            watch_namespace: None,
            label_selector: None,
            normal_events_per_second: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    FingerprintKey(#[from] FingerprintKeyError),
    #[error("watching {0} failed before its cache was ready")]
    CacheSync(&'static str),
}

/// Finds the resources of one kind that a Secret or connection change concerns, and queues them.
trait Dependents: Send + Sync {
    fn secret_changed(&self, namespace: &str, name: &str, connections: &[ConnectionKey]);
    fn connection_changed(&self, key: &ConnectionKey);
    /// Whether a resource of this kind must still delete its record through connection `key`.
    fn needs_for_cleanup(&self, key: &ConnectionKey) -> bool;
}

/// Queue every resource, of every kind, that uses connection `key`.
fn connection_changed(dependents: &[Box<dyn Dependents>], key: &ConnectionKey) {
    for deps in dependents {
        deps.connection_changed(key);
    }
}

struct KindDependents<K: Managed> {
    store: Store<K>,
    queue: mpsc::UnboundedSender<ObjectRef<K>>,
}

fn connection_key<K: Managed>(obj: &K) -> ConnectionKey {
    ConnectionKey::referenced(obj.connection_ref(), &obj.namespace().unwrap_or_default())
}

impl<K: Managed> Dependents for KindDependents<K> {
    fn secret_changed(&self, namespace: &str, name: &str, connections: &[ConnectionKey]) {
        for obj in self.store.state() {
            let direct = obj.namespace().as_deref() == Some(namespace)
                && obj.secret_refs().iter().any(|r| r.name == name);
            if direct || connections.contains(&connection_key(&*obj)) {
                let _ = self.queue.send(ObjectRef::from_obj(&*obj));
            }
        }
    }

    fn connection_changed(&self, key: &ConnectionKey) {
        for obj in self.store.state() {
            if &connection_key(&*obj) == key {
                let _ = self.queue.send(ObjectRef::from_obj(&*obj));
            }
        }
    }

    fn needs_for_cleanup(&self, key: &ConnectionKey) -> bool {
        self.store.state().iter().any(|obj| {
            obj.finalizers().iter().any(|f| f == reconcile::FINALIZER)
                && &connection_key(&**obj) == key
        })
    }
}

/// An Api over the watched namespace, or over all namespaces.
fn scoped_api<K>(client: &Client, settings: &Settings) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &settings.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run the operator until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    settings: Settings,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let fingerprint_key = FingerprintKey::load_or_create(
        client.clone(),
        &settings.operator_namespace,
        &settings.fingerprint_secret,
    )
    .await?;

    let (vc_reader, vc_writer) = reflector::store::<VendorConnection>();
    let (cvc_reader, cvc_writer) = reflector::store::<ClusterVendorConnection>();
    // A deleted connection reaches no reconcile: see `connections_deleted`.
    let (deleted_tx, deleted) = mpsc::unbounded_channel::<ConnectionKey>();
    let liveness = readiness.liveness().clone();
    let vc_stream = watched(
        &liveness,
        scoped_api::<VendorConnection>(&client, &settings),
        vc_writer,
        None,
        {
            let deleted_tx = deleted_tx.clone();
            move |c: &VendorConnection| {
                let _ = deleted_tx.send(c.key());
            }
        },
    );
    let cvc_stream = watched(
        &liveness,
        Api::<ClusterVendorConnection>::all(client.clone()),
        cvc_writer,
        None,
        move |c: &ClusterVendorConnection| {
            let _ = deleted_tx.send(c.key());
        },
    );

    let ctx = Arc::new(Context {
        client: client.clone(),
        events: EventPublisher::start(
            Recorder::new(
                client.clone(),
                Reporter {
                    controller: "credsync".into(),
                    instance: std::env::var("POD_NAME").ok(),
                },
            ),
            settings.normal_events_per_second,
        ),
        secrets: SecretReader::cached(client.clone(), settings.watch_namespace.clone()),
        fingerprint_key,
        connections: ConnectionStores {
            namespaced: vc_reader.clone(),
            cluster: cvc_reader.clone(),
        },
        clients: ClientCache::default(),
        // A vendor's wait never outlasts the operator's own longest backoff.
        transport: TransportPolicy {
            max_vendor_wait: settings.backoff_max,
            ..settings.transport.clone()
        },
        drift_interval: settings.drift_interval,
        backoff: Backoff::new(settings.backoff_base, settings.backoff_max),
        memory: Default::default(),
        claims: Default::default(),
    });

    // Resources coming, going or changing finalizers re-check their connection's in-use hold.
    let (usage, usages) = mpsc::unbounded_channel::<ConnectionKey>();
    let (crm, crm_deps, crm_store) =
        managed::<CrmUserCredential>(&client, &ctx, &settings, &liveness, &shutdown, &usage);
    let (erp, erp_deps, erp_store) =
        managed::<ErpIdentity>(&client, &ctx, &settings, &liveness, &shutdown, &usage);
    let (sso, sso_deps, sso_store) =
        managed::<SsoAppCredential>(&client, &ctx, &settings, &liveness, &shutdown, &usage);
    drop(usage);
    // Record claims are rebuilt from every cache before the first vendor call (reconciles wait
    // for it), so a restart never lets two resources write one record.
    let claims_rebuilt = {
        let ctx = ctx.clone();
        async move {
            let _ = crm_store.wait_until_ready().await;
            let _ = erp_store.wait_until_ready().await;
            let _ = sso_store.wait_until_ready().await;
            let mut claims = reconcile::cached_claims(&crm_store.state(), &ctx.connections);
            claims.extend(reconcile::cached_claims(
                &erp_store.state(),
                &ctx.connections,
            ));
            claims.extend(reconcile::cached_claims(
                &sso_store.state(),
                &ctx.connections,
            ));
            tracing::info!(held = claims.len(), "record claims rebuilt from the caches");
            ctx.claims.rebuild(claims);
        }
    };
    let dependents: Arc<Vec<Box<dyn Dependents>>> = Arc::new(vec![crm_deps, erp_deps, sso_deps]);

    let conn_ctx = Arc::new(ConnectionContext {
        base: ctx.clone(),
        dependents: dependents.clone(),
        held: Default::default(),
        in_use_finalizer: in_use::finalizer_for_shard(
            settings.watch_namespace.as_deref(),
            settings.label_selector.as_deref(),
        ),
    });
    // A change of a connection's Secret re-checks the connection (its status says whether the
    // new credentials work).
    let (vc_queue, vc_requests) = mpsc::unbounded_channel();
    let (cvc_queue, cvc_requests) = mpsc::unbounded_channel();
    let vc_controller = Controller::for_stream(vc_stream, vc_reader.clone())
        .reconcile_on(tokio_stream_from(vc_requests))
        .graceful_shutdown_on(cancelled(&shutdown))
        .run(
            reconcile_connection::<VendorConnection>,
            connection_error_policy,
            conn_ctx.clone(),
        )
        .for_each(log_result);
    let cvc_controller = Controller::for_stream(cvc_stream, cvc_reader.clone())
        .reconcile_on(tokio_stream_from(cvc_requests))
        .graceful_shutdown_on(cancelled(&shutdown))
        .run(
            reconcile_connection::<ClusterVendorConnection>,
            connection_error_policy,
            conn_ctx,
        )
        .for_each(log_result);
    let secrets_api = scoped_api::<PartialObjectMeta<Secret>>(&client, &settings);
    let connection_queues = ConnectionQueues {
        namespaced: vc_queue,
        cluster: cvc_queue,
    };
    let capabilities =
        follow_capabilities(ctx.clone(), connection_queues.clone(), shutdown.clone());
    let usage_checks = forward_usage(
        usages,
        ctx.connections.clone(),
        connection_queues.clone(),
        shutdown.clone(),
    );
    let secret_watch = watch_secrets(
        &liveness,
        secrets_api,
        ctx.clone(),
        dependents.clone(),
        connection_queues,
        shutdown.clone(),
    );
    let deletions = connections_deleted(deleted, ctx.clone(), dependents, shutdown.clone());

    // Resources are reconciled only once both connection caches are complete: a resource
    // judged against a half-listed cache would be marked ConnectionNotFound for nothing.
    let managed = {
        let readiness = readiness.clone();
        async move {
            let _ = vc_reader.wait_until_ready().await;
            let _ = cvc_reader.wait_until_ready().await;
            readiness.set(true);
            tracing::info!("connection caches synced; reconciling");
            tokio::join!(
                crm,
                erp,
                sso,
                secret_watch,
                deletions,
                claims_rebuilt,
                capabilities,
                usage_checks
            );
        }
    };
    tokio::join!(vc_controller, cvc_controller, managed);
    readiness.set(false);
    Ok(())
}

fn cancelled(
    token: &CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    let token = token.clone();
    async move { token.cancelled().await }
}

/// Watch every object of a kind into a store, passing on only changes that matter: spec
/// (generation), annotations (pause, sync-now) and finalizers; never our own status writes.
fn watched<K>(
    liveness: &Liveness,
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    labels: Option<&str>,
    on_delete: impl Fn(&K) + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut config = watcher::Config::default().any_semantic();
    if let Some(labels) = labels {
        config = config.labels(labels);
    }
    let tracked = liveness.clone();
    watcher(api, config)
        .backoff(liveness.watch_backoff())
        // Whether the watch still works, for /healthz.
        .inspect(move |event| tracked.watch_item(&K::kind(&()), event.is_ok()))
        // Nothing reads these, and with thousands of objects they are most of the cache.
        .modify(|obj| {
            let meta = obj.meta_mut();
            meta.managed_fields = None;
            if let Some(annotations) = meta.annotations.as_mut() {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        })
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(obj)) = event {
                on_delete(obj);
            }
        })
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers),
            Default::default(),
        )
}

fn managed<K: Managed>(
    client: &Client,
    ctx: &Arc<Context>,
    settings: &Settings,
    liveness: &Liveness,
    shutdown: &CancellationToken,
    usage: &mpsc::UnboundedSender<ConnectionKey>,
) -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    Box<dyn Dependents>,
    Store<K>,
) {
    let (reader, writer) = reflector::store::<K>();
    let (queue, requests) = mpsc::unbounded_channel();
    let (takeover, takeovers) = mpsc::unbounded_channel::<(String, String)>();
    ctx.claims.on_takeover(&K::kind(&()), takeover);
    let forget = {
        let ctx = ctx.clone();
        let usage = usage.clone();
        // Whatever its deletion policy, a deleted object's memories and claim go with it.
        move |obj: &K| {
            ctx.forget_object(obj);
            let _ = usage.send(connection_key(obj));
        }
    };
    let usage = usage.clone();
    let stream = watched(
        liveness,
        scoped_api::<K>(client, settings),
        writer,
        settings.label_selector.as_deref(),
        forget,
    )
    .inspect(move |event| {
        if let Ok(obj) = event {
            let _ = usage.send(connection_key(obj));
        }
    });
    let controller = Controller::for_stream(stream, reader.clone())
        .with_config(ControllerConfig::default().concurrency(settings.concurrency))
        .reconcile_on(tokio_stream_from(requests))
        .reconcile_on(
            tokio_stream_from(takeovers)
                .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace)),
        )
        .graceful_shutdown_on(cancelled(shutdown))
        .run(
            {
                // Reconciles that finish are the work queue's progress, for /healthz.
                let liveness = liveness.clone();
                move |obj, ctx| {
                    let working = liveness.working();
                    async move {
                        let result = reconcile::reconcile::<K>(obj, ctx).await;
                        drop(working);
                        result
                    }
                }
            },
            reconcile::error_policy::<K>,
            ctx.clone(),
        )
        .for_each(log_result);
    let census = census(reader.clone(), shutdown.clone());
    (
        async move {
            tokio::join!(controller, census);
        },
        Box::new(KindDependents {
            store: reader.clone(),
            queue,
        }),
        reader,
    )
}

/// How often resources are counted by state.
const CENSUS_INTERVAL: Duration = Duration::from_secs(5);

/// Count the resources of a kind by state from the cache: `progressing` is the backlog still to
/// sync (the operator's real queue depth), `stalled` what waits for a person.
async fn census<K: Managed>(store: Store<K>, shutdown: CancellationToken) {
    let kind = K::kind(&()).to_string();
    let mut tick = tokio::time::interval(CENSUS_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut counts = metrics::ResourceCounts::default();
        for obj in store.state() {
            let sync = obj.status().map(K::sync_status);
            let condition = |t: &str| {
                sync.and_then(|s| conditions::find(&s.conditions, t))
                    .filter(|c| c.status == "True")
            };
            if condition(conditions::STALLED).is_some() {
                counts.stalled += 1;
            } else if condition(conditions::READY)
                .is_some_and(|c| c.observed_generation == obj.meta().generation)
            {
                counts.ready += 1;
            } else {
                counts.progressing += 1;
            }
        }
        metrics::set_resources(&kind, &counts);
    }
}

/// How often connections' learned capabilities are compared with their status.
const CAPABILITIES_INTERVAL: Duration = Duration::from_secs(1);

/// A resource's vendor call may teach a connection's client what its vendor serves (a missing
/// route, the path it serves); the connection's status shows it, so re-check a connection
/// whose record changed.
async fn follow_capabilities(
    ctx: Arc<Context>,
    queues: ConnectionQueues,
    shutdown: CancellationToken,
) {
    let mut seen: HashMap<ConnectionKey, u64> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CAPABILITIES_INTERVAL) => {}
        }
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

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn log_result<K, E: std::fmt::Display, Q: std::fmt::Display>(
    result: Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, Q>>,
) where
    K: Resource,
{
    if let Err(err) = result {
        match &err {
            // Transient failures were already logged by the error policy.
            kube::runtime::controller::Error::ReconcilerFailed(_, _) => {}
            other => tracing::warn!(error = %other, "controller"),
        }
    }
}

/// Where connection reconciles are requested.
#[derive(Clone)]
struct ConnectionQueues {
    namespaced: mpsc::UnboundedSender<ObjectRef<VendorConnection>>,
    cluster: mpsc::UnboundedSender<ObjectRef<ClusterVendorConnection>>,
}

impl ConnectionQueues {
    fn request(&self, key: &ConnectionKey) {
        // A closed queue means the controller stopped (shutdown): nothing left to ask.
        match (key.kind, &key.namespace) {
            (ConnectionKind::VendorConnection, Some(ns)) => {
                let _ = self.namespaced.send(ObjectRef::new(&key.name).within(ns));
            }
            (ConnectionKind::VendorConnection, None) => {}
            (ConnectionKind::ClusterVendorConnection, _) => {
                let _ = self.cluster.send(ObjectRef::new(&key.name));
            }
        }
    }
}

/// One metadata-only watch of Secrets: nothing about unrelated Secrets is kept, and a change to
/// a referenced one queues its dependents (drops the client of a connection that uses it and
/// re-checks that connection).
async fn watch_secrets(
    liveness: &Liveness,
    api: Api<PartialObjectMeta<Secret>>,
    ctx: Arc<Context>,
    dependents: Arc<Vec<Box<dyn Dependents>>>,
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
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.next() => event,
        };
        let Some(event) = event else { return };
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
        let connections = ctx.connections.referencing_secret(&namespace, &name);
        for key in &connections {
            ctx.clients.invalidate(key);
            connections_queue.request(key);
        }
        for deps in dependents.iter() {
            deps.secret_changed(&namespace, &name, &connections);
        }
    }
}

/// A deleted connection: its client goes, and the resources that used it are checked again
/// (they say ConnectionNotFound until it is back).
async fn connections_deleted(
    mut deleted: mpsc::UnboundedReceiver<ConnectionKey>,
    ctx: Arc<Context>,
    dependents: Arc<Vec<Box<dyn Dependents>>>,
    shutdown: CancellationToken,
) {
    loop {
        let key = tokio::select! {
            _ = shutdown.cancelled() => return,
            key = deleted.recv() => key,
        };
        let Some(key) = key else { return };
        ctx.clients.remove(&key);
        connection_changed(&dependents, &key);
    }
}

/// Pass resources' connection keys on to the connection reconcile (see `hold_while_needed`).
async fn forward_usage(
    mut usages: mpsc::UnboundedReceiver<ConnectionKey>,
    connections: ConnectionStores,
    queues: ConnectionQueues,
    shutdown: CancellationToken,
) {
    loop {
        let key = tokio::select! {
            _ = shutdown.cancelled() => return,
            key = usages.recv() => key,
        };
        let Some(key) = key else { return };
        // A connection that does not exist holds nothing (and the controller would warn).
        let exists = match (key.kind, &key.namespace) {
            (ConnectionKind::VendorConnection, Some(ns)) => connections
                .namespaced
                .get(&ObjectRef::new(&key.name).within(ns))
                .is_some(),
            (ConnectionKind::VendorConnection, None) => false,
            (ConnectionKind::ClusterVendorConnection, _) => connections
                .cluster
                .get(&ObjectRef::new(&key.name))
                .is_some(),
        };
        if exists {
            queues.request(&key);
        }
    }
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
    let secrets: Vec<(String, String)> = secret_names(conn.endpoint(), own)
        .into_iter()
        .filter(|(namespace, _)| own.is_none_or(|own| own == namespace))
        .collect();
    let mut held_versions = ctx.held.lock().await;
    if in_use {
        // Done for this spec already (its Secrets are held whenever the connection is): no
        // API call on each of the many resource events that lead here.
        if held && held_versions.get(&key) == Some(&version) {
            return Ok(());
        }
        // Secrets first: a connection marked in use always has its credentials held.
        for (namespace, secret) in &secrets {
            in_use::hold_secret(client, namespace, secret, finalizer, true).await?;
        }
        in_use::hold(&api, &name, finalizer, true).await?;
        held_versions.insert(key, version);
    } else {
        held_versions.remove(&key);
        // Its Secrets were let go before the connection was.
        if !held {
            return Ok(());
        }
        for (namespace, secret) in &secrets {
            let shared_and_needed = ctx
                .base
                .connections
                .referencing_secret(namespace, secret)
                .iter()
                .any(&needed);
            if !shared_and_needed {
                in_use::hold_secret(client, namespace, secret, finalizer, false).await?;
            }
        }
        in_use::hold(&api, &name, finalizer, false).await?;
    }
    // Here only when the hold changed or the spec did: a spec edited while in use may have
    // left Secrets it no longer names on hold.
    let mut namespaces: std::collections::BTreeSet<String> = secrets
        .into_iter()
        .map(|(namespace, _)| namespace)
        .collect();
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
                    .referencing_secret(&namespace, &secret_name)
                    .iter()
                    .any(&needed)
            {
                in_use::hold_secret(client, &namespace, &secret_name, finalizer, false).await?;
            }
        }
    }
    Ok(())
}

/// What connection reconciles share.
struct ConnectionContext {
    base: Arc<Context>,
    dependents: Arc<Vec<Box<dyn Dependents>>>,
    /// Connections whose Secrets this process put on hold, at the (uid, generation) it did:
    /// a spec change may name other Secrets. Also serializes the holds, so two reconciles
    /// never undo each other.
    held: tokio::sync::Mutex<HashMap<ConnectionKey, ConnectionVersion>>,
    /// This Deployment's in-use finalizer (one per shard).
    in_use_finalizer: String,
}

/// A connection object's uid and generation.
type ConnectionVersion = (Option<String>, Option<i64>);

/// The two connection kinds, for their shared reconciler.
trait ConnectionResource:
    Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    fn endpoint(&self) -> &VendorEndpoint;
    fn key(&self) -> ConnectionKey;
    fn scope(&self) -> ConnectionScope;
    fn current_status(&self) -> Option<&crate::api::ConnectionStatus>;
    fn api(&self, client: Client) -> Api<Self>;
}

impl ConnectionResource for VendorConnection {
    fn endpoint(&self) -> &VendorEndpoint {
        &self.spec.endpoint
    }
    fn key(&self) -> ConnectionKey {
        ConnectionKey::new(
            ConnectionKind::VendorConnection,
            &self.name_any(),
            &self.namespace().unwrap_or_default(),
        )
    }
    fn scope(&self) -> ConnectionScope {
        ConnectionScope::Namespaced(self.namespace().unwrap_or_default())
    }
    fn current_status(&self) -> Option<&crate::api::ConnectionStatus> {
        self.status.as_ref()
    }
    fn api(&self, client: Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl ConnectionResource for ClusterVendorConnection {
    fn endpoint(&self) -> &VendorEndpoint {
        &self.spec.endpoint
    }
    fn key(&self) -> ConnectionKey {
        ConnectionKey::new(
            ConnectionKind::ClusterVendorConnection,
            &self.name_any(),
            "",
        )
    }
    fn scope(&self) -> ConnectionScope {
        ConnectionScope::Cluster
    }
    fn current_status(&self) -> Option<&crate::api::ConnectionStatus> {
        self.status.as_ref()
    }
    fn api(&self, client: Client) -> Api<Self> {
        Api::all(client)
    }
}

/// A connection is Ready when its settings and Secrets make a client; whether the vendor
/// answers shows on the resources that use it. A change of its client or health re-queues
/// those resources. One being deleted (held by someone else's finalizer) stays usable until it
/// is gone; `connections_deleted` handles that.
async fn reconcile_connection<C: ConnectionResource>(
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
    let resolved = ResolvedConnection {
        key: key.clone(),
        uid: conn.meta().uid.clone(),
        generation: conn.meta().generation,
        endpoint: conn.endpoint().clone(),
        scope: conn.scope(),
    };
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

fn connection_error_policy<C: ConnectionResource>(
    _conn: Arc<C>,
    _err: &ReconcileError,
    _ctx: Arc<ConnectionContext>,
) -> Action {
    Action::requeue(Duration::from_secs(10))
}
