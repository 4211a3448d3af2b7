//! The built-in admission plugins a new Pod meets before any webhook sees it, and what pod
//! creation fills in:
//! - ServiceAccount: no `serviceAccountName` means `default`; the ServiceAccount must exist
//!   (403 otherwise); unless automounting is off, a `kube-api-access-<5 random>` projected
//!   volume and a read-only mount of it in every container and init container.
//! - DefaultTolerationSeconds: 300 s tolerations for not-ready and unreachable nodes.
//! - Priority: `priority` and `preemptionPolicy` from the PriorityClass (none: 0).
//! - Creation: `status.phase: Pending` and the QoS class.
//!
//! The projected volume is exactly what the recorded apiserver adds (its sources include
//! the `openshift-service-ca.crt` ConfigMap).

use serde_json::{Value, json};

use super::status::ApiError;

/// Where the ServiceAccount admission mounts the API token.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Built-in PriorityClasses every cluster has.
const SYSTEM_PRIORITIES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// The ServiceAccount a pod runs as: `serviceAccountName`, the deprecated
/// `serviceAccount`, or `default`.
pub fn service_account_of(pod: &Value) -> String {
    ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .find_map(|p| {
            pod.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_string()
}

/// Admits a new Pod. `service_account` is the stored ServiceAccount the pod asks for (None:
/// missing); `suffix` gives 5 random characters for the token volume's name.
pub fn admit(
    pod: &mut Value,
    namespace: &str,
    name: &str,
    service_account: Option<&Value>,
    suffix: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    let asked = service_account_of(pod);
    let Some(sa) = service_account else {
        return Err(ApiError::forbidden(
            "",
            "pods",
            name,
            &format!(
                "error looking up service account {namespace}/{asked}: serviceaccount \"{asked}\" not found"
            ),
        ));
    };
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return Ok(());
    };
    spec["serviceAccountName"] = json!(asked);
    spec["serviceAccount"] = json!(asked);
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        mount_token(spec, suffix);
    }
    add_default_tolerations(spec);
    set_priority(spec, name)?;
    Ok(())
}

/// The token volume and its mounts, as the ServiceAccount admission adds them: an existing
/// `kube-api-access-*` volume is reused, and containers that already mount something at the
/// token path are left alone.
fn mount_token(spec: &mut Value, suffix: impl FnOnce() -> String) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with("kube-api-access-"))
        .map(str::to_string);
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| format!("kube-api-access-{}", suffix()));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needs_volume = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter(|c| c.is_object()) {
            let mounted = container
                .get("volumeMounts")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    ms.iter().any(|m| {
                        m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH)
                    })
                });
            if mounted {
                continue;
            }
            if !container.get("volumeMounts").is_some_and(Value::is_array) {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(mount.clone());
                needs_volume = true;
            }
        }
    }
    if existing.is_some() || !needs_volume {
        return;
    }
    if !spec.get("volumes").is_some_and(Value::is_array) {
        spec["volumes"] = json!([]);
    }
    if let Some(volumes) = spec["volumes"].as_array_mut() {
        volumes.push(json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                    {"configMap": {"name": "openshift-service-ca.crt", "items": [{"key": "service-ca.crt", "path": "service-ca.crt"}]}},
                ],
            },
        }));
    }
}

