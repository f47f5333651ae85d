//! Secrets and tenants: values never leak, references never cross namespaces, cluster
//! connections serve only the namespaces they allow, plain http needs the operator's flag.

mod support;

use std::collections::BTreeMap;

use std::time::Duration;

use axum::http::Method;
use credsync::api::{ClusterVendorConnection, SsoAppCredential, VendorConnection};
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::helloid::HelloIdSim;
use kube::{Api, ResourceExt};
use serde_json::json;
use support::{
    TestEnv, condition, helloid_connection, is_true, ready_reason, sso_credential, wait_count,
};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_never_cross_namespaces() {
    // A control plane of its own: it reads the audit log, and its operator serves two namespaces.
    let env = TestEnv::dedicated().await;
    let sim = HelloIdSim::new("key", "secret");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.namespace("tenant-a").await;
    env.namespace("tenant-b").await;
    env.secret("tenant-b", "b-api", &[("key", "key"), ("secret", "secret")])
        .await;
    env.secret("tenant-a", "pw", &[("password", "p")]).await;

    // A connection in A that names B's Secret is refused before anything is read.
    env.apply(
        "tenant-a",
        &helloid_connection(
            "sneaky",
            &server.url(),
            json!({"name": "b-api", "namespace": "tenant-b"}),
        ),
    )
    .await;
    env.apply_sso("tenant-a", "x", "sneaky").await;
    let refused = env
        .wait_reason::<SsoAppCredential>("tenant-a", "x", "CrossNamespaceReference")
        .await;
    let message = support::message_of(&refused, "Stalled");
    assert!(
        message.contains("tenant-b") && message.contains("own namespace"),
        "{message}"
    );
    env.wait_for::<VendorConnection>("tenant-a", "sneaky", WAIT, |c| {
        c.status
            .as_ref()
            .is_some_and(|s| is_true(&s.sync.conditions, "Stalled", c.metadata.generation))
    })
    .await;

    // A connection that exists only in B is not found from A.
    env.secret(
        "tenant-b",
        "b-conn-api",
        &[("key", "key"), ("secret", "secret")],
    )
    .await;
    env.apply(
        "tenant-b",
        &helloid_connection("b-conn", &server.url(), json!({"name": "b-conn-api"})),
    )
    .await;
    env.apply_sso("tenant-a", "y", "b-conn").await;
    env.wait_reason::<SsoAppCredential>("tenant-a", "y", "ConnectionNotFound")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        server.journal.is_empty(),
        "no vendor call for a refused reference"
    );

    // The API server's audit log: nobody read tenant-b/b-api on tenant-a's behalf.
    let audit = std::fs::read_to_string(env.cp.audit_log_path()).expect("audit log");
    let reads: Vec<&str> = audit
        .lines()
        .filter(|l| {
            l.contains("\"resource\":\"secrets\"")
                && l.contains("\"namespace\":\"tenant-b\"")
                && l.contains("\"name\":\"b-api\"")
        })
        .filter(|l| l.contains("\"verb\":\"get\"") || l.contains("\"verb\":\"list\""))
        .collect();
    assert!(reads.is_empty(), "tenant-b/b-api was read: {reads:#?}");
    assert!(audit.lines().count() > 10, "the audit log records requests");
    env.stop().await;
}

