//! Workloads: one per vendor kind, each with its own simulator and connection. Resource i of a
//! run is made by `workloads[i % len]`.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::put_secret;
use async_trait::async_trait;
use credsync::vendors::{apex, oracle};
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::apex::{ApexAuth, ApexSim};
use credsync_testkit::sim::helloid::HelloIdSim;
use credsync_testkit::sim::oracle::OracleSim;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// One vendor's share of the benchmark: its simulator, its connection, and how to create one
/// resource of its kind. Add a vendor by implementing this and listing it in [`workloads`].
#[async_trait]
pub(crate) trait Workload: Send + Sync {
    /// The kind's API resource (for creating and watching it generically).
    fn resource(&self) -> ApiResource;
    /// The workload's simulator.
    fn server(&self) -> &SimServer;
    /// Requests the simulator received so far.
    fn vendor_calls(&self) -> usize {
        self.server().journal.len()
    }
    fn set_latency(&self, latency: Duration) {
        self.server().faults.set_latency(latency);
    }
    /// The manifest of resource `i`. With `secret`, its secret value comes from key `password`
    /// of that Secret (in the same namespace); else it is inline.
    fn manifest(&self, i: usize, secret: Option<&str>) -> Value;
    /// The floor's one vendor call for resource `i` (inline value); returns the status fields
    /// the vendor's answer fills in.
    async fn floor_apply(&self, i: usize) -> Result<Value, String>;
    /// Whether the vendor holds `value` as resource `i`'s secret value.
    fn holds(&self, i: usize, value: &str) -> bool;
}

/// The workloads of one namespace, each with its own fresh simulator and connection.
/// With `secret_values_only`, only kinds that carry a secret value (for the rotation phase).
pub(crate) async fn workloads(
    client: &Client,
    ns: &str,
    limits: &Value,
    secret_values_only: bool,
) -> Vec<Arc<dyn Workload>> {
    let mut ws: Vec<Arc<dyn Workload>> = vec![
        Arc::new(HelloIdWorkload::start(client, ns, limits).await),
        Arc::new(OracleWorkload::start(client, ns, limits).await),
    ];
    if !secret_values_only {
        ws.push(Arc::new(ApexWorkload::start(client, ns, limits).await));
    }
    ws
}

pub(crate) fn bench_name(i: usize) -> String {
    format!("r-{i:05}")
}

pub(crate) fn inline_password(i: usize) -> String {
    format!("pw-{i}-initial")
}

pub(crate) const HELLOID_APP: &str = "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f";

pub(crate) fn helloid_user(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

pub(crate) struct HelloIdWorkload {
    pub(crate) sim: HelloIdSim,
    pub(crate) server: SimServer,
    pub(crate) http: reqwest::Client,
}

impl HelloIdWorkload {
    pub(crate) async fn start(client: &Client, ns: &str, limits: &Value) -> HelloIdWorkload {
        let sim = HelloIdSim::new("bench-key", "bench-secret");
        let server = start_sim(sim.router()).await;
        put_secret(
            client,
            ns,
            "helloid-api",
            &[("key", "bench-key"), ("secret", "bench-secret")],
        )
        .await;
        let endpoint =
            json!({"helloId": {"url": server.url(), "apiKeySecretRef": {"name": "helloid-api"}}});
        create_connection(client, ns, "helloid", endpoint, limits).await;
        HelloIdWorkload {
            sim,
            server,
            http: floor_http(),
        }
    }
}

async fn start_sim(router: axum::Router) -> SimServer {
    SimServer::start(router, 0)
        .await
        .expect("start a simulator")
}

/// The floor's HTTP client: keeps enough connections for every worker.
fn floor_http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("HTTP client")
}

/// A VendorConnection `name` in `ns` with this endpoint (`{"<vendor>": {...}}`) and limits.
async fn create_connection(client: &Client, ns: &str, name: &str, endpoint: Value, limits: &Value) {
    let mut spec = endpoint;
    if let (Some(spec), Some(limits)) = (spec.as_object_mut(), limits.as_object()) {
        spec.extend(limits.clone());
    }
    let conn: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "VendorConnection",
        "metadata": {"name": name, "namespace": ns}, "spec": spec
    }))
    .expect("VendorConnection manifest");
    let ar = ApiResource::erase::<credsync::api::VendorConnection>(&());
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .create(&PostParams::default(), &conn)
        .await
        .expect("create the VendorConnection");
}

