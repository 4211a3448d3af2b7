//! Carries out exactly the writes a [`Plan`] lists: nothing for unchanged steps, IAM only read
//! under `--dry-run=server` (Kubernetes writes go with dryRun=All), and no call at all under
//! `--dry-run=client` (the commands do not call `apply` then).

use futures::future::try_join_all;

use crate::access_entry;
use crate::aws::{Aws, AwsError};
use crate::aws_auth::store::modify_aws_auth;
use crate::aws_auth::{AwsAuthError, MappingKind};
use crate::common::{Change, DryRun};
use crate::kube_io::{KubeIoError, create_object, delete_object, merge_patch_object};
use crate::objects::Kind;
use crate::output::Progress;
use crate::plan::Plan;
use crate::steps::{AwsAuthAction, IamAction, KubeAction, KubeStep, OidcAction};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "{source} (stopped after {done} of {total} changes; the command is idempotent: re-run it to finish)"
    )]
    Aws {
        source: AwsError,
        done: usize,
        total: usize,
    },
    #[error(
        "{source} (stopped after {done} of {total} changes; the command is idempotent: re-run it to finish)"
    )]
    AwsAuth {
        source: AwsAuthError,
        done: usize,
        total: usize,
    },
    #[error(
        "{source} (stopped after {done} of {total} changes; the command is idempotent: re-run it to finish)"
    )]
    Kube {
        source: KubeIoError,
        done: usize,
        total: usize,
    },
    #[error("no AWS client for a plan with IAM changes; this is a bug, please report it")]
    NoAws,
}

/// Create direction (IAM → aws-auth → cluster) or teardown (cluster → aws-auth → IAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Create,
    Teardown,
}

struct Counter {
    done: usize,
    total: usize,
}

impl Counter {
    /// A failed AWS write, saying how far the plan got.
    fn aws(&self, source: AwsError) -> ApplyError {
        ApplyError::Aws {
            source,
            done: self.done,
            total: self.total,
        }
    }

    /// One write done: counted and shown.
    fn step(&mut self, progress: &Progress, change: Change, kind: &str, name: &str) {
        self.done += 1;
        progress.step(change, kind, name);
    }
}

pub async fn apply(
    plan: &Plan,
    aws: Option<&Aws>,
    kube: &kube::Client,
    dry_run: DryRun,
    direction: Direction,
    progress: &Progress,
) -> Result<(), ApplyError> {
    if dry_run == DryRun::Client {
        return Ok(());
    }
    let total = plan
        .changes()
        .iter()
        .filter(|c| c.change.is_write())
        .count();
    let mut counter = Counter { done: 0, total };
    match direction {
        Direction::Create => {
            apply_oidc(plan, aws, dry_run, progress, &mut counter).await?;
            apply_iam(plan, aws, dry_run, progress, &mut counter).await?;
            apply_aws_auth(plan, kube, dry_run, progress, &mut counter).await?;
            apply_access_entry(plan, aws, dry_run, progress, &mut counter).await?;
            apply_kube(plan, kube, dry_run, direction, progress, &mut counter).await?;
        }
        Direction::Teardown => {
            apply_kube(plan, kube, dry_run, direction, progress, &mut counter).await?;
            apply_access_entry(plan, aws, dry_run, progress, &mut counter).await?;
            apply_aws_auth(plan, kube, dry_run, progress, &mut counter).await?;
            apply_iam(plan, aws, dry_run, progress, &mut counter).await?;
            apply_oidc(plan, aws, dry_run, progress, &mut counter).await?;
        }
    }
    Ok(())
}

async fn apply_iam(
    plan: &Plan,
    aws: Option<&Aws>,
    dry_run: DryRun,
    progress: &Progress,
    counter: &mut Counter,
) -> Result<(), ApplyError> {
    let writes: Vec<_> = plan
        .iam
        .iter()
        .filter(|s| s.action != IamAction::None)
        .collect();
    if writes.is_empty() || dry_run == DryRun::Server {
        // Server dry run: IAM has no dry-run mode, so it is only read.
        return Ok(());
    }
    let aws = aws.ok_or(ApplyError::NoAws)?;
    for step in writes {
        let result = apply_iam_action(aws, &step.action).await;
        result.map_err(|source| counter.aws(source))?;
        counter.step(progress, step.change, step.kind, &step.name);
    }
    Ok(())
}

