//! Kubernetes objects the plugin manages, as plain JSON with a known kind: rendering is pure,
//! comparison is "does the live object already say everything we want", and the write that
//! closes the gap is a JSON merge patch of exactly the fields we own.

use std::fmt;

use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::vocabulary::{
    CREATED_FOR_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PROFILE_LABEL,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    Namespace,
    ServiceAccount,
    ClusterRole,
    Role,
    RoleBinding,
    ClusterRoleBinding,
    StorageClass,
    CSIDriver,
    CustomResourceDefinition,
    ConfigMap,
    Secret,
    Service,
    Deployment,
    PodDisruptionBudget,
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    MutatingAdmissionPolicy,
    MutatingAdmissionPolicyBinding,
    /// cert-manager's (webhook install `--cert-manager`).
    Issuer,
    Certificate,
}

/// Every kind, for looking one up by apiVersion and kind.
const ALL_KINDS: [Kind; 22] = [
    Kind::Namespace,
    Kind::ServiceAccount,
    Kind::ClusterRole,
    Kind::Role,
    Kind::RoleBinding,
    Kind::ClusterRoleBinding,
    Kind::StorageClass,
    Kind::CSIDriver,
    Kind::CustomResourceDefinition,
    Kind::ConfigMap,
    Kind::Secret,
    Kind::Service,
    Kind::Deployment,
    Kind::PodDisruptionBudget,
    Kind::MutatingWebhookConfiguration,
    Kind::ValidatingWebhookConfiguration,
    Kind::ValidatingAdmissionPolicy,
    Kind::ValidatingAdmissionPolicyBinding,
    Kind::MutatingAdmissionPolicy,
    Kind::MutatingAdmissionPolicyBinding,
    Kind::Issuer,
    Kind::Certificate,
];

