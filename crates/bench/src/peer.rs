//! The peer phase: credsync and the External Secrets Operator (ESO) push the same N HelloID
//! credentials from the same Secrets to the same simulator, one after the other in one run, so
//! their figures can be read side by side (docs/benchmarks.md, "Peer: External Secrets").
//!
//! ESO pushes with a PushSecret per Secret through a SecretStore of its webhook provider (its
//! `PushSecret` POSTs a templated body; v0.16.2 `pkg/provider/webhook/webhook.go`,
//! `WebHook.PushSecret` → `pkg/common/webhook/webhook.go`, `Webhook.PushWebhookData`). It runs as
//! a child process impersonating `external-secrets`, as credsync impersonates
//! `credsync-operator`, so the audit log tells their requests apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams,
};
use serde_json::{Value, json};

use crate::OPERATOR_USER;
use crate::audit::{AuditCounts, audit_offset, audit_window_of};
use crate::children::Operator;
use crate::cluster::{clean_namespace, put_secret};
use crate::drive::Env;
use crate::phases::rotated_password;
use crate::procstat::ProcStats;
use crate::report::Steady;
use crate::workloads::{HELLOID_APP, HelloIdWorkload, Workload, bench_name, inline_password};

/// ESO's identity in the audit log.
pub(crate) const ESO_USER: &str = "external-secrets";

/// The ESO version hack/build-tools.sh builds (`eso` target).
pub(crate) const ESO_VERSION: &str = "v0.16.2";

/// Where hack/build-tools.sh puts ESO's controller binary and the module's CRDs.
pub(crate) fn eso_paths() -> (PathBuf, PathBuf) {
    let cache = std::env::var_os("CREDSYNC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/credsync")
        });
    let bin = cache.join("bin");
    (
        bin.join(format!("eso-{ESO_VERSION}")),
        bin.join(format!("eso-{ESO_VERSION}-crds")),
    )
}

/// Every CRD of the module's config/crds/bases (its controllers watch all of them at start).
pub(crate) fn eso_crds(dir: &Path) -> Result<Vec<CustomResourceDefinition>, String> {
    let mut crds = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        crds.push(crd);
    }
    Ok(crds)
}

/// Which controller a peer run measures, and with which settings.
#[derive(Debug, Clone)]
pub(crate) enum PeerController {
    Credsync,
    Eso {
        /// Flags added to ESO's defaults.
        flags: Vec<String>,
        /// Each PushSecret's spec.refreshInterval (ESO re-pushes on this period; it does not
        /// watch the Secret it pushes).
        refresh_interval: String,
    },
}

/// One controller's figures from the peer phase.
pub(crate) struct PeerRun {
    pub(crate) name: String,
    pub(crate) settings: String,
    pub(crate) n: usize,
    /// Values at the vendor after the initial sync.
    pub(crate) reached: usize,
    /// First create sent → last value at the vendor.
    pub(crate) all_reached: Duration,
    pub(crate) vendor_calls: usize,
    pub(crate) api: AuditCounts,
    pub(crate) steady: Steady,
    pub(crate) rotation_n: usize,
    pub(crate) rotation_reached: usize,
    /// First Secret update sent → last new value at the vendor (or when the wait gave up).
    pub(crate) rotation_all: Duration,
    pub(crate) rotation_vendor_calls: usize,
    pub(crate) rotation_api: AuditCounts,
    /// How long the rotation wait was allowed to take.
    pub(crate) rotation_wait: Duration,
    pub(crate) hwm_kib: u64,
    /// RSS before and 10 s after the unrelated Secrets were created.
    pub(crate) noise: Option<(usize, u64, u64)>,
}

/// The floor of the peer phase: the benchmark itself POSTs each value to the simulator,
/// `workers` at a time, with no Kubernetes object in between.
#[derive(Debug, Clone)]
pub(crate) struct PeerFloor {
    pub(crate) n: usize,
    pub(crate) workers: usize,
    pub(crate) reached: usize,
    pub(crate) all_reached: Duration,
}

