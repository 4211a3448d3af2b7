//! Why a plan cannot be made: every refusal, before anything is written.

use crate::profile::TemplateError;
use crate::vocabulary::{TAG_CLUSTER, TAG_PROFILE};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An EKS Pod Identity association of another role (`--replace-association` replaces it).
    #[error("{0}")]
    PodIdentity(#[from] crate::pod_identity::PodIdentityError),
    #[error(
        "profile {profile} needs step kind(s) {steps} which this version does not carry out yet; nothing was changed"
    )]
    UnimplementedSteps { profile: String, steps: String },
    #[error("missing {what}; pass {flag}")]
    MissingParameter { what: String, flag: String },
    #[error(
        "parameter {name}={value:?} is not a 12-digit AWS account ID; pass the account number, e.g. {flag} 123456789012"
    )]
    BadAccount {
        name: String,
        value: String,
        flag: String,
    },
    #[error(
        "parameter {name}={value:?}: {reason}; pass a role ARN like arn:aws:iam::123456789012:role/NAME"
    )]
    BadRoleArn {
        name: String,
        value: String,
        reason: String,
    },
    #[error("unknown parameter {name:?} for profile {profile}; known: {known}")]
    UnknownParameter {
        name: String,
        profile: String,
        known: String,
    },
    #[error(
        "--external-id {0:?} is not valid: use 2-1224 characters of letters, digits and +=,.@:/-"
    )]
    BadExternalId(String),
    #[error("profile {0} has no namespace bundle; this command needs one")]
    NoNamespaceBundle(String),
    #[error(
        "EKS cluster {cluster} is in account {cluster_account} but the AWS credentials are for account {caller_account}; use credentials for the cluster's account"
    )]
    AccountMismatch {
        cluster: String,
        cluster_account: String,
        caller_account: String,
    },
    #[error(
        "IAM role {role} exists but was not made by kubectl-mlplatform for profile {profile} on this cluster (tags {TAG_PROFILE}, {TAG_CLUSTER}); refusing to touch it: delete or rename it, or pick another cluster"
    )]
    RoleNotOurs { role: String, profile: String },
    #[error(
        "{object} exists and is not managed by kubectl-mlplatform for profile {profile}; refusing to adopt or delete it: remove it or rename it in a profile file"
    )]
    ObjectNotOurs { object: String, profile: String },
    #[error(
        "namespace {namespace} is already managed for profile {other}; disconnect that profile from it first (`kubectl mlplatform disconnect --profile {other} -n {namespace}`)"
    )]
    NamespaceOwnedByOtherProfile { namespace: String, other: String },
    #[error(
        "namespace {0} is being deleted (Terminating); wait until it is gone (`kubectl get namespace {0}`) and re-run"
    )]
    NamespaceTerminating(String),
    #[error(
        "namespace {namespace} is not managed for profile {profile}; nothing to remove (see `kubectl mlplatform namespace list`)"
    )]
    NamespaceNotManaged { namespace: String, profile: String },
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("{0}")]
    Arn(String),
    #[error("{0}")]
    ClusterAccess(String),
    #[error("{0}")]
    AwsAuth(String),
    #[error(
        "parameter {name}={value:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit); pass the bucket's name, not its ARN or URL"
    )]
    BadBucket { name: String, value: String },
    #[error(
        "parameter {name}={value:?} is not a KMS key ARN; pass it like arn:aws:kms:us-east-1:123456789012:key/1234abcd-..."
    )]
    BadKmsKey { name: String, value: String },
    #[error(
        "parameter {name}={value:?} is not a CIDR block: {reason}; pass the network like 10.1.0.0/16 or 2600:1f18::/56"
    )]
    BadCidr {
        name: String,
        value: String,
        reason: String,
    },
    #[error(
        "EKS did not report a cluster security group for cluster {cluster} (resourcesVpcConfig.clusterSecurityGroupId), so the ports cannot be opened on it; check `aws eks describe-cluster --name {cluster}`, or leave out --param {param} and open them by hand"
    )]
    NoClusterSecurityGroup { cluster: String, param: String },
    #[error(
        "IAM role {arn} ({param}) does not exist; this profile adds policies to an existing role and never creates it: check the ARN"
    )]
    ExistingRoleMissing { arn: String, param: String },
    #[error(
        "IAM role {arn} is in account {role_account} but the AWS credentials are for account {caller_account}; use credentials for the role's account"
    )]
    ExistingRoleOtherAccount {
        arn: String,
        role_account: String,
        caller_account: String,
    },
    #[error(
        "EKS cluster {cluster} has no OIDC issuer, which IAM roles for service accounts need (EKS clusters since 1.13 have one): check --cluster"
    )]
    NoIssuer { cluster: String },
    #[error(
        "StorageClass {name} exists with {field} {live} but the profile wants {wanted}; Kubernetes cannot change that field: delete the StorageClass (`kubectl delete storageclass {name}`) and re-run connect"
    )]
    StorageClassImmutable {
        name: String,
        field: String,
        live: String,
        wanted: String,
    },
}
