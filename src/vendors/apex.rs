//! Apex ERP (ServiceStack): SaveErpSecurityIdentity, `POST {url}/Core/Security/Identities/{IdentityType}`
//! with an ErpAuthorizationIdentity in JSON (PascalCase) or XML (DataContract namespace), and
//! `GET` on the same route listing identities (for drift checks, for finding an identity of the
//! same name before creating one, and for carrying the fields the vendor holds into updates).
//! The API has no delete route.
//!
//! Only the save is documented (the seed); everything else is an assumption, and each is read
//! so that a wrong guess degrades safely instead of failing every call:
//! - answers are read leniently where the seed leaves room (JSON keys in any casing, a listing
//!   as a bare array or inside a response DTO, XML lists by element name wherever they sit,
//!   dates in every .NET form) and strictly where it does not (entries without their key
//!   fields are skipped, never matched; an answer that holds no list is not an empty list);
//! - a host without the GET route (404/405/501 without a ServiceStack ResponseStatus) makes the
//!   connection write-only: `status.identityId` is then the only key and drift is not checked
//!   (recorded in the connection's capabilities, see `docs/vendors/apex-erp.md`);
//! - an IdentityId the vendor no longer knows is looked up by name, else created again;
//! - an update sends back what the listing returned for every field the spec leaves unset
//!   (UserId, CreatedDate, ...), because a ServiceStack save resets omitted members to defaults.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{HttpResponse, VendorHttp, classify_status, cut};
use super::lenient;
use super::xml::{self, Element, XmlWriter};
use super::{
    ClientBuilder, ConnectError, ExternalClient, Observation, VendorClient, VendorError,
    VendorModule, fingerprint_json,
};
use crate::api::{ApexErpEndpoint, ApexFormat};
use crate::secrets::ConnectionSecrets;
use crate::sync::LockOrRecover;

/// Namespace of the ServiceStack DataContracts.
pub const APEX_NS: &str = "http://schemas.datacontract.org/2004/07/Apex.Services";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Operation names: the `operation` label of the vendor request metrics and the keys of the
/// connection's capability record.
const LIST_OPERATION: &str = "ListIdentities";
const SAVE_OPERATION: &str = "SaveIdentity";

/// What credsync does while the listing is missing, for the connection's capability record.
const WRITE_ONLY_CONSEQUENCE: &str =
    "credsync writes without reading back: status.identityId is the only key, drift is not checked";

/// How long a connection stays write-only before the listing is tried again (a host may gain
/// the route, or a proxy may have answered 404 while the service restarted).
const LISTING_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

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
    /// When the vendor last answered that it has no listing route (see [`LISTING_RETRY_AFTER`]).
    listing_missing_since: std::sync::Mutex<Option<Instant>>,
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
const LISTING_MAX_AGE: Duration = Duration::from_secs(5);

/// One listing and what this client saved since, indexed: a lookup costs the same whether the
/// type holds ten identities or a hundred thousand.
struct Listing {
    taken: Instant,
    entries: Vec<Listed>,
    /// Where the identity with an Id is: the newest saved, else the first listed.
    by_id: HashMap<i64, usize>,
    /// Where the identity with a Name is: the newest saved, else the first listed.
    by_name: HashMap<String, usize>,
}

impl Listing {
    fn new(taken: Instant, listed: Vec<Listed>) -> Listing {
        let mut listing = Listing {
            taken,
            entries: Vec::with_capacity(listed.len()),
            by_id: HashMap::with_capacity(listed.len()),
            by_name: HashMap::with_capacity(listed.len()),
        };
        for identity in listed {
            listing.add(identity, false);
        }
        listing
    }

    /// Add `listed`; `newer` (a save of this client) wins over what is there, a listed one
    /// only fills a gap (the vendor's first of a name is the one a create would have made).
    fn add(&mut self, listed: Listed, newer: bool) {
        let at = self.entries.len();
        let (id, name) = (listed.identity.id, listed.identity.name.clone());
        self.entries.push(listed);
        if newer {
            self.by_id.insert(id, at);
            self.by_name.insert(name, at);
        } else {
            self.by_id.entry(id).or_insert(at);
            self.by_name.entry(name).or_insert(at);
        }
    }

    /// The one with `known_id`, else (none known, or it is gone) the one named `name`.
    fn find(&self, known_id: Option<i64>, name: &str) -> Option<&Listed> {
        known_id
            .and_then(|id| self.by_id.get(&id))
            .or_else(|| self.by_name.get(name))
            .and_then(|&at| self.entries.get(at))
    }
}

impl SharedListings {
    fn slot(&self, identity_type: &str) -> Arc<tokio::sync::Mutex<Option<Listing>>> {
        self.by_type
            .lock_or_recover()
            .entry(identity_type.to_string())
            .or_default()
            .clone()
    }
}

/// One identity as the vendor listed it: the members credsync sets (Id and Name always
/// present) and the server-managed ones it must send back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    identity: Identity,
    managed: ServerManaged,
    /// Known from this client's own save, not from the vendor's listing: the server-managed
    /// members the vendor filled in are unknown.
    from_own_save: bool,
}

/// ERPUserInfo members the server manages, as the listing returned them (dates in whatever
/// form the host writes; they go back in the same form on the same connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ServerManaged {
    user_id: Option<i64>,
    last_login_attempt: Option<String>,
    invalid_login_attempts: Option<i64>,
    created_date: Option<String>,
    modified_date: Option<String>,
    locked_date: Option<String>,
}

/// What a lookup found.
#[derive(Debug)]
enum Lookup {
    /// The vendor has no listing: nothing can be found or compared.
    Unsupported,
    /// Neither the known IdentityId nor the name is listed.
    Missing,
    /// The identity with the known IdentityId, or (none known, or it is gone) one of the name.
    Found(Box<Listed>),
}

/// What a listing request brought back.
enum ListingAnswer {
    Identities(Vec<Listed>),
    RouteMissing,
}

impl std::fmt::Debug for ApexClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApexClient")
            .field("http", &self.http)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Apex ERP's part of a connection: its block of the spec.
#[async_trait]
impl VendorModule for ApexErpEndpoint {
    fn url(&self) -> &str {
        &self.url
    }

