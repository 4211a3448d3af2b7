//! `irsa migrate`, pure: one role from IRSA to EKS Pod Identity (`--to pod-identity`) and back
//! (`--to irsa`), for the ServiceAccounts its trust names (through the OIDC provider or EKS Pod
//! Identity of this cluster, so a run stopped half-way finds them again).
//!
//! `--to pod-identity`, in this order (the plan runs one step at a time): the Pod Identity
//! trust statements are added beside the OIDC ones; one association per ServiceAccount; with
//! `--remove-oidc-trust`, the OIDC statements go and then the role-arn annotations, once the
//! associations exist. `--to irsa` is the mirror image: the OIDC statement back, the
//! annotations back, our associations deleted, the Pod Identity statements removed. Every
//! step compares with what was read, so a re-run at any point writes only what is left.
//!
//! Only roles kubectl-mlplatform made for this cluster are migrated, unless the user names
//! the role with `--role-arn`.

use std::collections::{BTreeMap, BTreeSet};

use mlplatform_namespace_policy::eks;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::IrsaError;
use super::model::{iam_step, rendered_write, sa_step};
use super::trust::{subject, subjects_in_trust, trust_policy};
use crate::common::Change;
use crate::facts::{PodIdentityFacts, RoleFacts, ServiceAccountKey};
use crate::output::Summary;
use crate::pod_identity::{
    self as pi, AssociationTarget, Identity, default_ownership_tags, ownership_tags,
    plan_association, plan_association_removal, rewrite_trust, same_role, statements,
};
use crate::steps::{IamAction, KubeAction, Plan, Step};
use crate::vocabulary::{RoleMaker, role_is_ours};

/// Everything `irsa migrate` was asked for, resolved with the cluster's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MigrateRequest {
    pub(crate) cluster_name: String,
    pub(crate) cluster_arn: String,
    /// `oidc.eks.REGION.amazonaws.com/id/ABC`.
    pub(crate) issuer_host_path: String,
    pub(crate) to: Identity,
    /// The role as the user named it (name, or the `--role-arn`).
    pub(crate) role: String,
    /// `--role-arn` was given: the role may be one kubectl-mlplatform did not make.
    pub(crate) named_by_arn: bool,
    /// `--service-account`s given: each must be one the role's trust names.
    pub(crate) service_accounts: Vec<ServiceAccountKey>,
    pub(crate) remove_oidc_trust: bool,
    pub(crate) replace_association: bool,
}

/// What preflight read.
#[derive(Debug, Clone, Default)]
pub(crate) struct MigrateObserved {
    pub(crate) role: Option<RoleFacts>,
    /// The IAM OIDC provider ARN for the cluster's issuer, if it exists.
    pub(crate) oidc_provider: Option<String>,
    /// Live ServiceAccounts by (namespace, name); None: read and not found.
    pub(crate) service_accounts: BTreeMap<ServiceAccountKey, Option<Value>>,
    pub(crate) pod_identity: PodIdentityFacts,
}

/// What `irsa migrate` prints besides the change rows.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MigrateOutputs {
    pub(crate) role_arn: String,
    pub(crate) role_name: String,
    pub(crate) identity: Identity,
    pub(crate) service_accounts: Vec<String>,
    /// The trust policy once every step ran.
    #[serde(skip)]
    pub(crate) trust_policy: Value,
}

pub(crate) type MigratePlan = Plan<MigrateOutputs>;

impl Summary for MigrateOutputs {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("roleArn", self.role_arn.clone()),
            ("identity", self.identity.flag_value().to_owned()),
            ("serviceAccounts", self.service_accounts.join(", ")),
        ]
    }
    fn rendered(plan: &Plan<Self>) -> Value {
        let writes: Vec<Value> = plan
            .steps
            .iter()
            .filter(|s| s.sends())
            .filter_map(rendered_write)
            .collect();
        json!({"trustPolicy": plan.outputs.trust_policy, "writes": writes})
    }
}