/// What ESO runs with in the peer phase: its defaults, and the settings its users raise at
/// scale (`--concurrent`, client QPS/burst; a short refreshInterval so rotation is bounded).
pub(crate) fn peer_controllers(concurrency: u32) -> Vec<(String, PeerController)> {
    vec![
        ("credsync".into(), PeerController::Credsync),
        (
            "ESO defaults".into(),
            PeerController::Eso {
                flags: Vec::new(),
                refresh_interval: "1h".into(),
            },
        ),
        (
            "ESO at scale".into(),
            PeerController::Eso {
                flags: vec![
                    "--concurrent".into(),
                    concurrency.to_string(),
                    "--client-qps".into(),
                    "500".into(),
                    "--client-burst".into(),
                    "1000".into(),
                ],
                refresh_interval: "10s".into(),
            },
        ),
    ]
}

impl PeerController {
    fn settings(&self, concurrency: u32) -> String {
        match self {
            PeerController::Credsync => format!(
                "--concurrency {concurrency}, connection maxConcurrentRequests {concurrency}; Secret watch"
            ),
            PeerController::Eso {
                flags,
                refresh_interval,
            } => {
                let flags = if flags.is_empty() {
                    "defaults (--concurrent 1, --client-qps 50, --client-burst 100)".to_string()
                } else {
                    flags.join(" ")
                };
                format!("{flags}; PushSecret refreshInterval {refresh_interval}")
            }
        }
    }
}

fn push_secret_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1alpha1", "PushSecret"),
        "pushsecrets",
    )
}

fn secret_store_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1", "SecretStore"),
        "secretstores",
    )
}

/// The HelloID user GUID of resource `i` (the same as the credsync workload's).
fn user_guid(i: usize) -> String {
    crate::workloads::helloid_user(i)
}

/// ESO's SecretStore: the webhook provider POSTs HelloID's credential body to the user's
/// credential route. The pushed value is the whole Secret as JSON (no secretKey), which the body
/// template reads back with fromYaml; the API key comes from a labelled Secret, as the provider
/// requires (`external-secrets.io/type: webhook`).
fn secret_store(sim_url: &str) -> Value {
    let body = concat!(
        r#"{{- $s := index .remoteRef .remoteRef.remoteKey | fromYaml -}}"#,
        r#"{"ApplicationGUID":"APP","CredSetName":"Default","Credentials":["#,
        r#"{"Function":"UserName","Value":{{ $s.username | toJson }},"UserEditAllowed":true},"#,
        r#"{"Function":"Password","Value":{{ $s.password | toJson }},"UserEditAllowed":true}]}"#
    )
    .replace("APP", HELLOID_APP);
    json!({
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "helloid"},
        "spec": {"provider": {"webhook": {
            "url": format!("{sim_url}/api/v1/enduser/{{{{ .remoteRef.remoteKey }}}}/credential"),
            "method": "POST",
            "headers": {
                "Content-Type": "application/json",
                "Authorization": r#"Basic {{ print .auth.key ":" .auth.secret | b64enc }}"#,
            },
            "body": body,
            "result": {"jsonPath": "$"},
            "secrets": [{"name": "auth", "secretRef": {"name": "helloid-eso-auth"}}],
        }}}
    })
}

fn push_secret(i: usize, refresh_interval: &str) -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1alpha1", "kind": "PushSecret",
        "metadata": {"name": bench_name(i)},
        "spec": {
            "refreshInterval": refresh_interval,
            "secretStoreRefs": [{"name": "helloid", "kind": "SecretStore"}],
            "selector": {"secret": {"name": bench_name(i)}},
            "data": [{"match": {"remoteRef": {"remoteKey": user_guid(i)}}}],
        }
    })
}

fn user_name(i: usize) -> String {
    format!("user{i}")
}

impl Env {
    /// The peer phase: the floor, credsync, then ESO with each of its settings.
    pub(crate) async fn peer(&self) -> (Option<PeerFloor>, Vec<PeerRun>) {
        let n = self.args.peer_n;
        let floor = if self.args.skip_floor {
            None
        } else {
            Some(self.peer_floor(n).await)
        };
        let mut runs = Vec::new();
        for (name, controller) in peer_controllers(self.args.concurrency) {
            if matches!(controller, PeerController::Eso { .. }) && self.eso.is_none() {
                eprintln!(
                    "bench: peer: {name} skipped (ESO is not built: bash hack/build-tools.sh eso)"
                );
                continue;
            }
            runs.push(self.peer_run(&name, &controller, n).await);
        }
        (floor, runs)
    }

