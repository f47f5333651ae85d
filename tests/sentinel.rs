//! Sentinel: a run of the sync and every failure path with secret value `S3ntinel-<random>`;
//! the value must appear in no log line, event, status, metric or error. Its own test binary,
//! so its log capture is the process's only subscriber.
#![cfg(feature = "dev")]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credsync::api::SsoAppCredential;
use credsync::sim::helloid::HelloIdSim;
use credsync::sim::{Fault, SimServer};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use sha2::Digest;
use support::{
    TEST_APP_GUID as APP, TEST_USER_GUID as USER, TestEnv, condition, helloid_connection,
    ready_reason, sso_credential,
};

const WAIT: Duration = Duration::from_secs(30);

/// Log lines, captured at debug level for credsync and kube.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

async fn assert_nowhere(
    env: &TestEnv,
    logs: &Captured,
    namespace: &str,
    sentinel: &str,
    when: &str,
) {
    let log = logs.text();
    assert!(!log.is_empty(), "logs were captured");
    assert!(
        !log.contains(sentinel),
        "{when}: the sentinel reached a log line"
    );
    let events = Api::<Event>::namespaced(env.client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("events");
    let events = serde_json::to_string(&events.items).expect("json");
    assert!(
        !events.contains(sentinel),
        "{when}: the sentinel reached an event"
    );
    for kind in [
        "ssoappcredentials",
        "crmusercredentials",
        "vendorconnections",
    ] {
        let out = env
            .cp
            .kubectl()
            .args(["get", kind, "-n", namespace, "-o", "json"])
            .output()
            .expect("kubectl");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(sentinel),
            "{when}: the sentinel reached {kind}"
        );
    }
    assert!(
        !credsync::metrics::encode().contains(sentinel),
        "{when}: the sentinel reached a metric"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_leak() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug,hyper=info,h2=info,rustls=info,tower=info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the test's own subscriber");

    let env = TestEnv::start().await;
    let sentinel = format!("S3ntinel-{}", hex::encode(rand::random::<[u8; 8]>()));
    let sim = HelloIdSim::new("key", "right");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    let ns = "tenant-s";
    env.namespace(ns).await;
    env.secret(ns, "api", &[("key", "key"), ("secret", "right")])
        .await;
    env.secret(ns, "pw", &[("password", &sentinel)]).await;
    env.apply(
        ns,
        &helloid_connection("helloid", &server.url(), json!({"name": "api"})),
    )
    .await;

    // The happy path.
    env.apply(
        ns,
        &sso_credential("alice", "VendorConnection", "helloid", "pw", "password"),
    )
    .await;
    let ready = env
        .wait_for::<SsoAppCredential>(ns, "alice", WAIT, |o| {
            ready_reason(o).as_deref() == Some("Synced")
        })
        .await;
    assert!(
        sim.get(USER, APP, "alice")
            .is_some_and(|s| s.credentials[1].value == sentinel)
    );
    let fingerprint = ready
        .status
        .and_then(|s| s.sync.applied_fingerprint)
        .expect("fingerprint");
    let plain = hex::encode(sha2::Sha256::digest(sentinel.as_bytes()));
    assert!(
        !fingerprint.contains(&plain),
        "the fingerprint is keyed, not a plain SHA-256"
    );
    assert_nowhere(&env, &logs, ns, &sentinel, "after a sync").await;

    // A vendor that echoes the request (with the secret) in a permanent error.
    server.faults.push(Fault::Echo(400), 1);
    env.apply(
        ns,
        &sso_credential("bob", "VendorConnection", "helloid", "pw", "password"),
    )
    .await;
    let rejected = env
        .wait_for::<SsoAppCredential>(ns, "bob", WAIT, |o| {
            ready_reason(o).as_deref() == Some("VendorRejected")
        })
        .await;
    let status = rejected.status.clone().expect("status");
    let message = &condition(&status.sync.conditions, "Ready")
        .expect("Ready")
        .message;
    assert!(
        message.contains("[redacted]"),
        "the echoed value is scrubbed: {message}"
    );

    // ... and in transient errors while retrying.
    server.faults.push(Fault::Echo(500), 2);
    env.apply(
        ns,
        &sso_credential("carol", "VendorConnection", "helloid", "pw", "password"),
    )
    .await;
    env.wait_for::<SsoAppCredential>(ns, "carol", WAIT, |o| {
        ready_reason(o).as_deref() == Some("Synced")
    })
    .await;

    // A missing key, a rejected API key, and deletion.
    env.apply(
        ns,
        &sso_credential("dave", "VendorConnection", "helloid", "pw", "nope"),
    )
    .await;
    env.wait_for::<SsoAppCredential>(ns, "dave", WAIT, |o| {
        ready_reason(o).as_deref() == Some("SecretKeyNotFound")
    })
    .await;
    env.secret(ns, "api", &[("key", "key"), ("secret", "wrong")])
        .await;
    env.secret(ns, "pw", &[("password", &format!("{sentinel}-2"))])
        .await;
    env.wait_for::<SsoAppCredential>(ns, "alice", WAIT, |o| {
        ready_reason(o).as_deref() == Some("VendorUnauthorized")
    })
    .await;
    env.secret(ns, "api", &[("key", "key"), ("secret", "right")])
        .await;
    env.wait_for::<SsoAppCredential>(ns, "alice", WAIT, |o| {
        ready_reason(o).as_deref() == Some("Synced")
    })
    .await;
    env.delete::<SsoAppCredential>(ns, "alice").await;
    env.wait_gone::<SsoAppCredential>(ns, "alice", WAIT).await;

    // The CRM vendors: SuperOffice (REST and SOAP, with an echoing error) and Oracle.
    let so = credsync::sim::superoffice::SuperOfficeSim::new("tkt", None);
    let so_server = SimServer::start(so.router(), 0).await.expect("superoffice");
    let oracle = credsync::sim::oracle::OracleSim::new("int", "int-pw");
    let oracle_server = SimServer::start(oracle.router(), 0).await.expect("oracle");
    env.secret(
        ns,
        "crm",
        &[
            ("ticket", "tkt"),
            ("username", "int"),
            ("password", "int-pw"),
        ],
    )
    .await;
    let ticket = json!({"ticketSecretRef": {"name": "crm", "key": "ticket"}});
    for (name, spec) in [
        (
            "so-rest",
            json!({"superOffice": {"url": so_server.url(), "api": "Rest", "auth": ticket}}),
        ),
        (
            "so-soap",
            json!({"superOffice": {"url": so_server.url(), "api": "Soap", "auth": ticket}}),
        ),
        (
            "oracle",
            json!({"oracleCrmOnDemand": {"url": oracle_server.url(), "credentialsSecretRef": {"name": "crm"}}}),
        ),
    ] {
        let conn: credsync::api::VendorConnection = serde_json::from_value(json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "VendorConnection", "metadata": {"name": name}, "spec": spec
        }))
        .expect("connection");
        env.apply(ns, &conn).await;
    }
    // The echoing error goes to crm-rest, applied (and rejected) before the others: any other
    // order would hand the one fault to whichever request came first.
    let crm_reason = |o: &credsync::api::CrmUserCredential| {
        o.status
            .as_ref()
            .and_then(|s| condition(&s.sync.conditions, "Ready"))
            .map(|c| c.reason.clone())
    };
    so_server.faults.push(Fault::Echo(400), 1);
    for (name, block) in [
        (
            "crm-rest",
            json!({"connectionRef": {"name": "so-rest"}, "deletionPolicy": "Delete",
            "superOffice": {"type": "imap", "publicValue": "p1", "secretValueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}),
        ),
        (
            "crm-soap",
            json!({"connectionRef": {"name": "so-soap"}, "deletionPolicy": "Delete",
            "superOffice": {"type": "imap", "publicValue": "p2", "secretValueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}),
        ),
        (
            "crm-oracle",
            json!({"connectionRef": {"name": "oracle"},
            "oracleCrmOnDemand": {"userId": "U-1", "passwordFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}),
        ),
    ] {
        let crm: credsync::api::CrmUserCredential = serde_json::from_value(json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "CrmUserCredential", "metadata": {"name": name}, "spec": block
        }))
        .expect("crm");
        env.apply(ns, &crm).await;
        if name == "crm-rest" {
            env.wait_for::<credsync::api::CrmUserCredential>(ns, name, WAIT, |o| {
                crm_reason(o).as_deref() == Some("VendorRejected")
            })
            .await;
        }
    }
    env.wait_for::<credsync::api::CrmUserCredential>(ns, "crm-soap", WAIT, |o| {
        crm_reason(o).as_deref() == Some("Synced")
    })
    .await;
    env.wait_for::<credsync::api::CrmUserCredential>(ns, "crm-oracle", WAIT, |o| {
        crm_reason(o).as_deref() == Some("Synced")
    })
    .await;
    let echoed = env
        .wait_for::<credsync::api::CrmUserCredential>(ns, "crm-rest", WAIT, |o| {
            crm_reason(o).as_deref() == Some("VendorRejected")
        })
        .await;
    let status = echoed.status.clone().expect("status");
    assert!(
        condition(&status.sync.conditions, "Ready")
            .is_some_and(|c| c.message.contains("[redacted]")),
        "{status:?}"
    );
    assert_eq!(
        oracle.password_of("U-1").as_deref(),
        Some(format!("{sentinel}-2").as_str())
    );
    env.delete::<credsync::api::CrmUserCredential>(ns, "crm-soap")
        .await;
    env.wait_gone::<credsync::api::CrmUserCredential>(ns, "crm-soap", WAIT)
        .await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_nowhere(&env, &logs, ns, &sentinel, "after every failure path").await;
    env.stop().await;
}
