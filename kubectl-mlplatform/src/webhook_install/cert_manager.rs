//! `--cert-manager`: cert-manager issues a CA (self-signed) and the serving certificate from
//! it, renews them, and its cainjector fills both webhook configurations' caBundle.
use serde_json::{Value, json};

use super::model::{CA_SECRET, NAMESPACE, SERVICE, TLS_SECRET};
use super::tls;
use crate::vocabulary::{APP_NAME_LABEL, APP_NAME_WEBHOOK, PART_OF_LABEL, PART_OF_VALUE};

pub(crate) const API_VERSION: &str = "cert-manager.io/v1";
/// cainjector copies `ca.crt` of this Certificate's Secret into the caBundle.
pub(crate) const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";
const SELF_SIGNED_ISSUER: &str = "mlplatform-webhook-selfsigned";
const CA_ISSUER: &str = "mlplatform-webhook-ca";

fn metadata(name: &str) -> Value {
    json!({
        "name": name,
        "namespace": NAMESPACE,
        "labels": {
            APP_NAME_LABEL: APP_NAME_WEBHOOK,
            PART_OF_LABEL: PART_OF_VALUE,
        },
    })
}

/// Issuers and Certificates, in the order they depend on each other.
pub(crate) fn objects() -> Vec<Value> {
    let hours = |seconds: i64| format!("{}h", seconds / 3_600);
    vec![
        json!({
            "apiVersion": API_VERSION, "kind": "Issuer",
            "metadata": metadata(SELF_SIGNED_ISSUER),
            "spec": {"selfSigned": {}},
        }),
        json!({
            "apiVersion": API_VERSION, "kind": "Certificate",
            "metadata": metadata(CA_SECRET),
            "spec": {
                "isCA": true,
                "commonName": "mlplatform-webhook-ca",
                "secretName": CA_SECRET,
                "duration": hours(tls::CA_VALIDITY),
                "renewBefore": hours(tls::RENEW_BEFORE),
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": SELF_SIGNED_ISSUER, "kind": "Issuer", "group": "cert-manager.io"},
            },
        }),
        json!({
            "apiVersion": API_VERSION, "kind": "Issuer",
            "metadata": metadata(CA_ISSUER),
            "spec": {"ca": {"secretName": CA_SECRET}},
        }),
        json!({
            "apiVersion": API_VERSION, "kind": "Certificate",
            "metadata": metadata(TLS_SECRET),
            "spec": {
                "secretName": TLS_SECRET,
                "dnsNames": tls::service_dns_names(SERVICE, NAMESPACE),
                "duration": hours(tls::SERVING_VALIDITY),
                "renewBefore": hours(tls::RENEW_BEFORE),
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "usages": ["server auth", "digital signature", "key encipherment"],
                "issuerRef": {"name": CA_ISSUER, "kind": "Issuer", "group": "cert-manager.io"},
            },
        }),
    ]
}

/// Whether the API server serves cert-manager's Issuers and Certificates.
pub(crate) async fn served(client: &kube::Client) -> bool {
    client
        .list_api_group_resources(API_VERSION)
        .await
        .is_ok_and(|list| {
            ["issuers", "certificates"]
                .iter()
                .all(|plural| list.resources.iter().any(|r| r.name == *plural))
        })
}
