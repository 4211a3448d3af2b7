//! `webhook install|uninstall|status` flags.

use std::time::Duration;

use clap::{ArgAction, Args, Subcommand, ValueEnum};

use super::parse::parse_timeout;
use crate::webhook_install::{FailurePolicy, InstallOptions};

#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Deploy the admission webhook (manifests embedded in this binary) with a generated CA and
    /// serving certificate, or cert-manager; re-running updates it and renews certificates
    /// within 30 days of expiry.
    Install(WebhookInstallArgs),
    /// Remove the webhook: its configurations first (so nothing is blocked), then the rest.
    Uninstall,
    /// Deployment readiness, certificate expiry, and whether the API server reaches the
    /// webhook (a server-side dry-run pod in a managed namespace). Exit 1 when unhealthy.
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailurePolicyArg {
    /// Deny requests the webhook cannot answer (enforcement never silently stops).
    Fail,
    /// Allow requests the webhook cannot answer.
    Ignore,
}

impl From<FailurePolicyArg> for FailurePolicy {
    fn from(p: FailurePolicyArg) -> Self {
        match p {
            FailurePolicyArg::Fail => Self::Fail,
            FailurePolicyArg::Ignore => Self::Ignore,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct WebhookInstallArgs {
    /// Webhook container image (default: the one in the embedded manifests).
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    /// Webhook replicas (default: the manifests' value).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) replicas: Option<i32>,
    /// failurePolicy of every webhook (default: the manifests' value).
    #[arg(long, value_enum, value_name = "POLICY")]
    pub(crate) failure_policy: Option<FailurePolicyArg>,
    /// Let cert-manager issue, renew and inject the certificates instead of generating them.
    #[arg(long)]
    pub(crate) cert_manager: bool,
    /// Wait for a ready webhook Pod before registering the webhook configurations.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub(crate) wait: bool,
    /// How long to wait for the webhook to become ready (e.g. 90s, 5m).
    #[arg(long, default_value = "3m", value_parser = parse_timeout, value_name = "DURATION")]
    pub(crate) timeout: Duration,
}

impl WebhookInstallArgs {
    pub(crate) fn options(&self) -> InstallOptions {
        InstallOptions {
            image: self.image.clone(),
            replicas: self.replicas,
            failure_policy: self.failure_policy.map(Into::into),
            cert_manager: self.cert_manager,
        }
    }
}
