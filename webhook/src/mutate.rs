//! `/mutate`: IRSA injection into pods (amazon-eks-pod-identity-webhook parity) and the
//! `eks.amazonaws.com/role-arn` annotation on a managed namespace's user ServiceAccount.
//!
//! Pure: request and cached cluster state in, response out. A cache miss is returned as
//! [`Missing`] so the caller can fetch it and decide again.

use mlplatform_namespace_policy::{FS_GROUP_ANNOTATION, eks};
use tracing::debug;

use crate::Endpoint;
use crate::admission::AdmissionResponse;
use crate::cluster::{
    ClusterView, Lookup, MAX_QUOTED_VALUE, Missing, floor_token_expiration, parse_fs_group,
    parse_token_expiration, shorten,
};
use crate::objects::{Container, EnvNames, Pod, ServiceAccount, TOKEN_MOUNT_PATH, TOKEN_VOLUME};
use crate::patch::{JsonPatch, append_to_array, push_i64, push_str};
use crate::review::{AdmissionRequest, Operation, WorkloadKind};

pub const VOLUME_NAME: &str = TOKEN_VOLUME;
pub const MOUNT_PATH: &str = TOKEN_MOUNT_PATH;
/// `eks.amazonaws.com/role-arn` as a JSON Pointer token (RFC 6901: `/` is `~1`).
const ROLE_ARN_POINTER_TOKEN: &str = "eks.amazonaws.com~1role-arn";
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
        // Webhook configurations that send workloads to /mutate too (one rule list shared
        // with /validate, as a real API server showed): IRSA is injected into their pods when
        // those are created, so the workload itself is admitted as it is.
        (group, kind) if WorkloadKind::from_group_kind(group, kind).is_some() => {
            Ok(AdmissionResponse::allow(uid))
        }
        (group, kind) => Ok(crate::unhandled_kind(uid, Endpoint::Mutate, group, kind)),
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
    let pod = match crate::parse_object::<Pod<'_>>(req) {
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
    let windows = is_windows(&pod);
    // Empty (no allocation) unless something about the fsGroup opt-in needs saying.
    let mut warnings = Vec::new();
    let injection = Injection {
        role_arn,
        audience: sa.audience.as_deref().unwrap_or(&cfg.token_audience),
        regional_sts: sa
            .sts_regional_endpoints
            .unwrap_or(cfg.sts_regional_endpoints),
        region: cfg.aws_region.as_deref(),
        token_file: if windows {
            WINDOWS_TOKEN_FILE
        } else {
            TOKEN_FILE
        },
        expiration,
        fs_group: fs_group(namespace, &pod, windows, view, &mut warnings)?,
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
    response.warnings = warnings;
    Ok(response)
}

struct Injection<'a> {
    role_arn: &'a str,
    audience: &'a str,
    regional_sts: bool,
    region: Option<&'a str>,
    token_file: &'a str,
    expiration: i64,
    /// `spec.securityContext.fsGroup` to add along with the token volume.
    fs_group: Option<i64>,
}

