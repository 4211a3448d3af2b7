use base64::Engine as _;
use mlplatform_testkit::KubeDouble;

use super::*;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn kinds(plan: &Manifests) -> Vec<String> {
    plan.objects.iter().map(describe).collect()
}

fn find<'a>(plan: &'a Manifests, kind: &str, name: &str) -> &'a Value {
    plan.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("plan has no {kind} {name}"))
}

fn secret_field(plan: &Manifests, name: &str, key: &str) -> String {
    let b64 = find(plan, "Secret", name)["data"][key].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn typed_secret(plan: &Manifests, name: &str) -> Secret {
    serde_json::from_value(find(plan, "Secret", name).clone()).unwrap()
}

fn observed_from(plan: &Manifests) -> Observed {
    Observed {
        ca_secret: Some(typed_secret(plan, CA_SECRET)),
        tls_secret: Some(typed_secret(plan, TLS_SECRET)),
        ..Observed::default()
    }
}

fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("object");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[test]
fn fresh_plan_adds_secrets_after_the_namespace_and_fills_both_ca_bundles() {
    let plan = manifests(&InstallOptions::default(), &Observed::default(), NOW).unwrap();
    assert!(matches!(plan.tls, Some(TlsDecision::NewCa { .. })));
    assert_eq!(
        kinds(&plan),
        [
            "Namespace mlplatform-system",
            "Secret mlplatform-system/mlplatform-webhook-ca",
            "Secret mlplatform-system/mlplatform-webhook-tls",
            "ServiceAccount mlplatform-system/mlplatform-webhook",
            "ClusterRole mlplatform-webhook",
            "ClusterRoleBinding mlplatform-webhook",
            "Deployment mlplatform-system/mlplatform-webhook",
            "PodDisruptionBudget mlplatform-system/mlplatform-webhook",
            "Service mlplatform-system/mlplatform-webhook",
            "MutatingWebhookConfiguration mlplatform-webhook",
            "ValidatingWebhookConfiguration mlplatform-webhook",
        ]
    );
    let ca = secret_field(&plan, CA_SECRET, "ca.crt");
    assert_eq!(secret_field(&plan, TLS_SECRET, "ca.crt"), ca);
    assert!(secret_field(&plan, CA_SECRET, "ca.key").contains("PRIVATE KEY"));
    assert!(
        find(&plan, "Secret", TLS_SECRET)["data"]
            .get("ca.key")
            .is_none(),
        "the CA key is never mounted into the webhook pods"
    );
    assert_eq!(
        find(&plan, "Secret", TLS_SECRET)["type"],
        "kubernetes.io/tls"
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        for webhook in find(&plan, kind, "mlplatform-webhook")["webhooks"]
            .as_array()
            .unwrap()
        {
            let bundle = webhook["clientConfig"]["caBundle"].as_str().unwrap();
            let pem = base64::engine::general_purpose::STANDARD
                .decode(bundle)
                .unwrap();
            assert_eq!(String::from_utf8(pem).unwrap(), ca, "{kind}");
        }
    }
    assert_eq!(
        plan.certificate_not_after,
        Some(NOW + tls::SERVING_VALIDITY)
    );
}

#[test]
fn options_change_image_replicas_and_failure_policy_only() {
    let defaults = manifests(&InstallOptions::default(), &Observed::default(), NOW).unwrap();
    let options = InstallOptions {
        image: Some("registry.example.com/mlp/webhook:v9".into()),
        replicas: Some(3),
        failure_policy: Some(FailurePolicy::Ignore),
        cert_manager: false,
    };
    let custom = manifests(&options, &observed_from(&defaults), NOW).unwrap();
    let deployment = find(&custom, "Deployment", DEPLOYMENT);
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/mlp/webhook:v9"
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        for webhook in find(&custom, kind, "mlplatform-webhook")["webhooks"]
            .as_array()
            .unwrap()
        {
            assert_eq!(webhook["failurePolicy"], "Ignore");
        }
    }
    // Everything else is as the manifests say.
    let mut expected = find(&defaults, "Deployment", DEPLOYMENT).clone();
    expected["spec"]["replicas"] = json!(3);
    expected["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("registry.example.com/mlp/webhook:v9");
    assert_eq!(deployment, &expected);
}

#[test]
fn bad_options_are_refused_with_a_clear_error() {
    let bad_replicas = InstallOptions {
        replicas: Some(0),
        ..InstallOptions::default()
    };
    let err = manifests(&bad_replicas, &Observed::default(), NOW).unwrap_err();
    assert!(err.to_string().contains("--replicas"), "{err}");
    for image in ["", "has space:v1", "repo:", "-x"] {
        let bad_image = InstallOptions {
            image: Some(image.into()),
            ..InstallOptions::default()
        };
        let err = manifests(&bad_image, &Observed::default(), NOW).unwrap_err();
        assert!(err.to_string().contains("--image"), "{image:?}: {err}");
    }
}

#[test]
fn replanning_with_valid_certificates_changes_nothing() {
    let first = manifests(&InstallOptions::default(), &Observed::default(), NOW).unwrap();
    let again = manifests(
        &InstallOptions::default(),
        &observed_from(&first),
        NOW + 200 * DAY,
    )
    .unwrap();
    assert_eq!(again.tls, Some(TlsDecision::Keep));
    assert_eq!(again.objects, first.objects);
}

#[test]
fn rendered_yaml_is_every_object() {
    let plan = manifests(&InstallOptions::default(), &Observed::default(), NOW).unwrap();
    let yaml = crate::output::render_documents(&plan.objects).unwrap();
    let parsed: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(parsed, plan.objects);
}

#[test]
fn contains_ignores_server_additions_but_not_differences() {
    let desired = json!({"spec": {"replicas": 2, "containers": [{"name": "a"}]}});
    let existing = json!({"spec": {"replicas": 2, "containers": [{"name": "a", "tty": false}]},
                          "status": {}});
    assert!(contains(&existing, &desired));
    assert!(!contains(
        &json!({"spec": {"replicas": 3, "containers": [{"name": "a"}]}}),
        &desired
    ));
    assert!(!contains(
        &json!({"spec": {"replicas": 2, "containers": [{"name": "a"}, {"name": "b"}]}}),
        &desired
    ));
}

/// What `webhook install` does with these manifests: read the live objects, plan, execute.
async fn apply(
    client: &kube::Client,
    manifests: &Manifests,
    dry_run_server: bool,
) -> Result<Vec<ObjectRow>, String> {
    let options = InstallOptions {
        cert_manager: manifests.tls.is_none(),
        ..InstallOptions::default()
    };
    let mut observed = observe_secrets(client, &options).await.unwrap();
    let keys = manifests.objects.iter().filter_map(|o| key_of(o).ok());
    observe_objects(client, keys, &mut observed).await.unwrap();
    let plan = plan_install(manifests, &observed, None).map_err(|e| e.to_string())?;
    let clients = crate::execute::Clients {
        aws: None,
        kube: Some(client),
    };
    let dry_run = if dry_run_server {
        crate::common::DryRun::Server
    } else {
        crate::common::DryRun::None
    };
    let progress = crate::output::Progress::disabled();
    crate::execute::execute(&plan, clients, dry_run, &progress)
        .await
        .map_err(|e| e.to_string())?;
    Ok(plan.outputs.objects)
}

fn outcomes(applied: &[ObjectRow]) -> Vec<Change> {
    applied.iter().map(|a| a.result).collect()
}

#[tokio::test]
async fn install_against_the_api_then_rerun_writes_nothing_then_renews() {
    let double = KubeDouble::start().await;
    let client = double.client();

    // Dry run on the server: nothing stored.
    let observed = observe_secrets(&client, &InstallOptions::default())
        .await
        .unwrap();
    let first = manifests(&InstallOptions::default(), &observed, NOW).unwrap();
    apply(&client, &first, true).await.unwrap();
    assert!(double.object("v1", "Namespace", None, NAMESPACE).is_none());

    let applied = apply(&client, &first, false).await.unwrap();
    assert!(
        outcomes(&applied).iter().all(|o| *o == Change::Created),
        "{applied:?}"
    );
    let stored = double
        .object(
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            None,
            "mlplatform-webhook",
        )
        .unwrap();
    assert!(
        stored["webhooks"][0]["clientConfig"]["caBundle"]
            .as_str()
            .is_some()
    );

    // Second run: certificates kept, not a single write.
    double.clear_requests();
    let observed = observe_secrets(&client, &InstallOptions::default())
        .await
        .unwrap();
    let second = manifests(&InstallOptions::default(), &observed, NOW + DAY).unwrap();
    assert_eq!(second.tls, Some(TlsDecision::Keep));
    let applied = apply(&client, &second, false).await.unwrap();
    assert!(
        outcomes(&applied).iter().all(|o| *o == Change::Unchanged),
        "{applied:?}"
    );
    assert!(
        double.mutating_requests().is_empty(),
        "{:?}",
        double.mutating_requests()
    );

    // Near expiry: only the serving Secret changes; the caBundle stays.
    let near_expiry = first.certificate_not_after.unwrap() - 10 * DAY;
    let observed = observe_secrets(&client, &InstallOptions::default())
        .await
        .unwrap();
    let third = manifests(&InstallOptions::default(), &observed, near_expiry).unwrap();
    assert!(
        matches!(third.tls, Some(TlsDecision::RenewServing { .. })),
        "{:?}",
        third.tls
    );
    let applied = apply(&client, &third, false).await.unwrap();
    let changed: Vec<&str> = applied
        .iter()
        .filter(|a| a.result != Change::Unchanged)
        .map(|a| a.object.as_str())
        .collect();
    assert_eq!(changed, ["Secret mlplatform-system/mlplatform-webhook-tls"]);
}

#[tokio::test]
async fn apply_stops_with_a_rerun_hint_when_the_api_refuses() {
    let double = KubeDouble::start().await;
    let client = double.client();
    let plan = manifests(&InstallOptions::default(), &Observed::default(), NOW).unwrap();
    double.inject_failure(
        "PATCH",
        "/apis/apps/v1/namespaces/mlplatform-system/deployments/*",
        403,
        1,
    );
    let err = apply(&client, &plan, false).await.unwrap_err();
    let message = err;
    assert!(
        message.contains("Deployment mlplatform-system/mlplatform-webhook"),
        "{message}"
    );
    assert!(message.contains("re-run it to finish"), "{message}");
    // What came before is in place; a re-run finishes the rest.
    assert!(double.object("v1", "Namespace", None, NAMESPACE).is_some());
    let applied = apply(&client, &plan, false).await.unwrap();
    assert!(applied.iter().any(|a| a.result == Change::Created));
}

fn cert_manager_options() -> InstallOptions {
    InstallOptions {
        cert_manager: true,
        ..InstallOptions::default()
    }
}

#[test]
fn cert_manager_plan_has_issuers_and_certificates_and_the_cainjector_annotation() {
    let plan = manifests(&cert_manager_options(), &Observed::default(), NOW).unwrap();
    assert_eq!(plan.tls, None);
    assert_eq!(
        &kinds(&plan)[..5],
        [
            "Namespace mlplatform-system",
            "Issuer mlplatform-system/mlplatform-webhook-selfsigned",
            "Certificate mlplatform-system/mlplatform-webhook-ca",
            "Issuer mlplatform-system/mlplatform-webhook-ca",
            "Certificate mlplatform-system/mlplatform-webhook-tls",
        ]
    );
    assert!(!plan.objects.iter().any(|o| o["kind"] == "Secret"));
    let serving = find(&plan, "Certificate", TLS_SECRET);
    assert_eq!(
        serving["spec"]["secretName"], TLS_SECRET,
        "the Secret the pods mount"
    );
    assert!(
        serving["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .contains(&json!("mlplatform-webhook.mlplatform-system.svc"))
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = find(&plan, kind, "mlplatform-webhook");
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "mlplatform-system/mlplatform-webhook-tls"
        );
        for webhook in config["webhooks"].as_array().unwrap() {
            assert!(webhook["clientConfig"].get("caBundle").is_none(), "{kind}");
        }
    }
}

#[tokio::test]
async fn cert_manager_install_needs_cert_manager_and_writes_nothing_without_it() {
    let double = KubeDouble::start().await;
    let client = double.client();
    let plan = manifests(&cert_manager_options(), &Observed::default(), NOW).unwrap();
    // The double serves cert-manager's API; a cluster without it answers discovery with 404.
    double.inject_failure("GET", "/apis/cert-manager.io/v1", 404, 1);
    let err = apply(&client, &plan, false).await.unwrap_err();
    assert_eq!(err, InstallError::CertManagerMissing.to_string());
    assert!(err.contains("install cert-manager"), "{err}");
    assert!(double.mutating_requests().is_empty());

    let applied = apply(&client, &plan, false).await.unwrap();
    assert!(
        applied.iter().all(|a| a.result == Change::Created),
        "{applied:?}"
    );
    assert!(
        double
            .object(
                "cert-manager.io/v1",
                "Certificate",
                Some(NAMESPACE),
                TLS_SECRET
            )
            .is_some()
    );
}

#[test]
fn a_single_replica_does_not_block_node_drains() {
    let pdb_spec = |replicas| {
        let options = InstallOptions {
            replicas,
            ..InstallOptions::default()
        };
        let plan = manifests(&options, &Observed::default(), NOW).unwrap();
        find(&plan, "PodDisruptionBudget", "mlplatform-webhook")["spec"].clone()
    };
    assert_eq!(pdb_spec(None)["minAvailable"], 1);
    assert_eq!(pdb_spec(Some(3))["minAvailable"], 1);
    let single = pdb_spec(Some(1));
    assert!(single.get("minAvailable").is_none(), "{single}");
    assert_eq!(single["maxUnavailable"], 1);
}
