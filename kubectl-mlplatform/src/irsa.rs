//! IAM roles for service accounts (IRSA), pure: the web-identity trust policy, deterministic
//! role names, and the plan of role / policy / ServiceAccount changes given what was read.
//!
//! Re-running with different inputs reconciles (eksctl's users complain that it will not):
//! the trust follows the ServiceAccounts asked for, managed policies this tool attached and no
//! longer asked for are detached (tracked in role tags, one per policy), the tool's inline
//! policy follows `--inline-policy`, and the annotation follows the role ARN. Only roles
//! tagged as IRSA roles made by kubectl-mlplatform for this cluster are ever changed.
//!
//! Role paths: `--role-name team/ml/Name` creates `Name` under path `/team/ml/`, and the
//! annotation carries the full ARN with the path (STS needs it for AssumeRoleWithWebIdentity).
//! eksctl has no path option for IRSA roles; IAM cannot move a role to another path, so an
//! existing role under a different path is an error, not a silent re-create.

use std::collections::{BTreeMap, BTreeSet};

use mlplatform_namespace_policy::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, eks};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::aws::{RoleFacts, policy_documents_equal};
use crate::common::Change;
use crate::plan::{ChangeRow, IamAction, TAG_CLUSTER, TAG_MANAGED_BY, shorten_role_name};

/// Tag marking a role as an IRSA role (so `irsa` never touches a `connect` vendor role).
pub const TAG_ROLE_KIND: &str = "mlplatform.io/role-kind";
pub const ROLE_KIND_IRSA: &str = "irsa";
/// One tag per managed policy this tool attached: key prefix + short hash, value the ARN.
pub const TAG_ATTACHED_PREFIX: &str = "mlplatform.io/attached-policy/";
/// The one inline policy this tool writes (`--inline-policy`).
pub const INLINE_POLICY_NAME: &str = "mlplatform-irsa-inline";
/// Label on ServiceAccounts this tool created (only those are deleted by `irsa delete`).
pub const SA_CREATED_LABEL: &str = "mlplatform.io/irsa-created";
/// IAM limits a tag value to 256 characters.
const MAX_TAG_VALUE: usize = 256;
/// IAM limits a role path to 512 characters.
const MAX_ROLE_PATH: usize = 512;

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

/// `--role-name` split into IAM path and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleName {
    /// `/` or `/a/b/`.
    pub path: String,
    pub name: String,
}

fn is_iam_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)
}

/// Parses `NAME` or `PATH/NAME` (`a/b/Name`, `/a/b/Name`).
pub fn parse_role_name(input: &str) -> Result<RoleName, IrsaError> {
    let bad = |reason: &str| IrsaError::BadRoleName {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = input.trim().trim_start_matches('/');
    let (path_part, name) = match trimmed.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", trimmed),
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if name.len() > crate::plan::MAX_ROLE_NAME {
        return Err(bad("the name is longer than 64 characters"));
    }
    if !name.bytes().all(is_iam_name_char) {
        return Err(bad("the name has a character IAM does not allow"));
    }
    let segments: Vec<&str> = if path_part.is_empty() {
        Vec::new()
    } else {
        path_part.split('/').collect()
    };
    if segments
        .iter()
        .any(|s| s.is_empty() || !s.bytes().all(is_iam_name_char))
    {
        return Err(bad(
            "the path has an empty segment or a character IAM does not allow",
        ));
    }
    let path = if segments.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}/", segments.join("/"))
    };
    if path.len() > MAX_ROLE_PATH {
        return Err(bad("the path is longer than 512 characters"));
    }
    Ok(RoleName {
        path,
        name: name.to_owned(),
    })
}

/// `mlplatform-irsa-<cluster>-<namespace>-<sa>` (several SAs: joined), at most 64 characters
/// (longer names keep a prefix and get a hash suffix, so distinct inputs never collide).
pub fn default_role_name(cluster: &str, namespace: &str, service_accounts: &[String]) -> String {
    let mut sas: Vec<&str> = service_accounts.iter().map(String::as_str).collect();
    sas.sort_unstable();
    sas.dedup();
    let raw = format!("mlplatform-irsa-{cluster}-{namespace}-{}", sas.join("-"));
    // ServiceAccount names may hold '.', IAM names too; anything else is already allowed.
    shorten_role_name(&raw)
}

