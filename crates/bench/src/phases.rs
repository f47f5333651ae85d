//! credsync's phases: the (N, latency) cases with their floor, steady state, rotation, churn and
//! memory with unrelated Secrets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::{audit_offset, audit_window};
use crate::children::Operator;
use crate::cluster::{clean_namespace, put_secret};
use crate::drive::{Drive, Env, Floor, percentile, resources};
use crate::peer::create_noise;
use crate::procstat::cpu_summary;
use crate::report::{Case, Churn, Memory, Rotation, Steady, mib};
use crate::workloads::{Workload, bench_name, inline_password, workloads};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

/// What both sides of one (N, latency) case share.
struct CaseSetup {
    n: usize,
    latency: Duration,
    conn_concurrency: u32,
    limits: serde_json::Value,
    label: String,
}

impl Env {
    /// Run `run` (from 1) of one (N, latency) case: the floor (no operator running) and the
    /// operator, each after the control plane has settled. Who goes first alternates from run
    /// to run: the side that goes second inherits the first one's aftermath in the API server
    /// (10,000 fresh deletes in its watch cache, a Go heap still collecting), and no side should
    /// always carry it.
    pub(crate) async fn case(&self, n: usize, latency_ms: u64, run: usize, steady: bool) -> Case {
        let conn_concurrency = if latency_ms == 0 {
            self.args.concurrency
        } else {
            self.args.latency_concurrency
        };
        let setup = CaseSetup {
            n,
            latency: Duration::from_millis(latency_ms),
            conn_concurrency,
            limits: json!({"maxConcurrentRequests": conn_concurrency, "requestsPerSecond": 10000, "timeoutSeconds": 30}),
            label: match run {
                1 => format!("{n}-{latency_ms}ms"),
                _ => format!("{n}-{latency_ms}ms-run{run}"),
            },
        };
        if floor_goes_first(run) {
            let floor = self.floor_side(&setup).await;
            let mut case = self.credsync_side(&setup, run, steady).await;
            case.floor = floor;
            case
        } else {
            let mut case = self.credsync_side(&setup, run, steady).await;
            case.floor = self.floor_side(&setup).await;
            case
        }
    }

    /// One side's own namespace (`<prefix>-<label>`) and workloads, at the case's latency.
    async fn side(&self, setup: &CaseSetup, prefix: &str) -> (String, Vec<Arc<dyn Workload>>) {
        let ns = format!("{prefix}-{}", setup.label);
        self.namespace(&ns).await;
        let ws = workloads(&self.client, &ns, &setup.limits, false).await;
        ws.iter().for_each(|w| w.set_latency(setup.latency));
        (ns, ws)
    }

    /// The floor's side of a case: the benchmark brings every resource to Ready itself.
    async fn floor_side(&self, setup: &CaseSetup) -> Option<Drive> {
        if self.args.skip_floor {
            return None;
        }
        let (n, conn_concurrency) = (setup.n, setup.conn_concurrency);
        eprintln!(
            "bench: floor, N={n}, vendor latency {} ms, {conn_concurrency} workers per connection",
            setup.latency.as_millis()
        );
        let (ns, ws) = self.side(setup, "floor").await;
        self.settle().await;
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
        self.sample_objects(&mut drive, &ns, &ws, &format!("floor-{}", setup.label))
            .await;
        clean_namespace(&self.client, &ns, &resources(&ws)).await;
        ws.iter().for_each(|w| w.set_latency(Duration::ZERO));
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
    }

