//! The operator's HTTP endpoints: /healthz (alive: the controllers make progress, see
//! [`crate::liveness`]), /readyz (caches synced, leading or standing by), /metrics
//! (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::liveness::Liveness;

/// Whether the operator is ready to serve (/readyz), and whether it still makes progress
/// (/healthz, see [`Liveness`]).
#[derive(Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    liveness: Liveness,
}

impl Readiness {
    /// Not ready yet, alive as `liveness` says.
    pub fn new(liveness: Liveness) -> Readiness {
        Readiness {
            ready: Arc::default(),
            liveness,
        }
    }
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    pub fn get(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }
}

pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn healthz(State(readiness): State<Readiness>) -> impl IntoResponse {
    match readiness.liveness.check() {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(stuck) => {
            tracing::warn!(%stuck, "/healthz: unhealthy");
            (StatusCode::SERVICE_UNAVAILABLE, stuck)
        }
    }
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::encode(),
    )
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, readiness, shutdown).await
}

/// Serve on a bound listener until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(readiness))
        .with_graceful_shutdown(shutdown)
        .await
}
