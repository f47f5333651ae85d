//! A connection, and the Secrets its client is built from, stay while a resource still has a
//! vendor record to delete through them, in the manner of Crossplane's ProviderConfigUsage.
//! `kubectl delete namespace` takes the resources, their Secrets and their VendorConnection in
//! one sweep; without this, a resource's delete would find no connection, or (after an operator
//! restart) no credentials to build its client from, and the namespace would never go.
//!
//! The connection reconcile decides (it sees every resource through the caches): while any
//! resource holding [`FINALIZER`](crate::api::FINALIZER) uses the connection, the connection and each Secret it
//! reads carry [`IN_USE_FINALIZER`] (one per shard: [`finalizer_for_shard`]); when none does,
//! the Secrets are let go first, then the connection. A Secret shared by several connections
//! stays while any of them is in use.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::core::ObjectMeta;
use kube::{Api, Client, Resource};
use serde_json::json;

/// Held on a connection, and on the Secrets it reads, while a resource with
/// [`FINALIZER`](crate::api::FINALIZER) uses it.
pub const IN_USE_FINALIZER: &str = "credsync.io/in-use";

/// The in-use finalizer of one operator Deployment. Shards (`--watch-namespace`,
/// `--selector`) each see only their own resources but every ClusterVendorConnection (and a
/// label shard every connection): each holds with a finalizer of its own, so one shard never
/// lets go of what another still needs. Unsharded, it is [`IN_USE_FINALIZER`].
pub fn finalizer_for_shard(watch_namespace: Option<&str>, label_selector: Option<&str>) -> String {
    if watch_namespace.is_none() && label_selector.is_none() {
        return IN_USE_FINALIZER.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(
        serde_json::to_vec(&(watch_namespace, label_selector)).unwrap_or_default(),
    );
    format!("{IN_USE_FINALIZER}-{}", hex::encode(&digest[..4]))
}

/// A merge patch of the finalizers that fails (409) rather than overwrite a change made since
/// `meta` was read; None when nothing needs to change. A finalizer is never added to an object
/// being deleted (the API server refuses it, and it would hold nothing).
fn finalizer_patch(meta: &ObjectMeta, finalizer: &str, wanted: bool) -> Option<serde_json::Value> {
    let current = meta.finalizers.clone().unwrap_or_default();
    let has = current.iter().any(|f| f == finalizer);
    if has == wanted || (wanted && meta.deletion_timestamp.is_some()) {
        return None;
    }
    let mut finalizers: Vec<String> = current.into_iter().filter(|f| f != finalizer).collect();
    if wanted {
        finalizers.push(finalizer.to_string());
    }
    Some(json!({"metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}}))
}

/// Put `finalizer` (see [`finalizer_for_shard`]) on object `name` (a connection or a Secret),
/// or take it off. Only metadata is read and written: no Secret value passes through here.
/// Re-reads and tries again when someone else changed the object meanwhile (e.g. our own
/// status write, or Helm).
pub async fn hold<K>(
    api: &Api<K>,
    name: &str,
    finalizer: &str,
    wanted: bool,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut tries = 3;
    loop {
        let Some(current) = api.get_metadata_opt(name).await? else {
            return Ok(());
        };
        let Some(patch) = finalizer_patch(&current.metadata, finalizer, wanted) else {
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
    finalizer: &str,
    wanted: bool,
) -> Result<(), kube::Error> {
    hold(
        &Api::<Secret>::namespaced(client.clone(), namespace),
        name,
        finalizer,
        wanted,
    )
    .await
}

/// Whether `meta` carries `finalizer`.
pub fn held(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
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
        let added =
            finalizer_patch(&meta(&["other"], false), IN_USE_FINALIZER, true).expect("a patch");
        assert_eq!(
            added,
            json!({"metadata": {"finalizers": ["other", IN_USE_FINALIZER], "resourceVersion": "7"}})
        );
        let removed = finalizer_patch(
            &meta(&[IN_USE_FINALIZER, "other"], true),
            IN_USE_FINALIZER,
            false,
        )
        .expect("a patch");
        assert_eq!(
            removed,
            json!({"metadata": {"finalizers": ["other"], "resourceVersion": "7"}})
        );
    }

    #[test]
    fn each_shard_holds_with_a_finalizer_of_its_own() {
        assert_eq!(finalizer_for_shard(None, None), IN_USE_FINALIZER);
        let a = finalizer_for_shard(None, Some("shard=a"));
        let b = finalizer_for_shard(None, Some("shard=b"));
        let ns = finalizer_for_shard(Some("team"), None);
        assert!(a.starts_with("credsync.io/in-use-") && a != b && a != ns);
        assert_eq!(a, finalizer_for_shard(None, Some("shard=a")), "stable");
        // A qualified name: the part after the slash is at most 63 characters.
        assert!(a.split('/').nth(1).is_some_and(|n| n.len() <= 63));
    }

    #[test]
    fn nothing_to_do_when_already_so_or_when_adding_to_an_object_being_deleted() {
        assert!(
            finalizer_patch(&meta(&[IN_USE_FINALIZER], false), IN_USE_FINALIZER, true).is_none()
        );
        assert!(finalizer_patch(&meta(&[], false), IN_USE_FINALIZER, false).is_none());
        assert!(finalizer_patch(&meta(&[], true), IN_USE_FINALIZER, true).is_none());
    }
}
