//! `kubectl mlplatform webhook install`: the embedded manifests/ plus generated TLS.
//!
//! A pure [`plan`] turns the options and what is in the cluster (the two TLS Secrets) into
//! the exact objects to apply: the manifests with `--image`/`--replicas`/`--failure-policy`
//! applied, the CA and serving-certificate Secrets, and both webhook configurations with
//! the caBundle filled in. [`apply`] server-side-applies them in order and reports what
//! changed; [`render_yaml`] prints them for `--dry-run=client -o yaml`. Re-running keeps
//! valid certificates (nothing changes) and renews them within 30 days of expiry.
//!
//! Layout: `model` (names, options, plan, outcomes, errors), `dynamic` (any object through the
//! API), `embedded` (the manifests), `tls` (generated certificates), `cert_manager`, `status`
//! (status and uninstall); this file plans and applies. Children never import this file.
mod cert_manager;
mod dynamic;
mod embedded;
mod model;
mod status;
pub(crate) mod tls;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::vocabulary::{
    APP_NAME_LABEL, APP_NAME_WEBHOOK, FIELD_MANAGER, NOT_AFTER_ANNOTATION, PART_OF_LABEL,
    PART_OF_VALUE,
};

use dynamic::{api_for, describe};
pub(crate) use embedded::MANIFEST_FILES;
pub use model::{
    Applied, FailurePolicy, InstallError, InstallOptions, NAMESPACE, Observed, Outcome, SERVICE,
    TLS_SECRET,
};
pub(crate) use model::{CA_SECRET, CONFIGURATION, DEPLOYMENT};
pub(crate) use status::{Reachability, WebhookStatus, status, uninstall};
pub(crate) use tls::TlsDecision;

/// Everything `install` will apply, in order.
#[derive(Debug, Clone)]
pub struct InstallPlan {
    pub(crate) objects: Vec<Value>,
    /// None with `--cert-manager` (cert-manager decides).
    pub(crate) tls: Option<TlsDecision>,
    /// Serving certificate expiry (Unix seconds); None with `--cert-manager`.
    pub(crate) certificate_not_after: Option<i64>,
}

fn valid_image(image: &str) -> bool {
    !image.is_empty()
        && !image.chars().any(char::is_whitespace)
        && !image.starts_with(['-', ':', '@', '/'])
        && !image.ends_with([':', '@', '/'])
}

/// Pure: the objects to apply, given the options, what the cluster holds and the time.
pub fn plan(
    options: &InstallOptions,
    observed: &Observed,
    now_unix: i64,
) -> Result<InstallPlan, InstallError> {
    if let Some(replicas) = options.replicas
        && replicas < 1
    {
        return Err(InstallError::BadReplicas(replicas));
    }
    if let Some(image) = &options.image
        && !valid_image(image)
    {
        return Err(InstallError::BadImage(image.clone()));
    }
    // Generated certificates: the Secrets and the caBundle now. cert-manager: its objects,
    // and the cainjector annotation instead of a caBundle.
    let (tls_objects, ca_bundle, decision, not_after) = if options.cert_manager {
        (cert_manager::objects(), None, None, None)
    } else {
        let existing =
            tls::Existing::read(observed.ca_secret.as_ref(), observed.tls_secret.as_ref());
        let decision = tls::decide(&existing, now_unix);
        let dns_names = tls::service_dns_names(SERVICE, NAMESPACE);
        let material = tls::material(&decision, &existing, &dns_names, now_unix)?;
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&material.ca_bundle_pem);
        let (ca_contents, tls_contents) = tls::secrets_data(&material);
        let secrets = vec![
            secret(CA_SECRET, "Opaque", ca_contents),
            secret(TLS_SECRET, "kubernetes.io/tls", tls_contents),
        ];
        (
            secrets,
            Some(ca_bundle),
            Some(decision),
            Some(material.cert_not_after),
        )
    };

    let mut objects = embedded::objects()?;
    let mut found_deployment = false;
    let mut found_configurations = 0;
    for object in &mut objects {
        match object["kind"].as_str().unwrap_or_default() {
            "Deployment" => {
                found_deployment = true;
                customize_deployment(object, options);
            }
            // minAvailable 1 with a single replica would block every node drain (and so
            // managed node group upgrades) forever; let the one pod be evicted instead.
            "PodDisruptionBudget" if options.replicas == Some(1) => {
                if let Some(spec) = object["spec"].as_object_mut() {
                    spec.remove("minAvailable");
                    spec.insert("maxUnavailable".into(), json!(1));
                }
            }
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
                found_configurations += 1;
                if ca_bundle.is_none() {
                    object["metadata"]["annotations"][cert_manager::INJECT_CA_FROM] =
                        json!(format!("{NAMESPACE}/{TLS_SECRET}"));
                }
                for webhook in object["webhooks"].as_array_mut().into_iter().flatten() {
                    if let Some(bundle) = &ca_bundle {
                        webhook["clientConfig"]["caBundle"] = json!(bundle);
                    }
                    if let Some(policy) = options.failure_policy {
                        webhook["failurePolicy"] = json!(policy.as_str());
                    }
                }
            }
            _ => {}
        }
    }
    if !found_deployment {
        return Err(InstallError::MissingObject("the Deployment"));
    }
    if found_configurations != 2 {
        return Err(InstallError::MissingObject("both webhook configurations"));
    }
    // TLS objects go right after the Namespace, so the pods find their Secret when they start.
    let after_namespace = objects
        .iter()
        .position(|o| o["kind"] == "Namespace")
        .map_or(0, |i| i + 1);
    objects.splice(after_namespace..after_namespace, tls_objects);
    Ok(InstallPlan {
        objects,
        tls: decision,
        certificate_not_after: not_after,
    })
}

