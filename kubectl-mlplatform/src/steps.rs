//! The steps plans are made of, shared by every planner (connect/disconnect/namespace in
//! `plan`, `irsa`): IAM writes, aws-auth edits, access entries, the OIDC provider, Kubernetes
//! writes, manual steps, and the change-report row. Pure data (no I/O, no client types), below
//! every planner, so planners depend on it and never on each other for these types.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::access_entry::AccessEntryAction;
use crate::aws_auth::Mapping;
use crate::common::Change;
use crate::objects::ObjectKey;

/// IAM's limit on role names.
pub(crate) const MAX_ROLE_NAME: usize = 64;

/// IAM role names are at most 64 characters: longer names keep a prefix and get a hash suffix
/// so that two long cluster names never collide.
pub(crate) fn shorten_role_name(name: &str) -> String {
    if name.len() <= MAX_ROLE_NAME {
        return name.to_owned();
    }
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    let suffix = &hash[..8];
    let mut prefix: String = name
        .chars()
        .take(MAX_ROLE_NAME - 1 - suffix.len())
        .collect();
    while prefix.ends_with(['-', '_', '.']) {
        prefix.pop();
    }
    format!("{prefix}-{suffix}")
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum IamAction {
    None,
    #[serde(rename_all = "camelCase")]
    CreateRole {
        role: String,
        path: String,
        trust_policy: Value,
        description: String,
        #[serde(serialize_with = "tags_as_map")]
        tags: Vec<(String, String)>,
    },
    #[serde(rename_all = "camelCase")]
    UpdateTrust {
        role: String,
        trust_policy: Value,
    },
    #[serde(rename_all = "camelCase")]
    PutInlinePolicy {
        role: String,
        policy_name: String,
        document: Value,
    },
    #[serde(rename_all = "camelCase")]
    DeleteInlinePolicy {
        role: String,
        policy_name: String,
    },
    #[serde(rename_all = "camelCase")]
    AttachManagedPolicy {
        role: String,
        policy_arn: String,
    },
    #[serde(rename_all = "camelCase")]
    DetachManagedPolicy {
        role: String,
        policy_arn: String,
    },
    #[serde(rename_all = "camelCase")]
    DeleteRole {
        role: String,
    },
}

fn tags_as_map<S: serde::Serializer>(tags: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(tags.iter().map(|(k, v)| (k, v)))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IamStep {
    pub(crate) kind: &'static str,
    pub name: String,
    pub(crate) change: Change,
    pub action: IamAction,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum AwsAuthAction {
    None,
    Upsert { mapping: Mapping },
    Remove { arn: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AwsAuthStep {
    pub arn: String,
    pub(crate) change: Change,
    pub action: AwsAuthAction,
    /// The entry as connect wants it (also when unchanged); None for removals.
    #[serde(skip)]
    pub wanted: Option<Mapping>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KubeAction {
    None,
    Create(Value),
    MergePatch(Value),
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KubeStep {
    pub key: ObjectKey,
    /// The object as wanted (for display); for deletions, what was found.
    pub desired: Value,
    pub change: Change,
    pub action: KubeAction,
}

/// One row of the change report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRow {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
    pub change: Change,
}

/// An EKS access entry for the role (instead of an aws-auth mapping).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessEntryStep {
    pub(crate) principal_arn: String,
    pub username: String,
    pub(crate) groups: Vec<String>,
    pub namespaces: Vec<String>,
    pub change: Change,
    pub actions: Vec<AccessEntryAction>,
}

/// Something the user must do by hand, with the exact command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManualStepOut {
    pub(crate) name: String,
    pub(crate) description: String,
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum OidcAction {
    None,
    #[serde(rename_all = "camelCase")]
    Create {
        url: String,
        client_ids: Vec<String>,
        thumbprints: Vec<String>,
        #[serde(serialize_with = "tags_as_map")]
        tags: Vec<(String, String)>,
    },
    #[serde(rename_all = "camelCase")]
    Delete {
        arn: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcStep {
    /// `oidc.eks.REGION.amazonaws.com/id/ID`.
    pub(crate) issuer: String,
    pub provider_arn: String,
    pub change: Change,
    pub action: OidcAction,
}
