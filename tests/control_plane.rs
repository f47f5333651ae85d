//! The control-plane harness itself: a real etcd + kube-apiserver starts, the credsync CRDs
//! install, and `kubectl get credsync` (the category every kind is in) works against it.

use std::collections::BTreeMap;

use credsync_testkit::ControlPlane;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

#[tokio::test]
async fn control_plane_serves_the_credsync_crds() {
    let mut cp = ControlPlane::start()
        .await
        .expect("control plane must start (see KUBEBUILDER_ASSETS / hack/build-tools.sh)");
    let version = cp.server_version();
    eprintln!("control plane test against kube-apiserver {version}");
    assert!(version.starts_with("v1."), "server version {version:?}");

    cp.install_crds(&credsync::api::crds())
        .await
        .expect("install CRDs");

    let out = cp
        .kubectl()
        .args(["get", "credsync", "--all-namespaces"])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl get credsync failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // Namespaces with labels, and the default one the harness guarantees.
    let labels = BTreeMap::from([("team".to_string(), "a".to_string())]);
    cp.create_namespace("team-a", labels.clone())
        .await
        .expect("create namespace");
    cp.create_namespace("team-a", labels)
        .await
        .expect("create namespace again (idempotent)");
    let namespaces: Api<Namespace> = Api::all(cp.client());
    let team_a = namespaces.get("team-a").await.expect("get team-a");
    assert_eq!(
        team_a.metadata.labels.unwrap_or_default().get("team"),
        Some(&"a".to_string())
    );
    assert!(
        namespaces
            .get_opt("default")
            .await
            .expect("get default")
            .is_some()
    );

    // Requests are audited.
    let audit = std::fs::read_to_string(cp.audit_log_path()).expect("audit log");
    assert!(
        audit.contains("\"team-a\""),
        "audit log has the namespace create"
    );

    // kube-apiserver restarts on the same port and etcd, with the data kept.
    cp.stop_apiserver().await;
    assert!(namespaces.get("team-a").await.is_err(), "apiserver is down");
    cp.start_apiserver().await.expect("restart kube-apiserver");
    namespaces
        .get("team-a")
        .await
        .expect("team-a survives the restart");
}
