//! HelloID: POST /api/v1/enduser/{userGuid}/credential sets an end user's credential set for
//! one application; DELETE /api/v1/credentialset/{userGuid}/{applicationGuid} removes it.
//! HTTP Basic with the API key and secret. The API is write-only for our purpose.
//!
//! The seed is not one voice: its URI table says `/api/v1/enduser/{guid}/credential`, its cURL
//! sample `/api/v1/endusers/{guid}/credentials`. The singular form is tried first; on a
//! route-level 404 the plural one once, and the connection remembers which one its tenant
//! serves. The DELETE route is not in the seed at all, so its 404 counts as "already gone" only
//! when HelloID said so in its own error format (a JSON object with a `message`/`error` text);
//! an empty, HTML or ASP.NET routing 404 blocks the deletion instead (docs/vendors/helloid.md).

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use super::capabilities::{Capability, says_no_route};
use super::http::{HttpResponse, VendorHttp, classify_status};
use super::lenient;
use super::{
    ClientBuilder, ConnectError, ExternalClient, Observation, VendorClient, VendorError,
    VendorModule, expose_secret, fingerprint_json,
};
use crate::api::HelloIdEndpoint;
use crate::secrets::ConnectionSecrets;

/// A HelloID tenant's client.
pub struct HelloIdClient {
    pub(super) http: Arc<VendorHttp>,
    api_key: SecretString,
    api_secret: SecretString,
}

impl std::fmt::Debug for HelloIdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelloIdClient")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// HelloID's part of a connection: its block of the spec.
#[async_trait]
impl VendorModule for HelloIdEndpoint {
    fn url(&self) -> &str {
        &self.url
    }

    async fn credentials(
        &self,
        secrets: &ConnectionSecrets<'_>,
    ) -> Result<ClientBuilder, ConnectError> {
        let mut keys = secrets
            .keys(&self.api_key_secret_ref, &["key", "secret"])
            .await?
            .into_iter();
        match (keys.next(), keys.next()) {
            (Some(api_key), Some(api_secret)) => Ok(Box::new(move |http| {
                VendorClient::HelloId(Arc::new(HelloIdClient {
                    http,
                    api_key,
                    api_secret,
                }))
            })),
            _ => Err(ConnectError::Invalid(
                "HelloID apiKeySecretRef needs keys key and secret".into(),
            )),
        }
    }
}

impl HelloIdClient {
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(
            secrecy::ExposeSecret::expose_secret(&self.api_key),
            Some(secrecy::ExposeSecret::expose_secret(&self.api_secret)),
        )
    }
}

/// The request body of UpdateEndUserCredentialConfigurationForApplication.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialSetRequest {
    #[serde(rename = "ApplicationGUID")]
    pub application_guid: String,
    pub cred_set_name: String,
    pub credentials: Vec<CredentialValue>,
}

/// One credential of the request; `UserEditAllowed` must always be true.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct CredentialValue {
    pub function: String,
    #[serde(serialize_with = "expose_secret")]
    pub value: SecretString,
    pub user_edit_allowed: bool,
}

/// One end user's credential set for one application.
pub struct CredentialSet {
    pub client: Arc<HelloIdClient>,
    pub user_guid: String,
    pub request: CredentialSetRequest,
}

/// Capability name of the credential write (the same as its request metric's operation).
const SET_CREDENTIALS: &str = "SetCredentials";
/// Capability name of the credential set delete.
const DELETE_CREDENTIAL_SET: &str = "DeleteCredentialSet";

/// The two forms of the credential write route the seed shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CredentialPath {
    /// The seed's URI table: `/api/v1/enduser/{guid}/credential`.
    Singular,
    /// The seed's cURL sample: `/api/v1/endusers/{guid}/credentials`.
    Plural,
}

