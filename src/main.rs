//! The `credsync` binary: `run` serves /healthz, /readyz and /metrics and runs the controllers
//! (behind the leader Lease when several replicas run); `crds` prints the CRDs that `crds/` is
//! generated from. Everything it runs lives in the library.

use std::process::ExitCode;

use clap::Parser;
use credsync::cli::{Cli, Command, RunArgs};
use credsync::liveness::Liveness;
use credsync::server::{self, Readiness};
use credsync::{api, controller, leader, telemetry, webhook};
use tokio_util::sync::CancellationToken;

// The operator allocates many small, short-lived buffers (watch events, JSON, HTTP); glibc's
// malloc spent about a seventh of its CPU on them (make bench, perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keep_memory_in_small_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => match api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("credsync: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => match args.runtime() {
            Ok(runtime) => runtime.block_on(run(args)),
            Err(e) => {
                eprintln!("credsync: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// No transparent huge pages for this process. mimalloc asks for them (and kernels set to
/// `always` give them anyway), but the operator's heap is many small, short-lived objects: a
/// 2 MiB page stays resident while any object on it lives, and each new one is zeroed whole.
/// Without them, at N = 10,000 the operator's peak RSS fell from 86–92 to 66–73 MiB for the
/// same CPU (make bench). Best effort: a kernel without the setting keeps its default.
fn keep_memory_in_small_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("credsync: transparent huge pages stay as the kernel sets them: {e}");
    }
}

/// The API server client, named `credsync/<version>` in its User-Agent: the audit log says who
/// sent each request, and writes without a field manager of their own (kube's finalizer
/// patches) are owned by `credsync` in managedFields rather than by `unknown`.
async fn kube_client() -> Result<kube::Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("credsync/", env!("CARGO_PKG_VERSION"))),
    ));
    kube::Client::try_from(config)
}

async fn run(args: RunArgs) -> ExitCode {
    telemetry::init(&args.log_level, args.log_format);
    credsync::reconcile::isolate::install_panic_hook();
    let client = match kube_client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes client configuration");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let readiness = Readiness::new(Liveness::new(args.liveness_stall_after));
    let server = {
        let shutdown = shutdown.clone();
        tokio::spawn(server::serve(
            args.metrics_addr,
            readiness.clone(),
            async move { shutdown.cancelled().await },
        ))
    };
    // The webhook serves on every replica, leader or not: admission does not wait for a Lease.
    // It stops after the controllers, so that the API server, still sending to a terminating
    // pod until its endpoint is gone, gets answers for a little longer.
    let webhook_stop = CancellationToken::new();
    let webhook = match args.webhook_addr {
        None => None,
        Some(addr) => {
            match webhook::Server::bind(addr, &args.webhook_cert_dir, client.clone()).await {
                Ok(server) => {
                    let stop = webhook_stop.clone();
                    Some(tokio::spawn(
                        server.run(async move { stop.cancelled().await }),
                    ))
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot serve the admission webhook");
                    shutdown.cancel();
                    let _ = server.await;
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let result = match args.leader_election() {
        None => controller::run(client, args.settings(), readiness, shutdown.clone())
            .await
            .map_err(|e| e.to_string()),
        Some(election) => {
            // A standby is healthy and ready; only the leader reconciles.
            readiness.set(true);
            leader::run_controllers_while_leading(
                client,
                &election,
                args.settings(),
                readiness,
                shutdown.clone(),
            )
            .await
        }
    };
    shutdown.cancel();
    let _ = server.await;
    webhook_stop.cancel();
    if let Some(webhook) = webhook {
        let _ = webhook.await;
    }
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "operator failed");
            ExitCode::FAILURE
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
