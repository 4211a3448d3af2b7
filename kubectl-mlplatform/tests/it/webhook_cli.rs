//! `kubectl mlplatform webhook install|uninstall|status` through the real binary against the
//! kube double. The double calls webhooks over TLS and checks the serving certificate against
//! the configuration's caBundle, so a tiny TLS responder serving the installed Secret's
//! certificate shows the generated TLS is right end to end.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use mlplatform_namespace_policy::{MANAGED_LABEL, MANAGED_VALUE, USER_SERVICE_ACCOUNT_ANNOTATION};
use mlplatform_testkit::KubeDouble;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mlplatform");
const NS: &str = "mlplatform-system";

struct Env {
    double: KubeDouble,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

impl Env {
    async fn new() -> Env {
        let double = KubeDouble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        double.write_kubeconfig(&kubeconfig, "test").unwrap();
        Env {
            double,
            _dir: dir,
            kubeconfig,
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        let out = tokio::process::Command::new(BIN)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn object(&self, api: &str, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        self.double.object(api, kind, ns, name)
    }

    fn secret_data(&self, name: &str, key: &str) -> Vec<u8> {
        let secret = self.object("v1", "Secret", Some(NS), name).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap()
    }

    fn configuration(&self, kind: &str) -> Value {
        self.object(
            "admissionregistration.k8s.io/v1",
            kind,
            None,
            "mlplatform-webhook",
        )
        .unwrap_or_else(|| panic!("{kind} not installed"))
    }

    /// What a Deployment controller would write once the pods are up.
    fn mark_ready(&self) {
        let mut deployment = self
            .object("apps/v1", "Deployment", Some(NS), "mlplatform-webhook")
            .unwrap();
        let replicas = deployment["spec"]["replicas"].clone();
        deployment["status"] = json!({"replicas": replicas, "readyReplicas": replicas});
        self.double.apply_fixture(deployment);
    }

    fn managed_namespace(&self, name: &str) {
        self.double.apply_fixture(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name,
                         "labels": {MANAGED_LABEL: MANAGED_VALUE},
                         "annotations": {USER_SERVICE_ACCOUNT_ANNOTATION: "user"}},
        }));
        self.double.apply_fixture(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "user", "namespace": name},
        }));
    }
}

const INSTALL: [&str; 3] = ["webhook", "install", "--wait=false"];

