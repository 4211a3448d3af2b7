//! EKS Pod Identity through the SDK: read the associations of ServiceAccounts
//! (ListPodIdentityAssociations filtered by namespace and ServiceAccount, then
//! DescribePodIdentityAssociation for the role and tags) and an add-on; carry out the
//! association step a plan lists.

use std::collections::{BTreeMap, HashMap};

use futures::future::try_join_all;

use crate::aws::{Aws, AwsError, classify, ignore_missing, missing_as_none};
use crate::facts::{AddonFacts, PodIdentityAssociationFacts, ServiceAccountKey};
use crate::steps::{PodIdentityAction, PodIdentityStep};

/// Every association of each ServiceAccount in `keys` (in parallel).
pub(crate) async fn read_associations(
    aws: &Aws,
    cluster: &str,
    keys: impl IntoIterator<Item = ServiceAccountKey>,
) -> Result<BTreeMap<ServiceAccountKey, Vec<PodIdentityAssociationFacts>>, AwsError> {
    let found = try_join_all(keys.into_iter().map(|(ns, sa)| async move {
        let live = associations_of(aws, cluster, &ns, &sa).await?;
        Ok::<_, AwsError>(((ns, sa), live))
    }))
    .await?;
    Ok(found.into_iter().collect())
}

/// The associations EKS lists for one ServiceAccount, described.
async fn associations_of(
    aws: &Aws,
    cluster: &str,
    namespace: &str,
    service_account: &str,
) -> Result<Vec<PodIdentityAssociationFacts>, AwsError> {
    const OP: &str = "eks:ListPodIdentityAssociations";
    let mut ids = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = aws
            .eks
            .list_pod_identity_associations()
            .cluster_name(cluster)
            .namespace(namespace)
            .service_account(service_account)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        ids.extend(
            page.associations()
                .iter()
                .filter_map(|a| a.association_id().map(str::to_owned)),
        );
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => break,
        }
    }
    let described = try_join_all(ids.iter().map(|id| describe(aws, cluster, id))).await?;
    Ok(described.into_iter().flatten().collect())
}

/// One association; None when it went away meanwhile.
async fn describe(
    aws: &Aws,
    cluster: &str,
    id: &str,
) -> Result<Option<PodIdentityAssociationFacts>, AwsError> {
    const OP: &str = "eks:DescribePodIdentityAssociation";
    let out = match aws
        .eks
        .describe_pod_identity_association()
        .cluster_name(cluster)
        .association_id(id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => return missing_as_none(classify(OP, e)),
    };
    Ok(out.association().map(|a| PodIdentityAssociationFacts {
        id: a.association_id().unwrap_or(id).to_owned(),
        arn: a.association_arn().unwrap_or_default().to_owned(),
        namespace: a.namespace().unwrap_or_default().to_owned(),
        service_account: a.service_account().unwrap_or_default().to_owned(),
        role_arn: a.role_arn().unwrap_or_default().to_owned(),
        tags: a
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }))
}

/// The add-on `name`; None when it is not installed.
pub(crate) async fn read_addon(
    aws: &Aws,
    cluster: &str,
    name: &str,
) -> Result<Option<AddonFacts>, AwsError> {
    const OP: &str = "eks:DescribeAddon";
    let out = match aws
        .eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(name)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => return missing_as_none(classify(OP, e)),
    };
    Ok(out.addon().map(|a| AddonFacts {
        name: a.addon_name().unwrap_or(name).to_owned(),
        status: a
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        version: a.addon_version().map(str::to_owned),
        issues: a
            .health()
            .map(|h| {
                h.issues()
                    .iter()
                    .map(|i| {
                        format!(
                            "{}: {}",
                            i.code().map(|c| c.as_str()).unwrap_or("Unknown"),
                            i.message().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }))
}

fn tag_map(tags: &[(String, String)]) -> HashMap<String, String> {
    tags.iter().cloned().collect()
}

/// Carries out one association step.
pub(crate) async fn apply_pod_identity(aws: &Aws, step: &PodIdentityStep) -> Result<(), AwsError> {
    match &step.action {
        PodIdentityAction::None => Ok(()),
        PodIdentityAction::Create { tags } => {
            const OP: &str = "eks:CreatePodIdentityAssociation";
            let sent = aws
                .eks
                .create_pod_identity_association()
                .cluster_name(&step.cluster)
                .namespace(&step.namespace)
                .service_account(&step.service_account)
                .role_arn(&step.role_arn)
                .set_tags(Some(tag_map(tags)))
                .send()
                .await;
            match sent {
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = classify(OP, e);
                    // Made meanwhile (a concurrent run): the goal holds when it is for our role.
                    if e.code() == Some("ResourceInUseException") {
                        let live = associations_of(
                            aws,
                            &step.cluster,
                            &step.namespace,
                            &step.service_account,
                        )
                        .await?;
                        if live
                            .iter()
                            .any(|a| crate::pod_identity::same_role(&a.role_arn, &step.role_arn))
                        {
                            return Ok(());
                        }
                    }
                    Err(e)
                }
            }
        }
        PodIdentityAction::Update {
            association_id,
            association_arn,
            tags,
            ..
        } => {
            const OP: &str = "eks:UpdatePodIdentityAssociation";
            aws.eks
                .update_pod_identity_association()
                .cluster_name(&step.cluster)
                .association_id(association_id)
                .role_arn(&step.role_arn)
                .send()
                .await
                .map_err(|e| classify(OP, e))?;
            if !tags.is_empty() && !association_arn.is_empty() {
                const TAG: &str = "eks:TagResource";
                aws.eks
                    .tag_resource()
                    .resource_arn(association_arn)
                    .set_tags(Some(tag_map(tags)))
                    .send()
                    .await
                    .map_err(|e| classify(TAG, e))?;
            }
            Ok(())
        }
        PodIdentityAction::Delete { association_id } => {
            const OP: &str = "eks:DeletePodIdentityAssociation";
            match aws
                .eks
                .delete_pod_identity_association()
                .cluster_name(&step.cluster)
                .association_id(association_id)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                // Gone meanwhile: the goal holds.
                Err(e) => ignore_missing(classify(OP, e)),
            }
        }
    }
}
