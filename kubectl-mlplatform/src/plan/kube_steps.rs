//! Kubernetes steps of a plan: make the namespace bundle true, or take it away again,
//! touching only objects (and namespace keys) that carry our ownership marks.

use crate::vocabulary::{
    ENFORCEMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MANAGED_LABEL, POLICY_ANNOTATIONS,
    PROFILE_ANNOTATION, PROFILE_LABEL,
};
use serde_json::{Map, Value, json};

use super::error::PlanError;
use super::model::Observed;
use crate::bundle::{Bundle, render_bundle};
use crate::common::Change;
use crate::objects::{
    KubeObject, covers, is_ours, is_terminating, merge_patch_for, namespace_created_for,
};
use crate::profile::{Profile, Vars};
use crate::steps::{KubeAction, KubeStep};

pub(super) fn profile_of_namespace(live: &Value) -> Option<&str> {
    live["metadata"]["annotations"][PROFILE_ANNOTATION].as_str()
}

/// Steps that make the bundle true.
pub(super) fn plan_bundle_apply(
    profile: &Profile,
    bundle: &Bundle,
    observed: &Observed,
) -> Result<Vec<KubeStep>, PlanError> {
    let name = profile.name();
    let mut steps = Vec::new();
    let ns_obj = bundle.namespace_object(name);
    match observed.objects.get(&ns_obj.key) {
        None => steps.push(KubeStep {
            key: ns_obj.key.clone(),
            desired: ns_obj.body.clone(),
            change: Change::Created,
            action: KubeAction::Create(ns_obj.body.clone()),
        }),
        Some(live) => {
            if is_terminating(live) {
                return Err(PlanError::NamespaceTerminating(bundle.namespace.clone()));
            }
            if let Some(other) = profile_of_namespace(live).filter(|p| *p != name) {
                return Err(PlanError::NamespaceOwnedByOtherProfile {
                    namespace: bundle.namespace.clone(),
                    other: other.to_owned(),
                });
            }
            // Only the keys we own; stale policy annotations (e.g. an IRSA ARN no longer
            // wanted) are removed with null.
            let mut annotations: Map<String, Value> = bundle
                .namespace_annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            for key in POLICY_ANNOTATIONS {
                if !annotations.contains_key(key)
                    && live["metadata"]["annotations"].get(key).is_some()
                {
                    annotations.insert(key.to_owned(), Value::Null);
                }
            }
            let desired = json!({"metadata": {
                "labels": bundle.namespace_labels,
                "annotations": annotations,
            }});
            let mut shown = live.clone();
            json_patch::merge(&mut shown, &desired);
            let unchanged = covers(live, &desired)
                && annotations
                    .iter()
                    .filter(|(_, v)| v.is_null())
                    .all(|(k, _)| live["metadata"]["annotations"].get(k).is_none());
            steps.push(KubeStep {
                key: ns_obj.key.clone(),
                desired: strip_server_fields(shown),
                change: if unchanged {
                    Change::Unchanged
                } else {
                    Change::Updated
                },
                action: if unchanged {
                    KubeAction::None
                } else {
                    KubeAction::MergePatch(desired)
                },
            });
        }
    }
    for obj in bundle.cluster_scoped.iter().chain(&bundle.namespaced) {
        steps.push(plan_object_apply(name, obj, observed)?);
    }
    Ok(steps)
}

pub(super) fn plan_object_apply(
    profile: &str,
    obj: &KubeObject,
    observed: &Observed,
) -> Result<KubeStep, PlanError> {
    let (change, action) = match observed.objects.get(&obj.key) {
        None => (Change::Created, KubeAction::Create(obj.body.clone())),
        Some(live) if !is_ours(live, profile) => {
            return Err(PlanError::ObjectNotOurs {
                object: obj.key.to_string(),
                profile: profile.to_owned(),
            });
        }
        Some(live) if covers(live, &obj.body) => (Change::Unchanged, KubeAction::None),
        Some(_) => (
            Change::Updated,
            KubeAction::MergePatch(merge_patch_for(&obj.body)),
        ),
    };
    Ok(KubeStep {
        key: obj.key.clone(),
        desired: obj.body.clone(),
        change,
        action,
    })
}

pub(super) fn strip_server_fields(mut v: Value) -> Value {
    if let Some(meta) = v["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "selfLink",
        ] {
            meta.remove(k);
        }
    }
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
    }
    v
}

