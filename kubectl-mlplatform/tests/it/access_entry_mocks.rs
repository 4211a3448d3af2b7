//! `cluster_access::ensure_cluster_access` / `remove_cluster_access` (one step each, through the
//! one executor). moto_server does not implement EKS access
//! entries, so the EKS answers here come from aws-smithy-mocks (through the real `Aws` type and
//! the SDK's request/response pipeline); the aws-auth path runs against the Kubernetes API
//! double.

use std::sync::{Arc, Mutex};

use aws_sdk_eks::error::ErrorMetadata;
use aws_sdk_eks::operation::associate_access_policy::AssociateAccessPolicyOutput;
use aws_sdk_eks::operation::create_access_entry::CreateAccessEntryOutput;
use aws_sdk_eks::operation::delete_access_entry::DeleteAccessEntryOutput;
use aws_sdk_eks::operation::describe_access_entry::{
    DescribeAccessEntryError, DescribeAccessEntryOutput,
};
use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
use aws_sdk_eks::operation::list_associated_access_policies::ListAssociatedAccessPoliciesOutput;
use aws_sdk_eks::types::{
    AccessConfigResponse, AccessEntry, AccessScope, AccessScopeType, AssociatedAccessPolicy,
    AuthenticationMode, Cluster,
};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use kubectl_mlplatform::access_entry::{
    AccessEntryAction, AccessEntryError, AuthMode, DEFAULT_ACCESS_POLICY, Mechanism,
};
use kubectl_mlplatform::aws::Aws;
use kubectl_mlplatform::cluster_access::{
    ClusterAccessError, ensure_cluster_access, remove_cluster_access,
};
use kubectl_mlplatform::common::{Change, DryRun};
use mlplatform_testkit::KubeDouble;

const ROLE: &str = "arn:aws:iam::111122223333:role/vendor";

fn eks_with(rules: &[&Rule]) -> aws_sdk_eks::Client {
    use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_eks::Client::from_conf(conf)
}

async fn aws_with(rules: &[&Rule]) -> Aws {
    let mut aws = Aws::from_conf("eu-west-1", Some("http://127.0.0.1:1"))
        .await
        .unwrap();
    aws.eks = eks_with(rules);
    aws
}

