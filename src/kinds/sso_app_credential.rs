//! SsoAppCredential → HelloID credential set.

use std::sync::Arc;

use secrecy::SecretString;

use crate::api::tenancy::TenancyPolicy;
use crate::api::{
    ConnectionRef, DeletionPolicy, SecretKeyRef, SsoAppCredential, SsoAppCredentialStatus,
    SyncStatus,
};
use crate::error::ReconcileError;
use crate::managed::{Managed, secret, vendor_mismatch};
use crate::secrets::ResolvedSecrets;
use crate::vendors::helloid::{
    CredentialSet, CredentialSetOutputs, CredentialSetRequest, CredentialValue,
};
use crate::vendors::{ExternalClient, VendorClient};

impl Managed for SsoAppCredential {
    type Status = SsoAppCredentialStatus;
    type Outputs = CredentialSetOutputs;

    fn connection_ref(&self) -> &ConnectionRef {
        &self.spec.connection_ref
    }

    fn record(&self) -> Option<String> {
        // GUIDs in any casing name one record; credential set names are taken as HelloID
        // compares them (case-insensitively, to be safe: a wider claim never lets two write).
        Some(format!(
            "credentialset|{}|{}|{}",
            self.spec.user_guid.trim().to_ascii_lowercase(),
            self.spec.application_guid.trim().to_ascii_lowercase(),
            self.spec.cred_set_name.trim().to_lowercase()
        ))
    }

    fn admitted(&self, policy: &TenancyPolicy, _vendor: &VendorClient) -> Result<(), String> {
        let Some(rules) = &policy.hello_id else {
            return Ok(());
        };
        let listed = |list: &[String], value: &str| {
            list.is_empty()
                || list
                    .iter()
                    .any(|g| g.trim().eq_ignore_ascii_case(value.trim()))
        };
        if !listed(&rules.application_guids, &self.spec.application_guid) {
            return Err(format!(
                "application {} is not in the connection's tenancy.helloId.applicationGuids",
                self.spec.application_guid
            ));
        }
        if !listed(&rules.user_guids, &self.spec.user_guid) {
            return Err(format!(
                "user {} is not in the connection's tenancy.helloId.userGuids",
                self.spec.user_guid
            ));
        }
        Ok(())
    }

    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }

    fn status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn sync_status(status: &Self::Status) -> &SyncStatus {
        &status.sync
    }

    fn status_with(
        &self,
        sync: SyncStatus,
        outputs: Option<&CredentialSetOutputs>,
    ) -> Self::Status {
        SsoAppCredentialStatus {
            sync,
            // An answer that did not show the GUID keeps the one the status holds.
            credential_set_guid: outputs.and_then(|o| o.credential_set_guid.clone()).or_else(
                || {
                    self.status
                        .as_ref()
                        .and_then(|s| s.credential_set_guid.clone())
                },
            ),
        }
    }

    fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        self.spec
            .credentials
            .iter()
            .filter_map(|c| c.value_from.as_ref().map(|v| &v.secret_key_ref))
            .collect()
    }

    fn external(
        &self,
        vendor: &VendorClient,
        secrets: &ResolvedSecrets,
    ) -> Result<Box<dyn ExternalClient<Outputs = CredentialSetOutputs>>, ReconcileError> {
        let VendorClient::HelloId(client) = vendor else {
            return Err(vendor_mismatch("SsoAppCredential", "helloId", vendor));
        };
        let credentials = self
            .spec
            .credentials
            .iter()
            .map(|c| {
                let value = match (&c.value, &c.value_from) {
                    (Some(v), None) => SecretString::from(v.clone()),
                    (None, Some(from)) => secret(secrets, &from.secret_key_ref)?.clone(),
                    _ => {
                        return Err(ReconcileError::invalid(
                            "InvalidSpec",
                            format!(
                                "credential {:?} must set exactly one of value and valueFrom",
                                c.function
                            ),
                        ));
                    }
                };
                Ok(CredentialValue {
                    function: c.function.clone(),
                    value,
                    user_edit_allowed: true,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(CredentialSet {
            client: Arc::clone(client),
            user_guid: self.spec.user_guid.clone(),
            request: CredentialSetRequest {
                application_guid: self.spec.application_guid.clone(),
                cred_set_name: self.spec.cred_set_name.clone(),
                credentials,
            },
        }))
    }
}
