//! `credsync_resources` counts resources by state from the operator's cache: ready, progressing
//! (the backlog: the queue depth), stalled. Its own test binary: the metrics are process-wide.

mod support;

use std::time::Duration;

use credsync_testkit::sim::helloid::HelloIdSim;
use credsync_testkit::sim::{Fault, SimServer};
use serde_json::json;
use support::{TestEnv, helloid_connection, sso_credential};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_counted_by_state() {
    let ns = "census";
    // The binary's only test: the counts are of every operator in the process.
    let env = TestEnv::shared(ns).await;
    let up = SimServer::start(HelloIdSim::new("k", "s").router(), 0)
        .await
        .expect("simulator");
    let down = SimServer::start(HelloIdSim::new("k", "s").router(), 0)
        .await
        .expect("simulator");
    down.faults.push(Fault::ServerError, 10_000);
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret(ns, "pw", &[("password", "p4ss")]).await;
    env.apply(
        ns,
        &helloid_connection("up", &up.url(), json!({"name": "api"})),
    )
    .await;
    env.apply(
        ns,
        &helloid_connection("down", &down.url(), json!({"name": "api"})),
    )
    .await;
    env.apply_sso(ns, "ready", "up").await;
    env.apply_sso(ns, "retrying", "down").await;
    env.apply(
        ns,
        &sso_credential("stalled", "VendorConnection", "up", "missing", "password"),
    )
    .await;

    let expected = [
        "credsync_resources{kind=\"SsoAppCredential\",state=\"ready\"} 1",
        "credsync_resources{kind=\"SsoAppCredential\",state=\"progressing\"} 1",
        "credsync_resources{kind=\"SsoAppCredential\",state=\"stalled\"} 1",
        "credsync_resources{kind=\"ErpIdentity\",state=\"ready\"} 0",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = credsync::metrics::encode();
        if expected.iter().all(|e| text.lines().any(|l| l == *e)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {expected:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
