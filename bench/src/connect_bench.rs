//! `connect-bench`: wall time of the real `kubectl-mlplatform` binary for the Concurrent
//! profile against moto_server (IAM, STS, EKS) and the Kubernetes API double: a first
//! connect (everything created), a no-op re-run (everything read, nothing written) and
//! `--help` (start-up cost alone). Each is run N times; median and minimum are reported.
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
}

struct Fixture {
    double: KubeDouble,
    kubeconfig: PathBuf,
    namespace: String,
}

/// A fresh EKS cluster in moto and a fresh API double whose context is that cluster's ARN
/// (as `aws eks update-kubeconfig` names it), with an aws-auth ConfigMap holding a node role.
async fn fixture(moto: &Moto, dir: &Path) -> Result<Fixture, ConnectBenchError> {
    let cluster = unique_name("bench");
    moto.create_eks_cluster(&cluster, REGION)
        .map_err(|e| ConnectBenchError::Moto(format!("{e:#}")))?;
    let double = KubeDouble::start().await;
    let arn = format!("arn:aws:eks:{REGION}:{MOTO_ACCOUNT_ID}:cluster/{cluster}");
    let kubeconfig = dir.join(format!("{cluster}.kubeconfig"));
    double
        .write_kubeconfig(&kubeconfig, &arn)
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
    })
}

async fn timed_run(
    plugin: &Path,
    args: &[&str],
    kubeconfig: &Path,
    moto: &Moto,
) -> Result<(Duration, String), ConnectBenchError> {
    let started = Instant::now();
    let out = tokio::process::Command::new(plugin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("AWS_PROFILE")
        .envs(moto.env())
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

/// Runs every measurement `runs` times.
pub async fn run(
    plugin: &Path,
    runs: usize,
    progress: &dyn Fn(&str),
) -> Result<ConnectReport, ConnectBenchError> {
    progress("starting moto_server");
    let moto = Moto::try_start().map_err(|e| ConnectBenchError::Moto(e.to_string()))?;
    let dir = tempfile::tempdir().map_err(|e| ConnectBenchError::Io("temp dir".into(), e))?;
    let runs = runs.max(1);
    let (mut first, mut noop, mut help) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        progress(&format!("run {}/{runs}", i + 1));
        let f = fixture(&moto, dir.path()).await?;
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
        let (t, _) = timed_run(plugin, &args, &f.kubeconfig, &moto).await?;
        first.push(t);
        f.double.clear_requests();
        let (t, stdout) = timed_run(plugin, &args, &f.kubeconfig, &moto).await?;
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
        let (t, _) = timed_run(plugin, &["--help"], &f.kubeconfig, &moto).await?;
        help.push(t);
        f.double.shutdown();
    }
    Ok(ConnectReport {
        first_connect: Timing::of(first),
        noop_rerun: Timing::of(noop),
        help: Timing::of(help),
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
