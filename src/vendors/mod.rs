//! Vendor wire clients, one file per vendor API, each behind [`ExternalClient`] in the manner of
//! crossplane-runtime's ExternalClient: the generic reconciler only observes, applies and deletes.
//! Shared transport lives once: [`http`] (limits, size caps, error classification), [`xml`]
//! (hardened parsing) and [`soap`] (envelopes and faults).

pub mod apex;
pub mod capabilities;
pub mod helloid;
pub mod http;
pub mod lenient;
pub mod oracle;
pub mod rate;
pub mod soap;
pub mod superoffice;
pub mod xml;

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

/// A vendor call that failed, classified for the reconciler.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum VendorError {
    /// Worth retrying by itself: timeouts, dropped connections, 5xx, 429, vendor "try again".
    #[error("{message}")]
    Transient {
        /// CamelCase condition reason, e.g. VendorUnavailable.
        reason: &'static str,
        /// What happened, for a person; never holds secret values or request bodies.
        message: String,
        /// How long the vendor asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Needs a person: rejected credentials, validation faults, missing privilege.
    #[error("{message}")]
    Permanent {
        /// CamelCase condition reason, e.g. VendorUnauthorized.
        reason: &'static str,
        /// What happened, for a person; never holds secret values or request bodies.
        message: String,
    },
}

impl VendorError {
    pub fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        VendorError::Transient {
            reason,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        VendorError::Permanent {
            reason,
            message: message.into(),
        }
    }
    pub fn reason(&self) -> &'static str {
        match self {
            VendorError::Transient { reason, .. } | VendorError::Permanent { reason, .. } => reason,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            VendorError::Transient { message, .. } | VendorError::Permanent { message, .. } => {
                message
            }
        }
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, VendorError::Transient { .. })
    }
    /// Whether a write that failed so may still have been applied by the vendor: the request
    /// may have reached it (a timeout, a dropped connection, a 5xx, an answer we could not
    /// read). Refusals, and waits asked for before anything was done, leave it as it was.
    pub fn outcome_unknown(&self) -> bool {
        self.is_transient()
            && !matches!(
                self.reason(),
                "VendorRateLimited" | "VendorThrottled" | "ShuttingDown" | http::NOT_LEADER
            )
    }

    /// How long the vendor asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            VendorError::Transient { retry_after, .. } => *retry_after,
            VendorError::Permanent { .. } => None,
        }
    }
    /// The same error with its message rewritten (e.g. scrubbed of secret values).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            VendorError::Transient {
                reason,
                message,
                retry_after,
            } => VendorError::Transient {
                reason,
                message: f(message),
                retry_after,
            },
            VendorError::Permanent { reason, message } => VendorError::Permanent {
                reason,
                message: f(message),
            },
        }
    }
}

/// What reading the vendor's record back showed; `O` is what the vendor returns that the
/// resource keeps in its status (see [`ExternalClient::Outputs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation<O> {
    /// The API is write-only for this record: only the fingerprint decides whether to apply.
    Unknown,
    /// No record exists.
    Missing,
    /// The record exists and equals the desired state.
    UpToDate(O),
    /// The record exists and differs from the desired state.
    Drifted(O),
}

/// One managed record in one vendor system, bound to its desired state (secret values
/// included) and to the connection's client. Built fresh for each reconcile.
#[async_trait]
pub trait ExternalClient: Send + Sync {
    /// What the vendor returns that the resource keeps in its status (an Apex IdentityId, a
    /// HelloID credential set GUID; `()` when nothing). Each vendor names its own: the generic
    /// reconciler only carries it to the kind, which merges it into its status.
    type Outputs: Send + Sync + 'static;
    /// Whether [`ExternalClient::observe`] can read the record back (drift detection).
    fn readable(&self) -> bool;
    /// The bytes that identify the desired request, secret values included; the reconciler
    /// MACs them into `status.appliedFingerprint` and never stores or logs them.
    fn fingerprint_material(&self) -> zeroize::Zeroizing<Vec<u8>>;
    /// Read the record back, or [`Observation::Unknown`] for write-only APIs.
    async fn observe(&self) -> Result<Observation<Self::Outputs>, VendorError>;
    /// Create or update the record so it equals the desired state.
    async fn apply(&self) -> Result<Self::Outputs, VendorError>;
    /// Remove the record. Only called when the resource's deletion policy is Delete and
    /// [`ExternalClient::supports_delete`] holds.
    async fn delete(&self) -> Result<(), VendorError>;
    /// Whether the API can remove the record at all.
    fn supports_delete(&self) -> bool {
        true
    }
}

