//! The floor for `webhook-bench`: the webhook's HTTPS stack echoing each review's uid with
//! "allowed", no JSON parsing. See `mlplatform_bench::null`.
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "AdmissionReview HTTPS endpoint that echoes the uid unparsed: the webhook benchmark's floor"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    #[arg(long)]
    tls_cert_file: PathBuf,
    #[arg(long)]
    tls_key_file: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let tls = mlplatform_bench::null::webhook_tls(&args.tls_cert_file, &args.tls_key_file)?;
    // The webhook's own runtime settings: the floor must run on the same scheduler.
    mlplatform_webhook::server::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        println!("listening on https://{}", listener.local_addr()?);
        mlplatform_bench::null::serve(listener, tls).await;
        Ok(())
    })
}
