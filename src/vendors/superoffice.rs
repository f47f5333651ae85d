//! SuperOffice untrusted credentials (the User agent), over NetServer SOAP (Services84 User.svc,
//! SOAP 1.1 per the WSDL or 1.2 per the published sample) or the WebAPI REST agent endpoints.
//! Save and Remove, and Get for drift read-back; `...ForAssociate` when an associate is named.
//!
//! Assumptions where the seeds are silent: Get takes `Type` (and `AssociateId`) and answers the
//! list of UntrustedCredentials (SOAP: `<Response>` holding `UntrustedCredentials` items; REST: a
//! JSON array, or one wrapped in a response object, keys in either casing); Remove takes `Type`
//! and `PublicValue`. The secret value is never read back, so drift compares the public fields
//! only. Dates read back without an offset (usual for .NET) are taken as UTC wall-clock time.
//!
//! SuperOffice's own error formats, the only ones that may say "not found": REST
//! `{Message, MessageDetail}` or `{Error, ErrorType, ErrorMessage}` (except ASP.NET's routing
//! texts, which share the first shape); SOAP `Succeeded=false` with `ExceptionInfo`, or a Fault
//! (its ExceptionInfo preferred over the bare fault text). A 404/405 in any other form, or a
//! WCF ActionNotSupported fault, means the installation has no such operation: the connection
//! records it (docs/vendors/superoffice.md), Get then degrades to write-only and Remove blocks
//! the deletion instead of pretending the record is gone.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::capabilities::says_no_route;
use super::http::{HttpResponse, VendorHttp, classify_status, cut};
use super::lenient;
use super::soap::{self, Envelope, ROUTE_NOT_FOUND, SoapFault, SoapOutcome};
use super::xml::{Element, XmlWriter};
use super::{
    ClientBuilder, ConnectError, ExternalClient, Observation, VendorClient, VendorError,
    VendorModule, expose_secret, fingerprint_json,
};
use crate::api::{SoapVersion, SuperOfficeApi, SuperOfficeEndpoint};
use crate::secrets::ConnectionSecrets;

pub const SERVICES84_NS: &str = "http://www.superoffice.net/ws/crm/NetServer/Services84";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const XSD: &str = "http://www.w3.org/2001/XMLSchema";
/// The SOAP endpoint below the installation URL.
pub const SOAP_PATH: [&str; 3] = ["Remote", "Services84", "User.svc"];

enum Auth {
    Ticket(SecretString),
    Basic(SecretString, SecretString),
    Bearer(SecretString),
}

/// A SuperOffice installation's client.
pub struct SuperOfficeClient {
    pub(super) http: Arc<VendorHttp>,
    api: SuperOfficeApi,
    soap_version: SoapVersion,
    app_token: Option<SecretString>,
    auth: Auth,
}

impl std::fmt::Debug for SuperOfficeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuperOfficeClient")
            .field("http", &self.http)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// SuperOffice's part of a connection: its block of the spec.
#[async_trait]
impl VendorModule for SuperOfficeEndpoint {
    fn url(&self) -> &str {
        &self.url
    }

    async fn credentials(
        &self,
        secrets: &ConnectionSecrets<'_>,
    ) -> Result<ClientBuilder, ConnectError> {
        let a = &self.auth;
        let auth = match (&a.ticket_secret_ref, &a.basic_secret_ref, &a.bearer_secret_ref) {
            (Some(t), None, None) => Auth::Ticket(secrets.key(t).await?),
            (None, Some(b), None) => {
                let mut v = secrets.keys(b, &["username", "password"]).await?.into_iter();
                match (v.next(), v.next()) {
                    (Some(u), Some(p)) => Auth::Basic(u, p),
                    _ => return Err(ConnectError::Invalid("SuperOffice basicSecretRef needs keys username and password".into())),
                }
            }
            (None, None, Some(t)) => Auth::Bearer(secrets.key(t).await?),
            _ => return Err(ConnectError::Invalid("SuperOffice auth needs exactly one of ticketSecretRef, basicSecretRef, bearerSecretRef".into())),
        };
        if self.api == SuperOfficeApi::Soap && !matches!(auth, Auth::Ticket(_)) {
            return Err(ConnectError::Invalid("the SuperOffice SOAP API authenticates with a ticket: set auth.ticketSecretRef (basic and bearer are REST only)".into()));
        }
        let app_token = match &self.application_token_secret_ref {
            Some(r) => Some(secrets.key(r).await?),
            None => None,
        };
        let (api, soap_version) = (self.api, self.soap_version);
        Ok(Box::new(move |http| {
            VendorClient::SuperOffice(Arc::new(SuperOfficeClient {
                http,
                api,
                soap_version,
                app_token,
                auth,
            }))
        }))
    }
}

