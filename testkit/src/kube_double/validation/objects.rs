//! Required fields and cross-field rules of the kinds our product writes.

use serde_json::Value;

use super::{Causes, cause, is_config_key, is_dns1123_label, is_dns1123_subdomain};

fn validate_containers(spec: &Value, at: &str, causes: &mut Causes) {
    match spec.get("containers").and_then(Value::as_array) {
        Some(containers) if !containers.is_empty() => {
            for (i, c) in containers.iter().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(|n| !is_dns1123_label(n))
                {
                    cause(
                        causes,
                        format!("{at}.containers[{i}].name"),
                        "Required value: a lowercase RFC 1123 label",
                    );
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    cause(
                        causes,
                        format!("{at}.containers[{i}].image"),
                        "Required value",
                    );
                }
            }
        }
        _ => cause(causes, format!("{at}.containers"), "Required value"),
    }
}

fn validate_workload(object: &Value, causes: &mut Causes) {
    let Some(selector) = object.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        cause(causes, "spec.selector", "Required value");
        return;
    };
    let labels = object
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    let empty = selector
        .get("matchLabels")
        .is_none_or(|m| m.as_object().is_none_or(|m| m.is_empty()))
        && selector
            .get("matchExpressions")
            .is_none_or(|m| m.as_array().is_none_or(|m| m.is_empty()));
    if empty {
        cause(
            causes,
            "spec.selector",
            "Invalid value: empty selector is invalid for deployment",
        );
    } else if !crate::kube_double::selectors::label_selector_object_matches(selector, &labels) {
        cause(
            causes,
            "spec.template.metadata.labels",
            format!("Invalid value: {labels}: `selector` does not match template `labels`"),
        );
    }
    match object.pointer("/spec/template/spec") {
        Some(spec) => validate_containers(spec, "spec.template.spec", causes),
        None => cause(causes, "spec.template.spec", "Required value"),
    }
}

fn validate_binding(object: &Value, cluster: bool, causes: &mut Causes) {
    let role_kind = object
        .pointer("/roleRef/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let allowed_kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !allowed_kinds.contains(&role_kind) {
        cause(
            causes,
            "roleRef.kind",
            format!(
                "Unsupported value: \"{role_kind}\": supported values: {}",
                allowed_kinds.join(", ")
            ),
        );
    }
    if object
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        cause(causes, "roleRef.name", "Required value");
    }
    if object.pointer("/roleRef/apiGroup").and_then(Value::as_str)
        != Some("rbac.authorization.k8s.io")
    {
        cause(
            causes,
            "roleRef.apiGroup",
            "Unsupported value: supported values: \"rbac.authorization.k8s.io\"",
        );
    }
    for (i, subject) in object
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            cause(causes, format!("subjects[{i}].name"), "Required value");
        }
        match kind {
            "ServiceAccount" => {
                let has_ns = subject
                    .get("namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                if cluster && !has_ns {
                    cause(causes, format!("subjects[{i}].namespace"), "Required value");
                }
            }
            "User" | "Group" => {
                if subject.get("apiGroup").and_then(Value::as_str)
                    != Some("rbac.authorization.k8s.io")
                {
                    cause(
                        causes,
                        format!("subjects[{i}].apiGroup"),
                        "Unsupported value: supported values: \"rbac.authorization.k8s.io\"",
                    );
                }
            }
            other => cause(
                causes,
                format!("subjects[{i}].kind"),
                format!(
                    "Unsupported value: \"{other}\": supported values: \"ServiceAccount\", \"User\", \"Group\""
                ),
            ),
        }
    }
}

fn validate_rules(object: &Value, namespaced: bool, causes: &mut Causes) {
    if object.get("aggregationRule").is_some_and(|a| !a.is_null()) {
        return;
    }
    for (i, rule) in object
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let list = |f: &str| rule.get(f).and_then(Value::as_array).map_or(0, Vec::len);
        if list("verbs") == 0 {
            cause(
                causes,
                format!("rules[{i}].verbs"),
                "Required value: verbs must contain at least one value",
            );
        }
        let non_resource = list("nonResourceURLs") > 0;
        if non_resource && namespaced {
            cause(
                causes,
                format!("rules[{i}].nonResourceURLs"),
                "Invalid value: namespaced rules cannot apply to non-resource URLs",
            );
        }
        if non_resource && (list("apiGroups") > 0 || list("resources") > 0) {
            cause(
                causes,
                format!("rules[{i}].nonResourceURLs"),
                "Invalid value: rules cannot apply to both regular resources and non-resource URLs",
            );
        }
        if !non_resource {
            if rule.get("apiGroups").and_then(Value::as_array).is_none() {
                cause(
                    causes,
                    format!("rules[{i}].apiGroups"),
                    "Required value: resource rules must supply at least one api group",
                );
            }
            if list("resources") == 0 {
                cause(
                    causes,
                    format!("rules[{i}].resources"),
                    "Required value: resource rules must supply at least one resource",
                );
            }
        }
    }
}

