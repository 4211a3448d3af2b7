//! The EKS stand-in in front of moto, through the real aws-sdk-eks client (part of the
//! `moto_smoke` test binary): Pod Identity and add-ons here, the rest in `standin_access`.

use std::time::Duration;

use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eks::types::{
    AddonStatus, AuthenticationMode, CreateAccessConfigRequest, VpcConfigRequest,
};
use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use mlplatform_testkit::{EksStandIn, unique_name};

pub(crate) const POD_IDENTITY_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

/// The error code and message the SDK surfaces.
pub(crate) fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> (String, String) {
    (
        err.code().unwrap_or("<none>").to_string(),
        err.message().unwrap_or("").to_string(),
    )
}

pub(crate) async fn clients(standin: &EksStandIn) -> (aws_sdk_eks::Client, aws_sdk_iam::Client) {
    let config = standin.sdk_config().await;
    (
        aws_sdk_eks::Client::new(&config),
        aws_sdk_iam::Client::new(&config),
    )
}

/// A cluster made through the stand-in with the SDK (CreateCluster goes to moto).
pub(crate) async fn create_cluster(
    eks: &aws_sdk_eks::Client,
    mode: Option<AuthenticationMode>,
) -> String {
    let name = unique_name("eks");
    let mut create = eks
        .create_cluster()
        .name(&name)
        .role_arn(format!(
            "arn:aws:iam::{MOTO_ACCOUNT_ID}:role/eks-cluster-role"
        ))
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-1").build());
    if let Some(mode) = mode {
        let config = CreateAccessConfigRequest::builder()
            .authentication_mode(mode)
            .build();
        create = create.access_config(config);
    }
    let made = create.send().await.unwrap();
    assert_eq!(made.cluster().and_then(|c| c.name()), Some(name.as_str()));
    name
}

pub(crate) async fn create_role(iam: &aws_sdk_iam::Client, trust: &str) -> String {
    let made = iam
        .create_role()
        .role_name(unique_name("role"))
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
    made.role().map(|r| r.arn().to_string()).unwrap()
}

