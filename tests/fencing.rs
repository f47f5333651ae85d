//! Outcomes that stay true when the API server goes away, against the real API server:
//! a leader cut off from it fences itself, so no vendor write of the old leader lands after the
//! standby's first; and /healthz fails while the controllers are wedged (their watches failing
//! beyond `--liveness-stall-after`), and recovers when the API server is back.

mod support;

use std::time::{Duration, Instant};

use axum::http::Method;
use credsync::api::{SsoAppCredential, VendorConnection};
use credsync::leader::LeaderElection;
use credsync::liveness::Liveness;
use credsync::server::{Readiness, serve_on};
use credsync_testkit::sim::helloid::HelloIdSim;
use credsync_testkit::sim::{Recorded, SimServer};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use support::{TestEnv, condition};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const APP: &str = "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f";
const LEASE: &str = "credsync-leader";

/// A TCP proxy on 127.0.0.1 in front of the API server that the test can cut: every open
/// connection is dropped and new ones are closed at once, as in a network partition of one
/// replica.
struct CuttableProxy {
    addr: std::net::SocketAddr,
    open: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(upstream: std::net::SocketAddr) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (open, _) = watch::channel(true);
        let state = open.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    continue; // dropped: closed at once
                }
                let mut cut = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        CuttableProxy { addr, open, task }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn election(identity: &str) -> LeaderElection {
    LeaderElection {
        lease_name: LEASE.into(),
        namespace: support::OPERATOR_NAMESPACE.into(),
        identity: identity.into(),
        lease_seconds: 4,
        renew_grace_seconds: 1,
    }
}

fn connection(url: &str) -> VendorConnection {
    support::object(
        "helloid",
        json!({"helloId": {"url": url, "apiKeySecretRef": {"name": "api"}},
                 "maxConcurrentRequests": 2, "requestsPerSecond": 100, "timeoutSeconds": 30}),
    )
}

fn credential(i: usize) -> SsoAppCredential {
    serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "SsoAppCredential", "metadata": {"name": format!("user-{i}")},
        "spec": {
            "connectionRef": {"name": "helloid"}, "userGuid": format!("00000000-0000-4000-8000-{i:012}"),
            "applicationGuid": APP,
            "credentials": [{"function": "UserName", "value": format!("user{i}")}, {"function": "Password", "value": "pw"}]
        }
    }))
    .expect("credential")
}

fn is_ready(o: &SsoAppCredential) -> bool {
    o.status.as_ref().is_some_and(|s| {
        condition(&s.sync.conditions, "Ready")
            .is_some_and(|c| c.status == "True" && c.observed_generation == o.metadata.generation)
    })
}

