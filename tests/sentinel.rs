//! Sentinel: a run of the sync and every failure path with secret value `S3ntinel-<random>`;
//! the value must appear in no log line, event, status, metric or error. Then hostile vendors
//! echo every request (headers, the Basic login, the body) in each error form and ask for
//! absurd waits: the operator stays up, and neither the resource's value nor the connection's
//! credentials (both with `& < > " \` and non-ASCII characters) appear anywhere. Its own test
//! binary, so its log capture is the process's only subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credsync::api::SsoAppCredential;
use credsync_testkit::sim::helloid::HelloIdSim;
use credsync_testkit::sim::{Fault, SimServer};
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

/// The process's log capture, installed once for every test of this binary.
fn logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,h2=info,rustls=info,tower=info")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the test's own subscriber");
        logs
    })
    .clone()
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
    let logs = logs();

    let ns = "tenant-s";
    let env = TestEnv::shared(ns).await;
    let sentinel = format!("S3ntinel-{}", hex::encode(rand::random::<[u8; 8]>()));
    let sim = HelloIdSim::new("key", "right");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(ns, "pw", &[("password", &sentinel)]).await;
    env.helloid_tenant(ns, &server.url(), "key", "right").await;

    // The happy path.
    env.apply_sso(ns, "alice", "helloid").await;
    let ready = env
        .wait_reason::<SsoAppCredential>(ns, "alice", "Synced")
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
    env.apply_sso(ns, "bob", "helloid").await;
    let rejected = env
        .wait_reason::<SsoAppCredential>(ns, "bob", "VendorRejected")
        .await;
    let message = support::message_of(&rejected, "Ready");
    assert!(
        message.contains("[redacted]"),
        "the echoed value is scrubbed: {message}"
    );

    // ... and in transient errors while retrying.
    server.faults.push(Fault::Echo(500), 2);
    env.apply_sso(ns, "carol", "helloid").await;
    env.wait_reason::<SsoAppCredential>(ns, "carol", "Synced")
        .await;

    // A missing key, a rejected API key, and deletion.
    env.apply(
        ns,
        &sso_credential("dave", "VendorConnection", "helloid", "pw", "nope"),
    )
    .await;
    env.wait_reason::<SsoAppCredential>(ns, "dave", "SecretKeyNotFound")
        .await;
    env.secret(ns, "api", &[("key", "key"), ("secret", "wrong")])
        .await;
    env.secret(ns, "pw", &[("password", &format!("{sentinel}-2"))])
        .await;
    env.wait_reason::<SsoAppCredential>(ns, "alice", "VendorUnauthorized")
        .await;
    env.secret(ns, "api", &[("key", "key"), ("secret", "right")])
        .await;
    env.wait_reason::<SsoAppCredential>(ns, "alice", "Synced")
        .await;
    env.delete::<SsoAppCredential>(ns, "alice").await;
    env.wait_gone::<SsoAppCredential>(ns, "alice", WAIT).await;

    // The CRM vendors: SuperOffice (REST and SOAP, with an echoing error) and Oracle.
    let so = credsync_testkit::sim::superoffice::SuperOfficeSim::new("tkt", None);
    let so_server = SimServer::start(so.router(), 0).await.expect("superoffice");
    let oracle = credsync_testkit::sim::oracle::OracleSim::new("int", "int-pw");
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
    support::crm_connections(&env, ns, "crm", &so_server.url(), &oracle_server.url()).await;
    // The echoing error goes to crm-rest, applied (and rejected) before the others: any other
    // order would hand the one fault to whichever request came first.
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
        let crm: credsync::api::CrmUserCredential = support::object(name, block);
        env.apply(ns, &crm).await;
        if name == "crm-rest" {
            env.wait_reason::<credsync::api::CrmUserCredential>(ns, name, "VendorRejected")
                .await;
        }
    }
    env.wait_reason::<credsync::api::CrmUserCredential>(ns, "crm-soap", "Synced")
        .await;
    env.wait_reason::<credsync::api::CrmUserCredential>(ns, "crm-oracle", "Synced")
        .await;
    let echoed = env
        .wait_reason::<credsync::api::CrmUserCredential>(ns, "crm-rest", "VendorRejected")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_vendors_cannot_crash_the_operator_or_extract_secrets() {
    use credsync::api::CrmUserCredential;
    use credsync_testkit::sim::EchoForm;
    let logs = logs();
    let ns = "hostile";
    let env = TestEnv::shared(ns).await;
    // The operator's /healthz and /readyz, served as in a Pod.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for /healthz");
    let endpoints = listener.local_addr().expect("address");
    tokio::spawn(credsync::server::serve_on(
        listener,
        env.readiness.clone(),
        std::future::pending(),
    ));
    // The random part is the marker looked for: it survives JSON, XML and URL escaping.
    let own_marker = hex::encode(rand::random::<[u8; 8]>());
    let conn_marker = hex::encode(rand::random::<[u8; 8]>());
    let own = format!("S3nt&<>\"\\é-{own_marker}");
    let login = format!("C0nn&<>\"\\ü-{conn_marker}");
    env.secret(ns, "api", &[("key", "key"), ("secret", &login)])
        .await;
    env.secret(
        ns,
        "crm",
        &[
            ("ticket", &login),
            ("username", "int"),
            ("password", &login),
        ],
    )
    .await;
    env.secret(ns, "pw", &[("password", &own)]).await;
    let helloid = HelloIdSim::new("key", &login);
    let helloid_server = SimServer::start(helloid.router(), 0)
        .await
        .expect("helloid");
    let so = credsync_testkit::sim::superoffice::SuperOfficeSim::new(&login, None);
    let so_server = SimServer::start(so.router(), 0).await.expect("superoffice");
    let oracle = credsync_testkit::sim::oracle::OracleSim::new("int", &login);
    let oracle_server = SimServer::start(oracle.router(), 0).await.expect("oracle");
    env.apply(
        ns,
        &helloid_connection("helloid", &helloid_server.url(), json!({"name": "api"})),
    )
    .await;
    support::crm_connections(&env, ns, "crm", &so_server.url(), &oracle_server.url()).await;

    // Every echo form, one resource each, applied one after the other so each gets its fault.
    for (i, (status, form, reason)) in [
        (400, EchoForm::Json, "VendorRejected"),
        (400, EchoForm::SoapFault, "VendorRejected"),
        (400, EchoForm::Xml, "VendorRejected"),
        (401, EchoForm::PlainText, "VendorUnauthorized"),
        (403, EchoForm::PlainText, "VendorForbidden"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("echo-{i}");
        helloid_server.faults.push(Fault::EchoAll(status, form), 1);
        env.apply_sso(ns, &name, "helloid").await;
        env.wait_reason::<SsoAppCredential>(ns, &name, reason).await;
    }
    // A transient echo, then an absurd Retry-After: retried, capped, and synced in the end.
    helloid_server
        .faults
        .push(Fault::EchoAll(500, EchoForm::Json), 1);
    helloid_server.faults.push(
        Fault::RateLimited {
            retry_after_secs: u64::MAX,
        },
        1,
    );
    env.apply_sso(ns, "patient", "helloid").await;
    env.wait_for::<SsoAppCredential>(ns, "patient", Duration::from_secs(60), |o| {
        ready_reason(o).as_deref() == Some("Synced")
    })
    .await;

    // SuperOffice (SOAP fault, ExceptionInfo, REST JSON) and Oracle (faults, absurd waits).
    let crm = |name: &str, conn: &str, block: serde_json::Value| -> CrmUserCredential {
        let mut spec = block;
        spec["connectionRef"] = json!({"name": conn});
        support::object(name, spec)
    };
    let so_block = |public: &str| {
        json!({"superOffice": {"type": "imap", "publicValue": public,
            "secretValueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}})
    };
    for (i, (conn, fault)) in [
        ("so-soap", Fault::EchoAll(500, EchoForm::SoapFault)),
        ("so-soap", Fault::EchoAll(200, EchoForm::ExceptionInfo)),
        ("so-rest", Fault::EchoAll(400, EchoForm::Json)),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("so-{i}");
        so_server.faults.push(fault, 1);
        env.apply(ns, &crm(&name, conn, so_block(&name))).await;
        env.wait_for::<CrmUserCredential>(ns, &name, WAIT, |o| {
            ready_reason(o)
                .as_deref()
                .is_some_and(|r| r.starts_with("Vendor") || r == "Synced")
        })
        .await;
    }
    oracle_server
        .faults
        .push(Fault::TryAgainIn("18446744073709551615"), 1);
    oracle_server
        .faults
        .push(Fault::TryAgainIn("99999999999999999999999999"), 1);
    env.apply(
        ns,
        &crm(
            "oracle-user",
            "oracle",
            json!({"oracleCrmOnDemand": {"userId": "U-7", "passwordFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}),
        ),
    )
    .await;
    env.wait_for::<CrmUserCredential>(ns, "oracle-user", Duration::from_secs(60), |o| {
        ready_reason(o).as_deref() == Some("Synced")
    })
    .await;
    oracle_server
        .faults
        .push(Fault::EchoAll(500, EchoForm::SoapFault), 1);
    env.apply(
        ns,
        &crm(
            "oracle-echo",
            "oracle",
            json!({"oracleCrmOnDemand": {"userId": "U-8", "passwordFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}),
        ),
    )
    .await;
    env.wait_reason::<CrmUserCredential>(ns, "oracle-echo", "VendorFault")
        .await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    // Still up and healthy after everything the vendors did.
    for path in ["/healthz", "/readyz"] {
        let answer = reqwest::get(format!("http://{endpoints}{path}"))
            .await
            .expect("the operator answers");
        assert_eq!(answer.status(), 200, "{path}");
    }
    for marker in [&own_marker, &conn_marker] {
        assert_nowhere(&env, &logs, ns, marker, "after hostile vendors").await;
    }
    env.stop().await;
}
