//! Apex ERP (ServiceStack): SaveErpSecurityIdentity, `POST {url}/Core/Security/Identities/{IdentityType}`
//! with an ErpAuthorizationIdentity in JSON (PascalCase) or XML (DataContract namespace), and
//! `GET` on the same route listing identities (for drift checks and for finding an identity of
//! the same name before creating one, so a crash between the call and the status write cannot
//! leave a duplicate). The API has no delete route.
//!
//! Assumptions where the seed is silent: the JSON body mirrors the XML request DTO
//! (`{"IdentityType", "Identity": {...}}`); GET answers a JSON array of ErpAuthorizationIdentity
//! or, in XML, an `ArrayOfErpAuthorizationIdentity`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::http::{HttpResponse, VendorHttp, classify_status, cut};
use super::xml::{self, Element, XmlWriter};
use super::{ConnectError, ExternalClient, Observation, Outputs, VendorError, fingerprint_json};
use crate::api::{ApexErpEndpoint, ApexFormat};
use crate::secrets::ConnectionSecrets;

/// Namespace of the ServiceStack DataContracts.
pub const APEX_NS: &str = "http://schemas.datacontract.org/2004/07/Apex.Services";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

enum Auth {
    Basic(SecretString, SecretString),
    Bearer(SecretString),
}

/// An Apex ERP host's client.
pub struct ApexClient {
    pub(super) http: Arc<VendorHttp>,
    format: ApexFormat,
    auth: Auth,
    listings: SharedListings,
}

/// The API can only list every identity of a type, so lookups share listings instead of each
/// sending its own (thousands of creates at once would otherwise be quadratic): a listing
/// serves lookups for [`LISTING_MAX_AGE`], together with every identity this client saved since
/// it was taken. Crash safety holds: identities a previous process created exist before this
/// process's first listing, and a save whose outcome is unknown (no clear answer) drops the
/// listing so the next lookup lists again. The price is that an identity someone else creates
/// by hand within those seconds may not be seen before a create of the same name.
#[derive(Default)]
struct SharedListings {
    by_type: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Listing>>>>>,
}

/// How long one listing serves lookups.
const LISTING_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

struct Listing {
    taken: Instant,
    identities: Vec<Identity>,
    /// Saved by this client since `taken` (searched first: newer).
    saved: Vec<Identity>,
}

impl SharedListings {
    fn slot(&self, identity_type: &str) -> Arc<tokio::sync::Mutex<Option<Listing>>> {
        self.by_type
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(identity_type.to_string())
            .or_default()
            .clone()
    }
}

