//! Apex ERP end to end: ErpIdentity against the ServiceStack simulator, JSON and XML, and
//! against each way a host may answer where the vendor's document is silent (casing, list
//! DTOs, date forms, no listing route, identities deleted outside credsync): credsync must
//! neither fail, duplicate, reset server-managed fields nor re-save forever.

mod support;

use std::time::Duration;

use credsync::api::{ErpIdentity, VendorConnection};
use credsync::vendors::http::DEFAULT_MAX_RESPONSE_BYTES;
use credsync_testkit::sim::SimServer;
use credsync_testkit::sim::apex::{
    ApexAuth, ApexSim, DateStyle, Dialect, Identity, JsonCasing, ListShape, UserInfo,
};
use serde_json::json;
use support::{TestEnv, WAIT, condition, current_reason};

fn connection(name: &str, url: &str, format: &str, auth: serde_json::Value) -> VendorConnection {
    support::object(
        name,
        json!({"apexErp": {"url": url, "format": format, "auth": auth}}),
    )
}

fn identity(name: &str, connection: &str, email: &str) -> ErpIdentity {
    support::object(
        name,
        json!({"connectionRef": {"name": connection}, "identityType": "User", "name": name,
                 "description": "Zoë <&> 'q' \"d\"", "isGranted": true,
                 "userInfo": {"userName": name, "email": email, "maxSessionCount": 2}}),
    )
}

async fn synced(env: &TestEnv, ns: &str, name: &str) -> ErpIdentity {
    env.wait_current_reason(ns, name, "Synced").await
}