impl SuperOfficeClient {}

/// UntrustedCredentials, as sent (secret value included) and as read back (without it).
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct UntrustedCredentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    pub comment: String,
    #[serde(serialize_with = "expose_secret")]
    pub secret_value: SecretString,
    pub public_value: String,
    pub is_active: bool,
}

/// One user's (or associate's) credentials of one type.
#[derive(Serialize, Debug)]
pub struct CredentialSpec {
    #[serde(rename = "Type")]
    pub credential_type: String,
    pub associate_id: Option<i32>,
    pub credentials: UntrustedCredentials,
}

/// The three operations, with their wire names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Save,
    Get,
    Remove,
}

impl Operation {
    /// The operation's name, with `ForAssociate` when an associate is named.
    pub fn name(self, for_associate: bool) -> String {
        let base = match self {
            Operation::Save => "SaveUntrustedCredentials",
            Operation::Get => "GetUntrustedCredentials",
            Operation::Remove => "RemoveUntrustedCredentials",
        };
        if for_associate {
            format!("{base}ForAssociate")
        } else {
            base.to_string()
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Operation::Save => "SaveUntrustedCredentials",
            Operation::Get => "GetUntrustedCredentials",
            Operation::Remove => "RemoveUntrustedCredentials",
        }
    }
}

/// The SOAP envelope of an operation.
pub fn soap_envelope(
    version: SoapVersion,
    app_token: Option<&str>,
    ticket: &str,
    op: Operation,
    spec: &CredentialSpec,
) -> Vec<u8> {
    let name = op.name(spec.associate_id.is_some());
    Envelope::new(
        version,
        "SOAP-ENV",
        &[
            ("xmlns:xsi", XSI),
            ("xmlns:xsd", XSD),
            ("xmlns:User", SERVICES84_NS),
        ],
    )
    .header(|w| {
        if let Some(token) = app_token {
            w.text_element("User:ApplicationToken", &[], token);
        }
        w.start("User:Credentials", &[])
            .text_element("User:Ticket", &[], ticket)
            .end("User:Credentials");
    })
    .body(|w: &mut XmlWriter| {
        let el = format!("User:{name}");
        w.start(&el, &[]);
        if let Some(id) = spec.associate_id {
            w.text_element(
                "User:AssociateId",
                &[("xsi:type", "xsd:int")],
                &id.to_string(),
            );
        }
        w.text_element(
            "User:Type",
            &[("xsi:type", "xsd:string")],
            &spec.credential_type,
        );
        let c = &spec.credentials;
        match op {
            Operation::Save => {
                w.start(
                    "User:Credentials",
                    &[("xsi:type", "User:UntrustedCredentials")],
                );
                if let Some(v) = &c.valid_from {
                    w.text_element("User:ValidFrom", &[("xsi:type", "xsd:dateTime")], v);
                }
                if let Some(v) = &c.valid_to {
                    w.text_element("User:ValidTo", &[("xsi:type", "xsd:dateTime")], v);
                }
                w.text_element("User:Comment", &[("xsi:type", "xsd:string")], &c.comment);
                w.text_element(
                    "User:SecretValue",
                    &[("xsi:type", "xsd:string")],
                    c.secret_value.expose_secret(),
                );
                w.text_element(
                    "User:PublicValue",
                    &[("xsi:type", "xsd:string")],
                    &c.public_value,
                );
                w.text_element(
                    "User:IsActive",
                    &[("xsi:type", "xsd:boolean")],
                    if c.is_active { "true" } else { "false" },
                );
                w.end("User:Credentials");
            }
            Operation::Remove => {
                w.text_element(
                    "User:PublicValue",
                    &[("xsi:type", "xsd:string")],
                    &c.public_value,
                );
            }
            Operation::Get => {}
        }
        w.end(&el);
    })
}

