//! `connect --with-webhook`: the connection and the webhook that enforces it, in one command,
//! through the real binary (kube double + moto_server).

use std::time::Duration;

use crate::support::{Env, NS};
use serde_json::json;

const WEBHOOK_NS: &str = "mlplatform-system";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_webhook_installs_it_after_the_connection() {
    let env = Env::new().await;
    // Stand in for the Deployment controller: once the webhook Deployment exists, mark it
    // ready, so install registers the webhook configurations.
    let double = env.double.clone();
    let controller = tokio::spawn(async move {
        loop {
            if let Some(mut d) = double.object(
                "apps/v1",
                "Deployment",
                Some(WEBHOOK_NS),
                "mlplatform-webhook",
            ) {
                let replicas = d["spec"]["replicas"].clone();
                d["status"] = json!({"replicas": replicas, "readyReplicas": replicas});
                double.apply_fixture(d);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let run = env.connect(&["--with-webhook", "-o", "json"]).await;
    run.assert_ok();
    controller.abort();
    // stdout stays one JSON document (the connect report); the webhook summary is on stderr.
    assert_eq!(run.json()["namespace"], NS);
    assert!(run.stderr.contains("webhook: "), "{}", run.stderr);
    assert!(env.object("v1", "Namespace", None, NS).is_some());
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = env
            .object(
                "admissionregistration.k8s.io/v1",
                kind,
                None,
                "mlplatform-webhook",
            )
            .unwrap_or_else(|| panic!("{kind} not installed"));
        assert!(config["webhooks"][0]["clientConfig"]["caBundle"].is_string());
    }

    // Again: nothing new, the certificates are kept.
    let again = env.connect(&["--with-webhook", "-o", "json"]).await;
    again.assert_ok();
    assert!(
        again.stderr.contains("0 created, 0 updated"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("certificates kept"),
        "{}",
        again.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_the_flag_leaves_the_webhook_alone() {
    let env = Env::new().await;
    env.connect(&["-o", "json"]).await.assert_ok();
    assert!(env.object("v1", "Namespace", None, WEBHOOK_NS).is_none());
}
