//! The Helm chart: lint, render, install into a real API server; and its RBAC is exactly what the
//! operator uses: the operator runs impersonating the chart's ServiceAccount, everything works,
//! nothing is forbidden, and every rule the chart grants is exercised.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use credsync::api::{ClusterVendorConnection, SsoAppCredential, VendorConnection};
use credsync::leader::LeaderElection;
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::helloid::HelloIdSim;
use kube::Api;
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

/// The Kubernetes version the chart is rendered and linted for: the test control plane's.
const KUBE_VERSION: &str = "1.36.3";

/// `helm template` of the chart as release `credsync` in the operator namespace, with `values`.
fn template_command(helm: &Path, values: &[&str]) -> Command {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "credsync", CHART, "-n", OPERATOR_NAMESPACE])
        .args(["--kube-version", KUBE_VERSION])
        .args(values);
    cmd
}

/// `--set` for each of `values`.
fn set<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values.iter().flat_map(|v| ["--set", v]).collect()
}

/// The chart rendered with `values` (which must render).
fn template(helm: &Path, values: &[&str]) -> String {
    run(&mut template_command(helm, values))
}

/// `helm lint --strict` of the chart with `values`.
fn lint_command(helm: &Path, values: &[&str]) -> Command {
    let mut cmd = Command::new(helm);
    cmd.args(["lint", "--strict", "--kube-version", KUBE_VERSION, CHART])
        .args(values);
    cmd
}

/// Server-side dry run of the `rendered` manifests: the API server accepts every object.
fn accepted_by_the_api_server(env: &TestEnv, rendered: &str) {
    let dry = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(dry.path(), rendered).expect("write");
    run(env
        .cp
        .kubectl()
        .args(["apply", "--dry-run=server", "-n", OPERATOR_NAMESPACE, "-f"])
        .arg(dry.path()));
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
    run(&mut lint_command(&helm, &[]));
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
        let rendered = template(&helm, values);
        assert!(rendered.contains("kind: Deployment"));
    }
    let crds = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/credsync.yaml"))
        .expect("crds");
    let chart_crds =
        std::fs::read_to_string(format!("{CHART}/crds/credsync.yaml")).expect("chart crds");
    assert_eq!(crds, chart_crds, "the chart's CRDs are the generated ones");

    // A control plane of its own: it reads the audit log, and the chart installs cluster-wide
    // RBAC and a ClusterVendorConnection.
    let env = TestEnv::dedicated_bare().await;
    let kubeconfig = env.cp.kubeconfig_path().to_path_buf();
    // Every object the chart renders is accepted by the real API server (ServiceMonitor aside:
    // its CRD belongs to prometheus-operator).
    let rendered = template(&helm, &["--set", "networkPolicy.enabled=true"]);
    accepted_by_the_api_server(&env, &rendered);
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
    let as_operator = env.impersonating(
        SERVICE_ACCOUNT,
        &["system:serviceaccounts", "system:authenticated"],
    );
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
    let conn: VendorConnection = support::object(
        "helloid",
        json!({"helloId": {"url": server.url(), "apiKeySecretRef": {"name": "api"}}}),
    );
    env.apply("team", &conn).await;
    let shared: ClusterVendorConnection = support::object(
        "shared",
        json!({"helloId": {"url": server.url(), "apiKeySecretRef": {"name": "shared-api", "namespace": OPERATOR_NAMESPACE}},
                 "allowedNamespaces": {"namespaceSelector": {"matchLabels": {"team": "blue"}}}}),
    );
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
        let cred: SsoAppCredential = support::object(
            name,
            json!({"connectionRef": {"kind": kind, "name": connection},
                     "userGuid": "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f", "applicationGuid": "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f",
                     "credSetName": name,
                     "credentials": [{"function": "Password", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}],
                     "deletionPolicy": "Delete"}),
        );
        env.apply("team", &cred).await;
    }
    for name in ["direct", "via-cluster"] {
        env.wait_for::<SsoAppCredential>("team", name, Duration::from_secs(60), ready)
            .await;
    }
    // The other kinds: status is written for them too (here: their connection is missing), and a
    // CrmUserCredential that still holds our finalizer with policy Orphan is let go on deletion.
    let erp: credsync::api::ErpIdentity = support::object(
        "erp",
        json!({"connectionRef": {"name": "absent"}, "identityType": "User", "name": "jdoe"}),
    );
    env.apply("team", &erp).await;
    let mut crm: credsync::api::CrmUserCredential = support::object(
        "crm",
        json!({"connectionRef": {"name": "absent"}, "deletionPolicy": "Orphan",
                 "superOffice": {"type": "imap", "publicValue": "u", "secretValueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}),
    );
    crm.metadata.finalizers = Some(vec!["credsync.io/cleanup".into()]);
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
        // A watch is logged as ResponseStarted when it begins and ResponseComplete only when
        // it ends, which may come after this read: either stage records the request.
        if event["impersonatedUser"]["username"] != SERVICE_ACCOUNT
            || !matches!(
                event["stage"].as_str(),
                Some("ResponseComplete" | "ResponseStarted")
            )
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
    let rendering = |values: &[&str]| {
        template_command(&helm, values)
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
        "webhook.enabled=yes",
        "webhook.port=0",
        "webhook.timeoutSeconds=31",
        "webhook.certManager.issuerRef.kind=Secret",
        "webhook.unknown=1",
    ] {
        let out = rendering(&["--set", bad]);
        assert!(
            !out.status.success(),
            "--set {bad} must be refused by values.schema.json"
        );
    }
    for bad in ["logFormat=xml", "replicaCount=0"] {
        let out = lint_command(&helm, &["--set", bad])
            .output()
            .expect("helm lint");
        assert!(
            !out.status.success(),
            "helm lint --set {bad} must fail on values.schema.json"
        );
    }

    let rendered = rendering(&["--set", "grafanaDashboard.enabled=true"]);
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
        "the image builds the operator crate as it is, no extra features"
    );
}

fn rendered_docs(text: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|d: &serde_json::Value| d.is_object())
        .collect()
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the chart renders {kind} {name}"))
}

