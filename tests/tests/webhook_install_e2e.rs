//! `webhook install` end to end, on the testkit's API double (which calls admission webhooks
//! the way kube-apiserver does, verifying the caBundle for `<service>.<namespace>.svc`):
//! install the embedded manifests with generated TLS, serve the installed Secret's
//! certificate from the real webhook binary behind the installed Service, then create a
//! managed namespace, ServiceAccounts and pods through the API and see them mutated and
//! denied. This shows that the manifests' webhook configurations, the generated CA and the
//! binary fit together, with no test-only certificates or configurations.
mod webhook_support;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use kubectl_mlplatform::common::{Change, DryRun};
use kubectl_mlplatform::execute::{Clients, execute};
use kubectl_mlplatform::output::Progress;
use kubectl_mlplatform::webhook_install::{
    self, InstallOptions, NAMESPACE, ObjectRow, SERVICE, TLS_SECRET,
};
use mlplatform_namespace_policy::{
    ENFORCEMENT_ANNOTATION, IRSA_ROLE_ARN_ANNOTATION, MANAGED_LABEL, MANAGED_VALUE,
    USER_SERVICE_ACCOUNT_ANNOTATION, eks,
};
use mlplatform_testkit::KubeDouble;
use serde_json::json;
use webhook_support::process::{free_port, start_webhook};

const TEAM: &str = "team-install";
const USER_SA: &str = "team-user";
const ROLE: &str = "arn:aws:iam::111122223333:role/team-install";

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What `kubectl mlplatform webhook install --wait=false` does: read, plan, execute.
async fn install(client: &kube::Client) -> Vec<ObjectRow> {
    let options = InstallOptions::default();
    let mut observed = webhook_install::observe_secrets(client, &options)
        .await
        .unwrap();
    let manifests = webhook_install::manifests(&options, &observed, now_unix()).unwrap();
    let keys = manifests
        .objects
        .iter()
        .filter_map(|o| webhook_install::key_of(o).ok());
    webhook_install::observe_objects(client, keys, &mut observed)
        .await
        .unwrap();
    let plan = webhook_install::plan_install(&manifests, &observed, None).unwrap();
    let clients = Clients {
        aws: None,
        kube: Some(client),
    };
    execute(&plan, clients, DryRun::None, &Progress::disabled())
        .await
        .unwrap();
    plan.outputs.objects
}

#[tokio::test]
async fn installed_webhook_is_trusted_by_the_api_server_and_enforces() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(bin) =
        webhook_support::workspace_binary("mlplatform-webhook", "MLPLATFORM_WEBHOOK_BIN")
    else {
        assert!(
            std::env::var("MLPLATFORM_E2E_REQUIRED").as_deref() != Ok("1"),
            "mlplatform-webhook is not built (cargo build -p mlplatform-webhook)"
        );
        eprintln!("skipping: mlplatform-webhook is not built (cargo build -p mlplatform-webhook)");
        return;
    };
    let double = KubeDouble::start().await;
    let client = double.client();

    // Install, as `kubectl mlplatform webhook install` does.
    let applied = install(&client).await;
    assert!(
        applied.iter().all(|a| a.result == Change::Created),
        "{applied:?}"
    );

    // The "pod": the real binary with the certificate install stored, behind the Service.
    let secret: Secret = Api::namespaced(client.clone(), NAMESPACE)
        .get(TLS_SECRET)
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &data["tls.crt"].0).unwrap();
    std::fs::write(dir.path().join("tls.key"), &data["tls.key"].0).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    double.write_kubeconfig(&kubeconfig, "kube-double").unwrap();
    let port = free_port().unwrap();
    let health: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
        .parse()
        .unwrap();
    let mut webhook = start_webhook(&bin, &kubeconfig, dir.path(), port, health)
        .await
        .unwrap();
    double.route_service(NAMESPACE, SERVICE, ([127, 0, 0, 1], port).into());

    // A managed namespace with its user SA: the SA gets the role from the webhook.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {
            "name": TEAM,
            "labels": {MANAGED_LABEL: MANAGED_VALUE},
            "annotations": {
                USER_SERVICE_ACCOUNT_ANNOTATION: USER_SA,
                IRSA_ROLE_ARN_ANNOTATION: ROLE,
                ENFORCEMENT_ANNOTATION: "enforce",
            },
        },
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), TEAM);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": USER_SA}})).unwrap();
    let created = sas.create(&PostParams::default(), &sa).await.unwrap();
    assert_eq!(
        created
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(eks::ROLE_ARN))
            .map(String::as_str),
        Some(ROLE),
        "user SA annotated through the installed MutatingWebhookConfiguration"
    );

    // Pods: the user SA's pod gets IRSA; a pod as `default` is denied.
    let pods: Api<Pod> = Api::namespaced(client.clone(), TEAM);
    let pod = |name: &str, sa: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"serviceAccountName": sa,
                     "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
        }))
        .unwrap()
    };
    let mut mutated = None;
    // The webhook's SA cache learns the annotation from its watch; allow it a moment.
    for _ in 0..20 {
        let p = pods
            .create(
                &PostParams {
                    dry_run: true,
                    ..PostParams::default()
                },
                &pod("irsa", USER_SA),
            )
            .await
            .unwrap();
        let has_role = p.spec.as_ref().is_some_and(|s| {
            s.containers[0]
                .env
                .iter()
                .flatten()
                .any(|e| e.name == "AWS_ROLE_ARN" && e.value.as_deref() == Some(ROLE))
        });
        if has_role {
            mutated = Some(p);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let mutated = mutated.expect("pod as the user SA gets AWS_ROLE_ARN");
    let spec = mutated.spec.unwrap();
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name == "aws-iam-token")
    );

    match pods
        .create(&PostParams::default(), &pod("bad", "default"))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains(USER_SA), "{}", status.message);
        }
        other => panic!("pod as default must be denied, got {other:?}"),
    }

    // Re-install: certificates kept, nothing rewritten, the webhook still trusted.
    double.clear_requests();
    let applied = install(&client).await;
    assert!(
        applied.iter().all(|a| a.result == Change::Unchanged),
        "{applied:?}"
    );
    pods.create(&PostParams::default(), &pod("irsa-2", USER_SA))
        .await
        .expect("still admitted after a re-install");
    let _ = webhook.kill().await;
}
