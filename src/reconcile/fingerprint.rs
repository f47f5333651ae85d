//! `status.appliedFingerprint`: a keyed HMAC-SHA256 of the desired request, secret values
//! included, so a changed secret is seen without storing anything that reveals it. The key is
//! the operator's own, in a Secret it creates on first start. The MAC is kept to its first 128
//! bits (RFC 2104 section 5), base64url: every status write, watch event and cached copy carries
//! it, and 128 bits are more than a change check needs from a MAC nobody can compute without the key.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

const KEY_FIELD: &str = "hmac-key";
const KEY_BYTES: usize = 32;
/// The fingerprint's text: this prefix, then the MAC's first [`MAC_BYTES`] in base64url.
const PREFIX: &str = "hmac-sha256-128:";
const MAC_BYTES: usize = 16;
/// Earlier releases wrote the whole MAC in hex; statuses they wrote still vouch for what was applied.
const LEGACY_PREFIX: &str = "hmac-sha256:";

/// The operator's fingerprint key.
pub struct FingerprintKey(SecretBox<Vec<u8>>);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FingerprintKeyError {
    #[error(
        "fingerprint key Secret {0} has no valid {KEY_FIELD} (expected {KEY_BYTES} bytes or more)"
    )]
    Invalid(String),
    #[error("fingerprint key Secret {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl FingerprintKey {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        FingerprintKey(SecretBox::new(Box::new(bytes)))
    }

    /// A fresh random key (tests, and the first start).
    pub fn random() -> Self {
        let mut bytes = vec![0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Read the key from `namespace/name`, creating the Secret with a random key if it is absent.
    /// Replicas racing to create it all end up with the one that won.
    pub async fn load_or_create(
        client: Client,
        namespace: &str,
        name: &str,
    ) -> Result<Self, FingerprintKeyError> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let api_err = |source| FingerprintKeyError::Api {
            name: format!("{namespace}/{name}"),
            source,
        };
        let secret = match api.get_opt(name).await.map_err(api_err)? {
            Some(secret) => secret,
            None => {
                let key = Self::random();
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        namespace: Some(namespace.to_string()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_string(),
                            "credsync".to_string(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    immutable: Some(true),
                    data: Some(BTreeMap::from([(
                        KEY_FIELD.to_string(),
                        ByteString(key.0.expose_secret().clone()),
                    )])),
                    ..Secret::default()
                };
                match api.create(&PostParams::default(), &secret).await {
                    Ok(created) => created,
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        api.get(name).await.map_err(api_err)?
                    }
                    Err(e) => return Err(api_err(e)),
                }
            }
        };
        let bytes = secret
            .data
            .and_then(|mut d| d.remove(KEY_FIELD))
            .map(|b| b.0)
            .filter(|b| b.len() >= KEY_BYTES)
            .ok_or_else(|| FingerprintKeyError::Invalid(format!("{namespace}/{name}")))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The fingerprint of one desired request on one connection.
    pub fn fingerprint(&self, connection: &[u8], desired: &[u8]) -> String {
        // new_from_slice accepts any key length for HMAC.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.expose_secret()) else {
            return String::new();
        };
        // Length-prefix each part so no two different inputs concatenate alike.
        for part in [b"credsync/v1".as_slice(), connection, desired] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        shown(&mac.finalize().into_bytes())
    }
}

fn shown(mac: &[u8]) -> String {
    use base64::Engine;
    let kept = &mac[..MAC_BYTES.min(mac.len())];
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kept)
    )
}

/// A fingerprint read from a status, in today's text: one in the legacy text (the whole MAC in
/// hex) becomes the same MAC kept short, so an upgrade does not send every record again.
/// Anything else is returned as it is (and matches no fingerprint if it is not one).
pub fn as_current(stored: &str) -> String {
    stored
        .strip_prefix(LEGACY_PREFIX)
        .and_then(|digits| hex::decode(digits).ok())
        .filter(|mac| mac.len() == 32)
        .map(|mac| shown(&mac))
        .unwrap_or_else(|| stored.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn keyed_and_not_a_plain_hash() {
        let a = FingerprintKey::random();
        let b = FingerprintKey::random();
        let value = b"S3ntinel-value";
        let fa = a.fingerprint(b"conn", value);
        assert_eq!(fa, a.fingerprint(b"conn", value));
        assert_ne!(fa, b.fingerprint(b"conn", value));
        assert_ne!(fa, a.fingerprint(b"conn2", value));
        assert_ne!(a.fingerprint(b"ab", b"c"), a.fingerprint(b"a", b"bc"));
        let plain = hex::encode(Sha256::digest(value));
        assert!(!fa.contains(&plain));
        assert!(!format!("{a:?}").contains(|c: char| c.is_ascii_digit()));
    }

    /// The text every status carries: the prefix and 128 bits in base64url (22 characters).
    #[test]
    fn short_text() {
        let fp = FingerprintKey::random().fingerprint(b"conn", b"value");
        let encoded = fp.strip_prefix(PREFIX).unwrap_or_default();
        assert_eq!(encoded.len(), 22, "{fp}");
        assert!(
            encoded
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    /// A status written by an older release (the whole MAC in hex) vouches for the same request
    /// once read; anything else read from a status stays what it was.
    #[test]
    fn legacy_text_reads_as_the_same_fingerprint() {
        let key = FingerprintKey::from_bytes(vec![7; 32]);
        let mut mac = Hmac::<Sha256>::new_from_slice(&[7; 32]).expect("any key length");
        for part in [b"credsync/v1".as_slice(), b"conn", b"value"] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let legacy = format!(
            "{LEGACY_PREFIX}{}",
            hex::encode(mac.finalize().into_bytes())
        );
        let current = key.fingerprint(b"conn", b"value");
        assert_eq!(as_current(&legacy), current);
        assert_eq!(as_current(&current), current);
        assert_ne!(
            as_current(&legacy),
            key.fingerprint(b"conn", b"other value")
        );
        for odd in [
            "",
            "hmac-sha256:",
            "hmac-sha256:zz",
            "hmac-sha256:abcd",
            "x",
        ] {
            assert_eq!(as_current(odd), odd, "{odd:?}");
        }
    }
}
