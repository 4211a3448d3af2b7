//! Server-side defaulting, as the apiserver applies it on every write: stored objects carry
//! fields nobody sent. Code that compares "desired" with "stored" must cope with that, and
//! a lax double would hide it. Covers the kinds our product writes: Services, workloads'
//! pod templates, Pods, webhook configurations, StorageClasses, CSIDrivers.
//! (Not modelled: Job/CronJob defaults. What admission adds to Pods is in `pod_admission`.)

use serde_json::{Value, json};

/// Sets `object[path]` to `value` when missing (null counts as missing).
fn default_at(object: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = object;
    for key in parents {
        if !cursor.is_object() {
            return;
        }
        if cursor.get(*key).is_none_or(Value::is_null) {
            cursor[*key] = json!({});
        }
        cursor = &mut cursor[*key];
    }
    if cursor.is_object() && cursor.get(*last).is_none_or(Value::is_null) {
        cursor[*last] = value;
    }
}

fn each_in(object: &mut Value, list: &str, f: impl Fn(&mut Value)) {
    if let Some(items) = object.get_mut(list).and_then(Value::as_array_mut) {
        items.iter_mut().for_each(f);
    }
}

/// `imagePullPolicy`: Always for `:latest` or untagged images, else IfNotPresent.
fn pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

fn container_defaults(container: &mut Value) {
    default_at(
        container,
        &["terminationMessagePath"],
        json!("/dev/termination-log"),
    );
    default_at(container, &["terminationMessagePolicy"], json!("File"));
    let image = container
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    default_at(container, &["imagePullPolicy"], json!(pull_policy(&image)));
    default_at(container, &["resources"], json!({}));
    each_in(container, "ports", |port| {
        default_at(port, &["protocol"], json!("TCP"))
    });
}

/// core/v1 PodSpec defaults.
pub fn pod_spec_defaults(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_at(spec, &["restartPolicy"], json!("Always"));
    default_at(spec, &["terminationGracePeriodSeconds"], json!(30));
    default_at(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default_at(spec, &["securityContext"], json!({}));
    default_at(spec, &["schedulerName"], json!("default-scheduler"));
    each_in(spec, "containers", container_defaults);
    each_in(spec, "initContainers", container_defaults);
    mirror_service_account(spec);
}

/// v1 conversion keeps the deprecated `serviceAccount` equal to `serviceAccountName`
/// (reading the old field when only it is set).
fn mirror_service_account(spec: &mut Value) {
    let text = |spec: &Value, f: &str| {
        spec.get(f)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let name = text(spec, "serviceAccountName").or_else(|| text(spec, "serviceAccount"));
    match (name, spec.as_object_mut()) {
        (Some(name), Some(map)) => {
            map.insert("serviceAccountName".to_string(), json!(name));
            map.insert("serviceAccount".to_string(), json!(name));
        }
        (None, Some(map)) => {
            map.remove("serviceAccount");
        }
        _ => {}
    }
}

/// What only Pods get (not pod templates): `enableServiceLinks`, and requests defaulted
/// from limits.
fn pod_only_defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    default_at(spec, &["enableServiceLinks"], json!(true));
    let requests_from_limits = |container: &mut Value| {
        let Some(limits) = container
            .pointer("/resources/limits")
            .and_then(Value::as_object)
            .cloned()
        else {
            return;
        };
        for (resource, quantity) in limits {
            default_at(
                container,
                &["resources", "requests", resource.as_str()],
                quantity,
            );
        }
    };
    each_in(spec, "containers", requests_from_limits);
    each_in(spec, "initContainers", requests_from_limits);
}

fn template_spec(object: &mut Value, path: &[&str]) {
    let mut cursor = &mut *object;
    for key in path {
        match cursor.get_mut(*key) {
            Some(next) => cursor = next,
            None => return,
        }
    }
    pod_spec_defaults(cursor);
}

fn webhook_defaults(webhook: &mut Value, mutating: bool) {
    default_at(webhook, &["failurePolicy"], json!("Fail"));
    default_at(webhook, &["matchPolicy"], json!("Equivalent"));
    default_at(webhook, &["namespaceSelector"], json!({}));
    default_at(webhook, &["objectSelector"], json!({}));
    default_at(webhook, &["timeoutSeconds"], json!(10));
    if mutating {
        default_at(webhook, &["reinvocationPolicy"], json!("Never"));
    }
    if webhook.pointer("/clientConfig/service").is_some() {
        default_at(webhook, &["clientConfig", "service", "port"], json!(443));
    }
    each_in(webhook, "rules", |rule| {
        default_at(rule, &["scope"], json!("*"))
    });
}

/// A ClusterIP from 10.96.0.0/12 derived from the name, stable across writes.
fn cluster_ip(namespace: &str, name: &str) -> String {
    let hash = format!("{namespace}/{name}")
        .bytes()
        .fold(2_166_136_261u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(16_777_619)
        });
    format!("10.96.{}.{}", (hash >> 8) % 256, (hash % 254) + 1)
}

