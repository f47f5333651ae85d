//! Finding a resource's connection (from the reflector stores, no API read) and enforcing who
//! may use it; what both connection kinds have in common.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};

use super::ConnectionKey;
use crate::api::{
    ClusterVendorConnection, ConnectionKind, ConnectionRef, Vendor, VendorConnection,
    VendorEndpoint,
};
use crate::error::ReconcileError;
use crate::secrets::{ConnectionScope, SecretId};
use crate::vendors;

/// A connection a resource may use, as it stands now.
#[derive(Debug, Clone)]
pub struct ResolvedConnection {
    pub key: ConnectionKey,
    /// Which object and which version of its spec: a connection deleted and created again
    /// under the same name starts again at generation 1.
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub endpoint: VendorEndpoint,
    pub scope: ConnectionScope,
}

impl ResolvedConnection {
    /// `conn` as it stands now, known by its own key (the connection check's view of it).
    pub fn of<C: ConnectionResource>(conn: &C) -> ResolvedConnection {
        ResolvedConnection {
            key: conn.key(),
            uid: conn.meta().uid.clone(),
            generation: conn.meta().generation,
            endpoint: conn.endpoint().clone(),
            scope: conn.scope(),
        }
    }

    /// What of the connection enters the fingerprint: its endpoint spec (no secret values), so
    /// pointing a resource at another system re-applies it.
    pub fn fingerprint_material(&self) -> Vec<u8> {
        serde_json::to_vec(&(&self.endpoint.url(), &self.endpoint.vendor())).unwrap_or_default()
    }

    pub fn vendor(&self) -> Option<Vendor> {
        self.endpoint.vendor()
    }
}

/// Reflector stores of both connection kinds.
#[derive(Clone)]
pub struct ConnectionStores {
    pub namespaced: Store<VendorConnection>,
    pub cluster: Store<ClusterVendorConnection>,
}

impl ConnectionStores {
    /// The endpoint of the connection `r` names from `namespace`, as cached, without checking
    /// that the namespace may use it (for rebuilding record claims, see `reconcile::claims`).
    pub fn cached_endpoint(&self, namespace: &str, r: &ConnectionRef) -> Option<VendorEndpoint> {
        match r.kind {
            ConnectionKind::VendorConnection => self
                .namespaced
                .get(&ObjectRef::new(&r.name).within(namespace))
                .map(|c| c.spec.endpoint.clone()),
            ConnectionKind::ClusterVendorConnection => self
                .cluster
                .get(&ObjectRef::new(&r.name))
                .map(|c| c.spec.endpoint.clone()),
        }
    }

    /// The connection `r` names, if `namespace` may use it.
    pub async fn resolve(
        &self,
        client: &Client,
        namespace: &str,
        r: &ConnectionRef,
    ) -> Result<ResolvedConnection, ReconcileError> {
        match r.kind {
            ConnectionKind::VendorConnection => {
                let conn = self
                    .namespaced
                    .get(&ObjectRef::new(&r.name).within(namespace))
                    .ok_or_else(|| {
                        ReconcileError::connection(
                            "ConnectionNotFound",
                            format!("VendorConnection {namespace}/{} not found", r.name),
                        )
                    })?;
                Ok(ResolvedConnection {
                    key: ConnectionKey::referenced(r, namespace),
                    uid: conn.metadata.uid.clone(),
                    generation: conn.metadata.generation,
                    endpoint: conn.spec.endpoint.clone(),
                    scope: ConnectionScope::Namespaced(namespace.to_string()),
                })
            }
            ConnectionKind::ClusterVendorConnection => {
                let conn = self.cluster.get(&ObjectRef::new(&r.name)).ok_or_else(|| {
                    ReconcileError::connection(
                        "ConnectionNotFound",
                        format!("ClusterVendorConnection {} not found", r.name),
                    )
                })?;
                if !namespace_allowed(client, &conn, namespace).await? {
                    return Err(ReconcileError::connection(
                        "NamespaceNotAllowed",
                        format!(
                            "ClusterVendorConnection {} does not allow namespace {namespace} (see its spec.allowedNamespaces)",
                            r.name
                        ),
                    ));
                }
                Ok(ResolvedConnection {
                    key: ConnectionKey::referenced(r, namespace),
                    uid: conn.metadata.uid.clone(),
                    generation: conn.metadata.generation,
                    endpoint: conn.spec.endpoint.clone(),
                    scope: ConnectionScope::Cluster,
                })
            }
        }
    }

