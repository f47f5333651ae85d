//! One vendor client per connection, so that its concurrency and rate limits hold across every
//! resource using it; and the Secrets each connect read, so that a change of one of them finds
//! the connections built from it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use super::dependencies::SecretsRead;
use super::{ConnectionKey, ResolvedConnection};
use crate::reconcile::error::ReconcileError;
use crate::reconcile::scrub::Redactions;
use crate::secrets::{ConnectionSecrets, SecretId, SecretReader};
use crate::vendors::http::TransportPolicy;
use crate::vendors::{self, VendorClient};

/// One vendor client per connection. It is built again when the connection's spec changed or
/// it was marked stale (a Secret it reads changed, or the Secret watch started over); a build
/// from the same spec and the same values keeps the client there was, with its limits, its
/// connection pool and its identity.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<ConnectionKey, Cached>>,
    /// The Secrets each connection's last connect asked for, read or not.
    reads: SecretsRead,
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
    pub redactions: Arc<Redactions>,
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
        // Noted as each read starts: a Secret created while this connect finds it missing
        // already leads its watch event to this connection.
        let note = |secret: &SecretId| self.reads.note(&conn.key, secret);
        let secrets = ConnectionSecrets::new(reader, conn.scope.clone()).on_read(&note);
        let built = vendors::connect(&conn.endpoint, &secrets, policy).await;
        self.reads.set(&conn.key, secrets.asked());
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
            redactions: Arc::new(Redactions::new(&secrets.sensitive())),
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
        self.reads.forget(key);
    }

    /// Every connection whose last connect asked for `secret`, for the Secret watch.
    pub fn connections_reading(&self, secret: &SecretId) -> Vec<ConnectionKey> {
        self.reads.connections_reading(secret)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionKey, Cached>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}
