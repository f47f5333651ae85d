//! What a connection's vendor turned out to serve. The seeds document one write per vendor;
//! every other route (listings, deletes, the plural HelloID path) is an assumption, so a client
//! records here what the vendor answered: an operation it does not have (a route-level 404/405)
//! or the variant of a route it serves. The record lives as long as the connection's client,
//! steers the clients' fallbacks, and is shown in the connection's `status.capabilities`.

use crate::sync::LockOrRecover;
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
        self.found.lock_or_recover()
    }
}

/// Whether a 404/405 means "no such route" rather than "no such record". `vendor_message` is
/// the error text the caller found in the vendor's own error format (None when the body was
/// empty, an HTML or plain-text page, or not the vendor's shape). A 405 always names the route;
/// a 404 names the record only when the vendor itself said so, and ASP.NET's routing texts
/// ("No HTTP resource was found that matches the request URI ...") come in the very
/// `{Message, MessageDetail}` shape that .NET vendors use for their own errors, so they count
/// as the route's, not the vendor's.
pub fn says_no_route(status: http::StatusCode, vendor_message: Option<&str>) -> bool {
    match status.as_u16() {
        405 => true,
        404 => vendor_message.is_none_or(is_routing_message),
        _ => false,
    }
}

/// ASP.NET (Web API, MVC, WCF REST) texts for a request that matched no route or action.
pub fn is_routing_message(text: &str) -> bool {
    const ROUTING: [&str; 5] = [
        "no http resource was found",
        "no action was found",
        "no type was found that matches the controller",
        "does not support http method",
        "the resource cannot be found",
    ];
    let text = text.to_ascii_lowercase();
    text.trim().is_empty() || ROUTING.iter().any(|r| text.contains(r))
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

    #[test]
    fn a_404_names_the_route_unless_the_vendor_spoke() {
        use http::StatusCode;
        let no_route = "No HTTP resource was found that matches the request URI 'https://x/api'.";
        for (status, message, route) in [
            (StatusCode::NOT_FOUND, None, true),
            (StatusCode::NOT_FOUND, Some(""), true),
            (StatusCode::NOT_FOUND, Some(no_route), true),
            (
                StatusCode::NOT_FOUND,
                Some("credential set not found"),
                false,
            ),
            (StatusCode::METHOD_NOT_ALLOWED, Some("not allowed"), true),
            (StatusCode::BAD_REQUEST, None, false),
            (StatusCode::OK, None, false),
        ] {
            assert_eq!(
                says_no_route(status, message),
                route,
                "{status} {message:?}"
            );
        }
    }
}
