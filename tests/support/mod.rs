//! Shared integration-test environment: a real kube-apiserver + etcd (credsync_testkit), the CRDs,
//! and the operator running in-process with short intervals.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use credsync::controller::{self, Settings};
use credsync::server::Readiness;
use credsync::vendors::http::TransportPolicy;
use credsync_testkit::ControlPlane;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const OPERATOR_NAMESPACE: &str = "credsync-system";

pub struct TestEnv {
    pub cp: ControlPlane,
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

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::start_with(|_| {}).await
    }

    /// Start the control plane and the operator with `tweak`ed settings.
    pub async fn start_with(tweak: impl FnOnce(&mut Settings)) -> TestEnv {
        let mut env = Self::start_bare().await;
        tweak(&mut env.settings);
        env.start_operator();
        env
    }

    /// Start the control plane and CRDs only; operators are started by the test.
    pub async fn start_bare() -> TestEnv {
        credsync::telemetry::init("info", credsync::telemetry::LogFormat::Pretty);
        let cp = ControlPlane::start()
            .await
            .expect("control plane must start (see KUBEBUILDER_ASSETS / hack/build-tools.sh)");
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
            settings: test_settings(),
            readiness: Readiness::default(),
            operator: None,
        };
        env.namespace(OPERATOR_NAMESPACE).await;
        env
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
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create namespace {name}: {e}"),
        }
    }

    /// Create or replace a Secret with string data.
    pub async fn secret(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            string_data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Secret::default()
        };
        self.apply_in(&api, name, &secret).await;
    }

    /// Server-side apply a namespaced object.
    pub async fn apply<K>(&self, namespace: &str, obj: &K) -> K
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + Serialize
            + DeserializeOwned,
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
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + DeserializeOwned,
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
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + DeserializeOwned,
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
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + DeserializeOwned,
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

/// A HelloID VendorConnection whose API key Secret reference is `api_key_ref` (JSON).
pub fn helloid_connection(
    name: &str,
    url: &str,
    api_key_ref: serde_json::Value,
) -> credsync::api::VendorConnection {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "VendorConnection", "metadata": {"name": name},
        "spec": {"helloId": {"url": url, "apiKeySecretRef": api_key_ref}}
    }))
    .expect("connection")
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

/// The reason of an SsoAppCredential's Ready condition.
pub fn ready_reason(o: &credsync::api::SsoAppCredential) -> Option<String> {
    o.status
        .as_ref()
        .and_then(|s| condition(&s.sync.conditions, "Ready"))
        .map(|c| c.reason.clone())
}