/// ClusterVendorConnection `shared` to the HelloID simulator at `url`, for the namespaces
/// `allowed` says, logging in with API key `key` (Secret `shared-api` in the operator namespace).
async fn shared_helloid_connection(
    env: &TestEnv,
    url: &str,
    (key, secret): (&str, &str),
    allowed: serde_json::Value,
) {
    let operator_namespace = support::OPERATOR_NAMESPACE;
    env.secret(
        operator_namespace,
        "shared-api",
        &[("key", key), ("secret", secret)],
    )
    .await;
    let shared: ClusterVendorConnection = support::object(
        "shared",
        json!({
            "helloId": {"url": url, "apiKeySecretRef": {"name": "shared-api", "namespace": operator_namespace}},
            "allowedNamespaces": allowed
        }),
    );
    let api: Api<ClusterVendorConnection> = Api::all(env.client.clone());
    env.apply_in(&api, "shared", &shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_connections_serve_only_allowed_namespaces() {
    // A control plane of its own: a ClusterVendorConnection is every operator's.
    let env = TestEnv::dedicated().await;
    let sim = HelloIdSim::new("key", "secret");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    shared_helloid_connection(
        &env,
        &server.url(),
        ("key", "secret"),
        json!({"namespaces": ["listed"], "namespaceSelector": {"matchLabels": {"team": "blue"}}}),
    )
    .await;
    env.namespace("listed").await;
    env.namespace_with_labels(
        "labelled",
        BTreeMap::from([("team".to_string(), "blue".to_string())]),
    )
    .await;
    env.namespace("outsider").await;
    for ns in ["listed", "labelled", "outsider"] {
        env.secret(ns, "pw", &[("password", "p")]).await;
        env.apply(
            ns,
            &sso_credential(
                &format!("cred-{ns}"),
                "ClusterVendorConnection",
                "shared",
                "pw",
                "password",
            ),
        )
        .await;
    }
    for ns in ["listed", "labelled"] {
        env.wait_for::<SsoAppCredential>(ns, &format!("cred-{ns}"), WAIT, |o| {
            ready_reason(o).as_deref() == Some("Synced")
        })
        .await;
    }
    let denied = env
        .wait_reason::<SsoAppCredential>("outsider", "cred-outsider", "NamespaceNotAllowed")
        .await;
    let message = support::message_of(&denied, "Ready");
    assert!(
        message.contains("shared") && message.contains("outsider"),
        "{message}"
    );
    wait_count("POSTs", 2, WAIT, || {
        server
            .journal
            .matching(&Method::POST, "/api/v1/enduser/")
            .len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        server
            .journal
            .matching(&Method::POST, "/api/v1/enduser/")
            .len(),
        2,
        "nothing sent for the outsider"
    );
    assert!(
        denied.finalizers().is_empty(),
        "a refused resource holds no finalizer"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_needs_the_operator_flag() {
    let env = TestEnv::shared_with("tenant-h", |s| s.transport.allow_http = false).await;
    env.secret("tenant-h", "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.apply(
        "tenant-h",
        &helloid_connection("insecure", "http://127.0.0.1:9", json!({"name": "api"})),
    )
    .await;
    let conn = env
        .wait_for::<VendorConnection>("tenant-h", "insecure", WAIT, |c| {
            c.status
                .as_ref()
                .is_some_and(|s| is_true(&s.sync.conditions, "Stalled", c.metadata.generation))
        })
        .await;
    let ready = condition(&conn.status.expect("status").sync.conditions, "Ready")
        .cloned()
        .expect("Ready");
    assert_eq!(ready.reason, "InvalidConnection");
    assert!(ready.message.contains("https"), "{}", ready.message);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_ca_is_trusted_and_verification_is_never_off() {
    let ns = "tls";
    let env = TestEnv::shared_with(ns, |s| s.transport.allow_http = false).await;
    let sim = HelloIdSim::new("k", "s");
    let (server, ca_pem) = SimServer::start_tls(sim.router())
        .await
        .expect("https simulator");
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret(ns, "vendor-ca", &[("ca.crt", &ca_pem)]).await;
    env.secret(ns, "pw", &[("password", "p")]).await;
    for (name, tls) in [
        (
            "with-ca",
            json!({"caSecretRef": {"name": "vendor-ca", "key": "ca.crt"}}),
        ),
        ("without-ca", json!({})),
    ] {
        let conn: VendorConnection = support::object(
            name,
            json!({"helloId": {"url": server.https_url(), "apiKeySecretRef": {"name": "api"}}, "tls": tls}),
        );
        env.apply(ns, &conn).await;
    }
    env.apply_sso(ns, "trusted", "with-ca").await;
    env.apply(
        ns,
        &sso_credential(
            "untrusted",
            "VendorConnection",
            "without-ca",
            "pw",
            "password",
        ),
    )
    .await;
    env.wait_reason::<SsoAppCredential>(ns, "trusted", "Synced")
        .await;
    let refused = env
        .wait_reason::<SsoAppCredential>(ns, "untrusted", "VendorCertificateInvalid")
        .await;
    let status = refused.status.clone().expect("status");
    let stalled = condition(&status.sync.conditions, "Stalled").expect("Stalled");
    assert_eq!(
        stalled.status, "True",
        "a certificate that does not verify needs a person"
    );
    assert!(
        stalled.message.contains("tls.caSecretRef"),
        "{}",
        stalled.message
    );
    assert_eq!(
        server.journal.len(),
        1,
        "only the trusted connection got through"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_never_followed() {
    let env = TestEnv::shared("redir").await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret("redir", "pw", &[("password", "p")]).await;
    env.helloid_tenant("redir", &server.url(), "k", "s").await;
    server
        .faults
        .push(credsync_testkit::sim::Fault::Redirect, 1);
    env.apply_sso("redir", "moved", "helloid").await;
    let stalled = env
        .wait_reason::<SsoAppCredential>("redir", "moved", "VendorRedirect")
        .await;
    let status = stalled.status.expect("status");
    assert!(
        condition(&status.sync.conditions, "Stalled")
            .is_some_and(|c| c.status == "True" && c.message.contains("no redirects"))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        server.journal.all().iter().all(|r| r.path != "/followed"),
        "the redirect was followed"
    );
    assert_eq!(server.journal.len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_vendor_addresses_need_the_operator_flag() {
    let ns = "ssrf";
    let mut env = TestEnv::shared_with(ns, |s| s.transport.allow_private_addresses = false).await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    let port = server
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    env.secret(ns, "api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret(ns, "pw", &[("password", "p")]).await;
    // Literal addresses are refused when the client is built; a name (localhost) when it
    // resolves, at connect time. Nothing may reach 169.254.169.254 or 10.x: no listener of
    // ours is there, and the refusal must come before any connection attempt.
    let targets = [
        ("loopback", server.url()),
        ("metadata", "http://169.254.169.254/latest".to_string()),
        ("private", "http://10.1.2.3".to_string()),
        ("by-name", format!("http://localhost:{port}")),
    ];
    for (name, url) in &targets {
        env.apply(ns, &helloid_connection(name, url, json!({"name": "api"})))
            .await;
        env.apply_sso(ns, name, name).await;
    }
    for (name, _) in &targets {
        let refused = env
            .wait_reason::<SsoAppCredential>(ns, name, "VendorAddressNotAllowed")
            .await;
        let ready = condition(&refused.status.expect("status").sync.conditions, "Ready")
            .cloned()
            .expect("Ready");
        assert!(
            ready.message.contains("--allow-private-vendor-addresses"),
            "{name}: {}",
            ready.message
        );
    }
    assert!(
        server.journal.is_empty(),
        "no request may reach a loopback listener without the flag"
    );

    // With the flag, the loopback vendor is served (the others are removed first: no test
    // may send traffic to a private or link-local address).
    for (name, _) in &targets[1..] {
        env.delete::<SsoAppCredential>(ns, name).await;
        env.delete::<VendorConnection>(ns, name).await;
    }
    env.stop_operator().await;
    env.settings.transport.allow_private_addresses = true;
    env.start_operator();
    env.wait_reason::<SsoAppCredential>(ns, "loopback", "Synced")
        .await;
    assert!(!server.journal.is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_credentials_are_never_read_for_a_reference() {
    use k8s_openapi::api::core::v1::Secret;
    let ns = "typed";
    let env = TestEnv::shared(ns).await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.helloid_tenant(ns, &server.url(), "k", "s").await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), ns);
    for (name, type_, data) in [
        (
            "release",
            "helm.sh/release.v1",
            json!({"password": "aGVsbS12YWx1ZXM="}),
        ),
        (
            "registry",
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": "e30=", "password": "cmVnaXN0cnk="}),
        ),
    ] {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": type_, "data": data
        }))
        .expect("secret");
        secrets
            .create(&kube::api::PostParams::default(), &secret)
            .await
            .expect("create typed secret");
        env.apply(
            ns,
            &sso_credential(name, "VendorConnection", "helloid", name, "password"),
        )
        .await;
    }
    for name in ["release", "registry"] {
        let refused = env
            .wait_reason::<SsoAppCredential>(ns, name, "SecretTypeNotAllowed")
            .await;
        assert!(refused.finalizers().is_empty());
    }
    assert!(sim.is_empty(), "nothing was sent to the vendor");
    env.stop().await;
}

/// Two teams name one HelloID record over a shared ClusterVendorConnection.
fn claimant(name: &str) -> SsoAppCredential {
    support::object(
        name,
        json!({
            "connectionRef": {"kind": "ClusterVendorConnection", "name": "shared"},
            "userGuid": support::TEST_USER_GUID,
            // The same record in another casing.
            "applicationGuid": if name == "second" { support::TEST_APP_GUID.to_uppercase() } else { support::TEST_APP_GUID.to_string() },
            "credentials": [{"function": "Password", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}],
            "deletionPolicy": "Delete"
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_vendor_record_has_one_owner() {
    // A control plane of its own: a ClusterVendorConnection is every operator's.
    let mut env = TestEnv::dedicated().await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    shared_helloid_connection(
        &env,
        &server.url(),
        ("k", "s"),
        json!({"namespaces": ["team-a", "team-b"]}),
    )
    .await;
    for (ns, value) in [("team-a", "from-a"), ("team-b", "from-b")] {
        env.namespace(ns).await;
        env.secret(ns, "pw", &[("password", value)]).await;
    }
    env.apply("team-a", &claimant("first")).await;
    env.wait_reason::<SsoAppCredential>("team-a", "first", "Synced")
        .await;
    env.apply("team-b", &claimant("second")).await;
    let claimed = env
        .wait_reason::<SsoAppCredential>("team-b", "second", "RecordClaimed")
        .await;
    let status = claimed.status.clone().expect("status");
    assert!(is_true(
        &status.sync.conditions,
        "Stalled",
        claimed.metadata.generation
    ));
    let message = &condition(&status.sync.conditions, "Ready")
        .expect("Ready")
        .message;
    assert!(
        message.contains("team-a/first"),
        "names the holder: {message}"
    );
    assert!(!message.contains("from-a"), "never its values: {message}");
    assert!(
        claimed.finalizers().is_empty(),
        "a claimant that does not hold adds no finalizer"
    );
    let writes = || {
        server
            .journal
            .matching(&Method::POST, "/api/v1/enduser/")
            .iter()
            .map(|r| r.text())
            .collect::<Vec<_>>()
    };
    assert!(
        writes()
            .iter()
            .all(|w| w.contains("from-a") && !w.contains("from-b"))
    );

    // A restart keeps the holder: the claims are rebuilt before any vendor call.
    env.stop_operator().await;
    env.secret("team-b", "pw", &[("password", "from-b-2")])
        .await;
    env.start_operator();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        writes().iter().all(|w| !w.contains("from-b")),
        "{:?}",
        writes()
    );
    env.wait_reason::<SsoAppCredential>("team-b", "second", "RecordClaimed")
        .await;

    // The holder goes (deleting its record): the other takes over and writes.
    env.delete::<SsoAppCredential>("team-a", "first").await;
    env.wait_gone::<SsoAppCredential>("team-a", "first", WAIT)
        .await;
    env.wait_reason::<SsoAppCredential>("team-b", "second", "Synced")
        .await;
    assert!(writes().last().is_some_and(|w| w.contains("from-b-2")));
    assert!(
        sim.get(support::TEST_USER_GUID, support::TEST_APP_GUID, "Default")
            .is_some_and(|s| s.credentials[0].value == "from-b-2")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_policy_limits_what_tenants_target() {
    use credsync::api::{CrmUserCredential, ErpIdentity};
    use credsync_testkit::sim::apex::{ApexAuth, ApexSim};
    use credsync_testkit::sim::oracle::OracleSim;
    // A control plane of its own: ClusterVendorConnections are every operator's.
    let env = TestEnv::dedicated().await;
    let helloid = HelloIdSim::new("k", "s");
    let helloid_server = SimServer::start(helloid.router(), 0)
        .await
        .expect("helloid");
    let apex = ApexSim::new(ApexAuth::Basic("u".into(), "p".into()));
    let apex_server = SimServer::start(apex.router(), 0).await.expect("apex");
    let oracle = OracleSim::new("integration@acme", "int-pw");
    let oracle_server = SimServer::start(oracle.router(), 0).await.expect("oracle");
    let op = support::OPERATOR_NAMESPACE;
    env.secret(
        op,
        "vendor-logins",
        &[
            ("key", "k"),
            ("secret", "s"),
            ("username", "integration@acme"),
            ("password", "int-pw"),
        ],
    )
    .await;
    env.secret(op, "apex-login", &[("username", "u"), ("password", "p")])
        .await;
    let clusters: Api<ClusterVendorConnection> = Api::all(env.client.clone());
    for (name, spec) in [
        (
            "sso",
            json!({"helloId": {"url": helloid_server.url(), "apiKeySecretRef": {"name": "vendor-logins", "namespace": op}},
                   "tenancy": {"helloId": {"applicationGuids": [support::TEST_APP_GUID.to_uppercase()]}}}),
        ),
        (
            "erp",
            json!({"apexErp": {"url": apex_server.url(), "auth": {"basicSecretRef": {"name": "apex-login", "namespace": op}}},
                   "tenancy": {"apexErp": {"names": ["team-a-*"]}}}),
        ),
        (
            "crm",
            json!({"oracleCrmOnDemand": {"url": oracle_server.url(), "credentialsSecretRef": {"name": "vendor-logins", "namespace": op}}}),
        ),
    ] {
        let mut spec = spec;
        spec["allowedNamespaces"] = json!({"namespaces": ["team-a"]});
        let conn: ClusterVendorConnection = support::object(name, spec);
        env.apply_in(&clusters, name, &conn).await;
    }
    let ns = "team-a";
    env.namespace(ns).await;
    env.secret(ns, "pw", &[("password", "p4ss")]).await;
    let sso = |name: &str, app: &str| -> SsoAppCredential {
        support::object(
            name,
            json!({"connectionRef": {"kind": "ClusterVendorConnection", "name": "sso"},
                     "userGuid": support::TEST_USER_GUID, "applicationGuid": app,
                     "credentials": [{"function": "Password", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}]}),
        )
    };
    let erp = |name: &str, sys_admin: bool| -> ErpIdentity {
        support::object(
            name,
            json!({"connectionRef": {"kind": "ClusterVendorConnection", "name": "erp"}, "identityType": "User",
                     "name": name, "userInfo": {"userName": name, "isSysAdmin": sys_admin}}),
        )
    };
    let crm: CrmUserCredential = support::object(
        "integration-user",
        json!({"connectionRef": {"kind": "ClusterVendorConnection", "name": "crm"},
                 "oracleCrmOnDemand": {"userId": "INTEGRATION@ACME", "passwordFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}),
    );
    env.apply(
        ns,
        &sso("other-app", "11111111-2222-3333-4444-555555555555"),
    )
    .await;
    env.apply(ns, &sso("allowed-app", support::TEST_APP_GUID))
        .await;
    env.apply(ns, &erp("team-b-intruder", false)).await;
    env.apply(ns, &erp("team-a-admin", true)).await;
    env.apply(ns, &erp("team-a-user", false)).await;
    env.apply(ns, &crm).await;

    env.wait_reason::<SsoAppCredential>(ns, "other-app", "PolicyDenied")
        .await;
    env.wait_reason::<ErpIdentity>(ns, "team-b-intruder", "PolicyDenied")
        .await;
    let admin: ErpIdentity = env.wait_reason(ns, "team-a-admin", "PolicyDenied").await;
    let message = support::ready_message(&admin);
    assert!(message.contains("allowSysAdmin"), "{message}");
    env.wait_reason::<CrmUserCredential>(ns, "integration-user", "PolicyDenied")
        .await;
    // What the policy allows goes through.
    env.wait_reason::<SsoAppCredential>(ns, "allowed-app", "Synced")
        .await;
    env.wait_reason::<ErpIdentity>(ns, "team-a-user", "Synced")
        .await;
    assert_eq!(
        helloid_server.journal.len(),
        1,
        "one write: the allowed one"
    );
    assert!(
        apex_server
            .journal
            .all()
            .iter()
            .all(|r| !r.text().contains("team-b-intruder") && !r.text().contains("team-a-admin")),
        "nothing of a denied resource reached the vendor"
    );
    assert!(
        oracle_server.journal.is_empty(),
        "the integration user's password is never set"
    );
    env.stop().await;
}
