//! Types shared by every credsync kind: references, deletion policy and the status block.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every credsync kind.
pub const GROUP: &str = "credsync.io";
/// The one served version.
pub const VERSION: &str = "v1alpha1";

/// Held while a Delete-policy resource's vendor record may still exist.
pub const FINALIZER: &str = "credsync.io/cleanup";
/// `"true"` stops every vendor call for the resource.
pub const PAUSED_ANNOTATION: &str = "credsync.io/paused";
/// Any new value asks for one sync now, even when nothing changed.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "credsync.io/reconcile-requested-at";

/// A key in a Secret of the referencing resource's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the namespace of the resource that holds this reference.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A key in a Secret, as a connection names it. A VendorConnection reads only from its own
/// namespace (leave `namespace` out); a ClusterVendorConnection must name the namespace, and the
/// operator reads it on its own behalf, never on a tenant's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct ConnectionSecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// Namespace of the Secret: required on a ClusterVendorConnection, absent (or its own
    /// namespace) on a VendorConnection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// A whole Secret whose keys are fixed by the field that names it (for example `username` and
/// `password`). Namespace rules as for [`ConnectionSecretKeyRef`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct ConnectionSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret: required on a ClusterVendorConnection, absent (or its own
    /// namespace) on a VendorConnection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// Where a secret value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValueSource {
    /// The Secret key that holds the value.
    pub secret_key_ref: SecretKeyRef,
}

/// The two kinds a resource may name as its connection.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum ConnectionKind {
    /// A VendorConnection in the resource's own namespace.
    #[default]
    VendorConnection,
    /// A ClusterVendorConnection that allows the resource's namespace.
    ClusterVendorConnection,
}

/// Which connection a resource uses to reach its vendor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRef {
    /// VendorConnection (same namespace, the default) or ClusterVendorConnection.
    #[serde(default)]
    pub kind: ConnectionKind,
    /// Name of the connection.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What happens in the vendor system when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum DeletionPolicy {
    /// Leave the record in the vendor system (the default).
    #[default]
    Orphan,
    /// Remove the record from the vendor system before the resource goes away.
    Delete,
}

/// Status fields every credsync kind has. Kinds embed it flattened, beside their own outputs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// kstatus conditions: Ready (the summary, always present); Reconciling (work or a retry under way) and Stalled (a person is needed) only while true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The metadata.generation that the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the vendor last confirmed the desired state (write or read-back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_time: Option<Time>,
    /// Keyed HMAC-SHA256 (its first 128 bits) of the last request the vendor accepted, secret
    /// values included. The key is the operator's; this reveals nothing about the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_fingerprint: Option<String>,
    /// The value of the credsync.io/reconcile-requested-at annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}
