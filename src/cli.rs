//! Command line of the `credsync` binary.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::controller::Settings;
use crate::telemetry::LogFormat;
use crate::vendors::http::{
    DEFAULT_MAX_LISTING_BYTES, DEFAULT_MAX_RESPONSE_BYTES, TransportPolicy,
};

#[derive(Parser, Debug)]
#[command(
    name = "credsync",
    version,
    about = "Keeps user credentials in CRM, ERP and SSO systems equal to Kubernetes resources"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once at start
pub enum Command {
    /// Run the operator.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "CREDSYNC_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Log level (overridden by RUST_LOG).
    #[arg(long, env = "CREDSYNC_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = "CREDSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Namespace of the operator's own objects (its fingerprint key Secret and Lease).
    #[arg(long, env = "POD_NAMESPACE", default_value = "credsync-system")]
    pub operator_namespace: String,
    /// Name of the Secret that holds the fingerprint HMAC key; created when absent.
    #[arg(
        long,
        env = "CREDSYNC_FINGERPRINT_SECRET",
        default_value = "credsync-fingerprint-key"
    )]
    pub fingerprint_secret: String,
    /// How often vendors that can be read back are checked for drift.
    #[arg(long, env = "CREDSYNC_DRIFT_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub drift_interval: Duration,
    /// Reconciles running at once, per kind.
    #[arg(long, env = "CREDSYNC_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Threads that run the operator's work. The work is waiting on the API server and the
    /// vendors, so one thread (the default) does it with the least CPU: no hand-offs between
    /// threads. More only help when one core cannot keep up (make bench shows the operator's CPU).
    #[arg(long, env = "CREDSYNC_WORKER_THREADS", default_value_t = NonZeroUsize::MIN)]
    pub worker_threads: NonZeroUsize,
    /// Under load, when the operator has nothing left to run, it waits this long before asking
    /// the kernel for more network events, so a burst is handled in batches rather than one
    /// wake-up per answer: at N = 10,000 (make bench) 2ms took the operator's CPU down by a
    /// fifth and its context switches by 60%, and 5ms the API server's work for it by a little
    /// more. Only while events come faster than this and no reconcile waits for a turn; each
    /// step of a sync may then wait this much longer. 0 turns it off. At most 50ms.
    #[arg(long, env = "CREDSYNC_IO_BATCH_WINDOW", default_value = "5ms", value_parser = parse_io_batch_window)]
    pub io_batch_window: Duration,
    /// Allow plain http:// vendor URLs. For tests and demos only.
    #[arg(long, env = "CREDSYNC_ALLOW_HTTP")]
    pub allow_http: bool,
    /// Only these vendor hosts may be called (comma-separated); all when unset.
    #[arg(long, env = "CREDSYNC_ALLOWED_VENDOR_HOSTS", value_delimiter = ',')]
    pub allowed_vendor_hosts: Option<Vec<String>>,
    /// Allow vendor addresses in loopback, link-local, private and unique-local ranges (an
    /// on-premises vendor, tests, the demo). Without it such addresses are refused, checked on
    /// the resolved address at every connect; prefer naming such hosts in --allowed-vendor-hosts.
    #[arg(long, env = "CREDSYNC_ALLOW_PRIVATE_VENDOR_ADDRESSES")]
    pub allow_private_vendor_addresses: bool,
    /// Largest vendor response body read, in bytes.
    #[arg(long, env = "CREDSYNC_MAX_RESPONSE_BYTES", default_value_t = DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
    /// Largest listing of every record of a type read, in bytes (Apex lookups before a create).
    #[arg(long, env = "CREDSYNC_MAX_LISTING_BYTES", default_value_t = DEFAULT_MAX_LISTING_BYTES)]
    pub max_listing_bytes: usize,
    /// First retry delay after a transient failure (doubles up to --backoff-max).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub backoff_base: Duration,
    /// Serve only this namespace: its resources, VendorConnections and Secrets (RBAC can then be
    /// a Role there). ClusterVendorConnections are still read cluster-wide.
    #[arg(long, env = "CREDSYNC_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Serve only resources matching this label selector, to shard them across Deployments.
    #[arg(long, env = "CREDSYNC_SELECTOR")]
    pub selector: Option<String>,
    /// Hold a Lease while active, so several replicas can run with one of them at work.
    #[arg(long, env = "CREDSYNC_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Name of the leader Lease (in --operator-namespace).
    #[arg(long, default_value = "credsync-leader")]
    pub lease_name: String,
    /// Seconds the leader Lease lasts without renewal; a standby takes over after at most this.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// This replica's identity in the Lease (defaults to the pod name or host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// /healthz fails once a watch has only failed, or reconciles in flight have not
    /// finished, for this long (the kubelet then restarts the operator). Keep it above the
    /// longest vendor timeoutSeconds.
    #[arg(long, env = "CREDSYNC_LIVENESS_STALL_AFTER", default_value = "5m", value_parser = humantime::parse_duration)]
    pub liveness_stall_after: Duration,
    /// Largest retry delay after transient failures.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub backoff_max: Duration,
    /// Normal events (such as Synced) published per second at most, with a burst of ten
    /// seconds' worth; beyond it they are dropped and counted. Warnings are not limited. 0: none.
    #[arg(long, env = "CREDSYNC_NORMAL_EVENTS_PER_SECOND", default_value_t = 10)]
    pub normal_events_per_second: u32,

    // The admission webhook (docs/multi-tenancy-webhook.md); off unless --webhook-addr is set.
    /// Serve the admission webhook (https, POST /validate) on this address; off when unset.
    #[arg(long, env = "CREDSYNC_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Folder holding the webhook's serving certificate and key as tls.crt and tls.key (a
    /// mounted kubernetes.io/tls Secret). Read once at start.
    #[arg(
        long,
        env = "CREDSYNC_WEBHOOK_CERT_DIR",
        default_value = "/etc/credsync/webhook-tls"
    )]
    pub webhook_cert_dir: PathBuf,
}

