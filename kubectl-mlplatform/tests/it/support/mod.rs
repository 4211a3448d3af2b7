//! Shared set-up for the plugin's integration tests: the real binary, a kube double per test
//! and the process-wide moto_server, with a fresh EKS cluster name per test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use kubectl_mlplatform::aws::{Aws, RoleFacts};
use mlplatform_testkit::moto::{MOTO_ACCOUNT_ID, aws_env};
use mlplatform_testkit::{EksStandIn, KubeDouble, Moto, unique_name};
use serde_json::{Value, json};

pub const REGION: &str = "us-east-1";
pub const VENDOR: &str = "111122223333";
pub const NS: &str = "parallelsns";
pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-mlplatform");

/// moto gives every EKS cluster of a region the same OIDC issuer, so the shared moto_server has
/// one OIDC provider for every test in this process: tests that need it to exist hold a read
/// guard ([`Env::associate_oidc`]); tests that delete it or need it absent hold the write guard.
pub static OIDC_LOCK: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub struct Env {
    pub double: KubeDouble,
    pub moto: &'static Moto,
    /// Where AWS calls go: moto, or the EKS stand-in in front of it.
    pub aws_endpoint: String,
    pub cluster: String,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Env {
    /// A kube double whose kubeconfig context is named by the EKS ARN of a new moto cluster
    /// (as `aws eks update-kubeconfig` does), so `--cluster`/`--region` default from it.
    pub async fn new() -> Env {
        let moto = Moto::shared();
        let cluster = unique_name("c");
        moto.create_eks_cluster(&cluster, REGION).unwrap();
        Self::for_cluster(moto, cluster).await
    }

    /// [`Env::new`] with a cluster whose DescribeCluster reports a cluster security group: a
    /// new group made in moto's EC2 (default VPC). Returns the group's ID too.
    pub async fn with_cluster_security_group() -> (Env, String) {
        let moto = Moto::shared();
        let aws = Aws::from_conf(REGION, Some(&moto.endpoint()))
            .await
            .unwrap();
        let cluster = unique_name("c");
        let group = aws
            .ec2
            .create_security_group()
            .group_name(format!("eks-cluster-sg-{cluster}"))
            .description("EKS created security group")
            .send()
            .await
            .unwrap();
        let group_id = group.group_id().unwrap().to_owned();
        moto.create_eks_cluster_in_network(&cluster, REGION, &group_id, "vpc-test")
            .unwrap();
        (Self::for_cluster(moto, cluster).await, group_id)
    }

    /// [`Env::new`] with AWS calls going through the shared EKS stand-in (access entries,
    /// authentication mode) in front of the shared moto; the cluster starts in CONFIG_MAP.
    pub async fn with_eks_standin() -> Env {
        let standin = EksStandIn::shared();
        let cluster = unique_name("c");
        standin.create_eks_cluster(&cluster).unwrap();
        let mut env = Self::for_cluster(Moto::shared(), cluster).await;
        env.aws_endpoint = standin.endpoint();
        env
    }

    async fn for_cluster(moto: &'static Moto, cluster: String) -> Env {
        let double = KubeDouble::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        double
            .write_kubeconfig(&kubeconfig, &Self::arn_of(&cluster))
            .unwrap();
        Env {
            double,
            moto,
            aws_endpoint: moto.endpoint(),
            cluster,
            dir,
            kubeconfig,
        }
    }

    /// An [`Env`] on a private moto_server (left running until the test process ends, like the
    /// shared one): for tests that need "no OIDC provider" while others associate one.
    pub async fn private() -> Env {
        let moto: &'static Moto = Box::leak(Box::new(Moto::start()));
        let cluster = unique_name("c");
        moto.create_eks_cluster(&cluster, REGION).unwrap();
        Self::for_cluster(moto, cluster).await
    }

    /// `oidc associate` for this env's cluster, under a read guard of [`OIDC_LOCK`]: keep the
    /// guard for as long as the test needs the provider.
    pub async fn associate_oidc(&self) -> tokio::sync::RwLockReadGuard<'static, ()> {
        let guard = OIDC_LOCK.read().await;
        self.run(&["oidc", "associate", "--skip-thumbprint"])
            .await
            .assert_ok();
        guard
    }

    pub fn arn_of(cluster: &str) -> String {
        format!("arn:aws:eks:{REGION}:{MOTO_ACCOUNT_ID}:cluster/{cluster}")
    }

    pub fn role_name(&self) -> String {
        format!("mlplatform-concurrent-{}", self.cluster)
    }

    /// Runs the binary with this env's kubeconfig and moto.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_program(BIN, args, None).await
    }

    pub async fn run_program(&self, program: &str, args: &[&str], path: Option<&Path>) -> Run {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("AWS_PROFILE")
            .envs(aws_env(&self.aws_endpoint))
            .kill_on_drop(true);
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        to_run(cmd.output().await.unwrap())
    }

    /// `connect --profile concurrent --vendor-account VENDOR` plus `extra`.
    pub async fn connect(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "connect",
            "--profile",
            "concurrent",
            "--vendor-account",
            VENDOR,
        ];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    pub async fn aws(&self) -> Aws {
        Aws::from_conf(REGION, Some(&self.aws_endpoint))
            .await
            .unwrap()
    }

    pub async fn role(&self) -> Option<RoleFacts> {
        self.aws().await.get_role(&self.role_name()).await.unwrap()
    }

    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.double.object(api_version, kind, ns, name)
    }

    pub fn aws_auth_data(&self) -> Option<Value> {
        self.object("v1", "ConfigMap", Some("kube-system"), "aws-auth")
            .map(|cm| cm["data"].clone())
    }

    /// What doctor sees after `webhook install`: both webhook configurations (with no
    /// webhooks, so the double admits doctor's dry-run probe pod without calling anything).
    pub fn seed_webhook_configurations(&self) {
        for kind in [
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ] {
            self.double.apply_fixture(json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                "metadata": {"name": "mlplatform-webhook"}, "webhooks": [],
            }));
        }
    }

    /// An aws-auth ConfigMap with a node role and an unrelated human mapping.
    pub fn seed_aws_auth(&self) {
        self.double.apply_fixture(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "aws-auth", "namespace": "kube-system"},
            "data": {
                "mapRoles": format!("- rolearn: arn:aws:iam::{MOTO_ACCOUNT_ID}:role/node\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n  groups:\n  - system:bootstrappers\n  - system:nodes\n- rolearn: arn:aws:iam::{MOTO_ACCOUNT_ID}:role/ops\n  username: ops\n  groups:\n  - ops-team\n"),
                "mapUsers": format!("- userarn: arn:aws:iam::{MOTO_ACCOUNT_ID}:user/alice\n  username: alice\n  groups:\n  - devs\n"),
            },
        }));
    }
}

