//! connect's access-entry path through `apply`: the hopsworks profile on an API-mode cluster.
//! moto_server has no EKS access entries, so the EKS answers come from aws-smithy-mocks; IAM
//! is moto_server's, the cluster the Kubernetes API double. The plan is computed from what
//! was really read, then applied, and nothing is written to aws-auth.

use std::sync::{Arc, Mutex};

use aws_sdk_eks::operation::associate_access_policy::AssociateAccessPolicyOutput;
use aws_sdk_eks::operation::create_access_entry::CreateAccessEntryOutput;
use aws_sdk_eks::operation::delete_access_entry::DeleteAccessEntryOutput;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use kubectl_mlplatform::access_entry::{
    AccessEntryAction, AuthMode, DEFAULT_ACCESS_POLICY, ObservedEntry, Scope,
};
use kubectl_mlplatform::aws::{Aws, ClusterFacts};
use kubectl_mlplatform::common::{Change, DryRun};
use kubectl_mlplatform::execute::{Clients, execute};
use kubectl_mlplatform::output::Progress;
use kubectl_mlplatform::plan::{ConnectInputs, Observed, plan_connect, plan_disconnect};
use kubectl_mlplatform::profile::load_profile;
use mlplatform_namespace_policy::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use mlplatform_testkit::{KubeDouble, Moto, unique_name};
use serde_json::json;

fn eks_with(rules: &[&Rule]) -> aws_sdk_eks::Client {
    use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_eks::Client::from_conf(conf)
}

fn api_cluster(name: &str) -> ClusterFacts {
    ClusterFacts {
        name: name.into(),
        arn: format!("arn:aws:eks:us-east-1:{MOTO_ACCOUNT_ID}:cluster/{name}"),
        account: MOTO_ACCOUNT_ID.into(),
        region: "us-east-1".into(),
        oidc_issuer: None,
        authentication_mode: Some("API".into()),
        version: None,
        endpoint: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopsworks_on_an_api_cluster_creates_and_deletes_an_access_entry() {
    let moto = Moto::shared();
    let mut aws = Aws::from_conf("us-east-1", Some(&moto.endpoint()))
        .await
        .unwrap();
    let role_name = unique_name("hw-ae");
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let role_arn = aws
        .create_role(&role_name, "/", &trust, "test", &[])
        .await
        .unwrap();

    let created = Arc::new(Mutex::new(None));
    let scoped = Arc::new(Mutex::new(None));
    let (c, s) = (created.clone(), scoped.clone());
    let create = mock!(aws_sdk_eks::Client::create_access_entry)
        .match_requests(move |req| {
            *c.lock().unwrap() = Some((
                req.principal_arn().map(str::to_owned),
                req.username().map(str::to_owned),
                req.kubernetes_groups().to_vec(),
            ));
            true
        })
        .then_output(|| CreateAccessEntryOutput::builder().build());
    let associate = mock!(aws_sdk_eks::Client::associate_access_policy)
        .match_requests(move |req| {
            *s.lock().unwrap() = Some((
                req.policy_arn().map(str::to_owned),
                req.access_scope().map(|a| a.namespaces().to_vec()),
            ));
            true
        })
        .then_output(|| AssociateAccessPolicyOutput::builder().build());
    let delete = mock!(aws_sdk_eks::Client::delete_access_entry)
        .then_output(|| DeleteAccessEntryOutput::builder().build());
    aws.eks = eks_with(&[&create, &associate, &delete]);
    let double = KubeDouble::start().await;
    let kube = double.client();

    let profile = load_profile("hopsworks").unwrap();
    let cluster = api_cluster(&unique_name("c"));
    let inputs = ConnectInputs {
        namespace: "hopsworks".into(),
        params: [("instanceRoleArn".to_owned(), role_arn.clone())].into(),
        external_id: None,
        generated_external_id: "unused".into(),
        cluster_admin: false,
        delete_namespace: false,
        auth_mode: AuthMode::Auto,
        identity: kubectl_mlplatform::pod_identity::Identity::Irsa,
        replace_association: false,
    };
    let caller = aws.caller_identity().await.unwrap();
    let role = aws.get_role(&role_name).await.unwrap().unwrap();
    let observed = Observed {
        caller,
        roles: [(role_name.clone(), role)].into(),
        ..Observed::default()
    };
    let plan = plan_connect(&profile, &inputs, &cluster, &observed).unwrap();
    assert!(plan.aws_auth_step().is_none());
    execute(
        &plan,
        Clients {
            aws: Some(&aws),
            kube: Some(&kube),
        },
        DryRun::None,
        &Progress::disabled(),
    )
    .await
    .unwrap();
    assert_eq!(create.num_calls(), 1);
    assert_eq!(
        created.lock().unwrap().clone(),
        Some((
            Some(role_arn.clone()),
            Some("hopsworks".to_owned()),
            vec!["mlplatform:hopsworks".to_owned()]
        ))
    );
    assert_eq!(
        scoped.lock().unwrap().clone(),
        Some((
            Some(DEFAULT_ACCESS_POLICY.to_owned()),
            Some(vec!["hopsworks".to_owned()])
        ))
    );
    assert!(
        double
            .object("v1", "ConfigMap", Some("kube-system"), "aws-auth")
            .is_none(),
        "aws-auth must not be written on an API cluster"
    );
    let role = aws.get_role(&role_name).await.unwrap().unwrap();
    assert!(
        role.inline_policies
            .contains_key("mlplatform-hopsworks-eks-ecr")
    );

    // disconnect, with the entry as EKS now holds it: deleted, and our policy removed.
    let entry = ObservedEntry {
        username: Some("hopsworks".into()),
        groups: ["mlplatform:hopsworks".to_owned()].into(),
        tags: [(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned())].into(),
        policies: [(
            DEFAULT_ACCESS_POLICY.to_owned(),
            Scope::Namespace(["hopsworks".to_owned()].into()),
        )]
        .into(),
    };
    let observed = Observed {
        caller: aws.caller_identity().await.unwrap(),
        roles: [(role_name.clone(), role)].into(),
        access_entry: Some(entry),
        profile_namespaces: vec!["hopsworks".into()],
        ..Observed::default()
    };
    let down = plan_disconnect(&profile, &inputs, &cluster, &observed).unwrap();
    let step = down.access_entry_step().unwrap();
    assert_eq!(step.change, Change::Deleted);
    assert_eq!(step.actions, [AccessEntryAction::DeleteEntry]);
    execute(
        &down,
        Clients {
            aws: Some(&aws),
            kube: Some(&kube),
        },
        DryRun::None,
        &Progress::disabled(),
    )
    .await
    .unwrap();
    assert_eq!(delete.num_calls(), 1);
    let role = aws.get_role(&role_name).await.unwrap().expect("role kept");
    assert!(role.inline_policies.is_empty());
}
