//! The floor for `webhook-bench`: the webhook's HTTPS stack echoing each review's uid in a
//! fixed answer ("allowed", or `--answer-file`), no JSON parsing. See `mlplatform_bench::null`.
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use mlplatform_bench::null::Answer;

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
    /// Answer with this AdmissionReview (its uid replaced by each request's) instead of
    /// "allowed": e.g. the webhook's own answer, so the floor sends what the webhook sends.
    #[arg(long)]
    answer_file: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let tls = mlplatform_bench::null::webhook_tls(&args.tls_cert_file, &args.tls_key_file)?;
    let answer = match &args.answer_file {
        None => Answer::default(),
        Some(path) => {
            let review = std::fs::read(path)
                .with_context(|| format!("reading the answer file {}", path.display()))?;
            Answer::from_review(&review).with_context(|| {
                format!(
                    "{} has no \"uid\":\"...\" to replace; give an AdmissionReview answer",
                    path.display()
                )
            })?
        }
    };
    // The webhook's own runtime settings: the floor must run on the same scheduler.
    mlplatform_webhook::server::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        println!("listening on https://{}", listener.local_addr()?);
        mlplatform_bench::null::serve(listener, tls, answer).await;
        Ok(())
    })
}