/// Serialize a secret value into a request body. The one place request serialisation sees a
/// secret's text; Debug of the surrounding structs stays redacted through [`SecretString`].
pub fn expose_secret<S: Serializer>(
    value: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.expose_secret())
}

/// Serialize fingerprint material: canonical JSON of a request, secrets included, in a buffer
/// that is wiped when dropped.
pub fn fingerprint_json<T: serde::Serialize>(value: &T) -> zeroize::Zeroizing<Vec<u8>> {
    // Serialising plain structs into a Vec cannot fail; an empty fingerprint would only cause
    // one extra (idempotent) vendor write.
    zeroize::Zeroizing::new(serde_json::to_vec(value).unwrap_or_default())
}

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::api::{Vendor, VendorBlock, VendorEndpoint};
use crate::secrets::{ConnectionScope, ConnectionSecrets, SecretError, SecretId};
use http::{EndpointSettings, TransportError, TransportPolicy, VendorHttp};

/// A connection's client for its vendor, shared by every resource using the connection.
#[derive(Clone, Debug)]
pub enum VendorClient {
    SuperOffice(Arc<superoffice::SuperOfficeClient>),
    OracleCrmOnDemand(Arc<oracle::OracleClient>),
    ApexErp(Arc<apex::ApexClient>),
    HelloId(Arc<helloid::HelloIdClient>),
}

impl VendorClient {
    /// The vendor asked to wait (`err` carries its Retry-After or "try again in"): no request
    /// of this connection goes out before then.
    pub fn hold_off(&self, err: &VendorError) {
        self.http().hold_off(err);
    }

    /// What the connection's vendor turned out to serve.
    pub fn capabilities(&self) -> &capabilities::Capabilities {
        self.http().capabilities()
    }

    fn http(&self) -> &http::VendorHttp {
        match self {
            VendorClient::SuperOffice(c) => &c.http,
            VendorClient::OracleCrmOnDemand(c) => &c.http,
            VendorClient::ApexErp(c) => &c.http,
            VendorClient::HelloId(c) => &c.http,
        }
    }

    pub fn vendor(&self) -> Vendor {
        match self {
            VendorClient::SuperOffice(_) => Vendor::SuperOffice,
            VendorClient::OracleCrmOnDemand(_) => Vendor::OracleCrmOnDemand,
            VendorClient::ApexErp(_) => Vendor::ApexErp,
            VendorClient::HelloId(_) => Vendor::HelloId,
        }
    }
}

/// Why a connection could not be turned into a client. Always needs a person, except API
/// trouble while reading its Secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Invalid(String),
}

/// What one vendor's module owns of a connection, implemented there on the vendor's block of
/// the spec (e.g. `api::HelloIdEndpoint` in [`helloid`]): its URL, its default rate and how its
/// client is made. [`VendorBlock::module`] is the one place that picks the module.
#[async_trait]
pub trait VendorModule: Sync {
    /// Base URL of the vendor block.
    fn url(&self) -> &str;
    /// Requests per second when the connection sets `requestsPerSecond` to nothing; a vendor
    /// with documented limits of its own overrides it.
    fn default_requests_per_second(&self) -> u32 {
        DEFAULT_REQUESTS_PER_SECOND
    }
    /// Read the Secrets the client needs, through `secrets` only, and check that what was read
    /// fits; the answer builds the client on the connection's transport. Nothing else may be
    /// awaited here: [`secrets_named`] runs it with stand-ins and no reads to list the Secrets.
    async fn credentials(
        &self,
        secrets: &ConnectionSecrets<'_>,
    ) -> Result<ClientBuilder, ConnectError>;
}

