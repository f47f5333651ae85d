//! The admission webhook's serving certificate. cert-manager renews it in place: the mounted
//! Secret's files change under the running pod. A certificate read only at start would expire
//! in a pod that runs long enough, and from then on the API server could not call the webhook,
//! so (failurePolicy Fail) every credsync resource it checks would be refused. The files are
//! therefore looked at again every [`CHECK_EVERY`]; a changed pair that makes a valid
//! configuration is served from the next handshake on, and one that does not (a half-written
//! update, a key that does not match) is reported once and the previous one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::sync::LockOrRecover;

/// How often the certificate files are read again. cert-manager renews well before expiry
/// (a third of the lifetime by default), so a minute is plenty and costs nothing.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
#[error("webhook certificate: {0}")]
pub struct CertError(String);

/// A server TLS configuration from PEM: the certificate chain and its private key.
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let tls = |what: &str, e: &dyn std::fmt::Display| CertError(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls("tls.crt", &e))?;
    if chain.is_empty() {
        return Err(CertError("tls.crt holds no certificate".into()));
    }
    // The key's PEM error says what is wrong with the file, never what it holds.
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| tls("tls.key", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls("protocol versions", &e))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| tls("tls.crt and tls.key", &e))?;
    // axum serves HTTP/1.1 here; say so, so the API server does not try h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration from `tls.crt` and `tls.key` in `dir` (a mounted kubernetes.io/tls
/// Secret, as the chart and cert-manager provide it), read once.
pub async fn load_tls(dir: &Path) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let (cert, key) = read_pair(dir).await?;
    tls_config(&cert, &key)
}

/// The two files; the key in a buffer wiped on drop.
async fn read_pair(dir: &Path) -> Result<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>), CertError> {
    let read = |name: &'static str| async move {
        tokio::fs::read(dir.join(name))
            .await
            .map_err(|e| CertError(format!("{}: {e}", dir.join(name).display())))
    };
    let cert = read("tls.crt").await?;
    let key = zeroize::Zeroizing::new(read("tls.key").await?);
    Ok((cert, key))
}

/// What identifies a pair of files without keeping the key: a digest of both.
fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [cert, key] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// The configuration handshakes use now, and where it comes from.
pub struct ServingCert {
    /// None: a fixed configuration (tests), never read again.
    dir: Option<PathBuf>,
    current: Mutex<Served>,
}

struct Served {
    config: Arc<rustls::ServerConfig>,
    /// The files it was made from, and the last files found unusable (reported once).
    loaded: [u8; 32],
    refused: Option<[u8; 32]>,
}

/// What a look at the files found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// Changed, but not usable: the previous certificate is still served.
    Refused(String),
    /// Refused before, and the files are still the same.
    StillRefused,
}

impl ServingCert {
    /// A configuration that never changes.
    pub fn fixed(config: Arc<rustls::ServerConfig>) -> Arc<ServingCert> {
        Arc::new(ServingCert {
            dir: None,
            current: Mutex::new(Served {
                config,
                loaded: [0; 32],
                refused: None,
            }),
        })
    }

