//! The steps plans are made of, shared by every planner (connect/disconnect/namespace in
//! `plan`, `irsa`): IAM writes, aws-auth edits, access entries, the OIDC provider, security
//! group rules, EKS Pod Identity associations, Kubernetes writes, manual steps, and the
//! change-report row. Pure data (no I/O, no client types), below
//! every planner, so planners depend on it and never on each other for these types.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::access_entry::AccessEntryAction;
use crate::aws_auth::{Mapping, MappingKind};
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
    #[serde(rename_all = "camelCase")]
    TagRole {
        role: String,
        #[serde(serialize_with = "tags_as_map")]
        tags: Vec<(String, String)>,
    },
    #[serde(rename_all = "camelCase")]
    UntagRole {
        role: String,
        keys: Vec<String>,
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
    Upsert {
        /// Role for everything connect maps; `aws-auth add` also maps users.
        #[serde(skip)]
        kind: MappingKind,
        mapping: Mapping,
    },
    Remove {
        #[serde(skip)]
        kind: MappingKind,
        arn: String,
    },
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

/// How a Kubernetes object is written. The plugin's objects are created whole and patched
/// with a JSON merge patch of only the fields it owns (the live object was read and compared
/// first, so the patch is exactly the difference and never clears others' fields); the
/// webhook install's objects are server-side applied with one field manager, as they are
/// wholly ours and re-rendered each release (fields dropped from the manifests must go).
#[derive(Debug, Clone, PartialEq)]
pub enum KubeAction {
    None,
    Create(Value),
    MergePatch(Value),
    /// Server-side apply of the whole object with the plugin's field manager.
    Apply(Value),
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

impl KubeStep {
    /// A server-side apply of a whole object of ours: created when absent, nothing when the
    /// live object already says everything `object` says (`live_matches`), else updated.
    pub(crate) fn apply(key: ObjectKey, object: &Value, live_matches: Option<bool>) -> Self {
        let (change, action) = match live_matches {
            None => (Change::Created, KubeAction::Apply(object.clone())),
            Some(true) => (Change::Unchanged, KubeAction::None),
            Some(false) => (Change::Updated, KubeAction::Apply(object.clone())),
        };
        Self {
            key,
            desired: object.clone(),
            change,
            action,
        }
    }
}

/// Waits until a Deployment has its replicas ready (webhook install registers the webhook
/// configurations only after, so a broken rollout never blocks the cluster).
#[derive(Debug, Clone, PartialEq)]
pub struct WaitStep {
    pub(crate) namespace: String,
    pub(crate) deployment: String,
    pub(crate) timeout: std::time::Duration,
}

/// One step of a plan. Every command's plan is an ordered list of these; one executor
/// (`crate::execute`) carries them out and one report (`crate::output`) shows them.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Oidc(OidcStep),
    Iam(IamStep),
    AwsAuth(AwsAuthStep),
    AccessEntry(AccessEntryStep),
    /// The EKS cluster's authentication mode (UpdateClusterConfig, one-way).
    ClusterConfig(ClusterConfigStep),
    /// An ingress rule on a security group (the cluster security group).
    Ec2(SecurityGroupRuleStep),
    /// An EKS Pod Identity association (namespace + ServiceAccount → IAM role).
    PodIdentity(PodIdentityStep),
    Kube(KubeStep),
    Wait(WaitStep),
}

impl Step {
    /// The report row (none for waits, which change nothing).
    pub fn row(&self) -> Option<ChangeRow> {
        let row = |kind: &str, name: &str, namespace: Option<&String>, change| ChangeRow {
            kind: kind.to_owned(),
            name: name.to_owned(),
            namespace: namespace.cloned(),
            change,
        };
        Some(match self {
            Self::Oidc(s) => row("IAMOIDCProvider", &s.issuer, None, s.change),
            Self::Iam(s) => row(s.kind, &s.name, None, s.change),
            Self::AwsAuth(s) => row("AwsAuthMapping", &s.arn, None, s.change),
            Self::AccessEntry(s) => row("AccessEntry", &s.principal_arn, None, s.change),
            Self::ClusterConfig(s) => row("AuthenticationMode", &s.row_name(), None, s.change),
            Self::Ec2(s) => row("SecurityGroupRule", &s.rule_name(), None, s.change),
            Self::PodIdentity(s) => row(
                "PodIdentityAssociation",
                &s.service_account,
                Some(&s.namespace),
                s.change,
            ),
            Self::Kube(s) => row(
                s.key.kind.as_str(),
                &s.key.name,
                s.key.namespace.as_ref(),
                s.change,
            ),
            Self::Wait(_) => return None,
        })
    }

    /// Whether executing the step sends anything.
    pub(crate) fn sends(&self) -> bool {
        match self {
            Self::Oidc(s) => s.action != OidcAction::None,
            Self::Iam(s) => s.action != IamAction::None,
            Self::AwsAuth(s) => s.action != AwsAuthAction::None,
            Self::AccessEntry(s) => !s.actions.is_empty(),
            Self::ClusterConfig(s) => s.action != ClusterConfigAction::None,
            Self::Ec2(s) => s.action != Ec2Action::None,
            Self::PodIdentity(s) => s.action != PodIdentityAction::None,
            Self::Kube(s) => s.action != KubeAction::None,
            Self::Wait(_) => true,
        }
    }

    /// Whether the step goes to AWS (IAM, EKS, EC2), which has no server-side dry run.
    pub(crate) fn is_aws(&self) -> bool {
        matches!(
            self,
            Self::Oidc(_)
                | Self::Iam(_)
                | Self::AccessEntry(_)
                | Self::ClusterConfig(_)
                | Self::Ec2(_)
                | Self::PodIdentity(_)
        )
    }
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
    /// The EKS cluster the entry belongs to.
    #[serde(skip)]
    pub(crate) cluster: String,
    pub(crate) principal_arn: String,
    pub username: String,
    pub(crate) groups: Vec<String>,
    pub namespaces: Vec<String>,
    pub change: Change,
    pub actions: Vec<AccessEntryAction>,
}

/// What a cluster configuration step sends to EKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum ClusterConfigAction {
    None,
    /// UpdateClusterConfig with `accessConfig.authenticationMode`, then waits for the update.
    #[serde(rename_all = "camelCase")]
    SetAuthenticationMode {
        mode: String,
    },
}

