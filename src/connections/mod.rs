//! The connections wing: everything about VendorConnections and ClusterVendorConnections that is
//! not a managed resource's reconcile, in one place.
//!
//! - [`resolve`]: finding a resource's connection in the caches and who may use it;
//! - [`clients`]: one vendor client per connection, and the Secrets each connect read;
//! - [`check`]: the connection reconciler (Ready or the problem, in-use holds);
//! - [`dependencies`]: which resources use which connection or Secret, and queueing them;
//! - [`triggers`]: the tasks that turn Secret, connection and capability changes into
//!   re-checks.
//!
//! A connection is named by a [`ConnectionKey`], made only by [`ConnectionKey::new`].

pub mod check;
pub mod clients;
pub mod dependencies;
pub mod resolve;
pub mod triggers;

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
}

impl std::fmt::Display for ConnectionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{:?} {ns}/{}", self.kind, self.name),
            None => write!(f, "{:?} {}", self.kind, self.name),
        }
    }
}
