//! SuperOffice simulator: untrusted credentials through NetServer SOAP
//! (`POST /Remote/Services84/User.svc`, SOAP 1.1 with SOAPAction or SOAP 1.2) and the WebAPI
//! REST agent (`POST /api/v1/Agents/User/{operation}`), with ticket, application token and
//! REST auth checks, Succeeded=false/ExceptionInfo failures and SOAP faults.
//!
//! Written from the seeds (000 SOAP, 001 REST), never from credsync's client: namespaces,
//! SOAPActions and element names are spelled here as the seeds spell them, so a wrong guess in
//! the client fails the tests. Where the seeds are silent it answers in each way an
//! installation might ([`SuperOfficeSim::dates_without_offset`], [`SuperOfficeSim::camel_case`],
//! [`SuperOfficeSim::without_get`], [`SuperOfficeSim::without_remove`],
//! [`SuperOfficeSim::fail_next_with_fault`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{basic_auth_ok, in_order};
use credsync::vendors::xml::{self, Element, XmlWriter};

/// SOAP 1.1's envelope namespace (the WSDL's binding).
const SOAP11_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2's envelope namespace, as in seed 000.
const SOAP12_ENV: &str = "http://www.w3.org/2003/05/soap-envelope";
/// The `User:` namespace of seed 000.
const SERVICES84_NS: &str = "http://www.superoffice.net/ws/crm/NetServer/Services84";
/// WCF's namespace for the ActionNotSupported fault code.
const WCF_ADDRESSING_NONE: &str = "http://schemas.microsoft.com/ws/2005/05/addressing/none";

/// One stored credential.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    pub secret_value: String,
    pub comment: String,
    pub is_active: bool,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

/// (associate id, 0 for the calling user; type; public value).
pub type Key = (i32, String, String);

/// A queued failure: the message, and whether SOAP carries it in a Fault (else Succeeded=false).
#[derive(Default)]
struct Records {
    credentials: BTreeMap<Key, Stored>,
    saves: usize,
    exceptions: Vec<(String, bool)>,
}

/// How the simulated installation answers where the seeds are silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Variant {
    /// Dates read back as .NET writes them by default, without an offset (UTC wall-clock).
    dates_without_offset: bool,
    /// REST answers with camelCase keys.
    camel_case: bool,
    /// The Remove operations exist.
    remove: bool,
    /// The Get operations exist.
    get: bool,
}

/// The simulator's state.
#[derive(Clone)]
pub struct SuperOfficeSim {
    ticket: String,
    app_token: Option<String>,
    basic: Option<(String, String)>,
    records: Arc<Mutex<Records>>,
    variant: Variant,
}

impl SuperOfficeSim {
    /// Accepts this ticket (SOAP Credentials/Ticket; REST `SOTicket` or `Bearer`) and, when
    /// given, requires this application token.
    pub fn new(ticket: &str, app_token: Option<&str>) -> Self {
        SuperOfficeSim {
            ticket: ticket.into(),
            app_token: app_token.map(str::to_string),
            basic: None,
            records: Arc::default(),
            variant: Variant {
                dates_without_offset: false,
                camel_case: false,
                remove: true,
                get: true,
            },
        }
    }

    /// Read dates back without an offset (`2023-03-31T13:20:37`, the UTC wall-clock time).
    pub fn dates_without_offset(mut self) -> Self {
        self.variant.dates_without_offset = true;
        self
    }

    /// Answer REST reads with camelCase keys.
    pub fn camel_case(mut self) -> Self {
        self.variant.camel_case = true;
        self
    }

    /// Have no Get operations (answered like a missing Remove, see [`Self::without_remove`]).
    pub fn without_get(mut self) -> Self {
        self.variant.get = false;
        self
    }

    /// Have no Remove operations: SOAP answers WCF's ActionNotSupported fault, REST the
    /// ASP.NET routing 404.
    pub fn without_remove(mut self) -> Self {
        self.variant.remove = false;
        self
    }

