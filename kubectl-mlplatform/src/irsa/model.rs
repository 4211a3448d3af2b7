//! What IRSA planning takes (the request, what preflight read) and gives (the plan).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::names::RoleName;
use super::trust::subject;
use crate::aws::RoleFacts;
use crate::common::Change;
use crate::steps::{ChangeRow, IamAction};

/// Everything `irsa create|delete` was asked for, resolved (cluster facts included), before I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IrsaRequest {
    pub(crate) cluster_name: String,
    pub(crate) cluster_arn: String,
    pub(crate) partition: String,
    pub(crate) account: String,
    /// `oidc.eks.REGION.amazonaws.com/id/ABC`.
    pub(crate) issuer_host_path: String,
    pub(crate) namespace: String,
    pub(crate) service_accounts: Vec<String>,
    pub(crate) role: RoleName,
    pub(crate) attach_policy_arns: Vec<String>,
    pub(crate) inline_policy: Option<Value>,
    /// Do not touch ServiceAccounts.
    pub(crate) role_only: bool,
    /// Extra tags for a new role (e.g. a profile's).
    pub(crate) extra_tags: Vec<(String, String)>,
}

impl IrsaRequest {
    pub(crate) fn role_arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, self.role.path, self.role.name
        )
    }
    pub(super) fn subjects(&self) -> Vec<String> {
        self.service_accounts
            .iter()
            .map(|sa| subject(&self.namespace, sa))
            .collect()
    }
}

/// What preflight read.
#[derive(Debug, Clone, Default)]
pub(crate) struct IrsaObserved {
    /// The IAM OIDC provider ARN for the issuer, if it exists.
    pub(crate) oidc_provider: Option<String>,
    pub(crate) role: Option<RoleFacts>,
    /// Whether the target namespace exists (None: not read, e.g. `--role-only`).
    pub(crate) namespace_exists: Option<bool>,
    /// Live ServiceAccounts by (namespace, name); a key with None was read and not found.
    pub(crate) service_accounts: BTreeMap<(String, String), Option<Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub(crate) enum IrsaAction {
    None,
    #[serde(rename_all = "camelCase")]
    TagRole {
        role: String,
        #[serde(serialize_with = "pairs_as_map")]
        tags: Vec<(String, String)>,
    },
    #[serde(rename_all = "camelCase")]
    UntagRole {
        role: String,
        keys: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    CreateServiceAccount {
        body: Value,
    },
    #[serde(rename_all = "camelCase")]
    PatchServiceAccount {
        namespace: String,
        name: String,
        patch: Value,
    },
    #[serde(rename_all = "camelCase")]
    DeleteServiceAccount {
        namespace: String,
        name: String,
    },
    /// An IAM write, rendered as `steps::IamAction` renders it (it carries its own `action`).
    #[serde(untagged)]
    Iam(IamAction),
}

fn pairs_as_map<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct IrsaStep {
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
    pub(crate) change: Change,
    pub(crate) action: IrsaAction,
}

impl IrsaStep {
    pub(super) fn iam(
        kind: &'static str,
        name: impl Into<String>,
        change: Change,
        iam: IamAction,
    ) -> Self {
        Self {
            kind,
            name: name.into(),
            namespace: None,
            change,
            action: if iam == IamAction::None {
                IrsaAction::None
            } else {
                IrsaAction::Iam(iam)
            },
        }
    }
}

/// The ordered writes (IAM first on create, ServiceAccounts first on delete) and what to print.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IrsaPlan {
    pub(crate) role_name: String,
    pub(crate) role_arn: String,
    pub(crate) namespace: String,
    pub(crate) service_accounts: Vec<String>,
    /// The trust policy as wanted (create) or found (delete).
    pub(crate) trust_policy: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) inline_policy: Option<Value>,
    pub(crate) attached_policy_arns: Vec<String>,
    pub(crate) steps: Vec<IrsaStep>,
    #[serde(skip)]
    pub(crate) warnings: Vec<String>,
}

impl IrsaPlan {
    pub(crate) fn changes(&self) -> Vec<ChangeRow> {
        self.steps
            .iter()
            .map(|s| ChangeRow {
                kind: s.kind.to_owned(),
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                change: s.change,
            })
            .collect()
    }
    pub(crate) fn has_writes(&self) -> bool {
        self.steps.iter().any(|s| s.action != IrsaAction::None)
    }
}
