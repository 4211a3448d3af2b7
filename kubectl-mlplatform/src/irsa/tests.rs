use std::collections::BTreeMap;

use super::*;
use pretty_assertions::assert_eq;

const ISSUER: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
const ACCOUNT: &str = "123456789012";
const CLUSTER_ARN: &str = "arn:aws:eks:us-east-1:123456789012:cluster/c1";
const PROVIDER: &str =
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";
const S3_RO: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
const SM_FULL: &str = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess";

fn request(sas: &[&str]) -> IrsaRequest {
    IrsaRequest {
        cluster_name: "c1".into(),
        cluster_arn: CLUSTER_ARN.into(),
        partition: "aws".into(),
        account: ACCOUNT.into(),
        issuer_host_path: ISSUER.into(),
        namespace: "ml".into(),
        service_accounts: sas.iter().map(|s| (*s).to_owned()).collect(),
        role: parse_role_name("ml-role").unwrap(),
        attach_policy_arns: vec![S3_RO.into()],
        inline_policy: None,
        role_only: false,
        extra_tags: Vec::new(),
        identity: crate::pod_identity::Identity::Irsa,
        replace_association: false,
    }
}

fn observed() -> IrsaObserved {
    IrsaObserved {
        oidc_provider: Some(PROVIDER.into()),
        namespace_exists: Some(true),
        ..IrsaObserved::default()
    }
}

/// The role as IAM would hold it after `plan_irsa_create(req)` was applied.
fn role_after(req: &IrsaRequest) -> RoleFacts {
    let plan = plan_irsa_create(req, &observed()).unwrap();
    let mut tags: BTreeMap<String, String> = role_tags(req).into_iter().collect();
    for arn in &req.attach_policy_arns {
        tags.insert(attached_policy_tag(arn), arn.clone());
    }
    RoleFacts {
        name: req.role.name.clone(),
        arn: req.role_arn(),
        path: req.role.path.clone(),
        trust_policy: plan.outputs.trust_policy,
        inline_policies: req
            .inline_policy
            .iter()
            .map(|d| (INLINE_POLICY_NAME.to_owned(), d.clone()))
            .collect(),
        attached_policy_arns: req.attach_policy_arns.clone(),
        tags,
        description: None,
    }
}

fn sa(namespace: &str, name: &str, annotation: Option<&str>, ours: bool) -> Value {
    let mut v = json!({"metadata": {"name": name, "namespace": namespace,
        "annotations": {"other": "kept"}, "labels": {}}});
    if let Some(a) = annotation {
        v["metadata"]["annotations"][eks::ROLE_ARN] = json!(a);
    }
    if ours {
        v["metadata"]["labels"] =
            json!({MANAGED_BY_LABEL: MANAGED_BY_VALUE, SA_CREATED_LABEL: "true"});
    }
    v
}

fn rows(plan: &IrsaPlan) -> Vec<(String, String, Change)> {
    plan.changes()
        .into_iter()
        .map(|r| (r.kind, r.name, r.change))
        .collect()
}

fn iam_action(step: &Step) -> &IamAction {
    match step {
        Step::Iam(s) => &s.action,
        other => panic!("not an IAM step: {other:?}"),
    }
}

fn kube_action(step: &Step) -> &KubeAction {
    match step {
        Step::Kube(s) => &s.action,
        other => panic!("not a Kubernetes step: {other:?}"),
    }
}

#[test]
fn trust_policy_matches_the_sagemaker_operator_page() {
    let golden: Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/irsa/sagemaker-operator-trust.json"
    ))
    .unwrap();
    let issuer = "oidc.eks.us-east-1.amazonaws.com/id/3A12CB18E75BD1133D141F6C7B5FB266";
    let trust = trust_policy(
        &oidc_provider_arn("aws", "012345678910", issuer),
        issuer,
        &[subject(
            "sagemaker-k8s-operator-system",
            "sagemaker-k8s-operator-default",
        )],
    );
    assert_eq!(trust, golden);
}

