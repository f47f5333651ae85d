//! SsoAppCredential: an end user's credential set for one application in HelloID.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConnectionRef, DeletionPolicy, SecretValueSource, SyncStatus};

/// One credential field, such as UserName or Password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.value) != has(self.valueFrom)",
    "message": "set exactly one of value and valueFrom"
}]))]
pub struct SsoCredentialField {
    /// The credential's function, e.g. UserName or Password.
    #[schemars(length(min = 1, max = 255))]
    pub function: String,
    /// A plain value (not secret), e.g. a user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A value taken from a Secret, e.g. a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<SecretValueSource>,
}

/// An end user's credentials for one HelloID application, kept equal to this spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "credsync.io",
    version = "v1alpha1",
    kind = "SsoAppCredential",
    namespaced,
    status = "SsoAppCredentialStatus",
    shortname = "ssocred",
    category = "credsync",
    doc = "An end user's credential set for one HelloID application, kept equal to this spec.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Connection",
        type_ = "string",
        json_path = ".spec.connectionRef.name"
    ),
    printcolumn(
        name = "Last-Synced",
        type_ = "date",
        json_path = ".status.lastSyncedTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SsoAppCredentialSpec {
    /// The connection to HelloID.
    pub connection_ref: ConnectionRef,
    /// GUID of the end user.
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub user_guid: String,
    /// GUID of the application.
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub application_guid: String,
    /// Name of the credential set (default "Default").
    #[serde(default = "default_cred_set_name")]
    #[schemars(length(min = 1, max = 255))]
    pub cred_set_name: String,
    /// The credential fields.
    #[schemars(length(min = 1, max = 32))]
    pub credentials: Vec<SsoCredentialField>,
    /// Orphan (default) leaves the credential set in HelloID when this resource is deleted;
    /// Delete removes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_cred_set_name() -> String {
    "Default".to_string()
}

/// Status of an SsoAppCredential.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SsoAppCredentialStatus {
    #[serde(flatten)]
    pub sync: SyncStatus,
    /// GUID of the credential set HelloID returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_set_guid: Option<String>,
}
