//! Shared integration-test environment: a real kube-apiserver + etcd (credsync_testkit), the CRDs,
//! the operator running in-process with short intervals, and the fixtures every test file would
//! otherwise write again (waiting for a Ready reason, the common kinds' builders).
//!
//! Starting a control plane costs seconds of both cores, so a test binary's tests share one
//! ([`TestEnv::shared`]): each test gets its own client, namespace and operator, the operator
//! serving that namespace only (`--watch-namespace`) with an operator namespace of its own (its
//! fingerprint key), so that tests running at once never see each other's objects. A test that
//! stops the API server, reads its audit log, uses cluster-scoped objects (ClusterVendorConnections,
//! webhooks, Leases in the shared operator namespace) or an operator over every namespace takes
//! a control plane of its own ([`TestEnv::dedicated`]) and says why.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use credsync::controller::{self, Settings};
use credsync::server::Readiness;
use credsync::vendors::http::TransportPolicy;
use credsync_testkit::{ControlPlane, objects};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A namespaced kind the fixtures can read: what every fixture over "any kind" asks of it.
pub trait Namespaced:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned
{
}

impl<K> Namespaced for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
{
}

/// The operator namespace of a test with a control plane of its own.
pub const OPERATOR_NAMESPACE: &str = "credsync-system";

/// How long a test waits for the operator to reach a state, unless it says otherwise.
pub const WAIT: Duration = Duration::from_secs(30);

/// The control plane a test runs against: its own, or the one its test binary shares.
pub enum Plane {
    Dedicated(Box<ControlPlane>),
    Shared(&'static ControlPlane),
}

impl Deref for Plane {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        match self {
            Plane::Dedicated(cp) => cp,
            Plane::Shared(cp) => cp,
        }
    }
}

/// Stopping or changing the control plane (restarts, kube-controller-manager) would change it
/// under every other test of the binary: only a dedicated one may.
impl DerefMut for Plane {
    fn deref_mut(&mut self) -> &mut ControlPlane {
        match self {
            Plane::Dedicated(cp) => cp,
            Plane::Shared(_) => {
                panic!("this test shares its control plane; use TestEnv::dedicated to change it")
            }
        }
    }
}

pub struct TestEnv {
    pub cp: Plane,
    pub client: Client,
    pub settings: Settings,
    /// What /readyz and /healthz of the in-process operator (the last one started) answer.
    pub readiness: Readiness,
    operator: Option<(CancellationToken, JoinHandle<()>)>,
}

/// Settings for tests: plain http to the simulators, quick backoff.
pub fn test_settings() -> Settings {
    Settings {
        operator_namespace: OPERATOR_NAMESPACE.into(),
        transport: TransportPolicy {
            allow_http: true,
            allow_private_addresses: true,
            ..TransportPolicy::default()
        },
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(5),
        ..Settings::default()
    }
}

/// Namespaces taken by this binary's tests on the shared control plane: one test each.
static CLAIMED_NAMESPACES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

impl TestEnv {
    /// The binary's shared control plane and an operator serving `namespace` (created here, and
    /// no other test's) with test settings.
    pub async fn shared(namespace: &str) -> TestEnv {
        Self::shared_with(namespace, |_| {}).await
    }

    /// As [`TestEnv::shared`], the operator with `tweak`ed settings.
    pub async fn shared_with(namespace: &str, tweak: impl FnOnce(&mut Settings)) -> TestEnv {
        let newly_claimed = CLAIMED_NAMESPACES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(namespace.to_string());
        assert!(
            newly_claimed,
            "namespace {namespace} is already another test's in this binary"
        );
        credsync::telemetry::init("info", credsync::telemetry::LogFormat::Pretty);
        let cp = ControlPlane::shared()
            .await
            .expect("control plane must start (see KUBEBUILDER_ASSETS / hack/build-tools.sh)");
        let mut settings = test_settings();
        settings.watch_namespace = Some(namespace.into());
        settings.operator_namespace = format!("{namespace}-operator");
        tweak(&mut settings);
        let mut env = Self::on(Plane::Shared(cp), settings).await;
        env.namespace(namespace).await;
        env.start_operator();
        env
    }