/// True for a DNS-1123 subdomain (what a ServiceAccount name must be).
pub fn is_service_account_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks a managed policy ARN: `arn:PARTITION:iam::(aws|ACCOUNT):policy/[PATH/]NAME`.
pub fn check_policy_arn(input: &str) -> Result<String, IrsaError> {
    let bad = |reason: &str| IrsaError::BadPolicyArn {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let arn = input.trim();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
        return Err(bad("it is not arn:PARTITION:iam::ACCOUNT:policy/NAME"));
    };
    if !partition.starts_with("aws") {
        return Err(bad("unknown partition"));
    }
    if *account != "aws" && !crate::arn::is_account_id(account) {
        return Err(bad(
            "the account is neither `aws` nor a 12-digit account ID",
        ));
    }
    let Some(name) = resource.strip_prefix("policy/") else {
        return Err(bad("the resource is not policy/NAME"));
    };
    if name.is_empty() || name.ends_with('/') {
        return Err(bad("the policy name is empty"));
    }
    if arn.len() > MAX_TAG_VALUE {
        return Err(bad(
            "it is longer than 256 characters, which this tool cannot track",
        ));
    }
    Ok(arn.to_owned())
}

/// Parses and checks an inline policy document (`file` names it in errors).
pub fn parse_inline_policy(file: &str, text: &str) -> Result<Value, IrsaError> {
    let bad = |reason: String| IrsaError::BadInlinePolicy {
        file: file.to_owned(),
        reason,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Some(map) = doc.as_object() else {
        return Err(bad("not a JSON object".to_owned()));
    };
    if let Some(version) = map.get("Version")
        && version != "2012-10-17"
        && version != "2008-10-17"
    {
        return Err(bad(format!("Version {version} is not 2012-10-17")));
    }
    let statements: Vec<&Value> = match map.get("Statement") {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => {
            return Err(bad(
                "no Statement (an object or a non-empty list)".to_owned()
            ));
        }
    };
    for (i, st) in statements.iter().enumerate() {
        let Some(st) = st.as_object() else {
            return Err(bad(format!("Statement {i} is not an object")));
        };
        match st.get("Effect").and_then(Value::as_str) {
            Some("Allow" | "Deny") => {}
            _ => return Err(bad(format!("Statement {i} has no Effect Allow or Deny"))),
        }
        if !st.contains_key("Action") && !st.contains_key("NotAction") {
            return Err(bad(format!("Statement {i} has no Action")));
        }
        if !st.contains_key("Resource") && !st.contains_key("NotResource") {
            return Err(bad(format!("Statement {i} has no Resource")));
        }
        if st.contains_key("Principal") {
            return Err(bad(format!(
                "Statement {i} has a Principal, which identity policies cannot have"
            )));
        }
    }
    Ok(doc)
}

/// `arn:PARTITION:iam::ACCOUNT:oidc-provider/<issuer host/path>`.
pub fn oidc_provider_arn(partition: &str, account: &str, issuer_host_path: &str) -> String {
    format!("arn:{partition}:iam::{account}:oidc-provider/{issuer_host_path}")
}

/// `system:serviceaccount:NS:SA`.
pub fn subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

/// The web-identity trust: the cluster's OIDC provider may assume the role for exactly these
/// ServiceAccounts (`:sub`, a list when several) and the STS audience (`:aud`).
pub fn trust_policy(provider_arn: &str, issuer_host_path: &str, subjects: &[String]) -> Value {
    let mut subs: Vec<&str> = subjects.iter().map(String::as_str).collect();
    subs.sort_unstable();
    subs.dedup();
    let sub_value = match subs.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer_host_path}:sub"): sub_value,
                format!("{issuer_host_path}:aud"): eks::DEFAULT_AUDIENCE,
            }},
        }],
    })
}