#[async_trait]
impl Workload for HelloIdWorkload {
    fn resource(&self) -> ApiResource {
        ApiResource::erase::<credsync::api::SsoAppCredential>(&())
    }

    fn server(&self) -> &SimServer {
        &self.server
    }

    fn manifest(&self, i: usize, secret: Option<&str>) -> Value {
        let password = match secret {
            Some(name) => {
                json!({"function": "Password", "valueFrom": {"secretKeyRef": {"name": name, "key": "password"}}})
            }
            None => json!({"function": "Password", "value": inline_password(i)}),
        };
        json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "SsoAppCredential",
            "metadata": {"name": bench_name(i)},
            "spec": {
                "connectionRef": {"name": "helloid"},
                "userGuid": helloid_user(i), "applicationGuid": HELLOID_APP,
                "credentials": [{"function": "UserName", "value": format!("user{i}")}, password]
            }
        })
    }

    async fn floor_apply(&self, i: usize) -> Result<Value, String> {
        let body = json!({
            "ApplicationGUID": HELLOID_APP, "CredSetName": "Default",
            "Credentials": [
                {"Function": "UserName", "Value": format!("user{i}"), "UserEditAllowed": true},
                {"Function": "Password", "Value": inline_password(i), "UserEditAllowed": true},
            ]
        });
        let response = self
            .http
            .post(format!(
                "{}/api/v1/enduser/{}/credential",
                self.server.url(),
                helloid_user(i)
            ))
            .basic_auth("bench-key", Some("bench-secret"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HelloID answered {}", response.status()));
        }
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        let guid = answer
            .pointer("/0/credentialSets")
            .and_then(Value::as_array)
            .and_then(|sets| {
                sets.iter()
                    .find(|s| s.get("name").and_then(Value::as_str) == Some("Default"))
            })
            .and_then(|s| s.get("credentialSetGUID"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(json!({"credentialSetGuid": guid}))
    }

    fn holds(&self, i: usize, value: &str) -> bool {
        self.sim
            .get(&helloid_user(i), HELLOID_APP, "Default")
            .is_some_and(|set| {
                set.credentials
                    .iter()
                    .any(|c| c.function == "Password" && c.value == value)
            })
    }
}

/// CrmUserCredential through Oracle CRM On Demand (SOAP SetPassword). Its password always
/// comes from a Secret: one shared by every resource, or the resource's own when rotating.
pub(crate) struct OracleWorkload {
    sim: OracleSim,
    server: SimServer,
    http: reqwest::Client,
}

const ORACLE_SHARED_SECRET: &str = "oracle-password";

fn oracle_user(i: usize) -> String {
    format!("BENCH-{i:05}")
}

impl OracleWorkload {
    async fn start(client: &Client, ns: &str, limits: &Value) -> OracleWorkload {
        let sim = OracleSim::new("bench-integration", "bench-oracle");
        let server = start_sim(sim.router()).await;
        put_secret(
            client,
            ns,
            "oracle-api",
            &[
                ("username", "bench-integration"),
                ("password", "bench-oracle"),
            ],
        )
        .await;
        put_secret(
            client,
            ns,
            ORACLE_SHARED_SECRET,
            &[("password", &oracle_shared_password())],
        )
        .await;
        let endpoint = json!({"oracleCrmOnDemand": {"url": server.url(),
            "credentialsSecretRef": {"name": "oracle-api"}}});
        create_connection(client, ns, "oracle", endpoint, limits).await;
        OracleWorkload {
            sim,
            server,
            http: floor_http(),
        }
    }
}

fn oracle_shared_password() -> String {
    "pw-shared-initial".into()
}

#[async_trait]
impl Workload for OracleWorkload {
    fn resource(&self) -> ApiResource {
        ApiResource::erase::<credsync::api::CrmUserCredential>(&())
    }

    fn server(&self) -> &SimServer {
        &self.server
    }

    fn manifest(&self, i: usize, secret: Option<&str>) -> Value {
        json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "CrmUserCredential",
            "metadata": {"name": bench_name(i)},
            "spec": {
                "connectionRef": {"name": "oracle"},
                "oracleCrmOnDemand": {
                    "userId": oracle_user(i),
                    "passwordFrom": {"secretKeyRef": {
                        "name": secret.unwrap_or(ORACLE_SHARED_SECRET), "key": "password"}}
                }
            }
        })
    }

    async fn floor_apply(&self, i: usize) -> Result<Value, String> {
        let user = oracle::PasswordUser {
            user_id: oracle_user(i),
            email_addr: None,
            password: oracle_shared_password().into(),
            integration_id: None,
            external_system_id: None,
        };
        let envelope = oracle::set_password_envelope(
            &"bench-integration".into(),
            &"bench-oracle".into(),
            &user,
        );
        let response = self
            .http
            .post(format!(
                "{}/{}",
                self.server.url(),
                oracle::SERVICE_PATH.join("/")
            ))
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", format!("\"{}\"", oracle::SET_PASSWORD_ACTION))
            .body(envelope)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() || !body.contains("Success") {
            return Err(format!("Oracle answered {status}"));
        }
        Ok(json!({}))
    }

    fn holds(&self, i: usize, value: &str) -> bool {
        self.sim.password_of(&oracle_user(i)).as_deref() == Some(value)
    }
}

