//! The Helm chart: lint, render, install into a real API server; and its RBAC is exactly what the
//! operator uses: the operator runs impersonating the chart's ServiceAccount, everything works,
//! nothing is forbidden, and every rule the chart grants is exercised.
#![cfg(feature = "dev")]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use credsync::api::{ClusterVendorConnection, SsoAppCredential, VendorConnection};
use credsync::leader::LeaderElection;
use credsync::sim::SimServer;
use credsync::sim::helloid::HelloIdSim;
use kube::{Api, Client};
use serde_json::json;
use support::{OPERATOR_NAMESPACE, TestEnv, condition};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/credsync");
const SERVICE_ACCOUNT: &str = "system:serviceaccount:credsync-system:credsync";

fn helm() -> PathBuf {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/build-tools.sh"))
        .arg("helm")
        .output()
        .expect("hack/build-tools.sh helm");
    assert!(out.status.success(), "building helm failed");
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    )
    .join("helm")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ready(o: &SsoAppCredential) -> bool {
    o.status
        .as_ref()
        .and_then(|s| condition(&s.sync.conditions, "Ready"))
        .is_some_and(|c| c.status == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_installs_and_grants_exactly_what_the_operator_uses() {
    let helm = helm();
    run(Command::new(&helm).args(["lint", "--strict", "--kube-version", "1.36.3", CHART]));
    for values in [
        &["--set", "replicaCount=1"][..],
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
        ][..],
    ] {
        let rendered = run(Command::new(&helm)
            .args([
                "template",
                "credsync",
                CHART,
                "-n",
                OPERATOR_NAMESPACE,
                "--kube-version",
                "1.36.3",
            ])
            .args(values));
        assert!(rendered.contains("kind: Deployment"));
    }
    let crds = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/credsync.yaml"))
        .expect("crds");
    let chart_crds =
        std::fs::read_to_string(format!("{CHART}/crds/credsync.yaml")).expect("chart crds");
    assert_eq!(crds, chart_crds, "the chart's CRDs are the generated ones");

    let env = TestEnv::start_bare().await;
    let kubeconfig = env.cp.kubeconfig_path().to_path_buf();
    // Every object the chart renders is accepted by the real API server (ServiceMonitor aside:
    // its CRD belongs to prometheus-operator).
    let rendered = run(Command::new(&helm).args([
        "template",
        "credsync",
        CHART,
        "-n",
        OPERATOR_NAMESPACE,
        "--kube-version",
        "1.36.3",
        "--set",
        "networkPolicy.enabled=true",
    ]));
    let dry = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(dry.path(), &rendered).expect("write");
    run(env
        .cp
        .kubectl()
        .args(["apply", "--dry-run=server", "-n", OPERATOR_NAMESPACE, "-f"])
        .arg(dry.path()));
    run(Command::new(&helm)
        .args([
            "install",
            "credsync",
            CHART,
            "-n",
            OPERATOR_NAMESPACE,
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .args(["--set", "replicaCount=2", "--wait=false"]));
    let deployments = run(env.cp.kubectl().args([
        "get",
        "deployment,serviceaccount,clusterrole,role,poddisruptionbudget",
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "name",
    ]));
    for expected in [
        "deployment.apps/credsync",
        "serviceaccount/credsync",
        "clusterrole.rbac.authorization.k8s.io/credsync",
        "poddisruptionbudget.policy/credsync",
    ] {
        assert!(
            deployments.contains(expected),
            "{expected} in {deployments}"
        );
    }

    // The operator, as the chart's ServiceAccount, under leader election as the chart runs it.
    let mut config = env.cp.config().clone();
    config.auth_info.impersonate = Some(SERVICE_ACCOUNT.into());
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        "system:authenticated".into(),
    ]);
    let as_operator = Client::try_from(config).expect("impersonating client");
    let election = LeaderElection {
        lease_name: "credsync-leader".into(),
        namespace: OPERATOR_NAMESPACE.into(),
        identity: "chart-test".into(),
        lease_seconds: 15,
        renew_grace_seconds: 5,
    };
    let (stop, task) = env.spawn_operator_as(as_operator, Some(election));

    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.namespace_with_labels("team", [("team".to_string(), "blue".to_string())].into())
        .await;
    env.secret("team", "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret("team", "pw", &[("password", "p")]).await;
    env.secret(
        OPERATOR_NAMESPACE,
        "shared-api",
        &[("key", "k"), ("secret", "s")],
    )
    .await;
    let conn: VendorConnection = serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "VendorConnection", "metadata": {"name": "helloid"},
        "spec": {"helloId": {"url": server.url(), "apiKeySecretRef": {"name": "api"}}}
    }))
    .expect("connection");
    env.apply("team", &conn).await;
    let shared: ClusterVendorConnection = serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "ClusterVendorConnection", "metadata": {"name": "shared"},
        "spec": {"helloId": {"url": server.url(), "apiKeySecretRef": {"name": "shared-api", "namespace": OPERATOR_NAMESPACE}},
                 "allowedNamespaces": {"namespaceSelector": {"matchLabels": {"team": "blue"}}}}
    }))
    .expect("cluster connection");
    env.apply_in(
        &Api::<ClusterVendorConnection>::all(env.client.clone()),
        "shared",
        &shared,
    )
    .await;
    for (name, kind, connection) in [
        ("direct", "VendorConnection", "helloid"),
        ("via-cluster", "ClusterVendorConnection", "shared"),
    ] {
        let cred: SsoAppCredential = serde_json::from_value(json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "SsoAppCredential", "metadata": {"name": name},
            "spec": {"connectionRef": {"kind": kind, "name": connection},
                     "userGuid": "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f", "applicationGuid": "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f",
                     "credSetName": name,
                     "credentials": [{"function": "Password", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}],
                     "deletionPolicy": "Delete"}
        }))
        .expect("credential");
        env.apply("team", &cred).await;
    }
    for name in ["direct", "via-cluster"] {
        env.wait_for::<SsoAppCredential>("team", name, Duration::from_secs(60), ready)
            .await;
    }
    // The other kinds: status is written for them too (here: their connection is missing), and a
    // CrmUserCredential that still holds our finalizer with policy Orphan is let go on deletion.
    let erp: credsync::api::ErpIdentity = serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "ErpIdentity", "metadata": {"name": "erp"},
        "spec": {"connectionRef": {"name": "absent"}, "identityType": "User", "name": "jdoe"}
    }))
    .expect("erp identity");
    env.apply("team", &erp).await;
    let crm: credsync::api::CrmUserCredential = serde_json::from_value(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "CrmUserCredential",
        "metadata": {"name": "crm", "finalizers": ["credsync.io/cleanup"]},
        "spec": {"connectionRef": {"name": "absent"}, "deletionPolicy": "Orphan",
                 "superOffice": {"type": "imap", "publicValue": "u", "secretValueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}
    }))
    .expect("crm credential");
    env.apply("team", &crm).await;
    let stalled =
        |conds: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>| {
            conds
                .and_then(|c| condition(c, "Stalled"))
                .is_some_and(|c| c.status == "True")
        };
    env.wait_for::<credsync::api::ErpIdentity>("team", "erp", Duration::from_secs(30), |o| {
        stalled(o.status.as_ref().map(|s| &s.sync.conditions))
    })
    .await;
    env.wait_for::<credsync::api::CrmUserCredential>("team", "crm", Duration::from_secs(30), |o| {
        stalled(o.status.as_ref().map(|s| &s.sync.conditions))
    })
    .await;
    env.delete::<credsync::api::CrmUserCredential>("team", "crm")
        .await;
    env.wait_gone::<credsync::api::CrmUserCredential>("team", "crm", Duration::from_secs(30))
        .await;

    env.secret("team", "pw", &[("password", "rotated")]).await;
    support::wait_count("rotated writes", 4, Duration::from_secs(30), || {
        server.journal.len()
    })
    .await;
    env.delete::<SsoAppCredential>("team", "direct").await;
    env.wait_gone::<SsoAppCredential>("team", "direct", Duration::from_secs(30))
        .await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;

    // What the ServiceAccount did, per the API server's audit log.
    let audit = std::fs::read_to_string(env.cp.audit_log_path()).expect("audit log");
    let mut used = BTreeSet::new();
    let mut forbidden = Vec::new();
    for line in audit.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["impersonatedUser"]["username"] != SERVICE_ACCOUNT
            || event["stage"] != "ResponseComplete"
        {
            continue;
        }
        let object = &event["objectRef"];
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", object["resource"].as_str().unwrap_or_default()),
            None => object["resource"].as_str().unwrap_or_default().to_string(),
        };
        let entry = (
            object["apiGroup"].as_str().unwrap_or_default().to_string(),
            resource,
            event["verb"].as_str().unwrap_or_default().to_string(),
        );
        if event["responseStatus"]["code"] == 403 {
            forbidden.push(entry.clone());
        }
        used.insert(entry);
    }
    assert!(
        forbidden.is_empty(),
        "the chart's RBAC refused the operator: {forbidden:#?}"
    );

    // Every rule the chart grants was needed.
    let rbac: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&rendered)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|d: &serde_yaml::Value| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
        .collect();
    let mut unused = Vec::new();
    for role in &rbac {
        for rule in role["rules"].as_sequence().into_iter().flatten() {
            for group in rule["apiGroups"].as_sequence().into_iter().flatten() {
                for resource in rule["resources"].as_sequence().into_iter().flatten() {
                    for verb in rule["verbs"].as_sequence().into_iter().flatten() {
                        let key = (
                            group.as_str().unwrap_or_default().to_string(),
                            resource.as_str().unwrap_or_default().to_string(),
                            verb.as_str().unwrap_or_default().to_string(),
                        );
                        if !used.contains(&key) {
                            unused.push(key);
                        }
                    }
                }
            }
        }
    }
    eprintln!("the chart's ServiceAccount used: {used:#?}");
    assert!(
        unused.is_empty(),
        "the chart grants rules the operator never used: {unused:#?}"
    );
}

