//! `moto_server` (PyPI `moto[server]`) for AWS tests through the real AWS SDK.
//!
//! What moto 5 (5.2.1 checked) answers, as our tests rely on it:
//! - **Routing**: one port serves every service; moto picks the service from the SigV4
//!   credential scope in `Authorization` (`.../us-east-1/eks/aws4_request`). Signatures are
//!   not checked, so any dummy keys work. A request without that header lands in S3.
//! - **STS GetCallerIdentity**: account `123456789012` ([`MOTO_ACCOUNT_ID`]), ARN
//!   `arn:aws:sts::123456789012:user/moto`, whatever the access key.
//! - **EKS CreateCluster / DescribeCluster** (REST, `POST /clusters`, `GET /clusters/NAME`):
//!   `arn` is `arn:aws:eks:REGION:123456789012:cluster/NAME`, `status` ACTIVE at once,
//!   `identity.oidc.issuer` is present (`https://oidc.eks.REGION.amazonaws.com/id/XXXX`), a
//!   random `endpoint` and `certificateAuthority.data`. There is no `accessConfig`
//!   (authentication mode), no access-entry, Pod Identity or add-on API: put
//!   [`crate::EksStandIn`] in front of moto for those.
//!   Creating an existing name is 409 `ResourceInUseException`.
//! - **IAM CreateOpenIDConnectProvider**: works without a thumbprint; the ARN is
//!   `arn:aws:iam::123456789012:oidc-provider/<issuer host/path>`. With
//!   `MOTO_IAM_LOAD_MANAGED_POLICIES=true` (set here) AWS managed policies such as
//!   `arn:aws:iam::aws:policy/AmazonSageMakerFullAccess` exist.
//! - **EC2 security groups**: CreateSecurityGroup (in the default VPC without `VpcId`),
//!   Authorize/RevokeSecurityGroupIngress (revoke by `SecurityGroupRuleIds` too) and
//!   DescribeSecurityGroupRules (`group-id` filter) with each range's `Description`. EKS's
//!   `resourcesVpcConfig` is kept as CreateCluster gave it, so `clusterSecurityGroupId` is
//!   only there when given ([`Moto::create_eks_cluster_in_network`]).
//! - `POST /moto-api/reset` empties every backend: never call it on [`Moto::shared`] while
//!   other tests run; use [`unique_name`] for isolation there.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{Value, json};

/// The account moto reports for every caller.
pub const MOTO_ACCOUNT_ID: &str = "123456789012";

/// How long moto may take to answer after start (it imports every backend: seconds).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why moto could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("moto_server not found: pip install 'moto[server]'")]
    NotInstalled,
    #[error("cannot start moto_server: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("moto_server on port {port} exited at start (log: {log})")]
    Exited { port: u16, log: String },
    #[error("moto_server on port {port} did not answer within {secs}s (log: {log})")]
    NotAnswering { port: u16, secs: u64, log: String },
}

