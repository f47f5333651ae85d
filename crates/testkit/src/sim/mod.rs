//! Vendor simulators for tests, the demo and benchmarks: one stateful axum server per vendor
//! API that checks what it receives as strictly as the real service, records every request,
//! and injects faults on demand ([`Faults`]).

pub mod apex;
pub mod helloid;
pub mod oracle;
pub mod superoffice;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use tokio::task::JoinHandle;

/// One request as the simulator received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A fault the simulator can answer with instead of serving a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503.
    Unavailable,
    /// HTTP 500 with an HTML body.
    ServerError,
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited { retry_after_secs: u64 },
    /// 200 with a body that is not valid XML/JSON.
    Malformed,
    /// 200 with a body over any sane size cap (4 MiB).
    Oversized,
    /// The connection breaks before a response completes.
    Drop,
    /// Answer only after this long (beyond the client's timeout, a timeout).
    Delay(Duration),
    /// Serve the request (the vendor commits it), then hold the answer this long: beyond the
    /// client's timeout, a write whose outcome the client cannot know.
    CommitThenDelay(Duration),
    /// HTTP 302 to `/followed` on the same server: a client that follows it shows up there.
    Redirect,
    /// Answer with this status and an error body that echoes the whole request back, as a
    /// careless vendor might: credsync must never let it reach status, events or logs.
    Echo(u16),
    /// A hostile vendor: this status, and every request header and the body echoed back in
    /// one of the error forms the vendors use.
    EchoAll(u16, EchoForm),
    /// Oracle's SBL-ODU-01005 "try again in N ms" with an absurd N (as text: it may not even
    /// fit in 64 bits).
    TryAgainIn(&'static str),
}

/// The error forms a hostile vendor echoes a request in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoForm {
    /// A JSON object with the echo in every field a client might read.
    Json,
    /// A SOAP 1.1 fault with the echo in faultstring and detail.
    SoapFault,
    /// A SuperOffice SOAP answer with `Succeeded=false` and an `ExceptionInfo` header.
    ExceptionInfo,
    /// Plain text.
    PlainText,
    /// An XML error document (ServiceStack's ResponseStatus).
    Xml,
}

/// The request as a hostile vendor would echo it: every header, then the body.
fn echo_of(headers: &HeaderMap, body: &[u8]) -> String {
    let mut echo = String::new();
    for (name, value) in headers {
        echo.push_str(name.as_str());
        echo.push_str(": ");
        echo.push_str(&String::from_utf8_lossy(value.as_bytes()));
        echo.push('\n');
    }
    echo.push_str(&String::from_utf8_lossy(body));
    echo
}

fn echo_response(status: u16, form: EchoForm, echo: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let xml = |text: &str| quick_xml::escape::escape(text).into_owned();
    match form {
        EchoForm::Json => {
            let body = serde_json::json!({
                "message": echo, "Message": echo, "MessageDetail": echo, "Error": echo,
                "ErrorType": echo, "ErrorMessage": echo, "error": echo, "faultstring": echo,
                "ResponseStatus": {"ErrorCode": echo, "Message": echo, "Errors": [{"ErrorCode": echo, "FieldName": echo, "Message": echo}]}
            });
            (status, axum::Json(body)).into_response()
        }
        EchoForm::SoapFault => {
            let e = xml(echo);
            let body = format!(
                "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>{e}</faultstring><detail><Message>{e}</Message></detail></soap:Fault></soap:Body></soap:Envelope>"
            );
            (status, [("Content-Type", "text/xml")], body).into_response()
        }
        EchoForm::ExceptionInfo => {
            let e = xml(echo);
            let body = format!(
                "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header><ExceptionInfo xmlns=\"http://www.superoffice.net/ws/crm/NetServer/Services84\"><Message>{e}</Message><StackTrace>{e}</StackTrace><Source>{e}</Source></ExceptionInfo><Succeeded xmlns=\"http://www.superoffice.net/ws/crm/NetServer/Services84\">false</Succeeded></soap:Header><soap:Body/></soap:Envelope>"
            );
            (status, [("Content-Type", "text/xml")], body).into_response()
        }
        EchoForm::PlainText => {
            (status, [("Content-Type", "text/plain")], echo.to_string()).into_response()
        }
        EchoForm::Xml => {
            let e = xml(echo);
            let body = format!(
                "<ErrorResponse xmlns=\"http://schemas.datacontract.org/2004/07/Apex.Services\"><ResponseStatus><ErrorCode>{e}</ErrorCode><Message>{e}</Message></ResponseStatus></ErrorResponse>"
            );
            (status, [("Content-Type", "application/xml")], body).into_response()
        }
    }
}

/// Faults to inject: a queue of one-shot faults, faults for every request carrying a given
/// text, a steady latency, and a random failure ratio.
#[derive(Debug, Default)]
pub struct FaultPlan {
    pub queued: Vec<Fault>,
    /// Every request whose body contains the text gets the fault, however many the client sends
    /// and in whatever order they arrive (a one-shot fault can be taken by a late, unrelated one).
    pub carrying: Vec<(Vec<u8>, Fault)>,
    pub latency: Duration,
    /// Fraction (0..1) of requests failed with a random transient fault.
    pub failure_ratio: f64,
}