impl CredentialPath {
    fn variant(self) -> &'static str {
        match self {
            CredentialPath::Singular => "singular",
            CredentialPath::Plural => "plural",
        }
    }

    fn template(self) -> &'static str {
        match self {
            CredentialPath::Singular => "/api/v1/enduser/{userGuid}/credential",
            CredentialPath::Plural => "/api/v1/endusers/{userGuid}/credentials",
        }
    }

    fn segments(self, user_guid: &str) -> [&str; 5] {
        match self {
            CredentialPath::Singular => ["api", "v1", "enduser", user_guid, "credential"],
            CredentialPath::Plural => ["api", "v1", "endusers", user_guid, "credentials"],
        }
    }

    fn other(self) -> Self {
        match self {
            CredentialPath::Singular => CredentialPath::Plural,
            CredentialPath::Plural => CredentialPath::Singular,
        }
    }

    /// The form this connection's tenant was last seen serving; the documented one before that.
    fn remembered(http: &VendorHttp) -> Self {
        match http.capabilities().get(SET_CREDENTIALS) {
            Some(Capability::Supported {
                variant: Some("plural"),
            }) => CredentialPath::Plural,
            _ => CredentialPath::Singular,
        }
    }
}

/// What a DELETE's answer means for the credential set.
#[derive(Debug, PartialEq, Eq)]
enum DeleteOutcome {
    /// Deleted now, or HelloID said in its own error format that there is no such set.
    Gone,
    /// The tenant has no such route: nothing was deleted.
    NoRoute,
    /// Any other failure.
    Failed,
}

fn delete_outcome(response: &HttpResponse) -> DeleteOutcome {
    let status = response.status;
    if status.is_success() {
        DeleteOutcome::Gone
    } else if says_no_route(status, vendor_message(response).as_deref()) {
        DeleteOutcome::NoRoute
    } else if status == http::StatusCode::NOT_FOUND {
        DeleteOutcome::Gone
    } else {
        DeleteOutcome::Failed
    }
}

/// What HelloID answers that the SsoAppCredential status keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialSetOutputs {
    /// The credential set's GUID, when the answer shows it.
    pub credential_set_guid: Option<String>,
}

#[async_trait]
impl ExternalClient for CredentialSet {
    type Outputs = CredentialSetOutputs;

    fn readable(&self) -> bool {
        false
    }

    fn fingerprint_material(&self) -> zeroize::Zeroizing<Vec<u8>> {
        fingerprint_json(&(&self.user_guid, &self.request))
    }

    async fn observe(&self) -> Result<Observation<CredentialSetOutputs>, VendorError> {
        Ok(Observation::Unknown)
    }

    async fn apply(&self) -> Result<CredentialSetOutputs, VendorError> {
        let http = &self.client.http;
        let first = CredentialPath::remembered(http);
        let mut missed = Vec::new();
        for path in [first, first.other()] {
            let url = http.url(&path.segments(&self.user_guid));
            let request = self
                .client
                .authorized(http.client().post(url))
                .json(&self.request);
            let response = http.send(SET_CREDENTIALS, request).await?;
            if response.status.is_success() {
                http.capabilities()
                    .supported(SET_CREDENTIALS, Some(path.variant()));
                return Ok(CredentialSetOutputs {
                    credential_set_guid: credential_set_guid(
                        &response.body,
                        &self.request.application_guid,
                        &self.request.cred_set_name,
                    ),
                });
            }
            if !says_no_route(response.status, vendor_message(&response).as_deref()) {
                return Err(error(&response));
            }
            missed.push(format!(
                "POST {} answered HTTP {} without a HelloID error",
                path.template(),
                response.status.as_u16()
            ));
        }
        let missed = missed.join("; ");
        http.capabilities().unsupported(
            SET_CREDENTIALS,
            format!("{missed}; credsync cannot set credentials through this connection"),
        );
        Err(VendorError::permanent(
            "VendorRouteNotFound",
            format!(
                "HelloID serves neither documented credential route ({missed}); check the connection's url (https://{{company-name}}.helloid.com)"
            ),
        ))
    }

