//! credsync: a Kubernetes operator that keeps user credentials and identities in CRM, ERP and SSO
//! systems equal to what custom resources declare.
//!
//! Layout: [`api`] holds the CRD types; [`reconcile`] the one generic reconciler every kind runs
//! on; [`vendors`] one module per vendor (its connection block, connect, and wire client behind
//! [`vendors::ExternalClient`]); [`connections`] the connection check, client cache, dependency
//! index and triggers; [`secrets`] reads referenced Secrets; [`telemetry`] and [`metrics`]
//! logging and Prometheus; [`sync`] the one way to take a lock; [`changes`] which watch events
//! reach a reconciler; [`controller`] only wires kinds, watches and tasks together; [`webhook`]
//! is the optional admission webhook that refuses references to Secrets the requesting user
//! cannot read.

pub mod api;
pub mod changes;
pub mod cli;
pub mod connections;
pub mod controller;
pub mod fence;
pub mod io_batching;
pub mod kinds;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod reconcile;
pub mod secrets;
pub mod server;
pub mod sync;
pub mod telemetry;
pub mod vendors;
pub mod webhook;
pub mod work_queue;
