//! What the reconciler asks of the Kubernetes API in a few key scenarios, checked against a
//! mock API server in the manner of kube-rs's controller-rs fixtures (`tower_test::mock::pair`
//! serving a `kube::Client`): each scenario lists the requests it expects, in order, and
//! answers them; anything more (a vendor call needs a binding, which would read Secrets) shows
//! up as an unexpected request.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tower_test::mock;

use super::*;
use crate::api::{SsoAppCredential, VendorConnection};

type ApiServerHandle = mock::Handle<Request<Body>, Response<Body>>;

const NAMESPACE: &str = "team";
const NAME: &str = "mike-github";
const OBJECT_PATH: &str =
    "/apis/credsync.io/v1alpha1/namespaces/team/ssoappcredentials/mike-github";

/// A context whose every API call goes to the returned mock server; the connection store holds
/// `connections`, and the record claims are rebuilt (empty).
fn context(connections: Vec<VendorConnection>) -> (Arc<Context>, ApiServerHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NAMESPACE);
    let (namespaced, mut writer) = reflector::store::<VendorConnection>();
    for conn in connections {
        writer.apply_watcher_event(&watcher::Event::Apply(conn));
    }
    let (cluster, _) = reflector::store();
    let reporter = Reporter {
        controller: "credsync".into(),
        instance: None,
    };
    let ctx = Context {
        client: client.clone(),
        events: EventPublisher::start(Recorder::new(client.clone(), reporter), 0),
        secrets: SecretReader::cached(client.clone(), None),
        fingerprint_key: FingerprintKey::random(),
        connections: ConnectionStores {
            namespaced,
            cluster,
        },
        clients: ClientCache::default(),
        transport: TransportPolicy::default(),
        drift_interval: Duration::from_secs(3600),
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
        memory: ObjectMemory::default(),
        claims: Default::default(),
        deferred_status: Default::default(),
        departed: Default::default(),
    };
    ctx.claims.rebuild(Vec::new());
    (Arc::new(ctx), handle)
}

fn helloid_connection() -> VendorConnection {
    crate::connections::resolve::helloid_connection(NAMESPACE)
}

/// An SsoAppCredential with inline values only (binding reads no Secret of its own), with
/// `extra` merged into its JSON.
fn credential(policy: &str, extra: Value) -> SsoAppCredential {
    let mut object = json!({
        "apiVersion": "credsync.io/v1alpha1",
        "kind": "SsoAppCredential",
        "metadata": {
            "name": NAME, "namespace": NAMESPACE, "uid": "obj-uid",
            "resourceVersion": "7", "generation": 3
        },
        "spec": {
            "connectionRef": {"name": "helloid"},
            "userGuid": "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f",
            "applicationGuid": "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f",
            "credSetName": "Default",
            "credentials": [{"function": "UserName", "value": "Mike"}],
            "deletionPolicy": policy
        }
    });
    merge(&mut object, extra);
    serde_json::from_value(object).expect("SsoAppCredential")
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}

fn ok(body: &Value) -> Response<Body> {
    Response::builder()
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

/// The next request: its method, path, content type and JSON body, answered with `answer`.
async fn expect_request(
    handle: &mut ApiServerHandle,
    answer: Value,
) -> (Method, String, String, Value) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a request in time")
        .expect("a request");
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = request.into_body().collect_bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    send.send_response(ok(&answer));
    (method, path, content_type, body)
}

/// The next request, answered with a 409 Conflict: its method and path.
async fn expect_request_in_conflict(handle: &mut ApiServerHandle) -> (Method, String) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a request in time")
        .expect("a request");
    let conflict = json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Conflict",
        "message": "the object has been modified", "code": 409
    });
    send.send_response(
        Response::builder()
            .status(409)
            .body(Body::from(serde_json::to_vec(&conflict).expect("json")))
            .expect("response"),
    );
    (request.method().clone(), request.uri().path().to_string())
}

/// No request follows.
async fn expect_no_more(handle: &mut ApiServerHandle) {
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
    {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

#[tokio::test]
async fn a_new_delete_policy_object_gets_the_finalizer_before_any_vendor_call() {
    let (ctx, mut api) = context(vec![helloid_connection()]);
    let obj = Arc::new(credential("Delete", json!({})));
    let answered = obj.clone();
    let server = tokio::spawn(async move {
        // Binding builds the connection's client from its Secret (no vendor call)...
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "helloid-api", "namespace": NAMESPACE},
            "data": {"key": "a2V5", "secret": "c2VjcmV0"}
        });
        let (method, path, _, _) = expect_request(&mut api, secret).await;
        assert_eq!(
            (method, path.as_str()),
            (Method::GET, "/api/v1/namespaces/team/secrets/helloid-api")
        );
        // ...then the finalizer goes on, guarded by a test that the finalizers are as read.
        let answer = serde_json::to_value(&*answered).expect("json");
        let (method, path, content_type, body) = expect_request(&mut api, answer).await;
        assert_eq!((method, path.as_str()), (Method::PATCH, OBJECT_PATH));
        assert_eq!(content_type, "application/json-patch+json");
        assert_eq!(
            body,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}
            ])
        );
        expect_no_more(&mut api).await;
    });
    let action = reconcile(obj, ctx.clone()).await.expect("reconcile");
    assert_eq!(
        action,
        Action::await_change(),
        "the finalizer's own watch event brings the object back"
    );
    server.await.expect("API expectations");
}