    /// A control plane of this test's own and an operator over every namespace.
    pub async fn dedicated() -> TestEnv {
        Self::dedicated_with(|_| {}).await
    }

    /// As [`TestEnv::dedicated`], the operator with `tweak`ed settings.
    pub async fn dedicated_with(tweak: impl FnOnce(&mut Settings)) -> TestEnv {
        let mut env = Self::dedicated_bare().await;
        tweak(&mut env.settings);
        env.start_operator();
        env
    }

    /// A control plane of this test's own with the CRDs only; operators are started by the test.
    pub async fn dedicated_bare() -> TestEnv {
        credsync::telemetry::init("info", credsync::telemetry::LogFormat::Pretty);
        let cp = ControlPlane::start()
            .await
            .expect("control plane must start (see KUBEBUILDER_ASSETS / hack/build-tools.sh)");
        Self::on(Plane::Dedicated(Box::new(cp)), test_settings()).await
    }

    /// The CRDs (applied again on a shared plane: cheap, and idempotent) and the operator
    /// namespace on `cp`.
    async fn on(cp: Plane, settings: Settings) -> TestEnv {
        eprintln!(
            "integration test against kube-apiserver {}",
            cp.server_version()
        );
        cp.install_crds(&credsync::api::crds())
            .await
            .expect("install CRDs");
        let client = cp.client();
        let env = TestEnv {
            cp,
            client,
            settings,
            readiness: Readiness::default(),
            operator: None,
        };
        env.namespace(&env.settings.operator_namespace).await;
        env
    }

    /// A client acting as `user` in `groups` (impersonated by the admin), to test what RBAC
    /// lets them do.
    pub fn impersonating(&self, user: &str, groups: &[&str]) -> Client {
        let mut config = self.cp.config().clone();
        config.auth_info.impersonate = Some(user.into());
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
        Client::try_from(config).expect("impersonating client")
    }

    /// The finalizer by which this test's operator holds a connection or Secret in use (its
    /// name depends on the namespace and labels the operator serves).
    pub fn in_use_finalizer(&self) -> String {
        credsync::reconcile::in_use::finalizer_for_shard(
            self.settings.watch_namespace.as_deref(),
            self.settings.label_selector.as_deref(),
        )
    }

    /// Start (again) the in-process operator.
    pub fn start_operator(&mut self) {
        self.operator = Some(self.spawn_operator(None));
    }

    /// Spawn an in-process operator, optionally under leader election; cancel the token to
    /// stop it.
    pub fn spawn_operator(
        &self,
        election: Option<credsync::leader::LeaderElection>,
    ) -> (CancellationToken, JoinHandle<()>) {
        self.spawn_operator_as(self.client.clone(), election)
    }

    /// Spawn an in-process operator that talks to the API server through `client` (e.g. one
    /// impersonating the Helm chart's ServiceAccount).
    pub fn spawn_operator_as(
        &self,
        client: Client,
        election: Option<credsync::leader::LeaderElection>,
    ) -> (CancellationToken, JoinHandle<()>) {
        let token = CancellationToken::new();
        let settings = self.settings.clone();
        let readiness = self.readiness.clone();
        let stop = token.clone();
        let task = tokio::spawn(async move {
            let result = match election {
                None => controller::run(client, settings, readiness, stop)
                    .await
                    .map_err(|e| e.to_string()),
                Some(election) => {
                    credsync::leader::run_controllers_while_leading(
                        client, &election, settings, readiness, stop,
                    )
                    .await
                }
            };
            if let Err(e) = result {
                panic!("operator failed: {e}");
            }
        });
        (token, task)
    }

