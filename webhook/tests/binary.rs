//! The built `mlplatform-webhook` binary: flags, startup log line, readiness against the
//! Kubernetes API test double, a real /mutate over HTTPS, SIGTERM, and bad flags.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{Pki, client_config, pod_review, tls_connect};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use mlplatform_testkit::kube_double::KubeDouble;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_mlplatform-webhook");

/// The socket address at the start of `text` (the log line may go on with `"` in JSON).
fn leading_addr(text: &str) -> Option<SocketAddr> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
        .unwrap_or(text.len());
    text[..end].parse().ok()
}

/// The child's stderr lines so far.
type Logs = Arc<Mutex<Vec<String>>>;

/// Reads stderr until both "listening on" lines appeared; keeps draining it afterwards,
/// collecting every line in the returned [`Logs`].
async fn bound_addresses(child: &mut Child) -> (SocketAddr, SocketAddr, Logs) {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let logs = Logs::default();
    let (mut tls, mut health) = (None, None);
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("webhook: {line}");
            logs.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("health listening on http://").nth(1) {
                health = leading_addr(rest);
            } else if let Some(rest) = line.split("listening on https://").nth(1) {
                tls = leading_addr(rest);
            }
            if tls.is_some() && health.is_some() {
                break;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no listening lines within 30s");
    let collected = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("webhook: {line}");
            collected.lock().unwrap().push(line);
        }
    });
    (
        tls.expect("https address"),
        health.expect("health address"),
        logs,
    )
}