/// DefaultTolerationSeconds: tolerate not-ready and unreachable nodes for 300 s, unless the
/// pod already tolerates them (an empty key or effect matches too).
fn add_default_tolerations(spec: &mut Value) {
    let tolerates = |key: &str| {
        spec.get("tolerations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|t| {
                let field = |f: &str| t.get(f).and_then(Value::as_str).unwrap_or("");
                (field("key") == key || field("key").is_empty())
                    && matches!(field("effect"), "NoExecute" | "")
            })
    };
    let missing: Vec<&str> = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .into_iter()
    .filter(|key| !tolerates(key))
    .collect();
    if missing.is_empty() {
        return;
    }
    if !spec.get("tolerations").is_some_and(Value::is_array) {
        spec["tolerations"] = json!([]);
    }
    if let Some(tolerations) = spec["tolerations"].as_array_mut() {
        for key in missing {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// Priority admission. PriorityClass objects are not served by the double, so only the
/// built-in system classes resolve; any other name is refused as the apiserver refuses an
/// unknown class.
fn set_priority(spec: &mut Value, name: &str) -> Result<(), ApiError> {
    let class = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let priority = if class.is_empty() {
        0
    } else {
        match SYSTEM_PRIORITIES.iter().find(|(n, _)| *n == class) {
            Some((_, value)) => *value,
            None => {
                return Err(ApiError::forbidden(
                    "",
                    "pods",
                    name,
                    &format!("no PriorityClass with name {class} was found"),
                ));
            }
        }
    };
    match spec.get("priority").and_then(Value::as_i64) {
        Some(given) if given != priority => {
            return Err(ApiError::forbidden(
                "",
                "pods",
                name,
                &format!(
                    "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
                ),
            ));
        }
        _ => spec["priority"] = json!(priority),
    }
    if spec.get("preemptionPolicy").is_none_or(Value::is_null) {
        spec["preemptionPolicy"] = json!("PreemptLowerPriority");
    }
    Ok(())
}

/// The status a Pod is created with: Pending, and its QoS class.
pub fn creation_status(pod: &Value) -> Value {
    json!({"phase": "Pending", "qosClass": qos_class(pod)})
}

/// BestEffort without any cpu/memory request or limit; Guaranteed when every container
/// limits both and requests (if any) equal the limits; Burstable otherwise.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| pod.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let quantity = |c: &Value, kind: &str, resource: &str| {
        c.pointer(&format!("/resources/{kind}/{resource}")).cloned()
    };
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            ["cpu", "memory"]
                .iter()
                .any(|r| quantity(c, k, r).is_some())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = quantity(c, "limits", r);
            let request = quantity(c, "requests", r);
            limit.is_some() && (request.is_none() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn missing_service_account_is_forbidden() {
        let mut p = pod(json!({"serviceAccountName": "nosuch", "containers": []}));
        let err = admit(&mut p, "team", "p", None, || "abcde".into()).unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: error looking up service account team/nosuch: serviceaccount \"nosuch\" not found"
        );
    }

    #[test]
    fn token_volume_tolerations_and_priority_are_added_once() {
        let sa = json!({"metadata": {"name": "default"}});
        let mut p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
            {"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]}], "initContainers": [{"name": "i"}]}),
        );
        admit(&mut p, "team", "p", Some(&sa), || "x7k2m".into()).unwrap();
        let spec = &p["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["volumes"][0]["name"], "kube-api-access-x7k2m");
        assert_eq!(
            spec["volumes"][0]["projected"]["sources"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["readOnly"], true);
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(
            (spec["priority"].clone(), spec["preemptionPolicy"].clone()),
            (json!(0), json!("PreemptLowerPriority"))
        );
        let once = p.clone();
        admit(&mut p, "team", "p", Some(&sa), || "other".into()).unwrap();
        assert_eq!(p, once, "a second admission adds nothing");
    }

    #[test]
    fn automount_off_mounts_nothing() {
        let sa = json!({"metadata": {"name": "default"}, "automountServiceAccountToken": false});
        let mut p = pod(json!({"containers": [{"name": "a"}]}));
        admit(&mut p, "team", "p", Some(&sa), || "abcde".into()).unwrap();
        assert!(p["spec"].get("volumes").is_none());
        let mut p =
            pod(json!({"automountServiceAccountToken": true, "containers": [{"name": "a"}]}));
        admit(&mut p, "team", "p", Some(&sa), || "abcde".into()).unwrap();
        assert!(
            p["spec"]["volumes"].is_array(),
            "the pod's own setting wins"
        );
    }

    #[test]
    fn qos_classes() {
        let with =
            |resources: Value| pod(json!({"containers": [{"name": "a", "resources": resources}]}));
        assert_eq!(qos_class(&with(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&with(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
        let full = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        assert_eq!(qos_class(&with(full)), "Guaranteed");
    }
}