    async fn credentials(
        &self,
        secrets: &ConnectionSecrets<'_>,
    ) -> Result<ClientBuilder, ConnectError> {
        let auth = match (&self.auth.basic_secret_ref, &self.auth.bearer_secret_ref) {
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
        let format = self.format;
        Ok(Box::new(move |http| {
            VendorClient::ApexErp(Arc::new(ApexClient::with_auth(http, format, auth)))
        }))
    }
}

impl ApexClient {
    fn with_auth(http: Arc<VendorHttp>, format: ApexFormat, auth: Auth) -> Self {
        ApexClient {
            http,
            format,
            auth,
            listings: SharedListings::default(),
            listing_missing_since: std::sync::Mutex::new(None),
        }
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

    /// Whether this connection is (for now) write-only: its vendor answered that it has no
    /// listing route, less than [`LISTING_RETRY_AFTER`] ago.
    fn listing_unavailable(&self) -> bool {
        self.http.capabilities().is_unsupported(LIST_OPERATION)
            && self
                .listing_missing_since
                .lock_or_recover()
                .is_some_and(|since| since.elapsed() < LISTING_RETRY_AFTER)
    }

    /// The identity a record owns, from a shared listing (see [`SharedListings`]): the one with
    /// `known_id`, else (none known, or it is gone) the first of `name`. With `fresh`, only a
    /// listing taken after this call began will do (drift checks must see the vendor's present
    /// state); otherwise one up to [`LISTING_MAX_AGE`] old.
    async fn lookup(
        &self,
        identity_type: &str,
        fresh: bool,
        known_id: Option<i64>,
        name: &str,
    ) -> Result<Lookup, VendorError> {
        if self.listing_unavailable() {
            return Ok(Lookup::Unsupported);
        }
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
            match self.list(identity_type).await? {
                ListingAnswer::RouteMissing => {
                    *listing = None;
                    return Ok(Lookup::Unsupported);
                }
                ListingAnswer::Identities(identities) => {
                    *listing = Some(Listing::new(taken, identities));
                }
            }
        }
        let Some(listing) = listing.as_ref() else {
            return Ok(Lookup::Missing);
        };
        Ok(match listing.find(known_id, name) {
            Some(listed) => Lookup::Found(Box::new(listed.clone())),
            None => Lookup::Missing,
        })
    }

    /// This client saved `listed`: later lookups must see it.
    async fn saved(&self, identity_type: &str, listed: Listed) {
        if let Some(listing) = self.listings.slot(identity_type).lock().await.as_mut() {
            listing.add(listed, true);
        }
    }

    /// A save may or may not have happened: the next lookup lists again.
    async fn forget_listing(&self, identity_type: &str) {
        *self.listings.slot(identity_type).lock().await = None;
    }

    /// Every identity of a type, as the vendor holds it; or the finding that the vendor has
    /// no listing route (recorded in the connection's capabilities).
    async fn list(&self, identity_type: &str) -> Result<ListingAnswer, VendorError> {
        let response = self
            .http
            .send_listing(
                LIST_OPERATION,
                self.request(reqwest::Method::GET, identity_type),
            )
            .await?;
        let capabilities = self.http.capabilities();
        if route_missing(&response) {
            let first = !capabilities.is_unsupported(LIST_OPERATION);
            capabilities.unsupported(
                LIST_OPERATION,
                format!(
                    "GET /Core/Security/Identities/{{IdentityType}} answered HTTP {} without a ServiceStack ResponseStatus (no such route); {WRITE_ONLY_CONSEQUENCE}",
                    response.status.as_u16()
                ),
            );
            *self.listing_missing_since.lock_or_recover() = Some(Instant::now());
            if first {
                tracing::warn!(
                    connection = ?self.http,
                    status = response.status.as_u16(),
                    "Apex ERP has no identity listing; {WRITE_ONLY_CONSEQUENCE}"
                );
            }
            return Ok(ListingAnswer::RouteMissing);
        }
        if !response.status.is_success() {
            return Err(error(&response));
        }
        if let Some(status) = response_status(&response) {
            return Err(VendorError::permanent(
                "VendorRejected",
                format!("Apex ERP refused the identity listing: {}", cut(&status)),
            ));
        }
        let identities = parse_listing(&response.body, self.format)?;
        capabilities.supported(LIST_OPERATION, None);
        Ok(ListingAnswer::Identities(identities))
    }
}

/// A route-level "no such route": 404/405/501 without a ServiceStack error body (a host's
/// plain or HTML error page). A 404 that carries a ResponseStatus is the service speaking
/// (e.g. an unknown IdentityType) and stays an error.
fn route_missing(response: &HttpResponse) -> bool {
    matches!(response.status.as_u16(), 404 | 405 | 501) && response_status(response).is_none()
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

/// The identities of a listing answer in either format. Entries lacking Name or Id are
/// skipped; an answer that holds no list at all is an error, never an empty listing (that
/// would create duplicates).
fn parse_listing(body: &[u8], format: ApexFormat) -> Result<Vec<Listed>, VendorError> {
    match format {
        ApexFormat::Json => {
            let answer: Value = serde_json::from_slice(body).map_err(|e| bad_response(&e))?;
            let entries = lenient::list(&answer)
                .ok_or_else(|| bad_response(&"the identity listing holds no list"))?;
            Ok(entries.iter().filter_map(Listed::from_json).collect())
        }
        ApexFormat::Xml => {
            let root = xml::parse(body).map_err(|e| bad_response(&e))?;
            let mut entries = Vec::new();
            collect_named(&root, "ErpAuthorizationIdentity", &mut entries);
            let is_listing = !entries.is_empty()
                || root.name.starts_with("ArrayOf")
                || ["Result", "Results", "Items"]
                    .iter()
                    .any(|n| root.child(n).is_some());
            if !is_listing {
                return Err(bad_response(&format!(
                    "the identity listing holds no list (root element {})",
                    root.name
                )));
            }
            Ok(entries.into_iter().filter_map(Listed::from_xml).collect())
        }
    }
}

/// Every element named `name` below `el` (not inside another one of the same name).
fn collect_named<'a>(el: &'a Element, name: &str, out: &mut Vec<&'a Element>) {
    for child in &el.children {
        if child.name == name {
            out.push(child);
        } else {
            collect_named(child, name, out);
        }
    }
}

/// The user behind an identity, as sent (server-managed fields are never set by the spec).
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

/// ErpAuthorizationIdentity, as sent.
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

fn number<T: std::str::FromStr>(el: &Element, name: &str) -> Option<T> {
    el.child_text(name).and_then(|t| t.parse().ok())
}

impl UserInfo {
    fn from_xml(u: &Element) -> UserInfo {
        UserInfo {
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
            max_session_count: number(u, "MaxSessionCount"),
        }
    }

