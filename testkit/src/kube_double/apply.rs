//! Server-side apply's field ownership, simplified: each field manager owns the leaf fields
//! of the configuration it applied last. Re-applying without a field removes it (unless
//! another manager owns it too), and applying a field another manager owns with a different
//! value is a conflict unless forced, when ownership moves.
//!
//! Simplifications: lists and scalars are atomic leaves (the apiserver merges lists with
//! merge keys element by element). Ownership is read from `metadata.managedFields` (see
//! `managed`); only `Apply` managers conflict.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// One field: the keys from the object's root to a leaf.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Identity fields every applied configuration carries; nobody "owns" them.
fn is_identity(path: &[String]) -> bool {
    matches!(
        path.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["apiVersion"]
            | ["kind"]
            | [
                "metadata",
                "name"
                    | "namespace"
                    | "resourceVersion"
                    | "uid"
                    | "creationTimestamp"
                    | "generation"
                    | "managedFields"
                    | "deletionTimestamp"
                    | "deletionGracePeriodSeconds"
            ]
    )
}

/// The leaf fields an applied configuration sets.
pub fn leaf_paths(applied: &Value) -> FieldSet {
    fn walk(value: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    prefix.push(key.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() && !is_identity(prefix) {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    walk(applied, &mut Vec::new(), &mut out);
    out
}

fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, key| v.get(key))
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// Fields of `applied` owned by another manager with a different current value, as
/// `(manager, .dotted.path)`.
pub fn conflicts(
    existing: &Value,
    applied: &Value,
    new_paths: &FieldSet,
    others: &BTreeMap<String, FieldSet>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in new_paths {
        for (manager, owned) in others {
            if owned.contains(path) && value_at(existing, path) != value_at(applied, path) {
                out.push((manager.clone(), dotted(path)));
            }
        }
    }
    out
}

/// Removes the field at `path`, then parents left empty that nobody else keeps.
fn remove_path(object: &mut Value, path: &[String], keep: &dyn Fn(&[String]) -> bool) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = &mut *object;
    for key in parents {
        match cursor.get_mut(key) {
            Some(next) => cursor = next,
            None => return,
        }
    }
    if let Some(map) = cursor.as_object_mut() {
        map.remove(last);
        if map.is_empty() && !parents.is_empty() && !keep(parents) {
            remove_path(object, parents, keep);
        }
    }
}

/// The object after `manager` applies `applied` over `existing`, given the fields it
/// applied before (`previous`) and what other managers own.
pub fn apply(
    existing: &Value,
    applied: &Value,
    previous: &FieldSet,
    others: &BTreeMap<String, FieldSet>,
) -> Value {
    let new_paths = leaf_paths(applied);
    let mut out = existing.clone();
    json_patch::merge(&mut out, applied);
    let keep = |prefix: &[String]| {
        new_paths
            .iter()
            .chain(others.values().flatten())
            .any(|p| p.starts_with(prefix))
    };
    for path in previous.difference(&new_paths) {
        if others.values().any(|owned| owned.contains(path)) {
            continue;
        }
        remove_path(&mut out, path, &keep);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owned(m: &[(&str, Value)]) -> BTreeMap<String, FieldSet> {
        m.iter()
            .map(|(k, v)| (k.to_string(), leaf_paths(v)))
            .collect()
    }

    #[test]
    fn leaf_paths_skip_identity_and_treat_lists_as_atoms() {
        let paths = leaf_paths(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "annotations": {"a": "1"}}, "data": {"k": "v"}, "list": [1, 2]}));
        let text: Vec<String> = paths.iter().map(|p| dotted(p)).collect();
        assert_eq!(text, vec![".data.k", ".list", ".metadata.annotations.a"]);
    }

    #[test]
    fn reapplying_without_a_field_removes_it_and_empty_parents() {
        let first = json!({"metadata": {"name": "x", "annotations": {"cert-manager.io/inject-ca-from": "ns/c"}}, "data": {"k": "v"}});
        let existing = apply(
            &json!({"metadata": {"name": "x"}}),
            &first,
            &FieldSet::new(),
            &BTreeMap::new(),
        );
        let second = json!({"metadata": {"name": "x"}, "data": {"k": "v2"}});
        let out = apply(&existing, &second, &leaf_paths(&first), &BTreeMap::new());
        assert_eq!(out, json!({"metadata": {"name": "x"}, "data": {"k": "v2"}}));
    }

    #[test]
    fn fields_other_managers_own_survive() {
        let existing = json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}});
        let previous = leaf_paths(&json!({"metadata": {"labels": {"a": "1", "b": "2"}}}));
        let others = owned(&[("other", json!({"metadata": {"labels": {"b": "2"}}}))]);
        let out = apply(
            &existing,
            &json!({"metadata": {"name": "x"}}),
            &previous,
            &others,
        );
        assert_eq!(
            out,
            json!({"metadata": {"name": "x", "labels": {"b": "2"}}})
        );
    }

    #[test]
    fn different_values_on_owned_fields_conflict() {
        let existing = json!({"spec": {"replicas": 2, "paused": false}});
        let others = owned(&[("helm", json!({"spec": {"replicas": 2}}))]);
        let applied = json!({"spec": {"replicas": 3, "paused": false}});
        let found = conflicts(&existing, &applied, &leaf_paths(&applied), &others);
        assert_eq!(
            found,
            vec![("helm".to_string(), ".spec.replicas".to_string())]
        );
        let same = json!({"spec": {"replicas": 2}});
        assert!(conflicts(&existing, &same, &leaf_paths(&same), &others).is_empty());
    }
}