    async fn peer_floor(&self, n: usize) -> PeerFloor {
        let workers = self.args.concurrency as usize;
        eprintln!("bench: peer floor, N={n}, {workers} workers");
        let ns = "peer-floor";
        self.namespace(ns).await;
        let limits = self.peer_limits();
        let hello = Arc::new(HelloIdWorkload::start(&self.client, ns, &limits).await);
        let start = Instant::now();
        let ok = futures::stream::iter(0..n)
            .map(|i| {
                let hello = hello.clone();
                async move { hello.floor_apply(i).await.is_ok() }
            })
            .buffer_unordered(workers)
            .filter(|ok| futures::future::ready(*ok))
            .count()
            .await;
        let all_reached = start.elapsed();
        let reached = (0..n)
            .filter(|&i| hello.holds(i, &inline_password(i)))
            .count()
            .min(ok);
        eprintln!(
            "bench: peer floor: {reached} of {n} at the vendor after {:.2} s",
            all_reached.as_secs_f64()
        );
        PeerFloor {
            n,
            workers,
            reached,
            all_reached,
        }
    }

    fn peer_limits(&self) -> Value {
        json!({"maxConcurrentRequests": self.args.concurrency, "requestsPerSecond": 10000, "timeoutSeconds": 30})
    }

    /// One controller: N Secrets, then N resources (SsoAppCredential or PushSecret) created as
    /// fast as the API server takes them; until every value is at the vendor; a steady window;
    /// a rotation of `--rotation` of the Secrets; RSS with unrelated Secrets.
    async fn peer_run(&self, name: &str, controller: &PeerController, n: usize) -> PeerRun {
        let slug = name.to_lowercase().replace(' ', "-");
        let ns = format!("peer-{slug}");
        let settings = controller.settings(self.args.concurrency);
        eprintln!("bench: peer {name}, N={n}: {settings}");
        self.namespace(&ns).await;
        let limits = self.peer_limits();
        let hello = HelloIdWorkload::start(&self.client, &ns, &limits).await;
        let user = match controller {
            PeerController::Credsync => OPERATOR_USER,
            PeerController::Eso { .. } => ESO_USER,
        };
        futures::stream::iter(0..n)
            .map(|i| {
                let ns = ns.clone();
                async move {
                    let (user, password) = (user_name(i), inline_password(i));
                    put_secret(
                        &self.client,
                        &ns,
                        &bench_name(i),
                        &[("username", &user), ("password", &password)],
                    )
                    .await;
                }
            })
            .buffer_unordered(self.args.create_concurrency)
            .collect::<Vec<()>>()
            .await;

        let log = self.out.join(format!("peer-{slug}.log"));
        let operator = match controller {
            PeerController::Credsync => {
                Operator::start(self, &format!("peer-{slug}"), self.args.concurrency).await
            }
            PeerController::Eso { flags, .. } => {
                self.eso_store(&ns, &hello.server.url()).await;
                let Some((bin, kubeconfig)) = &self.eso else {
                    unreachable!("peer() skips ESO runs when it is not built")
                };
                Operator::start_eso(bin, kubeconfig, &log, flags).await
            }
        };
        // Let the controller mark its connection / store Ready before the clock starts.
        tokio::time::sleep(Duration::from_secs(3)).await;

        let audit = self.cp.audit_log_path();
        let (audit0, calls0) = (audit_offset(&audit), hello.vendor_calls());
        let start = Instant::now();
        let (ar, manifest): (ApiResource, Box<dyn Fn(usize) -> Value + Send + Sync>) =
            match controller {
                PeerController::Credsync => (
                    hello.resource(),
                    Box::new(|i| hello.manifest(i, Some(&bench_name(i)))),
                ),
                PeerController::Eso {
                    refresh_interval, ..
                } => {
                    let refresh = refresh_interval.clone();
                    (
                        push_secret_resource(),
                        Box::new(move |i| push_secret(i, &refresh)),
                    )
                }
            };
        let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), &ns, &ar);
        futures::stream::iter(0..n)
            .map(|i| {
                let api = api.clone();
                let manifest = &manifest;
                async move {
                    let obj: Result<DynamicObject, _> = serde_json::from_value(manifest(i));
                    match obj {
                        Ok(obj) => {
                            if let Err(e) = api.create(&PostParams::default(), &obj).await {
                                eprintln!("bench: peer create {}: {e}", bench_name(i));
                            }
                        }
                        Err(e) => eprintln!("bench: peer manifest {i}: {e}"),
                    }
                }
            })
            .buffer_unordered(self.args.create_concurrency)
            .collect::<Vec<()>>()
            .await;
        let (reached, all_reached) = wait_at_vendor(
            &hello,
            n,
            inline_password,
            start,
            start + self.ready_timeout(n),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let api_initial = audit_window_of(&audit, audit0, audit_offset(&audit), user);
        let vendor_calls = hello.vendor_calls() - calls0;
        eprintln!(
            "bench: peer {name}: {reached} of {n} at the vendor after {:.2} s, {vendor_calls} vendor calls, {} API requests",
            all_reached.as_secs_f64(),
            api_initial.total
        );

        let steady = self.peer_steady(&operator, &hello, user).await;
        eprintln!(
            "bench: peer {name} steady {} s: {} vendor calls, {} API writes, {:.2} CPU s",
            steady.secs, steady.vendor_calls, steady.api_writes, steady.cpu_secs
        );

        // Rotation: ESO has no watch on the pushed Secret, so a new value waits for the next
        // refresh; give it that long plus the time the initial sync took.
        let rotation_n = self.args.rotation.min(n);
        let rotation_wait = match controller {
            PeerController::Credsync => self.ready_timeout(rotation_n),
            PeerController::Eso {
                refresh_interval, ..
            } => {
                let refresh = parse_interval(refresh_interval).unwrap_or(Duration::from_secs(3600));
                (refresh + all_reached + Duration::from_secs(30))
                    .min(Duration::from_secs(self.args.peer_rotation_wait_secs))
            }
        };
        let (audit0, calls0) = (audit_offset(&audit), hello.vendor_calls());
        let start = Instant::now();
        let secrets = Api::<Secret>::namespaced(self.client.clone(), &ns);
        futures::stream::iter(0..rotation_n)
            .map(|i| {
                let secrets = secrets.clone();
                async move {
                    let patch = json!({"stringData": {"password": rotated_password(i)}});
                    if let Err(e) = secrets
                        .patch(
                            &bench_name(i),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                    {
                        eprintln!("bench: peer rotate {}: {e}", bench_name(i));
                    }
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        let (rotation_reached, rotation_all) = wait_at_vendor(
            &hello,
            rotation_n,
            rotated_password,
            start,
            start + rotation_wait,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rotation_api = audit_window_of(&audit, audit0, audit_offset(&audit), user);
        let rotation_vendor_calls = hello.vendor_calls() - calls0;
        eprintln!(
            "bench: peer {name} rotation: {rotation_reached} of {rotation_n} new values at the vendor after {:.2} s (wait up to {:.0} s)",
            rotation_all.as_secs_f64(),
            rotation_wait.as_secs_f64()
        );

        let noise = if self.args.noise_secrets > 0 {
            Some(self.peer_noise(&operator, &slug).await)
        } else {
            None
        };
        let hwm_kib = operator.stats(self).hwm_kib;
        operator.stop().await;
        clean_namespace(&self.client, &ns, &[ar]).await;
        PeerRun {
            name: name.to_string(),
            settings,
            n,
            reached,
            all_reached,
            vendor_calls,
            api: api_initial,
            steady,
            rotation_n,
            rotation_reached,
            rotation_all,
            rotation_vendor_calls,
            rotation_api,
            rotation_wait,
            hwm_kib,
            noise,
        }
    }

    /// The SecretStore and its labelled API-key Secret in `ns`.
    async fn eso_store(&self, ns: &str, sim_url: &str) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("helloid-eso-auth".into()),
                labels: Some(BTreeMap::from([(
                    "external-secrets.io/type".to_string(),
                    "webhook".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            string_data: Some(BTreeMap::from([
                ("key".to_string(), "bench-key".to_string()),
                ("secret".to_string(), "bench-secret".to_string()),
            ])),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the ESO auth Secret");
        let store: DynamicObject =
            serde_json::from_value(secret_store(sim_url)).expect("SecretStore manifest");
        Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &secret_store_resource())
            .create(&PostParams::default(), &store)
            .await
            .expect("create the SecretStore");
    }

    async fn peer_steady(
        &self,
        operator: &Operator,
        hello: &HelloIdWorkload,
        user: &str,
    ) -> Steady {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let audit = self.cp.audit_log_path();
        let (audit0, calls0, cpu0) = (
            audit_offset(&audit),
            hello.vendor_calls(),
            operator.stats(self).cpu_secs,
        );
        tokio::time::sleep(Duration::from_secs(self.args.steady_secs)).await;
        let api = audit_window_of(&audit, audit0, audit_offset(&audit), user);
        let stats = operator.stats(self);
        Steady {
            secs: self.args.steady_secs,
            vendor_calls: hello.vendor_calls() - calls0,
            api_writes: api.writes,
            api_requests: api.total,
            cpu_secs: stats.cpu_secs - cpu0,
            rss_kib: stats.rss_kib,
        }
    }

    /// RSS of the running controller before and after `--noise-secrets` unrelated 10 KiB Secrets.
    async fn peer_noise(&self, operator: &Operator, slug: &str) -> (usize, u64, u64) {
        let k = self.args.noise_secrets;
        let before: ProcStats = operator.stats(self);
        let ns = format!("peer-noise-{slug}");
        self.namespace(&ns).await;
        let api = Api::<Secret>::namespaced(self.client.clone(), &ns);
        create_noise(&api, k).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = operator.stats(self);
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        eprintln!(
            "bench: peer noise: RSS {} → {} MiB with {k} unrelated Secrets",
            before.rss_kib / 1024,
            after.rss_kib / 1024
        );
        (k, before.rss_kib, after.rss_kib)
    }
}

/// `k` unrelated Secrets of 10 KiB random bytes.
pub(crate) async fn create_noise(api: &Api<Secret>, k: usize) {
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
}

/// Poll the simulator until resource i holds `value(i)` for every i < n, or `deadline`; how many
/// did and when the last one was first seen (or the wait's length).
async fn wait_at_vendor(
    hello: &HelloIdWorkload,
    n: usize,
    value: fn(usize) -> String,
    start: Instant,
    deadline: Instant,
) -> (usize, Duration) {
    let mut reached: Vec<Option<Instant>> = vec![None; n];
    loop {
        let now = Instant::now();
        for (i, at) in reached.iter_mut().enumerate() {
            if at.is_none() && hello.holds(i, &value(i)) {
                *at = Some(now);
            }
        }
        if reached.iter().all(Option::is_some) || now > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = reached.iter().filter(|a| a.is_some()).count();
    let last = if done == n {
        reached
            .iter()
            .flatten()
            .max()
            .map_or(Duration::ZERO, |t| t.duration_since(start))
    } else {
        start.elapsed()
    };
    (done, last)
}

/// "10s", "5m", "1h" as ESO's refreshInterval takes them (Go durations; only the forms used here).
fn parse_interval(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let number: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Install ESO's CRDs when it is built; the binary and the impersonating kubeconfig.
pub(crate) async fn prepare_eso(
    cp: &credsync_testkit::ControlPlane,
    out: &Path,
) -> Option<(PathBuf, PathBuf)> {
    let (bin, crds_dir) = eso_paths();
    if !bin.is_file() {
        return None;
    }
    match eso_crds(&crds_dir) {
        Ok(crds) => {
            if let Err(e) = cp.install_crds(&crds).await {
                eprintln!("bench: installing ESO's CRDs: {e}; the ESO runs are skipped");
                return None;
            }
        }
        Err(e) => {
            eprintln!("bench: reading ESO's CRDs: {e}; the ESO runs are skipped");
            return None;
        }
    }
    let kubeconfig = crate::children::impersonating_kubeconfig(cp, out, ESO_USER);
    Some((bin, kubeconfig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_intervals() {
        assert_eq!(parse_interval("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_interval("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_interval("soon"), None);
    }

    #[test]
    fn store_body_is_a_template_over_the_pushed_secret() {
        let store = secret_store("http://127.0.0.1:1");
        let body = store
            .pointer("/spec/provider/webhook/body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(body.contains("fromYaml") && body.contains(HELLOID_APP));
        let url = store
            .pointer("/spec/provider/webhook/url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(url.ends_with("/api/v1/enduser/{{ .remoteRef.remoteKey }}/credential"));
    }
}