    /// Keys in any casing; numbers and booleans also as strings.
    fn from_json(u: &Value) -> UserInfo {
        let s = |k: &str| lenient::string(u, k);
        let b = |k: &str| lenient::boolean(u, k);
        UserInfo {
            user_name: s("UserName"),
            email: s("Email"),
            name: s("Name"),
            last_name: s("LastName"),
            blocked: b("Blocked"),
            phone_number: s("PhoneNumber"),
            birth_date: s("BirthDate"),
            language: s("Language"),
            email_confirmed: b("EmailConfirmed"),
            is_sys_admin: b("IsSysAdmin"),
            user_data: s("UserData"),
            display_name: s("DisplayName"),
            max_session_count: lenient::integer(u, "MaxSessionCount")
                .and_then(|n| i32::try_from(n).ok()),
        }
    }

    /// Every member `self` (the spec) sets, the rest as `held` (what the vendor holds).
    fn over(&self, held: &UserInfo) -> UserInfo {
        fn pick<T: Clone>(want: &Option<T>, have: &Option<T>) -> Option<T> {
            want.clone().or_else(|| have.clone())
        }
        UserInfo {
            user_name: pick(&self.user_name, &held.user_name),
            email: pick(&self.email, &held.email),
            name: pick(&self.name, &held.name),
            last_name: pick(&self.last_name, &held.last_name),
            blocked: pick(&self.blocked, &held.blocked),
            phone_number: pick(&self.phone_number, &held.phone_number),
            birth_date: pick(&self.birth_date, &held.birth_date),
            language: pick(&self.language, &held.language),
            email_confirmed: pick(&self.email_confirmed, &held.email_confirmed),
            is_sys_admin: pick(&self.is_sys_admin, &held.is_sys_admin),
            user_data: pick(&self.user_data, &held.user_data),
            display_name: pick(&self.display_name, &held.display_name),
            max_session_count: pick(&self.max_session_count, &held.max_session_count),
        }
    }
}

impl ServerManaged {
    fn from_xml(u: &Element) -> ServerManaged {
        ServerManaged {
            user_id: number(u, "UserId"),
            last_login_attempt: text(u, "LastLoginAttempt"),
            invalid_login_attempts: number(u, "InvalidLoginAttempts"),
            created_date: text(u, "CreatedDate"),
            modified_date: text(u, "ModifiedDate"),
            locked_date: text(u, "LockedDate"),
        }
    }

    fn from_json(u: &Value) -> ServerManaged {
        ServerManaged {
            user_id: lenient::integer(u, "UserId"),
            last_login_attempt: lenient::string(u, "LastLoginAttempt"),
            invalid_login_attempts: lenient::integer(u, "InvalidLoginAttempts"),
            created_date: lenient::string(u, "CreatedDate"),
            modified_date: lenient::string(u, "ModifiedDate"),
            locked_date: lenient::string(u, "LockedDate"),
        }
    }
}

impl Listed {
    /// A listed entry, or None when it lacks Name or a non-zero Id (`Id` or `IdentityId`).
    fn from_json(entry: &Value) -> Option<Listed> {
        let id = lenient::integer(entry, "Id")
            .or_else(|| lenient::integer(entry, "IdentityId"))
            .filter(|id| *id != 0)?;
        let name = lenient::string(entry, "Name").filter(|n| !n.is_empty())?;
        let user = lenient::field(entry, "UserInfo").filter(|u| u.is_object());
        Some(Listed {
            identity: Identity {
                id,
                name,
                description: lenient::string(entry, "Description"),
                is_role: lenient::boolean(entry, "IsRole"),
                is_granted: lenient::boolean(entry, "IsGranted"),
                user_info: user.map(UserInfo::from_json),
                spend: lenient::boolean(entry, "Spend"),
            },
            managed: user.map(ServerManaged::from_json).unwrap_or_default(),
            from_own_save: false,
        })
    }

    /// As [`Listed::from_json`], from an `ErpAuthorizationIdentity` element.
    fn from_xml(el: &Element) -> Option<Listed> {
        let id = number::<i64>(el, "Id")
            .or_else(|| number(el, "IdentityId"))
            .filter(|id| *id != 0)?;
        let identity = Identity::from_xml(el);
        if identity.name.is_empty() {
            return None;
        }
        let user = el
            .child("UserInfo")
            .filter(|u| u.attribute("nil") != Some("true"));
        Some(Listed {
            identity: Identity { id, ..identity },
            managed: user.map(ServerManaged::from_xml).unwrap_or_default(),
            from_own_save: false,
        })
    }
}

impl Identity {
    pub fn from_xml(el: &Element) -> Identity {
        Identity {
            id: number(el, "Id").unwrap_or(0),
            name: text(el, "Name").unwrap_or_default(),
            description: text(el, "Description"),
            is_role: parse_bool(el, "IsRole"),
            is_granted: parse_bool(el, "IsGranted"),
            user_info: el
                .child("UserInfo")
                .filter(|u| u.attribute("nil") != Some("true"))
                .map(UserInfo::from_xml),
            spend: parse_bool(el, "Spend"),
        }
    }

