//! Command-line surface (clap derive). Parsing happens before any runtime, AWS or kube set-up,
//! so `--help` stays instant.

//!
//! Layout: this file has the top-level command and the connect/disconnect/doctor/namespace/
//! profiles flags; `aws_auth`, `oidc`, `irsa`, `webhook` and `completion` have their
//! subcommands' flags; `parse` has the value parsers. Commands (`crate::commands`) read these
//! types; nothing here depends on a command.

pub(crate) mod aws_auth;
pub(crate) mod completion;
pub(crate) mod irsa;
pub(crate) mod oidc;
pub(crate) mod parse;
pub(crate) mod policy;
pub(crate) mod webhook;

use clap::{Args, Parser, Subcommand};

use self::aws_auth::AwsAuthCommand;
use self::completion::CompletionArgs;
use self::irsa::IrsaCommand;
use self::oidc::OidcCommand;
use self::parse::{parse_param, parse_timeout};
use self::policy::{EnforcementArg, PolicyCommand};
use self::webhook::WebhookCommand;
use crate::common::GlobalArgs;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl mlplatform",
    bin_name = "kubectl mlplatform",
    about = "Connect ML platform vendors (Concurrent, Hopsworks, Arthur, SageMaker operator) to an Amazon EKS cluster, safely",
    long_about = None,
    version,
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a vendor profile's whole setup (IAM role, cluster access, namespace bundle); idempotent.
    Connect(ConnectCommandArgs),
    /// Undo exactly what connect made, nothing else.
    Disconnect(DisconnectArgs),
    /// Check everything connect sets up and print the command that fixes each failure.
    Doctor(ConnectArgs),
    /// Safe aws-auth editing (mapRoles / mapUsers / mapAccounts).
    AwsAuth(AwsAuthCommand),
    /// The cluster's IAM OIDC provider (needed for IAM roles for service accounts).
    #[command(subcommand)]
    Oidc(OidcCommand),
    /// IAM roles for service accounts: role, trust, policies and the ServiceAccount annotation.
    #[command(subcommand)]
    Irsa(IrsaCommand),
    /// The per-namespace bundle alone.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Built-in vendor profiles.
    #[command(subcommand)]
    Profiles(ProfilesCommand),
    /// The admission webhook that enforces namespace policy: install, uninstall, status.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// The same namespace policy as API-server admission policies (no webhook process):
    /// install, uninstall, status.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print a shell completion script (bash, zsh, fish, or kubectl's plugin hook).
    Completion(CompletionArgs),
    /// Print version, git commit and target (`-o json` for scripts).
    Version,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectArgs {
    /// Vendor profile: a built-in name (`kubectl mlplatform profiles list`) or a YAML file.
    #[arg(long, short = 'p', value_name = "NAME|FILE")]
    pub(crate) profile: String,
    /// EKS cluster name (default: from the kubeconfig context).
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster: Option<String>,
    /// AWS region of the cluster (default: from the context, else AWS_REGION / the AWS profile).
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// AWS account the vendor's service runs in (profile parameter vendorAccount).
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub(crate) vendor_account: Option<String>,
    /// External ID the vendor must present (default: kept from the existing role, else generated).
    #[arg(long, value_name = "ID")]
    pub(crate) external_id: Option<String>,
    /// Existing IAM role ARN a profile maps or extends (profile parameter with flag role-arn).
    #[arg(long, value_name = "ARN")]
    pub(crate) role_arn: Option<String>,
    /// hopsworks: the instance-profile role Hopsworks.ai instances run as (existing role).
    #[arg(long, value_name = "ARN")]
    pub(crate) instance_role_arn: Option<String>,
    /// hopsworks: the cross-account role Hopsworks.ai uses in your account (existing role).
    #[arg(long, value_name = "ARN")]
    pub(crate) cross_account_role_arn: Option<String>,
    /// arthur: the S3 bucket Arthur reads and writes.
    #[arg(long, value_name = "BUCKET")]
    pub(crate) s3_bucket: Option<String>,
    /// arthur: the SES role in another account that Arthur assumes (cross-account SES).
    #[arg(long, value_name = "ARN")]
    pub(crate) ses_role_arn: Option<String>,
    /// arthur: customer managed KMS key for the gp3 StorageClass's EBS volumes.
    #[arg(long, value_name = "ARN")]
    pub(crate) kms_key_id: Option<String>,
    /// How the role gets cluster access: auto (from the cluster's authentication mode),
    /// configmap (aws-auth) or access-entry (EKS access entries).
    #[arg(long, value_enum, default_value_t = crate::access_entry::AuthMode::Auto)]
    pub(crate) auth_mode: crate::access_entry::AuthMode,
    /// Other profile parameters.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,
    /// Map the vendor role to system:masters (cluster administrator), as the vendor's page does.
    #[arg(long)]
    pub(crate) cluster_admin: bool,
    /// connect: also install or update the admission webhook (`webhook install` defaults), so
    /// the namespace policy is enforced from the start. doctor: a missing webhook is then a
    /// failure, not a warning.
    #[arg(long)]
    pub(crate) with_webhook: bool,
    /// Namespace policy enforcement, enforce|warn|audit (default: the profile's). Written
    /// as the mlplatform.io/enforcement annotation (read by the webhook) and label (selects
    /// the admission policy binding).
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) enforcement: Option<EnforcementArg>,
    /// How the profile's workload roles (irsaRoles) reach pods: irsa (trust on the cluster's
    /// OIDC provider, role-arn annotation) or pod-identity (trust on pods.eks.amazonaws.com,
    /// one EKS Pod Identity association per ServiceAccount).
    #[arg(long, value_enum, default_value_t = crate::pod_identity::Identity::Irsa)]
    pub(crate) identity: crate::pod_identity::Identity,
}

