//! HelloID: POST /api/v1/enduser/{userGuid}/credential sets an end user's credential set for
//! one application; DELETE /api/v1/credentialset/{userGuid}/{applicationGuid} removes it.
//! HTTP Basic with the API key and secret. The API is write-only for our purpose.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use super::http::{HttpResponse, VendorHttp, classify_status};
use super::{
    ConnectError, ExternalClient, Observation, Outputs, VendorError, expose_secret,
    fingerprint_json,
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

impl HelloIdClient {
    pub async fn connect(
        endpoint: &HelloIdEndpoint,
        http: Arc<VendorHttp>,
        secrets: &ConnectionSecrets<'_>,
    ) -> Result<Self, ConnectError> {
        let mut keys = secrets
            .keys(&endpoint.api_key_secret_ref, &["key", "secret"])
            .await?
            .into_iter();
        match (keys.next(), keys.next()) {
            (Some(api_key), Some(api_secret)) => Ok(HelloIdClient {
                http,
                api_key,
                api_secret,
            }),
            _ => Err(ConnectError::Invalid(
                "HelloID apiKeySecretRef needs keys key and secret".into(),
            )),
        }
    }

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

#[async_trait]
impl ExternalClient for CredentialSet {
    fn readable(&self) -> bool {
        false
    }

    fn fingerprint_material(&self) -> zeroize::Zeroizing<Vec<u8>> {
        fingerprint_json(&(&self.user_guid, &self.request))
    }

    async fn observe(&self) -> Result<Observation, VendorError> {
        Ok(Observation::Unknown)
    }

    async fn apply(&self) -> Result<Outputs, VendorError> {
        let http = &self.client.http;
        let url = http.url(&["api", "v1", "enduser", &self.user_guid, "credential"]);
        let request = self
            .client
            .authorized(http.client().post(url))
            .json(&self.request);
        let response = http.send("SetCredentials", request).await?;
        if !response.status.is_success() {
            return Err(error(&response));
        }
        Ok(Outputs {
            credential_set_guid: credential_set_guid(
                &response,
                &self.request.application_guid,
                &self.request.cred_set_name,
            ),
            ..Outputs::default()
        })
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
                "DeleteCredentialSet",
                self.client.authorized(http.client().delete(url)),
            )
            .await?;
        match response.status.as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(error(&response)),
        }
    }
}

/// The error text HelloID gives, from the known message fields only: bodies can echo the
/// request, so they are never copied whole.
fn error(response: &HttpResponse) -> VendorError {
    let detail = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| {
            ["message", "Message", "error", "Error"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_string))
        });
    classify_status(response, detail)
}

/// The credentialSetGUID of our set in HelloID's answer (the user's credential configuration).
fn credential_set_guid(
    response: &HttpResponse,
    application_guid: &str,
    set_name: &str,
) -> Option<String> {
    let apps: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    let apps = apps.as_array()?;
    let app = apps.iter().find(|a| {
        a.get("applicationGUID")
            .and_then(|g| g.as_str())
            .is_some_and(|g| g.eq_ignore_ascii_case(application_guid))
    })?;
    app.get("credentialSets")?
        .as_array()?
        .iter()
        .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(set_name))?
        .get("credentialSetGUID")?
        .as_str()
        .map(str::to_string)
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
}
