//! The sagemaker-operator, arthur and hopsworks profiles through the real binary against
//! moto_server (IAM, STS, EKS) and the Kubernetes API double: connect creates, a re-run writes
//! nothing, a dry run writes nothing, disconnect undoes exactly, doctor passes and then fails
//! with the fix after a sabotage; each profile exported, edited and passed back as a file.
//!
//! moto gives every cluster of a region the same OIDC issuer, so the tests that touch the OIDC
//! provider take [`OIDC_LOCK`] and start from a clean slate.

mod support;

use std::collections::BTreeMap;

use kubectl_mlplatform::aws::{Aws, issuer_host_path};
use mlplatform_namespace_policy::{IRSA_ROLE_ARN_ANNOTATION, MANAGED_LABEL, eks};
use mlplatform_testkit::moto::MOTO_ACCOUNT_ID;
use serde_json::{Value, json};
use support::{Env, Run};

static OIDC_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SM_NS: &str = "sagemaker-k8s-operator-system";
const SM_SA: &str = "sagemaker-k8s-operator-default";
const SAGEMAKER_POLICY: &str = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess";

fn changes(report: &Value) -> BTreeMap<String, String> {
    support::changes_of(report).into_iter().collect()
}

fn all(report: &Value, change: &str) -> bool {
    changes(report).values().all(|c| c == change)
}

async fn issuer(env: &Env) -> String {
    let cluster = env
        .aws()
        .await
        .describe_cluster(&env.cluster)
        .await
        .unwrap();
    cluster.oidc_issuer.unwrap()
}

/// Deletes any provider for the (shared) issuer: tests that take OIDC_LOCK start clean.
async fn clean_oidc(aws: &Aws, issuer: &str) {
    if let Some(arn) = aws.find_oidc_provider(issuer).await.unwrap() {
        aws.delete_oidc_provider(&arn).await.unwrap();
    }
}