/// Steps that remove the bundle: our namespaced objects; the namespace's label/annotations
/// (or the namespace with `delete_namespace`); the shared ClusterRole when `last` is true.
pub(super) fn plan_bundle_remove(
    profile: &Profile,
    bundle: &Bundle,
    observed: &Observed,
    delete_namespace: bool,
    last: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<KubeStep>, PlanError> {
    let name = profile.name();
    let ns_key = bundle.namespace_object(name).key;
    let live_ns = observed.objects.get(&ns_key);
    if let Some(live) = live_ns
        && let Some(other) = profile_of_namespace(live).filter(|p| *p != name)
    {
        return Err(PlanError::NamespaceOwnedByOtherProfile {
            namespace: bundle.namespace.clone(),
            other: other.to_owned(),
        });
    }
    let mut steps = Vec::new();
    let mut remove =
        |obj: &KubeObject, steps: &mut Vec<KubeStep>| match observed.objects.get(&obj.key) {
            None => steps.push(KubeStep {
                key: obj.key.clone(),
                desired: obj.body.clone(),
                change: Change::Absent,
                action: KubeAction::None,
            }),
            Some(live) if !is_ours(live, name) => {
                warnings.push(format!(
                    "kept {}: it is not labelled as made by kubectl-mlplatform for profile {name}",
                    obj.key
                ));
                steps.push(KubeStep {
                    key: obj.key.clone(),
                    desired: live.clone(),
                    change: Change::Unchanged,
                    action: KubeAction::None,
                });
            }
            Some(live) => steps.push(KubeStep {
                key: obj.key.clone(),
                desired: strip_server_fields(live.clone()),
                change: Change::Deleted,
                action: KubeAction::Delete,
            }),
        };
    // Bindings before what they bind, then the shared role.
    for obj in bundle.namespaced.iter().rev() {
        remove(obj, &mut steps);
    }
    if last {
        for obj in &bundle.cluster_scoped {
            remove(obj, &mut steps);
        }
    } else {
        for obj in &bundle.cluster_scoped {
            steps.push(KubeStep {
                key: obj.key.clone(),
                desired: obj.body.clone(),
                change: Change::Unchanged,
                action: KubeAction::None,
            });
        }
    }
    let created_here = live_ns.is_some_and(|live| namespace_created_for(live, name));
    match live_ns {
        None => steps.push(KubeStep {
            key: ns_key,
            desired: Value::Null,
            change: Change::Absent,
            action: KubeAction::None,
        }),
        // Already on its way out (a deletion in progress): nothing left to do to it.
        Some(live) if is_terminating(live) => steps.push(KubeStep {
            key: ns_key,
            desired: strip_server_fields(live.clone()),
            change: Change::Absent,
            action: KubeAction::None,
        }),
        Some(live) if delete_namespace && created_here => steps.push(KubeStep {
            key: ns_key,
            desired: strip_server_fields(live.clone()),
            change: Change::Deleted,
            action: KubeAction::Delete,
        }),
        Some(live) => {
            if delete_namespace {
                warnings.push(format!(
                    "kept namespace {}: connect did not create it (it existed before); only its mlplatform labels and annotations are removed",
                    bundle.namespace
                ));
            } else if created_here {
                warnings.push(format!(
                    "kept namespace {} that connect created (other software may live in it now); pass --delete-namespace to remove it",
                    bundle.namespace
                ));
            }
            let labels = &live["metadata"]["labels"];
            let annotations = &live["metadata"]["annotations"];
            let mut label_patch = Map::new();
            for key in [MANAGED_LABEL, PROFILE_LABEL, ENFORCEMENT_LABEL] {
                if labels.get(key).is_some() {
                    label_patch.insert(key.to_owned(), Value::Null);
                }
            }
            if labels[MANAGED_BY_LABEL] == MANAGED_BY_VALUE {
                label_patch.insert(MANAGED_BY_LABEL.to_owned(), Value::Null);
            }
            let mut annotation_patch = Map::new();
            for key in POLICY_ANNOTATIONS {
                if annotations.get(key).is_some() {
                    annotation_patch.insert(key.to_owned(), Value::Null);
                }
            }
            let changed = !label_patch.is_empty() || !annotation_patch.is_empty();
            let patch =
                json!({"metadata": {"labels": label_patch, "annotations": annotation_patch}});
            let mut shown = live.clone();
            json_patch::merge(&mut shown, &patch);
            steps.push(KubeStep {
                key: ns_key,
                desired: strip_server_fields(shown),
                change: if changed {
                    Change::Updated
                } else {
                    Change::Unchanged
                },
                action: if changed {
                    KubeAction::MergePatch(patch)
                } else {
                    KubeAction::None
                },
            });
        }
    }
    Ok(steps)
}

pub(super) fn bundle_for(
    profile: &Profile,
    vars: &Vars,
    namespace: &str,
) -> Result<Option<Bundle>, PlanError> {
    profile
        .spec
        .namespace
        .as_ref()
        .map(|spec| render_bundle(profile, spec, vars, namespace))
        .transpose()
        .map_err(PlanError::from)
}
