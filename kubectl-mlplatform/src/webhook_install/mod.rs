//! `kubectl mlplatform webhook install`: the embedded manifests/ plus generated TLS.
//!
//! Pure [`manifests`] turn the options and the two TLS Secrets into the exact objects wanted:
//! the manifests with `--image`/`--replicas`/`--failure-policy` applied, the CA and
//! serving-certificate Secrets, and both webhook configurations with the caBundle filled in.
//! Pure [`plan_install`] / [`plan_uninstall`] compare them with the live objects and give the
//! one plan every command uses (server-side apply of what differs; deletions), which the one
//! executor carries out. Re-running keeps valid certificates (nothing changes) and renews them
//! within 30 days of expiry.
//!
//! Layout: `model` (names, options, outputs, errors), `embedded` (the manifests), `tls`
//! (generated certificates), `cert_manager`, `status`; this file reads and plans. Children
//! never import this file.
mod cert_manager;
mod embedded;
mod model;
mod status;
pub(crate) mod tls;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};

use crate::common::Change;
use crate::kube_io::get_objects;
use crate::objects::{Kind, ObjectKey};
use crate::steps::{KubeAction, KubeStep, Plan, Step, WaitStep};

use crate::vocabulary::{
    APP_NAME_LABEL, APP_NAME_WEBHOOK, NOT_AFTER_ANNOTATION, PART_OF_LABEL, PART_OF_VALUE,
};

pub(crate) use model::rfc3339;
pub(crate) use model::{CA_SECRET, CONFIGURATION, DEPLOYMENT};
pub use model::{
    CertificateReport, FailurePolicy, InstallError, InstallOptions, InstallOutputs, NAMESPACE,
    ObjectRow, Observed, SERVICE, TLS_SECRET,
};
pub(crate) use status::{Reachability, WebhookStatus, status};
pub(crate) use tls::TlsDecision;

/// Every object `install` wants, in order, with the certificate decision behind them.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub objects: Vec<Value>,
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

/// Pure: the objects to apply, given the options, the TLS Secrets the cluster holds and the
/// time.
pub fn manifests(
    options: &InstallOptions,
    observed: &Observed,
    now_unix: i64,
) -> Result<Manifests, InstallError> {
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
    Ok(Manifests {
        objects,
        tls: decision,
        certificate_not_after: not_after,
    })
}

/// `install`'s plan: one step per object (server-side applied when the live object differs),
/// and a wait for the Deployment before the webhook configurations, so a fail-closed webhook
/// is never registered before something can answer it.
pub type InstallPlan = Plan<InstallOutputs>;

pub fn key_of(object: &Value) -> Result<ObjectKey, InstallError> {
    ObjectKey::of(object).ok_or(InstallError::MissingObject(
        "a known apiVersion/kind and metadata.name",
    ))
}

/// Pure: the steps that make the cluster hold `manifests`, given the live objects.
pub fn plan_install(
    manifests: &Manifests,
    observed: &Observed,
    wait_ready: Option<Duration>,
) -> Result<InstallPlan, InstallError> {
    let uses_cert_manager = manifests
        .objects
        .iter()
        .any(|o| o["apiVersion"] == cert_manager::API_VERSION);
    if uses_cert_manager && !observed.cert_manager_served {
        return Err(InstallError::CertManagerMissing);
    }
    let mut steps = Vec::with_capacity(manifests.objects.len() + 1);
    for object in &manifests.objects {
        let key = key_of(object)?;
        if let Some(timeout) = wait_ready
            && key.kind == Kind::MutatingWebhookConfiguration
        {
            steps.push(Step::Wait(WaitStep {
                namespace: NAMESPACE.to_owned(),
                deployment: DEPLOYMENT.to_owned(),
                timeout,
            }));
        }
        // Already as wanted (the server only added defaults and metadata): no write at all.
        let matches = observed.live.get(&key).map(|live| contains(live, object));
        steps.push(Step::Kube(KubeStep::apply(key, object, matches)));
    }
    let outputs = InstallOutputs::new(certificate_report(manifests), &steps, false);
    Ok(Plan::in_order(outputs, steps))
}

