//! Scale beyond one operator: shard by namespace (--watch-namespace) or by label selector
//! (--selector); each operator serves only its shard.

mod support;

use std::time::Duration;

use credsync::api::{SsoAppCredential, VendorConnection};
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::helloid::HelloIdSim;
use kube::Api;
use serde_json::json;
use support::{TestEnv, condition};

fn credential(name: &str, labels: serde_json::Value) -> SsoAppCredential {
    let mut credential: SsoAppCredential = support::object(
        name,
        json!({"connectionRef": {"name": "helloid"},
                 "userGuid": "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f", "applicationGuid": "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f",
                 "credSetName": name,
                 "credentials": [{"function": "UserName", "value": name}]}),
    );
    credential.metadata.labels = serde_json::from_value(labels).expect("labels");
    credential
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_serve_only_their_shard() {
    // A control plane of its own: its operators serve shards of every namespace.
    let mut env = TestEnv::dedicated_bare().await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    for ns in ["shard-a", "other"] {
        env.namespace(ns).await;
        env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
            .await;
        let conn: VendorConnection = support::object(
            "helloid",
            json!({"helloId": {"url": server.url(), "apiKeySecretRef": {"name": "api"}}}),
        );
        env.apply(ns, &conn).await;
    }
    env.settings.watch_namespace = Some("shard-a".into());
    let (stop_a, task_a) = env.spawn_operator(None);
    env.settings.watch_namespace = None;
    env.settings.label_selector = Some("shard=b".into());
    let (stop_b, task_b) = env.spawn_operator(None);

    env.apply("shard-a", &credential("in-a", json!({}))).await;
    env.apply("other", &credential("labelled-b", json!({"shard": "b"})))
        .await;
    env.apply("other", &credential("nobody", json!({}))).await;
    let ready = |o: &SsoAppCredential| {
        o.status
            .as_ref()
            .and_then(|s| condition(&s.sync.conditions, "Ready"))
            .is_some_and(|c| c.status == "True")
    };
    env.wait_for::<SsoAppCredential>("shard-a", "in-a", Duration::from_secs(30), ready)
        .await;
    env.wait_for::<SsoAppCredential>("other", "labelled-b", Duration::from_secs(30), ready)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let nobody = Api::<SsoAppCredential>::namespaced(env.client.clone(), "other")
        .get("nobody")
        .await
        .expect("get");
    assert!(
        nobody.status.is_none(),
        "no shard serves an unlabelled resource outside shard-a"
    );
    assert!(
        sim.get(
            "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f",
            "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f",
            "nobody"
        )
        .is_none()
    );
    assert_eq!(
        server.journal.len(),
        2,
        "each served resource written once, by one operator"
    );
    stop_a.cancel();
    stop_b.cancel();
    let _ = tokio::join!(task_a, task_b);
}
