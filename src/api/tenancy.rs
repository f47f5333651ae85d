//! What the resources using a connection may target in its vendor (`spec.tenancy`). One
//! connection, often a ClusterVendorConnection with one admin account, serves many teams: the
//! platform team limits which records they may touch and which privileged settings they may
//! set. Absent lists allow any record; privileged settings are refused unless allowed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Limits on what resources using this connection may target; a violation is `PolicyDenied`
/// and nothing is sent. Only the block of the connection's vendor applies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenancyPolicy {
    /// SuperOffice untrusted credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_office: Option<SuperOfficeTenancy>,
    /// Oracle CRM On Demand users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_crm_on_demand: Option<OracleTenancy>,
    /// Apex ERP identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex_erp: Option<ApexTenancy>,
    /// HelloID credential sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_id: Option<HelloIdTenancy>,
}

/// Which SuperOffice untrusted credentials resources may manage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SuperOfficeTenancy {
    /// Credential types allowed (patterns, `*` matches any text, case-insensitive); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// Associates whose credentials may be managed (`...ForAssociate`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub associate_ids: Vec<i32>,
}

/// Which Oracle CRM On Demand users' passwords resources may set. The connection's own login
/// user can never be targeted through it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct OracleTenancy {
    /// User ids allowed (patterns, `*` matches any text, case-insensitive); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    /// User ids never allowed, whatever `userIds` says: list the integration user's row id
    /// here (its login name is refused already).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_user_ids: Vec<String>,
}

/// Which Apex ERP identities resources may manage, and with which privileges.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApexTenancy {
    /// Identity types allowed (patterns, `*` matches any text, case-insensitive); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_types: Vec<String>,
    /// Identity names allowed (patterns, `*` matches any text, case-insensitive); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Whether `userInfo.isSysAdmin: true` may be set. Default false: a tenant cannot make a
    /// system administrator through a shared connection.
    #[serde(default)]
    pub allow_sys_admin: bool,
}

/// Which HelloID credential sets resources may manage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HelloIdTenancy {
    /// Application GUIDs allowed (case-insensitive); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_guids: Vec<String>,
    /// End-user GUIDs allowed (case-insensitive); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_guids: Vec<String>,
}

/// Whether `value` matches one of `patterns` (`*` matches any text, case-insensitive); an
/// empty list allows everything.
pub fn allowed(patterns: &[String], value: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob(p, value))
}

/// `*`-glob, case-insensitive, without backtracking blow-up (greedy with one restart point).
pub fn glob(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (pattern, value, expected) in [
            ("team-a-*", "TEAM-A-jdoe", true),
            ("team-a-*", "team-b-jdoe", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exact2", false),
            ("*-svc", "billing-svc", true),
        ] {
            assert_eq!(glob(pattern, value), expected, "{pattern} {value}");
        }
        assert!(allowed(&[], "anything"));
        assert!(!allowed(&["x".into()], "y"));
    }
}
