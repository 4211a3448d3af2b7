//! Pure planning: given a profile, the user's inputs and everything preflight read, compute
//! every object's desired state and what must change. No I/O here; `apply` only carries out
//! the writes a plan lists, so "plan says unchanged" means "no request is sent".

use std::collections::{BTreeMap, BTreeSet};

use mlplatform_namespace_policy::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_LABEL, POLICY_ANNOTATIONS, PROFILE_ANNOTATION,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::arn::{is_account_id, parse_iam_arn};
use crate::aws::{CallerIdentity, ClusterFacts, RoleFacts, policy_documents_equal};
use crate::aws_auth::{AwsAuth, Mapping, MappingKind, SYSTEM_MASTERS};
use crate::bundle::{Bundle, render_bundle};
use crate::common::Change;
use crate::objects::{KubeObject, ObjectKey, PROFILE_LABEL, covers, is_ours, merge_patch_for};
use crate::profile::{ParameterType, Profile, TemplateError, Vars};

/// Tag keys that mark an IAM role as made by us for one profile and cluster.
pub const TAG_PROFILE: &str = "mlplatform.io/profile";
pub const TAG_CLUSTER: &str = "mlplatform.io/cluster";
pub const TAG_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// IAM's limit on role names.
pub const MAX_ROLE_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
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
        "namespace {namespace} is not managed for profile {profile}; nothing to remove (see `kubectl mlplatform namespace list`)"
    )]
    NamespaceNotManaged { namespace: String, profile: String },
    #[error(
        "EKS cluster {cluster} uses authentication mode API, which ignores the aws-auth ConfigMap; switch it to API_AND_CONFIG_MAP (`aws eks update-cluster-config --name {cluster} --access-config authenticationMode=API_AND_CONFIG_MAP`) or map the role with an access entry"
    )]
    AccessEntriesOnly { cluster: String },
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("{0}")]
    Arn(String),
}

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
}

/// Everything preflight read. Absent entries in `objects` were not found.
#[derive(Debug, Clone)]
pub struct Observed {
    pub caller: CallerIdentity,
    pub role: Option<RoleFacts>,
    /// None: the aws-auth ConfigMap does not exist.
    pub aws_auth: Option<AwsAuth>,
    pub objects: BTreeMap<ObjectKey, Value>,
    /// Every namespace currently managed for this profile (from its label).
    pub profile_namespaces: Vec<String>,
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
    pub kind: &'static str,
    pub name: String,
    pub change: Change,
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
    pub change: Change,
    pub action: AwsAuthAction,
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

/// What vendors ask for, printed by connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    pub profile: String,
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub namespace: String,
    pub user_service_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_service_account: Option<String>,
}

/// One row of the change report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRow {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub outputs: Outputs,
    pub iam: Vec<IamStep>,
    pub aws_auth: Option<AwsAuthStep>,
    pub kube: Vec<KubeStep>,
    /// For stderr: risky choices (system:masters), things kept on purpose.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> Vec<ChangeRow> {
        let iam = self.iam.iter().map(|s| ChangeRow {
            kind: s.kind.to_owned(),
            name: s.name.clone(),
            namespace: None,
            change: s.change,
        });
        let auth = self.aws_auth.iter().map(|s| ChangeRow {
            kind: "AwsAuthMapping".to_owned(),
            name: s.arn.clone(),
            namespace: None,
            change: s.change,
        });
        let kube = self.kube.iter().map(|s| ChangeRow {
            kind: s.key.kind.as_str().to_owned(),
            name: s.key.name.clone(),
            namespace: s.key.namespace.clone(),
            change: s.change,
        });
        iam.chain(auth).chain(kube).collect()
    }

    pub fn has_writes(&self) -> bool {
        self.changes().iter().any(|c| c.change.is_write())
    }

    /// The rendered objects and IAM documents (`--dry-run=client -o yaml`).
    pub fn rendered(&self) -> Value {
        let iam: Vec<Value> = self
            .iam
            .iter()
            .filter(|s| s.action != IamAction::None)
            .map(|s| serde_json::to_value(&s.action).unwrap_or(Value::Null))
            .collect();
        let objects: Vec<Value> = self.kube.iter().map(|s| s.desired.clone()).collect();
        json!({
            "iam": iam,
            "awsAuth": self.aws_auth,
            "objects": objects,
        })
    }
}