/// The `(namespace, name)` pairs a trust policy admits through `<issuer>:sub` conditions.
pub fn subjects_in_trust(trust: &Value, issuer_host_path: &str) -> BTreeSet<(String, String)> {
    let key = format!("{issuer_host_path}:sub");
    let statements: Vec<&Value> = match &trust["Statement"] {
        Value::Array(items) => items.iter().collect(),
        one @ Value::Object(_) => vec![one],
        _ => Vec::new(),
    };
    let mut out = BTreeSet::new();
    for st in statements {
        let Some(conditions) = st["Condition"].as_object() else {
            continue;
        };
        for operator in conditions.values() {
            let values: Vec<&Value> = match &operator[&key] {
                Value::Array(items) => items.iter().collect(),
                v @ Value::String(_) => vec![v],
                _ => continue,
            };
            for v in values.into_iter().filter_map(Value::as_str) {
                let mut parts = v.splitn(4, ':');
                if let (Some("system"), Some("serviceaccount"), Some(ns), Some(sa)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                    && !sa.contains('*')
                {
                    out.insert((ns.to_owned(), sa.to_owned()));
                }
            }
        }
    }
    out
}

/// Tag key tracking one attached managed policy.
pub fn attached_policy_tag(policy_arn: &str) -> String {
    let hash = hex::encode(Sha256::digest(policy_arn.as_bytes()));
    format!("{TAG_ATTACHED_PREFIX}{}", &hash[..16])
}

/// Managed policies this tool attached, from the role's tags.
pub fn tracked_policies(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| k.starts_with(TAG_ATTACHED_PREFIX))
        .map(|(k, v)| (v.clone(), k.clone()))
        .collect()
}

/// True when the role carries our managed-by, cluster and IRSA-kind tags.
pub fn role_is_ours(role: &RoleFacts, cluster_arn: &str) -> bool {
    role.tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && role.tags.get(TAG_CLUSTER).map(String::as_str) == Some(cluster_arn)
        && role.tags.get(TAG_ROLE_KIND).map(String::as_str) == Some(ROLE_KIND_IRSA)
}

/// Everything `irsa create|delete` was asked for, resolved (cluster facts included), before I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrsaRequest {
    pub cluster_name: String,
    pub cluster_arn: String,
    pub partition: String,
    pub account: String,
    /// `oidc.eks.REGION.amazonaws.com/id/ABC`.
    pub issuer_host_path: String,
    pub namespace: String,
    pub service_accounts: Vec<String>,
    pub role: RoleName,
    pub attach_policy_arns: Vec<String>,
    pub inline_policy: Option<Value>,
    /// Do not touch ServiceAccounts.
    pub role_only: bool,
    /// Extra tags for a new role (e.g. a profile's).
    pub extra_tags: Vec<(String, String)>,
}

impl IrsaRequest {
    pub fn role_arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, self.role.path, self.role.name
        )
    }
    pub fn provider_arn(&self) -> String {
        oidc_provider_arn(&self.partition, &self.account, &self.issuer_host_path)
    }
    fn subjects(&self) -> Vec<String> {
        self.service_accounts
            .iter()
            .map(|sa| subject(&self.namespace, sa))
            .collect()
    }
}