/// The chart's schema refuses bad values; the dashboard ships as a ConfigMap and queries only
/// metric families the operator exports; the image runs as non-root from distroless.
#[test]
fn chart_schema_dashboard_and_image() {
    let helm = helm();
    let template = |values: &[&str]| {
        Command::new(&helm)
            .args(["template", "credsync", CHART, "--kube-version", "1.36.3"])
            .args(values)
            .output()
            .expect("helm template")
    };
    for bad in [
        "logFormat=xml",
        "replicaCount=0",
        "concurrency=0",
        "driftInterval=hourly",
        "metrics.port=70000",
        "unknownValue=1",
    ] {
        let out = template(&["--set", bad]);
        assert!(
            !out.status.success(),
            "--set {bad} must be refused by values.schema.json"
        );
    }
    for bad in ["logFormat=xml", "replicaCount=0"] {
        let out = Command::new(&helm)
            .args([
                "lint",
                "--strict",
                "--kube-version",
                "1.36.3",
                CHART,
                "--set",
                bad,
            ])
            .output()
            .expect("helm lint");
        assert!(
            !out.status.success(),
            "helm lint --set {bad} must fail on values.schema.json"
        );
    }

    let rendered = template(&["--set", "grafanaDashboard.enabled=true"]);
    assert!(rendered.status.success());
    let docs: Vec<serde_json::Value> =
        serde_yaml::Deserializer::from_str(&String::from_utf8_lossy(&rendered.stdout))
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .collect();
    let dashboard = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .and_then(|d| d["data"]["credsync.json"].as_str())
        .expect("the dashboard ConfigMap, labelled for Grafana's sidecar");
    let dashboard: serde_json::Value = serde_json::from_str(dashboard).expect("dashboard JSON");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("template variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        variables.contains(&"datasource") && variables.contains(&"kind"),
        "{variables:?}"
    );
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    credsync::metrics::touch_all();
    let exported = credsync::metrics::encode();
    let mut families = BTreeSet::new();
    for expr in &exprs {
        for (start, _) in expr.match_indices("credsync_") {
            let name: String = expr[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_total")
                .to_string();
            families.insert(family);
        }
    }
    for family in [
        "credsync_reconciles",
        "credsync_reconcile_duration_seconds",
        "credsync_reconciles_in_flight",
        "credsync_resources",
        "credsync_vendor_requests",
        "credsync_vendor_request_duration_seconds",
    ] {
        assert!(families.contains(family), "dashboard lacks {family}");
    }
    for family in &families {
        assert!(
            exported.contains(&format!("# TYPE {family} ")),
            "the dashboard queries {family}, which the operator does not export"
        );
    }

    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, last)| last)
        .expect("a multi-stage Dockerfile");
    assert!(runtime.starts_with("gcr.io/distroless/"), "{runtime}");
    assert!(runtime.contains("\nUSER 65532:65532"), "{runtime}");
    assert!(
        dockerfile.contains("--locked --bin credsync"),
        "{dockerfile}"
    );
    assert!(
        !dockerfile.contains("--features") && !dockerfile.contains("--all-features"),
        "the image is built without the dev feature"
    );
}