/// Makes a vendor's client from the connection's transport, once its Secrets are read.
pub type ClientBuilder = Box<dyn FnOnce(Arc<VendorHttp>) -> VendorClient + Send>;

impl<'a> VendorBlock<'a> {
    /// The vendor module that owns this block. Exhaustive: a new vendor does not compile until
    /// it is named here.
    pub fn module(self) -> &'a dyn VendorModule {
        match self {
            VendorBlock::SuperOffice(b) => b,
            VendorBlock::OracleCrmOnDemand(b) => b,
            VendorBlock::ApexErp(b) => b,
            VendorBlock::HelloId(b) => b,
        }
    }
}

// The vendor-dependent parts of a connection spec live with the vendors, so that the CRD types
// in `api` do not depend on them.
impl VendorEndpoint {
    /// Base URL of the vendor block.
    pub fn url(&self) -> Option<&str> {
        self.block().map(|b| b.module().url())
    }

    /// Requests per second, with the vendor's default where none is set.
    pub fn effective_requests_per_second(&self) -> u32 {
        self.requests_per_second
            .or_else(|| {
                self.block()
                    .map(|b| b.module().default_requests_per_second())
            })
            .unwrap_or(DEFAULT_REQUESTS_PER_SECOND)
    }
}

/// Requests per second of a vendor that says nothing else, and of an endpoint with no valid
/// vendor block (it never gets a client).
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 50;

/// Build the client for a connection's endpoint, reading its Secrets under its scope.
pub async fn connect(
    endpoint: &VendorEndpoint,
    secrets: &ConnectionSecrets<'_>,
    policy: &TransportPolicy,
) -> Result<VendorClient, ConnectError> {
    let block = vendor_block(endpoint)?;
    let settings = EndpointSettings {
        vendor: block.vendor(),
        base_url: block.module().url().to_string(),
        timeout: Duration::from_secs(u64::from(endpoint.timeout_seconds.max(1))),
        max_concurrent_requests: endpoint.max_concurrent_requests,
        requests_per_second: endpoint.effective_requests_per_second(),
        ca_pem: ca_pem(endpoint, secrets).await?,
    };
    let http = VendorHttp::new(&settings, policy)?;
    let build = block.module().credentials(secrets).await?;
    Ok(build(http))
}

fn vendor_block(endpoint: &VendorEndpoint) -> Result<VendorBlock<'_>, ConnectError> {
    endpoint.block().ok_or_else(|| {
        ConnectError::Invalid("the connection must set exactly one vendor block".into())
    })
}

/// The extra CA bundle the connection trusts, if it names one.
async fn ca_pem(
    endpoint: &VendorEndpoint,
    secrets: &ConnectionSecrets<'_>,
) -> Result<Option<Vec<u8>>, ConnectError> {
    Ok(
        match endpoint.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
            Some(r) => Some(
                secrecy::ExposeSecret::expose_secret(&secrets.key(r).await?)
                    .as_bytes()
                    .to_vec(),
            ),
            None => None,
        },
    )
}