/// The cluster's OIDC provider: created before the roles that trust it, deleted after them.
async fn apply_oidc(
    plan: &Plan,
    aws: Option<&Aws>,
    dry_run: DryRun,
    progress: &Progress,
    counter: &mut Counter,
) -> Result<(), ApplyError> {
    let Some(step) = &plan.oidc else {
        return Ok(());
    };
    if step.action == OidcAction::None || dry_run == DryRun::Server {
        return Ok(());
    }
    let aws = aws.ok_or(ApplyError::NoAws)?;
    let result = match &step.action {
        OidcAction::None => Ok(()),
        OidcAction::Create {
            url,
            client_ids,
            thumbprints,
            tags,
        } => aws
            .create_oidc_provider_tagged(url, client_ids, thumbprints, tags)
            .await
            .map(drop),
        OidcAction::Delete { arn } => aws.delete_oidc_provider(arn).await,
    };
    result.map_err(|source| counter.aws(source))?;
    counter.step(progress, step.change, "IAMOIDCProvider", &step.issuer);
    Ok(())
}

/// The EKS access entry (EKS has no dry run: a server dry run only reads it).
async fn apply_access_entry(
    plan: &Plan,
    aws: Option<&Aws>,
    dry_run: DryRun,
    progress: &Progress,
    counter: &mut Counter,
) -> Result<(), ApplyError> {
    let Some(step) = &plan.access_entry else {
        return Ok(());
    };
    if step.actions.is_empty() || dry_run == DryRun::Server {
        return Ok(());
    }
    let aws = aws.ok_or(ApplyError::NoAws)?;
    let cluster = &plan.outputs.cluster;
    access_entry::apply_access_entry(aws, cluster, &step.principal_arn, &step.actions)
        .await
        .map_err(|source| counter.aws(source))?;
    counter.step(progress, step.change, "AccessEntry", &step.principal_arn);
    Ok(())
}

async fn apply_aws_auth(
    plan: &Plan,
    kube: &kube::Client,
    dry_run: DryRun,
    progress: &Progress,
    counter: &mut Counter,
) -> Result<(), ApplyError> {
    let Some(step) = &plan.aws_auth else {
        return Ok(());
    };
    let result = match &step.action {
        AwsAuthAction::None => return Ok(()),
        AwsAuthAction::Upsert { mapping } => {
            modify_aws_auth(kube, dry_run, |auth| {
                auth.upsert(MappingKind::Role, mapping.clone())
            })
            .await
        }
        AwsAuthAction::Remove { arn } => {
            modify_aws_auth(kube, dry_run, |auth| auth.remove(MappingKind::Role, arn)).await
        }
    };
    let change = result.map_err(|source| ApplyError::AwsAuth {
        source,
        done: counter.done,
        total: counter.total,
    })?;
    counter.step(progress, change, "AwsAuthMapping", &step.arn);
    Ok(())
}

