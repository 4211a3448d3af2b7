//! The profile's StorageClass (Arthur's gp3) as the one default class. Other default classes
//! are demoted (annotation set to "false") and their names recorded in an annotation on our
//! class, so that disconnect restores exactly those and nothing else. A class that is not ours
//! is never deleted; ours only by the disconnect of the profile's last namespace.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::error::PlanError;
use super::kube_steps;
use super::model::Observed;
use crate::common::Change;
use crate::objects::{Kind, KubeObject, ObjectKey, covers, is_ours};
use crate::profile::{Profile, Vars};
use crate::steps::{KubeAction, KubeStep};
use crate::vocabulary::{DEMOTED_ANNOTATION, PREVIOUS_DEFAULT_ANNOTATION};

pub(crate) const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// The pre-1.13 annotation some clusters still carry.
const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// True when the live class says it is a default class (either annotation).
pub(crate) fn is_default_class(live: &Value) -> bool {
    let a = &live["metadata"]["annotations"];
    a[DEFAULT_CLASS_ANNOTATION] == "true" || a[BETA_DEFAULT_CLASS_ANNOTATION] == "true"
}

/// Names of the default classes among `classes`, sorted.
pub(crate) fn default_storage_classes(classes: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = classes
        .iter()
        .filter(|c| is_default_class(c))
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn class_key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::StorageClass,
        namespace: None,
        name: name.to_owned(),
    }
}

fn demoted_list(live: &Value) -> BTreeSet<String> {
    live["metadata"]["annotations"][DEMOTED_ANNOTATION]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn find<'a>(classes: &'a [Value], name: &str) -> Option<&'a Value> {
    classes.iter().find(|c| c["metadata"]["name"] == name)
}

/// The class as the profile wants it (without the demoted record).
fn desired_class(profile: &Profile, vars: &Vars) -> Result<Option<KubeObject>, PlanError> {
    let Some(spec) = &profile.spec.storage_class else {
        return Ok(None);
    };
    let name = vars.render("spec.storageClass.name", &spec.name)?;
    let mut parameters = Map::new();
    for (k, v) in &spec.parameters {
        let value = vars.render(&format!("spec.storageClass.parameters.{k}"), v)?;
        // An optional parameter that was not given drops its key (e.g. kmsKeyId).
        if !value.is_empty() {
            parameters.insert(k.clone(), value.into());
        }
    }
    let mut fields = json!({
        "provisioner": vars.render("spec.storageClass.provisioner", &spec.provisioner)?,
        "parameters": parameters,
    });
    if let Some(p) = &spec.reclaim_policy {
        fields["reclaimPolicy"] = json!(p);
    }
    if let Some(m) = &spec.volume_binding_mode {
        fields["volumeBindingMode"] = json!(m);
    }
    if let Some(e) = spec.allow_volume_expansion {
        fields["allowVolumeExpansion"] = json!(e);
    }
    let mut obj = KubeObject::new(Kind::StorageClass, None, &name, profile.name(), fields);
    if spec.make_default {
        obj.body["metadata"]["annotations"] = json!({ DEFAULT_CLASS_ANNOTATION: "true" });
    }
    Ok(Some(obj))
}

/// Fields Kubernetes refuses to change on a StorageClass.
fn immutable_difference(live: &Value, desired: &Value) -> Option<(String, String, String)> {
    for field in [
        "provisioner",
        "parameters",
        "reclaimPolicy",
        "volumeBindingMode",
    ] {
        let wanted = &desired[field];
        if wanted.is_null() {
            continue;
        }
        let found = &live[field];
        let same = match field {
            // The server leaves parameters absent when empty.
            "parameters" => {
                (found.is_null() && wanted.as_object().is_some_and(Map::is_empty))
                    || found == wanted
            }
            _ => found == wanted,
        };
        if !same {
            return Some((field.to_owned(), found.to_string(), wanted.to_string()));
        }
    }
    None
}

