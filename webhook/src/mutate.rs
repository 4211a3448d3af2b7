//! `/mutate`: IRSA injection into pods (amazon-eks-pod-identity-webhook parity) and the
//! `eks.amazonaws.com/role-arn` annotation on a managed namespace's user ServiceAccount.
//!
//! Pure: request and cached cluster state in, response out. A cache miss is returned as
//! [`Missing`] so the caller can fetch it and decide again.

use std::collections::HashSet;

use mlplatform_namespace_policy::eks;
use serde_json::{Value, json};
use tracing::debug;

use crate::admission::{AdmissionRequest, AdmissionResponse, Operation};
use crate::cluster::{
    ClusterView, Lookup, Missing, floor_token_expiration, parse_token_expiration,
};
use crate::objects::{Container, Pod, ServiceAccount};
use crate::patch::{JsonPatch, PatchOperation, append_to_array, escape_pointer_token};

pub const VOLUME_NAME: &str = "aws-iam-token";
pub const MOUNT_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
pub const TOKEN_FILE_NAME: &str = "token";
pub const TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
/// What the Go webhook injects for Windows pods: the same path, `C:` and backslashes.
pub const WINDOWS_TOKEN_FILE: &str = r"C:\var\run\secrets\eks.amazonaws.com\serviceaccount\token";

/// Webhook-wide injection defaults (flags); ServiceAccount and pod annotations override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectionConfig {
    /// Injected as `AWS_REGION` and `AWS_DEFAULT_REGION` when set.
    pub aws_region: Option<String>,
    /// Inject `AWS_STS_REGIONAL_ENDPOINTS=regional` unless the SA annotation says otherwise.
    pub sts_regional_endpoints: bool,
    pub token_audience: String,
    pub token_expiration: i64,
}

impl Default for InjectionConfig {
    fn default() -> Self {
        Self {
            aws_region: None,
            sts_regional_endpoints: false,
            token_audience: eks::DEFAULT_AUDIENCE.to_owned(),
            token_expiration: eks::DEFAULT_TOKEN_EXPIRATION,
        }
    }
}

/// Decides a `/mutate` review.
pub fn decide(
    req: &AdmissionRequest<'_>,
    view: &impl ClusterView,
    cfg: &InjectionConfig,
) -> Result<AdmissionResponse, Missing> {
    let uid = req.uid.as_ref();
    if req.is_subresource() {
        return Ok(AdmissionResponse::allow(uid));
    }
    match (req.kind.group.as_ref(), req.kind.kind.as_ref()) {
        ("", "Pod") => mutate_pod(req, view, cfg),
        ("", "ServiceAccount") => mutate_service_account(req, view),
        (group, kind) => Ok(crate::unsupported_kind(uid, "/mutate", group, kind)),
    }
}