/// What every namespace carries: its name label, the `kubernetes` finalizer, a phase.
pub fn namespace_defaults(object: &mut Value, name: &str) {
    set_at(
        object,
        &["metadata", "labels", "kubernetes.io/metadata.name"],
        json!(name),
    );
    default_at(object, &["spec", "finalizers"], json!(["kubernetes"]));
    default_at(object, &["status", "phase"], json!("Active"));
}

/// Sets `object[path]` to `value`, making the parents objects where they are not (a
/// malformed stored object must not make the server panic).
pub fn set_at(object: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = object;
    for key in parents {
        if !cursor.is_object() {
            *cursor = json!({});
        }
        if !cursor.get(*key).is_some_and(Value::is_object) {
            cursor[*key] = json!({});
        }
        cursor = &mut cursor[*key];
    }
    if !cursor.is_object() {
        *cursor = json!({});
    }
    cursor[*last] = value;
}

/// `MatchResources` of an admission policy or binding (`SetDefaults_MatchResources`).
fn match_resources_defaults(resources: &mut Value) {
    if !resources.is_object() {
        return;
    }
    default_at(resources, &["matchPolicy"], json!("Equivalent"));
    default_at(resources, &["namespaceSelector"], json!({}));
    default_at(resources, &["objectSelector"], json!({}));
    for rules in ["resourceRules", "excludeResourceRules"] {
        each_in(resources, rules, |rule| {
            default_at(rule, &["scope"], json!("*"));
        });
    }
}