fn validate_webhooks(object: &Value, causes: &mut Causes) {
    for (i, webhook) in object
        .get("webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("webhooks[{i}]");
        let name = webhook.get("name").and_then(Value::as_str).unwrap_or("");
        if !is_dns1123_subdomain(name) || name.split('.').count() < 3 {
            cause(
                causes,
                format!("{at}.name"),
                format!(
                    "Invalid value: \"{name}\": should be a domain with at least three segments separated by dots"
                ),
            );
        }
        match webhook.get("sideEffects").and_then(Value::as_str) {
            Some("None" | "NoneOnDryRun") => {}
            Some(other) => cause(
                causes,
                format!("{at}.sideEffects"),
                format!(
                    "Unsupported value: \"{other}\": supported values: \"None\", \"NoneOnDryRun\""
                ),
            ),
            None => cause(
                causes,
                format!("{at}.sideEffects"),
                "Required value: must specify one of None, NoneOnDryRun",
            ),
        }
        let versions = webhook
            .get("admissionReviewVersions")
            .and_then(Value::as_array);
        if !versions.is_some_and(|v| v.iter().any(|x| x == "v1" || x == "v1beta1")) {
            cause(
                causes,
                format!("{at}.admissionReviewVersions"),
                "Required value: must specify one of v1, v1beta1",
            );
        }
        let url = webhook.pointer("/clientConfig/url").and_then(Value::as_str);
        let service = webhook
            .pointer("/clientConfig/service")
            .filter(|s| !s.is_null());
        match (url, service) {
            (Some(_), Some(_)) | (None, None) => cause(
                causes,
                format!("{at}.clientConfig"),
                "Required value: exactly one of url or service is required",
            ),
            (Some(url), None) if !url.starts_with("https://") => cause(
                causes,
                format!("{at}.clientConfig.url"),
                "Invalid value: 'https' is the only allowed URL scheme",
            ),
            (None, Some(service)) => {
                for field in ["name", "namespace"] {
                    if service
                        .get(field)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        cause(
                            causes,
                            format!("{at}.clientConfig.service.{field}"),
                            "Required value",
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// Required fields and cross-field rules the apiserver enforces for the kinds our product
/// writes (a subset: what a generator is likely to get wrong).
pub fn validate_object(group: &str, kind: &str, object: &Value) -> Causes {
    let mut causes = Causes::new();
    match (group, kind) {
        ("", "ConfigMap") => {
            for field in ["data", "binaryData"] {
                for key in object
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|m| m.keys())
                {
                    if !is_config_key(key) {
                        cause(
                            &mut causes,
                            format!("{field}[{key}]"),
                            "Invalid value: a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                        );
                    }
                }
            }
            if let Some(data) = object.get("data").and_then(Value::as_object) {
                for (key, value) in data {
                    if !value.is_string() {
                        cause(
                            &mut causes,
                            format!("data[{key}]"),
                            "Invalid value: must be a string",
                        );
                    }
                }
            }
        }
        ("", "Secret") => {
            for (key, value) in object
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let decodes = value.as_str().is_some_and(|v| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v).is_ok()
                });
                if !is_config_key(key) || !decodes {
                    cause(
                        &mut causes,
                        format!("data[{key}]"),
                        "Invalid value: keys must be config keys and values base64",
                    );
                }
            }
        }
        ("", "Pod") => match object.get("spec") {
            Some(spec) => validate_containers(spec, "spec", &mut causes),
            None => cause(&mut causes, "spec", "Required value"),
        },
        ("", "Service") => {
            let headless =
                object.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            let external =
                object.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            let ports = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if ports == 0 && !headless && !external {
                cause(&mut causes, "spec.ports", "Required value");
            }
        }
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            validate_workload(object, &mut causes)
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            validate_binding(object, false, &mut causes)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            validate_binding(object, true, &mut causes)
        }
        ("rbac.authorization.k8s.io", "Role") => validate_rules(object, true, &mut causes),
        ("rbac.authorization.k8s.io", "ClusterRole") => validate_rules(object, false, &mut causes),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => validate_webhooks(object, &mut causes),
        (
            "admissionregistration.k8s.io",
            kind @ ("ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "MutatingAdmissionPolicy"
            | "MutatingAdmissionPolicyBinding"),
        ) => crate::kube_double::admission_policy::validate_definition(kind, object, &mut causes),
        ("storage.k8s.io", "StorageClass")
            if object
                .get("provisioner")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            cause(&mut causes, "provisioner", "Required value");
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
            let expected = format!("{}.{}", text("/spec/names/plural"), text("/spec/group"));
            if object.pointer("/metadata/name").and_then(Value::as_str) != Some(expected.as_str()) {
                cause(
                    &mut causes,
                    "metadata.name",
                    format!(
                        "Invalid value: must be spec.names.plural+\".\"+spec.group ({expected})"
                    ),
                );
            }
            if text("/spec/names/kind").is_empty() {
                cause(&mut causes, "spec.names.kind", "Required value");
            }
            if !matches!(text("/spec/scope"), "Namespaced" | "Cluster") {
                cause(
                    &mut causes,
                    "spec.scope",
                    "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
                );
            }
            let versions = object.pointer("/spec/versions").and_then(Value::as_array);
            let storage = versions.map_or(0, |vs| {
                vs.iter()
                    .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .count()
            });
            if storage != 1 {
                cause(
                    &mut causes,
                    "spec.versions",
                    "Invalid value: must have exactly one version marked as storage version",
                );
            }
        }
        ("policy", "PodDisruptionBudget") => {
            let min = object
                .pointer("/spec/minAvailable")
                .is_some_and(|v| !v.is_null());
            let max = object
                .pointer("/spec/maxUnavailable")
                .is_some_and(|v| !v.is_null());
            if min && max {
                cause(
                    &mut causes,
                    "spec",
                    "Invalid value: minAvailable and maxUnavailable cannot be both set",
                );
            }
        }
        _ => {}
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_the_apiserver_would_refuse() {
        let crb = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}]});
        assert_eq!(
            validate_object("rbac.authorization.k8s.io", "ClusterRoleBinding", &crb)[0].0,
            "subjects[0].namespace"
        );
        assert!(
            validate_object("rbac.authorization.k8s.io", "RoleBinding", &crb).is_empty(),
            "a RoleBinding defaults it"
        );
        let role = json!({"rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]});
        assert_eq!(
            validate_object("rbac.authorization.k8s.io", "Role", &role).len(),
            1
        );
        assert!(validate_object("rbac.authorization.k8s.io", "ClusterRole", &role).is_empty());
        let no_verbs = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": []}]});
        assert_eq!(
            validate_object("rbac.authorization.k8s.io", "ClusterRole", &no_verbs).len(),
            1
        );
        let deploy = |labels: Value| {
            json!({"spec": {"selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
        };
        assert!(validate_object("apps", "Deployment", &deploy(json!({"app": "w"}))).is_empty());
        assert_eq!(
            validate_object("apps", "Deployment", &deploy(json!({"app": "x"}))).len(),
            1
        );
        let hook = |extra: Value| {
            let mut w = json!({"name": "mutate.mlplatform.io", "clientConfig": {"service": {"name": "s", "namespace": "n"}},
                "sideEffects": "None", "admissionReviewVersions": ["v1"]});
            json_patch::merge(&mut w, &extra);
            json!({"webhooks": [w]})
        };
        let kind = "MutatingWebhookConfiguration";
        assert!(validate_object("admissionregistration.k8s.io", kind, &hook(json!({}))).is_empty());
        assert_eq!(
            validate_object(
                "admissionregistration.k8s.io",
                kind,
                &hook(json!({"sideEffects": null}))
            )
            .len(),
            1
        );
        assert_eq!(
            validate_object(
                "admissionregistration.k8s.io",
                kind,
                &hook(json!({"name": "mutate"}))
            )
            .len(),
            1
        );
        let http = json!({"clientConfig": {"service": null, "url": "http://x/mutate"}});
        assert_eq!(
            validate_object("admissionregistration.k8s.io", kind, &hook(http)).len(),
            1
        );
        assert_eq!(
            validate_object("", "ConfigMap", &json!({"data": {"bad key": "v"}})).len(),
            1
        );
        assert_eq!(
            validate_object("", "Secret", &json!({"data": {"k": "not base64!"}})).len(),
            1
        );
    }
}
