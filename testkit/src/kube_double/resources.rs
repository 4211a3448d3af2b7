//! The resource table: which plurals the double serves, their kinds, scope and verbs.
//!
//! Built-in resources come from a fixed table; CustomResourceDefinitions stored in the
//! double add their resources on top (see [`ResourceType::from_crd`]), like the apiserver.

use serde_json::{Value, json};

/// Verbs of an ordinary stored resource, as discovery reports them.
const STORED_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served resource (a plural in a group/version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; "" for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Whether `/status` is a subresource (main-resource writes then keep the stored status).
    pub has_status: bool,
    /// Create-only review resources (SubjectAccessReview, TokenReview...): evaluated, never stored.
    pub review_only: bool,
    /// Served from a CustomResourceDefinition: list items keep kind/apiVersion, every
    /// object has a generation, an immediate DELETE answers with a Status.
    pub custom: bool,
}

impl ResourceType {
    /// "v1" for core, "group/version" otherwise.
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    fn verbs(&self) -> Vec<&'static str> {
        if self.review_only {
            vec!["create"]
        } else {
            STORED_VERBS.to_vec()
        }
    }

    /// The resource a CRD object serves for `version`, if the CRD serves that version.
    pub fn from_crd(crd: &Value, version: &str) -> Option<ResourceType> {
        let spec = crd.get("spec")?;
        let names = spec.get("names")?;
        let served = spec.get("versions")?.as_array()?.iter().any(|v| {
            v.get("name").and_then(Value::as_str) == Some(version)
                && v.get("served").and_then(Value::as_bool).unwrap_or(true)
        });
        if !served {
            return None;
        }
        let has_status = spec
            .get("versions")?
            .as_array()?
            .iter()
            .filter(|v| v.get("name").and_then(Value::as_str) == Some(version))
            .any(|v| v.pointer("/subresources/status").is_some());
        let kind = names.get("kind")?.as_str()?.to_string();
        Some(ResourceType {
            group: spec.get("group")?.as_str()?.to_string(),
            version: version.to_string(),
            plural: names.get("plural")?.as_str()?.to_string(),
            singular: names
                .get("singular")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            kind,
            namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
            short_names: super::json::str_list(names, "shortNames"),
            has_status,
            review_only: false,
            custom: true,
        })
    }

    /// Versions a CRD object serves.
    pub fn crd_served_versions(crd: &Value) -> Vec<String> {
        crd.pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
                    .filter_map(|v| v.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One entry of an APIResourceList.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs(),
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        let mut entries = vec![main];
        if self.has_status {
            entries.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

/// "v1" for the core group, "group/version" otherwise.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Splits an apiVersion into (group, version): "v1" -> ("", "v1"), "apps/v1" -> ("apps", "v1").
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// (group, version, plural, kind, namespaced, has_status, short names)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
    &'static [&'static str],
);

const BUILT_IN: &[Row] = &[
    ("", "v1", "namespaces", "Namespace", false, true, &["ns"]),
    (
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        false,
        &["sa"],
    ),
    ("", "v1", "configmaps", "ConfigMap", true, false, &["cm"]),
    ("", "v1", "secrets", "Secret", true, false, &[]),
    ("", "v1", "services", "Service", true, true, &["svc"]),
    ("", "v1", "endpoints", "Endpoints", true, false, &["ep"]),
    ("", "v1", "pods", "Pod", true, true, &["po"]),
    ("", "v1", "events", "Event", true, false, &["ev"]),
    ("", "v1", "nodes", "Node", false, true, &["no"]),
    (
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        true,
        &["pvc"],
    ),
    (
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        true,
        &["pv"],
    ),
    (
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        true,
        &["deploy"],
    ),
    (
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        true,
        &["sts"],
    ),
    ("apps", "v1", "daemonsets", "DaemonSet", true, true, &["ds"]),
    (
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        true,
        &["rs"],
    ),
    ("batch", "v1", "jobs", "Job", true, true, &[]),
    ("batch", "v1", "cronjobs", "CronJob", true, true, &["cj"]),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        false,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        false,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        false,
        &[],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        false,
        &[],
    ),
    (
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
        false,
        &["sc"],
    ),
    (
        "storage.k8s.io",
        "v1",
        "csidrivers",
        "CSIDriver",
        false,
        false,
        &[],
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        true,
        &["crd", "crds"],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        false,
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        false,
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        false,
        true,
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        false,
        false,
        &[],
    ),
    // GA (admissionregistration.k8s.io/v1) in Kubernetes 1.36; `KubeDouble::withdraw_resource`
    // makes the double an older server that does not serve them.
    (
        "admissionregistration.k8s.io",
        "v1",
        "mutatingadmissionpolicies",
        "MutatingAdmissionPolicy",
        false,
        false,
        &[],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "mutatingadmissionpolicybindings",
        "MutatingAdmissionPolicyBinding",
        false,
        false,
        &[],
    ),
    (
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        true,
        &["pdb"],
    ),
    (
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        false,
        &[],
    ),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        false,
        &["netpol"],
    ),
    (
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        true,
        &["ing"],
    ),
    (
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        false,
        &["ev"],
    ),
    (
        "cert-manager.io",
        "v1",
        "issuers",
        "Issuer",
        true,
        true,
        &[],
    ),
    (
        "cert-manager.io",
        "v1",
        "clusterissuers",
        "ClusterIssuer",
        false,
        true,
        &[],
    ),
    (
        "cert-manager.io",
        "v1",
        "certificates",
        "Certificate",
        true,
        true,
        &["cert", "certs"],
    ),
];