/// One `error:` line, the exit code, and nothing written anywhere.
fn assert_refused(run: &Run, code: i32, needle: &str) {
    assert_eq!(
        run.code, code,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------- sagemaker-operator

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagemaker_operator_connect_rerun_doctor_disconnect() {
    let _lock = OIDC_LOCK.lock().await;
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

/// Gone, or (a real API server) still `Terminating` with a deletion timestamp.
fn gone_or_terminating(ns: Option<Value>) -> bool {
    ns.is_none_or(|ns| ns["metadata"]["deletionTimestamp"].is_string())
}

/// Issue 9 §2.2: the namespace connect created for the operator's ServiceAccount stays on a
/// plain disconnect (with advice), and goes with a later `disconnect --delete-namespace`, after
/// the IRSA role it was made for is already gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagemaker_operator_delete_namespace_on_a_later_disconnect() {
    let _lock = OIDC_LOCK.lock().await;
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
    let _lock = OIDC_LOCK.lock().await;
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

// ---------------------------------------------------------------- arthur

fn seed_gp2_default(env: &Env) {
    env.double.apply_fixture(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/aws-ebs",
        "parameters": {"type": "gp2"},
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
    }));
}

fn default_annotation(env: &Env, name: &str) -> Option<String> {
    env.object("storage.k8s.io/v1", "StorageClass", None, name)
        .and_then(|sc| {
            sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                .as_str()
                .map(str::to_owned)
        })
}

/// Issue 9 §2.1: a real API server lists StorageClasses without kind/apiVersion. A second
/// connect must still find gp3 as wanted (no "updated", no PATCH), and doctor right after
/// connect must not call it drifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arthur_rerun_and_doctor_see_no_storage_class_drift() {
    let _lock = OIDC_LOCK.lock().await;
    let env = Env::new().await;
    let aws = env.aws().await;
    let issuer = issuer(&env).await;
    clean_oidc(&aws, &issuer).await;
    seed_gp2_default(&env);
    env.double.apply_fixture(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
        "metadata": {"name": "ebs.csi.aws.com"}, "spec": {"attachRequired": true},
    }));
    let connect = [
        "connect",
        "--profile",
        "arthur",
        "--s3-bucket",
        "arthur-blobs",
        "-o",
        "json",
    ];
    env.run(&connect).await.assert_ok();

    // What the plugin is up against: list items without kind/apiVersion.
    let list = env
        .double
        .client()
        .request_text(
            http::Request::get("/apis/storage.k8s.io/v1/storageclasses")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let list: Value = serde_json::from_str(&list).unwrap();
    let items = list["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|i| i.get("kind").is_none() && i.get("apiVersion").is_none()),
        "{list}"
    );

    env.double.clear_requests();
    let again = env.run(&connect).await;
    again.assert_ok();
    let c = changes(&again.json());
    assert_eq!(c["StorageClass/gp3"], "unchanged", "{c:?}");
    assert!(all(&again.json(), "unchanged"), "{}", again.stdout);
    assert_eq!(env.double.mutating_requests(), vec![]);

    let doctor = env
        .run(&[
            "doctor",
            "--profile",
            "arthur",
            "--s3-bucket",
            "arthur-blobs",
            "-o",
            "json",
        ])
        .await;
    doctor.assert_ok();
    let checks = doctor.json()["checks"].clone();
    let gp3 = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "StorageClass gp3")
        .expect("gp3 check");
    assert_eq!(gp3["status"], "pass", "{checks}");
    env.run(&["disconnect", "--profile", "arthur"])
        .await
        .assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arthur_connect_rerun_doctor_disconnect_restores_the_default_class() {
    let _lock = OIDC_LOCK.lock().await;
    let env = Env::new().await;
    let aws = env.aws().await;
    let issuer = issuer(&env).await;
    clean_oidc(&aws, &issuer).await;
    seed_gp2_default(&env);
    let ns = "arthurai";
    let role_name = format!("mlplatform-arthur-{}-{ns}", env.cluster);
    let connect = [
        "connect",
        "--profile",
        "arthur",
        "--s3-bucket",
        "arthur-blobs",
    ];

    // Bad input: one line, exit 2, nothing written.
    env.double.clear_requests();
    let bad = env
        .run(&[
            "connect",
            "--profile",
            "arthur",
            "--s3-bucket",
            "Arthur_Blobs",
        ])
        .await;
    assert_refused(&bad, 2, "not a valid S3 bucket name");
    assert_eq!(env.double.mutating_requests(), vec![]);

    let dry = env
        .run(&[&connect[..], &["--dry-run=client", "-o", "yaml"]].concat())
        .await;
    dry.assert_ok();
    assert!(dry.stdout.contains("kind: StorageClass"), "{}", dry.stdout);
    assert_eq!(env.double.mutating_requests(), vec![]);
    assert!(aws.get_role(&role_name).await.unwrap().is_none());

    let run = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    run.assert_ok();
    let report = run.json();
    let role_arn = format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/{role_name}");
    assert_eq!(report["roleArn"], role_arn, "{report}");
    let c = changes(&report);
    assert_eq!(c["StorageClass/gp3"], "created");
    assert_eq!(c["StorageClass/gp2"], "updated");
    let role = aws.get_role(&role_name).await.unwrap().expect("role");
    let host = issuer_host_path(&issuer);
    assert_eq!(
        role.trust_policy["Statement"][0]["Condition"]["StringEquals"][format!("{host}:sub")],
        json!([
            format!("system:serviceaccount:{ns}:arthurai-{ns}"),
            format!("system:serviceaccount:{ns}:arthurai-{ns}-helm-hook"),
        ])
    );
    assert!(
        role.inline_policies["arthur-s3"]
            .to_string()
            .contains("arn:aws:s3:::arthur-blobs/*")
    );
    assert!(role.inline_policies.contains_key("arthur-ses"));
    assert!(
        !role
            .inline_policies
            .contains_key("arthur-ses-cross-account")
    );
    let gp3 = env
        .object("storage.k8s.io/v1", "StorageClass", None, "gp3")
        .expect("gp3");
    assert_eq!(gp3["provisioner"], "ebs.csi.aws.com");
    assert_eq!(
        gp3["parameters"],
        json!({"type": "gp3", "encrypted": "true"})
    );
    assert_eq!(gp3["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(gp3["allowVolumeExpansion"], true);
    assert_eq!(default_annotation(&env, "gp3").as_deref(), Some("true"));
    assert_eq!(default_annotation(&env, "gp2").as_deref(), Some("false"));
    let namespace = env.object("v1", "Namespace", None, ns).expect("namespace");
    assert_eq!(namespace["metadata"]["labels"][MANAGED_LABEL], "true");
    assert_eq!(
        namespace["metadata"]["annotations"][IRSA_ROLE_ARN_ANNOTATION],
        role_arn
    );
    // Arthur's installer makes its ServiceAccounts: connect does not.
    assert!(
        env.object("v1", "ServiceAccount", Some(ns), &format!("arthurai-{ns}"))
            .is_none()
    );

    env.double.clear_requests();
    let again = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    again.assert_ok();
    assert!(all(&again.json(), "unchanged"), "{}", again.stdout);
    assert_eq!(env.double.mutating_requests(), vec![]);

    // Cross-account SES: one more inline policy, nothing else.
    let ses_role = "arn:aws:iam::444455556666:role/arthur-ses";
    let run = env
        .run(&[&connect[..], &["--ses-role-arn", ses_role, "-o", "json"]].concat())
        .await;
    run.assert_ok();
    let c = changes(&run.json());
    let written: Vec<_> = c.iter().filter(|(_, v)| *v != "unchanged").collect();
    assert_eq!(
        written,
        [(
            &format!("IAMInlinePolicy/{role_name}/arthur-ses-cross-account"),
            &"created".to_owned()
        )]
    );
    let role = aws.get_role(&role_name).await.unwrap().unwrap();
    assert!(
        role.inline_policies["arthur-ses-cross-account"]
            .to_string()
            .contains(ses_role)
    );

    // doctor: no EBS CSI driver → fails with the add-on command; with it → passes.
    env.seed_webhook_configurations();
    let doctor = [
        "doctor",
        "--profile",
        "arthur",
        "--s3-bucket",
        "arthur-blobs",
        "--ses-role-arn",
        ses_role,
    ];
    let bad = env.run(&doctor).await;
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stdout.contains(&format!(
            "aws eks create-addon --cluster-name {} --addon-name aws-ebs-csi-driver --region us-east-1",
            env.cluster
        )),
        "{}",
        bad.stdout
    );
    env.double.apply_fixture(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
        "metadata": {"name": "ebs.csi.aws.com"}, "spec": {"attachRequired": true},
    }));
    let ok = env.run(&doctor).await;
    ok.assert_ok();
    assert!(!ok.stdout.contains("✗"), "{}", ok.stdout);
    // Sabotage: gp2 made default again → two defaults.
    env.double.apply_fixture(json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp2", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/aws-ebs", "parameters": {"type": "gp2"},
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
    }));
    let bad = env.run(&doctor).await;
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stdout.contains("2 default StorageClasses: gp2, gp3"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout
            .contains("kubectl mlplatform connect --profile arthur"),
        "{}",
        bad.stdout
    );
    env.run(&[&connect[..], &["--ses-role-arn", ses_role]].concat())
        .await
        .assert_ok();
    assert_eq!(default_annotation(&env, "gp2").as_deref(), Some("false"));

    // disconnect: gp3 gone, gp2 the default again, role and provider gone.
    let run = env
        .run(&["disconnect", "--profile", "arthur", "-o", "json"])
        .await;
    run.assert_ok();
    assert!(
        env.object("storage.k8s.io/v1", "StorageClass", None, "gp3")
            .is_none()
    );
    assert_eq!(default_annotation(&env, "gp2").as_deref(), Some("true"));
    assert!(aws.get_role(&role_name).await.unwrap().is_none());
    assert!(aws.find_oidc_provider(&issuer).await.unwrap().is_none());
    let namespace = env
        .object("v1", "Namespace", None, ns)
        .expect("namespace kept");
    // Only the record that connect created it stays (for a later --delete-namespace).
    assert!(
        namespace["metadata"]["annotations"]
            .as_object()
            .is_none_or(|a| a
                .keys()
                .all(|k| !k.starts_with("mlplatform.io/")
                    || k == "mlplatform.io/created-for-profile")),
        "{namespace}"
    );
    assert_eq!(
        namespace["metadata"]["annotations"]["mlplatform.io/created-for-profile"],
        "arthur"
    );
    env.double.clear_requests();
    env.run(&["disconnect", "--profile", "arthur"])
        .await
        .assert_ok();
    assert_eq!(env.double.mutating_requests(), vec![]);
}

