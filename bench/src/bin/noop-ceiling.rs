//! The throughput ceiling for `webhook-bench`: axum + rustls (ring) answering every
//! AdmissionReview with "allowed".
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
#[command(about = "No-op AdmissionReview HTTPS endpoint: the webhook benchmark's ceiling")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    #[arg(long)]
    tls_cert_file: PathBuf,
    #[arg(long)]
    tls_key_file: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let cert = std::fs::read(&args.tls_cert_file)
        .with_context(|| format!("reading {}", args.tls_cert_file.display()))?;
    let key = std::fs::read(&args.tls_key_file)
        .with_context(|| format!("reading {}", args.tls_key_file.display()))?;
    let tls = mlplatform_bench::pki::server_config(&cert, &key)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("listening on https://{}", listener.local_addr()?);
    mlplatform_bench::noop::serve(listener, Arc::new(tls)).await?;
    Ok(())
}