/// Groups in the built-in table that a real cluster serves from CRDs (cert-manager is
/// assumed installed): they behave as custom resources.
const CUSTOM_GROUPS: &[&str] = &["cert-manager.io"];

/// Review resources: POST evaluates, nothing is stored.
const REVIEWS: &[(&str, &str, &str, bool)] = &[
    (
        "authorization.k8s.io",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
    ),
    (
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
    ),
    (
        "authorization.k8s.io",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
    ),
    (
        "authentication.k8s.io",
        "tokenreviews",
        "TokenReview",
        false,
    ),
    (
        "authentication.k8s.io",
        "selfsubjectreviews",
        "SelfSubjectReview",
        false,
    ),
];

/// Every built-in resource the double serves.
pub fn built_in() -> Vec<ResourceType> {
    let stored = BUILT_IN.iter().map(
        |&(group, version, plural, kind, namespaced, has_status, short)| ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            kind: kind.to_string(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            has_status,
            review_only: false,
            custom: CUSTOM_GROUPS.contains(&group),
        },
    );
    let reviews = REVIEWS
        .iter()
        .map(|&(group, plural, kind, namespaced)| ResourceType {
            group: group.to_string(),
            version: "v1".to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            kind: kind.to_string(),
            namespaced,
            short_names: Vec::new(),
            has_status: false,
            review_only: true,
            custom: false,
        });
    stored.chain(reviews).collect()
}

/// Resources served in `group`/`version`, built-in and from CRDs.
pub fn resources_in(table: &[ResourceType], group: &str, version: &str) -> Vec<ResourceType> {
    table
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .cloned()
        .collect()
}

/// `(group, [versions])` in first-seen order, for `/apis`.
pub fn groups(table: &[ResourceType]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in table.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version.clone());
                }
            }
            None => out.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    out
}

/// An `APIGroup` discovery object.
pub fn api_group_json(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": versions,
        "preferredVersion": preferred,
    })
}

/// An `APIResourceList` for one group/version.
pub fn api_resource_list_json(group: &str, version: &str, resources: &[ResourceType]) -> Value {
    let entries: Vec<Value> = resources
        .iter()
        .flat_map(ResourceType::discovery_entries)
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version(group, version),
        "resources": entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_required_resources_once_per_group() {
        let table = built_in();
        for (group, plural) in [
            ("", "namespaces"),
            ("", "serviceaccounts"),
            ("apps", "deployments"),
            ("batch", "cronjobs"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("storage.k8s.io", "csidrivers"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            ),
            ("policy", "poddisruptionbudgets"),
            (
                "admissionregistration.k8s.io",
                "validatingadmissionpolicies",
            ),
            (
                "admissionregistration.k8s.io",
                "mutatingadmissionpolicybindings",
            ),
            ("coordination.k8s.io", "leases"),
            ("cert-manager.io", "certificates"),
        ] {
            let n = table
                .iter()
                .filter(|r| r.group == group && r.plural == plural)
                .count();
            assert_eq!(n, 1, "{group}/{plural}");
        }
    }

    #[test]
    fn crd_adds_a_resource_for_served_versions_only() {
        let crd = json!({
            "spec": {
                "group": "sagemaker.aws.amazon.com",
                "scope": "Namespaced",
                "names": {"plural": "trainingjobs", "kind": "TrainingJob", "singular": "trainingjob"},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                    {"name": "v0", "served": false, "storage": false}
                ]
            }
        });
        let r = ResourceType::from_crd(&crd, "v1").unwrap();
        assert_eq!(r.kind, "TrainingJob");
        assert!(r.namespaced && r.has_status);
        assert!(ResourceType::from_crd(&crd, "v0").is_none());
        assert_eq!(ResourceType::crd_served_versions(&crd), vec!["v1"]);
    }

    #[test]
    fn api_version_round_trips() {
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(api_version("", "v1"), "v1");
        assert_eq!(api_version("batch", "v1"), "batch/v1");
    }
}