/// The REST body of an operation.
pub fn rest_body(op: Operation, spec: &CredentialSpec) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    if let Some(id) = spec.associate_id {
        body.insert("AssociateId".into(), id.into());
    }
    body.insert("Type".into(), spec.credential_type.clone().into());
    match op {
        Operation::Save => {
            body.insert(
                "Credentials".into(),
                serde_json::to_value(&spec.credentials).unwrap_or_default(),
            );
        }
        Operation::Remove => {
            body.insert(
                "PublicValue".into(),
                spec.credentials.public_value.clone().into(),
            );
        }
        Operation::Get => {}
    }
    serde_json::Value::Object(body)
}

/// Public fields of a credential read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadBack {
    pub public_value: String,
    pub comment: String,
    pub is_active: bool,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

/// One credential of a SOAP Get answer; None without a PublicValue (it cannot be matched).
fn from_xml(el: &Element) -> Option<ReadBack> {
    Some(ReadBack {
        public_value: el.child("PublicValue")?.text.clone(),
        comment: el.child_text("Comment").unwrap_or_default().to_string(),
        is_active: el.child_text("IsActive") == Some("true"),
        valid_from: el.child_text("ValidFrom").map(str::to_string),
        valid_to: el.child_text("ValidTo").map(str::to_string),
    })
}

/// One credential of a REST Get answer, keys in either casing; None without a PublicValue.
fn from_json(v: &serde_json::Value) -> Option<ReadBack> {
    Some(ReadBack {
        public_value: lenient::string(v, "PublicValue")?,
        comment: lenient::string(v, "Comment").unwrap_or_default(),
        is_active: lenient::boolean(v, "IsActive").unwrap_or(false),
        valid_from: lenient::string(v, "ValidFrom"),
        valid_to: lenient::string(v, "ValidTo"),
    })
}

/// The credentials of a SOAP Get answer: `UntrustedCredentials` items in `<Response>` (or in
/// `<{Op}Result>`, WCF's default name, or directly in the operation's answer).
fn read_soap(payload: &Element) -> Vec<ReadBack> {
    let list = payload
        .child("Response")
        .or_else(|| payload.children.iter().find(|c| c.name.ends_with("Result")))
        .unwrap_or(payload);
    list.children_named("UntrustedCredentials")
        .filter_map(from_xml)
        .collect()
}

/// The credentials of a REST Get answer: a bare list or one wrapped in a response object.
fn read_rest(body: &[u8]) -> Result<Vec<ReadBack>, VendorError> {
    let answer = serde_json::from_slice::<serde_json::Value>(body).map_err(|e| {
        VendorError::transient(
            "VendorBadResponse",
            format!(
                "SuperOffice answered unreadable JSON: {}",
                cut(&e.to_string())
            ),
        )
    })?;
    Ok(lenient::list(&answer)
        .map(|items| items.iter().filter_map(from_json).collect())
        .unwrap_or_default())
}

/// Whether the desired time (None: not set in the spec) matches the one read back. A time
/// without an offset is SuperOffice's wall-clock time taken as UTC (see [`lenient::instant`]).
fn same_time(have: &Option<String>, want: &Option<String>) -> bool {
    match (have, want) {
        (_, None) => true,
        (Some(have), Some(want)) => lenient::same_instant(have, want),
        (None, Some(_)) => false,
    }
}

/// SuperOffice's own REST error text: {Message, MessageDetail} or {Error, ErrorType,
/// ErrorMessage}, keys in any casing. None when the body is in neither shape.
fn rest_message(response: &HttpResponse) -> Option<String> {
    let v = serde_json::from_slice::<serde_json::Value>(&response.body).ok()?;
    let s = |k: &str| lenient::string(&v, k).filter(|t| !t.trim().is_empty());
    match (
        s("Message"),
        s("MessageDetail"),
        s("ErrorType"),
        s("ErrorMessage").or(s("Error")),
    ) {
        (Some(m), d, _, _) => Some(match d {
            Some(d) => format!("{m} ({d})"),
            None => m,
        }),
        (None, _, Some(t), Some(m)) => Some(format!("{t}: {m}")),
        (None, _, None, Some(m)) => Some(m),
        _ => None,
    }
}