/// The cluster's authentication mode, from `from` to `to` (CONFIG_MAP → API_AND_CONFIG_MAP →
/// API; EKS never goes back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfigStep {
    pub cluster: String,
    pub from: String,
    pub to: String,
    pub change: Change,
    pub action: ClusterConfigAction,
}

impl ClusterConfigStep {
    /// `prod (CONFIG_MAP -> API_AND_CONFIG_MAP)`: the report row's name.
    pub(crate) fn row_name(&self) -> String {
        if self.from == self.to {
            format!("{} ({})", self.cluster, self.to)
        } else {
            format!("{} ({} -> {})", self.cluster, self.from, self.to)
        }
    }
}

/// What an ingress rule step sends to EC2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Ec2Action {
    None,
    /// AuthorizeSecurityGroupIngress with the step's port, CIDR block and description.
    AuthorizeIngress,
    /// RevokeSecurityGroupIngress of exactly this rule.
    #[serde(rename_all = "camelCase")]
    RevokeIngress {
        rule_id: String,
    },
}

/// TCP `port` from `cidr` on security group `group_id`, described as made by us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupRuleStep {
    pub group_id: String,
    pub port: u16,
    /// An IPv4 or IPv6 CIDR block, canonical (`crate::security_group::Cidr`).
    pub cidr: String,
    pub description: String,
    pub change: Change,
    pub action: Ec2Action,
}

