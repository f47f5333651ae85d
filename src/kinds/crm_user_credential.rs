//! CrmUserCredential → SuperOffice untrusted credentials or an Oracle CRM On Demand password.

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::api::tenancy::{self, TenancyPolicy};
use crate::api::{
    ConnectionRef, CrmUserCredential, CrmUserCredentialStatus, DeletionPolicy, SecretKeyRef,
    SyncStatus,
};
use crate::error::ReconcileError;
use crate::managed::{Managed, secret, vendor_mismatch};
use crate::secrets::ResolvedSecrets;
use crate::vendors::oracle::{PasswordUser, UserPassword};
use crate::vendors::superoffice::{CredentialSpec, UntrustedCredentials, UserCredentials};
use crate::vendors::{ExternalClient, VendorClient};

impl Managed for CrmUserCredential {
    type Status = CrmUserCredentialStatus;
    /// Neither SuperOffice nor Oracle answers anything the status keeps.
    type Outputs = ();

    fn connection_ref(&self) -> &ConnectionRef {
        &self.spec.connection_ref
    }

    fn record(&self) -> Option<String> {
        match (&self.spec.super_office, &self.spec.oracle_crm_on_demand) {
            (Some(so), _) => Some(format!(
                "untrusted|{}|{}|{}",
                so.associate_id
                    .map_or_else(|| "self".to_string(), |a| a.to_string()),
                so.credential_type.trim().to_lowercase(),
                so.public_value
            )),
            (None, Some(oracle)) => Some(format!("user|{}", oracle.user_id.trim().to_uppercase())),
            (None, None) => None,
        }
    }

    fn admitted(&self, policy: &TenancyPolicy, vendor: &VendorClient) -> Result<(), String> {
        if let (Some(so), Some(rules)) = (&self.spec.super_office, &policy.super_office) {
            if !tenancy::allowed(&rules.types, &so.credential_type) {
                return Err(format!(
                    "credential type {:?} is not allowed by the connection's tenancy.superOffice.types",
                    so.credential_type
                ));
            }
            if !rules.associate_ids.is_empty()
                && !so
                    .associate_id
                    .is_some_and(|a| rules.associate_ids.contains(&a))
            {
                return Err(format!(
                    "associate {} is not in the connection's tenancy.superOffice.associateIds",
                    so.associate_id.map_or_else(
                        || "(the connection's own user)".to_string(),
                        |a| a.to_string()
                    )
                ));
            }
        }
        if let Some(o) = &self.spec.oracle_crm_on_demand {
            if let VendorClient::OracleCrmOnDemand(client) = vendor
                && (client.is_login_user(&o.user_id)
                    || o.email_addr
                        .as_deref()
                        .is_some_and(|e| client.is_login_user(e)))
            {
                return Err(
                    "the user is the connection's own login (the integration user): its password is never set through the connection"
                        .into(),
                );
            }
            let rules = policy.oracle_crm_on_demand.clone().unwrap_or_default();
            if rules
                .protected_user_ids
                .iter()
                .any(|p| tenancy::glob(p, &o.user_id))
            {
                return Err(format!(
                    "user {:?} is protected by the connection's tenancy.oracleCrmOnDemand.protectedUserIds",
                    o.user_id
                ));
            }
            if !tenancy::allowed(&rules.user_ids, &o.user_id) {
                return Err(format!(
                    "user {:?} is not allowed by the connection's tenancy.oracleCrmOnDemand.userIds",
                    o.user_id
                ));
            }
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

    fn status_with(&self, sync: SyncStatus, _outputs: Option<&()>) -> Self::Status {
        CrmUserCredentialStatus { sync }
    }

    fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        let mut refs = Vec::new();
        if let Some(so) = &self.spec.super_office {
            refs.push(&so.secret_value_from.secret_key_ref);
        }
        if let Some(o) = &self.spec.oracle_crm_on_demand {
            refs.push(&o.password_from.secret_key_ref);
        }
        refs
    }

    fn external(
        &self,
        vendor: &VendorClient,
        secrets: &ResolvedSecrets,
    ) -> Result<Box<dyn ExternalClient<Outputs = ()>>, ReconcileError> {
        match (
            vendor,
            &self.spec.oracle_crm_on_demand,
            &self.spec.super_office,
        ) {
            (VendorClient::OracleCrmOnDemand(client), Some(o), _) => {
                let r = &o.password_from.secret_key_ref;
                let password = secret(secrets, r)?;
                if password.expose_secret().is_empty() {
                    return Err(ReconcileError::invalid(
                        "SecretValueInvalid",
                        format!(
                            "Secret {} key {} is empty; Oracle needs a password",
                            r.name, r.key
                        ),
                    ));
                }
                Ok(Box::new(UserPassword {
                    client: Arc::clone(client),
                    user: PasswordUser {
                        user_id: o.user_id.clone(),
                        email_addr: o.email_addr.clone(),
                        password: password.clone(),
                        integration_id: o.integration_id.clone(),
                        external_system_id: o.external_system_id.clone(),
                    },
                }))
            }
            (VendorClient::SuperOffice(client), _, Some(so)) => {
                let r = &so.secret_value_from.secret_key_ref;
                let value = secret(secrets, r)?;
                // SuperOffice stores at most 70 characters; say so before the vendor truncates or refuses.
                let length = value.expose_secret().chars().count();
                if length > 70 {
                    return Err(ReconcileError::invalid(
                        "SecretValueTooLong",
                        format!(
                            "Secret {} key {} holds {length} characters; SuperOffice accepts at most 70",
                            r.name, r.key
                        ),
                    ));
                }
                for (field, time) in [("validFrom", &so.valid_from), ("validTo", &so.valid_to)] {
                    if let Some(t) = time
                        && t.parse::<k8s_openapi::jiff::Timestamp>().is_err()
                    {
                        return Err(ReconcileError::invalid(
                            "InvalidSpec",
                            format!("spec.superOffice.{field} {t:?} is not an RFC 3339 time"),
                        ));
                    }
                }
                Ok(Box::new(UserCredentials {
                    client: Arc::clone(client),
                    spec: CredentialSpec {
                        credential_type: so.credential_type.clone(),
                        associate_id: so.associate_id,
                        credentials: UntrustedCredentials {
                            valid_from: so.valid_from.clone(),
                            valid_to: so.valid_to.clone(),
                            comment: so.comment.clone().unwrap_or_default(),
                            secret_value: value.clone(),
                            public_value: so.public_value.clone(),
                            is_active: so.active,
                        },
                    },
                }))
            }
            _ => Err(vendor_mismatch(
                "CrmUserCredential",
                "superOffice or oracleCrmOnDemand",
                vendor,
            )),
        }
    }
}
