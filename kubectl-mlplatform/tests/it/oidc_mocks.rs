//! `oidc associate` when another run creates the provider between our read and our write: a
//! race moto cannot stage on demand, so IAM and EKS answers come from aws-smithy-mocks.

use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
use aws_sdk_eks::types::{Cluster, Identity, Oidc};
use aws_sdk_iam::error::ErrorMetadata;
use aws_sdk_iam::operation::create_open_id_connect_provider::CreateOpenIDConnectProviderError;
use aws_sdk_iam::operation::list_open_id_connect_providers::ListOpenIdConnectProvidersOutput;
use aws_sdk_iam::types::OpenIdConnectProviderListEntry;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use kubectl_mlplatform::aws::Aws;
use kubectl_mlplatform::common::{Change, DryRun};
use kubectl_mlplatform::execute::{Clients, execute};
use kubectl_mlplatform::oidc::{ThumbprintOptions, plan_oidc, read_oidc_facts};
use kubectl_mlplatform::output::Progress;

const ISSUER: &str = "https://oidc.eks.eu-west-1.amazonaws.com/id/RACE";
const PROVIDER: &str =
    "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/RACE";

#[tokio::test]
async fn a_provider_created_meanwhile_counts_as_already_there() {
    use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
    let cluster = mock!(aws_sdk_eks::Client::describe_cluster).then_output(|| {
        DescribeClusterOutput::builder()
            .cluster(
                Cluster::builder()
                    .name("prod")
                    .arn("arn:aws:eks:eu-west-1:111122223333:cluster/prod")
                    .identity(
                        Identity::builder()
                            .oidc(Oidc::builder().issuer(ISSUER).build())
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let list = mock!(aws_sdk_iam::Client::list_open_id_connect_providers)
        .sequence()
        .output(|| ListOpenIdConnectProvidersOutput::builder().build())
        .output(|| {
            ListOpenIdConnectProvidersOutput::builder()
                .open_id_connect_provider_list(
                    OpenIdConnectProviderListEntry::builder()
                        .arn(PROVIDER)
                        .build(),
                )
                .build()
        })
        .build();
    let create = mock!(aws_sdk_iam::Client::create_open_id_connect_provider).then_error(|| {
        CreateOpenIDConnectProviderError::generic(
            ErrorMetadata::builder()
                .code("EntityAlreadyExists")
                .message("Provider with url already exists.")
                .build(),
        )
    });

    let mut aws = Aws::from_conf("eu-west-1", Some("http://127.0.0.1:1"))
        .await
        .unwrap();
    aws.eks = {
        use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_eks::Client::from_conf(
            aws_sdk_eks::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .credentials_provider(Credentials::new("a", "b", None, None, "test"))
                .http_client(create_mock_http_client())
                .interceptor(MockResponseInterceptor::new().with_rule(&cluster))
                .build(),
        )
    };
    let rules: [&Rule; 2] = [&list, &create];
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    aws.iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("a", "b", None, None, "test"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    );
    let options = ThumbprintOptions {
        fetch: false,
        ..ThumbprintOptions::default()
    };
    let facts = read_oidc_facts(&aws, "prod", &options).await.unwrap();
    let plan = plan_oidc(&facts.cluster, facts.existing, facts.thumbprint).unwrap();
    assert_eq!(plan.outputs.change, Change::Created);
    assert_eq!(plan.outputs.provider_arn, PROVIDER);
    let clients = Clients {
        aws: Some(&aws),
        kube: None,
    };
    // EntityAlreadyExists: the provider is there, which is the goal, so not a failure.
    execute(&plan, clients, DryRun::None, &Progress::disabled())
        .await
        .unwrap();
    assert_eq!((list.num_calls(), create.num_calls()), (1, 1));
}
