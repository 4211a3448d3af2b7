//! Pure: the order a plan's steps are carried out in, as batches of step indices (the steps of
//! one batch go out concurrently). Steps that send nothing are left out.
//!
//! Create: the OIDC provider, then IAM (one at a time, in plan order: a role before its
//! policies), then cluster access (aws-auth, access entry), then security group rules, then
//! EKS Pod Identity associations (EKS checks that the role exists and trusts it), then
//! Kubernetes objects in waves.
//! Teardown is the mirror image, so nothing ever trusts or maps a role that no longer exists.
//! Kubernetes waves: namespaces before what lives in them (after, on teardown); creates of
//! cluster-scoped objects before patches of others' (a default StorageClass is created, with its
//! record of what it demotes, before anything is demoted); restoring others' objects before
//! deleting ours on teardown.

use crate::objects::Kind;
use crate::steps::{Direction, KubeAction, Plan, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KubeWave {
    Namespaces,
    ClusterCreates,
    ClusterPatches,
    ClusterDeletes,
    Namespaced,
}

fn kube_wave(step: &crate::steps::KubeStep) -> KubeWave {
    if step.key.kind == Kind::Namespace {
        KubeWave::Namespaces
    } else if step.key.namespace.is_some() {
        KubeWave::Namespaced
    } else {
        match step.action {
            KubeAction::Create(_) => KubeWave::ClusterCreates,
            KubeAction::Delete => KubeWave::ClusterDeletes,
            _ => KubeWave::ClusterPatches,
        }
    }
}

/// Where a step goes: its stage, and whether it may share a batch with its stage-mates.
fn stage(step: &Step, direction: Direction) -> (u8, bool) {
    // Create: namespaces and new cluster-scoped objects together (a binding may name a
    // ClusterRole that is created beside it), then patches of others', deletions, and what
    // lives in the namespaces.
    let kube = |wave: KubeWave| -> u8 {
        match (direction, wave) {
            (Direction::Create, KubeWave::Namespaces | KubeWave::ClusterCreates) => 0,
            (Direction::Create, KubeWave::ClusterPatches) => 1,
            (Direction::Create, KubeWave::ClusterDeletes) => 2,
            (Direction::Create, KubeWave::Namespaced) => 3,
            (Direction::Teardown, KubeWave::Namespaced) => 0,
            (Direction::Teardown, KubeWave::ClusterPatches) => 1,
            (Direction::Teardown, KubeWave::ClusterCreates) => 2,
            (Direction::Teardown, KubeWave::ClusterDeletes) => 3,
            (Direction::Teardown, KubeWave::Namespaces) => 4,
        }
    };
    // Stages: 0 OIDC, 1 IAM, 2 aws-auth, 3 cluster access (the authentication mode, listed
    // before the access entries that need it), 4 security group rules (independent
    // of each other), 5 Pod Identity associations (independent of each other), 10..
    // Kubernetes, 20 waits (create).
    let (create, parallel) = match step {
        Step::Oidc(_) => (0, false),
        Step::Iam(_) => (1, false),
        Step::AwsAuth(_) => (2, false),
        Step::AccessEntry(_) | Step::ClusterConfig(_) => (3, false),
        Step::Ec2(_) => (4, true),
        Step::PodIdentity(_) => (5, true),
        Step::Kube(s) => (10 + kube(kube_wave(s)), true),
        Step::Wait(_) => (20, false),
    };
    let ordered = match (direction, step) {
        (Direction::Create, _) | (Direction::Teardown, Step::Wait(_)) => create,
        (Direction::Teardown, Step::Kube(_)) => create - 10,
        // AWS after the cluster, mirrored: Pod Identity associations, security group rules,
        // access entry, aws-auth, IAM, OIDC.
        (Direction::Teardown, _) => 16 - create,
    };
    (ordered, parallel)
}

impl<O> Plan<O> {
    /// A plan whose steps run in the order given by `direction`.
    pub(crate) fn new(outputs: O, steps: Vec<Step>, direction: Direction) -> Self {
        let schedule = schedule(&steps, direction);
        Self {
            outputs,
            steps,
            schedule,
            manual_steps: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A plan whose steps run one at a time, in the order listed (e.g. `irsa migrate`: a Pod
    /// Identity association before the IAM trust change and the Kubernetes annotation that
    /// depend on it). Steps that send nothing are left out, as in [`schedule`].
    pub(crate) fn in_order(outputs: O, steps: Vec<Step>) -> Self {
        let lane: Vec<Vec<usize>> = (0..steps.len())
            .filter(|&i| steps[i].sends())
            .map(|i| vec![i])
            .collect();
        let schedule = if lane.is_empty() {
            Vec::new()
        } else {
            vec![lane]
        };
        Self {
            outputs,
            steps,
            schedule,
            manual_steps: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Lanes of batches of step indices: lanes run concurrently, a lane's batches one after the
/// other, a batch's steps concurrently. Create has three lanes: AWS (OIDC provider, IAM,
/// access entry: each needs what came before it in AWS), aws-auth, and the Kubernetes waves,
/// as nothing in the cluster needs a role to exist (an aws-auth mapping or a role-arn
/// annotation naming a role that is still being made is inert until it is). Plans whose
/// steps must follow each other across those (a migration that removes a mapping only once
/// the access entry exists) use `Plan::in_order`. Teardown is one lane, the cluster before
/// AWS, so nothing is left trusting or mapping a deleted role.
pub(crate) fn schedule(steps: &[Step], direction: Direction) -> Vec<Vec<Vec<usize>>> {
    match direction {
        Direction::Create => {
            let lane_of = |i: &usize| match &steps[*i] {
                s if s.is_aws() => 0,
                Step::AwsAuth(_) => 1,
                _ => 2,
            };
            (0..3)
                .map(|lane| {
                    let members: Vec<usize> =
                        (0..steps.len()).filter(|i| lane_of(i) == lane).collect();
                    batches(steps, &members, direction)
                })
                .filter(|lane| !lane.is_empty())
                .collect()
        }
        Direction::Teardown => {
            let all: Vec<usize> = (0..steps.len()).collect();
            let lane = batches(steps, &all, direction);
            if lane.is_empty() {
                Vec::new()
            } else {
                vec![lane]
            }
        }
    }
}

/// The batches of the steps at `indices`, in stage order.
fn batches(steps: &[Step], indices: &[usize], direction: Direction) -> Vec<Vec<usize>> {
    let mut sending: Vec<(u8, bool, usize)> = indices
        .iter()
        .copied()
        .filter(|&i| steps[i].sends())
        .map(|i| {
            let (stage, parallel) = stage(&steps[i], direction);
            (stage, parallel, i)
        })
        .collect();
    // Stable: plan order within a stage.
    sending.sort_by_key(|(stage, _, _)| *stage);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut last: Option<(u8, bool)> = None;
    for (stage, parallel, i) in sending {
        match batches.last_mut() {
            Some(batch) if parallel && last == Some((stage, true)) => batch.push(i),
            _ => batches.push(vec![i]),
        }
        last = Some((stage, parallel));
    }
    batches
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::common::Change;
    use crate::objects::ObjectKey;
    use crate::steps::{AwsAuthAction, AwsAuthStep, IamAction, IamStep, KubeStep};

    fn kube(kind: Kind, namespace: Option<&str>, name: &str, action: KubeAction) -> Step {
        Step::Kube(KubeStep {
            key: ObjectKey {
                kind,
                namespace: namespace.map(str::to_owned),
                name: name.to_owned(),
            },
            desired: json!({}),
            change: Change::Created,
            action,
        })
    }

    fn iam(name: &str, action: IamAction) -> Step {
        Step::Iam(IamStep {
            kind: "IAMRole",
            name: name.to_owned(),
            change: Change::Created,
            action,
        })
    }

    fn steps() -> Vec<Step> {
        vec![
            iam("r", IamAction::DeleteRole { role: "r".into() }),
            iam("unchanged", IamAction::None),
            Step::AwsAuth(AwsAuthStep {
                arn: "a".into(),
                change: Change::Created,
                action: AwsAuthAction::Remove {
                    kind: crate::aws_auth::MappingKind::Role,
                    arn: "a".into(),
                },
                wanted: None,
            }),
            kube(Kind::Role, Some("ns"), "r1", KubeAction::Delete),
            kube(Kind::Namespace, None, "ns", KubeAction::Delete),
            kube(Kind::ClusterRole, None, "cr", KubeAction::Delete),
            kube(Kind::RoleBinding, Some("ns"), "b1", KubeAction::Delete),
        ]
    }

    #[test]
    fn create_runs_aws_beside_the_cluster_and_namespaces_before_their_contents() {
        assert_eq!(
            schedule(&steps(), Direction::Create),
            vec![
                vec![vec![0]],
                vec![vec![2]],
                vec![vec![4], vec![5], vec![3, 6]]
            ]
        );
    }

    #[test]
    fn teardown_is_the_mirror_image_and_skips_steps_that_send_nothing() {
        assert_eq!(
            schedule(&steps(), Direction::Teardown),
            vec![vec![vec![3, 6], vec![5], vec![4], vec![2], vec![0]]]
        );
    }
}
