//! Reliability: rate limits, Retry-After, vendor faults at scale, API server restarts, leader
//! election and idle quiet, against the real API server and the fault-injecting simulator.

mod support;

use std::time::{Duration, Instant};

use axum::http::Method;
use credsync::api::{SsoAppCredential, VendorConnection};
use credsync::leader::LeaderElection;
use credsync_testkit::sim::helloid::HelloIdSim;
use credsync_testkit::sim::{Fault, SimServer};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::{TestEnv, condition, wait_count};

const APP: &str = "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f";

fn user(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn connection(url: &str, extra: serde_json::Value) -> VendorConnection {
    let mut spec = json!({"helloId": {"url": url, "apiKeySecretRef": {"name": "api"}}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    support::object("helloid", spec)
}

fn credential(i: usize, password: &str) -> SsoAppCredential {
    serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "SsoAppCredential", "metadata": {"name": format!("user-{i}")},
        "spec": {
            "connectionRef": {"name": "helloid"}, "userGuid": user(i), "applicationGuid": APP,
            "credentials": [{"function": "UserName", "value": format!("user{i}")}, {"function": "Password", "value": password}]
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

async fn all_ready(env: &TestEnv, ns: &str, n: usize, timeout: Duration) {
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), ns);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let list = api.list(&Default::default()).await.expect("list");
        let ready = list.items.iter().filter(|o| is_ready(o)).count();
        if ready >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {ready} of {n} Ready after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A simulator for `sim` and a connection `helloid` to it (with `extra` settings) in `ns`.
async fn setup(env: &TestEnv, ns: &str, sim: &HelloIdSim, extra: serde_json::Value) -> SimServer {
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.namespace(ns).await;
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.apply(ns, &connection(&server.url(), extra)).await;
    server
}

/// The most requests the simulator saw in any one-second window.
fn busiest_second(server: &SimServer) -> usize {
    let mut times: Vec<Instant> = server.journal.all().iter().map(|r| r.at).collect();
    times.sort();
    let mut most = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_holds_across_resources() {
    let env = TestEnv::shared("rate").await;
    let sim = HelloIdSim::new("k", "s");
    let server = setup(
        &env,
        "rate",
        &sim,
        json!({"requestsPerSecond": 5, "maxConcurrentRequests": 4}),
    )
    .await;
    for i in 0..100 {
        env.apply("rate", &credential(i, "pw")).await;
    }
    all_ready(&env, "rate", 100, Duration::from_secs(60)).await;
    let busiest = busiest_second(&server);
    eprintln!(
        "rate limit: 100 resources at requestsPerSecond 5, busiest second saw {busiest} requests"
    );
    assert!(
        busiest <= 5,
        "the vendor saw {busiest} requests in one second"
    );
    assert_eq!(server.journal.len(), 100);
    env.stop().await;
}

/// With every turn taken, reconciles wait in line and start in the order they were asked for.
/// (kube's own limit took the waiting ones in hash order: under a steady inflow some waited
/// until it stopped.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_wait_their_turn_in_the_order_they_were_asked_for() {
    const NS: &str = "turns";
    const N: usize = 20;
    let env = TestEnv::shared_with(NS, |s| s.concurrency = 1).await;
    let sim = HelloIdSim::new("k", "s");
    let server = setup(&env, NS, &sim, json!({})).await;
    // The connection checked and one resource synced before the line forms.
    env.apply(NS, &credential(0, "pw")).await;
    all_ready(&env, NS, 1, Duration::from_secs(30)).await;
    server.faults.set_latency(Duration::from_millis(150));
    for i in 1..=N {
        env.apply(NS, &credential(i, "pw")).await;
    }
    all_ready(&env, NS, N + 1, Duration::from_secs(60)).await;
    let pushed: Vec<usize> = server
        .journal
        .matching(&Method::POST, "/api/v1/enduser/")
        .iter()
        .filter_map(|r| (1..=N).find(|i| r.path.contains(&user(*i))))
        .collect();
    assert_eq!(pushed, (1..=N).collect::<Vec<_>>(), "order of the pushes");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let env = TestEnv::shared("later").await;
    let sim = HelloIdSim::new("k", "s");
    let server = setup(&env, "later", &sim, json!({})).await;
    server.faults.push(
        Fault::RateLimited {
            retry_after_secs: 3,
        },
        1,
    );
    env.apply("later", &credential(1, "pw")).await;
    wait_count("the 429", 1, Duration::from_secs(30), || {
        server.journal.len()
    })
    .await;
    // The wait is the vendor account's: another resource on the connection waits it out too.
    env.apply("later", &credential(2, "pw")).await;
    all_ready(&env, "later", 2, Duration::from_secs(30)).await;
    let calls = server.journal.all();
    assert_eq!(calls.len(), 3, "one 429, then one success per resource");
    let waited = calls[1..]
        .iter()
        .map(|c| c.at.duration_since(calls[0].at))
        .min()
        .unwrap_or_default();
    eprintln!("Retry-After 3 s: the next request came after {waited:?}");
    assert!(
        waited >= Duration::from_secs(3),
        "a request went out {waited:?} after the 429, before its Retry-After"
    );
    env.stop().await;
}

/// Wait until every object of kind K in `ns` is Ready for its generation.
async fn all_ready_of<K>(env: &TestEnv, ns: &str, n: usize, ready: impl Fn(&K) -> bool)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(env.client.clone(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let list = api.list(&Default::default()).await.expect("list");
        let count = list.items.iter().filter(|o| ready(o)).count();
        if count >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {count} of {n} {} Ready",
            K::kind(&())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ready_conditions(
    conds: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    generation: Option<i64>,
) -> bool {
    conds
        .and_then(|c| condition(c, "Ready"))
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_across_all_five_apis_after_faults() {
    use credsync::api::{CrmUserCredential, ErpIdentity};
    use credsync_testkit::sim::apex::{ApexAuth, ApexSim};
    use credsync_testkit::sim::oracle::OracleSim;
    use credsync_testkit::sim::superoffice::SuperOfficeSim;

    let ns = "faulty";
    let env = TestEnv::shared_with(ns, |s| s.backoff_max = Duration::from_secs(2)).await;
    let limits = json!({"maxConcurrentRequests": 8, "requestsPerSecond": 500, "timeoutSeconds": 2});
    let helloid = HelloIdSim::new("k", "s");
    let helloid_server = setup(&env, ns, &helloid, limits.clone()).await;
    let so = SuperOfficeSim::new("tkt", None);
    let so_server = SimServer::start(so.router(), 0).await.expect("superoffice");
    let oracle = OracleSim::new("int", "int-pw");
    let oracle_server = SimServer::start(oracle.router(), 0).await.expect("oracle");
    let apex = ApexSim::new(ApexAuth::Bearer("tok".into()));
    let apex_server = SimServer::start(apex.router(), 0).await.expect("apex");
    env.secret(
        ns,
        "vendor",
        &[
            ("ticket", "tkt"),
            ("username", "int"),
            ("password", "int-pw"),
            ("token", "tok"),
        ],
    )
    .await;
    env.secret(ns, "pw", &[("password", "pw")]).await;
    let connection = |name: &str, block: serde_json::Value| {
        let mut spec = limits.clone();
        if let (Some(spec), Some(block)) = (spec.as_object_mut(), block.as_object()) {
            spec.extend(block.clone());
        }
        support::object::<VendorConnection>(name, spec)
    };
    let ticket = json!({"ticketSecretRef": {"name": "vendor", "key": "ticket"}});
    for conn in [
        connection(
            "so-soap",
            json!({"superOffice": {"url": so_server.url(), "api": "Soap", "auth": ticket}}),
        ),
        connection(
            "so-rest",
            json!({"superOffice": {"url": so_server.url(), "api": "Rest", "auth": ticket}}),
        ),
        connection(
            "oracle",
            json!({"oracleCrmOnDemand": {"url": oracle_server.url(), "credentialsSecretRef": {"name": "vendor"}}}),
        ),
        connection(
            "apex",
            json!({"apexErp": {"url": apex_server.url(), "auth": {"bearerSecretRef": {"name": "vendor", "key": "token"}}}}),
        ),
    ] {
        env.apply(ns, &conn).await;
    }
    for server in [&helloid_server, &so_server, &oracle_server, &apex_server] {
        server.faults.set_failure_ratio(0.3);
    }
    for i in 0..40 {
        env.apply(ns, &credential(i, "pw")).await;
        for (api, conn) in [("soap", "so-soap"), ("rest", "so-rest")] {
            let crm: CrmUserCredential = serde_json::from_value(json!({
                "apiVersion": "credsync.io/v1alpha1", "kind": "CrmUserCredential", "metadata": {"name": format!("{api}-{i}")},
                "spec": {"connectionRef": {"name": conn}, "superOffice": {"type": "imap", "publicValue": format!("{api}/{i}"),
                         "secretValueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}
            }))
            .expect("crm");
            env.apply(ns, &crm).await;
        }
        let ora: CrmUserCredential = serde_json::from_value(json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "CrmUserCredential", "metadata": {"name": format!("ora-{i}")},
            "spec": {"connectionRef": {"name": "oracle"}, "oracleCrmOnDemand": {"userId": format!("U-{i}"),
                     "passwordFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}
        }))
        .expect("oracle");
        env.apply(ns, &ora).await;
        let erp: ErpIdentity = serde_json::from_value(json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "ErpIdentity", "metadata": {"name": format!("erp-{i}")},
            "spec": {"connectionRef": {"name": "apex"}, "identityType": "User", "name": format!("user{i}")}
        }))
        .expect("erp");
        env.apply(ns, &erp).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for server in [&helloid_server, &so_server, &oracle_server, &apex_server] {
        server.faults.clear();
    }
    all_ready(&env, ns, 40, Duration::from_secs(120)).await;
    all_ready_of::<CrmUserCredential>(&env, ns, 120, |o| {
        ready_conditions(
            o.status.as_ref().map(|s| &s.sync.conditions),
            o.metadata.generation,
        )
    })
    .await;
    all_ready_of::<ErpIdentity>(&env, ns, 40, |o| {
        ready_conditions(
            o.status.as_ref().map(|s| &s.sync.conditions),
            o.metadata.generation,
        )
    })
    .await;

    // Every record is right, and no resource was written twice.
    for i in 0..40 {
        assert_eq!(
            helloid
                .get(&user(i), APP, "Default")
                .map(|s| s.credentials[0].value.clone()),
            Some(format!("user{i}"))
        );
        assert!(
            so.get(0, "imap", &format!("soap/{i}")).is_some()
                && so.get(0, "imap", &format!("rest/{i}")).is_some()
        );
        assert_eq!(oracle.password_of(&format!("U-{i}")).as_deref(), Some("pw"));
    }
    assert_eq!(
        helloid.write_counts().first().map(|c| c.1),
        Some(1),
        "HelloID: one write per resource"
    );
    assert_eq!(so.saves(), 80, "SuperOffice: one save per resource");
    assert_eq!(oracle.sets(), 40, "Oracle: one SetPassword per resource");
    assert_eq!(
        (apex.creates(), apex.saves(), apex.identities("User").len()),
        (40, 40, 40),
        "Apex: one create per identity, no duplicates"
    );
    let requests: usize = [&helloid_server, &so_server, &oracle_server, &apex_server]
        .iter()
        .map(|s| s.journal.len())
        .sum();
    eprintln!(
        "faults: 200 resources over five APIs, 30% failures for 5 s: {requests} vendor requests in all, exactly one successful write per resource"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_an_api_server_restart() {
    // A control plane of its own: it stops the API server.
    let mut env = TestEnv::dedicated().await;
    let sim = HelloIdSim::new("k", "s");
    let server = setup(&env, "restart", &sim, json!({})).await;
    env.apply("restart", &credential(1, "before")).await;
    all_ready(&env, "restart", 1, Duration::from_secs(30)).await;
    env.cp.stop_apiserver().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    env.cp
        .start_apiserver()
        .await
        .expect("kube-apiserver restarts");
    env.client = env.cp.client();
    env.apply("restart", &credential(1, "after")).await;
    env.apply("restart", &credential(2, "new")).await;
    wait_count("POSTs", 3, Duration::from_secs(60), || {
        server.journal.matching(&Method::POST, "/api/v1/").len()
    })
    .await;
    all_ready(&env, "restart", 2, Duration::from_secs(60)).await;
    assert_eq!(
        sim.get(&user(1), APP, "Default")
            .map(|s| s.credentials[1].value.clone()),
        Some("after".into())
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_quick_takeover() {
    // A control plane of its own: its operators serve every namespace, under a Lease in the
    // operator namespace.
    let env = TestEnv::dedicated_bare().await;
    let sim = HelloIdSim::new("k", "s");
    let _server = setup(&env, "ha", &sim, json!({})).await;
    let election = |id: &str| LeaderElection {
        lease_name: "credsync-leader".into(),
        namespace: support::OPERATOR_NAMESPACE.into(),
        identity: id.into(),
        lease_seconds: 4,
        renew_grace_seconds: 1,
    };
    let (stop_a, task_a) = env.spawn_operator(Some(election("replica-a")));
    env.apply("ha", &credential(1, "pw")).await;
    all_ready(&env, "ha", 1, Duration::from_secs(30)).await;
    let (stop_b, task_b) = env.spawn_operator(Some(election("replica-b")));
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), support::OPERATOR_NAMESPACE);
    let holder = || async {
        leases
            .get_opt("credsync-leader")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity))
    };
    for i in 2..=6 {
        env.apply("ha", &credential(i, "pw")).await;
    }
    all_ready(&env, "ha", 6, Duration::from_secs(30)).await;
    assert_eq!(holder().await.as_deref(), Some("replica-a"));
    assert_eq!(
        sim.write_counts().first().map(|c| c.1),
        Some(1),
        "one writer: no set written twice"
    );

    // The leader stops; the standby takes over and serves new work.
    let stopped = Instant::now();
    stop_a.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task_a).await;
    env.apply("ha", &credential(7, "pw")).await;
    all_ready(&env, "ha", 7, Duration::from_secs(30)).await;
    let takeover = stopped.elapsed();
    eprintln!(
        "leader election: replica-b took over and synced new work {takeover:?} after replica-a stopped (lease 4 s)"
    );
    assert_eq!(holder().await.as_deref(), Some("replica-b"));
    assert!(
        takeover < Duration::from_secs(4 + 4),
        "takeover took {takeover:?}"
    );
    stop_b.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_means_no_calls_and_no_writes() {
    // A control plane of its own: it counts every status write in the audit log.
    let env = TestEnv::dedicated().await;
    let sim = HelloIdSim::new("k", "s");
    let server = setup(
        &env,
        "idle",
        &sim,
        json!({"maxConcurrentRequests": 16, "requestsPerSecond": 1000}),
    )
    .await;
    for i in 0..500 {
        env.apply("idle", &credential(i, "pw")).await;
    }
    all_ready(&env, "idle", 500, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status_writes = || {
        std::fs::read_to_string(env.cp.audit_log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("\"subresource\":\"status\"")
                    && l.contains("\"stage\":\"ResponseComplete\"")
                    && !l.contains("\"verb\":\"get\"")
            })
            .count()
    };
    let (calls, writes) = (server.journal.len(), status_writes());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (calls_after, writes_after) = (server.journal.len(), status_writes());
    eprintln!(
        "idle: 500 Ready resources over 60 s: {} vendor calls, {} status writes",
        calls_after - calls,
        writes_after - writes
    );
    assert_eq!(calls_after, calls, "vendor calls while idle");
    assert_eq!(writes_after, writes, "status writes while idle");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_sync_now_and_deletion_that_always_finishes() {
    let env = TestEnv::shared("ops").await;
    let sim = HelloIdSim::new("k", "s");
    let server = setup(&env, "ops", &sim, json!({})).await;
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), "ops");
    env.apply("ops", &credential(1, "pw")).await;
    all_ready(&env, "ops", 1, Duration::from_secs(30)).await;
    let posts = || {
        server
            .journal
            .matching(&Method::POST, "/api/v1/enduser/")
            .len()
    };
    assert_eq!(posts(), 1);

    // Sync now: one more call, recorded in status.
    let annotate =
        |key: &str, value: Option<&str>| json!({"metadata": {"annotations": {key: value}}});
    api.patch(
        "user-1",
        &PatchParams::default(),
        &Patch::Merge(annotate(
            "credsync.io/reconcile-requested-at",
            Some("2026-11-22T10:00:00Z"),
        )),
    )
    .await
    .expect("annotate");
    wait_count("POSTs", 2, Duration::from_secs(20), posts).await;
    env.wait_for::<SsoAppCredential>("ops", "user-1", Duration::from_secs(20), |o| {
        o.status
            .as_ref()
            .and_then(|s| s.sync.last_handled_reconcile_at.as_deref())
            == Some("2026-11-22T10:00:00Z")
    })
    .await;

    // Paused: spec changes are not sent; unpausing sends them.
    api.patch(
        "user-1",
        &PatchParams::default(),
        &Patch::Merge(annotate("credsync.io/paused", Some("true"))),
    )
    .await
    .expect("pause");
    env.wait_for::<SsoAppCredential>("ops", "user-1", Duration::from_secs(20), |o| {
        o.status
            .as_ref()
            .and_then(|s| condition(&s.sync.conditions, "Ready"))
            .is_some_and(|c| c.reason == "Paused")
    })
    .await;
    let mut changed = credential(1, "changed");
    changed.metadata.annotations =
        Some([("credsync.io/paused".to_string(), "true".to_string())].into());
    env.apply("ops", &changed).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(posts(), 2, "nothing sent while paused");
    api.patch(
        "user-1",
        &PatchParams::default(),
        &Patch::Merge(annotate("credsync.io/paused", None)),
    )
    .await
    .expect("unpause");
    wait_count("POSTs", 3, Duration::from_secs(20), posts).await;

    // Deletion while the vendor fails: the finalizer holds with a clear condition; Orphan lets go.
    let mut doomed = credential(2, "pw");
    doomed.spec.deletion_policy = credsync::api::DeletionPolicy::Delete;
    env.apply("ops", &doomed).await;
    env.wait_for::<SsoAppCredential>("ops", "user-2", Duration::from_secs(20), is_ready)
        .await;
    server.faults.push(Fault::Unavailable, 1000);
    env.delete::<SsoAppCredential>("ops", "user-2").await;
    let blocked = env
        .wait_for::<SsoAppCredential>("ops", "user-2", Duration::from_secs(20), |o| {
            o.status
                .as_ref()
                .and_then(|s| condition(&s.sync.conditions, "Ready"))
                .is_some_and(|c| c.reason == "DeletionFailed")
        })
        .await;
    let message = support::message_of(&blocked, "Ready");
    assert!(message.contains("deletionPolicy: Orphan"), "{message}");
    api.patch(
        "user-2",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"deletionPolicy": "Orphan"}})),
    )
    .await
    .expect("orphan");
    env.wait_gone::<SsoAppCredential>("ops", "user-2", Duration::from_secs(20))
        .await;
    server.faults.clear();

    // The connection is deleted first: it stays (the operator's credsync.io/in-use hold) until
    // the resource has deleted its record through it, then goes (as in a namespace deletion).
    let mut orphaned = credential(3, "pw");
    orphaned.spec.deletion_policy = credsync::api::DeletionPolicy::Delete;
    env.apply("ops", &orphaned).await;
    env.wait_for::<SsoAppCredential>("ops", "user-3", Duration::from_secs(20), is_ready)
        .await;
    let in_use = env.in_use_finalizer();
    env.wait_for::<VendorConnection>("ops", "helloid", Duration::from_secs(20), |c| {
        c.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.contains(&in_use))
    })
    .await;
    env.delete::<VendorConnection>("ops", "helloid").await;
    env.delete::<SsoAppCredential>("ops", "user-3").await;
    env.wait_gone::<SsoAppCredential>("ops", "user-3", Duration::from_secs(20))
        .await;
    assert!(
        sim.get(&user(3), APP, "Default").is_none(),
        "the record was deleted through the connection kept for it"
    );
    env.wait_gone::<VendorConnection>("ops", "helloid", Duration::from_secs(20))
        .await;
    env.stop().await;
}

/// An SsoAppCredential whose password is key `password` of its own Secret `pw-{i}`.
fn credential_from_secret(i: usize) -> SsoAppCredential {
    serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "SsoAppCredential", "metadata": {"name": format!("user-{i}")},
        "spec": {
            "connectionRef": {"name": "helloid"}, "userGuid": user(i), "applicationGuid": APP,
            "credentials": [
                {"function": "UserName", "value": format!("user{i}")},
                {"function": "Password", "valueFrom": {"secretKeyRef": {"name": format!("pw-{i}"), "key": "password"}}}
            ]
        }
    }))
    .expect("credential")
}

