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
//!
//! `--identity pod-identity`: the role trusts EKS Pod Identity (`crate::pod_identity`) instead
//! of the OIDC provider, each ServiceAccount gets an association instead of the annotation
//! (one of ours on it is removed), and no OIDC provider is needed.
//!
//! Layout: `error`, `names` (input checks), `trust` (trust policy, ownership tags), `model`
//! (request, observed, plan), `migrate` (`irsa migrate`, IRSA ⇄ Pod Identity); this file
//! plans create and delete. Children never import this file.

mod error;
mod migrate;
mod model;
mod names;
mod trust;

pub(crate) use error::IrsaError;
pub(crate) use migrate::{MigrateObserved, MigrateRequest, plan_migrate};
pub(crate) use model::{IrsaObserved, IrsaOutputs, IrsaPlan, IrsaRequest};
use model::{iam_step, sa_step};
pub(crate) use names::{
    RoleName, check_policy_arn, default_role_name, is_service_account_name, parse_inline_policy,
    parse_role_name, service_accounts_in, split_service_account,
};
pub(crate) use trust::{
    attached_policy_tag, oidc_provider_arn, subject, subjects_in_trust, tracked_policies,
    trust_policy,
};

use std::collections::BTreeSet;

use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, RoleMaker, role_is_ours};
use mlplatform_namespace_policy::eks;
use serde_json::{Value, json};

use crate::common::Change;
use crate::facts::RoleFacts;
use crate::pod_identity::{
    AssociationTarget, Identity, ownership_tags, plan_association, plan_association_removal,
};
use crate::policy_document::policy_documents_equal;
use crate::role_reconciler::DesiredRole;
use crate::steps::{Direction, IamAction, KubeAction, Step};
use crate::vocabulary::{
    INLINE_POLICY_NAME, ROLE_KIND_IRSA, SA_CREATED_LABEL, SA_CREATED_VALUE, TAG_CLUSTER,
    TAG_MANAGED_BY, TAG_ROLE_KIND,
};

fn sa_key(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_owned(), name.to_owned())
}

fn role_annotation(live: &Value) -> Option<&str> {
    live["metadata"]["annotations"][eks::ROLE_ARN].as_str()
}

fn created_by_us(live: &Value) -> bool {
    let labels = &live["metadata"]["labels"];
    labels[MANAGED_BY_LABEL] == MANAGED_BY_VALUE && labels[SA_CREATED_LABEL] == SA_CREATED_VALUE
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

/// The ServiceAccount body `irsa create` makes when it is missing (annotated with the role
/// for IRSA; EKS Pod Identity needs no annotation).
pub(crate) fn new_service_account(namespace: &str, name: &str, role_arn: Option<&str>) -> Value {
    let mut sa = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, SA_CREATED_LABEL: SA_CREATED_VALUE},
        },
    });
    if let Some(arn) = role_arn {
        sa["metadata"]["annotations"] = json!({eks::ROLE_ARN: arn});
    }
    sa
}

