//! `make bench`: how fast and how lightly credsync brings many resources to Ready, against the
//! floor that no controller can beat on the same machine. See docs/benchmarks.md.
//!
//! One local control plane (etcd + kube-apiserver) and in-process vendor simulators serve every
//! phase; the operator runs as a separate process (the release `credsync run` binary) so its
//! peak RSS and CPU seconds are its own, and it talks to the API server as the impersonated user
//! `credsync-operator`, so the audit log tells its requests apart from the benchmark's.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use credsync::vendors::{apex, oracle};
use credsync_testkit::ControlPlane;
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::apex::{ApexAuth, ApexSim};
use credsync_testkit::sim::helloid::HelloIdSim;
use credsync_testkit::sim::oracle::OracleSim;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

mod report;
mod stages;
mod workloads;

use report::*;
use stages::*;
use workloads::*;

/// The operator's identity in the audit log.
const OPERATOR_USER: &str = "credsync-operator";
const OPERATOR_NAMESPACE: &str = "credsync-system";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "credsync-bench",
    about = "Benchmark credsync against the floor (see docs/benchmarks.md)"
)]
struct Args {
    /// Resource counts to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    n: Vec<usize>,
    /// Simulated vendor latencies in milliseconds (comma-separated).
    #[arg(long = "latency-ms", value_delimiter = ',', default_values_t = [0u64, 50])]
    latency_ms: Vec<u64>,
    /// Smoke run: N=200, 10 s steady window, 200 rotated Secrets, 1,000 unrelated Secrets.
    #[arg(long)]
    quick: bool,
    /// Operator `--concurrency`, the connection's maxConcurrentRequests in 0 ms runs, and the
    /// floor's workers in 0 ms runs.
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// The connection's maxConcurrentRequests (and the floor's workers) in runs with vendor
    /// latency: throughput should approach this / latency (per connection; there is one
    /// connection per kind). Small enough that the ceiling stays under what the API server of a
    /// 2-core machine takes, so the runs show the vendor limit, not the API server's.
    #[arg(long, default_value_t = 2)]
    latency_concurrency: u32,
    /// Create requests in flight at once.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Runs of each case without vendor latency (floor, then credsync, each time). Their
    /// throughput depends on CPUs shared with everything else, so the targets are judged on the
    /// median run; with vendor latency the vendor is the limit and one run is enough.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Idle window of the steady-state phase, in seconds.
    #[arg(long, default_value_t = 60)]
    steady_secs: u64,
    /// Secrets updated at once in the rotation phase (0 skips it).
    #[arg(long, default_value_t = 1000)]
    rotation: usize,
    /// Unrelated 10 KiB Secrets in the memory phase (0 skips it).
    #[arg(long, default_value_t = 5000)]
    noise_secrets: usize,
    /// Waves of the churn phase: create --churn-n resources, wait until they are Ready, delete
    /// them all; operator RSS after each wave (0 skips it).
    #[arg(long, default_value_t = 10)]
    churn_waves: usize,
    /// Resources created and deleted in each churn wave.
    #[arg(long, default_value_t = 2000)]
    churn_n: usize,
    /// Skip the floor runs.
    #[arg(long)]
    skip_floor: bool,
    /// The credsync binary (default: `credsync` next to this binary).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// Where report.md, latency.svg and the operator logs go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

impl Args {
    fn apply_quick(&mut self) {
        self.repeat = self.repeat.max(1);
        if self.quick {
            self.n = vec![200];
            self.repeat = 1;
            self.steady_secs = 10;
            self.rotation = self.rotation.min(200);
            self.noise_secrets = self.noise_secrets.min(1000);
            self.churn_waves = self.churn_waves.min(3);
            self.churn_n = self.churn_n.min(200);
        }
        self.n.sort_unstable();
        self.n.dedup();
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes helpers.

async fn put_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("credsync-bench").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("create a Secret");
}

/// Delete every object of these kinds in `ns` (no namespace controller runs, so namespaces
/// themselves are never deleted; every phase uses its own).
async fn clean_namespace(client: &Client, ns: &str, resources: &[ApiResource]) {
    for ar in resources {
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar);
        if let Err(e) = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
        {
            eprintln!("bench: cleaning {} in {ns}: {e}", ar.plural);
        }
    }
}

fn is_ready(obj: &DynamicObject) -> bool {
    obj.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// First time each object of a namespace was seen Ready, by name.
#[derive(Default)]
struct ReadyLog {
    at: Mutex<HashMap<String, Instant>>,
    count: AtomicUsize,
}

impl ReadyLog {
    fn saw(&self, obj: &DynamicObject) {
        if !is_ready(obj) {
            return;
        }
        let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        if let std::collections::hash_map::Entry::Vacant(entry) = at.entry(obj.name_any()) {
            entry.insert(Instant::now());
            self.count.store(at.len(), Ordering::Release);
        }
    }
}

/// Watch `ar` in `ns` into `log`; returns once the initial list is done.
async fn watch_ready(
    client: &Client,
    ns: &str,
    ar: &ApiResource,
    log: Arc<ReadyLog>,
) -> tokio::task::JoinHandle<()> {
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar);
    let (init_tx, init_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut init_tx = Some(init_tx);
        let events = watcher(api, watcher::Config::default());
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => log.saw(&o),
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = init_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench: watch: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(30), init_rx).await;
    task
}

// ---------------------------------------------------------------------------------------------
// The operator process and what /proc says about it.

#[derive(Debug, Clone, Copy, Default)]
struct ProcStats {
    hwm_kib: u64,
    rss_kib: u64,
    cpu_secs: f64,
}

fn proc_stats(pid: u32, clk_tck: f64) -> ProcStats {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after "pid (comm)": state is the first; utime and stime are the 12th and 13th.
    let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    ProcStats {
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
        cpu_secs: (ticks(11) + ticks(12)) as f64 / clk_tck,
    }
}

/// CPU seconds spent so far by the control plane, this process and the whole machine.
#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    apiserver: f64,
    etcd: f64,
    bench: f64,
    /// Busy time of all CPUs together (/proc/stat: everything but idle and iowait).
    machine: f64,
}