/// The password the simulator holds for user `i`.
fn vendor_password(sim: &HelloIdSim, i: usize) -> Option<String> {
    sim.get(&user(i), APP, "Default")?
        .credentials
        .into_iter()
        .find(|c| c.function == "Password")
        .map(|c| c.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_rotation_is_pushed_first_and_every_status_catches_up() {
    const N: usize = 60;
    let env = TestEnv::shared("burst").await;
    let sim = HelloIdSim::new("k", "s");
    let (_server, api, before) = rotation_fixture(&env, "burst", &sim, N).await;
    let deferred_before = deferred_writes();

    rotate_all_at_once(&env, "burst", &sim, N).await;

    // Every status records the new fingerprint within the longest deferral (5 s), Ready all
    // along.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = api.list(&Default::default()).await.expect("list");
        assert!(list.items.iter().all(is_ready), "Ready all along");
        let caught_up = caught_up(&before, &list);
        if caught_up == N {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{caught_up} of {N} statuses show the rotated fingerprint"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        deferred_writes() > deferred_before,
        "a burst of {N} rotations deferred no status write"
    );
    assert_eq!(
        sim.write_counts().iter().map(|c| c.1).sum::<usize>(),
        2 * N,
        "one push per value: paying an owed status write calls nobody"
    );
    env.stop().await;
}

/// `n` Ready SsoAppCredentials in `ns`, each with its password in Secret `pw-<i>`, pushed to
/// `sim`; their api and fingerprints once every status is written (a write still owed from the
/// first sync would blur the baseline).
async fn rotation_fixture(
    env: &TestEnv,
    ns: &str,
    sim: &HelloIdSim,
    n: usize,
) -> (
    SimServer,
    Api<SsoAppCredential>,
    std::collections::BTreeMap<String, Option<String>>,
) {
    let server = setup(
        env,
        ns,
        sim,
        json!({"maxConcurrentRequests": 16, "requestsPerSecond": 1000}),
    )
    .await;
    for i in 0..n {
        env.secret(ns, &format!("pw-{i}"), &[("password", "old")])
            .await;
        env.apply(ns, &credential_from_secret(i)).await;
    }
    all_ready(env, ns, n, Duration::from_secs(60)).await;
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), ns);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = fingerprints(&api.list(&Default::default()).await.expect("list"));
    (server, api, before)
}