/// The REST error: the installation has no such route, or SuperOffice's own refusal.
fn rest_error(response: &HttpResponse, operation: &str) -> VendorError {
    let message = rest_message(response);
    if says_no_route(response.status, message.as_deref()) {
        return VendorError::permanent(
            ROUTE_NOT_FOUND,
            format!(
                "POST /api/v1/Agents/User/{operation} answered HTTP {} without a SuperOffice error",
                response.status.as_u16()
            ),
        );
    }
    classify_status(response, message)
}

/// Whether SuperOffice's own error text says the record does not exist.
fn says_not_found(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["not found", "does not exist", "doesn't exist", "no such"]
        .iter()
        .any(|t| text.contains(t))
}

/// NetServer's ExceptionInfo text: its Message (else FriendlyText, else its own text); never the
/// stack trace.
fn exception_info(scope: Option<&Element>) -> Option<String> {
    let info = scope?.find("ExceptionInfo")?;
    ["Message", "FriendlyText"]
        .iter()
        .find_map(|k| info.child_text(k).filter(|t| !t.is_empty()))
        .or(Some(info.text.trim()).filter(|t| !t.is_empty()))
        .map(str::to_string)
}

/// A refusal in SuperOffice's own words: VendorNotFound when they say the record does not
/// exist (then a Remove has nothing left to do), VendorRejected otherwise.
fn refusal(operation: &str, message: &str) -> VendorError {
    let reason = if says_not_found(message) {
        "VendorNotFound"
    } else {
        "VendorRejected"
    };
    VendorError::permanent(
        reason,
        format!("SuperOffice refused {operation}: {}", cut(message)),
    )
}

/// A SOAP fault: WCF's ActionNotSupported means no such operation; otherwise the ExceptionInfo
/// that NetServer sends along (Header or detail) says more than the bare fault text.
fn soap_fault_error(operation: &str, fault: SoapFault) -> VendorError {
    if fault.is_action_not_supported() {
        return VendorError::permanent(
            ROUTE_NOT_FOUND,
            format!(
                "User.svc answered ActionNotSupported for {operation}: {}",
                cut(&fault.reason)
            ),
        );
    }
    let info = exception_info(fault.header.as_ref()).or(exception_info(fault.detail.as_ref()));
    match info {
        Some(message) if !matches!(fault.code.as_str(), "Server" | "Receiver") => {
            refusal(operation, &message)
        }
        Some(message) => VendorError::transient(
            "VendorFault",
            format!("SuperOffice failed {operation}: {}", cut(&message)),
        ),
        None if says_not_found(&fault.reason) => refusal(operation, &fault.reason),
        None => fault.into_error(),
    }
}

/// One user's untrusted credentials of one type and public value.
pub struct UserCredentials {
    pub client: Arc<SuperOfficeClient>,
    pub spec: CredentialSpec,
}

enum Answer {
    Soap(Option<Element>),
    Rest(HttpResponse),
}

impl UserCredentials {
    async fn call(&self, op: Operation) -> Result<Answer, VendorError> {
        let c = &self.client;
        let name = op.name(self.spec.associate_id.is_some());
        match c.api {
            SuperOfficeApi::Soap => {
                let Auth::Ticket(ticket) = &c.auth else {
                    return Err(VendorError::permanent(
                        "InvalidConnection",
                        "SOAP needs a ticket",
                    ));
                };
                let envelope = soap_envelope(
                    c.soap_version,
                    c.app_token.as_ref().map(|t| t.expose_secret()),
                    ticket.expose_secret(),
                    op,
                    &self.spec,
                );
                let action = format!("{SERVICES84_NS}/User/{name}");
                match soap::call(
                    &c.http,
                    op.metric(),
                    c.http.url(&SOAP_PATH),
                    c.soap_version,
                    &action,
                    envelope,
                    &[],
                )
                .await?
                {
                    SoapOutcome::Fault(fault) => Err(soap_fault_error(&name, fault)),
                    SoapOutcome::Body { header, payload } => {
                        // NetServer also reports failure out of band: Succeeded=false + ExceptionInfo.
                        if let Some(h) = &header
                            && h.find("Succeeded")
                                .is_some_and(|s| s.text.trim() == "false")
                        {
                            let message = exception_info(Some(h)).unwrap_or_default();
                            return Err(refusal(&name, &message));
                        }
                        Ok(Answer::Soap(payload))
                    }
                }
            }
            SuperOfficeApi::Rest => {
                let url = c.http.url(&["api", "v1", "Agents", "User", &name]);
                let mut request = c
                    .http
                    .client()
                    .post(url)
                    .header(http::header::ACCEPT, "application/json")
                    .json(&rest_body(op, &self.spec));
                request = match &c.auth {
                    Auth::Basic(u, p) => {
                        request.basic_auth(u.expose_secret(), Some(p.expose_secret()))
                    }
                    Auth::Ticket(t) => request.header(
                        http::header::AUTHORIZATION,
                        format!("SOTicket {}", t.expose_secret()),
                    ),
                    Auth::Bearer(t) => request.bearer_auth(t.expose_secret()),
                };
                if let Some(token) = &c.app_token {
                    request = request.header("SO-AppToken", token.expose_secret());
                }
                let response = c.http.send(op.metric(), request).await?;
                if !response.status.is_success() {
                    return Err(rest_error(&response, &name));
                }
                Ok(Answer::Rest(response))
            }
        }
    }

