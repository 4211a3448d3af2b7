//! `make bench`: the release webhook vs. the null server and the `serde_json::Value` no-op.
//! See `mlplatform_bench::webhook_bench`.
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mlplatform_bench::webhook_bench::{self, Options};

#[derive(Parser)]
#[command(
    about = "Benchmark mlplatform-webhook against a null server of its stack and a serde_json::Value no-op"
)]
struct Args {
    /// Directory holding mlplatform-webhook, null-server, noop-ceiling and kube-double (default: this
    /// program's own directory, i.e. target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Core the servers are pinned to; the client takes the next one.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Run without taskset pinning.
    #[arg(long)]
    no_pin: bool,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Throughput slices per server, alternating between the servers; the report gives the
    /// median of the side-by-side ratios as well as the ratio of the totals.
    #[arg(long, default_value_t = 8)]
    rounds: u32,
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[arg(long, default_value_t = 1000)]
    fixed_rate: u32,
    #[arg(long, default_value_t = 5)]
    fixed_rate_secs: u64,
    #[arg(long, default_value_t = 8)]
    fixed_rate_connections: usize,
}

const PINNED_MARKER: &str = "MLPLATFORM_BENCH_CLIENT_PINNED";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pin = !args.no_pin && mlplatform_bench::child::taskset_available();
    if !args.no_pin && !pin {
        eprintln!("webhook-bench: taskset (util-linux) not found; running unpinned");
    }
    if pin && let Some(code) = webhook_bench::reexec_pinned(args.server_core + 1, PINNED_MARKER) {
        std::process::exit(code);
    }
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let options = Options {
        webhook_bin: bin_dir.join("mlplatform-webhook"),
        null_bin: bin_dir.join("null-server"),
        noop_bin: bin_dir.join("noop-ceiling"),
        kube_double_bin: bin_dir.join("kube-double"),
        server_core: pin.then_some(args.server_core),
        concurrency: args.concurrency,
        rounds: args.rounds,
        warmup: Duration::from_secs(args.warmup_secs),
        duration: Duration::from_secs(args.duration_secs),
        fixed_rate: args.fixed_rate,
        fixed_rate_duration: Duration::from_secs(args.fixed_rate_secs),
        fixed_rate_connections: args.fixed_rate_connections,
    };
    // The client gets one core: a single-threaded runtime uses it without contention.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let progress = |line: &str| eprintln!("webhook-bench: {line}");
    let report = runtime.block_on(webhook_bench::run(options, &progress))?;
    print!("{}", webhook_bench::render(&report));
    Ok(())
}