/// Status code and body of a plain-HTTP GET.
async fn http_get_text(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

async fn http_get(addr: SocketAddr, path: &str) -> Option<u16> {
    http_get_text(addr, path).await.map(|(status, _)| status)
}

/// POSTs `review` to `path` over HTTPS (trusting `ca`) and returns the parsed answer.
async fn post_review_https(
    addr: SocketAddr,
    ca: &rustls_pki_types::CertificateDer<'static>,
    path: &str,
    review: &Value,
) -> Value {
    let stream = tls_connect(
        addr,
        client_config(&[ca], rustls::DEFAULT_VERSIONS, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(review).unwrap())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_mutate_over_https_and_exits_0_on_sigterm() {
    let double = KubeDouble::start().await;
    double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "ml-team", "labels": {"mlplatform.io/managed": "true"},
                     "annotations": {"mlplatform.io/user-service-account": "ml-user"}}
    }));
    double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "ml-user", "namespace": "ml-team",
                     "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/ml"}}
    }));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    double.write_kubeconfig(&kubeconfig, "double").unwrap();
    let pki = Pki::new("ca");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    pki.write(&cert, &key);

    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"])
        .arg("--tls-cert-file")
        .arg(&cert)
        .env("MLPLATFORM_WEBHOOK_TLS_KEY_FILE", &key)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--aws-region", "eu-west-1", "--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tls_addr, health_addr, _) = bound_addresses(&mut child).await;

    let mut ready = false;
    for _ in 0..200 {
        if http_get(health_addr, "/readyz").await == Some(200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "/readyz never turned 200");
    assert_eq!(http_get(health_addr, "/healthz").await, Some(200));

    let stream = tls_connect(
        tls_addr,
        client_config(&[&pki.ca_der], rustls::DEFAULT_VERSIONS, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = Bytes::from(serde_json::to_vec(&pod_review("bin-1", "ml-team", "ml-user")).unwrap());
    let request = Request::post("/mutate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let review: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(review["response"]["uid"], "bin-1");
    assert_eq!(review["response"]["patchType"], "JSONPatch");

    // A request whose body is half sent when SIGTERM arrives is still answered.
    let stream = tls_connect(
        tls_addr,
        client_config(&[&pki.ca_der], rustls::DEFAULT_VERSIONS, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (chunks_tx, mut chunks_rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(2);
    let body = http_body_util::StreamBody::new(futures::stream::poll_fn(move |cx| {
        chunks_rx.poll_recv(cx)
    }));
    let request = Request::post("/mutate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let in_flight = tokio::spawn(async move { sender.send_request(request).await });
    let review = serde_json::to_vec(&pod_review("draining", "ml-team", "ml-user")).unwrap();
    let (first, rest) = review.split_at(review.len() / 2);
    chunks_tx
        .send(Ok(hyper::body::Frame::data(Bytes::copy_from_slice(first))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    chunks_tx
        .send(Ok(hyper::body::Frame::data(Bytes::copy_from_slice(rest))))
        .await
        .unwrap();
    drop(chunks_tx);
    let response = in_flight
        .await
        .unwrap()
        .expect("in-flight request failed during shutdown");
    assert_eq!(response.status(), 200);
    let review: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(review["response"]["uid"], "draining");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("did not exit within 20s of SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// A mis-registered rule sends /mutate a kind it does not handle: over the real HTTPS
/// endpoint it is admitted unchanged with a warning (never blocked), counted in
/// `mlplatform_webhook_unhandled_kind_total` at /metrics, and logged once, not per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_admits_kinds_mutate_does_not_handle_with_a_warning_a_metric_and_one_log_line() {
    let double = KubeDouble::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    double.write_kubeconfig(&kubeconfig, "double").unwrap();
    let pki = Pki::new("ca");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    pki.write(&cert, &key);
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tls_addr, health_addr, logs) = bound_addresses(&mut child).await;

    let review = |uid: &str, group: &str, kind: &str| {
        let mut review = pod_review(uid, "ml-team", "ml-user");
        review["request"]["kind"] = json!({"group": group, "version": "v1", "kind": kind});
        review["request"]["object"] =
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}});
        review
    };
    for uid in ["cm-1", "cm-2"] {
        let out = post_review_https(
            tls_addr,
            &pki.ca_der,
            "/mutate",
            &review(uid, "", "ConfigMap"),
        )
        .await;
        let response = &out["response"];
        assert_eq!(response["uid"], uid);
        assert_eq!(response["allowed"], true, "{out}");
        assert!(response.get("patch").is_none(), "{out}");
        assert!(response.get("status").is_none(), "{out}");
        let warning = response["warnings"][0].as_str().unwrap_or_default();
        assert!(
            warning.contains("\"ConfigMap\"") && warning.contains("MutatingWebhookConfiguration"),
            "{out}"
        );
    }
    // Workloads sent by a rule list shared with /validate are expected: no warning, not counted.
    let out = post_review_https(
        tls_addr,
        &pki.ca_der,
        "/mutate",
        &review("d-1", "apps", "Deployment"),
    )
    .await;
    assert_eq!(out["response"]["allowed"], true, "{out}");
    assert!(out["response"].get("warnings").is_none(), "{out}");

    let (status, metrics) = http_get_text(health_addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"mlplatform_webhook_unhandled_kind_total{endpoint="mutate",group="",kind="ConfigMap"} 2"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"kind="Deployment""#), "{metrics}");
    assert!(
        metrics
            .contains(r#"mlplatform_webhook_requests_total{endpoint="mutate",outcome="warned"} 2"#),
        "{metrics}"
    );
    // Both answers came back, so both requests were logged (or not) already; stderr is read
    // asynchronously, so wait for the first line, then a little for any second one.
    let logged = || {
        logs.lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains("does not handle") && line.contains("ConfigMap"))
            .count()
    };
    for _ in 0..100 {
        if logged() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(logged(), 1, "{:#?}", logs.lock().unwrap());
}

#[tokio::test]
async fn missing_certificate_file_is_one_clear_line_and_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.crt");
    let output = Command::new(BIN)
        .arg("--tls-cert-file")
        .arg(&missing)
        .arg("--tls-key-file")
        .arg(dir.path().join("nope.key"))
        .args(["--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("--tls-cert-file") && lines[0].contains("nope.crt"),
        "{stderr}"
    );
}

#[tokio::test]
async fn certificate_and_key_that_do_not_match_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (Pki::new("a"), Pki::new("b"));
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &one.leaf_pem).unwrap();
    std::fs::write(&key, &two.key_pem).unwrap();
    let output = Command::new(BIN)
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("do not form a usable pair"), "{stderr}");
}
