//! `connect-bench`: wall time of the real `kubectl-mlplatform` binary for the Concurrent
//! profile against moto_server (IAM, STS, EKS) and the Kubernetes API double: a first
//! connect (everything created), a no-op re-run (everything read, nothing written) and
//! `--help` (start-up cost alone). Each is run N times; median and minimum are reported.
//!
//! With `latency_proxy.py` (../shared/bench/) the same runs go through TCP proxies that delay
//! every request: 100 ms to AWS and 30 ms to the API server, as from a laptop to a region.
//! Runs with only one of the two delays give the number of sequential round trips a run
//! makes to each: (time with the delay - time without) / delay.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use mlplatform_testkit::{KubeDouble, Moto, unique_name};
use serde_json::json;

pub const REGION: &str = "us-east-1";
pub const VENDOR_ACCOUNT: &str = "111122223333";

#[derive(Debug, thiserror::Error)]
pub enum ConnectBenchError {
    #[error("moto_server: {0}; install it with `pip install 'moto[server]'` (make deps)")]
    Moto(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("`kubectl-mlplatform {args}` failed (exit {code}):\n{stderr}")]
    Failed {
        args: String,
        code: i32,
        stderr: String,
    },
    #[error("the no-op re-run changed things, so it is not measuring a no-op: {0}")]
    NotNoop(String),
}

/// Median and minimum of one kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub runs: usize,
    pub median: Duration,
    pub min: Duration,
}

impl Timing {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self {
            runs: samples.len(),
            median: samples.get(samples.len() / 2).copied().unwrap_or_default(),
            min: samples.first().copied().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConnectReport {
    pub first_connect: Timing,
    pub noop_rerun: Timing,
    pub help: Timing,
    /// With the latency proxies, when the script was found.
    pub latency: Option<LatencyReport>,
}

/// Delays (ms) on every request to AWS and to the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delays {
    pub aws_ms: u64,
    pub api_ms: u64,
}

/// AWS 100 ms and API server 30 ms per request: a laptop to us-east-2.
pub const REMOTE: Delays = Delays {
    aws_ms: 100,
    api_ms: 30,
};

#[derive(Debug, Clone)]
pub struct LatencyReport {
    pub delays: Delays,
    pub first_connect: Timing,
    pub noop_rerun: Timing,
    /// Sequential round trips (first connect, no-op) to AWS and to the API server.
    pub aws_round_trips: (f64, f64),
    pub api_round_trips: (f64, f64),
}

/// A `latency_proxy.py` child on a free port, killed on drop.
struct Proxy {
    child: std::process::Child,
    port: u16,
}

impl Proxy {
    fn start(script: &Path, target_port: u16, delay_ms: u64) -> Result<Self, ConnectBenchError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| ConnectBenchError::Io("a free port".into(), e))?
            .port();
        let child = std::process::Command::new("python3")
            .arg(script)
            .args([
                port.to_string(),
                target_port.to_string(),
                delay_ms.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| ConnectBenchError::Io(format!("running {}", script.display()), e))?;
        let proxy = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(ConnectBenchError::Io(
                    format!("{} did not listen on {port}", script.display()),
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(proxy)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_default()
}

struct Fixture {
    double: KubeDouble,
    kubeconfig: PathBuf,
    namespace: String,
    /// Keeps the API server proxy (if any) alive for the fixture's runs.
    _api_proxy: Option<Proxy>,
}

/// A fresh EKS cluster in moto and a fresh API double whose context is that cluster's ARN
/// (as `aws eks update-kubeconfig` names it), with an aws-auth ConfigMap holding a node role;
/// with `api_proxy`, the kubeconfig points at a latency proxy in front of the double.
async fn fixture(
    moto: &Moto,
    dir: &Path,
    api_proxy: Option<(&Path, u64)>,
) -> Result<Fixture, ConnectBenchError> {
    let cluster = unique_name("bench");
    moto.create_eks_cluster(&cluster, REGION)
        .map_err(|e| ConnectBenchError::Moto(format!("{e:#}")))?;
    let double = KubeDouble::start().await;
    let arn = format!("arn:aws:eks:{REGION}:{MOTO_ACCOUNT_ID}:cluster/{cluster}");
    let kubeconfig = dir.join(format!("{cluster}.kubeconfig"));
    let proxy = match api_proxy {
        Some((script, ms)) if ms > 0 => Some(Proxy::start(script, port_of(&double.url()), ms)?),
        _ => None,
    };
    let mut config = double.kubeconfig(&arn);
    if let Some(p) = &proxy {
        config["clusters"][0]["cluster"]["server"] =
            serde_json::json!(format!("http://127.0.0.1:{}", p.port));
    }
    // JSON is YAML: kubeconfig loaders read it.
    std::fs::write(&kubeconfig, config.to_string())
        .map_err(|e| ConnectBenchError::Io(format!("writing {}", kubeconfig.display()), e))?;
    double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": format!(
            "- rolearn: arn:aws:iam::{MOTO_ACCOUNT_ID}:role/node\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups:\n  - system:bootstrappers\n  - system:nodes\n"
        )},
    }));
    Ok(Fixture {
        double,
        kubeconfig,
        namespace: unique_name("ns"),
        _api_proxy: proxy,
    })
}

