//! `oidc associate` flags, and the cluster flags IRSA shares.

use clap::{Args, Subcommand};

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum OidcCommand {
    /// Create the IAM OIDC provider for the cluster's issuer, if missing (idempotent).
    Associate(OidcAssociateArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ClusterArgs {
    /// EKS cluster name (default: from the kubeconfig context).
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster: Option<String>,
    /// AWS region of the cluster (default: from the context, else AWS_REGION / the AWS profile).
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct OidcAssociateArgs {
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// Do not contact the issuer for its certificate thumbprint (IAM does not need it for EKS).
    #[arg(long)]
    pub(crate) skip_thumbprint: bool,
    /// Limit for reading the issuer's certificate chain, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub(crate) thumbprint_timeout: u64,
}
