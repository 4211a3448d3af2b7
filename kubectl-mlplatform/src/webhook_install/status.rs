//! `webhook uninstall` and `webhook status`.
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use mlplatform_namespace_policy::NamespacePolicy;
use serde_json::json;

use super::model::{CONFIGURATION, DEPLOYMENT, InstallError, NAMESPACE, TLS_SECRET};
use crate::vocabulary::{MANAGED_LABEL, MANAGED_VALUE, NOT_AFTER_ANNOTATION};

/// Whether the API server reaches the webhook, judged by a server-side dry-run pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reachability {
    /// The dry-run pod in this namespace went through the webhooks.
    Reached { namespace: String },
    /// The API server could not call the webhook (the error says why).
    Unreachable { namespace: String, error: String },
    /// The API server refused the probe for another reason (shown), before or after the
    /// webhooks; reachability unknown.
    Inconclusive { namespace: String, error: String },
    /// No managed namespace to try in.
    NoManagedNamespace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookStatus {
    /// (ready, desired) replicas; None when the Deployment does not exist.
    pub(crate) replicas: Option<(i32, i32)>,
    /// Serving certificate expiry (Unix seconds), from the TLS Secret.
    pub(crate) certificate_not_after: Option<i64>,
    pub(crate) mutating_configured: bool,
    pub(crate) validating_configured: bool,
    pub(crate) reachability: Reachability,
}

impl WebhookStatus {
    /// Healthy: ready replicas, both configurations, a certificate valid for more than the
    /// renewal window, and the API server reaching the webhook (when it can be tried).
    #[cfg(test)]
    pub(crate) fn healthy(&self, now_unix: i64) -> bool {
        self.replicas.is_some_and(|(ready, _)| ready >= 1)
            && self.mutating_configured
            && self.validating_configured
            && self
                .certificate_not_after
                .is_some_and(|t| t - now_unix >= super::tls::RENEW_BEFORE)
            && !matches!(self.reachability, Reachability::Unreachable { .. })
    }
}

fn read_error(what: &str) -> impl FnOnce(kube::Error) -> InstallError + '_ {
    move |source: kube::Error| InstallError::Read {
        what: what.to_owned(),
        message: source.to_string(),
    }
}

/// Reads the webhook's state and probes it through the API server.
pub(crate) async fn status(client: &kube::Client) -> Result<WebhookStatus, InstallError> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .get_opt(DEPLOYMENT)
        .await
        .map_err(read_error("the webhook Deployment"))?;
    let replicas = deployment.map(|d| {
        let desired = d.spec.and_then(|s| s.replicas).unwrap_or(1);
        let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        (ready, desired)
    });
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get_opt(TLS_SECRET)
        .await
        .map_err(read_error("the webhook TLS Secret"))?;
    let certificate_not_after = secret
        .as_ref()
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(NOT_AFTER_ANNOTATION))
        .and_then(|v| v.parse().ok());
    let mutating_configured = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get_opt(CONFIGURATION)
        .await
        .map_err(read_error("the MutatingWebhookConfiguration"))?
        .is_some();
    let validating_configured = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get_opt(CONFIGURATION)
        .await
        .map_err(read_error("the ValidatingWebhookConfiguration"))?
        .is_some();
    let reachability = probe(client).await?;
    Ok(WebhookStatus {
        replicas,
        certificate_not_after,
        mutating_configured,
        validating_configured,
        reachability,
    })
}