#[tokio::test]
async fn a_paused_object_whose_spec_changed_turns_ready_false_paused_without_binding() {
    let (ctx, mut api) = context(vec![helloid_connection()]);
    // Ready for generation 2; the spec is at generation 3.
    let obj = Arc::new(credential(
        "Orphan",
        json!({
            "metadata": {"annotations": {PAUSED_ANNOTATION: "true"}},
            "status": {
                "appliedFingerprint": "hmac-sha256:old",
                "observedGeneration": 2,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Synced", "message": "in sync",
                    "observedGeneration": 2, "lastTransitionTime": "2026-11-28T12:00:00Z"
                }]
            }
        }),
    ));
    let answered = obj.clone();
    let server = tokio::spawn(async move {
        let answer = serde_json::to_value(&*answered).expect("json");
        let (method, path, content_type, body) = expect_request(&mut api, answer).await;
        assert_eq!(
            (method, path.as_str()),
            (Method::PUT, format!("{OBJECT_PATH}/status").as_str())
        );
        assert_eq!(content_type, "application/json");
        assert_eq!(
            body["metadata"]["resourceVersion"], "7",
            "replaces only the object as read"
        );
        let status = &body["status"];
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(
            status["appliedFingerprint"], "hmac-sha256:old",
            "what was applied stays on record"
        );
        let conditions = status["conditions"].as_array().expect("conditions");
        let ready = conditions
            .iter()
            .find(|c| c["type"] == "Ready")
            .expect("Ready");
        assert_eq!(
            (
                &ready["status"],
                &ready["reason"],
                &ready["observedGeneration"]
            ),
            (&json!("False"), &json!("Paused"), &json!(3))
        );
        assert!(
            conditions.iter().all(|c| c["type"] == "Ready"),
            "neither Reconciling nor Stalled while paused: {conditions:?}"
        );
        expect_no_more(&mut api).await;
    });
    let action = reconcile(obj, ctx.clone()).await.expect("reconcile");
    assert_eq!(
        action,
        Action::await_change(),
        "paused until the annotation goes"
    );
    server.await.expect("API expectations");
}

#[tokio::test]
async fn a_deleted_orphan_object_lets_go_without_binding_or_vendor_calls() {
    // No connection at all: binding would fail, so letting go proves none was tried.
    let (ctx, mut api) = context(Vec::new());
    let obj = Arc::new(credential(
        "Orphan",
        json!({"metadata": {
            "finalizers": [FINALIZER],
            "deletionTimestamp": "2026-11-28T12:00:00Z"
        }}),
    ));
    ctx.memory.count_failure("obj-uid");
    let answered = obj.clone();
    let server = tokio::spawn(async move {
        let answer = serde_json::to_value(&*answered).expect("json");
        let (method, path, content_type, body) = expect_request(&mut api, answer).await;
        assert_eq!((method, path.as_str()), (Method::PATCH, OBJECT_PATH));
        assert_eq!(content_type, "application/json-patch+json");
        assert_eq!(
            body,
            json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/0"}
            ])
        );
        expect_no_more(&mut api).await;
    });
    let action = reconcile(obj, ctx.clone()).await.expect("reconcile");
    assert_eq!(action, Action::await_change());
    server.await.expect("API expectations");
    assert!(ctx.memory.is_empty(), "a deleted object is forgotten");
}

/// A paused object whose status still shows an applied fingerprint: its reconcile writes the
/// status (Paused) and calls nobody.
fn paused_with_fingerprint() -> Arc<SsoAppCredential> {
    Arc::new(credential(
        "Orphan",
        json!({
            "metadata": {"annotations": {PAUSED_ANNOTATION: "true"}},
            "status": {"appliedFingerprint": "hmac-sha256:old", "observedGeneration": 2}
        }),
    ))
}

#[tokio::test]
async fn a_status_replace_that_finds_the_object_moved_on_is_owed_not_forced() {
    let (ctx, mut api) = context(vec![helloid_connection()]);
    let obj = paused_with_fingerprint();
    let server = tokio::spawn(async move {
        let (method, path) = expect_request_in_conflict(&mut api).await;
        assert_eq!(
            (method, path.as_str()),
            (Method::PUT, format!("{OBJECT_PATH}/status").as_str())
        );
        // No patch over whatever changed the object.
        expect_no_more(&mut api).await;
    });
    let action = reconcile(obj, ctx.clone()).await.expect("reconcile");
    assert_eq!(action, Action::await_change());
    server.await.expect("API expectations");
    assert_eq!(
        ctx.deferred_status.owed(),
        1,
        "the write is owed: the next reconcile, on the newer object, makes it"
    );
}

#[tokio::test]
async fn after_an_unknown_outcome_the_status_fingerprint_no_longer_vouches() {
    let (ctx, mut api) = context(vec![helloid_connection()]);
    // A write's outcome was unknown since, and the write that dropped the fingerprint never
    // landed.
    let obj = paused_with_fingerprint();
    ctx.memory.doubt_applied("obj-uid");
    let answered = obj.clone();
    let server = tokio::spawn(async move {
        let answer = serde_json::to_value(&*answered).expect("json");
        let (method, _, _, body) = expect_request(&mut api, answer).await;
        assert_eq!(method, Method::PUT);
        assert!(
            body["status"].get("appliedFingerprint").is_none(),
            "the doubt reaches the status: {body}"
        );
        expect_no_more(&mut api).await;
    });
    reconcile(obj, ctx.clone()).await.expect("reconcile");
    server.await.expect("API expectations");
    assert!(
        ctx.memory.doubted("obj-uid"),
        "until the vendor confirms a state"
    );
}
