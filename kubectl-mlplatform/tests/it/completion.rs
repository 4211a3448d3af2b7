//! Completion through the real interfaces: the bash script the binary prints, sourced in bash,
//! and kubectl's plugin completion hook (`kubectl __complete mlplatform ...`, what kubectl runs
//! for `kubectl mlplatform <TAB>`) with the shipped `kubectl_complete-mlplatform` on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mlplatform");
const KUBECTL: &str = "/usr/bin/kubectl";
const HOOK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scripts/kubectl_complete-mlplatform"
);

/// A PATH directory holding the plugin and its completion hook, as an install would.
fn plugin_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, dir.path().join("kubectl-mlplatform")).unwrap();
    let hook = dir.path().join("kubectl_complete-mlplatform");
    std::fs::copy(HOOK, &hook).unwrap();
    let path =
        std::env::join_paths([dir.path(), Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
    (dir, PathBuf::from(path))
}

/// `kubectl __complete mlplatform WORDS...`: (candidate values, directive line).
fn kubectl_complete(path: &Path, words: &[&str]) -> (Vec<String>, String) {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} not found: install Debian's kubectl (scripts/install-test-deps.sh)"
    );
    let out = Command::new(KUBECTL)
        .arg("__complete")
        .arg("mlplatform")
        .args(words)
        .env("PATH", path)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<&str> = stdout.lines().collect();
    let directive = lines.pop().unwrap_or_default().to_owned();
    assert!(directive.starts_with(':'), "no directive line in\n{stdout}");
    let values = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .collect();
    (values, directive)
}

#[test]
fn kubectl_completes_plugin_subcommands_flags_and_values() {
    let (_dir, path) = plugin_dir();

    let (top, directive) = kubectl_complete(&path, &[""]);
    for expected in [
        "connect",
        "disconnect",
        "doctor",
        "webhook",
        "completion",
        "version",
    ] {
        assert!(
            top.iter().any(|v| v == expected),
            "{expected} missing: {top:?}"
        );
    }
    assert!(
        !top.iter().any(|v| v.starts_with("__")),
        "hidden leaked: {top:?}"
    );
    assert_eq!(directive, ":4", "no file names for subcommands");

    let (con, _) = kubectl_complete(&path, &["con"]);
    assert_eq!(con, ["connect"]);

    let (flags, _) = kubectl_complete(&path, &["connect", "--"]);
    for expected in [
        "--profile",
        "--cluster-admin",
        "--context",
        "--dry-run",
        "--namespace",
    ] {
        assert!(
            flags.iter().any(|v| v == expected),
            "{expected} missing: {flags:?}"
        );
    }

    let (profiles, directive) =
        kubectl_complete(&path, &["--context", "prod", "connect", "--profile", ""]);
    assert!(
        profiles.iter().any(|v| v == "concurrent") && profiles.iter().any(|v| v == "arthur"),
        "{profiles:?}"
    );
    assert_eq!(directive, ":0", "a profile may also be a file");

    let (policies, _) = kubectl_complete(&path, &["webhook", "install", "--failure-policy", ""]);
    assert_eq!(policies, ["fail", "ignore"]);
    let (dry_run, _) = kubectl_complete(&path, &["webhook", "install", "--dry-run=c"]);
    assert_eq!(dry_run, ["--dry-run=client"]);
}

fn script(shell: &str) -> String {
    let out = Command::new(BIN)
        .args(["completion", shell])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Sources the bash script and asks its completion function, as bash's `complete -F` would.
fn bash_complete(script_path: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n_kubectl-mlplatform kubectl-mlplatform '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script_path.display(),
        quoted.join(" "),
        words[cword],
        words[cword - 1],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_script_completes_the_binary() {
    let text = script("bash");
    assert!(text.contains("complete -F _kubectl-mlplatform"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubectl-mlplatform.bash");
    std::fs::write(&path, text).unwrap();

    assert_eq!(
        bash_complete(&path, &["kubectl-mlplatform", "con"]),
        ["connect"]
    );
    let webhook = bash_complete(&path, &["kubectl-mlplatform", "webhook", ""]);
    for expected in ["install", "uninstall", "status"] {
        assert!(
            webhook.iter().any(|v| v == expected),
            "{expected}: {webhook:?}"
        );
    }
    assert_eq!(
        bash_complete(&path, &["kubectl-mlplatform", "webhook", "install", "--fa"]),
        ["--failure-policy"]
    );
    let auth = bash_complete(&path, &["kubectl-mlplatform", "aws-auth", ""]);
    assert!(auth.iter().any(|v| v == "add"), "{auth:?}");
}

#[test]
fn zsh_fish_and_hook_scripts_name_the_plugin() {
    let zsh = script("zsh");
    assert!(zsh.starts_with("#compdef kubectl-mlplatform"), "{zsh}");
    let fish = script("fish");
    assert!(fish.contains("complete -c kubectl-mlplatform"), "{fish}");
    assert!(fish.contains("webhook"), "{fish}");
    // The hook the binary prints is the file shipped in the release archives.
    assert_eq!(
        script("kubectl-plugin"),
        std::fs::read_to_string(HOOK).unwrap()
    );
    for (shell, program) in [("zsh", "zsh"), ("fish", "fish")] {
        // Syntax-check where the shell is installed; the content checks above always run.
        if let Ok(out) = Command::new(program).arg("-n").arg("/dev/null").output()
            && out.status.success()
        {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(shell);
            std::fs::write(&file, script(shell)).unwrap();
            let check = Command::new(program).arg("-n").arg(&file).output().unwrap();
            assert!(
                check.status.success(),
                "{shell}: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("fish"),
        "{stderr}"
    );
}