    /// Also accept HTTP Basic with these credentials on REST.
    pub fn with_basic(mut self, user: &str, password: &str) -> Self {
        self.basic = Some((user.into(), password.into()));
        self
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/Remote/Services84/User.svc", post(soap))
            .route("/api/v1/Agents/User/{operation}", post(rest))
            .with_state(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored credential, if any.
    pub fn get(&self, associate: i32, credential_type: &str, public_value: &str) -> Option<Stored> {
        self.lock()
            .credentials
            .get(&(associate, credential_type.into(), public_value.into()))
            .cloned()
    }

    /// Successful saves.
    pub fn saves(&self) -> usize {
        self.lock().saves
    }

    /// Change a stored credential behind credsync's back (drift).
    pub fn tamper(
        &self,
        associate: i32,
        credential_type: &str,
        public_value: &str,
        change: impl FnOnce(&mut Stored),
    ) {
        if let Some(c) = self.lock().credentials.get_mut(&(
            associate,
            credential_type.into(),
            public_value.into(),
        )) {
            change(c);
        }
    }

    /// Answer the next `n` calls with Succeeded=false (SOAP) or a 400 (REST) carrying `message`.
    pub fn fail_next_with_exception(&self, n: usize, message: &str) {
        let mut records = self.lock();
        for _ in 0..n {
            records.exceptions.push((message.into(), false));
        }
    }

    /// Answer the next `n` calls with a SOAP Fault whose faultstring says only "An error
    /// occurred" while the Header's ExceptionInfo carries `message` (REST: a 400 as above).
    pub fn fail_next_with_fault(&self, n: usize, message: &str) {
        let mut records = self.lock();
        for _ in 0..n {
            records.exceptions.push((message.into(), true));
        }
    }

    /// A date as read back: as stored, or as UTC wall-clock time without an offset.
    fn date_out(&self, stored: &Option<String>) -> Option<String> {
        let stored = stored.as_ref()?;
        if !self.variant.dates_without_offset {
            return Some(stored.clone());
        }
        Some(
            stored
                .parse::<k8s_openapi::jiff::Timestamp>()
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
                .unwrap_or_else(|_| stored.clone()),
        )
    }

    /// Perform an operation; Err is a message for the caller's error shape.
    fn perform(
        &self,
        operation: &str,
        associate: Option<i32>,
        credential_type: &str,
        public_value: Option<&str>,
        save: Option<Stored>,
    ) -> Result<Vec<(String, Stored)>, (String, bool)> {
        let mut records = self.lock();
        if !records.exceptions.is_empty() {
            return Err(records.exceptions.remove(0));
        }
        let refuse = |m: &str| Err((m.to_string(), false));
        let who = associate.unwrap_or(0);
        let base = operation.trim_end_matches("ForAssociate");
        if operation.ends_with("ForAssociate") != associate.is_some() {
            return refuse("AssociateId belongs to the ...ForAssociate operations");
        }
        match base {
            "SaveUntrustedCredentials" => {
                let (Some(public), Some(stored)) = (public_value, save) else {
                    return refuse("Credentials are required");
                };
                if stored.secret_value.chars().count() > 70
                    || public.chars().count() > 238
                    || stored.comment.chars().count() > 255
                {
                    return refuse("Value too long");
                }
                records
                    .credentials
                    .insert((who, credential_type.into(), public.into()), stored);
                records.saves += 1;
                Ok(Vec::new())
            }
            "GetUntrustedCredentials" => Ok(records
                .credentials
                .iter()
                .filter(|((a, t, _), _)| *a == who && t == credential_type)
                .map(|((_, _, p), c)| (p.clone(), c.clone()))
                .collect()),
            "RemoveUntrustedCredentials" => {
                let Some(public) = public_value else {
                    return refuse("PublicValue is required");
                };
                records
                    .credentials
                    .remove(&(who, credential_type.into(), public.into()));
                Ok(Vec::new())
            }
            other => refuse(&format!("unknown operation {other}")),
        }
    }
}

fn soap_reply(
    version_ns: &str,
    status: StatusCode,
    header: impl FnOnce(&mut XmlWriter),
    body: impl FnOnce(&mut XmlWriter),
) -> Response {
    let content_type = if version_ns == SOAP11_ENV {
        "text/xml; charset=utf-8"
    } else {
        "application/soap+xml; charset=utf-8"
    };
    let mut w = XmlWriter::new();
    w.start(
        "SOAP-ENV:Envelope",
        &[
            ("xmlns:SOAP-ENV", version_ns),
            ("xmlns:User", SERVICES84_NS),
        ],
    );
    w.start("SOAP-ENV:Header", &[]);
    header(&mut w);
    w.end("SOAP-ENV:Header").start("SOAP-ENV:Body", &[]);
    body(&mut w);
    w.end("SOAP-ENV:Body").end("SOAP-ENV:Envelope");
    (status, [("Content-Type", content_type)], w.finish()).into_response()
}

/// Who a fault blames, and WCF's answer to an operation the service does not have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FaultCode {
    Sender,
    Receiver,
    ActionNotSupported,
}

fn soap_fault(version_ns: &str, sender: bool, text: &str) -> Response {
    let code = if sender {
        FaultCode::Sender
    } else {
        FaultCode::Receiver
    };
    soap_fault_with(version_ns, code, text, |_| {})
}

/// A fault with `header` written into the envelope's Header (NetServer's ExceptionInfo).
fn soap_fault_with(
    version_ns: &str,
    code: FaultCode,
    text: &str,
    header: impl FnOnce(&mut XmlWriter),
) -> Response {
    soap_reply(version_ns, StatusCode::INTERNAL_SERVER_ERROR, header, |w| {
        w.start("SOAP-ENV:Fault", &[]);
        if version_ns == SOAP11_ENV {
            match code {
                FaultCode::Sender => w.text_element("faultcode", &[], "SOAP-ENV:Client"),
                FaultCode::Receiver => w.text_element("faultcode", &[], "SOAP-ENV:Server"),
                FaultCode::ActionNotSupported => w.text_element(
                    "faultcode",
                    &[("xmlns:a", WCF_ADDRESSING_NONE)],
                    "a:ActionNotSupported",
                ),
            };
            w.text_element("faultstring", &[], text);
        } else {
            let value = if code == FaultCode::Receiver {
                "SOAP-ENV:Receiver"
            } else {
                "SOAP-ENV:Sender"
            };
            w.start("SOAP-ENV:Code", &[])
                .text_element("SOAP-ENV:Value", &[], value);
            if code == FaultCode::ActionNotSupported {
                w.start("SOAP-ENV:Subcode", &[])
                    .text_element(
                        "SOAP-ENV:Value",
                        &[("xmlns:a", WCF_ADDRESSING_NONE)],
                        "a:ActionNotSupported",
                    )
                    .end("SOAP-ENV:Subcode");
            }
            w.end("SOAP-ENV:Code");
            w.start("SOAP-ENV:Reason", &[])
                .text_element("SOAP-ENV:Text", &[("xml:lang", "en")], text)
                .end("SOAP-ENV:Reason");
        }
        w.end("SOAP-ENV:Fault");
    })
}

/// NetServer's out-of-band failure report.
fn exception_info(w: &mut XmlWriter, message: &str) {
    w.text_element("User:Succeeded", &[], "false");
    w.start("User:ExceptionInfo", &[])
        .text_element("User:Message", &[], message)
        .text_element(
            "User:StackTrace",
            &[],
            "at SuperOffice.CRM.Services.Implementation.UserAgent",
        )
        .end("User:ExceptionInfo");
}

impl Variant {
    /// Whether the installation has this operation.
    fn serves(&self, operation: &str) -> bool {
        if operation.starts_with("RemoveUntrustedCredentials") {
            self.remove
        } else if operation.starts_with("GetUntrustedCredentials") {
            self.get
        } else {
            true
        }
    }
}

fn stored_from_xml(c: &Element) -> Stored {
    Stored {
        secret_value: c
            .child("SecretValue")
            .map(|e| e.text.clone())
            .unwrap_or_default(),
        comment: c
            .child("Comment")
            .map(|e| e.text.clone())
            .unwrap_or_default(),
        is_active: c.child_text("IsActive") == Some("true"),
        valid_from: c.child_text("ValidFrom").map(str::to_string),
        valid_to: c.child_text("ValidTo").map(str::to_string),
    }
}

async fn soap(State(sim): State<SuperOfficeSim>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header("content-type");
    let version_ns = if content_type.starts_with("text/xml") {
        SOAP11_ENV
    } else if content_type.starts_with("application/soap+xml") {
        SOAP12_ENV
    } else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)",
        )
            .into_response();
    };
    let Ok(root) = xml::parse(&body) else {
        return soap_fault(version_ns, true, "request is not well-formed XML");
    };
    if root.name != "Envelope" || root.namespace.as_deref() != Some(version_ns) {
        return soap_fault(
            version_ns,
            true,
            "the envelope's namespace does not match the SOAP version of the Content-Type",
        );
    }
    let ticket_ok = root
        .path(&["Header", "Credentials", "Ticket"])
        .is_some_and(|t| t.text == sim.ticket && t.namespace.as_deref() == Some(SERVICES84_NS));
    let token_ok = sim.app_token.as_ref().is_none_or(|want| {
        root.path(&["Header", "ApplicationToken"])
            .is_some_and(|t| &t.text == want)
    });
    if !ticket_ok || !token_ok {
        return soap_fault(version_ns, true, "Invalid ticket or application token");
    }
    let Some(op) = root
        .child("Body")
        .and_then(|b| b.children.first())
        .filter(|o| o.namespace.as_deref() == Some(SERVICES84_NS))
    else {
        return soap_fault(version_ns, true, "no Services84 operation in the Body");
    };
    if !sim.variant.serves(&op.name) {
        let action = format!("{SERVICES84_NS}/User/{}", op.name);
        return soap_fault_with(
            version_ns,
            FaultCode::ActionNotSupported,
            &format!(
                "The message with Action '{action}' cannot be processed at the receiver, due to a ContractFilter mismatch at the EndpointDispatcher."
            ),
            |_| {},
        );
    }
    if version_ns == SOAP11_ENV
        && header("soapaction").trim_matches('"') != format!("{SERVICES84_NS}/User/{}", op.name)
    {
        return soap_fault(version_ns, true, "SOAPAction does not match the operation");
    }
    let names: Vec<&str> = op.children.iter().map(|c| c.name.as_str()).collect();
    if !in_order(
        &names,
        &["AssociateId", "Type", "Credentials", "PublicValue"],
    ) {
        return soap_fault(version_ns, true, "operation elements out of order");
    }
    if let Some(c) = op.child("Credentials") {
        let names: Vec<&str> = c.children.iter().map(|c| c.name.as_str()).collect();
        if !in_order(
            &names,
            &[
                "ValidFrom",
                "ValidTo",
                "Comment",
                "SecretValue",
                "PublicValue",
                "IsActive",
            ],
        ) {
            return soap_fault(
                version_ns,
                true,
                "UntrustedCredentials elements out of order",
            );
        }
    }
    let associate = op.child_text("AssociateId").and_then(|a| a.parse().ok());
    let credential_type = op.child("Type").map(|t| t.text.clone()).unwrap_or_default();
    let credentials = op.child("Credentials");
    let public = credentials
        .and_then(|c| c.child("PublicValue"))
        .or(op.child("PublicValue"))
        .map(|p| p.text.clone());
    let result = sim.perform(
        &op.name,
        associate,
        &credential_type,
        public.as_deref(),
        credentials.map(stored_from_xml),
    );
    let response = format!("User:{}Response", op.name);
    match result {
        Err((message, true)) => {
            soap_fault_with(version_ns, FaultCode::Sender, "An error occurred", |w| {
                exception_info(w, &message)
            })
        }
        Err((message, false)) => soap_reply(
            version_ns,
            StatusCode::OK,
            |w| exception_info(w, &message),
            |w| {
                w.empty(&response, &[]);
            },
        ),
        Ok(items) => soap_reply(
            version_ns,
            StatusCode::OK,
            |w| {
                w.text_element("User:Succeeded", &[], "true");
            },
            |w| {
                w.start(&response, &[]);
                if !items.is_empty() || op.name.starts_with("Get") {
                    w.start("User:Response", &[]);
                    for (public, c) in &items {
                        w.start("User:UntrustedCredentials", &[]);
                        w.optional("User:ValidFrom", sim.date_out(&c.valid_from).as_deref());
                        w.optional("User:ValidTo", sim.date_out(&c.valid_to).as_deref());
                        w.text_element("User:Comment", &[], &c.comment);
                        w.text_element("User:PublicValue", &[], public);
                        w.text_element(
                            "User:IsActive",
                            &[],
                            if c.is_active { "true" } else { "false" },
                        );
                        w.end("User:UntrustedCredentials");
                    }
                    w.end("User:Response");
                }
                w.end(&response);
            },
        ),
    }
}

