//! The sagemaker-operator profile: OIDC provider, IRSA role, its ServiceAccount.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagemaker_operator_connect_rerun_doctor_disconnect() {
    let _lock = OIDC_LOCK.write().await;
    let env = Env::new().await;
    let aws = env.aws().await;
    let issuer = issuer(&env).await;
    clean_oidc(&aws, &issuer).await;
    let role_name = format!("mlplatform-sagemaker-operator-{}", env.cluster);
    let connect = ["connect", "--profile", "sagemaker-operator"];

    // Dry run: the plan, and nothing written anywhere.
    let dry = env
        .run(&[&connect[..], &["--dry-run=client", "-o", "json"]].concat())
        .await;
    dry.assert_ok();
    let report = dry.json();
    assert!(all(&report, "created"), "{report}");
    assert_eq!(env.double.mutating_requests(), vec![]);
    assert!(aws.get_role(&role_name).await.unwrap().is_none());
    assert!(aws.find_oidc_provider(&issuer).await.unwrap().is_none());

    // connect creates the provider, the role, the namespace and the annotated SA.
    let run = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    run.assert_ok();
    let report = run.json();
    assert!(all(&report, "created"), "{report}");
    let role_arn = format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/{role_name}");
    assert_eq!(report["roleArn"], role_arn);
    assert_eq!(report["namespace"], SM_NS);
    let provider = aws
        .find_oidc_provider(&issuer)
        .await
        .unwrap()
        .expect("provider");
    let tags = aws.oidc_provider_tags(&provider).await.unwrap();
    assert_eq!(
        tags.get("mlplatform.io/cluster"),
        Some(&Env::arn_of(&env.cluster))
    );
    let role = aws.get_role(&role_name).await.unwrap().expect("role");
    let host = issuer_host_path(&issuer);
    let trust = &role.trust_policy["Statement"][0];
    assert_eq!(trust["Principal"]["Federated"], provider);
    assert_eq!(
        trust["Condition"]["StringEquals"][format!("{host}:sub")],
        format!("system:serviceaccount:{SM_NS}:{SM_SA}")
    );
    assert_eq!(
        trust["Condition"]["StringEquals"][format!("{host}:aud")],
        "sts.amazonaws.com"
    );
    assert_eq!(role.attached_policy_arns, [SAGEMAKER_POLICY]);
    let sa = env
        .object("v1", "ServiceAccount", Some(SM_NS), SM_SA)
        .expect("SA");
    assert_eq!(sa["metadata"]["annotations"][eks::ROLE_ARN], role_arn);
    assert!(env.object("v1", "Namespace", None, SM_NS).is_some());

    // Re-run: nothing written.
    env.double.clear_requests();
    let again = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    again.assert_ok();
    assert!(all(&again.json(), "unchanged"), "{}", again.stdout);
    assert_eq!(env.double.mutating_requests(), vec![]);
    assert_eq!(aws.get_role(&role_name).await.unwrap().unwrap(), role);

    // doctor: passes; the operator's CRDs absent is a warning with the install hint.
    env.seed_webhook_configurations();
    let doctor = ["doctor", "--profile", "sagemaker-operator", "-o", "json"];
    let ok = env.run(&doctor).await;
    ok.assert_ok();
    let checks = ok.json()["checks"].clone();
    let crd = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "operator CRDs *.sagemaker.aws.amazon.com")
        .expect("CRD check");
    assert_eq!(crd["status"], "warn", "{crd}");
    assert!(
        crd["fix"].as_str().unwrap().contains("installer.yaml")
            && crd["fix"].as_str().unwrap().contains(&role_arn),
        "{crd}"
    );
    env.double.apply_fixture(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "trainingjobs.sagemaker.aws.amazon.com"},
        "spec": {"group": "sagemaker.aws.amazon.com", "scope": "Namespaced",
                 "names": {"plural": "trainingjobs", "singular": "trainingjob", "kind": "TrainingJob"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]},
    }));
    let ok = env.run(&doctor).await;
    ok.assert_ok();
    assert!(
        ok.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "pass"),
        "{}",
        ok.stdout
    );

    // Sabotage: the annotation is gone; doctor fails and names the fix.
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": SM_SA, "namespace": SM_NS,
                     "labels": sa["metadata"]["labels"].clone()},
    }));
    let bad = env
        .run(&["doctor", "--profile", "sagemaker-operator"])
        .await;
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(
        bad.stdout
            .contains(&format!("ServiceAccount {SM_NS}/{SM_SA}")),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains(&format!(
            "kubectl mlplatform connect --profile sagemaker-operator --cluster {} --region us-east-1",
            env.cluster
        )),
        "{}",
        bad.stdout
    );
    env.run(&connect).await.assert_ok();

    // disconnect --delete-namespace: everything connect made goes, the provider included.
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "sagemaker-operator",
            "--delete-namespace",
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    assert!(aws.get_role(&role_name).await.unwrap().is_none());
    assert!(aws.find_oidc_provider(&issuer).await.unwrap().is_none());
    assert!(
        env.object("v1", "ServiceAccount", Some(SM_NS), SM_SA)
            .is_none()
    );
    assert!(gone_or_terminating(env.object(
        "v1",
        "Namespace",
        None,
        SM_NS
    )));
    env.double.clear_requests();
    env.run(&["disconnect", "--profile", "sagemaker-operator"])
        .await
        .assert_ok();
    assert_eq!(env.double.mutating_requests(), vec![]);
}

