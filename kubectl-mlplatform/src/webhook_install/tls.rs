//! The webhook's TLS: a long-lived CA (its key kept in its own Secret, never mounted into the
//! webhook pods) and a serving certificate for the Service's DNS names, signed by it.
//!
//! Renewal keeps the CA, so the caBundle does not change and the API server keeps trusting
//! the webhook while kubelet rolls the new serving certificate into the pods. A CA near its
//! own expiry is replaced, and the caBundle carries old and new CA until the old one expires.
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use super::model::InstallError;
use crate::vocabulary::NOT_AFTER_ANNOTATION;

/// Seconds in a day.
const DAY: i64 = 86_400;
/// Renew what expires within this many seconds.
pub(crate) const RENEW_BEFORE: i64 = 30 * DAY;
pub(crate) const CA_VALIDITY: i64 = 10 * 365 * DAY;
pub(crate) const SERVING_VALIDITY: i64 = 365 * DAY;
/// Certificates start an hour in the past, for clock skew between nodes.
const BACKDATE: i64 = 3_600;
/// Annotation on each Secret: its certificate's notAfter, in Unix seconds.
const CA_COMMON_NAME: &str = "mlplatform-webhook-ca";

/// The CA and serving certificate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsMaterial {
    pub(crate) ca_cert_pem: String,
    pub(crate) ca_key_pem: String,
    pub(crate) ca_not_after: i64,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) cert_not_after: i64,
    /// PEM of every CA the webhook configurations should trust (new first).
    pub(crate) ca_bundle_pem: String,
}

/// What the install does with the certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsDecision {
    /// Both certificates are valid for more than [`RENEW_BEFORE`].
    Keep,
    /// A new serving certificate from the existing CA.
    RenewServing { reason: String },
    /// A new CA and serving certificate.
    NewCa { reason: String },
}

/// The certificates found in the cluster, as far as they are complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Existing {
    pub(crate) ca_cert_pem: Option<String>,
    pub(crate) ca_key_pem: Option<String>,
    pub(crate) ca_not_after: Option<i64>,
    pub(crate) cert_pem: Option<String>,
    pub(crate) key_pem: Option<String>,
    pub(crate) cert_not_after: Option<i64>,
}

fn data(secret: Option<&Secret>, key: &str) -> Option<String> {
    let bytes = secret?.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone())
        .ok()
        .filter(|s| s.contains("-----BEGIN"))
}

fn not_after(secret: Option<&Secret>) -> Option<i64> {
    secret?
        .metadata
        .annotations
        .as_ref()?
        .get(NOT_AFTER_ANNOTATION)?
        .parse()
        .ok()
}

impl Existing {
    pub(crate) fn read(ca_secret: Option<&Secret>, tls_secret: Option<&Secret>) -> Self {
        Self {
            ca_cert_pem: data(ca_secret, "ca.crt"),
            ca_key_pem: data(ca_secret, "ca.key"),
            ca_not_after: not_after(ca_secret),
            cert_pem: data(tls_secret, "tls.crt"),
            key_pem: data(tls_secret, "tls.key"),
            cert_not_after: not_after(tls_secret),
        }
    }
}

/// Pure: keep, renew the serving certificate, or start over with a new CA.
pub(crate) fn decide(existing: &Existing, now: i64) -> TlsDecision {
    let ca_usable = existing.ca_cert_pem.is_some()
        && existing
            .ca_key_pem
            .as_deref()
            .is_some_and(|k| KeyPair::from_pem(k).is_ok());
    let Some(ca_not_after) = existing.ca_not_after.filter(|_| ca_usable) else {
        return TlsDecision::NewCa {
            reason: "no usable CA in the cluster".into(),
        };
    };
    if ca_not_after - now < RENEW_BEFORE {
        return TlsDecision::NewCa {
            reason: format!("the CA expires in {} days", (ca_not_after - now) / DAY),
        };
    }
    let serving_complete = existing.cert_pem.is_some() && existing.key_pem.is_some();
    match existing.cert_not_after.filter(|_| serving_complete) {
        None => TlsDecision::RenewServing {
            reason: "no usable serving certificate in the cluster".into(),
        },
        Some(t) if t - now < RENEW_BEFORE => TlsDecision::RenewServing {
            reason: format!(
                "the serving certificate expires in {} days",
                (t - now) / DAY
            ),
        },
        Some(_) => TlsDecision::Keep,
    }
}