/// The fsGroup to set from `mlplatform.io/fs-group` (the pod's annotation, else its
/// namespace's), so non-root containers can read the token (the Go webhook's #8). Only when
/// this patch gives the pod the token volume and the pod sets no fsGroup itself (never
/// overridden), and not for Windows pods, which cannot have one. A value that is not a
/// group ID is reported in a warning; the pod still gets IRSA.
fn fs_group(
    namespace: &str,
    pod: &Pod<'_>,
    windows: bool,
    view: &impl ClusterView,
    warnings: &mut Vec<String>,
) -> Result<Option<i64>, Missing> {
    let gets_token_volume = !pod.spec.volumes.is_some_and(|v| v.0.0);
    let has_fs_group = pod
        .spec
        .security_context
        .is_some_and(|sc| sc.fs_group.is_some());
    if windows || !gets_token_volume || has_fs_group {
        return Ok(None);
    }
    if let Some(value) = pod.metadata.annotation(FS_GROUP_ANNOTATION) {
        match parse_fs_group(value) {
            Some(gid) => return Ok(Some(gid)),
            None => warnings.push(format!(
                "pod annotation {FS_GROUP_ANNOTATION}={:?} is not a group ID (0 to 2147483647) and was ignored",
                shorten(value, MAX_QUOTED_VALUE)
            )),
        }
    }
    let entry = match view.namespace(namespace) {
        Lookup::Found(entry) => entry,
        Lookup::NotFound => return Ok(None),
        Lookup::Missing => return Err(Missing::Namespace(namespace.to_owned())),
        Lookup::Unavailable => {
            warnings.push(format!(
                "mlplatform-webhook could not read namespace {namespace}; its {FS_GROUP_ANNOTATION} annotation, if any, was not applied"
            ));
            return Ok(None);
        }
    };
    match &entry.fs_group {
        None => Ok(None),
        Some(Ok(gid)) => Ok(Some(*gid)),
        Some(Err(value)) => {
            warnings.push(format!(
                "namespace {namespace} annotation {FS_GROUP_ANNOTATION}={value:?} is not a group ID (0 to 2147483647); spec.securityContext.fsGroup was not set"
            ));
            Ok(None)
        }
    }
}

fn is_windows(pod: &Pod<'_>) -> bool {
    pod.spec.node_selector.as_ref().is_some_and(|sel| {
        ["kubernetes.io/os", "beta.kubernetes.io/os"]
            .iter()
            .any(|key| sel.get(key) == Some("windows"))
    })
}

/// Whether `name` is listed in `eks.amazonaws.com/skip-containers` (comma list).
fn skipped(skip: Option<&str>, name: &str) -> bool {
    skip.is_some_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|s| !s.is_empty() && s == name)
    })
}

/// Patch bytes per container (env and mount, about 800) and for the pod (volume, fsGroup):
/// enough that the patch never grows while it is written.
const PATCH_BYTES_PER_CONTAINER: usize = 1024;
const PATCH_BYTES_PER_POD: usize = 512;

fn pod_patch(pod: &Pod<'_>, injection: &Injection<'_>) -> JsonPatch {
    let containers = [&pod.spec.containers, &pod.spec.init_containers]
        .iter()
        .map(|c| c.as_ref().map_or(0, Vec::len))
        .sum::<usize>();
    let mut patch =
        JsonPatch::with_capacity(PATCH_BYTES_PER_POD + PATCH_BYTES_PER_CONTAINER * containers);
    let volumes = pod.spec.volumes;
    if !volumes.is_some_and(|v| v.0.0) {
        append_to_array(
            &mut patch,
            &["/spec/volumes"],
            volumes.is_some(),
            &[injection],
            |out, injection| write_token_volume(out, injection),
        );
    }
    if let Some(gid) = injection.fs_group {
        // Absent or null: add the object (a member add needs its parent).
        if pod.spec.security_context.is_some() {
            patch.add(&["/spec/securityContext/fsGroup"], |out| push_i64(out, gid));
        } else {
            patch.add(&["/spec/securityContext"], |out| {
                out.extend_from_slice(br#"{"fsGroup":"#);
                push_i64(out, gid);
                out.push(b'}');
            });
        }
    }
    let skip = pod.metadata.annotation(eks::SKIP_CONTAINERS);
    for (field, containers) in [
        ("/spec/containers/", &pod.spec.containers),
        ("/spec/initContainers/", &pod.spec.init_containers),
    ] {
        for (index, container) in containers.iter().flatten().enumerate() {
            if skipped(skip, &container.name) {
                continue;
            }
            let mut digits = [0u8; 20];
            let index = decimal(index, &mut digits);
            container_patch(&mut patch, [field, index], container, injection);
        }
    }
    patch
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[start..]).unwrap_or("0")
}