/// The chart with webhook.enabled: its certificate loads in the operator, cert-manager is wired
/// when asked for, every object is accepted by the API server, and its ValidatingWebhookConfiguration
/// and RBAC, pointed at the webhook served in-process as the chart's ServiceAccount, refuse a
/// reference to a Secret the user cannot read, never hold up the operator's own writes or
/// metadata-only changes, and refuse (failurePolicy Fail) while the webhook is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_webhook_refuses_unreadable_secret_references() {
    use base64::Engine;
    use credsync::webhook;
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use kube::api::{Patch, PatchParams, PostParams};
    let b64 = base64::engine::general_purpose::STANDARD;
    let helm = helm();
    for values in [
        "webhook.enabled=true",
        "webhook.enabled=true,webhook.certManager.enabled=true,watchNamespace=team",
    ] {
        run(&mut lint_command(&helm, &["--set", values]));
    }
    let off = template(&helm, &[]);
    assert!(
        !off.contains("ValidatingWebhookConfiguration") && !off.contains("--webhook-addr"),
        "the webhook is off by default"
    );

    // cert-manager: a Certificate from a self-signed Issuer (or the one named), CA injected.
    let cert_manager = ["webhook.enabled=true", "webhook.certManager.enabled=true"];
    let cm = rendered_docs(&template(
        &helm,
        &set(&[&cert_manager[..], &["watchNamespace=team"]].concat()),
    ));
    let vwc = find(&cm, "ValidatingWebhookConfiguration", "credsync");
    assert_eq!(
        vwc["webhooks"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "team",
        "with watchNamespace, only that namespace's resources are sent"
    );
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "credsync-system/credsync-webhook"
    );
    assert!(vwc["webhooks"][0]["clientConfig"]["caBundle"].is_null());
    let cert = find(&cm, "Certificate", "credsync-webhook");
    assert_eq!(cert["spec"]["secretName"], "credsync-webhook-tls");
    assert_eq!(
        cert["spec"]["dnsNames"][0],
        "credsync-webhook.credsync-system.svc"
    );
    find(&cm, "Issuer", "credsync-webhook");
    assert!(!cm.iter().any(|d| d["kind"] == "Secret"));
    let named = rendered_docs(&template(
        &helm,
        &set(&[
            &cert_manager[..],
            &[
                "webhook.certManager.issuerRef.name=corp-ca",
                "webhook.certManager.issuerRef.kind=ClusterIssuer",
            ],
        ]
        .concat()),
    ));
    assert!(!named.iter().any(|d| d["kind"] == "Issuer"));
    assert_eq!(
        find(&named, "Certificate", "credsync-webhook")["spec"]["issuerRef"]["kind"],
        "ClusterIssuer"
    );

    // Helm's own certificate: the operator loads it, and the caBundle is its CA.
    let rendered = template(
        &helm,
        &[
            "--set",
            "webhook.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
        ],
    );
    let docs = rendered_docs(&rendered);
    let secret = find(&docs, "Secret", "credsync-webhook-tls");
    let field = |k: &str| {
        b64.decode(secret["data"][k].as_str().expect("base64 field"))
            .expect("base64")
    };
    credsync::serving_cert::tls_config(&field("tls.crt"), &field("tls.key"))
        .expect("the operator loads the chart's certificate");
    let vwc = find(&docs, "ValidatingWebhookConfiguration", "credsync");
    let hook = &vwc["webhooks"][0];
    assert_eq!(hook["name"], webhook::WEBHOOK_NAME);
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(hook["clientConfig"]["caBundle"], secret["data"]["ca.crt"]);
    assert_eq!(hook["clientConfig"]["service"]["path"], webhook::PATH);
    let deployment = find(&docs, "Deployment", "credsync");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--webhook-addr=0.0.0.0:9443"), "{args:?}");
    assert!(
        args.contains(&"--webhook-cert-dir=/etc/credsync/webhook-tls"),
        "{args:?}"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "credsync-webhook-tls"
    );
    let policy = find(&docs, "NetworkPolicy", "credsync");
    assert_eq!(policy["spec"]["ingress"][1]["ports"][0]["port"], "webhook");
    // The flags the chart passes are the operator's.
    let cli = <credsync::cli::Cli as clap::Parser>::try_parse_from(
        std::iter::once("credsync").chain(args.iter().copied()),
    )
    .expect("the chart's arguments parse");
    let credsync::cli::Command::Run(run_args) = cli.command else {
        panic!("run")
    };
    assert_eq!(run_args.webhook_addr.map(|a| a.port()), Some(9443));

    // A control plane of its own: the chart registers a cluster-wide admission webhook.
    let env = TestEnv::dedicated_bare().await;
    accepted_by_the_api_server(&env, &rendered);
    // The chart's RBAC, for real: the webhook's SubjectAccessReviews and the operator's writes.
    let rbac: Vec<&serde_json::Value> = docs
        .iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding")
            )
        })
        .collect();
    let rbac_file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(
        rbac_file.path(),
        serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": rbac}))
            .expect("json"),
    )
    .expect("write");
    run(env
        .cp
        .kubectl()
        .args(["apply", "-n", OPERATOR_NAMESPACE, "-f"])
        .arg(rbac_file.path()));

    let as_operator = env.impersonating(
        SERVICE_ACCOUNT,
        &["system:serviceaccounts", "system:authenticated"],
    );

    // The webhook in-process on loopback (its own certificate for 127.0.0.1), as the chart's
    // ServiceAccount; the chart's configuration, pointed at it.
    let serving = support::loopback_certificate();
    let tls =
        credsync::serving_cert::tls_config(serving.cert_pem.as_bytes(), serving.key_pem.as_bytes())
            .expect("tls");
    let served = support::serve_webhook(tls, as_operator.clone()).await;
    let (port, stop, serving_task) = (served.port, served.stop, served.task);
    let mut vwc = vwc.clone();
    vwc["webhooks"][0]["clientConfig"] = json!({
        "url": format!("https://127.0.0.1:{port}{}", webhook::PATH),
        "caBundle": b64.encode(&serving.ca_pem),
    });
    Api::<ValidatingWebhookConfiguration>::all(env.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(vwc).expect("configuration"),
        )
        .await
        .expect("the chart's ValidatingWebhookConfiguration");

    env.namespace("team").await;
    for name in ["readable", "forbidden"] {
        env.secret("team", name, &[("password", "p")]).await;
    }
    run(env.cp.kubectl().args([
        "create",
        "role",
        "alice",
        "-n",
        "team",
        "--verb=get,create,update,patch",
        "--resource=ssoappcredentials.credsync.io",
    ]));
    run(env.cp.kubectl().args([
        "create",
        "role",
        "alice-secret",
        "-n",
        "team",
        "--verb=get",
        "--resource=secrets",
        "--resource-name=readable",
    ]));
    for role in ["alice", "alice-secret"] {
        run(env.cp.kubectl().args([
            "create",
            "rolebinding",
            role,
            "-n",
            "team",
            &format!("--role={role}"),
            "--user=alice",
        ]));
    }
    let alice = env.impersonating("alice", &["system:authenticated"]);
    let alice_creds: Api<SsoAppCredential> = Api::namespaced(alice, "team");
    let cred = |name: &str, secret: &str| -> SsoAppCredential {
        support::sso_credential(name, "VendorConnection", "helloid", secret, "password")
    };
    let refused = |r: Result<SsoAppCredential, kube::Error>| match r {
        Ok(_) => None,
        Err(kube::Error::Api(s)) => Some(s.message),
        Err(e) => Some(e.to_string()),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let message = loop {
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        if let Some(m) = refused(alice_creds.create(&dry, &cred("probe", "forbidden")).await)
            && m.contains(webhook::DENIED_MARKER)
        {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chart's webhook configuration never refused alice"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(message.contains("team/forbidden"), "{message}");
    alice_creds
        .create(&PostParams::default(), &cred("mine", "readable"))
        .await
        .expect("a reference to a readable Secret is admitted");
    let theirs: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), "team");
    theirs
        .create(&PostParams::default(), &cred("theirs", "forbidden"))
        .await
        .expect("an admin's resource");

    // Webhook down: failurePolicy Fail refuses alice's create, while the matchConditions keep
    // the operator's writes and metadata-only changes away from the webhook.
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), serving_task).await;
    let down = refused(
        alice_creds
            .create(&PostParams::default(), &cred("later", "readable"))
            .await,
    )
    .expect("refused while the webhook is down");
    assert!(down.contains("failed calling webhook"), "{down}");
    support::label(&alice_creds, "theirs", json!({"seen": "yes"}))
        .await
        .expect("a metadata-only change never calls the webhook");
    Api::<SsoAppCredential>::namespaced(as_operator, "team")
        .patch(
            "theirs",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["credsync.io/cleanup"]},
                                 "spec": {"credSetName": "by-operator"}})),
        )
        .await
        .expect("the operator's own writes never wait for its webhook");
    let spec_change = refused(
        alice_creds
            .patch(
                "theirs",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"credSetName": "moved"}})),
            )
            .await,
    )
    .expect("a spec change goes to the webhook, which is down");
    assert!(
        spec_change.contains("failed calling webhook"),
        "{spec_change}"
    );
}
