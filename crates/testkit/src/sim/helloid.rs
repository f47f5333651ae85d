//! HelloID simulator: POST /api/v1/enduser/{userGuid}/credential and
//! DELETE /api/v1/credentialset/{userGuid}/{applicationGuid}, HTTP Basic key:secret.
//!
//! Written from the seed (004), not from credsync's client, so a wrong guess on one side shows:
//! the request body is read with the simulator's own types in the seed's casing. Where the seed
//! is silent it can answer every way a tenant might: the credential route in the URI table's
//! singular form, the cURL sample's plural form, or both ([`CredentialRoutes`]); with or
//! without the undocumented DELETE route. Unknown routes get ASP.NET's routing 404, whose
//! `{"Message": ...}` shape looks like an application error but is not HelloID speaking.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{basic_auth_ok, unauthorized};

/// One stored credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub guid: String,
    pub function: String,
    pub value: String,
}

/// One stored credential set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSet {
    pub guid: String,
    pub credentials: Vec<StoredCredential>,
}

/// (userGuid, applicationGuid, credSetName) → set.
pub type SetKey = (String, String, String);

/// Which form of the credential route the simulated tenant serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialRoutes {
    /// Only the seed's URI table form, `/api/v1/enduser/{guid}/credential`.
    Singular,
    /// Only the seed's cURL sample form, `/api/v1/endusers/{guid}/credentials`.
    Plural,
    /// Both.
    Both,
}

/// The simulator's state.
#[derive(Clone)]
pub struct HelloIdSim {
    pub api_key: String,
    pub api_secret: String,
    pub sets: Arc<Mutex<BTreeMap<SetKey, StoredSet>>>,
    /// Saves that succeeded, per set.
    pub writes: Arc<Mutex<BTreeMap<SetKey, usize>>>,
    routes: CredentialRoutes,
    delete_route: bool,
}

/// The request body of UpdateEndUserCredentialConfigurationForApplication, in the seed's
/// casing. Fields are optional here so a missing one earns HelloID's 400, not a parse error.
#[derive(Deserialize)]
struct UpdateCredentialConfiguration {
    #[serde(rename = "ApplicationGUID")]
    application_guid: Option<String>,
    #[serde(rename = "CredSetName")]
    cred_set_name: Option<String>,
    #[serde(rename = "Credentials")]
    credentials: Option<Vec<CredentialAttribute>>,
}

/// One entry of `Credentials`.
#[derive(Deserialize)]
struct CredentialAttribute {
    #[serde(rename = "Function")]
    function: Option<String>,
    #[serde(rename = "Value")]
    value: Option<String>,
    #[serde(rename = "UserEditAllowed")]
    user_edit_allowed: Option<bool>,
}

impl HelloIdSim {
    /// A tenant serving both credential route forms and the DELETE route.
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        HelloIdSim {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            sets: Arc::default(),
            writes: Arc::default(),
            routes: CredentialRoutes::Both,
            delete_route: true,
        }
    }

    /// Serve only these forms of the credential route.
    pub fn serving(mut self, routes: CredentialRoutes) -> Self {
        self.routes = routes;
        self
    }

    /// Have no DELETE route (it is not in the seed): a DELETE gets the routing 404.
    pub fn without_delete_route(mut self) -> Self {
        self.delete_route = false;
        self
    }

    pub fn router(&self) -> Router {
        let mut router = Router::new();
        if self.routes != CredentialRoutes::Plural {
            router = router.route("/api/v1/enduser/{user}/credential", post(save));
        }
        if self.routes != CredentialRoutes::Singular {
            router = router.route("/api/v1/endusers/{user}/credentials", post(save));
        }
        if self.delete_route {
            router = router.route("/api/v1/credentialset/{user}/{app}", delete(remove));
        }
        router.fallback(no_route).with_state(self.clone())
    }

    /// The stored set, if any.
    pub fn get(&self, user: &str, app: &str, set: &str) -> Option<StoredSet> {
        self.lock()
            .get(&(user.to_lowercase(), app.to_lowercase(), set.to_string()))
            .cloned()
    }

    /// Successful saves of one set.
    pub fn writes_of(&self, user: &str, app: &str, set: &str) -> usize {
        let key = (user.to_lowercase(), app.to_lowercase(), set.to_string());
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// Successful saves per set, largest first.
    pub fn write_counts(&self) -> Vec<(SetKey, usize)> {
        let mut counts: Vec<_> = self
            .writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .into_iter()
            .collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SetKey, StoredSet>> {
        self.sets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "message": message })),
    )
        .into_response()
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

