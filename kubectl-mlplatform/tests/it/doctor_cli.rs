//! doctor through the real binary against moto_server (IAM, STS, EKS) and the Kubernetes API
//! double: passes after connect, fails with the fix commands after a sabotage.

use serde_json::{Value, json};

use crate::support::{Env, NS, VENDOR};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_after_connect_and_fails_with_fix_commands_after_a_binding_is_deleted() {
    let env = Env::new().await;
    env.connect(&[]).await.assert_ok();
    env.seed_webhook_configurations();
    let doctor_args = [
        "doctor",
        "--profile",
        "concurrent",
        "--vendor-account",
        VENDOR,
    ];
    let ok = env.run(&doctor_args).await;
    ok.assert_ok();
    assert!(ok.stdout.contains("✓"), "{}", ok.stdout);
    assert!(!ok.stdout.contains("✗"), "{}", ok.stdout);

    let wrong_id = env
        .run(&[
            "doctor",
            "--profile",
            "concurrent",
            "--vendor-account",
            VENDOR,
            "--external-id",
            "not-the-one",
        ])
        .await;
    assert_eq!(wrong_id.code, 1, "{}", wrong_id.stdout);
    assert!(
        wrong_id.stdout.contains("external ID differs"),
        "{}",
        wrong_id.stdout
    );

    use k8s_openapi::api::rbac::v1::RoleBinding;
    let api: kube::Api<RoleBinding> = kube::Api::namespaced(env.double.client(), NS);
    api.delete(
        &format!("k8s-service-account-binding-{NS}"),
        &Default::default(),
    )
    .await
    .unwrap();
    let bad = env.run(&doctor_args).await;
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(bad.stdout.contains("✗"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains(&format!(
            "RoleBinding {NS}/k8s-service-account-binding-{NS}"
        )),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("system SA"), "{}", bad.stdout);
    assert!(bad.stdout.contains(&format!("kubectl mlplatform connect --profile concurrent --cluster {} --region us-east-1 -n {NS} --vendor-account {VENDOR}", env.cluster)), "{}", bad.stdout);
    assert!(bad.stderr.starts_with("error: "), "{}", bad.stderr);

    let json = env
        .run(&[
            "doctor",
            "--profile",
            "concurrent",
            "--vendor-account",
            VENDOR,
            "-o",
            "json",
        ])
        .await;
    assert_eq!(json.code, 1);
    assert_eq!(json.json()["passed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_webhook_configurations_and_probes_admission() {
    let env = Env::new().await;
    // Issue 9 §2.5: the README's sequence, a default connect and then doctor, passes.
    env.connect(&[]).await.assert_ok();
    let doctor_args = [
        "doctor",
        "--profile",
        "concurrent",
        "--vendor-account",
        VENDOR,
        "-o",
        "json",
    ];
    // No webhook, and enforcement not asked for: warnings with the install command, exit 0.
    let before = env.run(&doctor_args).await;
    before.assert_ok();
    let report = before.json();
    assert_eq!(report["passed"], true, "{report}");
    let checks = report["checks"].as_array().unwrap().clone();
    let warned: Vec<&Value> = checks.iter().filter(|c| c["status"] == "warn").collect();
    assert_eq!(warned.len(), 2, "{checks:?}");
    assert!(
        warned
            .iter()
            .all(|c| c["fix"] == "kubectl mlplatform webhook install"
                && c["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("WebhookConfiguration mlplatform-webhook")),
        "{checks:?}"
    );
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{checks:?}");
    let table = env
        .run(&[
            "doctor",
            "--profile",
            "concurrent",
            "--vendor-account",
            VENDOR,
        ])
        .await;
    table.assert_ok();
    assert!(
        table
            .stdout
            .contains("to fix:\n  kubectl mlplatform webhook install\n")
            && table.stdout.contains(" 0 failed, 2 warning(s)"),
        "{}",
        table.stdout
    );

    // Enforcement asked for (--with-webhook): the missing webhook is a failure.
    let asked = env
        .run(&[&doctor_args[..], &["--with-webhook"]].concat())
        .await;
    assert_eq!(asked.code, 1, "{}\n{}", asked.stdout, asked.stderr);
    let checks = asked.json()["checks"].clone();
    let failed: Vec<&Value> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 2, "{checks}");
    assert!(
        failed
            .iter()
            .all(|c| c["fix"] == "kubectl mlplatform webhook install"),
        "{checks}"
    );

    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        env.double.apply_fixture(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": "mlplatform-webhook"}, "webhooks": [],
        }));
    }
    env.double.clear_requests();
    let after = env.run(&doctor_args).await;
    after.assert_ok();
    let checks = after.json()["checks"].clone();
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "pass"),
        "{checks}"
    );
    let probe = env.double.mutating_requests();
    assert_eq!(probe.len(), 1, "{probe:?}");
    assert!(
        probe[0].path.ends_with(&format!("/namespaces/{NS}/pods")) && probe[0].is_dry_run(),
        "{probe:?}"
    );
}
