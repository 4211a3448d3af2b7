//! The subset of apiserver validation our plugin must not be able to rely on being lax:
//! object names and label/annotation keys and values.

use serde_json::Value;

/// `(field, message)` problems; empty means valid.
pub type Causes = Vec<(String, String)>;

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: at most 63 lowercase alphanumerics or '-', alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.starts_with(is_alnum_lower)
        && s.ends_with(is_alnum_lower)
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated labels.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|c| is_alnum_lower(c) || c == '-' || c == '.')
        && s.starts_with(is_alnum_lower)
        && s.ends_with(is_alnum_lower)
}

/// RBAC object names only have to be valid path segments (`system:controller:x` is fine).
fn is_path_segment_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%'])
}

/// Label value / key name part: up to 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn is_qualified_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// `prefix/name` or `name`, as label and annotation keys must be.
pub fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(key),
    }
}

pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_qualified_name_part(value)
}

/// Which name rule a kind follows.
fn name_is_valid(kind: &str, name: &str) -> Result<(), &'static str> {
    match kind {
        "Namespace" | "Service" => is_dns1123_label(name).then_some(()).ok_or(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character",
        ),
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => is_path_segment_name(name)
            .then_some(())
            .ok_or("may not be '.' or '..' and may not contain '/' or '%'"),
        _ => is_dns1123_subdomain(name).then_some(()).ok_or(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character",
        ),
    }
}

/// Validates an object's metadata as the apiserver would on create/update.
pub fn validate_metadata(kind: &str, object: &Value) -> Causes {
    let mut causes = Causes::new();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Err(why) = name_is_valid(kind, name) {
        causes.push((
            "metadata.name".to_string(),
            format!("Invalid value: \"{name}\": {why}"),
        ));
    }
    if let Some(labels) = object.pointer("/metadata/labels") {
        match labels.as_object() {
            Some(labels) => {
                for (key, value) in labels {
                    if !is_qualified_name(key) {
                        causes.push((
                            "metadata.labels".to_string(),
                            format!("Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.'"),
                        ));
                    }
                    match value.as_str() {
                        Some(v) if is_label_value(v) => {}
                        _ => causes.push((
                            "metadata.labels".to_string(),
                            format!("Invalid value: {value}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)"),
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push((
                "metadata.labels".to_string(),
                "must be a map of strings".to_string(),
            )),
        }
    }
    if let Some(annotations) = object.pointer("/metadata/annotations") {
        match annotations.as_object() {
            Some(annotations) => {
                let mut total = 0;
                for (key, value) in annotations {
                    total += key.len() + value.as_str().map_or(0, str::len);
                    if !is_qualified_name(&key.to_lowercase()) {
                        causes.push((
                            "metadata.annotations".to_string(),
                            format!("Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.'"),
                        ));
                    }
                    if !value.is_string() {
                        causes.push((
                            "metadata.annotations".to_string(),
                            format!("Invalid value: {value}: annotation values must be strings"),
                        ));
                    }
                }
                if total > 256 * 1024 {
                    causes.push((
                        "metadata.annotations".to_string(),
                        "Too long: must have at most 262144 bytes".to_string(),
                    ));
                }
            }
            None if annotations.is_null() => {}
            None => causes.push((
                "metadata.annotations".to_string(),
                "must be a map of strings".to_string(),
            )),
        }
    }
    causes
}

/// Fields the apiserver refuses to change on update, per (group, kind): (path, message).
fn immutable_fields(group: &str, kind: &str) -> &'static [(&'static str, &'static str)] {
    match (group, kind) {
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            &[("/roleRef", "roleRef: Invalid value: cannot change roleRef")]
        }
        ("storage.k8s.io", "StorageClass") => &[
            (
                "/provisioner",
                "provisioner: Forbidden: updates to provisioner are forbidden.",
            ),
            (
                "/parameters",
                "parameters: Forbidden: updates to parameters are forbidden.",
            ),
            (
                "/reclaimPolicy",
                "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
            ),
            (
                "/volumeBindingMode",
                "volumeBindingMode: Forbidden: field is immutable",
            ),
        ],
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => &[(
            "/spec/selector",
            "spec.selector: Invalid value: field is immutable",
        )],
        ("batch", "Job") => &[
            (
                "/spec/selector",
                "spec.selector: Invalid value: field is immutable",
            ),
            (
                "/spec/template",
                "spec.template: Invalid value: field is immutable",
            ),
        ],
        ("", "Secret") => &[("/type", "type: Invalid value: field is immutable")],
        ("storage.k8s.io", "CSIDriver") => &[
            (
                "/spec/attachRequired",
                "spec.attachRequired: Invalid value: field is immutable",
            ),
            (
                "/spec/podInfoOnMount",
                "spec.podInfoOnMount: Invalid value: field is immutable",
            ),
        ],
        _ => &[],
    }
}

/// Pod spec fields that may change after creation (everything else is immutable).
fn pod_spec_without_mutable_fields(spec: &Value) -> Value {
    let mut spec = spec.clone();
    for list in ["containers", "initContainers"] {
        if let Some(items) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                item.remove("image");
            }
        }
    }
    if let Some(map) = spec.as_object_mut() {
        for mutable in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "schedulingGates",
        ] {
            map.remove(mutable);
        }
    }
    spec
}