    /// The certificate in `dir`, to be followed with [`ServingCert::follow`].
    pub async fn load(dir: &Path) -> Result<Arc<ServingCert>, CertError> {
        let (cert, key) = read_pair(dir).await?;
        let config = tls_config(&cert, &key)?;
        Ok(Arc::new(ServingCert {
            dir: Some(dir.to_path_buf()),
            current: Mutex::new(Served {
                config,
                loaded: digest(&cert, &key),
                refused: None,
            }),
        }))
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.lock_or_recover().config.clone())
    }

    /// Read the files again and serve them if they changed and make a valid configuration.
    pub async fn reload(&self) -> Reload {
        let Some(dir) = &self.dir else {
            return Reload::Unchanged;
        };
        let (cert, key) = match read_pair(dir).await {
            Ok(pair) => pair,
            // Mid-update the symlinks may point at nothing for a moment: look again later.
            Err(e) => return Reload::Refused(e.to_string()),
        };
        let found = digest(&cert, &key);
        {
            let served = self.current.lock_or_recover();
            if found == served.loaded {
                return Reload::Unchanged;
            }
            if served.refused == Some(found) {
                return Reload::StillRefused;
            }
        }
        let made = tls_config(&cert, &key);
        let mut served = self.current.lock_or_recover();
        match made {
            Ok(config) => {
                *served = Served {
                    config,
                    loaded: found,
                    refused: None,
                };
                Reload::Reloaded
            }
            Err(e) => {
                served.refused = Some(found);
                Reload::Refused(e.to_string())
            }
        }
    }

    /// Look at the files every `every` until `stop`, and say what changed.
    pub async fn follow(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        if self.dir.is_none() {
            return;
        }
        while stop
            .run_until_cancelled(tokio::time::sleep(every))
            .await
            .is_some()
        {
            match self.reload().await {
                Reload::Reloaded => {
                    tracing::info!("webhook serving certificate changed: serving the new one")
                }
                Reload::Refused(e) => tracing::warn!(
                    error = %e,
                    "webhook serving certificate changed but cannot be used: still serving the previous one"
                ),
                Reload::Unchanged | Reload::StillRefused => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pem {
        cert: String,
        key: String,
    }

    /// A CA and a way to issue serving certificates for 127.0.0.1 under it.
    fn issuer() -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA");
        let pem = ca.pem();
        (ca, pem)
    }

    fn issue(ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>) -> Pem {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .and_then(|p| p.signed_by(&key, ca))
            .expect("serving certificate");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn write(dir: &Path, pem: &Pem) {
        std::fs::write(dir.join("tls.crt"), &pem.cert).expect("tls.crt");
        std::fs::write(dir.join("tls.key"), &pem.key).expect("tls.key");
    }

    /// Handshake with the certificate served now (in memory) and return what the client saw.
    async fn served(cert: &ServingCert, ca_pem: &str) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(ca.expect("CA")).expect("root");
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let acceptor = cert.acceptor();
        let server = tokio::spawn(async move { acceptor.accept(server_io).await.map(|_| ()) });
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let stream = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, client_io)
            .await
            .expect("handshake");
        let _ = server.await;
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.to_vec())
            .expect("a certificate")
    }

    fn der(pem: &Pem) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.cert.as_bytes())
            .expect("certificate")
            .to_vec()
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_served_and_a_broken_one_is_not() {
        let (ca, ca_pem) = issuer();
        let dir = tempfile::tempdir().expect("temp dir");
        let first = issue(&ca);
        write(dir.path(), &first);
        let cert = ServingCert::load(dir.path()).await.expect("loaded");
        assert_eq!(served(&cert, &ca_pem).await, der(&first));
        assert_eq!(cert.reload().await, Reload::Unchanged);

        // cert-manager renewed it.
        let renewed = issue(&ca);
        write(dir.path(), &renewed);
        assert_eq!(cert.reload().await, Reload::Reloaded);
        assert_eq!(served(&cert, &ca_pem).await, der(&renewed));

        // A key that does not match: refused once, reported once, the renewed one still served.
        let other = issue(&ca);
        std::fs::write(dir.path().join("tls.key"), &other.key).expect("tls.key");
        assert!(
            matches!(cert.reload().await, Reload::Refused(e) if e.contains("tls.crt and tls.key"))
        );
        assert_eq!(cert.reload().await, Reload::StillRefused);
        assert_eq!(served(&cert, &ca_pem).await, der(&renewed));

        // Files gone for a moment (a symlink swap): nothing changes.
        std::fs::remove_file(dir.path().join("tls.crt")).expect("remove");
        assert!(matches!(cert.reload().await, Reload::Refused(_)));
        assert_eq!(served(&cert, &ca_pem).await, der(&renewed));

        // The complete pair arrives.
        write(dir.path(), &other);
        assert_eq!(cert.reload().await, Reload::Reloaded);
        assert_eq!(served(&cert, &ca_pem).await, der(&other));
    }

    #[tokio::test]
    async fn follow_picks_up_a_change_by_itself() {
        let (ca, ca_pem) = issuer();
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), &issue(&ca));
        let cert = ServingCert::load(dir.path()).await.expect("loaded");
        let stop = CancellationToken::new();
        let following = tokio::spawn(cert.clone().follow(Duration::from_millis(20), stop.clone()));
        let renewed = issue(&ca);
        write(dir.path(), &renewed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while served(&cert, &ca_pem).await != der(&renewed) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never served the renewed certificate"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        following.await.expect("stopped");
    }

    #[test]
    fn tls_config_reads_pem_and_refuses_garbage() {
        let (ca, _) = issuer();
        let pem = issue(&ca);
        assert!(tls_config(pem.cert.as_bytes(), pem.key.as_bytes()).is_ok());
        let err = tls_config(b"not a certificate", pem.key.as_bytes()).expect_err("refused");
        assert!(err.to_string().contains("tls.crt"), "{err}");
        let err = tls_config(
            pem.cert.as_bytes(),
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect_err("refused");
        assert!(!err.to_string().contains("AAAA"), "{err}");
    }
}
