//! Every `Aws` operation against moto_server (IAM, STS, EKS), through the real SDK clients on
//! the rustls + ring HTTPS client. The endpoint and dummy credentials are passed explicitly
//! (`Aws::from_conf`), never through the process environment.

use std::collections::BTreeMap;

use kubectl_mlplatform::aws::{Aws, AwsError, policy_documents_equal};
use mlplatform_testkit::moto::{Moto, unique_name};
use serde_json::json;

const REGION: &str = "us-east-1";

async fn aws() -> Aws {
    let moto = Moto::shared();
    Aws::from_conf(REGION, Some(&moto.endpoint()))
        .await
        .unwrap()
}

fn trust(account: &str, external_id: &str) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]
    })
}

#[tokio::test]
async fn caller_identity_is_motos_account() {
    let id = aws().await.caller_identity().await.unwrap();
    assert_eq!(id.account, "123456789012");
    assert!(id.arn.starts_with("arn:aws:"), "{}", id.arn);
}

#[tokio::test]
async fn describe_cluster_reports_arn_account_and_oidc_issuer() {
    let aws = aws().await;
    let name = unique_name("cluster");
    Moto::shared().create_eks_cluster(&name, REGION).unwrap();
    let facts = aws.describe_cluster(&name).await.unwrap();
    assert_eq!(facts.name, name);
    assert_eq!(facts.account, "123456789012");
    assert_eq!(facts.region, REGION);
    assert_eq!(
        facts.arn,
        format!("arn:aws:eks:{REGION}:123456789012:cluster/{name}")
    );
    assert_eq!(facts.version.as_deref(), Some("1.33"));
    assert!(facts.endpoint.is_some());
    // moto has no accessConfig: None, which callers treat as CONFIG_MAP.
    assert_eq!(facts.authentication_mode, None);
    let issuer = facts
        .oidc_issuer
        .expect("moto gives clusters an OIDC issuer");
    assert!(
        issuer.starts_with("https://oidc.eks.us-east-1.amazonaws.com/id/"),
        "{issuer}"
    );
}

#[tokio::test]
async fn missing_cluster_says_check_cluster_and_region() {
    let err = aws()
        .await
        .describe_cluster("no-such-cluster")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "EKS cluster \"no-such-cluster\" not found in us-east-1: check --cluster and --region"
    );
}

#[tokio::test]
async fn role_lifecycle_with_policies_and_tags() {
    let aws = aws().await;
    let name = unique_name("mlplatform-role");
    assert_eq!(
        aws.get_role(&name).await.unwrap(),
        None,
        "missing role is Ok(None)"
    );

    let tags = vec![(
        "mlplatform.io/profile".to_string(),
        "concurrent".to_string(),
    )];
    let arn = aws
        .create_role(
            &name,
            "/mlplatform/",
            &trust("210987654321", "ext-1"),
            "test role",
            &tags,
        )
        .await
        .unwrap();
    assert_eq!(
        arn,
        format!("arn:aws:iam::123456789012:role/mlplatform/{name}")
    );

    let ecr = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecr:*"], "Resource": "*"}]});
    let eks = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "eks:DescribeCluster", "Resource": "arn:aws:eks:us-east-1:123456789012:cluster/c"}]});
    aws.put_inline_policy(&name, "ecr", &ecr).await.unwrap();
    aws.put_inline_policy(&name, "eks", &eks).await.unwrap();
    aws.update_trust_policy(&name, &trust("210987654321", "ext-2"))
        .await
        .unwrap();
    let managed = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess";
    aws.attach_managed_policy(&name, managed).await.unwrap();

    let facts = aws.get_role(&name).await.unwrap().unwrap();
    assert_eq!(facts.arn, arn);
    assert_eq!(facts.path, "/mlplatform/");
    assert_eq!(facts.description.as_deref(), Some("test role"));
    assert_eq!(facts.tags, tags.iter().cloned().collect::<BTreeMap<_, _>>());
    assert!(
        policy_documents_equal(&facts.trust_policy, &trust("210987654321", "ext-2")),
        "{}",
        facts.trust_policy
    );
    assert_eq!(
        facts.inline_policies.keys().collect::<Vec<_>>(),
        vec!["ecr", "eks"]
    );
    assert!(policy_documents_equal(&facts.inline_policies["ecr"], &ecr));
    assert!(policy_documents_equal(&facts.inline_policies["eks"], &eks));
    assert_eq!(facts.attached_policy_arns, vec![managed.to_string()]);

    aws.detach_managed_policy(&name, managed).await.unwrap();
    aws.delete_inline_policy(&name, "ecr").await.unwrap();
    aws.delete_inline_policy(&name, "ecr").await.unwrap(); // idempotent
    let facts = aws.get_role(&name).await.unwrap().unwrap();
    assert!(facts.attached_policy_arns.is_empty());
    assert_eq!(
        facts.inline_policies.keys().collect::<Vec<_>>(),
        vec!["eks"]
    );

    // delete_role removes what is left first (IAM refuses to delete a role with policies).
    aws.attach_managed_policy(&name, managed).await.unwrap();
    aws.delete_role(&name).await.unwrap();
    assert_eq!(aws.get_role(&name).await.unwrap(), None);
    aws.delete_role(&name).await.unwrap(); // idempotent
}