/// A running moto_server on 127.0.0.1.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    /// The `sh` watchdog that owns moto_server (moto is its child, not ours).
    watchdog: Child,
    _log_dir: tempfile::TempDir,
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Moto {
    /// One moto_server per test process, started on first use.
    ///
    /// # Panics
    /// When moto cannot be started (the message says how to fix it).
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(|| match Moto::try_start() {
            Ok(moto) => moto,
            Err(e) => panic!("{e}"),
        })
    }

    /// A private moto_server, stopped when dropped.
    ///
    /// # Panics
    /// When moto cannot be started (the message says how to fix it).
    pub fn start() -> Moto {
        match Moto::try_start() {
            Ok(moto) => moto,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Moto::start`] that reports why moto could not start. A moto that exits at once
    /// (its port taken between choosing and binding it) is retried on another port.
    pub fn try_start() -> Result<Moto, MotoError> {
        let program = find_on_path("moto_server").ok_or(MotoError::NotInstalled)?;
        let mut last = None;
        for _ in 0..3 {
            match Moto::spawn(&program, free_port().map_err(MotoError::Spawn)?) {
                Err(e @ MotoError::Exited { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(MotoError::NotInstalled))
    }

    fn spawn(program: &std::path::Path, port: u16) -> Result<Moto, MotoError> {
        let log_dir = tempfile::tempdir().map_err(MotoError::Spawn)?;
        let log = log_dir.path().join("moto.log");
        // The watchdog: moto must not outlive this test process, which may be killed
        // without running destructors. `sh` polls our pid and stops moto when we are gone.
        let script = r#"
            "$MOTO_PROGRAM" -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
            moto=$!
            trap 'kill "$moto" 2>/dev/null; wait "$moto" 2>/dev/null; exit 0' TERM INT
            while kill -0 "$MOTO_PARENT" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do
                sleep 1
            done
            kill "$moto" 2>/dev/null
            wait "$moto" 2>/dev/null
        "#;
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("MOTO_PROGRAM", program)
            .env("MOTO_PORT", port.to_string())
            .env("MOTO_LOG", &log)
            .env("MOTO_PARENT", std::process::id().to_string())
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(MotoError::Spawn)?;
        let mut moto = Moto {
            port,
            watchdog,
            _log_dir: log_dir,
        };
        let last_log_line = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .last()
                .unwrap_or("empty")
                .to_string()
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            // A short timeout: something else on the port may accept and never answer.
            let probe = moto.http_within(
                Duration::from_secs(1),
                "GET",
                "/moto-api/data.json",
                &[],
                b"",
            );
            if let Ok((200, _)) = probe {
                return Ok(moto);
            }
            if let Ok(Some(_)) = moto.watchdog.try_wait() {
                return Err(MotoError::Exited {
                    port,
                    log: last_log_line(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(MotoError::NotAnswering {
            port,
            secs: STARTUP_TIMEOUT.as_secs(),
            log: last_log_line(),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for a process (or the SDK's env provider) to talk to this moto and
    /// nothing else: endpoint, dummy static credentials, us-east-1, no IMDS, no ~/.aws.
    pub fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.endpoint())
    }

    /// Creates an EKS cluster through moto's EKS REST API and returns it (`arn`,
    /// `identity.oidc.issuer`, `endpoint`, ...).
    pub fn create_eks_cluster(&self, name: &str, region: &str) -> anyhow::Result<Value> {
        create_eks_cluster_via(self.port, name, region)
    }

    /// [`Moto::create_eks_cluster`] whose DescribeCluster reports `cluster_security_group_id`
    /// and `vpc_id` in `resourcesVpcConfig` (moto keeps what CreateCluster was given there and
    /// makes no security group of its own: create the group in moto's EC2 first).
    pub fn create_eks_cluster_in_network(
        &self,
        name: &str,
        region: &str,
        cluster_security_group_id: &str,
        vpc_id: &str,
    ) -> anyhow::Result<Value> {
        let vpc_config = json!({
            "subnetIds": [], "securityGroupIds": [],
            "clusterSecurityGroupId": cluster_security_group_id, "vpcId": vpc_id,
        });
        create_eks_cluster_with(self.port, name, region, vpc_config)
    }

    /// An SDK config for in-process clients: this endpoint, dummy static credentials,
    /// us-east-1, and an HTTP client on rustls + ring (the workspace's one crypto provider).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_for(&self.endpoint()).await
    }

    /// Empties every moto backend (see the module docs before using it on `shared()`).
    pub fn reset(&self) {
        if let Err(e) = self.http("POST", "/moto-api/reset", &[], b"") {
            tracing::warn!(error = %e, "moto reset failed");
        }
    }

    /// A minimal HTTP/1.0 exchange with moto (no HTTP client dependency, usable from sync code).
    fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        self.http_within(Duration::from_secs(30), method, path, headers, body)
    }

    fn http_within(
        &self,
        read_timeout: Duration,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        http_exchange(self.port, read_timeout, method, path, headers, body)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Signal the watchdog only while it is unreaped: until then its pid cannot belong to
        // another process. Its trap stops moto and waits for it, so the port is free after.
        if let Ok(None) = self.watchdog.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.watchdog.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.watchdog.wait();
    }
}

/// CreateCluster over plain HTTP to 127.0.0.1:`port` (moto, or the EKS stand-in in front
/// of it); the `cluster` of the answer.
pub(crate) fn create_eks_cluster_via(port: u16, name: &str, region: &str) -> anyhow::Result<Value> {
    let vpc_config = json!({"subnetIds": [], "securityGroupIds": []});
    create_eks_cluster_with(port, name, region, vpc_config)
}

/// CreateCluster with `resourcesVpcConfig` as given (moto reports it back unchanged).
fn create_eks_cluster_with(
    port: u16,
    name: &str,
    region: &str,
    vpc_config: Value,
) -> anyhow::Result<Value> {
    let body = json!({
        "name": name,
        "version": "1.33",
        "roleArn": format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/eks-cluster-role"),
        "resourcesVpcConfig": vpc_config,
    })
    .to_string();
    let (status, response) = http_exchange(
        port,
        Duration::from_secs(30),
        "POST",
        "/clusters",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &sigv4_scope(region, "eks")),
        ],
        body.as_bytes(),
    )
    .with_context(|| format!("cannot reach moto at http://127.0.0.1:{port}"))?;
    let parsed: Value = serde_json::from_slice(&response)
        .with_context(|| format!("moto's EKS answer is not JSON (HTTP {status})"))?;
    if status != 200 {
        anyhow::bail!(
            "moto refused to create EKS cluster {name} in {region}: HTTP {status}: {}",
            parsed.get("message").and_then(Value::as_str).unwrap_or("")
        );
    }
    parsed
        .get("cluster")
        .cloned()
        .context("moto's CreateCluster answer has no `cluster`")
}

/// A minimal HTTP/1.0 exchange with 127.0.0.1:`port` (no HTTP client dependency, usable
/// from sync code).
fn http_exchange(
    port: u16,
    read_timeout: Duration,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(read_timeout))?;
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
        port,
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("incomplete HTTP response from moto"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status from moto"))?;
    Ok((status, response[split + 4..].to_vec()))
}

/// Environment for a process to talk to `endpoint` (moto, or something in front of it) and
/// nothing else: dummy static credentials, us-east-1, no IMDS, no ~/.aws.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// An SDK config for in-process clients of `endpoint`: dummy static credentials,
/// us-east-1, and an HTTP client on rustls + ring (the workspace's one crypto provider).
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls;
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client)
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// An `Authorization` header moto routes by (service and region from the scope).
fn sigv4_scope(region: &str, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20250101/{region}/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

/// A name no other test in this process (or another process sharing the machine) uses:
/// `prefix-<pid>-<counter><time>`, lowercase alphanumerics and '-', safe for IAM roles,
/// EKS clusters and Kubernetes names (keep `prefix` short and lowercase).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{:x}-{n}{:05x}",
        std::process::id(),
        nanos & 0xfffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_dns_safe() {
        let a = unique_name("demo");
        let b = unique_name("demo");
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.starts_with("demo-"));
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(name.len() < 40);
        }
    }

    #[test]
    fn a_moto_that_cannot_bind_fails_fast_instead_of_waiting() {
        let program = find_on_path("moto_server").expect("moto_server on PATH for testkit's tests");
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let started = Instant::now();
        let err = Moto::spawn(&program, port).unwrap_err();
        assert!(matches!(err, MotoError::Exited { .. }), "{err}");
        assert!(
            started.elapsed() < STARTUP_TIMEOUT / 2,
            "failed fast: {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn scope_names_region_and_service() {
        let scope = sigv4_scope("eu-west-1", "eks");
        assert!(scope.contains("/eu-west-1/eks/aws4_request"), "{scope}");
    }
}
