//! Shared by the per-profile e2e tests: the real plugin binary against the real cluster named
//! by `MLPLATFORM_E2E_KUBECONFIG` and moto_server for AWS. Skipped (with the reason) without
//! it, failing instead when `MLPLATFORM_E2E_REQUIRED=1`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use mlplatform_testkit::{Moto, unique_name};
use serde_json::Value;

pub const REGION: &str = "us-east-1";

fn required() -> bool {
    std::env::var("MLPLATFORM_E2E_REQUIRED").is_ok_and(|v| v == "1")
}

fn skip(what: &str, reason: &str) {
    assert!(!required(), "MLPLATFORM_E2E_REQUIRED=1 but {reason}");
    eprintln!("skipping {what} e2e: {reason}");
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

pub struct Plugin {
    pub bin: PathBuf,
    pub kubeconfig: String,
    pub moto: &'static Moto,
    /// A fresh moto EKS cluster for this test.
    pub cluster: String,
}

impl Plugin {
    /// None (skipped) without a real cluster or the built plugin.
    pub fn for_test(what: &str) -> Option<Plugin> {
        let Some(kubeconfig) = std::env::var("MLPLATFORM_E2E_KUBECONFIG")
            .ok()
            .filter(|s| !s.is_empty())
        else {
            skip(what, "MLPLATFORM_E2E_KUBECONFIG is not set");
            return None;
        };
        let Some(bin) = plugin_binary() else {
            skip(
                what,
                "the kubectl-mlplatform binary is not built (cargo build -p kubectl-mlplatform)",
            );
            return None;
        };
        let moto = Moto::shared();
        let cluster = unique_name("e2e");
        moto.create_eks_cluster(&cluster, REGION)
            .expect("moto EKS cluster");
        Some(Plugin {
            bin,
            kubeconfig,
            moto,
            cluster,
        })
    }

    /// `head --profile P --cluster C --region R` + `extra`.
    pub fn args(&self, head: &str, profile: &str, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [head, "--profile", profile, "--cluster", &self.cluster]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(["--region", REGION].iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    pub fn run(&self, args: &[String]) -> (i32, String, String) {
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

    /// Runs doctor and returns its JSON report whatever the exit code.
    pub fn doctor_json(&self, args: &[String]) -> Value {
        let (code, stdout, stderr) = self.run(args);
        assert!(
            code == 0 || code == 1,
            "{args:?} exited {code}:\n{stdout}\n{stderr}"
        );
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
    }

    pub fn ok_json(&self, args: &[String]) -> Value {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, 0, "{args:?} failed:\n{stdout}\n{stderr}");
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
    }
}

/// Every change of a report that is a write.
pub fn writes(report: &Value) -> Vec<Value> {
    report["changes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["change"] != "unchanged" && c["change"] != "absent")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts a doctor report is healthy apart from the admission webhook: an e2e cluster has no
/// published webhook image to install (the webhook itself is covered by `webhook_e2e`), so the
/// only failures allowed are the ones whose fix is `kubectl mlplatform webhook install`.
pub fn assert_healthy_apart_from_webhook(report: &Value) {
    let other: Vec<&Value> = report["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["status"] == "fail")
                .filter(|c| c["fix"] != "kubectl mlplatform webhook install")
                .collect()
        })
        .unwrap_or_default();
    assert!(other.is_empty(), "doctor failed on: {other:?}\n{report}");
    assert!(
        report["checks"].as_array().is_some_and(|a| !a.is_empty()),
        "{report}"
    );
}

/// Names of the failed checks of a doctor report.
pub fn failed_checks(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["status"] == "fail")
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the disconnect when dropped during a panic: a failed assertion must not leave
/// objects behind in a real cluster.
pub struct Cleanup<'a> {
    pub plugin: &'a Plugin,
    pub args: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let (code, _, stderr) = self.plugin.run(&self.args);
            eprintln!("cleanup after failure: disconnect exited {code}: {stderr}");
        }
    }
}

/// `common` followed by `extra`.
pub fn with<'a>(common: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    common.iter().chain(extra).copied().collect()
}