    /// Whether `self` (what the vendor holds) has every field `desired` sets. Dates compare
    /// as instants: hosts write them as `/Date(ms)/`, with or without time and offset.
    fn covers(&self, desired: &Identity) -> bool {
        fn same<T: PartialEq>(have: &Option<T>, want: &Option<T>) -> bool {
            want.is_none() || have == want
        }
        fn same_date(have: &Option<String>, want: &Option<String>) -> bool {
            match (have, want) {
                (_, None) => true,
                (Some(h), Some(w)) => lenient::same_instant(h, w),
                (None, Some(_)) => false,
            }
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
                    && same_date(&h.birth_date, &w.birth_date)
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

    /// Every member `self` (the spec) sets, the rest as `held` (what the vendor holds), so a
    /// save does not reset what the spec leaves alone.
    fn over(&self, held: &Identity) -> Identity {
        Identity {
            id: held.id,
            name: self.name.clone(),
            description: self
                .description
                .clone()
                .or_else(|| held.description.clone()),
            is_role: self.is_role.or(held.is_role),
            is_granted: self.is_granted.or(held.is_granted),
            user_info: match (&self.user_info, &held.user_info) {
                (Some(want), Some(have)) => Some(want.over(have)),
                (want, have) => want.clone().or_else(|| have.clone()),
            },
            spend: self.spend.or(held.spend),
        }
    }
}

impl SaveRequest {
    /// The XML body, in the DataContract's element order (the seed's sample).
    pub fn to_xml(&self) -> Vec<u8> {
        self.xml_with(&ServerManaged::default())
    }

    /// The XML body with the server-managed members the vendor listed, each in its
    /// DataContract place.
    fn xml_with(&self, managed: &ServerManaged) -> Vec<u8> {
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
            let m = managed;
            w.start("UserInfo", &[]);
            optional(
                &mut w,
                "UserId",
                m.user_id.map(|n| n.to_string()).as_deref(),
            );
            optional(&mut w, "UserName", u.user_name.as_deref());
            optional(&mut w, "Email", u.email.as_deref());
            optional(&mut w, "Name", u.name.as_deref());
            optional(&mut w, "LastName", u.last_name.as_deref());
            optional(&mut w, "LastLoginAttempt", m.last_login_attempt.as_deref());
            optional(
                &mut w,
                "InvalidLoginAttempts",
                m.invalid_login_attempts.map(|n| n.to_string()).as_deref(),
            );
            optional(&mut w, "Blocked", u.blocked.map(bool_text));
            optional(&mut w, "CreatedDate", m.created_date.as_deref());
            optional(&mut w, "ModifiedDate", m.modified_date.as_deref());
            optional(&mut w, "LockedDate", m.locked_date.as_deref());
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

    /// The JSON body with the server-managed members the vendor listed.
    fn json_with(&self, managed: &ServerManaged) -> Value {
        let mut body = serde_json::to_value(self).unwrap_or(Value::Null);
        let user = body
            .get_mut("Identity")
            .and_then(|i| i.get_mut("UserInfo"))
            .and_then(Value::as_object_mut);
        if let Some(user) = user {
            let m = managed;
            let members = [
                ("UserId", m.user_id.map(Value::from)),
                (
                    "LastLoginAttempt",
                    m.last_login_attempt.clone().map(Value::from),
                ),
                (
                    "InvalidLoginAttempts",
                    m.invalid_login_attempts.map(Value::from),
                ),
                ("CreatedDate", m.created_date.clone().map(Value::from)),
                ("ModifiedDate", m.modified_date.clone().map(Value::from)),
                ("LockedDate", m.locked_date.clone().map(Value::from)),
            ];
            for (key, value) in members {
                if let Some(value) = value {
                    user.insert(key.to_string(), value);
                }
            }
        }
        body
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

/// The ServiceStack ResponseStatus text of an answer (JSON keys in any casing, or XML):
/// ErrorCode, Message, first field errors. None when there is none, or it is empty.
fn response_status(response: &HttpResponse) -> Option<String> {
    let (code, message, fields) =
        response_status_json(&response.body).or_else(|| response_status_xml(&response.body))?;
    if code.is_empty() && message.is_empty() {
        return None;
    }
    let mut text = format!("{code}: {message}");
    if !fields.is_empty() {
        text.push_str(&format!(" ({})", fields.join("; ")));
    }
    Some(text)
}

type StatusParts = (String, String, Vec<String>);

fn response_status_json(body: &[u8]) -> Option<StatusParts> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let status = lenient::field(&body, "ResponseStatus").filter(|s| s.is_object())?;
    let s = |v: &Value, k: &str| lenient::string(v, k).unwrap_or_default();
    let fields = lenient::field(status, "Errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .take(3)
                .map(|e| format!("{}: {}", s(e, "FieldName"), s(e, "Message")))
                .collect()
        })
        .unwrap_or_default();
    Some((s(status, "ErrorCode"), s(status, "Message"), fields))
}

fn response_status_xml(body: &[u8]) -> Option<StatusParts> {
    let root = xml::parse(body).ok()?;
    let status = root.child("ResponseStatus")?;
    let t = |el: &Element, name: &str| el.child_text(name).unwrap_or_default().to_string();
    let fields = status
        .child("Errors")
        .map(|e| {
            e.children_named("ResponseError")
                .take(3)
                .map(|r| format!("{}: {}", t(r, "FieldName"), t(r, "Message")))
                .collect()
        })
        .unwrap_or_default();
    Some((t(status, "ErrorCode"), t(status, "Message"), fields))
}

fn error(response: &HttpResponse) -> VendorError {
    classify_status(response, response_status(response))
}

/// The IdentityId of a save's answer (JSON key in any casing).
fn saved_identity_id(body: &[u8], format: ApexFormat) -> Option<i64> {
    match format {
        ApexFormat::Json => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| lenient::integer(&v, "IdentityId")),
        ApexFormat::Xml => xml::parse(body).ok().and_then(|r| number(&r, "IdentityId")),
    }
}

/// One identity in Apex ERP, bound to its desired state.
pub struct ErpIdentityRecord {
    pub client: Arc<ApexClient>,
    pub request: SaveRequest,
    /// The IdentityId the resource's status holds, if any.
    pub known_id: Option<i64>,
}

/// How one save went.
enum Saved {
    Done(i64),
    /// The vendor answered that the Id sent does not exist (a ServiceStack 404).
    UnknownId,
}

impl ErpIdentityRecord {
    async fn lookup(&self, fresh: bool, known_id: Option<i64>) -> Result<Lookup, VendorError> {
        self.client
            .lookup(
                &self.request.identity_type,
                fresh,
                known_id,
                &self.request.identity.name,
            )
            .await
    }

    /// Save the desired state: over `held` (update) when the vendor listed it, as a create
    /// when `id` is 0, else as an update by Id alone (write-only connections).
    async fn save(&self, id: i64, held: Option<&Listed>) -> Result<Saved, VendorError> {
        let client = &self.client;
        let identity_type = &self.request.identity_type;
        let managed = held.map(|h| h.managed.clone()).unwrap_or_default();
        let mut request = self.request.clone();
        request.identity = match held {
            Some(held) => request.identity.over(&held.identity),
            None => request.identity,
        };
        request.identity.id = id;
        let builder = client.request(reqwest::Method::POST, identity_type);
        let builder = match client.format {
            ApexFormat::Json => builder.json(&request.json_with(&managed)),
            ApexFormat::Xml => builder
                .header(http::header::CONTENT_TYPE, "application/xml")
                .body(request.xml_with(&managed)),
        };
        let response = match client.http.send(SAVE_OPERATION, builder).await {
            Ok(response) => response,
            Err(e) => {
                // Sent or not, it may have been saved.
                client.forget_listing(identity_type).await;
                return Err(e);
            }
        };
        let status = response_status(&response);
        if id != 0 && response.status == http::StatusCode::NOT_FOUND && status.is_some() {
            return Ok(Saved::UnknownId);
        }
        // ServiceStack can report failure in ResponseStatus even with 200.
        if !response.status.is_success() || status.is_some() {
            if response.status.is_server_error() {
                client.forget_listing(identity_type).await;
            }
            let err = error(&response);
            return Err(if response.status.is_success() {
                VendorError::permanent("VendorRejected", err.message().to_string())
            } else {
                err
            });
        }
        let identity_id = saved_identity_id(&response.body, client.format).filter(|i| *i != 0);
        let Some(identity_id) = identity_id.or((id != 0).then_some(id)) else {
            client.forget_listing(identity_type).await;
            return Err(VendorError::transient(
                "VendorBadResponse",
                "Apex ERP accepted the identity but returned no IdentityId",
            ));
        };
        request.identity.id = identity_id;
        let listed = Listed {
            identity: request.identity,
            managed,
            from_own_save: true,
        };
        client.saved(identity_type, listed).await;
        Ok(Saved::Done(identity_id))
    }
}

/// What Apex ERP answers that the ErpIdentity status keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityOutputs {
    /// The identity's IdentityId: later saves update it rather than create another.
    pub identity_id: i64,
}

fn outputs(identity_id: i64) -> IdentityOutputs {
    IdentityOutputs { identity_id }
}

#[async_trait]
impl ExternalClient for ErpIdentityRecord {
    type Outputs = IdentityOutputs;

