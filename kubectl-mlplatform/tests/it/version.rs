//! `kubectl mlplatform version` through the binary: text, `-o json` and `-o yaml`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mlplatform");

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_as_json_names_version_commit_and_target() {
    let json: serde_json::Value = serde_json::from_str(&run(&["version", "-o", "json"])).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let commit = json["commit"].as_str().unwrap();
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    let target = json["target"].as_str().unwrap();
    assert!(
        target.starts_with(std::env::consts::ARCH) && target.contains(std::env::consts::OS),
        "{target}"
    );
    assert_eq!(json.as_object().unwrap().len(), 3, "{json}");

    let text = run(&["version"]);
    assert_eq!(
        text,
        format!(
            "kubectl-mlplatform {} (commit {commit}, {target})\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let yaml: serde_json::Value =
        serde_yaml_ng::from_str(&run(&["version", "-o", "yaml"])).unwrap();
    assert_eq!(yaml, json);
}

#[test]
fn version_needs_no_cluster() {
    let out = Command::new(BIN)
        .args(["version", "-o", "json"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert!(out.status.success());
}