fn write_token_volume(out: &mut Vec<u8>, injection: &Injection<'_>) {
    out.extend_from_slice(br#"{"name":""#);
    out.extend_from_slice(VOLUME_NAME.as_bytes());
    out.extend_from_slice(br#"","projected":{"sources":[{"serviceAccountToken":{"audience":"#);
    push_str(out, injection.audience);
    out.extend_from_slice(br#","expirationSeconds":"#);
    push_i64(out, injection.expiration);
    out.extend_from_slice(br#","path":""#);
    out.extend_from_slice(TOKEN_FILE_NAME.as_bytes());
    out.extend_from_slice(br#""}}]}}"#);
}

/// An env var to add: its JSON up to the value (`{"name":"AWS_...","value":`), and the value.
type EnvVar<'v> = (&'static str, &'v str);

fn write_env_var(out: &mut Vec<u8>, (start, value): &EnvVar<'_>) {
    out.extend_from_slice(start.as_bytes());
    push_str(out, value);
    out.push(b'}');
}

fn write_token_mount(out: &mut Vec<u8>, _: &()) {
    out.extend_from_slice(br#"{"name":""#);
    out.extend_from_slice(VOLUME_NAME.as_bytes());
    out.extend_from_slice(br#"","readOnly":true,"mountPath":""#);
    out.extend_from_slice(MOUNT_PATH.as_bytes());
    out.extend_from_slice(br#""}"#);
}

/// Env and mount for one container, as the Go webhook's `addEnvToContainer` decides them:
/// each group of variables is added only when the user set none of it.
fn container_patch(
    patch: &mut JsonPatch,
    [field, index]: [&str; 2],
    container: &Container<'_>,
    injection: &Injection<'_>,
) {
    let env = container.env.unwrap_or_default();
    let identity_set = env.any(EnvNames::ROLE_ARN | EnvNames::TOKEN_FILE);
    let region_set = env.any(EnvNames::REGION | EnvNames::DEFAULT_REGION);
    let sts_set = env.any(EnvNames::STS_REGIONAL_ENDPOINTS);
    if identity_set && region_set && sts_set {
        // Go parity: a container that already carries every variable is left alone entirely.
        return;
    }
    let mut add: [EnvVar<'_>; 5] = [("", ""); 5];
    let mut n = 0;
    let mut push = |var| {
        add[n] = var;
        n += 1;
    };
    if !sts_set && injection.regional_sts {
        push((
            r#"{"name":"AWS_STS_REGIONAL_ENDPOINTS","value":"#,
            "regional",
        ));
    }
    if let (false, Some(region)) = (region_set, injection.region) {
        push((r#"{"name":"AWS_DEFAULT_REGION","value":"#, region));
        push((r#"{"name":"AWS_REGION","value":"#, region));
    }
    if !identity_set {
        push((r#"{"name":"AWS_ROLE_ARN","value":"#, injection.role_arn));
        push((
            r#"{"name":"AWS_WEB_IDENTITY_TOKEN_FILE","value":"#,
            injection.token_file,
        ));
    }
    append_to_array(
        patch,
        &[field, index, "/env"],
        container.env.is_some(),
        &add[..n],
        write_env_var,
    );

    // A second mount at the same path would make the API server reject the pod.
    if !container.volume_mounts.is_some_and(|m| m.0.0) {
        append_to_array(
            patch,
            &[field, index, "/volumeMounts"],
            container.volume_mounts.is_some(),
            &[()],
            write_token_mount,
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
    let sa = match crate::parse_object::<ServiceAccount<'_>>(req) {
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
    let mut response = AdmissionResponse::allow(uid);
    if sa.metadata.annotations.is_some() {
        response
            .patch
            .add(&["/metadata/annotations/", ROLE_ARN_POINTER_TOKEN], |out| {
                push_str(out, role_arn)
            });
    } else {
        response.patch.add(&["/metadata/annotations"], |out| {
            out.push(b'{');
            push_str(out, eks::ROLE_ARN);
            out.push(b':');
            push_str(out, role_arn);
            out.push(b'}');
        });
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arn_pointer_token_is_the_escaped_annotation_key() {
        assert_eq!(
            ROLE_ARN_POINTER_TOKEN,
            crate::patch::escape_pointer_token(eks::ROLE_ARN)
        );
    }

    #[test]
    fn decimal_indices() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), "0");
        assert_eq!(decimal(7, &mut buf), "7");
        assert_eq!(decimal(1234, &mut buf), "1234");
        assert_eq!(decimal(usize::MAX, &mut buf), usize::MAX.to_string());
    }

    fn pod_review(annotations: serde_json::Value, security_context: serde_json::Value) -> String {
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "ns", "operation": "CREATE",
                "object": {
                    "metadata": {"name": "p", "annotations": annotations},
                    "spec": {"serviceAccountName": "sa", "securityContext": security_context,
                             "containers": [{"name": "c"}]}
                }
            }
        })
        .to_string()
    }

    /// A cluster whose namespaces are not cached yet (and whose ServiceAccount is).
    struct NamespacesMissing(crate::cluster::StaticClusterView);

    impl ClusterView for NamespacesMissing {
        fn namespace(&self, _: &str) -> Lookup<crate::cluster::NamespaceEntry> {
            Lookup::Missing
        }
        fn service_account(
            &self,
            namespace: &str,
            name: &str,
        ) -> Lookup<crate::cluster::ServiceAccountEntry> {
            self.0.service_account(namespace, name)
        }
    }

    fn patch_ops(response: &AdmissionResponse) -> Vec<serde_json::Value> {
        serde_json::from_slice(response.patch.as_json()).unwrap()
    }

    #[test]
    fn fs_group_from_the_namespace_waits_for_it_and_falls_back_with_a_warning() {
        let role: std::collections::BTreeMap<String, String> =
            [(eks::ROLE_ARN.to_owned(), "arn:aws:iam::1:role/r".to_owned())].into();
        let mut cached = crate::cluster::StaticClusterView::new();
        cached.add_service_account("ns", "sa", Some(&role));
        let view = NamespacesMissing(cached);
        let cfg = InjectionConfig::default();

        // No pod annotation: the namespace decides, so a namespace miss is fetched first.
        let body = pod_review(serde_json::json!({}), serde_json::json!({}));
        let req = crate::admission::parse_review(body.as_bytes()).unwrap();
        assert_eq!(
            decide(&req, &view, &cfg),
            Err(Missing::Namespace("ns".to_owned()))
        );
        // Fetch failed: IRSA still injected, no fsGroup, and the warning says why.
        let out = decide(&req, &crate::cluster::FinalView(&view), &cfg).unwrap();
        assert!(out.allowed);
        assert_eq!(out.patch.len(), 3, "{:?}", patch_ops(&out));
        assert!(
            out.warnings[0].contains("could not read namespace ns"),
            "{:?}",
            out.warnings
        );

        // The pod's own annotation needs no namespace; the value is written as a number.
        let body = pod_review(
            serde_json::json!({FS_GROUP_ANNOTATION: "4242"}),
            serde_json::json!({"runAsUser": 1000}),
        );
        let req = crate::admission::parse_review(body.as_bytes()).unwrap();
        let out = decide(&req, &view, &cfg).unwrap();
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert_eq!(
            patch_ops(&out)[1],
            serde_json::json!({"op": "add", "path": "/spec/securityContext/fsGroup", "value": 4242})
        );

        // An fsGroup the pod sets is never overridden, and no namespace is needed to know.
        let body = pod_review(
            serde_json::json!({FS_GROUP_ANNOTATION: "4242"}),
            serde_json::json!({"fsGroup": 0}),
        );
        let req = crate::admission::parse_review(body.as_bytes()).unwrap();
        let out = decide(&req, &view, &cfg).unwrap();
        assert!(
            patch_ops(&out)
                .iter()
                .all(|op| !op["path"].as_str().unwrap().contains("securityContext"))
        );
    }

    #[test]
    fn skip_list_is_a_trimmed_comma_list() {
        assert!(skipped(Some(" a , b,,c "), "b"));
        assert!(skipped(Some("a,b"), "a"));
        assert!(!skipped(Some("a,b"), "c"));
        assert!(!skipped(Some(" , "), ""));
        assert!(!skipped(None, "a"));
    }
}
