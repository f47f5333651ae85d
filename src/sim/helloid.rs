//! HelloID simulator: POST /api/v1/enduser/{userGuid}/credential and
//! DELETE /api/v1/credentialset/{userGuid}/{applicationGuid}, HTTP Basic key:secret.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
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

/// The simulator's state.
#[derive(Clone)]
pub struct HelloIdSim {
    pub api_key: String,
    pub api_secret: String,
    pub sets: Arc<Mutex<BTreeMap<SetKey, StoredSet>>>,
    /// Saves that succeeded, per set.
    pub writes: Arc<Mutex<BTreeMap<SetKey, usize>>>,
}

impl HelloIdSim {
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        HelloIdSim {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            sets: Arc::default(),
            writes: Arc::default(),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/enduser/{user}/credential", post(save))
            .route("/api/v1/credentialset/{user}/{app}", delete(remove))
            .with_state(self.clone())
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
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("request body is not valid JSON");
    };
    let Some(app) = body
        .get("ApplicationGUID")
        .and_then(Value::as_str)
        .filter(|g| is_guid(g))
    else {
        return bad_request("ApplicationGUID is required and must be a GUID");
    };
    let Some(set_name) = body
        .get("CredSetName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return bad_request("CredSetName is required");
    };
    let Some(items) = body
        .get("Credentials")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    else {
        return bad_request("Credentials is required");
    };
    let mut credentials = Vec::new();
    for item in items {
        let (Some(function), Some(value)) = (
            item.get("Function").and_then(Value::as_str),
            item.get("Value").and_then(Value::as_str),
        ) else {
            return bad_request("each credential needs Function and Value");
        };
        if item.get("UserEditAllowed").and_then(Value::as_bool) != Some(true) {
            return bad_request("UserEditAllowed must be true");
        }
        credentials.push(StoredCredential {
            guid: uuid_like(),
            function: function.into(),
            value: value.into(),
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
