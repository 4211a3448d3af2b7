//! Cluster access for the profile's role: an aws-auth mapping or an EKS access entry, as
//! `--auth-mode` and the cluster's authentication mode decide.

use std::collections::BTreeSet;

use super::error::PlanError;
use super::model::{ConnectInputs, Observed, Sections, others_remaining};
use crate::access_entry::{
    AccessRequest, DEFAULT_ACCESS_POLICY, Mechanism, choose_mechanism, plan_access_entry,
    plan_access_entry_removal,
};
use crate::arn::parse_iam_arn;
use crate::aws_auth::{Mapping, MappingKind, SYSTEM_MASTERS};
use crate::common::Change;
use crate::facts::ClusterFacts;
use crate::profile::{Profile, Vars};
use crate::steps::{AccessEntryStep, AwsAuthAction, AwsAuthStep, shorten_role_name};

/// The aws-auth entry a profile wants for `role_arn` (path stripped, as aws-auth needs).
pub(crate) fn desired_mapping(
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
                kind: MappingKind::Role,
                mapping: wanted.clone(),
            }
        },
        wanted: Some(wanted),
    })
}

/// The role ARN a profile's cluster access refers to.
pub(super) fn access_role_arn(
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
pub(crate) fn access_principal(profile: &Profile, vars: &Vars, account: &str) -> Option<String> {
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
pub(crate) fn uses_access_entry(
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

pub(super) fn plan_access_apply(
    profile: &Profile,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    arn: &str,
    plan: &mut Sections,
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
                cluster: cluster.name.clone(),
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

pub(super) fn plan_access_remove(
    profile: &Profile,
    inputs: &ConnectInputs,
    cluster: &ClusterFacts,
    observed: &Observed,
    vars: &Vars,
    arn: &str,
    plan: &mut Sections,
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
                        AwsAuthAction::Remove {
                            kind: MappingKind::Role,
                            arn: arn.clone(),
                        }
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
                cluster: cluster.name.clone(),
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
