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
}
