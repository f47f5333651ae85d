//! The connections wing: what reconciles need to know of VendorConnections and
//! ClusterVendorConnections, below the reconcilers (it uses none of them).
//!
//! - [`resolve`]: finding a resource's connection in the caches and who may use it;
//! - [`clients`]: one vendor client per connection, and the Secrets each connect read;
//! - [`dependencies`]: which resources use which connection or Secret, and queueing them.
//!
//! The connection reconciler is [`crate::reconcile::connection`]; the tasks that turn Secret,
//! connection and capability changes into re-checks are [`crate::triggers`].
//!
//! A connection is named by a [`ConnectionKey`], made only by [`ConnectionKey::new`].

pub mod clients;
pub mod dependencies;
pub mod resolve;

pub use clients::{ClientCache, ConnectionClient};
pub use resolve::{ConnectionStores, ResolvedConnection};

use crate::api::{ConnectionKind, ConnectionRef};

/// Identifies a connection object. Its fields are private so that [`ConnectionKey::new`] is the
/// one way to make one: a VendorConnection always has its namespace, a
/// ClusterVendorConnection never.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    kind: ConnectionKind,
    namespace: Option<String>,
    name: String,
}

impl ConnectionKey {
    /// The connection of `kind` named `name`, as seen from `namespace` (a VendorConnection lives
    /// there; a ClusterVendorConnection in no namespace).
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

    /// Whether `r`, from a resource in `namespace`, names this connection (what
    /// [`ConnectionKey::referenced`] would say, without building a key: it runs over every
    /// cached resource).
    pub fn is_referenced_by(&self, r: &ConnectionRef, namespace: Option<&str>) -> bool {
        self.kind == r.kind
            && self.name == r.name
            && match self.kind {
                ConnectionKind::VendorConnection => self.namespace.as_deref() == namespace,
                ConnectionKind::ClusterVendorConnection => true,
            }
    }

    pub fn kind(&self) -> ConnectionKind {
        self.kind
    }

    /// The VendorConnection's namespace; None for a ClusterVendorConnection.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection as its resources name it (kind and name): a VendorConnection is always in
    /// their own namespace, so their conditions leave it out (every status write carries them).
    pub fn as_named_by_its_resources(&self) -> String {
        format!("{:?} {}", self.kind, self.name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_logs_and_in_conditions() {
        let namespaced = ConnectionKey::new(ConnectionKind::VendorConnection, "crm", "team-a");
        assert_eq!(namespaced.to_string(), "VendorConnection team-a/crm");
        assert_eq!(
            namespaced.as_named_by_its_resources(),
            "VendorConnection crm"
        );
        let cluster = ConnectionKey::new(ConnectionKind::ClusterVendorConnection, "crm", "team-a");
        assert_eq!(cluster.to_string(), "ClusterVendorConnection crm");
        assert_eq!(
            cluster.as_named_by_its_resources(),
            "ClusterVendorConnection crm"
        );
    }
}
