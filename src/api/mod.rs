//! The custom resource types of credsync.io/v1alpha1, one file per kind.

// `#[kube(printcolumn(..), printcolumn(..))]` repeats keys by design; clippy reads that as a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod connection;
pub mod crm_user_credential;
pub mod erp_identity;
pub mod sso_app_credential;
pub mod tenancy;

pub use common::*;
pub use connection::*;
pub use crm_user_credential::*;
pub use erp_identity::*;
pub use sso_app_credential::*;
pub use tenancy::TenancyPolicy;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD credsync serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        VendorConnection::crd(),
        ClusterVendorConnection::crd(),
        CrmUserCredential::crd(),
        ErpIdentity::crd(),
        SsoAppCredential::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream, as `credsync crds` prints it and `crds/` holds it.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
