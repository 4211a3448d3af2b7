//! `kubectl-mlplatform aws-auth get|add|remove`, the real binary, against the in-process
//! Kubernetes API double through a kubeconfig (and once through kubectl's plugin lookup).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;

use mlplatform_testkit::kube_double::KubeDouble;
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mlplatform");
const NODE_ROLE: &str =
    "arn:aws:iam::111122223333:role/eksctl-prod-nodegroup-ng-1-NodeInstanceRole-1HYP9X0Z7Q8L";

struct Cluster {
    double: KubeDouble,
    _dir: TempDir,
    kubeconfig: PathBuf,
}

async fn cluster(fixture: Option<&str>) -> Cluster {
    let double = KubeDouble::start().await;
    if let Some(name) = fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/aws-auth")
            .join(name);
        double.load_fixtures_file(&path).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    double.write_kubeconfig(&kubeconfig, "test").unwrap();
    Cluster {
        double,
        _dir: dir,
        kubeconfig,
    }
}

impl Cluster {
    /// Runs the binary without blocking the runtime that serves the double.
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(BIN)
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .unwrap()
    }

    fn map_roles(&self) -> Option<String> {
        self.double
            .object("v1", "ConfigMap", Some("kube-system"), "aws-auth")
            .and_then(|cm| cm["data"]["mapRoles"].as_str().map(str::to_string))
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A refusal: non-zero exit, one line on stderr containing `needle`, nothing on stdout.
fn assert_refused(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "expected failure; stdout: {}",
        stdout(o)
    );
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line, got: {err}");
    assert!(err.contains(needle), "{err}");
    assert!(stdout(o).is_empty(), "{}", stdout(o));
}

