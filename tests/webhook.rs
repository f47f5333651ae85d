//! The admission webhook against a real kube-apiserver: a ValidatingWebhookConfiguration points
//! at the webhook served in-process over https; an impersonated user who may create credsync
//! resources but read only one Secret may reference that Secret and no other.

mod support;

use std::time::Duration;

use credsync::api::{ClusterVendorConnection, SsoAppCredential, VendorConnection};
use credsync::webhook::{self, DENIED_MARKER, WEBHOOK_NAME};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{OPERATOR_NAMESPACE, TestEnv, helloid_connection, sso_credential};

const NS: &str = "team";
const WEBHOOK_USER: &str = "system:serviceaccount:credsync-system:credsync";

fn typed<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("object")
}

/// A CA and a serving certificate for 127.0.0.1, written as tls.crt/tls.key the way the chart
/// mounts them; returns the folder and the CA's PEM (the caBundle).
fn serving_certificate() -> (tempfile::TempDir, String) {
    let certificate = support::loopback_certificate();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("tls.crt"), &certificate.cert_pem).expect("tls.crt");
    std::fs::write(dir.path().join("tls.key"), &certificate.key_pem).expect("tls.key");
    (dir, certificate.ca_pem)
}

/// Grant `subject` the `rules`: a Role and RoleBinding `name` in `namespace`, or a ClusterRole
/// and ClusterRoleBinding `name` when there is none.
async fn grant(admin: &Client, namespace: Option<&str>, name: &str, rules: Value, subject: Value) {
    let role = json!({"metadata": {"name": name}, "rules": rules});
    let binding = |kind: &str| {
        json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [subject]
        })
    };
    let created: Result<(), kube::Error> = async {
        let create = PostParams::default();
        match namespace {
            Some(ns) => {
                Api::<Role>::namespaced(admin.clone(), ns)
                    .create(&create, &typed(role))
                    .await?;
                Api::<RoleBinding>::namespaced(admin.clone(), ns)
                    .create(&create, &typed(binding("Role")))
                    .await?;
            }
            None => {
                Api::<ClusterRole>::all(admin.clone())
                    .create(&create, &typed(role))
                    .await?;
                Api::<ClusterRoleBinding>::all(admin.clone())
                    .create(&create, &typed(binding("ClusterRole")))
                    .await?;
            }
        }
        Ok(())
    }
    .await;
    created.unwrap_or_else(|e| panic!("granting {name}: {e}"));
}

/// The API server's refusal text, or None when the request was admitted.
fn refusal<T>(result: Result<T, kube::Error>) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(kube::Error::Api(s)) => Some(s.message.clone()),
        Err(e) => Some(e.to_string()),
    }
}

fn denied_by_webhook(message: &str) -> bool {
    message.contains(&format!(
        "admission webhook \"{WEBHOOK_NAME}\" denied the request"
    )) && message.contains(DENIED_MARKER)
}

