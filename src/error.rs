//! Everything a reconcile can fail with, classified for kstatus: transient failures keep
//! `Reconciling` and retry with backoff; the rest set `Stalled` and wait for a change.

use std::time::Duration;

use crate::secrets::SecretError;
use crate::vendors::http::TransportError;
use crate::vendors::{ConnectError, VendorError};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A Secret the resource or its connection references.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The connection is missing, not allowed, or of another vendor.
    #[error("{message}")]
    Connection {
        reason: &'static str,
        message: String,
    },
    /// The spec cannot be served as it stands.
    #[error("{message}")]
    InvalidSpec {
        reason: &'static str,
        message: String,
    },
    /// The vendor said no, or could not be reached.
    #[error(transparent)]
    Vendor(#[from] VendorError),
    /// A write failed in a way that leaves the vendor's state unknown (it may have applied
    /// it): the applied fingerprint no longer vouches for what the vendor holds.
    #[error(transparent)]
    OutcomeUnknown(VendorError),
    /// A bug in credsync: the reconcile panicked and was isolated (see `reconcile::isolate`).
    #[error(
        "internal error in credsync while reconciling this object (a bug; the operator logged where); the rest of the operator is unaffected"
    )]
    Internal,
    /// The Kubernetes API failed us.
    #[error("Kubernetes API: {0}")]
    Kube(Box<kube::Error>),
}

impl From<kube::Error> for ReconcileError {
    fn from(err: kube::Error) -> Self {
        ReconcileError::Kube(Box::new(err))
    }
}

impl From<ConnectError> for ReconcileError {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::Secret(e) => ReconcileError::Secret(e),
            ConnectError::Transport(e @ TransportError::AddressNotAllowed(_)) => {
                ReconcileError::Connection {
                    reason: "VendorAddressNotAllowed",
                    message: e.to_string(),
                }
            }
            ConnectError::Transport(e) => ReconcileError::Connection {
                reason: "InvalidConnection",
                message: e.to_string(),
            },
            ConnectError::Invalid(message) => ReconcileError::Connection {
                reason: "InvalidConnection",
                message,
            },
        }
    }
}

impl ReconcileError {
    /// A write failed with `err`: its outcome may be unknown.
    pub fn write_failed(err: VendorError) -> Self {
        if err.outcome_unknown() {
            ReconcileError::OutcomeUnknown(err)
        } else {
            ReconcileError::Vendor(err)
        }
    }

    pub fn invalid(reason: &'static str, message: impl Into<String>) -> Self {
        ReconcileError::InvalidSpec {
            reason,
            message: message.into(),
        }
    }

    pub fn connection(reason: &'static str, message: impl Into<String>) -> Self {
        ReconcileError::Connection {
            reason,
            message: message.into(),
        }
    }

    /// CamelCase condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Secret(e) => e.reason(),
            ReconcileError::Connection { reason, .. }
            | ReconcileError::InvalidSpec { reason, .. } => reason,
            ReconcileError::Vendor(e) | ReconcileError::OutcomeUnknown(e) => e.reason(),
            ReconcileError::Kube(_) => "KubernetesApiError",
            ReconcileError::Internal => "InternalError",
        }
    }

    /// Whether retrying by itself may help.
    pub fn is_transient(&self) -> bool {
        match self {
            ReconcileError::Secret(e) => e.is_transient(),
            ReconcileError::Connection { .. } | ReconcileError::InvalidSpec { .. } => false,
            ReconcileError::Vendor(e) | ReconcileError::OutcomeUnknown(e) => e.is_transient(),
            ReconcileError::Kube(_) | ReconcileError::Internal => true,
        }
    }

    /// The wait the vendor asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ReconcileError::Vendor(e) | ReconcileError::OutcomeUnknown(e) => e.retry_after(),
            _ => None,
        }
    }
}
