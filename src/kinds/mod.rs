//! How each managed kind maps onto the vendors: its [`Managed`](crate::managed::Managed)
//! implementation, one file per kind.

pub mod crm_user_credential;
pub mod erp_identity;
pub mod sso_app_credential;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::api::{ErpIdentity, SsoAppCredential, SyncStatus};
    use crate::managed::Managed;
    use crate::vendors::apex::IdentityOutputs;
    use crate::vendors::helloid::CredentialSetOutputs;

    fn object<K: serde::de::DeserializeOwned>(
        kind: &str,
        spec: serde_json::Value,
        status: serde_json::Value,
    ) -> K {
        serde_json::from_value(json!({
            "apiVersion": "credsync.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": "x", "namespace": "ns"},
            "spec": spec,
            "status": status,
        }))
        .expect(kind)
    }

    #[test]
    fn an_apex_answer_replaces_the_identity_id_and_no_answer_keeps_it() {
        let spec =
            json!({"connectionRef": {"name": "apex"}, "identityType": "User", "name": "jdoe"});
        let erp: ErpIdentity = object("ErpIdentity", spec, json!({"identityId": 5}));
        let sync = SyncStatus::default();
        assert_eq!(erp.status_with(sync.clone(), None).identity_id, Some(5));
        let recreated = IdentityOutputs { identity_id: 9 };
        assert_eq!(
            erp.status_with(sync, Some(&recreated)).identity_id,
            Some(9),
            "a re-created identity has a new id"
        );
    }

    #[test]
    fn a_helloid_answer_without_the_guid_keeps_the_one_held() {
        let spec = json!({
            "connectionRef": {"name": "helloid"},
            "userGuid": "u", "applicationGuid": "a", "credSetName": "Default",
            "credentials": [{"function": "UserName", "value": "Mike"}]
        });
        let sso: SsoAppCredential =
            object("SsoAppCredential", spec, json!({"credentialSetGuid": "g1"}));
        let sync = SyncStatus::default();
        let silent = CredentialSetOutputs::default();
        assert_eq!(
            sso.status_with(sync.clone(), Some(&silent))
                .credential_set_guid
                .as_deref(),
            Some("g1")
        );
        let told = CredentialSetOutputs {
            credential_set_guid: Some("g2".into()),
        };
        assert_eq!(
            sso.status_with(sync, Some(&told))
                .credential_set_guid
                .as_deref(),
            Some("g2")
        );
    }
}