async fn timed_run(
    plugin: &Path,
    args: &[&str],
    kubeconfig: &Path,
    aws_env: &[(String, String)],
) -> Result<(Duration, String), ConnectBenchError> {
    let started = Instant::now();
    let out = tokio::process::Command::new(plugin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("AWS_PROFILE")
        .envs(aws_env.iter().cloned())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ConnectBenchError::Io(format!("running {}", plugin.display()), e))?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        return Err(ConnectBenchError::Failed {
            args: args.join(" "),
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok((elapsed, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// First connect and no-op re-run, `runs` times each, with `delays` (through proxies started
/// from `script`) or directly.
async fn connect_runs(
    plugin: &Path,
    moto: &Moto,
    dir: &Path,
    runs: usize,
    proxies: Option<(&Path, Delays)>,
) -> Result<(Timing, Timing), ConnectBenchError> {
    let aws_proxy = match proxies {
        Some((script, d)) if d.aws_ms > 0 => {
            Some(Proxy::start(script, port_of(&moto.endpoint()), d.aws_ms)?)
        }
        _ => None,
    };
    let aws_env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .map(|(k, v)| match (&aws_proxy, k.as_str()) {
            (Some(p), "AWS_ENDPOINT_URL") => (k, format!("http://127.0.0.1:{}", p.port)),
            _ => (k, v),
        })
        .collect();
    let (mut first, mut noop) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let api = proxies.map(|(script, d)| (script, d.api_ms));
        let f = fixture(moto, dir, api).await?;
        let args = [
            "connect",
            "--profile",
            "concurrent",
            "--vendor-account",
            VENDOR_ACCOUNT,
            "-n",
            f.namespace.as_str(),
            "-o",
            "json",
        ];
        let (t, _) = timed_run(plugin, &args, &f.kubeconfig, &aws_env).await?;
        first.push(t);
        f.double.clear_requests();
        let (t, stdout) = timed_run(plugin, &args, &f.kubeconfig, &aws_env).await?;
        noop.push(t);
        let report: serde_json::Value = serde_json::from_str(&stdout)
            .map_err(|e| ConnectBenchError::NotNoop(format!("output is not JSON: {e}")))?;
        let changed = report["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["change"] != "unchanged");
        let writes = f.double.mutating_requests();
        if changed || !writes.is_empty() {
            return Err(ConnectBenchError::NotNoop(format!(
                "{} Kubernetes writes; changes: {}",
                writes.len(),
                report["changes"]
            )));
        }
        f.double.shutdown();
    }
    Ok((Timing::of(first), Timing::of(noop)))
}

fn round_trips(with: Timing, without: Timing, delay_ms: u64) -> f64 {
    let extra = with.median.as_secs_f64() - without.median.as_secs_f64();
    (extra * 1000.0 / delay_ms as f64).max(0.0)
}

/// Runs every measurement `runs` times; with `latency_script`, also through latency proxies.
pub async fn run(
    plugin: &Path,
    runs: usize,
    latency_script: Option<&Path>,
    progress: &dyn Fn(&str),
) -> Result<ConnectReport, ConnectBenchError> {
    progress("starting moto_server");
    let moto = Moto::try_start().map_err(|e| ConnectBenchError::Moto(e.to_string()))?;
    let dir = tempfile::tempdir().map_err(|e| ConnectBenchError::Io("temp dir".into(), e))?;
    let runs = runs.max(1);
    progress("direct");
    let (first_connect, noop_rerun) = connect_runs(plugin, &moto, dir.path(), runs, None).await?;
    let mut help = Vec::new();
    for _ in 0..runs {
        let (t, _) = timed_run(plugin, &["--help"], dir.path(), &moto.env()).await?;
        help.push(t);
    }
    let latency = match latency_script {
        Some(script) => {
            let with = |d: Delays| Some((script, d));
            progress("through latency proxies (AWS 100 ms, API server 30 ms)");
            let (first, noop) = connect_runs(plugin, &moto, dir.path(), runs, with(REMOTE)).await?;
            progress("AWS delay only");
            let aws_only = Delays {
                api_ms: 0,
                ..REMOTE
            };
            let (aws_first, aws_noop) =
                connect_runs(plugin, &moto, dir.path(), runs, with(aws_only)).await?;
            progress("API server delay only");
            let api_only = Delays {
                aws_ms: 0,
                ..REMOTE
            };
            let (api_first, api_noop) =
                connect_runs(plugin, &moto, dir.path(), runs, with(api_only)).await?;
            Some(LatencyReport {
                delays: REMOTE,
                first_connect: first,
                noop_rerun: noop,
                aws_round_trips: (
                    round_trips(aws_first, first_connect, REMOTE.aws_ms),
                    round_trips(aws_noop, noop_rerun, REMOTE.aws_ms),
                ),
                api_round_trips: (
                    round_trips(api_first, first_connect, REMOTE.api_ms),
                    round_trips(api_noop, noop_rerun, REMOTE.api_ms),
                ),
            })
        }
        None => None,
    };
    Ok(ConnectReport {
        first_connect,
        noop_rerun,
        help: Timing::of(help),
        latency,
    })
}

pub fn render(report: &ConnectReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kubectl-mlplatform connect --profile concurrent, against moto_server and the API double ({} runs each)\n",
        report.first_connect.runs
    );
    let _ = writeln!(out, "{:<26} {:>10} {:>10}", "run", "median", "min");
    for (name, t) in [
        ("first connect", report.first_connect),
        ("no-op re-run", report.noop_rerun),
        ("--help", report.help),
    ] {
        let _ = writeln!(
            out,
            "{:<26} {:>7.0} ms {:>7.0} ms",
            name,
            t.median.as_secs_f64() * 1000.0,
            t.min.as_secs_f64() * 1000.0
        );
    }
    match &report.latency {
        None => out.push_str(
            "\n(latency runs skipped: latency_proxy.py not found; pass --latency-proxy)\n",
        ),
        Some(l) => {
            let _ = writeln!(
                out,
                "\nthrough latency proxies: {} ms per AWS request, {} ms per API server request\n",
                l.delays.aws_ms, l.delays.api_ms
            );
            let _ = writeln!(
                out,
                "{:<26} {:>10} {:>10} {:>18} {:>18}",
                "run", "median", "min", "AWS round trips", "API round trips"
            );
            for (name, t, aws, api) in [
                (
                    "first connect",
                    l.first_connect,
                    l.aws_round_trips.0,
                    l.api_round_trips.0,
                ),
                (
                    "no-op re-run",
                    l.noop_rerun,
                    l.aws_round_trips.1,
                    l.api_round_trips.1,
                ),
            ] {
                let _ = writeln!(
                    out,
                    "{:<26} {:>7.0} ms {:>7.0} ms {:>18.1} {:>18.1}",
                    name,
                    t.median.as_secs_f64() * 1000.0,
                    t.min.as_secs_f64() * 1000.0,
                    aws,
                    api
                );
            }
            let _ = writeln!(
                out,
                "(goals: first connect <= 400 ms, no-op re-run <= 250 ms; the seeds' manual path ~6.3 s; round trips are sequential ones, from runs with one delay at a time)"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_min() {
        let ms = Duration::from_millis;
        let t = Timing::of(vec![ms(30), ms(10), ms(20)]);
        assert_eq!((t.median, t.min, t.runs), (ms(20), ms(10), 3));
        assert_eq!(Timing::of(Vec::new()).min, Duration::ZERO);
    }
}
