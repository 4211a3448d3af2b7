//! `metadata.managedFields`, as the apiserver records them on every write: one entry per
//! (manager, operation, subresource), each naming the fields that manager owns (FieldsV1).
//!
//! Server-side apply reads its ownership from here too (`Apply` entries), so what a client
//! sees and what decides apply conflicts are the same data.
//!
//! Simplifications: lists are atomic fields (the apiserver tracks list items by merge key);
//! an `Update` takes the fields whose value it changed (all fields on create); only `Apply`
//! managers take part in apply conflicts (the apiserver also reports conflicts with `Update`
//! managers), though every manager's ownership keeps a field an applier stops sending.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::apply::{FieldPath, FieldSet, leaf_paths};
use super::time::now_rfc3339;

/// Who performs a write, and how: an ordinary write (`Update`) or server-side apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Manager {
    Update(String),
    Apply {
        name: String,
        /// The applied configuration: the fields the manager owns afterwards.
        config: Value,
        force: bool,
    },
}

impl Manager {
    /// The manager of writes that name none (tests calling the store directly).
    pub fn unnamed() -> Manager {
        Manager::Update("unknown".to_string())
    }

    fn name(&self) -> &str {
        match self {
            Manager::Update(name) | Manager::Apply { name, .. } => name,
        }
    }

    fn operation(&self) -> &'static str {
        match self {
            Manager::Update(_) => "Update",
            Manager::Apply { .. } => "Apply",
        }
    }
}

/// The apiserver's default manager name: the User-Agent up to the first '/'.
pub fn manager_from_user_agent(user_agent: Option<&str>) -> String {
    user_agent
        .and_then(|ua| ua.split('/').next())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

/// One managedFields entry, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(&self.fields),
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }

    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// The entries of an object's managedFields (malformed entries are skipped).
pub fn entries(object: &Value) -> Vec<Entry> {
    let text = |e: &Value, f: &str| e.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.get("manager").is_some_and(Value::is_string))
        .map(|e| Entry {
            manager: text(e, "manager"),
            operation: text(e, "operation"),
            api_version: text(e, "apiVersion"),
            time: text(e, "time"),
            subresource: text(e, "subresource"),
            fields: e.get("fieldsV1").map(parse_fields_v1).unwrap_or_default(),
        })
        .collect()
}

/// What each `Apply` manager of the main resource owns: the input of apply conflicts.
pub fn appliers(object: &Value) -> Vec<(String, FieldSet)> {
    entries(object)
        .into_iter()
        .filter(|e| e.operation == "Apply" && e.subresource.is_empty())
        .map(|e| (e.manager, e.fields))
        .collect()
}

/// FieldsV1 from field paths: `{"f:metadata": {"f:labels": {"f:app": {}}}}`.
pub fn fields_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cursor = &mut root;
        for key in path {
            let child = cursor
                .entry(format!("f:{key}"))
                .or_insert_with(|| json!({}));
            if !child.is_object() {
                *child = json!({});
            }
            match child.as_object_mut() {
                Some(map) => cursor = map,
                None => break,
            }
        }
    }
    Value::Object(root)
}

/// Field paths from FieldsV1. List items (`k:`, `v:`, `i:` keys) collapse into their list,
/// which this model owns as a whole.
pub fn parse_fields_v1(tree: &Value) -> FieldSet {
    fn walk(node: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
        let children: Vec<(&String, &Value)> = node
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        let has_items = node
            .as_object()
            .is_some_and(|m| m.keys().any(|k| k.len() > 2 && k.as_bytes()[1] == b':'));
        let list_items = has_items && children.is_empty();
        if children.is_empty() || list_items {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            return;
        }
        for (key, child) in children {
            prefix.push(key[2..].to_string());
            walk(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, key| v.get(key))
}

/// Leaf fields whose value differs between `before` and `after` (added, changed, removed).
fn changed_fields(before: &Value, after: &Value) -> (FieldSet, FieldSet) {
    let old = leaf_paths(before);
    let new = leaf_paths(after);
    let changed = new
        .iter()
        .filter(|p| value_at(before, p) != value_at(after, p))
        .cloned()
        .collect();
    let removed = old.difference(&new).cloned().collect();
    (changed, removed)
}

/// Whether a field belongs to the part a write addresses (`status` or the rest).
fn in_part(path: &FieldPath, status: bool) -> bool {
    (path.first().map(String::as_str) == Some("status")) == status
}

/// Records a write by `who` in `object`'s managedFields. `previous` is the stored object
/// before the write (None on create); `status` says the write went to `/status`.
pub fn record(
    object: &mut Value,
    previous: Option<&Value>,
    who: &Manager,
    api_version: &str,
    status: bool,
) {
    let mut list = previous.map(entries).unwrap_or_default();
    let subresource = if status { "status" } else { "" };
    let (owned, taken): (FieldSet, FieldSet) = match who {
        Manager::Apply { config, force, .. } => {
            let owned = leaf_paths(config);
            let taken = if *force {
                owned.clone()
            } else {
                FieldSet::new()
            };
            (owned, taken)
        }
        Manager::Update(_) => {
            let empty = json!({});
            let (changed, removed) = changed_fields(previous.unwrap_or(&empty), object);
            let changed: FieldSet = changed.into_iter().filter(|p| in_part(p, status)).collect();
            let mut owned = list
                .iter()
                .find(|e| e.is(who.name(), "Update", subresource))
                .map(|e| e.fields.clone())
                .unwrap_or_default();
            owned.extend(changed.iter().cloned());
            owned.retain(|p| !removed.contains(p));
            let taken = changed.union(&removed).cloned().collect();
            (owned, taken)
        }
    };
    for entry in list.iter_mut() {
        if !entry.is(who.name(), who.operation(), subresource) {
            entry.fields.retain(|p| !taken.contains(p));
        }
    }
    let mine = Entry {
        manager: who.name().to_string(),
        operation: who.operation().to_string(),
        api_version: api_version.to_string(),
        time: now_rfc3339(),
        subresource: subresource.to_string(),
        fields: owned,
    };
    match list
        .iter()
        .position(|e| e.is(&mine.manager, &mine.operation, subresource))
    {
        Some(i) => list[i] = mine,
        None => list.push(mine),
    }
    list.retain(|e| !e.fields.is_empty());
    let rendered: Vec<Value> = list.iter().map(Entry::to_json).collect();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".to_string(), Value::Array(rendered));
        }
    }
}

