//! Oracle CRM On Demand end to end: CrmUserCredential → PasswordWS SetPassword.

mod support;

use std::time::Duration;

use axum::http::Method;
use credsync::api::{CrmUserCredential, VendorConnection};
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::oracle::OracleSim;
use serde_json::json;
use support::{TestEnv, WAIT, condition, wait_count};

const NS: &str = "crm";

fn credential(name: &str, user_id: &str, policy: &str) -> CrmUserCredential {
    support::object(
        name,
        json!({"connectionRef": {"name": "oracle"}, "deletionPolicy": policy,
                 "oracleCrmOnDemand": {"userId": user_id, "externalSystemId": "Zoë <&>",
                                       "passwordFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_passwords_end_to_end() {
    let env = TestEnv::shared(NS).await;
    let sim = OracleSim::new("integration", "int-pw");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(
        NS,
        "oracle-creds",
        &[("username", "integration"), ("password", "int-pw")],
    )
    .await;
    env.secret(NS, "pw", &[("password", "first<&>Pässword")])
        .await;
    let conn: VendorConnection = support::object(
        "oracle",
        json!({"oracleCrmOnDemand": {"url": server.url(), "credentialsSecretRef": {"name": "oracle-creds"}}}),
    );
    env.apply(NS, &conn).await;

    // Apply → Ready; the password is set with the seed's envelope and SOAPAction.
    env.apply(NS, &credential("hrz", "HRZ780-KGY67", "Orphan"))
        .await;
    env.wait_current_reason::<CrmUserCredential>(NS, "hrz", "Synced")
        .await;
    assert_eq!(
        sim.password_of("HRZ780-KGY67").as_deref(),
        Some("first<&>Pässword")
    );
    let calls = server
        .journal
        .matching(&Method::POST, "/Services/Integration");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].header("soapaction"),
        Some("\"document/urn:crmondemand/ws/password/:SetPassword\"")
    );

    // Rotation → exactly one more SetPassword; throttling is retried after the asked delay.
    sim.throttle_next(1, 700);
    env.secret(NS, "pw", &[("password", "second")]).await;
    wait_count("SetPassword calls", 3, WAIT, || server.journal.len()).await;
    let calls = server.journal.all();
    let waited = calls[2].at.duration_since(calls[1].at);
    assert!(
        waited >= Duration::from_millis(700),
        "SBL-ODU-01005 asked for 700 ms, retried after {waited:?}"
    );
    env.wait_for::<CrmUserCredential>(NS, "hrz", WAIT, |_| {
        sim.password_of("HRZ780-KGY67").as_deref() == Some("second")
    })
    .await;
    assert_eq!(sim.sets(), 2);

    // A permanent fault stalls with the SBL code; no retry storm.
    sim.fault_next(1, "SBL-DAT-00553", "The user does not exist");
    env.apply(NS, &credential("ghost", "NOPE-1", "Orphan"))
        .await;
    let ghost = env
        .wait_current_reason::<CrmUserCredential>(NS, "ghost", "VendorFault")
        .await;
    let status = ghost.status.expect("status");
    assert!(
        condition(&status.sync.conditions, "Stalled")
            .is_some_and(|c| c.status == "True" && c.message.contains("SBL-DAT-00553"))
    );
    let before = server.journal.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        server.journal.len(),
        before,
        "a permanent fault is not retried"
    );

    // Garbage, oversized and broken answers are refused without harm and retried.
    let before = server.journal.len();
    server
        .faults
        .push(credsync_testkit::sim::Fault::Malformed, 1);
    server
        .faults
        .push(credsync_testkit::sim::Fault::Oversized, 1);
    server.faults.push(credsync_testkit::sim::Fault::Drop, 1);
    env.secret(NS, "pw", &[("password", "third")]).await;
    env.wait_for::<CrmUserCredential>(NS, "hrz", WAIT, |_| {
        sim.password_of("HRZ780-KGY67").as_deref() == Some("third")
    })
    .await;
    assert!(
        server.journal.len() >= before + 4,
        "three refused answers, then the save"
    );

    // deletionPolicy Delete is refused with a clear condition and no call.
    env.apply(NS, &credential("doomed", "DEL-1", "Delete"))
        .await;
    let refused = env
        .wait_current_reason::<CrmUserCredential>(NS, "doomed", "DeletionPolicyUnsupported")
        .await;
    let message = support::message_of(&refused, "Ready");
    assert!(
        message.contains("no delete operation") && message.contains("Orphan"),
        "{message}"
    );
    assert!(sim.password_of("DEL-1").is_none());
    assert!(refused.metadata.finalizers.unwrap_or_default().is_empty());

    // The endpoint path is not in the seed: a tenant serving it elsewhere answers the web
    // server's HTML 404. That stalls as a missing route naming the assumed path, not as a
    // vendor "not found", and is not retried.
    let elsewhere_sim = OracleSim::new("integration", "int-pw");
    let elsewhere = SimServer::start(elsewhere_sim.router_at("/OnDemand/Services/Integration"), 0)
        .await
        .expect("simulator");
    let conn: VendorConnection = support::object(
        "oracle-elsewhere",
        json!({"oracleCrmOnDemand": {"url": elsewhere.url(), "credentialsSecretRef": {"name": "oracle-creds"}}}),
    );
    env.apply(NS, &conn).await;
    let mut lost = credential("lost", "LOST-1", "Orphan");
    lost.spec.connection_ref.name = "oracle-elsewhere".into();
    env.apply(NS, &lost).await;
    let lost = env
        .wait_current_reason::<CrmUserCredential>(NS, "lost", "VendorRouteNotFound")
        .await;
    let message = support::message_of(&lost, "Ready");
    assert!(message.contains("/Services/Integration"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(elsewhere.journal.len(), 1, "a missing route is not retried");
    assert!(elsewhere_sim.password_of("LOST-1").is_none());
    env.stop().await;
}
