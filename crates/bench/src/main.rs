//! `make bench`: how fast and how lightly credsync brings many resources to Ready, against the
//! floor that no controller can beat on the same machine. See docs/benchmarks.md.
//!
//! One local control plane (etcd + kube-apiserver) and in-process vendor simulators serve every
//! phase; the operator runs as a separate process (the release `credsync run` binary) so its
//! peak RSS and CPU seconds are its own, and it talks to the API server as the impersonated user
//! `credsync-operator`, so the audit log tells its requests apart from the benchmark's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use credsync_testkit::ControlPlane;

mod audit;
mod children;
mod cluster;
mod drive;
mod peer;
mod phases;
mod procstat;
mod report;
mod scale;
mod stages;
mod workloads;

use crate::children::impersonating_kubeconfig;
use crate::drive::Env;
use crate::peer::prepare_eso;
use crate::report::{command_line, latency_svg, peer_svg, report};
use crate::scale::scale_report;

/// The operator's identity in the audit log.
pub(crate) const OPERATOR_USER: &str = "credsync-operator";
pub(crate) const OPERATOR_NAMESPACE: &str = "credsync-system";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "credsync-bench",
    about = "Benchmark credsync against the floor (see docs/benchmarks.md)"
)]
pub(crate) struct Args {
    /// Resource counts to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    pub(crate) n: Vec<usize>,
    /// Simulated vendor latencies in milliseconds (comma-separated).
    #[arg(long = "latency-ms", value_delimiter = ',', default_values_t = [0u64, 50])]
    pub(crate) latency_ms: Vec<u64>,
    /// Resources (and Secrets) of the peer phase: credsync and the External Secrets Operator
    /// push the same N values side by side (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub(crate) peer_n: usize,
    /// Longest wait for ESO's rotation in the peer phase: it re-pushes only on its
    /// refreshInterval (1 h by default), so with its defaults the wait ends here.
    #[arg(long, default_value_t = 120)]
    pub(crate) peer_rotation_wait_secs: u64,
    /// Scale run instead of the full run: --scale-n SsoAppCredentials (inline values), time to
    /// all Ready, p99 create→Ready, peak RSS, steady state, API requests per resource.
    #[arg(long)]
    pub(crate) scale: bool,
    /// Resources in the --scale run.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) scale_n: usize,
    /// Smoke run: N=200, 10 s steady window, 200 rotated Secrets, 1,000 unrelated Secrets.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Operator `--concurrency`, the connection's maxConcurrentRequests in 0 ms runs, and the
    /// floor's workers in 0 ms runs.
    #[arg(long, default_value_t = 32)]
    pub(crate) concurrency: u32,
    /// The connection's maxConcurrentRequests (and the floor's workers) in runs with vendor
    /// latency: throughput should approach this / latency (per connection; there is one
    /// connection per kind). Small enough that the ceiling stays under what the API server of a
    /// 2-core machine takes, so the runs show the vendor limit, not the API server's.
    #[arg(long, default_value_t = 2)]
    pub(crate) latency_concurrency: u32,
    /// Create requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub(crate) create_concurrency: usize,
    /// Runs of each case without vendor latency (the floor and credsync each time, who goes
    /// first alternating). Their throughput depends on CPUs shared with everything else (single
    /// runs of one build scattered by ±12%), so the targets are judged on the median run; with
    /// vendor latency the vendor is the limit and one run is enough.
    #[arg(long, default_value_t = 5)]
    pub(crate) repeat: usize,
    /// Idle window of the steady-state phase, in seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) steady_secs: u64,
    /// Secrets updated at once in the rotation phase (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub(crate) rotation: usize,
    /// Unrelated 10 KiB Secrets in the memory phase (0 skips it).
    #[arg(long, default_value_t = 5000)]
    pub(crate) noise_secrets: usize,
    /// Waves of the churn phase: create --churn-n resources, wait until they are Ready, delete
    /// them all; operator RSS after each wave (0 skips it).
    #[arg(long, default_value_t = 10)]
    pub(crate) churn_waves: usize,
    /// Resources created and deleted in each churn wave.
    #[arg(long, default_value_t = 2000)]
    pub(crate) churn_n: usize,
    /// Skip the floor runs.
    #[arg(long)]
    pub(crate) skip_floor: bool,
    /// The credsync binary (default: `credsync` next to this binary).
    #[arg(long)]
    pub(crate) operator_bin: Option<PathBuf>,
    /// Where report.md, latency.svg and the operator logs go.
    #[arg(long, default_value = "target/bench")]
    pub(crate) out: PathBuf,
}

