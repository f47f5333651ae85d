//! A connection, and the Secrets its client is built from, stay while a resource still has a
//! vendor record to delete through them, in the manner of Crossplane's ProviderConfigUsage.
//! `kubectl delete namespace` takes the resources, their Secrets and their VendorConnection in
//! one sweep; without this, a resource's delete would find no connection, or (after an operator
//! restart) no credentials to build its client from, and the namespace would never go.
//!
//! The connection reconcile decides (it sees every resource through the caches): while any
//! resource holding [`super::FINALIZER`] uses the connection, the connection and each Secret it
//! reads carry [`IN_USE_FINALIZER`]; when none does, the Secrets are let go first, then the
//! connection. A Secret shared by several connections stays while any of them is in use.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::core::ObjectMeta;
use kube::{Api, Client, Resource};
use serde_json::json;

/// Held on a connection, and on the Secrets it reads, while a resource with
/// [`super::FINALIZER`] uses it.
pub const IN_USE_FINALIZER: &str = "credsync.io/in-use";

/// A merge patch of the finalizers that fails (409) rather than overwrite a change made since
/// `meta` was read; None when nothing needs to change. A finalizer is never added to an object
/// being deleted (the API server refuses it, and it would hold nothing).
fn finalizer_patch(meta: &ObjectMeta, wanted: bool) -> Option<serde_json::Value> {
    let current = meta.finalizers.clone().unwrap_or_default();
    let has = current.iter().any(|f| f == IN_USE_FINALIZER);
    if has == wanted || (wanted && meta.deletion_timestamp.is_some()) {
        return None;
    }
    let mut finalizers: Vec<String> = current
        .into_iter()
        .filter(|f| f != IN_USE_FINALIZER)
        .collect();
    if wanted {
        finalizers.push(IN_USE_FINALIZER.to_string());
    }
    Some(json!({"metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}}))
}

/// Put [`IN_USE_FINALIZER`] on object `name` (a connection or a Secret), or take it off. Only
/// metadata is read and written: no Secret value passes through here. Re-reads and tries again
/// when someone else changed the object meanwhile (e.g. our own status write, or Helm).
pub async fn hold<K>(api: &Api<K>, name: &str, wanted: bool) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut tries = 3;
    loop {
        let Some(current) = api.get_metadata_opt(name).await? else {
            return Ok(());
        };
        let Some(patch) = finalizer_patch(&current.metadata, wanted) else {
            return Ok(());
        };
        match api
            .patch_metadata(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && tries > 1 => tries -= 1,
            Err(e) => return Err(e),
        }
    }
}

/// [`hold`] for Secret `namespace/name`.
pub async fn hold_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    wanted: bool,
) -> Result<(), kube::Error> {
    hold(
        &Api::<Secret>::namespaced(client.clone(), namespace),
        name,
        wanted,
    )
    .await
}

/// Whether `meta` carries [`IN_USE_FINALIZER`].
pub fn held(meta: &ObjectMeta) -> bool {
    meta.finalizers
        .iter()
        .flatten()
        .any(|f| f == IN_USE_FINALIZER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn meta(finalizers: &[&str], deleting: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("c".into()),
            resource_version: Some("7".into()),
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            deletion_timestamp: deleting.then(|| Time(k8s_openapi::jiff::Timestamp::now())),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn adds_and_removes_only_its_own_finalizer_guarded_by_the_version() {
        let added = finalizer_patch(&meta(&["other"], false), true).expect("a patch");
        assert_eq!(
            added,
            json!({"metadata": {"finalizers": ["other", IN_USE_FINALIZER], "resourceVersion": "7"}})
        );
        let removed =
            finalizer_patch(&meta(&[IN_USE_FINALIZER, "other"], true), false).expect("a patch");
        assert_eq!(
            removed,
            json!({"metadata": {"finalizers": ["other"], "resourceVersion": "7"}})
        );
    }

    #[test]
    fn nothing_to_do_when_already_so_or_when_adding_to_an_object_being_deleted() {
        assert!(finalizer_patch(&meta(&[IN_USE_FINALIZER], false), true).is_none());
        assert!(finalizer_patch(&meta(&[], false), false).is_none());
        assert!(finalizer_patch(&meta(&[], true), true).is_none());
    }
}
