//! AWS answers moto_server cannot give (expired credentials, access denied, an EKS
//! authentication mode), through the real `Aws` methods with SDK clients whose responses come
//! from aws-smithy-mocks instead of the network.

use aws_smithy_mocks::{MockResponseInterceptor, Rule, create_mock_http_client, mock};
use kubectl_mlplatform::aws::{Aws, AwsError};

/// An `Aws` for one test: the client under test is swapped for a mock; the others (pointed at
/// an unused local endpoint) are never called.
async fn offline() -> Aws {
    Aws::from_conf("us-east-1", Some("http://127.0.0.1:1"))
        .await
        .unwrap()
}

fn sts_with(rule: &Rule) -> aws_sdk_sts::Client {
    use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .http_client(create_mock_http_client())
        .interceptor(MockResponseInterceptor::new().with_rule(rule))
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

/// An IAM client answering from `rules` (any order).
fn iam_with(rules: &[&Rule]) -> aws_sdk_iam::Client {
    use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
    let mut interceptor =
        MockResponseInterceptor::new().rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_iam::Client::from_conf(conf)
}

fn eks_with(rule: &Rule) -> aws_sdk_eks::Client {
    use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .http_client(create_mock_http_client())
        .interceptor(MockResponseInterceptor::new().with_rule(rule))
        .build();
    aws_sdk_eks::Client::from_conf(conf)
}

#[tokio::test]
async fn expired_token_from_sts_is_one_actionable_line() {
    use aws_sdk_sts::error::ErrorMetadata;
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
    let rule = mock!(aws_sdk_sts::Client::get_caller_identity).then_error(|| {
        GetCallerIdentityError::generic(
            ErrorMetadata::builder()
                .code("ExpiredToken")
                .message("The security token included in the request is expired")
                .build(),
        )
    });
    let mut aws = offline().await;
    aws.sts = sts_with(&rule);
    let err = aws.caller_identity().await.unwrap_err();
    assert_eq!(err, AwsError::CredentialsExpired);
    assert_eq!(
        err.to_string(),
        "AWS credentials expired: refresh them (e.g. `aws sso login`) and re-run"
    );
}

#[tokio::test]
async fn access_denied_names_the_iam_action() {
    use aws_sdk_iam::error::ErrorMetadata;
    use aws_sdk_iam::operation::get_role::GetRoleError;
    let rule = mock!(aws_sdk_iam::Client::get_role).then_error(|| {
        GetRoleError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User: arn:aws:iam::1:user/x is not authorized to perform: iam:GetRole")
                .build(),
        )
    });
    // The role's policy lists are read beside it (one round trip): denied as well.
    let denied = || {
        ErrorMetadata::builder()
            .code("AccessDenied")
            .message("not authorized")
            .build()
    };
    let list = mock!(aws_sdk_iam::Client::list_role_policies).then_error(move || {
        aws_sdk_iam::operation::list_role_policies::ListRolePoliciesError::generic(denied())
    });
    let attached = mock!(aws_sdk_iam::Client::list_attached_role_policies).then_error(move || {
        aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesError::generic(
            denied(),
        )
    });
    let mut aws = offline().await;
    aws.iam = iam_with(&[&rule, &list, &attached]);
    // GetRole's answer decides which action the message names.
    let err = aws.get_role("vendor").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("access denied for iam:GetRole ("),
        "{err}"
    );
}

#[tokio::test]
async fn authentication_mode_and_issuer_come_from_describe_cluster() {
    use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
    use aws_sdk_eks::types::{AccessConfigResponse, AuthenticationMode, Cluster, Identity, Oidc};
    let rule = mock!(aws_sdk_eks::Client::describe_cluster).then_output(|| {
        DescribeClusterOutput::builder()
            .cluster(
                Cluster::builder()
                    .name("prod")
                    .arn("arn:aws:eks:eu-west-1:111122223333:cluster/prod")
                    .version("1.33")
                    .identity(
                        Identity::builder()
                            .oidc(
                                Oidc::builder()
                                    .issuer("https://oidc.eks.eu-west-1.amazonaws.com/id/ABC")
                                    .build(),
                            )
                            .build(),
                    )
                    .access_config(
                        AccessConfigResponse::builder()
                            .authentication_mode(AuthenticationMode::ApiAndConfigMap)
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let mut aws = offline().await;
    aws.eks = eks_with(&rule);
    let facts = aws.describe_cluster("prod").await.unwrap();
    assert_eq!(facts.account, "111122223333");
    assert_eq!(facts.region, "eu-west-1");
    assert_eq!(
        facts.authentication_mode.as_deref(),
        Some("API_AND_CONFIG_MAP")
    );
    assert_eq!(
        facts.oidc_issuer.as_deref(),
        Some("https://oidc.eks.eu-west-1.amazonaws.com/id/ABC")
    );
}

#[tokio::test]
async fn a_cluster_answer_without_an_arn_is_reported_not_panicked() {
    use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
    use aws_sdk_eks::types::Cluster;
    let rule = mock!(aws_sdk_eks::Client::describe_cluster).then_output(|| {
        DescribeClusterOutput::builder()
            .cluster(Cluster::builder().name("x").build())
            .build()
    });
    let mut aws = offline().await;
    aws.eks = eks_with(&rule);
    let err = aws.describe_cluster("x").await.unwrap_err();
    assert!(matches!(err, AwsError::BadResponse { .. }), "{err}");
}

/// An endpoint that accepts connections and never answers must not hang the command.
#[tokio::test]
async fn a_silent_endpoint_times_out_instead_of_hanging() {
    use kubectl_mlplatform::aws::AwsSettings;
    use std::time::Duration;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // read nothing, answer nothing
        }
    });
    let aws = Aws::from_settings(AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(format!("http://{addr}")),
        static_credentials: Some(("a".into(), "b".into())),
        attempt_timeout: Some(Duration::from_millis(300)),
        ..AwsSettings::default()
    })
    .await
    .unwrap();
    // Without the attempt timeout this call would wait forever; the guard only turns such a
    // hang into a failure, it measures nothing.
    let result = tokio::time::timeout(Duration::from_secs(120), aws.caller_identity()).await;
    let err = result.expect("caller_identity hung").unwrap_err();
    assert!(
        matches!(err, AwsError::EndpointUnreachable { .. }),
        "{err:?}"
    );
}
