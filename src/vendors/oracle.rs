//! Oracle CRM On Demand: PasswordWS SetPassword over SOAP 1.1 with a WS-Security UsernameToken
//! (PasswordText). Write-only (no read-back) and no delete. SBL-ODU-01005 ("try again in N ms")
//! is a transient fault honoured as a Retry-After.
//!
//! The seed gives the envelope, not the endpoint path or the SOAPAction: `/Services/Integration`
//! and `document/urn:crmondemand/ws/password/:SetPassword` are Oracle's usual ones, assumed. When
//! the path is wrong the answer is a web server's 404 rather than a SOAP fault; the connection
//! records SetPassword as unsupported and the resource stalls saying which path was tried.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::http::{VendorHttp, cut};
use super::soap::{self, Envelope, ROUTE_NOT_FOUND, SoapFault, SoapOutcome};
use super::xml::XmlWriter;
use super::{
    ClientBuilder, ConnectError, ExternalClient, Observation, VendorClient, VendorError,
    VendorModule, expose_secret, fingerprint_json,
};
use crate::api::{OracleCrmOnDemandEndpoint, SoapVersion};
use crate::secrets::ConnectionSecrets;

pub const PASSWORD_NS: &str = "urn:crmondemand/ws/password/";
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
/// The SOAPAction of SetPassword.
pub const SET_PASSWORD_ACTION: &str = "document/urn:crmondemand/ws/password/:SetPassword";
/// Oracle CRM On Demand's web services endpoint below the tenant URL.
pub const SERVICE_PATH: [&str; 2] = ["Services", "Integration"];
/// Capability name of the password write (the same as its request metric's operation).
const SET_PASSWORD: &str = "SetPassword";

/// An Oracle CRM On Demand tenant's client.
pub struct OracleClient {
    pub(super) http: Arc<VendorHttp>,
    username: SecretString,
    password: SecretString,
}

impl std::fmt::Debug for OracleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OracleClient")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// Oracle CRM On Demand's part of a connection: its block of the spec.
#[async_trait]
impl VendorModule for OracleCrmOnDemandEndpoint {
    fn url(&self) -> &str {
        &self.url
    }

    /// Oracle throttles sooner than the others.
    fn default_requests_per_second(&self) -> u32 {
        20
    }

    async fn credentials(
        &self,
        secrets: &ConnectionSecrets<'_>,
    ) -> Result<ClientBuilder, ConnectError> {
        let mut values = secrets
            .keys(&self.credentials_secret_ref, &["username", "password"])
            .await?
            .into_iter();
        match (values.next(), values.next()) {
            (Some(username), Some(password)) => Ok(Box::new(move |http| {
                VendorClient::OracleCrmOnDemand(Arc::new(OracleClient {
                    http,
                    username,
                    password,
                }))
            })),
            _ => Err(ConnectError::Invalid(
                "Oracle credentialsSecretRef needs keys username and password".into(),
            )),
        }
    }
}

impl OracleClient {
    /// Whether `user` names the connection's own login (the integration user): its password is
    /// never set through the connection, whatever a resource asks.
    pub fn is_login_user(&self, user: &str) -> bool {
        user.trim()
            .eq_ignore_ascii_case(self.username.expose_secret().trim())
    }
}

/// One user of ListOfUser, in the seed's element order.
#[derive(Serialize, Debug)]
pub struct PasswordUser {
    pub user_id: String,
    pub email_addr: Option<String>,
    #[serde(serialize_with = "expose_secret")]
    pub password: SecretString,
    pub integration_id: Option<String>,
    pub external_system_id: Option<String>,
}

