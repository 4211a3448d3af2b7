//! The one executor: carries out exactly the steps a [`Plan`] schedules (lanes side by side,
//! a lane's batches in order, a batch's steps concurrently), shows
//! progress, stops at the first failure and says how far it got. Nothing for unchanged steps;
//! under `--dry-run=server` AWS is only read (it has no dry run) and Kubernetes writes go with
//! dryRun=All; under `--dry-run=client` nothing is sent at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

use crate::aws::{Aws, AwsError};
use crate::aws_auth::AwsAuthError;
use crate::aws_auth::store::{AwsAuthWrite, modify_aws_auth_detailed};
use crate::common::{Change, DryRun};
use crate::eks_access::{apply_access_entry, set_authentication_mode};
use crate::eks_pod_identity::apply_pod_identity;
use crate::kube_io::{KubeIoError, apply_object, create_object, delete_object, merge_patch_object};
use crate::objects::Kind;
use crate::output::Progress;
use crate::security_group::Cidr;
use crate::steps::{
    AwsAuthAction, ClusterConfigAction, Ec2Action, IamAction, KubeAction, KubeStep, OidcAction,
    Plan, SecurityGroupRuleStep, Step, WaitStep,
};

const STOPPED: &str = "the command is idempotent: re-run it to finish";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{source} (stopped after {done} of {total} changes; {STOPPED})")]
    Aws {
        source: AwsError,
        done: usize,
        total: usize,
    },
    #[error("{source} (stopped after {done} of {total} changes; {STOPPED})")]
    AwsAuth {
        source: AwsAuthError,
        done: usize,
        total: usize,
    },
    #[error("{source} (stopped after {done} of {total} changes; {STOPPED})")]
    Kube {
        source: KubeIoError,
        done: usize,
        total: usize,
    },
    #[error(
        "Deployment {namespace}/{deployment} did not become ready within {timeout:?}; the webhook configurations were not registered yet (so nothing is blocked); check `kubectl -n {namespace} describe deployment {deployment}`"
    )]
    NotReady {
        namespace: String,
        deployment: String,
        timeout: Duration,
    },
    #[error("no {0} client for a plan with such steps; this is a bug, please report it")]
    NoClient(&'static str),
}

/// The clients a plan may need; a plan with no AWS steps runs without AWS credentials.
#[derive(Clone, Copy, Default)]
pub struct Clients<'a> {
    pub aws: Option<&'a Aws>,
    pub kube: Option<&'a kube::Client>,
}

/// What the executor learned that the plan could not know: the aws-auth write as made (the
/// ConfigMap is re-read under conflict retry, so its change is the one that happened).
#[derive(Debug, Default)]
pub struct Executed {
    pub aws_auth: Option<AwsAuthWrite>,
}

/// How one step ended.
enum Outcome {
    Done,
    AwsAuth(AwsAuthWrite),
}

/// A step that failed, before it is told how far the plan got.
enum StepError {
    Aws(AwsError),
    AwsAuth(AwsAuthError),
    Kube(KubeIoError),
    Other(ApplyError),
}

impl StepError {
    fn at(self, done: usize, total: usize) -> ApplyError {
        match self {
            Self::Aws(source) => ApplyError::Aws {
                source,
                done,
                total,
            },
            Self::AwsAuth(source) => ApplyError::AwsAuth {
                source,
                done,
                total,
            },
            Self::Kube(source) => ApplyError::Kube {
                source,
                done,
                total,
            },
            Self::Other(e) => e,
        }
    }
}

fn display_name(row_name: &str, namespace: Option<&String>) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{row_name}"),
        None => row_name.to_owned(),
    }
}

pub async fn execute<O>(
    plan: &Plan<O>,
    clients: Clients<'_>,
    dry_run: DryRun,
    progress: &Progress,
) -> Result<Executed, ApplyError> {
    if dry_run == DryRun::Client {
        return Ok(Executed::default());
    }
    let run = Run {
        plan_steps: &plan.steps,
        clients,
        dry_run,
        progress,
        total: plan
            .changes()
            .iter()
            .filter(|c| c.change.is_write())
            .count(),
        unverifiable: server_dry_run_skips(plan, dry_run),
        done: AtomicUsize::new(0),
        aws_auth: Mutex::new(None),
    };
    try_join_all(plan.schedule.iter().map(|lane| run.lane(lane))).await?;
    Ok(Executed {
        aws_auth: run
            .aws_auth
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner),
    })
}