/// Arthur's page trusts two ServiceAccounts with a `:sub` list; we also pin `:aud`, which the
/// page leaves out (without it any audience's token for those SAs would do).
#[test]
fn several_service_accounts_become_a_sub_list() {
    let golden: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/irsa/arthur-trust.json")).unwrap();
    let issuer = "oidc.eks.us-east-2.amazonaws.com/id/ABDCEF";
    let trust = trust_policy(
        &oidc_provider_arn("aws", ACCOUNT, issuer),
        issuer,
        &[
            subject("arthur", "arthurai-arthur-helm-hook"),
            subject("arthur", "arthurai-arthur"),
        ],
    );
    assert_eq!(trust, golden);
    assert_eq!(
        subjects_in_trust(&trust, issuer),
        BTreeSet::from([
            ("arthur".to_owned(), "arthurai-arthur".to_owned()),
            ("arthur".to_owned(), "arthurai-arthur-helm-hook".to_owned()),
        ])
    );
    assert!(subjects_in_trust(&trust, ISSUER).is_empty());
}

#[test]
fn role_names_are_deterministic_and_fit_iam() {
    let a = default_role_name("c1", "ml", &["b".into(), "a".into()]);
    assert_eq!(a, "mlplatform-irsa-c1-ml-a-b");
    assert_eq!(a, default_role_name("c1", "ml", &["a".into(), "b".into()]));
    let long_cluster = "x".repeat(60);
    let long = default_role_name(&long_cluster, "namespace", &["service-account".into()]);
    assert!(long.len() <= 64, "{long}");
    let other = default_role_name(&long_cluster, "namespace", &["service-account-2".into()]);
    assert_ne!(long, other);
    assert!(parse_role_name(&long).is_ok());
}

#[test]
fn role_names_may_carry_a_path() {
    assert_eq!(
        parse_role_name("Name").unwrap(),
        RoleName {
            path: "/".into(),
            name: "Name".into()
        }
    );
    assert_eq!(
        parse_role_name("/team/ml/Name").unwrap(),
        RoleName {
            path: "/team/ml/".into(),
            name: "Name".into()
        }
    );
    assert_eq!(parse_role_name("team/Name").unwrap().path, "/team/");
    for bad in ["", "team/", "a//b", "bad name", &"n".repeat(65), "a/b c/d"] {
        let err = parse_role_name(bad).unwrap_err();
        assert!(err.to_string().contains("--role-name"), "{err}");
    }
    let mut req = request(&["sa"]);
    req.role = parse_role_name("team/ml/Name").unwrap();
    assert_eq!(
        req.role_arn(),
        "arn:aws:iam::123456789012:role/team/ml/Name"
    );
}