    async fn delete(&self) -> Result<(), VendorError> {
        let http = &self.client.http;
        let url = http.url(&[
            "api",
            "v1",
            "credentialset",
            &self.user_guid,
            &self.request.application_guid,
        ]);
        let response = http
            .send(
                DELETE_CREDENTIAL_SET,
                self.client.authorized(http.client().delete(url)),
            )
            .await?;
        match delete_outcome(&response) {
            DeleteOutcome::Gone => {
                http.capabilities().supported(DELETE_CREDENTIAL_SET, None);
                Ok(())
            }
            DeleteOutcome::NoRoute => {
                let answered = format!(
                    "DELETE /api/v1/credentialset/{{userGuid}}/{{applicationGuid}} answered HTTP {} without a HelloID error",
                    response.status.as_u16()
                );
                http.capabilities().unsupported(
                    DELETE_CREDENTIAL_SET,
                    format!("{answered}; deletions are blocked until deletionPolicy is Orphan"),
                );
                Err(VendorError::permanent(
                    "VendorRouteNotFound",
                    format!(
                        "HelloID has no such delete route ({answered}), so the credential set is still live in HelloID; remove it there and set deletionPolicy: Orphan"
                    ),
                ))
            }
            DeleteOutcome::Failed => Err(error(&response)),
        }
    }
}

/// HelloID's own error text: a JSON object with a `message` or `error` string (any casing).
/// The seed shows no error body, so anything else (empty, HTML, plain text) is not HelloID
/// speaking. Bodies can echo the request, so only these fields are ever read.
fn vendor_message(response: &HttpResponse) -> Option<String> {
    let body = serde_json::from_slice::<serde_json::Value>(&response.body).ok()?;
    ["message", "error", "errorMessage"]
        .iter()
        .find_map(|k| lenient::string(&body, k))
        .filter(|m| !m.trim().is_empty())
}

fn error(response: &HttpResponse) -> VendorError {
    classify_status(response, vendor_message(response))
}