    /// The credentials read back; None when the installation has no Get (then drift cannot
    /// be checked and the record is re-sent on change only).
    async fn read(&self) -> Result<Option<Vec<ReadBack>>, VendorError> {
        let answer = match self.call(Operation::Get).await {
            Ok(answer) => answer,
            Err(e) if e.reason() == ROUTE_NOT_FOUND => {
                self.client.http.capabilities().unsupported(
                    Operation::Get.metric(),
                    format!(
                        "{}; credsync cannot check drift and re-sends credentials on change only",
                        e.message()
                    ),
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.client
            .http
            .capabilities()
            .supported(Operation::Get.metric(), None);
        Ok(Some(match answer {
            Answer::Soap(payload) => payload.as_ref().map(read_soap).unwrap_or_default(),
            Answer::Rest(response) => read_rest(&response.body)?,
        }))
    }
}

#[async_trait]
impl ExternalClient for UserCredentials {
    /// SuperOffice answers nothing the status keeps.
    type Outputs = ();

    fn readable(&self) -> bool {
        !self
            .client
            .http
            .capabilities()
            .is_unsupported(Operation::Get.metric())
    }

    fn fingerprint_material(&self) -> zeroize::Zeroizing<Vec<u8>> {
        fingerprint_json(&self.spec)
    }

    async fn observe(&self) -> Result<Observation<()>, VendorError> {
        let want = &self.spec.credentials;
        let Some(read) = self.read().await? else {
            return Ok(Observation::Unknown);
        };
        let found = read
            .into_iter()
            .find(|c| c.public_value == want.public_value);
        Ok(match found {
            None => Observation::Missing,
            Some(have) => {
                let same = have.comment == want.comment
                    && have.is_active == want.is_active
                    && same_time(&have.valid_from, &want.valid_from)
                    && same_time(&have.valid_to, &want.valid_to);
                if same {
                    Observation::UpToDate(())
                } else {
                    Observation::Drifted(())
                }
            }
        })
    }

    async fn apply(&self) -> Result<(), VendorError> {
        let capabilities = self.client.http.capabilities();
        match self.call(Operation::Save).await {
            Ok(_) => {
                capabilities.supported(Operation::Save.metric(), None);
                Ok(())
            }
            Err(e) if e.reason() == ROUTE_NOT_FOUND => {
                capabilities.unsupported(
                    Operation::Save.metric(),
                    format!("{}; credsync cannot save credentials", e.message()),
                );
                Err(e.map_message(|m| {
                    format!("SuperOffice has no such operation ({m}); check the connection's url and api (Soap or Rest)")
                }))
            }
            Err(e) => Err(e),
        }
    }

    async fn delete(&self) -> Result<(), VendorError> {
        let capabilities = self.client.http.capabilities();
        let remove = Operation::Remove.metric();
        match self.call(Operation::Remove).await {
            // Removed, or SuperOffice said in its own error format that there is no such record:
            // already gone is what we wanted.
            Ok(_) => {
                capabilities.supported(remove, None);
                Ok(())
            }
            Err(e) if e.reason() == "VendorNotFound" => {
                capabilities.supported(remove, None);
                Ok(())
            }
            Err(e) if e.reason() == ROUTE_NOT_FOUND => {
                capabilities.unsupported(
                    remove,
                    format!(
                        "{}; deletions are blocked until deletionPolicy is Orphan",
                        e.message()
                    ),
                );
                Err(e.map_message(|m| {
                    format!("SuperOffice has no such delete operation ({m}), so the credentials are still live in SuperOffice; remove them there and set deletionPolicy: Orphan")
                }))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::xml;

    fn spec(associate: Option<i32>) -> CredentialSpec {
        CredentialSpec {
            credential_type: "imap".into(),
            associate_id: associate,
            credentials: UntrustedCredentials {
                valid_from: Some("2023-03-31T13:20:37Z".into()),
                valid_to: Some("2024-03-31T13:20:37Z".into()),
                comment: "Zoë <&> 'q' \"d\"".into(),
                secret_value: "p<a>ss&'\"".into(),
                public_value: "mail.example.com/jdoe".into(),
                is_active: true,
            },
        }
    }

    #[test]
    fn soap_save_matches_the_golden_files() {
        for (version, golden) in [
            (
                SoapVersion::V12,
                include_bytes!("../../tests/golden/superoffice_save_soap12.xml").as_slice(),
            ),
            (
                SoapVersion::V11,
                include_bytes!("../../tests/golden/superoffice_save_soap11.xml").as_slice(),
            ),
        ] {
            let built = xml::parse(&soap_envelope(
                version,
                Some("1234567-1234-9876"),
                "7T:1234abcxyzExample==",
                Operation::Save,
                &spec(None),
            ))
            .expect("parse");
            assert_eq!(built, xml::parse(golden).expect("golden"), "{version:?}");
            let creds = built
                .path(&["Body", "SaveUntrustedCredentials", "Credentials"])
                .expect("Credentials");
            let names: Vec<&str> = creds.children.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "ValidFrom",
                    "ValidTo",
                    "Comment",
                    "SecretValue",
                    "PublicValue",
                    "IsActive"
                ]
            );
        }
    }

    #[test]
    fn get_and_remove_match_the_golden_files() {
        let soap = |version, op, associate| {
            xml::parse(&soap_envelope(
                version,
                Some("1234567-1234-9876"),
                "7T:1234abcxyzExample==",
                op,
                &spec(associate),
            ))
            .expect("parse")
        };
        let golden = |bytes: &[u8]| xml::parse(bytes).expect("golden");
        assert_eq!(
            soap(SoapVersion::V11, Operation::Remove, None),
            golden(include_bytes!(
                "../../tests/golden/superoffice_remove_soap11.xml"
            ))
        );
        assert_eq!(
            soap(SoapVersion::V12, Operation::Get, Some(42)),
            golden(include_bytes!(
                "../../tests/golden/superoffice_get_for_associate_soap12.xml"
            ))
        );
        let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).expect("golden json");
        assert_eq!(
            rest_body(Operation::Remove, &spec(None)),
            json(include_str!(
                "../../tests/golden/superoffice_remove_rest.json"
            ))
        );
        assert_eq!(
            rest_body(Operation::Get, &spec(Some(42))),
            json(include_str!(
                "../../tests/golden/superoffice_get_for_associate_rest.json"
            ))
        );
    }

    #[test]
    fn for_associate_and_remove_shapes() {
        let doc = xml::parse(&soap_envelope(
            SoapVersion::V11,
            None,
            "t",
            Operation::Remove,
            &spec(Some(42)),
        ))
        .expect("parse");
        let op = doc
            .path(&["Body", "RemoveUntrustedCredentialsForAssociate"])
            .expect("op");
        let names: Vec<&str> = op.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["AssociateId", "Type", "PublicValue"]);
        assert!(doc.path(&["Header", "ApplicationToken"]).is_none());
        let rest = rest_body(Operation::Save, &spec(Some(7)));
        let golden: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/golden/superoffice_save_rest.json"
        ))
        .expect("golden");
        assert_eq!(rest, golden);
        assert!(!format!("{:?}", spec(None)).contains("p<a>ss"));
    }

