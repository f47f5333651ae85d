//! ErpIdentity: a security identity in Apex ERP (ServiceStack SaveErpSecurityIdentity).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConnectionRef, SyncStatus};

/// The user behind an identity. Server-managed fields (UserId, CreatedDate, ModifiedDate,
/// LastLoginAttempt, InvalidLoginAttempts, LockedDate) are not part of the desired state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErpUserInfo {
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Birth date (RFC 3339 or yyyy-mm-dd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Language code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Whether the email address is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_confirmed: Option<bool>,
    /// Whether the user is a system administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_sys_admin: Option<bool>,
    /// Free-form user data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Sessions the user may hold at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_session_count: Option<i32>,
    /// Whether the user is blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<bool>,
}

/// ErpIdentity supports only Orphan: the Apex API has no delete route.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
pub enum ErpDeletionPolicy {
    /// Leave the identity in Apex ERP when this resource is deleted.
    #[default]
    Orphan,
}

/// A security identity (user or role) in Apex ERP, kept equal to this spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "credsync.io",
    version = "v1alpha1",
    kind = "ErpIdentity",
    namespaced,
    status = "ErpIdentityStatus",
    shortname = "erpid",
    category = "credsync",
    doc = "A security identity in Apex ERP, kept equal to this spec.",
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
pub struct ErpIdentitySpec {
    /// The connection to Apex ERP.
    pub connection_ref: ConnectionRef,
    /// The identity type, the {IdentityType} path segment of the API route.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub identity_type: String,
    /// Identity name; also how an existing identity is found before one is created.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the identity is a role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_role: Option<bool>,
    /// Whether the identity is granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_granted: Option<bool>,
    /// Whether the identity may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<bool>,
    /// The user behind the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<ErpUserInfo>,
    /// Only Orphan: the Apex API cannot delete identities.
    #[serde(default)]
    pub deletion_policy: ErpDeletionPolicy,
}

/// Status of an ErpIdentity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErpIdentityStatus {
    #[serde(flatten)]
    pub sync: SyncStatus,
    /// The IdentityId Apex ERP gave the identity; later saves send it as Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<i64>,
}