impl CpuSample {
    fn take(cp: &ControlPlane, clk_tck: f64) -> CpuSample {
        let (etcd, apiserver) = cp.pids();
        let cpu = |pid: Option<u32>| pid.map_or(0.0, |pid| proc_stats(pid, clk_tck).cpu_secs);
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let ticks: Vec<u64> = stat
                    .lines()
                    .next()?
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal ...
                let busy: u64 = ticks
                    .iter()
                    .take(8)
                    .enumerate()
                    .filter(|(i, _)| *i != 3 && *i != 4)
                    .map(|(_, t)| t)
                    .sum();
                Some(busy as f64 / clk_tck)
            })
            .unwrap_or(0.0);
        CpuSample {
            apiserver: cpu(apiserver),
            etcd: cpu(etcd),
            bench: cpu(Some(std::process::id())),
            machine,
        }
    }

    fn since(&self, earlier: &CpuSample) -> CpuSample {
        CpuSample {
            apiserver: self.apiserver - earlier.apiserver,
            etcd: self.etcd - earlier.etcd,
            bench: self.bench - earlier.bench,
            machine: self.machine - earlier.machine,
        }
    }
}

struct Operator {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
    /// Where it serves /metrics.
    port: u16,
}

impl Operator {
    async fn start(env: &Env, label: &str, concurrency: u32) -> Operator {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = env.out.join(format!("operator-{label}.log"));
        let out = std::fs::File::create(&log).expect("create the operator log");
        let err = out.try_clone().expect("operator log");
        let mut child = tokio::process::Command::new(&env.operator_bin)
            .args([
                "run",
                "--allow-http",
                "--allow-private-vendor-addresses",
                "--log-level",
                "warn",
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "--concurrency",
                &concurrency.to_string(),
                "--operator-namespace",
                OPERATOR_NAMESPACE,
            ])
            .env("KUBECONFIG", &env.operator_kubeconfig)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", env.operator_bin.display()));
        let pid = child.id().expect("operator pid");
        let probe = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("operator exited with {status}; see {}", log.display());
            }
            let ready = probe
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "operator not ready after 60 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Operator {
            child,
            pid,
            log,
            port,
        }
    }

    fn stats(&self, env: &Env) -> ProcStats {
        proc_stats(self.pid, env.clk_tck)
    }

    /// Seconds its vendor requests held a connection slot so far, and how many there were
    /// (the sum and count of `credsync_vendor_request_duration_seconds`).
    async fn vendor_time(&self) -> (f64, f64) {
        let text = match reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port)).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let total = |series: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(series))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            total("credsync_vendor_request_duration_seconds_sum"),
            total("credsync_vendor_request_duration_seconds_count"),
        )
    }

    /// Lines the operator logged (at warn and above).
    fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The audit log: the operator's requests in a window.

