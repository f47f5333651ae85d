//! What a connection's vendor turned out to serve. The seeds document one write per vendor;
//! every other route (listings, deletes, the plural HelloID path) is an assumption, so a client
//! records here what the vendor answered: an operation it does not have (a route-level 404/405)
//! or the variant of a route it serves. The record lives as long as the connection's client,
//! steers the clients' fallbacks, and is shown in the connection's `status.capabilities`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What credsync learned about one operation on one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// The vendor serves it; `variant` names the form that worked, where there are several
    /// (e.g. HelloID's singular or plural path).
    Supported { variant: Option<&'static str> },
    /// The vendor has no such route; `why` says what it answered and what credsync does instead.
    Unsupported { why: String },
}

/// One connection's record of its vendor's operations, keyed by operation name (the same
/// names as the `operation` label of the vendor request metrics).
#[derive(Debug, Default)]
pub struct Capabilities {
    found: Mutex<BTreeMap<&'static str, Capability>>,
    /// Bumped whenever the record changes, so the connection's status can follow it.
    changes: std::sync::atomic::AtomicU64,
}

impl Capabilities {
    /// The vendor served `operation` (in `variant`, where it matters).
    pub fn supported(&self, operation: &'static str, variant: Option<&'static str>) {
        self.set(operation, Capability::Supported { variant });
    }

    /// The vendor has no route for `operation`.
    pub fn unsupported(&self, operation: &'static str, why: impl Into<String>) {
        self.set(
            operation,
            Capability::Unsupported {
                why: super::http::cut(&why.into()),
            },
        );
    }

    /// What is known about `operation`; None until the vendor was first asked.
    pub fn get(&self, operation: &str) -> Option<Capability> {
        self.lock().get(operation).cloned()
    }

    /// Whether the vendor is known not to serve `operation`.
    pub fn is_unsupported(&self, operation: &str) -> bool {
        matches!(self.get(operation), Some(Capability::Unsupported { .. }))
    }

    /// Every operation learned so far, in name order.
    pub fn snapshot(&self) -> Vec<(&'static str, Capability)> {
        self.lock().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// A number that changes whenever the record does.
    pub fn version(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    fn set(&self, operation: &'static str, capability: Capability) {
        let mut found = self.lock();
        if found.get(operation) != Some(&capability) {
            found.insert(operation, capability);
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Capability>> {
        // Every update is a single insert: a panic elsewhere cannot leave it half done.
        self.found.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_changes_once() {
        let c = Capabilities::default();
        assert_eq!(c.get("ListIdentities"), None);
        c.unsupported("ListIdentities", "HTTP 404 without a ServiceStack error");
        let v = c.version();
        c.unsupported("ListIdentities", "HTTP 404 without a ServiceStack error");
        assert_eq!(c.version(), v, "the same finding is no change");
        assert!(c.is_unsupported("ListIdentities"));
        c.supported("SaveCredential", Some("plural"));
        assert!(c.version() > v);
        assert_eq!(
            c.snapshot().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["ListIdentities", "SaveCredential"]
        );
    }
}
