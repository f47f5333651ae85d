//! HelloID end to end: SsoAppCredential against the HelloID simulator and a real API server.

mod support;

use std::time::Duration;

use axum::http::Method;
use base64::Engine;
use credsync::api::{SsoAppCredential, VendorConnection};
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::helloid::{CredentialRoutes, HelloIdSim};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use support::{TestEnv, WAIT, condition, is_true, ready_reason, wait_count};

const USER: &str = "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f";
const APP: &str = "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f";

fn connection(url: &str) -> VendorConnection {
    support::object(
        "helloid",
        json!({"helloId": {"url": url, "apiKeySecretRef": {"name": "helloid-api"}}}),
    )
}

fn credential(user_name: &str, policy: &str) -> SsoAppCredential {
    support::object(
        "mike-github",
        json!({
            "connectionRef": {"name": "helloid"},
            "userGuid": USER, "applicationGuid": APP,
            "credentials": [
                {"function": "UserName", "value": user_name},
                {"function": "Password", "valueFrom": {"secretKeyRef": {"name": "mike-password", "key": "password"}}}
            ],
            "deletionPolicy": policy
        }),
    )
}

fn posts(server: &SimServer) -> Vec<credsync_testkit::sim::Recorded> {
    server.journal.matching(&Method::POST, "/api/v1/enduser/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_app_credential_end_to_end() {
    const NS: &str = "sso-end-to-end";
    let env = TestEnv::shared(NS).await;
    let sim = HelloIdSim::new("api-key-1", "api-secret-1");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(
        NS,
        "helloid-api",
        &[("key", "api-key-1"), ("secret", "api-secret-1")],
    )
    .await;
    env.secret(NS, "mike-password", &[("password", "g!sg*Z_x5")])
        .await;
    env.apply(NS, &connection(&server.url())).await;
    let applied = env.apply(NS, &credential("Mike", "Delete")).await;

    // Ready, with exactly one POST of the seed's shape.
    let ready = env
        .wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, |o| {
            o.status
                .as_ref()
                .is_some_and(|s| is_true(&s.sync.conditions, "Ready", o.metadata.generation))
        })
        .await;
    let calls = posts(&server);
    assert_eq!(calls.len(), 1, "exactly one vendor call");
    let call = &calls[0];
    assert_eq!(call.path, format!("/api/v1/enduser/{USER}/credential"));
    let body: serde_json::Value = serde_json::from_slice(&call.body).expect("json body");
    assert_eq!(
        body,
        json!({"ApplicationGUID": APP, "CredSetName": "Default", "Credentials": [
            {"Function": "UserName", "Value": "Mike", "UserEditAllowed": true},
            {"Function": "Password", "Value": "g!sg*Z_x5", "UserEditAllowed": true}]})
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("api-key-1:api-secret-1");
    assert_eq!(
        call.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert!(
        call.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let status = ready.status.clone().expect("status");
    assert_eq!(status.sync.observed_generation, applied.metadata.generation);
    assert!(
        status.credential_set_guid.is_some(),
        "credentialSetGuid from the response"
    );
    let fingerprint = status
        .sync
        .applied_fingerprint
        .clone()
        .expect("fingerprint");
    assert!(fingerprint.starts_with("hmac-sha256-128:"));
    assert!(
        !serde_json::to_string(&status)
            .expect("json")
            .contains("g!sg*Z_x5")
    );
    assert!(
        sim.get(USER, APP, "Default")
            .is_some_and(|s| s.credentials[1].value == "g!sg*Z_x5")
    );
    assert!(
        support::holds_cleanup_finalizer(&ready),
        "Delete policy holds a finalizer"
    );

    // The same object applied again, and a status write by someone else: no second call.
    env.apply(NS, &credential("Mike", "Delete")).await;
    let api: Api<SsoAppCredential> = Api::namespaced(env.client.clone(), NS);
    api.patch_status(
        "mike-github",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"lastSyncedTime": "2020-01-01T00:00:00Z"}})),
    )
    .await
    .expect("status write");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        posts(&server).len(),
        1,
        "no vendor call over 10 s for an unchanged object"
    );

    // A spec change: exactly one more call, and observedGeneration follows.
    let changed = env.apply(NS, &credential("Michael", "Delete")).await;
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, |o| {
        o.status
            .as_ref()
            .is_some_and(|s| is_true(&s.sync.conditions, "Ready", changed.metadata.generation))
    })
    .await;
    wait_count("POSTs", 2, WAIT, || posts(&server).len()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        posts(&server).len(),
        2,
        "exactly one call for one spec change"
    );
    assert!(
        sim.get(USER, APP, "Default")
            .is_some_and(|s| s.credentials[0].value == "Michael")
    );

    // Rotating the Secret pushes the new value; rewriting it unchanged does not.
    let rotated = std::time::Instant::now();
    env.secret(NS, "mike-password", &[("password", "n3w-Pa55")])
        .await;
    wait_count("POSTs", 3, WAIT, || posts(&server).len()).await;
    let pushed = posts(&server)[2].at.duration_since(rotated);
    eprintln!("rotation: Secret update to vendor call took {pushed:?} (target < 2 s)");
    assert!(
        sim.get(USER, APP, "Default")
            .is_some_and(|s| s.credentials[1].value == "n3w-Pa55")
    );
    env.secret(NS, "mike-password", &[("password", "n3w-Pa55")])
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        posts(&server).len(),
        3,
        "same-value Secret rewrite calls nothing"
    );

    // kubectl shows the columns.
    let out = env
        .cp
        .kubectl()
        .args(["get", "credsync", "-A"])
        .output()
        .expect("kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl get credsync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = text.lines().next().unwrap_or_default();
    for column in ["READY", "REASON", "CONNECTION", "LAST-SYNCED", "AGE"] {
        assert!(header.contains(column), "column {column} in {header:?}");
    }
    // Other tests' objects may be listed too (a shared control plane): ours must say Synced.
    assert!(
        text.lines()
            .any(|l| l.contains("mike-github") && l.contains("Synced")),
        "{text}"
    );

    // kubectl describe shows the conditions and the events with their reasons (events are
    // published in the background, so give them a moment).
    let mut described = String::new();
    for _ in 0..50 {
        let out = env
            .cp
            .kubectl()
            .args(["describe", "ssoappcredential", "mike-github", "-n", NS])
            .output()
            .expect("kubectl describe");
        described = String::from_utf8_lossy(&out.stdout).into_owned();
        if synced_event(&described) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        described.contains("Events:") && synced_event(&described),
        "{described}"
    );
    assert!(!described.contains("g!sg*Z_x5") && !described.contains("n3w-Pa55"));

    // Deletion with policy Delete removes the record, then the object.
    env.delete::<SsoAppCredential>(NS, "mike-github").await;
    env.wait_gone::<SsoAppCredential>(NS, "mike-github", WAIT)
        .await;
    assert!(
        sim.get(USER, APP, "Default").is_none(),
        "credential set deleted in HelloID"
    );
    assert_eq!(
        server
            .journal
            .matching(&Method::DELETE, "/api/v1/credentialset/")
            .len(),
        1
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_explained_and_recover() {
    const NS: &str = "sso-failures";
    let env = TestEnv::shared(NS).await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(NS, "helloid-api", &[("key", "k"), ("secret", "wrong")])
        .await;
    env.apply(NS, &connection(&server.url())).await;
    env.apply(NS, &credential("Mike", "Orphan")).await;

    // The password Secret is missing: Stalled, naming Secret and key.
    let stalled = env
        .wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, |o| {
            o.status
                .as_ref()
                .is_some_and(|s| is_true(&s.sync.conditions, "Stalled", o.metadata.generation))
        })
        .await;
    let conds = &stalled.status.as_ref().expect("status").sync.conditions;
    let ready = condition(conds, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(ready.message.contains("mike-password"), "{}", ready.message);
    assert!(posts(&server).is_empty());

    // The Secret appears; the API key is wrong: 401 → Stalled VendorUnauthorized, no retry storm.
    env.secret(NS, "mike-password", &[("password", "pw-1")])
        .await;
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, |o| {
        o.status
            .as_ref()
            .and_then(|s| condition(&s.sync.conditions, "Ready"))
            .is_some_and(|c| c.reason == "VendorUnauthorized")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(posts(&server).len(), 1, "a permanent error is not retried");

    // The same credentials earn the same refusal: neither the connection's Secret rewritten with
    // the same values (and a key more) nor a touch of the connection that leaves its spec alone
    // sends the request again.
    env.secret(
        NS,
        "helloid-api",
        &[("key", "k"), ("secret", "wrong"), ("note", "rotate soon")],
    )
    .await;
    let mut touched = connection(&server.url());
    touched.metadata.annotations = Some([("example.com/owner".into(), "team-a".into())].into());
    env.apply(NS, &touched).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        posts(&server).len(),
        1,
        "nothing changed that could change the answer"
    );

    // Fixing the connection's Secret recovers by itself.
    env.secret(NS, "helloid-api", &[("key", "k"), ("secret", "s")])
        .await;
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, |o| {
        o.status
            .as_ref()
            .is_some_and(|s| is_true(&s.sync.conditions, "Ready", o.metadata.generation))
    })
    .await;

    // A transient outage: Reconciling, retried with backoff, Ready after recovery.
    server
        .faults
        .push(credsync_testkit::sim::Fault::Unavailable, 3);
    env.secret(NS, "mike-password", &[("password", "pw-2")])
        .await;
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, |o| {
        o.status.as_ref().is_some_and(|s| {
            is_true(&s.sync.conditions, "Ready", o.metadata.generation)
                && sim
                    .get(USER, APP, "Default")
                    .is_some_and(|c| c.credentials[1].value == "pw-2")
        })
    })
    .await;
    let n = posts(&server).len();
    assert!(
        (5..=6).contains(&n),
        "3 failures + 1 success after the earlier 2 calls, saw {n}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_objects_are_refused_by_the_api_server() {
    const NS: &str = "invalid-objects";
    let env = TestEnv::shared(NS).await;
    let create = |kind: &str, plural: &str, spec: serde_json::Value| {
        let gvk = GroupVersionKind::gvk("credsync.io", "v1alpha1", kind);
        let api: Api<DynamicObject> = Api::namespaced_with(
            env.client.clone(),
            NS,
            &ApiResource::from_gvk_with_plural(&gvk, plural),
        );
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": kind, "metadata": {"name": "bad"}, "spec": spec
        }))
        .expect("object");
        async move { api.create(&PostParams::default(), &obj).await }
    };
    let err = |r: Result<DynamicObject, kube::Error>| match r {
        Err(kube::Error::Api(s)) => s.message,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let missing = err(create("SsoAppCredential", "ssoappcredentials", json!({
        "connectionRef": {"name": "x"}, "applicationGuid": APP, "credentials": [{"function": "UserName", "value": "a"}]
    }))
    .await);
    assert!(
        missing.contains("userGuid") && missing.contains("Required"),
        "{missing}"
    );
    let two = err(create("VendorConnection", "vendorconnections", json!({
        "helloId": {"url": "https://a.example", "apiKeySecretRef": {"name": "s"}},
        "apexErp": {"url": "https://b.example", "auth": {"bearerSecretRef": {"name": "s", "key": "t"}}}
    }))
    .await);
    assert!(two.contains("set exactly one vendor block"), "{two}");
    let both = err(create("SsoAppCredential", "ssoappcredentials", json!({
        "connectionRef": {"name": "x"}, "userGuid": USER, "applicationGuid": APP,
        "credentials": [{"function": "Password", "value": "a", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    }))
    .await);
    assert!(
        both.contains("set exactly one of value and valueFrom"),
        "{both}"
    );
    let long = err(create("CrmUserCredential", "crmusercredentials", json!({
        "connectionRef": {"name": "x"},
        "superOffice": {"type": "imap", "publicValue": "x".repeat(239), "secretValueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    }))
    .await);
    assert!(
        long.contains("publicValue") && long.contains("238"),
        "{long}"
    );
    env.stop().await;
}

/// A `kubectl describe` Events row of type Normal with reason Synced.
fn synced_event(described: &str) -> bool {
    described
        .lines()
        .any(|l| l.split_whitespace().take(2).eq(["Normal", "Synced"]))
}

/// A connection's status follows its Secret: created before the Secret it says SecretNotFound;
/// once the Secret appears it turns Ready without any edit to the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_status_follows_its_secret() {
    let ns = "conn-secret";
    let env = TestEnv::shared(ns).await;
    let sim = HelloIdSim::new("k3y", "s3cret");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.apply(
        ns,
        &support::helloid_connection("late", &server.url(), json!({"name": "late-api"})),
    )
    .await;
    let reason = |c: &VendorConnection| {
        c.status
            .as_ref()
            .and_then(|s| condition(&s.sync.conditions, "Ready"))
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    env.wait_for::<VendorConnection>(ns, "late", WAIT, |c| {
        reason(c).is_some_and(|(_, r)| r == "SecretNotFound")
    })
    .await;
    env.secret(ns, "late-api", &[("key", "k3y"), ("secret", "s3cret")])
        .await;
    env.wait_for::<VendorConnection>(ns, "late", WAIT, |c| {
        reason(c).is_some_and(|(s, _)| s == "True")
    })
    .await;
}

/// A connection deleted: its resources say so. Created again under the same name, now pointing
/// at another system (its generation starts at 1 again): the resource follows it there, on a new
/// client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_created_again_gets_a_new_client() {
    const NS: &str = "connection-recreated";
    let env = TestEnv::shared(NS).await;
    let old_sim = HelloIdSim::new("k", "s");
    let old = SimServer::start(old_sim.router(), 0)
        .await
        .expect("simulator");
    let new_sim = HelloIdSim::new("k", "s");
    let new = SimServer::start(new_sim.router(), 0)
        .await
        .expect("simulator");
    env.secret(NS, "helloid-api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret(NS, "mike-password", &[("password", "pw-1")])
        .await;
    env.apply(NS, &connection(&old.url())).await;
    env.apply(NS, &credential("Mike", "Orphan")).await;
    let ready = |o: &SsoAppCredential| {
        o.status
            .as_ref()
            .is_some_and(|s| is_true(&s.sync.conditions, "Ready", o.metadata.generation))
    };
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, ready)
        .await;
    assert!(old_sim.get(USER, APP, "Default").is_some());

    // Deleted: the resource says so at once (a deletion reaches no connection reconcile).
    env.delete::<VendorConnection>(NS, "helloid").await;
    env.wait_gone::<VendorConnection>(NS, "helloid", WAIT).await;
    env.wait_for::<SsoAppCredential>(NS, "mike-github", Duration::from_secs(5), |o| {
        ready_reason(o).as_deref() == Some("ConnectionNotFound")
    })
    .await;
    let again = env.apply(NS, &connection(&new.url())).await;
    assert_eq!(again.metadata.generation, Some(1));
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, |o| {
        ready(o) && new_sim.get(USER, APP, "Default").is_some()
    })
    .await;
    assert_eq!(posts(&old).len(), 1, "nothing more went to the old system");
    env.stop().await;
}

/// A resource that names a connection before it exists follows the connection as it appears:
/// first its broken state (its Secret is missing), then Ready once the Secret is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_appears_later_is_followed() {
    const NS: &str = "connection-later";
    let env = TestEnv::shared(NS).await;
    let sim = HelloIdSim::new("k", "s");
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(NS, "mike-password", &[("password", "pw-1")])
        .await;
    let reason_is =
        |want: &'static str| move |o: &SsoAppCredential| ready_reason(o).as_deref() == Some(want);
    env.apply(NS, &credential("Mike", "Orphan")).await;
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, reason_is("ConnectionNotFound"))
        .await;
    env.apply(NS, &connection(&server.url())).await;
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, reason_is("SecretNotFound"))
        .await;
    env.secret(NS, "helloid-api", &[("key", "k"), ("secret", "s")])
        .await;
    env.wait_for::<SsoAppCredential>(NS, "mike-github", WAIT, reason_is("Synced"))
        .await;
    assert!(sim.get(USER, APP, "Default").is_some());
    env.stop().await;
}

/// The seed's URI table and cURL sample disagree (`enduser/{guid}/credential` vs
/// `endusers/{guid}/credentials`), and its DELETE route is not documented at all. A tenant
/// serving either path reaches Ready, and once the plural one is found the connection goes
/// there straight away. A DELETE that meets no route blocks the deletion (the credential stays
/// live, so the finalizer stays); a "not found" in HelloID's own words lets the resource go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_documented_path_and_an_undocumented_delete() {
    const NS: &str = "either-path";
    let env = TestEnv::shared(NS).await;
    env.secret(NS, "helloid-api", &[("key", "k"), ("secret", "s")])
        .await;
    env.secret(NS, "mike-password", &[("password", "pw-1")])
        .await;
    let singular_sim = HelloIdSim::new("k", "s").serving(CredentialRoutes::Singular);
    let plural_sim = HelloIdSim::new("k", "s")
        .serving(CredentialRoutes::Plural)
        .without_delete_route();
    let singular = SimServer::start(singular_sim.router(), 0)
        .await
        .expect("simulator");
    let plural = SimServer::start(plural_sim.router(), 0)
        .await
        .expect("simulator");
    for (name, server) in [("singular", &singular), ("plural", &plural)] {
        env.apply(
            NS,
            &support::helloid_connection(name, &server.url(), json!({"name": "helloid-api"})),
        )
        .await;
        env.apply(
            NS,
            &support::sso_credential(name, "VendorConnection", name, "mike-password", "password"),
        )
        .await;
    }
    let synced = |o: &SsoAppCredential| {
        o.status.as_ref().is_some_and(|s| {
            is_true(&s.sync.conditions, "Ready", o.metadata.generation)
                && s.credential_set_guid.is_some()
        })
    };
    for name in ["singular", "plural"] {
        env.wait_for::<SsoAppCredential>(NS, name, WAIT, synced)
            .await;
    }
    let tried =
        |server: &SimServer, prefix: &str| server.journal.matching(&Method::POST, prefix).len();
    let (one, many) = ("/api/v1/enduser/", "/api/v1/endusers/");
    assert_eq!(
        (tried(&singular, one), tried(&singular, many)),
        (1, 0),
        "the documented path first, and only"
    );
    assert_eq!(
        (tried(&plural, one), tried(&plural, many)),
        (1, 1),
        "the plural path after the singular one's routing 404"
    );
    assert!(
        singular_sim.get(USER, APP, "singular").is_some()
            && plural_sim.get(USER, APP, "plural").is_some()
    );

    // A rotation writes again: the plural tenant is asked on its own path straight away.
    env.secret(NS, "mike-password", &[("password", "pw-2")])
        .await;
    wait_count("plural POSTs", 2, WAIT, || tried(&plural, many)).await;
    wait_count("singular POSTs", 2, WAIT, || tried(&singular, one)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        tried(&plural, one),
        1,
        "the singular path is not tried again on this connection"
    );
    assert_eq!(tried(&singular, many), 0);

    // A base URL under which neither documented path exists: both are tried once, then the
    // resource stalls naming them, and nothing more is sent.
    let wrong_base = format!("{}/helloid", singular.url());
    env.apply(
        NS,
        &support::helloid_connection("wrong-base", &wrong_base, json!({"name": "helloid-api"})),
    )
    .await;
    let mut lost = support::sso_credential(
        "lost",
        "VendorConnection",
        "wrong-base",
        "mike-password",
        "password",
    );
    lost.spec.deletion_policy = serde_json::from_value(json!("Orphan")).expect("policy");
    env.apply(NS, &lost).await;
    let lost = env
        .wait_reason::<SsoAppCredential>(NS, "lost", "VendorRouteNotFound")
        .await;
    let message = support::ready_message(&lost);
    assert!(
        message.contains("/api/v1/enduser/{userGuid}/credential")
            && message.contains("/api/v1/endusers/{userGuid}/credentials"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        tried(&singular, "/helloid/api/v1/"),
        2,
        "each path once, no retries"
    );

    // No DELETE route: the deletion is blocked, saying why and what to do; nothing was deleted.
    env.deletion_blocked::<SsoAppCredential>(NS, "plural", "no such delete route")
        .await;
    assert!(
        plural_sim.get(USER, APP, "plural").is_some(),
        "still live in HelloID"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.wait_for::<SsoAppCredential>(NS, "plural", Duration::from_secs(1), |o| {
        ready_reason(o).as_deref() == Some("DeletionBlocked")
    })
    .await;
    // The way out the message names.
    let mut orphan = support::sso_credential(
        "plural",
        "VendorConnection",
        "plural",
        "mike-password",
        "password",
    );
    orphan.spec.deletion_policy = serde_json::from_value(json!("Orphan")).expect("policy");
    env.apply(NS, &orphan).await;
    env.wait_gone::<SsoAppCredential>(NS, "plural", WAIT).await;

    // HelloID itself says the set is not there (removed behind credsync's back): gone is gone.
    singular_sim.sets.lock().expect("sets").clear();
    env.delete::<SsoAppCredential>(NS, "singular").await;
    env.wait_gone::<SsoAppCredential>(NS, "singular", WAIT)
        .await;
    assert_eq!(
        singular
            .journal
            .matching(&Method::DELETE, "/api/v1/credentialset/")
            .len(),
        1
    );
    env.stop().await;
}
