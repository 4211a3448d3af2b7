//! Throwaway TLS material for loopback runs: a CA and a serving certificate signed by it.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating a test certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading PEM from {what}: {source}")]
    Pem {
        what: &'static str,
        source: rustls_pki_types::pem::Error,
    },
    #[error("building the rustls config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A CA and one serving certificate (PEM).
#[derive(Debug, Clone)]
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Paths of the serving certificate and key written by [`TestPki::write_to`].
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TestPki {
    /// `names` become the serving certificate's SANs (IP addresses or DNS names).
    pub fn generate(names: &[&str]) -> Result<Self, PkiError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mlplatform loopback test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        for name in names {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into()?),
            });
        }
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    pub fn write_to(&self, dir: &Path) -> Result<CertFiles, PkiError> {
        let files = CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: dir.join("ca.crt"),
        };
        for (path, pem) in [
            (&files.cert, &self.cert_pem),
            (&files.key, &self.key_pem),
            (&files.ca, &self.ca_pem),
        ] {
            std::fs::write(path, pem).map_err(|source| PkiError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(files)
    }

    /// A client config that trusts only this CA (HTTP/1.1 only: the API server speaks
    /// HTTP/1.1 or HTTP/2 to webhooks; HTTP/1.1 keep-alive is what the benchmark drives).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let cert = cert.map_err(|source| PkiError::Pem { what: "CA", source })?;
            roots.add(cert)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// A server config from PEM files, TLS 1.2+ (the same policy as the webhook).
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<rustls::ServerConfig, PkiError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PkiError::Pem {
            what: "certificate",
            source,
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| PkiError::Pem {
        what: "private key",
        source,
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_trusts_the_generated_server_certificate() {
        let pki = TestPki::generate(&["127.0.0.1", "localhost"]).unwrap();
        let server = server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).unwrap();
        let client = pki.client_config().unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut client_conn = rustls::ClientConnection::new(client, name).unwrap();
        let mut server_conn = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        // Pump the handshake in memory; it only completes if the chain verifies.
        for _ in 0..10 {
            let mut buf = Vec::new();
            client_conn.write_tls(&mut buf).unwrap();
            server_conn.read_tls(&mut buf.as_slice()).unwrap();
            server_conn.process_new_packets().unwrap();
            let mut buf = Vec::new();
            server_conn.write_tls(&mut buf).unwrap();
            client_conn.read_tls(&mut buf.as_slice()).unwrap();
            client_conn.process_new_packets().unwrap();
        }
        assert!(!client_conn.is_handshaking());
    }
}