/// Checks and resolves the profile's parameters from `--param`s and dedicated flags; `strict`:
/// required ones must be given (connect, doctor; teardown needs fewer).
pub fn resolve_params(
    profile: &Profile,
    given: &BTreeMap<String, String>,
    strict: bool,
) -> Result<BTreeMap<String, String>, PlanError> {
    let known: BTreeSet<&str> = profile
        .spec
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    if let Some(name) = given.keys().find(|k| !known.contains(k.as_str())) {
        return Err(PlanError::UnknownParameter {
            name: name.clone(),
            profile: profile.name().to_owned(),
            known: if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.into_iter().collect::<Vec<_>>().join(", ")
            },
        });
    }
    let mut out = BTreeMap::new();
    for p in &profile.spec.parameters {
        let flag = p
            .flag
            .as_ref()
            .map(|f| format!("--{f}"))
            .unwrap_or_else(|| format!("--param {}=VALUE", p.name));
        let value = given
            .get(&p.name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| p.default.clone());
        let Some(value) = value else {
            if p.required && strict {
                let what = if p.description.is_empty() {
                    p.name.clone()
                } else {
                    format!("{} ({})", p.name, p.description)
                };
                return Err(PlanError::MissingParameter { what, flag });
            }
            continue;
        };
        match p.kind {
            ParameterType::String => {}
            ParameterType::AccountId if !is_account_id(&value) => {
                return Err(PlanError::BadAccount {
                    name: p.name.clone(),
                    value,
                    flag,
                });
            }
            ParameterType::AccountId => {}
            ParameterType::RoleArn => match parse_iam_arn(&value) {
                Ok(arn) if arn.resource_type == "role" => {}
                Ok(_) => {
                    return Err(PlanError::BadRoleArn {
                        name: p.name.clone(),
                        value,
                        reason: "not a role".to_owned(),
                    });
                }
                Err(e) => {
                    return Err(PlanError::BadRoleArn {
                        name: p.name.clone(),
                        value,
                        reason: e.to_string(),
                    });
                }
            },
        }
        out.insert(p.name.clone(), value);
    }
    Ok(out)
}

/// IAM accepts external IDs of 2-1224 characters from this set.
pub fn valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-".contains(c))
}

