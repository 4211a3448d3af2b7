//! `oidc associate` through the real binary against moto_server (EKS cluster with an OIDC
//! issuer, IAM OIDC providers). The cluster and region default from the kubeconfig context,
//! which is named by the cluster's EKS ARN as `aws eks update-kubeconfig` writes it.
//!
//! moto gives every EKS cluster of a region the same issuer, so one test's provider would be
//! every cluster's: tests that need "no provider yet" get a moto_server of their own.

use crate::support::{Env, REGION};

async fn provider_of(env: &Env) -> Option<String> {
    let aws = env.aws().await;
    let cluster = aws.describe_cluster(&env.cluster).await.unwrap();
    aws.find_oidc_provider(cluster.oidc_issuer.as_deref().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn associate_creates_the_provider_once_and_then_finds_it() {
    let env = Env::private().await;
    assert_eq!(provider_of(&env).await, None);

    let first = env
        .run(&["oidc", "associate", "--skip-thumbprint", "-o", "json"])
        .await;
    first.assert_ok();
    let report = first.json();
    assert_eq!(report["change"], "created", "{report}");
    assert_eq!(
        report["clientIds"],
        serde_json::json!(["sts.amazonaws.com"])
    );
    let arn = report["providerArn"].as_str().unwrap().to_owned();
    let issuer = report["issuer"].as_str().unwrap();
    assert_eq!(
        arn,
        format!(
            "arn:aws:iam::123456789012:oidc-provider/{}",
            issuer.trim_start_matches("https://")
        )
    );
    assert_eq!(provider_of(&env).await.as_deref(), Some(arn.as_str()));

    // Idempotent: found, nothing written; the table says so.
    let second = env.run(&["oidc", "associate", "--skip-thumbprint"]).await;
    second.assert_ok();
    assert!(second.stdout.contains(&arn), "{}", second.stdout);
    assert!(
        second.stdout.contains("already there: nothing to change"),
        "{}",
        second.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_client_writes_nothing() {
    let env = Env::private().await;
    let run = env
        .run(&[
            "oidc",
            "associate",
            "--skip-thumbprint",
            "--dry-run=client",
            "-o",
            "yaml",
        ])
        .await;
    run.assert_ok();
    assert!(run.stdout.contains("change: created"), "{}", run.stdout);
    assert!(run.stdout.contains("dryRun: client"), "{}", run.stdout);
    assert_eq!(provider_of(&env).await, None);
}

/// The issuer (a real EKS host name) is not reachable from the test machine: the provider is
/// still created, without a thumbprint, and the command does not hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_only_omits_the_thumbprint() {
    let env = Env::private().await;
    let run = env
        .run(&[
            "oidc",
            "associate",
            "--thumbprint-timeout",
            "2",
            "--cluster",
            &env.cluster,
            "--region",
            REGION,
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    let report = run.json();
    assert_eq!(report["change"], "created");
    if report["thumbprints"].as_array().unwrap().is_empty() {
        assert!(report["thumbprintSkipped"].is_string(), "{report}");
    }
    assert!(provider_of(&env).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cluster_is_one_clear_line() {
    let env = Env::new().await;
    let run = env
        .run(&["oidc", "associate", "--cluster", "no-such-cluster"])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("\"no-such-cluster\" not found") && run.stderr.contains("--cluster"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}
