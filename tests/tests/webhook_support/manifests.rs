//! Loads manifests/ into k8s-openapi types, refusing fields the types do not know.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn manifests_dir() -> PathBuf {
    super::workspace_root().join("manifests")
}

/// One YAML document of one manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: String,
    pub value: Value,
}

impl Document {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// Every `*.yaml` / `*.yml` file in `dir` (what `kubectl apply -f dir` reads), sorted.
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
        })
        .collect();
    files.sort();
    files
}

/// Parses multi-document YAML into JSON values, skipping empty documents.
pub fn parse_documents(file: &str, text: &str) -> Vec<Document> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{file}: not valid YAML: {e}"));
            value
        })
        .filter(|v| !v.is_null())
        .map(|value| Document {
            file: file.to_owned(),
            value,
        })
        .collect()
}

pub fn load_documents(dir: &Path) -> Vec<Document> {
    manifest_files(dir)
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            parse_documents(&file, &text)
        })
        .collect()
}

/// Paths present in `original` but missing from `typed` (the value re-serialized from the
/// k8s-openapi type): fields the type silently dropped, i.e. unknown or misspelled fields.
pub fn unknown_fields(original: &Value, typed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_unknown("", original, typed, &mut out);
    out
}

fn collect_unknown(path: &str, original: &Value, typed: &Value, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (key, value) in o {
                let child = format!("{path}.{key}");
                match t.get(key) {
                    Some(tv) => collect_unknown(&child, value, tv, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, value) in o.iter().enumerate() {
                let child = format!("{path}[{i}]");
                match t.get(i) {
                    Some(tv) => collect_unknown(&child, value, tv, out),
                    None => out.push(child),
                }
            }
        }
        _ => {}
    }
}

/// Deserializes into `T` and fails on any field `T` does not know.
pub fn strict<T>(doc: &Document) -> T
where
    T: DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_value(doc.value.clone()).unwrap_or_else(|e| {
        panic!(
            "{}: {} {} does not parse as {}: {e}",
            doc.file,
            doc.kind(),
            doc.name(),
            std::any::type_name::<T>()
        )
    });
    let back = serde_json::to_value(&typed).unwrap();
    let unknown = unknown_fields(&doc.value, &back);
    assert!(
        unknown.is_empty(),
        "{}: {} {} has fields {} does not know: {unknown:?}",
        doc.file,
        doc.kind(),
        doc.name(),
        std::any::type_name::<T>()
    );
    typed
}

/// Every object in manifests/, typed. Exactly one of each kind.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub namespace: Namespace,
    pub service_account: ServiceAccount,
    pub cluster_role: ClusterRole,
    pub cluster_role_binding: ClusterRoleBinding,
    pub deployment: Deployment,
    pub pod_disruption_budget: PodDisruptionBudget,
    pub service: Service,
    pub mutating: MutatingWebhookConfiguration,
    pub validating: ValidatingWebhookConfiguration,
}

impl Manifests {
    pub fn load() -> Self {
        Self::from_documents(&load_documents(&manifests_dir()))
    }

    pub fn from_documents(docs: &[Document]) -> Self {
        let mut by_kind: BTreeMap<String, Vec<&Document>> = BTreeMap::new();
        for doc in docs {
            let key = format!(
                "{}/{}",
                doc.value["apiVersion"].as_str().unwrap_or_default(),
                doc.kind()
            );
            by_kind.entry(key).or_default().push(doc);
        }
        let mut one = |key: &str| -> Document {
            let docs = by_kind
                .remove(key)
                .unwrap_or_else(|| panic!("manifests/ has no {key}"));
            assert_eq!(docs.len(), 1, "manifests/ has {} {key}", docs.len());
            docs[0].clone()
        };
        let manifests = Self {
            namespace: strict(&one("v1/Namespace")),
            service_account: strict(&one("v1/ServiceAccount")),
            cluster_role: strict(&one("rbac.authorization.k8s.io/v1/ClusterRole")),
            cluster_role_binding: strict(&one("rbac.authorization.k8s.io/v1/ClusterRoleBinding")),
            deployment: strict(&one("apps/v1/Deployment")),
            pod_disruption_budget: strict(&one("policy/v1/PodDisruptionBudget")),
            service: strict(&one("v1/Service")),
            mutating: strict(&one(
                "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration",
            )),
            validating: strict(&one(
                "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration",
            )),
        };
        assert!(
            by_kind.is_empty(),
            "manifests/ has objects no test checks: {:?}",
            by_kind.keys().collect::<Vec<_>>()
        );
        manifests
    }
}