/// The credentialSetGUID of our set in HelloID's answer (the user's credential configuration:
/// a list of applications, each with its credential sets). Keys in either casing, the list bare
/// or wrapped; entries lacking the keys that identify them are skipped, never matched.
fn credential_set_guid(body: &[u8], application_guid: &str, set_name: &str) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let apps: Vec<&serde_json::Value> = if lenient::field(&answer, "applicationGUID").is_some() {
        vec![&answer]
    } else {
        lenient::list(&answer)?.iter().collect()
    };
    let app = apps.into_iter().find(|a| {
        lenient::string(a, "applicationGUID")
            .is_some_and(|g| g.eq_ignore_ascii_case(application_guid))
    })?;
    lenient::field(app, "credentialSets")
        .and_then(lenient::list)?
        .iter()
        .filter(|s| lenient::string(s, "name").as_deref() == Some(set_name))
        .find_map(|s| lenient::string(s, "credentialSetGUID").filter(|g| !g.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_seed_shape_and_debug_hides_values() {
        let request = CredentialSetRequest {
            application_guid: "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f".into(),
            cred_set_name: "Default".into(),
            credentials: vec![
                CredentialValue {
                    function: "UserName".into(),
                    value: "Mike".into(),
                    user_edit_allowed: true,
                },
                CredentialValue {
                    function: "Password".into(),
                    value: "g!sg*Z_x5 <&>\"'ü".into(),
                    user_edit_allowed: true,
                },
            ],
        };
        let golden = include_str!("../../tests/golden/helloid_set_credentials.json");
        let expected: serde_json::Value = serde_json::from_str(golden).expect("golden json");
        assert_eq!(serde_json::to_value(&request).expect("json"), expected);
        assert!(!format!("{request:?}").contains("g!sg"));
    }

    fn response(status: u16, content_type: &str, body: &str) -> HttpResponse {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = content_type.parse() {
            headers.insert(http::header::CONTENT_TYPE, value);
        }
        HttpResponse {
            status: http::StatusCode::from_u16(status).expect("status"),
            headers,
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn a_delete_404_is_gone_only_when_helloid_said_so() {
        use DeleteOutcome::*;
        let json = "application/json";
        for (status, content_type, body, want) in [
            (200, json, "", Gone),
            (204, "", "", Gone),
            (404, json, r#"{"message":"credential set not found"}"#, Gone),
            (
                404,
                json,
                r#"{"Message":"Credential set does not exist"}"#,
                Gone,
            ),
            (
                404,
                json,
                r#"{"error":"No credential set for this user"}"#,
                Gone,
            ),
            (404, "", "", NoRoute),
            (
                404,
                "text/html",
                "<html><body>404 - File or directory not found.</body></html>",
                NoRoute,
            ),
            (404, "text/plain", "Not Found", NoRoute),
            (404, json, "{}", NoRoute),
            (404, json, r#"{"message":""}"#, NoRoute),
            (
                404,
                json,
                r#"{"Message":"No HTTP resource was found that matches the request URI 'https://x/api/v1/credentialset/a/b'."}"#,
                NoRoute,
            ),
            (
                405,
                json,
                r#"{"Message":"The requested resource does not support http method 'DELETE'."}"#,
                NoRoute,
            ),
            (400, json, r#"{"message":"invalid GUID"}"#, Failed),
            (401, "", "", Failed),
            (500, "text/html", "<html>oops</html>", Failed),
        ] {
            assert_eq!(
                delete_outcome(&response(status, content_type, body)),
                want,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn the_credential_set_guid_is_read_in_any_casing_and_wrapping() {
        const APP: &str = "6c9e917d-e4b0-44e6-83aa-6f01c6ea314f";
        let seed = r#"[{"langSet":"EN","credentialSets":[{"credentials":[],"credentialSetGUID":"c7e4de0c-b8d8-4d1b-9a62-6eead6502e1e","name":"Default"}],"applicationGUID":"6c9e917d-e4b0-44e6-83aa-6f01c6ea314f","error":""}]"#;
        let pascal = r#"[{"CredentialSets":[{"CredentialSetGUID":"c7e4de0c-b8d8-4d1b-9a62-6eead6502e1e","Name":"Default"}],"ApplicationGUID":"6C9E917D-E4B0-44E6-83AA-6F01C6EA314F"}]"#;
        let wrapped = r#"{"result":[{"credentialSets":{"items":[{"credentialSetGUID":"c7e4de0c-b8d8-4d1b-9a62-6eead6502e1e","name":"Default"}]},"applicationGUID":"6c9e917d-e4b0-44e6-83aa-6f01c6ea314f"}]}"#;
        let single = r#"{"credentialSets":[{"credentialSetGUID":"c7e4de0c-b8d8-4d1b-9a62-6eead6502e1e","name":"Default"}],"applicationGUID":"6c9e917d-e4b0-44e6-83aa-6f01c6ea314f"}"#;
        let keyless = r#"[{"credentialSets":[{"name":"Default"},{"credentialSetGUID":"c7e4de0c-b8d8-4d1b-9a62-6eead6502e1e","name":"Default"}],"applicationGUID":"6c9e917d-e4b0-44e6-83aa-6f01c6ea314f"}]"#;
        for body in [seed, pascal, wrapped, single, keyless] {
            assert_eq!(
                credential_set_guid(body.as_bytes(), APP, "Default").as_deref(),
                Some("c7e4de0c-b8d8-4d1b-9a62-6eead6502e1e"),
                "{body}"
            );
        }
        for (body, why) in [
            (
                r#"[{"credentialSets":[{"credentialSetGUID":"x","name":"Default"}]}]"#,
                "no applicationGUID",
            ),
            (
                r#"[{"credentialSets":[{"credentialSetGUID":"x"}],"applicationGUID":"6c9e917d-e4b0-44e6-83aa-6f01c6ea314f"}]"#,
                "no name",
            ),
            (
                r#"[{"credentialSets":[{"credentialSetGUID":"x","name":"Other"}],"applicationGUID":"6c9e917d-e4b0-44e6-83aa-6f01c6ea314f"}]"#,
                "another set",
            ),
            (
                r#"[{"credentialSets":[{"credentialSetGUID":"x","name":"Default"}],"applicationGUID":"00000000-0000-0000-0000-000000000000"}]"#,
                "another application",
            ),
            ("<html/>", "not JSON"),
            ("[]", "empty"),
        ] {
            assert_eq!(
                credential_set_guid(body.as_bytes(), APP, "Default"),
                None,
                "{why}"
            );
        }
    }
}
