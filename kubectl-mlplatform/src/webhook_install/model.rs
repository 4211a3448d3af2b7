//! The webhook install's names, options, plan and outcomes, and why it fails.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;

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
    #[error(
        "applying {object}: {source} (stopped after {done} of {total}; re-running `kubectl mlplatform webhook install` finishes it)"
    )]
    Apply {
        object: String,
        source: kube::Error,
        done: usize,
        total: usize,
    },
    #[error(
        "Deployment {NAMESPACE}/{DEPLOYMENT} did not become ready within {0:?}; the webhook configurations were not registered yet (so nothing is blocked); check `kubectl -n {NAMESPACE} describe deployment {DEPLOYMENT}`"
    )]
    NotReady(Duration),
    #[error("rendering YAML: {0}")]
    Render(String),
    #[error(
        "deleting {object}: {source} (stopped after {done} of {total}; re-running `kubectl mlplatform webhook uninstall` finishes it)"
    )]
    Delete {
        object: String,
        source: kube::Error,
        done: usize,
        total: usize,
    },
    #[error(
        "--cert-manager: cert-manager is not installed in this cluster (no cert-manager.io/v1 API); install cert-manager first, or leave out --cert-manager to use generated certificates"
    )]
    CertManagerMissing,
    #[error("reading {what}: {source}; check that your kubeconfig can read it")]
    Read { what: String, source: kube::Error },
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

/// What is in the cluster now (read by [`observe`]).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub(crate) ca_secret: Option<Secret>,
    pub(crate) tls_secret: Option<Secret>,
}

/// How one object fared in [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Deleted,
    /// Nothing to delete.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `Kind namespace/name` or `Kind name`.
    pub(crate) object: String,
    pub outcome: Outcome,
}
