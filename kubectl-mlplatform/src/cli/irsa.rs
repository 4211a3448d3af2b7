//! `irsa create|delete|migrate` flags.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::oidc::ClusterArgs;
use crate::pod_identity::Identity;

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum IrsaCommand {
    /// Create or reconcile the IAM role of a ServiceAccount (trust, policies, annotation).
    Create(IrsaCreateArgs),
    /// Remove the role (only one kubectl-mlplatform made) and the ServiceAccount annotation.
    Delete(IrsaTargetArgs),
    /// Move a role from IRSA to EKS Pod Identity (`--to pod-identity`) or back (`--to irsa`):
    /// trust statements, associations and annotations, in a safe order; re-runnable.
    Migrate(IrsaMigrateArgs),
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
    /// How pods get the role: irsa (trust on the cluster's OIDC provider, role-arn annotation)
    /// or pod-identity (trust on pods.eks.amazonaws.com, an EKS Pod Identity association).
    #[arg(long, value_enum, default_value_t = Identity::Irsa)]
    pub(crate) identity: Identity,
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
    /// pod-identity: point a ServiceAccount's existing association of another role at this one.
    #[arg(long)]
    pub(crate) replace_association: bool,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct IrsaMigrateArgs {
    /// pod-identity: add the EKS Pod Identity trust and associations; irsa: undo that.
    #[arg(long, value_enum, value_name = "IDENTITY")]
    pub(crate) to: Identity,
    /// The role by name, optionally with a path (must be one kubectl-mlplatform made).
    #[arg(long, value_name = "[PATH/]NAME", conflicts_with = "role_arn")]
    pub(crate) role_name: Option<String>,
    /// The role by ARN: also a role kubectl-mlplatform did not make.
    #[arg(long, value_name = "ARN")]
    pub(crate) role_arn: Option<String>,
    /// ServiceAccount in -n/--namespace (repeatable): names the role `irsa create` made for
    /// them when no --role-name/--role-arn is given; each must be one the role's trust names.
    #[arg(long = "service-account", value_name = "NAME")]
    pub(crate) service_accounts: Vec<String>,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// --to pod-identity: also drop the OIDC trust statements and the role-arn annotations,
    /// once the associations exist.
    #[arg(long)]
    pub(crate) remove_oidc_trust: bool,
    /// Point a ServiceAccount's existing association of another role at this one.
    #[arg(long)]
    pub(crate) replace_association: bool,
}
