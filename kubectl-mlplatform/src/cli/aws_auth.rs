//! `aws-auth get|add|remove|migrate` flags.

use clap::{Args, Subcommand};

use crate::access_migration::MigrateTarget;
use crate::aws_auth::MappingKind;

/// Read and edit the aws-auth ConfigMap without breaking it.
#[derive(Debug, Clone, Args)]
pub(crate) struct AwsAuthCommand {
    #[command(subcommand)]
    pub(crate) action: AwsAuthAction,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum AwsAuthAction {
    /// Print every mapping (roles, SSO permission sets, users, accounts).
    Get,
    /// Map an IAM role or user into the cluster, or update its mapping.
    Add(AddArgs),
    /// Remove the mapping of an IAM role or user (node roles are never removed).
    Remove(RemoveArgs),
    /// Move the mappings connect made to EKS access entries (`--to access-entries`), or back
    /// (`--to aws-auth`); each principal keeps access throughout. Re-runnable.
    Migrate(MigrateArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct MigrateArgs {
    /// Where the mappings go: access-entries, or aws-auth (back).
    #[arg(long, value_enum)]
    pub(crate) to: MigrateTarget,
    /// Also move this principal's mapping (repeatable), e.g. a role that existed before
    /// connect mapped it (hopsworks' instance role), which carries no tag of ours.
    #[arg(long = "arn", value_name = "ARN")]
    pub(crate) arns: Vec<String>,
    /// On a CONFIG_MAP cluster, first switch it to API_AND_CONFIG_MAP (EKS UpdateClusterConfig;
    /// one-way: it cannot go back to CONFIG_MAP).
    #[arg(long)]
    pub(crate) update_authentication_mode: bool,
    /// EKS cluster name (default: from the kubeconfig context).
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster: Option<String>,
    /// AWS region of the cluster (default: from the context, else AWS_REGION / the AWS profile).
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct AddArgs {
    /// IAM role or user ARN; a role's path is stripped (aws-auth never matches it).
    #[arg(long, value_name = "ARN")]
    pub(crate) arn: String,
    /// Kubernetes username for the identity. Default: the role or user name.
    #[arg(long, value_name = "NAME")]
    pub(crate) username: Option<String>,
    /// Kubernetes group (repeatable). Prefer a named group bound to a ClusterRole.
    #[arg(long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
    /// mapRoles or mapUsers. Default: inferred from the ARN.
    #[arg(long, value_enum)]
    pub(crate) kind: Option<MappingKind>,
    /// Required to pass --group system:masters (full cluster admin).
    #[arg(long)]
    pub(crate) allow_system_masters: bool,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RemoveArgs {
    /// IAM role or user ARN of the mapping to remove.
    #[arg(long, value_name = "ARN")]
    pub(crate) arn: String,
    /// mapRoles or mapUsers. Default: inferred from the ARN.
    #[arg(long, value_enum)]
    pub(crate) kind: Option<MappingKind>,
}
