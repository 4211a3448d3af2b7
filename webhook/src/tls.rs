//! Serving certificate with hot reload. The current `CertifiedKey` sits behind a lock that the
//! handshake only reads; a poller re-reads the PEM files when their metadata changes (kubelet
//! updates Secret volumes by swapping a symlink, so the watched paths' targets change) and
//! swaps in the new pair. Connections already established keep the key they negotiated; a
//! new pair that does not load or does not match is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} {path}: {source}; point it at a readable PEM file")]
    Read {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{flag} {path} holds no PEM certificate; point it at the serving certificate chain")]
    NoCertificate { flag: &'static str, path: PathBuf },
    #[error("--tls-cert-file and --tls-key-file do not form a usable pair: {0}")]
    Pair(rustls::Error),
    #[error("TLS configuration failed: {0}")]
    Config(rustls::Error),
}

/// Loads a certificate chain and its private key from PEM files.
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    fn read_err<'p>(
        flag: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(rustls_pki_types::pem::Error) -> TlsError + 'p {
        move |source| TlsError::Read {
            flag,
            path: path.to_owned(),
            source,
        }
    }
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(read_err("--tls-cert-file", cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err("--tls-cert-file", cert_path))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            flag: "--tls-cert-file",
            path: cert_path.to_owned(),
        });
    }
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(read_err("--tls-key-file", key_path))?;
    CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Pair)
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    // `metadata` follows symlinks: a swapped `..data` link shows up as a different target.
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// A [`ResolvesServerCert`] whose key pair is replaced when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    seen: RwLock<(Option<FileStamp>, Option<FileStamp>)>,
}

impl ReloadingCert {
    /// Loads the pair once; an error here is a startup error.
    pub fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, TlsError> {
        let seen = (stamp(&cert_path), stamp(&key_path));
        let key = load_certified_key(&cert_path, &key_path, &provider)?;
        Ok(Arc::new(Self {
            cert_path,
            key_path,
            provider,
            current: RwLock::new(Arc::new(key)),
            seen: RwLock::new(seen),
        }))
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads when either file changed since the last attempt. Returns `Some(ok)` when a
    /// reload was attempted.
    pub fn reload_if_changed(&self, metrics: &Metrics) -> Option<bool> {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        {
            let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return None;
            }
            *seen = now;
        }
        match load_certified_key(&self.cert_path, &self.key_path, &self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                metrics.tls_reload_ok.inc();
                info!(cert = %self.cert_path.display(), "serving certificate reloaded");
                Some(true)
            }
            Err(err) => {
                // Often a half-finished update (cert written, key not yet): the next change retries.
                metrics.tls_reload_failed.inc();
                warn!(error = %err, "new serving certificate not loaded; keeping the previous one");
                Some(false)
            }
        }
    }

    /// Polls the files every `interval` until the task is dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration, metrics: Metrics) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let this = self.clone();
            let metrics = metrics.clone();
            // File reads are blocking; keep them off the request threads.
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed(&metrics)).await;
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS 1.2 and 1.3 only, ALPN h2 and http/1.1, certificate from `cert`.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
