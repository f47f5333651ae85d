//! Wiring only: one kube-runtime Controller per managed kind on the generic reconciler, one per
//! connection kind on the connection reconciler (`reconcile::connection`), the reflector stores, and
//! the tasks of `triggers` (Secret watch, deletions, usage, capabilities). What
//! each of them does lives in its own module.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{
    ClusterVendorConnection, CrmUserCredential, ErpIdentity, SsoAppCredential, VendorConnection,
};
use crate::changes::only_changes;
use crate::connections::dependencies::{
    AllDependents, Dependents, KindDependents, connection_of, holds_cleanup_finalizer,
};
use crate::connections::resolve::ConnectionResource;
use crate::connections::{ClientCache, ConnectionKey, ConnectionStores};
use crate::liveness::Liveness;
use crate::managed::Managed;
use crate::metrics;
use crate::reconcile::backoff::Backoff;
use crate::reconcile::conditions;
use crate::reconcile::connection::{
    ConnectionContext, connection_error_policy, reconcile_connection,
};
use crate::reconcile::deferred_status::DeferredStatus;
use crate::reconcile::events::EventPublisher;
use crate::reconcile::fingerprint::{FingerprintKey, FingerprintKeyError};
use crate::reconcile::in_use;
use crate::reconcile::{self, Context};
use crate::secrets::SecretReader;
use crate::server::Readiness;
use crate::sync::LockOrRecover;
use crate::triggers::{
    ConnectionQueues, connections_deleted, follow_capabilities, forward_usage, watch_secrets,
};
use crate::vendors::http::TransportPolicy;
use crate::work_queue::WorkQueue;

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

/// Run the operator until `stop` is cancelled. While this replica may still write then (its
/// fence is open: it was asked to stop, it did not lose the Lease), it first writes the status
/// it owes ([`DeferredStatus::pay_all`], for at most [`OWED_WRITES_ON_STOP`]).
pub async fn run(
    client: Client,
    settings: Settings,
    readiness: Readiness,
    stop: CancellationToken,
) -> Result<(), RunError> {
    // What stops the controllers and tasks: `stop`, once the owed writes are paid.
    let shutdown = CancellationToken::new();
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
        // Busy or quiet as the managed reconciles that liveness counts.
        deferred_status: Arc::new(DeferredStatus::new(liveness.clone())),
        departed: Default::default(),
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
    let dependents: AllDependents = Arc::new(vec![crm_deps, erp_deps, sso_deps]);

    let conn_ctx = Arc::new(ConnectionContext::new(
        ctx.clone(),
        dependents.clone(),
        in_use::finalizer_for_shard(
            settings.watch_namespace.as_deref(),
            settings.label_selector.as_deref(),
        ),
    ));
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
    let owed_status = ctx.deferred_status.clone().pay_when_due(shutdown.clone());
    let stopping = tokio::spawn(pay_owed_then_halt(
        stop,
        ctx.deferred_status.clone(),
        settings.transport.fence.clone(),
        shutdown.clone(),
    ));

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
                usage_checks,
                owed_status
            );
        }
    };
    tokio::join!(vc_controller, cvc_controller, managed);
    stopping.abort();
    readiness.set(false);
    Ok(())
}

/// The longest a stopping operator spends writing the status it owes: within any pod's
/// termination grace (30 s by default), and as long as a write is ever owed.
pub const OWED_WRITES_ON_STOP: Duration = crate::reconcile::deferred_status::MAX_DELAY;