    #[test]
    fn rest_errors_read_both_shapes() {
        let response = |body: &'static str| HttpResponse {
            status: http::StatusCode::BAD_REQUEST,
            headers: Default::default(),
            body: bytes::Bytes::from_static(body.as_bytes()),
        };
        let a = rest_error(
            &response(r#"{"Message":"Invalid type","MessageDetail":"Type 'x' unknown"}"#),
            "SaveUntrustedCredentials",
        );
        assert!(a.message().contains("Invalid type (Type 'x' unknown)") && !a.is_transient());
        let b = rest_error(
            &response(r#"{"Error":true,"ErrorType":"SoException","ErrorMessage":"No access"}"#),
            "SaveUntrustedCredentials",
        );
        assert!(
            b.message().contains("SoException: No access"),
            "{}",
            b.message()
        );
    }

    #[test]
    fn rest_404s_are_told_apart_by_their_body() {
        let response = |status: u16, body: &'static str| HttpResponse {
            status: http::StatusCode::from_u16(status).expect("status"),
            headers: Default::default(),
            body: bytes::Bytes::from_static(body.as_bytes()),
        };
        let op = "RemoveUntrustedCredentials";
        for (status, body, reason) in [
            (404, "", ROUTE_NOT_FOUND),
            (
                404,
                "<html><body>404 - Not Found</body></html>",
                ROUTE_NOT_FOUND,
            ),
            (
                404,
                r#"{"Message":"No HTTP resource was found that matches the request URI 'https://so/api/v1/Agents/User/RemoveUntrustedCredentials'.","MessageDetail":"No action was found on the controller 'User' that matches the request."}"#,
                ROUTE_NOT_FOUND,
            ),
            (
                405,
                r#"{"Message":"The requested resource does not support http method 'POST'."}"#,
                ROUTE_NOT_FOUND,
            ),
            (
                404,
                r#"{"Error":true,"ErrorType":"SoException","ErrorMessage":"Credentials not found"}"#,
                "VendorNotFound",
            ),
            (
                404,
                r#"{"message":"Untrusted credentials do not exist","messageDetail":"imap"}"#,
                "VendorNotFound",
            ),
            (
                400,
                r#"{"Message":"The request is invalid."}"#,
                "VendorRejected",
            ),
            (401, "", "VendorUnauthorized"),
            (500, "<html/>", "VendorUnavailable"),
        ] {
            assert_eq!(
                rest_error(&response(status, body), op).reason(),
                reason,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn soap_errors_prefer_exception_info() {
        let parse = |body: &str| {
            let response = HttpResponse {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                headers: Default::default(),
                body: bytes::Bytes::from(body.to_string()),
            };
            match soap::read_response(&response) {
                Ok(SoapOutcome::Fault(f)) => soap_fault_error("RemoveUntrustedCredentials", f),
                other => panic!("{other:?}"),
            }
        };
        let with_info = |code: &str, message: &str| {
            format!(
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:User="http://www.superoffice.net/ws/crm/NetServer/Services84"><s:Header><User:Succeeded>false</User:Succeeded><User:ExceptionInfo><User:Message>{message}</User:Message><User:StackTrace>at SoCore.Secret()</User:StackTrace></User:ExceptionInfo></s:Header><s:Body><s:Fault><faultcode>s:{code}</faultcode><faultstring>An error occurred</faultstring></s:Fault></s:Body></s:Envelope>"#
            )
        };
        let rejected = parse(&with_info(
            "Client",
            "Credential type 'imap' is not enabled",
        ));
        assert_eq!(rejected.reason(), "VendorRejected");
        assert!(rejected.message().contains("not enabled"), "{rejected}");
        assert!(
            !rejected.message().contains("An error occurred")
                && !rejected.message().contains("SoCore")
        );
        assert_eq!(
            parse(&with_info("Client", "Untrusted credentials not found")).reason(),
            "VendorNotFound"
        );
        assert!(parse(&with_info("Server", "database busy")).is_transient());
        let in_detail = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>fault</faultstring><detail><ExceptionInfo><Message>No access to user</Message></ExceptionInfo></detail></s:Fault></s:Body></s:Envelope>"#;
        assert!(parse(in_detail).message().contains("No access to user"));
        let no_action = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/ws/2005/05/addressing/none">a:ActionNotSupported</faultcode><faultstring>ContractFilter mismatch at the EndpointDispatcher</faultstring></s:Fault></s:Body></s:Envelope>"#;
        assert_eq!(parse(no_action).reason(), ROUTE_NOT_FOUND);
        let bare = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>bad</faultstring></s:Fault></s:Body></s:Envelope>"#;
        assert_eq!(parse(bare).reason(), "VendorFault");
    }

    #[test]
    fn read_back_in_any_casing_and_wrapping_skips_keyless_entries() {
        let want = ReadBack {
            public_value: "mail.example.com/jdoe".into(),
            comment: "c".into(),
            is_active: true,
            valid_from: Some("2023-03-31T13:20:37".into()),
            valid_to: None,
        };
        for body in [
            r#"[{"ValidFrom":"2023-03-31T13:20:37","ValidTo":null,"Comment":"c","SecretValue":"","PublicValue":"mail.example.com/jdoe","IsActive":true}]"#,
            r#"[{"validFrom":"2023-03-31T13:20:37","comment":"c","publicValue":"mail.example.com/jdoe","isActive":"true"}]"#,
            r#"{"Result":[{"Comment":"x"},{"validFrom":"2023-03-31T13:20:37","comment":"c","publicValue":"mail.example.com/jdoe","isActive":true}]}"#,
        ] {
            assert_eq!(
                read_rest(body.as_bytes()).expect("json"),
                vec![want.clone()],
                "{body}"
            );
        }
        assert_eq!(read_rest(b"{}").expect("json"), Vec::new());
        assert!(read_rest(b"<html/>").is_err());
        let soap = xml::parse(br#"<User:GetUntrustedCredentialsResponse xmlns:User="urn:x"><User:Response><User:UntrustedCredentials><User:Comment>c</User:Comment></User:UntrustedCredentials><User:UntrustedCredentials><User:ValidFrom>2023-03-31T13:20:37</User:ValidFrom><User:Comment>c</User:Comment><User:PublicValue>mail.example.com/jdoe</User:PublicValue><User:IsActive>true</User:IsActive></User:UntrustedCredentials></User:Response></User:GetUntrustedCredentialsResponse>"#).expect("xml");
        assert_eq!(read_soap(&soap), vec![want]);
    }

    #[test]
    fn dates_without_an_offset_are_utc_wall_clock() {
        let t = |s: &str| Some(s.to_string());
        for (have, want, same) in [
            (t("2023-03-31T13:20:37"), t("2023-03-31T13:20:37Z"), true),
            (
                t("2023-03-31T15:20:37+02:00"),
                t("2023-03-31T13:20:37Z"),
                true,
            ),
            (t("/Date(1680268837000)/"), t("2023-03-31T13:20:37Z"), true),
            (t("2023-03-31T13:20:38"), t("2023-03-31T13:20:37Z"), false),
            (None, t("2023-03-31T13:20:37Z"), false),
            (t("2023-03-31T13:20:37"), None, true),
            (t("soon"), t("2023-03-31T13:20:37Z"), false),
        ] {
            assert_eq!(same_time(&have, &want), same, "{have:?} {want:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips(secret in "\\PC{1,70}", public in "\\PC{0,238}", comment in "\\PC{0,80}") {
            let mut s = spec(None);
            s.credentials.secret_value = secret.clone().into();
            s.credentials.public_value = public.clone();
            s.credentials.comment = comment.clone();
            for version in [SoapVersion::V11, SoapVersion::V12] {
                let doc = xml::parse(&soap_envelope(version, Some("a"), "t", Operation::Save, &s)).expect("parse");
                let c = doc.path(&["Body", "SaveUntrustedCredentials", "Credentials"]).expect("Credentials");
                proptest::prop_assert_eq!(c.child("SecretValue").map(|e| e.text.clone()), Some(secret.clone()));
                proptest::prop_assert_eq!(c.child("PublicValue").map(|e| e.text.clone()), Some(public.clone()));
                proptest::prop_assert_eq!(c.child("Comment").map(|e| e.text.clone()), Some(comment.clone()));
            }
            let json = rest_body(Operation::Save, &s);
            proptest::prop_assert_eq!(json["Credentials"]["SecretValue"].as_str(), Some(secret.as_str()));
        }
    }
}
