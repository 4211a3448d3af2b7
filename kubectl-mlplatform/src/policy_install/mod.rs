//! `kubectl mlplatform policy install|uninstall|status`: the namespace policy enforced by the
//! API server itself, with the admission policies `mlplatform_namespace_policy::admission_policy`
//! renders (no process of ours runs).
//!
//! Facts first: which admission policy APIs the server serves ([`served_apis`], discovery of
//! `admissionregistration.k8s.io/v1`) and the live objects ([`observe_objects`],
//! [`observe_all`]). Pure [`manifests`] picks the objects for those APIs; pure [`plan_install`]
//! / [`plan_uninstall`] compare them with the live ones and give the one plan every command
//! uses (server-side apply of what differs; deletions of what is labelled ours), which the one
//! executor carries out. `status` reads its facts in `status`.
//!
//! Children never import this file.
mod facts;
mod model;
mod status;

use std::collections::BTreeMap;

use mlplatform_namespace_policy::admission_policy::{
    self as rendered, COMPONENT_LABEL, COMPONENT_VALUE,
};
use serde_json::Value;

use crate::common::Change;
use crate::objects::{Kind, ObjectKey, covers};
use crate::steps::{KubeAction, KubeStep, Plan, Step};
use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use model::kinds_served;

pub(crate) use facts::{observe_all, observe_objects, served_apis};
pub(crate) use model::{PolicyError, PolicyOutputs, ServedApis, is_ours, key_of, manifests};
pub(crate) use status::{
    ObjectState, PolicyEnforcement, PolicyStatus, Probe, enforcement_in, read_status,
};

/// `install`'s and `uninstall`'s plan.
pub(crate) type PolicyPlan = Plan<PolicyOutputs>;

/// Pure: the steps that make the cluster hold `objects`, given the live objects. An object
/// of the same name that is not labelled ours is refused, never adopted.
pub(crate) fn plan_install(
    objects: &[Value],
    served: ServedApis,
    live: &BTreeMap<ObjectKey, Value>,
) -> Result<PolicyPlan, PolicyError> {
    let mut steps = Vec::with_capacity(objects.len());
    for object in objects {
        let key = key_of(object)?;
        if let Some(l) = live.get(&key)
            && !is_ours(l)
        {
            return Err(PolicyError::NotOurs(key.to_string()));
        }
        // Already as wanted (the server only added defaults and metadata): no write.
        let matches = live.get(&key).map(|l| covers(l, object));
        steps.push(Step::Kube(KubeStep::apply(key, object, matches)));
    }
    let mut plan = Plan::in_order(PolicyOutputs::installed(served), steps);
    if !served.mutating {
        plan.warnings.push(model::MUTATING_NOT_SERVED.to_owned());
    }
    Ok(plan)
}

/// Pure: `uninstall`'s plan. Every live object (of `live`, all objects of the served kinds)
/// labelled ours is deleted, bindings before policies; the names `install` uses that are not
/// there are reported absent; an object of such a name that is not labelled ours is kept.
pub(crate) fn plan_uninstall(served: ServedApis, live: &[Value]) -> PolicyPlan {
    let rank = |kind: Kind| {
        kinds_served(ServedApis::all())
            .iter()
            .position(|k| *k == kind)
    };
    let mut steps: Vec<(Option<usize>, Step)> = Vec::new();
    let mut warnings = Vec::new();
    let mut found = Vec::new();
    for object in live {
        let Ok(key) = key_of(object) else { continue };
        found.push(key.clone());
        if is_ours(object) {
            steps.push((
                rank(key.kind),
                Step::Kube(KubeStep {
                    key,
                    desired: object.clone(),
                    change: Change::Deleted,
                    action: KubeAction::Delete,
                }),
            ));
        } else if rendered::all_objects()
            .iter()
            .any(|o| key_of(o).is_ok_and(|k| k == key))
        {
            warnings.push(format!(
                "kept {key}: it is not labelled as made by kubectl-mlplatform ({MANAGED_BY_LABEL}={MANAGED_BY_VALUE}, {COMPONENT_LABEL}={COMPONENT_VALUE})"
            ));
            steps.push((
                rank(key.kind),
                Step::Kube(KubeStep {
                    key,
                    desired: object.clone(),
                    change: Change::Unchanged,
                    action: KubeAction::None,
                }),
            ));
        }
    }
    for object in rendered::all_objects() {
        let Ok(key) = key_of(&object) else { continue };
        if !found.contains(&key) {
            steps.push((
                rank(key.kind),
                Step::Kube(KubeStep {
                    key,
                    desired: object,
                    change: Change::Absent,
                    action: KubeAction::None,
                }),
            ));
        }
    }
    steps.sort_by_key(|(rank, _)| *rank);
    let mut plan = Plan::in_order(
        PolicyOutputs::uninstalled(served),
        steps.into_iter().map(|(_, s)| s).collect(),
    );
    plan.warnings = warnings;
    plan
}

#[cfg(test)]
mod tests;
