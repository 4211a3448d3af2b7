//! `irsa migrate --to pod-identity|irsa` through the real binary: IAM on moto, EKS Pod Identity
//! on the EKS stand-in in front of it, Kubernetes on the API double. The role is made by
//! `irsa create` (IRSA), migrated, re-run, migrated back; a role kubectl-mlplatform did not
//! make needs `--role-arn`.

use kubectl_mlplatform::aws::issuer_host_path;
use mlplatform_namespace_policy::eks;
use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use mlplatform_testkit::{EksStandIn, unique_name};
use serde_json::{Value, json};

use crate::pod_identity_cli::associations;
use crate::support::{Env, OIDC_LOCK, changes_of};

fn namespace_and_sa(env: &Env) {
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"},
    }));
}

fn annotation(env: &Env) -> Option<String> {
    env.object("v1", "ServiceAccount", Some("ml"), "sa")
        .and_then(|sa| {
            sa["metadata"]["annotations"][eks::ROLE_ARN]
                .as_str()
                .map(str::to_owned)
        })
}

fn principals(trust: &Value) -> Vec<String> {
    trust["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let p = &s["Principal"];
            p["Service"]
                .as_str()
                .or(p["Federated"].as_str())
                .unwrap_or_default()
                .split(":oidc-provider/")
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn writes(report: &Value) -> Vec<(String, String)> {
    changes_of(report)
        .into_iter()
        .filter(|(_, c)| c != "unchanged" && c != "absent")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_to_pod_identity_rerun_and_back() {
    let env = Env::with_eks_standin().await;
    let standin = EksStandIn::shared();
    namespace_and_sa(&env);
    let _oidc = env.associate_oidc().await;
    let aws = env.aws().await;
    env.run(&["irsa", "create", "-n", "ml", "--service-account", "sa"])
        .await
        .assert_ok();
    let role_name = format!("mlplatform-irsa-{}-ml-sa", env.cluster);
    let irsa_role = aws.get_role(&role_name).await.unwrap().expect("role");
    assert_eq!(annotation(&env).as_deref(), Some(irsa_role.arn.as_str()));
    let provider = format!("arn:aws:iam::{MOTO_ACCOUNT_ID}");
    assert_eq!(
        principals(&irsa_role.trust_policy),
        std::slice::from_ref(&provider)
    );

    let migrate = [
        "irsa",
        "migrate",
        "--to",
        "pod-identity",
        "-n",
        "ml",
        "--service-account",
        "sa",
        "--remove-oidc-trust",
    ];
    // Plan first: every IAM document and the association, nothing written.
    env.double.clear_requests();
    standin.clear_calls();
    let dry = env
        .run(&[&migrate[..], &["--dry-run=client", "-o", "yaml"]].concat())
        .await;
    dry.assert_ok();
    let report: Value = serde_yaml_ng::from_str(&dry.stdout).unwrap();
    let docs = report["rendered"]["writes"].as_array().unwrap().clone();
    let actions: Vec<&str> = docs
        .iter()
        .map(|w| w["action"]["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        [
            "updateTrust",
            "createPodIdentityAssociation",
            "updateTrust",
            "patchServiceAccount"
        ],
        "{}",
        dry.stdout
    );
    assert_eq!(docs[1]["action"]["roleArn"], irsa_role.arn);
    assert_eq!(docs[1]["action"]["serviceAccount"], "sa");
    assert_eq!(
        principals(&docs[0]["action"]["trustPolicy"]),
        [provider.clone(), "pods.eks.amazonaws.com".to_owned()]
    );
    assert_eq!(
        principals(&report["rendered"]["trustPolicy"]),
        ["pods.eks.amazonaws.com"]
    );
    assert!(env.double.mutating_requests().is_empty());
    assert!(standin.eks_writes_for(&env.cluster).is_empty());
    assert_eq!(aws.get_role(&role_name).await.unwrap().unwrap(), irsa_role);

    // Migrate: trust statement added, association, OIDC statement and annotation removed.
    let run = env.run(&[&migrate[..], &["-o", "json"]].concat()).await;
    run.assert_ok();
    assert_eq!(
        writes(&run.json()),
        vec![
            (
                format!("IAMTrustStatement/{role_name}/pods.eks.amazonaws.com"),
                "created".to_owned()
            ),
            ("PodIdentityAssociation/sa".to_owned(), "created".to_owned()),
            (
                format!(
                    "IAMTrustStatement/{role_name}/oidc-provider/{}",
                    issuer(&env).await
                ),
                "deleted".to_owned()
            ),
            ("ServiceAccount/sa".to_owned(), "updated".to_owned()),
        ],
        "{}",
        run.stdout
    );
    let migrated = aws.get_role(&role_name).await.unwrap().unwrap();
    assert_eq!(
        principals(&migrated.trust_policy),
        ["pods.eks.amazonaws.com"]
    );
    let live = associations(&env, "ml", "sa").await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].role_arn, irsa_role.arn);
    assert_eq!(live[0].tags["mlplatform.io/role-kind"], "irsa");
    assert_eq!(annotation(&env), None);

    // Re-run: nothing written (eksctl fails here with "association already exists").
    env.double.clear_requests();
    standin.clear_calls();
    let again = env.run(&[&migrate[..], &["-o", "json"]].concat()).await;
    again.assert_ok();
    assert!(writes(&again.json()).is_empty(), "{}", again.stdout);
    assert!(env.double.mutating_requests().is_empty());
    assert!(standin.eks_writes_for(&env.cluster).is_empty());
    assert_eq!(aws.get_role(&role_name).await.unwrap().unwrap(), migrated);

    // --to irsa undoes it: OIDC trust and annotation back, association and Pod Identity
    // statement gone; a re-run of that writes nothing either.
    let back = [
        "irsa",
        "migrate",
        "--to",
        "irsa",
        "--role-name",
        &role_name,
        "-n",
        "ml",
        "-o",
        "json",
    ];
    let run = env.run(&back).await;
    run.assert_ok();
    assert_eq!(writes(&run.json()).len(), 4, "{}", run.stdout);
    let undone = aws.get_role(&role_name).await.unwrap().unwrap();
    assert_eq!(principals(&undone.trust_policy), [provider]);
    assert!(associations(&env, "ml", "sa").await.is_empty());
    assert_eq!(annotation(&env).as_deref(), Some(irsa_role.arn.as_str()));
    env.double.clear_requests();
    standin.clear_calls();
    let again = env.run(&back).await;
    again.assert_ok();
    assert!(writes(&again.json()).is_empty(), "{}", again.stdout);
    assert!(env.double.mutating_requests().is_empty());
    assert!(standin.eks_writes_for(&env.cluster).is_empty());

    // In two runs: without --remove-oidc-trust the OIDC side stays; the second run (with it)
    // picks up where the first stopped.
    let keep = env.run(&[&migrate[..8], &["-o", "json"]].concat()).await;
    keep.assert_ok();
    assert_eq!(writes(&keep.json()).len(), 2, "{}", keep.stdout);
    assert_eq!(annotation(&env).as_deref(), Some(irsa_role.arn.as_str()));
    let rest = env.run(&[&migrate[..], &["-o", "json"]].concat()).await;
    rest.assert_ok();
    assert_eq!(writes(&rest.json()).len(), 2, "{}", rest.stdout);
    assert_eq!(annotation(&env), None);

    env.run(&["irsa", "delete", "-n", "ml", "--service-account", "sa"])
        .await
        .assert_ok();
    assert!(associations(&env, "ml", "sa").await.is_empty());
    assert!(aws.get_role(&role_name).await.unwrap().is_none());
}

async fn issuer(env: &Env) -> String {
    let cluster = env
        .aws()
        .await
        .describe_cluster(&env.cluster)
        .await
        .unwrap();
    issuer_host_path(&cluster.oidc_issuer.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_not_ours_needs_role_arn_and_bad_input_writes_nothing() {
    let env = Env::with_eks_standin().await;
    let standin = EksStandIn::shared();
    namespace_and_sa(&env);
    // The role below trusts the OIDC provider moto gives every cluster: while it exists, a
    // test deleting that provider (holding the write guard) would find it still trusted.
    let _oidc = OIDC_LOCK.read().await;
    let aws = env.aws().await;
    let host = issuer(&env).await;
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:oidc-provider/{host}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{host}:sub"): "system:serviceaccount:ml:sa",
            format!("{host}:aud"): "sts.amazonaws.com",
        }},
    }]});
    let name = unique_name("theirs");
    let arn = aws
        .create_role(&name, "/", &trust, "made elsewhere", &[])
        .await
        .unwrap();

    env.double.clear_requests();
    standin.clear_calls();
    let refused = env
        .run(&[
            "irsa",
            "migrate",
            "--to",
            "pod-identity",
            "--role-name",
            &name,
            "-n",
            "ml",
        ])
        .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--role-arn"), "{}", refused.stderr);
    let other_ns = env
        .run(&[
            "irsa",
            "migrate",
            "--to",
            "pod-identity",
            "--role-arn",
            &arn,
            "-n",
            "ml",
            "--service-account",
            "other/sa",
        ])
        .await;
    assert_eq!(other_ns.code, 2, "{}", other_ns.stderr);
    assert_eq!(
        other_ns.stderr.trim().lines().count(),
        1,
        "{}",
        other_ns.stderr
    );
    let backwards = env
        .run(&[
            "irsa",
            "migrate",
            "--to",
            "irsa",
            "--role-arn",
            &arn,
            "--remove-oidc-trust",
        ])
        .await;
    assert_eq!(backwards.code, 2, "{}", backwards.stderr);
    assert!(env.double.mutating_requests().is_empty());
    assert!(standin.eks_writes_for(&env.cluster).is_empty());
    assert_eq!(
        aws.get_role(&name).await.unwrap().unwrap().trust_policy,
        trust
    );

    // Named by ARN: migrated; the association is tagged as ours, the role is left untagged.
    let run = env
        .run(&[
            "irsa",
            "migrate",
            "--to",
            "pod-identity",
            "--role-arn",
            &arn,
            "-n",
            "ml",
        ])
        .await;
    run.assert_ok();
    let live = associations(&env, "ml", "sa").await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].role_arn, arn);
    assert_eq!(
        live[0].tags["app.kubernetes.io/managed-by"],
        "kubectl-mlplatform"
    );
    assert!(aws.get_role(&name).await.unwrap().unwrap().tags.is_empty());
    env.run(&[
        "irsa",
        "migrate",
        "--to",
        "irsa",
        "--role-arn",
        &arn,
        "-n",
        "ml",
    ])
    .await
    .assert_ok();
    assert!(associations(&env, "ml", "sa").await.is_empty());
    assert_eq!(
        aws.get_role(&name).await.unwrap().unwrap().trust_policy["Statement"],
        trust["Statement"]
    );
    aws.delete_role(&name).await.unwrap();
}
