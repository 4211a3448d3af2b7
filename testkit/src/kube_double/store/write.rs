//! Create, update and patch, in the apiserver's order: decode and check the body against
//! the URL, admission (namespace lifecycle, the built-in Pod plugins), server fields,
//! validation, then the stored object with its managedFields.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{
    ApplyOptions, EventType, ObjectKey, Part, PatchType, Store, meta_str, remove_meta, set_meta,
    strategic_merge, with_type,
};
use crate::kube_double::apply::{self, FieldSet};
use crate::kube_double::defaults;
use crate::kube_double::kinds;
use crate::kube_double::managed::{self, Manager};
use crate::kube_double::pod_admission;
use crate::kube_double::resources::{ResourceType, split_api_version};
use crate::kube_double::status::ApiError;
use crate::kube_double::time::now_rfc3339;
use crate::kube_double::validation::objects::validate_object;
use crate::kube_double::validation::{validate_metadata, validate_update};

/// Metadata only the server writes: dropped from request bodies.
const SERVER_METADATA: &[&str] = &[
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
];

/// Metadata an update keeps from the stored object, whatever the body says.
const PRESERVED_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
];

impl Store {
    /// Checks kind/apiVersion/namespace of a request body against the URL, filling them in.
    fn normalize_body(
        rt: &ResourceType,
        namespace: Option<&str>,
        body: Value,
    ) -> Result<Value, ApiError> {
        let Value::Object(mut map) = body else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        match map.get("kind").and_then(Value::as_str) {
            Some(kind) if kind != rt.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({kind}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
            _ => {}
        }
        if let Some(av) = map.get("apiVersion").and_then(Value::as_str) {
            let (group, _) = split_api_version(av);
            if group != rt.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rt.api_version()
                )));
            }
        }
        map.insert("kind".to_string(), json!(rt.kind));
        map.insert("apiVersion".to_string(), json!(rt.api_version()));
        let metadata = map.entry("metadata").or_insert_with(|| json!({}));
        let Some(metadata) = metadata.as_object_mut() else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        if rt.namespaced {
            let url_ns = namespace.unwrap_or("");
            match metadata.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
            if url_ns.is_empty() {
                return Err(ApiError::bad_request(
                    "a namespaced object must be written through a namespace path",
                ));
            }
            metadata.insert("namespace".to_string(), json!(url_ns));
        } else {
            metadata.remove("namespace");
        }
        // Clients echo managedFields back; the store keeps its own record.
        metadata.remove("managedFields");
        Ok(Value::Object(map))
    }

    fn validate(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
        let mut causes = validate_metadata(&rt.kind, object);
        causes.extend(validate_object(&rt.group, &rt.kind, object));
        if causes.is_empty() {
            Ok(())
        } else {
            let name = meta_str(object, "name").unwrap_or("");
            Err(ApiError::invalid(&rt.group, &rt.kind, name, &causes))
        }
    }

    /// [`Store::create_as`] by an unnamed manager.
    #[cfg(test)]
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        body: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.create_as(rt, namespace, body, dry_run, &Manager::unnamed())
    }

    /// Creates an object written by `who`; with `dry_run` everything is checked and the
    /// would-be object returned, nothing stored.
    pub fn create_as(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        body: Value,
        dry_run: bool,
        who: &Manager,
    ) -> Result<Value, ApiError> {
        let mut object = Store::normalize_body(rt, namespace, body)?;
        let ns = namespace.unwrap_or("");
        // The name as admission sees it: empty for generateName.
        let asked_name = meta_str(&object, "name").unwrap_or("").to_string();
        if rt.namespaced {
            self.admit_into_namespace(rt, ns, &asked_name)?;
        }
        defaults::apply(&rt.group, &rt.kind, &mut object);
        if rt.group.is_empty() && rt.kind == "Pod" {
            let sa_key = ObjectKey {
                group: String::new(),
                kind: "ServiceAccount".to_string(),
                namespace: ns.to_string(),
                name: pod_admission::service_account_of(&object),
            };
            let sa = self.objects.get(&sa_key).cloned();
            let suffix = self.name_suffix();
            pod_admission::admit(&mut object, ns, &asked_name, sa.as_ref(), || suffix)?;
        }
        if asked_name.is_empty() {
            match meta_str(&object, "generateName").map(str::to_string) {
                Some(prefix) if !prefix.is_empty() => {
                    let name = format!("{prefix}{}", self.name_suffix());
                    set_meta(&mut object, "name", json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        "",
                        &[(
                            "metadata.name".to_string(),
                            "Required value: name or generateName is required".to_string(),
                        )],
                    ));
                }
            }
        }
        Store::validate(rt, &object)?;
        let name = meta_str(&object, "name").unwrap_or("").to_string();
        let key = Store::key(rt, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        let uid = self.new_uid();
        set_meta(&mut object, "uid", json!(uid));
        set_meta(&mut object, "creationTimestamp", json!(now_rfc3339()));
        remove_meta(&mut object, "generation");
        if kinds::has_generation(rt) {
            set_meta(&mut object, "generation", json!(1));
        }
        for server_field in SERVER_METADATA {
            remove_meta(&mut object, server_field);
        }
        if rt.has_status
            && let Some(map) = object.as_object_mut()
        {
            // Status is the controllers' to write: the apiserver resets it on create.
            map.remove("status");
            if let Some(status) = kinds::initial_status(rt) {
                map.insert("status".to_string(), status);
            }
        }
        if rt.group.is_empty() && rt.kind == "Pod" {
            object["status"] = pod_admission::creation_status(&object);
        }
        apply_create_defaults(rt, &mut object, &name);
        managed::record(&mut object, None, who, &rt.api_version(), false);
        if dry_run {
            return Ok(object);
        }
        let created = self.commit(key, object, EventType::Added, None);
        if rt.group.is_empty() && rt.kind == "Namespace" {
            self.add_default_service_account(&name);
        }
        Ok(created)
    }

    /// The object a write of `new` over `existing` would store (before managedFields), or
    /// an error.
    fn updated_object(
        rt: &ResourceType,
        existing: &Value,
        new: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let name = meta_str(existing, "name").unwrap_or("").to_string();
        let mut object = match part {
            Part::Main => {
                let mut object = new;
                defaults::apply(&rt.group, &rt.kind, &mut object);
                if rt.has_status {
                    match existing.get("status") {
                        Some(status) => object["status"] = status.clone(),
                        None => {
                            if let Some(map) = object.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                object
            }
            Part::Status => {
                let mut object = existing.clone();
                match new.get("status") {
                    Some(status) => object["status"] = status.clone(),
                    None => {
                        if let Some(map) = object.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                object
            }
        };
        if meta_str(&object, "name") != Some(name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&object, "name").unwrap_or("")
            )));
        }
        if let Some(uid) = meta_str(&object, "uid")
            && Some(uid) != meta_str(existing, "uid")
        {
            return Err(ApiError::uid_precondition(
                uid,
                meta_str(existing, "uid").unwrap_or(""),
            ));
        }
        match meta_str(&object, "resourceVersion") {
            Some(rv) if !rv.is_empty() && Some(rv) != meta_str(existing, "resourceVersion") => {
                return Err(ApiError::conflict(&rt.group, &rt.plural, &name));
            }
            _ => {}
        }
        Store::validate(rt, &object)?;
        let causes = validate_update(&rt.group, &rt.kind, existing, &object);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, &causes));
        }
        for preserved in PRESERVED_METADATA {
            match existing.pointer(&format!("/metadata/{preserved}")) {
                Some(v) => set_meta(&mut object, preserved, v.clone()),
                None => remove_meta(&mut object, preserved),
            }
        }
        if kinds::has_generation(rt) && spec_of(&object) != spec_of(existing) {
            let generation = existing
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut object, "generation", json!(generation + 1));
        }
        Ok(object)
    }

    /// Stores an update by `who`, or finishes a pending deletion when the last finalizer
    /// went. A write that changes nothing, ownership included, stores nothing: the
    /// apiserver then keeps the resourceVersion and sends no event.
    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &mut self,
        rt: &ResourceType,
        key: ObjectKey,
        existing: Value,
        mut object: Value,
        part: Part,
        dry_run: bool,
        who: &Manager,
    ) -> Value {
        managed::record(
            &mut object,
            Some(&existing),
            who,
            &rt.api_version(),
            part == Part::Status,
        );
        if managed::same_but_times(&object, &existing) {
            return with_type(existing, rt);
        }
        let finalizers_done = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let deleting = meta_str(&object, "deletionTimestamp").is_some();
        if dry_run {
            return with_type(object, rt);
        }
        if deleting && finalizers_done {
            let uid = meta_str(&existing, "uid").unwrap_or("").to_string();
            let deleted = self.commit(key, object, EventType::Deleted, Some(existing));
            self.collect_garbage(&uid, false);
            return with_type(deleted, rt);
        }
        let stored = self.commit(key, object, EventType::Modified, Some(existing));
        with_type(stored, rt)
    }

    /// [`Store::replace_as`] by an unnamed manager.
    #[cfg(test)]
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.replace_as(
            rt,
            namespace,
            name,
            body,
            part,
            dry_run,
            &Manager::unnamed(),
        )
    }

    /// PUT: replaces an object (or its status) as written by `who`.
    #[allow(clippy::too_many_arguments)]
    pub fn replace_as(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        part: Part,
        dry_run: bool,
        who: &Manager,
    ) -> Result<Value, ApiError> {
        let key = Store::key(rt, namespace, name);
        let existing = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let body = Store::normalize_body(rt, namespace, body)?;
        let object = Store::updated_object(rt, &existing, body, part)?;
        Ok(self.commit_update(rt, key, existing, object, part, dry_run, who))
    }

    /// PATCH in any flavour; server-side apply creates what does not exist yet. Ordinary
    /// patches are recorded under `options.field_manager`.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        part: Part,
        dry_run: bool,
        options: &ApplyOptions,
    ) -> Result<Value, ApiError> {
        let key = Store::key(rt, namespace, name);
        let who = match patch_type {
            PatchType::Apply => Manager::Apply {
                name: apply_manager(options)?,
                config: patch.clone(),
                force: options.force,
            },
            _ => options
                .field_manager
                .clone()
                .map_or_else(Manager::unnamed, Manager::Update),
        };
        let Some(existing) = self.objects.get(&key).cloned() else {
            if patch_type == PatchType::Apply && part == Part::Main {
                let mut body = patch.clone();
                if body.is_object() && body.get("metadata").is_none_or(Value::is_object) {
                    set_meta(&mut body, "name", json!(name));
                }
                return self.create_as(rt, namespace, body, dry_run, &who);
            }
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        let mut patched = existing.clone();
        match (patch_type, &who) {
            (PatchType::Merge, _) => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                json_patch::merge(&mut patched, patch);
            }
            (PatchType::Apply, Manager::Apply { name: manager, .. }) => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "an apply configuration must be an object",
                    ));
                }
                let appliers = managed::appliers(&existing);
                let previous = appliers
                    .iter()
                    .find(|(m, _)| m == manager)
                    .map(|(_, f)| f.clone())
                    .unwrap_or_default();
                let others: BTreeMap<String, FieldSet> =
                    appliers.into_iter().filter(|(m, _)| m != manager).collect();
                if !options.force {
                    let found =
                        apply::conflicts(&existing, patch, &apply::leaf_paths(patch), &others);
                    if !found.is_empty() {
                        return Err(ApiError::apply_conflict(&found));
                    }
                }
                let keep = managed::other_owners(&existing, manager);
                patched = apply::apply(&existing, patch, &previous, &keep);
            }
            (PatchType::StrategicMerge, _) => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "a strategic merge patch must be a JSON object",
                    ));
                }
                strategic_merge(&mut patched, patch);
            }
            (PatchType::Json, _) => {
                let ops: json_patch::Patch =
                    serde_json::from_value(patch.clone()).map_err(|e| {
                        ApiError::bad_request(format!(
                            "the JSON patch is not a list of operations: {e}"
                        ))
                    })?;
                json_patch::patch(&mut patched, &ops.0)
                    .map_err(|_| ApiError::patch_not_applicable())?;
            }
            (PatchType::Apply, Manager::Update(_)) => {
                return Err(ApiError::bad_request("an apply needs a field manager"));
            }
        }
        let patched = Store::normalize_body(rt, namespace, patched)?;
        let object = Store::updated_object(rt, &existing, patched, part)?;
        Ok(self.commit_update(rt, key, existing, object, part, dry_run, &who))
    }
}

/// The field manager an apply must name (the apiserver rejects apply without one).
fn apply_manager(options: &ApplyOptions) -> Result<String, ApiError> {
    options
        .field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &[(
                    "fieldManager".to_string(),
                    "Required value: is required for apply patch".to_string(),
                )],
            )
        })
}

/// Everything but metadata and status: a change here bumps metadata.generation.
fn spec_of(object: &Value) -> Map<String, Value> {
    object
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Defaults the apiserver (or a controller, immediately) fills in on create.
fn apply_create_defaults(rt: &ResourceType, object: &mut Value, name: &str) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => defaults::namespace_defaults(object, name),
        ("", "Secret") if object.get("type").is_none() => object["type"] = json!("Opaque"),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let accepted = object.pointer("/spec/names").cloned().unwrap_or(json!({}));
            object["status"] = json!({
                "acceptedNames": accepted,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}
                ],
                "storedVersions": object.pointer("/spec/versions").and_then(Value::as_array)
                    .map(|vs| vs.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                        .filter_map(|v| v.get("name").cloned()).collect::<Vec<_>>())
                    .unwrap_or_default(),
            });
        }
        _ => {}
    }
}
