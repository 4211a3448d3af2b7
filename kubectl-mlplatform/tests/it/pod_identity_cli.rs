//! `--identity pod-identity` through the real binary: `connect`/`doctor`/`disconnect` of the
//! sagemaker-operator profile and `irsa create|delete`, with IAM and EKS clusters on moto and
//! EKS Pod Identity associations and add-ons on the EKS stand-in in front of it (which, as EKS
//! does, refuses an association whose role does not trust pods.eks.amazonaws.com).

use std::collections::BTreeMap;

use mlplatform_namespace_policy::eks;
use mlplatform_testkit::EksStandIn;
use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use serde_json::{Value, json};

use crate::support::{Env, changes_of};

const SM_NS: &str = "sagemaker-k8s-operator-system";
const SM_SA: &str = "sagemaker-k8s-operator-default";

/// An association as EKS describes it: role ARN and tags.
#[derive(Debug)]
pub(crate) struct Assoc {
    pub(crate) id: String,
    pub(crate) role_arn: String,
    pub(crate) tags: BTreeMap<String, String>,
}

/// The associations EKS (the stand-in) lists for one ServiceAccount.
pub(crate) async fn associations(env: &Env, ns: &str, sa: &str) -> Vec<Assoc> {
    let aws = env.aws().await;
    let listed = aws
        .eks
        .list_pod_identity_associations()
        .cluster_name(&env.cluster)
        .namespace(ns)
        .service_account(sa)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for summary in listed.associations() {
        let id = summary.association_id().unwrap();
        let described = aws
            .eks
            .describe_pod_identity_association()
            .cluster_name(&env.cluster)
            .association_id(id)
            .send()
            .await
            .unwrap();
        let a = described.association().unwrap();
        out.push(Assoc {
            id: id.to_owned(),
            role_arn: a.role_arn().unwrap().to_owned(),
            tags: a
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        });
    }
    out
}

fn kinds(report: &Value) -> Vec<String> {
    changes_of(report).into_iter().map(|(k, _)| k).collect()
}

fn all(report: &Value, change: &str) -> bool {
    changes_of(report).iter().all(|(_, c)| c == change)
}

