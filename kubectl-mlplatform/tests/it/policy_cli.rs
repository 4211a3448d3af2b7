//! `kubectl mlplatform policy install|uninstall|status` and `--enforcement` through the real
//! binary against the kube double, which serves the admission policy kinds and enforces
//! ValidatingAdmissionPolicies (and applies MutatingAdmissionPolicies) with their CEL.

use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use mlplatform_namespace_policy::{
    ENFORCEMENT_ANNOTATION, ENFORCEMENT_LABEL, IRSA_ROLE_ARN_ANNOTATION, MANAGED_LABEL,
    USER_SERVICE_ACCOUNT_ANNOTATION,
};
use serde_json::{Value, json};

use crate::support::{Env, NS, VENDOR};

const API: &str = "admissionregistration.k8s.io/v1";

fn pod(service_account: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "train"},
        "spec": {"serviceAccountName": service_account,
                 "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }))
    .unwrap()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

fn labels(env: &Env, ns: &str) -> Value {
    env.object("v1", "Namespace", None, ns).unwrap()["metadata"]["labels"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_install_enforces_status_checks_and_uninstall_removes_exactly_ours() {
    let env = Env::new().await;
    let add = |ns: &'static str, mode: &'static str| {
        let env = &env;
        async move {
            env.run(&[
                "namespace",
                "add",
                "--profile",
                "concurrent",
                "-n",
                ns,
                "--enforcement",
                mode,
            ])
            .await
            .assert_ok();
        }
    };
    add("team-e", "enforce").await;
    add("team-w", "warn").await;
    // Both engines' inputs: the label (bindings) and the annotation (the webhook).
    let ns = env.object("v1", "Namespace", None, "team-w").unwrap();
    assert_eq!(ns["metadata"]["labels"][ENFORCEMENT_LABEL], "warn");
    assert_eq!(
        ns["metadata"]["annotations"][ENFORCEMENT_ANNOTATION],
        "warn"
    );
    assert_eq!(labels(&env, "team-e")[ENFORCEMENT_LABEL], "enforce");

    // Client dry run: every object as YAML, nothing sent.
    env.double.clear_requests();
    let dry = env
        .run(&["policy", "install", "--dry-run=client", "-o", "yaml"])
        .await;
    dry.assert_ok();
    let kinds: Vec<String> = serde_yaml_ng::Deserializer::from_str(&dry.stdout)
        .map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).unwrap();
            v["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds.len(), 8, "{kinds:?}");
    assert!(kinds.contains(&"MutatingAdmissionPolicyBinding".to_owned()));
    assert!(env.double.mutating_requests().is_empty());

    let install = env.run(&["policy", "install", "-o", "json"]).await;
    install.assert_ok();
    let report = install.json();
    assert_eq!(report["mutatingAdmissionPolicy"], "installed");
    assert!(
        report["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["change"] == "created"),
        "{report}"
    );
    let policy = env
        .object(
            API,
            "ValidatingAdmissionPolicy",
            None,
            "mlplatform-service-accounts",
        )
        .unwrap();
    assert_eq!(
        policy["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kubectl-mlplatform"
    );
    env.double.clear_requests();
    env.run(&["policy", "install"]).await.assert_ok();
    assert!(
        env.double.mutating_requests().is_empty(),
        "a second install wrote"
    );

    // The API server now refuses, in the webhook's words.
    let pods: Api<Pod> = Api::namespaced(env.double.client(), "team-e");
    let err = pods
        .create(&PostParams::default(), &pod("default"))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains("ValidatingAdmissionPolicy 'mlplatform-service-accounts' with binding 'mlplatform-service-accounts-enforce' denied request: Pod team-e/train runs as ServiceAccount \"default\", which namespace team-e does not allow: set spec.serviceAccountName to \"k8s-serviceaccount-for-users-team-e\""),
        "{}",
        status.message
    );
    let user = "k8s-serviceaccount-for-users-team-e";
    pods.create(&PostParams::default(), &pod(user))
        .await
        .unwrap();
    // `warn`: admitted.
    let warned: Api<Pod> = Api::namespaced(env.double.client(), "team-w");
    warned
        .create(&PostParams::default(), &pod("default"))
        .await
        .unwrap();

    // The MutatingAdmissionPolicy gives the user ServiceAccount the namespace's role.
    let role = "arn:aws:iam::123456789012:role/irsa";
    env.double
        .apply_fixture(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-i", "labels": {MANAGED_LABEL: "true"},
                     "annotations": {USER_SERVICE_ACCOUNT_ANNOTATION: "runner",
                                     IRSA_ROLE_ARN_ANNOTATION: role}}}));
    let accounts: Api<ServiceAccount> = Api::namespaced(env.double.client(), "team-i");
    let runner: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "runner"}})).unwrap();
    let made = accounts
        .create(&PostParams::default(), &runner)
        .await
        .unwrap();
    assert_eq!(
        made.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"],
        role
    );

    let status = env.run(&["policy", "status", "-o", "json"]).await;
    status.assert_ok();
    let report = status.json();
    assert_eq!(report["healthy"], true, "{report}");
    let probe = check(&report, "API server refuses a disallowed ServiceAccount");
    assert_eq!(probe["state"], "pass", "{probe}");
    assert!(
        probe["detail"]
            .as_str()
            .unwrap()
            .contains("as ServiceAccount default in team-e"),
        "{probe}"
    );
    let table = env.run(&["policy", "status"]).await;
    table.assert_ok();
    assert!(
        table
            .stdout
            .contains("MutatingAdmissionPolicy mlplatform-irsa-role-arn"),
        "{}",
        table.stdout
    );

    // A binding weakened by hand: status fails, and says what.
    let mut binding = env
        .object(
            API,
            "ValidatingAdmissionPolicyBinding",
            None,
            "mlplatform-service-accounts-enforce",
        )
        .unwrap();
    binding["spec"]["validationActions"] = json!(["Audit"]);
    env.double.apply_fixture(binding);
    let broken = env.run(&["policy", "status", "-o", "json"]).await;
    assert_eq!(broken.code, 1, "{}", broken.stdout);
    let report = broken.json();
    assert_eq!(
        check(
            &report,
            "ValidatingAdmissionPolicyBinding mlplatform-service-accounts-enforce"
        )["detail"],
        "differs from what `policy install` writes"
    );
    assert_eq!(
        check(&report, "API server refuses a disallowed ServiceAccount")["state"],
        "fail"
    );
    assert!(
        broken
            .stderr
            .starts_with("error: the admission policies do not enforce"),
        "{}",
        broken.stderr
    );

    // Uninstall: exactly ours; someone else's policy stays.
    env.double.apply_fixture(
        json!({"apiVersion": API, "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "theirs"},
        "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                 "operations": ["CREATE"], "resources": ["configmaps"]}]},
                 "validations": [{"expression": "true"}]}}),
    );
    let removed = env.run(&["policy", "uninstall", "-o", "json"]).await;
    removed.assert_ok();
    let changes = removed.json()["changes"].clone();
    assert_eq!(changes.as_array().unwrap().len(), 8, "{changes}");
    assert!(
        changes
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["change"] == "deleted"),
        "{changes}"
    );
    assert_eq!(
        changes[0]["kind"], "MutatingAdmissionPolicyBinding",
        "{changes}"
    );
    for kind in [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    ] {
        let left: Vec<Value> = env.double.list_objects(API, kind);
        let names: Vec<&str> = left
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if kind == "ValidatingAdmissionPolicy" {
            &["theirs"]
        } else {
            &[]
        };
        assert_eq!(names, expected, "{kind}");
    }
    // Nothing refuses it any more.
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut after = pod("default");
    after.metadata.name = Some("after".into());
    pods.create(&dry_run, &after).await.unwrap();
    env.double.clear_requests();
    let again = env.run(&["policy", "uninstall", "-o", "json"]).await;
    again.assert_ok();
    assert!(env.double.mutating_requests().is_empty());
    assert!(
        again.json()["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["change"] == "absent")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_servers_get_the_validating_part_with_a_warning_or_a_clear_refusal() {
    let env = Env::new().await;
    for plural in [
        "mutatingadmissionpolicies",
        "mutatingadmissionpolicybindings",
    ] {
        env.double.withdraw_resource(API, plural);
    }
    let install = env.run(&["policy", "install", "-o", "json"]).await;
    install.assert_ok();
    assert!(
        install
            .stderr
            .contains("warning: this API server does not serve MutatingAdmissionPolicy"),
        "{}",
        install.stderr
    );
    let report = install.json();
    assert_eq!(report["mutatingAdmissionPolicy"], "not served");
    assert_eq!(report["changes"].as_array().unwrap().len(), 6, "{report}");
    assert!(
        env.double
            .list_objects(API, "MutatingAdmissionPolicy")
            .is_empty()
    );

    let status = env.run(&["policy", "status", "-o", "json"]).await;
    status.assert_ok();
    let report = status.json();
    assert_eq!(
        check(&report, "API mutatingadmissionpolicies")["state"],
        "skip"
    );
    assert_eq!(
        check(&report, "API server refuses a disallowed ServiceAccount")["state"],
        "skip",
        "no managed namespace to probe in"
    );

    // No ValidatingAdmissionPolicy either: one line, exit 1, nothing written.
    for plural in [
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ] {
        env.double.withdraw_resource(API, plural);
    }
    env.double.clear_requests();
    let refused = env.run(&["policy", "install"]).await;
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .starts_with("error: this API server does not serve ValidatingAdmissionPolicy"),
        "{}",
        refused.stderr
    );
    assert!(env.double.mutating_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_and_webhook_status_accept_the_admission_policies_and_say_so() {
    let env = Env::new().await;
    env.connect(&["--enforcement", "warn"]).await.assert_ok();
    let ns = env.object("v1", "Namespace", None, NS).unwrap();
    assert_eq!(ns["metadata"]["labels"][ENFORCEMENT_LABEL], "warn");
    assert_eq!(
        ns["metadata"]["annotations"][ENFORCEMENT_ANNOTATION],
        "warn"
    );
    env.run(&["policy", "install"]).await.assert_ok();

    let doctor = env
        .run(&[
            "doctor",
            "--profile",
            "concurrent",
            "--vendor-account",
            VENDOR,
            "--enforcement",
            "warn",
            "-o",
            "json",
        ])
        .await;
    doctor.assert_ok();
    let report = doctor.json();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["status"] == "pass"), "{report}");
    let enforced = check(&report, &format!("namespace policy of {NS} enforced"));
    assert_eq!(
        enforced["detail"],
        "by ValidatingAdmissionPolicy mlplatform-service-accounts (binding mlplatform-service-accounts-warn: Warn, Audit); the webhook is not installed"
    );

    let status = env.run(&["webhook", "status", "-o", "json"]).await;
    status.assert_ok();
    let report = status.json();
    assert_eq!(report["healthy"], true, "{report}");
    assert!(
        check(&report, &format!("namespace policy of {NS} enforced"))["detail"]
            .as_str()
            .unwrap()
            .ends_with("not by the webhook"),
        "{report}"
    );

    // Without either engine doctor warns as before; disconnect takes the label away too.
    env.run(&["policy", "uninstall"]).await.assert_ok();
    let doctor = env
        .run(&[
            "doctor",
            "--profile",
            "concurrent",
            "--vendor-account",
            VENDOR,
            "--enforcement",
            "warn",
            "-o",
            "json",
        ])
        .await;
    doctor.assert_ok();
    let report = doctor.json();
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "warn"),
        "{report}"
    );
    env.run(&["disconnect", "--profile", "concurrent"])
        .await
        .assert_ok();
    assert!(labels(&env, NS).get(ENFORCEMENT_LABEL).is_none());
    // A profile without a namespace bundle has no policy to enforce.
    let odd = env
        .run(&[
            "connect",
            "--profile",
            "sagemaker-operator",
            "--enforcement",
            "audit",
        ])
        .await;
    assert_eq!(odd.code, 2, "{}", odd.stderr);
    assert!(odd.stderr.contains("--enforcement"), "{}", odd.stderr);
}