impl ConnectArgs {
    /// The dedicated flags that set a profile parameter (besides `--vendor-account`), by flag
    /// name (a profile parameter's `flag`).
    pub(crate) fn parameter_flags(&self) -> [(&'static str, &Option<String>); 6] {
        [
            ("role-arn", &self.role_arn),
            ("instance-role-arn", &self.instance_role_arn),
            ("cross-account-role-arn", &self.cross_account_role_arn),
            ("s3-bucket", &self.s3_bucket),
            ("ses-role-arn", &self.ses_role_arn),
            ("kms-key-id", &self.kms_key_id),
        ]
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectCommandArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// How long to wait for a namespace that is being deleted (Terminating) to go before
    /// creating it again (e.g. 90s, 5m; 0: do not wait).
    #[arg(long, default_value = "60s", value_parser = parse_timeout, value_name = "DURATION")]
    pub(crate) wait_timeout: std::time::Duration,
    /// --identity pod-identity: point a ServiceAccount's existing association of another role
    /// at the profile's role (else that is an error).
    #[arg(long)]
    pub(crate) replace_association: bool,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct DisconnectArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Also delete the namespace itself (and everything in it).
    #[arg(long)]
    pub(crate) delete_namespace: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NamespaceCommand {
    /// Create or repair a namespace bundle (namespace, service accounts, roles, bindings).
    Add(NamespaceArgs),
    /// Remove a namespace bundle made by `namespace add` or `connect`.
    Remove(NamespaceRemoveArgs),
    /// Show managed namespaces and their policy.
    List,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct NamespaceArgs {
    /// Profile that decides the names (a built-in name or a YAML file).
    #[arg(long, short = 'p', value_name = "NAME|FILE")]
    pub(crate) profile: String,
    /// Other profile parameters.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,
    /// Namespace policy enforcement, enforce|warn|audit (default: the profile's). Written
    /// as the mlplatform.io/enforcement annotation (read by the webhook) and label (selects
    /// the admission policy binding).
    #[arg(long, value_enum, value_name = "MODE")]
    pub(crate) enforcement: Option<EnforcementArg>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct NamespaceRemoveArgs {
    #[command(flatten)]
    pub(crate) namespace: NamespaceArgs,
    /// Also delete the namespace itself.
    #[arg(long)]
    pub(crate) delete_namespace: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfilesCommand {
    /// List the built-in profiles.
    List,
    /// Print a profile (`-o yaml` loads back with `--profile FILE`).
    Show {
        /// A built-in name or a YAML file.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-mlplatform",
            "connect",
            "--profile",
            "concurrent",
            "--context",
            "c",
            "-n",
            "ns",
            "--dry-run=server",
            "-o",
            "json",
            "--param",
            "a=b=c",
        ])
        .unwrap();
        assert_eq!(cli.global.context.as_deref(), Some("c"));
        assert_eq!(cli.global.namespace.as_deref(), Some("ns"));
        assert_eq!(cli.global.dry_run, crate::common::DryRun::Server);
        let Command::Connect(args) = cli.command else {
            panic!("not connect")
        };
        assert_eq!(
            args.connect.params,
            vec![("a".to_owned(), "b=c".to_owned())]
        );
        assert_eq!(args.wait_timeout, std::time::Duration::from_secs(60));
    }
}