/// A server-side dry-run pod as the user ServiceAccount of the first managed namespace:
/// the API server calls the webhooks for it (sideEffects None), stores nothing.
async fn probe(client: &kube::Client) -> Result<Reachability, InstallError> {
    let selector = format!("{MANAGED_LABEL}={MANAGED_VALUE}");
    let managed = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels(&selector).limit(20))
        .await
        .map_err(read_error("managed namespaces"))?;
    let Some((namespace, policy)) = managed.items.iter().find_map(|ns| {
        let policy = NamespacePolicy::from_metadata(
            ns.metadata.labels.as_ref(),
            ns.metadata.annotations.as_ref(),
        )
        .ok()??;
        Some((ns.metadata.name.clone()?, policy))
    }) else {
        return Ok(Reachability::NoManagedNamespace);
    };
    let pod: Pod = match serde_json::from_value(json!({
        "metadata": {"generateName": "mlplatform-webhook-probe-"},
        "spec": {
            "serviceAccountName": policy.user_service_account,
            "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}],
        },
    })) {
        Ok(pod) => pod,
        Err(e) => return Err(InstallError::Render(e.to_string())),
    };
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let result = tokio::time::timeout(Duration::from_secs(15), pods.create(&params, &pod)).await;
    Ok(match result {
        Ok(Ok(_)) => Reachability::Reached { namespace },
        Ok(Err(kube::Error::Api(s))) if s.message.contains("failed calling webhook") => {
            Reachability::Unreachable {
                namespace,
                error: s.message,
            }
        }
        Ok(Err(kube::Error::Api(s))) => Reachability::Inconclusive {
            namespace,
            error: s.message,
        },
        Ok(Err(e)) => return Err(read_error("a dry-run probe pod")(e)),
        Err(_) => Reachability::Unreachable {
            namespace,
            error: "the dry-run probe pod took longer than 15s".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{Change, DryRun};
    use crate::execute::{Clients, execute};
    use crate::output::Progress;
    use crate::steps::Plan;
    use crate::webhook_install::model::{CA_SECRET, ObjectRow};
    use crate::webhook_install::{
        InstallOptions, key_of, manifests, observe_objects, observe_secrets, plan_install,
        plan_uninstall, tls, uninstall_targets,
    };
    use mlplatform_namespace_policy::USER_SERVICE_ACCOUNT_ANNOTATION;
    use mlplatform_testkit::KubeDouble;

    const NOW: i64 = 1_800_000_000;

    async fn run<O>(client: &kube::Client, plan: &Plan<O>) {
        let clients = Clients {
            aws: None,
            kube: Some(client),
        };
        execute(plan, clients, DryRun::None, &Progress::disabled())
            .await
            .unwrap();
    }

    async fn installed(double: &KubeDouble) {
        let client = double.client();
        let options = InstallOptions::default();
        let mut observed = observe_secrets(&client, &options).await.unwrap();
        let manifests = manifests(&options, &observed, NOW).unwrap();
        let keys = manifests.objects.iter().filter_map(|o| key_of(o).ok());
        observe_objects(&client, keys, &mut observed).await.unwrap();
        run(&client, &plan_install(&manifests, &observed, None).unwrap()).await;
    }

    async fn uninstall(client: &kube::Client) -> Vec<ObjectRow> {
        let mut observed = crate::webhook_install::Observed::default();
        observe_objects(client, uninstall_targets().unwrap(), &mut observed)
            .await
            .unwrap();
        let plan = plan_uninstall(Some(&observed.live)).unwrap();
        run(client, &plan).await;
        plan.outputs.objects
    }

    #[tokio::test]
    async fn status_reports_configuration_certificate_and_an_unreachable_webhook() {
        let double = KubeDouble::start().await;
        let client = double.client();
        let before = status(&client).await.unwrap();
        assert_eq!(before.replicas, None);
        assert!(!before.mutating_configured && !before.validating_configured);
        assert_eq!(before.reachability, Reachability::NoManagedNamespace);
        assert!(!before.healthy(NOW));

        installed(&double).await;
        double.apply_fixture(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team", "labels": {MANAGED_LABEL: MANAGED_VALUE},
                         "annotations": {USER_SERVICE_ACCOUNT_ANNOTATION: "default"}},
        }));
        // The Service leads nowhere: the API server's call fails, and status says so.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        double.route_service(NAMESPACE, "mlplatform-webhook", addr);
        let after = status(&client).await.unwrap();
        assert!(after.mutating_configured && after.validating_configured);
        assert_eq!(after.replicas.map(|(_, desired)| desired), Some(2));
        assert_eq!(
            after.certificate_not_after,
            Some(NOW + tls::SERVING_VALIDITY)
        );
        match &after.reachability {
            Reachability::Unreachable { namespace, error } => {
                assert_eq!(namespace, "team");
                assert!(error.contains("failed calling webhook"), "{error}");
            }
            other => panic!("expected unreachable, got {other:?}"),
        }
        assert!(!after.healthy(NOW));
    }

    #[tokio::test]
    async fn uninstall_removes_configurations_first_and_everything_else() {
        let double = KubeDouble::start().await;
        let client = double.client();
        installed(&double).await;
        double.clear_requests();
        let removed = uninstall(&client).await;
        assert!(
            removed[0].object.contains("WebhookConfiguration")
                && removed[1].object.contains("WebhookConfiguration"),
            "{removed:?}"
        );
        assert_eq!(
            removed.last().unwrap().object,
            "Namespace mlplatform-system"
        );
        assert!(
            removed.iter().all(|r| r.result == Change::Deleted),
            "{removed:?}"
        );
        for (api, kind, ns, name) in [
            (
                "admissionregistration.k8s.io/v1",
                "MutatingWebhookConfiguration",
                None,
                "mlplatform-webhook",
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                None,
                "mlplatform-webhook",
            ),
            ("v1", "Secret", Some(NAMESPACE), CA_SECRET),
        ] {
            assert!(
                double.object(api, kind, ns, name).is_none(),
                "{kind} {name} left"
            );
        }
        // Again: nothing left to delete, and that is not an error.
        let again = uninstall(&client).await;
        assert!(
            again.iter().all(|r| r.result == Change::Absent),
            "{again:?}"
        );
    }
}
