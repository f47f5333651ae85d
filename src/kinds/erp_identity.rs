//! ErpIdentity → Apex ERP security identity.

use std::sync::Arc;

use crate::api::tenancy::{self, TenancyPolicy};
use crate::api::{
    ConnectionRef, DeletionPolicy, ErpIdentity, ErpIdentityStatus, SecretKeyRef, SyncStatus,
};
use crate::error::ReconcileError;
use crate::managed::{Managed, vendor_mismatch};
use crate::secrets::ResolvedSecrets;
use crate::vendors::apex::{ErpIdentityRecord, Identity, IdentityOutputs, SaveRequest, UserInfo};
use crate::vendors::{ExternalClient, VendorClient};

impl Managed for ErpIdentity {
    type Status = ErpIdentityStatus;
    type Outputs = IdentityOutputs;

    fn connection_ref(&self) -> &ConnectionRef {
        &self.spec.connection_ref
    }

    fn record(&self) -> Option<String> {
        // Identities are found by name within their type; compared case-insensitively, as a
        // ServiceStack host over SQL Server usually does (a wider claim never lets two write).
        Some(format!(
            "identity|{}|{}",
            self.spec.identity_type.trim().to_lowercase(),
            self.spec.name.trim().to_lowercase()
        ))
    }

    fn admitted(&self, policy: &TenancyPolicy, _vendor: &VendorClient) -> Result<(), String> {
        let rules = policy.apex_erp.clone().unwrap_or_default();
        if !tenancy::allowed(&rules.identity_types, &self.spec.identity_type) {
            return Err(format!(
                "identity type {:?} is not allowed by the connection's tenancy.apexErp.identityTypes",
                self.spec.identity_type
            ));
        }
        if !tenancy::allowed(&rules.names, &self.spec.name) {
            return Err(format!(
                "identity name {:?} is not allowed by the connection's tenancy.apexErp.names",
                self.spec.name
            ));
        }
        let sys_admin = self
            .spec
            .user_info
            .as_ref()
            .and_then(|u| u.is_sys_admin)
            .unwrap_or(false);
        if sys_admin && !rules.allow_sys_admin {
            return Err(
                "userInfo.isSysAdmin: true makes a system administrator, which the connection does not allow (its tenancy.apexErp.allowSysAdmin is false, the default)"
                    .into(),
            );
        }
        Ok(())
    }

    fn deletion_policy(&self) -> DeletionPolicy {
        // The Apex API has no delete route; the CRD admits only Orphan.
        DeletionPolicy::Orphan
    }

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn sync_status(status: &Self::Status) -> &SyncStatus {
        &status.sync
    }

    fn status_with(&self, sync: SyncStatus, outputs: Option<&IdentityOutputs>) -> Self::Status {
        ErpIdentityStatus {
            sync,
            // A re-created identity has a new id: the newest answer wins.
            identity_id: outputs
                .map(|o| o.identity_id)
                .or_else(|| self.status.as_ref().and_then(|s| s.identity_id)),
        }
    }

    fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        Vec::new()
    }

    fn external(
        &self,
        vendor: &VendorClient,
        _secrets: &ResolvedSecrets,
    ) -> Result<Box<dyn ExternalClient<Outputs = IdentityOutputs>>, ReconcileError> {
        let VendorClient::ApexErp(client) = vendor else {
            return Err(vendor_mismatch("ErpIdentity", "apexErp", vendor));
        };
        let spec = &self.spec;
        let identity = Identity {
            id: 0,
            name: spec.name.clone(),
            description: spec.description.clone(),
            is_role: spec.is_role,
            is_granted: spec.is_granted,
            user_info: spec.user_info.as_ref().map(|u| UserInfo {
                user_name: u.user_name.clone(),
                email: u.email.clone(),
                name: u.name.clone(),
                last_name: u.last_name.clone(),
                blocked: u.blocked,
                phone_number: u.phone_number.clone(),
                birth_date: u.birth_date.clone(),
                language: u.language.clone(),
                email_confirmed: u.email_confirmed,
                is_sys_admin: u.is_sys_admin,
                user_data: u.user_data.clone(),
                display_name: u.display_name.clone(),
                max_session_count: u.max_session_count,
            }),
            spend: spec.spend,
        };
        Ok(Box::new(ErpIdentityRecord {
            client: Arc::clone(client),
            request: SaveRequest {
                identity_type: spec.identity_type.clone(),
                identity,
            },
            known_id: self.status.as_ref().and_then(|s| s.identity_id),
        }))
    }
}
