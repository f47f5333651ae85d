//! Status is a promise: `Ready=True, Synced` means the vendor holds what the spec and its
//! Secrets say. A write whose outcome is unknown stops vouching for the vendor's state, and a
//! paused object whose desired state moved on is not Ready.

mod support;

use std::time::Duration;

use credsync::api::{SsoAppCredential, VendorConnection};
use credsync_testkit::sim::helloid::HelloIdSim;
use credsync_testkit::sim::{Fault, SimServer};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::{TEST_APP_GUID, TEST_USER_GUID, TestEnv, WAIT, condition, ready_reason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcomes_and_pauses_never_claim_sync() {
    // A retry long after the failure, so only a change can bring the object back meanwhile.
    let ns = "promises";
    let env = TestEnv::shared_with(ns, |s| {
        s.backoff_base = Duration::from_secs(60);
        s.backoff_max = Duration::from_secs(60);
    })
    .await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret(ns, "pw", &[("password", "v1")]).await;
    let conn: VendorConnection = support::object(
        "helloid",
        json!({"helloId": {"url": server.url(), "apiKeySecretRef": {"name": "api"}}, "timeoutSeconds": 5}),
    );
    env.apply(ns, &conn).await;
    env.apply_sso(ns, "jane", "helloid").await;
    let synced = |o: &SsoAppCredential| ready_reason(o).as_deref() == Some("Synced");
    env.wait_for::<SsoAppCredential>(ns, "jane", WAIT, synced)
        .await;
    let held = || {
        sim.get(TEST_USER_GUID, TEST_APP_GUID, "jane")
            .map(|s| s.credentials[1].value.clone())
    };
    assert_eq!(held().as_deref(), Some("v1"));

    // v2 reaches the vendor, which commits it but answers only after the client gave up: every
    // time it is sent (any other reconcile may send it again at once: its outcome is unknown).
    // The timeout leaves room for a loaded machine: a first write that timed out would wait out
    // the minute of backoff above.
    server
        .faults
        .on_requests_carrying("v2", Fault::CommitThenDelay(Duration::from_secs(8)));
    env.secret(ns, "pw", &[("password", "v2")]).await;
    let timed_out = env
        .wait_reason::<SsoAppCredential>(ns, "jane", "VendorTimeout")
        .await;
    assert_eq!(
        timed_out.status.and_then(|s| s.sync.applied_fingerprint),
        None,
        "an unknown outcome leaves no fingerprint vouching for the vendor's state"
    );
    support::wait_count("the late commit of v2", 1, WAIT, || {
        usize::from(held().as_deref() == Some("v2"))
    })
    .await;

    // Back to v1, the value applied last: it must be sent, the vendor holds v2.
    env.secret(ns, "pw", &[("password", "v1")]).await;
    support::wait_count("v1 sent again", 1, Duration::from_secs(20), || {
        usize::from(held().as_deref() == Some("v1"))
    })
    .await;
    env.wait_for::<SsoAppCredential>(ns, "jane", WAIT, synced)
        .await;

    // Paused and unchanged: still Ready. Paused and changed: not Ready, neither Stalled nor
    // Reconciling, and `kubectl wait` does not return; nothing is sent until unpaused.
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), ns);
    api.patch(
        "jane",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"credsync.io/paused": "true"}}})),
    )
    .await
    .expect("pause");
    env.wait_for::<SsoAppCredential>(ns, "jane", WAIT, |o| {
        o.status.as_ref().is_some_and(|s| {
            condition(&s.sync.conditions, "Ready")
                .is_some_and(|c| c.reason == "Paused" && c.status == "True")
        })
    })
    .await;
    let writes = server.journal.len();
    env.secret(ns, "pw", &[("password", "v3")]).await;
    let paused = env
        .wait_for::<SsoAppCredential>(ns, "jane", WAIT, |o| {
            o.status.as_ref().is_some_and(|s| {
                condition(&s.sync.conditions, "Ready")
                    .is_some_and(|c| c.reason == "Paused" && c.status == "False")
            })
        })
        .await;
    let conditions = paused.status.expect("status").sync.conditions;
    assert!(
        condition(&conditions, "Stalled").is_none(),
        "{conditions:?}"
    );
    assert!(
        condition(&conditions, "Reconciling").is_none(),
        "{conditions:?}"
    );
    let waited = env
        .cp
        .kubectl()
        .args([
            "wait",
            "--for=condition=Ready",
            "ssoappcredential/jane",
            "-n",
            ns,
            "--timeout=3s",
        ])
        .output()
        .expect("kubectl");
    assert!(
        !waited.status.success(),
        "kubectl wait must not return Ready"
    );
    assert_eq!(server.journal.len(), writes, "nothing sent while paused");
    assert_eq!(held().as_deref(), Some("v1"));
    api.patch(
        "jane",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"credsync.io/paused": null}}})),
    )
    .await
    .expect("unpause");
    env.wait_for::<SsoAppCredential>(ns, "jane", WAIT, synced)
        .await;
    assert_eq!(held().as_deref(), Some("v3"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_request_is_handled_once_per_value() {
    let ns = "sync-now";
    let mut env = TestEnv::shared(ns).await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(ns, "pw", &[("password", "p")]).await;
    env.helloid_tenant(ns, &server.url(), "k", "s").await;
    env.apply_sso(ns, "jane", "helloid").await;
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), ns);
    let writes = || server.journal.len();
    support::wait_count("the first write", 1, WAIT, writes).await;
    let request = |value: Option<&str>| {
        let api = api.clone();
        let patch =
            json!({"metadata": {"annotations": {"credsync.io/reconcile-requested-at": value}}});
        async move {
            api.patch("jane", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .expect("annotate");
        }
    };
    let quiet = || tokio::time::sleep(Duration::from_secs(3));

    request(Some("a")).await;
    support::wait_count("the requested write", 2, WAIT, writes).await;
    env.wait_for::<SsoAppCredential>(ns, "jane", WAIT, |o| {
        o.status
            .as_ref()
            .and_then(|s| s.sync.last_handled_reconcile_at.as_deref())
            == Some("a")
    })
    .await;
    // Removing it, or setting the same value again, asks for nothing; nor does a restart.
    request(None).await;
    quiet().await;
    request(Some("a")).await;
    quiet().await;
    env.stop_operator().await;
    env.start_operator();
    quiet().await;
    assert_eq!(writes(), 2, "a value is handled once");
    // A new value is a new request, also after a restart.
    request(Some("b")).await;
    support::wait_count("the second requested write", 3, WAIT, writes).await;
    request(None).await;
    env.stop_operator().await;
    env.start_operator();
    quiet().await;
    assert_eq!(writes(), 3);
    env.stop().await;
}