impl Kind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "Namespace",
            Self::ServiceAccount => "ServiceAccount",
            Self::ClusterRole => "ClusterRole",
            Self::Role => "Role",
            Self::RoleBinding => "RoleBinding",
            Self::ClusterRoleBinding => "ClusterRoleBinding",
            Self::StorageClass => "StorageClass",
            Self::CSIDriver => "CSIDriver",
            Self::CustomResourceDefinition => "CustomResourceDefinition",
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
            Self::Service => "Service",
            Self::Deployment => "Deployment",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
            Self::MutatingWebhookConfiguration => "MutatingWebhookConfiguration",
            Self::ValidatingWebhookConfiguration => "ValidatingWebhookConfiguration",
            Self::ValidatingAdmissionPolicy => "ValidatingAdmissionPolicy",
            Self::ValidatingAdmissionPolicyBinding => "ValidatingAdmissionPolicyBinding",
            Self::MutatingAdmissionPolicy => "MutatingAdmissionPolicy",
            Self::MutatingAdmissionPolicyBinding => "MutatingAdmissionPolicyBinding",
            Self::Issuer => "Issuer",
            Self::Certificate => "Certificate",
        }
    }
    /// The kind of an object body (its `apiVersion` and `kind`), if the plugin knows it.
    pub(crate) fn of(object: &Value) -> Option<Self> {
        let api_version = object["apiVersion"].as_str()?;
        let kind = object["kind"].as_str()?;
        ALL_KINDS
            .into_iter()
            .find(|k| k.as_str() == kind && k.api_version() == api_version)
    }
    const fn group_version_plural(self) -> (&'static str, &'static str, &'static str) {
        const RBAC: &str = "rbac.authorization.k8s.io";
        const ADMISSION: &str = "admissionregistration.k8s.io";
        match self {
            Self::Namespace => ("", "v1", "namespaces"),
            Self::ServiceAccount => ("", "v1", "serviceaccounts"),
            Self::ClusterRole => (RBAC, "v1", "clusterroles"),
            Self::Role => (RBAC, "v1", "roles"),
            Self::RoleBinding => (RBAC, "v1", "rolebindings"),
            Self::ClusterRoleBinding => (RBAC, "v1", "clusterrolebindings"),
            Self::StorageClass => ("storage.k8s.io", "v1", "storageclasses"),
            Self::CSIDriver => ("storage.k8s.io", "v1", "csidrivers"),
            Self::CustomResourceDefinition => {
                ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            }
            Self::ConfigMap => ("", "v1", "configmaps"),
            Self::Secret => ("", "v1", "secrets"),
            Self::Service => ("", "v1", "services"),
            Self::Deployment => ("apps", "v1", "deployments"),
            Self::PodDisruptionBudget => ("policy", "v1", "poddisruptionbudgets"),
            Self::MutatingWebhookConfiguration => {
                (ADMISSION, "v1", "mutatingwebhookconfigurations")
            }
            Self::ValidatingWebhookConfiguration => {
                (ADMISSION, "v1", "validatingwebhookconfigurations")
            }
            Self::ValidatingAdmissionPolicy => (ADMISSION, "v1", "validatingadmissionpolicies"),
            Self::ValidatingAdmissionPolicyBinding => {
                (ADMISSION, "v1", "validatingadmissionpolicybindings")
            }
            Self::MutatingAdmissionPolicy => (ADMISSION, "v1", "mutatingadmissionpolicies"),
            Self::MutatingAdmissionPolicyBinding => {
                (ADMISSION, "v1", "mutatingadmissionpolicybindings")
            }
            Self::Issuer => ("cert-manager.io", "v1", "issuers"),
            Self::Certificate => ("cert-manager.io", "v1", "certificates"),
        }
    }
    pub(crate) fn api_version(self) -> String {
        match self.group_version_plural() {
            ("", v, _) => v.to_owned(),
            (g, v, _) => format!("{g}/{v}"),
        }
    }
    pub(crate) fn namespaced(self) -> bool {
        matches!(
            self,
            Self::ServiceAccount
                | Self::Role
                | Self::RoleBinding
                | Self::ConfigMap
                | Self::Secret
                | Self::Service
                | Self::Deployment
                | Self::PodDisruptionBudget
                | Self::Issuer
                | Self::Certificate
        )
    }
    pub(crate) fn api_resource(self) -> ApiResource {
        let (group, version, plural) = self.group_version_plural();
        ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: self.api_version(),
            kind: self.as_str().to_owned(),
            plural: plural.to_owned(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an object: kind, namespace (for namespaced kinds), name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object body (known apiVersion/kind, `metadata.name`).
    pub(crate) fn of(object: &Value) -> Option<Self> {
        Some(Self {
            kind: Kind::of(object)?,
            namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
            name: object["metadata"]["name"].as_str()?.to_owned(),
        })
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A desired object: its key and the full body we would create.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KubeObject {
    pub(crate) key: ObjectKey,
    pub(crate) body: Value,
}

impl KubeObject {
    /// Builds an object body with our ownership labels plus `extra_labels`; `fields` are the
    /// top-level fields besides metadata (rules, subjects, roleRef, ...).
    pub(crate) fn new(
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
        profile: &str,
        fields: Value,
    ) -> Self {
        let namespace = namespace.filter(|_| kind.namespaced()).map(str::to_owned);
        let mut metadata = Map::new();
        metadata.insert("name".into(), name.into());
        if let Some(ns) = &namespace {
            metadata.insert("namespace".into(), ns.clone().into());
        }
        metadata.insert("labels".into(), ownership_labels(profile));
        let mut body = Map::new();
        body.insert("apiVersion".into(), kind.api_version().into());
        body.insert("kind".into(), kind.as_str().into());
        body.insert("metadata".into(), Value::Object(metadata));
        if let Value::Object(extra) = fields {
            body.extend(extra);
        }
        Self {
            key: ObjectKey {
                kind,
                namespace,
                name: name.to_owned(),
            },
            body: Value::Object(body),
        }
    }
}

/// A namespace as connect creates it: our labels and the record that we created it.
pub(crate) fn new_namespace(name: &str, profile: &str) -> KubeObject {
    let mut obj = KubeObject::new(Kind::Namespace, None, name, profile, Value::Null);
    obj.body["metadata"]["annotations"] = serde_json::json!({ CREATED_FOR_ANNOTATION: profile });
    obj
}

/// True when connect created this namespace for `profile`: the creation record, or (for
/// namespaces created before that record existed) our ownership labels, which connect never
/// puts on a namespace that existed before.
pub(crate) fn namespace_created_for(live: &Value, profile: &str) -> bool {
    live["metadata"]["annotations"][CREATED_FOR_ANNOTATION] == profile || is_ours(live, profile)
}

/// The namespace is being deleted: creating anything in it is refused until it is gone.
pub(crate) fn is_terminating(live: &Value) -> bool {
    live["metadata"]["deletionTimestamp"].is_string() || live["status"]["phase"] == "Terminating"
}

pub(crate) fn ownership_labels(profile: &str) -> Value {
    serde_json::json!({ MANAGED_BY_LABEL: MANAGED_BY_VALUE, PROFILE_LABEL: profile })
}

/// True when `live` carries our managed-by label and this profile's label: only such objects
/// are ever updated or deleted.
pub(crate) fn is_ours(live: &Value, profile: &str) -> bool {
    let labels = &live["metadata"]["labels"];
    labels[MANAGED_BY_LABEL] == MANAGED_BY_VALUE && labels[PROFILE_LABEL] == profile
}

/// Does the live object already say everything `desired` says? The top-level `apiVersion` and
/// `kind` are not compared: they are the object's identity, known from its key, and a real API
/// server leaves them out of list items. Below that, [`covers_value`].
pub(crate) fn covers(live: &Value, desired: &Value) -> bool {
    match desired {
        Value::Object(d) => d
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind"))
            .all(|(k, dv)| field_covered(live.get(k), dv)),
        _ => covers_value(live, desired),
    }
}

/// Maps: every desired key present and covered (extra live keys such as uid or other labels
/// are fine); arrays: same length, element-wise covered (the server may default fields inside
/// elements); scalars: equal.
fn covers_value(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d.iter().all(|(k, dv)| field_covered(l.get(k), dv)),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| covers_value(lv, dv))
        }
        (l, d) => l == d,
    }
}