/// What the apiserver rejects when `new` replaces `old`: immutable fields, immutable
/// ConfigMaps/Secrets, Pod specs.
pub fn validate_update(group: &str, kind: &str, old: &Value, new: &Value) -> Causes {
    let mut causes = Causes::new();
    for (pointer, message) in immutable_fields(group, kind) {
        if old.pointer(pointer) != new.pointer(pointer) {
            let (field, text) = message.split_once(": ").unwrap_or((message, ""));
            causes.push((field.to_string(), text.to_string()));
        }
    }
    if group.is_empty()
        && matches!(kind, "ConfigMap" | "Secret")
        && old.get("immutable") == Some(&Value::Bool(true))
    {
        if new.get("immutable") != Some(&Value::Bool(true)) {
            causes.push((
                "immutable".to_string(),
                "Forbidden: field is immutable when `immutable` is set".to_string(),
            ));
        }
        if old.get("data") != new.get("data") || old.get("binaryData") != new.get("binaryData") {
            causes.push((
                "data".to_string(),
                "Forbidden: field is immutable when `immutable` is set".to_string(),
            ));
        }
    }
    if group.is_empty() && kind == "Pod" {
        let before = old.get("spec").map(pod_spec_without_mutable_fields);
        let after = new.get("spec").map(pod_spec_without_mutable_fields);
        if before != after {
            causes.push((
                "spec".to_string(),
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, \
                 `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` \
                 (only additions to existing tolerations), `spec.terminationGracePeriodSeconds`"
                    .to_string(),
            ));
        }
    }
    causes
}

fn cause(causes: &mut Causes, field: impl Into<String>, message: impl Into<String>) {
    causes.push((field.into(), message.into()));
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

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
    } else if !super::selectors::label_selector_object_matches(selector, &labels) {
        cause(
            causes,
            "spec.template.metadata.labels",
            "Invalid value: `selector` does not match template `labels`",
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
    fn names() {
        assert!(is_dns1123_subdomain("aws-auth"));
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("Upper"));
        assert!(!is_dns1123_subdomain("-x"));
        assert!(!is_dns1123_subdomain(""));
        assert!(is_dns1123_label("ml-team"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }

    #[test]
    fn immutable_fields_are_refused_on_update() {
        let rb = |role: &str| json!({"roleRef": {"kind": "Role", "name": role}, "subjects": []});
        assert!(
            validate_update(
                "rbac.authorization.k8s.io",
                "RoleBinding",
                &rb("a"),
                &rb("a")
            )
            .is_empty()
        );
        let causes = validate_update(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            &rb("a"),
            &rb("b"),
        );
        assert_eq!(
            causes,
            vec![(
                "roleRef".to_string(),
                "Invalid value: cannot change roleRef".to_string()
            )]
        );
        let sc = |p: &str| json!({"provisioner": "ebs.csi.aws.com", "parameters": {"type": p}});
        assert_eq!(
            validate_update("storage.k8s.io", "StorageClass", &sc("gp3"), &sc("gp2")).len(),
            1
        );
        let cm = |v: &str| json!({"immutable": true, "data": {"k": v}});
        assert_eq!(
            validate_update("", "ConfigMap", &cm("1"), &cm("2")).len(),
            1
        );
        assert!(
            validate_update(
                "",
                "ConfigMap",
                &json!({"data": {"k": "1"}}),
                &json!({"data": {"k": "2"}})
            )
            .is_empty()
        );
        let pod = |image: &str, sa: &str| json!({"spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": image}]}});
        assert!(validate_update("", "Pod", &pod("a", "x"), &pod("b", "x")).is_empty());
        assert_eq!(
            validate_update("", "Pod", &pod("a", "x"), &pod("a", "y")).len(),
            1
        );
    }

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

    #[test]
    fn rbac_names_may_contain_colons() {
        let cr = json!({"metadata": {"name": "mlplatform:concurrent-system"}});
        assert!(validate_metadata("ClusterRole", &cr).is_empty());
        assert!(!validate_metadata("ConfigMap", &cr).is_empty());
    }

    #[test]
    fn labels_and_annotations() {
        let ok = json!({"metadata": {"name": "x",
            "labels": {"mlplatform.io/managed": "true", "empty": ""},
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}}});
        assert!(validate_metadata("ConfigMap", &ok).is_empty());
        let bad_value = json!({"metadata": {"name": "x", "labels": {"a": "has space"}}});
        assert_eq!(validate_metadata("ConfigMap", &bad_value).len(), 1);
        let bad_key = json!({"metadata": {"name": "x", "labels": {"Bad_Prefix/a": "b"}}});
        assert_eq!(validate_metadata("ConfigMap", &bad_key).len(), 1);
        let non_string = json!({"metadata": {"name": "x", "labels": {"a": true}}});
        assert_eq!(validate_metadata("ConfigMap", &non_string).len(), 1);
    }
}
