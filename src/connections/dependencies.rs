//! Who depends on what, so that a change reaches exactly those it concerns: which Secrets each
//! connection read ([`SecretsRead`], filled by the client cache from what connecting asked for,
//! never from a list kept by hand), and which resources use which connection or Secret
//! ([`Dependents`], from each kind's cache).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc;

use super::ConnectionKey;
use crate::managed::Managed;
use crate::secrets::SecretId;
use crate::sync::LockOrRecover;

/// The Secrets each connection's last connect asked for, whether the read worked or not: a
/// Secret that was missing is watched for like one that was there.
#[derive(Default)]
pub struct SecretsRead {
    by_connection: Mutex<HashMap<ConnectionKey, BTreeSet<SecretId>>>,
}

impl SecretsRead {
    /// A connect of `key` is about to read `secret`.
    pub fn note(&self, key: &ConnectionKey, secret: &SecretId) {
        self.lock()
            .entry(key.clone())
            .or_default()
            .insert(secret.clone());
    }

    /// What a finished connect of `key` asked for; what it no longer reads is let go.
    pub fn set(&self, key: &ConnectionKey, secrets: BTreeSet<SecretId>) {
        self.lock().insert(key.clone(), secrets);
    }

    /// The connection is gone.
    pub fn forget(&self, key: &ConnectionKey) {
        self.lock().remove(key);
    }

    /// Every connection that asked for `secret`.
    pub fn connections_reading(&self, secret: &SecretId) -> Vec<ConnectionKey> {
        self.lock()
            .iter()
            .filter(|(_, secrets)| secrets.contains(secret))
            .map(|(key, _)| key.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionKey, BTreeSet<SecretId>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.by_connection.lock_or_recover()
    }
}

/// Finds the resources of one kind that a Secret or connection change concerns, and queues them.
pub trait Dependents: Send + Sync {
    fn secret_changed(&self, secret: &SecretId, connections: &[ConnectionKey]);
    fn connection_changed(&self, key: &ConnectionKey);
    /// Whether a resource of this kind must still delete its record through connection `key`.
    fn needs_for_cleanup(&self, key: &ConnectionKey) -> bool;
}

/// Every kind's [`Dependents`].
pub type AllDependents = std::sync::Arc<Vec<Box<dyn Dependents>>>;

/// Queue every resource, of every kind, that uses connection `key`.
pub fn connection_changed(dependents: &[Box<dyn Dependents>], key: &ConnectionKey) {
    for deps in dependents {
        deps.connection_changed(key);
    }
}

/// The resources of kind `K`, from its cache, and where their reconciles are requested.
pub struct KindDependents<K: Managed> {
    pub store: Store<K>,
    pub queue: mpsc::UnboundedSender<ObjectRef<K>>,
}

/// The connection a resource uses.
pub fn connection_of<K: Managed>(obj: &K) -> ConnectionKey {
    ConnectionKey::referenced(obj.connection_ref(), &obj.namespace().unwrap_or_default())
}

/// Whether `obj` uses connection `key`.
fn uses<K: Managed>(obj: &K, key: &ConnectionKey) -> bool {
    key.is_referenced_by(obj.connection_ref(), obj.meta().namespace.as_deref())
}

// Each runs over every cached resource (once per Secret or connection event, and once per
// in-use check): filtered in place under the store's lock, with nothing cloned or allocated for
// the many resources an event does not concern.
impl<K: Managed> Dependents for KindDependents<K> {
    fn secret_changed(&self, secret: &SecretId, connections: &[ConnectionKey]) {
        let concerned = self.store.state_filter(|obj| {
            let direct = obj.meta().namespace.as_deref() == Some(secret.namespace.as_str())
                && obj.secret_refs().iter().any(|r| r.name == secret.name);
            direct || connections.iter().any(|key| uses(obj, key))
        });
        for obj in concerned {
            let _ = self.queue.send(ObjectRef::from_obj(&*obj));
        }
    }

    fn connection_changed(&self, key: &ConnectionKey) {
        for obj in self.store.state_filter(|obj| uses(obj, key)) {
            let _ = self.queue.send(ObjectRef::from_obj(&*obj));
        }
    }

    fn needs_for_cleanup(&self, key: &ConnectionKey) -> bool {
        self.store
            .find(|obj| holds_cleanup_finalizer(obj) && uses(obj, key))
            .is_some()
    }
}

/// `obj` holds the finalizer that keeps it until its vendor record is deleted.
pub fn holds_cleanup_finalizer<K: kube::Resource>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == crate::api::FINALIZER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ConnectionKind, ConnectionRef};

    fn reference(kind: ConnectionKind, name: &str) -> ConnectionRef {
        ConnectionRef {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn a_reference_names_a_key_exactly_when_referenced_would_build_it() {
        use ConnectionKind::{ClusterVendorConnection as Cluster, VendorConnection as Namespaced};
        let refs = [
            reference(Namespaced, "a"),
            reference(Namespaced, "b"),
            reference(Cluster, "a"),
        ];
        for r in &refs {
            for from in ["ns-1", "ns-2"] {
                for other in &refs {
                    for other_ns in ["ns-1", "ns-2"] {
                        let key = ConnectionKey::referenced(other, other_ns);
                        assert_eq!(
                            key.is_referenced_by(r, Some(from)),
                            key == ConnectionKey::referenced(r, from),
                            "{key:?} from {r:?} in {from}"
                        );
                    }
                }
            }
        }
    }
}
