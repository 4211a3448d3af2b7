//! Every command's failure: one line for the user, and its exit code.

use crate::aws::AwsError;
use crate::aws_auth::AwsAuthError;
use crate::execute::ApplyError;
use crate::kube_io::{KubeIoError, one_line};
use crate::plan::PlanError;
use crate::profile::ProfileError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad flags or input the user can fix (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Profile(#[from] ProfileError),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("{0}")]
    AwsAuth(#[from] AwsAuthError),
    #[error("{0}")]
    Kube(#[from] KubeIoError),
    #[error("{0}")]
    Apply(#[from] ApplyError),
    #[error("{0}")]
    Oidc(#[from] crate::oidc::OidcError),
    #[error("{0}")]
    Irsa(#[from] crate::irsa::IrsaError),
    #[error("{0}")]
    AccessEntry(#[from] crate::access_entry::AccessEntryError),
    #[error("{0}")]
    Migrate(#[from] crate::access_migration::MigrateError),
    #[error(
        "namespace {namespaces} is still being deleted (Terminating) after {waited_seconds}s; nothing was written; wait until it is gone (`kubectl get namespace {namespaces}`) and re-run, or pass a longer --wait-timeout"
    )]
    NamespaceStillTerminating {
        namespaces: String,
        waited_seconds: u64,
    },
    #[error(
        "{failed} check(s) failed; run the fix command(s) shown above, then `kubectl mlplatform doctor` again"
    )]
    ChecksFailed { failed: usize },
    /// `aws-auth` reports its errors as text already shaped for the user.
    #[error("{0}")]
    AwsAuthCommand(String),
    #[error("{0}")]
    Webhook(#[from] crate::webhook_install::InstallError),
    #[error("{0}")]
    Policy(#[from] crate::policy_install::PolicyError),
    #[error("cannot write output: {0}")]
    Output(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

impl CommandError {
    /// 2 for usage errors, 1 for everything else that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Profile(_) => 2,
            Self::Webhook(
                crate::webhook_install::InstallError::BadReplicas(_)
                | crate::webhook_install::InstallError::BadImage(_),
            ) => 2,
            Self::Plan(
                PlanError::MissingParameter { .. }
                | PlanError::BadAccount { .. }
                | PlanError::BadRoleArn { .. }
                | PlanError::BadBucket { .. }
                | PlanError::BadKmsKey { .. }
                | PlanError::BadCidr { .. }
                | PlanError::UnknownParameter { .. }
                | PlanError::BadExternalId(_),
            ) => 2,
            _ => 1,
        }
    }

    /// The single line printed on stderr.
    pub fn line(&self) -> String {
        format!("error: {}", one_line(&self.to_string()))
    }
}