impl Args {
    pub(crate) fn apply_quick(&mut self) {
        self.repeat = self.repeat.max(1);
        if self.quick {
            self.n = vec![200];
            self.repeat = 1;
            self.steady_secs = 10;
            self.rotation = self.rotation.min(200);
            self.noise_secrets = self.noise_secrets.min(1000);
            self.churn_waves = self.churn_waves.min(3);
            self.churn_n = self.churn_n.min(200);
            self.peer_n = self.peer_n.min(200);
            self.peer_rotation_wait_secs = self.peer_rotation_wait_secs.min(40);
        }
        self.n.sort_unstable();
        self.n.dedup();
    }
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    args.apply_quick();
    let started = Instant::now();
    let operator_bin = args.operator_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("this binary's path")
            .with_file_name("credsync")
    });
    assert!(
        operator_bin.is_file(),
        "no operator binary at {} (build it: cargo build --release --bin credsync)",
        operator_bin.display()
    );
    std::fs::create_dir_all(&args.out).expect("create the output folder");
    let out = args.out.canonicalize().expect("output folder");

    let cp = ControlPlane::start()
        .await
        .expect("control plane must start (see KUBEBUILDER_ASSETS / hack/build-tools.sh)");
    cp.install_crds(&credsync::api::crds())
        .await
        .expect("install the CRDs");
    cp.create_namespace(OPERATOR_NAMESPACE, BTreeMap::new())
        .await
        .expect("create the operator namespace");
    let operator_kubeconfig = impersonating_kubeconfig(&cp, &out, OPERATOR_USER);
    let clk_tck = command_line("getconf", &["CLK_TCK"])
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(100.0);
    // The peer runs when hack/build-tools.sh eso has built ESO (and not in a --scale run).
    let eso = if args.scale || args.peer_n == 0 {
        None
    } else {
        prepare_eso(&cp, &out).await
    };
    let env = Env {
        eso,
        client: cp.client(),
        cp,
        args: args.clone(),
        operator_bin,
        operator_kubeconfig,
        out: out.clone(),
        clk_tck,
    };

    if args.scale {
        let scale = env.scale().await;
        let text = scale_report(&env, &scale, started.elapsed());
        std::fs::write(out.join("scale.md"), &text).expect("write scale.md");
        println!("{text}");
        eprintln!("bench: wrote {}", out.join("scale.md").display());
        return;
    }

    let steady_n = args.n.iter().copied().max().unwrap_or(0);
    let steady_latency = args.latency_ms.iter().copied().min().unwrap_or(0);
    let mut cases = Vec::new();
    for &n in &args.n {
        for &latency in &args.latency_ms {
            let runs = if latency == 0 { args.repeat } else { 1 };
            for run in 1..=runs {
                // The steady phase follows the last run of the largest N.
                let steady = n == steady_n
                    && latency == steady_latency
                    && run == runs
                    && args.steady_secs > 0;
                cases.push(env.case(n, latency, run, steady).await);
            }
        }
    }
    let rotation = if args.rotation > 0 {
        Some(env.rotation().await)
    } else {
        None
    };
    let (peer_floor, peer_runs) = if args.peer_n > 0 {
        env.peer().await
    } else {
        (None, Vec::new())
    };
    let memory = if args.noise_secrets > 0 {
        Some(env.memory().await)
    } else {
        None
    };
    let churn = if args.churn_waves > 0 && args.churn_n > 0 {
        Some(env.churn().await)
    } else {
        None
    };

    let mut text = report(
        &env,
        &cases,
        rotation.as_ref(),
        memory.as_ref(),
        churn.as_ref(),
        peer_floor.as_ref(),
        &peer_runs,
    );
    let _ = writeln!(
        text,
        "\nBenchmark wall time: {:.0} s. Plots: latency.svg, peer.svg.",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(out.join("report.md"), &text).expect("write report.md");
    std::fs::write(out.join("latency.svg"), latency_svg(&cases)).expect("write latency.svg");
    if !peer_runs.is_empty() {
        std::fs::write(
            out.join("peer.svg"),
            peer_svg(peer_floor.as_ref(), &peer_runs),
        )
        .expect("write peer.svg");
    }
    println!("{text}");
    eprintln!(
        "bench: wrote {} and {}",
        out.join("report.md").display(),
        out.join("latency.svg").display()
    );
}
