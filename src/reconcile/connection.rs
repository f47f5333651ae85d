//! Finding a resource's connection (from the reflector stores, no API read), enforcing who may
//! use it, and keeping one vendor client per connection so that its concurrency and rate limits
//! hold across every resource using it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Namespace;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::error::ReconcileError;
use crate::api::{
    ClusterVendorConnection, ConnectionKind, ConnectionRef, Vendor, VendorBlock, VendorConnection,
    VendorEndpoint,
};
use crate::secrets::{ConnectionScope, ConnectionSecrets, SecretReader};
use crate::vendors::http::TransportPolicy;
use crate::vendors::{self, VendorClient};

/// Identifies a connection object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    pub kind: ConnectionKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ConnectionKey {
    /// The connection of `kind` named `name`, as seen from `namespace` (a VendorConnection lives
    /// there; a ClusterVendorConnection in no namespace). The one way keys are made.
    pub fn new(kind: ConnectionKind, name: &str, namespace: &str) -> ConnectionKey {
        ConnectionKey {
            kind,
            namespace: match kind {
                ConnectionKind::VendorConnection => Some(namespace.to_string()),
                ConnectionKind::ClusterVendorConnection => None,
            },
            name: name.to_string(),
        }
    }

    /// The connection `r` names from a resource in `namespace`.
    pub fn referenced(r: &ConnectionRef, namespace: &str) -> ConnectionKey {
        ConnectionKey::new(r.kind, &r.name, namespace)
    }
}

impl std::fmt::Display for ConnectionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{:?} {ns}/{}", self.kind, self.name),
            None => write!(f, "{:?} {}", self.kind, self.name),
        }
    }
}

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

    /// Every connection that reads Secret `namespace/name`, for the Secret watch.
    pub fn referencing_secret(&self, namespace: &str, name: &str) -> Vec<ConnectionKey> {
        let mut keys = Vec::new();
        for conn in self.namespaced.state() {
            let own = conn.namespace().unwrap_or_default();
            if own == namespace
                && secret_names(&conn.spec.endpoint, Some(&own))
                    .iter()
                    .any(|(ns, n)| ns == namespace && n == name)
            {
                keys.push(ConnectionKey::new(
                    ConnectionKind::VendorConnection,
                    &conn.name_any(),
                    &own,
                ));
            }
        }
        for conn in self.cluster.state() {
            if secret_names(&conn.spec.endpoint, None)
                .iter()
                .any(|(ns, n)| ns == namespace && n == name)
            {
                keys.push(ConnectionKey::new(
                    ConnectionKind::ClusterVendorConnection,
                    &conn.name_any(),
                    namespace,
                ));
            }
        }
        keys
    }
}

/// (namespace, name) of every Secret an endpoint references; `own` is a VendorConnection's
/// namespace (refs default to it), None for a ClusterVendorConnection.
pub fn secret_names(endpoint: &VendorEndpoint, own: Option<&str>) -> Vec<(String, String)> {
    let mut refs: Vec<(&str, Option<&str>)> = Vec::new();
    match endpoint.block() {
        Some(VendorBlock::SuperOffice(so)) => {
            for r in [
                &so.application_token_secret_ref,
                &so.auth.ticket_secret_ref,
                &so.auth.bearer_secret_ref,
            ]
            .into_iter()
            .flatten()
            {
                refs.push((&r.name, r.namespace.as_deref()));
            }
            if let Some(r) = &so.auth.basic_secret_ref {
                refs.push((&r.name, r.namespace.as_deref()));
            }
        }
        Some(VendorBlock::OracleCrmOnDemand(o)) => refs.push((
            &o.credentials_secret_ref.name,
            o.credentials_secret_ref.namespace.as_deref(),
        )),
        Some(VendorBlock::ApexErp(a)) => {
            if let Some(r) = &a.auth.basic_secret_ref {
                refs.push((&r.name, r.namespace.as_deref()));
            }
            if let Some(r) = &a.auth.bearer_secret_ref {
                refs.push((&r.name, r.namespace.as_deref()));
            }
        }
        Some(VendorBlock::HelloId(h)) => refs.push((
            &h.api_key_secret_ref.name,
            h.api_key_secret_ref.namespace.as_deref(),
        )),
        // No client can be built: nothing is read.
        None => {}
    }
    if let Some(r) = endpoint.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
        refs.push((&r.name, r.namespace.as_deref()));
    }
    refs.into_iter()
        .filter_map(|(name, ns)| ns.or(own).map(|ns| (ns.to_string(), name.to_string())))
        .collect()
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

