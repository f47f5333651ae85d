//! Admission webhook: who may reference a Secret.
//!
//! The operator reads the Secrets a resource references and sends their values to the vendor the
//! resource (or its connection) names. Without a check, anyone who may create a credsync resource
//! could make the operator send a Secret they cannot read to a host of their choosing. This
//! validating webhook (`POST /validate`, https, off unless `--webhook-addr` is set) refuses a
//! CREATE or UPDATE of a credsync resource when the requesting user may not `get` every Secret
//! it references, asked of the API server with one SubjectAccessReview per Secret.
//!
//! Decisions (see docs/multi-tenancy-webhook.md):
//! - UPDATE: when `spec` is unchanged (labels, annotations, finalizers, among them the operator's
//!   own finalizer patches) nothing is checked. When `spec` changed in any way, every reference is
//!   checked, not only new ones: a new vendor URL or another `connectionRef` sends the same
//!   Secret's value somewhere else.
//! - Fail closed: a SubjectAccessReview that fails or times out refuses the request, and so does an
//!   object the webhook cannot read or a credsync.io kind it does not know.
//! - Messages name the user and the Secrets (namespace/name), never a value.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::api::{
    ClusterVendorConnection, CrmUserCredential, ErpIdentity, GROUP, SsoAppCredential,
    VendorConnection,
};
use crate::connections::resolve::secret_names;
use crate::managed::Managed;
use crate::metrics;
use crate::serving_cert::{self, CertError, ServingCert};

/// The path the API server posts AdmissionReviews to.
pub const PATH: &str = "/validate";
/// Name of the webhook in the chart's ValidatingWebhookConfiguration; the API server starts its
/// refusals with `admission webhook "<name>" denied the request`.
pub const WEBHOOK_NAME: &str = "secret-refs.credsync.io";
/// Every refusal of a Secret reference carries this, to be recognised in clients and tests.
pub const DENIED_MARKER: &str =
    "credsync: a resource may reference only Secrets its author can read";

/// A SubjectAccessReview is one API call; the API server gives the whole webhook 10s by default.
const SAR_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that connects and never finishes its handshake holds nothing for longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An AdmissionReview holds the object twice (object and oldObject); CRs are far smaller.
const MAX_REVIEW_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Tls(#[from] CertError),
    #[error("webhook: {0}")]
    Io(#[from] std::io::Error),
}

/// A Secret a resource references.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SecretName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Whether a user may `get` a Secret. Err when that cannot be told (the request is then refused).
#[async_trait]
pub trait SecretAccess: Send + Sync {
    async fn may_get(&self, user: &UserInfo, secret: &SecretName) -> Result<bool, String>;
}

/// [`SecretAccess`] by SubjectAccessReview: the API server's authorizers answer for the user.
/// The client needs `create` on `subjectaccessreviews.authorization.k8s.io`, nothing else.
pub struct SubjectAccessReviews {
    client: Client,
}

impl SubjectAccessReviews {
    pub fn new(client: Client) -> Self {
        SubjectAccessReviews { client }
    }
}

#[async_trait]
impl SecretAccess for SubjectAccessReviews {
    async fn may_get(&self, user: &UserInfo, secret: &SecretName) -> Result<bool, String> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(String::new()),
                    version: Some("v1".into()),
                    resource: Some("secrets".into()),
                    verb: Some("get".into()),
                    namespace: Some(secret.namespace.clone()),
                    name: Some(secret.name.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        match tokio::time::timeout(SAR_TIMEOUT, api.create(&PostParams::default(), &review)).await {
            Err(_) => Err(format!(
                "the SubjectAccessReview took more than {SAR_TIMEOUT:?}"
            )),
            Ok(Err(e)) => Err(format!("the SubjectAccessReview failed: {e}")),
            Ok(Ok(answer)) => answer
                .status
                .map(|s| s.allowed)
                .ok_or_else(|| "the SubjectAccessReview came back without a status".to_string()),
        }
    }
}

/// The Secrets an object of a credsync.io `kind` references; `namespace` is the request's (the
/// namespace of a namespaced resource). Err explains why the object cannot be judged.
pub fn referenced_secrets(
    kind: &str,
    namespace: Option<&str>,
    object: serde_json::Value,
) -> Result<BTreeSet<SecretName>, String> {
    let own = || {
        namespace
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("a {kind} request without a namespace"))
    };
    let names = match kind {
        "SsoAppCredential" => own_namespace_refs(parse::<SsoAppCredential>(kind, object)?, own()?),
        "CrmUserCredential" => {
            own_namespace_refs(parse::<CrmUserCredential>(kind, object)?, own()?)
        }
        "ErpIdentity" => own_namespace_refs(parse::<ErpIdentity>(kind, object)?, own()?),
        "VendorConnection" => {
            let conn = parse::<VendorConnection>(kind, object)?;
            secret_names(&conn.spec.endpoint, Some(own()?))
        }
        // Refs without a namespace are refused by the operator and read nowhere.
        "ClusterVendorConnection" => {
            let conn = parse::<ClusterVendorConnection>(kind, object)?;
            secret_names(&conn.spec.endpoint, None)
        }
        other => return Err(format!("{other} is not a kind this webhook knows")),
    };
    Ok(names
        .into_iter()
        .map(|(namespace, name)| SecretName { namespace, name })
        .collect())
}