// ---------------------------------------------------------------- hopsworks

async fn existing_role(aws: &Aws, name: &str) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    aws.create_role(name, "/", &trust, "test", &[])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopsworks_connect_rerun_doctor_disconnect_touch_only_our_policies() {
    let env = Env::new().await;
    let aws = env.aws().await;
    env.seed_aws_auth();
    let before_auth = env.aws_auth_data().unwrap();
    let instance_name = format!("hopsworks-instance-{}", env.cluster);
    let cross_name = format!("hopsworks-cross-{}", env.cluster);
    let instance = existing_role(&aws, &instance_name).await;
    let cross = existing_role(&aws, &cross_name).await;
    aws.put_inline_policy(
        &instance_name,
        "theirs",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}),
    )
    .await
    .unwrap();
    let connect = [
        "connect",
        "--profile",
        "hopsworks",
        "--instance-role-arn",
        &instance,
        "--cross-account-role-arn",
        &cross,
    ];

    // Dry runs: client writes nothing; server sends Kubernetes writes as dry runs only.
    env.double.clear_requests();
    let dry = env
        .run(&[&connect[..], &["--dry-run=client", "-o", "yaml"]].concat())
        .await;
    dry.assert_ok();
    assert!(
        dry.stdout.contains("mlplatform-hopsworks-eks-ecr"),
        "{}",
        dry.stdout
    );
    assert_eq!(env.double.mutating_requests(), vec![]);
    let dry = env
        .run(&[&connect[..], &["--dry-run=server"]].concat())
        .await;
    dry.assert_ok();
    assert!(
        env.double
            .mutating_requests()
            .iter()
            .all(|r| r.is_dry_run()),
        "{:?}",
        env.double.mutating_requests()
    );
    assert_eq!(env.aws_auth_data().unwrap(), before_auth);
    let untouched = aws.get_role(&instance_name).await.unwrap().unwrap();
    assert_eq!(
        untouched.inline_policies.keys().collect::<Vec<_>>(),
        ["theirs"]
    );

    let run = env.run(&[&connect[..], &["-o", "json"]].concat()).await;
    run.assert_ok();
    let report = run.json();
    assert_eq!(report["roleArn"], instance);
    let manual = &report["manualSteps"][0];
    let command = manual["command"].as_str().unwrap();
    assert!(
        command.starts_with("aws ec2 authorize-security-group-ingress --region us-east-1 --group-id $(aws eks describe-cluster --name ")
            && command.contains("FromPort=80")
            && command.contains("FromPort=443"),
        "{manual}"
    );
    let role = aws.get_role(&instance_name).await.unwrap().unwrap();
    assert!(
        role.inline_policies["mlplatform-hopsworks-eks-ecr"]
            .to_string()
            .contains(&Env::arn_of(&env.cluster))
    );
    assert!(role.inline_policies.contains_key("theirs"));
    let cross_role = aws.get_role(&cross_name).await.unwrap().unwrap();
    assert!(
        cross_role.inline_policies["mlplatform-hopsworks-ecr-delete"]
            .to_string()
            .contains("ecr:DeleteRepository")
    );
    let map_roles = env.aws_auth_data().unwrap()["mapRoles"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        map_roles.contains(&instance)
            && map_roles.contains("username: hopsworks")
            && map_roles.contains("mlplatform:hopsworks")
            && !map_roles.contains("system:masters"),
        "{map_roles}"
    );
    let binding = env
        .object(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("hopsworks"),
            "mlplatform-hopsworks-hopsworks",
        )
        .expect("group bound in its namespace");
    assert_eq!(binding["subjects"][0]["name"], "mlplatform:hopsworks");
    // The table says the manual step clearly.
    env.double.clear_requests();
    let table = env.run(&connect).await;
    table.assert_ok();
    assert!(
        table.stdout.contains("nothing to change"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("MANUAL STEP (security-group-ports)"),
        "{}",
        table.stdout
    );
    assert_eq!(env.double.mutating_requests(), vec![]);

    // doctor passes (the manual step is repeated as a warning), then fails after sabotage.
    env.seed_webhook_configurations();
    let doctor = [
        "doctor",
        "--profile",
        "hopsworks",
        "--instance-role-arn",
        &instance,
        "--cross-account-role-arn",
        &cross,
    ];
    let ok = env.run(&doctor).await;
    ok.assert_ok();
    assert!(
        ok.stdout.contains("manual step: security-group-ports")
            && ok.stdout.contains("authorize-security-group-ingress"),
        "{}",
        ok.stdout
    );
    aws.delete_inline_policy(&cross_name, "mlplatform-hopsworks-ecr-delete")
        .await
        .unwrap();
    let bad = env.run(&doctor).await;
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stdout
            .contains(&format!("{cross_name}/mlplatform-hopsworks-ecr-delete"))
            && bad
                .stdout
                .contains("kubectl mlplatform connect --profile hopsworks"),
        "{}",
        bad.stdout
    );
    env.run(&connect).await.assert_ok();

    // disconnect: our policies and mapping go; the roles and their own policies stay.
    let run = env
        .run(&[
            "disconnect",
            "--profile",
            "hopsworks",
            "--instance-role-arn",
            &instance,
            "--cross-account-role-arn",
            &cross,
        ])
        .await;
    run.assert_ok();
    let role = aws.get_role(&instance_name).await.unwrap().expect("kept");
    assert_eq!(role.inline_policies.keys().collect::<Vec<_>>(), ["theirs"]);
    let cross_role = aws.get_role(&cross_name).await.unwrap().expect("kept");
    assert!(cross_role.inline_policies.is_empty());
    assert_eq!(env.aws_auth_data().unwrap(), before_auth);
    assert!(
        env.object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "mlplatform-hopsworks-workloads"
        )
        .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hopsworks_refuses_before_any_write() {
    let env = Env::new().await;
    let aws = env.aws().await;
    // A role that does not exist: never created.
    let missing = format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/nope-{}", env.cluster);
    let run = env
        .run(&[
            "connect",
            "--profile",
            "hopsworks",
            "--instance-role-arn",
            &missing,
        ])
        .await;
    assert_refused(&run, 1, "does not exist");
    assert_eq!(env.double.mutating_requests(), vec![]);

    // Duplicate aws-auth entries for the role: refused in preflight, before IAM is written.
    let name = format!("hopsworks-dup-{}", env.cluster);
    let arn = existing_role(&aws, &name).await;
    env.double.apply_fixture(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": format!("- rolearn: {arn}\n  username: a\n  groups: [g]\n- rolearn: {arn}\n  username: b\n  groups: [g]\n")},
    }));
    env.double.clear_requests();
    let run = env
        .run(&[
            "connect",
            "--profile",
            "hopsworks",
            "--instance-role-arn",
            &arn,
        ])
        .await;
    assert_refused(&run, 1, "aws-auth");
    assert_eq!(env.double.mutating_requests(), vec![]);
    let role = aws.get_role(&name).await.unwrap().unwrap();
    assert!(role.inline_policies.is_empty(), "IAM was written");
}