/// One vendor client per connection. It is built again when the connection's spec changed or
/// it was marked stale (a Secret it reads changed, or the Secret watch started over); a build
/// from the same spec and the same values keeps the client there was, with its limits, its
/// connection pool and its identity.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<ConnectionKey, Cached>>,
}

struct Cached {
    /// The connection's uid and generation it was built for.
    version: (Option<String>, Option<i64>),
    client: ConnectionClient,
    stale: bool,
}

/// A connection's client, and which one it is.
#[derive(Clone, Debug)]
pub struct ConnectionClient {
    pub vendor: VendorClient,
    /// Differs exactly when the client was built from another spec or other Secret values: a
    /// request the vendor refused for good is worth trying again only on another client.
    pub identity: u64,
    /// The connection's credentials in every form a vendor could echo them.
    pub redactions: Arc<super::scrub::Redactions>,
}

impl ClientCache {
    /// The connection's client, building it (and reading its Secrets) when there is none for
    /// the connection as it is now, or it is stale.
    pub async fn get(
        &self,
        conn: &ResolvedConnection,
        reader: &SecretReader,
        policy: &TransportPolicy,
    ) -> Result<ConnectionClient, ReconcileError> {
        let version = (conn.uid.clone(), conn.generation);
        if let Some(cached) = self.lock().get(&conn.key)
            && !cached.stale
            && cached.version == version
        {
            return Ok(cached.client.clone());
        }
        let secrets = ConnectionSecrets::new(reader, conn.scope.clone());
        let built = vendors::connect(&conn.endpoint, &secrets, policy).await;
        let mut clients = self.lock();
        let vendor = match built {
            Ok(vendor) => vendor,
            Err(e) => {
                clients.remove(&conn.key);
                return Err(e.into());
            }
        };
        let mut identity = DefaultHasher::new();
        (&version, secrets.digest()).hash(&mut identity);
        let identity = identity.finish();
        if let Some(cached) = clients.get_mut(&conn.key) {
            // Nothing changed, or another reconcile built this version's client first: keep it,
            // so that limits stay shared.
            if cached.client.identity == identity || (!cached.stale && cached.version == version) {
                cached.stale = false;
                return Ok(cached.client.clone());
            }
        }
        let client = ConnectionClient {
            vendor,
            identity,
            redactions: Arc::new(super::scrub::Redactions::new(&secrets.sensitive())),
        };
        clients.insert(
            conn.key.clone(),
            Cached {
                version,
                client: client.clone(),
                stale: false,
            },
        );
        Ok(client)
    }

    /// Every connection's client with the version of what its vendor was found to serve.
    pub fn capability_versions(&self) -> Vec<(ConnectionKey, u64)> {
        self.lock()
            .iter()
            .map(|(key, cached)| (key.clone(), cached.client.vendor.capabilities().version()))
            .collect()
    }

    /// The identity of the connection's client, if it has one.
    pub fn identity(&self, key: &ConnectionKey) -> Option<u64> {
        self.lock().get(key).map(|c| c.client.identity)
    }

    /// A Secret the connection reads changed: check its client before the next use.
    pub fn invalidate(&self, key: &ConnectionKey) {
        if let Some(cached) = self.lock().get_mut(key) {
            cached.stale = true;
        }
    }

    /// Secret changes may have been missed: check every client before its next use.
    pub fn invalidate_all(&self) {
        for cached in self.lock().values_mut() {
            cached.stale = true;
        }
    }

    /// The connection is gone.
    pub fn remove(&self, key: &ConnectionKey) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionKey, Cached>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}