/// ErpIdentity through Apex ERP (JSON). It has no secret value; a create looks the name up
/// first (the listing shared by concurrent lookups), so it makes more than one vendor call.
pub(crate) struct ApexWorkload {
    server: SimServer,
    http: reqwest::Client,
}

fn apex_identity(i: usize) -> apex::Identity {
    apex::Identity {
        name: format!("bench.{i:05}"),
        is_role: Some(false),
        is_granted: Some(true),
        user_info: Some(apex::UserInfo {
            user_name: Some(format!("bench.{i:05}")),
            ..apex::UserInfo::default()
        }),
        ..apex::Identity::default()
    }
}

impl ApexWorkload {
    async fn start(client: &Client, ns: &str, limits: &Value) -> ApexWorkload {
        let sim = ApexSim::new(ApexAuth::Basic("bench-apex".into(), "bench-apex-pw".into()));
        let server = start_sim(sim.router()).await;
        put_secret(
            client,
            ns,
            "apex-api",
            &[("username", "bench-apex"), ("password", "bench-apex-pw")],
        )
        .await;
        let endpoint = json!({"apexErp": {"url": server.url(), "format": "Json",
            "auth": {"basicSecretRef": {"name": "apex-api"}}}});
        create_connection(client, ns, "apex", endpoint, limits).await;
        ApexWorkload {
            server,
            http: floor_http(),
        }
    }
}

#[async_trait]
impl Workload for ApexWorkload {
    fn resource(&self) -> ApiResource {
        ApiResource::erase::<credsync::api::ErpIdentity>(&())
    }

    fn server(&self) -> &SimServer {
        &self.server
    }

    fn manifest(&self, i: usize, _secret: Option<&str>) -> Value {
        let identity = apex_identity(i);
        json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "ErpIdentity",
            "metadata": {"name": bench_name(i)},
            "spec": {
                "connectionRef": {"name": "apex"},
                "identityType": "User",
                "name": identity.name,
                "isRole": false,
                "isGranted": true,
                "userInfo": {"userName": identity.name},
            }
        })
    }

    async fn floor_apply(&self, i: usize) -> Result<Value, String> {
        let body = apex::SaveRequest {
            identity_type: "User".into(),
            identity: apex_identity(i),
        };
        let response = self
            .http
            .post(format!(
                "{}/Core/Security/Identities/User",
                self.server.url()
            ))
            .basic_auth("bench-apex", Some("bench-apex-pw"))
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("Apex answered {}", response.status()));
        }
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok(json!({"identityId": answer.get("IdentityId").cloned().unwrap_or(Value::Null)}))
    }

    fn holds(&self, _i: usize, _value: &str) -> bool {
        false
    }
}