/// connect: create (or keep) our class and demote every other default class.
pub(super) fn plan_storage_apply(
    profile: &Profile,
    observed: &Observed,
    vars: &Vars,
) -> Result<Vec<KubeStep>, PlanError> {
    let Some(mut obj) = desired_class(profile, vars)? else {
        return Ok(Vec::new());
    };
    let make_default = profile
        .spec
        .storage_class
        .as_ref()
        .is_some_and(|s| s.make_default);
    let name = obj.key.name.clone();
    let classes = &observed.storage_classes;
    let live = find(classes, &name);
    if let Some(live) = live
        && !is_ours(live, profile.name())
    {
        return adopt_existing(&obj, live, classes, make_default);
    }
    if let Some(live) = live
        && let Some((field, found, wanted)) = immutable_difference(live, &obj.body)
    {
        return Err(PlanError::StorageClassImmutable {
            name,
            field,
            live: found,
            wanted,
        });
    }
    let to_demote: Vec<String> = if make_default {
        default_storage_classes(classes)
            .into_iter()
            .filter(|n| *n != name)
            .collect()
    } else {
        Vec::new()
    };
    // The record keeps what earlier runs demoted, so a re-run does not forget it.
    let mut demoted: BTreeSet<String> = live.map(demoted_list).unwrap_or_default();
    demoted.extend(to_demote.iter().cloned());
    if !demoted.is_empty() {
        obj.body["metadata"]["annotations"][DEMOTED_ANNOTATION] =
            json!(demoted.iter().cloned().collect::<Vec<_>>().join(","));
    }
    let mut steps = Vec::new();
    steps.push(match live {
        None => KubeStep {
            key: obj.key.clone(),
            desired: obj.body.clone(),
            change: Change::Created,
            action: KubeAction::Create(obj.body.clone()),
        },
        Some(live) if covers(live, &obj.body) => KubeStep {
            key: obj.key.clone(),
            desired: obj.body.clone(),
            change: Change::Unchanged,
            action: KubeAction::None,
        },
        Some(_) => {
            // Only what may change: labels, annotations, allowVolumeExpansion.
            let mut patch = json!({"metadata": {
                "labels": obj.body["metadata"]["labels"],
                "annotations": obj.body["metadata"]["annotations"],
            }});
            if !obj.body["allowVolumeExpansion"].is_null() {
                patch["allowVolumeExpansion"] = obj.body["allowVolumeExpansion"].clone();
            }
            KubeStep {
                key: obj.key.clone(),
                desired: obj.body.clone(),
                change: Change::Updated,
                action: KubeAction::MergePatch(patch),
            }
        }
    });
    steps.extend(to_demote.iter().filter_map(|n| demote_step(classes, n)));
    Ok(steps)
}

fn demote_step(classes: &[Value], name: &str) -> Option<KubeStep> {
    let live = find(classes, name)?;
    let mut annotations = Map::new();
    annotations.insert(DEFAULT_CLASS_ANNOTATION.to_owned(), json!("false"));
    if live["metadata"]["annotations"]
        .get(BETA_DEFAULT_CLASS_ANNOTATION)
        .is_some()
    {
        annotations.insert(BETA_DEFAULT_CLASS_ANNOTATION.to_owned(), json!("false"));
    }
    let patch = json!({"metadata": {"annotations": annotations}});
    let mut shown = live.clone();
    json_patch::merge(&mut shown, &patch);
    Some(KubeStep {
        key: class_key(name),
        desired: kube_steps::strip_server_fields(shown),
        change: Change::Updated,
        action: KubeAction::MergePatch(patch),
    })
}

/// A class of the wanted name existed before connect: it is used as it is (never deleted,
/// its other fields never changed); only, when the profile wants it the default, its default
/// annotation is set, with what it was before and the classes demoted recorded on it.
fn adopt_existing(
    obj: &KubeObject,
    live: &Value,
    classes: &[Value],
    make_default: bool,
) -> Result<Vec<KubeStep>, PlanError> {
    if live["provisioner"] != obj.body["provisioner"] {
        return Err(PlanError::StorageClassImmutable {
            name: obj.key.name.clone(),
            field: "provisioner".to_owned(),
            live: live["provisioner"].to_string(),
            wanted: obj.body["provisioner"].to_string(),
        });
    }
    let keep = |change| KubeStep {
        key: obj.key.clone(),
        desired: kube_steps::strip_server_fields(live.clone()),
        change,
        action: KubeAction::None,
    };
    if !make_default {
        return Ok(vec![keep(Change::Unchanged)]);
    }
    let annotations = &live["metadata"]["annotations"];
    let to_demote: Vec<String> = default_storage_classes(classes)
        .into_iter()
        .filter(|n| *n != obj.key.name)
        .collect();
    let mut demoted = demoted_list(live);
    demoted.extend(to_demote.iter().cloned());
    let previous = match annotations.get(PREVIOUS_DEFAULT_ANNOTATION) {
        Some(recorded) => recorded.clone(),
        None if annotations[DEFAULT_CLASS_ANNOTATION] == "true" => Value::Null,
        None => json!(
            annotations[DEFAULT_CLASS_ANNOTATION]
                .as_str()
                .unwrap_or("absent")
        ),
    };
    let mut wanted = Map::new();
    wanted.insert(DEFAULT_CLASS_ANNOTATION.to_owned(), json!("true"));
    if !previous.is_null() {
        wanted.insert(PREVIOUS_DEFAULT_ANNOTATION.to_owned(), previous);
    }
    if !demoted.is_empty() {
        wanted.insert(
            DEMOTED_ANNOTATION.to_owned(),
            json!(demoted.iter().cloned().collect::<Vec<_>>().join(",")),
        );
    }
    let patch = json!({"metadata": {"annotations": wanted}});
    let mut steps = Vec::new();
    if covers(live, &patch) {
        steps.push(keep(Change::Unchanged));
    } else {
        let mut shown = live.clone();
        json_patch::merge(&mut shown, &patch);
        steps.push(KubeStep {
            key: obj.key.clone(),
            desired: kube_steps::strip_server_fields(shown),
            change: Change::Updated,
            action: KubeAction::MergePatch(patch),
        });
    }
    steps.extend(to_demote.iter().filter_map(|n| demote_step(classes, n)));
    Ok(steps)
}