/// The one statement of a Pod Identity trust, with its scope.
fn assert_pod_identity_trust(trust: &Value, cluster_arn: &str, ns: &str, sa: &str) {
    let statements = trust["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{trust}");
    let st = &statements[0];
    assert_eq!(
        st["Principal"]["Service"], "pods.eks.amazonaws.com",
        "{trust}"
    );
    assert_eq!(st["Action"], json!(["sts:AssumeRole", "sts:TagSession"]));
    let exact = &st["Condition"]["StringEquals"];
    assert_eq!(exact["aws:RequestTag/eks-cluster-arn"], cluster_arn);
    assert_eq!(exact["aws:RequestTag/kubernetes-namespace"], ns);
    assert_eq!(exact["aws:RequestTag/kubernetes-service-account"], sa);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagemaker_operator_with_pod_identity_connect_rerun_doctor_disconnect() {
    let env = Env::with_eks_standin().await;
    let standin = EksStandIn::shared();
    let aws = env.aws().await;
    let role_name = format!("mlplatform-sagemaker-operator-{}", env.cluster);
    let role_arn = format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/{role_name}");
    let connect = [
        "connect",
        "--profile",
        "sagemaker-operator",
        "--identity",
        "pod-identity",
    ];

    // Dry run: every IAM document and association shown, nothing written anywhere.
    let dry = env
        .run(&[&connect[..], &["--dry-run=client", "-o", "yaml"]].concat())
        .await;
    dry.assert_ok();
    let report: Value = serde_yaml_ng::from_str(&dry.stdout).unwrap();
    let rendered = &report["rendered"];
    assert_eq!(
        rendered["podIdentityAssociations"][0]["serviceAccount"], SM_SA,
        "{}",
        dry.stdout
    );
    assert_eq!(rendered["podIdentityAssociations"][0]["roleArn"], role_arn);
    assert_eq!(rendered["iam"][0]["action"], "createRole");
    assert!(rendered.get("oidcProvider").is_none(), "{}", dry.stdout);
    assert!(env.double.mutating_requests().is_empty());
    assert!(aws.get_role(&role_name).await.unwrap().is_none());
    assert!(standin.eks_writes_for(&env.cluster).is_empty());

    // connect: the role trusts EKS Pod Identity for exactly the operator's ServiceAccount,
    // one association tagged as ours, the ServiceAccount without the role-arn annotation,
    // and no OIDC provider step.
    let run = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    run.assert_ok();
    let report = run.json();
    assert!(all(&report, "created"), "{report}");
    assert!(
        !kinds(&report)
            .iter()
            .any(|k| k.starts_with("IAMOIDCProvider"))
    );
    assert!(kinds(&report).contains(&format!("PodIdentityAssociation/{SM_SA}")));
    assert_eq!(report["roleArn"], role_arn);
    let role = aws.get_role(&role_name).await.unwrap().expect("role");
    assert_pod_identity_trust(&role.trust_policy, &Env::arn_of(&env.cluster), SM_NS, SM_SA);
    let live = associations(&env, SM_NS, SM_SA).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].role_arn, role_arn);
    assert_eq!(
        live[0].tags["app.kubernetes.io/managed-by"],
        "kubectl-mlplatform"
    );
    assert_eq!(live[0].tags["mlplatform.io/profile"], "sagemaker-operator");
    let sa = env
        .object("v1", "ServiceAccount", Some(SM_NS), SM_SA)
        .expect("SA");
    assert!(
        sa["metadata"]["annotations"][eks::ROLE_ARN].is_null(),
        "{sa}"
    );

    // Re-run: nothing written, in EKS, IAM or the cluster.
    env.double.clear_requests();
    standin.clear_calls();
    let again = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    again.assert_ok();
    assert!(all(&again.json(), "unchanged"), "{}", again.stdout);
    assert!(env.double.mutating_requests().is_empty());
    assert_eq!(standin.eks_writes_for(&env.cluster), vec![]);
    assert_eq!(aws.get_role(&role_name).await.unwrap().unwrap(), role);

    // doctor: the agent add-on missing is a failure with the command that installs it.
    let doctor = [
        "doctor",
        "--profile",
        "sagemaker-operator",
        "--identity",
        "pod-identity",
    ];
    let bad = env.run(&doctor).await;
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(
        bad.stdout.contains(&format!(
            "aws eks create-addon --cluster-name {} --addon-name eks-pod-identity-agent",
            env.cluster
        )),
        "{}",
        bad.stdout
    );
    standin.preset_addon(&env.cluster, "eks-pod-identity-agent", "ACTIVE", &[]);
    let ok = env.run(&[&doctor[..], &["-o", "json"]].concat()).await;
    ok.assert_ok();
    let checks = ok.json()["checks"].clone();
    let names: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "pass")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"EKS add-on eks-pod-identity-agent"),
        "{names:?}"
    );
    assert!(
        names.contains(&format!("EKS Pod Identity association {SM_NS}/{SM_SA}").as_str()),
        "{names:?}"
    );
    // Sabotage: the association now names another role: doctor says so and how to fix it.
    let pods = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
    let other = aws
        .create_role(
            &mlplatform_testkit::unique_name("else"),
            "/",
            &pods,
            "theirs",
            &[],
        )
        .await
        .unwrap();
    aws.eks
        .update_pod_identity_association()
        .cluster_name(&env.cluster)
        .association_id(&live[0].id)
        .role_arn(&other)
        .send()
        .await
        .unwrap();
    let drift = env.run(&doctor).await;
    assert_eq!(drift.code, 1, "{}", drift.stdout);
    assert!(
        drift.stdout.contains("points at another role"),
        "{}",
        drift.stdout
    );
    assert!(
        drift.stdout.contains("--replace-association"),
        "{}",
        drift.stdout
    );
    env.run(&[&connect[..], &["--replace-association"]].concat())
        .await
        .assert_ok();
    assert_eq!(associations(&env, SM_NS, SM_SA).await[0].role_arn, role_arn);

    // disconnect: our association, the role and our ServiceAccount go.
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "sagemaker-operator",
            "--identity",
            "pod-identity",
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    let changes: BTreeMap<String, String> = changes_of(&run.json()).into_iter().collect();
    assert_eq!(
        changes[&format!("PodIdentityAssociation/{SM_SA}")],
        "deleted"
    );
    // Reported as connect reported it (read from the live trust), not as an IRSA role.
    assert_eq!(changes[&format!("PodIdentityRole/{role_name}")], "deleted");
    assert!(associations(&env, SM_NS, SM_SA).await.is_empty());
    assert!(aws.get_role(&role_name).await.unwrap().is_none());
    assert!(
        env.object("v1", "ServiceAccount", Some(SM_NS), SM_SA)
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_association_of_another_role_is_named_and_replaced_only_when_asked() {
    let env = Env::with_eks_standin().await;
    let standin = EksStandIn::shared();
    let theirs = format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/theirs");
    let id = standin.preset_pod_identity_association(&env.cluster, SM_NS, SM_SA, &theirs, &[]);
    let role_name = format!("mlplatform-sagemaker-operator-{}", env.cluster);
    let connect = [
        "connect",
        "--profile",
        "sagemaker-operator",
        "--identity",
        "pod-identity",
    ];
    standin.clear_calls();
    let refused = env.run(&connect).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    for needle in [
        id.as_str(),
        theirs.as_str(),
        "--replace-association",
        "nothing was written",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle}: {}",
            refused.stderr
        );
    }
    assert!(env.double.mutating_requests().is_empty());
    assert!(standin.eks_writes_for(&env.cluster).is_empty());
    assert!(
        env.aws()
            .await
            .get_role(&role_name)
            .await
            .unwrap()
            .is_none()
    );

    // With the flag: the same association (UpdatePodIdentityAssociation) now names our role.
    env.run(&[&connect[..], &["--replace-association"]].concat())
        .await
        .assert_ok();
    let live = associations(&env, SM_NS, SM_SA).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, id);
    assert!(live[0].role_arn.ends_with(&format!("/{role_name}")));
    assert_eq!(live[0].tags["mlplatform.io/profile"], "sagemaker-operator");
    env.run(&[
        "disconnect",
        "--profile",
        "sagemaker-operator",
        "--identity",
        "pod-identity",
    ])
    .await
    .assert_ok();
    assert!(associations(&env, SM_NS, SM_SA).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_create_and_delete_with_pod_identity() {
    let env = Env::with_eks_standin().await;
    let standin = EksStandIn::shared();
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"},
    }));
    let aws = env.aws().await;
    let role_name = format!("mlplatform-irsa-{}-ml-sa", env.cluster);
    let create = [
        "irsa",
        "create",
        "-n",
        "ml",
        "--service-account",
        "sa",
        "--identity",
        "pod-identity",
    ];

    // Bad input: a ServiceAccount of another namespace: one line, exit 2, nothing written.
    env.double.clear_requests();
    let bad = env
        .run(
            &[
                &create[..4],
                &[
                    "--service-account",
                    "other/sa",
                    "--identity",
                    "pod-identity",
                ],
            ]
            .concat(),
        )
        .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_eq!(bad.stderr.trim().lines().count(), 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("other/sa") && bad.stderr.contains("-n other"),
        "{}",
        bad.stderr
    );
    assert!(env.double.mutating_requests().is_empty());
    assert!(standin.eks_writes_for(&env.cluster).is_empty());

    let run = env.run(&[&create[..], &["-o", "json"]].concat()).await;
    run.assert_ok();
    let report = run.json();
    assert!(all(&report, "created"), "{report}");
    let role = aws.get_role(&role_name).await.unwrap().expect("role");
    assert_pod_identity_trust(&role.trust_policy, &Env::arn_of(&env.cluster), "ml", "sa");
    let live = associations(&env, "ml", "sa").await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].role_arn, role.arn);
    assert_eq!(live[0].tags["mlplatform.io/role-kind"], "irsa");
    let sa = env
        .object("v1", "ServiceAccount", Some("ml"), "sa")
        .expect("SA");
    assert!(
        sa["metadata"]["annotations"][eks::ROLE_ARN].is_null(),
        "{sa}"
    );

    env.double.clear_requests();
    standin.clear_calls();
    let again = env.run(&[&create[..], &["-o", "json"]].concat()).await;
    again.assert_ok();
    assert!(
        !again.json()["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["change"] != "unchanged"),
        "{}",
        again.stdout
    );
    assert!(env.double.mutating_requests().is_empty());
    assert!(standin.eks_writes_for(&env.cluster).is_empty());

    let run = env
        .run(&[
            "irsa",
            "delete",
            "-n",
            "ml",
            "--service-account",
            "sa",
            "--identity",
            "pod-identity",
        ])
        .await;
    run.assert_ok();
    assert!(associations(&env, "ml", "sa").await.is_empty());
    assert!(aws.get_role(&role_name).await.unwrap().is_none());
    assert!(
        env.object("v1", "ServiceAccount", Some("ml"), "sa")
            .is_none()
    );
}
