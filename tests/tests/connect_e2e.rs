//! connect → doctor → connect again → disconnect with the real plugin binary against a real
//! Kubernetes cluster (`MLPLATFORM_E2E_KUBECONFIG`) and moto_server for AWS.
//!
//! Skipped (with the reason printed) when `MLPLATFORM_E2E_KUBECONFIG` is unset, failing
//! instead when `MLPLATFORM_E2E_REQUIRED=1`. The plugin binary is taken from
//! `MLPLATFORM_PLUGIN_BIN`, else next to this test (`cargo build -p kubectl-mlplatform`).

use std::path::PathBuf;
use std::process::Command;

use mlplatform_testkit::{Moto, unique_name};
use serde_json::Value;

const REGION: &str = "us-east-1";
const VENDOR: &str = "111122223333";

fn required() -> bool {
    std::env::var("MLPLATFORM_E2E_REQUIRED").is_ok_and(|v| v == "1")
}

/// Skips (returns None) or, when required, fails with the reason.
fn skip(reason: &str) -> Option<PathBuf> {
    assert!(!required(), "MLPLATFORM_E2E_REQUIRED=1 but {reason}");
    eprintln!("skipping connect e2e: {reason}");
    None
}

fn plugin_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MLPLATFORM_PLUGIN_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let candidate = profile_dir.join("kubectl-mlplatform");
    candidate.is_file().then_some(candidate)
}

struct Plugin {
    bin: PathBuf,
    kubeconfig: String,
    moto: &'static Moto,
}

impl Plugin {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("AWS_PROFILE")
            .envs(self.moto.env())
            .output()
            .expect("run kubectl-mlplatform");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok_json(&self, args: &[&str]) -> Value {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, 0, "{args:?} failed:\n{stdout}\n{stderr}");
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
    }
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn connect_doctor_reconnect_disconnect_against_a_real_cluster() {
    let Some(kubeconfig) = std::env::var("MLPLATFORM_E2E_KUBECONFIG")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        skip("MLPLATFORM_E2E_KUBECONFIG is not set");
        return;
    };
    let Some(bin) = plugin_binary().or_else(|| {
        skip("the kubectl-mlplatform binary is not built (cargo build -p kubectl-mlplatform)")
    }) else {
        return;
    };
    let moto = Moto::shared();
    let cluster = unique_name("e2e");
    moto.create_eks_cluster(&cluster, REGION)
        .expect("moto EKS cluster");
    let namespace = unique_name("mlp");
    let plugin = Plugin {
        bin,
        kubeconfig,
        moto,
    };
    let common = [
        "--profile",
        "concurrent",
        "--cluster",
        &cluster,
        "--region",
        REGION,
        "-n",
        &namespace,
    ];
    let with = |extra: &[&'static str], head: &'static str| -> Vec<String> {
        let mut v = vec![head.to_owned()];
        v.extend(common.iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    // A failed assertion must not leave objects behind in a real cluster.
    let _cleanup = Cleanup {
        plugin: &plugin,
        args: with(&["--delete-namespace"], "disconnect"),
    };

    let connect = with(&["--vendor-account", VENDOR, "-o", "json"], "connect");
    let first = plugin.ok_json(&args(&connect));
    assert_eq!(first["namespace"], namespace.as_str());
    assert!(
        first["roleArn"]
            .as_str()
            .is_some_and(|a| a.contains(&cluster)),
        "{first}"
    );

    let doctor = with(&["--vendor-account", VENDOR, "-o", "json"], "doctor");
    // The e2e cluster has no published webhook image to install (webhook_e2e covers the
    // webhook), so the only failures allowed are the webhook's own.
    let (code, stdout, stderr) = plugin.run(&args(&doctor));
    assert!(code == 0 || code == 1, "doctor exited {code}: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("doctor -o json");
    let other: Vec<&Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "fail" && c["fix"] != "kubectl mlplatform webhook install")
        .collect();
    assert!(other.is_empty(), "doctor failed on: {other:?}\n{report}");

    let second = plugin.ok_json(&args(&connect));
    let writes: Vec<&Value> = second["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["change"] != "unchanged")
        .collect();
    assert!(
        writes.is_empty(),
        "second connect changed things: {writes:?}"
    );
    assert_eq!(second["externalId"], first["externalId"]);

    let disconnect = with(&["--delete-namespace", "-o", "json"], "disconnect");
    let gone = plugin.ok_json(&args(&disconnect));
    assert!(
        gone["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "IAMRole" && c["change"] == "deleted"),
        "{gone}"
    );
    let (code, stdout, _) = plugin.run(&args(&doctor));
    assert_eq!(code, 1, "doctor must fail after disconnect: {stdout}");
}

/// Runs `disconnect --delete-namespace` when dropped during a panic.
struct Cleanup<'a> {
    plugin: &'a Plugin,
    args: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let (code, _, stderr) = self.plugin.run(&args(&self.args));
            eprintln!("cleanup after failure: disconnect exited {code}: {stderr}");
        }
    }
}
