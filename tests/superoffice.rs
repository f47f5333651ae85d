//! SuperOffice end to end: CrmUserCredential over SOAP 1.1, SOAP 1.2 and REST.

mod support;

use std::time::Duration;

use axum::http::Method;
use credsync::api::{CrmUserCredential, VendorConnection};
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::superoffice::SuperOfficeSim;
use serde_json::json;
use support::{TestEnv, WAIT, condition, wait_count};

fn connection(
    name: &str,
    url: &str,
    api: &str,
    soap_version: &str,
    auth: serde_json::Value,
) -> VendorConnection {
    support::object(
        name,
        json!({"superOffice": {"url": url, "api": api, "soapVersion": soap_version,
                                 "applicationTokenSecretRef": {"name": "so", "key": "appToken"}, "auth": auth}}),
    )
}

/// A REST connection `name` to `url` logging in with the user and password of Secret `so`.
fn rest_with_basic_login(name: &str, url: &str) -> VendorConnection {
    connection(
        name,
        url,
        "Rest",
        "1.1",
        json!({"basicSecretRef": {"name": "so"}}),
    )
}

fn credential(
    name: &str,
    connection: &str,
    associate: Option<i32>,
    comment: &str,
    secret_key: &str,
) -> CrmUserCredential {
    let mut so = json!({"type": "imap", "publicValue": format!("mail.example.com/{name}"), "comment": comment,
                        "validFrom": "2026-01-01T00:00:00Z",
                        "secretValueFrom": {"secretKeyRef": {"name": "pw", "key": secret_key}}});
    if let Some(a) = associate {
        so["associateId"] = a.into();
    }
    support::object(
        name,
        json!({"connectionRef": {"name": connection}, "deletionPolicy": "Delete", "superOffice": so}),
    )
}

/// Secret `so` in `ns` with every login the simulators accept: application token, ticket, and
/// user and password.
async fn so_logins(env: &TestEnv, ns: &str) {
    env.secret(
        ns,
        "so",
        &[
            ("appToken", "app-1"),
            ("ticket", "7T:ticket=="),
            ("username", "so-user"),
            ("password", "so-pass"),
        ],
    )
    .await;
}