async fn save(
    State(sim): State<HelloIdSim>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !basic_auth_ok(&headers, &sim.api_key, &sim.api_secret) {
        return unauthorized();
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )
            .into_response();
    }
    if !is_guid(&user) {
        return bad_request("invalid user GUID");
    }
    let Ok(body) = serde_json::from_slice::<UpdateCredentialConfiguration>(&body) else {
        return bad_request("request body is malformed");
    };
    let Some(app) = body.application_guid.as_deref().filter(|g| is_guid(g)) else {
        return bad_request("ApplicationGUID is required and must be a GUID");
    };
    let Some(set_name) = body.cred_set_name.as_deref().filter(|s| !s.is_empty()) else {
        return bad_request("CredSetName is required");
    };
    let Some(items) = body.credentials.as_deref().filter(|c| !c.is_empty()) else {
        return bad_request("Credentials is required");
    };
    let mut credentials = Vec::new();
    for item in items {
        let (Some(function), Some(value)) = (&item.function, &item.value) else {
            return bad_request("each credential needs Function and Value");
        };
        if item.user_edit_allowed != Some(true) {
            return bad_request("UserEditAllowed must be true");
        }
        credentials.push(StoredCredential {
            guid: uuid_like(),
            function: function.clone(),
            value: value.clone(),
        });
    }
    let key = (
        user.to_lowercase(),
        app.to_lowercase(),
        set_name.to_string(),
    );
    let stored = {
        let mut sets = sim.lock();
        let guid = sets
            .get(&key)
            .map(|s| s.guid.clone())
            .unwrap_or_else(uuid_like);
        let set = StoredSet { guid, credentials };
        sets.insert(key.clone(), set.clone());
        *sim.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(0) += 1;
        set
    };
    // The answer is the user's credential configuration for the application, as the seed shows.
    let (user, app) = (user.to_lowercase(), app.to_lowercase());
    let sets: Vec<Value> = sim
        .lock()
        .range((user.clone(), app.clone(), String::new())..)
        .take_while(|((u, a, _), _)| *u == user && *a == app)
        .map(|((_, _, name), set)| {
            json!({
                "credentials": set.credentials.iter().map(|c| json!({
                    "credentialGUID": c.guid, "function": c.function, "value": c.value, "userEditAllowed": true
                })).collect::<Vec<_>>(),
                "credentialSetGUID": set.guid,
                "name": name,
            })
        })
        .collect();
    let _ = stored;
    axum::Json(json!([{
        "langSet": "EN",
        "credentialSets": sets,
        "credCount": items.len(),
        "retryCount": 1,
        "options": 3,
        "appOptions": 0,
        "type": "PLUGIN",
        "name": "Simulated application",
        "applicationGUID": app,
        "error": ""
    }]))
    .into_response()
}

async fn remove(
    State(sim): State<HelloIdSim>,
    Path((user, app)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !basic_auth_ok(&headers, &sim.api_key, &sim.api_secret) {
        return unauthorized();
    }
    let mut sets = sim.lock();
    let before = sets.len();
    sets.retain(|(u, a, _), _| !(*u == user.to_lowercase() && *a == app.to_lowercase()));
    if sets.len() == before {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "credential set not found"})),
        )
            .into_response();
    }
    StatusCode::OK.into_response()
}

/// What IIS/ASP.NET answers for a request no route matches: a 404 whose body has the shape of
/// an application error but speaks of the route.
async fn no_route(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "Message": format!("No HTTP resource was found that matches the request URI '{}'.", uri.path())
        })),
    )
        .into_response()
}

/// A random GUID-shaped string.
pub fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let b: [u8; 16] = rng.random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