/// Refuses profiles that need step kinds this version cannot carry out (before any I/O).
pub fn check_implemented(profile: &Profile) -> Result<(), PlanError> {
    let missing = profile.unimplemented_steps();
    if missing.is_empty() {
        return Ok(());
    }
    Err(PlanError::UnimplementedSteps {
        profile: profile.name().to_owned(),
        steps: missing
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Placeholder values for a cluster.
pub fn vars_for(
    profile: &Profile,
    cluster: &ClusterFacts,
    params: &BTreeMap<String, String>,
    namespace: &str,
) -> Vars {
    let partition = cluster
        .arn
        .split(':')
        .nth(1)
        .filter(|p| !p.is_empty())
        .unwrap_or("aws");
    let mut vars = Vars::new();
    vars.set("profile", profile.name())
        .set("cluster", cluster.name.as_str())
        .set("clusterArn", cluster.arn.as_str())
        .set("region", cluster.region.as_str())
        .set("account", cluster.account.as_str())
        .set("partition", partition)
        .set("namespace", namespace);
    for (k, v) in params {
        vars.set(k, v.as_str());
    }
    vars
}

/// IAM role names are at most 64 characters: longer names keep a prefix and get a hash suffix
/// so that two long cluster names never collide.
pub fn shorten_role_name(name: &str) -> String {
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

/// Cross-account trust: the vendor's account root, guarded by the external ID.
pub fn vendor_trust_policy(
    partition: &str,
    vendor_account: &str,
    external_id: Option<&str>,
) -> Value {
    let mut statement = json!({
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:{partition}:iam::{vendor_account}:root")},
        "Action": "sts:AssumeRole",
    });
    if let Some(id) = external_id {
        statement["Condition"] = json!({"StringEquals": {"sts:ExternalId": id}});
    }
    json!({"Version": "2012-10-17", "Statement": [statement]})
}

/// The external ID an existing trust policy requires, if exactly one.
pub fn external_id_from_trust(trust: &Value) -> Option<String> {
    let statements: Vec<&Value> = match &trust["Statement"] {
        Value::Array(items) => items.iter().collect(),
        one @ Value::Object(_) => vec![one],
        _ => return None,
    };
    statements.into_iter().find_map(
        |s| match &s["Condition"]["StringEquals"]["sts:ExternalId"] {
            Value::String(id) => Some(id.clone()),
            Value::Array(ids) if ids.len() == 1 => ids[0].as_str().map(str::to_owned),
            _ => None,
        },
    )
}

fn role_is_ours(role: &RoleFacts, profile: &str, cluster_arn: &str) -> bool {
    role.tags.get(TAG_PROFILE).map(String::as_str) == Some(profile)
        && role.tags.get(TAG_CLUSTER).map(String::as_str) == Some(cluster_arn)
}

struct VendorRolePlan {
    role_arn: String,
    external_id: Option<String>,
    steps: Vec<IamStep>,
}

fn plan_vendor_role(
    profile: &Profile,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
) -> Result<Option<VendorRolePlan>, PlanError> {
    let Some(spec) = &profile.spec.vendor_role else {
        return Ok(None);
    };
    let name = shorten_role_name(&vars.render("spec.vendorRole.name", &spec.name)?);
    let vendor_account = vars.render("spec.vendorRole.trustAccount", &spec.trust_account)?;
    if !is_account_id(&vendor_account) {
        return Err(PlanError::BadAccount {
            name: "spec.vendorRole.trustAccount".to_owned(),
            value: vendor_account,
            flag: "--vendor-account".to_owned(),
        });
    }
    let partition = vars.get("partition").unwrap_or("aws");
    let existing = observed.role.as_ref();
    if let Some(role) = existing
        && !role_is_ours(role, profile.name(), &cluster.arn)
    {
        return Err(PlanError::RoleNotOurs {
            role: name,
            profile: profile.name().to_owned(),
        });
    }
    let external_id = spec.external_id.then(|| {
        inputs
            .external_id
            .clone()
            .or_else(|| existing.and_then(|r| external_id_from_trust(&r.trust_policy)))
            .unwrap_or_else(|| inputs.generated_external_id.clone())
    });
    let trust = vendor_trust_policy(partition, &vendor_account, external_id.as_deref());
    let description = vars.render("spec.vendorRole.description", &spec.description)?;
    let mut policies = Vec::new();
    for (i, p) in spec.inline_policies.iter().enumerate() {
        let field = format!("spec.vendorRole.inlinePolicies[{i}]");
        policies.push((
            vars.render(&field, &p.name)?,
            vars.render_json(&field, &p.document)?,
        ));
    }
    let mut managed = Vec::new();
    for (i, arn) in spec.managed_policy_arns.iter().enumerate() {
        managed.push(vars.render(&format!("spec.vendorRole.managedPolicyArns[{i}]"), arn)?);
    }

    let mut steps = Vec::new();
    let role_arn = match existing {
        None => {
            steps.push(IamStep {
                kind: "IAMRole",
                name: name.clone(),
                change: Change::Created,
                action: IamAction::CreateRole {
                    role: name.clone(),
                    path: spec.path.clone(),
                    trust_policy: trust,
                    description,
                    tags: vec![
                        (TAG_PROFILE.to_owned(), profile.name().to_owned()),
                        (TAG_CLUSTER.to_owned(), cluster.arn.clone()),
                        (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                    ],
                },
            });
            format!(
                "arn:{partition}:iam::{}:role{}{name}",
                observed.caller.account, spec.path
            )
        }
        Some(role) => {
            let same = policy_documents_equal(&role.trust_policy, &trust);
            steps.push(IamStep {
                kind: "IAMRole",
                name: name.clone(),
                change: if same {
                    Change::Unchanged
                } else {
                    Change::Updated
                },
                action: if same {
                    IamAction::None
                } else {
                    IamAction::UpdateTrust {
                        role: name.clone(),
                        trust_policy: trust,
                    }
                },
            });
            role.arn.clone()
        }
    };
    let live_inline = existing.map(|r| &r.inline_policies);
    for (policy_name, document) in &policies {
        let change = match live_inline.and_then(|m| m.get(policy_name)) {
            None => Change::Created,
            Some(live) if policy_documents_equal(live, document) => Change::Unchanged,
            Some(_) => Change::Updated,
        };
        steps.push(IamStep {
            kind: "IAMInlinePolicy",
            name: format!("{name}/{policy_name}"),
            change,
            action: if change == Change::Unchanged {
                IamAction::None
            } else {
                IamAction::PutInlinePolicy {
                    role: name.clone(),
                    policy_name: policy_name.clone(),
                    document: document.clone(),
                }
            },
        });
    }
    // Our role: inline policies the profile no longer names go away.
    for stale in live_inline
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| !policies.iter().any(|(n, _)| n == *k))
    {
        steps.push(IamStep {
            kind: "IAMInlinePolicy",
            name: format!("{name}/{stale}"),
            change: Change::Deleted,
            action: IamAction::DeleteInlinePolicy {
                role: name.clone(),
                policy_name: stale.clone(),
            },
        });
    }
    let live_managed: &[String] = existing.map_or(&[], |r| &r.attached_policy_arns);
    for arn in &managed {
        let attached = live_managed.contains(arn);
        steps.push(IamStep {
            kind: "IAMManagedPolicy",
            name: format!("{name}/{arn}"),
            change: if attached {
                Change::Unchanged
            } else {
                Change::Created
            },
            action: if attached {
                IamAction::None
            } else {
                IamAction::AttachManagedPolicy {
                    role: name.clone(),
                    policy_arn: arn.clone(),
                }
            },
        });
    }
    for stale in live_managed.iter().filter(|a| !managed.contains(a)) {
        steps.push(IamStep {
            kind: "IAMManagedPolicy",
            name: format!("{name}/{stale}"),
            change: Change::Deleted,
            action: IamAction::DetachManagedPolicy {
                role: name.clone(),
                policy_arn: stale.clone(),
            },
        });
    }
    Ok(Some(VendorRolePlan {
        role_arn,
        external_id,
        steps,
    }))
}

/// The aws-auth entry a profile wants for `role_arn` (path stripped, as aws-auth needs).
pub fn desired_mapping(
    profile: &Profile,
    vars: &Vars,
    role_arn: &str,
    cluster_admin: bool,
) -> Result<Option<Mapping>, PlanError> {
    let Some(access) = &profile.spec.cluster_access else {
        return Ok(None);
    };
    let arn = parse_iam_arn(role_arn)
        .map_err(|e| PlanError::Arn(e.to_string()))?
        .without_path();
    let mut groups = vec![vars.render("spec.clusterAccess.group", &access.group)?];
    if cluster_admin {
        groups.push(SYSTEM_MASTERS.to_owned());
    }
    Ok(Some(Mapping {
        arn,
        username: vars.render("spec.clusterAccess.username", &access.username)?,
        groups,
    }))
}

fn plan_mapping(observed: &Observed, wanted: Mapping) -> AwsAuthStep {
    let live = observed
        .aws_auth
        .as_ref()
        .and_then(|a| a.find(MappingKind::Role, &wanted.arn));
    let change = match live {
        None => Change::Created,
        Some(m) if m.username == wanted.username && m.groups == wanted.groups => Change::Unchanged,
        Some(_) => Change::Updated,
    };
    AwsAuthStep {
        arn: wanted.arn.clone(),
        change,
        action: if change == Change::Unchanged {
            AwsAuthAction::None
        } else {
            AwsAuthAction::Upsert { mapping: wanted }
        },
    }
}

/// The role ARN a profile's cluster access refers to.
fn access_role_arn(
    profile: &Profile,
    vars: &Vars,
    vendor_role_arn: Option<&str>,
) -> Result<Option<String>, PlanError> {
    match &profile.spec.cluster_access {
        None => Ok(None),
        Some(access) => match &access.role_arn {
            Some(t) => Ok(Some(vars.render("spec.clusterAccess.roleArn", t)?)),
            None => Ok(vendor_role_arn.map(str::to_owned)),
        },
    }
}

fn check_account(cluster: &ClusterFacts, observed: &Observed) -> Result<(), PlanError> {
    if !cluster.account.is_empty() && cluster.account != observed.caller.account {
        return Err(PlanError::AccountMismatch {
            cluster: cluster.name.clone(),
            cluster_account: cluster.account.clone(),
            caller_account: observed.caller.account.clone(),
        });
    }
    Ok(())
}

fn profile_of_namespace(live: &Value) -> Option<&str> {
    live["metadata"]["annotations"][PROFILE_ANNOTATION].as_str()
}

/// Steps that make the bundle true.
fn plan_bundle_apply(
    profile: &Profile,
    bundle: &Bundle,
    observed: &Observed,
) -> Result<Vec<KubeStep>, PlanError> {
    let name = profile.name();
    let mut steps = Vec::new();
    let ns_obj = bundle.namespace_object(name);
    match observed.objects.get(&ns_obj.key) {
        None => steps.push(KubeStep {
            key: ns_obj.key.clone(),
            desired: ns_obj.body.clone(),
            change: Change::Created,
            action: KubeAction::Create(ns_obj.body.clone()),
        }),
        Some(live) => {
            if let Some(other) = profile_of_namespace(live).filter(|p| *p != name) {
                return Err(PlanError::NamespaceOwnedByOtherProfile {
                    namespace: bundle.namespace.clone(),
                    other: other.to_owned(),
                });
            }
            // Only the keys we own; stale policy annotations (e.g. an IRSA ARN no longer
            // wanted) are removed with null.
            let mut annotations: Map<String, Value> = bundle
                .namespace_annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            for key in POLICY_ANNOTATIONS {
                if !annotations.contains_key(key)
                    && live["metadata"]["annotations"].get(key).is_some()
                {
                    annotations.insert(key.to_owned(), Value::Null);
                }
            }
            let desired = json!({"metadata": {
                "labels": bundle.namespace_labels,
                "annotations": annotations,
            }});
            let mut shown = live.clone();
            json_patch::merge(&mut shown, &desired);
            let unchanged = covers(live, &desired)
                && annotations
                    .iter()
                    .filter(|(_, v)| v.is_null())
                    .all(|(k, _)| live["metadata"]["annotations"].get(k).is_none());
            steps.push(KubeStep {
                key: ns_obj.key.clone(),
                desired: strip_server_fields(shown),
                change: if unchanged {
                    Change::Unchanged
                } else {
                    Change::Updated
                },
                action: if unchanged {
                    KubeAction::None
                } else {
                    KubeAction::MergePatch(desired)
                },
            });
        }
    }
    for obj in bundle.cluster_scoped.iter().chain(&bundle.namespaced) {
        steps.push(plan_object_apply(name, obj, observed)?);
    }
    Ok(steps)
}

fn plan_object_apply(
    profile: &str,
    obj: &KubeObject,
    observed: &Observed,
) -> Result<KubeStep, PlanError> {
    let (change, action) = match observed.objects.get(&obj.key) {
        None => (Change::Created, KubeAction::Create(obj.body.clone())),
        Some(live) if !is_ours(live, profile) => {
            return Err(PlanError::ObjectNotOurs {
                object: obj.key.to_string(),
                profile: profile.to_owned(),
            });
        }
        Some(live) if covers(live, &obj.body) => (Change::Unchanged, KubeAction::None),
        Some(_) => (
            Change::Updated,
            KubeAction::MergePatch(merge_patch_for(&obj.body)),
        ),
    };
    Ok(KubeStep {
        key: obj.key.clone(),
        desired: obj.body.clone(),
        change,
        action,
    })
}

fn strip_server_fields(mut v: Value) -> Value {
    if let Some(meta) = v["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "selfLink",
        ] {
            meta.remove(k);
        }
    }
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
    }
    v
}

/// Steps that remove the bundle: our namespaced objects; the namespace's label/annotations
/// (or the namespace with `delete_namespace`); the shared ClusterRole when `last` is true.
fn plan_bundle_remove(
    profile: &Profile,
    bundle: &Bundle,
    observed: &Observed,
    delete_namespace: bool,
    last: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<KubeStep>, PlanError> {
    let name = profile.name();
    let ns_key = bundle.namespace_object(name).key;
    let live_ns = observed.objects.get(&ns_key);
    if let Some(live) = live_ns
        && let Some(other) = profile_of_namespace(live).filter(|p| *p != name)
    {
        return Err(PlanError::NamespaceOwnedByOtherProfile {
            namespace: bundle.namespace.clone(),
            other: other.to_owned(),
        });
    }
    let mut steps = Vec::new();
    let mut remove =
        |obj: &KubeObject, steps: &mut Vec<KubeStep>| match observed.objects.get(&obj.key) {
            None => steps.push(KubeStep {
                key: obj.key.clone(),
                desired: obj.body.clone(),
                change: Change::Absent,
                action: KubeAction::None,
            }),
            Some(live) if !is_ours(live, name) => {
                warnings.push(format!(
                    "kept {}: it is not labelled as made by kubectl-mlplatform for profile {name}",
                    obj.key
                ));
                steps.push(KubeStep {
                    key: obj.key.clone(),
                    desired: live.clone(),
                    change: Change::Unchanged,
                    action: KubeAction::None,
                });
            }
            Some(live) => steps.push(KubeStep {
                key: obj.key.clone(),
                desired: strip_server_fields(live.clone()),
                change: Change::Deleted,
                action: KubeAction::Delete,
            }),
        };
    // Bindings before what they bind, then the shared role.
    for obj in bundle.namespaced.iter().rev() {
        remove(obj, &mut steps);
    }
    if last {
        for obj in &bundle.cluster_scoped {
            remove(obj, &mut steps);
        }
    } else {
        for obj in &bundle.cluster_scoped {
            steps.push(KubeStep {
                key: obj.key.clone(),
                desired: obj.body.clone(),
                change: Change::Unchanged,
                action: KubeAction::None,
            });
        }
    }
    match live_ns {
        None => steps.push(KubeStep {
            key: ns_key,
            desired: Value::Null,
            change: Change::Absent,
            action: KubeAction::None,
        }),
        Some(live) if delete_namespace => steps.push(KubeStep {
            key: ns_key,
            desired: strip_server_fields(live.clone()),
            change: Change::Deleted,
            action: KubeAction::Delete,
        }),
        Some(live) => {
            let labels = &live["metadata"]["labels"];
            let annotations = &live["metadata"]["annotations"];
            let mut label_patch = Map::new();
            for key in [MANAGED_LABEL, PROFILE_LABEL] {
                if labels.get(key).is_some() {
                    label_patch.insert(key.to_owned(), Value::Null);
                }
            }
            if labels[MANAGED_BY_LABEL] == MANAGED_BY_VALUE {
                label_patch.insert(MANAGED_BY_LABEL.to_owned(), Value::Null);
            }
            let mut annotation_patch = Map::new();
            for key in POLICY_ANNOTATIONS {
                if annotations.get(key).is_some() {
                    annotation_patch.insert(key.to_owned(), Value::Null);
                }
            }
            let changed = !label_patch.is_empty() || !annotation_patch.is_empty();
            let patch =
                json!({"metadata": {"labels": label_patch, "annotations": annotation_patch}});
            let mut shown = live.clone();
            json_patch::merge(&mut shown, &patch);
            steps.push(KubeStep {
                key: ns_key,
                desired: strip_server_fields(shown),
                change: if changed {
                    Change::Updated
                } else {
                    Change::Unchanged
                },
                action: if changed {
                    KubeAction::MergePatch(patch)
                } else {
                    KubeAction::None
                },
            });
        }
    }
    Ok(steps)
}

fn bundle_for(
    profile: &Profile,
    vars: &Vars,
    namespace: &str,
) -> Result<Option<Bundle>, PlanError> {
    profile
        .spec
        .namespace
        .as_ref()
        .map(|spec| render_bundle(profile, spec, vars, namespace))
        .transpose()
        .map_err(PlanError::from)
}

/// connect: vendor role, its mapping, the namespace bundle.
pub fn plan_connect(
    profile: &Profile,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
    observed: &Observed,
) -> Result<Plan, PlanError> {
    check_implemented(profile)?;
    check_account(cluster, observed)?;
    if let Some(id) = &inputs.external_id
        && !valid_external_id(id)
    {
        return Err(PlanError::BadExternalId(id.clone()));
    }
    let vars = vars_for(profile, cluster, &inputs.params, &inputs.namespace);
    let mut plan = Plan::default();
    let vendor = plan_vendor_role(profile, inputs, cluster, observed, &vars)?;
    let vendor_arn = vendor.as_ref().map(|v| v.role_arn.clone());
    if let Some(v) = vendor {
        plan.iam = v.steps;
        plan.outputs.external_id = v.external_id;
    }
    let access_arn = access_role_arn(profile, &vars, vendor_arn.as_deref())?;
    if access_arn.is_some() && cluster.authentication_mode.as_deref() == Some("API") {
        return Err(PlanError::AccessEntriesOnly {
            cluster: cluster.name.clone(),
        });
    }
    if let Some(arn) = &access_arn
        && let Some(mapping) = desired_mapping(profile, &vars, arn, inputs.cluster_admin)?
    {
        if inputs.cluster_admin {
            plan.warnings.push(format!(
                "--cluster-admin maps {} to {SYSTEM_MASTERS}: full control of the whole cluster, not just its namespaces",
                mapping.arn
            ));
        }
        plan.aws_auth = Some(plan_mapping(observed, mapping));
    }
    plan.outputs.role_arn = vendor_arn.or(access_arn);
    if let Some(bundle) = bundle_for(profile, &vars, &inputs.namespace)? {
        plan.kube = plan_bundle_apply(profile, &bundle, observed)?;
        plan.outputs.user_service_account = bundle.user_service_account.clone();
        plan.outputs.system_service_account = bundle.system_service_account.clone();
    }
    plan.outputs.profile = profile.name().to_owned();
    plan.outputs.cluster = cluster.name.clone();
    plan.outputs.namespace = inputs.namespace.clone();
    Ok(plan)
}

fn others_remaining(observed: &Observed, namespace: &str) -> Vec<String> {
    observed
        .profile_namespaces
        .iter()
        .filter(|n| n.as_str() != namespace)
        .cloned()
        .collect()
}

/// disconnect: the bundle of this namespace; and when no other namespace of the profile
/// remains, the shared ClusterRole, the mapping and the vendor role (only if tagged as ours).
pub fn plan_disconnect(
    profile: &Profile,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
    observed: &Observed,
) -> Result<Plan, PlanError> {
    check_implemented(profile)?;
    check_account(cluster, observed)?;
    let vars = vars_for(profile, cluster, &inputs.params, &inputs.namespace);
    let others = others_remaining(observed, &inputs.namespace);
    let last = others.is_empty();
    let mut plan = Plan::default();
    let mut warnings = Vec::new();

    let mut vendor_arn = None;
    if let Some(spec) = &profile.spec.vendor_role {
        let name = shorten_role_name(&vars.render("spec.vendorRole.name", &spec.name)?);
        match &observed.role {
            Some(role) if !role_is_ours(role, profile.name(), &cluster.arn) => {
                return Err(PlanError::RoleNotOurs {
                    role: name,
                    profile: profile.name().to_owned(),
                });
            }
            Some(role) => {
                vendor_arn = Some(role.arn.clone());
                plan.iam.push(IamStep {
                    kind: "IAMRole",
                    name: name.clone(),
                    change: if last {
                        Change::Deleted
                    } else {
                        Change::Unchanged
                    },
                    action: if last {
                        IamAction::DeleteRole { role: name }
                    } else {
                        IamAction::None
                    },
                });
            }
            None => plan.iam.push(IamStep {
                kind: "IAMRole",
                name,
                change: Change::Absent,
                action: IamAction::None,
            }),
        }
    }
    // The mapping's ARN does not depend on whether the role still exists.
    let partition = vars.get("partition").unwrap_or("aws").to_owned();
    let vendor_arn_for_mapping = vendor_arn.clone().or_else(|| {
        profile.spec.vendor_role.as_ref().and_then(|spec| {
            let name = shorten_role_name(&vars.render("spec.vendorRole.name", &spec.name).ok()?);
            Some(format!(
                "arn:{partition}:iam::{}:role/{name}",
                observed.caller.account
            ))
        })
    });
    if let Some(arn) = access_role_arn(profile, &vars, vendor_arn_for_mapping.as_deref())? {
        let arn = parse_iam_arn(&arn)
            .map_err(|e| PlanError::Arn(e.to_string()))?
            .without_path();
        let present = observed
            .aws_auth
            .as_ref()
            .and_then(|a| a.find(MappingKind::Role, &arn))
            .is_some();
        let (change, action) = match (present, last) {
            (false, _) => (Change::Absent, AwsAuthAction::None),
            (true, true) => (Change::Deleted, AwsAuthAction::Remove { arn: arn.clone() }),
            (true, false) => (Change::Unchanged, AwsAuthAction::None),
        };
        plan.aws_auth = Some(AwsAuthStep {
            arn,
            change,
            action,
        });
    }
    if let Some(bundle) = bundle_for(profile, &vars, &inputs.namespace)? {
        plan.kube = plan_bundle_remove(
            profile,
            &bundle,
            observed,
            inputs.delete_namespace,
            last,
            &mut warnings,
        )?;
        plan.outputs.user_service_account = bundle.user_service_account;
        plan.outputs.system_service_account = bundle.system_service_account;
    }
    if !last {
        warnings.push(format!(
            "kept the IAM role, aws-auth mapping and shared ClusterRole of profile {}: still used by namespace(s) {}",
            profile.name(),
            others.join(", ")
        ));
    }
    plan.warnings = warnings;
    plan.outputs.profile = profile.name().to_owned();
    plan.outputs.cluster = cluster.name.clone();
    plan.outputs.namespace = inputs.namespace.clone();
    plan.outputs.role_arn = vendor_arn;
    Ok(plan)
}

/// namespace add: the bundle alone.
pub fn plan_namespace_add(
    profile: &Profile,
    vars: &Vars,
    namespace: &str,
    observed: &Observed,
) -> Result<Plan, PlanError> {
    let bundle = bundle_for(profile, vars, namespace)?
        .ok_or_else(|| PlanError::NoNamespaceBundle(profile.name().to_owned()))?;
    Ok(Plan {
        kube: plan_bundle_apply(profile, &bundle, observed)?,
        outputs: Outputs {
            profile: profile.name().to_owned(),
            namespace: namespace.to_owned(),
            user_service_account: bundle.user_service_account,
            system_service_account: bundle.system_service_account,
            ..Outputs::default()
        },
        ..Plan::default()
    })
}

/// namespace remove: the bundle alone; the shared ClusterRole goes with the last namespace.
pub fn plan_namespace_remove(
    profile: &Profile,
    vars: &Vars,
    namespace: &str,
    delete_namespace: bool,
    observed: &Observed,
) -> Result<Plan, PlanError> {
    let bundle = bundle_for(profile, vars, namespace)?
        .ok_or_else(|| PlanError::NoNamespaceBundle(profile.name().to_owned()))?;
    let managed_here = observed
        .objects
        .get(&bundle.namespace_object(profile.name()).key)
        .and_then(profile_of_namespace)
        == Some(profile.name());
    if !managed_here {
        return Err(PlanError::NamespaceNotManaged {
            namespace: namespace.to_owned(),
            profile: profile.name().to_owned(),
        });
    }
    let last = others_remaining(observed, namespace).is_empty();
    let mut warnings = Vec::new();
    let kube = plan_bundle_remove(
        profile,
        &bundle,
        observed,
        delete_namespace,
        last,
        &mut warnings,
    )?;
    Ok(Plan {
        kube,
        warnings,
        outputs: Outputs {
            profile: profile.name().to_owned(),
            namespace: namespace.to_owned(),
            user_service_account: bundle.user_service_account,
            system_service_account: bundle.system_service_account,
            ..Outputs::default()
        },
        ..Plan::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_role_names_are_shortened_deterministically_with_a_hash() {
        let short = "mlplatform-concurrent-c1";
        assert_eq!(shorten_role_name(short), short);
        let long = format!("mlplatform-concurrent-{}", "x".repeat(80));
        let a = shorten_role_name(&long);
        assert_eq!(a.len(), MAX_ROLE_NAME);
        assert_eq!(a, shorten_role_name(&long));
        let other = shorten_role_name(&format!("{long}y"));
        assert_ne!(a, other);
    }

    #[test]
    fn external_id_is_read_back_from_string_or_single_element_array() {
        let trust = vendor_trust_policy("aws", "111122223333", Some("abc-123"));
        assert_eq!(external_id_from_trust(&trust).as_deref(), Some("abc-123"));
        let arr = json!({"Statement": {"Condition": {"StringEquals": {"sts:ExternalId": ["x1"]}}}});
        assert_eq!(external_id_from_trust(&arr).as_deref(), Some("x1"));
        assert_eq!(external_id_from_trust(&json!({})), None);
    }

    #[test]
    fn external_id_validation() {
        assert!(valid_external_id("a1:b/c=d"));
        assert!(!valid_external_id("x"));
        assert!(!valid_external_id("has space"));
    }
}
