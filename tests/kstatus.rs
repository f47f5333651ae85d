//! GitOps health: sigs.k8s.io/cli-utils' kstatus (what Flux `wait: true` and friends use) reads
//! credsync's conditions as Current when Ready, InProgress while retrying, Failed when Stalled.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use credsync::api::{SsoAppCredential, VendorConnection};
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::helloid::HelloIdSim;
use serde_json::json;
use support::TestEnv;

/// Build hack/kstatus (a few lines of Go over cli-utils) once into the cache.
fn kstatus_binary() -> std::path::PathBuf {
    let out = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into()),
    )
    .join("kstatus-check");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/kstatus"))
        .env("GOFLAGS", "-mod=mod")
        .status()
        .expect("go is required for the kstatus check");
    assert!(status.success(), "building hack/kstatus failed");
    out
}

fn credential(name: &str, connection: &str, secret: &str) -> SsoAppCredential {
    support::object(
        name,
        json!({
            "connectionRef": {"name": connection},
            "userGuid": "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f", "applicationGuid": "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f",
            "credentials": [{"function": "Password", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kstatus_reads_the_conditions() {
    let kstatus = kstatus_binary();
    let ns = "gitops";
    let env = TestEnv::shared(ns).await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret(ns, "pw", &[("password", "p")]).await;
    for (name, url) in [
        ("up", server.url()),
        ("down", "http://127.0.0.1:1".to_string()),
    ] {
        let conn: VendorConnection = support::object(
            name,
            json!({"helloId": {"url": url, "apiKeySecretRef": {"name": "api"}}, "timeoutSeconds": 1}),
        );
        env.apply(ns, &conn).await;
    }
    env.apply(ns, &credential("ready", "up", "pw")).await;
    env.apply(ns, &credential("retrying", "down", "pw")).await;
    env.apply(ns, &credential("stalled", "up", "missing")).await;
    env.wait_reason::<SsoAppCredential>(ns, "ready", "Synced")
        .await;
    env.wait_reason::<SsoAppCredential>(ns, "retrying", "VendorUnreachable")
        .await;
    env.wait_reason::<SsoAppCredential>(ns, "stalled", "SecretNotFound")
        .await;

    let list = env
        .cp
        .kubectl()
        .args(["get", "ssoappcredentials", "-n", ns, "-o", "json"])
        .output()
        .expect("kubectl");
    assert!(list.status.success());
    let mut child = Command::new(&kstatus)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("kstatus");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&list.stdout)
        .expect("write");
    let out = child.wait_with_output().expect("kstatus output");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("kstatus says:\n{text}");
    assert!(out.status.success());
    for expected in ["ready Current", "retrying InProgress", "stalled Failed"] {
        assert!(
            text.lines().any(|l| l == expected),
            "expected {expected:?} in {text}"
        );
    }
    env.stop().await;
}

/// The operator's status write (a replace at the resourceVersion it read) against a real API
/// server: it never lands over a newer object, takes only the status, and reports a gone object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_replace_lands_only_on_the_object_as_read() {
    use credsync::api::SyncStatus;
    use credsync::managed::Managed;
    use credsync::reconcile::status_write::{self, Written};
    use kube::Api;

    let env = TestEnv::shared("status-write").await;
    // No operator serves this namespace: the test is its only writer.
    let ns = "status-write-unserved";
    env.namespace(ns).await;
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), ns);
    let read = env.apply(ns, &credential("stale", "none", "none")).await;
    let status = |obj: &SsoAppCredential| {
        obj.status_with(
            SyncStatus {
                observed_generation: Some(1),
                ..Default::default()
            },
            None,
        )
    };

    // Someone changes the object after the read: the write is refused, nothing lands.
    let newer = support::label(&api, "stale", json!({"team": "a"}))
        .await
        .expect("label");
    let written = status_write::write(&env.client, &read, &status(&read))
        .await
        .expect("an answer");
    assert_eq!(written, Written::ObjectMovedOn);
    let stored = api.get("stale").await.expect("get");
    assert!(
        stored.status.is_none(),
        "nothing written: {:?}",
        stored.status
    );

    // At the version read, only the status changes.
    let written = status_write::write(&env.client, &newer, &status(&newer))
        .await
        .expect("an answer");
    assert_eq!(written, Written::Done);
    let stored = api.get("stale").await.expect("get");
    assert_eq!(
        stored
            .status
            .as_ref()
            .and_then(|s| s.sync.observed_generation),
        Some(1)
    );
    assert_eq!(
        stored.spec, newer.spec,
        "the spec is not the status writer's"
    );
    assert_eq!(stored.metadata.labels, newer.metadata.labels);
    assert!(
        stored
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(
                |f| f.manager.as_deref() == Some(status_write::FIELD_MANAGER)
                    && f.subresource.as_deref() == Some("status")
            ),
        "the status is credsync's in managedFields"
    );

    // Gone: nothing to write to.
    env.delete::<SsoAppCredential>(ns, "stale").await;
    env.wait_gone::<SsoAppCredential>(ns, "stale", std::time::Duration::from_secs(10))
        .await;
    let written = status_write::write(&env.client, &stored, &status(&stored))
        .await
        .expect("an answer");
    assert_eq!(written, Written::ObjectGone);
}
