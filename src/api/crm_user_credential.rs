//! CrmUserCredential: a user's credential in a CRM (SuperOffice untrusted credentials, or an
//! Oracle CRM On Demand password).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConnectionRef, DeletionPolicy, SecretValueSource, SyncStatus};

/// SuperOffice untrusted credentials of a user (the User agent's UntrustedCredentials).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuperOfficeCredential {
    /// Credential type, e.g. "imap".
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 255))]
    pub credential_type: String,
    /// The associate the credentials belong to (the ...ForAssociate operations are then used);
    /// without it, the calling user's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associate_id: Option<i32>,
    /// Data stored unencrypted, typically a server and/or user name. At most 238 characters.
    #[schemars(length(max = 238))]
    pub public_value: String,
    /// Where the secret value (stored encrypted, typically a password; at most 70 characters) comes from.
    pub secret_value_from: SecretValueSource,
    /// Description of the credentials. At most 255 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub comment: Option<String>,
    /// Valid from this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub valid_from: Option<String>,
    /// Valid until this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub valid_to: Option<String>,
    /// Whether the credentials are active (default true).
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

/// An Oracle CRM On Demand user's password, set with PasswordWS SetPassword.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OracleCrmOnDemandPassword {
    /// Row ID of the user record.
    #[schemars(length(min = 1, max = 255))]
    pub user_id: String,
    /// The user's email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_addr: Option<String>,
    /// The user's external system ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_system_id: Option<String>,
    /// The user's integration ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// Where the password comes from.
    pub password_from: SecretValueSource,
}

/// A user credential in a CRM system. Exactly one vendor block, matching the connection's vendor.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "credsync.io",
    version = "v1alpha1",
    kind = "CrmUserCredential",
    namespaced,
    status = "CrmUserCredentialStatus",
    shortname = "crmcred",
    category = "credsync",
    doc = "A user credential in a CRM system (SuperOffice untrusted credentials or an Oracle CRM On Demand password), kept equal to this spec.",
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
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.superOffice), has(self.oracleCrmOnDemand)].filter(x, x).size() == 1",
    "message": "set exactly one vendor block: superOffice or oracleCrmOnDemand"
}]))]
pub struct CrmUserCredentialSpec {
    /// The connection to the CRM.
    pub connection_ref: ConnectionRef,
    /// SuperOffice untrusted credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_office: Option<SuperOfficeCredential>,
    /// Oracle CRM On Demand password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_crm_on_demand: Option<OracleCrmOnDemandPassword>,
    /// Orphan (default) leaves the record in the CRM when this resource is deleted; Delete
    /// removes it (SuperOffice only: Oracle has no delete operation).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Status of a CrmUserCredential.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrmUserCredentialStatus {
    #[serde(flatten)]
    pub sync: SyncStatus,
}
