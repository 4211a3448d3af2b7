//! The arthur profile: IRSA roles and the gp3 StorageClass that becomes the default.

use super::*;

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
    let _lock = OIDC_LOCK.write().await;
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
    let _lock = OIDC_LOCK.write().await;
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
