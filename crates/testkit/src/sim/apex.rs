//! Apex ERP (ServiceStack) simulator: `POST` and `GET /Core/Security/Identities/{IdentityType}`,
//! JSON or XML by Content-Type/Accept, HTTP Basic or Bearer auth, ResponseStatus errors.
//!
//! It is written from the seed alone, with its own wire types, so a misreading in the client
//! cannot hide behind the same misreading here. A save behaves as a ServiceStack save does: the
//! request DTO replaces the record, members the request leaves out take their .NET defaults
//! (UserId 0 means a new user row, dates 0001-01-01, counters 0). Where the seed is silent the
//! simulator can answer in each way real hosts do ([`Dialect`]): JSON in PascalCase or
//! camelCase, the listing as a bare array or a response DTO, dates as `/Date(ms)/` or
//! `yyyy-MM-ddTHH:mm:ss`, or no listing route at all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::jiff::{Timestamp, civil, tz::TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{basic_auth_ok, in_order};
use credsync::vendors::xml::{self, Element, XmlWriter};

/// The DataContract namespace of the seed's XML samples.
const DATA_CONTRACT_NS: &str = "http://schemas.datacontract.org/2004/07/Apex.Services";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const SERVICESTACK_TYPES_NS: &str = "http://schemas.servicestack.net/types";

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

/// .NET's `default(DateTime)`, 0001-01-01T00:00:00, in milliseconds since 1970.
const DOTNET_MIN_DATE_MS: i64 = -62_135_596_800_000;

/// How clients must authenticate.
#[derive(Clone, Debug)]
pub enum ApexAuth {
    Basic(String, String),
    Bearer(String),
}

/// JSON member casing of the simulator's answers (requests are read in any casing, as
/// ServiceStack does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonCasing {
    #[default]
    Pascal,
    Camel,
}

/// How the listing is wrapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListShape {
    /// A bare JSON array / `ArrayOfErpAuthorizationIdentity`.
    #[default]
    Bare,
    /// A response DTO with a `Result` member (and a `ResponseStatus`).
    ResultDto,
    /// A response DTO with a `Results` member.
    ResultsDto,
}

/// How dates are written in JSON answers (XML always uses xs:dateTime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DateStyle {
    /// `1990-05-01T00:00:00`, .NET's unspecified-kind form.
    #[default]
    Local,
    /// WCF's `/Date(641520000000)/`.
    Wcf,
}

/// The ways real hosts differ where the seed is silent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dialect {
    pub casing: JsonCasing,
    pub list_shape: ListShape,
    pub dates: DateStyle,
    /// The host has no GET route: listings are answered 404 with an HTML page.
    pub no_listing_route: bool,
}

impl Dialect {
    pub fn casing(mut self, casing: JsonCasing) -> Self {
        self.casing = casing;
        self
    }
    pub fn list_shape(mut self, shape: ListShape) -> Self {
        self.list_shape = shape;
        self
    }
    pub fn dates(mut self, dates: DateStyle) -> Self {
        self.dates = dates;
        self
    }
    pub fn without_listing_route(mut self) -> Self {
        self.no_listing_route = true;
        self
    }
}

/// ERPUserInfo as the service stores it (nullable where the seed's type is nullable).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub user_id: i64,
    pub user_name: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub last_name: Option<String>,
    /// Milliseconds since 1970 (UTC).
    pub last_login_attempt: Option<i64>,
    pub invalid_login_attempts: i32,
    pub blocked: bool,
    pub created_date: i64,
    pub modified_date: i64,
    pub locked_date: Option<i64>,
    pub phone_number: Option<String>,
    pub birth_date: Option<i64>,
    pub language: Option<String>,
    pub email_confirmed: bool,
    pub is_sys_admin: bool,
    pub user_data: Option<String>,
    pub display_name: Option<String>,
    pub max_session_count: i32,
}

impl Default for UserInfo {
    fn default() -> Self {
        UserInfo {
            user_id: 0,
            user_name: None,
            email: None,
            name: None,
            last_name: None,
            last_login_attempt: None,
            invalid_login_attempts: 0,
            blocked: false,
            created_date: DOTNET_MIN_DATE_MS,
            modified_date: DOTNET_MIN_DATE_MS,
            locked_date: None,
            phone_number: None,
            birth_date: None,
            language: None,
            email_confirmed: false,
            is_sys_admin: false,
            user_data: None,
            display_name: None,
            max_session_count: 0,
        }
    }
}