fn mutate_pod(
    req: &AdmissionRequest<'_>,
    view: &impl ClusterView,
    cfg: &InjectionConfig,
) -> Result<AdmissionResponse, Missing> {
    let uid = req.uid.as_ref();
    if req.operation != Operation::Create {
        return Ok(AdmissionResponse::allow(uid));
    }
    let pod: Pod<'_> = match crate::parse_object(req) {
        Ok(pod) => pod,
        Err(message) => return Ok(crate::bad_object(uid, message)),
    };
    let namespace = req.namespace();
    let sa_name = pod.spec.effective_service_account();
    let sa = match view.service_account(namespace, sa_name) {
        Lookup::Found(sa) => sa,
        Lookup::NotFound => return Ok(AdmissionResponse::allow(uid)),
        Lookup::Missing => {
            return Err(Missing::ServiceAccount {
                namespace: namespace.to_owned(),
                name: sa_name.to_owned(),
            });
        }
        // Admit without IRSA rather than block pod creation on an API server hiccup; say so.
        Lookup::Unavailable => {
            return Ok(AdmissionResponse::allow(uid).with_warning(format!(
                "mlplatform-webhook could not read ServiceAccount {namespace}/{sa_name}; AWS IRSA credentials were not injected"
            )));
        }
    };
    let Some(role_arn) = sa.role_arn.as_deref() else {
        return Ok(AdmissionResponse::allow(uid));
    };
    let expiration = pod
        .metadata
        .annotation(eks::TOKEN_EXPIRATION)
        .and_then(parse_token_expiration)
        .or(sa.token_expiration)
        .unwrap_or_else(|| floor_token_expiration(cfg.token_expiration));
    let injection = Injection {
        role_arn,
        audience: sa.audience.as_deref().unwrap_or(&cfg.token_audience),
        regional_sts: sa
            .sts_regional_endpoints
            .unwrap_or(cfg.sts_regional_endpoints),
        region: cfg.aws_region.as_deref(),
        token_file: if is_windows(&pod) {
            WINDOWS_TOKEN_FILE
        } else {
            TOKEN_FILE
        },
        expiration,
    };
    let patch = pod_patch(&pod, &injection);
    debug!(
        namespace,
        service_account = sa_name,
        operations = patch.len(),
        "pod mutation decided"
    );
    let mut response = AdmissionResponse::allow(uid);
    response.patch = patch;
    Ok(response)
}

struct Injection<'a> {
    role_arn: &'a str,
    audience: &'a str,
    regional_sts: bool,
    region: Option<&'a str>,
    token_file: &'a str,
    expiration: i64,
}

fn is_windows(pod: &Pod<'_>) -> bool {
    pod.spec.node_selector.as_ref().is_some_and(|sel| {
        ["kubernetes.io/os", "beta.kubernetes.io/os"]
            .iter()
            .any(|key| sel.get(*key).is_some_and(|os| os == "windows"))
    })
}