#[tokio::test]
async fn client_dry_run_renders_everything_and_writes_nothing() {
    let env = Env::new().await;
    let run = env
        .run(&[
            "webhook",
            "install",
            "--dry-run=client",
            "-o",
            "yaml",
            "--replicas",
            "3",
        ])
        .await
        .ok();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&run.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for kind in [
        "Namespace",
        "Secret",
        "ServiceAccount",
        "ClusterRole",
        "Deployment",
        "Service",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        assert!(kinds.contains(&kind), "{kind} not rendered: {kinds:?}");
    }
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    for d in docs
        .iter()
        .filter(|d| d["kind"].as_str().unwrap().ends_with("Configuration"))
    {
        for hook in d["webhooks"].as_array().unwrap() {
            let bundle = hook["clientConfig"]["caBundle"].as_str().unwrap();
            let pem = base64::engine::general_purpose::STANDARD
                .decode(bundle)
                .unwrap();
            assert!(
                String::from_utf8(pem)
                    .unwrap()
                    .contains("BEGIN CERTIFICATE")
            );
        }
    }
    assert!(
        env.double.mutating_requests().is_empty(),
        "client dry run wrote"
    );

    // JSON: one List document.
    let run = env
        .run(&["webhook", "install", "--dry-run=client", "-o", "json"])
        .await
        .ok();
    let list = run.json();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), docs.len());
    assert!(env.object("v1", "Namespace", None, NS).is_none());

    // Server dry run: the API server sees every write (dryRun=All) and stores none.
    let server = env
        .run(&["webhook", "install", "--dry-run=server", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(server["dryRun"], "server");
    assert!(
        server["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "created"),
        "{server}"
    );
    let writes = env.double.mutating_requests();
    assert!(
        !writes.is_empty() && writes.iter().all(|r| r.is_dry_run()),
        "{writes:?}"
    );
    assert!(env.object("v1", "Namespace", None, NS).is_none());
}

#[tokio::test]
async fn install_applies_flags_and_ca_bundle_and_rerun_changes_nothing() {
    let env = Env::new().await;
    let first = env
        .run(&[
            "webhook",
            "install",
            "--wait=false",
            "--image",
            "ghcr.io/example/mlplatform-webhook:v9.9.9",
            "--replicas",
            "3",
            "--failure-policy",
            "ignore",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(first["certificates"]["action"], "generated");
    assert!(
        first["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "created"),
        "{first}"
    );
    let deployment = env
        .object("apps/v1", "Deployment", Some(NS), "mlplatform-webhook")
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert!(
        containers
            .iter()
            .any(|c| c["image"] == "ghcr.io/example/mlplatform-webhook:v9.9.9"),
        "{containers:?}"
    );
    let ca = env.secret_data("mlplatform-webhook-ca", "ca.crt");
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        for hook in env.configuration(kind)["webhooks"].as_array().unwrap() {
            assert_eq!(hook["failurePolicy"], "Ignore");
            let bundle = base64::engine::general_purpose::STANDARD
                .decode(hook["clientConfig"]["caBundle"].as_str().unwrap())
                .unwrap();
            assert_eq!(bundle, ca, "{kind}: caBundle is not the CA in the Secret");
        }
    }

    env.double.clear_requests();
    let again = env
        .run(&[
            "webhook",
            "install",
            "--wait=false",
            "--image",
            "ghcr.io/example/mlplatform-webhook:v9.9.9",
            "--replicas",
            "3",
            "--failure-policy",
            "ignore",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(again["certificates"]["action"], "kept");
    assert!(
        again["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "unchanged"),
        "{again}"
    );
    assert!(env.double.mutating_requests().is_empty(), "a re-run wrote");

    // Table output names the certificate's expiry.
    let table = env.run(&INSTALL).await.ok();
    assert!(
        table.stdout.contains("certificates: kept"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("valid until 20"), "{}", table.stdout);
}

#[tokio::test]
async fn bad_flags_get_one_line_and_exit_2_before_touching_the_cluster() {
    let env = Env::new().await;
    for (args, needle) in [
        (vec!["webhook", "install", "--replicas", "0"], "--replicas"),
        (
            vec!["webhook", "install", "--image", "bad image"],
            "--image",
        ),
        (
            vec!["webhook", "install", "--failure-policy", "sometimes"],
            "sometimes",
        ),
        (vec!["webhook", "install", "--timeout", "soon"], "soon"),
    ] {
        let run = env.run(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    assert!(env.double.mutating_requests().is_empty());
}

/// Answers every AdmissionReview with `allowed: true`, over TLS with the given certificate.
async fn admission_responder(cert_pem: Vec<u8>, key_pem: Vec<u8>) -> SocketAddr {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let body = loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break buf[end + 4..end + 4 + length].to_vec();
                    }
                };
                let review: Value = serde_json::from_slice(&body).unwrap_or_default();
                let response = json!({
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": review["request"]["uid"], "allowed": true},
                })
                .to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{response}",
                    response.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_each_problem_then_healthy_once_reachable() {
    let env = Env::new().await;

    // Nothing installed: every check fails, exit 1, one line naming the fix.
    let run = env.run(&["webhook", "status", "-o", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["healthy"], false);
    assert!(
        run.stderr.contains("kubectl mlplatform webhook install"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

    env.run(&INSTALL).await.ok();
    env.managed_namespace("team");
    // Installed, but no pod is ready and the Service leads nowhere.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    env.double.route_service(NS, "mlplatform-webhook", nowhere);
    let run = env.run(&["webhook", "status", "-o", "json"]).await;
    assert_eq!(run.code, 1);
    let checks = run.json()["checks"].clone();
    let state = |i: usize| checks[i]["state"].as_str().unwrap().to_owned();
    assert_eq!(state(0), "fail", "deployment not ready: {checks}");
    assert_eq!(state(1), "pass");
    assert_eq!(state(2), "pass");
    assert_eq!(state(3), "pass", "fresh certificate: {checks}");
    assert!(
        checks[3]["detail"].as_str().unwrap().contains("in 36"),
        "{checks}"
    );
    assert_eq!(state(4), "fail", "unreachable: {checks}");

    // The expiry comes from the certificate itself, not from an annotation that can drift
    // (cert-manager's Secrets carry none).
    let mut secret = env
        .object("v1", "Secret", Some(NS), "mlplatform-webhook-tls")
        .unwrap();
    secret["metadata"]["annotations"] = json!({});
    env.double.apply_fixture(secret);

    // A ready Deployment and a webhook serving the installed certificate: healthy.
    env.mark_ready();
    let addr = admission_responder(
        env.secret_data("mlplatform-webhook-tls", "tls.crt"),
        env.secret_data("mlplatform-webhook-tls", "tls.key"),
    )
    .await;
    env.double.route_service(NS, "mlplatform-webhook", addr);
    let run = env.run(&["webhook", "status"]).await;
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.contains("dry-run pod in team"), "{}", run.stdout);
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
    assert!(run.stdout.contains("(in 36"), "{}", run.stdout);
    assert!(
        env.object("v1", "Pod", Some("team"), "mlplatform-webhook-probe-")
            .is_none(),
        "the probe is a dry run"
    );
}

#[tokio::test]
async fn install_waits_for_ready_pods_before_registering_configurations() {
    let env = Env::new().await;
    let run = env.run(&["webhook", "install", "--timeout", "1s"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("did not become ready"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        env.object("apps/v1", "Deployment", Some(NS), "mlplatform-webhook")
            .is_some()
    );
    assert!(
        env.object(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            None,
            "mlplatform-webhook"
        )
        .is_none(),
        "registered before anything could answer"
    );
    env.mark_ready();
    env.run(&["webhook", "install", "--timeout", "30s"])
        .await
        .ok();
    env.configuration("ValidatingWebhookConfiguration");
}

#[tokio::test]
async fn uninstall_removes_everything_and_is_idempotent() {
    let env = Env::new().await;
    env.run(&INSTALL).await.ok();
    env.double.clear_requests();
    let client_dry = env
        .run(&["webhook", "uninstall", "--dry-run=client"])
        .await
        .ok();
    assert!(
        client_dry.stdout.contains("Namespace mlplatform-system")
            && client_dry.stdout.contains("deleted (dry run)"),
        "{}",
        client_dry.stdout
    );
    assert!(
        env.double.requests().is_empty(),
        "client dry run reached the cluster"
    );
    let server_dry = env
        .run(&["webhook", "uninstall", "--dry-run=server", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(
        server_dry["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "deleted")
    );
    assert!(
        env.object("v1", "Namespace", None, NS).is_some(),
        "server dry run deleted"
    );

    let removed = env
        .run(&["webhook", "uninstall", "-o", "json"])
        .await
        .ok()
        .json();
    let objects = removed["objects"].as_array().unwrap();
    assert!(
        objects[0]["object"]
            .as_str()
            .unwrap()
            .ends_with("WebhookConfiguration mlplatform-webhook")
    );
    assert!(
        objects.iter().all(|o| o["result"] == "deleted"),
        "{removed}"
    );
    assert!(
        env.object("v1", "Secret", Some(NS), "mlplatform-webhook-tls")
            .is_none()
    );
    let again = env
        .run(&["webhook", "uninstall", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(
        again["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "absent")
    );
}

#[tokio::test]
async fn cert_manager_mode_creates_certificates_and_uses_its_injector() {
    let env = Env::new().await;
    // The double serves cert-manager.io/v1 (Issuer, Certificate), as a cluster with
    // cert-manager does.
    let report = env
        .run(&[
            "webhook",
            "install",
            "--wait=false",
            "--cert-manager",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(report["certificates"]["action"], "cert-manager");
    let certificate = env
        .object(
            "cert-manager.io/v1",
            "Certificate",
            Some(NS),
            "mlplatform-webhook-tls",
        )
        .expect("serving Certificate");
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "mlplatform-webhook.mlplatform-system.svc"),
        "{certificate}"
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = env.configuration(kind);
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "mlplatform-system/mlplatform-webhook-tls"
        );
    }
    assert!(
        env.object("v1", "Secret", Some(NS), "mlplatform-webhook-ca")
            .is_none(),
        "cert-manager makes the Secrets, not the plugin"
    );
}