/// Patches that make the classes recorded on `ours` the default again (those still demoted;
/// one somebody re-promoted or deleted meanwhile is left alone).
fn restore_steps(classes: &[Value], ours: &Value, warnings: &mut Vec<String>) -> Vec<KubeStep> {
    let mut steps = Vec::new();
    for name in demoted_list(ours) {
        let Some(other) = find(classes, &name) else {
            warnings.push(format!(
                "StorageClass {name} was the default before connect but no longer exists; nothing to restore"
            ));
            continue;
        };
        if other["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] != "false" {
            continue;
        }
        let mut annotations = Map::new();
        annotations.insert(DEFAULT_CLASS_ANNOTATION.to_owned(), json!("true"));
        if other["metadata"]["annotations"][BETA_DEFAULT_CLASS_ANNOTATION] == "false" {
            annotations.insert(BETA_DEFAULT_CLASS_ANNOTATION.to_owned(), json!("true"));
        }
        let patch = json!({"metadata": {"annotations": annotations}});
        let mut shown = other.clone();
        json_patch::merge(&mut shown, &patch);
        steps.push(KubeStep {
            key: class_key(&name),
            desired: kube_steps::strip_server_fields(shown),
            change: Change::Updated,
            action: KubeAction::MergePatch(patch),
        });
    }
    steps
}

/// disconnect (last namespace): delete our class and restore exactly the classes it demoted
/// (those still demoted; one somebody re-promoted or deleted meanwhile is left alone).
pub(super) fn plan_storage_remove(
    profile: &Profile,
    observed: &Observed,
    vars: &Vars,
    last: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<KubeStep>, PlanError> {
    let Some(obj) = desired_class(profile, vars)? else {
        return Ok(Vec::new());
    };
    let classes = &observed.storage_classes;
    let mut steps = Vec::new();
    match find(classes, &obj.key.name) {
        None => steps.push(KubeStep {
            key: obj.key.clone(),
            desired: obj.body.clone(),
            change: Change::Absent,
            action: KubeAction::None,
        }),
        Some(live)
            if !is_ours(live, profile.name())
                && last
                && (live["metadata"]["annotations"]
                    .get(PREVIOUS_DEFAULT_ANNOTATION)
                    .is_some()
                    || !demoted_list(live).is_empty()) =>
        {
            // Existed before connect, which made it the default: give back exactly that.
            steps.extend(restore_steps(classes, live, warnings));
            let annotations = &live["metadata"]["annotations"];
            let mut patch_annotations = Map::new();
            patch_annotations.insert(DEMOTED_ANNOTATION.to_owned(), Value::Null);
            patch_annotations.insert(PREVIOUS_DEFAULT_ANNOTATION.to_owned(), Value::Null);
            match annotations[PREVIOUS_DEFAULT_ANNOTATION].as_str() {
                Some("absent") => {
                    patch_annotations.insert(DEFAULT_CLASS_ANNOTATION.to_owned(), Value::Null);
                }
                Some(previous) => {
                    patch_annotations.insert(DEFAULT_CLASS_ANNOTATION.to_owned(), json!(previous));
                }
                None => {}
            }
            let patch = json!({"metadata": {"annotations": patch_annotations}});
            let mut shown = live.clone();
            json_patch::merge(&mut shown, &patch);
            warnings.push(format!(
                "kept {}: it existed before connect; only its default-class setting is given back",
                obj.key
            ));
            steps.push(KubeStep {
                key: obj.key.clone(),
                desired: kube_steps::strip_server_fields(shown),
                change: Change::Updated,
                action: KubeAction::MergePatch(patch),
            });
        }
        Some(live) if !is_ours(live, profile.name()) => {
            warnings.push(format!(
                "kept {}: it was not made by kubectl-mlplatform for profile {}",
                obj.key,
                profile.name()
            ));
            steps.push(KubeStep {
                key: obj.key.clone(),
                desired: kube_steps::strip_server_fields(live.clone()),
                change: Change::Unchanged,
                action: KubeAction::None,
            });
        }
        Some(live) if !last => steps.push(KubeStep {
            key: obj.key.clone(),
            desired: kube_steps::strip_server_fields(live.clone()),
            change: Change::Unchanged,
            action: KubeAction::None,
        }),
        Some(live) => {
            steps.extend(restore_steps(classes, live, warnings));
            steps.push(KubeStep {
                key: obj.key.clone(),
                desired: kube_steps::strip_server_fields(live.clone()),
                change: Change::Deleted,
                action: KubeAction::Delete,
            });
        }
    }
    Ok(steps)
}
