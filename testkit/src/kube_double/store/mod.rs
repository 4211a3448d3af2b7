//! The object store behind the double: CRUD with apiserver semantics, one global
//! resourceVersion counter, and the watch event history.
//!
//! Everything here is synchronous and free of I/O; the HTTP layer (`server.rs`) is a thin
//! translation around it. Writes live in `write`, deletion and garbage collection in
//! `delete`, namespace lifecycle in `namespaces`, strategic merge in `strategic`.

mod delete;
mod namespaces;
mod strategic;
#[cfg(test)]
mod tests;
mod write;

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::defaults;
use super::kinds;
use super::managed::{self, Manager};
use super::resources::{self, ResourceType, split_api_version};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::time::now_rfc3339;

pub use strategic::strategic_merge;

/// How many watch events are kept for `watch?resourceVersion=N` replays; older → 410 Gone.
const HISTORY_LIMIT: usize = 10_000;

/// How long a deleted namespace stays `Terminating` by default (the namespace controller's
/// work on a real cluster takes about that long for an emptied namespace).
pub const DEFAULT_NAMESPACE_TERMINATION: Duration = Duration::from_secs(1);

/// The manager of fixtures: objects that were in the cluster before the test.
const FIXTURE_MANAGER: &str = "kube-double-fixture";

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

/// Who patches: the `fieldManager` (required for server-side apply; the manager an
/// ordinary patch is recorded under) and apply's `force`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    pub field_manager: Option<String>,
    pub force: bool,
}

pub struct Store {
    built_in: Vec<ResourceType>,
    objects: BTreeMap<ObjectKey, Value>,
    resource_version: u64,
    history: VecDeque<Arc<WatchEvent>>,
    /// Events at or below this resourceVersion are no longer in `history`.
    compacted_rv: u64,
    events: broadcast::Sender<Arc<WatchEvent>>,
    random: std::collections::hash_map::RandomState,
    counter: u64,
    /// Namespaces being deleted → when the namespace controller may remove them.
    terminating: BTreeMap<String, Instant>,
    termination_delay: Duration,
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
            resource_version: 0,
            history: VecDeque::new(),
            compacted_rv: 0,
            events,
            random: std::collections::hash_map::RandomState::new(),
            counter: 0,
            terminating: BTreeMap::new(),
            termination_delay: DEFAULT_NAMESPACE_TERMINATION,
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

    /// Stops serving a built-in resource, as a server of an older Kubernetes version would
    /// not serve it (discovery leaves it out, requests get 404). Stored objects of it stay.
    pub fn withdraw(&mut self, group: &str, version: &str, plural: &str) {
        self.built_in
            .retain(|r| !(r.group == group && r.version == version && r.plural == plural));
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

    /// The resource that stores objects of a group and kind (any served version).
    fn type_of(&self, group: &str, kind: &str) -> Option<ResourceType> {
        if let Some(r) = self
            .built_in
            .iter()
            .find(|r| r.group == group && r.kind == kind && !r.review_only)
        {
            return Some(r.clone());
        }
        self.crds().find_map(|crd| {
            ResourceType::crd_served_versions(crd)
                .iter()
                .filter_map(|v| ResourceType::from_crd(crd, v))
                .find(|r| r.group == group && r.kind == kind)
        })
    }

    /// Whether anything is served at group/version (the apiserver answers other group
    /// versions with a plain-text 404).
    pub fn group_served(&self, group: &str, version: &str) -> bool {
        self.resource_table()
            .iter()
            .any(|r| r.group == group && r.version == version)
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

    /// The 5 characters the apiserver appends to `generateName` (and to token volumes).
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
        let rt = self.type_of(&key.group, &key.kind);
        if object.pointer("/metadata/generation").is_none()
            && rt.as_ref().is_some_and(kinds::has_generation)
        {
            set_meta(&mut object, "generation", json!(1));
        }
        if object.pointer("/metadata/managedFields").is_none() {
            let api_version = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let who = Manager::Update(FIXTURE_MANAGER.to_string());
            managed::record(&mut object, None, &who, &api_version, false);
        }
        let new_namespace = key.kind == "Namespace" && key.group.is_empty() && previous.is_none();
        if key.kind == "Namespace" && key.group.is_empty() {
            defaults::namespace_defaults(&mut object, &key.name);
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

fn remove_meta(object: &mut Value, field: &str) {
    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove(field);
    }
}
