//! The webhook binary as a child process for tests.
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A currently free TCP port on all interfaces.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("0.0.0.0:0")?
        .local_addr()?
        .port())
}

/// Starts `bin` serving TLS from `dir`/tls.crt and tls.key on 0.0.0.0:`port`, health on
/// `health`, and waits until /readyz answers 200 (caches synced). Killed when dropped.
pub async fn start_webhook(
    bin: &Path,
    kubeconfig: &Path,
    dir: &Path,
    port: u16,
    health: SocketAddr,
) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::File::create(dir.join("webhook.log"))?;
    let mut child = tokio::process::Command::new(bin)
        .arg(format!("--listen=0.0.0.0:{port}"))
        .arg(format!("--health-listen={health}"))
        .arg(format!("--tls-cert-file={}", dir.join("tls.crt").display()))
        .arg(format!("--tls-key-file={}", dir.join("tls.key").display()))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--aws-region=us-east-1")
        .arg("--log-format=plain")
        .arg("--log-level=info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("webhook.log")).unwrap_or_default();
            bail!("mlplatform-webhook exited ({status}):\n{log}");
        }
        if readyz(health).await {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("mlplatform-webhook not ready after 60s")
}

async fn readyz(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    tcp.write_all(req.as_bytes()).await.is_ok()
        && tcp.read_exact(&mut head).await.is_ok()
        && head.starts_with(b"HTTP/1.1 200")
}