/// The SetPassword envelope, WS-Security header included.
pub fn set_password_envelope(
    username: &SecretString,
    password: &SecretString,
    user: &PasswordUser,
) -> Vec<u8> {
    Envelope::new(
        SoapVersion::V11,
        "soap",
        &[
            ("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"),
            ("xmlns:wsse", WSSE_NS),
            ("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"),
        ],
    )
    .header(|w| {
        w.start("wsse:Security", &[])
            .start("wsse:UsernameToken", &[]);
        w.text_element("wsse:Username", &[], username.expose_secret());
        w.text_element(
            "wsse:Password",
            &[("Type", PASSWORD_TEXT)],
            password.expose_secret(),
        );
        w.end("wsse:UsernameToken").end("wsse:Security");
    })
    .body(|w: &mut XmlWriter| {
        w.start("PasswordWS_SetPassword_Input", &[("xmlns", PASSWORD_NS)])
            .start("ListOfUser", &[])
            .start("User", &[]);
        w.text_element("UserId", &[], &user.user_id);
        w.optional("EMailAddr", user.email_addr.as_deref());
        w.text_element("Password", &[], user.password.expose_secret());
        w.optional("IntegrationId", user.integration_id.as_deref());
        w.optional("ExternalSystemId", user.external_system_id.as_deref());
        w.end("User")
            .end("ListOfUser")
            .end("PasswordWS_SetPassword_Input");
    })
}

/// Map an Oracle SOAP fault: SBL-ODU-01005 asks to try again in N ms; privilege errors need a
/// person; other SBL codes are permanent.
pub fn fault_error(fault: SoapFault) -> VendorError {
    let detail_text = fault
        .detail
        .as_ref()
        .map(|d| format!("{d:?}"))
        .unwrap_or_default();
    let all = format!("{} {}", fault.reason, detail_text);
    let code = all
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| w.starts_with("SBL-"))
        .unwrap_or_default()
        .to_string();
    let message = format!("Oracle CRM On Demand fault {code}: {}", cut(&fault.reason));
    if code == "SBL-ODU-01005" {
        let wait_ms = fault
            .reason
            .split("try again in")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| {
                n.trim_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(1000);
        return VendorError::Transient {
            reason: "VendorThrottled",
            message,
            retry_after: Some(Duration::from_millis(wait_ms)),
        };
    }
    let lower = fault.reason.to_lowercase();
    if lower.contains("privilege")
        || lower.contains("access denied")
        || lower.contains("not authorized")
    {
        return VendorError::permanent(
            "VendorForbidden",
            format!(
                "{message} (the integration user lacks \"Change Company Passwords using Web Services\")"
            ),
        );
    }
    if code.is_empty() {
        return fault.into_error();
    }
    VendorError::permanent("VendorFault", message)
}

/// One user's password in Oracle CRM On Demand.
pub struct UserPassword {
    pub client: Arc<OracleClient>,
    pub user: PasswordUser,
}

#[async_trait]
impl ExternalClient for UserPassword {
    /// Oracle answers nothing the status keeps.
    type Outputs = ();

    fn readable(&self) -> bool {
        false
    }

    fn fingerprint_material(&self) -> zeroize::Zeroizing<Vec<u8>> {
        fingerprint_json(&self.user)
    }

    async fn observe(&self) -> Result<Observation<()>, VendorError> {
        Ok(Observation::Unknown)
    }

    async fn apply(&self) -> Result<(), VendorError> {
        let http = &self.client.http;
        let envelope =
            set_password_envelope(&self.client.username, &self.client.password, &self.user);
        let outcome = match soap::call(
            http,
            SET_PASSWORD,
            http.url(&SERVICE_PATH),
            SoapVersion::V11,
            SET_PASSWORD_ACTION,
            envelope,
            &[],
        )
        .await
        {
            Err(e) if e.reason() == ROUTE_NOT_FOUND => {
                let why = format!(
                    "POST /Services/Integration: {}; credsync cannot set passwords through this connection",
                    e.message()
                );
                http.capabilities().unsupported(SET_PASSWORD, why);
                return Err(VendorError::permanent(
                    ROUTE_NOT_FOUND,
                    format!(
                        "Oracle CRM On Demand has no web services endpoint at /Services/Integration below the connection's url ({}); check the url (the tenant's https://secure-<pod>.crmondemand.com)",
                        e.message()
                    ),
                ));
            }
            other => other?,
        };
        let outcome = match outcome {
            SoapOutcome::Fault(fault) if fault.is_action_not_supported() => {
                http.capabilities().unsupported(
                    SET_PASSWORD,
                    "the service answered ActionNotSupported for SetPassword; credsync cannot set passwords through this connection",
                );
                return Err(VendorError::permanent(
                    ROUTE_NOT_FOUND,
                    format!(
                        "Oracle CRM On Demand does not know the SOAPAction {SET_PASSWORD_ACTION}: {}",
                        cut(&fault.reason)
                    ),
                ));
            }
            outcome => outcome,
        };
        match outcome {
            SoapOutcome::Fault(fault) => Err(fault_error(fault)),
            SoapOutcome::Body { payload, .. } => {
                let status = payload
                    .as_ref()
                    .and_then(|p| p.child_text("Status"))
                    .unwrap_or_default();
                if status == "Success" {
                    http.capabilities().supported(SET_PASSWORD, None);
                    Ok(())
                } else {
                    Err(VendorError::permanent(
                        "VendorRejected",
                        format!("SetPassword answered Status {:?}", cut(status)),
                    ))
                }
            }
        }
    }