fn parse<K: DeserializeOwned>(kind: &str, object: serde_json::Value) -> Result<K, String> {
    // serde's message may quote the offending value; only its position is reported.
    serde_json::from_value(object).map_err(|e| {
        format!(
            "the {kind} could not be read ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })
}

fn own_namespace_refs<K: Managed>(obj: K, namespace: &str) -> Vec<(String, String)> {
    obj.secret_refs()
        .into_iter()
        .map(|r| (namespace.to_string(), r.name.clone()))
        .collect()
}

/// How a review ended (the metric's label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// A referenced Secret the user may not get.
    Refused,
    /// The user's access could not be checked (SubjectAccessReview failed): refused.
    Unchecked,
    /// The object could not be read: refused.
    Unreadable,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Refused => "refused",
            Verdict::Unchecked => "unchecked",
            Verdict::Unreadable => "unreadable",
        }
    }
}

/// Judge one admission request, and say how it ended.
pub async fn judge(
    req: &AdmissionRequest<DynamicObject>,
    access: &dyn SecretAccess,
) -> (AdmissionResponse, Verdict) {
    let allow = AdmissionResponse::from(req);
    let deny = |message: String| {
        let mut response = AdmissionResponse::from(req).deny(message);
        response.result.code = 403;
        response.result.reason = "Forbidden".into();
        response
    };
    // Only what can change a reference is judged; the chart's rules send nothing else.
    if req.kind.group != GROUP
        || req.sub_resource.is_some()
        || !matches!(req.operation, Operation::Create | Operation::Update)
    {
        return (allow, Verdict::Allowed);
    }
    let kind = req.kind.kind.as_str();
    let what = match &req.namespace {
        Some(ns) => format!("{kind} {ns}/{}", req.name),
        None => format!("{kind} {}", req.name),
    };
    let Some(object) = &req.object else {
        return (
            deny(format!("{what}: the request carries no object")),
            Verdict::Unreadable,
        );
    };
    let refs = |obj: &DynamicObject| {
        serde_json::to_value(obj)
            .map_err(|e| format!("the {kind} could not be read: {}", e.classify_name()))
            .and_then(|v| referenced_secrets(kind, req.namespace.as_deref(), v))
    };
    let secrets = match refs(object) {
        Ok(s) => s,
        Err(e) => {
            return (
                deny(format!("{what} refused by {WEBHOOK_NAME}: {e}")),
                Verdict::Unreadable,
            );
        }
    };
    if req.operation == Operation::Update
        && let Some(old) = &req.old_object
        && old.data.get("spec") == object.data.get("spec")
    {
        // Metadata only (labels, finalizers, the operator's own patches): nothing is re-routed.
        return (allow, Verdict::Allowed);
    }
    if secrets.is_empty() {
        return (allow, Verdict::Allowed);
    }
    let user = req
        .user_info
        .username
        .as_deref()
        .unwrap_or("(unknown user)");
    let answers = futures::future::join_all(
        secrets
            .iter()
            .map(|s| async move { (s, access.may_get(&req.user_info, s).await) }),
    )
    .await;
    let mut refused = Vec::new();
    let mut unknown = Vec::new();
    for (secret, answer) in answers {
        match answer {
            Ok(true) => {}
            Ok(false) => refused.push(secret.to_string()),
            Err(e) => unknown.push(format!("{secret} ({e})")),
        }
    }
    if !unknown.is_empty() {
        tracing::warn!(%user, object = %what, "admission refused: Secret access could not be checked");
        let response = deny(format!(
            "{what}: could not check whether {user} may get Secret {}; refused until it can be checked. {DENIED_MARKER}.",
            unknown.join(", ")
        ));
        return (response, Verdict::Unchecked);
    }
    if !refused.is_empty() {
        tracing::info!(%user, object = %what, secrets = %refused.join(","), "admission refused: Secret not readable by the user");
        let noun = if refused.len() == 1 {
            "Secret"
        } else {
            "Secrets"
        };
        let mut response = deny(format!(
            "{what} references {noun} {}, which {user} may not get. {DENIED_MARKER}.",
            refused.join(", ")
        ));
        // The audit log records which Secrets were asked for (the API server prefixes the key
        // with the webhook's name).
        response
            .audit_annotations
            .insert("refused-secrets".into(), refused.join(","));
        return (response, Verdict::Refused);
    }
    (allow, Verdict::Allowed)
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        }
    }
}

