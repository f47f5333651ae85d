//! Shared HTTP transport for every vendor: one client per connection with its concurrency and
//! rate limits, no redirects, TLS verification always on, response bodies capped before they are
//! parsed, and HTTP failures classified into transient and permanent [`VendorError`]s.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use super::VendorError;
use super::rate::RateSlots;
use crate::api::Vendor;
use crate::fence::Fence;
use crate::metrics;
use crate::sync::LockOrRecover;

/// Largest response body credsync reads from any vendor; larger ones are refused unparsed.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Largest listing of every record of a type (Apex has no lookup by name): a tenant's whole
/// user base, so far larger than one record's answer.
pub const DEFAULT_MAX_LISTING_BYTES: usize = 16 * 1024 * 1024;
/// The longest wait a vendor may impose when the operator sets none (the default --backoff-max).
pub const DEFAULT_MAX_VENDOR_WAIT: Duration = Duration::from_secs(300);
/// Longest vendor error text that reaches a condition message or an event.
pub const MAX_ERROR_TEXT: usize = 300;
/// Reason of a request refused, unsent, because the fence had closed.
pub const NOT_LEADER: &str = "NotLeader";
/// Reason of a request cut off in flight when the fence closed (its outcome is unknown).
pub const FENCED_IN_FLIGHT: &str = "NotLeaderInFlight";

/// `credsync/<version>`, with the replica's name when it has one: `credsync/0.1.0 (pod-a)`.
pub fn user_agent(replica: Option<&str>) -> String {
    let base = concat!("credsync/", env!("CARGO_PKG_VERSION"));
    // Only header-safe characters of a name reach the header (a pod name always is).
    match replica.map(|r| {
        r.chars()
            .filter(|c| c.is_ascii_graphic())
            .collect::<String>()
    }) {
        Some(name) if !name.is_empty() => format!("{base} ({name})"),
        _ => base.to_string(),
    }
}

/// Operator-wide rules for reaching vendors.
#[derive(Clone, Debug)]
pub struct TransportPolicy {
    /// Allow plain http:// URLs (tests and the demo only).
    pub allow_http: bool,
    /// When set, only these hosts may be called. They are trusted by name: they may also
    /// resolve to private addresses (an on-premises vendor named by the platform team).
    pub allowed_hosts: Option<Vec<String>>,
    /// Allow vendor addresses in loopback, link-local, private and unique-local ranges for
    /// every connection (tests, the demo, on-premises vendors). Off: a tenant's connection
    /// cannot reach the API server, cloud metadata or another team's service.
    pub allow_private_addresses: bool,
    /// Response size cap.
    pub max_response_bytes: usize,
    /// Response size cap of listings (see [`VendorHttp::send_listing`]).
    pub max_listing_bytes: usize,
    /// The longest wait a vendor's Retry-After or "try again in" may impose; the controller
    /// sets it to `--backoff-max`.
    pub max_vendor_wait: Duration,
    /// Up to when this replica may call vendors (leader election moves it; see
    /// [`crate::fence`]): checked before every request, and in-flight requests end at it.
    pub fence: Fence,
    /// This replica's name (its Lease identity), added to the User-Agent so a vendor's logs
    /// tell which replica sent each request.
    pub replica: Option<String>,
}

impl Default for TransportPolicy {
    fn default() -> Self {
        TransportPolicy {
            allow_http: false,
            allowed_hosts: None,
            allow_private_addresses: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_listing_bytes: DEFAULT_MAX_LISTING_BYTES,
            max_vendor_wait: DEFAULT_MAX_VENDOR_WAIT,
            fence: Fence::open(),
            replica: None,
        }
    }
}

/// Settings of one connection's transport.
#[derive(Clone, Debug)]
pub struct EndpointSettings {
    pub vendor: Vendor,
    pub base_url: String,
    pub timeout: Duration,
    pub max_concurrent_requests: u32,
    pub requests_per_second: u32,
    /// Extra PEM CA bundle to trust.
    pub ca_pem: Option<Vec<u8>>,
}