fn cluster_rule(mode: AuthenticationMode) -> Rule {
    mock!(aws_sdk_eks::Client::describe_cluster).then_output(move || {
        DescribeClusterOutput::builder()
            .cluster(
                Cluster::builder()
                    .name("prod")
                    .arn("arn:aws:eks:eu-west-1:111122223333:cluster/prod")
                    .access_config(
                        AccessConfigResponse::builder()
                            .authentication_mode(mode.clone())
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

fn no_entry_rule() -> Rule {
    mock!(aws_sdk_eks::Client::describe_access_entry).then_error(|| {
        DescribeAccessEntryError::generic(
            ErrorMetadata::builder()
                .code("ResourceNotFoundException")
                .message("The specified access entry resource is not found")
                .build(),
        )
    })
}

fn our_entry_rule(groups: &'static [&'static str], tagged: bool) -> Rule {
    mock!(aws_sdk_eks::Client::describe_access_entry).then_output(move || {
        let mut entry = AccessEntry::builder()
            .principal_arn(ROLE)
            .username("vendor")
            .set_kubernetes_groups(Some(groups.iter().map(|g| (*g).to_owned()).collect()));
        if tagged {
            entry = entry.tags("app.kubernetes.io/managed-by", "kubectl-mlplatform");
        }
        DescribeAccessEntryOutput::builder()
            .access_entry(entry.build())
            .build()
    })
}

fn associated_rule(namespaces: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_eks::Client::list_associated_access_policies).then_output(move || {
        ListAssociatedAccessPoliciesOutput::builder()
            .associated_access_policies(
                AssociatedAccessPolicy::builder()
                    .policy_arn(DEFAULT_ACCESS_POLICY)
                    .access_scope(
                        AccessScope::builder()
                            .r#type(AccessScopeType::Namespace)
                            .set_namespaces(Some(
                                namespaces.iter().map(|n| (*n).to_owned()).collect(),
                            ))
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

fn ns(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn api_mode_creates_an_entry_with_a_namespace_scoped_policy() {
    let created = Arc::new(Mutex::new(None));
    let scoped = Arc::new(Mutex::new(None));
    let (c, s) = (created.clone(), scoped.clone());
    let create = mock!(aws_sdk_eks::Client::create_access_entry)
        .match_requests(move |req| {
            *c.lock().unwrap() = Some((
                req.principal_arn().map(str::to_owned),
                req.username().map(str::to_owned),
                Some(req.kubernetes_groups().to_vec()),
                req.tags()
                    .and_then(|t| t.get("app.kubernetes.io/managed-by").cloned()),
            ));
            true
        })
        .then_output(|| CreateAccessEntryOutput::builder().build());
    let associate = mock!(aws_sdk_eks::Client::associate_access_policy)
        .match_requests(move |req| {
            *s.lock().unwrap() = Some((
                req.policy_arn().map(str::to_owned),
                req.access_scope()
                    .map(|a| (a.r#type().cloned(), a.namespaces().to_vec())),
            ));
            true
        })
        .then_output(|| AssociateAccessPolicyOutput::builder().build());
    let cluster = cluster_rule(AuthenticationMode::ApiAndConfigMap);
    let missing = no_entry_rule();
    let aws = aws_with(&[&cluster, &missing, &create, &associate]).await;
    let double = KubeDouble::start().await;

    let outcome = ensure_cluster_access(
        &aws,
        &double.client(),
        "prod",
        ROLE,
        "vendor",
        &ns(&["mlplatform:vendor"]),
        &ns(&["team-b", "team-a"]),
        None,
        AuthMode::Auto,
        DryRun::None,
    )
    .await
    .unwrap();
    assert_eq!(outcome.mechanism, Mechanism::AccessEntry);
    assert_eq!(outcome.change, Change::Created);
    assert_eq!(create.num_calls(), 1);
    assert_eq!(associate.num_calls(), 1);
    assert_eq!(
        created.lock().unwrap().clone().unwrap(),
        (
            Some(ROLE.to_owned()),
            Some("vendor".to_owned()),
            Some(ns(&["mlplatform:vendor"])),
            Some("kubectl-mlplatform".to_owned())
        )
    );
    assert_eq!(
        scoped.lock().unwrap().clone().unwrap(),
        (
            Some(DEFAULT_ACCESS_POLICY.to_owned()),
            Some((Some(AccessScopeType::Namespace), ns(&["team-a", "team-b"])))
        )
    );
    // aws-auth was not touched.
    assert!(double.mutating_requests().is_empty());
}

#[tokio::test]
async fn an_entry_already_as_wanted_writes_nothing_and_dry_run_only_reads() {
    let cluster = cluster_rule(AuthenticationMode::Api);
    let entry = our_entry_rule(&["mlplatform:vendor"], true);
    let listed = associated_rule(&["team-a", "team-b"]);
    let create = mock!(aws_sdk_eks::Client::create_access_entry)
        .then_output(|| CreateAccessEntryOutput::builder().build());
    let associate = mock!(aws_sdk_eks::Client::associate_access_policy)
        .then_output(|| AssociateAccessPolicyOutput::builder().build());
    let aws = aws_with(&[&cluster, &entry, &listed, &create, &associate]).await;
    let double = KubeDouble::start().await;
    let outcome = ensure_cluster_access(
        &aws,
        &double.client(),
        "prod",
        ROLE,
        "vendor",
        &ns(&["mlplatform:vendor"]),
        &ns(&["team-a", "team-b"]),
        None,
        AuthMode::AccessEntry,
        DryRun::None,
    )
    .await
    .unwrap();
    assert_eq!(
        (outcome.change, outcome.actions.len()),
        (Change::Unchanged, 0)
    );

    // A third namespace: planned as an update, but a client dry run sends nothing.
    let outcome = ensure_cluster_access(
        &aws,
        &double.client(),
        "prod",
        ROLE,
        "vendor",
        &ns(&["mlplatform:vendor"]),
        &ns(&["team-a", "team-b", "team-c"]),
        None,
        AuthMode::Auto,
        DryRun::Client,
    )
    .await
    .unwrap();
    assert_eq!(outcome.change, Change::Updated);
    assert!(matches!(
        outcome.actions.as_slice(),
        [AccessEntryAction::AssociatePolicy { .. }]
    ));
    assert_eq!(create.num_calls() + associate.num_calls(), 0);
}

#[tokio::test]
async fn an_entry_someone_else_made_is_refused_and_not_deleted() {
    let cluster = cluster_rule(AuthenticationMode::Api);
    let entry = our_entry_rule(&["admins"], false);
    let listed = associated_rule(&[]);
    let delete = mock!(aws_sdk_eks::Client::delete_access_entry)
        .then_output(|| DeleteAccessEntryOutput::builder().build());
    let aws = aws_with(&[&cluster, &entry, &listed, &delete]).await;
    let double = KubeDouble::start().await;
    let err = remove_cluster_access(
        &aws,
        &double.client(),
        "prod",
        ROLE,
        AuthMode::Auto,
        DryRun::None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ClusterAccessError::Access(AccessEntryError::NotOurs { .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("aws eks delete-access-entry"),
        "{err}"
    );
    assert_eq!(delete.num_calls(), 0);
}

#[tokio::test]
async fn remove_deletes_our_entry() {
    let cluster = cluster_rule(AuthenticationMode::ApiAndConfigMap);
    let entry = our_entry_rule(&["mlplatform:vendor"], true);
    let listed = associated_rule(&["team-a"]);
    let delete = mock!(aws_sdk_eks::Client::delete_access_entry)
        .match_requests(|req| {
            req.principal_arn() == Some(ROLE) && req.cluster_name() == Some("prod")
        })
        .then_output(|| DeleteAccessEntryOutput::builder().build());
    let aws = aws_with(&[&cluster, &entry, &listed, &delete]).await;
    let double = KubeDouble::start().await;
    let outcome = remove_cluster_access(
        &aws,
        &double.client(),
        "prod",
        ROLE,
        AuthMode::Auto,
        DryRun::None,
    )
    .await
    .unwrap();
    assert_eq!(outcome.change, Change::Deleted);
    assert_eq!(delete.num_calls(), 1);
}

#[tokio::test]
async fn config_map_mode_maps_through_aws_auth_and_back() {
    let cluster = cluster_rule(AuthenticationMode::ConfigMap);
    let describe_entry = no_entry_rule();
    let aws = aws_with(&[&cluster, &describe_entry]).await;
    let double = KubeDouble::start().await;
    let client = double.client();
    let path_role = "arn:aws:iam::111122223333:role/team/vendor";
    let outcome = ensure_cluster_access(
        &aws,
        &client,
        "prod",
        path_role,
        "vendor",
        &ns(&["mlplatform:vendor"]),
        &ns(&["team-a"]),
        None,
        AuthMode::Auto,
        DryRun::None,
    )
    .await
    .unwrap();
    assert_eq!(
        (outcome.mechanism, outcome.change),
        (Mechanism::AwsAuth, Change::Created)
    );
    let cm = double
        .object("v1", "ConfigMap", Some("kube-system"), "aws-auth")
        .expect("aws-auth");
    let roles = cm["data"]["mapRoles"].as_str().unwrap();
    // The path is stripped: aws-iam-authenticator never matches it.
    assert!(
        roles.contains("rolearn: arn:aws:iam::111122223333:role/vendor"),
        "{roles}"
    );
    assert!(roles.contains("mlplatform:vendor"), "{roles}");
    assert_eq!(describe_entry.num_calls(), 0);

    // Explicitly asking for access entries on a CONFIG_MAP cluster is one clear error.
    let err = ensure_cluster_access(
        &aws,
        &client,
        "prod",
        path_role,
        "vendor",
        &[],
        &ns(&["team-a"]),
        None,
        AuthMode::AccessEntry,
        DryRun::None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ClusterAccessError::Access(AccessEntryError::AccessEntriesDisabled { .. })
        ),
        "{err}"
    );

    let outcome = remove_cluster_access(
        &aws,
        &client,
        "prod",
        path_role,
        AuthMode::Configmap,
        DryRun::None,
    )
    .await
    .unwrap();
    assert_eq!(outcome.change, Change::Deleted);
    let cm = double
        .object("v1", "ConfigMap", Some("kube-system"), "aws-auth")
        .unwrap();
    assert!(
        !cm["data"]["mapRoles"]
            .as_str()
            .unwrap_or_default()
            .contains("role/vendor"),
        "{cm}"
    );
}
