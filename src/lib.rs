//! credsync: a Kubernetes operator that keeps user credentials and identities in CRM, ERP and SSO
//! systems equal to what custom resources declare.
//!
//! Layout: [`api`] holds the CRD types; [`managed`] what each kind gives the reconciler, [`kinds`]
//! each kind's answer; [`reconcile`] the one generic reconciler every kind runs on, and the
//! connection reconciler; [`error`] what a reconcile fails with; [`scrub`] takes secret values
//! out of vendor texts; [`vendors`] one module per vendor (its connection block, connect, and
//! wire client behind [`vendors::ExternalClient`]); [`connections`] connection resolution, the
//! client cache and the dependency index; [`triggers`] turns Secret and connection changes into
//! re-checks; [`secrets`] reads referenced Secrets; [`telemetry`] and [`metrics`]
//! logging and Prometheus; [`sync`] the one way to take a lock; [`changes`] which watch events
//! reach a reconciler; [`controller`] only wires kinds, watches and tasks together; [`webhook`]
//! is the optional admission webhook that refuses references to Secrets the requesting user
//! cannot read, [`serving_cert`] its certificate, followed as cert-manager renews it.

pub mod api;
pub mod changes;
pub mod cli;
pub mod connections;
pub mod controller;
pub mod error;
pub mod fence;
pub mod io_batching;
pub mod kinds;
pub mod leader;
pub mod liveness;
pub mod managed;
pub mod metrics;
pub mod reconcile;
pub mod scrub;
pub mod secrets;
pub mod server;
pub mod serving_cert;
pub mod sync;
pub mod telemetry;
pub mod triggers;
pub mod vendors;
pub mod webhook;
pub mod work_queue;
