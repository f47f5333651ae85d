//! Apex ERP (ServiceStack) simulator: `POST` and `GET /Core/Security/Identities/{IdentityType}`,
//! JSON or XML by Content-Type/Accept, HTTP Basic or Bearer auth, ResponseStatus errors, and
//! server-managed fields filled in as the real service would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{basic_auth_ok, in_order};
use crate::vendors::apex::{APEX_NS, Identity};
use crate::vendors::xml::{self, XmlWriter};

/// The order of ErpAuthorizationIdentity's DataContract members; XML must follow it.
const IDENTITY_ORDER: [&str; 7] = [
    "Id",
    "Name",
    "Description",
    "IsRole",
    "IsGranted",
    "UserInfo",
    "Spend",
];
const USER_ORDER: [&str; 19] = [
    "UserId",
    "UserName",
    "Email",
    "Name",
    "LastName",
    "LastLoginAttempt",
    "InvalidLoginAttempts",
    "Blocked",
    "CreatedDate",
    "ModifiedDate",
    "LockedDate",
    "PhoneNumber",
    "BirthDate",
    "Language",
    "EmailConfirmed",
    "IsSysAdmin",
    "UserData",
    "DisplayName",
    "MaxSessionCount",
];

/// How clients must authenticate.
#[derive(Clone, Debug)]
pub enum ApexAuth {
    Basic(String, String),
    Bearer(String),
}

#[derive(Default, Debug)]
struct Records {
    identities: BTreeMap<(String, i64), Identity>,
    next_id: i64,
    creates: usize,
    saves: usize,
    fail_next: Vec<(u16, String, String)>,
}

/// The simulator's state.
#[derive(Clone)]
pub struct ApexSim {
    auth: ApexAuth,
    state: Arc<Mutex<Records>>,
}

impl ApexSim {
    pub fn new(auth: ApexAuth) -> Self {
        ApexSim {
            auth,
            state: Arc::default(),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/Core/Security/Identities/{identity_type}",
                get(list).post(save),
            )
            .with_state(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Identities of a type, by IdentityId.
    pub fn identities(&self, identity_type: &str) -> Vec<Identity> {
        self.lock()
            .identities
            .iter()
            .filter(|((t, _), _)| t == identity_type)
            .map(|(_, i)| i.clone())
            .collect()
    }

    /// How many identities were created (not updated).
    pub fn creates(&self) -> usize {
        self.lock().creates
    }

    /// How many saves succeeded (creates and updates).
    pub fn saves(&self) -> usize {
        self.lock().saves
    }

    /// Identities someone else created earlier (a large tenant), numbered as creates are.
    pub fn preload(&self, identity_type: &str, identities: impl IntoIterator<Item = Identity>) {
        let mut state = self.lock();
        for mut identity in identities {
            state.next_id += 1;
            identity.id = state.next_id;
            state
                .identities
                .insert((identity_type.to_string(), identity.id), identity);
        }
    }

    /// Change a stored identity behind credsync's back (drift).
    pub fn tamper(&self, identity_type: &str, id: i64, change: impl FnOnce(&mut Identity)) {
        if let Some(identity) = self
            .lock()
            .identities
            .get_mut(&(identity_type.to_string(), id))
        {
            change(identity);
        }
    }

    /// Answer the next `n` saves with a ResponseStatus error.
    pub fn fail_next_with(&self, n: usize, status: u16, error_code: &str, message: &str) {
        let mut state = self.lock();
        for _ in 0..n {
            state
                .fail_next
                .push((status, error_code.into(), message.into()));
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        match &self.auth {
            ApexAuth::Basic(u, p) => basic_auth_ok(headers, u, p),
            ApexAuth::Bearer(t) => headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == format!("Bearer {t}")),
        }
    }
}

fn wants_xml(headers: &HeaderMap, header: &str) -> bool {
    headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("xml"))
}

/// A ServiceStack error in the format the client reads.
fn status_error(
    xml_out: bool,
    status: u16,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if xml_out {
        let mut w = XmlWriter::bare();
        w.start("SaveErpSecurityIdentityResponse", &[("xmlns", APEX_NS)]);
        w.start(
            "ResponseStatus",
            &[("xmlns:d2p1", "http://schemas.servicestack.net/types")],
        );
        w.text_element("d2p1:ErrorCode", &[], code)
            .text_element("d2p1:Message", &[], message);
        if let Some(field) = field {
            w.start("d2p1:Errors", &[]).start("d2p1:ResponseError", &[]);
            w.text_element("d2p1:ErrorCode", &[], code)
                .text_element("d2p1:FieldName", &[], field)
                .text_element("d2p1:Message", &[], message);
            w.end("d2p1:ResponseError").end("d2p1:Errors");
        }
        w.end("ResponseStatus")
            .end("SaveErpSecurityIdentityResponse");
        (status, [("Content-Type", "application/xml")], w.finish()).into_response()
    } else {
        let errors: Vec<Value> = field
            .map(|f| vec![json!({"ErrorCode": code, "FieldName": f, "Message": message})])
            .unwrap_or_default();
        (status, axum::Json(json!({"ResponseStatus": {"ErrorCode": code, "Message": message, "Errors": errors}}))).into_response()
    }
}

fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<(Option<String>, Identity), String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        let identity_type = value
            .get("IdentityType")
            .and_then(Value::as_str)
            .map(str::to_string);
        let identity = value
            .get("Identity")
            .cloned()
            .ok_or("Identity is required")?;
        let identity: Identity =
            serde_json::from_value(identity).map_err(|e| format!("invalid Identity: {e}"))?;
        return Ok((identity_type, identity));
    }
    if content_type.starts_with("application/xml") {
        let root = xml::parse(body).map_err(|e| e.to_string())?;
        if root.name != "SaveErpSecurityIdentity" || root.namespace.as_deref() != Some(APEX_NS) {
            return Err(format!("expected SaveErpSecurityIdentity in {APEX_NS}"));
        }
        let top: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
        if !in_order(&top, &["IdentityType", "Identity"])
            || root
                .children
                .iter()
                .any(|c| c.namespace.as_deref() != Some(APEX_NS))
        {
            return Err(
                "SaveErpSecurityIdentity members out of order or in the wrong namespace".into(),
            );
        }
        let el = root.child("Identity").ok_or("Identity is required")?;
        let names: Vec<&str> = el.children.iter().map(|c| c.name.as_str()).collect();
        if !in_order(&names, &IDENTITY_ORDER) {
            return Err(format!(
                "Identity members out of DataContract order: {names:?}"
            ));
        }
        if let Some(user) = el.child("UserInfo") {
            let names: Vec<&str> = user.children.iter().map(|c| c.name.as_str()).collect();
            if !in_order(&names, &USER_ORDER) {
                return Err(format!(
                    "UserInfo members out of DataContract order: {names:?}"
                ));
            }
        }
        return Ok((
            root.child_text("IdentityType").map(str::to_string),
            Identity::from_xml(el),
        ));
    }
    Err(format!("unsupported Content-Type {content_type:?}"))
}