/// Issue 9 §2.2: the namespace connect created for the operator's ServiceAccount stays on a
/// plain disconnect (with advice), and goes with a later `disconnect --delete-namespace`, after
/// the IRSA role it was made for is already gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagemaker_operator_delete_namespace_on_a_later_disconnect() {
    let _lock = OIDC_LOCK.write().await;
    let env = Env::new().await;
    let aws = env.aws().await;
    let issuer = issuer(&env).await;
    clean_oidc(&aws, &issuer).await;
    env.run(&["connect", "--profile", "sagemaker-operator"])
        .await
        .assert_ok();
    let plain = env
        .run(&["disconnect", "--profile", "sagemaker-operator"])
        .await;
    plain.assert_ok();
    assert!(
        plain
            .stderr
            .contains(&format!("kept namespace {SM_NS} that connect created"))
            && plain.stderr.contains("pass --delete-namespace"),
        "{}",
        plain.stderr
    );
    assert!(env.object("v1", "Namespace", None, SM_NS).is_some());

    env.double.clear_requests();
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "sagemaker-operator",
            "--delete-namespace",
            "-o",
            "json",
        ])
        .await;
    run.assert_ok();
    assert_eq!(
        changes(&run.json())[&format!("Namespace/{SM_NS}")],
        "deleted"
    );
    let writes = env.double.mutating_requests();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "DELETE");
    assert!(gone_or_terminating(env.object(
        "v1",
        "Namespace",
        None,
        SM_NS
    )));
    env.double.clear_requests();
    env.run(&[
        "disconnect",
        "--profile",
        "sagemaker-operator",
        "--delete-namespace",
    ])
    .await
    .assert_ok();
    assert_eq!(env.double.mutating_requests(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagemaker_operator_keeps_a_provider_and_a_service_account_it_did_not_make() {
    let _lock = OIDC_LOCK.write().await;
    let env = Env::new().await;
    let aws = env.aws().await;
    let issuer = issuer(&env).await;
    clean_oidc(&aws, &issuer).await;
    let provider = aws
        .create_oidc_provider(&issuer, &["sts.amazonaws.com".to_owned()], &[])
        .await
        .unwrap();
    // The operator's installer already made its namespace and ServiceAccount.
    env.double.apply_fixture(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SM_NS}}),
    );
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": SM_SA, "namespace": SM_NS, "labels": {"control-plane": "controller-manager"}},
    }));
    let run = env
        .run(&["connect", "--profile", "sagemaker-operator", "-o", "json"])
        .await;
    run.assert_ok();
    let report = changes(&run.json());
    assert_eq!(
        report[&format!("IAMOIDCProvider/{}", issuer_host_path(&issuer))],
        "unchanged"
    );
    assert_eq!(report[&format!("ServiceAccount/{SM_SA}")], "updated");
    let sa = env
        .object("v1", "ServiceAccount", Some(SM_NS), SM_SA)
        .unwrap();
    assert!(sa["metadata"]["annotations"][eks::ROLE_ARN].is_string());

    let run = env
        .run(&["disconnect", "--profile", "sagemaker-operator"])
        .await;
    run.assert_ok();
    assert!(
        run.stderr.contains("kept IAM OIDC provider") && run.stderr.contains("existed before"),
        "{}",
        run.stderr
    );
    assert_eq!(
        aws.find_oidc_provider(&issuer).await.unwrap(),
        Some(provider.clone())
    );
    let sa = env
        .object("v1", "ServiceAccount", Some(SM_NS), SM_SA)
        .expect("their ServiceAccount stays");
    assert_eq!(
        sa["metadata"]["labels"]["control-plane"],
        "controller-manager"
    );
    assert!(
        sa["metadata"]["annotations"][eks::ROLE_ARN].is_null(),
        "{sa}"
    );
    assert!(env.object("v1", "Namespace", None, SM_NS).is_some());
    // The namespace existed before connect: --delete-namespace never deletes it.
    env.double.clear_requests();
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "sagemaker-operator",
            "--delete-namespace",
        ])
        .await;
    run.assert_ok();
    assert!(
        run.stderr.contains(&format!(
            "kept namespace {SM_NS}: connect did not create it"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(env.double.mutating_requests(), vec![]);
    let ns = env.object("v1", "Namespace", None, SM_NS).expect("kept");
    assert!(ns["metadata"]["deletionTimestamp"].is_null(), "{ns}");
    aws.delete_oidc_provider(&provider).await.unwrap();
}
