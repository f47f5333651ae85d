//! Reading the Secrets that resources and connections reference. Only referenced Secrets are
//! read, by a direct GET at reconcile time (remembered until the Secret changes); values go
//! straight into [`SecretString`]s.
//! Namespace rules are enforced here, before any read: a namespaced resource reads only its own
//! namespace, a cluster-scoped connection only the namespaces its references name.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, LazyLock, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use secrecy::{ExposeSecret, SecretString};

use crate::api::{ConnectionSecretKeyRef, ConnectionSecretRef, SecretKeyRef};
use crate::sync::LockOrRecover;

/// Why a referenced secret value could not be had. Names Secrets and keys, never values.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("Secret {namespace}/{name} key {key:?} is not UTF-8 text")]
    NotText {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("the operator may not read Secret {namespace}/{name}")]
    Forbidden { namespace: String, name: String },
    #[error(
        "Secret {namespace}/{name} is of type {type_:?}, which credsync never reads for a reference (service-account tokens, Helm releases and registry credentials are not credentials for a vendor); copy the value into an Opaque Secret"
    )]
    TypeNotAllowed {
        namespace: String,
        name: String,
        type_: String,
    },
    #[error(
        "reference to Secret {name:?} in namespace {namespace:?} is not allowed from namespace {from:?}: a VendorConnection reads Secrets of its own namespace only"
    )]
    CrossNamespace {
        from: String,
        namespace: String,
        name: String,
    },
    #[error("ClusterVendorConnection references Secret {name:?} without a namespace")]
    NamespaceRequired { name: String },
    #[error("reading Secret {namespace}/{name} failed: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl SecretError {
    /// CamelCase condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SecretError::NotFound { .. } => "SecretNotFound",
            SecretError::MissingKey { .. } => "SecretKeyNotFound",
            SecretError::NotText { .. } => "SecretValueInvalid",
            SecretError::Forbidden { .. } => "SecretForbidden",
            SecretError::TypeNotAllowed { .. } => "SecretTypeNotAllowed",
            SecretError::CrossNamespace { .. } => "CrossNamespaceReference",
            SecretError::NamespaceRequired { .. } => "SecretNamespaceRequired",
            SecretError::Api { .. } => "SecretReadFailed",
        }
    }

    /// Only API trouble passes by itself; the rest waits for someone to fix the Secret (whose
    /// change triggers a new reconcile).
    pub fn is_transient(&self) -> bool {
        matches!(self, SecretError::Api { .. })
    }
}

/// Reads Secret values through the API server, remembering the values it read until the
/// Secret watch says the Secret changed: thousands of resources sharing one Secret, and the
/// reconcile that follows each status write, then cost no GET.
#[derive(Clone)]
pub struct SecretReader {
    client: Client,
    cache: Option<Arc<ValueCache>>,
}

/// Values read, per Secret. An entry is dropped on any change the metadata watch reports, and
/// everything on a re-list; a read that raced with a change of its Secret is not remembered
/// (changes of other Secrets, a rotation of thousands at once, do not spoil it).
struct ValueCache {
    /// Only Secrets the watch sees are remembered (None: all namespaces).
    namespace: Option<String>,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    values: HashMap<SecretId, HashMap<String, SecretString>>,
    /// Secrets being read now: how many reads, and whether the Secret changed meanwhile.
    reading: HashMap<SecretId, Reading>,
}

#[derive(Default)]
struct Reading {
    readers: usize,
    changed: bool,
}

impl Entries {
    fn invalidate(&mut self, id: &SecretId) {
        self.values.remove(id);
        if let Some(reading) = self.reading.get_mut(id) {
            reading.changed = true;
        }
    }

    /// A read of `id` ends: whether what it got may be remembered.
    fn end_read(&mut self, id: &SecretId) -> bool {
        let Some(reading) = self.reading.get_mut(id) else {
            return false;
        };
        reading.readers = reading.readers.saturating_sub(1);
        let unchanged = !reading.changed;
        if reading.readers == 0 {
            self.reading.remove(id);
        }
        unchanged
    }
}

/// Secret types never read for a reference: they hold the cluster's own credentials (a
/// ServiceAccount's token, a Helm release with its values, registry logins), and a tenant
/// could otherwise have them sent to a vendor host of their choosing.
pub const REFUSED_SECRET_TYPES: [&str; 3] = [
    "kubernetes.io/service-account-token",
    "helm.sh/release.v1",
    "kubernetes.io/dockerconfigjson",
];

/// Secret types the watch leaves out (see `controller::watch_secrets`): never remembered.
pub const UNWATCHED_SECRET_TYPES: [&str; 2] =
    ["helm.sh/release.v1", "kubernetes.io/service-account-token"];