/// The Secrets connecting with `endpoint` under `scope` would read, found by connecting with
/// stand-in values: the same steps as [`connect`] but the transport, no read and no request.
/// For the admission webhook and the in-use holds, which must know them without reading them.
pub fn secrets_named(endpoint: &VendorEndpoint, scope: ConnectionScope) -> BTreeSet<SecretId> {
    let secrets = ConnectionSecrets::listing(scope);
    // Listing awaits nothing (see `VendorModule::credentials`), so one poll finishes it; each
    // Secret is noted as it is asked for, so even an unfinished run keeps what it found.
    let listed = async {
        let block = vendor_block(endpoint)?;
        ca_pem(endpoint, &secrets).await?;
        block.module().credentials(&secrets).await.map(drop)
    };
    let _ = futures::FutureExt::now_or_never(listed);
    secrets.asked()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(spec: serde_json::Value) -> VendorEndpoint {
        serde_json::from_value(spec).expect("endpoint")
    }

    fn named(spec: serde_json::Value, scope: ConnectionScope) -> Vec<(String, String)> {
        secrets_named(&endpoint(spec), scope)
            .into_iter()
            .map(|s| (s.namespace, s.name))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(ns, n)| (ns.to_string(), n.to_string()))
            .collect()
    }

    #[test]
    fn listing_names_every_secret_each_vendor_reads() {
        let own = || ConnectionScope::Namespaced("team".into());
        let tls = serde_json::json!({"caSecretRef": {"name": "ca", "key": "ca.crt"}});
        assert_eq!(
            named(
                serde_json::json!({"superOffice": {"url": "https://so", "api": "Rest",
                    "applicationTokenSecretRef": {"name": "app", "key": "token"},
                    "auth": {"basicSecretRef": {"name": "login"}}}, "tls": tls}),
                own()
            ),
            pairs(&[("team", "app"), ("team", "ca"), ("team", "login")])
        );
        assert_eq!(
            named(
                serde_json::json!({"oracleCrmOnDemand": {"url": "https://o",
                    "credentialsSecretRef": {"name": "crm"}}}),
                own()
            ),
            pairs(&[("team", "crm")])
        );
        assert_eq!(
            named(
                serde_json::json!({"apexErp": {"url": "https://a",
                    "auth": {"bearerSecretRef": {"name": "apex", "key": "token"}}}}),
                own()
            ),
            pairs(&[("team", "apex")])
        );
        assert_eq!(
            named(
                serde_json::json!({"helloId": {"url": "https://h",
                    "apiKeySecretRef": {"name": "api", "namespace": "ops"}}}),
                ConnectionScope::Cluster
            ),
            pairs(&[("ops", "api")])
        );
    }

    #[test]
    fn listing_keeps_what_the_scope_would_refuse_and_skips_what_names_no_namespace() {
        // A VendorConnection naming another namespace: listed (the webhook checks it), though
        // the connect itself refuses it.
        assert_eq!(
            named(
                serde_json::json!({"helloId": {"url": "https://h",
                    "apiKeySecretRef": {"name": "api", "namespace": "other"}}}),
                ConnectionScope::Namespaced("team".into())
            ),
            pairs(&[("other", "api")])
        );
        // A ClusterVendorConnection reference without a namespace is read nowhere.
        assert_eq!(
            named(
                serde_json::json!({"helloId": {"url": "https://h",
                    "apiKeySecretRef": {"name": "api"}}}),
                ConnectionScope::Cluster
            ),
            pairs(&[])
        );
        // No vendor block: no client, nothing read.
        assert_eq!(
            named(serde_json::json!({}), ConnectionScope::Cluster),
            pairs(&[])
        );
    }

    #[test]
    fn each_vendor_module_owns_its_url_and_default_rate() {
        let oracle = endpoint(serde_json::json!({"oracleCrmOnDemand": {"url": "https://o",
            "credentialsSecretRef": {"name": "crm"}}}));
        assert_eq!(oracle.url(), Some("https://o"));
        assert_eq!(oracle.effective_requests_per_second(), 20);
        let helloid = endpoint(serde_json::json!({"helloId": {"url": "https://h",
            "apiKeySecretRef": {"name": "api"}}, "requestsPerSecond": 7}));
        assert_eq!(helloid.effective_requests_per_second(), 7);
        let two = endpoint(serde_json::json!({
            "helloId": {"url": "https://h", "apiKeySecretRef": {"name": "api"}},
            "oracleCrmOnDemand": {"url": "https://o", "credentialsSecretRef": {"name": "crm"}}}));
        assert_eq!(two.url(), None);
        assert_eq!(two.vendor(), None);
    }
}