/// Shared, mutable fault plan of a simulator.
#[derive(Clone, Default, Debug)]
pub struct Faults(Arc<Mutex<FaultPlan>>);

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultPlan> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Answer the next `n` requests with `fault`.
    pub fn push(&self, fault: Fault, n: usize) {
        let mut plan = self.lock();
        for _ in 0..n {
            plan.queued.push(fault);
        }
    }
    /// Answer every request whose body contains `text` with `fault`, until [`Faults::clear`].
    pub fn on_requests_carrying(&self, text: &str, fault: Fault) {
        self.lock().carrying.push((text.as_bytes().to_vec(), fault));
    }
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }
    pub fn set_failure_ratio(&self, ratio: f64) {
        self.lock().failure_ratio = ratio.clamp(0.0, 1.0);
    }
    pub fn clear(&self) {
        *self.lock() = FaultPlan::default();
    }
    fn next(&self, body: &[u8]) -> (Duration, Option<Fault>) {
        let mut plan = self.lock();
        let latency = plan.latency;
        if let Some((_, fault)) = plan.carrying.iter().find(|(text, _)| {
            body.windows(text.len().max(1))
                .any(|w| w == text.as_slice())
        }) {
            return (latency, Some(*fault));
        }
        if !plan.queued.is_empty() {
            return (latency, Some(plan.queued.remove(0)));
        }
        if plan.failure_ratio > 0.0 && rand::rng().random_bool(plan.failure_ratio) {
            let fault = match rand::rng().random_range(0..3) {
                0 => Fault::Unavailable,
                1 => Fault::ServerError,
                _ => Fault::Drop,
            };
            return (latency, Some(fault));
        }
        (latency, None)
    }
}

/// Every request a simulator received.
#[derive(Clone, Default, Debug)]
pub struct Journal(Arc<Mutex<Vec<Recorded>>>);

impl Journal {
    pub fn all(&self) -> Vec<Recorded> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// Requests with this method whose path starts with `prefix`.
    pub fn matching(&self, method: &Method, prefix: &str) -> Vec<Recorded> {
        self.all()
            .into_iter()
            .filter(|r| r.method == *method && r.path.starts_with(prefix))
            .collect()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
    fn push(&self, r: Recorded) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }
}

#[derive(Clone)]
struct Layers {
    journal: Journal,
    faults: Faults,
}

/// Record the request, then inject a fault or pass it on to the vendor's handlers.
async fn faults_and_journal(
    State(layers): State<Layers>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    layers.journal.push(Recorded {
        at: Instant::now(),
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        headers: parts.headers.clone(),
        body: bytes.clone(),
    });
    let (latency, fault) = layers.faults.next(&bytes);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Some(Fault::Unavailable) => {
            (StatusCode::SERVICE_UNAVAILABLE, "service unavailable").into_response()
        }
        Some(Fault::ServerError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "<html><body>Internal Server Error</body></html>",
        )
            .into_response(),
        Some(Fault::RateLimited { retry_after_secs }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", retry_after_secs.to_string())],
            "rate limited",
        )
            .into_response(),
        Some(Fault::Malformed) => (
            StatusCode::OK,
            [("Content-Type", "text/xml")],
            "<<not xml or json {",
        )
            .into_response(),
        Some(Fault::Oversized) => (StatusCode::OK, vec![b'x'; 4 * 1024 * 1024]).into_response(),
        Some(Fault::Drop) => {
            let broken = futures::stream::iter(vec![
                Ok::<_, std::io::Error>(Bytes::from_static(b"{\"partial\":")),
                Err(std::io::Error::other("connection dropped by the simulator")),
            ]);
            Response::builder()
                .status(StatusCode::OK)
                .header("Content-Length", "1000")
                .body(Body::from_stream(broken))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Some(Fault::Redirect) => {
            (StatusCode::FOUND, [("Location", "/followed")], "moved").into_response()
        }
        Some(Fault::EchoAll(status, form)) => {
            echo_response(status, form, &echo_of(&parts.headers, &bytes))
        }
        Some(Fault::TryAgainIn(wait)) => {
            let body = format!(
                "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>SBL-ODU-01005: The server is busy, try again in {wait} ms.</faultstring></soap:Fault></soap:Body></soap:Envelope>"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("Content-Type", "text/xml")],
                body,
            )
                .into_response()
        }
        Some(Fault::Echo(status)) => {
            let echoed = String::from_utf8_lossy(&bytes).into_owned();
            let body =
                serde_json::json!({"message": echoed, "Message": echoed, "faultstring": echoed});
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                axum::Json(body),
            )
                .into_response()
        }
        Some(Fault::CommitThenDelay(d)) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            tokio::time::sleep(d).await;
            response
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// A running simulator.
pub struct SimServer {
    pub addr: SocketAddr,
    pub journal: Journal,
    pub faults: Faults,
    task: JoinHandle<()>,
}

