//! `kubectl delete namespace` of a namespace holding Delete-policy resources, their Secrets and
//! their VendorConnection finishes by itself and removes the vendor records, although the
//! namespace controller deletes the Secrets and the connection in the same sweep; also when the
//! operator is killed in the middle. Runs kube-controller-manager's namespace controller, since
//! without it no namespace ever finishes deleting.

mod support;

use std::time::{Duration, Instant};

use axum::http::Method;
use credsync::api::{SsoAppCredential, VendorConnection};
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::helloid::HelloIdSim;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use serde_json::json;
use support::{TEST_APP_GUID, TestEnv, is_true};

const NAMESPACE: &str = "team";
/// Each resource names its own HelloID user: the DELETE route removes every set of a
/// user/application pair, so distinct users make each resource's DELETE visible on its own.
const USERS: [(&str, &str); 2] = [
    ("first", "00000000-0000-4000-8000-000000000001"),
    ("second", "00000000-0000-4000-8000-000000000002"),
];
/// Generous for two vendor calls and the namespace controller's retries on a shared machine.
const NAMESPACE_GONE_WITHIN: Duration = Duration::from_secs(90);

fn ready(o: &SsoAppCredential) -> bool {
    o.status
        .as_ref()
        .is_some_and(|s| is_true(&s.sync.conditions, "Ready", o.metadata.generation))
}

/// A control plane of its own with kube-controller-manager (the namespace controller deletes
/// whole namespaces; a shared control plane must not change) and an operator over every
/// namespace; in it, a namespace with a HelloID connection, its API key Secret, a password
/// Secret and two Delete-policy SsoAppCredentials, all Ready with their credential sets in the
/// simulator.
async fn populated() -> (TestEnv, HelloIdSim, SimServer) {
    let mut env = TestEnv::dedicated().await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.cp
        .start_controller_manager()
        .await
        .expect("kube-controller-manager must start (hack/build-tools.sh control-plane)");
    env.namespace(NAMESPACE).await;
    env.secret(NAMESPACE, "pw", &[("password", "p")]).await;
    env.helloid_tenant(NAMESPACE, &server.url(), "k", "s").await;
    for (name, user) in USERS {
        let mut cred =
            support::sso_credential(name, "VendorConnection", "helloid", "pw", "password");
        cred.spec.user_guid = user.into();
        env.apply(NAMESPACE, &cred).await;
    }
    for (name, user) in USERS {
        env.wait_for::<SsoAppCredential>(NAMESPACE, name, Duration::from_secs(60), ready)
            .await;
        assert!(
            sim.get(user, TEST_APP_GUID, name).is_some(),
            "{name}'s credential set is in the simulator"
        );
    }
    // Give the connection reconcile a moment to put its hold in place (it follows the
    // resources' finalizers); not asserted, so the code without any hold fails below instead.
    let connections: Api<VendorConnection> = Api::namespaced(env.client.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let held = connections
            .get("helloid")
            .await
            .ok()
            .and_then(|c| c.metadata.finalizers)
            .is_some_and(|f| f.iter().any(|f| f == "credsync.io/in-use"));
        if held {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (env, sim, server)
}

fn delete_namespace(env: &TestEnv) {
    let status = env
        .cp
        .kubectl()
        .args(["delete", "namespace", NAMESPACE, "--wait=false"])
        .status()
        .expect("kubectl");
    assert!(status.success(), "kubectl delete namespace: {status}");
}

/// Wait for the namespace to be gone; on timeout, fail with what still holds it.
async fn namespace_gone(env: &TestEnv, since: Instant) -> Duration {
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    loop {
        if namespaces
            .get_opt(NAMESPACE)
            .await
            .expect("namespace")
            .is_none()
        {
            return since.elapsed();
        }
        if since.elapsed() > NAMESPACE_GONE_WITHIN {
            let left = env
                .cp
                .kubectl()
                .args([
                    "get",
                    "credsync,secrets",
                    "-n",
                    NAMESPACE,
                    "-o",
                    "custom-columns=KIND:.kind,NAME:.metadata.name,FINALIZERS:.metadata.finalizers,READY:.status.conditions[?(@.type==\"Ready\")].message",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!(
                "namespace {NAMESPACE} still exists {NAMESPACE_GONE_WITHIN:?} after its deletion; left:\n{left}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every credential set is gone from the simulator, each by a DELETE call.
fn records_deleted(sim: &HelloIdSim, server: &SimServer) {
    for (name, user) in USERS {
        assert!(
            sim.get(user, TEST_APP_GUID, name).is_none(),
            "{name}'s credential set is still in the simulator"
        );
        let deletes = server
            .journal
            .matching(&Method::DELETE, &format!("/api/v1/credentialset/{user}/"))
            .len();
        assert!(deletes >= 1, "no DELETE for {name}'s credential set");
    }
    assert!(sim.is_empty(), "the simulator holds no credential set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_deletes_its_vendor_records_and_finishes() {
    let (env, sim, server) = populated().await;

    let started = Instant::now();
    delete_namespace(&env);
    let took = namespace_gone(&env, started).await;
    eprintln!("namespace {NAMESPACE} gone {took:?} after kubectl delete");
    records_deleted(&sim, &server);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_finishes_across_an_operator_restart() {
    let (mut env, sim, server) = populated().await;

    // Slow vendor: the DELETEs are in flight when the operator dies.
    server.faults.set_latency(Duration::from_secs(3));
    let started = Instant::now();
    delete_namespace(&env);
    wait_deletes_started(&server).await;
    env.kill_operator().await;
    // Meanwhile the namespace controller takes what nothing holds: the resources' own password
    // Secret goes, so the restarted operator deletes without it and builds the connection's
    // client from scratch (its cache died with the process).
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(30);
    while secrets.get_opt("pw").await.ok().flatten().is_some() {
        assert!(
            Instant::now() < deadline,
            "the namespace controller never deleted Secret pw"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.faults.set_latency(Duration::ZERO);
    env.start_operator();
    let took = namespace_gone(&env, started).await;
    eprintln!("namespace {NAMESPACE} gone {took:?} after kubectl delete, operator killed once");
    records_deleted(&sim, &server);
    env.stop().await;
}

/// Wait for the first DELETE to reach the simulator (it is journaled before the latency).
async fn wait_deletes_started(server: &SimServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .journal
        .matching(&Method::DELETE, "/api/v1/credentialset/")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no DELETE was sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether Secret `name` carries the in-use hold.
async fn secret_held(secrets: &Api<Secret>, name: &str) -> bool {
    secrets
        .get_metadata_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.metadata.finalizers)
        .is_some_and(|f| f.iter().any(|f| f == "credsync.io/in-use"))
}

/// A connection in use edited to read another Secret: the new one is held, the old one is let
/// go (else deleting it would hang for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_edited_while_in_use_moves_its_hold() {
    let (env, _sim, server) = populated().await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), NAMESPACE);
    assert!(
        secret_held(&secrets, "api").await,
        "the API key Secret is held"
    );
    assert!(
        !secret_held(&secrets, "pw").await,
        "a resource's own Secret is not"
    );

    env.secret(NAMESPACE, "api-2", &[("key", "k"), ("secret", "s")])
        .await;
    env.apply(
        NAMESPACE,
        &support::helloid_connection("helloid", &server.url(), json!({"name": "api-2"})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while secret_held(&secrets, "api").await || !secret_held(&secrets, "api-2").await {
        assert!(
            Instant::now() < deadline,
            "the hold did not move from Secret api to api-2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.stop().await;
}