impl SecretReader {
    /// A reader that always asks the API server.
    pub fn new(client: Client) -> Self {
        SecretReader {
            client,
            cache: None,
        }
    }

    /// A reader that remembers values; the caller must report every change of a Secret in
    /// `namespace` (all when None) with [`SecretReader::changed`] and re-lists with
    /// [`SecretReader::forget_all`].
    pub fn cached(client: Client, namespace: Option<String>) -> Self {
        SecretReader {
            client,
            cache: Some(Arc::new(ValueCache {
                namespace,
                entries: Mutex::default(),
            })),
        }
    }

    /// The Secret changed or went away: its values must be read again.
    pub fn changed(&self, namespace: &str, name: &str) {
        if let Some(cache) = &self.cache {
            cache.lock().invalidate(&SecretId::new(namespace, name));
        }
    }

    /// Changes may have been missed (the watch started over): read everything again.
    pub fn forget_all(&self) {
        if let Some(cache) = &self.cache {
            let mut entries = cache.lock();
            entries.values.clear();
            for reading in entries.reading.values_mut() {
                reading.changed = true;
            }
        }
    }

    /// The values of `keys` in one Secret, in the order asked.
    pub async fn read(
        &self,
        namespace: &str,
        name: &str,
        keys: &[&str],
    ) -> Result<Vec<SecretString>, SecretError> {
        let id = SecretId::new(namespace, name);
        if let Some(cache) = &self.cache {
            let mut entries = cache.lock();
            if let Some(entry) = entries.values.get(&id)
                && let Some(values) = keys
                    .iter()
                    .map(|k| entry.get(*k).cloned())
                    .collect::<Option<Vec<_>>>()
            {
                return Ok(values);
            }
            entries.reading.entry(id.clone()).or_default().readers += 1;
        }
        // Whatever happens to the read, it ends: a failed one is never remembered.
        let read = ReadGuard {
            cache: self.cache.as_deref(),
            id: &id,
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = match api.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(SecretError::NotFound {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                return Err(SecretError::Forbidden {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            }
            Err(source) => {
                return Err(SecretError::Api {
                    namespace: namespace.into(),
                    name: name.into(),
                    source: Box::new(source),
                });
            }
        };
        if let Some(type_) = secret
            .type_
            .as_deref()
            .filter(|t| REFUSED_SECRET_TYPES.contains(t))
        {
            return Err(SecretError::TypeNotAllowed {
                namespace: namespace.into(),
                name: name.into(),
                type_: type_.into(),
            });
        }
        let watched = secret
            .type_
            .as_deref()
            .is_none_or(|t| !UNWATCHED_SECRET_TYPES.contains(&t));
        let mut data = secret.data.unwrap_or_default();
        let string_data = secret.string_data.unwrap_or_default();
        let values = keys
            .iter()
            .map(|key| {
                let bytes = match data.remove(*key) {
                    Some(b) => b.0,
                    None => string_data
                        .get(*key)
                        .map(|s| s.clone().into_bytes())
                        .ok_or_else(|| SecretError::MissingKey {
                            namespace: namespace.into(),
                            name: name.into(),
                            key: (*key).into(),
                        })?,
                };
                String::from_utf8(bytes)
                    .map(SecretString::from)
                    .map_err(|_| SecretError::NotText {
                        namespace: namespace.into(),
                        name: name.into(),
                        key: (*key).into(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        read.remember(watched, keys, &values);
        Ok(values)
    }

    /// Read every key a namespaced resource references, from its own namespace.
    pub async fn resolve(
        &self,
        namespace: &str,
        refs: &[&SecretKeyRef],
    ) -> Result<ResolvedSecrets, SecretError> {
        let mut by_secret: HashMap<&str, Vec<&str>> = HashMap::new();
        for r in refs {
            let keys = by_secret.entry(r.name.as_str()).or_default();
            if !keys.contains(&r.key.as_str()) {
                keys.push(r.key.as_str());
            }
        }
        let mut values = HashMap::new();
        for (name, keys) in by_secret {
            let read = self.read(namespace, name, &keys).await?;
            for (key, value) in keys.into_iter().zip(read) {
                values.insert(
                    SecretKeyRef {
                        name: name.to_string(),
                        key: key.to_string(),
                    },
                    value,
                );
            }
        }
        Ok(ResolvedSecrets { values })
    }
}

impl ValueCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock_or_recover()
    }
}

/// A read under way; dropped without [`ReadGuard::remember`] (it failed, or was cancelled) it
/// ends without remembering anything.
struct ReadGuard<'a> {
    cache: Option<&'a ValueCache>,
    id: &'a SecretId,
}

impl ReadGuard<'_> {
    /// The read got `values` for `keys`: remember them if the watch will report the Secret's
    /// changes (`watched`, in the cache's namespace) and none came while reading.
    fn remember(mut self, watched: bool, keys: &[&str], values: &[SecretString]) {
        let Some(cache) = self.cache.take() else {
            return;
        };
        let mut entries = cache.lock();
        if entries.end_read(self.id)
            && watched
            && cache
                .namespace
                .as_deref()
                .is_none_or(|n| n == self.id.namespace)
        {
            let entry = entries.values.entry(self.id.clone()).or_default();
            for (key, value) in keys.iter().zip(values) {
                entry.insert((*key).to_string(), value.clone());
            }
        }
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.take() {
            cache.lock().end_read(self.id);
        }
    }
}

/// Secret values a resource references, by reference.
#[derive(Default)]
pub struct ResolvedSecrets {
    values: HashMap<SecretKeyRef, SecretString>,
}

impl std::fmt::Debug for ResolvedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl ResolvedSecrets {
    /// The value behind a reference that [`SecretReader::resolve`] was given.
    pub fn get(&self, r: &SecretKeyRef) -> Option<&SecretString> {
        self.values.get(r)
    }

    /// Empty values for `refs`, read from nowhere: for building a client whose only call is a
    /// delete, which sends the record's identity and no secret value (see
    /// `reconcile::finalize`). A namespace being deleted may have taken the Secrets already.
    pub fn placeholders(refs: &[&SecretKeyRef]) -> Self {
        ResolvedSecrets {
            values: refs
                .iter()
                .map(|r| ((*r).clone(), SecretString::from(String::new())))
                .collect(),
        }
    }

    /// Every value, for scrubbing vendor error texts.
    pub fn values(&self) -> impl Iterator<Item = &SecretString> {
        self.values.values()
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: Vec<(SecretKeyRef, SecretString)>) -> Self {
        ResolvedSecrets {
            values: pairs.into_iter().collect(),
        }
    }
}

/// Where a connection may read its Secrets from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConnectionScope {
    /// A VendorConnection: its own namespace only.
    Namespaced(String),
    /// A ClusterVendorConnection: the namespace each reference names.
    Cluster,
}

/// Keys of [`ConnectionSecrets::digest`]: random per process, so the digest of a value means
/// nothing outside it.
static DIGEST_KEYS: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// One Secret, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretId {
    pub namespace: String,
    pub name: String,
}

impl SecretId {
    pub fn new(namespace: &str, name: &str) -> SecretId {
        SecretId {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// Told of every Secret a [`ConnectionSecrets`] is about to read, before it reads it: a Secret
/// that appears while the read is under way still finds the connection (see
/// `connections::dependencies`).
pub type OnRead<'a> = &'a (dyn Fn(&SecretId) + Send + Sync);

/// Reads a connection's Secrets under its [`ConnectionScope`], folding every value read into a
/// digest and noting every Secret it was asked for, whether the read worked or not: that set is
/// what the connection depends on, so no list of a vendor's references is kept by hand.
pub struct ConnectionSecrets<'a> {
    /// None: read nothing, answer every key with an empty stand-in (see
    /// [`ConnectionSecrets::listing`]).
    reader: Option<&'a SecretReader>,
    scope: ConnectionScope,
    on_read: Option<OnRead<'a>>,
    asked: Mutex<BTreeSet<SecretId>>,
    digest: Mutex<DefaultHasher>,
    /// Every value read, and the `a:b` joins of pairs (an HTTP Basic login), so a vendor that
    /// echoes the connection's credentials can be scrubbed of them.
    sensitive: Mutex<Vec<SecretString>>,
}

impl<'a> ConnectionSecrets<'a> {
    pub fn new(reader: &'a SecretReader, scope: ConnectionScope) -> Self {
        Self::with_reader(Some(reader), scope)
    }

    /// Reads nothing and refuses nothing: each key is an empty stand-in. Connecting with it
    /// lists the Secrets a connection's spec would have read (for the admission webhook and
    /// the in-use holds, which must know them before, or without, any read).
    pub fn listing(scope: ConnectionScope) -> Self {
        Self::with_reader(None, scope)
    }

    fn with_reader(reader: Option<&'a SecretReader>, scope: ConnectionScope) -> Self {
        ConnectionSecrets {
            reader,
            scope,
            on_read: None,
            asked: Mutex::default(),
            digest: Mutex::new(DIGEST_KEYS.build_hasher()),
            sensitive: Mutex::new(Vec::new()),
        }
    }

    /// Tell `on_read` of each Secret before it is read.
    pub fn on_read(mut self, on_read: OnRead<'a>) -> Self {
        self.on_read = Some(on_read);
        self
    }

    /// Every Secret asked for so far, read or not. A reference its scope refuses (another
    /// namespace's Secret for a VendorConnection) counts: it is what the spec names.
    pub fn asked(&self) -> BTreeSet<SecretId> {
        self.asked.lock_or_recover().clone()
    }

    /// The values read, for scrubbing vendor answers (see [`ConnectionSecrets::sensitive`]).
    pub fn sensitive(&self) -> Vec<SecretString> {
        self.sensitive.lock_or_recover().clone()
    }

    /// The values read so far, in order, as one number: reading the same values gives the same
    /// digest within this process. Never stored or shown.
    pub fn digest(&self) -> u64 {
        self.digest.lock_or_recover().finish()
    }

    fn fold(&self, values: &[SecretString]) {
        let mut digest = self.digest.lock_or_recover();
        for value in values {
            value.expose_secret().hash(&mut *digest);
        }
        let mut sensitive = self.sensitive.lock_or_recover();
        sensitive.extend(values.iter().cloned());
        if let [user, password] = values {
            sensitive.push(SecretString::from(format!(
                "{}:{}",
                user.expose_secret(),
                password.expose_secret()
            )));
        }
    }

    /// Note the Secret a reference names (its own namespace, else the connection's), then say
    /// where it may be read from under the scope.
    fn namespace_for<'n>(
        &'n self,
        name: &str,
        namespace: Option<&'n str>,
    ) -> Result<&'n str, SecretError> {
        let own = match &self.scope {
            ConnectionScope::Namespaced(own) => Some(own.as_str()),
            ConnectionScope::Cluster => None,
        };
        if let Some(ns) = namespace.or(own) {
            let id = SecretId::new(ns, name);
            if let Some(on_read) = self.on_read {
                on_read(&id);
            }
            self.asked.lock_or_recover().insert(id);
        }
        match (&self.scope, namespace) {
            (ConnectionScope::Namespaced(own), None) => Ok(own),
            (ConnectionScope::Namespaced(own), Some(ns)) if ns == own => Ok(own),
            (ConnectionScope::Namespaced(own), Some(ns)) => Err(SecretError::CrossNamespace {
                from: own.clone(),
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            (ConnectionScope::Cluster, Some(ns)) => Ok(ns),
            (ConnectionScope::Cluster, None) => Err(SecretError::NamespaceRequired {
                name: name.to_string(),
            }),
        }
    }

    /// The values of `keys` in Secret `name`, or stand-ins when listing.
    async fn read(
        &self,
        name: &str,
        namespace: Option<&str>,
        keys: &[&str],
    ) -> Result<Vec<SecretString>, SecretError> {
        let allowed = self.namespace_for(name, namespace);
        let Some(reader) = self.reader else {
            return Ok(keys.iter().map(|_| SecretString::from("")).collect());
        };
        let values = reader.read(allowed?, name, keys).await?;
        self.fold(&values);
        Ok(values)
    }

    /// One key's value.
    pub async fn key(&self, r: &ConnectionSecretKeyRef) -> Result<SecretString, SecretError> {
        let mut values = self
            .read(&r.name, r.namespace.as_deref(), &[r.key.as_str()])
            .await?;
        values.pop().ok_or_else(|| SecretError::MissingKey {
            namespace: r.namespace.clone().unwrap_or_default(),
            name: r.name.clone(),
            key: r.key.clone(),
        })
    }

    /// Fixed keys of a whole-Secret reference, in the order asked.
    pub async fn keys(
        &self,
        r: &ConnectionSecretRef,
        keys: &[&str],
    ) -> Result<Vec<SecretString>, SecretError> {
        self.read(&r.name, r.namespace.as_deref(), keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_read(entries: &mut Entries, id: &SecretId) {
        entries.reading.entry(id.clone()).or_default().readers += 1;
    }

    #[test]
    fn a_read_is_spoiled_only_by_a_change_of_its_own_secret() {
        let (a, b) = (SecretId::new("ns", "a"), SecretId::new("ns", "b"));
        let mut entries = Entries::default();
        start_read(&mut entries, &a);
        entries.invalidate(&b);
        assert!(entries.end_read(&a), "another Secret's change");
        start_read(&mut entries, &a);
        entries.invalidate(&a);
        assert!(!entries.end_read(&a), "its own change while reading");
        assert!(entries.reading.is_empty(), "nothing kept of ended reads");
        start_read(&mut entries, &a);
        assert!(entries.end_read(&a), "a change before the read began");
    }

    #[test]
    fn concurrent_reads_of_one_secret_are_both_spoiled_by_its_change() {
        let a = SecretId::new("ns", "a");
        let mut entries = Entries::default();
        start_read(&mut entries, &a);
        start_read(&mut entries, &a);
        entries.invalidate(&a);
        assert!(!entries.end_read(&a));
        assert!(!entries.end_read(&a));
        assert!(entries.reading.is_empty());
        assert!(!entries.end_read(&a), "a read that never began");
    }
}