/// ErpAuthorizationIdentity as the service stores it.
#[derive(Serialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub is_role: Option<bool>,
    pub is_granted: Option<bool>,
    pub user_info: Option<UserInfo>,
    pub spend: Option<bool>,
}

/// The JSON request DTO (keys folded to PascalCase first: ServiceStack reads any casing).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveWire {
    identity_type: Option<String>,
    identity: Option<IdentityWire>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct IdentityWire {
    #[serde(default)]
    id: i64,
    name: Option<String>,
    description: Option<String>,
    is_role: Option<bool>,
    is_granted: Option<bool>,
    user_info: Option<UserWire>,
    spend: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct UserWire {
    #[serde(default)]
    user_id: i64,
    user_name: Option<String>,
    email: Option<String>,
    name: Option<String>,
    last_name: Option<String>,
    last_login_attempt: Option<String>,
    #[serde(default)]
    invalid_login_attempts: i32,
    #[serde(default)]
    blocked: bool,
    created_date: Option<String>,
    modified_date: Option<String>,
    locked_date: Option<String>,
    phone_number: Option<String>,
    birth_date: Option<String>,
    language: Option<String>,
    #[serde(default)]
    email_confirmed: bool,
    #[serde(default)]
    is_sys_admin: bool,
    user_data: Option<String>,
    display_name: Option<String>,
    #[serde(default)]
    max_session_count: i32,
}

#[derive(Default, Debug)]
struct Records {
    identities: BTreeMap<(String, i64), Identity>,
    next_id: i64,
    next_user_id: i64,
    creates: usize,
    saves: usize,
    fail_next: Vec<(u16, String, String)>,
    dialect: Dialect,
}

impl Records {
    /// A new user row, as the service makes one for a UserInfo with UserId 0.
    fn new_user(&mut self, user: &mut UserInfo, now: i64) {
        self.next_user_id += 1;
        user.user_id = 1000 + self.next_user_id;
        user.created_date = now;
        user.modified_date = now;
    }
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

    /// Answer from now on in `dialect`.
    pub fn set_dialect(&self, dialect: Dialect) {
        self.lock().dialect = dialect;
    }

    pub fn dialect(&self) -> Dialect {
        self.lock().dialect
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
        let now = now_ms();
        let mut state = self.lock();
        for mut identity in identities {
            state.next_id += 1;
            identity.id = state.next_id;
            if let Some(user) = identity.user_info.as_mut().filter(|u| u.user_id == 0) {
                state.new_user(user, now);
            }
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

    /// Delete an identity outside credsync (the API itself has no delete route).
    pub fn remove(&self, identity_type: &str, id: i64) -> Option<Identity> {
        self.lock()
            .identities
            .remove(&(identity_type.to_string(), id))
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

fn now_ms() -> i64 {
    // Whole seconds: .NET hosts commonly store datetime columns without milliseconds.
    Timestamp::now().as_second() * 1000
}

fn wants_xml(headers: &HeaderMap, header: &str) -> bool {
    headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("xml"))
}

/// A date as .NET reads one: `/Date(ms[±hhmm])/`, ISO 8601 with or without an offset
/// (without: taken as UTC), or a bare date.
fn parse_date(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let invalid = || format!("{text:?} is not a DateTime");
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    {
        let digits_end = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| !c.is_ascii_digit())
            .map_or(inner.len(), |(i, _)| i);
        return inner[..digits_end].parse().map_err(|_| invalid());
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let civil = text
        .parse::<civil::DateTime>()
        .or_else(|_| text.parse::<civil::Date>().map(|d| d.at(0, 0, 0, 0)))
        .map_err(|_| invalid())?;
    civil
        .to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| invalid())
}

/// `yyyy-MM-ddTHH:mm:ss` (UTC), as DataContract XML and many JSON hosts write a DateTime.
fn local_date(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(TimeZone::UTC)
                .datetime()
                .strftime("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| "0001-01-01T00:00:00".into())
}

fn json_date(ms: i64, style: DateStyle) -> Value {
    match style {
        DateStyle::Local => Value::from(local_date(ms)),
        DateStyle::Wcf => Value::from(format!("/Date({ms})/")),
    }
}

/// Rename every object key of `value` with `rename`, recursively.
fn recase(value: Value, rename: fn(&str) -> String) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (rename(&k), recase(v, rename)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| recase(v, rename)).collect()),
        other => other,
    }
}

fn with_first(key: &str, f: fn(char) -> String) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => f(first) + chars.as_str(),
        None => String::new(),
    }
}

