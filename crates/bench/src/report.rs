//! Results and the report: Markdown tables and the latency plot.

use std::fmt::Write as _;
use std::time::Duration;

use crate::OPERATOR_USER;
use crate::audit::AuditCounts;
use crate::drive::{Drive, Env};
use crate::peer::{ESO_VERSION, PeerFloor, PeerRun};
use crate::procstat::{ProcStats, nproc};

pub(crate) struct Case {
    pub(crate) n: usize,
    pub(crate) latency_ms: u64,
    /// Which run of this (N, latency), from 1.
    pub(crate) run: usize,
    pub(crate) conn_concurrency: u32,
    /// One per kind; each has its own maxConcurrentRequests.
    pub(crate) connections: usize,
    pub(crate) floor: Option<Drive>,
    pub(crate) operator: Drive,
    pub(crate) vendor_calls: usize,
    pub(crate) api: AuditCounts,
    pub(crate) cpu_secs: f64,
    pub(crate) hwm_kib: u64,
    pub(crate) steady: Option<Steady>,
    pub(crate) log_lines: usize,
    /// Seconds the operator's vendor requests held a connection slot during the drive, and
    /// how many requests that was (its own metrics).
    pub(crate) vendor_busy_secs: f64,
    pub(crate) vendor_requests: f64,
}

impl Case {
    /// N, and which run when a case ran more than once: "10000", "10000 #2".
    pub(crate) fn label(&self) -> String {
        match self.run {
            1 => self.n.to_string(),
            run => format!("{} #{run}", self.n),
        }
    }

    /// credsync's throughput over the floor's, when the floor ran.
    pub(crate) fn ratio(&self) -> Option<f64> {
        self.floor
            .as_ref()
            .map(|f| self.operator.throughput() / f.throughput().max(1e-9))
    }
}

/// The median of `values` (the lower middle one for an even count), with the smallest and largest.
pub(crate) fn median_range(mut values: Vec<f64>) -> Option<(f64, f64, f64)> {
    values.sort_unstable_by(f64::total_cmp);
    let mid = *values.get((values.len().max(1) - 1) / 2)?;
    Some((mid, values[0], values[values.len() - 1]))
}

pub(crate) struct Steady {
    pub(crate) secs: u64,
    pub(crate) vendor_calls: usize,
    pub(crate) api_writes: usize,
    pub(crate) api_requests: usize,
    pub(crate) cpu_secs: f64,
    pub(crate) rss_kib: u64,
}

pub(crate) struct Rotation {
    pub(crate) n: usize,
    pub(crate) setup_ready: usize,
    pub(crate) reached: usize,
    pub(crate) update_span: Duration,
    pub(crate) all: Duration,
    /// Every status records the new value (None: not within the wait).
    pub(crate) recorded: Option<Duration>,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) vendor_calls: usize,
    pub(crate) api: AuditCounts,
    pub(crate) cpu_secs: f64,
}

pub(crate) struct Memory {
    pub(crate) secrets: usize,
    pub(crate) before: ProcStats,
    pub(crate) after: ProcStats,
    pub(crate) fresh: ProcStats,
}

/// Operator RSS after each wave of creating and deleting `n` resources.
pub(crate) struct Churn {
    pub(crate) n: usize,
    /// (resources Ready in the wave, process stats after its deletions).
    pub(crate) after: Vec<(usize, ProcStats)>,
}