/// Repeat `attempt` until its refusal satisfies `done` (the API server picks up webhook
/// configuration and RBAC changes within a second or two), or panic.
async fn eventually_refused<F, Fut>(what: &str, attempt: F, done: impl Fn(&str) -> bool) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        last = attempt().await.or(last);
        if let Some(message) = &last
            && done(message)
        {
            return message.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not refused as expected within 30s; last refusal: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Register the webhook at `https://127.0.0.1:{port}/validate` as the chart does (same rules,
/// failurePolicy Fail), trusting `ca_pem`.
async fn register_webhook(admin: &Client, port: u16, ca_pem: &str) {
    use base64::Engine;
    Api::<ValidatingWebhookConfiguration>::all(admin.clone())
        .create(&PostParams::default(), &typed(json!({
            "metadata": {"name": "credsync"},
            "webhooks": [{
                "name": WEBHOOK_NAME,
                "clientConfig": {
                    "url": format!("https://127.0.0.1:{port}{}", webhook::PATH),
                    "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
                },
                "rules": [{
                    "apiGroups": ["credsync.io"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                    "resources": ["vendorconnections", "clustervendorconnections", "crmusercredentials", "ssoappcredentials"],
                    "scope": "*"
                }],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10
            }]
        })))
        .await
        .expect("ValidatingWebhookConfiguration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refuses_references_to_secrets_the_user_cannot_read() {
    // A control plane of its own: it registers a cluster-wide admission webhook and reads the
    // audit log.
    let env = TestEnv::dedicated_bare().await;
    env.namespace(NS).await;
    env.namespace("other").await;
    for (ns, name) in [
        (NS, "readable"),
        (NS, "forbidden"),
        ("other", "readable"),
        (OPERATOR_NAMESPACE, "shared"),
    ] {
        env.secret(
            ns,
            name,
            &[("password", "p"), ("key", "k"), ("secret", "s")],
        )
        .await;
    }

    // alice may create credsync resources in `team` and get exactly one Secret there, and may
    // create ClusterVendorConnections; nothing else.
    let admin = env.client.clone();
    let alice = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"});
    for (namespace, name, rules, subject) in [
        (
            Some(NS),
            "alice",
            json!([
                {"apiGroups": ["credsync.io"], "resources": ["ssoappcredentials", "vendorconnections", "crmusercredentials"],
                 "verbs": ["get", "list", "create", "update", "patch"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["readable"], "verbs": ["get"]}
            ]),
            alice.clone(),
        ),
        (
            None,
            "alice-cluster-connections",
            json!([{"apiGroups": ["credsync.io"], "resources": ["clustervendorconnections"], "verbs": ["create"]}]),
            alice,
        ),
        // The webhook runs as the chart's ServiceAccount with only what the chart grants it.
        (
            None,
            "credsync-webhook",
            json!([{"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}]),
            json!({"kind": "ServiceAccount", "name": "credsync", "namespace": OPERATOR_NAMESPACE}),
        ),
    ] {
        grant(&admin, namespace, name, rules, subject).await;
    }
    let webhook_binding = Api::<ClusterRoleBinding>::all(admin.clone());

    let alice = env.impersonating("alice", &["system:authenticated"]);
    let alice_creds: Api<SsoAppCredential> = Api::namespaced(alice.clone(), NS);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let forbidden_cred = sso_credential(
        "bad",
        "VendorConnection",
        "helloid",
        "forbidden",
        "password",
    );
    let readable_cred = sso_credential("ok", "VendorConnection", "helloid", "readable", "password");

    // Control: RBAC alone lets alice reference a Secret she cannot read. Everything refused
    // below is refused by the webhook.
    assert_eq!(
        refusal(alice_creds.create(&dry_run, &forbidden_cred).await),
        None,
        "without the webhook, alice's reference to a Secret she cannot read is admitted"
    );

    // The webhook, in-process on loopback, with its certificate from files as the chart mounts it.
    let (cert_dir, ca_pem) = serving_certificate();
    let tls = credsync::serving_cert::load_tls(cert_dir.path())
        .await
        .expect("webhook TLS");
    let served = support::serve_webhook(
        tls,
        env.impersonating(
            WEBHOOK_USER,
            &["system:serviceaccounts", "system:authenticated"],
        ),
    )
    .await;
    let (port, stop, serving) = (served.port, served.stop, served.task);
    register_webhook(&admin, port, &ca_pem).await;
    let first = eventually_refused(
        "the webhook configuration taking effect",
        || async { refusal(alice_creds.create(&dry_run, &forbidden_cred).await) },
        denied_by_webhook,
    )
    .await;
    assert!(
        first.contains("team/forbidden") && first.contains("alice"),
        "the refusal names the Secret and the user: {first}"
    );

    // Create: the readable Secret is admitted, the other refused, naming it and no value.
    alice_creds
        .create(&PostParams::default(), &readable_cred)
        .await
        .expect("a reference to a Secret alice can read is admitted");
    let refused = refusal(
        alice_creds
            .create(&PostParams::default(), &forbidden_cred)
            .await,
    )
    .expect("a reference to a Secret alice cannot read is refused");
    assert!(denied_by_webhook(&refused), "{refused}");
    assert!(refused.contains("team/forbidden"), "{refused}");
    assert!(!refused.contains("team/readable"), "{refused}");
    assert!(
        Api::<SsoAppCredential>::namespaced(admin.clone(), NS)
            .get_opt("bad")
            .await
            .expect("get")
            .is_none(),
        "the refused resource was not stored"
    );

    // Update: swapping the reference to the unreadable Secret is refused, and nothing changes.
    let swap = json!({"spec": {"credentials": [
        {"function": "UserName", "value": "ok"},
        {"function": "Password", "valueFrom": {"secretKeyRef": {"name": "forbidden", "key": "password"}}}
    ]}});
    let refused = refusal(
        alice_creds
            .patch("ok", &PatchParams::default(), &Patch::Merge(&swap))
            .await,
    )
    .expect("swapping to an unreadable Secret is refused");
    assert!(
        denied_by_webhook(&refused) && refused.contains("team/forbidden"),
        "{refused}"
    );
    let stored = Api::<SsoAppCredential>::namespaced(admin.clone(), NS)
        .get("ok")
        .await
        .expect("ok");
    assert_eq!(
        stored.spec.credentials[1]
            .value_from
            .as_ref()
            .map(|v| v.secret_key_ref.name.as_str()),
        Some("readable")
    );

    // An admin's resource that references the Secret alice cannot read: alice may label it
    // (spec unchanged), but any spec change re-checks the reference and is refused.
    let admin_creds: Api<SsoAppCredential> = Api::namespaced(admin.clone(), NS);
    admin_creds
        .create(
            &PostParams::default(),
            &sso_credential(
                "legacy",
                "VendorConnection",
                "helloid",
                "forbidden",
                "password",
            ),
        )
        .await
        .expect("system:masters may reference any Secret");
    support::label(&alice_creds, "legacy", json!({"owner": "alice"}))
        .await
        .expect("a metadata-only change is admitted");
    let refused = refusal(
        alice_creds
            .patch(
                "legacy",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"connectionRef": {"name": "alices-own"}}})),
            )
            .await,
    )
    .expect("re-routing an unreadable Secret is refused");
    assert!(
        denied_by_webhook(&refused) && refused.contains("team/forbidden"),
        "{refused}"
    );

    // Connections: the same rule, also for a reference into another namespace.
    let alice_conns: Api<VendorConnection> = Api::namespaced(alice.clone(), NS);
    alice_conns
        .create(
            &PostParams::default(),
            &helloid_connection(
                "mine",
                "https://helloid.example",
                json!({"name": "readable"}),
            ),
        )
        .await
        .expect("a connection with a readable Secret is admitted");
    for (name, api_key_ref, secret) in [
        ("theirs", json!({"name": "forbidden"}), "team/forbidden"),
        (
            "across",
            json!({"name": "readable", "namespace": "other"}),
            "other/readable",
        ),
    ] {
        let refused = refusal(
            alice_conns
                .create(
                    &PostParams::default(),
                    &helloid_connection(name, "https://attacker.example", api_key_ref),
                )
                .await,
        )
        .unwrap_or_else(|| panic!("connection {name} must be refused"));
        assert!(
            denied_by_webhook(&refused) && refused.contains(secret),
            "{refused}"
        );
    }
    let cluster: ClusterVendorConnection = typed(json!({
        "apiVersion": "credsync.io/v1alpha1", "kind": "ClusterVendorConnection", "metadata": {"name": "grab"},
        "spec": {"helloId": {"url": "https://attacker.example", "apiKeySecretRef": {"name": "shared", "namespace": OPERATOR_NAMESPACE}},
                 "allowedNamespaces": {"namespaces": [NS]}}
    }));
    let refused = refusal(
        Api::<ClusterVendorConnection>::all(alice.clone())
            .create(&PostParams::default(), &cluster)
            .await,
    )
    .expect("a cluster connection naming the operator's Secret is refused");
    assert!(
        denied_by_webhook(&refused) && refused.contains("credsync-system/shared"),
        "{refused}"
    );

    // The audit log records the refused references.
    let audit = std::fs::read_to_string(env.cp.audit_log_path()).expect("audit log");
    assert!(
        audit.contains(&format!(
            "\"{WEBHOOK_NAME}/refused-secrets\":\"other/readable\""
        )),
        "the refusal is in the audit log"
    );

    // Fail closed: without permission to ask, the webhook refuses even the readable Secret.
    webhook_binding
        .delete("credsync-webhook", &DeleteParams::default())
        .await
        .expect("unbind the webhook");
    let unchecked = eventually_refused(
        "the webhook unable to create SubjectAccessReviews",
        || async { refusal(alice_creds.create(&dry_run, &readable_cred).await) },
        |m| denied_by_webhook(m) && m.contains("could not check"),
    )
    .await;
    assert!(unchecked.contains("team/readable"), "{unchecked}");

    // failurePolicy Fail: with the webhook down, the API server refuses too.
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), serving).await;
    let down = refusal(alice_creds.create(&dry_run, &readable_cred).await)
        .expect("with the webhook down, writes are refused");
    assert!(
        down.contains("failed calling webhook") && down.contains(WEBHOOK_NAME),
        "{down}"
    );
    env.stop().await;
}

/// The `credsync` binary serves the webhook with `--webhook-addr` and `--webhook-cert-dir`, next to
/// its controllers; a certificate it cannot read stops it at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_binary_serves_the_webhook() {
    // A control plane of its own: it registers a cluster-wide admission webhook.
    let env = TestEnv::dedicated_bare().await;
    env.namespace(NS).await;
    env.secret(NS, "forbidden", &[("password", "p")]).await;
    grant(
        &env.client,
        Some(NS),
        "alice",
        json!([{"apiGroups": ["credsync.io"], "resources": ["ssoappcredentials"], "verbs": ["create"]}]),
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}),
    )
    .await;

    let operator = |cert_dir: &std::path::Path, port: u16| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_credsync"));
        cmd.args([
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "pretty",
        ])
        .arg("--webhook-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--webhook-cert-dir")
        .arg(cert_dir)
        .env("KUBECONFIG", env.cp.kubeconfig_path())
        .env("POD_NAMESPACE", OPERATOR_NAMESPACE)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
        cmd
    };
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port")
    };

    // No certificate: the operator refuses to start, saying which file.
    let empty = tempfile::tempdir().expect("temp dir");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        operator(empty.path(), free_port()).output(),
    )
    .await
    .expect("exits promptly")
    .expect("runs");
    assert!(!out.status.success());
    // Logs go to stdout.
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(
        logs.contains("cannot serve the admission webhook") && logs.contains("tls.crt"),
        "{logs}"
    );

    let (cert_dir, ca_pem) = serving_certificate();
    let port = free_port();
    let mut child = operator(cert_dir.path(), port)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("credsync run");
    register_webhook(&env.client, port, &ca_pem).await;
    let alice = env.impersonating("alice", &["system:authenticated"]);
    let alice_creds: Api<SsoAppCredential> = Api::namespaced(alice, NS);
    let message = eventually_refused(
        "the operator's webhook",
        || async {
            refusal(
                alice_creds
                    .create(
                        &PostParams::default(),
                        &sso_credential(
                            "bad",
                            "VendorConnection",
                            "helloid",
                            "forbidden",
                            "password",
                        ),
                    )
                    .await,
            )
        },
        denied_by_webhook,
    )
    .await;
    assert!(message.contains("team/forbidden"), "{message}");
    assert!(
        child.try_wait().expect("status").is_none(),
        "the operator keeps running"
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
    env.stop().await;
}
