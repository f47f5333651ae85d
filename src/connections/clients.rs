//! One vendor client per connection, so that its concurrency and rate limits hold across every
//! resource using it; and the Secrets each connect read, so that a change of one of them finds
//! the connections built from it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use super::dependencies::SecretsRead;
use super::{ConnectionKey, ResolvedConnection};
use crate::error::ReconcileError;
use crate::scrub::Redactions;
use crate::secrets::{ConnectionSecrets, SecretId, SecretReader};
use crate::sync::LockOrRecover;
use crate::vendors::http::TransportPolicy;
use crate::vendors::{self, VendorClient};

/// One vendor client per connection. It is built again when the connection's spec changed or
/// it was marked stale (a Secret it reads changed, or the Secret watch started over); a build
/// from the same spec and the same values keeps the client there was, with its limits, its
/// connection pool and its identity.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<Clients>,
    /// The Secrets each connection's last connect asked for, read or not.
    reads: SecretsRead,
}

#[derive(Default)]
struct Clients {
    by_key: HashMap<ConnectionKey, Cached>,
    /// How many times clients were marked stale: a build that saw this number move while it
    /// read its Secrets may hold values from before the change, and must not pass for fresh.
    invalidations: u64,
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
        let invalidations = {
            let clients = self.lock();
            if let Some(cached) = clients.by_key.get(&conn.key)
                && !cached.stale
                && cached.version == version
            {
                return Ok(cached.client.clone());
            }
            clients.invalidations
        };
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
                clients.by_key.remove(&conn.key);
                return Err(e.into());
            }
        };
        // A Secret changed while this build read its values: they serve this one use, but the
        // next one builds again (the change's own reconciles must not find this client fresh).
        let fresh = clients.invalidations == invalidations;
        let mut identity = DefaultHasher::new();
        (&version, secrets.digest()).hash(&mut identity);
        let identity = identity.finish();
        if let Some(cached) = clients.by_key.get_mut(&conn.key) {
            // Nothing changed, or another reconcile built this version's client first: keep it,
            // so that limits stay shared.
            if cached.client.identity == identity || (!cached.stale && cached.version == version) {
                cached.stale &= !fresh;
                return Ok(cached.client.clone());
            }
        }
        let client = ConnectionClient {
            vendor,
            identity,
            redactions: Arc::new(Redactions::new(&secrets.sensitive())),
        };
        clients.by_key.insert(
            conn.key.clone(),
            Cached {
                version,
                client: client.clone(),
                stale: !fresh,
            },
        );
        Ok(client)
    }

    /// Every connection's client with the version of what its vendor was found to serve.
    pub fn capability_versions(&self) -> Vec<(ConnectionKey, u64)> {
        self.lock()
            .by_key
            .iter()
            .map(|(key, cached)| (key.clone(), cached.client.vendor.capabilities().version()))
            .collect()
    }

    /// The identity of the connection's client, if it has one.
    pub fn identity(&self, key: &ConnectionKey) -> Option<u64> {
        self.lock().by_key.get(key).map(|c| c.client.identity)
    }

    /// A Secret the connection reads changed: check its client before the next use.
    pub fn invalidate(&self, key: &ConnectionKey) {
        let mut clients = self.lock();
        clients.invalidations += 1;
        if let Some(cached) = clients.by_key.get_mut(key) {
            cached.stale = true;
        }
    }

    /// Secret changes may have been missed: check every client before its next use.
    pub fn invalidate_all(&self) {
        let mut clients = self.lock();
        clients.invalidations += 1;
        for cached in clients.by_key.values_mut() {
            cached.stale = true;
        }
    }

    /// The connection is gone.
    pub fn remove(&self, key: &ConnectionKey) {
        self.lock().by_key.remove(key);
        self.reads.forget(key);
    }

    /// Every connection whose last connect asked for `secret`, for the Secret watch.
    pub fn connections_reading(&self, secret: &SecretId) -> Vec<ConnectionKey> {
        self.reads.connections_reading(secret)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        self.clients.lock_or_recover()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;
    use tower_test::mock;

    use super::*;

    type ApiServer = mock::Handle<Request<Body>, Response<Body>>;

    /// The mock API server's HelloID connection, as its check resolves it.
    fn helloid() -> ResolvedConnection {
        ResolvedConnection::of(&crate::connections::resolve::helloid_connection("team"))
    }

    type Answer = mock::SendResponse<Response<Body>>;

    /// The next request, which must read the connection's Secret; answered with [`answer`].
    async fn secret_read(api: &mut ApiServer) -> Answer {
        let (request, send) = tokio::time::timeout(Duration::from_secs(5), api.next_request())
            .await
            .expect("the Secret read (again)")
            .expect("a request");
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/team/secrets/helloid-api"
        );
        send
    }

    /// The Secret as it is at the read: its API secret is `secret`.
    fn answer(send: Answer, secret: &str) {
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "helloid-api", "namespace": "team"},
            "data": {"key": b64("key"), "secret": b64(secret)}
        });
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&body).expect("JSON"),
        )));
    }

    #[tokio::test]
    async fn a_client_built_while_its_secret_changed_is_built_again_at_the_next_use() {
        let (service, mut api) = mock::pair::<Request<Body>, Response<Body>>();
        let reader = SecretReader::cached(kube::Client::new(service, "team"), None);
        let cache = Arc::new(ClientCache::default());
        let conn = helloid();
        // The Secret watch's report of a change.
        let changed = || {
            reader.changed("team", "helloid-api");
            cache.invalidate(&conn.key);
        };
        let get = || {
            let (cache, reader, conn) = (cache.clone(), reader.clone(), conn.clone());
            tokio::spawn(async move {
                cache
                    .get(&conn, &reader, &TransportPolicy::default())
                    .await
                    .map(|c| c.identity)
                    .expect("a client")
            })
        };
        // A client of the first value; then the Secret changes.
        let first = get();
        answer(secret_read(&mut api).await, "one");
        let first = first.await.expect("task");
        changed();
        // A build of the second value, and the Secret changes again while it reads.
        let second = get();
        let read = secret_read(&mut api).await;
        changed();
        answer(read, "two");
        let second = second.await.expect("task");
        assert_ne!(first, second);
        // The reconcile the last change queued must not take that build for fresh: it reads
        // the Secret again and gets a client of the third value, fresh from then on.
        let third = get();
        answer(secret_read(&mut api).await, "three");
        let third = third.await.expect("task");
        assert_ne!(third, second);
        assert_eq!(get().await.expect("task"), third, "no read: fresh");
    }
}
