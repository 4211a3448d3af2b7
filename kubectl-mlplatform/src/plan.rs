//! Pure planning: given a profile, the user's inputs and everything preflight read, compute
//! every object's desired state and what must change. No I/O here; `apply` only carries out
//! the writes a plan lists, so "plan says unchanged" means "no request is sent".
//! Layout: `model` (inputs, observed facts, the plan), `error`, `params` (parameters and
//! placeholders), `access` (aws-auth mapping or access entry), `iam` (the vendor role),
//! `profile_steps` (OIDC provider, IRSA roles, existing roles, manual steps), `network` (the
//! cluster security group's ingress rules), `storage`
//! (StorageClass), `kube_steps` (the namespace bundle); this file puts them in order. Children
//! depend on their siblings, never on this file.

mod access;
mod error;
mod iam;
mod kube_steps;
mod model;
mod network;
mod params;
mod pod_identity_steps;
mod profile_steps;
mod storage;
#[cfg(test)]
mod tests;

pub(crate) use access::{access_principal, uses_access_entry};
pub use error::PlanError;
#[cfg(test)]
pub(crate) use iam::vendor_trust_policy;
pub use model::{ConnectInputs, Observed, OidcProviderFacts, Outputs, Plan};
pub(crate) use network::opens_ports;
pub use params::vars_for;
pub(crate) use params::{check_implemented, resolve_params, valid_external_id};
pub(crate) use pod_identity_steps::irsa_service_account_keys;
pub(crate) use profile_steps::{existing_role_name, irsa_role_names};
pub(crate) use storage::default_storage_classes;

use access::{access_role_arn, plan_access_apply, plan_access_remove};
use iam::{plan_vendor_role, profile_role_is_ours};
use kube_steps::{bundle_for, plan_bundle_apply, plan_bundle_remove, profile_of_namespace};
use model::{Sections, others_remaining};

use crate::bundle::Bundle;
use crate::common::Change;
use crate::facts::ClusterFacts;
use crate::pod_identity::Identity;
use crate::profile::{Profile, Vars};
use crate::steps::{Direction, IamAction, IamStep, shorten_role_name};

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
/// vendor role, IRSA roles, cluster access, security group rules, StorageClass, namespace
/// bundle, manual steps.
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
    // EKS Pod Identity needs no OIDC provider.
    let pod_identity = inputs.identity == Identity::PodIdentity;
    let mut plan = Sections {
        iam: profile_steps::plan_existing_roles_apply(profile, observed, &vars)?,
        oidc: match pod_identity {
            false => profile_steps::plan_oidc_apply(profile, cluster, observed, &vars)?,
            true => None,
        },
        ..Sections::default()
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
        inputs.identity,
        &mut plan.iam,
    )?;
    if pod_identity {
        plan.pod_identity = pod_identity_steps::plan_associations_apply(
            profile,
            cluster,
            observed,
            &irsa,
            inputs.replace_association,
        )?;
    }
    let access_arn = access_role_arn(profile, &vars, vendor_arn.as_deref())?;
    if let Some(arn) = &access_arn {
        plan_access_apply(profile, inputs, cluster, observed, &vars, arn, &mut plan)?;
    }
    plan.outputs.role_arn = vendor_arn
        .or(access_arn)
        .or_else(|| irsa.first().map(|r| r.arn.clone()));
    plan.kube = storage::plan_storage_apply(profile, observed, &vars)?;
    let mut bundle = bundle_for(profile, &vars, &inputs.namespace)?;
    // The namespace policy carries the role for the webhook's annotation: IRSA only.
    if let Some(bundle) = bundle.as_mut().filter(|_| !pod_identity) {
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
            inputs.identity,
        )?);
    plan.ec2 = network::plan_ingress_apply(profile, cluster, observed, &vars, &mut plan.warnings)?;
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
    Ok(plan.finish(Direction::Create))
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
    let mut plan = Sections::default();
    let mut warnings = Vec::new();

    let mut vendor_arn = None;
    if let Some(spec) = &profile.spec.vendor_role {
        let name = shorten_role_name(&vars.render("spec.vendorRole.name", &spec.name)?);
        match &observed.role {
            Some(role) if !profile_role_is_ours(role, profile.name(), &cluster.arn) => {
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
        (last, inputs.identity),
        &mut plan.iam,
    )?;
    // Our associations of the roles that go (read with --identity pod-identity, or when a
    // role's trust has a Pod Identity statement): before the roles, as teardown runs AWS last.
    plan.pod_identity = pod_identity_steps::plan_associations_remove(
        profile,
        cluster,
        observed,
        &irsa_roles,
        &removed_roles,
        &mut warnings,
    );
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
    )
    // Pod Identity connects make no provider: no row for one that is not there.
    .filter(|o| inputs.identity == Identity::Irsa || o.change != Change::Absent);
    // The mapping's ARN does not depend on whether the role still exists.
    let vendor_arn_for_mapping = vendor_arn
        .clone()
        .or_else(|| access_principal(profile, &vars, &observed.caller.account));
    if let Some(arn) = access_role_arn(profile, &vars, vendor_arn_for_mapping.as_deref())? {
        plan_access_remove(profile, inputs, cluster, observed, &vars, &arn, &mut plan)?;
    }
    plan.ec2 = network::plan_ingress_remove(profile, cluster, observed, &vars, last)?;
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
            "kept the shared parts of profile {} (IAM role, cluster access, security group rules, ClusterRole, StorageClass): still used by namespace(s) {}",
            profile.name(),
            others.join(", ")
        ));
    }
    plan.warnings = warnings;
    plan.outputs.profile = profile.name().to_owned();
    plan.outputs.cluster = cluster.name.clone();
    plan.outputs.namespace = inputs.namespace.clone();
    plan.outputs.role_arn = vendor_arn;
    Ok(plan.finish(Direction::Teardown))
}

/// What `namespace add|remove` report: the namespace and its ServiceAccounts.
fn bundle_outputs(profile: &Profile, namespace: &str, bundle: Bundle) -> Outputs {
    Outputs {
        profile: profile.name().to_owned(),
        namespace: namespace.to_owned(),
        user_service_account: bundle.user_service_account,
        system_service_account: bundle.system_service_account,
        ..Outputs::default()
    }
}

/// namespace add: the bundle alone.
pub(crate) fn plan_namespace_add(
    profile: &Profile,
    vars: &Vars,
    namespace: &str,
    observed: &Observed,
) -> Result<Plan, PlanError> {
    let bundle = bundle_for(profile, vars, namespace)?
        .ok_or_else(|| PlanError::NoNamespaceBundle(profile.name().to_owned()))?;
    Ok(Sections {
        kube: plan_bundle_apply(profile, &bundle, observed)?,
        outputs: bundle_outputs(profile, namespace, bundle),
        ..Sections::default()
    }
    .finish(Direction::Create))
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
    Ok(Sections {
        kube,
        warnings,
        outputs: bundle_outputs(profile, namespace, bundle),
        ..Sections::default()
    }
    .finish(Direction::Teardown))
}