impl std::fmt::Debug for ApexClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApexClient")
            .field("http", &self.http)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl ApexClient {
    pub async fn connect(
        endpoint: &ApexErpEndpoint,
        http: Arc<VendorHttp>,
        secrets: &ConnectionSecrets<'_>,
    ) -> Result<Self, ConnectError> {
        let auth = match (
            &endpoint.auth.basic_secret_ref,
            &endpoint.auth.bearer_secret_ref,
        ) {
            (Some(basic), None) => {
                let mut values = secrets
                    .keys(basic, &["username", "password"])
                    .await?
                    .into_iter();
                match (values.next(), values.next()) {
                    (Some(u), Some(p)) => Auth::Basic(u, p),
                    _ => {
                        return Err(ConnectError::Invalid(
                            "Apex basicSecretRef needs keys username and password".into(),
                        ));
                    }
                }
            }
            (None, Some(bearer)) => Auth::Bearer(secrets.key(bearer).await?),
            _ => {
                return Err(ConnectError::Invalid(
                    "Apex auth needs exactly one of basicSecretRef and bearerSecretRef".into(),
                ));
            }
        };
        Ok(ApexClient {
            http,
            format: endpoint.format,
            auth,
            listings: SharedListings::default(),
        })
    }

    fn request(&self, method: reqwest::Method, identity_type: &str) -> reqwest::RequestBuilder {
        let url = self
            .http
            .url(&["Core", "Security", "Identities", identity_type]);
        let request = self.http.client().request(method, url).header(
            http::header::ACCEPT,
            match self.format {
                ApexFormat::Json => "application/json",
                ApexFormat::Xml => "application/xml",
            },
        );
        match &self.auth {
            Auth::Basic(u, p) => request.basic_auth(u.expose_secret(), Some(p.expose_secret())),
            Auth::Bearer(t) => request.bearer_auth(t.expose_secret()),
        }
    }

    /// The identity of a type that `wanted` picks, from a shared listing (see [`SharedListings`]).
    /// With `fresh`, only a listing taken after this call began will do (drift checks must see
    /// the vendor's present state); otherwise one up to [`LISTING_MAX_AGE`] old.
    async fn lookup(
        &self,
        identity_type: &str,
        fresh: bool,
        wanted: impl Fn(&Identity) -> bool,
    ) -> Result<Option<Identity>, VendorError> {
        let asked = Instant::now();
        let slot = self.listings.slot(identity_type);
        // tokio's Mutex is fair: lookups queued behind a listing's GET share its result.
        let mut listing = slot.lock().await;
        let usable = |l: &Listing| {
            if fresh {
                l.taken >= asked
            } else {
                l.taken.elapsed() <= LISTING_MAX_AGE
            }
        };
        if !listing.as_ref().is_some_and(usable) {
            let taken = Instant::now();
            *listing = Some(Listing {
                taken,
                identities: self.list(identity_type).await?,
                saved: Vec::new(),
            });
        }
        Ok(listing.as_ref().and_then(|l| {
            l.saved
                .iter()
                .rev()
                .chain(&l.identities)
                .find(|i| wanted(i))
                .cloned()
        }))
    }

    /// This client saved `identity`: later lookups must see it.
    async fn saved(&self, identity_type: &str, identity: Identity) {
        if let Some(listing) = self.listings.slot(identity_type).lock().await.as_mut() {
            listing.saved.push(identity);
        }
    }

    /// A save may or may not have happened: the next lookup lists again.
    async fn forget_listing(&self, identity_type: &str) {
        *self.listings.slot(identity_type).lock().await = None;
    }

    /// Every identity of a type, as the vendor holds it.
    async fn list(&self, identity_type: &str) -> Result<Vec<Identity>, VendorError> {
        let response = self
            .http
            .send_listing(
                "ListIdentities",
                self.request(reqwest::Method::GET, identity_type),
            )
            .await?;
        if !response.status.is_success() {
            return Err(error(&response, self.format));
        }
        match self.format {
            ApexFormat::Json => {
                serde_json::from_slice(&response.body).map_err(|e| bad_response(&e))
            }
            ApexFormat::Xml => {
                let root = xml::parse(&response.body).map_err(|e| bad_response(&e))?;
                Ok(root
                    .children_named("ErpAuthorizationIdentity")
                    .map(Identity::from_xml)
                    .collect())
            }
        }
    }
}

fn bad_response(e: &dyn std::fmt::Display) -> VendorError {
    VendorError::transient(
        "VendorBadResponse",
        format!(
            "Apex ERP answered something unreadable: {}",
            cut(&e.to_string())
        ),
    )
}

/// The user behind an identity, as sent (server-managed fields are never sent).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct UserInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_confirmed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_sys_admin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_session_count: Option<i32>,
}

/// ErpAuthorizationIdentity, as sent and as listed.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Identity {
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_role: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_granted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_info: Option<UserInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spend: Option<bool>,
}

/// The SaveErpSecurityIdentity request DTO.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SaveRequest {
    pub identity_type: String,
    pub identity: Identity,
}

fn parse_bool(el: &Element, name: &str) -> Option<bool> {
    el.child_text(name).and_then(|t| t.parse().ok())
}

fn text(el: &Element, name: &str) -> Option<String> {
    el.child(name)
        .filter(|c| c.attribute("nil") != Some("true"))
        .map(|c| c.text.clone())
}

impl Identity {
    pub fn from_xml(el: &Element) -> Identity {
        Identity {
            id: el
                .child_text("Id")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
            name: text(el, "Name").unwrap_or_default(),
            description: text(el, "Description"),
            is_role: parse_bool(el, "IsRole"),
            is_granted: parse_bool(el, "IsGranted"),
            user_info: el.child("UserInfo").map(|u| UserInfo {
                user_name: text(u, "UserName"),
                email: text(u, "Email"),
                name: text(u, "Name"),
                last_name: text(u, "LastName"),
                blocked: parse_bool(u, "Blocked"),
                phone_number: text(u, "PhoneNumber"),
                birth_date: text(u, "BirthDate"),
                language: text(u, "Language"),
                email_confirmed: parse_bool(u, "EmailConfirmed"),
                is_sys_admin: parse_bool(u, "IsSysAdmin"),
                user_data: text(u, "UserData"),
                display_name: text(u, "DisplayName"),
                max_session_count: u.child_text("MaxSessionCount").and_then(|t| t.parse().ok()),
            }),
            spend: parse_bool(el, "Spend"),
        }
    }