    /// Kill the in-process operator at once, as a crash would: nothing in flight completes.
    pub async fn kill_operator(&mut self) {
        if let Some((_, task)) = self.operator.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stop the in-process operator and wait until it has.
    pub async fn stop_operator(&mut self) {
        if let Some((token, task)) = self.operator.take() {
            token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// Create a namespace (idempotent).
    pub async fn namespace(&self, name: &str) {
        self.namespace_with_labels(name, BTreeMap::new()).await;
    }

    pub async fn namespace_with_labels(&self, name: &str, labels: BTreeMap<String, String>) {
        if let Err(e) = objects::ensure_namespace(&self.client, name, labels).await {
            panic!("create namespace {name}: {e}");
        }
    }

    /// Create or replace a Secret with string data.
    pub async fn secret(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        self.apply_in(&api, name, &objects::string_secret(name, data))
            .await;
    }

    /// Server-side apply a namespaced object.
    pub async fn apply<K>(&self, namespace: &str, obj: &K) -> K
    where
        K: Namespaced + Serialize,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        self.apply_in(&api, &obj.name_any(), obj).await
    }

    pub async fn apply_in<K>(&self, api: &Api<K>, name: &str, obj: &K) -> K
    where
        K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    {
        let mut value = serde_json::to_value(obj).expect("serialize");
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), K::api_version(&()).into());
            map.insert("kind".into(), K::kind(&()).into());
            map.remove("status");
        }
        api.patch(
            name,
            &PatchParams::apply("credsync-tests").force(),
            &Patch::Apply(&value),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", K::kind(&())))
    }

    /// Delete a namespaced object.
    pub async fn delete<K>(&self, namespace: &str, name: &str)
    where
        K: Namespaced,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let _ = api.delete(name, &DeleteParams::default()).await;
    }

    /// Wait until `ready` holds for the object (polling the API server), or panic after `timeout`.
    pub async fn wait_for<K>(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        ready: impl Fn(&K) -> bool,
    ) -> K
    where
        K: Namespaced,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(obj) = api.get(name).await {
                if ready(&obj) {
                    return obj;
                }
                last = Some(obj);
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {} {namespace}/{name}; last seen: {last:#?}",
                    K::kind(&())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the object is gone.
    pub async fn wait_gone<K>(&self, namespace: &str, name: &str, timeout: Duration)
    where
        K: Namespaced,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let deadline = tokio::time::Instant::now() + timeout;
        while api.get_opt(name).await.ok().flatten().is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} {namespace}/{name} still exists after {timeout:?}",
                K::kind(&())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        self.stop_operator().await;
    }
}

