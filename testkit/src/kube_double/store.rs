//! The object store behind the double: CRUD with apiserver semantics, one global
//! resourceVersion counter, and the watch event history.
//!
//! Everything here is synchronous and free of I/O; the HTTP layer (`server.rs`) is a thin
//! translation around it.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::apply::{self, FieldSet};
use super::defaults;
use super::resources::{self, ResourceType, split_api_version};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::validation::{validate_metadata, validate_object, validate_update};

/// How many watch events are kept for `watch?resourceVersion=N` replays; older → 410 Gone.
const HISTORY_LIMIT: usize = 10_000;

/// Where one object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    /// "" for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub resource_version: u64,
    pub event_type: EventType,
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub object: Value,
    /// The object before a MODIFIED change (selector watches turn it into ADDED/DELETED).
    pub previous: Option<Value>,
}

/// The patch flavours the apiserver accepts, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    StrategicMerge,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        match mime {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// What a watch starts with: replayed or initial events, the live feed, and the
/// resourceVersion already covered.
pub struct WatchStart {
    pub initial: Vec<WatchEvent>,
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
    pub covered_rv: u64,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

/// Who applies (server-side apply's `fieldManager`) and whether to take fields over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    pub field_manager: Option<String>,
    pub force: bool,
}

pub struct Store {
    built_in: Vec<ResourceType>,
    objects: BTreeMap<ObjectKey, Value>,
    /// Server-side apply ownership: per object, per field manager, the fields it applied.
    applied_fields: std::collections::HashMap<ObjectKey, BTreeMap<String, FieldSet>>,
    resource_version: u64,
    history: VecDeque<Arc<WatchEvent>>,
    /// Events at or below this resourceVersion are no longer in `history`.
    compacted_rv: u64,
    events: broadcast::Sender<Arc<WatchEvent>>,
    random: std::collections::hash_map::RandomState,
    counter: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty store with the namespaces and RBAC a fresh cluster has.
    pub fn new() -> Store {
        let (events, _) = broadcast::channel(4096);
        let mut store = Store {
            built_in: resources::built_in(),
            objects: BTreeMap::new(),
            applied_fields: std::collections::HashMap::new(),
            resource_version: 0,
            history: VecDeque::new(),
            compacted_rv: 0,
            events,
            random: std::collections::hash_map::RandomState::new(),
            counter: 0,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store.insert_fixture(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            );
        }
        store.insert_fixture(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]}
            ]
        }));
        store.insert_fixture(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]
        }));
        store
    }

    pub fn current_rv(&self) -> u64 {
        self.resource_version
    }

    /// Built-in resources plus every resource a stored CRD serves.
    pub fn resource_table(&self) -> Vec<ResourceType> {
        let mut table = self.built_in.clone();
        for crd in self.crds() {
            for version in ResourceType::crd_served_versions(crd) {
                if let Some(r) = ResourceType::from_crd(crd, &version) {
                    table.push(r);
                }
            }
        }
        table
    }

    fn crds(&self) -> impl Iterator<Item = &Value> {
        self.kind_range("apiextensions.k8s.io", "CustomResourceDefinition")
            .map(|(_, v)| v)
    }

    /// Every stored object of one group and kind, in (namespace, name) order.
    fn kind_range<'a>(
        &'a self,
        group: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        let start = ObjectKey {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: String::new(),
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.group == group && k.kind == kind)
    }

    /// The resource served at group/version/plural.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        if let Some(r) = self
            .built_in
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
        {
            return Some(r.clone());
        }
        self.crds().find_map(|crd| {
            ResourceType::from_crd(crd, version).filter(|r| r.group == group && r.plural == plural)
        })
    }

    fn key(rt: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: rt.group.clone(),
            kind: rt.kind.clone(),
            namespace: if rt.namespaced {
                namespace.unwrap_or("").to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    fn key_of(object: &Value) -> Option<ObjectKey> {
        let (group, _) = split_api_version(object.get("apiVersion")?.as_str()?);
        Some(ObjectKey {
            group: group.to_string(),
            kind: object.get("kind")?.as_str()?.to_string(),
            namespace: meta_str(object, "namespace").unwrap_or("").to_string(),
            name: meta_str(object, "name")?.to_string(),
        })
    }

    pub fn get_by_key(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// All stored objects of a group and kind.
    pub fn objects_of(&self, group: &str, kind: &str) -> Vec<Value> {
        self.kind_range(group, kind)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects.contains_key(&ObjectKey {
            group: String::new(),
            kind: "Namespace".to_string(),
            namespace: String::new(),
            name: namespace.to_string(),
        })
    }

    fn random_u64(&mut self) -> u64 {
        self.counter += 1;
        let mut hasher = self.random.build_hasher();
        hasher.write_u64(self.counter);
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hasher.finish()
    }

    fn new_uid(&mut self) -> String {
        let a = self.random_u64();
        let b = self.random_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// The 5 characters the apiserver appends to `generateName`.
    fn name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut n = self.random_u64();
        (0..5)
            .map(|_| {
                let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                n /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    /// Stores `object` under a new resourceVersion and tells watchers.
    fn commit(
        &mut self,
        key: ObjectKey,
        mut object: Value,
        event_type: EventType,
        previous: Option<Value>,
    ) -> Value {
        self.resource_version += 1;
        let rv = self.resource_version;
        set_meta(&mut object, "resourceVersion", json!(rv.to_string()));
        match event_type {
            EventType::Deleted => {
                self.objects.remove(&key);
                self.applied_fields.remove(&key);
            }
            _ => {
                self.objects.insert(key.clone(), object.clone());
            }
        }
        let event = Arc::new(WatchEvent {
            resource_version: rv,
            event_type,
            group: key.group,
            kind: key.kind,
            namespace: key.namespace,
            object: object.clone(),
            previous,
        });
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY_LIMIT {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.resource_version;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
        object
    }

    /// Forgets the watch history, as etcd compaction does: watches from an older
    /// resourceVersion then get 410 Gone and must re-list.
    pub fn compact_history(&mut self) {
        self.history.clear();
        self.compacted_rv = self.resource_version;
    }

    /// The apiserver's built-in ServiceAccount admission (it runs before webhooks): a Pod
    /// without `serviceAccountName` runs as `default`, and the SA must exist. (The projected
    /// API token volume it also adds is not modelled.)
    fn admit_pod_service_account(
        &self,
        pod: &mut Value,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let asked = pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|sa| !sa.is_empty())
            .or_else(|| {
                pod.pointer("/spec/serviceAccount")
                    .and_then(Value::as_str)
                    .filter(|sa| !sa.is_empty())
            })
            .unwrap_or("default")
            .to_string();
        let key = ObjectKey {
            group: String::new(),
            kind: "ServiceAccount".to_string(),
            namespace: namespace.to_string(),
            name: asked.clone(),
        };
        if !self.objects.contains_key(&key) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "pods \"{name}\" is forbidden: error looking up service account {namespace}/{asked}: serviceaccount \"{asked}\" not found"
                ),
            ));
        }
        if pod.get("spec").is_some_and(Value::is_object) {
            pod["spec"]["serviceAccountName"] = json!(asked);
            pod["spec"]["serviceAccount"] = json!(asked);
        }
        Ok(())
    }

    /// The serviceaccount controller gives every new namespace a `default` SA.
    fn add_default_service_account(&mut self, namespace: &str) {
        let key = ObjectKey {
            group: String::new(),
            kind: "ServiceAccount".to_string(),
            namespace: namespace.to_string(),
            name: "default".to_string(),
        };
        if self.objects.contains_key(&key) {
            return;
        }
        let mut sa = json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace, "generation": 1}
        });
        let uid = self.new_uid();
        set_meta(&mut sa, "uid", json!(uid));
        set_meta(&mut sa, "creationTimestamp", json!(now_rfc3339()));
        self.commit(key, sa, EventType::Added, None);
    }

    /// Inserts or overwrites an object directly (test fixtures): server fields are filled
    /// in when missing, watchers are told, nothing is validated.
    pub fn insert_fixture(&mut self, mut object: Value) -> Option<Value> {
        let key = Store::key_of(&object)?;
        if !object["metadata"].is_object() {
            return None;
        }
        let previous = self.objects.get(&key).cloned();
        // Cluster state as a real cluster would hold it: with the server's defaults.
        defaults::apply(&key.group, &key.kind, &mut object);
        if meta_str(&object, "uid").is_none() {
            let uid = previous
                .as_ref()
                .and_then(|p| meta_str(p, "uid").map(str::to_string))
                .unwrap_or_else(|| self.new_uid());
            set_meta(&mut object, "uid", json!(uid));
        }
        if meta_str(&object, "creationTimestamp").is_none() {
            set_meta(&mut object, "creationTimestamp", json!(now_rfc3339()));
        }
        if object.pointer("/metadata/generation").is_none() {
            set_meta(&mut object, "generation", json!(1));
        }
        let new_namespace = key.kind == "Namespace" && key.group.is_empty() && previous.is_none();
        if key.kind == "Namespace" && key.group.is_empty() {
            default_namespace(&mut object, &key.name);
        }
        let event_type = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let name = key.name.clone();
        let stored = self.commit(key, object, event_type, previous);
        if new_namespace {
            self.add_default_service_account(&name);
        }
        Some(stored)
    }

    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects
            .get(&Store::key(rt, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Objects of `rt` (in `namespace`, or everywhere when None) that match both selectors.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.kind_range(&rt.group, &rt.kind)
            .filter(|(k, _)| namespace.is_none_or(|ns| !rt.namespaced || k.namespace == ns))
            .filter(|(_, v)| labels.matches(v) && fields.matches(v))
            .map(|(_, v)| with_type(v.clone(), rt))
            .collect()
    }

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

    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        body: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut object = Store::normalize_body(rt, namespace, body)?;
        defaults::apply(&rt.group, &rt.kind, &mut object);
        if meta_str(&object, "name").unwrap_or("").is_empty() {
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
        if rt.namespaced {
            let ns = namespace.unwrap_or("");
            if !self.namespace_exists(ns) {
                return Err(ApiError::not_found("", "namespaces", ns));
            }
        }
        let key = Store::key(rt, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        let uid = self.new_uid();
        if let Some(metadata) = object["metadata"].as_object_mut() {
            metadata.insert("uid".to_string(), json!(uid));
            metadata.insert("creationTimestamp".to_string(), json!(now_rfc3339()));
            metadata.insert("generation".to_string(), json!(1));
            for server_field in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
            ] {
                metadata.remove(server_field);
            }
        }
        if rt.has_status
            && let Some(map) = object.as_object_mut()
        {
            // Status is the controllers' to write: the apiserver drops it on create.
            map.remove("status");
        }
        apply_create_defaults(rt, &mut object, &name);
        if rt.group.is_empty() && rt.kind == "Pod" {
            self.admit_pod_service_account(&mut object, namespace.unwrap_or(""), &name)?;
        }
        if dry_run {
            return Ok(object);
        }
        let created = self.commit(key, object, EventType::Added, None);
        if rt.group.is_empty() && rt.kind == "Namespace" {
            self.add_default_service_account(&name);
        }
        Ok(created)
    }

    /// The object a write of `new` over `existing` stores, or an error; `None` when the
    /// write changes nothing (the apiserver then keeps the resourceVersion and sends no event).
    fn updated_object(
        rt: &ResourceType,
        existing: &Value,
        new: Value,
        part: Part,
    ) -> Result<Option<Value>, ApiError> {
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
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(existing, "uid").unwrap_or("")
                ),
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
        for preserved in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "deletionTimestamp",
            "generation",
        ] {
            match existing.pointer(&format!("/metadata/{preserved}")) {
                Some(v) => set_meta(&mut object, preserved, v.clone()),
                None => {
                    if let Some(m) = object["metadata"].as_object_mut() {
                        m.remove(preserved);
                    }
                }
            }
        }
        if object == *existing {
            return Ok(None);
        }
        if spec_of(&object) != spec_of(existing) {
            let generation = existing
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut object, "generation", json!(generation + 1));
        }
        Ok(Some(object))
    }

    /// Stores an update, or finishes a pending deletion when the last finalizer went.
    fn commit_update(
        &mut self,
        key: ObjectKey,
        existing: Value,
        object: Value,
        dry_run: bool,
    ) -> Value {
        let finalizers_done = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let deleting = meta_str(&object, "deletionTimestamp").is_some();
        if dry_run {
            return object;
        }
        if deleting && finalizers_done {
            let uid = meta_str(&existing, "uid").unwrap_or("").to_string();
            let deleted = self.commit(key, object, EventType::Deleted, Some(existing));
            self.collect_garbage(&uid, false);
            return deleted;
        }
        self.commit(key, object, EventType::Modified, Some(existing))
    }

    pub fn replace(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = Store::key(rt, namespace, name);
        let existing = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let body = Store::normalize_body(rt, namespace, body)?;
        match Store::updated_object(rt, &existing, body, part)? {
            None => Ok(with_type(existing, rt)),
            Some(object) => Ok(self.commit_update(key, existing, object, dry_run)),
        }
    }

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
        apply_options: &ApplyOptions,
    ) -> Result<Value, ApiError> {
        let key = Store::key(rt, namespace, name);
        let manager = match patch_type {
            PatchType::Apply => Some(apply_manager(apply_options)?),
            _ => None,
        };
        let Some(existing) = self.objects.get(&key).cloned() else {
            if patch_type == PatchType::Apply && part == Part::Main {
                // Server-side apply creates what does not exist yet.
                let mut body = patch.clone();
                if body.is_object() && body.get("metadata").is_none_or(Value::is_object) {
                    set_meta(&mut body, "name", json!(name));
                }
                let created = self.create(rt, namespace, body, dry_run)?;
                if !dry_run {
                    self.record_apply(&key, apply_options, patch);
                }
                return Ok(created);
            }
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        let mut patched = existing.clone();
        match patch_type {
            PatchType::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                json_patch::merge(&mut patched, patch);
            }
            PatchType::Apply => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "an apply configuration must be an object",
                    ));
                }
                let manager = manager.unwrap_or_default();
                let owners = self.applied_fields.get(&key).cloned().unwrap_or_default();
                let previous = owners.get(&manager).cloned().unwrap_or_default();
                let others: BTreeMap<String, FieldSet> =
                    owners.into_iter().filter(|(m, _)| *m != manager).collect();
                if !apply_options.force {
                    let found =
                        apply::conflicts(&existing, patch, &apply::leaf_paths(patch), &others);
                    if !found.is_empty() {
                        return Err(ApiError::new(
                            409,
                            "Conflict",
                            format!(
                                "Apply failed with {} conflict{}: {}",
                                found.len(),
                                if found.len() == 1 { "" } else { "s" },
                                found.join(", ")
                            ),
                        ));
                    }
                }
                patched = apply::apply(&existing, patch, &previous, &others);
            }
            PatchType::StrategicMerge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "a strategic merge patch must be a JSON object",
                    ));
                }
                strategic_merge(&mut patched, patch);
            }
            PatchType::Json => {
                let ops: json_patch::Patch =
                    serde_json::from_value(patch.clone()).map_err(|e| {
                        ApiError::bad_request(format!(
                            "the JSON patch is not a list of operations: {e}"
                        ))
                    })?;
                json_patch::patch(&mut patched, &ops.0).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the JSON patch could not be applied: {e}"),
                    )
                })?;
            }
        }
        let patched = Store::normalize_body(rt, namespace, patched)?;
        let out = match Store::updated_object(rt, &existing, patched, part)? {
            None => with_type(existing, rt),
            Some(object) => self.commit_update(key.clone(), existing, object, dry_run),
        };
        if patch_type == PatchType::Apply && !dry_run {
            self.record_apply(&key, apply_options, patch);
        }
        Ok(out)
    }

    /// Records that `options.field_manager` now owns the fields of `applied` (taking them
    /// from other managers when forced). The admission path calls this after its own write.
    pub fn record_apply(&mut self, key: &ObjectKey, options: &ApplyOptions, applied: &Value) {
        let Some(manager) = options.field_manager.clone().filter(|m| !m.is_empty()) else {
            return;
        };
        if !self.objects.contains_key(key) {
            return;
        }
        let paths = apply::leaf_paths(applied);
        let owners = self.applied_fields.entry(key.clone()).or_default();
        if options.force {
            for (_, owned) in owners.iter_mut().filter(|(m, _)| **m != manager) {
                owned.retain(|p| !paths.contains(p));
            }
        }
        owners.insert(manager, paths);
    }

    /// Where an object of `rt` named `name` is stored.
    pub fn key_for(rt: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectKey {
        Store::key(rt, namespace, name)
    }

    /// Deletes one object (namespaces take their contents with them); objects with
    /// finalizers only get a deletionTimestamp until an update removes the last one.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = Store::key(rt, namespace, name);
        let existing = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if let Some(uid) = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            && Some(uid) != meta_str(&existing, "uid")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&existing, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(rv) = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            && Some(rv) != meta_str(&existing, "resourceVersion")
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let is_namespace = rt.group.is_empty() && rt.kind == "Namespace";
        let is_crd = rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition";
        let has_finalizers = existing
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let mut object = existing.clone();
        if meta_str(&object, "deletionTimestamp").is_none() {
            set_meta(&mut object, "deletionTimestamp", json!(now_rfc3339()));
        }
        if has_finalizers && !is_namespace {
            if dry_run || meta_str(&existing, "deletionTimestamp").is_some() {
                return Ok(with_type(object, rt));
            }
            return Ok(self.commit(key, object, EventType::Modified, Some(existing)));
        }
        if is_namespace {
            // The namespace controller empties a terminating namespace; here at once.
            object["status"]["phase"] = json!("Terminating");
        }
        if dry_run {
            return Ok(with_type(object, rt));
        }
        if is_namespace {
            let inside: Vec<(ObjectKey, Value)> = self
                .objects
                .iter()
                .filter(|(k, _)| k.namespace == name)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in inside {
                self.commit(k, v.clone(), EventType::Deleted, Some(v));
            }
        }
        if is_crd {
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
        let deleted = self.commit(key, object, EventType::Deleted, Some(existing));
        self.collect_garbage(&uid, orphans_dependents(options));
        Ok(with_type(deleted, rt))
    }

    /// What the garbage collector does when an owner goes: dependents (objects whose
    /// ownerReferences name `owner_uid`) are deleted, recursively, or with `orphan` lose
    /// that reference. The collector runs in the background on a real cluster; here at once.
    fn collect_garbage(&mut self, owner_uid: &str, orphan: bool) {
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
            } else {
                let uid = meta_str(&dependent, "uid").unwrap_or("").to_string();
                self.commit(key, dependent.clone(), EventType::Deleted, Some(dependent));
                self.collect_garbage(&uid, false);
            }
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
            deleted.push(self.delete(rt, ns, &name, &Value::Null, dry_run)?);
        }
        Ok(deleted)
    }

    /// Starts a watch: events after `since` (replayed from history; 410 when compacted
    /// away), or synthetic ADDED events for what exists now when `since` is None.
    pub fn watch_start(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        since: Option<u64>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Result<WatchStart, ApiError> {
        let live = self.events.subscribe();
        let initial = match since {
            None => self
                .list(rt, namespace, labels, fields)
                .into_iter()
                .map(|object| WatchEvent {
                    resource_version: self.resource_version,
                    event_type: EventType::Added,
                    group: rt.group.clone(),
                    kind: rt.kind.clone(),
                    namespace: meta_str(&object, "namespace").unwrap_or("").to_string(),
                    object,
                    previous: None,
                })
                .collect(),
            Some(rv) => {
                if rv < self.compacted_rv {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        self.compacted_rv + 1
                    )));
                }
                self.history
                    .iter()
                    .filter(|e| e.resource_version > rv)
                    .filter_map(|e| filter_event(e, rt, namespace, labels, fields))
                    .collect()
            }
        };
        Ok(WatchStart {
            initial,
            live,
            covered_rv: self.resource_version,
        })
    }
}