async fn synced(env: &TestEnv, ns: &str, name: &str) {
    env.wait_current_reason::<CrmUserCredential>(ns, name, "Synced")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superoffice_soap_and_rest_end_to_end() {
    const NS: &str = "so-end-to-end";
    let env = TestEnv::shared_with(NS, |s| s.drift_interval = Duration::from_secs(2)).await;
    let sim = SuperOfficeSim::new("7T:ticket==", Some("app-1")).with_basic("so-user", "so-pass");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    so_logins(&env, NS).await;
    env.secret(
        NS,
        "pw",
        &[("password", "s3cr<e>t&'\""), ("long", &"x".repeat(71))],
    )
    .await;
    let ticket = json!({"ticketSecretRef": {"name": "so", "key": "ticket"}});
    env.apply(
        NS,
        &connection("soap11", &server.url(), "Soap", "1.1", ticket.clone()),
    )
    .await;
    env.apply(
        NS,
        &connection("soap12", &server.url(), "Soap", "1.2", ticket.clone()),
    )
    .await;
    env.apply(NS, &rest_with_basic_login("rest", &server.url()))
        .await;
    env.apply(
        NS,
        &connection("rest-ticket", &server.url(), "Rest", "1.1", ticket),
    )
    .await;

    for (name, conn, associate) in [
        ("a11", "soap11", None),
        ("a12", "soap12", Some(42)),
        ("ar", "rest", None),
        ("at", "rest-ticket", Some(7)),
    ] {
        env.apply(
            NS,
            &credential(name, conn, associate, "Zoë <&>", "password"),
        )
        .await;
    }
    for name in ["a11", "a12", "ar", "at"] {
        synced(&env, NS, name).await;
    }
    for (associate, name) in [(0, "a11"), (42, "a12"), (0, "ar"), (7, "at")] {
        let stored = sim
            .get(associate, "imap", &format!("mail.example.com/{name}"))
            .expect("stored");
        assert_eq!(
            (
                stored.secret_value.as_str(),
                stored.comment.as_str(),
                stored.is_active
            ),
            ("s3cr<e>t&'\"", "Zoë <&>", true)
        );
    }
    let soap_calls = server.journal.matching(&Method::POST, "/Remote/");
    assert!(soap_calls.iter().any(|c| {
        c.header("content-type")
            .is_some_and(|t| t.starts_with("text/xml"))
            && c.header("soapaction").is_some()
    }));
    assert!(soap_calls.iter().any(|c| {
        c.header("content-type")
            .is_some_and(|t| t.starts_with("application/soap+xml"))
    }));
    let rest_calls = server.journal.matching(
        &Method::POST,
        "/api/v1/Agents/User/SaveUntrustedCredentials",
    );
    assert!(
        rest_calls
            .iter()
            .all(|c| c.header("so-apptoken") == Some("app-1"))
    );
    assert!(
        server
            .journal
            .matching(
                &Method::POST,
                "/api/v1/Agents/User/SaveUntrustedCredentialsForAssociate"
            )
            .len()
            == 1
    );

    // A change is one more save; drift behind credsync's back is restored.
    let saves = sim.saves();
    env.apply(NS, &credential("ar", "rest", None, "changed", "password"))
        .await;
    synced(&env, NS, "ar").await;
    wait_count("saves", saves + 1, WAIT, || sim.saves()).await;
    sim.tamper(0, "imap", "mail.example.com/a11", |c| {
        c.comment = "tampered".into()
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim
        .get(0, "imap", "mail.example.com/a11")
        .map(|c| c.comment)
        != Some("Zoë <&>".into())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "drift was not corrected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Too long for SuperOffice: Stalled, naming the Secret and key, never the value, no call.
    let calls = server.journal.len();
    env.apply(NS, &credential("toolong", "rest", None, "c", "long"))
        .await;
    let stalled = env
        .wait_current_reason::<CrmUserCredential>(NS, "toolong", "SecretValueTooLong")
        .await;
    let message = support::message_of(&stalled, "Stalled");
    assert!(
        message.contains("pw")
            && message.contains("long")
            && message.contains("70")
            && !message.contains("xxxx"),
        "{message}"
    );

    // Succeeded=false with ExceptionInfo: a permanent error with the vendor's words.
    sim.fail_next_with_exception(1, "Credential type 'imap' is not enabled");
    env.apply(NS, &credential("refused", "soap11", None, "c", "password"))
        .await;
    let refused = env
        .wait_current_reason::<CrmUserCredential>(NS, "refused", "VendorRejected")
        .await;
    let status = refused.status.expect("status");
    assert!(
        condition(&status.sync.conditions, "Ready")
            .is_some_and(|c| c.message.contains("not enabled"))
    );
    assert!(server.journal.len() > calls);

    // Deletion with policy Delete removes the record, over SOAP and REST.
    for name in ["a12", "ar"] {
        env.delete::<CrmUserCredential>(NS, name).await;
        env.wait_gone::<CrmUserCredential>(NS, name, WAIT).await;
    }
    assert!(sim.get(42, "imap", "mail.example.com/a12").is_none());
    assert!(sim.get(0, "imap", "mail.example.com/ar").is_none());
    assert!(sim.get(0, "imap", "mail.example.com/a11").is_some());
    env.stop().await;
}

/// Where the seeds are silent the installation may answer differently from credsync's first
/// guess: dates without an offset and camelCase REST keys must not read as drift (no re-save
/// every drift interval); an installation without Remove blocks the deletion instead of
/// dropping the finalizer; a Fault's ExceptionInfo gives SuperOffice's own words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superoffice_answers_where_the_seeds_are_silent() {
    const DRIFT: Duration = Duration::from_secs(2);
    const NS: &str = "so-seeds-silent";
    let env = TestEnv::shared_with(NS, |s| s.drift_interval = DRIFT).await;
    let sim = SuperOfficeSim::new("7T:ticket==", Some("app-1"))
        .with_basic("so-user", "so-pass")
        .dates_without_offset()
        .camel_case()
        .without_remove();
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    so_logins(&env, NS).await;
    env.secret(NS, "pw", &[("password", "pw-1")]).await;
    let ticket = json!({"ticketSecretRef": {"name": "so", "key": "ticket"}});
    for (name, api, version, auth) in [
        ("soap11", "Soap", "1.1", ticket.clone()),
        ("soap12", "Soap", "1.2", ticket.clone()),
        (
            "rest",
            "Rest",
            "1.1",
            json!({"basicSecretRef": {"name": "so"}}),
        ),
    ] {
        env.apply(NS, &connection(name, &server.url(), api, version, auth))
            .await;
        env.apply(
            NS,
            &credential(&format!("d-{name}"), name, None, "c", "password"),
        )
        .await;
    }
    for name in ["d-soap11", "d-soap12", "d-rest"] {
        synced(&env, NS, name).await;
    }

    // Several drift intervals: every credential is read back, none is saved again.
    let saves = sim.saves();
    let gets = || {
        server
            .journal
            .all()
            .iter()
            .filter(|r| {
                r.path.contains("GetUntrustedCredentials")
                    || r.text().contains("GetUntrustedCredentials")
            })
            .count()
    };
    let gets_before = gets();
    tokio::time::sleep(DRIFT * 4).await;
    eprintln!(
        "offset-less dates: {} drift reads, {} saves over {:?}",
        gets() - gets_before,
        sim.saves() - saves,
        DRIFT * 4
    );
    assert!(
        gets() >= gets_before + 6,
        "drift was checked ({} reads)",
        gets() - gets_before
    );
    assert_eq!(
        sim.saves(),
        saves,
        "no re-save for a date written without an offset"
    );

    // No Get operation: asked once, recorded, then the credential is write-only (no drift
    // reads, no re-saves) and stays Ready.
    let no_get_sim = SuperOfficeSim::new("7T:ticket==", Some("app-1"))
        .with_basic("so-user", "so-pass")
        .without_get();
    let no_get = SimServer::start(no_get_sim.router(), 0)
        .await
        .expect("simulator");
    env.apply(NS, &rest_with_basic_login("rest-noget", &no_get.url()))
        .await;
    env.apply(
        NS,
        &credential("d-noget", "rest-noget", None, "c", "password"),
    )
    .await;
    synced(&env, NS, "d-noget").await;
    tokio::time::sleep(DRIFT * 4).await;
    let no_get_reads = no_get
        .journal
        .matching(&Method::POST, "/api/v1/Agents/User/GetUntrustedCredentials")
        .len();
    assert_eq!(no_get_reads, 1, "a missing Get is asked once");
    assert_eq!(no_get_sim.saves(), 1, "and the credential is not re-saved");
    synced(&env, NS, "d-noget").await;

    // No Remove operation (SOAP: ActionNotSupported; REST: ASP.NET's routing 404): deletion
    // is blocked with the way out, the finalizer stays, the credentials stay in SuperOffice.
    for name in ["d-soap11", "d-rest"] {
        env.deletion_blocked::<CrmUserCredential>(NS, name, "no such delete operation")
            .await;
        let public = format!("mail.example.com/{name}");
        assert!(
            sim.get(0, "imap", &public).is_some(),
            "{name} still in SuperOffice"
        );
    }

    // A Fault whose faultstring says nothing: the ExceptionInfo beside it is what is shown.
    let faulty_sim = SuperOfficeSim::new("7T:ticket==", Some("app-1"));
    let faulty = SimServer::start(faulty_sim.router(), 0)
        .await
        .expect("simulator");
    faulty_sim.fail_next_with_fault(1, "Credential type 'imap' is not enabled");
    env.apply(
        NS,
        &connection("faulty", &faulty.url(), "Soap", "1.2", ticket),
    )
    .await;
    let mut refused = credential("refused", "faulty", None, "c", "password");
    refused.spec.deletion_policy = serde_json::from_value(json!("Orphan")).expect("policy");
    env.apply(NS, &refused).await;
    let refused = env
        .wait_current_reason::<CrmUserCredential>(NS, "refused", "VendorRejected")
        .await;
    let message = support::ready_message(&refused);
    assert!(message.contains("not enabled"), "{message}");
    env.stop().await;
}
