//! The binary as kubectl runs it: `kubectl mlplatform ...` with the binary's directory on
//! PATH, flags after the plugin name passed through.

use std::path::Path;

use crate::support::{BIN, Env, NS, VENDOR};

const KUBECTL: &str = "/usr/bin/kubectl";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_finds_and_runs_the_plugin() {
    if !Path::new(KUBECTL).exists() {
        panic!("{KUBECTL} not found: install Debian's kubectl (scripts/install-test-deps.sh)");
    }
    let env = Env::new().await;
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = std::env::join_paths([bin_dir, Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
    let path = Path::new(&path);

    let help = env
        .run_program(KUBECTL, &["mlplatform", "--help"], Some(path))
        .await;
    help.assert_ok();
    assert!(
        help.stdout.contains("Usage: kubectl mlplatform"),
        "{}",
        help.stdout
    );

    let run = env
        .run_program(
            KUBECTL,
            &[
                "mlplatform",
                "connect",
                "--profile",
                "concurrent",
                "--vendor-account",
                VENDOR,
                "-o",
                "json",
                "--context",
                &Env::arn_of(&env.cluster),
            ],
            Some(path),
        )
        .await;
    run.assert_ok();
    assert_eq!(run.json()["namespace"], NS);
    assert!(env.object("v1", "Namespace", None, NS).is_some());

    let list = env
        .run_program(KUBECTL, &["mlplatform", "namespace", "list"], Some(path))
        .await;
    list.assert_ok();
    assert!(
        list.stdout.contains(NS) && list.stdout.contains("enforce"),
        "{}",
        list.stdout
    );
}

#[tokio::test]
async fn help_says_kubectl_mlplatform_and_bad_usage_exits_2() {
    let out = tokio::process::Command::new(BIN)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Usage: kubectl mlplatform"), "{stdout}");
    let out = tokio::process::Command::new(BIN)
        .args(["connect", "--help"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: kubectl mlplatform connect"));
    let out = tokio::process::Command::new(BIN)
        .arg("nonsense")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = tokio::process::Command::new(BIN)
        .arg("version")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("kubectl-mlplatform 0.") && stdout.contains("commit"),
        "{stdout}"
    );
}