#[tokio::test]
async fn pod_identity_associations_through_the_sdk() {
    let standin = EksStandIn::shared();
    let (eks, iam) = clients(standin).await;
    let cluster = create_cluster(&eks, None).await;
    let role = create_role(&iam, POD_IDENTITY_TRUST).await;

    let made = eks
        .create_pod_identity_association()
        .cluster_name(&cluster)
        .namespace("ml-team")
        .service_account("trainer")
        .role_arn(&role)
        .tags("app.kubernetes.io/managed-by", "kubectl-mlplatform")
        .send()
        .await
        .unwrap();
    let made = made.association().unwrap();
    let id = made.association_id().unwrap().to_string();
    assert_eq!(id.len(), 19, "{id}");
    assert_eq!(made.role_arn(), Some(role.as_str()));
    assert_eq!(
        made.association_arn(),
        Some(
            format!(
                "arn:aws:eks:us-east-1:{MOTO_ACCOUNT_ID}:podidentityassociation/{cluster}/{id}"
            )
            .as_str()
        )
    );
    assert_eq!(
        made.tags()
            .and_then(|t| t.get("app.kubernetes.io/managed-by"))
            .map(String::as_str),
        Some("kubectl-mlplatform")
    );
    assert!(made.created_at().is_some() && made.disable_session_tags() == Some(false));

    let described = eks
        .describe_pod_identity_association()
        .cluster_name(&cluster)
        .association_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.association().and_then(|a| a.service_account()),
        Some("trainer")
    );

    // The same ServiceAccount again: the error the SDK surfaces, as on EKS.
    let again = eks
        .create_pod_identity_association()
        .cluster_name(&cluster)
        .namespace("ml-team")
        .service_account("trainer")
        .role_arn(&role)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&again),
        (
            "ResourceInUseException".into(),
            format!("Association already exists: {id}")
        )
    );
    assert!(again.into_service_error().is_resource_in_use_exception());

    // Roles are looked up in moto's IAM, as EKS looks them up.
    let oidc_only = create_role(&iam, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/x"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#).await;
    for (role_arn, message) in [
        (
            oidc_only.as_str(),
            "Trust policy of the role provided is invalid",
        ),
        (
            "arn:aws:iam::123456789012:role/nobody",
            "Role provided in the request does not exist",
        ),
    ] {
        let err = eks
            .create_pod_identity_association()
            .cluster_name(&cluster)
            .namespace("ml-team")
            .service_account("other")
            .role_arn(role_arn)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(&err),
            ("InvalidParameterException".into(), message.into())
        );
    }

    // Filters and pages.
    for sa in ["a", "b", "c"] {
        eks.create_pod_identity_association()
            .cluster_name(&cluster)
            .namespace("batch")
            .service_account(sa)
            .role_arn(&role)
            .send()
            .await
            .unwrap();
    }
    let first = eks
        .list_pod_identity_associations()
        .cluster_name(&cluster)
        .namespace("batch")
        .max_results(2)
        .send()
        .await
        .unwrap();
    let names = |page: &[aws_sdk_eks::types::PodIdentityAssociationSummary]| {
        page.iter()
            .filter_map(|a| a.service_account().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(first.associations()), ["a", "b"]);
    let second = eks
        .list_pod_identity_associations()
        .cluster_name(&cluster)
        .namespace("batch")
        .max_results(2)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(names(second.associations()), ["c"]);
    assert_eq!(second.next_token(), None);
    let by_sa = eks
        .list_pod_identity_associations()
        .cluster_name(&cluster)
        .service_account("trainer")
        .send()
        .await
        .unwrap();
    assert_eq!(names(by_sa.associations()), ["trainer"]);

    // Tags on the association's ARN.
    let arn = made.association_arn().unwrap();
    eks.tag_resource()
        .resource_arn(arn)
        .tags("team", "ml")
        .send()
        .await
        .unwrap();
    let tags = eks
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().map(|t| t.len()), Some(2));
    eks.untag_resource()
        .resource_arn(arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = eks
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert!(!tags.tags().unwrap().contains_key("team"));

    // Update, delete, and then it is gone.
    let other_role = create_role(&iam, POD_IDENTITY_TRUST).await;
    let updated = eks
        .update_pod_identity_association()
        .cluster_name(&cluster)
        .association_id(&id)
        .role_arn(&other_role)
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.association().and_then(|a| a.role_arn()),
        Some(other_role.as_str())
    );
    let deleted = eks
        .delete_pod_identity_association()
        .cluster_name(&cluster)
        .association_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted.association().and_then(|a| a.association_id()),
        Some(id.as_str())
    );
    let gone = eks
        .describe_pod_identity_association()
        .cluster_name(&cluster)
        .association_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(gone.into_service_error().is_resource_not_found_exception());

    // A cluster moto does not have.
    let missing = eks
        .list_pod_identity_associations()
        .cluster_name("no-such-cluster")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&missing),
        (
            "ResourceNotFoundException".into(),
            "No cluster found for name: no-such-cluster.".into()
        )
    );
    // What was written on this cluster (reads are not writes), for "a re-run writes nothing".
    let writes = standin.eks_writes_for(&cluster);
    let ops: Vec<&str> = writes
        .iter()
        .filter_map(|c| c.operation.as_deref())
        .collect();
    for op in [
        "CreatePodIdentityAssociation",
        "TagResource",
        "UntagResource",
        "UpdatePodIdentityAssociation",
        "DeletePodIdentityAssociation",
    ] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    eks.list_pod_identity_associations()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    assert_eq!(standin.eks_writes_for(&cluster).len(), writes.len());
}