/// Every ServiceAccount a role's trust admits: through the OIDC provider (`:sub`) and through
/// EKS Pod Identity of this cluster.
pub(crate) fn trusted_service_accounts(
    trust: &Value,
    issuer_host_path: &str,
    cluster_arn: &str,
) -> BTreeSet<(String, String)> {
    let mut keys = subjects_in_trust(trust, issuer_host_path);
    keys.extend(crate::pod_identity::subjects_in_trust(trust, cluster_arn));
    keys
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
    if !role_is_ours(&role.tags, &req.cluster_arn, RoleMaker::Irsa) {
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
pub(crate) fn plan_irsa_create(
    req: &IrsaRequest,
    observed: &IrsaObserved,
) -> Result<IrsaPlan, IrsaError> {
    check_request(req)?;
    let pod_identity = req.identity == Identity::PodIdentity;
    if !req.role_only && observed.namespace_exists == Some(false) {
        return Err(IrsaError::NamespaceMissing(req.namespace.clone()));
    }
    let trust = if pod_identity {
        crate::pod_identity::trust_policy(&req.cluster_arn, &req.subject_keys())
    } else {
        let provider_arn =
            observed
                .oidc_provider
                .clone()
                .ok_or_else(|| IrsaError::NoOidcProvider {
                    cluster: req.cluster_name.clone(),
                    issuer: req.issuer_host_path.clone(),
                })?;
        trust_policy(&provider_arn, &req.issuer_host_path, &req.subjects())
    };
    let role = req.role.name.clone();
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

    let mut tags = role_tags(req);
    tags.extend(
        wanted_policies
            .iter()
            .map(|arn| (attached_policy_tag(arn), arn.clone())),
    );
    let desired = DesiredRole {
        kind: "IAMRole",
        name: role.clone(),
        path: req.role.path.clone(),
        trust: trust.clone(),
        description: role_description(req),
        tags,
    };
    steps.push(Step::Iam(desired.step(existing)));
    match existing {
        None => {
            if let Some(doc) = &req.inline_policy {
                steps.push(iam_step(
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
                steps.push(iam_step(
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
            // Inline policy (only ours, by name).
            match (
                &req.inline_policy,
                facts.inline_policies.get(INLINE_POLICY_NAME),
            ) {
                (Some(doc), Some(live)) if policy_documents_equal(doc, live) => {
                    steps.push(iam_step(
                        "IAMInlinePolicy",
                        INLINE_POLICY_NAME,
                        Change::Unchanged,
                        IamAction::None,
                    ));
                }
                (Some(doc), live) => steps.push(iam_step(
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
                (None, Some(_)) => steps.push(iam_step(
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
                steps.push(iam_step(
                    "IAMRoleTags",
                    role.clone(),
                    Change::Updated,
                    IamAction::TagRole {
                        role: role.clone(),
                        tags: new_tags,
                    },
                ));
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
                steps.push(iam_step("IAMPolicyAttachment", arn, change, iam));
            }
            let mut stale_keys = Vec::new();
            for (arn, key) in &tracked {
                if wanted_policies.contains(arn) {
                    continue;
                }
                if attached.contains(arn) {
                    steps.push(iam_step(
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
                steps.push(iam_step(
                    "IAMRoleTags",
                    role.clone(),
                    Change::Updated,
                    IamAction::UntagRole {
                        role: role.clone(),
                        keys: stale_keys,
                    },
                ));
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

    let wanted = req.subject_keys();
    let old_subjects = existing
        .map(|f| trusted_service_accounts(&f.trust_policy, &req.issuer_host_path, &req.cluster_arn))
        .unwrap_or_default();
    if pod_identity {
        let tags = ownership_tags(role_tags(req).iter().map(|(k, v)| (k, v)));
        for (ns, sa) in &wanted {
            let target = association_target(req, observed, ns, sa, &role_arn);
            steps.push(Step::PodIdentity(plan_association(
                target,
                tags.clone(),
                req.replace_association,
            )?));
        }
    }
    // Our associations that no longer give the role (another identity, or ServiceAccounts
    // the trust no longer admits) go.
    for (ns, sa) in old_subjects
        .iter()
        .chain(&wanted)
        .filter(|k| !pod_identity || !wanted.contains(*k))
        .collect::<BTreeSet<_>>()
    {
        let target = association_target(req, observed, ns, sa, &role_arn);
        if let Some(step) = remove_association(req, observed, target, &mut warnings)
            .filter(|s| s.change == Change::Deleted)
        {
            steps.push(Step::PodIdentity(step));
        }
    }
    if !req.role_only {
        for sa in &req.service_accounts {
            steps.push(if pod_identity {
                plan_no_annotation(req, observed, sa, &role_arn)
            } else {
                plan_annotate(req, observed, sa, &role_arn, &mut warnings)
            });
        }
        // ServiceAccounts the old trust admitted and the new one does not: drop our annotation.
        for key in old_subjects.iter().filter(|k| !wanted.contains(*k)) {
            if let Some(step) = plan_unannotate(observed, key, &role_arn, false) {
                steps.push(step);
            }
        }
    }

    let outputs = IrsaOutputs {
        role_name: role,
        role_arn,
        namespace: req.namespace.clone(),
        service_accounts: req.service_accounts.clone(),
        trust_policy: trust,
        inline_policy: req.inline_policy.clone(),
        attached_policy_arns: wanted_policies.into_iter().collect(),
    };
    let mut plan = IrsaPlan::new(outputs, steps, Direction::Create);
    plan.warnings = warnings;
    Ok(plan)
}

fn association_target<'a>(
    req: &'a IrsaRequest,
    observed: &'a IrsaObserved,
    namespace: &'a str,
    service_account: &'a str,
    role_arn: &'a str,
) -> AssociationTarget<'a> {
    AssociationTarget {
        cluster: &req.cluster_name,
        namespace,
        service_account,
        role: role_arn,
        live: observed
            .pod_identity
            .associations_of(namespace, service_account),
    }
}

/// Our association of the role (tagged as an `irsa` role's) goes; None when associations
/// were not read (the role never trusted EKS Pod Identity) or it is not the role's.
fn remove_association(
    req: &IrsaRequest,
    observed: &IrsaObserved,
    target: AssociationTarget<'_>,
    warnings: &mut Vec<String>,
) -> Option<crate::steps::PodIdentityStep> {
    observed.pod_identity.associations.as_ref()?;
    plan_association_removal(
        target,
        |tags| role_is_ours(tags, &req.cluster_arn, RoleMaker::Irsa),
        warnings,
    )
}

/// EKS Pod Identity: the ServiceAccount exists (created when missing, without annotation) and
/// carries no role-arn annotation for this role.
fn plan_no_annotation(
    req: &IrsaRequest,
    observed: &IrsaObserved,
    sa: &str,
    role_arn: &str,
) -> Step {
    let key = sa_key(&req.namespace, sa);
    if observed
        .service_accounts
        .get(&key)
        .is_some_and(Option::is_some)
    {
        plan_unannotate(observed, &key, role_arn, false)
            .unwrap_or_else(|| sa_step(&req.namespace, sa, Change::Unchanged, KubeAction::None))
    } else {
        sa_step(
            &req.namespace,
            sa,
            Change::Created,
            KubeAction::Create(new_service_account(&req.namespace, sa, None)),
        )
    }
}

fn plan_annotate(
    req: &IrsaRequest,
    observed: &IrsaObserved,
    sa: &str,
    role_arn: &str,
    warnings: &mut Vec<String>,
) -> Step {
    let live = observed
        .service_accounts
        .get(&sa_key(&req.namespace, sa))
        .cloned()
        .flatten();
    let (change, action) = match live {
        None => (
            Change::Created,
            KubeAction::Create(new_service_account(&req.namespace, sa, Some(role_arn))),
        ),
        Some(live) => match role_annotation(&live) {
            Some(current) if current == role_arn => (Change::Unchanged, KubeAction::None),
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
                    KubeAction::MergePatch(
                        json!({"metadata": {"annotations": {eks::ROLE_ARN: role_arn}}}),
                    ),
                )
            }
        },
    };
    sa_step(&req.namespace, sa, change, action)
}

/// Removes our annotation from a ServiceAccount (deletes the SA when `delete_created` and we
/// created it). None when there is nothing of ours on it.
fn plan_unannotate(
    observed: &IrsaObserved,
    key: &(String, String),
    role_arn: &str,
    delete_created: bool,
) -> Option<Step> {
    let (namespace, name) = key;
    let step = |change, action| sa_step(namespace, name, change, action);
    let live = observed.service_accounts.get(key)?.as_ref()?;
    let points_here = role_annotation(live).is_some_and(|a| same_role_arn(a, role_arn));
    if delete_created && created_by_us(live) && (points_here || role_annotation(live).is_none()) {
        return Some(step(Change::Deleted, KubeAction::Delete));
    }
    points_here.then(|| {
        step(
            Change::Updated,
            KubeAction::MergePatch(json!({"metadata": {"annotations": {eks::ROLE_ARN: null}}})),
        )
    })
}

/// The ServiceAccounts `irsa delete` must look at: the ones asked for and every one the
/// role's trust admits.
pub(crate) fn service_accounts_to_read(
    req: &IrsaRequest,
    role: Option<&RoleFacts>,
) -> BTreeSet<(String, String)> {
    let mut keys: BTreeSet<(String, String)> = req
        .service_accounts
        .iter()
        .map(|sa| sa_key(&req.namespace, sa))
        .collect();
    if let Some(role) = role {
        keys.extend(trusted_service_accounts(
            &role.trust_policy,
            &req.issuer_host_path,
            &req.cluster_arn,
        ));
    }
    keys
}

/// `irsa delete`: ServiceAccounts first (annotation removed; deleted when we created them),
/// then the role (only when tagged as ours), with its policies.
pub(crate) fn plan_irsa_delete(
    req: &IrsaRequest,
    observed: &IrsaObserved,
) -> Result<IrsaPlan, IrsaError> {
    check_request(req)?;
    let role = req.role.name.clone();
    let existing = observed.role.as_ref();
    if let Some(facts) = existing {
        check_existing_role(req, facts)?;
    }
    let role_arn = existing.map_or_else(|| req.role_arn(), |r| r.arn.clone());
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    for (ns, sa) in service_accounts_to_read(req, existing) {
        let target = association_target(req, observed, &ns, &sa, &role_arn);
        if let Some(step) = remove_association(req, observed, target, &mut warnings) {
            steps.push(Step::PodIdentity(step));
        }
    }
    if !req.role_only {
        for key in service_accounts_to_read(req, existing) {
            match plan_unannotate(observed, &key, &role_arn, true) {
                Some(step) => steps.push(step),
                None => {
                    let change = if observed
                        .service_accounts
                        .get(&key)
                        .is_some_and(Option::is_some)
                    {
                        Change::Unchanged
                    } else {
                        Change::Absent
                    };
                    steps.push(sa_step(&key.0, &key.1, change, KubeAction::None));
                }
            }
        }
    }
    match existing {
        Some(_) => steps.push(iam_step(
            "IAMRole",
            &role,
            Change::Deleted,
            IamAction::DeleteRole { role: role.clone() },
        )),
        None => steps.push(iam_step("IAMRole", &role, Change::Absent, IamAction::None)),
    }
    let outputs = IrsaOutputs {
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
    };
    let mut plan = IrsaPlan::new(outputs, steps, Direction::Teardown);
    plan.warnings = warnings;
    Ok(plan)
}

#[cfg(test)]
mod tests;