/// Vendor writes (POSTs) sent by `replica`, as the User-Agent names it.
fn writes_by(server: &SimServer, replica: &str) -> Vec<Recorded> {
    let tag = format!("({replica})");
    server
        .journal
        .matching(&Method::POST, "/api/v1/enduser/")
        .into_iter()
        .filter(|r| r.header("user-agent").is_some_and(|ua| ua.ends_with(&tag)))
        .collect()
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_writes_nothing_after_the_new_leader_began() {
    // A control plane of its own: its leaders elect themselves over every namespace, one cut
    // off from the API server by a proxy.
    let env = TestEnv::dedicated_bare().await;
    let ns = "fence";
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    // Slow answers: the leader has writes in flight and more queued when it is cut off.
    server.faults.set_latency(Duration::from_secs(1));
    env.namespace(ns).await;
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.apply(ns, &connection(&server.url())).await;

    let upstream = env
        .cp
        .server_url()
        .trim_start_matches("https://")
        .parse()
        .expect("API server address");
    let proxy = CuttableProxy::start(upstream).await;
    let mut config = env.cp.config().clone();
    config.cluster_url = proxy.url().parse().expect("proxy URL");
    let client_a = kube::Client::try_from(config).expect("client through the proxy");

    let spawn = |client: kube::Client, identity: &str| {
        let stop = tokio_util::sync::CancellationToken::new();
        let election = election(identity);
        let settings = env.settings.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            credsync::leader::run_controllers_while_leading(
                client,
                &election,
                settings,
                Readiness::default(),
                token,
            )
            .await
        });
        (stop, task)
    };
    let (stop_a, task_a) = spawn(client_a, "replica-a");
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), support::OPERATOR_NAMESPACE);
    let holder = async || {
        leases
            .get_opt(LEASE)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity))
    };
    wait_until("replica-a to lead", Duration::from_secs(30), async || {
        holder().await.as_deref() == Some("replica-a")
    })
    .await;
    let (stop_b, task_b) = spawn(env.client.clone(), "replica-b");

    let n = 30;
    for i in 0..n {
        env.apply(ns, &credential(i)).await;
    }
    wait_until(
        "replica-a's first writes",
        Duration::from_secs(30),
        async || writes_by(&server, "replica-a").len() >= 2,
    )
    .await;
    proxy.cut();
    let cut = Instant::now();

    wait_until(
        "replica-b's first write",
        Duration::from_secs(30),
        async || !writes_by(&server, "replica-b").is_empty(),
    )
    .await;
    let first_b = writes_by(&server, "replica-b")[0].at;
    // The old leader stops by itself: it cannot renew, so its controllers end.
    let ended = tokio::time::timeout(Duration::from_secs(30), task_a).await;
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), ns);
    wait_until(
        "every credential Ready",
        Duration::from_secs(90),
        async || {
            api.list(&Default::default())
                .await
                .is_ok_and(|l| l.items.iter().filter(|o| is_ready(o)).count() >= n)
        },
    )
    .await;

    let by_a = writes_by(&server, "replica-a");
    let last_a = by_a.iter().map(|r| r.at).max().expect("replica-a wrote");
    eprintln!(
        "fencing: replica-a cut off; its last write {:?} after the cut, replica-b's first {:?} after it ({} writes by a, {} by b; lease 4 s, grace 1 s)",
        last_a.saturating_duration_since(cut),
        first_b.saturating_duration_since(cut),
        by_a.len(),
        writes_by(&server, "replica-b").len(),
    );
    let late: Vec<_> = by_a.iter().filter(|r| r.at >= first_b).collect();
    assert!(
        late.is_empty(),
        "{} writes of the old leader reached the vendor after the new leader's first",
        late.len()
    );
    match ended {
        Ok(Ok(Err(e))) => assert!(e.contains("renew"), "{e}"),
        other => panic!("the cut-off leader did not stop by itself: {other:?}"),
    }
    assert_eq!(holder().await.as_deref(), Some("replica-b"));
    stop_a.cancel();
    stop_b.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task_b).await;
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_the_api_server_is_gone_and_recovers() {
    // A control plane of its own: it stops the API server.
    let mut env = TestEnv::dedicated_bare().await;
    let ns = "alive";
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.namespace(ns).await;
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.apply(ns, &connection(&server.url())).await;
    env.apply(ns, &credential(1)).await;

    let stall = Duration::from_secs(4);
    let readiness = Readiness::new(Liveness::new(stall));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let stop = tokio_util::sync::CancellationToken::new();
    let endpoints = tokio::spawn(serve_on(
        listener,
        readiness.clone(),
        stop.clone().cancelled_owned(),
    ));
    let operator = tokio::spawn(credsync::controller::run(
        env.client.clone(),
        env.settings.clone(),
        readiness.clone(),
        stop.clone(),
    ));
    let http = reqwest::Client::new();
    let status = async |path: &str| {
        http.get(format!("http://{addr}{path}"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    wait_until(
        "/readyz once the caches synced",
        Duration::from_secs(30),
        async || status("/readyz").await == 200,
    )
    .await;
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), ns);
    wait_until(
        "the credential Ready",
        Duration::from_secs(30),
        async || api.get("user-1").await.is_ok_and(|o| is_ready(&o)),
    )
    .await;

    // A quiet cluster (no events for twice the threshold) stays healthy.
    let quiet = Instant::now();
    while quiet.elapsed() < stall * 2 + Duration::from_secs(1) {
        assert_eq!(status("/healthz").await, 200, "quiet cluster");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let stopped = Instant::now();
    env.cp.stop_apiserver().await;
    wait_until("/healthz to fail", Duration::from_secs(30), async || {
        status("/healthz").await == 503
    })
    .await;
    let unhealthy_after = stopped.elapsed();
    let body = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("healthz")
        .text()
        .await
        .unwrap_or_default();
    // Down a little longer, as an outage would be.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status("/healthz").await, 503, "still down: {body}");
    env.cp
        .start_apiserver()
        .await
        .expect("kube-apiserver restarts");
    let started = Instant::now();
    env.client = env.cp.client();
    wait_until("/healthz to recover", Duration::from_secs(60), async || {
        status("/healthz").await == 200
    })
    .await;
    let healthy_after = started.elapsed();
    eprintln!(
        "liveness (stall after {stall:?}): /healthz failed {unhealthy_after:?} after the API server stopped ({body}), and passed again {healthy_after:?} after it was back"
    );
    assert!(
        unhealthy_after >= stall,
        "unhealthy after only {unhealthy_after:?}"
    );
    assert!(
        unhealthy_after < stall + Duration::from_secs(10),
        "unhealthy only after {unhealthy_after:?}"
    );
    assert!(body.contains("watch has failed"), "{body}");

    // It was not wedged for good: new work is done.
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), ns);
    env.apply(ns, &credential(2)).await;
    wait_until(
        "new work after the outage",
        Duration::from_secs(60),
        async || api.get("user-2").await.is_ok_and(|o| is_ready(&o)),
    )
    .await;
    assert_eq!(status("/healthz").await, 200);
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;
    let _ = endpoints.await;
}
