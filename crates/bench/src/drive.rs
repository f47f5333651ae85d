//! The shared environment and the drive every phase is built from: create N resources as fast as
//! the API server takes them and time each until Ready; and the floor, the least any controller
//! must do per resource.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Args;
use crate::audit::audit_offset;
use crate::cluster::{ReadyLog, is_ready, watch_ready};
use crate::procstat::CpuSample;
use crate::stages::{Clock, Stages, Timeline, stages};
use crate::workloads::{Workload, bench_name};
use credsync_testkit::ControlPlane;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::IgnoredAny;
use serde_json::json;

// The environment and the phases.

pub(crate) struct Env {
    /// ESO's controller binary and its impersonating kubeconfig, when it is built.
    pub(crate) eso: Option<(PathBuf, PathBuf)>,
    pub(crate) cp: ControlPlane,
    pub(crate) client: Client,
    pub(crate) args: Args,
    pub(crate) operator_bin: PathBuf,
    pub(crate) operator_kubeconfig: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) clk_tck: f64,
}

/// What creating N resources and waiting for them to be Ready showed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Drive {
    pub(crate) n: usize,
    pub(crate) created: usize,
    pub(crate) ready: usize,
    /// First create sent → last create answered.
    pub(crate) create_span: Duration,
    /// First create sent → last resource Ready (or the timeout).
    pub(crate) all_ready: Duration,
    /// Create sent → first seen Ready, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// Each resource, in creation order, and the clock they are read on.
    pub(crate) timelines: Vec<Timeline>,
    pub(crate) clock: Option<Clock>,
    /// Where the time went (filled in from the audit log after the drive).
    pub(crate) stages: Stages,
    /// CPU seconds spent from the first create to the last Ready.
    pub(crate) cpu: CpuSample,
    /// Bytes of one Ready object per kind as the API server returns it (JSON, managedFields
    /// included): what it decodes, validates, stores and sends to every watcher per write.
    pub(crate) object_bytes: Vec<(String, usize)>,
}

impl Drive {
    pub(crate) fn throughput(&self) -> f64 {
        self.ready as f64 / self.all_ready.as_secs_f64().max(1e-9)
    }
    pub(crate) fn pct(&self, q: f64) -> Duration {
        percentile(&self.latencies, q)
    }
}

/// One create as `drive` sent it: its place in the creation order, when it was sent and answered.
#[derive(Clone)]
pub(crate) struct Created {
    pub(crate) order: usize,
    pub(crate) sent: Instant,
    pub(crate) answered: Option<Instant>,
}

pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The floor: for each created resource, one vendor call and one status merge-patch that sets
/// Ready, `workers` at a time, fed straight from the create answers.
pub(crate) struct Floor {
    pub(crate) workers: usize,
}

impl Env {
    pub(crate) fn ready_timeout(&self, n: usize) -> Duration {
        Duration::from_secs(120 + (n as u64) / 20)
    }

    /// Create `n` resources in `ns` as fast as the API server takes them, and wait until each
    /// is Ready (watched). With `floor`, the benchmark itself brings them to Ready.
    pub(crate) async fn drive(
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

        let (queue_tx, queue_rx) = tokio::sync::mpsc::unbounded_channel::<Made>();
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
                        let Some(made) = next else {
                            return;
                        };
                        let w = &workloads[made.index % workloads.len()];
                        floor_one(&client, &ns, w.as_ref(), &made).await;
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
                                let _ = queue_tx.send(Made {
                                    index: i,
                                    generation: made.metadata.generation.unwrap_or(1),
                                    resource_version: made.resource_version().unwrap_or_default(),
                                    name,
                                });
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
    pub(crate) async fn sample_objects(
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
    pub(crate) fn split_stages(&self, drive: &mut Drive, namespace: &str, from: u64) {
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

    /// Wait until the control plane is idle (kube-apiserver and etcd together under a tenth
    /// of a CPU over half a second, or 15 s at most), so that a measured side does not start
    /// while they still work off what came before: the previous side's deletes, its garbage.
    pub(crate) async fn settle(&self) {
        const WINDOW: Duration = Duration::from_millis(500);
        let started = Instant::now();
        let mut last = CpuSample::take(&self.cp, self.clk_tck);
        loop {
            tokio::time::sleep(WINDOW).await;
            let now = CpuSample::take(&self.cp, self.clk_tck);
            let busy = now.since(&last);
            let quiet = busy.apiserver + busy.etcd < 0.1 * WINDOW.as_secs_f64();
            if quiet || started.elapsed() >= Duration::from_secs(15) {
                eprintln!(
                    "bench: control plane {} after {:.1} s",
                    if quiet { "settled" } else { "still busy" },
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            last = now;
        }
    }

    pub(crate) async fn namespace(&self, name: &str) {
        self.cp
            .create_namespace(name, BTreeMap::new())
            .await
            .expect("create a namespace");
    }
}

pub(crate) fn resources(ws: &[Arc<dyn Workload>]) -> Vec<ApiResource> {
    let mut out: Vec<ApiResource> = Vec::new();
    for w in ws {
        let ar = w.resource();
        if !out.iter().any(|k| k.kind == ar.kind) {
            out.push(ar);
        }
    }
    out
}

/// A resource as its create answered: what the floor's status write needs.
pub(crate) struct Made {
    index: usize,
    name: String,
    generation: i64,
    resource_version: String,
}

/// The floor's irreducible work for one resource: the vendor call, then one status write that
/// sets Ready (retried on failure, as any controller would). The write is the cheapest the API
/// server offers, the one credsync uses: a replace of the status subresource at the version the
/// create answered, its answer not decoded (a merge patch, if another write came first).
pub(crate) async fn floor_one(client: &Client, ns: &str, w: &dyn Workload, made: &Made) {
    let ar = w.resource();
    let request = kube::core::Request::new(DynamicObject::url_path(&ar, Some(ns)));
    for _ in 0..5 {
        let outputs = match w.floor_apply(made.index).await {
            Ok(o) => o,
            Err(e) => {
                eprintln!("bench: floor vendor call for {}: {e}", made.name);
                continue;
            }
        };
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut status = json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Synced",
                "message": "in sync with the vendor", "lastTransitionTime": now,
                "observedGeneration": made.generation}],
            "observedGeneration": made.generation,
            "lastSyncedTime": now,
        });
        if let (Some(status), Some(outputs)) = (status.as_object_mut(), outputs.as_object()) {
            status.extend(outputs.clone());
        }
        let replace = json!({
            "apiVersion": ar.api_version, "kind": ar.kind,
            "metadata": {"name": made.name, "namespace": ns,
                "resourceVersion": made.resource_version},
            "status": status,
        });
        let written = match request.replace_subresource(
            "status",
            &made.name,
            &PostParams::default(),
            serde_json::to_vec(&replace).expect("JSON"),
        ) {
            Ok(put) => match client.request::<IgnoredAny>(put).await {
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let patch = json!({ "status": status });
                    match request.patch_subresource(
                        "status",
                        &made.name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    ) {
                        Ok(patch) => client.request::<IgnoredAny>(patch).await.map(|_| ()),
                        Err(e) => Err(kube::Error::BuildRequest(e)),
                    }
                }
                other => other.map(|_| ()),
            },
            Err(e) => Err(kube::Error::BuildRequest(e)),
        };
        match written {
            Ok(()) => return,
            Err(e) => eprintln!("bench: floor status write for {}: {e}", made.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;
    use std::time::Duration;

    #[test]
    fn percentiles_by_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }
}