/// The webhook's routes: `POST /validate`.
pub fn router(access: Arc<dyn SecretAccess>) -> Router {
    Router::new()
        .route(PATH, post(validate))
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(access)
}

async fn validate(State(access): State<Arc<dyn SecretAccess>>, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let review_in: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                error = e.classify_name(),
                line = e.line(),
                "not an AdmissionReview"
            );
            metrics::webhook_reviewed("malformed", started.elapsed());
            return (StatusCode::BAD_REQUEST, "expected an AdmissionReview v1").into_response();
        }
    };
    let request: AdmissionRequest<DynamicObject> = match review_in.try_into() {
        Ok(r) => r,
        Err(_) => {
            metrics::webhook_reviewed("malformed", started.elapsed());
            return (
                StatusCode::BAD_REQUEST,
                "the AdmissionReview carries no request",
            )
                .into_response();
        }
    };
    let (response, verdict) = judge(&request, access.as_ref()).await;
    metrics::webhook_reviewed(verdict.label(), started.elapsed());
    axum::Json(response.into_review()).into_response()
}

/// A bound webhook server, ready to run.
pub struct Server {
    listener: TcpListener,
    tls: Arc<ServingCert>,
    access: Arc<dyn SecretAccess>,
}

impl Server {
    /// Bind `addr` with the certificate in `cert_dir`; SubjectAccessReviews go through `client`.
    pub async fn bind(
        addr: SocketAddr,
        cert_dir: &Path,
        client: Client,
    ) -> Result<Server, WebhookError> {
        let tls = ServingCert::load(cert_dir).await?;
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            tls,
            access: Arc::new(SubjectAccessReviews::new(client)),
        })
    }

    /// A server on a bound listener (tests: port 0, any [`SecretAccess`]).
    pub fn new(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        access: Arc<dyn SecretAccess>,
    ) -> Server {
        Server {
            listener,
            tls: ServingCert::fixed(tls),
            access,
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let local = self.listener.local_addr()?;
        tracing::info!(addr = %local, path = PATH, "serving the admission webhook (https)");
        let (tx, rx) = mpsc::channel(64);
        let certificate = self.tls;
        let stop_following = CancellationToken::new();
        let following = tokio::spawn(
            certificate
                .clone()
                .follow(serving_cert::CHECK_EVERY, stop_following.clone()),
        );
        let listener = self.listener;
        // Handshakes run on their own tasks, so one slow client cannot hold up the others.
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = certificate.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "webhook TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %addr, "webhook TLS handshake timed out"),
                    }
                });
            }
        });
        let result = axum::serve(Handshaken { rx, local }, router(self.access))
            .with_graceful_shutdown(shutdown)
            .await;
        accepting.abort();
        stop_following.cancel();
        let _ = following.await;
        result
    }
}

