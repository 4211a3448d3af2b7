//! EKS access entries through the SDK: read one (with its policy associations), list them,
//! carry out the actions a plan lists, and switch the cluster's authentication mode.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AuthenticationMode, UpdateAccessConfigRequest, UpdateStatus,
};

use crate::access_entry::{AccessEntryAction, ObservedEntry, Scope};
use crate::aws::{Aws, AwsError, classify, ignore_missing, missing_as_none};
use crate::vocabulary::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The access entry of `principal_arn` with its policy associations; None when there is none.
pub(crate) async fn read_access_entry(
    aws: &Aws,
    cluster: &str,
    principal_arn: &str,
) -> Result<Option<ObservedEntry>, AwsError> {
    const OP: &str = "eks:DescribeAccessEntry";
    let out = match aws
        .eks
        .describe_access_entry()
        .cluster_name(cluster)
        .principal_arn(principal_arn)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => return missing_as_none(classify(OP, e)),
    };
    let Some(entry) = out.access_entry() else {
        return Ok(None);
    };
    let mut observed = ObservedEntry {
        username: entry.username().map(str::to_owned),
        groups: entry.kubernetes_groups().iter().cloned().collect(),
        tags: entry
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        policies: BTreeMap::new(),
    };
    let mut next: Option<String> = None;
    loop {
        const LIST: &str = "eks:ListAssociatedAccessPolicies";
        let page = aws
            .eks
            .list_associated_access_policies()
            .cluster_name(cluster)
            .principal_arn(principal_arn)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| classify(LIST, e))?;
        for p in page.associated_access_policies() {
            let Some(arn) = p.policy_arn() else { continue };
            let scope = match p.access_scope() {
                Some(s) if s.r#type() == Some(&AccessScopeType::Namespace) => {
                    Scope::Namespace(s.namespaces().iter().cloned().collect())
                }
                _ => Scope::Cluster,
            };
            observed.policies.insert(arn.to_owned(), scope);
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => break,
        }
    }
    Ok(Some(observed))
}

/// Carries out access-entry actions in order.
pub(crate) async fn apply_access_entry(
    aws: &Aws,
    req_cluster: &str,
    principal_arn: &str,
    actions: &[AccessEntryAction],
) -> Result<(), AwsError> {
    for action in actions {
        match action {
            AccessEntryAction::CreateEntry { username, groups } => {
                const OP: &str = "eks:CreateAccessEntry";
                aws.eks
                    .create_access_entry()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .username(username)
                    .set_kubernetes_groups(Some(groups.clone()))
                    .set_tags(Some(HashMap::from([(
                        MANAGED_BY_LABEL.to_owned(),
                        MANAGED_BY_VALUE.to_owned(),
                    )])))
                    .r#type("STANDARD")
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
            }
            AccessEntryAction::UpdateEntry { username, groups } => {
                const OP: &str = "eks:UpdateAccessEntry";
                aws.eks
                    .update_access_entry()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .username(username)
                    .set_kubernetes_groups(Some(groups.clone()))
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
            }
            AccessEntryAction::AssociatePolicy {
                policy_arn,
                namespaces,
            } => {
                const OP: &str = "eks:AssociateAccessPolicy";
                let scope = AccessScope::builder()
                    .r#type(AccessScopeType::Namespace)
                    .set_namespaces(Some(namespaces.clone()))
                    .build();
                aws.eks
                    .associate_access_policy()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .policy_arn(policy_arn)
                    .access_scope(scope)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
            }
            AccessEntryAction::DisassociatePolicy { policy_arn } => {
                const OP: &str = "eks:DisassociateAccessPolicy";
                aws.eks
                    .disassociate_access_policy()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .policy_arn(policy_arn)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))?;
            }
            AccessEntryAction::DeleteEntry => {
                const OP: &str = "eks:DeleteAccessEntry";
                match aws
                    .eks
                    .delete_access_entry()
                    .cluster_name(req_cluster)
                    .principal_arn(principal_arn)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    // Gone meanwhile: the goal holds.
                    Err(e) => ignore_missing(classify(OP, e))?,
                }
            }
        }
    }
    Ok(())
}

/// Principal ARNs of every access entry of the cluster.
pub(crate) async fn list_access_entries(aws: &Aws, cluster: &str) -> Result<Vec<String>, AwsError> {
    const OP: &str = "eks:ListAccessEntries";
    aws.eks
        .list_access_entries()
        .cluster_name(cluster)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| classify(OP, e))
}

/// How long a switch of the authentication mode may take (EKS: minutes).
const MODE_UPDATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const MODE_UPDATE_POLL: Duration = Duration::from_secs(10);

/// Switches the cluster's authentication mode (UpdateClusterConfig) and waits until EKS says
/// the update is done, so that access entries can be made right after.
pub(crate) async fn set_authentication_mode(
    aws: &Aws,
    cluster: &str,
    mode: &str,
) -> Result<(), AwsError> {
    const OP: &str = "eks:UpdateClusterConfig";
    let out = aws
        .eks
        .update_cluster_config()
        .name(cluster)
        .access_config(
            UpdateAccessConfigRequest::builder()
                .authentication_mode(AuthenticationMode::from(mode))
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify(OP, e))?;
    let Some(id) = out.update().and_then(|u| u.id()).map(str::to_owned) else {
        return Ok(());
    };
    let started = Instant::now();
    loop {
        const DESCRIBE: &str = "eks:DescribeUpdate";
        let update = aws
            .eks
            .describe_update()
            .name(cluster)
            .update_id(&id)
            .send()
            .await
            .map_err(|e| classify(DESCRIBE, e))?;
        let update = update.update();
        match update.and_then(|u| u.status()) {
            Some(UpdateStatus::Successful) => return Ok(()),
            Some(status @ (UpdateStatus::Failed | UpdateStatus::Cancelled)) => {
                let errors: Vec<String> = update
                    .map(|u| u.errors())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|e| e.error_message().map(str::to_owned))
                    .collect();
                return Err(AwsError::Service {
                    operation: OP.to_owned(),
                    code: format!("Update{}", status.as_str()),
                    message: format!(
                        "authentication mode update {id} of cluster {cluster}: {}",
                        errors.join("; ")
                    ),
                });
            }
            _ if started.elapsed() >= MODE_UPDATE_TIMEOUT => {
                return Err(AwsError::Service {
                    operation: OP.to_owned(),
                    code: "StillInProgress".to_owned(),
                    message: format!(
                        "authentication mode update {id} of cluster {cluster} is still in progress after {}s; re-run once `aws eks describe-update --name {cluster} --update-id {id}` says Successful",
                        MODE_UPDATE_TIMEOUT.as_secs()
                    ),
                });
            }
            _ => tokio::time::sleep(MODE_UPDATE_POLL).await,
        }
    }
}