/// DeleteOptions asking to keep dependents: `propagationPolicy: Orphan` (or the
/// deprecated `orphanDependents: true`).
fn orphans_dependents(options: &Value) -> bool {
    options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
        || options.get("orphanDependents").and_then(Value::as_bool) == Some(true)
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

/// What a watcher of `rt` in `namespace` with these selectors sees of `event`, if anything:
/// label changes turn MODIFIED into ADDED or DELETED, like the apiserver's watch cache.
pub fn filter_event(
    event: &WatchEvent,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Option<WatchEvent> {
    if event.group != rt.group || event.kind != rt.kind {
        return None;
    }
    if let Some(ns) = namespace
        && rt.namespaced
        && event.namespace != ns
    {
        return None;
    }
    let matches = |o: &Value| labels.matches(o) && fields.matches(o);
    let now = matches(&event.object);
    let event_type = match (event.event_type, &event.previous) {
        (EventType::Modified, Some(previous)) => match (matches(previous), now) {
            (true, true) => EventType::Modified,
            (false, true) => EventType::Added,
            (true, false) => EventType::Deleted,
            (false, false) => return None,
        },
        (EventType::Deleted, Some(previous)) if !now && !matches(previous) => return None,
        (EventType::Deleted, _) => EventType::Deleted,
        (t, _) if now => t,
        _ => return None,
    };
    let mut out = event.clone();
    out.event_type = event_type;
    out.object = with_type(out.object, rt);
    Some(out)
}

/// Sets kind/apiVersion to what the request addressed (objects are stored per group).
fn with_type(mut object: Value, rt: &ResourceType) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".to_string(), json!(rt.api_version()));
        map.insert("kind".to_string(), json!(rt.kind));
    }
    object
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

fn set_meta(object: &mut Value, field: &str, value: Value) {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if let Some(m) = object["metadata"].as_object_mut() {
        m.insert(field.to_string(), value);
    }
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

fn default_namespace(object: &mut Value, name: &str) {
    object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    if object.pointer("/spec/finalizers").is_none() {
        object["spec"]["finalizers"] = json!(["kubernetes"]);
    }
    if object.pointer("/status/phase").is_none() {
        object["status"]["phase"] = json!("Active");
    }
}

/// Defaults the apiserver (or a controller, immediately) fills in on create.
fn apply_create_defaults(rt: &ResourceType, object: &mut Value, name: &str) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => default_namespace(object, name),
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

/// Now as RFC 3339 UTC with second precision, like metadata.creationTimestamp.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Seconds since the epoch → `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(store: &Store, group: &str, plural: &str) -> ResourceType {
        store.resolve(group, "v1", plural).unwrap()
    }

    /// A workload (Deployment/ReplicaSet) or Pod body the apiserver accepts.
    fn valid(name: &str, kind: &str) -> Value {
        let pod_spec = json!({"containers": [{"name": "c", "image": "busybox:1.36"}]});
        match kind {
            "Pod" => json!({"metadata": {"name": name}, "spec": pod_spec}),
            _ => json!({"metadata": {"name": name}, "spec": {"replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}}),
        }
    }

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn create_sets_server_fields_and_rejects_duplicates() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        let created = s.create(&cms, Some("default"), cm("a"), false).unwrap();
        assert_eq!(created["metadata"]["generation"], 1);
        assert!(meta_str(&created, "uid").is_some());
        assert_eq!(
            meta_str(&created, "resourceVersion"),
            Some(s.current_rv().to_string().as_str())
        );
        let err = s.create(&cms, Some("default"), cm("a"), false).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
        let err = s.create(&cms, Some("nope"), cm("b"), false).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (404, "namespaces \"nope\" not found")
        );
    }

    #[test]
    fn dry_run_stores_nothing_and_consumes_no_resource_version() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        let before = s.current_rv();
        let out = s.create(&cms, Some("default"), cm("a"), true).unwrap();
        assert_eq!(meta_str(&out, "name"), Some("a"));
        assert_eq!(s.current_rv(), before);
        assert!(s.get(&cms, Some("default"), "a").is_err());
    }

    #[test]
    fn stale_put_conflicts_and_unconditional_put_wins() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        let created = s.create(&cms, Some("default"), cm("a"), false).unwrap();
        let mut first = created.clone();
        first["data"]["a"] = json!("2");
        s.replace(&cms, Some("default"), "a", first, Part::Main, false)
            .unwrap();
        let mut stale = created.clone();
        stale["data"]["a"] = json!("3");
        let err = s
            .replace(&cms, Some("default"), "a", stale.clone(), Part::Main, false)
            .unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
        stale["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let out = s
            .replace(&cms, Some("default"), "a", stale, Part::Main, false)
            .unwrap();
        assert_eq!(out["data"]["a"], "3");
        assert_eq!(out["metadata"]["generation"], 3);
    }

    #[test]
    fn noop_update_keeps_resource_version() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        let created = s.create(&cms, Some("default"), cm("a"), false).unwrap();
        let rv = s.current_rv();
        let out = s
            .replace(&cms, Some("default"), "a", created, Part::Main, false)
            .unwrap();
        assert_eq!(s.current_rv(), rv);
        assert_eq!(
            meta_str(&out, "resourceVersion"),
            Some(rv.to_string().as_str())
        );
    }

    #[test]
    fn namespace_delete_takes_contents() {
        let mut s = Store::new();
        let nss = rt(&s, "", "namespaces");
        let cms = rt(&s, "", "configmaps");
        s.create(&nss, None, json!({"metadata": {"name": "team"}}), false)
            .unwrap();
        assert!(
            s.get(&rt(&s, "", "serviceaccounts"), Some("team"), "default")
                .is_ok()
        );
        s.create(&cms, Some("team"), cm("a"), false).unwrap();
        let deleted = s.delete(&nss, None, "team", &Value::Null, false).unwrap();
        assert_eq!(deleted["status"]["phase"], "Terminating");
        assert!(s.get(&cms, Some("team"), "a").is_err());
        assert!(s.get(&nss, None, "team").is_err());
    }

    #[test]
    fn finalizers_hold_deletion_until_removed() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        let mut body = cm("a");
        body["metadata"]["finalizers"] = json!(["example.com/keep"]);
        s.create(&cms, Some("default"), body, false).unwrap();
        let held = s
            .delete(&cms, Some("default"), "a", &Value::Null, false)
            .unwrap();
        assert!(meta_str(&held, "deletionTimestamp").is_some());
        assert!(s.get(&cms, Some("default"), "a").is_ok());
        s.patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Merge,
            &json!({"metadata": {"finalizers": null}}),
            Part::Main,
            false,
            &ApplyOptions {
                field_manager: Some("test".into()),
                force: false,
            },
        )
        .unwrap();
        assert!(s.get(&cms, Some("default"), "a").is_err());
    }

    #[test]
    fn owners_take_dependents_with_them_unless_orphaned() {
        let mut s = Store::new();
        let deps = rt(&s, "apps", "deployments");
        let rss = rt(&s, "apps", "replicasets");
        let pods = rt(&s, "", "pods");
        let owned_by = |name: &str, uid: &str, kind: &str, own_kind: &str| {
            let mut body = valid(name, own_kind);
            body["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "apps/v1", "kind": kind, "name": "x", "uid": uid}]);
            body
        };
        let d = s
            .create(&deps, Some("default"), valid("d", "Deployment"), false)
            .unwrap();
        let rs = s
            .create(
                &rss,
                Some("default"),
                owned_by(
                    "rs",
                    meta_str(&d, "uid").unwrap(),
                    "Deployment",
                    "ReplicaSet",
                ),
                false,
            )
            .unwrap();
        s.create(
            &pods,
            Some("default"),
            owned_by("p", meta_str(&rs, "uid").unwrap(), "ReplicaSet", "Pod"),
            false,
        )
        .unwrap();
        s.delete(&deps, Some("default"), "d", &Value::Null, false)
            .unwrap();
        assert!(s.get(&rss, Some("default"), "rs").is_err());
        assert!(
            s.get(&pods, Some("default"), "p").is_err(),
            "grandchildren too"
        );

        let d = s
            .create(&deps, Some("default"), valid("d2", "Deployment"), false)
            .unwrap();
        s.create(
            &rss,
            Some("default"),
            owned_by(
                "rs2",
                meta_str(&d, "uid").unwrap(),
                "Deployment",
                "ReplicaSet",
            ),
            false,
        )
        .unwrap();
        s.delete(
            &deps,
            Some("default"),
            "d2",
            &json!({"propagationPolicy": "Orphan"}),
            false,
        )
        .unwrap();
        let orphan = s.get(&rss, Some("default"), "rs2").unwrap();
        assert_eq!(orphan["metadata"]["ownerReferences"], json!([]));
    }

    #[test]
    fn pods_default_their_service_account_which_must_exist() {
        let mut s = Store::new();
        let pods = rt(&s, "", "pods");
        let pod = |sa: Option<&str>| {
            let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
            if let Some(sa) = sa {
                p["spec"]["serviceAccountName"] = json!(sa);
            }
            p
        };
        let out = s.create(&pods, Some("default"), pod(None), true).unwrap();
        assert_eq!(out["spec"]["serviceAccountName"], "default");
        let err = s
            .create(&pods, Some("default"), pod(Some("ml-user")), true)
            .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: error looking up service account default/ml-user: serviceaccount \"ml-user\" not found"
        );
    }

    #[test]
    fn role_binding_role_ref_cannot_change() {
        let mut s = Store::new();
        let rbs = rt_rbac(&s, "rolebindings");
        let body = |role: &str| json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}, "subjects": []});
        s.create(&rbs, Some("default"), body("view"), false)
            .unwrap();
        let err = s
            .replace(&rbs, Some("default"), "b", body("edit"), Part::Main, false)
            .unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert!(
            err.message.contains("cannot change roleRef"),
            "{}",
            err.message
        );
    }

    fn rt_rbac(store: &Store, plural: &str) -> ResourceType {
        store
            .resolve("rbac.authorization.k8s.io", "v1", plural)
            .unwrap()
    }

    #[test]
    fn status_is_a_subresource() {
        let mut s = Store::new();
        let deps = rt(&s, "apps", "deployments");
        let mut body = valid("d", "Deployment");
        body["status"] = json!({"readyReplicas": 5});
        let created = s.create(&deps, Some("default"), body, false).unwrap();
        assert!(created.get("status").is_none());
        let patch = json!({"status": {"readyReplicas": 1}, "spec": {"replicas": 2}});
        let out = s
            .patch(
                &deps,
                Some("default"),
                "d",
                PatchType::Merge,
                &patch,
                Part::Status,
                false,
                &ApplyOptions {
                    field_manager: Some("test".into()),
                    force: false,
                },
            )
            .unwrap();
        assert_eq!(out["status"]["readyReplicas"], 1);
        assert_eq!(out["spec"]["replicas"], 1);
        let out = s
            .patch(
                &deps,
                Some("default"),
                "d",
                PatchType::Merge,
                &patch,
                Part::Main,
                false,
                &ApplyOptions {
                    field_manager: Some("test".into()),
                    force: false,
                },
            )
            .unwrap();
        assert_eq!(out["status"]["readyReplicas"], 1);
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(out["metadata"]["generation"], 2);
    }

    #[test]
    fn patch_flavours() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        s.create(&cms, Some("default"), cm("a"), false).unwrap();
        let out = s
            .patch(
                &cms,
                Some("default"),
                "a",
                PatchType::Json,
                &json!([{"op": "add", "path": "/data/b", "value": "2"}]),
                Part::Main,
                false,
                &ApplyOptions {
                    field_manager: Some("test".into()),
                    force: false,
                },
            )
            .unwrap();
        assert_eq!(out["data"], json!({"a": "1", "b": "2"}));
        let err = s
            .patch(
                &cms,
                Some("default"),
                "a",
                PatchType::Json,
                &json!([{"op": "test", "path": "/data/a", "value": "9"}]),
                Part::Main,
                false,
                &ApplyOptions {
                    field_manager: Some("test".into()),
                    force: false,
                },
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
        let out = s
            .patch(&cms, Some("default"), "new", PatchType::Apply, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}, "data": {"x": "y"}}), Part::Main, false, &ApplyOptions { field_manager: Some("test".into()), force: false })
            .unwrap();
        assert_eq!(out["data"]["x"], "y");
        let err = s
            .patch(
                &cms,
                Some("default"),
                "a",
                PatchType::Merge,
                &json!({"metadata": {"resourceVersion": "1"}}),
                Part::Main,
                false,
                &ApplyOptions {
                    field_manager: Some("test".into()),
                    force: false,
                },
            )
            .unwrap_err();
        assert_eq!(err.code, 409);
    }

    #[test]
    fn apply_needs_a_manager_and_tracks_ownership() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        let none = ApplyOptions::default();
        let apply_cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": data});
        let err = s
            .patch(
                &cms,
                Some("default"),
                "a",
                PatchType::Apply,
                &apply_cm(json!({"x": "1"})),
                Part::Main,
                false,
                &none,
            )
            .unwrap_err();
        assert_eq!(err.code, 422);
        let me = ApplyOptions {
            field_manager: Some("me".into()),
            force: false,
        };
        let other = ApplyOptions {
            field_manager: Some("other".into()),
            force: false,
        };
        s.patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Apply,
            &apply_cm(json!({"x": "1", "y": "1"})),
            Part::Main,
            false,
            &me,
        )
        .unwrap();
        let err = s
            .patch(
                &cms,
                Some("default"),
                "a",
                PatchType::Apply,
                &apply_cm(json!({"x": "2"})),
                Part::Main,
                false,
                &other,
            )
            .unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (
                409,
                "Apply failed with 1 conflict: conflict with \"me\": .data.x"
            )
        );
        let forced = ApplyOptions {
            force: true,
            ..other
        };
        s.patch(
            &cms,
            Some("default"),
            "a",
            PatchType::Apply,
            &apply_cm(json!({"x": "2"})),
            Part::Main,
            false,
            &forced,
        )
        .unwrap();
        // "me" drops y (only it owned y) and x (now owned by "other", so it stays).
        let out = s
            .patch(
                &cms,
                Some("default"),
                "a",
                PatchType::Apply,
                &apply_cm(json!({})),
                Part::Main,
                false,
                &me,
            )
            .unwrap();
        assert_eq!(out["data"], json!({"x": "2"}));
    }

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

    #[test]
    fn invalid_names_and_kind_mismatch() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        let err = s
            .create(&cms, Some("default"), cm("Bad_Name"), false)
            .unwrap_err();
        assert_eq!(err.code, 422);
        let mut wrong = cm("a");
        wrong["kind"] = json!("Secret");
        assert_eq!(
            s.create(&cms, Some("default"), wrong, false)
                .unwrap_err()
                .code,
            400
        );
        let generated = s
            .create(
                &cms,
                Some("default"),
                json!({"metadata": {"generateName": "x-"}}),
                false,
            )
            .unwrap();
        let name = meta_str(&generated, "name").unwrap();
        assert!(name.starts_with("x-") && name.len() == 7, "{name}");
    }

    #[test]
    fn watch_history_and_compaction() {
        let mut s = Store::new();
        let cms = rt(&s, "", "configmaps");
        let start = s.current_rv();
        s.create(&cms, Some("default"), cm("a"), false).unwrap();
        s.delete(&cms, Some("default"), "a", &Value::Null, false)
            .unwrap();
        let all = LabelSelector::default();
        let none = FieldSelector::default();
        let w = s
            .watch_start(&cms, Some("default"), Some(start), &all, &none)
            .unwrap();
        let types: Vec<_> = w.initial.iter().map(|e| e.event_type).collect();
        assert_eq!(types, vec![EventType::Added, EventType::Deleted]);
        s.compact_history();
        let err = s
            .watch_start(&cms, Some("default"), Some(start), &all, &none)
            .err()
            .unwrap();
        assert_eq!(err.code, 410);
    }

    #[test]
    fn crds_serve_their_resources() {
        let mut s = Store::new();
        let crds = rt(&s, "apiextensions.k8s.io", "customresourcedefinitions");
        assert!(s.resolve("example.com", "v1", "widgets").is_none());
        s.create(
            &crds,
            None,
            json!({"metadata": {"name": "widgets.example.com"}, "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}}),
            false,
        )
        .unwrap();
        let widgets = s.resolve("example.com", "v1", "widgets").unwrap();
        s.create(
            &widgets,
            Some("default"),
            json!({"metadata": {"name": "w"}}),
            false,
        )
        .unwrap();
        s.delete(&crds, None, "widgets.example.com", &Value::Null, false)
            .unwrap();
        assert!(s.objects_of("example.com", "Widget").is_empty());
    }
}