impl SecurityGroupRuleStep {
    /// `sg-0abc tcp/443 from 10.1.0.0/16`: the report row's name.
    pub(crate) fn rule_name(&self) -> String {
        format!("{} tcp/{} from {}", self.group_id, self.port, self.cidr)
    }
}

/// What a Pod Identity association step sends to EKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum PodIdentityAction {
    None,
    /// CreatePodIdentityAssociation with the step's role, tagged as ours.
    #[serde(rename_all = "camelCase")]
    Create {
        #[serde(serialize_with = "tags_as_map")]
        tags: Vec<(String, String)>,
    },
    /// UpdatePodIdentityAssociation to the step's role (`--replace-association`), then our tags.
    #[serde(rename_all = "camelCase")]
    Update {
        association_id: String,
        association_arn: String,
        previous_role_arn: String,
        #[serde(serialize_with = "tags_as_map")]
        tags: Vec<(String, String)>,
    },
    /// DeletePodIdentityAssociation.
    #[serde(rename_all = "camelCase")]
    Delete {
        association_id: String,
    },
}

/// The EKS Pod Identity association of one ServiceAccount with a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentityStep {
    /// The EKS cluster the association belongs to.
    pub cluster: String,
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    pub change: Change,
    pub action: PodIdentityAction,
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

/// Create (AWS first, then the cluster) or teardown (the cluster first, then AWS): the order
/// the executor runs a plan's steps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Create,
    Teardown,
}

/// Every command's plan: its steps in report order, the batches the executor runs them in,
/// and what the command prints besides the change rows (`O`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan<O> {
    pub outputs: O,
    pub steps: Vec<Step>,
    /// Indices into `steps`: lanes (run concurrently) of batches (run one after the other) of
    /// steps (run concurrently); see `crate::schedule`.
    pub(crate) schedule: Vec<Vec<Vec<usize>>>,
    pub manual_steps: Vec<ManualStepOut>,
    /// For stderr: risky choices (system:masters), things kept on purpose.
    pub warnings: Vec<String>,
}

impl<O> Plan<O> {
    pub fn changes(&self) -> Vec<ChangeRow> {
        self.steps.iter().filter_map(Step::row).collect()
    }

    pub fn has_writes(&self) -> bool {
        self.changes().iter().any(|c| c.change.is_write())
    }

    pub fn iam_steps(&self) -> impl Iterator<Item = &IamStep> {
        self.steps.iter().filter_map(|s| match s {
            Step::Iam(s) => Some(s),
            _ => None,
        })
    }

    pub fn kube_steps(&self) -> impl Iterator<Item = &KubeStep> {
        self.steps.iter().filter_map(|s| match s {
            Step::Kube(s) => Some(s),
            _ => None,
        })
    }

    pub fn oidc_step(&self) -> Option<&OidcStep> {
        self.steps.iter().find_map(|s| match s {
            Step::Oidc(s) => Some(s),
            _ => None,
        })
    }

    pub fn aws_auth_step(&self) -> Option<&AwsAuthStep> {
        self.steps.iter().find_map(|s| match s {
            Step::AwsAuth(s) => Some(s),
            _ => None,
        })
    }

    pub fn security_group_steps(&self) -> impl Iterator<Item = &SecurityGroupRuleStep> {
        self.steps.iter().filter_map(|s| match s {
            Step::Ec2(s) => Some(s),
            _ => None,
        })
    }

    pub fn pod_identity_steps(&self) -> impl Iterator<Item = &PodIdentityStep> {
        self.steps.iter().filter_map(|s| match s {
            Step::PodIdentity(s) => Some(s),
            _ => None,
        })
    }

    pub fn access_entry_step(&self) -> Option<&AccessEntryStep> {
        self.steps.iter().find_map(|s| match s {
            Step::AccessEntry(s) => Some(s),
            _ => None,
        })
    }
}