#[test]
fn policy_arns_and_inline_documents_are_checked() {
    assert_eq!(check_policy_arn(S3_RO).unwrap(), S3_RO);
    assert!(check_policy_arn("arn:aws:iam::123456789012:policy/team/P").is_ok());
    for bad in [
        "AmazonS3ReadOnlyAccess",
        "arn:aws:iam::aws:role/x",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::12:policy/x",
    ] {
        assert!(check_policy_arn(bad).is_err(), "{bad}");
    }
    let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    assert!(parse_inline_policy("p.json", ok).is_ok());
    for (text, says) in [
        ("{not json", "not JSON"),
        ("[]", "not a JSON object"),
        (r#"{"Statement": []}"#, "no Statement"),
        (
            r#"{"Statement": {"Effect": "Maybe", "Action": "a:b", "Resource": "*"}}"#,
            "Effect",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Resource": "*"}}"#,
            "no Action",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "a:b"}}"#,
            "no Resource",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Action": "a:b", "Resource": "*", "Principal": "*"}}"#,
            "Principal",
        ),
    ] {
        let err = parse_inline_policy("p.json", text).unwrap_err().to_string();
        assert!(err.starts_with("inline policy p.json: "), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn create_from_nothing_makes_role_policies_and_service_account() {
    let mut req = request(&["sa"]);
    req.inline_policy = Some(
        json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}),
    );
    let mut obs = observed();
    obs.service_accounts
        .insert(("ml".into(), "sa".into()), None);
    let plan = plan_irsa_create(&req, &obs).unwrap();
    assert_eq!(
        rows(&plan),
        vec![
            ("IAMRole".into(), "ml-role".into(), Change::Created),
            (
                "IAMInlinePolicy".into(),
                INLINE_POLICY_NAME.into(),
                Change::Created
            ),
            ("IAMPolicyAttachment".into(), S3_RO.into(), Change::Created),
            ("ServiceAccount".into(), "sa".into(), Change::Created),
        ]
    );
    assert_eq!(
        plan.outputs.role_arn,
        "arn:aws:iam::123456789012:role/ml-role"
    );
    let IamAction::CreateRole {
        tags, trust_policy, ..
    } = iam_action(&plan.steps[0])
    else {
        panic!("{:?}", plan.steps[0]);
    };
    assert!(tags.contains(&(attached_policy_tag(S3_RO), S3_RO.to_owned())));
    assert!(tags.contains(&(TAG_ROLE_KIND.to_owned(), ROLE_KIND_IRSA.to_owned())));
    assert_eq!(
        trust_policy["Statement"][0]["Condition"]["StringEquals"][format!("{ISSUER}:sub")],
        "system:serviceaccount:ml:sa"
    );
    let KubeAction::Create(body) = kube_action(&plan.steps[3]) else {
        panic!()
    };
    assert_eq!(
        body["metadata"]["annotations"][eks::ROLE_ARN],
        plan.outputs.role_arn
    );
    assert_eq!(body["metadata"]["labels"][SA_CREATED_LABEL], "true");
    // Rendered writes keep their shape: the row, and the action with its documents.
    let rendered = <IrsaOutputs as crate::output::Summary>::rendered(&plan);
    assert_eq!(rendered["writes"][0]["kind"], "IAMRole", "{rendered}");
    assert_eq!(
        rendered["writes"][0]["action"]["action"], "createRole",
        "{rendered}"
    );
    assert_eq!(
        rendered["writes"][3]["action"]["action"], "createServiceAccount",
        "{rendered}"
    );
    assert_eq!(rendered["writes"][3]["namespace"], "ml", "{rendered}");
}

#[test]
fn re_running_the_same_request_writes_nothing() {
    let req = request(&["sa"]);
    let mut obs = observed();
    obs.role = Some(role_after(&req));
    obs.service_accounts.insert(
        ("ml".into(), "sa".into()),
        Some(sa("ml", "sa", Some(&req.role_arn()), true)),
    );
    let plan = plan_irsa_create(&req, &obs).unwrap();
    assert!(!plan.has_writes(), "{:#?}", plan.steps);
    assert!(plan.changes().iter().all(|r| r.change == Change::Unchanged));
}

