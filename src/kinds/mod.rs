//! How each managed kind maps onto the vendors: its [`Managed`](crate::reconcile::managed::Managed)
//! implementation, one file per kind.

pub mod crm_user_credential;
pub mod erp_identity;
pub mod sso_app_credential;