/// One execution: what every lane shares (how far it got, for the progress and the error).
struct Run<'a> {
    plan_steps: &'a [Step],
    clients: Clients<'a>,
    dry_run: DryRun,
    progress: &'a Progress,
    total: usize,
    unverifiable: Vec<usize>,
    done: AtomicUsize,
    aws_auth: Mutex<Option<AwsAuthWrite>>,
}

impl Run<'_> {
    async fn lane(&self, batches: &[Vec<usize>]) -> Result<(), ApplyError> {
        for batch in batches {
            let steps: Vec<&Step> = batch
                .iter()
                .filter(|i| !self.unverifiable.contains(i))
                .filter_map(|&i| self.plan_steps.get(i))
                .filter(|s| !(self.dry_run == DryRun::Server && s.is_aws()))
                .collect();
            let outcomes = try_join_all(
                steps
                    .iter()
                    .map(|s| run_step(s, self.clients, self.dry_run)),
            )
            .await
            .map_err(|e| e.at(self.done.load(Ordering::Relaxed), self.total))?;
            for (step, outcome) in steps.into_iter().zip(outcomes) {
                let Some(row) = step.row() else { continue };
                let change = match outcome {
                    Outcome::AwsAuth(write) => {
                        let change = write.change;
                        *self.aws_auth.lock().unwrap_or_else(PoisonError::into_inner) = Some(write);
                        change
                    }
                    Outcome::Done => row.change,
                };
                self.done.fetch_add(1, Ordering::Relaxed);
                self.progress.step(
                    change,
                    &row.kind,
                    &display_name(&row.name, row.namespace.as_ref()),
                );
            }
        }
        Ok(())
    }
}

