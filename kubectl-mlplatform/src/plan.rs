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

use crate::access_entry::{
    AccessEntryAction, AccessRequest, AuthMode, DEFAULT_ACCESS_POLICY, Mechanism, ObservedEntry,
    choose_mechanism, plan_access_entry, plan_access_entry_removal,
};
use crate::arn::{is_account_id, parse_iam_arn};
use crate::aws::{
    CallerIdentity, ClusterFacts, ClusterNetwork, RoleFacts, issuer_host_path,
    policy_documents_equal,
};
use crate::aws_auth::{AwsAuth, Mapping, MappingKind, SYSTEM_MASTERS};
use crate::bundle::{Bundle, render_bundle};
use crate::common::Change;
use crate::objects::{
    Kind, KubeObject, ObjectKey, PROFILE_LABEL, covers, is_ours, is_terminating, merge_patch_for,
    namespace_created_for, new_namespace,
};
use crate::profile::{ParameterType, Profile, TemplateError, Vars};

mod iam;
mod kube_steps;
mod profile_steps;
mod storage;

pub use iam::{external_id_from_trust, shorten_role_name, vendor_trust_policy};
use iam::{plan_vendor_role, role_is_ours};
use kube_steps::{bundle_for, plan_bundle_apply, plan_bundle_remove, profile_of_namespace};
pub use profile_steps::{
    OidcAction, OidcProviderFacts, OidcStep, TAG_OIDC_CREATED_BY, existing_role_name,
    irsa_role_names, security_group_fallback,
};
pub use storage::{
    DEFAULT_CLASS_ANNOTATION, DEMOTED_ANNOTATION, default_storage_classes, is_default_class,
};

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
    /// The role's EKS access entry (read when access entries are used).
    pub access_entry: Option<ObservedEntry>,
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

/// An EKS access entry for the role (instead of an aws-auth mapping).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessEntryStep {
    pub principal_arn: String,
    pub username: String,
    pub groups: Vec<String>,
    pub namespaces: Vec<String>,
    pub change: Change,
    pub actions: Vec<AccessEntryAction>,
}

/// Something the user must do by hand, with the exact command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManualStepOut {
    pub name: String,
    pub description: String,
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub outputs: Outputs,
    pub iam: Vec<IamStep>,
    /// The cluster's IAM OIDC provider (created before, deleted after the IAM roles).
    pub oidc: Option<OidcStep>,
    pub aws_auth: Option<AwsAuthStep>,
    pub access_entry: Option<AccessEntryStep>,
    pub kube: Vec<KubeStep>,
    pub manual_steps: Vec<ManualStepOut>,
    /// For stderr: risky choices (system:masters), things kept on purpose.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> Vec<ChangeRow> {
        let oidc = self.oidc.iter().map(|s| ChangeRow {
            kind: "IAMOIDCProvider".to_owned(),
            name: s.issuer.clone(),
            namespace: None,
            change: s.change,
        });
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
        let entry = self.access_entry.iter().map(|s| ChangeRow {
            kind: "AccessEntry".to_owned(),
            name: s.principal_arn.clone(),
            namespace: None,
            change: s.change,
        });
        let auth = auth.chain(entry);
        let kube = self.kube.iter().map(|s| ChangeRow {
            kind: s.key.kind.as_str().to_owned(),
            name: s.key.name.clone(),
            namespace: s.key.namespace.clone(),
            change: s.change,
        });
        oidc.chain(iam).chain(auth).chain(kube).collect()
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
        let mut out = json!({
            "iam": iam,
            "awsAuth": self.aws_auth,
            "objects": objects,
        });
        if let Some(oidc) = &self.oidc {
            out["oidcProvider"] = serde_json::to_value(oidc).unwrap_or(Value::Null);
        }
        if let Some(entry) = &self.access_entry {
            out["accessEntry"] = serde_json::to_value(entry).unwrap_or(Value::Null);
        }
        if !self.manual_steps.is_empty() {
            out["manualSteps"] = serde_json::to_value(&self.manual_steps).unwrap_or(Value::Null);
        }
        out
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
            ParameterType::S3Bucket if !is_bucket_name(&value) => {
                return Err(PlanError::BadBucket {
                    name: p.name.clone(),
                    value,
                });
            }
            ParameterType::S3Bucket => {}
            ParameterType::KmsKeyArn if !is_kms_key_arn(&value) => {
                return Err(PlanError::BadKmsKey {
                    name: p.name.clone(),
                    value,
                });
            }
            ParameterType::KmsKeyArn => {}
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