fn pascal(key: &str) -> String {
    with_first(key, |c| c.to_uppercase().collect())
}

fn camel(key: &str) -> String {
    with_first(key, |c| c.to_lowercase().collect())
}

/// A JSON answer, written PascalCase and recased for the dialect.
fn json_answer(status: StatusCode, body: Value, dialect: Dialect) -> Response {
    let body = match dialect.casing {
        JsonCasing::Pascal => body,
        JsonCasing::Camel => recase(body, camel),
    };
    (status, axum::Json(body)).into_response()
}

/// A ServiceStack error in the format the client asked for.
fn status_error(
    xml_out: bool,
    dialect: Dialect,
    status: u16,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if xml_out {
        let mut w = XmlWriter::bare();
        w.start(
            "SaveErpSecurityIdentityResponse",
            &[("xmlns", DATA_CONTRACT_NS)],
        );
        w.start("ResponseStatus", &[("xmlns:d2p1", SERVICESTACK_TYPES_NS)]);
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
        json_answer(
            status,
            json!({"ResponseStatus": {"ErrorCode": code, "Message": message, "Errors": errors}}),
            dialect,
        )
    }
}

/// The request's IdentityType and identity, read as a strict ServiceStack host reads them.
fn parse_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Option<String>, IdentityWire), String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        let wire: SaveWire = serde_json::from_value(recase(value, pascal))
            .map_err(|e| format!("invalid SaveErpSecurityIdentity: {e}"))?;
        let identity = wire.identity.ok_or("Identity is required")?;
        return Ok((wire.identity_type, identity));
    }
    if content_type.starts_with("application/xml") {
        let root = xml::parse(body).map_err(|e| e.to_string())?;
        if root.name != "SaveErpSecurityIdentity"
            || root.namespace.as_deref() != Some(DATA_CONTRACT_NS)
        {
            return Err(format!(
                "expected SaveErpSecurityIdentity in {DATA_CONTRACT_NS}"
            ));
        }
        let top: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
        if !in_order(&top, &["IdentityType", "Identity"])
            || root
                .children
                .iter()
                .any(|c| c.namespace.as_deref() != Some(DATA_CONTRACT_NS))
        {
            return Err(
                "SaveErpSecurityIdentity members out of order or in the wrong namespace".into(),
            );
        }
        let el = root.child("Identity").ok_or("Identity is required")?;
        return Ok((
            root.child("IdentityType").map(|t| t.text.clone()),
            identity_from_xml(el)?,
        ));
    }
    Err(format!("unsupported Content-Type {content_type:?}"))
}

fn names(el: &Element) -> Vec<&str> {
    el.children.iter().map(|c| c.name.as_str()).collect()
}

/// A member's text; None when absent or `i:nil`.
fn member(el: &Element, name: &str) -> Option<String> {
    el.child(name)
        .filter(|c| c.attribute("nil") != Some("true"))
        .map(|c| c.text.clone())
}

/// A typed member; absent or nil is None, unreadable text is a serialization error.
fn typed<T: std::str::FromStr>(el: &Element, name: &str) -> Result<Option<T>, String> {
    member(el, name)
        .map(|t| {
            t.trim()
                .parse()
                .map_err(|_| format!("{name}: {t:?} is not valid"))
        })
        .transpose()
}