async fn rest(
    State(sim): State<SuperOfficeSim>,
    Path(operation): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let authorized = auth == format!("SOTicket {}", sim.ticket)
        || auth == format!("Bearer {}", sim.ticket)
        || sim
            .basic
            .as_ref()
            .is_some_and(|(u, p)| basic_auth_ok(&headers, u, p));
    let token_ok = sim.app_token.as_ref().is_none_or(|want| {
        headers.get("so-apptoken").and_then(|v| v.to_str().ok()) == Some(want.as_str())
    });
    if !authorized || !token_ok {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"Error": true, "ErrorType": "SoAuthenticationException", "ErrorMessage": "Not authenticated"}))).into_response();
    }
    let bad = |m: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"Message": "The request is invalid.", "MessageDetail": m})),
        )
            .into_response()
    };
    if !sim.variant.serves(&operation) {
        // ASP.NET's routing 404: the shape of an application error, the words of the router.
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "Message": format!("No HTTP resource was found that matches the request URI '/api/v1/Agents/User/{operation}'."),
                "MessageDetail": "No action was found on the controller 'User' that matches the request."
            })),
        )
            .into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad("the body is not JSON");
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let associate = body
        .get("AssociateId")
        .and_then(Value::as_i64)
        .and_then(|a| i32::try_from(a).ok());
    let credential_type = s(&body, "Type").unwrap_or_default();
    let credentials = body.get("Credentials");
    let public = credentials
        .and_then(|c| s(c, "PublicValue"))
        .or(s(&body, "PublicValue"));
    let stored = credentials.map(|c| Stored {
        secret_value: s(c, "SecretValue").unwrap_or_default(),
        comment: s(c, "Comment").unwrap_or_default(),
        is_active: c.get("IsActive").and_then(Value::as_bool).unwrap_or(false),
        valid_from: s(c, "ValidFrom"),
        valid_to: s(c, "ValidTo"),
    });
    match sim.perform(&operation, associate, &credential_type, public.as_deref(), stored) {
        Err((message, _)) => bad(&message),
        Ok(items) if operation.starts_with("Get") => axum::Json(
            items
                .into_iter()
                .map(|(p, c)| {
                    let (from, to) = (sim.date_out(&c.valid_from), sim.date_out(&c.valid_to));
                    if sim.variant.camel_case {
                        json!({"validFrom": from, "validTo": to, "comment": c.comment, "secretValue": "", "publicValue": p, "isActive": c.is_active})
                    } else {
                        json!({"ValidFrom": from, "ValidTo": to, "Comment": c.comment, "SecretValue": "", "PublicValue": p, "IsActive": c.is_active})
                    }
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Ok(_) => axum::Json(json!(true)).into_response(),
    }
}
