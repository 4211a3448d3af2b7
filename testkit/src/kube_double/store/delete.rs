//! Deletion: preconditions, finalizers, propagation policies and the garbage collector.
//!
//! An object without finalizers goes at once; the answer is the object for kinds whose
//! registry returns it, a `Status` otherwise. Finalizers (and the `foregroundDeletion` /
//! `orphan` finalizers a propagation policy adds) hold it with a deletionTimestamp; the
//! answer is then the held object. The garbage collector's work (dependents deleted or
//! orphaned, the policy finalizer removed) runs at once here, not in the background.

use serde_json::{Value, json};

use super::{EventType, ObjectKey, Store, meta_str, set_meta, with_type};
use crate::kube_double::kinds;
use crate::kube_double::resources::ResourceType;
use crate::kube_double::selectors::{FieldSelector, LabelSelector};
use crate::kube_double::status::ApiError;
use crate::kube_double::time::now_rfc3339;

/// DeleteOptions' `propagationPolicy` (or the deprecated `orphanDependents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    fn of(options: &Value) -> Propagation {
        match options.get("propagationPolicy").and_then(Value::as_str) {
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            Some(_) => Propagation::Background,
            None if options.get("orphanDependents").and_then(Value::as_bool) == Some(true) => {
                Propagation::Orphan
            }
            None => Propagation::Background,
        }
    }

    /// The finalizer the apiserver adds for the garbage collector.
    fn finalizer(self) -> Option<&'static str> {
        match self {
            Propagation::Background => None,
            Propagation::Foreground => Some("foregroundDeletion"),
            Propagation::Orphan => Some("orphan"),
        }
    }
}

/// What a delete did: the object is gone (as last stored) or held by finalizers.
pub struct Deleted {
    pub object: Value,
    pub pending: bool,
}

fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    /// DELETE of one object: the answer body (the object, or a `Status` for kinds whose
    /// registry does not return deleted objects).
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let deleted = self.delete_object(rt, namespace, name, options, dry_run)?;
        Ok(if deleted.pending || kinds::returns_deleted_object(rt) {
            with_type(deleted.object, rt)
        } else {
            kinds::deleted_status(rt, &deleted.object)
        })
    }

    pub(super) fn delete_object(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let key = Store::key(rt, namespace, name);
        let existing = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        check_preconditions(rt, name, &existing, options)?;
        if rt.group.is_empty() && rt.kind == "Namespace" {
            return self.terminate_namespace(key, existing, dry_run);
        }
        if meta_str(&existing, "deletionTimestamp").is_some() {
            // Already being deleted: nothing more to do until the finalizers go.
            return Ok(Deleted {
                object: existing,
                pending: true,
            });
        }
        let policy = Propagation::of(options);
        let mut held = finalizers(&existing);
        if let Some(f) = policy.finalizer().filter(|f| !held.iter().any(|h| h == f)) {
            held.push(f.to_string());
        }
        if held.is_empty() {
            if !dry_run {
                self.remove_now(rt, key, existing.clone());
            }
            return Ok(Deleted {
                object: existing,
                pending: false,
            });
        }
        let mut object = existing.clone();
        set_meta(&mut object, "deletionTimestamp", json!(now_rfc3339()));
        set_meta(&mut object, "deletionGracePeriodSeconds", json!(0));
        set_meta(&mut object, "finalizers", json!(held));
        if let Some(generation) = object
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
        {
            set_meta(&mut object, "generation", json!(generation + 1));
        }
        if dry_run {
            return Ok(Deleted {
                object,
                pending: true,
            });
        }
        let held_object = self.commit(key.clone(), object, EventType::Modified, Some(existing));
        if let Some(finalizer) = policy.finalizer() {
            // The garbage collector: dependents first, then its finalizer.
            let uid = meta_str(&held_object, "uid").unwrap_or("").to_string();
            self.collect_garbage(&uid, policy == Propagation::Orphan);
            self.remove_finalizer(&key, finalizer);
        }
        Ok(Deleted {
            object: held_object,
            pending: true,
        })
    }

    /// Removes an object without finalizers, with what goes with it: a CRD's custom
    /// resources, and (background propagation) its dependents.
    fn remove_now(&mut self, rt: &ResourceType, key: ObjectKey, existing: Value) {
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            let group = existing
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = existing
                .pointer("/spec/names/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let custom: Vec<(ObjectKey, Value)> = self
                .objects
                .iter()
                .filter(|(k, _)| k.group == group && k.kind == kind)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in custom {
                self.commit(k, v.clone(), EventType::Deleted, Some(v));
            }
        }
        let uid = meta_str(&existing, "uid").unwrap_or("").to_string();
        self.commit(key, existing.clone(), EventType::Deleted, Some(existing));
        self.collect_garbage(&uid, false);
    }

    /// Takes `finalizer` off a deleting object; the object goes when none is left.
    fn remove_finalizer(&mut self, key: &ObjectKey, finalizer: &str) {
        let Some(existing) = self.objects.get(key).cloned() else {
            return;
        };
        let mut left = finalizers(&existing);
        left.retain(|f| f != finalizer);
        let mut object = existing.clone();
        if left.is_empty() {
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("finalizers");
            }
            self.commit(key.clone(), object, EventType::Deleted, Some(existing));
        } else {
            set_meta(&mut object, "finalizers", json!(left));
            self.commit(key.clone(), object, EventType::Modified, Some(existing));
        }
    }

    /// What the garbage collector does when an owner goes: dependents (objects whose
    /// ownerReferences name `owner_uid`) are deleted, recursively and respecting their
    /// finalizers, or with `orphan` lose that reference. The collector runs in the
    /// background on a real cluster; here at once.
    pub(super) fn collect_garbage(&mut self, owner_uid: &str, orphan: bool) {
        if owner_uid.is_empty() {
            return;
        }
        let names_owner = |v: &Value| {
            v.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
                })
        };
        let dependents: Vec<(ObjectKey, Value)> = self
            .objects
            .iter()
            .filter(|(_, v)| names_owner(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, dependent) in dependents {
            if orphan {
                let mut updated = dependent.clone();
                if let Some(refs) = updated
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
                }
                self.commit(key, updated, EventType::Modified, Some(dependent));
                continue;
            }
            let Some(rt) = self.type_of(&key.group, &key.kind) else {
                let uid = meta_str(&dependent, "uid").unwrap_or("").to_string();
                self.commit(key, dependent.clone(), EventType::Deleted, Some(dependent));
                self.collect_garbage(&uid, false);
                continue;
            };
            let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
            // Gone already (a cycle, or an earlier dependent took it): nothing to do.
            let _ = self.delete_object(&rt, ns, &key.name, &Value::Null, false);
        }
    }

    /// DELETE on a collection: every matching object, returned as a list.
    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        dry_run: bool,
    ) -> Result<Vec<Value>, ApiError> {
        let names: Vec<(String, String)> = self
            .list(rt, namespace, labels, fields)
            .iter()
            .map(|o| {
                (
                    meta_str(o, "namespace").unwrap_or("").to_string(),
                    meta_str(o, "name").unwrap_or("").to_string(),
                )
            })
            .collect();
        let mut deleted = Vec::new();
        for (ns, name) in names {
            let ns = (!ns.is_empty()).then_some(ns.as_str());
            let out = self.delete_object(rt, ns, &name, &Value::Null, dry_run)?;
            deleted.push(with_type(out.object, rt));
        }
        Ok(deleted)
    }
}

/// DeleteOptions' `preconditions`: uid and resourceVersion must match (409 otherwise).
fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    existing: &Value,
    options: &Value,
) -> Result<(), ApiError> {
    if let Some(uid) = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        && Some(uid) != meta_str(existing, "uid")
    {
        return Err(ApiError::uid_precondition(
            uid,
            meta_str(existing, "uid").unwrap_or(""),
        ));
    }
    if let Some(rv) = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        && Some(rv) != meta_str(existing, "resourceVersion")
    {
        return Err(ApiError::conflict(&rt.group, &rt.plural, name));
    }
    Ok(())
}
