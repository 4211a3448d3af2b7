//! The issue-4 step kinds: the cluster's IAM OIDC provider, IRSA roles (trust on the issuer's
//! `:sub` and `:aud`) with their ServiceAccounts, inline policies on roles that already exist,
//! and the manual steps this tool cannot carry out itself.
//!
//! Who made the OIDC provider is recorded on the provider itself (tags `managed-by` and
//! `mlplatform.io/cluster`), not on a role: a provider made by `oidc associate`, eksctl or the
//! console carries no such tag and is never deleted. Ours is deleted by the disconnect that
//! removes the profile's last IRSA role, and only when no other role still trusts it.

use mlplatform_namespace_policy::eks;

use std::collections::BTreeSet;

use crate::vocabulary::MANAGED_BY_VALUE;
use serde_json::{Value, json};

use super::error::PlanError;
use super::model::Observed;
use super::params::{render_inline_policies, skipped};
use super::{iam, kube_steps};
use crate::arn::parse_iam_arn;
use crate::common::Change;
use crate::facts::ClusterFacts;
use crate::irsa::{subject, trust_policy};
use crate::objects::{
    Kind, KubeObject, ObjectKey, is_ours, is_terminating, namespace_created_for, new_namespace,
};
use crate::pod_identity::{Identity, trusts_pod_identity};
use crate::profile::{Profile, Vars};
use crate::role_reconciler::{DesiredRole, policy_steps};
use crate::steps::{
    IamAction, IamStep, KubeAction, KubeStep, ManualStepOut, OidcAction, OidcStep,
    shorten_role_name,
};
use crate::vocabulary::{TAG_CLUSTER, TAG_MANAGED_BY, TAG_OIDC_CREATED_BY, TAG_PROFILE};

/// One IRSA role as the profile renders it for this cluster and namespace.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RenderedIrsaRole {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) service_accounts: Vec<String>,
    pub(crate) annotate: bool,
    pub(crate) inline_policies: Vec<(String, Value)>,
    pub(crate) managed_policy_arns: Vec<String>,
    /// The role belongs to one namespace (its namespace is `${namespace}`): disconnecting that
    /// namespace removes it, not only the last one.
    pub(crate) per_namespace: bool,
}

pub(super) fn render_irsa_roles(
    profile: &Profile,
    vars: &Vars,
) -> Result<Vec<RenderedIrsaRole>, PlanError> {
    let mut out = Vec::new();
    for (i, spec) in profile.spec.irsa_roles.iter().enumerate() {
        let field = format!("spec.irsaRoles[{i}]");
        let inline = render_inline_policies(&field, &spec.inline_policies, vars)?;
        let mut managed = Vec::new();
        for (j, arn) in spec.managed_policy_arns.iter().enumerate() {
            managed.push(vars.render(&format!("{field}.managedPolicyArns[{j}]"), arn)?);
        }
        let mut service_accounts = Vec::new();
        for (j, sa) in spec.service_accounts.iter().enumerate() {
            service_accounts.push(vars.render(&format!("{field}.serviceAccounts[{j}]"), sa)?);
        }
        out.push(RenderedIrsaRole {
            name: shorten_role_name(&vars.render(&format!("{field}.name"), &spec.name)?),
            namespace: vars.render(&format!("{field}.namespace"), &spec.namespace)?,
            service_accounts,
            annotate: spec.annotate_service_accounts,
            inline_policies: inline,
            managed_policy_arns: managed,
            per_namespace: spec.namespace.contains("${namespace}"),
        });
    }
    Ok(out)
}

/// Names of the profile's IRSA roles (what preflight reads).
pub(crate) fn irsa_role_names(profile: &Profile, vars: &Vars) -> Vec<String> {
    render_irsa_roles(profile, vars)
        .map(|roles| roles.into_iter().map(|r| r.name).collect())
        .unwrap_or_default()
}

