//! Pure planning for the sagemaker-operator, arthur and hopsworks profiles: the rendered plan
//! of each (IAM documents, OIDC provider, cluster access, objects, manual steps) against golden
//! YAML fixtures (`tests/fixtures/<profile>/plan.yaml`; regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p kubectl-mlplatform --test it profiles_golden::` and review the
//! diff), and the decisions that keep disconnect exact.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kubectl_mlplatform::access_entry::{AccessEntryAction, AuthMode};
use kubectl_mlplatform::aws::{
    CallerIdentity, ClusterFacts, ClusterNetwork, RoleFacts, SecurityGroupRuleFacts,
};
use kubectl_mlplatform::aws_auth::AwsAuth;
use kubectl_mlplatform::common::Change;
use kubectl_mlplatform::objects::{Kind, ObjectKey};
use kubectl_mlplatform::plan::{
    ConnectInputs, Observed, OidcProviderFacts, Plan, PlanError, plan_connect, plan_disconnect,
};
use kubectl_mlplatform::profile::load_profile;
use kubectl_mlplatform::steps::{Ec2Action, IamAction, KubeAction, OidcAction};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const ACCOUNT: &str = "678901234557";
const ISSUER: &str = "https://oidc.eks.us-east-2.amazonaws.com/id/3A12CB18E75BD1133D141F6C7B5FB266";
const CLUSTER_ARN: &str = "arn:aws:eks:us-east-2:678901234557:cluster/kubetest32";

fn cluster() -> ClusterFacts {
    ClusterFacts {
        name: "kubetest32".into(),
        arn: CLUSTER_ARN.into(),
        account: ACCOUNT.into(),
        region: "us-east-2".into(),
        oidc_issuer: Some(ISSUER.into()),
        authentication_mode: Some("API_AND_CONFIG_MAP".into()),
        version: Some("1.33".into()),
        endpoint: None,
    }
}

