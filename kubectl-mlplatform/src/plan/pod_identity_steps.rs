//! EKS Pod Identity for a profile's workload roles (`irsaRoles`, `--identity pod-identity`):
//! one association per ServiceAccount of each role on connect (tagged with the role's
//! ownership tags), and on disconnect our associations of the roles that go.

use std::collections::BTreeSet;

use super::error::PlanError;
use super::model::Observed;
use super::profile_steps::{PlannedIrsaRole, RenderedIrsaRole, render_irsa_roles};
use crate::facts::{ClusterFacts, ServiceAccountKey};
use crate::pod_identity::{AssociationTarget, plan_association, plan_association_removal};
use crate::profile::{Profile, Vars};
use crate::steps::PodIdentityStep;
use crate::vocabulary::{
    MANAGED_BY_VALUE, RoleMaker, TAG_CLUSTER, TAG_MANAGED_BY, TAG_PROFILE, role_is_ours,
};

/// The (namespace, ServiceAccount) pairs of the profile's workload roles (what preflight
/// reads the associations of).
pub(crate) fn irsa_service_account_keys(
    profile: &Profile,
    vars: &Vars,
) -> BTreeSet<ServiceAccountKey> {
    render_irsa_roles(profile, vars)
        .map(|roles| {
            roles
                .into_iter()
                .flat_map(|r| {
                    let ns = r.namespace;
                    r.service_accounts
                        .into_iter()
                        .map(move |sa| (ns.clone(), sa))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// connect: each ServiceAccount of each role gets its association.
pub(super) fn plan_associations_apply(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    planned: &[PlannedIrsaRole],
    replace: bool,
) -> Result<Vec<PodIdentityStep>, PlanError> {
    let tags = vec![
        (TAG_PROFILE.to_owned(), profile.name().to_owned()),
        (TAG_CLUSTER.to_owned(), cluster.arn.clone()),
        (TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
    ];
    let mut steps = Vec::new();
    for p in planned {
        for sa in &p.role.service_accounts {
            let target = AssociationTarget {
                cluster: &cluster.name,
                namespace: &p.role.namespace,
                service_account: sa,
                role: &p.arn,
                live: observed.pod_identity.associations_of(&p.role.namespace, sa),
            };
            steps.push(plan_association(target, tags.clone(), replace)?);
        }
    }
    Ok(steps)
}

/// disconnect: our associations (this profile's tags) of the roles that go now or are gone
/// already; nothing when the associations were not read.
pub(super) fn plan_associations_remove(
    profile: &Profile,
    cluster: &ClusterFacts,
    observed: &Observed,
    roles: &[RenderedIrsaRole],
    removed: &[String],
    warnings: &mut Vec<String>,
) -> Vec<PodIdentityStep> {
    if observed.pod_identity.associations.is_none() {
        return Vec::new();
    }
    let ours = |tags: &std::collections::BTreeMap<String, String>| {
        role_is_ours(tags, &cluster.arn, RoleMaker::Profile(profile.name()))
    };
    let mut steps = Vec::new();
    for role in roles
        .iter()
        .filter(|r| removed.contains(&r.name) || !observed.roles.contains_key(&r.name))
    {
        for sa in &role.service_accounts {
            let target = AssociationTarget {
                cluster: &cluster.name,
                namespace: &role.namespace,
                service_account: sa,
                role: &role.name,
                live: observed.pod_identity.associations_of(&role.namespace, sa),
            };
            steps.extend(plan_association_removal(target, ours, warnings));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::access_entry::AuthMode;
    use crate::facts::CallerIdentity;
    use crate::plan::{ConnectInputs, plan_connect, plan_disconnect};
    use crate::pod_identity::Identity;
    use crate::steps::{PodIdentityAction, Step};
    use crate::vocabulary::IRSA_ROLE_ARN_ANNOTATION;

    const ACCOUNT: &str = "123456789012";

    fn cluster() -> ClusterFacts {
        ClusterFacts {
            name: "c1".into(),
            arn: format!("arn:aws:eks:us-east-1:{ACCOUNT}:cluster/c1"),
            account: ACCOUNT.into(),
            region: "us-east-1".into(),
            oidc_issuer: Some("https://oidc.eks.us-east-1.amazonaws.com/id/ABC".into()),
            authentication_mode: None,
            version: None,
            endpoint: None,
        }
    }

    fn inputs() -> ConnectInputs {
        ConnectInputs {
            namespace: "arthurai".into(),
            params: BTreeMap::from([("s3Bucket".to_owned(), "bucket-1".to_owned())]),
            external_id: None,
            generated_external_id: "unused".into(),
            cluster_admin: false,
            delete_namespace: false,
            auth_mode: AuthMode::Configmap,
            identity: Identity::PodIdentity,
            replace_association: false,
        }
    }

    fn observed() -> Observed {
        Observed {
            caller: CallerIdentity {
                account: ACCOUNT.into(),
                arn: format!("arn:aws:iam::{ACCOUNT}:user/admin"),
            },
            pod_identity: crate::facts::PodIdentityFacts {
                associations: Some(BTreeMap::new()),
                agent_addon: None,
            },
            ..Observed::default()
        }
    }

    #[test]
    fn arthur_with_pod_identity_associates_both_service_accounts_and_drops_the_irsa_policy() {
        let profile = crate::profile::load_profile("arthur").unwrap();
        let plan = plan_connect(&profile, &inputs(), &cluster(), &observed()).unwrap();
        assert!(plan.oidc_step().is_none());
        let associations: Vec<(&str, &str)> = plan
            .pod_identity_steps()
            .map(|s| (s.namespace.as_str(), s.service_account.as_str()))
            .collect();
        assert_eq!(
            associations,
            [
                ("arthurai", "arthurai-arthurai"),
                ("arthurai", "arthurai-arthurai-helm-hook")
            ]
        );
        let trust = plan
            .iam_steps()
            .find(|s| s.kind == "PodIdentityRole")
            .map(|s| s.action.clone());
        let Some(crate::steps::IamAction::CreateRole { trust_policy, .. }) = trust else {
            panic!("no Pod Identity role")
        };
        assert_eq!(
            crate::pod_identity::subjects_in_trust(&trust_policy, &cluster().arn).len(),
            2
        );
        // The namespace policy does not carry the role (the webhook would annotate for IRSA).
        let ns = plan
            .kube_steps()
            .find(|s| s.key.kind == crate::objects::Kind::Namespace)
            .unwrap();
        assert!(
            ns.desired["metadata"]["annotations"][IRSA_ROLE_ARN_ANNOTATION].is_null(),
            "{}",
            ns.desired
        );
        // Teardown: associations before the role (AWS after the cluster, mirrored).
        let role = "mlplatform-arthur-c1-arthurai";
        let mut after = observed();
        after.roles.insert(
            role.to_owned(),
            crate::facts::RoleFacts {
                name: role.to_owned(),
                arn: format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
                path: "/".into(),
                trust_policy,
                inline_policies: BTreeMap::new(),
                attached_policy_arns: Vec::new(),
                tags: BTreeMap::from([
                    (TAG_PROFILE.to_owned(), "arthur".to_owned()),
                    (TAG_CLUSTER.to_owned(), cluster().arn),
                ]),
                description: None,
            },
        );
        let mut live = BTreeMap::new();
        for step in plan.pod_identity_steps() {
            let PodIdentityAction::Create { tags } = &step.action else {
                panic!("not a create")
            };
            live.insert(
                (step.namespace.clone(), step.service_account.clone()),
                vec![crate::facts::PodIdentityAssociationFacts {
                    id: format!("a-{}", step.service_account.len()),
                    role_arn: step.role_arn.clone(),
                    tags: tags.iter().cloned().collect(),
                    ..Default::default()
                }],
            );
        }
        after.pod_identity.associations = Some(live);
        after.profile_namespaces = vec!["arthurai".into()];
        let gone = plan_disconnect(&profile, &inputs(), &cluster(), &after).unwrap();
        let order: Vec<&str> = gone
            .schedule
            .iter()
            .flatten()
            .flatten()
            .map(|&i| match &gone.steps[i] {
                Step::PodIdentity(_) => "association",
                Step::Iam(_) => "iam",
                _ => "other",
            })
            .filter(|k| *k != "other")
            .collect();
        assert_eq!(order.first(), Some(&"association"), "{order:?}");
        assert_eq!(order.iter().filter(|k| **k == "association").count(), 2);
    }
}