/// S3 bucket naming rules (general purpose buckets): 3-63 characters of lowercase letters,
/// digits, '.' and '-', starting and ending with a letter or digit, no "..", not an IP address.
pub fn is_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias")
}

/// `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or `...:alias/NAME`.
pub fn is_kms_key_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "kms", region, account, resource] => {
            partition.starts_with("aws")
                && !region.is_empty()
                && is_account_id(account)
                && (resource
                    .strip_prefix("key/")
                    .is_some_and(|id| !id.is_empty())
                    || resource
                        .strip_prefix("alias/")
                        .is_some_and(|a| !a.is_empty()))
        }
        _ => false,
    }
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
    // Parameters that were not given render as their default, else "" (which drops what
    // they fill, e.g. an optional kmsKeyId).
    for p in &profile.spec.parameters {
        vars.set(&p.name, p.default.clone().unwrap_or_default());
    }
    for (k, v) in params {
        vars.set(k, v.as_str());
    }
    if let Some(issuer) = cluster
        .oidc_issuer
        .as_deref()
        .filter(|i| !i.trim().is_empty())
    {
        let host_path = issuer_host_path(issuer);
        vars.set(
            "oidcProviderArn",
            crate::irsa::oidc_provider_arn(partition, &cluster.account, &host_path),
        );
        vars.set("oidcIssuer", host_path);
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

/// The aws-auth change for `wanted`, decided by the same code that will write it (so a
/// refusal, e.g. duplicate entries for the ARN, happens here, before anything is written).
fn plan_mapping(observed: &Observed, wanted: Mapping) -> Result<AwsAuthStep, PlanError> {
    let change = match &observed.aws_auth {
        None => Change::Created,
        Some(auth) => auth
            .preview_upsert(MappingKind::Role, wanted.clone())
            .map_err(|e| PlanError::AwsAuth(e.to_string()))?,
    };
    Ok(AwsAuthStep {
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
    })
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

/// aws-auth or an access entry, as `--auth-mode` and the cluster decide.
fn mechanism_for(inputs: &ConnectInputs, cluster: &ClusterFacts) -> Result<Mechanism, PlanError> {
    choose_mechanism(
        inputs.auth_mode,
        &cluster.name,
        cluster.authentication_mode.as_deref(),
    )
    .map_err(|e| PlanError::ClusterAccess(e.to_string()))
}

/// The role a profile maps into the cluster (for preflight, before the plan): the cluster
/// access role, else the vendor role's ARN as connect names it.
pub fn access_principal(profile: &Profile, vars: &Vars, account: &str) -> Option<String> {
    let vendor = profile.spec.vendor_role.as_ref().and_then(|spec| {
        let name = shorten_role_name(&vars.render("spec.vendorRole.name", &spec.name).ok()?);
        let partition = vars.get("partition").unwrap_or("aws");
        Some(format!(
            "arn:{partition}:iam::{account}:role{}{name}",
            spec.path
        ))
    });
    access_role_arn(profile, vars, vendor.as_deref())
        .ok()
        .flatten()
}

/// Whether connect/disconnect will use an access entry for this profile on this cluster.
pub fn uses_access_entry(
    profile: &Profile,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
) -> bool {
    profile.spec.cluster_access.is_some()
        && mechanism_for(inputs, cluster) == Ok(Mechanism::AccessEntry)
}

/// Namespaces an access entry is scoped to: the profile's managed namespaces plus (connect)
/// or minus (disconnect) this one.
fn entry_namespaces(observed: &Observed, namespace: &str, adding: bool) -> Vec<String> {
    let mut set: BTreeSet<String> = observed.profile_namespaces.iter().cloned().collect();
    if adding {
        set.insert(namespace.to_owned());
    } else {
        set.remove(namespace);
    }
    set.into_iter().collect()
}

fn plan_access_apply(
    profile: &Profile,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    arn: &str,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let Some(mapping) = desired_mapping(profile, vars, arn, inputs.cluster_admin)? else {
        return Ok(());
    };
    match mechanism_for(inputs, cluster)? {
        Mechanism::AwsAuth => {
            if inputs.cluster_admin {
                plan.warnings.push(format!(
                    "--cluster-admin maps {} to {SYSTEM_MASTERS}: full control of the whole cluster, not just its namespaces",
                    mapping.arn
                ));
            }
            plan.aws_auth = Some(plan_mapping(observed, mapping)?);
        }
        Mechanism::AccessEntry => {
            if inputs.cluster_admin {
                return Err(PlanError::ClusterAccess(
                    "--cluster-admin (system:masters) cannot be given through an EKS access entry; use --auth-mode configmap, or leave --cluster-admin out".to_owned(),
                ));
            }
            let namespaces = entry_namespaces(observed, &inputs.namespace, true);
            let req = AccessRequest {
                cluster: cluster.name.clone(),
                principal_arn: mapping.arn.clone(),
                username: mapping.username.clone(),
                groups: mapping.groups.clone(),
                namespaces: namespaces.clone(),
                policy_arn: DEFAULT_ACCESS_POLICY.to_owned(),
            };
            let (change, actions) = plan_access_entry(&req, observed.access_entry.as_ref())
                .map_err(|e| PlanError::ClusterAccess(e.to_string()))?;
            plan.access_entry = Some(AccessEntryStep {
                principal_arn: mapping.arn,
                username: mapping.username,
                groups: mapping.groups,
                namespaces,
                change,
                actions,
            });
        }
    }
    Ok(())
}

fn plan_access_remove(
    profile: &Profile,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    arn: &str,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let last = others_remaining(observed, &inputs.namespace).is_empty();
    let arn = parse_iam_arn(arn)
        .map_err(|e| PlanError::Arn(e.to_string()))?
        .without_path();
    match mechanism_for(inputs, cluster)? {
        Mechanism::AwsAuth => {
            let (change, action) = match (&observed.aws_auth, last) {
                (None, _) => (Change::Absent, AwsAuthAction::None),
                (Some(auth), true) => {
                    let change = auth
                        .preview_remove(MappingKind::Role, &arn)
                        .map_err(|e| PlanError::AwsAuth(e.to_string()))?;
                    let action = if change == Change::Deleted {
                        AwsAuthAction::Remove { arn: arn.clone() }
                    } else {
                        AwsAuthAction::None
                    };
                    (change, action)
                }
                (Some(auth), false) => match auth.find(MappingKind::Role, &arn) {
                    Some(_) => (Change::Unchanged, AwsAuthAction::None),
                    None => (Change::Absent, AwsAuthAction::None),
                },
            };
            plan.aws_auth = Some(AwsAuthStep {
                arn,
                change,
                action,
                wanted: None,
            });
        }
        Mechanism::AccessEntry => {
            let entry = observed.access_entry.as_ref();
            let namespaces = entry_namespaces(observed, &inputs.namespace, false);
            let (change, actions) = if last || namespaces.is_empty() {
                plan_access_entry_removal(&cluster.name, &arn, entry)
            } else {
                // Other namespaces remain: the entry stays, scoped to them only.
                match desired_mapping(profile, vars, &arn, false)? {
                    Some(mapping) if entry.is_some() => plan_access_entry(
                        &AccessRequest {
                            cluster: cluster.name.clone(),
                            principal_arn: arn.clone(),
                            username: mapping.username,
                            groups: mapping.groups,
                            namespaces: namespaces.clone(),
                            policy_arn: DEFAULT_ACCESS_POLICY.to_owned(),
                        },
                        entry,
                    ),
                    _ => Ok((Change::Absent, Vec::new())),
                }
            }
            .map_err(|e| PlanError::ClusterAccess(e.to_string()))?;
            plan.access_entry = Some(AccessEntryStep {
                principal_arn: arn,
                username: String::new(),
                groups: Vec::new(),
                namespaces,
                change,
                actions,
            });
        }
    }
    Ok(())
}

/// ServiceAccounts the bundle creates, as (namespace, name).
fn bundle_service_accounts(bundle: Option<&Bundle>) -> Vec<(String, String)> {
    bundle
        .map(|b| {
            b.created_service_accounts()
                .into_iter()
                .map(|sa| (b.namespace.clone(), sa))
                .collect()
        })
        .unwrap_or_default()
}

/// connect: every step of the profile, in order: existing-role policies, OIDC provider,
/// vendor role, IRSA roles, cluster access, StorageClass, namespace bundle, manual steps.
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
    let mut plan = Plan {
        iam: profile_steps::plan_existing_roles_apply(profile, observed, &vars)?,
        oidc: profile_steps::plan_oidc_apply(profile, cluster, observed, &vars)?,
        ..Plan::default()
    };
    let vendor = plan_vendor_role(profile, inputs, cluster, observed, &vars)?;
    let vendor_arn = vendor.as_ref().map(|v| v.role_arn.clone());
    if let Some(v) = vendor {
        plan.iam.extend(v.steps);
        plan.outputs.external_id = v.external_id;
    }
    let provider_arn = plan.oidc.as_ref().map(|o| o.provider_arn.clone());
    let irsa = profile_steps::plan_irsa_roles_apply(
        profile,
        cluster,
        observed,
        &vars,
        provider_arn.as_deref(),
        &mut plan.iam,
    )?;
    let access_arn = access_role_arn(profile, &vars, vendor_arn.as_deref())?;
    if let Some(arn) = &access_arn {
        plan_access_apply(profile, inputs, cluster, observed, &vars, arn, &mut plan)?;
    }
    plan.outputs.role_arn = vendor_arn
        .or(access_arn)
        .or_else(|| irsa.first().map(|r| r.arn.clone()));
    plan.kube = storage::plan_storage_apply(profile, observed, &vars)?;
    let mut bundle = bundle_for(profile, &vars, &inputs.namespace)?;
    if let Some(bundle) = bundle.as_mut() {
        let namespace = bundle.namespace.clone();
        for r in irsa.iter().filter(|r| r.role.namespace == namespace) {
            bundle.set_irsa_role(&r.arn, &r.role.service_accounts);
        }
    }
    let bundle_sas = bundle_service_accounts(bundle.as_ref());
    if let Some(bundle) = &bundle {
        plan.kube
            .extend(plan_bundle_apply(profile, bundle, observed)?);
        plan.outputs.user_service_account = bundle.user_service_account.clone();
        plan.outputs.system_service_account = bundle.system_service_account.clone();
    }
    plan.kube
        .extend(profile_steps::plan_irsa_service_accounts_apply(
            profile.name(),
            &irsa,
            &bundle_sas,
            observed,
        )?);
    plan.manual_steps = profile_steps::render_manual_steps(profile, cluster, observed, &vars)?;
    plan.outputs.profile = profile.name().to_owned();
    plan.outputs.cluster = cluster.name.clone();
    plan.outputs.namespace = match (&bundle, irsa.first()) {
        (None, Some(r)) => r.role.namespace.clone(),
        _ => inputs.namespace.clone(),
    };
    if bundle.is_none()
        && let Some(r) = irsa.first()
    {
        plan.outputs.user_service_account = r.role.service_accounts.join(",");
    }
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

/// disconnect: the bundle of this namespace and IRSA roles of this namespace; and when no
/// other namespace of the profile remains, the shared things too: the vendor role, our inline
/// policies on existing roles, the mapping (or access entry), the StorageClass (restoring the
/// classes it demoted), the shared ClusterRole and the OIDC provider connect made.
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
    let (irsa_roles, removed_roles) = profile_steps::plan_irsa_roles_remove(
        profile,
        cluster,
        observed,
        &vars,
        last,
        &mut plan.iam,
    )?;
    plan.iam.extend(profile_steps::plan_existing_roles_remove(
        profile, observed, &vars, last,
    )?);
    plan.oidc = profile_steps::plan_oidc_remove(
        profile,
        cluster,
        observed,
        &vars,
        &removed_roles,
        last,
        &mut warnings,
    );
    // The mapping's ARN does not depend on whether the role still exists.
    let vendor_arn_for_mapping = vendor_arn
        .clone()
        .or_else(|| access_principal(profile, &vars, &observed.caller.account));
    if let Some(arn) = access_role_arn(profile, &vars, vendor_arn_for_mapping.as_deref())? {
        plan_access_remove(profile, inputs, cluster, observed, &vars, &arn, &mut plan)?;
    }
    plan.kube = storage::plan_storage_remove(profile, observed, &vars, last, &mut warnings)?;
    let bundle = bundle_for(profile, &vars, &inputs.namespace)?;
    let bundle_sas = bundle_service_accounts(bundle.as_ref());
    plan.kube
        .extend(profile_steps::plan_irsa_service_accounts_remove(
            profile.name(),
            &irsa_roles,
            &removed_roles,
            &bundle_sas,
            observed,
            inputs.delete_namespace,
            &mut warnings,
        ));
    if let Some(bundle) = bundle {
        plan.kube.extend(plan_bundle_remove(
            profile,
            &bundle,
            observed,
            inputs.delete_namespace,
            last,
            &mut warnings,
        )?);
        plan.outputs.user_service_account = bundle.user_service_account;
        plan.outputs.system_service_account = bundle.system_service_account;
    }
    if !last {
        warnings.push(format!(
            "kept the shared parts of profile {} (IAM role, cluster access, ClusterRole, StorageClass): still used by namespace(s) {}",
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
            objects,
            ..Observed::default()
        };
        let err = plan_namespace_add(&profile, &vars, "shared", &observed).unwrap_err();
        assert!(
            err.to_string()
                .contains("already managed for profile arthur"),
            "{err}"
        );
    }

    /// `namespace remove --delete-namespace` on a namespace as found: deleted only when connect
    /// created it for this profile; a Terminating one is left to finish.
    #[test]
    fn only_a_namespace_created_for_the_profile_is_deleted() {
        let profile = crate::profile::load_profile("concurrent").unwrap();
        let mut vars = Vars::new();
        vars.set("profile", "concurrent").set("namespace", "team");
        let key = ObjectKey {
            kind: Kind::Namespace,
            namespace: None,
            name: "team".into(),
        };
        let managed = |extra: Value| {
            let mut ns = json!({"metadata": {"name": "team",
                "labels": {MANAGED_LABEL: mlplatform_namespace_policy::MANAGED_VALUE},
                "annotations": {PROFILE_ANNOTATION: "concurrent"}}});
            json_patch::merge(&mut ns, &extra);
            ns
        };
        let plan_for = |live: Value| {
            let observed = Observed {
                objects: BTreeMap::from([(key.clone(), live)]),
                profile_namespaces: vec!["team".into()],
                ..Observed::default()
            };
            let plan = plan_namespace_remove(&profile, &vars, "team", true, &observed).unwrap();
            let step = plan.kube.iter().find(|s| s.key == key).unwrap().clone();
            (step, plan.warnings)
        };
        let created = managed(json!({"metadata": {"annotations": {
            crate::objects::CREATED_FOR_ANNOTATION: "concurrent"}}}));
        assert_eq!(plan_for(created.clone()).0.action, KubeAction::Delete);
        // Created by an older version: our ownership labels say so.
        let old = managed(json!({"metadata": {"labels": {
            MANAGED_BY_LABEL: MANAGED_BY_VALUE, PROFILE_LABEL: "concurrent"}}}));
        assert_eq!(plan_for(old).0.action, KubeAction::Delete);
        let (step, warnings) = plan_for(managed(json!({})));
        assert!(matches!(step.action, KubeAction::MergePatch(_)), "{step:?}");
        assert!(
            warnings[0].contains("connect did not create it"),
            "{warnings:?}"
        );
        let other = managed(json!({"metadata": {"annotations": {
            crate::objects::CREATED_FOR_ANNOTATION: "arthur"}}}));
        assert!(matches!(
            plan_for(other).0.action,
            KubeAction::MergePatch(_)
        ));
        let mut terminating = created;
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let (step, _) = plan_for(terminating);
        assert_eq!(
            (step.action, step.change),
            (KubeAction::None, Change::Absent)
        );
    }

    #[test]
    fn external_id_validation() {
        assert!(valid_external_id("a1:b/c=d"));
        assert!(!valid_external_id("x"));
        assert!(!valid_external_id("has space"));
    }
}