/// Merge `labels` into the object's labels: a metadata-only change (admission webhooks over
/// references must let it through).
pub async fn label<K: Namespaced>(
    api: &Api<K>,
    name: &str,
    labels: serde_json::Value,
) -> Result<K, kube::Error> {
    let patch = serde_json::json!({"metadata": {"labels": labels}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
}

/// Whether the operator holds the object for its vendor-side cleanup (deletionPolicy Delete).
pub fn holds_cleanup_finalizer<K: Resource>(o: &K) -> bool {
    o.finalizers().iter().any(|f| f == "credsync.io/cleanup")
}

/// The condition of `type_` in a status's conditions.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `type_` is "True" and describes `generation`.
pub fn is_true(conditions: &[Condition], type_: &str, generation: Option<i64>) -> bool {
    condition(conditions, type_)
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
}

/// Wait until `count()` reaches `n`, or panic.
pub async fn wait_count(what: &str, n: usize, timeout: Duration, count: impl Fn() -> usize) {
    let deadline = tokio::time::Instant::now() + timeout;
    while count() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {n} {what}, saw {}",
            count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A credsync object of kind `K` named `name` with `spec` (JSON, as a manifest would say it).
pub fn object<K: DeserializeOwned + Resource<DynamicType = ()>>(
    name: &str,
    spec: serde_json::Value,
) -> K {
    serde_json::from_value(serde_json::json!({
        "apiVersion": K::api_version(&()), "kind": K::kind(&()), "metadata": {"name": name},
        "spec": spec
    }))
    .unwrap_or_else(|e| panic!("{} {name}: {e}", K::kind(&())))
}

/// A VendorConnection with `spec` (a vendor block and any settings).
pub fn vendor_connection(name: &str, spec: serde_json::Value) -> credsync::api::VendorConnection {
    object(name, spec)
}

/// A HelloID VendorConnection whose API key Secret reference is `api_key_ref` (JSON).
pub fn helloid_connection(
    name: &str,
    url: &str,
    api_key_ref: serde_json::Value,
) -> credsync::api::VendorConnection {
    vendor_connection(
        name,
        serde_json::json!({"helloId": {"url": url, "apiKeySecretRef": api_key_ref}}),
    )
}

/// The CRM connections of the CRM tests: `so-rest` and `so-soap` to the SuperOffice simulator
/// at `superoffice_url` (ticket from Secret `secret` key `ticket`) and `oracle` to the Oracle one
/// at `oracle_url` (its login from `secret`'s username and password).
pub async fn crm_connections(
    env: &TestEnv,
    ns: &str,
    secret: &str,
    superoffice_url: &str,
    oracle_url: &str,
) {
    let ticket = serde_json::json!({"ticketSecretRef": {"name": secret, "key": "ticket"}});
    for (name, spec) in [
        (
            "so-rest",
            serde_json::json!({"superOffice": {"url": superoffice_url, "api": "Rest", "auth": ticket}}),
        ),
        (
            "so-soap",
            serde_json::json!({"superOffice": {"url": superoffice_url, "api": "Soap", "auth": ticket}}),
        ),
        (
            "oracle",
            serde_json::json!({"oracleCrmOnDemand": {"url": oracle_url, "credentialsSecretRef": {"name": secret}}}),
        ),
    ] {
        env.apply(ns, &vendor_connection(name, spec)).await;
    }
}

/// The admission webhook, served in-process on a loopback port.
pub struct ServedWebhook {
    pub port: u16,
    /// Cancel to stop serving.
    pub stop: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Serve the admission webhook with `tls` on a loopback port, asking the API server through
/// `asker` whether a user may read a Secret.
pub async fn serve_webhook(
    tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    asker: Client,
) -> ServedWebhook {
    use credsync::webhook::{Server, SubjectAccessReviews};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Server::new(
        listener,
        tls,
        std::sync::Arc::new(SubjectAccessReviews::new(asker)),
    );
    let port = server.local_addr().expect("address").port();
    let stop = CancellationToken::new();
    let task = {
        let stop = stop.clone();
        tokio::spawn(server.run(async move { stop.cancelled().await }))
    };
    ServedWebhook { port, stop, task }
}

/// A serving certificate for 127.0.0.1 from a throwaway CA, for webhooks served in-process.
pub struct LoopbackCertificate {
    pub cert_pem: String,
    pub key_pem: String,
    /// The CA's certificate: what the API server is told to trust (a caBundle).
    pub ca_pem: String,
}

pub fn loopback_certificate() -> LoopbackCertificate {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .and_then(|p| p.signed_by(&key, &ca))
        .expect("serving certificate");
    LoopbackCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca.pem(),
    }
}

pub const TEST_USER_GUID: &str = "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f";
pub const TEST_APP_GUID: &str = "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f";

/// An SsoAppCredential (deletionPolicy Delete) with a plain UserName and a Password from
/// `secret`/`key`, using the named connection of `connection_kind`. Its credential set is named
/// after the resource, so that resources of different names manage different vendor records
/// (one record has one owner: see `reconcile::claims`).
pub fn sso_credential(
    name: &str,
    connection_kind: &str,
    connection: &str,
    secret: &str,
    key: &str,
) -> credsync::api::SsoAppCredential {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "SsoAppCredential", "metadata": {"name": name},
        "spec": {
            "connectionRef": {"kind": connection_kind, "name": connection},
            "userGuid": TEST_USER_GUID, "applicationGuid": TEST_APP_GUID, "credSetName": name,
            "credentials": [
                {"function": "UserName", "value": name},
                {"function": "Password", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            ],
            "deletionPolicy": "Delete"
        }
    }))
    .expect("credential")
}

/// The kinds whose status carries credsync's kstatus conditions, for fixtures over all of them.
pub trait Conditioned: Namespaced {
    /// The status conditions (none before the first status).
    fn conditions(&self) -> &[Condition];
}

macro_rules! conditioned {
    ($($kind:ty),*) => {$(
        impl Conditioned for $kind {
            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map_or(&[][..], |s| s.sync.conditions.as_slice())
            }
        }
    )*};
}
conditioned!(
    credsync::api::SsoAppCredential,
    credsync::api::CrmUserCredential,
    credsync::api::ErpIdentity,
    credsync::api::VendorConnection
);