/// Applies the apiserver's defaults for `(group, kind)` to `object`.
pub fn apply(group: &str, kind: &str, object: &mut Value) {
    match (group, kind) {
        ("", "Service") => {
            let ns = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
                return;
            };
            default_at(spec, &["type"], json!("ClusterIP"));
            default_at(spec, &["sessionAffinity"], json!("None"));
            let headless_or_external =
                spec.get("type").and_then(Value::as_str) == Some("ExternalName");
            if !headless_or_external {
                default_at(spec, &["clusterIP"], json!(cluster_ip(&ns, &name)));
                let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
                default_at(spec, &["clusterIPs"], json!([ip]));
                default_at(spec, &["ipFamilies"], json!(["IPv4"]));
                default_at(spec, &["ipFamilyPolicy"], json!("SingleStack"));
                default_at(spec, &["internalTrafficPolicy"], json!("Cluster"));
            }
            each_in(spec, "ports", |port| {
                default_at(port, &["protocol"], json!("TCP"));
                let number = port.get("port").cloned().unwrap_or(Value::Null);
                default_at(port, &["targetPort"], number);
            });
        }
        ("", "Pod") => {
            template_spec(object, &["spec"]);
            pod_only_defaults(object);
        }
        ("apps", "Deployment") => {
            default_at(object, &["spec", "replicas"], json!(1));
            default_at(object, &["spec", "revisionHistoryLimit"], json!(10));
            default_at(object, &["spec", "progressDeadlineSeconds"], json!(600));
            default_at(
                object,
                &["spec", "strategy", "type"],
                json!("RollingUpdate"),
            );
            if object
                .pointer("/spec/strategy/type")
                .and_then(Value::as_str)
                == Some("RollingUpdate")
            {
                default_at(
                    object,
                    &["spec", "strategy", "rollingUpdate", "maxSurge"],
                    json!("25%"),
                );
                default_at(
                    object,
                    &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
                    json!("25%"),
                );
            }
            template_spec(object, &["spec", "template", "spec"]);
        }
        ("apps", "StatefulSet") => {
            default_at(object, &["spec", "replicas"], json!(1));
            default_at(object, &["spec", "revisionHistoryLimit"], json!(10));
            default_at(
                object,
                &["spec", "podManagementPolicy"],
                json!("OrderedReady"),
            );
            default_at(
                object,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            template_spec(object, &["spec", "template", "spec"]);
        }
        ("apps", "DaemonSet") => {
            default_at(object, &["spec", "revisionHistoryLimit"], json!(10));
            default_at(
                object,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            template_spec(object, &["spec", "template", "spec"]);
        }
        ("apps", "ReplicaSet") => {
            default_at(object, &["spec", "replicas"], json!(1));
            template_spec(object, &["spec", "template", "spec"]);
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            each_in(object, "webhooks", |w| webhook_defaults(w, true));
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            each_in(object, "webhooks", |w| webhook_defaults(w, false));
        }
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy" | "MutatingAdmissionPolicy",
        ) => {
            default_at(object, &["spec", "failurePolicy"], json!("Fail"));
            if let Some(constraints) = object.pointer_mut("/spec/matchConstraints") {
                match_resources_defaults(constraints);
            }
        }
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding" | "MutatingAdmissionPolicyBinding",
        ) => {
            if let Some(resources) = object.pointer_mut("/spec/matchResources") {
                match_resources_defaults(resources);
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            default_at(object, &["reclaimPolicy"], json!("Delete"));
            default_at(object, &["volumeBindingMode"], json!("Immediate"));
        }
        ("storage.k8s.io", "CSIDriver") => {
            default_at(object, &["spec", "attachRequired"], json!(true));
            default_at(object, &["spec", "podInfoOnMount"], json!(false));
            default_at(object, &["spec", "requiresRepublish"], json!(false));
            default_at(object, &["spec", "storageCapacity"], json!(false));
            default_at(
                object,
                &["spec", "fsGroupPolicy"],
                json!("ReadWriteOnceWithFSType"),
            );
            default_at(
                object,
                &["spec", "volumeLifecycleModes"],
                json!(["Persistent"]),
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(pull_policy("busybox"), "Always");
        assert_eq!(pull_policy("busybox:latest"), "Always");
        assert_eq!(pull_policy("registry:5000/busybox"), "Always");
        assert_eq!(pull_policy("registry:5000/busybox:1.36"), "IfNotPresent");
        assert_eq!(pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn deployment_defaults_keep_what_was_sent() {
        let mut d = json!({"metadata": {"name": "w"}, "spec": {"replicas": 2, "template": {"spec": {
            "restartPolicy": "Always", "containers": [{"name": "c", "image": "img:1", "ports": [{"containerPort": 8443}]}]}}}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        let again = d.clone();
        apply("apps", "Deployment", &mut d);
        assert_eq!(d, again, "defaulting is idempotent");
    }

    #[test]
    fn service_account_is_mirrored_and_pods_get_their_own_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"serviceAccountName": "user", "containers": []}}}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["template"]["spec"]["serviceAccount"], "user");
        assert!(
            d["spec"]["template"]["spec"]
                .get("enableServiceLinks")
                .is_none()
        );
        let mut p = json!({"spec": {"serviceAccount": "old", "containers": [
            {"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}}}]}});
        apply("", "Pod", &mut p);
        assert_eq!(p["spec"]["serviceAccountName"], "old");
        assert_eq!(p["spec"]["enableServiceLinks"], true);
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "1"
        );
    }

    #[test]
    fn service_gets_a_stable_cluster_ip_and_port_defaults() {
        let svc = || json!({"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 443}]}});
        let (mut a, mut b) = (svc(), svc());
        apply("", "Service", &mut a);
        apply("", "Service", &mut b);
        assert_eq!(a, b);
        assert_eq!(
            a["spec"]["ports"][0],
            json!({"port": 443, "protocol": "TCP", "targetPort": 443})
        );
        assert!(
            a["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .starts_with("10.96.")
        );
        assert_eq!(a["spec"]["type"], "ClusterIP");
    }

    #[test]
    fn webhook_configurations_get_their_defaults() {
        let mut m = json!({"webhooks": [{"name": "w", "clientConfig": {"service": {"name": "s", "namespace": "n"}},
            "rules": [{"operations": ["CREATE"]}]}]});
        apply(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            &mut m,
        );
        let w = &m["webhooks"][0];
        assert_eq!(w["failurePolicy"], "Fail");
        assert_eq!(w["timeoutSeconds"], 10);
        assert_eq!(w["reinvocationPolicy"], "Never");
        assert_eq!(w["clientConfig"]["service"]["port"], 443);
        assert_eq!(w["rules"][0]["scope"], "*");
    }
}
