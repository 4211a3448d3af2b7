use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;
use crate::facts::PodIdentityAssociationFacts;
use crate::steps::PodIdentityAction;
use crate::vocabulary::{MANAGED_BY_VALUE, TAG_CLUSTER, TAG_MANAGED_BY, TAG_ROLE_KIND};

const ISSUER: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
const CLUSTER_ARN: &str = "arn:aws:eks:us-east-1:123456789012:cluster/c1";
const PROVIDER: &str =
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/r";

fn request(to: Identity) -> MigrateRequest {
    MigrateRequest {
        cluster_name: "c1".into(),
        cluster_arn: CLUSTER_ARN.into(),
        issuer_host_path: ISSUER.into(),
        to,
        role: "r".into(),
        named_by_arn: false,
        service_accounts: Vec::new(),
        remove_oidc_trust: false,
        replace_association: false,
    }
}

fn ours() -> BTreeMap<String, String> {
    [
        (TAG_MANAGED_BY, MANAGED_BY_VALUE),
        (TAG_CLUSTER, CLUSTER_ARN),
        (TAG_ROLE_KIND, "irsa"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn sa(annotated: bool) -> Option<Value> {
    let mut sa = json!({"metadata": {"name": "sa", "namespace": "ml"}});
    if annotated {
        sa["metadata"]["annotations"] = json!({eks::ROLE_ARN: ROLE_ARN});
    }
    Some(sa)
}

/// An IRSA role made by `irsa create` for ml/sa, annotated, no association.
fn irsa_state() -> MigrateObserved {
    let trust = trust_policy(PROVIDER, ISSUER, &[subject("ml", "sa")]);
    MigrateObserved {
        role: Some(RoleFacts {
            name: "r".into(),
            arn: ROLE_ARN.into(),
            path: "/".into(),
            trust_policy: trust,
            inline_policies: BTreeMap::new(),
            attached_policy_arns: Vec::new(),
            tags: ours(),
            description: None,
        }),
        oidc_provider: Some(PROVIDER.into()),
        service_accounts: [(("ml".to_owned(), "sa".to_owned()), sa(true))].into(),
        pod_identity: PodIdentityFacts {
            associations: Some([(("ml".to_owned(), "sa".to_owned()), Vec::new())].into()),
            agent_addon: None,
        },
    }
}

/// What EKS, IAM and the cluster hold once the plan ran.
fn after(plan: &MigratePlan, before: &MigrateObserved) -> MigrateObserved {
    let mut state = before.clone();
    if let Some(role) = state.role.as_mut() {
        role.trust_policy = plan.outputs.trust_policy.clone();
    }
    for step in plan.pod_identity_steps() {
        let key = (step.namespace.clone(), step.service_account.clone());
        let live = match &step.action {
            PodIdentityAction::Create { tags } => vec![PodIdentityAssociationFacts {
                id: "a-0123456789abcdefg".into(),
                namespace: step.namespace.clone(),
                service_account: step.service_account.clone(),
                role_arn: step.role_arn.clone(),
                tags: tags.iter().cloned().collect(),
                ..Default::default()
            }],
            PodIdentityAction::Delete { .. } => Vec::new(),
            _ => before.pod_identity.associations_of(&key.0, &key.1).to_vec(),
        };
        if let Some(all) = state.pod_identity.associations.as_mut() {
            all.insert(key, live);
        }
    }
    for step in plan.kube_steps() {
        if let KubeAction::MergePatch(patch) = &step.action
            && let Some(Some(live)) = state.service_accounts.get_mut(&(
                step.key.namespace.clone().unwrap_or_default(),
                step.key.name.clone(),
            ))
        {
            json_patch::merge(live, patch);
        }
    }
    state
}

fn rows(plan: &MigratePlan) -> Vec<(String, String, Change)> {
    plan.changes()
        .into_iter()
        .map(|r| (r.kind, r.name, r.change))
        .collect()
}

#[test]
fn to_pod_identity_adds_trust_then_association_then_drops_oidc_and_annotation() {
    let mut req = request(Identity::PodIdentity);
    req.remove_oidc_trust = true;
    let before = irsa_state();
    let plan = plan_migrate(&req, &before).unwrap();
    assert_eq!(
        rows(&plan),
        vec![
            (
                "IAMTrustStatement".into(),
                "r/pods.eks.amazonaws.com".into(),
                Change::Created
            ),
            (
                "PodIdentityAssociation".into(),
                "sa".into(),
                Change::Created
            ),
            (
                "IAMTrustStatement".into(),
                format!("r/oidc-provider/{ISSUER}"),
                Change::Deleted
            ),
            ("ServiceAccount".into(), "sa".into(), Change::Updated),
        ]
    );
    // One at a time, in that order: the association exists before the OIDC trust goes.
    assert_eq!(
        plan.schedule,
        vec![vec![vec![0], vec![1], vec![2], vec![3]]]
    );
    // The intermediate trust keeps the OIDC statement beside the new one.
    let Step::Iam(first) = &plan.steps[0] else {
        panic!("not IAM")
    };
    let IamAction::UpdateTrust { trust_policy, .. } = &first.action else {
        panic!("not a trust update")
    };
    assert_eq!(statements(trust_policy).len(), 2);
    assert_eq!(statements(&plan.outputs.trust_policy).len(), 1);
    assert_eq!(
        pi::subjects_in_trust(&plan.outputs.trust_policy, CLUSTER_ARN),
        [("ml".to_owned(), "sa".to_owned())].into()
    );
    // Tagged as the role is: whoever owns the role owns the association.
    let assoc = plan.pod_identity_steps().next().unwrap();
    let PodIdentityAction::Create { tags } = &assoc.action else {
        panic!("not a create")
    };
    assert!(tags.contains(&(TAG_ROLE_KIND.to_owned(), "irsa".to_owned())));

    // A re-run (also one stopped half-way: the trust still names the ServiceAccount through
    // Pod Identity) writes nothing.
    let done = after(&plan, &before);
    let again = plan_migrate(&req, &done).unwrap();
    assert!(!again.has_writes(), "{:?}", rows(&again));

    // --to irsa undoes it: OIDC trust back, annotation back, association deleted, Pod
    // Identity statement removed; and a re-run of that writes nothing.
    let back = plan_migrate(&request(Identity::Irsa), &done).unwrap();
    assert_eq!(
        rows(&back)
            .into_iter()
            .map(|(_, _, c)| c)
            .collect::<Vec<_>>(),
        vec![
            Change::Created,
            Change::Updated,
            Change::Deleted,
            Change::Deleted
        ]
    );
    let undone = after(&back, &done);
    assert_eq!(
        undone.role.as_ref().unwrap().trust_policy["Statement"],
        before.role.as_ref().unwrap().trust_policy["Statement"]
    );
    assert!(
        !plan_migrate(&request(Identity::Irsa), &undone)
            .unwrap()
            .has_writes()
    );
}

#[test]
fn without_remove_oidc_trust_the_oidc_trust_and_annotation_stay() {
    let before = irsa_state();
    let plan = plan_migrate(&request(Identity::PodIdentity), &before).unwrap();
    assert_eq!(plan.changes().len(), 2);
    assert_eq!(statements(&plan.outputs.trust_policy).len(), 2);
    assert!(plan.kube_steps().next().is_none());
}

#[test]
fn roles_not_ours_need_role_arn_and_conflicts_need_replace() {
    let mut theirs = irsa_state();
    if let Some(role) = theirs.role.as_mut() {
        role.tags.clear();
    }
    let err = plan_migrate(&request(Identity::PodIdentity), &theirs).unwrap_err();
    assert!(matches!(err, IrsaError::MigrateRoleNotOurs { .. }), "{err}");
    assert!(err.to_string().contains("--role-arn"), "{err}");
    let mut named = request(Identity::PodIdentity);
    named.named_by_arn = true;
    let plan = plan_migrate(&named, &theirs).unwrap();
    let PodIdentityAction::Create { tags } = &plan.pod_identity_steps().next().unwrap().action
    else {
        panic!("not a create")
    };
    assert_eq!(tags, &default_ownership_tags(CLUSTER_ARN));

    let mut taken = irsa_state();
    taken.pod_identity.associations = Some(
        [(
            ("ml".to_owned(), "sa".to_owned()),
            vec![PodIdentityAssociationFacts {
                id: "a-0000000000000000x".into(),
                role_arn: "arn:aws:iam::123456789012:role/other".into(),
                ..Default::default()
            }],
        )]
        .into(),
    );
    let err = plan_migrate(&request(Identity::PodIdentity), &taken)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a-0000000000000000x") && err.contains("--replace-association"));
    let mut replace = request(Identity::PodIdentity);
    replace.replace_association = true;
    let plan = plan_migrate(&replace, &taken).unwrap();
    assert_eq!(
        plan.pod_identity_steps().next().unwrap().change,
        Change::Updated
    );
}

#[test]
fn service_accounts_must_be_in_the_trust() {
    let mut req = request(Identity::PodIdentity);
    req.service_accounts = vec![("ml".into(), "other".into())];
    let err = plan_migrate(&req, &irsa_state()).unwrap_err();
    assert!(matches!(err, IrsaError::NotInTrust { .. }), "{err}");
    let mut empty = irsa_state();
    if let Some(role) = empty.role.as_mut() {
        role.trust_policy = json!({"Version": "2012-10-17", "Statement": []});
    }
    let err = plan_migrate(&request(Identity::PodIdentity), &empty).unwrap_err();
    assert!(matches!(err, IrsaError::NothingToMigrate { .. }), "{err}");
    assert!(matches!(
        plan_migrate(&request(Identity::PodIdentity), &MigrateObserved::default()),
        Err(IrsaError::RoleMissing(_))
    ));
}
