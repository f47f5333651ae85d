//! Development helpers for `make demo`: a local control plane and the vendor simulators, each
//! running until interrupted.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use credsync_testkit::ControlPlane;
use credsync_testkit::sim::{self, DemoPorts};

#[derive(Parser)]
#[command(
    name = "credsync-dev",
    about = "Local control plane and vendor simulators for credsync demos and tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start etcd + kube-apiserver, install the credsync CRDs, write a kubeconfig, print `ready`.
    ControlPlane {
        /// Where to write the kubeconfig.
        #[arg(long)]
        kubeconfig_out: PathBuf,
    },
    /// Serve every vendor simulator with the demo credentials examples/ uses, print `ready`.
    Simulators {
        #[arg(long, default_value_t = 18081)]
        helloid_port: u16,
        #[arg(long, default_value_t = 18082)]
        superoffice_port: u16,
        #[arg(long, default_value_t = 18083)]
        oracle_port: u16,
        #[arg(long, default_value_t = 18084)]
        apex_port: u16,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("credsync-dev: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    // Listen for SIGTERM/SIGINT from the start, so a stop during start-up still tears down the
    // child processes (dropping the start future kills them) instead of orphaning them.
    let mut stop = Box::pin(stop_signal()?);
    match command {
        Command::ControlPlane { kubeconfig_out } => {
            let started = async {
                let cp = ControlPlane::start().await?;
                cp.install_crds(&credsync::api::crds()).await?;
                Ok::<_, credsync_testkit::DevError>(cp)
            };
            let cp = tokio::select! {
                cp = started => cp?,
                () = &mut stop => return Err("stopped before the control plane was ready".into()),
            };
            std::fs::copy(cp.kubeconfig_path(), &kubeconfig_out)?;
            println!(
                "kube-apiserver {} kubeconfig={}",
                cp.server_version(),
                kubeconfig_out.display()
            );
            println!("ready");
            stop.await;
            eprintln!("credsync-dev: stopping kube-apiserver and etcd");
            drop(cp);
        }
        // ---- simulators (credsync_testkit::sim) ----
        Command::Simulators {
            helloid_port,
            superoffice_port,
            oracle_port,
            apex_port,
        } => {
            let servers = sim::start_demo(DemoPorts {
                helloid: helloid_port,
                superoffice: superoffice_port,
                oracle: oracle_port,
                apex: apex_port,
            })
            .await?;
            for (name, server) in &servers {
                println!("{name}={}", server.url());
            }
            println!("ready");
            stop.await;
        }
    }
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT; the handlers are installed when this is called.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
