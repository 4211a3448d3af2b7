//! `irsa create|delete` flags.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::oidc::ClusterArgs;

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum IrsaCommand {
    /// Create or reconcile the IAM role of a ServiceAccount (trust, policies, annotation).
    Create(IrsaCreateArgs),
    /// Remove the role (only one kubectl-mlplatform made) and the ServiceAccount annotation.
    Delete(IrsaTargetArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct IrsaTargetArgs {
    /// ServiceAccount in -n/--namespace (repeatable: one role trusted by several).
    #[arg(long = "service-account", value_name = "NAME", required = true)]
    pub(crate) service_accounts: Vec<String>,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// IAM role name, optionally with a path (`team/ml/Name`). Default:
    /// mlplatform-irsa-<cluster>-<namespace>-<service accounts> (at most 64 characters).
    #[arg(long, value_name = "[PATH/]NAME")]
    pub(crate) role_name: Option<String>,
    /// Only the IAM role: do not create, annotate or delete ServiceAccounts.
    #[arg(long)]
    pub(crate) role_only: bool,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct IrsaCreateArgs {
    #[command(flatten)]
    pub(crate) target: IrsaTargetArgs,
    /// Managed policy to attach (repeatable). Re-running without one detaches it, if this
    /// tool attached it.
    #[arg(long = "attach-policy-arn", value_name = "ARN")]
    pub(crate) attach_policy_arns: Vec<String>,
    /// IAM policy document (JSON) to put as the role's inline policy; re-running without it
    /// removes it.
    #[arg(long, value_name = "FILE")]
    pub(crate) inline_policy: Option<PathBuf>,
}