/// Each resource's applied fingerprint, by name.
fn fingerprints(
    list: &kube::core::ObjectList<SsoAppCredential>,
) -> std::collections::BTreeMap<String, Option<String>> {
    list.items
        .iter()
        .map(|o| {
            let fingerprint = o
                .status
                .as_ref()
                .and_then(|s| s.sync.applied_fingerprint.clone());
            (o.metadata.name.clone().unwrap_or_default(), fingerprint)
        })
        .collect()
}

/// How many statuses in `list` show a fingerprint other than the one they showed `before`.
fn caught_up(
    before: &std::collections::BTreeMap<String, Option<String>>,
    list: &kube::core::ObjectList<SsoAppCredential>,
) -> usize {
    fingerprints(list)
        .iter()
        .filter(|(name, now)| {
            now.is_some()
                && before
                    .get(*name)
                    .is_some_and(|old| old.is_some() && old != *now)
        })
        .count()
}

/// Set the `n` Secrets `pw-<i>` of `ns` to "new" at once, as a mass rotation does, and wait
/// until the vendor holds every new value.
async fn rotate_all_at_once(env: &TestEnv, ns: &str, sim: &HelloIdSim, n: usize) {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|i| async move {
            env.secret(ns, &format!("pw-{i}"), &[("password", "new")])
                .await
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    wait_count(
        "new passwords at the vendor",
        n,
        Duration::from_secs(60),
        || {
            (0..n)
                .filter(|i| vendor_password(sim, *i).as_deref() == Some("new"))
                .count()
        },
    )
    .await;
}

/// Asked to stop right after a mass rotation (a rollout), the operator first writes the status
/// writes it deferred during the burst: every status records the new value when it has
/// stopped, and the operator that follows sends none of the values again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_operator_writes_what_it_owes_and_its_successor_sends_nothing_again() {
    const N: usize = 60;
    let mut env = TestEnv::shared("stopowed").await;
    let sim = HelloIdSim::new("k", "s");
    let (_server, api, before) = rotation_fixture(&env, "stopowed", &sim, N).await;
    let deferred_before = deferred_writes();

    rotate_all_at_once(&env, "stopowed", &sim, N).await;
    env.stop_operator().await;
    assert!(
        deferred_writes() > deferred_before,
        "the burst deferred no status write: nothing was owed at the stop"
    );
    let list = api.list(&Default::default()).await.expect("list");
    assert_eq!(
        caught_up(&before, &list),
        N,
        "every status records the new value once the operator has stopped"
    );

    env.start_operator();
    all_ready(&env, "stopowed", N, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sim.write_counts().iter().map(|c| c.1).sum::<usize>(),
        2 * N,
        "the next operator sends no value again"
    );
    env.stop().await;
}