fn identity_from_xml(el: &Element) -> Result<IdentityWire, String> {
    if !in_order(&names(el), &IDENTITY_ORDER) {
        return Err(format!(
            "Identity members out of DataContract order: {:?}",
            names(el)
        ));
    }
    let user_info = match el
        .child("UserInfo")
        .filter(|u| u.attribute("nil") != Some("true"))
    {
        None => None,
        Some(u) => {
            if !in_order(&names(u), &USER_ORDER) {
                return Err(format!(
                    "UserInfo members out of DataContract order: {:?}",
                    names(u)
                ));
            }
            Some(UserWire {
                user_id: typed(u, "UserId")?.unwrap_or(0),
                user_name: member(u, "UserName"),
                email: member(u, "Email"),
                name: member(u, "Name"),
                last_name: member(u, "LastName"),
                last_login_attempt: member(u, "LastLoginAttempt"),
                invalid_login_attempts: typed(u, "InvalidLoginAttempts")?.unwrap_or(0),
                blocked: typed(u, "Blocked")?.unwrap_or(false),
                created_date: member(u, "CreatedDate"),
                modified_date: member(u, "ModifiedDate"),
                locked_date: member(u, "LockedDate"),
                phone_number: member(u, "PhoneNumber"),
                birth_date: member(u, "BirthDate"),
                language: member(u, "Language"),
                email_confirmed: typed(u, "EmailConfirmed")?.unwrap_or(false),
                is_sys_admin: typed(u, "IsSysAdmin")?.unwrap_or(false),
                user_data: member(u, "UserData"),
                display_name: member(u, "DisplayName"),
                max_session_count: typed(u, "MaxSessionCount")?.unwrap_or(0),
            })
        }
    };
    Ok(IdentityWire {
        id: typed(el, "Id")?.unwrap_or(0),
        name: member(el, "Name"),
        description: member(el, "Description"),
        is_role: typed(el, "IsRole")?,
        is_granted: typed(el, "IsGranted")?,
        user_info,
        spend: typed(el, "Spend")?,
    })
}

/// The stored form of a request DTO: every member it leaves out takes its .NET default.
fn stored(wire: IdentityWire) -> Result<Identity, String> {
    let date = |d: Option<String>| d.map(|t| parse_date(&t)).transpose();
    let user_info = match wire.user_info {
        None => None,
        Some(u) => Some(UserInfo {
            user_id: u.user_id,
            user_name: u.user_name,
            email: u.email,
            name: u.name,
            last_name: u.last_name,
            last_login_attempt: date(u.last_login_attempt)?,
            invalid_login_attempts: u.invalid_login_attempts,
            blocked: u.blocked,
            created_date: date(u.created_date)?.unwrap_or(DOTNET_MIN_DATE_MS),
            modified_date: date(u.modified_date)?.unwrap_or(DOTNET_MIN_DATE_MS),
            locked_date: date(u.locked_date)?,
            phone_number: u.phone_number,
            birth_date: date(u.birth_date)?,
            language: u.language,
            email_confirmed: u.email_confirmed,
            is_sys_admin: u.is_sys_admin,
            user_data: u.user_data,
            display_name: u.display_name,
            max_session_count: u.max_session_count,
        }),
    };
    Ok(Identity {
        id: wire.id,
        name: wire.name.unwrap_or_default(),
        description: wire.description,
        is_role: wire.is_role,
        is_granted: wire.is_granted,
        user_info,
        spend: wire.spend,
    })
}

async fn save(
    State(sim): State<ApexSim>,
    Path(identity_type): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let dialect = sim.dialect();
    let xml_out = wants_xml(&headers, "accept");
    let fail = |status, code: &str, message: &str, field| {
        status_error(xml_out, dialect, status, code, message, field)
    };
    if !sim.authorized(&headers) {
        return fail(401, "Unauthorized", "Invalid credentials", None);
    }
    if let Some((status, code, message)) = {
        let mut state = sim.lock();
        (!state.fail_next.is_empty()).then(|| state.fail_next.remove(0))
    } {
        return fail(status, &code, &message, None);
    }
    let parsed =
        parse_request(&headers, &body).and_then(|(body_type, wire)| Ok((body_type, stored(wire)?)));
    let (body_type, mut identity) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return fail(400, "SerializationException", &message, None),
    };
    if body_type.as_deref().is_some_and(|t| t != identity_type) {
        return fail(
            400,
            "ArgumentException",
            "IdentityType differs from the route",
            Some("IdentityType"),
        );
    }
    if identity.name.trim().is_empty() {
        return fail(400, "NotEmpty", "'Name' must not be empty.", Some("Name"));
    }
    let now = now_ms();
    let id = {
        let mut state = sim.lock();
        let key = (identity_type.clone(), identity.id);
        let id = if identity.id == 0 {
            state.next_id += 1;
            state.creates += 1;
            state.next_id
        } else if state.identities.contains_key(&key) {
            identity.id
        } else {
            drop(state);
            return fail(
                404,
                "NotFound",
                &format!("Identity {} not found", identity.id),
                Some("Id"),
            );
        };
        identity.id = id;
        if let Some(user) = identity.user_info.as_mut() {
            // UserId 0 is a new user row, however the identity was saved before.
            if user.user_id == 0 {
                state.new_user(user, now);
            } else {
                user.modified_date = now;
            }
        }
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
            &[("xmlns:i", XSI), ("xmlns", DATA_CONTRACT_NS)],
        )
        .text_element("IdentityId", &[], &id.to_string())
        .end("SaveErpSecurityIdentityResponse");
        ([("Content-Type", "application/xml")], w.finish()).into_response()
    } else {
        json_answer(
            StatusCode::OK,
            json!({"ResponseStatus": null, "IdentityId": id}),
            dialect,
        )
    }
}