    fn readable(&self) -> bool {
        !self.client.listing_unavailable()
    }

    fn fingerprint_material(&self) -> zeroize::Zeroizing<Vec<u8>> {
        fingerprint_json(&self.request)
    }

    async fn observe(&self) -> Result<Observation<IdentityOutputs>, VendorError> {
        Ok(match self.lookup(true, self.known_id).await? {
            Lookup::Unsupported => Observation::Unknown,
            Lookup::Missing => Observation::Missing,
            Lookup::Found(found) => {
                let outputs = outputs(found.identity.id);
                if found.identity.covers(&self.request.identity) {
                    Observation::UpToDate(outputs)
                } else {
                    Observation::Drifted(outputs)
                }
            }
        })
    }

    async fn apply(&self) -> Result<IdentityOutputs, VendorError> {
        // Update the identity the listing shows (by IdentityId, else by name) over what it
        // holds; create only when there is none. Without a listing, status.identityId decides.
        let mut found = self.lookup(false, self.known_id).await?;
        if matches!(&found, Lookup::Found(held) if held.from_own_save) {
            // Saved moments ago by this client: what the vendor filled in (UserId, dates)
            // must be read before it is sent back.
            found = self.lookup(true, self.known_id).await?;
        }
        let saved = match found {
            Lookup::Found(held) => self.save(held.identity.id, Some(&held)).await?,
            Lookup::Missing => self.save(0, None).await?,
            Lookup::Unsupported => self.save(self.known_id.unwrap_or(0), None).await?,
        };
        let identity_id = match saved {
            Saved::Done(id) => id,
            Saved::UnknownId => {
                // The identity was deleted outside credsync (after the listing, if any): find
                // it by name in a fresh listing, else create it again.
                let identity_type = &self.request.identity_type;
                self.client.forget_listing(identity_type).await;
                let again = match self.lookup(true, None).await? {
                    Lookup::Found(held) if Some(held.identity.id) != self.known_id => {
                        self.save(held.identity.id, Some(&held)).await?
                    }
                    _ => self.save(0, None).await?,
                };
                match again {
                    Saved::Done(id) => id,
                    Saved::UnknownId => {
                        return Err(VendorError::transient(
                            "VendorNotFound",
                            "Apex ERP answered that the identity does not exist while it was being saved",
                        ));
                    }
                }
            }
        };
        Ok(outputs(identity_id))
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

    fn listed(id: i64, name: &str, description: &str, from_own_save: bool) -> Listed {
        Listed {
            identity: Identity {
                id,
                name: name.into(),
                description: Some(description.into()),
                ..Identity::default()
            },
            managed: ServerManaged::default(),
            from_own_save,
        }
    }

    fn found(listing: &Listing, known_id: Option<i64>, name: &str) -> Option<String> {
        listing
            .find(known_id, name)
            .and_then(|l| l.identity.description.clone())
    }

    #[test]
    fn a_listing_finds_by_id_then_by_name_the_newest_save_over_the_first_listed() {
        let mut listing = Listing::new(
            Instant::now(),
            vec![
                listed(1, "ann", "first ann listed", false),
                listed(2, "ann", "second ann listed", false),
                listed(3, "bob", "bob listed", false),
            ],
        );
        let cases = [
            (None, "ann", Some("first ann listed")),
            (Some(2), "ann", Some("second ann listed")),
            (Some(99), "bob", Some("bob listed")),
            (None, "cy", None),
        ];
        for (known_id, name, want) in cases {
            assert_eq!(
                found(&listing, known_id, name).as_deref(),
                want,
                "{known_id:?} {name}"
            );
        }
        listing.add(listed(4, "ann", "ann saved", true), true);
        listing.add(listed(3, "bob", "bob saved", true), true);
        listing.add(listed(5, "ann", "ann saved again", true), true);
        let cases = [
            (None, "ann", Some("ann saved again")),
            (Some(4), "ann", Some("ann saved")),
            (Some(1), "ann", Some("first ann listed")),
            (Some(3), "x", Some("bob saved")),
            (None, "bob", Some("bob saved")),
        ];
        for (known_id, name, want) in cases {
            assert_eq!(
                found(&listing, known_id, name).as_deref(),
                want,
                "{known_id:?} {name}"
            );
        }
    }

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

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: http::StatusCode::from_u16(status).expect("status"),
            headers: Default::default(),
            body: bytes::Bytes::from(body.to_string()),
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
        let req = sample("Jane <Doe> & Co");
        assert_eq!(serde_json::to_value(&req).expect("json"), golden);
        // A create carries nothing the vendor manages.
        assert_eq!(req.json_with(&ServerManaged::default()), golden);
    }