/// Kubernetes writes in waves: the namespace before what lives in it (create), and after
/// it (teardown); within a wave, requests go out concurrently.
async fn apply_kube(
    plan: &Plan,
    kube: &kube::Client,
    dry_run: DryRun,
    direction: Direction,
    progress: &Progress,
    counter: &mut Counter,
) -> Result<(), ApplyError> {
    let is_ns = |s: &&KubeStep| s.key.kind == Kind::Namespace;
    let writes = plan.kube.iter().filter(|s| s.action != KubeAction::None);
    let (namespaces, rest): (Vec<&KubeStep>, Vec<&KubeStep>) = writes.partition(is_ns);
    let (cluster_scoped, namespaced): (Vec<&KubeStep>, Vec<&KubeStep>) =
        rest.into_iter().partition(|s| s.key.namespace.is_none());
    // A server dry run does not create the namespace, so objects inside a namespace that is
    // only being created would all fail with NotFound: skip them, and say so.
    let new_namespaces: Vec<&str> = namespaces
        .iter()
        .filter(|s| matches!(s.action, KubeAction::Create(_)))
        .map(|s| s.key.name.as_str())
        .collect();
    let (namespaced, unverifiable): (Vec<&KubeStep>, Vec<&KubeStep>) =
        namespaced.into_iter().partition(|s| {
            dry_run != DryRun::Server
                || !s
                    .key
                    .namespace
                    .as_deref()
                    .is_some_and(|ns| new_namespaces.contains(&ns))
        });
    if !unverifiable.is_empty() {
        crate::output::warn(&format!(
            "server dry run: {} object(s) inside namespace(s) {} not sent, as the namespace does not exist yet",
            unverifiable.len(),
            new_namespaces.join(", ")
        ));
    }
    // Creates of cluster-scoped objects go before patches of others' (a default StorageClass
    // is created, with its record of what it demotes, before anything is demoted); on
    // teardown, restoring others' objects goes before deleting ours.
    let (cs_creates, cs_rest): (Vec<&KubeStep>, Vec<&KubeStep>) = cluster_scoped
        .into_iter()
        .partition(|s| matches!(s.action, KubeAction::Create(_)));
    let (cs_deletes, cs_patches): (Vec<&KubeStep>, Vec<&KubeStep>) = cs_rest
        .into_iter()
        .partition(|s| s.action == KubeAction::Delete);
    let waves = match direction {
        Direction::Create => vec![namespaces, cs_creates, cs_patches, cs_deletes, namespaced],
        Direction::Teardown => vec![namespaced, cs_patches, cs_creates, cs_deletes, namespaces],
    };
    for wave in waves {
        if wave.is_empty() {
            continue;
        }
        let results = try_join_all(wave.iter().map(|step| kube_write(kube, step, dry_run))).await;
        results.map_err(|source| ApplyError::Kube {
            source,
            done: counter.done,
            total: counter.total,
        })?;
        for step in wave {
            let name = match &step.key.namespace {
                Some(ns) => format!("{ns}/{}", step.key.name),
                None => step.key.name.clone(),
            };
            counter.step(progress, step.change, step.key.kind.as_str(), &name);
        }
    }
    Ok(())
}

async fn kube_write(
    kube: &kube::Client,
    step: &KubeStep,
    dry_run: DryRun,
) -> Result<Change, KubeIoError> {
    match &step.action {
        KubeAction::None => {}
        KubeAction::Create(body) => create_object(kube, &step.key, body, dry_run).await?,
        KubeAction::MergePatch(patch) => {
            merge_patch_object(kube, &step.key, patch, dry_run).await?
        }
        KubeAction::Delete => delete_object(kube, &step.key, dry_run).await?,
    }
    Ok(step.change)
}

/// Sends one IAM write; shared by connect's apply and `irsa create|delete`.
pub(crate) async fn apply_iam_action(aws: &Aws, action: &IamAction) -> Result<(), AwsError> {
    match action {
        IamAction::None => Ok(()),
        IamAction::CreateRole {
            role,
            path,
            trust_policy,
            description,
            tags,
        } => aws
            .create_role(role, path, trust_policy, description, tags)
            .await
            .map(drop),
        IamAction::UpdateTrust { role, trust_policy } => {
            aws.update_trust_policy(role, trust_policy).await
        }
        IamAction::PutInlinePolicy {
            role,
            policy_name,
            document,
        } => aws.put_inline_policy(role, policy_name, document).await,
        IamAction::DeleteInlinePolicy { role, policy_name } => {
            aws.delete_inline_policy(role, policy_name).await
        }
        IamAction::AttachManagedPolicy { role, policy_arn } => {
            aws.attach_managed_policy(role, policy_arn).await
        }
        IamAction::DetachManagedPolicy { role, policy_arn } => {
            aws.detach_managed_policy(role, policy_arn).await
        }
        IamAction::DeleteRole { role } => aws.delete_role(role).await,
    }
}