#[test]
fn different_inputs_reconcile_trust_policies_and_annotations() {
    let before = {
        let mut r = request(&["old-sa"]);
        r.inline_policy = Some(
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}),
        );
        r
    };
    let mut role = role_after(&before);
    // Someone else attached a policy by hand: it must stay.
    role.attached_policy_arns
        .push("arn:aws:iam::aws:policy/ByHand".into());
    let mut obs = observed();
    obs.role = Some(role);
    obs.service_accounts.insert(
        ("ml".into(), "old-sa".into()),
        Some(sa("ml", "old-sa", Some(&before.role_arn()), false)),
    );
    obs.service_accounts.insert(
        ("ml".into(), "new-sa".into()),
        Some(sa(
            "ml",
            "new-sa",
            Some("arn:aws:iam::123456789012:role/elsewhere"),
            false,
        )),
    );
    let mut after = request(&["new-sa"]);
    after.attach_policy_arns = vec![SM_FULL.into()];
    after.inline_policy = None;
    let plan = plan_irsa_create(&after, &obs).unwrap();
    assert_eq!(
        rows(&plan),
        vec![
            ("IAMRole".into(), "ml-role".into(), Change::Updated),
            (
                "IAMInlinePolicy".into(),
                INLINE_POLICY_NAME.into(),
                Change::Deleted
            ),
            ("IAMRoleTags".into(), "ml-role".into(), Change::Updated),
            (
                "IAMPolicyAttachment".into(),
                SM_FULL.into(),
                Change::Created
            ),
            ("IAMPolicyAttachment".into(), S3_RO.into(), Change::Deleted),
            ("IAMRoleTags".into(), "ml-role".into(), Change::Updated),
            ("ServiceAccount".into(), "new-sa".into(), Change::Updated),
            ("ServiceAccount".into(), "old-sa".into(), Change::Updated),
        ]
    );
    let KubeAction::MergePatch(patch) = kube_action(&plan.steps[7]) else {
        panic!()
    };
    assert_eq!(
        patch,
        &json!({"metadata": {"annotations": {eks::ROLE_ARN: null}}})
    );
    assert!(
        plan.warnings.iter().any(|w| w.contains("ByHand")),
        "{:?}",
        plan.warnings
    );
    assert!(
        plan.warnings.iter().any(|w| w.contains("elsewhere")),
        "{:?}",
        plan.warnings
    );
    let IamAction::UntagRole { keys, .. } = iam_action(&plan.steps[5]) else {
        panic!()
    };
    assert_eq!(keys, &vec![attached_policy_tag(S3_RO)]);
}

#[test]
fn an_already_attached_policy_not_ours_is_not_tracked() {
    let req = request(&["sa"]);
    let mut role = role_after(&request(&["sa"]));
    role.tags.remove(&attached_policy_tag(S3_RO));
    let mut obs = observed();
    obs.role = Some(role);
    let plan = plan_irsa_create(&req, &obs).unwrap();
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Iam(i) if matches!(i.action, IamAction::TagRole { .. }))),
        "{:#?}",
        plan.steps
    );
}

#[test]
fn refuses_roles_that_are_not_ours_or_elsewhere_and_needs_the_provider() {
    let req = request(&["sa"]);
    let mut foreign = role_after(&req);
    foreign.tags.remove(TAG_ROLE_KIND);
    let mut obs = observed();
    obs.role = Some(foreign);
    let err = plan_irsa_create(&req, &obs).unwrap_err();
    assert!(matches!(err, IrsaError::RoleNotOurs { .. }), "{err}");
    assert!(matches!(
        plan_irsa_delete(&req, &obs),
        Err(IrsaError::RoleNotOurs { .. })
    ));

    let mut moved = role_after(&req);
    moved.path = "/team/".into();
    obs.role = Some(moved);
    let err = plan_irsa_create(&req, &obs).unwrap_err().to_string();
    assert!(err.contains("--role-name team/ml-role"), "{err}");

    let no_provider = IrsaObserved {
        oidc_provider: None,
        ..observed()
    };
    let err = plan_irsa_create(&req, &no_provider)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kubectl mlplatform oidc associate --cluster c1"),
        "{err}"
    );

    let no_ns = IrsaObserved {
        namespace_exists: Some(false),
        ..observed()
    };
    assert_eq!(
        plan_irsa_create(&req, &no_ns).unwrap_err(),
        IrsaError::NamespaceMissing("ml".into())
    );
    assert!(matches!(
        plan_irsa_create(&request(&[]), &observed()),
        Err(IrsaError::NoServiceAccount)
    ));
    assert!(matches!(
        plan_irsa_create(&request(&["Bad_SA"]), &observed()),
        Err(IrsaError::BadServiceAccount(_))
    ));
}

#[test]
fn role_only_leaves_service_accounts_alone() {
    let mut req = request(&["sa"]);
    req.role_only = true;
    let obs = IrsaObserved {
        namespace_exists: None,
        ..observed()
    };
    let plan = plan_irsa_create(&req, &obs).unwrap();
    assert!(plan.changes().iter().all(|r| r.kind != "ServiceAccount"));
    let del = plan_irsa_delete(&req, &obs).unwrap();
    assert_eq!(
        rows(&del),
        vec![("IAMRole".into(), "ml-role".into(), Change::Absent)]
    );
}