/// Gone, or (a real API server) still `Terminating` with a deletion timestamp.
pub fn gone_or_terminating(ns: Option<Value>) -> bool {
    ns.is_none_or(|ns| ns["metadata"]["deletionTimestamp"].is_string())
}

/// `kind/name` → change, in report order.
pub fn changes_of(report: &Value) -> Vec<(String, String)> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{}/{}",
                    c["kind"].as_str().unwrap(),
                    c["name"].as_str().unwrap()
                ),
                c["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Each YAML text read by PyYAML, a real YAML 1.1 reader (as aws-iam-authenticator's go-yaml v2
/// is): per text, the Python repr of each list item, so a date, bool or number where a string
/// was meant shows (`datetime.date(2024, 1, 1)` vs `'2024-01-01'`).
pub fn yaml11_items(texts: &[&str]) -> Vec<Vec<String>> {
    use std::io::Write;
    const SCRIPT: &str = "import json, sys, yaml\n\
        out = []\n\
        for text in json.load(sys.stdin):\n\
        \x20   doc = yaml.safe_load(text)\n\
        \x20   out.append([repr(item) for item in (doc or [])])\n\
        print(json.dumps(out))\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (with PyYAML; scripts/install-test-deps.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(texts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "PyYAML could not read the texts (is PyYAML installed? scripts/install-test-deps.sh): {}\n{texts:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Per (YAML, JSON) pair: whether PyYAML (YAML 1.1) reads the YAML as exactly the JSON value.
pub fn yaml11_reads_as_json(pairs: &[(&str, &str)]) -> Vec<bool> {
    use std::io::Write;
    const SCRIPT: &str = "import json, sys, yaml\n\
        pairs = json.load(sys.stdin)\n\
        print(json.dumps([yaml.safe_load(y) == json.loads(j) for y, j in pairs]))\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (with PyYAML; scripts/install-test-deps.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(pairs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "PyYAML could not read the texts: {}\n{pairs:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