/// An identity as a JSON listing entry (PascalCase; nulls left out, as ServiceStack does).
fn identity_json(i: &Identity, dates: DateStyle) -> Value {
    let mut entry = json!({"Id": i.id, "Name": i.name});
    let mut put = |k: &str, v: Option<Value>| {
        if let (Some(v), Some(map)) = (v, entry.as_object_mut()) {
            map.insert(k.into(), v);
        }
    };
    put("Description", i.description.clone().map(Value::from));
    put("IsRole", i.is_role.map(Value::from));
    put("IsGranted", i.is_granted.map(Value::from));
    put(
        "UserInfo",
        i.user_info.as_ref().map(|u| {
            let mut user = json!({
                "UserId": u.user_id, "InvalidLoginAttempts": u.invalid_login_attempts,
                "Blocked": u.blocked, "CreatedDate": json_date(u.created_date, dates),
                "ModifiedDate": json_date(u.modified_date, dates),
                "EmailConfirmed": u.email_confirmed, "IsSysAdmin": u.is_sys_admin,
                "MaxSessionCount": u.max_session_count,
            });
            let texts = [
                ("UserName", &u.user_name),
                ("Email", &u.email),
                ("Name", &u.name),
                ("LastName", &u.last_name),
                ("PhoneNumber", &u.phone_number),
                ("Language", &u.language),
                ("UserData", &u.user_data),
                ("DisplayName", &u.display_name),
            ];
            let dates = [
                ("LastLoginAttempt", u.last_login_attempt),
                ("LockedDate", u.locked_date),
                ("BirthDate", u.birth_date),
            ]
            .map(|(k, d)| (k, d.map(|ms| json_date(ms, dates))));
            if let Some(map) = user.as_object_mut() {
                for (k, v) in texts {
                    if let Some(v) = v {
                        map.insert(k.into(), Value::from(v.clone()));
                    }
                }
                for (k, v) in dates {
                    if let Some(v) = v {
                        map.insert(k.into(), v);
                    }
                }
            }
            user
        }),
    );
    put("Spend", i.spend.map(Value::from));
    entry
}

/// `<name>text</name>`, or `<name i:nil="true" />` for null, as DataContract writes it.
fn nillable(w: &mut XmlWriter, name: &str, value: Option<String>) {
    match value {
        Some(v) => {
            w.text_element(name, &[], &v);
        }
        None => {
            w.empty(name, &[("i:nil", "true")]);
        }
    }
}

fn write_identity(w: &mut XmlWriter, i: &Identity) {
    let text = |b: bool| b.to_string();
    w.start("ErpAuthorizationIdentity", &[]);
    w.text_element("Id", &[], &i.id.to_string());
    nillable(w, "Name", Some(i.name.clone()));
    nillable(w, "Description", i.description.clone());
    nillable(w, "IsRole", i.is_role.map(text));
    nillable(w, "IsGranted", i.is_granted.map(text));
    match &i.user_info {
        None => nillable(w, "UserInfo", None),
        Some(u) => {
            w.start("UserInfo", &[]);
            w.text_element("UserId", &[], &u.user_id.to_string());
            nillable(w, "UserName", u.user_name.clone());
            nillable(w, "Email", u.email.clone());
            nillable(w, "Name", u.name.clone());
            nillable(w, "LastName", u.last_name.clone());
            nillable(w, "LastLoginAttempt", u.last_login_attempt.map(local_date));
            w.text_element(
                "InvalidLoginAttempts",
                &[],
                &u.invalid_login_attempts.to_string(),
            );
            w.text_element("Blocked", &[], &text(u.blocked));
            w.text_element("CreatedDate", &[], &local_date(u.created_date));
            w.text_element("ModifiedDate", &[], &local_date(u.modified_date));
            nillable(w, "LockedDate", u.locked_date.map(local_date));
            nillable(w, "PhoneNumber", u.phone_number.clone());
            nillable(w, "BirthDate", u.birth_date.map(local_date));
            nillable(w, "Language", u.language.clone());
            w.text_element("EmailConfirmed", &[], &text(u.email_confirmed));
            w.text_element("IsSysAdmin", &[], &text(u.is_sys_admin));
            nillable(w, "UserData", u.user_data.clone());
            nillable(w, "DisplayName", u.display_name.clone());
            w.text_element("MaxSessionCount", &[], &u.max_session_count.to_string());
            w.end("UserInfo");
        }
    }
    nillable(w, "Spend", i.spend.map(text));
    w.end("ErpAuthorizationIdentity");
}