/// Whether two versions of an object differ in nothing but managedFields times (a write
/// that only refreshes times is not stored).
pub fn same_but_times(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(list) = v
            .pointer_mut("/metadata/managedFields")
            .and_then(Value::as_array_mut)
        {
            for entry in list.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("time");
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// What every entry but `manager`'s own `Apply` entry owns: fields an applier stops
/// sending stay when someone else owns them.
pub fn other_owners(object: &Value, manager: &str) -> BTreeMap<String, FieldSet> {
    let mut out: BTreeMap<String, FieldSet> = BTreeMap::new();
    for e in entries(object) {
        if !e.is(manager, "Apply", "") {
            let label = format!("{}/{}/{}", e.manager, e.operation, e.subresource);
            out.entry(label).or_default().extend(e.fields);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(object: &Value, manager: &str) -> Vec<String> {
        entries(object)
            .into_iter()
            .filter(|e| e.manager == manager)
            .flat_map(|e| e.fields)
            .map(|p| p.join("."))
            .collect()
    }

    #[test]
    fn fields_v1_round_trips_and_collapses_list_items() {
        let set = leaf_paths(&json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}}));
        assert_eq!(parse_fields_v1(&fields_v1(&set)), set);
        let real = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:image": {}}}}});
        let parsed: Vec<String> = parse_fields_v1(&real)
            .into_iter()
            .map(|p| p.join("."))
            .collect();
        assert_eq!(parsed, vec!["metadata.labels.app", "spec.containers"]);
    }

    #[test]
    fn updates_take_what_they_change_and_empty_entries_go() {
        let mut created = json!({"metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}});
        record(
            &mut created,
            None,
            &Manager::Update("creator".into()),
            "v1",
            false,
        );
        assert_eq!(paths(&created, "creator"), vec!["data.a", "data.b"]);
        let mut patched = created.clone();
        patched["data"]["a"] = json!("changed");
        record(
            &mut patched,
            Some(&created),
            &Manager::Update("patcher".into()),
            "v1",
            false,
        );
        assert_eq!(paths(&patched, "creator"), vec!["data.b"]);
        assert_eq!(paths(&patched, "patcher"), vec!["data.a"]);
        let mut forced = patched.clone();
        record(
            &mut forced,
            Some(&patched),
            &Manager::Apply {
                name: "applier".into(),
                config: json!({"data": {"a": "changed"}}),
                force: true,
            },
            "v1",
            false,
        );
        assert!(paths(&forced, "patcher").is_empty(), "entry removed");
        assert_eq!(appliers(&forced).len(), 1);
        assert!(
            other_owners(&forced, "applier")
                .values()
                .all(|f| f.is_empty() || !f.contains(&vec!["data".to_string(), "a".to_string()]))
        );
        assert_eq!(other_owners(&forced, "someone").len(), 2);
    }

    #[test]
    fn default_manager_is_the_user_agent_prefix() {
        assert_eq!(
            manager_from_user_agent(Some("kubectl/v1.36.2 (linux/amd64)")),
            "kubectl"
        );
        assert_eq!(manager_from_user_agent(None), "unknown");
    }
}