#[derive(Debug, Default, Clone)]
struct AuditCounts {
    total: usize,
    writes: usize,
    by_request: BTreeMap<String, usize>,
}

fn audit_offset(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The audit log between two byte offsets (empty when it cannot be read).
fn audit_text(path: &Path, from: u64, to: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(from))?;
        file.take(to.saturating_sub(from)).read_to_end(&mut bytes)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// The operator's completed requests between two offsets of the audit log.
fn audit_window(path: &Path, from: u64, to: u64) -> AuditCounts {
    let mut counts = AuditCounts::default();
    let marker = format!("\"impersonatedUser\":{{\"username\":\"{OPERATOR_USER}\"");
    for line in audit_text(path, from, to).lines() {
        if !line.contains("\"stage\":\"ResponseComplete\"") || !line.contains(&marker) {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let verb = event.get("verb").and_then(Value::as_str).unwrap_or("?");
        let resource = event
            .pointer("/objectRef/resource")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let sub = event
            .pointer("/objectRef/subresource")
            .and_then(Value::as_str)
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        counts.total += 1;
        if matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) {
            counts.writes += 1;
        }
        *counts
            .by_request
            .entry(format!("{verb} {resource}{sub}"))
            .or_default() += 1;
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// The environment and the phases.

struct Env {
    cp: ControlPlane,
    client: Client,
    args: Args,
    operator_bin: PathBuf,
    operator_kubeconfig: PathBuf,
    out: PathBuf,
    clk_tck: f64,
}

/// What creating N resources and waiting for them to be Ready showed.
#[derive(Debug, Default, Clone)]
struct Drive {
    n: usize,
    created: usize,
    ready: usize,
    /// First create sent → last create answered.
    create_span: Duration,
    /// First create sent → last resource Ready (or the timeout).
    all_ready: Duration,
    /// Create sent → first seen Ready, sorted.
    latencies: Vec<Duration>,
    /// Each resource, in creation order, and the clock they are read on.
    timelines: Vec<Timeline>,
    clock: Option<Clock>,
    /// Where the time went (filled in from the audit log after the drive).
    stages: Stages,
    /// CPU seconds spent from the first create to the last Ready.
    cpu: CpuSample,
    /// Bytes of one Ready object per kind as the API server returns it (JSON, managedFields
    /// included): what it decodes, validates, stores and sends to every watcher per write.
    object_bytes: Vec<(String, usize)>,
}

impl Drive {
    fn throughput(&self) -> f64 {
        self.ready as f64 / self.all_ready.as_secs_f64().max(1e-9)
    }
    fn pct(&self, q: f64) -> Duration {
        percentile(&self.latencies, q)
    }
}

/// One create as `drive` sent it: its place in the creation order, when it was sent and answered.
#[derive(Clone)]
struct Created {
    order: usize,
    sent: Instant,
    answered: Option<Instant>,
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The floor: for each created resource, one vendor call and one status merge-patch that sets
/// Ready, `workers` at a time, fed straight from the create answers.
struct Floor {
    workers: usize,
}

impl Env {
    fn ready_timeout(&self, n: usize) -> Duration {
        Duration::from_secs(120 + (n as u64) / 20)
    }

    /// Create `n` resources in `ns` as fast as the API server takes them, and wait until each
    /// is Ready (watched). With `floor`, the benchmark itself brings them to Ready.
    async fn drive(
        &self,
        ns: &str,
        workloads: &[Arc<dyn Workload>],
        n: usize,
        secrets: bool,
        floor: Option<Floor>,
    ) -> Drive {
        let log = Arc::new(ReadyLog::default());
        let mut watches = Vec::new();
        let mut kinds: Vec<ApiResource> = Vec::new();
        for w in workloads {
            let ar = w.resource();
            if !kinds.iter().any(|k| k.kind == ar.kind) {
                watches.push(watch_ready(&self.client, ns, &ar, log.clone()).await);
                kinds.push(ar);
            }
        }

        let (queue_tx, queue_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, i64)>();
        let queue_rx = Arc::new(tokio::sync::Mutex::new(queue_rx));
        let mut floor_tasks = Vec::new();
        if let Some(floor) = &floor {
            for _ in 0..floor.workers {
                let queue_rx = queue_rx.clone();
                let workloads = workloads.to_vec();
                let client = self.client.clone();
                let ns = ns.to_string();
                floor_tasks.push(tokio::spawn(async move {
                    loop {
                        let next = queue_rx.lock().await.recv().await;
                        let Some((i, name, generation)) = next else {
                            return;
                        };
                        let w = &workloads[i % workloads.len()];
                        floor_one(&client, &ns, w.as_ref(), i, &name, generation).await;
                    }
                }));
            }
        }

        let created_at: Arc<Mutex<HashMap<String, Created>>> = Arc::default();
        let clock = Clock::now();
        let cpu0 = CpuSample::take(&self.cp, self.clk_tck);
        let start = Instant::now();
        let created = futures::stream::iter(0..n)
            .map(|i| {
                let w = workloads[i % workloads.len()].clone();
                let client = self.client.clone();
                let created_at = created_at.clone();
                let queue_tx = queue_tx.clone();
                let secret = secrets.then(|| bench_name(i));
                async move {
                    let obj: DynamicObject =
                        serde_json::from_value(w.manifest(i, secret.as_deref()))
                            .expect("resource manifest");
                    let api = Api::<DynamicObject>::namespaced_with(client, ns, &w.resource());
                    let name = obj.name_any();
                    created_at.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        name.clone(),
                        Created {
                            order: i,
                            sent: Instant::now(),
                            answered: None,
                        },
                    );
                    for attempt in 0..5 {
                        match api.create(&PostParams::default(), &obj).await {
                            Ok(made) => {
                                if let Some(entry) = created_at
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .get_mut(&name)
                                {
                                    entry.answered = Some(Instant::now());
                                }
                                let generation = made.metadata.generation.unwrap_or(1);
                                let _ = queue_tx.send((i, name, generation));
                                return true;
                            }
                            Err(e) if attempt < 4 => {
                                eprintln!("bench: create {name}: {e} (retrying)");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Err(e) => eprintln!("bench: create {name}: {e}"),
                        }
                    }
                    false
                }
            })
            .buffer_unordered(self.args.create_concurrency)
            .filter(|ok| futures::future::ready(*ok))
            .count()
            .await;
        let create_span = start.elapsed();
        drop(queue_tx);

        let deadline = start + self.ready_timeout(n);
        while log.count.load(Ordering::Acquire) < created && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cpu = CpuSample::take(&self.cp, self.clk_tck).since(&cpu0);
        let ready_at = log.at.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let all_ready = ready_at
            .values()
            .max()
            .map(|t| t.duration_since(start))
            .unwrap_or_else(|| start.elapsed());
        let created_at = created_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut latencies: Vec<Duration> = ready_at
            .iter()
            .filter_map(|(name, ready)| created_at.get(name).map(|c| ready.duration_since(c.sent)))
            .collect();
        latencies.sort_unstable();
        let mut timelines: Vec<(usize, Timeline)> = created_at
            .into_iter()
            .filter_map(|(name, c)| {
                Some((
                    c.order,
                    Timeline {
                        ready: ready_at.get(&name).copied(),
                        name,
                        sent: c.sent,
                        answered: c.answered?,
                    },
                ))
            })
            .collect();
        timelines.sort_unstable_by_key(|(i, _)| *i);
        for task in watches.into_iter().chain(floor_tasks) {
            task.abort();
        }
        if ready_at.len() < created {
            eprintln!(
                "bench: only {} of {created} Ready after {:?}",
                ready_at.len(),
                self.ready_timeout(n)
            );
        }
        Drive {
            n,
            created,
            ready: ready_at.len(),
            create_span,
            all_ready,
            latencies,
            timelines: timelines.into_iter().map(|(_, t)| t).collect(),
            clock: Some(clock),
            stages: Stages::default(),
            cpu,
            object_bytes: Vec::new(),
        }
    }

    /// Keep one Ready object of each kind in `ns` (as `<label>-<kind>.json` in the output
    /// folder) and note its size.
    async fn sample_objects(
        &self,
        drive: &mut Drive,
        ns: &str,
        ws: &[Arc<dyn Workload>],
        label: &str,
    ) {
        for ar in resources(ws) {
            let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &ar);
            let Ok(list) = api.list(&ListParams::default().limit(50)).await else {
                continue;
            };
            if let Some(obj) = list.items.iter().find(|o| is_ready(o)) {
                let text = serde_json::to_string_pretty(obj).unwrap_or_default();
                let bytes = serde_json::to_vec(obj).map_or(0, |b| b.len());
                let _ = std::fs::write(
                    self.out
                        .join(format!("{label}-{}.json", ar.kind.to_lowercase())),
                    text,
                );
                drive.object_bytes.push((ar.kind.clone(), bytes));
            }
        }
    }

    /// Fill in where `drive`'s time went from the audit log written since `from`.
    fn split_stages(&self, drive: &mut Drive, namespace: &str, from: u64) {
        let audit = self.cp.audit_log_path();
        if let Some(clock) = &drive.clock {
            drive.stages = stages(
                clock,
                &drive.timelines,
                &audit,
                from,
                audit_offset(&audit),
                namespace,
            );
        }
    }

    async fn namespace(&self, name: &str) {
        self.cp
            .create_namespace(name, BTreeMap::new())
            .await
            .expect("create a namespace");
    }

    /// Run `run` (from 1) of one (N, latency) case: the floor first (no operator running), then
    /// the operator.
    async fn case(&self, n: usize, latency_ms: u64, run: usize, steady: bool) -> Case {
        let latency = Duration::from_millis(latency_ms);
        let conn_concurrency = if latency_ms == 0 {
            self.args.concurrency
        } else {
            self.args.latency_concurrency
        };
        let limits = json!({"maxConcurrentRequests": conn_concurrency, "requestsPerSecond": 10000, "timeoutSeconds": 30});
        let label = match run {
            1 => format!("{n}-{latency_ms}ms"),
            _ => format!("{n}-{latency_ms}ms-run{run}"),
        };

        let floor = if self.args.skip_floor {
            None
        } else {
            eprintln!(
                "bench: floor, N={n}, vendor latency {latency_ms} ms, {conn_concurrency} workers per connection"
            );
            let ns = format!("floor-{label}");
            self.namespace(&ns).await;
            let ws = workloads(&self.client, &ns, &limits, false).await;
            ws.iter().for_each(|w| w.set_latency(latency));
            let calls0: usize = ws.iter().map(|w| w.vendor_calls()).sum();
            let audit0 = audit_offset(&self.cp.audit_log_path());
            let mut drive = self
                .drive(
                    &ns,
                    &ws,
                    n,
                    false,
                    Some(Floor {
                        workers: conn_concurrency as usize * ws.len(),
                    }),
                )
                .await;
            let calls = ws.iter().map(|w| w.vendor_calls()).sum::<usize>() - calls0;
            self.split_stages(&mut drive, &ns, audit0);
            self.sample_objects(&mut drive, &ns, &ws, &format!("floor-{label}"))
                .await;
            clean_namespace(&self.client, &ns, &resources(&ws)).await;
            eprintln!(
                "bench: floor: {} Ready in {:.2} s ({:.0}/s), p99 {:.0} ms, {calls} vendor calls",
                drive.ready,
                drive.all_ready.as_secs_f64(),
                drive.throughput(),
                drive.pct(0.99).as_secs_f64() * 1000.0,
            );
            eprintln!("bench: floor stages: {}", drive.stages.summary());
            eprintln!(
                "bench: floor CPU: {}",
                cpu_summary(&drive.cpu, None, drive.all_ready)
            );
            eprintln!("bench: floor object bytes: {:?}", drive.object_bytes);
            Some(drive)
        };

        eprintln!(
            "bench: credsync, N={n}, vendor latency {latency_ms} ms, connection maxConcurrentRequests {conn_concurrency}, operator --concurrency {}",
            self.args.concurrency
        );
        let ns = format!("bench-{label}");
        self.namespace(&ns).await;
        let ws = workloads(&self.client, &ns, &limits, false).await;
        ws.iter().for_each(|w| w.set_latency(latency));
        let operator = Operator::start(self, &label, self.args.concurrency).await;
        // Let the operator mark the connection Ready before the clock starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let audit = self.cp.audit_log_path();
        let (audit0, calls0, cpu0) = (
            audit_offset(&audit),
            ws.iter().map(|w| w.vendor_calls()).sum::<usize>(),
            operator.stats(self).cpu_secs,
        );
        let vendor0 = operator.vendor_time().await;
        let mut drive = self.drive(&ns, &ws, n, false, None).await;
        let vendor1 = operator.vendor_time().await;
        // Writes that trail the last Ready (events) belong to the run.
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.split_stages(&mut drive, &ns, audit0);
        self.sample_objects(&mut drive, &ns, &ws, &format!("credsync-{label}"))
            .await;
        let stats = operator.stats(self);
        let calls = ws.iter().map(|w| w.vendor_calls()).sum::<usize>() - calls0;
        let api = audit_window(&audit, audit0, audit_offset(&audit));
        eprintln!(
            "bench: credsync: {} Ready in {:.2} s ({:.0}/s), p99 {:.0} ms, {calls} vendor calls, {} API requests, peak RSS {:.1} MiB",
            drive.ready,
            drive.all_ready.as_secs_f64(),
            drive.throughput(),
            drive.pct(0.99).as_secs_f64() * 1000.0,
            api.total,
            stats.hwm_kib as f64 / 1024.0
        );
        eprintln!("bench: credsync stages: {}", drive.stages.summary());
        eprintln!(
            "bench: credsync CPU: {}",
            cpu_summary(&drive.cpu, Some(stats.cpu_secs - cpu0), drive.all_ready)
        );
        eprintln!("bench: credsync object bytes: {:?}", drive.object_bytes);

        let steady = if steady {
            Some(self.steady(&operator, &ws).await)
        } else {
            None
        };
        let log_lines = operator.log_lines();
        operator.stop().await;
        clean_namespace(&self.client, &ns, &resources(&ws)).await;
        ws.iter().for_each(|w| w.set_latency(Duration::ZERO));
        Case {
            n,
            latency_ms,
            run,
            conn_concurrency,
            connections: ws.len(),
            floor,
            operator: drive,
            vendor_calls: calls,
            api,
            cpu_secs: stats.cpu_secs - cpu0,
            hwm_kib: stats.hwm_kib,
            steady,
            log_lines,
            vendor_busy_secs: vendor1.0 - vendor0.0,
            vendor_requests: vendor1.1 - vendor0.1,
        }
    }

    /// Idle window with every resource Ready.
    async fn steady(&self, operator: &Operator, ws: &[Arc<dyn Workload>]) -> Steady {
        eprintln!("bench: steady state, {} s idle", self.args.steady_secs);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let audit = self.cp.audit_log_path();
        let (audit0, calls0, cpu0) = (
            audit_offset(&audit),
            ws.iter().map(|w| w.vendor_calls()).sum::<usize>(),
            operator.stats(self).cpu_secs,
        );
        tokio::time::sleep(Duration::from_secs(self.args.steady_secs)).await;
        let api = audit_window(&audit, audit0, audit_offset(&audit));
        let stats = operator.stats(self);
        Steady {
            secs: self.args.steady_secs,
            vendor_calls: ws.iter().map(|w| w.vendor_calls()).sum::<usize>() - calls0,
            api_writes: api.writes,
            api_requests: api.total,
            cpu_secs: stats.cpu_secs - cpu0,
            rss_kib: stats.rss_kib,
        }
    }

    /// The workloads in `ns`, whose passwords come from `n` per-resource Secrets (created here).
    async fn secret_workloads(&self, ns: &str, n: usize) -> Vec<Arc<dyn Workload>> {
        self.namespace(ns).await;
        let limits = json!({"maxConcurrentRequests": self.args.concurrency, "requestsPerSecond": 10000, "timeoutSeconds": 30});
        let ws = workloads(&self.client, ns, &limits, true).await;
        futures::stream::iter(0..n)
            .map(|i| async move {
                let value = inline_password(i);
                put_secret(&self.client, ns, &bench_name(i), &[("password", &value)]).await;
            })
            .buffer_unordered(self.args.create_concurrency)
            .collect::<Vec<()>>()
            .await;
        ws
    }

    /// Resources whose password comes from per-resource Secrets; all Secrets updated at once.
    async fn rotation(&self) -> Rotation {
        let r = self.args.rotation;
        eprintln!("bench: rotation of {r} Secrets");
        let ns = "bench-rotation";
        let ws = self.secret_workloads(ns, r).await;
        let operator = Operator::start(self, "rotation", self.args.concurrency).await;
        let setup = self.drive(ns, &ws, r, true, None).await;
        tokio::time::sleep(Duration::from_secs(3)).await;

        let audit = self.cp.audit_log_path();
        let (audit0, calls0, cpu0) = (
            audit_offset(&audit),
            ws.iter().map(|w| w.vendor_calls()).sum::<usize>(),
            operator.stats(self).cpu_secs,
        );
        let start = Instant::now();
        let updated_at: Vec<Instant> = futures::stream::iter(0..r)
            .map(|i| async move {
                let sent = Instant::now();
                let patch = json!({"stringData": {"password": rotated_password(i)}});
                Api::<Secret>::namespaced(self.client.clone(), ns)
                    .patch(
                        &bench_name(i),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .expect("update a Secret");
                (i, sent)
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .fold(vec![start; r], |mut acc, (i, sent)| {
                acc[i] = sent;
                acc
            });
        let update_span = start.elapsed();
        let mut reached: Vec<Option<Instant>> = vec![None; r];
        let deadline = start + self.ready_timeout(r);
        loop {
            let now = Instant::now();
            for (i, at) in reached.iter_mut().enumerate() {
                if at.is_none() && ws[i % ws.len()].holds(i, &rotated_password(i)) {
                    *at = Some(now);
                }
            }
            if reached.iter().all(Option::is_some) || now > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = reached.iter().filter(|a| a.is_some()).count();
        let all = reached
            .iter()
            .flatten()
            .max()
            .map(|t| t.duration_since(start))
            .unwrap_or_else(|| start.elapsed());
        let mut latencies: Vec<Duration> = reached
            .iter()
            .zip(&updated_at)
            .filter_map(|(r, u)| r.map(|r| r.duration_since(*u)))
            .collect();
        latencies.sort_unstable();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let api = audit_window(&audit, audit0, audit_offset(&audit));
        let stats = operator.stats(self);
        let calls = ws.iter().map(|w| w.vendor_calls()).sum::<usize>() - calls0;
        operator.stop().await;
        clean_namespace(&self.client, ns, &resources(&ws)).await;
        eprintln!(
            "bench: rotation: {done} of {r} new values at the vendor after {:.2} s",
            all.as_secs_f64()
        );
        Rotation {
            n: r,
            setup_ready: setup.ready,
            reached: done,
            update_span,
            all,
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
            vendor_calls: calls,
            api,
            cpu_secs: stats.cpu_secs - cpu0,
        }
    }

    /// Operator RSS over waves of creating and deleting resources: every per-object memory must
    /// go with its object, so RSS after the last wave stays near RSS after the first.
    async fn churn(&self) -> Churn {
        let (waves, n) = (self.args.churn_waves, self.args.churn_n);
        eprintln!("bench: churn: {waves} waves of {n} resources created, synced and deleted");
        let ns = "bench-churn";
        let ws = self.secret_workloads(ns, n).await;
        let operator = Operator::start(self, "churn", self.args.concurrency).await;
        let kinds = resources(&ws);
        let mut after = Vec::new();
        for wave in 1..=waves {
            let drive = self.drive(ns, &ws, n, true, None).await;
            clean_namespace(&self.client, ns, &kinds).await;
            let deadline = Instant::now() + self.ready_timeout(n);
            loop {
                let mut left = 0;
                for ar in &kinds {
                    let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, ar);
                    left += api
                        .list_metadata(&ListParams::default())
                        .await
                        .map(|l| l.items.len())
                        .unwrap_or(usize::MAX / 4);
                }
                if left == 0 || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // Let the deletions reach the operator's watches and its allocator settle.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let stats = operator.stats(self);
            eprintln!(
                "bench: churn wave {wave}: {} of {n} Ready, RSS {} MiB",
                drive.ready,
                report::mib(stats.rss_kib)
            );
            after.push((drive.ready, stats));
        }
        operator.stop().await;
        Churn { n, after }
    }

    /// Operator RSS with and without many unrelated Secrets.
    async fn memory(&self) -> Memory {
        let k = self.args.noise_secrets;
        eprintln!("bench: memory with {k} unrelated 10 KiB Secrets");
        let settle = Duration::from_secs(5);
        let a = Operator::start(self, "memory-a", self.args.concurrency).await;
        tokio::time::sleep(settle).await;
        let before = a.stats(self);
        let ns = "bench-noise";
        self.namespace(ns).await;
        let api = Api::<Secret>::namespaced(self.client.clone(), ns);
        futures::stream::iter(0..k)
            .map(|i| {
                let api = api.clone();
                async move {
                    let blob: Vec<u8> = (0..10 * 1024).map(|_| rand::random::<u8>()).collect();
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(format!("noise-{i:05}")),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([(
                            "blob".to_string(),
                            k8s_openapi::ByteString(blob),
                        )])),
                        ..Secret::default()
                    };
                    if let Err(e) = api.create(&PostParams::default(), &secret).await {
                        eprintln!("bench: create noise Secret: {e}");
                    }
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = a.stats(self);
        let b = Operator::start(self, "memory-b", self.args.concurrency).await;
        tokio::time::sleep(settle).await;
        let fresh = b.stats(self);
        a.stop().await;
        b.stop().await;
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        Memory {
            secrets: k,
            before,
            after,
            fresh,
        }
    }
}

fn cpu_summary(cpu: &CpuSample, operator: Option<f64>, wall: Duration) -> String {
    format!(
        "API server {:.1} s, etcd {:.1} s, benchmark {:.1} s, operator {}, machine {:.1} s of {:.1} s ({} CPUs × {:.1} s)",
        cpu.apiserver,
        cpu.etcd,
        cpu.bench,
        operator.map_or("–".to_string(), |o| format!("{o:.1} s")),
        cpu.machine,
        wall.as_secs_f64() * nproc() as f64,
        nproc(),
        wall.as_secs_f64()
    )
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn rotated_password(i: usize) -> String {
    format!("pw-{i}-rotated")
}

fn resources(ws: &[Arc<dyn Workload>]) -> Vec<ApiResource> {
    let mut out: Vec<ApiResource> = Vec::new();
    for w in ws {
        let ar = w.resource();
        if !out.iter().any(|k| k.kind == ar.kind) {
            out.push(ar);
        }
    }
    out
}

/// The floor's irreducible work for one resource: the vendor call, then one status
/// merge-patch that sets Ready (retried on failure, as any controller would).
async fn floor_one(
    client: &Client,
    ns: &str,
    w: &dyn Workload,
    i: usize,
    name: &str,
    generation: i64,
) {
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &w.resource());
    for _ in 0..5 {
        let outputs = match w.floor_apply(i).await {
            Ok(o) => o,
            Err(e) => {
                eprintln!("bench: floor vendor call for {name}: {e}");
                continue;
            }
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut status = json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Synced",
                "message": "in sync with the vendor", "lastTransitionTime": now,
                "observedGeneration": generation}],
            "observedGeneration": generation,
            "lastSyncedTime": now,
        });
        if let (Some(status), Some(outputs)) = (status.as_object_mut(), outputs.as_object()) {
            status.extend(outputs.clone());
        }
        match api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
        {
            Ok(_) => return,
            Err(e) => eprintln!("bench: floor status patch for {name}: {e}"),
        }
    }
}

/// The control plane's kubeconfig with the operator's identity added: the admin impersonates
/// `credsync-operator` in group system:masters, so the audit log attributes its requests.
fn operator_kubeconfig(cp: &ControlPlane, out: &Path) -> PathBuf {
    let text = std::fs::read_to_string(cp.kubeconfig_path()).expect("read the kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("parse the kubeconfig");
    let users = config
        .get_mut("users")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .expect("kubeconfig users");
    for user in users {
        let Some(auth) = user
            .get_mut("user")
            .and_then(serde_yaml::Value::as_mapping_mut)
        else {
            continue;
        };
        auth.insert("as".into(), OPERATOR_USER.into());
        auth.insert(
            "as-groups".into(),
            serde_yaml::Value::Sequence(vec!["system:masters".into()]),
        );
    }
    let path = out.join("operator.kubeconfig");
    std::fs::write(
        &path,
        serde_yaml::to_string(&config).expect("serialise the kubeconfig"),
    )
    .expect("write the operator kubeconfig");
    path
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
    let operator_kubeconfig = operator_kubeconfig(&cp, &out);
    let clk_tck = command_line("getconf", &["CLK_TCK"])
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(100.0);
    let env = Env {
        client: cp.client(),
        cp,
        args: args.clone(),
        operator_bin,
        operator_kubeconfig,
        out: out.clone(),
        clk_tck,
    };

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
    );
    let _ = writeln!(
        text,
        "\nBenchmark wall time: {:.0} s. Plot: latency.svg.",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(out.join("report.md"), &text).expect("write report.md");
    std::fs::write(out.join("latency.svg"), latency_svg(&cases)).expect("write latency.svg");
    println!("{text}");
    eprintln!(
        "bench: wrote {} and {}",
        out.join("report.md").display(),
        out.join("latency.svg").display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }

    #[test]
    fn stat_fields_after_comm() {
        // Our own process: CPU time is readable and RSS is non-zero.
        let s = proc_stats(std::process::id(), 100.0);
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }
}