async fn save(
    State(sim): State<ApexSim>,
    Path(identity_type): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let xml_out = wants_xml(&headers, "accept");
    if !sim.authorized(&headers) {
        return status_error(xml_out, 401, "Unauthorized", "Invalid credentials", None);
    }
    if let Some((status, code, message)) = {
        let mut state = sim.lock();
        (!state.fail_next.is_empty()).then(|| state.fail_next.remove(0))
    } {
        return status_error(xml_out, status, &code, &message, None);
    }
    let (body_type, mut identity) = match parse_request(&headers, &body) {
        Ok(parsed) => parsed,
        Err(message) => {
            return status_error(xml_out, 400, "SerializationException", &message, None);
        }
    };
    if body_type.as_deref().is_some_and(|t| t != identity_type) {
        return status_error(
            xml_out,
            400,
            "ArgumentException",
            "IdentityType differs from the route",
            Some("IdentityType"),
        );
    }
    if identity.name.trim().is_empty() {
        return status_error(
            xml_out,
            400,
            "NotEmpty",
            "'Name' must not be empty.",
            Some("Name"),
        );
    }
    let id = {
        let mut state = sim.lock();
        let id = if identity.id == 0 {
            state.next_id += 1;
            state.creates += 1;
            state.next_id
        } else if state
            .identities
            .contains_key(&(identity_type.clone(), identity.id))
        {
            identity.id
        } else {
            drop(state);
            return status_error(xml_out, 404, "NotFound", "Identity not found", Some("Id"));
        };
        identity.id = id;
        state.saves += 1;
        state
            .identities
            .insert((identity_type.clone(), id), identity);
        id
    };
    if xml_out {
        let mut w = XmlWriter::bare();
        w.start(
            "SaveErpSecurityIdentityResponse",
            &[
                ("xmlns:i", "http://www.w3.org/2001/XMLSchema-instance"),
                ("xmlns", APEX_NS),
            ],
        )
        .text_element("IdentityId", &[], &id.to_string())
        .end("SaveErpSecurityIdentityResponse");
        ([("Content-Type", "application/xml")], w.finish()).into_response()
    } else {
        axum::Json(json!({"IdentityId": id})).into_response()
    }
}

async fn list(
    State(sim): State<ApexSim>,
    Path(identity_type): Path<String>,
    headers: HeaderMap,
) -> Response {
    let xml_out = wants_xml(&headers, "accept");
    if !sim.authorized(&headers) {
        return status_error(xml_out, 401, "Unauthorized", "Invalid credentials", None);
    }
    let identities = sim.identities(&identity_type);
    if !xml_out {
        // Server-managed fields come back too; clients must ignore what they do not send.
        let items: Vec<Value> = identities
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                if let Some(user) = v.get_mut("UserInfo").and_then(Value::as_object_mut) {
                    user.insert("UserId".into(), json!(i.id * 10));
                    user.insert("CreatedDate".into(), json!("2026-01-01T00:00:00"));
                    user.insert("InvalidLoginAttempts".into(), json!(0));
                }
                v
            })
            .collect();
        return axum::Json(items).into_response();
    }
    let mut w = XmlWriter::bare();
    w.start("ArrayOfErpAuthorizationIdentity", &[("xmlns", APEX_NS)]);
    for i in &identities {
        let body = crate::vendors::apex::SaveRequest {
            identity_type: identity_type.clone(),
            identity: i.clone(),
        }
        .to_xml();
        // Reuse the DTO writer, then lift its Identity element into the array.
        if let Ok(root) = xml::parse(&body)
            && let Some(el) = root.child("Identity")
        {
            write_element(&mut w, "ErpAuthorizationIdentity", el);
        }
    }
    w.end("ArrayOfErpAuthorizationIdentity");
    ([("Content-Type", "application/xml")], w.finish()).into_response()
}

fn write_element(w: &mut XmlWriter, name: &str, el: &xml::Element) {
    if el.children.is_empty() {
        w.text_element(name, &[], &el.text);
        return;
    }
    w.start(name, &[]);
    for child in &el.children {
        write_element(w, &child.name, child);
    }
    w.end(name);
}