    /// Whether `self` (what the vendor holds) has every field `desired` sets.
    fn covers(&self, desired: &Identity) -> bool {
        fn same<T: PartialEq>(have: &Option<T>, want: &Option<T>) -> bool {
            want.is_none() || have == want
        }
        let user_ok = match (&self.user_info, &desired.user_info) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(h), Some(w)) => {
                same(&h.user_name, &w.user_name)
                    && same(&h.email, &w.email)
                    && same(&h.name, &w.name)
                    && same(&h.last_name, &w.last_name)
                    && same(&h.blocked, &w.blocked)
                    && same(&h.phone_number, &w.phone_number)
                    && same(&h.birth_date, &w.birth_date)
                    && same(&h.language, &w.language)
                    && same(&h.email_confirmed, &w.email_confirmed)
                    && same(&h.is_sys_admin, &w.is_sys_admin)
                    && same(&h.user_data, &w.user_data)
                    && same(&h.display_name, &w.display_name)
                    && same(&h.max_session_count, &w.max_session_count)
            }
        };
        self.name == desired.name
            && same(&self.description, &desired.description)
            && same(&self.is_role, &desired.is_role)
            && same(&self.is_granted, &desired.is_granted)
            && same(&self.spend, &desired.spend)
            && user_ok
    }
}