impl Churn {
    /// RSS after the last wave over RSS after the first.
    pub(crate) fn growth(&self) -> Option<f64> {
        let first = self.after.first()?.1.rss_kib;
        let last = self.after.last()?.1.rss_kib;
        Some(last as f64 / first.max(1) as f64)
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

pub(crate) fn per(count: usize, n: usize) -> String {
    format!("{:.2}", count as f64 / n.max(1) as f64)
}

pub(crate) fn first_line(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(|l| {
            l.split_once(':')
                .map(|x| x.1)
                .unwrap_or(l)
                .trim()
                .to_string()
        })
}

pub(crate) fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn machine(env: &Env) -> Vec<(String, String)> {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let mem = first_line("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into());
    vec![
        ("CPUs (nproc)".into(), nproc),
        (
            "CPU".into(),
            first_line("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into()),
        ),
        ("Memory".into(), mem),
        (
            "Kernel".into(),
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into()),
        ),
        ("kube-apiserver".into(), env.cp.server_version()),
        (
            "credsync".into(),
            format!(
                "{} ({})",
                env!("CARGO_PKG_VERSION"),
                command_line("git", &["rev-parse", "--short", "HEAD"])
                    .unwrap_or_else(|| "no git".into())
            ),
        ),
        (
            "rustc".into(),
            command_line("rustc", &["--version"]).unwrap_or_else(|| "?".into()),
        ),
    ]
}

pub(crate) fn report(
    env: &Env,
    cases: &[Case],
    rotation: Option<&Rotation>,
    memory: Option<&Memory>,
    churn: Option<&Churn>,
    peer_floor: Option<&PeerFloor>,
    peer_runs: &[PeerRun],
) -> String {
    let a = &env.args;
    let mut r = String::new();
    let _ = writeln!(r, "# credsync benchmark\n");
    let _ = writeln!(
        r,
        "Generated by `make bench` (credsync-bench{}). What each number means: docs/benchmarks.md.\n",
        if a.quick { " --quick" } else { "" }
    );
    let _ = writeln!(r, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in machine(env) {
        let _ = writeln!(r, "| {k} | {v} |");
    }
    let _ = writeln!(
        r,
        "\nEverything shares these CPUs: etcd, kube-apiserver (audit log on, blocking), the simulators and this benchmark in one process, the operator in another.\n"
    );
    let _ = writeln!(r, "## Settings\n\n| | |\n|---|---|");
    let _ = writeln!(
        r,
        "| operator | `credsync run --allow-http --allow-private-vendor-addresses --log-level warn --concurrency {}` (impersonating `{OPERATOR_USER}`) |",
        a.concurrency
    );
    let _ = writeln!(
        r,
        "| connection, 0 ms runs | maxConcurrentRequests {}, requestsPerSecond 10000 (the CRD maximum) |",
        a.concurrency
    );
    let _ = writeln!(
        r,
        "| connection, runs with latency | maxConcurrentRequests {}, requestsPerSecond 10000 |",
        a.latency_concurrency
    );
    let _ = writeln!(
        r,
        "| floor workers | the connections' maxConcurrentRequests together (one connection per kind) |"
    );
    let _ = writeln!(r, "| creates in flight | {} |", a.create_concurrency);
    let _ = writeln!(
        r,
        "| resource mix | in turn: SsoAppCredential (HelloID JSON, 2 credential fields, inline values), CrmUserCredential (Oracle CRM On Demand SOAP, password from one shared Secret), ErpIdentity (Apex ERP JSON, looked up by name before create) |\n"
    );

    let _ = writeln!(r, "## Bringing N resources to Ready\n");
    let _ = writeln!(
        r,
        "| N | vendor latency | conn. concurrency | creates done (s) | all Ready (s) | throughput (/s) | floor all Ready (s) | floor (/s) | credsync / floor | p50 (ms) | p95 (ms) | p99 (ms) | vendor calls / res. | API requests / res. | peak RSS (MiB) | CPU (s) |"
    );
    let _ = writeln!(
        r,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in cases {
        let d = &c.operator;
        let (floor_secs, floor_tp, ratio) = match &c.floor {
            Some(f) => (
                format!("{:.2}", f.all_ready.as_secs_f64()),
                format!("{:.0}", f.throughput()),
                format!("{:.2}", d.throughput() / f.throughput().max(1e-9)),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let ready = if d.ready < d.n {
            format!(" ({} created, {} Ready)", d.created, d.ready)
        } else {
            String::new()
        };
        let _ = writeln!(
            r,
            "| {} | {} ms | {} | {:.2} | {:.2}{ready} | {:.0} | {floor_secs} | {floor_tp} | {ratio} | {} | {} | {} | {} | {} | {} | {:.2} |",
            c.label(),
            c.latency_ms,
            c.conn_concurrency,
            d.create_span.as_secs_f64(),
            d.all_ready.as_secs_f64(),
            d.throughput(),
            ms(d.pct(0.5)),
            ms(d.pct(0.95)),
            ms(d.pct(0.99)),
            per(c.vendor_calls, c.n),
            per(c.api.total, c.n),
            mib(c.hwm_kib),
            c.cpu_secs
        );
    }
    let _ = writeln!(
        r,
        "\nFloor latencies (create sent → Ready seen), for comparison:\n\n| N | vendor latency | p50 (ms) | p95 (ms) | p99 (ms) |\n|---:|---:|---:|---:|---:|"
    );
    for c in cases {
        if let Some(f) = &c.floor {
            let _ = writeln!(
                r,
                "| {} | {} ms | {} | {} | {} |",
                c.label(),
                c.latency_ms,
                ms(f.pct(0.5)),
                ms(f.pct(0.95)),
                ms(f.pct(0.99))
            );
        }
    }
    stages_table(&mut r, cases);
    cpu_table(&mut r, cases);
    let with_latency: Vec<&Case> = cases.iter().filter(|c| c.latency_ms > 0).collect();
    if !with_latency.is_empty() {
        let _ = writeln!(
            r,
            "\nWith vendor latency the ceiling is connections × maxConcurrentRequests / latency (one connection per kind; an ErpIdentity create also looks its name up, so it needs more than one call). On a busy machine each request takes longer than the latency alone (loopback, scheduling): *mean vendor request* is how long a request held its connection slot (the operator's `credsync_vendor_request_duration_seconds`), and *slots busy* the share of the connections' slot-time that requests held, from the first create to the last Ready (100% = the vendor limit was the only limit):\n\n| N | vendor latency | conn. concurrency | ceiling (/s) | credsync (/s) | of ceiling | vendor requests / res. | mean vendor request (ms) | slots busy |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for c in with_latency {
            let slots = (c.conn_concurrency as usize * c.connections) as f64;
            let ceiling = slots / (c.latency_ms as f64 / 1000.0);
            let _ = writeln!(
                r,
                "| {} | {} ms | {} | {:.0} | {:.0} | {:.0}% | {:.2} | {:.1} | {:.0}% |",
                c.label(),
                c.latency_ms,
                c.conn_concurrency,
                ceiling,
                c.operator.throughput(),
                100.0 * c.operator.throughput() / ceiling,
                c.vendor_requests / c.n.max(1) as f64,
                1000.0 * c.vendor_busy_secs / c.vendor_requests.max(1.0),
                100.0 * c.vendor_busy_secs / (slots * c.operator.all_ready.as_secs_f64()).max(1e-9)
            );
        }
    }
    let _ = writeln!(
        r,
        "\nThe operator's API requests per resource (audit log, user `{OPERATOR_USER}`, stage ResponseComplete, from the first create to 1 s after the last Ready):\n"
    );
    let mut keys: Vec<&String> = cases.iter().flat_map(|c| c.api.by_request.keys()).collect();
    keys.sort();
    keys.dedup();
    let _ = write!(r, "| request |");
    for c in cases {
        let _ = write!(r, " N={} {} ms |", c.label(), c.latency_ms);
    }
    let _ = write!(r, "\n|---|");
    for _ in cases {
        let _ = write!(r, "---:|");
    }
    let _ = writeln!(r);
    for k in keys {
        let _ = write!(r, "| `{k}` |");
        for c in cases {
            let _ = write!(
                r,
                " {} |",
                per(c.api.by_request.get(k).copied().unwrap_or(0), c.n)
            );
        }
        let _ = writeln!(r);
    }
    let logged: usize = cases.iter().map(|c| c.log_lines).sum();
    let _ = writeln!(
        r,
        "\nOperator log lines at warn or above over these runs: {logged} (logs in {}).",
        env.out.display()
    );

    if let Some((c, s)) = cases.iter().find_map(|c| c.steady.as_ref().map(|s| (c, s))) {
        let _ = writeln!(
            r,
            "\n## Steady state\n\n{} Ready resources, {} s idle (after 5 s to settle). Targets: 0, 0, under 1 s.\n\n| vendor calls | operator API writes | operator API requests (all) | operator CPU (s) | operator RSS (MiB) |\n|---:|---:|---:|---:|---:|\n| {} | {} | {} | {:.2} | {} |",
            c.operator.ready,
            s.secs,
            s.vendor_calls,
            s.api_writes,
            s.api_requests,
            s.cpu_secs,
            mib(s.rss_kib)
        );
    }

    if let Some(rot) = rotation {
        let _ = writeln!(
            r,
            "\n## Secret rotation\n\n{} resources ({} Ready before), each with its password in its own Secret (`valueFrom.secretKeyRef`); all {} Secrets updated at once ({} patches in flight). Clock starts at the first update. The vendor calls go first: status writes that only record the new fingerprint and sync time wait until the burst is over (at most 5 s); the last column says when every status recorded the new value, and the API requests counted include those writes.\n\n| updates done (s) | every new value at the vendor (s) | reached | p50 update → vendor (ms) | p99 (ms) | every status recorded it (s) | vendor calls / Secret | operator API requests / Secret | operator CPU (s) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| {:.2} | {:.2} | {} of {} | {} | {} | {} | {} | {} | {:.2} |",
            rot.n,
            rot.setup_ready,
            rot.n,
            64,
            rot.update_span.as_secs_f64(),
            rot.all.as_secs_f64(),
            rot.reached,
            rot.n,
            ms(rot.p50),
            ms(rot.p99),
            rot.recorded.map_or_else(
                || "not within the wait".to_string(),
                |d| format!("{:.2}", d.as_secs_f64())
            ),
            per(rot.vendor_calls, rot.n),
            per(rot.api.total, rot.n),
            rot.cpu_secs
        );
        let _ = writeln!(
            r,
            "\nRequests during rotation, per Secret:\n\n| request | per Secret |\n|---|---:|"
        );
        for (k, v) in &rot.api.by_request {
            let _ = writeln!(r, "| `{k}` | {} |", per(*v, rot.n));
        }
    }

    if let Some(m) = memory {
        let ratio = m.fresh.rss_kib as f64 / m.before.rss_kib.max(1) as f64;
        let _ = writeln!(
            r,
            "\n## Memory with unrelated Secrets\n\nOperator RSS with no managed resources, before and after {} unrelated Secrets of 10 KiB each were created, and a second operator started with them present (5 s after ready).\n\n| | RSS (MiB) | peak RSS (MiB) |\n|---|---:|---:|\n| no unrelated Secrets | {} | {} |\n| same process, after {} were created | {} | {} |\n| new process, started with them present | {} | {} |\n\nRatio (new process with / without): **{:.2}**; same process after / before: {:.2}.",
            m.secrets,
            mib(m.before.rss_kib),
            mib(m.before.hwm_kib),
            m.secrets,
            mib(m.after.rss_kib),
            mib(m.after.hwm_kib),
            mib(m.fresh.rss_kib),
            mib(m.fresh.hwm_kib),
            ratio,
            m.after.rss_kib as f64 / m.before.rss_kib.max(1) as f64
        );
    }

    if let Some(c) = churn {
        let _ = writeln!(
            r,
            "\n## Memory over churn\n\n{} waves: create {} resources, wait until Ready, delete them all; operator RSS 3 s after each wave's deletions.\n\n| wave | Ready | RSS (MiB) | peak RSS (MiB) |\n|---:|---:|---:|---:|",
            c.after.len(),
            c.n
        );
        for (i, (ready, stats)) in c.after.iter().enumerate() {
            let _ = writeln!(
                r,
                "| {} | {ready} | {} | {} |",
                i + 1,
                mib(stats.rss_kib),
                mib(stats.hwm_kib)
            );
        }
        if let Some(growth) = c.growth() {
            let _ = writeln!(
                r,
                "\nRSS after the last wave / after the first: **{growth:.2}**."
            );
        }
    }

    peer_section(&mut r, peer_floor, peer_runs);

    let _ = writeln!(
        r,
        "\n## Targets\n\n| target | measured | met |\n|---|---|---|"
    );
    let mark = |ok: bool| if ok { "yes" } else { "**no**" };
    // "median of K runs (lowest–highest)" when a case ran more than once.
    let judged = |values: Vec<f64>, unit: &str, digits: usize| -> Option<(f64, String)> {
        let count = values.len();
        let (mid, low, high) = median_range(values)?;
        Some((
            mid,
            match count {
                1 => format!("{mid:.digits$}{unit}"),
                _ => format!(
                    "median {mid:.digits$}{unit} of {count} runs ({low:.digits$}–{high:.digits$})"
                ),
            },
        ))
    };
    if let Some(n) = cases
        .iter()
        .filter(|c| c.latency_ms == 0 && c.floor.is_some())
        .map(|c| c.n)
        .max()
    {
        let ratios = cases
            .iter()
            .filter(|c| c.latency_ms == 0 && c.n == n)
            .filter_map(Case::ratio)
            .collect();
        if let Some((ratio, shown)) = judged(ratios, "", 2) {
            let _ = writeln!(
                r,
                "| throughput ≥ 0.9 × floor (N = {n}, 0 ms) | {shown} | {} |",
                mark(ratio >= 0.9)
            );
        }
    }
    if let Some(c) = cases
        .iter()
        .filter(|c| c.latency_ms > 0)
        .max_by_key(|c| c.n)
    {
        let ceiling =
            (c.conn_concurrency as usize * c.connections) as f64 / (c.latency_ms as f64 / 1000.0);
        let share = c.operator.throughput() / ceiling;
        let _ = writeln!(
            r,
            "| {} ms: close to connections × concurrency / latency = {ceiling:.0}/s (N = {}) | {:.0}/s ({:.0}%) | {} |",
            c.latency_ms,
            c.n,
            c.operator.throughput(),
            share * 100.0,
            mark(share >= 0.8)
        );
    }
    if let Some(c) = cases.iter().max_by_key(|c| (c.n, c.hwm_kib)) {
        let _ = writeln!(
            r,
            "| peak RSS ≤ 150 MiB (N = {}) | {} MiB | {} |",
            c.n,
            mib(c.hwm_kib),
            mark(c.hwm_kib <= 150 * 1024)
        );
    }
    if let Some(n) = cases
        .iter()
        .filter(|c| c.latency_ms == 0)
        .map(|c| c.n)
        .min_by_key(|n| (*n as i64 - 1000).abs())
    {
        let p99s = cases
            .iter()
            .filter(|c| c.latency_ms == 0 && c.n == n)
            .map(|c| c.operator.pct(0.99).as_secs_f64() * 1000.0)
            .collect();
        if let Some((p99, shown)) = judged(p99s, " ms", 0) {
            let _ = writeln!(
                r,
                "| p99 create-to-Ready ≤ 1 s (N = {n}, 0 ms) | {shown} | {} |",
                mark(p99 <= 1000.0)
            );
        }
    }
    if let Some(s) = cases.iter().find_map(|c| c.steady.as_ref()) {
        let _ = writeln!(
            r,
            "| steady: 0 vendor calls, 0 API writes, < 1 s CPU | {}, {}, {:.2} s | {} |",
            s.vendor_calls,
            s.api_writes,
            s.cpu_secs,
            mark(s.vendor_calls == 0 && s.api_writes == 0 && s.cpu_secs < 1.0)
        );
    }
    if let Some(rot) = rotation {
        let _ = writeln!(
            r,
            "| rotation of {} Secrets: every new value at the vendor ≤ 1.5 s | {:.2} s ({} of {}) | {} |",
            rot.n,
            rot.all.as_secs_f64(),
            rot.reached,
            rot.n,
            mark(rot.reached == rot.n && rot.all.as_secs_f64() <= 1.5)
        );
    }
    peer_targets(&mut r, peer_runs, &mark);
    if let Some((c, growth)) = churn.and_then(|c| Some((c, c.growth()?))) {
        let _ = writeln!(
            r,
            "| churn: RSS after the last of {} waves (create/delete {}) within 10% of after the first | {growth:.2} | {} |",
            c.after.len(),
            c.n,
            mark(growth <= 1.10)
        );
    }
    if !(env.args.n.contains(&1000) && env.args.n.contains(&10_000)) {
        let _ = writeln!(
            r,
            "\nTargets are stated for N = 1,000 and 10,000; this run used N = {}.",
            env.args
                .n
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    r
}

/// Where the create-to-Ready time goes, credsync beside the floor.
fn stages_table(r: &mut String, cases: &[Case]) {
    let _ = writeln!(
        r,
        "\nWhere the time goes: each resource's create-to-Ready split at the status write that made it Ready (the API server's audit timestamps). p50 / p99 of each stage over all resources, then the mean of each stage over the slowest 1% and where in the creation order those stood (0% first, 100% last). \"to the status write\" is everything the controller does: watch delivery, queueing, Secret and connection look-ups, the vendor call.\n\n| N | vendor latency | who | create (ms) | to the status write (ms) | status write (ms) | to the watcher (ms) | slowest 1%: create / to write / write / to watcher (ms) | slowest 1%: position |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    );
    for c in cases {
        let rows = c
            .floor
            .iter()
            .map(|f| ("floor", f))
            .chain([("credsync", &c.operator)]);
        for (who, d) in rows {
            let s = &d.stages;
            if s.resources == 0 {
                continue;
            }
            let cell =
                |stage: usize| format!("{:.0} / {:.0}", s.pct(stage, 0.5), s.pct(stage, 0.99));
            let tail = s
                .tail_mean_ms
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(" / ");
            let _ = writeln!(
                r,
                "| {} | {} ms | {who} | {} | {} | {} | {} | {tail} | {:.0}% |",
                c.label(),
                c.latency_ms,
                cell(0),
                cell(1),
                cell(2),
                cell(3),
                s.tail_position
            );
        }
    }
}

/// Where the machine's CPU goes per resource, credsync beside the floor, and the size of what
/// the API server handles for each object.
fn cpu_table(r: &mut String, cases: &[Case]) {
    let _ = writeln!(
        r,
        "\nCPU per resource (ms) from the first create to the last Ready, by process, and how busy the machine was (all CPUs together): on a saturated machine throughput is the inverse of the total. Object size: one Ready object as the API server returns it (JSON, managedFields included), the mean over the kinds.\n\n| N | vendor latency | who | API server | etcd | benchmark | operator | machine busy | object (bytes) |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    );
    for c in cases {
        let operator_cpu = c.cpu_secs;
        let rows = c.floor.iter().map(|f| ("floor", f, None)).chain([(
            "credsync",
            &c.operator,
            Some(operator_cpu),
        )]);
        for (who, d, operator) in rows {
            let per_res = |secs: f64| format!("{:.2}", 1000.0 * secs / d.ready.max(1) as f64);
            let capacity = d.all_ready.as_secs_f64() * nproc() as f64;
            let bytes = match d.object_bytes.len() {
                0 => "–".to_string(),
                k => format!(
                    "{}",
                    d.object_bytes.iter().map(|(_, b)| b).sum::<usize>() / k
                ),
            };
            let _ = writeln!(
                r,
                "| {} | {} ms | {who} | {} | {} | {} | {} | {:.0}% | {bytes} |",
                c.label(),
                c.latency_ms,
                per_res(d.cpu.apiserver),
                per_res(d.cpu.etcd),
                per_res(d.cpu.bench),
                operator.map_or("–".to_string(), per_res),
                100.0 * d.cpu.machine / capacity.max(1e-9),
            );
        }
    }
}

/// Grouped bars of p50/p95/p99 create-to-Ready per (N, latency), hand-written SVG.
pub(crate) fn latency_svg(cases: &[Case]) -> String {
    let (w, h) = (160.0 + 150.0 * cases.len().max(1) as f64, 420.0);
    let (left, right, top, bottom) = (70.0, 20.0, 50.0, 70.0);
    let plot_h = h - top - bottom;
    let max_ms = cases
        .iter()
        .map(|c| c.operator.pct(0.99).as_secs_f64() * 1000.0)
        .fold(1.0, f64::max);
    // A round axis maximum: 1, 2 or 5 × 10^k.
    let magnitude = 10f64.powf(max_ms.log10().floor());
    let axis_max = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max_ms)
        .unwrap_or(10.0 * magnitude);
    let y = |v: f64| top + plot_h * (1.0 - v / axis_max);
    let colors = [("p50", "#4c78a8"), ("p95", "#f58518"), ("p99", "#e45756")];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">credsync: create-to-Ready latency (ms) by N and vendor latency</text>"#,
        w / 2.0
    );
    for t in 0..=5 {
        let v = axis_max * t as f64 / 5.0;
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            w - right,
            left - 6.0,
            yy + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="black"/><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        h - bottom,
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">milliseconds</text>"#,
        top + plot_h / 2.0
    );
    let group_w = (w - left - right) / cases.len().max(1) as f64;
    let bar_w = group_w / 5.0;
    for (g, c) in cases.iter().enumerate() {
        let x0 = left + group_w * g as f64 + bar_w;
        for (b, (q, color)) in colors.iter().enumerate() {
            let v = c.operator.pct(match *q {
                "p50" => 0.5,
                "p95" => 0.95,
                _ => 0.99,
            });
            let v = v.as_secs_f64() * 1000.0;
            let x = x0 + bar_w * b as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{q}: {v:.0} ms</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{v:.0}</text>"#,
                y(v),
                bar_w - 2.0,
                (h - bottom - y(v)).max(0.0),
                x + bar_w / 2.0 - 1.0,
                y(v) - 3.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">N = {}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{} ms vendor latency</text>"#,
            x0 + 1.5 * bar_w,
            h - bottom + 18.0,
            c.label(),
            x0 + 1.5 * bar_w,
            h - bottom + 34.0,
            c.latency_ms
        );
    }
    for (b, (q, color)) in colors.iter().enumerate() {
        let x = left + 10.0 + 70.0 * b as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}">{q}</text>"#,
            h - 22.0,
            x + 16.0,
            h - 12.0
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

// ---------------------------------------------------------------------------------------------

/// credsync, the floor and ESO side by side (the peer phase).
fn peer_section(r: &mut String, floor: Option<&PeerFloor>, runs: &[PeerRun]) {
    let Some(first) = runs.first() else {
        return;
    };
    let _ = writeln!(
        r,
        "\n## Peer: External Secrets Operator {ESO_VERSION}\n\nThe same {} HelloID credentials from the same Secrets (keys `username`, `password`) to the same simulator: credsync with SsoAppCredentials (`valueFrom.secretKeyRef`), ESO with a PushSecret per Secret through a SecretStore of its webhook provider (POST of the HelloID JSON body to `/api/v1/enduser/{{guid}}/credential`). Each runs alone, as a child process with its own impersonated user; a fresh simulator each. The floor is the benchmark POSTing each value itself ({} at once).\n\n| who | settings | all N values at the vendor (s) | vendor calls / resource | API requests / resource | steady {} s: vendor calls / API writes / API requests / CPU s | rotation of {}: every new value at the vendor (s) | reached | rotation vendor calls / Secret | rotation API requests / Secret | peak RSS (MiB) | RSS before → after {} unrelated Secrets (MiB) |\n|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
        first.n,
        floor.map_or(0, |f| f.workers),
        first.steady.secs,
        first.rotation_n,
        first.noise.map_or(0, |(k, _, _)| k),
    );
    if let Some(f) = floor {
        let _ = writeln!(
            r,
            "| floor | {} workers, no Kubernetes objects | {:.2} ({} of {}) | 1 | 0 | – | – | – | – | – | – | – |",
            f.workers,
            f.all_reached.as_secs_f64(),
            f.reached,
            f.n
        );
    }
    for p in runs {
        let rotation = if p.rotation_reached == p.rotation_n {
            format!("{:.2}", p.rotation_all.as_secs_f64())
        } else {
            format!("> {:.0} (wait ended)", p.rotation_wait.as_secs_f64())
        };
        let _ = writeln!(
            r,
            "| {} | {} | {:.2}{} | {} | {} | {} / {} / {} / {:.2} | {rotation} | {} of {} | {} | {} | {} | {} |",
            p.name,
            p.settings,
            p.all_reached.as_secs_f64(),
            if p.reached == p.n {
                String::new()
            } else {
                format!(" (only {} of {})", p.reached, p.n)
            },
            per(p.vendor_calls, p.n),
            per(p.api.total, p.n),
            p.steady.vendor_calls,
            p.steady.api_writes,
            p.steady.api_requests,
            p.steady.cpu_secs,
            p.rotation_reached,
            p.rotation_n,
            per(p.rotation_vendor_calls, p.rotation_n),
            per(p.rotation_api.total, p.rotation_n),
            mib(p.hwm_kib),
            p.noise
                .map_or("–".to_string(), |(_, before, after)| format!(
                    "{} → {}",
                    mib(before),
                    mib(after)
                )),
        );
    }
    let _ = writeln!(
        r,
        "\nRequests of the initial sync, per resource:\n\n| request | {} |\n|---|{}",
        runs.iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(runs.len())
    );
    let mut kinds: Vec<&String> = runs.iter().flat_map(|p| p.api.by_request.keys()).collect();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        let cells: Vec<String> = runs
            .iter()
            .map(|p| per(p.api.by_request.get(k).copied().unwrap_or(0), p.n))
            .collect();
        let _ = writeln!(r, "| `{k}` | {} |", cells.join(" | "));
    }
}

fn peer_targets(r: &mut String, runs: &[PeerRun], mark: &dyn Fn(bool) -> &'static str) {
    let Some(credsync) = runs.iter().find(|p| p.name == "credsync") else {
        return;
    };
    for eso in runs.iter().filter(|p| p.name != "credsync") {
        // An ESO rotation that did not finish counts at the length of its wait (a lower bound).
        let eso_secs = eso.rotation_all.as_secs_f64();
        let speedup = eso_secs / credsync.rotation_all.as_secs_f64().max(1e-9);
        let bound = if eso.rotation_reached < eso.rotation_n {
            "≥ "
        } else {
            ""
        };
        let _ = writeln!(
            r,
            "| rotation ≥ 10× faster than {} | {bound}{speedup:.0}× ({:.2} s vs {bound}{eso_secs:.1} s) | {} |",
            eso.name,
            credsync.rotation_all.as_secs_f64(),
            mark(credsync.rotation_reached == credsync.rotation_n && speedup >= 10.0)
        );
        // With a refreshInterval longer than the window ESO makes no calls in it either; the
        // row then says so instead of judging.
        let met = if eso.steady.vendor_calls == 0 {
            "n/a (ESO's next push is at its refreshInterval, after the window)"
        } else {
            mark(credsync.steady.vendor_calls == 0)
        };
        let _ = writeln!(
            r,
            "| steady: credsync 0 vendor calls where {} makes some | {} vs {} | {met} |",
            eso.name, credsync.steady.vendor_calls, eso.steady.vendor_calls,
        );
    }
}

/// Bars per controller: time until all N values were at the vendor, and rotation time (log
/// scale: ESO's rotation is bounded by its refreshInterval, orders of magnitude above).
pub(crate) fn peer_svg(floor: Option<&PeerFloor>, runs: &[PeerRun]) -> String {
    let mut rows: Vec<(String, f64, Option<f64>, bool)> = Vec::new();
    if let Some(f) = floor {
        rows.push(("floor".into(), f.all_reached.as_secs_f64(), None, true));
    }
    for p in runs {
        rows.push((
            p.name.clone(),
            p.all_reached.as_secs_f64(),
            Some(p.rotation_all.as_secs_f64()),
            p.rotation_reached == p.rotation_n,
        ));
    }
    let (w, row_h, left, top) = (760.0, 46.0, 150.0, 60.0);
    let h = top + row_h * rows.len() as f64 + 60.0;
    let plot_w = w - left - 30.0;
    let max = rows
        .iter()
        .flat_map(|(_, a, b, _)| [Some(*a), *b])
        .flatten()
        .fold(1.0f64, f64::max);
    // Log axis from 0.1 s to the next power of ten above the largest value.
    let (lo, hi) = (0.1f64.log10(), max.log10().ceil().max(0.0));
    let x = |v: f64| left + plot_w * ((v.max(0.1).log10() - lo) / (hi - lo));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">Peer: all N values at the vendor (blue) and rotation (red), seconds, log scale</text>"#,
        w / 2.0
    );
    let mut decade = lo;
    while decade <= hi + 1e-9 {
        let v = 10f64.powf(decade);
        let xx = x(v);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{v}</text>"##,
            h - 50.0,
            h - 34.0
        );
        decade += 1.0;
    }
    for (i, (name, all, rotation, finished)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{name}</text>"#,
            left - 8.0,
            y + 20.0
        );
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{y:.1}" width="{:.1}" height="14" fill="#4c78a8"/><text x="{:.1}" y="{:.1}">{all:.2}</text>"##,
            (x(*all) - left).max(1.0),
            x(*all) + 4.0,
            y + 11.0
        );
        if let Some(rot) = rotation {
            let label = if *finished {
                format!("{rot:.2}")
            } else {
                format!("> {rot:.0} (not done)")
            };
            let _ = writeln!(
                s,
                r##"<rect x="{left}" y="{:.1}" width="{:.1}" height="14" fill="#e45756"/><text x="{:.1}" y="{:.1}">{label}</text>"##,
                y + 16.0,
                (x(*rot) - left).max(1.0),
                x(*rot) + 4.0,
                y + 27.0
            );
        }
    }
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_runs_with_range() {
        assert_eq!(median_range(vec![]), None);
        assert_eq!(median_range(vec![0.9]), Some((0.9, 0.9, 0.9)));
        assert_eq!(
            median_range(vec![0.94, 0.77, 0.86]),
            Some((0.86, 0.77, 0.94))
        );
        // Even count: the lower middle, never a value no run had.
        assert_eq!(
            median_range(vec![4.0, 1.0, 3.0, 2.0]),
            Some((2.0, 1.0, 4.0))
        );
    }
}
