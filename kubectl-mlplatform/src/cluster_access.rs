//! Cluster access for one principal as a library call (`ensure_cluster_access` /
//! `remove_cluster_access`): reads the cluster, chooses aws-auth or an access entry, plans one
//! step and hands it to the one executor, like every command.

use serde::Serialize;

use crate::access_entry::{
    AccessEntryAction, AccessEntryError, AccessRequest, AuthMode, DEFAULT_ACCESS_POLICY, Mechanism,
    choose_mechanism, plan_access_entry, plan_access_entry_removal,
};
use crate::aws::{Aws, AwsError};
use crate::aws_auth::store::read_aws_auth_data;
use crate::aws_auth::{AwsAuthError, Mapping, kind_of_arn, normalize_arn};
use crate::aws_auth_edit::plan_edit;
use crate::common::{Change, DryRun};
use crate::eks_access::read_access_entry;
use crate::execute::{ApplyError, Clients, execute};
use crate::output::Progress;
use crate::steps::{AccessEntryStep, AwsAuthAction, Direction, Plan, Step};

#[derive(Debug, thiserror::Error)]
pub enum ClusterAccessError {
    #[error("{0}")]
    Access(#[from] AccessEntryError),
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("{0}")]
    AwsAuth(#[from] AwsAuthError),
    #[error("{0}")]
    Apply(#[from] ApplyError),
}

/// What [`ensure_cluster_access`] / [`remove_cluster_access`] did (or would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessOutcome {
    pub mechanism: Mechanism,
    pub change: Change,
    /// The access-entry writes (empty for aws-auth, whose diff its own module reports).
    pub actions: Vec<AccessEntryAction>,
}

/// Gives `principal_arn` access to the cluster: an access entry scoped to `namespaces` with
/// `policy_arn` (default [`DEFAULT_ACCESS_POLICY`]), or an aws-auth mapping to
/// `username`/`groups`, as `auth_mode` and the cluster decide. Reads first; writes only
/// differences; `dry_run` client writes nothing, server sends only the aws-auth write with
/// dryRun=All (EKS has no dry run, so access entries are only read).
#[allow(clippy::too_many_arguments)]
pub async fn ensure_cluster_access(
    aws: &Aws,
    kube: &kube::Client,
    cluster: &str,
    principal_arn: &str,
    username: &str,
    groups: &[String],
    namespaces: &[String],
    policy_arn: Option<&str>,
    auth_mode: AuthMode,
    dry_run: DryRun,
) -> Result<AccessOutcome, ClusterAccessError> {
    let facts = aws.describe_cluster(cluster).await?;
    let mechanism = choose_mechanism(auth_mode, cluster, facts.authentication_mode.as_deref())?;
    let step = match mechanism {
        Mechanism::AwsAuth => {
            let kind = kind_of_arn(principal_arn)?;
            let mapping = Mapping {
                arn: normalize_arn(kind, principal_arn)?,
                username: username.to_owned(),
                groups: groups.to_vec(),
            };
            let data = read_aws_auth_data(kube).await?;
            let action = AwsAuthAction::Upsert { kind, mapping };
            aws_auth_step(plan_edit(data.as_ref(), action)?)
        }
        Mechanism::AccessEntry => {
            let req = AccessRequest {
                cluster: cluster.to_owned(),
                principal_arn: principal_arn.to_owned(),
                username: username.to_owned(),
                groups: groups.to_vec(),
                namespaces: namespaces.to_vec(),
                policy_arn: policy_arn.unwrap_or(DEFAULT_ACCESS_POLICY).to_owned(),
            };
            let observed = read_access_entry(aws, cluster, principal_arn).await?;
            let (change, actions) = plan_access_entry(&req, observed.as_ref())?;
            entry_step(cluster, principal_arn, change, actions)
        }
    };
    run(aws, kube, mechanism, step, dry_run).await
}

/// Takes the access [`ensure_cluster_access`] gave away again: the aws-auth mapping, or the
/// access entry (only one tagged as ours).
pub async fn remove_cluster_access(
    aws: &Aws,
    kube: &kube::Client,
    cluster: &str,
    principal_arn: &str,
    auth_mode: AuthMode,
    dry_run: DryRun,
) -> Result<AccessOutcome, ClusterAccessError> {
    let facts = aws.describe_cluster(cluster).await?;
    let mechanism = choose_mechanism(auth_mode, cluster, facts.authentication_mode.as_deref())?;
    let step = match mechanism {
        Mechanism::AwsAuth => {
            let kind = kind_of_arn(principal_arn)?;
            let arn = normalize_arn(kind, principal_arn)?;
            let data = read_aws_auth_data(kube).await?;
            aws_auth_step(plan_edit(
                data.as_ref(),
                AwsAuthAction::Remove { kind, arn },
            )?)
        }
        Mechanism::AccessEntry => {
            let observed = read_access_entry(aws, cluster, principal_arn).await?;
            let (change, actions) =
                plan_access_entry_removal(cluster, principal_arn, observed.as_ref())?;
            entry_step(cluster, principal_arn, change, actions)
        }
    };
    run(aws, kube, mechanism, step, dry_run).await
}

fn aws_auth_step<O>(mut plan: Plan<O>) -> Step {
    plan.steps.remove(0)
}

fn entry_step(
    cluster: &str,
    principal_arn: &str,
    change: Change,
    actions: Vec<AccessEntryAction>,
) -> Step {
    Step::AccessEntry(AccessEntryStep {
        cluster: cluster.to_owned(),
        principal_arn: principal_arn.to_owned(),
        username: String::new(),
        groups: Vec::new(),
        namespaces: Vec::new(),
        change,
        actions,
    })
}

/// The one step, through the one executor; the outcome as it happened.
async fn run(
    aws: &Aws,
    kube: &kube::Client,
    mechanism: Mechanism,
    step: Step,
    dry_run: DryRun,
) -> Result<AccessOutcome, ClusterAccessError> {
    let actions = match &step {
        Step::AccessEntry(s) => s.actions.clone(),
        _ => Vec::new(),
    };
    let planned = step.row().map_or(Change::Unchanged, |r| r.change);
    let plan = Plan::new((), vec![step], Direction::Create);
    let clients = Clients {
        aws: Some(aws),
        kube: Some(kube),
    };
    let executed = execute(&plan, clients, dry_run, &Progress::disabled()).await?;
    Ok(AccessOutcome {
        mechanism,
        change: executed.aws_auth.map_or(planned, |w| w.change),
        actions,
    })
}
