//! What planning takes and gives: the user's resolved inputs, what preflight observed, and
//! the plan (its steps and the outputs vendors ask for).

use std::collections::BTreeMap;

use crate::vocabulary::MANAGED_BY_VALUE;
use serde::Serialize;
use serde_json::{Value, json};

use crate::access_entry::{AuthMode, ObservedEntry};
use crate::aws_auth::AwsAuth;
use crate::facts::PodIdentityFacts;
use crate::facts::{CallerIdentity, ClusterNetwork, RoleFacts, SecurityGroupRuleFacts};
use crate::objects::ObjectKey;
use crate::output::Summary;
use crate::pod_identity::Identity;
use crate::steps::{
    AccessEntryStep, AwsAuthStep, Direction, IamAction, IamStep, KubeStep, ManualStepOut, OidcStep,
    PodIdentityStep, SecurityGroupRuleStep, Step,
};
use crate::vocabulary::{TAG_MANAGED_BY, TAG_OIDC_CREATED_BY};

/// What the user asked for, resolved to values (flags and parameters), before any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectInputs {
    pub namespace: String,
    /// Profile parameters by name (`vendorAccount`, ...).
    pub params: BTreeMap<String, String>,
    /// `--external-id`; wins over what the existing role holds.
    pub external_id: Option<String>,
    /// Used only when neither `--external-id` nor the existing role gives one.
    pub generated_external_id: String,
    pub cluster_admin: bool,
    /// disconnect / namespace remove: also delete the namespace.
    pub delete_namespace: bool,
    /// aws-auth or an EKS access entry (`--auth-mode`).
    pub auth_mode: AuthMode,
    /// How the profile's workload roles reach pods: IRSA or EKS Pod Identity (`--identity`).
    pub identity: Identity,
    /// Point a ServiceAccount's association of another role at ours (`--replace-association`).
    pub replace_association: bool,
}

/// Everything preflight read. Absent entries in `objects` were not found.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub caller: CallerIdentity,
    pub role: Option<RoleFacts>,
    /// None: the aws-auth ConfigMap does not exist.
    pub aws_auth: Option<AwsAuth>,
    pub objects: BTreeMap<ObjectKey, Value>,
    /// Every namespace currently managed for this profile (from its label).
    pub profile_namespaces: Vec<String>,
    /// The IAM OIDC provider for the cluster's issuer, if it exists.
    pub oidc_provider: Option<OidcProviderFacts>,
    /// The issuer's thumbprint, when the provider is missing and the issuer could be reached.
    pub oidc_thumbprint: Option<String>,
    /// Other roles the profile touches (IRSA roles, existing roles), by role name; absent:
    /// not found.
    pub roles: BTreeMap<String, RoleFacts>,
    /// Names of roles whose trust names the OIDC provider (read by disconnect only).
    pub roles_trusting_provider: Vec<String>,
    /// Every StorageClass (read when the profile has one).
    pub storage_classes: Vec<Value>,
    pub network: Option<ClusterNetwork>,
    /// The rules of the cluster security group (read when the profile opens ports on it);
    /// None: not read.
    pub security_group_rules: Option<Vec<SecurityGroupRuleFacts>>,
    /// The role's EKS access entry (read when access entries are used).
    pub access_entry: Option<ObservedEntry>,
    /// EKS Pod Identity associations of the workload roles' ServiceAccounts and the agent
    /// add-on (read with `--identity pod-identity`, or when a role trusts Pod Identity).
    pub pod_identity: PodIdentityFacts,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OidcProviderFacts {
    pub arn: String,
    pub tags: BTreeMap<String, String>,
}

impl OidcProviderFacts {
    /// Made by connect for this cluster.
    pub(crate) fn is_ours(&self, cluster_arn: &str) -> bool {
        self.tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && self.tags.get(TAG_OIDC_CREATED_BY).map(String::as_str) == Some(cluster_arn)
    }
}

/// What vendors ask for, printed by connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    pub(crate) profile: String,
    pub(crate) cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub(crate) namespace: String,
    pub user_service_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_service_account: Option<String>,
}

/// The plan of connect, disconnect and `namespace add|remove`.
pub type Plan = crate::steps::Plan<Outputs>;