fn field_covered(live: Option<&Value>, desired: &Value) -> bool {
    match live {
        Some(lv) => covers_value(lv, desired),
        None => desired.is_null() || is_empty_collection(desired),
    }
}

fn is_empty_collection(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.is_empty()) || matches!(v, Value::Object(o) if o.is_empty())
}

/// The merge patch that makes `live` cover `desired`: the desired body minus identity fields.
/// Merge-patch semantics keep every label/annotation we do not name and replace arrays.
pub(crate) fn merge_patch_for(desired: &Value) -> Value {
    let mut patch = desired.clone();
    if let Some(map) = patch.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("name");
            meta.remove("namespace");
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn covers_ignores_extra_live_fields_but_not_missing_or_different_ones() {
        let desired = json!({"metadata": {"labels": {"a": "1"}}, "rules": [{"verbs": ["get"]}]});
        let live = json!({"metadata": {"uid": "x", "labels": {"a": "1", "b": "2"}},
                          "rules": [{"verbs": ["get"], "apiGroups": [""]}]});
        assert!(covers(&live, &desired));
        let changed = json!({"metadata": {"labels": {"a": "2"}}, "rules": [{"verbs": ["get"]}]});
        assert!(!covers(&changed, &desired));
        let extra_rule = json!({"metadata": {"labels": {"a": "1"}}, "rules": [{"verbs": ["get"]}, {"verbs": ["list"]}]});
        assert!(!covers(&extra_rule, &desired));
        assert!(!covers(&json!({}), &desired));
    }

    #[test]
    fn covers_does_not_need_kind_and_api_version_on_the_live_object() {
        // What a real API server returns in a LIST: no kind, no apiVersion on the items.
        let desired = KubeObject::new(
            Kind::StorageClass,
            None,
            "gp3",
            "arthur",
            json!({"provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}}),
        )
        .body;
        let mut listed = desired.clone();
        listed.as_object_mut().unwrap().remove("kind");
        listed.as_object_mut().unwrap().remove("apiVersion");
        listed["metadata"]["uid"] = json!("u");
        assert!(covers(&listed, &desired));
        listed["parameters"]["type"] = json!("gp2");
        assert!(!covers(&listed, &desired));
        // Only the top level is identity: a kind inside (roleRef, subjects) still counts.
        let binding = json!({"roleRef": {"kind": "Role", "name": "r"}});
        assert!(!covers(&json!({"roleRef": {"name": "r"}}), &binding));
    }

    #[test]
    fn objects_carry_ownership_labels_and_drop_namespace_for_cluster_kinds() {
        let cr = KubeObject::new(
            Kind::ClusterRole,
            Some("ns"),
            "cr",
            "concurrent",
            json!({"rules": []}),
        );
        assert_eq!(cr.key.namespace, None);
        assert!(is_ours(&cr.body, "concurrent"));
        assert!(!is_ours(&cr.body, "arthur"));
        let sa = KubeObject::new(Kind::ServiceAccount, Some("ns"), "sa", "p", json!({}));
        assert_eq!(sa.body["metadata"]["namespace"], "ns");
        assert_eq!(sa.key.to_string(), "ServiceAccount ns/sa");
        let patch = merge_patch_for(&sa.body);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": ownership_labels("p")}})
        );
    }
}