#[tokio::test(flavor = "multi_thread")]
async fn get_prints_every_mapping() {
    let c = cluster(Some("terraform.yaml")).await;
    let table = c.run(&["aws-auth", "get"]).await;
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("KIND"), "{text}");
    for needle in [
        "role      arn:aws:iam::111122223333:role/default_node_group",
        "sso       AdministratorAccess in 111122223333",
        "user      arn:aws:iam::111122223333:user/ops/alice",
        "account   444455556666",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }

    let json = c.run(&["aws-auth", "get", "-o", "json"]).await;
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["exists"], true);
    assert_eq!(v["roles"].as_array().unwrap().len(), 2);
    assert_eq!(v["ssoRoles"][0]["permissionSetName"], "AdministratorAccess");
    assert_eq!(
        v["accounts"],
        serde_json::json!(["444455556666", "777788889999"])
    );
    assert!(c.double.mutating_requests().is_empty());

    let yaml = c.run(&["aws-auth", "get", "-o", "yaml"]).await;
    let v: Value = serde_yaml_ng::from_slice(&yaml.stdout).unwrap();
    assert_eq!(v["users"][0]["username"], "alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_without_aws_auth_says_so() {
    let c = cluster(None).await;
    let o = c.run(&["aws-auth", "get"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("no aws-auth ConfigMap"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn add_then_add_again_then_remove() {
    let c = cluster(Some("eksctl.yaml")).await;
    let add = [
        "aws-auth",
        "add",
        "--arn",
        "arn:aws:iam::111122223333:role/mlplatform/concurrent-prod",
        "--username",
        "concurrent",
        "--group",
        "mlplatform:concurrent",
    ];
    let o = c.run(&add).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "aws-auth role arn:aws:iam::111122223333:role/concurrent-prod as concurrent in mlplatform:concurrent: created\n"
    );
    let roles = c.map_roles().unwrap();
    assert!(
        roles.contains("rolearn: arn:aws:iam::111122223333:role/concurrent-prod"),
        "{roles}"
    );
    assert!(roles.contains(NODE_ROLE));

    c.double.clear_requests();
    let o = c.run(&add).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).ends_with(": unchanged\n"), "{}", stdout(&o));
    assert!(
        c.double.mutating_requests().is_empty(),
        "a re-run writes nothing"
    );

    let o = c
        .run(&[
            "aws-auth",
            "remove",
            "--arn",
            "arn:aws:iam::111122223333:role/concurrent-prod",
            "-o",
            "json",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["change"], "deleted");
    assert_eq!(v["kind"], "role");
    assert!(!c.map_roles().unwrap().contains("concurrent-prod"));
    assert!(c.map_roles().unwrap().contains(NODE_ROLE));
}

#[tokio::test(flavor = "multi_thread")]
async fn add_json_output_and_user_kind_inferred() {
    let c = cluster(None).await;
    let o = c
        .run(&[
            "aws-auth",
            "add",
            "--arn",
            "arn:aws:iam::111122223333:user/ops/alice",
            "--group",
            "ops",
            "-o",
            "json",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["change"], "created");
    assert_eq!(v["kind"], "user");
    assert_eq!(v["username"], "alice");
    assert_eq!(v["sent"], true);
    let cm = c
        .double
        .object("v1", "ConfigMap", Some("kube-system"), "aws-auth")
        .unwrap();
    assert!(
        cm["data"]["mapUsers"]
            .as_str()
            .unwrap()
            .contains("userarn: arn:aws:iam::111122223333:user/ops/alice")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn system_masters_needs_the_explicit_flag() {
    let c = cluster(Some("eksctl.yaml")).await;
    let args = [
        "aws-auth",
        "add",
        "--arn",
        "arn:aws:iam::111122223333:role/admin",
        "--group",
        "system:masters",
    ];
    let o = c.run(&args).await;
    assert_refused(&o, "--allow-system-masters");
    assert!(c.double.mutating_requests().is_empty());

    let mut allowed = args.to_vec();
    allowed.push("--allow-system-masters");
    let o = c.run(&allowed).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(c.map_roles().unwrap().contains("system:masters"));
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_exit_non_zero_and_write_nothing() {
    let c = cluster(Some("eksctl.yaml")).await;
    let o = c.run(&["aws-auth", "remove", "--arn", NODE_ROLE]).await;
    assert_refused(&o, "lock nodes out of the cluster");

    let o = c.run(&["aws-auth", "add", "--arn", "not-an-arn"]).await;
    assert_refused(&o, "not an IAM ARN");

    let o = c
        .run(&[
            "aws-auth",
            "add",
            "--arn",
            "arn:aws:iam::111122223333:user/x",
            "--kind",
            "role",
        ])
        .await;
    assert_refused(&o, "--kind user");
    assert!(c.double.mutating_requests().is_empty());

    let bad = cluster(Some("malformed.yaml")).await;
    let before = bad.map_roles();
    let o = bad
        .run(&[
            "aws-auth",
            "add",
            "--arn",
            "arn:aws:iam::111122223333:role/x",
        ])
        .await;
    assert_refused(
        &o,
        "fix it by hand with `kubectl edit -n kube-system configmap aws-auth`",
    );
    assert!(bad.double.mutating_requests().is_empty());
    assert_eq!(bad.map_roles(), before);
    // get refuses too rather than show half a document.
    let o = bad.run(&["aws-auth", "get"]).await;
    assert_refused(&o, "mapRoles entry 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_dry_run_prints_the_diff_and_writes_nothing() {
    let c = cluster(Some("eksctl.yaml")).await;
    let before = c.map_roles();
    let o = c
        .run(&[
            "aws-auth",
            "add",
            "--arn",
            "arn:aws:iam::111122223333:role/vendor",
            "--group",
            "g",
            "--dry-run=client",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("aws-auth role arn:aws:iam::111122223333:role/vendor as vendor in g: created (dry run)\n"), "{text}");
    assert!(text.contains("--- aws-auth mapRoles\n"), "{text}");
    assert!(
        text.contains("+ - rolearn: arn:aws:iam::111122223333:role/vendor\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("    rolearn: {NODE_ROLE}")),
        "unchanged lines as context: {text}"
    );
    assert!(c.double.mutating_requests().is_empty());
    assert_eq!(c.map_roles(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_dry_run_sends_dry_run_all() {
    let c = cluster(Some("eksctl.yaml")).await;
    let before = c.map_roles();
    let o = c
        .run(&[
            "aws-auth",
            "add",
            "--arn",
            "arn:aws:iam::111122223333:role/vendor",
            "--dry-run=server",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("created (server dry run)"),
        "{}",
        stdout(&o)
    );
    let writes = c.double.mutating_requests();
    assert_eq!(writes.len(), 1);
    assert!(writes[0].is_dry_run());
    assert_eq!(c.map_roles(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn works_as_a_kubectl_plugin() {
    let c = cluster(Some("eksctl.yaml")).await;
    let bin_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, bin_dir.path().join("kubectl-mlplatform")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = tokio::process::Command::new("kubectl")
        .args([
            "mlplatform",
            "aws-auth",
            "get",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(&c.kubeconfig)
        .env("PATH", path)
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["roles"][0]["arn"], NODE_ROLE);
}

/// Issue 9 §2.3: a flow-style `mapRoles` (as Terraform's `jsonencode` writes it) gets a new
/// entry; the untouched entries must read the same afterwards under a YAML 1.1 reader
/// (aws-iam-authenticator's) too, not only under this tool's YAML 1.2 one: quoted dates,
/// yes/no/on/off/y/n, `~`, octal, exponent, hex, sexagesimal and `.inf`/`.nan` stay strings.
#[tokio::test(flavor = "multi_thread")]
async fn untouched_entries_keep_their_yaml_1_1_meaning_in_flow_style() {
    let c = cluster(None).await;
    let map_roles = format!(
        "[{{rolearn: \"{NODE_ROLE}\", username: \"system:node:{{{{EC2PrivateDNSName}}}}\", groups: [system:bootstrappers, system:nodes]}}, \
         {{rolearn: arn:aws:iam::111122223333:role/ops, username: ops, groups: [\"ops\", \"on\"], note: \"2024-01-01\", \
         enabled: \"yes\", short: \"n\", switch: \"off\", mode: \"0755\", newmode: \"0o17\", big: \"1e3\", hex: \"0x1F\", \
         ratio: \"1:20\", none: \"~\", empty: \"null\", inf: \".inf\", nan: \".nan\", merge: \"<<\", eq: \"=\"}}]"
    );
    c.double.apply_fixture(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": map_roles},
    }));
    let o = c
        .run(&[
            "aws-auth",
            "add",
            "--arn",
            "arn:aws:iam::111122223333:role/vendor",
            "--group",
            "g",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let after = c.map_roles().unwrap();
    let read = support::yaml11_items(&[&map_roles, &after]);
    assert_eq!(read[1].len(), 3, "{after}");
    assert_eq!(
        read[1][..2],
        read[0][..],
        "YAML 1.1 reading changed:\n{after}"
    );
    assert!(
        read[0][1].contains("'note': '2024-01-01'"),
        "{}",
        read[0][1]
    );
    // And the same for this tool's reader, with the new entry at the end.
    let before: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&map_roles).unwrap();
    let now: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&after).unwrap();
    assert_eq!(now[..2], before[..]);
    assert_eq!(now[2]["rolearn"], "arn:aws:iam::111122223333:role/vendor");

    // Removing the new entry gives back a document that reads as the original did.
    let o = c
        .run(&[
            "aws-auth",
            "remove",
            "--arn",
            "arn:aws:iam::111122223333:role/vendor",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let removed = c.map_roles().unwrap();
    assert_eq!(support::yaml11_items(&[&removed])[0], read[0], "{removed}");
}

/// Issue 9 §2.4: 16 `aws-auth add` processes at once, each for its own role: every one
/// succeeds (retrying on 409 with jittered backoff bounded by time), every mapping is there,
/// and the node entry that was there before is kept byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn sixteen_concurrent_adds_all_succeed_and_nothing_is_lost() {
    let c = cluster(Some("eksctl.yaml")).await;
    let before = c.map_roles().unwrap();
    let arns: Vec<String> = (0..16)
        .map(|i| format!("arn:aws:iam::111122223333:role/writer-{i:02}"))
        .collect();
    let runs = futures::future::join_all(arns.iter().map(|arn| async {
        c.run(&[
            "aws-auth",
            "add",
            "--arn",
            arn,
            "--group",
            "mlplatform:writers",
        ])
        .await
    }))
    .await;
    for (arn, o) in arns.iter().zip(&runs) {
        assert!(o.status.success(), "{arn}: {}", stderr(o));
        assert!(stdout(o).ends_with(": created\n"), "{arn}: {}", stdout(o));
    }
    let after = c.map_roles().unwrap();
    assert!(
        after.starts_with(&before),
        "the entries that were there are kept byte for byte:\n{after}"
    );
    let entries: Vec<serde_yaml_ng::Value> = serde_yaml_ng::from_str(&after).unwrap();
    assert_eq!(entries.len(), 2 + arns.len(), "{after}");
    for arn in &arns {
        let found = entries
            .iter()
            .filter(|e| e["rolearn"] == arn.as_str())
            .count();
        assert_eq!(found, 1, "{arn} in\n{after}");
    }
}