/// Connections whose TLS handshake has finished, for axum.
struct Handshaken {
    rx: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for Handshaken {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(connection) => connection,
            // The accepting task is gone (shut down): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::sync::LockOrRecover;

    /// Allows exactly the listed Secrets; records what it was asked; fails for "broken".
    #[derive(Default)]
    struct Fake {
        readable: Vec<SecretName>,
        asked: Mutex<Vec<(String, SecretName)>>,
    }

    #[async_trait]
    impl SecretAccess for Fake {
        async fn may_get(&self, user: &UserInfo, secret: &SecretName) -> Result<bool, String> {
            self.asked
                .lock_or_recover()
                .push((user.username.clone().unwrap_or_default(), secret.clone()));
            if secret.name == "broken" {
                return Err("the SubjectAccessReview failed: boom".into());
            }
            Ok(self.readable.contains(secret))
        }
    }

    impl Fake {
        fn reading(names: &[(&str, &str)]) -> Fake {
            Fake {
                readable: names.iter().map(|(ns, n)| secret(ns, n)).collect(),
                ..Fake::default()
            }
        }
        fn asked(&self) -> Vec<SecretName> {
            self.asked
                .lock_or_recover()
                .iter()
                .map(|(_, s)| s.clone())
                .collect()
        }
    }

    fn secret(ns: &str, name: &str) -> SecretName {
        SecretName {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn sso(secrets: &[&str], cred_set: &str) -> serde_json::Value {
        let mut credentials = vec![json!({"function": "UserName", "value": "jdoe"})];
        for s in secrets {
            credentials.push(json!({"function": "Password", "valueFrom": {"secretKeyRef": {"name": s, "key": "password"}}}));
        }
        json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "SsoAppCredential",
            "metadata": {"name": "c", "namespace": "team"},
            "spec": {"connectionRef": {"name": "helloid"},
                     "userGuid": "0c5b6a8e-31f2-4d57-9d7e-1a2b3c4d5e6f",
                     "applicationGuid": "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f",
                     "credSetName": cred_set, "credentials": credentials}
        })
    }

    fn request(
        kind: &str,
        namespace: Option<&str>,
        operation: &str,
        object: serde_json::Value,
        old: Option<serde_json::Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let plural = format!("{}s", kind.to_lowercase());
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "7f0b2a3c-1111-2222-3333-444455556666",
                "kind": {"group": "credsync.io", "version": "v1alpha1", "kind": kind},
                "resource": {"group": "credsync.io", "version": "v1alpha1", "resource": plural},
                "name": "c", "namespace": namespace, "operation": operation,
                "userInfo": {"username": "alice", "uid": "u-1", "groups": ["team", "system:authenticated"],
                             "extra": {"scopes": ["a"]}},
                "object": object, "oldObject": old, "dryRun": false
            }
        }))
        .expect("review");
        review.try_into().expect("request")
    }

    #[tokio::test]
    async fn create_is_admitted_only_when_every_secret_is_readable() {
        let fake = Fake::reading(&[("team", "pw")]);
        let ok = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "CREATE",
                sso(&["pw"], "Default"),
                None,
            ),
            &fake,
        )
        .await
        .0;
        assert!(ok.allowed, "{:?}", ok.result);
        assert_eq!(ok.uid, "7f0b2a3c-1111-2222-3333-444455556666");

        let refused = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "CREATE",
                sso(&["pw", "other", "third"], "Default"),
                None,
            ),
            &fake,
        )
        .await
        .0;
        assert!(!refused.allowed);
        assert_eq!(refused.result.code, 403);
        assert_eq!(
            refused
                .audit_annotations
                .get("refused-secrets")
                .map(String::as_str),
            Some("team/other,team/third")
        );
        let message = &refused.result.message;
        assert!(
            message.contains("team/other")
                && message.contains("team/third")
                && !message.contains("team/pw,")
                && message.contains("alice")
                && message.contains(DENIED_MARKER),
            "{message}"
        );
    }

    #[tokio::test]
    async fn the_user_is_asked_about_exactly_the_referenced_secrets() {
        let fake = Fake::reading(&[]);
        let _ = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "CREATE",
                sso(&["a", "b", "a"], "Default"),
                None,
            ),
            &fake,
        )
        .await
        .0;
        assert_eq!(fake.asked(), vec![secret("team", "a"), secret("team", "b")]);
        let users: Vec<String> = fake
            .asked
            .lock_or_recover()
            .iter()
            .map(|(u, _)| u.clone())
            .collect();
        assert!(users.iter().all(|u| u == "alice"));
    }

    #[tokio::test]
    async fn updates_check_every_reference_when_the_spec_changes() {
        let fake = Fake::reading(&[("team", "pw")]);
        // Metadata only: nothing is asked, even of a Secret alice cannot read (an admin's object).
        let mut labelled = sso(&["admins-only"], "Default");
        labelled["metadata"]["labels"] = json!({"x": "y"});
        let ok = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "UPDATE",
                labelled,
                Some(sso(&["admins-only"], "Default")),
            ),
            &fake,
        )
        .await
        .0;
        assert!(ok.allowed);
        assert!(fake.asked().is_empty());
        // Any spec change re-checks the unchanged reference too.
        let refused = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "UPDATE",
                sso(&["admins-only"], "Other"),
                Some(sso(&["admins-only"], "Default")),
            ),
            &fake,
        )
        .await
        .0;
        assert!(!refused.allowed);
        assert!(refused.result.message.contains("team/admins-only"));
        // Swapping to an unreadable Secret is refused.
        let swapped = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "UPDATE",
                sso(&["admins-only"], "Default"),
                Some(sso(&["pw"], "Default")),
            ),
            &fake,
        )
        .await
        .0;
        assert!(!swapped.allowed);
    }

    /// Every way a review ends has its verdict, and the metric counts each (malformed bodies
    /// included, which never reach a verdict of their own).
    #[tokio::test]
    async fn verdicts_and_their_metric() {
        let fake = Fake::reading(&[("team", "pw")]);
        let rows = [
            ("readable Secret", sso(&["pw"], "Default"), Verdict::Allowed),
            (
                "unreadable Secret",
                sso(&["other"], "Default"),
                Verdict::Refused,
            ),
            (
                "access check failed",
                sso(&["broken"], "Default"),
                Verdict::Unchecked,
            ),
            (
                "object without a spec",
                json!({"metadata": {"name": "c"}}),
                Verdict::Unreadable,
            ),
        ];
        for (name, object, want) in rows {
            let req = request("SsoAppCredential", Some("team"), "CREATE", object, None);
            let (response, verdict) = judge(&req, &fake).await;
            assert_eq!(verdict, want, "{name}");
            assert_eq!(response.allowed, want == Verdict::Allowed, "{name}");
        }
        let access: Arc<dyn SecretAccess> = Arc::new(fake);
        let answer = validate(State(access), Bytes::from_static(b"not json")).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        let text = metrics::encode();
        assert!(
            text.contains("credsync_webhook_reviews_total{verdict=\"malformed\"}"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn access_check_failures_refuse() {
        let fake = Fake::reading(&[("team", "pw")]);
        let refused = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "CREATE",
                sso(&["pw", "broken"], "Default"),
                None,
            ),
            &fake,
        )
        .await
        .0;
        assert!(!refused.allowed);
        assert!(
            refused.result.message.contains("could not check")
                && refused.result.message.contains("team/broken"),
            "{}",
            refused.result.message
        );
    }

    #[tokio::test]
    async fn unknown_kinds_and_unreadable_objects_refuse_and_other_operations_pass() {
        let fake = Fake::reading(&[]);
        let unknown = judge(
            &request("NewKind", Some("team"), "CREATE", json!({"spec": {}}), None),
            &fake,
        )
        .await
        .0;
        assert!(!unknown.allowed);
        let garbled = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "CREATE",
                json!({"spec": {"credentials": "s3cr3t"}}),
                None,
            ),
            &fake,
        )
        .await
        .0;
        assert!(!garbled.allowed);
        assert!(
            !garbled.result.message.contains("s3cr3t"),
            "{}",
            garbled.result.message
        );
        let deleted = judge(
            &request(
                "SsoAppCredential",
                Some("team"),
                "DELETE",
                sso(&["x"], "Default"),
                None,
            ),
            &fake,
        )
        .await
        .0;
        assert!(deleted.allowed);
        let no_refs = judge(
            &request(
                "ErpIdentity",
                Some("team"),
                "CREATE",
                json!({"apiVersion": "credsync.io/v1alpha1", "kind": "ErpIdentity", "metadata": {"name": "e"},
                       "spec": {"connectionRef": {"name": "apex"}, "identityType": "User", "name": "jdoe"}}),
                None,
            ),
            &fake,
        )
        .await
        .0;
        assert!(no_refs.allowed, "{:?}", no_refs.result);
        assert!(fake.asked().is_empty());
    }

    #[test]
    fn connections_and_crm_credentials_list_every_secret() {
        let conn = json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "VendorConnection", "metadata": {"name": "so"},
            "spec": {"superOffice": {"url": "https://so.example",
                        "applicationTokenSecretRef": {"name": "app", "key": "token"},
                        "auth": {"basicSecretRef": {"name": "basic", "namespace": "elsewhere"}}},
                     "tls": {"caSecretRef": {"name": "ca", "key": "ca.crt"}}}
        });
        assert_eq!(
            referenced_secrets("VendorConnection", Some("team"), conn).expect("refs"),
            BTreeSet::from([
                secret("team", "app"),
                secret("elsewhere", "basic"),
                secret("team", "ca")
            ])
        );
        let cluster = json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "ClusterVendorConnection", "metadata": {"name": "shared"},
            "spec": {"apexErp": {"url": "https://apex.example",
                        "auth": {"bearerSecretRef": {"name": "token", "key": "t", "namespace": "ops"}}},
                     "allowedNamespaces": {"namespaces": ["team"]}}
        });
        assert_eq!(
            referenced_secrets("ClusterVendorConnection", None, cluster).expect("refs"),
            BTreeSet::from([secret("ops", "token")])
        );
        let crm = json!({
            "apiVersion": "credsync.io/v1alpha1", "kind": "CrmUserCredential", "metadata": {"name": "c"},
            "spec": {"connectionRef": {"name": "oracle"},
                     "oracleCrmOnDemand": {"userId": "1", "passwordFrom": {"secretKeyRef": {"name": "ora", "key": "pw"}}}}
        });
        assert_eq!(
            referenced_secrets("CrmUserCredential", Some("team"), crm).expect("refs"),
            BTreeSet::from([secret("team", "ora")])
        );
        assert!(referenced_secrets("CrmUserCredential", None, json!({})).is_err());
    }
}