    async fn delete(&self) -> Result<(), VendorError> {
        Err(VendorError::permanent(
            "DeletionPolicyUnsupported",
            "Oracle CRM On Demand has no operation to delete a password",
        ))
    }

    fn supports_delete(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::xml;

    fn user(password: &str) -> PasswordUser {
        PasswordUser {
            user_id: "HRZ780-KGY67".into(),
            email_addr: None,
            password: password.into(),
            integration_id: None,
            external_system_id: Some("Zoë <&> 'q' \"d\"".into()),
        }
    }

    #[test]
    fn envelope_matches_the_golden_file() {
        let built = xml::parse(&set_password_envelope(
            &"admin".into(),
            &"s3cr<e>t".into(),
            &user("oracle&test123"),
        ))
        .expect("parse");
        let golden = xml::parse(include_bytes!("../../tests/golden/oracle_set_password.xml"))
            .expect("golden");
        assert_eq!(built, golden);
        let user_el = built
            .path(&["Body", "PasswordWS_SetPassword_Input", "ListOfUser", "User"])
            .expect("User");
        let names: Vec<&str> = user_el.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "UserId",
                "EMailAddr",
                "Password",
                "IntegrationId",
                "ExternalSystemId"
            ]
        );
        assert_eq!(user_el.namespace.as_deref(), Some(PASSWORD_NS));
        assert!(!format!("{:?}", user("oracle&test123")).contains("oracle&test123"));
    }

    #[test]
    fn faults_map_to_retry_or_stall() {
        let fault = |reason: &str| SoapFault {
            code: "Server".into(),
            reason: reason.into(),
            subcode: None,
            detail: None,
            header: None,
            http_status: http::StatusCode::INTERNAL_SERVER_ERROR,
        };
        match fault_error(fault(
            "SBL-ODU-01005: The server is busy, try again in 250 ms.",
        )) {
            VendorError::Transient {
                retry_after,
                reason,
                ..
            } => {
                assert_eq!(
                    (reason, retry_after),
                    ("VendorThrottled", Some(Duration::from_millis(250)))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            fault_error(fault("SBL-DAT-00553: invalid user")),
            VendorError::Permanent {
                reason: "VendorFault",
                ..
            }
        ));
        assert!(matches!(
            fault_error(fault("SBL-SVC-00100: insufficient privilege")),
            VendorError::Permanent {
                reason: "VendorForbidden",
                ..
            }
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips(password in "\\PC{1,70}", external in "\\PC{0,60}") {
            let mut u = user(&password);
            u.external_system_id = Some(external.clone());
            let doc = xml::parse(&set_password_envelope(&"a".into(), &"b".into(), &u)).expect("parse");
            let el = doc.path(&["Body", "PasswordWS_SetPassword_Input", "ListOfUser", "User"]).expect("User");
            proptest::prop_assert_eq!(el.child("Password").map(|c| c.text.clone()), Some(password));
            proptest::prop_assert_eq!(el.child("ExternalSystemId").map(|c| c.text.clone()), Some(external));
        }
    }
}
