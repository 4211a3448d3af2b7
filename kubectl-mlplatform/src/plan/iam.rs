//! The vendor role: deterministic name, cross-account trust with external ID, inline and
//! managed policies, compared with what IAM holds.

use crate::vocabulary::MANAGED_BY_VALUE;
use serde_json::{Value, json};

use super::error::PlanError;
use super::model::{ConnectInputs, Observed};
use super::params::render_inline_policies;
use crate::arn::is_account_id;
use crate::facts::{ClusterFacts, RoleFacts};
use crate::profile::{Profile, Vars};
use crate::role_reconciler::{DesiredRole, policy_steps};
use crate::steps::{IamStep, shorten_role_name};
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
    let policies = render_inline_policies("spec.vendorRole", &spec.inline_policies, vars)?;
    let mut managed = Vec::new();
    for (i, arn) in spec.managed_policy_arns.iter().enumerate() {
        managed.push(vars.render(&format!("spec.vendorRole.managedPolicyArns[{i}]"), arn)?);
    }

    let desired = DesiredRole {
        kind: "IAMRole",
        name: name.clone(),
        path: spec.path.clone(),
        trust,
        description,
        tags: vec![
            (TAG_PROFILE.to_owned(), profile.name().to_owned()),
            (TAG_CLUSTER.to_owned(), cluster.arn.clone()),
            (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        ],
    };
    let role_arn = desired.arn(existing, partition, &observed.caller.account);
    let mut steps = vec![desired.step(existing)];
    steps.extend(policy_steps(&name, existing, &policies, &managed, true));
    Ok(Some(VendorRolePlan {
        role_arn,
        external_id,
        steps,
    }))
}