/// A statement trusting the cluster's OIDC provider (web identity).
fn is_oidc_statement(statement: &Value, issuer_host_path: &str) -> bool {
    let suffix = format!(":oidc-provider/{}", issuer_host_path.to_ascii_lowercase());
    let federated = match &statement["Principal"]["Federated"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    federated
        .iter()
        .any(|f| f.to_ascii_lowercase().ends_with(&suffix))
}

/// The IAM step that changes the role's trust statements of one kind (`what`).
fn trust_step(role: &str, what: &str, change: Change, trust: &Value) -> Step {
    let action = if change.is_write() {
        IamAction::UpdateTrust {
            role: role.to_owned(),
            trust_policy: trust.clone(),
        }
    } else {
        IamAction::None
    };
    iam_step(
        "IAMTrustStatement",
        format!("{role}/{what}"),
        change,
        action,
    )
}

fn annotation(live: &Value) -> Option<&str> {
    live["metadata"]["annotations"][eks::ROLE_ARN].as_str()
}

/// The ServiceAccount's role-arn annotation: set to the role (`Some`) or, when it names the
/// role, removed (`None`). A ServiceAccount that does not exist is left to whoever makes it.
fn annotation_step(
    observed: &MigrateObserved,
    (namespace, name): &ServiceAccountKey,
    role_arn: &str,
    set: bool,
    warnings: &mut Vec<String>,
) -> Step {
    let live = observed
        .service_accounts
        .get(&(namespace.clone(), name.clone()))
        .cloned()
        .flatten();
    let Some(live) = live else {
        if set {
            warnings.push(format!(
                "ServiceAccount {namespace}/{name} does not exist; give it the annotation {}={role_arn} when it is created",
                eks::ROLE_ARN
            ));
        }
        return sa_step(namespace, name, Change::Absent, KubeAction::None);
    };
    let current = annotation(&live);
    let names_role = current.is_some_and(|a| same_role(a, role_arn));
    let (change, patch) = match (set, names_role) {
        (true, true) | (false, false) => (Change::Unchanged, None),
        (true, false) => (Change::Updated, Some(json!(role_arn))),
        (false, true) => (Change::Updated, Some(Value::Null)),
    };
    match patch {
        Some(value) => sa_step(
            namespace,
            name,
            change,
            KubeAction::MergePatch(json!({"metadata": {"annotations": {eks::ROLE_ARN: value}}})),
        ),
        None => sa_step(namespace, name, change, KubeAction::None),
    }
}

fn association_target<'a>(
    req: &'a MigrateRequest,
    role: &'a RoleFacts,
    observed: &'a MigrateObserved,
    (namespace, service_account): &'a ServiceAccountKey,
) -> AssociationTarget<'a> {
    AssociationTarget {
        cluster: &req.cluster_name,
        namespace,
        service_account,
        role: &role.arn,
        live: observed
            .pod_identity
            .associations_of(namespace, service_account),
    }
}

/// The role, checked: it exists, and is ours unless named with `--role-arn`.
fn checked_role<'a>(
    req: &MigrateRequest,
    observed: &'a MigrateObserved,
) -> Result<(&'a RoleFacts, bool), IrsaError> {
    let role = observed
        .role
        .as_ref()
        .ok_or_else(|| IrsaError::RoleMissing(req.role.clone()))?;
    let ours = role_is_ours(&role.tags, &req.cluster_arn, RoleMaker::Any);
    if !ours && !req.named_by_arn {
        return Err(IrsaError::MigrateRoleNotOurs {
            role: role.name.clone(),
            cluster: req.cluster_name.clone(),
        });
    }
    Ok((role, ours))
}

