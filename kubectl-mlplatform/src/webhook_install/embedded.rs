//! manifests/, embedded at build time so the plugin and the manifests never drift.
use serde_json::Value;

use super::model::InstallError;

/// The files of manifests/ in apply order (the same order as manifests/Kustomization).
pub(crate) const MANIFEST_FILES: &[(&str, &str)] = &[
    (
        "00-namespace.yaml",
        include_str!("../../../manifests/00-namespace.yaml"),
    ),
    (
        "01-serviceaccount.yaml",
        include_str!("../../../manifests/01-serviceaccount.yaml"),
    ),
    (
        "02-rbac.yaml",
        include_str!("../../../manifests/02-rbac.yaml"),
    ),
    (
        "03-deployment.yaml",
        include_str!("../../../manifests/03-deployment.yaml"),
    ),
    (
        "04-poddisruptionbudget.yaml",
        include_str!("../../../manifests/04-poddisruptionbudget.yaml"),
    ),
    (
        "05-service.yaml",
        include_str!("../../../manifests/05-service.yaml"),
    ),
    (
        "06-mutatingwebhookconfiguration.yaml",
        include_str!("../../../manifests/06-mutatingwebhookconfiguration.yaml"),
    ),
    (
        "07-validatingwebhookconfiguration.yaml",
        include_str!("../../../manifests/07-validatingwebhookconfiguration.yaml"),
    ),
];

/// Every object in the embedded manifests, in apply order.
pub(crate) fn objects() -> Result<Vec<Value>, InstallError> {
    let mut out = Vec::new();
    for (file, text) in MANIFEST_FILES {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let value: Value = serde::Deserialize::deserialize(document).map_err(|e| {
                InstallError::EmbeddedManifest {
                    file,
                    message: e.to_string(),
                }
            })?;
            if !value.is_null() {
                out.push(value);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_every_manifest_file() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = MANIFEST_FILES.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            embedded, on_disk,
            "add new manifests/ files to MANIFEST_FILES"
        );
        let kinds: Vec<String> = objects()
            .unwrap()
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Deployment",
                "PodDisruptionBudget",
                "Service",
                "MutatingWebhookConfiguration",
                "ValidatingWebhookConfiguration"
            ]
        );
    }

    #[test]
    fn the_default_image_is_this_release() {
        // `webhook install` without --image deploys the webhook of the plugin's own version.
        let deployment = objects()
            .unwrap()
            .into_iter()
            .find(|o| o["kind"] == "Deployment")
            .unwrap();
        let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned();
        let tag = format!(":v{}", env!("CARGO_PKG_VERSION"));
        assert!(image.ends_with(&tag), "{image} should end with {tag}");
    }
}
