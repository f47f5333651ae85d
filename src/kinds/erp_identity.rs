//! ErpIdentity → Apex ERP security identity.

use crate::api::{
    ConnectionRef, DeletionPolicy, ErpIdentity, ErpIdentityStatus, SecretKeyRef, SyncStatus,
};
use crate::reconcile::error::ReconcileError;
use crate::reconcile::managed::{Managed, vendor_mismatch};
use crate::secrets::ResolvedSecrets;
use crate::vendors::{ExternalClient, Outputs, VendorClient};

impl Managed for ErpIdentity {
    type Status = ErpIdentityStatus;

    fn connection_ref(&self) -> &ConnectionRef {
        &self.spec.connection_ref
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

    fn make_status(sync: SyncStatus, outputs: Outputs) -> Self::Status {
        ErpIdentityStatus {
            sync,
            identity_id: outputs.identity_id,
        }
    }

    fn outputs(&self) -> Outputs {
        Outputs {
            identity_id: self.status.as_ref().and_then(|s| s.identity_id),
            ..Outputs::default()
        }
    }

    fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        Vec::new()
    }

    fn external(
        &self,
        vendor: &VendorClient,
        _secrets: &ResolvedSecrets,
    ) -> Result<Box<dyn ExternalClient>, ReconcileError> {
        Err(vendor_mismatch("ErpIdentity", "apexErp", vendor))
    }
}