fn timestamp(unix: i64) -> Result<OffsetDateTime, InstallError> {
    OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| InstallError::Certificate(format!("time {unix}: {e}")))
}

fn cert_error(e: rcgen::Error) -> InstallError {
    InstallError::Certificate(e.to_string())
}

/// The CA's parameters. Deterministic, so the existing CA can sign again from its key alone:
/// the same subject and key give the same issuer name and key identifier.
fn ca_params(now: i64) -> Result<CertificateParams, InstallError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = timestamp(now - BACKDATE)?;
    params.not_after = timestamp(now + CA_VALIDITY)?;
    Ok(params)
}

/// DNS names the API server may use for the Service.
pub(crate) fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

fn serving_cert(
    issuer: &Issuer<'_, &KeyPair>,
    dns_names: &[String],
    now: i64,
) -> Result<(String, String, i64), InstallError> {
    let key = KeyPair::generate().map_err(cert_error)?;
    let mut params = CertificateParams::new(dns_names.to_vec()).map_err(cert_error)?;
    if let Some(first) = dns_names.get(2).or_else(|| dns_names.first()) {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let not_after = now + SERVING_VALIDITY;
    params.not_before = timestamp(now - BACKDATE)?;
    params.not_after = timestamp(not_after)?;
    let cert = params.signed_by(&key, issuer).map_err(cert_error)?;
    Ok((cert.pem(), key.serialize_pem(), not_after))
}

/// Carries out `decision`: the material to store (unchanged for `Keep`).
pub(crate) fn material(
    decision: &TlsDecision,
    existing: &Existing,
    dns_names: &[String],
    now: i64,
) -> Result<TlsMaterial, InstallError> {
    let incomplete = || InstallError::Certificate("existing TLS Secrets are incomplete".into());
    match decision {
        TlsDecision::Keep => {
            let ca_cert_pem = existing.ca_cert_pem.clone().ok_or_else(incomplete)?;
            Ok(TlsMaterial {
                ca_bundle_pem: ca_cert_pem.clone(),
                ca_cert_pem,
                ca_key_pem: existing.ca_key_pem.clone().ok_or_else(incomplete)?,
                ca_not_after: existing.ca_not_after.ok_or_else(incomplete)?,
                cert_pem: existing.cert_pem.clone().ok_or_else(incomplete)?,
                key_pem: existing.key_pem.clone().ok_or_else(incomplete)?,
                cert_not_after: existing.cert_not_after.ok_or_else(incomplete)?,
            })
        }
        TlsDecision::RenewServing { .. } => {
            let ca_key_pem = existing.ca_key_pem.clone().ok_or_else(incomplete)?;
            let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(cert_error)?;
            let params = ca_params(now)?;
            let issuer = Issuer::from_params(&params, &ca_key);
            let (cert_pem, key_pem, cert_not_after) = serving_cert(&issuer, dns_names, now)?;
            let ca_cert_pem = existing.ca_cert_pem.clone().ok_or_else(incomplete)?;
            Ok(TlsMaterial {
                ca_bundle_pem: ca_cert_pem.clone(),
                ca_cert_pem,
                ca_key_pem,
                ca_not_after: existing.ca_not_after.ok_or_else(incomplete)?,
                cert_pem,
                key_pem,
                cert_not_after,
            })
        }
        TlsDecision::NewCa { .. } => {
            let ca_key = KeyPair::generate().map_err(cert_error)?;
            let params = ca_params(now)?;
            let ca_cert = params.self_signed(&ca_key).map_err(cert_error)?;
            let issuer = Issuer::from_params(&params, &ca_key);
            let (cert_pem, key_pem, cert_not_after) = serving_cert(&issuer, dns_names, now)?;
            let ca_cert_pem = ca_cert.pem();
            // Trust the outgoing CA too while it is valid: pods still serve its certificate
            // until kubelet refreshes the mounted Secret.
            let mut ca_bundle_pem = ca_cert_pem.clone();
            if let (Some(old), Some(old_not_after)) =
                (existing.ca_cert_pem.as_ref(), existing.ca_not_after)
                && old_not_after > now
            {
                ca_bundle_pem.push_str(old);
            }
            Ok(TlsMaterial {
                ca_cert_pem,
                ca_key_pem: ca_key.serialize_pem(),
                ca_not_after: now + CA_VALIDITY,
                cert_pem,
                key_pem,
                cert_not_after,
                ca_bundle_pem,
            })
        }
    }
}

fn secret_data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// One Secret's data and its certificate's notAfter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretContents {
    pub(crate) data: BTreeMap<String, ByteString>,
    pub(crate) not_after: i64,
}

