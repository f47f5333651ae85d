//! Status is a promise: `Ready=True, Synced` means the vendor holds what the spec and its
//! Secrets say. A write whose outcome is unknown stops vouching for the vendor's state, and a
//! paused object whose desired state moved on is not Ready.
#![cfg(feature = "dev")]

mod support;

use std::time::Duration;

use credsync::api::{SsoAppCredential, VendorConnection};
use credsync::sim::helloid::HelloIdSim;
use credsync::sim::{Fault, SimServer};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::{TEST_APP_GUID, TEST_USER_GUID, TestEnv, condition, ready_reason, sso_credential};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcomes_and_pauses_never_claim_sync() {
    // A retry long after the failure, so only a change can bring the object back meanwhile.
    let env = TestEnv::start_with(|s| {
        s.backoff_base = Duration::from_secs(60);
        s.backoff_max = Duration::from_secs(60);
    })
    .await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    let ns = "promises";
    env.namespace(ns).await;
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret(ns, "pw", &[("password", "v1")]).await;
    let conn: VendorConnection = serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "VendorConnection", "metadata": {"name": "helloid"},
        "spec": {"helloId": {"url": server.url(), "apiKeySecretRef": {"name": "api"}}, "timeoutSeconds": 1}
    }))
    .expect("connection");
    env.apply(ns, &conn).await;
    env.apply(
        ns,
        &sso_credential("jane", "VendorConnection", "helloid", "pw", "password"),
    )
    .await;
    let synced = |o: &SsoAppCredential| ready_reason(o).as_deref() == Some("Synced");
    env.wait_for::<SsoAppCredential>(ns, "jane", WAIT, synced)
        .await;
    let held = || {
        sim.get(TEST_USER_GUID, TEST_APP_GUID, "jane")
            .map(|s| s.credentials[1].value.clone())
    };
    assert_eq!(held().as_deref(), Some("v1"));

    // v2 reaches the vendor, which commits it but answers only after the client gave up.
    server
        .faults
        .push(Fault::CommitThenDelay(Duration::from_secs(2)), 1);
    env.secret(ns, "pw", &[("password", "v2")]).await;
    let timed_out = env
        .wait_for::<SsoAppCredential>(ns, "jane", WAIT, |o| {
            ready_reason(o).as_deref() == Some("VendorTimeout")
        })
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