/// Container names listed in `eks.amazonaws.com/skip-containers` (comma list).
fn containers_to_skip<'p>(pod: &'p Pod<'_>) -> HashSet<&'p str> {
    pod.metadata
        .annotation(eks::SKIP_CONTAINERS)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn pod_patch(pod: &Pod<'_>, injection: &Injection<'_>) -> JsonPatch {
    let mut patch = JsonPatch::new();
    let volumes = pod.spec.volumes.as_deref();
    if !volumes.is_some_and(|v| v.iter().any(|vol| vol.name == VOLUME_NAME)) {
        let volume = json!({
            "name": VOLUME_NAME,
            "projected": {"sources": [{"serviceAccountToken": {
                "audience": injection.audience,
                "expirationSeconds": injection.expiration,
                "path": TOKEN_FILE_NAME,
            }}]},
        });
        append_to_array(&mut patch, "/spec/volumes", volumes.is_some(), vec![volume]);
    }
    let skip = containers_to_skip(pod);
    for (field, containers) in [
        ("containers", &pod.spec.containers),
        ("initContainers", &pod.spec.init_containers),
    ] {
        for (index, container) in containers.iter().flatten().enumerate() {
            if skip.contains(container.name.as_ref()) {
                continue;
            }
            container_patch(
                &mut patch,
                &format!("/spec/{field}/{index}"),
                container,
                injection,
            );
        }
    }
    patch
}

fn env_var(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// Env and mount for one container, as the Go webhook's `addEnvToContainer` decides them:
/// each group of variables is added only when the user set none of it.
fn container_patch(
    patch: &mut JsonPatch,
    container_path: &str,
    container: &Container<'_>,
    injection: &Injection<'_>,
) {
    let env = container.env.as_deref().unwrap_or_default();
    let has = |names: &[&str]| env.iter().any(|e| names.contains(&e.name.as_ref()));
    let identity_set = has(&["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]);
    let region_set = has(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
    let sts_set = has(&["AWS_STS_REGIONAL_ENDPOINTS"]);
    if identity_set && region_set && sts_set {
        // Go parity: a container that already carries every variable is left alone entirely.
        return;
    }
    let mut add = Vec::new();
    if !sts_set && injection.regional_sts {
        add.push(env_var("AWS_STS_REGIONAL_ENDPOINTS", "regional"));
    }
    if let (false, Some(region)) = (region_set, injection.region) {
        add.push(env_var("AWS_DEFAULT_REGION", region));
        add.push(env_var("AWS_REGION", region));
    }
    if !identity_set {
        add.push(env_var("AWS_ROLE_ARN", injection.role_arn));
        add.push(env_var("AWS_WEB_IDENTITY_TOKEN_FILE", injection.token_file));
    }
    append_to_array(
        patch,
        &format!("{container_path}/env"),
        container.env.is_some(),
        add,
    );

    let mounts = container.volume_mounts.as_deref().unwrap_or_default();
    // A second mount at the same path would make the API server reject the pod.
    if !mounts
        .iter()
        .any(|m| m.name == VOLUME_NAME || m.mount_path == MOUNT_PATH)
    {
        let mount = json!({"name": VOLUME_NAME, "readOnly": true, "mountPath": MOUNT_PATH});
        append_to_array(
            patch,
            &format!("{container_path}/volumeMounts"),
            container.volume_mounts.is_some(),
            vec![mount],
        );
    }
}

/// The user ServiceAccount of a managed namespace with `mlplatform.io/irsa-role-arn` gets that
/// role in `eks.amazonaws.com/role-arn`.
fn mutate_service_account(
    req: &AdmissionRequest<'_>,
    view: &impl ClusterView,
) -> Result<AdmissionResponse, Missing> {
    let uid = req.uid.as_ref();
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Ok(AdmissionResponse::allow(uid));
    }
    let sa: ServiceAccount<'_> = match crate::parse_object(req) {
        Ok(sa) => sa,
        Err(message) => return Ok(crate::bad_object(uid, message)),
    };
    let namespace = req.namespace();
    let name = sa
        .metadata
        .name
        .as_deref()
        .or(req.name.as_deref())
        .unwrap_or_default();
    let entry = match view.namespace(namespace) {
        Lookup::Found(entry) => entry,
        Lookup::NotFound => return Ok(AdmissionResponse::allow(uid)),
        Lookup::Missing => return Err(Missing::Namespace(namespace.to_owned())),
        Lookup::Unavailable => {
            return Ok(AdmissionResponse::allow(uid).with_warning(format!(
                "mlplatform-webhook could not read namespace {namespace}; {} was not set on ServiceAccount {name}",
                eks::ROLE_ARN
            )));
        }
    };
    let policy = match &entry.policy {
        Ok(Some(policy)) => policy,
        Ok(None) => return Ok(AdmissionResponse::allow(uid)),
        Err(err) => {
            return Ok(AdmissionResponse::allow(uid).with_warning(format!(
                "namespace {namespace} has an invalid mlplatform policy, {} was not set: {err}",
                eks::ROLE_ARN
            )));
        }
    };
    let Some(role_arn) = policy.irsa_role_arn.as_deref() else {
        return Ok(AdmissionResponse::allow(uid));
    };
    if name != policy.user_service_account
        || sa.metadata.annotation(eks::ROLE_ARN) == Some(role_arn)
    {
        return Ok(AdmissionResponse::allow(uid));
    }
    let op = if sa.metadata.annotations.is_some() {
        PatchOperation::add(
            format!(
                "/metadata/annotations/{}",
                escape_pointer_token(eks::ROLE_ARN)
            ),
            Value::from(role_arn),
        )
    } else {
        PatchOperation::add(
            "/metadata/annotations".to_owned(),
            json!({ eks::ROLE_ARN: role_arn }),
        )
    };
    let mut response = AdmissionResponse::allow(uid);
    response.patch.push(op);
    Ok(response)
}