/// (CA Secret, serving Secret). The CA key goes only into the CA Secret.
pub(crate) fn secrets_data(m: &TlsMaterial) -> (SecretContents, SecretContents) {
    (
        SecretContents {
            data: secret_data(&[("ca.crt", &m.ca_cert_pem), ("ca.key", &m.ca_key_pem)]),
            not_after: m.ca_not_after,
        },
        SecretContents {
            data: secret_data(&[
                ("tls.crt", &m.cert_pem),
                ("tls.key", &m.key_pem),
                ("ca.crt", &m.ca_cert_pem),
            ]),
            not_after: m.cert_not_after,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const NOW: i64 = 1_800_000_000;

    fn names() -> Vec<String> {
        service_dns_names("mlplatform-webhook", "mlplatform-system")
    }

    fn existing_from(m: &TlsMaterial) -> Existing {
        Existing {
            ca_cert_pem: Some(m.ca_cert_pem.clone()),
            ca_key_pem: Some(m.ca_key_pem.clone()),
            ca_not_after: Some(m.ca_not_after),
            cert_pem: Some(m.cert_pem.clone()),
            key_pem: Some(m.key_pem.clone()),
            cert_not_after: Some(m.cert_not_after),
        }
    }

    /// The verifier's clock, so certificates made for a future `now` can be checked.
    #[derive(Debug)]
    struct FixedTime(i64);

    impl rustls::time_provider::TimeProvider for FixedTime {
        fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
            Some(rustls::pki_types::UnixTime::since_unix_epoch(
                std::time::Duration::from_secs(self.0.unsigned_abs()),
            ))
        }
    }

    /// A TLS handshake in memory at time `at`: the client trusts `ca_bundle_pem` and dials
    /// `name`.
    fn handshake(m: &TlsMaterial, name: &str, at: i64) -> Result<(), rustls::Error> {
        use pem::*;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in pem_certs(&m.ca_bundle_pem) {
            roots.add(der)?;
        }
        let client =
            rustls::ClientConfig::builder_with_details(provider.clone(), Arc::new(FixedTime(at)))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(pem_certs(&m.cert_pem), pem_key(&m.key_pem))?;
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), server_name)?;
        let mut s = rustls::ServerConnection::new(Arc::new(server))?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets()?;
        }
        assert!(!c.is_handshaking());
        Ok(())
    }

    /// PEM decoding through rustls' re-exported pki-types.
    mod pem {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        pub(crate) fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap()
        }

        pub(crate) fn pem_key(pem: &str) -> PrivateKeyDer<'static> {
            PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
        }
    }

    #[test]
    fn fresh_install_makes_a_ca_and_a_serving_cert_the_api_server_trusts() {
        let existing = Existing::read(None, None);
        let decision = decide(&existing, NOW);
        assert!(matches!(decision, TlsDecision::NewCa { .. }));
        let m = material(&decision, &existing, &names(), NOW).unwrap();
        assert_eq!(m.cert_not_after, NOW + SERVING_VALIDITY);
        handshake(&m, "mlplatform-webhook.mlplatform-system.svc", NOW).unwrap();
        handshake(
            &m,
            "mlplatform-webhook.mlplatform-system.svc.cluster.local",
            NOW,
        )
        .unwrap();
        assert!(handshake(&m, "other.mlplatform-system.svc", NOW).is_err());
        // Outside its validity the certificate is refused.
        assert!(
            handshake(
                &m,
                "mlplatform-webhook.mlplatform-system.svc",
                m.cert_not_after + DAY
            )
            .is_err()
        );
    }

    #[test]
    fn valid_certificates_are_kept_byte_for_byte() {
        let fresh = material(
            &TlsDecision::NewCa {
                reason: String::new(),
            },
            &Existing::read(None, None),
            &names(),
            NOW,
        )
        .unwrap();
        let existing = existing_from(&fresh);
        let later = NOW + 100 * DAY;
        assert_eq!(decide(&existing, later), TlsDecision::Keep);
        assert_eq!(
            material(&TlsDecision::Keep, &existing, &names(), later).unwrap(),
            fresh
        );
    }

    #[test]
    fn a_serving_cert_near_expiry_is_renewed_from_the_same_ca() {
        let fresh = material(
            &TlsDecision::NewCa {
                reason: String::new(),
            },
            &Existing::read(None, None),
            &names(),
            NOW,
        )
        .unwrap();
        let existing = existing_from(&fresh);
        let later = fresh.cert_not_after - 29 * DAY;
        let decision = decide(&existing, later);
        assert!(
            matches!(decision, TlsDecision::RenewServing { .. }),
            "{decision:?}"
        );
        let renewed = material(&decision, &existing, &names(), later).unwrap();
        assert_ne!(renewed.cert_pem, fresh.cert_pem);
        assert_eq!(
            renewed.ca_bundle_pem, fresh.ca_bundle_pem,
            "caBundle unchanged"
        );
        assert_eq!(renewed.cert_not_after, later + SERVING_VALIDITY);
        // The old CA (the caBundle the API server has) verifies the new certificate.
        handshake(&renewed, "mlplatform-webhook.mlplatform-system.svc", later).unwrap();
    }

    #[test]
    fn a_ca_near_expiry_is_replaced_and_the_old_one_stays_trusted_meanwhile() {
        let fresh = material(
            &TlsDecision::NewCa {
                reason: String::new(),
            },
            &Existing::read(None, None),
            &names(),
            NOW,
        )
        .unwrap();
        let existing = existing_from(&fresh);
        let later = fresh.ca_not_after - 10 * DAY;
        let decision = decide(&existing, later);
        assert!(
            matches!(decision, TlsDecision::NewCa { .. }),
            "{decision:?}"
        );
        let next = material(&decision, &existing, &names(), later).unwrap();
        assert_ne!(next.ca_cert_pem, fresh.ca_cert_pem);
        assert!(next.ca_bundle_pem.starts_with(&next.ca_cert_pem));
        assert!(next.ca_bundle_pem.contains(&fresh.ca_cert_pem));
        // Pods still serving a certificate from the old CA are trusted through the bundle.
        let from_old_ca = material(
            &TlsDecision::RenewServing {
                reason: String::new(),
            },
            &existing,
            &names(),
            later - 40 * DAY,
        )
        .unwrap();
        let old_serving = TlsMaterial {
            ca_bundle_pem: next.ca_bundle_pem.clone(),
            ..from_old_ca
        };
        handshake(
            &old_serving,
            "mlplatform-webhook.mlplatform-system.svc",
            later,
        )
        .unwrap();
        handshake(&next, "mlplatform-webhook.mlplatform-system.svc", later).unwrap();
    }

    #[test]
    fn incomplete_or_garbled_secrets_start_over() {
        let mut existing = Existing {
            ca_cert_pem: Some("-----BEGIN CERTIFICATE-----".into()),
            ca_key_pem: Some("-----BEGIN PRIVATE KEY-----\nnot a key".into()),
            ca_not_after: Some(NOW + CA_VALIDITY),
            cert_pem: None,
            key_pem: None,
            cert_not_after: None,
        };
        assert!(matches!(decide(&existing, NOW), TlsDecision::NewCa { .. }));
        existing.ca_key_pem = Some(KeyPair::generate().unwrap().serialize_pem());
        assert!(matches!(
            decide(&existing, NOW),
            TlsDecision::RenewServing { .. }
        ));
        existing.ca_not_after = None;
        assert!(matches!(decide(&existing, NOW), TlsDecision::NewCa { .. }));
    }
}