// ---------------------------------------------------------------- profiles as files

/// `profiles show X -o yaml`, edited, passed back with `--profile FILE`: the edit shows in
/// the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_is_exported_edited_and_passed_back() {
    let env = Env::new().await;
    let aws = env.aws().await;
    let instance = existing_role(&aws, &format!("hw-file-{}", env.cluster)).await;
    let cases: [(&str, &str, &str, Vec<&str>); 4] = [
        (
            "concurrent",
            "concurrent-eks-ecr-ses",
            "edited-concurrent-policy",
            vec!["--vendor-account", support::VENDOR],
        ),
        (
            "sagemaker-operator",
            "AmazonSageMakerFullAccess",
            "AmazonSageMakerReadOnly",
            vec![],
        ),
        (
            "arthur",
            "arthur-ses",
            "mail-policy",
            vec!["--s3-bucket", "b-1"],
        ),
        (
            "hopsworks",
            "mlplatform-hopsworks-eks-ecr",
            "edited-hopsworks-policy",
            vec!["--instance-role-arn", &instance],
        ),
    ];
    for (name, from, to, extra) in cases {
        let shown = env.run(&["profiles", "show", name, "-o", "yaml"]).await;
        shown.assert_ok();
        assert!(shown.stdout.contains(from), "{name}: {}", shown.stdout);
        let file = env.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, shown.stdout.replace(from, to)).unwrap();
        let reloaded = env
            .run(&["profiles", "show", file.to_str().unwrap(), "-o", "yaml"])
            .await;
        reloaded.assert_ok();
        let mut args = vec![
            "connect",
            "--profile",
            file.to_str().unwrap(),
            "--dry-run=client",
            "-o",
            "json",
        ];
        args.extend(extra);
        let run = env.run(&args).await;
        run.assert_ok();
        let rendered = run.json()["rendered"].to_string();
        assert!(rendered.contains(to), "{name}: {rendered}");
        assert!(!rendered.contains(from), "{name}: {rendered}");
    }
    assert_eq!(env.double.mutating_requests(), vec![]);
}
