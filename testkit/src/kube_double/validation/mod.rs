//! The subset of apiserver validation our plugin must not be able to rely on being lax:
//! object names, label/annotation keys and values, and immutable fields on update here;
//! the per-kind required fields and cross-field rules in `objects`.

pub mod objects;

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
             and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
             regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => is_path_segment_name(name)
            .then_some(())
            .ok_or("may not be '.' or '..' and may not contain '/' or '%'"),
        _ => is_dns1123_subdomain(name).then_some(()).ok_or(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
             regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
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
                "provisioner: Invalid value: field is immutable",
            ),
            (
                "/parameters",
                "parameters: Invalid value: field is immutable",
            ),
            (
                "/reclaimPolicy",
                "reclaimPolicy: Invalid value: field is immutable",
            ),
            (
                "/volumeBindingMode",
                "volumeBindingMode: Invalid value: field is immutable",
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

/// A roleRef as Go prints the struct: `{"APIGroup":...,"Kind":...,"Name":...}`.
fn go_role_ref(role_ref: &Value) -> Value {
    let text = |f: &str| {
        role_ref
            .get(f)
            .cloned()
            .unwrap_or(Value::String(String::new()))
    };
    let mut out = serde_json::Map::new();
    out.insert("APIGroup".to_string(), text("apiGroup"));
    out.insert("Kind".to_string(), text("kind"));
    out.insert("Name".to_string(), text("name"));
    Value::Object(out)
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
            // "Invalid value: <the new value>: why", as field.Invalid renders it.
            let text = match text.strip_prefix("Invalid value: ") {
                Some(why) => {
                    let mut value = new.pointer(pointer).cloned().unwrap_or(Value::Null);
                    if *pointer == "/roleRef" {
                        value = go_role_ref(&value);
                    }
                    format!("Invalid value: {value}: {why}")
                }
                None => text.to_string(),
            };
            causes.push((field.to_string(), text));
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

pub(crate) fn cause(causes: &mut Causes, field: impl Into<String>, message: impl Into<String>) {
    causes.push((field.into(), message.into()));
}

pub(crate) fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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
                "Invalid value: {\"APIGroup\":\"\",\"Kind\":\"Role\",\"Name\":\"b\"}: cannot change roleRef".to_string()
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