async fn list(
    State(sim): State<ApexSim>,
    Path(identity_type): Path<String>,
    headers: HeaderMap,
) -> Response {
    let dialect = sim.dialect();
    if dialect.no_listing_route {
        // What a host answers for a route it does not have: its own page, no ResponseStatus.
        return (
            StatusCode::NOT_FOUND,
            [("Content-Type", "text/html")],
            "<html><body><h1>Handler for Request not found</h1></body></html>",
        )
            .into_response();
    }
    let xml_out = wants_xml(&headers, "accept");
    if !sim.authorized(&headers) {
        return status_error(
            xml_out,
            dialect,
            401,
            "Unauthorized",
            "Invalid credentials",
            None,
        );
    }
    let identities = sim.identities(&identity_type);
    if !xml_out {
        let items: Vec<Value> = identities
            .iter()
            .map(|i| identity_json(i, dialect.dates))
            .collect();
        let body = match dialect.list_shape {
            ListShape::Bare => Value::Array(items),
            ListShape::ResultDto => json!({"Result": items, "ResponseStatus": null}),
            ListShape::ResultsDto => json!({"Results": items, "ResponseStatus": null}),
        };
        return json_answer(StatusCode::OK, body, dialect);
    }
    let mut w = XmlWriter::bare();
    let namespaces = [("xmlns:i", XSI), ("xmlns", DATA_CONTRACT_NS)];
    let wrapper = match dialect.list_shape {
        ListShape::Bare => None,
        ListShape::ResultDto => Some("Result"),
        ListShape::ResultsDto => Some("Results"),
    };
    match wrapper {
        None => {
            w.start("ArrayOfErpAuthorizationIdentity", &namespaces);
        }
        Some(member) => {
            w.start("GetErpSecurityIdentitiesResponse", &namespaces);
            w.empty("ResponseStatus", &[("i:nil", "true")]);
            w.start(member, &[]);
        }
    }
    for i in &identities {
        write_identity(&mut w, i);
    }
    match wrapper {
        None => {
            w.end("ArrayOfErpAuthorizationIdentity");
        }
        Some(member) => {
            w.end(member).end("GetErpSecurityIdentitiesResponse");
        }
    }
    ([("Content-Type", "application/xml")], w.finish()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_form_the_seed_allows() {
        for (text, ms) in [
            ("/Date(641520000000)/", 641_520_000_000),
            ("/Date(641520000000+0200)/", 641_520_000_000),
            ("1990-05-01T00:00:00", 641_520_000_000),
            ("1990-05-01", 641_520_000_000),
            ("1990-05-01T02:00:00+02:00", 641_520_000_000),
            ("0001-01-01T00:00:00", DOTNET_MIN_DATE_MS),
        ] {
            assert_eq!(parse_date(text), Ok(ms), "{text}");
        }
        assert!(parse_date("soon").is_err());
        assert_eq!(local_date(641_520_000_000), "1990-05-01T00:00:00");
        assert_eq!(local_date(DOTNET_MIN_DATE_MS), "0001-01-01T00:00:00");
    }

    #[test]
    fn requests_in_any_casing_take_defaults_for_what_they_leave_out() {
        let value = json!({"identityType": "User", "identity": {"id": 0, "name": "n",
            "userInfo": {"email": "e@example.com", "birthDate": "/Date(641520000000)/"}}});
        let wire: SaveWire = serde_json::from_value(recase(value, pascal)).expect("wire");
        assert_eq!(wire.identity_type.as_deref(), Some("User"));
        let identity = stored(wire.identity.expect("identity")).expect("stored");
        let user = identity.user_info.expect("user");
        assert_eq!(user.email.as_deref(), Some("e@example.com"));
        assert_eq!(user.birth_date, Some(641_520_000_000));
        assert_eq!((user.user_id, user.created_date), (0, DOTNET_MIN_DATE_MS));
    }
}