/// Status writes this process deferred so far (every kind).
fn deferred_writes() -> u64 {
    credsync::metrics::encode()
        .lines()
        .filter(|l| l.starts_with("credsync_status_writes_deferred_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_held_exactly_while_a_resource_must_delete_through_it() {
    let env = TestEnv::shared("hold").await;
    let sim = HelloIdSim::new("k", "s");
    let _server = setup(&env, "hold", &sim, json!({})).await;
    let in_use = env.in_use_finalizer();
    let held = |c: &VendorConnection| {
        c.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.contains(&in_use))
    };
    let connections: Api<VendorConnection> = Api::namespaced(env.client.clone(), "hold");
    let resources: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), "hold");
    let set_policy = |name: &'static str, policy: &'static str| {
        let resources = resources.clone();
        async move {
            resources
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"deletionPolicy": policy}})),
                )
                .await
                .expect("set the deletion policy");
        }
    };

    // Orphan resources (the default) have nothing to delete through it.
    for i in 0..3 {
        env.apply("hold", &credential(i, "pw")).await;
    }
    all_ready(&env, "hold", 3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connection = connections.get("helloid").await.expect("connection");
    assert!(!held(&connection), "held for Orphan resources");

    // One turns Delete: held, from its finalizer on.
    set_policy("user-1", "Delete").await;
    env.wait_for::<VendorConnection>("hold", "helloid", Duration::from_secs(20), held)
        .await;
    // It turns Orphan again and lives on: its finalizer goes, and so does the hold.
    set_policy("user-1", "Orphan").await;
    env.wait_for::<VendorConnection>("hold", "helloid", Duration::from_secs(20), |c| !held(c))
        .await;
    env.stop().await;
}