    /// credsync's side of a case (its `floor` left empty): the operator brings every resource
    /// to Ready, then, with `steady`, idles through the steady-state window.
    async fn credsync_side(&self, setup: &CaseSetup, run: usize, steady: bool) -> Case {
        let (n, conn_concurrency) = (setup.n, setup.conn_concurrency);
        eprintln!(
            "bench: credsync, N={n}, vendor latency {} ms, connection maxConcurrentRequests {conn_concurrency}, operator --concurrency {}",
            setup.latency.as_millis(),
            self.args.concurrency
        );
        let (ns, ws) = self.side(setup, "bench").await;
        let operator = Operator::start(self, &setup.label, self.args.concurrency).await;
        // Let the operator mark the connection Ready before the clock starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.settle().await;
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
        self.sample_objects(&mut drive, &ns, &ws, &format!("credsync-{}", setup.label))
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
            latency_ms: setup.latency.as_millis() as u64,
            run,
            conn_concurrency,
            connections: ws.len(),
            floor: None,
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
    pub(crate) async fn steady(&self, operator: &Operator, ws: &[Arc<dyn Workload>]) -> Steady {
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
    pub(crate) async fn secret_workloads(&self, ns: &str, n: usize) -> Vec<Arc<dyn Workload>> {
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
    pub(crate) async fn rotation(&self) -> Rotation {
        let r = self.args.rotation;
        eprintln!("bench: rotation of {r} Secrets");
        let ns = "bench-rotation";
        let ws = self.secret_workloads(ns, r).await;
        let operator = Operator::start(self, "rotation", self.args.concurrency).await;
        let setup = self.drive(ns, &ws, r, true, None).await;
        tokio::time::sleep(Duration::from_secs(3)).await;

        let audit = self.cp.audit_log_path();
        let fingerprints0 = self.applied_fingerprints(ns, &ws).await;
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
        // The status writes that were owed during the burst (see the operator's
        // `reconcile::deferred_status`): when every status records the new value.
        let mut recorded = None;
        while recorded.is_none() && Instant::now() < deadline {
            let now = self.applied_fingerprints(ns, &ws).await;
            let changed = fingerprints0
                .iter()
                .filter(|(name, old)| {
                    now.get(*name)
                        .is_some_and(|new| new.is_some() && new != *old)
                })
                .count();
            if changed == fingerprints0.len() {
                recorded = Some(start.elapsed());
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
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
            recorded,
            p50: percentile(&latencies, 0.5),
            p99: percentile(&latencies, 0.99),
            vendor_calls: calls,
            api,
            cpu_secs: stats.cpu_secs - cpu0,
        }
    }

    /// `status.appliedFingerprint` of every resource in `ns`, by kind and name.
    async fn applied_fingerprints(
        &self,
        ns: &str,
        ws: &[Arc<dyn Workload>],
    ) -> std::collections::BTreeMap<String, Option<String>> {
        let mut out = std::collections::BTreeMap::new();
        for ar in resources(ws) {
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
            let list = api
                .list(&ListParams::default())
                .await
                .expect("list resources");
            for obj in list.items {
                let fingerprint = obj
                    .data
                    .pointer("/status/appliedFingerprint")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                let name = obj.metadata.name.unwrap_or_default();
                out.insert(format!("{}/{name}", ar.kind), fingerprint);
            }
        }
        out
    }

    /// Operator RSS over waves of creating and deleting resources: every per-object memory must
    /// go with its object, so RSS after the last wave stays near RSS after the first.
    pub(crate) async fn churn(&self) -> Churn {
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
                mib(stats.rss_kib)
            );
            after.push((drive.ready, stats));
        }
        operator.stop().await;
        Churn { n, after }
    }

    /// Operator RSS with and without many unrelated Secrets.
    pub(crate) async fn memory(&self) -> Memory {
        let k = self.args.noise_secrets;
        eprintln!("bench: memory with {k} unrelated 10 KiB Secrets");
        let settle = Duration::from_secs(5);
        let a = Operator::start(self, "memory-a", self.args.concurrency).await;
        tokio::time::sleep(settle).await;
        let before = a.stats(self);
        let ns = "bench-noise";
        self.namespace(ns).await;
        let api = Api::<Secret>::namespaced(self.client.clone(), ns);
        create_noise(&api, k).await;
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

/// Run 1 (and every odd run) starts with the floor, every even run with credsync.
fn floor_goes_first(run: usize) -> bool {
    run % 2 == 1
}

pub(crate) fn rotated_password(i: usize) -> String {
    format!("pw-{i}-rotated")
}

#[cfg(test)]
mod tests {
    use super::floor_goes_first;

    #[test]
    fn each_side_goes_first_in_every_other_run() {
        let firsts: Vec<bool> = (1..=4).map(floor_goes_first).collect();
        assert_eq!(firsts, [true, false, true, false]);
    }
}