    /// An update over a listed identity: what the spec leaves unset, and the server-managed
    /// members, go back as listed (a ServiceStack save resets omitted members to defaults).
    fn update_over_listing() -> (SaveRequest, ServerManaged) {
        let listed = Listed::from_json(&serde_json::json!({
            "id": 7, "name": "Jane <Doe> & Co", "description": "old", "isRole": true,
            "userInfo": {"userId": 70, "userName": "old", "phoneNumber": "+1 555",
                "createdDate": "2026-01-01T00:00:00", "invalidLoginAttempts": 2,
                "lastLoginAttempt": null, "birthDate": "1990-05-01T00:00:00"}
        }))
        .expect("listed");
        let mut req = sample("Jane <Doe> & Co");
        req.identity = req.identity.over(&listed.identity);
        (req, listed.managed)
    }

    #[test]
    fn updates_match_the_golden_files() {
        let (req, managed) = update_over_listing();
        let golden: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/golden/apex_update_identity.json"))
                .expect("golden");
        assert_eq!(req.json_with(&managed), golden);
        let built = xml::parse(&req.xml_with(&managed)).expect("own XML parses");
        let golden = xml::parse(include_bytes!(
            "../../tests/golden/apex_update_identity.xml"
        ))
        .expect("golden");
        assert_eq!(built, golden);
        let user: Vec<&str> = built
            .path(&["Identity", "UserInfo"])
            .expect("UserInfo")
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            user,
            [
                "UserId",
                "UserName",
                "Email",
                "InvalidLoginAttempts",
                "CreatedDate",
                "PhoneNumber",
                "BirthDate",
                "MaxSessionCount"
            ],
            "DataContract order"
        );
    }

