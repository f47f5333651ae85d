//! Oracle CRM On Demand simulator: PasswordWS SetPassword at `POST /Services/Integration`,
//! SOAP 1.1 with SOAPAction, a WS-Security UsernameToken, SBL-coded faults and throttling.
//!
//! Written from the seed (002), never from credsync's client: the namespaces and element names
//! are spelled here as the seed spells them. The endpoint path and SOAPAction are not in the
//! seed; they are Oracle's usual ones, and [`OracleSim::router_at`] serves another path so a
//! test can see what credsync does when the assumed one is wrong.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::in_order;
use credsync::vendors::xml::{self, XmlWriter};

/// The seed's `soap:` namespace (SOAP 1.1).
const SOAP11_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The seed's body namespace.
const PASSWORD_NS: &str = "urn:crmondemand/ws/password/";
/// The seed's `wsse:` namespace.
const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// The seed's password Type.
const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
/// Oracle's SOAPAction pattern (`document/<namespace>:<Operation>`); not in the seed.
const SET_PASSWORD_ACTION: &str = "document/urn:crmondemand/ws/password/:SetPassword";

#[derive(Default, Debug)]
struct Records {
    passwords: BTreeMap<String, String>,
    sets: usize,
    faults: Vec<(String, String)>,
}

/// The simulator's state: the integration user's credentials and each user's password.
#[derive(Clone)]
pub struct OracleSim {
    username: String,
    password: String,
    records: Arc<Mutex<Records>>,
}

impl OracleSim {
    pub fn new(username: &str, password: &str) -> Self {
        OracleSim {
            username: username.into(),
            password: password.into(),
            records: Arc::default(),
        }
    }

    pub fn router(&self) -> Router {
        self.router_at("/Services/Integration")
    }

    /// Serve the web services endpoint at `path` instead; any other path gets the web
    /// server's HTML 404, not a SOAP fault.
    pub fn router_at(&self, path: &str) -> Router {
        Router::new()
            .route(path, post(set_password))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    [("Content-Type", "text/html")],
                    "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>",
                )
            })
            .with_state(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The password a user has now.
    pub fn password_of(&self, user_id: &str) -> Option<String> {
        self.lock().passwords.get(user_id).cloned()
    }

    /// Passwords set successfully.
    pub fn sets(&self) -> usize {
        self.lock().sets
    }

    /// Answer the next `n` calls with SBL-ODU-01005, "try again in `ms` ms".
    pub fn throttle_next(&self, n: usize, ms: u64) {
        for _ in 0..n {
            self.fault_next(
                1,
                "SBL-ODU-01005",
                &format!("The server is busy, try again in {ms} ms."),
            );
        }
    }

    /// Answer the next `n` calls with a fault of this SBL code.
    pub fn fault_next(&self, n: usize, code: &str, text: &str) {
        let mut records = self.lock();
        for _ in 0..n {
            records.faults.push((code.into(), text.into()));
        }
    }
}

fn fault(code: &str, text: &str) -> Response {
    let mut w = XmlWriter::new();
    w.start("SOAP-ENV:Envelope", &[("xmlns:SOAP-ENV", SOAP11_ENV)])
        .start("SOAP-ENV:Body", &[])
        .start("SOAP-ENV:Fault", &[]);
    w.text_element("faultcode", &[], "SOAP-ENV:Server")
        .text_element("faultstring", &[], &format!("{code}: {text}"))
        .start("detail", &[])
        .start("siebdetail", &[("xmlns", "http://www.siebel.com/ws/fault")])
        .start("errorstack", &[])
        .start("error", &[])
        .text_element("errorcode", &[], code)
        .text_element("errormsg", &[], text)
        .end("error")
        .end("errorstack")
        .end("siebdetail")
        .end("detail");
    w.end("SOAP-ENV:Fault")
        .end("SOAP-ENV:Body")
        .end("SOAP-ENV:Envelope");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [("Content-Type", "text/xml; charset=utf-8")],
        w.finish(),
    )
        .into_response()
}

async fn set_password(State(sim): State<OracleSim>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    if !header("content-type").starts_with("text/xml") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "SOAP 1.1 needs text/xml",
        )
            .into_response();
    }
    if header("soapaction").trim_matches('"') != SET_PASSWORD_ACTION {
        return fault("SBL-EAI-04116", "unknown SOAPAction");
    }
    let Ok(root) = xml::parse(&body) else {
        return fault("SBL-EAI-04117", "request is not well-formed XML");
    };
    if root.name != "Envelope" || root.namespace.as_deref() != Some(SOAP11_ENV) {
        return fault("SBL-EAI-04117", "not a SOAP 1.1 envelope");
    }
    let token = root.path(&["Header", "Security", "UsernameToken"]);
    let token_ok = token.is_some_and(|t| {
        t.namespace.as_deref() == Some(WSSE_NS)
            && t.child_text("Username") == Some(sim.username.as_str())
            && t.child("Password").is_some_and(|p| {
                p.text == sim.password && p.attribute("Type") == Some(PASSWORD_TEXT)
            })
    });
    if !token_ok {
        return fault(
            "SBL-DAT-00565",
            "Invalid user name or password (WS-Security UsernameToken)",
        );
    }
    if let Some((code, text)) = {
        let mut records = sim.lock();
        (!records.faults.is_empty()).then(|| records.faults.remove(0))
    } {
        return fault(&code, &text);
    }
    let Some(input) = root
        .path(&["Body", "PasswordWS_SetPassword_Input"])
        .filter(|i| i.namespace.as_deref() == Some(PASSWORD_NS))
    else {
        return fault(
            "SBL-EAI-04117",
            "expected PasswordWS_SetPassword_Input in urn:crmondemand/ws/password/",
        );
    };
    let users: Vec<_> = input
        .child("ListOfUser")
        .map(|l| l.children_named("User").collect())
        .unwrap_or_default();
    if users.is_empty() {
        return fault("SBL-EAI-04117", "ListOfUser/User is required");
    }
    for user in &users {
        let names: Vec<&str> = user.children.iter().map(|c| c.name.as_str()).collect();
        if !in_order(
            &names,
            &[
                "UserId",
                "EMailAddr",
                "Password",
                "IntegrationId",
                "ExternalSystemId",
            ],
        ) {
            return fault("SBL-EAI-04117", "User elements out of order");
        }
        let (Some(id), Some(password)) = (
            user.child_text("UserId").filter(|u| !u.is_empty()),
            user.child("Password").map(|p| p.text.clone()),
        ) else {
            return fault("SBL-DAT-00498", "UserId and Password are required");
        };
        if password.is_empty() {
            return fault("SBL-DAT-00498", "Password is required");
        }
        let mut records = sim.lock();
        records.passwords.insert(id.to_string(), password);
        records.sets += 1;
    }
    let mut w = XmlWriter::new();
    w.start(
        "SOAP-ENV:Envelope",
        &[
            ("xmlns:SOAP-ENV", SOAP11_ENV),
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
            ("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"),
        ],
    )
    .start("SOAP-ENV:Body", &[])
    .start(
        "ns:PasswordWS_SetPassword_Output",
        &[("xmlns:ns", PASSWORD_NS)],
    )
    .text_element("ns:Status", &[], "Success")
    .end("ns:PasswordWS_SetPassword_Output")
    .end("SOAP-ENV:Body")
    .end("SOAP-ENV:Envelope");
    ([("Content-Type", "text/xml; charset=utf-8")], w.finish()).into_response()
}
