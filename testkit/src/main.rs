//! `kube-double`: the in-memory Kubernetes API server as a process, for benchmarks and
//! manual runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use mlplatform_testkit::KubeDouble;
use mlplatform_testkit::kube_double::parse_service_route;

/// An in-memory Kubernetes API server over plain HTTP (test double).
#[derive(Parser, Debug)]
#[command(name = "kube-double", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig pointing at the double to this path.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Name of the kubeconfig's cluster, user and context.
    #[arg(long, default_value = "kube-double")]
    context: String,
    /// YAML (multi-document) or JSON objects to load at start.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Route admission webhooks behind Service NAMESPACE/NAME to HOST:PORT (repeatable),
    /// e.g. `mlplatform-system/mlplatform-webhook=127.0.0.1:8443`.
    #[arg(long, value_name = "NAMESPACE/NAME=HOST:PORT", value_parser = parse_service_route)]
    route_service: Vec<(String, String, SocketAddr)>,
    /// How long a deleted namespace stays Terminating, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    namespace_termination_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let double = KubeDouble::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if let Some(path) = &args.fixtures {
        let n = double.load_fixtures_file(path)?;
        tracing::info!(count = n, "fixtures loaded");
    }
    double.set_namespace_termination_delay(std::time::Duration::from_millis(
        args.namespace_termination_ms,
    ));
    for (namespace, name, addr) in &args.route_service {
        double.route_service(namespace, name, *addr);
    }
    if let Some(path) = &args.kubeconfig_out {
        double
            .write_kubeconfig(path, &args.context)
            .with_context(|| format!("cannot write kubeconfig {}", path.display()))?;
    }
    println!("{}", double.url());
    wait_for_stop_signal().await?;
    double.shutdown();
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install a SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("cannot wait for ctrl-c")?,
    }
    Ok(())
}