/// A JSON Apex simulator (HTTP Basic u/p) and a VendorConnection `apex` to it in `ns`.
async fn apex_json_connection(env: &TestEnv, ns: &str) -> (ApexSim, SimServer) {
    let sim = ApexSim::new(ApexAuth::Basic("u".into(), "p".into()));
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(ns, "apex-basic", &[("username", "u"), ("password", "p")])
        .await;
    env.apply(
        ns,
        &connection(
            "apex",
            &server.url(),
            "Json",
            json!({"basicSecretRef": {"name": "apex-basic"}}),
        ),
    )
    .await;
    (sim, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_identity_create_update_drift_and_formats() {
    let ns = "erp";
    let env = TestEnv::shared_with(ns, |s| s.drift_interval = Duration::from_secs(2)).await;
    let json_sim = ApexSim::new(ApexAuth::Basic("u".into(), "p".into()));
    let xml_sim = ApexSim::new(ApexAuth::Bearer("t0ken".into()));
    let json_server = SimServer::start(json_sim.router(), 0)
        .await
        .expect("simulator");
    let xml_server = SimServer::start(xml_sim.router(), 0)
        .await
        .expect("simulator");
    env.secret(ns, "apex-basic", &[("username", "u"), ("password", "p")])
        .await;
    env.secret(ns, "apex-token", &[("token", "t0ken")]).await;
    env.apply(
        ns,
        &connection(
            "apex-json",
            &json_server.url(),
            "Json",
            json!({"basicSecretRef": {"name": "apex-basic"}}),
        ),
    )
    .await;
    env.apply(
        ns,
        &connection(
            "apex-xml",
            &xml_server.url(),
            "Xml",
            json!({"bearerSecretRef": {"name": "apex-token", "key": "token"}}),
        ),
    )
    .await;

    // Create: Ready, IdentityId in status, the record in the simulator.
    env.apply(ns, &identity("jdoe", "apex-json", "j@example.com"))
        .await;
    env.apply(ns, &identity("xdoe", "apex-xml", "x@example.com"))
        .await;
    let created = synced(&env, ns, "jdoe").await;
    let id = created
        .status
        .as_ref()
        .and_then(|s| s.identity_id)
        .expect("identityId");
    let stored: Vec<Identity> = json_sim.identities("User");
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].id, stored[0].name.as_str()), (id, "jdoe"));
    assert_eq!(stored[0].description.as_deref(), Some("Zoë <&> 'q' \"d\""));
    let xml_created = synced(&env, ns, "xdoe").await;
    assert!(xml_created.status.and_then(|s| s.identity_id).is_some());
    assert_eq!(
        xml_sim.identities("User")[0]
            .user_info
            .as_ref()
            .and_then(|u| u.email.clone())
            .as_deref(),
        Some("x@example.com")
    );
    let xml_post = xml_server
        .journal
        .matching(&axum::http::Method::POST, "/Core/")
        .remove(0);
    assert!(
        xml_post
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/xml"))
    );
    assert_eq!(xml_post.header("authorization"), Some("Bearer t0ken"));

    // Change: exactly one update, sent with the IdentityId (no new identity).
    let changed = env
        .apply(ns, &identity("jdoe", "apex-json", "new@example.com"))
        .await;
    env.wait_for::<ErpIdentity>(ns, "jdoe", WAIT, |o| {
        o.status
            .as_ref()
            .is_some_and(|s| s.sync.observed_generation == changed.metadata.generation)
            && current_reason(o).as_deref() == Some("Synced")
    })
    .await;
    assert_eq!(
        (json_sim.creates(), json_sim.saves()),
        (1, 2),
        "one create, one update"
    );
    assert_eq!(
        json_sim.identities("User")[0]
            .user_info
            .as_ref()
            .and_then(|u| u.email.clone())
            .as_deref(),
        Some("new@example.com")
    );

    // Drift: changed behind credsync's back, restored within the drift interval.
    json_sim.tamper("User", id, |i| i.description = Some("tampered".into()));
    let deadline = tokio::time::Instant::now() + WAIT;
    while json_sim.identities("User")[0].description.as_deref() != Some("Zoë <&> 'q' \"d\"") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "drift was not corrected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        json_sim.creates(),
        1,
        "drift correction updates, never creates"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_duplicate_after_a_crash_between_call_and_status() {
    let ns = "crash";
    let mut env = TestEnv::shared(ns).await;
    let (sim, server) = apex_json_connection(&env, ns).await;

    // The operator is killed while its create is in flight: the vendor saves the identity, the
    // status never learns its IdentityId.
    server.faults.set_latency(Duration::from_millis(1500));
    env.apply(ns, &identity("crashy", "apex", "c@example.com"))
        .await;
    support::wait_count("POST in flight", 1, WAIT, || {
        server
            .journal
            .matching(&axum::http::Method::POST, "/Core/")
            .len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.kill_operator().await;
    server.faults.set_latency(Duration::ZERO);
    let api = kube::Api::<ErpIdentity>::namespaced(env.client.clone(), ns);
    let after_crash = api.get("crashy").await.expect("get");
    assert!(
        after_crash
            .status
            .as_ref()
            .and_then(|s| s.identity_id)
            .is_none(),
        "the status never got the IdentityId"
    );
    // What the vendor did with the aborted call is its business; make sure it holds the record,
    // as it would had the response been lost after the save.
    if sim.identities("User").is_empty() {
        let seeded = reqwest::Client::new()
            .post(format!("{}/Core/Security/Identities/User", server.url()))
            .basic_auth("u", Some("p"))
            .json(&json!({"IdentityType": "User", "Identity": {"Id": 0, "Name": "crashy"}}))
            .send()
            .await
            .expect("seed");
        assert!(seeded.status().is_success());
    }
    assert_eq!(sim.creates(), 1);

    // After restart: found by name and updated, not created again.
    env.start_operator();
    let synced = synced(&env, ns, "crashy").await;
    assert_eq!(sim.creates(), 1, "no duplicate identity after the restart");
    assert_eq!(sim.identities("User").len(), 1);
    assert_eq!(
        synced.status.and_then(|s| s.identity_id),
        Some(sim.identities("User")[0].id)
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_errors_are_explained() {
    let ns = "errs";
    let env = TestEnv::shared(ns).await;
    let (sim, server) = apex_json_connection(&env, ns).await;

    // A validation error is permanent: Stalled with the vendor's words, not retried.
    sim.fail_next_with(1, 400, "ValidationException", "Email is not valid");
    env.apply(ns, &identity("bad", "apex", "not-an-email"))
        .await;
    let stalled: ErpIdentity = env.wait_current_reason(ns, "bad", "VendorRejected").await;
    let message = support::message_of(&stalled, "Stalled");
    assert!(
        message.contains("ValidationException") && message.contains("Email is not valid"),
        "{message}"
    );
    let posts = || {
        server
            .journal
            .matching(&axum::http::Method::POST, "/Core/")
            .len()
    };
    let before = posts();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(posts(), before, "no retry storm after a permanent error");

    // A server error is transient: retried until it passes.
    sim.fail_next_with(2, 500, "Exception", "database unavailable");
    env.apply(ns, &identity("retry", "apex", "r@example.com"))
        .await;
    synced(&env, ns, "retry").await;
    env.stop().await;
}

/// Many identities created at once share listings (the API can only list all of them): far
/// fewer GETs than creates, each identity created exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_at_once_share_listings() {
    let ns = "erp-many";
    let env = TestEnv::shared(ns).await;
    let (sim, server) = apex_json_connection(&env, ns).await;
    const N: usize = 60;
    let names: Vec<String> = (0..N).map(|i| format!("user-{i:02}")).collect();
    let identities: Vec<ErpIdentity> = names
        .iter()
        .map(|n| identity(n, "apex", "m@example.com"))
        .collect();
    futures::future::join_all(identities.iter().map(|i| env.apply(ns, i))).await;
    for n in &names {
        synced(&env, ns, n).await;
    }
    let stored = sim.identities("User");
    assert_eq!(stored.len(), N, "each identity created once");
    assert_eq!(sim.creates(), N);
    let lists = server
        .journal
        .matching(&axum::http::Method::GET, "/Core/")
        .len();
    assert!(
        (1..=N / 4).contains(&lists),
        "{lists} listings for {N} creates: lookups must share them"
    );
}

/// A tenant whose user listing is larger than one record's answer may be (1 MiB): the lookup
/// before a create reads it under the listing cap, finds an existing user by name among
/// thousands and creates only the one that is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_read_a_large_tenant() {
    let ns = "erp-large";
    let env = TestEnv::shared(ns).await;
    let (sim, _server) = apex_json_connection(&env, ns).await;
    sim.preload(
        "User",
        (0..8_000).map(|i| Identity {
            name: format!("existing-{i:05}"),
            description: Some("imported from the previous directory".into()),
            is_granted: Some(true),
            user_info: Some(UserInfo {
                user_name: Some(format!("existing-{i:05}")),
                email: Some(format!("existing-{i:05}@example.com")),
                ..UserInfo::default()
            }),
            ..Identity::default()
        }),
    );
    let listed = serde_json::to_vec(&sim.identities("User"))
        .expect("listing")
        .len();
    assert!(
        listed > DEFAULT_MAX_RESPONSE_BYTES,
        "{listed} bytes: the listing must be larger than the per-record cap"
    );
    let known = sim
        .identities("User")
        .into_iter()
        .find(|i| i.name == "existing-04321")
        .expect("preloaded");

    env.apply(ns, &identity("existing-04321", "apex", "a@example.com"))
        .await;
    env.apply(ns, &identity("newcomer", "apex", "n@example.com"))
        .await;
    let adopted = synced(&env, ns, "existing-04321").await;
    let created = synced(&env, ns, "newcomer").await;
    assert_eq!(
        adopted.status.and_then(|s| s.identity_id),
        Some(known.id),
        "the existing user is updated, not created again"
    );
    assert_eq!(sim.creates(), 1, "only the newcomer is created");
    assert_eq!(sim.identities("User").len(), 8_001);
    assert!(created.status.and_then(|s| s.identity_id).is_some());
    env.stop().await;
}

/// A simulator answering in `dialect` and a VendorConnection `conn` (Bearer) to it in `ns`.
async fn dialect_connection(
    env: &TestEnv,
    ns: &str,
    conn: &str,
    format: &str,
    dialect: Dialect,
) -> (ApexSim, SimServer) {
    let sim = ApexSim::new(ApexAuth::Bearer("t0ken".into()));
    sim.set_dialect(dialect);
    let server = SimServer::start(sim.router(), 0).await.expect("simulator");
    env.secret(ns, "apex-token", &[("token", "t0ken")]).await;
    env.apply(
        ns,
        &connection(
            conn,
            &server.url(),
            format,
            json!({"bearerSecretRef": {"name": "apex-token", "key": "token"}}),
        ),
    )
    .await;
    (sim, server)
}

/// An ErpIdentity with a birth date (compared as a date, whatever form the vendor writes).
fn identity_born(name: &str, connection: &str, email: &str) -> ErpIdentity {
    let mut identity = identity(name, connection, email);
    if let Some(user) = identity.spec.user_info.as_mut() {
        user.birth_date = Some("1990-05-01".into());
    }
    identity
}

/// Wait until `name`'s Ready condition is Synced for `generation`.
async fn synced_at(env: &TestEnv, ns: &str, name: &str, generation: Option<i64>) -> ErpIdentity {
    env.wait_for::<ErpIdentity>(ns, name, WAIT, |o| {
        o.metadata.generation == generation && current_reason(o).as_deref() == Some("Synced")
    })
    .await
}

fn requests(server: &SimServer, method: &axum::http::Method) -> usize {
    server.journal.matching(method, "/Core/").len()
}

/// Hosts answer where the seed is silent in several ways; in each, an ErpIdentity is created
/// once, updated by its IdentityId, and not saved again by drift checks (birth dates written
/// as `/Date(ms)/` or `…T00:00:00` are the same date). A host without the GET route makes the
/// connection write-only: created, then updated by status.identityId, never listed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_identity_in_every_vendor_dialect() {
    let ns = "erp-dialects";
    let env = TestEnv::shared_with(ns, |s| s.drift_interval = Duration::from_secs(2)).await;
    let d = Dialect::default();
    let variants = [
        (
            "dto",
            "Json",
            d.list_shape(ListShape::ResultDto).dates(DateStyle::Wcf),
        ),
        ("camel", "Json", d.casing(JsonCasing::Camel)),
        (
            "camel-results",
            "Json",
            d.casing(JsonCasing::Camel)
                .list_shape(ListShape::ResultsDto)
                .dates(DateStyle::Wcf),
        ),
        ("wcf-dates", "Json", d.dates(DateStyle::Wcf)),
        ("xml-wrapped", "Xml", d.list_shape(ListShape::ResultDto)),
        ("no-get", "Json", d.without_listing_route()),
        ("no-get-xml", "Xml", d.without_listing_route()),
    ];
    let mut sims = Vec::new();
    for (variant, format, dialect) in variants {
        let conn = format!("apex-{variant}");
        let (sim, server) = dialect_connection(&env, ns, &conn, format, dialect).await;
        env.apply(ns, &identity_born(variant, &conn, "a@example.com"))
            .await;
        sims.push((variant, dialect, sim, server));
    }
    for (variant, _, sim, _) in &sims {
        let created = synced(&env, ns, variant).await;
        let stored = sim.identities("User");
        assert_eq!(stored.len(), 1, "{variant}: exactly one identity");
        assert_eq!(
            created.status.and_then(|s| s.identity_id),
            Some(stored[0].id),
            "{variant}: status.identityId"
        );
    }
    // A spec change updates the same identity by its IdentityId.
    for (variant, _, _, _) in &sims {
        let conn = format!("apex-{variant}");
        env.apply(ns, &identity_born(variant, &conn, "b@example.com"))
            .await;
    }
    let mut user_ids = Vec::new();
    for (variant, _, sim, _) in &sims {
        synced_at(&env, ns, variant, Some(2)).await;
        let stored = sim.identities("User");
        assert_eq!(
            (sim.creates(), sim.saves(), stored.len()),
            (1, 2, 1),
            "{variant}: one create, one update, no duplicate"
        );
        let user = stored[0].user_info.clone().expect("UserInfo");
        assert_eq!(user.email.as_deref(), Some("b@example.com"), "{variant}");
        user_ids.push(user.user_id);
    }
    // Drift checks over several intervals: listed (readable) hosts are read, nothing is saved
    // again; write-only hosts are not called at all.
    let before: Vec<(usize, usize)> = sims
        .iter()
        .map(|(_, _, _, s)| {
            (
                requests(s, &axum::http::Method::GET),
                requests(s, &axum::http::Method::POST),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(7)).await;
    for ((variant, dialect, sim, server), (gets, posts)) in sims.iter().zip(before) {
        let (gets_now, posts_now) = (
            requests(server, &axum::http::Method::GET),
            requests(server, &axum::http::Method::POST),
        );
        assert_eq!(posts_now, posts, "{variant}: saved again by a drift check");
        if dialect.no_listing_route {
            assert_eq!(
                gets_now, 1,
                "{variant}: the missing listing is asked for once"
            );
        } else {
            assert!(
                gets_now >= gets + 2,
                "{variant}: drift was checked ({gets} → {gets_now})"
            );
        }
        assert_eq!(sim.identities("User").len(), 1, "{variant}");
    }
    // The connection says what its vendor does not serve, and what credsync does instead.
    for (variant, dialect, _, _) in &sims {
        let conn = format!("apex-{variant}");
        let listed = !dialect.no_listing_route;
        let shown = env
            .wait_for::<VendorConnection>(ns, &conn, WAIT, |c| {
                c.status.as_ref().is_some_and(|s| {
                    s.capabilities
                        .iter()
                        .any(|cap| cap.operation == "ListIdentities" && cap.supported == listed)
                })
            })
            .await;
        let status = shown.status.expect("status");
        let ready = condition(&status.sync.conditions, "Ready").expect("Ready");
        assert_eq!(ready.reason, "Valid", "{variant}");
        assert_eq!(
            ready.message.contains("ListIdentities"),
            !listed,
            "{variant}: {}",
            ready.message
        );
    }
    env.stop().await;
}

/// status.identityId that no longer exists in the vendor (deleted outside credsync) is
/// recreated, or adopted when the name exists under another IdentityId; an update keeps the
/// UserId and CreatedDate the vendor holds (a ServiceStack save would reset what is left out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_identity_ids_and_server_managed_fields() {
    let ns = "erp-stale";
    let env = TestEnv::shared_with(ns, |s| s.drift_interval = Duration::from_secs(2)).await;
    let (sim, _server) = dialect_connection(
        &env,
        ns,
        "apex",
        "Json",
        Dialect::default().dates(DateStyle::Wcf),
    )
    .await;
    let id_of = |o: &ErpIdentity| o.status.as_ref().and_then(|s| s.identity_id);

    env.apply(ns, &identity_born("keeper", "apex", "a@example.com"))
        .await;
    let first = id_of(&synced_at(&env, ns, "keeper", Some(1)).await).expect("identityId");
    let created = sim.identities("User")[0].user_info.clone().expect("user");
    assert_ne!(created.user_id, 0);

    // Update: UserId and CreatedDate as the vendor holds them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.apply(ns, &identity_born("keeper", "apex", "b@example.com"))
        .await;
    synced_at(&env, ns, "keeper", Some(2)).await;
    let updated = sim.identities("User")[0].user_info.clone().expect("user");
    assert_eq!(updated.email.as_deref(), Some("b@example.com"));
    assert_eq!(
        (updated.user_id, updated.created_date),
        (created.user_id, created.created_date),
        "the update kept the vendor's UserId and CreatedDate"
    );

    // Deleted outside credsync: the next drift check creates it again.
    sim.remove("User", first);
    let recreated = env
        .wait_for::<ErpIdentity>(ns, "keeper", WAIT, |o| {
            id_of(o).is_some_and(|id| id != first) && current_reason(o).as_deref() == Some("Synced")
        })
        .await;
    let second = id_of(&recreated).expect("identityId");
    assert_eq!(sim.creates(), 2);
    assert_eq!(sim.identities("User").len(), 1);
    assert_eq!(sim.identities("User")[0].id, second);

    // Deleted, and the name exists under another IdentityId: adopted, not duplicated.
    let mut restored = sim.remove("User", second).expect("stored");
    restored.description = Some("restored from a backup".into());
    sim.preload("User", [restored]);
    let third = sim.identities("User")[0].id;
    let adopted = env
        .wait_for::<ErpIdentity>(ns, "keeper", WAIT, |o| {
            id_of(o) == Some(third) && current_reason(o).as_deref() == Some("Synced")
        })
        .await;
    assert_eq!(id_of(&adopted), Some(third));
    assert_eq!(sim.creates(), 2, "adopted by name, not created");
    assert_eq!(sim.identities("User").len(), 1);
    // ... and brought back to the spec (the drift check saw the description differ).
    let deadline = tokio::time::Instant::now() + WAIT;
    while sim.identities("User")[0].description.as_deref() != Some("Zoë <&> 'q' \"d\"") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not restored to the spec"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Write-only host: a stale IdentityId is answered 404 by the save; created again.
    let (wo_sim, _wo_server) = dialect_connection(
        &env,
        ns,
        "apex-wo",
        "Json",
        Dialect::default().without_listing_route(),
    )
    .await;
    env.apply(ns, &identity_born("writer", "apex-wo", "a@example.com"))
        .await;
    let wo_first = id_of(&synced_at(&env, ns, "writer", Some(1)).await).expect("identityId");
    wo_sim.remove("User", wo_first);
    env.apply(ns, &identity_born("writer", "apex-wo", "b@example.com"))
        .await;
    let wo_again = synced_at(&env, ns, "writer", Some(2)).await;
    assert_ne!(id_of(&wo_again), Some(wo_first));
    assert_eq!(id_of(&wo_again), Some(wo_sim.identities("User")[0].id));
    assert_eq!((wo_sim.creates(), wo_sim.identities("User").len()), (2, 1));
    env.stop().await;
}