fn inputs(namespace: &str, params: &[(&str, &str)]) -> ConnectInputs {
    ConnectInputs {
        namespace: namespace.into(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        external_id: None,
        generated_external_id: "unused".into(),
        cluster_admin: false,
        delete_namespace: false,
        auth_mode: AuthMode::Configmap,
        identity: kubectl_mlplatform::pod_identity::Identity::Irsa,
        replace_association: false,
    }
}

fn empty_observed() -> Observed {
    Observed {
        caller: CallerIdentity {
            account: ACCOUNT.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/admin"),
        },
        ..Observed::default()
    }
}

fn role(name: &str) -> RoleFacts {
    RoleFacts {
        name: name.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
        path: "/".into(),
        trust_policy: json!({}),
        inline_policies: BTreeMap::new(),
        attached_policy_arns: Vec::new(),
        tags: BTreeMap::new(),
        description: None,
    }
}

fn golden(profile: &str, plan: &Plan) {
    let text = serde_yaml_ng::to_string(&plan.rendered()).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(profile)
        .join("plan.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(text, want, "golden file {} differs", path.display());
}

/// The live state after a connect that did `plan`.
fn observed_after(base: &Observed, plan: &Plan) -> Observed {
    let mut observed = base.clone();
    for step in plan.kube_steps() {
        if step.action == KubeAction::None && observed.objects.contains_key(&step.key) {
            continue;
        }
        let mut live = step.desired.clone();
        live["metadata"]["uid"] = json!("uid-1");
        if step.key.kind == Kind::StorageClass {
            observed
                .storage_classes
                .retain(|c| c["metadata"]["name"] != step.key.name.as_str());
            observed.storage_classes.push(live.clone());
        }
        observed.objects.insert(step.key.clone(), live);
    }
    if let Some(oidc) = plan.oidc_step()
        && let OidcAction::Create { tags, .. } = &oidc.action
    {
        observed.oidc_provider = Some(OidcProviderFacts {
            arn: oidc.provider_arn.clone(),
            tags: tags.iter().cloned().collect(),
        });
    }
    for step in plan.iam_steps() {
        match &step.action {
            IamAction::CreateRole {
                role: name,
                trust_policy,
                tags,
                ..
            } => {
                let mut r = role(name);
                r.trust_policy = trust_policy.clone();
                r.tags = tags.iter().cloned().collect();
                observed.roles.insert(name.clone(), r);
            }
            IamAction::PutInlinePolicy {
                role: name,
                policy_name,
                document,
            } => {
                observed
                    .roles
                    .get_mut(name)
                    .unwrap()
                    .inline_policies
                    .insert(policy_name.clone(), document.clone());
            }
            IamAction::AttachManagedPolicy {
                role: name,
                policy_arn,
            } => observed
                .roles
                .get_mut(name)
                .unwrap()
                .attached_policy_arns
                .push(policy_arn.clone()),
            _ => {}
        }
    }
    if let Some(step) = plan.aws_auth_step()
        && let Some(m) = &step.wanted
    {
        let map_roles = format!(
            "- rolearn: {}\n  username: {}\n  groups:\n  - {}\n",
            m.arn, m.username, m.groups[0]
        );
        observed.aws_auth = Some(
            AwsAuth::parse(Some(&BTreeMap::from([("mapRoles".to_owned(), map_roles)]))).unwrap(),
        );
    }
    for step in plan.security_group_steps() {
        let rules = observed.security_group_rules.get_or_insert_default();
        match &step.action {
            Ec2Action::AuthorizeIngress => rules.push(SecurityGroupRuleFacts {
                id: format!("sgr-{}", rules.len()),
                egress: false,
                protocol: "tcp".into(),
                from_port: step.port.into(),
                to_port: step.port.into(),
                cidr: Some(step.cidr.clone()),
                description: Some(step.description.clone()),
            }),
            Ec2Action::RevokeIngress { rule_id } => rules.retain(|r| r.id != *rule_id),
            Ec2Action::None => {}
        }
    }
    observed
}

fn writes(plan: &Plan) -> Vec<String> {
    plan.changes()
        .into_iter()
        .filter(|c| c.change.is_write())
        .map(|c| format!("{} {}/{}", c.change, c.kind, c.name))
        .collect()
}

#[test]
fn sagemaker_operator_plan_matches_the_golden_file_and_is_idempotent() {
    let profile = load_profile("sagemaker-operator").unwrap();
    let ns = "sagemaker-k8s-operator-system";
    let plan = plan_connect(&profile, &inputs(ns, &[]), &cluster(), &empty_observed()).unwrap();
    golden("sagemaker-operator", &plan);
    assert_eq!(
        plan.outputs.role_arn.as_deref(),
        Some("arn:aws:iam::678901234557:role/mlplatform-sagemaker-operator-kubetest32")
    );
    // The trust is the seed's trust.json, for this cluster.
    let IamAction::CreateRole { trust_policy, .. } = &plan.iam_steps().next().unwrap().action
    else {
        panic!("{:?}", plan.iam_steps().next().unwrap())
    };
    let seed: Value = serde_json::from_str(
        &include_str!("../fixtures/irsa/sagemaker-operator-trust.json")
            .replace("012345678910", ACCOUNT)
            .replace("us-east-1", "us-east-2"),
    )
    .unwrap();
    assert!(
        kubectl_mlplatform::aws::policy_documents_equal(trust_policy, &seed),
        "{trust_policy}"
    );
    let observed = observed_after(&empty_observed(), &plan);
    let again = plan_connect(&profile, &inputs(ns, &[]), &cluster(), &observed).unwrap();
    assert_eq!(writes(&again), Vec::<String>::new());
}

#[test]
fn arthur_plan_matches_the_golden_file_demotes_and_restores_exactly() {
    let profile = load_profile("arthur").unwrap();
    let params = [
        ("s3Bucket", "arthur-blobs"),
        (
            "kmsKeyId",
            "arn:aws:kms:us-east-2:678901234557:key/1234abcd",
        ),
    ];
    let mut base = empty_observed();
    let gp2 = json!({"metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                     "provisioner": "kubernetes.io/aws-ebs"});
    let sc1 = json!({"metadata": {"name": "sc1"}, "provisioner": "ebs.csi.aws.com"});
    base.storage_classes = vec![gp2.clone(), sc1];
    for c in &base.storage_classes {
        base.objects.insert(
            ObjectKey {
                kind: Kind::StorageClass,
                namespace: None,
                name: c["metadata"]["name"].as_str().unwrap().to_owned(),
            },
            c.clone(),
        );
    }
    let plan = plan_connect(&profile, &inputs("arthur", &params), &cluster(), &base).unwrap();
    golden("arthur", &plan);
    assert_eq!(
        writes(&plan)
            .into_iter()
            .filter(|w| w.contains("StorageClass"))
            .collect::<Vec<_>>(),
        ["created StorageClass/gp3", "updated StorageClass/gp2"]
    );
    let observed = observed_after(&base, &plan);
    let again = plan_connect(&profile, &inputs("arthur", &params), &cluster(), &observed).unwrap();
    assert_eq!(writes(&again), Vec::<String>::new());

    let mut last = observed.clone();
    last.profile_namespaces = vec!["arthur".into()];
    let down = plan_disconnect(&profile, &inputs("arthur", &params), &cluster(), &last).unwrap();
    let gp2_step = down
        .kube_steps()
        .find(|s| s.key.name == "gp2")
        .expect("gp2 restored");
    assert_eq!(
        gp2_step.action,
        KubeAction::MergePatch(
            json!({"metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}})
        )
    );
    assert!(
        down.kube_steps().all(|s| s.key.name != "sc1"),
        "sc1 was never default and is not touched"
    );
    assert!(
        writes(&down).contains(&"deleted StorageClass/gp3".to_owned()),
        "{:?}",
        writes(&down)
    );

    // Another arthur namespace remains: its role stays... and this namespace's role goes.
    let mut shared = observed.clone();
    shared.profile_namespaces = vec!["arthur".into(), "other".into()];
    let down = plan_disconnect(&profile, &inputs("arthur", &params), &cluster(), &shared).unwrap();
    let w = writes(&down);
    assert!(
        w.contains(&"deleted IRSARole/mlplatform-arthur-kubetest32-arthur".to_owned()),
        "{w:?}"
    );
    assert!(
        !w.iter()
            .any(|x| x.contains("StorageClass") || x.contains("OIDC")),
        "{w:?}"
    );
}

#[test]
fn an_immutable_storage_class_change_is_refused_with_the_fix() {
    let profile = load_profile("arthur").unwrap();
    let plan = plan_connect(
        &profile,
        &inputs("arthur", &[("s3Bucket", "b-1")]),
        &cluster(),
        &empty_observed(),
    )
    .unwrap();
    let observed = observed_after(&empty_observed(), &plan);
    let kms = [
        ("s3Bucket", "b-1"),
        ("kmsKeyId", "arn:aws:kms:us-east-2:678901234557:key/k"),
    ];
    let err = plan_connect(&profile, &inputs("arthur", &kms), &cluster(), &observed).unwrap_err();
    assert!(
        matches!(err, PlanError::StorageClassImmutable { .. })
            && err.to_string().contains("kubectl delete storageclass gp3"),
        "{err}"
    );
}

#[test]
fn hopsworks_plan_matches_the_golden_file_and_opens_the_ports_on_the_security_group() {
    let profile = load_profile("hopsworks").unwrap();
    let instance = format!("arn:aws:iam::{ACCOUNT}:role/hopsworks/instance");
    let cross = format!("arn:aws:iam::{ACCOUNT}:role/hopsworks-cross");
    let mut base = empty_observed();
    base.roles.insert("instance".into(), role("instance"));
    base.roles
        .insert("hopsworks-cross".into(), role("hopsworks-cross"));
    base.network = Some(ClusterNetwork {
        cluster_security_group_id: Some("sg-0123456789abcdef0".into()),
        vpc_id: Some("vpc-1".into()),
    });
    base.security_group_rules = Some(Vec::new());
    let params = [
        ("instanceRoleArn", instance.as_str()),
        ("crossAccountRoleArn", cross.as_str()),
        ("hopsworksVpcCidr", "10.1.0.0/16"),
    ];
    let plan = plan_connect(&profile, &inputs("hopsworks", &params), &cluster(), &base).unwrap();
    golden("hopsworks", &plan);
    // With the network given, the ports are opened, not printed as a manual step.
    assert_eq!(plan.manual_steps, []);
    let rules: Vec<_> = plan
        .security_group_steps()
        .map(|s| (s.group_id.as_str(), s.port, s.cidr.as_str(), s.change))
        .collect();
    assert_eq!(
        rules,
        [
            ("sg-0123456789abcdef0", 80, "10.1.0.0/16", Change::Created),
            ("sg-0123456789abcdef0", 443, "10.1.0.0/16", Change::Created),
        ]
    );
    assert!(
        plan.security_group_steps()
            .all(|s| s.description == "kubectl-mlplatform hopsworks: kubetest32")
    );
    // The mapping strips the role path, as aws-auth needs.
    assert_eq!(
        plan.aws_auth_step().unwrap().arn,
        format!("arn:aws:iam::{ACCOUNT}:role/instance")
    );
    let observed = observed_after(&base, &plan);
    let again = plan_connect(
        &profile,
        &inputs("hopsworks", &params),
        &cluster(),
        &observed,
    )
    .unwrap();
    assert_eq!(writes(&again), Vec::<String>::new());

    // Without the cross-account role, that step is left out, not half-rendered.
    let only_instance = [("instanceRoleArn", instance.as_str())];
    let plan = plan_connect(
        &profile,
        &inputs("hopsworks", &only_instance),
        &cluster(),
        &base,
    )
    .unwrap();
    assert!(
        plan.iam_steps()
            .all(|s| !s.name.contains("hopsworks-cross"))
    );
    assert_eq!(
        plan.manual_steps[0].command,
        "aws ec2 authorize-security-group-ingress --region us-east-2 --group-id sg-0123456789abcdef0 --ip-permissions 'IpProtocol=tcp,FromPort=80,ToPort=80,IpRanges=[{CidrIp=<HOPSWORKS_VPC_CIDR>,Description=Hopsworks HTTP}]' 'IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=<HOPSWORKS_VPC_CIDR>,Description=Hopsworks HTTPS}]'"
    );
    assert_eq!(plan.security_group_steps().count(), 0);

    // --cluster-admin: the seed's system:masters, with a warning.
    let mut admin = inputs("hopsworks", &only_instance);
    admin.cluster_admin = true;
    let plan = plan_connect(&profile, &admin, &cluster(), &base).unwrap();
    assert_eq!(
        plan.aws_auth_step()
            .unwrap()
            .wanted
            .as_ref()
            .unwrap()
            .groups,
        ["mlplatform:hopsworks", "system:masters"]
    );
    assert!(plan.warnings.iter().any(|w| w.contains("system:masters")));

    // A role in another account cannot get our policy: refused up front.
    let foreign = [("instanceRoleArn", "arn:aws:iam::999999999999:role/instance")];
    let err =
        plan_connect(&profile, &inputs("hopsworks", &foreign), &cluster(), &base).unwrap_err();
    assert!(
        matches!(err, PlanError::ExistingRoleOtherAccount { .. }),
        "{err}"
    );
}

#[test]
fn hopsworks_on_an_api_cluster_gets_an_access_entry_scoped_to_its_namespaces() {
    // moto_server has no access entries: this path is planned here, purely; the EKS calls are
    // covered by access_entry_mocks.rs.
    let profile = load_profile("hopsworks").unwrap();
    let instance = format!("arn:aws:iam::{ACCOUNT}:role/instance");
    let mut base = empty_observed();
    base.roles.insert("instance".into(), role("instance"));
    base.profile_namespaces = vec!["team-a".into()];
    let mut auto = inputs("hopsworks", &[("instanceRoleArn", instance.as_str())]);
    auto.auth_mode = AuthMode::Auto;
    let api = ClusterFacts {
        authentication_mode: Some("API".into()),
        ..cluster()
    };
    let plan = plan_connect(&profile, &auto, &api, &base).unwrap();
    assert!(plan.aws_auth_step().is_none());
    let entry = plan.access_entry_step().unwrap();
    assert_eq!(entry.namespaces, ["hopsworks", "team-a"]);
    assert_eq!(entry.username, "hopsworks");
    assert!(matches!(
        entry.actions.as_slice(),
        [
            AccessEntryAction::CreateEntry { .. },
            AccessEntryAction::AssociatePolicy { .. }
        ]
    ));
    let mut admin = auto.clone();
    admin.cluster_admin = true;
    let err = plan_connect(&profile, &admin, &api, &base).unwrap_err();
    assert!(err.to_string().contains("--auth-mode configmap"), "{err}");
}

#[test]
fn the_oidc_provider_is_deleted_only_when_we_made_it_and_nobody_else_trusts_it() {
    let profile = load_profile("sagemaker-operator").unwrap();
    let ns = "sagemaker-k8s-operator-system";
    let plan = plan_connect(&profile, &inputs(ns, &[]), &cluster(), &empty_observed()).unwrap();
    let ours = observed_after(&empty_observed(), &plan);
    let role_name = "mlplatform-sagemaker-operator-kubetest32".to_owned();

    let mut trusted_by_us_only = ours.clone();
    trusted_by_us_only.roles_trusting_provider = vec![role_name.clone()];
    let down =
        plan_disconnect(&profile, &inputs(ns, &[]), &cluster(), &trusted_by_us_only).unwrap();
    assert_eq!(down.oidc_step().unwrap().change, Change::Deleted);

    let mut shared = ours.clone();
    shared.roles_trusting_provider = vec![role_name, "someone-elses".into()];
    let down = plan_disconnect(&profile, &inputs(ns, &[]), &cluster(), &shared).unwrap();
    assert_eq!(down.oidc_step().unwrap().change, Change::Unchanged);
    assert!(down.warnings.iter().any(|w| w.contains("someone-elses")));

    let mut theirs = ours.clone();
    theirs.oidc_provider.as_mut().unwrap().tags.clear();
    let down = plan_disconnect(&profile, &inputs(ns, &[]), &cluster(), &theirs).unwrap();
    assert_eq!(down.oidc_step().unwrap().change, Change::Unchanged);
    assert!(down.warnings.iter().any(|w| w.contains("existed before")));

    // A cluster without an issuer cannot have IRSA: one clear error.
    let no_issuer = ClusterFacts {
        oidc_issuer: None,
        ..cluster()
    };
    let err = plan_connect(&profile, &inputs(ns, &[]), &no_issuer, &empty_observed()).unwrap_err();
    assert!(matches!(err, PlanError::NoIssuer { .. }), "{err}");
}

#[test]
fn duplicate_aws_auth_entries_are_refused_by_the_plan_before_any_write() {
    let profile = load_profile("concurrent").unwrap();
    let arn = format!("arn:aws:iam::{ACCOUNT}:role/mlplatform-concurrent-kubetest32");
    let mut observed = empty_observed();
    observed.aws_auth = Some(
        AwsAuth::parse(Some(&BTreeMap::from([(
            "mapRoles".to_owned(),
            format!("- rolearn: {arn}\n  username: a\n  groups: [g]\n- rolearn: {arn}\n  username: b\n  groups: [g]\n"),
        )])))
        .unwrap(),
    );
    let err = plan_connect(
        &profile,
        &inputs("parallelsns", &[("vendorAccount", "111122223333")]),
        &cluster(),
        &observed,
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::AwsAuth(_)), "{err}");
    observed.profile_namespaces = vec!["parallelsns".into()];
    let err = plan_disconnect(
        &profile,
        &inputs("parallelsns", &[("vendorAccount", "111122223333")]),
        &cluster(),
        &observed,
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::AwsAuth(_)), "{err}");
}

#[test]
fn a_gp3_class_that_existed_before_is_made_default_and_given_back_not_deleted() {
    let profile = load_profile("arthur").unwrap();
    let params = [("s3Bucket", "b-1")];
    let mut base = empty_observed();
    base.storage_classes = vec![
        json!({"metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "kubernetes.io/aws-ebs"}),
        json!({"metadata": {"name": "gp3", "labels": {"team": "storage"}},
               "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}}),
    ];
    let plan = plan_connect(&profile, &inputs("arthur", &params), &cluster(), &base).unwrap();
    let gp3 = plan.kube_steps().find(|s| s.key.name == "gp3").unwrap();
    assert_eq!(
        gp3.action,
        KubeAction::MergePatch(json!({"metadata": {"annotations": {
            "storageclass.kubernetes.io/is-default-class": "true",
            "mlplatform.io/previous-default": "absent",
            "mlplatform.io/demoted-default-classes": "gp2",
        }}}))
    );
    // After connect: gp3 default (with the record), gp2 demoted.
    let mut after = base.clone();
    after.storage_classes = plan
        .kube_steps()
        .filter(|s| s.key.kind == Kind::StorageClass)
        .map(|s| s.desired.clone())
        .collect();
    let again = plan_connect(&profile, &inputs("arthur", &params), &cluster(), &after).unwrap();
    assert!(
        again
            .kube_steps()
            .filter(|s| s.key.kind == Kind::StorageClass)
            .all(|s| s.change == Change::Unchanged),
        "{:?}",
        again.kube_steps().collect::<Vec<_>>()
    );
    let down = plan_disconnect(&profile, &inputs("arthur", &params), &cluster(), &after).unwrap();
    let sc: BTreeMap<&str, &KubeAction> = down
        .kube_steps()
        .filter(|s| s.key.kind == Kind::StorageClass)
        .map(|s| (s.key.name.as_str(), &s.action))
        .collect();
    assert_eq!(
        sc["gp2"],
        &KubeAction::MergePatch(
            json!({"metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}})
        )
    );
    assert_eq!(
        sc["gp3"],
        &KubeAction::MergePatch(json!({"metadata": {"annotations": {
            "storageclass.kubernetes.io/is-default-class": null,
            "mlplatform.io/previous-default": null,
            "mlplatform.io/demoted-default-classes": null,
        }}}))
    );
}
