//! `irsa create|delete` through the real binary: IAM, STS and EKS on moto_server, Kubernetes on
//! the API double. Managed policies are customer policies created in moto for each test (so the
//! tests do not depend on moto's copy of AWS's managed policies).
//!
//! moto gives every EKS cluster of a region the same issuer, so the test that needs "no OIDC
//! provider" runs on a moto_server of its own; the others share one and `oidc associate` it,
//! holding a read guard of [`crate::support::OIDC_LOCK`] meanwhile.

use crate::support::Env;
use kubectl_mlplatform::aws::Aws;
use mlplatform_testkit::unique_name;
use serde_json::{Value, json};

const ROLE_ARN_KEY: &str = "eks.amazonaws.com/role-arn";

fn namespace(env: &Env, name: &str) {
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
    }));
}

async fn managed_policy(aws: &Aws, action: &str) -> String {
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": action, "Resource": "*"}]});
    aws.iam
        .create_policy()
        .policy_name(unique_name("p"))
        .policy_document(doc.to_string())
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

fn sa(env: &Env, ns: &str, name: &str) -> Option<Value> {
    env.object("v1", "ServiceAccount", Some(ns), name)
}

fn changes(report: &Value) -> Vec<String> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap(),
                c["change"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_without_an_oidc_provider_says_what_to_run_and_writes_nothing() {
    let env = Env::private().await;
    namespace(&env, "ml");
    env.double.clear_requests();
    let run = env
        .run(&["irsa", "create", "-n", "ml", "--service-account", "sa"])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("run `kubectl mlplatform oidc associate"),
        "{}",
        run.stderr
    );
    assert!(env.double.mutating_requests().is_empty());
    let role = format!("mlplatform-irsa-{}-ml-sa", env.cluster);
    assert!(env.aws().await.get_role(&role).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_rerun_then_reconcile_then_delete() {
    let env = Env::new().await;
    namespace(&env, "ml");
    let _oidc = env.associate_oidc().await;
    let aws = env.aws().await;
    let read_policy = managed_policy(&aws, "s3:GetObject").await;
    let train_policy = managed_policy(&aws, "sagemaker:CreateTrainingJob").await;
    let inline = env.dir.path().join("inline.json");
    std::fs::write(
        &inline,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ses:SendEmail","Resource":"*"}]}"#,
    )
    .unwrap();
    // A ServiceAccount that already exists, with an annotation of its own.
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "existing", "namespace": "ml", "annotations": {"keep": "me"}},
    }));
    let role_name = unique_name("irsa");
    let role_flag = format!("team/ml/{role_name}");

    // 1. Create: role under a path, trust, policies, a new SA and an annotated one.
    let run = env
        .run(&[
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "created",
            "--service-account",
            "existing",
            "--role-name",
            &role_flag,
            "--attach-policy-arn",
            &read_policy,
            "--inline-policy",
            inline.to_str().unwrap(),
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    let report = run.json();
    let role_arn = format!("arn:aws:iam::123456789012:role/team/ml/{role_name}");
    assert_eq!(report["roleArn"], role_arn, "{report}");
    assert!(
        changes(&report)
            .iter()
            .all(|c| c.ends_with(" created") || c.ends_with(" updated")),
        "{report}"
    );
    let role = aws.get_role(&role_name).await.unwrap().expect("role");
    assert_eq!(role.path, "/team/ml/");
    let cluster = aws.describe_cluster(&env.cluster).await.unwrap();
    let issuer = cluster
        .oidc_issuer
        .unwrap()
        .trim_start_matches("https://")
        .to_owned();
    let condition = &role.trust_policy["Statement"][0]["Condition"]["StringEquals"];
    assert_eq!(
        condition[format!("{issuer}:sub")],
        json!([
            "system:serviceaccount:ml:created",
            "system:serviceaccount:ml:existing"
        ]),
        "{}",
        role.trust_policy
    );
    assert_eq!(condition[format!("{issuer}:aud")], "sts.amazonaws.com");
    assert_eq!(
        role.trust_policy["Statement"][0]["Principal"]["Federated"],
        format!("arn:aws:iam::123456789012:oidc-provider/{issuer}")
    );
    assert_eq!(role.attached_policy_arns, vec![read_policy.clone()]);
    assert!(role.inline_policies.contains_key("mlplatform-irsa-inline"));
    let created = sa(&env, "ml", "created").expect("created SA");
    assert_eq!(created["metadata"]["annotations"][ROLE_ARN_KEY], role_arn);
    assert_eq!(
        created["metadata"]["labels"]["mlplatform.io/irsa-created"],
        "true"
    );
    let existing = sa(&env, "ml", "existing").unwrap();
    assert_eq!(existing["metadata"]["annotations"][ROLE_ARN_KEY], role_arn);
    assert_eq!(existing["metadata"]["annotations"]["keep"], "me");

    // 2. The same again: nothing written anywhere.
    env.double.clear_requests();
    let run = env
        .run(&[
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "existing",
            "--service-account",
            "created",
            "--role-name",
            &role_flag,
            "--attach-policy-arn",
            &read_policy,
            "--inline-policy",
            inline.to_str().unwrap(),
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stdout.contains("irsa create: nothing to change"),
        "{}",
        run.stdout
    );
    assert!(env.double.mutating_requests().is_empty());

    // 3. Different inputs reconcile: one SA only, another policy, no inline policy.
    let run = env
        .run(&[
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "existing",
            "--role-name",
            &role_flag,
            "--attach-policy-arn",
            &train_policy,
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    let role = aws.get_role(&role_name).await.unwrap().unwrap();
    assert_eq!(
        role.trust_policy["Statement"][0]["Condition"]["StringEquals"][format!("{issuer}:sub")],
        json!("system:serviceaccount:ml:existing")
    );
    assert_eq!(role.attached_policy_arns, vec![train_policy.clone()]);
    assert!(
        role.inline_policies.is_empty(),
        "{:?}",
        role.inline_policies
    );
    let created = sa(&env, "ml", "created").unwrap();
    assert!(
        created["metadata"]["annotations"][ROLE_ARN_KEY].is_null(),
        "{created}"
    );

    // 4. Delete: the SA we created goes, the other keeps its own annotation, the role goes.
    let run = env
        .run(&[
            "irsa",
            "delete",
            "-n",
            "ml",
            "--service-account",
            "existing",
            "--role-name",
            &role_flag,
        ])
        .await;
    run.assert_ok();
    assert!(aws.get_role(&role_name).await.unwrap().is_none());
    let existing = sa(&env, "ml", "existing").unwrap();
    assert!(
        existing["metadata"]["annotations"][ROLE_ARN_KEY].is_null(),
        "{existing}"
    );
    assert_eq!(existing["metadata"]["annotations"]["keep"], "me");
    // `created` is no longer in the trust, so delete does not know it: it stays, unannotated.
    assert!(sa(&env, "ml", "created").is_some());

    // Deleting again: nothing there, nothing written.
    env.double.clear_requests();
    env.run(&[
        "irsa",
        "delete",
        "-n",
        "ml",
        "--service-account",
        "existing",
        "--role-name",
        &role_flag,
    ])
    .await
    .assert_ok();
    assert!(env.double.mutating_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_a_service_account_it_created() {
    let env = Env::new().await;
    namespace(&env, "ml");
    let _oidc = env.associate_oidc().await;
    env.run(&["irsa", "create", "-n", "ml", "--service-account", "runner"])
        .await
        .assert_ok();
    assert!(sa(&env, "ml", "runner").is_some());
    let run = env
        .run(&[
            "irsa",
            "delete",
            "-n",
            "ml",
            "--service-account",
            "runner",
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    assert_eq!(
        changes(&run.json()),
        vec![
            "ServiceAccount runner deleted".to_owned(),
            format!("IAMRole mlplatform-irsa-{}-ml-runner deleted", env.cluster),
        ]
    );
    assert!(sa(&env, "ml", "runner").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_documents_and_writes_nothing() {
    let env = Env::new().await;
    namespace(&env, "ml");
    let _oidc = env.associate_oidc().await;
    env.double.clear_requests();
    let run = env
        .run(&[
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "sa",
            "--dry-run=client",
            "-o",
            "yaml",
        ])
        .await;
    run.assert_ok();
    assert!(run.stdout.contains("trustPolicy:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("sts:AssumeRoleWithWebIdentity"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("system:serviceaccount:ml:sa"),
        "{}",
        run.stdout
    );
    assert!(env.double.mutating_requests().is_empty());
    let role = format!("mlplatform-irsa-{}-ml-sa", env.cluster);
    assert!(env.aws().await.get_role(&role).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_exit_2_and_nothing_written() {
    let env = Env::new().await;
    namespace(&env, "ml");
    let bad = env.dir.path().join("bad.json");
    std::fs::write(&bad, "{\"Statement\": [").unwrap();
    env.double.clear_requests();
    for args in [
        vec![
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "sa",
            "--inline-policy",
            bad.to_str().unwrap(),
        ],
        vec![
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "sa",
            "--attach-policy-arn",
            "S3ReadOnly",
        ],
        vec![
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "Not_A_Name",
        ],
        vec![
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "sa",
            "--role-name",
            "a//b",
        ],
    ] {
        let run = env.run(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    }
    assert!(env.double.mutating_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_not_made_by_us_is_refused() {
    let env = Env::new().await;
    namespace(&env, "ml");
    let _oidc = env.associate_oidc().await;
    let name = unique_name("theirs");
    let aws = env.aws().await;
    aws.create_role(
        &name,
        "/",
        &json!({"Version": "2012-10-17", "Statement": []}),
        "theirs",
        &[],
    )
    .await
    .unwrap();
    env.double.clear_requests();
    let run = env
        .run(&[
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "sa",
            "--role-name",
            &name,
        ])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("refusing to touch it"),
        "{}",
        run.stderr
    );
    assert!(env.double.mutating_requests().is_empty());
    assert_eq!(
        aws.get_role(&name).await.unwrap().unwrap().trust_policy,
        json!({"Version": "2012-10-17", "Statement": []})
    );
}

/// Preflight reads everything before the first write: a Kubernetes read that fails leaves IAM
/// untouched too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_writes_nothing_anywhere() {
    let env = Env::new().await;
    namespace(&env, "ml");
    let _oidc = env.associate_oidc().await;
    let role = unique_name("r");
    env.double
        .inject_failure("GET", "/api/v1/namespaces/ml/serviceaccounts/*", 403, 5);
    env.double.clear_requests();
    let run = env
        .run(&[
            "irsa",
            "create",
            "-n",
            "ml",
            "--service-account",
            "sa",
            "--role-name",
            &role,
        ])
        .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("forbidden"), "{}", run.stderr);
    assert!(env.double.mutating_requests().is_empty());
    assert!(env.aws().await.get_role(&role).await.unwrap().is_none());
}
