//! Where kinds differ in the apiserver's registry: which carry `metadata.generation`,
//! which answer an immediate DELETE with the object rather than a `Status`, and the status a
//! new object starts with (Go renders the non-omitempty fields of an empty status struct).

use serde_json::{Value, json};

use super::resources::ResourceType;

/// Kinds whose strategy sets `metadata.generation` (1 on create, +1 on spec changes).
/// Custom resources always have one.
pub fn has_generation(rt: &ResourceType) -> bool {
    rt.custom
        || matches!(
            (rt.group.as_str(), rt.kind.as_str()),
            ("", "Pod")
                | ("apps" | "batch" | "admissionregistration.k8s.io", _)
                | ("policy", "PodDisruptionBudget")
                | ("networking.k8s.io", "NetworkPolicy" | "Ingress")
                | ("apiextensions.k8s.io", "CustomResourceDefinition")
        )
}

/// Registries with `ReturnDeletedObject`: an immediate DELETE answers with the object; every
/// other kind answers with a `Status` naming it.
pub fn returns_deleted_object(rt: &ResourceType) -> bool {
    !rt.custom
        && matches!(
            (rt.group.as_str(), rt.kind.as_str()),
            ("", "Pod" | "ServiceAccount" | "Service" | "Namespace")
                | ("storage.k8s.io", "StorageClass")
        )
}

/// The `Status` an immediate DELETE of a kind without `ReturnDeletedObject` answers with.
pub fn deleted_status(rt: &ResourceType, object: &Value) -> Value {
    let meta = |f: &str| object.pointer(&format!("/metadata/{f}")).cloned();
    let mut details = json!({"kind": rt.plural});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    if let Some(name) = meta("name") {
        details["name"] = name;
    }
    if let Some(uid) = meta("uid") {
        details["uid"] = uid;
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// The status a new built-in object is stored with (`None`: the kind has none, or it is
/// filled elsewhere: Namespaces, Pods, CRDs).
pub fn initial_status(rt: &ResourceType) -> Option<Value> {
    if rt.custom || !rt.has_status {
        return None;
    }
    let status = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Service") | ("networking.k8s.io", "Ingress") => json!({"loadBalancer": {}}),
        ("", "PersistentVolumeClaim" | "PersistentVolume") => json!({"phase": "Pending"}),
        ("apps", "StatefulSet") => json!({"replicas": 0, "availableReplicas": 0}),
        ("apps", "ReplicaSet") => json!({"replicas": 0}),
        ("apps", "DaemonSet") => json!({
            "currentNumberScheduled": 0, "numberMisscheduled": 0,
            "desiredNumberScheduled": 0, "numberReady": 0,
        }),
        ("policy", "PodDisruptionBudget") => json!({
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0,
        }),
        ("", "Namespace" | "Pod" | "Node") | ("apiextensions.k8s.io", _) => return None,
        _ => json!({}),
    };
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_double::resources::built_in;

    fn rt(kind: &str) -> ResourceType {
        built_in().into_iter().find(|r| r.kind == kind).unwrap()
    }

    #[test]
    fn kinds_follow_the_recorded_apiserver() {
        assert!(has_generation(&rt("Deployment")) && has_generation(&rt("Pod")));
        assert!(!has_generation(&rt("ConfigMap")) && !has_generation(&rt("Namespace")));
        assert!(returns_deleted_object(&rt("StorageClass")));
        assert!(!returns_deleted_object(&rt("ConfigMap")));
        assert_eq!(initial_status(&rt("Deployment")), Some(json!({})));
        assert_eq!(initial_status(&rt("ConfigMap")), None);
        let status = deleted_status(
            &rt("ConfigMap"),
            &json!({"metadata": {"name": "a", "uid": "u"}}),
        );
        assert_eq!(
            status["details"],
            json!({"kind": "configmaps", "name": "a", "uid": "u"})
        );
    }
}