impl RunArgs {
    /// The async runtime the operator runs on: one thread by default, where a request handed
    /// to its connection's task and the answer handed back are plain queue pushes. With several
    /// threads every such hand-off on a busy node was a futex wake and a context switch, over a
    /// third of the operator's CPU (make bench, perf).
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = if self.worker_threads.get() == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(self.worker_threads.get());
            builder
        };
        crate::io_batching::install(
            &mut builder,
            self.io_batch_window,
            crate::work_queue::anyone_waiting,
        );
        builder.enable_all().build()
    }

    /// Leader election settings, when enabled.
    pub fn leader_election(&self) -> Option<crate::leader::LeaderElection> {
        self.leader_election.then(|| crate::leader::LeaderElection {
            lease_name: self.lease_name.clone(),
            namespace: self.operator_namespace.clone(),
            identity: self.identity.clone().unwrap_or_else(|| {
                std::env::var("HOSTNAME")
                    .unwrap_or_else(|_| format!("credsync-{}", std::process::id()))
            }),
            lease_seconds: self.lease_seconds,
            renew_grace_seconds: (self.lease_seconds / 3).max(1),
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            operator_namespace: self.operator_namespace.clone(),
            fingerprint_secret: self.fingerprint_secret.clone(),
            drift_interval: self.drift_interval,
            concurrency: self.concurrency.max(1),
            transport: TransportPolicy {
                allow_http: self.allow_http,
                allowed_hosts: self.allowed_vendor_hosts.clone(),
                allow_private_addresses: self.allow_private_vendor_addresses,
                max_response_bytes: self.max_response_bytes,
                max_listing_bytes: self.max_listing_bytes,
                // The controller sets it from backoff_max.
                ..TransportPolicy::default()
            },
            backoff_base: self.backoff_base,
            backoff_max: self.backoff_max,
            watch_namespace: self.watch_namespace.clone().filter(|n| !n.is_empty()),
            label_selector: self.selector.clone().filter(|s| !s.is_empty()),
            normal_events_per_second: self.normal_events_per_second,
        }
    }
}

/// The longest `--io-batch-window`: beyond it the wait would show in every sync.
const MAX_IO_BATCH_WINDOW: Duration = Duration::from_millis(50);

fn parse_io_batch_window(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if window > MAX_IO_BATCH_WINDOW {
        return Err(format!(
            "at most {}",
            humantime::format_duration(MAX_IO_BATCH_WINDOW)
        ));
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn the_io_batch_window_is_5ms_unless_set_and_never_beyond_50ms() {
        let cases: [(&[&str], Option<Duration>); 6] = [
            (&[], Some(Duration::from_millis(5))),
            (&["--io-batch-window", "0"], Some(Duration::ZERO)),
            (
                &["--io-batch-window", "2ms"],
                Some(Duration::from_millis(2)),
            ),
            (&["--io-batch-window", "50ms"], Some(MAX_IO_BATCH_WINDOW)),
            (&["--io-batch-window", "51ms"], None),
            (&["--io-batch-window", "soon"], None),
        ];
        for (flags, want) in cases {
            let argv = ["credsync", "run"].iter().chain(flags);
            let got = match Cli::try_parse_from(argv).map(|cli| cli.command) {
                Ok(Command::Run(args)) => Some(args.io_batch_window),
                _ => None,
            };
            assert_eq!(got, want, "{flags:?}");
        }
    }

    #[test]
    fn a_busy_runtime_waits_the_io_batch_window_before_it_parks() {
        // One thread (the default): which of several parks with the timer is up to tokio.
        let runtime = run_args(&["--io-batch-window", "30ms"])
            .runtime()
            .expect("a runtime");
        let started = std::time::Instant::now();
        // The first wait (for a 1 ms timer) is shorter than the window, so the next park
        // sleeps the window first.
        runtime.block_on(async {
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    fn run_args(flags: &[&str]) -> RunArgs {
        let argv = ["credsync", "run"].iter().chain(flags);
        match Cli::try_parse_from(argv).expect("the flags parse").command {
            Command::Run(args) => args,
            Command::Crds => unreachable!("parsed `run`"),
        }
    }

    #[test]
    fn one_thread_runs_the_operator_unless_more_are_asked_for() {
        let cases: [(&[&str], RuntimeFlavor); 3] = [
            (&[], RuntimeFlavor::CurrentThread),
            (&["--worker-threads", "1"], RuntimeFlavor::CurrentThread),
            (&["--worker-threads", "2"], RuntimeFlavor::MultiThread),
        ];
        for (flags, flavor) in cases {
            let runtime = run_args(flags).runtime().expect("a runtime");
            assert_eq!(runtime.handle().runtime_flavor(), flavor, "{flags:?}");
        }
    }

    #[test]
    fn zero_threads_are_refused() {
        assert!(Cli::try_parse_from(["credsync", "run", "--worker-threads", "0"]).is_err());
    }
}