/// What preflight read.
#[derive(Debug, Clone, Default)]
pub struct IrsaObserved {
    /// The IAM OIDC provider ARN for the issuer, if it exists.
    pub oidc_provider: Option<String>,
    pub role: Option<RoleFacts>,
    /// Whether the target namespace exists (None: not read, e.g. `--role-only`).
    pub namespace_exists: Option<bool>,
    /// Live ServiceAccounts by (namespace, name); a key with None was read and not found.
    pub service_accounts: BTreeMap<(String, String), Option<Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum IrsaAction {
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
    /// An IAM write, rendered as `plan::IamAction` renders it (it carries its own `action`).
    #[serde(untagged)]
    Iam(IamAction),
}

fn pairs_as_map<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IrsaStep {
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub change: Change,
    pub action: IrsaAction,
}

impl IrsaStep {
    fn iam(kind: &'static str, name: impl Into<String>, change: Change, iam: IamAction) -> Self {
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
pub struct IrsaPlan {
    pub role_name: String,
    pub role_arn: String,
    pub namespace: String,
    pub service_accounts: Vec<String>,
    /// The trust policy as wanted (create) or found (delete).
    pub trust_policy: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_policy: Option<Value>,
    pub attached_policy_arns: Vec<String>,
    pub steps: Vec<IrsaStep>,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl IrsaPlan {
    pub fn changes(&self) -> Vec<ChangeRow> {
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
    pub fn has_writes(&self) -> bool {
        self.steps.iter().any(|s| s.action != IrsaAction::None)
    }
}

fn sa_key(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_owned(), name.to_owned())
}

fn role_annotation(live: &Value) -> Option<&str> {
    live["metadata"]["annotations"][eks::ROLE_ARN].as_str()
}

fn created_by_us(live: &Value) -> bool {
    let labels = &live["metadata"]["labels"];
    labels[MANAGED_BY_LABEL] == MANAGED_BY_VALUE && labels[SA_CREATED_LABEL] == "true"
}

/// Same role, with or without the path (users sometimes annotate the path-free ARN).
fn same_role_arn(a: &str, b: &str) -> bool {
    let strip = |arn: &str| {
        crate::arn::parse_iam_arn(arn)
            .map(|p| p.without_path())
            .unwrap_or_else(|_| arn.to_owned())
    };
    a == b || strip(a) == strip(b)
}

fn sa_display(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The ServiceAccount body `irsa create` makes when it is missing.
pub fn new_service_account(namespace: &str, name: &str, role_arn: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, SA_CREATED_LABEL: "true"},
            "annotations": {eks::ROLE_ARN: role_arn},
        },
    })
}

/// IAM limits a role description to 1000 characters.
const MAX_DESCRIPTION: usize = 1000;

fn role_description(req: &IrsaRequest) -> String {
    let text = format!(
        "IRSA role for {} in EKS cluster {} (kubectl-mlplatform)",
        req.service_accounts
            .iter()
            .map(|sa| sa_display(&req.namespace, sa))
            .collect::<Vec<_>>()
            .join(", "),
        req.cluster_name
    );
    // Names are ASCII (DNS labels), so a byte cut is a character cut.
    text.chars().take(MAX_DESCRIPTION).collect()
}

fn role_tags(req: &IrsaRequest) -> Vec<(String, String)> {
    let mut tags = vec![
        (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (TAG_CLUSTER.to_owned(), req.cluster_arn.clone()),
        (TAG_ROLE_KIND.to_owned(), ROLE_KIND_IRSA.to_owned()),
    ];
    tags.extend(req.extra_tags.iter().cloned());
    tags
}

fn check_request(req: &IrsaRequest) -> Result<(), IrsaError> {
    if req.service_accounts.is_empty() {
        return Err(IrsaError::NoServiceAccount);
    }
    if let Some(bad) = req
        .service_accounts
        .iter()
        .find(|sa| !is_service_account_name(sa))
    {
        return Err(IrsaError::BadServiceAccount(bad.clone()));
    }
    Ok(())
}

fn check_existing_role(req: &IrsaRequest, role: &RoleFacts) -> Result<(), IrsaError> {
    if !role_is_ours(role, &req.cluster_arn) {
        return Err(IrsaError::RoleNotOurs {
            role: req.role.name.clone(),
            cluster: req.cluster_name.clone(),
        });
    }
    if role.path != req.role.path {
        return Err(IrsaError::RolePathDiffers {
            role: req.role.name.clone(),
            existing: role.path.clone(),
            existing_trimmed: role.path.trim_start_matches('/').to_owned(),
            wanted: req.role.path.clone(),
        });
    }
    Ok(())
}

/// `irsa create`: the role, its trust and policies, and the ServiceAccount annotations, as
/// wanted; only differences become writes.
pub fn plan_irsa_create(req: &IrsaRequest, observed: &IrsaObserved) -> Result<IrsaPlan, IrsaError> {
    check_request(req)?;
    let provider_arn = observed
        .oidc_provider
        .clone()
        .ok_or_else(|| IrsaError::NoOidcProvider {
            cluster: req.cluster_name.clone(),
            issuer: req.issuer_host_path.clone(),
        })?;
    if !req.role_only && observed.namespace_exists == Some(false) {
        return Err(IrsaError::NamespaceMissing(req.namespace.clone()));
    }
    let role = req.role.name.clone();
    let trust = trust_policy(&provider_arn, &req.issuer_host_path, &req.subjects());
    let wanted_policies: BTreeSet<String> = req.attach_policy_arns.iter().cloned().collect();
    let mut steps = Vec::new();
    let mut warnings = Vec::new();

    let existing = observed.role.as_ref();
    let role_arn = match existing {
        Some(facts) => {
            check_existing_role(req, facts)?;
            facts.arn.clone()
        }
        None => req.role_arn(),
    };

    match existing {
        None => {
            let mut tags = role_tags(req);
            tags.extend(
                wanted_policies
                    .iter()
                    .map(|arn| (attached_policy_tag(arn), arn.clone())),
            );
            steps.push(IrsaStep::iam(
                "IAMRole",
                &role,
                Change::Created,
                IamAction::CreateRole {
                    role: role.clone(),
                    path: req.role.path.clone(),
                    trust_policy: trust.clone(),
                    description: role_description(req),
                    tags,
                },
            ));
            if let Some(doc) = &req.inline_policy {
                steps.push(IrsaStep::iam(
                    "IAMInlinePolicy",
                    INLINE_POLICY_NAME,
                    Change::Created,
                    IamAction::PutInlinePolicy {
                        role: role.clone(),
                        policy_name: INLINE_POLICY_NAME.to_owned(),
                        document: doc.clone(),
                    },
                ));
            }
            for arn in &wanted_policies {
                steps.push(IrsaStep::iam(
                    "IAMPolicyAttachment",
                    arn,
                    Change::Created,
                    IamAction::AttachManagedPolicy {
                        role: role.clone(),
                        policy_arn: arn.clone(),
                    },
                ));
            }
        }
        Some(facts) => {
            // Trust.
            if policy_documents_equal(&facts.trust_policy, &trust) {
                steps.push(IrsaStep::iam(
                    "IAMRole",
                    &role,
                    Change::Unchanged,
                    IamAction::None,
                ));
            } else {
                steps.push(IrsaStep::iam(
                    "IAMRole",
                    &role,
                    Change::Updated,
                    IamAction::UpdateTrust {
                        role: role.clone(),
                        trust_policy: trust.clone(),
                    },
                ));
            }
            // Inline policy (only ours, by name).
            match (
                &req.inline_policy,
                facts.inline_policies.get(INLINE_POLICY_NAME),
            ) {
                (Some(doc), Some(live)) if policy_documents_equal(doc, live) => {
                    steps.push(IrsaStep::iam(
                        "IAMInlinePolicy",
                        INLINE_POLICY_NAME,
                        Change::Unchanged,
                        IamAction::None,
                    ));
                }
                (Some(doc), live) => steps.push(IrsaStep::iam(
                    "IAMInlinePolicy",
                    INLINE_POLICY_NAME,
                    if live.is_some() {
                        Change::Updated
                    } else {
                        Change::Created
                    },
                    IamAction::PutInlinePolicy {
                        role: role.clone(),
                        policy_name: INLINE_POLICY_NAME.to_owned(),
                        document: doc.clone(),
                    },
                )),
                (None, Some(_)) => steps.push(IrsaStep::iam(
                    "IAMInlinePolicy",
                    INLINE_POLICY_NAME,
                    Change::Deleted,
                    IamAction::DeleteInlinePolicy {
                        role: role.clone(),
                        policy_name: INLINE_POLICY_NAME.to_owned(),
                    },
                )),
                (None, None) => {}
            }
            // Managed policies: attach what is missing (and track it), detach what we
            // attached and is no longer asked for, leave others' attachments alone.
            let tracked = tracked_policies(&facts.tags);
            let attached: BTreeSet<&String> = facts.attached_policy_arns.iter().collect();
            let to_attach: Vec<&String> = wanted_policies
                .iter()
                .filter(|arn| !attached.contains(arn))
                .collect();
            let new_tags: Vec<(String, String)> = to_attach
                .iter()
                .filter(|arn| !tracked.contains_key(arn.as_str()))
                .map(|arn| (attached_policy_tag(arn), (*arn).clone()))
                .collect();
            // Tag before attaching: a failure in between leaves a tag a re-run reconciles.
            if !new_tags.is_empty() {
                steps.push(IrsaStep {
                    kind: "IAMRoleTags",
                    name: role.clone(),
                    namespace: None,
                    change: Change::Updated,
                    action: IrsaAction::TagRole {
                        role: role.clone(),
                        tags: new_tags,
                    },
                });
            }
            for arn in &wanted_policies {
                let (change, iam) = if attached.contains(arn) {
                    (Change::Unchanged, IamAction::None)
                } else {
                    (
                        Change::Created,
                        IamAction::AttachManagedPolicy {
                            role: role.clone(),
                            policy_arn: arn.clone(),
                        },
                    )
                };
                steps.push(IrsaStep::iam("IAMPolicyAttachment", arn, change, iam));
            }
            let mut stale_keys = Vec::new();
            for (arn, key) in &tracked {
                if wanted_policies.contains(arn) {
                    continue;
                }
                if attached.contains(arn) {
                    steps.push(IrsaStep::iam(
                        "IAMPolicyAttachment",
                        arn,
                        Change::Deleted,
                        IamAction::DetachManagedPolicy {
                            role: role.clone(),
                            policy_arn: arn.clone(),
                        },
                    ));
                }
                stale_keys.push(key.clone());
            }
            // Untag after detaching, for the same reason.
            if !stale_keys.is_empty() {
                steps.push(IrsaStep {
                    kind: "IAMRoleTags",
                    name: role.clone(),
                    namespace: None,
                    change: Change::Updated,
                    action: IrsaAction::UntagRole {
                        role: role.clone(),
                        keys: stale_keys,
                    },
                });
            }
            for arn in facts
                .attached_policy_arns
                .iter()
                .filter(|a| !wanted_policies.contains(*a) && !tracked.contains_key(*a))
            {
                warnings.push(format!(
                    "IAM role {role} also has {arn} attached, not by kubectl-mlplatform; left as it is"
                ));
            }
        }
    }

    if !req.role_only {
        for sa in &req.service_accounts {
            steps.push(plan_annotate(req, observed, sa, &role_arn, &mut warnings));
        }
        // ServiceAccounts the old trust admitted and the new one does not: drop our annotation.
        if let Some(facts) = existing {
            let wanted: BTreeSet<(String, String)> = req
                .service_accounts
                .iter()
                .map(|sa| sa_key(&req.namespace, sa))
                .collect();
            for key in subjects_in_trust(&facts.trust_policy, &req.issuer_host_path) {
                if wanted.contains(&key) {
                    continue;
                }
                if let Some(step) = plan_unannotate(observed, &key, &role_arn, false) {
                    steps.push(step);
                }
            }
        }
    }

    Ok(IrsaPlan {
        role_name: role,
        role_arn,
        namespace: req.namespace.clone(),
        service_accounts: req.service_accounts.clone(),
        trust_policy: trust,
        inline_policy: req.inline_policy.clone(),
        attached_policy_arns: wanted_policies.into_iter().collect(),
        steps,
        warnings,
    })
}

fn plan_annotate(
    req: &IrsaRequest,
    observed: &IrsaObserved,
    sa: &str,
    role_arn: &str,
    warnings: &mut Vec<String>,
) -> IrsaStep {
    let live = observed
        .service_accounts
        .get(&sa_key(&req.namespace, sa))
        .cloned()
        .flatten();
    let (change, action) = match live {
        None => (
            Change::Created,
            IrsaAction::CreateServiceAccount {
                body: new_service_account(&req.namespace, sa, role_arn),
            },
        ),
        Some(live) => match role_annotation(&live) {
            Some(current) if current == role_arn => (Change::Unchanged, IrsaAction::None),
            other => {
                if let Some(current) = other {
                    warnings.push(format!(
                        "ServiceAccount {}: {} was {current}, now {role_arn}",
                        sa_display(&req.namespace, sa),
                        eks::ROLE_ARN
                    ));
                }
                (
                    Change::Updated,
                    IrsaAction::PatchServiceAccount {
                        namespace: req.namespace.clone(),
                        name: sa.to_owned(),
                        patch: json!({"metadata": {"annotations": {eks::ROLE_ARN: role_arn}}}),
                    },
                )
            }
        },
    };
    IrsaStep {
        kind: "ServiceAccount",
        name: sa.to_owned(),
        namespace: Some(req.namespace.clone()),
        change,
        action,
    }
}

/// Removes our annotation from a ServiceAccount (deletes the SA when `delete_created` and we
/// created it). None when there is nothing of ours on it.
fn plan_unannotate(
    observed: &IrsaObserved,
    key: &(String, String),
    role_arn: &str,
    delete_created: bool,
) -> Option<IrsaStep> {
    let (namespace, name) = key;
    let step = |change, action| IrsaStep {
        kind: "ServiceAccount",
        name: name.clone(),
        namespace: Some(namespace.clone()),
        change,
        action,
    };
    let live = observed.service_accounts.get(key)?.as_ref()?;
    let points_here = role_annotation(live).is_some_and(|a| same_role_arn(a, role_arn));
    if delete_created && created_by_us(live) && (points_here || role_annotation(live).is_none()) {
        return Some(step(
            Change::Deleted,
            IrsaAction::DeleteServiceAccount {
                namespace: namespace.clone(),
                name: name.clone(),
            },
        ));
    }
    points_here.then(|| {
        step(
            Change::Updated,
            IrsaAction::PatchServiceAccount {
                namespace: namespace.clone(),
                name: name.clone(),
                patch: json!({"metadata": {"annotations": {eks::ROLE_ARN: null}}}),
            },
        )
    })
}

/// The ServiceAccounts `irsa delete` must look at: the ones asked for and every one the
/// role's trust admits.
pub fn service_accounts_to_read(
    req: &IrsaRequest,
    role: Option<&RoleFacts>,
) -> BTreeSet<(String, String)> {
    let mut keys: BTreeSet<(String, String)> = req
        .service_accounts
        .iter()
        .map(|sa| sa_key(&req.namespace, sa))
        .collect();
    if let Some(role) = role {
        keys.extend(subjects_in_trust(&role.trust_policy, &req.issuer_host_path));
    }
    keys
}

/// `irsa delete`: ServiceAccounts first (annotation removed; deleted when we created them),
/// then the role (only when tagged as ours), with its policies.
pub fn plan_irsa_delete(req: &IrsaRequest, observed: &IrsaObserved) -> Result<IrsaPlan, IrsaError> {
    check_request(req)?;
    let role = req.role.name.clone();
    let existing = observed.role.as_ref();
    if let Some(facts) = existing {
        check_existing_role(req, facts)?;
    }
    let role_arn = existing.map_or_else(|| req.role_arn(), |r| r.arn.clone());
    let mut steps = Vec::new();
    if !req.role_only {
        for key in service_accounts_to_read(req, existing) {
            match plan_unannotate(observed, &key, &role_arn, true) {
                Some(step) => steps.push(step),
                None => steps.push(IrsaStep {
                    kind: "ServiceAccount",
                    name: key.1.clone(),
                    namespace: Some(key.0.clone()),
                    change: if observed
                        .service_accounts
                        .get(&key)
                        .is_some_and(Option::is_some)
                    {
                        Change::Unchanged
                    } else {
                        Change::Absent
                    },
                    action: IrsaAction::None,
                }),
            }
        }
    }
    match existing {
        Some(_) => steps.push(IrsaStep::iam(
            "IAMRole",
            &role,
            Change::Deleted,
            IamAction::DeleteRole { role: role.clone() },
        )),
        None => steps.push(IrsaStep::iam(
            "IAMRole",
            &role,
            Change::Absent,
            IamAction::None,
        )),
    }
    Ok(IrsaPlan {
        role_name: role,
        role_arn,
        namespace: req.namespace.clone(),
        service_accounts: req.service_accounts.clone(),
        trust_policy: existing
            .map(|r| r.trust_policy.clone())
            .unwrap_or(Value::Null),
        inline_policy: existing.and_then(|r| r.inline_policies.get(INLINE_POLICY_NAME).cloned()),
        attached_policy_arns: existing
            .map(|r| r.attached_policy_arns.clone())
            .unwrap_or_default(),
        steps,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
