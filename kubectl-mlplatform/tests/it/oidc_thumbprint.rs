//! The OIDC thumbprint fetch against a local rustls server whose chain comes from an rcgen CA
//! (never the internet): the thumbprint is the SHA-1 of the top certificate sent, a chain
//! that does not verify or an issuer that does not answer gives an error, not a hang.

use std::sync::Arc;
use std::time::Duration;

use kubectl_mlplatform::oidc::{ThumbprintError, fetch_thumbprint, thumbprint_of};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

struct Pki {
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    Pki {
        ca_der: ca.der().clone(),
        leaf_der: leaf.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// A TLS server on 127.0.0.1 presenting `chain`; returns its port.
async fn serve(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> u16 {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

fn roots_with(ca: &CertificateDer<'static>) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    Arc::new(roots)
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn thumbprint_is_the_sha1_of_the_top_ca_certificate_sent() {
    let pki = pki();
    let port = serve(
        vec![pki.leaf_der.clone(), pki.ca_der.clone()],
        pki.leaf_key.clone_key(),
    )
    .await;
    let issuer = format!("https://localhost:{port}/id/ABC");
    let got = fetch_thumbprint(&issuer, roots_with(&pki.ca_der), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(got, thumbprint_of(pki.ca_der.as_ref()));
    assert_eq!(got.len(), 40);
    assert_ne!(got, thumbprint_of(pki.leaf_der.as_ref()));
}

#[tokio::test]
async fn a_server_sending_only_its_leaf_gives_the_leaf_thumbprint() {
    let pki = pki();
    let port = serve(vec![pki.leaf_der.clone()], pki.leaf_key.clone_key()).await;
    let issuer = format!("https://localhost:{port}/id/ABC");
    let got = fetch_thumbprint(&issuer, roots_with(&pki.ca_der), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(got, thumbprint_of(pki.leaf_der.as_ref()));
}

#[tokio::test]
async fn an_unverifiable_chain_is_an_error_not_a_thumbprint() {
    let pki = pki();
    let other = self::pki();
    let port = serve(
        vec![pki.leaf_der.clone(), pki.ca_der.clone()],
        pki.leaf_key.clone_key(),
    )
    .await;
    let issuer = format!("https://localhost:{port}/id/ABC");
    let err = fetch_thumbprint(&issuer, roots_with(&other.ca_der), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, ThumbprintError::Tls { .. }), "{err}");
}

#[tokio::test]
async fn closed_ports_and_silent_servers_fail_instead_of_hanging() {
    let pki = pki();
    // Closed: bind, learn the port, drop the listener.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let err = fetch_thumbprint(
        &format!("https://localhost:{port}/x"),
        roots_with(&pki.ca_der),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ThumbprintError::Connect { .. }), "{err}");

    // Accepts TCP but never speaks TLS.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let err = fetch_thumbprint(
        &format!("https://localhost:{port}/x"),
        roots_with(&pki.ca_der),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ThumbprintError::Timeout { .. }), "{err}");
}