#[test]
fn delete_removes_what_we_made_and_only_our_annotation() {
    let req = request(&["made", "theirs"]);
    let mut obs = observed();
    obs.role = Some(role_after(&req));
    let arn = req.role_arn();
    obs.service_accounts.insert(
        ("ml".into(), "made".into()),
        Some(sa("ml", "made", Some(&arn), true)),
    );
    obs.service_accounts.insert(
        ("ml".into(), "theirs".into()),
        Some(sa("ml", "theirs", Some(&arn), false)),
    );
    let plan = plan_irsa_delete(&req, &obs).unwrap();
    assert_eq!(
        rows(&plan),
        vec![
            ("ServiceAccount".into(), "made".into(), Change::Deleted),
            ("ServiceAccount".into(), "theirs".into(), Change::Updated),
            ("IAMRole".into(), "ml-role".into(), Change::Deleted),
        ]
    );
    // A ServiceAccount pointing at another role is not touched.
    obs.service_accounts.insert(
        ("ml".into(), "theirs".into()),
        Some(sa(
            "ml",
            "theirs",
            Some("arn:aws:iam::123456789012:role/other"),
            false,
        )),
    );
    let plan = plan_irsa_delete(&req, &obs).unwrap();
    assert_eq!(plan.changes()[1].change, Change::Unchanged);
    assert!(!plan.steps[1].sends());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The trust admits exactly the ServiceAccounts it was built for, in any order.
        #[test]
        fn trust_subjects_round_trip(
            sas in prop::collection::btree_set("[a-z][a-z0-9-]{0,20}[a-z0-9]", 1..6),
            namespace in "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        ) {
            let mut subjects: Vec<String> = sas.iter().map(|sa| subject(&namespace, sa)).collect();
            subjects.reverse();
            let trust = trust_policy(PROVIDER, ISSUER, &subjects);
            let back: BTreeSet<(String, String)> =
                sas.iter().map(|sa| (namespace.clone(), sa.clone())).collect();
            prop_assert_eq!(subjects_in_trust(&trust, ISSUER), back);
            subjects.reverse();
            prop_assert!(policy_documents_equal(&trust, &trust_policy(PROVIDER, ISSUER, &subjects)));
            let name = default_role_name("cluster", &namespace, &sas.iter().cloned().collect::<Vec<_>>());
            prop_assert!(name.len() <= 64);
            prop_assert!(parse_role_name(&name).is_ok());
        }
    }
}

#[test]
fn pod_identity_needs_no_provider_associates_and_drops_our_annotation() {
    let mut req = request(&["sa"]);
    req.identity = crate::pod_identity::Identity::PodIdentity;
    let mut obs = IrsaObserved {
        oidc_provider: None,
        ..observed()
    };
    obs.pod_identity.associations = Some(BTreeMap::new());
    // The ServiceAccount carries the IRSA annotation of this role from before.
    obs.service_accounts.insert(
        ("ml".into(), "sa".into()),
        Some(json!({"metadata": {"name": "sa", "namespace": "ml",
            "annotations": {eks::ROLE_ARN: req.role_arn()}}})),
    );
    let plan = plan_irsa_create(&req, &obs).unwrap();
    let kinds: Vec<(String, Change)> = plan
        .changes()
        .into_iter()
        .filter(|r| r.kind != "IAMPolicyAttachment")
        .map(|r| (r.kind, r.change))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("IAMRole".into(), Change::Created),
            ("PodIdentityAssociation".into(), Change::Created),
            ("ServiceAccount".into(), Change::Updated),
        ]
    );
    assert_eq!(
        crate::pod_identity::subjects_in_trust(&plan.outputs.trust_policy, CLUSTER_ARN),
        [("ml".to_owned(), "sa".to_owned())].into()
    );
    assert!(subjects_in_trust(&plan.outputs.trust_policy, ISSUER).is_empty());
}