/// A connect-style plan while it is being built, by section; [`Sections::finish`] lays the
/// sections out as one step list (report order: OIDC provider, IAM, cluster access, security
/// group rules, objects).
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Sections {
    pub(super) outputs: Outputs,
    pub(super) iam: Vec<IamStep>,
    /// The cluster's IAM OIDC provider (created before, deleted after the IAM roles).
    pub(super) oidc: Option<OidcStep>,
    pub(super) aws_auth: Option<AwsAuthStep>,
    pub(super) access_entry: Option<AccessEntryStep>,
    /// Ingress rules on the cluster security group.
    pub(super) ec2: Vec<SecurityGroupRuleStep>,
    /// EKS Pod Identity associations (after IAM: EKS checks the role's trust).
    pub(super) pod_identity: Vec<PodIdentityStep>,
    pub(super) kube: Vec<KubeStep>,
    pub(super) manual_steps: Vec<ManualStepOut>,
    pub(super) warnings: Vec<String>,
}

impl Sections {
    pub(super) fn finish(self, direction: Direction) -> Plan {
        let steps = (self.oidc.into_iter().map(Step::Oidc))
            .chain(self.iam.into_iter().map(Step::Iam))
            .chain(self.aws_auth.into_iter().map(Step::AwsAuth))
            .chain(self.access_entry.into_iter().map(Step::AccessEntry))
            .chain(self.ec2.into_iter().map(Step::Ec2))
            .chain(self.pod_identity.into_iter().map(Step::PodIdentity))
            .chain(self.kube.into_iter().map(Step::Kube))
            .collect();
        let mut plan = Plan::new(self.outputs, steps, direction);
        plan.manual_steps = self.manual_steps;
        plan.warnings = self.warnings;
        plan
    }
}

impl Plan {
    /// The rendered objects and IAM documents (`--dry-run=client -o yaml`).
    pub fn rendered(&self) -> Value {
        let iam: Vec<Value> = self
            .iam_steps()
            .filter(|s| s.action != IamAction::None)
            .map(|s| serde_json::to_value(&s.action).unwrap_or(Value::Null))
            .collect();
        let objects: Vec<Value> = self.kube_steps().map(|s| s.desired.clone()).collect();
        let mut out = json!({
            "iam": iam,
            "awsAuth": self.aws_auth_step(),
            "objects": objects,
        });
        if let Some(oidc) = self.oidc_step() {
            out["oidcProvider"] = serde_json::to_value(oidc).unwrap_or(Value::Null);
        }
        if let Some(entry) = self.access_entry_step() {
            out["accessEntry"] = serde_json::to_value(entry).unwrap_or(Value::Null);
        }
        let rules: Vec<&SecurityGroupRuleStep> = self.security_group_steps().collect();
        if !rules.is_empty() {
            out["securityGroupRules"] = serde_json::to_value(rules).unwrap_or(Value::Null);
        }
        let associations: Vec<&PodIdentityStep> = self.pod_identity_steps().collect();
        if !associations.is_empty() {
            out["podIdentityAssociations"] =
                serde_json::to_value(associations).unwrap_or(Value::Null);
        }
        if !self.manual_steps.is_empty() {
            out["manualSteps"] = serde_json::to_value(&self.manual_steps).unwrap_or(Value::Null);
        }
        out
    }
}

impl Summary for Outputs {
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields: Vec<(&str, String)> = Vec::new();
        if let Some(arn) = &self.role_arn {
            fields.push(("roleArn", arn.clone()));
        }
        if let Some(id) = &self.external_id {
            fields.push(("externalId", id.clone()));
        }
        if !self.namespace.is_empty() {
            fields.push(("namespace", self.namespace.clone()));
        }
        if !self.user_service_account.is_empty() {
            fields.push(("userServiceAccount", self.user_service_account.clone()));
        }
        if let Some(sa) = &self.system_service_account {
            fields.push(("systemServiceAccount", sa.clone()));
        }
        fields
    }
    fn rendered(plan: &Plan) -> Value {
        plan.rendered()
    }
}

/// The profile's other managed namespaces (all but `namespace`).
pub(super) fn others_remaining(observed: &Observed, namespace: &str) -> Vec<String> {
    observed
        .profile_namespaces
        .iter()
        .filter(|n| n.as_str() != namespace)
        .cloned()
        .collect()
}