/// Role name of an existing role's ARN (the last path segment).
pub(crate) fn existing_role_name(arn: &str) -> Option<String> {
    parse_iam_arn(arn)
        .ok()
        .filter(|a| a.resource_type == "role")
        .map(|a| a.name)
}

/// The issuer host/path and the provider ARN the profile's roles trust.
fn issuer_of(cluster: &ClusterFacts, vars: &Vars) -> Result<(String, String), PlanError> {
    match (vars.get("oidcIssuer"), vars.get("oidcProviderArn")) {
        (Some(issuer), Some(arn)) => Ok((issuer.to_owned(), arn.to_owned())),
        _ => Err(PlanError::NoIssuer {
            cluster: cluster.name.clone(),
        }),
    }
}

/// connect: the provider, only when missing (tagged as ours).
pub(super) fn plan_oidc_apply(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
) -> Result<Option<OidcStep>, PlanError> {
    let Some(spec) = &profile.spec.oidc_provider else {
        return Ok(None);
    };
    let (issuer, wanted_arn) = issuer_of(cluster, vars)?;
    Ok(Some(match &observed.oidc_provider {
        Some(found) => OidcStep {
            issuer,
            provider_arn: found.arn.clone(),
            change: Change::Unchanged,
            action: OidcAction::None,
        },
        None => OidcStep {
            provider_arn: wanted_arn,
            change: Change::Created,
            action: OidcAction::Create {
                url: format!("https://{issuer}"),
                client_ids: spec.client_ids.clone(),
                thumbprints: observed.oidc_thumbprint.iter().cloned().collect(),
                tags: vec![
                    (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                    (TAG_OIDC_CREATED_BY.to_owned(), cluster.arn.clone()),
                ],
            },
            issuer,
        },
    }))
}

/// disconnect: delete the provider only when connect made it and no role but ours (about to
/// be deleted) still trusts it.
pub(super) fn plan_oidc_remove(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    removed_roles: &[String],
    last: bool,
    warnings: &mut Vec<String>,
) -> Option<OidcStep> {
    profile.spec.oidc_provider.as_ref()?;
    let issuer = vars.get("oidcIssuer").unwrap_or_default().to_owned();
    let Some(found) = &observed.oidc_provider else {
        return Some(OidcStep {
            provider_arn: vars.get("oidcProviderArn").unwrap_or_default().to_owned(),
            issuer,
            change: Change::Absent,
            action: OidcAction::None,
        });
    };
    let keep = |why: String, warnings: &mut Vec<String>| {
        warnings.push(why);
        OidcStep {
            issuer: issuer.clone(),
            provider_arn: found.arn.clone(),
            change: Change::Unchanged,
            action: OidcAction::None,
        }
    };
    if !found.is_ours(&cluster.arn) {
        return Some(keep(
            format!(
                "kept IAM OIDC provider {}: it existed before connect (not tagged as made by kubectl-mlplatform for this cluster)",
                found.arn
            ),
            warnings,
        ));
    }
    if !last {
        return Some(OidcStep {
            issuer,
            provider_arn: found.arn.clone(),
            change: Change::Unchanged,
            action: OidcAction::None,
        });
    }
    let others: Vec<&String> = observed
        .roles_trusting_provider
        .iter()
        .filter(|r| !removed_roles.contains(r))
        .collect();
    if !others.is_empty() {
        return Some(keep(
            format!(
                "kept IAM OIDC provider {}: still trusted by role(s) {}",
                found.arn,
                others
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            warnings,
        ));
    }
    Some(OidcStep {
        issuer,
        provider_arn: found.arn.clone(),
        change: Change::Deleted,
        action: OidcAction::Delete {
            arn: found.arn.clone(),
        },
    })
}

/// What an IRSA role plan hands to the rest of connect.
pub(super) struct PlannedIrsaRole {
    pub(crate) role: RenderedIrsaRole,
    pub(crate) arn: String,
}

/// connect: every IRSA role, its trust, policies and tags. With `--identity pod-identity` the
/// role trusts EKS Pod Identity of this cluster for its ServiceAccounts instead of the OIDC
/// provider (row kind `PodIdentityRole`).
pub(super) fn plan_irsa_roles_apply(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    provider_arn: Option<&str>,
    identity: Identity,
    steps: &mut Vec<IamStep>,
) -> Result<Vec<PlannedIrsaRole>, PlanError> {
    let roles = render_irsa_roles(profile, vars)?;
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let pod_identity = identity == Identity::PodIdentity;
    let issuer = if pod_identity {
        None
    } else {
        Some(issuer_of(cluster, vars)?)
    };
    let partition = vars.get("partition").unwrap_or("aws");
    let mut out = Vec::new();
    for role in roles {
        let trust = match &issuer {
            Some((issuer, computed_arn)) => {
                let subjects: Vec<String> = role
                    .service_accounts
                    .iter()
                    .map(|sa| subject(&role.namespace, sa))
                    .collect();
                trust_policy(provider_arn.unwrap_or(computed_arn), issuer, &subjects)
            }
            None => crate::pod_identity::trust_policy(
                &cluster.arn,
                &role
                    .service_accounts
                    .iter()
                    .map(|sa| (role.namespace.clone(), sa.clone()))
                    .collect(),
            ),
        };
        let existing = observed.roles.get(&role.name);
        if let Some(live) = existing
            && !iam::profile_role_is_ours(live, profile.name(), &cluster.arn)
        {
            return Err(PlanError::RoleNotOurs {
                role: role.name.clone(),
                profile: profile.name().to_owned(),
            });
        }
        let desired = DesiredRole {
            kind: if pod_identity {
                "PodIdentityRole"
            } else {
                "IRSARole"
            },
            name: role.name.clone(),
            path: "/".to_owned(),
            trust,
            description: format!(
                "{} role for {} in EKS cluster {} (kubectl-mlplatform, profile {})",
                if pod_identity {
                    "EKS Pod Identity"
                } else {
                    "IRSA"
                },
                role.service_accounts
                    .iter()
                    .map(|sa| format!("{}/{sa}", role.namespace))
                    .collect::<Vec<_>>()
                    .join(", "),
                cluster.name,
                profile.name()
            ),
            tags: vec![
                (TAG_PROFILE.to_owned(), profile.name().to_owned()),
                (TAG_CLUSTER.to_owned(), cluster.arn.clone()),
                (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            ],
        };
        let arn = desired.arn(existing, partition, &observed.caller.account);
        steps.push(desired.step(existing));
        steps.extend(policy_steps(
            &role.name,
            existing,
            &role.inline_policies,
            &role.managed_policy_arns,
            true,
        ));
        out.push(PlannedIrsaRole { role, arn });
    }
    Ok(out)
}

/// disconnect: IRSA roles that go (ours only); returns their names.
pub(super) fn plan_irsa_roles_remove(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    (last, identity): (bool, Identity),
    steps: &mut Vec<IamStep>,
) -> Result<(Vec<RenderedIrsaRole>, Vec<String>), PlanError> {
    let roles = render_irsa_roles(profile, vars)?;
    let mut removed = Vec::new();
    for role in &roles {
        let goes = last || role.per_namespace;
        let live = observed.roles.get(&role.name);
        // What the role is, as connect reported it: by its live trust, else by --identity.
        let pod_identity = live.map_or(identity == Identity::PodIdentity, |r| {
            trusts_pod_identity(&r.trust_policy)
        });
        let kind = if pod_identity {
            "PodIdentityRole"
        } else {
            "IRSARole"
        };
        match live {
            None => steps.push(IamStep {
                kind,
                name: role.name.clone(),
                change: Change::Absent,
                action: IamAction::None,
            }),
            Some(live) if !iam::profile_role_is_ours(live, profile.name(), &cluster.arn) => {
                return Err(PlanError::RoleNotOurs {
                    role: role.name.clone(),
                    profile: profile.name().to_owned(),
                });
            }
            Some(_) if goes => {
                removed.push(role.name.clone());
                steps.push(IamStep {
                    kind,
                    name: role.name.clone(),
                    change: Change::Deleted,
                    action: IamAction::DeleteRole {
                        role: role.name.clone(),
                    },
                });
            }
            Some(_) => steps.push(IamStep {
                kind,
                name: role.name.clone(),
                change: Change::Unchanged,
                action: IamAction::None,
            }),
        }
    }
    Ok((roles, removed))
}

/// The ServiceAccount (and, when missing, its namespace) an IRSA role annotates, when the
/// bundle does not already create that ServiceAccount. EKS Pod Identity needs no annotation:
/// the ServiceAccount is made without it, and one naming the role is removed.
pub(super) fn plan_irsa_service_accounts_apply(
    profile: &str,
    planned: &[PlannedIrsaRole],
    bundle_sas: &[(String, String)],
    observed: &Observed,
    identity: Identity,
) -> Result<Vec<KubeStep>, PlanError> {
    let annotate = identity == Identity::Irsa;
    let mut steps = Vec::new();
    let mut namespaces_done = BTreeSet::new();
    for p in planned.iter().filter(|p| p.role.annotate) {
        let ns = &p.role.namespace;
        for sa in &p.role.service_accounts {
            if bundle_sas.contains(&(ns.clone(), sa.clone())) {
                continue;
            }
            if namespaces_done.insert(ns.clone()) {
                let ns_obj = new_namespace(ns, profile);
                match observed.objects.get(&ns_obj.key) {
                    None => steps.push(KubeStep {
                        key: ns_obj.key.clone(),
                        desired: ns_obj.body.clone(),
                        change: Change::Created,
                        action: KubeAction::Create(ns_obj.body),
                    }),
                    // Nothing can be created in it until it is gone.
                    Some(live) if is_terminating(live) => {
                        return Err(PlanError::NamespaceTerminating(ns.clone()));
                    }
                    Some(_) => {}
                }
            }
            let mut obj = KubeObject::new(Kind::ServiceAccount, Some(ns), sa, profile, json!({}));
            let live = observed.objects.get(&obj.key);
            let annotation =
                live.and_then(|l| l["metadata"]["annotations"][eks::ROLE_ARN].as_str());
            // What our annotation should be: the role (IRSA); gone when it names the role
            // (Pod Identity); absent otherwise.
            let wanted = if annotate {
                Some(json!(p.arn))
            } else {
                annotation
                    .is_some_and(|a| a.ends_with(&format!("/{}", p.role.name)))
                    .then_some(Value::Null)
            };
            if let Some(value) = &wanted {
                obj.body["metadata"]["annotations"] = json!({ eks::ROLE_ARN: value });
            }
            match live {
                Some(live) if !is_ours(live, profile) => {
                    // Someone else's ServiceAccount (the operator's installer): only our
                    // annotation is set, and disconnect takes only that away again.
                    let same = match &wanted {
                        None => true,
                        Some(Value::Null) => false,
                        Some(_) => annotation == Some(p.arn.as_str()),
                    };
                    let patch = json!({"metadata": {"annotations": { eks::ROLE_ARN: wanted }}});
                    let mut shown = live.clone();
                    json_patch::merge(&mut shown, &patch);
                    steps.push(KubeStep {
                        key: obj.key.clone(),
                        desired: kube_steps::strip_server_fields(shown),
                        change: if same {
                            Change::Unchanged
                        } else {
                            Change::Updated
                        },
                        action: if same {
                            KubeAction::None
                        } else {
                            KubeAction::MergePatch(patch)
                        },
                    });
                }
                _ => steps.push(kube_steps::plan_object_apply(profile, &obj, observed)?),
            }
        }
    }
    Ok(steps)
}

/// disconnect: our ServiceAccounts go; on someone else's, only our annotation goes. The
/// namespace connect made for them goes only with `--delete-namespace`, also when an earlier
/// disconnect already removed the role (`removed`: roles deleted now; roles no longer in IAM
/// count as gone too).
pub(super) fn plan_irsa_service_accounts_remove(
    profile: &str,
    roles: &[RenderedIrsaRole],
    removed: &[String],
    bundle_sas: &[(String, String)],
    observed: &Observed,
    delete_namespace: bool,
    warnings: &mut Vec<String>,
) -> Vec<KubeStep> {
    let mut steps = Vec::new();
    let mut namespaces = BTreeSet::new();
    let gone =
        |r: &RenderedIrsaRole| removed.contains(&r.name) || !observed.roles.contains_key(&r.name);
    for role in roles.iter().filter(|r| r.annotate && gone(r)) {
        let ns = &role.namespace;
        for sa in &role.service_accounts {
            if bundle_sas.contains(&(ns.clone(), sa.clone())) {
                continue;
            }
            namespaces.insert(ns.clone());
            let obj = KubeObject::new(Kind::ServiceAccount, Some(ns), sa, profile, json!({}));
            let step = match observed.objects.get(&obj.key) {
                None => KubeStep {
                    key: obj.key.clone(),
                    desired: obj.body.clone(),
                    change: Change::Absent,
                    action: KubeAction::None,
                },
                Some(live) if is_ours(live, profile) => KubeStep {
                    key: obj.key.clone(),
                    desired: kube_steps::strip_server_fields(live.clone()),
                    change: Change::Deleted,
                    action: KubeAction::Delete,
                },
                Some(live) => {
                    let ours = live["metadata"]["annotations"][eks::ROLE_ARN]
                        .as_str()
                        .is_some_and(|a| a.ends_with(&format!("/{}", role.name)));
                    let patch = json!({"metadata": {"annotations": { eks::ROLE_ARN: null }}});
                    let mut shown = live.clone();
                    json_patch::merge(&mut shown, &patch);
                    KubeStep {
                        key: obj.key.clone(),
                        desired: kube_steps::strip_server_fields(shown),
                        change: if ours {
                            Change::Updated
                        } else {
                            Change::Unchanged
                        },
                        action: if ours {
                            KubeAction::MergePatch(patch)
                        } else {
                            KubeAction::None
                        },
                    }
                }
            };
            steps.push(step);
        }
    }
    for ns in namespaces {
        let key = ObjectKey {
            kind: Kind::Namespace,
            namespace: None,
            name: ns.clone(),
        };
        match observed.objects.get(&key) {
            // Already being deleted: nothing left to do.
            Some(live) if is_terminating(live) => {}
            Some(live) if namespace_created_for(live, profile) && delete_namespace => {
                steps.push(KubeStep {
                    key,
                    desired: kube_steps::strip_server_fields(live.clone()),
                    change: Change::Deleted,
                    action: KubeAction::Delete,
                });
            }
            Some(live) if namespace_created_for(live, profile) => {
                warnings.push(format!(
                    "kept namespace {ns} that connect created (other software may live in it now); pass --delete-namespace to remove it"
                ));
            }
            Some(_) if delete_namespace => warnings.push(format!(
                "kept namespace {ns}: connect did not create it (it existed before)"
            )),
            _ => {}
        }
    }
    steps
}

/// connect: our inline policies on roles that already exist (never created, never deleted).
pub(super) fn plan_existing_roles_apply(
    profile: &Profile,
    observed: &Observed,
    vars: &Vars,
) -> Result<Vec<IamStep>, PlanError> {
    let mut steps = Vec::new();
    for (i, spec) in profile.spec.existing_role_policies.iter().enumerate() {
        if skipped(&spec.only_if, vars) {
            continue;
        }
        let field = format!("spec.existingRolePolicies[{i}]");
        let arn = vars.render(&format!("{field}.roleArn"), &spec.role_arn)?;
        let parsed = parse_iam_arn(&arn).map_err(|e| PlanError::Arn(e.to_string()))?;
        if !observed.caller.account.is_empty() && parsed.account != observed.caller.account {
            return Err(PlanError::ExistingRoleOtherAccount {
                arn,
                role_account: parsed.account,
                caller_account: observed.caller.account.clone(),
            });
        }
        let name = existing_role_name(&arn).ok_or_else(|| PlanError::Arn(arn.clone()))?;
        let Some(live) = observed.roles.get(&name) else {
            return Err(PlanError::ExistingRoleMissing {
                arn,
                param: spec.role_arn.clone(),
            });
        };
        let policies = render_inline_policies(&field, &spec.inline_policies, vars)?;
        steps.extend(policy_steps(&name, Some(live), &policies, &[], false));
    }
    Ok(steps)
}

/// disconnect: exactly our inline policies go; the roles stay.
pub(super) fn plan_existing_roles_remove(
    profile: &Profile,
    observed: &Observed,
    vars: &Vars,
    last: bool,
) -> Result<Vec<IamStep>, PlanError> {
    let mut steps = Vec::new();
    for (i, spec) in profile.spec.existing_role_policies.iter().enumerate() {
        if skipped(&spec.only_if, vars) {
            continue;
        }
        let field = format!("spec.existingRolePolicies[{i}]");
        let arn = vars.render(&format!("{field}.roleArn"), &spec.role_arn)?;
        let name = existing_role_name(&arn).ok_or_else(|| PlanError::Arn(arn.clone()))?;
        let live = observed.roles.get(&name);
        for (j, p) in spec.inline_policies.iter().enumerate() {
            let policy = vars.render(&format!("{field}.inlinePolicies[{j}].name"), &p.name)?;
            let present = live.is_some_and(|r| r.inline_policies.contains_key(&policy));
            let (change, action) = match (present, last) {
                (false, _) => (Change::Absent, IamAction::None),
                (true, true) => (
                    Change::Deleted,
                    IamAction::DeleteInlinePolicy {
                        role: name.clone(),
                        policy_name: policy.clone(),
                    },
                ),
                (true, false) => (Change::Unchanged, IamAction::None),
            };
            steps.push(IamStep {
                kind: "IAMInlinePolicy",
                name: format!("{name}/{policy}"),
                change,
                action,
            });
        }
    }
    Ok(steps)
}

/// A command that finds the cluster security group itself, for when EKS did not report it.
pub(crate) fn security_group_fallback(cluster: &str, region: &str) -> String {
    format!(
        "$(aws eks describe-cluster --name {cluster} --region {region} --query cluster.resourcesVpcConfig.clusterSecurityGroupId --output text)"
    )
}

/// The manual steps, rendered with the cluster's facts.
pub(super) fn render_manual_steps(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
) -> Result<Vec<ManualStepOut>, PlanError> {
    let mut vars = vars.clone();
    let sg = observed
        .network
        .as_ref()
        .and_then(|n| n.cluster_security_group_id.clone())
        .unwrap_or_else(|| security_group_fallback(&cluster.name, &cluster.region));
    vars.set("clusterSecurityGroupId", sg);
    profile
        .spec
        .manual_steps
        .iter()
        .enumerate()
        // Left out when its `unless` parameter is given (the tool then does it itself).
        .filter(|(_, m)| m.unless.is_none() || skipped(&m.unless, &vars))
        .map(|(i, m)| {
            let f = format!("spec.manualSteps[{i}]");
            Ok(ManualStepOut {
                name: vars.render(&format!("{f}.name"), &m.name)?,
                description: vars.render(&format!("{f}.description"), &m.description)?,
                command: vars.render(&format!("{f}.command"), &m.command)?,
            })
        })
        .collect()
}
