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

mod iam;
mod kube_steps;

pub use iam::{external_id_from_trust, shorten_role_name, vendor_trust_policy};
use iam::{plan_vendor_role, role_is_ours};
use kube_steps::{bundle_for, plan_bundle_apply, plan_bundle_remove, profile_of_namespace};

/// Tag keys that mark an IAM role as made by us for one profile and cluster.
/// The same keys as on Kubernetes objects, so one vocabulary marks everything we made.
pub const TAG_PROFILE: &str = PROFILE_ANNOTATION;
pub const TAG_CLUSTER: &str = "mlplatform.io/cluster";
pub const TAG_MANAGED_BY: &str = MANAGED_BY_LABEL;
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
        "namespace {0} is being deleted (Terminating); wait until it is gone (`kubectl get namespace {0}`) and re-run"
    )]
    NamespaceTerminating(String),
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
            AwsAuthAction::Upsert {
                mapping: wanted.clone(),
            }
        },
        wanted: Some(wanted),
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
            wanted: None,
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
    fn parameters_are_checked_by_type_and_name() {
        let concurrent = crate::profile::load_profile("concurrent").unwrap();
        let given = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(resolve_params(&concurrent, &given("vendorAccount", "111122223333"), true).is_ok());
        assert!(matches!(
            resolve_params(&concurrent, &given("vendorAccount", "abc"), true),
            Err(PlanError::BadAccount { .. })
        ));
        assert!(matches!(
            resolve_params(&concurrent, &given("nope", "1"), true),
            Err(PlanError::UnknownParameter { .. })
        ));
        let missing = resolve_params(&concurrent, &BTreeMap::new(), true).unwrap_err();
        assert!(
            missing.to_string().contains("pass --vendor-account"),
            "{missing}"
        );
        assert!(resolve_params(&concurrent, &BTreeMap::new(), false).is_ok());
        let hopsworks = crate::profile::load_profile("hopsworks").unwrap();
        let user_arn = given("instanceRoleArn", "arn:aws:iam::123456789012:user/bob");
        assert!(matches!(
            resolve_params(&hopsworks, &user_arn, true),
            Err(PlanError::BadRoleArn { .. })
        ));
    }

    #[test]
    fn a_namespace_of_another_profile_is_refused() {
        let profile = crate::profile::load_profile("concurrent").unwrap();
        let mut vars = Vars::new();
        vars.set("profile", "concurrent").set("namespace", "shared");
        let mut objects = BTreeMap::new();
        objects.insert(
            ObjectKey {
                kind: crate::objects::Kind::Namespace,
                namespace: None,
                name: "shared".into(),
            },
            json!({"metadata": {"name": "shared", "annotations": {PROFILE_ANNOTATION: "arthur"}}}),
        );
        let observed = Observed {
            caller: CallerIdentity {
                account: String::new(),
                arn: String::new(),
            },
            role: None,
            aws_auth: None,
            objects,
            profile_namespaces: Vec::new(),
        };
        let err = plan_namespace_add(&profile, &vars, "shared", &observed).unwrap_err();
        assert!(
            err.to_string()
                .contains("already managed for profile arthur"),
            "{err}"
        );
    }

    #[test]
    fn external_id_validation() {
        assert!(valid_external_id("a1:b/c=d"));
        assert!(!valid_external_id("x"));
        assert!(!valid_external_id("has space"));
    }
}
