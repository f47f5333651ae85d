//! Every file in examples/ applies to a real API server and every object in it becomes Ready
//! against the simulators (on the demo ports the examples point at).

mod support;

use std::time::Duration;

use credsync_testkit::sim::{self, DemoPorts};
use support::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_apply_and_become_ready() {
    // A control plane of its own: the examples hold ClusterVendorConnections and span
    // namespaces, served by an operator over all of them.
    let env = TestEnv::dedicated().await;
    let _sims = sim::start_demo(DemoPorts::default())
        .await
        .expect("simulators on the demo ports");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let out = env
        .cp
        .kubectl()
        .args(["apply", "-f", examples])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl apply -f examples/: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let kinds = [
        "vendorconnections",
        "clustervendorconnections",
        "crmusercredentials",
        "erpidentities",
        "ssoappcredentials",
    ];
    let mut waited = 0;
    for kind in kinds {
        let names = env
            .cp
            .kubectl()
            .args(["get", kind, "-A", "-o", "name"])
            .output()
            .expect("kubectl get");
        if String::from_utf8_lossy(&names.stdout).trim().is_empty() {
            continue;
        }
        let wait = env
            .cp
            .kubectl()
            .args([
                "wait",
                "--for=condition=Ready",
                "--timeout=60s",
                "-A",
                "--all",
                kind,
            ])
            .output()
            .expect("kubectl wait");
        let describe = env
            .cp
            .kubectl()
            .args(["get", kind, "-A", "-o", "yaml"])
            .output()
            .expect("kubectl");
        assert!(
            wait.status.success(),
            "kubectl wait {kind}: {}\n{}",
            String::from_utf8_lossy(&wait.stderr),
            String::from_utf8_lossy(&describe.stdout)
        );
        waited += String::from_utf8_lossy(&wait.stdout).lines().count();
    }
    assert!(
        waited >= 2,
        "examples hold at least a connection and a resource"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.stop().await;
}