impl SaveRequest {
    /// The XML body, in the DataContract's element order (the seed's sample).
    pub fn to_xml(&self) -> Vec<u8> {
        let mut w = XmlWriter::bare();
        w.start(
            "SaveErpSecurityIdentity",
            &[("xmlns:i", XSI_NS), ("xmlns", APEX_NS)],
        );
        w.text_element("IdentityType", &[], &self.identity_type);
        w.start("Identity", &[]);
        let id = &self.identity;
        w.text_element("Id", &[], &id.id.to_string());
        w.text_element("Name", &[], &id.name);
        optional(&mut w, "Description", id.description.as_deref());
        optional(&mut w, "IsRole", id.is_role.map(bool_text));
        optional(&mut w, "IsGranted", id.is_granted.map(bool_text));
        if let Some(u) = &id.user_info {
            w.start("UserInfo", &[]);
            optional(&mut w, "UserName", u.user_name.as_deref());
            optional(&mut w, "Email", u.email.as_deref());
            optional(&mut w, "Name", u.name.as_deref());
            optional(&mut w, "LastName", u.last_name.as_deref());
            optional(&mut w, "Blocked", u.blocked.map(bool_text));
            optional(&mut w, "PhoneNumber", u.phone_number.as_deref());
            optional(&mut w, "BirthDate", u.birth_date.as_deref());
            optional(&mut w, "Language", u.language.as_deref());
            optional(&mut w, "EmailConfirmed", u.email_confirmed.map(bool_text));
            optional(&mut w, "IsSysAdmin", u.is_sys_admin.map(bool_text));
            optional(&mut w, "UserData", u.user_data.as_deref());
            optional(&mut w, "DisplayName", u.display_name.as_deref());
            optional(
                &mut w,
                "MaxSessionCount",
                u.max_session_count.map(|n| n.to_string()).as_deref(),
            );
            w.end("UserInfo");
        }
        optional(&mut w, "Spend", id.spend.map(bool_text));
        w.end("Identity");
        w.end("SaveErpSecurityIdentity");
        w.finish()
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// DataContract members that are not set are left out (they keep their defaults).
fn optional(w: &mut XmlWriter, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        w.text_element(name, &[], v);
    }
}

/// The ServiceStack ResponseStatus text of an answer: ErrorCode, Message, first field errors.
fn response_status(response: &HttpResponse, format: ApexFormat) -> Option<String> {
    let (code, message, fields) = match format {
        ApexFormat::Json => {
            let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
            let status = body.get("ResponseStatus").filter(|s| !s.is_null())?;
            let s = |k: &str| {
                status
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let fields: Vec<String> = status
                .get("Errors")
                .and_then(|e| e.as_array())
                .map(|errors| {
                    errors
                        .iter()
                        .take(3)
                        .map(|e| {
                            let f = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or_default();
                            format!("{}: {}", f("FieldName"), f("Message"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            (s("ErrorCode"), s("Message"), fields)
        }
        ApexFormat::Xml => {
            let root = xml::parse(&response.body).ok()?;
            let status = root.child("ResponseStatus")?;
            let fields = status
                .child("Errors")
                .map(|e| {
                    e.children_named("ResponseError")
                        .take(3)
                        .map(|r| {
                            format!(
                                "{}: {}",
                                r.child_text("FieldName").unwrap_or_default(),
                                r.child_text("Message").unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                status
                    .child_text("ErrorCode")
                    .unwrap_or_default()
                    .to_string(),
                status.child_text("Message").unwrap_or_default().to_string(),
                fields,
            )
        }
    };
    if code.is_empty() && message.is_empty() {
        return None;
    }
    let mut text = format!("{code}: {message}");
    if !fields.is_empty() {
        text.push_str(&format!(" ({})", fields.join("; ")));
    }
    Some(text)
}

fn error(response: &HttpResponse, format: ApexFormat) -> VendorError {
    classify_status(response, response_status(response, format))
}

/// One identity in Apex ERP, bound to its desired state.
pub struct ErpIdentityRecord {
    pub client: Arc<ApexClient>,
    pub request: SaveRequest,
    /// The IdentityId the resource's status holds, if any.
    pub known_id: Option<i64>,
}

impl ErpIdentityRecord {
    /// The identity this resource owns: by its IdentityId, else by name (`fresh`: see
    /// [`ApexClient::lookup`]).
    async fn find(&self, fresh: bool) -> Result<Option<Identity>, VendorError> {
        let (known_id, name) = (self.known_id, &self.request.identity.name);
        self.client
            .lookup(&self.request.identity_type, fresh, |i| match known_id {
                Some(id) => i.id == id,
                None => i.name == *name,
            })
            .await
    }
}

#[async_trait]
impl ExternalClient for ErpIdentityRecord {
    fn readable(&self) -> bool {
        true
    }

    fn fingerprint_material(&self) -> zeroize::Zeroizing<Vec<u8>> {
        fingerprint_json(&self.request)
    }

    async fn observe(&self) -> Result<Observation, VendorError> {
        Ok(match self.find(true).await? {
            None => Observation::Missing,
            Some(found) => {
                let outputs = Outputs {
                    identity_id: Some(found.id),
                    ..Outputs::default()
                };
                if found.covers(&self.request.identity) {
                    Observation::UpToDate(outputs)
                } else {
                    Observation::Drifted(outputs)
                }
            }
        })
    }

    async fn apply(&self) -> Result<Outputs, VendorError> {
        // Update when the identity is known (or exists under this name); create only otherwise.
        let id = match self.known_id {
            Some(id) => id,
            None => self.find(false).await?.map(|i| i.id).unwrap_or(0),
        };
        let mut request = self.request.clone();
        request.identity.id = id;
        let client = &self.client;
        let builder = client.request(reqwest::Method::POST, &request.identity_type);
        let builder = match client.format {
            ApexFormat::Json => builder.json(&request),
            ApexFormat::Xml => builder
                .header(http::header::CONTENT_TYPE, "application/xml")
                .body(request.to_xml()),
        };
        let response = match client.http.send("SaveIdentity", builder).await {
            Ok(response) => response,
            Err(e) => {
                // Sent or not, it may have been saved.
                client.forget_listing(&request.identity_type).await;
                return Err(e);
            }
        };
        // ServiceStack can report failure in ResponseStatus even with 200.
        if !response.status.is_success() || response_status(&response, client.format).is_some() {
            if response.status.is_server_error() {
                client.forget_listing(&request.identity_type).await;
            }
            let err = error(&response, client.format);
            return Err(if response.status.is_success() {
                VendorError::permanent("VendorRejected", err.message().to_string())
            } else {
                err
            });
        }
        let identity_id = match client.format {
            ApexFormat::Json => serde_json::from_slice::<serde_json::Value>(&response.body)
                .ok()
                .and_then(|v| v.get("IdentityId").and_then(|i| i.as_i64())),
            ApexFormat::Xml => xml::parse(&response.body)
                .ok()
                .and_then(|r| r.child_text("IdentityId").and_then(|t| t.parse().ok())),
        };
        let Some(identity_id) = identity_id.or((id != 0).then_some(id)) else {
            client.forget_listing(&request.identity_type).await;
            return Err(VendorError::transient(
                "VendorBadResponse",
                "Apex ERP accepted the identity but returned no IdentityId",
            ));
        };
        request.identity.id = identity_id;
        client.saved(&request.identity_type, request.identity).await;
        Ok(Outputs {
            identity_id: Some(identity_id),
            ..Outputs::default()
        })
    }

    async fn delete(&self) -> Result<(), VendorError> {
        Err(VendorError::permanent(
            "DeletionPolicyUnsupported",
            "the Apex ERP API has no delete route",
        ))
    }

    fn supports_delete(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> SaveRequest {
        SaveRequest {
            identity_type: "User".into(),
            identity: Identity {
                id: 0,
                name: name.into(),
                description: Some("Zoë <&> 'q' \"d\"".into()),
                is_role: Some(false),
                is_granted: Some(true),
                user_info: Some(UserInfo {
                    user_name: Some("jdoe".into()),
                    email: Some("j@example.com".into()),
                    max_session_count: Some(3),
                    ..UserInfo::default()
                }),
                spend: Some(false),
            },
        }
    }

    #[test]
    fn xml_matches_the_golden_file_and_escapes() {
        let req = sample("Jane <Doe> & Co");
        let built = xml::parse(&req.to_xml()).expect("own XML parses");
        let golden = xml::parse(include_bytes!("../../tests/golden/apex_save_identity.xml"))
            .expect("golden");
        assert_eq!(built, golden);
        assert_eq!(built.namespace.as_deref(), Some(APEX_NS));
        let names: Vec<&str> = built
            .child("Identity")
            .expect("Identity")
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Id",
                "Name",
                "Description",
                "IsRole",
                "IsGranted",
                "UserInfo",
                "Spend"
            ]
        );
        let back = Identity::from_xml(built.child("Identity").expect("Identity"));
        assert_eq!(back, req.identity);
    }

    #[test]
    fn json_matches_the_golden_file() {
        let golden: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/golden/apex_save_identity.json"))
                .expect("golden");
        assert_eq!(
            serde_json::to_value(sample("Jane <Doe> & Co")).expect("json"),
            golden
        );
    }

    #[test]
    fn response_status_is_read_in_both_formats() {
        let json = HttpResponse {
            status: http::StatusCode::BAD_REQUEST,
            headers: Default::default(),
            body: bytes::Bytes::from_static(br#"{"ResponseStatus":{"ErrorCode":"ValidationException","Message":"Invalid","Errors":[{"ErrorCode":"NotEmpty","FieldName":"Name","Message":"'Name' must not be empty."}]}}"#),
        };
        let err = error(&json, ApexFormat::Json);
        assert!(!err.is_transient());
        assert!(
            err.message().contains("ValidationException")
                && err.message().contains("Name: 'Name' must not be empty."),
            "{}",
            err.message()
        );
        let xml_body = format!(
            r#"<SaveErpSecurityIdentityResponse xmlns="{APEX_NS}"><ResponseStatus xmlns:d2p1="http://schemas.servicestack.net/types"><d2p1:ErrorCode>Boom</d2p1:ErrorCode><d2p1:Message>down</d2p1:Message></ResponseStatus></SaveErpSecurityIdentityResponse>"#
        );
        let xml = HttpResponse {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            headers: Default::default(),
            body: bytes::Bytes::from(xml_body),
        };
        let err = error(&xml, ApexFormat::Xml);
        assert!(
            err.is_transient() && err.message().contains("Boom: down"),
            "{}",
            err.message()
        );
        let doctype = HttpResponse {
            status: http::StatusCode::OK,
            headers: Default::default(),
            body: bytes::Bytes::from_static(b"<!DOCTYPE x><x/>"),
        };
        assert!(response_status(&doctype, ApexFormat::Xml).is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips_through_xml_and_json(name in "\\PC{1,40}", description in "\\PC{0,60}") {
            let mut req = sample(&name);
            req.identity.description = Some(description);
            let parsed = xml::parse(&req.to_xml()).expect("parses");
            let back = Identity::from_xml(parsed.child("Identity").expect("Identity"));
            proptest::prop_assert_eq!(&back, &req.identity);
            let json: Identity = serde_json::from_value(serde_json::to_value(&req.identity).expect("json")).expect("back");
            proptest::prop_assert_eq!(json, req.identity);
        }
    }
}
