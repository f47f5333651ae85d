//! What a kind provides to the generic reconciler: where its connection and Secrets are, how its
//! spec becomes a vendor [`ExternalClient`], and how vendor outputs sit in its status.

use std::fmt::Debug;

use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ConnectionRef, DeletionPolicy, SecretKeyRef, SyncStatus, TenancyPolicy};
use crate::error::ReconcileError;
use crate::secrets::ResolvedSecrets;
use crate::vendors::{ExternalClient, VendorClient};

/// A credsync kind managed by the generic reconciler.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The kind's status type: [`SyncStatus`] plus its vendor outputs.
    type Status: Serialize + Clone + PartialEq + Debug + Send + Sync;
    /// What the kind's vendor clients return that its status keeps (their
    /// [`ExternalClient::Outputs`]); the generic reconciler only carries it.
    type Outputs: Clone + Debug + Send + Sync + 'static;

    /// The connection the resource uses.
    fn connection_ref(&self) -> &ConnectionRef;
    /// What to do in the vendor on deletion.
    fn deletion_policy(&self) -> DeletionPolicy;
    /// The current status, if any.
    fn status(&self) -> Option<&Self::Status>;
    /// The shared part of a status.
    fn sync_status(status: &Self::Status) -> &SyncStatus;
    /// The next status: `sync` as its shared part, and the kind's own fields from the current
    /// status updated by `outputs`, the newest vendor answer this process knows of (None: none
    /// newer than the status). A field the answer leaves empty keeps what the status holds.
    fn status_with(&self, sync: SyncStatus, outputs: Option<&Self::Outputs>) -> Self::Status;
    /// The identity of the vendor record the resource manages, unique within one endpoint (see
    /// [`super::claims`]); None when the spec names no record of any vendor.
    fn record(&self) -> Option<String>;
    /// Whether the connection's tenancy policy lets the resource target its record with its
    /// settings; the reason when not. Also refuses what no connection may be used for (e.g. its
    /// own login user).
    fn admitted(&self, policy: &TenancyPolicy, vendor: &VendorClient) -> Result<(), String>;
    /// Every Secret key the spec references, all in the resource's own namespace.
    fn secret_refs(&self) -> Vec<&SecretKeyRef>;
    /// Bind the desired state to the connection's vendor client. Fails when the spec does not
    /// fit the vendor (wrong vendor block, value over the vendor's limits).
    fn external(
        &self,
        vendor: &VendorClient,
        secrets: &ResolvedSecrets,
    ) -> Result<Box<dyn ExternalClient<Outputs = Self::Outputs>>, ReconcileError>;
}

/// The value behind a reference the reconciler resolved; only fails if a kind forgot to list a
/// reference in [`Managed::secret_refs`].
pub fn secret<'a>(
    secrets: &'a ResolvedSecrets,
    r: &SecretKeyRef,
) -> Result<&'a secrecy::SecretString, ReconcileError> {
    secrets.get(r).ok_or_else(|| {
        ReconcileError::invalid(
            "SecretNotResolved",
            format!("Secret {} key {} was not resolved", r.name, r.key),
        )
    })
}

/// The error for a spec whose vendor block does not match its connection's vendor.
pub fn vendor_mismatch(kind: &str, expected: &str, vendor: &VendorClient) -> ReconcileError {
    ReconcileError::invalid(
        "VendorMismatch",
        format!(
            "the {kind} sets no {expected} block matching its connection, whose vendor is {}; set spec.{} or use another connection",
            vendor.vendor(),
            vendor.vendor()
        ),
    )
}