/// On `stop`: pay the owed status writes while `fence` lets this replica write, then `halt`.
async fn pay_owed_then_halt(
    stop: CancellationToken,
    owed: Arc<DeferredStatus>,
    fence: crate::fence::Fence,
    halt: CancellationToken,
) {
    stop.cancelled().await;
    if fence.is_open() {
        let count = owed.owed();
        if count > 0 {
            tracing::info!(
                owed = count,
                "stopping: writing the status writes owed first"
            );
        }
        let left = owed.pay_all(OWED_WRITES_ON_STOP, &fence).await;
        if left > 0 {
            tracing::warn!(
                left,
                "stopped with status writes still owed: the next leader sends those values once more"
            );
        }
    }
    halt.cancel();
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
    let events = watcher(api, config)
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
        });
    only_changes(
        events,
        predicates::generation
            .combine(predicates::annotations)
            .combine(predicates::finalizers),
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
    let (owed, owed_writes) = mpsc::unbounded_channel::<(String, String)>();
    ctx.deferred_status.on_due(&K::kind(&()), owed);
    // Only a resource holding the cleanup finalizer makes its connection in use: the resources
    // that hold it (by uid), so that losing it re-checks the connection too. Resources that
    // never hold it (Orphan, the default) re-check nothing, however many come and go.
    let holding: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    let forget = {
        let ctx = ctx.clone();
        let usage = usage.clone();
        let holding = holding.clone();
        // Whatever its deletion policy, a deleted object's memories and claim go with it.
        move |obj: &K| {
            ctx.forget_object(obj);
            let uid = obj.uid().unwrap_or_default();
            if holding.lock_or_recover().remove(&uid) || holds_cleanup_finalizer(obj) {
                let _ = usage.send(connection_of(obj));
            }
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
            let uid = obj.uid().unwrap_or_default();
            let holds = holds_cleanup_finalizer(obj);
            let mut holding = holding.lock_or_recover();
            let held = if holds {
                !holding.insert(uid)
            } else {
                holding.remove(&uid)
            };
            if holds || held {
                let _ = usage.send(connection_of(obj));
            }
        }
    });
    // The work queue gives out the turns, in the order they were asked for; kube's own limit
    // would take waiting requests in hash order (see `work_queue`). Everything that asks for a
    // reconcile asks the queue, and kube runs what the queue hands it (and its own timers).
    let (turns, handed) = WorkQueue::<ObjectRef<K>>::new(settings.concurrency.into());
    let asks = {
        let turns = turns.clone();
        let watch = stream.filter_map(|event| {
            std::future::ready(match event {
                Ok(obj) => Some(ObjectRef::from_obj(&obj)),
                Err(err) => {
                    tracing::warn!(kind = %K::kind(&()), error = %err, "watch");
                    None
                }
            })
        });
        // A Secret or connection changed, a record handed over, or a status write owed since
        // a burst and due now.
        let others = futures::stream::select(
            tokio_stream_from(requests),
            futures::stream::select(tokio_stream_from(takeovers), tokio_stream_from(owed_writes))
                .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace)),
        );
        futures::stream::select(watch, others)
            .take_until(cancelled(shutdown))
            .for_each(move |object| {
                turns.ask(object);
                std::future::ready(())
            })
    };
    let controller = Controller::for_stream(
        futures::stream::pending::<Result<K, watcher::Error>>(),
        reader.clone(),
    )
    .with_config(ControllerConfig::default().concurrency(0))
    .reconcile_on(tokio_stream_from(handed))
    .graceful_shutdown_on(cancelled(shutdown))
    .run(
        {
            // Reconciles that finish are the work queue's progress, for /healthz.
            let liveness = liveness.clone();
            let turns = turns.clone();
            move |obj, ctx| {
                let turn = turns.turn(ObjectRef::from_obj(&*obj));
                let working = turn.is_some().then(|| liveness.working());
                async move {
                    // Not its turn yet: it waits in line and comes back when it is.
                    let Some(_turn) = turn else {
                        return Ok(Action::await_change());
                    };
                    let result = reconcile::reconcile::<K>(obj, ctx).await;
                    drop(working);
                    result
                }
            }
        },
        reconcile::error_policy::<K>,
        ctx.clone(),
    )
    .for_each({
        let turns = turns.clone();
        move |result| {
            if let Err(kube::runtime::controller::Error::ObjectNotFound(gone)) = &result {
                turns.gone(&typed_ref(gone));
            }
            log_result(result)
        }
    });
    let census = census(reader.clone(), turns, ctx.clone(), shutdown.clone());
    (
        async move {
            tokio::join!(asks, controller, census);
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

/// Memories of applied states that the cache's statuses record, and older than this, are let
/// go at each count: see `ObjectMemory::forget_recorded`.
const RECORDED_GRACE: Duration = Duration::from_secs(10);

/// Count the resources of a kind by state from the cache: `progressing` is the backlog still to
/// sync (the operator's real queue depth), `stalled` what waits for a person. Then let go of
/// what the cache's statuses now record. Also how many reconciles wait for a turn.
async fn census<K: Managed>(
    store: Store<K>,
    turns: Arc<WorkQueue<ObjectRef<K>>>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let kind = K::kind(&()).to_string();
    let mut tick = tokio::time::interval(CENSUS_INTERVAL);
    while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
        let objects = store.state();
        let settled_before = conditions::now().0 - RECORDED_GRACE;
        ctx.memory.forget_recorded(
            objects.iter().filter_map(|obj| {
                Some((obj.meta().uid.as_deref()?, K::sync_status(obj.status()?)))
            }),
            &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(settled_before),
        );
        let mut counts = metrics::ResourceCounts::default();
        for obj in objects {
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
        metrics::set_waiting(&kind, turns.waiting());
    }
}

/// kube names an object it did not find without its kind; the kind is known here.
fn typed_ref<K: Resource<DynamicType = ()>>(gone: &ObjectRef<DynamicObject>) -> ObjectRef<K> {
    let typed = ObjectRef::new(&gone.name);
    match &gone.namespace {
        Some(namespace) => typed.within(namespace),
        None => typed,
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
            // A reconcile whose turn came after its object was deleted (asked for by its
            // watch, a status write owed since a burst, a takeover, a Secret or connection
            // change): nothing is left to do, and nothing is wrong.
            kube::runtime::controller::Error::ObjectNotFound(gone) => {
                tracing::debug!(object = %gone, "asked to reconcile an object already gone");
            }
            other => tracing::warn!(error = %other, "controller"),
        }
    }
}
