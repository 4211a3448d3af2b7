//! The sagemaker-operator, arthur and hopsworks profiles through the real binary against
//! moto_server (IAM, STS, EKS) and the Kubernetes API double: connect creates, a re-run writes
//! nothing, a dry run writes nothing, disconnect undoes exactly, doctor passes and then fails
//! with the fix after a sabotage; each profile exported, edited and passed back as a file.
//!
//! moto gives every cluster of a region the same OIDC issuer, so the tests that touch the OIDC
//! provider take [`OIDC_LOCK`] (shared with the other tests of this binary) for writing and
//! start from a clean slate.
//!
//! One module per profile (`sagemaker_operator`, `arthur`, `hopsworks`); the helpers they share
//! and the profiles-as-files test are here.

mod arthur;
mod hopsworks;
mod sagemaker_operator;

use std::collections::BTreeMap;

use kubectl_mlplatform::aws::{Aws, issuer_host_path};
use mlplatform_namespace_policy::{IRSA_ROLE_ARN_ANNOTATION, MANAGED_LABEL, eks};
use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use serde_json::{Value, json};

use crate::support::{self, Env, OIDC_LOCK, Run, gone_or_terminating};

const SM_NS: &str = "sagemaker-k8s-operator-system";
const SM_SA: &str = "sagemaker-k8s-operator-default";
const SAGEMAKER_POLICY: &str = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess";

fn changes(report: &Value) -> BTreeMap<String, String> {
    support::changes_of(report).into_iter().collect()
}

fn all(report: &Value, change: &str) -> bool {
    changes(report).values().all(|c| c == change)
}

async fn issuer(env: &Env) -> String {
    let cluster = env
        .aws()
        .await
        .describe_cluster(&env.cluster)
        .await
        .unwrap();
    cluster.oidc_issuer.unwrap()
}

/// Deletes any provider for the (shared) issuer: tests that take OIDC_LOCK start clean.
async fn clean_oidc(aws: &Aws, issuer: &str) {
    if let Some(arn) = aws.find_oidc_provider(issuer).await.unwrap() {
        aws.delete_oidc_provider(&arn).await.unwrap();
    }
}

/// One `error:` line, the exit code, and nothing written anywhere.
fn assert_refused(run: &Run, code: i32, needle: &str) {
    assert_eq!(
        run.code, code,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{}",
        run.stderr
    );
}

async fn existing_role(aws: &Aws, name: &str) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    aws.create_role(name, "/", &trust, "test", &[])
        .await
        .unwrap()
}

/// `profiles show X -o yaml`, edited, passed back with `--profile FILE`: the edit shows in
/// the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_is_exported_edited_and_passed_back() {
    let env = Env::new().await;
    let aws = env.aws().await;
    let instance = existing_role(&aws, &format!("hw-file-{}", env.cluster)).await;
    let cases: [(&str, &str, &str, Vec<&str>); 4] = [
        (
            "concurrent",
            "concurrent-eks-ecr-ses",
            "edited-concurrent-policy",
            vec!["--vendor-account", support::VENDOR],
        ),
        (
            "sagemaker-operator",
            "AmazonSageMakerFullAccess",
            "AmazonSageMakerReadOnly",
            vec![],
        ),
        (
            "arthur",
            "arthur-ses",
            "mail-policy",
            vec!["--s3-bucket", "b-1"],
        ),
        (
            "hopsworks",
            "mlplatform-hopsworks-eks-ecr",
            "edited-hopsworks-policy",
            vec!["--instance-role-arn", &instance],
        ),
    ];
    for (name, from, to, extra) in cases {
        let shown = env.run(&["profiles", "show", name, "-o", "yaml"]).await;
        shown.assert_ok();
        assert!(shown.stdout.contains(from), "{name}: {}", shown.stdout);
        let file = env.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, shown.stdout.replace(from, to)).unwrap();
        let reloaded = env
            .run(&["profiles", "show", file.to_str().unwrap(), "-o", "yaml"])
            .await;
        reloaded.assert_ok();
        let mut args = vec![
            "connect",
            "--profile",
            file.to_str().unwrap(),
            "--dry-run=client",
            "-o",
            "json",
        ];
        args.extend(extra);
        let run = env.run(&args).await;
        run.assert_ok();
        let rendered = run.json()["rendered"].to_string();
        assert!(rendered.contains(to), "{name}: {rendered}");
        assert!(!rendered.contains(from), "{name}: {rendered}");
    }
    assert_eq!(env.double.mutating_requests(), vec![]);
}
