//! The webhook install's names, options, plan and outcomes, and why it fails.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;
use serde_json::Value;

use crate::common::Change;
use crate::objects::ObjectKey;
use crate::steps::Step;

pub const NAMESPACE: &str = "mlplatform-system";
pub const SERVICE: &str = "mlplatform-webhook";
pub(crate) const DEPLOYMENT: &str = "mlplatform-webhook";
/// Both webhook configurations (mutating and validating) have this name.
pub(crate) const CONFIGURATION: &str = "mlplatform-webhook";
/// Mounted into the webhook pods: serving certificate and key (and the CA, for clients).
pub const TLS_SECRET: &str = "mlplatform-webhook-tls";
/// Never mounted: the CA and its key, kept so renewal can reuse the CA.
pub(crate) const CA_SECRET: &str = "mlplatform-webhook-ca";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "embedded manifest {file} does not parse: {message}; this is a build bug, please report it"
    )]
    EmbeddedManifest { file: &'static str, message: String },
    #[error("embedded manifests lack {0}; this is a build bug, please report it")]
    MissingObject(&'static str),
    #[error(
        "--replicas must be at least 1 (got {0}); the validating webhook fails closed, so 2 or more is safer"
    )]
    BadReplicas(i32),
    #[error(
        "--image {0:?} is not an image reference; pass e.g. ghcr.io/org/mlplatform-webhook:v1.2.3"
    )]
    BadImage(String),
    #[error("generating the webhook certificates: {0}")]
    Certificate(String),
    #[error(
        "reading Secret {NAMESPACE}/{name}: {source}; check that your kubeconfig can read Secrets there"
    )]
    ReadSecret {
        name: &'static str,
        source: kube::Error,
    },
    #[error("rendering YAML: {0}")]
    Render(String),
    #[error(
        "--cert-manager: cert-manager is not installed in this cluster (no cert-manager.io/v1 API); install cert-manager first, or leave out --cert-manager to use generated certificates"
    )]
    CertManagerMissing,
    #[error("reading {what}: {message}; check that your kubeconfig can read it")]
    Read { what: String, message: String },
}

/// `failurePolicy` of every webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    Fail,
    Ignore,
}

impl FailurePolicy {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "Fail",
            Self::Ignore => "Ignore",
        }
    }
}

/// What the user asked for. `None` keeps the manifests' value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallOptions {
    pub(crate) image: Option<String>,
    pub(crate) replicas: Option<i32>,
    pub(crate) failure_policy: Option<FailurePolicy>,
    /// Let cert-manager issue and renew the certificates and inject the caBundle, instead
    /// of generating them here.
    pub(crate) cert_manager: bool,
}

/// What is in the cluster now: the TLS Secrets, whether cert-manager is served, and the live
/// objects the plan looks at (absent: not found).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub(crate) ca_secret: Option<Secret>,
    pub(crate) tls_secret: Option<Secret>,
    pub(crate) cert_manager_served: bool,
    pub(crate) live: BTreeMap<ObjectKey, Value>,
}

/// RFC 3339 UTC from Unix seconds.
pub(crate) fn rfc3339(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRow {
    pub object: String,
    pub result: Change,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateReport {
    /// generated, renewed, kept, cert-manager or deleted.
    pub(crate) action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) not_after: Option<String>,
}

/// What `webhook install|uninstall` print besides the change rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallOutputs {
    pub(crate) certificates: CertificateReport,
    /// One row per object, `Kind namespace/name`, as install has always reported them.
    pub objects: Vec<ObjectRow>,
    /// uninstall's table has no certificates line.
    #[serde(skip)]
    pub(crate) uninstall: bool,
}

impl InstallOutputs {
    pub(crate) fn new(certificates: CertificateReport, steps: &[Step], uninstall: bool) -> Self {
        let objects = steps
            .iter()
            .filter_map(Step::row)
            .map(|row| ObjectRow {
                object: match &row.namespace {
                    Some(ns) => format!("{} {ns}/{}", row.kind, row.name),
                    None => format!("{} {}", row.kind, row.name),
                },
                result: row.change,
            })
            .collect();
        Self {
            certificates,
            objects,
            uninstall,
        }
    }
}
