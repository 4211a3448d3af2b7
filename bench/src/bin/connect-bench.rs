//! Times `kubectl-mlplatform connect` (first run, no-op re-run) and `--help`. See
//! `mlplatform_bench::connect_bench`.
use std::path::PathBuf;

use clap::Parser;
use mlplatform_bench::connect_bench;

#[derive(Parser)]
#[command(about = "Time kubectl-mlplatform connect against moto_server and the API double")]
struct Args {
    /// The plugin binary (default: kubectl-mlplatform next to this program).
    #[arg(long)]
    plugin: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// `latency_proxy.py` (delays every request, as a remote region would); skipped if missing.
    #[arg(long, default_value = "../shared/bench/latency_proxy.py")]
    latency_proxy: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let plugin = match args.plugin {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("kubectl-mlplatform"))
            .unwrap_or_default(),
    };
    let progress = |line: &str| eprintln!("connect-bench: {line}");
    let script = args
        .latency_proxy
        .is_file()
        .then_some(args.latency_proxy.as_path());
    let report = connect_bench::run(&plugin, args.runs, script, &progress).await?;
    print!("{}", connect_bench::render(&report));
    Ok(())
}