/// Why a connection's transport could not be built; always needs a person.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    #[error("vendor URL is not a valid URL: {0}")]
    InvalidUrl(String),
    #[error("vendor URL must use https (plain http needs the operator flag --allow-http)")]
    InsecureScheme,
    #[error("vendor host {0:?} is not in the operator's --allowed-vendor-hosts")]
    HostNotAllowed(String),
    #[error("{0}")]
    AddressNotAllowed(AddressNotAllowed),
    #[error("the CA bundle is not valid PEM")]
    InvalidCa,
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// A received response: status, headers and a size-capped body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    /// The server's Retry-After, in delta-seconds form (the HTTP-date form is rare for APIs).
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
        value.trim().parse::<u64>().ok().map(Duration::from_secs)
    }

    /// The body as text, lossily, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One connection's HTTP transport, shared by every resource that uses the connection.
pub struct VendorHttp {
    client: reqwest::Client,
    base: Url,
    vendor: Vendor,
    max_response_bytes: usize,
    max_listing_bytes: usize,
    in_flight: Semaphore,
    rate: RateSlots,
    /// Until when the vendor asked for no requests, and the reason it gave (see `hold_off`).
    held_off: std::sync::Mutex<Option<(Instant, &'static str)>>,
    /// The longest wait a vendor may impose (`--backoff-max`): its numbers are not trusted.
    max_wait: Duration,
    /// What this connection's vendor turned out to serve.
    capabilities: super::capabilities::Capabilities,
    /// Up to when requests may be sent and answered (see [`TransportPolicy::fence`]).
    fence: Fence,
}

impl std::fmt::Debug for VendorHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorHttp")
            .field("vendor", &self.vendor)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl VendorHttp {
    pub fn new(
        settings: &EndpointSettings,
        policy: &TransportPolicy,
    ) -> Result<Arc<Self>, TransportError> {
        let base = parse_base_url(&settings.base_url, policy)?;
        let private_allowed = policy.allow_private_addresses
            || policy.allowed_hosts.as_ref().is_some_and(|allowed| {
                base.host_str()
                    .is_some_and(|host| allowed.iter().any(|h| h.eq_ignore_ascii_case(host)))
            });
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(user_agent(policy.replica.as_deref()))
            .https_only(!policy.allow_http);
        if !private_allowed {
            builder = builder.dns_resolver(Arc::new(PublicAddressesOnly));
        }
        if let Some(pem) = &settings.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| TransportError::InvalidCa)?;
            if certs.is_empty() {
                return Err(TransportError::InvalidCa);
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| TransportError::Client(e.to_string()))?;
        Ok(Arc::new(VendorHttp {
            client,
            base,
            vendor: settings.vendor,
            max_response_bytes: policy.max_response_bytes,
            max_listing_bytes: policy.max_listing_bytes,
            in_flight: Semaphore::new(settings.max_concurrent_requests.max(1) as usize),
            rate: RateSlots::new(settings.requests_per_second),
            held_off: std::sync::Mutex::new(None),
            max_wait: policy.max_vendor_wait,
            capabilities: super::capabilities::Capabilities::default(),
            fence: policy.fence.clone(),
        }))
    }

    /// What this connection's vendor turned out to serve (see [`super::capabilities`]).
    pub fn capabilities(&self) -> &super::capabilities::Capabilities {
        &self.capabilities
    }

    /// The reqwest client, for building requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The connection's base URL with `path` appended (the base's own path is kept).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// Send one request under the connection's limits and read its body up to the size cap.
    /// Transport failures come back classified; HTTP error statuses are returned as responses
    /// so each vendor can read its own error body (see [`classify_status`]).
    pub async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<HttpResponse, VendorError> {
        let cap = (self.max_response_bytes, "--max-response-bytes");
        self.send_capped(operation, request, cap).await
    }