/// The object's Ready condition.
pub fn ready<K: Conditioned>(o: &K) -> Option<&Condition> {
    condition(o.conditions(), "Ready")
}

/// The reason of the object's Ready condition, whichever generation it describes.
pub fn ready_reason<K: Conditioned>(o: &K) -> Option<String> {
    ready(o).map(|c| c.reason.clone())
}

/// The reason of the object's Ready condition once it describes the current generation.
pub fn current_reason<K: Conditioned>(o: &K) -> Option<String> {
    ready(o)
        .filter(|c| c.observed_generation == o.meta().generation)
        .map(|c| c.reason.clone())
}

/// The message of the object's condition `type_`, which must be there.
pub fn message_of<K: Conditioned>(o: &K, type_: &str) -> String {
    condition(o.conditions(), type_)
        .unwrap_or_else(|| panic!("no {type_} condition: {:?}", o.conditions()))
        .message
        .clone()
}

/// The message of the object's Ready condition ("" without one).
pub fn ready_message<K: Conditioned>(o: &K) -> String {
    ready(o).map(|c| c.message.clone()).unwrap_or_default()
}

impl TestEnv {
    /// Wait (up to [`WAIT`]) until the object's Ready reason is `reason`, for any generation.
    pub async fn wait_reason<K: Conditioned>(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
    ) -> K {
        self.wait_reason_read(namespace, name, reason, ready_reason)
            .await
    }

    /// Wait (up to [`WAIT`]) until the object's Ready reason is `reason` for its current
    /// generation.
    pub async fn wait_current_reason<K: Conditioned>(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
    ) -> K {
        self.wait_reason_read(namespace, name, reason, current_reason)
            .await
    }

    async fn wait_reason_read<K: Conditioned>(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        read: fn(&K) -> Option<String>,
    ) -> K {
        self.wait_for::<K>(namespace, name, WAIT, |o| {
            read(o).as_deref() == Some(reason)
        })
        .await
    }

    /// In `ns`: Secret `api` holding HelloID API key `key` and `secret`, and VendorConnection
    /// `helloid` to `url` that logs in with it.
    pub async fn helloid_tenant(&self, ns: &str, url: &str, key: &str, secret: &str) {
        self.secret(ns, "api", &[("key", key), ("secret", secret)])
            .await;
        let api_key = serde_json::json!({"name": "api"});
        self.apply(ns, &helloid_connection("helloid", url, api_key))
            .await;
    }

    /// Apply [`sso_credential`] `name` over VendorConnection `connection`, its Password from
    /// Secret `pw` key `password`.
    pub async fn apply_sso(
        &self,
        ns: &str,
        name: &str,
        connection: &str,
    ) -> credsync::api::SsoAppCredential {
        self.apply(
            ns,
            &sso_credential(name, "VendorConnection", connection, "pw", "password"),
        )
        .await
    }

    /// Delete the object and wait until the deletion is blocked (its vendor offers no delete):
    /// the message says `why` and names the way out, and the cleanup finalizer stays.
    pub async fn deletion_blocked<K: Conditioned>(
        &self,
        namespace: &str,
        name: &str,
        why: &str,
    ) -> K {
        self.delete::<K>(namespace, name).await;
        let blocked: K = self
            .wait_current_reason(namespace, name, "DeletionBlocked")
            .await;
        let message = ready_message(&blocked);
        assert!(
            message.contains(why) && message.contains("deletionPolicy: Orphan"),
            "{name}: {message}"
        );
        assert!(
            holds_cleanup_finalizer(&blocked),
            "{name}: the finalizer stays"
        );
        blocked
    }
}
