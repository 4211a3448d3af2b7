//! Namespace lifecycle: the `default` ServiceAccount a new namespace gets, the
//! NamespaceLifecycle admission of creates into a namespace, and deletion as the namespace
//! controller does it.
//!
//! Deleting a namespace marks it `Terminating` (deletionTimestamp, status.phase) and
//! removes its contents at once; the namespace itself stays until the termination delay
//! has passed and nothing is left in it (objects held by finalizers keep it), then the
//! controller tick ([`Store::run_namespace_controller`]) removes it. Meanwhile creates into
//! it get the apiserver's 403 with cause `NamespaceTerminating`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::delete::Deleted;
use super::{EventType, ObjectKey, Store, meta_str, set_meta};
use crate::kube_double::defaults;
use crate::kube_double::managed::{self, Manager};
use crate::kube_double::resources::ResourceType;
use crate::kube_double::status::ApiError;
use crate::kube_double::time::now_rfc3339;

/// Namespaces the apiserver refuses to delete.
const IMMORTAL: &[&str] = &["default", "kube-system", "kube-public"];

/// The manager that creates each namespace's `default` ServiceAccount.
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

impl Store {
    /// How long a deleted namespace stays `Terminating` before the controller removes it.
    pub fn set_namespace_termination_delay(&mut self, delay: Duration) {
        self.termination_delay = delay;
    }

    /// NamespaceLifecycle for a create of `rt` named `name` (empty for generateName) into
    /// `namespace`: 404 when it does not exist, 403 while it terminates.
    pub(super) fn admit_into_namespace(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let key = namespace_key(namespace);
        match self.objects.get(&key) {
            None => Err(ApiError::not_found("", "namespaces", namespace)),
            Some(ns) if is_terminating(ns) => Err(ApiError::namespace_terminating(
                &rt.group, &rt.plural, name, namespace,
            )),
            Some(_) => Ok(()),
        }
    }

    /// DELETE of a namespace: it turns `Terminating` and its contents go; the controller
    /// tick removes the namespace itself later.
    pub(super) fn terminate_namespace(
        &mut self,
        key: ObjectKey,
        existing: Value,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let name = key.name.clone();
        if IMMORTAL.contains(&name.as_str()) {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                &name,
                "this namespace may not be deleted",
            ));
        }
        if is_terminating(&existing) {
            return Ok(Deleted {
                object: existing,
                pending: true,
            });
        }
        let mut object = existing.clone();
        set_meta(&mut object, "deletionTimestamp", json!(now_rfc3339()));
        defaults::set_at(&mut object, &["status", "phase"], json!("Terminating"));
        if dry_run {
            return Ok(Deleted {
                object,
                pending: true,
            });
        }
        let terminating = self.commit(key, object, EventType::Modified, Some(existing));
        self.delete_contents(&name);
        self.terminating
            .insert(name, Instant::now() + self.termination_delay);
        Ok(Deleted {
            object: terminating,
            pending: true,
        })
    }

    /// The namespace controller's content deletion: every object in `namespace`, as a
    /// DELETE would (finalizers hold objects back).
    fn delete_contents(&mut self, namespace: &str) {
        let inside: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect();
        for key in inside {
            match self.type_of(&key.group, &key.kind) {
                Some(rt) => {
                    // Gone already (taken by an owner before its turn): nothing to do.
                    let _ =
                        self.delete_object(&rt, Some(namespace), &key.name, &Value::Null, false);
                }
                None => {
                    if let Some(v) = self.objects.get(&key).cloned() {
                        self.commit(key, v.clone(), EventType::Deleted, Some(v));
                    }
                }
            }
        }
    }

    /// The namespace controller: removes terminating namespaces whose delay has passed at
    /// `now` and that hold nothing any more.
    pub fn run_namespace_controller(&mut self, now: Instant) {
        let due: Vec<String> = self
            .terminating
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            if self.objects.keys().any(|k| k.namespace == name) {
                continue;
            }
            self.terminating.remove(&name);
            let key = namespace_key(&name);
            if let Some(ns) = self.objects.get(&key).cloned() {
                let mut last = ns.clone();
                defaults::set_at(&mut last, &["spec", "finalizers"], json!([]));
                self.commit(key, last, EventType::Deleted, Some(ns));
            }
        }
    }

    /// The serviceaccount controller gives every new namespace a `default` SA.
    pub(super) fn add_default_service_account(&mut self, namespace: &str) {
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
            "metadata": {"name": "default", "namespace": namespace}
        });
        let uid = self.new_uid();
        set_meta(&mut sa, "uid", json!(uid));
        set_meta(&mut sa, "creationTimestamp", json!(now_rfc3339()));
        let who = Manager::Update(CONTROLLER_MANAGER.to_string());
        managed::record(&mut sa, None, &who, "v1", false);
        self.commit(key, sa, EventType::Added, None);
    }
}

fn namespace_key(name: &str) -> ObjectKey {
    ObjectKey {
        group: String::new(),
        kind: "Namespace".to_string(),
        namespace: String::new(),
        name: name.to_string(),
    }
}

fn is_terminating(namespace: &Value) -> bool {
    meta_str(namespace, "deletionTimestamp").is_some()
        || namespace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
}