    #[test]
    fn listings_are_read_in_every_shape() {
        let pascal = r#"{"Id": 5, "Name": "jdoe", "UserInfo": {"UserId": 50, "Email": "j@example.com", "BirthDate": "/Date(641520000000)/"}}"#;
        let camel = r#"{"id": 5, "name": "jdoe", "userInfo": {"userId": 50, "email": "j@example.com", "birthDate": "/Date(641520000000)/"}}"#;
        let by_identity_id = r#"{"IdentityId": "5", "Name": "jdoe", "UserInfo": {"UserId": "50", "Email": "j@example.com", "BirthDate": "/Date(641520000000)/"}}"#;
        let without_keys = r#"{"Name": "no-id"}, {"Id": 9}, {"Id": 0, "Name": "zero"}, {"Id": 8, "Name": ""}, {"Id": 10, "Name": null}"#;
        let ns = APEX_NS;
        let entry = |p: &str| {
            format!(
                "<{p}ErpAuthorizationIdentity><{p}Id>5</{p}Id><{p}Name>jdoe</{p}Name><{p}UserInfo><{p}UserId>50</{p}UserId><{p}Email>j@example.com</{p}Email><{p}BirthDate>1990-05-01T00:00:00</{p}BirthDate></{p}UserInfo></{p}ErpAuthorizationIdentity>"
            )
        };
        let skipped_xml = "<ErpAuthorizationIdentity><Name>no-id</Name></ErpAuthorizationIdentity><ErpAuthorizationIdentity><Id>9</Id><Name i:nil=\"true\"/></ErpAuthorizationIdentity>";
        let cases: Vec<(&str, ApexFormat, String)> = vec![
            ("bare array", ApexFormat::Json, format!("[{pascal}]")),
            ("camelCase", ApexFormat::Json, format!("[{camel}]")),
            (
                "Result DTO",
                ApexFormat::Json,
                format!(r#"{{"Result": [{pascal}], "ResponseStatus": null}}"#),
            ),
            (
                "results DTO, camelCase",
                ApexFormat::Json,
                format!(r#"{{"results": [{camel}], "responseStatus": {{}}}}"#),
            ),
            (
                "Items DTO",
                ApexFormat::Json,
                format!(r#"{{"Items": [{by_identity_id}], "Total": 1}}"#),
            ),
            (
                "entries without key fields",
                ApexFormat::Json,
                format!("[{without_keys}, {pascal}]"),
            ),
            (
                "ArrayOf",
                ApexFormat::Xml,
                format!(
                    r#"<ArrayOfErpAuthorizationIdentity xmlns:i="{XSI_NS}" xmlns="{ns}">{}{skipped_xml}</ArrayOfErpAuthorizationIdentity>"#,
                    entry("")
                ),
            ),
            (
                "Result DTO with prefixes",
                ApexFormat::Xml,
                format!(
                    r#"<a:ListResponse xmlns:a="{ns}"><a:ResponseStatus/><a:Result>{}</a:Result></a:ListResponse>"#,
                    entry("a:")
                ),
            ),
            (
                "Results DTO, another namespace",
                ApexFormat::Xml,
                format!(
                    r#"<Response xmlns="urn:other"><Results><d2p1:ErpAuthorizationIdentity xmlns:d2p1="{ns}"><d2p1:Id>5</d2p1:Id><d2p1:Name>jdoe</d2p1:Name><d2p1:UserInfo><d2p1:UserId>50</d2p1:UserId><d2p1:Email>j@example.com</d2p1:Email><d2p1:BirthDate>1990-05-01</d2p1:BirthDate></d2p1:UserInfo></d2p1:ErpAuthorizationIdentity></Results></Response>"#
                ),
            ),
        ];
        let desired = Identity {
            name: "jdoe".into(),
            user_info: Some(UserInfo {
                email: Some("j@example.com".into()),
                birth_date: Some("1990-05-01".into()),
                ..UserInfo::default()
            }),
            ..Identity::default()
        };
        for (what, format, body) in cases {
            let listed =
                parse_listing(body.as_bytes(), format).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(listed.len(), 1, "{what}: {listed:?}");
            assert_eq!(
                (listed[0].identity.id, listed[0].identity.name.as_str()),
                (5, "jdoe"),
                "{what}"
            );
            assert_eq!(listed[0].managed.user_id, Some(50), "{what}");
            assert!(listed[0].identity.covers(&desired), "{what}: {listed:?}");
        }
    }

    #[test]
    fn answers_without_a_list_are_not_empty_listings() {
        for (what, format, body) in [
            ("empty", ApexFormat::Json, ""),
            ("an object", ApexFormat::Json, r#"{"ResponseStatus": {}}"#),
            ("two lists", ApexFormat::Json, r#"{"A": [], "B": []}"#),
            ("HTML", ApexFormat::Xml, "<html><body>Welcome</body></html>"),
            ("DOCTYPE", ApexFormat::Xml, "<!DOCTYPE x><x/>"),
            ("JSON for XML", ApexFormat::Xml, "[]"),
        ] {
            let err = parse_listing(body.as_bytes(), format).expect_err(what);
            assert_eq!(err.reason(), "VendorBadResponse", "{what}");
        }
        for (format, body) in [
            (ApexFormat::Json, "[]"),
            (ApexFormat::Json, r#"{"result": []}"#),
            (
                ApexFormat::Xml,
                "<ArrayOfErpAuthorizationIdentity xmlns=\"urn:x\"/>",
            ),
            (ApexFormat::Xml, "<R><Result/></R>"),
        ] {
            assert_eq!(
                parse_listing(body.as_bytes(), format).map(|l| l.len()),
                Ok(0),
                "{body}"
            );
        }
    }

    #[test]
    fn a_missing_route_is_told_from_a_service_error() {
        for (status, body, missing) in [
            (404, "Handler for Request not found", true),
            (
                404,
                "<html><body><h1>404 Not Found</h1></body></html>",
                true,
            ),
            (405, "", true),
            (501, "Not Implemented", true),
            (
                404,
                r#"{"ResponseStatus": {"ErrorCode": "NotFound", "Message": "no such type"}}"#,
                false,
            ),
            (
                404,
                r#"{"responseStatus": {"errorCode": "NotFound", "message": "no such type"}}"#,
                false,
            ),
            (
                404,
                r#"<R xmlns:d2p1="http://schemas.servicestack.net/types"><ResponseStatus><d2p1:ErrorCode>NotFound</d2p1:ErrorCode></ResponseStatus></R>"#,
                false,
            ),
            (400, "bad", false),
            (500, "<html>oops</html>", false),
            (200, "[]", false),
        ] {
            assert_eq!(
                route_missing(&response(status, body)),
                missing,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn save_answers_in_either_casing() {
        for (body, id) in [
            (r#"{"IdentityId": 12}"#, Some(12)),
            (r#"{"identityId": 12, "responseStatus": null}"#, Some(12)),
            (r#"{"identityid": "12"}"#, Some(12)),
            (r#"{"IdentityId": null}"#, None),
            ("not json", None),
        ] {
            assert_eq!(
                saved_identity_id(body.as_bytes(), ApexFormat::Json),
                id,
                "{body}"
            );
        }
        let xml_body = format!(
            r#"<SaveErpSecurityIdentityResponse xmlns="{APEX_NS}"><IdentityId>13</IdentityId></SaveErpSecurityIdentityResponse>"#
        );
        assert_eq!(
            saved_identity_id(xml_body.as_bytes(), ApexFormat::Xml),
            Some(13)
        );
    }

    #[test]
    fn response_status_is_read_in_both_formats_and_casings() {
        for body in [
            r#"{"ResponseStatus":{"ErrorCode":"ValidationException","Message":"Invalid","Errors":[{"ErrorCode":"NotEmpty","FieldName":"Name","Message":"'Name' must not be empty."}]}}"#,
            r#"{"responseStatus":{"errorCode":"ValidationException","message":"Invalid","errors":[{"errorCode":"NotEmpty","fieldName":"Name","message":"'Name' must not be empty."}]}}"#,
        ] {
            let err = error(&response(400, body));
            assert!(!err.is_transient());
            assert!(
                err.message().contains("ValidationException")
                    && err.message().contains("Name: 'Name' must not be empty."),
                "{}",
                err.message()
            );
        }
        let xml_body = format!(
            r#"<SaveErpSecurityIdentityResponse xmlns="{APEX_NS}"><ResponseStatus xmlns:d2p1="http://schemas.servicestack.net/types"><d2p1:ErrorCode>Boom</d2p1:ErrorCode><d2p1:Message>down</d2p1:Message></ResponseStatus></SaveErpSecurityIdentityResponse>"#
        );
        let err = error(&response(500, &xml_body));
        assert!(
            err.is_transient() && err.message().contains("Boom: down"),
            "{}",
            err.message()
        );
        assert!(response_status(&response(200, "<!DOCTYPE x><x/>")).is_none());
        assert!(response_status(&response(200, r#"{"ResponseStatus": null}"#)).is_none());
        assert!(response_status(&response(200, r#"{"responseStatus": {}}"#)).is_none());
    }

    #[test]
    fn dates_compare_as_instants() {
        let desired = |birth: &str| Identity {
            name: "n".into(),
            user_info: Some(UserInfo {
                birth_date: Some(birth.into()),
                ..UserInfo::default()
            }),
            ..Identity::default()
        };
        for (held, wanted, same) in [
            ("/Date(641520000000)/", "1990-05-01", true),
            ("1990-05-01T00:00:00", "1990-05-01", true),
            ("1990-05-01T00:00:00Z", "1990-05-01T00:00:00", true),
            ("/Date(641520000000+0000)/", "1990-05-01T00:00:00", true),
            ("/Date(641606400000)/", "1990-05-01", false),
            ("1990-05-02T00:00:00", "1990-05-01", false),
        ] {
            assert_eq!(
                desired(held).covers(&desired(wanted)),
                same,
                "{held} vs {wanted}"
            );
        }
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

/// The client against the simulator in every dialect a host may speak, without a cluster.
#[cfg(test)]
mod against_the_simulator {
    use super::*;
    use crate::api::Vendor;
    use crate::vendors::capabilities::Capability;
    use crate::vendors::http::{EndpointSettings, TransportPolicy};
    use credsync_testkit::sim::SimServer;
    use credsync_testkit::sim::apex::{
        ApexAuth, ApexSim, DateStyle, Dialect, JsonCasing, ListShape,
    };

    async fn client(format: ApexFormat, dialect: Dialect) -> (ApexSim, SimServer, Arc<ApexClient>) {
        let sim = ApexSim::new(ApexAuth::Bearer("t".into()));
        sim.set_dialect(dialect);
        let server = SimServer::start(sim.router(), 0).await.expect("simulator");
        let settings = EndpointSettings {
            vendor: Vendor::ApexErp,
            base_url: server.url(),
            timeout: Duration::from_secs(5),
            max_concurrent_requests: 4,
            requests_per_second: 1000,
            ca_pem: None,
        };
        let policy = TransportPolicy {
            allow_http: true,
            allow_private_addresses: true,
            ..TransportPolicy::default()
        };
        let http = VendorHttp::new(&settings, &policy).expect("transport");
        let client = ApexClient::with_auth(http, format, Auth::Bearer("t".into()));
        (sim, server, Arc::new(client))
    }

    fn record(client: &Arc<ApexClient>, email: &str, known_id: Option<i64>) -> ErpIdentityRecord {
        ErpIdentityRecord {
            client: Arc::clone(client),
            request: SaveRequest {
                identity_type: "User".into(),
                identity: Identity {
                    name: "jdoe".into(),
                    is_granted: Some(true),
                    user_info: Some(UserInfo {
                        email: Some(email.into()),
                        birth_date: Some("1990-05-01".into()),
                        ..UserInfo::default()
                    }),
                    ..Identity::default()
                },
            },
            known_id,
        }
    }

    async fn applied(record: &ErpIdentityRecord) -> i64 {
        record.apply().await.expect("apply").identity_id
    }

    fn dialects() -> Vec<(ApexFormat, Dialect)> {
        let d = Dialect::default();
        vec![
            (ApexFormat::Json, d),
            (ApexFormat::Json, d.casing(JsonCasing::Camel)),
            (ApexFormat::Json, d.list_shape(ListShape::ResultDto)),
            (
                ApexFormat::Json,
                d.list_shape(ListShape::ResultsDto)
                    .casing(JsonCasing::Camel)
                    .dates(DateStyle::Wcf),
            ),
            (ApexFormat::Json, d.dates(DateStyle::Wcf)),
            (ApexFormat::Xml, d),
            (ApexFormat::Xml, d.list_shape(ListShape::ResultDto)),
            (ApexFormat::Xml, d.list_shape(ListShape::ResultsDto)),
        ]
    }

    #[tokio::test]
    async fn every_dialect_creates_once_reads_back_and_keeps_server_fields() {
        for (format, dialect) in dialects() {
            let what = format!("{format:?} {dialect:?}");
            let (sim, _server, client) = client(format, dialect).await;
            let id = applied(&record(&client, "a@example.com", None)).await;
            assert_eq!(
                (sim.creates(), sim.identities("User").len()),
                (1, 1),
                "{what}"
            );
            assert_eq!(
                client.http.capabilities().get(LIST_OPERATION),
                Some(Capability::Supported { variant: None }),
                "{what}"
            );
            // An update right after the create (the shared listing knows the identity only
            // from this client's save) keeps what the vendor filled in.
            let created = sim.identities("User")[0].user_info.clone().expect("user");
            tokio::time::sleep(Duration::from_millis(1100)).await;
            assert_eq!(
                applied(&record(&client, "b@example.com", Some(id))).await,
                id,
                "{what}"
            );
            let updated = sim.identities("User")[0].user_info.clone().expect("user");
            assert_eq!(updated.email.as_deref(), Some("b@example.com"), "{what}");
            assert_eq!(
                (updated.user_id, updated.created_date, updated.birth_date),
                (created.user_id, created.created_date, created.birth_date),
                "{what}"
            );
            // Read back: no drift, the birth date in any form included; a member the spec
            // leaves alone survives the next update.
            sim.tamper("User", id, |i| {
                if let Some(u) = i.user_info.as_mut() {
                    u.phone_number = Some("+1 555".into());
                }
            });
            let known = record(&client, "b@example.com", Some(id));
            assert!(known.readable(), "{what}");
            assert!(
                matches!(known.observe().await, Ok(Observation::UpToDate(_))),
                "{what}"
            );
            assert_eq!(
                applied(&record(&client, "c@example.com", Some(id))).await,
                id,
                "{what}"
            );
            let after = sim.identities("User")[0].user_info.clone().expect("user");
            assert_eq!(
                (after.email.as_deref(), after.phone_number.as_deref()),
                (Some("c@example.com"), Some("+1 555")),
                "{what}"
            );
            assert_eq!(after.user_id, created.user_id, "{what}");
            assert_eq!(sim.creates(), 1, "{what}");
        }
    }

    #[tokio::test]
    async fn a_stale_identity_id_is_adopted_by_name_or_recreated() {
        for (format, dialect) in [
            (ApexFormat::Json, Dialect::default()),
            (ApexFormat::Xml, Dialect::default()),
            (ApexFormat::Json, Dialect::default().without_listing_route()),
        ] {
            let what = format!("{format:?} {dialect:?}");
            let (sim, _server, client) = client(format, dialect).await;
            let first = applied(&record(&client, "a@example.com", None)).await;
            // Deleted outside credsync: created again.
            sim.remove("User", first);
            client.forget_listing("User").await;
            let stale = record(&client, "a@example.com", Some(first));
            let second = applied(&stale).await;
            assert_ne!(second, first, "{what}");
            assert_eq!(
                (sim.creates(), sim.identities("User").len()),
                (2, 1),
                "{what}"
            );
            if dialect.no_listing_route {
                continue;
            }
            // Observed before the apply: Missing (by Id), or the one of the name.
            assert!(
                matches!(stale.observe().await, Ok(Observation::UpToDate(o)) if o.identity_id == second),
                "{what}"
            );
            // A stale Id while the name exists under another Id: adopted, not duplicated.
            let third = applied(&record(&client, "c@example.com", Some(first))).await;
            assert_eq!(third, second, "{what}");
            assert_eq!(sim.creates(), 2, "{what}");
        }
    }

    #[tokio::test]
    async fn without_a_listing_route_the_connection_becomes_write_only() {
        for format in [ApexFormat::Json, ApexFormat::Xml] {
            let (sim, server, client) =
                client(format, Dialect::default().without_listing_route()).await;
            let new = record(&client, "a@example.com", None);
            let id = applied(&new).await;
            assert_eq!(sim.creates(), 1);
            let recorded = client.http.capabilities().get(LIST_OPERATION);
            assert!(
                matches!(&recorded, Some(Capability::Unsupported { why })
                    if why.contains("HTTP 404") && why.contains("status.identityId is the only key")),
                "{recorded:?}"
            );
            let known = record(&client, "b@example.com", Some(id));
            assert!(!known.readable());
            assert_eq!(known.observe().await, Ok(Observation::Unknown));
            let gets = || {
                server
                    .journal
                    .matching(&axum::http::Method::GET, "/Core/")
                    .len()
            };
            let listed = gets();
            assert_eq!(applied(&known).await, id, "updated by Id");
            assert_eq!(gets(), listed, "no listing is asked for again");
            assert_eq!(sim.creates(), 1);
            assert_eq!(
                sim.identities("User")[0]
                    .user_info
                    .as_ref()
                    .and_then(|u| u.email.as_deref()),
                Some("b@example.com")
            );
        }
    }
}