    /// [`VendorHttp::send`] for a listing of every record of a type, under the listing cap.
    pub async fn send_listing(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<HttpResponse, VendorError> {
        let cap = (self.max_listing_bytes, "--max-listing-bytes");
        self.send_capped(operation, request, cap).await
    }

    /// The vendor asked to wait (Retry-After, or a "try again in" of its own): until then every
    /// request of this connection, for any resource, fails at once without being sent. A
    /// connection's limits are the vendor account's, so one answer speaks for all of them.
    pub fn hold_off(&self, err: &VendorError) {
        let Some(wait) = err.retry_after() else {
            return;
        };
        // A vendor's number is not trusted: a huge wait must neither overflow nor silence the
        // connection for longer than the operator's own longest backoff.
        let wait = wait.min(self.max_wait);
        let Some(until) = Instant::now().checked_add(wait) else {
            return;
        };
        let mut held_off = self.held_off.lock_or_recover();
        if held_off.is_none_or(|(current, _)| current < until) {
            *held_off = Some((until, err.reason()));
        }
    }

    /// The error for a request while the vendor's wait lasts. It names no other resource's
    /// request, and stays the same while it lasts (no status churn).
    fn holding_off(&self) -> Result<(), VendorError> {
        let held_off = *self.held_off.lock_or_recover();
        match held_off.and_then(|(until, reason)| {
            let left = until.checked_duration_since(Instant::now())?;
            (!left.is_zero()).then_some((left, reason))
        }) {
            None => Ok(()),
            Some((left, reason)) => Err(VendorError::Transient {
                reason,
                message: "the vendor asked this connection to wait (Retry-After); nothing is sent until the wait is over".into(),
                retry_after: Some(left),
            }),
        }
    }

    /// The error for a request that would start after the fence closed; nothing is sent.
    fn fenced(&self, operation: &'static str) -> Result<(), VendorError> {
        if self.fence.is_open() {
            return Ok(());
        }
        metrics::vendor_request(self.vendor, operation, "fenced", Duration::ZERO);
        Err(VendorError::transient(
            NOT_LEADER,
            "this replica cannot confirm that it still leads (its leader Lease was not renewed in time); nothing was sent",
        ))
    }

    /// `cap`: the most bytes read, and the flag that sets it.
    async fn send_capped(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
        cap: (usize, &'static str),
    ) -> Result<HttpResponse, VendorError> {
        self.holding_off()?;
        self.fenced(operation)?;
        let _permit =
            self.in_flight.acquire().await.map_err(|_| {
                VendorError::transient("ShuttingDown", "the operator is shutting down")
            })?;
        self.rate.wait().await;
        // The wait may have begun, or the fence closed, while this request queued.
        self.holding_off()?;
        self.fenced(operation)?;
        let started = Instant::now();
        // A request still running when the fence closes is cut off there: its answer could
        // come after another replica began to write.
        let result = tokio::select! {
            result = self.send_unlimited(request, cap) => result,
            _ = self.fence.closed_now() => Err(VendorError::transient(
                FENCED_IN_FLIGHT,
                "this replica stopped waiting for the vendor's answer: it could no longer confirm that it leads (the request may have reached the vendor)",
            )),
        };
        let outcome = match &result {
            Err(e) if e.reason() == FENCED_IN_FLIGHT => "fenced",
            Ok(resp) if resp.status.is_success() => "success",
            Ok(resp)
                if resp.status.is_server_error()
                    || resp.status == StatusCode::TOO_MANY_REQUESTS =>
            {
                "transient_error"
            }
            Ok(_) => "permanent_error",
            Err(e) if e.is_transient() => "transient_error",
            Err(_) => "permanent_error",
        };
        metrics::vendor_request(self.vendor, operation, outcome, started.elapsed());
        result
    }

    async fn send_unlimited(
        &self,
        request: reqwest::RequestBuilder,
        cap: (usize, &'static str),
    ) -> Result<HttpResponse, VendorError> {
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(VendorError::permanent(
                "VendorRedirect",
                format!(
                    "vendor answered {status} (a redirect); credsync follows no redirects, so check the connection URL"
                ),
            ));
        }
        let headers = std::mem::take(response.headers_mut());
        if let Some(len) = response.content_length()
            && len > cap.0 as u64
        {
            return Err(oversized(cap));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > cap.0 {
                return Err(oversized(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body: body.freeze(),
        })
    }
}

fn oversized((bytes, flag): (usize, &str)) -> VendorError {
    VendorError::transient(
        "VendorBadResponse",
        format!("vendor response is larger than {bytes} bytes ({flag}); refused unparsed"),
    )
}

fn parse_base_url(raw: &str, policy: &TransportPolicy) -> Result<Url, TransportError> {
    let url = Url::parse(raw).map_err(|e| TransportError::InvalidUrl(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(TransportError::InsecureScheme),
        other => {
            return Err(TransportError::InvalidUrl(format!(
                "unsupported scheme {other:?}"
            )));
        }
    }
    let host = url
        .host_str()
        .ok_or_else(|| TransportError::InvalidUrl("no host".into()))?;
    if let Some(allowed) = &policy.allowed_hosts
        && !allowed.iter().any(|h| h.eq_ignore_ascii_case(host))
    {
        return Err(TransportError::HostNotAllowed(host.to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TransportError::InvalidUrl(
            "credentials belong in Secrets, not in the URL".into(),
        ));
    }
    // A literal address is never resolved, so it is checked here; names are checked on every
    // connect (see `PublicAddressesOnly`), so a DNS answer that changes later cannot pass.
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    let trusted = policy.allow_private_addresses || policy.allowed_hosts.is_some();
    if let Some(ip) = literal
        && !trusted
        && !is_public(ip)
    {
        return Err(TransportError::AddressNotAllowed(AddressNotAllowed {
            host: host.to_string(),
        }));
    }
    Ok(url)
}

/// A vendor host that names (or resolves to) only addresses a tenant must not reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "vendor host {host:?} is, or resolves only to, a loopback, link-local, private or unique-local address; credsync refuses those unless the host is in --allowed-vendor-hosts or the operator runs with --allow-private-vendor-addresses"
)]
pub struct AddressNotAllowed {
    host: String,
}

/// Whether `ip` is an address on the public internet. Everything a tenant could use to reach
/// inside the cluster or the node is not: loopback, private (RFC 1918), link-local (cloud
/// metadata at 169.254.169.254), carrier-grade NAT, unique-local, unspecified, multicast,
/// broadcast, documentation ranges, and IPv4 addresses written as IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b // NAT64 of IPv4
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

/// Resolves names as usual and keeps only public addresses: the check happens when reqwest
/// connects, on the very addresses it will use.
struct PublicAddressesOnly;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = resolved.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(AddressNotAllowed { host }) as Box<_>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn transport_error(err: reqwest::Error) -> VendorError {
    // An address refused by our own resolver needs a person, and names nothing of the remote.
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<AddressNotAllowed>() {
            return VendorError::permanent("VendorAddressNotAllowed", refused.to_string());
        }
        source = e.source();
    }
    // reqwest's Display can include the URL but never headers or bodies.
    let chain = error_chain(&err);
    // A certificate that does not verify will not verify on retry either.
    if chain.contains("certificate") || chain.contains("UnknownIssuer") {
        return VendorError::permanent(
            "VendorCertificateInvalid",
            format!(
                "the vendor's TLS certificate could not be verified (trust its CA with the connection's tls.caSecretRef): {}",
                cut(&chain)
            ),
        );
    }
    let what = if err.is_timeout() {
        return VendorError::transient(
            "VendorTimeout",
            "vendor did not answer within the connection's timeoutSeconds",
        );
    } else if err.is_connect() {
        "could not connect to the vendor"
    } else if err.is_body() || err.is_decode() {
        "the vendor's response broke off"
    } else {
        "the request to the vendor failed"
    };
    VendorError::transient("VendorUnreachable", format!("{what}: {}", cut(&chain)))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Classify a non-success HTTP status; `detail` is the vendor's own error text, if it gave one.
pub fn classify_status(response: &HttpResponse, detail: Option<String>) -> VendorError {
    let status = response.status;
    let mut message = format!("vendor answered HTTP {}", status.as_u16());
    if let Some(reason) = status.canonical_reason() {
        message.push(' ');
        message.push_str(reason);
    }
    if let Some(detail) = detail.map(|d| cut(&d)).filter(|d| !d.is_empty()) {
        message.push_str(": ");
        message.push_str(&detail);
    }
    match status {
        StatusCode::TOO_MANY_REQUESTS => VendorError::Transient {
            reason: "VendorRateLimited",
            message,
            retry_after: response.retry_after(),
        },
        StatusCode::REQUEST_TIMEOUT => VendorError::transient("VendorTimeout", message),
        s if s.is_server_error() => VendorError::Transient {
            reason: "VendorUnavailable",
            message,
            retry_after: response.retry_after(),
        },
        StatusCode::UNAUTHORIZED => VendorError::permanent(
            "VendorUnauthorized",
            format!("{message} (check the connection's credentials Secret)"),
        ),
        StatusCode::FORBIDDEN => VendorError::permanent(
            "VendorForbidden",
            format!("{message} (the connection's account lacks a privilege)"),
        ),
        StatusCode::NOT_FOUND => VendorError::permanent("VendorNotFound", message),
        _ => VendorError::permanent("VendorRejected", message),
    }
}

/// Cut vendor text to a length fit for a condition message, on a character boundary, with
/// control characters folded to spaces.
pub fn cut(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_TEXT)
        .collect();
    if text.chars().count() > MAX_ERROR_TEXT {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_http: bool) -> TransportPolicy {
        TransportPolicy {
            allow_http,
            ..TransportPolicy::default()
        }
    }

    #[test]
    fn http_needs_the_flag() {
        assert_eq!(
            parse_base_url("http://x.example", &policy(false)),
            Err(TransportError::InsecureScheme)
        );
        assert!(parse_base_url("http://x.example", &policy(true)).is_ok());
        assert!(parse_base_url("https://x.example", &policy(false)).is_ok());
    }

    #[test]
    fn allow_list_and_userinfo() {
        let p = TransportPolicy {
            allowed_hosts: Some(vec!["good.example".into()]),
            ..policy(false)
        };
        assert!(parse_base_url("https://good.example/x", &p).is_ok());
        assert_eq!(
            parse_base_url("https://bad.example", &p),
            Err(TransportError::HostNotAllowed("bad.example".into()))
        );
        assert!(parse_base_url("https://u:p@good.example", &p).is_err());
    }

    #[test]
    fn a_vendor_wait_holds_every_request_of_the_connection() {
        let settings = EndpointSettings {
            vendor: Vendor::HelloId,
            base_url: "https://x.example".into(),
            timeout: Duration::from_secs(5),
            max_concurrent_requests: 1,
            requests_per_second: 10,
            ca_pem: None,
        };
        let http = VendorHttp::new(&settings, &policy(false)).expect("transport");
        http.hold_off(&VendorError::permanent("VendorRejected", "no"));
        http.hold_off(&VendorError::transient(
            "VendorUnavailable",
            "no wait given",
        ));
        assert_eq!(http.holding_off(), Ok(()));

        http.hold_off(&VendorError::Transient {
            reason: "VendorRateLimited",
            message: "vendor answered HTTP 429 for jane.doe".into(),
            retry_after: Some(Duration::from_secs(30)),
        });
        // A shorter wait that comes later does not cut the longer one short.
        http.hold_off(&VendorError::Transient {
            reason: "VendorThrottled",
            message: "busy".into(),
            retry_after: Some(Duration::from_millis(1)),
        });
        let held = http.holding_off().expect_err("held off");
        assert_eq!(held.reason(), "VendorRateLimited");
        assert!(!held.message().contains("jane.doe"), "{held}");
        let left = held.retry_after().unwrap_or_default();
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
    }

    #[test]
    fn a_huge_vendor_wait_is_capped_not_a_panic() {
        let settings = EndpointSettings {
            vendor: Vendor::OracleCrmOnDemand,
            base_url: "https://x.example".into(),
            timeout: Duration::from_secs(5),
            max_concurrent_requests: 1,
            requests_per_second: 10,
            ca_pem: None,
        };
        let policy = TransportPolicy {
            max_vendor_wait: Duration::from_secs(7),
            ..policy(false)
        };
        let http = VendorHttp::new(&settings, &policy).expect("transport");
        for wait in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_millis(u64::MAX),
        ] {
            http.hold_off(&VendorError::Transient {
                reason: "VendorRateLimited",
                message: "busy".into(),
                retry_after: Some(wait),
            });
        }
        let left = http
            .holding_off()
            .expect_err("held off")
            .retry_after()
            .unwrap_or_default();
        assert!(
            left <= Duration::from_secs(7) && left > Duration::from_secs(6),
            "{left:?}"
        );
        // Retry-After as the vendor sent it, unbounded: the cap is applied where it is used.
        let response = HttpResponse {
            status: StatusCode::TOO_MANY_REQUESTS,
            headers: [(
                http::header::RETRY_AFTER,
                "18446744073709551615".parse().expect("header"),
            )]
            .into_iter()
            .collect(),
            body: Bytes::new(),
        };
        let err = classify_status(&response, None);
        http.hold_off(&err);
        assert!(http.holding_off().is_err());
    }

    #[test]
    fn private_addresses_need_a_flag_or_a_trusted_name() {
        for refused in [
            "https://127.0.0.1:8443",
            "https://169.254.169.254/latest",
            "https://10.0.0.1",
            "https://172.16.5.4",
            "https://192.168.1.1",
            "https://100.64.0.1",
            "https://0.0.0.0",
            "https://[::1]",
            "https://[fd00::1]",
            "https://[fe80::1]",
            "https://[::ffff:127.0.0.1]",
            "https://[::ffff:169.254.169.254]",
        ] {
            assert!(
                matches!(
                    parse_base_url(refused, &policy(false)),
                    Err(TransportError::AddressNotAllowed(_))
                ),
                "{refused}"
            );
            let flagged = TransportPolicy {
                allow_private_addresses: true,
                ..policy(false)
            };
            assert!(parse_base_url(refused, &flagged).is_ok(), "{refused}");
        }
        for public in [
            "https://93.184.216.34",
            "https://[2606:4700::1111]",
            "https://x.example",
        ] {
            assert!(parse_base_url(public, &policy(false)).is_ok(), "{public}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_on_the_addresses_they_resolve_to() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().expect("name");
        let refused = PublicAddressesOnly
            .resolve(name("localhost"))
            .await
            .err()
            .expect("localhost resolves to loopback only");
        assert!(
            refused
                .to_string()
                .contains("--allow-private-vendor-addresses"),
            "{refused}"
        );
        // The refusal reaches the resource as its own reason, without connecting anywhere.
        let settings = EndpointSettings {
            vendor: Vendor::HelloId,
            base_url: "http://localhost:9".into(),
            timeout: Duration::from_secs(5),
            max_concurrent_requests: 1,
            requests_per_second: 10,
            ca_pem: None,
        };
        let http = VendorHttp::new(&settings, &policy(true)).expect("transport");
        let err = http
            .send("Test", http.client().get(http.url(&["x"])))
            .await
            .expect_err("refused");
        assert_eq!(err.reason(), "VendorAddressNotAllowed", "{err}");
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn a_closed_fence_refuses_unsent_and_cuts_in_flight_requests() {
        // A server that accepts and never answers: only the fence can end the request.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let settings = EndpointSettings {
            vendor: Vendor::HelloId,
            base_url: format!("http://{addr}"),
            timeout: Duration::from_secs(30),
            max_concurrent_requests: 1,
            requests_per_second: 10,
            ca_pem: None,
        };
        let fence = Fence::closed();
        let policy = TransportPolicy {
            allow_http: true,
            allow_private_addresses: true,
            fence: fence.clone(),
            ..TransportPolicy::default()
        };
        let http = VendorHttp::new(&settings, &policy).expect("transport");
        let err = http
            .send("FenceTest", http.client().post(http.url(&["x"])))
            .await
            .expect_err("refused");
        assert_eq!(err.reason(), NOT_LEADER, "{err}");
        assert!(!err.outcome_unknown(), "nothing was sent");

        fence.extend_until(tokio::time::Instant::now() + Duration::from_millis(300));
        let started = Instant::now();
        let err = http
            .send("FenceTest", http.client().post(http.url(&["x"])))
            .await
            .expect_err("cut off");
        assert_eq!(err.reason(), FENCED_IN_FLIGHT, "{err}");
        assert!(err.outcome_unknown(), "it may have reached the vendor");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ended at the fence"
        );
        let text = crate::metrics::encode();
        assert!(
            text.contains("credsync_vendor_requests_total{vendor=\"helloId\",operation=\"FenceTest\",outcome=\"fenced\"} 2"),
            "{text}"
        );
        accepted.abort();
    }

    #[test]
    fn the_user_agent_names_the_replica() {
        assert_eq!(
            user_agent(None),
            concat!("credsync/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            user_agent(Some("credsync-7d9f-x2\r\n")),
            concat!(
                "credsync/",
                env!("CARGO_PKG_VERSION"),
                " (credsync-7d9f-x2)"
            )
        );
    }

    #[test]
    fn cut_is_bounded_and_char_safe() {
        let long = "é".repeat(1000);
        let out = cut(&long);
        assert!(out.chars().count() <= MAX_ERROR_TEXT + 1);
        assert_eq!(cut("a\nb"), "a b");
    }
}
