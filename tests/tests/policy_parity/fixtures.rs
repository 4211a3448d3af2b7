//! The inputs: the real AdmissionReviews, the webhook's golden fixtures and the webhook
//! configurations in `manifests/`.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The AdmissionReviews kube-apiserver v1.36.2 sent (the webhook's copy, else shared/'s).
pub(crate) fn real_reviews() -> Vec<(String, Value)> {
    let root = workspace_root();
    let copy = root.join("webhook/tests/fixtures/real-reviews");
    let dir = if copy.is_dir() {
        copy
    } else {
        root.join("../shared/apiserver-conformance/admission-reviews")
    };
    let reviews: Vec<_> = json_files(&dir)
        .iter()
        .map(|p| (format!("real/{}", file_name(p)), read_json(p)))
        .collect();
    assert_eq!(
        reviews.len(),
        26,
        "real AdmissionReviews in {}",
        dir.display()
    );
    reviews
}

/// The webhook's golden fixtures of one endpoint: (name, namespaces of its cluster, review).
pub(crate) fn webhook_fixtures(endpoint: &str) -> Vec<(String, Vec<Value>, Value)> {
    let dir = workspace_root()
        .join("webhook/tests/fixtures")
        .join(endpoint);
    json_files(&dir)
        .iter()
        .map(|p| {
            let f = read_json(p);
            let namespaces = f["cluster"]["namespaces"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (
                format!("{endpoint}/{}", file_name(p)),
                namespaces,
                f["review"].clone(),
            )
        })
        .collect()
}

fn manifest(name: &str) -> Value {
    let path = workspace_root().join("manifests").join(name);
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The validating webhook, as `manifests/` configures it.
pub(crate) static VALIDATING_WEBHOOK: LazyLock<Value> = LazyLock::new(|| {
    webhook_config(
        "07-validatingwebhookconfiguration.yaml",
        "workloads.validate.mlplatform.io",
    )
});
/// The ServiceAccount mutating webhook, as `manifests/` configures it.
pub(crate) static SERVICE_ACCOUNT_WEBHOOK: LazyLock<Value> = LazyLock::new(|| {
    webhook_config(
        "06-mutatingwebhookconfiguration.yaml",
        "serviceaccounts.mutate.mlplatform.io",
    )
});

/// One webhook of a webhook configuration in `manifests/`.
fn webhook_config(file: &str, webhook: &str) -> Value {
    manifest(file)["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == webhook)
        .unwrap_or_else(|| panic!("{file} has no webhook {webhook}"))
        .clone()
}