    /// Every connection whose spec names Secret `secret` (see [`secrets_named`]), for the
    /// in-use holds: a Secret shared by several connections stays while any of them needs it.
    pub fn naming_secret(&self, secret: &SecretId) -> Vec<ConnectionKey> {
        let namespaced = self
            .namespaced
            .state()
            .into_iter()
            .filter(|conn| conn.namespace().as_deref() == Some(secret.namespace.as_str()))
            .filter(|conn| secrets_named(&**conn).contains(secret))
            .map(|conn| conn.key());
        let cluster = self
            .cluster
            .state()
            .into_iter()
            .filter(|conn| secrets_named(&**conn).contains(secret))
            .map(|conn| conn.key());
        namespaced.chain(cluster).collect()
    }
}

/// The Secrets a connection's spec would have its client read, found by connecting without
/// reading (`vendors::secrets_named`). The Secret watch goes by what connecting did read (see
/// [`super::clients::ClientCache::connections_reading`]); the webhook and the in-use holds,
/// which must know before or without a read, go by this.
pub fn secrets_named(conn: &impl ConnectionResource) -> BTreeSet<SecretId> {
    vendors::secrets_named(conn.endpoint(), conn.scope())
}

/// (namespace, name) of every Secret an endpoint's spec names, as [`secrets_named`]; `own` is a
/// VendorConnection's namespace, None for a ClusterVendorConnection. For the admission webhook,
/// which sees a spec before it is an object in a namespace.
pub fn secret_names(endpoint: &VendorEndpoint, own: Option<&str>) -> Vec<(String, String)> {
    let scope = match own {
        Some(own) => ConnectionScope::Namespaced(own.to_string()),
        None => ConnectionScope::Cluster,
    };
    vendors::secrets_named(endpoint, scope)
        .into_iter()
        .map(|secret| (secret.namespace, secret.name))
        .collect()
}

/// The two connection kinds, for what is done alike to both.
pub trait ConnectionResource:
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
    /// Where its Secrets may be read from.
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

async fn namespace_allowed(
    client: &Client,
    conn: &ClusterVendorConnection,
    namespace: &str,
) -> Result<bool, ReconcileError> {
    let allowed = &conn.spec.allowed_namespaces;
    if allowed.namespaces.iter().any(|n| n == namespace) {
        return Ok(true);
    }
    let Some(selector) = &allowed.namespace_selector else {
        return Ok(false);
    };
    let selector = Selector::try_from(selector.clone()).map_err(|e| {
        ReconcileError::connection(
            "InvalidConnection",
            format!(
                "ClusterVendorConnection {} has an invalid namespaceSelector: {e}",
                conn.name_any()
            ),
        )
    })?;
    let ns = Api::<Namespace>::all(client.clone())
        .get_metadata(namespace)
        .await?;
    Ok(selector.matches(ns.metadata.labels.as_ref().unwrap_or(&Default::default())))
}

/// A HelloID VendorConnection `helloid` in `namespace` whose key is in Secret `helloid-api`, for
/// the tests on a mock API server.
#[cfg(test)]
pub(crate) fn helloid_connection(namespace: &str) -> crate::api::VendorConnection {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "credsync.io/v1alpha1",
        "kind": "VendorConnection",
        "metadata": {"name": "helloid", "namespace": namespace, "uid": "conn-uid", "generation": 1},
        "spec": {"helloId": {"url": "https://helloid.example.com", "apiKeySecretRef": {"name": "helloid-api"}}}
    }))
    .expect("connection")
}
