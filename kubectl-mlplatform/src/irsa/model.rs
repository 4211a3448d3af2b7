//! What IRSA planning takes (the request, what preflight read) and gives (the plan).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::names::RoleName;
use super::trust::subject;
use crate::common::Change;
use crate::facts::{PodIdentityFacts, RoleFacts, ServiceAccountKey};
use crate::objects::{Kind, ObjectKey};
use crate::output::Summary;
use crate::pod_identity::Identity;
use crate::steps::{IamAction, IamStep, KubeAction, KubeStep, Plan, PodIdentityAction, Step};

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
    /// IRSA (OIDC trust, annotation) or EKS Pod Identity (service trust, associations).
    pub(crate) identity: Identity,
    /// Point an existing association of another role at this one (`--replace-association`).
    pub(crate) replace_association: bool,
}

impl IrsaRequest {
    pub(crate) fn role_arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, self.role.path, self.role.name
        )
    }
    /// The ServiceAccounts as (namespace, name).
    pub(crate) fn subject_keys(&self) -> BTreeSet<ServiceAccountKey> {
        self.service_accounts
            .iter()
            .map(|sa| (self.namespace.clone(), sa.clone()))
            .collect()
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
    /// EKS Pod Identity associations of the ServiceAccounts (read with `--identity
    /// pod-identity`, or when the role's trust has a Pod Identity statement).
    pub(crate) pod_identity: PodIdentityFacts,
}

/// What `irsa create|delete` print besides the change rows.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IrsaOutputs {
    pub(crate) role_arn: String,
    pub(crate) role_name: String,
    pub(crate) namespace: String,
    pub(crate) service_accounts: Vec<String>,
    /// The trust policy as wanted (create) or found (delete).
    #[serde(skip)]
    pub(crate) trust_policy: Value,
    #[serde(skip)]
    pub(crate) inline_policy: Option<Value>,
    #[serde(skip)]
    pub(crate) attached_policy_arns: Vec<String>,
}

/// The ordered writes (IAM first on create, ServiceAccounts first on delete) and what to print.
pub(crate) type IrsaPlan = Plan<IrsaOutputs>;

pub(super) fn iam_step(
    kind: &'static str,
    name: impl Into<String>,
    change: Change,
    action: IamAction,
) -> Step {
    Step::Iam(IamStep {
        kind,
        name: name.into(),
        change,
        action,
    })
}

pub(super) fn sa_object_key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::ServiceAccount,
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// A ServiceAccount step; `shown` is what a dry run shows (the body, the patch, or nothing).
pub(super) fn sa_step(namespace: &str, name: &str, change: Change, action: KubeAction) -> Step {
    let desired = match &action {
        KubeAction::Create(body) | KubeAction::MergePatch(body) | KubeAction::Apply(body) => {
            body.clone()
        }
        KubeAction::None | KubeAction::Delete => Value::Null,
    };
    Step::Kube(KubeStep {
        key: sa_object_key(namespace, name),
        desired,
        change,
        action,
    })
}

/// One write as `-o yaml` has always shown it: the row, and the action with its documents.
pub(crate) fn rendered_write(step: &Step) -> Option<Value> {
    let row = step.row()?;
    let action = match step {
        Step::Iam(s) => serde_json::to_value(&s.action).unwrap_or(Value::Null),
        Step::Kube(s) => {
            let (namespace, name) = (s.key.namespace.clone().unwrap_or_default(), &s.key.name);
            match &s.action {
                KubeAction::Create(body) => json!({"action": "createServiceAccount", "body": body}),
                KubeAction::MergePatch(patch) | KubeAction::Apply(patch) => json!({
                    "action": "patchServiceAccount", "namespace": namespace, "name": name, "patch": patch,
                }),
                KubeAction::Delete => json!({
                    "action": "deleteServiceAccount", "namespace": namespace, "name": name,
                }),
                KubeAction::None => return None,
            }
        }
        Step::PodIdentity(s) => {
            let verb = match &s.action {
                PodIdentityAction::None => return None,
                PodIdentityAction::Create { .. } => "createPodIdentityAssociation",
                PodIdentityAction::Update { .. } => "updatePodIdentityAssociation",
                PodIdentityAction::Delete { .. } => "deletePodIdentityAssociation",
            };
            let mut action = serde_json::to_value(&s.action).unwrap_or(Value::Null);
            action["action"] = json!(verb);
            action["clusterName"] = json!(s.cluster);
            action["namespace"] = json!(s.namespace);
            action["serviceAccount"] = json!(s.service_account);
            action["roleArn"] = json!(s.role_arn);
            action
        }
        _ => return None,
    };
    let mut out = serde_json::to_value(row).ok()?;
    out["action"] = action;
    Some(out)
}

impl Summary for IrsaOutputs {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("roleArn", self.role_arn.clone()),
            (
                "serviceAccounts",
                self.service_accounts
                    .iter()
                    .map(|sa| format!("{}/{sa}", self.namespace))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ]
    }
    fn rendered(plan: &Plan<Self>) -> Value {
        let writes: Vec<Value> = plan
            .steps
            .iter()
            .filter(|s| s.sends())
            .filter_map(rendered_write)
            .collect();
        json!({
            "trustPolicy": plan.outputs.trust_policy,
            "inlinePolicy": plan.outputs.inline_policy,
            "attachedPolicyArns": plan.outputs.attached_policy_arns,
            "writes": writes,
        })
    }
}