/// A server dry run does not create namespaces, so objects inside one that is only being
/// created would all fail with NotFound: they are not sent, and the user is told.
fn server_dry_run_skips<O>(plan: &Plan<O>, dry_run: DryRun) -> Vec<usize> {
    if dry_run != DryRun::Server {
        return Vec::new();
    }
    let new_namespaces: Vec<&str> = plan
        .kube_steps()
        .filter(|s| s.key.kind == Kind::Namespace && s.change == Change::Created)
        .map(|s| s.key.name.as_str())
        .collect();
    let skipped: Vec<usize> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| match s {
            Step::Kube(k) => {
                k.action != KubeAction::None
                    && k.key
                        .namespace
                        .as_deref()
                        .is_some_and(|ns| new_namespaces.contains(&ns))
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    if !skipped.is_empty() {
        crate::output::warn(&format!(
            "server dry run: {} object(s) inside namespace(s) {} not sent, as the namespace does not exist yet",
            skipped.len(),
            new_namespaces.join(", ")
        ));
    }
    skipped
}

async fn run_step(
    step: &Step,
    clients: Clients<'_>,
    dry_run: DryRun,
) -> Result<Outcome, StepError> {
    let aws = || {
        clients
            .aws
            .ok_or(StepError::Other(ApplyError::NoClient("AWS")))
    };
    let kube = || {
        clients
            .kube
            .ok_or(StepError::Other(ApplyError::NoClient("Kubernetes")))
    };
    match step {
        Step::Oidc(s) => {
            let aws = aws()?;
            match &s.action {
                OidcAction::None => Ok(()),
                OidcAction::Create {
                    url,
                    client_ids,
                    thumbprints,
                    tags,
                } => create_oidc_provider(aws, url, client_ids, thumbprints, tags).await,
                OidcAction::Delete { arn } => aws.delete_oidc_provider(arn).await,
            }
            .map_err(StepError::Aws)?;
        }
        Step::Iam(s) => iam_write(aws()?, &s.action).await.map_err(StepError::Aws)?,
        Step::AccessEntry(s) => {
            apply_access_entry(aws()?, &s.cluster, &s.principal_arn, &s.actions)
                .await
                .map_err(StepError::Aws)?;
        }
        Step::ClusterConfig(s) => match &s.action {
            ClusterConfigAction::None => {}
            ClusterConfigAction::SetAuthenticationMode { mode } => {
                set_authentication_mode(aws()?, &s.cluster, mode)
                    .await
                    .map_err(StepError::Aws)?;
            }
        },
        Step::Ec2(s) => ec2_write(aws()?, s).await.map_err(StepError::Aws)?,
        Step::PodIdentity(s) => apply_pod_identity(aws()?, s)
            .await
            .map_err(StepError::Aws)?,
        Step::AwsAuth(s) => {
            let write = match &s.action {
                AwsAuthAction::None => return Ok(Outcome::Done),
                AwsAuthAction::Upsert { kind, mapping } => {
                    modify_aws_auth_detailed(kube()?, dry_run, |auth| {
                        auth.upsert(*kind, mapping.clone())
                    })
                    .await
                }
                AwsAuthAction::Remove { kind, arn } => {
                    modify_aws_auth_detailed(kube()?, dry_run, |auth| auth.remove(*kind, arn)).await
                }
            };
            return write.map(Outcome::AwsAuth).map_err(StepError::AwsAuth);
        }
        Step::Kube(s) => kube_write(kube()?, s, dry_run)
            .await
            .map_err(StepError::Kube)?,
        Step::Wait(w) => {
            // Nothing is rolled out by a server dry run, so there is nothing to wait for.
            if dry_run == DryRun::None {
                wait_ready(kube()?, w).await.map_err(StepError::Other)?;
            }
        }
    }
    Ok(Outcome::Done)
}

/// The OIDC provider; one created meanwhile by someone else is the goal reached.
async fn create_oidc_provider(
    aws: &Aws,
    url: &str,
    client_ids: &[String],
    thumbprints: &[String],
    tags: &[(String, String)],
) -> Result<(), AwsError> {
    match aws
        .create_oidc_provider_tagged(url, client_ids, thumbprints, tags)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("EntityAlreadyExists") => Ok(()),
        Err(e) => Err(e),
    }
}

async fn kube_write(
    kube: &kube::Client,
    step: &KubeStep,
    dry_run: DryRun,
) -> Result<(), KubeIoError> {
    match &step.action {
        KubeAction::None => Ok(()),
        KubeAction::Create(body) => create_object(kube, &step.key, body, dry_run).await,
        KubeAction::MergePatch(patch) => merge_patch_object(kube, &step.key, patch, dry_run).await,
        KubeAction::Apply(body) => apply_object(kube, &step.key, body, dry_run).await,
        KubeAction::Delete => delete_object(kube, &step.key, dry_run).await,
    }
}

/// How often a Deployment is looked at while waiting for it.
const READY_POLL: Duration = Duration::from_secs(2);

async fn wait_ready(kube: &kube::Client, wait: &WaitStep) -> Result<(), ApplyError> {
    let deployments: Api<Deployment> = Api::namespaced(kube.clone(), &wait.namespace);
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(d)) = deployments.get_opt(&wait.deployment).await
            && d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .is_some_and(|r| r >= 1)
        {
            return Ok(());
        }
        if started.elapsed() >= wait.timeout {
            return Err(ApplyError::NotReady {
                namespace: wait.namespace.clone(),
                deployment: wait.deployment.clone(),
                timeout: wait.timeout,
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Sends one security group rule write.
async fn ec2_write(aws: &Aws, step: &SecurityGroupRuleStep) -> Result<(), AwsError> {
    match &step.action {
        Ec2Action::None => Ok(()),
        Ec2Action::AuthorizeIngress => {
            let ipv6 = step.cidr.parse::<Cidr>().is_ok_and(|c| c.is_ipv6());
            aws.authorize_tcp_ingress(
                &step.group_id,
                step.port,
                &step.cidr,
                ipv6,
                &step.description,
            )
            .await
        }
        Ec2Action::RevokeIngress { rule_id } => {
            aws.revoke_ingress_rule(&step.group_id, rule_id).await
        }
    }
}

/// Sends one IAM write.
async fn iam_write(aws: &Aws, action: &IamAction) -> Result<(), AwsError> {
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
        IamAction::TagRole { role, tags } => aws.tag_role(role, tags).await,
        IamAction::UntagRole { role, keys } => aws.untag_role(role, keys).await,
    }
}
