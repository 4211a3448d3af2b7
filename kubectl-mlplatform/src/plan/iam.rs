//! The vendor role: deterministic name, cross-account trust with external ID, inline and
//! managed policies, compared with what IAM holds.

use crate::vocabulary::MANAGED_BY_VALUE;
use serde_json::{Value, json};

use super::error::PlanError;
use super::model::{ConnectInputs, Observed};
use crate::arn::is_account_id;
use crate::common::Change;
use crate::facts::{ClusterFacts, RoleFacts};
use crate::policy_document::policy_documents_equal;
use crate::profile::{Profile, Vars};
use crate::steps::{IamAction, IamStep, shorten_role_name};
use crate::vocabulary::{RoleMaker, TAG_CLUSTER, TAG_MANAGED_BY, TAG_PROFILE, role_is_ours};

/// Cross-account trust: the vendor's account root, guarded by the external ID.
pub(crate) fn vendor_trust_policy(
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
pub(crate) fn external_id_from_trust(trust: &Value) -> Option<String> {
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

/// Made by connect for this profile and cluster (the one rule in `vocabulary`).
pub(super) fn profile_role_is_ours(role: &RoleFacts, profile: &str, cluster_arn: &str) -> bool {
    role_is_ours(&role.tags, cluster_arn, RoleMaker::Profile(profile))
}

pub(super) struct VendorRolePlan {
    pub(crate) role_arn: String,
    pub(crate) external_id: Option<String>,
    pub(crate) steps: Vec<IamStep>,
}

pub(super) fn plan_vendor_role(
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
        && !profile_role_is_ours(role, profile.name(), &cluster.arn)
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
        if p.only_if
            .as_deref()
            .is_some_and(|n| vars.get(n).unwrap_or_default().is_empty())
        {
            continue;
        }
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
    steps.extend(plan_role_policies(
        &name, existing, &policies, &managed, true,
    ));
    Ok(Some(VendorRolePlan {
        role_arn,
        external_id,
        steps,
    }))
}

/// The inline and managed policies of role `name` compared with what IAM holds. `prune`: the
/// role is ours, so policies the profile no longer names go away; on a role that is not ours
/// only the profile's own policies are ever written.
pub(super) fn plan_role_policies(
    name: &str,
    existing: Option<&RoleFacts>,
    policies: &[(String, Value)],
    managed: &[String],
    prune: bool,
) -> Vec<IamStep> {
    let name = name.to_owned();
    let mut steps = Vec::new();
    let live_inline = existing.map(|r| &r.inline_policies);
    for (policy_name, document) in policies {
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
        .filter(|_| prune)
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
    for arn in managed {
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
    for stale in live_managed
        .iter()
        .filter(|a| prune && !managed.contains(a))
    {
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
    steps
}
