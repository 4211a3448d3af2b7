//! Vendor profiles are data: YAML embedded in the binary (`src/profiles/*.yaml`) or a user's
//! file, one schema for both. Unknown keys are errors reported with their path, so a typo never
//! silently drops a permission or a step.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use mlplatform_namespace_policy::EnforcementMode;
use serde::{Deserialize, Serialize};

use crate::vocabulary::{PROFILE_API_VERSION, PROFILE_KIND};

mod vars;

pub use vars::{TemplateError, Vars};

/// The built-in profiles, in the order `profiles list` shows them.
pub(crate) const BUILTIN: [(&str, &str); 4] = [
    ("concurrent", include_str!("profiles/concurrent.yaml")),
    ("hopsworks", include_str!("profiles/hopsworks.yaml")),
    ("arthur", include_str!("profiles/arthur.yaml")),
    (
        "sagemaker-operator",
        include_str!("profiles/sagemaker-operator.yaml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "unknown profile {name:?}; use one of {known} (`kubectl mlplatform profiles list`) or a path to a YAML file"
    )]
    Unknown { name: String, known: String },
    #[error("profile {source_name}: cannot read the file: {error}; check the path")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("profile {source_name}: {path}: {message}; fix the profile file")]
    Parse {
        source_name: String,
        path: String,
        message: String,
    },
    #[error("profile {source_name}: {message}; fix the profile file")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("{0}")]
    Template(#[from] TemplateError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) metadata: ProfileMetadata,
    pub(crate) spec: ProfileSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProfileMetadata {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProfileSpec {
    /// Values the user supplies (`--vendor-account`, `--param name=value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) parameters: Vec<Parameter>,
    /// A role in the customer's account that the vendor assumes from its own account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) vendor_role: Option<VendorRole>,
    /// Cluster access for an IAM role: aws-auth `mapRoles` entry with a username and named group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cluster_access: Option<ClusterAccess>,
    /// The per-namespace bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<NamespaceBundle>,
    /// IAM OIDC provider for the cluster's issuer (issue 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) oidc_provider: Option<OidcProvider>,
    /// IRSA roles for service accounts (issue 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) irsa_roles: Vec<IrsaRole>,
    /// A StorageClass, optionally the only default one (issue 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage_class: Option<StorageClassSpec>,
    /// Inline policies put on a role that already exists (issue 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) existing_role_policies: Vec<ExistingRolePolicies>,
    /// Ingress rules on the cluster security group (hopsworks: TCP 80 and 443 from its network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) security_group_ingress: Option<SecurityGroupIngress>,
    /// Steps this tool does not carry out itself: printed by connect, repeated by doctor, with
    /// the exact command filled in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) manual_steps: Vec<ManualStep>,
    /// CRDs of the vendor's operator that doctor looks for (installed by the vendor's own
    /// installer, not by connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) operator_crds: Option<OperatorCrds>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OperatorCrds {
    /// API group of the CRDs (`sagemaker.aws.amazon.com` matches `*.sagemaker.aws.amazon.com`).
    pub(crate) group: String,
    /// How to install the operator when they are absent (a template).
    pub(crate) install_hint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ParameterType {
    #[default]
    String,
    AccountId,
    RoleArn,
    /// An S3 bucket name (3-63 lowercase letters, digits, '.', '-').
    S3Bucket,
    /// A KMS key ARN (`arn:PARTITION:kms:REGION:ACCOUNT:key/ID`) or alias ARN.
    KmsKeyArn,
    /// An IPv4 or IPv6 CIDR block (`10.1.0.0/16`, `2600:1f18::/56`), no host bits set.
    Cidr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Parameter {
    pub(crate) name: String,
    /// The dedicated command-line flag that fills it (`vendor-account` → `--vendor-account`);
    /// every parameter can also be given as `--param name=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flag: Option<String>,
    #[serde(default, rename = "type")]
    pub(crate) kind: ParameterType,
    #[serde(default)]
    pub(crate) required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct InlinePolicy {
    pub(crate) name: String,
    pub(crate) document: serde_json::Value,
    /// A parameter name: the policy exists only when that parameter is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) only_if: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct VendorRole {
    /// Template; the result is shortened to IAM's 64 characters with a hash suffix.
    pub(crate) name: String,
    #[serde(default = "default_iam_path")]
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) description: String,
    /// Account the vendor assumes the role from: trust `arn:aws:iam::ACCOUNT:root`.
    pub(crate) trust_account: String,
    /// Require an `sts:ExternalId` condition (confused-deputy protection).
    #[serde(default)]
    pub(crate) external_id: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) inline_policies: Vec<InlinePolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) managed_policy_arns: Vec<String>,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn default_iam_path() -> String {
    "/".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClusterAccess {
    /// The role to map; defaults to the profile's vendor role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) role_arn: Option<String>,
    pub(crate) username: String,
    /// Named group; the bundle binds it to what the vendor needs, per namespace.
    pub(crate) group: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RbacRule {
    #[serde(default)]
    pub(crate) api_groups: Vec<String>,
    #[serde(default)]
    pub(crate) resources: Vec<String>,
    pub(crate) verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) resource_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RoleSpec {
    pub(crate) name: String,
    pub(crate) rules: Vec<RbacRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct NamespaceBundle {
    /// Namespace used when neither `-n` nor the kubeconfig context names one.
    pub(crate) default_name: String,
    #[serde(default, with = "enforcement_serde")]
    pub(crate) enforcement: EnforcementMode,
    /// Created once per cluster; bound inside each namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) system_cluster_role: Option<RoleSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) system_service_account: Option<String>,
    /// RoleBinding of the system ServiceAccount to the system ClusterRole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) system_role_binding: Option<String>,
    /// RoleBinding of `clusterAccess.group` to the system ClusterRole, in this namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) vendor_role_binding: Option<String>,
    /// Other ServiceAccounts workloads may run as (not created by the bundle).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) extra_system_service_accounts: Vec<String>,
    /// false: the vendor's installer creates the ServiceAccounts (a Helm chart would refuse to
    /// adopt ours); the bundle only names them in the namespace policy.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub(crate) create_service_accounts: bool,
    pub(crate) user_service_account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_role: Option<RoleSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_role_binding: Option<String>,
}

mod enforcement_serde {
    use mlplatform_namespace_policy::EnforcementMode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        mode: &EnforcementMode,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(mode.as_str())
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<EnforcementMode, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OidcProvider {
    #[serde(default = "default_client_ids")]
    pub(crate) client_ids: Vec<String>,
}

fn default_client_ids() -> Vec<String> {
    vec!["sts.amazonaws.com".to_owned()]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IrsaRole {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) service_accounts: Vec<String>,
    #[serde(default)]
    pub(crate) annotate_service_accounts: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) inline_policies: Vec<InlinePolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) managed_policy_arns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StorageClassSpec {
    pub(crate) name: String,
    pub(crate) provisioner: String,
    #[serde(default)]
    pub(crate) make_default: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) parameters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reclaim_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) volume_binding_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allow_volume_expansion: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ExistingRolePolicies {
    pub(crate) role_arn: String,
    /// A parameter name: the step exists only when that parameter is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) only_if: Option<String>,
    pub(crate) inline_policies: Vec<InlinePolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ManualStep {
    pub(crate) name: String,
    /// A parameter name: the step is left out when that parameter is given (the tool then
    /// does it itself, e.g. `securityGroupIngress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unless: Option<String>,
    pub(crate) description: String,
    /// The command to run, a template (`${clusterSecurityGroupId}`, parameters, ...).
    pub(crate) command: String,
}

/// TCP ports opened on the cluster security group (`resourcesVpcConfig.clusterSecurityGroupId`)
/// from one CIDR block; each rule is described as made by kubectl-mlplatform for the profile
/// and cluster, which is how re-runs, disconnect and doctor find exactly these rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SecurityGroupIngress {
    /// A parameter name: the rules exist only when that parameter is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) only_if: Option<String>,
    /// The source CIDR block, a template (e.g. `${hopsworksVpcCidr}`).
    pub(crate) cidr: String,
    pub(crate) tcp_ports: Vec<u16>,
}

/// A step kind a profile may use; `connect` refuses up front when one is not implemented yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepKind {
    VendorRole,
    ClusterAccess,
    NamespaceBundle,
    OidcProvider,
    IrsaRoles,
    StorageClass,
    ExistingRolePolicies,
    SecurityGroupIngress,
    ManualSteps,
}

impl StepKind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::VendorRole => "vendorRole",
            Self::ClusterAccess => "clusterAccess",
            Self::NamespaceBundle => "namespace",
            Self::OidcProvider => "oidcProvider",
            Self::IrsaRoles => "irsaRoles",
            Self::StorageClass => "storageClass",
            Self::ExistingRolePolicies => "existingRolePolicies",
            Self::SecurityGroupIngress => "securityGroupIngress",
            Self::ManualSteps => "manualSteps",
        }
    }
    /// What `connect`/`disconnect`/`doctor` carry out in this version.
    pub(crate) const fn is_implemented(self) -> bool {
        true
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RBAC verbs the API server knows; anything else (the seed's "post") grants nothing.
const KNOWN_VERBS: [&str; 14] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "impersonate",
    "bind",
    "escalate",
    "use",
    "approve",
    "*",
];

/// Resources that live outside the core group; listing them under `""` grants nothing.
const NON_CORE_RESOURCES: [(&str, &str); 8] = [
    ("jobs", "batch"),
    ("cronjobs", "batch"),
    ("deployments", "apps"),
    ("replicasets", "apps"),
    ("statefulsets", "apps"),
    ("daemonsets", "apps"),
    ("ingresses", "networking.k8s.io"),
    ("roles", "rbac.authorization.k8s.io"),
];

impl Profile {
    pub(crate) fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Step kinds the profile uses, in execution order.
    pub(crate) fn step_kinds(&self) -> Vec<StepKind> {
        let s = &self.spec;
        let mut out = Vec::new();
        if !s.existing_role_policies.is_empty() {
            out.push(StepKind::ExistingRolePolicies);
        }
        if s.oidc_provider.is_some() {
            out.push(StepKind::OidcProvider);
        }
        if s.vendor_role.is_some() {
            out.push(StepKind::VendorRole);
        }
        if !s.irsa_roles.is_empty() {
            out.push(StepKind::IrsaRoles);
        }
        if s.cluster_access.is_some() {
            out.push(StepKind::ClusterAccess);
        }
        if s.storage_class.is_some() {
            out.push(StepKind::StorageClass);
        }
        if s.namespace.is_some() {
            out.push(StepKind::NamespaceBundle);
        }
        if s.security_group_ingress.is_some() {
            out.push(StepKind::SecurityGroupIngress);
        }
        if !s.manual_steps.is_empty() {
            out.push(StepKind::ManualSteps);
        }
        out
    }

    /// Step kinds this version cannot carry out yet (`connect` refuses before any I/O).
    pub(crate) fn unimplemented_steps(&self) -> Vec<StepKind> {
        self.step_kinds()
            .into_iter()
            .filter(|k| !k.is_implemented())
            .collect()
    }

    /// Semantic checks serde cannot express.
    fn validate(&self) -> Result<(), String> {
        if self.api_version != PROFILE_API_VERSION {
            return Err(format!(
                "apiVersion: expected {PROFILE_API_VERSION:?}, found {:?}",
                self.api_version
            ));
        }
        if self.kind != PROFILE_KIND {
            return Err(format!(
                "kind: expected {PROFILE_KIND:?}, found {:?}",
                self.kind
            ));
        }
        if self.metadata.name.trim().is_empty() {
            return Err("metadata.name: must not be empty".to_owned());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.spec.parameters.iter().enumerate() {
            if !seen.insert(p.name.as_str()) {
                return Err(format!(
                    "spec.parameters[{i}].name: duplicate parameter {:?}",
                    p.name
                ));
            }
        }
        if let Some(bundle) = &self.spec.namespace {
            let roles = [
                ("systemClusterRole", &bundle.system_cluster_role),
                ("userRole", &bundle.user_role),
            ];
            for (field, role) in roles {
                if let Some(role) = role {
                    validate_rules(&format!("spec.namespace.{field}"), &role.rules)?;
                }
            }
            if bundle.system_role_binding.is_some()
                && (bundle.system_cluster_role.is_none() || bundle.system_service_account.is_none())
            {
                return Err("spec.namespace.systemRoleBinding: needs systemClusterRole and systemServiceAccount".to_owned());
            }
            if bundle.vendor_role_binding.is_some()
                && (bundle.system_cluster_role.is_none() || self.spec.cluster_access.is_none())
            {
                return Err("spec.namespace.vendorRoleBinding: needs systemClusterRole and spec.clusterAccess".to_owned());
            }
            if bundle.user_role_binding.is_some() != bundle.user_role.is_some() {
                return Err(
                    "spec.namespace.userRoleBinding: userRole and userRoleBinding go together"
                        .to_owned(),
                );
            }
        }
        let declared: Vec<&str> = self
            .spec
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let tree = serde_json::to_value(&self.spec).map_err(|e| e.to_string())?;
        check_placeholders("spec", &tree, &declared)?;
        let mut conditions: Vec<(String, &Option<String>)> = Vec::new();
        for (i, e) in self.spec.existing_role_policies.iter().enumerate() {
            conditions.push((format!("spec.existingRolePolicies[{i}].onlyIf"), &e.only_if));
            for (j, p) in e.inline_policies.iter().enumerate() {
                conditions.push((
                    format!("spec.existingRolePolicies[{i}].inlinePolicies[{j}].onlyIf"),
                    &p.only_if,
                ));
            }
        }
        if let Some(ingress) = &self.spec.security_group_ingress {
            let field = "spec.securityGroupIngress";
            conditions.push((format!("{field}.onlyIf"), &ingress.only_if));
            if ingress.tcp_ports.is_empty() || ingress.tcp_ports.contains(&0) {
                return Err(format!("{field}.tcpPorts: list ports from 1 to 65535"));
            }
        }
        for (i, m) in self.spec.manual_steps.iter().enumerate() {
            conditions.push((format!("spec.manualSteps[{i}].unless"), &m.unless));
        }
        for (i, r) in self.spec.irsa_roles.iter().enumerate() {
            for (j, p) in r.inline_policies.iter().enumerate() {
                conditions.push((
                    format!("spec.irsaRoles[{i}].inlinePolicies[{j}].onlyIf"),
                    &p.only_if,
                ));
            }
        }
        for (path, condition) in conditions {
            if let Some(name) = condition
                && !declared.contains(&name.as_str())
            {
                return Err(format!(
                    "{path}: {name:?} is not a parameter of this profile (declare it in spec.parameters)"
                ));
            }
        }
        if !self.spec.irsa_roles.is_empty() && self.spec.oidc_provider.is_none() {
            return Err(
                "spec.irsaRoles: needs spec.oidcProvider (IRSA trusts the cluster's OIDC provider)"
                    .to_owned(),
            );
        }
        if let Some(access) = &self.spec.cluster_access
            && access.role_arn.is_none()
            && self.spec.vendor_role.is_none()
        {
            return Err(
                "spec.clusterAccess.roleArn: required when the profile has no vendorRole"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// Placeholders every profile may use; parameters add their own names.
pub(crate) const BUILTIN_PLACEHOLDERS: [&str; 11] = [
    "profile",
    "cluster",
    "clusterArn",
    "region",
    "account",
    "partition",
    "namespace",
    "oidcIssuer",
    "oidcProviderArn",
    "clusterSecurityGroupId",
    "roleArn",
];

/// Every `${name}` must be a built-in or a declared parameter: a typo is caught at load time
/// with its path, not halfway through a connect.
fn check_placeholders(
    path: &str,
    value: &serde_json::Value,
    declared: &[&str],
) -> Result<(), String> {
    use serde_json::Value;
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    return Err(format!("{path}: unterminated ${{ in {text:?}"));
                };
                let name = &after[..end];
                if !BUILTIN_PLACEHOLDERS.contains(&name) && !declared.contains(&name) {
                    return Err(format!(
                        "{path}: unknown placeholder ${{{name}}} (built-in: {}; or declare it in spec.parameters)",
                        BUILTIN_PLACEHOLDERS.join(", ")
                    ));
                }
                rest = &after[end + 1..];
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_placeholders(&format!("{path}[{i}]"), v, declared)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_placeholders(&format!("{path}.{k}"), v, declared)),
        _ => Ok(()),
    }
}

fn validate_rules(field: &str, rules: &[RbacRule]) -> Result<(), String> {
    for (i, rule) in rules.iter().enumerate() {
        for verb in &rule.verbs {
            if !KNOWN_VERBS.contains(&verb.as_str()) {
                return Err(format!(
                    "{field}.rules[{i}].verbs: {verb:?} is not a Kubernetes RBAC verb (use one of {})",
                    KNOWN_VERBS.join(", ")
                ));
            }
        }
        if rule.api_groups.iter().any(|g| g.is_empty()) {
            for resource in &rule.resources {
                let base = resource.split('/').next().unwrap_or(resource);
                if let Some((_, group)) = NON_CORE_RESOURCES.iter().find(|(r, _)| *r == base) {
                    return Err(format!(
                        "{field}.rules[{i}].resources: {resource:?} is in API group {group:?}, not the core group \"\""
                    ));
                }
            }
        }
        if rule.verbs.is_empty() {
            return Err(format!("{field}.rules[{i}].verbs: must not be empty"));
        }
    }
    Ok(())
}

/// Parses profile YAML; `source_name` is what errors call it (a file path or a built-in name).
pub(crate) fn parse_profile(source_name: &str, yaml: &str) -> Result<Profile, ProfileError> {
    let de = serde_yaml_ng::Deserializer::from_str(yaml);
    let profile: Profile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let mut message = e.into_inner().to_string();
        // serde_yaml_ng prefixes its own (shorter) path; ours is the full one. Its trailing
        // " at line N column M" stays: it helps find the key.
        if let Some((prefix, rest)) = message.split_once(": ")
            && !prefix.contains(' ')
            && path.starts_with(prefix)
        {
            message = rest.to_owned();
        }
        ProfileError::Parse {
            source_name: source_name.to_owned(),
            path: if path == "." {
                "(document)".to_owned()
            } else {
                path
            },
            message,
        }
    })?;
    profile
        .validate()
        .map_err(|message| ProfileError::Invalid {
            source_name: source_name.to_owned(),
            message,
        })?;
    Ok(profile)
}

/// A built-in name, or a path to a YAML file (anything with a `/` or a `.yaml`/`.yml` suffix).
pub fn load_profile(name_or_path: &str) -> Result<Profile, ProfileError> {
    if let Some((name, yaml)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        return parse_profile(name, yaml);
    }
    let looks_like_path = name_or_path.contains('/')
        || name_or_path.ends_with(".yaml")
        || name_or_path.ends_with(".yml");
    if looks_like_path || Path::new(name_or_path).is_file() {
        let yaml = std::fs::read_to_string(name_or_path).map_err(|error| ProfileError::Read {
            source_name: name_or_path.to_owned(),
            error,
        })?;
        return parse_profile(name_or_path, &yaml);
    }
    Err(ProfileError::Unknown {
        name: name_or_path.to_owned(),
        known: BUILTIN
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Every built-in profile, parsed.
pub(crate) fn builtin_profiles() -> Result<Vec<Profile>, ProfileError> {
    BUILTIN
        .iter()
        .map(|(name, yaml)| parse_profile(name, yaml))
        .collect()
}

#[cfg(test)]
mod tests;