/// What `uninstall` deletes: the embedded manifests' objects and the two TLS Secrets, the
/// webhook configurations first (so the API server stops calling a webhook that is going
/// away), the namespace last.
pub fn uninstall_targets() -> Result<Vec<ObjectKey>, InstallError> {
    let mut keys = embedded::objects()?
        .iter()
        .map(key_of)
        .collect::<Result<Vec<_>, _>>()?;
    for name in [CA_SECRET, TLS_SECRET] {
        keys.push(ObjectKey {
            kind: Kind::Secret,
            namespace: Some(NAMESPACE.to_owned()),
            name: name.to_owned(),
        });
    }
    let rank = |k: &ObjectKey| match k.kind {
        Kind::ValidatingWebhookConfiguration | Kind::MutatingWebhookConfiguration => 0,
        Kind::Namespace => 2,
        _ => 1,
    };
    keys.sort_by_key(rank);
    Ok(keys)
}

/// Pure: `uninstall`'s plan. `live` None (a client dry run reads nothing): everything is
/// planned as deleted. A namespace already Terminating has nothing left to do (a real server
/// answers 409 to deleting it again).
pub fn plan_uninstall(
    live: Option<&BTreeMap<ObjectKey, Value>>,
) -> Result<InstallPlan, InstallError> {
    let steps: Vec<Step> = uninstall_targets()?
        .into_iter()
        .map(|key| {
            let found = live.map(|l| l.get(&key));
            let gone = match found {
                None => false,
                Some(None) => true,
                Some(Some(object)) => crate::objects::is_terminating(object),
            };
            let (change, action) = if gone {
                (Change::Absent, KubeAction::None)
            } else {
                (Change::Deleted, KubeAction::Delete)
            };
            Step::Kube(KubeStep {
                desired: found.flatten().cloned().unwrap_or(Value::Null),
                key,
                change,
                action,
            })
        })
        .collect();
    let certificates = CertificateReport {
        action: "deleted",
        reason: None,
        not_after: None,
    };
    let outputs = InstallOutputs::new(certificates, &steps, true);
    Ok(Plan::in_order(outputs, steps))
}

/// Pure: what the certificates part of the manifests says.
pub(crate) fn certificate_report(manifests: &Manifests) -> CertificateReport {
    let (action, reason) = match &manifests.tls {
        None => ("cert-manager", None),
        Some(TlsDecision::Keep) => ("kept", None),
        Some(TlsDecision::RenewServing { reason }) => ("renewed", Some(reason.clone())),
        Some(TlsDecision::NewCa { reason }) => ("generated", Some(reason.clone())),
    };
    CertificateReport {
        action,
        reason,
        not_after: manifests.certificate_not_after.map(rfc3339),
    }
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

/// Reads the two TLS Secrets (absent is fine) and whether cert-manager is served.
pub async fn observe_secrets(
    client: &kube::Client,
    options: &InstallOptions,
) -> Result<Observed, InstallError> {
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
    let served = async { options.cert_manager && cert_manager::served(client).await };
    let (secrets, cert_manager_served) = futures::join!(
        async { futures::try_join!(read(CA_SECRET), read(TLS_SECRET)) },
        served
    );
    let (ca_secret, tls_secret) = secrets?;
    Ok(Observed {
        ca_secret,
        tls_secret,
        cert_manager_served,
        live: BTreeMap::new(),
    })
}

/// Reads the live objects of `keys` (in parallel), into `observed.live`.
pub async fn observe_objects(
    client: &kube::Client,
    keys: impl IntoIterator<Item = ObjectKey>,
    observed: &mut Observed,
) -> Result<(), InstallError> {
    let found = get_objects(client, keys)
        .await
        .map_err(|(key, e)| InstallError::Read {
            what: key.to_string(),
            message: e.to_string(),
        })?;
    observed.live.extend(found);
    Ok(())
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

#[cfg(test)]
mod tests;
