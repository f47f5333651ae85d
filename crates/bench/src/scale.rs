//! The `--scale` run: one kind (SsoAppCredential, inline values) at N = 100,000 by default, to
//! see whether time to Ready, memory and the idle cost stay flat per resource far beyond the
//! full run's N. Not part of the default run: it takes long and needs memory for etcd.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::audit::{AuditCounts, audit_offset, audit_window};
use crate::children::Operator;
use crate::drive::{Drive, Env};
use crate::report::{Steady, machine, mib, ms, per};
use crate::workloads::{HelloIdWorkload, Workload};

/// What the scale run showed.
pub(crate) struct Scale {
    pub(crate) drive: Drive,
    /// The operator's requests from the first create to the last Ready.
    pub(crate) api: AuditCounts,
    pub(crate) vendor_calls: usize,
    pub(crate) hwm_kib: u64,
    pub(crate) rss_kib_ready: u64,
    pub(crate) cpu_secs: f64,
    pub(crate) steady: Option<Steady>,
}

impl Env {
    pub(crate) async fn scale(&self) -> Scale {
        let n = self.args.scale_n;
        eprintln!("bench: scale run, N={n} SsoAppCredentials");
        let ns = "bench-scale";
        self.namespace(ns).await;
        let limits = json!({"maxConcurrentRequests": self.args.concurrency, "requestsPerSecond": 10000, "timeoutSeconds": 30});
        let hello: Arc<dyn Workload> =
            Arc::new(HelloIdWorkload::start(&self.client, ns, &limits).await);
        let ws = vec![hello];
        let operator = Operator::start(self, "scale", self.args.concurrency).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let audit = self.cp.audit_log_path();
        let (audit0, calls0, cpu0) = (
            audit_offset(&audit),
            ws[0].vendor_calls(),
            operator.stats(self).cpu_secs,
        );
        let drive = self.drive(ns, &ws, n, false, None).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let api = audit_window(&audit, audit0, audit_offset(&audit));
        let stats = operator.stats(self);
        let vendor_calls = ws[0].vendor_calls() - calls0;
        eprintln!(
            "bench: scale: {} of {n} Ready in {:.1} s, p99 {:.0} ms, {vendor_calls} vendor calls, {} API requests, peak RSS {} MiB",
            drive.ready,
            drive.all_ready.as_secs_f64(),
            drive.pct(0.99).as_secs_f64() * 1000.0,
            api.total,
            mib(stats.hwm_kib)
        );
        let steady = if self.args.steady_secs > 0 {
            Some(self.steady(&operator, &ws).await)
        } else {
            None
        };
        let hwm_kib = operator.stats(self).hwm_kib;
        operator.stop().await;
        Scale {
            drive,
            api,
            vendor_calls,
            hwm_kib,
            rss_kib_ready: stats.rss_kib,
            cpu_secs: stats.cpu_secs - cpu0,
            steady,
        }
    }
}

pub(crate) fn scale_report(env: &Env, s: &Scale, wall: Duration) -> String {
    let mut r = String::new();
    let d = &s.drive;
    let _ = writeln!(r, "# credsync scale run\n");
    for (k, v) in machine(env) {
        let _ = writeln!(r, "- {k}: {v}");
    }
    let _ = writeln!(
        r,
        "\n| N | Ready | creates done | time to all Ready | throughput | p50 (ms) | p99 (ms) | vendor calls | operator API requests | per resource | operator CPU s | peak RSS | RSS when all Ready |"
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        r,
        "| {} | {} | {:.1} s | {:.1} s | {:.0}/s | {} | {} | {} | {} | {} | {:.1} | {} MiB | {} MiB |",
        d.n,
        d.ready,
        d.create_span.as_secs_f64(),
        d.all_ready.as_secs_f64(),
        d.throughput(),
        ms(d.pct(0.5)),
        ms(d.pct(0.99)),
        s.vendor_calls,
        s.api.total,
        per(s.api.total, d.n),
        s.cpu_secs,
        mib(s.hwm_kib),
        mib(s.rss_kib_ready),
    );
    let _ = writeln!(r, "\nOperator requests by kind:\n");
    for (request, count) in &s.api.by_request {
        let _ = writeln!(r, "- {request}: {count} ({})", per(*count, d.n));
    }
    if let Some(st) = &s.steady {
        let _ = writeln!(
            r,
            "\nSteady state ({} s idle, all Ready): {} vendor calls, {} API writes, {} API requests, {:.2} CPU s, RSS {} MiB.",
            st.secs,
            st.vendor_calls,
            st.api_writes,
            st.api_requests,
            st.cpu_secs,
            mib(st.rss_kib)
        );
    }
    let _ = writeln!(r, "\nWall time: {:.0} s.", wall.as_secs_f64());
    r
}
