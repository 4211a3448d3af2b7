//! Strategic merge patch, approximated (see [`strategic_merge`]).

use serde_json::{Value, json};

/// A strategic merge patch, approximated: JSON merge patch semantics, except that lists of
/// objects that all carry `name` (containers, env, volumes, ports...) are merged by name and
/// honour `$patch: delete`, as their strategic merge keys would. Other lists are replaced;
/// `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList` directives are ignored.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        if let Some(m) = replacement.as_object_mut() {
            m.remove("$patch");
        }
        *target = replacement;
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        let Some(target_map) = target.as_object_mut() else {
            return;
        };
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Array(items) => {
                let existing = target_map.get(key).and_then(Value::as_array).cloned();
                match existing {
                    Some(existing) if is_named_list(items) && is_named_list(&existing) => {
                        target_map.insert(key.clone(), Value::Array(merge_named(existing, items)));
                    }
                    _ => {
                        let cleaned: Vec<Value> = items
                            .iter()
                            .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                            .cloned()
                            .collect();
                        target_map.insert(key.clone(), Value::Array(cleaned));
                    }
                }
            }
            Value::Object(_) => {
                let entry = target_map.entry(key.clone()).or_insert_with(|| json!({}));
                strategic_merge(entry, value);
            }
            other => {
                target_map.insert(key.clone(), other.clone());
            }
        }
    }
}

fn is_named_list(items: &[Value]) -> bool {
    items
        .iter()
        .all(|i| i.get("name").is_some_and(Value::is_string))
}

fn merge_named(mut existing: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    for item in patch {
        let name = item.get("name");
        let position = existing.iter().position(|e| e.get("name") == name);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut existing[i], item),
            (None, true) => {}
            (None, false) => {
                let mut fresh = json!({});
                strategic_merge(&mut fresh, item);
                existing.push(fresh);
            }
        }
    }
    existing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_merges_named_lists() {
        let mut target = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        strategic_merge(
            &mut target,
            &json!({"spec": {"containers": [
            {"name": "a", "image": "x2"}, {"name": "b", "$patch": "delete"}, {"name": "c", "image": "z"}]}}),
        );
        assert_eq!(
            target,
            json!({"spec": {"containers": [{"name": "a", "image": "x2"}, {"name": "c", "image": "z"}]}})
        );
    }
}