fn customize_deployment(deployment: &mut Value, options: &InstallOptions) {
    if let Some(replicas) = options.replicas {
        deployment["spec"]["replicas"] = json!(replicas);
    }
    if let Some(image) = &options.image
        && let Some(containers) = deployment
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
    {
        for container in containers.iter_mut().filter(|c| c["name"] == "webhook") {
            container["image"] = json!(image);
        }
    }
}

fn secret(name: &str, type_: &str, contents: tls::SecretContents) -> Value {
    let not_after = contents.not_after;
    let data: BTreeMap<String, String> = contents
        .data
        .into_iter()
        .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v.0)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                APP_NAME_LABEL: APP_NAME_WEBHOOK,
                PART_OF_LABEL: PART_OF_VALUE,
            },
            "annotations": { NOT_AFTER_ANNOTATION: not_after.to_string() },
        },
        "type": type_,
        "data": data,
    })
}

/// Multi-document YAML of every object (`--dry-run=client -o yaml`).
pub(crate) fn render_yaml(plan: &InstallPlan) -> Result<String, InstallError> {
    let mut out = String::new();
    for object in &plan.objects {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml_ng::to_string(object).map_err(|e| InstallError::Render(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Reads the two TLS Secrets (absent is fine).
pub async fn observe(client: &kube::Client) -> Result<Observed, InstallError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let read = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(name)
                .await
                .map_err(|source| InstallError::ReadSecret { name, source })
        }
    };
    let (ca_secret, tls_secret) = futures::try_join!(read(CA_SECRET), read(TLS_SECRET))?;
    Ok(Observed {
        ca_secret,
        tls_secret,
    })
}

/// Server-side-applies the plan in order. The webhook configurations come last; with
/// `wait_ready`, only after the Deployment has ready replicas, so a fail-closed webhook is
/// never registered before something can answer it. `dry_run_server` sends dryRun=All.
pub async fn apply(
    client: &kube::Client,
    plan: &InstallPlan,
    dry_run_server: bool,
    wait_ready: Option<Duration>,
) -> Result<Vec<Applied>, InstallError> {
    if plan
        .objects
        .iter()
        .any(|o| o["apiVersion"] == cert_manager::API_VERSION)
        && !cert_manager::served(client).await
    {
        return Err(InstallError::CertManagerMissing);
    }
    let total = plan.objects.len();
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run_server;
    let mut applied = Vec::with_capacity(total);
    let mut dry_run_namespaces: Vec<String> = Vec::new();
    for (done, object) in plan.objects.iter().enumerate() {
        let described = describe(object);
        let fail = |source| InstallError::Apply {
            object: described.clone(),
            source,
            done,
            total,
        };
        let is_configuration = object["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("WebhookConfiguration"));
        if is_configuration
            && let Some(timeout) = wait_ready
            && !dry_run_server
        {
            wait_for_deployment(client, timeout).await?;
        }
        // A dry-run namespace is not stored, so the API server would answer 404 for
        // everything inside it: those objects would be created, without asking.
        if let Some(ns) = object["metadata"]["namespace"].as_str()
            && dry_run_namespaces.iter().any(|n| n == ns)
        {
            applied.push(Applied {
                object: described,
                outcome: Outcome::Created,
            });
            continue;
        }
        let Some(api) = api_for(client, object) else {
            return Err(InstallError::MissingObject("apiVersion/kind on an object"));
        };
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let before = api.get_opt(name).await.map_err(fail)?;
        if dry_run_server && before.is_none() && object["kind"] == "Namespace" {
            dry_run_namespaces.push(name.to_owned());
        }
        // Already as wanted (the server only added defaults and metadata): no write at all.
        if let Some(existing) = &before
            && serde_json::to_value(existing).is_ok_and(|e| contains(&e, object))
        {
            applied.push(Applied {
                object: described,
                outcome: Outcome::Unchanged,
            });
            continue;
        }
        let after = api
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(fail)?;
        let outcome = match before {
            None => Outcome::Created,
            Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                Outcome::Unchanged
            }
            Some(_) => Outcome::Updated,
        };
        applied.push(Applied {
            object: described,
            outcome,
        });
    }
    Ok(applied)
}

/// Whether `existing` already has every field of `desired` with the same value. Objects may
/// have extra fields (server defaults, status, metadata); arrays must match element-wise.
pub(crate) fn contains(existing: &Value, desired: &Value) -> bool {
    match (existing, desired) {
        (Value::Object(e), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| e.get(k).is_some_and(|ev| contains(ev, dv))),
        (Value::Array(e), Value::Array(d)) => {
            e.len() == d.len() && e.iter().zip(d).all(|(ev, dv)| contains(ev, dv))
        }
        // YAML numbers may come back as other JSON number types (2 vs 2.0).
        (Value::Number(e), Value::Number(d)) => e.as_f64() == d.as_f64(),
        (e, d) => e == d,
    }
}

async fn wait_for_deployment(client: &kube::Client, timeout: Duration) -> Result<(), InstallError> {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), NAMESPACE);
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(d)) = deployments.get_opt(DEPLOYMENT).await
            && d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .is_some_and(|r| r >= 1)
        {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(InstallError::NotReady(timeout));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests;
