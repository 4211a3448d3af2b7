//! Real kubectl against the double (discovery, tables, JSON), and the `kube-double` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mlplatform_testkit::KubeDouble;
use serde_json::{Value, json};

const EKS_CONTEXT: &str = "arn:aws:eks:us-east-1:123456789012:cluster/demo";

async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("kubectl must be on PATH (Debian package kubectl; .ci/run installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_reads_through_discovery() {
    let double = KubeDouble::start().await;
    double.apply_fixture(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-team"}}),
    );
    double.apply_fixture(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ml-team"}, "spec": {"replicas": 1}}));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    double.write_kubeconfig(&kubeconfig, EKS_CONTEXT).unwrap();

    let (ok, stdout, stderr) = kubectl(&kubeconfig, &["config", "current-context"]).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), EKS_CONTEXT);

    let (ok, stdout, stderr) = kubectl(&kubeconfig, &["get", "ns"]).await;
    assert!(ok, "{stderr}");
    let header = stdout.lines().next().unwrap_or("");
    assert!(
        header.starts_with("NAME") && header.contains("STATUS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ml-team") && stdout.contains("kube-system"),
        "{stdout}"
    );

    let (ok, stdout, stderr) = kubectl(&kubeconfig, &["get", "deploy", "-A", "-o", "json"]).await;
    assert!(ok, "{stderr}");
    let list: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "web");

    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &["api-resources", "--api-group=cert-manager.io", "-o", "name"],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("certificates.cert-manager.io"), "{stdout}");

    let (ok, _, stderr) = kubectl(
        &kubeconfig,
        &["delete", "deployment", "web", "-n", "ml-team"],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        double
            .object("apps/v1", "Deployment", Some("ml-team"), "web")
            .is_none()
    );
    // Impersonation: discovery stays open, RBAC decides the rest (nobody is bound here).
    let (ok, _, stderr) = kubectl(&kubeconfig, &["--as", "nobody", "get", "ns"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("namespaces is forbidden: User \"nobody\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"),
        "{stderr}"
    );
    let (ok, _, stderr) = kubectl(&kubeconfig, &["get", "ns", "nope"]).await;
    assert!(!ok);
    assert!(stderr.contains("namespaces \"nope\" not found"), "{stderr}");
}

/// kubectl writes built-in objects in protobuf (unsupported here), but server-side apply
/// sends YAML: `kubectl apply --server-side` works, with field ownership like the apiserver.
#[tokio::test]
async fn kubectl_server_side_apply_writes_and_reconciles() {
    let double = KubeDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    double.write_kubeconfig(&kubeconfig, EKS_CONTEXT).unwrap();
    let manifest = dir.path().join("cm.yaml");
    let write = |labels: &str| {
        std::fs::write(
            &manifest,
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\n  labels: {{{labels}}}\ndata: {{a: \"1\"}}\n"),
        )
        .unwrap();
    };
    let path = manifest.to_str().unwrap().to_string();
    write("team: ml, old: x");
    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &["apply", "--server-side", "--validate=false", "-f", &path],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("configmap/applied serverside-applied"),
        "{stdout}"
    );
    write("team: ml");
    let (ok, _, stderr) = kubectl(
        &kubeconfig,
        &["apply", "--server-side", "--validate=false", "-f", &path],
    )
    .await;
    assert!(ok, "{stderr}");
    let stored = double
        .object("v1", "ConfigMap", Some("default"), "applied")
        .unwrap();
    assert_eq!(
        stored["metadata"]["labels"],
        json!({"team": "ml"}),
        "the dropped label is removed"
    );
    let applies: Vec<_> = double
        .mutating_requests()
        .into_iter()
        .filter(|r| r.content_type.as_deref() == Some("application/apply-patch+yaml"))
        .collect();
    assert_eq!(applies.len(), 2);
    assert_eq!(
        applies[0].query_param("fieldManager").as_deref(),
        Some("kubectl")
    );
}

#[tokio::test]
async fn binary_serves_fixtures_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let fixtures = dir.path().join("fixtures.yaml");
    std::fs::write(
        &fixtures,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: aws-auth, namespace: kube-system}\ndata: {mapRoles: \"[]\"}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: ml}\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-double"))
        .args(["--listen", "127.0.0.1:0", "--context", EKS_CONTEXT])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .arg("--fixtures")
        .arg(&fixtures)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "aws-auth",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.data.mapRoles}",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "[]");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "kube-double exits cleanly on SIGTERM: {status:?}"
    );
}

#[test]
fn binary_rejects_broken_fixtures_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("broken.yaml");
    std::fs::write(&fixtures, "kind: ConfigMap\nmetadata: {name: x}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kube-double"))
        .arg("--fixtures")
        .arg(&fixtures)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs apiVersion, kind and metadata.name"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no URL printed for a double that never started serving"
    );
}