#[tokio::test]
async fn addons_and_presets() {
    let standin = EksStandIn::shared();
    let (eks, _) = clients(standin).await;
    let cluster = create_cluster(&eks, None).await;

    let made = eks
        .create_addon()
        .cluster_name(&cluster)
        .addon_name("eks-pod-identity-agent")
        .send()
        .await
        .unwrap();
    assert_eq!(
        made.addon().and_then(|a| a.status()),
        Some(&AddonStatus::Creating)
    );
    let seen = eks
        .describe_addon()
        .cluster_name(&cluster)
        .addon_name("eks-pod-identity-agent")
        .send()
        .await
        .unwrap();
    let addon = seen.addon().unwrap();
    assert_eq!(addon.status(), Some(&AddonStatus::Active));
    assert!(
        addon
            .addon_version()
            .is_some_and(|v| v.contains("eksbuild"))
    );
    let again = eks
        .create_addon()
        .cluster_name(&cluster)
        .addon_name("eks-pod-identity-agent")
        .send()
        .await
        .unwrap_err();
    assert!(again.into_service_error().is_resource_in_use_exception());

    // With a delay: CREATING first, then ACTIVE. The delay leaves room for the create and the
    // describe on a busy machine; ACTIVE is then waited for, not assumed after a fixed sleep.
    standin.set_addon_delay(&cluster, Duration::from_secs(2));
    eks.create_addon()
        .cluster_name(&cluster)
        .addon_name("vpc-cni")
        .send()
        .await
        .unwrap();
    let describe = |name: &'static str| {
        eks.describe_addon()
            .cluster_name(&cluster)
            .addon_name(name)
            .send()
    };
    let status = |out: aws_sdk_eks::operation::describe_addon::DescribeAddonOutput| {
        out.addon().and_then(|a| a.status()).cloned()
    };
    assert_eq!(
        status(describe("vpc-cni").await.unwrap()),
        Some(AddonStatus::Creating)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = status(describe("vpc-cni").await.unwrap());
        if now == Some(AddonStatus::Active) {
            break;
        }
        assert_eq!(now, Some(AddonStatus::Creating));
        assert!(
            std::time::Instant::now() < deadline,
            "vpc-cni still CREATING 30 s after a 2 s delay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // DEGRADED, as a test presets it.
    standin.preset_addon(
        &cluster,
        "coredns",
        "DEGRADED",
        &[("InsufficientNumberOfReplicas", "0/2 ready")],
    );
    let degraded = describe("coredns").await.unwrap();
    let addon = degraded.addon().unwrap();
    assert_eq!(addon.status(), Some(&AddonStatus::Degraded));
    let issues = addon.health().map(|h| h.issues()).unwrap_or_default();
    assert_eq!(issues[0].message(), Some("0/2 ready"));

    let listed = eks
        .list_addons()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.addons(),
        ["coredns", "eks-pod-identity-agent", "vpc-cni"]
    );
    eks.delete_addon()
        .cluster_name(&cluster)
        .addon_name("vpc-cni")
        .send()
        .await
        .unwrap();
    assert!(standin.remove_addon(&cluster, "eks-pod-identity-agent"));
    let missing = describe("eks-pod-identity-agent").await.unwrap_err();
    assert_eq!(
        code(&missing),
        (
            "ResourceNotFoundException".into(),
            format!("No addon: eks-pod-identity-agent found in cluster: {cluster}")
        )
    );

    // An association someone else made for the ServiceAccount.
    let theirs = standin.preset_pod_identity_association(
        &cluster,
        "ml-team",
        "trainer",
        "arn:aws:iam::123456789012:role/theirs",
        &[("owner", "them")],
    );
    standin.skip_role_checks(&cluster);
    let clash = eks
        .create_pod_identity_association()
        .cluster_name(&cluster)
        .namespace("ml-team")
        .service_account("trainer")
        .role_arn("arn:aws:iam::123456789012:role/ours")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&clash).1,
        format!("Association already exists: {theirs}")
    );
    let found = eks
        .list_pod_identity_associations()
        .cluster_name(&cluster)
        .namespace("ml-team")
        .service_account("trainer")
        .send()
        .await
        .unwrap();
    assert_eq!(
        found.associations()[0].association_id(),
        Some(theirs.as_str())
    );
}