#[tokio::test]
async fn creating_an_existing_role_names_the_operation_and_code() {
    let aws = aws().await;
    let name = unique_name("dup-role");
    aws.create_role(&name, "/", &trust("210987654321", "x"), "d", &[])
        .await
        .unwrap();
    let err = aws
        .create_role(&name, "/", &trust("210987654321", "x"), "d", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("EntityAlreadyExists"), "{err}");
    assert!(
        err.to_string()
            .starts_with("AWS iam:CreateRole failed: EntityAlreadyExists"),
        "{err}"
    );
    aws.delete_role(&name).await.unwrap();
}

#[tokio::test]
async fn oidc_provider_find_create_delete() {
    let aws = aws().await;
    let issuer = format!(
        "https://oidc.eks.us-east-1.amazonaws.com/id/{}",
        unique_name("ID").to_uppercase()
    );
    assert_eq!(aws.find_oidc_provider(&issuer).await.unwrap(), None);
    let arn = aws
        .create_oidc_provider(
            &issuer,
            &["sts.amazonaws.com".to_string()],
            &["9e99a48a9960b14926bb7f3b02e22da2b0ab7280".to_string()],
        )
        .await
        .unwrap();
    assert!(
        arn.ends_with(issuer.trim_start_matches("https://")),
        "{arn}"
    );
    assert_eq!(
        aws.find_oidc_provider(&issuer).await.unwrap(),
        Some(arn.clone())
    );
    assert_eq!(
        aws.find_oidc_provider(&format!("{issuer}/")).await.unwrap(),
        Some(arn.clone())
    );
    aws.delete_oidc_provider(&arn).await.unwrap();
    assert_eq!(aws.find_oidc_provider(&issuer).await.unwrap(), None);
    aws.delete_oidc_provider(&arn).await.unwrap(); // idempotent

    // IAM no longer needs thumbprints; the call must not send an empty list.
    let issuer = format!("{issuer}-nothumb");
    let arn = aws
        .create_oidc_provider(&issuer, &["sts.amazonaws.com".to_string()], &[])
        .await
        .unwrap();
    assert_eq!(
        aws.find_oidc_provider(&issuer).await.unwrap(),
        Some(arn.clone())
    );
    aws.delete_oidc_provider(&arn).await.unwrap();
}

#[tokio::test]
async fn unreachable_endpoint_is_one_clear_line() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let aws = Aws::from_conf(REGION, Some(&format!("http://127.0.0.1:{port}")))
        .await
        .unwrap();
    let err = aws.caller_identity().await.unwrap_err();
    assert!(
        matches!(err, AwsError::EndpointUnreachable { .. }),
        "{err:?}"
    );
    let line = err.to_string();
    assert!(
        line.starts_with("cannot reach the AWS endpoint for sts:GetCallerIdentity"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

/// `Aws::from_env` (what the binary uses) through the default chain: endpoint, keys and
/// region from the environment. The environment is given to a child run of this test
/// binary, never set in this process (tests here run in parallel).
#[tokio::test]
async fn from_env_uses_the_default_chain_and_aws_endpoint_url() {
    let exe = std::env::current_exe().unwrap();
    let out = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "aws_moto::from_env_child",
            "--ignored",
            "--nocapture",
        ])
        .envs(Moto::shared().env())
        .env("MLPLATFORM_FROM_ENV_CHILD", "1")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "the child test ran: {stdout}");
}

#[tokio::test]
#[ignore = "run by from_env_uses_the_default_chain_and_aws_endpoint_url with moto's env"]
async fn from_env_child() {
    // Only meaningful with the parent's environment (e.g. under `cargo test -- --ignored`).
    if std::env::var_os("MLPLATFORM_FROM_ENV_CHILD").is_none() {
        return;
    }
    let aws = Aws::from_env(None).await.unwrap();
    assert_eq!(aws.region, "us-east-1");
    assert_eq!(aws.caller_identity().await.unwrap().account, "123456789012");
    let explicit = Aws::from_env(Some("eu-west-1")).await.unwrap();
    assert_eq!(explicit.region, "eu-west-1");
}