/// `irsa migrate`: the ordered steps (run one at a time, in this order) and what to print.
pub(crate) fn plan_migrate(
    req: &MigrateRequest,
    observed: &MigrateObserved,
) -> Result<MigratePlan, IrsaError> {
    let (role, ours) = checked_role(req, observed)?;
    let live = &role.trust_policy;
    let oidc_subjects = subjects_in_trust(live, &req.issuer_host_path);
    let pi_subjects = pi::subjects_in_trust(live, &req.cluster_arn);
    let subjects: BTreeSet<ServiceAccountKey> =
        oidc_subjects.union(&pi_subjects).cloned().collect();
    if subjects.is_empty() {
        return Err(IrsaError::NothingToMigrate {
            role: role.name.clone(),
            cluster: req.cluster_name.clone(),
        });
    }
    if let Some((ns, sa)) = req.service_accounts.iter().find(|k| !subjects.contains(*k)) {
        return Err(IrsaError::NotInTrust {
            service_account: format!("{ns}/{sa}"),
            role: role.name.clone(),
        });
    }
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    let target = |key| association_target(req, role, observed, key);
    let final_trust = match req.to {
        Identity::PodIdentity => {
            let missing: BTreeSet<ServiceAccountKey> =
                subjects.difference(&pi_subjects).cloned().collect();
            let with_pi = if missing.is_empty() {
                live.clone()
            } else {
                let added = pi::trust_statements(&req.cluster_arn, &missing);
                rewrite_trust(live, |_| true, added)
            };
            let change = if missing.is_empty() {
                Change::Unchanged
            } else {
                Change::Created
            };
            steps.push(trust_step(
                &role.name,
                pi::SERVICE_PRINCIPAL,
                change,
                &with_pi,
            ));
            let tags = if ours {
                ownership_tags(&role.tags)
            } else {
                default_ownership_tags(&req.cluster_arn)
            };
            for key in &subjects {
                let step = plan_association(target(key), tags.clone(), req.replace_association)?;
                steps.push(Step::PodIdentity(step));
            }
            if req.remove_oidc_trust {
                let oidc = |s: &Value| is_oidc_statement(s, &req.issuer_host_path);
                let present = statements(&with_pi).iter().any(oidc);
                let without = rewrite_trust(&with_pi, |s| !oidc(s), Vec::new());
                let change = if present {
                    Change::Deleted
                } else {
                    Change::Absent
                };
                let what = format!("oidc-provider/{}", req.issuer_host_path);
                steps.push(trust_step(&role.name, &what, change, &without));
                for key in &subjects {
                    steps.push(annotation_step(
                        observed,
                        key,
                        &role.arn,
                        false,
                        &mut warnings,
                    ));
                }
                without
            } else {
                with_pi
            }
        }
        Identity::Irsa => {
            let missing: Vec<String> = subjects
                .difference(&oidc_subjects)
                .map(|(ns, sa)| subject(ns, sa))
                .collect();
            let with_oidc = if missing.is_empty() {
                live.clone()
            } else {
                let provider =
                    observed
                        .oidc_provider
                        .as_deref()
                        .ok_or_else(|| IrsaError::NoOidcProvider {
                            cluster: req.cluster_name.clone(),
                            issuer: req.issuer_host_path.clone(),
                        })?;
                let added = statements(&trust_policy(provider, &req.issuer_host_path, &missing));
                rewrite_trust(live, |_| true, added)
            };
            let change = if missing.is_empty() {
                Change::Unchanged
            } else {
                Change::Created
            };
            let what = format!("oidc-provider/{}", req.issuer_host_path);
            steps.push(trust_step(&role.name, &what, change, &with_oidc));
            for key in &subjects {
                steps.push(annotation_step(
                    observed,
                    key,
                    &role.arn,
                    true,
                    &mut warnings,
                ));
            }
            for key in &subjects {
                let is_ours = |tags: &BTreeMap<String, String>| {
                    role_is_ours(tags, &req.cluster_arn, RoleMaker::Any)
                };
                if let Some(step) = plan_association_removal(target(key), is_ours, &mut warnings) {
                    steps.push(Step::PodIdentity(step));
                }
            }
            let here = |s: &Value| pi::is_statement_for(s, &req.cluster_arn);
            let present = statements(&with_oidc).iter().any(here);
            let without = rewrite_trust(&with_oidc, |s| !here(s), Vec::new());
            let change = if present {
                Change::Deleted
            } else {
                Change::Absent
            };
            steps.push(trust_step(
                &role.name,
                pi::SERVICE_PRINCIPAL,
                change,
                &without,
            ));
            without
        }
    };
    let outputs = MigrateOutputs {
        role_arn: role.arn.clone(),
        role_name: role.name.clone(),
        identity: req.to,
        service_accounts: subjects
            .iter()
            .map(|(ns, sa)| format!("{ns}/{sa}"))
            .collect(),
        trust_policy: final_trust,
    };
    let mut plan = MigratePlan::in_order(outputs, steps);
    plan.warnings = warnings;
    Ok(plan)
}

#[cfg(test)]
mod tests;
