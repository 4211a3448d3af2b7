//! Why an IRSA request is refused.

use crate::vocabulary::{TAG_CLUSTER, TAG_MANAGED_BY, TAG_ROLE_KIND};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IrsaError {
    #[error(
        "--role-name {input:?} is not valid: {reason}; use NAME or PATH/NAME with letters, digits and +=,.@_- (name at most 64 characters)"
    )]
    BadRoleName { input: String, reason: String },
    #[error(
        "--service-account {0:?} is not a valid ServiceAccount name (lowercase letters, digits, '-' and '.', at most 253)"
    )]
    BadServiceAccount(String),
    #[error("no --service-account given; pass --service-account NAME")]
    NoServiceAccount,
    #[error(
        "--attach-policy-arn {input:?} is not a managed policy ARN: {reason}; use e.g. arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
    )]
    BadPolicyArn { input: String, reason: String },
    #[error("inline policy {file}: {reason}; fix the file (an IAM policy document in JSON)")]
    BadInlinePolicy { file: String, reason: String },
    #[error(
        "EKS cluster {cluster} has no OIDC issuer; IRSA needs one (EKS clusters since 1.13 have it): check --cluster"
    )]
    NoIssuer { cluster: String },
    #[error(
        "no IAM OIDC provider for cluster {cluster}'s issuer {issuer}; run `kubectl mlplatform oidc associate --cluster {cluster}` first"
    )]
    NoOidcProvider { cluster: String, issuer: String },
    #[error(
        "IAM role {role} exists but is not an IRSA role made by kubectl-mlplatform for cluster {cluster} (tags {TAG_MANAGED_BY}, {TAG_CLUSTER}, {TAG_ROLE_KIND}); refusing to touch it: pick another --role-name or delete the role"
    )]
    RoleNotOurs { role: String, cluster: String },
    #[error(
        "IAM role {role} exists under path {existing} but {wanted} was asked for; IAM cannot move a role: delete it first (`kubectl mlplatform irsa delete`) or use --role-name {existing_trimmed}{role}"
    )]
    RolePathDiffers {
        role: String,
        existing: String,
        existing_trimmed: String,
        wanted: String,
    },
    #[error("namespace {0} does not exist; create it first (`kubectl create namespace {0}`)")]
    NamespaceMissing(String),
    #[error(
        "--service-account {given} is in namespace {other}, not in {namespace} (-n); one command works in one namespace: pass -n {other}"
    )]
    OtherNamespace {
        given: String,
        other: String,
        namespace: String,
    },
    #[error("{0}")]
    PodIdentity(#[from] crate::pod_identity::PodIdentityError),
    #[error(
        "--role-arn {input:?} is not an IAM role ARN: {reason}; pass it like arn:aws:iam::123456789012:role/NAME"
    )]
    BadRoleArn { input: String, reason: String },
    #[error(
        "--role-arn {given} does not name the IAM role {actual} of that name in the cluster's account; check the account and path"
    )]
    RoleArnMismatch { given: String, actual: String },
    #[error(
        "IAM role {0} does not exist; nothing was written; check --role-name, --role-arn or --service-account"
    )]
    RoleMissing(String),
    #[error(
        "IAM role {role} was not made by kubectl-mlplatform for cluster {cluster} (tag {TAG_MANAGED_BY}, {TAG_CLUSTER}); nothing was written; to migrate a role made elsewhere, name it with --role-arn ARN"
    )]
    MigrateRoleNotOurs { role: String, cluster: String },
    #[error(
        "IAM role {role} trusts no ServiceAccount of cluster {cluster} by name (neither through the cluster's OIDC provider nor EKS Pod Identity); nothing to migrate"
    )]
    NothingToMigrate { role: String, cluster: String },
    #[error(
        "ServiceAccount {service_account} is not named by IAM role {role}'s trust; nothing was written; leave out --service-account {service_account} or name the role it uses"
    )]
    NotInTrust {
        service_account: String,
        role: String,
    },
}