impl SimServer {
    /// Serve `router` on 127.0.0.1:`port` (0 picks a free port) behind the journal and faults.
    pub async fn start(router: Router, port: u16) -> std::io::Result<SimServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        Self::serve(router, listener)
    }

    /// Serve `router` on `listener` behind the journal and the fault plan.
    fn serve<L>(router: Router, listener: L) -> std::io::Result<SimServer>
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
        L::Io: Send,
    {
        let journal = Journal::default();
        let faults = Faults::default();
        let layers = Layers {
            journal: journal.clone(),
            faults: faults.clone(),
        };
        let app = router.layer(middleware::from_fn_with_state(layers, faults_and_journal));
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SimServer {
            addr,
            journal,
            faults,
            task,
        })
    }

    /// Base URL, e.g. http://127.0.0.1:18081.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS listener for simulators that must be reached over https, with a certificate from a
/// throwaway CA (to test `tls.caSecretRef`). Failed handshakes are dropped, as a server would.
pub struct TlsListener {
    inner: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.inner.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl SimServer {
    /// Serve `router` over https on 127.0.0.1 (free port); returns the server and the PEM of
    /// the CA that signed its certificate.
    pub async fn start_tls(router: Router) -> std::io::Result<(SimServer, String)> {
        let tls_error = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
        let ca_key = rcgen::KeyPair::generate().map_err(|e| tls_error(&e))?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_error(&e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| tls_error(&e))?;
        let key = rcgen::KeyPair::generate().map_err(|e| tls_error(&e))?;
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .and_then(|p| p.signed_by(&key, &ca))
                .map_err(|e| tls_error(&e))?;
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&e))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .map_err(|e| tls_error(&e))?;
        let listener = TlsListener {
            inner: tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?,
            acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        };
        Ok((Self::serve(router, listener)?, ca.pem()))
    }

    /// Base https URL of a server started with [`SimServer::start_tls`].
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// Whether `names` follow `order`, each at most once: how a strict service checks the
/// element order of a DataContract or SOAP body.
pub fn in_order(names: &[&str], order: &[&str]) -> bool {
    let mut at = 0;
    names
        .iter()
        .all(|n| match order[at..].iter().position(|o| o == n) {
            Some(p) => {
                at += p + 1;
                true
            }
            None => false,
        })
}

/// Whether the request carries these HTTP Basic credentials.
pub fn basic_auth_ok(headers: &HeaderMap, user: &str, password: &str) -> bool {
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Basic {expected}"))
}

/// The 401 a simulator answers with for missing or wrong credentials.
pub fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "unauthorized").into_response()
}

/// Credentials the demo simulators accept; examples/ uses the same.
pub mod demo {
    pub const HELLOID_KEY: &str = "demo-helloid-key";
    pub const HELLOID_SECRET: &str = "demo-helloid-secret";
    pub const APEX_USER: &str = "demo-apex-user";
    pub const APEX_PASSWORD: &str = "demo-apex-password";
    pub const ORACLE_USER: &str = "demo-oracle-integration";
    pub const ORACLE_PASSWORD: &str = "demo-oracle-password";
    pub const SUPEROFFICE_TICKET: &str = "7T:demo-ticket==";
    pub const SUPEROFFICE_APP_TOKEN: &str = "demo-app-token";
}

/// Ports of the demo simulators (examples/ points at these).
#[derive(Debug, Clone, Copy)]
pub struct DemoPorts {
    pub helloid: u16,
    pub superoffice: u16,
    pub oracle: u16,
    pub apex: u16,
}

impl Default for DemoPorts {
    fn default() -> Self {
        DemoPorts {
            helloid: 18081,
            superoffice: 18082,
            oracle: 18083,
            apex: 18084,
        }
    }
}

/// Start every simulator with the demo credentials; returns (name, server) pairs.
pub async fn start_demo(ports: DemoPorts) -> std::io::Result<Vec<(&'static str, SimServer)>> {
    let helloid = helloid::HelloIdSim::new(demo::HELLOID_KEY, demo::HELLOID_SECRET);
    let apex = apex::ApexSim::new(apex::ApexAuth::Basic(
        demo::APEX_USER.into(),
        demo::APEX_PASSWORD.into(),
    ));
    Ok(vec![
        (
            "helloid",
            SimServer::start(helloid.router(), ports.helloid).await?,
        ),
        ("apex", SimServer::start(apex.router(), ports.apex).await?),
        (
            "superoffice",
            SimServer::start(
                superoffice::SuperOfficeSim::new(
                    demo::SUPEROFFICE_TICKET,
                    Some(demo::SUPEROFFICE_APP_TOKEN),
                )
                .router(),
                ports.superoffice,
            )
            .await?,
        ),
        (
            "oracle",
            SimServer::start(
                oracle::OracleSim::new(demo::ORACLE_USER, demo::ORACLE_PASSWORD).router(),
                ports.oracle,
            )
            .await?,
        ),
    ])
}
